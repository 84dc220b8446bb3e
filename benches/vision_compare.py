"""ResNet18 image-classification training (§10 of the notebook: frozen backbone + new head;
exercise 7: layer3 and layer4 unfrozen at a lower learning rate), ft against a plain PyTorch /
torchvision training loop, side by side on this machine.

usage: python benches/vision_compare.py [--images DIR] [--train 160] [--eval 60] [--size 64]
                                        [--epochs 1] [--batch 16] [--ft BIN] [--out /tmp/vision-compare]
                                        [--methods frozen,unfreeze] [--threads 2] [--repeat 1]

e.g. a quick check:  ~/.cache/ft-venv-models/bin/python benches/vision_compare.py --train 32 --eval 16 --size 32

- Images: an image folder DIR/{train,test}/<class>/*.png (default ../shared/data/fashion-mnist/png
  next to the repository). Both sides take the same rows as ft's `[data] shuffle_seed = 1,
  train_select = N, eval_select = M` (datasets' shuffle(seed=1).select(range(N))): each split's
  images sorted by relative path, label = index of the class folder among the sorted class names,
  rows `np.random.default_rng(1).permutation(len)[:N]`.
- Weights: torchvision `resnet18(num_classes=K)` with torch seed 0 — RANDOM weights (no ImageNet
  weights can be downloaded here), saved as OUT/init/resnet18.pth with a timm-layout config.json
  whose label_names are the data's classes, so ft keeps that fc head and both sides start from the
  same weights. Accuracies therefore say little; the comparison is of speed, memory and whether
  the two trainings agree (per-step losses).
- Transforms (no augmentation, `augment = false`): PIL `.convert("RGB")`, Resize(floor(S/0.875))
  bilinear, CenterCrop(S), ToTensor, Normalize(ImageNet mean/std).
- Training: batch order of epoch e = `np.random.default_rng(42 + e).permutation(N)` in chunks of
  B (transformers' seed 42, the last batch kept); AdamW(betas (0.9, 0.999), eps 1e-8, weight decay
  0), linear decay to 0 over all steps, no warmup; gradient norm clipped to 1.0; mean
  cross-entropy.
  * frozen: only fc trains (lr 1e-3), the whole model in eval mode (BatchNorm uses, and never
    updates, its running statistics).
  * unfreeze: layer3, layer4 (lr 1e-4, BatchNorm in training mode) and fc (lr 1e-3) train.
- PyTorch side: a notebook-style loop that runs the whole network every step, on --threads
  threads (torch.set_num_threads). The images are decoded and transformed once into a tensor
  BEFORE the timed loop, so its images/s exclude data preparation (reported apart). ft's
  train_runtime includes its image decoding/transforms (data_wait_runtime: the part not hidden
  behind the model) and, with the frozen stages cached, the one-off pass over them
  (feature_extraction_runtime). ft runs with RAYON_NUM_THREADS unset (its default thread count).

Each side runs as its own process under GNU time (peak RSS), sequentially, never overlapping.
With --repeat N, each method runs N pairs of the two sides in ABBA order (ft first in even pairs,
PyTorch first in odd ones, so a drifting machine speed cancels) and reports the median of the
pairs' ratios with their range; the table shows the first pair.
Prints the CPU, torch's version, one JSON line per run, and a markdown table; writes
OUT/results.json. Needs torch, torchvision, numpy, PIL (the models venv).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff", "ppm")  # ft-data's list
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CROP_PCT = 0.875
INIT_SEED = 0
SHUFFLE_SEED = 1  # [data] shuffle_seed
TRAINER_SEED = 42  # transformers' default seed: the batch order
HEAD_LR, BACKBONE_LR = 1e-3, 1e-4
LOSS_STEPS = 20


# ---------------------------------------------------------------- rows, as ft (and datasets) pick them

def list_images(split_dir):
    """Every image under split_dir as '/'-separated relative paths, sorted (ft's list_images)."""
    out = []
    for d, _, files in os.walk(split_dir):
        for f in files:
            if f.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS and "." in f:
                out.append(os.path.relpath(os.path.join(d, f), split_dir).replace(os.sep, "/"))
    return sorted(out)


def class_names(images):
    """Sorted class folder names over every split folder of the image folder."""
    names = set()
    for split in sorted(os.listdir(images)):
        d = os.path.join(images, split)
        if os.path.isdir(d):
            names.update(p.rsplit("/", 2)[-2] for p in list_images(d) if "/" in p)
    return sorted(names)


def select_rows(images, split, n, classes):
    """(path, label) of the split's rows shuffle(seed=1).select(range(n))."""
    import numpy as np

    d = os.path.join(images, split)
    files = list_images(d)
    if n > len(files):
        sys.exit(f"split '{split}' has {len(files)} images; cannot select {n}")
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(files))
    index = {c: i for i, c in enumerate(classes)}
    return [(os.path.join(d, files[i]), index[files[i].rsplit("/", 2)[-2]]) for i in order[:n]]


# ---------------------------------------------------------------- the shared initial weights

def write_init(a, classes):
    import torch
    import torchvision

    init = os.path.join(a.out, "init")
    os.makedirs(init, exist_ok=True)
    torch.manual_seed(INIT_SEED)
    model = torchvision.models.resnet18(num_classes=len(classes))
    torch.save(model.state_dict(), os.path.join(init, "resnet18.pth"))
    config = {"architecture": "resnet18", "num_classes": len(classes), "num_features": 512, "global_pool": "avg",
              "label_names": classes,
              "pretrained_cfg": {"input_size": [3, a.size, a.size], "interpolation": "bilinear", "crop_pct": CROP_PCT,
                                 "crop_mode": "center", "mean": MEAN, "std": STD}}
    with open(os.path.join(init, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return init


# ---------------------------------------------------------------- the PyTorch side (a subprocess)

def torch_side(a):
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torchvision
    from PIL import Image
    from torchvision import transforms as T

    torch.set_num_threads(a.threads)
    classes = class_names(a.images)
    tf = T.Compose([T.Resize(int(math.floor(a.size / CROP_PCT)), interpolation=T.InterpolationMode.BILINEAR),
                    T.CenterCrop(a.size), T.ToTensor(), T.Normalize(MEAN, STD)])

    def prepare(rows):
        x = torch.stack([tf(Image.open(p).convert("RGB")) for p, _ in rows])
        return x, torch.tensor([l for _, l in rows], dtype=torch.long)

    t0 = time.perf_counter()
    x_train, y_train = prepare(select_rows(a.images, "train", a.train, classes))
    x_eval, y_eval = prepare(select_rows(a.images, "test", a.eval, classes))
    prep_s = time.perf_counter() - t0

    model = torchvision.models.resnet18(num_classes=len(classes))
    model.load_state_dict(torch.load(os.path.join(a.out, "init", "resnet18.pth"), weights_only=True))
    for p in model.parameters():
        p.requires_grad_(False)
    head = list(model.fc.parameters())
    backbone = [p for m in (model.layer3, model.layer4) for p in m.parameters()] if a.method == "unfreeze" else []
    for p in head + backbone:
        p.requires_grad_(True)
    groups = ([{"params": backbone, "lr": BACKBONE_LR}] if backbone else []) + [{"params": head, "lr": HEAD_LR}]
    trainable = backbone + head
    opt = torch.optim.AdamW(groups, lr=HEAD_LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    n, bs = a.train, a.batch
    total = math.ceil(n / bs) * a.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (total - s) / max(1, total)))

    def set_modes():
        model.eval()  # frozen BatchNorm: running statistics, never updated
        if a.method == "unfreeze":
            model.layer3.train()
            model.layer4.train()

    losses = []
    t0 = time.perf_counter()
    for epoch in range(a.epochs):
        order = np.random.default_rng(TRAINER_SEED + epoch).permutation(n)
        for s in range(0, n, bs):
            idx = torch.from_numpy(order[s:s + bs])
            set_modes()
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
    train_s = time.perf_counter() - t0

    model.eval()
    t0 = time.perf_counter()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(y_eval), 32):
            correct += int((model(x_eval[s:s + 32]).argmax(-1) == y_eval[s:s + 32]).sum())
    eval_s = time.perf_counter() - t0
    return {"train_runtime": train_s, "train_samples_per_second": n * a.epochs / train_s, "eval_runtime": eval_s,
            "eval_accuracy": correct / max(1, len(y_eval)), "data_prep_runtime": prep_s, "steps": len(losses),
            "losses": losses, "trainable_params": sum(p.numel() for p in trainable), "threads": a.threads,
            "torch": torch.__version__, "torchvision": torchvision.__version__}


# ---------------------------------------------------------------- the ft side

def run_file(a, method, init):
    out = os.path.join(a.out, f"ft-{method}")
    unfreeze = (f'unfreeze = ["layer3", "layer4"]\nbackbone_learning_rate = {BACKBONE_LR}\n'
                if method == "unfreeze" else "")
    text = f"""[model]
name = {json.dumps(init)}
task = "image-classification"

[data]
source = {json.dumps(a.images)}
train_split = "train"
eval_split = "test"
shuffle_seed = {SHUFFLE_SEED}
train_select = {a.train}
eval_select = {a.eval}
image_size = {a.size}
augment = false

[method]
kind = "frozen"
{unfreeze}
[training]
output_dir = {json.dumps(out)}
learning_rate = {HEAD_LR}
per_device_train_batch_size = {a.batch}
per_device_eval_batch_size = 32
num_train_epochs = {a.epochs}
eval_strategy = "no"  # the final evaluation happens anyway (eval_split is set)
save_strategy = "no"
logging_steps = 1
"""
    path = os.path.join(a.out, f"ft-{method}.toml")
    with open(path, "w") as f:
        f.write(text)
    return path, out


def timed(cmd, env, log):
    """Runs cmd under GNU time, its output to `log`; returns (stdout, peak RSS in MiB, wall seconds)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf, open(log, "w") as err:
        start = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", tf.name] + cmd, cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=err, text=True)
        wall = time.perf_counter() - start
        rss = tf.read().strip().splitlines()
    with open(log, "a") as f:
        f.write(p.stdout)
    if p.returncode != 0:
        with open(log) as f:
            tail = f.read()[-4000:]
        sys.exit(f"{' '.join(cmd)} failed with {p.returncode}; the end of {log}:\n{tail}")
    return p.stdout, int(rss[-1]) / 1024, wall


def ft_side(a, method, init):
    config, out = run_file(a, method, init)
    env = {k: v for k, v in os.environ.items() if k != "RAYON_NUM_THREADS"}
    env["HF_HUB_OFFLINE"] = "1"
    _, rss, wall = timed([a.ft, "train", "--config", config], env, os.path.join(a.out, f"ft-{method}.log"))
    with open(os.path.join(out, "all_results.json")) as f:
        res = json.load(f)
    with open(os.path.join(out, "trainer_state.json")) as f:
        state = json.load(f)
    res["losses"] = [e["loss"] for e in state["log_history"] if "loss" in e]
    res.update(peak_rss_mib=rss, wall_s=wall, run_file=config)
    return res


def torch_subprocess(a, method):
    cmd = [sys.executable, os.path.abspath(__file__), "--inner", method, "--images", a.images, "--train", str(a.train),
           "--eval", str(a.eval), "--size", str(a.size), "--epochs", str(a.epochs), "--batch", str(a.batch),
           "--out", a.out, "--threads", str(a.threads)]
    out, rss, wall = timed(cmd, dict(os.environ), os.path.join(a.out, f"torch-{method}.log"))
    res = json.loads(out.strip().splitlines()[-1])
    res.update(peak_rss_mib=rss, wall_s=wall)
    return res


# ---------------------------------------------------------------- main

def fmt(v, spec):
    return "—" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default=os.path.join(ROOT, "..", "shared", "data", "fashion-mnist", "png"))
    ap.add_argument("--train", type=int, default=160)
    ap.add_argument("--eval", type=int, default=60)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ft", default=os.path.join(os.environ.get("CARGO_TARGET_DIR")
                                                 or os.path.expanduser("~/.cache/ft-target"), "release", "ft"))
    ap.add_argument("--out", default="/tmp/vision-compare")
    ap.add_argument("--methods", default="frozen,unfreeze")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on the PyTorch side")
    ap.add_argument("--repeat", type=int, default=1,
                    help="pairs of runs per method, in ABBA order; the median ratio is reported")
    ap.add_argument("--inner", choices=["frozen", "unfreeze"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.images, a.out, a.ft = os.path.abspath(a.images), os.path.abspath(a.out), os.path.abspath(a.ft)
    if a.inner:
        a.method = a.inner
        print(json.dumps(torch_side(a)))
        return
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    for m in methods:
        if m not in ("frozen", "unfreeze"):
            sys.exit(f"--methods: unknown method '{m}' (frozen, unfreeze)")
    if not os.path.isfile(a.ft):
        sys.exit(f"no ft binary at {a.ft} (--ft)")
    import torch

    os.makedirs(a.out, exist_ok=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    classes = class_names(a.images)
    init = write_init(a, classes)
    print(f"# ResNet18 image classification: ft vs plain PyTorch loop\n"
          f"cpu: {cpu} ({os.cpu_count()} logical cores); torch {torch.__version__}; PyTorch threads {a.threads}; "
          f"ft threads: its default (RAYON_NUM_THREADS unset)\n"
          f"images: {a.images} ({len(classes)} classes), train {a.train}, eval {a.eval}, {a.size}px, "
          f"{a.epochs} epoch(s), batch {a.batch}\n"
          f"weights: RANDOM torchvision resnet18 (torch seed {INIT_SEED}; no ImageNet weights obtainable here), "
          f"the same on both sides ({init}); accuracies are not meaningful, speed/memory/loss agreement are",
          flush=True)

    results = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads_torch": a.threads,
               "images": a.images, "classes": classes, "train": a.train, "eval": a.eval, "size": a.size,
               "epochs": a.epochs, "batch": a.batch, "init_seed": INIT_SEED, "methods": {}}
    if a.repeat < 1:
        sys.exit("--repeat: at least 1")
    for m in methods:
        pairs = []
        for i in range(a.repeat):
            order = ["ft", "pytorch"] if i % 2 == 0 else ["pytorch", "ft"]
            pair = {}
            for side in order:
                pair[side] = ft_side(a, m, init) if side == "ft" else torch_subprocess(a, m)
                print(json.dumps({"framework": side, "method": m, "pair": i,
                                  **{k: v for k, v in pair[side].items() if k != "losses"}}), flush=True)
            pairs.append(pair)
        ft_res, py_res = pairs[0]["ft"], pairs[0]["pytorch"]
        k = min(LOSS_STEPS, len(ft_res["losses"]), len(py_res["losses"]))
        diffs = [abs(f - p) for f, p in zip(ft_res["losses"][:k], py_res["losses"][:k])]
        cmp = {"images_per_s_ratio_ft_over_torch": ft_res["train_samples_per_second"] / py_res["train_samples_per_second"],
               "loss_steps_compared": k, "max_abs_loss_diff": max(diffs) if diffs else None,
               "steps_ft": len(ft_res["losses"]), "steps_torch": len(py_res["losses"]),
               "accuracy_diff_points": 100 * (ft_res.get("eval_accuracy", float("nan")) - py_res["eval_accuracy"])}
        if a.repeat > 1:
            ratios = sorted(p["ft"]["train_samples_per_second"] / p["pytorch"]["train_samples_per_second"]
                            for p in pairs)
            mid = len(ratios) // 2
            median = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
            cmp["repeats"] = [{"ft_images_per_s": p["ft"]["train_samples_per_second"],
                               "pytorch_images_per_s": p["pytorch"]["train_samples_per_second"]} for p in pairs]
            cmp["median_ratio_ft_over_torch"] = median
            cmp["ratio_range"] = [ratios[0], ratios[-1]]
        results["methods"][m] = {"ft": ft_res, "pytorch": py_res, "comparison": cmp}
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)

    print("\n| method | side | eval acc | train s | images/s | ft/PyTorch | one-off prep s | wall s | peak RSS MiB "
          "| max abs loss diff (steps) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m, r in results["methods"].items():
        f_, p_, c = r["ft"], r["pytorch"], r["comparison"]
        loss = f"{fmt(c['max_abs_loss_diff'], '.2e')} ({c['loss_steps_compared']})"
        print(f"| {m} | ft | {fmt(f_.get('eval_accuracy'), '.4f')} | {f_['train_runtime']:.2f} "
              f"| {f_['train_samples_per_second']:.1f} | {c['images_per_s_ratio_ft_over_torch']:.2f}x "
              f"| {fmt(f_.get('feature_extraction_runtime'), '.2f')} (features, in train s) | {f_['wall_s']:.1f} "
              f"| {f_['peak_rss_mib']:.0f} | {loss} |")
        print(f"| {m} | PyTorch | {p_['eval_accuracy']:.4f} | {p_['train_runtime']:.2f} "
              f"| {p_['train_samples_per_second']:.1f} | 1.00x | {p_['data_prep_runtime']:.2f} (decode+transform, "
              f"not in train s) | {p_['wall_s']:.1f} | {p_['peak_rss_mib']:.0f} | |")
    for m, r in results["methods"].items():
        c = r["comparison"]
        if "repeats" in c:
            pairs = ", ".join(f"{p['ft_images_per_s']:.1f}/{p['pytorch_images_per_s']:.1f}" for p in c["repeats"])
            print(f"{m}: {len(c['repeats'])} pairs (ABBA), ft/PyTorch images/s {pairs}; median ratio "
                  f"{c['median_ratio_ft_over_torch']:.2f}x (range {c['ratio_range'][0]:.2f}-{c['ratio_range'][1]:.2f}x)")
    print(f"""
Notes:
- images/s = train images x epochs / train seconds. PyTorch: the timed loop only; the images were
  decoded and transformed into one tensor beforehand ("one-off prep", excluded). ft: its
  train_runtime, which includes decoding/transforming the images (data_wait_runtime is the part
  the loop waited for) and, where the frozen stages are cached, the one-off pass computing them.
- ft with a frozen backbone and no augmentation runs the frozen part once per image and reuses
  its output (frozen: the pooled features; unfreeze: the output of layer2) —
  feature_extraction_runtime, train and eval images together, the train part inside
  train_runtime. The plain PyTorch loop recomputes the frozen part every step, as a notebook
  would. Both numbers are honest: ft's is what its method costs, PyTorch's is the cost of the
  straightforward loop (caching features by hand would make it faster).
- Loss difference: ft logs each step's loss rounded to 4 decimals, so differences up to 5e-5
  are rounding alone.
- wall s: the whole process (start, loading, data, training, evaluation); peak RSS of each
  process from GNU time. Results: {os.path.join(a.out, 'results.json')}""")


if __name__ == "__main__":
    main()
