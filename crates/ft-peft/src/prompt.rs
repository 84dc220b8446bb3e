//! Prompt tuning (Lester et al., 2021; PEFT's `PromptEmbedding`): `num_virtual_tokens` trainable
//! vectors prepended to the input embeddings. Positions run over the whole sequence (the
//! virtual tokens take `0..n`), and the attention mask covers them.

use burn::module::{Module, Param, ParamId};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

/// The soft prompt.
#[derive(Module, Debug)]
pub struct PromptEmbedding {
    /// `[num_virtual_tokens, hidden]` (PEFT's `prompt_embeddings`).
    pub embedding: Param<Tensor<2>>,
}

impl PromptEmbedding {
    /// From given vectors `[num_virtual_tokens, hidden]`.
    pub fn from_tensor(embedding: Tensor<2>, id: ParamId) -> Self {
        let mut embedding = Param::from_tensor(embedding);
        embedding.id = id;
        Self { embedding }
    }

    /// `RANDOM`: normal(0, 1), `nn.Embedding`'s default.
    pub fn random(num_virtual_tokens: usize, hidden: usize, id: ParamId, device: &Device) -> Self {
        Self::from_tensor(Tensor::random([num_virtual_tokens, hidden], Distribution::Normal(0.0, 1.0), device), id)
    }

    /// `TEXT`: the word embeddings of the init text's token ids, repeated (as a list) until
    /// there are enough and cut to `num_virtual_tokens`, as PEFT does.
    ///
    /// # Shapes
    /// - `word_embeddings`: `[vocab, hidden]`
    pub fn from_text(word_embeddings: Tensor<2>, token_ids: &[u32], num_virtual_tokens: usize, id: ParamId) -> Self {
        let device = word_embeddings.device();
        let ids: Vec<i64> = token_ids.iter().cycle().take(num_virtual_tokens).map(|&t| t as i64).collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(ids, [num_virtual_tokens]), &device);
        Self::from_tensor(word_embeddings.select(0, index).detach(), id)
    }

    /// Number of virtual tokens.
    pub fn num_virtual_tokens(&self) -> usize {
        self.embedding.lazy_shape().dims::<2>()[0]
    }

    /// The prompt for a batch.
    ///
    /// # Shapes
    /// - output `[batch, num_virtual_tokens, hidden]`
    pub fn prompts(&self, batch: usize) -> Tensor<3> {
        let [n, h] = self.embedding.lazy_shape().dims::<2>();
        self.embedding.val().unsqueeze::<3>().expand([batch, n, h])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_init_repeats_and_cuts_the_token_list() {
        let device = Device::flex();
        let table =
            Tensor::<2>::from_data(TensorData::new((0..12).map(|v| v as f32).collect::<Vec<_>>(), [6, 2]), &device);
        let p = PromptEmbedding::from_text(table, &[4, 1], 5, ParamId::new());
        let v: Vec<f32> = p.embedding.val().into_data().try_into_vec_as().unwrap();
        // Rows 4, 1, 4, 1, 4.
        assert_eq!(v, vec![8.0, 9.0, 2.0, 3.0, 8.0, 9.0, 2.0, 3.0, 8.0, 9.0]);
        assert_eq!(p.prompts(3).dims(), [3, 5, 2]);
    }
}
