//! Reading flex tensors as faer matrices through their strides, without copies (the linear
//! layers' and attention products' operands: PyTorch-layout weights, `xᵀ`, heads split out of
//! `[batch, seq, heads·d]`, `kᵀ`).

use burn::backend::flex::FlexTensor;
use burn::tensor::DType;
use faer::MatRef;

/// How a batch of matrices lies in a flex tensor's storage: where each entry starts, and the
/// row and column strides they share.
pub(crate) struct Batched {
    /// Where each entry starts in the storage.
    pub offsets: Vec<usize>,
    /// Rows of every entry.
    pub rows: usize,
    /// Columns of every entry.
    pub cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl Batched {
    /// The layout of `t` (`[..., rows, cols]`, f32, non-empty), when faer can read every
    /// entry: non-negative strides, one of the matrix strides 1 (row- or column-major);
    /// `None` otherwise.
    pub fn of(t: &FlexTensor) -> Option<Self> {
        let layout = t.layout();
        let (shape, strides) = (layout.shape(), layout.strides());
        let d = shape.num_dims();
        if t.dtype() != DType::F32 || d < 2 || (0..d).any(|i| shape[i] == 0 || strides[i] < 0) {
            return None;
        }
        let (rows, cols) = (shape[d - 2], shape[d - 1]);
        // A dimension of size 1 has no meaningful stride: any value addresses the same elements.
        let row_stride = if rows == 1 { cols as isize } else { strides[d - 2] };
        let col_stride = if cols == 1 { 1 } else { strides[d - 1] };
        if col_stride != 1 && row_stride != 1 {
            return None;
        }
        let mut offsets = vec![layout.start_offset()];
        for i in 0..d - 2 {
            let step = strides[i] as usize;
            offsets = offsets.iter().flat_map(|&o| (0..shape[i]).map(move |j| o + j * step)).collect();
        }
        Some(Self { offsets, rows, cols, row_stride, col_stride })
    }

    /// Entry `i` of `data` as a faer view; `None` if it would read past the storage.
    pub fn entry<'a>(&self, data: &'a [f32], i: usize) -> Option<MatRef<'a, f32>> {
        let data = data.get(self.offsets[i]..)?;
        // Column-major is the transpose of a row-major view with rows and columns swapped.
        let (major, minor, stride, transposed) = if self.col_stride == 1 {
            (self.rows, self.cols, self.row_stride, false)
        } else {
            (self.cols, self.rows, self.col_stride, true)
        };
        let needed = (major - 1).checked_mul(stride as usize)?.checked_add(minor)?;
        let m = MatRef::from_row_major_slice_with_stride(data.get(..needed)?, major, minor, stride as usize);
        Some(if transposed { m.transpose() } else { m })
    }
}

/// A 2-D f32 flex tensor as a faer matrix view ([`Batched`] of one entry); `None` for other
/// ranks and the layouts [`Batched::of`] refuses.
pub(crate) fn view(t: &FlexTensor) -> Option<MatRef<'_, f32>> {
    if t.layout().shape().num_dims() != 2 {
        return None;
    }
    Batched::of(t)?.entry(t.storage::<f32>(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, Tensor};

    fn flex(t: Tensor<4>) -> FlexTensor {
        t.try_into_primitive::<burn::backend::Flex>().expect("a flex tensor")
    }

    /// The layouts attention hands the products: heads split out of `[batch, seq, heads·d]` (row
    /// stride heads·d), `kᵀ` (column-major), a view starting past the storage's start (a
    /// `narrow` of the heads), and an expanded batch (stride 0).
    #[test]
    fn strided_layouts_are_read_in_place() {
        let device = Device::flex();
        let x = Tensor::<3>::random([2, 5, 3 * 4], Distribution::Normal(0.0, 1.0), &device);
        let heads = x.clone().reshape([2, 5, 3, 4]).swap_dims(1, 2);
        let b = Batched::of(&flex(heads.clone())).expect("heads");
        assert_eq!((b.rows, b.cols, b.row_stride, b.col_stride), (5, 4, 12, 1));
        assert_eq!(b.offsets, vec![0, 4, 8, 60, 64, 68]);
        let kt = Batched::of(&flex(heads.clone().swap_dims(2, 3))).expect("kᵀ");
        assert_eq!((kt.rows, kt.cols, kt.row_stride, kt.col_stride), (4, 5, 1, 12));
        let narrowed = heads.clone().narrow(1, 1, 2);
        let n = Batched::of(&flex(narrowed.clone())).expect("narrow");
        assert_eq!(n.offsets, vec![4, 8, 64, 68]);
        // Entry 3 is batch 1, head 2 of x: x[1, :, 8..12].
        let data = flex(narrowed.clone());
        let m = n.entry(data.storage::<f32>(), 3).expect("in bounds");
        let want = x.clone().slice([1..2, 0..5, 8..12]).reshape([5, 4]).into_data().try_to_vec::<f32>().expect("f32");
        let got: Vec<f32> = (0..5).flat_map(|r| (0..4).map(move |c| (r, c))).map(|(r, c)| m[(r, c)]).collect();
        assert_eq!(got, want);
        let one = Tensor::<4>::random([1, 3, 5, 4], Distribution::Normal(0.0, 1.0), &device);
        let e = Batched::of(&flex(one.expand([2, 3, 5, 4]))).expect("expanded");
        assert_eq!(e.offsets, vec![0, 20, 40, 0, 20, 40]);
    }
}
