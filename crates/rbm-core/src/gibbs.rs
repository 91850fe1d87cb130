//! Block Gibbs sampling: `h ~ p(h | v)`, then `v ~ p(v | h)`, for many chains at once.

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::error::{RbmError, Result};
use crate::linalg::{Operand, gemm, sigmoid, softplus};
use crate::model::Rbm;
use crate::rng::RandomStreams;
use crate::skinny::SkinnyWeights;
use crate::units::VisibleKind;

/// The state of `cols` Gibbs chains and the buffers one step needs, all column-major with one
/// column per chain. Allocated once and reused by every step.
#[derive(Clone, Debug)]
pub(crate) struct ChainBuffers {
    /// Current visible sample, `n_visible x cols`.
    pub visible: Vec<f32>,
    /// `E[v | h]` of the last visible update, `n_visible x cols`.
    pub visible_means: Vec<f32>,
    /// `p(h = 1 | visible)`, `n_hidden x cols`.
    pub hidden_probabilities: Vec<f32>,
    /// Last hidden sample, `n_hidden x cols`.
    pub hidden: Vec<f32>,
    pub cols: usize,
    /// Whether `hidden_probabilities` belong to `visible` under some recent parameters: false
    /// from the chains' start until their first refresh (see [`ChainBuffers::take_hidden_refresh`]).
    pub hidden_current: bool,
}

impl ChainBuffers {
    pub fn new(n_visible: usize, n_hidden: usize, cols: usize) -> Self {
        let mut buffers = ChainBuffers {
            visible: Vec::new(),
            visible_means: Vec::new(),
            hidden_probabilities: Vec::new(),
            hidden: Vec::new(),
            cols: 0,
            hidden_current: false,
        };
        buffers.resize(n_visible, n_hidden, cols);
        buffers
    }

    /// Uses only the first `cols` chains (a short last batch) without reallocating.
    pub fn resize(&mut self, n_visible: usize, n_hidden: usize, cols: usize) {
        self.visible.resize(n_visible * cols, 0.0);
        self.visible_means.resize(n_visible * cols, 0.0);
        self.hidden_probabilities.resize(n_hidden * cols, 0.0);
        self.hidden.resize(n_hidden * cols, 0.0);
        self.cols = cols;
    }

    /// Sets chain `c`'s visible state to `column(c)` for every chain.
    pub fn start_at<'a>(&mut self, column: impl Fn(usize) -> &'a [f32]) {
        let n_visible = self.visible.len() / self.cols.max(1);
        for (c, chain) in self.visible.chunks_mut(n_visible).enumerate() {
            chain.copy_from_slice(column(c));
        }
        self.hidden_current = false;
    }

    /// Whether this update's chains take their hidden probabilities afresh from their visible
    /// state under the current parameters: always, but with `keep` (PCD chains that keep their
    /// hidden state, [`crate::Sampler::KeptHidden`]) for chains that already have some, from the
    /// end of the last update. Marks them current, as the caller's refresh (or, in pieces, its
    /// tasks' refresh) will make them.
    pub fn take_hidden_refresh(&mut self, keep: bool) -> bool {
        let kept = keep && self.hidden_current;
        self.hidden_current = true;
        !kept
    }

    /// Recomputes `hidden_probabilities` from `visible` (needed after the parameters change).
    pub fn refresh_hidden(&mut self, rbm: &Rbm) {
        rbm.hidden_probabilities_into(&self.visible, self.cols, &mut self.hidden_probabilities);
    }

    /// Runs `steps` full Gibbs steps from the current `hidden_probabilities`: `p(h | visible)`
    /// for the current parameters, or for the last update's (PCD chains that keep their hidden
    /// state, [`crate::Sampler::KeptHidden`]). Afterwards `visible` holds `v_k` and
    /// `hidden_probabilities` holds `p(h | v_k)`.
    pub fn run(&mut self, rbm: &Rbm, steps: usize, streams: &mut RandomStreams) {
        for _ in 0..steps {
            streams.bernoulli(&self.hidden_probabilities, &mut self.hidden);
            rbm.visible_means_into(&self.hidden, self.cols, &mut self.visible_means);
            streams.visible(rbm.layer(), &self.visible_means, &mut self.visible);
            rbm.hidden_probabilities_into(&self.visible, self.cols, &mut self.hidden_probabilities);
        }
    }
}

/// One piece of a set of chains, run on one thread: chains `first..first + visible.len() / nv`
/// of the whole set, with their slices of each buffer.
pub(crate) struct ChainPiece<'a> {
    pub first: usize,
    pub visible: &'a mut [f32],
    pub visible_means: &'a mut [f32],
    pub hidden_probabilities: &'a mut [f32],
    pub hidden: &'a mut [f32],
}

impl ChainPiece<'_> {
    /// `steps` Gibbs steps as [`ChainBuffers::run`] does, with serial products by `kernels`
    /// (`rbm`'s weights), drawing chain `c`'s values of step `t` from generator
    /// `(seed, first_stream + 2t [+ 1], c)`: hidden, then visible. The draws of a chain do not
    /// depend on how the chains are cut into pieces, so neither does the result.
    pub fn run(&mut self, rbm: &Rbm, kernels: &SkinnyWeights, steps: usize, seed: u64, first_stream: u64) {
        let (nv, nh) = (rbm.n_visible(), rbm.n_hidden());
        let chains = self.visible.len() / nv;
        for step in 0..steps as u64 {
            let hidden_stream = first_stream + 2 * step;
            for (c, (h, p)) in self.hidden.chunks_mut(nh).zip(self.hidden_probabilities.chunks(nh)).enumerate() {
                let mut rng = crate::rng::generator(seed, hidden_stream, (self.first + c) as u64);
                crate::units::bernoulli::sample(p, h, &mut rng);
            }
            kernels.visible_activations(self.hidden, chains, self.visible_means);
            let visible_stream = hidden_stream + 1;
            if rbm.layer().single_kind() == Some(VisibleKind::Bernoulli) {
                // Eight chains at a time, then two, then an odd one alone: the same draws, faster.
                crate::linalg::sigmoid_in_place(self.visible_means);
                let mut c = self.first as u64;
                let mut visible = self.visible.chunks_exact_mut(8 * nv);
                let mut means = self.visible_means.chunks_exact(8 * nv);
                for (v, m) in (&mut visible).zip(&mut means) {
                    let mut rngs: [_; 8] =
                        std::array::from_fn(|i| crate::rng::generator(seed, visible_stream, c + i as u64));
                    let mut v = v.chunks_exact_mut(nv);
                    let v: [&mut [f32]; 8] = std::array::from_fn(|_| v.next().expect("eight chains"));
                    let m: [&[f32]; 8] = std::array::from_fn(|i| &m[i * nv..(i + 1) * nv]);
                    crate::units::bernoulli::sample_eight(m, v, rngs.each_mut());
                    c += 8;
                }
                let mut visible = visible.into_remainder().chunks_exact_mut(2 * nv);
                let mut means = means.remainder().chunks_exact(2 * nv);
                for (v, m) in (&mut visible).zip(&mut means) {
                    let (v0, v1) = v.split_at_mut(nv);
                    let (m0, m1) = m.split_at(nv);
                    let mut r0 = crate::rng::generator(seed, visible_stream, c);
                    let mut r1 = crate::rng::generator(seed, visible_stream, c + 1);
                    crate::units::bernoulli::sample_two([m0, m1], [v0, v1], [&mut r0, &mut r1]);
                    c += 2;
                }
                let (v, m) = (visible.into_remainder(), means.remainder());
                if !v.is_empty() {
                    crate::units::bernoulli::sample(m, v, &mut crate::rng::generator(seed, visible_stream, c));
                }
            } else {
                for (c, (v, m)) in self.visible.chunks_mut(nv).zip(self.visible_means.chunks_mut(nv)).enumerate() {
                    rbm.layer().means_of(m);
                    let mut rng = crate::rng::generator(seed, visible_stream, (self.first + c) as u64);
                    rbm.layer().sample_of(m, v, &mut rng);
                }
            }
            kernels.hidden_activations(self.visible, chains, self.hidden_probabilities);
            crate::linalg::sigmoid_in_place(self.hidden_probabilities);
        }
    }
}

impl ChainBuffers {
    /// The chains cut into pieces of `piece` chains (the last may be shorter), for parallel work.
    pub fn pieces(&mut self, n_visible: usize, n_hidden: usize, piece: usize) -> Vec<ChainPiece<'_>> {
        let cols = self.cols;
        self.visible[..n_visible * cols]
            .chunks_mut(n_visible * piece)
            .zip(self.visible_means[..n_visible * cols].chunks_mut(n_visible * piece))
            .zip(self.hidden_probabilities[..n_hidden * cols].chunks_mut(n_hidden * piece))
            .zip(self.hidden[..n_hidden * cols].chunks_mut(n_hidden * piece))
            .enumerate()
            .map(|(i, (((visible, visible_means), hidden_probabilities), hidden))| ChainPiece {
                first: i * piece,
                visible,
                visible_means,
                hidden_probabilities,
                hidden,
            })
            .collect()
    }
}

/// Persistent Gibbs chains for PCD and for drawing samples: their state survives between calls.
#[derive(Clone, Debug)]
pub struct PersistentChains {
    buffers: ChainBuffers,
    streams: RandomStreams,
    /// The shape of the model the chains were made for.
    n_visible: usize,
    n_hidden: usize,
}

impl PersistentChains {
    /// `n_chains` chains started from `h ~ Bernoulli(0.5)` followed by `v ~ p(v | h)`.
    pub fn random(rbm: &Rbm, n_chains: usize, seed: u64) -> Self {
        let mut buffers = ChainBuffers::new(rbm.n_visible(), rbm.n_hidden(), n_chains);
        let mut streams = RandomStreams::new(seed);
        buffers.hidden_probabilities.fill(0.5);
        streams.bernoulli(&buffers.hidden_probabilities, &mut buffers.hidden);
        rbm.visible_means_into(&buffers.hidden, n_chains, &mut buffers.visible_means);
        streams.visible(rbm.layer(), &buffers.visible_means, &mut buffers.visible);
        // `advance` computes p(h | v) before stepping, so nothing more here.
        PersistentChains { buffers, streams, n_visible: rbm.n_visible(), n_hidden: rbm.n_hidden() }
    }

    /// Chains started at the columns of `start` (`n_visible x n_chains`).
    pub fn from_visible(rbm: &Rbm, start: &DMatrix<f32>, seed: u64) -> Result<Self> {
        rbm.check_visible_rows("chain start", start.nrows())?;
        let mut buffers = ChainBuffers::new(rbm.n_visible(), rbm.n_hidden(), start.ncols());
        buffers.visible.copy_from_slice(start.as_slice());
        let (n_visible, n_hidden) = (rbm.n_visible(), rbm.n_hidden());
        Ok(PersistentChains { buffers, streams: RandomStreams::new(seed), n_visible, n_hidden })
    }

    /// Number of chains.
    pub fn len(&self) -> usize {
        self.buffers.cols
    }

    /// Whether there are no chains.
    pub fn is_empty(&self) -> bool {
        self.buffers.cols == 0
    }

    /// Advances every chain by `steps` Gibbs steps under `rbm` (whose parameters may have changed
    /// since the last call; its shape must be the one the chains were made for).
    pub fn advance(&mut self, rbm: &Rbm, steps: usize) -> Result<()> {
        check_chain_shape(rbm, self.n_visible, self.n_hidden)?;
        self.buffers.refresh_hidden(rbm);
        self.buffers.run(rbm, steps, &mut self.streams);
        Ok(())
    }

    /// The chains' current visible states, `n_visible x n_chains`.
    pub fn visible(&self) -> DMatrix<f32> {
        DMatrix::from_column_slice(self.n_visible, self.buffers.cols, &self.buffers.visible)
    }

    /// The chains' `E[v | h]` from the last step (less noisy than the samples), `n_visible x n_chains`.
    pub fn visible_means(&self) -> DMatrix<f32> {
        DMatrix::from_column_slice(self.n_visible, self.buffers.cols, &self.buffers.visible_means)
    }
}

/// That `rbm` has the shape the chains were made for.
fn check_chain_shape(rbm: &Rbm, nv: usize, nh: usize) -> Result<()> {
    if (rbm.n_visible(), rbm.n_hidden()) != (nv, nh) {
        return Err(RbmError::ShapeMismatch {
            what: "model for these chains",
            expected: format!("{nv} visible and {nh} hidden units"),
            found: format!("{} visible and {} hidden units", rbm.n_visible(), rbm.n_hidden()),
        });
    }
    Ok(())
}

/// Runs `steps` Gibbs steps from each column of `start` and returns the final visible samples.
pub fn gibbs_sample(rbm: &Rbm, start: &DMatrix<f32>, steps: usize, seed: u64) -> Result<DMatrix<f32>> {
    let mut chains = PersistentChains::from_visible(rbm, start, seed)?;
    chains.advance(rbm, steps)?;
    Ok(chains.visible())
}

/// Parallel tempering (Desjardins et al. 2010; Cho, Raiko & Ilin 2010): `n_chains` chains at each
/// of several inverse temperatures `1 = beta_0 > beta_1 > ... > beta_{K-1} >= 0`, on the same path
/// of distributions as AIS (`crate::ais`): `p_beta(v, h)` proportional to
/// `exp(-(1 - beta) E_vis(v; b_A) - beta E(v, h))` with a base-rate model `b_A`. Each step is one
/// block Gibbs step at every temperature (all temperatures in one GEMM each way), then a proposed
/// swap of states between each pair of neighbouring temperatures, accepted with probability
/// `min(1, p*_k(v_{k+1}) p*_{k+1}(v_k) / (p*_k(v_k) p*_{k+1}(v_{k+1})))` on the visible marginals.
/// The hot chains mix easily (at `beta = 0` they are exact samples of the base model) and swaps
/// carry their states down to `beta = 1`, whose chains are the model's samples.
#[derive(Clone, Debug)]
pub struct TemperedChains {
    betas: Vec<f32>,
    base_bias: Vec<f32>,
    n_chains: usize,
    /// All temperatures' chains side by side: block `k` is columns `k C .. (k + 1) C`.
    buffers: ChainBuffers,
    /// `c + W v` of every chain, `n_hidden x K C`.
    hidden_input: Vec<f32>,
    streams: RandomStreams,
    n_visible: usize,
    n_hidden: usize,
    proposed: u64,
    accepted: u64,
}

impl TemperedChains {
    /// The default number of temperatures.
    pub const DEFAULT_TEMPERATURES: usize = 10;

    /// `temperatures` inverse temperatures evenly spaced from 1 down to 0, both included (1 alone
    /// for one temperature).
    pub fn even_betas(temperatures: usize) -> Vec<f32> {
        match temperatures {
            0 | 1 => vec![1.0],
            k => (0..k).map(|i| 1.0 - i as f32 / (k - 1) as f32).collect(),
        }
    }

    /// `n_chains` chains at each inverse temperature of `betas` (the first must be 1, the rest
    /// decreasing, all in [0, 1]), every one started at column `c % start.ncols()` of `start`
    /// (`n_visible x n`, in model units), with base-rate biases `base_bias` (see
    /// [`crate::ais::base_rate`]).
    pub fn new(
        rbm: &Rbm,
        base_bias: &[f32],
        betas: &[f32],
        n_chains: usize,
        start: &DMatrix<f32>,
        seed: u64,
    ) -> Result<Self> {
        let (nv, nh) = (rbm.n_visible(), rbm.n_hidden());
        rbm.check_visible_rows("chain start", start.nrows())?;
        if base_bias.len() != nv {
            return Err(RbmError::ShapeMismatch {
                what: "base-rate biases",
                expected: format!("{nv} values, one per visible unit"),
                found: format!("{} values", base_bias.len()),
            });
        }
        let ordered = betas.first() == Some(&1.0)
            && betas.windows(2).all(|w| w[1] < w[0])
            && betas.iter().all(|b| (0.0..=1.0).contains(b));
        if !ordered {
            return Err(RbmError::InvalidTemperatures(betas.len()));
        }
        if n_chains == 0 || start.ncols() == 0 {
            return Err(RbmError::InvalidChains(n_chains.min(start.ncols())));
        }
        let columns = betas.len() * n_chains;
        let mut buffers = ChainBuffers::new(nv, nh, columns);
        let values = start.as_slice();
        buffers.start_at(|c| {
            let s = (c % n_chains) % start.ncols();
            &values[s * nv..(s + 1) * nv]
        });
        Ok(TemperedChains {
            betas: betas.to_vec(),
            base_bias: base_bias.to_vec(),
            n_chains,
            buffers,
            hidden_input: vec![0.0; nh * columns],
            streams: RandomStreams::new(seed),
            n_visible: nv,
            n_hidden: nh,
            proposed: 0,
            accepted: 0,
        })
    }

    /// The inverse temperatures.
    pub fn betas(&self) -> &[f32] {
        &self.betas
    }

    /// The fraction of proposed swaps accepted so far (0 before any).
    pub fn swap_acceptance(&self) -> f64 {
        if self.proposed == 0 { 0.0 } else { self.accepted as f64 / self.proposed as f64 }
    }

    /// Advances every chain by `steps` tempered Gibbs steps, each followed by swaps, under `rbm`
    /// (whose parameters may have changed since the last call; its shape must be the same).
    pub fn advance(&mut self, rbm: &Rbm, steps: usize) -> Result<()> {
        check_chain_shape(rbm, self.n_visible, self.n_hidden)?;
        self.advance_checked(rbm, steps);
        Ok(())
    }

    /// [`TemperedChains::advance`] for a model of the right shape.
    pub(crate) fn advance_checked(&mut self, rbm: &Rbm, steps: usize) {
        let (nv, nh, chains) = (self.n_visible, self.n_hidden, self.n_chains);
        let columns = self.buffers.cols;
        rbm.hidden_activations_into(&self.buffers.visible, columns, &mut self.hidden_input);
        for _ in 0..steps {
            // h ~ sigmoid(beta_k (c + W v)) in each temperature's block.
            let betas = &self.betas;
            self.buffers
                .hidden_probabilities
                .par_chunks_mut(nh * chains)
                .zip(self.hidden_input.par_chunks(nh * chains))
                .enumerate()
                .for_each(|(k, (p, x))| p.iter_mut().zip(x).for_each(|(p, &x)| *p = sigmoid(betas[k] * x)));
            self.streams.bernoulli(&self.buffers.hidden_probabilities, &mut self.buffers.hidden);
            // v from activations (1 - beta_k) b_A + beta_k (b + W^T h).
            let means = &mut self.buffers.visible_means;
            gemm(
                1.0,
                Operand::new(rbm.weights().as_slice(), nh, nv).t(),
                Operand::new(&self.buffers.hidden, nh, columns),
                0.0,
                means,
            );
            let (b, base) = (rbm.visible_bias().as_slice(), &self.base_bias);
            means.par_chunks_mut(nv * chains).enumerate().for_each(|(k, block)| {
                let beta = betas[k];
                for column in block.chunks_mut(nv) {
                    for ((a, &b), &base) in column.iter_mut().zip(b).zip(base) {
                        *a = beta * (*a + b) + (1.0 - beta) * base;
                    }
                }
            });
            rbm.layer().means_columns(means);
            self.streams.visible(rbm.layer(), &self.buffers.visible_means, &mut self.buffers.visible);
            rbm.hidden_activations_into(&self.buffers.visible, columns, &mut self.hidden_input);
            self.swap(rbm);
        }
        // The coldest chains' p(h | v) at beta = 1, for gradients.
        let cold = &self.hidden_input[..nh * chains];
        self.buffers.hidden_probabilities[..nh * chains].iter_mut().zip(cold).for_each(|(p, &x)| *p = sigmoid(x));
    }

    /// Proposes a swap between every pair of neighbouring temperatures, from the hottest pair to
    /// the coldest, chain by chain, with one serial stream per step.
    fn swap(&mut self, rbm: &Rbm) {
        let (nv, nh, chains) = (self.n_visible, self.n_hidden, self.n_chains);
        let layer = rbm.layer();
        let b = rbm.visible_bias().as_slice();
        // Per column: E_A(v) and D(v) = E_B(v) - E_A(v).
        let energies: Vec<(f64, f64)> = self
            .buffers
            .visible
            .par_chunks(nv)
            .map(|v| {
                let base = layer.energy(v, &self.base_bias);
                (base, layer.energy(v, b) - base)
            })
            .collect();
        let mut energies = energies;
        let log_p = |beta: f32, (base, difference): (f64, f64), x: &[f32]| -> f64 {
            let beta = beta as f64;
            -base - beta * difference + x.iter().map(|&x| softplus(beta * x as f64)).sum::<f64>()
        };
        let mut rng = self.streams.serial();
        for k in (0..self.betas.len().saturating_sub(1)).rev() {
            let (cold, hot) = (self.betas[k], self.betas[k + 1]);
            for c in 0..chains {
                let (i, j) = (k * chains + c, (k + 1) * chains + c);
                let (xi, xj) = (&self.hidden_input[i * nh..(i + 1) * nh], &self.hidden_input[j * nh..(j + 1) * nh]);
                let log_ratio = log_p(cold, energies[j], xj) + log_p(hot, energies[i], xi)
                    - log_p(cold, energies[i], xi)
                    - log_p(hot, energies[j], xj);
                self.proposed += 1;
                let u = crate::rng::uniform01(&mut rng) as f64;
                if log_ratio >= 0.0 || u < log_ratio.exp() {
                    self.accepted += 1;
                    swap_columns(&mut self.buffers.visible, nv, i, j);
                    swap_columns(&mut self.hidden_input, nh, i, j);
                    energies.swap(i, j);
                }
            }
        }
    }

    /// Multiplies every chain's visible unit `i`, and the base rate's, by `ratio[i]` (a change of
    /// the visible units' scale: see learned variances in the trainer).
    pub(crate) fn scale_visible(&mut self, ratio: &[f32]) {
        for (x, r) in self.buffers.visible.iter_mut().zip(ratio.iter().cycle()) {
            *x *= r;
        }
        // The base rate of a Gaussian unit is a mean in the same units.
        self.base_bias.iter_mut().zip(ratio).for_each(|(b, r)| *b *= r);
    }

    /// Number of chains per temperature.
    pub fn n_chains(&self) -> usize {
        self.n_chains
    }

    /// The `beta = 1` chains' visible states, `n_visible x n_chains`.
    pub fn visible(&self) -> DMatrix<f32> {
        DMatrix::from_column_slice(
            self.n_visible,
            self.n_chains,
            &self.buffers.visible[..self.n_visible * self.n_chains],
        )
    }

    /// The `beta = 1` chains' visible states and `p(h | v)` (after [`Self::advance_checked`]).
    pub(crate) fn cold(&self) -> (&[f32], &[f32]) {
        let (nv, nh, c) = (self.n_visible, self.n_hidden, self.n_chains);
        (&self.buffers.visible[..nv * c], &self.buffers.hidden_probabilities[..nh * c])
    }
}

/// Swaps columns `i` and `j` (of `rows` values each) of a column-major buffer.
fn swap_columns(values: &mut [f32], rows: usize, i: usize, j: usize) {
    let (i, j) = (i.min(j), i.max(j));
    let (left, right) = values.split_at_mut(j * rows);
    left[i * rows..(i + 1) * rows].swap_with_slice(&mut right[..rows]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{VisibleKind, VisibleLayer};

    fn model() -> Rbm {
        let layer = VisibleLayer::uniform(VisibleKind::Bernoulli, 4).unwrap();
        let weights = DMatrix::from_fn(3, 4, |j, i| (j as f32 - 1.0) * 1.5 + i as f32 * 0.25);
        let visible_bias = nalgebra::DVector::from_fn(4, |i, _| i as f32 * 0.5 - 0.7);
        let hidden_bias = nalgebra::DVector::from_fn(3, |j, _| 0.3 - j as f32 * 0.4);
        Rbm::from_parameters(layer, weights, visible_bias, hidden_bias).unwrap()
    }

    #[test]
    fn each_temperature_block_draws_its_hidden_units_at_its_own_beta() {
        let rbm = model();
        let start = DMatrix::from_fn(4, 2, |i, c| ((i + c) % 2) as f32);
        let betas = [1.0, 0.5, 0.0];
        let mut chains = TemperedChains::new(&rbm, &[0.1, -0.2, 0.3, 0.0], &betas, 2, &start, 5).unwrap();
        let mut input = vec![0f32; 3 * 6];
        rbm.hidden_activations_into(&chains.buffers.visible, 6, &mut input);
        chains.advance(&rbm, 1).unwrap();
        // The hotter blocks keep the step's probabilities; the coldest is refreshed at the new
        // states after the step (for gradients), so it is left out.
        for (k, beta) in betas.iter().enumerate().skip(1) {
            for (p, x) in chains.buffers.hidden_probabilities[6 * k..6 * (k + 1)].iter().zip(&input[6 * k..6 * (k + 1)])
            {
                assert_eq!(*p, sigmoid(beta * x), "temperature {k}");
            }
        }
    }

    #[test]
    fn scaling_the_visible_units_multiplies_chains_and_base_rate() {
        let rbm = model();
        let start = DMatrix::from_fn(4, 1, |i, _| (i % 2) as f32);
        let mut chains = TemperedChains::new(&rbm, &[0.1, -0.2, 0.3, 0.0], &[1.0, 0.0], 1, &start, 5).unwrap();
        chains.scale_visible(&[2.0, 3.0, 0.5, 1.0]);
        assert_eq!(chains.buffers.visible, [0.0, 3.0, 0.0, 1.0, 0.0, 3.0, 0.0, 1.0]);
        assert_eq!(chains.base_bias, [0.2, -0.6, 0.15, 0.0]);
    }

    #[test]
    fn persistent_chains_count_their_chains() {
        let rbm = model();
        let chains = PersistentChains::random(&rbm, 3, 1);
        assert_eq!((chains.len(), chains.is_empty()), (3, false));
        assert_eq!(chains.visible().shape(), (4, 3));
    }
}
