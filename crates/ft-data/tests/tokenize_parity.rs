//! The tokenizer wrapper gives exactly what transformers' fast tokenizers give: ids, word ids and
//! character offsets, with truncation at `max_length` (the fixtures' texts include an empty
//! string, accents, CJK, emoji and a text longer than the limit).

#[path = "../../../tests/support/mod.rs"]
mod support;

use ft_data::tokenize::TextTokenizer;
use serde_json::Value;
use support::fixture;

fn check(model: &str) {
    let dir = fixture(&format!("models/{model}"));
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(&format!("parity/{model}.json"))).unwrap()).unwrap();
    let max_length = json["max_length"].as_u64().unwrap() as usize;
    let tok = TextTokenizer::from_files(&dir.join("tokenizer.json"), Some(&dir.join("tokenizer_config.json")))
        .unwrap()
        .with_max_length(Some(max_length))
        .unwrap();
    assert_eq!(tok.model_max_length(), Some(40));
    let texts: Vec<&str> = json["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let got = tok.encode_batch(&texts).unwrap();
    for (i, (enc, want)) in got.iter().zip(json["encodings"].as_array().unwrap()).enumerate() {
        let ids: Vec<u32> = serde_json::from_value(want["input_ids"].clone()).unwrap();
        let words: Vec<Option<u32>> = serde_json::from_value(want["word_ids"].clone()).unwrap();
        let offsets: Vec<(usize, usize)> = serde_json::from_value(want["offsets"].clone()).unwrap();
        assert_eq!(enc.input_ids, ids, "{model} text {i} ids");
        assert_eq!(enc.word_ids, words, "{model} text {i} word ids");
        assert_eq!(enc.offsets, offsets, "{model} text {i} offsets");
        assert!(enc.len() <= max_length);
    }
}

#[test]
fn uncased_wordpiece_matches_transformers() {
    check("tiny-bert");
    check("tiny-distilbert-seqcls");
}

#[test]
fn cased_wordpiece_matches_transformers() {
    check("tiny-bert-seqcls");
    check("tiny-bert-tokcls");
}

#[test]
fn decoder_joins_wordpieces() {
    let dir = fixture("models/tiny-bert-tokcls");
    let tok = TextTokenizer::from_files(&dir.join("tokenizer.json"), None).unwrap();
    let s = tok.tokens_to_string(vec!["Z".into(), "##ürich".into(), "is".into()]);
    assert_eq!(s, "Zürich is");
}

#[test]
fn bad_tokenizer_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, "{not json").unwrap();
    let err = TextTokenizer::from_files(&path, None).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}
