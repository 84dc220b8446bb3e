"""PyTorch's side of `crates/ft-models/examples/matmul_shapes.rs`: GFLOP/s of the matrix products
of a MiniLM / BERT-base training step in the three forms of a linear layer, laid out as
`nn.Linear` runs them (weight `[out, in]`: forward `x @ W.t()`, input gradient `dy @ W`, weight
gradient `dy.t() @ x`; the transposes are views, as in autograd), 2 threads. Run both back to back on a quiet machine.

    python benches/torch_matmul.py
"""
import time

import torch

SHAPES = [(1536, 384, 384), (1536, 384, 1536), (1536, 1536, 384), (4096, 384, 384), (4096, 384, 1536),
          (4096, 1536, 384), (2048, 768, 768), (2048, 768, 3072), (2048, 3072, 768), (400, 384, 384),
          (400, 384, 1536), (400, 1536, 384)]


def seconds(f):
    f()
    start, runs = time.perf_counter(), 0
    while runs < 3 or time.perf_counter() - start < 0.3:
        f()
        runs += 1
    return (time.perf_counter() - start) / runs


def main():
    torch.set_num_threads(2)
    print("| rows × in → out | x·W GFLOP/s | dy·Wᵀ GFLOP/s | xᵀ·dy GFLOP/s |\n|---|---:|---:|---:|")
    for rows, d_in, d_out in SHAPES:
        flops = 2.0 * rows * d_in * d_out / 1e9
        x, w, dy = torch.randn(rows, d_in), torch.randn(d_out, d_in), torch.randn(rows, d_out)
        fwd = flops / seconds(lambda: x @ w.t())
        dx = flops / seconds(lambda: dy @ w)
        dw = flops / seconds(lambda: dy.t() @ x)
        print(f"| {rows} × {d_in} → {d_out} | {fwd:.1f} | {dx:.1f} | {dw:.1f} |")
    print(f"(torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()})")


if __name__ == "__main__":
    main()
