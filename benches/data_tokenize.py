#!/usr/bin/env python3
"""Dataset tokenization throughput of `datasets.map(batched=True)` with transformers' fast
tokenizer, the Python side of `cargo bench -p ft-data --bench tokenize`.

Same jobs as the Rust bench, on the same machine: AG News test (7,600 texts,
`tok(batch["text"], truncation=True, max_length=256)`) and CoNLL-2003 train (14,041 sentences, the
notebook's `tokenize_and_align_labels`) from ../shared/data, with all-MiniLM-L6-v2's tokenizer.
`map` runs in memory (`keep_in_memory=True`, no cache file), default `batch_size=1000`, one
process; the tokenizer's own Rust thread pool uses every core (TOKENIZERS_PARALLELISM default).
Prints one JSON line per job with the median of `--repeats` runs.

    python benches/data_tokenize.py --shared ../shared --minilm ~/.cache/ft-minilm
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import datasets
from datasets import load_dataset
from transformers import AutoTokenizer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared")
    ap.add_argument("--minilm", default=os.path.expanduser("~/.cache/ft-minilm"))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    datasets.disable_progress_bars()
    datasets.disable_caching()
    tok = AutoTokenizer.from_pretrained(args.minilm)
    data = args.shared / "data"
    ag = load_dataset("parquet", data_files={"test": str(data / "ag_news" / "test.parquet")})["test"]
    conll = load_dataset("parquet", data_files={"train": str(data / "conll2003" / "train.parquet")})["train"]

    def tok_ag(batch):
        return tok(batch["text"], truncation=True, padding=False, max_length=256)

    def tokenize_and_align_labels(examples):
        tokenized = tok(examples["tokens"], truncation=True, is_split_into_words=True)
        labels = []
        for i in range(len(examples["tokens"])):
            ids = tokenized.word_ids(batch_index=i)
            ex_labels = examples["ner_tags"][i]
            aligned = []
            prev = None
            for wid in ids:
                if wid is None:
                    aligned.append(-100)
                elif wid != prev:
                    aligned.append(ex_labels[wid])
                else:
                    aligned.append(-100)
                prev = wid
            labels.append(aligned)
        tokenized["labels"] = labels
        return tokenized

    for name, ds, fn in [("ag_news_test_minilm_256", ag, tok_ag), ("conll_train_minilm_align", conll, tokenize_and_align_labels)]:
        times = []
        for _ in range(args.repeats + 1):
            t0 = time.perf_counter()
            ds.map(fn, batched=True, keep_in_memory=True, load_from_cache_file=False)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times[1:])  # the first run warms up
        print(json.dumps({"job": name, "rows": len(ds), "median_s": round(med, 4), "rows_per_s": round(len(ds) / med, 1),
                          "datasets": datasets.__version__, "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
