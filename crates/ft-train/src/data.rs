//! Preparing a run's data: load the splits, subsample them as the notebook does, tokenize them
//! with the model's tokenizer (aligning NER labels), and read the label names.

use ft_data::align::{TokenizeOptions, Tokenized, tokenize_and_align_labels, tokenize_text_classification};
use ft_data::dataset::Dataset;
use ft_data::hub::RepoFiles;
use ft_data::source::{DatasetSource, LoadOptions, OnInvalid};
use ft_data::tokenize::TextTokenizer;

use crate::run_config::RunConfig;
use crate::{Result, TrainError};

/// The tokenized splits of a run.
#[derive(Debug, Clone)]
pub struct PreparedData {
    /// Training rows: `input_ids`, `attention_mask`, `token_type_ids`, `labels`.
    pub train: Dataset,
    /// Evaluation rows, when there is an evaluation split.
    pub eval: Option<Dataset>,
    /// Label names by id.
    pub label_names: Vec<String>,
    /// The model's tokenizer, truncating at the run's `max_length`.
    pub tokenizer: TextTokenizer,
    /// Rows skipped as invalid (with `skip_invalid`).
    pub skipped: usize,
    /// Evaluation rows whose text is also a training row's (§14's label leakage).
    pub leakage: Option<crate::pitfalls::Pitfall>,
}

/// Loads, subsamples and tokenizes the run's splits. `checkpoint_labels` are the label names
/// of the checkpoint's own head (its `config.json` `id2label`), used when neither the data nor
/// the run file names the labels — as `from_pretrained` keeps a head's labels. The tokenizer must
/// fit the model ([`crate::pitfalls::check_tokenizer`]).
pub fn prepare(
    config: &RunConfig,
    model_files: &RepoFiles,
    model_max_positions: usize,
    model_config: &ft_models::auto::ModelConfig,
    checkpoint_labels: Option<Vec<String>>,
) -> Result<PreparedData> {
    let d = &config.data;
    let on_invalid = if d.skip_invalid { OnInvalid::Skip } else { OnInvalid::Error };
    let options =
        LoadOptions { on_invalid, config: d.config.clone(), local_data: d.local_data.clone(), ..Default::default() };
    let source = DatasetSource::open(&d.source, options)?;
    let mut skipped = 0;
    let mut split = |name: &str, skip: usize, select: Option<usize>| -> Result<Dataset> {
        let loaded = source.load(Some(name))?;
        skipped += loaded.skipped.len();
        subsample(loaded.dataset, name, d.shuffle_seed, skip, select)
    };
    let train = split(&d.train_split, 0, d.train_select)?;
    let eval = match &d.eval_split {
        Some(name) => Some(split(name, d.eval_skip, d.eval_select)?),
        None => None,
    };
    let label_column = config.label_column();
    let causal = config.model.task == ft_models::auto::Task::CausalLm;
    let label_names = if causal { Vec::new() } else { label_names(config, &train, &label_column, checkpoint_labels)? };
    let tokenizer = TextTokenizer::from_repo(model_files)?;
    crate::pitfalls::check_tokenizer(&tokenizer, model_config, &config.model.name)?;
    let leakage = eval.as_ref().and_then(|eval| leakage(&train, eval, &config.text_column()));
    let mut data = tokenize_splits(config, tokenizer, model_max_positions, train, eval, label_names, skipped)?;
    data.leakage = leakage;
    Ok(data)
}

/// Evaluation rows whose text (a string, or a token list joined by spaces; whitespace and case
/// ignored) is also a training row's. Nothing when the text column is missing (tokenization
/// reports that).
fn leakage(train: &Dataset, eval: &Dataset, text_column: &str) -> Option<crate::pitfalls::Pitfall> {
    use crate::pitfalls::{cell_text, find_leakage, quote, text_key};
    let texts = |ds: &Dataset| -> Option<Vec<String>> {
        let column = ds.column(text_column).ok()?;
        Some((0..ds.len()).map(|i| cell_text(&column.value(i))).collect())
    };
    let (train_texts, eval_texts) = (texts(train)?, texts(eval)?);
    let keys = |t: &[String]| t.iter().map(|s| text_key(s)).collect::<Vec<_>>();
    find_leakage(&keys(&train_texts), &keys(&eval_texts), "texts", |i| {
        format!("{} ({})", quote(&eval_texts[i], 60), eval.origin(i))
    })
}

/// `shuffle(seed)`, then skip `skip` rows, then keep `select` (the notebook's subsampling);
/// `name` is the split's, for errors.
pub(crate) fn subsample(
    mut ds: Dataset,
    name: &str,
    seed: Option<u64>,
    skip: usize,
    select: Option<usize>,
) -> Result<Dataset> {
    if let Some(seed) = seed {
        ds = ds.shuffle(seed);
    }
    if skip > 0 {
        ds = ds.slice(skip.min(ds.len()), ds.len());
    }
    if let Some(n) = select {
        if n > ds.len() {
            return Err(TrainError::Config(format!(
                "data: split '{name}' has {} rows (after skipping {skip}); cannot select {n}",
                ds.len()
            )));
        }
        ds = ds.take(n);
    }
    Ok(ds)
}

/// The run's label names: the data's (ClassLabel), else `model.num_labels` (with the
/// checkpoint's names when their number agrees), else the checkpoint's.
pub(crate) fn label_names(
    config: &RunConfig,
    train: &Dataset,
    label_column: &str,
    checkpoint_labels: Option<Vec<String>>,
) -> Result<Vec<String>> {
    Ok(match (train.label_names(label_column), config.model.num_labels) {
        (Some(names), Some(n)) if names.len() != n => {
            return Err(TrainError::Config(format!(
                "model.num_labels is {n} but the data's '{label_column}' has {} label names ({})",
                names.len(),
                names.join(", ")
            )));
        }
        (Some(names), _) => names.to_vec(),
        (None, Some(n)) => match checkpoint_labels {
            Some(names) if names.len() == n => names,
            _ => (0..n).map(|i| format!("LABEL_{i}")).collect(),
        },
        (None, None) => match checkpoint_labels {
            Some(names) => names,
            None => {
                return Err(TrainError::Config(format!(
                    "data: column '{label_column}' of {} has no label names (ClassLabel) and the model has no \
                     classification head with labels; set model.num_labels",
                    config.data.source
                )));
            }
        },
    })
}

/// Tokenizes, truncates and finishes the splits (see [`prepare`]).
fn tokenize_splits(
    config: &RunConfig,
    tokenizer: TextTokenizer,
    model_max_positions: usize,
    train: Dataset,
    eval: Option<Dataset>,
    label_names: Vec<String>,
    mut skipped: usize,
) -> Result<PreparedData> {
    let d = &config.data;
    let on_invalid = if d.skip_invalid { OnInvalid::Skip } else { OnInvalid::Error };
    let label_column = config.label_column();
    let text_column = config.text_column();
    let causal = config.model.task == ft_models::auto::Task::CausalLm;
    let max_length =
        d.max_length.or(tokenizer.model_max_length()).unwrap_or(model_max_positions).min(model_max_positions);
    let tokenizer = tokenizer.with_max_length(Some(max_length))?;
    let opts = TokenizeOptions {
        max_length: Some(max_length),
        num_labels: (!causal).then_some(label_names.len()),
        label_all_tokens: d.label_all_tokens,
        on_invalid,
        ..Default::default()
    };
    let tokenize = |ds: &Dataset| -> Result<Tokenized> {
        Ok(if config.is_token_classification() {
            tokenize_and_align_labels(ds, &tokenizer, &text_column, &label_column, &opts)?
        } else if causal {
            tokenize_text_classification(ds, &tokenizer, &text_column, None, &opts)?
        } else {
            tokenize_text_classification(ds, &tokenizer, &text_column, Some(&label_column), &opts)?
        })
    };
    let train = tokenize(&train)?;
    skipped += train.skipped.len();
    let eval = match eval {
        Some(ds) => {
            let t = tokenize(&ds)?;
            skipped += t.skipped.len();
            Some(t.dataset)
        }
        None => None,
    };
    if train.dataset.is_empty() {
        return Err(TrainError::Config(format!("data: the training split '{}' has no rows", d.train_split)));
    }
    Ok(PreparedData { train: train.dataset, eval, label_names, tokenizer, skipped, leakage: None })
}
