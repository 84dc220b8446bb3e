//! The losses transformers' task heads compute.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// PyTorch's `ignore_index`: labels equal to it do not count.
pub const IGNORE_INDEX: i64 = -100;

/// `torch.nn.CrossEntropyLoss()` (mean over the labels that are not [`IGNORE_INDEX`]).
///
/// # Shapes
/// - `logits`: `[n, classes]`, `labels`: `[n]`; output `[1]`
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    let keep = labels.clone().not_equal_elem(IGNORE_INDEX);
    let safe = labels.clamp_min(0).reshape([n, 1]);
    let picked = log_softmax(logits, 1).gather(1, safe).reshape([n]);
    let keep = keep.float();
    let count = keep.clone().sum().clamp_min(1.0);
    -(picked * keep).sum() / count
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn matches_pytorch_cross_entropy() {
        let device = Device::flex();
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 0.5, -1.0, 0.0, 3.0, 0.2, 0.2, 0.2], [3, 3]),
            &device,
        );
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, -100, 0], [3]), &device);
        // torch.nn.functional.cross_entropy(logits, labels) with ignore_index=-100
        let want = (1.0_f64.exp() + 2.0_f64.exp() + 0.5_f64.exp()).ln() - 2.0;
        let want = (want + 3.0_f64.ln()) / 2.0;
        let got: f32 = cross_entropy(logits, labels).into_scalar();
        assert!((got as f64 - want).abs() < 1e-6, "{got} vs {want}");
    }
}
