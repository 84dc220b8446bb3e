//! `pipeline("text-classification")`.

use burn::tensor::Device;
use ft_data::tokenize::TextTokenizer;
use ft_models::auto::{Loaded, SequenceClassifier};
use ft_models::input::TextInput;
use ft_models::peft::PeftModel;

use super::common::{
    AdapterTokenizer, BatchShape, PipelineOptions, active_labels, argmax, check_encodings, run_batched, sigmoid,
    softmax, switch_adapter, to_vec,
};
use crate::Result;

/// One text's prediction.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TextClassification {
    /// The top label's name (`id2label`).
    pub label: String,
    /// Its probability: softmax over the labels, or sigmoid for multi-label and single-logit
    /// models, or the raw logit for regression — as transformers' `function_to_apply` default.
    pub score: f32,
    /// The raw logits, one per label.
    pub logits: Vec<f32>,
    /// Tokens the model read for this text (after truncation, special tokens included).
    #[serde(skip)]
    pub tokens: usize,
    /// Every label's score, by label id (for `top_k`).
    #[serde(skip)]
    pub scores: Vec<f32>,
}

/// How scores are derived from logits (transformers' `ClassificationFunction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScoreFn {
    Softmax,
    Sigmoid,
    Identity,
}

impl ScoreFn {
    /// transformers' default `function_to_apply` for a head with `n_labels` labels.
    fn for_head(config: &ft_models::auto::ModelConfig, n_labels: usize) -> Self {
        match config.labels().problem_type.as_deref() {
            Some("regression") => Self::Identity,
            Some("multi_label_classification") => Self::Sigmoid,
            _ if n_labels == 1 => Self::Sigmoid,
            _ => Self::Softmax,
        }
    }
}

/// A sequence classifier with its tokenizer.
#[derive(Debug)]
pub struct TextClassificationPipeline {
    model: PeftModel<SequenceClassifier>,
    tokenizer: AdapterTokenizer,
    labels: Vec<String>,
    score_fn: ScoreFn,
    shape: BatchShape,
    device: Device,
    config: ft_models::auto::ModelConfig,
}

impl TextClassificationPipeline {
    /// Wraps a loaded model; the tokenizer comes from the model's repository.
    pub fn new(loaded: Loaded<SequenceClassifier>, options: &PipelineOptions, device: &Device) -> Result<Self> {
        Self::with_adapters(loaded.map(PeftModel::new), options, device)
    }

    /// Wraps a model with PEFT adapters; the active one runs (inputs are truncated so that a
    /// prompt-learning adapter's virtual tokens fit).
    pub fn with_adapters(
        loaded: Loaded<PeftModel<SequenceClassifier>>,
        options: &PipelineOptions,
        device: &Device,
    ) -> Result<Self> {
        let tokenizer = AdapterTokenizer::new(&loaded, options, loaded.model.num_virtual_tokens())?;
        // An adapter with its own head (AdapterHub) names its labels.
        let labels = active_labels(&loaded.model, &loaded.config);
        let score_fn = ScoreFn::for_head(&loaded.config, labels.len());
        Ok(Self {
            model: loaded.model,
            tokenizer,
            labels,
            score_fn,
            shape: options.into(),
            device: device.clone(),
            config: loaded.config,
        })
    }

    /// Label names by id.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The tokenizer in use.
    pub fn tokenizer(&self) -> &TextTokenizer {
        self.tokenizer.get()
    }

    /// Makes adapter `name` the active one (`None`: adapters off, the base model alone) — cheap:
    /// no weights are reloaded; the tokenizer's truncation and the labels follow the adapter.
    pub fn set_adapter(&mut self, name: Option<&str>) -> Result<()> {
        switch_adapter(&mut self.model, &mut self.tokenizer, name)?;
        self.labels = active_labels(&self.model, &self.config);
        // An adapter's own head may have another number of labels.
        self.score_fn = ScoreFn::for_head(&self.config, self.labels.len());
        Ok(())
    }

    /// Classifies texts; one result per text, in order.
    pub fn predict(&self, texts: &[&str]) -> Result<Vec<TextClassification>> {
        let encodings = self.tokenizer.get().encode_batch(texts)?;
        check_encodings(&self.config, &encodings)?;
        let n_labels = self.labels.len();
        run_batched(&encodings, self.shape, self.tokenizer.get().pad_id(), &self.device, |batch, idx| {
            let logits = to_vec(self.model.forward(&TextInput::from_batch(batch))?)?;
            Ok(idx
                .iter()
                .enumerate()
                .map(|(row, &i)| {
                    let logits = logits[row * n_labels..(row + 1) * n_labels].to_vec();
                    let scores = match self.score_fn {
                        ScoreFn::Softmax => softmax(&logits),
                        ScoreFn::Sigmoid => sigmoid(&logits),
                        ScoreFn::Identity => logits.clone(),
                    };
                    let (best, score) = argmax(&scores);
                    TextClassification {
                        label: self.labels[best].clone(),
                        score,
                        logits,
                        tokens: encodings[i].len(),
                        scores,
                    }
                })
                .collect())
        })
    }
}
