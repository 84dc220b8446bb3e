//! The training loop, with transformers' `Trainer` semantics.
//!
//! Per optimizer step: `gradient_accumulation_steps` micro-batches, each loss divided by the
//! number of micro-batches of that step; gradients clipped to `max_grad_norm` by their global
//! norm; the learning rate of [`crate::schedule`] for the step; AdamW. Logging, evaluation and
//! checkpoints follow `logging_strategy`/`eval_strategy`/`save_strategy` as transformers does
//! (`steps`: every N optimizer steps; `epoch`: at the end of each epoch), and the log entries
//! carry transformers' keys (`loss`, `grad_norm`, `learning_rate`, `epoch`, `step`, `eval_*`).
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
use burn::nn::{DropoutConfig, LinearConfig};
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor};
use ft_data::collate::group_by_length;
use ft_data::rng::permutation;
use ft_metrics::classification::{Average, PrfOptions, Score, accuracy_score, f1_score};
use ft_metrics::seqeval::{SeqevalOptions, seqeval};
use ft_models::auto::{Encoder, FirstTokenClassifier, LoadOptions, ModelConfig, SequenceClassifier, Task, load, save_pretrained};
use ft_data::hub::RepoFiles;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::args::{IntervalStrategy, TrainingArguments};
use crate::data::{PreparedData, prepare};
use crate::examples::{Examples, first_token_features};
use crate::optim::{adamw, clip_global_norm};
use crate::report;
use crate::run_config::{MethodKind, RunConfig};
use crate::schedule::learning_rate;
use crate::state::{TrainerState, ensure_writable, last_checkpoint, read_json, rotate, write_json};
use crate::trainable::{Batch, LinearHead, Outputs, Trainable};
use crate::{Result, TrainError};

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Where the final model and results are.
    pub output_dir: PathBuf,
    /// `train_runtime`, `train_samples_per_second`, `train_loss`, ...
    pub train_metrics: BTreeMap<String, f64>,
    /// The final model's evaluation (`eval_loss`, `eval_accuracy`, ...), when there is eval data.
    pub eval_metrics: BTreeMap<String, f64>,
    /// Rows skipped as invalid.
    pub skipped_rows: usize,
    /// Seconds spent computing the frozen encoder's features once (frozen method with caching).
    pub feature_seconds: Option<f64>,
    /// The final model's predictions on the evaluation data (for confusion matrices).
    pub eval_predictions: Option<Predictions>,
    /// Label names by id.
    pub label_names: Vec<String>,
    /// `log_history` of the run.
    pub log_history: Vec<Value>,
}

/// Predictions of an evaluation, for reports (confusion matrix, per-class scores).
#[derive(Debug, Clone, Default)]
pub struct Predictions {
    /// Predicted class per row, or per labelled token (flattened).
    pub predictions: Vec<i64>,
    /// Reference class, aligned with `predictions`.
    pub references: Vec<i64>,
}

/// Options of [`train`] beyond the run file.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from the newest checkpoint of the output directory.
    pub resume: bool,
    /// Show a progress bar (when stderr is a terminal).
    pub progress: bool,
}

struct Run<'a> {
    args: &'a TrainingArguments,
    plain: Device,
    label_names: Vec<String>,
    token_task: bool,
    state: TrainerState,
    output_dir: PathBuf,
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

fn scalar(t: Tensor<1>) -> f32 {
    t.into_scalar::<f32>()
}

fn to_i64<const D: usize>(t: Tensor<D, Int>) -> Result<Vec<i64>> {
    t.into_data().try_into_vec_as::<i64>().map_err(|e| TrainError::State(format!("reading predictions: {e:?}")))
}

/// Trains as the run file says; writes checkpoints, the final model and the results into
/// `training.output_dir`.
pub fn train(config: &RunConfig, options: &TrainOptions, device: &Device) -> Result<TrainOutcome> {
    let args = &config.training;
    let output_dir = args.output_dir.clone();
    ensure_writable(&output_dir)?;
    let plain = device.clone().without_autodiff();
    let ad = plain.clone().autodiff();
    ad.seed(args.seed);

    let files = RepoFiles::open(&config.model.name, ft_data::hub::RepoKind::Model)?;
    let mut model_config = ModelConfig::from_file(&files.get_required("config.json")?)?;
    let data = prepare(config, &files, model_config.max_positions())?;
    model_config.labels_mut().set_labels(&data.label_names);
    tracing::info!(train = data.train.len(), eval = data.eval.as_ref().map(|d| d.len()), labels = data.label_names.len(), "data ready");
    let pad_id = data.tokenizer.pad_id();

    // The model and the examples it trains on.
    let mut feature_seconds = None;
    let (mut model, train_ex, eval_ex, frozen_encoder) = match config.method.kind {
        MethodKind::Full => {
            let task = if config.is_token_classification() { Task::TokenClassification } else { Task::SequenceClassification };
            let loaded = load(&config.model.name, task, &LoadOptions { labels: Some(data.label_names.clone()), ..Default::default() }, &ad)?;
            let model = match task {
                Task::TokenClassification => Trainable::Token(loaded.into_token_classifier()?.model),
                _ => Trainable::Sequence(loaded.into_sequence_classifier()?.model),
            };
            let PreparedData { train, eval, .. } = data.clone();
            (model, Examples::Text { dataset: train, pad_id }, eval.map(|d| Examples::Text { dataset: d, pad_id }), None)
        }
        MethodKind::Frozen => {
            let encoder = load(&config.model.name, Task::FeatureExtraction, &LoadOptions::default(), &plain)?.into_encoder()?.model;
            let hidden = encoder.hidden_size();
            ad.seed(args.seed);
            let head = LinearHead {
                dropout: DropoutConfig::new(config.method.head_dropout).init(),
                classifier: LinearConfig::new(hidden, data.label_names.len()).init(&ad),
            };
            let (train_ex, eval_ex) = if config.method.cache_features {
                let start = Instant::now();
                let bar = progress_bar(options.progress, (data.train.len() + data.eval.as_ref().map_or(0, |d| d.len())) as u64, "features");
                let featurize = |ds: &ft_data::dataset::Dataset| -> Result<Examples> {
                    let (mut x, mut labels, mut dim) = (Vec::new(), Vec::new(), 0);
                    let all: Vec<usize> = (0..ds.len()).collect();
                    for chunk in all.chunks(args.per_device_eval_batch_size.max(1)) {
                        let (cx, d, cy) = first_token_features(&encoder, ds, chunk, pad_id, &plain)?;
                        x.extend(cx);
                        labels.extend(cy);
                        dim = d;
                        bar.inc(chunk.len() as u64);
                    }
                    Ok(Examples::Features { x, dim, labels })
                };
                let t = featurize(&data.train)?;
                let e = data.eval.as_ref().map(featurize).transpose()?;
                bar.finish_and_clear();
                feature_seconds = Some(start.elapsed().as_secs_f64());
                (t, e)
            } else {
                let t = Examples::Recompute { dataset: data.train.clone(), pad_id, encoder: Box::new(encoder.clone()) };
                let e = data.eval.clone().map(|d| Examples::Recompute { dataset: d, pad_id, encoder: Box::new(encoder.clone()) });
                (t, e)
            };
            (Trainable::Head(head), train_ex, eval_ex, Some(encoder))
        }
    };

    let mut optimizer = adamw(args)?;
    let mut run = Run {
        args,
        plain: plain.clone(),
        label_names: data.label_names.clone(),
        token_task: config.is_token_classification(),
        state: TrainerState { is_local_process_zero: true, is_world_process_zero: true, ..Default::default() },
        output_dir: output_dir.clone(),
    };

    // Schedule.
    let n = train_ex.len();
    let bs = args.per_device_train_batch_size;
    let batches_per_epoch = if args.dataloader_drop_last { n / bs } else { n.div_ceil(bs) };
    if batches_per_epoch == 0 {
        return Err(TrainError::Config(format!("training.per_device_train_batch_size {bs} is larger than the {n} training rows with dataloader_drop_last")));
    }
    let accum = args.gradient_accumulation_steps;
    let steps_per_epoch = batches_per_epoch.div_ceil(accum).max(1);
    let total_steps = if args.max_steps > 0 { args.max_steps as usize } else { (args.num_train_epochs * steps_per_epoch as f64).ceil() as usize };
    let num_epochs = total_steps.div_ceil(steps_per_epoch);
    let warmup = args.warmup(total_steps);
    run.state.max_steps = total_steps;
    run.state.num_train_epochs = num_epochs;
    run.state.logging_steps = args.logging_steps;
    run.state.eval_steps = args.eval_steps();
    run.state.save_steps = args.save_steps;
    run.state.train_batch_size = bs;

    // Resume.
    if options.resume {
        match last_checkpoint(&output_dir)? {
            Some(ckpt) => {
                model = model
                    .try_load_file(ckpt.join("model.bpk"))
                    .map_err(|e| TrainError::State(format!("{}: cannot restore the model: {e:?}", ckpt.display())))?;
                optimizer = optimizer
                    .load(ckpt.join("optimizer.bpk"))
                    .map_err(|e| TrainError::State(format!("{}: cannot restore the optimizer: {e:?}", ckpt.display())))?;
                run.state = read_json(&ckpt.join("trainer_state.json"))?;
                tracing::info!(checkpoint = %ckpt.display(), step = run.state.global_step, "resuming");
            }
            None => tracing::warn!(output_dir = %output_dir.display(), "--resume: no checkpoint yet, starting from scratch"),
        }
    }

    let bar = progress_bar(options.progress, total_steps as u64, "steps");
    bar.set_position(run.state.global_step as u64);
    let start = Instant::now();
    let start_step = run.state.global_step;
    let mut tr_loss = 0.0f64;
    let mut logged_at = run.state.global_step;
    let mut stop = false;
    let lengths = train_ex.lengths();
    'epochs: for epoch in run.state.global_step / steps_per_epoch..num_epochs {
        let order = if args.group_by_length {
            group_by_length(&lengths, bs, args.seed.wrapping_add(epoch as u64))
        } else {
            permutation(n, args.seed.wrapping_add(epoch as u64))
        };
        let batches: Vec<&[usize]> = order.chunks(bs).take(batches_per_epoch).collect();
        let skip = (run.state.global_step - epoch * steps_per_epoch) * accum;
        let mut accumulator = GradientsAccumulator::<Trainable>::new();
        let mut micro_in_step = 0;
        for (bi, chunk) in batches.iter().enumerate().skip(skip) {
            let step_micro_total = accum.min(batches.len() - (bi / accum) * accum);
            ad.seed(step_seed(args.seed, run.state.global_step, micro_in_step));
            let t0 = Instant::now();
            let batch = train_ex.batch(chunk, &ad)?;
            let (loss, _) = model.forward(&batch)?;
            let value = scalar(loss.clone());
            let t_forward = t0.elapsed();
            if !value.is_finite() {
                let last = last_checkpoint(&output_dir)?.map(|p| p.display().to_string()).unwrap_or_else(|| "none".into());
                return Err(TrainError::NonFiniteLoss { step: run.state.global_step + 1, epoch: epoch as f64 + bi as f64 / batches.len() as f64, value, last_checkpoint: last });
            }
            let scaled = loss / step_micro_total as f64;
            let grads = GradientsParams::from_grads(scaled.backward(), &model);
            let t_backward = t0.elapsed();
            accumulator.accumulate(&model, grads);
            tr_loss += value as f64 / step_micro_total as f64;
            micro_in_step += 1;
            if micro_in_step < step_micro_total {
                continue;
            }
            micro_in_step = 0;
            let mut grads = accumulator.grads();
            let grad_norm = clip_global_norm(&model, &mut grads, args.max_grad_norm);
            let lr = learning_rate(args.lr_scheduler_type, args.learning_rate, run.state.global_step, total_steps, warmup);
            let t_clip = t0.elapsed();
            model = optimizer.step(lr, model, grads);
            tracing::debug!(
                forward_ms = t_forward.as_secs_f64() * 1e3,
                backward_ms = (t_backward - t_forward).as_secs_f64() * 1e3,
                clip_ms = (t_clip - t_backward).as_secs_f64() * 1e3,
                optimizer_ms = (t0.elapsed() - t_clip).as_secs_f64() * 1e3,
                "step timings (last micro-batch)"
            );
            run.state.global_step += 1;
            run.state.epoch = epoch as f64 + (bi + 1) as f64 / batches.len() as f64;
            bar.inc(1);
            let step = run.state.global_step;
            let end_of_epoch = bi + 1 == batches.len();
            let last_step = step >= total_steps;

            let log_now = match args.logging_strategy {
                IntervalStrategy::Steps => step % args.logging_steps == 0 || (args.logging_first_step && step == 1),
                IntervalStrategy::Epoch => end_of_epoch,
                IntervalStrategy::No => false,
            };
            if log_now && step > logged_at {
                let next_lr = learning_rate(args.lr_scheduler_type, args.learning_rate, step, total_steps, warmup);
                let entry = json!({
                    "loss": round4(tr_loss / (step - logged_at) as f64),
                    "grad_norm": grad_norm,
                    "learning_rate": next_lr,
                    "epoch": run.state.epoch,
                    "step": step,
                });
                run.log(entry, &bar);
                tr_loss = 0.0;
                logged_at = step;
            }
            let eval_now = eval_ex.is_some()
                && match args.eval_strategy {
                    IntervalStrategy::Steps => step % args.eval_steps() == 0,
                    IntervalStrategy::Epoch => end_of_epoch,
                    IntervalStrategy::No => false,
                };
            let mut metrics = None;
            if let (true, Some(ev)) = (eval_now, &eval_ex) {
                let (m, _) = run.evaluate(&model, ev)?;
                run.log(metrics_entry(&m, run.state.epoch, step), &bar);
                metrics = Some(m);
            }
            let save_now = match args.save_strategy {
                IntervalStrategy::Steps => step % args.save_steps == 0,
                IntervalStrategy::Epoch => end_of_epoch,
                IntervalStrategy::No => false,
            };
            if let Some(m) = &metrics {
                stop = run.track_best(m, save_now)?;
            }
            if save_now {
                run.save_checkpoint(&model, &optimizer, &model_config, &files, frozen_encoder.as_ref())?;
            }
            if stop || last_step {
                break 'epochs;
            }
        }
    }
    bar.finish_and_clear();
    // The frozen encoder's one-off feature extraction is part of the training time.
    let runtime = start.elapsed().as_secs_f64() + feature_seconds.unwrap_or(0.0);
    let steps_done = run.state.global_step - start_step;
    let samples = (steps_done * bs * accum) as f64;
    if args.load_best_model_at_end {
        if let Some(best) = run.state.best_model_checkpoint.clone() {
            let best = PathBuf::from(best);
            model = model
                .try_load_file(best.join("model.bpk"))
                .map_err(|e| TrainError::State(format!("{}: cannot load the best model: {e:?}", best.display())))?;
            tracing::info!(checkpoint = %best.display(), "loaded the best model");
        }
    }
    let history_loss: f64 = {
        let losses: Vec<f64> = run.state.log_history.iter().filter_map(|e| e.get("loss").and_then(Value::as_f64)).collect();
        if losses.is_empty() { tr_loss } else { losses.iter().sum::<f64>() / losses.len() as f64 }
    };
    let mut train_metrics: BTreeMap<String, f64> = BTreeMap::new();
    train_metrics.insert("train_runtime".into(), round4(runtime));
    train_metrics.insert("train_samples_per_second".into(), round3(samples / runtime.max(1e-9)));
    train_metrics.insert("train_steps_per_second".into(), round3(steps_done as f64 / runtime.max(1e-9)));
    train_metrics.insert("train_loss".into(), history_loss);
    train_metrics.insert("epoch".into(), run.state.epoch);
    if let Some(s) = feature_seconds {
        train_metrics.insert("feature_extraction_runtime".into(), round4(s));
    }
    let mut summary: serde_json::Map<String, Value> = train_metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    summary.insert("step".into(), json!(run.state.global_step));
    summary.insert("total_flos".into(), json!(0.0));
    run.log(Value::Object(summary), &bar);

    // The final model, in the Hub's layout, and the results files.
    save_model(&output_dir, &model, &model_config, &files, frozen_encoder.as_ref())?;
    let mut eval_metrics = BTreeMap::new();
    let mut eval_predictions = None;
    if let Some(ev) = &eval_ex {
        let (m, p) = run.evaluate(&model, ev)?;
        eval_metrics = m;
        eval_predictions = Some(p);
        let mut with_epoch = eval_metrics.clone();
        with_epoch.insert("epoch".into(), run.state.epoch);
        write_json(&output_dir.join("eval_results.json"), &with_epoch)?;
    }
    let mut all = train_metrics.clone();
    all.extend(eval_metrics.iter().map(|(k, v)| (k.clone(), *v)));
    write_json(&output_dir.join("train_results.json"), &train_metrics)?;
    write_json(&output_dir.join("all_results.json"), &all)?;
    write_json(&output_dir.join("trainer_state.json"), &run.state)?;
    report::write_loss_curve(&output_dir, &run.state.log_history)?;
    if let Some(p) = &eval_predictions {
        report::write_predictions(&output_dir, p, &run.label_names, run.token_task)?;
        if !run.token_task {
            report::write_confusion_matrix(&output_dir, p, &run.label_names)?;
        }
    }
    Ok(TrainOutcome {
        output_dir,
        train_metrics,
        eval_metrics,
        skipped_rows: data.skipped,
        feature_seconds,
        eval_predictions,
        label_names: run.label_names.clone(),
        log_history: run.state.log_history.clone(),
    })
}

fn round4(x: f64) -> f64 {
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

fn metrics_entry(m: &BTreeMap<String, f64>, epoch: f64, step: usize) -> Value {
    let mut entry: serde_json::Map<String, Value> = m.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    entry.insert("epoch".into(), json!(epoch));
    entry.insert("step".into(), json!(step));
    Value::Object(entry)
}

/// Writes the final model into `dir` (Hub layout).
fn save_model(dir: &Path, model: &Trainable, config: &ModelConfig, files: &RepoFiles, frozen_encoder: Option<&Encoder>) -> Result<()> {
    let valid = model.valid();
    match (&valid, frozen_encoder) {
        (Trainable::Sequence(m), _) => save_pretrained(dir, &m.export()?, config, m.class_name(), files)?,
        (Trainable::Token(m), _) => save_pretrained(dir, &m.export()?, config, m.class_name(), files)?,
        (Trainable::Head(h), Some(encoder)) => {
            let full = SequenceClassifier::FirstToken(FirstTokenClassifier {
                encoder: encoder.clone(),
                dropout: h.dropout.clone(),
                classifier: h.classifier.clone(),
            });
            let mut config = config.clone();
            config.set_first_token_head(h.dropout.prob);
            save_pretrained(dir, &full.export()?, &config, full.class_name(), files)?;
        }
        (Trainable::Head(_), None) => return Err(TrainError::State("a head without its encoder cannot be saved".into())),
    }
    Ok(())
}

impl Run<'_> {
    fn log(&mut self, entry: Value, bar: &ProgressBar) {
        bar.suspend(|| println!("{entry}"));
        self.state.log_history.push(entry);
    }

    /// Evaluates on `examples`: `eval_loss` plus the task's metrics, with transformers' keys.
    fn evaluate(&self, model: &Trainable, examples: &Examples) -> Result<(BTreeMap<String, f64>, Predictions)> {
        let start = Instant::now();
        let model = model.valid();
        let bs = self.args.per_device_eval_batch_size;
        let all: Vec<usize> = (0..examples.len()).collect();
        let (mut loss_sum, mut rows) = (0.0f64, 0usize);
        let mut preds = Predictions::default();
        let (mut seq_true, mut seq_pred): (Vec<Vec<String>>, Vec<Vec<String>>) = (Vec::new(), Vec::new());
        for chunk in all.chunks(bs) {
            let batch: Batch = examples.batch(chunk, &self.plain)?;
            let (loss, outputs) = model.forward(&batch)?;
            loss_sum += scalar(loss) as f64 * chunk.len() as f64;
            rows += chunk.len();
            match outputs {
                Outputs::Rows { logits, labels } => {
                    preds.predictions.extend(to_i64(logits.argmax(1).reshape([chunk.len()]))?);
                    preds.references.extend(to_i64(labels)?);
                }
                Outputs::Tokens { logits, labels } => {
                    let [b, l, _] = logits.dims();
                    let p = to_i64(logits.argmax(2).reshape([b, l]))?;
                    let y = to_i64(labels)?;
                    for r in 0..b {
                        let (mut t, mut q) = (Vec::new(), Vec::new());
                        for c in 0..l {
                            let (yy, pp) = (y[r * l + c], p[r * l + c]);
                            if yy == crate::loss::IGNORE_INDEX {
                                continue;
                            }
                            preds.references.push(yy);
                            preds.predictions.push(pp);
                            t.push(self.label_name(yy));
                            q.push(self.label_name(pp));
                        }
                        seq_true.push(t);
                        seq_pred.push(q);
                    }
                }
            }
        }
        let runtime = start.elapsed().as_secs_f64();
        let mut m = BTreeMap::new();
        m.insert("eval_loss".to_string(), loss_sum / rows.max(1) as f64);
        if self.token_task {
            let report = seqeval(&seq_true, &seq_pred, &SeqevalOptions::default())?;
            m.insert("eval_overall_precision".into(), report.overall_precision);
            m.insert("eval_overall_recall".into(), report.overall_recall);
            m.insert("eval_overall_f1".into(), report.overall_f1);
            m.insert("eval_overall_accuracy".into(), report.overall_accuracy);
        } else {
            m.insert("eval_accuracy".into(), accuracy_score(&preds.references, &preds.predictions, true, None)?);
            let options = PrfOptions { average: Average::Macro, ..PrfOptions::default() };
            if let Score::Value(f1) = f1_score(&preds.references, &preds.predictions, &options)? {
                m.insert("eval_f1_macro".into(), f1);
            }
        }
        m.insert("eval_runtime".into(), round4(runtime));
        m.insert("eval_samples_per_second".into(), round3(rows as f64 / runtime.max(1e-9)));
        m.insert("eval_steps_per_second".into(), round3(rows.div_ceil(bs) as f64 / runtime.max(1e-9)));
        Ok((m, preds))
    }

    fn label_name(&self, id: i64) -> String {
        usize::try_from(id).ok().and_then(|i| self.label_names.get(i)).cloned().unwrap_or_else(|| "O".into())
    }

    /// Updates the best metric; returns true when early stopping says to stop.
    fn track_best(&mut self, metrics: &BTreeMap<String, f64>, saving: bool) -> Result<bool> {
        let key = self.args.best_metric_key();
        let Some(&value) = metrics.get(&key) else {
            if self.args.load_best_model_at_end {
                let known: Vec<&str> = metrics.keys().map(String::as_str).collect();
                return Err(TrainError::Config(format!(
                    "training.metric_for_best_model: '{key}' is not among the evaluation metrics ({})",
                    known.join(", ")
                )));
            }
            return Ok(false);
        };
        let greater = self.args.greater_is_better();
        let improved = match self.state.best_metric {
            None => true,
            Some(best) => {
                if greater { value > best } else { value < best }
            }
        };
        let significant = match self.state.best_metric {
            None => true,
            Some(best) => (if greater { value - best } else { best - value }) > self.args.early_stopping_threshold,
        };
        if improved {
            self.state.best_metric = Some(value);
            self.state.best_global_step = Some(self.state.global_step);
            if saving {
                let dir = self.output_dir.join(format!("checkpoint-{}", self.state.global_step));
                self.state.best_model_checkpoint = Some(dir.display().to_string());
            }
        }
        if significant {
            self.state.early_stopping_patience_counter = 0;
        } else {
            self.state.early_stopping_patience_counter += 1;
        }
        Ok(self.args.early_stopping_patience.is_some_and(|p| self.state.early_stopping_patience_counter >= p))
    }

    /// Writes `checkpoint-N/` atomically and rotates old ones.
    fn save_checkpoint(
        &self,
        model: &Trainable,
        optimizer: &ModuleOptimizer,
        config: &ModelConfig,
        files: &RepoFiles,
        frozen_encoder: Option<&Encoder>,
    ) -> Result<()> {
        let name = format!("checkpoint-{}", self.state.global_step);
        let final_dir = self.output_dir.join(&name);
        let tmp = self.output_dir.join(format!(".tmp-{name}"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(crate::error::io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(crate::error::io(&tmp))?;
        let result = (|| -> Result<()> {
            save_model(&tmp, model, config, files, frozen_encoder)?;
            model
                .clone()
                .save_file(tmp.join("model.bpk"))
                .map_err(|e| TrainError::State(format!("{}: {e:?}", tmp.join("model.bpk").display())))?;
            optimizer.save(tmp.join("optimizer.bpk")).map_err(|e| TrainError::State(format!("{}: {e:?}", tmp.join("optimizer.bpk").display())))?;
            write_json(&tmp.join("rng_state.json"), &json!({"seed": self.args.seed, "global_step": self.state.global_step, "scheme": "reseeded from (seed, step, micro-batch)"}))?;
            write_json(&tmp.join("scheduler.json"), &json!({"lr_scheduler_type": self.args.lr_scheduler_type, "global_step": self.state.global_step}))?;
            write_json(&tmp.join("training_args.json"), self.args)?;
            write_json(&tmp.join("trainer_state.json"), &self.state)?;
            if final_dir.exists() {
                std::fs::remove_dir_all(&final_dir).map_err(crate::error::io(&final_dir))?;
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
        Ok(())
    }
}
