//! Split names from file paths, with `datasets`' rules (`datasets.data_files`):
//!
//! 1. Sharded uploads, `data/{split}-00000-of-00001.parquet` (what `push_to_hub` writes): the
//!    split is the name before the shard numbers, any word.
//! 2. Otherwise a directory named after a split keyword (`train/`, `valid/`, `dev-2/`, ...),
//!    then a file name with a keyword between separators (`train.csv`, `valid.txt`,
//!    `my_test-1.jsonl`). Separators are `-`, `.`, `_`, space and digits. Keywords:
//!    `train`, `training` → train; `validation`, `valid`, `dev`, `val` → validation;
//!    `test`, `testing`, `eval`, `evaluation` → test.
//! 3. Otherwise every file belongs to `train`.
//!
//! Splits come out in the order train, validation, test, then others by name; files within a
//! split sorted by path.

const KEYWORDS: [(&str, &[&str]); 3] = [
    ("train", &["train", "training"]),
    ("validation", &["validation", "valid", "dev", "val"]),
    ("test", &["test", "testing", "eval", "evaluation"]),
];

fn is_sep(c: char) -> bool {
    "-._ ".contains(c) || c.is_ascii_digit()
}

/// `name` starts with `kw` followed by a separator, or contains `sep kw sep` (file names).
fn keyword_in_file_name(name: &str, kw: &str) -> bool {
    let mut from = 0;
    while let Some(pos) = name[from..].find(kw) {
        let start = from + pos;
        let end = start + kw.len();
        let before_ok = start == 0 || name[..start].chars().next_back().is_some_and(is_sep);
        let after_ok = name[end..].chars().next().is_some_and(is_sep);
        if before_ok && after_ok {
            return true;
        }
        from = start + 1;
    }
    false
}

/// A directory name equal to `kw`, or `kw` bounded by separators or the name's ends.
fn keyword_in_dir_name(name: &str, kw: &str) -> bool {
    let mut from = 0;
    while let Some(pos) = name[from..].find(kw) {
        let start = from + pos;
        let end = start + kw.len();
        let before_ok = start == 0 || name[..start].chars().next_back().is_some_and(is_sep);
        let after_ok = end == name.len() || name[end..].chars().next().is_some_and(is_sep);
        if before_ok && after_ok {
            return true;
        }
        from = start + 1;
    }
    false
}

/// `data/{split}-NNNNN-of-NNNNN*` → `split`.
fn sharded_split(path: &str) -> Option<String> {
    let rest = path.strip_prefix("data/")?;
    if rest.contains('/') {
        return None;
    }
    let (split, tail) = rest.split_once('-')?;
    let b = tail.as_bytes();
    let ok = b.len() >= 14
        && b[..5].iter().all(u8::is_ascii_digit)
        && &tail[5..9] == "-of-"
        && b[9..14].iter().all(u8::is_ascii_digit);
    let word = !split.is_empty() && split.chars().all(|c| c.is_alphanumeric() || c == '_');
    (ok && word).then(|| split.to_string())
}

/// Orders split names: train, validation, test, then the rest alphabetically.
pub fn split_order(name: &str) -> (usize, String) {
    let rank = ["train", "validation", "test"].iter().position(|s| *s == name).unwrap_or(3);
    (rank, name.to_string())
}

/// Groups `paths` (relative, `/`-separated) into splits.
pub fn infer_splits(paths: &[String]) -> Vec<(String, Vec<String>)> {
    let mut sorted: Vec<String> = paths.to_vec();
    sorted.sort();
    let sharded: Vec<(String, String)> =
        sorted.iter().filter_map(|p| sharded_split(p).map(|s| (s, p.clone()))).collect();
    if !sharded.is_empty() {
        return group(sharded);
    }
    // Directory names first, then file names (datasets tries the patterns in this order and keeps
    // the first kind that matches anything).
    for by_dir in [true, false] {
        let mut out = Vec::new();
        for p in &sorted {
            let parts: Vec<&str> = p.split('/').collect();
            let (dirs, file) = parts.split_at(parts.len().saturating_sub(1));
            let hit = KEYWORDS.iter().find(|(_, kws)| {
                kws.iter().any(|kw| {
                    if by_dir {
                        dirs.iter().any(|d| keyword_in_dir_name(d, kw))
                    } else {
                        file.first().is_some_and(|f| keyword_in_file_name(f, kw))
                    }
                })
            });
            if let Some((split, _)) = hit {
                out.push((split.to_string(), p.clone()));
            }
        }
        if !out.is_empty() {
            return group(out);
        }
    }
    if sorted.is_empty() { Vec::new() } else { vec![("train".to_string(), sorted)] }
}

fn group(pairs: Vec<(String, String)>) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (split, path) in pairs {
        match out.iter_mut().find(|(s, _)| *s == split) {
            Some((_, v)) => v.push(path),
            None => out.push((split, vec![path])),
        }
    }
    out.sort_by_key(|(s, _)| split_order(s));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(paths: &[&str]) -> Vec<(String, Vec<String>)> {
        infer_splits(&paths.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn sharded_uploads() {
        let s = names(&[
            "data/test-00000-of-00001.parquet",
            "data/train-00000-of-00002.parquet",
            "data/train-00001-of-00002.parquet",
            "README.md",
        ]);
        assert_eq!(s[0].0, "train");
        assert_eq!(s[0].1.len(), 2);
        assert_eq!(s[1], ("test".into(), vec!["data/test-00000-of-00001.parquet".into()]));
        let s = names(&["data/unsupervised-00000-of-00001.parquet"]);
        assert_eq!(s[0].0, "unsupervised");
    }

    #[test]
    fn keywords_in_names() {
        let s = names(&["train.txt", "valid.txt", "test.txt"]);
        assert_eq!(s.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["train", "validation", "test"]);
        let s = names(&["plain_text/train-00000-of-00001.parquet", "plain_text/test-00000-of-00001.parquet"]);
        assert_eq!(s.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["train", "test"]);
        let s = names(&["train/cat/1.png", "test/dog/2.png"]);
        assert_eq!(s.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["train", "test"]);
        // No keyword: everything is train; "trainer" is not "train".
        let s = names(&["trainer.csv", "b.csv"]);
        assert_eq!(s, vec![("train".into(), vec!["b.csv".into(), "trainer.csv".into()])]);
        assert_eq!(names(&["my_dev-1.jsonl"])[0].0, "validation");
    }
}
