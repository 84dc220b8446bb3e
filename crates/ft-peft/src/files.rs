//! The adapter folder PEFT's `save_pretrained` writes and `PeftModel.from_pretrained` reads:
//! `adapter_config.json` + `adapter_model.safetensors`, and PEFT's tensor names in it.
//!
//! | what | tensor name | shape |
//! |---|---|---|
//! | LoRA A of module `m` | `base_model.model.{m}.lora_A.weight` | `[r, in]` |
//! | LoRA B of module `m` | `base_model.model.{m}.lora_B.weight` | `[out, r]` |
//! | a module saved whole (`modules_to_save`) | `base_model.model.{m}.weight`, `.bias` (prompt learning: `base_model.{m}.…`) | the module's |
//! | a trained bias (`bias = "all"` / `"lora_only"`) | `base_model.model.{m}.bias` / `{m}.base_layer.bias` | `[out]` |
//! | prompt tuning / prefix tuning | `prompt_embeddings` | `[virtual, hidden]` / `[virtual, layers·2·hidden]` |
//!
//! The adapter's own name never appears in the file (PEFT removes it); a folder holds one
//! adapter.
//!
//! A bottleneck adapter of AdapterHub's `adapters` library lies in that library's layout
//! instead (`save_adapter(dir, name, with_head=True)`): `adapter_config.json` (no `peft_type`;
//! see [`crate::adapterhub`]) with `adapter.safetensors` or `pytorch_adapter.bin`, and its head
//! in `head_config.json` with `model_head.safetensors` or `pytorch_model_head.bin`. Tensor names
//! carry the adapter's name: `bert.encoder.layer.{i}.output.adapters.{name}.adapter_down.0.weight`,
//! `heads.{name}.1.weight`. [`AdapterFiles`] reads both weight forms (the `.bin` pickles as data,
//! never executed), holds the adapter's tensors without the model prefix (`bert.`,
//! `distilbert.`) and writes safetensors with it.

use std::path::{Path, PathBuf};

use ft_hub::tensors::{NamedTensors, write_atomic};

use crate::adapterhub;
use crate::config::{AdapterConfig, MethodConfig};
use crate::{PeftError, Result};

/// `adapter_config.json`.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// `adapter_model.safetensors`.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The prompt-learning tensor.
pub const PROMPT_EMBEDDINGS: &str = "prompt_embeddings";
/// The prefix of every module tensor's name in a LoRA adapter.
pub const MODEL_PREFIX: &str = "base_model.model.";

/// The prefix of module tensors' names (`modules_to_save`) for a method: `base_model.model.` for
/// LoRA (a tuner wraps the model), `base_model.` for prompt learning (PEFT holds the model
/// itself as `base_model`).
pub fn module_prefix(method: &crate::config::MethodConfig) -> &'static str {
    match method {
        crate::config::MethodConfig::Lora(_) => MODEL_PREFIX,
        _ => "base_model.",
    }
}

/// LoRA's A (`which = 'A'`) or B matrix of module `module`: `base_model.model.{module}.lora_A.weight`.
pub fn lora_key(module: &str, which: char) -> String {
    format!("{MODEL_PREFIX}{module}.lora_{which}.weight")
}

/// A tensor of a module saved whole, or a trained bias: `base_model.model.{module}.{tensor}`.
pub fn module_key(module: &str, tensor: &str) -> String {
    format!("{MODEL_PREFIX}{module}.{tensor}")
}

/// An adapter as it lies on disk.
#[derive(Debug, Clone)]
pub struct AdapterFiles {
    /// Its configuration.
    pub config: AdapterConfig,
    /// Its tensors under PEFT's names.
    pub tensors: NamedTensors,
    /// The weights file it was read from (named in errors).
    pub weights_path: PathBuf,
    /// The head's weights file, for an AdapterHub adapter with a head (named in errors about
    /// `heads.…` tensors).
    pub head_path: Option<PathBuf>,
}

/// The configuration of the adapter in `dir`: `adapter_config.json`, and for an AdapterHub
/// adapter its head's `head_config.json` when there is one (which also says the task:
/// `SEQ_CLS` for a classification head, `TOKEN_CLS` for a tagging head). Weights are not read.
pub fn read_config(dir: &Path) -> Result<AdapterConfig> {
    let path = dir.join(CONFIG_FILE);
    if !path.is_file() {
        return Err(PeftError::Config {
            path,
            message: format!("not found: '{}' is not an adapter folder (no {CONFIG_FILE})", dir.display()),
        });
    }
    let mut config = AdapterConfig::read(&path)?;
    attach_head_config(dir, &mut config)?;
    Ok(config)
}

/// Reads an AdapterHub adapter's `head_config.json` (if any) into its config.
fn attach_head_config(dir: &Path, config: &mut AdapterConfig) -> Result<()> {
    let MethodConfig::Bottleneck(c) = &mut config.method else { return Ok(()) };
    let head_config = dir.join(adapterhub::HEAD_CONFIG_FILE);
    if head_config.is_file() {
        let head = adapterhub::read_head_config(&head_config)?;
        config.task_type = Some(if head.config.per_token() { "TOKEN_CLS" } else { "SEQ_CLS" }.into());
        c.head = Some(head);
    }
    Ok(())
}

/// The first of `names` that is a file in `dir`.
fn first_file(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

fn read_weights(path: &Path) -> Result<NamedTensors> {
    let is_bin = path.extension().is_some_and(|e| e == "bin");
    let read = if is_bin { NamedTensors::read_pytorch(path) } else { NamedTensors::read_safetensors(path) };
    // (ft-hub's errors name the file already)
    read.map_err(PeftError::Hub)
}

impl AdapterFiles {
    /// Reads `dir/adapter_config.json` and `dir/adapter_model.safetensors`. Errors name the file:
    /// a missing folder or file, invalid JSON, an unsupported `peft_type`, a truncated or corrupt
    /// weights file. (PEFT's legacy `adapter_model.bin` pickles are not read: re-save with
    /// `safe_serialization=True`, PEFT's default.)
    pub fn read(dir: &Path) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        if !config_path.is_file() {
            return Err(PeftError::Config {
                path: config_path,
                message: format!("not found: '{}' is not a PEFT adapter folder (no {CONFIG_FILE})", dir.display()),
            });
        }
        let config = AdapterConfig::read(&config_path)?;
        if matches!(config.method, MethodConfig::Bottleneck(_)) {
            return Self::read_adapterhub(dir, config);
        }
        let weights_path = dir.join(WEIGHTS_FILE);
        if !weights_path.is_file() {
            let legacy = dir.join("adapter_model.bin");
            let hint = if legacy.is_file() {
                " (there is an adapter_model.bin: ft reads safetensors only; re-save it with PEFT's default safe_serialization=True)"
            } else {
                ""
            };
            return Err(PeftError::Weights { path: weights_path, message: format!("not found{hint}") });
        }
        let mut tensors = NamedTensors::read_safetensors(&weights_path)
            .map_err(|e| PeftError::Weights { path: weights_path.clone(), message: e.to_string() })?;
        // With `bias = "all"`, PEFT also saves the wrapped copies' biases of `modules_to_save`
        // under their in-memory names; its own loader does not use them either.
        let wrapped: Vec<String> = tensors
            .names()
            .filter(|n| n.contains(".original_module.") || n.contains(".modules_to_save."))
            .map(String::from)
            .collect();
        for n in wrapped {
            tracing::debug!(tensor = %n, "ignoring a ModulesToSaveWrapper tensor");
            tensors.remove(&n);
        }
        Ok(Self { config, tensors, weights_path, head_path: None })
    }

    /// An AdapterHub folder: the adapter's weights (either form) and, if there is a
    /// `head_config.json`, the head's.
    fn read_adapterhub(dir: &Path, mut config: AdapterConfig) -> Result<Self> {
        attach_head_config(dir, &mut config)?;
        let MethodConfig::Bottleneck(c) = &mut config.method else {
            return Err(PeftError::Adapter(format!("{}: not a bottleneck adapter", dir.display())));
        };
        let weights_path =
            first_file(dir, &[adapterhub::SAFE_WEIGHTS_FILE, adapterhub::WEIGHTS_FILE]).ok_or_else(|| {
                PeftError::Weights {
                    path: dir.join(adapterhub::SAFE_WEIGHTS_FILE),
                    message: format!("not found (nor {})", adapterhub::WEIGHTS_FILE),
                }
            })?;
        let mut tensors = read_weights(&weights_path)?;
        // Held without the model prefix (`bert.`): the layers' keys are relative to the base.
        if let Some(prefix) = c.model_type.as_ref().map(|t| format!("{t}.")) {
            let prefixed: Vec<String> = tensors.names().filter(|n| n.starts_with(&prefix)).map(String::from).collect();
            for name in prefixed {
                if let Some((shape, values)) = tensors.remove(&name) {
                    tensors.insert(&name[prefix.len()..], shape, values)?;
                }
            }
        }
        let mut head_path = None;
        if c.head.is_some() {
            let path = first_file(dir, &[adapterhub::SAFE_HEAD_WEIGHTS_FILE, adapterhub::HEAD_WEIGHTS_FILE])
                .ok_or_else(|| PeftError::Weights {
                    path: dir.join(adapterhub::SAFE_HEAD_WEIGHTS_FILE),
                    message: format!("not found (nor {}), but {} is there", adapterhub::HEAD_WEIGHTS_FILE, adapterhub::HEAD_CONFIG_FILE),
                })?;
            let mut head_tensors = read_weights(&path)?;
            let names: Vec<String> = head_tensors.names().map(String::from).collect();
            for name in names {
                if let Some((shape, values)) = head_tensors.remove(&name) {
                    tensors.insert(&name, shape, values)?;
                }
            }
            head_path = Some(path);
        }
        Ok(Self { config, tensors, weights_path, head_path })
    }

    /// Writes the folder (created if needed): both files, each atomically, so that an
    /// interrupted save leaves the previous adapter (or nothing) rather than a partial file.
    pub fn write(dir: &Path, config: &AdapterConfig, tensors: &NamedTensors) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|error| PeftError::Io { path: dir.to_path_buf(), error })?;
        if let MethodConfig::Bottleneck(c) = &config.method {
            return Self::write_adapterhub(dir, config, c, tensors);
        }
        tensors.write_safetensors(&dir.join(WEIGHTS_FILE))?;
        write_atomic(&dir.join(CONFIG_FILE), config.to_json_string().as_bytes())?;
        Ok(())
    }

    /// The library's layout: `adapter.safetensors` + `pytorch_adapter.bin` (keys with the model
    /// prefix), `model_head.safetensors` + `pytorch_model_head.bin` (the `heads.…` tensors) and
    /// both configs; every file atomically.
    fn write_adapterhub(
        dir: &Path,
        config: &AdapterConfig,
        c: &adapterhub::BottleneckConfig,
        tensors: &NamedTensors,
    ) -> Result<()> {
        let prefix = c.model_type.as_ref().map(|t| format!("{t}.")).unwrap_or_default();
        let mut adapter = NamedTensors::new();
        let mut head = NamedTensors::new();
        for name in tensors.names() {
            let Some((s, v)) = tensors.get(name) else { continue };
            if name.starts_with("heads.") {
                head.insert(name, s.to_vec(), v.to_vec())?;
            } else {
                adapter.insert(&format!("{prefix}{name}"), s.to_vec(), v.to_vec())?;
            }
        }
        // Both weight forms: safetensors (ft's and the library's `use_safetensors=True`) and the
        // `torch.save` pickle the library's default `load_adapter(dir, with_head=True)` reads —
        // the same values, so neither can be stale.
        adapter.write_safetensors(&dir.join(adapterhub::SAFE_WEIGHTS_FILE))?;
        adapter.write_pytorch(&dir.join(adapterhub::WEIGHTS_FILE))?;
        let model_name = config.base_model_name_or_path.as_deref();
        if let Some(h) = &c.head {
            head.write_safetensors(&dir.join(adapterhub::SAFE_HEAD_WEIGHTS_FILE))?;
            head.write_pytorch(&dir.join(adapterhub::HEAD_WEIGHTS_FILE))?;
            let text = serde_json::to_string_pretty(&crate::config::sorted(adapterhub::head_config_value(c, h, model_name)))
                .unwrap_or_else(|_| "{}".into());
            write_atomic(&dir.join(adapterhub::HEAD_CONFIG_FILE), text.as_bytes())?;
        }
        write_atomic(&dir.join(CONFIG_FILE), config.to_json_string().as_bytes())?;
        Ok(())
    }

    /// Removes and returns the tensor `name`, checking its shape; errors name the file and key.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let file = match &self.head_path {
            Some(h) if name.starts_with("heads.") => h.clone(),
            _ => self.weights_path.clone(),
        };
        match self.tensors.remove(name) {
            None => Err(PeftError::Weights { path: file, message: format!("no tensor '{name}'") }),
            Some((s, _)) if s != shape => Err(PeftError::Weights {
                path: file,
                message: format!(
                    "tensor '{name}' has shape {s:?}, the base model needs {shape:?} (was the adapter trained on another model?)"
                ),
            }),
            Some((_, v)) => Ok(v),
        }
    }

    /// Fails when tensors are left that nothing took.
    pub fn finish(self) -> Result<()> {
        if self.tensors.is_empty() {
            return Ok(());
        }
        let left: Vec<&str> = self.tensors.names().take(5).collect();
        Err(PeftError::Weights {
            path: self.weights_path.clone(),
            message: format!(
                "{} tensor(s) match no module of the base model, e.g. {left:?} (was the adapter trained on another model?)",
                self.tensors.len()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LoraConfig, MethodConfig};

    #[test]
    fn write_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let config = AdapterConfig::new(MethodConfig::Lora(LoraConfig::default()), Some("CAUSAL_LM"), Some("gpt2"));
        let mut t = NamedTensors::new();
        t.insert(&lora_key("transformer.h.0.attn.c_attn", 'A'), vec![8, 4], vec![0.5; 32]).unwrap();
        AdapterFiles::write(dir.path(), &config, &t).unwrap();
        let mut back = AdapterFiles::read(dir.path()).unwrap();
        assert_eq!(back.config.method, config.method);
        assert_eq!(back.config.base_model_name_or_path.as_deref(), Some("gpt2"));
        let err = back.take("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", &[8, 5]).unwrap_err();
        assert!(err.to_string().contains("[8, 4]"), "{err}");
        let mut back = AdapterFiles::read(dir.path()).unwrap();
        assert_eq!(
            back.take("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight", &[8, 4]).unwrap(),
            vec![0.5; 32]
        );
        back.finish().unwrap();
    }

    #[test]
    fn missing_and_truncated_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = AdapterFiles::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains(CONFIG_FILE), "{err}");
        let config = AdapterConfig::new(MethodConfig::Lora(LoraConfig::default()), None, None);
        std::fs::write(dir.path().join(CONFIG_FILE), config.to_json_string()).unwrap();
        let err = AdapterFiles::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains(WEIGHTS_FILE) && err.contains("not found"), "{err}");
        let mut t = NamedTensors::new();
        t.insert("prompt_embeddings", vec![2, 3], vec![1.0; 6]).unwrap();
        let bytes = t.to_safetensors_bytes().unwrap();
        std::fs::write(dir.path().join(WEIGHTS_FILE), &bytes[..bytes.len() - 4]).unwrap();
        let err = AdapterFiles::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains(WEIGHTS_FILE) && err.contains("truncated"), "{err}");
    }
}
