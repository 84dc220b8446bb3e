//! Times ResNet18's forward pass (inference), and a training step's forward + backward, on
//! the CPU at batch 16 for a few input sizes (`BENCHMARKS.md`, vision). Compare with
//! `benches/torch_resnet_step.py`. Each time is the mean of 3 runs after a warm-up
//! (`RESNET_STEP_REPEAT=N` for N runs, e.g. more to profile one mode).
//!
//! `cargo run --release -p ft-models --features flex,x86-v4 --example resnet_step \
//!     [SIZE...] [inference|train|unfreeze|frozen...]`

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use ft_models::resnet::{ResNet, ResNetConfig};

fn main() {
    // As `ft train` runs: glibc's malloc keeps freed feature maps for reuse instead of unmapping
    // them (page faults were ~14% of a 224 px step without it).
    ft_hub::malloc::reexec_with_tuning();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Modes to time (default all): `inference`, `train`, `unfreeze`, `frozen` — e.g. one alone to
    // profile it.
    const MODES: [&str; 4] = ["inference", "train", "unfreeze", "frozen"];
    let modes: Vec<&str> = args.iter().map(String::as_str).filter(|a| a.parse::<usize>().is_err()).collect();
    if let Some(bad) = modes.iter().find(|m| !MODES.contains(m)) {
        eprintln!("resnet_step: unknown argument '{bad}' (sizes, or modes: {})", MODES.join(", "));
        std::process::exit(2);
    }
    let runs = |mode: &str| modes.is_empty() || modes.contains(&mode);
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![64, 224] } else { sizes };
    // Timed runs per mode (after one warm-up): RESNET_STEP_REPEAT, default 3 (more to profile).
    let repeat: usize = std::env::var("RESNET_STEP_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let model = ResNet::init(&ResNetConfig::new("resnet18", 10), &device).expect("resnet18");
    for size in sizes {
        let x: Tensor<4> = Tensor::random([16, 3, size, size], Distribution::Normal(0.0, 1.0), &device);
        let time = |name: &str, f: &mut dyn FnMut()| {
            f();
            let start = Instant::now();
            for _ in 0..repeat {
                f();
            }
            let ms = start.elapsed().as_secs_f64() * 1000.0 / repeat as f64;
            println!("{size}px {name}: {ms:.1} ms ({:.1} images/s)", 16_000.0 / ms);
        };
        if runs("inference") {
            time("inference", &mut || {
                let _ = model.forward(x.clone()).into_data();
            });
        }
        let trained = ResNet::init(&ResNetConfig::new("resnet18", 10), &ad).expect("resnet18");
        let xa = x.clone().fork(&ad);
        if runs("train") {
            time("train fwd+bwd", &mut || {
                let y = trained.forward(xa.clone());
                let _ = y.sum().backward();
            });
        }
        // Exercise 7's step: layer3 and layer4 train on layer2's (cached) output.
        let unfrozen = trained.clone().freeze_stages(&["layer3", "layer4"]).expect("stages");
        if runs("unfreeze") {
            let stage2 = unfrozen.forward_stages(xa.clone(), 0, 2).detach();
            time("unfreeze step", &mut || {
                let features = unfrozen.pool(unfrozen.forward_stages(stage2.clone(), 3, 4));
                let _ = unfrozen.fc.forward(features).sum().backward();
            });
        }
        let frozen = trained.clone().freeze_backbone();
        if runs("frozen") {
            time("frozen fwd+bwd", &mut || {
                let y = frozen.forward(xa.clone());
                let _ = y.sum().backward();
            });
        }
    }
}
