//! What text models read: token ids or ready-made input embeddings (soft prompts are prepended
//! there), an attention mask over past and new positions, and past keys/values built from
//! outside (a prefix) or accumulated during generation ([`KvCache`]).

use burn::tensor::{Int, Tensor};

/// The tokens of a forward pass.
#[derive(Debug, Clone)]
pub enum Tokens {
    /// Token ids `[batch, seq]`, looked up in the model's word embeddings.
    Ids(Tensor<2, Int>),
    /// Input embeddings `[batch, seq, hidden]` (transformers' `inputs_embeds`), used as they are
    /// in place of the word embeddings of ids.
    Embeds(Tensor<3>),
}

impl Tokens {
    /// `[batch, seq]`.
    pub fn dims(&self) -> [usize; 2] {
        match self {
            Self::Ids(t) => t.dims(),
            Self::Embeds(t) => {
                let [b, l, _] = t.dims();
                [b, l]
            }
        }
    }
}

/// A forward pass's inputs.
#[derive(Debug, Clone)]
pub struct TextInput {
    /// Ids or embeddings, `[batch, seq]` positions.
    pub tokens: Tokens,
    /// `[batch, past + seq]`: 1 = token, 0 = padding. `None`: every position is a token.
    pub attention_mask: Option<Tensor<2, Int>>,
    /// `[batch, seq]` segment ids (BERT); `None`: all 0.
    pub token_type_ids: Option<Tensor<2, Int>>,
    /// `[batch, seq]` position ids; `None`: `past .. past + seq` for every row.
    pub position_ids: Option<Tensor<2, Int>>,
    /// Compute the last layer for position 0 only (the `[CLS]` row, or a soft prompt's first
    /// virtual token): the BERT and DistilBERT encoders then return `[batch, 1, H]` (GPT-2
    /// ignores it). Sequence-classification heads read nothing else, so they set it: the last
    /// layer's queries, output projections and feed-forward block run on one row per sequence
    /// instead of `seq` (keys and values still cover every position). Without dropout the
    /// values are the full pass's row 0 to float rounding; in training the last layer's dropout
    /// masks are drawn for that row only.
    pub first_token_only: bool,
}

impl TextInput {
    /// Token ids with an attention mask.
    pub fn ids(input_ids: Tensor<2, Int>, attention_mask: Option<Tensor<2, Int>>) -> Self {
        Self {
            tokens: Tokens::Ids(input_ids),
            attention_mask,
            token_type_ids: None,
            position_ids: None,
            first_token_only: false,
        }
    }

    /// Input embeddings with an attention mask.
    pub fn embeds(inputs_embeds: Tensor<3>, attention_mask: Option<Tensor<2, Int>>) -> Self {
        Self {
            tokens: Tokens::Embeds(inputs_embeds),
            attention_mask,
            token_type_ids: None,
            position_ids: None,
            first_token_only: false,
        }
    }

    /// With segment ids.
    pub fn with_token_type_ids(mut self, token_type_ids: Option<Tensor<2, Int>>) -> Self {
        self.token_type_ids = token_type_ids;
        self
    }

    /// With explicit position ids.
    pub fn with_position_ids(mut self, position_ids: Option<Tensor<2, Int>>) -> Self {
        self.position_ids = position_ids;
        self
    }

    /// With the last layer computed for position 0 only (see [`TextInput::first_token_only`]).
    pub fn with_first_token_only(mut self, first_token_only: bool) -> Self {
        self.first_token_only = first_token_only;
        self
    }

    /// Checks the inputs against a model of width `hidden` with `heads` heads and `layers`
    /// layers, before anything runs: input embeddings' width, segment and position ids'
    /// shapes, and every layer's past keys/values (`[batch, heads, past, hidden / heads]`).
    /// Errors say what does not fit (the forward passes would otherwise fail inside a kernel).
    pub fn check(&self, hidden: usize, heads: usize, layers: usize, past: Option<&KvCache>) -> crate::Result<()> {
        let bad = |m: String| Err(crate::ModelError::Input(m));
        let [b, l] = self.tokens.dims();
        if let Tokens::Embeds(e) = &self.tokens
            && e.dims()[2] != hidden
        {
            return bad(format!("input embeddings of width {}, the model's hidden size is {hidden}", e.dims()[2]));
        }
        for (name, t) in [("token_type_ids", &self.token_type_ids), ("position_ids", &self.position_ids)] {
            if let Some(t) = t
                && t.dims() != [b, l]
                && !(name == "position_ids" && t.dims() == [1, l])
            {
                return bad(format!("{name} of shape {:?}, expected [{b}, {l}]", t.dims()));
            }
        }
        if let Some(c) = past.filter(|c| !c.is_empty()) {
            if c.num_layers() != layers {
                return bad(format!("past keys/values for {} layers, the model has {layers}", c.num_layers()));
            }
            let want = [b, heads, c.len(), hidden / heads.max(1)];
            for i in 0..layers {
                if let Some((k, v)) = c.layer(i)
                    && (k.dims() != want || v.dims() != want)
                {
                    return bad(format!(
                        "past keys/values of layer {i}: {:?} / {:?}, expected {want:?} (batch, heads, past, head_dim)",
                        k.dims(),
                        v.dims()
                    ));
                }
            }
        }
        Ok(())
    }

    /// From a padded batch of encoded texts (ids, mask, segment ids).
    pub fn from_batch(batch: &ft_hub::batch::TextBatch) -> Self {
        Self::ids(batch.input_ids.clone(), Some(batch.attention_mask.clone()))
            .with_token_type_ids(Some(batch.token_type_ids.clone()))
    }
}

/// Keys and values of every layer beyond the new tokens: what generation with `use_cache=True`
/// keeps between steps (transformers' `DynamicCache`), or a prefix built from outside (prefix
/// tuning's virtual tokens, [`KvCache::from_layers`]).
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Per layer: keys and values `[batch, heads, cached, head_dim]`.
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    len: usize,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache holding the given keys and values, one `(keys, values)` pair per layer, each
    /// `[batch, heads, len, head_dim]` with the same `len`. Returns `None` when the lengths
    /// differ.
    pub fn from_layers(layers: Vec<(Tensor<4>, Tensor<4>)>) -> Option<Self> {
        let len = layers.first().map_or(0, |(k, _)| k.dims()[2]);
        if layers.iter().any(|(k, v)| k.dims()[2] != len || v.dims()[2] != len) {
            return None;
        }
        Some(Self { layers: layers.into_iter().map(Some).collect(), len })
    }

    /// Prefix tuning's prefix as every layer's past keys and values for a batch (PEFT's layout,
    /// [`ft_peft::prefix::past_key_values`]).
    ///
    /// # Shapes
    /// - `prefix`: `[virtual, layers · 2 · hidden]`
    pub fn from_prefix(prefix: Tensor<2>, batch: usize, layers: usize, heads: usize) -> Option<Self> {
        Self::from_layers(ft_peft::prefix::past_key_values(prefix, batch, layers, heads))
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of layers holding keys and values.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The keys and values of layer `layer`, if any.
    pub fn layer(&self, layer: usize) -> Option<&(Tensor<4>, Tensor<4>)> {
        self.layers.get(layer).and_then(Option::as_ref)
    }

    /// Appends this step's keys and values of layer `layer` and returns all of them.
    ///
    /// # Shapes
    /// - `k`, `v`: `[batch, heads, new, head_dim]`; outputs `[batch, heads, cached + new, head_dim]`
    pub fn update(&mut self, layer: usize, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        if self.layers.len() <= layer {
            self.layers.resize(layer + 1, None);
        }
        let (k, v) = match self.layers[layer].take() {
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
            None => (k, v),
        };
        self.layers[layer] = Some((k.clone(), v.clone()));
        (k, v)
    }

    /// Records that a forward pass appended `new` positions to every layer.
    pub fn advance(&mut self, new: usize) {
        self.len += new;
    }
}
