//! GPT-2's language-modelling head.

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Int, Tensor};

use super::config::Gpt2Config;
use super::model::{GPT2Model, KvCache};
use crate::Result;
use crate::input::TextInput;
use crate::naming::{HubModule, HubPath, Part};

/// GPT-2 with a language-modelling head (transformers' `GPT2LMHeadModel`): logits over the
/// vocabulary at every position, from the token embedding matrix `wte` (tied, as in every GPT-2
/// checkpoint) or from a separate `lm_head.weight` when `tie_word_embeddings` is false.
#[derive(Module, Debug)]
pub struct GPT2LMHeadModel {
    /// HF `transformer`.
    pub transformer: GPT2Model,
    /// HF `lm_head.weight` `[vocab, n_embd]`, only for untied checkpoints; `None` = `wte`.
    pub lm_head: Option<Param<Tensor<2>>>,
}

impl GPT2LMHeadModel {
    /// The model's skeleton (lazily initialised; see [`crate::weights::load_parts`]); a separate
    /// `lm_head` only when `tie_word_embeddings` is false.
    pub fn new(c: &Gpt2Config, device: &Device) -> Self {
        let lm_head = (!c.tie_word_embeddings)
            .then(|| Initializer::Normal { mean: 0.0, std: c.initializer_range }.init([c.vocab_size, c.n_embd], device));
        Self { transformer: GPT2Model::new(c, device), lm_head }
    }

    /// Logits at every position from ids or input embeddings (see [`GPT2Model::forward_input`]).
    ///
    /// # Shapes
    /// - output `[batch, seq, vocab]`
    pub fn forward_input(&self, input: &TextInput, cache: Option<&mut KvCache>) -> Result<Tensor<3>> {
        let hidden = self.transformer.forward_input(input, cache)?;
        Ok(self.logits(hidden))
    }

    /// The LM head's matrix `[vocab, n_embd]`: `wte`'s weight when tied.
    pub fn lm_head_weight(&self) -> Tensor<2> {
        match &self.lm_head {
            Some(w) => w.val(),
            None => self.transformer.wte.weight.val(),
        }
    }

    /// Logits from hidden states: `hidden · Wᵀ` (no bias).
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, n_embd]`; output `[batch, seq, vocab]`
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        // A strided (transposed) right-hand side: no copy of the [vocab, n_embd] matrix (on flex
        // faer reads it column-major).
        ft_hub::ops::linear(hidden, self.lm_head_weight().transpose(), None)
    }

    /// Logits at every position (see [`GPT2Model::forward`] for the arguments).
    ///
    /// # Shapes
    /// - `input_ids`: `[batch, seq]`; `attention_mask`: `[batch, cached + seq]`;
    ///   `position_ids`: `[batch, seq]`
    /// - output: `[batch, seq, vocab]`
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
        position_ids: Option<Tensor<2, Int>>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>> {
        let hidden = self.transformer.forward(input_ids, attention_mask, position_ids, cache)?;
        Ok(self.logits(hidden))
    }

    /// Logits at the last position only — what generation needs (transformers'
    /// `logits_to_keep=1`): the head's product runs on one row per sequence.
    ///
    /// # Shapes
    /// - inputs as [`forward`](Self::forward); output `[batch, vocab]`
    pub fn forward_last(
        &self,
        input_ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
        position_ids: Option<Tensor<2, Int>>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor<2>> {
        let hidden = self.transformer.forward(input_ids, attention_mask, position_ids, cache)?;
        let [b, l, _] = hidden.dims();
        let logits = self.logits(hidden.narrow(1, l - 1, 1));
        let v = logits.dims()[2];
        Ok(logits.reshape([b, v]))
    }
}

impl GPT2LMHeadModel {
    /// Logits at the last position from ids or input embeddings (see [`forward_last`](Self::forward_last)).
    ///
    /// # Shapes
    /// - output `[batch, vocab]`
    pub fn forward_input_last(&self, input: &TextInput, cache: Option<&mut KvCache>) -> Result<Tensor<2>> {
        let hidden = self.transformer.forward_input(input, cache)?;
        let [b, l, _] = hidden.dims();
        let logits = self.logits(hidden.narrow(1, l - 1, 1));
        let v = logits.dims()[2];
        Ok(logits.reshape([b, v]))
    }
}

impl HubModule for GPT2LMHeadModel {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        self.transformer.parts(&path.pp("transformer"), f);
        if let Some(w) = &mut self.lm_head {
            f(&path.pp("lm_head"), Part::Matrix(w));
        }
    }
}
