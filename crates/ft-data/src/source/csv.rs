//! CSV and TSV files, as `datasets`' `csv` builder (pandas `read_csv`) reads them: a header row by
//! default, or given column names for files without one (the original AG News CSV: class,
//! title, description). RFC 4180 quoting; no backslash escapes (a `\n` in a field stays two
//! characters, as in Hugging Face's copy of AG News).
//!
//! Column types are inferred like pandas: all integers → `Int`, all numbers → `Float`, else
//! `Str`. A numeric column with empty cells becomes `Json` with `null`s (pandas' `NaN`).

use std::path::Path;

use serde_json::Value;

use super::{OnInvalid, Skipped};
use crate::dataset::{Column, Dataset, Field, RowRef};
use crate::{DataError, Result};

/// How to read a CSV file.
#[derive(Debug, Clone, Default)]
pub struct CsvOptions {
    /// Whether the first row names the columns. Default: yes, unless `column_names` is given.
    pub header: Option<bool>,
    /// Column names for a file without a header row (default `column_0`, `column_1`, ...).
    pub column_names: Option<Vec<String>>,
    /// Field delimiter; default `,` (and tab for `.tsv` files).
    pub delimiter: Option<u8>,
}

/// Reads a CSV file; rows with the wrong number of fields are errors naming the line, or
/// skipped and reported with [`OnInvalid::Skip`].
pub fn read(path: &Path, options: &CsvOptions, on_invalid: OnInvalid, skipped: &mut Vec<Skipped>) -> Result<Dataset> {
    let delimiter = options
        .delimiter
        .unwrap_or_else(|| if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tsv")) { b'\t' } else { b',' });
    let header = options.header.unwrap_or(options.column_names.is_none());
    let file = std::fs::File::open(path).map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
    let mut reader = csv::ReaderBuilder::new().has_headers(false).delimiter(delimiter).flexible(true).from_reader(file);
    let mut records = reader.records();
    let line_err = |line: u64, message: String| DataError::Line { path: path.to_path_buf(), line, message };
    let csv_err = |e: csv::Error| {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        match e.kind() {
            csv::ErrorKind::Utf8 { .. } => line_err(line, "invalid UTF-8".into()),
            _ => line_err(line, e.to_string()),
        }
    };
    let mut names: Vec<String> = match &options.column_names {
        Some(n) => n.clone(),
        None => Vec::new(),
    };
    if header {
        match records.next() {
            Some(rec) => {
                let rec = rec.map_err(csv_err)?;
                if options.column_names.is_none() {
                    names = rec.iter().map(|s| s.trim().to_string()).collect();
                }
            }
            None => {
                return Err(DataError::Format {
                    path: path.to_path_buf(),
                    message: "empty CSV file (no header row)".into(),
                });
            }
        }
    }
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    let mut origins = Vec::new();
    let mut row = 0u64;
    for rec in records {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let err = csv_err(e);
                if on_invalid == OnInvalid::Skip {
                    skipped.push(Skipped { origin: format!("{}", path.display()), reason: err.to_string() });
                    continue;
                }
                return Err(err);
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if names.is_empty() && !header && options.column_names.is_none() {
            names = (0..rec.len()).map(|i| format!("column_{i}")).collect();
            cells = vec![Vec::new(); names.len()];
        }
        if rec.len() != names.len() {
            let message = format!("{} fields, expected {} ({})", rec.len(), names.len(), names.join(", "));
            if on_invalid == OnInvalid::Skip {
                skipped.push(Skipped { origin: format!("{}:{line}", path.display()), reason: message });
                continue;
            }
            return Err(line_err(line, message));
        }
        for (c, v) in cells.iter_mut().zip(rec.iter()) {
            c.push(v.to_string());
        }
        origins.push(RowRef { file: 0, row, line });
        row += 1;
    }
    let fields = names.into_iter().zip(cells).map(|(n, c)| Field::new(n, infer(c))).collect();
    let name = path.display().to_string();
    Dataset::with_origins(name.clone(), fields, vec![name], origins)
}

fn has_digit(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
}

/// pandas-like type inference for one column of cells.
fn infer(cells: Vec<String>) -> Column {
    let non_empty = || cells.iter().map(|s| s.trim()).filter(|s| !s.is_empty());
    let any_empty = cells.iter().any(|s| s.trim().is_empty());
    let all_int = non_empty().count() > 0 && non_empty().all(|s| s.parse::<i64>().is_ok());
    let all_float = non_empty().count() > 0 && non_empty().all(|s| has_digit(s) && s.parse::<f64>().is_ok());
    if all_int && !any_empty {
        return Column::Int(cells.iter().filter_map(|s| s.trim().parse().ok()).collect());
    }
    if all_float && !any_empty {
        return Column::Float(cells.iter().filter_map(|s| s.trim().parse().ok()).collect());
    }
    if all_int || all_float {
        return Column::Json(
            cells
                .iter()
                .map(|s| {
                    let s = s.trim();
                    if s.is_empty() {
                        Value::Null
                    } else if let Ok(i) = s.parse::<i64>() {
                        Value::from(i)
                    } else {
                        s.parse::<f64>().map(Value::from).unwrap_or(Value::Null)
                    }
                })
                .collect(),
        );
    }
    Column::Str(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headerless_with_names_and_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "\"3\",\"Title, one\",\"a \\n b\"\n\"1\",\"T2\",\"multi\nline\"\n").unwrap();
        let opts = CsvOptions {
            column_names: Some(vec!["class".into(), "title".into(), "description".into()]),
            ..Default::default()
        };
        let mut skipped = Vec::new();
        let d = read(&p, &opts, OnInvalid::Error, &mut skipped).unwrap();
        assert_eq!(d.column("class").unwrap(), &Column::Int(vec![3, 1]));
        assert_eq!(d.column("title").unwrap(), &Column::Str(vec!["Title, one".into(), "T2".into()]));
        assert_eq!(d.column("description").unwrap(), &Column::Str(vec!["a \\n b".into(), "multi\nline".into()]));
        assert_eq!(d.origins()[1].line, 2);
    }

    #[test]
    fn header_types_and_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "text,label,score\nhello,0,0.5\nworld,1,\nbad,row\n").unwrap();
        let mut skipped = Vec::new();
        let err = read(&p, &CsvOptions::default(), OnInvalid::Error, &mut skipped).unwrap_err().to_string();
        assert!(err.contains("t.csv:4") && err.contains("2 fields, expected 3"), "{err}");
        let d = read(&p, &CsvOptions::default(), OnInvalid::Skip, &mut skipped).unwrap();
        assert_eq!(skipped.len(), 1);
        assert_eq!(d.len(), 2);
        assert_eq!(d.column("label").unwrap(), &Column::Int(vec![0, 1]));
        assert!(matches!(d.column("score").unwrap(), Column::Json(v) if v[1].is_null()));
    }
}
