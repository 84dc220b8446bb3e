//! # ft-train
//!
//! Fine-tuning with transformers' `Trainer` semantics:
//!
//! - [`args::TrainingArguments`]: transformers' names and defaults (`learning_rate`,
//!   `per_device_train_batch_size`, `num_train_epochs`, `max_steps`, `eval_strategy`,
//!   `save_strategy`, `logging_strategy`, `load_best_model_at_end`, `metric_for_best_model`,
//!   `save_total_limit`, `gradient_accumulation_steps`, `warmup_ratio`, `lr_scheduler_type`,
//!   `weight_decay`, `adam_*`, `max_grad_norm`, `seed`, early stopping, ...), validated with
//!   errors that name the key.
//! - [`run_config::RunConfig`]: the TOML run file of `ft train` (`[model]`, `[data]`,
//!   `[method]`, `[training]`), with `--set section.key=value` overrides.
//! - [`fit::fit`]: one training loop for every task ([`task::TrainTask`]: its batch type, its
//!   forward + loss, its evaluation accumulator) and method ([`fit::ModelStore`]: how its model
//!   is saved and restored); logging goes to [`fit::Callbacks`] and `tracing`, never stdout.
//! - [`trainer::train`]: the run file's method — full fine-tuning of a sequence or token
//!   classifier (§4, §9 of the notebook), or a frozen encoder with a linear head on the first
//!   token whose features are computed once and reused every epoch (§5), or a PEFT adapter
//!   on a frozen base (`lora`, `prompt`, `prefix`: §6-§8, [`peft`]); causal-LM training with
//!   transformers' `DataCollatorForLanguageModeling(mlm=False)` ([`task::causal`]). AdamW with transformers' decay groups and
//!   global-norm clipping ([`optim`]), its learning-rate schedules ([`schedule`]), gradient
//!   accumulation, evaluation with `eval_accuracy`/`eval_f1_macro` or seqeval's
//!   `eval_overall_*`, best-model tracking, early stopping, a stop with the step named on a
//!   NaN/infinite loss.
//! - The output directory as transformers writes it ([`state`]): `checkpoint-N/` folders
//!   (model in the Hub's layout, optimizer, RNG and scheduler state, `trainer_state.json`), the
//!   final model in the Hub's layout, `trainer_state.json` with `log_history`,
//!   `eval_results.json`, `train_results.json`, `all_results.json`. Every file is written
//!   atomically; `resume` continues from the newest checkpoint to the same final weights as an
//!   uninterrupted run.
//!
//! Burn's pieces are used where they have transformers' semantics (its AdamW and per-parameter
//! optimizer state, gradient accumulation, autodiff); the schedule, the decay groups, global-norm
//! clipping and the loop are ft's, because Burn's learner does not express them (see [`optim`]).

pub mod args;
pub mod data;
pub mod fit;
pub mod loss;
pub mod optim;
pub mod peft;
pub mod pitfalls;
pub mod report;
pub mod run_config;
pub mod schedule;
pub mod state;
pub mod task;
pub mod trainer;
pub mod vision;

mod error;

pub use error::{Result, TrainError};
pub use fit::{Callbacks, FitOptions, FitOutcome, ModelStore, fit};
pub use trainer::{TrainOptions, TrainOutcome, train, train_with};
