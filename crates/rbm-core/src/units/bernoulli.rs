//! Binary visible units: `p(v_i = 1 | h) = sigmoid(b_i + W_i h)`, energy `-b_i v_i`. Each unit is
//! independent of the others given `h`, so a group of these is a run of units of any length.

use rand::Rng;

use crate::linalg::softplus;
use crate::rng::uniform01;

/// Whether each unit is independent of the others given `h`.
pub const ELEMENTWISE: bool = true;

/// Whether raw column values are standardised before these units see them.
pub const STANDARDISED: bool = false;

/// The default learning rate for layers of these units (Hinton's guide: about 0.01-0.1 for
/// binary data; 0.05 measured well on MNIST-shaped data, docs/benchmarks.md).
pub const DEFAULT_LEARNING_RATE: f64 = 0.05;

/// `E[v | h]` in place: `sigmoid` of each activation.
pub fn means(activations: &mut [f32]) {
    crate::linalg::sigmoid_in_place(activations);
}

/// `out[i] = 1` with probability `means[i]`, else 0: one 24-bit uniform draw per unit, two from
/// each 64-bit output of the generator (bits 40-63, then 16-39; xoshiro256++'s bits are all of
/// full quality), which halves the generator's share of sampling time.
pub fn sample<R: Rng + ?Sized>(means: &[f32], out: &mut [f32], rng: &mut R) {
    const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
    let mut out_pairs = out.chunks_exact_mut(2);
    let mut mean_pairs = means.chunks_exact(2);
    for (o, p) in (&mut out_pairs).zip(&mut mean_pairs) {
        let bits = rng.next_u64();
        // Through i32: 24-bit values convert exactly either way, and x86-64 converts a signed
        // 32-bit integer in one instruction but an unsigned 64-bit one in several.
        let (first, second) = ((bits >> 40) as i32 as f32 * SCALE, ((bits >> 16) & 0xFF_FFFF) as i32 as f32 * SCALE);
        o[0] = if first < p[0] { 1.0 } else { 0.0 };
        o[1] = if second < p[1] { 1.0 } else { 0.0 };
    }
    for (o, &p) in out_pairs.into_remainder().iter_mut().zip(mean_pairs.remainder()) {
        *o = if uniform01(rng) < p { 1.0 } else { 0.0 };
    }
}

/// The visible part of the energy, `-sum_i b_i v_i`, in f64.
pub fn energy(values: &[f32], bias: &[f32]) -> f64 {
    values.iter().zip(bias).map(|(&v, &b)| -(b as f64) * v as f64).sum()
}

/// `sum_i log sum_{v_i in {0,1}} exp(v_i a_i) = sum_i softplus(a_i)` for activations `a = b + W h`.
pub fn log_partition(activations: &[f32], _bias: &[f32]) -> f64 {
    activations.iter().map(|&a| softplus(a as f64)).sum()
}

/// The first unit whose value is not in [0, 1] (fractional values are probabilities, as for
/// grey-level images), and why.
pub fn check(values: &[f32]) -> Option<(usize, &'static str)> {
    values.iter().position(|v| !(0.0..=1.0).contains(v)).map(|i| {
        let reason = if values[i].is_finite() {
            "Bernoulli visible units need values in [0, 1] (use Gaussian units for real-valued data)"
        } else {
            "value is not a finite number"
        };
        (i, reason)
    })
}

/// Hinton's initialisation: `b_i = log(p_i / (1 - p_i))` of each unit's data mean `p_i`, clamped
/// to [0.001, 0.999] so that constant units get a finite bias.
pub fn initial_bias(means: &[f64], _samples: usize, out: &mut [f32]) {
    for (b, &mean) in out.iter_mut().zip(means) {
        let p = mean.clamp(1e-3, 1.0 - 1e-3);
        *b = (p / (1.0 - p)).ln() as f32;
    }
}

/// A Bernoulli column's alternatives: 0 and 1.
pub fn alternatives(_bias: &[f32], _reach: [f32; 2], out: &mut super::Alternatives) {
    out.push(&[0.0], 0.0);
    out.push(&[1.0], 0.0);
}
