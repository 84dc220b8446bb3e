//! `ft train`: a run file in, a trained model and transformers' result files out.
//!
//! [`train`] prepares the data, builds the model the `[method]` asks for, and hands both to the
//! task-generic loop ([`crate::fit::fit`]) with the method's [`ModelStore`]; then it writes the
//! final model and the results (`eval_results.json`, `train_results.json`, `all_results.json`,
//! `trainer_state.json`, `eval_predictions.json`, `loss_curve.png`, `confusion_matrix.png`).
//! Each method is one function here: full fine-tuning and the frozen encoder with a head.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use ft_data::hub::{RepoFiles, RepoKind};
use ft_models::auto::{
    CausalLm, Encoder, FirstTokenClassifier, LoadOptions, ModelConfig, SequenceClassifier, Task, TokenClassifier, load,
    save_pretrained,
};
use ft_models::layers::{Projection, WeightLayout};
use ft_models::params::non_embedding_parameters;
use ft_models::weights::{Checkpoint, InitScheme, NameMap, SAFETENSORS_SINGLE, load_parts};
use serde_json::Value;

use crate::args::TrainingArguments;
use crate::data::{PreparedData, prepare};
use crate::fit::{Callbacks, FitOptions, FitOutcome, ModelStore, NoCallbacks, fit, setup_bar};
use crate::optim::adamw;
use crate::peft::PeftStore;
use crate::report;
use crate::run_config::{FrozenMethod, MethodConfig, RunConfig};
use crate::state::{ensure_writable, write_json};
use crate::task::causal::{CausalExamples, CausalLmTask};
use crate::task::head::{Features, HeadTask, LinearHead};
use crate::task::text::{SequenceClassificationTask, TextExamples, TokenClassificationTask};
use crate::task::{Predictions, TrainTask};
use crate::{Result, TrainError};
use ft_models::peft::{PeftBase, PeftModel};
use ft_peft::config::{AdapterConfig, PromptTuningInit};

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
    /// §14's pitfalls found (also in `trainer_state.json`'s `ft_pitfalls`).
    pub pitfalls: Vec<crate::pitfalls::Pitfall>,
}

/// Options of [`train`] beyond the run file.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from the newest checkpoint of the output directory.
    pub resume: bool,
    /// Show a progress bar (when stderr is a terminal).
    pub progress: bool,
    /// Refuse runs with label leakage (§14) instead of warning.
    pub strict: bool,
}

/// Trains as the run file says; writes checkpoints, the final model and the results into
/// `training.output_dir`. Log entries are only recorded (see [`train_with`] to receive them).
pub fn train(config: &RunConfig, options: &TrainOptions, device: &Device) -> Result<TrainOutcome> {
    train_with(config, options, &mut NoCallbacks, device)
}

/// [`train`], handing every log entry to `callbacks` as it is made.
pub fn train_with(
    config: &RunConfig,
    options: &TrainOptions,
    callbacks: &mut dyn Callbacks,
    device: &Device,
) -> Result<TrainOutcome> {
    let args = &config.training;
    ensure_writable(&args.output_dir)?;
    if config.model.task == Task::ImageClassification {
        return crate::vision::train(config, options, callbacks, device);
    }
    let plain = device.clone().without_autodiff();
    let ad = plain.clone().autodiff();
    ad.seed(args.seed);

    let files = RepoFiles::open(&config.model.name, RepoKind::Model)?;
    let mut model_config = ModelConfig::from_file(&files.get_required("config.json")?)?;
    // A checkpoint's label names are this run's only when its head was trained for this task.
    let checkpoint_labels = (model_config.labels().id2label.is_some()
        && model_config.saved_task() == config.model.task)
        .then(|| model_config.labels().label_names());
    // Prompt and prefix tuning's virtual tokens take positions too: inputs are truncated so
    // that both fit.
    let virtual_tokens = match &config.method {
        MethodConfig::Prompt(c) => c.num_virtual_tokens,
        MethodConfig::Prefix(c) => c.num_virtual_tokens,
        _ => 0,
    };
    let Some(positions) = model_config.max_positions().checked_sub(virtual_tokens).filter(|p| *p > 0) else {
        return Err(TrainError::Config(format!(
            "method.num_virtual_tokens = {virtual_tokens} leaves no room for input tokens: the model has {} positions",
            model_config.max_positions()
        )));
    };
    let data = prepare(config, &files, positions, &model_config, checkpoint_labels)?;
    if let Some(p) = &data.leakage {
        if options.strict {
            return Err(TrainError::Config(format!("--strict: {}", crate::pitfalls::strict_message(&p.message))));
        }
        p.log();
    }
    model_config.labels_mut().set_labels(&data.label_names);
    tracing::info!(
        train = data.train.len(),
        eval = data.eval.as_ref().map(|d| d.len()),
        labels = data.label_names.len(),
        "data ready"
    );
    let callbacks = std::cell::RefCell::new(callbacks);
    let run = RunContext { config, options, files, model_config, data, callbacks, ad, plain };
    match &config.method {
        MethodConfig::Full(_) => run.full(),
        MethodConfig::Frozen(m) => run.frozen(m),
        MethodConfig::Lora(_) | MethodConfig::Prompt(_) | MethodConfig::Prefix(_) | MethodConfig::Adapter(_) => {
            run.peft()
        }
    }
}

/// Everything a method needs to build its model and run the loop.
struct RunContext<'a> {
    config: &'a RunConfig,
    options: &'a TrainOptions,
    files: RepoFiles,
    model_config: ModelConfig,
    data: PreparedData,
    callbacks: std::cell::RefCell<&'a mut dyn Callbacks>,
    ad: Device,
    plain: Device,
}

/// A full model saved and restored in the Hub's layout (`save_pretrained` / `from_pretrained`).
struct HubStore<'a> {
    config: &'a ModelConfig,
    files: &'a RepoFiles,
    task: Task,
    labels: Vec<String>,
    device: Device,
}

impl HubStore<'_> {
    fn reload(&self, dir: &Path) -> Result<ft_models::auto::AnyModel> {
        let options = LoadOptions { labels: Some(self.labels.clone()), ..Default::default() };
        Ok(load(&dir.to_string_lossy(), self.task, &options, &self.device)?.model)
    }
}

impl ModelStore<SequenceClassifier> for HubStore<'_> {
    fn save(&self, model: &SequenceClassifier, dir: &Path) -> Result<()> {
        Ok(save_pretrained(dir, &model.export()?, self.config, model.class_name(), self.files)?)
    }

    fn restore(&self, _model: SequenceClassifier, dir: &Path) -> Result<SequenceClassifier> {
        match self.reload(dir)? {
            ft_models::auto::AnyModel::SequenceClassifier(m) => Ok(m),
            _ => Err(TrainError::State(format!("{}: not a sequence classifier", dir.display()))),
        }
    }
}

impl ModelStore<CausalLm> for HubStore<'_> {
    fn save(&self, model: &CausalLm, dir: &Path) -> Result<()> {
        Ok(save_pretrained(dir, &model.export()?, self.config, model.class_name(), self.files)?)
    }

    fn restore(&self, _model: CausalLm, dir: &Path) -> Result<CausalLm> {
        match self.reload(dir)? {
            ft_models::auto::AnyModel::CausalLm(m) => Ok(m),
            _ => Err(TrainError::State(format!("{}: not a causal language model", dir.display()))),
        }
    }
}

impl ModelStore<TokenClassifier> for HubStore<'_> {
    fn save(&self, model: &TokenClassifier, dir: &Path) -> Result<()> {
        Ok(save_pretrained(dir, &model.export()?, self.config, model.class_name(), self.files)?)
    }

    fn restore(&self, _model: TokenClassifier, dir: &Path) -> Result<TokenClassifier> {
        match self.reload(dir)? {
            ft_models::auto::AnyModel::TokenClassifier(m) => Ok(m),
            _ => Err(TrainError::State(format!("{}: not a token classifier", dir.display()))),
        }
    }
}

/// The frozen method's head, saved with its encoder as one first-token classifier (the
/// encoder's own tensors plus `classifier.*`, config marked `ft_head`), restored head only.
struct HeadStore<'a> {
    encoder: &'a Encoder,
    config: &'a ModelConfig,
    files: &'a RepoFiles,
    device: Device,
}

impl ModelStore<LinearHead> for HeadStore<'_> {
    fn save(&self, head: &LinearHead, dir: &Path) -> Result<()> {
        let full = SequenceClassifier::FirstToken(FirstTokenClassifier {
            encoder: self.encoder.clone(),
            dropout: head.dropout.clone(),
            classifier: Projection::from_linear(head.classifier.clone(), WeightLayout::Linear),
        });
        let mut config = self.config.clone();
        config.set_first_token_head(head.dropout.prob);
        Ok(save_pretrained(dir, &full.export()?, &config, full.class_name(), self.files)?)
    }

    fn restore(&self, mut head: LinearHead, dir: &Path) -> Result<LinearHead> {
        let file = dir.join(SAFETENSORS_SINGLE);
        let mut ck = Checkpoint::from_files(&file, std::slice::from_ref(&file), &self.device)?;
        load_parts(&mut head, &mut ck, &NameMap::identity(), InitScheme::Transformers { std: 0.02 })?;
        let report = ck.finish()?;
        if !report.newly_initialized.is_empty() {
            return Err(TrainError::State(format!(
                "{}: no head tensors {:?}",
                file.display(),
                report.newly_initialized
            )));
        }
        Ok(head)
    }
}

impl RunContext<'_> {
    fn args(&self) -> &TrainingArguments {
        &self.config.training
    }

    fn text_examples(&self, flops_per_token: f64) -> TextExamples {
        let (train, eval) = (self.data.train.clone(), self.data.eval.clone());
        TextExamples { train, eval, pad_id: self.data.tokenizer.pad_id(), flops_per_token }
    }

    /// §4, §9: every parameter trains.
    fn full(self) -> Result<TrainOutcome> {
        let task = self.config.model.task;
        let options = LoadOptions {
            labels: Some(self.data.label_names.clone()),
            random_init: self.config.model.random_init,
            ..Default::default()
        };
        let loaded = load(&self.config.model.name, task, &options, &self.ad)?;
        let store = HubStore {
            config: &self.model_config,
            files: &self.files,
            task,
            labels: self.data.label_names.clone(),
            device: self.ad.clone(),
        };
        match task {
            Task::CausalLm => {
                let mut model = loaded.into_causal_lm()?.model;
                let examples = self.causal_examples(6.0 * non_embedding_parameters(&mut model) as f64);
                let t = CausalLmTask::<CausalLm>::new(examples);
                let probe = CausalLmTask::<CausalLm>::new(self.forgetting_examples()?);
                let before = self.perplexity(&probe, &model)?;
                let mut outcome = self.fit(&t, model, &store, 0.0, 0)?;
                self.record_forgetting(&mut outcome, &probe, before)?;
                store.save(&outcome.model, &self.args().output_dir)?;
                self.finish(outcome, None)
            }
            Task::TokenClassification => {
                let mut model = loaded.into_token_classifier()?.model;
                let examples = self.text_examples(6.0 * non_embedding_parameters(&mut model) as f64);
                let t = TokenClassificationTask::<TokenClassifier>::new(examples, self.data.label_names.clone());
                let outcome = self.fit(&t, model, &store, 0.0, 0)?;
                store.save(&outcome.model, &self.args().output_dir)?;
                self.finish(outcome, None)
            }
            _ => {
                let mut model = loaded.into_sequence_classifier()?.model;
                let examples = self.text_examples(6.0 * non_embedding_parameters(&mut model) as f64);
                let t = SequenceClassificationTask::<SequenceClassifier>::new(examples);
                let outcome = self.fit(&t, model, &store, 0.0, 0)?;
                store.save(&outcome.model, &self.args().output_dir)?;
                self.finish(outcome, None)
            }
        }
    }

    /// The rows of a causal-LM run; GPT-2 pads with its end-of-text token (`pad_token_id`, else
    /// `eos_token_id`), as the notebook sets `tokenizer.pad_token = tokenizer.eos_token`.
    fn causal_examples(&self, flops_per_token: f64) -> CausalExamples {
        CausalExamples {
            train: self.data.train.clone(),
            eval: self.data.eval.clone(),
            pad_id: self.causal_pad_id(),
            flops_per_token,
        }
    }

    /// GPT-2's padding id: `pad_token_id`, else `eos_token_id`, else the tokenizer's.
    fn causal_pad_id(&self) -> u32 {
        let tokenizer_pad = self.data.tokenizer.pad_id();
        match &self.model_config.arch {
            ft_models::auto::ArchConfig::Gpt2(c) => c.pad_token_id.or(c.eos_token_id).unwrap_or(tokenizer_pad),
            _ => tokenizer_pad,
        }
    }

    /// §14's forgetting probe of causal-LM runs: the held-out generic text
    /// ([`crate::pitfalls::GENERIC_TEXT`]), tokenized as the run's rows, as evaluation rows.
    fn forgetting_examples(&self) -> Result<CausalExamples> {
        use ft_data::dataset::{Column, Dataset, Field};
        let texts: Vec<String> = crate::pitfalls::GENERIC_TEXT.iter().map(|s| s.to_string()).collect();
        let ds = Dataset::new("forgetting probe", vec![Field::new("text", Column::Str(texts))])?;
        let opts =
            ft_data::align::TokenizeOptions { max_length: self.data.tokenizer.max_length(), ..Default::default() };
        let rows =
            ft_data::align::tokenize_text_classification(&ds, &self.data.tokenizer, "text", None, &opts)?.dataset;
        Ok(CausalExamples { train: rows.clone(), eval: Some(rows), pad_id: self.causal_pad_id(), flops_per_token: 0.0 })
    }

    /// The perplexity of `model` on the probe's rows.
    fn perplexity<M: crate::task::causal::CausalModel>(&self, probe: &CausalLmTask<M>, model: &M) -> Result<f64> {
        let loss = crate::fit::mean_eval_loss(probe, model, self.args().per_device_eval_batch_size, &self.ad)?;
        Ok(loss.exp())
    }

    /// Measures the probe after training and records the finding (state, results, log).
    fn record_forgetting<M: crate::task::causal::CausalModel>(
        &self,
        outcome: &mut FitOutcome<M>,
        probe: &CausalLmTask<M>,
        before: f64,
    ) -> Result<()> {
        let after = self.perplexity(probe, &outcome.model)?;
        let finding = crate::pitfalls::forgetting(before, after);
        finding.log();
        outcome.train_metrics.insert("generic_perplexity_before".into(), before);
        outcome.train_metrics.insert("generic_perplexity_after".into(), after);
        outcome.state.pitfalls.push(finding);
        Ok(())
    }

    /// §6-§8: a frozen base with a new PEFT adapter (LoRA, prompt or prefix tuning).
    fn peft(self) -> Result<TrainOutcome> {
        let task = self.config.model.task;
        let Some(method) = self.config.method.peft() else {
            return Err(TrainError::Config(format!(
                "method.kind = {} is not a PEFT method",
                self.config.method.kind()
            )));
        };
        if matches!(method, ft_peft::config::MethodConfig::PrefixTuning(_)) && task != Task::CausalLm {
            tracing::warn!(
                "prefix tuning on an encoder is an ft extension: PEFT 0.21 with transformers 5 refuses it (\"Model does not \
                 support past key values\"), so Python cannot load this adapter"
            );
        }
        let adapter = AdapterConfig::new(method, None, Some(&self.config.model.name));
        let labels = (task != Task::CausalLm).then(|| self.data.label_names.clone());
        // A bottleneck adapter trains its own head; the base's stays unused.
        let own_head_unused = matches!(self.config.method, MethodConfig::Adapter(_));
        let options = LoadOptions { labels, own_head_unused, ..Default::default() };
        let loaded = load(&self.config.model.name, task, &options, &self.ad)?;
        let store = PeftStore;
        match task {
            Task::CausalLm => {
                let mut base = loaded.into_causal_lm()?.model;
                let examples = self.causal_examples(6.0 * non_embedding_parameters(&mut base) as f64);
                // The baseline is the base model itself (a prompt's fresh virtual tokens already
                // change its outputs).
                let probe_rows = self.forgetting_examples()?;
                let before = self.perplexity(&CausalLmTask::<CausalLm>::new(probe_rows.clone()), &base)?;
                let model = self.peft_model(base, adapter)?;
                let t = CausalLmTask::<PeftModel<CausalLm>>::new(examples);
                let probe = CausalLmTask::<PeftModel<CausalLm>>::new(probe_rows);
                let mut outcome = self.fit(&t, model, &store, 0.0, 0)?;
                self.record_forgetting(&mut outcome, &probe, before)?;
                store.save(&outcome.model, &self.args().output_dir)?;
                self.finish(outcome, None)
            }
            Task::TokenClassification => {
                let mut base = loaded.into_token_classifier()?.model;
                let examples = self.text_examples(6.0 * non_embedding_parameters(&mut base) as f64);
                let model = self.peft_model(base, adapter)?;
                let t =
                    TokenClassificationTask::<PeftModel<TokenClassifier>>::new(examples, self.data.label_names.clone());
                let outcome = self.fit(&t, model, &store, 0.0, 0)?;
                store.save(&outcome.model, &self.args().output_dir)?;
                self.finish(outcome, None)
            }
            _ => {
                let mut base = loaded.into_sequence_classifier()?.model;
                let examples = self.text_examples(6.0 * non_embedding_parameters(&mut base) as f64);
                let model = self.peft_model(base, adapter)?;
                let t = SequenceClassificationTask::<PeftModel<SequenceClassifier>>::new(examples);
                let outcome = self.fit(&t, model, &store, 0.0, 0)?;
                store.save(&outcome.model, &self.args().output_dir)?;
                self.finish(outcome, None)
            }
        }
    }

    /// `base` frozen, with the run's adapter added as `default`; logs PEFT's
    /// trainable-parameter line.
    fn peft_model<M: PeftBase>(&self, base: M, adapter: AdapterConfig) -> Result<PeftModel<M>> {
        let text_ids = match &adapter.method {
            ft_peft::config::MethodConfig::PromptTuning(c) if c.prompt_tuning_init == PromptTuningInit::Text => {
                let text = c.prompt_tuning_init_text.clone().unwrap_or_default();
                // PEFT tokenizes the init text with the tokenizer's defaults (special tokens
                // included).
                self.data.tokenizer.encode_ids_batch(&[text.as_str()])?.into_iter().next().map(|e| e.input_ids)
            }
            _ => None,
        };
        let mut model = PeftModel::new(base);
        let name = self.config.method.adapter_name();
        model.add_adapter(name, adapter, text_ids.as_deref(), &self.ad)?;
        if let MethodConfig::Adapter(a) = &self.config.method {
            // `add_classification_head(adapter_name, ...)` (a tagging head for token
            // classification), labelled with the data's label names.
            let per_token = self.config.model.task == Task::TokenClassification;
            let head =
                a.head(per_token, &self.data.label_names).map_err(|m| TrainError::Config(format!("method.{m}")))?;
            model.add_head(name, head, &self.ad)?;
        }
        let mut model = model.freeze_base();
        let line = model.trainable_line()?;
        tracing::info!("{line}");
        Ok(model)
    }

    /// §5: a frozen encoder, a new linear head on the first token; features computed once.
    fn frozen(self, method: &FrozenMethod) -> Result<TrainOutcome> {
        let encoder = load(&self.config.model.name, Task::FeatureExtraction, &LoadOptions::default(), &self.plain)?
            .into_encoder()?
            .model;
        let head =
            LinearHead::new(encoder.hidden_size(), self.data.label_names.len(), method.text_head_dropout(), &self.ad);
        let pad_id = self.data.tokenizer.pad_id();
        let mut task = HeadTask {
            encoder,
            encoder_device: self.plain.clone(),
            pad_id,
            train: Features::Recompute(self.data.train.clone()),
            eval: self.data.eval.clone().map(Features::Recompute),
            eval_feature_seconds: 0.0,
        };
        let mut feature_seconds = None;
        if method.cache_features {
            let start = Instant::now();
            let rows = (self.data.train.len() + self.data.eval.as_ref().map_or(0, |d| d.len())) as u64;
            let bar = setup_bar(self.options.progress, rows, "features");
            let bs = self.args().per_device_eval_batch_size;
            task.train = task.cache(&self.data.train, bs, &mut |n| bar.inc(n as u64))?;
            if let Some(eval) = &self.data.eval {
                let eval_start = Instant::now();
                task.eval = Some(task.cache(eval, bs, &mut |n| bar.inc(n as u64))?);
                task.eval_feature_seconds = eval_start.elapsed().as_secs_f64();
            }
            bar.finish_and_clear();
            feature_seconds = Some(start.elapsed().as_secs_f64());
        }
        let store = HeadStore {
            encoder: &task.encoder,
            config: &self.model_config,
            files: &self.files,
            device: self.ad.clone(),
        };
        // The training rows' features count as training time; the evaluation rows' as
        // evaluation time (see `TrainTask::eval_setup_seconds`).
        let setup = feature_seconds.map_or(0.0, |s| s - task.eval_feature_seconds);
        let encoder_params = ft_models::params::ParameterCount::of(&task.encoder).total;
        let outcome = self.fit(&task, head, &store, setup, encoder_params)?;
        store.save(&outcome.model, &self.args().output_dir)?;
        if feature_seconds.is_some() {
            tracing::info!(
                "evaluation reads cached features: eval_runtime and eval_samples_per_second include the one-off \
                 extraction of the evaluation rows' features (see feature_extraction_runtime)"
            );
        }
        self.finish(outcome, feature_seconds)
    }

    fn fit<T: TrainTask>(
        &self,
        task: &T,
        model: T::Model,
        store: &dyn ModelStore<T::Model>,
        setup_seconds: f64,
        frozen_params: usize,
    ) -> Result<FitOutcome<T::Model>> {
        let optimizer = adamw(self.args(), &model)?;
        let mut callbacks = self.callbacks.borrow_mut();
        let options = FitOptions {
            resume: self.options.resume,
            progress: self.options.progress,
            callbacks: &mut **callbacks,
            optimizer,
            setup_seconds,
            pitfalls: self.data.leakage.iter().cloned().collect(),
            frozen_params,
        };
        fit(task, model, store, &self.config.training, options, &self.ad)
    }

    /// Writes the results files and pictures beside the final model.
    fn finish<M>(self, outcome: FitOutcome<M>, feature_seconds: Option<f64>) -> Result<TrainOutcome> {
        let token_task = self.config.is_token_classification();
        let output_dir = self.args().output_dir.clone();
        write_results(&output_dir, outcome, self.data.label_names, token_task, self.data.skipped, feature_seconds)
    }
}

/// Writes a finished run's results beside its final model — `eval_results.json`,
/// `train_results.json`, `all_results.json`, `trainer_state.json`, `eval_predictions.json`,
/// `loss_curve.png` and (row classification) `confusion_matrix.png` — and returns the outcome.
pub(crate) fn write_results<M>(
    output_dir: &Path,
    outcome: FitOutcome<M>,
    label_names: Vec<String>,
    token_task: bool,
    skipped_rows: usize,
    feature_seconds: Option<f64>,
) -> Result<TrainOutcome> {
    let mut eval_metrics = BTreeMap::new();
    let mut eval_predictions = None;
    if let Some((m, p)) = outcome.eval {
        eval_metrics = m;
        let mut with_epoch = eval_metrics.clone();
        with_epoch.insert("epoch".into(), outcome.state.epoch);
        write_json(&output_dir.join("eval_results.json"), &with_epoch)?;
        eval_predictions = Some(p);
    }
    let mut all = outcome.train_metrics.clone();
    all.extend(eval_metrics.iter().map(|(k, v)| (k.clone(), *v)));
    write_json(&output_dir.join("train_results.json"), &outcome.train_metrics)?;
    write_json(&output_dir.join("all_results.json"), &all)?;
    write_json(&output_dir.join("trainer_state.json"), &outcome.state)?;
    report::write_loss_curve(output_dir, &outcome.state.log_history)?;
    if let Some(p) = &eval_predictions {
        report::write_predictions(output_dir, p, &label_names, token_task)?;
        // Classes only (a causal LM's evaluation has a loss and no classes: no matrix, no warning).
        if !token_task && !label_names.is_empty() {
            report::write_confusion_matrix(output_dir, p, &label_names)?;
        }
    }
    Ok(TrainOutcome {
        output_dir: output_dir.to_path_buf(),
        train_metrics: outcome.train_metrics,
        eval_metrics,
        skipped_rows,
        feature_seconds,
        eval_predictions,
        label_names,
        log_history: outcome.state.log_history,
        pitfalls: outcome.state.pitfalls,
    })
}
