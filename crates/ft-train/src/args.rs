//! `TrainingArguments`, with transformers' names and defaults.

use std::path::PathBuf;

use crate::{Result, TrainError};

/// When to log, evaluate or save (transformers' `IntervalStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IntervalStrategy {
    /// Never.
    No,
    /// Every N optimizer steps.
    Steps,
    /// At the end of every epoch.
    Epoch,
}

/// The learning-rate schedule (transformers' `SchedulerType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerType {
    /// Linear warmup, then linear decay to 0.
    Linear,
    /// Linear warmup, then a half cosine to 0.
    Cosine,
    /// Constant.
    Constant,
    /// Linear warmup, then constant.
    ConstantWithWarmup,
}

/// transformers' `TrainingArguments`: same names, same defaults. Keys transformers has but ft
/// does not implement are rejected as unknown rather than silently ignored.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingArguments {
    /// Where checkpoints and the final model go.
    pub output_dir: PathBuf,
    /// Peak learning rate (AdamW).
    pub learning_rate: f64,
    /// Training batch size.
    pub per_device_train_batch_size: usize,
    /// Evaluation batch size.
    pub per_device_eval_batch_size: usize,
    /// Number of epochs (may be fractional).
    pub num_train_epochs: f64,
    /// Total optimizer steps; overrides `num_train_epochs` when > 0.
    pub max_steps: i64,
    /// When to evaluate (`evaluation_strategy` is accepted as the old name).
    #[serde(alias = "evaluation_strategy")]
    pub eval_strategy: IntervalStrategy,
    /// Steps between evaluations (default: `logging_steps`).
    pub eval_steps: Option<usize>,
    /// When to save checkpoints.
    pub save_strategy: IntervalStrategy,
    /// Steps between checkpoints.
    pub save_steps: usize,
    /// When to log the training loss.
    pub logging_strategy: IntervalStrategy,
    /// Steps between logs.
    pub logging_steps: usize,
    /// Log after the first step too.
    pub logging_first_step: bool,
    /// Reload the best checkpoint when training ends.
    pub load_best_model_at_end: bool,
    /// Metric that picks the best checkpoint (`accuracy` or `eval_accuracy`; default `loss`).
    pub metric_for_best_model: Option<String>,
    /// Whether a larger metric is better (default: true unless the metric ends with `loss`).
    pub greater_is_better: Option<bool>,
    /// Keep at most this many checkpoints (the best one is never deleted).
    pub save_total_limit: Option<usize>,
    /// Micro-batches per optimizer step.
    pub gradient_accumulation_steps: usize,
    /// Warmup as a fraction of the total steps.
    pub warmup_ratio: f64,
    /// Warmup steps (overrides `warmup_ratio` when > 0).
    pub warmup_steps: usize,
    /// The learning-rate schedule.
    pub lr_scheduler_type: SchedulerType,
    /// AdamW's decoupled weight decay, not applied to biases and LayerNorm weights.
    pub weight_decay: f64,
    /// AdamW's β1.
    pub adam_beta1: f64,
    /// AdamW's β2.
    pub adam_beta2: f64,
    /// AdamW's ε.
    pub adam_epsilon: f64,
    /// Clip the global gradient norm to this (0 disables).
    pub max_grad_norm: f64,
    /// Seed of data order, dropout and new weights.
    pub seed: u64,
    /// Stop after this many evaluations without improvement (transformers'
    /// `EarlyStoppingCallback`; needs `load_best_model_at_end`).
    pub early_stopping_patience: Option<usize>,
    /// Minimum improvement that resets the patience.
    pub early_stopping_threshold: f64,
    /// Batch examples of similar length together (less padding).
    pub group_by_length: bool,
    /// Drop the last incomplete training batch.
    pub dataloader_drop_last: bool,
    /// ft: warn of overfitting when the evaluation loss has risen at this many evaluations in a
    /// row while the training loss fell (0: never). See [`crate::pitfalls`].
    pub overfitting_patience: usize,
}

impl Default for TrainingArguments {
    fn default() -> Self {
        Self {
            output_dir: PathBuf::from("trainer_output"),
            learning_rate: 5e-5,
            per_device_train_batch_size: 8,
            per_device_eval_batch_size: 8,
            num_train_epochs: 3.0,
            max_steps: -1,
            eval_strategy: IntervalStrategy::No,
            eval_steps: None,
            save_strategy: IntervalStrategy::Steps,
            save_steps: 500,
            logging_strategy: IntervalStrategy::Steps,
            logging_steps: 500,
            logging_first_step: false,
            load_best_model_at_end: false,
            metric_for_best_model: None,
            greater_is_better: None,
            save_total_limit: None,
            gradient_accumulation_steps: 1,
            warmup_ratio: 0.0,
            warmup_steps: 0,
            lr_scheduler_type: SchedulerType::Linear,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            max_grad_norm: 1.0,
            seed: 42,
            early_stopping_patience: None,
            early_stopping_threshold: 0.0,
            group_by_length: false,
            dataloader_drop_last: false,
            overfitting_patience: 2,
        }
    }
}

fn bad(key: &str, message: impl std::fmt::Display) -> TrainError {
    TrainError::Config(format!("training.{key}: {message}"))
}

impl TrainingArguments {
    /// Checks values and combinations transformers refuses, naming the key.
    pub fn validate(&self) -> Result<()> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(bad("learning_rate", format!("{} must be a positive number", self.learning_rate)));
        }
        if self.per_device_train_batch_size == 0 {
            return Err(bad("per_device_train_batch_size", "must be at least 1"));
        }
        if self.per_device_eval_batch_size == 0 {
            return Err(bad("per_device_eval_batch_size", "must be at least 1"));
        }
        if self.gradient_accumulation_steps == 0 {
            return Err(bad("gradient_accumulation_steps", "must be at least 1"));
        }
        if self.max_steps <= 0 && !(self.num_train_epochs.is_finite() && self.num_train_epochs > 0.0) {
            return Err(bad(
                "num_train_epochs",
                format!("{} must be positive (or set max_steps)", self.num_train_epochs),
            ));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err(bad("warmup_ratio", format!("{} is not in [0, 1)", self.warmup_ratio)));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(bad("weight_decay", "must be ≥ 0"));
        }
        for (key, b) in [("adam_beta1", self.adam_beta1), ("adam_beta2", self.adam_beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(bad(key, format!("{b} is not in [0, 1)")));
            }
        }
        if !(self.adam_epsilon > 0.0) {
            return Err(bad("adam_epsilon", "must be positive"));
        }
        if !(self.max_grad_norm >= 0.0) {
            return Err(bad("max_grad_norm", "must be ≥ 0"));
        }
        if self.logging_strategy == IntervalStrategy::Steps && self.logging_steps == 0 {
            return Err(bad("logging_steps", "must be at least 1"));
        }
        if self.save_strategy == IntervalStrategy::Steps && self.save_steps == 0 {
            return Err(bad("save_steps", "must be at least 1"));
        }
        if self.eval_strategy == IntervalStrategy::Steps && self.eval_steps() == 0 {
            return Err(bad("eval_steps", "must be at least 1"));
        }
        if self.output_dir.as_os_str().is_empty() {
            return Err(bad("output_dir", "must not be empty"));
        }
        if self.load_best_model_at_end {
            if self.eval_strategy == IntervalStrategy::No {
                return Err(bad("load_best_model_at_end", "needs an eval_strategy other than \"no\""));
            }
            if self.save_strategy != self.eval_strategy {
                return Err(bad(
                    "load_best_model_at_end",
                    format!(
                        "needs save_strategy ({:?}) to equal eval_strategy ({:?})",
                        self.save_strategy, self.eval_strategy
                    ),
                ));
            }
            if self.eval_strategy == IntervalStrategy::Steps && self.save_steps % self.eval_steps() != 0 {
                return Err(bad(
                    "save_steps",
                    format!("{} must be a multiple of eval_steps {}", self.save_steps, self.eval_steps()),
                ));
            }
        }
        if self.early_stopping_patience.is_some() && !self.load_best_model_at_end {
            return Err(bad(
                "early_stopping_patience",
                "needs load_best_model_at_end = true (as EarlyStoppingCallback)",
            ));
        }
        Ok(())
    }

    /// Steps between evaluations.
    pub fn eval_steps(&self) -> usize {
        self.eval_steps.unwrap_or(self.logging_steps)
    }

    /// The metric that picks the best checkpoint, with the `eval_` prefix.
    pub fn best_metric_key(&self) -> String {
        let m = self.metric_for_best_model.clone().unwrap_or_else(|| "loss".into());
        if m.starts_with("eval_") { m } else { format!("eval_{m}") }
    }

    /// Whether a larger best-model metric is better.
    pub fn greater_is_better(&self) -> bool {
        self.greater_is_better.unwrap_or_else(|| !self.best_metric_key().ends_with("loss"))
    }

    /// Warmup steps for a run of `total` optimizer steps.
    pub fn warmup(&self, total: usize) -> usize {
        if self.warmup_steps > 0 { self.warmup_steps } else { (self.warmup_ratio * total as f64).ceil() as usize }
    }

    /// The names of all keys, for error messages.
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(Self::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_transformers() {
        let a = TrainingArguments::default();
        assert_eq!((a.learning_rate, a.per_device_train_batch_size, a.num_train_epochs), (5e-5, 8, 3.0));
        assert_eq!((a.adam_epsilon, a.max_grad_norm, a.seed, a.logging_steps), (1e-8, 1.0, 42, 500));
        a.validate().unwrap();
        assert_eq!(a.best_metric_key(), "eval_loss");
        assert!(!a.greater_is_better());
    }

    #[test]
    fn rejects_bad_values_naming_the_key() {
        let mut a = TrainingArguments { learning_rate: 0.0, ..Default::default() };
        assert!(a.validate().unwrap_err().to_string().contains("training.learning_rate"));
        a.learning_rate = 1e-5;
        a.per_device_train_batch_size = 0;
        assert!(a.validate().unwrap_err().to_string().contains("per_device_train_batch_size"));
        let a = TrainingArguments { load_best_model_at_end: true, ..Default::default() };
        assert!(a.validate().unwrap_err().to_string().contains("eval_strategy"));
    }

    #[test]
    fn best_metric_naming() {
        let a = TrainingArguments { metric_for_best_model: Some("accuracy".into()), ..Default::default() };
        assert_eq!(a.best_metric_key(), "eval_accuracy");
        assert!(a.greater_is_better());
    }
}
