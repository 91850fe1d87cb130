//! Evaluation: reconstruction error, pseudo-log-likelihood, and exact log partition function and
//! log-likelihood by enumerating the hidden states of small models.

use nalgebra::DMatrix;
use rand::Rng;
use rayon::prelude::*;

use crate::error::{RbmError, Result};
use crate::linalg::{Operand, gemm, log_add_exp, log_sum_exp, softplus};
use crate::model::{Rbm, fill_columns};

/// Samples per chunk in evaluations that hold per-sample buffers.
const CHUNK: usize = 2048;

/// The largest hidden layer [`log_partition_exact`] enumerates (2^25 states).
pub const MAX_EXACT_HIDDEN: usize = 25;

/// Mean free energy of the samples of `data` (`n_visible x n`).
pub fn mean_free_energy(rbm: &Rbm, data: &DMatrix<f32>) -> Result<f64> {
    rbm.check_visible_rows("data", data.nrows())?;
    Ok(mean_free_energy_of(rbm, data))
}

/// [`mean_free_energy`] of data of the right shape.
pub(crate) fn mean_free_energy_of(rbm: &Rbm, data: &DMatrix<f32>) -> f64 {
    let mut f = vec![0.0; data.ncols()];
    rbm.free_energy_into(data.as_slice(), &mut Vec::new(), &mut f);
    f.iter().sum::<f64>() / f.len().max(1) as f64
}

/// Mean squared error per visible unit of the deterministic (mean-field) reconstruction
/// `E[v | h = p(h | v)]` of each sample (`data` is `n_visible x n`).
pub fn reconstruction_error(rbm: &Rbm, data: &DMatrix<f32>) -> Result<f64> {
    Ok(reconstruction_squared_error(rbm, data)? / data.len().max(1) as f64)
}

/// The sum over samples and visible units of the squared error that [`reconstruction_error`]
/// averages: a table read in pieces adds the pieces' sums in order and divides once.
pub fn reconstruction_squared_error(rbm: &Rbm, data: &DMatrix<f32>) -> Result<f64> {
    rbm.check_visible_rows("data", data.nrows())?;
    Ok(reconstruction_squared_error_of(rbm, data))
}

fn reconstruction_squared_error_of(rbm: &Rbm, data: &DMatrix<f32>) -> f64 {
    let (nv, nh) = (rbm.n_visible(), rbm.n_hidden());
    let mut hidden = Vec::new();
    let mut recon = Vec::new();
    let mut total = 0.0f64;
    for v in data.as_slice().chunks(CHUNK * nv) {
        let cols = v.len() / nv;
        hidden.resize(nh * cols, 0.0);
        recon.resize(nv * cols, 0.0);
        rbm.hidden_probabilities_into(v, cols, &mut hidden);
        rbm.visible_means_into(&hidden, cols, &mut recon);
        total += squared_error_sum(v, &recon, nv);
    }
    total
}

/// The squared differences between the samples in `v` and their reconstructions in `recon`
/// (`n_visible` values each), summed per sample on every core and then over the samples in
/// order: rayon's parallel `sum` groups floats by its work-stealing splits, so its last bits
/// would vary from run to run.
fn squared_error_sum(v: &[f32], recon: &[f32], nv: usize) -> f64 {
    let mut per_sample = vec![0f64; v.len() / nv.max(1)];
    let block = Rbm::FREE_ENERGY_BLOCK;
    per_sample
        .par_chunks_mut(block)
        .zip(v.par_chunks(block * nv).zip(recon.par_chunks(block * nv)))
        .for_each(|(out, (v, r))| squared_errors_into(v, r, nv, out));
    per_sample.iter().sum::<f64>()
}

/// The squared differences between each sample in `v` and its reconstruction in `recon`
/// (`n_visible` values each), summed per sample in unit order into `out`: eight samples' sums
/// at a time (see [`crate::linalg::interleaved_sums`]), each with the bits it has alone.
pub(crate) fn squared_errors_into(v: &[f32], recon: &[f32], nv: usize, out: &mut [f64]) {
    const G: usize = crate::linalg::INTERLEAVED_SUMS;
    let term = |a: f32, b: f32| ((a - b) as f64).powi(2);
    let (whole, rest) = out.split_at_mut(out.len() / G * G);
    let blocks = v.chunks_exact(G * nv).zip(recon.chunks_exact(G * nv));
    for (out, (v, r)) in whole.chunks_exact_mut(G).zip(blocks) {
        let (v, r) = (crate::linalg::columns::<G>(v, nv), crate::linalg::columns::<G>(r, nv));
        out.copy_from_slice(&crate::linalg::interleaved_sums(v, r, term));
    }
    let samples = v.chunks_exact(nv).zip(recon.chunks_exact(nv)).skip(whole.len());
    for (out, (v, r)) in rest.iter_mut().zip(samples) {
        *out = crate::linalg::interleaved_sums([v], [r], term)[0];
    }
}

/// [`reconstruction_error`] and [`mean_free_energy_of`] of `data` (of the right shape) together,
/// with the same bits: each chunk's hidden activations serve both (the free energies take them,
/// then the reconstruction their sigmoid), one product fewer per chunk.
pub(crate) fn reconstruction_error_and_mean_free_energy_of(rbm: &Rbm, data: &DMatrix<f32>) -> (f64, f64) {
    let (nv, nh) = (rbm.n_visible(), rbm.n_hidden());
    let mut hidden = Vec::new();
    let mut recon = Vec::new();
    let mut free_energies = vec![0.0f64; data.ncols()];
    let mut total = 0.0f64;
    // The chunks of `Rbm::free_energy_into` and of the reconstruction (the same size).
    for (v, f) in data.as_slice().chunks(CHUNK * nv).zip(free_energies.chunks_mut(CHUNK)) {
        let cols = v.len() / nv;
        hidden.resize(nh * cols, 0.0);
        recon.resize(nv * cols, 0.0);
        rbm.hidden_activations_into(v, cols, &mut hidden);
        let block = Rbm::FREE_ENERGY_BLOCK;
        f.par_chunks_mut(block)
            .zip(v.par_chunks(block * nv).zip(hidden.par_chunks(block * nh)))
            .for_each(|(f, (v, a))| rbm.free_energies_from_activations(v, a, f));
        hidden.par_chunks_mut(4096).for_each(crate::linalg::sigmoid_in_place);
        rbm.visible_means_into(&hidden, cols, &mut recon);
        total += squared_error_sum(v, &recon, nv);
    }
    let mean_free_energy = free_energies.iter().sum::<f64>() / free_energies.len().max(1) as f64;
    (total / data.len().max(1) as f64, mean_free_energy)
}

/// Which variables the pseudo-log-likelihood conditions on. A *variable* is one Bernoulli unit
/// or one softmax group (a categorical column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PseudoLikelihood {
    /// Every variable of every sample (exact; costs one pass over the hidden units per variable).
    AllFeatures,
    /// One variable per sample drawn with this seed (scikit-learn's estimator, but normalised per
    /// variable); cheap and unbiased for the same per-variable mean. Row `r`'s variable depends
    /// on the seed and `r` alone.
    OneFeature {
        /// Seed of the variable choice.
        seed: u64,
    },
}

impl PseudoLikelihood {
    /// Above this many softplus evaluations (`samples x visible units x hidden units`, seconds
    /// of work) [`PseudoLikelihood::for_size`] switches to one variable per sample.
    pub const EXACT_WORK_LIMIT: usize = 1_000_000_000;

    /// Every variable while the work stays under [`Self::EXACT_WORK_LIMIT`]; beyond, one
    /// variable per sample with seed 0, an unbiased estimate of the same per-variable mean.
    pub fn for_size(samples: usize, n_visible: usize, n_hidden: usize) -> Self {
        if samples.saturating_mul(n_visible).saturating_mul(n_hidden) <= Self::EXACT_WORK_LIMIT {
            PseudoLikelihood::AllFeatures
        } else {
            PseudoLikelihood::OneFeature { seed: 0 }
        }
    }

    /// How the estimate was made, in words.
    pub fn describe(self) -> String {
        match self {
            PseudoLikelihood::AllFeatures => "all features".into(),
            PseudoLikelihood::OneFeature { seed } => format!("one random feature per row, seed {seed}"),
        }
    }
}

/// The variables of a layer for the pseudo-likelihood: each Bernoulli unit alone, each softmax
/// group as one; `None` when a Gaussian group makes the conditional a density.
fn discrete_variables(rbm: &Rbm) -> Option<Vec<(crate::units::VisibleKind, std::ops::Range<usize>)>> {
    use crate::units::VisibleKind as K;
    let mut variables = Vec::new();
    for (kind, range) in rbm.layer().ranges() {
        match kind {
            K::Bernoulli => variables.extend(range.map(|i| (K::Bernoulli, i..i + 1))),
            K::Softmax => variables.push((K::Softmax, range)),
            K::Gaussian => return None,
        }
    }
    Some(variables)
}

/// Mean over samples and variables of `log p(x_i | x_-i)`, i.e. the pseudo-log-likelihood
/// normalised per variable (scikit-learn's `score_samples` multiplies by the number of features).
/// A variable is one Bernoulli unit or one softmax group (a categorical column).
///
/// For a Bernoulli unit `p(v_i = 1 | v_-i) = sigmoid(F(v_i=0) - F(v_i=1))`, and a fractional value
/// `v_i` in [0, 1] is scored by cross-entropy, `v_i log p + (1 - v_i) log (1 - p)`. For a softmax
/// group, `log p(level k | rest) = -F(v with k) - log sum_l exp(-F(v with l))`.
/// Layers with Gaussian units are refused: their conditional is a density that needs a 1-D integral.
pub fn pseudo_log_likelihood(rbm: &Rbm, data: &DMatrix<f32>, features: PseudoLikelihood) -> Result<f64> {
    let n = data.ncols() as f64;
    Ok(match features {
        PseudoLikelihood::AllFeatures => {
            pseudo_log_likelihood_sums(rbm, data, 0, true, 0)?.all_features.expect("asked for") / n
        }
        PseudoLikelihood::OneFeature { seed } => pseudo_log_likelihood_sums(rbm, data, 0, false, seed)?.one_feature / n,
    })
}

/// The sums over a piece of a table of the per-sample terms that [`pseudo_log_likelihood`]
/// averages, from one product with the weights: a table read in pieces adds the pieces' sums in
/// order, divides once, and decides between the two at the end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PseudoLikelihoodSums {
    /// The sum of each sample's mean over every variable ([`PseudoLikelihood::AllFeatures`]);
    /// `None` when it was not asked for.
    pub all_features: Option<f64>,
    /// The sum of each sample's term for one variable chosen by the seed and the sample's row
    /// ([`PseudoLikelihood::OneFeature`]).
    pub one_feature: f64,
}

/// The variable that [`PseudoLikelihood::OneFeature`] scores in row `row` of a table: drawn from
/// the seed and the row alone, so a table read in pieces of any size makes the same choices.
fn chosen_variable(seed: u64, row: usize, n_variables: usize) -> usize {
    (crate::rng::generator(seed, row as u64, 0).next_u64() % n_variables as u64) as usize
}

/// [`PseudoLikelihoodSums`] of the samples of `data`, which are rows `first_row..` of a table:
/// every variable's terms when `all_features` is set, and always one variable per sample chosen
/// with `seed`. Layers with Gaussian units are refused, as in [`pseudo_log_likelihood`].
pub fn pseudo_log_likelihood_sums(
    rbm: &Rbm,
    data: &DMatrix<f32>,
    first_row: usize,
    all_features: bool,
    seed: u64,
) -> Result<PseudoLikelihoodSums> {
    let Some(variables) = discrete_variables(rbm) else {
        return Err(RbmError::Unsupported { operation: "pseudo-log-likelihood", kind: "gaussian" });
    };
    rbm.check_data(data)?;
    let (nv, nh) = (rbm.n_visible(), rbm.n_hidden());
    let n_variables = variables.len();
    let w = rbm.weights().as_slice();
    let b = rbm.visible_bias().as_slice();
    let mut activations = Vec::new();
    let (mut all_total, mut one_total) = (0.0f64, 0.0f64);
    for (chunk_index, v) in data.as_slice().chunks(CHUNK * nv).enumerate() {
        let cols = v.len() / nv;
        activations.resize(nh * cols, 0.0);
        rbm.hidden_activations_into(v, cols, &mut activations);
        let per_sample: Vec<(f64, f64)> = v
            .par_chunks(nv)
            .zip(activations.par_chunks(nh))
            .enumerate()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(levels, without), (s, (v, a))| {
                    let mut score = |(kind, range): &(crate::units::VisibleKind, std::ops::Range<usize>)| {
                        if *kind == crate::units::VisibleKind::Bernoulli {
                            // Remove v_i's input to the hidden units, then
                            // logit = b_i + sum_j softplus(a_j^-i + W_ij) - softplus(a_j^-i).
                            let i = range.start;
                            let logit =
                                b[i] as f64 + crate::linalg::softplus_switch_sum(a, &w[i * nh..(i + 1) * nh], v[i]);
                            let x = v[i] as f64;
                            return -(x * softplus(-logit) + (1.0 - x) * softplus(logit));
                        }
                        // A softmax group: the hidden input without the group, then -F of each level
                        // up to the terms shared by all levels, normalised over the levels.
                        without.clear();
                        without.extend((0..nh).map(|j| {
                            a[j] as f64 - range.clone().map(|l| v[l] as f64 * w[j + l * nh] as f64).sum::<f64>()
                        }));
                        levels.clear();
                        levels.extend(range.clone().map(|k| {
                            b[k] as f64
                                + without
                                    .iter()
                                    .enumerate()
                                    .map(|(j, &x)| softplus(x + w[j + k * nh] as f64))
                                    .sum::<f64>()
                        }));
                        let log_norm = log_sum_exp(levels);
                        range.clone().zip(levels.iter()).map(|(k, l)| v[k] as f64 * (l - log_norm)).sum::<f64>()
                    };
                    let all = match all_features {
                        true => variables.iter().map(&mut score).sum::<f64>() / n_variables as f64,
                        false => 0.0,
                    };
                    let row = first_row + chunk_index * CHUNK + s;
                    (all, score(&variables[chosen_variable(seed, row, n_variables)]))
                },
            )
            .collect();
        // Summed in order (see `reconstruction_error`) so the result is the same on every run.
        for (all, one) in per_sample {
            all_total += all;
            one_total += one;
        }
    }
    Ok(PseudoLikelihoodSums { all_features: all_features.then_some(all_total), one_feature: one_total })
}

/// Exact `log Z` by enumerating all `2^n_hidden` hidden states and summing (or integrating) the
/// visible units out analytically:
/// `log Z = logsumexp_h [ c.h + sum_g log_partition_g(b_g + (W h)_g, b_g) ]` over the visible groups.
/// Refuses models with more than [`MAX_EXACT_HIDDEN`] hidden units.
pub fn log_partition_exact(rbm: &Rbm) -> Result<f64> {
    let (nv, nh) = (rbm.n_visible(), rbm.n_hidden());
    if nh > MAX_EXACT_HIDDEN {
        return Err(RbmError::TooLargeForExact { n_hidden: nh, max: MAX_EXACT_HIDDEN });
    }
    let states: u64 = 1 << nh;
    // Hidden states are enumerated in blocks of consecutive integers; each block's log-sum is
    // computed independently and the blocks are combined in order, so the result does not depend
    // on the thread count.
    let block: u64 = states.min(1024);
    let layer = rbm.layer();
    let b = rbm.visible_bias().as_slice();
    let c = rbm.hidden_bias().as_slice();
    let w = rbm.weights().as_slice();
    let block_sums: Vec<f64> = (0..states / block)
        .into_par_iter()
        .map(|block_index| {
            let cols = block as usize;
            let mut hidden = vec![0f32; nh * cols];
            for (s, h) in hidden.chunks_mut(nh).enumerate() {
                let state = block_index * block + s as u64;
                for (j, x) in h.iter_mut().enumerate() {
                    *x = ((state >> j) & 1) as f32;
                }
            }
            let mut activation = vec![0f32; nv * cols];
            fill_columns(&mut activation, b);
            // (n_visible x block) = b + W (n_visible x n_hidden) * H (n_hidden x block)
            gemm(1.0, Operand::new(w, nh, nv).t(), Operand::new(&hidden, nh, cols), 1.0, &mut activation);
            hidden.chunks(nh).zip(activation.chunks(nv)).fold(f64::NEG_INFINITY, |acc, (h, a)| {
                let hidden_term: f64 = h.iter().zip(c).map(|(&h, &c)| h as f64 * c as f64).sum();
                let visible_term = layer.log_partition(a, b);
                log_add_exp(acc, hidden_term + visible_term)
            })
        })
        .collect();
    Ok(block_sums.into_iter().fold(f64::NEG_INFINITY, log_add_exp))
}

/// Mean exact log-likelihood `-F(v) - log Z` of the samples of `data`, with `log Z` from
/// [`log_partition_exact`] (given, to avoid recomputing it). For Gaussian units this is a log
/// density in the model's (standardised) units.
pub fn mean_log_likelihood(rbm: &Rbm, data: &DMatrix<f32>, log_partition: f64) -> Result<f64> {
    Ok(-mean_free_energy(rbm, data)? - log_partition)
}

/// Probability of each hidden unit being on, `n_hidden x n_samples`: the feature transform.
pub fn transform(rbm: &Rbm, data: &DMatrix<f32>) -> Result<DMatrix<f32>> {
    rbm.hidden_probabilities(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Squared errors eight samples at a time have the bits of each sample's own ordered sum,
    /// with a remainder of samples and values of many magnitudes (so another order would round
    /// differently).
    #[test]
    fn squared_errors_have_the_bits_of_each_samples_ordered_sum() {
        let nv = 29;
        let value = |i: usize| ((i * 7919 % 1009) as f32 - 500.0) * 10f32.powi((i % 5) as i32 - 2);
        for samples in [0, 3, 8, 19] {
            let v: Vec<f32> = (0..nv * samples).map(value).collect();
            let recon: Vec<f32> = (0..nv * samples).map(|i| value(i + 13) * 0.5).collect();
            let mut got = vec![f64::NAN; samples];
            squared_errors_into(&v, &recon, nv, &mut got);
            for (s, got) in got.iter().enumerate() {
                let (v, r) = (&v[s * nv..(s + 1) * nv], &recon[s * nv..(s + 1) * nv]);
                let want: f64 = v.iter().zip(r).map(|(&a, &b)| ((a - b) as f64).powi(2)).sum();
                assert_eq!(got.to_bits(), want.to_bits(), "sample {s} of {samples}");
            }
        }
    }

    /// The monitoring's shared pass gives the bits of the two statistics taken apart, over
    /// several chunks (the last one short), for Bernoulli and Gaussian units.
    #[test]
    fn shared_monitoring_pass_has_the_bits_of_the_two_statistics() {
        use crate::units::VisibleKind;
        let samples = 2 * CHUNK + 77;
        for (kind, nv, nh) in [(VisibleKind::Bernoulli, 30, 70), (VisibleKind::Gaussian, 12, 5)] {
            let layer = crate::units::VisibleLayer::uniform(kind, nv).unwrap();
            let mut rbm = Rbm::zeros(layer, nh).unwrap();
            {
                let (w, b, c) = rbm.parameters_mut();
                w.iter_mut().enumerate().for_each(|(i, x)| *x = ((i * 37 % 101) as f32 - 50.0) * 0.01);
                b.iter_mut().enumerate().for_each(|(i, x)| *x = (i % 7) as f32 * 0.1 - 0.3);
                c.iter_mut().enumerate().for_each(|(i, x)| *x = (i % 5) as f32 * 0.2 - 0.4);
            }
            let data = DMatrix::from_fn(nv, samples, |i, s| match kind {
                VisibleKind::Bernoulli => u8::from((i * 7 + s * 13) % 11 < 4) as f32,
                _ => ((i * 7 + s * 13) % 23) as f32 * 0.1 - 1.1,
            });
            let (error, free_energy) = reconstruction_error_and_mean_free_energy_of(&rbm, &data);
            assert_eq!(error.to_bits(), reconstruction_error(&rbm, &data).unwrap().to_bits(), "{kind:?}");
            assert_eq!(free_energy.to_bits(), mean_free_energy_of(&rbm, &data).to_bits(), "{kind:?}");
        }
    }

    #[test]
    fn pseudo_likelihood_methods_describe_themselves() {
        assert_eq!(PseudoLikelihood::AllFeatures.describe(), "all features");
        assert_eq!(PseudoLikelihood::OneFeature { seed: 4 }.describe(), "one random feature per row, seed 4");
    }
}
