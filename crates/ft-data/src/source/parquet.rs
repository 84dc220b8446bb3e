//! Parquet files (the Hub's storage format for datasets) through arrow-rs.
//!
//! Column types map as: strings → `Str`, integers → `Int`, floats → `Float`, booleans → `Bool`,
//! lists of those → `StrList`/`IntList`/`FloatList`, `datasets`' image struct
//! (`{bytes, path}`) → `Image`; a column with nulls, or another nested type, becomes `Json`.
//! Column features (ClassLabel names, ...) come from the `huggingface` key of the file's
//! metadata, as `datasets` wrote it; without it each column gets its type's default feature.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use crate::dataset::{Column, Dataset, Field, ImageRef, RowRef};
use crate::features::{Feature, parse_hf_metadata};
use crate::{DataError, Result};

/// Reads a whole Parquet file.
///
/// parquet-rs and arrow-rs panic on some corrupt files (deep in page and level decoding, found by
/// `cargo xtask fuzz`): such a panic is caught here and becomes an error naming the file; the
/// panic hook stays silent for it (no "panicked at" or backtrace on the user's screen).
pub fn read(path: &Path) -> Result<Dataset> {
    match catch_quietly(|| read_file(path)) {
        Ok(result) => result,
        Err(message) => Err(DataError::Format {
            path: path.to_path_buf(),
            message: format!("not a readable Parquet file (corrupt?): the Parquet decoder failed: {message}"),
        }),
    }
}

thread_local! {
    /// Whether a panic on this thread is being caught by [`catch_quietly`].
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into its message. The process's panic hook is wrapped once so that
/// it says nothing for panics caught here (on this thread); every other panic is reported as
/// before.
fn catch_quietly<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    static WRAP_HOOK: std::sync::Once = std::sync::Once::new();
    WRAP_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    })
}

fn read_file(path: &Path) -> Result<Dataset> {
    let fmt_err = |message: String| DataError::Format { path: path.to_path_buf(), message };
    let file = std::fs::File::open(path).map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| fmt_err(format!("not a readable Parquet file: {e}")))?;
    // parquet-rs panics on a column chunk with a negative offset or size (`byte_range`) when
    // reading it: such a footer is refused here.
    for (g, group) in builder.metadata().row_groups().iter().enumerate() {
        for c in group.columns() {
            if c.data_page_offset() < 0 || c.dictionary_page_offset().is_some_and(|o| o < 0) || c.compressed_size() < 0
            {
                return Err(fmt_err(format!(
                    "not a readable Parquet file: row group {g}, column '{}' has a negative offset or size \
                     (a corrupt footer)",
                    c.column_path()
                )));
            }
        }
    }
    let hf_features: Vec<(String, Feature)> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == "huggingface"))
        .and_then(|k| k.value.as_deref())
        .map(|v| match parse_hf_metadata(v) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(file = %path.display(), "{e}; using the Arrow types");
                Vec::new()
            }
        })
        .unwrap_or_default();
    let schema = builder.schema().clone();
    let reader = builder.with_batch_size(8192).build().map_err(|e| fmt_err(e.to_string()))?;
    let mut columns: Vec<Option<Column>> = vec![None; schema.fields().len()];
    let mut skipped: Vec<bool> = vec![false; schema.fields().len()];
    let mut rows = 0usize;
    for batch in reader {
        let batch = batch.map_err(|e| fmt_err(format!("reading rows after row {rows}: {e}")))?;
        for (i, arr) in batch.columns().iter().enumerate() {
            if skipped[i] {
                continue;
            }
            match array_to_column(arr) {
                Some(c) => match &mut columns[i] {
                    Some(existing) => existing.append(c),
                    slot => *slot = Some(c),
                },
                None => {
                    tracing::warn!(
                        file = %path.display(),
                        "column '{}' has type {} which ft-data does not read; it is left out",
                        schema.field(i).name(),
                        arr.data_type()
                    );
                    skipped[i] = true;
                    columns[i] = None;
                }
            }
        }
        rows += batch.num_rows();
    }
    let mut fields = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if skipped[i] {
            continue;
        }
        let column = columns[i].take().unwrap_or_else(|| empty_column(f.data_type()));
        let feature = hf_features
            .iter()
            .find(|(n, _)| n == f.name())
            .map(|(_, feat)| feat.clone())
            .unwrap_or_else(|| column.default_feature());
        fields.push(Field::with_feature(f.name().clone(), feature, column));
    }
    let name = path.display().to_string();
    let origins = (0..rows as u64).map(|row| RowRef { file: 0, row, line: 0 }).collect();
    Dataset::with_origins(name.clone(), fields, vec![name], origins)
}

fn empty_column(dt: &DataType) -> Column {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Column::Str(Vec::new()),
        dt if dt.is_integer() => Column::Int(Vec::new()),
        dt if dt.is_floating() => Column::Float(Vec::new()),
        _ => Column::Json(Vec::new()),
    }
}

macro_rules! prim {
    ($arr:expr, $t:ty, $conv:expr) => {
        $arr.as_primitive::<$t>().values().iter().map($conv).collect()
    };
}

/// A typed column for an array without nulls; `Json` for nulls or nested types; `None` for
/// types this reader does not handle.
fn array_to_column(arr: &ArrayRef) -> Option<Column> {
    if arr.null_count() > 0 {
        return json_column(arr);
    }
    Some(match arr.data_type() {
        DataType::Utf8 => {
            Column::Str(arr.as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect())
        }
        DataType::LargeUtf8 => {
            Column::Str(arr.as_string::<i64>().iter().map(|s| s.unwrap_or_default().to_string()).collect())
        }
        DataType::Utf8View => {
            Column::Str(arr.as_string_view().iter().map(|s| s.unwrap_or_default().to_string()).collect())
        }
        DataType::Boolean => Column::Bool(arr.as_boolean().iter().map(|b| b.unwrap_or(false)).collect()),
        DataType::Int8 => Column::Int(prim!(arr, Int8Type, |&v| v as i64)),
        DataType::Int16 => Column::Int(prim!(arr, Int16Type, |&v| v as i64)),
        DataType::Int32 => Column::Int(prim!(arr, Int32Type, |&v| v as i64)),
        DataType::Int64 => Column::Int(prim!(arr, Int64Type, |&v| v)),
        DataType::UInt8 => Column::Int(prim!(arr, UInt8Type, |&v| v as i64)),
        DataType::UInt16 => Column::Int(prim!(arr, UInt16Type, |&v| v as i64)),
        DataType::UInt32 => Column::Int(prim!(arr, UInt32Type, |&v| v as i64)),
        DataType::UInt64 => Column::Int(prim!(arr, UInt64Type, |&v| v as i64)),
        DataType::Float16 => Column::Float(prim!(arr, Float16Type, |&v| f64::from(v))),
        DataType::Float32 => Column::Float(prim!(arr, Float32Type, |&v| v as f64)),
        DataType::Float64 => Column::Float(prim!(arr, Float64Type, |&v| v)),
        DataType::List(_) | DataType::LargeList(_) => return list_column(arr),
        DataType::Struct(_) if is_image_struct(arr) => {
            let s = arr.as_struct();
            let bytes = s.column_by_name("bytes")?;
            let paths = s.column_by_name("path")?;
            Column::Image(
                (0..arr.len())
                    .map(|i| ImageRef {
                        bytes: binary_at(bytes, i),
                        path: value_at(paths, i).and_then(|v| v.as_str().map(String::from)),
                    })
                    .collect(),
            )
        }
        _ => return json_column(arr),
    })
}

fn is_image_struct(arr: &ArrayRef) -> bool {
    match arr.data_type() {
        DataType::Struct(fields) => {
            fields.len() == 2 && fields.iter().any(|f| f.name() == "bytes") && fields.iter().any(|f| f.name() == "path")
        }
        _ => false,
    }
}

fn binary_at(arr: &ArrayRef, i: usize) -> Option<Vec<u8>> {
    if arr.is_null(i) {
        return None;
    }
    match arr.data_type() {
        DataType::Binary => Some(arr.as_binary::<i32>().value(i).to_vec()),
        DataType::LargeBinary => Some(arr.as_binary::<i64>().value(i).to_vec()),
        DataType::BinaryView => Some(arr.as_binary_view().value(i).to_vec()),
        _ => None,
    }
}

/// List columns: the child values as one typed column, cut at the offsets.
fn list_column(arr: &ArrayRef) -> Option<Column> {
    let (values, offsets): (ArrayRef, Vec<usize>) = match arr.data_type() {
        DataType::List(_) => {
            let l = arr.as_list::<i32>();
            (l.values().clone(), l.value_offsets().iter().map(|&o| o as usize).collect())
        }
        DataType::LargeList(_) => {
            let l = arr.as_list::<i64>();
            (l.values().clone(), l.value_offsets().iter().map(|&o| o as usize).collect())
        }
        _ => return None,
    };
    if values.null_count() > 0 {
        return json_column(arr);
    }
    let inner = array_to_column(&values)?;
    let cut = |n: usize| offsets.windows(2).take(n).map(|w| (w[0], w[1]));
    let n = arr.len();
    Some(match inner {
        Column::Str(v) => Column::StrList(cut(n).map(|(a, b)| v[a..b].to_vec()).collect()),
        Column::Int(v) => Column::IntList(cut(n).map(|(a, b)| v[a..b].to_vec()).collect()),
        Column::Float(v) => Column::FloatList(cut(n).map(|(a, b)| v[a..b].to_vec()).collect()),
        _ => return json_column(arr),
    })
}

fn json_column(arr: &ArrayRef) -> Option<Column> {
    if !supported(arr.data_type()) {
        return None;
    }
    Some(Column::Json((0..arr.len()).map(|i| value_at(arr, i).unwrap_or(Value::Null)).collect()))
}

/// Whether [`value_at`] can express values of this type.
fn supported(dt: &DataType) -> bool {
    match dt {
        DataType::Null
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Boolean
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView => true,
        dt if dt.is_integer() || dt.is_floating() => true,
        DataType::List(f) | DataType::LargeList(f) => supported(f.data_type()),
        DataType::Struct(fields) => fields.iter().all(|f| supported(f.data_type())),
        _ => false,
    }
}

/// Value `i` of any supported array as JSON (`None` for null or unsupported types).
fn value_at(arr: &ArrayRef, i: usize) -> Option<Value> {
    if arr.is_null(i) {
        return None;
    }
    Some(match arr.data_type() {
        DataType::Utf8 => Value::from(arr.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Value::from(arr.as_string::<i64>().value(i)),
        DataType::Utf8View => Value::from(arr.as_string_view().value(i)),
        DataType::Boolean => Value::from(arr.as_boolean().value(i)),
        DataType::Int8 => Value::from(arr.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => Value::from(arr.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => Value::from(arr.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => Value::from(arr.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Value::from(arr.as_primitive::<UInt8Type>().value(i)),
        DataType::UInt16 => Value::from(arr.as_primitive::<UInt16Type>().value(i)),
        DataType::UInt32 => Value::from(arr.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => Value::from(arr.as_primitive::<UInt64Type>().value(i)),
        DataType::Float16 => Value::from(f64::from(arr.as_primitive::<Float16Type>().value(i))),
        DataType::Float32 => Value::from(arr.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => Value::from(arr.as_primitive::<Float64Type>().value(i)),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            Value::from(format!("<{} bytes>", binary_at(arr, i).map(|b| b.len()).unwrap_or(0)))
        }
        DataType::List(_) => {
            let l = arr.as_list::<i32>().value(i);
            Value::Array((0..l.len()).map(|j| value_at(&l, j).unwrap_or(Value::Null)).collect())
        }
        DataType::LargeList(_) => {
            let l = arr.as_list::<i64>().value(i);
            Value::Array((0..l.len()).map(|j| value_at(&l, j).unwrap_or(Value::Null)).collect())
        }
        DataType::Struct(fields) => {
            let s = arr.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), value_at(c, i).unwrap_or(Value::Null)))
                    .collect(),
            )
        }
        _ => return None,
    })
}
