//! What an adapter needs to know of the model it sits on: [`PeftBase`], implemented by ft's
//! causal LMs, sequence classifiers and token classifiers.

use burn::module::{Module, ModuleDisplay};
use burn::tensor::{Int, Tensor};

use ft_peft::head::PredictionHead;

use crate::auto::{CausalLm, Encoder, SequenceClassifier, TokenClassifier};
use crate::input::{KvCache, TextInput};
use crate::naming::HubModule;
use crate::{ModelError, Result};

/// The sizes of a base model that adapters depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseDims {
    /// Transformer layers.
    pub layers: usize,
    /// Attention heads per layer.
    pub heads: usize,
    /// Hidden size (the width of the input embeddings).
    pub hidden: usize,
    /// Learned positions (`n_positions`, `max_position_embeddings`).
    pub max_positions: usize,
}

/// A model PEFT adapters attach to.
pub trait PeftBase: Module + ModuleDisplay + HubModule + Clone + 'static {
    /// What a forward pass returns (logits).
    type Output;

    /// PEFT's `task_type` for this kind of model (`CAUSAL_LM`, `SEQ_CLS`, `TOKEN_CLS`).
    fn task_type(&self) -> &'static str;

    /// Layers, heads, hidden size and positions.
    fn dims(&self) -> BaseDims;

    /// The word embeddings of ids, without positions.
    ///
    /// # Shapes
    /// - `ids`: `[batch, seq]`; output `[batch, seq, hidden]`
    fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3>;

    /// The word-embedding table (prompt tuning's `TEXT` init reads it).
    ///
    /// # Shapes
    /// - output `[vocab, hidden]`
    fn word_embedding_table(&self) -> Tensor<2>;

    /// PEFT's default `target_modules` for the architecture
    /// (`TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`); `None`: it has none (DistilBERT).
    fn default_lora_targets(&self) -> Option<&'static [&'static str]>;

    /// The Hub path of the output layer that `"all-linear"` leaves out (`classifier`).
    fn output_layer(&self) -> Option<&'static str>;

    /// A forward pass from ids or input embeddings after optional past keys/values (a prefix).
    fn run(&self, input: &TextInput, past: Option<KvCache>) -> Result<Self::Output>;

    /// The architecture's `model_type` (`bert`, `distilbert`, `gpt2`): the prefix of
    /// AdapterHub's tensor names.
    fn model_type(&self) -> &'static str;

    /// The encoder's last hidden state, for the prediction head an adapter brings.
    ///
    /// # Shapes
    /// - output `[batch, seq, hidden]`; `[batch, 1, hidden]` for a sequence-level task (its head
    ///   reads the first token alone, see [`TextInput::first_token_only`])
    fn hidden(&self, input: &TextInput) -> Result<Tensor<3>>;

    /// An adapter's own prediction head on the last hidden state: a classification head reads
    /// the first token (`[batch, labels]`), a tagging head every token (`[batch, seq, labels]`);
    /// an error where the task's output has the other form.
    fn head_output(&self, head: &PredictionHead, per_token: bool, hidden: Tensor<3>) -> Result<Self::Output>;

    /// The dropout of an adapter's head when its config gives none (the library's
    /// `classifier_dropout` — DistilBERT's `seq_classif_dropout` — else `hidden_dropout_prob`).
    fn head_dropout(&self) -> f64;

    /// The Hub paths of the base's own task head, which an adapter's head replaces.
    fn own_head_paths(&self) -> &'static [&'static str];
}

fn no_heads(model_type: &str) -> ModelError {
    ModelError::Unsupported(format!(
        "bottleneck adapters with prediction heads are supported on BERT and DistilBERT encoders, not {model_type}"
    ))
}

fn first_token(head: &PredictionHead, per_token: bool, hidden: Tensor<3>) -> Result<Tensor<2>> {
    if per_token {
        return Err(ModelError::Input(
            "the adapter's head is a tagging head (a label per token): use it for token classification".into(),
        ));
    }
    let [b, _, h] = hidden.dims();
    Ok(head.forward(hidden.narrow(1, 0, 1).reshape([b, h])))
}

fn every_token(head: &PredictionHead, per_token: bool, hidden: Tensor<3>) -> Result<Tensor<3>> {
    if !per_token {
        return Err(ModelError::Input(
            "the adapter's head is a classification head (a label per text): use it for text classification".into(),
        ));
    }
    Ok(head.forward(hidden))
}

fn bert_dims(c: &crate::bert::BertConfig) -> BaseDims {
    BaseDims {
        layers: c.num_hidden_layers,
        heads: c.num_attention_heads,
        hidden: c.hidden_size,
        max_positions: c.max_position_embeddings,
    }
}

fn distilbert_dims(c: &crate::distilbert::DistilBertConfig) -> BaseDims {
    BaseDims { layers: c.n_layers, heads: c.n_heads, hidden: c.dim, max_positions: c.max_position_embeddings }
}

fn encoder_dims(e: &Encoder) -> BaseDims {
    match e {
        Encoder::Bert(m) => bert_dims(&m.config),
        Encoder::DistilBert(m) => distilbert_dims(&m.config),
    }
}

fn encoder_targets(e: &Encoder) -> Option<&'static [&'static str]> {
    match e {
        Encoder::Bert(_) => Some(&["query", "value"]),
        Encoder::DistilBert(_) => None,
    }
}

impl PeftBase for CausalLm {
    type Output = Tensor<3>;

    fn task_type(&self) -> &'static str {
        "CAUSAL_LM"
    }

    fn dims(&self) -> BaseDims {
        let Self::Gpt2(m) = self;
        let c = &m.transformer.config;
        BaseDims { layers: c.n_layer, heads: c.n_head, hidden: c.n_embd, max_positions: c.n_positions }
    }

    fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let Self::Gpt2(m) = self;
        m.transformer.wte.forward(ids)
    }

    fn word_embedding_table(&self) -> Tensor<2> {
        let Self::Gpt2(m) = self;
        m.transformer.wte.weight.val()
    }

    fn default_lora_targets(&self) -> Option<&'static [&'static str]> {
        Some(&["c_attn"])
    }

    fn output_layer(&self) -> Option<&'static str> {
        Some("lm_head")
    }

    fn run(&self, input: &TextInput, mut past: Option<KvCache>) -> Result<Tensor<3>> {
        let Self::Gpt2(m) = self;
        m.forward_input(input, past.as_mut())
    }

    fn model_type(&self) -> &'static str {
        "gpt2"
    }

    fn hidden(&self, _input: &TextInput) -> Result<Tensor<3>> {
        Err(no_heads("gpt2"))
    }

    fn head_output(&self, _head: &PredictionHead, _per_token: bool, _hidden: Tensor<3>) -> Result<Tensor<3>> {
        Err(no_heads("gpt2"))
    }

    fn head_dropout(&self) -> f64 {
        0.0
    }

    fn own_head_paths(&self) -> &'static [&'static str] {
        &[]
    }
}

fn encoder_type(e: &Encoder) -> &'static str {
    match e {
        Encoder::Bert(_) => "bert",
        Encoder::DistilBert(_) => "distilbert",
    }
}

fn encoder_head_dropout(e: &Encoder) -> f64 {
    match e {
        Encoder::Bert(m) => m.config.classifier_dropout(),
        Encoder::DistilBert(m) => m.config.seq_classif_dropout,
    }
}

impl PeftBase for SequenceClassifier {
    type Output = Tensor<2>;

    fn task_type(&self) -> &'static str {
        "SEQ_CLS"
    }

    fn dims(&self) -> BaseDims {
        match self {
            Self::Bert(m) => bert_dims(&m.bert.config),
            Self::DistilBert(m) => distilbert_dims(&m.distilbert.config),
            Self::FirstToken(m) => encoder_dims(&m.encoder),
        }
    }

    fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        match self {
            Self::Bert(m) => m.bert.embeddings.word_embeddings.forward(ids),
            Self::DistilBert(m) => m.distilbert.embeddings.word_embeddings.forward(ids),
            Self::FirstToken(m) => m.encoder.word_embeddings().forward(ids),
        }
    }

    fn word_embedding_table(&self) -> Tensor<2> {
        match self {
            Self::Bert(m) => m.bert.embeddings.word_embeddings.weight.val(),
            Self::DistilBert(m) => m.distilbert.embeddings.word_embeddings.weight.val(),
            Self::FirstToken(m) => m.encoder.word_embeddings().weight.val(),
        }
    }

    fn default_lora_targets(&self) -> Option<&'static [&'static str]> {
        match self {
            Self::Bert(_) => Some(&["query", "value"]),
            Self::DistilBert(_) => None,
            Self::FirstToken(m) => encoder_targets(&m.encoder),
        }
    }

    fn output_layer(&self) -> Option<&'static str> {
        Some("classifier")
    }

    fn run(&self, input: &TextInput, past: Option<KvCache>) -> Result<Tensor<2>> {
        self.forward_input(input, past.as_ref())
    }

    fn model_type(&self) -> &'static str {
        match self {
            Self::Bert(_) => "bert",
            Self::DistilBert(_) => "distilbert",
            Self::FirstToken(m) => encoder_type(&m.encoder),
        }
    }

    fn hidden(&self, input: &TextInput) -> Result<Tensor<3>> {
        // A sequence-level head reads the first token alone: `[batch, 1, H]`.
        let input = input.clone().with_first_token_only(true);
        match self {
            Self::Bert(m) => Ok(m.bert.forward_input(&input, None)?.last_hidden_state),
            Self::DistilBert(m) => m.distilbert.forward_input(&input, None),
            Self::FirstToken(m) => m.encoder.forward_input(&input, None),
        }
    }

    fn head_output(&self, head: &PredictionHead, per_token: bool, hidden: Tensor<3>) -> Result<Tensor<2>> {
        first_token(head, per_token, hidden)
    }

    fn head_dropout(&self) -> f64 {
        match self {
            Self::Bert(m) => m.bert.config.classifier_dropout(),
            Self::DistilBert(m) => m.distilbert.config.seq_classif_dropout,
            Self::FirstToken(m) => encoder_head_dropout(&m.encoder),
        }
    }

    fn own_head_paths(&self) -> &'static [&'static str] {
        match self {
            Self::Bert(_) | Self::FirstToken(_) => &["classifier"],
            Self::DistilBert(_) => &["pre_classifier", "classifier"],
        }
    }
}

impl PeftBase for TokenClassifier {
    type Output = Tensor<3>;

    fn task_type(&self) -> &'static str {
        "TOKEN_CLS"
    }

    fn dims(&self) -> BaseDims {
        match self {
            Self::Bert(m) => bert_dims(&m.bert.config),
            Self::DistilBert(m) => distilbert_dims(&m.distilbert.config),
        }
    }

    fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        match self {
            Self::Bert(m) => m.bert.embeddings.word_embeddings.forward(ids),
            Self::DistilBert(m) => m.distilbert.embeddings.word_embeddings.forward(ids),
        }
    }

    fn word_embedding_table(&self) -> Tensor<2> {
        match self {
            Self::Bert(m) => m.bert.embeddings.word_embeddings.weight.val(),
            Self::DistilBert(m) => m.distilbert.embeddings.word_embeddings.weight.val(),
        }
    }

    fn default_lora_targets(&self) -> Option<&'static [&'static str]> {
        match self {
            Self::Bert(_) => Some(&["query", "value"]),
            Self::DistilBert(_) => None,
        }
    }

    fn output_layer(&self) -> Option<&'static str> {
        Some("classifier")
    }

    fn run(&self, input: &TextInput, past: Option<KvCache>) -> Result<Tensor<3>> {
        self.forward_input(input, past.as_ref())
    }

    fn model_type(&self) -> &'static str {
        match self {
            Self::Bert(_) => "bert",
            Self::DistilBert(_) => "distilbert",
        }
    }

    fn hidden(&self, input: &TextInput) -> Result<Tensor<3>> {
        match self {
            Self::Bert(m) => Ok(m.bert.forward_input(input, None)?.last_hidden_state),
            Self::DistilBert(m) => m.distilbert.forward_input(input, None),
        }
    }

    fn head_output(&self, head: &PredictionHead, per_token: bool, hidden: Tensor<3>) -> Result<Tensor<3>> {
        every_token(head, per_token, hidden)
    }

    fn head_dropout(&self) -> f64 {
        match self {
            Self::Bert(m) => m.bert.config.classifier_dropout(),
            Self::DistilBert(m) => m.distilbert.config.seq_classif_dropout,
        }
    }

    fn own_head_paths(&self) -> &'static [&'static str] {
        &["classifier"]
    }
}
