//! The pipelines give what transformers' `pipeline(...)` gives on the tiny fixtures, and batched
//! inference equals one-text-at-a-time inference.

#[path = "../../../tests/support/mod.rs"]
mod support;

use burn::tensor::Device;
use ft_models::auto::{LoadOptions, Task, load};
use ft_serve::pipeline::{
    AggregationStrategy, PipelineOptions, TextClassificationPipeline, TokenClassificationPipeline,
};
use serde_json::Value;
use support::fixture;

/// Batched equals alone to a few f32 ulps: within 2e-5, relative to the logit's magnitude where
/// it exceeds 1. Padding changes the shapes of every matrix product, hence their blocking and
/// summation order; on these tiny random models (hidden 32, logits up to ±8) that moves logits
/// by up to ~1e-5 — transformers itself differs by up to 6.7e-6 between the two on the same
/// fixtures. On the real all-MiniLM-L6-v2 the two are bit-identical (ft-models' parity tests).
fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 2e-5 * b.abs().max(1.0)
}

fn expected(model: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(&format!("parity/{model}.json"))).unwrap()).unwrap()
}

fn texts(json: &Value) -> Vec<String> {
    json["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}

fn text_pipeline(model: &str, batch_size: usize) -> TextClassificationPipeline {
    let device = Device::flex();
    let loaded = load(
        fixture(&format!("models/{model}")).to_str().unwrap(),
        Task::SequenceClassification,
        &LoadOptions::default(),
        &device,
    )
    .unwrap()
    .into_sequence_classifier()
    .unwrap();
    TextClassificationPipeline::new(loaded, &PipelineOptions { batch_size, max_length: None, ..Default::default() }, &device).unwrap()
}

fn token_pipeline(model: &str, batch_size: usize) -> TokenClassificationPipeline {
    let device = Device::flex();
    let loaded = load(
        fixture(&format!("models/{model}")).to_str().unwrap(),
        Task::TokenClassification,
        &LoadOptions::default(),
        &device,
    )
    .unwrap()
    .into_token_classifier()
    .unwrap();
    TokenClassificationPipeline::new(
        loaded,
        &PipelineOptions { batch_size, max_length: None, ..Default::default() },
        AggregationStrategy::Simple,
        &device,
    )
    .unwrap()
}

fn check_text_classification(model: &str) {
    let json = expected(model);
    let texts = texts(&json);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batched = text_pipeline(model, 8).predict(&refs).unwrap();
    let single = text_pipeline(model, 1).predict(&refs).unwrap();
    for (i, (got, want)) in batched.iter().zip(json["pipeline"].as_array().unwrap()).enumerate() {
        assert_eq!(got.label, want["label"].as_str().unwrap(), "{model} text {i}");
        let err = (got.score as f64 - want["score"].as_f64().unwrap()).abs();
        assert!(err <= 1e-4, "{model} text {i}: score error {err}");
        for (a, b) in got.logits.iter().zip(&single[i].logits) {
            assert!(close(*a, *b), "{model} text {i}: batched {a} vs alone {b}");
        }
    }
}

fn check_token_classification(model: &str) {
    let json = expected(model);
    let texts = texts(&json);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batched = token_pipeline(model, 8).predict(&refs).unwrap();
    let single = token_pipeline(model, 1).predict(&refs).unwrap();
    for (i, (got, want)) in batched.iter().zip(json["pipeline"].as_array().unwrap()).enumerate() {
        let want = want.as_array().unwrap();
        assert_eq!(got.entities.len(), want.len(), "{model} text {i}: {:?}", got.entities);
        for (g, w) in got.entities.iter().zip(want) {
            assert_eq!(g.entity_group.as_deref(), w["entity_group"].as_str(), "{model} text {i}");
            assert_eq!(g.word, w["word"].as_str().unwrap(), "{model} text {i}");
            assert_eq!((g.start as u64, g.end as u64), (w["start"].as_u64().unwrap(), w["end"].as_u64().unwrap()));
            assert!((g.score as f64 - w["score"].as_f64().unwrap()).abs() <= 1e-4, "{model} text {i}");
        }
        let want_ids: Vec<u32> = serde_json::from_value(json["encodings"][i]["input_ids"].clone()).unwrap();
        assert_eq!(got.input_ids, want_ids);
        for (a, b) in got.logits.iter().flatten().zip(single[i].logits.iter().flatten()) {
            assert!(close(*a, *b), "{model} text {i}: batched {a} vs alone {b}");
        }
    }
}

#[test]
fn bert_text_classification() {
    check_text_classification("tiny-bert-seqcls");
}

#[test]
fn distilbert_text_classification() {
    check_text_classification("tiny-distilbert-seqcls");
}

#[test]
fn bert_token_classification_simple_aggregation() {
    check_token_classification("tiny-bert-tokcls");
}

#[test]
fn distilbert_token_classification_simple_aggregation() {
    check_token_classification("tiny-distilbert-tokcls");
}

#[test]
fn rejects_bad_options() {
    let device = Device::flex();
    let loaded = load(
        fixture("models/tiny-bert-seqcls").to_str().unwrap(),
        Task::SequenceClassification,
        &LoadOptions::default(),
        &device,
    )
    .unwrap()
    .into_sequence_classifier()
    .unwrap();
    let err =
        TextClassificationPipeline::new(loaded, &PipelineOptions { batch_size: 8, max_length: Some(41), ..Default::default() }, &device)
            .unwrap_err();
    assert!(err.to_string().contains("max_position_embeddings 40"), "{err}");
}
