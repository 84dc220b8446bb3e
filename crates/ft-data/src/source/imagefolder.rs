//! Image folders, as `datasets`' `imagefolder` builder reads them: one subfolder per class
//! (`root/cat/1.png`), optionally under split folders (`root/train/cat/1.png`). Rows are
//! `image` (the file path; decoding is the vision model's job) and `label`, a `ClassLabel` whose
//! names are the class folder names sorted. Files are listed in path order.

use std::path::{Path, PathBuf};

use crate::dataset::{Column, Dataset, Field, ImageRef, RowRef};
use crate::features::Feature;
use crate::{DataError, Result};

/// File extensions read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 9] = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff", "ppm"];

/// Whether `path` has an image extension.
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Every image under `dir`, as `/`-separated paths relative to it, sorted.
pub fn list_images(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| DataError::Io { path: d.clone(), error: source })?;
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_image(&p)
                && let Ok(rel) = p.strip_prefix(dir)
            {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Builds the dataset of one split from image paths relative to `root`; the label is the
/// image's parent folder. `class_names` are the labels of all splits (so ids agree across
/// splits).
pub fn read(root: &Path, files: &[String], class_names: &[String]) -> Result<Dataset> {
    let mut images = Vec::with_capacity(files.len());
    let mut labels = Vec::with_capacity(files.len());
    for f in files {
        let class = class_of(f).ok_or_else(|| DataError::Source {
            source_name: root.display().to_string(),
            message: format!("'{f}' is not inside a class folder (expected <class>/<image>)"),
        })?;
        let id = class_names.iter().position(|c| c == class).unwrap_or(0);
        images.push(ImageRef { path: Some(root.join(f).display().to_string()), bytes: None });
        labels.push(id as i64);
    }
    let name = root.display().to_string();
    let origins = (0..files.len() as u64).map(|row| RowRef { file: 0, row, line: 0 }).collect();
    Dataset::with_origins(
        name.clone(),
        vec![
            Field::with_feature("image", Feature::Image, Column::Image(images)),
            Field::with_feature("label", Feature::ClassLabel { names: class_names.to_vec() }, Column::Int(labels)),
        ],
        vec![name],
        origins,
    )
}

/// The class folder of an image path (`train/cat/1.png` → `cat`).
pub fn class_of(rel: &str) -> Option<&str> {
    let mut parts = rel.rsplit('/');
    parts.next()?;
    parts.next()
}

/// Sorted, distinct class names of all `files`.
pub fn class_names<'a>(files: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut names: Vec<String> = files.filter_map(|f| class_of(f).map(String::from)).collect();
    names.sort();
    names.dedup();
    names
}

/// A directory holds an image folder when it has images and no tabular data files.
pub fn is_image_folder(dir: &Path) -> bool {
    list_images(dir).map(|v| !v.is_empty()).unwrap_or(false)
}

/// `root/<rel>`.
pub fn path_of(root: &Path, rel: &str) -> PathBuf {
    root.join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_from_folders() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["train/dog/b.png", "train/cat/a.jpg", "test/cat/c.PNG", "train/cat/notes.txt"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let files = list_images(dir.path()).unwrap();
        assert_eq!(files, ["test/cat/c.PNG", "train/cat/a.jpg", "train/dog/b.png"]);
        let names = class_names(files.iter());
        assert_eq!(names, ["cat", "dog"]);
        let d = read(dir.path(), &files[1..], &names).unwrap();
        assert_eq!(d.column("label").unwrap(), &Column::Int(vec![0, 1]));
        assert_eq!(d.label_names("label").unwrap(), ["cat", "dog"]);
    }
}
