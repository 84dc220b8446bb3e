//! Interrupted training: `ft train` is SIGKILLed at random moments — during a step, while it
//! writes a checkpoint, while it evaluates — at least 30 times, and resumed with `--resume`
//! after each kill. Every chain of resumed runs must end with weights bit-identical to an
//! uninterrupted run, and after every kill each `checkpoint-N/` left behind must be complete
//! (half-written ones live only under hidden `.tmp-` names and are never picked up).

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::fixture;

/// The kills wanted in all.
const KILLS: usize = 30;

fn write_data(dir: &Path) -> PathBuf {
    let data = dir.join("news");
    std::fs::create_dir_all(&data).unwrap();
    let finance = ["bank", "rates", "market", "shares", "profit", "oil", "prices", "company"];
    let sport = ["team", "match", "cup", "season", "players", "coach", "win", "league"];
    let mut seed = 11u64;
    let mut next = move |n: usize| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n
    };
    for (split, n) in [("train", 64), ("validation", 96)] {
        let lines: Vec<String> = (0..n)
            .map(|i| {
                let words = if i % 2 == 0 { &finance } else { &sport };
                let text: Vec<&str> = (0..8).map(|_| words[next(8)]).collect();
                serde_json::json!({"text": text.join(" "), "label": i % 2}).to_string()
            })
            .collect();
        std::fs::write(data.join(format!("{split}.jsonl")), lines.join("\n") + "\n").unwrap();
    }
    data
}

fn run_file(dir: &Path, data: &Path) -> PathBuf {
    let path = dir.join("run.toml");
    let body = format!(
        r#"
[model]
name = "{model}"
task = "text-classification"
num_labels = 2

[data]
source = "{data}"
eval_split = "validation"

[training]
output_dir = "unused"
learning_rate = 1e-3
per_device_train_batch_size = 8
per_device_eval_batch_size = 8
num_train_epochs = 3
eval_strategy = "steps"
eval_steps = 3
save_strategy = "steps"
save_steps = 3
save_total_limit = 2
logging_steps = 2
load_best_model_at_end = true
metric_for_best_model = "accuracy"
gradient_accumulation_steps = 1
warmup_ratio = 0.1
weight_decay = 0.01
seed = 5
"#,
        model = fixture("models/tiny-bert-seqcls").display(),
        data = data.display()
    );
    std::fs::write(&path, body).unwrap();
    path
}

fn start(run: &Path, out: &Path, resume: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ft"));
    cmd.args(["train", "--config", run.to_str().unwrap(), "--set"])
        .arg(format!("training.output_dir=\"{}\"", out.display()))
        .env("HF_HUB_OFFLINE", "1")
        .env("RUST_LOG", "ft_train=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if resume {
        cmd.arg("--resume");
    }
    cmd.spawn().expect("starting ft train")
}

/// A small deterministic generator for the kill moments.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Every `checkpoint-N/` is whole: its state (written last), weights and optimizer are there
/// and the weights parse.
fn assert_checkpoints_complete(out: &Path, after: &str) {
    let Ok(entries) = std::fs::read_dir(out) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("checkpoint-") {
            let dir = entry.path();
            for file in ["trainer_state.json", "model.safetensors", "optimizer.bpk", "config.json", "rng_state.json"] {
                assert!(dir.join(file).is_file(), "{after}: {name} lacks {file}: a half-written checkpoint");
            }
            let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
            safetensors::SafeTensors::deserialize(&bytes)
                .unwrap_or_else(|e| panic!("{after}: {name}/model.safetensors is corrupt: {e}"));
            serde_json::from_str::<serde_json::Value>(
                &std::fs::read_to_string(dir.join("trainer_state.json")).unwrap(),
            )
            .unwrap_or_else(|e| panic!("{after}: {name}/trainer_state.json is corrupt: {e}"));
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Moment {
    /// A random time in the run.
    Random,
    /// Just after the run says it is writing a checkpoint.
    CheckpointWrite,
    /// Just after the run says it is evaluating.
    Evaluation,
}

#[test]
fn killed_runs_resume_to_bit_identical_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_data(tmp.path());
    let run = run_file(tmp.path(), &data);

    // The uninterrupted run.
    let reference = tmp.path().join("reference");
    let t0 = Instant::now();
    let o = start(&run, &reference, false).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let full_run = t0.elapsed();
    let want = std::fs::read(reference.join("model.safetensors")).unwrap();
    // The final model is the best checkpoint's (load_best_model_at_end); the last step's weights
    // are checked too.
    let want_last = std::fs::read(reference.join("checkpoint-24/model.safetensors")).unwrap();

    let mut rng = Rng(20261201);
    let mut kills = Vec::new();
    let mut chains = 0;
    // Kills that left a half-written `.tmp-checkpoint-N/` (which the next run must ignore).
    let mut torn_checkpoints = 0;
    while kills.len() < KILLS {
        chains += 1;
        let out = tmp.path().join(format!("chain-{chains}"));
        let mut kills_in_chain = 0;
        loop {
            let moment = match rng.below(3) {
                0 => Moment::Random,
                1 => Moment::CheckpointWrite,
                _ => Moment::Evaluation,
            };
            let mut child = start(&run, &out, true);
            let stderr = child.stderr.take().unwrap();
            let (tx, rx) = mpsc::channel::<&'static str>();
            let reader = std::thread::spawn(move || {
                let mut text = String::new();
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("writing a checkpoint") {
                        let _ = tx.send("checkpoint");
                    } else if line.contains("evaluating") {
                        let _ = tx.send("eval");
                    }
                    text.push_str(&line);
                    text.push('\n');
                }
                text
            });
            let deadline = Instant::now() + Duration::from_millis(rng.below(full_run.as_millis() as u64 + 1));
            let wanted = match moment {
                Moment::CheckpointWrite => Some("checkpoint"),
                Moment::Evaluation => Some("eval"),
                Moment::Random => None,
            };
            // Enough kills: the chain's last run goes to its end.
            let enough = kills.len() >= KILLS;
            // Wait for the moment (or the run's end).
            let killed = loop {
                if child.try_wait().unwrap().is_some() {
                    break false;
                }
                let ready = match wanted {
                    None => Instant::now() >= deadline,
                    Some(event) => rx.try_iter().any(|e| e == event),
                };
                if ready && !enough {
                    if wanted.is_some() {
                        // Somewhere inside the write or the evaluation.
                        let most = if moment == Moment::CheckpointWrite { 3 } else { 15 };
                        std::thread::sleep(Duration::from_millis(rng.below(most)));
                    }
                    break child.kill().is_ok() && child.wait().is_ok_and(|s| !s.success());
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            let text = reader.join().unwrap();
            if killed {
                kills_in_chain += 1;
                kills.push(moment);
                let half_written = std::fs::read_dir(&out)
                    .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with(".tmp-checkpoint-")))
                    .unwrap_or(false);
                if half_written {
                    torn_checkpoints += 1;
                }
                assert_checkpoints_complete(&out, &format!("kill {} ({moment:?})", kills.len()));
                continue;
            }
            let status = child.wait().unwrap();
            assert!(status.success(), "chain {chains}: the resumed run failed:\n{text}");
            break;
        }
        assert_checkpoints_complete(&out, "the finished chain");
        let got = std::fs::read(out.join("model.safetensors")).unwrap();
        assert!(
            got == want,
            "chain {chains} ({kills_in_chain} kills): the resumed run's weights differ from the uninterrupted run's"
        );
        let got_last = std::fs::read(out.join("checkpoint-24/model.safetensors")).unwrap();
        assert!(got_last == want_last, "chain {chains}: the last step's weights differ from the uninterrupted run's");
        let leftovers: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-") || n.starts_with(".deleting-") || n.contains(".partial"))
            .collect();
        assert!(leftovers.is_empty(), "chain {chains} left {leftovers:?}");
    }
    let count = |m: Moment| kills.iter().filter(|&&k| k == m).count();
    eprintln!(
        "{} kills in {chains} chains (random {}, checkpoint write {}, evaluation {}; {torn_checkpoints} left a \
         half-written checkpoint); every chain ended bit-identical (uninterrupted run: {:.1} s)",
        kills.len(),
        count(Moment::Random),
        count(Moment::CheckpointWrite),
        count(Moment::Evaluation),
        full_run.as_secs_f64()
    );
    for m in [Moment::Random, Moment::CheckpointWrite, Moment::Evaluation] {
        assert!(count(m) > 0, "no kill at {m:?}");
    }
    assert!(torn_checkpoints > 0, "no kill caught a checkpoint half-written");
}
