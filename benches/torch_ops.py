"""PyTorch counterpart of `cargo run --release -p ft-models --example op_timings`: one
DistilBERT-base layer's ops at batch 32 x 128, 2 threads, inference. Run in the models venv
(`~/.cache/ft-venv-models/bin/python benches/torch_ops.py`)."""
import time

import torch


def timed(name, f, n=3):
    f()
    start = time.perf_counter()
    for _ in range(n):
        f()
    print(f"{name}: {(time.perf_counter() - start) / n * 1000:.1f} ms")


def main():
    torch.set_num_threads(2)
    x, h = torch.randn(32, 128, 3072), torch.randn(32, 128, 768)
    w_in, w_out, w_sq = torch.randn(3072, 768) * 0.02, torch.randn(768, 3072) * 0.02, torch.randn(768, 768) * 0.02
    w_qkv, bias = torch.randn(2304, 768) * 0.02, torch.zeros(3072)
    q = torch.randn(32, 12, 128, 64)
    F = torch.nn.functional
    with torch.inference_mode():
        timed("linear 768->3072", lambda: F.linear(h, w_in, bias))
        timed("linear 3072->768", lambda: F.linear(x, w_out))
        timed("linear 768->768", lambda: F.linear(h, w_sq))
        timed("linear 768->2304 (fused qkv)", lambda: F.linear(h, w_qkv))
        timed("gelu", lambda: F.gelu(x))
        timed("layer_norm 768", lambda: F.layer_norm(h, (768,)))
        timed("attention (sdpa) 12 heads x 128^2", lambda: F.scaled_dot_product_attention(q, q, q))


if __name__ == "__main__":
    main()
