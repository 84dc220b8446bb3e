//! AdamW as transformers' `Trainer` sets it up, on Burn's optimizer.
//!
//! Burn's `AdamW` computes exactly `torch.optim.AdamW` (decoupled decay `p ← p·(1 − lr·wd)`, then
//! `p ← p − lr·m̂/(√v̂ + ε)` with bias correction), and its `ModuleOptimizer` keeps per-parameter
//! state that saves and loads with the checkpoint — so it is used as is. What Burn does not do the
//! way transformers does, ft does here:
//!
//! - **No weight decay on biases and LayerNorm weights** (transformers'
//!   `get_decay_parameter_names`): a second parameter group with decay 0, chosen by the
//!   parameters' module paths.
//! - **Clipping by the global norm** over all gradients (`torch.nn.utils.clip_grad_norm_`);
//!   Burn's gradient clipping works per parameter. [`clip_global_norm`] also returns the norm,
//!   which transformers logs as `grad_norm`.
//! - The learning rate comes from [`crate::schedule`] per step (transformers' `LambdaLR`
//!   semantics), passed to each `step`.

use burn::module::{Module, ModuleVisitor, Param, ParamGroup};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

use crate::args::TrainingArguments;
use crate::{Result, TrainError};

/// Module paths of the parameters that get no weight decay: biases and LayerNorm weights.
pub const NO_DECAY_PATTERN: &str = r"(^|\.)bias$|layer_norm\.(gamma|beta)$";

/// AdamW with transformers' hyper-parameters and decay groups.
pub fn adamw(args: &TrainingArguments) -> Result<ModuleOptimizer> {
    let config = |wd: f64| {
        AdamWConfig::new()
            .with_beta_1(args.adam_beta1 as f32)
            .with_beta_2(args.adam_beta2 as f32)
            .with_epsilon(args.adam_epsilon as f32)
            .with_weight_decay(wd as f32)
    };
    let optimizer = config(args.weight_decay).init();
    if args.weight_decay == 0.0 {
        return Ok(optimizer);
    }
    let no_decay = ParamGroup::from_regex(NO_DECAY_PATTERN).map_err(|e| TrainError::Config(format!("no-decay pattern: {e:?}")))?;
    Ok(optimizer.with_group(no_decay, config(0.0).build(), None))
}

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.square().sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + s,
                None => s,
            });
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// The global L2 norm of all gradients of `module`; when `max_norm > 0` and the norm exceeds
/// it, scales every gradient by `max_norm / (norm + 1e-6)` as `clip_grad_norm_` does. Returns the
/// norm before clipping.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let mut sq = SquaredNorm { grads, total: None };
    module.visit(&mut sq);
    let norm = sq.total.map(|t| (t.into_scalar::<f32>() as f64).sqrt()).unwrap_or(0.0);
    if max_norm > 0.0 && norm.is_finite() {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            module.visit(&mut Scale { grads, factor: coef });
        }
    }
    norm
}
