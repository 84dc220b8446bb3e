//! Dataset repositories on the Hub, found the way `datasets` finds their data:
//!
//! 1. List the repository's files at the revision (`/api/datasets/{id}/revision/{rev}`, through
//!    `hf-hub`; offline: the cached snapshot).
//! 2. Data files in the repository itself (Parquet first, then JSON Lines, CSV, CoNLL/text) are
//!    grouped into splits by their names ([`super::splits`]); with a config name, only files
//!    under the folder of that name are used (`plain_text/train-....parquet`).
//! 3. A repository without data files (a loading-script dataset such as `eriktks/conll2003`) is
//!    read from the Hub's Parquet export, the `refs/convert/parquet` branch, laid out as
//!    `{config}/{split}/{nnnn}.parquet` (`partial-{split}` for large splits the export cut short).
//!
//! Files are downloaded when a split is loaded, into the standard cache (`HF_HOME`).

use super::Format;
use super::splits::{infer_splits, split_order};
use crate::hub::{HubClient, HubRepo, RepoKind};
use crate::{DataError, Result};

/// The revision holding the Hub's Parquet export of a dataset.
pub const PARQUET_EXPORT: &str = "refs/convert/parquet";

/// Where a Hub dataset's splits live.
#[derive(Debug, Clone)]
pub struct HubLayout {
    /// The repository and revision the files are read from (maybe the Parquet export).
    pub repo: HubRepo,
    /// The data format.
    pub format: Format,
    /// Split name → files in the repository.
    pub splits: Vec<(String, Vec<String>)>,
}

/// Finds the data files of `repo` (see the module docs).
pub fn layout(client: &HubClient, repo: &HubRepo, config: Option<&str>) -> Result<HubLayout> {
    let source_err = |message: String| DataError::Source { source_name: repo.to_string(), message };
    let files = match client.list_files(repo)? {
        Some(files) => files,
        // Offline, a script dataset has only its export's files in the cache.
        None if client.is_offline() => Vec::new(),
        None => return Err(source_err("no such dataset repository (or revision) on the Hub".into())),
    };
    if let Some(found) = data_files(&files, config) {
        let (format, chosen) = found;
        return Ok(HubLayout { repo: repo.clone(), format, splits: infer_splits(&chosen) });
    }
    // No data files: a script dataset. Use the Parquet export.
    let export = HubRepo { id: repo.id.clone(), revision: PARQUET_EXPORT.into(), kind: RepoKind::Dataset };
    let files = client.list_files(&export)?.ok_or_else(|| {
        source_err(if client.is_offline() {
            "not in the Hub cache and HF_HUB_OFFLINE is set; load it once with network access".into()
        } else {
            format!(
                "the repository has no data files (Parquet, JSON Lines, CSV) and no Parquet export ({PARQUET_EXPORT})"
            )
        })
    })?;
    let mut configs: Vec<&str> =
        files.iter().filter(|f| f.ends_with(".parquet")).filter_map(|f| f.split('/').next()).collect();
    configs.dedup();
    let config = match config {
        Some(c) if configs.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(source_err(format!("no config '{c}' in the Parquet export (configs: {})", configs.join(", "))));
        }
        None if configs.len() == 1 => configs[0].to_string(),
        None if configs.contains(&"default") => "default".into(),
        None => {
            return Err(source_err(format!(
                "several configs in the Parquet export; choose one of: {}",
                configs.join(", ")
            )));
        }
    };
    let mut splits: Vec<(String, Vec<String>)> = Vec::new();
    for f in &files {
        let parts: Vec<&str> = f.split('/').collect();
        if parts.len() != 3 || parts[0] != config || !parts[2].ends_with(".parquet") {
            continue;
        }
        let split = match parts[1].strip_prefix("partial-") {
            Some(s) => {
                tracing::warn!(repo = %repo, split = s, "the Hub's Parquet export of this split is partial");
                s
            }
            None => parts[1],
        };
        match splits.iter_mut().find(|(s, _)| s == split) {
            Some((_, v)) => v.push(f.clone()),
            None => splits.push((split.to_string(), vec![f.clone()])),
        }
    }
    if splits.is_empty() {
        return Err(source_err(format!("the Parquet export has no files for config '{config}'")));
    }
    for (_, v) in &mut splits {
        v.sort();
    }
    splits.sort_by_key(|(s, _)| split_order(s));
    Ok(HubLayout { repo: export, format: Format::Parquet, splits })
}

/// The repository's data files of the preferred format, restricted to a config folder when one
/// is given and has files.
fn data_files(files: &[String], config: Option<&str>) -> Option<(Format, Vec<String>)> {
    let visible: Vec<&String> = files.iter().filter(|f| !f.split('/').any(|p| p.starts_with('.'))).collect();
    let in_config: Vec<&String> = match config {
        Some(c) => {
            let prefix = format!("{c}/");
            let v: Vec<&String> = visible.iter().copied().filter(|f| f.starts_with(&prefix)).collect();
            if v.is_empty() { visible } else { v }
        }
        None => visible,
    };
    for format in [Format::Parquet, Format::Json, Format::Csv] {
        let chosen: Vec<String> = in_config
            .iter()
            .filter(|f| Format::from_path(std::path::Path::new(f.as_str())) == Some(format))
            .map(|f| f.to_string())
            .collect();
        if !chosen.is_empty() {
            return Some((format, chosen));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_parquet_and_config_folders() {
        let files: Vec<String> = [
            "README.md",
            ".gitattributes",
            "plain_text/train-00000-of-00001.parquet",
            "plain_text/test-00000-of-00001.parquet",
            "other/train.csv",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (f, chosen) = data_files(&files, Some("plain_text")).unwrap();
        assert_eq!(f, Format::Parquet);
        assert_eq!(chosen.len(), 2);
        assert!(data_files(&["conll2003.py".to_string(), "README.md".to_string()], None).is_none());
    }
}
