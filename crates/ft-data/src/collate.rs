//! Collation: encoded texts → padded Burn tensors (transformers' `DataCollatorWithPadding`).

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::tokenize::Encoded;

/// A padded batch of encoded texts.
#[derive(Debug, Clone)]
pub struct TextBatch {
    /// `[batch, seq]` token ids, right-padded with the tokenizer's pad id.
    pub input_ids: Tensor<2, Int>,
    /// `[batch, seq]`, 1 for tokens, 0 for padding.
    pub attention_mask: Tensor<2, Int>,
    /// `[batch, seq]` segment ids (0 on padding).
    pub token_type_ids: Tensor<2, Int>,
    /// Unpadded length of each row.
    pub lengths: Vec<usize>,
}

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
}
