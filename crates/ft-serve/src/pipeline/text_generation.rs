//! `pipeline("text-generation")` for causal language models (GPT-2), and the next-token logits
//! `ft predict --task causal-lm` writes.

use burn::tensor::{Device, Tensor};
use ft_data::tokenize::TextTokenizer;
use ft_models::auto::{CausalLm, Loaded, ModelConfig};
use ft_models::generation::{GenerationConfig, generate_streaming, generate_with};
use ft_models::input::TextInput;
use ft_models::peft::PeftModel;

use super::common::{
    AdapterTokenizer, BatchShape, PipelineOptions, check_encodings, run_batched, switch_adapter, to_vec,
};
use crate::{Result, ServeError};

/// One generated continuation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GeneratedText {
    /// Index of the prompt it continues (`num_return_sequences` results share one).
    #[serde(skip)]
    pub prompt_index: usize,
    /// The prompt's token ids (`[bos]` for an empty prompt).
    pub prompt_ids: Vec<u32>,
    /// The new tokens only, up to and including the end-of-sequence token when one was made.
    pub token_ids: Vec<u32>,
    /// The new tokens decoded, special tokens skipped (the continuation, without the prompt).
    pub text: String,
}

/// The model's scores for the token after a text.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NextTokenLogits {
    /// The text's token ids, after truncation.
    pub input_ids: Vec<u32>,
    /// Logits over the whole vocabulary at the last position.
    pub next_token_logits: Vec<f32>,
}

/// A causal language model with its tokenizer and generation defaults.
#[derive(Debug)]
pub struct TextGenerationPipeline {
    model: PeftModel<CausalLm>,
    /// Truncating tokenizer (next-token logits).
    tokenizer: AdapterTokenizer,
    /// The same without truncation (prompts: a too-long prompt is an error, as in transformers).
    prompt_tokenizer: TextTokenizer,
    generation_config: GenerationConfig,
    config: ModelConfig,
    batch_size: usize,
    shape: BatchShape,
    device: Device,
}

impl TextGenerationPipeline {
    /// Wraps a loaded model; the tokenizer and `generation_config.json` (when present) come from
    /// the model's repository.
    pub fn new(loaded: Loaded<CausalLm>, options: &PipelineOptions, device: &Device) -> Result<Self> {
        Self::with_adapters(loaded.map(PeftModel::new), options, device)
    }

    /// Wraps a model with PEFT adapters; the active one runs (a LoRA adapter in the layers,
    /// a prompt-learning adapter's virtual tokens before every prompt, as PEFT's `generate`).
    pub fn with_adapters(
        loaded: Loaded<PeftModel<CausalLm>>,
        options: &PipelineOptions,
        device: &Device,
    ) -> Result<Self> {
        let tokenizer = AdapterTokenizer::new(&loaded, options, loaded.model.num_virtual_tokens())?;
        let prompt_tokenizer = tokenizer.get().clone().with_max_length(None)?;
        let generation_config = GenerationConfig::from_repo(&loaded.files)?;
        Ok(Self {
            model: loaded.model,
            tokenizer,
            prompt_tokenizer,
            generation_config,
            config: loaded.config,
            batch_size: options.batch_size,
            shape: options.into(),
            device: device.clone(),
        })
    }

    /// The tokenizer in use.
    pub fn tokenizer(&self) -> &TextTokenizer {
        self.tokenizer.get()
    }

    /// Makes adapter `name` the active one (`None`: adapters off, the base model alone) — cheap:
    /// no weights are reloaded; the tokenizer's truncation follows the adapter.
    pub fn set_adapter(&mut self, name: Option<&str>) -> Result<()> {
        switch_adapter(&mut self.model, &mut self.tokenizer, name)?;
        Ok(())
    }

    /// Virtual tokens of the active adapter (prompt or prefix tuning; 0 otherwise).
    pub fn num_virtual_tokens(&self) -> usize {
        self.model.num_virtual_tokens()
    }

    /// The model's generation defaults (`generation_config.json`, or none).
    pub fn generation_config(&self) -> &GenerationConfig {
        &self.generation_config
    }

    /// Continues each prompt: the model's `generation_config.json` overridden by `overrides`.
    /// Prompts run in left-padded batches of `batch_size`; `seed` makes sampling reproducible
    /// (batch `i` is seeded with `seed + i`). Results are in prompt order,
    /// `num_return_sequences` per prompt.
    pub fn generate(
        &self,
        prompts: &[&str],
        overrides: &GenerationConfig,
        seed: Option<u64>,
    ) -> Result<Vec<GeneratedText>> {
        let CausalLm::Gpt2(model) = &self.model.base;
        let virtual_tokens = self.model.virtual_tokens();
        let (settings, encodings) = self.prepare(prompts, overrides)?;
        let seed = seed.unwrap_or_else(clock_seed);
        let mut out = Vec::with_capacity(prompts.len().saturating_mul(settings.num_return_sequences).min(4096));
        for (c, chunk) in encodings.chunks(self.batch_size.max(1)).enumerate() {
            let ids: Vec<Vec<u32>> = chunk.iter().map(|e| e.input_ids.clone()).collect();
            let first = c * self.batch_size.max(1);
            let generated = generate_with(
                model,
                &ids,
                &settings,
                Some(seed.wrapping_add(c as u64)),
                &self.device,
                virtual_tokens.as_ref(),
            )
            .map_err(|e| match (chunk.len(), e) {
                (1, ft_models::ModelError::Input(message)) => ServeError::Input { index: first, message },
                (_, e) => e.into(),
            })?;
            for g in generated {
                let text = self.tokenizer.get().decode(&g.token_ids, true)?;
                out.push(GeneratedText {
                    prompt_index: first + g.prompt_index,
                    prompt_ids: g.prompt_ids,
                    token_ids: g.token_ids,
                    text,
                });
            }
        }
        Ok(out)
    }

    /// Continues one prompt as [`generate`](Self::generate) does (same settings, same seed →
    /// the same tokens), calling `on_text(token_id, text)` as each new token is chosen with the
    /// text it adds — decoded incrementally as transformers' `TextStreamer`: text is held back
    /// while it ends in an incomplete character, so pieces concatenate to the final text.
    /// `on_text` returning `false` stops generation (the client has gone).
    pub fn generate_stream(
        &self,
        prompt: &str,
        overrides: &GenerationConfig,
        seed: Option<u64>,
        on_text: &mut dyn FnMut(u32, &str) -> bool,
    ) -> Result<GeneratedText> {
        let CausalLm::Gpt2(model) = &self.model.base;
        let virtual_tokens = self.model.virtual_tokens();
        let (settings, encodings) = self.prepare(&[prompt], overrides)?;
        if settings.num_return_sequences != 1 {
            return Err(ServeError::Options("streaming returns one sequence: num_return_sequences must be 1".into()));
        }
        let ids: Vec<Vec<u32>> = encodings.iter().map(|e| e.input_ids.clone()).collect();
        let mut tokens: Vec<u32> = Vec::new();
        let mut sent = 0usize;
        let mut failed: Option<ServeError> = None;
        let generated = generate_streaming(
            model,
            &ids,
            &settings,
            Some(seed.unwrap_or_else(clock_seed)),
            &self.device,
            virtual_tokens.as_ref(),
            &mut |_, token| {
                tokens.push(token);
                let text = match self.tokenizer.get().decode(&tokens, true) {
                    Ok(t) => t,
                    Err(e) => {
                        failed = Some(e.into());
                        return false;
                    }
                };
                if text.ends_with('\u{FFFD}') || text.len() < sent || !text.is_char_boundary(sent) {
                    return on_text(token, "");
                }
                let piece = text[sent..].to_string();
                sent = text.len();
                on_text(token, &piece)
            },
        )
        .map_err(|e| match e {
            ft_models::ModelError::Input(message) => ServeError::Input { index: 0, message },
            e => e.into(),
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        let g = generated.into_iter().next().ok_or_else(|| ServeError::Readback("no generation".into()))?;
        let text = self.tokenizer.get().decode(&g.token_ids, true)?;
        // Text held back at the end (generation stopped inside a character) goes out last, so
        // that the pieces always add up to the text.
        if text.len() > sent && text.is_char_boundary(sent) {
            if let Some(&last) = g.token_ids.last() {
                on_text(last, &text[sent..]);
            }
        }
        Ok(GeneratedText { prompt_index: 0, prompt_ids: g.prompt_ids, token_ids: g.token_ids, text })
    }

    /// The settings (defaults overridden) and the prompts' encodings, each prompt checked.
    fn prepare(
        &self,
        prompts: &[&str],
        overrides: &GenerationConfig,
    ) -> Result<(ft_models::generation::GenerationSettings, Vec<ft_data::tokenize::Encoded>)> {
        let CausalLm::Gpt2(model) = &self.model.base;
        let settings = self.generation_config.overridden_by(overrides).resolve(&model.transformer.config).map_err(
            |e| match e {
                ft_models::ModelError::Input(m) => ServeError::Options(m),
                e => e.into(),
            },
        )?;
        let encodings = self.prompt_tokenizer.encode_batch(prompts)?;
        let vocab = self.config.vocab_size();
        for (i, e) in encodings.iter().enumerate() {
            if let Some(&bad) = e.input_ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(ServeError::Input {
                    index: i,
                    message: format!(
                        "token id {bad} is outside the model's vocabulary of {vocab}: the tokenizer does not belong to this model"
                    ),
                });
            }
            // Each prompt alone must leave room for its new tokens (an empty prompt starts from
            // bos: one token), so that a batch's error names the prompt at fault.
            let n_virtual = self.model.num_virtual_tokens();
            if let Err(ft_models::ModelError::Input(message)) =
                settings.new_tokens_for(n_virtual + e.input_ids.len().max(1))
            {
                return Err(ServeError::Input { index: i, message });
            }
        }
        Ok((settings, encodings))
    }

    /// Logits for the token after each text (truncated to `max_length`, else `n_positions`
    /// tokens, keeping the first), in right-padded batches — padding cannot change them: a
    /// causal model's last real token never sees the padding after it.
    pub fn next_token_logits(&self, texts: &[&str]) -> Result<Vec<NextTokenLogits>> {
        let CausalLm::Gpt2(model) = &self.model.base;
        let encodings = self.tokenizer.get().encode_batch(texts)?;
        check_encodings(&self.config, &encodings)?;
        let n_virtual = self.model.num_virtual_tokens();
        run_batched(&encodings, self.shape, self.tokenizer.get().pad_id(), &self.device, |batch, idx| {
            let logits = if n_virtual == 0 {
                // The base model (with LoRA in its layers): the head runs on the last rows only.
                let hidden = model.transformer.forward(batch.input_ids.clone(), None, None, None)?;
                let last: Vec<Tensor<3>> = batch
                    .lengths
                    .iter()
                    .enumerate()
                    .map(|(row, &len)| hidden.clone().narrow(0, row, 1).narrow(1, len - 1, 1))
                    .collect();
                to_vec(model.logits(Tensor::cat(last, 0)))?
            } else {
                // Virtual tokens before the text; the padding after it is masked out.
                let input = TextInput::ids(batch.input_ids.clone(), Some(batch.attention_mask.clone()));
                let all = self.model.forward(&input)?;
                let off = self.model.output_offset();
                let last: Vec<Tensor<3>> = batch
                    .lengths
                    .iter()
                    .enumerate()
                    .map(|(row, &len)| all.clone().narrow(0, row, 1).narrow(1, off + len - 1, 1))
                    .collect();
                to_vec(Tensor::cat(last, 0))?
            };
            let vocab = logits.len() / idx.len().max(1);
            Ok(idx
                .iter()
                .enumerate()
                .map(|(row, &i)| NextTokenLogits {
                    input_ids: encodings[i].input_ids.clone(),
                    next_token_logits: logits[row * vocab..(row + 1) * vocab].to_vec(),
                })
                .collect())
        })
    }
}

/// A seed from the clock (sampling without a seed).
fn clock_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}
