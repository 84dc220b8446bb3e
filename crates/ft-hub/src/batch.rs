//! The inputs text models take, shared by the data crate (which builds them) and the models
//! (which read them).

use burn::tensor::{Int, Tensor};

/// PyTorch's `ignore_index` (`CrossEntropyLoss`'s default): labels equal to it do not count —
/// padding in token classification and causal-LM labels, sub-tokens after a word's first.
pub const IGNORE_INDEX: i64 = -100;

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
