//! ResNet (torchvision's `resnet18` / `resnet34`, timm's `resnet18.tv_in1k`): the network, its
//! timm-layout configuration with the preprocessing it expects, loading from safetensors or a
//! PyTorch `.pth`, head replacement and freezing.
//!
//! ```no_run
//! use ft_models::auto::LoadOptions;
//! use ft_models::resnet;
//! # fn main() -> ft_models::Result<()> {
//! let device = ft_models::device::parse_device("cpu")?;
//! // The notebook's transfer learning: ImageNet weights, frozen, a new 5-class head.
//! let loaded = resnet::load("timm/resnet18.tv_in1k", &LoadOptions::default(), &device)?;
//! let model = loaded.model.freeze_backbone().replace_head(5);
//! assert_eq!(model.parameter_count().trainable, 2_565);
//! // Inputs prepared as torchvision's `ResNet18_Weights.IMAGENET1K_V1.transforms()`:
//! let transform = loaded.config.transform();
//! # Ok(()) }
//! ```

mod config;
mod load;
mod model;

pub use config::{ARCHITECTURES, ModelArgs, PretrainedCfg, ResNetConfig, is_timm_config};
pub use load::{LoadedResNet, PYTORCH_BIN, load, open_checkpoint};
pub use model::{BN_EPS, BN_MOMENTUM, BasicBlock, batch_norm, CHILDREN, Downsample, ParameterCount, ResNet, STAGES};
