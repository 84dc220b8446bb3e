//! GPT-2 parity with transformers on the tiny random checkpoint with the real GPT-2 vocabulary
//! (`tests/fixtures/models/tiny-gpt2`, made by `xtask/python/fixtures_gpt2.py`): hidden states
//! and logits (alone and left-padded), greedy `generate` token ids with and without the KV
//! cache, per-row end-of-sequence stopping, the repetition penalty and the sampling warpers.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeSet, HashMap};

use burn::tensor::{Device, Int, Tensor, TensorData};
use ft_models::auto::{AnyModel, CausalLm, LoadOptions, Task, load};
use ft_models::generation::{GenerationConfig, apply_repetition_penalty, apply_temperature, apply_top_k, apply_top_p, generate, softmax};
use ft_models::gpt2::{GPT2LMHeadModel, KvCache};
use serde_json::Value;
use support::{fixture, max_abs_diff, read_safetensors};

const TOL: f64 = 1e-4;

type Tensors = HashMap<String, (Vec<usize>, Vec<f64>)>;

fn model(device: &Device) -> GPT2LMHeadModel {
    let loaded =
        load(fixture("models/tiny-gpt2").to_str().unwrap(), Task::CausalLm, &LoadOptions::default(), device).unwrap();
    match loaded.model {
        AnyModel::CausalLm(CausalLm::Gpt2(m)) => m,
        other => panic!("{}", other.class_name()),
    }
}

fn expected() -> (Tensors, Value) {
    let t = read_safetensors(&fixture("parity/tiny-gpt2.safetensors"));
    let j = serde_json::from_str(&std::fs::read_to_string(fixture("parity/tiny-gpt2.json")).unwrap()).unwrap();
    (t, j)
}

fn ints(shape: &[usize], values: &[f64], device: &Device) -> Tensor<2, Int> {
    let v: Vec<i64> = values.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [shape[0], shape[1]]), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().try_into_vec_as::<f32>().unwrap().into_iter().map(f64::from).collect()
}

/// Compares logits `[rows, vocab]` (rows = the positions to check) with the stored subset,
/// maximum and argmax of each row; returns the largest error.
fn check_logits(got: &[f64], vocab: usize, rows: &[usize], exp: &Tensors, prefix: &str, stored_row: &dyn Fn(usize) -> usize) -> f64 {
    let subset: Vec<usize> = exp["vocab_subset"].1.iter().map(|&x| x as usize).collect();
    let (_, sub) = &exp[&format!("{prefix}logits_subset")];
    let (_, max) = &exp[&format!("{prefix}logits_max")];
    let (_, arg) = &exp[&format!("{prefix}logits_argmax")];
    let mut worst = 0.0f64;
    for (i, &r) in rows.iter().enumerate() {
        let row = &got[i * vocab..(i + 1) * vocab];
        let s = stored_row(r);
        for (j, &id) in subset.iter().enumerate() {
            worst = worst.max((row[id] - sub[s * subset.len() + j]).abs());
        }
        let our_max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        worst = worst.max((our_max - max[s]).abs());
        // transformers' best token is ours too (its logit equals the maximum within tolerance).
        worst = worst.max((row[arg[s] as usize] - our_max).abs());
    }
    worst
}

#[test]
fn tiny_gpt2_loads_completely_from_float16() {
    let device = Device::flex();
    let loaded =
        load(fixture("models/tiny-gpt2").to_str().unwrap(), Task::CausalLm, &LoadOptions::default(), &device).unwrap();
    assert!(loaded.report.is_complete(), "{:?}", loaded.report);
    assert!(loaded.report.unexpected.is_empty(), "{:?}", loaded.report.unexpected);
    assert_eq!(loaded.model.class_name(), "GPT2LMHeadModel");
    assert_eq!(loaded.config.saved_task(), Task::CausalLm);
    // 2 blocks × 12 tensors + wte, wpe, ln_f (2): no lm_head (tied).
    assert_eq!(loaded.report.loaded.len(), 2 * 12 + 4);
    // GPT-2 is a causal LM only; an encoder has no LM head.
    let err = load(fixture("models/tiny-gpt2").to_str().unwrap(), Task::SequenceClassification, &LoadOptions::default(), &device)
        .unwrap_err();
    assert!(err.to_string().contains("causal"), "{err}");
    let err = load(fixture("models/tiny-bert").to_str().unwrap(), Task::CausalLm, &LoadOptions::default(), &device).unwrap_err();
    assert!(err.to_string().contains("no causal language-model head"), "{err}");
}

#[test]
fn tiny_gpt2_each_text_alone() {
    let device = Device::flex();
    let m = model(&device);
    let (exp, json) = expected();
    let vocab = 50257;
    let mut worst = 0.0f64;
    for i in 0..json["texts"].as_array().unwrap().len() {
        let (shape, ids) = &exp[&format!("single_{i}_input_ids")];
        let input = ints(shape, ids, &device);
        let hidden = m.transformer.forward(input.clone(), None, None, None).unwrap();
        let err = max_abs_diff(&values(hidden.clone()), &exp[&format!("single_{i}_last_hidden_state")].1);
        assert!(err <= TOL, "text {i} hidden: {err}");
        worst = worst.max(err);
        let logits = values(m.logits(hidden));
        let rows: Vec<usize> = (0..shape[1]).collect();
        let err = check_logits(&logits, vocab, &rows, &exp, &format!("single_{i}_"), &|r| r);
        assert!(err <= TOL, "text {i} logits: {err}");
        worst = worst.max(err);
        // forward_last is the last row of forward (to float noise: the head's product has
        // another shape).
        let last = values(m.forward_last(input, None, None, None).unwrap());
        let d = max_abs_diff(&last, &logits[(shape[1] - 1) * vocab..]);
        assert!(d <= 1e-5, "forward_last vs forward: {d}");
    }
    let full = values(m.forward_last(ints(&exp["single_0_input_ids"].0, &exp["single_0_input_ids"].1, &device), None, None, None).unwrap());
    let err = max_abs_diff(&full, &exp["single_0_next_token_logits"].1);
    assert!(err <= TOL, "next-token logits, full vocabulary: {err}");
    worst = worst.max(err);
    println!("tiny-gpt2 alone: max abs error {worst:.2e}");
}

#[test]
fn tiny_gpt2_left_padded_batch() {
    let device = Device::flex();
    let m = model(&device);
    let (exp, _) = expected();
    let (shape, ids) = &exp["left_input_ids"];
    let (_, mask) = &exp["left_attention_mask"];
    let (_, pos) = &exp["left_position_ids"];
    let (b, l) = (shape[0], shape[1]);
    let hidden = m
        .transformer
        .forward(ints(shape, ids, &device), Some(ints(shape, mask, &device)), Some(ints(shape, pos, &device)), None)
        .unwrap();
    let logits = values(m.logits(hidden.clone()));
    let hidden = values(hidden);
    let e = 16;
    let (_, want_hidden) = &exp["left_last_hidden_state"];
    let mut worst = 0.0f64;
    // Real tokens only: padding positions are meaningless (and computed differently by SDPA).
    let real: Vec<usize> = (0..b * l).filter(|&k| mask[k] > 0.0).collect();
    for &k in &real {
        worst = worst.max(max_abs_diff(&hidden[k * e..(k + 1) * e], &want_hidden[k * e..(k + 1) * e]));
    }
    assert!(worst <= TOL, "hidden: {worst}");
    assert!(values_finite(&hidden), "padding positions must stay finite");
    let vocab = 50257;
    let rows: Vec<f64> = real.iter().flat_map(|&k| logits[k * vocab..(k + 1) * vocab].to_vec()).collect();
    let err = check_logits(&rows, vocab, &real, &exp, "left_", &|r| r);
    assert!(err <= TOL, "logits: {err}");
    println!("tiny-gpt2 left-padded batch: max abs error {:.2e}", worst.max(err));
}

fn values_finite(v: &[f64]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// The KV cache gives the logits of a full forward pass, one token at a time, padded or not.
#[test]
fn kv_cache_equals_full_forward() {
    let device = Device::flex();
    let m = model(&device);
    let (exp, _) = expected();
    let (shape, ids) = &exp["left_input_ids"];
    let (_, mask) = &exp["left_attention_mask"];
    let (_, pos) = &exp["left_position_ids"];
    let (b, l) = (shape[0], shape[1]);
    let full = values(
        m.forward(ints(shape, ids, &device), Some(ints(shape, mask, &device)), Some(ints(shape, pos, &device)), None)
            .unwrap(),
    );
    let vocab = 50257;
    let col = |v: &[f64], j: usize, n: usize| -> Vec<f64> { (0..b).flat_map(|r| v[r * n + j..r * n + j + 1].to_vec()).collect() };
    let mut cache = KvCache::new();
    // A prefix of 5 positions at once, then one position at a time.
    let prefix = 5;
    let take = |v: &[f64], from: usize, n: usize| -> Vec<f64> {
        (0..b).flat_map(|r| v[r * l + from..r * l + from + n].to_vec()).collect()
    };
    let out = m
        .forward(
            ints(&[b, prefix], &take(ids, 0, prefix), &device),
            Some(ints(&[b, prefix], &take(mask, 0, prefix), &device)),
            Some(ints(&[b, prefix], &take(pos, 0, prefix), &device)),
            Some(&mut cache),
        )
        .unwrap();
    assert_eq!(cache.len(), prefix);
    let mut worst = 0.0f64;
    let got = values(out);
    for r in 0..b {
        for j in 0..prefix {
            if mask[r * l + j] > 0.0 {
                let a = &got[(r * prefix + j) * vocab..(r * prefix + j + 1) * vocab];
                let w = &full[(r * l + j) * vocab..(r * l + j + 1) * vocab];
                worst = worst.max(max_abs_diff(a, w));
            }
        }
    }
    for j in prefix..l {
        let step = m
            .forward_last(
                ints(&[b, 1], &col(ids, j, l), &device),
                Some(ints(&[b, j + 1], &take(mask, 0, j + 1), &device)),
                Some(ints(&[b, 1], &col(pos, j, l), &device)),
                Some(&mut cache),
            )
            .unwrap();
        let got = values(step);
        for r in 0..b {
            if mask[r * l + j] > 0.0 {
                worst = worst.max(max_abs_diff(&got[r * vocab..(r + 1) * vocab], &full[(r * l + j) * vocab..(r * l + j + 1) * vocab]));
            }
        }
    }
    assert_eq!(cache.len(), l);
    println!("KV cache vs full forward: max abs difference {worst:.2e}");
    // The two paths sum in different orders; the difference depends on the CPU's matrix kernels
    // (9.7e-6 with AVX-512, 1.06e-5 with AVX2 only): the workspace's parity tolerance applies.
    assert!(worst <= 1e-4, "{worst}");
    // Positions past n_positions are an error, not a panic.
    let err = m.forward(ints(&[1, 1], &[5.0], &device), None, None, Some(&mut cache)).unwrap_err();
    assert!(err.to_string().contains("n_positions"), "{err}");
}

/// Greedy token ids equal transformers' `generate` for every recorded call, with and without
/// the cache.
#[test]
fn greedy_generation_matches_transformers() {
    let device = Device::flex();
    let m = model(&device);
    let (_, json) = expected();
    let calls = json["generate"].as_array().unwrap();
    let files_config = GenerationConfig::from_file(&fixture("models/tiny-gpt2/generation_config.json")).unwrap();
    let model_config = m.transformer.config.clone();
    for call in calls {
        let key = call["key"].as_str().unwrap();
        let kwargs: GenerationConfig = serde_json::from_value(call["kwargs"].clone()).unwrap();
        let prompts: Vec<Vec<u32>> = call["prompt_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect())
            .collect();
        let eos: Vec<u32> = match &kwargs.eos_token_id {
            Some(ids) => ids.to_vec(),
            None => vec![50256],
        };
        // transformers pads finished rows; ft's rows end at (and include) their end-of-sequence.
        let want: Vec<Vec<u32>> = call["new_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                let mut out = Vec::new();
                for x in row.as_array().unwrap() {
                    let t = x.as_u64().unwrap() as u32;
                    out.push(t);
                    if eos.contains(&t) {
                        break;
                    }
                }
                out
            })
            .collect();
        for use_cache in [true, false] {
            let cfg = files_config.overridden_by(&kwargs).overridden_by(&GenerationConfig { use_cache: Some(use_cache), ..Default::default() });
            let settings = cfg.resolve(&model_config).unwrap();
            let out = generate(&m, &prompts, &settings, None, &device).unwrap();
            let got: Vec<Vec<u32>> = out.iter().map(|g| g.token_ids.clone()).collect();
            assert_eq!(got, want, "{key}, use_cache={use_cache}");
            for (g, p) in out.iter().zip(&prompts) {
                assert_eq!(&g.prompt_ids, p);
            }
        }
        println!("greedy {key}: identical to transformers ({} rows, with and without cache)", want.len());
    }
}

/// The warpers, applied to a real next-token distribution, keep the ids transformers keeps with
/// the same scores and probabilities.
#[test]
fn logits_processors_match_transformers() {
    let (exp, json) = expected();
    let logits: Vec<f32> = exp["single_0_next_token_logits"].1.iter().map(|&x| x as f32).collect();
    let prompt: BTreeSet<u32> = exp["single_0_input_ids"].1.iter().map(|&x| x as u32).collect();
    for case in json["warpers"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let mut s = logits.clone();
        if let Some(p) = case["repetition_penalty"].as_f64() {
            apply_repetition_penalty(&mut s, &prompt, p);
        }
        if let Some(t) = case["temperature"].as_f64() {
            apply_temperature(&mut s, t);
        }
        if let Some(k) = case["top_k"].as_u64() {
            apply_top_k(&mut s, k as usize);
        }
        if let Some(p) = case["top_p"].as_f64() {
            apply_top_p(&mut s, p);
        }
        let kept: Vec<u64> = (0..s.len() as u64).filter(|&i| s[i as usize].is_finite()).collect();
        assert_eq!(kept.len() as u64, case["n_kept"].as_u64().unwrap(), "{name}: number kept");
        if let Some(want) = case["kept"].as_array() {
            let want: Vec<u64> = want.iter().map(|x| x.as_u64().unwrap()).collect();
            assert_eq!(kept, want, "{name}: kept ids");
        }
        let probs = softmax(&s);
        for (k, id) in case["sample_ids"].as_array().unwrap().iter().enumerate() {
            let id = id.as_u64().unwrap() as usize;
            match case["sample_scores"][k].as_f64() {
                Some(want) => assert!((s[id] as f64 - want).abs() <= 1e-5, "{name}: score of {id}: {} vs {want}", s[id]),
                None => assert!(!s[id].is_finite(), "{name}: {id} should be filtered"),
            }
            let want = case["sample_probs"][k].as_f64().unwrap();
            assert!((probs[id] as f64 - want).abs() <= 1e-6, "{name}: probability of {id}: {} vs {want}", probs[id]);
        }
    }
}

#[test]
fn sampling_is_reproducible_with_a_seed() {
    let device = Device::flex();
    let m = model(&device);
    let c = m.transformer.config.clone();
    let prompts = vec![vec![15496, 11, 616, 3290], vec![464, 3616]];
    let sample = |cfg: GenerationConfig, seed| {
        let settings = cfg.resolve(&c).unwrap();
        generate(&m, &prompts, &settings, Some(seed), &device).unwrap()
    };
    let cfg = GenerationConfig {
        do_sample: Some(true),
        max_new_tokens: Some(8),
        top_k: Some(0),
        temperature: Some(1.5),
        num_return_sequences: Some(3),
        ..Default::default()
    };
    let a = sample(cfg.clone(), 42);
    assert_eq!(a.len(), 6);
    assert_eq!(a.iter().map(|g| g.prompt_index).collect::<Vec<_>>(), [0, 0, 0, 1, 1, 1]);
    assert_eq!(a, sample(cfg.clone(), 42), "same seed, same tokens");
    assert_ne!(a, sample(cfg.clone(), 43), "another seed, other tokens");
    assert!(a.iter().all(|g| g.token_ids.len() == 8));
    // Without the cache: the same tokens.
    assert_eq!(a, sample(GenerationConfig { use_cache: Some(false), ..cfg.clone() }, 42));
    // top_k = 1 leaves only the best token: sampling equals greedy.
    let greedy = sample(GenerationConfig { max_new_tokens: Some(8), ..Default::default() }, 0);
    let top1 = sample(GenerationConfig { top_k: Some(1), num_return_sequences: Some(1), ..cfg }, 7);
    assert_eq!(greedy, top1);
}

#[test]
fn generation_errors_are_clear() {
    let device = Device::flex();
    let m = model(&device);
    let c = m.transformer.config.clone();
    let run = |cfg: GenerationConfig, prompt: Vec<u32>| {
        cfg.resolve(&c).and_then(|s| generate(&m, &[prompt], &s, Some(1), &device))
    };
    let long: Vec<u32> = (0..32).map(|i| 100 + i).collect();
    let msg = run(GenerationConfig::default(), long.clone()).unwrap_err().to_string();
    assert!(msg.contains("32 tokens") && msg.contains("n_positions = 32"), "{msg}");
    let msg = run(GenerationConfig { max_new_tokens: Some(10), ..Default::default() }, long[..30].to_vec()).unwrap_err().to_string();
    assert!(msg.contains("at most 2 new tokens"), "{msg}");
    let msg = run(GenerationConfig::default(), vec![60000]).unwrap_err().to_string();
    assert!(msg.contains("60000") && msg.contains("vocabulary"), "{msg}");
    // An empty prompt starts from bos_token_id (50256).
    let out = run(GenerationConfig { max_new_tokens: Some(3), ..Default::default() }, vec![]).unwrap();
    assert_eq!(out[0].prompt_ids, vec![50256]);
    assert_eq!(out[0].token_ids.len(), 3);
}

#[test]
fn dropout_only_in_training() {
    use burn::module::Module;
    let device = Device::flex();
    let m = model(&device);
    let ids = [15496.0, 11.0, 616.0, 3290.0, 318.0];
    let eval = values(m.forward(ints(&[1, 5], &ids, &device), None, None, None).unwrap());
    let ad = device.clone().autodiff();
    let train = m.fork(&ad).train();
    let t = values(train.forward(ints(&[1, 5], &ids, &ad), None, None, None).unwrap());
    assert!(max_abs_diff(&t, &eval) > 1e-3, "dropout inactive in training");
    let v = values(train.valid().forward(ints(&[1, 5], &ids, &device), None, None, None).unwrap());
    assert!(max_abs_diff(&v, &eval) <= 1e-5);
}
