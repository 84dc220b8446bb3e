//! GELU on the CPU, fast: the exact (erf) form and its tanh approximation (`gelu_new`).
//!
//! Burn's flex backend computes GELU element by element with libm's `erff` on one thread; at
//! DistilBERT-base sizes that is a quarter of the encoder's time (112 ms per
//! `[32, 128, 3072]` activation, against PyTorch's 27 ms). For tensors that live on the flex
//! device outside autodiff (inference), [`gelu`] takes the tensor's buffer (zero-copy for the
//! fresh output of a linear layer), applies `0.5·x·(1 + erf(x/√2))` with a branch-free erf that
//! the compiler vectorises, split across threads, and hands the buffer back.
//!
//! erf is Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), the approximation PyTorch's own
//! vectorised CPU `erf` uses; `exp` is a Cody–Waite range reduction with a degree-6 polynomial
//! (relative error < 3e-7). In training on flex, [`gelu`] is one fused autodiff op (`ops::fused`)
//! with the same arithmetic forward and its own one-pass backward. Everywhere else (GPU) Burn's
//! `gelu` runs unchanged.

use burn::tensor::{DType, Tensor, activation};

use super::is_flex;
use rayon::prelude::*;

/// GELU (exact form), through the fast host path when the tensor is a flex inference tensor.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    elementwise(x, gelu_slice, gelu_autodiff, activation::gelu)
}

/// GELU's tanh approximation (`"gelu_new"`, GPT-2's), `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`,
/// through the same fast paths as [`gelu`]: on flex one host pass across threads in inference
/// and one fused autodiff node in training; Burn's composed `gelu_approximate` elsewhere.
///
/// Burn composes it from eight full-size ops with libm's `powf` and `tanhf` one element at a
/// time (17% of the CPU time of a small GPT-2's training step; at GPT-2 small's sizes, about a
/// second of every batch-8 × 128 LoRA step, forward and backward). tanh here is
/// `sign(u)·(1 − e^(−2|u|)) / (1 + e^(−2|u|))` with [`exp_nonpositive`]: absolute error ≤ 3e-7.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    elementwise(x, gelu_tanh_slice, gelu_tanh_autodiff, activation::gelu_approximate)
}

/// An elementwise activation: `host` over the buffer of a flex f32 inference tensor (in place,
/// across threads), `fused` for a flex autodiff tensor, `burn` for anything else.
fn elementwise<const D: usize>(
    x: Tensor<D>,
    host: fn(&mut [f32]),
    fused: fn(Tensor<D>) -> Tensor<D>,
    burn: fn(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let device = x.device();
    if x.dtype() != DType::F32 || !is_flex(&device) {
        return burn(x);
    }
    if device.is_autodiff() {
        return fused(x);
    }
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(values) => values.par_chunks_mut(1 << 15).for_each(host),
        // Not reachable for an F32 tensor; keep Burn's result rather than fail.
        Err(_) => return burn(Tensor::from_data(data, &device)),
    }
    Tensor::from_data(data, &device)
}

/// Training GELU on flex: one autodiff node ([`FusedOps::gelu_exact`](super::fused::FusedOps)) whose
/// forward is [`gelu_slice`] over a copy of the input and whose backward multiplies the output
/// gradient by [`gelu_derivative`], both one host pass split across threads — instead of libm's
/// `erff` on one thread forward and again backward (8–14% of a MiniLM training step's CPU time
/// before), or an earlier `x·g + k` form with two precomputed full-size constants (7× PyTorch's
/// forward).
fn gelu_autodiff<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    return Tensor::from_dispatch(<burn::backend::Dispatch as super::fused::FusedOps>::gelu_exact(x.into_dispatch()));
    #[cfg(not(feature = "flex"))]
    {
        super::fused::warn_unfused(&x.device());
        activation::gelu(x)
    }
}

/// Training `gelu_new` on flex: one autodiff node ([`FusedOps::gelu_tanh`](super::fused::FusedOps)),
/// forward [`gelu_tanh_slice`], backward `dy ⊙` [`gelu_tanh_derivative`].
fn gelu_tanh_autodiff<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    return Tensor::from_dispatch(<burn::backend::Dispatch as super::fused::FusedOps>::gelu_tanh(x.into_dispatch()));
    #[cfg(not(feature = "flex"))]
    {
        super::fused::warn_unfused(&x.device());
        activation::gelu_approximate(x)
    }
}

/// √(2/π), the tanh approximation's scale.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The tanh approximation's cubic coefficient.
const CUBIC: f32 = 0.044_715;

/// `tanh(u)` from [`exp_nonpositive`], branch-free: `sign(u)·(1 − e)/(1 + e)`, `e = e^(−2|u|)`;
/// absolute error ≤ 3e-7, exactly ±1 beyond |u| ≈ 9.
#[inline(always)]
fn tanh(u: f32) -> f32 {
    let e = exp_nonpositive(-2.0 * u.abs());
    ((1.0 - e) / (1.0 + e)).copysign(u)
}

/// `gelu_new(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
#[inline(always)]
pub fn gelu_tanh_value(x: f32) -> f32 {
    0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + CUBIC * x * x * x)))
}

/// `d gelu_new(x) / dx = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)`, `t` the tanh.
#[inline(always)]
pub fn gelu_tanh_derivative(x: f32) -> f32 {
    let t = tanh(SQRT_2_OVER_PI * (x + CUBIC * x * x * x));
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x * x)
}

/// `x ← gelu_new(x)` over a slice, vectorised as [`gelu_slice`].
pub fn gelu_tanh_slice(values: &mut [f32]) {
    pulp::Arch::new().dispatch(MapSlice(values, gelu_tanh_value));
}

/// `out ← dy ⊙ gelu_new'(x)` over slices of one length; vectorised as [`gelu_slice`].
///
/// # Panics
/// If the three slices differ in length.
pub fn gelu_tanh_backward_slice(x: &[f32], dy: &[f32], out: &mut [f32]) {
    assert!(x.len() == dy.len() && dy.len() == out.len(), "gelu_tanh_backward_slice: slices of different lengths");
    pulp::Arch::new().dispatch(ScaleByDerivative { x, dy, out, derivative: gelu_tanh_derivative });
}

/// `d gelu(x) / dx = Φ(x) + x·φ(x)`, with the same erf and exp as [`gelu_slice`].
#[inline(always)]
pub fn gelu_derivative(x: f32) -> f32 {
    let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    let pdf = 0.398_942_3 * exp_nonpositive(-0.5 * x * x);
    cdf + x * pdf
}

/// `0.5·x·(1 + erf(x/√2))`.
#[inline(always)]
pub fn gelu_value(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `x ← 0.5·x·(1 + erf(x/√2))` over a slice.
///
/// Compiled for the widest SIMD the CPU has (AVX2; AVX-512 where the build enables pulp's
/// `x86-v4`), chosen at run time ([`pulp::Arch::dispatch`]); the loop is plain scalar code that
/// the compiler vectorises, without FMA contraction, so every level gives the same bits.
pub fn gelu_slice(values: &mut [f32]) {
    pulp::Arch::new().dispatch(MapSlice(values, gelu_value));
}

/// `out ← dy ⊙ gelu'(x)` over slices of one length (GELU's backward pass); vectorised as
/// [`gelu_slice`].
///
/// # Panics
/// If the three slices differ in length.
pub fn gelu_backward_slice(x: &[f32], dy: &[f32], out: &mut [f32]) {
    assert!(x.len() == dy.len() && dy.len() == out.len(), "gelu_backward_slice: slices of different lengths");
    pulp::Arch::new().dispatch(ScaleByDerivative { x, dy, out, derivative: gelu_derivative });
}

// The loops are `WithSimd` types, not closures: a closure's body is a function of its own,
// compiled for the baseline CPU, not for the features `dispatch` selected. The functions they
// apply are `#[inline(always)]` fn items, inlined into the dispatched loop.

/// `v ← f(v)` over a slice.
struct MapSlice<'a, F>(&'a mut [f32], F);

impl<F: Fn(f32) -> f32> pulp::WithSimd for MapSlice<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for v in self.0.iter_mut() {
            *v = (self.1)(*v);
        }
    }
}

/// `out ← dy ⊙ derivative(x)` over slices of one length.
struct ScaleByDerivative<'a, F> {
    x: &'a [f32],
    dy: &'a [f32],
    out: &'a mut [f32],
    derivative: F,
}

impl<F: Fn(f32) -> f32> pulp::WithSimd for ScaleByDerivative<'_, F> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        for ((o, &x), &dy) in self.out.iter_mut().zip(self.x).zip(self.dy) {
            *o = dy * (self.derivative)(x);
        }
    }
}

/// erf by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), branch-free.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp_nonpositive(-a * a)).copysign(x)
}

/// `e^x` for `x ≤ 0` (clamped at -87, where it underflows anyway), branch-free.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Round to nearest by adding and removing 1.5·2^23.
    const ROUND: f32 = 12_582_912.0;
    let x = x.max(-87.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    // 2^n from the bits of `shifted` = 1.5·2^23 + n, whose ulp is 1: its low bits hold n, and the
    // bits of 1.5·2^23 (22 and up) leave a u32 when shifted into the exponent field. The same
    // value as `(n as i32 + 127) << 23` (n ≥ −126 here), but without a float-to-int conversion,
    // which the compiler cannot vectorise (it saturates and checks for NaN lane by lane).
    p * f32::from_bits(shifted.to_bits().wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 by Simpson's rule on its integral (error far below f32 precision).
    fn erf_ref(x: f64) -> f64 {
        let n = 2000;
        let h = x / n as f64;
        let f = |t: f64| (-t * t).exp();
        let mut s = f(0.0) + f(x);
        for i in 1..n {
            s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_accurate() {
        let mut worst = 0.0f64;
        for i in -600..=600 {
            let x = i as f32 / 100.0;
            worst = worst.max((erf(x) as f64 - erf_ref(x as f64)).abs());
        }
        assert!(worst < 5e-7, "{worst}");
    }

    #[test]
    fn exp_is_accurate() {
        for i in 0..=8700 {
            let x = -(i as f32) / 100.0;
            let (got, want) = (exp_nonpositive(x) as f64, (x as f64).exp());
            assert!((got - want).abs() <= 3e-7 * want + 1e-37, "{x}: {got} vs {want}");
        }
    }

    /// The largest difference between `ours` and Burn's `burn` on a flex inference tensor.
    fn inference_difference(ours: fn(Tensor<2>) -> Tensor<2>, burn: fn(Tensor<2>) -> Tensor<2>) -> f32 {
        let device = burn::tensor::Device::flex();
        assert!(is_flex(&device), "{device:?}");
        let x: Tensor<2> = Tensor::random([64, 300], burn::tensor::Distribution::Normal(0.0, 3.0), &device);
        let want: Vec<f32> = burn(x.clone()).into_data().try_into_vec_as().unwrap();
        let got: Vec<f32> = ours(x).into_data().try_into_vec_as().unwrap();
        want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
    }

    /// Values and input gradients of `ours` and Burn's `burn` on a flex autodiff tensor (a weighted
    /// sum as the loss): `(x, w, want_y, want_g, got_y, got_g)`.
    #[cfg(feature = "flex")]
    #[allow(clippy::type_complexity)]
    fn training_values(
        ours: fn(Tensor<2>) -> Tensor<2>,
        burn: fn(Tensor<2>) -> Tensor<2>,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let ad = burn::tensor::Device::flex().autodiff();
        assert!(is_flex(&ad), "{ad:?}");
        let x: Tensor<2> = Tensor::random([64, 300], burn::tensor::Distribution::Normal(0.0, 3.0), &ad);
        let w: Tensor<2> = Tensor::random([64, 300], burn::tensor::Distribution::Normal(0.0, 1.0), &ad);
        let run = |f: fn(Tensor<2>) -> Tensor<2>| {
            let x = x.clone().detach().require_grad();
            let y = f(x.clone());
            let grads = (y.clone() * w.clone()).sum().backward();
            let g: Vec<f32> = x.grad(&grads).unwrap().into_data().try_into_vec_as().unwrap();
            let y: Vec<f32> = y.into_data().try_into_vec_as().unwrap();
            (y, g)
        };
        let (want_y, want_g) = run(burn);
        let (got_y, got_g) = run(ours);
        let xs: Vec<f32> = x.into_data().try_into_vec_as().unwrap();
        let ws: Vec<f32> = w.into_data().try_into_vec_as().unwrap();
        (xs, ws, want_y, want_g, got_y, got_g)
    }

    #[cfg(feature = "flex")]
    fn worst(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn matches_burn_gelu_on_flex() {
        let worst = inference_difference(gelu, activation::gelu);
        assert!(worst < 2e-6, "{worst}");
    }

    /// The 2ⁿ of `exp_nonpositive` built from the rounding constant's bits is the old
    /// float-to-int form's, bit for bit: on a dense grid, at every rounding tie of n and a few ulps
    /// around it, at the clamp, at ±0 and for NaN.
    #[test]
    fn exp_bit_trick_equals_the_integer_form() {
        fn old(x: f32) -> f32 {
            const ROUND: f32 = 12_582_912.0;
            let x = x.max(-87.0);
            let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
            let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
            let p = 1.0
                + r * (1.0
                    + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
            p * f32::from_bits(((n as i32 + 127) << 23) as u32)
        }
        let mut xs: Vec<f32> = (0..=90_000).map(|i| -(i as f32) / 1000.0).collect();
        for k in -127..=0 {
            let tie = (k as f32 + 0.5) / std::f32::consts::LOG2_E;
            for d in -4i32..=4 {
                xs.push(f32::from_bits((tie.to_bits() as i32 + d) as u32));
            }
        }
        xs.extend([0.0, -0.0, -87.0, -87.000_01, f32::MIN, f32::NEG_INFINITY, f32::NAN]);
        for x in xs {
            let (got, want) = (exp_nonpositive(x), old(x));
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{x}: {got} vs {want}");
        }
    }

    /// gelu_new and its derivative against f64 (libm's tanh), over ±12 and around 0.
    #[test]
    fn gelu_tanh_and_derivative_match_f64() {
        let reference = |x: f64| {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let t = (c * (x + 0.044715 * x.powi(3))).tanh();
            (0.5 * x * (1.0 + t), 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x))
        };
        let mut xs: Vec<f32> = (-1200..=1200).map(|i| i as f32 / 100.0).collect();
        xs.extend((-50..=50).map(|i| i as f32 * 1e-6));
        for x in xs {
            let (want_y, want_d) = reference(x as f64);
            let (y, d) = (gelu_tanh_value(x) as f64, gelu_tanh_derivative(x) as f64);
            assert!((y - want_y).abs() <= 1e-6 * (1.0 + want_y.abs()), "{x}: {y} vs {want_y}");
            assert!((d - want_d).abs() <= 1e-6, "{x}: derivative {d} vs {want_d}");
        }
        assert!(gelu_tanh_value(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_tanh_matches_burn_on_flex() {
        let worst = inference_difference(gelu_tanh, activation::gelu_approximate);
        assert!(worst < 2e-6, "{worst}");
    }

    /// Training gelu_new: the fused node's values and input gradients are Burn's composed op's
    /// to rounding, and the fused kernel's bit for bit (so the node, not Burn's op, ran).
    #[cfg(feature = "flex")]
    #[test]
    fn training_gelu_tanh_matches_burn_in_value_and_gradient() {
        let (xs, ws, want_y, want_g, got_y, got_g) = training_values(gelu_tanh, activation::gelu_approximate);
        assert!(worst(&want_y, &got_y) < 1e-5, "values {}", worst(&want_y, &got_y));
        assert!(worst(&want_g, &got_g) < 1e-5, "gradients {}", worst(&want_g, &got_g));
        for (i, (&x, &w)) in xs.iter().zip(&ws).enumerate() {
            assert_eq!(got_y[i].to_bits(), gelu_tanh_value(x).to_bits(), "value at {x}");
            assert_eq!(got_g[i].to_bits(), (w * gelu_tanh_derivative(x)).to_bits(), "gradient at {x}");
        }
    }

    /// Without ft-hub's `flex` feature both sides would be Burn's GELU.
    #[cfg(feature = "flex")]
    #[test]
    fn training_gelu_matches_burn_in_value_and_gradient() {
        let (_, _, want_y, want_g, got_y, got_g) = training_values(gelu, activation::gelu);
        assert!(worst(&want_y, &got_y) < 1e-5, "values {}", worst(&want_y, &got_y));
        assert!(worst(&want_g, &got_g) < 1e-5, "gradients {}", worst(&want_g, &got_g));
    }
}
