//! Adapters on ft's models: [`PeftModel`] puts `ft-peft`'s LoRA, prompt-tuning and
//! prefix-tuning adapters (Hugging Face PEFT's semantics and files) and bottleneck adapters with
//! their heads (AdapterHub's `adapters` library's) on a causal LM, sequence classifier or token
//! classifier, by the model's Hub names. Each method is one implementation of the internal
//! `Method` trait (`lora`, `prompt`, `bottleneck`); the model's operations are the same for all.
//!
//! - **Several adapters on one base**, by name: [`PeftModel::add_adapter`] (new),
//!   [`PeftModel::load_adapter`] (a folder PEFT's `save_pretrained` wrote),
//!   [`PeftModel::set_adapter`], [`PeftModel::disable_adapters`] (the base model's outputs,
//!   exactly), [`PeftModel::delete_adapter`]. LoRA matrices live beside the base weights in each
//!   projection; switching flips flags and never copies or reloads the base weights. Modules
//!   trained whole (`modules_to_save`, e.g. a new classifier) are kept per adapter and swapped
//!   in on switching, as PEFT's `ModulesToSaveWrapper` does.
//! - **Files**: [`PeftModel::save_adapter`] writes `adapter_config.json` +
//!   `adapter_model.safetensors` with PEFT's keys and tensor names (a bottleneck adapter: the
//!   `adapters` library's `adapter_config.json`, `adapter.safetensors`, `head_config.json`,
//!   `model_head.safetensors`).
//! - **Bottleneck adapters** (AdapterHub): modules in the layers' adapter slots, each adapter
//!   with its own prediction head ([`PeftModel::add_classification_head`],
//!   [`PeftModel::add_tagging_head`]); with such an adapter active, [`PeftModel::forward`] runs
//!   the base's encoder and the adapter's head, and [`PeftModel::output_labels`] names its labels.
//! - **Merging** (LoRA): [`PeftModel::merge_adapter`] adds `A·B·s` into the base weights,
//!   [`PeftModel::unmerge_adapter`] takes it out again, [`PeftModel::merge_and_unload`] returns
//!   the plain model, which saves in the Hub layout transformers loads.
//! - **Prompt learning**: the soft prompt is prepended to the input embeddings (positions run
//!   over the whole sequence, the mask covers it, token types are 0 on it); the prefix is fed to
//!   every layer as past keys and values (positions of the real tokens start after it). As in
//!   PEFT, a causal LM's logits with prompt tuning include the virtual positions:
//!   `[batch, virtual + seq, vocab]`.
//! - [`PeftModel::trainable_parameters`] counts as PEFT's `print_trainable_parameters`.

mod base;
mod bottleneck;
mod lora;
mod method;
mod prompt;
mod saved;

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use ft_hub::tensors::NamedTensors;
use ft_peft::PeftError;
use ft_peft::config::{AdapterConfig, Bias, MethodConfig};
use ft_peft::files::AdapterFiles;
use ft_peft::adapterhub::{HeadConfig, HeadFile};
use ft_peft::slot::{NamedHead, PredictionHeads, PromptAdapter, PromptAdapters};

pub use base::{BaseDims, PeftBase};

use crate::input::{KvCache, TextInput, Tokens};
use crate::naming::param_id;
use crate::params::ParameterCount;
use crate::{ModelError, Result};

/// An adapter known to a [`PeftModel`].
#[derive(Debug, Clone)]
pub struct AdapterEntry {
    /// Its name (`"default"` unless given).
    pub name: String,
    /// Its configuration, as it will be saved.
    pub config: AdapterConfig,
    /// The Hub paths of the layers it adapts (LoRA) or trains whole (`modules_to_save`).
    pub lora_modules: Vec<String>,
    /// The Hub paths of the modules it trains and saves whole.
    pub saved_modules: Vec<String>,
}

/// A base model with named PEFT adapters (see the module documentation).
#[derive(Module, Debug)]
pub struct PeftModel<M> {
    /// The base model; LoRA matrices sit in its projections.
    pub base: M,
    /// Prompt-learning adapters.
    pub prompts: PromptAdapters,
    /// The prediction heads bottleneck adapters bring (AdapterHub), by adapter name.
    pub heads: PredictionHeads,
    /// The adapters, in the order they were added (read with [`PeftModel::adapters`]; changed
    /// only through the methods, which keep the layers' flags and whole modules in line).
    #[module(skip)]
    adapters: Vec<AdapterEntry>,
    /// The active adapter.
    #[module(skip)]
    active: Option<String>,
    /// Adapters switched off (the base model alone).
    #[module(skip)]
    disabled: bool,
    /// Whole modules not currently in the model, by owner ("" = the base model's own).
    #[module(skip)]
    stash: BTreeMap<String, saved::Layers>,
    /// Whose whole modules are in the model now ("" = the base's).
    #[module(skip)]
    in_model: String,
}

pub(crate) fn config_err(message: String) -> ModelError {
    ModelError::Peft(PeftError::Config { path: "adapter_config.json".into(), message })
}

impl<M: PeftBase> PeftModel<M> {
    /// The base model with no adapter yet.
    pub fn new(base: M) -> Self {
        Self {
            base,
            prompts: PromptAdapters::default(),
            heads: PredictionHeads::default(),
            adapters: Vec::new(),
            active: None,
            disabled: false,
            stash: BTreeMap::new(),
            in_model: String::new(),
        }
    }

    /// The adapters, in the order they were added.
    pub fn adapters(&self) -> &[AdapterEntry] {
        &self.adapters
    }

    /// The active adapter's name (`None`: none active).
    pub fn active_name(&self) -> Option<&str> {
        self.active.as_deref()
    }

    /// Whether adapters are switched off ([`disable_adapters`](Self::disable_adapters)).
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// The adapter named `name`.
    pub fn adapter(&self, name: &str) -> Option<&AdapterEntry> {
        self.adapters.iter().find(|a| a.name == name)
    }

    /// The active adapter's entry.
    pub fn active_adapter(&self) -> Option<&AdapterEntry> {
        self.active.as_deref().and_then(|n| self.adapter(n))
    }

    /// Fills in what PEFT fills in when it builds an adapter on this model: the classifier in
    /// `modules_to_save` for sequence classification, and what the method fills in (the model's
    /// sizes for prompt learning, its type and width for bottleneck adapters).
    fn complete(&self, config: &mut AdapterConfig) {
        let task = self.base.task_type();
        if config.task_type.is_none() {
            config.task_type = Some(task.to_string());
        }
        if matches!(config.task_type.as_deref(), Some("SEQ_CLS" | "TOKEN_CLS"))
            && let Some(m) = config.method.modules_to_save_mut()
        {
            let m = m.get_or_insert_with(Vec::new);
            for name in ["classifier", "score"] {
                if !m.iter().any(|x| x == name) {
                    m.push(name.to_string());
                }
            }
        }
        method::for_config::<M>(&config.method).complete(config, &self.base);
    }

    fn check_new_name(&self, name: &str) -> Result<()> {
        if name.is_empty() {
            return Err(PeftError::Adapter("an adapter name cannot be empty".into()).into());
        }
        if name.contains('.') {
            // PEFT and the adapters library keep adapters in PyTorch ModuleDicts, whose keys cannot
            // hold a '.'; the name is also part of tensor names.
            return Err(PeftError::Adapter(format!("adapter name '{name}': a name cannot contain '.'")).into());
        }
        if self.adapter(name).is_some() {
            return Err(PeftError::Adapter(format!(
                "an adapter named '{name}' is already loaded: delete it first or choose another name"
            ))
            .into());
        }
        Ok(())
    }

    /// Checks what a config states about the model (sizes, architecture) against the base.
    fn check_dims(&self, config: &AdapterConfig) -> Result<()> {
        method::for_config::<M>(&config.method).check(config, &self.base)
    }

    /// Adds a new adapter `name` as `config` says, initialised as PEFT initialises it, and makes
    /// it active if it is the first. Prompt tuning's `TEXT` init needs the init text's token ids
    /// (`text_ids`, tokenized with the base model's tokenizer as PEFT does, special tokens
    /// included). Values are drawn from `device`'s generator (seed it for reproducible runs).
    pub fn add_adapter(
        &mut self,
        name: &str,
        config: AdapterConfig,
        text_ids: Option<&[u32]>,
        device: &Device,
    ) -> Result<()> {
        self.check_new_name(name)?;
        let result = self.attach_new(name, config, text_ids, device);
        self.finish_attach(name, result)
    }

    /// After an add or load: on success the first adapter becomes active and the model's flags
    /// and whole modules are put back in line with the active one; on failure every trace of
    /// `name` is removed, so the model is as it was.
    fn finish_attach(&mut self, name: &str, result: Result<()>) -> Result<()> {
        if let Err(e) = result {
            self.remove_layers(name);
            self.adapters.retain(|a| a.name != name);
            self.sync()?;
            return Err(e);
        }
        if self.active.is_none() { self.set_adapter(name) } else { self.sync() }
    }

    fn attach_new(
        &mut self,
        name: &str,
        mut config: AdapterConfig,
        text_ids: Option<&[u32]>,
        device: &Device,
    ) -> Result<()> {
        config.validate(Path::new("adapter_config.json"))?;
        self.complete(&mut config);
        self.check_dims(&config)?;
        let source = method::Source::New { device, text_ids };
        let lora_modules = method::for_config::<M>(&config.method).attach(self, name, &mut config, source)?;
        let saved_modules = self.saved_paths(&config)?;
        self.capture_saved(name, &saved_modules, None)?;
        self.adapters.push(AdapterEntry { name: name.into(), config, lora_modules, saved_modules });
        Ok(())
    }

    /// Loads the adapter saved in `dir` — by PEFT's `save_pretrained`, the `adapters` library's
    /// `save_adapter` (with its head, either weight form) or ft — under `name` (inactive unless it is the first; see
    /// [`set_adapter`](Self::set_adapter)). Every tensor must fit the base model: a missing,
    /// mis-shaped or unused tensor is an error naming the file and the tensor.
    pub fn load_adapter(&mut self, dir: &Path, name: &str) -> Result<()> {
        self.check_new_name(name)?;
        let result = self.attach_file(dir, name);
        self.finish_attach(name, result)
    }

    fn attach_file(&mut self, dir: &Path, name: &str) -> Result<()> {
        let mut files = AdapterFiles::read(dir)?;
        let mut config = files.config.clone();
        let path = dir.join(ft_peft::files::CONFIG_FILE);
        self.check_dims(&config).map_err(|e| match e {
            ModelError::Peft(PeftError::Config { message, .. }) => {
                ModelError::Peft(PeftError::Config { path: path.clone(), message })
            }
            other => other,
        })?;
        let method = method::for_config::<M>(&config.method);
        let lora_modules =
            method.attach(self, name, &mut config, method::Source::File(&mut files)).map_err(|e| config_at(&path, e))?;
        method.complete(&mut config, &self.base);
        let saved_modules = self.saved_paths(&config).map_err(|e| config_at(&path, e))?;
        let prefix = ft_peft::files::module_prefix(&config.method);
        self.capture_saved(name, &saved_modules, Some((&mut files, prefix)))?;
        self.load_biases(&config, &lora_modules, &mut files)?;
        files.finish()?;
        self.adapters.push(AdapterEntry { name: name.into(), config, lora_modules, saved_modules });
        Ok(())
    }

    /// Makes `name` the active adapter (and switches adapters back on).
    pub fn set_adapter(&mut self, name: &str) -> Result<()> {
        if self.adapter(name).is_none() {
            return Err(self.unknown(name));
        }
        self.active = Some(name.to_string());
        self.disabled = false;
        self.sync()
    }

    /// Switches every adapter off: the model computes the base model's outputs exactly (a
    /// merged adapter is unmerged first, as PEFT does). [`enable_adapters`](Self::enable_adapters)
    /// switches the active one back on.
    pub fn disable_adapters(&mut self) -> Result<()> {
        if let Some(a) =
            self.adapters.iter().find(|a| matches!(&a.config.method, MethodConfig::Lora(c) if c.bias != Bias::None))
        {
            tracing::warn!(
                adapter = %a.name,
                "the adapter trains biases (bias != \"none\"): they live in the base layers, so disabling adapters \
                 does not give the base model's outputs (PEFT warns the same)"
            );
        }
        self.disabled = true;
        for a in self.adapters.iter().map(|a| a.name.clone()).collect::<Vec<_>>() {
            lora::merge(&mut self.base, &a, false);
        }
        self.sync()
    }

    /// Switches the active adapter back on after [`disable_adapters`](Self::disable_adapters).
    pub fn enable_adapters(&mut self) -> Result<()> {
        self.disabled = false;
        self.sync()
    }

    /// Removes adapter `name` (its layers, its whole modules, its head — the `adapters` library
    /// keeps a head until `delete_head`). Deleting the active adapter leaves no adapter active.
    pub fn delete_adapter(&mut self, name: &str) -> Result<()> {
        if self.adapter(name).is_none() {
            return Err(self.unknown(name));
        }
        if self.in_model == name {
            self.switch_saved("")?;
        }
        self.remove_layers(name);
        self.adapters.retain(|a| a.name != name);
        if self.active.as_deref() == Some(name) {
            self.active = None;
        }
        self.sync()
    }

    /// Removes every layer, head and whole module of adapter `name` (not its entry).
    fn remove_layers(&mut self, name: &str) {
        for m in method::all::<M>() {
            m.remove(self, name);
        }
        self.stash.remove(name);
    }

    /// Gives bottleneck adapter `name` a new classification head (the `adapters` library's
    /// `add_classification_head(name, num_labels, id2label=...)`: dropout, linear `[H, H]`,
    /// tanh, dropout, linear `[H, num_labels]` on the first token), replacing any head it had.
    /// Its weights are drawn from `device`'s generator.
    pub fn add_classification_head(
        &mut self,
        name: &str,
        num_labels: usize,
        labels: Option<&[String]>,
        device: &Device,
    ) -> Result<()> {
        self.add_head(name, HeadConfig::classification(num_labels, labels), device)
    }

    /// Gives bottleneck adapter `name` a new tagging head (`add_tagging_head`: dropout, linear
    /// `[H, num_labels]` on every token), replacing any head it had.
    pub fn add_tagging_head(
        &mut self,
        name: &str,
        num_labels: usize,
        labels: Option<&[String]>,
        device: &Device,
    ) -> Result<()> {
        self.add_head(name, HeadConfig::tagging(num_labels, labels), device)
    }

    /// Gives bottleneck adapter `name` a new head as `config` describes (the library's
    /// `add_prediction_head`), replacing any head it had; a tagging head needs a token
    /// classifier, a classification head a sequence classifier.
    pub fn add_head(&mut self, name: &str, config: HeadConfig, device: &Device) -> Result<()> {
        config.validate().map_err(|m| PeftError::Adapter(format!("head of '{name}': {m}")))?;
        let hidden = self.base.dims().hidden;
        let dropout = config.dropout_prob.unwrap_or(self.base.head_dropout());
        let task = self.base.task_type();
        let entry = self.adapters.iter_mut().find(|a| a.name == name);
        if !matches!(entry.as_ref().map(|e| &e.config.method), Some(MethodConfig::Bottleneck(_))) {
            return Err(PeftError::Adapter(format!("'{name}' is not a bottleneck adapter: only those carry a head")).into());
        }
        if (task == "TOKEN_CLS") != config.per_token() {
            return Err(PeftError::Adapter(format!(
                "a {} head does not fit a {task} model",
                config.head_type
            ))
            .into());
        }
        let file = HeadFile { config, name: name.to_string(), extra: Default::default() };
        let head = bottleneck::new_head(name, &file, hidden, dropout, device)?;
        if let Some(e) = entry {
            e.config.task_type = Some(task.to_string());
            if let MethodConfig::Bottleneck(c) = &mut e.config.method {
                c.head = Some(file);
            }
        }
        self.heads.heads.retain(|h| h.name != name);
        self.heads.heads.push(NamedHead { head, name: name.to_string() });
        Ok(())
    }

    /// The label names of adapter `name`'s own head (`None`: it has none).
    pub fn head_labels(&self, name: &str) -> Option<Vec<String>> {
        match &self.adapter(name)?.config.method {
            MethodConfig::Bottleneck(c) => c.labels(),
            _ => None,
        }
    }

    /// The label names of the head that produces [`forward`](Self::forward)'s logits when it
    /// is the active adapter's own (AdapterHub); `None`: the base model's head (its config's
    /// `id2label`).
    pub fn output_labels(&self) -> Option<Vec<String>> {
        if self.disabled {
            return None;
        }
        self.active.as_deref().and_then(|n| self.head_labels(n))
    }

    pub(crate) fn unknown(&self, name: &str) -> ModelError {
        let known: Vec<&str> = self.adapters.iter().map(|a| a.name.as_str()).collect();
        PeftError::Adapter(format!("no adapter named '{name}' (loaded: {known:?})")).into()
    }

    /// Puts the model's flags and whole modules in line with `active` / `disabled`; a merged
    /// adapter that is no longer the one running is unmerged first (as PEFT's `set_adapter`).
    fn sync(&mut self) -> Result<()> {
        let on = if self.disabled { None } else { self.active.clone() };
        for a in self.adapters.iter().map(|a| a.name.clone()).collect::<Vec<_>>() {
            if Some(&a) != on.as_ref() && lora::merge(&mut self.base, &a, false) > 0 {
                tracing::warn!(adapter = %a, "the adapter was merged: unmerging it before switching");
            }
        }
        for m in method::all::<M>() {
            m.activate(self, on.as_deref());
        }
        let owner = on.filter(|n| self.adapter(n).is_some_and(|a| !a.saved_modules.is_empty())).unwrap_or_default();
        self.switch_saved(&owner)
    }

    /// Adds the active LoRA adapter's `A·B·s` into the base weights (PEFT's `merge_adapter`);
    /// the outputs stay the same (to float rounding) and the forward pass no longer runs the
    /// adapter's path.
    pub fn merge_adapter(&mut self) -> Result<()> {
        if self.disabled {
            return Err(PeftError::Adapter("adapters are disabled: enable them before merging".into()).into());
        }
        let name = self.active_lora()?;
        lora::merge(&mut self.base, &name, true);
        Ok(())
    }

    /// Takes merged adapters' deltas back out of the base weights (PEFT's `unmerge_adapter`).
    pub fn unmerge_adapter(&mut self) {
        for a in self.adapters.iter().map(|a| a.name.clone()).collect::<Vec<_>>() {
            lora::merge(&mut self.base, &a, false);
        }
    }

    fn active_lora(&self) -> Result<String> {
        match self.active_adapter() {
            Some(a) if matches!(a.config.method, MethodConfig::Lora(_)) => Ok(a.name.clone()),
            Some(a) => Err(PeftError::Adapter(format!(
                "adapter '{}' is {}: only LoRA adapters merge into the base weights",
                a.name,
                a.config.method.peft_type()
            ))
            .into()),
            None => Err(PeftError::Adapter("no active adapter to merge".into()).into()),
        }
    }

    /// The base model with the active LoRA adapter merged in and every adapter removed
    /// (PEFT's `merge_and_unload`); its whole modules (`modules_to_save`) are the adapter's.
    pub fn merge_and_unload(mut self) -> Result<M> {
        let name = self.active_lora()?;
        self.disabled = false;
        self.sync()?;
        lora::merge(&mut self.base, &name, true);
        for a in self.adapters.iter().map(|a| a.name.clone()).collect::<Vec<_>>() {
            // Every other adapter goes; the merged one's LoRA entries go below, its delta stays.
            if a != name {
                for m in method::all::<M>() {
                    m.remove(&mut self, &a);
                }
            }
        }
        // The merged adapter's entries go, its delta stays in the weights.
        crate::naming::HubModule::parts(&mut self.base, &crate::naming::HubPath::root(), &mut |_, part| {
            if let crate::naming::Part::Projection(p) = part {
                p.adapters.adapters.clear();
            }
        });
        Ok(self.base)
    }

    /// The adapter's files: its config (with the model's sizes filled in) and tensors under
    /// PEFT's names.
    pub fn adapter_files(&mut self, name: &str) -> Result<(AdapterConfig, NamedTensors)> {
        let entry = self.adapter(name).cloned().ok_or_else(|| self.unknown(name))?;
        let mut tensors = NamedTensors::new();
        method::for_config::<M>(&entry.config.method).export(self, name, &mut tensors)?;
        if !entry.saved_modules.is_empty() {
            if self.in_model == name {
                self.refresh_stash()?;
            }
            if let Some(s) = self.stash.get(name) {
                saved::export_layers(s, ft_peft::files::module_prefix(&entry.config.method), &mut tensors)?;
            }
        }
        self.save_biases(&entry, &mut tensors)?;
        // With `prefix_projection`, what is saved is the projection's output; it loads as a plain
        // prefix (PEFT: inference mode builds no MLP).
        Ok((entry.config, tensors))
    }

    /// Writes adapter `name` to `dir` in its library's layout — PEFT's (`adapter_config.json` +
    /// `adapter_model.safetensors`) or, for a bottleneck adapter, the `adapters` library's (with
    /// its head, both weight forms) —, each file atomically.
    pub fn save_adapter(&mut self, name: &str, dir: &Path) -> Result<()> {
        let (config, tensors) = self.adapter_files(name)?;
        AdapterFiles::write(dir, &config, &tensors)?;
        Ok(())
    }

    /// PEFT's `get_nb_trainable_parameters()` for the active adapter: (trainable, all). All
    /// counts the base and every adapter's parameters, including each adapter's copy of its
    /// whole modules, as PEFT's model holds them.
    ///
    /// With an active adapter that brings its own head (AdapterHub), the base's own task head
    /// is not counted (the adapter's replaces it), as in the library's flexible-head model.
    pub fn trainable_parameters(&mut self) -> Result<(usize, usize)> {
        let mut base_total = ParameterCount::of(&self.base).total - self.layers_total();
        if let Some(n) = self.active.clone()
            && self.heads.get(&n).is_some()
        {
            let own: Vec<String> = self.base.own_head_paths().iter().map(|p| p.to_string()).collect();
            base_total -= self.saved_params(&own);
        }
        let mut all = base_total;
        let mut trainable = 0;
        let names: Vec<String> = self.adapters.iter().map(|a| a.name.clone()).collect();
        for name in names {
            let own = self.own_params(&name)?;
            all += own;
            if Some(&name) == self.active.as_ref() {
                trainable += own;
                if let Some(entry) = self.adapter(&name).cloned() {
                    trainable += self.bias_params(&entry)?;
                }
            }
        }
        Ok((trainable, all))
    }

    /// The model ready to train its active adapter, as PEFT's `get_peft_model` leaves it: every
    /// base parameter frozen (no gradient, so no optimizer state) except the active adapter's
    /// whole modules (`modules_to_save`) and the biases its `bias` setting trains; the adapters'
    /// own parameters train. Freezing goes through [`crate::params::set_trainable`].
    pub fn freeze_base(mut self) -> Self {
        let entry = self.active_adapter().cloned();
        let mut trainable: Vec<String> = Vec::new();
        let mut whole: Vec<String> = Vec::new();
        if let Some(e) = &entry {
            whole = e.saved_modules.iter().map(|m| format!("{m}.")).collect();
            if let MethodConfig::Lora(c) = &e.config.method {
                trainable = saved::bias_names(&mut self.base, c.bias, &e.lora_modules, &e.saved_modules)
                    .into_iter()
                    .map(|(hub, _)| hub)
                    .collect();
            }
        }
        self.base = crate::params::set_trainable(
            self.base,
            &|name| trainable.iter().any(|t| t == name) || whole.iter().any(|w| name.starts_with(w.as_str())),
            true,
        );
        self
    }

    /// PEFT's `print_trainable_parameters` line.
    pub fn trainable_line(&mut self) -> Result<String> {
        let (t, a) = self.trainable_parameters()?;
        Ok(ft_peft::trainable_line(t, a))
    }

    /// Parameters of the adapters' layers inside the base model (LoRA, bottlenecks).
    fn layers_total(&mut self) -> usize {
        let mut n = 0;
        for a in self.adapters.clone() {
            n += method::for_config::<M>(&a.config.method).params_in_base(self, &a.name);
        }
        n
    }

    /// An adapter's own parameters: its layers and its copy of its whole modules.
    fn own_params(&mut self, name: &str) -> Result<usize> {
        let Some(entry) = self.adapter(name).cloned() else { return Ok(0) };
        let mut n = method::for_config::<M>(&entry.config.method).own_params(self, name);
        if !entry.saved_modules.is_empty() {
            n += self.saved_params(&entry.saved_modules);
        }
        Ok(n)
    }

    /// A forward pass with the active adapter (or none, when disabled or none is active).
    ///
    /// # Shapes
    /// - as the base model's; a causal LM with prompt tuning returns `[batch, virtual + seq, vocab]`
    pub fn forward(&self, input: &TextInput) -> Result<M::Output> {
        let on = if self.disabled { None } else { self.active.as_deref() };
        if let Some((name, head)) = on.and_then(|n| self.heads.get(n).map(|h| (n, h))) {
            let per_token = self.adapter(name).is_some_and(
                |a| matches!(&a.config.method, MethodConfig::Bottleneck(c) if c.head.as_ref().is_some_and(|h| h.config.per_token())),
            );
            let hidden = self.base.hidden(input)?;
            return self.base.head_output(head, per_token, hidden);
        }
        let prompt = on.and_then(|n| self.prompts.get(n));
        match prompt {
            None => self.base.run(input, None),
            Some(p) => self.forward_prompted(p, input),
        }
    }

    /// Virtual tokens of the active prompt-learning adapter (0 for LoRA or none).
    pub fn num_virtual_tokens(&self) -> usize {
        if self.disabled {
            return 0;
        }
        self.active.as_deref().and_then(|n| self.prompts.get(n)).map_or(0, PromptAdapter::num_virtual_tokens)
    }

    /// The active prompt-learning adapter's virtual tokens, for generation
    /// ([`crate::generation::generate_with`]); `None` for LoRA, none active, or disabled.
    pub fn virtual_tokens(&self) -> Option<crate::generation::VirtualTokens> {
        if self.disabled {
            return None;
        }
        match self.active.as_deref().and_then(|n| self.prompts.get(n))? {
            PromptAdapter::Prompt(p) => Some(crate::generation::VirtualTokens::Prompt(p.embedding.val())),
            PromptAdapter::Prefix(p) => Some(crate::generation::VirtualTokens::Prefix(p.prefix())),
        }
    }

    /// How many leading positions of [`forward`](Self::forward)'s per-token outputs are virtual
    /// tokens (prompt tuning: its number of virtual tokens; otherwise 0).
    pub fn output_offset(&self) -> usize {
        if self.disabled {
            return 0;
        }
        match self.active.as_deref().and_then(|n| self.prompts.get(n)) {
            Some(PromptAdapter::Prompt(p)) => p.num_virtual_tokens(),
            _ => 0,
        }
    }

    fn forward_prompted(&self, adapter: &PromptAdapter, input: &TextInput) -> Result<M::Output> {
        let [b, l] = input.tokens.dims();
        let n = adapter.num_virtual_tokens();
        let dims = self.base.dims();
        if n + l > dims.max_positions {
            return Err(ModelError::Input(format!(
                "{n} virtual tokens + {l} input tokens = {} positions, the model has {}: truncate the input to {} tokens",
                n + l,
                dims.max_positions,
                dims.max_positions.saturating_sub(n)
            )));
        }
        let device = self.base.word_embedding_table().device();
        let mask =
            input.attention_mask.clone().map(|m| Tensor::cat(vec![Tensor::<2, Int>::ones([b, n], &device), m], 1));
        match adapter {
            PromptAdapter::Prompt(p) => {
                let embeds = match &input.tokens {
                    Tokens::Ids(ids) => self.base.embed(ids.clone()),
                    Tokens::Embeds(e) => e.clone(),
                };
                let x = Tensor::cat(vec![p.prompts(b), embeds], 1);
                let token_types = input
                    .token_type_ids
                    .clone()
                    .map(|t| Tensor::cat(vec![Tensor::<2, Int>::zeros([b, n], &device), t], 1));
                // PEFT drops explicit position ids for prompt tuning: positions run 0..n+l.
                let input = TextInput {
                    tokens: Tokens::Embeds(x),
                    attention_mask: mask,
                    token_type_ids: token_types,
                    position_ids: None,
                    first_token_only: input.first_token_only,
                };
                self.base.run(&input, None)
            }
            PromptAdapter::Prefix(p) => {
                let past = KvCache::from_prefix(p.prefix(), b, dims.layers, dims.heads);
                let input = TextInput {
                    tokens: input.tokens.clone(),
                    attention_mask: mask,
                    token_type_ids: input.token_type_ids.clone(),
                    position_ids: input.position_ids.clone().map(|p| p + n as i64),
                    first_token_only: input.first_token_only,
                };
                self.base.run(&input, past)
            }
        }
    }

    fn saved_paths(&mut self, config: &AdapterConfig) -> Result<Vec<String>> {
        saved::paths(&mut self.base, config.method.modules_to_save())
    }

    fn saved_params(&mut self, paths: &[String]) -> usize {
        saved::num_params(&mut self.base, paths)
    }
}

fn config_at(path: &Path, e: ModelError) -> ModelError {
    match e {
        ModelError::Unsupported(message) => ModelError::Peft(PeftError::Config { path: path.to_path_buf(), message }),
        other => other,
    }
}

impl<M: PeftBase> PeftModel<M> {
    /// Records adapter `name`'s whole modules: a copy of the base's (a new adapter, as PEFT's
    /// deep copy) or the file's tensors.
    fn capture_saved(
        &mut self,
        name: &str,
        paths: &[String],
        files: Option<(&mut AdapterFiles, &'static str)>,
    ) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        self.switch_saved("")?;
        let base = saved::take_layers(&mut self.base, paths);
        let mut own = match files {
            None => base.clone(),
            Some((files, prefix)) => saved::layers_from_file(&base, prefix, files)?,
        };
        // The adapter's copies have ids of their own (its name and the tensor's), so that their
        // optimizer state and checkpointed values are never confused with the base's or
        // another adapter's.
        for (path, _, layer) in &mut own {
            layer.weight.id = param_id(&format!("{name}:{path}.weight"));
            if let Some(b) = &mut layer.bias {
                b.id = param_id(&format!("{name}:{path}.bias"));
            }
        }
        let originals = self.stash.entry(String::new()).or_default();
        for layer in base {
            if !originals.iter().any(|(p, _, _)| *p == layer.0) {
                originals.push(layer);
            }
        }
        self.stash.insert(name.to_string(), own);
        Ok(())
    }

    /// Takes the whole modules in the model back into the stash of their owner (they may have
    /// been trained).
    fn refresh_stash(&mut self) -> Result<()> {
        if self.in_model.is_empty() {
            return Ok(());
        }
        let paths = self.adapter(&self.in_model).map(|a| a.saved_modules.clone()).unwrap_or_default();
        let now = saved::take_layers(&mut self.base, &paths);
        self.stash.insert(self.in_model.clone(), now);
        Ok(())
    }

    /// Puts `owner`'s whole modules into the model ("" = the base's own): the layers are moved,
    /// not copied, so switching is exact and costs nothing.
    fn switch_saved(&mut self, owner: &str) -> Result<()> {
        if self.in_model == owner {
            return Ok(());
        }
        self.refresh_stash()?;
        if let Some(orig) = self.stash.get("") {
            saved::put_layers(&mut self.base, orig);
        }
        if !owner.is_empty()
            && let Some(t) = self.stash.get(owner)
        {
            saved::put_layers(&mut self.base, t);
        }
        self.in_model = owner.to_string();
        Ok(())
    }

    fn load_biases(&mut self, config: &AdapterConfig, lora_modules: &[String], files: &mut AdapterFiles) -> Result<()> {
        let MethodConfig::Lora(c) = &config.method else { return Ok(()) };
        let saved_whole = self.saved_paths(config)?;
        let wanted = saved::bias_names(&mut self.base, c.bias, lora_modules, &saved_whole);
        if wanted.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            "the adapter trains biases (bias = {:?}): loading it changes them in the base model, as PEFT does",
            c.bias
        );
        saved::load_biases(&mut self.base, &wanted, files)
    }

    fn save_biases(&mut self, entry: &AdapterEntry, tensors: &mut NamedTensors) -> Result<()> {
        let MethodConfig::Lora(c) = &entry.config.method else { return Ok(()) };
        let wanted = saved::bias_names(&mut self.base, c.bias, &entry.lora_modules, &entry.saved_modules);
        saved::export_biases(&mut self.base, &wanted, tensors)
    }

    fn bias_params(&mut self, entry: &AdapterEntry) -> Result<usize> {
        let MethodConfig::Lora(c) = &entry.config.method else { return Ok(0) };
        if c.bias == Bias::None {
            return Ok(0);
        }
        let wanted = saved::bias_names(&mut self.base, c.bias, &entry.lora_modules, &entry.saved_modules);
        Ok(saved::bias_count(&mut self.base, &wanted, &entry.saved_modules))
    }
}
