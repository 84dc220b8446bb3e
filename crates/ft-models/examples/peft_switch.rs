//! Adapter switching and merged-vs-unmerged inference, for `benches/peft_compare.py switch`:
//! two LoRA adapters (r = 8 on `c_attn`, `c_proj`) on a GPT-2 checkpoint; prints one JSON line
//! with the median `set_adapter` latency and the median forward time (batch × seq tokens, no
//! gradients) with the adapter unmerged, merged, and disabled.
//!
//! `cargo run --release -p ft-models --features flex --example peft_switch -- MODEL_DIR [BATCH SEQ]`

use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use ft_models::auto::{CausalLm, LoadOptions, Task, load};
use ft_models::input::TextInput;
use ft_models::peft::PeftModel;
use ft_peft::config::{AdapterConfig, InitLoraWeights, LoraConfig, MethodConfig, TargetModules};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args.first().ok_or("usage: peft_switch MODEL_DIR [BATCH SEQ]")?;
    let batch: usize = args.get(1).map_or(Ok(8), |s| s.parse())?;
    let seq: usize = args.get(2).map_or(Ok(128), |s| s.parse())?;
    let device = Device::flex();
    device.seed(0);
    let base = load(model, Task::CausalLm, &LoadOptions::default(), &device)?.into_causal_lm()?.model;
    let mut m = PeftModel::new(base);
    for name in ["a", "b"] {
        let config = AdapterConfig::new(
            MethodConfig::Lora(LoraConfig {
                r: 8,
                lora_alpha: 16.0,
                target_modules: Some(TargetModules::List(vec!["c_attn".into(), "c_proj".into()])),
                init_lora_weights: InitLoraWeights::Random,
                ..Default::default()
            }),
            None,
            None,
        );
        m.add_adapter(name, config, None, &device)?;
    }
    // Switching: the base weights stay where they are; only flags change.
    let mut switch = Vec::new();
    for i in 0..2000 {
        let t = Instant::now();
        m.set_adapter(if i % 2 == 0 { "b" } else { "a" })?;
        switch.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let ids: Vec<i64> = (0..batch * seq).map(|i| ((i * 7919) % 50000) as i64).collect();
    let input = TextInput::ids(Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, seq]), &device), None);
    let time = |m: &PeftModel<CausalLm>| -> Result<f64, Box<dyn std::error::Error>> {
        let mut v = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let out = m.forward(&input)?;
            let _ = out.into_data();
            v.push(t.elapsed().as_secs_f64() * 1e3);
        }
        Ok(median(v))
    };
    // Where the time goes: the transformer alone, then the LM head on its output.
    let ft_models::auto::CausalLm::Gpt2(g) = &m.base;
    let mut hidden_ms = Vec::new();
    let mut head_ms = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let h = g.transformer.forward_input(&input, None)?;
        let h = Tensor::from_data(h.into_data(), &device);
        hidden_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let _ = g.logits(h).into_data();
        head_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    eprintln!("transformer {:.0} ms, LM head {:.0} ms", median(hidden_ms), median(head_ms));
    let unmerged = time(&m)?;
    m.merge_adapter()?;
    let merged = time(&m)?;
    m.unmerge_adapter();
    m.disable_adapters()?;
    let base = time(&m)?;
    println!(
        "{}",
        serde_json::json!({
            "framework": "ft", "batch": batch, "seq": seq,
            "set_adapter_us_median": median(switch),
            "forward_ms_unmerged": unmerged, "forward_ms_merged": merged, "forward_ms_base": base,
        })
    );
    Ok(())
}
