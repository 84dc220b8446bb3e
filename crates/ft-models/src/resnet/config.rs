//! `ResNetConfig`: the `config.json` of a timm model folder on the Hub (as
//! `timm/resnet18.tv_in1k` has it), with timm's field names and defaults.
//!
//! ```json
//! {
//!   "architecture": "resnet18",
//!   "num_classes": 1000,
//!   "num_features": 512,
//!   "global_pool": "avg",
//!   "label_names": ["tench", "goldfish", "..."],
//!   "pretrained_cfg": {
//!     "input_size": [3, 224, 224], "interpolation": "bilinear", "crop_pct": 0.875,
//!     "crop_mode": "center", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]
//!   },
//!   "model_args": {"channels": [64, 128, 256, 512], "stem_width": 64}
//! }
//! ```
//!
//! `model_args` holds keyword arguments of timm's `create_model`; ft reads `channels` and
//! `stem_width` (timm's `ResNet` arguments), which make narrower ResNets of the same structure
//! (the committed test fixtures are such). Fields ft does not use are kept in `extra` and written
//! back unchanged.

use std::path::Path;

use ft_hub::image::{ImageTransform, Interpolation};
use serde_json::{Map, Value};

use crate::config::check;
use crate::{ModelError, Result};

/// The architectures ft builds, with their BasicBlock counts per stage.
pub const ARCHITECTURES: &[(&str, [usize; 4])] = &[("resnet18", [2, 2, 2, 2]), ("resnet34", [3, 4, 6, 3])];

fn d_num_classes() -> usize {
    1000
}
fn d_global_pool() -> String {
    "avg".into()
}
fn d_input_size() -> [usize; 3] {
    [3, 224, 224]
}
fn d_interpolation() -> String {
    "bilinear".into()
}
fn d_crop_pct() -> f64 {
    0.875
}
fn d_crop_mode() -> String {
    "center".into()
}
fn d_mean() -> [f64; 3] {
    [0.485, 0.456, 0.406]
}
fn d_std() -> [f64; 3] {
    [0.229, 0.224, 0.225]
}

/// timm's `pretrained_cfg`: how inputs are prepared (its defaults are torchvision's ImageNet
/// preset, which `resnet18.tv_in1k` also states).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct PretrainedCfg {
    /// `[channels, height, width]` of the network input (the crop).
    #[serde(default = "d_input_size")]
    pub input_size: [usize; 3],
    /// Resampling filter of the resize: `bilinear` or `bicubic`.
    #[serde(default = "d_interpolation")]
    pub interpolation: String,
    /// Crop fraction: the shorter side is resized to `floor(crop / crop_pct)` before cropping.
    #[serde(default = "d_crop_pct")]
    pub crop_pct: f64,
    /// Only `center` is implemented.
    #[serde(default = "d_crop_mode")]
    pub crop_mode: String,
    /// Per-channel mean.
    #[serde(default = "d_mean")]
    pub mean: [f64; 3],
    /// Per-channel standard deviation.
    #[serde(default = "d_std")]
    pub std: [f64; 3],
    /// Other fields (`tag`, `origin_url`, `classifier`, ...), kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for PretrainedCfg {
    fn default() -> Self {
        Self {
            input_size: d_input_size(),
            interpolation: d_interpolation(),
            crop_pct: d_crop_pct(),
            crop_mode: d_crop_mode(),
            mean: d_mean(),
            std: d_std(),
            extra: Map::new(),
        }
    }
}

/// The `create_model` keyword arguments ft reads (timm `ResNet` arguments).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct ModelArgs {
    /// Output channels of the four stages; default `[64, 128, 256, 512]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<[usize; 4]>,
    /// Output channels of the 7x7 stem convolution; default 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stem_width: Option<usize>,
    /// Input channels; only 3 is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_chans: Option<usize>,
    /// Other arguments, kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A timm-layout ResNet `config.json`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct ResNetConfig {
    /// `resnet18` or `resnet34` (torchvision's BasicBlock ResNets).
    pub architecture: String,
    /// Number of classes of the `fc` head.
    #[serde(default = "d_num_classes")]
    pub num_classes: usize,
    /// Width of the pooled features (`fc`'s input); must equal the last stage's channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_features: Option<usize>,
    /// Only `avg` is implemented.
    #[serde(default = "d_global_pool")]
    pub global_pool: String,
    /// Class names by index; `LABEL_i` where absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_names: Option<Vec<String>>,
    /// Input preparation.
    #[serde(default)]
    pub pretrained_cfg: PretrainedCfg,
    /// `create_model` arguments (`channels`, `stem_width`).
    #[serde(default, skip_serializing_if = "is_default_args")]
    pub model_args: ModelArgs,
    /// Other fields, kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn is_default_args(a: &ModelArgs) -> bool {
    *a == ModelArgs::default()
}

/// The largest `pretrained_cfg.input_size` side and evaluation resize (a run file's `image_size`
/// and `resize_size` take 1 to 4096 too).
pub const MAX_IMAGE_SIDE: usize = 4096;

/// Whether a parsed `config.json` is a timm one (it has `architecture` and no `model_type`).
pub fn is_timm_config(raw: &Map<String, Value>) -> bool {
    raw.contains_key("architecture") && !raw.contains_key("model_type")
}

/// Names the field a deserialisation error comes from (serde's message alone does not): each
/// known field is deserialised on its own until one fails.
fn locate_error(raw: &Map<String, Value>, e: serde_json::Error) -> String {
    fn probe<T: serde::de::DeserializeOwned>(v: &Value) -> Option<String> {
        serde_json::from_value::<T>(v.clone()).err().map(|e| e.to_string())
    }
    type Probe = fn(&Value) -> Option<String>;
    let fields: [(&str, &str, Probe); 15] = [
        ("", "architecture", probe::<String>),
        ("", "num_classes", probe::<usize>),
        ("", "num_features", probe::<Option<usize>>),
        ("", "global_pool", probe::<String>),
        ("", "label_names", probe::<Option<Vec<String>>>),
        ("pretrained_cfg", "input_size", probe::<[usize; 3]>),
        ("pretrained_cfg", "interpolation", probe::<String>),
        ("pretrained_cfg", "crop_pct", probe::<f64>),
        ("pretrained_cfg", "crop_mode", probe::<String>),
        ("pretrained_cfg", "mean", probe::<[f64; 3]>),
        ("pretrained_cfg", "std", probe::<[f64; 3]>),
        ("model_args", "channels", probe::<Option<[usize; 4]>>),
        ("model_args", "stem_width", probe::<Option<usize>>),
        ("model_args", "in_chans", probe::<Option<usize>>),
        ("", "pretrained_cfg", probe::<PretrainedCfg>),
    ];
    for (parent, field, check) in fields {
        let value = if parent.is_empty() { raw.get(field) } else { raw.get(parent).and_then(|p| p.get(field)) };
        if let Some(message) = value.and_then(check) {
            let name = if parent.is_empty() { field.to_string() } else { format!("{parent}.{field}") };
            return format!("{name}: {message}");
        }
    }
    for parent in ["pretrained_cfg", "model_args"] {
        if raw.get(parent).is_some_and(|v| !v.is_object()) {
            return format!("{parent}: expected an object");
        }
    }
    e.to_string()
}

impl ResNetConfig {
    /// torchvision's `resnet18` (or `resnet34`) with `num_classes` classes and the ImageNet
    /// preprocessing.
    pub fn new(architecture: &str, num_classes: usize) -> Self {
        Self {
            architecture: architecture.into(),
            num_classes,
            num_features: None,
            global_pool: d_global_pool(),
            label_names: None,
            pretrained_cfg: PretrainedCfg::default(),
            model_args: ModelArgs::default(),
            extra: Map::new(),
        }
    }

    /// Reads and checks `config.json`; errors name the file and field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ModelError::Io { path: path.to_path_buf(), error: source })?;
        let raw: Map<String, Value> = crate::config::parse_json(path, &text)?;
        if !raw.contains_key("architecture") {
            return Err(ModelError::Config {
                path: path.to_path_buf(),
                message: "no 'architecture' field (not a timm config.json)".into(),
            });
        }
        let c: Self = serde_json::from_value(Value::Object(raw.clone()))
            .map_err(|e| ModelError::Config { path: path.to_path_buf(), message: locate_error(&raw, e) })?;
        c.validate(path)?;
        Ok(c)
    }

    /// Checks the fields, naming the offending one.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let names: Vec<&str> = ARCHITECTURES.iter().map(|(n, _)| *n).collect();
        check(
            path,
            self.blocks().is_some(),
            "architecture",
            format!("'{}' is not supported (supported: {})", self.architecture, names.join(", ")),
        )?;
        check(path, self.num_classes > 0, "num_classes", "must be positive")?;
        check(
            path,
            self.num_classes <= crate::config::MAX_LABELS,
            "num_classes",
            format!("{} is above the limit of {} classes", self.num_classes, crate::config::MAX_LABELS),
        )?;
        check(path, self.stem_width() > 0, "model_args.stem_width", "must be positive")?;
        check(path, self.channels().iter().all(|&c| c > 0), "model_args.channels", "must be positive")?;
        check(
            path,
            self.model_args.in_chans.unwrap_or(3) == 3,
            "model_args.in_chans",
            "only 3 input channels (RGB) are supported",
        )?;
        if let Some(n) = self.num_features {
            check(
                path,
                n == self.channels()[3],
                "num_features",
                format!("{n} differs from the last stage's {} channels", self.channels()[3]),
            )?;
        }
        check(
            path,
            self.global_pool == "avg",
            "global_pool",
            format!("'{}' is not supported (only 'avg')", self.global_pool),
        )?;
        if let Some(labels) = &self.label_names {
            check(
                path,
                labels.len() == self.num_classes,
                "label_names",
                format!("{} names for num_classes {}", labels.len(), self.num_classes),
            )?;
        }
        let p = &self.pretrained_cfg;
        check(
            path,
            p.input_size[0] == 3 && p.input_size[1] > 0 && p.input_size[1] == p.input_size[2],
            "pretrained_cfg.input_size",
            format!("{:?} (expected [3, size, size]: RGB and square)", p.input_size),
        )?;
        check(
            path,
            p.interpolation.parse::<Interpolation>().is_ok(),
            "pretrained_cfg.interpolation",
            format!("'{}' is not supported (expected {})", p.interpolation, Interpolation::NAMES),
        )?;
        check(
            path,
            p.input_size[1] <= MAX_IMAGE_SIDE,
            "pretrained_cfg.input_size",
            format!("{:?}: at most {MAX_IMAGE_SIDE} pixels a side", p.input_size),
        )?;
        check(
            path,
            p.crop_pct.is_finite() && p.crop_pct > 0.0,
            "pretrained_cfg.crop_pct",
            format!("{} is not a positive number", p.crop_pct),
        )?;
        // The evaluation resize, floor(size / crop_pct), is bounded as the crop is.
        let resize = (p.input_size[1] as f64 / p.crop_pct).floor();
        check(
            path,
            resize <= MAX_IMAGE_SIDE as f64,
            "pretrained_cfg.crop_pct",
            format!("{} makes the resize {resize} pixels, above {MAX_IMAGE_SIDE}", p.crop_pct),
        )?;
        check(
            path,
            p.crop_mode == "center",
            "pretrained_cfg.crop_mode",
            format!("'{}' is not supported (only 'center')", p.crop_mode),
        )?;
        check(
            path,
            p.std.iter().all(|s| s.is_finite() && *s > 0.0) && p.mean.iter().all(|m| m.is_finite()),
            "pretrained_cfg.std",
            format!("mean {:?} / std {:?}: std must be positive and both finite", p.mean, p.std),
        )?;
        Ok(())
    }

    /// BasicBlocks per stage, `None` for an unsupported architecture.
    pub fn blocks(&self) -> Option<[usize; 4]> {
        ARCHITECTURES.iter().find(|(n, _)| *n == self.architecture).map(|(_, b)| *b)
    }

    /// Output channels of the four stages.
    pub fn channels(&self) -> [usize; 4] {
        self.model_args.channels.unwrap_or([64, 128, 256, 512])
    }

    /// Output channels of the stem convolution.
    pub fn stem_width(&self) -> usize {
        self.model_args.stem_width.unwrap_or(64)
    }

    /// Width of the pooled features, `fc`'s input.
    pub fn feature_dim(&self) -> usize {
        self.channels()[3]
    }

    /// Class names by index (`LABEL_i` where `label_names` is absent).
    pub fn label_names(&self) -> Vec<String> {
        match &self.label_names {
            Some(names) => names.clone(),
            None => (0..self.num_classes).map(|i| format!("LABEL_{i}")).collect(),
        }
    }

    /// Sets new classes (a new head): `num_classes` and `label_names`.
    pub fn set_labels(&mut self, names: &[String]) {
        self.num_classes = names.len();
        self.label_names = Some(names.to_vec());
        self.pretrained_cfg.extra.insert("num_classes".into(), Value::from(names.len()));
    }

    /// Sets a new number of classes, keeping the names when the count is unchanged, else naming
    /// them `LABEL_i`.
    pub fn set_num_labels(&mut self, n: usize) {
        if n != self.num_classes {
            let names: Vec<String> = (0..n).map(|i| format!("LABEL_{i}")).collect();
            self.set_labels(&names);
        }
    }

    /// The evaluation transform `pretrained_cfg` describes (timm's eval transform; for the
    /// defaults, torchvision's `ResNet18_Weights.IMAGENET1K_V1.transforms()`): the shorter side
    /// resized to `floor(crop / crop_pct)`, then center-cropped to `input_size`.
    pub fn transform(&self) -> ImageTransform {
        let p = &self.pretrained_cfg;
        let [_, h, w] = p.input_size;
        // timm: `scale_size = math.floor(img_size / crop_pct)` (inputs are square, `validate`).
        let resize = (h as f64 / p.crop_pct).floor() as usize;
        ImageTransform {
            resize: resize.max(1),
            crop: [h, w],
            interpolation: p.interpolation.parse().unwrap_or(Interpolation::Bilinear),
            mean: p.mean.map(|m| m as f32),
            std: p.std.map(|s| s as f32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ResNetConfig> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, json).unwrap();
        ResNetConfig::from_file(&p)
    }

    #[test]
    fn defaults_are_torchvisions_imagenet_preset() {
        let c = parse(r#"{"architecture": "resnet18"}"#).unwrap();
        assert_eq!(c.num_classes, 1000);
        assert_eq!(c.transform(), ImageTransform::imagenet());
        assert_eq!(c.label_names()[999], "LABEL_999");
    }

    #[test]
    fn timm_hub_config_parses_and_round_trips() {
        let json = r#"{"architecture": "resnet18", "num_classes": 1000, "num_features": 512,
            "pretrained_cfg": {"tag": "tv_in1k", "custom_load": false, "input_size": [3, 224, 224],
            "fixed_input_size": false, "interpolation": "bilinear", "crop_pct": 0.875,
            "crop_mode": "center", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
            "num_classes": 1000, "pool_size": [7, 7], "first_conv": "conv1", "classifier": "fc",
            "origin_url": "https://github.com/pytorch/vision", "paper_ids": "arXiv:1512.03385"}}"#;
        let c = parse(json).unwrap();
        assert_eq!(c.transform().resize, 256);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["pretrained_cfg"]["origin_url"], "https://github.com/pytorch/vision");
        assert_eq!(back["num_features"], 512);
    }

    #[test]
    fn errors_name_the_field() {
        for (json, field) in [
            (r#"{"architecture": "resnet50"}"#, "architecture"),
            (r#"{"architecture": "resnet18", "num_classes": 0}"#, "num_classes"),
            (r#"{"architecture": "resnet18", "num_classes": 2, "label_names": ["a"]}"#, "label_names"),
            (r#"{"architecture": "resnet18", "pretrained_cfg": {"interpolation": "lanczos"}}"#, "interpolation"),
            (r#"{"architecture": "resnet18", "pretrained_cfg": {"crop_mode": "squash"}}"#, "crop_mode"),
            (r#"{"architecture": "resnet18", "pretrained_cfg": {"crop_pct": 0}}"#, "crop_pct"),
            (r#"{"architecture": "resnet18", "pretrained_cfg": {"std": [0.2, 0, 0.2]}}"#, "std"),
            (r#"{"architecture": "resnet18", "num_features": 100}"#, "num_features"),
            (r#"{"architecture": "resnet18", "model_args": {"channels": [8, 16, 32]}}"#, "channels"),
            (r#"{"architecture": "resnet18", "global_pool": "max"}"#, "global_pool"),
            (r#"{"architecture": "resnet18", "pretrained_cfg": {"input_size": [3, 224, 200]}}"#, "input_size"),
            // Bounds before anything is allocated (found by `cargo xtask fuzz`).
            (r#"{"architecture": "resnet18", "num_classes": 1000000000000}"#, "num_classes"),
            (r#"{"architecture": "resnet18", "pretrained_cfg": {"input_size": [3, 100000, 100000]}}"#, "input_size"),
            (r#"{"architecture": "resnet18", "pretrained_cfg": {"crop_pct": 1e-300}}"#, "crop_pct"),
            (r#"{"num_classes": 3}"#, "architecture"),
        ] {
            let msg = parse(json).unwrap_err().to_string();
            assert!(msg.contains(field) && msg.contains("config.json"), "{json}: {msg}");
        }
    }

    #[test]
    fn narrow_model_and_custom_crop() {
        let c = parse(
            r#"{"architecture": "resnet18", "num_classes": 3, "model_args": {"channels": [4, 8, 16, 32], "stem_width": 4},
                "pretrained_cfg": {"input_size": [3, 96, 96], "crop_pct": 0.9, "interpolation": "bicubic"}}"#,
        )
        .unwrap();
        assert_eq!(c.feature_dim(), 32);
        let t = c.transform();
        assert_eq!((t.resize, t.crop, t.interpolation), (106, [96, 96], Interpolation::Bicubic));
    }
}
