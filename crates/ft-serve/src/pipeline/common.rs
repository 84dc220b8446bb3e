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
    /// Most padded tokens (rows × longest row) in one forward pass; `None`: no limit beyond
    /// `batch_size`. A text longer than the limit runs alone.
    pub max_batch_tokens: Option<usize>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self { batch_size: 32, max_length: None, max_batch_tokens: None }
    }
}

/// Loads the model's tokenizer, truncating at `max_length` or the model's positions (less the
/// `reserved` positions a prompt-learning adapter's virtual tokens take).
pub(crate) fn tokenizer_for<M>(
    loaded: &Loaded<M>,
    options: &PipelineOptions,
    reserved: usize,
) -> Result<TextTokenizer> {
    if options.batch_size == 0 {
        return Err(ServeError::Options("batch size must be at least 1".into()));
    }
    let max_length = max_length_for(loaded.config.max_positions(), options.max_length, reserved)?;
    Ok(TextTokenizer::from_repo(&loaded.files)?.with_max_length(Some(max_length))?)
}

/// The truncation length: `max_length`, else the model's `max_positions`, less `reserved`.
fn max_length_for(max_positions: usize, max_length: Option<usize>, reserved: usize) -> Result<usize> {
    let Some(limit) = max_positions.checked_sub(reserved).filter(|l| *l > 0) else {
        return Err(ServeError::Options(format!(
            "the adapter's {reserved} virtual tokens leave no room for input tokens in the model's {max_positions} positions"
        )));
    };
    match max_length {
        Some(0) => Err(ServeError::Options("max length must be at least 1".into())),
        Some(n) if n > limit => Err(ServeError::Options(format!(
            "max length {n} exceeds the model's max_position_embeddings {limit} (less the adapter's virtual tokens)"
        ))),
        Some(n) => Ok(n),
        None => Ok(limit),
    }
}

/// A pipeline's truncating tokenizer that follows the active adapter: switching to a
/// prompt-learning adapter truncates shorter by its virtual tokens. One tokenizer per distinct
/// number of virtual tokens is kept, so switching back and forth costs nothing.
#[derive(Debug)]
pub(crate) struct AdapterTokenizer {
    current: TextTokenizer,
    reserved: usize,
    others: std::collections::BTreeMap<usize, TextTokenizer>,
    max_positions: usize,
    max_length: Option<usize>,
}

impl AdapterTokenizer {
    /// The tokenizer for a model whose active adapter has `reserved` virtual tokens.
    pub(crate) fn new<M>(loaded: &Loaded<M>, options: &PipelineOptions, reserved: usize) -> Result<Self> {
        Ok(Self {
            current: tokenizer_for(loaded, options, reserved)?,
            reserved,
            others: Default::default(),
            max_positions: loaded.config.max_positions(),
            max_length: options.max_length,
        })
    }

    /// The tokenizer for the active adapter.
    pub(crate) fn get(&self) -> &TextTokenizer {
        &self.current
    }

    /// Follows a switch to an adapter with `reserved` virtual tokens.
    pub(crate) fn reserve(&mut self, reserved: usize) -> Result<()> {
        if reserved == self.reserved {
            return Ok(());
        }
        let next = match self.others.remove(&reserved) {
            Some(t) => t,
            None => {
                let n = max_length_for(self.max_positions, self.max_length, reserved)?;
                self.current.clone().with_max_length(Some(n))?
            }
        };
        let previous = std::mem::replace(&mut self.current, next);
        self.others.insert(std::mem::replace(&mut self.reserved, reserved), previous);
        Ok(())
    }
}

/// Makes adapter `name` the active one (`None`: adapters off, the base model alone; a no-op
/// when it already is) and has `tokenizer` follow its virtual tokens. No weights are reloaded.
pub(crate) fn switch_adapter<M: ft_models::peft::PeftBase>(
    model: &mut ft_models::peft::PeftModel<M>,
    tokenizer: &mut AdapterTokenizer,
    name: Option<&str>,
) -> Result<()> {
    match name {
        Some(n) if model.active_name() == Some(n) && !model.is_disabled() => {}
        Some(n) => model.set_adapter(n)?,
        None if model.is_disabled() || model.adapters().is_empty() => {}
        None => model.disable_adapters()?,
    }
    tokenizer.reserve(model.num_virtual_tokens())
}

/// The label names of the head that runs: the active adapter's own (AdapterHub), else the
/// model's `id2label`.
pub(crate) fn active_labels<M: ft_models::peft::PeftBase>(
    model: &ft_models::peft::PeftModel<M>,
    config: &ModelConfig,
) -> Vec<String> {
    model.output_labels().unwrap_or_else(|| config.labels().label_names())
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

/// How inputs are cut into forward passes: at most `batch_size` rows and, when set, at most
/// `max_batch_tokens` padded tokens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchShape {
    pub batch_size: usize,
    pub max_batch_tokens: Option<usize>,
}

impl From<&PipelineOptions> for BatchShape {
    fn from(o: &PipelineOptions) -> Self {
        Self { batch_size: o.batch_size.max(1), max_batch_tokens: o.max_batch_tokens }
    }
}

impl BatchShape {
    /// Cuts `order` (sorted longest first) into batches; `len(i)` is input `i`'s length.
    pub(crate) fn chunks<'a>(&self, order: &'a [usize], len: impl Fn(usize) -> usize) -> Vec<&'a [usize]> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let longest = len(order[start]).max(1);
            let by_tokens = self.max_batch_tokens.map_or(usize::MAX, |t| (t / longest).max(1));
            let end = (start + self.batch_size.max(1).min(by_tokens)).min(order.len());
            out.push(&order[start..end]);
            start = end;
        }
        out
    }
}

/// Runs `forward` over `encodings` in batches cut by `limits`, longest first so that each batch
/// pads little, and returns one result per encoding in the original order.
pub(crate) fn run_batched<T>(
    encodings: &[Encoded],
    limits: BatchShape,
    pad_id: u32,
    device: &Device,
    mut forward: impl FnMut(&TextBatch, &[usize]) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut order: Vec<usize> = (0..encodings.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
    let mut results: Vec<Option<T>> = (0..encodings.len()).map(|_| None).collect();
    for chunk in limits.chunks(&order, |i| encodings[i].len()) {
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
    fn batches_are_cut_by_rows_and_by_padded_tokens() {
        let lens = [10, 8, 8, 5, 3, 1];
        let order: Vec<usize> = (0..lens.len()).collect();
        let shape = BatchShape { batch_size: 4, max_batch_tokens: None };
        assert_eq!(shape.chunks(&order, |i| lens[i]), vec![&[0, 1, 2, 3][..], &[4, 5][..]]);
        // 20 padded tokens: 2 rows of 10, then 2 of 8 (the second pads the 5), then the 3 and the 1.
        let shape = BatchShape { batch_size: 4, max_batch_tokens: Some(20) };
        assert_eq!(shape.chunks(&order, |i| lens[i]), vec![&[0, 1][..], &[2, 3][..], &[4, 5][..]]);
        // A text longer than the budget runs alone.
        let shape = BatchShape { batch_size: 4, max_batch_tokens: Some(5) };
        assert_eq!(
            shape.chunks(&order, |i| lens[i]).len(),
            6,
            "one row per batch: 1 and 3 fit 5 tokens, but not together"
        );
    }

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
