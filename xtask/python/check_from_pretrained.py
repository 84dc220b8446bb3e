"""transformers loads what `ft train` writes — the fixture half of that check.

usage: python xtask/python/check_from_pretrained.py --out tests/fixtures/trained NAME=DIR:TASK ...

For each ft output directory DIR (the final model of an `ft train` run) this script
  1. loads it with transformers' `AutoModelFor{Sequence,Token}Classification.from_pretrained`
     and `AutoTokenizer.from_pretrained`, failing if any weight is missing, unexpected or
     mis-sized (`output_loading_info=True`) or if the label names did not survive;
  2. copies the model files into OUT/NAME (they are small: tiny fixture models);
  3. writes OUT/NAME/expected.json: texts, transformers' logits on them, id2label.
The Rust test `tests/train.rs::transformers_loads_ft_output` runs `ft predict` on OUT/NAME and
compares with these logits, so the committed files are both "written by ft" and "read by
transformers" with the same numbers. `cargo xtask fixtures trained` drives this.
Needs torch and transformers (xtask/python/requirements-models.txt).
"""
import argparse
import json
import shutil
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

TEXTS = [
    "bank rates market shares",
    "the team won the cup after a long season",
    "oil prices rose in new york on monday",
    "EU rejects German call to boycott British lamb .",
]

FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]


def check(name: str, src: Path, task: str, out_root: Path) -> None:
    cls = {"text-classification": AutoModelForSequenceClassification,
           "token-classification": AutoModelForTokenClassification}[task]
    model, info = cls.from_pretrained(src, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise SystemExit(f"{src}: transformers reports {problems}")
    config = json.loads((src / "config.json").read_text())
    if {str(k): v for k, v in model.config.id2label.items()} != config["id2label"]:
        raise SystemExit(f"{src}: id2label changed on loading: {model.config.id2label} vs {config['id2label']}")
    tok = AutoTokenizer.from_pretrained(src)
    model.eval()
    logits = []
    with torch.no_grad():
        for text in TEXTS:
            enc = tok(text, return_tensors="pt", truncation=True)
            logits.append(model(**enc).logits[0].tolist())
    dst = out_root / name
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in FILES:
        if (src / f).is_file():
            shutil.copy(src / f, dst / f)
    (dst / "expected.json").write_text(json.dumps({
        "task": task,
        "class": type(model).__name__,
        "texts": TEXTS,
        "logits": logits,
        "id2label": config["id2label"],
    }, indent=1) + "\n")
    print(f"{name}: {type(model).__name__} loaded by transformers with no missing/unexpected weights")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("models", nargs="+", help="NAME=DIR:TASK")
    args = ap.parse_args(argv)
    for spec in args.models:
        name, rest = spec.split("=", 1)
        src, task = rest.rsplit(":", 1)
        check(name, Path(src), task, args.out)


if __name__ == "__main__":
    main()
