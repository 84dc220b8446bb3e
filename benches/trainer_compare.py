"""transformers' Trainer on the same rows and settings as ft's acceptance runs, on this machine.

usage: python benches/trainer_compare.py agnews|conll --minilm DIR [--shared ../shared] [--threads 2]
                                        [--ft target/release/ft]
Prints one JSON line: the evaluation metrics and train samples/s of transformers' Trainer. With
`--ft BIN`, first runs `BIN train` on the matching run file (benches/runs/{agnews,conll}_minilm.toml,
same rows and settings) and prints its line too, then one comparison line (metric differences and
the samples/s ratio ft / Trainer). The two runs are sequential, never overlapping. Needs torch,
transformers, datasets, seqeval (xtask/python/requirements-bench.txt), no GPU.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import torch
from datasets import load_dataset
from transformers import (AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer,
                          DataCollatorForTokenClassification, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed)


def agnews(args, tok):
    ds = load_dataset("parquet", data_files={"test": os.path.join(args.shared, "data/ag_news/test.parquet")})["test"]
    ds = ds.shuffle(seed=42)
    train, val = ds.select(range(2000)), ds.select(range(2000, 3000))

    def tok_ag(batch):
        return tok(batch["text"], truncation=True, padding=False, max_length=256)

    train = train.map(tok_ag, batched=True).rename_column("label", "labels")
    val = val.map(tok_ag, batched=True).rename_column("label", "labels")
    model = AutoModelForSequenceClassification.from_pretrained(args.minilm, num_labels=4)

    def compute_metrics(p):
        logits, labels = p
        preds = np.argmax(logits, axis=-1)
        f1s = []
        for c in range(4):
            tp = np.sum((preds == c) & (labels == c))
            fp = np.sum((preds == c) & (labels != c))
            fn = np.sum((preds != c) & (labels == c))
            f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
        return {"accuracy": float(np.mean(preds == labels)), "f1_macro": float(np.mean(f1s))}

    targs = dict(learning_rate=2e-5, per_device_train_batch_size=16, per_device_eval_batch_size=32, num_train_epochs=2,
                 eval_strategy="epoch", save_strategy="epoch", logging_steps=50, load_best_model_at_end=True,
                 metric_for_best_model="accuracy", seed=42)
    return model, train, val, DataCollatorWithPadding(tok), compute_metrics, targs


def conll(args, tok):
    files = {s: os.path.join(args.shared, f"data/conll2003/{s}.parquet") for s in ("train", "validation")}
    ds = load_dataset("parquet", data_files=files)
    label_list = ds["train"].features["ner_tags"].feature.names
    train = ds["train"].shuffle(seed=42).select(range(2000))
    val = ds["validation"].shuffle(seed=42).select(range(1000))

    def tokenize_and_align_labels(examples):
        tokenized = tok(examples["tokens"], truncation=True, is_split_into_words=True)
        labels = []
        for i in range(len(examples["tokens"])):
            ids = tokenized.word_ids(batch_index=i)
            ex_labels = examples["ner_tags"][i]
            aligned, prev = [], None
            for wid in ids:
                aligned.append(-100 if wid is None or wid == prev else ex_labels[wid])
                prev = wid
            labels.append(aligned)
        tokenized["labels"] = labels
        return tokenized

    cols = train.column_names
    train = train.map(tokenize_and_align_labels, batched=True, remove_columns=cols)
    val = val.map(tokenize_and_align_labels, batched=True, remove_columns=cols)
    id2label = dict(enumerate(label_list))
    model = AutoModelForTokenClassification.from_pretrained(
        args.minilm, num_labels=len(label_list), id2label=id2label, label2id={v: k for k, v in id2label.items()})
    from seqeval.metrics import accuracy_score, classification_report

    def compute_metrics(p):
        logits, labels = p
        preds = np.argmax(logits, axis=-1)
        t, q = [], []
        for pr, la in zip(preds, labels):
            t.append([label_list[l] for p_, l in zip(pr, la) if l != -100])
            q.append([label_list[p_] for p_, l in zip(pr, la) if l != -100])
        rep = classification_report(t, q, output_dict=True)
        return {"overall_precision": rep["micro avg"]["precision"], "overall_recall": rep["micro avg"]["recall"],
                "overall_f1": rep["micro avg"]["f1-score"], "overall_accuracy": accuracy_score(t, q)}

    targs = dict(per_device_train_batch_size=8, per_device_eval_batch_size=16, num_train_epochs=1,
                 eval_strategy="epoch", save_strategy="no", logging_steps=50, seed=42)
    return model, train, val, DataCollatorForTokenClassification(tok), compute_metrics, targs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=["agnews", "conll"])
    ap.add_argument("--minilm", required=True)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42, help="seed for the head's init (Trainer's seed stays 42)")
    ap.add_argument("--ft", default=None, help="the ft binary: run ft's side first")
    args = ap.parse_args()
    ft_result = run_ft(args) if args.ft else None
    torch.set_num_threads(args.threads)
    # Seed before the new head is initialised (from_pretrained), not only in Trainer, so that
    # the run is repeatable; without it the head's random init moves CoNLL F1 by several points
    # from run to run (seen: 0.585 to 0.626).
    set_seed(args.seed)
    tok = AutoTokenizer.from_pretrained(args.minilm)
    model, train, val, collator, compute_metrics, targs = (agnews if args.task == "agnews" else conll)(args, tok)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(model=model, args=TrainingArguments(output_dir=out, report_to=[], use_cpu=True, **targs),
                          train_dataset=train, eval_dataset=val, data_collator=collator, compute_metrics=compute_metrics)
        start = time.perf_counter()
        train_out = trainer.train()
        wall = time.perf_counter() - start
        metrics = trainer.evaluate()
    result = {"framework": "transformers", "torch": torch.__version__, "threads": args.threads, "task": args.task,
              "train_runtime": train_out.metrics["train_runtime"],
              "train_samples_per_second": train_out.metrics["train_samples_per_second"], "wall_s": wall}
    result.update({k: v for k, v in metrics.items() if k.startswith("eval_")})
    print(json.dumps(result))
    if ft_result:
        key = "eval_accuracy" if args.task == "agnews" else "eval_overall_f1"
        print(json.dumps({"comparison": args.task, key + "_ft": ft_result.get(key), key + "_trainer": result.get(key),
                          "difference_points": 100 * (ft_result.get(key, float("nan")) - result.get(key, float("nan"))),
                          "samples_per_second_ratio_ft_over_trainer":
                              ft_result["train_samples_per_second"] / result["train_samples_per_second"]}))


def run_ft(args):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    run_file = os.path.join(root, "benches", "runs", f"{args.task}_minilm.toml")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([args.ft, "train", "--config", run_file, "--set", f"model.name={args.minilm}",
                        "--set", f"training.output_dir={out}"], check=True, cwd=root,
                       stdout=subprocess.DEVNULL,
                       env=dict(os.environ, HF_HUB_OFFLINE="1", FT_SHARED=os.path.abspath(args.shared)))
        wall = time.perf_counter() - start
        with open(os.path.join(out, "all_results.json")) as f:
            results = json.load(f)
    line = {"framework": "ft", "task": args.task, "wall_s": wall}
    line.update(results)
    print(json.dumps(line), flush=True)
    return line


if __name__ == "__main__":
    main()
