//! The notebook's §14 pitfalls, caught while training (every task and method):
//!
//! - **Overfitting**: the evaluation loss rises for `overfitting_patience` evaluations in a row
//!   while the training loss falls → a warning that names early stopping ([`OverfitWatch`]).
//! - **Label leakage**: rows (texts, token lists, images) that occur in both the training and the
//!   evaluation split → a warning with the word "leakage", the count and examples
//!   ([`find_leakage`]); `ft train --strict` makes it an error before training.
//! - **Tokenizer mismatch**: a tokenizer whose ids or special tokens fall outside the model's
//!   embedding rows → an error before training ([`check_tokenizer`]).
//! - **Catastrophic forgetting** (causal-LM runs): perplexity on a held-out generic English text
//!   ([`GENERIC_TEXT`]) before and after training, reported as `generic_perplexity_before` /
//!   `generic_perplexity_after`, with a warning when it rose by more than
//!   [`FORGETTING_WARN_RATIO`].
//!
//! What was found goes to `tracing` (warnings), to `trainer_state.json` (`ft_pitfalls`, one
//! [`Pitfall`] each) and to the run's outcome.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use crate::{Result, TrainError};

/// One finding, as written in `trainer_state.json`'s `ft_pitfalls`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pitfall {
    /// `"overfitting"`, `"leakage"` or `"forgetting"`.
    pub kind: String,
    /// Whether it is a warning (false: a measurement that found nothing wrong, e.g. the
    /// forgetting probe's perplexities when they did not rise).
    pub warning: bool,
    /// The sentence printed to the user.
    pub message: String,
    /// The numbers behind it.
    #[serde(default)]
    pub details: Value,
}

impl Pitfall {
    /// Logs the finding (`warn` for warnings, `info` otherwise).
    pub fn log(&self) {
        if self.warning {
            tracing::warn!(kind = %self.kind, "{}", self.message);
        } else {
            tracing::info!(kind = %self.kind, "{}", self.message);
        }
    }
}

/// The key two rows are compared by: whitespace collapsed, lower-cased, hashed.
pub fn text_key(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    for word in text.split_whitespace() {
        word.to_lowercase().hash(&mut h);
    }
    h.finish()
}

/// The key of raw bytes (an image file).
pub fn bytes_key(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The text of a dataset cell: a string, or a list of tokens joined by spaces.
pub fn cell_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// How many examples a leakage warning shows.
const LEAKAGE_EXAMPLES: usize = 3;

/// Label leakage: the evaluation rows whose key (see [`text_key`], [`bytes_key`]) is also a
/// training row's. `describe(i)` names evaluation row `i` in the examples; `what` is the kind of
/// row ("texts", "images"). `None` when the splits share nothing.
pub fn find_leakage(train: &[u64], eval: &[u64], what: &str, describe: impl Fn(usize) -> String) -> Option<Pitfall> {
    let train_keys: std::collections::HashSet<u64> = train.iter().copied().collect();
    let leaked: Vec<usize> = eval.iter().enumerate().filter(|(_, k)| train_keys.contains(k)).map(|(i, _)| i).collect();
    if leaked.is_empty() {
        return None;
    }
    // Distinct shared rows (a text repeated in the evaluation split counts once per row).
    let mut distinct: HashMap<u64, usize> = HashMap::new();
    for &i in &leaked {
        *distinct.entry(eval[i]).or_default() += 1;
    }
    let examples: Vec<String> = leaked.iter().take(LEAKAGE_EXAMPLES).map(|&i| describe(i)).collect();
    let share = 100.0 * leaked.len() as f64 / eval.len().max(1) as f64;
    let message = format!(
        "label leakage: {} of the {} evaluation {what} ({share:.1}%) also occur in the training split, so the \
         evaluation overstates how well the model generalises; e.g. {}. Remove them from one split \
         (`ft train --strict` refuses such runs)",
        leaked.len(),
        eval.len(),
        examples.join("; ")
    );
    Some(Pitfall {
        kind: "leakage".into(),
        warning: true,
        message,
        details: json!({
            "eval_rows_in_train": leaked.len(),
            "distinct": distinct.len(),
            "eval_rows": eval.len(),
            "examples": examples,
        }),
    })
}

/// A leakage message as `--strict`'s error: without the advice to use `--strict`.
pub fn strict_message(message: &str) -> String {
    message.replace(" (`ft train --strict` refuses such runs)", "")
}

/// A short text for messages: the first `n` characters, quoted.
pub fn quote(text: &str, n: usize) -> String {
    let short: String = text.chars().take(n).collect();
    if short.len() < text.len() { format!("\"{short}…\"") } else { format!("\"{short}\"") }
}

/// Tokenizer mismatch: every id the tokenizer can produce (its vocabulary with added tokens, its
/// padding and unknown tokens) must be a row of the model's embeddings (`vocab_size`), and the
/// special token ids the model's `config.json` names (`bos_token_id`, `eos_token_id`,
/// `pad_token_id`, `sep_token_id`, `cls_token_id`, `decoder_start_token_id`) must be tokens of
/// the tokenizer. Errors before training, naming the tokenizer file and the model.
pub fn check_tokenizer(
    tokenizer: &ft_data::tokenize::TextTokenizer,
    model_config: &ft_models::auto::ModelConfig,
    model: &str,
) -> Result<()> {
    let model_vocab_size = model_config.vocab_size();
    let path = tokenizer.path().display();
    if let Some((token, id)) = tokenizer.max_token() {
        if id as usize >= model_vocab_size {
            return Err(TrainError::Config(format!(
                "tokenizer mismatch: {path} has token ids up to {id} ('{token}', {} tokens) but the model {model} has \
                 {model_vocab_size} embedding rows (config.json vocab_size): the tokenizer belongs to another model. \
                 Use the model's own tokenizer files",
                tokenizer.vocab_size()
            )));
        }
    }
    for key in
        ["bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "cls_token_id", "decoder_start_token_id"]
    {
        let Some(id) = model_config.raw.get(key).and_then(serde_json::Value::as_u64) else { continue };
        if tokenizer.id_to_token(id as u32).is_none() {
            return Err(TrainError::Config(format!(
                "tokenizer mismatch: the model {model}'s config.json has {key} = {id}, but {path} has no token with that \
                 id ({} tokens): the tokenizer belongs to another model. Use the model's own tokenizer files",
                tokenizer.vocab_size()
            )));
        }
    }
    for (what, id) in [("padding", Some(tokenizer.pad_id())), ("unknown", tokenizer.unk_id())] {
        if let Some(id) = id.filter(|&id| id as usize >= model_vocab_size) {
            return Err(TrainError::Config(format!(
                "tokenizer mismatch: the {what} token of {path} has id {id}, outside the {model_vocab_size} embedding rows \
                 of the model {model} (config.json vocab_size)"
            )));
        }
    }
    Ok(())
}

/// Overfitting: watches the evaluations of a run.
#[derive(Debug, Clone)]
pub struct OverfitWatch {
    patience: usize,
    /// `(step, mean training loss since the previous evaluation, eval_loss)`.
    history: Vec<(usize, f64, f64)>,
    warned: bool,
}

impl OverfitWatch {
    /// Warns once the evaluation loss has risen `patience` times in a row (0 turns it off).
    pub fn new(patience: usize) -> Self {
        Self { patience, history: Vec::new(), warned: false }
    }

    /// Records an evaluation at `step`; returns the warning the first time the evaluation loss
    /// has risen at each of the last `patience` evaluations while the training loss fell over
    /// them.
    pub fn observe(&mut self, step: usize, train_loss: f64, eval_loss: f64) -> Option<Pitfall> {
        self.history.push((step, train_loss, eval_loss));
        let n = self.history.len();
        if self.warned || self.patience == 0 || n < self.patience + 1 {
            return None;
        }
        let window = &self.history[n - self.patience - 1..];
        let eval_rising = window.windows(2).all(|w| w[1].2 > w[0].2);
        let train_falling = window[window.len() - 1].1 < window[0].1;
        if !(eval_rising && train_falling) {
            return None;
        }
        self.warned = true;
        let fmt = |f: &dyn Fn(&(usize, f64, f64)) -> f64| {
            window.iter().map(|e| format!("{:.4}", f(e))).collect::<Vec<_>>().join(" → ")
        };
        let (first, last) = (window[0].0, window[window.len() - 1].0);
        let message = format!(
            "overfitting: eval_loss rose at each of the last {} evaluations (steps {first}–{last}: {}) while the \
             training loss fell ({}). Use early stopping (`early_stopping_patience` with \
             `load_best_model_at_end = true`), fewer epochs, or more data",
            self.patience,
            fmt(&|e| e.2),
            fmt(&|e| e.1),
        );
        Some(Pitfall {
            kind: "overfitting".into(),
            warning: true,
            message,
            details: json!({
                "steps": window.iter().map(|e| e.0).collect::<Vec<_>>(),
                "train_loss": window.iter().map(|e| e.1).collect::<Vec<_>>(),
                "eval_loss": window.iter().map(|e| e.2).collect::<Vec<_>>(),
            }),
        })
    }
}

/// The perplexity rise (after / before) above which the forgetting probe warns.
pub const FORGETTING_WARN_RATIO: f64 = 1.2;

/// The forgetting probe's finding from the perplexities before and after training.
pub fn forgetting(before: f64, after: f64) -> Pitfall {
    let ratio = after / before;
    let warning = !ratio.is_finite() || ratio > FORGETTING_WARN_RATIO;
    let message = if warning {
        format!(
            "catastrophic forgetting: perplexity on a held-out generic English text rose from {before:.2} to {after:.2} \
             (×{ratio:.2}) — the model lost general language ability while fitting this data; use a lower learning \
             rate, fewer epochs, a parameter-efficient method (LoRA) instead of full fine-tuning, or mix generic text \
             into the training data"
        )
    } else {
        format!(
            "forgetting probe: perplexity on a held-out generic English text {before:.2} before training, {after:.2} after \
             (×{ratio:.2})"
        )
    };
    Pitfall {
        kind: "forgetting".into(),
        warning,
        message,
        details: json!({"generic_perplexity_before": before, "generic_perplexity_after": after}),
    }
}

/// The held-out generic English text of the forgetting probe: plain descriptive prose on
/// everyday subjects (written for ft; in no training set ft ships), one paragraph per example.
pub const GENERIC_TEXT: [&str; 6] = [
    "The town library opens at nine in the morning and closes at six in the evening. On weekdays it is quiet, \
     and most of the people who come in are students who sit at the long tables near the windows. On Saturdays \
     families arrive with small children, who choose picture books from the low shelves at the back of the room.",
    "Bread is made from flour, water, salt and yeast. The dough is mixed, left to rise for an hour or two, shaped \
     into loaves and baked in a hot oven. A good crust forms when the oven is very hot at the start, and the \
     bread should cool for a while before it is cut.",
    "The river runs through the middle of the city, and several old stone bridges cross it. In the spring the \
     water is high and fast after the snow melts in the mountains. In late summer it is low and slow, and people \
     walk along its banks in the evening when the air is cooler.",
    "Most birds build their nests in the spring. Some use twigs and grass, others mud or feathers, and a few \
     simply lay their eggs on bare rock. The parents take turns keeping the eggs warm, and after the chicks hatch \
     they spend most of the day bringing them food.",
    "A bicycle needs little care to keep working well. The chain should be cleaned and oiled every few weeks, the \
     tyres checked for the right pressure, and the brakes tested before a long ride. With that, an ordinary \
     bicycle can last for many years and many thousands of miles.",
    "When the weather turns cold, many people spend more time at home. They read, cook larger meals, and invite \
     friends over in the evening. The days are short, so lamps are lit early, and the smell of soup or baking \
     often fills the kitchen by late afternoon.",
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn leakage_counts_shared_rows_and_names_examples() {
        let train: Vec<u64> = ["a b", "Hello  World", "c"].iter().map(|t| text_key(t)).collect();
        let eval_texts = ["hello world", "x", "c", "y"];
        let eval: Vec<u64> = eval_texts.iter().map(|t| text_key(t)).collect();
        let p = find_leakage(&train, &eval, "texts", |i| quote(eval_texts[i], 20)).unwrap();
        assert!(p.warning && p.kind == "leakage");
        assert!(p.message.contains("leakage") && p.message.contains("2 of the 4"), "{}", p.message);
        assert!(p.message.contains("\"hello world\"") && p.message.contains("\"c\""), "{}", p.message);
        assert_eq!(p.details["eval_rows_in_train"], 2);
        assert!(find_leakage(&train, &[text_key("new")], "texts", |_| String::new()).is_none());
    }

    #[test]
    fn overfitting_needs_rising_eval_and_falling_train_loss() {
        let mut w = OverfitWatch::new(2);
        assert!(w.observe(10, 1.0, 0.50).is_none());
        assert!(w.observe(20, 0.8, 0.55).is_none());
        let p = w.observe(30, 0.6, 0.60).unwrap();
        assert!(
            p.message.contains("early stopping") && p.message.contains("0.5000 → 0.5500 → 0.6000"),
            "{}",
            p.message
        );
        // Warned once.
        assert!(w.observe(40, 0.5, 0.7).is_none());
        // Eval loss rising but training loss rising too: underfitting or divergence, not this.
        let mut w = OverfitWatch::new(2);
        w.observe(1, 1.0, 0.5);
        w.observe(2, 1.1, 0.6);
        assert!(w.observe(3, 1.2, 0.7).is_none());
        // A dip breaks the streak.
        let mut w = OverfitWatch::new(2);
        w.observe(1, 1.0, 0.5);
        w.observe(2, 0.9, 0.4);
        assert!(w.observe(3, 0.8, 0.45).is_none());
        assert!(w.observe(4, 0.7, 0.5).is_some());
        assert!(OverfitWatch::new(0).observe(1, 0.0, 1.0).is_none());
    }

    #[test]
    fn forgetting_warns_above_the_ratio() {
        assert!(!forgetting(20.0, 21.0).warning);
        let p = forgetting(20.0, 40.0);
        assert!(p.warning && p.message.contains("catastrophic forgetting"), "{}", p.message);
        assert!(forgetting(20.0, f64::NAN).warning);
    }

    #[test]
    fn cells_become_text() {
        assert_eq!(cell_text(&json!("x y")), "x y");
        assert_eq!(cell_text(&json!(["EU", "rejects"])), "EU rejects");
    }
}
