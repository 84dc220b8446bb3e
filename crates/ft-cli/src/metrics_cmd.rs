//! `ft metrics NAME --input FILE.json [--set key=value ...]`: one metric, printed as one JSON object.
//! All the logic lives in `ft_metrics::evaluate`; this is the wiring.

use std::path::PathBuf;

use anyhow::Context;

/// Compute a metric (accuracy, f1, seqeval, rouge, bleu, ...) on a JSON file of predictions and
/// references, as Hugging Face evaluate does, and print it as JSON.
#[derive(clap::Args, Debug)]
pub struct MetricsArgs {
    /// The metric: accuracy, precision, recall, f1, confusion_matrix, classification_report,
    /// seqeval, rouge or bleu.
    pub metric: String,
    /// A JSON file `{"predictions": [...], "references": [...]}`, as evaluate's `compute` takes them.
    #[arg(long, value_name = "FILE.json")]
    pub input: PathBuf,
    /// A keyword argument of the metric, as evaluate names it (e.g. `average=macro`,
    /// `mode=strict`, `scheme=IOB2`, `use_stemmer=true`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Runs `ft metrics`: reads the input, computes the metric and prints the result as JSON.
pub fn run(args: &MetricsArgs) -> anyhow::Result<()> {
    let kwargs = args.set.iter().map(|s| ft_metrics::evaluate::parse_set(s)).collect::<Result<Vec<_>, _>>()?;
    let text =
        std::fs::read_to_string(&args.input).with_context(|| format!("could not read {}", args.input.display()))?;
    let input =
        ft_metrics::evaluate::parse_input(&text).with_context(|| format!("could not read {}", args.input.display()))?;
    let result = ft_metrics::evaluate::compute(&args.metric, &input, &kwargs)
        .with_context(|| format!("metric `{}` on {}", args.metric, args.input.display()))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}
