//! 2-D max pooling with its own backward pass on the flex CPU backend (ResNet's stem).
//!
//! Burn flex runs `max_pool2d` as a 3-D pooling that writes an index tensor beside the output,
//! and its backward scatters through those indices: about a tenth of a ResNet18 training step at
//! 224 px (`resnet_step` under `perf`). Here the forward writes only the maxima, one plane per
//! task, as a maximum over each row's window columns and then over the window's rows (vectorised
//! loops; scanning each window with its argmax was ~14% of a 224 px inference); the backward
//! finds each window's maximum again from the saved input (one more read of it) and adds the
//! output gradient there. Ties go to the first position in the window, and a
//! NaN wins (the last one), as in PyTorch's CPU kernel.
//!
//! Routed like the other fused ops: f32 tensors on the flex device (ft-hub's `flex` feature),
//! explicit symmetric padding of at most half the kernel, no dilation, floor mode (ResNet's
//! `MaxPool2d(3, 2, 1)`); Burn's `max_pool2d` everywhere else.

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, backend_extension, tensor::FloatTensor};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::{DType, IntDType, Tensor};

/// The window of a max pooling: kernel, stride and (symmetric) padding per spatial dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Padding on each side, along height and width.
    pub padding: [usize; 2],
}

/// 2-D max pooling over NCHW images with a hand-written backward pass under autodiff.
///
/// Call it through [`max_pool2d`], which picks the device.
///
/// # Panics
///
/// Called directly through Burn's `Dispatch` on a tensor of any backend but flex (or on any
/// backend when ft-hub is built without its `flex` feature): Burn's generated dispatch panics for
/// backends an extension does not list.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait MaxPoolOps: Backend {
    /// The maximum of each window.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, h, w]`; output
    ///   `[batch, channels, (h + 2·pad − k)/stride + 1, (w + 2·pad − k)/stride + 1]`
    // Without ft-hub's `flex` feature the generated dispatch lists no backend and reads no argument.
    #[cfg_attr(not(feature = "flex"), allow(unused_variables))]
    fn max_pool2d_window(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
        Self::max_pool2d(x, window.kernel, window.stride, window.padding, [1, 1], false)
    }

    /// The input's gradient: each output gradient added at its window's maximum.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, h, w]`, `dy`: the output's shape; output `x`'s shape
    // Without ft-hub's `flex` feature the generated dispatch lists no backend and reads no argument.
    #[cfg_attr(not(feature = "flex"), allow(unused_variables))]
    fn max_pool2d_window_backward(x: FloatTensor<Self>, dy: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
        burn_backward::<Self>(x, dy, window)
    }
}

/// [`MaxPoolOps::max_pool2d_window_backward`] through Burn's pooling with indices.
fn burn_backward<B: Backend>(x: FloatTensor<B>, dy: FloatTensor<B>, window: Window) -> FloatTensor<B> {
    let Window { kernel, stride, padding } = window;
    let indices = B::max_pool2d_with_indices(x.clone(), kernel, stride, padding, [1, 1], false, IntDType::I64).indices;
    B::max_pool2d_with_indices_backward(x, kernel, stride, padding, [1, 1], false, dy, indices).x_grad
}

/// `layer.forward(x)` (Burn's [`MaxPool2d`]): on flex (f32, explicit symmetric padding of at
/// most half the kernel, no dilation, floor mode) one node with its own backward pass
/// ([`MaxPoolOps`]); elsewhere Burn's own pooling.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`; output `[batch, channels, out_h, out_w]`
pub fn max_pool2d(layer: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    match window(layer, &x) {
        Some(window) => on_flex(x, window),
        None => layer.forward(x),
    }
}

/// The window [`max_pool2d`] runs `layer` on `x` with on flex's kernels; `None` where Burn's
/// pooling runs.
fn window(layer: &MaxPool2d, x: &Tensor<4>) -> Option<Window> {
    let [_, _, h, w] = x.dims();
    let PaddingConfig2d::Explicit(top, left, bottom, right) = layer.padding else { return None };
    let [kh, kw] = layer.kernel_size;
    let fused = cfg!(feature = "flex")
        && super::is_flex(&x.device())
        && x.dtype() == DType::F32
        && h > 0
        && w > 0
        && layer.dilation == [1, 1]
        && !layer.ceil_mode
        && top == bottom
        && left == right
        && 2 * top <= kh
        && 2 * left <= kw
        && kh > 0
        && kw > 0
        && h + 2 * top >= kh
        && w + 2 * left >= kw
        && layer.stride.iter().all(|&s| s > 0);
    fused.then_some(Window { kernel: layer.kernel_size, stride: layer.stride, padding: [top, left] })
}

/// [`MaxPoolOps::max_pool2d_window`] through Burn's dispatch.
#[cfg(feature = "flex")]
fn on_flex(x: Tensor<4>, window: Window) -> Tensor<4> {
    use burn::backend::Dispatch;
    Tensor::from_dispatch(<Dispatch as MaxPoolOps>::max_pool2d_window(x.into_dispatch(), window))
}

/// Without ft-hub's `flex` feature nothing routes here ([`window`] checks the feature).
#[cfg(not(feature = "flex"))]
fn on_flex(x: Tensor<4>, window: Window) -> Tensor<4> {
    let options =
        burn::tensor::ops::MaxPoolOptions::new(window.kernel).with_stride(window.stride).with_padding(window.padding);
    burn::tensor::module::max_pool2d(x, options)
}

impl<B: Backend + MaxPoolOps, C: CheckpointStrategy> MaxPoolOps for Autodiff<B, C> {
    fn max_pool2d_window(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
        let backward = MaxPoolBackward::<B> { window, backend: core::marker::PhantomData };
        match backward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let x = x.into_primitive();
                prep.finish(x.clone(), B::max_pool2d_window(x, window))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::max_pool2d_window(x.into_primitive(), window)),
        }
    }
}

/// The backward step of [`MaxPoolOps::max_pool2d_window`]; its state is the input.
struct MaxPoolBackward<B> {
    window: Window,
    backend: core::marker::PhantomData<B>,
}

impl<B> core::fmt::Debug for MaxPoolBackward<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "MaxPoolBackward({:?})", self.window)
    }
}

impl<B: Backend + MaxPoolOps> Backward<B, 1> for MaxPoolBackward<B> {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let [node] = ops.parents;
        if let Some(node) = node {
            grads.register::<B>(node.id, B::max_pool2d_window_backward(ops.state, dy, self.window));
        }
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::backend::ops::ModuleOps;
    use burn::backend::{Flex, TensorMetadata, tensor::FloatTensor};
    use burn::tensor::{DType, Shape};
    use rayon::prelude::*;

    use super::{MaxPoolOps, Window};
    use crate::ops::fused::f32_tensor;

    /// The sizes of one pooling.
    #[derive(Clone, Copy)]
    pub(super) struct Geometry {
        planes: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        window: Window,
    }

    impl Geometry {
        pub(super) fn of(x: &FlexTensor, window: Window) -> Option<Self> {
            let shape = x.shape();
            if shape.num_dims() != 4 || x.dtype() != DType::F32 {
                return None;
            }
            let (h, w) = (shape[2], shape[3]);
            let ([kh, kw], [sh, sw], [ph, pw]) = (window.kernel, window.stride, window.padding);
            let windows_hold_values = h > 0 && w > 0 && 2 * ph <= kh && 2 * pw <= kw;
            if !windows_hold_values || h + 2 * ph < kh || w + 2 * pw < kw || sh == 0 || sw == 0 || kh == 0 || kw == 0 {
                return None;
            }
            let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
            Some(Self { planes: shape[0] * shape[1], h, w, oh, ow, window })
        }

        /// The input rows (or columns) `lo..hi` of output row (column) `o` along a dimension of
        /// `size` with kernel `k`, stride `s`, padding `p`.
        fn span(o: usize, k: usize, s: usize, p: usize, size: usize) -> (usize, usize) {
            let start = o * s;
            (start.saturating_sub(p), (start + k).saturating_sub(p).min(size))
        }

        /// Where the maximum of output `(oh, ow)`'s window lies in `plane` (the first one; a NaN
        /// wins, the last NaN if several, as PyTorch's `val > maxval || isnan(val)`). Padding never wins: every window holds at least one input value.
        fn argmax(&self, plane: &[f32], oh: usize, ow: usize) -> usize {
            let ([kh, kw], [sh, sw], [ph, pw]) = (self.window.kernel, self.window.stride, self.window.padding);
            let (r0, r1) = Self::span(oh, kh, sh, ph, self.h);
            let (c0, c1) = Self::span(ow, kw, sw, pw, self.w);
            let mut best = r0 * self.w + c0;
            let mut max = plane[best];
            for r in r0..r1 {
                for c in c0..c1 {
                    let v = plane[r * self.w + c];
                    // Selects rather than branches: on random data a branch mispredicts often.
                    let better = v > max || v.is_nan();
                    max = if better { v } else { max };
                    best = if better { r * self.w + c } else { best };
                }
            }
            best
        }

        /// The maxima of one plane (`h×w`) into `out` (`oh×ow`): each input row's maxima over
        /// the windows' columns first (`rows`, `h×ow`), then over the windows' rows. A row is
        /// read from a copy between `−∞` borders (the padding) split into its `stride` phases
        /// (`phases[r][j]` = padded column `j·stride + r`), so that every pass is a contiguous,
        /// vectorised loop. The same values as `plane[argmax]`: a NaN wins, and a window's
        /// maximum is the same value whichever position holds it.
        fn max_plane(&self, plane: &[f32], out: &mut [f32], rows: &mut Vec<f32>, phases: &mut Vec<f32>) {
            let ([kh, kw], [sh, sw], [ph, pw]) = (self.window.kernel, self.window.stride, self.window.padding);
            let (h, w, oh, ow) = (self.h, self.w, self.oh, self.ow);
            // Padded column `q` is input column `q − pw`; the windows read `q < width`.
            let width = (ow - 1) * sw + kw;
            let len = ow + (kw - 1) / sw;
            phases.clear();
            phases.resize(sw * len, f32::NEG_INFINITY);
            rows.resize(h * ow, 0.0);
            // Input columns the windows read.
            let copied = w.min(width - pw);
            for (src, row) in plane.chunks_exact(w).zip(rows.chunks_exact_mut(ow)) {
                let src = &src[..copied];
                for (r, phase) in phases.chunks_exact_mut(len).enumerate() {
                    // Phase `r` holds input columns `j·sw + r − pw` for `j` from `first`.
                    let first = pw.saturating_sub(r).div_ceil(sw);
                    let start = first * sw + r - pw;
                    if start < copied {
                        phase[first..].iter_mut().zip(src[start..].iter().step_by(sw)).for_each(|(d, &v)| *d = v);
                    }
                }
                row.copy_from_slice(&phases[..ow]);
                for k in 1..kw {
                    let shifted = &phases[(k % sw) * len + k / sw..][..ow];
                    row.iter_mut().zip(shifted).for_each(|(m, &v)| *m = nan_max(*m, v));
                }
            }
            for (o, out) in out.chunks_exact_mut(ow).enumerate().take(oh) {
                let (r0, r1) = Self::span(o, kh, sh, ph, h);
                out.copy_from_slice(&rows[r0 * ow..][..ow]);
                for r in r0 + 1..r1 {
                    out.iter_mut().zip(&rows[r * ow..][..ow]).for_each(|(m, &v)| *m = nan_max(*m, v));
                }
            }
        }
    }

    #[cfg(test)]
    impl Geometry {
        /// A plane's maxima by [`max_plane`](Self::max_plane) and by the values at each
        /// window's [`argmax`](Self::argmax).
        pub(super) fn both(&self, plane: &[f32]) -> (Vec<f32>, Vec<f32>) {
            let mut out = vec![0f32; self.oh * self.ow];
            self.max_plane(plane, &mut out, &mut Vec::new(), &mut Vec::new());
            let want = (0..self.oh * self.ow).map(|k| plane[self.argmax(plane, k / self.ow, k % self.ow)]).collect();
            (out, want)
        }
    }

    /// `max(m, v)` as PyTorch's max pooling compares: `v` replaces `m` when greater or NaN.
    #[inline(always)]
    fn nan_max(m: f32, v: f32) -> f32 {
        if v > m || v.is_nan() { v } else { m }
    }

    impl MaxPoolOps for Flex {
        fn max_pool2d_window(x: FloatTensor<Self>, window: Window) -> FloatTensor<Self> {
            let Some(g) = Geometry::of(&x, window) else {
                return Flex::max_pool2d(x, window.kernel, window.stride, window.padding, [1, 1], false);
            };
            let x = x.to_contiguous();
            let values = x.as_slice::<f32>().expect("contiguous f32");
            let mut out = vec![0f32; g.planes * g.oh * g.ow];
            out.par_chunks_mut(g.oh * g.ow).zip(values.par_chunks(g.h * g.w)).for_each_init(
                || (Vec::new(), Vec::new()),
                |(rows, phases), (out, plane)| g.max_plane(plane, out, rows, phases),
            );
            let shape = x.shape();
            f32_tensor(out, Shape::new([shape[0], shape[1], g.oh, g.ow]))
        }

        fn max_pool2d_window_backward(
            x: FloatTensor<Self>,
            dy: FloatTensor<Self>,
            window: Window,
        ) -> FloatTensor<Self> {
            let geometry = Geometry::of(&x, window).filter(|g| {
                let s = dy.shape();
                s.num_dims() == 4 && s[0] * s[1] == g.planes && (s[2], s[3]) == (g.oh, g.ow) && dy.dtype() == DType::F32
            });
            let Some(g) = geometry else {
                return super::burn_backward::<Flex>(x, dy, window);
            };
            let (x, dy) = (x.to_contiguous(), dy.to_contiguous());
            let (values, grads) =
                (x.as_slice::<f32>().expect("contiguous f32"), dy.as_slice::<f32>().expect("contiguous f32"));
            let mut dx = vec![0f32; g.planes * g.h * g.w];
            dx.par_chunks_mut(g.h * g.w).zip(values.par_chunks(g.h * g.w)).zip(grads.par_chunks(g.oh * g.ow)).for_each(
                |((dx, plane), dy)| {
                    for oh in 0..g.oh {
                        for ow in 0..g.ow {
                            dx[g.argmax(plane, oh, ow)] += dy[oh * g.ow + ow];
                        }
                    }
                },
            );
            f32_tensor(dx, x.shape())
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution, TensorData, Tolerance};

    /// Output and input gradient equal Burn's pooling: ResNet's 3×3 stride 2 padding 1 on even
    /// and odd sizes, a 2×2 stride 2 without padding, a rectangular window; and a plane of
    /// ties, where the first position takes the whole gradient (Burn's indices agree).
    #[test]
    fn matches_burn_max_pool() {
        let device = Device::flex().autodiff();
        device.seed(4);
        for (shape, kernel, stride, [ph, pw]) in [
            ([2, 3, 8, 8], [3, 3], [2, 2], [1, 1]),
            ([1, 2, 7, 9], [3, 3], [2, 2], [1, 1]),
            ([2, 2, 6, 6], [2, 2], [2, 2], [0, 0]),
            ([1, 3, 5, 8], [2, 3], [1, 2], [1, 1]),
        ] {
            let layer = MaxPool2dConfig::new(kernel)
                .with_strides(stride)
                .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
                .init();
            let x: Tensor<4> = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device).require_grad();
            let w = window(&layer, &x).expect("routed to ft's kernel");
            let prim = x.clone().inner().try_into_primitive::<burn::backend::Flex>().expect("a flex tensor");
            assert!(flex::Geometry::of(&prim, w).is_some(), "{shape:?} runs on ft's kernel");
            let ours = max_pool2d(&layer, x.clone());
            let burns = layer.forward(x.clone());
            ours.clone().into_data().assert_approx_eq::<f32>(&burns.clone().into_data(), Tolerance::absolute(0.0));
            let target: Tensor<4> = Tensor::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
            let g_ours = (ours * target.clone()).sum().backward();
            let g_burn = (burns * target).sum().backward();
            x.grad(&g_ours)
                .unwrap()
                .into_data()
                .assert_approx_eq::<f32>(&x.grad(&g_burn).unwrap().into_data(), Tolerance::rel_abs(1e-6, 1e-6));
        }
        let layer = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        let x: Tensor<4> = Tensor::<4>::ones([1, 1, 2, 2], &device).require_grad();
        let grads = max_pool2d(&layer, x.clone()).sum().backward();
        let want = TensorData::new(vec![1f32, 0.0, 0.0, 0.0], [1, 1, 2, 2]);
        x.grad(&grads).unwrap().into_data().assert_approx_eq::<f32>(&want, Tolerance::absolute(0.0));
    }

    /// The forward pass's row-then-column maxima equal the value at each window's argmax (the
    /// backward's rule), bit for bit, on planes with NaNs, ties, infinities and signed zeros,
    /// for every geometry the kernel takes up to 7×7 planes and 4×4 windows and strides
    /// (strides above the kernel, kernel 1, padding up to half the kernel, borders cut off).
    #[test]
    fn separable_maxima_equal_the_argmax_values() {
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1.0, 1.0, -1.0];
        let mut state = 7u64;
        let mut checked = 0;
        for (h, w) in [(1, 1), (1, 5), (3, 2), (5, 7), (6, 6), (7, 4)] {
            for (kh, kw, sh, sw) in (1..=4).flat_map(|kh| {
                (1..=4).flat_map(move |kw| (1..=4).flat_map(move |sh| (1..=4).map(move |sw| (kh, kw, sh, sw))))
            }) {
                for (ph, pw) in (0..=kh / 2).flat_map(|ph| (0..=kw / 2).map(move |pw| (ph, pw))) {
                    let plane: Vec<f32> = (0..h * w)
                        .map(|_| {
                            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                            let r = (state >> 33) as usize;
                            if r % 4 == 0 { specials[r / 4 % specials.len()] } else { (r % 7) as f32 - 3.0 }
                        })
                        .collect();
                    let x = burn::backend::flex::FlexTensor::from_data(TensorData::new(plane.clone(), [1, 1, h, w]));
                    let window = Window { kernel: [kh, kw], stride: [sh, sw], padding: [ph, pw] };
                    let Some(g) = flex::Geometry::of(&x, window) else {
                        continue;
                    };
                    let (out, want) = g.both(&plane);
                    for (k, (a, b)) in out.iter().zip(&want).enumerate() {
                        assert!(
                            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                            "{h}×{w} {window:?}: output {k}: {a} vs {b}"
                        );
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 1000, "{checked} geometries");
    }
}
