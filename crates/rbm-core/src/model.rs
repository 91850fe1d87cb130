//! The RBM itself: parameters, the two conditionals, energy and free energy.
//!
//! Data convention throughout the crate: a data set is a `DMatrix<f32>` of shape
//! `n_visible x n_samples`, one column per sample. nalgebra is column-major, so each sample is
//! contiguous, a batch of consecutive samples is a contiguous slice, and a row-major CSV buffer of
//! `n_samples` rows and `n_visible` columns *is* this matrix (see [`samples_from_row_major`]).

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

use crate::error::{RbmError, Result};
use crate::linalg::{Operand, gemm, softplus};
use crate::units::{Alternatives, VisibleKind, VisibleLayer};

/// A matrix product `c = alpha op(a) op(b) + beta c`: [`gemm`] or [`gemm_serial`].
type Product = fn(f32, Operand<'_>, Operand<'_>, f32, &mut [f32]);

/// Builds the crate's `n_visible x n_samples` data matrix from row-major values (one sample per
/// row, as read from a CSV file) without reordering anything.
///
/// ```
/// let data = rbm_core::samples_from_row_major(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 2);
/// let data = data?;
/// assert_eq!((data.nrows(), data.ncols()), (2, 3));
/// assert_eq!(data.column(1).as_slice(), &[0.0, 1.0]);
/// # Ok::<(), rbm_core::RbmError>(())
/// ```
pub fn samples_from_row_major(values: Vec<f32>, n_features: usize) -> Result<DMatrix<f32>> {
    if n_features == 0 || !values.len().is_multiple_of(n_features) {
        return Err(RbmError::ShapeMismatch {
            what: "row-major values",
            expected: format!("whole rows of {n_features} features"),
            found: format!("{} values", values.len()),
        });
    }
    let n = values.len() / n_features;
    Ok(DMatrix::from_vec(n_features, n, values))
}

/// A restricted Boltzmann machine with a [`VisibleLayer`] of groups of visible units
/// (Bernoulli, Gaussian, softmax; possibly mixed) and Bernoulli hidden units. Energy
/// `E(v, h) = sum_g e_g(v_g; b_g) - c.h - v^T W h` with each group's term from its kind:
/// `-b.v` (Bernoulli, softmax) or `|v - b|^2 / 2` (Gaussian, unit variance).
#[derive(Clone, Debug, PartialEq)]
pub struct Rbm {
    layer: VisibleLayer,
    /// `W^T`, `n_hidden x n_visible`: column `u` holds visible unit `u`'s weights to every hidden
    /// unit, contiguous, so that sparse inputs (one-hot groups, a case's observed items) sum
    /// columns. (scikit-learn's `components_` and PyTorch's `Linear.weight` have this shape.)
    weights: DMatrix<f32>,
    /// `n_visible`.
    visible_bias: DVector<f32>,
    /// `n_hidden`.
    hidden_bias: DVector<f32>,
}

impl Rbm {
    /// A model with all parameters zero; refuses a hidden layer of no units.
    pub fn zeros(layer: VisibleLayer, n_hidden: usize) -> Result<Self> {
        if n_hidden == 0 {
            return Err(RbmError::InvalidHiddenUnits(0));
        }
        let n_visible = layer.n_visible();
        crate::limits::check_matrix("the weights (hidden x visible units)", n_hidden, n_visible)?;
        Ok(Rbm {
            layer,
            weights: DMatrix::zeros(n_hidden, n_visible),
            visible_bias: DVector::zeros(n_visible),
            hidden_bias: DVector::zeros(n_hidden),
        })
    }

    /// A model from given parameters (`weights` is `n_hidden x n_visible`, see [`Rbm::weights`]),
    /// checking shapes and finiteness.
    pub fn from_parameters(
        layer: VisibleLayer,
        weights: DMatrix<f32>,
        visible_bias: DVector<f32>,
        hidden_bias: DVector<f32>,
    ) -> Result<Self> {
        let (nh, nv) = weights.shape();
        if nv == 0 || nh == 0 {
            return Err(RbmError::ShapeMismatch {
                what: "weights",
                expected: "at least 1 x 1".into(),
                found: format!("{nh} x {nv}"),
            });
        }
        if layer.n_visible() != nv {
            return Err(RbmError::ShapeMismatch {
                what: "weights",
                expected: format!("{} columns, one per visible unit of the layer", layer.n_visible()),
                found: format!("{nv} columns"),
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
        let rbm = Rbm { layer, weights, visible_bias, hidden_bias };
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

    /// The largest absolute value of any weight or bias (NaN if any is NaN).
    pub fn largest_parameter(&self) -> f32 {
        let all = self.weights.iter().chain(self.visible_bias.iter()).chain(self.hidden_bias.iter());
        all.fold(0.0f32, |m, &x| if x.is_nan() || m.is_nan() { f32::NAN } else { m.max(x.abs()) })
    }

    /// The visible layer: its groups and their kinds.
    pub fn layer(&self) -> &VisibleLayer {
        &self.layer
    }
    /// The kind of every visible unit, or `None` for a mixed layer.
    pub fn visible_kind(&self) -> Option<VisibleKind> {
        self.layer.single_kind()
    }
    /// Number of visible units.
    pub fn n_visible(&self) -> usize {
        self.weights.ncols()
    }
    /// Number of hidden units.
    pub fn n_hidden(&self) -> usize {
        self.weights.nrows()
    }
    /// `W^T`, `n_hidden x n_visible`: entry `(j, i)` couples hidden unit `j` and visible unit `i`,
    /// and column `i` is visible unit `i`'s weights.
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
    /// Root mean square of the weights: a quick scale check (Hinton's guide: updates about 1e-3
    /// of it).
    pub fn weights_rms(&self) -> f64 {
        let w = self.weights.as_slice();
        (w.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / w.len().max(1) as f64).sqrt()
    }
    pub(crate) fn parameters_mut(&mut self) -> (&mut DMatrix<f32>, &mut DVector<f32>, &mut DVector<f32>) {
        (&mut self.weights, &mut self.visible_bias, &mut self.hidden_bias)
    }

    /// Checks that `data` has one row per visible unit, at least one sample, and only values the
    /// visible units can take; the error names the sample (row of the user's file) and feature.
    pub fn check_data(&self, data: &DMatrix<f32>) -> Result<()> {
        self.check_visible_rows("data", data.nrows())?;
        check_values(&self.layer, data)
    }

    /// Fails unless `rows` equals the number of visible units.
    pub(crate) fn check_visible_rows(&self, what: &'static str, rows: usize) -> Result<()> {
        check_rows(what, rows, self.n_visible(), "visible units")
    }

    /// `p(h_j = 1 | v) = sigmoid(c_j + (W^T v)_j)` for every sample: the hidden-feature transform,
    /// `n_hidden x n_samples`.
    pub fn hidden_probabilities(&self, data: &DMatrix<f32>) -> Result<DMatrix<f32>> {
        self.check_visible_rows("data", data.nrows())?;
        let mut out = DMatrix::zeros(self.n_hidden(), data.ncols());
        self.hidden_probabilities_into(data.as_slice(), data.ncols(), out.as_mut_slice());
        Ok(out)
    }

    /// `E[v | h]` for every column of `hidden` (`n_hidden x n`), giving `n_visible x n`.
    pub fn visible_means(&self, hidden: &DMatrix<f32>) -> Result<DMatrix<f32>> {
        check_rows("hidden states", hidden.nrows(), self.n_hidden(), "hidden units")?;
        let mut out = DMatrix::zeros(self.n_visible(), hidden.ncols());
        self.visible_means_into(hidden.as_slice(), hidden.ncols(), out.as_mut_slice());
        Ok(out)
    }

    /// `out = c + W^T v` for `cols` samples in `v`: the hidden pre-activations, `n_hidden x cols`.
    pub(crate) fn hidden_activations_into(&self, v: &[f32], cols: usize, out: &mut [f32]) {
        self.hidden_activations_by(gemm, v, cols, out);
    }

    /// [`Rbm::hidden_activations_into`] with `product` (split across threads, or serial).
    fn hidden_activations_by(&self, product: Product, v: &[f32], cols: usize, out: &mut [f32]) {
        fill_columns(out, self.hidden_bias.as_slice());
        let (w, v) = self.hidden_product(v, cols);
        product(1.0, w, v, 1.0, out);
    }

    /// The operands of the hidden activations' product, `W^T (n_hidden x n_visible, as the
    /// weights are stored) * v (n_visible x cols)`.
    fn hidden_product<'a>(&'a self, v: &'a [f32], cols: usize) -> (Operand<'a>, Operand<'a>) {
        let (nh, nv) = self.weights.shape();
        (Operand::new(self.weights.as_slice(), nh, nv), Operand::new(v, nv, cols))
    }

    /// `b + W h` for `cols` hidden vectors in `h`, `n_visible x cols`, with `product`.
    fn visible_activations_by(&self, product: Product, h: &[f32], cols: usize, out: &mut [f32]) {
        fill_columns(out, self.visible_bias.as_slice());
        let (w, h) = self.visible_product(h, cols);
        product(1.0, w, h, 1.0, out);
    }

    /// The operands of the visible activations' product, `W (n_visible x n_hidden) * h (n_hidden
    /// x cols)`.
    fn visible_product<'a>(&'a self, h: &'a [f32], cols: usize) -> (Operand<'a>, Operand<'a>) {
        let (nh, nv) = self.weights.shape();
        (Operand::new(self.weights.as_slice(), nh, nv).t(), Operand::new(h, nh, cols))
    }

    /// The free energies of the samples in `v` (column-major, `n_visible` values each) from their
    /// hidden activations `a = c + W^T v` (`n_hidden` each), one per sample into `out`: each
    /// sample's visible energy minus the softplus sum of its activations.
    pub(crate) fn free_energies_from_activations(&self, v: &[f32], a: &[f32], out: &mut [f64]) {
        self.layer.energies_into(v, self.visible_bias.as_slice(), out);
        if self.n_hidden() > 0 {
            for (f, a) in out.iter_mut().zip(a.chunks_exact(self.n_hidden())) {
                *f -= crate::linalg::softplus_sum(a);
            }
        }
    }

    /// `out = sigmoid(c + W^T v)`, `n_hidden x cols`: the activations of
    /// [`Rbm::hidden_activations_into`], with the sigmoid applied by the product's blocks.
    pub(crate) fn hidden_probabilities_into(&self, v: &[f32], cols: usize, out: &mut [f32]) {
        let (w, v) = self.hidden_product(v, cols);
        let sigmoid: &crate::linalg::Elementwise<'_> = &crate::linalg::sigmoid_in_place;
        crate::linalg::gemm_biased_then(w, v, self.hidden_bias.as_slice(), out, sigmoid);
    }

    /// `out = mean(b + W h)`, `n_visible x cols`: a layer of one elementwise kind has its means
    /// taken by the product's blocks, others after the product.
    pub(crate) fn visible_means_into(&self, h: &[f32], cols: usize, out: &mut [f32]) {
        match self.layer.single_kind() {
            Some(kind) if kind.is_elementwise() => {
                let (w, h) = self.visible_product(h, cols);
                let means: &crate::linalg::Elementwise<'_> = &|values: &mut [f32]| kind.means(values);
                crate::linalg::gemm_biased_then(w, h, self.visible_bias.as_slice(), out, means);
            }
            _ => {
                self.visible_activations_by(gemm, h, cols, out);
                self.layer.means_columns(out);
            }
        }
    }

    /// Free energy `F(v) = -log sum_h exp(-E(v, h)) = sum_i e_i(v_i) - sum_j softplus(c_j + W_j^T v)`
    /// of every sample, in f64, finite for any finite input.
    pub fn free_energy(&self, data: &DMatrix<f32>) -> Result<Vec<f64>> {
        self.check_visible_rows("data", data.nrows())?;
        let mut out = vec![0.0; data.ncols()];
        let mut scratch = Vec::new();
        self.free_energy_into(data.as_slice(), &mut scratch, &mut out);
        Ok(out)
    }

    /// Samples per task in [`Rbm::free_energy_into`] and the monitoring passes.
    pub(crate) const FREE_ENERGY_BLOCK: usize = 64;

    /// Free energies of the `out.len()` samples in `v`, using `scratch` for the activations.
    pub(crate) fn free_energy_into(&self, v: &[f32], scratch: &mut Vec<f32>, out: &mut [f64]) {
        let (nh, nv) = self.weights.shape();
        // Bound the activation buffer: at most this many samples at once.
        const CHUNK: usize = 2048;
        for (v, out) in v.chunks(CHUNK * nv).zip(out.chunks_mut(CHUNK)) {
            let cols = out.len();
            scratch.resize(nh * cols, 0.0);
            self.hidden_activations_into(v, cols, scratch);
            // Blocks of samples on every core; each sample's free energy is the same either way.
            out.par_chunks_mut(Self::FREE_ENERGY_BLOCK)
                .zip(v.par_chunks(Self::FREE_ENERGY_BLOCK * nv).zip(scratch.par_chunks(Self::FREE_ENERGY_BLOCK * nh)))
                .for_each(|(f, (v, a))| self.free_energies_from_activations(v, a, f));
        }
    }

    /// Each column's surprise given the others, `-log p(v_g | v_rest)` in nats, for every sample
    /// of `data` (`n_visible x n_samples`): a `n_columns x n_samples` matrix, one row per data
    /// column of [`VisibleLayer::columns`]. Exact for Bernoulli and softmax columns (a sum over
    /// their values); for Gaussian columns the normalising integral is a trapezoidal sum that is
    /// exact to double precision (see [`crate::units::gaussian::alternatives`]).
    ///
    /// With `G(x) = e_g(x) - sum_j softplus(a_j + W_jg x)`, where `a` are the hidden activations
    /// without the column's own term, `-log p(v_g | rest) = G(v_g) + log sum_x w_x exp(-G(x))`.
    ///
    /// With `marginals` (the histogram experts of [`crate::marginal`]), the surprise is under
    /// the product `exp(-F) prod_j p_j(v_j)`: each Gaussian column's `G` gains `-log p_j(x)`, and
    /// its integral is Simpson's rule on pieces cut at the bin edges
    /// ([`crate::marginal::Histogram::quadrature`]; agreement with a fine integration to 1e-5).
    pub fn conditional_surprise(
        &self,
        data: &DMatrix<f32>,
        marginals: Option<&crate::marginal::Marginals>,
    ) -> Result<DMatrix<f64>> {
        self.check_visible_rows("data", data.nrows())?;
        let columns: Vec<(VisibleKind, std::ops::Range<usize>)> = self.layer.columns().collect();
        let (nh, nv) = self.weights.shape();
        let (w, b) = (self.weights.as_slice(), self.visible_bias.as_slice());
        // Each column's histogram (Gaussian columns, with marginals) and alternatives depend only
        // on the parameters: found and built once.
        let histograms: Vec<Option<&crate::marginal::Histogram>> =
            columns.iter().map(|(_, r)| marginals.and_then(|m| m.of_unit(r.start)).filter(|_| r.len() == 1)).collect();
        let alternatives: Vec<Alternatives> = columns
            .iter()
            .zip(&histograms)
            .map(|((kind, r), histogram)| {
                let mut reach = [0.0f32; 2];
                for u in r.clone() {
                    for &x in &w[u * nh..(u + 1) * nh] {
                        reach[usize::from(x > 0.0)] += x;
                    }
                }
                let mut alternatives = Alternatives::default();
                match histogram {
                    // A Gaussian column times its histogram: the grid is cut at the bin edges.
                    Some(histogram) => {
                        use crate::units::gaussian::{QUADRATURE_REACH, QUADRATURE_STEP};
                        alternatives.clear(1);
                        let low = b[r.start] + reach[0] - QUADRATURE_REACH;
                        let high = b[r.start] + reach[1] + QUADRATURE_REACH;
                        histogram.quadrature(low, high, QUADRATURE_STEP, &mut alternatives);
                    }
                    None => kind.alternatives(&b[r.clone()], reach, &mut alternatives),
                }
                alternatives
            })
            .collect();
        let mut activations = vec![0.0f32; nh * data.ncols()];
        self.hidden_activations_into(data.as_slice(), data.ncols(), &mut activations);
        let mut out = DMatrix::zeros(columns.len(), data.ncols());
        out.as_mut_slice()
            .par_chunks_mut(columns.len())
            .zip(data.as_slice().par_chunks(nv))
            .zip(activations.par_chunks(nh))
            // Scratch buffers once per worker, not per sample.
            .for_each_init(
                || (vec![0.0f64; nh], Vec::new()),
                |(rest, terms), ((out, v), a)| {
                    for (((out, (kind, r)), alternatives), histogram) in
                        out.iter_mut().zip(&columns).zip(&alternatives).zip(&histograms)
                    {
                        // The activations without this column's contribution.
                        for (j, rest) in rest.iter_mut().enumerate() {
                            *rest = a[j] as f64 - r.clone().map(|u| (w[u * nh + j] * v[u]) as f64).sum::<f64>();
                        }
                        let g = |x: &[f32]| -> f64 {
                            let hidden: f64 = (0..nh)
                                .map(|j| {
                                    let own: f64 = r.clone().zip(x).map(|(u, &x)| (w[u * nh + j] * x) as f64).sum();
                                    softplus(rest[j] + own)
                                })
                                .sum();
                            kind.energy(x, &b[r.clone()]) - hidden
                        };
                        // A histogram's density is in its alternatives' weights; the observed value
                        // gets its own.
                        let observed = g(&v[r.clone()]) + histogram.map_or(0.0, |h| h.energy(v[r.start]));
                        terms.clear();
                        terms.extend(alternatives.iter().map(|(x, log_weight)| log_weight - g(x)));
                        *out = observed + crate::linalg::log_sum_exp(terms);
                    }
                },
            );
        Ok(out)
    }

    /// The energy `E(v, h)` of one joint configuration.
    pub fn energy(&self, v: &[f32], h: &[f32]) -> Result<f64> {
        self.check_visible_rows("visible state", v.len())?;
        check_rows("hidden state", h.len(), self.n_hidden(), "hidden units")?;
        let visible = self.layer.energy(v, self.visible_bias.as_slice());
        let hidden: f64 = h.iter().zip(self.hidden_bias.iter()).map(|(&h, &c)| h as f64 * c as f64).sum();
        let mut interaction = 0.0f64;
        for (i, &vi) in v.iter().enumerate() {
            if vi != 0.0 {
                let column = self.weights.column(i);
                interaction += vi as f64 * h.iter().zip(column.iter()).map(|(&h, &w)| h as f64 * w as f64).sum::<f64>();
            }
        }
        Ok(visible - hidden - interaction)
    }
}

/// A shape error unless `found == expected`.
fn check_rows(what: &'static str, found: usize, expected: usize, unit: &str) -> Result<()> {
    if found == expected {
        return Ok(());
    }
    Err(RbmError::ShapeMismatch {
        what,
        expected: format!("{expected} rows, one per {}", unit.trim_end_matches('s')),
        found: format!("{found} rows"),
    })
}

/// The mean of each row of `data` (each unit's mean over the samples), summed in f64.
pub(crate) fn row_means(data: &DMatrix<f32>) -> Vec<f64> {
    row_means_of(data, |_, x| x)
}

/// [`row_means`] of `value(unit, x)` for each value `x` of the data: the means of a transformed
/// copy, with the copy's bits, without the copy.
pub(crate) fn row_means_of(data: &DMatrix<f32>, value: impl Fn(usize, f32) -> f32 + Sync) -> Vec<f64> {
    let units = data.nrows();
    let mut sums = vec![0f64; units];
    // Blocks of units on every core, each unit summed over the samples in order. Column slices
    // rather than nalgebra's column iterators, and no per-value branch: the loop vectorises.
    const BLOCK: usize = 256;
    sums.par_chunks_mut(BLOCK).enumerate().for_each(|(block, sums)| {
        let (first, width) = (block * BLOCK, sums.len());
        for column in data.as_slice().chunks_exact(units) {
            let values = &column[first..first + width];
            sums.iter_mut().zip(values).enumerate().for_each(|(k, (s, &x))| *s += value(first + k, x) as f64);
        }
    });
    sums.iter().map(|s| s / data.ncols().max(1) as f64).collect()
}

/// Each group's initial visible biases from the units' means over the columns of `data` (checked).
pub(crate) fn initial_biases(layer: &VisibleLayer, data: &DMatrix<f32>) -> Vec<f32> {
    initial_biases_from(layer, &row_means(data), data.ncols())
}

/// [`initial_biases`] from the [`row_means`] of `samples` samples, already computed.
pub(crate) fn initial_biases_from(layer: &VisibleLayer, means: &[f64], samples: usize) -> Vec<f32> {
    let mut bias = vec![0f32; means.len()];
    layer.initial_bias(means, samples, &mut bias);
    bias
}

/// Sets every column of the `rows x n` slice `out` to `column`.
pub(crate) fn fill_columns(out: &mut [f32], column: &[f32]) {
    for chunk in out.chunks_mut(column.len()) {
        chunk.copy_from_slice(column);
    }
}

/// Checks every visible vector of `data` (`n_visible x n`) against the layer's unit kinds; the
/// error names the sample and the visible unit.
pub fn check_values(layer: &VisibleLayer, data: &DMatrix<f32>) -> Result<()> {
    if data.is_empty() {
        return Err(RbmError::EmptyData);
    }
    check_rows("data", data.nrows(), layer.n_visible(), "visible units")?;
    for (row, sample) in data.column_iter().enumerate() {
        if let Some((column, reason)) = layer.check(sample.as_slice()) {
            return Err(RbmError::InvalidValue { row, column, value: sample[column] as f64, reason });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `row_means` (blocks of units on every core) against a serial pass over the samples with
    /// sums started at +0.0, bit for bit, with units of all -0.0, of mixed zeros, and more units
    /// than one block holds.
    #[test]
    fn row_means_have_the_bits_of_a_serial_pass() {
        let (units, samples) = (300, 7);
        let data = DMatrix::from_fn(units, samples, |i, s| match i {
            0 => -0.0,
            1 => [0.0, -0.0][s % 2],
            _ => ((i * 31 + s * 17) % 97) as f32 * 0.013 - 0.5,
        });
        let mut sums = vec![0f64; units];
        for column in data.as_slice().chunks_exact(units) {
            sums.iter_mut().zip(column).for_each(|(s, &x)| *s += x as f64);
        }
        let want: Vec<u64> = sums.iter().map(|s| (s / samples as f64).to_bits()).collect();
        let got: Vec<u64> = row_means(&data).iter().map(|m| m.to_bits()).collect();
        assert_eq!(got, want);
        // The means of a rescaled copy, taken without the copy, have the copy's bits.
        let scale: Vec<f32> = (0..units).map(|i| 0.3 + (i % 7) as f32 * 0.41).collect();
        let copy = DMatrix::from_fn(units, samples, |u, s| data[(u, s)] / scale[u]);
        let bits = |means: Vec<f64>| means.iter().map(|m| m.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(row_means_of(&data, |u, x| x / scale[u])), bits(row_means(&copy)));
    }
}
