//! # ft-peft
//!
//! Parameter-efficient fine-tuning for ft's models — what Hugging Face PEFT and AdapterHub's
//! `adapters` library do in Python, with their semantics and their files. This crate knows
//! layers, configurations and files, not architectures: `ft-models` has the seams (projections,
//! adapter slots, input embeddings, past keys/values) and puts these layers in them, found by
//! the models' Hub names (`ft_models::peft`).
//!
//! - [`config`]: PEFT's `adapter_config.json` — `LoraConfig`, `PromptTuningConfig`,
//!   `PrefixTuningConfig` with PEFT's names and defaults; keys ft does not use are kept.
//! - [`lora`]: LoRA computed in activation space, `y = base(x) + B(A(dropout(x)))·s` with
//!   `s = lora_alpha / r` (`/ √r` with rsLoRA), PEFT's three initialisations, merge and unmerge
//!   deltas. Burn 0.22's own `apply_lora` cannot express this: it folds `W + s·A·B` into a
//!   dense weight on every forward pass, so dropout cannot act on the adapter path alone; it
//!   cannot unmerge; it holds one adapter per weight and initialises with a Gaussian only.
//!   The scaling multiplies the rank-`r` activations, and on the CPU `B`'s product is added into
//!   the base output's buffer by one node (`ft_hub::ops::linear_add`), so the adapter path makes
//!   no output-sized tensor of its own.
//! - [`prompt`]: prompt tuning's soft prompt (`RANDOM` or `TEXT` init), prepended to the input
//!   embeddings.
//! - [`prefix`]: prefix tuning's prefix encoder (with or without PEFT's two-layer tanh
//!   projection) and its layout as past keys and values of every layer.
//! - [`bottleneck`]: bottleneck adapters as AdapterHub's `adapters` library computes them
//!   (Pfeiffer / `seq_bn`, Houlsby / `double_seq_bn`); [`adapterhub`]: that library's configs
//!   and files; [`head`]: the prediction heads it gives an adapter.
//! - [`slot`]: the named adapters at one seam of a model; [`target`]: which modules an adapter
//!   takes (PEFT's `target_modules`, `modules_to_save` rules); [`files`]: the adapter folder
//!   (`adapter_config.json` + `adapter_model.safetensors`) and PEFT's tensor names;
//!   [`trainable_line`]: the line `print_trainable_parameters` prints.
//!
//! With nothing attached, the seams are the identity on the model's computation: the outputs
//! are bit-identical to the model without them (tested in `ft-models`).

pub mod adapterhub;
pub mod bottleneck;
pub mod config;
pub mod files;
pub mod head;
pub mod lora;
pub mod prefix;
pub mod prompt;
pub mod slot;
pub mod target;

mod error;

pub use error::PeftError;

/// Result type of this crate.
pub type Result<T, E = PeftError> = std::result::Result<T, E>;

/// `1234567` → `1,234,567` (Python's `{:,d}`).
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The line PEFT's `print_trainable_parameters` prints:
/// `trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364`.
pub fn trainable_line(trainable: usize, all: usize) -> String {
    let pct = if all == 0 { 0.0 } else { 100.0 * trainable as f64 / all as f64 };
    format!("trainable params: {} || all params: {} || trainable%: {pct:.4}", thousands(trainable), thousands(all))
}

#[cfg(test)]
mod tests {
    #[test]
    fn peft_prints_this_line() {
        assert_eq!(
            super::trainable_line(294_912, 124_734_720),
            "trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364"
        );
        assert_eq!(
            super::trainable_line(739_586, 67_694_596),
            "trainable params: 739,586 || all params: 67,694,596 || trainable%: 1.0925"
        );
    }
}
