//! Helpers shared by the integration tests: random small models, enumeration of binary states.
#![allow(dead_code)]

use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use rbm_core::{Rbm, VisibleKind, VisibleLayer};

pub fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Uniform in [-scale, scale).
pub fn uniform(rng: &mut Xoshiro256PlusPlus, scale: f32) -> f32 {
    ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
}

/// A model with weights and biases uniform in [-scale, scale).
pub fn random_rbm(kind: VisibleKind, nv: usize, nh: usize, scale: f32, seed: u64) -> Rbm {
    random_layer_rbm(VisibleLayer::uniform(kind, nv).unwrap(), nh, scale, seed)
}

/// A model of any visible layer with weights and biases uniform in [-scale, scale).
pub fn random_layer_rbm(layer: VisibleLayer, nh: usize, scale: f32, seed: u64) -> Rbm {
    let nv = layer.n_visible();
    let mut r = rng(seed);
    // Drawn visible-major (as before the weights were stored n_hidden x n_visible), then transposed.
    let w = DMatrix::from_fn(nv, nh, |_, _| uniform(&mut r, scale)).transpose();
    let b = DVector::from_fn(nv, |_, _| uniform(&mut r, scale));
    let c = DVector::from_fn(nh, |_, _| uniform(&mut r, scale));
    Rbm::from_parameters(layer, w, b, c).unwrap()
}

/// The `n` bits of `state` as 0/1 values, least significant first.
pub fn bits(state: u64, n: usize) -> Vec<f32> {
    (0..n).map(|j| ((state >> j) & 1) as f32).collect()
}

/// All `2^n` binary vectors as columns of an `n x 2^n` matrix, column `s` holding `bits(s)`.
pub fn all_binary(n: usize) -> DMatrix<f32> {
    DMatrix::from_fn(n, 1 << n, |i, s| ((s >> i) & 1) as f32)
}

/// `-log sum_h exp(-E(v, h))` by brute force over the hidden states.
pub fn brute_free_energy(rbm: &Rbm, v: &[f32]) -> f64 {
    let nh = rbm.n_hidden();
    let terms: Vec<f64> = (0..1u64 << nh).map(|s| -rbm.energy(v, &bits(s, nh)).unwrap()).collect();
    -rbm_core::log_sum_exp(&terms)
}

/// Exact `p(v)` of every binary visible vector of a small Bernoulli model, by brute force over
/// all joint states.
pub fn exact_visible_distribution(rbm: &Rbm) -> Vec<f64> {
    let nv = rbm.n_visible();
    let log_unnorm: Vec<f64> = (0..1u64 << nv).map(|s| -brute_free_energy(rbm, &bits(s, nv))).collect();
    let log_z = rbm_core::log_sum_exp(&log_unnorm);
    log_unnorm.iter().map(|l| (l - log_z).exp()).collect()
}

/// Index of a binary column.
pub fn state_of(column: &[f32]) -> usize {
    column.iter().enumerate().map(|(i, &x)| if x > 0.5 { 1 << i } else { 0 }).sum()
}
