//! LoRA on a model's projections, found through the model's Hub names: attach (new or from a
//! PEFT file), export in PEFT's names, merge and unmerge, switch and delete — all on the named
//! entries each [`crate::layers::Projection`] carries.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use ft_hub::tensors::NamedTensors;
use ft_peft::config::{LoraConfig, TargetModules};
use ft_peft::files::{AdapterFiles, lora_key};
use ft_peft::lora::{LoraIds, LoraLayer, scaling};
use ft_peft::slot::{Delta, NamedDelta};
use ft_peft::target;

use crate::export::values;
use crate::layers::{Projection, WeightLayout};
use crate::naming::{HubModule, HubPath, Part, param_id};
use crate::{ModelError, Result};

/// Where LoRA matrices come from when attaching.
pub(crate) enum LoraSource<'a> {
    /// New matrices, initialised as `init_lora_weights` says.
    New(&'a Device),
    /// The matrices of a PEFT adapter file.
    File(&'a mut AdapterFiles),
}

/// Which Hub paths of `model` LoRA attaches to under `config`, with PEFT's errors for a
/// `target_modules` that matches nothing or matches a layer kind ft does not adapt.
pub(crate) fn targets<M: HubModule>(
    model: &mut M,
    config: &LoraConfig,
    defaults: Option<&[&str]>,
    output_layer: Option<&str>,
) -> Result<Vec<String>> {
    let defaults = match (&config.target_modules, defaults) {
        (Some(_), _) => &[][..],
        (None, Some(d)) => d,
        (None, None) => {
            return Err(ModelError::Unsupported(
                "Please specify `target_modules` in the LoRA config: this architecture has no default (PEFT's error too)"
                    .into(),
            ));
        }
    };
    let mut found = Vec::new();
    let mut unsupported = Vec::new();
    model.parts(&HubPath::root(), &mut |path, part| {
        let key = path.as_str();
        let all_linear_ok = output_layer != Some(key);
        let hit = target::lora_targets(config, defaults, key, all_linear_ok);
        match part {
            Part::Projection(_) if hit => found.push(key.to_string()),
            Part::Projection(_) | Part::Bottlenecks(_) => {}
            other if hit && !is_all_linear(config) => unsupported.push(format!("{key} ({})", other.kind())),
            _ => {}
        }
    });
    if let Some(first) = unsupported.first() {
        return Err(ModelError::Unsupported(format!(
            "Target module {first} is not supported: ft puts LoRA on Linear and Conv1D layers"
        )));
    }
    if found.is_empty() {
        let t = match &config.target_modules {
            Some(TargetModules::List(l)) => format!("{l:?}"),
            Some(TargetModules::Regex(r)) => format!("'{r}'"),
            None => format!("{defaults:?}"),
        };
        return Err(ModelError::Unsupported(format!(
            "Target modules {t} not found in the base model. Please check the target modules and try again."
        )));
    }
    Ok(found)
}

fn is_all_linear(config: &LoraConfig) -> bool {
    matches!(&config.target_modules, Some(TargetModules::Regex(s)) if s.eq_ignore_ascii_case("all-linear"))
}

/// The rank and alpha of module `key` (`rank_pattern`, `alpha_pattern`).
fn rank_alpha(config: &LoraConfig, key: &str) -> (usize, f64) {
    let r = target::pattern_key(config.rank_pattern.keys(), key).map_or(config.r, |k| config.rank_pattern[k]);
    let a =
        target::pattern_key(config.alpha_pattern.keys(), key).map_or(config.lora_alpha, |k| config.alpha_pattern[k]);
    (r, a)
}

fn tensor2(values: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// The stable ids of adapter `name`'s matrices on module `key`.
fn ids(name: &str, key: &str) -> LoraIds {
    LoraIds {
        a: param_id(&format!("{name}:{}", lora_key(key, 'A'))),
        b: param_id(&format!("{name}:{}", lora_key(key, 'B'))),
    }
}

/// Attaches adapter `name` to the projections at `paths` (inactive: the caller activates).
/// Returns whether any targeted layer is a `Conv1D` (PEFT then sets `fan_in_fan_out`).
pub(crate) fn attach<M: HubModule>(
    model: &mut M,
    name: &str,
    config: &LoraConfig,
    paths: &[String],
    mut source: LoraSource<'_>,
) -> Result<bool> {
    let mut error = None;
    let mut conv1d = false;
    model.parts(&HubPath::root(), &mut |path, part| {
        let Part::Projection(p) = part else { return };
        if error.is_some() || !paths.iter().any(|t| t == path.as_str()) {
            return;
        }
        conv1d |= p.layout == WeightLayout::Conv1D;
        match make(p, name, config, path.as_str(), &mut source) {
            Ok(layer) => p.adapters.adapters.push(NamedDelta {
                layer: Delta::Lora(layer),
                name: name.to_string(),
                active: false,
                merged: false,
            }),
            Err(e) => error = Some(e),
        }
    });
    error.map_or(Ok(conv1d), Err)
}

fn make(p: &Projection, name: &str, config: &LoraConfig, key: &str, source: &mut LoraSource<'_>) -> Result<LoraLayer> {
    let (d_in, d_out) = (p.d_in(), p.d_out());
    let (r, alpha) = rank_alpha(config, key);
    let ids = ids(name, key);
    match source {
        LoraSource::New(device) => Ok(LoraLayer::new(
            d_in,
            d_out,
            r,
            alpha,
            config.use_rslora,
            config.lora_dropout,
            config.init_lora_weights,
            ids,
            device,
        )),
        LoraSource::File(files) => {
            let device = p.base.weight.device();
            // PEFT: A [r, in], B [out, r]; Burn: A [in, r], B [r, out].
            let a = files.take(&lora_key(key, 'A'), &[r, d_in])?;
            let b = files.take(&lora_key(key, 'B'), &[d_out, r])?;
            let a = tensor2(a, [r, d_in], &device).transpose();
            let b = tensor2(b, [d_out, r], &device).transpose();
            Ok(LoraLayer::from_tensors(a, b, scaling(alpha, r, config.use_rslora), config.lora_dropout, ids))
        }
    }
}

/// Adapter `name`'s matrices under PEFT's names (A `[r, in]`, B `[out, r]`).
pub(crate) fn export<M: HubModule>(model: &mut M, name: &str, out: &mut NamedTensors) -> Result<()> {
    let mut error = None;
    model.parts(&HubPath::root(), &mut |path, part| {
        let Part::Projection(p) = part else { return };
        for d in p.adapters.adapters.iter().filter(|d| d.name == name) {
            let Delta::Lora(l) = &d.layer;
            let result = (|| -> Result<()> {
                let a = l.lora_a.val().transpose();
                let b = l.lora_b.val().transpose();
                let (sa, sb) = (a.dims().to_vec(), b.dims().to_vec());
                out.insert(&lora_key(path.as_str(), 'A'), sa, values(a)?)?;
                out.insert(&lora_key(path.as_str(), 'B'), sb, values(b)?)?;
                Ok(())
            })();
            if let Err(e) = result {
                error.get_or_insert(e);
            }
        }
    });
    error.map_or(Ok(()), Err)
}

/// Makes `active` the only adapter that takes part in the forward pass (`None`: none).
pub(crate) fn activate<M: HubModule>(model: &mut M, active: Option<&str>) {
    model.parts(&HubPath::root(), &mut |_, part| {
        if let Part::Projection(p) = part {
            for d in &mut p.adapters.adapters {
                d.active = Some(d.name.as_str()) == active;
            }
        }
    });
}

/// Removes adapter `name` from every projection (unmerging it first where it is merged).
pub(crate) fn remove<M: HubModule>(model: &mut M, name: &str) {
    model.parts(&HubPath::root(), &mut |_, part| {
        if let Part::Projection(p) = part {
            if let Some(d) = p.adapters.adapters.iter_mut().find(|d| d.name == name && d.merged) {
                let Delta::Lora(l) = &d.layer;
                let delta = l.delta_weight();
                d.merged = false;
                add_to_weight(p, delta, -1.0);
            }
            p.adapters.adapters.retain(|d| d.name != name);
        }
    });
}

fn add_to_weight(p: &mut Projection, delta: Tensor<2>, sign: f64) {
    let old = &p.base.weight;
    let mut w = Param::from_tensor(old.val() + delta * sign).set_require_grad(old.is_require_grad());
    w.id = old.id;
    p.base.weight = w;
}

/// Adds (`merge = true`) or subtracts adapter `name`'s dense delta `A·B·s` to or from the base
/// weights of its projections (PEFT's `merge` / `unmerge`); returns how many layers changed.
pub(crate) fn merge<M: HubModule>(model: &mut M, name: &str, merge: bool) -> usize {
    let mut n = 0;
    model.parts(&HubPath::root(), &mut |_, part| {
        if let Part::Projection(p) = part {
            let mut change = None;
            for d in p.adapters.adapters.iter_mut().filter(|d| d.name == name && d.merged != merge) {
                let Delta::Lora(l) = &d.layer;
                change = Some(l.delta_weight());
                d.merged = merge;
            }
            if let Some(delta) = change {
                add_to_weight(p, delta, if merge { 1.0 } else { -1.0 });
                n += 1;
            }
        }
    });
    n
}

/// Number of parameters of adapter `name`'s LoRA matrices.
pub(crate) fn num_params<M: HubModule>(model: &mut M, name: &str) -> usize {
    let mut n = 0;
    model.parts(&HubPath::root(), &mut |_, part| {
        if let Part::Projection(p) = part {
            for d in p.adapters.adapters.iter().filter(|d| d.name == name) {
                let Delta::Lora(l) = &d.layer;
                n += l.lora_a.lazy_shape().num_elements() + l.lora_b.lazy_shape().num_elements();
            }
        }
    });
    n
}

/// LoRA as a [`Method`](super::method::Method): matrices beside the base weights of the
/// projections `target_modules` takes.
pub(crate) struct LoraMethod;

impl<M: super::PeftBase> super::method::Method<M> for LoraMethod {
    fn complete(&self, _config: &mut ft_peft::config::AdapterConfig, _base: &M) {}

    fn check(&self, _config: &ft_peft::config::AdapterConfig, _base: &M) -> Result<()> {
        Ok(())
    }

    fn attach(
        &self,
        model: &mut super::PeftModel<M>,
        name: &str,
        config: &mut ft_peft::config::AdapterConfig,
        source: super::method::Source<'_>,
    ) -> Result<Vec<String>> {
        let ft_peft::config::MethodConfig::Lora(c) = &mut config.method else { return Ok(Vec::new()) };
        let (defaults, output) = (model.base.default_lora_targets(), model.base.output_layer());
        let modules = targets(&mut model.base, c, defaults, output)?;
        let source = match source {
            super::method::Source::New { device, .. } => LoraSource::New(device),
            super::method::Source::File(files) => LoraSource::File(files),
        };
        // PEFT sets `fan_in_fan_out` itself when it wraps a Conv1D.
        c.fan_in_fan_out |= attach(&mut model.base, name, c, &modules, source)?;
        Ok(modules)
    }

    fn export(&self, model: &mut super::PeftModel<M>, name: &str, out: &mut NamedTensors) -> Result<()> {
        export(&mut model.base, name, out)
    }

    fn activate(&self, model: &mut super::PeftModel<M>, on: Option<&str>) {
        activate(&mut model.base, on);
    }

    fn remove(&self, model: &mut super::PeftModel<M>, name: &str) {
        remove(&mut model.base, name);
    }

    fn params_in_base(&self, model: &mut super::PeftModel<M>, name: &str) -> usize {
        num_params(&mut model.base, name)
    }
}
