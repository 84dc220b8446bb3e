//! Padded batches: BERT's projections and feed-forward blocks run on the token rows alone
//! (`ft_models::attention::TokenRows`). A padded batch must give, at every token position, what
//! each sequence gives alone without padding — outputs and, by linearity, the sum of the
//! per-sequence parameter gradients — to float rounding.

#[path = "../../../tests/support/mod.rs"]
mod support;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use ft_models::attention::TokenRows;
use ft_models::auto::{AnyModel, LoadOptions, Task, TokenClassifier, load};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

/// Three sequences of lengths 8, 3 and 5, padded to 8 (7 of 24 rows are padding).
const LENGTHS: [usize; 3] = [8, 3, 5];
const SEQ: usize = 8;

fn ids(row: usize, len: usize) -> Vec<i64> {
    (0..len).map(|i| (2 + 7 * row + 13 * i) as i64 % 90 + 2).collect()
}

#[test]
fn token_rows_only_in_training_and_only_with_padding() {
    let device = Device::flex().autodiff();
    let mask =
        |v: Vec<i64>, b: usize, device: &Device| Tensor::<2, Int>::from_data(TensorData::new(v, [b, SEQ]), device);
    let full = mask(vec![1; 2 * SEQ], 2, &device);
    assert!(TokenRows::new(&full).is_none(), "no padding: nothing to skip");
    let padded: Vec<i64> = LENGTHS.iter().flat_map(|&l| (0..SEQ).map(move |i| i64::from(i < l))).collect();
    assert!(TokenRows::new(&mask(padded.clone(), 3, &Device::flex())).is_none(), "inference computes every row");
    let rows = TokenRows::new(&mask(padded, 3, &device)).expect("7 of 24 rows are padding");
    let x = Tensor::<3>::random([3, SEQ, 4], Distribution::Normal(0.0, 1.0), &device);
    let back = rows.scatter(rows.gather(x.clone()));
    let (x, back) = (values(x), values(back));
    for (b, &len) in LENGTHS.iter().enumerate() {
        for s in 0..SEQ {
            let at = (b * SEQ + s) * 4;
            let want = if s < len { &x[at..at + 4] } else { &[0.0; 4][..] };
            assert_eq!(&back[at..at + 4], want, "row {b}, position {s}");
        }
    }
}

#[test]
fn padded_batch_equals_each_sequence_alone() {
    let device = Device::flex().autodiff();
    device.seed(5);
    // No dropout, so that the batched and the per-sequence passes compute the same function.
    let tmp = tempfile::tempdir().unwrap();
    support::copy_dir(&support::fixture("models/tiny-bert-tokcls"), tmp.path());
    let config_path = tmp.path().join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["hidden_dropout_prob"] = 0.0.into();
    config["attention_probs_dropout_prob"] = 0.0.into();
    config["classifier_dropout"] = 0.0.into();
    std::fs::write(&config_path, config.to_string()).unwrap();
    let AnyModel::TokenClassifier(TokenClassifier::Bert(model)) =
        load(tmp.path().to_str().unwrap(), Task::TokenClassification, &LoadOptions::default(), &device).unwrap().model
    else {
        panic!("a BERT token classifier")
    };
    let labels = model.classifier.base.weight.dims()[1];
    let weights: Vec<Tensor<3>> =
        LENGTHS.iter().map(|&l| Tensor::random([1, l, labels], Distribution::Normal(0.0, 1.0), &device)).collect();

    // The padded batch.
    let mut all_ids = Vec::new();
    let mut all_mask = Vec::new();
    for (b, &len) in LENGTHS.iter().enumerate() {
        all_ids.extend(ids(b, len));
        all_ids.extend(std::iter::repeat_n(0, SEQ - len));
        all_mask.extend((0..SEQ).map(|i| i64::from(i < len)));
    }
    let batch_ids_data = TensorData::new(all_ids, [3, SEQ]);
    let batch_ids = Tensor::<2, Int>::from_data(batch_ids_data.clone(), &device);
    let batch_mask = Tensor::<2, Int>::from_data(TensorData::new(all_mask.clone(), [3, SEQ]), &device);
    assert!(TokenRows::new(&batch_mask).is_some(), "the batch takes the token-rows path");
    let logits = model.forward(batch_ids, batch_mask, None);
    let mut loss = Tensor::<1>::zeros([1], &device);
    let mut batch_rows = Vec::new();
    for (b, &len) in LENGTHS.iter().enumerate() {
        let rows = logits.clone().narrow(0, b, 1).narrow(1, 0, len);
        batch_rows.push(values(rows.clone()));
        loss = loss + (rows * weights[b].clone()).sum();
    }
    let batch_grads = GradientsParams::from_grads(loss.backward(), &model);

    // The token-row path was taken: inference (every row computed, as transformers) gives the
    // same token rows but other padding rows, which training leaves at what the zeros give.
    let plain = Device::flex();
    let plain_logits = values(model.valid().forward(
        Tensor::<2, Int>::from_data(batch_ids_data.clone(), &plain),
        Tensor::<2, Int>::from_data(TensorData::new(all_mask.clone(), [3, SEQ]), &plain),
        None,
    ));
    let trained_logits = values(logits.clone());
    let (mut token_diff, mut padding_diff) = (0f32, 0f32);
    for (i, (a, b)) in trained_logits.iter().zip(&plain_logits).enumerate() {
        let d = (a - b).abs();
        if all_mask[i / labels] == 1 { token_diff = token_diff.max(d) } else { padding_diff = padding_diff.max(d) }
    }
    assert!(token_diff < 1e-5, "token rows differ from inference by {token_diff}");
    assert!(padding_diff > 1e-3, "padding rows equal inference's ({padding_diff}): the token-row path was not taken");

    // Each sequence alone, no padding; gradients summed.
    let mut loss = Tensor::<1>::zeros([1], &device);
    for (b, &len) in LENGTHS.iter().enumerate() {
        let one = Tensor::<2, Int>::from_data(TensorData::new(ids(b, len), [1, len]), &device);
        let rows = model.forward(one, Tensor::ones([1, len], &device), None);
        let (got, want) = (values(rows.clone()), &batch_rows[b]);
        let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-5, "sequence {b}: logits differ by {worst}");
        loss = loss + (rows * weights[b].clone()).sum();
    }
    let alone_grads = GradientsParams::from_grads(loss.backward(), &model);

    let mut compared = 0;
    for (name, id) in ft_models::params::param_names(&mut model.clone()) {
        let vector = name.ends_with("bias") || name.contains("LayerNorm");
        let pair = if vector {
            batch_grads.get::<1>(id).zip(alone_grads.get::<1>(id)).map(|(a, b)| (values(a), values(b)))
        } else {
            batch_grads.get::<2>(id).zip(alone_grads.get::<2>(id)).map(|(a, b)| (values(a), values(b)))
        };
        let Some((a, b)) = pair else { continue };
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(worst <= 1e-5 * scale.max(1.0), "{name}: gradients differ by {worst} (scale {scale})");
        compared += 1;
    }
    assert!(compared >= 20, "only {compared} parameters compared");
}
