//! Prefix tuning (Li & Liang, 2021; PEFT's `PrefixEncoder`): `num_virtual_tokens` trainable keys
//! and values for every layer, which each layer's attention sees before the input's own. Real
//! tokens' positions start after the prefix; the attention mask covers it.
//!
//! The prefix is a `[num_virtual_tokens, layers · 2 · hidden]` matrix (PEFT's
//! `prompt_embeddings`): entry `2l` of the middle dimension is layer l's keys, `2l + 1` its values,
//! each split into heads ([`past_key_values`]). With `prefix_projection`, training
//! reparameterises it through a two-layer tanh MLP from `[num_virtual_tokens, hidden]`
//! embeddings; what is saved is the MLP's output, which loads as a plain matrix.

use burn::module::{Module, Param, ParamId};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor};

/// PEFT's `transform`: `Linear(hidden, encoder_hidden_size)`, tanh,
/// `Linear(encoder_hidden_size, layers · 2 · hidden)`.
#[derive(Module, Debug)]
pub struct PrefixMlp {
    /// `transform.0`.
    pub lin1: Linear,
    /// `transform.2`.
    pub lin2: Linear,
}

/// The prefix encoder.
#[derive(Module, Debug)]
pub struct PrefixEncoder {
    /// Without projection: the prefix itself, `[virtual, layers·2·hidden]`; with it: the MLP's
    /// input embeddings `[virtual, hidden]`.
    pub embedding: Param<Tensor<2>>,
    /// PEFT's `transform`, while training with `prefix_projection`.
    pub transform: Option<PrefixMlp>,
}

impl PrefixEncoder {
    /// A prefix from given values `[virtual, layers·2·hidden]` (what PEFT saves).
    pub fn from_tensor(prefix: Tensor<2>, id: ParamId) -> Self {
        let mut embedding = Param::from_tensor(prefix);
        embedding.id = id;
        Self { embedding, transform: None }
    }

    /// A new prefix: normal(0, 1) values (`nn.Embedding`'s default); with `projection`
    /// (`Some(encoder_hidden_size)`), normal(0, 1) `[virtual, hidden]` embeddings through a new
    /// MLP initialised as `nn.Linear`.
    pub fn new(
        num_virtual_tokens: usize,
        layers: usize,
        hidden: usize,
        projection: Option<usize>,
        id: ParamId,
        device: &Device,
    ) -> Self {
        match projection {
            None => Self::from_tensor(
                Tensor::random([num_virtual_tokens, layers * 2 * hidden], Distribution::Normal(0.0, 1.0), device),
                id,
            ),
            Some(inner) => {
                let mut embedding = Param::from_tensor(Tensor::random(
                    [num_virtual_tokens, hidden],
                    Distribution::Normal(0.0, 1.0),
                    device,
                ));
                embedding.id = id;
                Self {
                    embedding,
                    transform: Some(PrefixMlp {
                        lin1: LinearConfig::new(hidden, inner).init(device),
                        lin2: LinearConfig::new(inner, layers * 2 * hidden).init(device),
                    }),
                }
            }
        }
    }

    /// Number of virtual tokens.
    pub fn num_virtual_tokens(&self) -> usize {
        self.embedding.lazy_shape().dims::<2>()[0]
    }

    /// The prefix as PEFT saves it (`prompt_embeddings`).
    ///
    /// # Shapes
    /// - output `[virtual, layers·2·hidden]`
    pub fn prefix(&self) -> Tensor<2> {
        match &self.transform {
            None => self.embedding.val(),
            Some(mlp) => {
                ft_hub::ops::linear::forward(&mlp.lin2, ft_hub::ops::linear::forward(&mlp.lin1, self.embedding.val()).tanh())
            }
        }
    }
}

/// Splits a prefix into every layer's keys and values for a batch: PEFT's
/// `view(batch, virtual, 2·layers, heads, hidden / heads).permute(2, 0, 3, 1, 4).split(2)`.
///
/// # Shapes
/// - `prefix`: `[virtual, layers·2·hidden]`
/// - output: per layer `(keys, values)`, each `[batch, heads, virtual, hidden / heads]`
pub fn past_key_values(prefix: Tensor<2>, batch: usize, layers: usize, heads: usize) -> Vec<(Tensor<4>, Tensor<4>)> {
    let [n, width] = prefix.dims();
    let hd = width / (layers * 2 * heads);
    // [virtual, 2L, H, hd] -> [2L, H, virtual, hd]
    let kv = prefix.reshape([n, 2 * layers, heads, hd]).permute([1, 2, 0, 3]);
    (0..layers)
        .map(|l| {
            let take = |i: usize| kv.clone().narrow(0, i, 1).expand([batch, heads, n, hd]);
            (take(2 * l), take(2 * l + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn layout_is_peft_s() {
        let device = Device::flex();
        // 2 virtual tokens, 2 layers, 2 heads, head dim 3: width 2·2·2·3 = 24.
        let (n, layers, heads, hd) = (2, 2, 2, 3);
        let width = layers * 2 * heads * hd;
        let flat: Vec<f32> = (0..n * width).map(|v| v as f32).collect();
        let prefix = Tensor::<2>::from_data(TensorData::new(flat, [n, width]), &device);
        let kv = past_key_values(prefix, 3, layers, heads);
        assert_eq!(kv.len(), layers);
        for l in 0..layers {
            for (which, t) in [(0usize, &kv[l].0), (1, &kv[l].1)] {
                assert_eq!(t.dims(), [3, heads, n, hd]);
                let v: Vec<f32> = t.clone().into_data().try_into_vec_as().unwrap();
                // flat[t, ((2l + kv)·H + h)·hd + d]
                for b in 0..3 {
                    for h in 0..heads {
                        for tok in 0..n {
                            for d in 0..hd {
                                let want = (tok * width + ((2 * l + which) * heads + h) * hd + d) as f32;
                                assert_eq!(v[((b * heads + h) * n + tok) * hd + d], want);
                            }
                        }
                    }
                }
            }
        }
    }
}
