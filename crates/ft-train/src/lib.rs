//! # ft-train
//!
//! Training for ft — what transformers' `Trainer` and `TrainingArguments` do in Python. This crate
//! is empty today; a later issue fills it with a trainer keeping `TrainingArguments`' names and
//! defaults (learning rate and schedule, batch sizes, epochs, evaluation/save/logging strategies,
//! best-model selection, gradient accumulation and clipping, weight decay, seed), checkpoints in
//! transformers' output layout (`checkpoint-N/`, `trainer_state.json`) written atomically with
//! resume, early stopping, and task definitions for sequence classification, token
//! classification, causal language modelling and image classification.
