//! What every Hugging Face `config.json` shares (transformers' `PretrainedConfig`): the label
//! names and the problem type, and reading a config file with errors that name it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::{ModelError, Result};

/// The most labels a config may declare (`num_labels`, a ResNet's `num_classes`): a bound checked
/// before any label name or head row is allocated, as for a run file's `model.num_labels`.
pub const MAX_LABELS: usize = 1_000_000;

/// Label fields of `PretrainedConfig`: `id2label`, `label2id`, `num_labels`, `problem_type`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct LabelConfig {
    /// Label names by id; JSON object keys are the ids as strings, as transformers writes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
    /// Label ids by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label2id: Option<BTreeMap<String, i64>>,
    /// Number of labels when `id2label` is absent (transformers' default is 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_labels: Option<usize>,
    /// `single_label_classification`, `multi_label_classification` or `regression`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem_type: Option<String>,
}

impl LabelConfig {
    /// The number of labels: `id2label`'s size, else `num_labels`, else 2 (as transformers).
    pub fn num_labels(&self) -> usize {
        match &self.id2label {
            Some(map) if !map.is_empty() => map.len(),
            _ => self.num_labels.unwrap_or(2),
        }
    }

    /// Label names by id (`LABEL_i` where `id2label` has no entry, as transformers names them).
    pub fn label_names(&self) -> Vec<String> {
        let n = self.num_labels();
        (0..n)
            .map(|i| {
                self.id2label
                    .as_ref()
                    .and_then(|m| m.get(&i.to_string()))
                    .cloned()
                    .unwrap_or_else(|| format!("LABEL_{i}"))
            })
            .collect()
    }

    /// Replaces the labels (as `from_pretrained(..., num_labels=N)` or with explicit names).
    pub fn set_labels(&mut self, names: &[String]) {
        self.id2label = Some(names.iter().enumerate().map(|(i, n)| (i.to_string(), n.clone())).collect());
        self.label2id = Some(names.iter().enumerate().map(|(i, n)| (n.clone(), i as i64)).collect());
        self.num_labels = None;
    }

    /// Sets `num_labels`, keeping existing names when the count is unchanged, else naming the
    /// labels `LABEL_i` as transformers does.
    pub fn set_num_labels(&mut self, n: usize) {
        if self.num_labels() != n || self.id2label.is_none() {
            let names: Vec<String> = (0..n).map(|i| format!("LABEL_{i}")).collect();
            self.set_labels(&names);
        }
    }

    /// Checks `id2label` keys are the ids `0..n`, and `num_labels` is at most [`MAX_LABELS`].
    pub fn validate(&self, path: &Path) -> Result<()> {
        if let Some(n) = self.num_labels.filter(|&n| n > MAX_LABELS) {
            return Err(ModelError::Config {
                path: path.to_path_buf(),
                message: format!("num_labels: {n} is above the limit of {MAX_LABELS} labels"),
            });
        }
        if let Some(map) = &self.id2label {
            for key in map.keys() {
                let ok = key.parse::<usize>().map(|k| k < map.len()).unwrap_or(false);
                if !ok {
                    return Err(ModelError::Config {
                        path: path.to_path_buf(),
                        message: format!("id2label: key '{key}' is not an id in 0..{}", map.len()),
                    });
                }
            }
        }
        if let Some(p) = &self.problem_type {
            if !["single_label_classification", "multi_label_classification", "regression"].contains(&p.as_str()) {
                return Err(ModelError::Config {
                    path: path.to_path_buf(),
                    message: format!(
                        "problem_type: '{p}' (expected single_label_classification, \
                         multi_label_classification or regression)"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Reads and parses a JSON config file; errors name the file, and the line, column and field
/// when the JSON is malformed or a field has the wrong type.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), error: source })?;
    parse_json(path, &text)
}

/// Parses JSON text read from `path`.
pub fn parse_json<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| ModelError::Config { path: path.to_path_buf(), message: e.to_string() })
}

/// Fails with a message naming `field` unless `ok`.
pub fn check(path: &Path, ok: bool, field: &str, message: impl std::fmt::Display) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(ModelError::Config { path: path.to_path_buf(), message: format!("{field}: {message}") })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn num_labels_is_bounded() {
        let path = Path::new("config.json");
        let huge: LabelConfig = parse_json(path, r#"{"num_labels": 18446744073709551615}"#).unwrap();
        let msg = huge.validate(path).unwrap_err().to_string();
        assert!(msg.contains("num_labels") && msg.contains("config.json"), "{msg}");
        let fine: LabelConfig = parse_json(path, r#"{"num_labels": 1000000}"#).unwrap();
        fine.validate(path).unwrap();
    }
}
