//! One kind of adapter on a [`PeftModel`]: what it fills into its config from the base, what it
//! checks, how it attaches (new or from its files) and what it saves. Each method is one
//! implementation in its own module — LoRA (`lora`), prompt and prefix tuning (`prompt`),
//! bottleneck adapters (`bottleneck`) — found once per config by [`for_config`]; a new method is
//! a new module and one arm there, not an arm in every operation of the model.

use burn::tensor::Device;
use ft_hub::tensors::NamedTensors;
use ft_peft::config::{AdapterConfig, MethodConfig};
use ft_peft::files::AdapterFiles;

use super::{PeftBase, PeftModel};
use crate::Result;

/// Where a new adapter's weights come from.
pub(crate) enum Source<'a> {
    /// Initialised as the method's library does: values from `device`'s generator; prompt
    /// tuning's `TEXT` init reads `text_ids`.
    New {
        /// Where the tensors live.
        device: &'a Device,
        /// The init text's token ids (prompt tuning's `TEXT`).
        text_ids: Option<&'a [u32]>,
    },
    /// The tensors of the adapter's files (each taken out as it is used).
    File(&'a mut AdapterFiles),
}

/// A method of adapters (see the module documentation).
pub(crate) trait Method<M: PeftBase> {
    /// Fills in what the method's library fills in when it builds the adapter on `base` (the
    /// model's sizes, names).
    fn complete(&self, config: &mut AdapterConfig, base: &M);

    /// Checks what the config states about the model (sizes, architecture) against `base`.
    fn check(&self, config: &AdapterConfig, base: &M) -> Result<()>;

    /// Attaches adapter `name` (inactive: the model activates), recording in `config` what the
    /// attachment decided. Returns the Hub paths of the layers it adapts in place (LoRA).
    fn attach(
        &self,
        model: &mut PeftModel<M>,
        name: &str,
        config: &mut AdapterConfig,
        source: Source<'_>,
    ) -> Result<Vec<String>>;

    /// Adds adapter `name`'s own tensors to `out` under its library's names.
    fn export(&self, model: &mut PeftModel<M>, name: &str, out: &mut NamedTensors) -> Result<()>;

    /// Makes adapter `on` the one this method's layers run (none: `None`); called for every
    /// method on every switch.
    fn activate(&self, _model: &mut PeftModel<M>, _on: Option<&str>) {}

    /// Removes every layer of adapter `name` this method holds (nothing if it holds none).
    fn remove(&self, model: &mut PeftModel<M>, name: &str);

    /// Parameters of adapter `name` that sit inside the base model's modules (LoRA matrices,
    /// bottleneck modules), which the base's own count includes.
    fn params_in_base(&self, _model: &mut PeftModel<M>, _name: &str) -> usize {
        0
    }

    /// Every parameter of adapter `name`'s own layers (those in the base and beside it: a
    /// prompt, a head).
    fn own_params(&self, model: &mut PeftModel<M>, name: &str) -> usize {
        self.params_in_base(model, name)
    }
}

/// Every method, for what concerns them all (switching, removing).
pub(crate) fn all<M: PeftBase>() -> [&'static dyn Method<M>; 4] {
    [
        &super::lora::LoraMethod,
        &super::prompt::PromptMethod,
        &super::prompt::PrefixMethod,
        &super::bottleneck::BottleneckMethod,
    ]
}

/// The method of a config.
pub(crate) fn for_config<M: PeftBase>(config: &MethodConfig) -> &'static dyn Method<M> {
    match config {
        MethodConfig::Lora(_) => &super::lora::LoraMethod,
        MethodConfig::PromptTuning(_) => &super::prompt::PromptMethod,
        MethodConfig::PrefixTuning(_) => &super::prompt::PrefixMethod,
        MethodConfig::Bottleneck(_) => &super::bottleneck::BottleneckMethod,
    }
}
