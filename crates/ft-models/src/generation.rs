//! Text generation as transformers' `generate` does it, for [`GPT2LMHeadModel`].
//!
//! - **Greedy** by default; `do_sample` draws from the softmax of the processed scores.
//! - **Logits processors**, in transformers' order: the repetition penalty (a processor: it
//!   applies to greedy decoding too; it covers the prompt's real tokens and the generated ones,
//!   not the left padding), then — only when sampling — temperature, top-k, top-p.
//! - **Length**: `max_new_tokens`, else `max_length` (prompt included), else transformers'
//!   default of 20 new tokens, capped at `n_positions`.
//! - **Stopping**: a row stops at any of `eos_token_id` (kept in its output); later steps of a
//!   finished row produce `pad_token_id` (else the model's, else the first end-of-sequence id),
//!   as transformers pads them; generation ends when every row has stopped. [`Generated`] holds
//!   each row's tokens up to and including its end-of-sequence token, without that padding.
//! - **Batches** are left-padded; position ids come from the attention mask
//!   (`cumsum(mask) - 1`, 0 on padding) as in `generate`, so a padded prompt gives the same
//!   tokens as the prompt alone. `num_return_sequences` repeats each prompt (sampling only).
//! - **KV cache**: with `use_cache` (the default) the prompt runs once and each step feeds one
//!   token per row; without, every step re-runs the whole sequence (`use_cache=False`). Both
//!   give the same tokens.
//! - **`generation_config.json`** ([`GenerationConfig::from_repo`]) supplies the defaults;
//!   explicit settings override it ([`GenerationConfig::overridden_by`]).
//!
//! # Randomness
//!
//! Sampling uses ft's own generator — NumPy's PCG64 seeded as `np.random.default_rng(seed)`
//! ([`ft_hub::rng::Pcg64`]), one uniform draw per sampled token — not torch's. The same seed
//! gives the same tokens in ft on every run and every backend (up to float differences that
//! move a draw across a token boundary), but not the tokens `torch.manual_seed(seed)` gives in
//! transformers. Greedy decoding uses no randomness and matches transformers token for token.
//!
//! # Limits (as transformers, stated)
//!
//! GPT-2 has `n_positions` learned positions. A prompt (left-padded batch width) of
//! `n_positions` tokens or more cannot be continued: transformers raises an error for it with
//! the default length and an index error with `max_new_tokens`; ft returns
//! [`ModelError::Input`] in both cases. An explicit length that would run past `n_positions`
//! is an error before anything is generated (transformers would fail mid-way). An empty prompt
//! starts from `bos_token_id`, as `generate` does without `input_ids`.

use std::collections::BTreeSet;
use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use ft_hub::hub::RepoFiles;
use ft_hub::rng::Pcg64;

use crate::config::read_json;
use crate::gpt2::{GPT2LMHeadModel, Gpt2Config, KvCache};
use crate::input::TextInput;
use crate::{ModelError, Result};

/// transformers' default `max_length` when nothing sets the length: 20 new tokens.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 20;

/// One id or a list of ids, as `generation_config.json` writes `eos_token_id`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            Self::One(id) => vec![*id],
            Self::Many(ids) => ids.clone(),
        }
    }
}

/// The generation settings of transformers' `GenerationConfig` that ft implements, as read from
/// `generation_config.json` (fields ft does not implement are ignored). Unset fields take the
/// model's or transformers' defaults in [`resolve`](Self::resolve).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct GenerationConfig {
    /// New tokens to generate at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
    /// Total length (prompt included) at most; `max_new_tokens` wins when both are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// Sample instead of greedy decoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_sample: Option<bool>,
    /// Divides the logits before sampling; must be > 0 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Keep the k most likely tokens when sampling (default 50); 0 disables top-k, as in
    /// transformers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`, in (0, 1]
    /// (default 1 = off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Penalty on tokens already present (> 0; 1 = off; > 1 discourages repetition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f64>,
    /// Sequences per prompt (> 1 only when sampling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_return_sequences: Option<usize>,
    /// End-of-sequence token(s); the model's `eos_token_id` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    /// Padding token; the model's, else the first end-of-sequence id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<u32>,
    /// Beginning-of-sequence token (starts an empty prompt); the model's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// Keep keys and values between steps (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_cache: Option<bool>,
}

impl GenerationConfig {
    /// Reads `generation_config.json`; errors name the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        read_json(path)
    }

    /// The repository's `generation_config.json`, or no settings when it has none.
    pub fn from_repo(files: &RepoFiles) -> Result<Self> {
        match files.get_optional("generation_config.json")? {
            Some(path) => Self::from_file(&path),
            None => Ok(Self::default()),
        }
    }

    /// These settings with every field that `other` sets replaced by `other`'s.
    pub fn overridden_by(&self, other: &GenerationConfig) -> Self {
        Self {
            max_new_tokens: other.max_new_tokens.or(self.max_new_tokens),
            // An explicit max_new_tokens makes a file's max_length irrelevant, and vice versa.
            max_length: if other.max_new_tokens.is_some() {
                other.max_length
            } else {
                other.max_length.or(self.max_length)
            },
            do_sample: other.do_sample.or(self.do_sample),
            temperature: other.temperature.or(self.temperature),
            top_k: other.top_k.or(self.top_k),
            top_p: other.top_p.or(self.top_p),
            repetition_penalty: other.repetition_penalty.or(self.repetition_penalty),
            num_return_sequences: other.num_return_sequences.or(self.num_return_sequences),
            eos_token_id: other.eos_token_id.clone().or_else(|| self.eos_token_id.clone()),
            pad_token_id: other.pad_token_id.or(self.pad_token_id),
            bos_token_id: other.bos_token_id.or(self.bos_token_id),
            use_cache: other.use_cache.or(self.use_cache),
        }
    }

    /// Applies the model's and transformers' defaults and checks every value, naming the
    /// setting at fault. Sampling settings (temperature, top-k, top-p) are checked only when
    /// sampling, as transformers checks them.
    pub fn resolve(&self, model: &Gpt2Config) -> Result<GenerationSettings> {
        let bad = |m: String| Err(ModelError::Input(m));
        if self.max_new_tokens == Some(0) {
            return bad(
                "max_new_tokens must be at least 1 (transformers: `max_new_tokens` must be greater than 0)".into()
            );
        }
        if self.max_length == Some(0) {
            return bad("max_length must be at least 1".into());
        }
        let do_sample = self.do_sample.unwrap_or(false);
        let temperature = self.temperature.unwrap_or(1.0);
        let top_k = self.top_k.unwrap_or(50);
        let top_p = self.top_p.unwrap_or(1.0);
        if do_sample {
            // (as f32 too: the logits are divided in f32, and a temperature that rounds to 0
            // would make every score infinite)
            if !(temperature > 0.0 && temperature.is_finite() && (temperature as f32) > 0.0) {
                return bad(format!(
                    "temperature must be a positive number, got {temperature} (for greedy decoding, do not sample)"
                ));
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return bad(format!("top_p must be in (0, 1], got {top_p}"));
            }
        }
        let repetition_penalty = self.repetition_penalty.unwrap_or(1.0);
        if !(repetition_penalty > 0.0 && repetition_penalty.is_finite()) {
            return bad(format!("repetition_penalty must be a positive number, got {repetition_penalty}"));
        }
        let num_return_sequences = self.num_return_sequences.unwrap_or(1);
        if num_return_sequences == 0 {
            return bad("num_return_sequences must be at least 1".into());
        }
        if num_return_sequences > MAX_RETURN_SEQUENCES {
            return bad(format!(
                "num_return_sequences must be at most {MAX_RETURN_SEQUENCES} (each sequence is a row of the batch), got {num_return_sequences}"
            ));
        }
        if num_return_sequences > 1 && !do_sample {
            return bad(format!(
                "greedy decoding gives one sequence per prompt; num_return_sequences = {num_return_sequences} \
                 needs sampling (transformers: greedy methods without beam search do not support it)"
            ));
        }
        let eos: Vec<u32> = match &self.eos_token_id {
            Some(ids) => ids.to_vec(),
            None => model.eos_token_id.into_iter().collect(),
        };
        let pad = self.pad_token_id.or(model.pad_token_id).or_else(|| eos.first().copied());
        let bos = self.bos_token_id.or(model.bos_token_id);
        for (name, id) in
            eos.iter().map(|&i| ("eos_token_id", Some(i))).chain([("pad_token_id", pad), ("bos_token_id", bos)])
        {
            if let Some(id) = id
                && id as usize >= model.vocab_size
            {
                return bad(format!("{name} {id} is outside the model's vocabulary of {}", model.vocab_size));
            }
        }
        Ok(GenerationSettings {
            max_new_tokens: self.max_new_tokens,
            max_length: self.max_length,
            do_sample,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            num_return_sequences,
            eos_token_ids: eos,
            pad_token_id: pad.unwrap_or(0),
            bos_token_id: bos,
            use_cache: self.use_cache.unwrap_or(true),
            n_positions: model.n_positions,
            vocab_size: model.vocab_size,
        })
    }
}

/// Checked generation settings (from [`GenerationConfig::resolve`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationSettings {
    /// Explicit number of new tokens.
    pub max_new_tokens: Option<usize>,
    /// Explicit total length.
    pub max_length: Option<usize>,
    /// Sample (else greedy).
    pub do_sample: bool,
    /// Temperature (sampling only).
    pub temperature: f64,
    /// Top-k, 0 = off (sampling only).
    pub top_k: usize,
    /// Top-p, 1 = off (sampling only).
    pub top_p: f64,
    /// Repetition penalty, 1 = off.
    pub repetition_penalty: f64,
    /// Sequences per prompt.
    pub num_return_sequences: usize,
    /// End-of-sequence ids (may be empty: then only the length stops generation).
    pub eos_token_ids: Vec<u32>,
    /// Token of finished rows and of left padding.
    pub pad_token_id: u32,
    /// Start of an empty prompt.
    pub bos_token_id: Option<u32>,
    /// Use the key/value cache.
    pub use_cache: bool,
    /// The model's number of positions.
    pub n_positions: usize,
    /// The model's vocabulary size.
    pub vocab_size: usize,
}

/// The most sequences per prompt ft generates (`num_return_sequences`): each is a row of the
/// batch, with its logits over the whole vocabulary at every step.
pub const MAX_RETURN_SEQUENCES: usize = 256;

impl GenerationSettings {
    /// The number of new tokens for a (padded) prompt of `width` tokens, as transformers'
    /// `_prepare_generated_length` computes it, or the error transformers would raise (or the
    /// index error it would hit).
    pub fn new_tokens_for(&self, width: usize) -> Result<usize> {
        let n_pos = self.n_positions;
        let fits = |new: usize, what: String| -> Result<usize> {
            if width.saturating_add(new) > n_pos {
                Err(ModelError::Input(format!(
                    "the prompt has {width} tokens and {what} asks for {new} more, but GPT-2 has only \
                     n_positions = {n_pos} positions (transformers fails with an index error once it runs \
                     past them): shorten the prompt or ask for at most {} new tokens",
                    n_pos.saturating_sub(width)
                )))
            } else {
                Ok(new)
            }
        };
        if width >= n_pos {
            return Err(ModelError::Input(format!(
                "the prompt has {width} tokens, which leaves no room to generate: GPT-2 has n_positions = {n_pos} \
                 positions (transformers raises an error for this too); shorten the prompt to at most {} tokens",
                n_pos - 1
            )));
        }
        match (self.max_new_tokens, self.max_length) {
            (Some(n), _) => fits(n, "max_new_tokens".into()),
            (None, Some(total)) => {
                if total <= width {
                    return Err(ModelError::Input(format!(
                        "the prompt has {width} tokens but max_length is {total}: nothing to generate \
                         (set max_new_tokens instead)"
                    )));
                }
                fits(total - width, format!("max_length {total}"))
            }
            (None, None) => Ok((width + DEFAULT_MAX_NEW_TOKENS).min(n_pos) - width),
        }
    }
}

/// One generated sequence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Generated {
    /// Index of the prompt it continues.
    pub prompt_index: usize,
    /// The prompt's token ids (unpadded; `[bos]` for an empty prompt).
    pub prompt_ids: Vec<u32>,
    /// The new tokens, up to and including the end-of-sequence token when one was generated.
    pub token_ids: Vec<u32>,
}

/// Repetition penalty over the tokens in `seen` (transformers' `RepetitionPenaltyLogitsProcessor`):
/// negative scores are multiplied by `penalty`, others divided.
pub fn apply_repetition_penalty(scores: &mut [f32], seen: &BTreeSet<u32>, penalty: f64) {
    let p = penalty as f32;
    for &id in seen {
        if let Some(s) = scores.get_mut(id as usize) {
            *s = if *s < 0.0 { *s * p } else { *s / p };
        }
    }
}

/// `scores / temperature` (transformers' `TemperatureLogitsWarper`).
pub fn apply_temperature(scores: &mut [f32], temperature: f64) {
    let t = temperature as f32;
    for s in scores.iter_mut() {
        *s /= t;
    }
}

/// Sets every score below the k-th largest to −∞ (transformers' `TopKLogitsWarper`: ties with
/// the k-th are kept). `k` = 0 or ≥ the vocabulary keeps everything.
pub fn apply_top_k(scores: &mut [f32], k: usize) {
    if k == 0 || k >= scores.len() {
        return;
    }
    let mut sorted: Vec<f32> = scores.to_vec();
    // k-th largest: NaN sorts first (as the smallest) so that it never becomes the threshold.
    sorted.select_nth_unstable_by(k - 1, |a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Less));
    let threshold = sorted[k - 1];
    for s in scores.iter_mut() {
        if *s < threshold {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// Nucleus filtering (transformers' `TopPLogitsWarper`): sorts ascending, removes the tokens
/// whose cumulative probability stays at or below `1 - top_p`, always keeping the most likely.
/// `top_p` ≥ 1 keeps everything.
pub fn apply_top_p(scores: &mut [f32], top_p: f64) {
    if top_p >= 1.0 {
        return;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].partial_cmp(&scores[b]).unwrap_or(std::cmp::Ordering::Equal));
    let probs = softmax(&order.iter().map(|&i| scores[i]).collect::<Vec<_>>());
    // torch's cumsum accumulates float32 in double on the CPU; the threshold is a float32.
    let threshold = (1.0 - top_p) as f32;
    let mut acc = 0f64;
    let last = order.len() - 1;
    for (rank, &i) in order.iter().enumerate() {
        acc += probs[rank] as f64;
        if rank != last && (acc as f32) <= threshold {
            scores[i] = f32::NEG_INFINITY;
        }
    }
}

pub use ft_hub::ops::softmax;

/// Index of the largest score, the first on ties (as `torch.argmax`); NaN never wins.
pub fn argmax(scores: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &s) in scores.iter().enumerate() {
        if s > best_v || (i == 0 && !s.is_nan()) {
            best = i;
            best_v = s;
        }
    }
    best
}

/// A uniform draw in [0, 1) with 53 random bits (NumPy's `Generator.random()`).
fn uniform(rng: &mut Pcg64) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Draws an index with probability proportional to `probs` (`torch.multinomial` with one
/// sample, on ft's generator).
pub fn sample_index(probs: &[f32], rng: &mut Pcg64) -> usize {
    let total: f64 = probs.iter().map(|&p| p as f64).sum();
    let target = uniform(rng) * total;
    let mut acc = 0f64;
    let mut last_positive = 0;
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            acc += p as f64;
            last_positive = i;
            if acc > target {
                return i;
            }
        }
    }
    last_positive
}

/// Applies the processors of `settings` to one row's scores and picks the next token.
///
/// `seen` is the row's prompt (without padding) and generated tokens, for the repetition penalty.
pub fn next_token(scores: &mut [f32], seen: &BTreeSet<u32>, settings: &GenerationSettings, rng: &mut Pcg64) -> u32 {
    if settings.repetition_penalty != 1.0 {
        apply_repetition_penalty(scores, seen, settings.repetition_penalty);
    }
    if !settings.do_sample {
        return argmax(scores) as u32;
    }
    if settings.temperature != 1.0 {
        apply_temperature(scores, settings.temperature);
    }
    apply_top_k(scores, settings.top_k);
    apply_top_p(scores, settings.top_p);
    sample_index(&softmax(scores), rng) as u32
}

/// generate()'s position ids: `cumsum(mask) - 1`, 0 on padding, row by row.
pub fn position_ids(mask: &[Vec<i64>]) -> Vec<i64> {
    mask.iter()
        .flat_map(|m| {
            let mut acc = 0i64;
            m.iter().map(move |&v| {
                acc += v;
                if v == 0 { 0 } else { acc - 1 }
            })
        })
        .collect()
}

fn int_tensor(values: Vec<i64>, shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// Virtual tokens a PEFT prompt-learning adapter puts before every prompt (see
/// [`generate_with`]).
#[derive(Debug, Clone)]
pub enum VirtualTokens {
    /// Prompt tuning: `[n, n_embd]` vectors prepended to the prompt's embeddings.
    Prompt(Tensor<2>),
    /// Prefix tuning: `[n, layers · 2 · n_embd]`, every layer's keys and values in PEFT's layout.
    Prefix(Tensor<2>),
}

impl VirtualTokens {
    fn len(&self) -> usize {
        match self {
            Self::Prompt(t) | Self::Prefix(t) => t.dims()[0],
        }
    }
}

/// Generates continuations of tokenized prompts (see the module documentation).
///
/// `seed` seeds the sampler (ignored by greedy decoding); `None` draws a seed from the clock.
/// Results are in prompt order, `num_return_sequences` per prompt.
pub fn generate(
    model: &GPT2LMHeadModel,
    prompts: &[Vec<u32>],
    settings: &GenerationSettings,
    seed: Option<u64>,
    device: &Device,
) -> Result<Vec<Generated>> {
    generate_with(model, prompts, settings, seed, device, None)
}

/// [`generate`] after a prompt-learning adapter's virtual tokens, as PEFT's
/// `PeftModelForCausalLM.generate`: the attention mask covers them, position ids are not derived
/// from the mask but run over virtual and real tokens (PEFT drops them), a soft prompt is
/// prepended to the first step's input embeddings, a prefix fills the key/value cache before
/// the first step (with `use_cache = false`, both are redone at every step). The virtual tokens
/// count against `n_positions`.
pub fn generate_with(
    model: &GPT2LMHeadModel,
    prompts: &[Vec<u32>],
    settings: &GenerationSettings,
    seed: Option<u64>,
    device: &Device,
    virtual_tokens: Option<&VirtualTokens>,
) -> Result<Vec<Generated>> {
    generate_streaming(model, prompts, settings, seed, device, virtual_tokens, &mut |_, _| true)
}

/// [`generate_with`], calling `on_token(row, token)` for every new token of every unfinished
/// row as it is chosen (rows: each prompt `num_return_sequences` times, in order) — for
/// streaming. `on_token` returning `false` stops generation after this step (the client has
/// gone); the tokens so far are returned.
pub fn generate_streaming(
    model: &GPT2LMHeadModel,
    prompts: &[Vec<u32>],
    settings: &GenerationSettings,
    seed: Option<u64>,
    device: &Device,
    virtual_tokens: Option<&VirtualTokens>,
    on_token: &mut dyn FnMut(usize, u32) -> bool,
) -> Result<Vec<Generated>> {
    let _span = tracing::debug_span!("generate", prompts = prompts.len(), sample = settings.do_sample).entered();
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let vocab = settings.vocab_size;
    // Rows: each prompt `num_return_sequences` times, in order (transformers' repeat_interleave).
    let mut rows: Vec<(usize, Vec<u32>)> = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let ids = if p.is_empty() {
            match settings.bos_token_id {
                Some(bos) => vec![bos],
                None => {
                    return Err(ModelError::Input(format!(
                        "prompt {i} is empty and the model has no bos_token_id to start from"
                    )));
                }
            }
        } else {
            p.clone()
        };
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(ModelError::Input(format!(
                "prompt {i}: token id {bad} is outside the model's vocabulary of {vocab}"
            )));
        }
        for _ in 0..settings.num_return_sequences {
            rows.push((i, ids.clone()));
        }
    }
    let b = rows.len();
    let width = rows.iter().map(|(_, r)| r.len()).max().unwrap_or(1);
    let n_virtual = virtual_tokens.map_or(0, VirtualTokens::len);
    let max_new = settings.new_tokens_for(n_virtual + width)?;
    let padded = rows.iter().any(|(_, r)| r.len() != width);
    let pad = settings.pad_token_id;
    let config = &model.transformer.config;
    let prefix_cache = |virtual_tokens: Option<&VirtualTokens>| match virtual_tokens {
        Some(VirtualTokens::Prefix(p)) => KvCache::from_prefix(p.clone(), b, config.n_layer, config.n_head),
        _ => None,
    };

    // Left-padded ids and the attention mask, extended by one column per step.
    let mut ids: Vec<Vec<u32>> = Vec::with_capacity(b);
    let mut mask: Vec<Vec<i64>> = Vec::with_capacity(b);
    for (_, r) in &rows {
        let n_pad = width - r.len();
        let mut row = vec![pad; n_pad];
        row.extend_from_slice(r);
        ids.push(row);
        let mut m = vec![0i64; n_pad];
        m.extend(std::iter::repeat_n(1i64, r.len()));
        mask.push(m);
    }
    let mut seen: Vec<BTreeSet<u32>> = rows.iter().map(|(_, r)| r.iter().copied().collect()).collect();
    let mut generated: Vec<Vec<u32>> = vec![Vec::with_capacity(max_new); b];
    let mut finished = vec![false; b];
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
    });
    let mut rng = Pcg64::from_seed(seed as u128);
    let mut cache = settings.use_cache.then(|| prefix_cache(virtual_tokens).unwrap_or_default());
    if n_virtual > 0 {
        for m in &mut mask {
            m.splice(0..0, std::iter::repeat_n(1i64, n_virtual));
        }
    }

    let mut keep_going = true;
    for step in 0..max_new {
        let total = width + step;
        let logits = if let Some(v) = virtual_tokens.filter(|_| n_virtual > 0) {
            // PEFT's path: the mask always, positions from the cache (virtual tokens first).
            let mask_t = Some(int_tensor(mask.iter().flatten().copied().collect(), [b, n_virtual + total], device));
            match cache.as_mut() {
                Some(cache) if step > 0 => {
                    let last: Vec<i64> = ids.iter().map(|r| r[total - 1] as i64).collect();
                    model.forward_last(int_tensor(last, [b, 1], device), mask_t, None, Some(cache))?
                }
                cache => {
                    let flat: Vec<i64> = ids.iter().flatten().map(|&x| x as i64).collect();
                    let ids_t = int_tensor(flat, [b, total], device);
                    let mut fresh = prefix_cache(virtual_tokens);
                    let cache = match cache {
                        Some(c) => Some(c),
                        None => fresh.as_mut(),
                    };
                    match v {
                        VirtualTokens::Prompt(p) => {
                            let [n, h] = p.dims();
                            let prompt = p.clone().unsqueeze::<3>().expand([b, n, h]);
                            let embeds = Tensor::cat(vec![prompt, model.transformer.wte.forward(ids_t)], 1);
                            model.forward_input_last(&TextInput::embeds(embeds, mask_t), cache)?
                        }
                        VirtualTokens::Prefix(_) => model.forward_last(ids_t, mask_t, None, cache)?,
                    }
                }
            }
        } else {
            // Without padding the model's defaults (no mask: causal only; positions 0..) are exact.
            let mask_t = padded.then(|| int_tensor(mask.iter().flatten().copied().collect(), [b, total], device));
            match cache.as_mut() {
                Some(cache) if step > 0 => {
                    let last: Vec<i64> = ids.iter().map(|r| r[total - 1] as i64).collect();
                    let pos = padded.then(|| {
                        let p = mask.iter().map(|m| m.iter().sum::<i64>() - 1).collect();
                        int_tensor(p, [b, 1], device)
                    });
                    model.forward_last(int_tensor(last, [b, 1], device), mask_t, pos, Some(cache))?
                }
                cache => {
                    let flat: Vec<i64> = ids.iter().flatten().map(|&x| x as i64).collect();
                    let pos = padded.then(|| int_tensor(position_ids(&mask), [b, total], device));
                    model.forward_last(int_tensor(flat, [b, total], device), mask_t, pos, cache)?
                }
            }
        };
        let values: Vec<f32> = logits
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| ModelError::Input(format!("reading logits back from the device: {e:?}")))?;
        for r in 0..b {
            let token = if finished[r] {
                pad
            } else {
                let mut row = values[r * vocab..(r + 1) * vocab].to_vec();
                next_token(&mut row, &seen[r], settings, &mut rng)
            };
            ids[r].push(token);
            mask[r].push(1);
            if !finished[r] {
                generated[r].push(token);
                seen[r].insert(token);
                finished[r] = settings.eos_token_ids.contains(&token);
                keep_going &= on_token(r, token);
            }
        }
        if finished.iter().all(|&f| f) || !keep_going {
            break;
        }
    }
    Ok(rows
        .into_iter()
        .zip(generated)
        .map(|((prompt_index, prompt_ids), token_ids)| Generated { prompt_index, prompt_ids, token_ids })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Gpt2Config {
        serde_json::from_str(r#"{"n_positions": 32, "vocab_size": 100, "eos_token_id": 7, "bos_token_id": 7}"#).unwrap()
    }

    fn settings(json: &str) -> Result<GenerationSettings> {
        serde_json::from_str::<GenerationConfig>(json).unwrap().resolve(&config())
    }

    #[test]
    fn defaults_follow_transformers() {
        let s = settings("{}").unwrap();
        assert!(!s.do_sample && s.use_cache);
        assert_eq!((s.top_k, s.top_p, s.temperature, s.repetition_penalty), (50, 1.0, 1.0, 1.0));
        assert_eq!((s.eos_token_ids.clone(), s.pad_token_id, s.bos_token_id), (vec![7], 7, Some(7)));
        // 20 new tokens by default, capped at n_positions.
        assert_eq!(s.new_tokens_for(5).unwrap(), 20);
        assert_eq!(s.new_tokens_for(24).unwrap(), 8);
        assert!(s.new_tokens_for(32).is_err());
    }

    #[test]
    fn lengths() {
        let s = settings(r#"{"max_new_tokens": 10, "max_length": 12}"#).unwrap();
        assert_eq!(s.new_tokens_for(5).unwrap(), 10, "max_new_tokens wins");
        let msg = s.new_tokens_for(25).unwrap_err().to_string();
        assert!(msg.contains("n_positions = 32") && msg.contains("at most 7"), "{msg}");
        let s = settings(r#"{"max_length": 12}"#).unwrap();
        assert_eq!(s.new_tokens_for(5).unwrap(), 7);
        assert!(s.new_tokens_for(12).unwrap_err().to_string().contains("max_length is 12"));
    }

    #[test]
    fn bad_values_are_errors_naming_the_setting() {
        for (json, word) in [
            (r#"{"max_new_tokens": 0}"#, "max_new_tokens"),
            (r#"{"do_sample": true, "temperature": 0.0}"#, "temperature"),
            (r#"{"do_sample": true, "temperature": -1.0}"#, "temperature"),
            (r#"{"do_sample": true, "top_p": 0.0}"#, "top_p"),
            (r#"{"do_sample": true, "top_p": 1.5}"#, "top_p"),
            (r#"{"repetition_penalty": 0.0}"#, "repetition_penalty"),
            (r#"{"num_return_sequences": 2}"#, "num_return_sequences"),
            (r#"{"num_return_sequences": 0}"#, "num_return_sequences"),
            (r#"{"eos_token_id": [3, 500]}"#, "eos_token_id"),
        ] {
            let msg = settings(json).unwrap_err().to_string();
            assert!(msg.contains(word), "{json}: {msg}");
        }
        // Sampling settings are not checked (nor used) by greedy decoding, as in transformers.
        settings(r#"{"temperature": 0.0, "top_p": 0.0}"#).unwrap();
        // top_k 0 disables top-k.
        let s = settings(r#"{"do_sample": true, "top_k": 0, "num_return_sequences": 3}"#).unwrap();
        assert_eq!((s.top_k, s.num_return_sequences), (0, 3));
    }

    #[test]
    fn overrides_win_and_lists_parse() {
        let file: GenerationConfig =
            serde_json::from_str(r#"{"max_length": 50, "do_sample": true, "top_k": 10, "eos_token_id": [1, 2]}"#)
                .unwrap();
        let cli = GenerationConfig { max_new_tokens: Some(5), top_k: Some(3), ..Default::default() };
        let merged = file.overridden_by(&cli);
        assert_eq!((merged.max_new_tokens, merged.max_length, merged.top_k), (Some(5), None, Some(3)));
        assert_eq!(merged.do_sample, Some(true));
        assert_eq!(merged.eos_token_id.unwrap().to_vec(), vec![1, 2]);
    }

    #[test]
    fn processors() {
        let mut s = vec![2.0f32, -1.0, 0.5, 3.0];
        apply_repetition_penalty(&mut s, &[1u32, 3].into_iter().collect(), 2.0);
        assert_eq!(s, vec![2.0, -2.0, 0.5, 1.5]);
        let mut s = vec![1.0f32, 3.0, 2.0, 3.0, 0.0];
        apply_top_k(&mut s, 2);
        assert_eq!(s, vec![f32::NEG_INFINITY, 3.0, f32::NEG_INFINITY, 3.0, f32::NEG_INFINITY]);
        let mut s = vec![1.0f32, 3.0, 2.0, 3.0, 0.0];
        apply_top_k(&mut s, 3);
        assert_eq!(s.iter().filter(|v| v.is_finite()).count(), 3);
        // probabilities 0.5, 0.25, 0.125, 0.125: top_p 0.7 keeps the two best.
        let l = |p: f64| p.ln() as f32;
        let mut s = vec![l(0.125), l(0.5), l(0.125), l(0.25)];
        apply_top_p(&mut s, 0.7);
        assert!(s[1].is_finite() && s[3].is_finite() && !s[0].is_finite() && !s[2].is_finite(), "{s:?}");
        let mut s = vec![l(0.125), l(0.5), l(0.125), l(0.25)];
        apply_top_p(&mut s, 0.01);
        assert_eq!(s.iter().filter(|v| v.is_finite()).count(), 1);
        assert_eq!(argmax(&[1.0, 5.0, 5.0, f32::NAN]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5]), 1);
    }

    #[test]
    fn sampling_follows_the_distribution_and_the_seed() {
        let probs = [0.1f32, 0.0, 0.6, 0.3];
        let mut rng = Pcg64::from_seed(7);
        let mut counts = [0usize; 4];
        for _ in 0..20000 {
            counts[sample_index(&probs, &mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        for (c, p) in counts.iter().zip(probs) {
            assert!((*c as f64 / 20000.0 - p as f64).abs() < 0.015, "{counts:?}");
        }
        let draw = |seed| {
            let mut rng = Pcg64::from_seed(seed);
            (0..10).map(|_| sample_index(&probs, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
