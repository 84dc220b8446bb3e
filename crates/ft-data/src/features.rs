//! Column types as `datasets` describes them (`Features`): `Value(dtype)`, `ClassLabel(names)`,
//! `Sequence`/`List` of a feature, `Image`; read from (and written as) the JSON that `datasets`
//! stores under the `huggingface` key of a Parquet file's schema metadata.

use serde_json::{Value, json};

/// The type of one column, with `datasets`' vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub enum Feature {
    /// A scalar: `string`, `int64`, `float64`, `bool`, ...
    Value(String),
    /// Integer class ids with names (`ClassLabel(names=[...])`).
    ClassLabel {
        /// Name of each class id, in id order.
        names: Vec<String>,
    },
    /// A variable-length list of a feature (`Sequence`, `List`, `LargeList`).
    List(Box<Feature>),
    /// An image: a file path and/or the encoded bytes (`datasets.Image`).
    Image,
    /// Any other feature (structs, audio, translations, ...), kept as `datasets` wrote it.
    Other(Value),
}

impl Feature {
    /// Reads a feature from `datasets`' JSON (`{"_type": "Value", "dtype": "string"}`, ...),
    /// including the legacy forms (`[feature]` for a list, `Sequence` of a dict).
    pub fn from_hf_json(v: &Value) -> Self {
        match v {
            Value::Array(items) if items.len() == 1 => Self::List(Box::new(Self::from_hf_json(&items[0]))),
            Value::Object(map) => match map.get("_type").and_then(Value::as_str) {
                Some("Value") => Self::Value(map.get("dtype").and_then(Value::as_str).unwrap_or("null").to_string()),
                Some("ClassLabel") => {
                    let names = match map.get("names").and_then(Value::as_array) {
                        Some(names) => names.iter().map(|n| n.as_str().unwrap_or_default().to_string()).collect(),
                        None => {
                            let n = map.get("num_classes").and_then(Value::as_u64).unwrap_or(0);
                            (0..n).map(|i| i.to_string()).collect()
                        }
                    };
                    Self::ClassLabel { names }
                }
                Some("Sequence" | "List" | "LargeList") => match map.get("feature") {
                    Some(inner @ (Value::Object(_) | Value::Array(_))) if is_feature(inner) => {
                        Self::List(Box::new(Self::from_hf_json(inner)))
                    }
                    _ => Self::Other(v.clone()),
                },
                Some("Image") => Self::Image,
                _ => Self::Other(v.clone()),
            },
            _ => Self::Other(v.clone()),
        }
    }

    /// The JSON `datasets` writes for this feature.
    pub fn to_hf_json(&self) -> Value {
        match self {
            Self::Value(dtype) => json!({"dtype": dtype, "_type": "Value"}),
            Self::ClassLabel { names } => json!({"names": names, "_type": "ClassLabel"}),
            Self::List(inner) => json!({"feature": inner.to_hf_json(), "_type": "Sequence"}),
            Self::Image => json!({"_type": "Image"}),
            Self::Other(v) => v.clone(),
        }
    }

    /// Class names of a `ClassLabel` or of a list of `ClassLabel` (NER tags).
    pub fn class_names(&self) -> Option<&[String]> {
        match self {
            Self::ClassLabel { names } => Some(names),
            Self::List(inner) => match inner.as_ref() {
                Self::ClassLabel { names } => Some(names),
                _ => None,
            },
            _ => None,
        }
    }

    /// A short description, as `datasets` prints features: `string`, `ClassLabel(4)`,
    /// `list<ClassLabel(9)>`.
    pub fn describe(&self) -> String {
        match self {
            Self::Value(dtype) => dtype.clone(),
            Self::ClassLabel { names } => format!("ClassLabel({})", names.len()),
            Self::List(inner) => format!("list<{}>", inner.describe()),
            Self::Image => "Image".into(),
            Self::Other(v) => v.get("_type").and_then(Value::as_str).unwrap_or("struct").to_string(),
        }
    }
}

fn is_feature(v: &Value) -> bool {
    match v {
        Value::Array(items) => items.len() == 1,
        Value::Object(map) => map.contains_key("_type"),
        _ => false,
    }
}

/// Reads the features from the `huggingface` schema-metadata value of a Parquet file
/// (`{"info": {"features": {...}}}`), in column order.
pub fn parse_hf_metadata(text: &str) -> Result<Vec<(String, Feature)>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid 'huggingface' metadata: {e}"))?;
    let features = v
        .get("info")
        .and_then(|i| i.get("features"))
        .and_then(Value::as_object)
        .ok_or_else(|| "'huggingface' metadata has no info.features".to_string())?;
    Ok(features.iter().map(|(k, f)| (k.clone(), Feature::from_hf_json(f))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_datasets_features() {
        let meta = r#"{"info": {"features": {"text": {"dtype": "string", "_type": "Value"},
            "label": {"names": ["neg", "pos"], "_type": "ClassLabel"},
            "tags": {"feature": {"names": ["O", "B-PER"], "_type": "ClassLabel"}, "_type": "Sequence"},
            "tokens": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"},
            "legacy": [{"dtype": "int64", "_type": "Value"}],
            "img": {"_type": "Image"}}}}"#;
        let f = parse_hf_metadata(meta).unwrap();
        assert_eq!(f[0], ("text".into(), Feature::Value("string".into())));
        assert_eq!(f[1].1.class_names().unwrap(), ["neg", "pos"]);
        assert_eq!(f[2].1.class_names().unwrap(), ["O", "B-PER"]);
        assert_eq!(f[2].1.describe(), "list<ClassLabel(2)>");
        assert_eq!(f[3].1, Feature::List(Box::new(Feature::Value("string".into()))));
        assert_eq!(f[4].1, Feature::List(Box::new(Feature::Value("int64".into()))));
        assert_eq!(f[5].1, Feature::Image);
        for (_, feat) in &f {
            assert_eq!(&Feature::from_hf_json(&feat.to_hf_json()), feat);
        }
        assert!(parse_hf_metadata("{}").is_err());
        assert!(parse_hf_metadata("not json").is_err());
    }
}
