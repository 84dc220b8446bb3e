//! End-to-end: a model given by Hub id is downloaded through `hf-hub` from a stand-in Hub on
//! 127.0.0.1 (`HF_ENDPOINT`) into `HF_HOME`, then used from the cache with `HF_HUB_OFFLINE=1`;
//! offline with an empty cache, the error names the repository and file.

#[path = "support/hub_server.rs"]
mod hub_server;
#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use hub_server::HubServer;
use support::fixture;

#[test]
fn model_by_hub_id_through_stand_in_hub_then_offline() {
    let server = HubServer::start(HashMap::from([
        ("ft-fixtures/tiny-bert-seqcls".to_string(), fixture("models/tiny-bert-seqcls")),
        ("ft-fixtures/tiny-bert-tokcls".to_string(), fixture("models/tiny-bert-tokcls")),
    ]));
    let tmp = tempfile::tempdir().unwrap();
    let hf_home = tmp.path().join("hf-home");
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, "{\"text\": \"Angela Merkel visited Microsoft in Zürich.\"}\n").unwrap();
    let run = |model: &str, task: &str, offline: bool, out: &str| {
        Command::new(env!("CARGO_BIN_EXE_ft"))
            .args([
                "predict",
                "--model",
                model,
                "--task",
                task,
                "--input",
                input.to_str().unwrap(),
                "--output",
                tmp.path().join(out).to_str().unwrap(),
            ])
            .env("HF_HOME", &hf_home)
            .env("HF_ENDPOINT", &server.endpoint)
            .env("HF_HUB_OFFLINE", if offline { "1" } else { "0" })
            .env_remove("HF_TOKEN")
            .output()
            .unwrap()
    };

    let o = run("ft-fixtures/tiny-bert-seqcls", "text-classification", false, "a.jsonl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snapshot = hf_home.join("hub/models--ft-fixtures--tiny-bert-seqcls/snapshots").join(hub_server::COMMIT);
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        assert!(snapshot.join(f).exists(), "{f} not in the cache");
    }
    let local = Command::new(env!("CARGO_BIN_EXE_ft"))
        .args([
            "predict",
            "--model",
            fixture("models/tiny-bert-seqcls").to_str().unwrap(),
            "--task",
            "text-classification",
            "--input",
            input.to_str().unwrap(),
            "--output",
            tmp.path().join("local.jsonl").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(local.status.success());
    assert_eq!(
        std::fs::read(tmp.path().join("a.jsonl")).unwrap(),
        std::fs::read(tmp.path().join("local.jsonl")).unwrap()
    );

    // A sharded checkpoint: the index, then each shard, by id and revision.
    let o = run("ft-fixtures/tiny-bert-tokcls@main", "token-classification", false, "b.jsonl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Offline: served from the cache, no request reaches the server.
    let before = server.requests();
    let o = run("ft-fixtures/tiny-bert-seqcls", "text-classification", true, "c.jsonl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(server.requests(), before, "offline mode made requests");
    assert_eq!(std::fs::read(tmp.path().join("a.jsonl")).unwrap(), std::fs::read(tmp.path().join("c.jsonl")).unwrap());

    // Offline with nothing cached: one line naming the repository, the file and the way out.
    let o = run("ft-fixtures/not-cached", "text-classification", true, "d.jsonl");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("ft-fixtures/not-cached") && err.contains("config.json") && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Online, a repository the Hub does not have.
    let o = run("ft-fixtures/missing", "text-classification", false, "e.jsonl");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("ft-fixtures/missing") && err.contains("config.json"), "{err}");
}

/// `ft predict --model MODEL --adapter ADAPTER` once with both given as Hub ids served by the
/// stand-in Hub (`repos`: id → folder) and once from the local folders; asserts both give the
/// same predictions and returns the adapter's snapshot folder in the cache.
fn adapter_hub_and_local(repos: [(&str, &str); 2], text: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let server = HubServer::start(repos.iter().map(|(id, dir)| (id.to_string(), fixture(dir))).collect::<HashMap<_, _>>());
    let tmp = tempfile::tempdir().unwrap();
    let hf_home = tmp.path().join("hf-home");
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, serde_json::json!({ "text": text }).to_string() + "\n").unwrap();
    let run = |model: &str, adapter: &str, out: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_ft"))
            .args(["predict", "--model", model, "--adapter", adapter])
            .args(extra)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(tmp.path().join(out))
            .env("HF_HOME", &hf_home)
            .env("HF_ENDPOINT", &server.endpoint)
            .env("HF_HUB_OFFLINE", "0")
            .env_remove("HF_TOKEN")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(tmp.path().join(out)).unwrap()
    };
    let [(model_id, model_dir), (adapter_id, adapter_dir)] = repos;
    let hub = run(model_id, adapter_id, "hub.jsonl");
    let local = run(fixture(model_dir).to_str().unwrap(), fixture(adapter_dir).to_str().unwrap(), "local.jsonl");
    assert_eq!(hub, local);
    let snapshot = hf_home
        .join(format!("hub/models--{}/snapshots", adapter_id.replace('/', "--")))
        .join(hub_server::COMMIT);
    (tmp, snapshot)
}

/// `--adapter HUB_ID`: a PEFT adapter repository downloaded through the stand-in Hub, on a base
/// model downloaded the same way — the same predictions as from the local folders.
#[test]
fn adapter_by_hub_id() {
    let repos = [("ft-fixtures/tiny-gpt2", "models/tiny-gpt2"), ("ft-fixtures/tiny-gpt2-lora", "peft/gpt2-lora")];
    let (_tmp, snapshot) = adapter_hub_and_local(repos, "The cat sat", &["--task", "causal-lm"]);
    assert!(snapshot.join("adapter_model.safetensors").exists());
}

/// An AdapterHub adapter with its head, given as a Hub id: the library's files (here its
/// default `.bin` pickles) are fetched into the cache and give the local folder's predictions.
#[test]
fn adapterhub_adapter_by_hub_id() {
    let repos =
        [("ft-fixtures/tiny-bert", "models/tiny-bert"), ("ft-fixtures/tiny-bert-houlsby", "adapters/bert-houlsby")];
    let (_tmp, snapshot) = adapter_hub_and_local(repos, "The team won the match", &[]);
    for f in ["adapter_config.json", "pytorch_adapter.bin", "head_config.json", "pytorch_model_head.bin"] {
        assert!(snapshot.join(f).exists(), "{f} not fetched");
    }
}
