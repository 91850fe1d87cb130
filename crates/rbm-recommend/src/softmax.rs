//! The RBM with K-way softmax visible units for the inputs a case has values for, and binary hidden
//! units (Salakhutdinov, Mnih & Hinton 2007). One model is shared by all cases; a case only has
//! visible units for its own observed inputs, so every sum below runs over those inputs alone.
//!
//! In the user-based orientation a case is a user and an input an item; in the item-based one the
//! roles swap. This module does not know which: it sees cases and inputs.
//!
//! Energy of a case with observed inputs `O` (levels `l_i`) and conditioning set `r`:
//! `E(v, h) = -Σ_{i∈O} b[i][l_i] - Σ_j h_j (c_j + Σ_{i∈O} W[i][l_i][j] + Σ_{i∈r} D[i][j])`.

use std::ops::ControlFlow;
use std::time::Instant;

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use rbm_core::{stream_generator, uniform01};

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

/// The parameters of a softmax-visible RBM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxRbm {
    /// Number of inputs (softmax groups).
    pub n_inputs: usize,
    /// Levels per softmax group (K).
    pub levels: usize,
    /// Number of hidden units (F).
    pub hidden: usize,
    /// `W[i][k][j]` at `(i * levels + k) * hidden + j`.
    pub weights: Vec<f32>,
    /// `b[i][k]` at `i * levels + k`.
    pub visible_bias: Vec<f32>,
    /// `c[j]`.
    pub hidden_bias: Vec<f32>,
    /// `D[i][j]` at `i * hidden + j`, for the conditional model.
    pub conditional: Option<Vec<f32>>,
}

impl SoftmaxRbm {
    /// Hidden pre-activations `c + Σ_{i∈O} W[i][l_i] + Σ_{i∈r} D[i]` for one case.
    pub fn hidden_input(&self, inputs: &[u32], levels: &[u8], implicit: &[u32], out: &mut [f32]) {
        let f = self.hidden;
        out.copy_from_slice(&self.hidden_bias);
        if let Some(d) = &self.conditional {
            for &i in implicit {
                add_to(out, &d[i as usize * f..][..f]);
            }
        }
        for (&i, &l) in inputs.iter().zip(levels) {
            add_to(out, &self.weights[(i as usize * self.levels + l as usize) * f..][..f]);
        }
    }

    /// `p(h_j = 1 | case)` for one case.
    pub fn hidden_probabilities(&self, inputs: &[u32], levels: &[u8], implicit: &[u32], out: &mut [f32]) {
        self.hidden_input(inputs, levels, implicit, out);
        out.iter_mut().for_each(|x| *x = rbm_core::sigmoid(*x));
    }

    /// `p(v_input = k | hidden)` for every level k, given hidden states or probabilities.
    pub fn level_probabilities(&self, input: u32, hidden: &[f32], out: &mut [f32]) {
        let (f, kk) = (self.hidden, self.levels);
        let base = input as usize * kk;
        for (k, o) in out.iter_mut().enumerate() {
            let w = &self.weights[(base + k) * f..][..f];
            *o = self.visible_bias[base + k] + dot(w, hidden);
        }
        softmax(&mut out[..kk]);
    }

    /// A model of the same shape with every parameter zero (momentum buffers, gradients).
    pub fn zeros_like(&self) -> SoftmaxRbm {
        SoftmaxRbm {
            weights: vec![0.0; self.weights.len()],
            visible_bias: vec![0.0; self.visible_bias.len()],
            hidden_bias: vec![0.0; self.hidden_bias.len()],
            conditional: self.conditional.as_ref().map(|d| vec![0.0; d.len()]),
            n_inputs: self.n_inputs,
            levels: self.levels,
            hidden: self.hidden,
        }
    }

    /// Whether every parameter is finite.
    pub fn is_finite(&self) -> bool {
        let all = |v: &[f32]| v.iter().all(|x| x.is_finite());
        all(&self.weights)
            && all(&self.visible_bias)
            && all(&self.hidden_bias)
            && self.conditional.as_deref().is_none_or(all)
    }
}

#[inline]
fn add_to(out: &mut [f32], row: &[f32]) {
    out.iter_mut().zip(row).for_each(|(o, w)| *o += w);
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorise without reassociation licence.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// In-place softmax, stable for large logits.
fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        total += *v;
    }
    x.iter_mut().for_each(|v| *v /= total);
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

/// Hyper-parameters of one softmax RBM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftmaxParams {
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

impl SoftmaxParams {
    /// The CD steps used in 0-based epoch `epoch`.
    pub fn steps_at(&self, epoch: usize) -> usize {
        if !self.growing_steps {
            return self.cd_steps;
        }
        let progress = epoch as f64 / self.epochs as f64;
        let schedule = [(0.8, 9), (0.6, 5), (0.4, 3)];
        schedule.iter().find(|(at, _)| progress >= *at).map_or(self.cd_steps, |&(_, t)| t.max(self.cd_steps))
    }
}

/// What one epoch did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SoftmaxEpoch {
    /// One-based epoch number.
    pub epoch: usize,
    /// Wall time of the epoch's updates.
    pub seconds: f64,
    /// CD steps used.
    pub cd_steps: usize,
    /// RMSE on the validation targets, when given.
    pub validation_rmse: Option<f64>,
}

/// Held-out `(case, input, value)` triples scored after every epoch.
pub struct Validation<'a> {
    /// The targets.
    pub targets: &'a [(u32, u32, f32)],
    /// The value of each level, for expected ratings.
    pub level_values: &'a [f32],
}

/// Trains a softmax RBM on `cases` with `n_inputs` inputs of `levels` levels. Returns the
/// (one-based) epoch after which parameters stopped being finite if training diverges.
///
/// Every input index in `cases` must be below `n_inputs` and every level below `levels`
/// (`Recommender::fit` guarantees it; an index out of range panics).
///
/// Deterministic for a seed whatever the thread count: each case draws from its own stream
/// (seed, epoch, case), and each input's update sums its cases in batch order.
pub fn train(
    cases: &Cases,
    n_inputs: usize,
    levels: usize,
    params: &SoftmaxParams,
    validation: Option<&Validation>,
    mut on_epoch: impl FnMut(&SoftmaxEpoch) -> ControlFlow<()>,
) -> Result<(SoftmaxRbm, Vec<SoftmaxEpoch>), usize> {
    let f = params.hidden;
    let mut rbm = initialise(cases, n_inputs, levels, params);
    let mut velocity = rbm.zeros_like();
    let mut order: Vec<u32> = (0..cases.len() as u32).collect();
    let mut history = Vec::with_capacity(params.epochs);
    let mut phases = Phases::default();
    let mut touch = Touches::default();
    let mut implicit_touch = Touches::default();
    for epoch in 0..params.epochs {
        let started = Instant::now();
        let steps = params.steps_at(epoch);
        let mut shuffle = stream_generator(params.seed, u64::MAX - epoch as u64, 0);
        for i in (1..order.len()).rev() {
            let j = (shuffle.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let decay = 1.0 / (1.0 + params.learning_rate_decay * epoch as f32);
        let rates = Rates {
            weights: params.learning_rate * decay,
            biases: params.bias_learning_rate * decay,
            momentum: if epoch == 0 { params.momentum.min(0.5) } else { params.momentum },
            weight_decay: params.weight_decay,
        };
        for batch in order.chunks(params.batch_size) {
            phases.run(&rbm, cases, batch, steps, params.reconstruction, params.seed, epoch as u64);
            touch.build(n_inputs, batch.iter().map(|&c| cases.observed(c as usize).0));
            update_inputs(&mut rbm, &mut velocity, cases, batch, &phases, &touch, params.gradient_scale, &rates);
            if rbm.conditional.is_some() {
                implicit_touch.build(n_inputs, batch.iter().map(|&c| cases.implicit(c as usize)));
                update_conditional(&mut rbm, &mut velocity, &phases, &implicit_touch, batch.len(), params, &rates);
            }
            // Hidden biases: one short vector, summed over the batch in order.
            for j in 0..f {
                let g = phases.hidden_bias_gradient(j, f);
                let v = &mut velocity.hidden_bias[j];
                *v = rates.momentum * *v + rates.biases * g / batch.len() as f32;
                rbm.hidden_bias[j] += *v;
            }
        }
        if !rbm.is_finite() {
            return Err(epoch + 1);
        }
        let validation_rmse = validation.map(|v| validation_rmse(&rbm, cases, v));
        let stats = SoftmaxEpoch {
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
    Ok((rbm, history))
}

/// Learning rates in force for one epoch.
struct Rates {
    weights: f32,
    biases: f32,
    momentum: f32,
    weight_decay: f32,
}

/// `W ~ N(0, 0.01²)`, `b[i][k] = log` of the smoothed frequency of level k at input i, `c = 0`,
/// `D = 0`.
fn initialise(cases: &Cases, n_inputs: usize, levels: usize, params: &SoftmaxParams) -> SoftmaxRbm {
    let f = params.hidden;
    let mut rng = stream_generator(params.seed, u64::MAX - 1_000_000, 0);
    let weights = (0..n_inputs * levels * f)
        .map(|_| {
            let z: f32 = StandardNormal.sample(&mut rng);
            0.01 * z
        })
        .collect();
    let mut counts = vec![0u32; n_inputs * levels];
    for (&i, &l) in cases.inputs.iter().zip(&cases.levels) {
        counts[i as usize * levels + l as usize] += 1;
    }
    let visible_bias = counts
        .chunks(levels)
        .flat_map(|c| {
            let total: u32 = c.iter().sum();
            c.iter().map(move |&n| ((n as f32 + 1.0) / (total as f32 + levels as f32)).ln())
        })
        .collect();
    SoftmaxRbm {
        n_inputs,
        levels,
        hidden: f,
        weights,
        visible_bias,
        hidden_bias: vec![0.0; f],
        conditional: params.conditional.then(|| vec![0.0; n_inputs * f]),
    }
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
    /// `Σ_cases (p⁺(h_j) - p⁻(h_j))` over the batch, in batch order.
    fn hidden_bias_gradient(&self, j: usize, f: usize) -> f32 {
        self.positive.iter().skip(j).step_by(f).zip(self.negative.iter().skip(j).step_by(f)).map(|(p, n)| p - n).sum()
    }

    /// Runs the positive and negative phases of `batch`, reusing this value's buffers.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        rbm: &SoftmaxRbm,
        cases: &Cases,
        batch: &[u32],
        steps: usize,
        kind: Reconstruction,
        seed: u64,
        epoch: u64,
    ) {
        let (f, kk) = (rbm.hidden, rbm.levels);
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
                    let mut rng = stream_generator(seed, epoch, c as u64);
                    sampled.resize(inputs.len(), 0);
                    let scratch = GibbsScratch { hidden, sampled };
                    let out = PhaseRows { positive, negative, reconstruction };
                    gibbs_case(rbm, inputs, levels, implicit, steps, kind, &mut rng, scratch, out);
                },
            );
    }
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
#[allow(clippy::too_many_arguments)]
fn gibbs_case(
    rbm: &SoftmaxRbm,
    inputs: &[u32],
    levels: &[u8],
    implicit: &[u32],
    steps: usize,
    reconstruction_kind: Reconstruction,
    rng: &mut rand_xoshiro::Xoshiro256PlusPlus,
    scratch: GibbsScratch,
    out: PhaseRows,
) {
    let (f, kk) = (rbm.hidden, rbm.levels);
    let GibbsScratch { hidden, sampled } = scratch;
    let PhaseRows { positive, negative, reconstruction } = out;
    rbm.hidden_probabilities(inputs, levels, implicit, positive);
    for (h, &p) in hidden.iter_mut().zip(positive.iter()) {
        *h = if uniform01(rng) < p { 1.0 } else { 0.0 };
    }
    for step in 0..steps {
        for (t, &i) in inputs.iter().enumerate() {
            rbm.level_probabilities(i, hidden, &mut reconstruction[t * kk..][..kk]);
        }
        if step + 1 == steps && reconstruction_kind == Reconstruction::MeanField {
            break;
        }
        for (t, s) in sampled.iter_mut().enumerate() {
            let u = uniform01(rng);
            let probs = &reconstruction[t * kk..][..kk];
            let mut acc = 0.0;
            *s = (kk - 1) as u8;
            for (k, &p) in probs.iter().enumerate() {
                acc += p;
                if u < acc {
                    *s = k as u8;
                    break;
                }
            }
        }
        rbm.hidden_probabilities(inputs, sampled, implicit, negative);
        if step + 1 == steps {
            // Sampled reconstruction: the statistics of the sampled levels, one-hot.
            for (t, &l) in sampled.iter().enumerate() {
                let r = &mut reconstruction[t * kk..][..kk];
                r.iter_mut().for_each(|x| *x = 0.0);
                r[l as usize] = 1.0;
            }
            return;
        }
        for (h, &p) in hidden.iter_mut().zip(negative.iter()) {
            *h = if uniform01(rng) < p { 1.0 } else { 0.0 };
        }
    }
    // Final hidden probabilities from the mean-field reconstruction.
    rbm.hidden_input(&[], &[], implicit, negative);
    for (t, &i) in inputs.iter().enumerate() {
        let probs = &reconstruction[t * kk..][..kk];
        for (k, &p) in probs.iter().enumerate() {
            let w = &rbm.weights[(i as usize * kk + k) * f..][..f];
            negative.iter_mut().zip(w).for_each(|(o, w)| *o += p * w);
        }
    }
    negative.iter_mut().for_each(|x| *x = rbm_core::sigmoid(*x));
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
    gw.iter_mut().for_each(|g| *g = 0.0);
    gb.iter_mut().for_each(|g| *g = 0.0);
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
fn conditional_gradient(entries: &[(u32, u32)], phases: &Phases, gradient: &mut [f32]) {
    let f = gradient.len();
    gradient.iter_mut().for_each(|g| *g = 0.0);
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
/// divided by the batch size), in the model's own layout. Sampling uses stream `(seed, stream,
/// case)`. This is exactly what training applies, exposed so it can be checked against the exact
/// gradient of a tiny model.
pub fn batch_gradient(
    rbm: &SoftmaxRbm,
    cases: &Cases,
    batch: &[u32],
    steps: usize,
    reconstruction: Reconstruction,
    seed: u64,
    stream: u64,
) -> SoftmaxRbm {
    let (f, kk) = (rbm.hidden, rbm.levels);
    let mut phases = Phases::default();
    phases.run(rbm, cases, batch, steps.max(1), reconstruction, seed, stream);
    let mut touch = Touches::default();
    touch.build(rbm.n_inputs, batch.iter().map(|&c| cases.observed(c as usize).0));
    let mut gradient = SoftmaxRbm { conditional: None, ..rbm.zeros_like() };
    for (j, g) in gradient.hidden_bias.iter_mut().enumerate() {
        *g = phases.hidden_bias_gradient(j, f);
    }
    for i in 0..rbm.n_inputs {
        let gw = &mut gradient.weights[i * kk * f..][..kk * f];
        let gb = &mut gradient.visible_bias[i * kk..][..kk];
        input_gradient(touch.of(i), cases, batch, &phases, gw, gb);
    }
    if rbm.conditional.is_some() {
        touch.build(rbm.n_inputs, batch.iter().map(|&c| cases.implicit(c as usize)));
        let mut d = vec![0.0; rbm.n_inputs * f];
        for (i, row) in d.chunks_mut(f).enumerate() {
            conditional_gradient(touch.of(i), &phases, row);
        }
        gradient.conditional = Some(d);
    }
    gradient
}

/// Gradient step on `W` and `b`, input by input in parallel (each input's rows belong to one task).
#[allow(clippy::too_many_arguments)]
fn update_inputs(
    rbm: &mut SoftmaxRbm,
    velocity: &mut SoftmaxRbm,
    cases: &Cases,
    batch: &[u32],
    phases: &Phases,
    touch: &Touches,
    scale: GradientScale,
    rates: &Rates,
) {
    let (f, kk) = (rbm.hidden, rbm.levels);
    rbm.weights
        .par_chunks_mut(kk * f)
        .zip(velocity.weights.par_chunks_mut(kk * f))
        .zip(rbm.visible_bias.par_chunks_mut(kk))
        .zip(velocity.visible_bias.par_chunks_mut(kk))
        .enumerate()
        .for_each_init(
            || vec![0.0f32; kk * f + kk],
            |gradient, (i, (((w, vw), b), vb))| {
                let entries = touch.of(i);
                let (gw, gb) = gradient.split_at_mut(kk * f);
                input_gradient(entries, cases, batch, phases, gw, gb);
                let n = scale.divisor(batch.len(), entries.len());
                for ((w, v), g) in w.iter_mut().zip(vw.iter_mut()).zip(gw.iter()) {
                    *v = rates.momentum * *v + rates.weights * (g / n - rates.weight_decay * *w);
                    *w += *v;
                }
                for ((b, v), g) in b.iter_mut().zip(vb.iter_mut()).zip(gb.iter()) {
                    *v = rates.momentum * *v + rates.biases * g / n;
                    *b += *v;
                }
            },
        );
}

/// Gradient step on the conditioning matrix `D`: `ΔD[i] ∝ Σ_{cases with i ∈ r} (p⁺(h) - p⁻(h))`.
fn update_conditional(
    rbm: &mut SoftmaxRbm,
    velocity: &mut SoftmaxRbm,
    phases: &Phases,
    touch: &Touches,
    batch_len: usize,
    params: &SoftmaxParams,
    rates: &Rates,
) {
    let f = rbm.hidden;
    let (Some(d), Some(vd)) = (rbm.conditional.as_mut(), velocity.conditional.as_mut()) else { return };
    d.par_chunks_mut(f).zip(vd.par_chunks_mut(f)).enumerate().for_each_init(
        || vec![0.0f32; f],
        |gradient, (i, (d, vd))| {
            let entries = touch.of(i);
            conditional_gradient(entries, phases, gradient);
            let n = params.gradient_scale.divisor(batch_len, entries.len());
            for ((d, v), g) in d.iter_mut().zip(vd.iter_mut()).zip(gradient.iter()) {
                *v = rates.momentum * *v + rates.weights * (g / n - rates.weight_decay * *d);
                *d += *v;
            }
        },
    );
}

/// Expected value of `input` for a case, from the mean-field hidden probabilities.
pub fn expected_value(rbm: &SoftmaxRbm, hidden: &[f32], input: u32, level_values: &[f32], scratch: &mut [f32]) -> f32 {
    rbm.level_probabilities(input, hidden, scratch);
    scratch.iter().zip(level_values).map(|(p, v)| p * v).sum()
}

/// RMSE of the mean-field predictions on held-out `(case, input, value)` targets.
fn validation_rmse(rbm: &SoftmaxRbm, cases: &Cases, validation: &Validation) -> f64 {
    let squared: Vec<f64> = validation
        .targets
        .par_chunks(256)
        .map(|chunk| {
            let mut hidden = vec![0.0; rbm.hidden];
            let mut scratch = vec![0.0; rbm.levels];
            let mut last = u32::MAX;
            chunk
                .iter()
                .map(|&(c, i, value)| {
                    if c != last {
                        let (inputs, levels) = cases.observed(c as usize);
                        rbm.hidden_probabilities(inputs, levels, cases.implicit(c as usize), &mut hidden);
                        last = c;
                    }
                    let predicted = expected_value(rbm, &hidden, i, validation.level_values, &mut scratch);
                    ((predicted - value) as f64).powi(2)
                })
                .sum::<f64>()
        })
        .collect();
    (squared.iter().sum::<f64>() / validation.targets.len().max(1) as f64).sqrt()
}
