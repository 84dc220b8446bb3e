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
//! statistics (updating the running ones) when training on an autodiff device, unless the layer
//! is frozen ([`crate::params::set_trainable`] with `freeze_statistics`: eval mode). The running
//! variance is updated with the *unbiased* batch variance, as `nn.BatchNorm2d` does (Burn's own
//! `BatchNorm` uses the biased one): [`batch_norm`].
//!
//! Field names follow torchvision's state_dict keys (`conv1`, `bn1`, `layer1.0.conv1`, ...);
//! `downsample.0` / `downsample.1` are [`Downsample::conv`] / [`Downsample::bn`]. Each struct's
//! [`HubModule`] impl lists the names once, for loading, saving and freezing by name.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use ft_hub::ops::conv::forward as conv2d;

use super::config::ResNetConfig;
use crate::naming::{HubModule, HubPath, Part};
pub use crate::params::ParameterCount;
use crate::{ModelError, Result};

/// BatchNorm epsilon of torchvision's and timm's ResNets.
pub const BN_EPS: f64 = 1e-5;
/// BatchNorm momentum of torchvision's and timm's ResNets.
pub const BN_MOMENTUM: f64 = 0.1;

/// A lazily initialised bias-free square convolution (its weight comes from the checkpoint).
fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, padding: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_bias(false)
        .init(device)
}

/// A BatchNorm with torchvision's epsilon and momentum (its tensors come from the checkpoint).
fn new_batch_norm(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).with_epsilon(BN_EPS).with_momentum(BN_MOMENTUM).init(device)
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

/// `bn(x)` as PyTorch's `nn.BatchNorm2d` computes it: in training (autodiff device, layer not
/// frozen) the batch statistics normalise, and the running statistics move by `momentum`
/// towards the batch mean and the **unbiased** batch variance (`var · n / (n − 1)`, `n` =
/// values per channel); otherwise the running statistics normalise. One fused pass on the CPU
/// ([`ft_hub::ops::batch_norm`]).
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`; output the same
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    normalize(bn, x, false)
}

/// `relu(bn(x))` ([`batch_norm`]), the ReLU fused into the same pass and backward step.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`; output the same
pub fn batch_norm_relu(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    normalize(bn, x, true)
}

fn normalize(bn: &BatchNorm, x: Tensor<4>, relu: bool) -> Tensor<4> {
    let device = x.device();
    if !(device.is_autodiff() && bn.training.is_enabled()) {
        let mean = bn.running_mean.value().to_device(&device);
        let var = bn.running_var.value().to_device(&device);
        return ft_hub::ops::batch_norm::eval(x, bn.gamma.val(), bn.beta.val(), mean, var, bn.epsilon, relu);
    }
    let [b, _, h, w] = x.dims();
    let n = b * h * w;
    let result = ft_hub::ops::batch_norm::train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon, relu);
    let unbiased = if n > 1 { n as f64 / (n - 1) as f64 } else { 1.0 };
    let m = bn.momentum;
    let mean = bn.running_mean.value_sync().to_device(&device) * (1.0 - m) + result.mean.detach() * m;
    let var = bn.running_var.value_sync().to_device(&device) * (1.0 - m) + result.variance.detach() * (m * unbiased);
    bn.running_mean.update(mean.detach());
    bn.running_var.update(var.detach());
    result.output
}

impl HubModule for Downsample {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp(0), Part::Conv2d(&mut self.conv));
        f(&path.pp(1), Part::BatchNorm(&mut self.bn));
    }
}

impl HubModule for BasicBlock {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("conv1"), Part::Conv2d(&mut self.conv1));
        f(&path.pp("bn1"), Part::BatchNorm(&mut self.bn1));
        f(&path.pp("conv2"), Part::Conv2d(&mut self.conv2));
        f(&path.pp("bn2"), Part::BatchNorm(&mut self.bn2));
        self.downsample.parts(&path.pp("downsample"), f);
    }
}

impl BasicBlock {
    /// # Shapes
    /// - `x`: `[batch, in, h, w]`; output `[batch, out, h / stride, w / stride]` (rounded up)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => batch_norm(&d.bn, conv2d(&d.conv, x.clone())),
            None => x.clone(),
        };
        let out = batch_norm_relu(&self.bn1, conv2d(&self.conv1, x));
        let out = batch_norm(&self.bn2, conv2d(&self.conv2, out));
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

/// The backbone stages [`ResNet::freeze_stages`] may leave trainable: every child but `fc`,
/// which always trains.
pub const STAGES: [&str; 6] = ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4"];

impl HubModule for ResNet {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("conv1"), Part::Conv2d(&mut self.conv1));
        f(&path.pp("bn1"), Part::BatchNorm(&mut self.bn1));
        self.layer1.parts(&path.pp("layer1"), f);
        self.layer2.parts(&path.pp("layer2"), f);
        self.layer3.parts(&path.pp("layer3"), f);
        self.layer4.parts(&path.pp("layer4"), f);
        f(&path.pp("fc"), Part::Linear(&mut self.fc));
    }
}

impl ResNet {
    /// The network's skeleton for `config` (lazily initialised; see
    /// [`crate::weights::load_parts`]).
    pub fn new(c: &ResNetConfig, device: &Device) -> Result<Self> {
        let blocks = c
            .blocks()
            .ok_or_else(|| ModelError::Unsupported(format!("architecture '{}' is not supported", c.architecture)))?;
        let stem = c.stem_width();
        let mut c_in = stem;
        let mut stages: Vec<Vec<BasicBlock>> = Vec::with_capacity(4);
        for (s, (&n, &width)) in blocks.iter().zip(c.channels().iter()).enumerate() {
            let mut stage = Vec::with_capacity(n);
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let downsample = (b == 0 && (stride != 1 || c_in != width)).then(|| Downsample {
                    conv: conv(c_in, width, 1, stride, 0, device),
                    bn: new_batch_norm(width, device),
                });
                stage.push(BasicBlock {
                    conv1: conv(c_in, width, 3, stride, 1, device),
                    bn1: new_batch_norm(width, device),
                    conv2: conv(width, width, 3, 1, 1, device),
                    bn2: new_batch_norm(width, device),
                    downsample,
                });
                c_in = width;
            }
            stages.push(stage);
        }
        let mut stages = stages.into_iter();
        let mut next = || stages.next().unwrap_or_default();
        Ok(Self {
            conv1: conv(3, stem, 7, 2, 3, device),
            bn1: new_batch_norm(stem, device),
            maxpool: maxpool(),
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
            avgpool: avgpool(),
            fc: LinearConfig::new(c.feature_dim(), c.num_classes).init(device),
        })
    }

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
        ft_hub::ops::linear::forward(&self.fc, self.forward_features(images))
    }

    /// The pooled features `fc` reads.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, height, width]`; output `[batch, features]`
    pub fn forward_features(&self, images: Tensor<4>) -> Tensor<2> {
        let _span = tracing::trace_span!("resnet", dims = ?images.dims()).entered();
        self.pool(self.forward_stages(images, 0, 4))
    }

    /// The stem: `maxpool(relu(bn1(conv1(images))))`.
    ///
    /// # Shapes
    /// - `images`: `[batch, 3, h, w]`; output `[batch, stem, ⌈h/4⌉, ⌈w/4⌉]` (about)
    pub fn stem(&self, images: Tensor<4>) -> Tensor<4> {
        ft_hub::ops::pool::max_pool2d(&self.maxpool, batch_norm_relu(&self.bn1, conv2d(&self.conv1, images)))
    }

    /// The blocks of stage `s` (1 to 4; empty otherwise).
    pub fn stage(&self, s: usize) -> &[BasicBlock] {
        match s {
            1 => &self.layer1,
            2 => &self.layer2,
            3 => &self.layer3,
            4 => &self.layer4,
            _ => &[],
        }
    }

    /// Stages `first` to `last` of the network (inclusive; stage 0 is the stem, 1-4 are
    /// `layer1`-`layer4`), to run a frozen prefix once and the rest in every step:
    /// `forward_stages(x, 0, 4)` is the whole network before pooling.
    ///
    /// # Shapes
    /// - `x`: the images when `first` is 0, else stage `first - 1`'s output; output stage
    ///   `last`'s output
    pub fn forward_stages(&self, x: Tensor<4>, first: usize, last: usize) -> Tensor<4> {
        let mut x = if first == 0 { self.stem(x) } else { x };
        for s in first.max(1)..=last {
            for block in self.stage(s) {
                x = block.forward(x);
            }
        }
        x
    }

    /// Global average pooling.
    ///
    /// # Shapes
    /// - `x`: `[batch, features, h, w]`; output `[batch, features]`
    pub fn pool(&self, x: Tensor<4>) -> Tensor<2> {
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
        crate::params::set_trainable(self, &|name| name.starts_with("fc."), false)
    }

    /// Freezes every top-level child ([`CHILDREN`]) except those named, e.g.
    /// `["layer3", "layer4", "fc"]` to fine-tune the last two stages (the notebook's exercise).
    /// Children named are made trainable. With `freeze_statistics`, frozen BatchNorm layers also
    /// stop using and updating batch statistics in training (Burn's `freeze`), and the trainable
    /// ones train theirs.
    pub fn freeze_except(self, trainable: &[&str], freeze_statistics: bool) -> Result<Self> {
        if let Some(bad) = trainable.iter().find(|n| !CHILDREN.contains(n)) {
            return Err(ModelError::Input(format!("no child '{bad}' in ResNet (children: {})", CHILDREN.join(", "))));
        }
        let trainable =
            |name: &str| trainable.iter().any(|c| name.strip_prefix(c).is_some_and(|rest| rest.starts_with('.')));
        Ok(crate::params::set_trainable(self, &trainable, freeze_statistics))
    }

    /// A frozen backbone for transfer learning: `fc` and the stages `unfreeze` names (from
    /// [`STAGES`]; exercise 7's `["layer3", "layer4"]`) train, with their BatchNorm layers in
    /// training mode; every other stage is frozen with its BatchNorm layers in eval mode (running
    /// statistics used, never updated) — the correct way to freeze a backbone, unlike
    /// [`freeze_backbone`](Self::freeze_backbone), which only stops gradients as PyTorch's
    /// `requires_grad = False` does. An unknown stage is an error listing [`STAGES`].
    pub fn freeze_stages<S: AsRef<str>>(self, unfreeze: &[S]) -> Result<Self> {
        if let Some(bad) = unfreeze.iter().map(AsRef::as_ref).find(|s| !STAGES.contains(s)) {
            return Err(ModelError::Input(format!(
                "no stage '{bad}' in a ResNet (stages: {}; fc always trains)",
                STAGES.join(", ")
            )));
        }
        let mut trainable: Vec<&str> = unfreeze.iter().map(AsRef::as_ref).collect();
        trainable.push("fc");
        self.freeze_except(&trainable, true)
    }

    /// PyTorch's total and trainable parameter counts.
    pub fn parameter_count(&self) -> ParameterCount {
        ParameterCount::of(self)
    }
}

/// The stem and pooling layers that hold no weights.
fn maxpool() -> MaxPool2d {
    MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init()
}

/// Global average pooling to 1x1.
fn avgpool() -> AdaptiveAvgPool2d {
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
