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

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ft_hub::hub::{RepoFiles, RepoKind};

use super::config::ResNetConfig;
use super::model::ResNet;
use crate::auto::LoadOptions;
use crate::export::{HfTensors, write_atomic};
use crate::weights::{Checkpoint, InitScheme, LoadReport, NameMap, SAFETENSORS_INDEX, SAFETENSORS_SINGLE, load_parts};
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
        let entries = std::fs::read_dir(dir).map_err(|source| ModelError::Io { path: dir.clone(), error: source })?;
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

/// How the model's names map to the checkpoint's: as they are, or under `module.` for a model
/// saved from `nn.DataParallel`.
fn names(ck: &Checkpoint) -> NameMap {
    let add = if !ck.contains("conv1.weight") && ck.contains("module.conv1.weight") { "module." } else { "" };
    NameMap { strip: String::new(), add: add.into() }
}

impl ResNet {
    /// Builds the network from `ck`'s tensors (torchvision key names; see the module docs).
    /// Missing tensors are initialised as torchvision initialises them; a missing `fc` is
    /// `nn.Linear`'s default.
    pub fn from_checkpoint(ck: &mut Checkpoint, c: &ResNetConfig) -> Result<Self> {
        let mut model = Self::new(c, ck.device())?;
        load_parts(&mut model, ck, &names(ck), InitScheme::Torchvision)?;
        Ok(model)
    }
}

impl ResNet {
    /// Writes the model in timm's Hub layout: `config.json` (`config`, with `num_classes` and
    /// `label_names` of the current head) and `model.safetensors` with torchvision's key names —
    /// what [`load`] reads, `timm.create_model(..., pretrained_cfg_overlay=dict(file=...))`
    /// loads, and `torchvision.models.resnet18(num_classes=...).load_state_dict` accepts. Each
    /// file is written atomically.
    pub fn save_pretrained(&self, dir: &Path, config: &ResNetConfig) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|error| ModelError::Io { path: dir.to_path_buf(), error })?;
        let mut config = config.clone();
        if config.num_classes != self.num_classes() {
            config.set_num_labels(self.num_classes());
        }
        // `valid()` reads BatchNorm's running statistics through their synchronisation point:
        // the last training step's update is parked per thread until then.
        HfTensors::from_module(&burn::module::Module::valid(self))?.write(dir)?;
        let json = serde_json::to_vec_pretty(&config)
            .map_err(|e| ModelError::Config { path: dir.join("config.json"), message: e.to_string() })?;
        write_atomic(&dir.join("config.json"), &json)
    }
}
