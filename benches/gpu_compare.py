"""Compares `ft predict` outputs of two devices (e.g. cpu vs vulkan) written by gpu_check.sh.

usage: python3 benches/gpu_compare.py DIR   (standard library only)
Prints, per model, the largest absolute logit difference and how many labels/entities agree.
"""
import json
import pathlib
import sys


def rows(path):
    return [json.loads(line) for line in open(path)]


def flat(x):
    if isinstance(x, list):
        for y in x:
            yield from flat(y)
    else:
        yield x


def main(d):
    d = pathlib.Path(d)
    for cpu in sorted(d.glob("*.cpu.jsonl")):
        name = cpu.name[: -len(".cpu.jsonl")]
        gpu = d / f"{name}.vulkan.jsonl"
        if not gpu.exists():
            print(f"{name}: no vulkan output")
            continue
        a, b = rows(cpu), rows(gpu)
        worst = max(abs(x - y) for r, s in zip(a, b) for x, y in zip(flat(r["logits"]), flat(s["logits"])))
        key = "label" if "label" in a[0] else "entities"
        same = sum(
            (r[key] == s[key]) if key == "label" else
            ([(e["entity_group"], e["start"], e["end"]) for e in r[key]] == [(e["entity_group"], e["start"], e["end"]) for e in s[key]])
            for r, s in zip(a, b))
        print(f"{name}: {len(a)} inputs, max |logit cpu - vulkan| = {worst:.2e}, same {key}: {same}/{len(a)}")


if __name__ == "__main__":
    main(sys.argv[1])
