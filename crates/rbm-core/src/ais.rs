//! Annealed importance sampling (AIS) estimates of the log partition function `log Z` of models
//! too large to enumerate (Salakhutdinov & Murray, "On the quantitative analysis of deep belief
//! networks", ICML 2008), and reverse AIS, which anneals from the model's own samples towards the
//! base model (Burda, Grosse & Salakhutdinov, "Accurate and conservative estimates of MRF
//! log-likelihood using reverse annealing", AISTATS 2015).
//!
//! The path of distributions runs from a *base-rate* model A (the model's visible layer with
//! biases `b_A`, typically fitted to the data's marginals, and no interactions) to the model B:
//! ```text
//! log p*_beta(v) = -(1 - beta) E_vis(v; b_A) - beta E_vis(v; b_B) + sum_j softplus(beta (c_j + W_j v))
//! ```
//! At `beta = 0` the hidden units contribute `n_hidden log 2`, so
//! `log Z_A = sum_groups log Z_group(b_A) + n_hidden log 2`, known exactly. For every unit kind the
//! transition at `beta` is one block Gibbs step: `h ~ sigmoid(beta (c + W v))`, then `v` from the
//! kind's conditional with activations `(1 - beta) b_A + beta (b_B + W^T h)` (the energies are
//! linear in `v` for Bernoulli and softmax units and quadratic with unit variance for Gaussian
//! units, so the mixed energy is again of the kind's form with the mixed activation).
//!
//! Forward AIS: each run starts with an exact sample of A and accumulates
//! `log w = sum_k log p*_{beta_k}(v_k) - log p*_{beta_{k-1}}(v_k)`; `E[w] = Z_B / Z_A`. The estimate
//! `log Z_A + log mean(w)` tends to *under*-estimate `log Z` (Jensen), so the log-likelihood it
//! gives tends to be optimistic. Reverse AIS starts at samples of B (Gibbs chains from data, after a
//! burn-in) and anneals to A; `E[w] = Z_A / Z_B`, and `log Z_A - log mean(w)` tends to
//! *over*-estimate `log Z` (a pessimistic log-likelihood) when its start is close to exact samples.
//! Reporting both brackets the truth.
//!
//! All runs advance together as the columns of one matrix, with the crate's deterministic GEMM
//! and block-seeded random streams, so the estimate for a seed does not depend on the thread count.
//! Log weights accumulate in f64.

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::error::{RbmError, Result};
use crate::gibbs::ChainBuffers;
use crate::linalg::{Operand, gemm, log_sum_exp, sigmoid};
use crate::model::{Rbm, fill_columns};
use crate::rng::{RandomStreams, shuffle};
use crate::units::VisibleLayer;

/// Which way the annealing runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// From the base model to the model (tends to under-estimate `log Z`).
    Forward,
    /// From samples of the model to the base model (tends to over-estimate `log Z`).
    Reverse,
}

impl Direction {
    /// The name used in reports: `ais` or `reverse-ais`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Forward => "ais",
            Direction::Reverse => "reverse-ais",
        }
    }
}

/// The settings of an AIS estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AisSettings {
    /// Independent annealing runs (importance weights).
    pub runs: usize,
    /// Inverse temperatures on the path, both ends included (`schedule(betas)`).
    pub betas: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// Reverse AIS only: Gibbs steps under the model from the data before annealing starts.
    pub burn_in: usize,
}

impl AisSettings {
    /// The default number of runs (Salakhutdinov & Murray used 100).
    pub const DEFAULT_RUNS: usize = 100;
    /// The default number of inverse temperatures (Salakhutdinov & Murray's schedule has 14,501;
    /// `docs/results.md` shows what the cheaper default costs in accuracy).
    pub const DEFAULT_BETAS: usize = 10_000;
    /// The default burn-in of reverse AIS.
    pub const DEFAULT_BURN_IN: usize = 1000;
}

impl Default for AisSettings {
    fn default() -> Self {
        AisSettings { runs: Self::DEFAULT_RUNS, betas: Self::DEFAULT_BETAS, seed: 0, burn_in: Self::DEFAULT_BURN_IN }
    }
}

/// An estimate of `log Z` from AIS or reverse AIS.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LogPartitionEstimate {
    /// How it was estimated.
    pub direction: Direction,
    /// The estimate of `log Z`.
    pub log_partition: f64,
    /// Standard error of the estimate of `log Z` (delta method: the relative standard error of
    /// the mean importance weight).
    pub stderr: f64,
    /// `log Z` at minus three standard errors of the mean weight; `None` when three standard
    /// errors exceed the mean (the weights are too uneven to bound it).
    pub lower: Option<f64>,
    /// `log Z` at plus three standard errors of the mean weight; `None` when unbounded.
    pub upper: Option<f64>,
    /// `log Z` of the base-rate model.
    pub base_log_partition: f64,
    /// Effective sample size of the importance weights, `(sum w)^2 / sum w^2` (at most `runs`;
    /// far below it means the estimate rests on a few runs and the schedule is too short).
    pub effective_runs: f64,
    /// Number of runs.
    pub runs: usize,
    /// Number of inverse temperatures.
    pub betas: usize,
}

/// The inverse temperatures of a path with `betas` points from 0 to 1, both included, spaced like
/// Salakhutdinov & Murray's schedule: the intervals split in the proportions 500 : 4000 : 10000
/// over [0, 0.5], [0.5, 0.9] and [0.9, 1] (exactly their schedule for `betas` = 14,501), so the
/// steps are finest near the model, where the distributions change fastest. Fewer than 4 points
/// are spaced evenly.
pub fn schedule(betas: usize) -> Result<Vec<f64>> {
    if betas < 2 {
        return Err(RbmError::InvalidAisBetas(betas));
    }
    let intervals = betas - 1;
    if intervals < 3 {
        return Ok((0..betas).map(|k| k as f64 / intervals as f64).collect());
    }
    let share = |part: usize| ((intervals * part) as f64 / 14_500.0).round().max(1.0) as usize;
    let first = share(500);
    let second = share(4000).min(intervals - first - 1);
    let third = intervals - first - second;
    let mut out = Vec::with_capacity(betas);
    for (from, to, steps) in [(0.0, 0.5, first), (0.5, 0.9, second), (0.9, 1.0, third)] {
        out.extend((0..steps).map(|k| from + (to - from) * k as f64 / steps as f64));
    }
    out.push(1.0);
    Ok(out)
}

/// The visible biases of the base-rate model for `data` (`n_visible x n`, in model units): each
/// group's initial biases from the data means (the smoothed log-odds of each Bernoulli unit, the
/// mean of each Gaussian unit, the smoothed log-frequency of each softmax level), so the base
/// model reproduces the data's marginals and AIS starts close to the model.
pub fn base_rate(layer: &VisibleLayer, data: &DMatrix<f32>) -> Result<Vec<f32>> {
    crate::model::check_values(layer, data)?;
    Ok(crate::model::initial_biases(layer, data))
}

/// Forward AIS estimate of `log Z` with base-rate biases `base_bias` (see [`base_rate`]).
pub fn log_partition_ais(rbm: &Rbm, base_bias: &[f32], settings: &AisSettings) -> Result<LogPartitionEstimate> {
    estimate_log_partition(rbm, base_bias, Start::Base, settings, |_, _| {})
}

/// Reverse AIS estimate of `log Z`: chains start at columns of `start` (data, `n_visible x n`,
/// in model units, taken in a seeded random order and repeated if there are fewer than the runs),
/// run `settings.burn_in` Gibbs steps under the model, then anneal to the base model.
pub fn log_partition_reverse_ais(
    rbm: &Rbm,
    base_bias: &[f32],
    start: &DMatrix<f32>,
    settings: &AisSettings,
) -> Result<LogPartitionEstimate> {
    estimate_log_partition(rbm, base_bias, Start::Model(start), settings, |_, _| {})
}

/// Where the runs start, which decides the direction.
#[derive(Clone, Copy, Debug)]
pub enum Start<'a> {
    /// Exact samples of the base model: forward AIS.
    Base,
    /// Gibbs chains under the model started at these data columns: reverse AIS.
    Model(&'a DMatrix<f32>),
}

/// [`log_partition_ais`] or [`log_partition_reverse_ais`] by `start`, calling
/// `progress(done, total)` about a hundred times along the path.
pub fn estimate_log_partition(
    rbm: &Rbm,
    base_bias: &[f32],
    start: Start<'_>,
    settings: &AisSettings,
    mut progress: impl FnMut(usize, usize),
) -> Result<LogPartitionEstimate> {
    if settings.runs == 0 {
        return Err(RbmError::InvalidAisRuns(settings.runs));
    }
    let betas = schedule(settings.betas)?;
    let (nv, nh, runs) = (rbm.n_visible(), rbm.n_hidden(), settings.runs);
    if base_bias.len() != nv {
        return Err(RbmError::ShapeMismatch {
            what: "base-rate biases",
            expected: format!("{nv} values, one per visible unit"),
            found: format!("{} values", base_bias.len()),
        });
    }
    if let Some(index) = base_bias.iter().position(|b| !b.is_finite()) {
        return Err(RbmError::NonFiniteParameter { what: "base-rate biases", index });
    }
    let layer = rbm.layer();
    let base_log_partition = layer.log_partition(base_bias, base_bias) + nh as f64 * std::f64::consts::LN_2;
    let mut path = Path::new(rbm, base_bias, runs);
    // The two directions draw from different streams for one seed, so that an AIS bracket's two
    // estimates have independent errors.
    let seed = match start {
        Start::Base => settings.seed,
        Start::Model(_) => settings.seed ^ 0x05ee_d4e7_e25e_0a15_u64,
    };
    let mut streams = RandomStreams::new(seed);
    let total = betas.len() - 1 + if matches!(start, Start::Model(_)) { settings.burn_in } else { 0 };
    let every = (total / 100).max(1);
    let mut done = 0;
    let mut tick = |done: usize| {
        if done.is_multiple_of(every) || done == total {
            progress(done, total);
        }
    };
    let direction = match start {
        Start::Base => {
            // An exact sample of the base model: its visible units are independent of h.
            path.sample_visible(0.0, &mut streams);
            for k in 1..betas.len() {
                path.add_log_ratio(betas[k], betas[k - 1], 1.0);
                if k + 1 < betas.len() {
                    path.transition(betas[k], &mut streams);
                }
                done += 1;
                tick(done);
            }
            Direction::Forward
        }
        Start::Model(data) => {
            crate::model::check_values(layer, data)?;
            let mut order: Vec<usize> = (0..data.ncols()).collect();
            shuffle(&mut order, &mut streams.serial());
            let mut chains = ChainBuffers::new(nv, nh, runs);
            let values = data.as_slice();
            chains.start_at(|c| {
                let s = order[c % order.len()];
                &values[s * nv..(s + 1) * nv]
            });
            chains.refresh_hidden(rbm);
            for _ in 0..settings.burn_in {
                chains.run(rbm, 1, &mut streams);
                done += 1;
                tick(done);
            }
            path.visible.copy_from_slice(&chains.visible);
            path.refresh();
            for k in (1..betas.len()).rev() {
                // log p*_{k-1}(v) - log p*_k(v): the forward ratio with the sign turned.
                path.add_log_ratio(betas[k], betas[k - 1], -1.0);
                if k > 1 {
                    path.transition(betas[k - 1], &mut streams);
                }
                done += 1;
                tick(done);
            }
            Direction::Reverse
        }
    };
    Ok(summarise(direction, &path.log_weights, base_log_partition, betas.len()))
}

/// The runs' state along the path: one column per run.
struct Path<'a> {
    rbm: &'a Rbm,
    base_bias: &'a [f32],
    runs: usize,
    /// `n_visible x runs`.
    visible: Vec<f32>,
    /// Visible activations, then means, `n_visible x runs`.
    visible_means: Vec<f32>,
    /// `c + W v`, `n_hidden x runs`.
    hidden_input: Vec<f32>,
    /// `sigmoid(beta (c + W v))`, then the hidden sample, `n_hidden x runs`.
    hidden_probabilities: Vec<f32>,
    hidden: Vec<f32>,
    /// `E_vis(v; b_B) - E_vis(v; b_A)` per run.
    energy_difference: Vec<f64>,
    /// Accumulated log importance weights.
    log_weights: Vec<f64>,
}

impl<'a> Path<'a> {
    fn new(rbm: &'a Rbm, base_bias: &'a [f32], runs: usize) -> Self {
        let (nv, nh) = (rbm.n_visible(), rbm.n_hidden());
        Path {
            rbm,
            base_bias,
            runs,
            visible: vec![0.0; nv * runs],
            visible_means: vec![0.0; nv * runs],
            hidden_input: vec![0.0; nh * runs],
            hidden_probabilities: vec![0.0; nh * runs],
            hidden: vec![0.0; nh * runs],
            energy_difference: vec![0.0; runs],
            log_weights: vec![0.0; runs],
        }
    }

    /// Draws `v` at inverse temperature `beta` given the current hidden sample (at `beta = 0`
    /// the hidden sample does not matter), then refreshes the per-run terms.
    fn sample_visible(&mut self, beta: f64, streams: &mut RandomStreams) {
        let (nh, nv) = (self.rbm.n_hidden(), self.rbm.n_visible());
        let b = self.rbm.visible_bias().as_slice();
        let mixed: Vec<f32> =
            self.base_bias.iter().zip(b).map(|(&a, &b)| ((1.0 - beta) * a as f64 + beta * b as f64) as f32).collect();
        fill_columns(&mut self.visible_means, &mixed);
        if beta > 0.0 {
            // activations += beta W^T h
            gemm(
                beta as f32,
                Operand::new(self.rbm.weights().as_slice(), nh, nv).t(),
                Operand::new(&self.hidden, nh, self.runs),
                1.0,
                &mut self.visible_means,
            );
        }
        self.rbm.layer().means_columns(&mut self.visible_means);
        streams.visible(self.rbm.layer(), &self.visible_means, &mut self.visible);
        self.refresh();
    }

    /// One block Gibbs step leaving the distribution at `beta` invariant.
    fn transition(&mut self, beta: f64, streams: &mut RandomStreams) {
        let beta32 = beta as f32;
        self.hidden_probabilities
            .par_iter_mut()
            .zip(self.hidden_input.par_iter())
            .for_each(|(p, &x)| *p = sigmoid(beta32 * x));
        streams.bernoulli(&self.hidden_probabilities, &mut self.hidden);
        self.sample_visible(beta, streams);
    }

    /// Recomputes `c + W v` and the visible energy difference for the current `v`.
    fn refresh(&mut self) {
        let nv = self.rbm.n_visible();
        self.rbm.hidden_activations_into(&self.visible, self.runs, &mut self.hidden_input);
        let (layer, base, b) = (self.rbm.layer(), self.base_bias, self.rbm.visible_bias().as_slice());
        self.energy_difference
            .par_iter_mut()
            .zip(self.visible.par_chunks(nv))
            .for_each(|(d, v)| *d = layer.energy(v, b) - layer.energy(v, base));
    }

    /// `log_weights += sign * (log p*_{to}(v) - log p*_{from}(v))` for the current `v`.
    fn add_log_ratio(&mut self, to: f64, from: f64, sign: f64) {
        let nh = self.rbm.n_hidden();
        self.log_weights
            .par_iter_mut()
            .zip(self.energy_difference.par_iter())
            .zip(self.hidden_input.par_chunks(nh))
            .for_each(|((w, &difference), x)| {
                let hidden = crate::linalg::softplus_tempered_difference_sum(x, to, from);
                *w += sign * (hidden - (to - from) * difference);
            });
    }
}

/// The estimate and its uncertainty from the runs' log weights.
fn summarise(direction: Direction, log_weights: &[f64], base: f64, betas: usize) -> LogPartitionEstimate {
    let runs = log_weights.len();
    let log_mean = log_sum_exp(log_weights) - (runs as f64).ln();
    // Weights relative to their mean (mean 1), for the spread and the effective sample size.
    let relative: Vec<f64> = log_weights.iter().map(|w| (w - log_mean).exp()).collect();
    let second_moment = relative.iter().map(|r| r * r).sum::<f64>() / runs as f64;
    let variance = if runs > 1 { (second_moment - 1.0).max(0.0) * runs as f64 / (runs - 1) as f64 } else { 0.0 };
    let relative_stderr = (variance / runs as f64).sqrt();
    let effective_runs = runs as f64 / second_moment;
    let up = (1.0 + 3.0 * relative_stderr).ln();
    let down = if 3.0 * relative_stderr < 1.0 { Some((1.0 - 3.0 * relative_stderr).ln()) } else { None };
    let (log_partition, lower, upper) = match direction {
        Direction::Forward => (base + log_mean, down.map(|d| base + log_mean + d), Some(base + log_mean + up)),
        // The weights estimate Z_A / Z_B: their interval turns over.
        Direction::Reverse => (base - log_mean, Some(base - log_mean - up), down.map(|d| base - log_mean - d)),
    };
    LogPartitionEstimate {
        direction,
        log_partition,
        stderr: relative_stderr,
        lower,
        upper,
        base_log_partition: base,
        effective_runs,
        runs,
        betas,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_has_the_requested_points_rises_and_ends_at_one() {
        for n in [2, 3, 4, 5, 10, 100, 1000, 14_501] {
            let s = schedule(n).unwrap();
            assert_eq!(s.len(), n);
            assert_eq!((s[0], *s.last().unwrap()), (0.0, 1.0));
            assert!(s.windows(2).all(|w| w[1] > w[0]), "not increasing for {n}");
        }
        // Salakhutdinov & Murray's schedule exactly: steps of 1e-3, 1e-4 and 1e-5.
        let s = schedule(14_501).unwrap();
        assert!((s[1] - 1e-3).abs() < 1e-12 && (s[500] - 0.5).abs() < 1e-12);
        assert!((s[4501] - 0.90001).abs() < 1e-12 && (s[14_500 - 1] - (1.0 - 1e-5)).abs() < 1e-12);
        assert!(matches!(schedule(1), Err(RbmError::InvalidAisBetas(1))));
    }

    #[test]
    fn summary_of_equal_weights_has_no_spread_and_turns_over_for_reverse() {
        let forward = summarise(Direction::Forward, &[2.0; 10], 5.0, 3);
        assert!((forward.log_partition - 7.0).abs() < 1e-12 && forward.stderr.abs() < 1e-12);
        assert!((forward.effective_runs - 10.0).abs() < 1e-9);
        let reverse = summarise(Direction::Reverse, &[2.0; 10], 5.0, 3);
        assert!((reverse.log_partition - 3.0).abs() < 1e-12);
        let spread = summarise(Direction::Reverse, &[0.0, 1.0, 2.0, 3.0], 0.0, 3);
        assert!(spread.lower.unwrap() < spread.log_partition);
        assert!(spread.upper.is_none_or(|u| u > spread.log_partition));
    }

    #[test]
    fn summary_of_unequal_weights_has_the_worked_values() {
        // Weights 1, 1, 1, 2: mean 1.25, relative weights 0.8 x 3 and 1.6, second moment 1.12,
        // variance 0.12 x 4/3 = 0.16, relative standard error sqrt(0.16 / 4) = 0.2, effective
        // runs 4 / 1.12; the interval is the mean times 1 -+ 3 x 0.2: [0.5, 2].
        let log_weights = [0.0, 0.0, 0.0, 2f64.ln()];
        let forward = summarise(Direction::Forward, &log_weights, 1.0, 7);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(forward.log_partition, 1.0 + 1.25f64.ln()), "{forward:?}");
        assert!(close(forward.stderr, 0.2) && close(forward.effective_runs, 4.0 / 1.12), "{forward:?}");
        assert!(close(forward.lower.unwrap(), 1.0 + 0.5f64.ln()) && close(forward.upper.unwrap(), 1.0 + 2f64.ln()));
        assert_eq!((forward.runs, forward.betas, forward.base_log_partition), (4, 7, 1.0));
        // Reverse: the weights estimate Z_A / Z_B, so the estimate and its interval turn over.
        let reverse = summarise(Direction::Reverse, &log_weights, 1.0, 7);
        assert!(close(reverse.log_partition, 1.0 - 1.25f64.ln()));
        assert!(close(reverse.lower.unwrap(), 1.0 - 2f64.ln()) && close(reverse.upper.unwrap(), 1.0 - 0.5f64.ln()));
        assert_eq!((Direction::Forward.name(), Direction::Reverse.name()), ("ais", "reverse-ais"));
        // One run has no spread to estimate: zero, not 0 x infinity.
        let single = summarise(Direction::Forward, &[0.5], 1.0, 7);
        assert!(close(single.log_partition, 1.5) && single.stderr == 0.0, "{single:?}");
    }
}
