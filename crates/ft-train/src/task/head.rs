//! The notebook's §5: a frozen encoder with a new linear head on the first token. Only the head
//! trains; the encoder's first-token features are computed once per example and reused in
//! every epoch (`cache_features`, the default), or recomputed for every batch as the notebook's
//! own loop does.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ft_data::collate::{CollateKind, Collated, collate_dataset};
use ft_data::dataset::Dataset;
use ft_models::auto::Encoder;
use ft_models::naming::{HubModule, HubPath, Part, param_id};

use super::classification::{ROW_METRICS, RowClassificationEvaluator, RowOutputs, row_loss};
use super::{Evaluator, Split, TrainTask};
use crate::{Result, TrainError};

/// The head trained on the encoder's features: `classifier(dropout(x))`.
#[derive(Module, Debug)]
pub struct LinearHead {
    /// Dropout on the features.
    pub dropout: Dropout,
    /// `[H, num_labels]`.
    pub classifier: Linear,
}

impl LinearHead {
    /// A new head, initialised as `nn.Linear` — lazily: its values are drawn from the device's
    /// generator on first use, the first training step. Its parameters carry the ids of
    /// `classifier.weight` / `classifier.bias`, so that an optimizer state saved with a
    /// checkpoint applies to the head read back from it.
    pub fn new(hidden: usize, num_labels: usize, dropout: f64, device: &Device) -> Self {
        let mut classifier = LinearConfig::new(hidden, num_labels).init(device);
        classifier.weight.id = param_id("classifier.weight");
        if let Some(b) = &mut classifier.bias {
            b.id = param_id("classifier.bias");
        }
        Self { dropout: DropoutConfig::new(dropout).init(), classifier }
    }

    /// # Shapes
    /// - `x`: `[batch, H]`; output `[batch, num_labels]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        ft_hub::ops::linear::forward(&self.classifier, ft_hub::ops::dropout(&self.dropout, x))
    }
}

impl HubModule for LinearHead {
    fn parts(&mut self, path: &HubPath, f: &mut dyn FnMut(&HubPath, Part<'_>)) {
        f(&path.pp("classifier"), Part::Linear(&mut self.classifier));
    }
}

/// Where a split's features come from.
#[derive(Debug)]
pub enum Features {
    /// Computed once: row-major `[n, dim]` with the class ids.
    Cached {
        /// `[n, dim]`, row-major.
        x: Vec<f32>,
        /// Feature size.
        dim: usize,
        /// Class ids.
        labels: Vec<i64>,
    },
    /// The frozen encoder run again for every batch.
    Recompute(Dataset),
}

impl Features {
    fn len(&self) -> usize {
        match self {
            Self::Cached { labels, .. } => labels.len(),
            Self::Recompute(ds) => ds.len(),
        }
    }
}

/// Classification with a linear head on frozen first-token features.
#[derive(Debug)]
pub struct HeadTask {
    /// The frozen encoder (on an inference device).
    pub encoder: Encoder,
    /// The inference device the encoder runs on.
    pub encoder_device: Device,
    /// The tokenizer's pad id.
    pub pad_id: u32,
    /// Training features.
    pub train: Features,
    /// Evaluation features.
    pub eval: Option<Features>,
    /// Seconds it took to cache the evaluation features (0 when they are recomputed).
    pub eval_feature_seconds: f64,
}

impl HeadTask {
    /// Computes every row's features once, `batch_size` rows per encoder pass; `progress` is
    /// called with the number of rows done after each pass.
    pub fn cache(&self, ds: &Dataset, batch_size: usize, progress: &mut dyn FnMut(usize)) -> Result<Features> {
        let (mut x, mut labels, mut dim) = (Vec::new(), Vec::new(), 0);
        let all: Vec<usize> = (0..ds.len()).collect();
        for chunk in all.chunks(batch_size.max(1)) {
            let (cx, d, cy) = first_token_features(&self.encoder, ds, chunk, self.pad_id, &self.encoder_device)?;
            x.extend(cx);
            labels.extend(cy);
            dim = d;
            progress(chunk.len());
        }
        Ok(Features::Cached { x, dim, labels })
    }
}

impl TrainTask for HeadTask {
    type Model = LinearHead;
    type Batch = (Tensor<2>, Tensor<1, Int>);
    type Outputs = RowOutputs;

    fn len(&self, split: Split) -> usize {
        match split {
            Split::Train => self.train.len(),
            Split::Eval => self.eval.as_ref().map_or(0, Features::len),
        }
    }

    fn lengths(&self) -> Vec<usize> {
        vec![1; self.train.len()]
    }

    fn batch(&self, split: Split, indices: &[usize], device: &Device) -> Result<Self::Batch> {
        let features = match split {
            Split::Train => &self.train,
            Split::Eval => self.eval.as_ref().ok_or_else(|| TrainError::State("no evaluation data".into()))?,
        };
        let (x, dim, y) = match features {
            Features::Cached { x, dim, labels } => {
                let mut rows = Vec::with_capacity(indices.len() * dim);
                for &i in indices {
                    rows.extend_from_slice(&x[i * dim..(i + 1) * dim]);
                }
                (rows, *dim, indices.iter().map(|&i| labels[i]).collect())
            }
            Features::Recompute(ds) => {
                first_token_features(&self.encoder, ds, indices, self.pad_id, &self.encoder_device)?
            }
        };
        let n = indices.len();
        Ok((
            Tensor::from_data(TensorData::new(x, [n, dim]), device),
            Tensor::<1, Int>::from_data(TensorData::new(y, [n]), device),
        ))
    }

    fn forward(&self, model: &LinearHead, batch: &Self::Batch) -> Result<(Tensor<1>, RowOutputs)> {
        let (x, labels) = batch;
        let logits = model.forward(x.clone());
        Ok(row_loss(logits, labels))
    }

    fn evaluator(&self) -> Box<dyn Evaluator<RowOutputs>> {
        Box::new(RowClassificationEvaluator::default())
    }

    fn metric_names(&self) -> Vec<String> {
        ROW_METRICS.iter().map(|s| s.to_string()).collect()
    }

    fn eval_setup_seconds(&self) -> f64 {
        self.eval_feature_seconds
    }
}

/// Runs the encoder over rows `indices` of a tokenized dataset and returns the first token's
/// last hidden state of each row (`[n, dim]`, row-major) with the rows' class labels.
pub fn first_token_features(
    encoder: &Encoder,
    dataset: &Dataset,
    indices: &[usize],
    pad_id: u32,
    device: &Device,
) -> Result<(Vec<f32>, usize, Vec<i64>)> {
    let collated = collate_dataset(dataset, indices, CollateKind::Auto, pad_id, None, device)?;
    let Collated::Classification(b) = collated else {
        return Err(TrainError::State("the frozen method needs one class label per row".into()));
    };
    let hidden = encoder.forward_first_token(&b.inputs);
    let [n, _, dim] = hidden.dims();
    let first = hidden.reshape([n, dim]);
    let x = first
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| TrainError::State(format!("reading features: {e:?}")))?;
    let y = b
        .labels
        .into_data()
        .try_into_vec_as::<i64>()
        .map_err(|e| TrainError::State(format!("reading labels: {e:?}")))?;
    Ok((x, dim, y))
}
