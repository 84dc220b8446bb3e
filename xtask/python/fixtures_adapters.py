"""AdapterHub fixtures: bottleneck adapters (SeqBn "pfeiffer", DoubleSeqBn "houlsby") with
prediction heads, saved by the `adapters` library on the tiny random checkpoints, with the
library's outputs, for ft to load and match; and, with --check-ft, the adapters ft saved loaded
back with `load_adapter(..., with_head=True)`, their outputs compared with ft's.

Writes, under OUT (tests/fixtures/adapters):

    NAME/adapter_config.json, NAME/head_config.json     what save_adapter(dir, NAME, with_head=True)
    NAME/adapter.safetensors, NAME/model_head.safetensors   writes: these with use_safetensors=True,
      or NAME/pytorch_adapter.bin, NAME/pytorch_model_head.bin   these (torch.save) without
    expected.safetensors    input_ids, attention_mask (int64); per NAME: NAME.logits (float32,
                            eval mode, adapter and head active)
    expected.json           per NAME: base model, adapter config, use_safetensors, trainable and
                            total parameter counts after train_adapter(NAME), adapter_summary()'s
                            count, the head's label2id, dropout and module list; versions;
                            "training": per training case, see below
    train/NAME/init/, train/NAME/final/   training parity: the adapter and head (save_adapter with
                            the head, safetensors) before and after 20 AdapterTrainer steps
    train/NAME/rows.json    the training rows: [{"input_ids": [...], "labels": int}], unpadded

Training parity (TRAIN_CASES: bert-pfeiffer, seq_bn, 3 labels, on tiny-bert; distilbert-houlsby,
double_seq_bn, 2 labels, on tiny-distilbert; the adapter and head are named after the case): the
base is loaded from a temporary copy of its folder with every dropout key in config.json set to 0
(the head's dropout follows; every nn.Dropout and SDPA dropout_prob is checked to be 0), the
adapter and head keep the library's default init (seeded), train_adapter(NAME), then
AdapterTrainer with the rows in dataset order (SequentialSampler; 24 rows, batch 4: epochs roll
over in order), DataCollatorWithPadding (right padding, pad 0, attention_mask from the padding, no
token_type_ids), lr 1e-3, 20 steps, default AdamW / linear decay / max_grad_norm 1, seed 0, CPU.
expected.json "training" NAME: base, adapter, config, num_labels, batch_size, steps, learning_rate,
max_length, head_dropout, losses (each step's loss at full precision), logged_losses (the same from
trainer.state.log_history, which rounds to 4 decimals), versions. The frozen base (pooler and
LayerNorms included) is checked to be unchanged after training.

Every adapter and head parameter is replaced by N(0, 0.5²) noise after the library created it
(its default init makes the adapter nearly the identity), so that a wrong placement, layout or
activation shows. The base models are loaded with `AutoAdapterModel.from_pretrained` and their
`name_or_path` is set to the folder name (it becomes `model_name` in the saved JSON), so the files
do not depend on where the repo lives. Deterministic (seeded).

Run in the adapters venv (adapters 1.1.1, transformers 4.48.3; see requirements-adapters.txt):

    python xtask/python/fixtures_adapters.py --models tests/fixtures/models --out tests/fixtures/adapters
    python xtask/python/fixtures_adapters.py --models tests/fixtures/models --out DIR --check-ft FT_DIR

--check-ft FT_DIR: FT_DIR holds one folder per case written by ft, each with the adapter files as
above plus ft_logits.safetensors (input_ids, attention_mask int64; logits f32) and ft_case.json
({"base": "tiny-bert" | "tiny-distilbert", "name": ADAPTER_NAME}). Each is loaded on its base
twice — with the library's default `load_adapter(folder, with_head=True)`, which reads the
`.bin` pickles, and with `use_safetensors=True` —, every tensor in the files is checked to have
landed in the model, and both logits are compared with ft's; OUT/ft_saved_check.json records the result, and the exit status is 1 if any
case is off by more than TOLERANCE.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

TOLERANCE = 1e-4


def inputs():
    ids = torch.tensor([[5, 17, 45, 99, 3, 8], [2, 8, 9, 10, 11, 3]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    return ids, mask


def base(models: Path, name: str):
    from adapters import AutoAdapterModel

    m = AutoAdapterModel.from_pretrained(models / name, torch_dtype=torch.float32)
    m.config._name_or_path = name  # model_name in the saved JSON: the folder name, not the path
    m.eval()
    return m


def options_config():
    from adapters import SeqBnConfig

    return SeqBnConfig(reduction_factor=4, non_linearity="gelu", residual_before_ln=False, leave_out=[0])


CASES = {
    # name: (base model, adapter config (name or factory), head kind, head kwargs, use_safetensors)
    "bert-pfeiffer": ("tiny-bert", "seq_bn", "classification",
                      {"num_labels": 3, "id2label": {0: "World", 1: "Sports", 2: "Business"}}, True),
    "bert-houlsby": ("tiny-bert", "double_seq_bn", "classification", {"num_labels": 3}, False),
    "distilbert-pfeiffer": ("tiny-distilbert", "seq_bn", "classification", {"num_labels": 4}, False),
    "distilbert-houlsby": ("tiny-distilbert", "double_seq_bn", "classification", {"num_labels": 2}, True),
    "bert-options": ("tiny-bert", options_config, "classification", {"num_labels": 3, "layers": 1}, True),
    "bert-tagging": ("tiny-bert", "seq_bn", "tagging", {"num_labels": 5}, True),
}

CONFIG_NAMES = {
    options_config: 'SeqBnConfig(reduction_factor=4, non_linearity="gelu", residual_before_ln=False, leave_out=[0])',
}


def build(models: Path, name: str):
    """The base model with adapter NAME and head NAME added (library init)."""
    base_name, config, head, head_kwargs, _ = CASES[name]
    model = base(models, base_name)
    model.add_adapter(name, config=config() if callable(config) else config)
    if head == "classification":
        model.add_classification_head(name, **head_kwargs)
    else:
        model.add_tagging_head(name, **head_kwargs)
    return model


def own_params(model, name: str):
    """(adapter, head) parameters of NAME, by full name."""
    adapter, head = {}, {}
    for n, p in model.named_parameters():
        if f".adapters.{name}." in n or f"_adapters.{name}." in n:
            adapter[n] = p
        elif n.startswith(f"heads.{name}."):
            head[n] = p
    return adapter, head


def randomise(model, name: str, seed: int):
    g = torch.Generator().manual_seed(seed)
    adapter, head = own_params(model, name)
    with torch.no_grad():
        for n in sorted(adapter) + sorted(head):
            p = {**adapter, **head}[n]
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return len(adapter), len(head)


def logits_of(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits.float().contiguous()


def make(models: Path, out: Path) -> None:
    import adapters
    import transformers

    expected = {}
    meta = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "adapters": adapters.__version__}}
    ids, mask = inputs()
    expected["input_ids"], expected["attention_mask"] = ids, mask
    for i, (name, (base_name, config, head, head_kwargs, safe)) in enumerate(CASES.items()):
        torch.manual_seed(100 + i)
        model = build(models, name)
        n_adapter, n_head = randomise(model, name, 200 + i)
        model.set_active_adapters(name)
        model.eval()
        assert model.active_head == name, (name, model.active_head)
        expected[f"{name}.logits"] = logits_of(model, ids, mask)
        model.save_adapter(str(out / name), name, with_head=True, use_safetensors=safe)
        summary = {r["name"]: r for r in model.adapter_summary(as_dict=True)}
        hd = model.heads[name]
        info = {
            "base": base_name,
            "config": CONFIG_NAMES.get(config, config),
            "head": head,
            "head_kwargs": {k: v for k, v in head_kwargs.items() if k != "id2label"},
            "use_safetensors": safe,
            "files": sorted(f.name for f in (out / name).iterdir()),
            "adapter_tensors": n_adapter,
            "head_tensors": n_head,
            "adapter_summary_params": summary[name]["#param"],
            "head_params": sum(p.numel() for p in hd.parameters()),
            "label2id": hd.config["label2id"],
            "head_modules": [type(m).__name__ for m in hd],
            "head_dropout": [m.p for m in hd if isinstance(m, torch.nn.Dropout)],
            "total": sum(p.numel() for p in model.parameters()),
        }
        # train_adapter on a second copy, so that the logits above are from a model that never saw it.
        torch.manual_seed(100 + i)
        twin = build(models, name)
        twin.train_adapter(name)
        a, h = own_params(twin, name)
        info["trainable"] = sum(p.numel() for p in twin.parameters() if p.requires_grad)
        info["trainable_adapter"] = sum(p.numel() for p in a.values() if p.requires_grad)
        info["trainable_head"] = sum(p.numel() for p in h.values() if p.requires_grad)
        info["trainable_other"] = sorted(
            n for n, p in twin.named_parameters() if p.requires_grad and n not in a and n not in h)
        meta[name] = info
        print(name, tuple(expected[f"{name}.logits"].shape), f"trainable {info['trainable']:,d} of {info['total']:,d}",
              f"adapter {info['adapter_summary_params']:,d}", file=sys.stderr)
    meta["training"] = make_training(models, out)
    save_file(expected, out / "expected.safetensors")
    (out / "expected.json").write_text(json.dumps(meta, indent=2) + "\n")


TRAIN_TEXTS = [
    "The cat sat on the mat.", "A dog ran in the park.", "Rust is a systems programming language.",
    "Adapters add small layers to a frozen model.", "The weather is nice today.", "Markets rose after the report.",
    "The team won the cup final.", "Rates were cut by the bank.", "Players trained before the match.",
    "A new phone was released on Monday.", "Heavy rain closed the roads.", "The film opened to good reviews.",
    "Oil prices fell again this week.", "She scored twice in the second half.", "The museum reopened in spring.",
    "Engineers fixed the bridge overnight.", "Shares of the company doubled.", "The coach praised the young side.",
    "Scientists found water on the moon.", "The train was late by an hour.", "Profits beat the forecast.",
    "He won the race by a second.", "The library added more books.", "Voters went to the polls early.",
]

TRAIN_CASES = {
    # name (also the adapter's and the head's name): (base model, adapter config, num_labels, learning rate)
    "bert-pfeiffer": ("tiny-bert", "seq_bn", 3, 1e-3),
    "distilbert-houlsby": ("tiny-distilbert", "double_seq_bn", 2, 1e-3),
}

TRAIN_STEPS = 20
TRAIN_BATCH = 4
TRAIN_MAX_LENGTH = 16
# Every dropout probability in the base's config.json (the classification head takes its own from
# classifier_dropout / seq_classif_dropout, falling back to hidden_dropout_prob).
DROPOUT_KEYS = ["hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout",
                "dropout", "attention_dropout", "seq_classif_dropout", "qa_dropout"]


def base_without_dropout(models: Path, name: str, tmp: Path):
    """The base loaded from a copy of its folder whose config.json has every dropout key 0.0."""
    import shutil

    d = tmp / name
    shutil.copytree(models / name, d)
    config = json.loads((d / "config.json").read_text())
    for k in DROPOUT_KEYS:
        if k in config:
            config[k] = 0.0
    (d / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return base(tmp, name)


def dropouts(model) -> list:
    """Every dropout probability in the model: nn.Dropout modules and SDPA attention's dropout_prob."""
    ps = [(n, m.p) for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout)]
    ps += [(n, m.dropout_prob) for n, m in model.named_modules() if isinstance(getattr(m, "dropout_prob", None), float)]
    return ps


def make_training(models: Path, out: Path) -> dict:
    """The library's AdapterTrainer for 20 steps from the freshly initialised (default init) adapter
    and head, dropout 0 everywhere, batches in dataset order: per-step losses and the final adapter.

    Writes train/NAME/{init,final}/ (save_adapter with the head), train/NAME/rows.json (the
    tokenized rows, the collator's input) and returns {NAME: {losses, ...}} for expected.json."""
    import tempfile

    import adapters
    import transformers
    from adapters import AdapterTrainer
    from transformers import AutoTokenizer, DataCollatorWithPadding, TrainingArguments

    class InOrder(AdapterTrainer):
        step_losses: list

        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
            if model.training:
                self.step_losses.append((out[0] if return_outputs else out).item())
            return out

    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "adapters": adapters.__version__}
    result = {}
    for i, (name, (base_name, config, num_labels, lr)) in enumerate(TRAIN_CASES.items()):
        d = out / "train" / name
        d.mkdir(parents=True, exist_ok=True)
        tok = AutoTokenizer.from_pretrained(models / base_name)
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(400 + i)
            model = base_without_dropout(models, base_name, Path(tmp))
            model.add_adapter(name, config=config)
            model.add_classification_head(name, num_labels=num_labels)
            model.train_adapter(name)
            nonzero = [(n, p) for n, p in dropouts(model) if p != 0.0]
            assert not nonzero, (name, nonzero)
            head_dropout = [m.p for m in model.heads[name] if isinstance(m, torch.nn.Dropout)]
            assert tok.padding_side == "right" and tok.pad_token_id == 0, (name, tok.padding_side, tok.pad_token_id)
            assert model.active_head == name, (name, model.active_head)
            model.save_adapter(str(d / "init"), name, with_head=True, use_safetensors=True)
            adapter, head = own_params(model, name)
            trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
            assert trainable == sorted([*adapter, *head]), (name, trainable)
            frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
            rows = [{"input_ids": tok(t, truncation=True, max_length=TRAIN_MAX_LENGTH)["input_ids"],
                     "labels": j % num_labels} for j, t in enumerate(TRAIN_TEXTS)]
            (d / "rows.json").write_text(json.dumps(rows) + "\n")
            args = TrainingArguments(
                output_dir=str(Path(tmp) / "out"), per_device_train_batch_size=TRAIN_BATCH, max_steps=TRAIN_STEPS,
                learning_rate=lr, logging_steps=1, save_strategy="no", report_to=[], seed=0,
                dataloader_drop_last=False, use_cpu=True, disable_tqdm=True,
            )
            trainer = InOrder(model=model, args=args, train_dataset=rows, data_collator=DataCollatorWithPadding(tok))
            trainer.step_losses = []
            trainer.train()
        logged = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        assert len(logged) == len(trainer.step_losses) == TRAIN_STEPS, (name, len(logged), len(trainer.step_losses))
        # The log rounds to 4 decimals.
        assert all(abs(a - b) <= 5.1e-5 for a, b in zip(logged, trainer.step_losses)), (name, logged)
        changed = [n for n, p in model.named_parameters() if not p.requires_grad and not torch.equal(p, frozen[n])]
        assert not changed, (name, changed)
        model.save_adapter(str(d / "final"), name, with_head=True, use_safetensors=True)
        result[name] = {"base": base_name, "adapter": name, "config": config, "num_labels": num_labels,
                        "batch_size": TRAIN_BATCH, "steps": TRAIN_STEPS, "learning_rate": lr,
                        "max_length": TRAIN_MAX_LENGTH, "head_dropout": head_dropout,
                        "losses": trainer.step_losses, "logged_losses": logged,
                        "versions": versions}
        print(name, "losses", [round(x, 4) for x in trainer.step_losses[:3]], "...",
              round(trainer.step_losses[-1], 4), file=sys.stderr)
    return result


def file_tensors(d: Path, stem_safe: str, stem_bin: str) -> dict:
    if (d / stem_safe).exists():
        return load_file(d / stem_safe)
    return torch.load(d / stem_bin, map_location="cpu", weights_only=True)


def check_ft(models: Path, saved: Path, out_json: Path) -> bool:
    """Loads each adapter (with its head) ft saved into the library and compares logits."""
    result, ok = {}, True
    cases = sorted(p.parent for p in saved.glob("*/ft_case.json"))
    if not cases:
        raise SystemExit(f"no */ft_case.json under {saved}")
    for d in cases:
        rec = json.loads((d / "ft_case.json").read_text())
        name = rec["name"]
        ft = load_file(d / "ft_logits.safetensors")
        torch.manual_seed(0)
        model = base(models, rec["base"])
        # The library's default call reads the `.bin` pickles ft writes beside the safetensors.
        loaded = model.load_adapter(str(d), with_head=True)
        model.set_active_adapters(name)
        model.eval()
        # Every tensor in the files must be in the model, with the same value (nothing ignored).
        state = model.state_dict()
        stored = {**file_tensors(d, "adapter.safetensors", "pytorch_adapter.bin"),
                  **file_tensors(d, "model_head.safetensors", "pytorch_model_head.bin")}
        prefix = model.base_model_prefix + "."
        not_loaded = []
        for k, v in stored.items():
            key = k if k in state else prefix + k
            if key not in state or state[key].shape != v.shape or not torch.equal(state[key], v.to(state[key].dtype)):
                not_loaded.append(k)
        a, h = own_params(model, name)
        # ft writes every tensor as f32.
        ids, mask = ft["input_ids"].long(), ft["attention_mask"].long()
        logits = logits_of(model, ids, mask)
        want = ft["logits"].float()
        entry = {
            "base": rec["base"], "name": name, "loaded_as": loaded, "active_head": model.active_head,
            "files": sorted(f.name for f in d.iterdir()),
            "hashes": {f.name: fnv(f) for f in sorted(d.iterdir()) if f.name not in ("ft_logits.safetensors", "ft_case.json")},
            "logits_shape": list(logits.shape), "ft_logits_shape": list(want.shape),
            "file_tensors": len(stored), "model_tensors": len(a) + len(h), "not_loaded": not_loaded,
        }
        if logits.shape == want.shape:
            diff = (logits.double() - want.double()).abs()
            entry["max_abs"] = diff.max().item()
            if diff.dim() == 3:  # tagging: real tokens only as well
                entry["max_abs_real_tokens"] = diff[mask.bool()].max().item()
        else:
            entry["max_abs"] = None
        # The other weight form: the same folder with use_safetensors=True.
        torch.manual_seed(0)
        model_st = base(models, rec["base"])
        model_st.load_adapter(str(d), with_head=True, use_safetensors=True)
        model_st.set_active_adapters(name)
        model_st.eval()
        logits_st = logits_of(model_st, ids, mask)
        entry["max_abs_safetensors"] = (
            (logits_st.double() - want.double()).abs().max().item() if logits_st.shape == want.shape else None)
        entry["pass"] = (entry["max_abs"] is not None and entry["max_abs"] <= TOLERANCE and not not_loaded
                         and entry["max_abs_safetensors"] is not None and entry["max_abs_safetensors"] <= TOLERANCE
                         and len(stored) == len(a) + len(h) and model.active_head == name)
        ok &= entry["pass"]
        result[d.name] = entry
        print(d.name, entry["max_abs"], "ok" if entry["pass"] else "FAIL", file=sys.stderr)
    out_json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return ok


def fnv(path: Path) -> str:
    """FNV-1a 64 of a file (tests compare it with what ft writes now)."""
    h = 0xCBF29CE484222325
    for b in path.read_bytes():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("--models", type=Path, required=True, help="tests/fixtures/models")
    a.add_argument("--out", type=Path, required=True, help="tests/fixtures/adapters")
    a.add_argument("--check-ft", type=Path, help="a folder of adapters ft saved (checks them instead)")
    args = a.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.check_ft:
        if not check_ft(args.models, args.check_ft, args.out / "ft_saved_check.json"):
            sys.exit(1)
    else:
        make(args.models, args.out)


if __name__ == "__main__":
    main()
