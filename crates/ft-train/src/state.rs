//! `trainer_state.json` and the checkpoint folders, as transformers writes them.
//!
//! A checkpoint `checkpoint-N/` holds the model in its method's layout (for full fine-tuning the
//! Hub's: `config.json`, `model.safetensors`, tokenizer files — loadable by `from_pretrained`
//! and `ft predict`; for adapters PEFT's), the training state ft needs to resume bit for bit
//! (`optimizer.bpk`: AdamW's moments, keyed by parameter ids that are derived from the Hub names
//! so that they match the model read back from the weights file; `rng_state.json`), and
//! `trainer_state.json`. The weights are written once. It is written to `.tmp-checkpoint-N/` and renamed into place, so a
//! killed run never leaves a half-written `checkpoint-N/`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::io;
use crate::{Result, TrainError};

/// transformers' `TrainerState` (the fields ft fills).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainerState {
    /// Fractional epoch reached.
    pub epoch: f64,
    /// Optimizer steps done.
    pub global_step: usize,
    /// Total optimizer steps of the run.
    pub max_steps: usize,
    /// Epochs of the run.
    pub num_train_epochs: usize,
    /// `logging_steps`.
    pub logging_steps: usize,
    /// `eval_steps`.
    pub eval_steps: usize,
    /// `save_steps`.
    pub save_steps: usize,
    /// `per_device_train_batch_size`.
    pub train_batch_size: usize,
    /// The best value of `metric_for_best_model` so far.
    pub best_metric: Option<f64>,
    /// The checkpoint that holds it.
    pub best_model_checkpoint: Option<String>,
    /// The step it was reached at.
    #[serde(default)]
    pub best_global_step: Option<usize>,
    /// Every log, evaluation and the final summary, in order.
    pub log_history: Vec<Value>,
    /// Evaluations since the best one (early stopping).
    #[serde(default)]
    pub early_stopping_patience_counter: usize,
    /// Always true (one process).
    pub is_local_process_zero: bool,
    /// Always true (one process).
    pub is_world_process_zero: bool,
    /// transformers' FLOPs estimate of the training so far (`6 · tokens · non-embedding
    /// parameters` per batch). 0 where transformers counts none: its `Trainer` asks the model's
    /// `floating_point_ops`, which only `PreTrainedModel`s have — the notebook's §5 head on a
    /// frozen encoder is a plain `nn.Module`, so ft's frozen method reports 0 as it does.
    #[serde(default)]
    pub total_flos: f64,
    /// The sum of every optimizer step's mean loss so far (transformers' `_total_loss_scalar`);
    /// `train_loss` is it divided by the steps. Kept so that a resumed run reports the same.
    #[serde(default, rename = "ft_total_loss")]
    pub total_loss: f64,
    /// §14's pitfalls found in this run (overfitting, label leakage, forgetting): see
    /// [`crate::pitfalls`]. Empty when the checks found nothing.
    #[serde(default, rename = "ft_pitfalls")]
    pub pitfalls: Vec<crate::pitfalls::Pitfall>,
    /// The trained model's parameters: those the method trains and all (PEFT's
    /// `print_trainable_parameters` numbers; the frozen method's encoder counts in `total`).
    #[serde(default, rename = "ft_parameters", skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

/// Trainable and total parameter counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Parameters {
    /// Parameters the optimizer updates.
    pub trainable: usize,
    /// All parameters of the model (frozen ones included).
    pub total: usize,
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ft_models::export::write_atomic(path, bytes).map_err(TrainError::from)
}

/// Writes a JSON value atomically, pretty-printed as transformers writes its JSON files.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| TrainError::State(format!("{}: {e}", path.display())))?;
    write_atomic(path, &bytes)
}

/// Reads a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| TrainError::State(format!("{}: {e}", path.display())))
}

/// `checkpoint-N` directories of `output_dir`, oldest first.
pub fn checkpoints(output_dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(output_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(TrainError::Io { path: output_dir.to_path_buf(), error: e }),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_prefix("checkpoint-").and_then(|n| n.parse::<usize>().ok()) {
            if entry.path().join("trainer_state.json").is_file() {
                found.push((n, entry.path()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Deletes a checkpoint folder without ever leaving a partly deleted `checkpoint-N/` behind: it
/// is first renamed to `.deleting-checkpoint-N` (atomic), then removed. A run killed in between
/// leaves only a hidden folder, which [`clean_leftovers`] removes on the next run.
pub fn remove_checkpoint(path: &Path) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let doomed = path.with_file_name(format!(".deleting-{name}"));
    if doomed.exists() {
        std::fs::remove_dir_all(&doomed).map_err(io(&doomed))?;
    }
    std::fs::rename(path, &doomed).map_err(io(path))?;
    std::fs::remove_dir_all(&doomed).map_err(io(&doomed))
}

/// Tidies what a killed run can leave in `output_dir`. A `.tmp-checkpoint-N/` whose
/// `trainer_state.json` (written last) is there is complete: it becomes `checkpoint-N/` when
/// that does not exist (the run was killed between removing an old `checkpoint-N/` and the
/// rename); any other is half-written and removed, as are `.deleting-checkpoint-N/` folders and
/// the hidden `.NAME.partial-PID` files of interrupted atomic writes. None of them is ever read.
pub fn clean_leftovers(output_dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(output_dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if let Some(checkpoint) = name.strip_prefix(".tmp-") {
            if !checkpoint.starts_with("checkpoint-") || !path.is_dir() {
                continue;
            }
            let finished = output_dir.join(checkpoint);
            if path.join("trainer_state.json").is_file() && !finished.exists() {
                tracing::debug!(folder = %finished.display(), "completing a checkpoint an interrupted run wrote");
                std::fs::rename(&path, &finished).map_err(io(&finished))?;
            } else {
                tracing::debug!(folder = %path.display(), "removing a half-written checkpoint");
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
            }
        } else if name.starts_with(".deleting-checkpoint-") && path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        } else if name.starts_with('.') && name.contains(".partial-") && path.is_file() {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// The newest complete checkpoint of `output_dir`.
pub fn last_checkpoint(output_dir: &Path) -> Result<Option<PathBuf>> {
    Ok(checkpoints(output_dir)?.pop().map(|(_, p)| p))
}

/// Creates `output_dir` and checks that files can be written there, before any work is done.
pub fn ensure_writable(output_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(output_dir).map_err(io(output_dir))?;
    let probe = output_dir.join(format!(".ft-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"ok").map_err(io(output_dir))?;
    std::fs::remove_file(&probe).map_err(io(&probe))
}

/// Deletes the oldest checkpoints beyond `limit`, never `keep` (the best one) — transformers'
/// `_rotate_checkpoints`.
pub fn rotate(output_dir: &Path, limit: usize, keep: Option<&Path>) -> Result<()> {
    let all = checkpoints(output_dir)?;
    let mut excess = all.len().saturating_sub(limit.max(1));
    for (_, path) in all {
        if excess == 0 {
            break;
        }
        if keep.is_some_and(|k| k == path) {
            continue;
        }
        remove_checkpoint(&path)?;
        excess -= 1;
    }
    Ok(())
}
