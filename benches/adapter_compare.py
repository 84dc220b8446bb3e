"""Bottleneck-adapter training (§6), ft against AdapterHub's `adapters` library
(`AdapterTrainer`), side by side on this machine.

usage: python benches/adapter_compare.py --ft BIN --minilm DIR [--shared ../shared] [--threads 2]

all-MiniLM-L6-v2 sequence classification on the acceptance run's AG News rows (test parquet
shuffled with seed 42: 2,000 train, the next 1,000 evaluation; max_length 256), a Pfeiffer
(`seq_bn`) adapter `agnews_adapter` with its classification head (`add_classification_head`,
`train_adapter`), §6's settings: lr 5e-4, batch 16/32, 1 epoch. ft runs
benches/runs/agnews_minilm_adapter.toml.

Each side runs as its own process under GNU time (peak RSS), sequentially, never overlapping;
torch uses --threads threads, ft the same (RAYON_NUM_THREADS). Prints one JSON line per side and
one comparison line. Needs the adapters venv (xtask/python/requirements-adapters.txt: adapters
1.1.1, transformers 4.48.3, torch, pyarrow).
"""
import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


# The acceptance run's rows and the GNU-time runner, as the LoRA comparison has them.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peft_compare import ag_rows, timed  # noqa: E402


def library_agnews(a):
    """The `adapters` library's side (run in its own process)."""
    import adapters
    import numpy as np
    import torch
    from adapters import AdapterTrainer, AutoAdapterModel
    from transformers import AutoTokenizer, DataCollatorWithPadding, TrainingArguments, set_seed

    torch.set_num_threads(a.threads)
    set_seed(42)
    rows = ag_rows(a.shared)
    tok = AutoTokenizer.from_pretrained(a.minilm)

    def enc(r):
        e = tok(r["text"], truncation=True, max_length=256)
        return {"input_ids": e["input_ids"], "attention_mask": e["attention_mask"], "labels": r["label"]}

    train, val = [enc(r) for r in rows[:2000]], [enc(r) for r in rows[2000:3000]]
    model = AutoAdapterModel.from_pretrained(a.minilm)
    model.add_adapter("agnews_adapter", config="pfeiffer")
    model.add_classification_head("agnews_adapter", num_labels=4)
    model.train_adapter("agnews_adapter")

    def metrics(p):
        logits, labels = p
        preds = np.argmax(logits, axis=-1)
        f1s = []
        for c in range(4):
            tp = np.sum((preds == c) & (labels == c))
            fp = np.sum((preds == c) & (labels != c))
            fn = np.sum((preds != c) & (labels == c))
            f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
        return {"accuracy": float(np.mean(preds == labels)), "f1_macro": float(np.mean(f1s))}

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, learning_rate=5e-4, per_device_train_batch_size=16,
                                 per_device_eval_batch_size=32, num_train_epochs=1, eval_strategy="epoch",
                                 save_strategy="no", logging_steps=50, seed=42, report_to=[], use_cpu=True)
        trainer = AdapterTrainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                                 data_collator=DataCollatorWithPadding(tok), compute_metrics=metrics)
        res = trainer.train().metrics
        ev = trainer.evaluate()
    res.update({k: v for k, v in ev.items() if k.startswith("eval_")})
    res["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    res["versions"] = {"adapters": adapters.__version__, "torch": torch.__version__}
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ft")
    ap.add_argument("--minilm")
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.shared = os.path.abspath(a.shared)
    if a.inner:
        print(json.dumps(library_agnews(a)))
        return
    env = dict(os.environ, HF_HUB_OFFLINE="1", FT_SHARED=a.shared, FT_MINILM_DIR=a.minilm,
               RAYON_NUM_THREADS=str(a.threads))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    with tempfile.TemporaryDirectory() as out:
        cmd = [a.ft, "train", "--config", os.path.join(ROOT, "benches/runs/agnews_minilm_adapter.toml"),
               "--set", f"training.output_dir=\"{out}\""]
        _, ft_rss, ft_wall = timed(cmd, env)
        with open(os.path.join(out, "all_results.json")) as f:
            ft_res = json.load(f)
    inner = [sys.executable, os.path.abspath(__file__), "--inner", "--threads", str(a.threads), "--shared", a.shared,
             "--minilm", a.minilm]
    py_out, py_rss, py_wall = timed(inner, env)
    py_res = json.loads(py_out.strip().splitlines()[-1])
    print(json.dumps({"framework": "ft", "cpu": cpu, "threads": a.threads, "peak_rss_mib": round(ft_rss),
                      "wall_s": round(ft_wall, 1), **ft_res}))
    print(json.dumps({"framework": "adapters+transformers", "cpu": cpu, "threads": a.threads,
                      "peak_rss_mib": round(py_rss), "wall_s": round(py_wall, 1), **py_res}))
    print(json.dumps({
        "comparison": "agnews_adapter", "cpu": cpu,
        "samples_per_second_ratio_ft_over_library": ft_res["train_samples_per_second"] / py_res["train_samples_per_second"],
        "eval_accuracy_ft": ft_res.get("eval_accuracy"), "eval_accuracy_library": py_res.get("eval_accuracy"),
        "difference_points": 100 * (ft_res.get("eval_accuracy", float("nan")) - py_res.get("eval_accuracy", float("nan"))),
        "peak_rss_mib_ft": round(ft_rss), "peak_rss_mib_library": round(py_rss)}))


if __name__ == "__main__":
    main()
