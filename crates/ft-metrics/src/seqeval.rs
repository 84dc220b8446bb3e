//! Entity-level precision, recall and F1 of sequence labelling, as `seqeval` 1.2 computes them and
//! as Hugging Face evaluate's `seqeval` metric reports them.
//!
//! Two modes:
//! - the default, conlleval-compatible mode ([`get_entities`]): lenient chunking that accepts any
//!   tag, where e.g. an `I-` tag without a `B-` starts an entity and a change of type ends one;
//! - `mode=strict` with a tagging [`Scheme`] (IOB1, IOB2, IOE1, IOE2, IOBES, BILOU; auto-detected
//!   from the references when not given, as seqeval does), where only well-formed chunks count and
//!   a tag whose prefix the scheme does not allow is an error.
//!
//! The report has, per entity type (sorted), `precision`, `recall`, `f1` and `number` (the support),
//! then `overall_precision`, `overall_recall`, `overall_f1` (micro averages) and `overall_accuracy`
//! (token accuracy).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::classification::{ZeroDivision, float_json};
use crate::error::{MetricsError, Result, check_same_len};

/// A tagging scheme for strict mode (`seqeval.scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Inside/outside/begin, `B-` only between two adjacent entities of one type.
    Iob1,
    /// Inside/outside/begin, every entity starts with `B-`.
    Iob2,
    /// Inside/outside/end, `E-` only between two adjacent entities of one type.
    Ioe1,
    /// Inside/outside/end, every entity ends with `E-`.
    Ioe2,
    /// Begin/inside/end/single/outside.
    Iobes,
    /// Begin/inside/last/unit/outside.
    Bilou,
}

impl Scheme {
    /// The scheme's name as seqeval spells it.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Iob1 => "IOB1",
            Scheme::Iob2 => "IOB2",
            Scheme::Ioe1 => "IOE1",
            Scheme::Ioe2 => "IOE2",
            Scheme::Iobes => "IOBES",
            Scheme::Bilou => "BILOU",
        }
    }

    fn allowed(self) -> u8 {
        use prefix::*;
        match self {
            Scheme::Iob1 | Scheme::Iob2 => I | O | B,
            Scheme::Ioe1 | Scheme::Ioe2 => I | O | E,
            Scheme::Iobes => I | O | B | E | S,
            Scheme::Bilou => B | I | L | O | U,
        }
    }

    /// (previous prefixes, current prefixes, type condition) patterns: start, inside, end.
    fn patterns(self) -> (&'static [Pattern], &'static [Pattern], &'static [Pattern]) {
        use TypeCond::*;
        use prefix::*;
        match self {
            Scheme::Iob1 => (
                &[(O, I, Any), (I, I, Diff), (B, I, Any), (I, B, Same), (B, B, Same)],
                &[(B, I, Same), (I, I, Same)],
                &[(I, I, Diff), (I, O, Any), (I, B, Any), (B, O, Any), (B, I, Diff), (B, B, Same)],
            ),
            Scheme::Ioe1 => (
                &[(O, I, Any), (I, I, Diff), (E, I, Any), (E, E, Same)],
                &[(I, I, Same), (I, E, Same)],
                &[(I, I, Diff), (I, O, Any), (I, E, Diff), (E, I, Same), (E, E, Same)],
            ),
            Scheme::Iob2 => (
                &[(ANY, B, Any)],
                &[(B, I, Same), (I, I, Same)],
                &[(I, O, Any), (I, I, Diff), (I, B, Any), (B, O, Any), (B, I, Diff), (B, B, Any)],
            ),
            Scheme::Ioe2 => (
                &[(O, I, Any), (O, E, Any), (E, I, Any), (E, E, Any), (I, I, Diff), (I, E, Diff)],
                &[(I, E, Same), (I, I, Same)],
                &[(E, ANY, Any)],
            ),
            Scheme::Iobes => (
                &[(ANY, B, Any), (ANY, S, Any)],
                &[(B, I, Same), (B, E, Same), (I, I, Same), (I, E, Same)],
                &[(S, ANY, Any), (E, ANY, Any)],
            ),
            Scheme::Bilou => (
                &[(ANY, B, Any), (ANY, U, Any)],
                &[(B, I, Same), (B, L, Same), (I, I, Same), (I, L, Same)],
                &[(U, ANY, Any), (L, ANY, Any)],
            ),
        }
    }
}

impl FromStr for Scheme {
    type Err = MetricsError;

    /// Reads `IOB1`, `IOB2`, `IOE1`, `IOE2`, `IOBES` or `BILOU`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "IOB1" => Ok(Scheme::Iob1),
            "IOB2" => Ok(Scheme::Iob2),
            "IOE1" => Ok(Scheme::Ioe1),
            "IOE2" => Ok(Scheme::Ioe2),
            "IOBES" => Ok(Scheme::Iobes),
            "BILOU" => Ok(Scheme::Bilou),
            other => Err(MetricsError::arg(
                "scheme",
                format!("scheme should be one of [IOB1, IOB2, IOE1, IOE2, IOBES, BILOU], got `{other}`"),
            )),
        }
    }
}

/// How entities are read from the tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// conlleval-compatible lenient chunking (seqeval's default, `mode=None`).
    #[default]
    Default,
    /// Strict chunking by a [`Scheme`] (`mode="strict"`).
    Strict,
}

/// Options of [`seqeval`], as evaluate's `seqeval` takes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqevalOptions {
    /// The chunking mode.
    pub mode: Mode,
    /// The scheme for strict mode (auto-detected from the references when `None`). Ignored in the
    /// default mode, as seqeval ignores it.
    pub scheme: Option<Scheme>,
    /// Tags carry their prefix at the end (`PER-B`) instead of the start (`B-PER`).
    pub suffix: bool,
    /// The value of a score whose denominator is zero; seqeval treats `nan` like `1`.
    pub zero_division: ZeroDivision,
}

/// The scores of one entity type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntityScores {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1 score.
    pub f1: f64,
    /// The number of entities of this type in the references.
    pub number: usize,
}

/// evaluate's `seqeval` result.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqevalReport {
    /// Per entity type, sorted by type name.
    pub types: Vec<(String, EntityScores)>,
    /// Micro-averaged precision over all entities.
    pub overall_precision: f64,
    /// Micro-averaged recall.
    pub overall_recall: f64,
    /// Micro-averaged F1.
    pub overall_f1: f64,
    /// Token accuracy.
    pub overall_accuracy: f64,
}

impl SeqevalReport {
    /// The report as evaluate returns it: `{TYPE: {precision, recall, f1, number}, ...,
    /// overall_precision, overall_recall, overall_f1, overall_accuracy}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (name, s) in &self.types {
            let mut t = Map::new();
            t.insert("precision".into(), float_json(s.precision));
            t.insert("recall".into(), float_json(s.recall));
            t.insert("f1".into(), float_json(s.f1));
            t.insert("number".into(), Value::from(s.number));
            m.insert(name.clone(), Value::Object(t));
        }
        m.insert("overall_precision".into(), float_json(self.overall_precision));
        m.insert("overall_recall".into(), float_json(self.overall_recall));
        m.insert("overall_f1".into(), float_json(self.overall_f1));
        m.insert("overall_accuracy".into(), float_json(self.overall_accuracy));
        Value::Object(m)
    }
}

/// An entity found by [`get_entities`]: `(type, first index, last index)` (inclusive).
pub type Chunk = (String, usize, usize);

/// Splits a tag into (prefix letter, type) the way seqeval's lenient `get_entities` does.
fn split_lenient(tag: &str, suffix: bool) -> Option<(char, String)> {
    let chars: Vec<char> = tag.chars().collect();
    if suffix {
        let (&t, rest) = chars.split_last()?;
        let rest: String = rest.iter().collect();
        let ty = match rest.rsplit_once('-') {
            Some((before, _)) => before.to_string(),
            None => rest,
        };
        Some((t, if ty.is_empty() { "_".into() } else { ty }))
    } else {
        let (&t, rest) = chars.split_first()?;
        let rest: String = rest.iter().collect();
        let ty = match rest.split_once('-') {
            Some((_, after)) => after.to_string(),
            None => rest,
        };
        Some((t, if ty.is_empty() { "_".into() } else { ty }))
    }
}

fn end_of_chunk(prev_tag: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(prev_tag, 'E' | 'S')
        || (prev_tag == 'B' && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag == 'I' && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag != 'O' && prev_tag != '.' && prev_type != ty)
}

fn start_of_chunk(prev_tag: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev_tag, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != ty)
}

/// Entities of a tag sequence in seqeval's default (conlleval-like) mode (`seqeval.metrics.
/// sequence_labeling.get_entities`). Any tag is accepted; only an empty tag is an error
/// (`position` in it is the index in `seq`).
pub fn get_entities<S: AsRef<str>>(seq: &[S], suffix: bool) -> Result<Vec<Chunk>> {
    let mut prev_tag = 'O';
    let mut prev_type = String::new();
    let mut begin = 0usize;
    let mut chunks = Vec::new();
    for (i, chunk) in seq.iter().map(AsRef::as_ref).chain(std::iter::once("O")).enumerate() {
        let (tag, ty) = split_lenient(chunk, suffix).ok_or_else(|| MetricsError::InvalidTag {
            field: "sequence".into(),
            sentence: 0,
            position: i,
            tag: chunk.to_string(),
            message: "a tag cannot be empty".into(),
        })?;
        if end_of_chunk(prev_tag, tag, &prev_type, &ty) {
            chunks.push((prev_type.clone(), begin, i.wrapping_sub(1)));
        }
        if start_of_chunk(prev_tag, tag, &prev_type, &ty) {
            begin = i;
        }
        prev_tag = tag;
        prev_type = ty;
    }
    Ok(chunks)
}

mod prefix {
    pub const I: u8 = 1;
    pub const O: u8 = 2;
    pub const B: u8 = 4;
    pub const E: u8 = 8;
    pub const S: u8 = 16;
    pub const U: u8 = 32;
    pub const L: u8 = 64;
    pub const ANY: u8 = 127;

    pub fn of(c: char) -> Option<u8> {
        Some(match c {
            'I' => I,
            'O' => O,
            'B' => B,
            'E' => E,
            'S' => S,
            'U' => U,
            'L' => L,
            _ => return None,
        })
    }

    pub fn name(p: u8) -> &'static str {
        match p {
            I => "I",
            O => "O",
            B => "B",
            E => "E",
            S => "S",
            U => "U",
            L => "L",
            _ => "?",
        }
    }
}

#[derive(Clone, Copy)]
enum TypeCond {
    Same,
    Diff,
    Any,
}

type Pattern = (u8, u8, TypeCond);

/// A tag read the strict way (`seqeval.scheme.Token`).
#[derive(Clone)]
struct Token {
    prefix: u8,
    ty: String,
}

impl Token {
    fn parse(tag: &str, suffix: bool) -> Option<Token> {
        let chars: Vec<char> = tag.chars().collect();
        let (p, rest) = if suffix {
            let (&p, rest) = chars.split_last()?;
            (p, rest)
        } else {
            let (&p, rest) = chars.split_first()?;
            (p, rest)
        };
        let rest: String = rest.iter().collect();
        let ty = rest.trim_matches('-');
        Some(Token { prefix: prefix::of(p)?, ty: if ty.is_empty() { "_".into() } else { ty.to_string() } })
    }

    fn matches(&self, prev: &Token, patterns: &[Pattern]) -> bool {
        patterns.iter().any(|&(pp, cp, cond)| {
            prev.prefix & pp != 0
                && self.prefix & cp != 0
                && match cond {
                    TypeCond::Any => true,
                    TypeCond::Same => prev.ty == self.ty,
                    TypeCond::Diff => prev.ty != self.ty,
                }
        })
    }
}

/// Strict entities of one sentence (`seqeval.scheme.Tokens.entities`): `(type, start, end)` with
/// `end` exclusive.
fn strict_entities(tokens: &[Token], scheme: Scheme) -> Vec<(String, usize, usize)> {
    let (start_p, inside_p, end_p) = scheme.patterns();
    let outside = Token { prefix: prefix::O, ty: "_".into() };
    let mut ext: Vec<&Token> = tokens.iter().collect();
    ext.push(&outside);
    let mut entities = Vec::new();
    let mut i = 0;
    let mut prev: &Token = &outside;
    while i < ext.len() {
        let token = ext[i];
        if token.matches(prev, start_p) {
            // Walk forward while the tokens continue the chunk.
            let mut end = tokens.len().saturating_sub(1);
            let mut p = token;
            for (j, t) in ext.iter().enumerate().skip(i + 1) {
                if t.matches(p, inside_p) {
                    p = t;
                } else {
                    end = j;
                    break;
                }
            }
            if end >= 1 && ext[end].matches(ext[end - 1], end_p) {
                entities.push((token.ty.clone(), i, end));
            }
            i = end;
        } else {
            i += 1;
        }
        // `i` is at least 1 here: it either moved on by one or jumped to the chunk's end.
        prev = ext[i.saturating_sub(1)];
    }
    entities
}

/// seqeval's `auto_detect`: the scheme whose prefix set matches the references' prefixes.
fn auto_detect(sets: &BTreeSet<u8>) -> Result<Scheme> {
    use prefix::*;
    let set: u8 = sets.iter().fold(0, |a, b| a | b);
    let iob2 = [I | O | B, I | B, B | O, B];
    let ioe2 = [I | O | E, I | E, E | O, E];
    let iobes =
        [I | O | B | E | S, I | B | E | S, I | O | B | E, O | B | E | S, I | B | E, B | E | S, O | B | E, B | E, S];
    let bilou =
        [I | O | B | L | U, I | B | L | U, I | O | B | L, O | B | L | U, I | B | L, B | L | U, O | B | L, B | L, U];
    if iob2.contains(&set) {
        Ok(Scheme::Iob2)
    } else if ioe2.contains(&set) {
        Ok(Scheme::Ioe2)
    } else if iobes.contains(&set) {
        Ok(Scheme::Iobes)
    } else if bilou.contains(&set) {
        Ok(Scheme::Bilou)
    } else {
        let names: Vec<&str> = sets.iter().map(|&p| prefix::name(p)).collect();
        Err(MetricsError::arg(
            "scheme",
            format!(
                "the tagging scheme cannot be detected from the references' prefixes {{{}}}; pass scheme=IOB2 (or another)",
                names.join(", ")
            ),
        ))
    }
}

fn check_shapes<S>(y_true: &[Vec<S>], y_pred: &[Vec<S>]) -> Result<()> {
    check_same_len("predictions", y_pred.len(), "references", y_true.len())?;
    for (i, (t, p)) in y_true.iter().zip(y_pred).enumerate() {
        check_same_len(&format!("predictions[{i}]"), p.len(), &format!("references[{i}]"), t.len())?;
    }
    Ok(())
}

/// Per-type (true positives, predicted, true) counts.
type TypeCounts = BTreeMap<String, (usize, usize, usize)>;

fn lenient_counts<S: AsRef<str>>(y_true: &[Vec<S>], y_pred: &[Vec<S>], suffix: bool) -> Result<TypeCounts> {
    // seqeval flattens the sentences with an `O` after each one.
    let flatten = |seqs: &[Vec<S>], field: &str| -> Result<Vec<Chunk>> {
        let mut flat: Vec<&str> = Vec::new();
        let mut origin: Vec<(usize, usize)> = Vec::new();
        for (si, s) in seqs.iter().enumerate() {
            for (ti, t) in s.iter().enumerate() {
                flat.push(t.as_ref());
                origin.push((si, ti));
            }
            flat.push("O");
            origin.push((si, s.len()));
        }
        get_entities(&flat, suffix).map_err(|e| match e {
            MetricsError::InvalidTag { position, tag, message, .. } => {
                let (sentence, position) = origin.get(position).copied().unwrap_or((0, position));
                MetricsError::InvalidTag { field: field.into(), sentence, position, tag, message }
            }
            other => other,
        })
    };
    type Spans = BTreeSet<(usize, usize)>;
    let mut sets: BTreeMap<String, (Spans, Spans)> = BTreeMap::new();
    for (ty, s, e) in flatten(y_true, "references")? {
        sets.entry(ty).or_default().0.insert((s, e));
    }
    for (ty, s, e) in flatten(y_pred, "predictions")? {
        sets.entry(ty).or_default().1.insert((s, e));
    }
    Ok(sets.into_iter().map(|(ty, (t, p))| (ty, (t.intersection(&p).count(), p.len(), t.len()))).collect())
}

fn parse_tokens<S: AsRef<str>>(seqs: &[Vec<S>], suffix: bool, field: &str) -> Result<Vec<Vec<Token>>> {
    seqs.iter()
        .enumerate()
        .map(|(si, s)| {
            s.iter()
                .enumerate()
                .map(|(ti, t)| {
                    Token::parse(t.as_ref(), suffix).ok_or_else(|| MetricsError::InvalidTag {
                        field: field.into(),
                        sentence: si,
                        position: ti,
                        tag: t.as_ref().to_string(),
                        message: format!(
                            "the {} must be one of the prefixes I, O, B, E, S, U, L",
                            if suffix { "last character" } else { "first character" }
                        ),
                    })
                })
                .collect()
        })
        .collect()
}

fn strict_counts<S: AsRef<str>>(
    y_true: &[Vec<S>],
    y_pred: &[Vec<S>],
    scheme: Option<Scheme>,
    suffix: bool,
) -> Result<TypeCounts> {
    let true_tokens = parse_tokens(y_true, suffix, "references")?;
    let pred_tokens = parse_tokens(y_pred, suffix, "predictions")?;
    let scheme = match scheme {
        Some(s) => s,
        None => auto_detect(&true_tokens.iter().flatten().map(|t| t.prefix).collect())?,
    };
    let allowed = scheme.allowed();
    for (field, seqs, tokens) in [("references", y_true, &true_tokens), ("predictions", y_pred, &pred_tokens)] {
        for (si, sent) in tokens.iter().enumerate() {
            if let Some(ti) = sent.iter().position(|t| t.prefix & allowed == 0) {
                return Err(MetricsError::InvalidTag {
                    field: field.into(),
                    sentence: si,
                    position: ti,
                    tag: seqs[si][ti].as_ref().to_string(),
                    message: format!("its prefix is not allowed by the {} scheme", scheme.name()),
                });
            }
        }
    }
    let collect = |tokens: &[Vec<Token>]| {
        let mut by_type: BTreeMap<String, BTreeSet<(usize, usize, usize)>> = BTreeMap::new();
        for (si, sent) in tokens.iter().enumerate() {
            for (ty, s, e) in strict_entities(sent, scheme) {
                by_type.entry(ty).or_default().insert((si, s, e));
            }
        }
        by_type
    };
    let t = collect(&true_tokens);
    let p = collect(&pred_tokens);
    let names: BTreeSet<&String> = t.keys().chain(p.keys()).collect();
    let empty = BTreeSet::new();
    Ok(names
        .into_iter()
        .map(|ty| {
            let te = t.get(ty).unwrap_or(&empty);
            let pe = p.get(ty).unwrap_or(&empty);
            (ty.clone(), (te.intersection(pe).count(), pe.len(), te.len()))
        })
        .collect())
}

/// Precision, recall and F1 from counts, the way seqeval divides (`zero_division` 0 unless it is
/// `1` or `nan`, which give 1).
fn prf(tp: usize, pred: usize, truth: usize, zero_division: ZeroDivision) -> (f64, f64, f64) {
    let zd = match zero_division {
        ZeroDivision::Warn | ZeroDivision::Zero => 0.0,
        ZeroDivision::One | ZeroDivision::Nan => 1.0,
    };
    let div = |n: usize, d: usize| if d == 0 { zd } else { n as f64 / d as f64 };
    let p = div(tp, pred);
    let r = div(tp, truth);
    let denom = 1.0 * p + r;
    let denom = if denom == 0.0 { 1.0 } else { denom };
    (p, r, 2.0 * p * r / denom)
}

/// evaluate's `seqeval` metric: entity scores per type and overall, and token accuracy.
///
/// `y_true` and `y_pred` are the reference and predicted tag sequences, one per sentence; they
/// must have the same shape and at least one token.
pub fn seqeval<S: AsRef<str>>(y_true: &[Vec<S>], y_pred: &[Vec<S>], options: &SeqevalOptions) -> Result<SeqevalReport> {
    check_shapes(y_true, y_pred)?;
    let counts = match options.mode {
        Mode::Default => lenient_counts(y_true, y_pred, options.suffix)?,
        Mode::Strict => strict_counts(y_true, y_pred, options.scheme, options.suffix)?,
    };
    let n_tokens: usize = y_true.iter().map(Vec::len).sum();
    if n_tokens == 0 {
        return Err(MetricsError::Empty { field: "references (no tokens: overall_accuracy is undefined)".into() });
    }
    let correct =
        y_true.iter().flatten().zip(y_pred.iter().flatten()).filter(|(t, p)| t.as_ref() == p.as_ref()).count();
    let zd = options.zero_division;
    let types = counts
        .iter()
        .map(|(ty, &(tp, pred, truth))| {
            let (precision, recall, f1) = prf(tp, pred, truth, zd);
            (ty.clone(), EntityScores { precision, recall, f1, number: truth })
        })
        .collect();
    let (tp, pred, truth) = counts.values().fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    let (overall_precision, overall_recall, overall_f1) = prf(tp, pred, truth, zd);
    Ok(SeqevalReport {
        types,
        overall_precision,
        overall_recall,
        overall_f1,
        overall_accuracy: correct as f64 / n_tokens as f64,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn s(v: &[&[&str]]) -> Vec<Vec<String>> {
        v.iter().map(|x| x.iter().map(|t| t.to_string()).collect()).collect()
    }

    #[test]
    fn evaluate_docstring_example() {
        let p = s(&[&["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], &["B-PER", "I-PER", "O"]]);
        let r = s(&[&["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], &["B-PER", "I-PER", "O"]]);
        let rep = seqeval(&r, &p, &SeqevalOptions::default()).unwrap();
        assert_eq!(rep.overall_f1, 0.5);
        assert_eq!(rep.overall_accuracy, 0.8);
        assert_eq!(rep.types[1].0, "PER");
        assert_eq!(rep.types[1].1.f1, 1.0);
    }

    #[test]
    fn lenient_chunks() {
        assert_eq!(
            get_entities(&["B-PER", "I-PER", "O", "B-LOC"], false).unwrap(),
            vec![("PER".to_string(), 0, 1), ("LOC".to_string(), 3, 3)]
        );
        // I- without B- starts an entity; a type switch ends one.
        assert_eq!(
            get_entities(&["I-PER", "I-LOC", "O"], false).unwrap(),
            vec![("PER".to_string(), 0, 0), ("LOC".to_string(), 1, 1)]
        );
        assert!(get_entities(&["B-PER", ""], false).is_err());
    }

    #[test]
    fn strict_drops_malformed_chunks() {
        let r = s(&[&["B-PER", "I-PER", "O"]]);
        let p = s(&[&["I-PER", "I-PER", "O"]]);
        let o = SeqevalOptions { mode: Mode::Strict, scheme: Some(Scheme::Iob2), ..Default::default() };
        let rep = seqeval(&r, &p, &o).unwrap();
        assert_eq!(rep.overall_precision, 0.0);
        assert_eq!(rep.types[0].1.number, 1);
        // Lenient mode counts I-PER I-PER as an entity.
        let rep = seqeval(&r, &p, &SeqevalOptions::default()).unwrap();
        assert_eq!(rep.overall_f1, 1.0);
    }

    #[test]
    fn strict_errors() {
        let r = s(&[&["B-PER", "X-PER"]]);
        let o = SeqevalOptions { mode: Mode::Strict, scheme: Some(Scheme::Iob2), ..Default::default() };
        assert!(matches!(seqeval(&r, &r, &o), Err(MetricsError::InvalidTag { position: 1, .. })));
        let r = s(&[&["B-PER", "E-PER"]]);
        assert!(seqeval(&r, &r, &o).is_err(), "E- is not an IOB2 prefix");
        let r = s(&[&["O", "O"]]);
        let o = SeqevalOptions { mode: Mode::Strict, ..Default::default() };
        assert!(seqeval(&r, &r, &o).is_err(), "no scheme can be detected from O alone");
        assert!("IOB3".parse::<Scheme>().is_err());
    }
}
