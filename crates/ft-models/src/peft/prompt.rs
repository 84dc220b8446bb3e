//! Prompt tuning and prefix tuning (PEFT's prompt-learning methods) on a [`PeftModel`]: the soft
//! prompt or the prefix beside the base model (`PeftModel::prompts`), built as PEFT builds it,
//! read from and written to PEFT's `prompt_embeddings` tensor.

use burn::tensor::{Tensor, TensorData};
use ft_hub::tensors::NamedTensors;
use ft_peft::config::{AdapterConfig, MethodConfig, PromptTuningInit};
use ft_peft::files::PROMPT_EMBEDDINGS;
use ft_peft::prefix::PrefixEncoder;
use ft_peft::prompt::PromptEmbedding;
use ft_peft::slot::{NamedPrompt, PromptAdapter};

use super::method::{Method, Source};
use super::{PeftBase, PeftModel, config_err};
use crate::Result;
use crate::naming::param_id;

/// PEFT's `PromptTuningConfig`.
pub(crate) struct PromptMethod;

/// PEFT's `PrefixTuningConfig`.
pub(crate) struct PrefixMethod;

/// The sizes PEFT records in a prompt-learning config: `(token_dim, heads, layers, submodules)`.
fn fill(
    dims: super::BaseDims,
    dim: &mut Option<usize>,
    heads: &mut Option<usize>,
    layers: &mut Option<usize>,
    subs: &mut Option<usize>,
) {
    dim.get_or_insert(dims.hidden);
    heads.get_or_insert(dims.heads);
    layers.get_or_insert(dims.layers);
    subs.get_or_insert(1);
}

/// Checks the sizes a config states against the model's.
fn check_sizes(stated: &[(&str, Option<usize>, usize)]) -> Result<()> {
    for &(key, have, want) in stated {
        if let Some(have) = have
            && have != want
        {
            return Err(config_err(format!(
                "{key} is {have}, the base model has {want} (an adapter for another model?)"
            )));
        }
    }
    Ok(())
}

fn push<M: PeftBase>(model: &mut PeftModel<M>, name: &str, layer: PromptAdapter) {
    model.prompts.adapters.push(NamedPrompt { layer, name: name.into() });
}

impl<M: PeftBase> Method<M> for PromptMethod {
    fn complete(&self, config: &mut AdapterConfig, base: &M) {
        let base_name = config.base_model_name_or_path.clone();
        if let MethodConfig::PromptTuning(c) = &mut config.method {
            fill(
                base.dims(),
                &mut c.token_dim,
                &mut c.num_attention_heads,
                &mut c.num_layers,
                &mut c.num_transformer_submodules,
            );
            // PEFT refuses a TEXT init without the tokenizer that made its ids: the base's.
            if c.prompt_tuning_init == PromptTuningInit::Text && c.tokenizer_name_or_path.is_none() {
                c.tokenizer_name_or_path = base_name;
            }
        }
    }

    fn check(&self, config: &AdapterConfig, base: &M) -> Result<()> {
        let MethodConfig::PromptTuning(c) = &config.method else { return Ok(()) };
        // A soft prompt depends on the embedding width alone (PEFT loads a GPT-2 prompt on
        // distilgpt2).
        let dims = base.dims();
        check_sizes(&[("token_dim", c.token_dim, dims.hidden)])
    }

    fn attach(
        &self,
        model: &mut PeftModel<M>,
        name: &str,
        config: &mut AdapterConfig,
        source: Source<'_>,
    ) -> Result<Vec<String>> {
        let MethodConfig::PromptTuning(c) = &config.method else { return Ok(Vec::new()) };
        let hidden = model.base.dims().hidden;
        let id = param_id(&format!("{name}:{PROMPT_EMBEDDINGS}"));
        let layer = match source {
            Source::File(files) => {
                let v = files.take(PROMPT_EMBEDDINGS, &[c.num_virtual_tokens, hidden])?;
                let device = model.base.word_embedding_table().device();
                let t = Tensor::from_data(TensorData::new(v, [c.num_virtual_tokens, hidden]), &device);
                PromptEmbedding::from_tensor(t, id)
            }
            Source::New { device, text_ids } => match c.prompt_tuning_init {
                PromptTuningInit::Random => PromptEmbedding::random(c.num_virtual_tokens, hidden, id, device),
                PromptTuningInit::SampleVocab => {
                    return Err(config_err(
                        "prompt_tuning_init = SAMPLE_VOCAB: ft reads such adapters but creates RANDOM or TEXT ones"
                            .into(),
                    ));
                }
                PromptTuningInit::Text => {
                    let ids = text_ids.filter(|t| !t.is_empty()).ok_or_else(|| {
                        config_err("prompt_tuning_init = TEXT needs the init text's token ids (none given)".into())
                    })?;
                    let table = model.base.word_embedding_table();
                    let vocab = table.dims()[0];
                    if let Some(bad) = ids.iter().find(|&&t| t as usize >= vocab) {
                        return Err(config_err(format!(
                            "prompt_tuning_init_text: token id {bad} is outside the model's {vocab} word embeddings"
                        )));
                    }
                    PromptEmbedding::from_text(table, ids, c.num_virtual_tokens, id)
                }
            },
        };
        push(model, name, PromptAdapter::Prompt(layer));
        Ok(Vec::new())
    }

    fn export(&self, model: &mut PeftModel<M>, name: &str, out: &mut NamedTensors) -> Result<()> {
        export_prompt(model, name, out)
    }

    fn remove(&self, model: &mut PeftModel<M>, name: &str) {
        model.prompts.adapters.retain(|p| p.name != name);
    }

    fn own_params(&self, model: &mut PeftModel<M>, name: &str) -> usize {
        prompt_params(model, name)
    }
}

impl<M: PeftBase> Method<M> for PrefixMethod {
    fn complete(&self, config: &mut AdapterConfig, base: &M) {
        let dims = base.dims();
        if let MethodConfig::PrefixTuning(c) = &mut config.method {
            fill(
                dims,
                &mut c.token_dim,
                &mut c.num_attention_heads,
                &mut c.num_layers,
                &mut c.num_transformer_submodules,
            );
            c.encoder_hidden_size.get_or_insert(dims.hidden);
        }
    }

    fn check(&self, config: &AdapterConfig, base: &M) -> Result<()> {
        let MethodConfig::PrefixTuning(c) = &config.method else { return Ok(()) };
        let dims = base.dims();
        check_sizes(&[
            ("token_dim", c.token_dim, dims.hidden),
            ("num_attention_heads", c.num_attention_heads, dims.heads),
            ("num_layers", c.num_layers, dims.layers),
        ])
    }

    fn attach(
        &self,
        model: &mut PeftModel<M>,
        name: &str,
        config: &mut AdapterConfig,
        source: Source<'_>,
    ) -> Result<Vec<String>> {
        let MethodConfig::PrefixTuning(c) = &config.method else { return Ok(Vec::new()) };
        let dims = model.base.dims();
        let id = param_id(&format!("{name}:{PROMPT_EMBEDDINGS}"));
        let layer = match source {
            Source::File(files) => {
                // With `prefix_projection`, PEFT saves the projection's output: it loads as a
                // plain prefix (PEFT: inference mode builds no MLP).
                let width = dims.layers * 2 * dims.hidden;
                let v = files.take(PROMPT_EMBEDDINGS, &[c.num_virtual_tokens, width])?;
                let device = model.base.word_embedding_table().device();
                let t = Tensor::from_data(TensorData::new(v, [c.num_virtual_tokens, width]), &device);
                PrefixEncoder::from_tensor(t, id)
            }
            Source::New { device, .. } => {
                let projection = c.prefix_projection.then(|| c.encoder_hidden_size.unwrap_or(dims.hidden));
                let mut layer =
                    PrefixEncoder::new(c.num_virtual_tokens, dims.layers, dims.hidden, projection, id, device);
                // Stable ids for the projection too (PEFT's names), so that a checkpoint's
                // trainable tensors and optimizer state find them again.
                if let Some(mlp) = &mut layer.transform {
                    for (i, lin) in [(0, &mut mlp.lin1), (2, &mut mlp.lin2)] {
                        lin.weight.id = param_id(&format!("{name}:prefix_encoder.transform.{i}.weight"));
                        if let Some(b) = &mut lin.bias {
                            b.id = param_id(&format!("{name}:prefix_encoder.transform.{i}.bias"));
                        }
                    }
                }
                layer
            }
        };
        push(model, name, PromptAdapter::Prefix(layer));
        Ok(Vec::new())
    }

    fn export(&self, model: &mut PeftModel<M>, name: &str, out: &mut NamedTensors) -> Result<()> {
        export_prompt(model, name, out)
    }

    fn remove(&self, model: &mut PeftModel<M>, name: &str) {
        model.prompts.adapters.retain(|p| p.name != name);
    }

    fn own_params(&self, model: &mut PeftModel<M>, name: &str) -> usize {
        prompt_params(model, name)
    }
}

fn prompt_params<M: PeftBase>(model: &PeftModel<M>, name: &str) -> usize {
    model
        .prompts
        .adapters
        .iter()
        .filter(|p| p.name == name)
        .map(|p| crate::params::ParameterCount::of(&p.layer).total)
        .sum()
}

/// PEFT's `prompt_embeddings` of adapter `name`.
fn export_prompt<M: PeftBase>(model: &PeftModel<M>, name: &str, out: &mut NamedTensors) -> Result<()> {
    let p = model.prompts.get(name).ok_or_else(|| model.unknown(name))?;
    let t = p.saved_tensor();
    let shape = t.dims().to_vec();
    out.insert(PROMPT_EMBEDDINGS, shape, crate::export::values(t)?)?;
    Ok(())
}
