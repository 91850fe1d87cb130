//! Deterministic parallel randomness.
//!
//! Every random draw of a computation belongs to a numbered *stream* (one per sampling call) and,
//! inside it, to a fixed-size *block* of the output. Each (seed, stream, block) triple seeds its
//! own `Xoshiro256PlusPlus`, so the values do not depend on how rayon schedules the blocks: the
//! same seed gives the same samples whatever the thread count.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

use crate::units::VisibleLayer;

/// Elements of an output filled by one generator.
const BLOCK: usize = 4096;

/// SplitMix64 finaliser: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A generator for one (seed, stream, block) triple. Callers that parallelise their own work
/// (the recommender, per training case) use it to give each fixed piece its own stream.
pub fn generator(seed: u64, stream: u64, block: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(mix(
        mix(seed ^ 0x5851_f42d_4c95_7f2d).wrapping_add(stream) ^ mix(block.wrapping_add(0x9e37_79b9))
    ))
}

/// The named random streams of the masked (per-case) path and of the data utilities. Each
/// (seed, stream) pair seeds its own generator, so the draws of one never shift another's; the
/// dense trainer numbers its streams in order with [`RandomStreams`] instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Gibbs sampling of the cases in one epoch (one block per case).
    Gibbs {
        /// Zero-based epoch.
        epoch: u64,
    },
    /// The order of the cases in one epoch.
    Shuffle {
        /// Zero-based epoch.
        epoch: u64,
    },
    /// Initial weights.
    Initialise,
    /// A seeded hold-out of training data (the recommender's blend).
    HoldOut,
    /// A seeded train/test split.
    Split,
    /// Synthetic data.
    Synthetic,
}

impl Stream {
    /// The stream number. The values are those the recommender used before it moved onto the
    /// core, so shuffles, hold-outs, splits and synthetic data keep their draws for a seed.
    fn id(self) -> u64 {
        match self {
            Stream::Gibbs { epoch } => epoch,
            Stream::Shuffle { epoch } => u64::MAX - epoch,
            Stream::Initialise => u64::MAX - 1_000_000,
            Stream::HoldOut => 0xb1e9d,
            Stream::Split => 0x5b17,
            Stream::Synthetic => 0x5e7,
        }
    }

    /// The generator of `block` of this stream under `seed`.
    pub fn generator(self, seed: u64, block: u64) -> Xoshiro256PlusPlus {
        generator(seed, self.id(), block)
    }
}

/// Fisher-Yates shuffle driven by `rng`.
pub fn shuffle<T, R: Rng + ?Sized>(items: &mut [T], rng: &mut R) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// `n_hidden x n_visible` weights drawn from `N(0, scale^2)`, visible unit by visible unit within
/// each hidden unit (the dense trainer's order since its first build, so its seeds keep their
/// initial weights; the recommender drew unit by unit before it used this, so its initial weights
/// changed once).
pub(crate) fn normal_weights<R: Rng + ?Sized>(
    n_hidden: usize,
    n_visible: usize,
    scale: f32,
    rng: &mut R,
) -> nalgebra::DMatrix<f32> {
    let mut weights = nalgebra::DMatrix::zeros(n_hidden, n_visible);
    for j in 0..n_hidden {
        for i in 0..n_visible {
            let z: f32 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
            weights[(j, i)] = scale * z;
        }
    }
    weights
}

/// A uniform number in [0, 1) from the top 24 bits of a draw.
#[inline]
pub fn uniform01<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    (rng.next_u64() >> 40) as i32 as f32 * (1.0 / (1u64 << 24) as f32)
}

/// The source of stream numbers for one seeded computation (a training run, a sampler).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RandomStreams {
    seed: u64,
    next: u64,
}

impl RandomStreams {
    /// Streams derived from `seed`, starting at stream 0.
    pub fn new(seed: u64) -> Self {
        RandomStreams { seed, next: 0 }
    }

    /// The seed the streams derive from.
    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    /// Claims the next stream number.
    pub(crate) fn claim(&mut self) -> u64 {
        let s = self.next;
        self.next += 1;
        s
    }

    /// A sequential generator on a fresh stream, for small serial work (shuffles, inits).
    pub(crate) fn serial(&mut self) -> Xoshiro256PlusPlus {
        let stream = self.claim();
        generator(self.seed, stream, u64::MAX)
    }

    /// `out[i] = 1` with probability `probabilities[i]`, else 0.
    pub(crate) fn bernoulli(&mut self, probabilities: &[f32], out: &mut [f32]) {
        let (seed, stream) = (self.seed, self.claim());
        out.par_chunks_mut(BLOCK).zip(probabilities.par_chunks(BLOCK)).enumerate().for_each(|(block, (out, p))| {
            crate::units::bernoulli::sample(p, out, &mut generator(seed, stream, block as u64));
        });
    }

    /// Draws visible values from their conditional means on a fresh stream (see
    /// [`VisibleLayer::sample_columns`]).
    pub(crate) fn visible(&mut self, layer: &VisibleLayer, means: &[f32], out: &mut [f32]) {
        let (seed, stream) = (self.seed, self.claim());
        layer.sample_columns(means, out, seed, stream);
    }
}
