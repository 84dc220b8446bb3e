//! torchvision's ResNet ([`ResNet`]) in Burn.
//!
//! Paper: He et al., *Deep Residual Learning for Image Recognition* (2015). Reference
//! implementation: torchvision's `models/resnet.py` (`resnet18`, `resnet34`: BasicBlocks); timm's
//! `models/resnet.py` builds the same network with the same tensor names. A 7x7 stride-2 stem
//! convolution, BatchNorm, ReLU and 3x3 stride-2 max pooling; four stages of BasicBlocks (two 3x3
//! convolutions with BatchNorm, a residual connection, a 1x1 stride-2 projection where the shape
//! changes); global average pooling; a linear classifier `fc`.
//!
//! BatchNorm (`eps` 1e-5, momentum 0.1) normalises with its running statistics in inference —
//! on a device without autodiff Burn always infers, as `model.eval()` does — and with batch
//! statistics (updating the running ones) when training on an autodiff device.
//!
//! Field names follow torchvision's state_dict keys (`conv1`, `bn1`, `layer1.0.conv1`, ...);
//! `downsample.0` / `downsample.1` are [`Downsample::conv`] / [`Downsample::bn`] (see
//! [`super::load`]).

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::config::ResNetConfig;
use crate::{ModelError, Result};

/// BatchNorm epsilon of torchvision's and timm's ResNets.
pub const BN_EPS: f64 = 1e-5;
/// BatchNorm momentum of torchvision's and timm's ResNets.
pub const BN_MOMENTUM: f64 = 0.1;

/// A bias-free square convolution with the given weight (`[out, in, k, k]`, PyTorch's layout).
pub(crate) fn conv(weight: Tensor<4>, stride: usize, padding: usize) -> Conv2d {
    let [_, _, k, _] = weight.dims();
    Conv2d {
        weight: Param::from_tensor(weight),
        bias: None,
        stride: [stride, stride],
        kernel_size: [k, k],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingConfig2d::Explicit(padding, padding, padding, padding),
    }
}

/// A BatchNorm from its affine parameters and running statistics (all `[channels]`).
pub(crate) fn batch_norm(weight: Tensor<1>, bias: Tensor<1>, running_mean: Tensor<1>, running_var: Tensor<1>) -> BatchNorm {
    let [c] = weight.dims();
    let mut bn = burn::nn::BatchNormConfig::new(c).with_epsilon(BN_EPS).with_momentum(BN_MOMENTUM).init(&weight.device());
    bn.gamma = Param::from_tensor(weight);
    bn.beta = Param::from_tensor(bias);
    bn.running_mean = RunningState::new(running_mean);
    bn.running_var = RunningState::new(running_var);
    bn
}

/// The 1x1 projection of a block's residual path (torchvision's `downsample`, an
/// `nn.Sequential(conv1x1, BatchNorm2d)`).
#[derive(Module, Debug)]
pub struct Downsample {
    /// `downsample.0`: 1x1 convolution, stride 2 (or 1 when only the width changes).
    pub conv: Conv2d,
    /// `downsample.1`.
    pub bn: BatchNorm,
}

/// torchvision's `BasicBlock`: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// 3x3, stride 1 or 2.
    pub conv1: Conv2d,
    /// BatchNorm after `conv1`.
    pub bn1: BatchNorm,
    /// 3x3, stride 1.
    pub conv2: Conv2d,
    /// BatchNorm after `conv2`.
    pub bn2: BatchNorm,
    /// Projection of the shortcut when the shape changes.
    pub downsample: Option<Downsample>,
}

impl BasicBlock {
    /// # Shapes
    /// - `x`: `[batch, in, h, w]`; output `[batch, out, h / stride, w / stride]` (rounded up)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(d.conv.forward(x.clone())),
            None => x.clone(),
        };
        let out = relu(self.bn1.forward(self.conv1.forward(x)));
        let out = self.bn2.forward(self.conv2.forward(out));
        relu(out + identity)
    }
}

/// torchvision's ResNet with BasicBlocks (`resnet18`, `resnet34`), including its `fc` head.
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem: 7x7 convolution, stride 2, padding 3.
    pub conv1: Conv2d,
    /// Stem BatchNorm.
    pub bn1: BatchNorm,
    /// 3x3 max pooling, stride 2, padding 1.
    pub maxpool: MaxPool2d,
    /// Stage 1 (stride 1).
    pub layer1: Vec<BasicBlock>,
    /// Stage 2 (stride 2).
    pub layer2: Vec<BasicBlock>,
    /// Stage 3 (stride 2).
    pub layer3: Vec<BasicBlock>,
    /// Stage 4 (stride 2).
    pub layer4: Vec<BasicBlock>,
    /// Global average pooling to 1x1.
    pub avgpool: AdaptiveAvgPool2d,
    /// The classifier `[features, num_classes]` (Burn's layout; torchvision stores `[out, in]`).
    pub fc: Linear,
}

/// The names of [`ResNet`]'s top-level children, as torchvision names them.
pub const CHILDREN: [&str; 7] = ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"];

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
        use burn::module::ModuleVisitor;

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

impl ResNet {
    /// A randomly initialised ResNet, as torchvision initialises one (`weights=None`):
    /// convolutions Kaiming-normal (fan out, ReLU gain), BatchNorm weight 1 and bias 0 with
    /// fresh running statistics, `fc` as `nn.Linear`'s default.
    pub fn init(config: &ResNetConfig, device: &Device) -> Result<Self> {
        let mut ck = crate::weights::Checkpoint::empty(device);
        let model = Self::from_checkpoint(&mut ck, config)?;
        ck.finish()?;
        Ok(model)
    }

    /// Logits.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, height, width]` (normalised); output `[batch, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.forward_features(images))
    }

    /// The pooled features `fc` reads.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, height, width]`; output `[batch, features]`
    pub fn forward_features(&self, images: Tensor<4>) -> Tensor<2> {
        let _span = tracing::trace_span!("resnet", dims = ?images.dims()).entered();
        let mut x = self.maxpool.forward(relu(self.bn1.forward(self.conv1.forward(images))));
        for block in self.layer1.iter().chain(&self.layer2).chain(&self.layer3).chain(&self.layer4) {
            x = block.forward(x);
        }
        let [b, c, _, _] = x.dims();
        self.avgpool.forward(x).reshape([b, c])
    }

    /// Checks an input batch before [`forward`](Self::forward), which would panic on a wrong
    /// channel count.
    pub fn check_input(&self, dims: [usize; 4]) -> Result<()> {
        let [_, c, h, w] = dims;
        let expected = self.conv1.weight.dims()[1];
        if c != expected || h == 0 || w == 0 {
            return Err(ModelError::Input(format!(
                "images of shape {dims:?}: expected [batch, {expected}, height, width] with positive height and width"
            )));
        }
        Ok(())
    }

    /// Number of classes of the current head.
    pub fn num_classes(&self) -> usize {
        self.fc.weight.dims()[1]
    }

    /// Width of the pooled features.
    pub fn feature_dim(&self) -> usize {
        self.fc.weight.dims()[0]
    }

    /// Replaces the head with a new, randomly initialised `nn.Linear(features, num_classes)` —
    /// the notebook's `resnet.fc = nn.Linear(resnet.fc.in_features, 5)`. The new head is
    /// trainable whatever was frozen before.
    pub fn replace_head(mut self, num_classes: usize) -> Self {
        let device = self.fc.weight.device();
        self.fc = LinearConfig::new(self.feature_dim(), num_classes).init(&device);
        self
    }

    /// Freezes the whole network except `fc`, as the notebook's
    /// `for p in resnet.parameters(): p.requires_grad = False` before replacing `fc`.
    ///
    /// Like PyTorch's `requires_grad = False`, this stops gradients only: BatchNorm layers keep
    /// their training behaviour (batch statistics, running-statistics updates) when the model
    /// trains. Use [`freeze_except`](Self::freeze_except) with `freeze_statistics` to also
    /// freeze them.
    pub fn freeze_backbone(self) -> Self {
        self.set_trainable(&["fc"], false)
    }

    /// Freezes every top-level child ([`CHILDREN`]) except those named, e.g.
    /// `["layer3", "layer4", "fc"]` to fine-tune the last two stages (the notebook's exercise).
    /// Children named are made trainable. With `freeze_statistics`, frozen BatchNorm layers also
    /// stop using and updating batch statistics in training (Burn's `freeze`).
    pub fn freeze_except(self, trainable: &[&str], freeze_statistics: bool) -> Result<Self> {
        if let Some(bad) = trainable.iter().find(|n| !CHILDREN.contains(n)) {
            return Err(ModelError::Input(format!("no child '{bad}' in ResNet (children: {})", CHILDREN.join(", "))));
        }
        Ok(self.set_trainable(trainable, freeze_statistics))
    }

    fn set_trainable(mut self, trainable: &[&str], freeze_statistics: bool) -> Self {
        fn set<M: Module>(m: M, train: bool, freeze_statistics: bool) -> M {
            match (train, freeze_statistics) {
                (true, _) => m.unfreeze(),
                (false, true) => m.freeze(),
                (false, false) => m.no_grad(),
            }
        }
        let t = |name: &str| trainable.contains(&name);
        self.conv1 = set(self.conv1, t("conv1"), freeze_statistics);
        self.bn1 = set(self.bn1, t("bn1"), freeze_statistics);
        self.layer1 = set(self.layer1, t("layer1"), freeze_statistics);
        self.layer2 = set(self.layer2, t("layer2"), freeze_statistics);
        self.layer3 = set(self.layer3, t("layer3"), freeze_statistics);
        self.layer4 = set(self.layer4, t("layer4"), freeze_statistics);
        self.fc = set(self.fc, t("fc"), freeze_statistics);
        self
    }

    /// PyTorch's total and trainable parameter counts.
    pub fn parameter_count(&self) -> ParameterCount {
        ParameterCount::of(self)
    }
}

/// The stem and pooling layers that hold no weights.
pub(crate) fn maxpool() -> MaxPool2d {
    MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init()
}

/// Global average pooling to 1x1.
pub(crate) fn avgpool() -> AdaptiveAvgPool2d {
    AdaptiveAvgPool2dConfig::new([1, 1]).init()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(num_classes: usize) -> ResNet {
        ResNet::init(&ResNetConfig::new("resnet18", num_classes), &Device::flex()).unwrap()
    }

    #[test]
    fn resnet18_parameter_counts_match_torchvision() {
        // torchvision: sum(p.numel() for p in resnet18().parameters()) == 11_689_512
        let m = full(1000);
        assert_eq!(m.parameter_count(), ParameterCount { total: 11_689_512, trainable: 11_689_512 });
        // The notebook: freeze everything, then fc = nn.Linear(512, 5): 2,565 trainable.
        let m = m.freeze_backbone().replace_head(5);
        assert_eq!(m.parameter_count(), ParameterCount { total: 11_179_077, trainable: 2_565 });
        // Freezing after replacing the head gives the same.
        let m = full(1000).replace_head(5).freeze_backbone();
        assert_eq!(m.parameter_count().trainable, 2_565);
    }

    #[test]
    fn resnet34_parameter_count() {
        // torchvision: resnet34() has 21,797,672 parameters.
        let m = ResNet::init(&ResNetConfig::new("resnet34", 1000), &Device::flex()).unwrap();
        assert_eq!(m.parameter_count().total, 21_797_672);
    }

    #[test]
    fn unfreezing_the_last_two_stages() {
        let m = full(5).freeze_except(&["layer3", "layer4", "fc"], true).unwrap();
        let c = m.parameter_count();
        // layer3: 2,099,712; layer4: 8,393,728; fc: 2,565 (torchvision).
        assert_eq!(c.trainable, 2_099_712 + 8_393_728 + 2_565);
        assert!(full(5).freeze_except(&["layer5"], false).unwrap_err().to_string().contains("layer5"));
    }

    #[test]
    fn forward_shapes_and_eval_batch_norm() {
        let mut c = ResNetConfig::new("resnet18", 3);
        c.model_args.channels = Some([4, 8, 8, 16]);
        c.model_args.stem_width = 4.into();
        let device = Device::flex();
        let m = ResNet::init(&c, &device).unwrap();
        let x = Tensor::<4>::random([2, 3, 37, 45], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let y = m.forward(x.clone());
        assert_eq!(y.dims(), [2, 3]);
        // Inference is per-image: running statistics, not batch statistics.
        let single = m.forward(x.narrow(0, 1, 1));
        let diff: f32 = (y.narrow(0, 1, 1) - single).abs().max().into_scalar();
        assert!(diff < 1e-5, "{diff}");
        assert!(m.check_input([1, 1, 8, 8]).is_err());
    }
}
