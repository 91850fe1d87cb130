//! CD-k and persistent CD training with momentum, weight decay and a sparsity target.
//!
//! One update on a batch `v0` (`n_visible x B`), with `ph = p(h = 1 | v)`:
//! ```text
//! positive:  ph0 = sigmoid(c + W^T v0)                                  n_hidden x B
//! negative:  k Gibbs steps from v0 (CD) or from the persistent chains (PCD)  -> vk, phk (C chains)
//! gradient:  dW = v0 ph0^T / B - vk phk^T / C                           n_visible x n_hidden
//!            db = mean(v0) - mean(vk),   dc = mean(ph0) - mean(phk)
//! update:    velocity = momentum * velocity + lr * (gradient - decay * W)   (decay on W only)
//!            parameters += velocity
//! ```
//! The negative statistics use the sampled `vk` and the probabilities `phk`, which keeps the
//! estimate unbiased for the model expectation when the chains are at equilibrium.

use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::Instant;

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rayon::prelude::*;

use crate::error::{RbmError, Result};
use crate::eval::{mean_free_energy_of, reconstruction_error_and_mean_free_energy_of};
use crate::gibbs::{ChainBuffers, TemperedChains};
use crate::linalg::{Operand, dot, gemm, gemm_serial_columns};
use crate::model::Rbm;
use crate::optim::Sgd;
use crate::params::VisibleSpec;
use crate::params::{Sampler, ValidParams};
use crate::rng::{RandomStreams, shuffle};
use crate::skinny::{PhaseStatistics, SkinnyWeights};
use crate::team::{Team, Workers};
use crate::units::VisibleLayer;

/// A log-likelihood gradient estimate (the ascent direction), shaped like the parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradient {
    /// `n_hidden x n_visible`, shaped like [`Rbm::weights`].
    pub weights: DMatrix<f32>,
    /// `n_visible`.
    pub visible_bias: DVector<f32>,
    /// `n_hidden`.
    pub hidden_bias: DVector<f32>,
}

impl Gradient {
    fn zeros(n_visible: usize, n_hidden: usize) -> Self {
        Gradient {
            weights: DMatrix::zeros(n_hidden, n_visible),
            visible_bias: DVector::zeros(n_visible),
            hidden_bias: DVector::zeros(n_hidden),
        }
    }
}

/// What one epoch measured. Free energies are means over the monitored training subset and over
/// the validation data; a validation mean rising above the training mean is the over-fitting signal
/// of Hinton's guide (section 6).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EpochStats {
    /// One-based epoch number.
    pub epoch: usize,
    /// Wall time of the epoch's updates (monitoring excluded).
    pub seconds: f64,
    /// Mean squared error per feature of the mean-field reconstruction `E[v | p(h | v)]`.
    pub reconstruction_error: f64,
    /// Mean free energy of the monitored training samples.
    pub free_energy_train: f64,
    /// Mean free energy of the validation samples, when given.
    pub free_energy_validation: Option<f64>,
    /// Parallel tempering: the fraction of proposed swaps accepted so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_acceptance: Option<f64>,
}

impl EpochStats {
    /// `validation - train` mean free energy, when validation data were given.
    pub fn free_energy_gap(&self) -> Option<f64> {
        self.free_energy_validation.map(|v| v - self.free_energy_train)
    }
}

/// The result of [`Trainer::fit`].
#[derive(Clone, Debug)]
pub struct TrainingOutcome {
    /// The trained model.
    pub rbm: Rbm,
    /// One entry per completed epoch.
    pub history: Vec<EpochStats>,
    /// Whether the callback stopped training before the last epoch.
    pub stopped_early: bool,
    /// With `learn_variance`: each visible unit's learned standard deviation (1 for units that are
    /// not Gaussian). The model's visible units see `v / sigma`: divide data by it before using
    /// the model (`Model::fit` folds it into the standardisation).
    pub visible_scale: Option<Vec<f32>>,
}

/// Holds the training state that is not part of the model: momentum buffers, persistent chains,
/// the sparsity running means, the random streams and the preallocated work buffers.
#[derive(Clone, Debug)]
pub struct Trainer {
    params: ValidParams,
    rbm: Rbm,
    streams: RandomStreams,
    gradient: Gradient,
    velocity: Gradient,
    phases: Phases,
    /// Running mean activation of each hidden unit, for the sparsity target.
    hidden_activity: Vec<f32>,
    /// Centred training: the offsets, set from the data when training starts.
    offsets: Option<Offsets>,
    /// Centred training in pieces: the per-batch scalars, reused by every batch.
    centring_plan: CentringPlan,
    /// Learned variance: `log sigma` of each visible unit (0 and never updated for units that are
    /// not Gaussian).
    log_scale: Option<Vec<f32>>,
    /// Learned variance: `W^T h` of a phase's samples, reused by every batch.
    variance_input: Vec<f32>,
}

/// Batches with less work than this (hidden x visible units x samples or chains) run their phases
/// in pieces of samples (see [`Trainer::run_phases_in_pieces`]) and their gradients in blocks of
/// visible units; larger ones split each product across the threads. 16 hidden units on 784
/// pixels in batches of 100 (1.25e6) are below it; the 500-hidden benchmark (3.9e7), whose
/// products split well, is above it. The choice depends on sizes only, never on the threads.
const PIECES_MAX_WORK: usize = 1 << 23;

/// Visible units per task of [`Phases::gradients_in_blocks`]: 25 tasks for 784 pixels, so that
/// two threads share them within 4% (13 blocks of 64 left one thread a block behind: updates 2.3%
/// slower in 5 alternating pairs of the 16-hidden MNIST job), each still long enough (a few
/// microseconds for 16 hidden units and 100 samples) to outweigh rayon's cost of a task. The
/// model is the same bits for any block size: each unit's arithmetic is its own.
const GRADIENT_BLOCK_UNITS: usize = 32;

// A gradient task's units are one tile of the kernels' layouts, which it refreshes.
const _: () = assert!(GRADIENT_BLOCK_UNITS == crate::skinny::TILE);

/// Elementwise passes over weight-sized buffers split into tasks of at least this many elements:
/// a small model's passes (16 x 784) then run as one task instead of paying for a fork per row.
const ELEMENTWISE_MIN_TASK: usize = 1 << 14;

/// Rows per task of [`Trainer::monitor_in_pieces`].
const MONITOR_PIECE_SAMPLES: usize = 64;

/// Rows per task of the parallel copy of a batch from the data.
const GATHER_MIN_ROWS: usize = 16;

/// Where a batch's rows come from when its phases run.
#[derive(Clone, Copy, Debug)]
enum BatchRows<'a> {
    /// Already in `Phases::batch`.
    Copied,
    /// Rows `indices` of `values` (column-major samples), each multiplied by `scale` (learned
    /// variances) when given, still to be copied into `Phases::batch`.
    Gather { values: &'a [f32], indices: &'a [usize], scale: Option<&'a [f32]> },
}

impl BatchRows<'_> {
    /// Copies rows `first .. first + batch.len() / nv` of the batch into `batch` (nothing for
    /// [`BatchRows::Copied`]).
    fn copy_rows(&self, first: usize, batch: &mut [f32], nv: usize) {
        if let BatchRows::Gather { values, indices, scale } = *self {
            for (slot, &i) in batch.chunks_mut(nv).zip(&indices[first..]) {
                slot.copy_from_slice(&values[i * nv..(i + 1) * nv]);
                if let Some(scale) = scale {
                    slot.iter_mut().zip(scale).for_each(|(x, s)| *x *= s);
                }
            }
        }
    }

    /// Copies the whole batch into `batch` (already of its size), on every core: the rows are
    /// scattered over the data set, so the copy waits on memory.
    fn copy_into(&self, batch: &mut [f32], nv: usize) {
        batch
            .par_chunks_mut(nv * GATHER_MIN_ROWS)
            .enumerate()
            .for_each(|(k, rows)| self.copy_rows(k * GATHER_MIN_ROWS, rows, nv));
    }
}

/// Samples (and chains) per piece: 13 pieces for a batch of 100, which two threads share
/// evenly; a multiple of the kernels' group of 8 samples (any size gives the same results).
const PIECE_SAMPLES: usize = 8;

/// How fast the hidden offsets follow the batches' mean hidden probabilities (PyDeep's and
/// Melchior et al.'s sliding factor).
const HIDDEN_OFFSET_RATE: f32 = 0.01;

/// The offsets of centred training (Melchior, Fischer & Wiskott 2016): the energy
/// `-(v - mu).b - (h - lambda).c - (v - mu)^T W (h - lambda)` is the ordinary one with
/// `b_u = b - W lambda`, `c_u = c - W^T mu` (up to a constant), so a step along the centred gradient
/// is, in the ordinary parameters the model keeps,
/// ```text
/// dW_c = dW - mu dc^T - db lambda^T          (= <(v - mu)(h - lambda)^T>_data - <...>_model)
/// db_u = db - dW_c lambda,   dc_u = dc - dW_c^T mu
/// ```
/// where `dW`, `db`, `dc` are the ordinary gradient. Moving an offset changes the centred
/// parameters but not the model, so nothing else is needed when `lambda` slides.
#[derive(Clone, Debug)]
struct Offsets {
    /// `mu`: the visible units' data means, `n_visible`.
    visible: Vec<f32>,
    /// `lambda`: a running mean of `p(h | v)` on the training batches, `n_hidden` (starts at 0.5).
    hidden: Vec<f32>,
}

impl Offsets {
    fn new(data: &DMatrix<f32>, n_hidden: usize) -> Self {
        Offsets::from_means(&crate::model::row_means(data), n_hidden)
    }

    /// Visible offsets at `means`, hidden offsets at 0.5.
    fn from_means(means: &[f64], n_hidden: usize) -> Self {
        Offsets { visible: means.iter().map(|&m| m as f32).collect(), hidden: vec![0.5; n_hidden] }
    }

    /// Slides the hidden offsets towards the batch's mean hidden probabilities.
    fn follow(&mut self, positive_hidden: &[f32], cols: usize) {
        let nh = self.hidden.len();
        for (j, lambda) in self.hidden.iter_mut().enumerate() {
            let mean = (0..cols).map(|s| positive_hidden[s * nh + j]).sum::<f32>() / cols as f32;
            *lambda += HIDDEN_OFFSET_RATE * (mean - *lambda);
        }
    }

    /// Turns the ordinary step in `velocity_weights` (`momentum v + lr dW`, `n_hidden x
    /// n_visible`) and the ordinary bias gradients into their centred counterparts (see the
    /// type's comment), for models whose phases are not run in pieces: the same [`CentringPlan`]
    /// and [`Offsets::centre_block`] as theirs, over blocks of every visible unit. `phases.mu_dots`
    /// must hold `v.mu` of the batch's samples, then of the chains'.
    #[allow(clippy::too_many_arguments)]
    fn centre(
        &self,
        phases: &Phases,
        plan: &mut CentringPlan,
        cols: usize,
        lr: f32,
        velocity_weights: &mut [f32],
        db: &mut [f32],
        dc: &mut [f32],
    ) {
        self.plan(phases, cols, lr, dc, plan);
        let (nh, plan) = (self.hidden.len(), &*plan);
        velocity_weights
            .par_chunks_mut(nh * GRADIENT_BLOCK_UNITS)
            .zip(db.par_chunks_mut(GRADIENT_BLOCK_UNITS))
            .enumerate()
            .for_each(|(i, (w, db))| self.centre_block(phases, plan, i * GRADIENT_BLOCK_UNITS, w, db));
        dc.iter_mut().zip(&plan.hidden_term).for_each(|(c, &t)| *c -= t);
    }
}

/// What [`Offsets::centre`] needs of a batch besides its visible values, computed once before
/// the gradient's tasks so that each task can centre its own visible units
/// ([`Offsets::centre_block`]) with the arithmetic of [`Offsets::centre`], element by element.
#[derive(Clone, Debug, Default)]
struct CentringPlan {
    /// `w_s ((h_s - lambda).lambda)` of each sample of the positive phase, then of the negative.
    along_lambda: [Vec<f32>; 2],
    /// The sums of `along_lambda` of each phase.
    total_lambda: [f32; 2],
    /// `dW_c^T mu`'s hidden term, complete.
    hidden_term: Vec<f32>,
    /// The ordinary hidden bias gradient `dc`, before centring (the weights' correction uses it).
    hidden_gradient: Vec<f32>,
    lr: f32,
}

impl Offsets {
    /// The per-sample scalars and the hidden term of the centring, from the phases of a batch of
    /// `cols` samples (with `v.mu` of each in `phases.mu_dots`) and the ordinary hidden bias
    /// gradient `dc`.
    fn plan(&self, phases: &Phases, cols: usize, lr: f32, dc: &[f32], plan: &mut CentringPlan) {
        let (mu, lambda) = (&self.visible, &self.hidden);
        let (nv, nh) = (mu.len(), lambda.len());
        let negative = &phases.negative;
        let sets: [(&[f32], &[f32], usize, f32); 2] = [
            (&phases.batch, &phases.positive_hidden, cols, 1.0 / cols as f32),
            (&negative.visible, &negative.hidden_probabilities, negative.cols, -1.0 / negative.cols as f32),
        ];
        let lambda_lambda: f32 = lambda.iter().map(|l| l * l).sum();
        let mu_mu: f32 = mu.iter().map(|m| m * m).sum();
        plan.hidden_term.clear();
        plan.hidden_term.resize(nh, 0.0);
        for (phase, (visible, hidden, n, weight)) in sets.into_iter().enumerate() {
            let (visible, hidden) = (visible[..nv * n].chunks_exact(nv), hidden[..nh * n].chunks_exact(nh));
            let along = &mut plan.along_lambda[phase];
            along.clear();
            let (mut total_lambda, mut total_mu) = (0f32, 0f32);
            let first = if phase == 0 { 0 } else { cols };
            // `v.mu` of each sample, computed by the pieces that produced the samples.
            let mu_dots = &phases.mu_dots[first..first + n];
            for ((_, h), &v_mu) in visible.zip(hidden).zip(mu_dots) {
                let along_lambda = weight * (dot(h, lambda) - lambda_lambda);
                let along_mu = weight * (v_mu - mu_mu);
                along.push(along_lambda);
                plan.hidden_term.iter_mut().zip(h).for_each(|(t, &x)| *t += along_mu * x);
                total_lambda += along_lambda;
                total_mu += along_mu;
            }
            plan.hidden_term.iter_mut().zip(lambda).for_each(|(t, l)| *t -= l * total_mu);
            plan.total_lambda[phase] = total_lambda;
        }
        plan.hidden_gradient.clear();
        plan.hidden_gradient.extend_from_slice(dc);
        plan.lr = lr;
    }

    /// [`Offsets::centre`] on visible units `first .. first + db.len()`: their columns of the
    /// step `velocity_weights` and their (ordinary, then centred) bias gradients `db`. With
    /// AVX-512 where the CPU has it (16 lanes instead of SSE2's 4; the same operations, so the
    /// same bits).
    fn centre_block(
        &self,
        phases: &Phases,
        plan: &CentringPlan,
        first: usize,
        velocity_weights: &mut [f32],
        db: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { self.centre_block_avx512(phases, plan, first, velocity_weights, db) };
        }
        self.centre_block_portable(phases, plan, first, velocity_weights, db);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn centre_block_avx512(
        &self,
        phases: &Phases,
        plan: &CentringPlan,
        first: usize,
        velocity_weights: &mut [f32],
        db: &mut [f32],
    ) {
        self.centre_block_portable(phases, plan, first, velocity_weights, db);
    }

    #[inline(always)]
    fn centre_block_portable(
        &self,
        phases: &Phases,
        plan: &CentringPlan,
        first: usize,
        velocity_weights: &mut [f32],
        db: &mut [f32],
    ) {
        let (mu, lambda) = (&self.visible[first..first + db.len()], &self.hidden);
        let nh = lambda.len();
        let (lr, dc) = (plan.lr, &plan.hidden_gradient);
        for ((row, &m), &b) in velocity_weights.chunks_mut(nh).zip(mu).zip(db.iter()) {
            for ((w, &c), &l) in row.iter_mut().zip(dc.iter()).zip(lambda) {
                *w -= lr * (m * c + b * l);
            }
        }
        // Blocks are at most GRADIENT_BLOCK_UNITS wide: the term lives on the stack, and a whole
        // block's in registers (see `column_mean_difference_rows`).
        let term = if db.len() == GRADIENT_BLOCK_UNITS {
            self.visible_term::<GRADIENT_BLOCK_UNITS>(phases, plan, first)
        } else {
            let mut term = [0f32; GRADIENT_BLOCK_UNITS];
            self.add_visible_term(phases, plan, first, &mut term[..db.len()]);
            term
        };
        db.iter_mut().zip(term.iter()).for_each(|(b, &t)| *b -= t);
    }

    /// [`Offsets::add_visible_term`] of `N` units from `first`, from 0, on a fixed-size array.
    #[inline(always)]
    fn visible_term<const N: usize>(&self, phases: &Phases, plan: &CentringPlan, first: usize) -> [f32; N] {
        let mut term = [0f32; N];
        self.add_visible_term(phases, plan, first, &mut term);
        term
    }

    /// Adds `dW_c mu`'s visible term of units `first .. first + term.len()` to `term`: each
    /// phase's samples weighted by their `along_lambda`, less `mu` times their total.
    #[inline(always)]
    fn add_visible_term(&self, phases: &Phases, plan: &CentringPlan, first: usize, term: &mut [f32]) {
        let (nv, units) = (self.visible.len(), term.len());
        let mu = &self.visible[first..first + units];
        let negative = &phases.negative;
        let sets: [(&[f32], usize); 2] =
            [(&phases.batch, plan.along_lambda[0].len()), (&negative.visible, negative.cols)];
        for (phase, (visible, n)) in sets.into_iter().enumerate() {
            for (v, &along) in visible[..nv * n].chunks_exact(nv).zip(&plan.along_lambda[phase]) {
                term.iter_mut().zip(&v[first..first + units]).for_each(|(t, &x)| *t += along * x);
            }
            term.iter_mut().zip(mu).for_each(|(t, m)| *t -= m * plan.total_lambda[phase]);
        }
    }
}

/// The statistics of one batch's positive and negative phases, in buffers reused by every batch.
#[derive(Clone, Debug)]
struct Phases {
    /// The gathered batch `v0`, `n_visible x B`.
    batch: Vec<f32>,
    /// `p(h | v0)`, `n_hidden x B`.
    positive_hidden: Vec<f32>,
    /// CD: chains restarted at each batch. PCD: the persistent chains.
    negative: ChainBuffers,
    /// Whether `negative` holds persistent chains that have been started.
    chains_started: bool,
    /// Parallel tempering: the tempered chains, whose coldest chains are copied to `negative`.
    tempered: Option<TemperedChains>,
    /// The model's weights laid out for the serial kernels of the phases run in pieces,
    /// refreshed before each batch's phases, or by the step's tasks (see `kernels_current`).
    kernels: SkinnyWeights,
    /// Whether the last step's tasks refreshed `kernels` with the parameters they stepped to, so
    /// that the next phases need not (taken, and so cleared, by the phases).
    kernels_current: bool,
    /// `positive_hidden` and the chains' hidden probabilities in rows padded for the kernels.
    padded_positive: Vec<f32>,
    padded_negative: Vec<f32>,
    /// Centred training in pieces: `v.mu` of each sample of the batch, then of each chain,
    /// computed by the pieces (see [`CentringPlan`]).
    mu_dots: Vec<f32>,
}

impl Phases {
    /// `out = beta * out + scale * (ph0 v0^T / B - phk vk^T / C)`: the weight gradient of the
    /// phases of a batch of `cols` samples, scaled and accumulated into `out` (`n_hidden x
    /// n_visible`).
    fn accumulate_weight_gradient(&self, cols: usize, scale: f32, beta: f32, out: &mut [f32]) {
        let (nv, nh) = (self.batch.len() / cols, self.positive_hidden.len() / cols);
        let chains = self.negative.cols;
        // out (n_hidden x n_visible) = beta out + scale/B * ph0 (n_hidden x B) * v0^T (B x n_visible)
        gemm(
            scale / cols as f32,
            Operand::new(&self.positive_hidden, nh, cols),
            Operand::new(&self.batch, nv, cols).t(),
            beta,
            out,
        );
        // out -= scale/C * phk (n_hidden x C) * vk^T (C x n_visible)
        gemm(
            -scale / chains as f32,
            Operand::new(&self.negative.hidden_probabilities, nh, chains),
            Operand::new(&self.negative.visible, nv, chains).t(),
            1.0,
            out,
        );
    }

    /// [`Phases::accumulate_weight_gradient`] on visible units `first .. first + out.len() /
    /// n_hidden` only (`out` holds their columns), with the bits the whole product gives them
    /// when the columns are a block of [`crate::linalg::block_width`].
    fn accumulate_weight_gradient_columns(&self, cols: usize, scale: f32, beta: f32, out: &mut [f32], first: usize) {
        let (nv, nh) = (self.batch.len() / cols, self.positive_hidden.len() / cols);
        let chains = self.negative.cols;
        let positive = (Operand::new(&self.positive_hidden, nh, cols), Operand::new(&self.batch, nv, cols).t());
        gemm_serial_columns(scale / cols as f32, positive.0, positive.1, beta, out, first);
        let negative = (
            Operand::new(&self.negative.hidden_probabilities, nh, chains),
            Operand::new(&self.negative.visible, nv, chains).t(),
        );
        gemm_serial_columns(-scale / chains as f32, negative.0, negative.1, 1.0, out, first);
    }

    /// [`Phases::accumulate_weight_gradient`] and the visible bias gradient together, in tasks of
    /// [`GRADIENT_BLOCK_UNITS`] visible units (serial kernels on each task's columns), and the
    /// hidden bias gradient: one fork for what would otherwise be two split products and a serial
    /// pass. Every weight is one chain of multiply-adds over the samples in order, whatever the
    /// tasks, so the result does not depend on the number of threads. Each task then takes its
    /// units' steps (`step`) and, when asked, refreshes its tile of the kernels' layouts with
    /// the stepped parameters (`kernels_current`), as the serial passes after the fork did.
    #[allow(clippy::too_many_arguments)]
    fn gradients_in_blocks(
        &mut self,
        cols: usize,
        scale: f32,
        beta: f32,
        out: &mut [f32],
        visible: &mut [f32],
        hidden: &mut [f32],
        centring: Option<(&Offsets, &mut CentringPlan)>,
        step: StepInTasks<'_>,
        workers: Workers<'_>,
    ) {
        let (nv, nh) = (self.batch.len() / cols, self.positive_hidden.len() / cols);
        let chains = self.negative.cols;
        let hp = self.kernels.hidden_pad();
        crate::skinny::pad_hidden(&self.positive_hidden, nh, hp, cols, &mut self.padded_positive);
        crate::skinny::pad_hidden(&self.negative.hidden_probabilities, nh, hp, chains, &mut self.padded_negative);
        let positive = PhaseStatistics {
            visible: &self.batch,
            hidden_padded: &self.padded_positive,
            cols,
            scale: scale / cols as f32,
        };
        let negative = PhaseStatistics {
            visible: &self.negative.visible,
            hidden_padded: &self.padded_negative,
            cols: chains,
            scale: -scale / chains as f32,
        };
        // The hidden bias gradient first: centring's weight correction needs it in every task.
        column_mean_difference(&self.positive_hidden, cols, &self.negative.hidden_probabilities, chains, hidden);
        let centring = centring.map(|(offsets, plan)| {
            offsets.plan(self, cols, scale, hidden, plan);
            (offsets, &*plan)
        });
        // The layouts leave `self` while the tasks read the phases and refresh their tiles.
        let mut kernels = std::mem::take(&mut self.kernels);
        let refresh = step.refresh_kernels && kernels.has_shape(nv, nh);
        let mut tiles = kernels.tiles_mut();
        let phases = &*self;
        let (biases, decay) = (Sgd { rate: scale, momentum: beta, decay: 0.0 }, step.decay);
        let blocks: Vec<Mutex<_>> = out
            .chunks_mut(nh * GRADIENT_BLOCK_UNITS)
            .zip(visible.chunks_mut(GRADIENT_BLOCK_UNITS))
            .zip(step.weights.chunks_mut(nh * GRADIENT_BLOCK_UNITS))
            .zip(step.visible_bias.chunks_mut(GRADIENT_BLOCK_UNITS))
            .zip(step.visible_bias_velocity.chunks_mut(GRADIENT_BLOCK_UNITS))
            .map(|((((w, db), weights), b), vb)| Mutex::new((w, db, weights, b, vb, tiles.next().filter(|_| refresh))))
            .collect();
        workers.for_each(blocks.len(), &|i| {
            let mut block = blocks[i].lock().unwrap_or_else(|e| e.into_inner());
            let (w, db, weights, b, vb, tile) = &mut *block;
            let first = i * GRADIENT_BLOCK_UNITS;
            let units = db.len();
            prefetch_units(&phases.batch, nv, cols, first, units);
            prefetch_units(&phases.negative.visible, nv, chains, first, units);
            crate::skinny::weight_gradient_columns(nv, nh, hp, positive, negative, beta, first, w);
            column_mean_difference_rows(&phases.batch, cols, &phases.negative.visible, chains, nv, first, db);
            if let Some((offsets, plan)) = centring {
                offsets.centre_block(phases, plan, first, w, db);
            }
            // The steps of `Trainer::step`, element by element: the weights' (with the decay)
            // and the visible biases' (none).
            step_weights(weights, w, scale, decay);
            biases.step(b, vb, db, 1.0);
            if let Some(tile) = tile {
                tile.refresh(weights, b);
            }
        });
        drop(blocks);
        drop(tiles);
        self.kernels = kernels;
        self.kernels_current = refresh;
        if let Some((_, plan)) = centring {
            hidden.iter_mut().zip(&plan.hidden_term).for_each(|(c, &t)| *c -= t);
        }
    }

    /// `v.mu` of each of the `cols` samples of the batch, then of each chain, into `mu_dots`, as
    /// the pieces take them.
    fn take_mu_dots(&mut self, cols: usize, mu: &[f32]) {
        let (nv, chains) = (mu.len(), self.negative.cols);
        let samples =
            self.batch[..nv * cols].chunks_exact(nv).chain(self.negative.visible[..nv * chains].chunks_exact(nv));
        self.mu_dots.clear();
        self.mu_dots.extend(samples.map(|v| dot(v, mu)));
    }

    /// The bias gradients of the phases of a batch of `cols` samples.
    fn bias_gradients(&self, cols: usize, visible: &mut [f32], hidden: &mut [f32]) {
        let chains = self.negative.cols;
        column_mean_difference(&self.batch, cols, &self.negative.visible, chains, visible);
        column_mean_difference(&self.positive_hidden, cols, &self.negative.hidden_probabilities, chains, hidden);
    }
}

/// What the gradient's tasks of a model run in pieces step after their gradients (see
/// [`Phases::gradients_in_blocks`]).
struct StepInTasks<'a> {
    /// The weights (`n_hidden x n_visible`), stepped by their velocity with `decay`.
    weights: &'a mut [f32],
    /// The visible biases and their velocity.
    visible_bias: &'a mut [f32],
    visible_bias_velocity: &'a mut [f32],
    decay: f32,
    /// Whether the tasks refresh the kernels' layouts too: nothing changes the parameters after
    /// the step but the hidden biases, which the caller refreshes.
    refresh_kernels: bool,
}

/// Asks the processor for the cache lines of units `first..first + units` of each of the
/// `samples` samples in `visible` (`n_visible` values apart), ahead of a gradient task that reads
/// them. The phases' tasks have just written the samples on whichever core ran them, and a run of
/// 32 units in each sample lies 784 values from the next, too far apart for the hardware's
/// prefetchers: without the hint, each line was a demand miss, half of them to the other core's
/// cache, and the gradient's tasks did not get faster on two threads (16-hidden MNIST job, 10,000
/// rows, 30 epochs, two threads, four alternating rounds: updates 1.22 s without, 1.16 s with,
/// medians). A hint changes no value.
fn prefetch_units(visible: &[f32], n_visible: usize, samples: usize, first: usize, units: usize) {
    for sample in visible[..n_visible * samples].chunks_exact(n_visible) {
        crate::linalg::prefetch_lines(&sample[first..first + units]);
    }
}

/// The weights' step from their velocity (the momentum and the gradient already in it): the decay
/// joins the velocity, which the weights then take.
fn step_weights(weights: &mut [f32], velocity: &mut [f32], lr: f32, decay: f32) {
    for (w, v) in weights.iter_mut().zip(velocity.iter_mut()) {
        *v -= lr * decay * *w;
        *w += *v;
    }
}

/// Training has diverged when a weight or bias grows beyond this: an activation of ±1000 is
/// saturated in every unit kind (a sigmoid reaches 1 in f32 at about 17), so such a model has
/// stopped learning (a learning rate of 1000 drives hidden biases to about -1400 in one epoch).
const MAX_PARAMETER_MAGNITUDE: f32 = 1000.0;

impl Trainer {
    /// A trainer for an existing model (continued training); the model's shape must match.
    pub fn new(params: ValidParams, rbm: Rbm) -> Result<Self> {
        let streams = RandomStreams::new(params.seed);
        Trainer::with_streams(params, rbm, streams)
    }

    /// [`Trainer::new`] going on with `streams` (those that initialised the model).
    fn with_streams(params: ValidParams, rbm: Rbm, streams: RandomStreams) -> Result<Self> {
        let layer = layer_for(&params.visible, rbm.n_visible())?;
        if rbm.n_hidden() != params.n_hidden || layer != *rbm.layer() {
            return Err(RbmError::ShapeMismatch {
                what: "model for training",
                expected: format!("visible units {} and {} hidden units", layer.describe(), params.n_hidden),
                found: format!("visible units {} and {} hidden units", rbm.layer().describe(), rbm.n_hidden()),
            });
        }
        let (nv, nh) = (rbm.n_visible(), rbm.n_hidden());
        let cols = params.persistent_chains.unwrap_or(params.batch_size);
        // The batch and chain buffers, checked before they are allocated.
        let widest = cols.max(params.batch_size);
        crate::limits::check_matrix("one batch or its chains (batch size x visible units)", widest, nv)?;
        crate::limits::check_matrix("one batch's hidden units (batch size x hidden units)", widest, nh)?;
        Ok(Trainer {
            streams,
            gradient: Gradient::zeros(nv, nh),
            velocity: Gradient::zeros(nv, nh),
            phases: Phases {
                batch: Vec::with_capacity(nv * params.batch_size),
                positive_hidden: Vec::with_capacity(nh * params.batch_size),
                negative: ChainBuffers::new(nv, nh, cols),
                chains_started: false,
                tempered: None,
                kernels: SkinnyWeights::default(),
                kernels_current: false,
                padded_positive: Vec::new(),
                padded_negative: Vec::new(),
                mu_dots: Vec::new(),
            },
            hidden_activity: vec![0.0; nh],
            offsets: None,
            centring_plan: CentringPlan::default(),
            log_scale: params.learn_variance.then(|| vec![0.0; nv]),
            variance_input: Vec::new(),
            params,
            rbm,
        })
    }

    /// A trainer for a new model initialised as in Hinton's guide from `data` (visible vectors,
    /// `n_visible x n_samples`): `W ~ N(0, weight_scale^2)`, hidden biases 0, visible biases from
    /// each unit's data mean by its kind (`log(p / (1 - p))` clamped for Bernoulli units, the mean
    /// for Gaussian units, the log of the smoothed level frequency for softmax groups).
    pub fn initialise(params: ValidParams, data: &DMatrix<f32>) -> Result<Self> {
        let layer = layer_for(&params.visible, data.nrows())?;
        crate::model::check_values(&layer, data)?;
        Self::initialise_checked(params, layer, data, &crate::model::row_means(data))
    }

    /// [`Trainer::initialise`] on data already checked against `layer`, whose units' means
    /// ([`crate::model::row_means`]) are `means`.
    pub(crate) fn initialise_checked(
        params: ValidParams,
        layer: VisibleLayer,
        data: &DMatrix<f32>,
        means: &[f64],
    ) -> Result<Self> {
        let (nv, nh) = (data.nrows(), params.n_hidden);
        let initial_bias = crate::model::initial_biases_from(&layer, means, data.ncols());
        let mut rbm = Rbm::zeros(layer, nh)?;
        let mut streams = RandomStreams::new(params.seed);
        {
            let (weights, visible_bias, hidden_bias) = rbm.parameters_mut();
            *weights = crate::rng::normal_weights(nh, nv, params.weight_scale as f32, &mut streams.serial());
            visible_bias.as_mut_slice().copy_from_slice(&initial_bias);
            if params.centered {
                // The centred model starts at b = initial biases, c = 0 (offsets mu = data means,
                // lambda = 0.5): in the ordinary parameters b_u = b - W lambda, c_u = -W^T mu.
                let offsets = Offsets::from_means(means, nh);
                let (hidden_bias, w) = (hidden_bias.as_mut_slice(), weights.as_slice());
                for (i, b) in visible_bias.iter_mut().enumerate() {
                    let column = &w[i * nh..(i + 1) * nh];
                    *b -= column.iter().zip(&offsets.hidden).map(|(w, l)| w * l).sum::<f32>();
                    let mu = offsets.visible[i];
                    hidden_bias.iter_mut().zip(column).for_each(|(c, w)| *c -= w * mu);
                }
            }
        }
        Trainer::with_streams(params, rbm, streams)
    }

    /// The model as trained so far.
    pub fn rbm(&self) -> &Rbm {
        &self.rbm
    }

    /// Estimates the log-likelihood gradient on `batch` (`n_visible x B`) with CD-k or PCD-k,
    /// advancing the persistent chains (Gibbs chains: parallel tempering starts with training).
    /// It is the plain gradient: no weight decay or sparsity term, no centring, and no learned
    /// variance (the batch is taken as the model's units).
    pub fn estimate_gradient(&mut self, batch: &DMatrix<f32>) -> Result<&Gradient> {
        self.rbm.check_visible_rows("batch", batch.nrows())?;
        if batch.ncols() == 0 {
            return Err(RbmError::EmptyData);
        }
        self.phases.batch.clear();
        self.phases.batch.extend_from_slice(batch.as_slice());
        self.compute_gradient(batch.ncols());
        Ok(&self.gradient)
    }

    /// Starts the persistent chains at (cyclically repeated) columns of `data`.
    fn start_chains(&mut self, data: &DMatrix<f32>, order: &[usize]) {
        let nv = data.nrows();
        let values = data.as_slice();
        self.phases.negative.start_at(|c| {
            let s = order[c % order.len()];
            &values[s * nv..(s + 1) * nv]
        });
        self.phases.chains_started = true;
    }

    /// Whether a batch of `cols` samples is small enough to run its phases in pieces of samples,
    /// each on one thread with serial products, rather than splitting each product across the
    /// threads (whose forks and joins cost more than such small products).
    fn phases_in_pieces(&self, cols: usize) -> bool {
        // The chains of this batch: CD's are the batch itself. (Not the chain buffers' current
        // size, which CD's phases change: the phases and the step of a short last batch then
        // disagreed, and the step padded with kernels never laid out, a panic.)
        let chains = self.params.persistent_chains.unwrap_or(cols);
        self.phases.tempered.is_none()
            && self.rbm.n_hidden() * self.rbm.n_visible() * cols.max(chains) < PIECES_MAX_WORK
    }

    /// [`Trainer::run_phases`] in pieces of [`PIECE_SAMPLES`] samples and chains, in parallel.
    /// Every sample's products and draws are the same whatever the pieces (boundaries on the
    /// product kernel's tiles, draws from per-chain generators), so the result does not depend on
    /// the number of threads.
    fn run_phases_in_pieces(&mut self, cols: usize, rows: BatchRows<'_>, workers: Workers<'_>) {
        let (nv, nh) = (self.rbm.n_visible(), self.rbm.n_hidden());
        let rows = match rows {
            // PCD chains not yet started begin at the batch, which is then needed first.
            BatchRows::Gather { .. } if self.params.persistent_chains.is_some() && !self.phases.chains_started => {
                rows.copy_into(&mut self.phases.batch, nv);
                BatchRows::Copied
            }
            rows => rows,
        };
        let steps = self.params.gibbs_steps;
        let persistent = self.params.persistent_chains.is_some();
        let (seed, first_stream) = (self.streams.seed(), self.streams.claim());
        // The streams of the k steps' hidden and visible draws: 2k numbers from `first_stream`.
        for _ in 1..2 * steps {
            self.streams.claim();
        }
        let rbm = &self.rbm;
        let p = &mut self.phases;
        let refresh = |kernels: &mut SkinnyWeights| {
            kernels.refresh(rbm.weights().as_slice(), rbm.visible_bias().as_slice(), rbm.hidden_bias().as_slice());
        };
        if std::mem::take(&mut p.kernels_current) {
            // Tests (debug builds) check the step's refresh against a whole one at every batch.
            debug_assert!(
                p.kernels == {
                    let mut whole = SkinnyWeights::default();
                    refresh(&mut whole);
                    whole
                },
                "the step's tasks left the kernels' layouts other than a refresh would"
            );
        } else {
            refresh(&mut p.kernels);
        }
        p.positive_hidden.resize(nh * cols, 0.0);
        let refresh_chains = if persistent {
            if !p.chains_started {
                let batch = &p.batch;
                p.negative.start_at(|c| &batch[(c % cols) * nv..(c % cols + 1) * nv]);
                p.chains_started = true;
            }
            p.negative.take_hidden_refresh(self.params.sampler == Sampler::KeptHidden)
        } else {
            p.negative.resize(nv, nh, cols);
            false
        };
        let kernels = &p.kernels;
        let hidden_probabilities = |v: &[f32], h: &mut [f32]| {
            kernels.hidden_activations(v, v.len() / nv, h);
            crate::linalg::sigmoid_in_place(h);
        };
        // Each piece copies its own rows of the batch from the data first (when they are given),
        // so the copy, which waits on memory, is spread over the threads without a fork of its own.
        // Centred training: each piece also takes `v.mu` of its samples (or final chain states).
        let chains = p.negative.cols;
        p.mu_dots.resize(cols + chains, 0.0);
        let (positive_dots, negative_dots) = p.mu_dots.split_at_mut(cols);
        let mu = self.offsets.as_ref().map(|o| o.visible.as_slice());
        let take_dots = |v: &[f32], dots: &mut [f32]| {
            if let Some(mu) = mu {
                dots.iter_mut().zip(v.chunks_exact(nv)).for_each(|(d, v)| *d = dot(v, mu));
            }
        };
        // Each task takes its piece once; the locks are never contended.
        let positive = p.batch[..nv * cols]
            .chunks_mut(nv * PIECE_SAMPLES)
            .zip(p.positive_hidden.chunks_mut(nh * PIECE_SAMPLES))
            .zip(positive_dots.chunks_mut(PIECE_SAMPLES))
            .enumerate()
            .map(|(i, ((v, h), d))| (i * PIECE_SAMPLES, v, h, d));
        let gather = |first: usize, v: &mut [f32]| rows.copy_rows(first, v, nv);
        let negative =
            p.negative.pieces(nv, nh, PIECE_SAMPLES).into_iter().zip(negative_dots.chunks_mut(PIECE_SAMPLES));
        if persistent {
            // The chains' hidden probabilities are refreshed under the current parameters first
            // (unless kept from the last update). The chains' tasks (the longer ones) come first,
            // so that the short ones fill in.
            let (negative, positive): (Vec<_>, Vec<_>) =
                (negative.map(Mutex::new).collect(), positive.map(Mutex::new).collect());
            workers.for_each(negative.len() + positive.len(), &|i| {
                if let Some(piece) = negative.get(i) {
                    let mut piece = piece.lock().unwrap_or_else(|e| e.into_inner());
                    let (piece, d) = &mut *piece;
                    if refresh_chains {
                        hidden_probabilities(piece.visible, piece.hidden_probabilities);
                    }
                    piece.run(rbm, kernels, steps, seed, first_stream);
                    take_dots(piece.visible, d);
                } else {
                    let mut piece = positive[i - negative.len()].lock().unwrap_or_else(|e| e.into_inner());
                    let (first, v, h, d) = &mut *piece;
                    gather(*first, v);
                    hidden_probabilities(v, h);
                    take_dots(v, d);
                }
            });
        } else {
            // CD: each piece's chains start at its own samples and their hidden probabilities.
            let pieces: Vec<_> = positive.zip(negative).map(Mutex::new).collect();
            workers.for_each(pieces.len(), &|i| {
                let mut piece = pieces[i].lock().unwrap_or_else(|e| e.into_inner());
                let ((first, v, h, d), (piece, nd)) = &mut *piece;
                gather(*first, v);
                hidden_probabilities(v, h);
                take_dots(v, d);
                piece.visible.copy_from_slice(v);
                piece.hidden_probabilities.copy_from_slice(h);
                piece.run(rbm, kernels, steps, seed, first_stream);
                take_dots(piece.visible, nd);
            });
        }
    }

    /// Runs the positive phase on the batch in `phases.batch` (`cols` samples) and the negative
    /// phase (k Gibbs steps from the batch for CD, from the persistent chains for PCD).
    fn run_phases(&mut self, cols: usize, rows: BatchRows<'_>, workers: Workers<'_>) {
        if self.phases_in_pieces(cols) {
            return self.run_phases_in_pieces(cols, rows, workers);
        }
        rows.copy_into(&mut self.phases.batch, self.rbm.n_visible());
        let (nv, nh) = (self.rbm.n_visible(), self.rbm.n_hidden());
        let p = &mut self.phases;
        p.positive_hidden.resize(nh * cols, 0.0);
        self.rbm.hidden_probabilities_into(&p.batch, cols, &mut p.positive_hidden);
        if self.params.persistent_chains.is_some() {
            if !p.chains_started {
                // Chains not started from data (a gradient asked for directly): start at the batch.
                let batch = &p.batch;
                p.negative.start_at(|c| &batch[(c % cols) * nv..(c % cols + 1) * nv]);
                p.chains_started = true;
            }
            if let Some(tempered) = &mut p.tempered {
                tempered.advance_checked(&self.rbm, self.params.gibbs_steps);
                let (visible, hidden) = tempered.cold();
                p.negative.visible.copy_from_slice(visible);
                p.negative.hidden_probabilities.copy_from_slice(hidden);
                return;
            }
            if p.negative.take_hidden_refresh(self.params.sampler == Sampler::KeptHidden) {
                p.negative.refresh_hidden(&self.rbm);
            }
        } else {
            p.negative.resize(nv, nh, cols);
            // The first Gibbs step draws the chains' visible values afresh: their start at the
            // batch is only read when there is no step.
            if self.params.gibbs_steps == 0 {
                p.negative.visible.copy_from_slice(&p.batch);
            }
            p.negative.hidden_probabilities.copy_from_slice(&p.positive_hidden);
        }
        p.negative.run(&self.rbm, self.params.gibbs_steps, &mut self.streams);
    }

    /// Fills `self.gradient` from the batch in `phases.batch` (`cols` samples).
    fn compute_gradient(&mut self, cols: usize) {
        self.run_phases(cols, BatchRows::Copied, Workers::Pool);
        let g = &mut self.gradient;
        self.phases.accumulate_weight_gradient(cols, 1.0, 0.0, g.weights.as_mut_slice());
        self.phases.bias_gradients(cols, g.visible_bias.as_mut_slice(), g.hidden_bias.as_mut_slice());
    }

    /// One parameter update on the batch in `phases.batch`. The weight gradient goes straight
    /// into the velocity (`velocity = momentum * velocity + lr * gradient` as the GEMMs' beta and
    /// alpha), which saves a pass over a weight-sized buffer per batch; the decay and the step
    /// follow [`Sgd`]'s rule.
    fn update(&mut self, cols: usize, rows: BatchRows<'_>, momentum: f32, rate: f32, workers: Workers<'_>) {
        self.run_phases(cols, rows, workers);
        self.step(cols, momentum, rate, workers);
    }

    /// The parameter update from the phases already run on a batch of `cols` samples, with the
    /// learning rate multiplied by `rate` (the annealing factor).
    fn step(&mut self, cols: usize, momentum: f32, rate: f32, workers: Workers<'_>) {
        let lr = self.params.learning_rate as f32 * rate;
        let decay = self.params.weight_decay as f32;
        // Set again below only if this step's tasks refresh the kernels.
        self.phases.kernels_current = false;
        // The variance's gradient from the parameters before this update, applied after it.
        let scale_gradient = if self.log_scale.is_some() { Some(self.log_variance_gradient(cols)) } else { None };
        let in_blocks = self.phases_in_pieces(cols);
        let g = &mut self.gradient;
        let (db, dc) = (g.visible_bias.as_mut_slice(), g.hidden_bias.as_mut_slice());
        // The hidden offsets slide first (nothing before centring reads them).
        if let Some(offsets) = &mut self.offsets {
            offsets.follow(&self.phases.positive_hidden, cols);
        }
        let (nv, nh) = (self.rbm.n_visible(), self.rbm.n_hidden());
        // Large models whose gradient splits into column blocks step their weights in its tasks.
        let weight_blocks = if in_blocks { None } else { crate::linalg::block_width(nv, nh) };
        if in_blocks {
            // Centring inside the gradient's tasks, each on its visible units, and then the
            // weights' and visible biases' steps; the kernels' refresh too unless the variances'
            // step rescales the parameters afterwards.
            let centring = self.offsets.as_ref().map(|offsets| (offsets, &mut self.centring_plan));
            let velocity = self.velocity.weights.as_mut_slice();
            let (weights, visible_bias, _) = self.rbm.parameters_mut();
            let step = StepInTasks {
                weights: weights.as_mut_slice(),
                visible_bias: visible_bias.as_mut_slice(),
                visible_bias_velocity: self.velocity.visible_bias.as_mut_slice(),
                decay,
                refresh_kernels: scale_gradient.is_none(),
            };
            self.phases.gradients_in_blocks(cols, lr, momentum, velocity, db, dc, centring, step, workers);
        } else if let Some(width) = weight_blocks {
            // One task per block of visible units (blocks of `linalg::block_width`, on which the
            // columns of a product have the whole product's bits): its columns of the gradient's
            // two products, their centring and the weight step, while they are in this core's
            // cache, in one fork. The same arithmetic, element by element, as the products,
            // `Offsets::centre` and the step of the branch below. (Models in this branch run on
            // the pool, not a spinning team: rayon directly.)
            self.phases.bias_gradients(cols, db, dc);
            let centring = self.offsets.as_ref().map(|offsets| {
                self.phases.take_mu_dots(cols, &offsets.visible);
                offsets.plan(&self.phases, cols, lr, dc, &mut self.centring_plan);
                (offsets, &self.centring_plan)
            });
            let phases = &self.phases;
            let weights = self.rbm.parameters_mut().0.as_mut_slice();
            let velocity = self.velocity.weights.as_mut_slice();
            weights
                .par_chunks_mut(nh * width)
                .zip(velocity.par_chunks_mut(nh * width))
                .zip(db.par_chunks_mut(width))
                .enumerate()
                .for_each(|(i, ((weights, velocity), db))| {
                    let first = i * width;
                    phases.accumulate_weight_gradient_columns(cols, lr, momentum, velocity, first);
                    if let Some((offsets, plan)) = centring {
                        for (k, (velocity, db)) in velocity
                            .chunks_mut(nh * GRADIENT_BLOCK_UNITS)
                            .zip(db.chunks_mut(GRADIENT_BLOCK_UNITS))
                            .enumerate()
                        {
                            offsets.centre_block(phases, plan, first + k * GRADIENT_BLOCK_UNITS, velocity, db);
                        }
                    }
                    step_weights(weights, velocity, lr, decay);
                });
            if let Some((_, plan)) = centring {
                dc.iter_mut().zip(&plan.hidden_term).for_each(|(c, &t)| *c -= t);
            }
        } else {
            self.phases.accumulate_weight_gradient(cols, lr, momentum, self.velocity.weights.as_mut_slice());
            self.phases.bias_gradients(cols, db, dc);
            if let Some(offsets) = &self.offsets {
                self.phases.take_mu_dots(cols, &offsets.visible);
                let (phases, plan) = (&self.phases, &mut self.centring_plan);
                offsets.centre(phases, plan, cols, lr, self.velocity.weights.as_mut_slice(), db, dc);
            }
        }
        if let Some(sparsity) = self.params.sparsity {
            let (target, cost) = (sparsity.target as f32, sparsity.cost as f32);
            let positive = &self.phases.positive_hidden;
            for (j, q) in self.hidden_activity.iter_mut().enumerate() {
                let batch_mean = (0..cols).map(|s| positive[s * nh + j]).sum::<f32>() / cols as f32;
                *q = 0.9 * *q + 0.1 * batch_mean;
                self.gradient.hidden_bias[j] -= cost * (*q - target);
            }
        }
        let (weights, visible_bias, hidden_bias) = self.rbm.parameters_mut();
        if weight_blocks.is_none() && !in_blocks {
            // In tasks of the batch's workers (a spinning team's helpers take no other work).
            let chunks: Vec<Mutex<(&mut [f32], &mut [f32])>> = weights
                .as_mut_slice()
                .chunks_mut(ELEMENTWISE_MIN_TASK)
                .zip(self.velocity.weights.as_mut_slice().chunks_mut(ELEMENTWISE_MIN_TASK))
                .map(Mutex::new)
                .collect();
            workers.for_each(chunks.len(), &|i| {
                let mut chunk = chunks[i].lock().unwrap_or_else(|e| e.into_inner());
                let (weights, velocity) = &mut *chunk;
                step_weights(weights, velocity, lr, decay);
            });
        }
        // Biases: no decay, and the gradients are already batch means (the visible ones of
        // models run in pieces were stepped by the gradient's tasks).
        let biases = Sgd { rate: lr, momentum, decay: 0.0 };
        let (g, v) = (&self.gradient, &mut self.velocity);
        if !in_blocks {
            biases.step(visible_bias.as_mut_slice(), v.visible_bias.as_mut_slice(), g.visible_bias.as_slice(), 1.0);
        }
        biases.step(hidden_bias.as_mut_slice(), v.hidden_bias.as_mut_slice(), g.hidden_bias.as_slice(), 1.0);
        if self.phases.kernels_current {
            self.phases.kernels.refresh_hidden_bias(hidden_bias.as_slice());
        }
        if let Some(gradient) = scale_gradient {
            self.step_scale(&gradient, lr);
        }
    }

    /// The range each learned standard deviation is kept in (in units of the standardised data:
    /// a conditional spread from 1/20 to twice the column's own). A constant column runs to the
    /// lower end instead of to zero, where `v / sigma^2` and the gradients would blow up.
    pub const SIGMA_RANGE: (f32, f32) = (0.05, 2.0);

    /// The log-likelihood gradient with respect to each Gaussian unit's `z = log sigma^2`, in
    /// Cho, Ilin & Raiko's parameterisation (`b`, `W` fixed in the data's units, energy
    /// `(v - b)^2 / 2 sigma^2 - (v / sigma^2)^T W h`). With `u = v / sigma`, `b' = b / sigma`,
    /// `W' = W / sigma` (what the model holds) it is
    /// `<(u - b')^2 / 2 - u (W'^T h)>_data - <...>_model`, from the phases already run (`h` by
    /// its probabilities); 0 for other units.
    fn log_variance_gradient(&mut self, cols: usize) -> Vec<f32> {
        let (nv, nh) = (self.rbm.n_visible(), self.rbm.n_hidden());
        let b = self.rbm.visible_bias().as_slice();
        let w = Operand::new(self.rbm.weights().as_slice(), nh, nv);
        let negative = &self.phases.negative;
        let mut gradient = vec![0f32; nv];
        let gaussian: Vec<std::ops::Range<usize>> = self
            .rbm
            .layer()
            .ranges()
            .filter(|(kind, _)| *kind == crate::units::VisibleKind::Gaussian)
            .map(|(_, range)| range)
            .collect();
        let sets: [(&[f32], &[f32], usize, f64); 2] = [
            (&self.phases.batch, &self.phases.positive_hidden, cols, 1.0),
            (&negative.visible, &negative.hidden_probabilities, negative.cols, -1.0),
        ];
        let input = &mut self.variance_input;
        let mut moments = vec![-0.0f64; nv];
        for (visible, hidden, n, sign) in sets {
            input.resize(nv * n, 0.0);
            gemm(1.0, w.t(), Operand::new(&hidden[..nh * n], nh, n), 0.0, input);
            // Each unit's terms summed over the samples in order, walking the samples
            // (contiguous) rather than each unit's strided run through the batch.
            moments.fill(-0.0);
            for (v, a) in visible[..nv * n].chunks_exact(nv).zip(input.chunks_exact(nv)) {
                for range in &gaussian {
                    for i in range.clone() {
                        let u = v[i] as f64;
                        let centred = u - b[i] as f64;
                        moments[i] += 0.5 * centred * centred - u * a[i] as f64;
                    }
                }
            }
            for range in &gaussian {
                for i in range.clone() {
                    gradient[i] += (sign * (moments[i] / n as f64)) as f32;
                }
            }
        }
        gradient
    }

    /// Moves `log sigma` by `lr / 2` times the gradient of `log sigma^2`, within
    /// [`Self::SIGMA_RANGE`], then rescales everything held in the units `u = v / sigma` by
    /// `sigma_old / sigma_new` per unit (the visible biases and weights, their momentum, the
    /// persistent and tempered chains, the centring offsets) so that the model in the data's units
    /// changes only by its variance.
    fn step_scale(&mut self, gradient: &[f32], lr: f32) {
        let (low, high) = (Self::SIGMA_RANGE.0.ln(), Self::SIGMA_RANGE.1.ln());
        let log_scale = self.log_scale.as_mut().expect("learning the variance");
        let ratio: Vec<f32> = log_scale
            .iter_mut()
            .zip(gradient)
            .map(|(l, g)| {
                let old = *l;
                *l = (*l + 0.5 * lr * g).clamp(low, high);
                (old - *l).exp()
            })
            .collect();
        let nh = self.rbm.n_hidden();
        let scale_columns = |values: &mut [f32], rows: usize| {
            for (column, r) in values.chunks_mut(rows).zip(ratio.iter().cycle()) {
                column.iter_mut().for_each(|x| *x *= r);
            }
        };
        let scale_samples = |values: &mut [f32]| {
            for (x, r) in values.iter_mut().zip(ratio.iter().cycle()) {
                *x *= r;
            }
        };
        let (weights, visible_bias, _) = self.rbm.parameters_mut();
        scale_columns(weights.as_mut_slice(), nh);
        scale_samples(visible_bias.as_mut_slice());
        scale_columns(self.velocity.weights.as_mut_slice(), nh);
        scale_samples(self.velocity.visible_bias.as_mut_slice());
        scale_samples(&mut self.phases.negative.visible);
        if let Some(tempered) = &mut self.phases.tempered {
            tempered.scale_visible(&ratio);
        }
        if let Some(offsets) = &mut self.offsets {
            scale_samples(&mut offsets.visible);
        }
    }

    /// Each visible unit's current standard deviation, when it is learned.
    fn visible_scale(&self) -> Option<Vec<f32>> {
        let (low, high) = Self::SIGMA_RANGE;
        self.log_scale.as_ref().map(|l| l.iter().map(|x| x.exp().clamp(low, high)).collect())
    }

    /// `data` divided by the learned standard deviations (a copy; `data` itself when not learned).
    fn scaled<'d>(&self, data: &'d DMatrix<f32>) -> std::borrow::Cow<'d, DMatrix<f32>> {
        match self.visible_scale() {
            None => std::borrow::Cow::Borrowed(data),
            Some(scale) => {
                let mut out = data.clone();
                for mut column in out.column_iter_mut() {
                    column.iter_mut().zip(&scale).for_each(|(x, s)| *x /= s);
                }
                std::borrow::Cow::Owned(out)
            }
        }
    }

    /// The reconstruction error and mean free energy of `data` (as `reconstruction_error_of` and
    /// `mean_free_energy_of` compute them) for a model small enough to run in pieces: one pass
    /// per piece of [`MONITOR_PIECE_SAMPLES`] rows with the serial kernels, the hidden
    /// activations shared by both statistics. Per-sample terms are added in order, so the result
    /// does not depend on the number of threads.
    fn monitor_in_pieces(&mut self, data: &DMatrix<f32>) -> (f64, f64) {
        let rbm = &self.rbm;
        let kernels = &mut self.phases.kernels;
        kernels.refresh(rbm.weights().as_slice(), rbm.visible_bias().as_slice(), rbm.hidden_bias().as_slice());
        let kernels = &*kernels;
        let (nv, nh, layer) = (rbm.n_visible(), rbm.n_hidden(), rbm.layer());
        let per_sample: Vec<(f64, f64)> = data
            .as_slice()
            .par_chunks(nv * MONITOR_PIECE_SAMPLES)
            .flat_map_iter(|piece| {
                let cols = piece.len() / nv;
                let mut hidden = vec![0f32; nh * cols];
                kernels.hidden_activations(piece, cols, &mut hidden);
                let mut free_energies = vec![0f64; cols];
                rbm.free_energies_from_activations(piece, &hidden, &mut free_energies);
                crate::linalg::sigmoid_in_place(&mut hidden);
                let mut means = vec![0f32; nv * cols];
                kernels.visible_activations(&hidden, cols, &mut means);
                means.chunks_exact_mut(nv).for_each(|m| layer.means_of(m));
                let mut errors = vec![0f64; cols];
                crate::eval::squared_errors_into(piece, &means, nv, &mut errors);
                errors.into_iter().zip(free_energies)
            })
            .collect();
        let (errors, free_energies) = per_sample.iter().fold((0f64, 0f64), |(e, f), &(a, b)| (e + a, f + b));
        (errors / data.len().max(1) as f64, free_energies / data.ncols().max(1) as f64)
    }

    /// One epoch over `data` in a fresh random order.
    fn run_epoch(&mut self, data: &DMatrix<f32>, epoch: usize, workers: Workers<'_>) {
        let nv = self.rbm.n_visible();
        let mut order: Vec<usize> = (0..data.ncols()).collect();
        shuffle(&mut order, &mut self.streams.serial());
        if self.params.persistent_chains.is_some() && !self.phases.chains_started {
            self.start_chains(data, &order);
        }
        let momentum = self.params.momentum.at(epoch) as f32;
        let epochs = self.params.epochs;
        let rate = if self.params.anneal { (epochs - epoch.min(epochs)) as f32 / epochs as f32 } else { 1.0 };
        let mut scale = Vec::new();
        for indices in order.chunks(self.params.batch_size) {
            self.phases.batch.resize(nv * indices.len(), 0.0);
            if let Some(log_scale) = &self.log_scale {
                scale.clear();
                scale.extend(log_scale.iter().map(|x| (-x).exp()));
            }
            let rows = BatchRows::Gather {
                values: data.as_slice(),
                indices,
                scale: self.log_scale.is_some().then_some(scale.as_slice()),
            };
            self.update(indices.len(), rows, momentum, rate, workers);
        }
    }

    /// Trains on `data` (`n_visible x n_samples`) for the configured number of epochs, calling
    /// `on_epoch` after each; it may return `ControlFlow::Break(())` to stop early. Fails with
    /// [`RbmError::Diverged`] if the parameters stop being finite, rather than return such a model.
    pub fn fit(
        self,
        data: &DMatrix<f32>,
        validation: Option<&DMatrix<f32>>,
        on_epoch: impl FnMut(&EpochStats) -> ControlFlow<()>,
    ) -> Result<TrainingOutcome> {
        self.rbm.check_data(data)?;
        if let Some(v) = validation {
            self.rbm.check_data(v)?;
        }
        self.fit_checked(data, None, validation, on_epoch)
    }

    /// [`Trainer::fit`] on data already checked against the model's visible units, whose units'
    /// means ([`crate::model::row_means`]) are `data_means` when the caller has them.
    pub(crate) fn fit_checked(
        mut self,
        data: &DMatrix<f32>,
        data_means: Option<&[f64]>,
        validation: Option<&DMatrix<f32>>,
        mut on_epoch: impl FnMut(&EpochStats) -> ControlFlow<()>,
    ) -> Result<TrainingOutcome> {
        let monitor = {
            let mut order: Vec<usize> = (0..data.ncols()).collect();
            shuffle(&mut order, &mut self.streams.serial());
            order.truncate(self.params.monitor_rows.max(1));
            order.sort_unstable();
            data.select_columns(order.iter())
        };
        if let (Sampler::Tempering { temperatures }, Some(chains), None) =
            (self.params.sampler, self.params.persistent_chains, &self.phases.tempered)
        {
            // Started at random training rows; base rate from the training data; its own seed
            // drawn from the run's streams so its draws are independent of the trainer's.
            let mut order: Vec<usize> = (0..data.ncols()).collect();
            let mut rng = self.streams.serial();
            shuffle(&mut order, &mut rng);
            order.truncate(chains);
            let start = data.select_columns(order.iter());
            let base = crate::ais::base_rate(self.rbm.layer(), data)?;
            let betas = TemperedChains::even_betas(temperatures);
            let seed = rng.next_u64();
            self.phases.tempered = Some(TemperedChains::new(&self.rbm, &base, &betas, chains, &start, seed)?);
        }
        if self.params.centered && self.offsets.is_none() {
            let nh = self.rbm.n_hidden();
            self.offsets = Some(match data_means {
                Some(means) => Offsets::from_means(means, nh),
                None => Offsets::new(data, nh),
            });
        }
        let mut history = Vec::with_capacity(self.params.epochs);
        let mut stopped_early = false;
        for epoch in 0..self.params.epochs {
            let start = Instant::now();
            // The epoch runs on a worker of the pool: the many small parallel calls of a batch
            // are then forked and joined by workers, instead of each waking a worker and putting
            // this thread to sleep until it is done. A model run in pieces has the pool's other
            // workers spin between its steps as a team (see `team`).
            if self.phases_in_pieces(self.params.batch_size) {
                Team::run(|team| self.run_epoch(data, epoch, Workers::Team(team)));
            } else {
                rayon::scope(|_| self.run_epoch(data, epoch, Workers::Pool));
            }
            let seconds = start.elapsed().as_secs_f64();
            if self.rbm.check_finite().is_err() || self.rbm.largest_parameter() > MAX_PARAMETER_MAGNITUDE {
                return Err(RbmError::Diverged { epoch: epoch + 1 });
            }
            // With a learned variance the model sees `v / sigma`; free energies get the
            // log-Jacobian `sum log sigma` so they stay those of `v` (comparable across epochs).
            let jacobian: f64 = self.log_scale.as_ref().map_or(0.0, |l| l.iter().map(|&x| x as f64).sum());
            let (reconstruction_error, free_energy_train) = if self.phases_in_pieces(self.params.batch_size) {
                let scaled = match self.scaled(&monitor) {
                    std::borrow::Cow::Owned(scaled) => Some(scaled),
                    std::borrow::Cow::Borrowed(_) => None,
                };
                let (error, free_energy) = self.monitor_in_pieces(scaled.as_ref().unwrap_or(&monitor));
                (error, free_energy + jacobian)
            } else {
                let scaled = self.scaled(&monitor);
                let (error, free_energy) = reconstruction_error_and_mean_free_energy_of(&self.rbm, &scaled);
                (error, free_energy + jacobian)
            };
            let free_energy = |data: &DMatrix<f32>| mean_free_energy_of(&self.rbm, &self.scaled(data)) + jacobian;
            let stats = EpochStats {
                epoch: epoch + 1,
                seconds,
                reconstruction_error,
                free_energy_train,
                free_energy_validation: validation.map(free_energy),
                swap_acceptance: self.phases.tempered.as_ref().map(|t| t.swap_acceptance()),
            };
            if !(stats.free_energy_train.is_finite() && stats.reconstruction_error.is_finite()) {
                return Err(RbmError::Diverged { epoch: epoch + 1 });
            }
            let flow = on_epoch(&stats);
            history.push(stats);
            if flow.is_break() {
                stopped_early = epoch + 1 < self.params.epochs;
                break;
            }
        }
        let visible_scale = self.visible_scale();
        Ok(TrainingOutcome { rbm: self.rbm, history, stopped_early, visible_scale })
    }
}

/// The visible layer `visible` describes for data of `n_visible` rows (visible units).
fn layer_for(visible: &VisibleSpec, n_visible: usize) -> Result<VisibleLayer> {
    let layer = match visible {
        VisibleSpec::Uniform(_) => crate::columns::layer_of(&visible.columns(n_visible)?)?,
        VisibleSpec::Columns(columns) => crate::columns::layer_of(columns)?,
    };
    if layer.n_visible() != n_visible {
        return Err(RbmError::ShapeMismatch {
            what: "data for these visible units",
            expected: format!("{} rows, one per visible unit", layer.n_visible()),
            found: format!("{n_visible} rows"),
        });
    }
    Ok(layer)
}

/// `out[i] = mean over columns of a[i, :] - mean over columns of b[i, :]`, for column-major
/// `a` (`rows x a_cols`) and `b` (`rows x b_cols`) with `rows = out.len()`.
fn column_mean_difference(a: &[f32], a_cols: usize, b: &[f32], b_cols: usize, out: &mut [f32]) {
    let rows = out.len();
    column_mean_difference_rows(a, a_cols, b, b_cols, rows, 0, out);
}

/// [`column_mean_difference`] for rows `first..first + out.len()` of `rows`-row matrices.
fn column_mean_difference_rows(
    a: &[f32],
    a_cols: usize,
    b: &[f32],
    b_cols: usize,
    rows: usize,
    first: usize,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { column_mean_difference_rows_avx512(a, a_cols, b, b_cols, rows, first, out) };
    }
    column_mean_difference_rows_portable(a, a_cols, b, b_cols, rows, first, out);
}

/// [`column_mean_difference_rows`] with 8 f64 lanes instead of SSE2's 2 (the same operations in
/// the same order, so the same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn column_mean_difference_rows_avx512(
    a: &[f32],
    a_cols: usize,
    b: &[f32],
    b_cols: usize,
    rows: usize,
    first: usize,
    out: &mut [f32],
) {
    column_mean_difference_rows_portable(a, a_cols, b, b_cols, rows, first, out);
}

#[inline(always)]
fn column_mean_difference_rows_portable(
    a: &[f32],
    a_cols: usize,
    b: &[f32],
    b_cols: usize,
    rows: usize,
    first: usize,
    out: &mut [f32],
) {
    // In blocks of rows whose sums live on the stack; each row's sums are the same either way.
    // A whole block's sums are a fixed-size array, which the compiler keeps in registers (4 x 8
    // lanes): summed through memory, each sample's additions waited on the last sample's store.
    const BLOCK: usize = GRADIENT_BLOCK_UNITS;
    for (k, out) in out.chunks_mut(BLOCK).enumerate() {
        let start = first + k * BLOCK;
        let (mut sum_a, mut sum_b) = ([0f64; BLOCK], [0f64; BLOCK]);
        if out.len() == BLOCK {
            (sum_a, sum_b) = (block_row_sums(a, a_cols, rows, start), block_row_sums(b, b_cols, rows, start));
        } else {
            row_sums(a, a_cols, rows, start, &mut sum_a[..out.len()]);
            row_sums(b, b_cols, rows, start, &mut sum_b[..out.len()]);
        }
        for ((o, sa), sb) in out.iter_mut().zip(sum_a.iter()).zip(sum_b.iter()) {
            *o = (sa / a_cols as f64 - sb / b_cols as f64) as f32;
        }
    }
}

/// [`row_sums`] of `N` rows from `first`, from 0, returned: the same additions in the same
/// order, on an array of fixed size.
#[inline(always)]
fn block_row_sums<const N: usize>(m: &[f32], cols: usize, rows: usize, first: usize) -> [f64; N] {
    let mut sums = [0f64; N];
    for column in m[..rows * cols].chunks_exact(rows) {
        let run: &[f32; N] = column[first..first + N].try_into().expect("N rows from first");
        sums.iter_mut().zip(run).for_each(|(s, &x)| *s += x as f64);
    }
    sums
}

/// Adds to `sums` the sums over the `cols` columns of `m` (`rows x cols`) of rows
/// `first..first + sums.len()`, in f64: column by column (contiguous), each row's sum still taken
/// over the columns in order. A function rather than a closure, so that it is inlined into (and
/// compiled with the features of) [`column_mean_difference_rows_avx512`].
#[inline(always)]
fn row_sums(m: &[f32], cols: usize, rows: usize, first: usize, sums: &mut [f64]) {
    let len = sums.len();
    for column in m[..rows * cols].chunks_exact(rows) {
        sums.iter_mut().zip(&column[first..first + len]).for_each(|(s, &x)| *s += x as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{Momentum, TrainingParams};
    use crate::units::VisibleKind;

    /// The centred parameterisation's free energy, computed from its own energy
    /// `-(v - mu).b' - (h - lambda).c' - (v - mu)^T W (h - lambda)` with `b' = b + W lambda`,
    /// `c' = c + W^T mu`, differs from the ordinary model's by the same constant for every `v`:
    /// the converted model is the same distribution, so free energy and log Z need no special case.
    #[test]
    fn the_centred_parameterisation_has_the_ordinary_free_energy_up_to_a_constant() {
        let (nv, nh) = (6, 3);
        let params =
            TrainingParams { weight_scale: 0.8, centered: true, ..TrainingParams::new(VisibleKind::Bernoulli, nh) };
        let data = DMatrix::from_fn(nv, 8, |i, s| ((i + 2 * s) % 3 == 0) as u8 as f32);
        let trainer = Trainer::initialise(params.check().unwrap(), &data).unwrap();
        let rbm = &trainer.rbm;
        let mu: Vec<f64> = (0..nv).map(|i| 0.1 + 0.12 * i as f64).collect();
        let lambda: Vec<f64> = (0..nh).map(|j| 0.3 + 0.2 * j as f64).collect();
        let w = |j: usize, i: usize| rbm.weights()[(j, i)] as f64;
        let b_c: Vec<f64> =
            (0..nv).map(|i| rbm.visible_bias()[i] as f64 + (0..nh).map(|j| w(j, i) * lambda[j]).sum::<f64>()).collect();
        let c_c: Vec<f64> =
            (0..nh).map(|j| rbm.hidden_bias()[j] as f64 + (0..nv).map(|i| w(j, i) * mu[i]).sum::<f64>()).collect();
        let centred_free_energy = |v: &[f32]| {
            let visible: f64 = (0..nv).map(|i| (v[i] as f64 - mu[i]) * b_c[i]).sum();
            let hidden: f64 = (0..nh)
                .map(|j| {
                    let a = c_c[j] + (0..nv).map(|i| w(j, i) * (v[i] as f64 - mu[i])).sum::<f64>();
                    crate::linalg::softplus(a) - lambda[j] * a
                })
                .sum();
            -visible - hidden
        };
        let states = DMatrix::from_fn(nv, 1 << nv, |i, s| ((s >> i) & 1) as f32);
        let ordinary = rbm.free_energy(&states).unwrap();
        let differences: Vec<f64> =
            states.column_iter().zip(&ordinary).map(|(v, f)| centred_free_energy(v.as_slice()) - f).collect();
        let spread = differences.iter().fold(f64::NEG_INFINITY, |m, &d| m.max(d))
            - differences.iter().fold(f64::INFINITY, |m, &d| m.min(d));
        assert!(spread < 1e-5, "the difference varies by {spread} over the states");
        assert!(differences[0].abs() > 1e-3, "a constant that is not zero: the test compares two formulas");
    }

    /// One centred step, done by the trainer in the ordinary parameters, equals the step done by
    /// hand in the centred parameterisation and mapped back: `W_c = W`, `b_c = b + W lambda`,
    /// `c_c = c + W^T mu`; `W_c += lr <(v - mu)(h - lambda)^T>`, `b_c += lr <v>`, `c_c += lr <h>`
    /// (data minus model); then `b = b_c - W_c lambda`, `c = c_c - W_c^T mu`.
    #[test]
    fn a_centred_step_is_the_step_of_the_centred_parameterisation_mapped_back() {
        let (nv, nh, cols) = (7, 4, 9);
        let params = TrainingParams {
            learning_rate: 0.3,
            momentum: Momentum::Constant { value: 0.0 },
            weight_decay: 0.0,
            weight_scale: 0.5,
            persistent_chains: Some(5),
            centered: true,
            ..TrainingParams::new(VisibleKind::Bernoulli, nh)
        };
        let data = DMatrix::from_fn(nv, cols, |i, s| ((i * 3 + s * 5) % 4 == 0) as u8 as f32);
        let mut trainer = Trainer::initialise(params.clone().check().unwrap(), &data).unwrap();
        trainer.offsets = Some(Offsets {
            visible: (0..nv).map(|i| 0.1 + 0.1 * i as f32).collect(),
            hidden: (0..nh).map(|j| 0.2 + 0.15 * j as f32).collect(),
        });
        let before = trainer.rbm.clone();
        trainer.phases.batch = data.as_slice().to_vec();
        trainer.update(cols, BatchRows::Copied, 0.0, 1.0, Workers::Pool);
        let offsets = trainer.offsets.clone().unwrap();
        let (mu, lambda) = (&offsets.visible, &offsets.hidden);
        let p = &trainer.phases;
        let chains = p.negative.cols;
        let phases: [(&[f32], &[f32], usize, f64); 2] = [
            (&p.batch, &p.positive_hidden, cols, 1.0),
            (&p.negative.visible, &p.negative.hidden_probabilities, chains, -1.0),
        ];
        let (mut dw, mut db, mut dc) = (DMatrix::<f64>::zeros(nh, nv), vec![0f64; nv], vec![0f64; nh]);
        for (v, h, n, sign) in phases {
            for s in 0..n {
                let (v, h) = (&v[s * nv..(s + 1) * nv], &h[s * nh..(s + 1) * nh]);
                for i in 0..nv {
                    db[i] += sign * v[i] as f64 / n as f64;
                    for j in 0..nh {
                        dw[(j, i)] += sign * ((v[i] - mu[i]) * (h[j] - lambda[j])) as f64 / n as f64;
                    }
                }
                for j in 0..nh {
                    dc[j] += sign * h[j] as f64 / n as f64;
                }
            }
        }
        let lr = 0.3;
        let w0 = before.weights().map(|x| x as f64);
        let w1 = &w0 + &dw * lr;
        for i in 0..nv {
            let b_centred =
                before.visible_bias()[i] as f64 + (0..nh).map(|j| w0[(j, i)] * lambda[j] as f64).sum::<f64>();
            let want = b_centred + lr * db[i] - (0..nh).map(|j| w1[(j, i)] * lambda[j] as f64).sum::<f64>();
            let got = trainer.rbm.visible_bias()[i] as f64;
            assert!((got - want).abs() < 1e-5, "visible bias {i}: {got} vs {want}");
        }
        for j in 0..nh {
            let c_centred = before.hidden_bias()[j] as f64 + (0..nv).map(|i| w0[(j, i)] * mu[i] as f64).sum::<f64>();
            let want = c_centred + lr * dc[j] - (0..nv).map(|i| w1[(j, i)] * mu[i] as f64).sum::<f64>();
            let got = trainer.rbm.hidden_bias()[j] as f64;
            assert!((got - want).abs() < 1e-5, "hidden bias {j}: {got} vs {want}");
        }
        let worst = (trainer.rbm.weights().map(|x| x as f64) - w1).abs().max();
        assert!(worst < 1e-5, "weights differ by {worst}");
        // And it is not the plain step: the offsets changed the biases' update.
        let mut plain =
            Trainer::initialise(TrainingParams { centered: false, ..params }.check().unwrap(), &data).unwrap();
        plain.phases.batch = data.as_slice().to_vec();
        plain.rbm = before;
        plain.update(cols, BatchRows::Copied, 0.0, 1.0, Workers::Pool);
        assert!((plain.rbm.visible_bias() - trainer.rbm.visible_bias()).abs().max() > 1e-3);
    }
}

#[cfg(test)]
mod flip_tests {
    use super::*;
    use crate::params::{Momentum, TrainingParams};
    use crate::units::VisibleKind;

    /// The model of the flipped data `v' = 1 - v` with the same distribution: `W' = -W`,
    /// `b' = -b`, `c' = c + W 1` (`E(v, h)` rewritten in `v'`, up to a constant).
    fn flip(rbm: &Rbm) -> Rbm {
        let w = rbm.weights();
        let c = rbm.hidden_bias() + w * nalgebra::DVector::from_element(w.ncols(), 1.0f32);
        Rbm::from_parameters(rbm.layer().clone(), -w, -rbm.visible_bias(), c).unwrap()
    }

    /// One step on a batch and on its flipped copy, with the same (flipped) samples: returns the
    /// stepped model and the flipped data's stepped model flipped back.
    fn steps(centered: bool) -> (Rbm, Rbm) {
        let (nv, nh, cols) = (9, 5, 12);
        let params = TrainingParams {
            learning_rate: 0.2,
            momentum: Momentum::Constant { value: 0.0 },
            weight_decay: 0.0,
            weight_scale: 0.4,
            persistent_chains: Some(6),
            centered,
            ..TrainingParams::new(VisibleKind::Bernoulli, nh)
        };
        let data = DMatrix::from_fn(nv, cols, |i, s| ((i * 7 + s * 3) % 5 < 2) as u8 as f32);
        let flipped = data.map(|x| 1.0 - x);
        let mut a = Trainer::initialise(params.clone().check().unwrap(), &data).unwrap();
        let mut b = Trainer::initialise(params.check().unwrap(), &flipped).unwrap();
        b.rbm = flip(&a.rbm);
        if centered {
            // Offsets of the flipped data: mu' = 1 - mu, lambda' = lambda.
            let offsets = Offsets::new(&data, nh);
            let mut flipped_offsets = offsets.clone();
            flipped_offsets.visible.iter_mut().for_each(|m| *m = 1.0 - *m);
            a.offsets = Some(offsets);
            b.offsets = Some(flipped_offsets);
        }
        a.phases.batch = data.as_slice().to_vec();
        a.run_phases(cols, BatchRows::Copied, Workers::Pool);
        // The flipped trainer sees the same samples flipped; its hidden probabilities are the same
        // numbers because the models are equivalent (checked).
        b.phases = a.phases.clone();
        b.phases.batch.iter_mut().for_each(|x| *x = 1.0 - *x);
        b.phases.negative.visible.iter_mut().for_each(|x| *x = 1.0 - *x);
        if let Some(offsets) = &b.offsets {
            // The pieces' `v.mu` of the flipped samples, under the flipped offsets.
            b.phases.take_mu_dots(cols, &offsets.visible);
        }
        let mut check = vec![0f32; nh * cols];
        b.rbm.hidden_probabilities_into(&b.phases.batch, cols, &mut check);
        let worst = check.iter().zip(&a.phases.positive_hidden).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-5, "the flipped model is not equivalent: {worst}");
        a.step(cols, 0.0, 1.0, Workers::Pool);
        b.step(cols, 0.0, 1.0, Workers::Pool);
        (a.rbm, flip(&b.rbm))
    }

    fn distance(x: &Rbm, y: &Rbm) -> f32 {
        let w = (x.weights() - y.weights()).abs().max();
        let b = (x.visible_bias() - y.visible_bias()).abs().max();
        let c = (x.hidden_bias() - y.hidden_bias()).abs().max();
        w.max(b).max(c)
    }

    /// Melchior et al.'s invariance: with offsets flipped along with the data, a centred step on
    /// flipped data is the same model as a centred step on the original data. The plain step is
    /// not: on flipped data it moves the model differently (why plain RBMs learn flipped MNIST
    /// tens of nats worse).
    #[test]
    fn a_centred_step_is_invariant_to_flipping_the_data_and_a_plain_step_is_not() {
        let (a, b) = steps(true);
        assert!(distance(&a, &b) < 1e-5, "centred steps differ by {}", distance(&a, &b));
        let (a, b) = steps(false);
        assert!(distance(&a, &b) > 1e-2, "plain steps differ by only {}", distance(&a, &b));
    }

    /// Every binary vector of length `n`, as f32 values, in counting order.
    fn binary_states(n: usize) -> Vec<Vec<f32>> {
        (0..1usize << n).map(|k| (0..n).map(|i| ((k >> i) & 1) as f32).collect()).collect()
    }

    /// CD-1's gradient estimate, averaged over many independent calls, matches its exact
    /// expectation over one Gibbs step from the data (hidden states and reconstructions enumerated
    /// on a tiny model): the chains restart at the batch (a CD that silently kept its chains, as
    /// PCD does, would fail) and the negative statistics use `p(h | v1)` of the reconstruction (a
    /// stale hidden probability would fail). The batch of 37 samples is cut into uneven pieces.
    #[test]
    fn cd1_gradient_is_unbiased_for_its_exact_one_step_expectation() {
        let (nv, nh, rows) = (4usize, 3usize, 37usize);
        let data = DMatrix::from_fn(nv, rows, |i, s| u8::from((s * 7 + i * 3) % 5 < 2 || (i == s % 4)) as f32);
        let params = TrainingParams {
            weight_scale: 1.5,
            batch_size: rows,
            persistent_chains: None,
            ..TrainingParams::new(VisibleKind::Bernoulli, nh)
        };
        let mut trainer = Trainer::initialise(params.check().unwrap(), &data).unwrap();
        assert!(trainer.phases_in_pieces(rows), "the tiny model runs in pieces");
        {
            // Biases away from zero, so that a wrong conditional shows.
            let (_, b, c) = trainer.rbm.parameters_mut();
            b.iter_mut().enumerate().for_each(|(i, x)| *x = 0.4 * i as f32 - 0.7);
            c.iter_mut().enumerate().for_each(|(j, x)| *x = 0.5 - 0.6 * j as f32);
        }
        let rbm = trainer.rbm.clone();
        let (w, b, c) = (rbm.weights(), rbm.visible_bias(), rbm.hidden_bias());
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let hidden_p = |v: &[f32]| -> Vec<f64> {
            (0..nh).map(|j| sig(c[j] as f64 + (0..nv).map(|i| w[(j, i)] as f64 * v[i] as f64).sum::<f64>())).collect()
        };
        let visible_p = |h: &[f32]| -> Vec<f64> {
            (0..nv).map(|i| sig(b[i] as f64 + (0..nh).map(|j| w[(j, i)] as f64 * h[j] as f64).sum::<f64>())).collect()
        };
        let probability = |x: &[f32], p: &[f64]| -> f64 {
            x.iter().zip(p).map(|(&x, &p)| if x == 1.0 { p } else { 1.0 - p }).product()
        };
        // The exact expectation, and what a stale `p(h | v0)` in the negative statistics would
        // give instead (which the estimate must be told apart from).
        let mut want = DMatrix::<f64>::zeros(nh, nv);
        let mut stale = DMatrix::<f64>::zeros(nh, nv);
        for column in data.column_iter() {
            let v0: Vec<f32> = column.iter().copied().collect();
            let ph0 = hidden_p(&v0);
            for h0 in binary_states(nh) {
                let p_h0 = probability(&h0, &ph0);
                let pv = visible_p(&h0);
                for v1 in binary_states(nv) {
                    let weight = p_h0 * probability(&v1, &pv);
                    let ph1 = hidden_p(&v1);
                    for j in 0..nh {
                        for i in 0..nv {
                            want[(j, i)] -= weight * ph1[j] * v1[i] as f64 / rows as f64;
                            stale[(j, i)] -= weight * ph0[j] * v1[i] as f64 / rows as f64;
                        }
                    }
                }
            }
            for j in 0..nh {
                for i in 0..nv {
                    want[(j, i)] += ph0[j] * v0[i] as f64 / rows as f64;
                    stale[(j, i)] += ph0[j] * v0[i] as f64 / rows as f64;
                }
            }
        }
        let calls = 20_000;
        let mut mean = DMatrix::<f64>::zeros(nh, nv);
        let mut square = DMatrix::<f64>::zeros(nh, nv);
        for _ in 0..calls {
            let g = trainer.estimate_gradient(&data).unwrap();
            for (k, &x) in g.weights.iter().enumerate() {
                mean[k] += x as f64 / calls as f64;
                square[k] += (x as f64) * (x as f64) / calls as f64;
            }
        }
        for k in 0..nh * nv {
            let stderr = ((square[k] - mean[k] * mean[k]).max(0.0) / calls as f64).sqrt();
            assert!(
                (mean[k] - want[k]).abs() < 4.5 * stderr + 1e-5,
                "weight {k}: mean estimate {} against exact {} (stderr {stderr})",
                mean[k],
                want[k]
            );
        }
        // The test can tell: the stale expectation is many standard errors away somewhere.
        let separation = (0..nh * nv)
            .map(|k| {
                let stderr = ((square[k] - mean[k] * mean[k]).max(1e-12) / calls as f64).sqrt();
                (stale[k] - want[k]).abs() / stderr
            })
            .fold(0.0f64, f64::max);
        assert!(separation > 15.0, "a stale p(h | v0) is only {separation:.1} standard errors away");
    }

    /// Large models step their weights in column blocks on two or more threads (products,
    /// centring and step in one task) and in separate passes on one: with centring, weight decay,
    /// momentum and sparsity, the models are identical.
    #[test]
    fn large_models_step_in_blocks_as_in_separate_passes() {
        let data = DMatrix::from_fn(200, 120, |i, s| u8::from((i * 7 + s * 13) % 11 < 4) as f32);
        let params = every_step_term(2, 40, 1200);
        same_model_on_one_two_and_three_threads(|threads| {
            let trainer = Trainer::initialise(params.clone().check().unwrap(), &data).unwrap();
            assert!(!trainer.phases_in_pieces(40));
            assert_eq!(crate::linalg::block_width(200, 1200).is_some(), threads > 1);
            trainer.fit(&data, None, |_| ControlFlow::Continue(())).unwrap().rbm
        });
    }

    /// Centred PCD with momentum (the default), weight decay and sparsity: every term of a step.
    fn every_step_term(epochs: usize, batch_size: usize, hidden: usize) -> TrainingParams {
        TrainingParams {
            epochs,
            batch_size,
            persistent_chains: Some(batch_size),
            centered: true,
            weight_decay: 0.01,
            sparsity: Some(crate::Sparsity { target: 0.1, cost: 0.5 }),
            ..TrainingParams::new(VisibleKind::Bernoulli, hidden)
        }
    }

    /// Runs `train(threads)` in pools of 1, 2 and 3 threads and checks that the models agree.
    fn same_model_on_one_two_and_three_threads(train: impl Fn(usize) -> Rbm + Sync) {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| train(threads))
        };
        let one = run(1);
        assert_eq!(one, run(2), "2 threads");
        assert_eq!(one, run(3), "3 threads");
    }

    /// CD on a model whose full batches are too large to run in pieces but whose short last
    /// batch is not: the phases and the step of that batch agree (they had not, and the step
    /// panicked on kernels never laid out), on 1, 2 and 3 threads alike.
    #[test]
    fn a_short_last_batch_runs_its_phases_and_step_alike() {
        let data = DMatrix::from_fn(64, 2150, |i, s| u8::from((i * 7 + s * 13) % 11 < 4) as f32);
        let params = TrainingParams {
            epochs: 2,
            batch_size: 2100,
            persistent_chains: None,
            centered: false,
            ..TrainingParams::new(VisibleKind::Bernoulli, 64)
        };
        same_model_on_one_two_and_three_threads(|_| {
            let trainer = Trainer::initialise(params.clone().check().unwrap(), &data).unwrap();
            assert!(!trainer.phases_in_pieces(2100) && trainer.phases_in_pieces(50));
            trainer.fit(&data, None, |_| ControlFlow::Continue(())).unwrap().rbm
        });
    }

    /// A model run in pieces steps its weights and visible biases in the gradient's tasks, which
    /// also refresh the kernels' layouts (checked against a whole refresh at every batch in debug
    /// builds, see `run_phases_in_pieces`): with centring, decay, momentum, sparsity and a last
    /// tile of 4 units, the model is the same on 1, 2 and 3 threads and the layouts after the
    /// last batch are those of the final model.
    #[test]
    fn steps_in_the_gradient_tasks_leave_the_kernels_refreshed() {
        let data = DMatrix::from_fn(100, 90, |i, s| u8::from((i * 5 + s * 11) % 9 < 3) as f32);
        let params = every_step_term(3, 30, 20);
        same_model_on_one_two_and_three_threads(|threads| {
            let mut trainer = Trainer::initialise(params.clone().check().unwrap(), &data).unwrap();
            assert!(trainer.phases_in_pieces(30));
            // As `fit` would (the epochs are run here one by one): the centring offsets.
            trainer.offsets = Some(Offsets::new(&data, trainer.rbm.n_hidden()));
            for epoch in 0..3 {
                Team::run(|team| trainer.run_epoch(&data, epoch, Workers::Team(team)));
                assert!(trainer.phases.kernels_current, "the tasks refreshed the kernels");
                let mut whole = SkinnyWeights::default();
                let rbm = &trainer.rbm;
                whole.refresh(rbm.weights().as_slice(), rbm.visible_bias().as_slice(), rbm.hidden_bias().as_slice());
                assert!(trainer.phases.kernels == whole, "epoch {epoch} on {threads} threads");
            }
            trainer.rbm
        });
    }

    /// A small model (trained in pieces of samples) and a larger one (products split across
    /// threads) train to the same bits on 1, 2 and 3 threads, with CD, with centred PCD and with
    /// PCD whose chains keep their hidden units.
    #[test]
    fn small_and_large_models_train_identically_on_one_two_and_three_threads() {
        let data = DMatrix::from_fn(60, 150, |i, s| u8::from((i * 7 + s * 13) % 11 < 4) as f32);
        let (gibbs, kept) = (Sampler::Gibbs, Sampler::KeptHidden);
        for (hidden, persistent, centered, sampler) in [
            (5, None, false, gibbs),
            (5, Some(40), true, gibbs),
            (4000, Some(40), false, gibbs),
            (5, Some(40), true, kept),
            (4000, Some(40), true, kept),
            // Fewer chains than samples, and a short last batch (150 = 3 x 40 + 30).
            (5, Some(25), false, kept),
        ] {
            let params = TrainingParams {
                epochs: 2,
                batch_size: 40,
                persistent_chains: persistent,
                centered,
                sampler,
                ..TrainingParams::new(VisibleKind::Bernoulli, hidden)
            };
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let trainer = Trainer::initialise(params.clone().check().unwrap(), &data).unwrap();
                    assert_eq!(trainer.phases_in_pieces(40), hidden < 100);
                    trainer.fit(&data, None, |_| ControlFlow::Continue(())).unwrap().rbm
                })
            };
            let one = run(1);
            assert_eq!(one, run(2), "{hidden} hidden, {sampler:?}, 2 threads");
            assert_eq!(one, run(3), "{hidden} hidden, {sampler:?}, 3 threads");
        }
    }

    /// PCD's chains draw their first hidden units of an update from `p(h | v)` under the current
    /// parameters, or, with [`Sampler::KeptHidden`], from the probabilities they ended the last
    /// update with; both start from their own `p(h | v)`. Hidden biases pushed to -100 between two
    /// updates show which: fresh probabilities are then zero. Small models (in pieces) and large
    /// ones (split products) alike.
    #[test]
    fn kept_hidden_chains_draw_from_the_last_updates_probabilities() {
        let data = DMatrix::from_fn(60, 40, |i, s| u8::from((i * 7 + s * 13) % 11 < 4) as f32);
        for hidden in [5, 4000] {
            let first_hidden = |sampler: Sampler| {
                let params = TrainingParams {
                    batch_size: 40,
                    persistent_chains: Some(40),
                    weight_scale: 0.5,
                    sampler,
                    ..TrainingParams::new(VisibleKind::Bernoulli, hidden)
                };
                let mut trainer = Trainer::initialise(params.check().unwrap(), &data).unwrap();
                assert_eq!(trainer.phases_in_pieces(40), hidden < 100);
                trainer.estimate_gradient(&data).unwrap();
                let started = trainer.phases.negative.hidden.clone();
                trainer.rbm.parameters_mut().2.fill(-100.0);
                trainer.estimate_gradient(&data).unwrap();
                (started, trainer.phases.negative.hidden.clone())
            };
            let (fresh_start, fresh) = first_hidden(Sampler::Gibbs);
            let (kept_start, kept) = first_hidden(Sampler::KeptHidden);
            assert_eq!(fresh_start, kept_start, "{hidden} hidden: the chains' first update");
            assert!(fresh.iter().all(|&h| h == 0.0), "{hidden} hidden: Gibbs chains kept stale probabilities");
            let ones = kept.iter().filter(|&&h| h == 1.0).count();
            assert!(ones > kept.len() / 10, "{hidden} hidden: kept chains drew {ones} ones of {}", kept.len());
        }
    }
}
