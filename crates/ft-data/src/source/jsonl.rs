//! JSON Lines files (one object per line), and JSON files holding an array of objects, as
//! `datasets`' `json` builder reads them. Columns are the keys in order of first appearance; a
//! key missing from a row is `null` there. Types are inferred per column (see
//! [`Column::from_json_values`]).

use std::path::Path;

use serde_json::{Map, Value};

use super::{OnInvalid, Skipped};
use crate::dataset::{Column, Dataset, Field, RowRef};
use crate::{DataError, Result};

/// Reads a `.jsonl` / `.json` file. Lines that are not JSON objects are errors naming the line
/// (or skipped with [`OnInvalid::Skip`]); blank lines are ignored.
pub fn read(path: &Path, on_invalid: OnInvalid, skipped: &mut Vec<Skipped>) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        DataError::Line { path: path.to_path_buf(), line, message: "invalid UTF-8".into() }
    })?;
    let mut rows: Vec<(Map<String, Value>, RowRef)> = Vec::new();
    if text.trim_start().starts_with('[') {
        let v: Value = serde_json::from_str(text).map_err(|e| DataError::Line {
            path: path.to_path_buf(),
            line: e.line() as u64,
            message: format!("not valid JSON: {e}"),
        })?;
        for (i, item) in v.as_array().into_iter().flatten().enumerate() {
            match item {
                Value::Object(m) => rows.push((m.clone(), RowRef { file: 0, row: rows.len() as u64, line: 0 })),
                other => {
                    let message = format!("item {i} is {}, expected an object", kind(other));
                    if on_invalid == OnInvalid::Skip {
                        skipped.push(Skipped { origin: path.display().to_string(), reason: message });
                        continue;
                    }
                    return Err(DataError::Format { path: path.to_path_buf(), message });
                }
            }
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            let lineno = i as u64 + 1;
            if line.trim().is_empty() {
                continue;
            }
            let problem = match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(m)) => {
                    rows.push((m, RowRef { file: 0, row: rows.len() as u64, line: lineno }));
                    continue;
                }
                Ok(other) => format!("expected a JSON object, found {}", kind(&other)),
                Err(e) => format!("not valid JSON: {e}"),
            };
            if on_invalid == OnInvalid::Skip {
                skipped.push(Skipped { origin: format!("{}:{lineno}", path.display()), reason: problem });
                continue;
            }
            return Err(DataError::Line { path: path.to_path_buf(), line: lineno, message: problem });
        }
    }
    let mut names: Vec<String> = Vec::new();
    for (m, _) in &rows {
        for k in m.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    let fields = names
        .iter()
        .map(|n| {
            Field::new(
                n.clone(),
                Column::from_json_values(rows.iter().map(|(m, _)| m.get(n).cloned().unwrap_or(Value::Null)).collect()),
            )
        })
        .collect();
    let name = path.display().to_string();
    Dataset::with_origins(name.clone(), fields, vec![name], rows.into_iter().map(|(_, r)| r).collect())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_and_names_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        std::fs::write(&p, "{\"text\": \"a\", \"label\": 1}\n\n{\"text\": \"b\"}\n[1]\n").unwrap();
        let mut skipped = Vec::new();
        let err = read(&p, OnInvalid::Error, &mut skipped).unwrap_err().to_string();
        assert!(err.contains("d.jsonl:4") && err.contains("an array"), "{err}");
        let d = read(&p, OnInvalid::Skip, &mut skipped).unwrap();
        assert_eq!(skipped.len(), 1);
        assert_eq!(d.column_names(), ["text", "label"]);
        assert_eq!(d.column("text").unwrap(), &Column::Str(vec!["a".into(), "b".into()]));
        assert!(matches!(d.column("label").unwrap(), Column::Json(v) if v[1].is_null()));
        assert_eq!(d.origin(1), format!("{}: row 1 (line 3)", p.display()));
        let a = dir.path().join("d.json");
        std::fs::write(&a, "[{\"x\": [1, 2]}, {\"x\": []}]").unwrap();
        let d = read(&a, OnInvalid::Error, &mut skipped).unwrap();
        assert_eq!(d.column("x").unwrap(), &Column::IntList(vec![vec![1, 2], vec![]]));
    }
}
