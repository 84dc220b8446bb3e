//! `ft info`.

use anyhow::{Context, Result, bail};
use ft_data::hub::{RepoFiles, RepoKind};
use ft_models::auto::{ArchConfig, LoadOptions, ModelConfig, Task, load};
use ft_models::device::{DEVICE_HELP, parse_device};
use ft_models::params::ParameterCount;
use ft_models::weights::LoadReport;

/// Arguments of `ft info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// A local model directory or a Hub id (`org/name[@revision]`).
    #[arg(long)]
    model: String,
    /// Load with this head instead of the one the checkpoint was saved with:
    /// `feature-extraction`, `text-classification` or `token-classification`.
    #[arg(long)]
    task: Option<String>,
    /// A new number of labels for the head (re-initialises a head stored with another count).
    #[arg(long)]
    num_labels: Option<usize>,
    /// Image models: freeze everything but the classification head (the notebook's
    /// `requires_grad = False` before replacing `fc`); the trainable count shows the effect.
    #[arg(long)]
    freeze_backbone: bool,
    /// Device to load on.
    #[arg(long, default_value = "cpu", help = format!("Device: {DEVICE_HELP}"))]
    device: String,
}

fn group_thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn list(names: &[String]) -> String {
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

pub fn run(args: &InfoArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    if is_timm_model(&args.model)? {
        return run_resnet(args, &device);
    }
    if args.freeze_backbone {
        bail!("--freeze-backbone applies to image models (timm/torchvision ResNets)");
    }
    let task = match args.task.as_deref() {
        None => {
            let files = RepoFiles::open(&args.model, RepoKind::Model)?;
            ModelConfig::from_file(&files.get_required("config.json")?)?.saved_task()
        }
        Some(t) => t.parse::<Task>()?,
    };
    let options = LoadOptions { num_labels: args.num_labels, ..Default::default() };
    let loaded = load(&args.model, task, &options, &device).context("loading model")?;
    let c = &loaded.config;
    println!("model: {}", loaded.files.name());
    println!("architecture: {} (model_type {})", loaded.model.class_name(), c.model_type());
    match &c.arch {
        ArchConfig::Bert(b) => println!(
            "config: {} layers, hidden {}, {} heads, intermediate {}, vocab {}, max positions {}, type vocab {}, activation {}, layer_norm_eps {:e}",
            b.num_hidden_layers,
            b.hidden_size,
            b.num_attention_heads,
            b.intermediate_size,
            b.vocab_size,
            b.max_position_embeddings,
            b.type_vocab_size,
            b.hidden_act.name(),
            b.layer_norm_eps
        ),
        ArchConfig::DistilBert(d) => println!(
            "config: {} layers, dim {}, {} heads, hidden_dim {}, vocab {}, max positions {}{}, activation {}",
            d.n_layers,
            d.dim,
            d.n_heads,
            d.hidden_dim,
            d.vocab_size,
            d.max_position_embeddings,
            if d.sinusoidal_pos_embds { " (sinusoidal)" } else { "" },
            d.activation.name()
        ),
        ArchConfig::Gpt2(g) => println!(
            "config: {} layers, n_embd {}, {} heads, inner {}, vocab {}, n_positions {}, activation {}, \
             layer_norm_epsilon {:e}, LM head {}",
            g.n_layer,
            g.n_embd,
            g.n_head,
            g.inner_dim(),
            g.vocab_size,
            g.n_positions,
            g.activation_function.name(),
            g.layer_norm_epsilon,
            if g.tie_word_embeddings { "tied to wte" } else { "separate" }
        ),
    }
    if task != Task::FeatureExtraction && task != Task::CausalLm {
        let names = c.labels().label_names();
        println!("labels ({}): {}", names.len(), names.join(", "));
    }
    let count = ParameterCount::of(&loaded.model);
    println!("parameters: {} (trainable: {})", group_thousands(count.total), group_thousands(count.trainable));
    print_load_report(&loaded.report);
    Ok(())
}

/// Which weights were loaded, newly initialised, re-initialised or left unused.
fn print_load_report(r: &LoadReport) {
    println!("weights: {} tensors loaded from {}", r.loaded.len(), r.source.display());
    println!("newly initialized: {}", list(&r.newly_initialized));
    if !r.reinitialized_mismatched.is_empty() {
        let items: Vec<String> = r
            .reinitialized_mismatched
            .iter()
            .map(|(n, from, to)| format!("{n} (checkpoint {from:?}, model {to:?})"))
            .collect();
        println!("re-initialized (shape changed): {}", items.join(", "));
    }
    println!("unused checkpoint tensors: {}", list(&r.unexpected));
}

/// Whether the model's `config.json` is a timm one (an image model).
fn is_timm_model(model: &str) -> Result<bool> {
    let files = RepoFiles::open(model, RepoKind::Model)?;
    let path = files.get_required("config.json")?;
    let raw: serde_json::Map<String, serde_json::Value> = ft_models::config::read_json(&path)?;
    Ok(ft_models::resnet::is_timm_config(&raw))
}

/// `ft info` for a ResNet (timm layout or torchvision `.pth`).
fn run_resnet(args: &InfoArgs, device: &burn::tensor::Device) -> Result<()> {
    if let Some(task) = args.task.as_deref().filter(|t| *t != "image-classification") {
        bail!("{} is an image model: task '{task}' does not apply (image-classification)", args.model);
    }
    let options = LoadOptions { num_labels: args.num_labels, ..Default::default() };
    let loaded = ft_models::resnet::load(&args.model, &options, device).context("loading model")?;
    let c = &loaded.config;
    let model = if args.freeze_backbone { loaded.model.freeze_backbone() } else { loaded.model };
    println!("model: {}", loaded.files.name());
    println!("architecture: ResNet ({}, torchvision BasicBlocks)", c.architecture);
    let t = c.transform();
    println!(
        "config: blocks {:?}, channels {:?}, stem {}, features {}, classes {}",
        c.blocks().unwrap_or_default(),
        c.channels(),
        c.stem_width(),
        c.feature_dim(),
        c.num_classes
    );
    println!(
        "preprocessing: resize shorter side to {} ({:?}), center crop {}x{}, mean {:?}, std {:?}",
        t.resize, t.interpolation, t.crop[0], t.crop[1], t.mean, t.std
    );
    let names = c.label_names();
    println!("labels ({}): {}", names.len(), names.join(", "));
    let count = model.parameter_count();
    println!("parameters: {} (trainable: {})", group_thousands(count.total), group_thousands(count.trainable));
    print_load_report(&loaded.report);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands() {
        assert_eq!(super::group_thousands(66955010), "66,955,010");
        assert_eq!(super::group_thousands(999), "999");
    }
}
