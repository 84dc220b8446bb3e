//! Building a ResNet from torchvision's state_dict, stored as `model.safetensors` (timm's Hub
//! layout, e.g. `timm/resnet18.tv_in1k`) or as a PyTorch `.pth` / `pytorch_model.bin`.
//!
//! | torchvision key | ft field |
//! |---|---|
//! | `conv1.weight` `[stem, 3, 7, 7]` | `conv1.weight` (same layout) |
//! | `bn1.{weight,bias,running_mean,running_var}` | `bn1.{gamma,beta,running_mean,running_var}` |
//! | `layerS.B.conv{1,2}.weight` | `layerS[B].conv{1,2}.weight` |
//! | `layerS.B.bn{1,2}.*` | `layerS[B].bn{1,2}.*` |
//! | `layerS.B.downsample.0.weight` | `layerS[B].downsample.conv.weight` |
//! | `layerS.B.downsample.1.*` | `layerS[B].downsample.bn.*` |
//! | `fc.weight` `[classes, features]`, `fc.bias` | `fc.weight` (transposed to `[features, classes]`), `fc.bias` |
//! | `*.num_batches_tracked` | not a weight: ignored (only BatchNorm's momentum-less mode reads it) |
//!
//! A checkpoint saved from a model wrapped as `nn.DataParallel` (`module.` prefix) is accepted
//! too. Missing tensors are initialised as torchvision initialises them and reported; an `fc`
//! stored with another number of classes is re-initialised when a new `num_classes` was asked
//! for (and reported), otherwise a shape mismatch is an error naming the tensors.

use std::path::PathBuf;

use burn::nn::LinearConfig;
use burn::tensor::Device;
use ft_data::hub::{RepoFiles, RepoKind};

use super::config::ResNetConfig;
use super::model::{BasicBlock, Downsample, ResNet, avgpool, batch_norm, conv, maxpool};
use crate::auto::LoadOptions;
use crate::layers::linear;
use crate::weights::{Checkpoint, Init, LoadReport, SAFETENSORS_INDEX, SAFETENSORS_SINGLE};
use crate::{ModelError, Result};

/// A loaded ResNet with its configuration and what loading did.
#[derive(Debug)]
pub struct LoadedResNet {
    /// The model.
    pub model: ResNet,
    /// Its configuration (with any new classes applied).
    pub config: ResNetConfig,
    /// Loaded, newly initialised and unused tensors.
    pub report: LoadReport,
    /// The repository the model came from.
    pub files: RepoFiles,
}

/// Name of a PyTorch state_dict in a Hub repository (transformers' and timm's older uploads).
pub const PYTORCH_BIN: &str = "pytorch_model.bin";

/// Opens the weights of a ResNet folder: `model.safetensors` (or a sharded index), else
/// `pytorch_model.bin`, else the one `.pth` / `.pt` file of a local directory.
pub fn open_checkpoint(files: &RepoFiles, device: &Device) -> Result<Checkpoint> {
    if files.get_optional(SAFETENSORS_SINGLE)?.is_some() || files.get_optional(SAFETENSORS_INDEX)?.is_some() {
        return Checkpoint::open(files, device);
    }
    if let Some(bin) = files.get_optional(PYTORCH_BIN)? {
        return Checkpoint::from_pytorch(&bin, device);
    }
    if let RepoFiles::Local(dir) = files {
        let entries = std::fs::read_dir(dir).map_err(|source| ModelError::Io { path: dir.clone(), source })?;
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "pth" || e == "pt"))
            .collect();
        found.sort();
        match found.as_slice() {
            [one] => return Checkpoint::from_pytorch(one, device),
            [] => {}
            many => {
                let names: Vec<String> = many.iter().map(|p| p.display().to_string()).collect();
                return Err(ModelError::Weights {
                    path: dir.clone(),
                    message: format!("several PyTorch files, which one holds the weights? {}", names.join(", ")),
                });
            }
        }
    }
    Err(ModelError::Weights {
        path: PathBuf::from(files.name()),
        message: format!("no {SAFETENSORS_SINGLE}, {SAFETENSORS_INDEX}, {PYTORCH_BIN} or .pth file"),
    })
}

/// Loads a ResNet from a local directory or Hub id (`org/name[@revision]`): its timm
/// `config.json` and its weights ([`open_checkpoint`]). `options` may give new classes (as
/// timm's `create_model(..., num_classes=N)` or `model.reset_classifier(N)`): the head is then
/// re-initialised and reported.
pub fn load(model: &str, options: &LoadOptions, device: &Device) -> Result<LoadedResNet> {
    let files = RepoFiles::open(model, RepoKind::Model)?;
    let config_path = files.get_required("config.json")?;
    let mut config = ResNetConfig::from_file(&config_path)?;
    let stored_classes = config.num_classes;
    if let Some(names) = &options.labels {
        if names.is_empty() {
            return Err(ModelError::Input("new labels: at least one label is needed".into()));
        }
        config.set_labels(names);
    } else if let Some(n) = options.num_labels {
        if n == 0 {
            return Err(ModelError::Input("num_labels must be at least 1".into()));
        }
        config.set_num_labels(n);
    }
    let mut ck = open_checkpoint(&files, device)?;
    if config.num_classes != stored_classes {
        ck.allow_reinit("fc.weight");
        ck.allow_reinit("fc.bias");
    }
    let model = ResNet::from_checkpoint(&mut ck, &config)?;
    let report = ck.finish()?;
    if !report.is_complete() {
        tracing::warn!(
            model = %files.name(),
            new = ?report.newly_initialized,
            reinitialized = ?report.reinitialized_mismatched,
            "some weights were not in the checkpoint and are newly initialized: train the model before using it"
        );
    }
    Ok(LoadedResNet { model, config, report, files })
}

/// The key prefix of the checkpoint's tensors: `""`, or `"module."` for a model saved from
/// `nn.DataParallel`.
fn prefix(ck: &Checkpoint) -> &'static str {
    if !ck.contains("conv1.weight") && ck.contains("module.conv1.weight") { "module." } else { "" }
}

fn conv_weight(ck: &mut Checkpoint, name: &str, c_in: usize, c_out: usize, k: usize) -> Result<burn::tensor::Tensor<4>> {
    // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu").
    ck.set_init_std((2.0 / (c_out * k * k) as f64).sqrt());
    ck.tensor(&format!("{name}.weight"), [c_out, c_in, k, k], Init::Normal)
}

fn bn(ck: &mut Checkpoint, name: &str, c: usize) -> Result<burn::nn::BatchNorm> {
    Ok(batch_norm(
        ck.tensor(&format!("{name}.weight"), [c], Init::Ones)?,
        ck.tensor(&format!("{name}.bias"), [c], Init::Zeros)?,
        ck.tensor(&format!("{name}.running_mean"), [c], Init::Zeros)?,
        ck.tensor(&format!("{name}.running_var"), [c], Init::Ones)?,
    ))
}

impl ResNet {
    /// Builds the network from `ck`'s tensors (torchvision key names; see the module docs).
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &ResNetConfig) -> Result<Self> {
        let blocks = c.blocks().ok_or_else(|| {
            ModelError::Unsupported(format!("architecture '{}' is not supported", c.architecture))
        })?;
        let p = prefix(ck);
        let stem = c.stem_width();
        let conv1 = conv(conv_weight(ck, &format!("{p}conv1"), 3, stem, 7)?, 2, 3);
        let bn1 = bn(ck, &format!("{p}bn1"), stem)?;
        let mut c_in = stem;
        let mut stages: Vec<Vec<BasicBlock>> = Vec::with_capacity(4);
        for (s, (&n, &width)) in blocks.iter().zip(c.channels().iter()).enumerate() {
            let mut stage = Vec::with_capacity(n);
            for b in 0..n {
                let name = format!("{p}layer{}.{b}", s + 1);
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let downsample = if b == 0 && (stride != 1 || c_in != width) {
                    Some(Downsample {
                        conv: conv(conv_weight(ck, &format!("{name}.downsample.0"), c_in, width, 1)?, stride, 0),
                        bn: bn(ck, &format!("{name}.downsample.1"), width)?,
                    })
                } else {
                    None
                };
                stage.push(BasicBlock {
                    conv1: conv(conv_weight(ck, &format!("{name}.conv1"), c_in, width, 3)?, stride, 1),
                    bn1: bn(ck, &format!("{name}.bn1"), width)?,
                    conv2: conv(conv_weight(ck, &format!("{name}.conv2"), width, width, 3)?, 1, 1),
                    bn2: bn(ck, &format!("{name}.bn2"), width)?,
                    downsample,
                });
                c_in = width;
            }
            stages.push(stage);
        }
        let features = c.feature_dim();
        let fc_shape = [c.num_classes, features];
        let fc_stored = ck.shape_of(&format!("{p}fc.weight")).as_deref() == Some(&fc_shape[..])
            && ck.shape_of(&format!("{p}fc.bias")).as_deref() == Some(&[c.num_classes][..]);
        let mut fc = linear(ck, &format!("{p}fc"), features, c.num_classes)?;
        if !fc_stored {
            // A new head, initialised as `nn.Linear` is (the report already lists it).
            fc = LinearConfig::new(features, c.num_classes).init(ck.device());
        }
        let mut stages = stages.into_iter();
        let mut next = || stages.next().unwrap_or_default();
        Ok(Self {
            conv1,
            bn1,
            maxpool: maxpool(),
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
            avgpool: avgpool(),
            fc,
        })
    }
}
