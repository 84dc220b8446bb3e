//! Dataset recipes: what the notebook's `load_dataset("ag_news")` and friends mean, written down.
//!
//! A recipe (a TOML file; the built-in ones are `datasets/{ag_news,imdb,conll2003}.toml` in the
//! repository, compiled in) names the Hub repository, the task, the text/token and label columns
//! and label names, maps the recipe's split names onto the source's (AG News has no validation
//! split: the notebook validates on `test`), records the notebook's subsample
//! (`shuffle(seed=42).select(range(n))`) and says how to read the original files when they are
//! given locally instead of the Hub's Parquet (the headerless AG News CSV, CoNLL text).
//!
//! ```toml
//! name = "ag_news"
//! hub_id = "fancyzhx/ag_news"
//! task = "text-classification"
//! text_column = "text"
//! label_column = "label"
//! label_names = ["World", "Sports", "Business", "Sci/Tech"]
//! [splits]            # recipe split = source split
//! train = "train"
//! validation = "test"
//! [subsample]         # the notebook: split.shuffle(seed=42).select(range(n))
//! seed = 42
//! train = 2000
//! validation = 1000
//! [csv]               # local CSV files have no header
//! column_names = ["class", "title", "description"]
//! [[derive]]          # text = title + " " + description
//! name = "text"
//! concat = ["title", "description"]
//! separator = " "
//! [[derive]]          # label = class - 1
//! name = "label"
//! from = "class"
//! add = -1
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::dataset::{Column, Dataset, Field};
use crate::{DataError, Result};

/// The recipes compiled into ft-data: `(name, TOML)`.
pub const BUILT_IN: [(&str, &str); 3] = [
    ("ag_news", include_str!("../../../datasets/ag_news.toml")),
    ("imdb", include_str!("../../../datasets/imdb.toml")),
    ("conll2003", include_str!("../../../datasets/conll2003.toml")),
];

/// A dataset recipe (see the module docs for the file format).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The recipe's name (`ag_news`).
    pub name: String,
    /// One line about the dataset.
    #[serde(default)]
    pub description: String,
    /// The Hub dataset repository (`fancyzhx/ag_news`).
    pub hub_id: String,
    /// Branch, tag or commit on the Hub (default `main`).
    #[serde(default)]
    pub revision: Option<String>,
    /// The Hub config (subset), when the repository has several.
    #[serde(default)]
    pub config: Option<String>,
    /// `text-classification` or `token-classification`.
    pub task: String,
    /// The text column (text classification).
    #[serde(default)]
    pub text_column: Option<String>,
    /// The pre-split words column (token classification).
    #[serde(default)]
    pub tokens_column: Option<String>,
    /// The label column (class ids, or tag ids per word).
    pub label_column: String,
    /// Label names in id order, used where the data carries none (CSV, JSON Lines).
    #[serde(default)]
    pub label_names: Vec<String>,
    /// The `max_length` the notebook tokenizes with, if it sets one.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// Recipe split name → source split name.
    #[serde(default)]
    pub splits: BTreeMap<String, String>,
    /// The notebook's subsample.
    #[serde(default)]
    pub subsample: Option<Subsample>,
    /// How to read local CSV files of this dataset.
    #[serde(default)]
    pub csv: Option<CsvLayout>,
    /// Columns computed from others when the data lacks them (local original files), in order.
    #[serde(default)]
    pub derive: Vec<Derive>,
}

/// `split.shuffle(seed).select(range(n))` per split.
#[derive(Debug, Clone, Deserialize)]
pub struct Subsample {
    /// The shuffle seed (the notebook's 42).
    pub seed: u64,
    /// Rows to keep per recipe split.
    #[serde(flatten)]
    pub sizes: BTreeMap<String, usize>,
}

/// The layout of the dataset's original CSV files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvLayout {
    /// Whether the files have a header row (default: no when `column_names` is given).
    #[serde(default)]
    pub header: Option<bool>,
    /// Column names for headerless files.
    #[serde(default)]
    pub column_names: Option<Vec<String>>,
}

/// How to compute a column from others; the source columns are dropped afterwards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Derive {
    /// The column to compute.
    pub name: String,
    /// String columns to join (with `separator`).
    #[serde(default)]
    pub concat: Vec<String>,
    /// Separator for `concat` (default one space).
    #[serde(default)]
    pub separator: Option<String>,
    /// An integer column to copy (with `add` added).
    #[serde(default)]
    pub from: Option<String>,
    /// Added to every value of `from`.
    #[serde(default)]
    pub add: i64,
}

impl Recipe {
    /// Parses a recipe from TOML; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let r: Recipe =
            toml::from_str(text).map_err(|e| DataError::Recipe { path: origin.into(), message: e.to_string() })?;
        let err = |m: String| Err(DataError::Recipe { path: origin.into(), message: m });
        match r.task.as_str() {
            "text-classification" if r.text_column.is_none() => {
                return err("text-classification needs text_column".into());
            }
            "token-classification" if r.tokens_column.is_none() => {
                return err("token-classification needs tokens_column".into());
            }
            "text-classification" | "token-classification" => {}
            other => return err(format!("unknown task '{other}' (text-classification, token-classification)")),
        }
        for d in &r.derive {
            if d.concat.is_empty() == d.from.is_none() {
                return err(format!("derive '{}': give either `concat` or `from`", d.name));
            }
        }
        Ok(r)
    }

    /// Reads a recipe file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// A built-in recipe by name.
    pub fn built_in(name: &str) -> Option<Self> {
        BUILT_IN
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(n, text)| Self::from_toml(text, &format!("datasets/{n}.toml")).ok())
    }

    /// Names of the built-in recipes.
    pub fn built_in_names() -> Vec<&'static str> {
        BUILT_IN.iter().map(|(n, _)| *n).collect()
    }

    /// The Hub revision (default `main`).
    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }

    /// The source split behind a recipe split (itself when the recipe does not map it).
    pub fn source_split<'a>(&'a self, split: &'a str) -> &'a str {
        self.splits.get(split).map(String::as_str).unwrap_or(split)
    }

    /// The notebook's subsample size and seed for a recipe split.
    pub fn subsample_of(&self, split: &str) -> Option<(u64, usize)> {
        let s = self.subsample.as_ref()?;
        s.sizes.get(split).map(|&n| (s.seed, n))
    }

    /// Brings a loaded split to the recipe's shape: computes the `derive` columns the data lacks
    /// (dropping their sources), and gives the label column the recipe's names when the data
    /// has none.
    pub fn apply(&self, mut ds: Dataset) -> Result<Dataset> {
        let mut used: Vec<String> = Vec::new();
        for d in &self.derive {
            let name = &d.name;
            if ds.has_column(name) {
                continue;
            }
            let column = if let Some(from) = &d.from {
                match ds.column(from)? {
                    Column::Int(v) => {
                        let mut out = Vec::with_capacity(v.len());
                        for (i, x) in v.iter().enumerate() {
                            // A value near the int64 limits plus `add` overflows: an error, not a wrap.
                            let y = x.checked_add(d.add).ok_or_else(|| {
                                ds.row_error(i, format!("derive '{name}': {from} {x} + {} overflows int64", d.add))
                            })?;
                            out.push(y);
                        }
                        Column::Int(out)
                    }
                    other => return Err(ds.type_error(from, other, "int64")),
                }
            } else {
                let sep = d.separator.as_deref().unwrap_or(" ");
                let mut parts: Vec<&Vec<String>> = Vec::new();
                for c in &d.concat {
                    match ds.column(c)? {
                        Column::Str(v) => parts.push(v),
                        other => return Err(ds.type_error(c, other, "string")),
                    }
                }
                Column::Str(
                    (0..ds.len()).map(|i| parts.iter().map(|p| p[i].as_str()).collect::<Vec<_>>().join(sep)).collect(),
                )
            };
            used.extend(d.from.iter().cloned());
            used.extend(d.concat.iter().cloned());
            ds = ds.add_column(Field::new(name.clone(), column))?;
        }
        used.retain(|u| !self.derive.iter().any(|d| &d.name == u));
        used.sort();
        used.dedup();
        if !used.is_empty() {
            let refs: Vec<&str> = used.iter().map(String::as_str).collect();
            ds = ds.remove_columns(&refs)?;
        }
        if !self.label_names.is_empty()
            && ds.has_column(&self.label_column)
            && ds.label_names(&self.label_column).is_none()
        {
            ds = ds.set_class_names(&self.label_column, self.label_names.clone())?;
        }
        Ok(ds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_recipes_parse() {
        for name in Recipe::built_in_names() {
            let (_, text) = BUILT_IN.iter().find(|(n, _)| *n == name).unwrap();
            let r = Recipe::from_toml(text, name).unwrap();
            assert_eq!(r.name, name);
            assert!(r.subsample_of("train").is_some(), "{name}");
        }
        let ag = Recipe::built_in("ag_news").unwrap();
        assert_eq!(ag.source_split("validation"), "test");
        assert_eq!(ag.subsample_of("validation"), Some((42, 1000)));
    }

    #[test]
    fn derives_ag_news_columns_from_the_csv_layout() {
        let ag = Recipe::built_in("ag_news").unwrap();
        let ds = Dataset::new(
            "t.csv",
            vec![
                Field::new("class", Column::Int(vec![3, 1])),
                Field::new("title", Column::Str(vec!["A".into(), "B".into()])),
                Field::new("description", Column::Str(vec!["x y".into(), "z".into()])),
            ],
        )
        .unwrap();
        let out = ag.apply(ds).unwrap();
        assert_eq!(out.column_names(), ["text", "label"]);
        assert_eq!(out.column("text").unwrap(), &Column::Str(vec!["A x y".into(), "B z".into()]));
        assert_eq!(out.column("label").unwrap(), &Column::Int(vec![2, 0]));
        assert_eq!(out.label_names("label").unwrap()[2], "Business");
    }

    #[test]
    fn a_derived_value_past_int64_is_an_error() {
        let r = Recipe::from_toml(
            "name='a'\nhub_id='b'\ntask='text-classification'\ntext_column='t'\nlabel_column='l'\n\
             [[derive]]\nname='l'\nfrom='class'\nadd=9223372036854775807",
            "r.toml",
        )
        .unwrap();
        let ds = Dataset::new("t.csv", vec![Field::new("class", Column::Int(vec![0, 1]))]).unwrap();
        let err = r.apply(ds).unwrap_err().to_string();
        assert!(err.contains("overflows") && err.contains("t.csv"), "{err}");
    }

    #[test]
    fn bad_recipes_are_named() {
        let err = Recipe::from_toml("name = 1", "x.toml").unwrap_err().to_string();
        assert!(err.contains("x.toml"), "{err}");
        let err =
            Recipe::from_toml("name='a'\nhub_id='b'\ntask='nope'\nlabel_column='l'", "y.toml").unwrap_err().to_string();
        assert!(err.contains("unknown task"), "{err}");
    }
}
