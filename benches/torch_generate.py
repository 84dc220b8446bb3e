#!/usr/bin/env python3
"""PyTorch baseline for `ft`'s generation benchmark (CPU): transformers' greedy `generate`.

    python benches/torch_generate.py --make-model ~/.cache/ft-gpt2-small-random
        Writes a random-weight GPT-2-small-sized checkpoint (n_embd 768, n_layer 12, n_head 12,
        vocab 50257, n_positions 1024; 124M parameters, float32, torch.manual_seed(0)) in the
        Hub's layout (config.json, generation_config.json, model.safetensors) with the real
        GPT-2 tokenizer files copied from tests/fixtures/models/tiny-gpt2. Does nothing when the
        directory already holds model.safetensors.

    python benches/torch_generate.py --model DIR [--new-tokens 16] [--iters 5] [--warmup 1] [--threads 2]
        Times `model.generate(prompt, max_new_tokens=N, do_sample=False, use_cache=...)` with and
        without the KV cache, batch 1, the same 14-token prompt as benches/generate.rs, end of
        sequence switched off (eos_token_id=None) so that every call makes N tokens. Prints one
        JSON line per setting, e.g.
        {"framework":"pytorch","use_cache":true,"new_tokens":16,"mean_s":...,"tokens_per_s":...,"token_ids":[...]}

Dependencies: xtask/python/requirements-models.txt (no Hub access needed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

import transformers
from transformers import GPT2Config, GPT2LMHeadModel

transformers.logging.set_verbosity_error()

ROOT = Path(__file__).resolve().parent.parent
# "Once upon a time, in a land far away, there lived a" (the same ids as benches/generate.rs).
PROMPT = [7454, 2402, 257, 640, 11, 287, 257, 1956, 1290, 1497, 11, 612, 5615, 257]


def make_model(out: Path) -> None:
    if (out / "model.safetensors").is_file():
        print(f"{out}: already there", flush=True)
        return
    torch.manual_seed(0)
    config = GPT2Config(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024)
    model = GPT2LMHeadModel(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    fixture = ROOT / "tests/fixtures/models/tiny-gpt2"
    shutil.copy(fixture / "tokenizer.json", out / "tokenizer.json")
    tok_config = json.loads((fixture / "tokenizer_config.json").read_text())
    tok_config["model_max_length"] = config.n_positions
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n")
    n = sum(p.numel() for p in model.parameters())
    print(f"{out}: random GPT-2 small, {n:,} parameters", flush=True)


def bench(model_dir: Path, new_tokens: int, iters: int, warmup: int, threads: int, caches: list[bool]) -> None:
    torch.set_num_threads(threads)
    model = GPT2LMHeadModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    input_ids = torch.tensor([PROMPT], dtype=torch.long)
    attention_mask = torch.ones_like(input_ids)
    for use_cache in caches:
        times: list[float] = []
        tokens: list[int] = []
        with torch.inference_mode():
            for i in range(warmup + iters):
                t0 = time.perf_counter()
                out = model.generate(
                    input_ids,
                    attention_mask=attention_mask,
                    max_new_tokens=new_tokens,
                    do_sample=False,
                    use_cache=use_cache,
                    eos_token_id=None,
                    pad_token_id=50256,
                )
                dt = time.perf_counter() - t0
                tokens = out[0, len(PROMPT):].tolist()
                assert len(tokens) == new_tokens, f"made {len(tokens)} tokens, expected {new_tokens}"
                if i >= warmup:
                    times.append(dt)
        mean_s = statistics.fmean(times)
        print(json.dumps({
            "framework": "pytorch",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "model": str(model_dir),
            "n_embd": model.config.n_embd,
            "n_layer": model.config.n_layer,
            "threads": threads,
            "prompt_tokens": len(PROMPT),
            "new_tokens": new_tokens,
            "use_cache": use_cache,
            "iters": iters,
            "mean_s": round(mean_s, 6),
            "min_s": round(min(times), 6),
            "tokens_per_s": round(new_tokens / mean_s, 3),
            "token_ids": tokens,
        }, separators=(",", ":")), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make-model", type=Path, help="write the random GPT-2-small checkpoint here and exit")
    ap.add_argument("--model", type=Path, help="the model directory to time")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--iters", type=int, default=5, help="timed generate calls per setting (default 5)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--cache", choices=["both", "on", "off"], default="both")
    args = ap.parse_args()
    if args.make_model:
        make_model(args.make_model.expanduser())
        return
    if not args.model:
        ap.error("--model or --make-model is required")
    caches = {"both": [True, False], "on": [True], "off": [False]}[args.cache]
    bench(args.model.expanduser(), args.new_tokens, args.iters, args.warmup, args.threads, caches)


if __name__ == "__main__":
    main()
