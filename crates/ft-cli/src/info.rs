//! `ft info`.

use anyhow::{Context, Result, bail};
use burn::module::Module;
use ft_data::hub::{RepoFiles, RepoKind};
use ft_models::auto::{ArchConfig, LoadOptions, ModelConfig, Task, load};
use ft_models::device::{DEVICE_HELP, parse_device};

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
    let task = match args.task.as_deref() {
        None => {
            let files = RepoFiles::open(&args.model, RepoKind::Model)?;
            ModelConfig::from_file(&files.get_required("config.json")?)?.saved_task()
        }
        Some("feature-extraction") => Task::FeatureExtraction,
        Some("text-classification") => Task::SequenceClassification,
        Some("token-classification") => Task::TokenClassification,
        Some(other) => bail!("unknown task '{other}' (feature-extraction, text-classification, token-classification)"),
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
    }
    if task != Task::FeatureExtraction {
        let names = c.labels().label_names();
        println!("labels ({}): {}", names.len(), names.join(", "));
    }
    let params = loaded.model.num_params();
    println!("parameters: {} (trainable: {})", group_thousands(params), group_thousands(params));
    let r = &loaded.report;
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
