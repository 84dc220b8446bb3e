//! Datasets as `datasets` + transformers give them: the shuffle order (NumPy's PCG64), the
//! notebook's subsample, and tokenization + label alignment identical to transformers' fast
//! tokenizer — on Python-made fixtures (`tests/fixtures/data`, made by
//! `xtask/python/fixtures_data.py`) and on the real data in `../shared/data` (all 3,250 CoNLL
//! validation sentences and all 7,600 AG News test texts with all-MiniLM-L6-v2's tokenizer).

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use ft_data::align::{TokenizeOptions, Tokenized, tokenize_and_align_labels, tokenize_text_classification};
use ft_data::dataset::{Column, Dataset, SplitSize};
use ft_data::source::{DatasetSource, LoadOptions, OnInvalid};
use ft_data::tokenize::TextTokenizer;
use serde_json::Value;
use support::{fixture, minilm, shared};

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    h
}

const FNV_SEED: u64 = 0xcbf29ce484222325;

fn fnv_ints(values: impl IntoIterator<Item = i64>) -> String {
    let bytes: Vec<u8> = values.into_iter().flat_map(|v| v.to_le_bytes()).collect();
    format!("{:016x}", fnv(&bytes, FNV_SEED))
}

fn fnv_row(ids: &[i64], labels: &[i64]) -> String {
    let mut bytes: Vec<u8> = ids.iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes.push(b'|');
    bytes.extend(labels.iter().flat_map(|v| v.to_le_bytes()));
    format!("{:016x}", fnv(&bytes, FNV_SEED))
}

fn model_dir(name: &str) -> PathBuf {
    if name == "minilm" { minilm().expect("the test checked for all-MiniLM-L6-v2") } else { fixture(&format!("models/{name}")) }
}

fn tokenizer(name: &str) -> TextTokenizer {
    let dir = model_dir(name);
    TextTokenizer::from_files(&dir.join("tokenizer.json"), Some(&dir.join("tokenizer_config.json"))).unwrap()
}

fn ints_of(c: &Column, i: usize) -> Vec<i64> {
    match c {
        Column::IntList(v) => v[i].clone(),
        Column::Int(v) => vec![v[i]],
        other => panic!("unexpected column {}", other.type_name()),
    }
}

fn load(spec: &str, split: Option<&str>, local: Option<PathBuf>) -> Dataset {
    let options = LoadOptions { local_data: local, ..Default::default() };
    DatasetSource::open(spec, options).unwrap().load(split).unwrap().dataset
}

#[test]
fn shuffle_and_split_match_numpy_and_datasets() {
    let f = json(&fixture("data/shuffle.json"));
    let mut checked = 0;
    for p in f["permutations"].as_array().unwrap() {
        let (seed, n) = (p["seed"].as_u64().unwrap(), p["n"].as_u64().unwrap() as usize);
        let perm = ft_data::rng::permutation(n, seed);
        assert_eq!(fnv_ints(perm.iter().map(|&x| x as i64)), p["hash"].as_str().unwrap(), "seed {seed} n {n}");
        let want: Vec<usize> = serde_json::from_value(p.get("values").or(p.get("head")).unwrap().clone()).unwrap();
        assert_eq!(&perm[..want.len()], &want[..], "seed {seed} n {n}");
        checked += 1;
    }
    assert_eq!(checked, 54);
    // datasets' own Dataset.shuffle(seed=42)
    let ds = Dataset::new("i", vec![ft_data::dataset::Field::new("i", Column::Int((0..7600).collect()))]).unwrap();
    let shuffled = ds.shuffle(42);
    let Column::Int(order) = shuffled.column("i").unwrap() else { unreachable!() };
    assert_eq!(fnv_ints(order.iter().copied()), f["datasets_shuffle_42_n7600"]["hash"].as_str().unwrap());
    // datasets' train_test_split
    for s in f["train_test_split"].as_array().unwrap() {
        let n = s["n"].as_u64().unwrap() as i64;
        let size = |v: &Value| -> Option<SplitSize> {
            v.as_u64().map(|c| SplitSize::Count(c as usize)).or(v.as_f64().map(SplitSize::Fraction))
        };
        let ds = Dataset::new("i", vec![ft_data::dataset::Field::new("i", Column::Int((0..n).collect()))]).unwrap();
        let d = ds.train_test_split(size(&s["test_size"]), size(&s["train_size"]), true, s["seed"].as_u64()).unwrap();
        let col = |name: &str| match d.get(name).unwrap().column("i").unwrap() {
            Column::Int(v) => v.clone(),
            _ => unreachable!(),
        };
        assert_eq!(col("train").len() as u64, s["train_len"].as_u64().unwrap(), "{s}");
        assert_eq!(fnv_ints(col("train")), s["train_hash"].as_str().unwrap(), "{s}");
        assert_eq!(fnv_ints(col("test")), s["test_hash"].as_str().unwrap(), "{s}");
    }
}

/// The `ft data tokenize` arguments of a fixture case, applied through the library.
fn run_case(args: &[String], model: &str) -> Tokenized {
    let get = |flag: &str| args.iter().position(|a| a == flag).map(|i| args[i + 1].clone());
    let path = |a: String| if a.starts_with("mini/") { fixture(&format!("data/{a}")).display().to_string() } else { a };
    let source = path(get("--source").unwrap());
    let local = get("--data").map(|d| PathBuf::from(path(d)));
    let mut ds = load(&source, get("--split").as_deref(), local);
    if let Some(seed) = get("--seed") {
        ds = ds.shuffle(seed.parse().unwrap());
    }
    if let Some(n) = get("--select") {
        ds = ds.take(n.parse().unwrap());
    }
    let opts = TokenizeOptions {
        max_length: get("--max-length").map(|m| m.parse().unwrap()),
        label_all_tokens: args.iter().any(|a| a == "--label-all-tokens"),
        ..Default::default()
    };
    let tok = tokenizer(model);
    match get("--task").as_deref().unwrap_or("text-classification") {
        "token-classification" => tokenize_and_align_labels(&ds, &tok, "tokens", "ner_tags", &opts).unwrap(),
        _ => tokenize_text_classification(&ds, &tok, "text", Some("label"), &opts).unwrap(),
    }
}

#[test]
fn tokenization_matches_transformers_on_python_made_fixtures() {
    // Six of the cases use all-MiniLM-L6-v2's tokenizer.
    if minilm().is_none() {
        return;
    }
    let cases = json(&fixture("data/cases.json"));
    let mut rows = 0;
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let args: Vec<String> = serde_json::from_value(case["args"].clone()).unwrap();
        let got = run_case(&args, case["model"].as_str().unwrap()).dataset;
        let want: Vec<Value> = std::fs::read_to_string(fixture(&format!("data/expected/{name}.jsonl")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(got.len(), want.len(), "{name} {args:?}");
        for (i, w) in want.iter().enumerate() {
            let row = got.row(i).unwrap();
            for key in ["input_ids", "attention_mask", "labels"] {
                assert_eq!(row[key], w[key], "{name} {args:?} row {i} {key}");
            }
        }
        rows += want.len();
    }
    assert_eq!(rows, 93, "rows compared");
}

/// `shared/data/<rel>`; the test checked [`have_real_data`] first.
fn shared_data(rel: &str) -> PathBuf {
    support::shared_data(rel).unwrap_or_else(|| panic!("{rel} is missing (set FT_SHARED to the shared folder)"))
}

/// Whether the shared data (and, with `model`, all-MiniLM-L6-v2) are here; records a skip if not.
fn have_real_data(model: bool) -> bool {
    shared().is_some() && (!model || minilm().is_some())
}

/// Compares every row of `got` with the fixture's per-row hashes; returns the mismatches.
fn mismatches(got: &Dataset, digest: &Value) -> Vec<usize> {
    let hashes = digest["hashes"].as_array().unwrap();
    assert_eq!(got.len(), hashes.len());
    let (ids, labels) = (got.column("input_ids").unwrap(), got.column("labels").unwrap());
    (0..got.len()).filter(|&i| fnv_row(&ints_of(ids, i), &ints_of(labels, i)) != hashes[i].as_str().unwrap()).collect()
}

#[test]
fn conll_validation_identity_with_minilm() {
    if !have_real_data(true) {
        return;
    }
    let real = json(&fixture("data/real.json"));
    let digest = &real["conll_validation_minilm"];
    let tok = tokenizer("minilm");
    // The Parquet files and the original text file, through the recipe.
    for local in [shared_data("conll2003"), shared_data("conll2003/valid.txt")] {
        let ds = load("conll2003", Some("validation"), Some(local.clone()));
        assert_eq!(ds.len(), 3250, "{}", local.display());
        let enc =
            tokenize_and_align_labels(&ds, &tok, "tokens", "ner_tags", &TokenizeOptions::default()).unwrap().dataset;
        let bad = mismatches(&enc, digest);
        assert!(
            bad.is_empty(),
            "{}: {} of 3250 rows differ from transformers, first {:?}",
            local.display(),
            bad.len(),
            &bad[..bad.len().min(10)]
        );
        for (i, first) in digest["first"].as_array().unwrap().iter().enumerate() {
            let row = enc.row(i).unwrap();
            assert_eq!(row["input_ids"], first["input_ids"]);
            assert_eq!(row["labels"], first["labels"]);
        }
        let tokens: usize = match enc.column("input_ids").unwrap() {
            Column::IntList(v) => v.iter().map(Vec::len).sum(),
            _ => unreachable!(),
        };
        assert_eq!(tokens as u64, digest["tokens"].as_u64().unwrap());
    }
}

#[test]
fn ag_news_test_identity_with_minilm() {
    if !have_real_data(true) {
        return;
    }
    let real = json(&fixture("data/real.json"));
    let ds = load("ag_news", Some("test"), Some(shared_data("ag_news")));
    let opts = TokenizeOptions { max_length: Some(256), ..Default::default() };
    let enc = tokenize_text_classification(&ds, &tokenizer("minilm"), "text", Some("label"), &opts).unwrap().dataset;
    let bad = mismatches(&enc, &real["ag_news_test_minilm_256"]);
    assert!(
        bad.is_empty(),
        "{} of 7600 rows differ from transformers, first {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
}

#[test]
fn notebook_subsample_picks_the_rows_datasets_picks() {
    if !have_real_data(false) {
        return;
    }
    let real = json(&fixture("data/real.json"));
    let sub = &real["subsample"];
    let rows = |ds: &Dataset| -> Vec<u64> { ds.origins().iter().map(|r| r.row).collect() };
    let want = |k: &str| -> Vec<u64> { serde_json::from_value(sub[k].clone()).unwrap() };
    // The recipe's subsample: AG News validation = test.shuffle(seed=42).select(range(1000)).
    let ag = ft_data::recipe::Recipe::built_in("ag_news").unwrap();
    let (seed, n) = ag.subsample_of("validation").unwrap();
    let ds = load("ag_news", Some("validation"), Some(shared_data("ag_news")));
    assert_eq!(rows(&ds.shuffle(seed).take(n)), want("ag_news_test_1000"));
    let conll = load("conll2003", Some("train"), Some(shared_data("conll2003")));
    assert_eq!(rows(&conll.shuffle(42).take(2000)), want("conll_train_2000"));
    let conll = load("conll2003", Some("validation"), Some(shared_data("conll2003")));
    assert_eq!(rows(&conll.shuffle(42).take(1000)), want("conll_validation_1000"));
    let imdb = load("imdb", Some("train"), Some(shared_data("imdb")));
    assert_eq!(imdb.len(), 25000);
    assert_eq!(rows(&imdb.shuffle(42).take(2000)), want("imdb_train_2000"));
}

#[test]
fn original_files_equal_the_parquet_files() {
    if !have_real_data(false) {
        return;
    }
    // CoNLL text files read as the HF conll2003 loader reads them.
    for (txt, pq) in [("train.txt", "train.parquet"), ("valid.txt", "validation.parquet"), ("test.txt", "test.parquet")]
    {
        let a = load(shared_data(&format!("conll2003/{txt}")).to_str().unwrap(), None, None);
        let b = load(shared_data(&format!("conll2003/{pq}")).to_str().unwrap(), None, None);
        assert_eq!(a.column_names(), b.column_names());
        for name in b.column_names() {
            assert_eq!(a.column(name).unwrap(), b.column(name).unwrap(), "{txt} {name}");
        }
        assert_eq!(a.label_names("ner_tags"), b.label_names("ner_tags"));
        assert_eq!(a.label_names("pos_tags"), b.label_names("pos_tags"));
    }
    // The headerless AG News CSV through the recipe: text = title + " " + description, label = class - 1.
    let csv = load("ag_news", None, Some(shared_data("ag_news/test.csv")));
    let pq = load(shared_data("ag_news/test.parquet").to_str().unwrap(), None, None);
    assert_eq!(csv.column_names(), ["text", "label"]);
    assert_eq!(csv.column("text").unwrap(), pq.column("text").unwrap());
    assert_eq!(csv.column("label").unwrap(), pq.column("label").unwrap());
    assert_eq!(csv.label_names("label"), pq.label_names("label"));
}

#[test]
fn bad_input_names_the_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer("tiny-bert-tokcls");
    let opts = TokenizeOptions::default();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let load_file = |p: &Path, on_invalid| {
        DatasetSource::open(p.to_str().unwrap(), LoadOptions { on_invalid, ..Default::default() })
            .and_then(|s| s.load(None))
    };

    let p = write(
        "news.jsonl",
        "{\"text\": \"fine\", \"label\": 1}\n{\"text\": \"\", \"label\": 0}\n{\"text\": \"big\", \"label\": 7}\n",
    );
    let ds = load_file(&p, OnInvalid::Error).unwrap().dataset;
    let num4 = TokenizeOptions { num_labels: Some(4), ..Default::default() };
    let err = tokenize_text_classification(&ds, &tok, "text", Some("label"), &num4).unwrap_err().to_string();
    assert!(err.contains("news.jsonl: row 1 (line 2)") && err.contains("empty"), "{err}");
    let skip = TokenizeOptions { num_labels: Some(4), on_invalid: OnInvalid::Skip, ..Default::default() };
    let t = tokenize_text_classification(&ds, &tok, "text", Some("label"), &skip).unwrap();
    assert_eq!((t.dataset.len(), t.skipped.len()), (1, 2));
    assert!(
        t.skipped[1].reason.contains("label 7 is outside [0, 4)") && t.skipped[1].origin.ends_with("row 2 (line 3)"),
        "{:?}",
        t.skipped
    );
    let err = tokenize_text_classification(&ds, &tok, "body", None, &opts).unwrap_err().to_string();
    assert!(err.contains("news.jsonl") && err.contains("no column 'body'") && err.contains("text, label"), "{err}");
    let err = tokenize_text_classification(&ds, &tok, "label", None, &opts).unwrap_err().to_string();
    assert!(err.contains("column 'label' is int64, expected string"), "{err}");

    let p = write(
        "ner.jsonl",
        "{\"tokens\": [\"a\", \"b\"], \"ner_tags\": [0, 1]}\n{\"tokens\": [\"a\"], \"ner_tags\": [0, 1]}\n",
    );
    let ds = load_file(&p, OnInvalid::Error).unwrap().dataset;
    let err = tokenize_and_align_labels(&ds, &tok, "tokens", "ner_tags", &opts).unwrap_err().to_string();
    assert!(err.contains("ner.jsonl: row 1 (line 2)") && err.contains("1 words") && err.contains("2 tags"), "{err}");

    // After a shuffle the error still names the original row.
    let shuffled = ds.shuffle(0);
    let err = tokenize_and_align_labels(&shuffled, &tok, "tokens", "ner_tags", &opts).unwrap_err().to_string();
    assert!(err.contains("row 1 (line 2)"), "{err}");

    let p = write("bad.parquet", "not parquet at all");
    let err = load_file(&p, OnInvalid::Error).unwrap_err().to_string();
    assert!(err.contains("bad.parquet") && err.contains("not a readable Parquet file"), "{err}");
    let p = write("valid.txt", "EU NNP B-NP B-ORG\nrejects VBZ B-VP\n");
    let err = load_file(&p, OnInvalid::Error).unwrap_err().to_string();
    assert!(err.contains("valid.txt:2") && err.contains("3 fields, expected 4"), "{err}");
    let err = DatasetSource::open("no/such-dataset-here", LoadOptions::default()).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("no/such-dataset-here"), "{err}");
}
