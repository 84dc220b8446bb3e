//! Times ResNet18's forward pass (inference), and a training step's forward + backward, on
//! the CPU at batch 16 for a few input sizes (`BENCHMARKS.md`, vision). Compare with
//! `benches/torch_resnet_step.py`.
//!
//! `cargo run --release -p ft-models --features flex,x86-v4 --example resnet_step [SIZE...] [inference]`

use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor};
use ft_models::resnet::{ResNet, ResNetConfig};

fn main() {
    // As `ft train` runs: glibc's malloc keeps freed feature maps for reuse instead of unmapping
    // them (page faults were ~14% of a 224 px step without it).
    ft_hub::malloc::reexec_with_tuning();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `inference`: time the forward pass only (e.g. to profile it).
    let inference_only = args.iter().any(|a| a == "inference");
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![64, 224] } else { sizes };
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let model = ResNet::init(&ResNetConfig::new("resnet18", 10), &device).expect("resnet18");
    for size in sizes {
        let x: Tensor<4> = Tensor::random([16, 3, size, size], Distribution::Normal(0.0, 1.0), &device);
        let time = |name: &str, f: &mut dyn FnMut()| {
            f();
            let start = Instant::now();
            for _ in 0..3 {
                f();
            }
            let ms = start.elapsed().as_secs_f64() * 1000.0 / 3.0;
            println!("{size}px {name}: {ms:.1} ms ({:.1} images/s)", 16_000.0 / ms);
        };
        time("inference", &mut || {
            let _ = model.forward(x.clone()).into_data();
        });
        if inference_only {
            continue;
        }
        let trained = ResNet::init(&ResNetConfig::new("resnet18", 10), &ad).expect("resnet18");
        let xa = x.clone().fork(&ad);
        time("train fwd+bwd", &mut || {
            let y = trained.forward(xa.clone());
            let _ = y.sum().backward();
        });
        let frozen = trained.clone().freeze_backbone();
        time("frozen fwd+bwd", &mut || {
            let y = frozen.forward(xa.clone());
            let _ = y.sum().backward();
        });
    }
}
