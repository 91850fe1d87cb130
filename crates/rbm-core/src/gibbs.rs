//! Block Gibbs sampling: `h ~ p(h | v)`, then `v ~ p(v | h)`, for many chains at once.

use nalgebra::DMatrix;

use crate::error::{RbmError, Result};
use crate::model::Rbm;
use crate::rng::RandomStreams;

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
}

impl ChainBuffers {
    pub fn new(n_visible: usize, n_hidden: usize, cols: usize) -> Self {
        let mut buffers = ChainBuffers {
            visible: Vec::new(),
            visible_means: Vec::new(),
            hidden_probabilities: Vec::new(),
            hidden: Vec::new(),
            cols: 0,
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
    }

    /// Recomputes `hidden_probabilities` from `visible` (needed after the parameters change).
    pub fn refresh_hidden(&mut self, rbm: &Rbm) {
        rbm.hidden_probabilities_into(&self.visible, self.cols, &mut self.hidden_probabilities);
    }

    /// Runs `steps` full Gibbs steps from the current `hidden_probabilities`, which must be
    /// `p(h | visible)` for the current parameters. Afterwards `visible` holds `v_k` and
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
        let (nv, nh) = (self.n_visible, self.n_hidden);
        if (rbm.n_visible(), rbm.n_hidden()) != (nv, nh) {
            return Err(RbmError::ShapeMismatch {
                what: "model for these chains",
                expected: format!("{nv} visible and {nh} hidden units"),
                found: format!("{} visible and {} hidden units", rbm.n_visible(), rbm.n_hidden()),
            });
        }
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

/// Runs `steps` Gibbs steps from each column of `start` and returns the final visible samples.
pub fn gibbs_sample(rbm: &Rbm, start: &DMatrix<f32>, steps: usize, seed: u64) -> Result<DMatrix<f32>> {
    let mut chains = PersistentChains::from_visible(rbm, start, seed)?;
    chains.advance(rbm, steps)?;
    Ok(chains.visible())
}
