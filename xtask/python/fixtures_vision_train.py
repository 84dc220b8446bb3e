"""Fixtures for ft's image-classification training (`tests/vision_train.rs`): a tiny image
folder, a narrow random torchvision ResNet18 stored as a `.pth` with a timm `config.json`, and
the losses of PyTorch's first 20 training steps for §10's frozen backbone and exercise 7's
partial unfreeze — the same initial weights, images, transform (no augmentation), batch order
(NumPy's `default_rng(seed + epoch).permutation`, as ft's Trainer), AdamW, linear schedule and
gradient clipping at 1.0 as transformers' defaults.

    python fixtures_vision_train.py --out tests/fixtures          # writes the fixtures
    python fixtures_vision_train.py --check DIR                   # loads ft's saved output DIR in
                                                                  # torchvision and timm

Written:
    vision-train/images/{train,test}/<class>/<i>.png   3 classes, 80 train / 24 test, 32x32 RGB
    vision-train/model/config.json + resnet.pth         narrow resnet18 (8,16,32,64), fc of 3 classes
    vision-train/expected.json                          losses per step for each method
    vision-train/parquet/data/{train,test}-00000-of-00001.parquet
                                                        the same images as a Hub image dataset: an
                                                        `image` column ({bytes, path}) and a
                                                        ClassLabel column `labels`, as
                                                        `datasets.push_to_hub` writes them
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from fixtures_resnet import NarrowResNet, randomize_bn, timm_config  # noqa: E402

CLASSES = ["circles", "noise", "stripes"]  # sorted, as ImageFolder orders the class folders
SIZE, RESIZE, CROP_PCT = 24, 27, 0.875  # floor(24 / 0.875) = 27
CHANNELS, STEM = (8, 16, 32, 64), 8
SEED, BATCH, EPOCHS, LR, BACKBONE_LR = 42, 8, 2, 1e-3, 1e-4


def make_image(cls, rng):
    """A 32x32 RGB picture whose class is visible: rings, stripes or noise, random colours."""
    y, x = np.mgrid[0:32, 0:32].astype(np.float32)
    colour = rng.uniform(40, 255, size=3)
    if cls == 0:
        cx, cy = rng.uniform(8, 24, size=2)
        v = (np.sin(np.hypot(x - cx, y - cy) * rng.uniform(0.6, 1.2)) + 1) / 2
    elif cls == 1:
        v = (np.sin((x * np.cos(a := rng.uniform(0, np.pi)) + y * np.sin(a)) * rng.uniform(0.5, 1.5)) + 1) / 2
    else:
        v = rng.uniform(0, 1, size=(32, 32))
    img = (v[..., None] * colour + rng.normal(0, 8, size=(32, 32, 3))).clip(0, 255).astype(np.uint8)
    return Image.fromarray(img, "RGB")


def write_images(root, rng):
    files = {"train": [], "test": []}
    for split, per_class in (("train", 27), ("test", 8)):
        for c, name in enumerate(CLASSES):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class if not (split == "train" and name == "noise") else 26):
                p = d / f"{i}.png"
                make_image({"circles": 0, "stripes": 1, "noise": 2}[name], rng).save(p, optimize=True)
    return files


def write_parquet(root):
    """The image folder as `datasets` stores an image dataset on the Hub (bytes inline)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    features = {"image": {"_type": "Image"}, "labels": {"names": CLASSES, "_type": "ClassLabel"}}
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    for split in ("train", "test"):
        items, _ = load_folder(root / "images", split)
        images = [{"bytes": p.read_bytes(), "path": p.name} for p, _ in items]
        table = pa.table({"image": images, "labels": pa.array([c for _, c in items], pa.int64())})
        table = table.replace_schema_metadata(meta)
        out = root / "parquet" / "data" / f"{split}-00000-of-00001.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out)


def load_folder(root, split):
    """ImageFolder's order: classes sorted, files sorted by path (as ft lists them)."""
    classes = sorted(p.name for p in (root / split).iterdir())
    items = []
    for c, name in enumerate(classes):
        for p in sorted((root / split / name).iterdir(), key=lambda p: str(p)):
            items.append((p, c))
    items.sort(key=lambda t: str(t[0].relative_to(root / split)))
    return items, classes


def transform():
    return T.Compose([T.Resize(RESIZE), T.CenterCrop(SIZE), T.ToTensor(),
                      T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


def train_losses(model_dir, images, method):
    model = NarrowResNet([2, 2, 2, 2], CHANNELS, STEM, len(CLASSES))
    model.load_state_dict(torch.load(model_dir / "resnet.pth", weights_only=True))
    items, _ = load_folder(images, "train")
    tf = transform()
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p, _ in items])
    y = torch.tensor([c for _, c in items])
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("fc.") or (method == "unfreeze" and name.split(".")[0] in ("layer3", "layer4")))
    model.eval()
    if method == "unfreeze":
        model.layer3.train()
        model.layer4.train()
        groups = [{"params": [p for n, p in model.named_parameters() if n.startswith(("layer3.", "layer4."))], "lr": BACKBONE_LR},
                  {"params": list(model.fc.parameters()), "lr": LR}]
    else:
        groups = [{"params": list(model.fc.parameters()), "lr": LR}]
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    n = len(items)
    steps_per_epoch = n // BATCH + (n % BATCH > 0)
    total = steps_per_epoch * EPOCHS
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (total - s) / max(1, total)))
    losses = []
    trainable = [p for g in groups for p in g["params"]]
    for epoch in range(EPOCHS):
        order = np.random.default_rng(SEED + epoch).permutation(n)
        for b in range(steps_per_epoch):
            idx = torch.tensor(order[b * BATCH:(b + 1) * BATCH])
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
    return losses, total


def write(out):
    root = out / "vision-train"
    rng = np.random.default_rng(7)
    write_images(root / "images", rng)
    gen = torch.Generator().manual_seed(11)
    torch.manual_seed(11)
    model = NarrowResNet([2, 2, 2, 2], CHANNELS, STEM, len(CLASSES))
    randomize_bn(model, gen)
    (root / "model").mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), root / "model" / "resnet.pth")
    cfg = timm_config("resnet18", len(CLASSES), CLASSES, CHANNELS, STEM, SIZE, "bilinear", CROP_PCT, "ft_random")
    (root / "model" / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    expected = {"versions": {"torch": torch.__version__}, "seed": SEED, "batch_size": BATCH, "epochs": EPOCHS,
                "learning_rate": LR, "backbone_learning_rate": BACKBONE_LR}
    for method in ("frozen", "unfreeze"):
        losses, total = train_losses(root / "model", root / "images", method)
        expected[method] = losses
        print(f"{method}: {total} steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    (root / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    write_parquet(root)


def check(out_dir):
    """ft's saved model in torchvision (strict load_state_dict) and timm (pretrained_cfg_overlay)."""
    from safetensors.torch import load_file
    cfg = json.loads((out_dir / "config.json").read_text())
    state = load_file(out_dir / "model.safetensors")
    channels = tuple(cfg.get("model_args", {}).get("channels", (64, 128, 256, 512)))
    stem = cfg.get("model_args", {}).get("stem_width", 64)
    model = NarrowResNet([2, 2, 2, 2], channels, stem, cfg["num_classes"])
    missing = model.load_state_dict({k: v for k, v in state.items()}, strict=False)
    assert not missing.unexpected_keys, missing.unexpected_keys
    assert all(k.endswith("num_batches_tracked") for k in missing.missing_keys), missing.missing_keys
    print(f"torchvision: loaded {len(state)} tensors, {cfg['num_classes']} classes {cfg.get('label_names')}")
    if channels != (64, 128, 256, 512) or stem != 64:
        print("timm: skipped (timm's resnet18 has no narrow stem: check a full-width model)")
        return
    import timm
    m = timm.create_model(cfg["architecture"], pretrained=True, num_classes=cfg["num_classes"],
                          pretrained_cfg_overlay=dict(file=str(out_dir / "model.safetensors"), num_classes=cfg["num_classes"]))
    x = torch.randn(2, 3, cfg["pretrained_cfg"]["input_size"][1], cfg["pretrained_cfg"]["input_size"][2])
    model.eval()
    m.eval()
    diff = (m(x) - model(x)).abs().max().item()
    print(f"timm: create_model with pretrained_cfg_overlay loaded it; max |logit difference| vs torchvision {diff:.2e}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--check", type=Path)
    ap.add_argument("--parquet-only", action="store_true", help="only rewrite the Parquet copy of the images")
    a = ap.parse_args()
    if a.out and a.parquet_only:
        write_parquet(a.out / "vision-train")
        sys.exit(0)
    if a.out:
        write(a.out)
    if a.check:
        check(a.check)
