//! The images of an image-classification run: the splits as lists of images and class ids, the
//! checks torchvision's `ImageFolder` makes (no empty class folder; every evaluation class seen
//! in training), and the pixels of a batch — decoded and transformed on worker threads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ft_data::augment::Augmentation;
use ft_data::dataset::{Column, Dataset, ImageRef};
use ft_data::source::imagefolder::list_images;
use ft_data::source::{DatasetSource, LoadOptions, OnInvalid};
use ft_data::vision::{ImageTransform, RgbImage, decode_rgb, open_rgb};
use rayon::prelude::*;

use crate::run_config::RunConfig;
use crate::{Result, TrainError};

/// One split's images and class ids.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// What the images were read from (errors name it).
    pub origin: String,
    /// The images (a file path, or encoded bytes from a Parquet row).
    pub images: Vec<ImageRef>,
    /// Class id of each image.
    pub labels: Vec<i64>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The name of image `i` in messages: its path, else its row.
    pub fn name(&self, i: usize) -> String {
        match &self.images[i].path {
            Some(p) => p.clone(),
            None => format!("{} (row {i})", self.origin),
        }
    }

    /// Decodes image `i` (`Image.open(..).convert("RGB")`).
    pub fn decode(&self, i: usize) -> Result<RgbImage> {
        let image = &self.images[i];
        Ok(match (&image.bytes, &image.path) {
            (Some(bytes), _) => decode_rgb(bytes, Path::new(&self.name(i)))?,
            (None, Some(path)) => open_rgb(Path::new(path))?,
            (None, None) => {
                return Err(TrainError::Config(format!("{}: row {i} has neither image bytes nor a path", self.origin)));
            }
        })
    }
}

/// §14's label leakage for images: evaluation images whose encoded bytes equal a training
/// image's (the same file, whatever its name). Files that cannot be read count as unique (the
/// loop reports them).
pub fn leakage(train: &ImageSet, eval: &ImageSet) -> Option<crate::pitfalls::Pitfall> {
    use crate::pitfalls::{bytes_key, find_leakage};
    let keys = |set: &ImageSet| -> Vec<u64> {
        (0..set.len())
            .into_par_iter()
            .map(|i| {
                let image = &set.images[i];
                match (&image.bytes, &image.path) {
                    (Some(bytes), _) => bytes_key(bytes),
                    (None, Some(path)) => std::fs::read(path).map(|b| bytes_key(&b)).unwrap_or_else(|_| {
                        // Unreadable: a key no other image has.
                        bytes_key(format!("unreadable {} {i}", set.origin).as_bytes()) ^ 0x5bd1_e995
                    }),
                    (None, None) => bytes_key(format!("none {} {i}", set.origin).as_bytes()),
                }
            })
            .collect()
    };
    find_leakage(&keys(train), &keys(eval), "images", |i| eval.name(i))
}

/// How a split's images become network inputs.
#[derive(Debug, Clone)]
pub enum Transform {
    /// Resize, center crop, normalise (evaluation; training without augmentation).
    Eval(ImageTransform),
    /// `RandomResizedCrop` + `RandomHorizontalFlip` + normalise.
    Augment(Augmentation),
}

impl Transform {
    /// The side of the (square) output.
    pub fn size(&self) -> usize {
        match self {
            Self::Eval(t) => t.crop[0],
            Self::Augment(a) => a.crop.size,
        }
    }

    /// Whether two passes over an image give the same pixels.
    pub fn is_deterministic(&self) -> bool {
        matches!(self, Self::Eval(_))
    }

    /// The pixels of `image` (row `index`) in `epoch`, `[3, size, size]` flattened.
    pub fn apply(&self, image: &RgbImage, epoch: usize, index: usize) -> Vec<f32> {
        match self {
            Self::Eval(t) => t.apply(image),
            Self::Augment(a) => a.apply(image, epoch, index),
        }
    }
}

/// The decoded and transformed pixels of some images of a split.
#[derive(Debug, Default)]
pub struct Pixels {
    /// `[n, 3, size, size]`, flattened.
    pub values: Vec<f32>,
    /// Class ids of the `n` images kept.
    pub labels: Vec<i64>,
}

/// Images that failed to decode and were skipped (`data.skip_invalid`), by name.
pub type Skipped = Arc<Mutex<BTreeSet<String>>>;

/// Decodes and transforms images `indices` of `set`, in parallel (rayon). An image that cannot
/// be decoded is an error naming it, or — with `skip_invalid` — left out and recorded in
/// `skipped`.
pub fn pixels(
    set: &ImageSet,
    transform: &Transform,
    indices: &[usize],
    epoch: usize,
    skip_invalid: bool,
    skipped: &Skipped,
) -> Result<Pixels> {
    let rows: Vec<Result<Option<Vec<f32>>>> = indices
        .par_iter()
        .map(|&i| match set.decode(i) {
            Ok(image) => Ok(Some(transform.apply(&image, epoch, i))),
            Err(e) if skip_invalid => {
                let name = set.name(i);
                let mut s = skipped.lock().unwrap_or_else(|p| p.into_inner());
                if s.insert(name.clone()) {
                    tracing::warn!(image = %name, error = %e, "skipping an image that cannot be decoded (data.skip_invalid)");
                }
                Ok(None)
            }
            Err(e) => Err(TrainError::Config(format!(
                "{e} (set data.skip_invalid = true to skip such images and count them)"
            ))),
        })
        .collect();
    let mut out = Pixels::default();
    let size = transform.size();
    out.values.reserve(indices.len() * 3 * size * size);
    for (&i, row) in indices.iter().zip(rows) {
        if let Some(values) = row? {
            out.values.extend(values);
            out.labels.push(set.labels[i]);
        }
    }
    Ok(out)
}

/// The splits of a run, with their label names.
#[derive(Debug)]
pub struct ImageData {
    /// Training images.
    pub train: ImageSet,
    /// Evaluation images, when there is an evaluation split.
    pub eval: Option<ImageSet>,
    /// Class names by id.
    pub label_names: Vec<String>,
    /// Rows the source skipped as invalid while reading (Parquet rows without an image).
    pub skipped: usize,
}

/// Loads, checks and subsamples the run's image splits (`[data]`), as the text path does:
/// `shuffle(seed)`, `eval_skip`, `train_select` / `eval_select`.
pub fn load(config: &RunConfig, checkpoint_labels: Option<Vec<String>>) -> Result<ImageData> {
    let d = &config.data;
    let on_invalid = if d.skip_invalid { OnInvalid::Skip } else { OnInvalid::Error };
    let options =
        LoadOptions { on_invalid, config: d.config.clone(), local_data: d.local_data.clone(), ..Default::default() };
    let root = Path::new(&d.source);
    if root.is_dir() {
        check_class_folders(root, &d.train_split)?;
        if let Some(e) = &d.eval_split {
            check_class_folders(root, e)?;
        }
    }
    let source = DatasetSource::open(&d.source, options)?;
    let mut skipped = 0;
    let mut split = |name: &str, skip: usize, select: Option<usize>| -> Result<Dataset> {
        let loaded = source.load(Some(name))?;
        skipped += loaded.skipped.len();
        crate::data::subsample(loaded.dataset, name, d.shuffle_seed, skip, select)
    };
    let train = split(&d.train_split, 0, d.train_select)?;
    let eval = match &d.eval_split {
        Some(name) => Some(split(name, d.eval_skip, d.eval_select)?),
        None => None,
    };
    let label_column = config.label_column();
    let label_names = crate::data::label_names(config, &train, &label_column, checkpoint_labels)?;

    let image_column = config.image_column();
    // Image paths in a text column are relative to the data's folder.
    let base = if root.is_dir() { Some(root.to_path_buf()) } else { root.parent().map(Path::to_path_buf) };
    let image_set = |ds: &Dataset, image_column: &str, label_column: &str, n: usize| {
        image_set(ds, image_column, label_column, n, base.as_deref())
    };
    let train = image_set(&train, &image_column, &label_column, label_names.len())?;
    if train.is_empty() {
        return Err(TrainError::Config(format!("data: the training split '{}' has no images", d.train_split)));
    }
    let eval = match eval {
        Some(ds) => Some(image_set(&ds, &image_column, &label_column, label_names.len())?),
        None => None,
    };
    if let (Some(eval), Some(eval_name)) = (&eval, &d.eval_split) {
        check_eval_classes(&train, eval, &label_names, &d.train_split, eval_name, d.train_select.is_some())?;
    }
    if root.is_dir() {
        check_classes_from_training_folder(&root.join(&d.train_split), &label_names)?;
    }
    Ok(ImageData { train, eval, label_names, skipped })
}

/// The images and class ids of a loaded split.
fn image_set(
    ds: &Dataset,
    image_column: &str,
    label_column: &str,
    num_labels: usize,
    base: Option<&Path>,
) -> Result<ImageSet> {
    let origin = ds.name().to_string();
    let images = match ds.column(image_column).ok() {
        Some(Column::Image(v)) => v.clone(),
        Some(Column::Str(paths)) => {
            let resolve = |p: &String| match base {
                Some(b) if Path::new(p).is_relative() => b.join(p).display().to_string(),
                _ => p.clone(),
            };
            paths.iter().map(|p| ImageRef { path: Some(resolve(p)), bytes: None }).collect()
        }
        Some(other) => {
            return Err(TrainError::Config(format!(
                "data: column '{image_column}' of {origin} holds {}, not images (set data.image_column)",
                other.type_name()
            )));
        }
        None => {
            return Err(TrainError::Config(format!(
                "data: {origin} has no column '{image_column}' (columns: {}; set data.image_column)",
                ds.column_names().join(", ")
            )));
        }
    };
    let labels = match ds.column(label_column).ok() {
        Some(Column::Int(v)) => v.clone(),
        _ => {
            return Err(TrainError::Config(format!(
                "data: {origin} has no integer class column '{label_column}' (set data.label_column)"
            )));
        }
    };
    if let Some((row, bad)) = labels.iter().enumerate().find(|(_, l)| **l < 0 || **l as usize >= num_labels) {
        return Err(TrainError::Config(format!(
            "data: {origin} row {row}: class id {bad} is outside the {num_labels} labels"
        )));
    }
    Ok(ImageSet { origin, images, labels })
}

/// torchvision's `ImageFolder` refuses a class folder without images ("Found no valid file
/// for the classes ..."); so does ft, naming the folder — silently dropping it would shift
/// every later class id.
fn check_class_folders(root: &Path, split: &str) -> Result<()> {
    let dir = root.join(split);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
    let mut empty: Vec<PathBuf> = Vec::new();
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() && list_images(&p)?.is_empty() {
            empty.push(p);
        }
    }
    empty.sort();
    if let Some(first) = empty.first() {
        let has_files = std::fs::read_dir(first).map(|mut e| e.next().is_some()).unwrap_or(false);
        return Err(TrainError::Config(format!(
            "data: class folder {} has no images{} ({} empty class folder(s) in {}); torchvision's ImageFolder \
             refuses this too: add images or remove the folder",
            first.display(),
            if has_files { " (only files that are not .png/.jpg/... images)" } else { "" },
            empty.len(),
            dir.display()
        )));
    }
    Ok(())
}

/// torchvision's `ImageFolder(root/train)` takes its classes from the training folder; ft reads
/// every split of the root at once (so that class ids agree across splits). A class folder that
/// exists only in some other split would become a head row no image trains: an error naming it.
fn check_classes_from_training_folder(train_dir: &Path, names: &[String]) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(train_dir) else { return Ok(()) };
    let classes: BTreeSet<String> =
        entries.flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    if classes.is_empty() {
        return Ok(());
    }
    let extra: Vec<&String> = names.iter().filter(|n| !classes.contains(*n)).collect();
    if extra.is_empty() {
        return Ok(());
    }
    Err(TrainError::Config(format!(
        "data: class folder(s) {} exist in other splits of {} but not in the training folder {}: as torchvision's \
         ImageFolder, the classes are the training folder's — add training images or remove those folders",
        extra.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", "),
        train_dir.parent().map_or_else(|| train_dir.display().to_string(), |p| p.display().to_string()),
        train_dir.display()
    )))
}

/// Every class of the evaluation split must have training images (a class the model never
/// sees cannot be learnt; its scores would be noise).
fn check_eval_classes(
    train: &ImageSet,
    eval: &ImageSet,
    names: &[String],
    train_split: &str,
    eval_split: &str,
    subsampled: bool,
) -> Result<()> {
    let seen: BTreeSet<i64> = train.labels.iter().copied().collect();
    let mut missing: Vec<(i64, usize)> = Vec::new();
    for &l in &eval.labels {
        if !seen.contains(&l) {
            match missing.iter_mut().find(|(c, _)| *c == l) {
                Some((_, n)) => *n += 1,
                None => missing.push((l, 1)),
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort();
    let list: Vec<String> = missing
        .iter()
        .map(|(c, n)| format!("'{}' ({n} image(s))", names.get(*c as usize).map_or("?", |s| s.as_str())))
        .collect();
    Err(TrainError::Config(format!(
        "data: the evaluation split '{eval_split}' has classes with no image in the training split '{train_split}'{}: {}",
        if subsampled { " (after data.train_select)" } else { "" },
        list.join(", ")
    )))
}
