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
use std::time::Instant;

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

use crate::error::{RbmError, Result};
use crate::eval::{mean_free_energy_of, reconstruction_error_of};
use crate::gibbs::ChainBuffers;
use crate::linalg::{Operand, gemm};
use crate::model::Rbm;
use crate::optim::Sgd;
use crate::params::ValidParams;
use crate::params::VisibleSpec;
use crate::rng::{RandomStreams, shuffle};
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

    /// The bias gradients of the phases of a batch of `cols` samples.
    fn bias_gradients(&self, cols: usize, visible: &mut [f32], hidden: &mut [f32]) {
        let chains = self.negative.cols;
        column_mean_difference(&self.batch, cols, &self.negative.visible, chains, visible);
        column_mean_difference(&self.positive_hidden, cols, &self.negative.hidden_probabilities, chains, hidden);
    }
}

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
        Ok(Trainer {
            streams,
            gradient: Gradient::zeros(nv, nh),
            velocity: Gradient::zeros(nv, nh),
            phases: Phases {
                batch: Vec::with_capacity(nv * params.batch_size),
                positive_hidden: Vec::with_capacity(nh * params.batch_size),
                negative: ChainBuffers::new(nv, nh, cols),
                chains_started: false,
            },
            hidden_activity: vec![0.0; nh],
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
        Self::initialise_checked(params, layer, data)
    }

    /// [`Trainer::initialise`] on data already checked against `layer`.
    pub(crate) fn initialise_checked(params: ValidParams, layer: VisibleLayer, data: &DMatrix<f32>) -> Result<Self> {
        let (nv, nh) = (data.nrows(), params.n_hidden);
        let mut sums = vec![0f64; nv];
        for column in data.column_iter() {
            sums.iter_mut().zip(column.iter()).for_each(|(s, &x)| *s += x as f64);
        }
        let means: Vec<f64> = sums.iter().map(|s| s / data.ncols() as f64).collect();
        let mut initial_bias = vec![0f32; nv];
        layer.initial_bias(&means, data.ncols(), &mut initial_bias);
        let mut rbm = Rbm::zeros(layer, nh)?;
        let mut streams = RandomStreams::new(params.seed);
        {
            let (weights, visible_bias, _) = rbm.parameters_mut();
            *weights = crate::rng::normal_weights(nh, nv, params.weight_scale as f32, &mut streams.serial());
            visible_bias.as_mut_slice().copy_from_slice(&initial_bias);
        }
        Trainer::with_streams(params, rbm, streams)
    }

    /// The model as trained so far.
    pub fn rbm(&self) -> &Rbm {
        &self.rbm
    }

    /// Estimates the log-likelihood gradient on `batch` (`n_visible x B`) with CD-k or PCD-k,
    /// advancing the persistent chains. No weight decay or sparsity term is included.
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

    /// Runs the positive phase on the batch in `phases.batch` (`cols` samples) and the negative
    /// phase (k Gibbs steps from the batch for CD, from the persistent chains for PCD).
    fn run_phases(&mut self, cols: usize) {
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
            p.negative.refresh_hidden(&self.rbm);
        } else {
            p.negative.resize(nv, nh, cols);
            p.negative.visible.copy_from_slice(&p.batch);
            p.negative.hidden_probabilities.copy_from_slice(&p.positive_hidden);
        }
        p.negative.run(&self.rbm, self.params.gibbs_steps, &mut self.streams);
    }

    /// Fills `self.gradient` from the batch in `phases.batch` (`cols` samples).
    fn compute_gradient(&mut self, cols: usize) {
        self.run_phases(cols);
        let g = &mut self.gradient;
        self.phases.accumulate_weight_gradient(cols, 1.0, 0.0, g.weights.as_mut_slice());
        self.phases.bias_gradients(cols, g.visible_bias.as_mut_slice(), g.hidden_bias.as_mut_slice());
    }

    /// One parameter update on the batch in `phases.batch`. The weight gradient goes straight
    /// into the velocity (`velocity = momentum * velocity + lr * gradient` as the GEMMs' beta and
    /// alpha), which saves a pass over a weight-sized buffer per batch; the decay and the step
    /// follow [`Sgd`]'s rule.
    fn update(&mut self, cols: usize, momentum: f32) {
        self.run_phases(cols);
        let lr = self.params.learning_rate as f32;
        let decay = self.params.weight_decay as f32;
        self.phases.accumulate_weight_gradient(cols, lr, momentum, self.velocity.weights.as_mut_slice());
        let g = &mut self.gradient;
        self.phases.bias_gradients(cols, g.visible_bias.as_mut_slice(), g.hidden_bias.as_mut_slice());
        let nh = self.rbm.n_hidden();
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
        weights.as_mut_slice().par_iter_mut().zip(self.velocity.weights.as_mut_slice().par_iter_mut()).for_each(
            |(w, v)| {
                *v -= lr * decay * *w;
                *w += *v;
            },
        );
        // Biases: no decay, and the gradients are already batch means.
        let biases = Sgd { rate: lr, momentum, decay: 0.0 };
        let (g, v) = (&self.gradient, &mut self.velocity);
        biases.step(visible_bias.as_mut_slice(), v.visible_bias.as_mut_slice(), g.visible_bias.as_slice(), 1.0);
        biases.step(hidden_bias.as_mut_slice(), v.hidden_bias.as_mut_slice(), g.hidden_bias.as_slice(), 1.0);
    }

    /// One epoch over `data` in a fresh random order.
    fn run_epoch(&mut self, data: &DMatrix<f32>, epoch: usize) {
        let nv = self.rbm.n_visible();
        let mut order: Vec<usize> = (0..data.ncols()).collect();
        shuffle(&mut order, &mut self.streams.serial());
        if self.params.persistent_chains.is_some() && !self.phases.chains_started {
            self.start_chains(data, &order);
        }
        let momentum = self.params.momentum.at(epoch) as f32;
        for indices in order.chunks(self.params.batch_size) {
            self.phases.batch.resize(nv * indices.len(), 0.0);
            for (slot, &i) in self.phases.batch.chunks_mut(nv).zip(indices) {
                slot.copy_from_slice(data.column(i).as_slice());
            }
            self.update(indices.len(), momentum);
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
        self.fit_checked(data, validation, on_epoch)
    }

    /// [`Trainer::fit`] on data already checked against the model's visible units.
    pub(crate) fn fit_checked(
        mut self,
        data: &DMatrix<f32>,
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
        let mut history = Vec::with_capacity(self.params.epochs);
        let mut stopped_early = false;
        for epoch in 0..self.params.epochs {
            let start = Instant::now();
            self.run_epoch(data, epoch);
            let seconds = start.elapsed().as_secs_f64();
            if self.rbm.check_finite().is_err() {
                return Err(RbmError::Diverged { epoch: epoch + 1 });
            }
            let stats = EpochStats {
                epoch: epoch + 1,
                seconds,
                reconstruction_error: reconstruction_error_of(&self.rbm, &monitor),
                free_energy_train: mean_free_energy_of(&self.rbm, &monitor),
                free_energy_validation: validation.map(|v| mean_free_energy_of(&self.rbm, v)),
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
        Ok(TrainingOutcome { rbm: self.rbm, history, stopped_early })
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
    let row_sum = |m: &[f32], cols: usize, i: usize| (0..cols).map(|c| m[i + c * rows] as f64).sum::<f64>();
    for (i, o) in out.iter_mut().enumerate() {
        *o = (row_sum(a, a_cols, i) / a_cols as f64 - row_sum(b, b_cols, i) / b_cols as f64) as f32;
    }
}
