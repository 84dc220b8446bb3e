//! Dataset tokenization and collation throughput (rows/s), to compare with
//! `datasets.map(batched=True)` and transformers' fast tokenizer (`benches/data_tokenize.py`).
//!
//! Data: AG News test (7,600 texts, max_length 256) and CoNLL-2003 train (14,041 sentences,
//! `tokenize_and_align_labels`) from `../shared/data` (`FT_SHARED`), with all-MiniLM-L6-v2's
//! tokenizer (`FT_MINILM_DIR`, default `~/.cache/ft-minilm`). Run with
//! `cargo bench -p ft-data --bench tokenize`.
#![allow(missing_docs)] // criterion_main! generates an undocumented `main`

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ft_data::align::{TokenizeOptions, tokenize_and_align_labels, tokenize_text_classification};
use ft_data::collate::{CollateKind, collate_dataset};
use ft_data::source::{DatasetSource, LoadOptions};
use ft_data::tokenize::TextTokenizer;

fn shared() -> PathBuf {
    std::env::var_os("FT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

fn minilm() -> PathBuf {
    std::env::var_os("FT_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ft-minilm"))
}

fn bench(c: &mut Criterion) {
    let dir = minilm();
    let tok = TextTokenizer::from_files(&dir.join("tokenizer.json"), Some(&dir.join("tokenizer_config.json")))
        .expect("all-MiniLM-L6-v2 tokenizer (run ../shared/scripts/fetch-minilm.sh ~/.cache/ft-minilm)");
    let load = |recipe: &str, split: &str, rel: &str| {
        let options = LoadOptions { local_data: Some(shared().join("data").join(rel)), ..Default::default() };
        DatasetSource::open(recipe, options).and_then(|s| s.load(Some(split))).expect("shared data").dataset
    };
    let ag = load("ag_news", "test", "ag_news");
    let conll = load("conll2003", "train", "conll2003");
    let mut g = c.benchmark_group("data_tokenize");
    g.sample_size(10);
    let ag_opts = TokenizeOptions { max_length: Some(256), ..Default::default() };
    g.throughput(Throughput::Elements(ag.len() as u64));
    g.bench_function("ag_news_test_minilm_256", |b| {
        b.iter(|| tokenize_text_classification(&ag, &tok, "text", Some("label"), &ag_opts).expect("tokenize"))
    });
    let opts = TokenizeOptions::default();
    g.throughput(Throughput::Elements(conll.len() as u64));
    g.bench_function("conll_train_minilm_align", |b| {
        b.iter(|| tokenize_and_align_labels(&conll, &tok, "tokens", "ner_tags", &opts).expect("tokenize"))
    });
    g.finish();

    let encoded = tokenize_and_align_labels(&conll, &tok, "tokens", "ner_tags", &opts).expect("tokenize").dataset;
    let device = burn::tensor::Device::flex();
    let order: Vec<usize> = ft_data::rng::permutation(encoded.len(), 0);
    let mut g = c.benchmark_group("data_collate");
    g.throughput(Throughput::Elements(32));
    g.bench_function("conll_token_classification_batch32", |b| {
        let mut k = 0;
        b.iter(|| {
            let idx = &order[k..k + 32];
            k = (k + 32) % (order.len() - 32);
            collate_dataset(&encoded, idx, CollateKind::Auto, tok.pad_id(), None, &device).expect("collate")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
