#!/usr/bin/env python3
"""Generate model parity fixtures for the `ft` Rust crates.

Builds tiny, random-weight Hugging Face BERT / DistilBERT checkpoints (with
WordPiece tokenizers trained on a built-in corpus, no Hub access needed) and
records what `transformers` computes on a fixed set of texts, so the Rust
re-implementation can be tested against it.

Usage:
    python fixtures_models.py --out tests/fixtures [--minilm DIR]

Output (under --out):
    models/<name>/            config.json, model.safetensors (or sharded), tokenizer files
    parity/<name>.safetensors inputs + expected outputs (float32 / int64)
    parity/<name>.json        texts, unpadded encodings, pipeline outputs
    parity/minilm.*           (only with --minilm) outputs of all-MiniLM-L6-v2

Everything is seeded; running it twice gives the same files (up to the
`transformers_version` string written into config.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
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
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

import transformers
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
    DistilBertModel,
    DistilBertTokenizerFast,
)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

SEED = 1234
MAX_POS = 40
VOCAB_TARGET = 800
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4

AG_LABELS = ["World", "Sports", "Business", "Sci/Tech"]
CONLL_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]

# --------------------------------------------------------------------------------------
# Built-in training corpus (news-like English, names, places, accents, a little CJK).
# --------------------------------------------------------------------------------------

HANDWRITTEN = [
    "The central bank raised interest rates by a quarter of a percentage point on Tuesday.",
    "Shares of Apple and Microsoft rose sharply after the quarterly earnings reports.",
    "Angela Merkel met Emmanuel Macron in Berlin to discuss the European budget.",
    "The United Nations called for an immediate ceasefire in the region.",
    "Lionel Messi scored twice as Barcelona beat Real Madrid in the final.",
    "Serena Williams won her first match of the season at the Australian Open.",
    "The World Health Organization said the outbreak was under control.",
    "Oil prices fell to their lowest level in three years amid weak demand.",
    "Google announced a new research lab in Zürich focused on machine learning.",
    "A small café in Paris became famous after a visit from the president.",
    "Critics called the plan naïve and said it would never pass parliament.",
    "The festival in São Paulo attracted more than a million visitors.",
    "Investors in Tokyo watched the yen closely as the market opened.",
    "The delegation travelled from 東京 to 北京 for the trade talks.",
    "Officials in 東京 said the new rail line would open next spring.",
    "A summit in 北京 brought together leaders from across Asia.",
    "The company's chief executive resigned after the accounting scandal.",
    "NASA launched a new satellite to study the climate of distant planets.",
    "Scientists at Oxford University published a study on antibiotic resistance.",
    "The election results were announced late on Sunday night.",
    "Protesters gathered outside the parliament building in London.",
    "The striker signed a four-year contract with Manchester United.",
    "Amazon said it would hire ten thousand new workers before the holidays.",
    "The Federal Reserve kept its benchmark rate unchanged.",
    "Heavy rain caused flooding in several towns along the river.",
    "The minister promised to cut taxes for small businesses.",
    "Renée and José opened a crêpe stand near the old cathédrale.",
    "The résumé of the new director impressed the board of Siemens.",
    "Björn Borg returned to Stockholm for a charity tennis match.",
    "François Hollande gave a speech at the Élysée Palace.",
    "The naïve investor lost money on a risky start-up in Zürich.",
    "Tourists in São Paulo and Rio de Janeiro enjoyed the carnival.",
    "Müller scored the winning goal for Bayern Munich in the 89th minute.",
    "The exhibition at the Louvre features paintings by Monet and Cézanne.",
    "Toyota and Honda reported strong sales in North America.",
    "The European Commission fined the tech giant for breaking competition rules.",
    "Wildfires forced thousands of residents to leave their homes in California.",
    "The Prime Minister of Canada visited Ottawa, Toronto and Vancouver.",
    "Researchers found that the new vaccine was safe and effective.",
    "The team lost 3-1 at home, their fourth defeat in a row.",
    "Inflation rose to 4.5% in March, the highest figure since 2008.",
    "The merger, worth $12 billion, still needs approval from regulators.",
    "Tesla's stock jumped 10% after Elon Musk announced record deliveries.",
    "The International Monetary Fund cut its forecast for global growth.",
    "Barack Obama spoke at a conference in Chicago on Monday.",
    "The Olympic Games will be held in Los Angeles in 2028.",
    "Nokia and Ericsson compete for contracts to build 5G networks.",
    "The court in The Hague ruled in favour of the fishermen.",
    "Rafael Nadal defeated Roger Federer in straight sets.",
    "The storm knocked out power to half a million homes in Florida.",
    "Samsung unveiled a folding phone at an event in Seoul.",
    "The airline cancelled hundreds of flights because of the strike.",
    "Vladimir Putin and Xi Jinping signed an energy agreement.",
    "The museum in Madrid reopened after a long renovation.",
    "Students in Zürich and Geneva protested against higher fees.",
    "The café owner said business was slow during the winter.",
    "A naïve plan to rescue the bank was quickly abandoned.",
    "The orchestra performed in Vienna, Prague and Budapest.",
    "The coach praised the defence after a goalless draw.",
    "Profits at the bank doubled thanks to higher interest rates.",
    "Will the talks succeed? Nobody knows yet!",
    "\"We are ready,\" the captain said (after the match).",
    "Results: two wins, one draw; no defeats so far.",
    "What happened in Geneva? The answer surprised everyone!",
    "The report (published on Friday) said: \"growth is slowing\".",
    "It's the team's best season since 1998, isn't it?",
]

PEOPLE = [
    "Angela Merkel", "Emmanuel Macron", "Joe Biden", "Boris Johnson", "Narendra Modi",
    "Jacinda Ardern", "Lionel Messi", "Serena Williams", "Elon Musk", "Tim Cook",
    "Satya Nadella", "Christine Lagarde", "Olaf Scholz", "Pedro Sánchez", "Luiz Inácio Lula",
    "José Mourinho", "Zoë Kravitz", "Thomas Müller", "Søren Kierkegaard", "Ana Gómez",
]
ORGS = [
    "Microsoft", "Google", "Apple", "the United Nations", "the European Union", "Siemens",
    "Nestlé", "Volkswagen", "Reuters", "the World Bank", "FIFA", "Toyota", "Barclays",
    "the Red Cross", "Airbus", "Sony", "Deutsche Bank", "Novartis", "UEFA", "Petrobras",
]
PLACES = [
    "Zürich", "São Paulo", "Berlin", "Paris", "London", "New York", "Tokyo", "Beijing",
    "Geneva", "Madrid", "Moscow", "Sydney", "Toronto", "Mumbai", "Cairo", "Montréal",
    "Bogotá", "Kraków", "Reykjavík", "東京", "北京",
]
VERBS_PERSON = [
    "visited", "criticised", "praised", "met officials from", "spoke about", "warned",
    "signed a deal with", "left", "joined", "sued",
]
TIMES = [
    "on Monday", "on Tuesday", "last week", "in March", "on Friday", "this morning",
    "in 2019", "yesterday", "late on Sunday", "earlier this year",
]
TOPICS = [
    "trade", "climate change", "interest rates", "the budget", "energy prices",
    "the election", "security", "a new stadium", "artificial intelligence", "the café industry",
]
TEMPLATES = [
    "{p} {v} {o} in {l} {t}.",
    "{o} said {t} that it would open a new office in {l}.",
    "In {l}, {p} talked about {topic} with reporters.",
    "{p} and {p2} discussed {topic} at a meeting in {l}.",
    "Shares of {o} fell after {p} commented on {topic}.",
    "{t}, {o} announced a plan to invest in {l}.",
    "Officials in {l} criticised {o} over {topic}.",
    "The naïve proposal from {o} on {topic} was rejected in {l}.",
    "{p} flew from {l} to {l2} {t}.",
    "Fans in {l} celebrated as {o} won the title {t}.",
]


def build_corpus() -> list[str]:
    rng = random.Random(SEED)
    sents = list(HANDWRITTEN)
    for _ in range(320):
        tpl = rng.choice(TEMPLATES)
        p, p2 = rng.sample(PEOPLE, 2)
        l, l2 = rng.sample(PLACES, 2)
        sents.append(
            tpl.format(
                p=p, p2=p2, v=rng.choice(VERBS_PERSON), o=rng.choice(ORGS), l=l, l2=l2,
                t=rng.choice(TIMES), topic=rng.choice(TOPICS),
            )
        )
    return sents


# --------------------------------------------------------------------------------------
# Parity inputs
# --------------------------------------------------------------------------------------

LONG_TEXT = (
    "The quarterly report published on Thursday showed that revenue at the company grew by "
    "twelve percent compared with the same period last year, driven mostly by strong demand in "
    "Europe and Asia, while costs for energy, transport and wages also increased, so analysts "
    "in London and New York expect the board to announce further savings before the end of the year."
)

TEXTS = [
    "The central bank raised interest rates on Tuesday.",          # 0 plain English
    "Angela Merkel visited Microsoft in Zürich.",                  # 1 names (PER/ORG/LOC)
    "",                                                            # 2 empty string
    "Café naïve 東京 and 北京",                                     # 3 accents + CJK
    "Wait... what?! (Really) -- yes: 100% #1, \"quoted\" & done.",  # 4 punctuation heavy
    LONG_TEXT,                                                     # 5 > 40 tokens -> truncated
    "Thumbs up 👍 for the new café \u2603 today",                  # 6 emoji / unknown chars
    "Serena Williams won in Paris. Fans in São Paulo celebrated.",  # 7 two sentences
]

# Sentence pairs (token_type_ids = 1 for the second segment), tiny-bert only.
PAIRS = [
    ("Who visited Zürich?", "Angela Merkel visited Microsoft in Zürich."),
    ("Oil prices fell.", "Demand was weak in Asia and Europe last week."),
]

MINILM_TEXTS = [
    "A man is playing a guitar.",
    "The stock market fell sharply today.",
    "Café in Zürich",
    "How do I bake bread?",
]


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def learn_wordpiece_vocab(tok: Tokenizer, corpus: list[str], vocab_size: int) -> dict[str, int]:
    """Learn a WordPiece vocabulary the way `tokenizers.trainers.WordPieceTrainer` does.

    WordPieceTrainer is a BPE trainer with a "##" continuing-subword prefix: the vocab is
    [special tokens] + [initial alphabet, incl. "##c" forms] + [merged pieces, in merge order],
    where each step merges the most frequent adjacent pair. The Rust trainer breaks ties between
    equally frequent pairs by internal ids that depend on HashMap iteration order, so two runs can
    give different vocabularies (observed with tokenizers 0.23.3). This re-implementation breaks ties
    lexicographically, so the fixture is reproducible. Words are produced by the tokenizer's own
    normalizer + pre-tokenizer, exactly as the trainer would see them.
    """
    counts: dict[str, int] = {}
    for sent in corpus:
        norm = tok.normalizer.normalize_str(sent)
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(norm):
            counts[word] = counts.get(word, 0) + 1
    words = sorted(counts)
    splits = {w: [w[0]] + ["##" + c for c in w[1:]] for w in words}
    vocab: list[str] = list(SPECIAL_TOKENS)
    initial = sorted({p for w in words for p in splits[w]}, key=lambda t: (t.startswith("##"), t))
    vocab += [t for t in initial if t not in vocab]
    seen = set(vocab)
    while len(vocab) < vocab_size:
        pairs: dict[tuple[str, str], int] = {}
        for w in words:
            sp = splits[w]
            for a, b in zip(sp, sp[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + counts[w]
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merged = a + b[2:]
        for w in words:
            sp = splits[w]
            if len(sp) < 2:
                continue
            out, i = [], 0
            while i < len(sp):
                if i + 1 < len(sp) and sp[i] == a and sp[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(sp[i])
                    i += 1
            splits[w] = out
        if merged not in seen:
            seen.add(merged)
            vocab.append(merged)
    return {t: i for i, t in enumerate(vocab)}


def build_tokenizer(corpus: list[str], lowercase: bool) -> Tokenizer:
    normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=True,
        # uncased: None -> follows lowercase (strip accents), like bert-base-uncased
        # cased: False -> keep accents, like bert-base-cased
        strip_accents=None if lowercase else False,
        lowercase=lowercase,
    )
    probe = Tokenizer(WordPiece(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    probe.normalizer = normalizer
    probe.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    vocab = learn_wordpiece_vocab(probe, corpus, VOCAB_TARGET)

    tok = Tokenizer(
        WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##", max_input_chars_per_word=100)
    )
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(SPECIAL_TOKENS)
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.no_padding()
    tok.no_truncation()
    return tok


def wrap_tokenizer(raw: Tokenizer, lowercase: bool, distil: bool):
    cls = DistilBertTokenizerFast if distil else BertTokenizerFast
    return cls(
        tokenizer_object=raw,
        do_lower_case=lowercase,
        strip_accents=None if lowercase else False,
        tokenize_chinese_chars=True,
        model_max_length=MAX_POS,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )


@torch.no_grad()
def randomize(model: torch.nn.Module, gen: torch.Generator, keep: set[str] = frozenset()) -> None:
    """Overwrite every float parameter with random values (no zero biases)."""
    layer_norm_params = set()
    for mname, mod in model.named_modules():
        if isinstance(mod, torch.nn.LayerNorm):
            layer_norm_params.add(f"{mname}.weight" if mname else "weight")
            layer_norm_params.add(f"{mname}.bias" if mname else "bias")
    for name, p in model.named_parameters():  # tied weights appear once
        if name in keep:
            continue
        r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
        if name in layer_norm_params:
            if name.endswith(".weight"):
                p.copy_(1.0 + 0.1 * r)
            else:
                p.copy_(0.1 * r)
        else:
            p.copy_(0.5 * r)


def sinusoidal_table(n_pos: int, dim: int) -> torch.Tensor:
    """Independent re-implementation of DistilBERT's table (float64 -> float32)."""
    pos = np.arange(n_pos, dtype=np.float64)[:, None]
    j = np.arange(dim)[None, :]
    angle = pos / np.power(10000.0, 2 * (j // 2) / dim)
    out = np.zeros((n_pos, dim), dtype=np.float64)
    out[:, 0::2] = np.sin(angle[:, 0::2])
    out[:, 1::2] = np.cos(angle[:, 1::2])
    return torch.from_numpy(out.astype(np.float32))


def to_py(obj):
    if isinstance(obj, dict):
        return {k: to_py(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_py(v) for v in obj]
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    return obj


# --------------------------------------------------------------------------------------
# Model specs
# --------------------------------------------------------------------------------------


def bert_config(vocab: int, **kw) -> BertConfig:
    base = dict(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=MAX_POS, pad_token_id=0,
        type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu",
    )
    base.update(kw)
    return BertConfig(**base)


def distil_config(vocab: int, **kw) -> DistilBertConfig:
    base = dict(
        vocab_size=vocab, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
        max_position_embeddings=MAX_POS, pad_token_id=0, activation="gelu",
        sinusoidal_pos_embds=False,
    )
    base.update(kw)
    return DistilBertConfig(**base)


def label_maps(labels):
    return {i: l for i, l in enumerate(labels)}, {l: i for i, l in enumerate(labels)}


def model_specs(vocab_uncased: int, vocab_cased: int):
    ag3 = label_maps(AG_LABELS[:3])
    ag4 = label_maps(AG_LABELS)
    conll = label_maps(CONLL_LABELS)
    return [
        dict(
            name="tiny-bert", kind="base", family="bert", cased=False,
            cls=BertModel, auto=AutoModel, init_kw=dict(add_pooling_layer=True),
            config=bert_config(vocab_uncased, hidden_act="gelu", type_vocab_size=2, layer_norm_eps=1e-12),
        ),
        dict(
            name="tiny-bert-seqcls", kind="seqcls", family="bert", cased=True,
            cls=BertForSequenceClassification, auto=AutoModelForSequenceClassification, init_kw={},
            config=bert_config(
                vocab_cased, hidden_act="gelu_new", layer_norm_eps=1e-5,
                num_labels=3, id2label=ag3[0], label2id=ag3[1],
            ),
        ),
        dict(
            name="tiny-bert-tokcls", kind="tokcls", family="bert", cased=True, shard="100KB",
            cls=BertForTokenClassification, auto=AutoModelForTokenClassification, init_kw={},
            config=bert_config(
                vocab_cased, hidden_act="relu", type_vocab_size=1,
                num_labels=9, id2label=conll[0], label2id=conll[1],
            ),
        ),
        dict(
            name="tiny-distilbert", kind="base", family="distilbert", cased=False,
            cls=DistilBertModel, auto=AutoModel, init_kw={},
            config=distil_config(vocab_uncased, activation="gelu", sinusoidal_pos_embds=False),
        ),
        dict(
            name="tiny-distilbert-seqcls", kind="seqcls", family="distilbert", cased=False,
            cls=DistilBertForSequenceClassification, auto=AutoModelForSequenceClassification, init_kw={},
            config=distil_config(
                vocab_uncased, sinusoidal_pos_embds=True, seq_classif_dropout=0.2,
                num_labels=4, id2label=ag4[0], label2id=ag4[1],
            ),
        ),
        dict(
            name="tiny-distilbert-tokcls", kind="tokcls", family="distilbert", cased=False,
            cls=DistilBertForTokenClassification, auto=AutoModelForTokenClassification, init_kw={},
            config=distil_config(
                vocab_uncased, activation="relu",
                num_labels=9, id2label=conll[0], label2id=conll[1],
            ),
        ),
    ]


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def encode_batch(tokenizer, texts, family):
    enc = tokenizer(
        texts, truncation=True, padding=True, max_length=MAX_POS,
        return_tensors="pt", return_token_type_ids=(family == "bert"),
    )
    return {k: v.to(torch.int64) for k, v in enc.items()}


def run_model(model, inputs):
    with torch.inference_mode():
        out = model(**inputs)
    return out


def output_tensors(out, kind, prefix=""):
    res = {}
    if kind == "base":
        res[prefix + "last_hidden_state"] = out.last_hidden_state
        if getattr(out, "pooler_output", None) is not None:
            res[prefix + "pooler_output"] = out.pooler_output
    else:
        res[prefix + "logits"] = out.logits
    return res


def unpadded_encodings(tokenizer, texts):
    encs = []
    for t in texts:
        e = tokenizer(t, truncation=True, max_length=MAX_POS, return_offsets_mapping=True)
        encs.append(
            dict(
                input_ids=list(e["input_ids"]),
                tokens=tokenizer.convert_ids_to_tokens(e["input_ids"]),
                word_ids=e.word_ids(),
                offsets=[list(o) for o in e["offset_mapping"]],
            )
        )
    return encs


def run_pipeline(folder: Path, kind: str, texts):
    task = "text-classification" if kind == "seqcls" else "token-classification"
    kwargs = {} if kind == "seqcls" else dict(aggregation_strategy="simple")
    pipe = transformers.pipeline(task, model=str(folder), tokenizer=str(folder), device="cpu", **kwargs)
    results, notes = [], []
    for i, t in enumerate(texts):
        try:
            r = pipe(t)
        except Exception as e:  # noqa: BLE001 - record whatever transformers does
            notes.append(dict(index=i, call="default", error=f"{type(e).__name__}: {e}"[:300]))
            if kind == "seqcls":
                try:
                    r = pipe(t, truncation=True, max_length=MAX_POS)
                    notes.append(dict(index=i, call="retried with truncation=True, max_length=40"))
                except Exception as e2:  # noqa: BLE001
                    notes.append(dict(index=i, call="truncation=True", error=f"{type(e2).__name__}: {e2}"[:300]))
                    results.append(None)
                    continue
            else:
                results.append(None)
                continue
        if kind == "seqcls":
            r = r[0] if isinstance(r, list) else r
            results.append(dict(label=r["label"], score=float(r["score"])))
        else:
            results.append(
                [
                    dict(
                        entity_group=g["entity_group"], score=float(g["score"]), word=g["word"],
                        start=None if g["start"] is None else int(g["start"]),
                        end=None if g["end"] is None else int(g["end"]),
                    )
                    for g in r
                ]
            )
    return results, notes


def generate_model(spec, tokenizers_by_case, out_root: Path, gen: torch.Generator):
    name, kind, family = spec["name"], spec["kind"], spec["family"]
    folder = out_root / "models" / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)

    raw_tok = tokenizers_by_case[spec["cased"]]
    tokenizer = wrap_tokenizer(raw_tok, lowercase=not spec["cased"], distil=(family == "distilbert"))
    assert len(tokenizer) == spec["config"].vocab_size, (len(tokenizer), spec["config"].vocab_size)

    model = spec["cls"](spec["config"], **spec["init_kw"])
    keep = set()
    if family == "distilbert" and spec["config"].sinusoidal_pos_embds:
        keep.add("distilbert.embeddings.position_embeddings.weight")
        table = sinusoidal_table(MAX_POS, spec["config"].dim)
        with torch.no_grad():
            # transformers builds this table in _init_weights; make sure it is really there.
            pe = model.distilbert.embeddings.position_embeddings.weight
            if not torch.allclose(pe, table, atol=1e-6):
                print(f"[{name}] note: position table after construction != sinusoidal; setting it explicitly")
                pe.copy_(table)
    randomize(model, gen, keep=keep)
    model.eval()

    tokenizer.save_pretrained(folder)
    save_kw = dict(safe_serialization=True)
    if spec.get("shard"):
        save_kw["max_shard_size"] = spec["shard"]
    model.save_pretrained(folder, **save_kw)
    # transformers 5 no longer writes special_tokens_map.json; write the classic one.
    (folder / "special_tokens_map.json").write_text(
        json.dumps(
            dict(cls_token="[CLS]", mask_token="[MASK]", pad_token="[PAD]", sep_token="[SEP]", unk_token="[UNK]"),
            indent=2,
        ) + "\n",
        encoding="utf-8",
    )
    if not (folder / "vocab.txt").exists():
        vocab = sorted(raw_tok.get_vocab().items(), key=lambda kv: kv[1])
        (folder / "vocab.txt").write_text("".join(t + "\n" for t, _ in vocab), encoding="utf-8")

    # ---- reload exactly as a user would, and compute the reference outputs ----
    tok2 = AutoTokenizer.from_pretrained(folder)
    assert tok2.is_fast
    for t in TEXTS + [p for pair in PAIRS for p in pair]:
        a = raw_tok.encode(t).ids
        b = tok2(t, truncation=False)["input_ids"]
        # tokenizer.json loaded standalone must agree with transformers' tokenizer
        c = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(t).ids
        assert a == b == c, (name, t, a, b, c)

    model2 = spec["auto"].from_pretrained(folder)
    model2.eval()
    assert type(model2) is spec["cls"], type(model2)

    batch = encode_batch(tok2, TEXTS, family)
    out = run_model(model2, batch)
    ref = run_model(model, batch)
    tensors = dict(batch)
    tensors.update(output_tensors(out, kind))
    for k, v in output_tensors(ref, kind).items():
        assert torch.equal(v, tensors[k]), f"{name}: reloaded model differs on {k}"

    # eager vs sdpa attention agree (the default one is what we record)
    eager = spec["auto"].from_pretrained(folder, attn_implementation="eager").eval()
    for k, v in output_tensors(run_model(eager, batch), kind).items():
        d = (v - tensors[k]).abs().max().item()
        assert d < 1e-4, f"{name}: eager vs default differ by {d} on {k}"

    # one text at a time, no padding
    for i, t in enumerate(TEXTS):
        single = encode_batch(tok2, [t], family)
        so = run_model(model2, single)
        for k, v in output_tensors(so, kind, prefix=f"single_{i}_").items():
            tensors[k] = v
        # unpadded == padded (valid positions)
        L = single["input_ids"].shape[1]
        key = "last_hidden_state" if kind == "base" else "logits"
        sv = tensors[f"single_{i}_{key}"][0]
        bv = tensors[key][i, :L] if (kind != "seqcls") else tensors[key][i]
        assert (sv - bv).abs().max().item() < 1e-4, f"{name}: batched != single for text {i}"

    extra_json = {}
    if name == "tiny-bert":
        pb = tok2([a for a, _ in PAIRS], [b for _, b in PAIRS], truncation=True, padding=True,
                  max_length=MAX_POS, return_tensors="pt", return_token_type_ids=True)
        pb = {k: v.to(torch.int64) for k, v in pb.items()}
        po = run_model(model2, pb)
        for k, v in pb.items():
            tensors[f"pair_{k}"] = v
        tensors.update(output_tensors(po, kind, prefix="pair_"))
        extra_json["pairs"] = [list(p) for p in PAIRS]

    tensors = {k: (v.contiguous().to(torch.int64) if not v.is_floating_point() else v.contiguous().to(torch.float32))
               for k, v in tensors.items()}
    parity_dir = out_root / "parity"
    parity_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(parity_dir / f"{name}.safetensors"), metadata={"model": name})

    info = dict(
        model=name,
        model_dir=f"models/{name}",
        kind=kind,
        family=family,
        texts=TEXTS,
        max_length=MAX_POS,
        tokenizer_call=dict(truncation=True, padding=True, max_length=MAX_POS, padding_side="right",
                            return_token_type_ids=(family == "bert")),
        encodings=unpadded_encodings(tok2, TEXTS),
    )
    info.update(extra_json)
    if kind in ("seqcls", "tokcls"):
        results, notes = run_pipeline(folder, kind, TEXTS)
        info["pipeline_task"] = "text-classification" if kind == "seqcls" else "token-classification"
        if kind == "tokcls":
            info["pipeline_kwargs"] = dict(aggregation_strategy="simple")
        info["pipeline"] = results
        info["pipeline_notes"] = notes
    (parity_dir / f"{name}.json").write_text(
        json.dumps(to_py(info), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )

    # ---- sanity checks ----
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg.get("architectures") == [spec["cls"].__name__], cfg.get("architectures")
    assert cfg.get("model_type") == family, cfg.get("model_type")
    if spec.get("shard"):
        idx = folder / "model.safetensors.index.json"
        assert idx.exists(), "sharded save did not produce an index"
        shards = set(json.loads(idx.read_text())["weight_map"].values())
        assert len(shards) >= 2, shards
        assert not (folder / "model.safetensors").exists()
    if family == "distilbert" and spec["config"].sinusoidal_pos_embds:
        from safetensors import safe_open

        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            saved = f.get_tensor("distilbert.embeddings.position_embeddings.weight")
        assert torch.allclose(saved, sinusoidal_table(MAX_POS, spec["config"].dim), atol=1e-6), \
            "saved position table is not the sinusoidal one"
    long_len = int(batch["attention_mask"][TEXTS.index(LONG_TEXT)].sum())
    assert long_len == MAX_POS, long_len
    assert batch["input_ids"].shape[1] == MAX_POS
    print(f"[{name}] ok: vocab={len(tok2)} batch={tuple(batch['input_ids'].shape)} "
          f"tensors={len(tensors)}")


def generate_minilm(src: Path, out_root: Path):
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModel.from_pretrained(src).eval()
    batch = tok(MINILM_TEXTS, truncation=True, padding=True, return_tensors="pt", return_token_type_ids=True)
    batch = {k: v.to(torch.int64) for k, v in batch.items()}
    with torch.inference_mode():
        out = model(**batch)
    tensors = dict(batch)
    tensors["last_hidden_state"] = out.last_hidden_state.contiguous().float()
    tensors["pooler_output"] = out.pooler_output.contiguous().float()
    parity_dir = out_root / "parity"
    parity_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(parity_dir / "minilm.safetensors"), metadata={"model": "all-MiniLM-L6-v2"})
    info = dict(
        model="sentence-transformers/all-MiniLM-L6-v2",
        texts=MINILM_TEXTS,
        tokenizer_call=dict(truncation=True, padding=True, padding_side="right"),
        encodings=[dict(input_ids=tok(t)["input_ids"]) for t in MINILM_TEXTS],
    )
    (parity_dir / "minilm.json").write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"[minilm] ok: batch={tuple(batch['input_ids'].shape)}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="fixtures root (e.g. tests/fixtures)")
    ap.add_argument("--minilm", type=Path, default=None,
                    help="folder holding all-MiniLM-L6-v2 (see shared/scripts/fetch-minilm.sh)")
    ap.add_argument("--skip-tiny", action="store_true", help="only do the --minilm part")
    args = ap.parse_args(argv)

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    torch.use_deterministic_algorithms(True)
    out_root: Path = args.out
    out_root.mkdir(parents=True, exist_ok=True)

    if not args.skip_tiny:
        seed_everything(SEED)
        corpus = build_corpus()
        uncased = build_tokenizer(corpus, lowercase=True)
        cased = build_tokenizer(corpus, lowercase=False)
        print(f"tokenizers: uncased vocab={uncased.get_vocab_size()} cased vocab={cased.get_vocab_size()}")
        toks = {False: uncased, True: cased}
        specs = model_specs(uncased.get_vocab_size(), cased.get_vocab_size())
        for i, spec in enumerate(specs):
            gen = torch.Generator().manual_seed(SEED + i)
            torch.manual_seed(SEED + i)
            generate_model(spec, toks, out_root, gen)

    if args.minilm is not None:
        generate_minilm(args.minilm, out_root)

    versions = dict(
        torch=torch.__version__, transformers=transformers.__version__,
        tokenizers=__import__("tokenizers").__version__,
        safetensors=__import__("safetensors").__version__, numpy=np.__version__,
        python=sys.version.split()[0],
    )
    (out_root / "parity").mkdir(parents=True, exist_ok=True)
    (out_root / "parity" / "versions.json").write_text(json.dumps(versions, indent=1) + "\n")
    print("versions:", versions)


if __name__ == "__main__":
    main()
