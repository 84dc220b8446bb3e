//! Modules an adapter trains and saves whole (`modules_to_save`) and the biases LoRA trains
//! (`bias = "all" | "lora_only"`): found by Hub name, exported in the Hub layout, put back.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Tensor, TensorData};
use ft_hub::tensors::NamedTensors;
use ft_peft::config::Bias;
use ft_peft::files::{AdapterFiles, MODEL_PREFIX};
use ft_peft::target;

use crate::export::{HfTensors, values};
use crate::layers::WeightLayout;
use crate::naming::{HubModule, HubPath, Part};
use crate::{ModelError, Result};

/// The Hub paths `modules_to_save` takes (PEFT's plain `endswith`), linear layers only.
pub(crate) fn paths<M: HubModule>(model: &mut M, modules_to_save: &[String]) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut other = None;
    model.parts(&HubPath::root(), &mut |path, part| {
        if path.as_str().is_empty() || !target::saved_whole(modules_to_save, path.as_str()) {
            return;
        }
        match part {
            Part::Projection(_) | Part::Linear(_) => found.push(path.to_string()),
            p => {
                other.get_or_insert(format!("{path} ({})", p.kind()));
            }
        }
    });
    match other {
        Some(o) => Err(ModelError::Unsupported(format!("modules_to_save: ft saves linear layers whole, not {o}"))),
        None => Ok(found),
    }
}

/// Number of parameters of the modules at `paths`.
pub(crate) fn num_params<M: HubModule>(model: &mut M, paths: &[String]) -> usize {
    let mut n = 0;
    model.parts(&HubPath::root(), &mut |path, part| {
        if paths.iter().any(|p| p == path.as_str()) {
            n += part.params().iter().map(|(_, _, k)| k).sum::<usize>();
        }
    });
    n
}

/// Whole linear layers by Hub path (with their Hub weight layout): the modules one owner (an
/// adapter, or the base) has at its `modules_to_save` paths. Cloning shares the tensors.
pub(crate) type Layers = Vec<(String, WeightLayout, Linear)>;

/// The layers at `paths`, as they are in the model now.
pub(crate) fn take_layers<M: HubModule>(model: &mut M, paths: &[String]) -> Layers {
    let mut out = Vec::new();
    model.parts(&HubPath::root(), &mut |path, part| {
        if !paths.iter().any(|p| p == path.as_str()) {
            return;
        }
        match part {
            Part::Projection(p) => out.push((path.to_string(), p.layout, p.base.clone())),
            Part::Linear(l) => out.push((path.to_string(), WeightLayout::Linear, l.clone())),
            _ => {}
        }
    });
    out
}

/// Puts `layers` into the model at their paths (the very tensors: no copy, no rounding).
pub(crate) fn put_layers<M: HubModule>(model: &mut M, layers: &Layers) {
    model.parts(&HubPath::root(), &mut |path, part| {
        let Some((_, _, layer)) = layers.iter().find(|(p, _, _)| p == path.as_str()) else { return };
        match part {
            Part::Projection(p) => p.base = layer.clone(),
            Part::Linear(l) => *l = layer.clone(),
            _ => {}
        }
    });
}

/// Copies of `base`'s layers holding the file's tensors for them (`{prefix}{path}.weight`,
/// `.bias`, shapes checked).
pub(crate) fn layers_from_file(base: &Layers, prefix: &str, files: &mut AdapterFiles) -> Result<Layers> {
    let mut out = Vec::new();
    for (path, layout, layer) in base {
        let mut l = layer.clone();
        let hub = HubPath::root().pp(path);
        let mut t = NamedTensors::new();
        let [i, o] = layer.weight.lazy_shape().dims::<2>();
        let shape = match layout {
            WeightLayout::Linear => vec![o, i],
            WeightLayout::Conv1D => vec![i, o],
        };
        let w = files.take(&format!("{prefix}{path}.weight"), &shape)?;
        t.insert(&hub.tensor("weight"), shape, w)?;
        if layer.bias.is_some() {
            let b = files.take(&format!("{prefix}{path}.bias"), &[o])?;
            t.insert(&hub.tensor("bias"), vec![o], b)?;
        }
        set_linear(&mut l, *layout, &hub, &t)?;
        out.push((path.clone(), *layout, l));
    }
    Ok(out)
}

/// The layers' tensors under PEFT's names (`{prefix}{path}.weight`, Hub layout).
pub(crate) fn export_layers(layers: &Layers, prefix: &str, out: &mut NamedTensors) -> Result<()> {
    for (path, layout, l) in layers {
        let w = l.weight.val();
        let w = if *layout == WeightLayout::Linear { w.transpose() } else { w };
        let shape = w.dims().to_vec();
        out.insert(&format!("{prefix}{path}.weight"), shape, values(w)?)?;
        if let Some(b) = &l.bias {
            let b = b.val();
            let shape = b.dims().to_vec();
            out.insert(&format!("{prefix}{path}.bias"), shape, values(b)?)?;
        }
    }
    Ok(())
}

fn set<const D: usize>(param: &mut Param<Tensor<D>>, shape: [usize; D], values: &[f32], transpose: bool) {
    let device = param.device();
    let t = Tensor::<D>::from_data(TensorData::new(values.to_vec(), shape), &device);
    let t = if transpose { t.transpose() } else { t };
    let mut p = Param::from_tensor(t).set_require_grad(param.is_require_grad());
    p.id = param.id;
    *param = p;
}

fn set_linear(l: &mut Linear, layout: WeightLayout, path: &HubPath, tensors: &NamedTensors) -> Result<()> {
    if let Some((shape, v)) = tensors.get(&path.tensor("weight")) {
        let [a, b] = <[usize; 2]>::try_from(shape)
            .map_err(|_| ModelError::Input(format!("{path}.weight: expected a matrix, got shape {shape:?}")))?;
        let want = l.weight.lazy_shape().dims::<2>();
        let (want_a, want_b) = match layout {
            WeightLayout::Linear => (want[1], want[0]),
            WeightLayout::Conv1D => (want[0], want[1]),
        };
        if (a, b) != (want_a, want_b) {
            return Err(ModelError::Input(format!(
                "{path}.weight: shape {shape:?}, the model's is [{want_a}, {want_b}]"
            )));
        }
        set(&mut l.weight, [a, b], v, layout == WeightLayout::Linear);
    }
    if let Some((shape, v)) = tensors.get(&path.tensor("bias"))
        && let Some(bias) = &mut l.bias
    {
        let want = bias.lazy_shape().dims::<1>();
        if shape != want {
            return Err(ModelError::Input(format!("{path}.bias: shape {shape:?}, the model's is {want:?}")));
        }
        set(bias, [want[0]], v, false);
    }
    Ok(())
}

fn set_vector(p: &mut Param<Tensor<1>>, path: &HubPath, name: &str, tensors: &NamedTensors) -> Result<()> {
    if let Some((shape, v)) = tensors.get(&path.tensor(name)) {
        let want = p.lazy_shape().dims::<1>();
        if shape != want {
            return Err(ModelError::Input(format!("{path}.{name}: shape {shape:?}, the model's is {want:?}")));
        }
        set(p, [want[0]], v, false);
    }
    Ok(())
}

/// Puts `tensors` (Hub names and layout) into the linear layers they name.
pub(crate) fn import<M: HubModule>(model: &mut M, tensors: &NamedTensors) -> Result<()> {
    let mut error = None;
    model.parts(&HubPath::root(), &mut |path, part| {
        if error.is_some() {
            return;
        }
        let r = match part {
            Part::Projection(p) => set_linear(&mut p.base, p.layout, path, tensors),
            Part::Linear(l) => set_linear(l, WeightLayout::Linear, path, tensors),
            Part::LayerNorm(ln) => {
                set_vector(&mut ln.gamma, path, "weight", tensors).and_then(|()| match &mut ln.beta {
                    Some(b) => set_vector(b, path, "bias", tensors),
                    None => Ok(()),
                })
            }
            _ => Ok(()),
        };
        if let Err(e) = r {
            error = Some(e);
        }
    });
    error.map_or(Ok(()), Err)
}

/// The biases `bias` trains, as (Hub tensor name, PEFT file name): every bias for `all`
/// (linear and LayerNorm; `{m}.base_layer.bias` where LoRA wraps the layer), the LoRA layers'
/// for `lora_only`; modules saved whole are saved as such.
pub(crate) fn bias_names<M: HubModule>(
    model: &mut M,
    bias: Bias,
    lora_modules: &[String],
    saved_whole: &[String],
) -> Vec<(String, String)> {
    if bias == Bias::None {
        return Vec::new();
    }
    let mut out = Vec::new();
    model.parts(&HubPath::root(), &mut |path, part| {
        let has_bias = part.params().iter().any(|(n, _, _)| *n == "bias");
        let wrapped = lora_modules.iter().any(|m| m == path.as_str());
        let whole = saved_whole.iter().any(|m| m == path.as_str());
        if !has_bias || whole || (bias == Bias::LoraOnly && !wrapped) {
            return;
        }
        let file = if wrapped {
            format!("{MODEL_PREFIX}{path}.base_layer.bias")
        } else {
            format!("{MODEL_PREFIX}{path}.bias")
        };
        out.push((path.tensor("bias"), file));
    });
    out
}

/// Number of values of the biases `wanted` names, outside modules saved whole.
pub(crate) fn bias_count<M: HubModule>(model: &mut M, wanted: &[(String, String)], saved_whole: &[String]) -> usize {
    let mut n = 0;
    model.parts(&HubPath::root(), &mut |path, part| {
        if saved_whole.iter().any(|s| s == path.as_str()) {
            return;
        }
        for (name, _, k) in part.params() {
            if name == "bias" && wanted.iter().any(|(h, _)| *h == path.tensor("bias")) {
                n += k;
            }
        }
    });
    n
}

/// Writes the biases `wanted` names into `tensors` under PEFT's names.
pub(crate) fn export_biases<M: HubModule>(
    model: &mut M,
    wanted: &[(String, String)],
    tensors: &mut NamedTensors,
) -> Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let mut all = HfTensors::new();
    all.add_parts_where(model, &|p| wanted.iter().any(|(h, _)| h.strip_suffix(".bias") == Some(p)))?;
    for (hub, file) in wanted {
        if let Some((s, v)) = all.get(hub) {
            tensors.insert(file, s.to_vec(), v.to_vec())?;
        }
    }
    Ok(())
}

/// Reads the biases `wanted` names from the file into the base layers.
pub(crate) fn load_biases<M: HubModule>(
    model: &mut M,
    wanted: &[(String, String)],
    files: &mut AdapterFiles,
) -> Result<()> {
    let mut current = HfTensors::new();
    current.add_parts_where(model, &|p| wanted.iter().any(|(h, _)| h.strip_suffix(".bias") == Some(p)))?;
    let mut new = NamedTensors::new();
    for (hub, file) in wanted {
        if let Some((s, _)) = current.get(hub) {
            let s = s.to_vec();
            let v = files.take(file, &s)?;
            new.insert(hub, s, v)?;
        }
    }
    import(model, &new)
}
