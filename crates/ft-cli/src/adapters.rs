//! `--adapter [NAME=]DIR|HUB_ID` and `--active NAME`: adapters on the base model of
//! `ft predict`, `ft generate`, `ft info` and `ft peft merge` — Hugging Face PEFT's (LoRA,
//! prompt and prefix tuning) and AdapterHub's bottleneck adapters with their heads.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ft_data::hub::{RepoFiles, RepoKind};
use ft_models::auto::Task;
use ft_models::peft::{PeftBase, PeftModel};
use ft_peft::adapterhub;
use ft_peft::config::{AdapterConfig, MethodConfig};
use ft_peft::files::{CONFIG_FILE, WEIGHTS_FILE};

/// Adapter options shared by the commands that load a model.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdapterArgs {
    /// An adapter folder or Hub id: PEFT's (`adapter_config.json` + `adapter_model.safetensors`,
    /// as `save_pretrained` writes it) or AdapterHub's (`adapter_config.json` +
    /// `adapter.safetensors` or `pytorch_adapter.bin`, with its head's `head_config.json` +
    /// weights, as `save_adapter(..., with_head=True)` writes it). Repeat as `NAME=DIR` to load
    /// several on one base; `--model` defaults to the adapter's base model.
    #[arg(long = "adapter", value_name = "[NAME=]DIR|HUB_ID")]
    pub adapters: Vec<String>,
    /// The adapter that runs (default: the first).
    #[arg(long, value_name = "NAME")]
    pub active: Option<String>,
}

/// One `--adapter`: its name and folder.
#[derive(Debug, Clone)]
pub struct AdapterSpec {
    /// The name it is loaded under (when not given: `default` for a PEFT adapter, the saved
    /// name for an AdapterHub one, as the library's `load_adapter`).
    pub name: String,
    /// Its local folder (downloaded into the Hub cache for a Hub id).
    pub dir: PathBuf,
    /// Its configuration.
    pub config: AdapterConfig,
}

impl AdapterArgs {
    /// The adapters, named and fetched. Names must be unique; a second unnamed adapter is an
    /// error (name it `NAME=DIR`).
    pub fn specs(&self) -> Result<Vec<AdapterSpec>> {
        let mut out: Vec<AdapterSpec> = Vec::new();
        for raw in &self.adapters {
            // An existing folder is taken whole, even with a '=' in its name.
            let (name, source) = match raw.split_once('=') {
                Some((n, s)) if !n.is_empty() && !n.contains('/') && !Path::new(raw).is_dir() => {
                    (Some(n.to_string()), s.to_string())
                }
                _ => (None, raw.clone()),
            };
            let dir = adapter_dir(&source).with_context(|| format!("--adapter {raw}"))?;
            // (with an AdapterHub adapter's head, which says the task)
            let config = ft_peft::files::read_config(&dir)?;
            let name = name.unwrap_or_else(|| match &config.method {
                MethodConfig::Bottleneck(c) => c.name.clone(),
                _ => "default".to_string(),
            });
            if out.iter().any(|a| a.name == name) {
                bail!("--adapter {raw}: an adapter named '{name}' is already given (load several as NAME=DIR)");
            }
            out.push(AdapterSpec { name, dir, config });
        }
        if let Some(active) = &self.active
            && !out.iter().any(|a| &a.name == active)
        {
            let names: Vec<&str> = out.iter().map(|a| a.name.as_str()).collect();
            bail!("--active {active}: no adapter of that name (given: {names:?})");
        }
        Ok(out)
    }

    /// The base model: `--model`, else the first adapter's `base_model_name_or_path`.
    /// An adapter trained on another base than `--model` is loaded (shapes are checked then), with
    /// a warning naming both.
    pub fn base_model(&self, model: Option<&str>, specs: &[AdapterSpec]) -> Result<String> {
        if let Some(m) = model {
            let same = |a: &str| {
                let canon = |s: &str| {
                    std::fs::canonicalize(s).map(|p| p.to_string_lossy().into_owned()).unwrap_or(s.to_string())
                };
                canon(a) == canon(m)
            };
            for a in specs {
                if let Some(base) = a.config.base_model_name_or_path.as_deref().filter(|b| !same(b)) {
                    tracing::warn!(
                        adapter = %a.name,
                        "adapter '{}' was trained on '{base}'; loading it on '{m}' (its tensor shapes are checked)",
                        a.name
                    );
                }
            }
            return Ok(m.to_string());
        }
        match specs.first() {
            None => bail!("--model is required"),
            Some(a) => a.config.base_model_name_or_path.clone().with_context(|| {
                format!("{}: no base_model_name_or_path: give --model", a.dir.join(CONFIG_FILE).display())
            }),
        }
    }

    /// The task the first adapter was trained for (its `task_type`), if it says.
    pub fn task(specs: &[AdapterSpec]) -> Result<Option<Task>> {
        let Some(t) = specs.first().and_then(|a| a.config.task_type.as_deref()) else { return Ok(None) };
        Ok(Some(match t {
            "CAUSAL_LM" => Task::CausalLm,
            "SEQ_CLS" => Task::SequenceClassification,
            "TOKEN_CLS" => Task::TokenClassification,
            other => bail!("task_type {other}: ft runs CAUSAL_LM, SEQ_CLS and TOKEN_CLS adapters"),
        }))
    }

    /// `base` with every adapter loaded and the active one switched on (no adapter: the base
    /// model alone).
    pub fn attach<M: PeftBase>(&self, base: M, specs: &[AdapterSpec]) -> Result<PeftModel<M>> {
        let mut model = PeftModel::new(base);
        for a in specs {
            model
                .load_adapter(&a.dir, &a.name)
                .with_context(|| format!("loading adapter '{}' from {}", a.name, a.dir.display()))?;
        }
        if let Some(active) = self.active.as_deref().or(specs.first().map(|a| a.name.as_str())) {
            model.set_adapter(active)?;
        }
        Ok(model)
    }
}

/// The number of labels of the classification head the adapters train and save whole
/// (`…classifier.weight` `[num_labels, hidden]` in the weights file), so that the base is loaded
/// with a head of that size (as `from_pretrained(base, num_labels=N)` before `PeftModel`).
pub fn head_labels(specs: &[AdapterSpec]) -> Result<Option<usize>> {
    for a in specs {
        // An unreadable file is reported by the adapter's load, with the file named.
        let Ok(tensors) = ft_hub::tensors::NamedTensors::read_safetensors(&a.dir.join(WEIGHTS_FILE)) else { continue };
        if let Some(shape) = tensors
            .names()
            .find(|n| {
                ["classifier.weight", "score.weight"]
                    .iter()
                    .any(|h| n.strip_prefix("base_model.model.").or(n.strip_prefix("base_model.")) == Some(h))
            })
            .and_then(|n| tensors.get(n))
            .map(|(s, _)| s.to_vec())
        {
            return Ok(shape.first().copied());
        }
    }
    Ok(None)
}

/// Whether an adapter brings its own prediction head (AdapterHub), so that the base model's own
/// head goes unused.
pub fn brings_head(specs: &[AdapterSpec]) -> bool {
    specs.iter().any(|a| matches!(&a.config.method, MethodConfig::Bottleneck(c) if c.head.is_some()))
}

/// A loaded model with the adapters on it.
pub fn with_adapters<M: PeftBase>(
    args: &AdapterArgs,
    loaded: ft_models::auto::Loaded<M>,
    specs: &[AdapterSpec],
) -> Result<ft_models::auto::Loaded<PeftModel<M>>> {
    let ft_models::auto::Loaded { model, config, report, files } = loaded;
    Ok(ft_models::auto::Loaded { model: args.attach(model, specs)?, config, report, files })
}

/// A local adapter folder, or the Hub repository's files fetched into the cache.
fn adapter_dir(source: &str) -> Result<PathBuf> {
    let local = PathBuf::from(source);
    if local.is_dir() {
        return Ok(local);
    }
    let files = RepoFiles::open(source, RepoKind::Model)?;
    let config = files.get_required(CONFIG_FILE)?;
    let text = std::fs::read_to_string(&config).with_context(|| config.display().to_string())?;
    let is_adapterhub = serde_json::from_str(&text).is_ok_and(|m| adapterhub::is_adapterhub(&m));
    if is_adapterhub {
        // AdapterHub's layout: either weight form, and the head if there is one.
        let first = |names: &[&str]| -> Result<bool> {
            for n in names {
                if files.get_optional(n)?.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        if !first(&[adapterhub::SAFE_WEIGHTS_FILE, adapterhub::WEIGHTS_FILE])? {
            bail!("{source}: no {} or {}", adapterhub::SAFE_WEIGHTS_FILE, adapterhub::WEIGHTS_FILE);
        }
        if files.get_optional(adapterhub::HEAD_CONFIG_FILE)?.is_some()
            && !first(&[adapterhub::SAFE_HEAD_WEIGHTS_FILE, adapterhub::HEAD_WEIGHTS_FILE])?
        {
            bail!("{source}: {} but no head weights", adapterhub::HEAD_CONFIG_FILE);
        }
    } else {
        files.get_required(WEIGHTS_FILE)?;
    }
    Ok(config.parent().map(PathBuf::from).unwrap_or_default())
}
