"""PyTorch counterparts of ft's op-timing examples, 2 threads.

    python benches/torch_ops.py          # `cargo run --release -p ft-models --example op_timings`:
                                         # one DistilBERT-base layer's ops at batch 32 x 128, inference
    python benches/torch_ops.py --train  # `cargo run --release -p ft-train --example train_op_timings`:
                                         # an all-MiniLM-L6-v2 training step's ops at batch 16 x 256,
                                         # forward and backward, clipping and AdamW

Run in the models venv (`~/.cache/ft-venv-models/bin/python benches/torch_ops.py`)."""
import os
import sys
import time

import torch


def timed(name, f, n=3):
    f()
    start = time.perf_counter()
    for _ in range(n):
        f()
    print(f"{name}: {(time.perf_counter() - start) / n * 1000:.1f} ms")


def inference():
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


B, L, H, HEADS, FFN, VOCAB = 16, int(os.environ.get("FT_OPS_SEQ", 256)), 384, 12, 1536, 30522


def time_op(name, make, op):
    """Forward: the op; backward: (y * g).sum().backward() — as train_op_timings.rs. Parameter
    gradients are cleared before each run (ft's backward starts from none either)."""
    g = None
    fwd = bwd = 0.0
    params = list(op.parameters()) if isinstance(op, torch.nn.Module) else []
    for run in range(4):
        for p in params:
            p.grad = None
        inputs = make()
        t0 = time.perf_counter()
        y = op(*inputs)
        t1 = time.perf_counter()
        if g is None:
            g = torch.randn_like(y)
        loss = (y * g).sum()
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        if run > 0:
            fwd += (t1 - t0) * 1e3 / 3
            bwd += (t3 - t2) * 1e3 / 3
    print(f"| {name} | {fwd:.1f} | {bwd:.1f} |")


def train():
    from transformers import BertConfig, BertForSequenceClassification
    import transformers
    transformers.logging.set_verbosity_error()
    F = torch.nn.functional
    req = lambda *s: torch.randn(*s).requires_grad_()
    print(f"| op (batch {B} x {L}) | forward ms | backward ms |\n|---|---:|---:|")
    for name, d_in, d_out in [("linear 384->384 (x4 per layer)", H, H), ("linear 384->1536", H, FFN),
                              ("linear 1536->384", FFN, H)]:
        layer = torch.nn.Linear(d_in, d_out)
        time_op(name, lambda: (req(B, L, d_in),), layer)
    heads = lambda: (req(B, HEADS, L, H // HEADS), req(B, HEADS, L, H // HEADS), req(B, HEADS, L, H // HEADS))

    def eager(q, k, v):  # transformers' eager BERT attention: scores, softmax, dropout, product
        s = q @ k.transpose(-1, -2) / (H // HEADS) ** 0.5
        return F.dropout(torch.softmax(s, -1), 0.1, True) @ v

    time_op(f"attention (12 heads x {L}^2, dropout 0.1), eager", heads, eager)
    time_op(f"attention (12 heads x {L}^2, dropout 0.1), sdpa", heads,
            lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=0.1))
    time_op(f"softmax [16, 12, {L}, {L}]", lambda: (req(B, HEADS, L, L),), lambda s: torch.softmax(s, -1))
    time_op(f"GELU [16, {L}, 1536]", lambda: (req(B, L, FFN),), F.gelu)
    ln = torch.nn.LayerNorm(H, eps=1e-12)
    time_op("LayerNorm 384", lambda: (req(B, L, H),), ln)
    time_op(f"dropout 0.1 [16, {L}, 384]", lambda: (req(B, L, H),), lambda x: F.dropout(x, 0.1, True))
    time_op(f"residual add [16, {L}, 384]", lambda: (req(B, L, H), req(B, L, H)), lambda a, b: a + b)
    emb = torch.nn.Embedding(VOCAB, H)
    ids = torch.randint(0, VOCAB, (B, L))
    time_op("embedding 30522 x 384 (dense gradient)", lambda: (ids,), emb)

    config = BertConfig(num_hidden_layers=6, hidden_size=H, num_attention_heads=HEADS, intermediate_size=FFN,
                        num_labels=4)
    model = BertForSequenceClassification(config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.0, fused=True)  # the Trainer's default
    full_ids, mask, labels = torch.randint(0, VOCAB, (B, L)), torch.ones(B, L, dtype=torch.long), torch.randint(0, 4, (B,))
    fwd = bwd = clip = step = 0.0
    for run in range(4):
        t0 = time.perf_counter()
        loss = model(input_ids=full_ids, attention_mask=mask, labels=labels).loss
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad()
        t4 = time.perf_counter()
        if run > 0:
            fwd, bwd = fwd + (t1 - t0) * 1e3 / 3, bwd + (t2 - t1) * 1e3 / 3
            clip, step = clip + (t3 - t2) * 1e3 / 3, step + (t4 - t3) * 1e3 / 3
    print(f"| clip_grad_norm (22.7M parameters) | {clip:.1f} | |")
    print(f"| AdamW step (22.7M parameters) | {step:.1f} | |")
    print(f"| **whole step: MiniLM, 6 layers ({model.config._attn_implementation})** | {fwd:.1f} | {bwd:.1f} |")
    print(f"(parameters: {sum(p.numel() for p in model.parameters())}; torch {torch.__version__}, "
          f"{torch.backends.cpu.get_cpu_capability()})")


def main():
    torch.set_num_threads(2)
    train() if "--train" in sys.argv[1:] else inference()


if __name__ == "__main__":
    main()
