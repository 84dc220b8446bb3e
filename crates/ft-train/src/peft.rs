//! The PEFT methods of `ft train` (`[method] kind = "lora" | "prompt" | "prefix" | "adapter"`):
//! the base model loaded and frozen (no gradients, so no optimizer state for it), one adapter
//! added with the run file's config (named `default`, or `adapter_name` for a bottleneck
//! adapter, which also gets its own head), and the adapter saved in its library's layout — PEFT's
//! `adapter_config.json` + `adapter_model.safetensors`, or AdapterHub's `adapter_config.json` +
//! `adapter.safetensors` + `head_config.json` + `model_head.safetensors` — in the output
//! directory and every checkpoint.
//!
//! Checkpoints also hold `trainable.safetensors`: every trainable tensor by parameter id, so
//! that `--resume` continues exactly — including what PEFT's file does not keep (prefix
//! tuning's projection MLP, whose output is what PEFT saves).

use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use ft_hub::tensors::NamedTensors;
use ft_models::peft::{PeftBase, PeftModel};

use crate::fit::ModelStore;
use crate::{Result, TrainError};

/// The trainable state of a checkpoint.
pub const TRAINABLE_FILE: &str = "trainable.safetensors";

/// The adapter's name in a training run of a PEFT method (PEFT's default).
pub const ADAPTER: &str = "default";

fn id_key(id: burn::module::ParamId) -> String {
    format!("{:016x}", id.val())
}

/// Every trainable float parameter of `model`, by parameter id.
pub fn trainable_tensors<M: Module>(model: &M) -> Result<NamedTensors> {
    struct Collect {
        out: NamedTensors,
        error: Option<String>,
    }
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            if !t.is_require_grad() || self.error.is_some() {
                return;
            }
            let shape = t.dims().to_vec();
            match t.into_data().try_to_vec::<f32>() {
                Ok(v) => {
                    if let Err(e) = self.out.insert(&id_key(param.id), shape, v) {
                        self.error = Some(e.to_string());
                    }
                }
                Err(e) => self.error = Some(format!("{e:?}")),
            }
        }
    }
    let mut c = Collect { out: NamedTensors::new(), error: None };
    model.visit(&mut c);
    match c.error {
        Some(e) => Err(TrainError::State(format!("reading trainable parameters: {e}"))),
        None => Ok(c.out),
    }
}

/// `model` with the values of `tensors` put back into the parameters of the same ids (their
/// trainability kept); fails unless every tensor found its parameter.
pub fn restore_tensors<M: Module>(model: M, tensors: &NamedTensors, file: &Path) -> Result<M> {
    struct Put<'a> {
        tensors: &'a NamedTensors,
        used: usize,
        bad: Option<String>,
    }
    impl ModuleMapper for Put<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let Some((shape, v)) = self.tensors.get(&id_key(param.id)) else { return param };
            let dims = param.lazy_shape().dims::<D>();
            if shape != dims {
                self.bad.get_or_insert(format!("parameter {}: saved {shape:?}, model {dims:?}", id_key(param.id)));
                return param;
            }
            self.used += 1;
            let id = param.id;
            let device = param.device();
            let grad = param.val().is_require_grad();
            let mut p = Param::from_tensor(Tensor::<D>::from_data(TensorData::new(v.to_vec(), dims), &device))
                .set_require_grad(grad);
            p.id = id;
            p
        }
    }
    let mut put = Put { tensors, used: 0, bad: None };
    let model = model.map(&mut put);
    if let Some(b) = put.bad {
        return Err(TrainError::State(format!("{}: {b}", file.display())));
    }
    if put.used != tensors.len() {
        return Err(TrainError::State(format!(
            "{}: {} of its {} tensors match no parameter of the model (a checkpoint of another run?)",
            file.display(),
            tensors.len() - put.used,
            tensors.len()
        )));
    }
    Ok(model)
}

/// Saves the trained adapter in PEFT's layout; checkpoints add [`TRAINABLE_FILE`].
#[derive(Debug, Default)]
pub struct PeftStore;

impl<M: PeftBase> ModelStore<PeftModel<M>> for PeftStore {
    fn save(&self, model: &PeftModel<M>, dir: &Path) -> Result<()> {
        let name = model.active_name().unwrap_or(ADAPTER).to_string();
        model.clone().save_adapter(&name, dir)?;
        Ok(())
    }

    fn save_checkpoint(&self, model: &PeftModel<M>, dir: &Path) -> Result<()> {
        self.save(model, dir)?;
        Ok(trainable_tensors(model)?.write_safetensors(&dir.join(TRAINABLE_FILE))?)
    }

    fn restore(&self, model: PeftModel<M>, dir: &Path) -> Result<PeftModel<M>> {
        let file = dir.join(TRAINABLE_FILE);
        let tensors = NamedTensors::read_safetensors(&file)?;
        restore_tensors(model, &tensors, &file)
    }
}
