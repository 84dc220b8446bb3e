//! `ft generate`.

use anyhow::{Context, Result, bail};
use ft_models::auto::{LoadOptions, Task, load};
use ft_models::device::{DEVICE_HELP, parse_device};
use ft_models::generation::GenerationConfig;
use ft_serve::ServeError;
use ft_serve::pipeline::{PipelineOptions, TextGenerationPipeline};

/// Arguments of `ft generate`.
///
/// Defaults come from the model's `generation_config.json` when it has one, else transformers'
/// defaults (greedy, 20 new tokens capped at `n_positions`, top-k 50 when sampling).
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// A local model directory or a Hub id (`org/name[@revision]`) of a causal language model
    /// (GPT-2); default with `--adapter`: the adapter's base model.
    #[arg(long)]
    model: Option<String>,
    #[command(flatten)]
    adapter: crate::adapters::AdapterArgs,
    /// The prompt. Repeat the option for several prompts: they run as one left-padded batch.
    /// Prompts are not truncated: one of n_positions tokens or more leaves no room to generate
    /// and is an error (transformers raises one too).
    #[arg(long, required = true)]
    prompt: Vec<String>,
    /// New tokens to generate at most (default 20, capped at the model's n_positions).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Sample instead of greedy decoding.
    #[arg(long)]
    do_sample: bool,
    /// Sampling temperature, > 0 (default 1).
    #[arg(long, allow_negative_numbers = true)]
    temperature: Option<f64>,
    /// Sample from the k most likely tokens (default 50); 0 disables top-k, as in transformers.
    #[arg(long)]
    top_k: Option<usize>,
    /// Sample from the smallest set of tokens whose probability reaches p, in (0, 1] (default 1).
    #[arg(long, allow_negative_numbers = true)]
    top_p: Option<f64>,
    /// Penalty on tokens already in the prompt or the output, > 0 (1 = none; also applies to
    /// greedy decoding, as in transformers).
    #[arg(long, allow_negative_numbers = true)]
    repetition_penalty: Option<f64>,
    /// Seed of ft's sampler (NumPy's PCG64): the same seed gives the same text; the tokens
    /// differ from what torch.manual_seed gives in Python. Default: from the clock.
    #[arg(long)]
    seed: Option<u64>,
    /// Sequences per prompt (needs --do-sample).
    #[arg(long)]
    num_return_sequences: Option<usize>,
    /// Recompute the whole sequence at every step instead of keeping keys and values (same
    /// tokens, slower).
    #[arg(long)]
    no_cache: bool,
    /// One JSON line per sequence: {"prompt_ids": [..], "token_ids": [..new tokens only..],
    /// "text": "..the new tokens decoded.."}.
    #[arg(long)]
    json: bool,
    /// Device to run on.
    #[arg(long, default_value = "cpu", help = format!("Device: {DEVICE_HELP}"))]
    device: String,
}

impl GenerateArgs {
    /// The settings given on the command line, checked (every bad value is an error, whether or
    /// not sampling is on).
    fn overrides(&self) -> Result<GenerationConfig> {
        if self.max_new_tokens == Some(0) {
            bail!("--max-new-tokens must be at least 1");
        }
        if let Some(t) = self.temperature
            && !(t > 0.0 && t.is_finite())
        {
            bail!("--temperature must be a positive number, got {t} (for greedy decoding, leave out --do-sample)");
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            bail!("--top-p must be in (0, 1], got {p}");
        }
        if let Some(r) = self.repetition_penalty
            && !(r > 0.0 && r.is_finite())
        {
            bail!("--repetition-penalty must be a positive number, got {r}");
        }
        if self.num_return_sequences == Some(0) {
            bail!("--num-return-sequences must be at least 1");
        }
        Ok(GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            do_sample: self.do_sample.then_some(true),
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            num_return_sequences: self.num_return_sequences,
            use_cache: self.no_cache.then_some(false),
            ..Default::default()
        })
    }
}

pub fn run(args: &GenerateArgs) -> Result<()> {
    let overrides = args.overrides()?;
    let device = parse_device(&args.device)?;
    let specs = args.adapter.specs()?;
    let model = args.adapter.base_model(args.model.as_deref(), &specs)?;
    let loaded = load(&model, Task::CausalLm, &LoadOptions::default(), &device).context("loading model")?;
    if !loaded.report.newly_initialized.is_empty() {
        eprintln!("warning: {model} has no trained weights for {:?}: its text is random", loaded.report.newly_initialized);
    }
    let loaded = crate::adapters::with_adapters(&args.adapter, loaded.into_causal_lm()?, &specs)?;
    let options = PipelineOptions { batch_size: args.prompt.len().max(1), max_length: None, ..Default::default() };
    let pipe = TextGenerationPipeline::with_adapters(loaded, &options, &device)?;
    let sampling = overrides.do_sample.or(pipe.generation_config().do_sample).unwrap_or(false);
    if !sampling {
        let ignored: Vec<&str> = [
            ("--temperature", args.temperature.is_some()),
            ("--top-k", args.top_k.is_some()),
            ("--top-p", args.top_p.is_some()),
            ("--seed", args.seed.is_some()),
        ]
        .iter()
        .filter(|(_, given)| *given)
        .map(|(name, _)| *name)
        .collect();
        if !ignored.is_empty() {
            eprintln!("warning: {} only apply to sampling: ignored without --do-sample", ignored.join(", "));
        }
    }
    let seed = match args.seed {
        Some(s) => Some(s),
        None if sampling => {
            let s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            eprintln!("sampling with seed {s} (pass --seed {s} to get the same text again)");
            Some(s)
        }
        None => None,
    };
    let prompts: Vec<&str> = args.prompt.iter().map(String::as_str).collect();
    let results = pipe.generate(&prompts, &overrides, seed).map_err(|e| match e {
        ServeError::Input { index, message } if prompts.len() > 1 => anyhow::anyhow!("prompt {}: {message}", index + 1),
        ServeError::Input { message, .. } => anyhow::anyhow!("{message}"),
        other => other.into(),
    })?;
    let mut previous: Option<usize> = None;
    for r in &results {
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            if previous.is_some() {
                println!("---");
            }
            println!("{}{}", prompts[r.prompt_index], r.text);
        }
        previous = Some(r.prompt_index);
    }
    Ok(())
}
