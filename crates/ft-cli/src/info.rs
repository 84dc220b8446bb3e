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
    /// A local model directory or a Hub id (`org/name[@revision]`); default with `--adapter`:
    /// the adapter's base model.
    #[arg(long)]
    model: Option<String>,
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
    /// Image models: with a frozen backbone, these stages train too (exercise 7:
    /// `--unfreeze layer3,layer4`), as `[method] unfreeze` in a run file; implies
    /// `--freeze-backbone`.
    #[arg(long, value_delimiter = ',')]
    unfreeze: Vec<String>,
    /// Device to load on.
    #[arg(long, default_value = "cpu", help = format!("Device: {DEVICE_HELP}"))]
    device: String,
    #[command(flatten)]
    adapter: crate::adapters::AdapterArgs,
}

fn list(names: &[String]) -> String {
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

pub fn run(args: &InfoArgs) -> Result<()> {
    let device = parse_device(&args.device)?;
    let specs = args.adapter.specs()?;
    let model = args.adapter.base_model(args.model.as_deref(), &specs)?;
    if is_timm_model(&model)? {
        if !specs.is_empty() {
            bail!("--adapter: PEFT adapters apply to text models");
        }
        return run_resnet(args, &model, &device);
    }
    if args.freeze_backbone || !args.unfreeze.is_empty() {
        bail!("--freeze-backbone and --unfreeze apply to image models (timm/torchvision ResNets)");
    }
    let task = match args.task.as_deref() {
        None if !specs.is_empty() && crate::adapters::AdapterArgs::task(&specs)?.is_some() => {
            crate::adapters::AdapterArgs::task(&specs)?.unwrap_or(Task::FeatureExtraction)
        }
        None => {
            let files = RepoFiles::open(&model, RepoKind::Model)?;
            ModelConfig::from_file(&files.get_required("config.json")?)?.saved_task()
        }
        Some(t) => t.parse::<Task>()?,
    };
    let num_labels = match args.num_labels {
        Some(n) => Some(n),
        None => crate::adapters::head_labels(&specs)?,
    };
    let options =
        LoadOptions { num_labels, own_head_unused: crate::adapters::brings_head(&specs), ..Default::default() };
    let loaded = load(&model, task, &options, &device).context("loading model")?;
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
    println!("parameters: {} (trainable: {})", ft_peft::thousands(count.total), ft_peft::thousands(count.trainable));
    print_load_report(&loaded.report);
    if !specs.is_empty() {
        use ft_models::auto::AnyModel;
        match loaded.model {
            AnyModel::CausalLm(m) => print_adapters(&args.adapter, m, &specs)?,
            AnyModel::SequenceClassifier(m) => print_adapters(&args.adapter, m, &specs)?,
            AnyModel::TokenClassifier(m) => print_adapters(&args.adapter, m, &specs)?,
            AnyModel::Encoder(_) => bail!("--adapter: load the model with its task (--task causal-lm, text-classification or token-classification)"),
        }
    }
    Ok(())
}

/// The adapters' configurations (and heads) and PEFT's trainable-parameter line for the
/// active one (trainable: the adapter and its own head, as the `adapters` library's
/// `train_adapter` leaves them).
fn print_adapters<M: ft_models::peft::PeftBase>(
    args: &crate::adapters::AdapterArgs,
    base: M,
    specs: &[crate::adapters::AdapterSpec],
) -> Result<()> {
    let mut model = args.attach(base, specs)?;
    for a in model.adapters() {
        let active = if model.active_name() == Some(a.name.as_str()) { ", active" } else { "" };
        let spec = specs.iter().find(|s| s.name == a.name);
        println!(
            "adapter '{}' ({}{active}) from {}",
            a.name,
            a.config.method.peft_type(),
            spec.map_or(String::new(), |s| s.dir.display().to_string())
        );
        if !a.lora_modules.is_empty() {
            println!("  LoRA on {} layers: {}", a.lora_modules.len(), a.lora_modules.join(", "));
        }
        if !a.saved_modules.is_empty() {
            println!("  trained whole (modules_to_save): {}", a.saved_modules.join(", "));
        }
        if let ft_peft::config::MethodConfig::Bottleneck(c) = &a.config.method {
            match &c.head {
                Some(h) => println!(
                    "  head: {}, {} linear layer{}, labels {:?}",
                    h.config.head_type,
                    h.config.layers,
                    if h.config.layers == 1 { "" } else { "s" },
                    h.config.labels()
                ),
                None => println!("  head: none (the base model's own)"),
            }
        }
        println!("  adapter_config.json: {}", serde_json::to_string(&a.config.to_value())?);
    }
    println!("{}", model.trainable_line()?);
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
fn run_resnet(args: &InfoArgs, model_name: &str, device: &burn::tensor::Device) -> Result<()> {
    if let Some(task) = args.task.as_deref().filter(|t| *t != "image-classification") {
        bail!("{model_name} is an image model: task '{task}' does not apply (image-classification)");
    }
    let options = LoadOptions { num_labels: args.num_labels, ..Default::default() };
    let loaded = ft_models::resnet::load(model_name, &options, device).context("loading model")?;
    let c = &loaded.config;
    let model = if !args.unfreeze.is_empty() {
        loaded.model.freeze_stages(&args.unfreeze).context("--unfreeze")?
    } else if args.freeze_backbone {
        loaded.model.freeze_backbone()
    } else {
        loaded.model
    };
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
    println!("parameters: {} (trainable: {})", ft_peft::thousands(count.total), ft_peft::thousands(count.trainable));
    print_load_report(&loaded.report);
    Ok(())
}
