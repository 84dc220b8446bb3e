#!/usr/bin/env python3
"""PyTorch baseline for the `ft` encoder benchmarks (CPU).

Builds a random-weight DistilBERT-base-sized model (`DistilBertConfig()` defaults: dim 768,
6 layers, 12 heads, hidden_dim 3072, vocab 30522) and times it on random input ids.

    python benches/torch_encoder.py [--threads 2] [--iters 10]           # inference, batch 32 x 128
    python benches/torch_encoder.py --train [--threads 2] [--iters 10]   # fwd+bwd+AdamW, batch 16 x 128

Prints one JSON line, e.g.
    {"framework":"pytorch","torch":"2.x","mode":"inference","threads":2,"batch":32,"seq":128,
     "mean_s":...,"min_s":...,"sequences_per_s":...}
Dependencies: xtask/python/requirements-models.txt (no Hub access needed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

import transformers
from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertModel

transformers.logging.set_verbosity_error()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--iters", type=int, default=10, help="timed iterations (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up iterations (default 2)")
    ap.add_argument("--train", action="store_true",
                    help="time forward+backward+AdamW step of DistilBertForSequenceClassification")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 32, or 16 with --train)")
    ap.add_argument("--seq", type=int, default=128, help="sequence length (default 128)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    batch = args.batch or (16 if args.train else 32)
    config = DistilBertConfig()
    gen = torch.Generator().manual_seed(args.seed)
    input_ids = torch.randint(0, config.vocab_size, (batch, args.seq), generator=gen, dtype=torch.long)
    attention_mask = torch.ones(batch, args.seq, dtype=torch.long)

    times: list[float] = []
    if not args.train:
        model = DistilBertModel(config).eval()
        with torch.inference_mode():
            for i in range(args.warmup + args.iters):
                t0 = time.perf_counter()
                out = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                _ = out.sum().item()
                dt = time.perf_counter() - t0
                if i >= args.warmup:
                    times.append(dt)
        mode = "inference"
    else:
        config.num_labels = 4
        model = DistilBertForSequenceClassification(config).train()
        opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
        labels = torch.randint(0, 4, (batch,), generator=gen, dtype=torch.long)
        for i in range(args.warmup + args.iters):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
            out.loss.backward()
            opt.step()
            _ = out.loss.item()
            dt = time.perf_counter() - t0
            if i >= args.warmup:
                times.append(dt)
        mode = "train"

    mean_s = statistics.fmean(times)
    print(json.dumps({
        "framework": "pytorch",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "mode": mode,
        "model": "distilbert-base (random init)",
        "threads": args.threads,
        "batch": batch,
        "seq": args.seq,
        "iters": args.iters,
        "mean_s": round(mean_s, 6),
        "min_s": round(min(times), 6),
        "sequences_per_s": round(batch / mean_s, 3),
    }, separators=(",", ":")))


if __name__ == "__main__":
    main()
