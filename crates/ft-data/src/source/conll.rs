//! CoNLL-2003 text files (`token POS chunk NER`, one token per line, a blank line between
//! sentences), read as Hugging Face's `conll2003` loader reads them: each line is split on single
//! spaces, `-DOCSTART-` lines and blank lines end a sentence, the document-start "sentences" are
//! dropped, `id` counts sentences from `"0"`, and tags become class ids of the `ClassLabel` lists
//! below (columns `id`, `tokens`, `pos_tags`, `chunk_tags`, `ner_tags`).
//!
//! Stricter than the loader: a line with another number of fields, or a tag outside its label
//! list, is an error naming the file and line (the loader would fail or mislabel).
//! Plain `.txt` files that do not look like CoNLL are read as text, one row per line (`text`
//! column), as `datasets`' `text` builder does.

use std::path::Path;

use super::{OnInvalid, Skipped};
use crate::dataset::{Column, Dataset, Field, RowRef};
use crate::features::Feature;
use crate::{DataError, Result};

/// The NER labels of CoNLL-2003 in Hugging Face's order.
pub const NER_TAGS: [&str; 9] = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"];

/// The 47 POS tags of CoNLL-2003 in Hugging Face's order.
pub const POS_TAGS: [&str; 47] = [
    "\"", "''", "#", "$", "(", ")", ",", ".", ":", "``", "CC", "CD", "DT", "EX", "FW", "IN", "JJ", "JJR", "JJS", "LS",
    "MD", "NN", "NNP", "NNPS", "NNS", "NN|SYM", "PDT", "POS", "PRP", "PRP$", "RB", "RBR", "RBS", "RP", "SYM", "TO",
    "UH", "VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "WDT", "WP", "WP$", "WRB",
];

/// The 23 chunk tags of CoNLL-2003 in Hugging Face's order.
pub const CHUNK_TAGS: [&str; 23] = [
    "O", "B-ADJP", "I-ADJP", "B-ADVP", "I-ADVP", "B-CONJP", "I-CONJP", "B-INTJ", "I-INTJ", "B-LST", "I-LST", "B-NP",
    "I-NP", "B-PP", "I-PP", "B-PRT", "I-PRT", "B-SBAR", "I-SBAR", "B-UCP", "I-UCP", "B-VP", "I-VP",
];

/// The column layout of a CoNLL file.
#[derive(Debug, Clone)]
pub struct ConllOptions {
    /// One name per field of a line; the first is the token column.
    pub columns: Vec<String>,
    /// Label names per tag column; columns without an entry stay strings (`list<string>`).
    pub label_names: Vec<(String, Vec<String>)>,
}

impl Default for ConllOptions {
    /// CoNLL-2003: `tokens pos_tags chunk_tags ner_tags` with Hugging Face's label lists.
    fn default() -> Self {
        let names = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Self {
            columns: names(&["tokens", "pos_tags", "chunk_tags", "ner_tags"]),
            label_names: vec![
                ("pos_tags".into(), names(&POS_TAGS)),
                ("chunk_tags".into(), names(&CHUNK_TAGS)),
                ("ner_tags".into(), names(&NER_TAGS)),
            ],
        }
    }
}

/// Whether the first non-blank, non-`-DOCSTART-` line of `text` has `n` space-separated fields.
pub fn looks_like_conll(text: &str, n: usize) -> bool {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| !l.trim().is_empty() && !l.starts_with("-DOCSTART-"))
        .is_some_and(|l| l.split(' ').count() == n)
}

/// Reads a CoNLL file.
pub fn read(path: &Path, options: &ConllOptions, on_invalid: OnInvalid, skipped: &mut Vec<Skipped>) -> Result<Dataset> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
    let n = options.columns.len();
    if n == 0 {
        return Err(DataError::Format { path: path.to_path_buf(), message: "no CoNLL column names given".into() });
    }
    let maps: Vec<Option<std::collections::HashMap<&str, i64>>> = options
        .columns
        .iter()
        .map(|c| {
            options
                .label_names
                .iter()
                .find(|(name, _)| name == c)
                .map(|(_, names)| names.iter().enumerate().map(|(i, s)| (s.as_str(), i as i64)).collect())
        })
        .collect();
    let mut ids = Vec::new();
    let mut tokens: Vec<Vec<Vec<String>>> = vec![Vec::new(); n];
    let mut tags: Vec<Vec<Vec<i64>>> = vec![Vec::new(); n];
    let mut origins = Vec::new();
    // The sentence being read: fields per column, its first line, and whether a line was bad.
    let mut cur_s: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut cur_t: Vec<Vec<i64>> = vec![Vec::new(); n];
    let mut start_line = 0u64;
    let mut bad = false;
    let mut flush = |cur_s: &mut Vec<Vec<String>>, cur_t: &mut Vec<Vec<i64>>, start_line: u64, bad: &mut bool| {
        if cur_s[0].is_empty() {
            *bad = false;
            return;
        }
        if !*bad {
            ids.push(ids.len().to_string());
            origins.push(RowRef { file: 0, row: origins.len() as u64, line: start_line });
            for c in 0..n {
                tokens[c].push(std::mem::take(&mut cur_s[c]));
                tags[c].push(std::mem::take(&mut cur_t[c]));
            }
        }
        for c in 0..n {
            cur_s[c].clear();
            cur_t[c].clear();
        }
        *bad = false;
    };
    for (i, raw) in text.split('\n').enumerate() {
        let lineno = i as u64 + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with("-DOCSTART-") || line.trim().is_empty() {
            flush(&mut cur_s, &mut cur_t, start_line, &mut bad);
            continue;
        }
        if cur_s[0].is_empty() && !bad {
            start_line = lineno;
        }
        let parts: Vec<&str> = line.split(' ').collect();
        let problem = if parts.len() != n {
            Some(format!("{} fields, expected {n} ({})", parts.len(), options.columns.join(" ")))
        } else {
            parts.iter().enumerate().find_map(|(c, p)| {
                maps[c]
                    .as_ref()
                    .and_then(|m| (!m.contains_key(p)).then(|| format!("unknown {} tag '{p}'", options.columns[c])))
            })
        };
        if let Some(problem) = problem {
            if on_invalid == OnInvalid::Skip {
                skipped.push(Skipped {
                    origin: format!("{}:{lineno}", path.display()),
                    reason: format!("{problem} (sentence skipped)"),
                });
                if cur_s[0].is_empty() && !bad {
                    start_line = lineno;
                }
                bad = true;
                continue;
            }
            return Err(DataError::Line { path: path.to_path_buf(), line: lineno, message: problem });
        }
        for (c, p) in parts.iter().enumerate() {
            match &maps[c] {
                Some(m) => cur_t[c].push(m[p]),
                None => cur_s[c].push(p.to_string()),
            }
        }
        // Keep the token column's length for emptiness checks even when it has labels.
        if maps[0].is_some() {
            cur_s[0].push(parts[0].to_string());
        }
    }
    flush(&mut cur_s, &mut cur_t, start_line, &mut bad);
    let mut fields = vec![Field::new("id", Column::Str(ids))];
    for (c, name) in options.columns.iter().enumerate() {
        let field = match &maps[c] {
            Some(_) => {
                let names =
                    options.label_names.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default();
                Field::with_feature(
                    name.clone(),
                    Feature::List(Box::new(Feature::ClassLabel { names })),
                    Column::IntList(std::mem::take(&mut tags[c])),
                )
            }
            None => Field::new(name.clone(), Column::StrList(std::mem::take(&mut tokens[c]))),
        };
        fields.push(field);
    }
    let name = path.display().to_string();
    Dataset::with_origins(name.clone(), fields, vec![name], origins)
}

/// Reads a plain text file, one row per line (`text` column), like `datasets`' `text` builder.
pub fn read_text(path: &Path) -> Result<Dataset> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io { path: path.to_path_buf(), error: source })?;
    let lines: Vec<String> = text.lines().map(String::from).collect();
    let origins = (0..lines.len() as u64).map(|i| RowRef { file: 0, row: i, line: i + 1 }).collect();
    let name = path.display().to_string();
    Dataset::with_origins(name.clone(), vec![Field::new("text", Column::Str(lines))], vec![name], origins)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n";

    #[test]
    fn reads_like_the_hf_loader() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train.txt");
        std::fs::write(&p, SAMPLE).unwrap();
        let d = read(&p, &ConllOptions::default(), OnInvalid::Error, &mut Vec::new()).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.column_names(), ["id", "tokens", "pos_tags", "chunk_tags", "ner_tags"]);
        assert_eq!(d.column("id").unwrap(), &Column::Str(vec!["0".into(), "1".into()]));
        assert_eq!(
            d.column("tokens").unwrap(),
            &Column::StrList(vec![vec!["EU".into(), "rejects".into()], vec!["Peter".into(), "Blackburn".into()]])
        );
        assert_eq!(d.column("ner_tags").unwrap(), &Column::IntList(vec![vec![3, 0], vec![1, 2]]));
        assert_eq!(d.column("pos_tags").unwrap(), &Column::IntList(vec![vec![22, 42], vec![22, 22]]));
        assert_eq!(d.label_names("ner_tags").unwrap()[1], "B-PER");
        assert_eq!(d.origins()[1].line, 6);
        assert!(looks_like_conll(SAMPLE, 4));
    }

    #[test]
    fn bad_lines_are_named_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.txt");
        std::fs::write(&p, "EU NNP B-NP B-ORG\nrejects VBZ B-VP\n\nPeter NNP B-NP B-FOO\n\nok NN B-NP O\n").unwrap();
        let err = read(&p, &ConllOptions::default(), OnInvalid::Error, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("bad.txt:2") && err.contains("3 fields, expected 4"), "{err}");
        let mut skipped = Vec::new();
        let d = read(&p, &ConllOptions::default(), OnInvalid::Skip, &mut skipped).unwrap();
        assert_eq!(skipped.len(), 2);
        assert!(skipped[1].origin.ends_with("bad.txt:4") && skipped[1].reason.contains("B-FOO"), "{:?}", skipped);
        assert_eq!(d.len(), 1);
        assert_eq!(d.column("id").unwrap(), &Column::Str(vec!["0".into()]));
    }
}
