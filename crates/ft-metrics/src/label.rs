//! Class labels as they come from JSON: integers or strings.

use std::fmt;

/// A class label: an integer or a string, as scikit-learn accepts them.
///
/// Labels of one input must all be of one kind (scikit-learn refuses a mix of string and number
/// labels, and so does [`crate::evaluate`]). Integers sort numerically and strings by code point, as
/// `numpy.unique` sorts them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    /// An integer label, e.g. a class id.
    Int(i64),
    /// A string label, e.g. `"positive"`.
    Str(String),
}

impl Label {
    /// The label's kind, for error messages: `"integer"` or `"string"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Label::Int(_) => "integer",
            Label::Str(_) => "string",
        }
    }

    /// The label as JSON (a number or a string).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Label::Int(i) => serde_json::Value::from(*i),
            Label::Str(s) => serde_json::Value::from(s.as_str()),
        }
    }
}

/// Writes the label as Python's `"%s" % label` does (the default target names of a
/// classification report): `3`, `positive`.
impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Int(i) => write!(f, "{i}"),
            Label::Str(s) => f.write_str(s),
        }
    }
}

impl From<i64> for Label {
    fn from(value: i64) -> Self {
        Label::Int(value)
    }
}

impl From<&str> for Label {
    fn from(value: &str) -> Self {
        Label::Str(value.to_string())
    }
}

impl From<String> for Label {
    fn from(value: String) -> Self {
        Label::Str(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn orders_and_prints_like_numpy_and_python() {
        let mut v = vec![Label::Int(10), Label::Int(-2), Label::Int(3)];
        v.sort();
        assert_eq!(v, vec![Label::Int(-2), Label::Int(3), Label::Int(10)]);
        let mut s = [Label::from("b"), Label::from("B"), Label::from("a")];
        s.sort();
        assert_eq!(s.iter().map(ToString::to_string).collect::<Vec<_>>(), ["B", "a", "b"]);
        assert_eq!(Label::Int(7).to_json(), serde_json::json!(7));
    }
}
