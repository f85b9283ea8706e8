//! Dense matrices and the one matrix product everything else is built from.
//!
//! `Mat` is a row-major `(rows, cols)` block of `f32` or `f64` — batches are `(B, width)`, weights
//! `(out, in)` — and [`gemm`] computes `C ← α·op(A)·op(B) + β·C` with a real blocked kernel
//! (the `gemm` crate behind faer: runtime-dispatched AVX2/FMA/AVX-512 microkernels natively, a
//! portable kernel in wasm), single-threaded per call — parallelism is across layers, above it.
//! Transposes are free: a [`View`] only swaps strides.

use num_traits::{Float, FromPrimitive, ToPrimitive};
use std::fmt::Debug;
use std::iter::Sum;

/// The float types the reference runs in: `f32` for training, `f64` for tests and the Hessian.
pub trait Real: Float + FromPrimitive + ToPrimitive + Sum + Debug + Default + Send + Sync + 'static {
    /// Converts an `f64` constant (scalings, learning rates) into this type.
    fn of(v: f64) -> Self {
        Self::from_f64(v).unwrap_or_else(Self::nan)
    }

    /// Widens to `f64` for reporting.
    fn f64(self) -> f64 {
        self.to_f64().unwrap_or(f64::NAN)
    }
}

impl Real for f32 {}
impl Real for f64 {}

/// A row-major matrix.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Mat<T> {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` values, row after row.
    pub data: Vec<T>,
}

impl<T: Real> Mat<T> {
    /// A `rows × cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Mat { rows, cols, data: vec![T::zero(); rows * cols] }
    }

    /// Wraps row-major data; `None` when the length does not match the shape.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<T>) -> Option<Self> {
        (data.len() == rows * cols).then_some(Mat { rows, cols, data })
    }

    /// The matrix as an operand of [`gemm`].
    pub fn view(&self) -> View<'_, T> {
        View { data: &self.data, rows: self.rows, cols: self.cols, rs: self.cols as isize, cs: 1 }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Rows `from … from+k−1` as a new matrix.
    pub fn range_rows(&self, from: usize, k: usize) -> Self {
        Mat { rows: k, cols: self.cols, data: self.data[from * self.cols..(from + k) * self.cols].to_vec() }
    }

    /// Sum of squares of all entries.
    pub fn sum_sq(&self) -> T {
        sum_sq(&self.data)
    }

    /// True when every entry is finite.
    pub fn all_finite(&self) -> bool {
        self.data.iter().all(|v| v.is_finite())
    }
}

/// `Σ vᵢ²`, accumulated in 16 interleaved partial sums so the loop vectorises (a single running sum
/// is a serial dependency the compiler may not reorder).
pub fn sum_sq<T: Real>(v: &[T]) -> T {
    let mut acc = [T::zero(); 16];
    let chunks = v.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = *a + x * x;
        }
    }
    tail.iter().fold(acc.iter().copied().sum(), |s, &x| s + x * x)
}

/// A read-only strided matrix operand: a row-major matrix or its transpose.
#[derive(Clone, Copy, Debug)]
pub struct View<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
}

impl<'a, T: Real> View<'a, T> {
    /// A row-major `rows × cols` operand over `data`.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "view shape does not match its data");
        View { data, rows, cols, rs: cols as isize, cs: 1 }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        View { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    /// Rows of the operand as seen by the product.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of the operand as seen by the product.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// `C ← α·A·B + β·C` where `C` is row-major `(A.rows, B.cols)` in `c`.
///
/// Panics on mismatched shapes: those are programming errors inside the reference, never user input.
pub fn gemm<T: Real>(alpha: T, a: View<'_, T>, b: View<'_, T>, beta: T, c: &mut [T]) {
    assert_eq!(a.cols, b.rows, "gemm: inner dimensions differ");
    assert_eq!(c.len(), a.rows * b.cols, "gemm: output has the wrong size");
    if c.is_empty() {
        return;
    }
    if a.cols == 0 {
        // Nothing to accumulate: C = β·C (and β = 0 must clear NaNs, as BLAS does).
        for v in c.iter_mut() {
            *v = if beta == T::zero() { T::zero() } else { beta * *v };
        }
        return;
    }
    // SAFETY: the views were built from slices of exactly `rows*cols` elements with the strides of
    // a row-major matrix or its transpose, `c` is a distinct `&mut` slice of the output size.
    // (`gemm` computes dst = α'·dst + β'·lhs·rhs, strides given column-first.)
    unsafe {
        ::gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            c.as_mut_ptr(),
            1,
            b.cols as isize,
            beta != T::zero(),
            a.data.as_ptr(),
            a.cs,
            a.rs,
            b.data.as_ptr(),
            b.cs,
            b.rs,
            beta,
            alpha,
            false,
            false,
            false,
            ::gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &Mat<f64>, b: &Mat<f64>) -> Vec<f64> {
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                c[i * b.cols + j] = (0..a.cols).map(|p| a.data[i * a.cols + p] * b.data[p * b.cols + j]).sum();
            }
        }
        c
    }

    #[test]
    fn gemm_matches_naive_product_with_transposes() {
        let a = Mat::from_vec(3, 4, (0..12).map(|v| v as f64 * 0.5 - 2.0).collect()).unwrap();
        let b = Mat::from_vec(4, 2, (0..8).map(|v| (v as f64).sin()).collect()).unwrap();
        let mut c = vec![0.0; 6];
        gemm(1.0, a.view(), b.view(), 0.0, &mut c);
        for (g, w) in c.iter().zip(naive(&a, &b)) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
        // (Bᵀ Aᵀ)ᵀ = A B: check the transposed operands through strides.
        let mut ct = vec![0.0; 6];
        gemm(1.0, b.view().t(), a.view().t(), 0.0, &mut ct);
        for i in 0..3 {
            for j in 0..2 {
                assert!((ct[j * 3 + i] - c[i * 2 + j]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn gemm_with_empty_inner_dimension_scales_output() {
        let a = Mat::<f32>::zeros(2, 0);
        let b = Mat::<f32>::zeros(0, 3);
        let mut c = vec![f32::NAN; 6];
        gemm(1.0, a.view(), b.view(), 0.0, &mut c);
        assert!(c.iter().all(|&v| v == 0.0));
    }
}
