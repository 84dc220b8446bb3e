//! Collation: encoded rows → padded Burn tensors on any device, as transformers' collators do it.
//!
//! | transformers | here |
//! |---|---|
//! | `DataCollatorWithPadding(tok)` | [`pad_batch`] (encodings), [`pad_classification`] (ids + class labels) |
//! | `DataCollatorForTokenClassification(tok)` | [`pad_token_classification`]: labels padded with -100 |
//! | `DataCollatorForLanguageModeling(tok, mlm=False)` | [`pad_causal_lm`]: labels = input_ids, -100 where the id is the pad id |
//! | `group_by_length=True` (`LengthGroupedSampler`) | [`group_by_length`] |
//!
//! Padding is on the right, to the longest row of the batch (rounded up to
//! `pad_to_multiple_of`). [`collate_dataset`] builds a batch straight from rows of a tokenized
//! [`Dataset`] (see [`crate::align`]).

use burn::tensor::{Device, Int, Tensor, TensorData};

pub use ft_hub::batch::TextBatch;
use ft_hub::batch::IGNORE_INDEX;

use crate::dataset::{Column, Dataset};
use crate::tokenize::Encoded;
use crate::{DataError, Result};

/// Pads `encodings` on the right to the longest one (rounded up to a multiple of
/// `pad_to_multiple_of` when given) and builds the tensors on `device`.
///
/// An empty slice gives tensors of shape `[0, 0]`.
pub fn pad_batch(encodings: &[&Encoded], pad_id: u32, pad_to_multiple_of: Option<usize>, device: &Device) -> TextBatch {
    let lengths: Vec<usize> = encodings.iter().map(|e| e.len()).collect();
    let mut width = lengths.iter().copied().max().unwrap_or(0);
    if let Some(m) = pad_to_multiple_of.filter(|&m| m > 1) {
        width = width.div_ceil(m) * m;
    }
    let b = encodings.len();
    let mut ids = Vec::with_capacity(b * width);
    let mut mask = Vec::with_capacity(b * width);
    let mut types = Vec::with_capacity(b * width);
    for e in encodings {
        let pad = width - e.len();
        ids.extend(e.input_ids.iter().map(|&x| x as i64));
        ids.extend(std::iter::repeat_n(pad_id as i64, pad));
        mask.extend(std::iter::repeat_n(1i64, e.len()));
        mask.extend(std::iter::repeat_n(0i64, pad));
        types.extend(e.type_ids.iter().map(|&x| x as i64));
        types.extend(std::iter::repeat_n(0i64, pad));
    }
    let tensor = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [b, width]), device);
    TextBatch { input_ids: tensor(ids), attention_mask: tensor(mask), token_type_ids: tensor(types), lengths }
}

fn padded_width(lengths: impl Iterator<Item = usize>, pad_to_multiple_of: Option<usize>) -> usize {
    let mut width = lengths.max().unwrap_or(0);
    if let Some(m) = pad_to_multiple_of.filter(|&m| m > 1) {
        width = width.div_ceil(m) * m;
    }
    width
}

fn pad_rows(rows: &[&[i64]], value: i64, width: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for r in rows {
        let r = &r[..r.len().min(width)];
        out.extend_from_slice(r);
        out.extend(std::iter::repeat_n(value, width - r.len()));
    }
    out
}

fn int2(values: Vec<i64>, b: usize, width: usize, device: &Device) -> Tensor<2, Int> {
    Tensor::<2, Int>::from_data(TensorData::new(values, [b, width]), device)
}

fn text_batch(ids: &[&[i64]], type_ids: Option<&[&[i64]]>, pad_id: u32, width: usize, device: &Device) -> TextBatch {
    let b = ids.len();
    let lengths: Vec<usize> = ids.iter().map(|r| r.len()).collect();
    let mask_rows: Vec<Vec<i64>> = lengths.iter().map(|&n| vec![1; n]).collect();
    let mask_refs: Vec<&[i64]> = mask_rows.iter().map(Vec::as_slice).collect();
    let zeros: Vec<Vec<i64>>;
    let types: Vec<&[i64]> = match type_ids {
        Some(t) => t.to_vec(),
        None => {
            zeros = lengths.iter().map(|&n| vec![0; n]).collect();
            zeros.iter().map(Vec::as_slice).collect()
        }
    };
    TextBatch {
        input_ids: int2(pad_rows(ids, pad_id as i64, width), b, width, device),
        attention_mask: int2(pad_rows(&mask_refs, 0, width), b, width, device),
        token_type_ids: int2(pad_rows(&types, 0, width), b, width, device),
        lengths,
    }
}

/// A padded batch with one class label per row.
#[derive(Debug, Clone)]
pub struct ClassificationBatch {
    /// The padded inputs.
    pub inputs: TextBatch,
    /// `[batch]` class ids.
    pub labels: Tensor<1, Int>,
}

/// A padded batch with one label per token (`-100` on padding and ignored tokens).
#[derive(Debug, Clone)]
pub struct TokenLabelBatch {
    /// The padded inputs.
    pub inputs: TextBatch,
    /// `[batch, seq]` labels.
    pub labels: Tensor<2, Int>,
}

/// `DataCollatorWithPadding` plus `labels`: pads `ids` (and `type_ids`, zeros when `None`).
pub fn pad_classification(
    ids: &[&[i64]],
    type_ids: Option<&[&[i64]]>,
    labels: &[i64],
    pad_id: u32,
    pad_to_multiple_of: Option<usize>,
    device: &Device,
) -> ClassificationBatch {
    let width = padded_width(ids.iter().map(|r| r.len()), pad_to_multiple_of);
    ClassificationBatch {
        inputs: text_batch(ids, type_ids, pad_id, width, device),
        labels: Tensor::<1, Int>::from_data(TensorData::new(labels.to_vec(), [labels.len()]), device),
    }
}

/// `DataCollatorForTokenClassification`: pads inputs with the pad id and labels with -100.
pub fn pad_token_classification(
    ids: &[&[i64]],
    type_ids: Option<&[&[i64]]>,
    labels: &[&[i64]],
    pad_id: u32,
    pad_to_multiple_of: Option<usize>,
    device: &Device,
) -> TokenLabelBatch {
    let width = padded_width(ids.iter().chain(labels.iter()).map(|r| r.len()), pad_to_multiple_of);
    TokenLabelBatch {
        inputs: text_batch(ids, type_ids, pad_id, width, device),
        labels: int2(pad_rows(labels, IGNORE_INDEX, width), labels.len(), width, device),
    }
}

/// `DataCollatorForLanguageModeling(mlm=False)`: labels are the input ids with -100 wherever the
/// id equals the pad id — on padding, and (as in transformers) on real tokens that share the pad
/// id, e.g. GPT-2's end-of-text when it doubles as the pad token. The model shifts labels itself.
pub fn pad_causal_lm(
    ids: &[&[i64]],
    pad_id: u32,
    pad_to_multiple_of: Option<usize>,
    device: &Device,
) -> TokenLabelBatch {
    let width = padded_width(ids.iter().map(|r| r.len()), pad_to_multiple_of);
    let b = ids.len();
    let labels: Vec<i64> = pad_rows(ids, pad_id as i64, width)
        .into_iter()
        .map(|x| if x == pad_id as i64 { IGNORE_INDEX } else { x })
        .collect();
    TokenLabelBatch { inputs: text_batch(ids, None, pad_id, width, device), labels: int2(labels, b, width, device) }
}

/// What [`collate_dataset`] builds.
#[derive(Debug, Clone)]
pub enum Collated {
    /// `labels` is one class id per row.
    Classification(ClassificationBatch),
    /// `labels` is one label per token (token classification, or causal LM).
    TokenLabels(TokenLabelBatch),
    /// No `labels` column.
    Unlabelled(TextBatch),
}

/// Which collator [`collate_dataset`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollateKind {
    /// Pad inputs; `labels` (if any) is a class id per row, or per token padded with -100.
    Auto,
    /// Causal language modelling: labels from the input ids ([`pad_causal_lm`]).
    CausalLm,
}

/// Builds a batch from rows `indices` of a tokenized dataset (columns `input_ids`, optional
/// `token_type_ids` and `labels`, as [`crate::align`] makes them).
pub fn collate_dataset(
    ds: &Dataset,
    indices: &[usize],
    kind: CollateKind,
    pad_id: u32,
    pad_to_multiple_of: Option<usize>,
    device: &Device,
) -> Result<Collated> {
    if let Some(&bad) = indices.iter().find(|&&i| i >= ds.len()) {
        return Err(DataError::Op {
            op: "collate",
            message: format!("index {bad} is out of range for {} ({} rows)", ds.name(), ds.len()),
        });
    }
    let lists = |name: &str| -> Result<Vec<&[i64]>> {
        match ds.column(name)? {
            Column::IntList(v) => Ok(indices.iter().map(|&i| v[i].as_slice()).collect()),
            other => Err(ds.type_error(name, other, "list<int64>")),
        }
    };
    let ids = lists("input_ids")?;
    if kind == CollateKind::CausalLm {
        return Ok(Collated::TokenLabels(pad_causal_lm(&ids, pad_id, pad_to_multiple_of, device)));
    }
    let types = if ds.has_column("token_type_ids") { Some(lists("token_type_ids")?) } else { None };
    if !ds.has_column("labels") {
        let width = padded_width(ids.iter().map(|r| r.len()), pad_to_multiple_of);
        return Ok(Collated::Unlabelled(text_batch(&ids, types.as_deref(), pad_id, width, device)));
    }
    Ok(match ds.column("labels")? {
        Column::Int(v) => {
            let labels: Vec<i64> = indices.iter().map(|&i| v[i]).collect();
            Collated::Classification(pad_classification(
                &ids,
                types.as_deref(),
                &labels,
                pad_id,
                pad_to_multiple_of,
                device,
            ))
        }
        Column::IntList(_) => {
            let labels = lists("labels")?;
            Collated::TokenLabels(pad_token_classification(
                &ids,
                types.as_deref(),
                &labels,
                pad_id,
                pad_to_multiple_of,
                device,
            ))
        }
        other => return Err(ds.type_error("labels", other, "int64 or list<int64>")),
    })
}

/// transformers' `LengthGroupedSampler` order (`group_by_length=True`): a random permutation
/// (NumPy's, from `seed`, where transformers uses torch's generator) cut into megabatches of
/// `min(n / (4 * batch_size), 50) * batch_size` rows (at least one batch), each sorted by length,
/// longest first, with the longest megabatch head moved to the very front (so an out-of-memory
/// shows at once). Consecutive `batch_size` chunks of the result have similar lengths.
pub fn group_by_length(lengths: &[usize], batch_size: usize, seed: u64) -> Vec<usize> {
    let n = lengths.len();
    let batch_size = batch_size.max(1);
    let mult = (n / (batch_size * 4)).clamp(1, 50);
    let mega = mult * batch_size;
    let perm = crate::rng::permutation(n, seed);
    let mut megabatches: Vec<Vec<usize>> = perm
        .chunks(mega)
        .map(|c| {
            let mut v = c.to_vec();
            v.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
            v
        })
        .collect();
    if let Some(max_idx) = (0..megabatches.len()).max_by(|&a, &b| {
        // argmax: the first maximum, as torch.argmax
        lengths[megabatches[a][0]].cmp(&lengths[megabatches[b][0]]).then(b.cmp(&a))
    }) {
        let head = megabatches[max_idx][0];
        megabatches[max_idx][0] = megabatches[0][0];
        megabatches[0][0] = head;
    }
    megabatches.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ids: &[u32]) -> Encoded {
        Encoded {
            input_ids: ids.to_vec(),
            type_ids: vec![0; ids.len()],
            word_ids: vec![None; ids.len()],
            offsets: vec![(0, 0); ids.len()],
            special_tokens_mask: vec![0; ids.len()],
        }
    }

    #[test]
    fn pads_to_longest_and_multiple() {
        let device = Device::flex();
        let (a, b) = (enc(&[1, 2, 3]), enc(&[4]));
        let batch = pad_batch(&[&a, &b], 9, None, &device);
        assert_eq!(batch.input_ids.dims(), [2, 3]);
        let ids: Vec<i64> = batch.input_ids.into_data().try_into_vec_as::<i64>().unwrap();
        assert_eq!(ids, vec![1, 2, 3, 4, 9, 9]);
        let mask: Vec<i64> = batch.attention_mask.into_data().try_into_vec_as::<i64>().unwrap();
        assert_eq!(mask, vec![1, 1, 1, 1, 0, 0]);
        let batch = pad_batch(&[&a, &b], 0, Some(8), &device);
        assert_eq!(batch.input_ids.dims(), [2, 8]);
        assert_eq!(batch.lengths, vec![3, 1]);
    }

    fn values(t: Tensor<2, Int>) -> Vec<i64> {
        t.into_data().try_into_vec_as::<i64>().unwrap()
    }

    #[test]
    fn token_classification_pads_labels_with_ignore_index() {
        let device = Device::flex();
        let (a, b): (Vec<i64>, Vec<i64>) = (vec![2, 5, 6, 3], vec![2, 7, 3]);
        let (la, lb): (Vec<i64>, Vec<i64>) = (vec![-100, 1, 2, -100], vec![-100, 0, -100]);
        let batch = pad_token_classification(&[&a, &b], None, &[&la, &lb], 0, None, &device);
        assert_eq!(values(batch.inputs.input_ids), [2, 5, 6, 3, 2, 7, 3, 0]);
        assert_eq!(values(batch.inputs.attention_mask), [1, 1, 1, 1, 1, 1, 1, 0]);
        assert_eq!(values(batch.labels), [-100, 1, 2, -100, -100, 0, -100, -100]);
        let batch = pad_classification(&[&a, &b], None, &[3, 1], 0, Some(8), &device);
        assert_eq!(batch.inputs.input_ids.dims(), [2, 8]);
        assert_eq!(batch.labels.into_data().try_into_vec_as::<i64>().unwrap(), [3, 1]);
    }

    #[test]
    fn causal_lm_labels_mask_the_pad_id() {
        let device = Device::flex();
        let (a, b): (Vec<i64>, Vec<i64>) = (vec![10, 11, 50256], vec![12]);
        let batch = pad_causal_lm(&[&a, &b], 50256, None, &device);
        assert_eq!(values(batch.inputs.input_ids), [10, 11, 50256, 12, 50256, 50256]);
        assert_eq!(values(batch.labels), [10, 11, -100, 12, -100, -100]);
        assert_eq!(values(batch.inputs.attention_mask), [1, 1, 1, 1, 0, 0]);
    }

    #[test]
    fn length_grouping_is_a_permutation_with_the_longest_first() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 37) % 211).collect();
        let order = group_by_length(&lengths, 8, 42);
        assert_eq!(lengths[order[0]], *lengths.iter().max().unwrap());
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        // Padding waste per batch of 8 is far below that of a random order.
        let waste = |o: &[usize]| -> usize {
            o.chunks(8)
                .map(|c| {
                    let m = c.iter().map(|&i| lengths[i]).max().unwrap();
                    c.iter().map(|&i| m - lengths[i]).sum::<usize>()
                })
                .sum()
        };
        assert!(waste(&order) * 5 < waste(&crate::rng::permutation(1000, 42)));
    }
}
