//! The seams parameter-efficient methods attach to are no-ops until something is attached:
//! each test compares a model with a no-op attachment (a zero LoRA delta, a zero bottleneck, an
//! empty prefix, input embeddings equal to the word embeddings) with the plain model, bit for
//! bit. (The methods themselves are tested in `ft-peft` and against PEFT / AdapterHub.)

#[path = "../../../tests/support/mod.rs"]
mod support;

use burn::module::{Module, Param};
use burn::nn::{DropoutConfig, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ft_models::auto::{AnyModel, LoadOptions, Task, load};
use ft_models::gpt2::GPT2LMHeadModel;
use ft_models::input::{KvCache, TextInput};
use ft_models::naming::{HubModule, HubPath, Part};
use ft_peft::bottleneck::{Bottleneck, Placement};
use ft_peft::lora::LoraLayer;
use ft_peft::slot::{Delta, NamedBottleneck, NamedDelta};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn batch(device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let ids = vec![2i64, 17, 45, 99, 3, 0, 2, 8, 9, 10, 11, 3];
    let mask = vec![1i64, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1];
    (
        Tensor::from_data(TensorData::new(ids, [2, 6]), device),
        Tensor::from_data(TensorData::new(mask, [2, 6]), device),
    )
}

fn load_model(name: &str, task: Task) -> AnyModel {
    let dir = support::fixture(&format!("models/{name}"));
    load(dir.to_str().unwrap(), task, &LoadOptions::default(), &Device::flex()).unwrap().model
}

/// Attaches a LoRA delta with B = 0 (PEFT's default init) to every projection, and a bottleneck
/// whose up projection is 0 to every adapter slot; counts what was attached.
fn attach_no_ops<M: HubModule>(model: &mut M) -> (usize, usize) {
    let device = Device::flex();
    let (mut deltas, mut slots) = (0, 0);
    // A slot follows its sub-layer's output projection, whose width is the hidden size.
    let mut hidden = 0;
    model.parts(&HubPath::root(), &mut |_, part| match part {
        Part::Projection(p) => {
            let (i, o) = (p.d_in(), p.d_out());
            hidden = o;
            let a = Tensor::<2>::random([i, 4], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
            p.adapters.adapters.push(NamedDelta {
                layer: Delta::Lora(LoraLayer {
                    lora_a: Param::from_tensor(a),
                    lora_b: Param::from_tensor(Tensor::zeros([4, o], &device)),
                    dropout: DropoutConfig::new(0.0).init(),
                    scaling: 2.0,
                }),
                name: "noop".into(),
                active: true,
                merged: false,
            });
            deltas += 1;
        }
        Part::Bottlenecks(slot) => {
            // A random down projection; up is all zeros.
            let mut up = LinearConfig::new(2, hidden).init(&device);
            up.weight = Param::from_tensor(Tensor::zeros([2, hidden], &device));
            up.bias = Some(Param::from_tensor(Tensor::zeros([hidden], &device)));
            slot.adapters.push(NamedBottleneck {
                layer: Bottleneck {
                    adapter_down: LinearConfig::new(hidden, 2).init(&device),
                    adapter_up: up,
                    dropout: burn::nn::DropoutConfig::new(0.0).init(),
                    non_linearity: ft_hub::ops::Activation::Relu,
                    placement: Placement::default(),
                },
                name: "noop".into(),
                active: true,
            });
            slots += 1;
        }
        _ => {}
    });
    (deltas, slots)
}

#[test]
fn no_op_adapters_leave_encoders_bit_identical() {
    for (name, task) in [
        ("tiny-bert-seqcls", Task::SequenceClassification),
        ("tiny-distilbert-seqcls", Task::SequenceClassification),
        ("tiny-bert-tokcls", Task::TokenClassification),
    ] {
        let device = Device::flex();
        let (ids, mask) = batch(&device);
        let plain = load_model(name, task);
        let mut attached = load_model(name, task);
        let (deltas, slots) = attach_no_ops(&mut attached);
        // Every linear layer is a projection; every layer has two slots.
        assert!(deltas >= 2 * 6 && slots == 2 * 2, "{name}: {deltas} projections, {slots} slots");
        let input = TextInput::ids(ids, Some(mask));
        let run = |m: &AnyModel| -> Vec<f32> {
            match m {
                AnyModel::SequenceClassifier(m) => values(m.forward_input(&input, None).unwrap()),
                AnyModel::TokenClassifier(m) => values(m.forward_input(&input, None).unwrap()),
                _ => unreachable!(),
            }
        };
        assert_eq!(run(&plain), run(&attached), "{name}");
    }
}

#[test]
fn no_op_adapters_leave_gpt2_bit_identical() {
    let device = Device::flex();
    let (ids, _) = batch(&device);
    let AnyModel::CausalLm(ft_models::auto::CausalLm::Gpt2(plain)) = load_model("tiny-gpt2", Task::CausalLm) else {
        unreachable!()
    };
    let mut attached: GPT2LMHeadModel = plain.clone();
    let (deltas, slots) = attach_no_ops(&mut attached);
    assert_eq!((deltas, slots), (4 * 2, 2 * 2));
    let a = plain.forward(ids.clone(), None, None, None).unwrap();
    let b = attached.forward(ids, None, None, None).unwrap();
    assert_eq!(values(a), values(b));
}

#[test]
fn input_embeddings_equal_ids() {
    let device = Device::flex();
    let (ids, mask) = batch(&device);
    let AnyModel::SequenceClassifier(m) = load_model("tiny-bert-seqcls", Task::SequenceClassification) else {
        unreachable!()
    };
    let ft_models::auto::SequenceClassifier::Bert(bert) = &m else { unreachable!() };
    let embeds = bert.bert.embeddings.word_embeddings.forward(ids.clone());
    let from_ids = m.forward_input(&TextInput::ids(ids.clone(), Some(mask.clone())), None).unwrap();
    let from_embeds = m.forward_input(&TextInput::embeds(embeds, Some(mask.clone())), None).unwrap();
    assert_eq!(values(from_ids.clone()), values(from_embeds));
    // And the plain forward is the same computation.
    let plain = bert.forward(ids.clone(), mask.clone(), None);
    assert_eq!(values(plain), values(from_ids));

    let AnyModel::SequenceClassifier(d) = load_model("tiny-distilbert-seqcls", Task::SequenceClassification) else {
        unreachable!()
    };
    let ft_models::auto::SequenceClassifier::DistilBert(db) = &d else { unreachable!() };
    let embeds = db.distilbert.embeddings.word_embeddings.forward(ids.clone());
    let from_ids = d.forward_input(&TextInput::ids(ids.clone(), Some(mask.clone())), None).unwrap();
    let from_embeds = d.forward_input(&TextInput::embeds(embeds.clone(), Some(mask.clone())), None).unwrap();
    assert_eq!(values(from_ids.clone()), values(from_embeds));
    assert_eq!(values(db.forward(ids, mask.clone())), values(from_ids));
    // Embeddings of the wrong width: an error, not a panic.
    let narrow = embeds.narrow(2, 0, 8);
    let err = d.forward_input(&TextInput::embeds(narrow, Some(mask)), None).unwrap_err().to_string();
    assert!(err.contains("input embeddings of width 8"), "{err}");

    let AnyModel::CausalLm(ft_models::auto::CausalLm::Gpt2(g)) = load_model("tiny-gpt2", Task::CausalLm) else {
        unreachable!()
    };
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![5i64, 6, 7, 8], [1, 4]), &device);
    let embeds = g.transformer.wte.forward(ids.clone());
    let a = g.forward(ids, None, None, None).unwrap();
    let b = g.forward_input(&TextInput::embeds(embeds, None), None).unwrap();
    assert_eq!(values(a), values(b));
}

#[test]
fn an_empty_prefix_is_a_no_op_and_a_masked_prefix_is_ignored() {
    for name in ["tiny-bert-seqcls", "tiny-distilbert-seqcls"] {
        let device = Device::flex();
        let (ids, mask) = batch(&device);
        let AnyModel::SequenceClassifier(m) = load_model(name, Task::SequenceClassification) else {
            unreachable!()
        };
        let layers = 2;
        let cache = |len: usize, heads: usize| {
            KvCache::from_layers(
                (0..layers)
                    .map(|_| {
                        let kv = || {
                            Tensor::<4>::random([2, heads, len, 32 / heads], burn::tensor::Distribution::Normal(0.0, 1.0), &device)
                        };
                        (kv(), kv())
                    })
                    .collect(),
            )
            .unwrap()
        };
        let empty = |len: usize| cache(len, 4);
        let input = TextInput::ids(ids.clone(), Some(mask.clone()));
        let plain = values(m.forward_input(&input, None).unwrap());
        assert_eq!(plain, values(m.forward_input(&input, Some(&empty(0))).unwrap()), "{name}");

        // Three prefix keys that the mask hides, positions given explicitly: the same logits
        // (the masked keys add exact zeros to the softmax; the summation order may differ in
        // the last bit).
        let prefix_mask = Tensor::cat(vec![Tensor::<2, Int>::zeros([2, 3], &device), mask], 1);
        let positions = Tensor::<1, Int>::arange(0..6, &device).reshape([1, 6]);
        let with_prefix = TextInput::ids(ids, Some(prefix_mask.clone())).with_position_ids(Some(positions));
        let got = values(m.forward_input(&with_prefix, Some(&empty(3))).unwrap());
        let worst = plain.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-6, "{name}: {worst}");

        // A mask of the wrong width, or past keys/values of the wrong shape: errors, not panics.
        let bad = TextInput::ids(Tensor::<2, Int>::zeros([2, 6], &device), Some(Tensor::ones([2, 6], &device)));
        assert!(m.forward_input(&bad, Some(&empty(3))).unwrap_err().to_string().contains("attention mask"), "{name}");
        let input = TextInput::ids(Tensor::<2, Int>::zeros([2, 6], &device), Some(prefix_mask));
        let err = m.forward_input(&input, Some(&cache(3, 2))).unwrap_err().to_string();
        assert!(err.contains("past keys/values of layer 0"), "{name}: {err}");
    }
}

#[test]
fn gpt2_cache_from_given_tensors_continues_positions() {
    let device = Device::flex();
    let AnyModel::CausalLm(ft_models::auto::CausalLm::Gpt2(g)) = load_model("tiny-gpt2", Task::CausalLm) else {
        unreachable!()
    };
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![5i64, 6, 7, 8, 9], [1, 5]), &device);
    // Run the first three tokens with a cache, rebuild a cache from its tensors, continue.
    let mut cache = KvCache::new();
    let _ = g.forward(ids.clone().narrow(1, 0, 3), None, None, Some(&mut cache)).unwrap();
    let layers: Vec<_> = (0..cache.num_layers()).map(|i| cache.layer(i).unwrap().clone()).collect();
    let mut rebuilt = KvCache::from_layers(layers).unwrap();
    assert_eq!(rebuilt.len(), 3);
    let continued = g.forward(ids.clone().narrow(1, 3, 2), None, None, Some(&mut rebuilt)).unwrap();
    let full = g.forward(ids, None, None, None).unwrap();
    let (a, b) = (values(continued), values(full.narrow(1, 3, 2)));
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-5, "{worst}");
}

/// `first_token_only` computes the last layer for position 0 alone: the same hidden state as the
/// full pass's row 0 (to float rounding), with and without a prefix, and the same gradient with
/// respect to the input embeddings.
#[test]
fn first_token_only_equals_row_0_of_the_full_pass() {
    fn row0(h: Tensor<3>) -> Tensor<3> {
        h.narrow(1, 0, 1)
    }
    for name in ["tiny-bert-seqcls", "tiny-distilbert-seqcls"] {
        for autodiff in [false, true] {
            let device = if autodiff { Device::flex().autodiff() } else { Device::flex() };
            device.seed(11);
            let dir = support::fixture(&format!("models/{name}"));
            let AnyModel::SequenceClassifier(m) =
                load(dir.to_str().unwrap(), Task::SequenceClassification, &LoadOptions::default(), &device).unwrap().model
            else {
                unreachable!()
            };
            // Frozen: no dropout, so that both passes compute the same function.
            let m = m.freeze();
            let (ids, mask) = batch(&device);
            let hidden = |input: &TextInput, past: Option<&KvCache>| -> Tensor<3> {
                match &m {
                    ft_models::auto::SequenceClassifier::Bert(b) => b.bert.forward_input(input, past).unwrap().last_hidden_state,
                    ft_models::auto::SequenceClassifier::DistilBert(d) => d.distilbert.forward_input(input, past).unwrap(),
                    ft_models::auto::SequenceClassifier::FirstToken(_) => unreachable!(),
                }
            };
            let embed = |ids: Tensor<2, Int>| -> Tensor<3> {
                match &m {
                    ft_models::auto::SequenceClassifier::Bert(b) => b.bert.embeddings.word_embeddings.forward(ids),
                    ft_models::auto::SequenceClassifier::DistilBert(d) => d.distilbert.embeddings.word_embeddings.forward(ids),
                    ft_models::auto::SequenceClassifier::FirstToken(_) => unreachable!(),
                }
            };
            let embeds = if autodiff { embed(ids.clone()).detach().require_grad() } else { embed(ids.clone()) };
            let prefix = KvCache::from_layers(
                (0..2)
                    .map(|_| {
                        let kv = || Tensor::<4>::random([2, 4, 3, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
                        (kv(), kv())
                    })
                    .collect(),
            )
            .unwrap();
            let prefix_mask = Tensor::cat(vec![Tensor::<2, Int>::ones([2, 3], &device), mask.clone()], 1);
            for (input, past) in [
                (TextInput::embeds(embeds.clone(), Some(mask.clone())), None),
                (TextInput::embeds(embeds.clone(), Some(prefix_mask)), Some(&prefix)),
            ] {
                let full = row0(hidden(&input, past));
                let first = hidden(&input.clone().with_first_token_only(true), past);
                assert_eq!(first.dims(), full.dims(), "{name}");
                let (f, o) = (values(full.clone()), values(first.clone()));
                let worst = f.iter().zip(&o).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(worst < 1e-6, "{name} (autodiff {autodiff}, prefix {}): {worst}", past.is_some());
                if autodiff {
                    let weights = Tensor::<3>::random(full.dims(), burn::tensor::Distribution::Normal(0.0, 1.0), &device);
                    let g_full = embeds.grad(&(full * weights.clone()).sum().backward()).unwrap();
                    let g_first = embeds.grad(&(first * weights).sum().backward()).unwrap();
                    let (a, b) = (values(g_full), values(g_first));
                    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
                    assert!(a.iter().any(|x| x.abs() > 1e-4), "{name}: the gradient reaches the inputs");
                    assert!(worst < 1e-5, "{name} (prefix {}): gradients differ by {worst}", past.is_some());
                }
            }
        }
    }
}
