#!/usr/bin/env python3
"""Generate GPT-2 parity fixtures for the `ft` Rust crates.

Builds a tiny random-weight GPT-2 (`GPT2LMHeadModel`: n_embd 16, 2 layers, 4 heads,
n_positions 32) with the REAL GPT-2 byte-level BPE vocabulary (50257 tokens; vocab.json +
merges.txt from `shared/scripts/fetch-gpt2-tokenizer.sh`), and records what transformers
computes on it: hidden states and logits for texts of different lengths (alone, and as one
left-padded batch with generate()'s position ids), greedy `generate` token ids with and without
the KV cache, a batched left-padded greedy generation, per-row end-of-sequence stopping, the
repetition penalty, and the sampling logits warpers (temperature, top-k, top-p) applied to a
real next-token distribution.

Usage:
    python fixtures_gpt2.py --out tests/fixtures --gpt2-tokenizer DIR

Output (under --out):
    models/tiny-gpt2/         config.json, generation_config.json, model.safetensors (float16),
                              tokenizer.json (compact), tokenizer_config.json
    parity/tiny-gpt2.safetensors  inputs + expected outputs (float32 / int64)
    parity/tiny-gpt2.json         texts, encodings, generate() calls and their token ids

The checkpoint is stored in float16 to keep it small (the tied embedding matrix is
50257 x 16); the weights are drawn in float32 and rounded to float16 *before* any reference
is computed, and the model is reloaded with dtype=float32, so the references are exact float32
computations on exactly the weights in the file. Everything is seeded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

import transformers
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_models import randomize, seed_everything, to_py  # noqa: E402

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

SEED = 2024
NAME = "tiny-gpt2"
N_POS = 32
EOT = "<|endoftext|>"
EOT_ID = 50256

# Texts for the forward-pass parity (the last one is longer than n_positions: truncated to 32).
TEXTS = [
    "Hello, my dog is cute",
    "The quick brown fox jumps over the lazy dog.",
    " leading space,  double  spaces and a tab\there",
    "Café naïve 東京 👍 — “quotes”",
    "a",
    "In 2024 the price rose by 3.5% to $1,234.56 (a record), analysts in New York and London said on "
    "Tuesday, while the central bank kept its benchmark interest rate unchanged for the fifth month.",
]

# Prompts for generate().
PROMPTS = [
    "Hello, my dog is cute and",
    "The meaning of life is",
    "Once upon a time, in a land far away, there lived a",
]
MAX_NEW = 12
# A prompt of 24 tokens: with generate()'s default (20 new tokens, capped at n_positions) it
# gets only 32 - 24 = 8 new tokens.
LONG_PROMPT_TOKENS = 24

# Vocabulary ids whose logits are stored at every position (the full [batch, seq, 50257]
# tensor would be 40 MB): 256 fixed random ids, plus end-of-text.
N_SUBSET = 256


def build_tokenizer(vocab_path: Path, merges_path: Path) -> Tokenizer:
    """GPT-2's tokenizer.json, as the Hub's `openai-community/gpt2` has it."""
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    merges = []
    for line in merges_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#version") or not line.strip():
            continue
        a, b = line.split(" ")
        merges.append((a, b))
    assert len(vocab) == 50257 and vocab[EOT] == EOT_ID, len(vocab)
    tok = Tokenizer(
        BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="",
            fuse_unk=False)
    )
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.add_special_tokens([EOT])
    assert tok.token_to_id(EOT) == EOT_ID
    tok.no_padding()
    tok.no_truncation()
    return tok


def round_to_f16(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.float16).to(torch.float32))


def generate_ids(model, tok, prompts, **kw):
    """Left-padded batched generate(); returns (sequences, prompt width, min top-1 margin)."""
    enc = tok(prompts, return_tensors="pt", padding=True)
    out = model.generate(
        **enc, return_dict_in_generate=True, output_logits=True, pad_token_id=EOT_ID, **kw
    )
    seq = out.sequences
    # The smallest gap between the best and second-best logit of any step of any unfinished row:
    # greedy ids are only comparable across implementations when it is far above float noise.
    margin = float("inf")
    width = enc["input_ids"].shape[1]
    for step, logits in enumerate(out.logits):
        top2 = torch.topk(logits.float(), 2, dim=-1).values
        for row in range(logits.shape[0]):
            # skip rows that already finished (their token is forced to the pad id)
            if step > 0 and "eos_token_id" in kw and int(seq[row, width + step - 1]) == kw["eos_token_id"]:
                continue
            margin = min(margin, float(top2[row, 0] - top2[row, 1]))
    return enc, seq, width, margin


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="fixtures root (e.g. tests/fixtures)")
    ap.add_argument("--gpt2-tokenizer", required=True, type=Path,
                    help="folder with GPT-2's vocab.json and merges.txt (shared/scripts/fetch-gpt2-tokenizer.sh)")
    args = ap.parse_args(argv)

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    torch.use_deterministic_algorithms(True)
    torch.set_grad_enabled(False)
    seed_everything(SEED)
    out_root: Path = args.out
    folder = out_root / "models" / NAME
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)

    # ---- tokenizer ----
    raw = build_tokenizer(args.gpt2_tokenizer / "vocab.json", args.gpt2_tokenizer / "merges.txt")
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=raw, bos_token=EOT, eos_token=EOT, unk_token=EOT, add_prefix_space=False,
        model_max_length=N_POS,
    )
    tokenizer.save_pretrained(folder)
    for extra in ("vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json"):
        (folder / extra).unlink(missing_ok=True)
    # Compact tokenizer.json (the pretty-printed one is twice the size); same content.
    tj = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    (folder / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False, separators=(",", ":")),
                                           encoding="utf-8")

    # ---- model ----
    config = GPT2Config(
        vocab_size=50257, n_positions=N_POS, n_embd=16, n_layer=2, n_head=4, n_inner=None,
        activation_function="gelu_new", layer_norm_epsilon=1e-5, bos_token_id=EOT_ID,
        eos_token_id=EOT_ID, tie_word_embeddings=True,
    )
    model = GPT2LMHeadModel(config)
    gen = torch.Generator().manual_seed(SEED)
    randomize(model, gen)
    round_to_f16(model)
    model.eval()
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr(), "lm_head is not tied"
    model.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    model.to(torch.float32)

    # ---- reload as a user would ----
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.is_fast
    reference = GPT2TokenizerFast(
        vocab=str(args.gpt2_tokenizer / "vocab.json"), merges=str(args.gpt2_tokenizer / "merges.txt")
    )
    standalone = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for t in TEXTS + PROMPTS:
        a = tok(t)["input_ids"]
        b = reference(t)["input_ids"]
        c = standalone.encode(t).ids
        assert a == b == c, (t, a, b, c)
    model2 = GPT2LMHeadModel.from_pretrained(folder, dtype=torch.float32).eval()
    assert model2.lm_head.weight.data_ptr() == model2.transformer.wte.weight.data_ptr()
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), n1
    model = model2

    tensors = {}
    rng = np.random.default_rng(SEED)
    subset = sorted(set(rng.choice(50257, N_SUBSET, replace=False).tolist()) | {EOT_ID})
    subset_t = torch.tensor(subset, dtype=torch.int64)
    tensors["vocab_subset"] = subset_t

    def record_logits(prefix, logits):
        tensors[prefix + "logits_subset"] = logits[..., subset_t]
        tensors[prefix + "logits_argmax"] = logits.argmax(-1)
        tensors[prefix + "logits_max"] = logits.max(-1).values

    # ---- forward: each text alone (truncated to n_positions, as truncation=True) ----
    encodings = []
    with torch.no_grad():
        for i, t in enumerate(TEXTS):
            enc = tok(t, truncation=True, max_length=N_POS, return_tensors="pt")
            out = model(**enc, output_hidden_states=True)
            tensors[f"single_{i}_input_ids"] = enc["input_ids"]
            tensors[f"single_{i}_last_hidden_state"] = out.hidden_states[-1]
            record_logits(f"single_{i}_", out.logits)
            if i == 0:  # the full vocabulary once (200 KB), for `ft predict` and the warpers
                tensors[f"single_{i}_next_token_logits"] = out.logits[0, -1]
            encodings.append(dict(input_ids=enc["input_ids"][0].tolist(),
                                  untruncated_length=len(tok(t)["input_ids"])))
    assert encodings[-1]["untruncated_length"] > N_POS and len(encodings[-1]["input_ids"]) == N_POS

    # ---- forward: one left-padded batch with generate()'s position ids ----
    tok.pad_token = EOT
    tok.padding_side = "left"
    batch = tok(TEXTS, truncation=True, max_length=N_POS, padding=True, return_tensors="pt")
    mask = batch["attention_mask"]
    position_ids = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=position_ids,
                    output_hidden_states=True)
        eager = GPT2LMHeadModel.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
        out_eager = eager(input_ids=batch["input_ids"], attention_mask=mask, position_ids=position_ids)
    valid = mask.bool()
    d = (out.logits - out_eager.logits)[valid].abs().max().item()
    assert d < 1e-4, f"eager vs sdpa differ by {d}"
    tensors["left_input_ids"] = batch["input_ids"]
    tensors["left_attention_mask"] = mask
    tensors["left_position_ids"] = position_ids
    tensors["left_last_hidden_state"] = out.hidden_states[-1]
    record_logits("left_", out.logits)
    worst = 0.0
    for i in range(len(TEXTS)):
        n = int(mask[i].sum())
        a = out.logits[i, -n:]
        b = model(input_ids=tensors[f"single_{i}_input_ids"]).logits[0]
        worst = max(worst, (a - b).abs().max().item())
    assert worst < 1e-4, f"left-padded batch != alone: {worst}"
    print(f"[{NAME}] left-padded batch vs alone (transformers): {worst:.2e}; eager vs sdpa {d:.2e}")

    # ---- greedy generate ----
    gen_json = []
    min_margin = float("inf")

    def greedy(key, prompts, note, **kw):
        nonlocal min_margin
        results = {}
        for use_cache in (True, False):
            enc, seq, width, margin = generate_ids(model, tok, prompts, do_sample=False, use_cache=use_cache, **kw)
            results[use_cache] = seq
            min_margin = min(min_margin, margin)
        assert torch.equal(results[True], results[False]), f"{key}: cache and no-cache differ"
        seq = results[True]
        tensors[f"gen_{key}_sequences"] = seq
        gen_json.append(dict(
            key=key, prompts=prompts, note=note, kwargs=dict(do_sample=False, **kw),
            prompt_ids=[[int(x) for x, m in zip(r, mk) if m] for r, mk in zip(enc["input_ids"], enc["attention_mask"])],
            padded_prompt_width=width,
            new_tokens=[r[width:].tolist() for r in seq],
            # what the text-generation pipeline shows after the prompt (special tokens skipped)
            new_text=[tok.decode(r[width:], skip_special_tokens=True) for r in seq],
        ))
        return seq, width

    for i, p in enumerate(PROMPTS):
        greedy(f"single_{i}", [p], "one prompt, no padding", max_new_tokens=MAX_NEW)
    seq, width = greedy("batch", PROMPTS, "all prompts as one left-padded batch", max_new_tokens=MAX_NEW)
    greedy("default_length", [PROMPTS[1]], "no max_new_tokens: generate()'s default of 20 new tokens")
    long_prompt = tok.decode(tokenizer(TEXTS[-1])["input_ids"][:LONG_PROMPT_TOKENS])
    assert len(tok(long_prompt)["input_ids"]) == LONG_PROMPT_TOKENS, long_prompt
    greedy("capped", [long_prompt],
           "no max_new_tokens, 24-token prompt: the default 20 new tokens are capped at n_positions (8 new)")
    # Per-row stopping: use as end-of-sequence a token that row 0 generates at its 4th step (and that
    # no other row generates earlier than its last step), so row 0 stops early and is padded.
    stop = int(seq[0, width + 3])
    greedy("eos", PROMPTS, f"eos_token_id={stop}: rows stop there and are padded with 50256",
           max_new_tokens=MAX_NEW, eos_token_id=stop)
    greedy("repetition_penalty", PROMPTS, "repetition_penalty=1.5 (a logits processor: it applies to greedy too)",
           max_new_tokens=MAX_NEW, repetition_penalty=1.5)
    assert min_margin > 1e-3, f"greedy top-1 margin {min_margin} too small for a stable comparison"
    print(f"[{NAME}] greedy: cache == no cache for every call; smallest top-1 margin {min_margin:.3g}")

    # ---- sampling warpers on a real distribution (single_0's next-token logits) ----
    scores = tensors["single_0_next_token_logits"][None, :].clone()
    input_ids = tensors["single_0_input_ids"]
    warp_cases = [
        dict(name="temperature_0.7", temperature=0.7),
        dict(name="top_k_50", top_k=50),
        dict(name="top_p_0.9", top_p=0.9),
        dict(name="top_p_0.01", top_p=0.01),
        dict(name="repetition_penalty_1.5", repetition_penalty=1.5),
        dict(name="all", repetition_penalty=1.3, temperature=0.8, top_k=40, top_p=0.85),
    ]
    warp_json = []
    for case in warp_cases:
        s = scores.clone()
        # transformers' order: repetition penalty (a processor), then temperature, top-k, top-p
        if "repetition_penalty" in case:
            s = RepetitionPenaltyLogitsProcessor(case["repetition_penalty"])(input_ids, s)
        if "temperature" in case:
            s = TemperatureLogitsWarper(case["temperature"])(input_ids, s)
        if "top_k" in case:
            s = TopKLogitsWarper(case["top_k"])(input_ids, s)
        if "top_p" in case:
            s = TopPLogitsWarper(case["top_p"])(input_ids, s)
        kept = torch.isfinite(s[0]).nonzero()[:, 0]
        probs = torch.softmax(s[0], -1)
        # Scores after the chain (None where filtered out) and probabilities of a fixed sample of
        # ids (the stored vocabulary subset, the prompt's ids and the 100 best); the kept ids in
        # full when there are not too many.
        best = torch.topk(scores[0], 100).indices.tolist()
        sample = sorted(set(subset) | set(input_ids[0].tolist()) | set(best))
        warp_json.append(dict(
            case, n_kept=len(kept), kept=kept.tolist() if len(kept) <= 2000 else None,
            sample_ids=sample,
            sample_scores=[float(s[0, i]) if torch.isfinite(s[0, i]) else None for i in sample],
            sample_probs=[float(probs[i]) for i in sample],
        ))
    print(f"[{NAME}] warpers kept: " + ", ".join(f"{w['name']}={w['n_kept']}" for w in warp_json))

    tensors = {k: (v.contiguous().to(torch.int64) if not v.is_floating_point() else v.contiguous().to(torch.float32))
               for k, v in tensors.items()}
    parity_dir = out_root / "parity"
    parity_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(parity_dir / f"{NAME}.safetensors"), metadata={"model": NAME})
    info = dict(
        model=NAME, model_dir=f"models/{NAME}", texts=TEXTS, n_positions=N_POS, encodings=encodings,
        left_batch_call=dict(truncation=True, max_length=N_POS, padding=True, padding_side="left",
                             pad_token=EOT, position_ids="attention_mask.cumsum(-1) - 1, 0 on padding"),
        generate=gen_json, min_greedy_margin=min_margin,
        warpers_on="single_0_next_token_logits", warpers=warp_json,
    )
    (parity_dir / f"{NAME}.json").write_text(json.dumps(to_py(info), ensure_ascii=False, indent=1) + "\n",
                                            encoding="utf-8")

    cfg = json.loads((folder / "config.json").read_text())
    assert cfg.get("architectures") == ["GPT2LMHeadModel"], cfg.get("architectures")
    assert cfg.get("model_type") == "gpt2"
    from safetensors import safe_open
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert all(f.get_tensor(k).dtype == torch.float16 for k in keys)
    assert "lm_head.weight" not in keys, "tied lm_head was saved"
    sizes = {p.name: p.stat().st_size for p in sorted(folder.iterdir())}
    print(f"[{NAME}] ok: files {sizes}; parity {(parity_dir / f'{NAME}.safetensors').stat().st_size} bytes")
    versions = dict(torch=torch.__version__, transformers=transformers.__version__,
                    tokenizers=__import__("tokenizers").__version__, numpy=np.__version__)
    print("versions:", versions)


if __name__ == "__main__":
    main()
