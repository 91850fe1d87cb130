//! Real-valued visible units with unit variance on standardised data:
//! `v_i | h ~ N(b_i + W_i h, 1)`, energy `(v_i - b_i)^2 / 2`. Independent given `h`, so a group
//! of these is a run of units of any length. (A learned variance would be a per-unit parameter
//! held by the group: see docs/architecture.md.)

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// Whether each unit is independent of the others given `h`.
pub const ELEMENTWISE: bool = true;

/// Whether raw column values are standardised before these units see them.
pub const STANDARDISED: bool = true;

/// The default learning rate: Gaussian units' gradients are larger than binary ones' (Hinton's
/// guide, section 13.2, suggests one or two orders of magnitude smaller steps).
pub const DEFAULT_LEARNING_RATE: f64 = 0.005;

/// `E[v | h]` is the activation itself: nothing to do.
pub fn means(_activations: &mut [f32]) {}

/// `out[i] = means[i] + N(0, 1)`.
pub fn sample<R: Rng + ?Sized>(means: &[f32], out: &mut [f32], rng: &mut R) {
    for (o, &m) in out.iter_mut().zip(means) {
        let noise: f32 = StandardNormal.sample(rng);
        *o = m + noise;
    }
}

/// The visible part of the energy, `sum_i (v_i - b_i)^2 / 2`, in f64.
pub fn energy(values: &[f32], bias: &[f32]) -> f64 {
    values
        .iter()
        .zip(bias)
        .map(|(&v, &b)| {
            let (v, b) = (v as f64, b as f64);
            0.5 * (v - b) * (v - b)
        })
        .sum()
}

/// `sum_i log integral exp(-(v - b_i)^2 / 2 + v (a_i - b_i)) dv = sum_i (a_i^2 - b_i^2) / 2 +
/// log(2 pi) / 2` for activations `a = b + W h`.
pub fn log_partition(activations: &[f32], bias: &[f32]) -> f64 {
    activations
        .iter()
        .zip(bias)
        .map(|(&a, &b)| {
            let (a, b) = (a as f64, b as f64);
            0.5 * (a * a - b * b) + 0.5 * (2.0 * std::f64::consts::PI).ln()
        })
        .sum()
}

/// The first unit whose value is not finite, and why.
pub fn check(values: &[f32]) -> Option<(usize, &'static str)> {
    values.iter().position(|v| !v.is_finite()).map(|i| (i, "value is not a finite number"))
}

/// `b_i` = the unit's data mean (0 on standardised data).
pub fn initial_bias(means: &[f64], _samples: usize, out: &mut [f32]) {
    for (b, &mean) in out.iter_mut().zip(means) {
        *b = mean as f32;
    }
}
