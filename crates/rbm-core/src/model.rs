//! The RBM itself: parameters, the two conditionals, energy and free energy.
//!
//! Data convention throughout the crate: a data set is a `DMatrix<f32>` of shape
//! `n_visible x n_samples`, one column per sample. nalgebra is column-major, so each sample is
//! contiguous, a batch of consecutive samples is a contiguous slice, and a row-major CSV buffer of
//! `n_samples` rows and `n_visible` columns *is* this matrix (see [`samples_from_row_major`]).

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

use crate::error::{RbmError, Result};
use crate::linalg::{Operand, gemm, sigmoid, softplus};
use crate::units::VisibleKind;

/// Builds the crate's `n_visible x n_samples` data matrix from row-major values (one sample per
/// row, as read from a CSV file) without reordering anything.
///
/// ```
/// let data = rbm_core::samples_from_row_major(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 2);
/// assert_eq!((data.nrows(), data.ncols()), (2, 3));
/// assert_eq!(data.column(1).as_slice(), &[0.0, 1.0]);
/// ```
pub fn samples_from_row_major(values: Vec<f32>, n_features: usize) -> DMatrix<f32> {
    assert!(n_features > 0 && values.len().is_multiple_of(n_features), "values do not form whole rows");
    let n = values.len() / n_features;
    DMatrix::from_vec(n_features, n, values)
}

/// A restricted Boltzmann machine with visible units of one [`VisibleKind`] and Bernoulli hidden
/// units. Energy `E(v, h) = sum_i e_i(v_i; b_i) - c.h - v^T W h` with `e_i = -b_i v_i` (Bernoulli)
/// or `(v_i - b_i)^2 / 2` (Gaussian, unit variance).
#[derive(Clone, Debug, PartialEq)]
pub struct Rbm {
    visible: VisibleKind,
    /// `n_visible x n_hidden`.
    weights: DMatrix<f32>,
    /// `n_visible`.
    visible_bias: DVector<f32>,
    /// `n_hidden`.
    hidden_bias: DVector<f32>,
}

impl Rbm {
    /// A model with all parameters zero.
    pub fn zeros(visible: VisibleKind, n_visible: usize, n_hidden: usize) -> Self {
        Rbm {
            visible,
            weights: DMatrix::zeros(n_visible, n_hidden),
            visible_bias: DVector::zeros(n_visible),
            hidden_bias: DVector::zeros(n_hidden),
        }
    }

    /// A model from given parameters, checking shapes and finiteness.
    pub fn from_parameters(
        visible: VisibleKind,
        weights: DMatrix<f32>,
        visible_bias: DVector<f32>,
        hidden_bias: DVector<f32>,
    ) -> Result<Self> {
        let (nv, nh) = weights.shape();
        if nv == 0 || nh == 0 {
            return Err(RbmError::ShapeMismatch {
                what: "weights",
                expected: "at least 1 x 1".into(),
                found: format!("{nv} x {nh}"),
            });
        }
        if visible_bias.len() != nv {
            return Err(RbmError::ShapeMismatch {
                what: "visible bias",
                expected: format!("{nv} values"),
                found: format!("{} values", visible_bias.len()),
            });
        }
        if hidden_bias.len() != nh {
            return Err(RbmError::ShapeMismatch {
                what: "hidden bias",
                expected: format!("{nh} values"),
                found: format!("{} values", hidden_bias.len()),
            });
        }
        let rbm = Rbm { visible, weights, visible_bias, hidden_bias };
        rbm.check_finite()?;
        Ok(rbm)
    }

    /// Fails naming the first NaN or infinite parameter.
    pub fn check_finite(&self) -> Result<()> {
        let blocks: [(&'static str, &[f32]); 3] = [
            ("weights", self.weights.as_slice()),
            ("visible_bias", self.visible_bias.as_slice()),
            ("hidden_bias", self.hidden_bias.as_slice()),
        ];
        for (what, values) in blocks {
            if let Some(index) = values.iter().position(|x| !x.is_finite()) {
                return Err(RbmError::NonFiniteParameter { what, index });
            }
        }
        Ok(())
    }

    /// The visible unit kind.
    pub fn visible_kind(&self) -> VisibleKind {
        self.visible
    }
    /// Number of visible units.
    pub fn n_visible(&self) -> usize {
        self.weights.nrows()
    }
    /// Number of hidden units.
    pub fn n_hidden(&self) -> usize {
        self.weights.ncols()
    }
    /// `W`, `n_visible x n_hidden`.
    pub fn weights(&self) -> &DMatrix<f32> {
        &self.weights
    }
    /// `b`, one per visible unit.
    pub fn visible_bias(&self) -> &DVector<f32> {
        &self.visible_bias
    }
    /// `c`, one per hidden unit.
    pub fn hidden_bias(&self) -> &DVector<f32> {
        &self.hidden_bias
    }
    pub(crate) fn parameters_mut(&mut self) -> (&mut DMatrix<f32>, &mut DVector<f32>, &mut DVector<f32>) {
        (&mut self.weights, &mut self.visible_bias, &mut self.hidden_bias)
    }

    /// Checks that `data` has one row per visible unit, at least one sample, and only values the
    /// visible units can take; the error names the sample (row of the user's file) and feature.
    pub fn check_data(&self, data: &DMatrix<f32>) -> Result<()> {
        if data.nrows() != self.n_visible() {
            return Err(RbmError::ShapeMismatch {
                what: "data",
                expected: format!("{} features per sample", self.n_visible()),
                found: format!("{} features", data.nrows()),
            });
        }
        check_values(self.visible, data)
    }

    /// `p(h_j = 1 | v) = sigmoid(c_j + (W^T v)_j)` for every sample: the hidden-feature transform,
    /// `n_hidden x n_samples`.
    pub fn hidden_probabilities(&self, data: &DMatrix<f32>) -> DMatrix<f32> {
        assert_eq!(data.nrows(), self.n_visible(), "data rows must equal n_visible");
        let mut out = DMatrix::zeros(self.n_hidden(), data.ncols());
        self.hidden_probabilities_into(data.as_slice(), data.ncols(), out.as_mut_slice());
        out
    }

    /// `E[v | h]` for every column of `hidden` (`n_hidden x n`), giving `n_visible x n`.
    pub fn visible_means(&self, hidden: &DMatrix<f32>) -> DMatrix<f32> {
        assert_eq!(hidden.nrows(), self.n_hidden(), "hidden rows must equal n_hidden");
        let mut out = DMatrix::zeros(self.n_visible(), hidden.ncols());
        self.visible_means_into(hidden.as_slice(), hidden.ncols(), out.as_mut_slice());
        out
    }

    /// `out = c + W^T v` for `cols` samples in `v`: the hidden pre-activations, `n_hidden x cols`.
    pub(crate) fn hidden_activations_into(&self, v: &[f32], cols: usize, out: &mut [f32]) {
        let (nv, nh) = self.weights.shape();
        fill_columns(out, self.hidden_bias.as_slice());
        // (n_hidden x cols) += W^T (n_hidden x n_visible) * v (n_visible x cols)
        gemm(1.0, Operand::new(self.weights.as_slice(), nv, nh).t(), Operand::new(v, nv, cols), 1.0, out);
    }

    /// `out = sigmoid(c + W^T v)`, `n_hidden x cols`.
    pub(crate) fn hidden_probabilities_into(&self, v: &[f32], cols: usize, out: &mut [f32]) {
        self.hidden_activations_into(v, cols, out);
        out.par_iter_mut().for_each(|x| *x = sigmoid(*x));
    }

    /// `out = mean(b + W h)`, `n_visible x cols`.
    pub(crate) fn visible_means_into(&self, h: &[f32], cols: usize, out: &mut [f32]) {
        let (nv, nh) = self.weights.shape();
        fill_columns(out, self.visible_bias.as_slice());
        // (n_visible x cols) += W (n_visible x n_hidden) * h (n_hidden x cols)
        gemm(1.0, Operand::new(self.weights.as_slice(), nv, nh), Operand::new(h, nh, cols), 1.0, out);
        let kind = self.visible;
        out.par_iter_mut().for_each(|x| *x = kind.mean(*x));
    }

    /// Free energy `F(v) = -log sum_h exp(-E(v, h)) = sum_i e_i(v_i) - sum_j softplus(c_j + W_j^T v)`
    /// of every sample, in f64, finite for any finite input.
    pub fn free_energy(&self, data: &DMatrix<f32>) -> Vec<f64> {
        assert_eq!(data.nrows(), self.n_visible(), "data rows must equal n_visible");
        let mut out = vec![0.0; data.ncols()];
        let mut scratch = Vec::new();
        self.free_energy_into(data.as_slice(), &mut scratch, &mut out);
        out
    }

    /// Free energies of the `out.len()` samples in `v`, using `scratch` for the activations.
    pub(crate) fn free_energy_into(&self, v: &[f32], scratch: &mut Vec<f32>, out: &mut [f64]) {
        let (nv, nh) = self.weights.shape();
        // Bound the activation buffer: at most this many samples at once.
        const CHUNK: usize = 2048;
        for (v, out) in v.chunks(CHUNK * nv).zip(out.chunks_mut(CHUNK)) {
            let cols = out.len();
            scratch.resize(nh * cols, 0.0);
            self.hidden_activations_into(v, cols, scratch);
            let kind = self.visible;
            let b = self.visible_bias.as_slice();
            out.par_iter_mut().zip(v.par_chunks(nv).zip(scratch.par_chunks(nh))).for_each(|(f, (v, a))| {
                let visible: f64 = v.iter().zip(b).map(|(&v, &b)| kind.energy_term(v, b)).sum();
                let hidden: f64 = a.iter().map(|&a| softplus(a as f64)).sum();
                *f = visible - hidden;
            });
        }
    }

    /// The energy `E(v, h)` of one joint configuration.
    pub fn energy(&self, v: &[f32], h: &[f32]) -> f64 {
        assert_eq!(v.len(), self.n_visible());
        assert_eq!(h.len(), self.n_hidden());
        let visible: f64 = v.iter().zip(self.visible_bias.iter()).map(|(&v, &b)| self.visible.energy_term(v, b)).sum();
        let hidden: f64 = h.iter().zip(self.hidden_bias.iter()).map(|(&h, &c)| h as f64 * c as f64).sum();
        let mut interaction = 0.0f64;
        for (j, &hj) in h.iter().enumerate() {
            if hj != 0.0 {
                let column = self.weights.column(j);
                interaction += hj as f64 * v.iter().zip(column.iter()).map(|(&v, &w)| v as f64 * w as f64).sum::<f64>();
            }
        }
        visible - hidden - interaction
    }
}

/// Sets every column of the `rows x n` slice `out` to `column`.
pub(crate) fn fill_columns(out: &mut [f32], column: &[f32]) {
    for chunk in out.chunks_mut(column.len()) {
        chunk.copy_from_slice(column);
    }
}

/// Checks every value of `data` against the unit kind; the error names sample and feature.
pub fn check_values(kind: VisibleKind, data: &DMatrix<f32>) -> Result<()> {
    if data.is_empty() {
        return Err(RbmError::EmptyData);
    }
    for (row, sample) in data.column_iter().enumerate() {
        for (column, &value) in sample.iter().enumerate() {
            if let Some(reason) = kind.check_value(value) {
                return Err(RbmError::InvalidValue { row, column, value: value as f64, reason });
            }
        }
    }
    Ok(())
}
