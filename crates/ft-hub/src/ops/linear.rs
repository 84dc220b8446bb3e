//! Linear layers in training with the leading dimensions folded into the rows.
//!
//! Burn 0.22 runs `linear` on an autodiff device as a batched matmul against the weight
//! broadcast to `[1, in, out]` (its dispatch backend has no linear op of its own, and Burn's
//! matmul policy keeps the batched form when a batch's rows fill its tiles, e.g. 128 tokens).
//! The backward pass of that broadcast matmul computes the weight's gradient as `batch`
//! separate products `xᵢᵀ·dyᵢ` (`[batch, in, out]`, each with only `seq` terms) and then sums
//! them over the batch: for a BERT-base FFN layer at batch 16 that is 16 weight-sized tensors
//! written and reduced per layer and step, and small-K products. PyTorch's `nn.Linear` backward
//! runs one `[in, rows] @ [rows, out]` product. Folding `[..., in]` into `[rows, in]` before the
//! product gives Burn the same 2-D problem: one matmul forward, and one each for the input and
//! weight gradients in the backward pass. The reshapes are views; the values are the same
//! products (the weight gradient's sum runs in the GEMM's order instead of per batch, so it
//! can differ from the batched form in the last bits).

use burn::nn::Linear;
use burn::tensor::Tensor;

/// `x · weight (+ bias)` as Burn's [`burn::tensor::module::linear`], with `x`'s leading
/// dimensions folded into one row dimension when `x` is on an autodiff device (inference keeps
/// Burn's own batching policy, so its results are unchanged).
///
/// # Shapes
/// - `x`: `[..., in]`, `weight`: `[in, out]`, `bias`: `[out]`; output `[..., out]`
pub fn linear<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<D> {
    if D <= 2 || !x.device().is_autodiff() {
        return burn::tensor::module::linear(x, weight, bias);
    }
    let dims = x.dims();
    let d_in = dims[D - 1];
    let rows: usize = dims[..D - 1].iter().product();
    let d_out = weight.dims()[1];
    let y: Tensor<2> = burn::tensor::module::linear(x.reshape([rows, d_in]), weight, bias);
    let mut out = dims;
    out[D - 1] = d_out;
    y.reshape(out)
}

/// `layer.forward(x)` through [`linear`].
///
/// # Shapes
/// - `x`: `[..., in]`; output `[..., out]`
pub fn forward<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    linear(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Distribution};

    /// Same output and gradients (weight, bias, input) as Burn's layer on an autodiff device, to
    /// float rounding. 32 rows per batch keep Burn's own call on its batched, broadcast path (its
    /// row tile is 32), so the two computations really differ.
    #[test]
    fn folded_linear_matches_burn() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let layer = LinearConfig::new(48, 40).init(&device);
        let x: Tensor<3> = Tensor::random([4, 32, 48], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let ours = forward(&layer, x.clone());
        let burns = layer.forward(x.clone());
        assert_eq!(ours.dims(), [4, 32, 40]);
        ours.clone()
            .into_data()
            .assert_approx_eq::<f32>(&burns.clone().into_data(), burn::tensor::Tolerance::absolute(1e-6));
        let g_ours_raw = (ours.clone() * ours).sum().backward();
        let g_burn_raw = (burns.clone() * burns).sum().backward();
        let (x_ours, x_burn): (Tensor<3>, Tensor<3>) = (x.grad(&g_ours_raw).unwrap(), x.grad(&g_burn_raw).unwrap());
        x_ours.into_data().assert_approx_eq::<f32>(&x_burn.into_data(), burn::tensor::Tolerance::rel_abs(1e-5, 1e-4));
        let g_ours = GradientsParams::from_grads(g_ours_raw, &layer);
        let g_burn = GradientsParams::from_grads(g_burn_raw, &layer);
        let (w_ours, w_burn): (Tensor<2>, Tensor<2>) =
            (g_ours.get(layer.weight.id).unwrap(), g_burn.get(layer.weight.id).unwrap());
        w_ours.into_data().assert_approx_eq::<f32>(&w_burn.into_data(), burn::tensor::Tolerance::rel_abs(1e-5, 1e-4));
        let (b_ours, b_burn): (Tensor<1>, Tensor<1>) = (
            g_ours.get(layer.bias.as_ref().unwrap().id).unwrap(),
            g_burn.get(layer.bias.as_ref().unwrap().id).unwrap(),
        );
        b_ours.into_data().assert_approx_eq::<f32>(&b_burn.into_data(), burn::tensor::Tolerance::rel_abs(1e-5, 1e-4));
    }
}
