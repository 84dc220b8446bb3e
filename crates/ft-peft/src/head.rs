//! The prediction heads AdapterHub's `adapters` library gives an adapter
//! (`add_classification_head`, `add_tagging_head`): a stack of dropout → linear (→ activation)
//! layers, built as the library's `PredictionHead.build` numbers them, so that tensor names are
//! the library's `heads.{name}.{index}.weight`.

use burn::module::{Module, Param, ParamId};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Distribution, Tensor};
use ft_hub::ops::Activation;

use crate::adapterhub::HeadConfig;

/// One linear layer of a head, with its index in the library's `nn.Sequential`.
#[derive(Module, Debug)]
pub struct HeadLinear {
    /// The layer (Burn's layout: weight `[in, out]`).
    pub linear: Linear,
    /// Its index among the head's modules (`heads.{name}.{index}.weight`).
    #[module(skip)]
    pub index: usize,
}

/// A prediction head: for each layer, dropout then linear, with the activation after every
/// layer but the last.
#[derive(Module, Debug)]
pub struct PredictionHead {
    /// The linear layers, in order.
    pub layers: Vec<HeadLinear>,
    /// Dropout before each linear layer (training only).
    pub dropout: Dropout,
    /// Activation after the hidden layers.
    #[module(skip)]
    pub activation: Option<Activation>,
}

/// The library's module indices of the linear layers for `config` (dropout and activation
/// modules take indices too): `[1, 4]` for the default two-layer head with tanh.
pub fn linear_indices(config: &HeadConfig) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    for l in 0..config.layers {
        i += 1; // dropout
        out.push(i);
        i += 1;
        if l + 1 < config.layers && config.activation_function.is_some() {
            i += 1;
        }
    }
    out
}

/// The layer shapes `[in, out]` of `config`'s head on a model of width `hidden`.
pub fn layer_shapes(config: &HeadConfig, hidden: usize) -> Vec<[usize; 2]> {
    (0..config.layers).map(|l| [hidden, if l + 1 < config.layers { hidden } else { config.num_labels }]).collect()
}

impl PredictionHead {
    /// A new head for a model of width `hidden`, initialised as the library (through the
    /// model's `_init_weights`): weights N(0, `init_std`²), biases 0. `dropout` is the head's
    /// dropout probability; `ids(index, tensor)` gives each parameter's id.
    pub fn new(
        config: &HeadConfig,
        hidden: usize,
        dropout: f64,
        init_std: f64,
        ids: &dyn Fn(usize, &str) -> ParamId,
        device: &Device,
    ) -> crate::Result<Self> {
        let layers = linear_indices(config)
            .into_iter()
            .zip(layer_shapes(config, hidden))
            .enumerate()
            .map(|(l, (index, [i, o]))| {
                let bias = l + 1 < config.layers || config.output_bias();
                let mut linear = LinearConfig::new(i, o).with_bias(bias).init(device);
                linear.weight = Param::from_tensor(Tensor::random([i, o], Distribution::Normal(0.0, init_std), device));
                linear.weight.id = ids(index, "weight");
                if let Some(b) = &mut linear.bias {
                    *b = Param::from_tensor(Tensor::zeros([o], device));
                    b.id = ids(index, "bias");
                }
                HeadLinear { linear, index }
            })
            .collect();
        Self::from_layers(config, layers, dropout)
    }

    /// A head from its linear layers (in order, with their indices).
    pub fn from_layers(config: &HeadConfig, layers: Vec<HeadLinear>, dropout: f64) -> crate::Result<Self> {
        Ok(Self { layers, dropout: DropoutConfig::new(dropout).init(), activation: config.activation()? })
    }

    /// Number of labels (the last layer's width).
    pub fn num_labels(&self) -> usize {
        self.layers.last().map_or(0, |l| l.linear.weight.lazy_shape().dims::<2>()[1])
    }

    /// The head on hidden states.
    ///
    /// # Shapes
    /// - `x`: `[..., hidden]`; output `[..., num_labels]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let n = self.layers.len();
        self.layers.iter().enumerate().fold(x, |x, (l, layer)| {
            let y = ft_hub::ops::linear::forward(&layer.linear, ft_hub::ops::dropout(&self.dropout, x));
            match &self.activation {
                Some(a) if l + 1 < n => a.forward(y),
                _ => y,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_the_library_numbering() {
        let c = HeadConfig::classification(3, None);
        assert_eq!(linear_indices(&c), vec![1, 4]);
        assert_eq!(linear_indices(&HeadConfig::tagging(5, None)), vec![1]);
        let mut plain = c.clone();
        plain.activation_function = None;
        assert_eq!(linear_indices(&plain), vec![1, 3]);
        let mut three = c;
        three.layers = 3;
        assert_eq!(linear_indices(&three), vec![1, 4, 7]);
        assert_eq!(layer_shapes(&three, 8), vec![[8, 8], [8, 8], [8, 3]]);
    }

    #[test]
    fn forward_is_linear_tanh_linear() {
        let device = Device::flex();
        let c = HeadConfig::classification(3, None);
        let head = PredictionHead::new(&c, 4, 0.0, 0.5, &|_, _| ParamId::new(), &device).unwrap();
        let x = Tensor::<2>::random([2, 4], Distribution::Normal(0.0, 1.0), &device);
        let want = head.layers[1].linear.forward(head.layers[0].linear.forward(x.clone()).tanh());
        let got = head.forward(x);
        let d: f32 = (got - want).abs().max().into_scalar();
        assert!(d < 1e-6, "{d}");
        assert_eq!(head.num_labels(), 3);
    }
}
