//! ROUGE as Google's `rouge_score` (0.1.2) computes it, and as Hugging Face evaluate's `rouge`
//! metric calls it.
//!
//! - Tokenizer: lowercase, every run of characters other than `a-z0-9` becomes a space, split on
//!   spaces; with `use_stemmer`, tokens longer than 3 characters go through NLTK's Porter stemmer
//!   ([`crate::porter`]).
//! - `rougeN` (N = 1..9): n-gram overlap; `rougeL`: longest common subsequence; `rougeLsum`:
//!   summary-level LCS over sentences split on `"\n"` (the union LCS of each reference sentence
//!   against all predicted sentences, each token counted at most as often as it occurs).
//! - With several references per prediction, each type takes the reference with the highest
//!   F-measure (the first on ties), as `RougeScorer.score_multi` does.
//!
//! Aggregation differs from evaluate on purpose: evaluate's default (`use_aggregator=True`)
//! reports the median of 1000 bootstrap resamples of the mean F-measure, drawn from numpy's
//! unseeded global random generator, so it changes from run to run. ft reports the exact mean of
//! the per-pair F-measures, the value that bootstrap median estimates. On large corpora the two
//! agree to about 1e-3; on a handful of pairs the median can be a few hundredths away (up to 0.021
//! on the golden fixtures' corpora of 1-8 pairs). `use_aggregator=false` gives the per-pair
//! F-measures, which equal evaluate's.

use std::collections::HashMap;

use crate::error::{MetricsError, Result};
use crate::porter;

/// Precision, recall and F-measure of one prediction against one reference.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RougeScore {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F-measure (F1).
    pub fmeasure: f64,
}

/// A ROUGE variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RougeType {
    /// `rougeN`: n-gram overlap, N in 1..=9.
    N(usize),
    /// `rougeL`: longest common subsequence of the whole texts.
    L,
    /// `rougeLsum`: summary-level LCS over newline-separated sentences.
    LSum,
}

impl RougeType {
    /// Reads `rouge1` ... `rouge9`, `rougeL` or `rougeLsum`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "rougeL" => Ok(RougeType::L),
            "rougeLsum" => Ok(RougeType::LSum),
            _ => {
                let n = name
                    .strip_prefix("rouge")
                    .filter(|d| d.len() == 1)
                    .and_then(|d| d.parse::<usize>().ok())
                    .filter(|&n| n > 0);
                n.map(RougeType::N).ok_or_else(|| {
                    MetricsError::arg(
                        "rouge_types",
                        format!("invalid rouge type `{name}`: expected rouge1..rouge9, rougeL or rougeLsum"),
                    )
                })
            }
        }
    }

    /// The type's name, e.g. `rouge2`.
    pub fn name(self) -> String {
        match self {
            RougeType::N(n) => format!("rouge{n}"),
            RougeType::L => "rougeL".into(),
            RougeType::LSum => "rougeLsum".into(),
        }
    }

    /// evaluate's default types: rouge1, rouge2, rougeL, rougeLsum.
    pub fn defaults() -> Vec<RougeType> {
        vec![RougeType::N(1), RougeType::N(2), RougeType::L, RougeType::LSum]
    }
}

/// `rouge_score.tokenize.tokenize`: lowercase, non-alphanumerics to spaces, split, optional stemming
/// of tokens longer than 3 characters.
pub fn tokenize(text: &str, use_stemmer: bool) -> Vec<String> {
    let mut clean = String::with_capacity(text.len());
    // Python's str.lower() then `[^a-z0-9]+` → " ": only lowercase forms that are ASCII letters or
    // digits survive (e.g. the Kelvin sign K lowercases to `k`).
    for c in text.to_lowercase().chars() {
        clean.push(if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { ' ' });
    }
    clean
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(|t| if use_stemmer && t.len() > 3 { porter::stem(t) } else { t.to_string() })
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        .collect()
}

fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 }
}

fn ngrams(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut m = HashMap::new();
    if tokens.len() >= n {
        for w in tokens.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

fn score_ngrams(target: &[String], prediction: &[String], n: usize) -> RougeScore {
    let t = ngrams(target, n);
    let p = ngrams(prediction, n);
    let overlap: usize = t.iter().map(|(g, &c)| c.min(p.get(g).copied().unwrap_or(0))).sum();
    let t_count: usize = t.values().sum();
    let p_count: usize = p.values().sum();
    let precision = overlap as f64 / p_count.max(1) as f64;
    let recall = overlap as f64 / t_count.max(1) as f64;
    RougeScore { precision, recall, fmeasure: fmeasure(precision, recall) }
}

fn lcs_table(a: &[String], b: &[String]) -> Vec<Vec<usize>> {
    let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i][j] = if a[i - 1] == b[j - 1] { t[i - 1][j - 1] + 1 } else { t[i - 1][j].max(t[i][j - 1]) };
        }
    }
    t
}

/// The LCS length with two rows of the table (long texts need no quadratic memory).
fn lcs_length(a: &[String], b: &[String]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y { prev[j] + 1 } else { prev[j + 1].max(cur[j]) };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn score_lcs(target: &[String], prediction: &[String]) -> RougeScore {
    if target.is_empty() || prediction.is_empty() {
        return RougeScore::default();
    }
    let lcs = lcs_length(target, prediction);
    let precision = lcs as f64 / prediction.len() as f64;
    let recall = lcs as f64 / target.len() as f64;
    RougeScore { precision, recall, fmeasure: fmeasure(precision, recall) }
}

/// Indices into `r` of one LCS of `r` and `c`, chosen as rouge_score's `_backtrack_norec` does.
fn lcs_indices(r: &[String], c: &[String]) -> Vec<usize> {
    let t = lcs_table(r, c);
    let (mut i, mut j) = (r.len(), c.len());
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        if r[i - 1] == c[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if t[i][j - 1] > t[i - 1][j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

fn score_summary_lcs(target: &[Vec<String>], prediction: &[Vec<String>]) -> RougeScore {
    if target.is_empty() || prediction.is_empty() {
        return RougeScore::default();
    }
    let m: usize = target.iter().map(Vec::len).sum();
    let n: usize = prediction.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return RougeScore::default();
    }
    let mut counts_r: HashMap<&str, usize> = HashMap::new();
    let mut counts_c: HashMap<&str, usize> = HashMap::new();
    for t in target.iter().flatten() {
        *counts_r.entry(t).or_insert(0) += 1;
    }
    for t in prediction.iter().flatten() {
        *counts_c.entry(t).or_insert(0) += 1;
    }
    let mut hits = 0usize;
    for r in target {
        let mut union: Vec<usize> = prediction.iter().flat_map(|c| lcs_indices(r, c)).collect();
        union.sort_unstable();
        union.dedup();
        for i in union {
            let tok = r[i].as_str();
            let cc = counts_c.get(tok).copied().unwrap_or(0);
            let cr = counts_r.get(tok).copied().unwrap_or(0);
            if cc > 0 && cr > 0 {
                hits += 1;
                counts_c.insert(tok, cc - 1);
                counts_r.insert(tok, cr - 1);
            }
        }
    }
    let recall = hits as f64 / m as f64;
    let precision = hits as f64 / n as f64;
    RougeScore { precision, recall, fmeasure: fmeasure(precision, recall) }
}

/// Sentences for rougeLsum: the text split on `"\n"`, empty lines dropped, each tokenized.
fn sentences(text: &str, use_stemmer: bool) -> Vec<Vec<String>> {
    text.split('\n').filter(|s| !s.is_empty()).map(|s| tokenize(s, use_stemmer)).collect()
}

/// `RougeScorer(rouge_types, use_stemmer).score(target, prediction)`: one score per type, in order.
pub fn score(target: &str, prediction: &str, types: &[RougeType], use_stemmer: bool) -> Vec<RougeScore> {
    let needs_tokens = types.iter().any(|t| *t != RougeType::LSum);
    let (tt, pt) = if needs_tokens {
        (tokenize(target, use_stemmer), tokenize(prediction, use_stemmer))
    } else {
        (Vec::new(), Vec::new())
    };
    types
        .iter()
        .map(|t| match t {
            RougeType::N(n) => score_ngrams(&tt, &pt, *n),
            RougeType::L => score_lcs(&tt, &pt),
            RougeType::LSum => score_summary_lcs(&sentences(target, use_stemmer), &sentences(prediction, use_stemmer)),
        })
        .collect()
}

/// `RougeScorer.score_multi`: per type, the score against the reference with the best F-measure
/// (the first one on ties). With no reference every score is 0.
pub fn score_multi<S: AsRef<str>>(
    targets: &[S],
    prediction: &str,
    types: &[RougeType],
    use_stemmer: bool,
) -> Vec<RougeScore> {
    let all: Vec<Vec<RougeScore>> = targets.iter().map(|t| score(t.as_ref(), prediction, types, use_stemmer)).collect();
    (0..types.len())
        .map(|k| {
            let mut best: Option<RougeScore> = None;
            for s in &all {
                if best.is_none_or(|b| s[k].fmeasure > b.fmeasure) {
                    best = Some(s[k]);
                }
            }
            best.unwrap_or_default()
        })
        .collect()
}

/// Per-pair ROUGE F-measures of a corpus: `result[k][i]` is type `types[k]` for pair `i`
/// (evaluate's `use_aggregator=False`). Each prediction has one or more references.
pub fn rouge_per_pair<S: AsRef<str>>(
    predictions: &[S],
    references: &[Vec<S>],
    types: &[RougeType],
    use_stemmer: bool,
) -> Result<Vec<Vec<f64>>> {
    crate::error::check_same_len("predictions", predictions.len(), "references", references.len())?;
    let mut out = vec![Vec::with_capacity(predictions.len()); types.len()];
    for (i, (p, refs)) in predictions.iter().zip(references).enumerate() {
        if refs.is_empty() {
            return Err(MetricsError::input(format!("references[{i}]"), "a prediction needs at least one reference"));
        }
        let scores = score_multi(refs, p.as_ref(), types, use_stemmer);
        for (k, s) in scores.iter().enumerate() {
            out[k].push(s.fmeasure);
        }
    }
    Ok(out)
}

/// The mean of each type's per-pair F-measures (ft's aggregate; see the module docs for how it
/// differs from evaluate's bootstrap median). Empty input is an error.
pub fn rouge_mean<S: AsRef<str>>(
    predictions: &[S],
    references: &[Vec<S>],
    types: &[RougeType],
    use_stemmer: bool,
) -> Result<Vec<f64>> {
    if predictions.is_empty() {
        return Err(MetricsError::empty("predictions"));
    }
    let per_pair = rouge_per_pair(predictions, references, types, use_stemmer)?;
    Ok(per_pair.iter().map(|v| v.iter().sum::<f64>() / v.len() as f64).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_matches_rouge_score() {
        assert_eq!(tokenize("Hello, World! It's 2024.", false), ["hello", "world", "it", "s", "2024"]);
        assert_eq!(tokenize("Café — naïve", false), ["caf", "na", "ve"]);
        assert_eq!(tokenize("The runners were running", true), ["the", "runner", "were", "run"]);
        assert!(tokenize("!!! ...", false).is_empty());
    }

    #[test]
    fn evaluate_docstring_example() {
        let types = RougeType::defaults();
        let s = score("hello there", "hello there", &types, false);
        assert!(s.iter().all(|x| x.fmeasure == 1.0));
        let s = score("the cat sat on the mat", "the cat on the mat", &types, false);
        assert_eq!(s[0].precision, 1.0);
        assert_eq!(s[0].recall, 5.0 / 6.0);
    }

    #[test]
    fn rouge_lsum_uses_newlines() {
        let t = [RougeType::L, RougeType::LSum];
        let s = score("a b c\nd e f", "d e f\na b c", &t, false);
        assert_eq!(s[1].fmeasure, 1.0);
        assert!(s[0].fmeasure < 1.0);
    }

    #[test]
    fn parse_types() {
        assert_eq!(RougeType::parse("rouge3").unwrap(), RougeType::N(3));
        assert!(RougeType::parse("rouge0").is_err());
        assert!(RougeType::parse("rouge10").is_err());
        assert!(RougeType::parse("bleu").is_err());
    }
}
