//! `/predict` bodies: the fields every task shares (one input in the task's field, or
//! `"inputs"`: a list; `"adapter"`), checked here; the task's own options and inputs checked by
//! its [`TaskSpec`]. Every error names the field.

use serde_json::{Map, Value, json};

use super::batcher::Input;

/// What a served task accepts: its input field, how an input is checked, its options.
pub trait TaskSpec: Send + Sync + 'static {
    /// The task's name, as `--task` spells it.
    fn task(&self) -> &'static str;
    /// The field one input comes in (`"text"`, `"image"`).
    fn input_field(&self) -> &'static str {
        "text"
    }
    /// The JSON schema of one input (OpenAPI).
    fn input_schema(&self) -> Value {
        json!({"type": "string", "minLength": 1})
    }
    /// Checks one input; `field` names it in errors (`text`, `inputs[3]`).
    fn input(&self, field: &str, value: &Value) -> Result<Input, String> {
        match value {
            Value::String(t) if !t.trim().is_empty() => Ok(Input::Text(t.clone())),
            Value::String(_) => Err(format!("field \"{field}\" is empty")),
            other => Err(format!("field \"{field}\" must be a string, not {}", kind(other))),
        }
    }
    /// The task's option fields with their JSON schemas (OpenAPI and the unknown-field check).
    fn option_schemas(&self) -> Vec<(&'static str, Value)> {
        Vec::new()
    }
    /// Checks the body's task options (only fields from [`option_schemas`](Self::option_schemas)
    /// reach here) and returns them normalised.
    fn options(&self, _body: &Map<String, Value>) -> Result<Value, String> {
        Ok(Value::Null)
    }
    /// Whether requests with these options may share a model call (`false`: sampling with a
    /// seed, whose result must not depend on other requests).
    fn mergeable(&self, _options: &Value) -> bool {
        true
    }
    /// Whether these options ask for a server-sent-event stream.
    fn streams(&self, _options: &Value) -> bool {
        false
    }
    /// The JSON schema of one output (OpenAPI).
    fn output_schema(&self) -> Value;
    /// The (label, score) pairs an output counts for in `/metrics` (empty: none).
    fn predictions(&self, _output: &Value) -> Vec<(String, f64)> {
        Vec::new()
    }
    /// Whether an output is one label per input (a canary can check it).
    fn has_labels(&self) -> bool {
        false
    }
}

/// The adapters a request may name.
#[derive(Debug, Clone, Default)]
pub struct Adapters {
    /// Loaded adapters' names.
    pub names: Vec<String>,
    /// The one a request without `"adapter"` runs (`None`: the base model).
    pub default: Option<String>,
}

/// A checked `/predict` body.
#[derive(Debug)]
pub struct Parsed {
    /// The inputs.
    pub inputs: Vec<Input>,
    /// One input given in the task's field (answered with one value, not a list).
    pub single: bool,
    /// The adapter to run (`None`: the base model).
    pub adapter: Option<String>,
    /// The task's options.
    pub options: Value,
}

/// A JSON value's kind, for error messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Checks a body's fields; the error is the 422 message.
pub fn parse(
    spec: &dyn TaskSpec,
    adapters: &Adapters,
    map: &Map<String, Value>,
    max_inputs: usize,
) -> Result<Parsed, String> {
    let field = spec.input_field();
    let options = spec.option_schemas();
    if let Some(key) =
        map.keys().find(|k| *k != field && *k != "inputs" && *k != "adapter" && !options.iter().any(|(o, _)| o == k))
    {
        let mut known = vec![field, "inputs", "adapter"];
        known.extend(options.iter().map(|(o, _)| *o));
        return Err(format!("unknown field \"{key}\" (fields: {})", known.join(", ")));
    }
    let (inputs, single) = match (map.get(field), map.get("inputs")) {
        (Some(_), Some(_)) => return Err(format!("give \"{field}\" or \"inputs\", not both")),
        (Some(v), None) => (vec![spec.input(field, v)?], true),
        (None, Some(Value::Array(items))) => {
            if items.is_empty() {
                return Err("field \"inputs\" is an empty list".into());
            }
            if items.len() > max_inputs {
                return Err(format!("field \"inputs\" has {} items; at most {max_inputs}", items.len()));
            }
            let inputs = items
                .iter()
                .enumerate()
                .map(|(i, v)| spec.input(&format!("inputs[{i}]"), v))
                .collect::<Result<_, _>>()?;
            (inputs, false)
        }
        (None, Some(other)) => return Err(format!("field \"inputs\" must be a list, not {}", kind(other))),
        (None, None) => return Err(format!("missing field \"{field}\" (or \"inputs\")")),
    };
    let adapter = match map.get("adapter") {
        None => adapters.default.clone(),
        Some(Value::Null) => None,
        Some(Value::String(a)) if adapters.names.contains(a) => Some(a.clone()),
        Some(Value::String(a)) => {
            return Err(format!("field \"adapter\": no adapter named \"{a}\" (loaded: {:?})", adapters.names));
        }
        Some(other) => return Err(format!("field \"adapter\" must be a string or null, not {}", kind(other))),
    };
    let options = spec.options(map)?;
    if spec.streams(&options) && !single {
        return Err(format!("field \"stream\": streaming answers one \"{field}\", not \"inputs\""));
    }
    Ok(Parsed { inputs, single, adapter, options })
}

/// Reads an optional field as a `T`, naming the field and the expected kind on error.
pub fn optional<T: serde::de::DeserializeOwned>(
    map: &Map<String, Value>,
    field: &str,
    expected: &str,
) -> Result<Option<T>, String> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|_| format!("field \"{field}\" must be {expected}, not {}", kind(v))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Text;
    impl TaskSpec for Text {
        fn task(&self) -> &'static str {
            "text-classification"
        }
        fn option_schemas(&self) -> Vec<(&'static str, Value)> {
            vec![("top_k", json!({"type": "integer"}))]
        }
        fn output_schema(&self) -> Value {
            json!({})
        }
    }

    #[test]
    fn bodies_are_checked_field_by_field() {
        let adapters = Adapters { names: vec!["a".into(), "b".into()], default: Some("a".into()) };
        let parse = |b: &str| {
            let v: Value = serde_json::from_str(b).unwrap();
            parse(&Text, &adapters, v.as_object().unwrap(), 4)
        };
        let p = parse(r#"{"text": "hello"}"#).unwrap();
        assert!(p.single && p.adapter.as_deref() == Some("a"));
        assert_eq!(parse(r#"{"inputs": ["a", "b"], "adapter": "b"}"#).unwrap().adapter.as_deref(), Some("b"));
        assert_eq!(parse(r#"{"text": "x", "adapter": null}"#).unwrap().adapter, None);
        for (body, word) in [
            (r#"{"text": 3}"#, "\"text\" must be a string"),
            (r#"{"text": ""}"#, "\"text\" is empty"),
            (r#"{"text": "a", "inputs": ["b"]}"#, "not both"),
            (r#"{"inputs": []}"#, "empty list"),
            (r#"{"inputs": ["a", 1]}"#, "inputs[1]"),
            (r#"{"inputs": ["a","b","c","d","e"]}"#, "at most 4"),
            (r#"{"txt": "a"}"#, "unknown field \"txt\""),
            (r#"{"text": "a", "adapter": "c"}"#, "no adapter named \"c\""),
            (r#"{"text": "a", "adapter": 1}"#, "\"adapter\" must be"),
            ("{}", "missing field \"text\""),
        ] {
            let e = parse(body).unwrap_err();
            assert!(e.contains(word), "{body}: {e}");
        }
    }
}
