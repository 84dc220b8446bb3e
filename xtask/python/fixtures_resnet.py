#!/usr/bin/env python3
"""Generate ResNet / torchvision preprocessing parity fixtures for the `ft` Rust crates.

Builds small random-weight torchvision ResNets (narrow versions of resnet18 / resnet34 with
torchvision's own BasicBlock and key names; BatchNorm affine parameters and running statistics
randomised too), saved in the Hub's timm layout (`config.json` + `model.safetensors`) and as a
PyTorch `.pth` state_dict, a set of generated test images (PNG RGB / grayscale / RGBA / palette
/ 16-bit, JPEG), and what torchvision + PIL compute on them:

- the 8-bit image after `Resize` + `CenterCrop` (saved losslessly as PNG), the exact input of
  `pil_to_tensor` — the script checks that torchvision's normalised tensor equals
  `(crop / 255 - mean) / std` computed in float32, so the crop *is* the preprocessed tensor;
- PIL's decoded pixels of the JPEG files (to measure decoder differences);
- the models' logits on torchvision's preprocessed tensors, and on a random input batch.

Usage:
    python fixtures_resnet.py --out tests/fixtures            # committed fixtures (small)
    python fixtures_resnet.py --full DIR                      # full-size resnet18, on demand

Output (under --out):
    images/*.png, images/*.jpg                test images
    inputs/images.jsonl                        `ft predict` input referencing them
    models/tiny-resnet/                        config.json + model.safetensors (resnet18, narrow)
    models/tiny-resnet-pth/                    config.json + resnet.pth (resnet34, narrower, bicubic)
    parity/resnet/<model>/<image file>.png     torchvision's resized + cropped image (e.g. gray.jpg.png)
    parity/resnet/pil/<image file>.png         PIL's decoding of each JPEG
    parity/tiny-resnet.safetensors             logits, random input batch and its logits
    parity/tiny-resnet.json                    images, modes, sizes, labels, top-1, versions

With --full DIR: DIR/resnet18/ (config.json + model.safetensors), DIR/resnet18-pth/
(config.json + resnet18.pth), DIR/expected.safetensors (logits of both on the test images, read
from --out's images). Everything is seeded; a rerun gives the same files.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import PIL
import safetensors
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

SEED = 20240611
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
FLOWERS = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
LAYERS = {"resnet18": [2, 2, 2, 2], "resnet34": [3, 4, 6, 3]}


class NarrowResNet(ResNet):
    """torchvision's ResNet with configurable stage widths and stem width (timm's `channels` /
    `stem_width`); same modules, same state_dict keys. With the default widths it is exactly
    torchvision's resnet18 / resnet34."""

    def __init__(self, layers, channels=(64, 128, 256, 512), stem_width=64, num_classes=1000):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = stem_width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, channels[0], layers[0])
        self.layer2 = self._make_layer(BasicBlock, channels[1], layers[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, channels[2], layers[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, channels[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels[3] * BasicBlock.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def randomize_bn(model: nn.Module, gen: torch.Generator) -> None:
    """Random BatchNorm affine parameters and running statistics (and a nonzero step count)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.3 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
                m.num_batches_tracked.fill_(1234)


def build(arch, channels, stem, num_classes, gen, fc_scale=1.0):
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    model = NarrowResNet(LAYERS[arch], channels, stem, num_classes)
    randomize_bn(model, gen)
    with torch.no_grad():
        # Random BatchNorm statistics grow activations with depth: keep logits O(1-10) so that
        # an absolute tolerance of 1e-4 means about the same as for the text models.
        model.fc.weight.mul_(fc_scale)
        model.fc.bias.copy_(0.1 * torch.randn(num_classes, generator=gen))
    return model.eval()


def timm_config(arch, num_classes, labels, channels, stem, input_size, interpolation, crop_pct, tag):
    cfg = {
        "architecture": arch,
        "num_classes": num_classes,
        "num_features": channels[3],
        "global_pool": "avg",
    }
    if labels is not None:
        cfg["label_names"] = labels
    cfg["pretrained_cfg"] = {
        "tag": tag,
        "custom_load": False,
        "input_size": [3, input_size, input_size],
        "fixed_input_size": False,
        "interpolation": interpolation,
        "crop_pct": crop_pct,
        "crop_mode": "center",
        "mean": MEAN,
        "std": STD,
        "num_classes": num_classes,
        "pool_size": [input_size // 32, input_size // 32],
        "first_conv": "conv1",
        "classifier": "fc",
    }
    if list(channels) != [64, 128, 256, 512] or stem != 64:
        cfg["model_args"] = {"channels": list(channels), "stem_width": stem}
    return cfg


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


# --------------------------------------------------------------------------------------
# Test images
# --------------------------------------------------------------------------------------


def scene(h: int, w: int, rng: np.random.Generator, noise: float = 6.0) -> np.ndarray:
    """A smooth synthetic 'photo' with sharp shapes (to stress resampling) and a little noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 90 * np.sin(x / w * 5.1 + 0.3) * np.cos(y / h * 3.7)
    g = 110 + 100 * np.cos((x + y) / (w + h) * 6.0)
    b = 70 + 160 * (y / h)
    img = np.stack([r, g, b], axis=-1)
    # A disc and a bar with hard edges.
    cy, cx, rad = h * 0.55, w * 0.4, min(h, w) * 0.22
    disc = (y - cy) ** 2 + (x - cx) ** 2 < rad**2
    img[disc] = [240, 30, 40]
    bar = (np.abs(x - w * 0.75) < w * 0.04) & (y > h * 0.1) & (y < h * 0.9)
    img[bar] = [10, 10, 10]
    img += rng.normal(0, noise, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def write_png16(path: Path, arr: np.ndarray) -> None:
    """A 16-bit PNG (gray `[h, w]` or RGB `[h, w, 3]`), written by hand: PIL cannot save 16-bit RGB."""
    h, w = arr.shape[:2]
    color_type = 0 if arr.ndim == 2 else 2
    rows = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(rows, 9))
    png += chunk(b"IEND", b"")
    path.write_bytes(png)


def make_images(img_dir: Path, rng: np.random.Generator) -> list[str]:
    img_dir.mkdir(parents=True, exist_ok=True)
    names = []

    def save(name, im, **kw):
        im.save(img_dir / name, **kw)
        names.append(name)

    # RGB, larger than 256: the antialiased downscale path; landscape.
    save("rgb.png", Image.fromarray(scene(240, 320, rng, 4.0)), optimize=True)
    # Grayscale, smaller than 256: upscale path; portrait, odd sizes.
    save("gray.png", Image.fromarray(scene(263, 181, rng)[:, :, 1]), optimize=True)
    # RGBA with varying alpha: convert("RGB") drops alpha (no compositing).
    rgba = np.dstack([scene(260, 260, rng, 2.0), np.linspace(0, 255, 260 * 260).reshape(260, 260).astype(np.uint8)])
    save("rgba.png", Image.fromarray(rgba, "RGBA"), optimize=True)
    # Palette (adaptive, 64 colours), odd width: crop-offset rounding.
    pal = Image.fromarray(scene(190, 257, rng, 2.0)).quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    save("palette.png", pal, optimize=True)
    # Palette with a transparent entry (tRNS).
    pal_t = Image.fromarray(scene(90, 120, rng, 2.0)).quantize(colors=16, dither=Image.Dither.NONE)
    pal_t.info["transparency"] = 3
    save("palette_trns.png", pal_t, transparency=3)
    # 16-bit grayscale: PIL opens it as I;16 and convert("RGB") clips at 255.
    g16 = (scene(200, 150, rng)[:, :, 0].astype(np.uint16) * 2).astype(np.uint16)  # 0..510
    write_png16(img_dir / "gray16.png", g16)
    names.append("gray16.png")
    # 16-bit RGB: PIL keeps the high byte.
    rgb16 = scene(120, 150, rng, 2.0).astype(np.uint16) * 256 + rng.integers(0, 256, (120, 150, 3)).astype(np.uint16)
    write_png16(img_dir / "rgb16.png", rgb16)
    names.append("rgb16.png")
    # A tiny image: heavy upscaling.
    save("small.png", Image.fromarray(scene(15, 20, rng, 0.0)))
    # JPEG, RGB 4:2:0 (PIL's default), downscale path.
    save("photo.jpg", Image.fromarray(scene(240, 320, rng, 3.0)), quality=90)
    # Grayscale JPEG, upscale path.
    save("gray.jpg", Image.fromarray(scene(280, 200, rng, 3.0)[:, :, 2]), quality=85)
    return names


def crop_u8(im: Image.Image, resize: int, crop: int, interpolation) -> Image.Image:
    """torchvision's Resize(resize) + CenterCrop(crop) on a PIL image."""
    return F.center_crop(F.resize(im, [resize], interpolation=interpolation), [crop, crop])


def preprocess(im: Image.Image, resize: int, crop: int, interpolation) -> torch.Tensor:
    """The ImageClassification preset's steps (resize, crop, to tensor, normalise)."""
    x = F.pil_to_tensor(crop_u8(im, resize, crop, interpolation))
    x = F.convert_image_dtype(x, torch.float)
    return F.normalize(x, mean=MEAN, std=STD)


def check_preset(im: Image.Image) -> None:
    """Our steps are exactly ResNet18_Weights.IMAGENET1K_V1.transforms()."""
    preset = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    a = preset(im)
    b = preprocess(im, 256, 224, InterpolationMode.BILINEAR)
    assert torch.equal(a, b), "preset differs from resize/crop/normalize"


def check_crop_is_tensor(crop: Image.Image, tensor: torch.Tensor) -> None:
    """The normalised tensor is exactly (crop / 255 - mean) / std in float32 (numpy)."""
    u8 = np.asarray(crop).astype(np.float32)
    mean = np.array(MEAN, dtype=np.float32)
    std = np.array(STD, dtype=np.float32)
    ref = ((u8 / np.float32(255.0) - mean) / std).transpose(2, 0, 1)
    diff = np.abs(ref - tensor.numpy()).max()
    assert diff == 0.0, f"normalisation differs from float32 numpy by {diff}"


# --------------------------------------------------------------------------------------


def generate(out: Path, gen: torch.Generator, rng: np.random.Generator) -> None:
    img_dir = out / "images"
    names = make_images(img_dir, rng)
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    with open(out / "inputs" / "images.jsonl", "w") as f:
        for n in names:
            f.write(json.dumps({"image": f"../images/{n}"}) + "\n")

    specs = [
        # name, arch, channels, stem, classes, labels, input, interpolation, crop_pct, weights, fc scale
        ("tiny-resnet", "resnet18", (8, 16, 32, 64), 8, 5, FLOWERS, 224, "bilinear", 0.875, "model.safetensors", 1.0),
        ("tiny-resnet-pth", "resnet34", (4, 8, 8, 16), 6, 3, None, 96, "bicubic", 0.9, "resnet.pth", 0.03),
    ]
    tensors: dict[str, torch.Tensor] = {}
    meta: dict = {"images": {}, "models": {}}
    random_input = torch.randn(2, 3, 75, 61, generator=gen)
    tensors["random_input"] = random_input.contiguous()
    for n in names:
        im = Image.open(img_dir / n)
        meta["images"][n] = {"mode": im.mode, "size": list(im.size), "format": im.format}
        if n.endswith(".jpg"):
            pil_dir = out / "parity" / "resnet" / "pil"
            pil_dir.mkdir(parents=True, exist_ok=True)
            im.convert("RGB").save(pil_dir / (n + ".png"), optimize=True)
    for name, arch, channels, stem, classes, labels, size, interp, crop_pct, weights, fc_scale in specs:
        model = build(arch, channels, stem, classes, gen, fc_scale)
        folder = out / "models" / name
        folder.mkdir(parents=True, exist_ok=True)
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        if weights.endswith(".safetensors"):
            save_file(sd, str(folder / weights), metadata={"format": "pt"})
        else:
            torch.save(model.state_dict(), folder / weights)
        write_json(folder / "config.json", timm_config(arch, classes, labels, channels, stem, size, interp, crop_pct, "ft_random"))
        mode = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}[interp]
        resize = int(np.floor(size / crop_pct))
        crops_dir = out / "parity" / "resnet" / name
        crops_dir.mkdir(parents=True, exist_ok=True)
        batch = []
        for n in names:
            im = Image.open(img_dir / n).convert("RGB")
            if name == "tiny-resnet":
                check_preset(im)
            crop = crop_u8(im, resize, size, mode)
            x = preprocess(im, resize, size, mode)
            check_crop_is_tensor(crop, x)
            crop.save(crops_dir / (n + ".png"), optimize=True)
            batch.append(x)
        with torch.no_grad():
            logits = model(torch.stack(batch))
            rlogits = model(random_input)
        key = name.replace("-", "_")
        tensors[f"{key}_logits"] = logits.contiguous()
        tensors[f"{key}_random_logits"] = rlogits.contiguous()
        probs = logits.softmax(-1)
        label_names = labels or [f"LABEL_{i}" for i in range(classes)]
        meta["models"][name] = {
            "architecture": arch,
            "channels": list(channels),
            "stem_width": stem,
            "num_classes": classes,
            "resize": resize,
            "crop": size,
            "interpolation": interp,
            "weights": weights,
            "parameters": sum(p.numel() for p in model.parameters()),
            "max_abs_logit": float(logits.abs().max()),
            "top1": {n: {"label": label_names[int(p.argmax())], "score": float(p.max())} for n, p in zip(names, probs)},
        }
        print(f"{name}: {meta['models'][name]['parameters']} parameters, max |logit| {meta['models'][name]['max_abs_logit']:.2f}")
    # The notebook's parameter counts (full size, ImageNet head then a 5-class head, frozen).
    full = torchvision.models.resnet18()
    for p in full.parameters():
        p.requires_grad = False
    total_1000 = sum(p.numel() for p in full.parameters())
    full.fc = nn.Linear(full.fc.in_features, 5)
    meta["notebook_parameter_counts"] = {
        "resnet18_total": total_1000,
        "head5_total": sum(p.numel() for p in full.parameters()),
        "head5_trainable": sum(p.numel() for p in full.parameters() if p.requires_grad),
    }
    meta["versions"] = versions()
    (out / "parity").mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "parity" / "tiny-resnet.safetensors"))
    write_json(out / "parity" / "tiny-resnet.json", meta)


def generate_full(full_dir: Path, images: Path, gen: torch.Generator) -> None:
    """Full-size resnet18 (random weights and BatchNorm statistics), both formats, logits."""
    model = build("resnet18", (64, 128, 256, 512), 64, 1000, gen)
    reference = torchvision.models.resnet18()
    assert {k: v.shape for k, v in reference.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    st_dir, pth_dir = full_dir / "resnet18", full_dir / "resnet18-pth"
    for d in (st_dir, pth_dir):
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "config.json", timm_config("resnet18", 1000, None, (64, 128, 256, 512), 64, 224, "bilinear", 0.875, "ft_random"))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(st_dir / "model.safetensors"), metadata={"format": "pt"})
    torch.save(model.state_dict(), pth_dir / "resnet18.pth")
    names = sorted(p.name for p in images.iterdir() if p.suffix in (".png", ".jpg"))
    preset = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    batch = torch.stack([preset(Image.open(images / n).convert("RGB")) for n in names])
    with torch.no_grad():
        logits = model(batch)
    save_file({"input": batch[:1].contiguous(), "logits": logits.contiguous()}, str(full_dir / "expected.safetensors"))
    write_json(full_dir / "expected.json", {"images": names, "versions": versions()})
    print(f"full resnet18 in {full_dir}: {len(names)} images, max |logit| {float(logits.abs().max()):.2f}")


def versions() -> dict:
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("tests/fixtures"))
    ap.add_argument("--full", type=Path, help="also write a full-size resnet18 here (not committed)")
    ap.add_argument("--skip-small", action="store_true", help="with --full: only the full-size model")
    args = ap.parse_args(argv)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    if not args.skip_small:
        generate(args.out, gen, rng)
    if args.full:
        generate_full(args.full, args.out / "images", torch.Generator().manual_seed(SEED + 1))
    print("versions:", versions())


if __name__ == "__main__":
    main()
