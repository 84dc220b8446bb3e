//! 2-D convolutions as im2col + one GEMM per group of images, with their own backward pass on the
//! flex CPU backend (ResNet's convolutions in training and inference).
//!
//! **Why.** Burn flex's convolution tiles 512 output pixels at a time after a single-threaded
//! NCHW→NHWC copy of the input, and its backward runs through `conv_transpose2d` and a grouped
//! weight-gradient convolution: a ResNet18 training step at 224 px ran at 0.47× PyTorch's speed
//! (BENCHMARKS.md, vision). Here each image (or, for small feature maps, each group of images) is
//! unfolded into columns `[in·kh·kw, out_h·out_w]` ("im2col") and multiplied by the weight
//! `[out, in·kh·kw]` (PyTorch's layout, read as it is) on [faer](https://docs.rs/faer)'s GEMM,
//! writing NCHW output directly. The images are spread over the cores, one single-threaded GEMM
//! each (all cores through faer when there are fewer groups than threads).
//!
//! **Backward.** The weight's gradient is `Σ dyₙ · colsₙᵀ`, the columns recomputed from the saved
//! input (not kept: a 224 px batch's columns would be ~9× its activations), a group of images at
//! a time (up to 16 MB of columns, or one image where its columns are larger; unfolded in
//! parallel over the channels), each group one GEMM on all cores adding into the gradient (the
//! same bits on every run). With stride 1 and padding smaller than the kernel the input's
//! gradient is itself a convolution — `dy` convolved with the kernels turned by 180° and padded
//! by `k − 1 − pad` — and runs on the forward kernels; otherwise it is `Wᵀ · dyₙ` folded back
//! onto the image ("col2im"). Each is computed only for a tracked operand.
//!
//! **3×3, stride 1, padding 1** (every ResNet 3×3 convolution but the first of `layer2`–`layer4`,
//! ~83% of ResNet18's multiply-adds) runs on Winograd's F(2×2, 3×3) instead (ft-hub's `ops/winograd.rs`): the
//! forward pass and hence the input gradient (a convolution of the same kind) — 2.25× fewer
//! multiply-adds. The weight gradient stays on im2col: Winograd's F(3×3, 2×2) for it was faster
//! (layer3 + layer4: 252 → 194 ms) but its rounding moved exercise 7's 20-step losses 4.3e-4
//! away from PyTorch's (`tests/vision_train.rs` allows 1e-4).
//!
//! im2col copies each kernel tap's row in one piece when the stride is 1 and the output rows are
//! as wide as the input's (the plane shifted, then the padding columns zeroed); the columns and
//! other working buffers are kept per thread between calls rather than allocated (and zeroed)
//! each time.
//!
//! Routed like the other fused ops: f32 tensors on the flex device (ft-hub's `flex` feature),
//! one group, no dilation, symmetric padding (every torchvision ResNet convolution); Burn's
//! `conv2d` everywhere else (GPUs, ndarray, other convolutions). The sums run in another order
//! than Burn's, so results agree to float rounding, not bit for bit.

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, backend_extension, tensor::FloatTensor};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor};

/// A bias-free 2-D convolution over NCHW images, with a hand-written backward pass under
/// autodiff.
///
/// Call it through [`forward`], which picks the device and adds the bias.
///
/// # Panics
///
/// Called directly through Burn's `Dispatch` on a tensor of any backend but flex (or on any
/// backend when ft-hub is built without its `flex` feature): Burn's generated dispatch panics for
/// backends an extension does not list.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait ConvOps: Backend {
    /// `conv2d(x, weight)` without bias.
    ///
    /// # Shapes
    /// - `x`: `[batch, in, h, w]`, `weight`: `[out, in, kh, kw]`; output
    ///   `[batch, out, (h + 2·pad − kh) / stride + 1, (w + 2·pad − kw) / stride + 1]`
    // Without ft-hub's `flex` feature the generated dispatch lists no backend and reads no argument.
    #[cfg_attr(not(feature = "flex"), allow(unused_variables))]
    fn conv2d_nobias(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// The input's gradient (`x` gives the shape).
    ///
    /// # Shapes
    /// - `x`: `[batch, in, h, w]`, `weight`: `[out, in, kh, kw]`, `dy`: the output's shape; output
    ///   `x`'s shape
    // Without ft-hub's `flex` feature the generated dispatch lists no backend and reads no argument.
    #[cfg_attr(not(feature = "flex"), allow(unused_variables))]
    fn conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, dy, options)
    }

    /// The weight's gradient.
    ///
    /// # Shapes
    /// - `x`: `[batch, in, h, w]`, `weight`: `[out, in, kh, kw]`, `dy`: the output's shape; output
    ///   `weight`'s shape
    // Without ft-hub's `flex` feature the generated dispatch lists no backend and reads no argument.
    #[cfg_attr(not(feature = "flex"), allow(unused_variables))]
    fn conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, dy, options)
    }
}

/// `layer.forward(x)` (Burn's [`Conv2d`]): on flex (f32, one group, no dilation, symmetric
/// padding) as one autodiff node on faer's GEMM ([`ConvOps`]) plus the bias, if any, as a
/// broadcast add; elsewhere Burn's own convolution.
///
/// # Shapes
/// - `x`: `[batch, in, h, w]`; output `[batch, out, out_h, out_w]`
pub fn forward(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let Some(options) = fused_options(layer, &x) else {
        return layer.forward(x);
    };
    let y = on_flex(x, layer.weight.val(), options);
    match &layer.bias {
        Some(bias) => y + bias.val().reshape([1, layer.weight.dims()[0], 1, 1]),
        None => y,
    }
}

/// The options [`forward`] runs `layer` on `x` with on flex's kernels; `None` where Burn's own
/// convolution runs (another device or dtype, groups, dilation, `Same` or asymmetric padding, a
/// channel count that does not match — Burn then panics with its own message).
fn fused_options(layer: &Conv2d, x: &Tensor<4>) -> Option<ConvOptions<2>> {
    let [_, c, h, w] = x.dims();
    let [_, wc, kh, kw] = layer.weight.dims();
    let (top, left, bottom, right) = match layer.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => (top, left, bottom, right),
        PaddingConfig2d::Valid => (0, 0, 0, 0),
        PaddingConfig2d::Same => return None,
    };
    let fused = cfg!(feature = "flex")
        && super::is_flex(&x.device())
        && x.dtype() == DType::F32
        && layer.weight.val().dtype() == DType::F32
        && layer.groups == 1
        && layer.dilation == [1, 1]
        && c == wc
        && top == bottom
        && left == right
        && h + 2 * top >= kh
        && w + 2 * left >= kw
        && layer.stride.iter().all(|&s| s > 0);
    fused.then(|| ConvOptions::new(layer.stride, [top, left], [1, 1], 1))
}

/// [`ConvOps::conv2d_nobias`] through Burn's dispatch.
#[cfg(feature = "flex")]
fn on_flex(x: Tensor<4>, weight: Tensor<4>, options: ConvOptions<2>) -> Tensor<4> {
    use burn::backend::Dispatch;
    Tensor::from_dispatch(<Dispatch as ConvOps>::conv2d_nobias(x.into_dispatch(), weight.into_dispatch(), options))
}

/// Without ft-hub's `flex` feature nothing routes here ([`forward`] checks the feature).
#[cfg(not(feature = "flex"))]
fn on_flex(x: Tensor<4>, weight: Tensor<4>, options: ConvOptions<2>) -> Tensor<4> {
    burn::tensor::module::conv2d(x, weight, None, options)
}

impl<B: Backend + ConvOps, C: CheckpointStrategy> ConvOps for Autodiff<B, C> {
    fn conv2d_nobias(x: FloatTensor<Self>, weight: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        let backward = ConvBackward::<B> { options: options.clone(), backend: core::marker::PhantomData };
        match backward.prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (x, weight) = (x.into_primitive(), weight.into_primitive());
                let state = (x.clone(), weight.clone());
                prep.finish(state, B::conv2d_nobias(x, weight, options))
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::conv2d_nobias(x.into_primitive(), weight.into_primitive(), options))
            }
        }
    }
}

/// The backward step of [`ConvOps::conv2d_nobias`]: parents `[x, weight]`, state the two
/// operands (the input gives the columns of the weight's gradient and its own shape). Only the
/// tracked parents get a gradient.
struct ConvBackward<B> {
    options: ConvOptions<2>,
    backend: core::marker::PhantomData<B>,
}

impl<B> core::fmt::Debug for ConvBackward<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ConvBackward({:?})", self.options)
    }
}

impl<B: Backend + ConvOps> Backward<B, 2> for ConvBackward<B> {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let (x, weight) = ops.state;
        let [x_node, weight_node] = ops.parents;
        if let Some(node) = x_node {
            let grad = B::conv2d_input_grad(x.clone(), weight.clone(), dy.clone(), self.options.clone());
            grads.register::<B>(node.id, grad);
        }
        if let Some(node) = weight_node {
            grads.register::<B>(node.id, B::conv2d_weight_grad(x, weight, dy, self.options));
        }
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::flex::FlexTensor;
    use burn::backend::ops::ModuleOps;
    use burn::backend::{Flex, TensorMetadata, tensor::FloatTensor};
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{DType, Shape};
    use faer::{Accum, MatMut, MatRef, Par};
    use rayon::prelude::*;

    use super::ConvOps;
    use crate::ops::fused::f32_tensor;
    use crate::ops::winograd::{self, sized};

    /// Output columns (images × output pixels) a GEMM should have at least: small feature maps
    /// (ResNet's `layer4`, 7×7 at 224 px) run several images per product so the weight is packed
    /// once for all of them.
    const MIN_COLUMNS: usize = 512;

    /// The sizes of one convolution.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Geometry {
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        oc: usize,
        kh: usize,
        kw: usize,
        sh: usize,
        sw: usize,
        ph: usize,
        pw: usize,
        oh: usize,
        ow: usize,
    }

    impl Geometry {
        /// The sizes of `x` convolved with `weight`; `None` when the kernels below do not apply
        /// (wrong ranks or dtypes, channel mismatch, groups, dilation, asymmetric padding, a
        /// kernel larger than the padded input, empty tensors).
        pub(super) fn of(x: &FlexTensor, weight: &FlexTensor, o: &ConvOptions<2>) -> Option<Self> {
            let (xs, ws) = (x.shape(), weight.shape());
            if xs.num_dims() != 4 || ws.num_dims() != 4 || x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
                return None;
            }
            if o.groups != 1 || o.dilation != [1, 1] || o.is_asymmetric() || o.stride.contains(&0) {
                return None;
            }
            let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3]);
            let (oc, kh, kw) = (ws[0], ws[2], ws[3]);
            let [ph, pw] = o.padding_begin();
            let [sh, sw] = o.stride;
            if ws[1] != c || h + 2 * ph < kh || w + 2 * pw < kw || [n, c, h, w, oc, kh, kw].contains(&0) {
                return None;
            }
            let (oh, ow) = ((h + 2 * ph - kh) / sh + 1, (w + 2 * pw - kw) / sw + 1);
            Some(Self { n, c, h, w, oc, kh, kw, sh, sw, ph, pw, oh, ow })
        }

        /// [`of`](Self::of), and `dy` an f32 gradient of the output's shape (the backward
        /// steps).
        fn with_output_grad(x: &FlexTensor, weight: &FlexTensor, dy: &FlexTensor, o: &ConvOptions<2>) -> Option<Self> {
            Self::of(x, weight, o).filter(|g| dy.dtype() == DType::F32 && dy.shape().dims() == [g.n, g.oc, g.oh, g.ow])
        }

        /// Rows of the columns: `in · kh · kw`.
        fn k(&self) -> usize {
            self.c * self.kh * self.kw
        }

        /// Output pixels per image.
        fn p(&self) -> usize {
            self.oh * self.ow
        }

        /// Values per input image.
        fn image(&self) -> usize {
            self.c * self.h * self.w
        }

        /// Images per GEMM: enough for [`MIN_COLUMNS`] columns, but no fewer groups than
        /// threads.
        fn group(&self) -> usize {
            self.group_of(self.p())
        }

        /// Images per GEMM when each image gives `columns` GEMM columns (output pixels for
        /// im2col, tiles for Winograd): enough for [`MIN_COLUMNS`], but no fewer groups than
        /// threads.
        fn group_of(&self, columns: usize) -> usize {
            let threads = rayon::current_num_threads().max(1);
            MIN_COLUMNS.div_ceil(columns).min(self.n.div_ceil(threads)).max(1)
        }

        /// The output columns `lo..hi` whose input column `ow·sw + kj − pw` lies inside the
        /// image.
        fn valid_columns(&self, kj: usize) -> (usize, usize) {
            let lo = self.pw.saturating_sub(kj).div_ceil(self.sw);
            let hi = (self.w + self.pw).saturating_sub(kj).div_ceil(self.sw).min(self.ow);
            (lo.min(hi), hi)
        }

        /// Unfolds one input channel `plane` (`[h, w]`) into its `kh·kw` rows of the columns
        /// (`rows`, each `ld` wide, from column `col0`; zeros where the kernel reads the
        /// padding) — "im2col".
        fn im2col_plane(&self, plane: &[f32], rows: &mut [f32], ld: usize, col0: usize) {
            if self.sh == 1 && self.sw == 1 && self.ow == self.w {
                return self.im2col_shifted(plane, rows, ld, col0);
            }
            let p = self.p();
            for ki in 0..self.kh {
                for kj in 0..self.kw {
                    let row = ki * self.kw + kj;
                    let dst = &mut rows[row * ld + col0..][..p];
                    let (lo, hi) = self.valid_columns(kj);
                    for (oh, out) in dst.chunks_exact_mut(self.ow).enumerate() {
                        let ih = (oh * self.sh + ki).wrapping_sub(self.ph);
                        if ih >= self.h {
                            out.fill(0.0);
                            continue;
                        }
                        let src = &plane[ih * self.w..][..self.w];
                        zero_few(&mut out[..lo]);
                        zero_few(&mut out[hi..]);
                        if lo == hi {
                            continue;
                        }
                        let src = &src[lo * self.sw + kj - self.pw..];
                        match self.sw {
                            1 => out[lo..hi].copy_from_slice(&src[..hi - lo]),
                            // Every other value: pairs (a shuffle the compiler vectorises),
                            // the last value alone (its pair may end past the row).
                            2 => {
                                let (body, last) = out[lo..hi].split_at_mut(hi - lo - 1);
                                body.iter_mut().zip(src.chunks_exact(2)).for_each(|(o, pair)| *o = pair[0]);
                                last[0] = src[2 * body.len()];
                            }
                            sw => out[lo..hi].iter_mut().zip(src.iter().step_by(sw)).for_each(|(o, &v)| *o = v),
                        }
                    }
                }
            }
        }

        /// [`im2col_plane`](Self::im2col_plane) for stride 1 and output rows as wide as the input's (ResNet's
        /// 3×3 convolutions with padding 1): each row of the columns is the input plane shifted
        /// by `(ki − ph)·w + kj − pw`, so one copy per row, then zeros where a kernel tap reads
        /// the padding (whole output rows above or below the image, and the `|kj − pw|` output
        /// columns at the left or right edge, which the shifted copy filled from the
        /// neighbouring row).
        fn im2col_shifted(&self, src: &[f32], rows: &mut [f32], ld: usize, col0: usize) {
            let (p, w, plane) = (self.p(), self.w, self.h * self.w);
            for ki in 0..self.kh {
                // Output rows `top..bottom` read input rows `oh + ki − ph` inside the image.
                let top = self.ph.saturating_sub(ki).min(self.oh);
                let bottom = (self.h + self.ph).saturating_sub(ki).min(self.oh).max(top);
                for kj in 0..self.kw {
                    let row = ki * self.kw + kj;
                    let dst = &mut rows[row * ld + col0..][..p];
                    dst[..top * w].fill(0.0);
                    dst[bottom * w..].fill(0.0);
                    if top == bottom {
                        continue;
                    }
                    // Output position q reads input position q + shift (shift = (ki − ph)·w +
                    // kj − pw); positions whose source falls outside the plane are edge
                    // columns, zeroed below.
                    let shift = (ki * w + kj) as isize - (self.ph * w + self.pw) as isize;
                    let (lo, hi) = (top * w, bottom * w);
                    // (Both clamped to lo..hi: with padding wider than the image the shifted
                    // source can miss the band entirely.)
                    let first = lo.max((-shift).max(0) as usize).min(hi);
                    let last = hi.min((plane as isize - shift).max(0) as usize).max(first);
                    dst[lo..first].fill(0.0);
                    dst[last..hi].fill(0.0);
                    if first < last {
                        let start = (first as isize + shift) as usize;
                        dst[first..last].copy_from_slice(&src[start..start + last - first]);
                    }
                    let (left, right) = self.valid_columns(kj);
                    for out in dst[lo..hi].chunks_exact_mut(w) {
                        zero_few(&mut out[..left]);
                        zero_few(&mut out[right..]);
                    }
                }
            }
        }

        /// Adds columns `[in·kh·kw, p]` (from column `col0` of rows `ld` wide) back onto one
        /// image's gradient `dx` (`[in, h, w]`): the transpose of
        /// [`im2col_plane`](Self::im2col_plane) over the image's channels.
        fn col2im(&self, cols: &[f32], ld: usize, col0: usize, dx: &mut [f32]) {
            let p = self.p();
            for c in 0..self.c {
                let plane = &mut dx[c * self.h * self.w..][..self.h * self.w];
                for ki in 0..self.kh {
                    for kj in 0..self.kw {
                        let row = (c * self.kh + ki) * self.kw + kj;
                        let src = &cols[row * ld + col0..][..p];
                        let (lo, hi) = self.valid_columns(kj);
                        for (oh, g) in src.chunks_exact(self.ow).enumerate() {
                            let ih = (oh * self.sh + ki).wrapping_sub(self.ph);
                            if ih >= self.h {
                                continue;
                            }
                            let dst = &mut plane[ih * self.w..][..self.w];
                            if self.sw == 1 {
                                if lo < hi {
                                    let start = lo + kj - self.pw;
                                    dst[start..start + hi - lo].iter_mut().zip(&g[lo..hi]).for_each(|(d, v)| *d += v);
                                }
                            } else {
                                for (ow, v) in g[lo..hi].iter().enumerate() {
                                    dst[(lo + ow) * self.sw + kj - self.pw] += v;
                                }
                            }
                        }
                    }
                }
            }
        }

        /// The columns of images `first..first + count` side by side: `[in·kh·kw, count·p]`, in
        /// the front of `buf` (every value written).
        fn columns<'a>(&self, x: &[f32], first: usize, count: usize, buf: &'a mut Vec<f32>) -> MatRef<'a, f32> {
            let ld = count * self.p();
            let cols = sized(buf, self.k() * ld);
            for (c, rows) in cols.chunks_exact_mut(self.kh * self.kw * ld).enumerate() {
                self.unfold_channel(x, first, count, c, rows, ld);
            }
            MatRef::from_row_major_slice(cols, self.k(), ld)
        }

        /// Channel `c`'s `kh·kw` rows (`rows`, `ld` wide) of the columns of images
        /// `first..first + count` of `x`.
        fn unfold_channel(&self, x: &[f32], first: usize, count: usize, c: usize, rows: &mut [f32], ld: usize) {
            let plane = self.h * self.w;
            for i in 0..count {
                self.im2col_plane(&x[(first + i) * self.image() + c * plane..][..plane], rows, ld, i * self.p());
            }
        }
    }

    /// Working buffers of the kernels (columns, a group's product or gathered gradient), kept
    /// per thread between calls: the columns of a 224 px ResNet layer are several MB, and a
    /// fresh buffer costs a `memset` (or page faults) each time. Taken out of the thread's slot
    /// and put back on drop, so a nested use on the same thread (another group run while a GEMM
    /// waits) finds the slot empty and allocates its own instead of sharing. They never shrink:
    /// each thread keeps its largest columns or Winograd tiles (~13 MB per thread for ResNet18 at
    /// 224 px, batch 16, on 2 threads; the
    /// weight gradient's thread at least 16 MB) for as long as it lives.
    #[derive(Default)]
    struct Buffers {
        columns: Vec<f32>,
        block: Vec<f32>,
    }

    /// A thread's [`Buffers`] while a kernel uses them, put back into the thread's slot on drop.
    struct Scratch(Buffers);

    thread_local! {
        static SCRATCH: std::cell::Cell<Option<Buffers>> = const { std::cell::Cell::new(None) };
    }

    impl Scratch {
        fn take() -> Self {
            Self(SCRATCH.with(|slot| slot.take()).unwrap_or_default())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let buffers = std::mem::take(&mut self.0);
            // Whatever the slot holds (a nested user's buffers) is freed; during thread
            // teardown the slot may be gone, and the buffers are freed too.
            let _ = SCRATCH.try_with(|slot| slot.set(Some(buffers)));
        }
    }

    /// Zeros a few values (a row's padding columns, usually none or one): a lone store, not
    /// a `memset` call, for the single value.
    #[inline(always)]
    fn zero_few(values: &mut [f32]) {
        match values {
            [] => {}
            [v] => *v = 0.0,
            _ => values.fill(0.0),
        }
    }

    /// `dst ← lhs · rhs` or `dst ← dst + lhs · rhs` on faer's GEMM.
    fn gemm(dst: MatMut<'_, f32>, accum: Accum, lhs: MatRef<'_, f32>, rhs: MatRef<'_, f32>, par: Par) {
        faer::linalg::matmul::matmul(dst, accum, lhs, rhs, 1.0f32, par);
    }

    /// One GEMM per group: sequential on each core when the groups keep every core busy, else
    /// each GEMM on all of them.
    fn inner_par(groups: usize) -> Par {
        if groups >= rayon::current_num_threads() { Par::Seq } else { Par::rayon(0) }
    }

    /// A group's output gradient `[out, count·p]`: the images' `[out, p]` blocks of `dy` side by
    /// side (a view when the group is one image).
    fn gathered<'a>(g: &Geometry, dy: &'a [f32], first: usize, count: usize, buf: &'a mut Vec<f32>) -> MatRef<'a, f32> {
        let (p, oc) = (g.p(), g.oc);
        if count == 1 {
            return MatRef::from_row_major_slice(&dy[first * oc * p..][..oc * p], oc, p);
        }
        let buf = sized(buf, oc * count * p);
        for i in 0..count {
            let image = &dy[(first + i) * oc * p..][..oc * p];
            for (o, row) in image.chunks_exact(p).enumerate() {
                buf[o * count * p + i * p..][..p].copy_from_slice(row);
            }
        }
        MatRef::from_row_major_slice(buf, oc, count * p)
    }

    fn contiguous(t: FlexTensor) -> FlexTensor {
        if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
    }

    fn values(t: &FlexTensor) -> &[f32] {
        t.as_slice::<f32>().expect("contiguous f32 (made so by `contiguous`)")
    }

    fn forward(x: FlexTensor, weight: FlexTensor, options: &ConvOptions<2>) -> FlexTensor {
        let Some(g) = Geometry::of(&x, &weight, options) else {
            return Flex::conv2d(x, weight, None, options.clone());
        };
        let (x, weight) = (contiguous(x), contiguous(weight));
        if winograd::applies([g.kh, g.kw], [g.sh, g.sw], [g.ph, g.pw], [g.h, g.w]) {
            return winograd_forward(&g, values(&x), values(&weight));
        }
        let (xv, w) = (values(&x), MatRef::from_row_major_slice(values(&weight), g.oc, g.k()));
        let (p, group) = (g.p(), g.group());
        let mut out = vec![0f32; g.n * g.oc * p];
        let groups = g.n.div_ceil(group);
        let par = inner_par(groups);
        out.par_chunks_mut(group * g.oc * p).enumerate().for_each_init(Scratch::take, |scratch, (gi, out)| {
            let (first, count) = (gi * group, out.len() / (g.oc * p));
            let cols = g.columns(xv, first, count, &mut scratch.0.columns);
            if count == 1 {
                gemm(MatMut::from_row_major_slice_mut(out, g.oc, p), Accum::Replace, w, cols, par);
                return;
            }
            let tmp = sized(&mut scratch.0.block, g.oc * count * p);
            gemm(MatMut::from_row_major_slice_mut(tmp, g.oc, count * p), Accum::Replace, w, cols, par);
            for i in 0..count {
                for o in 0..g.oc {
                    out[(i * g.oc + o) * p..][..p].copy_from_slice(&tmp[o * count * p + i * p..][..p]);
                }
            }
        });
        f32_tensor(out, Shape::new([g.n, g.oc, g.oh, g.ow]))
    }

    /// [`forward`] for 3×3 kernels with stride 1 and padding 1 on Winograd's F(2×2, 3×3)
    /// (ft-hub's `ops/winograd.rs`): the images in groups of up to [`MIN_COLUMNS`] tiles, no more
    /// images per group than `n / threads` (so every core gets one where there are enough), each
    /// group on one thread with its GEMMs sequential — or, with fewer groups than threads, each
    /// GEMM and transform on every core.
    fn winograd_forward(g: &Geometry, x: &[f32], weight: &[f32]) -> FlexTensor {
        let kernels = winograd::Kernels::new(weight, g.oc, g.c);
        let tiles = winograd::tiles(g.h, g.w);
        let group = g.group_of(tiles);
        let (plane, groups) = (g.p(), g.n.div_ceil(group));
        let par = inner_par(groups);
        let mut out = vec![0f32; g.n * g.oc * plane];
        out.par_chunks_mut(group * g.oc * plane).enumerate().for_each_init(Scratch::take, |scratch, (gi, out)| {
            let count = out.len() / (g.oc * plane);
            let x = &x[gi * group * g.image()..][..count * g.image()];
            let Buffers { columns, block } = &mut scratch.0;
            kernels.convolve(x, [count, g.h, g.w], out, columns, block, par);
        });
        f32_tensor(out, Shape::new([g.n, g.oc, g.oh, g.ow]))
    }

    /// The weight of the stride-1 input gradient as a convolution: `[in, out, kh, kw]`, each
    /// kernel turned by 180° (`w'[c, o, i, j] = w[o, c, kh−1−i, kw−1−j]`).
    ///
    /// # Shapes
    /// - `weight`: `[out, in, kh, kw]` (`g`'s)
    fn turned(g: &Geometry, weight: &[f32]) -> FlexTensor {
        let taps = g.kh * g.kw;
        let mut turned = vec![0f32; g.c * g.oc * taps];
        turned.par_chunks_mut(g.oc * taps).enumerate().for_each(|(c, dst)| {
            for (o, kernel) in dst.chunks_exact_mut(taps).enumerate() {
                let src = &weight[(o * g.c + c) * taps..][..taps];
                kernel.iter_mut().zip(src.iter().rev()).for_each(|(d, &v)| *d = v);
            }
        });
        f32_tensor(turned, Shape::new([g.c, g.oc, g.kh, g.kw]))
    }

    fn input_grad(x: FlexTensor, weight: FlexTensor, dy: FlexTensor, options: &ConvOptions<2>) -> FlexTensor {
        let Some(g) = Geometry::with_output_grad(&x, &weight, &dy, options) else {
            return Flex::conv2d_x_backward(x, weight, dy, options.clone());
        };
        let (weight, dy) = (contiguous(weight), contiguous(dy));
        if g.sh == 1 && g.sw == 1 && g.ph < g.kh && g.pw < g.kw {
            // With stride 1 the input's gradient is itself a convolution: `dy` convolved with the
            // turned kernels, padded by `k − 1 − pad` — the forward kernels, with no col2im
            // additions and a GEMM of the forward's shape.
            let turned = turned(&g, values(&weight));
            let padding = [g.kh - 1 - g.ph, g.kw - 1 - g.pw];
            let dx = forward(dy, turned, &ConvOptions::new([1, 1], padding, [1, 1], 1));
            debug_assert!(dx.shape().dims() == [g.n, g.c, g.h, g.w]);
            return dx;
        }
        let (dyv, wt) = (values(&dy), MatRef::from_row_major_slice(values(&weight), g.oc, g.k()).transpose());
        let (p, group) = (g.p(), g.group());
        let mut dx = vec![0f32; g.n * g.image()];
        let groups = g.n.div_ceil(group);
        let par = inner_par(groups);
        dx.par_chunks_mut(group * g.image()).enumerate().for_each_init(Scratch::take, |scratch, (gi, dx)| {
            let (first, count) = (gi * group, dx.len() / g.image());
            let dy_g = gathered(&g, dyv, first, count, &mut scratch.0.block);
            let dcols = sized(&mut scratch.0.columns, g.k() * count * p);
            gemm(MatMut::from_row_major_slice_mut(dcols, g.k(), count * p), Accum::Replace, wt, dy_g, par);
            for (i, image) in dx.chunks_exact_mut(g.image()).enumerate() {
                g.col2im(dcols, count * p, i * p, image);
            }
        });
        f32_tensor(dx, Shape::new([g.n, g.c, g.h, g.w]))
    }

    /// Column values (images × their columns) a weight-gradient product takes at most: 16 MB
    /// of f32, so a 224 px ResNet's `layer3` sums 9 images per product and `layer1` 2.
    const WEIGHT_GRAD_COLUMNS: usize = 1 << 22;

    fn weight_grad(x: FlexTensor, weight: FlexTensor, dy: FlexTensor, options: &ConvOptions<2>) -> FlexTensor {
        let Some(g) = Geometry::with_output_grad(&x, &weight, &dy, options) else {
            return Flex::conv2d_weight_backward(x, weight, dy, options.clone());
        };
        let (x, dy) = (contiguous(x), contiguous(dy));
        let (xv, dyv) = (values(&x), values(&dy));
        // Groups of images one after the other, each one GEMM on all cores (faer splits the
        // output, so every weight's sum runs in one order whatever the thread count) adding
        // into the gradient; each group's columns unfolded in parallel over the channels.
        let group = (WEIGHT_GRAD_COLUMNS / (g.k() * g.p())).clamp(1, g.n);
        let (taps, p) = (g.kh * g.kw, g.p());
        let mut dw = vec![0f32; g.oc * g.k()];
        let mut scratch = Scratch::take();
        for first in (0..g.n).step_by(group) {
            let count = group.min(g.n - first);
            let ld = count * p;
            let cols = sized(&mut scratch.0.columns, g.k() * ld);
            cols.par_chunks_mut(taps * ld)
                .enumerate()
                .for_each(|(c, rows)| g.unfold_channel(xv, first, count, c, rows, ld));
            let cols_t = MatRef::from_row_major_slice(cols, g.k(), ld).transpose();
            let dy_g = gathered(&g, dyv, first, count, &mut scratch.0.block);
            let dw = MatMut::from_row_major_slice_mut(&mut dw, g.oc, g.k());
            gemm(dw, Accum::Add, dy_g, cols_t, Par::rayon(0));
        }
        f32_tensor(dw, Shape::new([g.oc, g.c, g.kh, g.kw]))
    }

    impl ConvOps for Flex {
        fn conv2d_nobias(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            options: ConvOptions<2>,
        ) -> FloatTensor<Self> {
            forward(x, weight, &options)
        }

        fn conv2d_input_grad(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            dy: FloatTensor<Self>,
            options: ConvOptions<2>,
        ) -> FloatTensor<Self> {
            input_grad(x, weight, dy, &options)
        }

        fn conv2d_weight_grad(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            dy: FloatTensor<Self>,
            options: ConvOptions<2>,
        ) -> FloatTensor<Self> {
            weight_grad(x, weight, dy, &options)
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Distribution, Tolerance};

    /// Output, input gradient, weight and bias gradients equal Burn's own convolution's, for the
    /// shapes ResNet uses (7×7 stride 2 pad 3, 3×3 stride 1 and 2, 1×1 stride 2), an odd-sized
    /// input, a rectangular kernel and stride, images grouped per GEMM (small maps) or one by
    /// one, and batches smaller than the thread count.
    #[test]
    fn matches_burn_conv2d() {
        let cases: [(usize, usize, usize, [usize; 2], [usize; 2], [usize; 2], [usize; 2]); 24] = [
            // (batch, in, out, input hw, kernel, stride, padding)
            (3, 3, 8, [19, 17], [7, 7], [2, 2], [3, 3]),
            (4, 8, 8, [9, 9], [3, 3], [1, 1], [1, 1]),
            (5, 8, 16, [9, 10], [3, 3], [2, 2], [1, 1]),
            (5, 8, 16, [9, 10], [1, 1], [2, 2], [0, 0]),
            (1, 6, 4, [12, 12], [3, 3], [1, 1], [1, 1]),
            (2, 4, 6, [5, 8], [2, 3], [1, 2], [0, 1]),
            (7, 16, 8, [3, 3], [3, 3], [1, 1], [1, 1]),
            (2, 3, 5, [4, 4], [5, 5], [1, 1], [2, 2]),
            // More than 512 output pixels and more images than threads (Winograd: 144 tiles per
            // image, groups of up to 4).
            (5, 4, 4, [24, 24], [3, 3], [1, 1], [1, 1]),
            // A kernel wider than the image plus its padding on one side: empty column ranges.
            (2, 2, 3, [5, 2], [7, 7], [1, 1], [3, 3]),
            // Stride 1 with output rows as wide as the input's but fewer of them (the shifted
            // im2col; the input gradient as a convolution padded by 1 and 1), and a 1×1 kernel.
            (3, 5, 4, [6, 7], [2, 3], [1, 1], [0, 1]),
            (2, 6, 3, [5, 4], [1, 1], [1, 1], [0, 0]),
            // Stride 1 without padding (the general im2col; the input gradient padded by 2).
            (2, 3, 4, [6, 7], [3, 3], [1, 1], [0, 0]),
            // Padding as large as the kernel: the input gradient by col2im at stride 1.
            (2, 3, 4, [5, 6], [1, 3], [1, 1], [1, 1]),
            // Padding wider than the image (the shifted im2col's source misses whole bands).
            (2, 3, 4, [1, 1], [5, 5], [1, 1], [2, 2]),
            (2, 2, 3, [2, 2], [7, 7], [1, 1], [3, 3]),
            (2, 2, 3, [4, 2], [7, 7], [1, 1], [3, 3]),
            // Columns past the weight gradient's 16 MB (padding 2, so im2col): groups of 3 then 2
            // images.
            (5, 16, 4, [96, 96], [3, 3], [1, 1], [2, 2]),
            // Winograd (3×3, stride 1, padding 1): odd and even sides mixed, one-pixel sides
            // (im2col: Winograd wants 2×2 at least), ResNet's layer4 map (7×7: the last tiles
            // half outside), more channels.
            (3, 5, 7, [7, 10], [3, 3], [1, 1], [1, 1]),
            (2, 3, 2, [1, 1], [3, 3], [1, 1], [1, 1]),
            (2, 4, 3, [6, 1], [3, 3], [1, 1], [1, 1]),
            (9, 48, 40, [7, 7], [3, 3], [1, 1], [1, 1]),
            (2, 64, 32, [14, 13], [3, 3], [1, 1], [1, 1]),
            (5, 16, 4, [96, 96], [3, 3], [1, 1], [1, 1]),
        ];
        // One, two and three threads: images one per GEMM or grouped, groups per thread.
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
            pool.install(|| check_cases(&cases));
        }
    }

    fn check_cases(cases: &[(usize, usize, usize, [usize; 2], [usize; 2], [usize; 2], [usize; 2])]) {
        let device = Device::flex().autodiff();
        device.seed(11);
        for (i, &(n, c, oc, [h, w], kernel, stride, [ph, pw])) in cases.iter().enumerate() {
            let layer = Conv2dConfig::new([c, oc], kernel)
                .with_stride(stride)
                .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
                .with_bias(i % 2 == 0)
                .init(&device);
            let x: Tensor<4> = Tensor::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device).require_grad();
            let options = fused_options(&layer, &x).expect("routed to ft's kernels");
            let (xp, wp) = (flex(x.clone()), flex(layer.weight.val()));
            assert!(flex::Geometry::of(&xp, &wp, &options).is_some(), "case {i} runs on ft's kernels");
            let ours = forward(&layer, x.clone());
            let burns = layer.forward(x.clone());
            assert_eq!(ours.dims(), burns.dims(), "case {i}");
            let tol = Tolerance::rel_abs(1e-5, 1e-5);
            ours.clone().into_data().assert_approx_eq::<f32>(&burns.clone().into_data(), tol);
            let target: Tensor<4> = Tensor::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
            let g_ours = (ours * target.clone()).sum().backward();
            let g_burn = (burns * target).sum().backward();
            let (dx_ours, dx_burn) = (x.grad(&g_ours).unwrap(), x.grad(&g_burn).unwrap());
            dx_ours.into_data().assert_approx_eq::<f32>(&dx_burn.into_data(), tol);
            let (p_ours, p_burn) =
                (GradientsParams::from_grads(g_ours, &layer), GradientsParams::from_grads(g_burn, &layer));
            let (w_ours, w_burn): (Tensor<4>, Tensor<4>) =
                (p_ours.get(layer.weight.id).unwrap(), p_burn.get(layer.weight.id).unwrap());
            // The weight's gradient sums n·out_h·out_w products (46,080 in the largest case, whose
            // rounding differs from Burn's by up to ~4e-4 on values in the hundreds); Winograd's
            // transforms add a little (1.3e-5 relative seen on a value of −9.5: the test's random
            // draws depend on the other tests running beside it).
            let w_tol =
                if n * h * w > 10_000 { Tolerance::rel_abs(2e-5, 1e-3) } else { Tolerance::rel_abs(2e-5, 2e-4) };
            w_ours.into_data().assert_approx_eq::<f32>(&w_burn.into_data(), w_tol);
            if let Some(bias) = &layer.bias {
                let (b_ours, b_burn): (Tensor<1>, Tensor<1>) =
                    (p_ours.get(bias.id).unwrap(), p_burn.get(bias.id).unwrap());
                b_ours.into_data().assert_approx_eq::<f32>(&b_burn.into_data(), Tolerance::rel_abs(1e-5, 1e-4));
            }
        }
    }

    fn flex(t: Tensor<4>) -> burn::backend::flex::FlexTensor {
        t.inner().try_into_primitive::<burn::backend::Flex>().expect("a flex tensor")
    }

    /// A frozen weight gets no gradient; inference (no autodiff) takes the same kernels.
    #[test]
    fn only_tracked_operands_get_gradients() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let mut layer = Conv2dConfig::new([4, 6], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init(&device);
        layer.weight = layer.weight.set_require_grad(false);
        let x: Tensor<4> = Tensor::random([2, 4, 6, 6], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let grads = forward(&layer, x.clone()).sum().backward();
        assert!(x.grad(&grads).is_some());
        assert!(GradientsParams::from_grads(grads, &layer).get::<4>(layer.weight.id).is_none());
        // Inference (no autodiff) takes the same kernels.
        let plain = Device::flex();
        let layer = Conv2dConfig::new([4, 6], [3, 3]).with_stride([2, 1]).init(&plain);
        let x: Tensor<4> = Tensor::random([3, 4, 7, 6], Distribution::Normal(0.0, 1.0), &plain);
        forward(&layer, x.clone())
            .into_data()
            .assert_approx_eq::<f32>(&layer.forward(x).into_data(), Tolerance::rel_abs(1e-5, 1e-5));
    }

    /// Strided inputs (a channel slice) are read correctly.
    #[test]
    fn non_contiguous_input() {
        let device = Device::flex();
        device.seed(9);
        let layer = Conv2dConfig::new([3, 5], [3, 3]).with_stride([2, 2]).init(&device);
        let big: Tensor<4> = Tensor::random([2, 6, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        let x = big.narrow(1, 2, 3);
        forward(&layer, x.clone())
            .into_data()
            .assert_approx_eq::<f32>(&layer.forward(x).into_data(), Tolerance::rel_abs(1e-5, 1e-5));
    }
}
