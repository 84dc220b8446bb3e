//! `pipeline("token-classification", aggregation_strategy=...)`.
//!
//! Grouping follows transformers' `TokenClassificationPipeline` exactly: special tokens are
//! skipped; each token takes the argmax of its softmax scores; with `simple`, adjacent tokens
//! whose labels share an entity type are merged unless the next one is a `B-` tag, a group's
//! score is the mean of its tokens' scores, its word the tokens joined by the tokenizer's
//! decoder (the original text for unknown tokens), and groups labelled `O` are dropped.

use burn::tensor::Device;
use ft_data::tokenize::{Encoded, TextTokenizer};
use ft_models::auto::{Loaded, TokenClassifier};
use ft_models::input::TextInput;
use ft_models::peft::PeftModel;

use super::common::{
    AdapterTokenizer, BatchShape, PipelineOptions, active_labels, argmax, check_encodings, run_batched, softmax,
    switch_adapter, to_vec,
};
use crate::{Result, ServeError};

/// How tokens are grouped into entities (transformers' `AggregationStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregationStrategy {
    /// One entity per non-`O` token, labelled with its tag (`entity`, `index`).
    None,
    /// Adjacent tokens of the same type merged (`entity_group`).
    Simple,
}

impl std::str::FromStr for AggregationStrategy {
    type Err = ServeError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "simple" => Ok(Self::Simple),
            other => {
                Err(ServeError::Options(format!("aggregation strategy '{other}' is not supported (none, simple)")))
            }
        }
    }
}

/// An entity found in a text.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entity {
    /// The entity type (`PER`, `LOC`, ...), with `simple` aggregation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_group: Option<String>,
    /// The token's tag (`B-PER`, ...), without aggregation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Mean softmax score of the entity's tokens.
    pub score: f32,
    /// The token's position in the encoding, without aggregation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The entity's text as the tokenizer's decoder rebuilds it.
    pub word: String,
    /// Start offset in characters.
    pub start: usize,
    /// End offset in characters (exclusive).
    pub end: usize,
}

/// One text's token-level prediction.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenClassification {
    /// Token ids, special tokens included.
    pub input_ids: Vec<u32>,
    /// The word of each token; `None` for special tokens.
    pub word_ids: Vec<Option<u32>>,
    /// Logits per token, `[tokens][num_labels]`.
    pub logits: Vec<Vec<f32>>,
    /// Entities, grouped by the pipeline's strategy.
    pub entities: Vec<Entity>,
}

/// A token classifier with its tokenizer.
#[derive(Debug)]
pub struct TokenClassificationPipeline {
    model: PeftModel<TokenClassifier>,
    tokenizer: AdapterTokenizer,
    labels: Vec<String>,
    strategy: AggregationStrategy,
    shape: BatchShape,
    device: Device,
    config: ft_models::auto::ModelConfig,
}

struct TokenPrediction {
    tag: String,
    score: f32,
    index: usize,
    word: String,
    start: usize,
    end: usize,
}

impl TokenClassificationPipeline {
    /// Wraps a loaded model; the tokenizer comes from the model's repository.
    pub fn new(
        loaded: Loaded<TokenClassifier>,
        options: &PipelineOptions,
        strategy: AggregationStrategy,
        device: &Device,
    ) -> Result<Self> {
        Self::with_adapters(loaded.map(PeftModel::new), options, strategy, device)
    }

    /// Wraps a model with PEFT adapters; the active one runs.
    pub fn with_adapters(
        loaded: Loaded<PeftModel<TokenClassifier>>,
        options: &PipelineOptions,
        strategy: AggregationStrategy,
        device: &Device,
    ) -> Result<Self> {
        let tokenizer = AdapterTokenizer::new(&loaded, options, loaded.model.num_virtual_tokens())?;
        // An adapter with its own head (AdapterHub) names its labels.
        let labels = active_labels(&loaded.model, &loaded.config);
        Ok(Self {
            model: loaded.model,
            tokenizer,
            labels,
            strategy,
            shape: options.into(),
            device: device.clone(),
            config: loaded.config,
        })
    }

    /// Label names by id (the active adapter's head when it has its own).
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
        Ok(())
    }

    /// Labels every token of every text; one result per text, in order.
    pub fn predict(&self, texts: &[&str]) -> Result<Vec<TokenClassification>> {
        let encodings = self.tokenizer.get().encode_batch(texts)?;
        check_encodings(&self.config, &encodings)?;
        let n_labels = self.labels.len();
        run_batched(&encodings, self.shape, self.tokenizer.get().pad_id(), &self.device, |batch, idx| {
            let width = batch.input_ids.dims()[1];
            // Prompt tuning's virtual tokens come first in the outputs: left out.
            let out = self.model.forward(&TextInput::from_batch(batch))?;
            let off = self.model.output_offset();
            let logits = to_vec(if off == 0 { out } else { out.narrow(1, off, width) })?;
            Ok(idx
                .iter()
                .enumerate()
                .map(|(row, &i)| {
                    let enc = &encodings[i];
                    let rows: Vec<Vec<f32>> = (0..enc.len())
                        .map(|t| {
                            let start = (row * width + t) * n_labels;
                            logits[start..start + n_labels].to_vec()
                        })
                        .collect();
                    let entities = self.entities(texts[i], enc, &rows);
                    TokenClassification {
                        input_ids: enc.input_ids.clone(),
                        word_ids: enc.word_ids.clone(),
                        logits: rows,
                        entities,
                    }
                })
                .collect())
        })
    }

    fn entities(&self, text: &str, enc: &Encoded, logits: &[Vec<f32>]) -> Vec<Entity> {
        let tokens: Vec<TokenPrediction> = (0..enc.len())
            .filter(|&t| enc.special_tokens_mask[t] == 0)
            .map(|t| {
                let (start, end) = enc.offsets[t];
                let (best, score) = argmax(&softmax(&logits[t]));
                let id = enc.input_ids[t];
                let word = if Some(id) == self.tokenizer.get().unk_id() {
                    text.chars().skip(start).take(end.saturating_sub(start)).collect()
                } else {
                    self.tokenizer.get().id_to_token(id).unwrap_or_default()
                };
                TokenPrediction { tag: self.labels[best].clone(), score, index: t, word, start, end }
            })
            .collect();
        match self.strategy {
            AggregationStrategy::None => tokens
                .into_iter()
                .filter(|t| t.tag != "O")
                .map(|t| Entity {
                    entity_group: None,
                    entity: Some(t.tag),
                    score: t.score,
                    index: Some(t.index),
                    word: t.word,
                    start: t.start,
                    end: t.end,
                })
                .collect(),
            AggregationStrategy::Simple => self.group(tokens),
        }
    }

    /// transformers' `group_entities`.
    fn group(&self, tokens: Vec<TokenPrediction>) -> Vec<Entity> {
        let mut groups: Vec<Vec<TokenPrediction>> = Vec::new();
        for token in tokens {
            let (bi, tag) = split_tag(&token.tag);
            let merge = groups.last().and_then(|g| g.last()).is_some_and(|last| {
                let (_, last_tag) = split_tag(&last.tag);
                tag == last_tag && bi != "B"
            });
            match groups.last_mut() {
                Some(group) if merge => group.push(token),
                _ => groups.push(vec![token]),
            }
        }
        groups
            .into_iter()
            .filter_map(|group| {
                let first = group.first()?;
                let entity_group = first.tag.split_once('-').map(|(_, t)| t).unwrap_or(&first.tag).to_string();
                if entity_group == "O" {
                    return None;
                }
                let score = (group.iter().map(|t| t.score as f64).sum::<f64>() / group.len() as f64) as f32;
                let word = self.tokenizer.get().tokens_to_string(group.iter().map(|t| t.word.clone()).collect());
                let end = group.last().map(|t| t.end).unwrap_or(first.end);
                Some(Entity {
                    entity_group: Some(entity_group),
                    entity: None,
                    score,
                    index: None,
                    word,
                    start: first.start,
                    end,
                })
            })
            .collect()
    }
}

/// transformers' `get_tag`: (`B` or `I`, type); tags without a prefix count as `I`.
fn split_tag(tag: &str) -> (&str, &str) {
    if let Some(t) = tag.strip_prefix("B-") {
        ("B", t)
    } else if let Some(t) = tag.strip_prefix("I-") {
        ("I", t)
    } else {
        ("I", tag)
    }
}
