//! The masked per-case path, for sparse data: an [`Rbm`] whose visible layer is `n_inputs`
//! softmax groups of K levels, trained on *cases* that each observe only some of the inputs
//! (Salakhutdinov, Mnih & Hinton 2007). A case has visible units for its observed inputs alone, so
//! every sum below runs over those; an optional conditioning matrix `D` feeds the hidden units
//! from the *set* `r` of inputs a case has (observed or merely known to exist).
//!
//! Energy of a case with observed inputs `O` (levels `l_i`) and conditioning set `r`:
//! `E(v, h) = -Σ_{i∈O} b[i][l_i] - Σ_j h_j (c_j + Σ_{i∈O} W[i][l_i][j] + Σ_{i∈r} D[i][j])`.
//!
//! The model is the core's [`Rbm`] (softmax units from [`crate::units::softmax`]), initialised
//! like the dense path (the same initial-weight draw, the softmax kind's initial biases),
//! updated by the core's optimiser ([`Sgd`]), with cases shuffled and sampled on the core's named
//! random streams ([`Stream`]). Which entity is a case (a user, an item) is the caller's business.

use std::ops::ControlFlow;
use std::time::Instant;

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{RbmError, Result};
use crate::linalg::{add_to, dot, sigmoid};
use crate::model::Rbm;
use crate::optim::Sgd;
use crate::rng::{Stream, normal_weights, shuffle, uniform01};
use crate::units::{VisibleGroup, VisibleKind, VisibleLayer, softmax};

/// The most levels a masked model's softmax groups may have (levels are stored as `u8`).
pub const MAX_MASKED_LEVELS: usize = 255;

/// Training cases in compressed-row form: each case's observed `(input, level)` pairs and its
/// conditioning set `r` (the inputs whose *presence* feeds the hidden units through `D`).
#[derive(Clone, Debug, Default)]
pub struct Cases {
    offsets: Vec<usize>,
    inputs: Vec<u32>,
    levels: Vec<u8>,
    implicit_offsets: Vec<usize>,
    implicit: Vec<u32>,
}

impl Cases {
    /// Groups `observed` `(case, input, level)` triples by case, keeping their order. With
    /// `conditioning`, the conditioning set of each case is its observed inputs plus the `extra`
    /// `(case, input)` pairs; without, it is left empty (a model without `D` never reads it).
    /// Every case index must be below `n_cases` (an index out of range panics).
    pub fn new(n_cases: usize, observed: &[(u32, u32, u8)], extra: &[(u32, u32)], conditioning: bool) -> Cases {
        let offsets = prefix_counts(n_cases, observed.iter().map(|t| t.0));
        let mut next = offsets.clone();
        let mut inputs = vec![0; observed.len()];
        let mut levels = vec![0; observed.len()];
        for &(case, input, level) in observed {
            let slot = &mut next[case as usize];
            inputs[*slot] = input;
            levels[*slot] = level;
            *slot += 1;
        }
        if !conditioning {
            return Cases { offsets, inputs, levels, implicit_offsets: vec![0; n_cases + 1], implicit: Vec::new() };
        }
        let mut implicit_offsets = Vec::with_capacity(n_cases + 1);
        let mut implicit = Vec::with_capacity(observed.len() + extra.len());
        let extra_offsets = prefix_counts(n_cases, extra.iter().map(|p| p.0));
        let mut extra_sorted = vec![0; extra.len()];
        let mut next = extra_offsets.clone();
        for &(case, input) in extra {
            extra_sorted[next[case as usize]] = input;
            next[case as usize] += 1;
        }
        implicit_offsets.push(0);
        for c in 0..n_cases {
            let start = implicit.len();
            implicit.extend_from_slice(&inputs[offsets[c]..offsets[c + 1]]);
            implicit.extend_from_slice(&extra_sorted[extra_offsets[c]..extra_offsets[c + 1]]);
            implicit[start..].sort_unstable();
            let mut kept = start;
            for k in start..implicit.len() {
                if k == start || implicit[k] != implicit[kept - 1] {
                    implicit[kept] = implicit[k];
                    kept += 1;
                }
            }
            implicit.truncate(kept);
            implicit_offsets.push(implicit.len());
        }
        Cases { offsets, inputs, levels, implicit_offsets, implicit }
    }

    /// Number of cases.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Whether there are no cases.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The observed inputs and levels of case `c`.
    pub fn observed(&self, c: usize) -> (&[u32], &[u8]) {
        let range = self.offsets[c]..self.offsets[c + 1];
        (&self.inputs[range.clone()], &self.levels[range])
    }

    /// The conditioning set `r` of case `c` (sorted).
    pub fn implicit(&self, c: usize) -> &[u32] {
        &self.implicit[self.implicit_offsets[c]..self.implicit_offsets[c + 1]]
    }

    /// Total observed values.
    pub fn n_observed(&self) -> usize {
        self.inputs.len()
    }

    /// Fails unless every input index is below `n_inputs` and every level below `levels`.
    pub fn check(&self, n_inputs: usize, levels: usize) -> Result<()> {
        let bad_input = self.inputs.iter().chain(&self.implicit).find(|&&i| i as usize >= n_inputs);
        if let Some(&i) = bad_input {
            return Err(RbmError::ShapeMismatch {
                what: "case inputs",
                expected: format!("indices below {n_inputs}"),
                found: format!("input {i}"),
            });
        }
        if let Some(&l) = self.levels.iter().find(|&&l| l as usize >= levels) {
            return Err(RbmError::ShapeMismatch {
                what: "case levels",
                expected: format!("levels below {levels}"),
                found: format!("level {l}"),
            });
        }
        Ok(())
    }
}

/// `offsets[c]..offsets[c+1]` = the slots of case `c`, from the case of every element.
fn prefix_counts(n: usize, cases: impl Iterator<Item = u32>) -> Vec<usize> {
    let mut offsets = vec![0usize; n + 1];
    for c in cases {
        offsets[c as usize + 1] += 1;
    }
    for c in 0..n {
        offsets[c + 1] += offsets[c];
    }
    offsets
}

/// The conditional RBM of the masked path: the core's [`Rbm`] with `n_inputs` softmax groups
/// of `levels` units each (input `i`, level `k` is visible unit `i * levels + k`) and the optional
/// conditioning matrix `D` (`n_hidden x n_inputs`, column `i` feeding input `i`'s presence).
///
/// In files it is stored as `{n_inputs, levels, hidden, weights, visible_bias, hidden_bias,
/// conditional}` with the weights flat, visible unit by visible unit (`(i * levels + k) * hidden
/// + j`), and `D` flat input by input.
#[derive(Clone, Debug, PartialEq)]
pub struct ConditionalRbm {
    rbm: Rbm,
    levels: usize,
    conditioning: Option<DMatrix<f32>>,
}

impl ConditionalRbm {
    /// A model with every parameter zero.
    pub fn zeros(n_inputs: usize, levels: usize, n_hidden: usize, conditional: bool) -> Result<Self> {
        let layer = softmax_layer(n_inputs, levels)?;
        if n_hidden == 0 {
            return Err(RbmError::InvalidHiddenUnits(0));
        }
        Ok(ConditionalRbm {
            rbm: Rbm::zeros(layer, n_hidden)?,
            levels,
            conditioning: conditional.then(|| DMatrix::zeros(n_hidden, n_inputs)),
        })
    }

    /// A model from its parts, checking shapes and finiteness: `rbm`'s layer must be softmax
    /// groups of `levels` units, and `conditioning` (if any) `n_hidden x n_inputs`.
    pub fn from_parts(rbm: Rbm, levels: usize, conditioning: Option<DMatrix<f32>>) -> Result<Self> {
        let n_inputs = rbm.n_visible() / levels.max(1);
        if *rbm.layer() != softmax_layer(n_inputs, levels)? {
            return Err(RbmError::ShapeMismatch {
                what: "conditional RBM",
                expected: format!("softmax groups of {levels} levels"),
                found: rbm.layer().describe(),
            });
        }
        if let Some(d) = conditioning.as_ref().filter(|d| d.shape() != (rbm.n_hidden(), n_inputs)) {
            return Err(RbmError::ShapeMismatch {
                what: "conditioning matrix",
                expected: format!("{} x {n_inputs}", rbm.n_hidden()),
                found: format!("{} x {}", d.nrows(), d.ncols()),
            });
        }
        let model = ConditionalRbm { rbm, levels, conditioning };
        model.check_finite()?;
        Ok(model)
    }

    /// The RBM: weights, biases and the softmax layer.
    pub fn rbm(&self) -> &Rbm {
        &self.rbm
    }
    /// Number of inputs (softmax groups).
    pub fn n_inputs(&self) -> usize {
        self.rbm.n_visible() / self.levels
    }
    /// Levels per input (K).
    pub fn levels(&self) -> usize {
        self.levels
    }
    /// Number of hidden units (F).
    pub fn n_hidden(&self) -> usize {
        self.rbm.n_hidden()
    }
    /// `D`, `n_hidden x n_inputs`, when the model is conditional.
    pub fn conditioning(&self) -> Option<&DMatrix<f32>> {
        self.conditioning.as_ref()
    }

    /// Fails naming the first NaN or infinite parameter.
    pub fn check_finite(&self) -> Result<()> {
        self.rbm.check_finite()?;
        if let Some(index) = self.conditioning.as_ref().and_then(|d| d.iter().position(|x| !x.is_finite())) {
            return Err(RbmError::NonFiniteParameter { what: "conditional", index });
        }
        Ok(())
    }

    /// Hidden pre-activations `c + Σ_{i∈O} W[i][l_i] + Σ_{i∈r} D[i]` of one case.
    pub fn hidden_input(&self, inputs: &[u32], levels: &[u8], implicit: &[u32], out: &mut [f32]) {
        let f = self.n_hidden();
        out.copy_from_slice(self.rbm.hidden_bias().as_slice());
        if let Some(d) = &self.conditioning {
            let d = d.as_slice();
            for &i in implicit {
                add_to(out, &d[i as usize * f..][..f]);
            }
        }
        let w = self.rbm.weights().as_slice();
        for (&i, &l) in inputs.iter().zip(levels) {
            add_to(out, &w[(i as usize * self.levels + l as usize) * f..][..f]);
        }
    }

    /// `p(h_j = 1 | case)` of one case.
    pub fn hidden_probabilities(&self, inputs: &[u32], levels: &[u8], implicit: &[u32], out: &mut [f32]) {
        self.hidden_input(inputs, levels, implicit, out);
        out.iter_mut().for_each(|x| *x = sigmoid(*x));
    }

    /// `p(v_input = k | hidden)` for every level k (`out` has `levels` entries), given hidden
    /// states or probabilities.
    pub fn level_probabilities(&self, input: u32, hidden: &[f32], out: &mut [f32]) {
        let (f, kk) = (self.n_hidden(), self.levels);
        let base = input as usize * kk;
        let (w, b) = (self.rbm.weights().as_slice(), self.rbm.visible_bias().as_slice());
        for (k, o) in out[..kk].iter_mut().enumerate() {
            *o = b[base + k] + dot(&w[(base + k) * f..][..f], hidden);
        }
        softmax::means(&mut out[..kk]);
    }

    /// Expected value of `input` given the (mean-field) hidden probabilities of a case, with
    /// `level_values[k]` the value of level k; `scratch` holds `levels` numbers.
    pub fn expected_value(&self, hidden: &[f32], input: u32, level_values: &[f32], scratch: &mut [f32]) -> f32 {
        self.level_probabilities(input, hidden, scratch);
        scratch.iter().zip(level_values).map(|(p, v)| p * v).sum()
    }
}

/// `n_inputs` softmax groups of `levels` units.
fn softmax_layer(n_inputs: usize, levels: usize) -> Result<VisibleLayer> {
    if levels == 0 || levels > MAX_MASKED_LEVELS {
        return Err(RbmError::InvalidMaskedLevels { levels, max: MAX_MASKED_LEVELS });
    }
    VisibleLayer::new((0..n_inputs).map(|_| VisibleGroup { kind: VisibleKind::Softmax, units: levels }))
}

/// A [`ConditionalRbm`] as files hold it (borrowed for writing: saving copies nothing).
#[derive(Serialize)]
struct ConditionalRbmRef<'a> {
    n_inputs: usize,
    levels: usize,
    hidden: usize,
    weights: &'a [f32],
    visible_bias: &'a [f32],
    hidden_bias: &'a [f32],
    conditional: Option<&'a [f32]>,
}

/// A [`ConditionalRbm`] as read from a file, before its checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionalRbmFile {
    n_inputs: usize,
    levels: usize,
    hidden: usize,
    weights: Vec<f32>,
    visible_bias: Vec<f32>,
    hidden_bias: Vec<f32>,
    conditional: Option<Vec<f32>>,
}

impl Serialize for ConditionalRbm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        ConditionalRbmRef {
            n_inputs: self.n_inputs(),
            levels: self.levels,
            hidden: self.n_hidden(),
            weights: self.rbm.weights().as_slice(),
            visible_bias: self.rbm.visible_bias().as_slice(),
            hidden_bias: self.rbm.hidden_bias().as_slice(),
            conditional: self.conditioning.as_ref().map(|d| d.as_slice()),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ConditionalRbm {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let file = ConditionalRbmFile::deserialize(deserializer)?;
        ConditionalRbm::try_from(file).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<ConditionalRbmFile> for ConditionalRbm {
    type Error = String;

    fn try_from(file: ConditionalRbmFile) -> std::result::Result<Self, String> {
        let length = |what: &str, found: usize, expected: Option<usize>| match expected {
            Some(e) if e == found => Ok(()),
            Some(e) => Err(format!("{what} has {found} values, expected {e}")),
            None => Err(format!("{what}: the shape {} x {} x {} is absurd", file.n_inputs, file.levels, file.hidden)),
        };
        if file.hidden == 0 {
            return Err("hidden is 0".into());
        }
        let units = file.n_inputs.checked_mul(file.levels);
        length("weights", file.weights.len(), units.and_then(|u| u.checked_mul(file.hidden)))?;
        length("visible_bias", file.visible_bias.len(), units)?;
        length("hidden_bias", file.hidden_bias.len(), Some(file.hidden))?;
        if let Some(d) = &file.conditional {
            length("conditional", d.len(), file.n_inputs.checked_mul(file.hidden))?;
        }
        let layer = softmax_layer(file.n_inputs, file.levels).map_err(|e| e.to_string())?;
        let (nv, nh) = (layer.n_visible(), file.hidden);
        let rbm = Rbm::from_parameters(
            layer,
            DMatrix::from_vec(nh, nv, file.weights),
            DVector::from_vec(file.visible_bias),
            DVector::from_vec(file.hidden_bias),
        )
        .map_err(|e| e.to_string())?;
        let conditioning = file.conditional.map(|d| DMatrix::from_vec(nh, file.n_inputs, d));
        ConditionalRbm::from_parts(rbm, file.levels, conditioning).map_err(|e| e.to_string())
    }
}

/// The negative phase's last visible step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reconstruction {
    /// Level probabilities, and the hidden probabilities given those probabilities (the usual
    /// practice, also in Salakhutdinov et al.). Lower variance but biased: `p(h | E[v])` is not
    /// `E[p(h | v)]`. Measured better RMSE on MovieLens, hence the default.
    #[default]
    MeanField,
    /// Sampled levels and `p(h | sampled v)`: an unbiased estimate of the model statistics after
    /// the chain's steps.
    Sampled,
}

/// How a mini-batch gradient is normalised per input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GradientScale {
    /// Divide by the number of cases in the batch (the usual mini-batch mean).
    Batch,
    /// Divide each input's gradient by the number of cases in the batch that observe it, so
    /// rarely observed inputs are not diluted by the cases that say nothing about them.
    InputCount,
}

impl GradientScale {
    /// What an input's summed gradient is divided by, for a batch of `batch_len` cases of which
    /// `observing` observe the input.
    fn divisor(self, batch_len: usize, observing: usize) -> f32 {
        match self {
            GradientScale::Batch => batch_len as f32,
            GradientScale::InputCount => observing.max(1) as f32,
        }
    }
}

/// Hyper-parameters of one masked-path training run; checked once into [`ValidMaskedParams`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskedParams {
    /// Hidden units (F).
    pub hidden: usize,
    /// Passes over the cases.
    pub epochs: usize,
    /// Cases per mini-batch.
    pub batch_size: usize,
    /// Learning rate of `W` and `D`.
    pub learning_rate: f32,
    /// Learning rate of the visible and hidden biases.
    pub bias_learning_rate: f32,
    /// The learning rates at epoch `e` (0-based) are divided by `1 + learning_rate_decay * e`.
    pub learning_rate_decay: f32,
    /// Momentum (0.5 for the first epoch, as in Hinton's schedule, then this).
    pub momentum: f32,
    /// L2 penalty on `W` and `D`.
    pub weight_decay: f32,
    /// Gibbs steps T of CD-T at the start; grows to 3, 5 and 9 at 40%, 60% and 80% of training
    /// when `growing_steps` is set (the paper's schedule).
    pub cd_steps: usize,
    /// Whether T grows during training.
    pub growing_steps: bool,
    /// How the gradient is normalised.
    pub gradient_scale: GradientScale,
    /// The last step of the negative phase.
    #[serde(default)]
    pub reconstruction: Reconstruction,
    /// Whether the model has the conditioning matrix `D`.
    pub conditional: bool,
    /// Seed of initialisation, batch order and sampling.
    pub seed: u64,
}

/// The standard deviation of the initial weights (Hinton's guide: 0.01).
pub const INITIAL_WEIGHT_SCALE: f32 = 0.01;

impl MaskedParams {
    /// The CD steps used in 0-based epoch `epoch`.
    pub fn steps_at(&self, epoch: usize) -> usize {
        if !self.growing_steps {
            return self.cd_steps;
        }
        let progress = epoch as f64 / self.epochs as f64;
        let schedule = [(0.8, 9), (0.6, 5), (0.4, 3)];
        schedule.iter().find(|(at, _)| progress >= *at).map_or(self.cd_steps, |&(_, t)| t.max(self.cd_steps))
    }

    /// Validates every value, returning the first one out of range (each has its own error).
    pub fn check(self) -> Result<ValidMaskedParams> {
        crate::params::CommonSettings {
            n_hidden: self.hidden,
            epochs: self.epochs,
            batch_size: self.batch_size,
            gibbs_steps: self.cd_steps,
            learning_rates: &[self.learning_rate as f64, self.bias_learning_rate as f64],
            momenta: &[self.momentum as f64],
            weight_decay: self.weight_decay as f64,
        }
        .check()?;
        if !(self.learning_rate_decay.is_finite() && self.learning_rate_decay >= 0.0) {
            return Err(RbmError::InvalidLearningRateDecay(self.learning_rate_decay as f64));
        }
        Ok(ValidMaskedParams(self))
    }
}

/// Masked-path parameters that passed [`MaskedParams::check`].
#[derive(Clone, Debug, PartialEq)]
pub struct ValidMaskedParams(MaskedParams);

impl std::ops::Deref for ValidMaskedParams {
    type Target = MaskedParams;
    fn deref(&self) -> &MaskedParams {
        &self.0
    }
}

impl ValidMaskedParams {
    /// The same settings with another seed (replicas of one model).
    pub fn with_seed(&self, seed: u64) -> ValidMaskedParams {
        ValidMaskedParams(MaskedParams { seed, ..self.0.clone() })
    }
}

/// What one epoch did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MaskedEpoch {
    /// One-based epoch number.
    pub epoch: usize,
    /// Wall time of the epoch's updates.
    pub seconds: f64,
    /// CD steps used.
    pub cd_steps: usize,
    /// RMSE on the validation targets, when given.
    pub validation_rmse: Option<f64>,
}

/// Held-out `(case, input, value)` triples scored after every epoch, sorted by case.
pub struct Validation<'a> {
    /// The targets.
    pub targets: &'a [(u32, u32, f32)],
    /// The value of each level, for expected values.
    pub level_values: &'a [f32],
}

impl Validation<'_> {
    /// Fails unless every target's case and input are in range and there is a value per level.
    fn check(&self, n_cases: usize, n_inputs: usize, levels: usize) -> Result<()> {
        if self.level_values.len() != levels {
            return Err(RbmError::ShapeMismatch {
                what: "validation level values",
                expected: format!("{levels} values, one per level"),
                found: format!("{} values", self.level_values.len()),
            });
        }
        let out_of_range = |&&(c, i, _): &&(u32, u32, f32)| c as usize >= n_cases || i as usize >= n_inputs;
        if let Some(&(c, i, _)) = self.targets.iter().find(out_of_range) {
            return Err(RbmError::ShapeMismatch {
                what: "validation targets",
                expected: format!("cases below {n_cases} and inputs below {n_inputs}"),
                found: format!("case {c}, input {i}"),
            });
        }
        Ok(())
    }
}

/// Momentum buffers, shaped like the parameters.
struct Velocity {
    weights: Vec<f32>,
    visible_bias: Vec<f32>,
    hidden_bias: Vec<f32>,
    conditioning: Option<Vec<f32>>,
}

/// `W ~ N(0, 0.01²)` ([`normal_weights`] on the [`Stream::Initialise`] stream), the visible
/// biases from each input's level frequencies by the softmax kind's rule, `c = 0`, `D = 0`.
fn initialise(cases: &Cases, n_inputs: usize, levels: usize, params: &MaskedParams) -> Result<ConditionalRbm> {
    let mut rng = Stream::Initialise.generator(params.seed, 0);
    let layer = softmax_layer(n_inputs, levels)?;
    let weights = normal_weights(params.hidden, layer.n_visible(), INITIAL_WEIGHT_SCALE, &mut rng);
    let mut counts = vec![0u64; n_inputs * levels];
    for (&i, &l) in cases.inputs.iter().zip(&cases.levels) {
        counts[i as usize * levels + l as usize] += 1;
    }
    let mut visible_bias = vec![0f32; n_inputs * levels];
    for (count, bias) in counts.chunks(levels).zip(visible_bias.chunks_mut(levels)) {
        let total: u64 = count.iter().sum();
        let means: Vec<f64> = count.iter().map(|&n| n as f64 / total.max(1) as f64).collect();
        softmax::initial_bias(&means, total as usize, bias);
    }
    let rbm = Rbm::from_parameters(layer, weights, DVector::from_vec(visible_bias), DVector::zeros(params.hidden))?;
    let conditioning = params.conditional.then(|| DMatrix::zeros(params.hidden, n_inputs));
    ConditionalRbm::from_parts(rbm, levels, conditioning)
}

/// Trains a conditional RBM on `cases` with `n_inputs` inputs of `levels` levels, calling
/// `on_epoch` after each epoch (it may stop training). Fails with [`RbmError::Diverged`] if the
/// parameters stop being finite.
///
/// Deterministic for a seed whatever the thread count: each case draws from its own block of the
/// epoch's [`Stream::Gibbs`] stream, and each input's update sums its cases in batch order.
pub fn train(
    cases: &Cases,
    n_inputs: usize,
    levels: usize,
    params: &ValidMaskedParams,
    validation: Option<&Validation>,
    mut on_epoch: impl FnMut(&MaskedEpoch) -> ControlFlow<()>,
) -> Result<(ConditionalRbm, Vec<MaskedEpoch>)> {
    cases.check(n_inputs, levels)?;
    if let Some(v) = validation {
        v.check(cases.len(), n_inputs, levels)?;
    }
    let mut model = initialise(cases, n_inputs, levels, params)?;
    let mut velocity = Velocity {
        weights: vec![0.0; model.rbm.weights().len()],
        visible_bias: vec![0.0; model.rbm.n_visible()],
        hidden_bias: vec![0.0; params.hidden],
        conditioning: model.conditioning.as_ref().map(|d| vec![0.0; d.len()]),
    };
    let mut order: Vec<u32> = (0..cases.len() as u32).collect();
    let mut history = Vec::with_capacity(params.epochs);
    let mut phases = Phases::default();
    let mut touch = Touches::default();
    let mut implicit_touch = Touches::default();
    let mut hidden_gradient = vec![0.0f32; params.hidden];
    for epoch in 0..params.epochs {
        let started = Instant::now();
        let steps = params.steps_at(epoch);
        shuffle(&mut order, &mut Stream::Shuffle { epoch: epoch as u64 }.generator(params.seed, 0));
        let decay = 1.0 / (1.0 + params.learning_rate_decay * epoch as f32);
        let momentum = if epoch == 0 { params.momentum.min(0.5) } else { params.momentum };
        let weights = Sgd { rate: params.learning_rate * decay, momentum, decay: params.weight_decay };
        let biases = Sgd { rate: params.bias_learning_rate * decay, momentum, decay: 0.0 };
        for batch in order.chunks(params.batch_size) {
            let sampling =
                Sampling { steps, reconstruction: params.reconstruction, seed: params.seed, epoch: epoch as u64 };
            phases.run(&model, cases, batch, sampling);
            touch.build(n_inputs, batch.iter().map(|&c| cases.observed(c as usize).0));
            let scale = params.gradient_scale;
            let view = BatchView { cases, batch, phases: &phases, touch: &touch };
            update_inputs(&mut model, &mut velocity, view, scale, (weights, biases));
            if model.conditioning.is_some() {
                implicit_touch.build(n_inputs, batch.iter().map(|&c| cases.implicit(c as usize)));
                update_conditioning(&mut model, &mut velocity, &phases, &implicit_touch, batch.len(), scale, weights);
            }
            // Hidden biases: one short vector, summed over the batch in order.
            phases.hidden_bias_gradient(&mut hidden_gradient);
            let (_, _, hidden_bias) = model.rbm.parameters_mut();
            biases.step(hidden_bias.as_mut_slice(), &mut velocity.hidden_bias, &hidden_gradient, batch.len() as f32);
        }
        if model.check_finite().is_err() {
            return Err(RbmError::Diverged { epoch: epoch + 1 });
        }
        let validation_rmse = validation.map(|v| validation_rmse(&model, cases, v));
        let stats = MaskedEpoch {
            epoch: epoch + 1,
            seconds: started.elapsed().as_secs_f64(),
            cd_steps: steps,
            validation_rmse,
        };
        let flow = on_epoch(&stats);
        history.push(stats);
        if flow.is_break() {
            break;
        }
    }
    Ok((model, history))
}

/// The statistics of one mini-batch's positive and negative phases.
#[derive(Default)]
struct Phases {
    /// `p(h | data)`, `batch x F`.
    positive: Vec<f32>,
    /// `p(h | reconstruction)`, `batch x F`.
    negative: Vec<f32>,
    /// Reconstructed level probabilities of each observed value, `K` per value, cases in batch order.
    reconstruction: Vec<f32>,
    /// Where each batch case's values start in `reconstruction` (in units of values).
    starts: Vec<usize>,
}

impl Phases {
    /// `out[j] = Σ_cases (p⁺(h_j) - p⁻(h_j))` over the batch, in batch order.
    fn hidden_bias_gradient(&self, out: &mut [f32]) {
        let f = out.len();
        for (j, g) in out.iter_mut().enumerate() {
            *g = self
                .positive
                .iter()
                .skip(j)
                .step_by(f)
                .zip(self.negative.iter().skip(j).step_by(f))
                .map(|(p, n)| p - n)
                .sum();
        }
    }

    /// Runs the positive and negative phases of `batch`, reusing this value's buffers; case `c`
    /// samples from block `c` of the epoch's [`Stream::Gibbs`] stream.
    fn run(&mut self, model: &ConditionalRbm, cases: &Cases, batch: &[u32], sampling: Sampling) {
        let Sampling { steps, reconstruction: kind, seed, epoch } = sampling;
        let (f, kk) = (model.n_hidden(), model.levels);
        self.starts.clear();
        self.starts.push(0);
        for &c in batch {
            self.starts.push(self.starts.last().unwrap() + cases.observed(c as usize).0.len());
        }
        // Every element below is overwritten by `gibbs_case`, so stale values never leak through.
        self.positive.resize(batch.len() * f, 0.0);
        self.negative.resize(batch.len() * f, 0.0);
        self.reconstruction.resize(self.starts[batch.len()] * kk, 0.0);
        let mut slices = Vec::with_capacity(batch.len());
        let mut rest = self.reconstruction.as_mut_slice();
        for b in 0..batch.len() {
            let (head, tail) = rest.split_at_mut((self.starts[b + 1] - self.starts[b]) * kk);
            slices.push(head);
            rest = tail;
        }
        self.positive
            .par_chunks_mut(f)
            .zip(self.negative.par_chunks_mut(f))
            .zip(slices.into_par_iter())
            .zip(batch.par_iter())
            .for_each_init(
                || (vec![0.0f32; f], Vec::new()),
                |(hidden, sampled), (((positive, negative), reconstruction), &c)| {
                    let (inputs, levels) = cases.observed(c as usize);
                    let implicit = cases.implicit(c as usize);
                    let mut rng = Stream::Gibbs { epoch }.generator(seed, c as u64);
                    sampled.resize(inputs.len(), 0);
                    let case = Case { inputs, levels, implicit };
                    let scratch = GibbsScratch { hidden, sampled };
                    let out = PhaseRows { positive, negative, reconstruction };
                    gibbs_case(model, case, steps, kind, &mut rng, scratch, out);
                },
            );
    }
}

/// How one batch's negative phase samples: CD steps, the last step's kind, and the seed and
/// epoch that name its random stream.
#[derive(Clone, Copy)]
struct Sampling {
    steps: usize,
    reconstruction: Reconstruction,
    seed: u64,
    epoch: u64,
}

/// One case's observed inputs, their levels and its conditioning set.
#[derive(Clone, Copy)]
struct Case<'a> {
    inputs: &'a [u32],
    levels: &'a [u8],
    implicit: &'a [u32],
}

/// Per-worker buffers of `gibbs_case` (fully overwritten for each case).
struct GibbsScratch<'a> {
    /// Sampled hidden states, `F`.
    hidden: &'a mut [f32],
    /// Sampled levels of the case's observed inputs.
    sampled: &'a mut [u8],
}

/// One case's rows of [`Phases`].
struct PhaseRows<'a> {
    positive: &'a mut [f32],
    negative: &'a mut [f32],
    reconstruction: &'a mut [f32],
}

/// CD-`steps` for one case: the positive hidden probabilities, then `steps` alternations ending,
/// for a mean-field reconstruction, in the level probabilities of each observed input and the
/// hidden probabilities they give; for a sampled one, in sampled levels (one-hot) and `p(h | v)`.
fn gibbs_case(
    model: &ConditionalRbm,
    case: Case,
    steps: usize,
    reconstruction_kind: Reconstruction,
    rng: &mut rand_xoshiro::Xoshiro256PlusPlus,
    scratch: GibbsScratch,
    out: PhaseRows,
) {
    let (f, kk) = (model.n_hidden(), model.levels);
    let Case { inputs, levels, implicit } = case;
    let GibbsScratch { hidden, sampled } = scratch;
    let PhaseRows { positive, negative, reconstruction } = out;
    model.hidden_probabilities(inputs, levels, implicit, positive);
    for (h, &p) in hidden.iter_mut().zip(positive.iter()) {
        *h = if uniform01(rng) < p { 1.0 } else { 0.0 };
    }
    for step in 0..steps {
        for (t, &i) in inputs.iter().enumerate() {
            model.level_probabilities(i, hidden, &mut reconstruction[t * kk..][..kk]);
        }
        if step + 1 == steps && reconstruction_kind == Reconstruction::MeanField {
            break;
        }
        for (t, s) in sampled.iter_mut().enumerate() {
            *s = softmax::draw_level(&reconstruction[t * kk..][..kk], rng) as u8;
        }
        model.hidden_probabilities(inputs, sampled, implicit, negative);
        if step + 1 == steps {
            // Sampled reconstruction: the statistics of the sampled levels, one-hot.
            for (t, &l) in sampled.iter().enumerate() {
                let r = &mut reconstruction[t * kk..][..kk];
                r.fill(0.0);
                r[l as usize] = 1.0;
            }
            return;
        }
        for (h, &p) in hidden.iter_mut().zip(negative.iter()) {
            *h = if uniform01(rng) < p { 1.0 } else { 0.0 };
        }
    }
    // Final hidden probabilities from the mean-field reconstruction.
    model.hidden_input(&[], &[], implicit, negative);
    let w = model.rbm.weights().as_slice();
    for (t, &i) in inputs.iter().enumerate() {
        let probs = &reconstruction[t * kk..][..kk];
        for (k, &p) in probs.iter().enumerate() {
            let w = &w[(i as usize * kk + k) * f..][..f];
            negative.iter_mut().zip(w).for_each(|(o, w)| *o += p * w);
        }
    }
    negative.iter_mut().for_each(|x| *x = sigmoid(*x));
}

/// For each input, the (batch position, value position) pairs of the batch that observe it,
/// grouped by input in batch order (a counting sort: no comparison of floats or threads involved).
#[derive(Default)]
struct Touches {
    offsets: Vec<usize>,
    entries: Vec<(u32, u32)>,
}

impl Touches {
    fn build<'a>(&mut self, n_inputs: usize, lists: impl Iterator<Item = &'a [u32]> + Clone) {
        self.offsets.clear();
        self.offsets.resize(n_inputs + 1, 0);
        for list in lists.clone() {
            for &i in list {
                self.offsets[i as usize + 1] += 1;
            }
        }
        for i in 0..n_inputs {
            self.offsets[i + 1] += self.offsets[i];
        }
        self.entries.clear();
        self.entries.resize(self.offsets[n_inputs], (0, 0));
        let mut next = self.offsets[..n_inputs].to_vec();
        for (b, list) in lists.enumerate() {
            for (t, &i) in list.iter().enumerate() {
                self.entries[next[i as usize]] = (b as u32, t as u32);
                next[i as usize] += 1;
            }
        }
    }

    fn of(&self, input: usize) -> &[(u32, u32)] {
        &self.entries[self.offsets[input]..self.offsets[input + 1]]
    }
}

/// The unscaled gradient of `W[i]` (`gw`, `K x F`) and `b[i]` (`gb`, `K`) of one input from the
/// batch `entries` that observe it: `Σ (v⁺ p⁺(h) - p⁻(v) p⁻(h))`.
fn input_gradient(
    entries: &[(u32, u32)],
    cases: &Cases,
    batch: &[u32],
    phases: &Phases,
    gw: &mut [f32],
    gb: &mut [f32],
) {
    let (kk, f) = (gb.len(), gw.len() / gb.len());
    gw.fill(0.0);
    gb.fill(0.0);
    for &(bpos, t) in entries {
        let (bpos, t) = (bpos as usize, t as usize);
        let level = cases.observed(batch[bpos] as usize).1[t] as usize;
        let positive = &phases.positive[bpos * f..][..f];
        let negative = &phases.negative[bpos * f..][..f];
        let probs = &phases.reconstruction[(phases.starts[bpos] + t) * kk..][..kk];
        add_to(&mut gw[level * f..][..f], positive);
        gb[level] += 1.0;
        for (k, &p) in probs.iter().enumerate() {
            gw[k * f..][..f].iter_mut().zip(negative).for_each(|(g, n)| *g -= p * n);
            gb[k] -= p;
        }
    }
}

/// The unscaled gradient of `D[i]` from the batch `entries` whose conditioning set holds `i`.
fn conditioning_gradient(entries: &[(u32, u32)], phases: &Phases, gradient: &mut [f32]) {
    let f = gradient.len();
    gradient.fill(0.0);
    for &(bpos, _) in entries {
        let bpos = bpos as usize;
        let positive = &phases.positive[bpos * f..][..f];
        let negative = &phases.negative[bpos * f..][..f];
        for ((g, p), n) in gradient.iter_mut().zip(positive).zip(negative) {
            *g += p - n;
        }
    }
}

/// The CD-`steps` estimate of the log-likelihood gradient summed over the `batch` cases (not
/// divided by the batch size). Sampling uses block `c` of stream [`Stream::Gibbs`] `{ epoch:
/// stream }` for case `c`. This is exactly what training applies, exposed so that it can be
/// checked against the exact gradient of a tiny model.
pub fn batch_gradient(
    model: &ConditionalRbm,
    cases: &Cases,
    batch: &[u32],
    steps: usize,
    reconstruction: Reconstruction,
    seed: u64,
    stream: u64,
) -> Result<MaskedGradient> {
    cases.check(model.n_inputs(), model.levels)?;
    if let Some(&c) = batch.iter().find(|&&c| c as usize >= cases.len()) {
        return Err(RbmError::ShapeMismatch {
            what: "batch",
            expected: format!("case indices below {}", cases.len()),
            found: format!("case {c}"),
        });
    }
    let (f, kk, n_inputs) = (model.n_hidden(), model.levels, model.n_inputs());
    let mut phases = Phases::default();
    phases.run(model, cases, batch, Sampling { steps: steps.max(1), reconstruction, seed, epoch: stream });
    let mut touch = Touches::default();
    touch.build(n_inputs, batch.iter().map(|&c| cases.observed(c as usize).0));
    let mut weights = DMatrix::zeros(f, n_inputs * kk);
    let mut visible_bias = vec![0.0; n_inputs * kk];
    let mut hidden_bias = vec![0.0; f];
    phases.hidden_bias_gradient(&mut hidden_bias);
    for ((i, gw), gb) in weights.as_mut_slice().chunks_mut(kk * f).enumerate().zip(visible_bias.chunks_mut(kk)) {
        input_gradient(touch.of(i), cases, batch, &phases, gw, gb);
    }
    let conditioning = model.conditioning.as_ref().map(|_| {
        touch.build(n_inputs, batch.iter().map(|&c| cases.implicit(c as usize)));
        let mut d = DMatrix::zeros(f, n_inputs);
        for (i, column) in d.as_mut_slice().chunks_mut(f).enumerate() {
            conditioning_gradient(touch.of(i), &phases, column);
        }
        d
    });
    Ok(MaskedGradient { weights, visible_bias, hidden_bias, conditioning })
}

/// A gradient of a [`ConditionalRbm`], shaped like its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskedGradient {
    /// `n_hidden x (n_inputs * levels)`, like [`Rbm::weights`].
    pub weights: DMatrix<f32>,
    /// One per visible unit.
    pub visible_bias: Vec<f32>,
    /// One per hidden unit.
    pub hidden_bias: Vec<f32>,
    /// `n_hidden x n_inputs`, for a conditional model.
    pub conditioning: Option<DMatrix<f32>>,
}

/// One batch's cases and phase statistics, and which batch values observe each input.
#[derive(Clone, Copy)]
struct BatchView<'a> {
    cases: &'a Cases,
    batch: &'a [u32],
    phases: &'a Phases,
    touch: &'a Touches,
}

/// Gradient step on `W` and `b`, input by input in parallel (each input's columns belong to one
/// task), with the weights' and the biases' steps.
fn update_inputs(
    model: &mut ConditionalRbm,
    velocity: &mut Velocity,
    view: BatchView,
    scale: GradientScale,
    (weights_step, bias_step): (Sgd, Sgd),
) {
    let BatchView { cases, batch, phases, touch } = view;
    let (f, kk) = (model.n_hidden(), model.levels);
    let (w, b, _) = model.rbm.parameters_mut();
    w.as_mut_slice()
        .par_chunks_mut(kk * f)
        .zip(velocity.weights.par_chunks_mut(kk * f))
        .zip(b.as_mut_slice().par_chunks_mut(kk))
        .zip(velocity.visible_bias.par_chunks_mut(kk))
        .enumerate()
        .for_each_init(
            || vec![0.0f32; kk * f + kk],
            |gradient, (i, (((w, vw), b), vb))| {
                let entries = touch.of(i);
                let (gw, gb) = gradient.split_at_mut(kk * f);
                input_gradient(entries, cases, batch, phases, gw, gb);
                let n = scale.divisor(batch.len(), entries.len());
                weights_step.step(w, vw, gw, n);
                bias_step.step(b, vb, gb, n);
            },
        );
}

/// Gradient step on the conditioning matrix `D`: `ΔD[i] ∝ Σ_{cases with i ∈ r} (p⁺(h) - p⁻(h))`.
fn update_conditioning(
    model: &mut ConditionalRbm,
    velocity: &mut Velocity,
    phases: &Phases,
    touch: &Touches,
    batch_len: usize,
    scale: GradientScale,
    step: Sgd,
) {
    let f = model.n_hidden();
    let (Some(d), Some(vd)) = (model.conditioning.as_mut(), velocity.conditioning.as_mut()) else { return };
    d.as_mut_slice().par_chunks_mut(f).zip(vd.par_chunks_mut(f)).enumerate().for_each_init(
        || vec![0.0f32; f],
        |gradient, (i, (d, vd))| {
            let entries = touch.of(i);
            conditioning_gradient(entries, phases, gradient);
            step.step(d, vd, gradient, scale.divisor(batch_len, entries.len()));
        },
    );
}

/// RMSE of the mean-field predictions on held-out `(case, input, value)` targets.
fn validation_rmse(model: &ConditionalRbm, cases: &Cases, validation: &Validation) -> f64 {
    let squared: Vec<f64> = validation
        .targets
        .par_chunks(256)
        .map(|chunk| {
            let mut hidden = vec![0.0; model.n_hidden()];
            let mut scratch = vec![0.0; model.levels];
            let mut last = u32::MAX;
            chunk
                .iter()
                .map(|&(c, i, value)| {
                    if c != last {
                        let (inputs, levels) = cases.observed(c as usize);
                        model.hidden_probabilities(inputs, levels, cases.implicit(c as usize), &mut hidden);
                        last = c;
                    }
                    let predicted = model.expected_value(&hidden, i, validation.level_values, &mut scratch);
                    ((predicted - value) as f64).powi(2)
                })
                .sum::<f64>()
        })
        .collect();
    (squared.iter().sum::<f64>() / validation.targets.len().max(1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> MaskedParams {
        MaskedParams {
            hidden: 4,
            epochs: 2,
            batch_size: 3,
            learning_rate: 0.1,
            bias_learning_rate: 0.1,
            learning_rate_decay: 0.1,
            momentum: 0.9,
            weight_decay: 0.001,
            cd_steps: 1,
            growing_steps: true,
            gradient_scale: GradientScale::Batch,
            reconstruction: Reconstruction::MeanField,
            conditional: true,
            seed: 0,
        }
    }

    #[test]
    fn each_invalid_setting_has_its_own_error_naming_the_value() {
        type Case = (MaskedParams, fn(&RbmError) -> bool);
        let cases: Vec<Case> = vec![
            (MaskedParams { hidden: 0, ..params() }, |e| matches!(e, RbmError::InvalidHiddenUnits(0))),
            (MaskedParams { epochs: 0, ..params() }, |e| matches!(e, RbmError::InvalidEpochs(0))),
            (MaskedParams { batch_size: 0, ..params() }, |e| matches!(e, RbmError::InvalidBatchSize(0))),
            (MaskedParams { cd_steps: 0, ..params() }, |e| matches!(e, RbmError::InvalidGibbsSteps(0))),
            (
                MaskedParams { learning_rate: -1.0, ..params() },
                |e| matches!(e, RbmError::InvalidLearningRate(x) if *x == -1.0),
            ),
            (MaskedParams { bias_learning_rate: f32::NAN, ..params() }, |e| {
                matches!(e, RbmError::InvalidLearningRate(_))
            }),
            (
                MaskedParams { learning_rate_decay: -0.5, ..params() },
                |e| matches!(e, RbmError::InvalidLearningRateDecay(x) if *x == -0.5),
            ),
            (MaskedParams { momentum: 1.0, ..params() }, |e| matches!(e, RbmError::InvalidMomentum(x) if *x == 1.0)),
            (MaskedParams { weight_decay: -1.0, ..params() }, |e| matches!(e, RbmError::InvalidWeightDecay(_))),
        ];
        for (p, is_expected) in cases {
            let err = p.clone().check().expect_err("invalid settings were accepted");
            assert!(is_expected(&err), "{p:?} gave {err}");
            assert!(err.to_string().contains("(got "), "{err}");
        }
        assert!(params().check().is_ok());
    }

    #[test]
    fn growing_steps_follow_the_schedule() {
        let p = MaskedParams { epochs: 10, ..params() };
        let steps: Vec<usize> = (0..10).map(|e| p.steps_at(e)).collect();
        assert_eq!(steps, [1, 1, 1, 1, 3, 3, 5, 5, 9, 9]);
    }

    #[test]
    fn cases_out_of_range_are_shape_errors_not_panics() {
        let cases = Cases::new(2, &[(0, 1, 0), (1, 5, 2)], &[], true);
        let p = params().check().unwrap();
        let err = train(&cases, 3, 3, &p, None, |_| ControlFlow::Continue(())).unwrap_err();
        assert!(err.to_string().contains("input 5"), "{err}");
        let err = train(&cases, 6, 2, &p, None, |_| ControlFlow::Continue(())).unwrap_err();
        assert!(err.to_string().contains("level 2"), "{err}");
        assert!(train(&cases, 6, 3, &p, None, |_| ControlFlow::Continue(())).is_ok());
        // Validation targets and batches out of range are refused too.
        let values = [1.0, 2.0, 3.0];
        for (targets, level_values) in
            [(&[(2u32, 0u32, 1.0f32)][..], &values[..]), (&[(0, 9, 1.0)], &values), (&[], &values[..2])]
        {
            let v = Validation { targets, level_values };
            assert!(train(&cases, 6, 3, &p, Some(&v), |_| ControlFlow::Continue(())).is_err(), "{targets:?}");
        }
        let model = ConditionalRbm::zeros(6, 3, 2, true).unwrap();
        assert!(batch_gradient(&model, &cases, &[0, 2], 1, Reconstruction::Sampled, 0, 0).is_err());
        assert!(ConditionalRbm::zeros(6, 0, 2, true).unwrap_err().to_string().contains("got 0"));
        assert!(ConditionalRbm::zeros(6, 3, 0, true).is_err());
    }

    #[test]
    fn training_is_identical_on_one_and_two_threads() {
        let observed: Vec<(u32, u32, u8)> =
            (0..60u32).flat_map(|c| (0..4u32).map(move |k| (c, (c + k * 3) % 10, ((c * k) % 3) as u8))).collect();
        let cases = Cases::new(60, &observed, &[(0, 9), (5, 2)], true);
        let p = MaskedParams { epochs: 5, batch_size: 7, cd_steps: 2, ..params() }.check().unwrap();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| train(&cases, 10, 3, &p, None, |_| ControlFlow::Continue(())).unwrap().0)
        };
        assert_eq!(run(1), run(2));
    }

    #[test]
    fn cases_count_their_observed_values() {
        let cases = Cases::new(3, &[(0, 1, 0), (2, 5, 2), (2, 0, 1), (0, 4, 1)], &[(1, 3)], true);
        assert_eq!(cases.n_observed(), 4);
        assert_eq!(cases.observed(2), (&[5u32, 0][..], &[2u8, 1][..]), "in the order given");
        assert_eq!(Cases::new(2, &[], &[], false).n_observed(), 0);
    }

    #[test]
    fn the_level_limit_is_inclusive() {
        assert!(ConditionalRbm::zeros(2, MAX_MASKED_LEVELS, 1, false).is_ok());
        let err = ConditionalRbm::zeros(2, MAX_MASKED_LEVELS + 1, 1, false).unwrap_err();
        assert!(matches!(err, RbmError::InvalidMaskedLevels { levels, .. } if levels == MAX_MASKED_LEVELS + 1));
    }

    #[test]
    fn replicas_take_their_own_seed_and_learn_differently() {
        let observed: Vec<(u32, u32, u8)> =
            (0..30u32).flat_map(|c| (0..4u32).map(move |k| (c, (c + k * 3) % 10, ((c * k) % 3) as u8))).collect();
        let cases = Cases::new(30, &observed, &[], true);
        let p = MaskedParams { epochs: 2, seed: 1, ..params() }.check().unwrap();
        let replica = p.with_seed(7);
        assert_eq!(replica.seed, 7);
        assert_eq!(MaskedParams { seed: 1, ..(*replica).clone() }, *p, "only the seed changes");
        let fit = |p: &ValidMaskedParams| train(&cases, 10, 3, p, None, |_| ControlFlow::Continue(())).unwrap().0;
        assert_ne!(fit(&p), fit(&replica));
        assert_eq!(fit(&replica), fit(&p.with_seed(7)));
    }
}
