//! Times ft's convolution kernels (forward, input gradient, weight gradient) at the shapes of
//! ResNet18's 3×3 convolutions of `layer1` and `layer2` and all of `layer3` and `layer4` at
//! 224 px, batch 16 (the last two are exercise 7's unfrozen stages), with their GFLOP/s, the
//! fastest of 7 runs each (the VM's speed drifts). Compare with `benches/torch_conv_timing.py`
//! (the same shapes on PyTorch).
//!
//! `cargo run --release -p ft-hub --features flex --example conv_timing`

use std::time::Instant;

use burn::backend::Dispatch;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use ft_hub::ops::conv::ConvOps;

/// (name, in, out, input side, kernel, stride, padding).
const SHAPES: [(&str, usize, usize, usize, usize, usize, usize); 8] = [
    ("layer1 3x3", 64, 64, 56, 3, 1, 1),
    ("layer2 3x3", 128, 128, 28, 3, 1, 1),
    ("layer3.0.conv1", 128, 256, 28, 3, 2, 1),
    ("layer3 3x3", 256, 256, 14, 3, 1, 1),
    ("layer3.0.downsample", 128, 256, 28, 1, 2, 0),
    ("layer4.0.conv1", 256, 512, 14, 3, 2, 1),
    ("layer4 3x3", 512, 512, 7, 3, 1, 1),
    ("layer4.0.downsample", 256, 512, 14, 1, 2, 0),
];

fn main() {
    ft_hub::malloc::reexec_with_tuning();
    let device = Device::flex();
    let n = 16;
    println!("| conv | forward | input grad | weight grad |\n|---|---:|---:|---:|");
    let mut total = [0.0f64; 3];
    for (name, c, oc, hw, k, s, p) in SHAPES {
        let x: Tensor<4> = Tensor::random([n, c, hw, hw], Distribution::Normal(0.0, 1.0), &device);
        let w: Tensor<4> = Tensor::random([oc, c, k, k], Distribution::Normal(0.0, 0.05), &device);
        let o = (hw + 2 * p - k) / s + 1;
        let dy: Tensor<4> = Tensor::random([n, oc, o, o], Distribution::Normal(0.0, 1.0), &device);
        let options = ConvOptions::new([s, s], [p, p], [1, 1], 1);
        let gflop = 2.0 * (n * oc * o * o * c * k * k) as f64 / 1e9;
        let best = |f: &dyn Fn() -> Tensor<4>| {
            let _ = f().into_data();
            (0..7)
                .map(|_| {
                    let start = Instant::now();
                    let _ = f().into_data();
                    start.elapsed().as_secs_f64() * 1000.0
                })
                .fold(f64::INFINITY, f64::min)
        };
        let fwd = best(&|| {
            Tensor::from_dispatch(<Dispatch as ConvOps>::conv2d_nobias(
                x.clone().into_dispatch(),
                w.clone().into_dispatch(),
                options.clone(),
            ))
        });
        let dx = best(&|| {
            Tensor::from_dispatch(<Dispatch as ConvOps>::conv2d_input_grad(
                x.clone().into_dispatch(),
                w.clone().into_dispatch(),
                dy.clone().into_dispatch(),
                options.clone(),
            ))
        });
        let dw = best(&|| {
            Tensor::from_dispatch(<Dispatch as ConvOps>::conv2d_weight_grad(
                x.clone().into_dispatch(),
                w.clone().into_dispatch(),
                dy.clone().into_dispatch(),
                options.clone(),
            ))
        });
        let cell = |ms: f64| format!("{ms:.2} ms ({:.0} GFLOP/s)", gflop / ms * 1000.0);
        println!("| {name} | {} | {} | {} |", cell(fwd), cell(dx), cell(dw));
        if name.starts_with("layer1") || name.starts_with("layer2") {
            continue;
        }
        let times = if name.ends_with("3x3") { 3.0 } else { 1.0 };
        for (t, v) in total.iter_mut().zip([fwd, dx, dw]) {
            *t += times * v;
        }
    }
    println!(
        "layer3+4 total (3x3 rows ×3): forward {:.1} ms, input grad {:.1} ms, weight grad {:.1} ms",
        total[0], total[1], total[2]
    );
}
