//! `pipeline("image-classification")`: images in, the top class with its softmax score and the
//! raw logits out — with the preprocessing the model's `pretrained_cfg` describes (for
//! torchvision's ResNet18, exactly `ResNet18_Weights.IMAGENET1K_V1.transforms()`).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ft_data::vision::{ImageTransform, RgbImage, open_rgb};
use ft_models::resnet::{LoadedResNet, ResNet};

use super::common::{PipelineOptions, argmax, softmax, to_vec};
use crate::{Result, ServeError};

/// One image's prediction.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImageClassification {
    /// The top class's name (`label_names`, else `LABEL_i`).
    pub label: String,
    /// Its softmax probability.
    pub score: f32,
    /// The raw logits, one per class.
    pub logits: Vec<f32>,
}

/// A ResNet with its preprocessing.
#[derive(Debug)]
pub struct ImageClassificationPipeline {
    model: ResNet,
    transform: ImageTransform,
    labels: Vec<String>,
    batch_size: usize,
    device: Device,
}

impl ImageClassificationPipeline {
    /// Wraps a loaded model; the transform comes from its `pretrained_cfg`. `options.max_length`
    /// does not apply to images and must be unset.
    pub fn new(loaded: LoadedResNet, options: &PipelineOptions, device: &Device) -> Result<Self> {
        if options.batch_size == 0 {
            return Err(ServeError::Options("batch size must be at least 1".into()));
        }
        if options.max_length.is_some() {
            return Err(ServeError::Options("max length applies to text, not to images".into()));
        }
        Ok(Self {
            transform: loaded.config.transform(),
            labels: loaded.config.label_names(),
            model: loaded.model,
            batch_size: options.batch_size,
            device: device.clone(),
        })
    }

    /// Label names by class id.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The preprocessing in use.
    pub fn transform(&self) -> &ImageTransform {
        &self.transform
    }

    /// Classifies decoded images; one result per image, in order.
    pub fn predict(&self, images: &[RgbImage]) -> Result<Vec<ImageClassification>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.batch_size) {
            let batch = self.transform.batch(chunk, &self.device);
            self.model.check_input(batch.dims())?;
            let logits = to_vec(self.model.forward(batch))?;
            let n = self.labels.len();
            for row in logits.chunks(n) {
                let scores = softmax(row);
                let (best, score) = argmax(&scores);
                out.push(ImageClassification { label: self.labels[best].clone(), score, logits: row.to_vec() });
            }
        }
        Ok(out)
    }

    /// Reads, decodes and classifies image files. A file that cannot be read or decoded is a
    /// [`ServeError::Input`] with its index and a message naming the file.
    pub fn predict_paths<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Vec<ImageClassification>> {
        let mut out = Vec::with_capacity(paths.len());
        for (c, chunk) in paths.chunks(self.batch_size).enumerate() {
            let images = chunk
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    open_rgb(p.as_ref())
                        .map_err(|e| ServeError::Input { index: c * self.batch_size + i, message: e.to_string() })
                })
                .collect::<Result<Vec<_>>>()?;
            out.extend(self.predict(&images)?);
        }
        Ok(out)
    }
}

/// Resolves an image path from an input file: absolute paths as given, relative ones against
/// the directory of the input file (`base`), so that an input file and its images can move
/// together.
pub fn resolve_image_path(base: &Path, image: &str) -> PathBuf {
    let p = Path::new(image);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match base.parent() {
        Some(dir) => dir.join(p),
        None => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_input_file() {
        assert_eq!(resolve_image_path(Path::new("data/in.jsonl"), "img/a.png"), PathBuf::from("data/img/a.png"));
        assert_eq!(resolve_image_path(Path::new("in.jsonl"), "a.png"), PathBuf::from("a.png"));
        assert_eq!(resolve_image_path(Path::new("data/in.jsonl"), "/abs/a.png"), PathBuf::from("/abs/a.png"));
    }
}
