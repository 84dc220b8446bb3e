"""Loads the models ft saved in the Hub layout (written by the ft-models test `save` with
FT_UPDATE_FIXTURES=1 into --saved, with ft's own outputs in ft_outputs.json) with the Python
libraries users load them with, and records what those report and compute
(tests/fixtures/saved_check.json), with each file's FNV-1a hash so that the Rust test can check
that today's files are the ones checked here:

- tiny-gpt2: transformers' GPT2LMHeadModel.from_pretrained; missing/unexpected keys must be
  empty; logits on ids [5..10] vs ft's.
- tiny-resnet (narrow widths): torchvision's ResNet (the fixture script's narrow variant) with
  load_state_dict(strict=True); logits on the fixed image vs ft's.
- resnet18 (full width, random weights): torchvision.models.resnet18 with
  load_state_dict(strict=True), and timm.create_model("resnet18", pretrained_cfg_overlay=
  dict(file=...)); logits vs ft's.

Run by `cargo xtask fixtures saved` in the models venv (torch, transformers, torchvision, timm).
"""

import argparse
import json
import sys
from pathlib import Path

import torch


def fnv(path: Path) -> str:
    h = 0xCBF29CE484222325
    for b in path.read_bytes():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def image() -> torch.Tensor:
    return torch.tensor([(i % 97) / 97.0 - 0.5 for i in range(3 * 64 * 64)], dtype=torch.float32).reshape(1, 3, 64, 64)


def err(a: torch.Tensor, ft: list) -> float:
    return (a.flatten().double() - torch.tensor(ft, dtype=torch.float64)).abs().max().item()


def gpt2(d: Path, ft: dict) -> dict:
    from transformers import GPT2LMHeadModel

    # ft computes in f32 (and saves f32); the fixture checkpoint is stored in f16, which
    # transformers would otherwise keep.
    model, info = GPT2LMHeadModel.from_pretrained(d, output_loading_info=True, dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([[5, 6, 7, 8, 9, 10]])).logits
    return {
        "missing_keys": sorted(info["missing_keys"]),
        "unexpected_keys": sorted(info["unexpected_keys"]),
        "mismatched_keys": [list(map(str, m)) for m in info["mismatched_keys"]],
        "max_abs_logits_vs_ft": {"transformers": err(logits, ft["logits"])},
    }


def resnet(d: Path, ft: dict, with_timm: bool) -> dict:
    import torchvision
    from safetensors.torch import load_file

    sys.path.insert(0, str(Path(__file__).parent))
    from fixtures_resnet import LAYERS, NarrowResNet

    cfg = json.loads((d / "config.json").read_text())
    args = cfg.get("model_args", {})
    channels = args.get("channels", [64, 128, 256, 512])
    stem = args.get("stem_width", 64)
    if channels == [64, 128, 256, 512] and stem == 64:
        tv = getattr(torchvision.models, cfg["architecture"])(num_classes=cfg["num_classes"])
    else:
        tv = NarrowResNet(LAYERS[cfg["architecture"]], channels, stem, cfg["num_classes"])
    result = tv.load_state_dict(load_file(d / "model.safetensors"), strict=True)
    tv.eval()
    out = {
        "missing_keys": sorted(result.missing_keys),
        "unexpected_keys": sorted(result.unexpected_keys),
        "label_names": cfg.get("label_names"),
    }
    errs = {}
    with torch.no_grad():
        errs["torchvision"] = err(tv(image()), ft["logits"])
        if with_timm:
            import timm

            model = timm.create_model(
                cfg["architecture"],
                pretrained=True,
                # timm drops a checkpoint's classifier whose class count differs from its
                # pretrained_cfg's (1000 for resnet18): the overlay states the saved model's.
                pretrained_cfg_overlay=dict(file=str(d / "model.safetensors"), num_classes=cfg["num_classes"]),
                num_classes=cfg["num_classes"],
            )
            model.eval()
            errs["timm"] = err(model(image()), ft["logits"])
    out["max_abs_logits_vs_ft"] = errs
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--saved", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    import timm
    import torchvision
    import transformers

    ft = json.loads((a.saved / "ft_outputs.json").read_text())
    report = {
        "tiny-gpt2": gpt2(a.saved / "tiny-gpt2", ft["tiny-gpt2"]),
        "tiny-resnet": resnet(a.saved / "tiny-resnet", ft["tiny-resnet"], with_timm=False),
        "resnet18": resnet(a.saved / "resnet18", ft["resnet18"], with_timm=True),
    }
    for name in report:
        report[name]["fnv"] = fnv(a.saved / name / "model.safetensors")
    report["versions"] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
    }
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
