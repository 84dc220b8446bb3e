//! Parity with transformers: the tiny random checkpoints of `tests/fixtures/models` and the
//! real all-MiniLM-L6-v2, against outputs transformers computed (`tests/fixtures/parity`).

#[path = "../../../tests/support/mod.rs"]
mod support;

use burn::tensor::{Device, Int, Tensor, TensorData};
use ft_data::collate::TextBatch;
use ft_models::auto::{AnyModel, LoadOptions, Task, load};
use support::{fixture, max_abs_diff, minilm, read_safetensors};

const TOL: f64 = 1e-4;

fn int_tensor(shape: &[usize], values: &[f64], device: &Device) -> Tensor<2, Int> {
    let v: Vec<i64> = values.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [shape[0], shape[1]]), device)
}

fn batch(
    expected: &std::collections::HashMap<String, (Vec<usize>, Vec<f64>)>,
    prefix: &str,
    device: &Device,
) -> TextBatch {
    let (shape, ids) = &expected[&format!("{prefix}input_ids")];
    let (_, mask) = &expected[&format!("{prefix}attention_mask")];
    let types = expected
        .get(&format!("{prefix}token_type_ids"))
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| vec![0.0; ids.len()]);
    let lengths = mask.chunks(shape[1]).map(|r| r.iter().filter(|&&m| m > 0.0).count()).collect();
    TextBatch {
        input_ids: int_tensor(shape, ids, device),
        attention_mask: int_tensor(shape, mask, device),
        token_type_ids: int_tensor(shape, &types, device),
        lengths,
    }
}

/// Row `i` of a padded batch, unpadded, as a batch of one.
fn single(b: &TextBatch, i: usize) -> TextBatch {
    let l = b.lengths[i];
    let pick = |t: &Tensor<2, Int>| t.clone().narrow(0, i, 1).narrow(1, 0, l);
    TextBatch {
        input_ids: pick(&b.input_ids),
        attention_mask: pick(&b.attention_mask),
        token_type_ids: pick(&b.token_type_ids),
        lengths: vec![l],
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().try_into_vec_as::<f32>().unwrap().into_iter().map(f64::from).collect()
}

fn run(model: &AnyModel, b: &TextBatch) -> (Vec<f64>, Option<Vec<f64>>) {
    match model {
        AnyModel::Encoder(ft_models::auto::Encoder::Bert(m)) => {
            let out = m.forward(b.input_ids.clone(), b.attention_mask.clone(), Some(b.token_type_ids.clone()));
            (values(out.last_hidden_state), out.pooler_output.map(values))
        }
        AnyModel::Encoder(e) => (values(e.forward(b)), None),
        AnyModel::SequenceClassifier(m) => (values(m.forward(b)), None),
        AnyModel::TokenClassifier(m) => (values(m.forward(b)), None),
        AnyModel::CausalLm(_) => panic!("GPT-2 has its own parity tests (gpt2_parity.rs)"),
    }
}

/// Compares a tiny model with transformers on the padded batch and on each text alone; returns
/// the largest error.
fn check(name: &str, task: Task) -> f64 {
    let device = Device::flex();
    let loaded =
        load(fixture(&format!("models/{name}")).to_str().unwrap(), task, &LoadOptions::default(), &device).unwrap();
    assert!(loaded.report.is_complete(), "{name}: {:?}", loaded.report);
    assert!(loaded.report.unexpected.is_empty(), "{name}: unexpected {:?}", loaded.report.unexpected);
    let expected = read_safetensors(&fixture(&format!("parity/{name}.safetensors")));
    let out_name = if task == Task::FeatureExtraction { "last_hidden_state" } else { "logits" };
    let b = batch(&expected, "", &device);
    let (got, pooled) = run(&loaded.model, &b);
    let mut worst = 0.0f64;
    // Padding positions are compared too: transformers computes them, and so do we.
    let err = max_abs_diff(&got, &expected[out_name].1);
    assert!(err <= TOL, "{name} batched {out_name}: max abs error {err}");
    worst = worst.max(err);
    if let Some(p) = pooled {
        let err = max_abs_diff(&p, &expected["pooler_output"].1);
        assert!(err <= TOL, "{name} pooler_output: max abs error {err}");
        worst = worst.max(err);
    }
    for i in 0..b.lengths.len() {
        let (got, _) = run(&loaded.model, &single(&b, i));
        let err = max_abs_diff(&got, &expected[&format!("single_{i}_{out_name}")].1);
        assert!(err <= TOL, "{name} text {i} alone: max abs error {err}");
        worst = worst.max(err);
    }
    println!("{name}: max abs error {worst:.2e}");
    worst
}

#[test]
fn tiny_bert_model() {
    check("tiny-bert", Task::FeatureExtraction);
}

#[test]
fn tiny_bert_sentence_pairs() {
    let device = Device::flex();
    let loaded =
        load(fixture("models/tiny-bert").to_str().unwrap(), Task::FeatureExtraction, &LoadOptions::default(), &device)
            .unwrap();
    let expected = read_safetensors(&fixture("parity/tiny-bert.safetensors"));
    let (got, pooled) = run(&loaded.model, &batch(&expected, "pair_", &device));
    assert!(max_abs_diff(&got, &expected["pair_last_hidden_state"].1) <= TOL);
    assert!(max_abs_diff(&pooled.unwrap(), &expected["pair_pooler_output"].1) <= TOL);
}

#[test]
fn tiny_bert_seqcls() {
    check("tiny-bert-seqcls", Task::SequenceClassification);
}

#[test]
fn tiny_bert_tokcls_sharded() {
    check("tiny-bert-tokcls", Task::TokenClassification);
}

#[test]
fn tiny_distilbert_model() {
    check("tiny-distilbert", Task::FeatureExtraction);
}

#[test]
fn tiny_distilbert_seqcls_sinusoidal() {
    check("tiny-distilbert-seqcls", Task::SequenceClassification);
}

#[test]
fn tiny_distilbert_tokcls() {
    check("tiny-distilbert-tokcls", Task::TokenClassification);
}

#[test]
fn real_minilm_hidden_states() {
    let device = Device::flex();
    let Some(dir) = minilm() else { return };
    let loaded = load(dir.to_str().unwrap(), Task::FeatureExtraction, &LoadOptions::default(), &device).unwrap();
    assert!(loaded.report.is_complete(), "{:?}", loaded.report);
    let expected = read_safetensors(&fixture("parity/minilm.safetensors"));
    let (got, pooled) = run(&loaded.model, &batch(&expected, "", &device));
    let err = max_abs_diff(&got, &expected["last_hidden_state"].1);
    let perr = max_abs_diff(&pooled.unwrap(), &expected["pooler_output"].1);
    println!("all-MiniLM-L6-v2: last_hidden_state max abs error {err:.2e}, pooler {perr:.2e}");
    assert!(err <= TOL && perr <= TOL, "{err} {perr}");
}

#[test]
fn new_num_labels_reinitializes_the_head() {
    let device = Device::flex();
    let opts = LoadOptions { num_labels: Some(5), ..Default::default() };
    let loaded =
        load(fixture("models/tiny-bert-seqcls").to_str().unwrap(), Task::SequenceClassification, &opts, &device)
            .unwrap();
    let names: Vec<&str> = loaded.report.reinitialized_mismatched.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(names, ["classifier.weight", "classifier.bias"]);
    assert_eq!(loaded.config.labels().label_names()[4], "LABEL_4");
    // A base checkpoint under a head: the head is new, the encoder loads without the prefix.
    let loaded =
        load(fixture("models/tiny-bert").to_str().unwrap(), Task::TokenClassification, &opts, &device).unwrap();
    assert_eq!(loaded.report.newly_initialized, ["classifier.weight", "classifier.bias"]);
    assert_eq!(loaded.report.unexpected, ["pooler.dense.bias", "pooler.dense.weight"]);
}

/// A head trained for sequence classification is not a token-classification head, though the
/// shapes agree: it is new, and reported so (the stored one unused).
#[test]
fn a_head_for_another_task_is_new() {
    let device = Device::flex();
    let dir = fixture("models/tiny-bert-seqcls");
    let loaded = load(dir.to_str().unwrap(), Task::TokenClassification, &LoadOptions::default(), &device).unwrap();
    assert_eq!(loaded.report.newly_initialized, ["classifier.weight", "classifier.bias"]);
    assert!(loaded.report.unexpected.contains(&"classifier.weight".to_string()), "{:?}", loaded.report.unexpected);
    let same = load(dir.to_str().unwrap(), Task::SequenceClassification, &LoadOptions::default(), &device).unwrap();
    assert!(same.report.is_complete());
}

#[test]
fn real_minilm_batched_equals_alone() {
    let device = Device::flex();
    let Some(dir) = minilm() else { return };
    let loaded = load(dir.to_str().unwrap(), Task::FeatureExtraction, &LoadOptions::default(), &device).unwrap();
    let expected = read_safetensors(&fixture("parity/minilm.safetensors"));
    let b = batch(&expected, "", &device);
    let (batched, _) = run(&loaded.model, &b);
    let (shape, _) = &expected["last_hidden_state"];
    let (l, h) = (shape[1], shape[2]);
    let mut worst = 0.0f64;
    for i in 0..b.lengths.len() {
        let (alone, _) = run(&loaded.model, &single(&b, i));
        let n = b.lengths[i];
        let rows = &batched[i * l * h..i * l * h + n * h];
        worst = worst.max(max_abs_diff(rows, &alone));
    }
    println!("all-MiniLM-L6-v2: batched vs one-at-a-time max abs difference {worst:.2e}");
    assert!(worst <= 1e-5, "{worst}");
}

#[test]
fn dropout_only_in_training() {
    use burn::module::Module;
    let device = Device::flex();
    let loaded = load(
        fixture("models/tiny-bert-seqcls").to_str().unwrap(),
        Task::SequenceClassification,
        &LoadOptions::default(),
        &device,
    )
    .unwrap();
    let expected = read_safetensors(&fixture("parity/tiny-bert-seqcls.safetensors"));
    // Inference device: deterministic, equal to transformers' eval mode.
    let b = batch(&expected, "", &device);
    let (a, _) = run(&loaded.model, &b);
    let (c, _) = run(&loaded.model, &b);
    assert_eq!(a, c);
    // On an autodiff device in training mode, dropout (p = 0.1) changes the logits.
    let ad = device.clone().autodiff();
    let model = loaded.model.fork(&ad).train();
    let b = batch(&expected, "", &ad);
    let (t, _) = run(&model, &b);
    assert!(max_abs_diff(&t, &a) > 1e-3, "dropout inactive in training");
    // valid() switches it off again.
    let (v, _) = run(&model.valid(), &batch(&expected, "", &device));
    assert!(max_abs_diff(&v, &a) <= 1e-6);
}

/// `save_pretrained` writes the same tensor names as the Hub checkpoint, and reloading gives the
/// same model (bit for bit).
#[test]
fn save_pretrained_round_trips() {
    use ft_models::auto::save_pretrained;
    let device = Device::flex();
    for (name, task) in [
        ("tiny-bert-seqcls", Task::SequenceClassification),
        ("tiny-distilbert-seqcls", Task::SequenceClassification),
        ("tiny-bert-tokcls", Task::TokenClassification),
        ("tiny-distilbert-tokcls", Task::TokenClassification),
    ] {
        let src = fixture(&format!("models/{name}"));
        let loaded = load(src.to_str().unwrap(), task, &LoadOptions::default(), &device).unwrap();
        let (tensors, class) = match &loaded.model {
            AnyModel::SequenceClassifier(m) => (m.export().unwrap(), m.class_name()),
            AnyModel::TokenClassifier(m) => (m.export().unwrap(), m.class_name()),
            _ => unreachable!(),
        };
        let original: Vec<String> = {
            let ck = ft_models::weights::Checkpoint::open(&loaded.files, &device).unwrap();
            ck.names().map(String::from).collect()
        };
        assert_eq!(tensors.names().map(String::from).collect::<Vec<_>>(), original, "{name}");
        let out = tempfile::tempdir().unwrap();
        save_pretrained(out.path(), &tensors, &loaded.config, class, &loaded.files).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            assert!(out.path().join(f).is_file(), "{name}: {f}");
        }
        let again = load(out.path().to_str().unwrap(), task, &LoadOptions::default(), &device).unwrap();
        assert!(again.report.is_complete() && again.report.unexpected.is_empty(), "{name}: {:?}", again.report);
        assert_eq!(again.config.labels().label_names(), loaded.config.labels().label_names());
        let expected = read_safetensors(&fixture(&format!("parity/{name}.safetensors")));
        let b = batch(&expected, "", &device);
        assert_eq!(run(&loaded.model, &b).0, run(&again.model, &b).0, "{name}");
    }
}
