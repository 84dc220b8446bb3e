//! Bottleneck adapters (AdapterHub's `adapters` library) in a model's adapter slots, found
//! through the model's Hub names, and the prediction heads they bring: attach (new or from the
//! library's files), export under the library's tensor names, switch and delete.
//!
//! The slots are where the library hooks its `BottleneckLayer`s: BERT's
//! `encoder.layer.{i}.attention.output` (`mh_adapter`) and `encoder.layer.{i}.output`
//! (`output_adapter`); DistilBERT's `transformer.layer.{i}.attention_adapters` and
//! `.output_adapters`. Tensor names are the library's without the model prefix
//! (`encoder.layer.0.output.adapters.{name}.adapter_down.0.weight`); the files add it.

use burn::tensor::{Device, Tensor, TensorData};
use ft_hub::tensors::NamedTensors;
use ft_peft::adapterhub::{BnConfig, HeadFile};
use ft_peft::bottleneck::{Bottleneck, BottleneckIds};
use ft_peft::config::{AdapterConfig, MethodConfig};
use ft_peft::files::AdapterFiles;
use ft_peft::head::{HeadLinear, PredictionHead, layer_shapes, linear_indices};
use ft_peft::slot::NamedBottleneck;

use crate::export::values;
use crate::naming::{HubModule, HubPath, Part, param_id};
use crate::{ModelError, Result};

/// Where bottleneck adapters come from when attaching.
pub(crate) enum BnSource<'a> {
    /// New ones, initialised as `init_weights` says.
    New(&'a Device),
    /// The library's files; the name is the adapter's name in them.
    File(&'a mut AdapterFiles, &'a str),
}

/// Which of the library's locations a slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    /// After the attention block (`mh_adapter`).
    Attention,
    /// After the feed-forward block (`output_adapter`).
    Output,
}

/// The location and layer index of the slot at `path`, for BERT and DistilBERT.
fn slot_info(path: &str) -> Option<(Location, usize)> {
    let location = if path.ends_with("attention.output.adapters") || path.ends_with("attention_adapters.adapters") {
        Location::Attention
    } else if path.ends_with("output.adapters") || path.ends_with("output_adapters.adapters") {
        Location::Output
    } else {
        return None;
    };
    let parts: Vec<&str> = path.split('.').collect();
    let layer = parts.windows(2).find(|w| w[0] == "layer").and_then(|w| w[1].parse().ok())?;
    Some((location, layer))
}

/// `path` without the task model's base prefix: the library's key after its own prefix.
fn relative(path: &str) -> &str {
    path.strip_prefix("bert.").or_else(|| path.strip_prefix("distilbert.")).unwrap_or(path)
}

fn key(path: &str, name: &str, tensor: &str) -> String {
    format!("{}.{name}.{tensor}", relative(path))
}

const DOWN_W: &str = "adapter_down.0.weight";
const DOWN_B: &str = "adapter_down.0.bias";
const UP_W: &str = "adapter_up.weight";
const UP_B: &str = "adapter_up.bias";

fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// A PyTorch `[out, in]` matrix as Burn's `[in, out]`, transposed on the host so that the
/// forward pass reads a contiguous matrix (and computes exactly what a new layer computes).
fn linear_weight(v: Vec<f32>, [out, inp]: [usize; 2], device: &Device) -> Tensor<2> {
    let mut t = vec![0.0; v.len()];
    for o in 0..out {
        for i in 0..inp {
            t[i * out + o] = v[o * inp + i];
        }
    }
    tensor(t, [inp, out], device)
}

/// Attaches adapter `name` to every slot `config` asks for (inactive: the caller activates).
/// Returns the number of modules attached.
pub(crate) fn attach<M: HubModule>(
    model: &mut M,
    name: &str,
    config: &BnConfig,
    hidden: usize,
    device: &Device,
    mut source: BnSource<'_>,
) -> Result<usize> {
    let mut error = None;
    let mut count = 0;
    model.parts(&HubPath::root(), &mut |path, part| {
        let Part::Bottlenecks(slot) = part else { return };
        if error.is_some() {
            return;
        }
        let Some((location, layer)) = slot_info(path.as_str()) else { return };
        let wanted = match location {
            Location::Attention => config.mh_adapter,
            Location::Output => config.output_adapter,
        };
        if !wanted || config.leave_out.contains(&layer) {
            return;
        }
        let made = make(path.as_str(), layer, name, config, hidden, device, &mut source);
        match made {
            Ok(b) => {
                slot.adapters.push(NamedBottleneck { layer: b, name: name.to_string(), active: false });
                count += 1;
            }
            Err(e) => error = Some(e),
        }
    });
    if let Some(e) = error {
        return Err(e);
    }
    if count == 0 {
        return Err(ModelError::Unsupported(
            "the bottleneck adapter found no place in the model (does leave_out name every layer?)".into(),
        ));
    }
    Ok(count)
}

fn make(
    path: &str,
    layer: usize,
    name: &str,
    config: &BnConfig,
    hidden: usize,
    device: &Device,
    source: &mut BnSource<'_>,
) -> Result<Bottleneck> {
    let down = config.down_size(hidden, layer).map_err(ModelError::Unsupported)?;

    let id = |t: &str| param_id(&format!("{name}:{}", key(path, name, t)));
    let ids = BottleneckIds { down: (id(DOWN_W), id(DOWN_B)), up: (id(UP_W), id(UP_B)) };
    Ok(match source {
        BnSource::New(device) => Bottleneck::new(config, hidden, down, ids, device)?,
        BnSource::File(files, file_name) => {
            let k = |t: &str| key(path, file_name, t);
            let dw = files.take(&k(DOWN_W), &[down, hidden])?;
            let db = files.take(&k(DOWN_B), &[down])?;
            let uw = files.take(&k(UP_W), &[hidden, down])?;
            let ub = files.take(&k(UP_B), &[hidden])?;
            Bottleneck::from_tensors(
                config,
                linear_weight(dw, [down, hidden], device),
                tensor(db, [down], device),
                linear_weight(uw, [hidden, down], device),
                tensor(ub, [hidden], device),
                ids,
            )?
        }
    })
}

/// Adapter `name`'s tensors under the library's names (without the model prefix), PyTorch
/// layout.
pub(crate) fn export<M: HubModule>(model: &mut M, name: &str, out: &mut NamedTensors) -> Result<()> {
    let mut error = None;
    model.parts(&HubPath::root(), &mut |path, part| {
        let Part::Bottlenecks(slot) = part else { return };
        for a in slot.adapters.iter().filter(|a| a.name == name) {
            let b = &a.layer;
            let k = |t: &str| key(path.as_str(), name, t);
            let mut r = put(out, &k(DOWN_W), b.adapter_down.weight.val().transpose());
            for (t, bias) in [(DOWN_B, &b.adapter_down.bias), (UP_B, &b.adapter_up.bias)] {
                if let Some(x) = bias {
                    r = r.and_then(|()| put(out, &k(t), x.val()));
                }
            }
            r = r.and_then(|()| put(out, &k(UP_W), b.adapter_up.weight.val().transpose()));
            if let Err(e) = r {
                error.get_or_insert(e);
            }
        }
    });
    error.map_or(Ok(()), Err)
}

fn put<const D: usize>(out: &mut NamedTensors, name: &str, x: Tensor<D>) -> Result<()> {
    let shape = x.dims().to_vec();
    out.insert(name, shape, values(x)?)?;
    Ok(())
}

/// Makes `on` the running bottleneck adapter in every slot (none: `None`).
pub(crate) fn activate<M: HubModule>(model: &mut M, on: Option<&str>) {
    model.parts(&HubPath::root(), &mut |_, part| {
        if let Part::Bottlenecks(slot) = part {
            for a in &mut slot.adapters {
                a.active = Some(a.name.as_str()) == on;
            }
        }
    });
}

/// Removes adapter `name` from every slot.
pub(crate) fn remove<M: HubModule>(model: &mut M, name: &str) {
    model.parts(&HubPath::root(), &mut |_, part| {
        if let Part::Bottlenecks(slot) = part {
            slot.adapters.retain(|a| a.name != name);
        }
    });
}

/// Number of parameters of adapter `name`'s modules.
pub(crate) fn num_params<M: HubModule>(model: &mut M, name: &str) -> usize {
    let mut n = 0;
    model.parts(&HubPath::root(), &mut |_, part| {
        if let Part::Bottlenecks(slot) = part {
            for a in slot.adapters.iter().filter(|a| a.name == name) {
                n += crate::params::ParameterCount::of(&a.layer).total;
            }
        }
    });
    n
}

/// The stable id of head `name`'s tensor.
fn head_id(name: &str, index: usize, tensor: &str) -> burn::module::ParamId {
    param_id(&format!("{name}:heads.{name}.{index}.{tensor}"))
}

/// A new head for adapter `name`.
pub(crate) fn new_head(
    name: &str,
    head: &HeadFile,
    hidden: usize,
    dropout: f64,
    device: &Device,
) -> Result<PredictionHead> {
    Ok(PredictionHead::new(&head.config, hidden, dropout, 0.02, &|i, t| head_id(name, i, t), device)?)
}

/// Adapter `name`'s head from the file's `heads.{file name}.{index}.weight` / `.bias`.
pub(crate) fn head_from_file(
    name: &str,
    head: &HeadFile,
    hidden: usize,
    dropout: f64,
    files: &mut AdapterFiles,
    device: &Device,
) -> Result<PredictionHead> {
    let config = &head.config;
    let n = config.layers;
    let mut layers = Vec::new();
    for (l, (index, [i, o])) in linear_indices(config).into_iter().zip(layer_shapes(config, hidden)).enumerate() {
        let prefix = format!("heads.{}.{index}", head.name);
        let w = files.take(&format!("{prefix}.weight"), &[o, i])?;
        let mut linear = burn::nn::LinearConfig::new(i, o).with_bias(false).init(device);
        linear.weight = burn::module::Param::from_tensor(linear_weight(w, [o, i], device));
        linear.weight.id = head_id(name, index, "weight");
        if l + 1 < n || config.output_bias() {
            let b = files.take(&format!("{prefix}.bias"), &[o])?;
            let mut p = burn::module::Param::from_tensor(tensor(b, [o], device));
            p.id = head_id(name, index, "bias");
            linear.bias = Some(p);
        }
        layers.push(HeadLinear { linear, index });
    }
    Ok(PredictionHead::from_layers(config, layers, dropout)?)
}

/// Head `name`'s tensors under the library's names (`heads.{name}.{index}.weight`, PyTorch
/// layout).
pub(crate) fn export_head(name: &str, head: &PredictionHead, out: &mut NamedTensors) -> Result<()> {
    for l in &head.layers {
        let w = l.linear.weight.val().transpose();
        let shape = w.dims().to_vec();
        out.insert(&format!("heads.{name}.{}.weight", l.index), shape, values(w)?)?;
        if let Some(b) = &l.linear.bias {
            let b = b.val();
            let shape = b.dims().to_vec();
            out.insert(&format!("heads.{name}.{}.bias", l.index), shape, values(b)?)?;
        }
    }
    Ok(())
}

/// Bottleneck adapters as a [`Method`](super::method::Method): modules in the model's adapter
/// slots, and the head they bring beside the model (`PeftModel::heads`).
pub(crate) struct BottleneckMethod;

impl<M: super::PeftBase> super::method::Method<M> for BottleneckMethod {
    fn complete(&self, config: &mut AdapterConfig, base: &M) {
        let MethodConfig::Bottleneck(c) = &mut config.method else { return };
        c.model_type.get_or_insert_with(|| base.model_type().to_string());
        c.hidden_size.get_or_insert(base.dims().hidden);
        if let Some(h) = &c.head {
            config.task_type = Some(if h.config.per_token() { "TOKEN_CLS" } else { "SEQ_CLS" }.into());
        }
    }

    fn check(&self, config: &AdapterConfig, base: &M) -> Result<()> {
        let MethodConfig::Bottleneck(c) = &config.method else { return Ok(()) };
        if let Some(t) = &c.model_type
            && t != base.model_type()
        {
            return Err(super::config_err(format!(
                "model_type is '{t}', the base model is '{}' (an adapter for another architecture)",
                base.model_type()
            )));
        }
        if base.model_type() == "gpt2" {
            return Err(super::config_err(
                "bottleneck adapters: ft places them in BERT and DistilBERT encoders, not GPT-2".into(),
            ));
        }
        if let Some(h) = &c.head
            && h.config.per_token() != (base.task_type() == "TOKEN_CLS")
        {
            return Err(super::config_err(format!(
                "the adapter's head is a {} head, which does not fit a {} model (use --task {})",
                h.config.head_type,
                base.task_type(),
                if h.config.per_token() { "token-classification" } else { "text-classification" }
            )));
        }
        let hidden = base.dims().hidden;
        if let Some(have) = c.hidden_size
            && have != hidden
        {
            return Err(super::config_err(format!(
                "hidden_size is {have}, the base model has {hidden} (an adapter for another model?)"
            )));
        }
        Ok(())
    }

    fn attach(
        &self,
        model: &mut super::PeftModel<M>,
        name: &str,
        config: &mut AdapterConfig,
        source: super::method::Source<'_>,
    ) -> Result<Vec<String>> {
        let MethodConfig::Bottleneck(c) = &mut config.method else { return Ok(Vec::new()) };
        let hidden = model.base.dims().hidden;
        let head_dropout = model.base.head_dropout();
        let device = model.base.word_embedding_table().device();
        let head = match source {
            super::method::Source::New { device, .. } => {
                attach(&mut model.base, name, &c.config, hidden, device, BnSource::New(device))?;
                let dropout = |h: &HeadFile| h.config.dropout_prob.unwrap_or(head_dropout);
                c.head.as_ref().map(|h| new_head(name, h, hidden, dropout(h), device)).transpose()?
            }
            super::method::Source::File(files) => {
                let file_name = c.name.clone();
                attach(&mut model.base, name, &c.config, hidden, &device, BnSource::File(files, &file_name))?;
                match &c.head {
                    Some(h) => {
                        let dropout = h.config.dropout_prob.unwrap_or(head_dropout);
                        Some(head_from_file(name, h, hidden, dropout, files, &device)?)
                    }
                    None => None,
                }
            }
        };
        if let Some(head) = head {
            model.heads.heads.push(ft_peft::slot::NamedHead { head, name: name.into() });
        }
        // Saved again, the adapter and its head carry the name they have here.
        c.name = name.to_string();
        if let Some(h) = &mut c.head {
            h.name = name.to_string();
        }
        Ok(Vec::new())
    }

    fn export(&self, model: &mut super::PeftModel<M>, name: &str, out: &mut NamedTensors) -> Result<()> {
        export(&mut model.base, name, out)?;
        if let Some(h) = model.heads.get(name) {
            export_head(name, h, out)?;
        }
        Ok(())
    }

    fn activate(&self, model: &mut super::PeftModel<M>, on: Option<&str>) {
        activate(&mut model.base, on);
    }

    fn remove(&self, model: &mut super::PeftModel<M>, name: &str) {
        remove(&mut model.base, name);
        model.heads.heads.retain(|h| h.name != name);
    }

    fn params_in_base(&self, model: &mut super::PeftModel<M>, name: &str) -> usize {
        num_params(&mut model.base, name)
    }

    fn own_params(&self, model: &mut super::PeftModel<M>, name: &str) -> usize {
        let head = model.heads.get(name).map_or(0, |h| crate::params::ParameterCount::of(h).total);
        num_params(&mut model.base, name) + head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_found_by_the_library_locations() {
        assert_eq!(slot_info("bert.encoder.layer.3.output.adapters"), Some((Location::Output, 3)));
        assert_eq!(slot_info("encoder.layer.0.attention.output.adapters"), Some((Location::Attention, 0)));
        assert_eq!(
            slot_info("distilbert.transformer.layer.1.attention_adapters.adapters"),
            Some((Location::Attention, 1))
        );
        assert_eq!(slot_info("distilbert.transformer.layer.5.output_adapters.adapters"), Some((Location::Output, 5)));
        assert_eq!(slot_info("transformer.h.0.output_adapters.adapters"), None);
        assert_eq!(
            key("bert.encoder.layer.0.output.adapters", "a", DOWN_W),
            "encoder.layer.0.output.adapters.a.adapter_down.0.weight"
        );
    }
}
