//! What the pipelines share: options, tokenizer set-up, length-sorted batching, read-back.

use burn::tensor::{Device, Tensor};
use ft_data::collate::{TextBatch, pad_batch};
use ft_data::tokenize::{Encoded, TextTokenizer};
use ft_models::auto::{Loaded, ModelConfig};

use crate::{Result, ServeError};

/// Options shared by the pipelines.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Truncation length in tokens, special tokens included; the model's
    /// `max_position_embeddings` when `None`.
    pub max_length: Option<usize>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self { batch_size: 32, max_length: None }
    }
}

/// Loads the model's tokenizer, truncating at `max_length` or the model's positions (less the
/// `reserved` positions a prompt-learning adapter's virtual tokens take).
pub(crate) fn tokenizer_for<M>(loaded: &Loaded<M>, options: &PipelineOptions, reserved: usize) -> Result<TextTokenizer> {
    if options.batch_size == 0 {
        return Err(ServeError::Options("batch size must be at least 1".into()));
    }
    let Some(limit) = loaded.config.max_positions().checked_sub(reserved).filter(|l| *l > 0) else {
        return Err(ServeError::Options(format!(
            "the adapter's {reserved} virtual tokens leave no room for input tokens in the model's {} positions",
            loaded.config.max_positions()
        )));
    };
    let max_length = match options.max_length {
        Some(0) => return Err(ServeError::Options("max length must be at least 1".into())),
        Some(n) if n > limit => {
            return Err(ServeError::Options(format!(
                "max length {n} exceeds the model's max_position_embeddings {limit} (less the adapter's virtual tokens)"
            )));
        }
        Some(n) => n,
        None => limit,
    };
    Ok(TextTokenizer::from_repo(&loaded.files)?.with_max_length(Some(max_length))?)
}

/// Checks that every encoding has tokens and that every token id fits the model's vocabulary
/// (a tokenizer from another model would otherwise index out of the embedding table).
pub(crate) fn check_encodings(config: &ModelConfig, encodings: &[Encoded]) -> Result<()> {
    let vocab = config.vocab_size();
    for (i, e) in encodings.iter().enumerate() {
        if e.is_empty() {
            return Err(ServeError::Input {
                index: i,
                message: "the tokenizer produced no tokens (it adds no special tokens and the text is empty)".into(),
            });
        }
        if let Some(&bad) = e.input_ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(ServeError::Input {
                index: i,
                message: format!(
                    "token id {bad} is outside the model's vocabulary of {vocab}: the tokenizer does not belong to this model"
                ),
            });
        }
    }
    Ok(())
}

/// Runs `forward` over `encodings` in batches of `batch_size`, longest first so that each batch
/// pads little, and returns one result per encoding in the original order.
pub(crate) fn run_batched<T>(
    encodings: &[Encoded],
    batch_size: usize,
    pad_id: u32,
    device: &Device,
    mut forward: impl FnMut(&TextBatch, &[usize]) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut order: Vec<usize> = (0..encodings.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
    let mut results: Vec<Option<T>> = (0..encodings.len()).map(|_| None).collect();
    for chunk in order.chunks(batch_size.max(1)) {
        let refs: Vec<&Encoded> = chunk.iter().map(|&i| &encodings[i]).collect();
        let batch = pad_batch(&refs, pad_id, None, device);
        let outputs = forward(&batch, chunk)?;
        for (&i, out) in chunk.iter().zip(outputs) {
            results[i] = Some(out);
        }
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.ok_or_else(|| ServeError::Readback(format!("no result for input {i}"))))
        .collect()
}

/// Reads a float tensor back as a flat `Vec<f32>`.
pub(crate) fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data().try_into_vec_as::<f32>().map_err(|e| ServeError::Readback(format!("{e:?}")))
}

/// Numerically stable softmax (as the pipelines' numpy code: shift by the max).
pub use ft_hub::ops::softmax;

/// Element-wise logistic sigmoid.
pub fn sigmoid(logits: &[f32]) -> Vec<f32> {
    logits.iter().map(|&x| (1.0 / (1.0 + (-(x as f64)).exp())) as f32).collect()
}

/// Index and value of the largest score: the first one on ties, as `numpy.argmax`; NaN scores
/// lose to any number.
pub(crate) fn argmax(scores: &[f32]) -> (usize, f32) {
    let mut best = (0, scores.first().copied().unwrap_or(f32::NAN));
    for (i, &s) in scores.iter().enumerate().skip(1) {
        if s > best.1 || (best.1.is_nan() && !s.is_nan()) {
            best = (i, s);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_is_stable() {
        let p = softmax(&[1000.0, 1000.0, 999.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - p[1]).abs() < 1e-7);
    }

    #[test]
    fn argmax_takes_first_on_ties() {
        assert_eq!(argmax(&[0.2, 0.5, 0.5]).0, 1);
        assert_eq!(argmax(&[f32::NAN, 0.5]).0, 1);
    }
}
