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

/// The visible part of the energy, `sum_i (v_i - b_i)^2 / 2`, in f64: each unit's `energy_term` summed
/// in order.
pub fn energy(values: &[f32], bias: &[f32]) -> f64 {
    values.iter().zip(bias).map(|(&v, &b)| energy_term(v, b)).sum()
}

/// One unit's term of [`energy`], `(v - b)^2 / 2`, in f64.
#[inline(always)]
pub(crate) fn energy_term(v: f32, b: f32) -> f64 {
    let (v, b) = (v as f64, b as f64);
    0.5 * (v - b) * (v - b)
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

/// Step of the quadrature grid of [`alternatives`], in standard deviations.
pub(crate) const QUADRATURE_STEP: f32 = 0.25;
/// How far beyond the extreme component means the grid reaches, in standard deviations.
pub(crate) const QUADRATURE_REACH: f32 = 9.0;
/// The most nodes of one column's grid: a model with absurd weights (a damaged or hand-made
/// file; training stops such weights as divergence) gets a coarser grid, not unbounded work.
pub(crate) const MAX_QUADRATURE_NODES: usize = 1 << 16;

/// The grid step for `[low, high]`: `preferred`, or coarser so that at most
/// [`MAX_QUADRATURE_NODES`] nodes cover it; `None` when the interval is not finite.
pub(crate) fn quadrature_step(low: f32, high: f32, preferred: f32) -> Option<f32> {
    let span = high - low;
    span.is_finite().then(|| preferred.max(span / MAX_QUADRATURE_NODES as f32))
}

/// A Gaussian column's alternatives: a uniform grid for the trapezoidal rule. Given the other
/// columns, the column's conditional density is a mixture of unit-variance Gaussians with means
/// `b + W_i h` (one per hidden state), all within `[b + reach[0], b + reach[1]]`; on such a
/// mixture the trapezoidal rule with step `s` errs by a factor of about `2 exp(-2 pi^2 / s^2)`
/// (1e-137 at `s` = 0.25), and the grid reaches 9 standard deviations past the extreme means
/// (where the tails hold under 1e-18 of the mass).
pub fn alternatives(bias: &[f32], reach: [f32; 2], out: &mut super::Alternatives) {
    let (low, high) = (bias[0] + reach[0] - QUADRATURE_REACH, bias[0] + reach[1] + QUADRATURE_REACH);
    let Some(step) = quadrature_step(low, high, QUADRATURE_STEP) else {
        // Infinite weights: no meaningful integral; one node keeps the work bounded.
        out.push(&[bias[0]], 0.0);
        return;
    };
    let steps = ((high - low) / step).ceil() as usize;
    let log_step = (step as f64).ln();
    for k in 0..=steps {
        out.push(&[low + k as f32 * step], log_step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_weights_get_a_bounded_grid() {
        let mut out = super::super::Alternatives::default();
        for reach in [[0.0f32, 1.0], [-3.6e6, 3.6e6], [f32::NEG_INFINITY, f32::INFINITY], [-1e38, 1e38]] {
            out.clear(1);
            alternatives(&[0.5], reach, &mut out);
            assert!(
                (1..=MAX_QUADRATURE_NODES + 2).contains(&out.log_weights.len()),
                "{reach:?}: {}",
                out.log_weights.len()
            );
        }
    }
}
