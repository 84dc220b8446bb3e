//! The run files of the training sections: the notebook's settings as [`RunConfig`] values,
//! written as TOML by the same serializer `ft train` reads back, with a comment beside each key
//! that says where in the notebook it comes from.

use std::path::Path;

use anyhow::{Context, Result};
use ft_models::auto::Task;
use ft_train::args::{IntervalStrategy, SchedulerType, TrainingArguments};
use ft_train::run_config::{AdapterMethod, FrozenMethod, FullMethod, MethodConfig, ModelSection, RunConfig};

use super::Section;
use super::profile::Profile;

/// One training section's run file: the notebook's settings, the profile's model and data.
pub fn run_config(section: Section, p: &Profile, output_dir: &Path) -> RunConfig {
    let (model, task, plan) = match section {
        Section::Ner => (&p.model_ner, Task::TokenClassification, &p.conll),
        _ => (&p.model_cls, Task::SequenceClassification, &p.ag),
    };
    let mut data = plan.data.clone();
    if section != Section::Ner {
        data.max_length = Some(256);
    }
    let method = match section {
        Section::Frozen => MethodConfig::Frozen(FrozenMethod { head_dropout: Some(0.1), ..Default::default() }),
        Section::Adapters => MethodConfig::Adapter(adapter_method("agnews_adapter")),
        _ => MethodConfig::Full(FullMethod {}),
    };
    let base = TrainingArguments { output_dir: output_dir.to_path_buf(), seed: 42, ..Default::default() };
    let training = match section {
        Section::Frozen => TrainingArguments {
            learning_rate: 1e-3,
            weight_decay: 0.01,
            lr_scheduler_type: SchedulerType::Constant,
            max_grad_norm: 0.0,
            per_device_train_batch_size: 32,
            per_device_eval_batch_size: 32,
            num_train_epochs: 1.0,
            eval_strategy: IntervalStrategy::Epoch,
            save_strategy: IntervalStrategy::No,
            logging_steps: 10,
            ..base
        },
        Section::Adapters => TrainingArguments {
            learning_rate: 5e-4,
            per_device_train_batch_size: 16,
            per_device_eval_batch_size: 32,
            num_train_epochs: 1.0,
            eval_strategy: IntervalStrategy::Epoch,
            save_strategy: IntervalStrategy::No,
            logging_steps: 50,
            ..base
        },
        Section::Ner => TrainingArguments {
            learning_rate: 5e-5,
            per_device_train_batch_size: 8,
            per_device_eval_batch_size: 16,
            num_train_epochs: 1.0,
            eval_strategy: IntervalStrategy::Epoch,
            save_strategy: IntervalStrategy::No,
            logging_steps: 50,
            ..base
        },
        _ => TrainingArguments {
            learning_rate: 2e-5,
            per_device_train_batch_size: 16,
            per_device_eval_batch_size: 32,
            num_train_epochs: 2.0,
            eval_strategy: IntervalStrategy::Epoch,
            save_strategy: IntervalStrategy::Epoch,
            logging_steps: 50,
            load_best_model_at_end: true,
            metric_for_best_model: Some("accuracy".into()),
            ..base
        },
    };
    RunConfig {
        model: ModelSection {
            name: model.clone(),
            task,
            num_labels: (section != Section::Ner).then_some(4),
            random_init: false,
        },
        data,
        method,
        training,
    }
}

/// §6's adapter: the library's `"pfeiffer"` config with its defaults, under `name`.
pub fn adapter_method(name: &str) -> AdapterMethod {
    AdapterMethod {
        config: "pfeiffer".into(),
        adapter_name: name.into(),
        reduction_factor: None,
        non_linearity: None,
        mh_adapter: None,
        output_adapter: None,
        original_ln_before: None,
        original_ln_after: None,
        residual_before_ln: None,
        init_weights: None,
        dropout: None,
        leave_out: None,
        head_layers: None,
        head_activation: None,
        head_dropout: None,
    }
}

/// Where each key's value comes from in the notebook, per section.
fn comment(section: Section, table: &str, key: &str, p: &Profile) -> Option<&'static str> {
    let plan = if section == Section::Ner { &p.conll } else { &p.ag };
    if table == "data"
        && let Some((_, c)) = plan.comments.iter().find(|(k, _)| *k == key)
    {
        return Some(c);
    }
    Some(match (section, table, key) {
        (Section::Ner, "model", "name") => "the notebook: bert-base-cased",
        (_, "model", "name") => "the notebook: distilbert-base-uncased",
        (_, "model", "num_labels") => "from_pretrained(model_name, num_labels=4)",
        (_, "data", "max_length") => "tok(batch['text'], truncation=True, max_length=256)",
        (Section::Frozen, "method", "kind") => {
            "encoder parameters requires_grad = False; a ClsHead on last_hidden_state[:, 0]"
        }
        (Section::Frozen, "method", "head_dropout") => "nn.Dropout(0.1) before nn.Linear(hidden, 4)",
        (Section::Frozen, "method", "cache_features") => {
            "the frozen encoder's outputs are computed once (same numbers as torch.no_grad() per step)"
        }
        (Section::Adapters, "method", "kind") => {
            "train_adapter(\"agnews_adapter\"): the base frozen, the adapter and its head trained"
        }
        (Section::Adapters, "method", "config") => "model_ad.add_adapter(\"agnews_adapter\", config=\"pfeiffer\")",
        (Section::Adapters, "training", "learning_rate") => "learning_rate=5e-4",
        (Section::Adapters, "training", "num_train_epochs") => "num_train_epochs=1",
        (Section::Adapters, "training", "eval_strategy") => "evaluation_strategy=\"epoch\"",
        (Section::Adapters, "training", "save_strategy") => {
            "the notebook saves checkpoints every 500 steps (none in its 125); the adapter is saved at the end"
        }
        (_, "method", "kind") => "every parameter is trained",
        (Section::Frozen, "training", "learning_rate") => "torch.optim.AdamW(head.parameters(), lr=1e-3)",
        (Section::Frozen, "training", "weight_decay") => "torch.optim.AdamW's default",
        (Section::Frozen, "training", "lr_scheduler_type") => "the notebook's loop has no scheduler",
        (Section::Frozen, "training", "max_grad_norm") => "and no gradient clipping",
        (Section::Frozen, "training", "per_device_train_batch_size") => "batch_iter(train_set, bs=32)",
        (Section::Frozen, "training", "num_train_epochs") => {
            "one pass over the training rows (the loop's `step > 200` break is not reached)"
        }
        (Section::Frozen, "training", "eval_strategy") => {
            "the notebook does not evaluate §5; the report needs accuracy and a confusion matrix"
        }
        (Section::Frozen, "training", "logging_steps") => {
            "the loop prints the loss every 50 steps; 10 gives the curve more than one point (logging changes no number)"
        }
        (Section::Ner, "training", "learning_rate") => "TrainingArguments' default (the notebook sets none)",
        (Section::Ner, "training", "eval_strategy") => "seqeval metrics at each evaluation",
        (Section::Ner, "training", "save_strategy") => {
            "the default save_steps=500 saves nothing in the notebook's 250 steps"
        }
        (Section::Full, "training", "eval_strategy") => "evaluation_strategy=\"epoch\"",
        (Section::Full, "training", "metric_for_best_model") => "compute_metrics: accuracy and f1_macro",
        (_, "training", "seed") => "TrainingArguments' default",
        _ => return None,
    })
}

/// The run file's text: `config` serialized (training arguments that keep transformers'
/// defaults left out, `output_dir` always in), each key with its notebook comment.
pub fn run_file_text(section: Section, config: &RunConfig, p: &Profile) -> Result<String> {
    let mut value = toml::Value::try_from(config).context("serializing a run file")?;
    let defaults = toml::Value::try_from(TrainingArguments::default()).context("serializing the defaults")?;
    if let (Some(toml::Value::Table(t)), toml::Value::Table(d)) = (value.get_mut("training"), &defaults) {
        t.retain(|k, v| k == "output_dir" || d.get(k) != Some(v));
    }
    let text = toml::to_string(&value).context("serializing a run file")?;
    let mut out = format!(
        "# {} — written by `cargo xtask reproduce-notebook`{}.\n# Run it again with: ft train --config <this file>\n\n",
        section.title(),
        if p.tiny { " --profile tiny" } else { "" }
    );
    let mut table = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = name.to_string();
        }
        out.push_str(line);
        if let Some((key, _)) = line.split_once(" = ")
            && let Some(c) = comment(section, &table, key.trim(), p)
        {
            out.push_str("  # ");
            out.push_str(c);
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::notebook::profile::DataPlan;

    fn profile(tiny: bool) -> Profile {
        let dir = Path::new("/data");
        Profile {
            tiny,
            offline: true,
            model_cls: "m-cls".into(),
            model_ner: "m-ner".into(),
            model_lm: "m-lm".into(),
            ag: DataPlan::ag_news_test_parquet(&dir.join("ag_news/test.parquet")),
            conll: DataPlan::conll_dir(&dir.join("conll2003")),
            vision: crate::notebook::vision::VisionPlan::Transfer { images: dir.join("fashion-mnist/png") },
            exercise_1_model: None,
            ran: Vec::new(),
            aclsum: None,
            lm_caveat: None,
        }
    }

    /// The run files carry the notebook's settings, section by section, and read back as
    /// written.
    #[test]
    fn run_files_have_the_notebooks_settings() {
        let p = profile(false);
        for section in [Section::Full, Section::Frozen, Section::Ner] {
            let config = run_config(section, &p, Path::new("/o"));
            let text = run_file_text(section, &config, &p).unwrap();
            let back = RunConfig::parse(&text, "run.toml", &[]).unwrap();
            assert_eq!(back, config, "{text}");
        }
        let full = run_config(Section::Full, &p, Path::new("/o"));
        let t = &full.training;
        assert_eq!((t.learning_rate, t.per_device_train_batch_size, t.per_device_eval_batch_size), (2e-5, 16, 32));
        assert_eq!((t.num_train_epochs, t.logging_steps, t.load_best_model_at_end), (2.0, 50, true));
        assert_eq!(t.metric_for_best_model.as_deref(), Some("accuracy"));
        assert_eq!((full.data.max_length, full.data.eval_skip), (Some(256), 2000));
        assert_eq!(full.data.source, "/data/ag_news/test.parquet");
        let frozen = run_config(Section::Frozen, &p, Path::new("/o"));
        assert!(
            matches!(frozen.method, MethodConfig::Frozen(FrozenMethod { head_dropout, .. }) if head_dropout == Some(0.1))
        );
        assert_eq!(frozen.training.lr_scheduler_type, SchedulerType::Constant);
        let ner = run_config(Section::Ner, &p, Path::new("/o"));
        assert_eq!((ner.model.task, ner.model.name.as_str()), (Task::TokenClassification, "m-ner"));
        assert_eq!((ner.training.learning_rate, ner.data.max_length, ner.data.train_select), (5e-5, None, Some(2000)));
        let text = run_file_text(Section::Frozen, &frozen, &p).unwrap();
        assert!(text.contains("kind = \"frozen\"  # encoder parameters requires_grad = False"), "{text}");
        // The tiny profile changes the model and the data, not the settings.
        let tiny = run_config(Section::Frozen, &profile(true), Path::new("/o"));
        assert_eq!(tiny.training, frozen.training);
    }
}
