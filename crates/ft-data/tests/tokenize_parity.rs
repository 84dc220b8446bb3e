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

/// Long texts are tokenized from a prefix (`ft_data::clip`): the result must equal what the
/// `tokenizers` crate gives for the whole text, for WordPiece and byte-level BPE, texts and word
/// lists, and texts whose prefix alone is too short (whitespace, dropped characters).
#[test]
fn long_texts_tokenize_as_the_whole_text_would() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models");
    let sentence = "The quick brown fox jumps over the lazy dog, again and again; ünïcödé wörds too. ";
    let mut texts: Vec<String> = vec![
        sentence.repeat(3000),                                     // 240 KB of words
        format!("{}{}", " ".repeat(300_000), sentence.repeat(50)), // the words after a long gap
        format!("{}{}", "\u{0}".repeat(100_000), sentence.repeat(50)), // characters BERT drops
        "a".repeat(200_000),                                       // one giant word
        format!("{} {}", "x".repeat(70_000), sentence.repeat(10)),
    ];
    texts.push(sentence.repeat(2)); // short: untouched
    for model in ["tiny-bert", "tiny-gpt2"] {
        let dir = root.join(model);
        for max_length in [16, 128, 2000] {
            let tok = TextTokenizer::from_files(&dir.join("tokenizer.json"), None)
                .unwrap()
                .with_max_length(Some(max_length))
                .unwrap();
            let mut whole = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
            whole.with_padding(None);
            whole
                .with_truncation(Some(tokenizers::TruncationParams {
                    max_length,
                    strategy: tokenizers::TruncationStrategy::LongestFirst,
                    stride: 0,
                    direction: tokenizers::TruncationDirection::Right,
                }))
                .unwrap();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let got = tok.encode_batch(&refs).unwrap();
            let ids = tok.encode_ids_batch(&refs).unwrap();
            for (i, text) in texts.iter().enumerate() {
                let want = whole.encode_char_offsets(text.as_str(), true).unwrap();
                assert_eq!(got[i].input_ids, want.get_ids(), "{model} max_length {max_length} text {i}");
                assert_eq!(got[i].offsets, want.get_offsets(), "{model} {max_length} {i}");
                assert_eq!(ids[i].input_ids, want.get_ids(), "{model} {max_length} {i}");
            }
            // Word lists (CoNLL-style), long enough to be cut.
            let words: Vec<String> = sentence.repeat(2000).split_whitespace().map(str::to_string).collect();
            let got = tok.encode_words_ids_batch(&[&words]).unwrap();
            let refs: Vec<&str> = words.iter().map(String::as_str).collect();
            let want = whole.encode(refs, true).unwrap();
            assert_eq!(got[0].input_ids, want.get_ids(), "{model} words {max_length}");
            assert_eq!(got[0].word_ids, want.get_word_ids(), "{model} words {max_length}");
        }
        // Without truncation a text over the limit is an error naming its position.
        let tok = TextTokenizer::from_files(&dir.join("tokenizer.json"), None).unwrap();
        let big = "word ".repeat(ft_data::clip::MAX_TEXT_BYTES / 5 + 1);
        let err = tok.encode_ids_batch(&["fine", &big]).unwrap_err().to_string();
        assert!(err.contains("limit") && err.contains("max_length"), "{err}");
    }
}
