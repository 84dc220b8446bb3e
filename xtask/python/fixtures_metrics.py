#!/usr/bin/env python3
"""Golden fixtures for the `ft-metrics` crate.

Run by `cargo xtask fixtures metrics`, which builds a virtual environment from
`xtask/python/requirements-metrics.txt` (pinned versions) and runs

    python xtask/python/fixtures_metrics.py --out tests/fixtures/metrics

It writes JSON files of randomized cases (fixed seeds, so a rerun with the pinned versions gives
the same files) that `crates/ft-metrics/tests/golden.rs` compares with ft to 1e-9. Each case is
`{"metric", "input": {"predictions", "references"}, "kwargs", "expected"}` (or `"error"` instead
of `"expected"` where the reference raises), i.e. exactly what `ft metrics METRIC --input ...
--set ...` and `ft_metrics::evaluate::compute_with` take and give.

What computes each expected value (Hugging Face `evaluate` itself is not used: its metric scripts
live on the Hub, which these machines cannot reach, so each `_compute` of evaluate's metric scripts
is reproduced below as the same call into the underlying library):

* accuracy, precision, recall, f1, confusion_matrix: scikit-learn's `accuracy_score`,
  `precision_score`, `recall_score`, `f1_score`, `confusion_matrix`, called as evaluate's
  `accuracy` / `precision` / `recall` / `f1` / `confusion_matrix` scripts call them (`references`
  as y_true, scores of one element returned as a float, others as a list). ft also passes
  `zero_division` to f1, which scikit-learn accepts.
* classification_report: scikit-learn's `classification_report` (`output_dict=True`, or the text
  for `output_dict=False`).
* seqeval: evaluate's `seqeval._compute`: `seqeval.metrics.classification_report(y_true=references,
  y_pred=predictions, suffix, output_dict=True, scheme=getattr(seqeval.scheme, scheme), mode,
  zero_division)`, "macro avg" and "weighted avg" dropped, "micro avg" as overall_precision /
  overall_recall / overall_f1, per type {precision, recall, f1, number=support}, and
  overall_accuracy = `seqeval.metrics.accuracy_score`.
* rouge: evaluate's `rouge._compute`: `rouge_score.rouge_scorer.RougeScorer(rouge_types,
  use_stemmer)` and `.score(ref, pred)` (or `.score_multi(refs, pred)` when references are lists);
  `use_aggregator=False` gives the per-pair F-measures. For `use_aggregator=True` evaluate reports
  the median of a `BootstrapAggregator` (1000 resamples from numpy's unseeded global RNG), which is
  not reproducible; ft reports the exact mean of the per-pair F-measures, and so do these fixtures
  (`summary.json` records how far the bootstrap median was from that mean here).
* bleu: evaluate's `bleu._compute`: tokens from sacrebleu's `Tokenizer13a` (evaluate ships a copy
  of it; sacrebleu's returns the tokens joined by spaces, so they are split again), then
  tensorflow/nmt's `compute_bleu` (nmt/scripts/bleu.py, Apache-2.0, as in evaluate's current
  `nmt_bleu.py`: a zero translation or reference length gives ratio and brevity penalty 0),
  reimplemented below as `nmt_compute_bleu`. It is cross-checked against `sacrebleu.corpus_bleu`
  on the single-reference unsmoothed cases, where both must agree.
* porter.json: `nltk.stem.porter.PorterStemmer()` (NLTK_EXTENSIONS mode, what rouge_score uses).
* tokenizers.json: `rouge_score.tokenize.tokenize` (with and without the stemmer) and the 13a
  tokens, per string.
"""

import argparse
import collections
import glob
import json
import math
import os
import random
import re
import string
import sys
import warnings

import numpy as np
import sacrebleu
import seqeval.scheme
from nltk.stem.porter import PorterStemmer
from rouge_score import rouge_scorer, scoring
from rouge_score import tokenize as rouge_tokenize
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from seqeval.metrics import accuracy_score as seqeval_accuracy
from seqeval.metrics import classification_report as seqeval_report
from sklearn import metrics as skm

warnings.filterwarnings("ignore")

CASES_PER_METRIC = 120


# --------------------------------------------------------------------------------------------
# helpers


def clean(x):
    """JSON-able: numpy scalars and arrays to Python, NaN to None."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return clean(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return None if math.isnan(x) else x
    return x


def run(fn):
    """`{"expected": fn()}`, or `{"error": ...}` if the reference raises."""
    try:
        return {"expected": clean(fn())}
    except Exception as e:  # noqa: BLE001 - any exception of the reference is an expected error
        return {"error": f"{type(e).__name__}: {e}"}


def words_corpus():
    """English words from the pinned nltk package's own doctests and sources (deterministic)."""
    import nltk

    root = os.path.dirname(nltk.__file__)
    files = sorted(glob.glob(os.path.join(root, "test", "*.doctest")))
    files += sorted(glob.glob(os.path.join(root, "stem", "*.py")))
    words = set()
    for f in files:
        with open(f, encoding="utf-8", errors="ignore") as fh:
            for w in re.findall(r"[A-Za-z]+", fh.read()):
                if 2 <= len(w) <= 18:
                    words.add(w.lower())
    return sorted(words)


# --------------------------------------------------------------------------------------------
# classification (scikit-learn, as evaluate's metric scripts call it)

STRING_LABELS = ["ant", "bird", "cat", "dog", "eel", "fox", "gnu", "ñandú", "Zebra", "42"]


def zd_py(zd):
    return np.nan if zd == "nan" else zd


def evaluate_shape(name, score):
    # evaluate: `float(score) if score.size == 1 else score` (numpy >= 2.4 refuses float() of a
    # one-element 1-d array, so the one element is taken explicitly).
    score = np.asarray(score)
    return {name: float(score.reshape(-1)[0]) if score.size == 1 else score.tolist()}


def random_labels(rng, n, k, strings, skew=None):
    pool = rng.sample(STRING_LABELS, k) if strings else rng.sample(range(-3, 12), k)
    if skew is not None:
        pool = pool[:skew]
    return [rng.choice(pool) for _ in range(n)], pool


def random_classification_input(rng, binary=False):
    n = rng.choice([1, 2, 3, 5, 8, 13, 20, 40, 64])
    k = 2 if binary else rng.choice([1, 2, 3, 4, 5, 6])
    strings = rng.random() < 0.3
    refs, pool = random_labels(rng, n, k, strings)
    preds = []
    never = rng.choice(pool) if rng.random() < 0.3 and len(pool) > 1 else None
    for r in refs:
        if rng.random() < 0.6:
            p = r
        else:
            p = rng.choice(pool)
        if p == never:
            p = rng.choice([x for x in pool if x != never])
        preds.append(p)
    return preds, refs, pool, strings


def maybe_weights(rng, n, kwargs):
    if rng.random() < 0.2:
        kwargs["sample_weight"] = [round(rng.uniform(0.0, 3.0), 3) for _ in range(n)]
    return kwargs.get("sample_weight")


def classification_cases(rng):
    cases = []

    # accuracy
    for i in range(CASES_PER_METRIC):
        preds, refs, _, _ = random_classification_input(rng)
        kwargs = {}
        if rng.random() < 0.25:
            kwargs["normalize"] = False
        sw = maybe_weights(rng, len(refs), kwargs)
        res = run(lambda: {"accuracy": float(skm.accuracy_score(refs, preds, normalize=kwargs.get("normalize", True), sample_weight=sw))})
        cases.append({"metric": "accuracy", "input": {"predictions": preds, "references": refs}, "kwargs": kwargs, **res})

    # precision / recall / f1
    fns = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}
    for name, fn in fns.items():
        for i in range(CASES_PER_METRIC):
            average = rng.choice(["binary", "micro", "macro", "weighted", None])
            preds, refs, pool, strings = random_classification_input(rng, binary=average == "binary" and rng.random() < 0.9)
            kwargs = {}
            if average != "binary" or rng.random() < 0.5:
                kwargs["average"] = average
            pos_label = 1
            if average == "binary":
                if strings or rng.random() < 0.5:
                    pos_label = rng.choice(pool)
                    kwargs["pos_label"] = pos_label
            labels = None
            if average != "binary" and rng.random() < 0.3:
                extra = ["yak"] if strings else [99]
                labels = rng.sample(pool + extra, rng.randint(1, len(pool) + 1))
                kwargs["labels"] = labels
            zd = rng.choice(["warn", 0, 1, "nan", "warn"])
            if zd != "warn" or rng.random() < 0.2:
                kwargs["zero_division"] = zd
            sw = maybe_weights(rng, len(refs), kwargs)
            res = run(lambda: evaluate_shape(name, fn(refs, preds, labels=labels, pos_label=pos_label, average=average, sample_weight=sw, zero_division=zd_py(zd))))
            cases.append({"metric": name, "input": {"predictions": preds, "references": refs}, "kwargs": kwargs, **res})

    # confusion matrix
    for i in range(CASES_PER_METRIC):
        preds, refs, pool, strings = random_classification_input(rng)
        kwargs = {}
        labels = None
        if rng.random() < 0.4:
            extra = ["yak"] if strings else [99]
            labels = rng.sample(pool + extra, rng.randint(1, len(pool) + 1))
            kwargs["labels"] = labels
        normalize = rng.choice([None, None, "true", "pred", "all"])
        if normalize is not None:
            kwargs["normalize"] = normalize
        sw = maybe_weights(rng, len(refs), kwargs)
        res = run(lambda: {"confusion_matrix": skm.confusion_matrix(refs, preds, labels=labels, sample_weight=sw, normalize=normalize)})
        cases.append({"metric": "confusion_matrix", "input": {"predictions": preds, "references": refs}, "kwargs": kwargs, **res})

    # classification report
    for i in range(CASES_PER_METRIC):
        preds, refs, pool, strings = random_classification_input(rng)
        kwargs = {}
        labels = None
        if rng.random() < 0.3:
            extra = ["yak"] if strings else [99]
            labels = rng.sample(pool + extra, rng.randint(1, len(pool) + 1))
            kwargs["labels"] = labels
        n_classes = len(labels) if labels is not None else len(set(refs) | set(preds))
        target_names = None
        if rng.random() < 0.4:
            n_names = n_classes if (labels is None or rng.random() < 0.7) else max(1, n_classes - 1)
            target_names = [rng.choice(["class ", "Klasse ", "c", "a much longer class name "]) + str(j) for j in range(n_names)]
            kwargs["target_names"] = target_names
        zd = rng.choice(["warn", 0, 1, "warn"])
        if zd != "warn":
            kwargs["zero_division"] = zd
        output_dict = rng.random() < 0.5
        digits = 2
        if not output_dict:
            kwargs["output_dict"] = False
            if rng.random() < 0.5:
                digits = rng.choice([0, 1, 3, 4])
                kwargs["digits"] = digits

        def report():
            r = skm.classification_report(refs, preds, labels=labels, target_names=target_names, digits=digits, output_dict=output_dict, zero_division=zd)
            return r if output_dict else {"classification_report": r}

        res = run(report)
        cases.append({"metric": "classification_report", "input": {"predictions": preds, "references": refs}, "kwargs": kwargs, **res})

    # edge cases and errors
    edge = [
        ("accuracy", [], [], {}),
        ("accuracy", [1, 2], [1], {}),
        ("f1", [0, 1, 2], [0, 1, 2], {}),  # multiclass with the default binary average
        ("f1", [0, 1], [0, 1], {"pos_label": 5}),
        ("precision", [0, 0, 0], [0, 0, 0], {}),  # pos_label 1 absent from a one-class target
        ("recall", ["a", "b"], ["b", "a"], {"pos_label": "b"}),
        ("f1", [0, 0], [1, 1], {"average": "macro", "zero_division": 1}),
        ("confusion_matrix", [1, 2], [1, 2], {"labels": [7]}),
        ("confusion_matrix", [3], [3], {}),
        ("classification_report", [0, 1, 1], [0, 1, 0], {"target_names": ["only one"]}),
        ("f1", [1, 1, 1], [0, 0, 0], {"average": "weighted", "labels": [1]}),
    ]
    for name, preds, refs, kwargs in edge:
        def compute(name=name, preds=preds, refs=refs, kwargs=kwargs):
            if name == "accuracy":
                return {"accuracy": float(skm.accuracy_score(refs, preds))}
            if name == "confusion_matrix":
                return {"confusion_matrix": skm.confusion_matrix(refs, preds, labels=kwargs.get("labels"))}
            if name == "classification_report":
                return skm.classification_report(refs, preds, target_names=kwargs.get("target_names"), output_dict=True)
            kw = dict(kwargs)
            kw.setdefault("average", "binary")
            if "zero_division" in kw:
                kw["zero_division"] = zd_py(kw["zero_division"])
            return evaluate_shape(name, fns[name](refs, preds, **kw))

        cases.append({"metric": name, "input": {"predictions": preds, "references": refs}, "kwargs": kwargs, **run(compute)})
    return cases


# --------------------------------------------------------------------------------------------
# seqeval (evaluate's seqeval._compute)

SCHEME_PREFIXES = {
    "IOB1": "IOB",
    "IOB2": "IOB",
    "IOE1": "IOE",
    "IOE2": "IOE",
    "IOBES": "IOBES",
    "BILOU": "BILOU",
}
TYPES = ["PER", "LOC", "ORG", "MISC"]


def seqeval_compute(predictions, references, suffix=False, scheme=None, mode=None, zero_division="warn"):
    if scheme is not None:
        try:
            scheme = getattr(seqeval.scheme, scheme)
        except AttributeError:
            raise ValueError(f"Scheme should be one of [IOB1, IOB2, IOE1, IOE2, IOBES, BILOU], got {scheme}")
    report = seqeval_report(
        y_true=references,
        y_pred=predictions,
        suffix=suffix,
        output_dict=True,
        scheme=scheme,
        mode=mode,
        zero_division=zero_division,
    )
    report.pop("macro avg")
    report.pop("weighted avg")
    overall = report.pop("micro avg")
    scores = {
        t: {"precision": s["precision"], "recall": s["recall"], "f1": s["f1-score"], "number": s["support"]}
        for t, s in report.items()
    }
    scores["overall_precision"] = overall["precision"]
    scores["overall_recall"] = overall["recall"]
    scores["overall_f1"] = overall["f1-score"]
    scores["overall_accuracy"] = seqeval_accuracy(y_true=references, y_pred=predictions)
    return scores


def well_formed(rng, n, scheme, types):
    """A well-formed tag sequence of the scheme (entities of 1-4 tokens)."""
    tags = []
    while len(tags) < n:
        if rng.random() < 0.45:
            tags.append("O")
            continue
        t = rng.choice(types)
        k = min(rng.randint(1, 4), n - len(tags))
        if scheme in ("IOB2", "IOB1"):
            span = ["B-" + t] + ["I-" + t] * (k - 1)
            if scheme == "IOB1":
                prev_type = tags[-1][2:] if tags and tags[-1] != "O" else None
                if prev_type != t:
                    span[0] = "I-" + t
        elif scheme in ("IOE2", "IOE1"):
            span = ["I-" + t] * (k - 1) + ["E-" + t]
            if scheme == "IOE1":
                span[-1] = "I-" + t
                if rng.random() < 0.3:
                    span[-1] = "E-" + t
        elif scheme == "IOBES":
            span = ["S-" + t] if k == 1 else ["B-" + t] + ["I-" + t] * (k - 2) + ["E-" + t]
        else:  # BILOU
            span = ["U-" + t] if k == 1 else ["B-" + t] + ["I-" + t] * (k - 2) + ["L-" + t]
        tags.extend(span)
    return tags


def perturb(rng, tags, prefixes, types):
    out = list(tags)
    for i in range(len(out)):
        r = rng.random()
        if r < 0.08:
            out[i] = "O"
        elif r < 0.16:
            p = rng.choice(prefixes)
            out[i] = "O" if p == "O" else p + "-" + rng.choice(types)
        elif r < 0.22 and out[i] != "O":
            out[i] = out[i][0] + "-" + rng.choice(types)
    return [("O" if t.startswith("O-") else t) for t in out]


def to_suffix(tags):
    return [t if t == "O" else t[2:] + "-" + t[0] for t in tags]


def seqeval_cases(rng):
    cases = []
    weird = ["B-", "I", "X-PER", "PER", ".", "-", "B-PER-X", "I-per", "U-LOC", "S-ORG", "E-MISC", "B-Ünï"]
    modes = ["default"] * 3 + ["strict"] * 4
    for i in range(CASES_PER_METRIC * 3):
        mode = rng.choice(modes)
        scheme = rng.choice(list(SCHEME_PREFIXES))
        types = rng.sample(TYPES, rng.randint(1, 4))
        n_sent = rng.choice([1, 1, 2, 3, 5, 8])
        refs, preds = [], []
        prefixes = list(SCHEME_PREFIXES[scheme])
        for _ in range(n_sent):
            n = rng.choice([0, 1, 2, 3, 5, 8, 12, 20]) if n_sent > 1 else rng.choice([1, 2, 4, 8, 15])
            ref = well_formed(rng, n, scheme, types)
            if rng.random() < 0.15:
                ref = perturb(rng, ref, prefixes, types)  # malformed references too
            pred = perturb(rng, ref, prefixes, types)
            if mode == "default" and rng.random() < 0.1 and n > 0:
                j = rng.randrange(n)
                pred[j] = rng.choice(weird)
            refs.append(ref)
            preds.append(pred)
        kwargs = {}
        suffix = rng.random() < 0.15
        if suffix:
            refs = [to_suffix(s) for s in refs]
            preds = [to_suffix(s) for s in preds]
            kwargs["suffix"] = True
        if mode == "strict":
            kwargs["mode"] = "strict"
            if rng.random() < 0.85:
                kwargs["scheme"] = scheme
        elif rng.random() < 0.2:
            kwargs["scheme"] = scheme  # ignored outside strict mode, as in seqeval
        zd = rng.choice(["warn", "warn", 0, 1])
        if zd != "warn":
            kwargs["zero_division"] = zd
        res = run(lambda: seqeval_compute(preds, refs, suffix=suffix, scheme=kwargs.get("scheme"), mode=kwargs.get("mode"), zero_division=zd))
        cases.append({"metric": "seqeval", "input": {"predictions": preds, "references": refs}, "kwargs": kwargs, **res})

    edge = [
        # I- without B-, type switch inside an entity, E-/S- in lenient mode
        ([["I-PER", "I-PER", "I-LOC", "O", "B-ORG", "I-MISC"]], [["B-PER", "I-PER", "B-LOC", "O", "B-ORG", "I-ORG"]], {}),
        ([["I-PER", "I-PER", "I-LOC", "O", "B-ORG", "I-MISC"]], [["B-PER", "I-PER", "B-LOC", "O", "B-ORG", "I-ORG"]], {"mode": "strict", "scheme": "IOB2"}),
        ([["B-PER", "E-PER", "S-LOC", "O"]], [["B-PER", "E-PER", "S-LOC", "O"]], {}),
        ([["O", "O"]], [["O", "O"]], {}),
        ([["O", "O"]], [["O", "O"]], {"zero_division": 1}),
        ([["O", "O"]], [["O", "O"]], {"mode": "strict"}),  # no scheme can be detected
        ([["B-PER", "E-PER"]], [["B-PER", "I-PER"]], {"mode": "strict", "scheme": "IOB2"}),  # E- not allowed
        ([["B-PER", "X-PER"]], [["B-PER", "I-PER"]], {"mode": "strict", "scheme": "IOB2"}),  # unknown prefix
        ([["B-PER", ""]], [["B-PER", "I-PER"]], {}),  # empty tag
        ([["B-PER"]], [["B-PER", "O"]], {}),  # sentence length mismatch
        ([["B-PER"]], [["B-PER"], ["O"]], {}),  # sentence count mismatch
        ([["B-PER"]], [["B-PER"]], {"mode": "strict", "scheme": "IOB9"}),
        ([[]], [[]], {}),  # no tokens: accuracy is undefined
        ([], [], {}),
    ]
    for preds, refs, kwargs in edge:
        res = run(lambda: seqeval_compute(preds, refs, suffix=kwargs.get("suffix", False), scheme=kwargs.get("scheme"), mode=kwargs.get("mode"), zero_division=kwargs.get("zero_division", "warn")))
        cases.append({"metric": "seqeval", "input": {"predictions": preds, "references": refs}, "kwargs": kwargs, **res})
    return cases


# --------------------------------------------------------------------------------------------
# text generation for ROUGE and BLEU

UNICODE_WORDS = ["café", "naïve", "Straße", "İstanbul", "日本語", "Ωmega", "\u212a", "ﬁne", "résumé", "Ünïcödé", "emoji🙂", "ǅemal"]
PUNCT = [",", ".", "!", "?", ";", ":", "'", '"', "(", ")", "-", "--", "&", "&amp;", "&lt;", "&gt;", "&quot;", "/", "...", "<skipped>", "@", "#", "$", "%", "*", "+", "=", "[", "]", "{", "}", "~", "`", "^", "|", "_"]
SUFFIXES = ["ing", "ed", "s", "ies", "ational", "ization", "fulness", "ly", "er", "ment", "ness", "able", "alli", "logi", "ousli", "iveness", "eed", "ied", "sses", "bli", "fulli"]


def make_word(rng, vocab):
    r = rng.random()
    if r < 0.04:
        return rng.choice(UNICODE_WORDS)
    if r < 0.10:
        return rng.choice(["3.5", "1,000", "2024", "3-4", "10-", "0.5%", "42", "7th", "1990s"])
    w = rng.choice(vocab)
    if r < 0.25:
        w = w + rng.choice(SUFFIXES)
    if rng.random() < 0.15:
        w = w.capitalize()
    elif rng.random() < 0.03:
        w = w.upper()
    return w


def make_text(rng, vocab, n_words=None, lines=True):
    r = rng.random()
    if r < 0.03:
        return ""
    if r < 0.06:
        return rng.choice(["!!!", "... ?", " - ", "&amp;", "\n", "   "])
    n = n_words if n_words is not None else rng.randint(1, 30)
    parts = []
    for _ in range(n):
        if rng.random() < 0.12:
            p = rng.choice(PUNCT)
            parts.append(p if rng.random() < 0.5 else parts.pop() + p if parts else p)
        else:
            parts.append(make_word(rng, vocab))
        if lines and rng.random() < 0.06:
            parts.append(rng.choice(["\n", "\n\n", "-\n", "\r\n", "\t"]))
    text = " ".join(parts)
    if rng.random() < 0.1:
        text = text.replace(" ", "")[: len(text) // 2] + " " + text
    return text


def mutate(rng, text, vocab):
    """A text resembling `text` (shared n-grams), for realistic overlaps."""
    words = text.split(" ")
    out = []
    for w in words:
        r = rng.random()
        if r < 0.1:
            continue
        if r < 0.2:
            out.append(make_word(rng, vocab))
        elif r < 0.25:
            out.extend([w, make_word(rng, vocab)])
        else:
            out.append(w)
    if rng.random() < 0.2:
        rng.shuffle(out)
    return " ".join(out)


def text_pairs(rng, vocab, n, multi):
    preds, refs = [], []
    for _ in range(n):
        base = make_text(rng, vocab)
        pred = mutate(rng, base, vocab) if rng.random() < 0.85 else make_text(rng, vocab)
        if multi:
            k = rng.randint(1, 3)
            ref = [mutate(rng, base, vocab) if rng.random() < 0.8 else make_text(rng, vocab) for _ in range(k)]
        else:
            ref = mutate(rng, base, vocab) if rng.random() < 0.9 else make_text(rng, vocab)
        preds.append(pred)
        refs.append(ref)
    return preds, refs


# --------------------------------------------------------------------------------------------
# ROUGE (evaluate's rouge._compute, with the exact mean as the aggregate)


def rouge_compute(predictions, references, rouge_types=None, use_aggregator=True, use_stemmer=False, bootstrap=None):
    if rouge_types is None:
        rouge_types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    multi_ref = isinstance(references[0], list)
    scorer = rouge_scorer.RougeScorer(rouge_types=rouge_types, use_stemmer=use_stemmer)
    scores = []
    for ref, pred in zip(references, predictions):
        scores.append(scorer.score_multi(ref, pred) if multi_ref else scorer.score(ref, pred))
    per_pair = {key: [s[key].fmeasure for s in scores] for key in rouge_types}
    if not use_aggregator:
        return per_pair
    if bootstrap is not None:
        agg = scoring.BootstrapAggregator()
        for s in scores:
            agg.add_scores(s)
        mid = {k: v.mid.fmeasure for k, v in agg.aggregate().items()}
        for key in rouge_types:
            mean = sum(per_pair[key]) / len(per_pair[key])
            bootstrap.append(abs(mid[key] - mean))
    return {key: sum(v) / len(v) for key, v in per_pair.items()}


def rouge_cases(rng, vocab, bootstrap):
    cases = []
    all_types = ["rouge1", "rouge2", "rouge3", "rouge4", "rouge9", "rougeL", "rougeLsum"]
    for i in range(CASES_PER_METRIC * 2):
        n = rng.choice([1, 1, 2, 3, 5, 8])
        multi = rng.random() < 0.3
        preds, refs = text_pairs(rng, vocab, n, multi)
        kwargs = {}
        types = None
        if rng.random() < 0.3:
            types = rng.sample(all_types, rng.randint(1, 4))
            kwargs["rouge_types"] = types
        use_stemmer = rng.random() < 0.5
        if use_stemmer or rng.random() < 0.2:
            kwargs["use_stemmer"] = use_stemmer
        use_aggregator = rng.random() < 0.5
        if not use_aggregator or rng.random() < 0.2:
            kwargs["use_aggregator"] = use_aggregator
        res = run(lambda: rouge_compute(preds, refs, types, use_aggregator, use_stemmer, bootstrap))
        cases.append({"metric": "rouge", "input": {"predictions": preds, "references": refs}, "kwargs": kwargs, **res})

    edge = [
        (["", "!!!"], ["", "..."], {"use_aggregator": False}),
        (["The cat sat.\nOn the mat."], ["On the mat.\nThe cat sat."], {"use_aggregator": False}),
        (["running runners ran\n\nquickly"], ["the runner runs quick"], {"use_stemmer": True, "use_aggregator": False}),
        (["Café naïve ﬁne \u212aelvin"], ["cafe naive fine kelvin"], {"use_aggregator": False}),
        (["a b c"], [["x y z", "a b c", "a b"]], {"use_aggregator": False}),
        (["a b c"], [[]], {"use_aggregator": False}),  # no reference: an error in both
        (["a"], ["a", "b"], {}),  # length mismatch
        (["a"], ["a"], {"rouge_types": ["rouge0"]}),
        (["a"], ["a"], {"rouge_types": ["bleu"]}),
    ]
    for preds, refs, kwargs in edge:
        def compute(preds=preds, refs=refs, kwargs=kwargs):
            if len(preds) != len(refs):
                raise ValueError("predictions and references have different lengths")  # as evaluate checks
            return rouge_compute(preds, refs, kwargs.get("rouge_types"), kwargs.get("use_aggregator", True), kwargs.get("use_stemmer", False))

        cases.append({"metric": "rouge", "input": {"predictions": preds, "references": refs}, "kwargs": kwargs, **run(compute)})
    return cases


# --------------------------------------------------------------------------------------------
# BLEU (evaluate's bleu._compute: 13a tokens + tensorflow/nmt compute_bleu)

_TOK13A = Tokenizer13a()


def tokenize_13a(line):
    return _TOK13A(line).split()


def _ngrams(segment, max_order):
    counts = collections.Counter()
    for order in range(1, max_order + 1):
        for i in range(0, len(segment) - order + 1):
            counts[tuple(segment[i : i + order])] += 1
    return counts


def nmt_compute_bleu(reference_corpus, translation_corpus, max_order=4, smooth=False):
    """tensorflow/nmt's compute_bleu (nmt/scripts/bleu.py), as evaluate's nmt_bleu.py has it."""
    matches_by_order = [0] * max_order
    possible_matches_by_order = [0] * max_order
    reference_length = 0
    translation_length = 0
    for references, translation in zip(reference_corpus, translation_corpus):
        reference_length += min(len(r) for r in references)
        translation_length += len(translation)
        merged = collections.Counter()
        for reference in references:
            merged |= _ngrams(reference, max_order)
        overlap = _ngrams(translation, max_order) & merged
        for ngram, count in overlap.items():
            matches_by_order[len(ngram) - 1] += count
        for order in range(1, max_order + 1):
            possible = len(translation) - order + 1
            if possible > 0:
                possible_matches_by_order[order - 1] += possible
    precisions = [0.0] * max_order
    for i in range(max_order):
        if smooth:
            precisions[i] = (matches_by_order[i] + 1.0) / (possible_matches_by_order[i] + 1.0)
        elif possible_matches_by_order[i] > 0:
            precisions[i] = float(matches_by_order[i]) / possible_matches_by_order[i]
        else:
            precisions[i] = 0.0
    if min(precisions) > 0:
        p_log_sum = sum((1.0 / max_order) * math.log(p) for p in precisions)
        geo_mean = math.exp(p_log_sum)
    else:
        geo_mean = 0
    if reference_length == 0 or translation_length == 0:
        ratio, bp = 0.0, 0.0
    else:
        ratio = float(translation_length) / reference_length
        bp = 1.0 if ratio > 1.0 else math.exp(1 - 1.0 / ratio)
    return geo_mean * bp, precisions, bp, ratio, translation_length, reference_length


def bleu_compute(predictions, references, max_order=4, smooth=False):
    if len(predictions) != len(references):
        raise ValueError("predictions and references have different lengths")  # as evaluate checks
    if isinstance(references[0], str):
        references = [[ref] for ref in references]
    refs = [[tokenize_13a(r) for r in ref] for ref in references]
    preds = [tokenize_13a(p) for p in predictions]
    bleu, precisions, bp, ratio, tl, rl = nmt_compute_bleu(refs, preds, max_order, smooth)
    return {"bleu": bleu, "precisions": precisions, "brevity_penalty": bp, "length_ratio": ratio, "translation_length": tl, "reference_length": rl}


def check_against_sacrebleu(predictions, references, result):
    """Single references, no smoothing, max_order 4: sacrebleu's corpus BLEU must agree."""
    refs = [r if isinstance(r, str) else r[0] for r in references]
    if any(t != t.rstrip() for t in list(predictions) + refs):
        return False  # sacrebleu strips trailing whitespace first (which can end a "-\n" join)
    sb = sacrebleu.corpus_bleu(predictions, [refs], tokenize="13a", smooth_method="none", force=True)
    if result["translation_length"] == 0 or result["reference_length"] == 0:
        return False
    assert sb.sys_len == result["translation_length"] and sb.ref_len == result["reference_length"], (sb, result)
    assert abs(sb.score / 100 - result["bleu"]) < 1e-12, (sb.score, result)
    return True


def bleu_cases(rng, vocab):
    cases = []
    checked = 0
    for i in range(CASES_PER_METRIC * 2):
        n = rng.choice([1, 1, 2, 3, 5, 8])
        multi = rng.random() < 0.4
        preds, refs = text_pairs(rng, vocab, n, multi)
        kwargs = {}
        max_order = 4
        if rng.random() < 0.3:
            max_order = rng.choice([1, 2, 3, 5, 6])
            kwargs["max_order"] = max_order
        smooth = rng.random() < 0.3
        if smooth or rng.random() < 0.1:
            kwargs["smooth"] = smooth
        res = run(lambda: bleu_compute(preds, refs, max_order, smooth))
        if "expected" in res and max_order == 4 and not smooth and (not multi or all(len(r) == 1 for r in refs)):
            checked += check_against_sacrebleu(preds, refs, res["expected"])
        cases.append({"metric": "bleu", "input": {"predictions": preds, "references": refs}, "kwargs": kwargs, **res})
    assert checked >= 20, checked

    edge = [
        (["hello there general kenobi", "foo bar foobar"], [["hello there general kenobi", "hello there!"], ["foo bar foobar"]], {}),
        ([""], ["a b c"], {}),
        (["a b c"], [""], {}),
        (["&amp; &lt;skipped&gt; <skipped> 3-4 3.5 1,000 end-\nline"], ["& <skipped> 3 - 4 3.5 1,000 endline"], {"smooth": True}),
        (["the the the the"], ["the cat"], {"max_order": 1}),
        (["a"], ["a", "b"], {}),  # length mismatch
    ]
    for preds, refs, kwargs in edge:
        res = run(lambda: bleu_compute(preds, refs, kwargs.get("max_order", 4), kwargs.get("smooth", False)))
        cases.append({"metric": "bleu", "input": {"predictions": preds, "references": refs}, "kwargs": kwargs, **res})
    return cases


# --------------------------------------------------------------------------------------------
# Porter stemmer and tokenizers


def porter_cases(rng, vocab):
    stemmer = PorterStemmer()
    words = list(vocab)
    letters = "abcdefghijklmnopqrstuvwxyz"
    for _ in range(2500):
        stem = "".join(rng.choice(letters) for _ in range(rng.randint(1, 6)))
        words.append(stem + rng.choice(SUFFIXES + ["y", "e", "ll", "at", "bl", "iz", "ic", "ate", "ive", "ize", "ion", "ous", "ism", "ent", "al"]))
    for _ in range(300):
        words.append("".join(rng.choice(letters + "y" * 5 + "0123456789") for _ in range(rng.randint(1, 9))))
    words = sorted(set(words))
    return {"words": words, "stems": [stemmer.stem(w) for w in words]}


def tokenizer_cases(rng, vocab):
    stemmer = PorterStemmer()
    texts = [make_text(rng, vocab) for _ in range(200)] + UNICODE_WORDS + PUNCT
    return [
        {
            "text": t,
            "rouge": rouge_tokenize.tokenize(t, None),
            "rouge_stemmed": rouge_tokenize.tokenize(t, stemmer),
            "13a": tokenize_13a(t),
        }
        for t in texts
    ]


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory (tests/fixtures/metrics)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    np.random.seed(0)  # only the (unused for comparison) bootstrap of rouge's evaluate-style aggregate
    vocab_all = words_corpus()
    vocab = random.Random(1).sample(vocab_all, min(1500, len(vocab_all)))
    bootstrap = []
    outputs = {
        "classification.json": classification_cases(random.Random(10)),
        "seqeval.json": seqeval_cases(random.Random(20)),
        "rouge.json": rouge_cases(random.Random(30), vocab, bootstrap),
        "bleu.json": bleu_cases(random.Random(40), vocab),
        "porter.json": porter_cases(random.Random(50), random.Random(2).sample(vocab_all, min(4000, len(vocab_all)))),
        "tokenizers.json": tokenizer_cases(random.Random(60), vocab),
    }
    import importlib.metadata as md

    versions = {p: md.version(p) for p in ["scikit-learn", "seqeval", "rouge_score", "nltk", "sacrebleu", "numpy"]}
    counts = collections.Counter()
    errors = collections.Counter()
    for name, data in outputs.items():
        if isinstance(data, list) and data and "metric" in data[0]:
            for c in data:
                counts[c["metric"]] += 1
                errors[c["metric"]] += "error" in c
    summary = {
        "generator": "xtask/python/fixtures_metrics.py",
        "versions": versions,
        "python": sys.version.split()[0],
        "cases": dict(counts),
        "error_cases": dict(errors),
        "rouge_bootstrap_median_vs_mean_max_abs_diff": max(bootstrap) if bootstrap else None,
    }
    outputs["summary.json"] = summary
    for name, data in outputs.items():
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            fh.write("\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
