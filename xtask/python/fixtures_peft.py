"""PEFT fixtures: adapters saved by Hugging Face PEFT on the tiny random checkpoints, with PEFT's
outputs, for ft to load and match (tests/peft_parity.rs); and, with --check-ft, the adapters ft
saved loaded back with `PeftModel.from_pretrained`, their outputs compared with ft's.

Writes, under OUT (tests/fixtures/peft):

    NAME/adapter_config.json, NAME/adapter_model.safetensors   what PEFT's save_pretrained writes
    expected.safetensors    input_ids, attention_mask; per NAME: NAME.logits (the first
                            VOCAB_SLICE vocabulary entries for causal LMs), NAME.merged_logits
                            (LoRA: after merge_and_unload)
    expected.json           per NAME: the base model, the trainable-parameter line, versions

Every LoRA adapter has non-zero B (init_lora_weights=False), so that a wrong layout or scaling
shows. Run by `cargo xtask fixtures peft` in the models venv (torch, transformers, peft).
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

VOCAB_SLICE = 256


def fnv(path: Path) -> str:
    h = 0xCBF29CE484222325
    for b in path.read_bytes():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def inputs():
    ids = torch.tensor([[5, 17, 45, 99, 3, 8], [2, 8, 9, 10, 11, 3]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    return ids, mask


def base(models: Path, name: str, **config):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    d = models / name
    if name.startswith("tiny-gpt2"):
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, **config)
    else:
        m = AutoModelForSequenceClassification.from_pretrained(d, dtype=torch.float32, **config)
    m.eval()
    return m


def logits_of(model, ids, mask, causal: bool):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask).logits
    return out[..., :VOCAB_SLICE].contiguous() if causal else out.contiguous()


def trainable_line(model) -> str:
    t, a = model.get_nb_trainable_parameters()
    return f"trainable params: {t:,d} || all params: {a:,d} || trainable%: {100 * t / a:.4f}"


CASES = {
    # name: (base model, task, config factory)
    "gpt2-lora": ("tiny-gpt2", "CAUSAL_LM", lambda p: p.LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["c_attn", "c_proj"], init_lora_weights=False)),
    "gpt2-lora-rslora": ("tiny-gpt2", "CAUSAL_LM", lambda p: p.LoraConfig(
        task_type="CAUSAL_LM", r=8, lora_alpha=16, use_rslora=True, target_modules="all-linear",
        init_lora_weights=False)),
    "gpt2-prompt": ("tiny-gpt2", "CAUSAL_LM", lambda p: p.PromptTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=5)),
    "gpt2-prefix": ("tiny-gpt2", "CAUSAL_LM", lambda p: p.PrefixTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=4)),
    "gpt2-prefix-projection": ("tiny-gpt2", "CAUSAL_LM", lambda p: p.PrefixTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=4, prefix_projection=True, encoder_hidden_size=24)),
    "distilbert-lora": ("tiny-distilbert-seqcls", "SEQ_CLS", lambda p: p.LoraConfig(
        task_type="SEQ_CLS", r=4, lora_alpha=16, lora_dropout=0.1, target_modules=["q_lin", "v_lin"],
        init_lora_weights=False)),
    "bert-lora-bias": ("tiny-bert-seqcls", "SEQ_CLS", lambda p: p.LoraConfig(
        task_type="SEQ_CLS", r=2, lora_alpha=4, bias="all", init_lora_weights=False)),
    "bert-prompt": ("tiny-bert-seqcls", "SEQ_CLS", lambda p: p.PromptTuningConfig(
        task_type="SEQ_CLS", num_virtual_tokens=3)),
    # (Prefix tuning on BERT sequence classification: PEFT 0.21 + transformers 5 raise "Model does
    # not support past key values which are required for prefix tuning", so there is no reference.)
}


def perturb(model, seed: int):
    """Non-trivial adapter values beyond the initialisation: random biases and heads too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad and ("bias" in n or "modules_to_save" in n):
                p.add_(torch.randn(p.shape, generator=g) * 0.1)


def make(models: Path, out: Path) -> None:
    import peft
    import transformers

    torch.manual_seed(0)
    expected = {}
    meta = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}}
    ids, mask = inputs()
    expected["input_ids"], expected["attention_mask"] = ids, mask
    for i, (name, (base_name, task, factory)) in enumerate(CASES.items()):
        torch.manual_seed(100 + i)
        model = peft.get_peft_model(base(models, base_name), factory(peft))
        perturb(model, 200 + i)
        model.eval()
        line = trainable_line(model)
        causal = task == "CAUSAL_LM"
        expected[f"{name}.logits"] = logits_of(model, ids, mask, causal)
        model.save_pretrained(out / name)
        (out / name / "README.md").unlink(missing_ok=True)  # PEFT's model card template
        info = {"base": base_name, "task_type": task, "trainable_line": line}
        if causal:
            # Greedy continuation, one prompt and a left-padded batch of two. PEFT 0.21's own
            # generate() is broken with transformers 5 for prompt learning (prompt tuning: an
            # index error; prefix tuning: a first token that is not the argmax of its own forward
            # pass), so the reference is greedy decoding by PEFT's forward pass, without a cache
            # (checked equal to generate() for LoRA).
            gens = []
            for prompts in ([[5, 17, 45]], [[5, 17, 45, 99], [8, 9]]):
                width = max(len(p) for p in prompts)
                cur = torch.tensor([[50256] * (width - len(p)) + p for p in prompts])
                mask_g = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
                start = cur.clone()
                lora = isinstance(model.peft_config["default"], peft.LoraConfig)
                for _ in range(6):
                    # generate()'s position ids from the mask for the plain model (PEFT drops
                    # position ids for prompt learning: positions then run over everything).
                    pos = (mask_g.cumsum(-1) - 1).masked_fill(mask_g == 0, 1) if lora else None
                    with torch.no_grad():
                        nxt = model(input_ids=cur, attention_mask=mask_g, position_ids=pos).logits[:, -1].argmax(-1, keepdim=True)
                    cur = torch.cat([cur, nxt], 1)
                    mask_g = torch.cat([mask_g, torch.ones_like(nxt)], 1)
                if lora:
                    with torch.no_grad():
                        ref = model.generate(input_ids=start, attention_mask=mask_g[:, :width], max_new_tokens=6,
                                             do_sample=False, pad_token_id=50256)
                    assert ref[:, width:].tolist() == cur[:, width:].tolist(), (name, prompts)
                gens.append({"prompts": prompts, "new_tokens": cur[:, width:].tolist()})
            info["generate"] = gens
        if isinstance(model.peft_config["default"], peft.LoraConfig):
            merged = model.merge_and_unload()
            expected[f"{name}.merged_logits"] = logits_of(merged, ids, mask, causal)
        meta[name] = info
        print(name, line, file=sys.stderr)
    meta["training"] = make_training(models, out)
    save_file(expected, out / "expected.safetensors")
    (out / "expected.json").write_text(json.dumps(meta, indent=2) + "\n")


TRAIN_TEXTS = [
    "The cat sat on the mat.", "A dog ran in the park.", "Rust is a systems programming language.",
    "Fine-tuning adapts a model to a task.", "The weather is nice today.", "LoRA trains small matrices.",
    "Prompt tuning learns virtual tokens.", "GPT-2 predicts the next token.", "Markets rose after the report.",
    "The team won the cup final.", "Rates were cut by the bank.", "Players trained before the match.",
]

TRAIN_CASES = {
    # name: (base model, config factory, learning rate[, batch size, gradient accumulation])
    "gpt2-lora": ("tiny-gpt2", lambda p: p.LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["c_attn", "c_proj"], init_lora_weights=False), 1e-3),
    "gpt2-lora-accum": ("tiny-gpt2", lambda p: p.LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules=["c_attn"], init_lora_weights=False), 1e-3, 2, 2),
    "gpt2-prompt": ("tiny-gpt2", lambda p: p.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4), 1e-2),
    "distilbert-lora": ("tiny-distilbert-seqcls", lambda p: p.LoraConfig(
        task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["q_lin", "v_lin"], init_lora_weights=False), 1e-3),
}

TRAIN_STEPS = 20


def make_training(models: Path, out: Path) -> dict:
    """PEFT + transformers' Trainer for 20 steps from a saved, freshly initialised adapter (non-zero
    B), dropout 0 everywhere, batches in dataset order: per-step losses and the final adapter.

    Writes train/NAME/{init,final}/ (adapters), train/NAME/rows.json (the tokenized rows, the
    collator's input) and returns {NAME: {losses, ...}} for expected.json."""
    import peft
    from transformers import (AutoTokenizer, DataCollatorForLanguageModeling, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    class InOrder(Trainer):
        step_losses: list

        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
            if model.training:
                self.step_losses.append((out[0] if return_outputs else out).item())
            return out

    result = {}
    for i, (name, (base_name, factory, lr, *sizes)) in enumerate(TRAIN_CASES.items()):
        batch, accum = sizes if sizes else (4, 1)
        d = out / "train" / name
        d.mkdir(parents=True, exist_ok=True)
        tok = AutoTokenizer.from_pretrained(models / base_name)
        causal = base_name.startswith("tiny-gpt2")
        zero = ({"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0} if causal else
                {"dropout": 0.0, "attention_dropout": 0.0, "seq_classif_dropout": 0.0})
        torch.manual_seed(300 + i)
        model = peft.get_peft_model(base(models, base_name, **zero), factory(peft))
        model.save_pretrained(d / "init")
        if causal:
            tok.pad_token = tok.eos_token
            rows = [{"input_ids": tok(t, truncation=True, max_length=24)["input_ids"]} for t in TRAIN_TEXTS]
            collator = DataCollatorForLanguageModeling(tok, mlm=False)
        else:
            rows = [{"input_ids": tok(t, truncation=True)["input_ids"], "labels": j % 4} for j, t in enumerate(TRAIN_TEXTS)]
            collator = DataCollatorWithPadding(tok)
        (d / "rows.json").write_text(json.dumps(rows) + "\n")
        args = TrainingArguments(
            output_dir=str(d / "tmp"), per_device_train_batch_size=batch, gradient_accumulation_steps=accum,
            max_steps=TRAIN_STEPS, learning_rate=lr,
            logging_steps=1, save_strategy="no", report_to=[], seed=0, dataloader_drop_last=False,
            use_cpu=True, disable_tqdm=True,
        )
        trainer = InOrder(model=model, args=args, train_dataset=rows, data_collator=collator)
        trainer.step_losses = []
        trainer.train()
        model.save_pretrained(d / "final")
        for sub in ("init", "final"):
            (d / sub / "README.md").unlink(missing_ok=True)
        import shutil
        shutil.rmtree(d / "tmp", ignore_errors=True)
        result[name] = {"base": base_name, "learning_rate": lr, "steps": TRAIN_STEPS, "batch_size": batch,
                        "gradient_accumulation_steps": accum, "losses": trainer.step_losses}
        print(name, "losses", [round(x, 4) for x in trainer.step_losses[:3]], "...", file=sys.stderr)
    return result


def check_ft(models: Path, saved: Path, out_json: Path) -> None:
    """Loads each adapter ft saved (saved/NAME, with saved/NAME.ft.json: ft's logits) in PEFT."""
    import peft

    ft = {p.name[: -len(".ft.json")]: json.loads(p.read_text()) for p in saved.glob("*.ft.json")}
    ids, mask = inputs()
    result = {}
    for name, rec in sorted(ft.items()):
        d = saved / name
        if rec.get("merged"):
            # A merged model ft saved: transformers alone loads it.
            from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
            cls = AutoModelForCausalLM if rec["task_type"] == "CAUSAL_LM" else AutoModelForSequenceClassification
            model = cls.from_pretrained(d, dtype=torch.float32)
        else:
            model = peft.PeftModel.from_pretrained(base(models, rec["base"]), d)
        model.eval()
        causal = rec["task_type"] == "CAUSAL_LM"
        logits = logits_of(model, ids, mask, causal)
        want = torch.tensor(rec["logits"], dtype=torch.float64).reshape(logits.shape)
        diff = (logits.double() - want).abs()
        if causal:
            # Real tokens only: what a model computes at padded positions is arbitrary
            # (transformers' eager and SDPA attention disagree there).
            virt = logits.shape[1] - mask.shape[1]
            keep = torch.cat([torch.ones(mask.shape[0], virt, dtype=torch.bool), mask.bool()], dim=1)
            diff = diff[keep]
        result[name] = {
            "max_abs_logits_vs_ft": diff.max().item(),
            "trainable_line": trainable_line(model) if hasattr(model, "get_nb_trainable_parameters") else None,
            "files": {f.name: fnv(f) for f in sorted(d.iterdir())},
        }
        print(name, result[name]["max_abs_logits_vs_ft"], file=sys.stderr)
    out_json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


def main() -> None:
    a = argparse.ArgumentParser()
    a.add_argument("--models", type=Path, required=True, help="tests/fixtures/models")
    a.add_argument("--out", type=Path, required=True, help="tests/fixtures/peft")
    a.add_argument("--check-ft", type=Path, help="a folder of adapters ft saved (checks them instead)")
    args = a.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.check_ft:
        check_ft(args.models, args.check_ft, args.out / "ft_saved_check.json")
    else:
        make(args.models, args.out)


if __name__ == "__main__":
    main()
