//! Dataset tokenization and NER label alignment, as the notebook does them with
//! `dataset.map(fn, batched=True)` and transformers' fast tokenizer:
//!
//! - text classification — `tok(batch["text"], truncation=True, max_length=N)` plus the label
//!   column renamed `labels` ([`tokenize_text_classification`]);
//! - token classification — the notebook's `tokenize_and_align_labels`: the words are tokenized
//!   with `is_split_into_words=True, truncation=True`; the first sub-token of each word gets the
//!   word's tag, the other sub-tokens and the special tokens get -100
//!   ([`tokenize_and_align_labels`], [`align_labels`]).
//!
//! `truncation=True` without `max_length` truncates at the tokenizer's `model_max_length`
//! (from `tokenizer_config.json`), or not at all when it has none — as transformers does.
//! Rows are checked first: a missing value, an empty text or word list, tokens and tags of
//! different lengths, a label outside `[0, num_labels)` are errors naming the file and row, or
//! skipped and reported with [`OnInvalid::Skip`]. Encoding runs in parallel over all cores.

use crate::dataset::{Column, Dataset, Field};
use crate::features::Feature;
use crate::source::{OnInvalid, Skipped};
use crate::tokenize::TextTokenizer;
use crate::{DataError, Result};

/// The label id ignored by the loss (PyTorch's `ignore_index`; defined in `ft-hub`).
pub use ft_hub::batch::IGNORE_INDEX;

/// Options of the tokenization functions.
#[derive(Debug, Clone)]
pub struct TokenizeOptions {
    /// Truncation length, special tokens included; `None`: the tokenizer's `model_max_length`.
    pub max_length: Option<usize>,
    /// Number of classes; `None`: the label column's `ClassLabel` names (or no upper bound).
    pub num_labels: Option<usize>,
    /// Label every sub-token of a word, not only the first (continuation sub-tokens of a `B-X`
    /// word get `I-X` when the label names are known, as transformers' `run_ner.py` does).
    pub label_all_tokens: bool,
    /// Error out on bad rows, or skip them.
    pub on_invalid: OnInvalid,
    /// Rows per encoding call (each call is parallel).
    pub batch_size: usize,
}

impl Default for TokenizeOptions {
    fn default() -> Self {
        Self {
            max_length: None,
            num_labels: None,
            label_all_tokens: false,
            on_invalid: OnInvalid::Error,
            batch_size: 4096,
        }
    }
}

/// A tokenized dataset: columns `input_ids`, `attention_mask`, `token_type_ids` (lists of ints)
/// and, when there were labels, `labels` (a class id per row, or a label per token with -100 for
/// ignored tokens). Rows keep their origins; skipped rows are listed.
#[derive(Debug, Clone)]
pub struct Tokenized {
    /// The encoded rows.
    pub dataset: Dataset,
    /// Rows left out under [`OnInvalid::Skip`].
    pub skipped: Vec<Skipped>,
}

/// `-100` for special tokens and for every sub-token but the first of a word; the word's label
/// for its first sub-token (for all sub-tokens with `label_all_tokens`, mapped through
/// `continuation` when given). This is the notebook's `tokenize_and_align_labels` loop.
pub fn align_labels(
    word_ids: &[Option<u32>],
    word_labels: &[i64],
    label_all_tokens: bool,
    continuation: Option<&[i64]>,
) -> Vec<i64> {
    let mut prev: Option<u32> = None;
    word_ids
        .iter()
        .map(|&w| {
            let label = match w {
                None => IGNORE_INDEX,
                Some(w) => {
                    let l = word_labels.get(w as usize).copied().unwrap_or(IGNORE_INDEX);
                    if Some(w) != prev {
                        l
                    } else if label_all_tokens {
                        continuation.and_then(|c| usize::try_from(l).ok().and_then(|i| c.get(i)).copied()).unwrap_or(l)
                    } else {
                        IGNORE_INDEX
                    }
                }
            };
            prev = w;
            label
        })
        .collect()
}

/// For label names like `B-PER`, the id of `I-PER` for each id (itself otherwise).
fn b_to_i(names: &[String]) -> Vec<i64> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| match n.strip_prefix("B-") {
            Some(rest) => names.iter().position(|m| m == &format!("I-{rest}")).unwrap_or(i) as i64,
            None => i as i64,
        })
        .collect()
}

fn tokenizer_for(tok: &TextTokenizer, opts: &TokenizeOptions) -> Result<TextTokenizer> {
    let max_length = opts.max_length.or(tok.model_max_length());
    tok.clone().with_max_length(max_length)
}

/// Per-row check outcome: `Ok(())`, or a message for this row.
type RowCheck = std::result::Result<(), String>;

fn handle_invalid(ds: &Dataset, checks: Vec<RowCheck>, on_invalid: OnInvalid) -> Result<(Vec<usize>, Vec<Skipped>)> {
    let mut keep = Vec::with_capacity(checks.len());
    let mut skipped = Vec::new();
    for (i, c) in checks.into_iter().enumerate() {
        match c {
            Ok(()) => keep.push(i),
            Err(m) if on_invalid == OnInvalid::Skip => skipped.push(Skipped { origin: ds.origin(i), reason: m }),
            Err(m) => return Err(ds.row_error(i, m)),
        }
    }
    Ok((keep, skipped))
}

/// String values of a column (`None` for missing values).
fn strings<'a>(ds: &'a Dataset, column: &str) -> Result<Vec<Option<&'a str>>> {
    match ds.column(column)? {
        Column::Str(v) => Ok(v.iter().map(|s| Some(s.as_str())).collect()),
        Column::Json(v) if v.iter().all(|x| x.is_string() || x.is_null()) => Ok(v.iter().map(|x| x.as_str()).collect()),
        other => Err(ds.type_error(column, other, "string")),
    }
}

/// Integer values of a column (`None` for missing values).
fn ints(ds: &Dataset, column: &str) -> Result<Vec<Option<i64>>> {
    match ds.column(column)? {
        Column::Int(v) => Ok(v.iter().map(|&x| Some(x)).collect()),
        Column::Json(v) if v.iter().all(|x| x.is_i64() || x.is_null()) => Ok(v.iter().map(|x| x.as_i64()).collect()),
        other => Err(ds.type_error(column, other, "int64 class ids")),
    }
}

fn label_range_check(label: i64, num_labels: Option<usize>, names: Option<&[String]>) -> RowCheck {
    let upper = num_labels.or(names.map(<[String]>::len));
    let bad = label < 0 || upper.is_some_and(|n| label as u64 >= n as u64);
    if bad {
        let range = upper.map(|n| format!("[0, {n})")).unwrap_or_else(|| "[0, ∞)".into());
        Err(format!("label {label} is outside {range}"))
    } else {
        Ok(())
    }
}

fn encoded_fields(ids: Vec<Vec<i64>>, types: Vec<Vec<i64>>) -> Vec<Field> {
    let mask: Vec<Vec<i64>> = ids.iter().map(|v| vec![1; v.len()]).collect();
    vec![
        Field::new("input_ids", Column::IntList(ids)),
        Field::new("attention_mask", Column::IntList(mask)),
        Field::new("token_type_ids", Column::IntList(types)),
    ]
}

/// Tokenizes a text column (and keeps its labels as `labels`), like
/// `ds.map(lambda b: tok(b[text], truncation=True, max_length=N), batched=True)
/// .rename_column(label, "labels")`.
pub fn tokenize_text_classification(
    ds: &Dataset,
    tok: &TextTokenizer,
    text_column: &str,
    label_column: Option<&str>,
    opts: &TokenizeOptions,
) -> Result<Tokenized> {
    let texts = strings(ds, text_column)?;
    let labels = label_column.map(|c| ints(ds, c)).transpose()?;
    let names = label_column.and_then(|c| ds.label_names(c));
    let checks: Vec<RowCheck> = (0..ds.len())
        .map(|i| {
            match texts[i] {
                None => return Err(format!("'{text_column}' is missing")),
                Some(t) if t.trim().is_empty() => return Err(format!("'{text_column}' is empty")),
                _ => {}
            }
            if let Some(labels) = &labels {
                match labels[i] {
                    None => return Err(format!("'{}' is missing", label_column.unwrap_or_default())),
                    Some(l) => label_range_check(l, opts.num_labels, names)?,
                }
            }
            Ok(())
        })
        .collect();
    let (keep, skipped) = handle_invalid(ds, checks, opts.on_invalid)?;
    let tok = tokenizer_for(tok, opts)?;
    let mut ids = Vec::with_capacity(keep.len());
    let mut types = Vec::with_capacity(keep.len());
    for chunk in keep.chunks(opts.batch_size.max(1)) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].unwrap_or_default()).collect();
        for e in tok.encode_ids_batch(&batch).map_err(|e| chunk_error(ds, chunk, e))? {
            ids.push(e.input_ids.iter().map(|&x| x as i64).collect());
            types.push(e.type_ids.iter().map(|&x| x as i64).collect());
        }
    }
    let kept = ds.select(&keep)?;
    let mut fields = encoded_fields(ids, types);
    if let (Some(labels), Some(col)) = (&labels, label_column) {
        let feature = ds.field(col)?.feature.clone();
        let feature =
            if matches!(feature, Feature::ClassLabel { .. }) { feature } else { Feature::Value("int64".into()) };
        fields.push(Field::with_feature(
            "labels",
            feature,
            Column::Int(keep.iter().map(|&i| labels[i].unwrap_or(0)).collect()),
        ));
    }
    let dataset =
        Dataset::with_origins(kept.name().to_string(), fields, kept.files().to_vec(), kept.origins().to_vec())?;
    Ok(Tokenized { dataset, skipped })
}

/// The notebook's `tokenize_and_align_labels`: tokenizes pre-split words
/// (`is_split_into_words=True, truncation=True`) and aligns the word tags to the tokens
/// ([`align_labels`]).
pub fn tokenize_and_align_labels(
    ds: &Dataset,
    tok: &TextTokenizer,
    tokens_column: &str,
    tags_column: &str,
    opts: &TokenizeOptions,
) -> Result<Tokenized> {
    let words: Vec<Option<&[String]>> = match ds.column(tokens_column)? {
        Column::StrList(v) => v.iter().map(|w| Some(w.as_slice())).collect(),
        other => return Err(ds.type_error(tokens_column, other, "list<string> (pre-split words)")),
    };
    let tags: &[Vec<i64>] = match ds.column(tags_column)? {
        Column::IntList(v) => v,
        other => return Err(ds.type_error(tags_column, other, "list<int64> (tag ids)")),
    };
    let names = ds.label_names(tags_column);
    let checks: Vec<RowCheck> = (0..ds.len())
        .map(|i| {
            let w = words[i].unwrap_or_default();
            if w.is_empty() {
                return Err(format!("'{tokens_column}' is an empty word list"));
            }
            if w.len() != tags[i].len() {
                return Err(format!(
                    "{} words in '{tokens_column}' but {} tags in '{tags_column}'",
                    w.len(),
                    tags[i].len()
                ));
            }
            for &t in &tags[i] {
                label_range_check(t, opts.num_labels, names)?;
            }
            Ok(())
        })
        .collect();
    let (keep, skipped) = handle_invalid(ds, checks, opts.on_invalid)?;
    let tok = tokenizer_for(tok, opts)?;
    let continuation = names.map(b_to_i);
    let mut ids = Vec::with_capacity(keep.len());
    let mut types = Vec::with_capacity(keep.len());
    let mut labels = Vec::with_capacity(keep.len());
    for chunk in keep.chunks(opts.batch_size.max(1)) {
        let batch: Vec<&[String]> = chunk.iter().map(|&i| words[i].unwrap_or_default()).collect();
        let encoded = tok.encode_words_ids_batch(&batch).map_err(|e| chunk_error(ds, chunk, e))?;
        for (e, &i) in encoded.into_iter().zip(chunk) {
            labels.push(align_labels(&e.word_ids, &tags[i], opts.label_all_tokens, continuation.as_deref()));
            ids.push(e.input_ids.iter().map(|&x| x as i64).collect());
            types.push(e.type_ids.iter().map(|&x| x as i64).collect());
        }
    }
    let kept = ds.select(&keep)?;
    let mut fields = encoded_fields(ids, types);
    let feature = ds.field(tags_column)?.feature.clone();
    fields.push(Field::with_feature("labels", feature, Column::IntList(labels)));
    let dataset =
        Dataset::with_origins(kept.name().to_string(), fields, kept.files().to_vec(), kept.origins().to_vec())?;
    Ok(Tokenized { dataset, skipped })
}

fn chunk_error(ds: &Dataset, chunk: &[usize], e: DataError) -> DataError {
    let first = chunk.first().copied().unwrap_or(0);
    DataError::Row { origin: ds.origin(first), message: format!("tokenizing the batch starting at this row: {e}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_the_notebook() {
        // [CLS] EU rej ##ects Ger ##man [SEP]
        let words = [None, Some(0), Some(1), Some(1), Some(2), Some(2), None];
        assert_eq!(align_labels(&words, &[3, 0, 7], false, None), [-100, 3, 0, -100, 7, -100, -100]);
        assert_eq!(align_labels(&words, &[3, 0, 7], true, None), [-100, 3, 0, 0, 7, 7, -100]);
        let names: Vec<String> =
            ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"].map(String::from).to_vec();
        let c = b_to_i(&names);
        assert_eq!(align_labels(&words, &[3, 0, 7], true, Some(&c)), [-100, 3, 0, 0, 7, 8, -100]);
        // A word the tokenizer dropped entirely (e.g. a zero-width character) leaves no token.
        assert_eq!(align_labels(&[None, Some(0), Some(2), None], &[1, 2, 3], false, None), [-100, 1, 3, -100]);
    }

    #[test]
    fn label_range() {
        assert!(label_range_check(3, Some(4), None).is_ok());
        assert_eq!(label_range_check(4, Some(4), None).unwrap_err(), "label 4 is outside [0, 4)");
        assert!(label_range_check(-1, None, None).is_err());
    }
}
