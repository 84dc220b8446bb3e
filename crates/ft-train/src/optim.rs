//! AdamW as transformers' `Trainer` sets it up, on Burn's optimizer.
//!
//! Burn's `AdamW` computes exactly `torch.optim.AdamW` (decoupled decay `p ← p·(1 − lr·wd)`, then
//! `p ← p − lr·m̂/(√v̂ + ε)` with bias correction), and its `ModuleOptimizer` keeps per-parameter
//! state that saves and loads with the checkpoint — so it is used as is. What Burn does not do the
//! way transformers does, ft does here:
//!
//! - **No weight decay on biases and normalisation layers** (transformers'
//!   `get_decay_parameter_names`: every LayerNorm parameter and every bias): a second parameter
//!   group with decay 0, chosen by module type — any parameter of a `LayerNorm` or `BatchNorm`
//!   (GPT-2's `ln_1`, ResNet's `bn1`, whatever the field is called) and any `bias`, adapters'
//!   included. (transformers would decay a BatchNorm's weight; timm and torchvision's recipes do
//!   not, and neither does ft.)
//! - **Clipping by the global norm** over all gradients (`torch.nn.utils.clip_grad_norm_`);
//!   Burn's gradient clipping works per parameter. [`clip_global_norm`] also returns the norm,
//!   which transformers logs as `grad_norm`.
//! - The learning rate comes from [`crate::schedule`] per step (transformers' `LambdaLR`
//!   semantics), passed to each `step`.
//! - **One fused pass per parameter on the CPU** ([`FusedAdamW`]): Burn's `AdamW` runs its update
//!   as ~12 tensor operations, each allocating a parameter-sized tensor; for all-MiniLM-L6-v2
//!   (22.7M parameters, half of them the word embeddings) that was 50 ms of a 160 ms CoNLL step.
//!   On the flex device ft does the same arithmetic, in the same order and precision, in one
//!   parallel loop, keeping Burn's state type (so checkpoints are Burn's `AdamWState` records);
//!   on other devices it calls Burn's `AdamW`.
//! - **Clipping folded into that pass** ([`AdamWOptimizer::clip_and_step`]): the global norm is
//!   one parallel read of the gradients ([`ft_hub::ops::sum_of_squares`]); its factor
//!   `max_norm / (norm + 1e-6)` is applied inside AdamW's pass (`g·factor` in f32, as Burn's
//!   `mul_scalar` computes it, so the update is the same bit for bit) instead of a separate
//!   single-threaded pass writing every gradient (CoNLL: 22.7M values per step).

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, GradientsParams, ModuleOptimizer, Optimizer};
use burn::tensor::{DType, Device, Tensor, TensorData};
use ft_models::device::is_flex;
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Result;
use crate::args::TrainingArguments;

/// The parameters of `module` that get no weight decay: every parameter of a normalisation
/// layer and every bias (by module type, not by name).
pub fn no_decay_params<M: Module>(module: &M) -> Vec<ParamId> {
    struct Collector {
        path: Vec<(String, String)>,
        ids: Vec<ParamId>,
    }
    impl ModuleVisitor for Collector {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.path.push((name.to_string(), container_type.to_string()));
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let Some((field, container)) = self.path.last() else { return };
            let norm = matches!(
                container.as_str(),
                "Struct:LayerNorm" | "Struct:BatchNorm" | "Struct:RmsNorm" | "Struct:GroupNorm"
            );
            if norm || field == "bias" {
                self.ids.push(param.id);
            }
        }
    }
    let mut c = Collector { path: Vec::new(), ids: Vec::new() };
    module.visit(&mut c);
    c.ids
}

/// AdamW with transformers' hyper-parameters and decay groups for `module`'s parameters.
pub fn adamw<M: Module>(args: &TrainingArguments, module: &M) -> Result<AdamWOptimizer> {
    adamw_with_lr_scale(args, module, &[], 1.0)
}

/// A factor every gradient is multiplied by inside [`FusedAdamW`]'s pass (global-norm
/// clipping's coefficient), shared by all parameter groups of one optimizer; 1 between steps.
#[derive(Clone, Debug)]
struct GradScale(Arc<AtomicU32>);

impl Default for GradScale {
    fn default() -> Self {
        Self(Arc::new(AtomicU32::new(1f32.to_bits())))
    }
}

impl GradScale {
    fn get(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }
    fn set(&self, factor: f32) {
        self.0.store(factor.to_bits(), Ordering::Relaxed);
    }
}

/// Burn's [`ModuleOptimizer`] (parameter groups of [`FusedAdamW`], state saved as Burn's
/// records) with transformers' global-norm clipping applied inside the update pass.
pub struct AdamWOptimizer {
    module: ModuleOptimizer,
    grad_scale: GradScale,
}

impl AdamWOptimizer {
    /// Clips `grads` to `max_norm` by their global L2 norm (`clip_grad_norm_`: factor
    /// `max_norm / (norm + 1e-6)` when the norm exceeds it; no clipping when `max_norm` is 0 or
    /// the norm is not finite) and applies one AdamW step at learning rate `lr`. Returns the
    /// updated module and the norm before clipping (transformers' `grad_norm`).
    pub fn clip_and_step<M: Module>(&mut self, lr: f64, module: M, grads: GradientsParams, max_norm: f64) -> (M, f64) {
        let norm = global_norm(&module, &grads);
        let factor = clip_factor(norm, max_norm);
        /// Puts the factor back to 1 when the step ends, panicking or not.
        struct Reset<'a>(&'a GradScale);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.set(1.0);
            }
        }
        self.grad_scale.set(factor.map_or(1.0, |f| f as f32));
        let _reset = Reset(&self.grad_scale);
        (self.module.step(lr, module, grads), norm)
    }

    /// One AdamW step without clipping.
    pub fn step<M: Module>(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        self.module.step(lr, module, grads)
    }

    /// Writes the optimizer state (Burn's record) to `path`.
    pub fn save(&self, path: &Path) -> std::result::Result<(), burn::store::RecordError> {
        self.module.save(path)
    }

    /// Restores the optimizer state written by [`Self::save`].
    pub fn load(mut self, path: &Path) -> std::result::Result<Self, burn::store::RecordError> {
        self.module = self.module.load(path)?;
        Ok(self)
    }
}

/// [`adamw`] where the parameters `scaled` learn at `scale` times the scheduled learning rate
/// — PyTorch's parameter groups with their own `lr` under one `LambdaLR` schedule (exercise
/// 7's lower learning rate for the unfrozen backbone stages: `scale = backbone_lr / lr`).
pub fn adamw_with_lr_scale<M: Module>(
    args: &TrainingArguments,
    module: &M,
    scaled: &[ParamId],
    scale: f64,
) -> Result<AdamWOptimizer> {
    let grad_scale = GradScale::default();
    let fused = |wd: f64, s: f64| {
        let mut o = FusedAdamW::new(args.adam_beta1, args.adam_beta2, args.adam_epsilon, wd).with_lr_scale(s);
        o.grad_scale = grad_scale.clone();
        o
    };
    let mut optimizer = ModuleOptimizer::from(fused(args.weight_decay, 1.0));
    let no_decay = if args.weight_decay == 0.0 { Vec::new() } else { no_decay_params(module) };
    if !no_decay.is_empty() {
        optimizer = optimizer.with_group(ParamGroup::from_ids(no_decay.clone()), fused(0.0, 1.0), None);
    }
    if !scaled.is_empty() && scale != 1.0 {
        let (decay_free, decayed): (Vec<ParamId>, Vec<ParamId>) = scaled.iter().partition(|id| no_decay.contains(id));
        if !decayed.is_empty() {
            optimizer = optimizer.with_group(ParamGroup::from_ids(decayed), fused(args.weight_decay, scale), None);
        }
        if !decay_free.is_empty() {
            optimizer = optimizer.with_group(ParamGroup::from_ids(decay_free), fused(0.0, scale), None);
        }
    }
    Ok(AdamWOptimizer { module: optimizer, grad_scale })
}

/// `torch.optim.AdamW` (Burn's `AdamW` arithmetic) as one fused, parallel pass per parameter on
/// the flex CPU device; Burn's `AdamW` itself elsewhere. The state is Burn's [`AdamWState`].
#[derive(Clone)]
pub struct FusedAdamW {
    inner: AdamW,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
    lr_scale: f64,
    grad_scale: GradScale,
}

impl FusedAdamW {
    /// The same optimizer, applying `scale` times the learning rate it is given.
    pub fn with_lr_scale(mut self, scale: f64) -> Self {
        self.lr_scale = scale;
        self
    }

    /// AdamW with these hyper-parameters.
    pub fn new(beta_1: f64, beta_2: f64, epsilon: f64, weight_decay: f64) -> Self {
        let inner = AdamWConfig::new()
            .with_beta_1(beta_1 as f32)
            .with_beta_2(beta_2 as f32)
            .with_epsilon(epsilon as f32)
            .with_weight_decay(weight_decay as f32)
            .build();
        Self {
            inner,
            beta_1: beta_1 as f32,
            beta_2: beta_2 as f32,
            epsilon: epsilon as f32,
            weight_decay: weight_decay as f32,
            lr_scale: 1.0,
            grad_scale: GradScale::default(),
        }
    }
}

const CHUNK: usize = 1 << 14;

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let lr = if self.lr_scale == 1.0 { lr } else { lr * self.lr_scale };
        let device = tensor.device();
        let f32s = tensor.dtype() == DType::F32 && grad.dtype() == DType::F32;
        let amsgrad = state.as_ref().is_some_and(|s| s.momentum.max_moment_2.is_some());
        let factor = self.grad_scale.get();
        if !f32s || amsgrad || !is_flex(&device) {
            let grad = if factor == 1.0 { grad } else { grad.mul_scalar(factor) };
            return self.inner.step(lr, tensor, grad, state);
        }
        let shape = tensor.shape();
        let n = shape.num_elements();
        let (time, m, v) = match state {
            Some(s) => (s.momentum.time + 1, s.momentum.moment_1.into_data(), s.momentum.moment_2.into_data()),
            None => (1, TensorData::new(vec![0f32; n], shape.clone()), TensorData::new(vec![0f32; n], shape.clone())),
        };
        let (mut p, g, mut m, mut v) = (tensor.into_data(), grad.into_data(), m, v);
        let (Ok(ps), Ok(gs)) = (p.as_mut_slice::<f32>(), g.as_slice::<f32>()) else {
            unreachable!("f32 tensors hold f32 data")
        };
        let (Ok(ms), Ok(vs)) = (m.as_mut_slice::<f32>(), v.as_mut_slice::<f32>()) else {
            unreachable!("AdamW moments of an f32 parameter are f32")
        };
        let (b1, b2, eps) = (self.beta_1, self.beta_2, self.epsilon);
        let (f1, f2) = (1.0 - b1, 1.0 - b2);
        let c1 = 1f32 - b1.powi(time as i32);
        let c2 = 1f32 - b2.powi(time as i32);
        let decay = (1.0 - lr * self.weight_decay as f64) as f32;
        let lr = lr as f32;
        ps.par_chunks_mut(CHUNK)
            .zip(gs.par_chunks(CHUNK))
            .zip(ms.par_chunks_mut(CHUNK).zip(vs.par_chunks_mut(CHUNK)))
            .for_each(|((ps, gs), (ms, vs))| {
                for (((p, &g), m), v) in ps.iter_mut().zip(gs).zip(ms.iter_mut()).zip(vs.iter_mut()) {
                    let g = if factor == 1.0 { g } else { g * factor };
                    *m = *m * b1 + g * f1;
                    *v = *v * b2 + (g * g) * f2;
                    let delta = (*m / c1) / ((*v / c2).sqrt() + eps);
                    *p = *p * decay - delta * lr;
                }
            });
        let momentum = AdaptiveMomentumState::new(time, Tensor::from_data(m, &device), Tensor::from_data(v, &device));
        (Tensor::from_data(p, &device), Some(AdamWState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <AdamW as Optimizer>::to_device(state, device)
    }
}

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = ft_hub::ops::sum_of_squares(g);
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
    let norm = global_norm(module, grads);
    if let Some(factor) = clip_factor(norm, max_norm) {
        module.visit(&mut Scale { grads, factor });
    }
    norm
}

/// The global L2 norm of all gradients of `module`.
fn global_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    let mut sq = SquaredNorm { grads, total: None };
    module.visit(&mut sq);
    sq.total.map(|t| (t.into_scalar::<f32>() as f64).sqrt()).unwrap_or(0.0)
}

/// `clip_grad_norm_`'s factor `max_norm / (norm + 1e-6)` when it is below 1 (`None`: no clipping).
fn clip_factor(norm: f64, max_norm: f64) -> Option<f64> {
    let coef = max_norm / (norm + 1e-6);
    (max_norm > 0.0 && norm.is_finite() && coef < 1.0).then_some(coef)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// Decay is decided by module type: GPT-2's `ln_1`/`ln_2`/`ln_f` (not named `layer_norm`) and
    /// ResNet's BatchNorm layers get none, every bias gets none, weights do.
    #[test]
    fn no_decay_by_module_type() {
        use ft_models::auto::{AnyModel, LoadOptions, Task, load};
        use ft_models::naming::HubModule;
        use ft_models::params::param_names;
        let device = Device::flex();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/models/tiny-gpt2");
        let AnyModel::CausalLm(mut m) = load(dir, Task::CausalLm, &LoadOptions::default(), &device).unwrap().model
        else {
            panic!("not a causal LM")
        };
        let exempt = no_decay_params(&m);
        let names = param_names(&mut m);
        let is_exempt = |name: &str| {
            let id = names.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name}")).1;
            exempt.contains(&id)
        };
        for name in [
            "transformer.h.0.ln_1.weight",
            "transformer.h.1.ln_2.bias",
            "transformer.ln_f.weight",
            "transformer.h.0.attn.c_attn.bias",
        ] {
            assert!(is_exempt(name), "{name} should get no weight decay");
        }
        for name in ["transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_fc.weight", "transformer.wte.weight"]
        {
            assert!(!is_exempt(name), "{name} should get weight decay");
        }
        let mut c = ft_models::resnet::ResNetConfig::new("resnet18", 3);
        c.model_args.channels = Some([4, 8, 8, 16]);
        c.model_args.stem_width = 4.into();
        let mut r = ft_models::resnet::ResNet::init(&c, &device).unwrap();
        let exempt = no_decay_params(&r);
        let names = param_names(&mut r);
        let id = |name: &str| names.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(exempt.contains(&id("layer1.0.bn1.weight")) && exempt.contains(&id("fc.bias")));
        assert!(!exempt.contains(&id("layer1.0.conv1.weight")) && !exempt.contains(&id("fc.weight")));
        let _ = <ft_models::resnet::ResNet as HubModule>::parts;
    }

    /// Clipping folded into the update computes what clipping the gradients first and then
    /// stepping computes, bit for bit, with clipping active, inactive and off; and returns the
    /// same norm.
    #[test]
    fn clip_and_step_equals_clip_then_step() {
        use burn::nn::{Linear, LinearConfig};
        let device = Device::flex().autodiff();
        let args = TrainingArguments { weight_decay: 0.01, ..TrainingArguments::default() };
        let x: Tensor<2> = Tensor::random([5, 7], Distribution::Normal(0.0, 3.0), &device);
        let grads_of = |m: &Linear| {
            let loss = m.forward(x.clone()).powi_scalar(2).sum();
            GradientsParams::from_grads(loss.backward(), m)
        };
        for max_norm in [1e-3, 1e6, 0.0] {
            let model: Linear = LinearConfig::new(7, 3).init(&device);
            let (mut a, mut b) = (model.clone(), model);
            let (mut fused, mut separate) = (adamw(&args, &a).unwrap(), adamw(&args, &b).unwrap());
            for step in 0..3 {
                let lr = 1e-2 * (step + 1) as f64;
                let grads = grads_of(&a);
                let norm_a;
                (a, norm_a) = fused.clip_and_step(lr, a, grads, max_norm);
                let mut grads = grads_of(&b);
                let norm_b = clip_global_norm(&b, &mut grads, max_norm);
                b = separate.step(lr, b, grads);
                assert_eq!(norm_a, norm_b);
                assert!(norm_a > 0.0);
                assert_eq!(fused.grad_scale.get(), 1.0, "the factor applies to one step only");
            }
            let values = |m: &Linear| -> Vec<f32> {
                let mut v: Vec<f32> = m.weight.val().into_data().try_into_vec_as().unwrap();
                v.extend(m.bias.as_ref().unwrap().val().into_data().try_into_vec_as::<f32>().unwrap());
                v
            };
            assert_eq!(values(&a), values(&b), "max_norm {max_norm}");
        }
    }

    /// The fused pass computes what Burn's AdamW computes, step after step, with and without decay.
    #[test]
    fn fused_adamw_equals_burns_adamw() {
        let device = Device::flex();
        for wd in [0.0, 0.01] {
            let fused = FusedAdamW::new(0.9, 0.999, 1e-8, wd);
            let reference = fused.inner.clone();
            let mut a: Tensor<2> = Tensor::random([37, 1000], Distribution::Normal(0.0, 1.0), &device);
            let mut b = a.clone();
            let (mut sa, mut sb) = (None, None);
            for step in 0..5 {
                let g: Tensor<2> = Tensor::random([37, 1000], Distribution::Normal(0.0, 0.1), &device);
                let lr = 1e-3 * (step + 1) as f64;
                (a, sa) = fused.step(lr, a, g.clone(), sa);
                (b, sb) = reference.step(lr, b, g, sb);
            }
            let (a, b): (Vec<f32>, Vec<f32>) =
                (a.into_data().try_into_vec_as().unwrap(), b.into_data().try_into_vec_as().unwrap());
            let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
            assert!(worst <= 1e-7, "wd {wd}: {worst}");
            let (ma, mb) = (sa.unwrap().momentum, sb.unwrap().momentum);
            assert_eq!(ma.time, mb.time);
            let (ma, mb): (Vec<f32>, Vec<f32>) = (
                ma.moment_2.into_data().try_into_vec_as().unwrap(),
                mb.moment_2.into_data().try_into_vec_as().unwrap(),
            );
            assert_eq!(ma, mb);
        }
    }
}
