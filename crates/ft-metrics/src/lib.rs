//! `ft-metrics`: the evaluation metrics of fine-tuning, each equal to the Python number users
//! know. Pure Rust, no Burn, usable alone.
//!
//! | module | metrics | reference |
//! |---|---|---|
//! | [`classification`] | accuracy; precision, recall, F1 (binary, micro, macro, weighted, per class; `zero_division`); confusion matrix; classification report (dict and text) | scikit-learn 1.9 |
//! | [`seqeval`] | entity-level precision, recall, F1 per type and overall, token accuracy; lenient and strict (IOB1, IOB2, IOE1, IOE2, IOBES, BILOU) modes | seqeval 1.2 through evaluate's `seqeval` |
//! | [`rouge`] | rouge1..9, rougeL, rougeLsum, with the Porter stemmer of [`porter`] | rouge_score 0.1.2 through evaluate's `rouge` |
//! | [`bleu`] | corpus BLEU with the 13a tokenizer, `max_order`, `smooth`, several references | evaluate's `bleu` (tensorflow/nmt `compute_bleu`) |
//! | [`evaluate`] | all of the above by name, on JSON, with evaluate's keyword arguments and result keys | `evaluate.load(name).compute(...)` |
//! | [`plot`] | confusion-matrix heatmaps as PNG and SVG | |
//! | [`curves`] | training curves (loss, metrics per step) as PNG | |
//!
//! Golden tests (`tests/golden.rs`) compare every metric with the Python references on the
//! randomized cases in `tests/fixtures/metrics/` (produced by `xtask/python/fixtures_metrics.py`,
//! regenerated with `cargo xtask fixtures metrics`), to 1e-9.
//!
//! Where ft departs from its reference, on purpose:
//! - ROUGE's aggregate is the exact mean of the per-pair F-measures; evaluate's is the median of a
//!   randomly seeded bootstrap (see [`rouge`]).
//! - Inputs Python refuses with an exception (empty inputs, a length mismatch, an unknown tag
//!   prefix in strict mode, ...) are a [`MetricsError`]; nothing a user passes in panics.
//!
//! ```
//! use ft_metrics::classification::{f1_score, Average, PrfOptions, Score};
//!
//! let references = [0, 1, 2, 0, 1, 2];
//! let predictions = [0, 2, 1, 0, 0, 1];
//! let options = PrfOptions { average: Average::Macro, ..PrfOptions::default() };
//! assert_eq!(f1_score(&references, &predictions, &options)?, Score::Value(0.26666666666666666));
//! # Ok::<(), ft_metrics::MetricsError>(())
//! ```

pub mod bleu;
pub mod classification;
pub mod curves;
mod error;
pub mod evaluate;
pub mod label;
pub mod plot;
pub mod porter;
pub mod rouge;
pub mod seqeval;

pub use error::{MetricsError, Result};
pub use label::Label;
