//! A disk that fills up mid-write: `ft train`, `ft predict`, `ft data tokenize` and `ft peft
//! merge` write into a small filesystem (a tmpfs mounted by the test, when the machine allows
//! it) that is full but for a few KiB. Each must fail with a clear error naming the file and the
//! cause, leave the previous outputs and checkpoints byte for byte as they were, and leave no
//! partial file behind, under the final name or a temporary one.
//!
//! Without the right to mount (not root), the same runs happen under a file-size limit
//! (`ulimit -f`, with SIGXFSZ ignored): the write fails with "File too large" instead of "No
//! space left on device", at the same point of the same code.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{copy_dir, fixture};

/// A small filesystem, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
    mounted: bool,
    _tmp: tempfile::TempDir,
}

impl SmallDisk {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("disk");
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(&dir)
            .output()
            .is_ok_and(|o| o.status.success());
        eprintln!("{}", if mounted { "a 64 MiB tmpfs" } else { "cannot mount: a file-size limit instead" });
        Self { dir, mounted, _tmp: tmp }
    }

    /// Fills the disk but for `free` bytes (tmpfs; a no-op under the file-size limit).
    fn fill_leaving(&self, free: u64) {
        if !self.mounted {
            return;
        }
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 1 << 16];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.flush();
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(free)).unwrap();
    }

    /// Empties the filler.
    fn make_room(&self) {
        let _ = std::fs::remove_file(self.dir.join("filler"));
    }

    /// Runs `ft args`; with the file-size limit, no file may grow past `free` bytes.
    fn ft(&self, args: &[&str], free: u64) -> Output {
        let mut cmd = Command::new("bash");
        let script = if self.mounted {
            "exec \"$@\"".to_string()
        } else {
            let blocks = if free >= 1 << 40 { "unlimited".to_string() } else { (free / 1024).max(1).to_string() };
            format!("trap '' XFSZ; ulimit -f {blocks}; exec \"$@\"")
        };
        cmd.arg("-c").arg(script).arg("ft").arg(env!("CARGO_BIN_EXE_ft")).args(args).env("HF_HUB_OFFLINE", "1");
        cmd.output().expect("running ft")
    }

    /// The error the write gets.
    fn cause(&self) -> &'static str {
        if self.mounted { "No space left on device" } else { "File too large" }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
    }
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Every file under `dir` (relative path → bytes), the filler aside.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if e.file_name() != "filler" {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The run failed with a clear error naming `file` and the cause; nothing that was there
/// changed; no partial file is left.
fn failed_cleanly(disk: &SmallDisk, o: &Output, what: &str, file: &str, before: &BTreeMap<PathBuf, Vec<u8>>) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{what}: succeeded on a full disk");
    assert_eq!(o.status.code(), Some(1), "{what}: not a clean error exit:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{what}: panicked:\n{stderr}");
    assert!(stderr.contains(file) && stderr.contains(disk.cause()), "{what}: unclear error:\n{stderr}");
    let after = snapshot(&disk.dir);
    for (path, bytes) in before {
        assert!(after.get(path) == Some(bytes), "{what}: {} changed or vanished", path.display());
    }
    let new: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(new.is_empty(), "{what}: left {new:?}");
    eprintln!("{what}: {}", stderr.lines().rev().find(|l| l.contains("error")).unwrap_or("").trim());
}

fn texts(dir: &Path, n: usize) -> PathBuf {
    let p = dir.join("texts.jsonl");
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({"text": format!("market news number {i} about rates and shares"), "label": i % 2})
                .to_string()
        })
        .collect();
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

#[test]
fn predict_and_tokenize_on_a_full_disk() {
    let disk = SmallDisk::new();
    let work = tempfile::tempdir().unwrap();
    let input = texts(work.path(), 3000);
    let model = fixture("models/tiny-bert-seqcls");
    let out = disk.dir.join("predictions.jsonl");
    let tokens = disk.dir.join("tokens.jsonl");
    std::fs::write(&out, "the previous predictions\n").unwrap();
    std::fs::write(&tokens, "the previous tokens\n").unwrap();
    disk.fill_leaving(16 * 1024);
    let before = snapshot(&disk.dir);
    let o = disk.ft(
        &[
            "predict",
            "--model",
            model.to_str().unwrap(),
            "--task",
            "text-classification",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        16 * 1024,
    );
    failed_cleanly(&disk, &o, "ft predict", "predictions.jsonl", &before);
    let o = disk.ft(
        &[
            "data",
            "tokenize",
            "--model",
            model.to_str().unwrap(),
            "--task",
            "text-classification",
            "--source",
            input.to_str().unwrap(),
            "--output",
            tokens.to_str().unwrap(),
        ],
        16 * 1024,
    );
    failed_cleanly(&disk, &o, "ft data tokenize", "tokens.jsonl", &before);
}

#[test]
fn train_on_a_full_disk_keeps_the_finished_run_and_its_checkpoints() {
    let disk = SmallDisk::new();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("news");
    std::fs::create_dir_all(&data).unwrap();
    let input = texts(work.path(), 48);
    std::fs::copy(&input, data.join("train.jsonl")).unwrap();
    std::fs::copy(&input, data.join("validation.jsonl")).unwrap();
    let out = disk.dir.join("run");
    let run = work.path().join("run.toml");
    std::fs::write(
        &run,
        format!(
            r#"
[model]
name = "{model}"
task = "text-classification"
num_labels = 2

[data]
source = "{data}"
eval_split = "validation"

[training]
output_dir = "{out}"
learning_rate = 1e-3
per_device_train_batch_size = 8
num_train_epochs = 1
eval_strategy = "epoch"
save_strategy = "epoch"
seed = 1
"#,
            model = fixture("models/tiny-bert-seqcls").display(),
            data = data.display(),
            out = out.display()
        ),
    )
    .unwrap();
    // A finished one-epoch run, on a disk with room.
    ok(&disk.ft(&["train", "--config", run.to_str().unwrap()], u64::MAX / 2));
    assert!(out.join("checkpoint-6").join("trainer_state.json").is_file());
    // Two more epochs from its checkpoint, on a full disk: the next checkpoint cannot be written.
    let weights = std::fs::metadata(out.join("model.safetensors")).unwrap().len();
    disk.fill_leaving(weights / 2);
    let before = snapshot(&disk.dir);
    let o = disk.ft(
        &["train", "--config", run.to_str().unwrap(), "--set", "training.num_train_epochs=3", "--resume"],
        weights / 2,
    );
    failed_cleanly(&disk, &o, "ft train", "checkpoint-12", &before);
    // With room again, the same command finishes from the intact checkpoint.
    disk.make_room();
    ok(&disk.ft(
        &["train", "--config", run.to_str().unwrap(), "--set", "training.num_train_epochs=3", "--resume"],
        u64::MAX / 2,
    ));
    assert_eq!(support::json(&out.join("trainer_state.json"))["global_step"], 18);
}

#[test]
fn peft_merge_on_a_full_disk() {
    let disk = SmallDisk::new();
    let work = tempfile::tempdir().unwrap();
    // The adapter names its base relative to the workspace: point it at the fixture.
    let adapter = work.path().join("adapter");
    copy_dir(&fixture("peft/distilbert-lora"), &adapter);
    let base = fixture("models/tiny-distilbert-seqcls");
    let merged = disk.dir.join("merged");
    let args = [
        "peft",
        "merge",
        "--model",
        base.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--output",
        merged.to_str().unwrap(),
    ];
    ok(&disk.ft(&args, u64::MAX / 2));
    let weights = std::fs::metadata(merged.join("model.safetensors")).unwrap().len();
    disk.fill_leaving(weights / 2);
    let before = snapshot(&disk.dir);
    let o = disk.ft(&args, weights / 2);
    failed_cleanly(&disk, &o, "ft peft merge", "model.safetensors", &before);
}

/// Unwritable paths: an output under a regular file, and (where the test may mount) a
/// read-only filesystem holding earlier outputs. Clear errors before any work; nothing changes.
#[test]
fn unwritable_paths_are_clear_errors() {
    let work = tempfile::tempdir().unwrap();
    let input = texts(work.path(), 10);
    let model = fixture("models/tiny-bert-seqcls");
    let blocker = work.path().join("a-file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let predict = |out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_ft"))
            .args(["predict", "--model", model.to_str().unwrap(), "--task", "text-classification", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(out)
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap()
    };
    let o = predict(&blocker.join("out.jsonl"));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("a-file") && stderr.contains("Not a directory"), "{stderr}");

    let disk = SmallDisk::new();
    if !disk.mounted {
        return; // the read-only case needs a mount; the case above ran
    }
    let out = disk.dir.join("predictions.jsonl");
    ok(&predict(&out));
    let before = snapshot(&disk.dir);
    assert!(Command::new("mount").args(["-o", "remount,ro"]).arg(&disk.dir).status().unwrap().success());
    let o = predict(&out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("predictions.jsonl") && stderr.contains("Read-only file system"), "{stderr}");
    assert_eq!(snapshot(&disk.dir), before);
}
