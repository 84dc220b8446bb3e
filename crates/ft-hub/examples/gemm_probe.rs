//! The linear layers' products on flex, faer's GEMM (what `ft_hub::ops::linear` runs) against
//! Burn's `Tensor::matmul` (what it ran before), on the same operands, interleaved in one process
//! so that a shared VM's drift cancels; GFLOP/s, mean of 10 after 2 warm-ups, at the shapes of a
//! MiniLM / BERT-base training step and of the CoNLL run's small batches (BENCHMARKS.md, "Linear layers on faer's GEMM").
//!
//! `cargo run --release -p ft-hub --features flex --example gemm_probe [-- --split | --wide]`

use burn::tensor::{Device, Distribution, Tensor};
use ft_hub::ops::linear;
use std::time::Instant;

fn main() {
    ft_hub::malloc::reexec_with_tuning();
    if std::env::args().any(|a| a == "--split") {
        return split_probe();
    }
    if std::env::args().any(|a| a == "--wide") {
        return wide_probe();
    }
    let device = Device::flex();
    println!("{}", ft_hub::machine::Machine::current());
    println!("| rows × in → out | Burn matmul | ft linear (faer) |\n|---|---:|---:|");
    for (m, k, n) in [
        (1536, 384, 384),
        (1536, 384, 1536),
        (1536, 1536, 384),
        (4096, 384, 1536),
        (4096, 1536, 384),
        (2048, 768, 3072),
        (400, 384, 1536),
        // CoNLL's batches (8 sentences, ~30 tokens): forward, and a weight gradient's xᵀ·dy.
        (240, 384, 384),
        (240, 384, 1536),
        (240, 1536, 384),
        (384, 240, 1536),
        (1536, 240, 384),
    ] {
        let a: Tensor<2> = Tensor::random([m, k], Distribution::Normal(0.0, 1.0), &device);
        let b: Tensor<2> = Tensor::random([k, n], Distribution::Normal(0.0, 1.0), &device);
        let (mut burn_s, mut faer_s) = (0.0, 0.0);
        for run in 0..12 {
            let t = Instant::now();
            drop(std::hint::black_box(a.clone().matmul(b.clone())));
            let burn_t = t.elapsed().as_secs_f64();
            let t = Instant::now();
            drop(std::hint::black_box(linear::linear(a.clone(), b.clone(), None)));
            let faer_t = t.elapsed().as_secs_f64();
            if run >= 2 {
                burn_s += burn_t;
                faer_s += faer_t;
            }
        }
        let gflops = |s: f64| 2.0 * m as f64 * n as f64 * k as f64 * 10.0 / s / 1e9;
        println!("| {m} × {k} → {n} | {:.1} | {:.1} |", gflops(burn_s), gflops(faer_s));
    }
}

/// faer's own parallel split (`Par::rayon(0)`) against two halves of the output's rows, each
/// one sequential product on its own thread, into a reused buffer, in the three forms of a
/// linear layer (forward `x·W`, input gradient `dy·Wᵀ`, weight gradient `xᵀ·dy`).
fn split_probe() {
    use faer::{Accum, Mat, MatMut, MatRef, Par};
    println!("\n| form, rows × in → out | faer Par::rayon | two row halves, Par::Seq |\n|---|---:|---:|");
    let par = |dst: MatMut<'_, f32>, a: MatRef<'_, f32>, b: MatRef<'_, f32>| {
        faer::linalg::matmul::matmul(dst, Accum::Replace, a, b, 1.0f32, Par::rayon(0))
    };
    let halves = |dst: MatMut<'_, f32>, a: MatRef<'_, f32>, b: MatRef<'_, f32>| {
        let m = a.nrows() / 2;
        let (top, bottom) = dst.split_at_row_mut(m);
        let (at, ab) = a.split_at_row(m);
        rayon::join(
            || faer::linalg::matmul::matmul(top, Accum::Replace, at, b, 1.0f32, Par::Seq),
            || faer::linalg::matmul::matmul(bottom, Accum::Replace, ab, b, 1.0f32, Par::Seq),
        );
    };
    for (rows, k, n) in [(240usize, 384usize, 384usize), (240, 384, 1536), (240, 1536, 384), (1536, 384, 1536)] {
        // (name, lhs m × kk, rhs kk × nn): x·W is rows×k·k×n; dy·Wᵀ is rows×n·n×k; xᵀ·dy is k×rows·rows×n.
        for (form, m, kk, nn, lhs_t, rhs_t) in
            [("x·W", rows, k, n, false, false), ("dy·Wᵀ", rows, n, k, false, true), ("xᵀ·dy", k, rows, n, true, false)]
        {
            let lhs: Mat<f32> = if lhs_t {
                Mat::from_fn(kk, m, |i, j| ((i * 7 + j * 3) % 13) as f32 - 6.0)
            } else {
                Mat::from_fn(m, kk, |i, j| ((i * 7 + j * 3) % 13) as f32 - 6.0)
            };
            let rhs: Mat<f32> = if rhs_t {
                Mat::from_fn(nn, kk, |i, j| ((i * 5 + j) % 11) as f32 - 5.0)
            } else {
                Mat::from_fn(kk, nn, |i, j| ((i * 5 + j) % 11) as f32 - 5.0)
            };
            let a = if lhs_t { lhs.as_ref().transpose() } else { lhs.as_ref() };
            let b = if rhs_t { rhs.as_ref().transpose() } else { rhs.as_ref() };
            let mut dst: Mat<f32> = Mat::zeros(m, nn);
            let (mut t_par, mut t_half) = (0.0, 0.0);
            for run in 0..30 {
                let t = Instant::now();
                par(dst.as_mut(), a, b);
                let tp = t.elapsed().as_secs_f64();
                let t = Instant::now();
                halves(dst.as_mut(), a, b);
                let th = t.elapsed().as_secs_f64();
                if run >= 5 {
                    t_par += tp;
                    t_half += th;
                }
            }
            let gflops = |s: f64| 2.0 * (m * kk * nn) as f64 * 25.0 / s / 1e9;
            println!("| {form}, {rows} × {k} → {n} | {:.1} | {:.1} |", gflops(t_par), gflops(t_half));
            if rhs_t {
                // The input gradient two other ways: Wᵀ copied row-major first (copy timed), and
                // dxᵀ = W·dyᵀ written through a column-major view of dx.
                let (mut t_copy, mut t_tr) = (0.0, 0.0);
                let mut wt = vec![0f32; kk * nn];
                let mut out = vec![0f32; m * nn];
                for run in 0..30 {
                    let t = Instant::now();
                    for i in 0..nn {
                        for j in 0..kk {
                            wt[j * nn + i] = rhs[(i, j)];
                        }
                    }
                    let wt_ref = MatRef::from_row_major_slice(&wt, kk, nn);
                    par(MatMut::from_row_major_slice_mut(&mut out, m, nn), a, wt_ref);
                    let tc = t.elapsed().as_secs_f64();
                    let t = Instant::now();
                    let dst_t = MatMut::from_column_major_slice_mut(&mut out, nn, m);
                    par(dst_t, rhs.as_ref(), a.transpose());
                    let tt = t.elapsed().as_secs_f64();
                    if run >= 5 {
                        t_copy += tc;
                        t_tr += tt;
                    }
                }
                println!(
                    "| {form} via a row-major copy of Wᵀ / via dxᵀ = W·dyᵀ | {:.1} | {:.1} |",
                    gflops(t_copy),
                    gflops(t_tr)
                );
            }
        }
    }
}

/// A language model's head, `[1024, 768] · wteᵀ` for GPT-2's 50,257 tokens (the tied embedding
/// read as a column-major `[768, 50257]`): faer's product over the whole output and over column
/// blocks of 1,008 (what `linear.rs` cuts it into), both into one reused buffer, and ft's
/// `linear` (the blocks, plus allocating its output); interleaved, mean of 5 after 1 warm-up.
fn wide_probe() {
    use faer::{Accum, MatMut, MatRef, Par};
    println!("{}", ft_hub::machine::Machine::current());
    let device = Device::flex();
    let (m, k, n) = (1024usize, 768usize, 50257usize);
    let x: Tensor<2> = Tensor::random([m, k], Distribution::Normal(0.0, 1.0), &device);
    let wte: Tensor<2> = Tensor::random([n, k], Distribution::Normal(0.0, 1.0), &device);
    let xs = x.to_data().try_to_vec::<f32>().expect("f32");
    let ws = wte.to_data().try_to_vec::<f32>().expect("f32");
    let (lhs, rhs) = (MatRef::from_row_major_slice(&xs, m, k), MatRef::from_column_major_slice(&ws, k, n));
    let mut out = vec![0f32; m * n];
    let width = n.div_ceil(n.div_ceil(1024)).next_multiple_of(8);
    let mut seconds = [0.0; 3];
    for run in 0..6 {
        let t = Instant::now();
        let dst = MatMut::from_row_major_slice_mut(&mut out, m, n);
        faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::rayon(0));
        let whole = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut dst = MatMut::from_row_major_slice_mut(&mut out, m, n);
        for j in (0..n).step_by(width) {
            let w = width.min(n - j);
            let block = dst.as_mut().submatrix_mut(0, j, m, w);
            faer::linalg::matmul::matmul(block, Accum::Replace, lhs, rhs.submatrix(0, j, k, w), 1.0f32, Par::rayon(0));
        }
        let blocks = t.elapsed().as_secs_f64();
        let t = Instant::now();
        drop(std::hint::black_box(linear::linear(x.clone(), wte.clone().transpose(), None)));
        let ft = t.elapsed().as_secs_f64();
        if run >= 1 {
            for (s, t) in seconds.iter_mut().zip([whole, blocks, ft]) {
                *s += t;
            }
        }
    }
    let gflops = |s: f64| 2.0 * (m * k * n) as f64 * 5.0 / s / 1e9;
    println!(
        "| {m} × {k} → {n} (wteᵀ), GFLOP/s | faer whole | faer, blocks of {width} | ft linear |\n|---|---:|---:|---:|"
    );
    println!("| | {:.1} | {:.1} | {:.1} |", gflops(seconds[0]), gflops(seconds[1]), gflops(seconds[2]));
}
