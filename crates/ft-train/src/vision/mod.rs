//! Image classification training (§10 of the notebook, exercise 7): a ResNet (timm layout or
//! a torchvision `.pth`) on image folders, Parquet image columns or Hub image datasets.
//!
//! Methods, as the run file's `[method]` says:
//!
//! - `kind = "frozen"` (§10): every backbone parameter frozen and every BatchNorm layer in
//!   eval mode — it normalises with its running statistics and never updates them — and a new
//!   `fc` of `num_labels` classes trains. This is the correct way to train on a frozen
//!   backbone: in PyTorch, `requires_grad = False` alone leaves BatchNorm in training mode, so
//!   the "frozen" backbone's running statistics still drift towards the new data and its
//!   outputs depend on the batch. With `data.augment = false` (and `cache_features`, the
//!   default) the backbone runs once per image and the pooled features are reused.
//! - `unfreeze = ["layer3", "layer4"]` with `kind = "frozen"` (exercise 7): those stages train
//!   too, their BatchNorm layers in training mode, at `backbone_learning_rate` (the head at
//!   `learning_rate`, both under the same schedule); the stages before them stay frozen (and,
//!   without augmentation, their output is computed once per image).
//! - `kind = "full"`: everything trains, BatchNorm in training mode.
//!
//! The head is new unless the checkpoint's `label_names` are the data's classes in the same
//! order (continuing to train one's own classifier). `model.random_init = true` starts from
//! torchvision's random initialisation instead of the checkpoint (the baseline of a transfer
//! experiment).
//!
//! Output: timm's Hub layout ([`ft_models::resnet::ResNet::save_pretrained`]): `config.json`
//! with `label_names` and a `pretrained_cfg` describing the evaluation transform used, and
//! `model.safetensors` with torchvision's key names; plus the Trainer's result files and a
//! confusion matrix picture with the class names.

pub mod data;
pub mod task;

use std::path::Path;
use std::time::Instant;

use burn::module::{Module, ParamId};
use burn::tensor::Device;
use ft_data::augment::{Augmentation, RandomResizedCrop};
use ft_data::hub::{RepoFiles, RepoKind};
use ft_data::vision::{ImageTransform, Interpolation};
use ft_models::auto::LoadOptions;
use ft_models::naming::param_id;
use ft_models::params::{ParameterCount, param_names};
use ft_models::resnet::{ResNet, ResNetConfig};

use self::data::{ImageData, Transform};
use self::task::{ImageTask, Start};
use crate::fit::{Callbacks, FitOptions, ModelStore, fit, setup_bar};
use crate::optim::adamw_with_lr_scale;
use crate::run_config::{MethodConfig, RunConfig};
use crate::trainer::{TrainOptions, TrainOutcome, write_results};
use crate::{Result, TrainError};

/// Cached frozen-prefix outputs above this many bytes are not kept: the prefix then runs in
/// every step (`FT_FEATURE_CACHE_MB` overrides).
const CACHE_BUDGET_MB: usize = 4096;

/// Trains an image classifier as the run file says (see the module docs).
pub fn train(
    config: &RunConfig,
    options: &TrainOptions,
    callbacks: &mut dyn Callbacks,
    device: &Device,
) -> Result<TrainOutcome> {
    let args = &config.training;
    let plain = device.clone().without_autodiff();
    let ad = plain.clone().autodiff();
    ad.seed(args.seed);

    let files = RepoFiles::open(&config.model.name, RepoKind::Model)?;
    let config_path = files.get_required("config.json")?;
    let mut model_config = ResNetConfig::from_file(&config_path).map_err(|e| {
        TrainError::Config(format!(
            "model.task = \"image-classification\" needs an image model (a timm/torchvision ResNet config.json): {e}"
        ))
    })?;
    let checkpoint_labels = model_config.label_names.clone();
    let data = data::load(config, checkpoint_labels.clone())?;
    tracing::info!(
        train = data.train.len(),
        eval = data.eval.as_ref().map(|d| d.len()),
        labels = data.label_names.len(),
        "images ready"
    );
    let (train_transform, eval_transform) = transforms(config, &model_config)?;
    let pitfalls: Vec<crate::pitfalls::Pitfall> =
        data.eval.as_ref().and_then(|eval| data::leakage(&data.train, eval)).into_iter().collect();
    for p in &pitfalls {
        if options.strict {
            return Err(TrainError::Config(format!("--strict: {}", crate::pitfalls::strict_message(&p.message))));
        }
        p.log();
    }

    // The model: the checkpoint's (or random) backbone, a new head unless its classes are the data's.
    if config.model.random_init && matches!(config.method, MethodConfig::Frozen(_)) {
        tracing::warn!(
            "model.random_init with method.kind = \"frozen\": the frozen stages keep their random weights (a baseline, not \
             transfer learning)"
        );
    }
    let keep_head = checkpoint_labels.as_deref() == Some(data.label_names.as_slice()) && !config.model.random_init;
    let mut model = if config.model.random_init {
        model_config.set_labels(&data.label_names);
        tracing::info!(model = %config.model.name, "random initialisation (model.random_init): the checkpoint's weights are not read");
        ResNet::init(&model_config, &ad)?
    } else {
        let loaded = ft_models::resnet::load(&config.model.name, &LoadOptions::default(), &ad)?;
        loaded.model
    };
    if !keep_head {
        model_config.set_labels(&data.label_names);
        model = new_head(model, data.label_names.len());
        if !config.model.random_init {
            tracing::info!(
                classes = data.label_names.len(),
                "a new head fc is newly initialized: train it before using the model"
            );
        }
    }
    record_transform(&mut model_config, &eval_transform, config.data.image_mean, config.data.image_std);

    // The method: what trains, at which learning rate, and what can be computed once.
    let (model, scaled, start) = match &config.method {
        MethodConfig::Full(_) => (model, Vec::new(), Start::Images),
        MethodConfig::Frozen(f) => {
            let mut model = model.freeze_stages(&f.unfreeze)?;
            let scaled: Vec<ParamId> = param_names(&mut model)
                .into_iter()
                .filter(|(name, _)| f.unfreeze.iter().any(|s| name.starts_with(&format!("{s}."))))
                .map(|(_, id)| id)
                .collect();
            let start = frozen_prefix(&f.unfreeze);
            let cache = f.cache_features && train_transform.is_deterministic();
            (model, scaled, if cache { start } else { Start::Images })
        }
        other => {
            return Err(TrainError::Config(format!(
                "method.kind = \"{}\" does not apply to image-classification",
                other.kind()
            )));
        }
    };
    let count = ParameterCount::of(&model);
    tracing::info!(
        "trainable params: {} || all params: {} || trainable%: {:.4}",
        count.trainable,
        count.total,
        100.0 * count.trainable as f64 / count.total.max(1) as f64
    );

    let ImageData { train, eval, label_names, skipped } = data;
    let skipped_images = data::Skipped::default();
    let eval_pairs = eval.map(|e| (e, Transform::Eval(eval_transform.clone())));
    let mut task =
        ImageTask::new((train, train_transform), eval_pairs, config.data.skip_invalid, skipped_images.clone());
    let mut feature_seconds = None;
    let mut setup = 0.0;
    if start != Start::Images {
        let rows = task.len_all();
        let bytes = rows * prefix_values(&model_config, start, eval_transform.crop[0]) * 4;
        let budget = std::env::var("FT_FEATURE_CACHE_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(CACHE_BUDGET_MB);
        if bytes > budget << 20 {
            tracing::info!(
                megabytes = bytes >> 20,
                budget_megabytes = budget,
                "the frozen stages' outputs would not fit the cache budget: they run in every step (FT_FEATURE_CACHE_MB)"
            );
        } else {
            let bar = setup_bar(options.progress, rows as u64, "images");
            let frozen = model.valid();
            let (train_s, eval_s) =
                task.cache(&frozen, start, args.per_device_eval_batch_size, &mut |n| bar.inc(n as u64))?;
            bar.finish_and_clear();
            tracing::info!(?start, seconds = train_s + eval_s, "frozen stages computed once per image");
            feature_seconds = Some(train_s + eval_s);
            setup = train_s;
        }
    }

    let scale = match &config.method {
        MethodConfig::Frozen(f) => f
            .backbone_learning_rate
            .map_or(1.0, |b| if args.learning_rate > 0.0 { b / args.learning_rate } else { 0.0 }),
        _ => 1.0,
    };
    let optimizer = adamw_with_lr_scale(args, &model, &scaled, scale)?;
    let store = ResNetStore { config: &model_config, method: &config.method, device: ad.clone() };
    let fit_options = FitOptions {
        resume: options.resume,
        progress: options.progress,
        callbacks,
        optimizer,
        setup_seconds: setup,
        pitfalls,
        frozen_params: 0,
    };
    let started = Instant::now();
    let mut outcome = fit(&task, model, &store, args, fit_options, &ad)?;
    let waited = task.data_wait_seconds();
    tracing::info!(
        seconds = waited,
        share = waited / started.elapsed().as_secs_f64().max(1e-9),
        "time the loop waited for images (decoding and transforms not hidden behind the model)"
    );
    outcome.train_metrics.insert("data_wait_runtime".into(), crate::fit::round4(waited));
    store.save(&outcome.model, &args.output_dir)?;
    let skipped_total = skipped + skipped_images.lock().map_or(0, |s| s.len());
    write_results(&args.output_dir, outcome, label_names, false, skipped_total, feature_seconds)
}

/// A new `nn.Linear(features, classes)` head whose parameters carry the ids of `fc.weight` /
/// `fc.bias` (so that a checkpoint's optimizer state applies to the head read back from it).
fn new_head(model: ResNet, classes: usize) -> ResNet {
    let mut model = model.replace_head(classes);
    model.fc.weight.id = param_id("fc.weight");
    if let Some(b) = &mut model.fc.bias {
        b.id = param_id("fc.bias");
    }
    model
}

/// Where the trainable part starts for a frozen backbone with `unfreeze` stages: the output of
/// the last frozen stage before the first unfrozen one (the pooled features when none is).
fn frozen_prefix(unfreeze: &[String]) -> Start {
    if unfreeze.iter().any(|s| s == "conv1" || s == "bn1") {
        return Start::Images;
    }
    match unfreeze.iter().filter_map(|s| s.strip_prefix("layer").and_then(|n| n.parse::<usize>().ok())).min() {
        None => Start::Features,
        Some(k) => Start::Stage(k - 1),
    }
}

/// Values per image of the cached output at `start` (for the memory budget).
fn prefix_values(config: &ResNetConfig, start: Start, size: usize) -> usize {
    let ch = config.channels();
    let side = |k: usize| size.div_ceil(4).div_ceil(1 << k.saturating_sub(1));
    match start {
        Start::Images => 3 * size * size,
        Start::Stage(0) => config.stem_width() * side(0) * side(0),
        Start::Stage(k) => ch[k - 1] * side(k) * side(k),
        Start::Features => config.feature_dim(),
    }
}

/// The training and evaluation transforms of the run: the model's `pretrained_cfg` with the
/// `[data]` image keys applied.
fn transforms(config: &RunConfig, model: &ResNetConfig) -> Result<(Transform, ImageTransform)> {
    let d = &config.data;
    let mut eval = model.transform();
    if let Some(size) = d.image_size {
        eval.crop = [size, size];
        eval.resize =
            d.resize_size.unwrap_or(((size as f64) / model.pretrained_cfg.crop_pct).floor().max(1.0) as usize);
    } else if let Some(r) = d.resize_size {
        eval.resize = r;
    }
    if eval.crop[0] != eval.crop[1] {
        return Err(TrainError::Config(format!(
            "{}: pretrained_cfg.input_size {:?} is not square; set data.image_size",
            config.model.name, model.pretrained_cfg.input_size
        )));
    }
    if let Some(m) = d.image_mean {
        eval.mean = m.map(|v| v as f32);
    }
    if let Some(s) = d.image_std {
        eval.std = s.map(|v| v as f32);
    }
    let train = if d.augment.unwrap_or(true) {
        let mut crop = RandomResizedCrop::new(eval.crop[0]);
        crop.interpolation = eval.interpolation;
        if let Some(s) = d.crop_scale {
            crop.scale = s;
        }
        if let Some(r) = d.crop_ratio {
            crop.ratio = r;
        }
        Transform::Augment(Augmentation {
            crop,
            flip_probability: d.flip_probability.unwrap_or(0.5),
            normalize: eval.clone(),
            seed: config.training.seed,
        })
    } else {
        Transform::Eval(eval.clone())
    };
    Ok((train, eval))
}

/// Writes the evaluation transform into the saved `pretrained_cfg`, so that `ft predict` and
/// timm prepare images as this run evaluated them.
fn record_transform(config: &mut ResNetConfig, t: &ImageTransform, mean: Option<[f64; 3]>, std: Option<[f64; 3]>) {
    let p = &mut config.pretrained_cfg;
    // The base checkpoint's test-time sizes and Hub id describe other weights now.
    for key in ["test_input_size", "test_crop_pct", "test_crop_mode", "hf_hub_id"] {
        p.extra.remove(key);
    }
    p.input_size = [3, t.crop[0], t.crop[1]];
    if ((p.input_size[1] as f64 / p.crop_pct).floor() as usize) != t.resize {
        p.crop_pct = t.crop[0] as f64 / t.resize as f64;
    }
    if let Some(m) = mean {
        p.mean = m;
    }
    if let Some(s) = std {
        p.std = s;
    }
    p.interpolation = match t.interpolation {
        Interpolation::Bilinear => "bilinear".into(),
        Interpolation::Bicubic => "bicubic".into(),
    };
}

/// A ResNet saved in timm's layout; restored with the method's freezing.
struct ResNetStore<'a> {
    config: &'a ResNetConfig,
    method: &'a MethodConfig,
    device: Device,
}

impl ModelStore<ResNet> for ResNetStore<'_> {
    fn save(&self, model: &ResNet, dir: &Path) -> Result<()> {
        Ok(model.save_pretrained(dir, self.config)?)
    }

    fn restore(&self, _model: ResNet, dir: &Path) -> Result<ResNet> {
        let loaded = ft_models::resnet::load(&dir.to_string_lossy(), &LoadOptions::default(), &self.device)?;
        let (c, want) = (&loaded.config, self.config);
        let differs = |what: &str, got: String, expected: String| {
            TrainError::State(format!(
                "{}: this checkpoint is not of this run ({what} {got}, the run's {expected}): resume into a fresh \
                 output_dir or remove the checkpoint",
                dir.display()
            ))
        };
        if c.architecture != want.architecture || c.channels() != want.channels() || c.stem_width() != want.stem_width()
        {
            return Err(differs(
                "architecture",
                format!("{} {:?}", c.architecture, c.channels()),
                format!("{} {:?}", want.architecture, want.channels()),
            ));
        }
        if c.label_names() != want.label_names() {
            return Err(differs("classes", c.label_names().join(", "), want.label_names().join(", ")));
        }
        let model = loaded.model;
        Ok(match self.method {
            MethodConfig::Frozen(f) => model.freeze_stages(&f.unfreeze)?,
            _ => model,
        })
    }
}
