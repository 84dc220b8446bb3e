//! Parameter counts and freezing by Hub name: one mechanism for every model and method (the
//! frozen-encoder head, ResNet's new `fc`, partial unfreezing, PEFT's frozen base).

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::tensor::Tensor;

use crate::naming::{HubModule, HubPath, Part};

/// Parameter counts as PyTorch reports them: `sum(p.numel() for p in model.parameters())`,
/// and the same over parameters with `requires_grad` — BatchNorm running statistics are buffers
/// and count in neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterCount {
    /// All parameters.
    pub total: usize,
    /// Parameters that receive gradients.
    pub trainable: usize,
}

impl ParameterCount {
    /// Counts `module`'s parameters. Trainability is the configured one (what the module will
    /// train with once on an autodiff device), so it is meaningful on any device.
    pub fn of<M: Module>(module: &M) -> Self {
        struct Counter {
            path: Vec<(String, String)>,
            count: ParameterCount,
        }
        impl ModuleVisitor for Counter {
            fn enter_module(&mut self, name: &str, container_type: &str) {
                self.path.push((name.to_string(), container_type.to_string()));
            }
            fn exit_module(&mut self, _name: &str, _container_type: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                // Burn visits BatchNorm's running statistics like parameters; PyTorch keeps them
                // as buffers.
                if let Some((name, container)) = self.path.last()
                    && container == "Struct:BatchNorm"
                    && name.starts_with("running_")
                {
                    return;
                }
                let n = param.lazy_shape().num_elements();
                self.count.total += n;
                if param.val().is_require_grad() {
                    self.count.trainable += n;
                }
            }
        }
        // `train()` moves parameters onto autodiff with their configured `require_grad`, which
        // a plain device cannot hold on the tensor itself.
        let trained = module.clone().train();
        let mut counter = Counter { path: Vec::new(), count: ParameterCount { total: 0, trainable: 0 } };
        trained.visit(&mut counter);
        counter.count
    }
}

/// Makes exactly the base parameters whose Hub names (`bert.encoder.layer.0.output.dense.weight`,
/// `fc.bias`, ...) `trainable` accepts receive gradients; the others are frozen. Adapters'
/// own parameters are not base parameters and are left as they are.
///
/// With `freeze_statistics`, a BatchNorm layer whose parameters are all frozen also stops using
/// and updating batch statistics in training (eval mode, Burn's `freeze` — the right way to
/// freeze a backbone), and one with trainable parameters trains its statistics. Without it,
/// BatchNorm layers keep their behaviour (PyTorch's `requires_grad = False` alone).
pub fn set_trainable<M: HubModule + Module>(mut model: M, trainable: &dyn Fn(&str) -> bool, freeze_statistics: bool) -> M {
    let (mut on, mut off, mut stats_on, mut stats_off) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    model.parts(&HubPath::root(), &mut |path, part| {
        let mut any_trainable = false;
        for (name, id, _) in part.params() {
            if trainable(&path.tensor(name)) {
                any_trainable = true;
                on.push(id);
            } else {
                off.push(id);
            }
        }
        if let (true, Part::BatchNorm(bn)) = (freeze_statistics, &part) {
            if any_trainable { stats_on.push(bn.training.id) } else { stats_off.push(bn.training.id) }
        }
    });
    let mut model = model.set_require_grad_group(ParamGroup::from_ids(off), false);
    model = model.set_require_grad_group(ParamGroup::from_ids(on), true);
    if !stats_off.is_empty() {
        model = model.freeze_group(ParamGroup::from_ids(stats_off));
    }
    if !stats_on.is_empty() {
        model = model.unfreeze_group(ParamGroup::from_ids(stats_on));
    }
    model
}

/// The Hub names of the base parameters (not buffers), with their ids, in part order.
pub fn param_names<M: HubModule + ?Sized>(model: &mut M) -> Vec<(String, ParamId)> {
    let mut out = Vec::new();
    model.parts(&HubPath::root(), &mut |path, part| {
        out.extend(part.params().into_iter().map(|(name, id, _)| (path.tensor(name), id)));
    });
    out
}

/// The number of base parameters outside embedding tables — transformers'
/// `num_parameters(exclude_embeddings=True)`, which its FLOPs estimate uses.
pub fn non_embedding_parameters<M: HubModule + ?Sized>(model: &mut M) -> usize {
    let mut n = 0;
    model.parts(&HubPath::root(), &mut |_, part| {
        if !matches!(part, Part::Embedding(_)) {
            n += part.params().iter().map(|(_, _, k)| k).sum::<usize>();
        }
    });
    n
}
