//! The in-memory table and its operations, with `datasets`' semantics.
//!
//! A [`Dataset`] is a list of named, typed columns of equal length (like an Arrow table), each
//! with its [`Feature`] (so `ClassLabel` names travel with the data). Every row remembers where it
//! came from — file, row and, for text formats, line — so that an error raised after any number
//! of `shuffle`/`select`/`filter` steps still names the file and row of the bad value.
//!
//! | `datasets` | here |
//! |---|---|
//! | `ds.shuffle(seed=42)` | [`Dataset::shuffle`] (NumPy's PCG64 permutation, see [`crate::rng`]) |
//! | `ds.select(range(2000))` / `ds.select(indices)` | [`Dataset::take`] / [`Dataset::select`] |
//! | `ds.filter(fn)` | [`Dataset::filter`] |
//! | `ds.map(fn, batched=True, batch_size=1000, remove_columns=...)` | [`Dataset::map_batched`] |
//! | `ds.rename_column(a, b)`, `ds.remove_columns(...)` | [`Dataset::rename_column`], [`Dataset::remove_columns`] |
//! | `ds.train_test_split(test_size=0.1, seed=42)` | [`Dataset::train_test_split`] |
//! | `ds.features`, `ds.features["label"].names` | [`Dataset::features`], [`Dataset::label_names`] |

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::features::Feature;
use crate::{DataError, Result};

/// An image reference: a file path and/or the encoded file bytes (decoding is the model's job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Path of the image file, when known.
    pub path: Option<String>,
    /// The encoded image (PNG, JPEG, ...), when stored inline (Hub Parquet files do this).
    pub bytes: Option<Vec<u8>>,
}

/// The values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Booleans.
    Bool(Vec<bool>),
    /// Integers (all integer widths, class ids).
    Int(Vec<i64>),
    /// Floating-point numbers.
    Float(Vec<f64>),
    /// Strings.
    Str(Vec<String>),
    /// Lists of integers (token ids, tag ids).
    IntList(Vec<Vec<i64>>),
    /// Lists of floats.
    FloatList(Vec<Vec<f64>>),
    /// Lists of strings (pre-split words).
    StrList(Vec<Vec<String>>),
    /// Images.
    Image(Vec<ImageRef>),
    /// Anything else — nested values, or a column with missing values (`null`).
    Json(Vec<Value>),
}

impl Column {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::Bool(v) => v.len(),
            Self::Int(v) => v.len(),
            Self::Float(v) => v.len(),
            Self::Str(v) => v.len(),
            Self::IntList(v) => v.len(),
            Self::FloatList(v) => v.len(),
            Self::StrList(v) => v.len(),
            Self::Image(v) => v.len(),
            Self::Json(v) => v.len(),
        }
    }

    /// Whether the column has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value type, as Arrow/`datasets` name it (`string`, `int64`, `list<string>`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Bool(_) => "bool",
            Self::Int(_) => "int64",
            Self::Float(_) => "float64",
            Self::Str(_) => "string",
            Self::IntList(_) => "list<int64>",
            Self::FloatList(_) => "list<float64>",
            Self::StrList(_) => "list<string>",
            Self::Image(_) => "image",
            Self::Json(_) => "json (mixed or missing values)",
        }
    }

    /// The feature a column of this type has when the data says nothing more.
    pub fn default_feature(&self) -> Feature {
        let value = |t: &str| Feature::Value(t.into());
        match self {
            Self::Bool(_) => value("bool"),
            Self::Int(_) => value("int64"),
            Self::Float(_) => value("float64"),
            Self::Str(_) => value("string"),
            Self::IntList(_) => Feature::List(Box::new(value("int64"))),
            Self::FloatList(_) => Feature::List(Box::new(value("float64"))),
            Self::StrList(_) => Feature::List(Box::new(value("string"))),
            Self::Image(_) => Feature::Image,
            Self::Json(_) => Feature::Other(Value::Null),
        }
    }

    /// The values at `indices`, in that order (indices must be in range).
    pub fn gather(&self, indices: &[usize]) -> Self {
        fn g<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
            idx.iter().map(|&i| v[i].clone()).collect()
        }
        match self {
            Self::Bool(v) => Self::Bool(g(v, indices)),
            Self::Int(v) => Self::Int(g(v, indices)),
            Self::Float(v) => Self::Float(g(v, indices)),
            Self::Str(v) => Self::Str(g(v, indices)),
            Self::IntList(v) => Self::IntList(g(v, indices)),
            Self::FloatList(v) => Self::FloatList(g(v, indices)),
            Self::StrList(v) => Self::StrList(g(v, indices)),
            Self::Image(v) => Self::Image(g(v, indices)),
            Self::Json(v) => Self::Json(g(v, indices)),
        }
    }

    /// Value `i` as JSON (images as `{"path", "bytes": <length>}`).
    pub fn value(&self, i: usize) -> Value {
        match self {
            Self::Bool(v) => Value::from(v[i]),
            Self::Int(v) => Value::from(v[i]),
            Self::Float(v) => Value::from(v[i]),
            Self::Str(v) => Value::from(v[i].as_str()),
            Self::IntList(v) => Value::from(v[i].clone()),
            Self::FloatList(v) => Value::from(v[i].clone()),
            Self::StrList(v) => Value::from(v[i].clone()),
            Self::Image(v) => {
                let mut m = Map::new();
                m.insert("path".into(), v[i].path.clone().map(Value::from).unwrap_or(Value::Null));
                m.insert("bytes".into(), v[i].bytes.as_ref().map(|b| Value::from(b.len())).unwrap_or(Value::Null));
                Value::Object(m)
            }
            Self::Json(v) => v[i].clone(),
        }
    }

    /// All values as JSON.
    pub fn to_json_values(&self) -> Vec<Value> {
        (0..self.len()).map(|i| self.value(i)).collect()
    }

    /// A typed column from JSON values: `Int` if all are integers, `Float` if all are numbers,
    /// `Str`, `Bool`, `IntList`, `FloatList`, `StrList` likewise; otherwise (nulls, mixed types,
    /// objects) `Json`.
    pub fn from_json_values(values: Vec<Value>) -> Self {
        let all = |f: &dyn Fn(&Value) -> bool| values.iter().all(f);
        let list_all =
            |f: &dyn Fn(&Value) -> bool| values.iter().all(|v| v.as_array().is_some_and(|a| a.iter().all(f)));
        let is_int = |v: &Value| v.as_i64().is_some();
        let is_num = |v: &Value| v.is_number();
        if values.is_empty() {
            return Self::Json(values);
        }
        if all(&is_int) {
            Self::Int(values.iter().filter_map(Value::as_i64).collect())
        } else if all(&is_num) {
            Self::Float(values.iter().filter_map(Value::as_f64).collect())
        } else if all(&Value::is_string) {
            Self::Str(values.into_iter().map(|v| if let Value::String(s) = v { s } else { String::new() }).collect())
        } else if all(&Value::is_boolean) {
            Self::Bool(values.iter().filter_map(Value::as_bool).collect())
        } else if list_all(&is_int) && values.iter().any(|v| v.as_array().is_some_and(|a| !a.is_empty())) {
            Self::IntList(
                values
                    .iter()
                    .map(|v| v.as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default())
                    .collect(),
            )
        } else if list_all(&is_num) && values.iter().any(|v| v.as_array().is_some_and(|a| !a.is_empty())) {
            Self::FloatList(
                values
                    .iter()
                    .map(|v| v.as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default())
                    .collect(),
            )
        } else if list_all(&Value::is_string) {
            Self::StrList(
                values
                    .iter()
                    .map(|v| {
                        v.as_array()
                            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                            .unwrap_or_default()
                    })
                    .collect(),
            )
        } else {
            Self::Json(values)
        }
    }

    /// Appends `other`; columns of different types become `Json`.
    pub fn append(&mut self, other: Column) {
        match (&mut *self, other) {
            (Self::Bool(a), Self::Bool(b)) => a.extend(b),
            (Self::Int(a), Self::Int(b)) => a.extend(b),
            (Self::Float(a), Self::Float(b)) => a.extend(b),
            (Self::Str(a), Self::Str(b)) => a.extend(b),
            (Self::IntList(a), Self::IntList(b)) => a.extend(b),
            (Self::FloatList(a), Self::FloatList(b)) => a.extend(b),
            (Self::StrList(a), Self::StrList(b)) => a.extend(b),
            (Self::Image(a), Self::Image(b)) => a.extend(b),
            (Self::Json(a), b) => a.extend(b.to_json_values()),
            (a, b) => {
                let mut values = a.to_json_values();
                values.extend(b.to_json_values());
                *self = Self::Json(values);
            }
        }
    }
}

/// A named, typed column.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Column name.
    pub name: String,
    /// Its `datasets` feature (class names live here).
    pub feature: Feature,
    /// Its values.
    pub column: Column,
}

impl Field {
    /// A field whose feature is the column's default one.
    pub fn new(name: impl Into<String>, column: Column) -> Self {
        Self { name: name.into(), feature: column.default_feature(), column }
    }

    /// A field with an explicit feature.
    pub fn with_feature(name: impl Into<String>, feature: Feature, column: Column) -> Self {
        Self { name: name.into(), feature, column }
    }
}

/// Where a row comes from: an index into the dataset's file list, its 0-based row in that file
/// and, for text formats, the 1-based line where it starts (0 when not applicable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    /// Index into [`Dataset::files`].
    pub file: u32,
    /// 0-based row number within the file (the index `datasets` would give it).
    pub row: u64,
    /// 1-based line number in a text file; 0 when unknown or not a text file.
    pub line: u64,
}

/// A table of equal-length columns, with the origin of each row.
#[derive(Debug, Clone)]
pub struct Dataset {
    name: Arc<str>,
    fields: Vec<Field>,
    files: Arc<Vec<String>>,
    origins: Vec<RowRef>,
}

/// Named splits (`train`, `validation`, `test`, ...) in a fixed order, like `datasets.DatasetDict`.
#[derive(Debug, Clone, Default)]
pub struct DatasetDict {
    /// The splits, in order.
    pub splits: Vec<(String, Dataset)>,
}

impl DatasetDict {
    /// The split called `name`.
    pub fn get(&self, name: &str) -> Option<&Dataset> {
        self.splits.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }

    /// Split names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.splits.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// Size of one side of [`Dataset::train_test_split`]: a fraction in (0, 1) or a row count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SplitSize {
    /// A fraction of the rows (`test_size=0.1`): the test side gets `ceil(f * n)` rows, the train
    /// side `floor(f * n)`, as `datasets` computes them.
    Fraction(f64),
    /// A number of rows (`test_size=500`).
    Count(usize),
}

impl std::str::FromStr for SplitSize {
    type Err = String;
    /// `0.1` is a fraction, `500` a count.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        if let Ok(n) = s.parse::<usize>() {
            return Ok(Self::Count(n));
        }
        s.parse::<f64>().map(Self::Fraction).map_err(|_| format!("'{s}' is neither a fraction nor a row count"))
    }
}

/// One row of a dataset, for [`Dataset::filter`] predicates.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    ds: &'a Dataset,
    index: usize,
}

impl<'a> Row<'a> {
    /// Position of the row in its dataset.
    pub fn index(&self) -> usize {
        self.index
    }

    /// A string value.
    pub fn str(&self, column: &str) -> Result<&'a str> {
        match &self.ds.column(column)? {
            Column::Str(v) => Ok(v[self.index].as_str()),
            Column::Json(v) => v[self.index]
                .as_str()
                .ok_or_else(|| self.ds.row_error(self.index, format!("'{column}' is not a string"))),
            other => Err(self.ds.type_error(column, other, "string")),
        }
    }

    /// An integer value.
    pub fn int(&self, column: &str) -> Result<i64> {
        match &self.ds.column(column)? {
            Column::Int(v) => Ok(v[self.index]),
            Column::Json(v) => v[self.index]
                .as_i64()
                .ok_or_else(|| self.ds.row_error(self.index, format!("'{column}' is not an integer"))),
            other => Err(self.ds.type_error(column, other, "int64")),
        }
    }

    /// Any value as JSON.
    pub fn value(&self, column: &str) -> Result<Value> {
        Ok(self.ds.column(column)?.value(self.index))
    }

    /// Where the row comes from (`file: row N`).
    pub fn origin(&self) -> String {
        self.ds.origin(self.index)
    }
}

impl Dataset {
    /// A dataset from columns; `name` is used in messages and as the rows' origin.
    pub fn new(name: impl Into<String>, fields: Vec<Field>) -> Result<Self> {
        let name: String = name.into();
        let n = fields.first().map(|f| f.column.len()).unwrap_or(0);
        let origins = (0..n as u64).map(|row| RowRef { file: 0, row, line: 0 }).collect();
        Self::with_origins(name.clone(), fields, vec![name], origins)
    }

    /// A dataset whose rows come from `files` at the given places.
    pub fn with_origins(
        name: impl Into<String>,
        fields: Vec<Field>,
        files: Vec<String>,
        origins: Vec<RowRef>,
    ) -> Result<Self> {
        let name: Arc<str> = name.into().into();
        for f in &fields {
            if f.column.len() != origins.len() {
                return Err(DataError::Source {
                    source_name: name.to_string(),
                    message: format!("column '{}' has {} values, expected {}", f.name, f.column.len(), origins.len()),
                });
            }
        }
        for (i, f) in fields.iter().enumerate() {
            if fields[..i].iter().any(|g| g.name == f.name) {
                return Err(DataError::Source {
                    source_name: name.to_string(),
                    message: format!("column '{}' appears twice", f.name),
                });
            }
        }
        Ok(Self { name, fields, files: Arc::new(files), origins })
    }

    /// Concatenates datasets with the same columns (shards of one split), like
    /// `datasets.concatenate_datasets`.
    pub fn concat(parts: Vec<Dataset>) -> Result<Self> {
        let mut parts = parts.into_iter();
        let Some(mut out) = parts.next() else {
            return Self::new("empty dataset", Vec::new());
        };
        for part in parts {
            let names: Vec<&str> = part.column_names();
            if names != out.column_names() {
                return Err(DataError::Source {
                    source_name: part.name.to_string(),
                    message: format!("columns {:?} differ from {:?} in {}", names, out.column_names(), out.name),
                });
            }
            let offset = out.files.len() as u32;
            let mut files = (*out.files).clone();
            files.extend(part.files.iter().cloned());
            out.files = Arc::new(files);
            out.origins.extend(part.origins.iter().map(|r| RowRef { file: r.file + offset, ..*r }));
            for (f, g) in out.fields.iter_mut().zip(part.fields) {
                f.column.append(g.column);
            }
            out.name = format!("{}, {}", out.name, part.name).into();
        }
        Ok(out)
    }

    /// The name used in messages (the source files or a label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the name used in messages.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into().into();
        self
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// Column names, in order.
    pub fn column_names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.name.as_str()).collect()
    }

    /// The columns with their features.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// `(name, feature)` of every column, like `ds.features`.
    pub fn features(&self) -> Vec<(&str, &Feature)> {
        self.fields.iter().map(|f| (f.name.as_str(), &f.feature)).collect()
    }

    /// The files rows come from (indexed by [`RowRef::file`]).
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// The origin of each row.
    pub fn origins(&self) -> &[RowRef] {
        &self.origins
    }

    /// A column by name; the error lists the columns there are.
    pub fn column(&self, name: &str) -> Result<&Column> {
        self.field(name).map(|f| &f.column)
    }

    /// A field (column + feature) by name.
    pub fn field(&self, name: &str) -> Result<&Field> {
        self.fields.iter().find(|f| f.name == name).ok_or_else(|| DataError::MissingColumn {
            source_name: self.name.to_string(),
            column: name.to_string(),
            available: self.column_names().join(", "),
        })
    }

    /// Whether the dataset has a column called `name`.
    pub fn has_column(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.name == name)
    }

    /// Class names of a `ClassLabel` column (or a list-of-`ClassLabel` column, e.g. NER tags).
    pub fn label_names(&self, column: &str) -> Option<&[String]> {
        self.field(column).ok().and_then(|f| f.feature.class_names())
    }

    /// Where row `i` comes from, for messages: `file: row R` (`, line L` for text files).
    pub fn origin(&self, i: usize) -> String {
        match self.origins.get(i) {
            Some(r) => {
                let file = self.files.get(r.file as usize).map(String::as_str).unwrap_or(&self.name);
                if r.line > 0 {
                    format!("{file}: row {} (line {})", r.row, r.line)
                } else {
                    format!("{file}: row {}", r.row)
                }
            }
            None => format!("{}: row {i}", self.name),
        }
    }

    /// An error about row `i`, naming its file and row.
    pub fn row_error(&self, i: usize, message: impl Into<String>) -> DataError {
        DataError::Row { origin: self.origin(i), message: message.into() }
    }

    /// An error about a column of the wrong type.
    pub fn type_error(&self, column: &str, found: &Column, expected: &str) -> DataError {
        DataError::ColumnType {
            source_name: self.name.to_string(),
            column: column.to_string(),
            found: found.type_name().to_string(),
            expected: expected.to_string(),
        }
    }

    /// Row `i` as a JSON object (columns in order).
    pub fn row(&self, i: usize) -> Option<Map<String, Value>> {
        (i < self.len()).then(|| self.fields.iter().map(|f| (f.name.clone(), f.column.value(i))).collect())
    }

    /// The row at position `index`, for predicates.
    pub fn row_view(&self, index: usize) -> Option<Row<'_>> {
        (index < self.len()).then_some(Row { ds: self, index })
    }

    /// The rows at `indices`, in that order (`ds.select(indices)`); an index out of range is an
    /// error.
    pub fn select(&self, indices: &[usize]) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(DataError::Op {
                op: "select",
                message: format!("index {bad} is out of range for {} ({} rows)", self.name, self.len()),
            });
        }
        Ok(self.gather(indices))
    }

    fn gather(&self, indices: &[usize]) -> Self {
        Self {
            name: self.name.clone(),
            fields: self
                .fields
                .iter()
                .map(|f| Field { name: f.name.clone(), feature: f.feature.clone(), column: f.column.gather(indices) })
                .collect(),
            files: self.files.clone(),
            origins: indices.iter().map(|&i| self.origins[i]).collect(),
        }
    }

    /// The first `n` rows (`ds.select(range(n))`); all rows when there are fewer.
    pub fn take(&self, n: usize) -> Self {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.gather(&idx)
    }

    /// Rows `start..end` (clamped to the dataset).
    pub fn slice(&self, start: usize, end: usize) -> Self {
        let end = end.min(self.len());
        let idx: Vec<usize> = (start.min(end)..end).collect();
        self.gather(&idx)
    }

    /// The rows in `datasets`' `shuffle(seed=seed)` order: `np.random.default_rng(seed)
    /// .permutation(len)` (see [`crate::rng`]).
    pub fn shuffle(&self, seed: u64) -> Self {
        self.gather(&crate::rng::permutation(self.len(), seed))
    }

    /// The rows for which `keep` returns true, in order (`ds.filter(fn)`).
    pub fn filter<F>(&self, mut keep: F) -> Result<Self>
    where
        F: FnMut(&Row<'_>) -> Result<bool>,
    {
        let mut idx = Vec::new();
        for i in 0..self.len() {
            if keep(&Row { ds: self, index: i })? {
                idx.push(i);
            }
        }
        Ok(self.gather(&idx))
    }

    /// `ds.map(f, batched=True, batch_size=batch_size, remove_columns=remove)`: `f` gets each
    /// batch of rows as a dataset and returns new columns, which replace columns of the same
    /// name or are appended. Returned columns must have one value per row of the batch, unless
    /// every input column is removed (then a batch may grow or shrink).
    pub fn map_batched<F>(&self, batch_size: usize, remove: &[&str], mut f: F) -> Result<Self>
    where
        F: FnMut(&Dataset) -> Result<Vec<Field>>,
    {
        for r in remove {
            self.column(r)?;
        }
        let keep_rows = self.fields.iter().any(|f| !remove.contains(&f.name.as_str()));
        let batch_size = batch_size.max(1);
        let mut out: Vec<Field> = Vec::new();
        let mut origins = Vec::new();
        let mut start = 0;
        while start < self.len() {
            let batch = self.slice(start, start + batch_size);
            let produced = f(&batch)?;
            let n_out = produced.first().map(|p| p.column.len()).unwrap_or(batch.len());
            for p in &produced {
                if p.column.len() != n_out || (keep_rows && p.column.len() != batch.len()) {
                    return Err(DataError::Op {
                        op: "map",
                        message: format!(
                            "{}: rows {start}..{}: column '{}' has {} values for a batch of {} rows{}",
                            self.name,
                            start + batch.len(),
                            p.name,
                            p.column.len(),
                            batch.len(),
                            if keep_rows { " (remove all input columns to change the number of rows)" } else { "" }
                        ),
                    });
                }
            }
            if n_out == batch.len() {
                origins.extend_from_slice(&batch.origins);
            } else {
                // Rows made by the function: attribute them to the first row of their batch.
                origins.extend(std::iter::repeat_n(
                    batch.origins.first().copied().unwrap_or(RowRef { file: 0, row: 0, line: 0 }),
                    n_out,
                ));
            }
            if out.is_empty() {
                out = produced;
            } else {
                if produced.len() != out.len() || produced.iter().zip(&out).any(|(p, o)| p.name != o.name) {
                    return Err(DataError::Op {
                        op: "map",
                        message: format!("{}: batches returned different columns", self.name),
                    });
                }
                for (o, p) in out.iter_mut().zip(produced) {
                    o.column.append(p.column);
                }
            }
            start += batch_size;
        }
        let mut fields: Vec<Field> = if keep_rows {
            self.fields.iter().filter(|f| !remove.contains(&f.name.as_str())).cloned().collect()
        } else {
            Vec::new()
        };
        for p in out {
            match fields.iter_mut().find(|f| f.name == p.name) {
                Some(existing) => *existing = p,
                None => fields.push(p),
            }
        }
        let origins = if keep_rows { self.origins.clone() } else { origins };
        Self::with_origins(self.name.to_string(), fields, (*self.files).clone(), origins)
    }

    /// Renames a column (`ds.rename_column(old, new)`); the new name must be free.
    pub fn rename_column(mut self, old: &str, new: &str) -> Result<Self> {
        self.column(old)?;
        if old != new && self.has_column(new) {
            return Err(DataError::Op {
                op: "rename_column",
                message: format!("{}: column '{new}' already exists", self.name),
            });
        }
        for f in &mut self.fields {
            if f.name == old {
                f.name = new.to_string();
            }
        }
        Ok(self)
    }

    /// Drops columns (`ds.remove_columns([...])`); each must exist.
    pub fn remove_columns(mut self, names: &[&str]) -> Result<Self> {
        for n in names {
            self.column(n)?;
        }
        self.fields.retain(|f| !names.contains(&f.name.as_str()));
        Ok(self)
    }

    /// Adds (or replaces) a column with one value per row.
    pub fn add_column(mut self, field: Field) -> Result<Self> {
        if field.column.len() != self.len() {
            return Err(DataError::Op {
                op: "add_column",
                message: format!(
                    "{}: column '{}' has {} values for {} rows",
                    self.name,
                    field.name,
                    field.column.len(),
                    self.len()
                ),
            });
        }
        match self.fields.iter_mut().find(|f| f.name == field.name) {
            Some(f) => *f = field,
            None => self.fields.push(field),
        }
        Ok(self)
    }

    /// Declares an integer (or integer-list) column to hold class ids with these names
    /// (`ds.cast_column(col, ClassLabel(names=...))`).
    pub fn set_class_names(mut self, column: &str, names: Vec<String>) -> Result<Self> {
        let name = self.name.clone();
        let f = self.fields.iter_mut().find(|f| f.name == column).ok_or_else(|| DataError::MissingColumn {
            source_name: name.to_string(),
            column: column.to_string(),
            available: String::new(),
        })?;
        f.feature = match &f.column {
            Column::Int(_) => Feature::ClassLabel { names },
            Column::IntList(_) => Feature::List(Box::new(Feature::ClassLabel { names })),
            other => {
                return Err(DataError::ColumnType {
                    source_name: name.to_string(),
                    column: column.to_string(),
                    found: other.type_name().into(),
                    expected: "int64 or list<int64> class ids".into(),
                });
            }
        };
        Ok(self)
    }

    /// `ds.train_test_split(test_size, train_size, shuffle, seed)` with `datasets`' arithmetic and
    /// order: the permutation of `shuffle(seed)`, its first `n_test` rows for test, the next
    /// `n_train` for train. Without `shuffle`, train is the first rows and test the next ones.
    /// `test_size` defaults to 0.25 when neither size is given. Returns `{"train", "test"}`.
    pub fn train_test_split(
        &self,
        test_size: Option<SplitSize>,
        train_size: Option<SplitSize>,
        shuffle: bool,
        seed: Option<u64>,
    ) -> Result<DatasetDict> {
        let n = self.len();
        if n == 0 {
            return Ok(DatasetDict { splits: vec![("train".into(), self.clone()), ("test".into(), self.clone())] });
        }
        let err = |m: String| DataError::Op { op: "train_test_split", message: m };
        let test_size =
            if test_size.is_none() && train_size.is_none() { Some(SplitSize::Fraction(0.25)) } else { test_size };
        for (what, size) in [("test_size", test_size), ("train_size", train_size)] {
            match size {
                Some(SplitSize::Count(c)) if c == 0 || c >= n => {
                    return Err(err(format!(
                        "{what}={c} should be either positive and smaller than the number of samples {n} or a float in the (0, 1) range"
                    )));
                }
                Some(SplitSize::Fraction(f)) if !(f > 0.0 && f < 1.0) => {
                    return Err(err(format!(
                        "{what}={f} should be either positive and smaller than the number of samples {n} or a float in the (0, 1) range"
                    )));
                }
                _ => {}
            }
        }
        if let (Some(SplitSize::Fraction(a)), Some(SplitSize::Fraction(b))) = (test_size, train_size)
            && a + b > 1.0
        {
            return Err(err(format!("the sum of test_size and train_size = {}, should be in the (0, 1) range", a + b)));
        }
        let mut n_test = match test_size {
            Some(SplitSize::Fraction(f)) => (f * n as f64).ceil() as usize,
            Some(SplitSize::Count(c)) => c,
            None => 0,
        };
        let mut n_train = match train_size {
            Some(SplitSize::Fraction(f)) => (f * n as f64).floor() as usize,
            Some(SplitSize::Count(c)) => c,
            None => 0,
        };
        if train_size.is_none() {
            n_train = n - n_test;
        } else if test_size.is_none() {
            n_test = n - n_train;
        }
        if n_train + n_test > n {
            return Err(err(format!(
                "the sum of train_size and test_size = {}, should be smaller than the number of samples {n}",
                n_train + n_test
            )));
        }
        if n_train == 0 {
            return Err(err(format!("with n_samples={n}, the resulting train set would be empty")));
        }
        let (train_idx, test_idx): (Vec<usize>, Vec<usize>) = if shuffle {
            let seed = seed.unwrap_or_else(seed_from_clock);
            let p = crate::rng::permutation(n, seed);
            (p[n_test..n_test + n_train].to_vec(), p[..n_test].to_vec())
        } else {
            ((0..n_train).collect(), (n_train..n_train + n_test).collect())
        };
        Ok(DatasetDict {
            splits: vec![("train".into(), self.gather(&train_idx)), ("test".into(), self.gather(&test_idx))],
        })
    }

    /// How often each value of a column occurs: class names in id order for `ClassLabel`
    /// columns (flattened for tag lists), otherwise values sorted by count (descending).
    pub fn value_counts(&self, column: &str) -> Result<Vec<(String, usize)>> {
        let field = self.field(column)?;
        let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let names = field.feature.class_names();
        let key = |id: i64| -> String {
            match names {
                Some(n) => usize::try_from(id)
                    .ok()
                    .and_then(|i| n.get(i))
                    .cloned()
                    .unwrap_or_else(|| format!("{id} (out of range)")),
                None => id.to_string(),
            }
        };
        match &field.column {
            Column::Int(v) => v.iter().for_each(|&x| *counts.entry(key(x)).or_default() += 1),
            Column::IntList(v) => v.iter().flatten().for_each(|&x| *counts.entry(key(x)).or_default() += 1),
            Column::Str(v) => v.iter().for_each(|x| *counts.entry(x.clone()).or_default() += 1),
            Column::StrList(v) => v.iter().flatten().for_each(|x| *counts.entry(x.clone()).or_default() += 1),
            Column::Bool(v) => v.iter().for_each(|x| *counts.entry(x.to_string()).or_default() += 1),
            other => {
                for i in 0..other.len() {
                    *counts.entry(other.value(i).to_string()).or_default() += 1;
                }
            }
        }
        let mut out: Vec<(String, usize)> = match names {
            Some(n) => {
                let mut v: Vec<(String, usize)> =
                    n.iter().map(|name| (name.clone(), counts.remove(name).unwrap_or(0))).collect();
                let mut rest: Vec<(String, usize)> = counts.into_iter().collect();
                rest.sort();
                v.extend(rest);
                v
            }
            None => counts.into_iter().collect(),
        };
        if names.is_none() {
            out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
        Ok(out)
    }
}

/// A seed for `train_test_split` without one (`datasets` then draws fresh OS entropy).
fn seed_from_clock() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> Dataset {
        Dataset::new(
            "toy",
            vec![
                Field::new("text", Column::Str((0..n).map(|i| format!("t{i}")).collect())),
                Field::with_feature(
                    "label",
                    Feature::ClassLabel { names: vec!["a".into(), "b".into()] },
                    Column::Int((0..n as i64).map(|i| i % 2).collect()),
                ),
            ],
        )
        .unwrap()
    }

    fn texts(d: &Dataset) -> Vec<String> {
        match d.column("text").unwrap() {
            Column::Str(v) => v.clone(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn shuffle_matches_numpy_order() {
        let d = toy(10).shuffle(42);
        assert_eq!(texts(&d), ["t5", "t6", "t0", "t7", "t3", "t2", "t4", "t9", "t1", "t8"]);
        assert_eq!(d.origin(0), "toy: row 5");
        assert_eq!(texts(&d.take(3)), ["t5", "t6", "t0"]);
    }

    #[test]
    fn select_filter_rename_remove() {
        let d = toy(6);
        assert_eq!(texts(&d.select(&[4, 1]).unwrap()), ["t4", "t1"]);
        let err = d.select(&[6]).unwrap_err().to_string();
        assert!(err.contains("index 6") && err.contains("toy"), "{err}");
        let odd = d.filter(|r| Ok(r.int("label")? == 1)).unwrap();
        assert_eq!(texts(&odd), ["t1", "t3", "t5"]);
        assert!(d.filter(|r| Ok(r.int("nope")? == 1)).unwrap_err().to_string().contains("no column 'nope'"));
        let r = d.clone().rename_column("label", "labels").unwrap();
        assert_eq!(r.column_names(), ["text", "labels"]);
        assert_eq!(r.label_names("labels").unwrap(), ["a", "b"]);
        assert!(d.clone().rename_column("label", "text").is_err());
        assert_eq!(d.clone().remove_columns(&["text"]).unwrap().column_names(), ["label"]);
        assert_eq!(d.value_counts("label").unwrap(), vec![("a".into(), 3), ("b".into(), 3)]);
    }

    #[test]
    fn map_batched_adds_and_replaces_columns() {
        let d = toy(5);
        let mut sizes = Vec::new();
        let m = d
            .map_batched(2, &[], |b| {
                sizes.push(b.len());
                let lens = match b.column("text")? {
                    Column::Str(v) => v.iter().map(|s| s.len() as i64).collect(),
                    _ => unreachable!(),
                };
                Ok(vec![Field::new("len", Column::Int(lens))])
            })
            .unwrap();
        assert_eq!(sizes, [2, 2, 1]);
        assert_eq!(m.column_names(), ["text", "label", "len"]);
        assert_eq!(m.column("len").unwrap(), &Column::Int(vec![2; 5]));
        // Changing the row count needs all input columns removed.
        let grow = |b: &Dataset| Ok(vec![Field::new("x", Column::Int(vec![0; b.len() * 2]))]);
        assert!(d.map_batched(2, &[], grow).is_err());
        assert_eq!(d.map_batched(2, &["text", "label"], grow).unwrap().len(), 10);
    }

    #[test]
    fn train_test_split_like_datasets() {
        let d = toy(10);
        // datasets: Dataset.from_dict(...).train_test_split(test_size=0.25, seed=42)
        // -> permutation [5, 6, 0, 7, 3, 2, 4, 9, 1, 8]; ceil(2.5) = 3 test rows.
        let s = d.train_test_split(Some(SplitSize::Fraction(0.25)), None, true, Some(42)).unwrap();
        assert_eq!(texts(s.get("test").unwrap()), ["t5", "t6", "t0"]);
        assert_eq!(texts(s.get("train").unwrap()), ["t7", "t3", "t2", "t4", "t9", "t1", "t8"]);
        let s = d.train_test_split(Some(SplitSize::Count(2)), Some(SplitSize::Count(3)), false, None).unwrap();
        assert_eq!(texts(s.get("train").unwrap()), ["t0", "t1", "t2"]);
        assert_eq!(texts(s.get("test").unwrap()), ["t3", "t4"]);
        assert!(d.train_test_split(Some(SplitSize::Count(10)), None, true, Some(1)).is_err());
        assert!(d.train_test_split(Some(SplitSize::Fraction(1.5)), None, true, Some(1)).is_err());
    }

    #[test]
    fn json_columns_infer_types() {
        use serde_json::json;
        assert_eq!(Column::from_json_values(vec![json!(1), json!(2)]), Column::Int(vec![1, 2]));
        assert_eq!(Column::from_json_values(vec![json!(1), json!(2.5)]), Column::Float(vec![1.0, 2.5]));
        assert_eq!(
            Column::from_json_values(vec![json!(["a"]), json!([])]),
            Column::StrList(vec![vec!["a".into()], vec![]])
        );
        assert_eq!(Column::from_json_values(vec![json!([1]), json!([])]), Column::IntList(vec![vec![1], vec![]]));
        assert!(matches!(Column::from_json_values(vec![json!("a"), json!(null)]), Column::Json(_)));
        let mut c = Column::Int(vec![1]);
        c.append(Column::Str(vec!["x".into()]));
        assert_eq!(c, Column::Json(vec![json!(1), json!("x")]));
    }
}
