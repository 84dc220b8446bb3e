//! Image classification as a [`TrainTask`]: a ResNet, cross-entropy on its logits.
//!
//! What the loop feeds the model depends on what trains: the images (full fine-tuning, or any
//! run with random augmentation), or — when the first stages are frozen (BatchNorm in eval
//! mode) and the transform is deterministic — the frozen prefix's output, computed once per
//! image by [`ImageTask::cache`] and reused in every epoch and evaluation: the pooled features
//! for §10's frozen backbone (only `fc` runs per step), stage 2's output for exercise 7's
//! `unfreeze = ["layer3", "layer4"]`. Both give the same numbers; the cache only skips work.
//!
//! Images are decoded and transformed on rayon's threads ([`super::data::pixels`]); the next
//! batch is prepared on a background thread while the model computes the current one
//! ([`TrainTask::prefetch`]). `data_wait_seconds` counts how long the loop still waited.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use ft_models::resnet::ResNet;

use super::data::{ImageSet, Pixels, Skipped, Transform, pixels};
use crate::task::classification::{ROW_METRICS, RowClassificationEvaluator, RowOutputs, row_loss};
use crate::task::{Evaluator, Split, TrainTask};
use crate::{Result, TrainError};

/// Where the trained model's forward pass starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The images (nothing cached).
    Images,
    /// The output of stage `k` (0 = the stem, 1-3 = `layer1`-`layer3`), cached; the model
    /// runs from stage `k + 1`.
    Stage(usize),
    /// The pooled features (only `fc` trains), cached.
    Features,
}

/// A split's inputs: images decoded per batch, or the frozen prefix's outputs computed once.
#[derive(Debug)]
enum Inputs {
    Images { set: Arc<ImageSet>, transform: Arc<Transform> },
    Cached { values: Vec<f32>, shape: Vec<usize>, labels: Vec<i64> },
}

impl Inputs {
    fn len(&self) -> usize {
        match self {
            Self::Images { set, .. } => set.len(),
            Self::Cached { labels, .. } => labels.len(),
        }
    }
}

/// A batch: the network's inputs at [`Start`] and the class ids.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// `[batch, 3, size, size]` images, or `[batch, c, h, w]` stage outputs, or
    /// `[batch, features, 1, 1]` pooled features.
    pub x: Tensor<4>,
    /// `[batch]`.
    pub labels: Tensor<1, Int>,
}

struct Prefetch {
    split: Split,
    indices: Vec<usize>,
    epoch: usize,
    handle: JoinHandle<Result<Pixels>>,
}

/// See the module docs.
pub struct ImageTask {
    train: Inputs,
    eval: Option<Inputs>,
    start: Start,
    skip_invalid: bool,
    skipped: Skipped,
    epoch: Cell<usize>,
    prefetched: RefCell<Option<Prefetch>>,
    waited: Cell<f64>,
    eval_setup: f64,
}

impl ImageTask {
    /// A task reading `train` / `eval` images through their transforms (nothing cached yet).
    pub fn new(
        train: (ImageSet, Transform),
        eval: Option<(ImageSet, Transform)>,
        skip_invalid: bool,
        skipped: Skipped,
    ) -> Self {
        let inputs = |(set, transform): (ImageSet, Transform)| Inputs::Images {
            set: Arc::new(set),
            transform: Arc::new(transform),
        };
        Self {
            train: inputs(train),
            eval: eval.map(inputs),
            start: Start::Images,
            skip_invalid,
            skipped,
            epoch: Cell::new(0),
            prefetched: RefCell::new(None),
            waited: Cell::new(0.0),
            eval_setup: 0.0,
        }
    }

    /// Images of both splits.
    pub fn len_all(&self) -> usize {
        self.train.len() + self.eval.as_ref().map_or(0, Inputs::len)
    }

    /// Where the forward pass starts.
    pub fn start(&self) -> Start {
        self.start
    }

    /// Seconds the training and evaluation loops waited for images (decoding and transforms
    /// not hidden behind the model's work).
    pub fn data_wait_seconds(&self) -> f64 {
        self.waited.get()
    }

    /// Runs the frozen prefix of `model` (on an inference device: BatchNorm uses its running
    /// statistics) once over every image of both splits, `batch_size` images per pass, and
    /// keeps its outputs: from now on batches start at `start`. Both splits' transforms must be
    /// deterministic. `progress` is called with the images done after each pass. Returns the
    /// seconds spent on the training and the evaluation images.
    pub fn cache(
        &mut self,
        model: &ResNet,
        start: Start,
        batch_size: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<(f64, f64)> {
        if start == Start::Images {
            return Ok((0.0, 0.0));
        }
        let mut seconds = [0.0; 2];
        for (k, inputs) in [Some(&mut self.train), self.eval.as_mut()].into_iter().enumerate() {
            let Some(inputs) = inputs else { continue };
            let t0 = Instant::now();
            let Inputs::Images { set, transform } = &*inputs else { continue };
            if !transform.is_deterministic() {
                return Err(TrainError::State("cannot cache the outputs of a random transform".into()));
            }
            let device = model.conv1.weight.device();
            let (mut values, mut labels, mut shape) = (Vec::new(), Vec::new(), Vec::new());
            let all: Vec<usize> = (0..set.len()).collect();
            for chunk in all.chunks(batch_size.max(1)) {
                let px = pixels(set, transform, chunk, 0, self.skip_invalid, &self.skipped)?;
                if px.labels.is_empty() {
                    progress(chunk.len());
                    continue;
                }
                let size = transform.size();
                let x = Tensor::<4>::from_data(TensorData::new(px.values, [px.labels.len(), 3, size, size]), &device);
                let out = prefix(model, x, start);
                let dims = out.dims();
                shape = dims[1..].to_vec();
                values.extend(
                    out.into_data()
                        .try_into_vec::<f32>()
                        .map_err(|e| TrainError::State(format!("reading features: {e:?}")))?,
                );
                labels.extend(px.labels);
                progress(chunk.len());
            }
            if labels.is_empty() {
                return Err(TrainError::Config(format!("data: no image of {} could be decoded", set.origin)));
            }
            *inputs = Inputs::Cached { values, shape, labels };
            seconds[k] = t0.elapsed().as_secs_f64();
        }
        self.start = start;
        self.eval_setup = seconds[1];
        Ok((seconds[0], seconds[1]))
    }

    fn inputs(&self, split: Split) -> Result<&Inputs> {
        match split {
            Split::Train => Ok(&self.train),
            Split::Eval => self.eval.as_ref().ok_or_else(|| TrainError::State("no evaluation data".into())),
        }
    }

    /// The pixels of `indices`: the prefetched ones when they are these, else decoded now.
    fn images(
        &self,
        split: Split,
        set: &Arc<ImageSet>,
        transform: &Arc<Transform>,
        indices: &[usize],
    ) -> Result<Pixels> {
        let epoch = if split == Split::Train { self.epoch.get() } else { 0 };
        let t0 = Instant::now();
        let ready = self.prefetched.borrow_mut().take();
        let px = match ready {
            Some(p) if p.split == split && p.indices == indices && p.epoch == epoch => {
                p.handle.join().map_err(|_| TrainError::State("the image decoding thread panicked".into()))??
            }
            other => {
                drop(other); // a stale prefetch: let it finish on its own
                pixels(set, transform, indices, epoch, self.skip_invalid, &self.skipped)?
            }
        };
        self.waited.set(self.waited.get() + t0.elapsed().as_secs_f64());
        Ok(px)
    }
}

/// `model`'s frozen prefix up to `start`, as a 4-d tensor.
///
/// # Shapes
/// - `x`: `[batch, 3, size, size]`; output stage `k`'s output, or `[batch, features, 1, 1]`
fn prefix(model: &ResNet, x: Tensor<4>, start: Start) -> Tensor<4> {
    match start {
        Start::Images => x,
        Start::Stage(k) => model.forward_stages(x, 0, k),
        Start::Features => {
            let f = model.forward_features(x);
            let [b, c] = f.dims();
            f.reshape([b, c, 1, 1])
        }
    }
}

impl TrainTask for ImageTask {
    type Model = ResNet;
    type Batch = ImageBatch;
    type Outputs = RowOutputs;

    fn len(&self, split: Split) -> usize {
        self.inputs(split).map_or(0, Inputs::len)
    }

    fn lengths(&self) -> Vec<usize> {
        vec![1; self.train.len()]
    }

    fn set_epoch(&self, epoch: usize) {
        self.epoch.set(epoch);
    }

    fn prefetch(&self, split: Split, indices: &[usize]) {
        let Ok(Inputs::Images { set, transform }) = self.inputs(split) else { return };
        let epoch = if split == Split::Train { self.epoch.get() } else { 0 };
        let (set, transform, skipped, skip_invalid) =
            (set.clone(), transform.clone(), self.skipped.clone(), self.skip_invalid);
        let owned = indices.to_vec();
        let handle = std::thread::spawn(move || pixels(&set, &transform, &owned, epoch, skip_invalid, &skipped));
        *self.prefetched.borrow_mut() = Some(Prefetch { split, indices: indices.to_vec(), epoch, handle });
    }

    fn batch(&self, split: Split, indices: &[usize], device: &Device) -> Result<ImageBatch> {
        let (values, shape, labels) = match self.inputs(split)? {
            Inputs::Images { set, transform } => {
                let px = self.images(split, set, transform, indices)?;
                if px.labels.is_empty() {
                    return Err(TrainError::Config(format!(
                        "data: no image of this batch of {} could be decoded ({} images skipped so far)",
                        set.origin,
                        self.skipped.lock().map_or(0, |s| s.len())
                    )));
                }
                let size = transform.size();
                (px.values, [px.labels.len(), 3, size, size], px.labels)
            }
            Inputs::Cached { values, shape, labels } => {
                let row: usize = shape.iter().product();
                let mut x = Vec::with_capacity(indices.len() * row);
                for &i in indices {
                    x.extend_from_slice(&values[i * row..(i + 1) * row]);
                }
                let y = indices.iter().map(|&i| labels[i]).collect::<Vec<_>>();
                (x, [indices.len(), shape[0], shape[1], shape[2]], y)
            }
        };
        let n = labels.len();
        Ok(ImageBatch {
            x: Tensor::from_data(TensorData::new(values, shape), device),
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
        })
    }

    fn forward(&self, model: &ResNet, batch: &ImageBatch) -> Result<(Tensor<1>, RowOutputs)> {
        let x = batch.x.clone();
        let logits = match self.start {
            Start::Images => {
                model.check_input(x.dims()).map_err(|e| TrainError::State(e.to_string()))?;
                model.forward(x)
            }
            Start::Stage(k) => ft_hub::ops::linear::forward(&model.fc, model.pool(model.forward_stages(x, k + 1, 4))),
            Start::Features => ft_hub::ops::linear::forward(&model.fc, model.pool(x)),
        };
        Ok(row_loss(logits, &batch.labels))
    }

    fn evaluator(&self) -> Box<dyn Evaluator<RowOutputs>> {
        Box::new(RowClassificationEvaluator::default())
    }

    fn metric_names(&self) -> Vec<String> {
        ROW_METRICS.iter().map(|s| s.to_string()).collect()
    }

    fn eval_setup_seconds(&self) -> f64 {
        self.eval_setup
    }
}
