//! The training loop, with transformers' `Trainer` semantics, for any [`TrainTask`].
//!
//! Per optimizer step: `gradient_accumulation_steps` micro-batches, each loss divided by the
//! number of micro-batches of that step; gradients clipped to `max_grad_norm` by their global
//! norm; the learning rate of [`crate::schedule`] for the step; AdamW. Logging, evaluation and
//! checkpoints follow `logging_strategy`/`eval_strategy`/`save_strategy` as transformers does
//! (`steps`: every N optimizer steps; `epoch`: at the end of each epoch), and the log entries
//! carry transformers' keys (`loss`, `grad_norm`, `learning_rate`, `epoch`, `step`, `eval_*`).
//!
//! The loop is made of pieces it calls: the [`TrainTask`] (batches, forward + loss, metrics),
//! the [`ModelStore`] (saving and restoring the trained model in its method's layout),
//! [`Callbacks`] (where log entries go), [`BestModel`] (best-metric tracking and early stopping)
//! and [`crate::state`] (checkpoint folders). It emits `tracing` events and prints nothing.
//!
//! Determinism: the training order of epoch `e` is NumPy's `default_rng(seed + e).permutation`
//! (or transformers' length grouping with it), and Burn's RNG is reseeded from
//! `(seed, step, micro-batch)` before every forward pass, so dropout masks depend only on the
//! position in the run. A run resumed from `checkpoint-N` therefore ends with the same weights as
//! an uninterrupted one, bit for bit on the CPU.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};
use ft_data::collate::group_by_length;
use ft_data::rng::permutation;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::args::{IntervalStrategy, TrainingArguments};
use crate::optim::AdamWOptimizer;
use crate::schedule::learning_rate;
use crate::state::{TrainerState, last_checkpoint, read_json, rotate, write_json};
use crate::task::{Predictions, Split, TrainTask};
use crate::{Result, TrainError};

/// Saves and restores the trained model in its method's layout (a full model in the Hub's,
/// an adapter in PEFT's, ...): what a checkpoint folder and the final output hold.
pub trait ModelStore<M> {
    /// Writes the model into `dir` (an existing, empty or stale folder; files written
    /// atomically).
    fn save(&self, model: &M, dir: &Path) -> Result<()>;

    /// Writes the model into a checkpoint folder: what [`save`](Self::save) writes, plus whatever
    /// [`restore`](Self::restore) needs beyond it to continue training exactly.
    fn save_checkpoint(&self, model: &M, dir: &Path) -> Result<()> {
        self.save(model, dir)
    }

    /// Reads the weights saved by [`save`](Self::save) in `dir` back into `model`, with the
    /// same parameter ids (so a saved optimizer state applies) and the same trainability.
    fn restore(&self, model: M, dir: &Path) -> Result<M>;
}

/// Where the loop's events go (transformers' `TrainerCallback`); every method has a no-op
/// default.
pub trait Callbacks {
    /// A log entry, as appended to `log_history` (training loss, an evaluation, the summary).
    fn on_log(&mut self, _entry: &Value) {}
}

/// Callbacks that do nothing.
#[derive(Debug, Default)]
pub struct NoCallbacks;

impl Callbacks for NoCallbacks {}

/// Options of [`fit`] beyond the training arguments.
pub struct FitOptions<'a> {
    /// Continue from the newest checkpoint of the output directory.
    pub resume: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Where log entries go.
    pub callbacks: &'a mut dyn Callbacks,
    /// The optimizer (with its parameter groups).
    pub optimizer: AdamWOptimizer,
    /// Seconds spent before the loop that count as training time (the frozen method's
    /// one-off feature extraction of the training rows), reported as
    /// `feature_extraction_runtime` too.
    pub setup_seconds: f64,
    /// Pitfalls found before training (label leakage), recorded in the state's `ft_pitfalls`.
    pub pitfalls: Vec<crate::pitfalls::Pitfall>,
    /// Parameters of the model that are not in the trained module (the frozen method's encoder,
    /// which runs outside it), counted in the state's total.
    pub frozen_params: usize,
}

/// What [`fit`] returns.
#[derive(Debug)]
pub struct FitOutcome<M> {
    /// The trained model (the best one with `load_best_model_at_end`).
    pub model: M,
    /// The final state (`log_history`, best metric, ...).
    pub state: TrainerState,
    /// `train_runtime`, `train_samples_per_second`, `train_loss`, ...
    pub train_metrics: BTreeMap<String, f64>,
    /// The final model's evaluation, when there is evaluation data.
    pub eval: Option<(BTreeMap<String, f64>, Predictions)>,
}

/// Mixes the seed, the optimizer step and the micro-batch into Burn's RNG seed.
fn step_seed(seed: u64, step: usize, micro: usize) -> u64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for v in [step as u64, micro as u64] {
        h = (h ^ v).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 31;
    }
    h
}

/// Rounds to 4 decimals, as transformers rounds logged values.
pub fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

fn progress_bar(show: bool, len: u64, unit: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} [{{elapsed_precise}} < {{eta_precise}}] {{msg}}");
    bar.set_style(ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar
}

/// A progress bar for work done before the loop (e.g. feature extraction), shown when `show`.
pub fn setup_bar(show: bool, len: u64, unit: &str) -> ProgressBar {
    progress_bar(show, len, unit)
}

/// Best-metric tracking (`metric_for_best_model`, `greater_is_better`) and early stopping
/// (transformers' `EarlyStoppingCallback`), over the trainer state.
#[derive(Debug)]
pub struct BestModel<'a> {
    args: &'a TrainingArguments,
}

impl BestModel<'_> {
    /// Updates the best metric from an evaluation at the current step; `checkpoint` is the
    /// folder saved at this step, if any. Returns true when early stopping says to stop.
    pub fn update(&self, state: &mut TrainerState, metrics: &BTreeMap<String, f64>, checkpoint: Option<&Path>) -> bool {
        let key = self.args.best_metric_key();
        let Some(&value) = metrics.get(&key) else { return false };
        let greater = self.args.greater_is_better();
        let improved = match state.best_metric {
            None => true,
            Some(best) => {
                if greater {
                    value > best
                } else {
                    value < best
                }
            }
        };
        let significant = match state.best_metric {
            None => true,
            Some(best) => (if greater { value - best } else { best - value }) > self.args.early_stopping_threshold,
        };
        if improved {
            state.best_metric = Some(value);
            state.best_global_step = Some(state.global_step);
            if let Some(dir) = checkpoint {
                state.best_model_checkpoint = Some(dir.display().to_string());
            }
        }
        if significant {
            state.early_stopping_patience_counter = 0;
        } else {
            state.early_stopping_patience_counter += 1;
        }
        self.args.early_stopping_patience.is_some_and(|p| state.early_stopping_patience_counter >= p)
    }
}

struct Run<'a, 'c, T: TrainTask> {
    task: &'a T,
    args: &'a TrainingArguments,
    store: &'a dyn ModelStore<T::Model>,
    plain: Device,
    state: TrainerState,
    output_dir: PathBuf,
    callbacks: &'c mut dyn Callbacks,
    bar: ProgressBar,
}

impl<T: TrainTask> Run<'_, '_, T> {
    fn log(&mut self, entry: Value) {
        tracing::info!(target: "ft_train::log", entry = %entry, "log");
        let callbacks = &mut *self.callbacks;
        self.bar.suspend(|| callbacks.on_log(&entry));
        self.state.log_history.push(entry);
    }

    /// Evaluates on the evaluation examples: `eval_loss` plus the task's metrics.
    fn evaluate(&self, model: &T::Model) -> Result<(BTreeMap<String, f64>, Predictions)> {
        let start = Instant::now();
        tracing::debug!(step = self.state.global_step, "evaluating");
        let model = model.valid();
        let bs = self.args.per_device_eval_batch_size;
        let n = self.task.len(Split::Eval);
        let order = self.task.eval_order().filter(|o| {
            let ok = is_permutation(o, n);
            if !ok {
                tracing::warn!(
                    rows = n,
                    given = o.len(),
                    "the task's evaluation order is not a permutation of its rows; using theirs"
                );
            }
            ok
        });
        let all: Vec<usize> = order.clone().unwrap_or_else(|| (0..n).collect());
        let (mut loss_sum, mut rows) = (0.0f64, 0usize);
        // Per-row loss terms in evaluation order, when the task has them.
        let (mut terms, mut batches_without_terms): (Option<Vec<(f64, usize)>>, usize) = (None, 0);
        let mut evaluator = self.task.evaluator();
        let chunks: Vec<&[usize]> = all.chunks(bs).collect();
        for (ci, chunk) in chunks.iter().enumerate() {
            let batch = self.task.batch(Split::Eval, chunk, &self.plain)?;
            if let Some(next) = chunks.get(ci + 1) {
                self.task.prefetch(Split::Eval, next);
            }
            let (loss, outputs) = self.task.forward(&model, &batch)?;
            loss_sum += scalar(loss) as f64 * chunk.len() as f64;
            rows += chunk.len();
            match self.task.eval_loss_terms(&outputs)? {
                Some(t) if t.len() != chunk.len() => {
                    return Err(TrainError::State(format!(
                        "the task gave loss terms for {} rows of an evaluation batch of {}",
                        t.len(),
                        chunk.len()
                    )));
                }
                Some(t) => terms.get_or_insert_with(Vec::new).extend(t),
                None => batches_without_terms += 1,
            }
            evaluator.add(outputs)?;
        }
        let runtime = start.elapsed().as_secs_f64() + self.task.eval_setup_seconds();
        let (mut m, preds) = evaluator.finish()?;
        let preds = match (order, preds) {
            (Some(order), Some(p)) => Some(in_example_order(p, &order)?),
            (_, p) => p,
        };
        if terms.is_some() && batches_without_terms > 0 {
            return Err(TrainError::State(format!(
                "the task gave loss terms for some evaluation batches and not for {batches_without_terms} others"
            )));
        }
        let eval_loss = match terms {
            Some(t) if t.len() == rows => loss_over_example_batches(&t, &all, bs),
            _ => loss_sum / rows.max(1) as f64,
        };
        m.insert("eval_loss".to_string(), eval_loss);
        m.insert("eval_runtime".into(), round4(runtime));
        m.insert("eval_samples_per_second".into(), round3(rows as f64 / runtime.max(1e-9)));
        m.insert("eval_steps_per_second".into(), round3(rows.div_ceil(bs) as f64 / runtime.max(1e-9)));
        Ok((m, preds.unwrap_or_default()))
    }

    /// Writes `checkpoint-N/` atomically (the model in its method's layout, the optimizer, the
    /// RNG scheme, the schedule, the arguments and the state) and rotates old ones.
    fn save_checkpoint(&self, model: &T::Model, optimizer: &AdamWOptimizer) -> Result<PathBuf> {
        let name = format!("checkpoint-{}", self.state.global_step);
        tracing::debug!(step = self.state.global_step, "writing a checkpoint");
        let final_dir = self.output_dir.join(&name);
        let tmp = self.output_dir.join(format!(".tmp-{name}"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(crate::error::io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(crate::error::io(&tmp))?;
        let result = (|| -> Result<()> {
            self.store.save_checkpoint(model, &tmp)?;
            let optimizer_file = tmp.join("optimizer.bpk");
            optimizer
                .save(&optimizer_file)
                .map_err(|e| TrainError::State(format!("{}: {e}", optimizer_file.display())))?;
            write_json(
                &tmp.join("rng_state.json"),
                &json!({"seed": self.args.seed, "global_step": self.state.global_step, "scheme": "reseeded from (seed, step, micro-batch)"}),
            )?;
            write_json(
                &tmp.join("scheduler.json"),
                &json!({"lr_scheduler_type": self.args.lr_scheduler_type, "global_step": self.state.global_step}),
            )?;
            write_json(&tmp.join("training_args.json"), self.args)?;
            write_json(&tmp.join("trainer_state.json"), &self.state)?;
            if final_dir.exists() {
                crate::state::remove_checkpoint(&final_dir)?;
            }
            std::fs::rename(&tmp, &final_dir).map_err(crate::error::io(&final_dir))
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if let Some(limit) = self.args.save_total_limit {
            let best = self.state.best_model_checkpoint.as_ref().map(PathBuf::from);
            rotate(&self.output_dir, limit, best.as_deref())?;
        }
        tracing::info!(checkpoint = %final_dir.display(), "saved");
        Ok(final_dir)
    }
}

/// Whether `order` holds each of `0..n` once.
fn is_permutation(order: &[usize], n: usize) -> bool {
    let mut seen = vec![false; n];
    order.len() == n && order.iter().all(|&i| i < n && !std::mem::replace(&mut seen[i], true))
}

/// transformers' `eval_loss` from per-row loss terms `(sum, count)` made in `order` (row
/// `order[i]`'s terms at position `i`): the examples, in their own order, cut into batches of
/// `batch_size`; each batch's mean term (`Σ sums / max(Σ counts, 1)`, as
/// [`crate::loss::cross_entropy`]) weighted by its rows; divided by the rows.
fn loss_over_example_batches(terms: &[(f64, usize)], order: &[usize], batch_size: usize) -> f64 {
    let mut by_row = vec![(0.0, 0); terms.len()];
    for (&t, &row) in terms.iter().zip(order) {
        by_row[row] = t;
    }
    let total: f64 = by_row
        .chunks(batch_size.max(1))
        .map(|batch| {
            let (sum, count) = batch.iter().fold((0.0, 0), |(s, c), t| (s + t.0, c + t.1));
            sum / count.max(1) as f64 * batch.len() as f64
        })
        .sum();
    total / by_row.len().max(1) as f64
}

/// Predictions made in `order` (row `order[i]`'s entries at position `i`), put back in the
/// examples' order: one entry per example, or [`Predictions::per_example`] entries each.
fn in_example_order(p: Predictions, order: &[usize]) -> Result<Predictions> {
    let counts = if p.per_example.is_empty() { vec![1; p.predictions.len()] } else { p.per_example.clone() };
    let total: usize = counts.iter().sum();
    if counts.len() != order.len() || p.predictions.len() != total || p.references.len() != total {
        return Err(TrainError::State(format!(
            "an evaluation in another order than the examples' must say which predictions each example made ({} {}s, {} examples' counts adding up to {total}, for {} examples)",
            p.predictions.len(),
            p.unit,
            counts.len(),
            order.len()
        )));
    }
    // Where each evaluated position's entries start, then the examples' spans in their order.
    let mut spans = vec![0..0; order.len()];
    let mut start = 0;
    for (&row, &count) in order.iter().zip(&counts) {
        spans[row] = start..start + count;
        start += count;
    }
    let (mut predictions, mut references) = (Vec::with_capacity(total), Vec::with_capacity(total));
    let mut per_example = Vec::with_capacity(order.len());
    for span in spans {
        per_example.push(span.len());
        predictions.extend_from_slice(&p.predictions[span.clone()]);
        references.extend_from_slice(&p.references[span]);
    }
    let per_example = if p.per_example.is_empty() { Vec::new() } else { per_example };
    Ok(Predictions { predictions, references, unit: p.unit, per_example })
}

fn scalar(t: Tensor<1>) -> f32 {
    t.into_scalar::<f32>()
}

fn due(strategy: IntervalStrategy, step: usize, every: usize, end_of_epoch: bool) -> bool {
    match strategy {
        IntervalStrategy::Steps => step % every == 0,
        IntervalStrategy::Epoch => end_of_epoch,
        IntervalStrategy::No => false,
    }
}

/// Trains `model` on `task` as `args` says, on `device` (made autodiff here), writing
/// checkpoints into `args.output_dir`. Returns the trained model (not yet saved as final) with
/// the run's metrics and, when there is evaluation data, the final model's evaluation.
pub fn fit<T: TrainTask>(
    task: &T,
    mut model: T::Model,
    store: &dyn ModelStore<T::Model>,
    args: &TrainingArguments,
    options: FitOptions<'_>,
    device: &Device,
) -> Result<FitOutcome<T::Model>> {
    let FitOptions { resume, progress, callbacks, mut optimizer, setup_seconds, pitfalls, frozen_params } = options;
    let output_dir = args.output_dir.clone();
    let plain = device.clone().without_autodiff();
    let ad = plain.clone().autodiff();
    let has_eval = task.len(Split::Eval) > 0;
    if args.load_best_model_at_end || args.metric_for_best_model.is_some() {
        let key = args.best_metric_key();
        let mut known = vec!["eval_loss".to_string()];
        known.extend(task.metric_names());
        if !known.contains(&key) {
            return Err(TrainError::Config(format!(
                "training.metric_for_best_model: '{key}' is not among this task's evaluation metrics ({})",
                known.join(", ")
            )));
        }
    }

    // Schedule.
    let n = task.len(Split::Train);
    let bs = args.per_device_train_batch_size;
    let batches_per_epoch = if args.dataloader_drop_last { n / bs } else { n.div_ceil(bs) };
    if batches_per_epoch == 0 {
        return Err(TrainError::Config(format!(
            "training.per_device_train_batch_size {bs} is larger than the {n} training rows with dataloader_drop_last"
        )));
    }
    let accum = args.gradient_accumulation_steps;
    let steps_per_epoch = batches_per_epoch.div_ceil(accum).max(1);
    let total_steps = if args.max_steps > 0 {
        args.max_steps as usize
    } else {
        (args.num_train_epochs * steps_per_epoch as f64).ceil() as usize
    };
    let num_epochs = total_steps.div_ceil(steps_per_epoch);
    let warmup = args.warmup(total_steps);
    let mut state = TrainerState {
        is_local_process_zero: true,
        is_world_process_zero: true,
        max_steps: total_steps,
        num_train_epochs: num_epochs,
        logging_steps: args.logging_steps,
        eval_steps: args.eval_steps(),
        save_steps: args.save_steps,
        train_batch_size: bs,
        ..Default::default()
    };

    // What a killed run left (half-written checkpoints) is never read: remove it.
    crate::state::clean_leftovers(&output_dir)?;
    // Resume.
    if resume {
        match last_checkpoint(&output_dir)? {
            Some(ckpt) => {
                model = store.restore(model, &ckpt)?;
                optimizer = optimizer
                    .load(&ckpt.join("optimizer.bpk"))
                    .map_err(|e| TrainError::State(format!("{}: cannot restore the optimizer: {e}", ckpt.display())))?;
                state = read_json(&ckpt.join("trainer_state.json"))?;
                tracing::info!(checkpoint = %ckpt.display(), step = state.global_step, "resuming");
            }
            None => {
                tracing::warn!(output_dir = %output_dir.display(), "--resume: no checkpoint yet, starting from scratch")
            }
        }
    }

    let count = ft_models::params::ParameterCount::of(&model);
    state.parameters =
        Some(crate::state::Parameters { trainable: count.trainable, total: count.total + frozen_params });
    for p in pitfalls {
        // A resumed run's state already holds what the first run found.
        if !state.pitfalls.iter().any(|q| q.kind == p.kind && q.message == p.message) {
            state.pitfalls.push(p);
        }
    }
    let bar = progress_bar(progress, total_steps as u64, "steps");
    bar.set_position(state.global_step as u64);
    let mut run =
        Run { task, args, store, plain: plain.clone(), state, output_dir: output_dir.clone(), callbacks, bar };
    let best = BestModel { args };
    let start = Instant::now();
    let start_step = run.state.global_step;
    // Loss since the last log entry, and over the whole run (transformers' `tr_loss` and
    // `_total_loss_scalar`; the latter is kept in the state so a resumed run reports the same).
    let mut window_loss = 0.0f64;
    let mut logged_at = run.state.global_step;
    // Training loss since the last evaluation, for the overfitting watch.
    let (mut eval_window_loss, mut eval_window_steps) = (0.0f64, 0usize);
    let mut overfit = crate::pitfalls::OverfitWatch::new(args.overfitting_patience);
    let mut stop = false;
    let lengths = task.lengths();
    'epochs: for epoch in run.state.global_step / steps_per_epoch..num_epochs {
        let order = if args.group_by_length {
            group_by_length(&lengths, bs, args.seed.wrapping_add(epoch as u64))
        } else {
            permutation(n, args.seed.wrapping_add(epoch as u64))
        };
        let batches: Vec<&[usize]> = order.chunks(bs).take(batches_per_epoch).collect();
        task.set_epoch(epoch);
        let skip = (run.state.global_step - epoch * steps_per_epoch) * accum;
        let mut accumulator = GradientsAccumulator::<T::Model>::new();
        let mut micro_in_step = 0;
        for (bi, chunk) in batches.iter().enumerate().skip(skip) {
            let step_micro_total = accum.min(batches.len() - (bi / accum) * accum);
            ad.seed(step_seed(args.seed, run.state.global_step, micro_in_step));
            let t0 = Instant::now();
            let batch = task.batch(Split::Train, chunk, &ad)?;
            if let Some(next) = batches.get(bi + 1) {
                task.prefetch(Split::Train, next);
            }
            run.state.total_flos += task.flops(&batch);
            let loss = task.train_loss(&model, &batch)?;
            let value = scalar(loss.clone());
            let t_forward = t0.elapsed();
            if !value.is_finite() {
                let last =
                    last_checkpoint(&output_dir)?.map(|p| p.display().to_string()).unwrap_or_else(|| "none".into());
                return Err(TrainError::NonFiniteLoss {
                    step: run.state.global_step + 1,
                    epoch: epoch as f64 + bi as f64 / batches.len() as f64,
                    value,
                    last_checkpoint: last,
                });
            }
            // Each micro-batch's share of the step: 1 / micro-batches, or the task's own weight
            // (causal LM: its share of the step's label tokens, as transformers'
            // `num_items_in_batch`).
            let step_start = (bi / accum) * accum;
            let weight = task.micro_batch_weight(chunk, &batches[step_start..step_start + step_micro_total]);
            let scaled = match weight {
                Some(w) => loss * w,
                None => loss / step_micro_total as f64,
            };
            let grads = GradientsParams::from_grads(scaled.backward(), &model);
            let t_backward = t0.elapsed();
            accumulator.accumulate(&model, grads);
            let contribution = match weight {
                Some(w) => value as f64 * w,
                None => value as f64 / step_micro_total as f64,
            };
            window_loss += contribution;
            eval_window_loss += contribution;
            run.state.total_loss += contribution;
            micro_in_step += 1;
            if micro_in_step < step_micro_total {
                continue;
            }
            micro_in_step = 0;
            eval_window_steps += 1;
            let grads = accumulator.grads();
            let lr =
                learning_rate(args.lr_scheduler_type, args.learning_rate, run.state.global_step, total_steps, warmup);
            let grad_norm;
            (model, grad_norm) = optimizer.clip_and_step(lr, model, grads, args.max_grad_norm);
            tracing::debug!(
                forward_ms = t_forward.as_secs_f64() * 1e3,
                backward_ms = (t_backward - t_forward).as_secs_f64() * 1e3,
                clip_and_optimizer_ms = (t0.elapsed() - t_backward).as_secs_f64() * 1e3,
                "step timings (last micro-batch)"
            );
            run.state.global_step += 1;
            run.state.epoch = epoch as f64 + (bi + 1) as f64 / batches.len() as f64;
            run.bar.inc(1);
            let step = run.state.global_step;
            let end_of_epoch = bi + 1 == batches.len();
            let last_step = step >= total_steps;

            let log_now = due(args.logging_strategy, step, args.logging_steps, end_of_epoch)
                || (args.logging_strategy == IntervalStrategy::Steps && args.logging_first_step && step == 1);
            if log_now && step > logged_at {
                let next_lr = learning_rate(args.lr_scheduler_type, args.learning_rate, step, total_steps, warmup);
                let entry = json!({
                    "loss": round4(window_loss / (step - logged_at) as f64),
                    "grad_norm": grad_norm,
                    "learning_rate": next_lr,
                    "epoch": run.state.epoch,
                    "step": step,
                });
                run.log(entry);
                window_loss = 0.0;
                logged_at = step;
            }
            let mut metrics = None;
            if has_eval && due(args.eval_strategy, step, args.eval_steps(), end_of_epoch) {
                let (m, _) = run.evaluate(&model)?;
                run.log(metrics_entry(&m, run.state.epoch, step));
                if let Some(&eval_loss) = m.get("eval_loss") {
                    let train_loss = eval_window_loss / eval_window_steps.max(1) as f64;
                    if let Some(p) = overfit.observe(step, train_loss, eval_loss) {
                        p.log();
                        run.state.pitfalls.push(p);
                    }
                }
                (eval_window_loss, eval_window_steps) = (0.0, 0);
                metrics = Some(m);
            }
            let save_now = due(args.save_strategy, step, args.save_steps, end_of_epoch);
            if let Some(m) = &metrics {
                let checkpoint = save_now.then(|| run.output_dir.join(format!("checkpoint-{step}")));
                stop = best.update(&mut run.state, m, checkpoint.as_deref());
            }
            if save_now {
                run.save_checkpoint(&model, &optimizer)?;
            }
            if stop || last_step {
                break 'epochs;
            }
        }
    }
    run.bar.finish_and_clear();
    let runtime = start.elapsed().as_secs_f64() + setup_seconds;
    let steps_done = run.state.global_step - start_step;
    let samples = (steps_done * bs * accum) as f64;
    if args.load_best_model_at_end {
        if let Some(best) = run.state.best_model_checkpoint.clone() {
            model = store.restore(model, Path::new(&best))?;
            tracing::info!(checkpoint = %best, "loaded the best model");
        }
    }
    let mut train_metrics: BTreeMap<String, f64> = BTreeMap::new();
    train_metrics.insert("train_runtime".into(), round4(runtime));
    train_metrics.insert("train_samples_per_second".into(), round3(samples / runtime.max(1e-9)));
    train_metrics.insert("train_steps_per_second".into(), round3(steps_done as f64 / runtime.max(1e-9)));
    // transformers: the total of every step's loss over the number of steps.
    train_metrics.insert("train_loss".into(), run.state.total_loss / run.state.global_step.max(1) as f64);
    train_metrics.insert("epoch".into(), run.state.epoch);
    if setup_seconds > 0.0 {
        train_metrics.insert("feature_extraction_runtime".into(), round4(setup_seconds));
    }
    let mut summary: serde_json::Map<String, Value> =
        train_metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    summary.insert("step".into(), json!(run.state.global_step));
    summary.insert("total_flos".into(), json!(run.state.total_flos));
    run.log(Value::Object(summary));
    let eval = if has_eval { Some(run.evaluate(&model)?) } else { None };
    Ok(FitOutcome { model, state: run.state, train_metrics, eval })
}

/// The mean loss of `model` over the evaluation examples of `task` (batches of `batch_size`,
/// weighted by rows), without dropout: what probes such as the forgetting check measure.
pub fn mean_eval_loss<T: TrainTask>(task: &T, model: &T::Model, batch_size: usize, device: &Device) -> Result<f64> {
    let plain = device.clone().without_autodiff();
    let model = model.valid();
    let all: Vec<usize> = (0..task.len(Split::Eval)).collect();
    let (mut sum, mut rows) = (0.0f64, 0usize);
    for chunk in all.chunks(batch_size.max(1)) {
        let batch = task.batch(Split::Eval, chunk, &plain)?;
        let (loss, _) = task.forward(&model, &batch)?;
        sum += scalar(loss) as f64 * chunk.len() as f64;
        rows += chunk.len();
    }
    Ok(sum / rows.max(1) as f64)
}

fn metrics_entry(m: &BTreeMap<String, f64>, epoch: f64, step: usize) -> Value {
    let mut entry: serde_json::Map<String, Value> = m.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    entry.insert("epoch".into(), json!(epoch));
    entry.insert("step".into(), json!(step));
    Value::Object(entry)
}

#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn predictions_made_in_another_order_go_back_to_the_examples_order() {
        assert!(is_permutation(&[2, 0, 1], 3));
        assert!(!is_permutation(&[2, 0, 0], 3));
        assert!(!is_permutation(&[0, 1], 3));
        assert!(!is_permutation(&[0, 1, 3], 3));
        // Rows 2, 0, 1 were evaluated in that order.
        let p = Predictions {
            predictions: vec![22, 0, 11],
            references: vec![2, 0, 1],
            unit: "example",
            per_example: Vec::new(),
        };
        let back = in_example_order(p, &[2, 0, 1]).unwrap();
        assert_eq!(back.predictions, vec![0, 11, 22]);
        assert_eq!(back.references, vec![0, 1, 2]);
        assert!(back.per_example.is_empty());
        // Tokens: example 1 (3 tokens) was evaluated before example 0 (1 token), example 2 has none.
        let tokens = Predictions {
            predictions: vec![10, 11, 12, 0],
            references: vec![20, 21, 22, 1],
            unit: "token",
            per_example: vec![3, 0, 1],
        };
        let back = in_example_order(tokens.clone(), &[1, 2, 0]).unwrap();
        assert_eq!(back.predictions, vec![0, 10, 11, 12]);
        assert_eq!(back.references, vec![1, 20, 21, 22]);
        assert_eq!(back.per_example, vec![1, 3, 0]);
        // Counts that do not add up to the entries, or one example short: an error.
        let mut bad = tokens.clone();
        bad.per_example = vec![3, 0, 2];
        assert!(in_example_order(bad, &[1, 2, 0]).is_err());
        let no_counts = Predictions { per_example: Vec::new(), ..tokens };
        assert!(in_example_order(no_counts, &[1, 0]).is_err());
    }

    #[test]
    fn eval_loss_is_that_of_the_examples_own_batches_whatever_the_order() {
        // Rows 0..4 with (sum, count); batches of 2 in the examples' order: {0, 1} and {2, 3}.
        let by_row = [(2.0, 1), (6.0, 3), (1.0, 1), (0.0, 0)];
        let want = ((2.0 + 6.0) / 4.0 * 2.0 + 1.0 / 1.0 * 2.0) / 4.0;
        let order = [3, 1, 0, 2];
        let terms: Vec<(f64, usize)> = order.iter().map(|&r| by_row[r]).collect();
        assert_eq!(loss_over_example_batches(&terms, &order, 2), want);
        assert_eq!(loss_over_example_batches(&by_row, &[0, 1, 2, 3], 2), want);
        // Another batching of the same rows is another loss (the mean of batch means).
        assert_ne!(loss_over_example_batches(&by_row, &[0, 1, 2, 3], 3), want);
    }
}
