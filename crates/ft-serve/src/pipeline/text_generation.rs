//! `pipeline("text-generation")` for causal language models (GPT-2), and the next-token logits
//! `ft predict --task causal-lm` writes.

use burn::tensor::{Device, Tensor};
use ft_data::tokenize::TextTokenizer;
use ft_models::auto::{CausalLm, Loaded, ModelConfig};
use ft_models::generation::{GenerationConfig, generate_with};
use ft_models::input::TextInput;
use ft_models::peft::PeftModel;

use super::common::{PipelineOptions, check_encodings, run_batched, to_vec, tokenizer_for};
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
    tokenizer: TextTokenizer,
    /// The same without truncation (prompts: a too-long prompt is an error, as in transformers).
    prompt_tokenizer: TextTokenizer,
    generation_config: GenerationConfig,
    config: ModelConfig,
    batch_size: usize,
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
    pub fn with_adapters(loaded: Loaded<PeftModel<CausalLm>>, options: &PipelineOptions, device: &Device) -> Result<Self> {
        let tokenizer = tokenizer_for(&loaded, options, loaded.model.num_virtual_tokens())?;
        let prompt_tokenizer = tokenizer.clone().with_max_length(None)?;
        let generation_config = GenerationConfig::from_repo(&loaded.files)?;
        Ok(Self {
            model: loaded.model,
            tokenizer,
            prompt_tokenizer,
            generation_config,
            config: loaded.config,
            batch_size: options.batch_size,
            device: device.clone(),
        })
    }

    /// The tokenizer in use.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The model's generation defaults (`generation_config.json`, or none).
    pub fn generation_config(&self) -> &GenerationConfig {
        &self.generation_config
    }

    /// Continues each prompt: the model's `generation_config.json` overridden by `overrides`.
    /// Prompts run in left-padded batches of `batch_size`; `seed` makes sampling reproducible
    /// (batch `i` is seeded with `seed + i`). Results are in prompt order,
    /// `num_return_sequences` per prompt.
    pub fn generate(&self, prompts: &[&str], overrides: &GenerationConfig, seed: Option<u64>) -> Result<Vec<GeneratedText>> {
        let CausalLm::Gpt2(model) = &self.model.base;
        let virtual_tokens = self.model.virtual_tokens();
        let settings = self.generation_config.overridden_by(overrides).resolve(&model.transformer.config)?;
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
            if let Err(ft_models::ModelError::Input(message)) = settings.new_tokens_for(n_virtual + e.input_ids.len().max(1)) {
                return Err(ServeError::Input { index: i, message });
            }
        }
        let seed = seed.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
        });
        let mut out = Vec::with_capacity(prompts.len() * settings.num_return_sequences);
        for (c, chunk) in encodings.chunks(self.batch_size.max(1)).enumerate() {
            let ids: Vec<Vec<u32>> = chunk.iter().map(|e| e.input_ids.clone()).collect();
            let first = c * self.batch_size.max(1);
            let generated =
                generate_with(model, &ids, &settings, Some(seed.wrapping_add(c as u64)), &self.device, virtual_tokens.as_ref())
                    .map_err(|e| {
                    match (chunk.len(), e) {
                        (1, ft_models::ModelError::Input(message)) => ServeError::Input { index: first, message },
                        (_, e) => e.into(),
                    }
                })?;
            for g in generated {
                let text = self.tokenizer.decode(&g.token_ids, true)?;
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

    /// Logits for the token after each text (truncated to `max_length`, else `n_positions`
    /// tokens, keeping the first), in right-padded batches — padding cannot change them: a
    /// causal model's last real token never sees the padding after it.
    pub fn next_token_logits(&self, texts: &[&str]) -> Result<Vec<NextTokenLogits>> {
        let CausalLm::Gpt2(model) = &self.model.base;
        let encodings = self.tokenizer.encode_batch(texts)?;
        check_encodings(&self.config, &encodings)?;
        let n_virtual = self.model.num_virtual_tokens();
        run_batched(&encodings, self.batch_size, self.tokenizer.pad_id(), &self.device, |batch, idx| {
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
