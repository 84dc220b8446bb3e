//! The losses transformers' task heads compute.

use burn::tensor::{Int, Tensor};

/// PyTorch's `ignore_index`: labels equal to it do not count.
pub use ft_hub::ops::cross_entropy::IGNORE_INDEX;

/// `torch.nn.CrossEntropyLoss()` (mean over the labels that are not [`IGNORE_INDEX`]).
///
/// # Shapes
/// - `logits`: `[n, classes]`, `labels`: `[n]`; output `[1]`
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let (nll, keep) = masked_nll(logits, labels);
    let count = keep.sum().clamp_min(1.0);
    nll.sum() / count
}

/// Each row's negative log-likelihood of its label (0 where the label is [`IGNORE_INDEX`]) and
/// whether it counts (1 or 0). The first is one fused node on flex (`ft_hub::ops::nll_rows`: one
/// pass forward, one backward, instead of Burn's composed log-softmax over every `[n, classes]`
/// intermediate — the whole vocabulary for a causal LM).
///
/// # Shapes
/// - `logits`: `[n, classes]`, `labels`: `[n]`; outputs `[n]` each
fn masked_nll(logits: Tensor<2>, labels: Tensor<1, Int>) -> (Tensor<1>, Tensor<1>) {
    let keep = labels.clone().not_equal_elem(IGNORE_INDEX).float();
    (ft_hub::ops::nll_rows(logits, labels), keep)
}

/// Each row's share of [`cross_entropy`] over a batch of sequences: the sum of the row's
/// per-token losses and the number of its tokens that are not [`IGNORE_INDEX`], read back to
/// the host, in the batch's row order. `cross_entropy` over the batch is
/// `Σ sums / max(Σ counts, 1)`.
///
/// # Shapes
/// - `logits`: `[batch, seq, classes]`
/// - `labels`: `[batch, seq]`
pub fn token_loss_terms(logits: Tensor<3>, labels: Tensor<2, Int>) -> crate::Result<Vec<(f64, usize)>> {
    let [b, l, c] = logits.dims();
    let (nll, keep) = masked_nll(logits.reshape([b * l, c]), labels.reshape([b * l]));
    let sums = nll.reshape([b, l]).sum_dim(1).reshape([b]);
    let counts = keep.reshape([b, l]).sum_dim(1).reshape([b]);
    let read = |t: Tensor<1>| {
        t.into_data()
            .try_to_vec::<f32>()
            .map_err(|e| crate::TrainError::State(format!("reading the loss terms: {e:?}")))
    };
    let (sums, counts) = (read(sums)?, read(counts)?);
    Ok(sums.into_iter().zip(counts).map(|(s, c)| (s as f64, c as usize)).collect())
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

    #[test]
    fn token_loss_terms_add_up_to_the_batch_loss() {
        let device = Device::flex();
        let values: Vec<f32> = (0..2 * 3 * 4).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
        let logits = Tensor::<3>::from_data(TensorData::new(values, [2, 3, 4]), &device);
        let labels = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, -100, 3, 0, 2, -100], [2, 3]), &device);
        let terms = token_loss_terms(logits.clone(), labels.clone()).unwrap();
        assert_eq!(terms.iter().map(|t| t.1).collect::<Vec<_>>(), vec![2, 2]);
        let mean = terms.iter().map(|t| t.0).sum::<f64>() / 4.0;
        let whole: f32 = cross_entropy(logits.clone().reshape([6, 4]), labels.clone().reshape([6])).into_scalar();
        assert!((mean - whole as f64).abs() < 1e-6, "{mean} vs {whole}");
        // Row 1 alone is the batch of its own row.
        let row1: f32 =
            cross_entropy(logits.slice([1..2]).reshape([3, 4]), labels.slice([1..2]).reshape([3])).into_scalar();
        assert!((terms[1].0 / 2.0 - row1 as f64).abs() < 1e-6, "{} vs {row1}", terms[1].0 / 2.0);
    }
}
