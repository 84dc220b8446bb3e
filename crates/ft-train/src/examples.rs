//! The examples a run iterates over, and how a list of row indices becomes a [`Batch`].

use burn::tensor::{Device, Int, Tensor, TensorData};
use ft_data::collate::{CollateKind, collate_dataset};
use ft_data::dataset::{Column, Dataset};
use ft_models::auto::Encoder;

use crate::trainable::Batch;
use crate::{Result, TrainError};

/// Training or evaluation examples.
#[derive(Debug)]
pub enum Examples {
    /// Tokenized rows, padded per batch (`DataCollatorWithPadding` /
    /// `DataCollatorForTokenClassification`).
    Text {
        /// Columns `input_ids`, `token_type_ids`, `labels`.
        dataset: Dataset,
        /// The tokenizer's pad id.
        pad_id: u32,
    },
    /// Encoder features computed once (the frozen method with `cache_features`).
    Features {
        /// Row-major `[n, dim]`.
        x: Vec<f32>,
        /// Feature size.
        dim: usize,
        /// Class ids.
        labels: Vec<i64>,
    },
    /// The frozen encoder run again for every batch (the notebook's own loop).
    Recompute {
        /// Tokenized rows.
        dataset: Dataset,
        /// The tokenizer's pad id.
        pad_id: u32,
        /// The frozen encoder, on an inference device.
        encoder: Box<Encoder>,
    },
}

impl Examples {
    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Self::Text { dataset, .. } | Self::Recompute { dataset, .. } => dataset.len(),
            Self::Features { labels, .. } => labels.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Token counts per example (for `group_by_length`).
    pub fn lengths(&self) -> Vec<usize> {
        match self {
            Self::Text { dataset, .. } | Self::Recompute { dataset, .. } => match dataset.column("input_ids") {
                Ok(Column::IntList(v)) => v.iter().map(Vec::len).collect(),
                _ => vec![1; dataset.len()],
            },
            Self::Features { labels, .. } => vec![1; labels.len()],
        }
    }

    /// The batch of rows `indices`, on `device`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        match self {
            Self::Text { dataset, pad_id } => {
                Ok(Batch::Text(collate_dataset(dataset, indices, CollateKind::Auto, *pad_id, None, device)?))
            }
            Self::Features { x, dim, labels } => {
                let mut rows = Vec::with_capacity(indices.len() * dim);
                for &i in indices {
                    rows.extend_from_slice(&x[i * dim..(i + 1) * dim]);
                }
                let y: Vec<i64> = indices.iter().map(|&i| labels[i]).collect();
                Ok(Batch::Features {
                    x: Tensor::from_data(TensorData::new(rows, [indices.len(), *dim]), device),
                    labels: Tensor::<1, Int>::from_data(TensorData::new(y, [indices.len()]), device),
                })
            }
            Self::Recompute { dataset, pad_id, encoder } => {
                let Some(inference) = encoder_device(encoder) else {
                    return Err(TrainError::State("the frozen encoder has no device".into()));
                };
                let (x, dim, y) = first_token_features(encoder, dataset, indices, *pad_id, &inference)?;
                Ok(Batch::Features {
                    x: Tensor::from_data(TensorData::new(x, [indices.len(), dim]), device),
                    labels: Tensor::<1, Int>::from_data(TensorData::new(y, [indices.len()]), device),
                })
            }
        }
    }
}

fn encoder_device(encoder: &Encoder) -> Option<Device> {
    use burn::module::Module;
    encoder.devices().into_iter().next()
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
    let ft_data::collate::Collated::Classification(b) = collated else {
        return Err(TrainError::State("the frozen method needs one class label per row".into()));
    };
    let hidden = encoder.forward(&b.inputs);
    let [n, _, dim] = hidden.dims();
    let first = hidden.narrow(1, 0, 1).reshape([n, dim]);
    let x = first.into_data().try_into_vec_as::<f32>().map_err(|e| TrainError::State(format!("reading features: {e:?}")))?;
    let y = b.labels.into_data().try_into_vec_as::<i64>().map_err(|e| TrainError::State(format!("reading labels: {e:?}")))?;
    Ok((x, dim, y))
}
