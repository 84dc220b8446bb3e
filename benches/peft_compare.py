"""LoRA training, ft against PEFT + transformers' Trainer, side by side on this machine.

usage: python benches/peft_compare.py agnews --ft BIN --minilm DIR [--shared ../shared] [--threads 2]
       python benches/peft_compare.py gpt2 --ft BIN [--shared ../shared] [--threads 2] [--steps 30]
       python benches/peft_compare.py switch --ft-example BIN [--threads 2]

- agnews: all-MiniLM-L6-v2 sequence classification on the acceptance run's AG News rows (test
  parquet shuffled with seed 42: 2,000 train, the next 1,000 evaluation; max_length 256, batch
  16/32, 2 epochs), LoRA r = 8, alpha 16, dropout 0.1 on query,value, the classifier trained
  whole (PEFT's SEQ_CLS), lr 5e-4. ft runs benches/runs/agnews_minilm_lora.toml.
- gpt2: a GPT-2-small-sized model (124M; random weights — no registry ships GPT-2's, so the
  numbers are speed and memory only) as a causal LM on real text (AG News articles joined four at
  a time, truncated to 128 tokens), batch 8, `--steps` optimizer steps, LoRA r = 8, alpha 16,
  dropout 0.05 on c_attn,c_proj, lr 5e-4.
- switch: two LoRA adapters (r = 8 on c_attn,c_proj, random B) on the GPT-2-small-sized model:
  the median `set_adapter` latency, and the median forward time at batch 8 x 128 (no gradients)
  with the adapter unmerged, merged (`merge_adapter`) and disabled. ft's side is the example
  `cargo build --release -p ft-models --features flex --example peft_switch`.

Each side runs as its own process under GNU time (peak RSS), sequentially, never overlapping;
torch uses --threads threads, ft the same (RAYON_NUM_THREADS). Prints one JSON line per side and
one comparison line (samples/s ratio ft / PEFT, peak RSS of each, metric difference). Needs
torch, transformers, peft, pyarrow (the models venv plus pyarrow).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def ag_rows(shared):
    import numpy as np
    import pyarrow.parquet as pq

    t = pq.read_table(os.path.join(shared, "data/ag_news/test.parquet")).to_pydict()
    perm = np.random.default_rng(42).permutation(len(t["text"]))  # datasets' shuffle(seed=42)
    return [{"text": t["text"][i], "label": int(t["label"][i])} for i in perm]


def timed(cmd, env=None):
    """Runs cmd under GNU time; returns (stdout, peak RSS in MiB, wall seconds)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        start = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", tf.name] + cmd, cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        if p.returncode != 0:
            sys.exit(f"{cmd[0]} failed with {p.returncode}")
        rss_kb = int(tf.read().strip().splitlines()[-1])
    return p.stdout, rss_kb / 1024, wall


# ---------------------------------------------------------------- the PEFT side (a subprocess)

def peft_agnews(a):
    import numpy as np
    import peft
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments, set_seed)

    torch.set_num_threads(a.threads)
    set_seed(42)
    rows = ag_rows(a.shared)
    tok = AutoTokenizer.from_pretrained(a.minilm)

    def enc(r):
        e = tok(r["text"], truncation=True, max_length=256)
        return {"input_ids": e["input_ids"], "attention_mask": e["attention_mask"], "labels": r["label"]}

    train, val = [enc(r) for r in rows[:2000]], [enc(r) for r in rows[2000:3000]]
    model = AutoModelForSequenceClassification.from_pretrained(a.minilm, num_labels=4)
    model = peft.get_peft_model(model, peft.LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.1,
                                                       target_modules=["query", "value"]))

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
                                 per_device_eval_batch_size=32, num_train_epochs=2, eval_strategy="epoch",
                                 save_strategy="no", logging_steps=50, seed=42, report_to=[], use_cpu=True)
        trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                          data_collator=DataCollatorWithPadding(tok), compute_metrics=metrics)
        res = trainer.train().metrics
        ev = trainer.evaluate()
    res.update({k: v for k, v in ev.items() if k.startswith("eval_")})
    return res


def peft_gpt2(a):
    import peft
    import torch
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForLanguageModeling, Trainer,
                              TrainingArguments, set_seed)

    torch.set_num_threads(a.threads)
    set_seed(42)
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    tok.pad_token = tok.eos_token
    with open(a.data) as f:
        texts = [json.loads(l)["text"] for l in f]
    train = [tok(t, truncation=True, max_length=128) for t in texts]
    model = AutoModelForCausalLM.from_pretrained(a.model_dir)
    model = peft.get_peft_model(model, peft.LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, lora_dropout=0.05,
                                                       target_modules=["c_attn", "c_proj"]))
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, learning_rate=5e-4, per_device_train_batch_size=8, max_steps=a.steps,
                                 save_strategy="no", logging_steps=10, seed=42, report_to=[], use_cpu=True)
        trainer = Trainer(model=model, args=args, train_dataset=train,
                          data_collator=DataCollatorForLanguageModeling(tok, mlm=False))
        return trainer.train().metrics


def peft_switch(a):
    import peft
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(a.model_dir).eval()
    cfg = lambda: peft.LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, target_modules=["c_attn", "c_proj"],
                                  init_lora_weights=False)
    model = peft.get_peft_model(model, cfg(), adapter_name="a")
    model.add_adapter("b", cfg())
    switch = []
    for i in range(2000):
        t = time.perf_counter()
        model.set_adapter("b" if i % 2 == 0 else "a")
        switch.append((time.perf_counter() - t) * 1e6)
    ids = torch.tensor([[(i * 7919) % 50000 for i in range(r * 128, (r + 1) * 128)] for r in range(8)])

    def timed_forward():
        v = []
        for _ in range(5):
            t = time.perf_counter()
            with torch.no_grad():
                model(input_ids=ids)
            v.append((time.perf_counter() - t) * 1e3)
        return sorted(v)[len(v) // 2]

    unmerged = timed_forward()
    model.merge_adapter()
    merged = timed_forward()
    model.unmerge_adapter()
    with model.disable_adapter():
        base = timed_forward()
    return {"batch": 8, "seq": 128, "set_adapter_us_median": sorted(switch)[len(switch) // 2],
            "forward_ms_unmerged": unmerged, "forward_ms_merged": merged, "forward_ms_base": base}


# ---------------------------------------------------------------- the driver

def gpt2_small(tmp):
    """A GPT-2-small-sized checkpoint with random weights (seed 0) and GPT-2's tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    model_dir = os.path.join(tmp, "gpt2-small-random")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(model_dir)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(ROOT, "tests/fixtures/models/tiny-gpt2", f), model_dir)
    return model_dir


def run_ft(a, run_file, sets, env):
    with tempfile.TemporaryDirectory() as out:
        cmd = [a.ft, "train", "--config", run_file, "--set", f"training.output_dir=\"{out}\""]
        for s in sets:
            cmd += ["--set", s]
        _, rss, wall = timed(cmd, env)
        with open(os.path.join(out, "all_results.json")) as f:
            res = json.load(f)
    return res, rss, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("task", choices=["agnews", "gpt2", "switch"])
    ap.add_argument("--ft")
    ap.add_argument("--ft-example", help="the peft_switch example binary (task switch)")
    ap.add_argument("--minilm")
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.shared = os.path.abspath(a.shared)
    if a.inner:
        print(json.dumps({"agnews": peft_agnews, "gpt2": peft_gpt2, "switch": peft_switch}[a.task](a)))
        return
    env = dict(os.environ, HF_HUB_OFFLINE="1", FT_SHARED=a.shared, RAYON_NUM_THREADS=str(a.threads))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    with tempfile.TemporaryDirectory() as tmp:
        inner = [sys.executable, os.path.abspath(__file__), a.task, "--inner", "--threads", str(a.threads),
                 "--shared", a.shared]
        if a.task == "switch":
            model_dir = gpt2_small(tmp)
            ft_out, ft_rss, _ = timed([a.ft_example, model_dir], env)
            py_out, py_rss, _ = timed(inner + ["--model-dir", model_dir], env)
            ft_line = json.loads(ft_out.strip().splitlines()[-1])
            py_line = json.loads(py_out.strip().splitlines()[-1])
            print(json.dumps({"framework": "ft", "cpu": cpu, "threads": a.threads, **ft_line}))
            print(json.dumps({"framework": "peft+transformers", "cpu": cpu, "threads": a.threads, **py_line}))
            print(json.dumps({"comparison": "switch", "cpu": cpu,
                              "set_adapter_ratio_peft_over_ft": py_line["set_adapter_us_median"] / ft_line["set_adapter_us_median"],
                              "unmerged_forward_ratio_peft_over_ft": py_line["forward_ms_unmerged"] / ft_line["forward_ms_unmerged"],
                              "merged_forward_ratio_peft_over_ft": py_line["forward_ms_merged"] / ft_line["forward_ms_merged"]}))
            return
        if a.task == "agnews":
            ft_res, ft_rss, ft_wall = run_ft(a, os.path.join(ROOT, "benches/runs/agnews_minilm_lora.toml"),
                                             [f"model.name=\"{a.minilm}\""], env)
            out, py_rss, py_wall = timed(inner + ["--minilm", a.minilm], env)
            key = "eval_accuracy"
        else:
            model_dir = gpt2_small(tmp)
            rows = ag_rows(a.shared)
            data = os.path.join(tmp, "text.jsonl")
            with open(data, "w") as f:
                for i in range(0, 4 * 8 * a.steps, 4):
                    f.write(json.dumps({"text": " ".join(r["text"] for r in rows[i:i + 4])}) + "\n")
            run_file = os.path.join(tmp, "run.toml")
            with open(run_file, "w") as f:
                f.write(f"""[model]
name = "{model_dir}"
task = "causal-lm"
[data]
source = "{data}"
train_split = "train"
text_column = "text"
max_length = 128
[method]
kind = "lora"
r = 8
lora_alpha = 16
lora_dropout = 0.05
target_modules = ["c_attn", "c_proj"]
[training]
output_dir = "unused"
learning_rate = 5e-4
per_device_train_batch_size = 8
max_steps = {a.steps}
eval_strategy = "no"
save_strategy = "no"
logging_steps = 10
seed = 42
""")
            ft_res, ft_rss, ft_wall = run_ft(a, run_file, [], env)
            out, py_rss, py_wall = timed(inner + ["--model-dir", model_dir, "--data", data, "--steps", str(a.steps)], env)
            key = None
    py_res = json.loads(out.strip().splitlines()[-1])
    ft_line = {"framework": "ft", "task": a.task, "cpu": cpu, "threads": a.threads, "peak_rss_mib": round(ft_rss),
               "wall_s": round(ft_wall, 1), **ft_res}
    py_line = {"framework": "peft+transformers", "task": a.task, "cpu": cpu, "threads": a.threads,
               "peak_rss_mib": round(py_rss), "wall_s": round(py_wall, 1), **py_res}
    print(json.dumps(ft_line))
    print(json.dumps(py_line))
    cmp = {"comparison": a.task, "cpu": cpu,
           "samples_per_second_ratio_ft_over_peft": ft_res["train_samples_per_second"] / py_res["train_samples_per_second"],
           "peak_rss_mib_ft": round(ft_rss), "peak_rss_mib_peft": round(py_rss)}
    if key:
        cmp.update({key + "_ft": ft_res.get(key), key + "_peft": py_res.get(key),
                    "difference_points": 100 * (ft_res.get(key, float("nan")) - py_res.get(key, float("nan")))})
    print(json.dumps(cmp))


if __name__ == "__main__":
    main()
