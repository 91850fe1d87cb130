//! Evaluation: reconstruction error, pseudo-log-likelihood, and exact log partition function and
//! log-likelihood by enumerating the hidden states of small models.

use nalgebra::DMatrix;
use rand::Rng;
use rayon::prelude::*;

use crate::error::{RbmError, Result};
use crate::linalg::{Operand, gemm, log_add_exp, softplus};
use crate::model::{Rbm, fill_columns};
use crate::units::VisibleKind;

/// Samples per chunk in evaluations that hold per-sample buffers.
const CHUNK: usize = 2048;

/// The largest hidden layer [`log_partition_exact`] enumerates (2^25 states).
pub const MAX_EXACT_HIDDEN: usize = 25;

/// Mean free energy of the samples of `data`.
pub fn mean_free_energy(rbm: &Rbm, data: &DMatrix<f32>) -> f64 {
    let f = rbm.free_energy(data);
    f.iter().sum::<f64>() / f.len().max(1) as f64
}

/// Mean squared error per feature of the deterministic (mean-field) reconstruction
/// `E[v | h = p(h | v)]` of each sample.
pub fn reconstruction_error(rbm: &Rbm, data: &DMatrix<f32>) -> f64 {
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
        // Per-sample terms are collected and then added in order: rayon's parallel `sum` groups
        // floats by its work-stealing splits, so its last bits vary from run to run.
        let per_sample: Vec<f64> = v
            .par_chunks(nv)
            .zip(recon.par_chunks(nv))
            .map(|(v, r)| v.iter().zip(r).map(|(&a, &b)| ((a - b) as f64).powi(2)).sum::<f64>())
            .collect();
        total += per_sample.iter().sum::<f64>();
    }
    total / data.len().max(1) as f64
}

/// Which features the pseudo-log-likelihood conditions on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PseudoLikelihood {
    /// Every feature of every sample (exact; costs one free-energy pass per sample).
    AllFeatures,
    /// One feature per sample drawn with this seed (scikit-learn's estimator, but normalised per
    /// feature); cheap and unbiased for the same per-feature mean.
    OneFeature {
        /// Seed of the feature choice.
        seed: u64,
    },
}

/// Mean over samples and features of `log p(v_i | v_-i)`, i.e. the pseudo-log-likelihood
/// normalised per feature (scikit-learn's `score_samples` multiplies by the number of features).
///
/// For Bernoulli units `p(v_i = 1 | v_-i) = sigmoid(F(v_i=0) - F(v_i=1))`, and a fractional value
/// `v_i` in [0, 1] is scored by cross-entropy, `v_i log p + (1 - v_i) log (1 - p)`.
/// Gaussian units are refused: their conditional is a density that needs a 1-D integral.
pub fn pseudo_log_likelihood(rbm: &Rbm, data: &DMatrix<f32>, features: PseudoLikelihood) -> Result<f64> {
    if rbm.visible_kind() != VisibleKind::Bernoulli {
        return Err(RbmError::Unsupported { operation: "pseudo-log-likelihood", kind: rbm.visible_kind().name() });
    }
    rbm.check_data(data)?;
    let (nv, nh) = (rbm.n_visible(), rbm.n_hidden());
    let chosen: Option<Vec<usize>> = match features {
        PseudoLikelihood::AllFeatures => None,
        PseudoLikelihood::OneFeature { seed } => {
            let mut rng = crate::rng::generator(seed, 0, 0);
            Some((0..data.ncols()).map(|_| (rng.next_u64() % nv as u64) as usize).collect())
        }
    };
    let w = rbm.weights().as_slice();
    let b = rbm.visible_bias().as_slice();
    let mut activations = Vec::new();
    let mut total = 0.0f64;
    for (chunk_index, v) in data.as_slice().chunks(CHUNK * nv).enumerate() {
        let cols = v.len() / nv;
        activations.resize(nh * cols, 0.0);
        rbm.hidden_activations_into(v, cols, &mut activations);
        let per_sample: Vec<f64> = v
            .par_chunks(nv)
            .zip(activations.par_chunks(nh))
            .enumerate()
            .map(|(s, (v, a))| {
                // log p(v_i | v_-i) for one feature: remove v_i's input to the hidden units, then
                // logit = b_i + sum_j softplus(a_j^-i + W_ij) - softplus(a_j^-i).
                let score = |i: usize| {
                    let row = |j: usize| w[i + j * nv] as f64;
                    let logit = b[i] as f64
                        + (0..nh)
                            .map(|j| {
                                let without = a[j] as f64 - v[i] as f64 * row(j);
                                softplus(without + row(j)) - softplus(without)
                            })
                            .sum::<f64>();
                    let x = v[i] as f64;
                    -(x * softplus(-logit) + (1.0 - x) * softplus(logit))
                };
                match &chosen {
                    None => (0..nv).map(score).sum::<f64>() / nv as f64,
                    Some(features) => score(features[chunk_index * CHUNK + s]),
                }
            })
            .collect();
        // Summed in order (see `reconstruction_error`) so the result is the same on every run.
        total += per_sample.iter().sum::<f64>();
    }
    Ok(total / data.ncols() as f64)
}

/// Exact `log Z` by enumerating all `2^n_hidden` hidden states and summing (or integrating) the
/// visible units out analytically:
/// `log Z = logsumexp_h [ c.h + sum_i log_partition_term(b_i + (W h)_i, b_i) ]`.
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
    let kind = rbm.visible_kind();
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
            gemm(1.0, Operand::new(w, nv, nh), Operand::new(&hidden, nh, cols), 1.0, &mut activation);
            hidden.chunks(nh).zip(activation.chunks(nv)).fold(f64::NEG_INFINITY, |acc, (h, a)| {
                let hidden_term: f64 = h.iter().zip(c).map(|(&h, &c)| h as f64 * c as f64).sum();
                let visible_term: f64 = a.iter().zip(b).map(|(&a, &b)| kind.log_partition_term(a, b)).sum();
                log_add_exp(acc, hidden_term + visible_term)
            })
        })
        .collect();
    Ok(block_sums.into_iter().fold(f64::NEG_INFINITY, log_add_exp))
}

/// Mean exact log-likelihood `-F(v) - log Z` of the samples of `data`, with `log Z` from
/// [`log_partition_exact`] (given, to avoid recomputing it). For Gaussian units this is a log
/// density in the model's (standardised) units.
pub fn mean_log_likelihood(rbm: &Rbm, data: &DMatrix<f32>, log_partition: f64) -> f64 {
    -mean_free_energy(rbm, data) - log_partition
}

/// Probability of each hidden unit being on, `n_hidden x n_samples`: the feature transform.
pub fn transform(rbm: &Rbm, data: &DMatrix<f32>) -> DMatrix<f32> {
    rbm.hidden_probabilities(data)
}
