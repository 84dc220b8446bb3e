//! Multi-head scaled dot-product attention over a padding mask, shared by the encoders.

use burn::nn::Dropout;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Int, Tensor};

/// A key padding mask for a batch, prepared once per forward pass and shared by every layer.
#[derive(Debug, Clone)]
pub struct PaddingMask {
    /// `[batch, 1, 1, seq]`, `true` at padding positions (keys that must not be attended to).
    pub masked: Tensor<4, Bool>,
}

impl PaddingMask {
    /// From an attention mask `[batch, seq]` of 1 (token) and 0 (padding).
    pub fn new(attention_mask: &Tensor<2, Int>) -> Self {
        let [b, l] = attention_mask.dims();
        Self { masked: attention_mask.clone().equal_elem(0).reshape([b, 1, 1, l]) }
    }
}

/// Splits `[batch, seq, heads·d]` into heads: `[batch, heads, seq, d]`.
pub fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, l, d] = x.dims();
    x.reshape([b, l, heads, d / heads]).swap_dims(1, 2)
}

/// Merges heads back: `[batch, heads, seq, d]` → `[batch, seq, heads·d]`.
pub fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, h, l, d] = x.dims();
    x.swap_dims(1, 2).reshape([b, l, h * d])
}

/// Multi-head attention of already projected queries over `past` keys/values (a prefix, or
/// `None`) and the projected keys/values of the sequence: split into heads, prefix prepended,
/// [`scaled_dot_product`], heads merged.
///
/// # Shapes
/// - `q`: `[batch, q_len, H]`; `k`, `v`: `[batch, seq, H]`; `past`: `[batch, heads, prefix, H / heads]` each
/// - output `[batch, q_len, H]`
pub fn multi_head(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    heads: usize,
    past: Option<&(Tensor<4>, Tensor<4>)>,
    mask: &PaddingMask,
    dropout: &Dropout,
) -> Tensor<3> {
    let (q, k, v) = (split_heads(q, heads), split_heads(k, heads), split_heads(v, heads));
    let (k, v) = match past {
        Some((pk, pv)) => (Tensor::cat(vec![pk.clone(), k], 2), Tensor::cat(vec![pv.clone(), v], 2)),
        None => (k, v),
    };
    merge_heads(scaled_dot_product(q, k, v, mask, dropout))
}

/// `softmax(q·kᵀ/√d + mask)·v` per head, with dropout on the attention probabilities while
/// training.
///
/// # Shapes
/// - `q`: `[batch, heads, q_len, head_dim]` (every position, or only the first)
/// - `k`, `v`: `[batch, heads, k_len, head_dim]` (a prefix's keys/values and every position)
/// - `mask`: over the `k_len` keys; output: `[batch, heads, q_len, head_dim]`
///
/// Without active dropout this is Burn's fused attention kernel. With it, the probabilities are
/// materialised so that dropout can be applied to them, as transformers' eager attention does.
/// Padding keys get a score of `f32::MIN` in that path, which is transformers' additive mask.
pub fn scaled_dot_product(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &PaddingMask,
    dropout: &Dropout,
) -> Tensor<4> {
    let [b, h, l, d] = q.dims();
    let lk = k.dims()[2];
    let dropout_active = dropout.prob > 0.0 && dropout.training.is_enabled() && q.device().is_autodiff();
    if !dropout_active {
        let masked = mask.masked.clone().expand([b, h, l, lk]);
        return attention(q, k, v, Some(masked), None, AttentionModuleOptions::default());
    }
    let scores = ft_hub::ops::matmul_scaled(q, k.swap_dims(2, 3), 1.0 / (d as f64).sqrt());
    let scores = scores.mask_fill(mask.masked.clone().expand([b, h, l, lk]), f32::MIN);
    let probs = ft_hub::ops::dropout(dropout, ft_hub::ops::softmax_last(scores));
    ft_hub::ops::matmul_scaled(probs, v, 1.0)
}
