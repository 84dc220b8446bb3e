//! Where datasets come from: a local file or directory, a recipe name, or a Hub dataset id.
//!
//! [`DatasetSource::open`] resolves a dataset argument the way the rest of ft resolves models:
//!
//! 1. an existing local path: a data file (`.parquet`, `.csv`/`.tsv`, `.jsonl`/`.json`,
//!    `.txt`/`.conll` CoNLL or plain text), a recipe file (`.toml`), or a directory of data
//!    files (splits from the file names, see [`splits`]) or of images in class folders;
//! 2. a recipe name (`ag_news`, `imdb`, `conll2003`; see [`crate::recipe`]), read from the
//!    recipe's Hub repository, or from local files given with [`LoadOptions::local_data`];
//! 3. a Hub dataset id, `org/name[@revision]` (see [`hub`]).
//!
//! In a directory, one format is used: Parquet if there are Parquet files, else JSON Lines, else
//! CSV, else CoNLL/text, else images.

pub mod conll;
pub mod csv;
pub mod hub;
pub mod imagefolder;
pub mod jsonl;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod splits;

use std::path::{Path, PathBuf};

pub use self::conll::ConllOptions;
pub use self::csv::CsvOptions;
use crate::dataset::{Dataset, DatasetDict};
use crate::hub::{HubClient, HubRepo, RepoKind};
use crate::recipe::Recipe;
use crate::{DataError, Result};

/// What to do with a row that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnInvalid {
    /// Stop with an error naming the file and row (default).
    #[default]
    Error,
    /// Leave the row out and record it in the report (`--skip-invalid`).
    Skip,
}

/// A row left out under [`OnInvalid::Skip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// File and row or line.
    pub origin: String,
    /// Why.
    pub reason: String,
}

/// A data file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apache Parquet.
    Parquet,
    /// JSON Lines (or a JSON array of objects).
    Json,
    /// CSV / TSV.
    Csv,
    /// CoNLL columns, or plain text lines when the file does not look like CoNLL.
    Conll,
    /// Image files in class folders.
    ImageFolder,
}

impl Format {
    /// The format of a file, by extension.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "parquet" => Self::Parquet,
            "jsonl" | "json" | "ndjson" => Self::Json,
            "csv" | "tsv" => Self::Csv,
            "txt" | "conll" => Self::Conll,
            _ if imagefolder::is_image(path) => Self::ImageFolder,
            _ => return None,
        })
    }

    /// Lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Conll => "conll/text",
            Self::ImageFolder => "imagefolder",
        }
    }
}

/// Options for loading.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Error out on bad rows, or skip them.
    pub on_invalid: OnInvalid,
    /// CSV layout (a recipe's `[csv]` section overrides the defaults).
    pub csv: CsvOptions,
    /// CoNLL column layout.
    pub conll: ConllOptions,
    /// The Hub config (subset) to read; a recipe may set it.
    pub config: Option<String>,
    /// For a recipe: read this local file or directory instead of the Hub.
    pub local_data: Option<PathBuf>,
}

/// A loaded split.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The rows.
    pub dataset: Dataset,
    /// The split's name (the recipe's name for it when a recipe was used).
    pub split: String,
    /// Rows left out under [`OnInvalid::Skip`].
    pub skipped: Vec<Skipped>,
}

#[derive(Debug)]
enum Location {
    Local(PathBuf),
    Hub { client: Box<HubClient>, repo: HubRepo },
}

/// A resolved dataset: where its files are, their format, its splits, and its recipe if any.
#[derive(Debug)]
pub struct DatasetSource {
    spec: String,
    location: Location,
    format: Format,
    splits: Vec<(String, Vec<String>)>,
    recipe: Option<Recipe>,
    options: LoadOptions,
}

impl DatasetSource {
    /// Resolves a dataset argument (see the module docs).
    pub fn open(spec: &str, options: LoadOptions) -> Result<Self> {
        let path = Path::new(spec);
        if path.exists() {
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                return Self::from_recipe(spec, Recipe::from_file(path)?, options);
            }
            return Self::local(spec, path, None, options);
        }
        if let Some(recipe) = Recipe::built_in(spec) {
            return Self::from_recipe(spec, recipe, options);
        }
        let repo = HubRepo::parse(spec, RepoKind::Dataset).ok_or_else(|| DataError::Source {
            source_name: spec.into(),
            message: format!(
                "neither an existing path, a recipe ({}) nor a Hub dataset id (org/name[@revision])",
                Recipe::built_in_names().join(", ")
            ),
        })?;
        Self::hub(spec, repo, None, options)
    }

    fn from_recipe(spec: &str, recipe: Recipe, mut options: LoadOptions) -> Result<Self> {
        if let Some(csv) = &recipe.csv {
            if options.csv.column_names.is_none() {
                options.csv.column_names = csv.column_names.clone();
            }
            if options.csv.header.is_none() {
                options.csv.header = csv.header;
            }
        }
        if options.config.is_none() {
            options.config = recipe.config.clone();
        }
        match options.local_data.clone() {
            Some(local) => {
                if !local.exists() {
                    return Err(DataError::Source {
                        source_name: spec.into(),
                        message: format!("local data {} does not exist", local.display()),
                    });
                }
                Self::local(spec, &local, Some(recipe), options)
            }
            None => {
                let repo = HubRepo {
                    id: recipe.hub_id.clone(),
                    revision: recipe.revision().to_string(),
                    kind: RepoKind::Dataset,
                };
                Self::hub(spec, repo, Some(recipe), options)
            }
        }
    }

    fn local(spec: &str, path: &Path, recipe: Option<Recipe>, options: LoadOptions) -> Result<Self> {
        let err = |message: String| DataError::Source { source_name: spec.into(), message };
        if path.is_file() {
            let format = Format::from_path(path).ok_or_else(|| {
                err("unknown data file type (expected .parquet, .csv, .tsv, .jsonl, .json, .txt or .conll)".into())
            })?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let split = splits::infer_splits(std::slice::from_ref(&name))
                .into_iter()
                .next()
                .map(|(s, _)| s)
                .unwrap_or("train".into());
            let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
            return Ok(Self {
                spec: spec.into(),
                location: Location::Local(root),
                format,
                splits: vec![(split, vec![name])],
                recipe,
                options,
            });
        }
        let mut files = Vec::new();
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|source| DataError::Io { path: dir.clone(), error: source })?;
            for e in entries.flatten() {
                let p = e.path();
                let hidden = p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if hidden {
                    continue;
                }
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(path) {
                    files.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        files.sort();
        let of = |f: Format| -> Vec<String> {
            files.iter().filter(|p| Format::from_path(Path::new(p.as_str())) == Some(f)).cloned().collect()
        };
        let mut chosen = None;
        for f in [Format::Parquet, Format::Json, Format::Csv] {
            let v = of(f);
            if !v.is_empty() {
                chosen = Some((f, v));
                break;
            }
        }
        if chosen.is_none() {
            // Text files: CoNLL when they look like it; README-like files are not data.
            let v: Vec<String> = of(Format::Conll)
                .into_iter()
                .filter(|p| {
                    let lower = p.to_ascii_lowercase();
                    !(lower.contains("readme") || lower.contains("license") || lower.ends_with("classes.txt"))
                })
                .collect();
            if !v.is_empty() {
                chosen = Some((Format::Conll, v));
            }
        }
        if chosen.is_none() {
            let v = of(Format::ImageFolder);
            if !v.is_empty() {
                chosen = Some((Format::ImageFolder, v));
            }
        }
        let (format, data) = chosen
            .ok_or_else(|| err("no data files (.parquet, .jsonl, .csv, .txt, images) in this directory".into()))?;
        let splits = if format == Format::ImageFolder {
            // Split folders only at the top (`train/cat/x.png`); otherwise one `train` split.
            let top_is_split = data.iter().all(|f| f.matches('/').count() >= 2);
            let s = if top_is_split { splits::infer_splits(&data) } else { Vec::new() };
            if s.is_empty() || (s.len() == 1 && !top_is_split) { vec![("train".to_string(), data)] } else { s }
        } else {
            splits::infer_splits(&data)
        };
        Ok(Self { spec: spec.into(), location: Location::Local(path.to_path_buf()), format, splits, recipe, options })
    }

    fn hub(spec: &str, repo: HubRepo, recipe: Option<Recipe>, options: LoadOptions) -> Result<Self> {
        let client = HubClient::from_env()?;
        let layout = hub::layout(&client, &repo, options.config.as_deref())?;
        Ok(Self {
            spec: spec.into(),
            location: Location::Hub { client: Box::new(client), repo: layout.repo },
            format: layout.format,
            splits: layout.splits,
            recipe,
            options,
        })
    }

    /// The dataset argument as given.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Where the files are: a local directory or `datasets/<id>@<revision>` on the Hub.
    pub fn location(&self) -> String {
        match &self.location {
            Location::Local(p) => p.display().to_string(),
            Location::Hub { repo, .. } => format!("{repo} (Hub)"),
        }
    }

    /// The data format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The recipe, when the argument named one.
    pub fn recipe(&self) -> Option<&Recipe> {
        self.recipe.as_ref()
    }

    /// The source's own split names, in order.
    pub fn source_splits(&self) -> Vec<&str> {
        self.splits.iter().map(|(s, _)| s.as_str()).collect()
    }

    /// The split names a user can ask for: the recipe's splits that exist in the source (plus
    /// the source's own), or the source's splits.
    pub fn split_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(r) = &self.recipe {
            let mut mapped: Vec<&String> = r.splits.keys().collect();
            mapped.sort_by_key(|s| splits::split_order(s));
            for s in mapped {
                if self.files_of(r.source_split(s)).is_some() {
                    out.push(s.clone());
                }
            }
        }
        for (s, _) in &self.splits {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }

    /// The split used when none is asked for: `train` if there is one, else the first.
    pub fn default_split(&self) -> Option<String> {
        let names = self.split_names();
        names.iter().find(|s| *s == "train").or(names.first()).cloned()
    }

    fn files_of(&self, split: &str) -> Option<&Vec<String>> {
        self.splits.iter().find(|(s, _)| s == split).map(|(_, f)| f)
    }

    /// Loads one split (the default split when `None`). With a recipe, `split` is the recipe's
    /// name for it (`validation` of AG News reads the source's `test`) and the recipe's column
    /// derivations and label names are applied.
    pub fn load(&self, split: Option<&str>) -> Result<Loaded> {
        let split = match split {
            Some(s) => s.to_string(),
            None => self
                .default_split()
                .ok_or_else(|| DataError::Source { source_name: self.spec.clone(), message: "no splits".into() })?,
        };
        let source_split =
            self.recipe.as_ref().map(|r| r.source_split(&split).to_string()).unwrap_or_else(|| split.clone());
        let files = self.files_of(&source_split).ok_or_else(|| DataError::Source {
            source_name: self.spec.clone(),
            message: format!(
                "no split '{split}'{} in {} (splits: {})",
                if source_split != split { format!(" (source split '{source_split}')") } else { String::new() },
                self.location(),
                self.split_names().join(", ")
            ),
        })?;
        let mut skipped = Vec::new();
        let mut parts = Vec::new();
        let class_names = if self.format == Format::ImageFolder {
            imagefolder::class_names(self.splits.iter().flat_map(|(_, f)| f.iter()))
        } else {
            Vec::new()
        };
        if self.format == Format::ImageFolder {
            let Location::Local(root) = &self.location else {
                return Err(DataError::Source {
                    source_name: self.spec.clone(),
                    message: "image folders are local only".into(),
                });
            };
            parts.push(imagefolder::read(root, files, &class_names)?);
        } else {
            for f in files {
                let path = match &self.location {
                    Location::Local(root) => root.join(f),
                    Location::Hub { client, repo } => client.download(repo, f)?,
                };
                parts.push(self.read_file(&path, &mut skipped)?);
            }
        }
        let mut dataset = Dataset::concat(parts)?;
        if let Some(r) = &self.recipe {
            dataset = r.apply(dataset)?;
        }
        if !skipped.is_empty() {
            tracing::warn!(split = %split, "skipped {} invalid rows", skipped.len());
        }
        Ok(Loaded { dataset, split, skipped })
    }

    /// Loads every split.
    pub fn load_all(&self) -> Result<(DatasetDict, Vec<Skipped>)> {
        let mut dict = DatasetDict::default();
        let mut skipped = Vec::new();
        for s in self.split_names() {
            let l = self.load(Some(&s))?;
            skipped.extend(l.skipped);
            dict.splits.push((s, l.dataset));
        }
        Ok((dict, skipped))
    }

    fn read_file(&self, path: &Path, skipped: &mut Vec<Skipped>) -> Result<Dataset> {
        let on_invalid = self.options.on_invalid;
        tracing::debug!(file = %path.display(), format = self.format.name(), "reading");
        match self.format {
            #[cfg(feature = "parquet")]
            Format::Parquet => parquet::read(path),
            #[cfg(not(feature = "parquet"))]
            Format::Parquet => Err(DataError::Format {
                path: path.to_path_buf(),
                message: "this build of ft-data reads no Parquet files (enable its `parquet` feature)".into(),
            }),
            Format::Json => jsonl::read(path, on_invalid, skipped),
            Format::Csv => csv::read(path, &self.options.csv, on_invalid, skipped),
            Format::Conll => {
                let head = read_head(path)?;
                if conll::looks_like_conll(&head, self.options.conll.columns.len()) {
                    conll::read(path, &self.options.conll, on_invalid, skipped)
                } else {
                    conll::read_text(path)
                }
            }
            Format::ImageFolder => {
                Err(DataError::Source { source_name: self.spec.clone(), message: "not a data file".into() })
            }
        }
    }
}

/// The first 64 KiB of a text file (to sniff its format).
fn read_head(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = f.read(&mut buf).map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
    buf.truncate(n);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Loads one split of a dataset argument (path, recipe or Hub id) — the one-call form of
/// [`DatasetSource::open`] + [`DatasetSource::load`].
pub fn load_split(spec: &str, split: Option<&str>, options: LoadOptions) -> Result<Loaded> {
    DatasetSource::open(spec, options)?.load(split)
}
