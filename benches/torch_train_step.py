#!/usr/bin/env python3
"""PyTorch counterpart of `cargo bench -p ft-train --bench train_step`: one training step of a
BERT-base-shaped encoder with a sequence-classification head (transformers'
`BertForSequenceClassification`, random weights, dropout 0.1, train mode), batch 16 x 128, all-ones
attention mask: forward, cross-entropy, backward, `clip_grad_norm_(1.0)`, `torch.optim.AdamW(fused=True)`
(transformers' Trainer default `adamw_torch_fused` on torch >= 2.8; lr 5e-5, decay 0 as ft's bench). Same environment variables as the
Rust bench (FT_BENCH_LAYERS, FT_BENCH_HIDDEN, FT_BENCH_BATCH, FT_BENCH_SEQ).

    python benches/torch_train_step.py [--threads 2] [--iters 10] [--attn sdpa|eager]

Prints the mean time of each phase and of the whole step, and one JSON line.
Dependencies: xtask/python/requirements-models.txt (no Hub access needed).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers
from transformers import BertConfig, BertForSequenceClassification

transformers.logging.set_verbosity_error()


def env(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--attn", default="sdpa", help="attn_implementation (transformers' default: sdpa)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    layers, hidden = env("FT_BENCH_LAYERS", 2), env("FT_BENCH_HIDDEN", 768)
    batch, seq = env("FT_BENCH_BATCH", 16), env("FT_BENCH_SEQ", 128)
    config = BertConfig(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=hidden // 64,
                        intermediate_size=4 * hidden, num_labels=4, attn_implementation=a.attn)
    model = BertForSequenceClassification(config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.0, fused=True)
    ids = torch.randint(0, config.vocab_size, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    labels = torch.randint(0, 4, (batch,))
    phases = [0.0] * 4

    def step(record: bool) -> None:
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad()
        t4 = time.perf_counter()
        if record:
            for i, (s, e) in enumerate([(t0, t1), (t1, t2), (t2, t3), (t3, t4)]):
                phases[i] += (e - s) * 1e3

    for _ in range(a.warmup):
        step(False)
    start = time.perf_counter()
    for _ in range(a.iters):
        step(True)
    mean = (time.perf_counter() - start) / a.iters
    p = [x / a.iters for x in phases]
    print(f"train_step phases (mean of {a.iters}, ms): forward {p[0]:.1f}, backward {p[1]:.1f}, "
          f"clip {p[2]:.1f}, optimizer {p[3]:.1f}")
    print(json.dumps({"framework": "pytorch", "torch": torch.__version__, "cpu": torch.backends.cpu.get_cpu_capability(),
                      "threads": a.threads, "layers": layers, "hidden": hidden, "batch": batch, "seq": seq,
                      "attn": a.attn, "mean_s": round(mean, 4), "phases_ms": [round(x, 1) for x in p]}))


if __name__ == "__main__":
    main()
