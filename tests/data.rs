//! End-to-end tests of `ft data`: `ft data tokenize` writes exactly what transformers' fast
//! tokenizer plus the notebook's `tokenize_and_align_labels` give (Python-made fixtures, all 3,250
//! CoNLL validation sentences and all 7,600 AG News test texts of `../shared/data` with
//! all-MiniLM-L6-v2), datasets load by recipe and by Hub id from a stand-in Hub on 127.0.0.1
//! (Parquet files in the repository, or its `refs/convert/parquet` export), then offline from the
//! cache, and bad input is reported with its file and line.

#[path = "support/hub_server.rs"]
mod hub_server;
#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hub_server::HubServer;
use serde_json::Value;
use support::{fixture, minilm, shared};

fn ft(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ft"));
    cmd.args(args).env_remove("HF_TOKEN").env("HF_HUB_OFFLINE", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running ft")
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "ft failed:\n{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn model_dir(name: &str) -> PathBuf {
    if name == "minilm" { minilm().expect("the test checked for all-MiniLM-L6-v2") } else { fixture(&format!("models/{name}")) }
}

/// `shared/data/<rel>`; the test checked [`real_data`] first.
fn data(rel: &str) -> String {
    support::shared_data(rel).unwrap_or_else(|| panic!("{rel} is missing (set FT_SHARED to the shared folder)")).display().to_string()
}

/// all-MiniLM-L6-v2 when it and the shared data are here; `None` (a skip recorded) otherwise.
fn real_data() -> Option<String> {
    shared()?;
    minilm().map(|p| p.display().to_string())
}

fn fnv_row(ids: &Value, labels: &Value) -> String {
    let ints = |v: &Value| -> Vec<i64> {
        match v {
            Value::Array(a) => a.iter().map(|x| x.as_i64().unwrap()).collect(),
            other => vec![other.as_i64().unwrap()],
        }
    };
    let mut bytes: Vec<u8> = ints(ids).iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes.push(b'|');
    bytes.extend(ints(labels).iter().flat_map(|v| v.to_le_bytes()));
    let h = bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    format!("{h:016x}")
}

fn real() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("data/real.json")).unwrap()).unwrap()
}

/// Rows of `out` whose hash differs from `hashes[order[i]]`.
fn mismatches(out: &[Value], hashes: &[Value], order: Option<&[u64]>) -> Vec<usize> {
    (0..out.len())
        .filter(|&i| {
            let want = &hashes[order.map(|o| o[i] as usize).unwrap_or(i)];
            fnv_row(&out[i]["input_ids"], &out[i]["labels"]) != want.as_str().unwrap()
        })
        .collect()
}

#[test]
fn tokenize_matches_transformers_on_python_made_fixtures() {
    // Six of the cases use all-MiniLM-L6-v2's tokenizer.
    if minilm().is_none() {
        return;
    }
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(fixture("data/cases.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (k, case) in cases["cases"].as_array().unwrap().iter().enumerate() {
        let name = case["name"].as_str().unwrap();
        let model = model_dir(case["model"].as_str().unwrap());
        let mut args: Vec<String> = serde_json::from_value(case["args"].clone()).unwrap();
        for a in args.iter_mut().filter(|a| a.starts_with("mini/")) {
            *a = fixture(&format!("data/{a}")).display().to_string();
        }
        let out = tmp.path().join(format!("{k}.jsonl"));
        let mut full = vec!["data".to_string(), "tokenize".into(), "--model".into(), model.display().to_string()];
        full.extend(args.iter().cloned());
        full.extend(["--output".into(), out.display().to_string()]);
        ok(&ft(&full.iter().map(String::as_str).collect::<Vec<_>>(), &[]));
        let (got, want) = (read_jsonl(&out), read_jsonl(&fixture(&format!("data/expected/{name}.jsonl"))));
        assert_eq!(got, want, "{name}: {args:?}");
        // Exactly the three keys, in this order.
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.starts_with("{\"input_ids\":[") && text.contains("],\"attention_mask\":["), "{name}");
    }
}

#[test]
fn conll_validation_and_ag_news_identity_with_minilm() {
    let Some(model) = real_data() else { return };
    let real = real();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("conll.jsonl");
    let args = [
        "data",
        "tokenize",
        "--model",
        &model,
        "--task",
        "token-classification",
        "--source",
        "conll2003",
        "--data",
        &data("conll2003"),
        "--split",
        "validation",
        "--output",
        out.to_str().unwrap(),
    ];
    ok(&ft(&args, &[]));
    let rows = read_jsonl(&out);
    let hashes = real["conll_validation_minilm"]["hashes"].as_array().unwrap();
    assert_eq!(rows.len(), 3250);
    let bad = mismatches(&rows, hashes, None);
    assert!(
        bad.is_empty(),
        "{} of 3250 CoNLL validation rows differ from transformers: {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );

    // The notebook's subsample of the same split: shuffle(seed=42).select(range(1000)).
    let sub = tmp.path().join("conll_sub.jsonl");
    let args = [
        "data",
        "tokenize",
        "--model",
        &model,
        "--source",
        "conll2003",
        "--data",
        &data("conll2003"),
        "--split",
        "validation",
        "--subsample",
        "--output",
        sub.to_str().unwrap(),
    ];
    ok(&ft(&args, &[]));
    let order: Vec<u64> = serde_json::from_value(real["subsample"]["conll_validation_1000"].clone()).unwrap();
    let rows = read_jsonl(&sub);
    assert_eq!(rows.len(), 1000);
    assert!(mismatches(&rows, hashes, Some(&order)).is_empty());

    // AG News test (the notebook's validation split), max_length 256, from the original CSV.
    let ag = tmp.path().join("ag.jsonl");
    let args = [
        "data",
        "tokenize",
        "--model",
        &model,
        "--source",
        "ag_news",
        "--data",
        &data("ag_news/test.csv"),
        "--split",
        "validation",
        "--max-length",
        "256",
        "--output",
        ag.to_str().unwrap(),
    ];
    ok(&ft(&args, &[]));
    let rows = read_jsonl(&ag);
    assert_eq!(rows.len(), 7600);
    let bad = mismatches(&rows, real["ag_news_test_minilm_256"]["hashes"].as_array().unwrap(), None);
    assert!(bad.is_empty(), "{} of 7600 AG News rows differ: {:?}", bad.len(), &bad[..bad.len().min(10)]);
}

#[test]
fn inspect_prints_splits_columns_labels_and_lengths() {
    let Some(model) = real_data() else { return };
    let o = ft(
        &["data", "inspect", "conll2003", "--data", &data("conll2003"), "--split", "validation", "--model", &model],
        &[],
    );
    let text = ok(&o);
    for want in [
        "splits: train, validation, test",
        "split: validation: 3250 rows",
        "notebook subsample: shuffle(seed=42).select(range(1000))",
        "ner_tags    list<ClassLabel(9)>: O, B-PER, I-PER",
        "label distribution (ner_tags):",
        "token lengths of 'tokens'",
        "p50",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(text.lines().any(|l| l.trim_start().starts_with("B-PER") && l.contains(" 1842 ")), "{text}");
    let text = ok(&ft(&["data", "inspect", &data("imdb/test.parquet"), "--rows", "1"], &[]));
    assert!(
        text.contains("split: test: 25000 rows") && text.contains("neg") && text.contains("12500   50.0%"),
        "{text}"
    );
}

#[test]
fn bad_input_names_file_and_line_and_can_be_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("valid.txt");
    std::fs::write(&bad, "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP\n\nBlackburn NNP I-NP I-PER\n")
        .unwrap();
    let out = tmp.path().join("out.jsonl");
    let model = fixture("models/tiny-bert-tokcls").display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "data",
            "tokenize",
            "--model",
            &model,
            "--task",
            "token-classification",
            "--source",
            bad.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ft(&args, &[])
    };
    let o = run(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("valid.txt:4") && err.contains("3 fields, expected 4"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!out.exists(), "no partial output");
    let o = run(&["--skip-invalid"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("skipped 1 invalid rows") && err.contains("wrote 2 rows"), "{err}");
    assert_eq!(read_jsonl(&out).len(), 2);

    let jsonl = tmp.path().join("news.jsonl");
    std::fs::write(&jsonl, "{\"text\": \"ok\", \"label\": 0}\n{\"text\": \"x\", \"label\": 9}\n").unwrap();
    let o = ft(
        &[
            "data",
            "tokenize",
            "--model",
            &model,
            "--task",
            "text-classification",
            "--source",
            jsonl.to_str().unwrap(),
            "--num-labels",
            "4",
            "--output",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("news.jsonl: row 1 (line 2)") && err.contains("label 9 is outside [0, 4)"), "{err}");
    let o = ft(&["data", "inspect", tmp.path().join("nope.parquet").to_str().unwrap()], &[]);
    assert!(!o.status.success());
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), to.display()));
}

#[test]
fn datasets_by_hub_id_and_recipe_through_stand_in_hub_then_offline() {
    let Some(model) = real_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let repos = tmp.path().join("repos");
    // A repository with Parquet files (as push_to_hub lays them out).
    let news = repos.join("news");
    copy(&fixture("data/mini/news.parquet"), &news.join("data/train-00000-of-00001.parquet"));
    std::fs::write(news.join("README.md"), "---\nlicense: mit\n---\n").unwrap();
    // A loading-script repository whose data is in the Parquet export (like eriktks/conll2003),
    // served here with the real CoNLL-2003 validation split.
    let script = repos.join("conll-main");
    std::fs::create_dir_all(&script).unwrap();
    std::fs::write(script.join("conll2003.py"), "# a loading script\n").unwrap();
    let export = repos.join("conll-export");
    copy(Path::new(&data("conll2003/validation.parquet")), &export.join("conll2003/validation/0000.parquet"));
    copy(&fixture("data/mini/ner_parquet/validation.parquet"), &export.join("conll2003/test/0000.parquet"));
    let server = HubServer::start_with_datasets(
        HashMap::new(),
        HashMap::from([
            ("ft-fixtures/news".to_string(), news),
            ("eriktks/conll2003".to_string(), script),
            ("eriktks/conll2003@refs/convert/parquet".to_string(), export),
        ]),
    );
    let hf_home = tmp.path().join("hf-home");
    let env = |offline: &'static str| {
        vec![
            ("HF_HOME", hf_home.to_str().unwrap().to_string()),
            ("HF_ENDPOINT", server.endpoint.clone()),
            ("HF_HUB_OFFLINE", offline.to_string()),
        ]
    };
    let run = |args: &[&str], offline: &'static str| {
        let e = env(offline);
        let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ft(args, &pairs)
    };
    let tiny = fixture("models/tiny-distilbert-seqcls").display().to_string();
    let out = tmp.path().join("news.jsonl");
    let news_args = [
        "data",
        "tokenize",
        "--model",
        &tiny,
        "--task",
        "text-classification",
        "--source",
        "ft-fixtures/news",
        "--output",
        out.to_str().unwrap(),
    ];
    ok(&run(&news_args, "0"));
    assert_eq!(read_jsonl(&out), read_jsonl(&fixture("data/expected/news_tiny-distilbert-seqcls.jsonl")));
    let cached = hf_home
        .join("hub/datasets--ft-fixtures--news/snapshots")
        .join(hub_server::COMMIT)
        .join("data/train-00000-of-00001.parquet");
    assert!(cached.exists(), "not in the cache: {}", cached.display());

    // The conll2003 recipe resolves to eriktks/conll2003 and reads its Parquet export.
    let conll = tmp.path().join("conll.jsonl");
    let conll_args = [
        "data",
        "tokenize",
        "--model",
        &model,
        "--source",
        "conll2003",
        "--split",
        "validation",
        "--output",
        conll.to_str().unwrap(),
    ];
    ok(&run(&conll_args, "0"));
    let rows = read_jsonl(&conll);
    let real = real();
    assert!(mismatches(&rows, real["conll_validation_minilm"]["hashes"].as_array().unwrap(), None).is_empty());
    let text = ok(&run(&["data", "inspect", "eriktks/conll2003", "--split", "test"], "0"));
    assert!(text.contains("refs/convert/parquet") && text.contains("split: test: 8 rows"), "{text}");

    // Offline: the same commands from the cache, without a single request.
    let before = server.requests();
    std::fs::remove_file(&out).unwrap();
    ok(&run(&news_args, "1"));
    assert_eq!(read_jsonl(&out), read_jsonl(&fixture("data/expected/news_tiny-distilbert-seqcls.jsonl")));
    std::fs::remove_file(&conll).unwrap();
    ok(&run(&conll_args, "1"));
    assert_eq!(read_jsonl(&conll), rows);
    assert_eq!(server.requests(), before, "offline mode made requests");

    // Offline and not cached; online and unknown: errors naming the dataset.
    let o = run(&["data", "inspect", "ft-fixtures/other"], "1");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("ft-fixtures/other") && err.contains("HF_HUB_OFFLINE"), "{err}");
    let o = run(&["data", "inspect", "ft-fixtures/missing"], "0");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("ft-fixtures/missing") && err.contains("no such dataset"), "{err}");
}
