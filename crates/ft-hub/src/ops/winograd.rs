//! Winograd's F(2×2, 3×3) for the 3×3 convolutions with stride 1 and padding 1 — most of
//! ResNet's multiply-adds (every 3×3 convolution but the first of `layer2`–`layer4`, and, as a convolution
//! with the kernels turned by 180°, their input gradients) — on the flex CPU backend.
//!
//! **How** (Lavin & Gray, *Fast Algorithms for Convolutional Neural Networks*, 2016). The output
//! is cut into 2×2 tiles; each reads a 4×4 patch `d` of the padded input. With the kernel `g`
//! transformed once into `U = G g Gᵀ` and the patch into `V = Bᵀ d B` (4×4 each), the tile is
//! `Aᵀ (U ⊙ V) A`: 16 multiplies per input channel for 4 outputs instead of 36, so a
//! convolution becomes 16 products `M_ξ = U_ξ · V_ξ` (`ξ` one of the 16 positions; `U_ξ`
//! `[out, in]`, `V_ξ` `[in, tiles]`) — GEMMs on faer with 2.25× fewer multiply-adds than im2col's,
//! between two cheap linear transforms (additions and halvings only: each transformed value
//! sums at most 9 terms, so the rounding error stays small — within 1e-5 of a direct f64
//! convolution in the tests — though not bit for bit a direct convolution's).
//!
//! **Layout.** Transformed weights `[out][16][in]`, transformed input `[in][16][tiles]`, products
//! `[out][16][tiles]`, so each `ξ`'s matrix is a strided view and each channel's 16 rows are one
//! contiguous block (the transforms run channel by channel, vectorised along the tile row).
//! Images are taken in groups (as im2col's kernel does) so a small map's GEMMs still have a few
//! hundred columns.

use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Positions of a 4×4 input tile (the 16 products per convolution).
const POSITIONS: usize = 16;

/// Whether a convolution is one this module computes: a 3×3 kernel, stride 1, padding 1 on
/// both axes, over maps at least 2 pixels high and wide (a 1-pixel side would fill half of every
/// 2×2 tile with outputs nobody reads: 16 multiplies per output against a direct 9 on a 1×1
/// map). Dilation 1, one group and no empty dimension are the caller's conditions: the
/// functions below assume every size is at least 1.
pub(super) fn applies(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2], [h, w]: [usize; 2]) -> bool {
    kernel == [3, 3] && stride == [1, 1] && padding == [1, 1] && h >= 2 && w >= 2
}

/// Output tiles per image of `h × w` (the output is as large as the input).
pub(super) fn tiles(h: usize, w: usize) -> usize {
    h.div_ceil(2) * w.div_ceil(2)
}

/// A convolution's weights, transformed (`U = G g Gᵀ` per kernel), and its sizes.
pub(super) struct Kernels {
    /// `[out][16][in]`.
    u: Vec<f32>,
    c: usize,
    oc: usize,
}

impl Kernels {
    /// Transforms `weight` (`[out, in, 3, 3]`, PyTorch's layout), the output channels in
    /// parallel.
    pub(super) fn new(weight: &[f32], oc: usize, c: usize) -> Self {
        debug_assert_eq!(weight.len(), oc * c * 9);
        let mut u = vec![0f32; oc * POSITIONS * c];
        u.par_chunks_mut(POSITIONS * c).enumerate().for_each(|(o, dst)| {
            for (ci, g) in weight[o * c * 9..][..c * 9].chunks_exact(9).enumerate() {
                // G g (4×3): G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]].
                let mut t = [[0f32; 3]; 4];
                for j in 0..3 {
                    let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
                    t[0][j] = g0;
                    t[1][j] = 0.5 * (g0 + g1 + g2);
                    t[2][j] = 0.5 * (g0 - g1 + g2);
                    t[3][j] = g2;
                }
                // (G g) Gᵀ (4×4).
                for (i, [a, b, e]) in t.into_iter().enumerate() {
                    let row = [a, 0.5 * (a + b + e), 0.5 * (a - b + e), e];
                    for (j, v) in row.into_iter().enumerate() {
                        dst[(4 * i + j) * c + ci] = v;
                    }
                }
            }
        });
        Self { u, c, oc }
    }

    /// Convolves `count` images (`x`: `[count, in, h, w]`) into `out` (`[count, out, h, w]`,
    /// every value written), with `v` and `m` as working buffers (grown as needed, never
    /// shrunk) and `par` for the 16 GEMMs.
    pub(super) fn convolve(
        &self,
        x: &[f32],
        [count, h, w]: [usize; 3],
        out: &mut [f32],
        v: &mut Vec<f32>,
        m: &mut Vec<f32>,
        par: Par,
    ) {
        let (c, oc) = (self.c, self.oc);
        let ld = count * tiles(h, w);
        debug_assert_eq!(x.len(), count * c * h * w);
        debug_assert_eq!(out.len(), count * oc * h * w);
        let v = sized(v, c * POSITIONS * ld);
        let m = sized(m, oc * POSITIONS * ld);
        let transform = par != Par::Seq;
        // Input: each channel's [16][ld] block, the images one after the other along the tiles.
        let input = |(ci, block): (usize, &mut [f32])| {
            for i in 0..count {
                let plane = &x[(i * c + ci) * h * w..][..h * w];
                pulp::Arch::new().dispatch(InputTiles { plane, h, w, block, ld, t0: i * tiles(h, w) });
            }
        };
        if transform {
            v.par_chunks_mut(POSITIONS * ld).enumerate().for_each(input);
        } else {
            v.chunks_mut(POSITIONS * ld).enumerate().for_each(input);
        }
        for xi in 0..POSITIONS {
            let lhs = MatRef::from_row_major_slice_with_stride(&self.u[xi * c..], oc, c, POSITIONS * c);
            let rhs = MatRef::from_row_major_slice_with_stride(&v[xi * ld..], c, ld, POSITIONS * ld);
            // (faer 0.24's `from_row_major_slice_with_stride_mut` lays the view out column-major
            // — past the slice —, so the transpose of a column-major view instead.)
            let dst = MatMut::from_column_major_slice_with_stride_mut(&mut m[xi * ld..], ld, oc, POSITIONS * ld)
                .transpose_mut();
            faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
        }
        // Output: each image's output channel is one plane, from that channel's 16 rows.
        let (m, plane) = (&*m, h * w);
        let write = |(k, dst): (usize, &mut [f32])| {
            let (i, o) = (k / oc, k % oc);
            let block = &m[o * POSITIONS * ld..][..POSITIONS * ld];
            pulp::Arch::new().dispatch(OutputTiles { block, ld, t0: i * tiles(h, w), h, w, plane: dst });
        };
        if transform {
            out.par_chunks_mut(plane).enumerate().for_each(write);
        } else {
            out.chunks_mut(plane).enumerate().for_each(write);
        }
    }
}

/// The first `len` values of `buf`, grown (with zeros) if it is shorter; what they hold is
/// left over from an earlier use, for callers that overwrite every value (shared with im2col's
/// kernels in `ops::conv`).
pub(super) fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// One input plane (`[h, w]`) into its tiles' `V = Bᵀ d B`: position `ξ`'s values at
/// `block[ξ·ld + t0 ..]`, one per tile (row-major over the tiles).
struct InputTiles<'a> {
    plane: &'a [f32],
    h: usize,
    w: usize,
    block: &'a mut [f32],
    ld: usize,
    t0: usize,
}

impl pulp::WithSimd for InputTiles<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self { plane, h, w, block, ld, t0 } = self;
        let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
        let n = tw + 1;
        // The tile row's 4 padded input rows `2·ty − 1 + k`, each split into its even and odd
        // padded columns (`e[j] = x[2j − 1]`, `o[j] = x[2j]`, zero outside the image): rows
        // 0..4 even, 4..8 odd; then the 4 combinations down the rows (Bᵀ d), rows 8..12 even,
        // 12..16 odd.
        let mut rows = vec![0f32; 16 * n];
        for ty in 0..th {
            let (split, combined) = rows.split_at_mut(8 * n);
            let (even, odd) = split.split_at_mut(4 * n);
            for k in 0..4 {
                let (e, o) = (&mut even[k * n..][..n], &mut odd[k * n..][..n]);
                e.fill(0.0);
                o.fill(0.0);
                let r = (2 * ty + k).wrapping_sub(1);
                if r < h {
                    split_row(&plane[r * w..][..w], e, o);
                }
            }
            // Down the rows: s0 = d0 − d2, s1 = d1 + d2, s2 = d2 − d1, s3 = d1 − d3.
            for (d, s) in [&*even, &*odd].into_iter().zip(combined.chunks_exact_mut(4 * n)) {
                let (d0, d1, d2, d3) = (&d[..n], &d[n..2 * n], &d[2 * n..3 * n], &d[3 * n..4 * n]);
                let (s0, rest) = s.split_at_mut(n);
                let (s1, rest) = rest.split_at_mut(n);
                let (s2, s3) = rest.split_at_mut(n);
                for j in 0..n {
                    s0[j] = d0[j] - d2[j];
                    s1[j] = d1[j] + d2[j];
                    s2[j] = d2[j] - d1[j];
                    s3[j] = d1[j] - d3[j];
                }
            }
            // Along each row (· B): tile tx reads (e[tx], o[tx], e[tx+1], o[tx+1]).
            let base = t0 + ty * tw;
            let (s_even, s_odd) = combined.split_at(4 * n);
            for i in 0..4 {
                let (e, o) = (&s_even[i * n..][..n], &s_odd[i * n..][..n]);
                let (e0, e1, o0, o1) = (&e[..tw], &e[1..n], &o[..tw], &o[1..n]);
                let [v0, v1, v2, v3] = rows4(block, ld, 4 * i, base, tw);
                for tx in 0..tw {
                    v0[tx] = e0[tx] - e1[tx];
                    v1[tx] = o0[tx] + e1[tx];
                    v2[tx] = e1[tx] - o0[tx];
                    v3[tx] = o0[tx] - o1[tx];
                }
            }
        }
    }
}

/// Rows `first..first + 4` of `block` (`ld` wide), columns `base..base + len`, as four
/// disjoint slices.
#[inline(always)]
fn rows4(block: &mut [f32], ld: usize, first: usize, base: usize, len: usize) -> [&mut [f32]; 4] {
    let (r0, rest) = block[first * ld..].split_at_mut(ld);
    let (r1, rest) = rest.split_at_mut(ld);
    let (r2, rest) = rest.split_at_mut(ld);
    let r3 = &mut rest[..ld];
    [&mut r0[base..][..len], &mut r1[base..][..len], &mut r2[base..][..len], &mut r3[base..][..len]]
}

/// A row `x` (`w` values) split into its padded even and odd columns: `e[j] = x[2j − 1]`,
/// `o[j] = x[2j]` (the padded row is `[0, x, 0…]`); `e` and `o` are zero beforehand.
#[inline(always)]
fn split_row(x: &[f32], e: &mut [f32], o: &mut [f32]) {
    let pairs = x.chunks_exact(2);
    let last = pairs.remainder().first().copied();
    let k = pairs.len();
    for ((pair, o), e) in pairs.zip(&mut o[..k]).zip(&mut e[1..=k]) {
        *o = pair[0];
        *e = pair[1];
    }
    if let Some(v) = last {
        o[k] = v;
    }
}

/// `dst = a + s·b + s·c`, `s` ±1 (so exactly `a ± b ± c`, in that order).
#[inline(always)]
fn combine3(dst: &mut [f32], a: &[f32], b: &[f32], c: &[f32], s: f32) {
    for (((d, &a), &b), &c) in dst.iter_mut().zip(a).zip(b).zip(c) {
        *d = a + s * b + s * c;
    }
}

/// One output channel's products (`block`: `[16][ld]`, its tiles from `t0`) into one image's
/// plane (`[h, w]`): `Y = Aᵀ M A` per tile, `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`.
struct OutputTiles<'a> {
    block: &'a [f32],
    ld: usize,
    t0: usize,
    h: usize,
    w: usize,
    plane: &'a mut [f32],
}

impl pulp::WithSimd for OutputTiles<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let Self { block, ld, t0, h, w, plane } = self;
        let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
        // Over all the image's tiles at once (so the loops are long enough to vectorise on
        // small maps): p (Aᵀ M, rows 0..4 the first output row's p0_j, 4..8 the second's p1_j),
        // then y (· A: the two output rows' even and odd columns), then into the plane.
        let n = th * tw;
        let m = |xi: usize| &block[xi * ld + t0..][..n];
        let mut p = vec![0f32; 8 * n];
        let mut y = vec![0f32; 4 * n];
        let (p0, p1) = p.split_at_mut(4 * n);
        for (j, (p0, p1)) in p0.chunks_exact_mut(n).zip(p1.chunks_exact_mut(n)).enumerate() {
            combine3(p0, m(j), m(4 + j), m(8 + j), 1.0);
            combine3(p1, m(4 + j), m(8 + j), m(12 + j), -1.0);
        }
        let q = |k: usize| &p[k * n..][..n];
        for (dst, (first, sign)) in y.chunks_exact_mut(n).zip([(0, 1.0), (1, -1.0), (4, 1.0), (5, -1.0)]) {
            combine3(dst, q(first), q(first + 1), q(first + 2), sign);
        }
        for ty in 0..th {
            for a in 0..2 {
                let r = 2 * ty + a;
                if r >= h {
                    break;
                }
                let left = &y[2 * a * n + ty * tw..][..tw];
                let right = &y[(2 * a + 1) * n + ty * tw..][..tw];
                let row = &mut plane[r * w..][..w];
                let mut pairs = row.chunks_exact_mut(2);
                for ((pair, &l), &r) in (&mut pairs).zip(left).zip(right) {
                    pair[0] = l;
                    pair[1] = r;
                }
                if let [last] = pairs.into_remainder() {
                    *last = left[tw - 1];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [−1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// `x[i, c, r, q]` with zero padding.
    fn at(x: &[f32], [c, h, w]: [usize; 3], i: usize, ci: usize, r: isize, q: isize) -> f64 {
        if r < 0 || q < 0 || r >= h as isize || q >= w as isize {
            return 0.0;
        }
        x[((i * c + ci) * h + r as usize) * w + q as usize] as f64
    }

    /// A 3×3 stride-1 padding-1 correlation, directly in f64.
    fn direct(x: &[f32], weight: &[f32], [n, c, h, w]: [usize; 4], oc: usize) -> Vec<f64> {
        let mut y = vec![0f64; n * oc * h * w];
        for i in 0..n {
            for o in 0..oc {
                for r in 0..h {
                    for q in 0..w {
                        let out = ((i * oc + o) * h + r) * w + q;
                        for ci in 0..c {
                            for k in 0..9 {
                                let v = at(x, [c, h, w], i, ci, (r + k / 3) as isize - 1, (q + k % 3) as isize - 1);
                                y[out] += weight[(o * c + ci) * 9 + k] as f64 * v;
                            }
                        }
                    }
                }
            }
        }
        y
    }

    fn close(ours: &[f32], exact: &[f64], what: &str) {
        assert_eq!(ours.len(), exact.len(), "{what}");
        for (k, (&a, &b)) in ours.iter().zip(exact).enumerate() {
            assert!((a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()), "{what} [{k}]: {a} vs {b}");
        }
    }

    /// The forward against a direct f64 correlation: odd and even sides, one-pixel sides, the
    /// images in one group or several.
    #[test]
    fn matches_direct_correlation() {
        for (n, c, oc, h, w) in [(3, 5, 4, 7, 6), (2, 3, 2, 1, 1), (4, 2, 3, 6, 1), (3, 4, 6, 5, 9)] {
            let x = values(n * c * h * w, 1);
            let weight = values(oc * c * 9, 2);
            let y = direct(&x, &weight, [n, c, h, w], oc);
            let kernels = Kernels::new(&weight, oc, c);
            for group in [1, 2, n] {
                let mut out = vec![f32::NAN; n * oc * h * w];
                let (mut v, mut m) = (Vec::new(), Vec::new());
                for (first, chunk) in (0..n).step_by(group).zip(out.chunks_mut(group * oc * h * w)) {
                    let count = chunk.len() / (oc * h * w);
                    let xs = &x[first * c * h * w..][..count * c * h * w];
                    kernels.convolve(xs, [count, h, w], chunk, &mut v, &mut m, Par::Seq);
                }
                close(&out, &y, &format!("forward {n}x{c}x{h}x{w} in groups of {group}"));
            }
        }
    }
}
