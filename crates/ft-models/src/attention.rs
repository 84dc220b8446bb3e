//! Multi-head scaled dot-product attention over a padding mask, shared by the encoders.

use burn::nn::Dropout;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, IndexingUpdateOp, Int, Tensor, TensorData};

/// A key padding mask for a batch, prepared once per forward pass and shared by every layer.
#[derive(Debug, Clone)]
pub struct PaddingMask {
    /// `[batch, 1, 1, seq]`, `true` at padding positions (keys that must not be attended to).
    pub masked: Tensor<4, Bool>,
    /// The token (non-padding) rows, when the batch has padding worth skipping in the
    /// position-wise layers (see [`TokenRows`]).
    pub rows: Option<TokenRows>,
}

impl PaddingMask {
    /// From an attention mask `[batch, seq]` of 1 (token) and 0 (padding).
    pub fn new(attention_mask: &Tensor<2, Int>) -> Self {
        let [b, l] = attention_mask.dims();
        Self { masked: attention_mask.clone().equal_elem(0).reshape([b, 1, 1, l]), rows: None }
    }

    /// [`PaddingMask::new`] plus the token rows, for a model whose layers skip padding rows
    /// (BERT); the others do not pay for reading the mask.
    pub fn with_token_rows(attention_mask: &Tensor<2, Int>) -> Self {
        Self { rows: TokenRows::new(attention_mask), ..Self::new(attention_mask) }
    }
}

/// The rows of a padded `[batch, seq, H]` activation that hold tokens, so that the
/// position-wise layers (the projections and the feed-forward block, ~all of an encoder's
/// arithmetic) run on `[tokens, H]` instead of `[batch·seq, H]`.
///
/// Padding rows never reach a token row: attention gives padding keys a probability of exactly
/// 0, every other layer works row by row, and losses skip padding. So the token rows' values are
/// the same whether padding rows are computed or not, to float rounding (a product over fewer
/// rows may sum in another order; the weight gradients `xᵀ·dy` no longer add the padding rows'
/// exact zeros). The skipped rows come back as zeros ([`TokenRows::scatter`]); dropout, residuals
/// and LayerNorm still run on the padded layout, so dropout draws the same masks. A projection
/// with an active adapter (LoRA, whose dropout draws its mask over the rows it is given) keeps
/// every row, and so does prefix tuning (its mask also covers the prefix, so it does not fit).
///
/// Built in training only — on the flex CPU device with autodiff (reading the mask is a host
/// round trip, free there) — and only when at least 1/16 of the rows are padding; elsewhere every
/// row is computed as before. Inference keeps computing the padding rows, so that every output
/// position, padding included, equals transformers' (the parity tests compare them all); in
/// training nothing reads a padding row's output (losses skip padding, classifiers read the
/// first token).
#[derive(Debug, Clone)]
pub struct TokenRows {
    /// Flat indices `b·seq + s` of the token rows, `[tokens]`.
    index: Tensor<1, Int>,
    batch: usize,
    seq: usize,
    tokens: usize,
}

impl TokenRows {
    /// The token rows of `attention_mask` (`[batch, seq]`, 0 = padding); `None` where skipping
    /// does not pay, or the device is not flex with autodiff.
    pub fn new(attention_mask: &Tensor<2, Int>) -> Option<Self> {
        let device = attention_mask.device();
        if !ft_hub::ops::is_flex(&device) || !device.is_autodiff() {
            return None;
        }
        let [batch, seq] = attention_mask.dims();
        let values = attention_mask.clone().into_data().try_into_vec_as::<i64>().ok()?;
        let index: Vec<i64> =
            values.iter().enumerate().filter(|(_, m)| **m != 0).map(|(i, _)| i as i64).collect();
        let tokens = index.len();
        if tokens == 0 || (batch * seq - tokens) * 16 < batch * seq {
            return None;
        }
        let index = Tensor::from_data(TensorData::new(index, [tokens]), &device);
        Some(Self { index, batch, seq, tokens })
    }

    /// Whether `x` is `[batch, seq, _]` of this mask (not a prefix-extended or first-token view).
    pub fn fits(&self, x: &Tensor<3>) -> bool {
        let [b, l, _] = x.dims();
        b == self.batch && l == self.seq
    }

    /// The token rows of `x`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, d]`; output `[1, tokens, d]`
    pub fn gather(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, l, d] = x.dims();
        x.reshape([b * l, d]).select(0, self.index.clone()).reshape([1, self.tokens, d])
    }

    /// Token rows back in the padded layout, zeros at padding.
    ///
    /// # Shapes
    /// - `y`: `[1, tokens, d]`; output `[batch, seq, d]`
    pub fn scatter(&self, y: Tensor<3>) -> Tensor<3> {
        let d = y.dims()[2];
        let rows = self.batch * self.seq;
        Tensor::zeros([rows, d], &y.device())
            .select_assign(0, self.index.clone(), y.reshape([self.tokens, d]), IndexingUpdateOp::Add)
            .reshape([self.batch, self.seq, d])
    }
}

/// `f(x)` computed on the token rows of `x` alone when `rows` fits it (padding rows of the
/// result are zeros), `f(x)` on every row otherwise. `f` must work row by row.
///
/// # Shapes
/// - `x`: `[batch, seq, in]`; `f`: `[n, m, in] → [n, m, out]`; output `[batch, seq, out]`
pub fn on_tokens(rows: Option<&TokenRows>, x: Tensor<3>, f: impl FnOnce(Tensor<3>) -> Tensor<3>) -> Tensor<3> {
    match rows.filter(|r| r.fits(&x)) {
        Some(r) => r.scatter(f(r.gather(x))),
        None => f(x),
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
