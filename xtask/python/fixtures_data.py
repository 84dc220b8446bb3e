#!/usr/bin/env python3
"""Golden fixtures for the dataset half of `ft-data` (loading, shuffle, tokenization, alignment).

Run by `cargo xtask fixtures data`, which builds a virtual environment from
`xtask/python/requirements-data.txt` (pinned versions; no PyTorch) and runs

    python xtask/python/fixtures_data.py --out tests/fixtures/data \
        --shared ../shared --minilm ~/.cache/ft-minilm

Everything it writes is deterministic: a rerun with the pinned versions gives the same files.

* `mini/`: small data files made here (CoNLL text, JSON Lines, a headerless CSV, Parquet files
  written by `datasets` with `ClassLabel` metadata): tricky text (accents, CJK, emoji, empty-ish
  words, sentences longer than the tiny tokenizers' 40-token limit).
* `expected/<case>.jsonl`: what transformers' fast tokenizer (`AutoTokenizer`) plus the notebook's
  `tokenize_and_align_labels` (or `tok(batch["text"], truncation=True, max_length=N)` and the
  label) give on them, through `datasets.load_dataset(...).map(batched=True)` — one
  `{"input_ids", "attention_mask", "labels"}` per row, exactly what `ft data tokenize` writes.
  `cases.json` lists the cases and the `ft data tokenize` arguments of each.
* `real.json`: digests over the real data in `../shared/data` with all-MiniLM-L6-v2's tokenizer:
  one FNV-1a-64 hash per row of (input_ids, labels) for all 3,250 CoNLL validation sentences and
  all 7,600 AG News test texts (max_length 256), the first rows in full, and the row indices the
  notebook's subsample picks (`shuffle(seed=42).select(range(n))`) for AG News test, CoNLL train
  and validation and IMDB train.
* `shuffle.json`: `np.random.default_rng(seed).permutation(n)` for several seeds and lengths (in
  full for small n, else the first 64 values and a hash), `Dataset.shuffle(seed=42)` and
  `train_test_split` orders from `datasets` itself.

Row hash (`fnv_row`): FNV-1a 64 over the little-endian int64 bytes of input_ids, then the byte
`|`, then those of the labels (a single int for text classification).
"""

import argparse
import json
import os
import platform
import shutil
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import tokenizers
import transformers
from datasets import ClassLabel, Dataset, Features, Sequence, Value, load_dataset
from transformers import AutoTokenizer

NER = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
NEWS = ["World", "Sports", "Business", "Sci/Tech"]


def fnv(data: bytes, h: int = 0xCBF29CE484222325) -> int:
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def ints_bytes(values) -> bytes:
    return np.asarray(values, dtype="<i8").tobytes()


def fnv_row(ids, labels) -> str:
    labels = labels if isinstance(labels, list) else [labels]
    return f"{fnv(ints_bytes(ids) + b'|' + ints_bytes(labels)):016x}"


def fnv_ints(values) -> str:
    return f"{fnv(ints_bytes(values)):016x}"


# --- the notebook's functions -------------------------------------------------------------------


def make_tokenize_and_align_labels(tok, label_all_tokens=False, b_to_i=None, max_length=None):
    """The notebook's tokenize_and_align_labels (label_all_tokens as transformers' run_ner.py)."""

    def tokenize_and_align_labels(examples):
        kwargs = {"max_length": max_length} if max_length else {}
        tokenized = tok(examples["tokens"], truncation=True, is_split_into_words=True, **kwargs)
        labels = []
        for i in range(len(examples["tokens"])):
            ids = tokenized.word_ids(batch_index=i)
            ex_labels = examples["ner_tags"][i]
            aligned = []
            prev = None
            for wid in ids:
                if wid is None:
                    aligned.append(-100)
                elif wid != prev:
                    aligned.append(ex_labels[wid])
                else:
                    aligned.append(b_to_i[ex_labels[wid]] if label_all_tokens else -100)
                prev = wid
            labels.append(aligned)
        tokenized["labels"] = labels
        return tokenized

    return tokenize_and_align_labels


def make_tok_text(tok, max_length=None):
    def tok_text(batch):
        kwargs = {"max_length": max_length} if max_length else {}
        return tok(batch["text"], truncation=True, padding=False, **kwargs)

    return tok_text


def b_to_i_map(names):
    out = []
    for i, n in enumerate(names):
        if n.startswith("B-") and ("I-" + n[2:]) in names:
            out.append(names.index("I-" + n[2:]))
        else:
            out.append(i)
    return out


# --- mini data ----------------------------------------------------------------------------------

NER_SENTENCES = [
    # (tokens, ner tags, pos, chunk) -- pos/chunk are valid CoNLL-2003 tags
    (["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."], [3, 0, 7, 0, 0, 0, 7, 0, 0]),
    (["Peter", "Blackburn"], [1, 2]),
    (["Zürich", "'s", "Müller", "visited", "São", "Paulo", "and", "Kraków", "."], [5, 0, 1, 0, 5, 6, 0, 5, 0]),
    (["Angela", "Merkel", "met", "Emmanuel", "Macron", "in", "Straßburg", "on", "2023-05-01", "."], [1, 2, 0, 1, 2, 0, 5, 0, 0, 0]),
    (["東京", "is", "big", "😀", "!"], [5, 0, 0, 0, 0]),
    (["The", "International", "Business", "Machines", "Corporation", "(", "IBM", ")", "announced", "that",
      "its", "subsidiary", "in", "Research", "Triangle", "Park", ",", "North", "Carolina", ",", "would",
      "hire", "approximately", "twelve", "hundred", "additional", "engineers", "before", "the", "end",
      "of", "the", "fiscal", "year", ",", "according", "to", "spokeswoman", "Jennifer", "Lopez-Smithson", "."],
     [0, 3, 4, 4, 4, 0, 3, 0, 0, 0, 0, 0, 0, 5, 6, 6, 0, 5, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      0, 0, 0, 0, 1, 2, 0]),
    (["unbelievably", "supercalifragilisticexpialidocious", "naïve", "coöperation"], [0, 7, 0, 0]),
    (["S.", "Korea", "beat", "U.S.", "3-1", "at", "Wembley"], [5, 6, 0, 5, 0, 0, 5]),
]

NEWS_ROWS = [
    ("Wall St. Bears Claw Back Into the Black (Reuters) Reuters - Short-sellers, Wall Street's dwindling\\band of ultra-cynics, are seeing green again.", 2),
    ("Olympics: Phelps wins gold in Athens, his fifth of the Games", 1),
    ("Zürich-based Müller AG reports naïve café earnings — €1.2bn, up 5%", 2),
    ("東京 stocks rally as 円 weakens 😀", 0),
    ("A second\\team of rocketeers competing for the  #36;10 million Ansari X Prize, a contest for\\privately funded suborbital space flight, has officially announced the first\\launch date for its manned rocket. " * 2, 3),
    ("short", 3),
    ("Scientists discover new species of deep-sea fish near the Mariana Trench", 3),
    ("Iraq:  quot;Insurgents quot; attack convoy north of Baghdad", 0),
]


def write_mini(out: Path) -> dict:
    mini = out / "mini"
    if mini.exists():
        shutil.rmtree(mini)
    (mini / "ner").mkdir(parents=True)
    (mini / "ner_parquet").mkdir()
    # CoNLL text: -DOCSTART-, blank lines, a trailing sentence without a final blank line.
    lines = ["-DOCSTART- -X- -X- O", ""]
    for k, (toks, tags) in enumerate(NER_SENTENCES):
        if k == 4:
            lines += ["-DOCSTART- -X- -X- O", ""]
        for t, tag in zip(toks, tags):
            lines.append(f"{t} NNP B-NP {NER[tag]}")
        lines.append("")
    text = "\n".join(lines).rstrip("\n") + "\n"
    (mini / "ner" / "validation.txt").write_text(text, encoding="utf-8")
    features = Features({
        "id": Value("string"),
        "tokens": Sequence(Value("string")),
        "ner_tags": Sequence(ClassLabel(names=NER)),
    })
    ner_ds = Dataset.from_dict(
        {"id": [str(i) for i in range(len(NER_SENTENCES))], "tokens": [s[0] for s in NER_SENTENCES],
         "ner_tags": [s[1] for s in NER_SENTENCES]},
        features=features,
    )
    ner_ds.to_parquet(str(mini / "ner_parquet" / "validation.parquet"))
    # News: JSON Lines, headerless CSV (AG News layout), Parquet with ClassLabel.
    with open(mini / "news.jsonl", "w", encoding="utf-8") as f:
        for t, l in NEWS_ROWS:
            f.write(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n")
    with open(mini / "news.csv", "w", encoding="utf-8", newline="") as f:
        for t, l in NEWS_ROWS:
            title, _, desc = t.partition(" ")
            q = lambda s: '"' + s.replace('"', '""') + '"'
            f.write(",".join([q(str(l + 1)), q(title), q(desc)]) + "\n")
    news_ds = Dataset.from_dict(
        {"text": [t for t, _ in NEWS_ROWS], "label": [l for _, l in NEWS_ROWS]},
        features=Features({"text": Value("string"), "label": ClassLabel(names=NEWS)}),
    )
    news_ds.to_parquet(str(mini / "news.parquet"))
    return {"ner_sentences": len(NER_SENTENCES), "news_rows": len(NEWS_ROWS)}


# --- expected tokenizations ----------------------------------------------------------------------


def write_jsonl(path: Path, ds) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in ds:
            obj = {"input_ids": row["input_ids"], "attention_mask": row["attention_mask"]}
            if "labels" in row:
                obj["labels"] = row["labels"]
            f.write(json.dumps(obj, separators=(",", ":")) + "\n")


def expected_cases(out: Path, models: dict) -> list:
    exp = out / "expected"
    if exp.exists():
        shutil.rmtree(exp)
    exp.mkdir()
    mini = out / "mini"
    cases = []

    def ner_case(name, model, data, args, label_all=False, max_length=None, split="validation"):
        tok = AutoTokenizer.from_pretrained(models[model])
        ds = load_dataset(data[0], **data[1])[split]
        fn = make_tokenize_and_align_labels(tok, label_all, b_to_i_map(NER), max_length)
        enc = ds.map(fn, batched=True, remove_columns=ds.column_names)
        write_jsonl(exp / f"{name}.jsonl", enc)
        cases.append({"name": name, "model": model, "args": args})

    def text_case(name, model, data, args, max_length=None, seed=None, select=None, label="label"):
        tok = AutoTokenizer.from_pretrained(models[model])
        ds = load_dataset(data[0], **data[1])["train"]
        if seed is not None:
            ds = ds.shuffle(seed=seed)
        if select is not None:
            ds = ds.select(range(select))
        enc = ds.map(make_tok_text(tok, max_length), batched=True)
        enc = enc.rename_column(label, "labels").remove_columns(["text"])
        write_jsonl(exp / f"{name}.jsonl", enc)
        cases.append({"name": name, "model": model, "args": args})

    ner_pq = ("parquet", {"data_files": {"validation": str(mini / "ner_parquet" / "validation.parquet")}})
    for model in ["tiny-bert-tokcls", "tiny-distilbert-seqcls", "minilm"]:
        ner_case(f"ner_parquet_{model}", model, ner_pq,
                 ["--task", "token-classification", "--source", "mini/ner_parquet/validation.parquet"])
    ner_case("ner_parquet_tiny-bert-tokcls_label_all", "tiny-bert-tokcls", ner_pq,
             ["--task", "token-classification", "--source", "mini/ner_parquet/validation.parquet",
              "--label-all-tokens"], label_all=True)
    ner_case("ner_parquet_minilm_max16", "minilm", ner_pq,
             ["--task", "token-classification", "--source", "mini/ner_parquet/validation.parquet",
              "--max-length", "16"], max_length=16)
    # The CoNLL text file holds the same sentences: same expected output as the Parquet file.
    cases.append({"name": "ner_parquet_tiny-bert-tokcls", "model": "tiny-bert-tokcls",
                  "args": ["--task", "token-classification", "--source", "mini/ner/validation.txt"]})
    news_pq = ("parquet", {"data_files": {"train": str(mini / "news.parquet")}})
    # The headerless AG News-style CSV through the ag_news recipe gives the same rows.
    cases.append({"name": "news_minilm", "model": "minilm",
                  "args": ["--source", "ag_news", "--data", "mini/news.csv", "--split", "train"]})
    news_js = ("json", {"data_files": {"train": str(mini / "news.jsonl")}})
    for model in ["tiny-distilbert-seqcls", "tiny-bert-seqcls", "minilm"]:
        text_case(f"news_{model}", model, news_pq,
                  ["--task", "text-classification", "--source", "mini/news.parquet"])
    text_case("news_minilm_max12", "minilm", news_js,
              ["--task", "text-classification", "--source", "mini/news.jsonl", "--max-length", "12"], max_length=12)
    text_case("news_minilm_shuffle", "minilm", news_js,
              ["--task", "text-classification", "--source", "mini/news.jsonl", "--seed", "42", "--select", "5"],
              seed=42, select=5)
    return cases


# --- real data -----------------------------------------------------------------------------------


def real_digests(shared: Path, minilm: str) -> dict:
    data = shared / "data"
    tok = AutoTokenizer.from_pretrained(minilm)
    out = {}
    conll = load_dataset("parquet", data_files={s: str(data / "conll2003" / f"{s}.parquet")
                                                 for s in ["train", "validation", "test"]})
    enc = conll["validation"].map(make_tokenize_and_align_labels(tok), batched=True)
    out["conll_validation_minilm"] = {
        "rows": len(enc),
        "hashes": [fnv_row(r["input_ids"], r["labels"]) for r in enc],
        "first": [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in enc.select(range(5))],
        "tokens": sum(len(r) for r in enc["input_ids"]),
    }
    ag = load_dataset("parquet", data_files={"test": str(data / "ag_news" / "test.parquet")})["test"]
    enc = ag.map(make_tok_text(tok, 256), batched=True)
    out["ag_news_test_minilm_256"] = {
        "rows": len(enc),
        "hashes": [fnv_row(r["input_ids"], r["label"]) for r in enc],
        "first": [{"input_ids": r["input_ids"], "labels": r["label"]} for r in enc.select(range(3))],
        "tokens": sum(len(r) for r in enc["input_ids"]),
    }
    imdb_train = load_dataset("parquet", data_files={"train": str(data / "imdb" / "train.parquet")})["train"]

    def subsample(ds, n):
        idx = ds.add_column("_row", list(range(len(ds)))).shuffle(seed=42).select(range(n))["_row"]
        return list(idx)

    out["subsample"] = {
        "ag_news_test_1000": subsample(ag, 1000),
        "conll_train_2000": subsample(conll["train"], 2000),
        "conll_validation_1000": subsample(conll["validation"], 1000),
        "imdb_train_2000": subsample(imdb_train, 2000),
    }
    return out


def shuffle_fixtures() -> dict:
    perms = []
    for seed in [0, 1, 42, 1234, 2**32 + 5, 2**63 - 1]:
        for n in [0, 1, 2, 3, 10, 1000, 7600, 14041, 120000]:
            p = np.random.default_rng(seed).permutation(n).tolist()
            entry = {"seed": seed, "n": n, "hash": fnv_ints(p)}
            entry["values" if n <= 1000 else "head"] = p if n <= 1000 else p[:64]
            perms.append(entry)
    ds = Dataset.from_dict({"i": list(range(7600))})
    shuffled = list(ds.shuffle(seed=42)["i"])
    splits = []
    for n, test_size, train_size, seed in [(10, 0.25, None, 42), (7600, 0.1, None, 42), (1000, 200, None, 7),
                                           (1000, 0.2, 0.5, 3), (1000, None, 300, 11)]:
        d = Dataset.from_dict({"i": list(range(n))}).train_test_split(test_size=test_size, train_size=train_size, seed=seed)
        splits.append({"n": n, "test_size": test_size, "train_size": train_size, "seed": seed,
                       "train_hash": fnv_ints(list(d["train"]["i"])), "test_hash": fnv_ints(list(d["test"]["i"])),
                       "train_len": len(d["train"]), "test_len": len(d["test"]),
                       "test_head": list(d["test"]["i"])[:10]})
    return {"permutations": perms, "datasets_shuffle_42_n7600": {"hash": fnv_ints(shuffled), "head": shuffled[:64]},
            "train_test_split": splits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / ".." / "shared")
    ap.add_argument("--minilm", default=os.path.expanduser("~/.cache/ft-minilm"))
    args = ap.parse_args()
    datasets.disable_progress_bars()
    datasets.disable_caching()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    root = Path(__file__).resolve().parents[2]
    models = {name: str(root / "tests" / "fixtures" / "models" / name)
              for name in ["tiny-bert-tokcls", "tiny-bert-seqcls", "tiny-distilbert-seqcls"]}
    models["minilm"] = args.minilm
    info = write_mini(out)
    cases = expected_cases(out, models)
    (out / "cases.json").write_text(json.dumps({"cases": cases, **info}, indent=1) + "\n")
    (out / "shuffle.json").write_text(json.dumps(shuffle_fixtures()) + "\n")
    (out / "real.json").write_text(json.dumps(real_digests(args.shared, args.minilm)) + "\n")
    versions = {"python": platform.python_version(), "datasets": datasets.__version__,
                "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                "numpy": np.__version__, "pyarrow": pa.__version__}
    (out / "versions.json").write_text(json.dumps(versions, indent=1) + "\n")
    print(json.dumps(versions))


if __name__ == "__main__":
    main()
