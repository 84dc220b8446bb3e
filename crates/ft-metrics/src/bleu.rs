//! Corpus BLEU as Hugging Face evaluate's `bleu` metric computes it: the `compute_bleu` of
//! tensorflow/nmt (`nmt/scripts/bleu.py`) over tokens from sacrebleu's `13a` tokenizer.
//!
//! - n-gram matches are clipped by the maximum count of each n-gram over a prediction's references;
//! - the reference length of a sample is its *shortest* reference (not the closest, as sacrebleu
//!   uses);
//! - `smooth=true` is Lin & Och (2004) add-one smoothing of every order's precision;
//! - when the translation or reference length is 0, evaluate's current `nmt_bleu.py` gives a
//!   length ratio and brevity penalty of 0 (older copies raised `ZeroDivisionError`); ft does the
//!   same.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

use crate::error::{MetricsError, Result, check_same_len};

/// evaluate's `bleu` result.
#[derive(Debug, Clone, PartialEq)]
pub struct BleuScore {
    /// The BLEU score, in [0, 1].
    pub bleu: f64,
    /// The (possibly smoothed) n-gram precision of each order 1..=max_order.
    pub precisions: Vec<f64>,
    /// The brevity penalty.
    pub brevity_penalty: f64,
    /// Translation length / reference length.
    pub length_ratio: f64,
    /// Total number of prediction tokens.
    pub translation_length: usize,
    /// Total length of each sample's shortest reference.
    pub reference_length: usize,
}

fn regexes() -> &'static [(Regex, &'static str); 4] {
    static RE: OnceLock<[(Regex, &'static str); 4]> = OnceLock::new();
    RE.get_or_init(|| {
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| panic!("built-in 13a pattern {p}: {e}"));
        [
            // Language-dependent part (assuming Western languages): symbols are split off.
            (re(r"([\{-\~\[-\` -\&\(-\+\:-\@/])"), " $1 "),
            // Period and comma unless preceded by a digit.
            (re(r"([^0-9])([\.,])"), "$1 $2 "),
            // Period and comma unless followed by a digit.
            (re(r"([\.,])([^0-9])"), " $1 $2"),
            // Dash when preceded by a digit.
            (re(r"([0-9])(-)"), "$1 $2 "),
        ]
    })
}

/// Python's `str.isspace()` (which `str.split()` splits on): Unicode White_Space plus the
/// information separators U+001C..U+001F.
fn py_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// sacrebleu's `Tokenizer13a` (mteval-v13a), split into tokens as evaluate's copy does.
pub fn tokenize_13a(line: &str) -> Vec<String> {
    let mut line = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    }
    let mut s = format!(" {line} ");
    for (re, rep) in regexes() {
        s = re.replace_all(&s, *rep).into_owned();
    }
    s.split(py_whitespace).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

fn ngram_counts(tokens: &[String], max_order: usize) -> HashMap<&[String], usize> {
    let mut m = HashMap::new();
    for order in 1..=max_order {
        if tokens.len() >= order {
            for w in tokens.windows(order) {
                *m.entry(w).or_insert(0) += 1;
            }
        }
    }
    m
}

/// tensorflow/nmt's `compute_bleu` over tokenized text: `references[i]` are the references of
/// `translations[i]`.
pub fn compute_bleu(
    references: &[Vec<Vec<String>>],
    translations: &[Vec<String>],
    max_order: usize,
    smooth: bool,
) -> Result<BleuScore> {
    check_same_len("predictions", translations.len(), "references", references.len())?;
    if max_order == 0 {
        return Err(MetricsError::arg("max_order", "it must be at least 1"));
    }
    let mut matches = vec![0usize; max_order];
    let mut possible = vec![0usize; max_order];
    let mut reference_length = 0usize;
    let mut translation_length = 0usize;
    for (i, (refs, translation)) in references.iter().zip(translations).enumerate() {
        let shortest = refs.iter().map(Vec::len).min().ok_or_else(|| {
            MetricsError::input(format!("references[{i}]"), "a prediction needs at least one reference")
        })?;
        reference_length += shortest;
        translation_length += translation.len();
        let mut merged: HashMap<&[String], usize> = HashMap::new();
        for r in refs {
            for (g, c) in ngram_counts(r, max_order) {
                let e = merged.entry(g).or_insert(0);
                *e = (*e).max(c);
            }
        }
        for (g, c) in ngram_counts(translation, max_order) {
            let overlap = c.min(merged.get(g).copied().unwrap_or(0));
            matches[g.len() - 1] += overlap;
        }
        for order in 1..=max_order {
            if translation.len() >= order {
                possible[order - 1] += translation.len() - order + 1;
            }
        }
    }
    let precisions: Vec<f64> = (0..max_order)
        .map(|i| {
            if smooth {
                (matches[i] as f64 + 1.0) / (possible[i] as f64 + 1.0)
            } else if possible[i] > 0 {
                matches[i] as f64 / possible[i] as f64
            } else {
                0.0
            }
        })
        .collect();
    let geo_mean = if precisions.iter().all(|&p| p > 0.0) {
        let mut log_sum = 0.0;
        for p in &precisions {
            log_sum += (1.0 / max_order as f64) * p.ln();
        }
        log_sum.exp()
    } else {
        0.0
    };
    let (length_ratio, brevity_penalty) = if reference_length == 0 || translation_length == 0 {
        (0.0, 0.0)
    } else {
        let ratio = translation_length as f64 / reference_length as f64;
        (ratio, if ratio > 1.0 { 1.0 } else { (1.0 - 1.0 / ratio).exp() })
    };
    Ok(BleuScore {
        bleu: geo_mean * brevity_penalty,
        precisions,
        brevity_penalty,
        length_ratio,
        translation_length,
        reference_length,
    })
}

/// evaluate's `bleu.compute(predictions, references, max_order, smooth)` on raw text, with the 13a
/// tokenizer. Empty input is an error.
pub fn bleu<S: AsRef<str>>(
    predictions: &[S],
    references: &[Vec<S>],
    max_order: usize,
    smooth: bool,
) -> Result<BleuScore> {
    check_same_len("predictions", predictions.len(), "references", references.len())?;
    if predictions.is_empty() {
        return Err(MetricsError::empty("predictions"));
    }
    let refs: Vec<Vec<Vec<String>>> =
        references.iter().map(|rs| rs.iter().map(|r| tokenize_13a(r.as_ref())).collect()).collect();
    let preds: Vec<Vec<String>> = predictions.iter().map(|p| tokenize_13a(p.as_ref())).collect();
    compute_bleu(&refs, &preds, max_order, smooth)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_13a() {
        assert_eq!(
            tokenize_13a("Hello, world! It's 3.5-4 km."),
            ["Hello", ",", "world", "!", "It's", "3.5", "-", "4", "km", "."]
        );
        assert_eq!(tokenize_13a("a &amp; b &lt;c&gt;"), ["a", "&", "b", "<", "c", ">"]);
        assert!(tokenize_13a("   ").is_empty());
    }

    #[test]
    fn evaluate_docstring_example() {
        let predictions = ["hello there general kenobi", "foo bar foobar"];
        let references = vec![vec!["hello there general kenobi", "hello there!"], vec!["foo bar foobar"]];
        let s = bleu(&predictions, &references, 4, false).unwrap();
        assert_eq!(s.bleu, 1.0);
        assert_eq!(s.translation_length, 7);
        assert_eq!(s.reference_length, 6);
    }

    #[test]
    fn empty_prediction_gives_zero() {
        let s = bleu(&[""], &[vec!["a b c"]], 4, false).unwrap();
        assert_eq!((s.bleu, s.brevity_penalty, s.length_ratio), (0.0, 0.0, 0.0));
        assert!(bleu(&["a"], &[vec!["a"]], 0, false).is_err());
    }
}
