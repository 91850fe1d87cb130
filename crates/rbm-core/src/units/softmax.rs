//! A softmax group: K visible units of which exactly one is on (a categorical value with K
//! levels, one-hot), `p(v = e_k | h) = exp(a_k) / sum_l exp(a_l)` with `a = b + W h`; energy
//! `-sum_k b_k v_k`. The group's units are not independent given `h`, so one group is exactly one
//! categorical variable and its K units.

use rand::Rng;

use crate::rng::uniform01;

/// Whether each unit is independent of the others given `h`.
pub const ELEMENTWISE: bool = false;

/// Whether raw column values are standardised before these units see them.
pub const STANDARDISED: bool = false;

/// The default learning rate: a one-hot group's gradient is bounded like a binary unit's.
pub const DEFAULT_LEARNING_RATE: f64 = 0.05;

/// `E[v | h]` in place: the softmax of the activations, stable for large logits.
pub fn means(activations: &mut [f32]) {
    let max = activations.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for v in activations.iter_mut() {
        *v = (*v - max).exp();
        total += *v;
    }
    activations.iter_mut().for_each(|v| *v /= total);
}

/// The level drawn with one uniform number from the level probabilities `means` (the last
/// level when rounding leaves the cumulative sum just below the draw).
pub fn draw_level<R: Rng + ?Sized>(means: &[f32], rng: &mut R) -> usize {
    let u = uniform01(rng);
    let mut cumulative = 0.0;
    for (k, &p) in means.iter().enumerate() {
        cumulative += p;
        if u < cumulative {
            return k;
        }
    }
    means.len() - 1
}

/// `out` = the one-hot vector of a level drawn from `means`.
pub fn sample<R: Rng + ?Sized>(means: &[f32], out: &mut [f32], rng: &mut R) {
    let level = draw_level(means, rng);
    out.fill(0.0);
    out[level] = 1.0;
}

/// The visible part of the energy, `-sum_k b_k v_k`, in f64: each unit's `energy_term` summed in order.
pub fn energy(values: &[f32], bias: &[f32]) -> f64 {
    values.iter().zip(bias).map(|(&v, &b)| energy_term(v, b)).sum()
}

/// One unit's term of [`energy`], `-b_k v_k`, in f64.
#[inline(always)]
pub(crate) fn energy_term(v: f32, b: f32) -> f64 {
    -(b as f64) * v as f64
}

/// `log sum_k exp(a_k)`: the group sums over its K one-hot states (stable: the largest is taken
/// out first).
pub fn log_partition(activations: &[f32], _bias: &[f32]) -> f64 {
    let max = activations.iter().map(|&a| a as f64).fold(f64::NEG_INFINITY, f64::max);
    max + activations.iter().map(|&a| (a as f64 - max).exp()).sum::<f64>().ln()
}

/// Why `values` is not a one-hot vector, if it is not (the unit named is the first offending one).
pub fn check(values: &[f32]) -> Option<(usize, &'static str)> {
    if let Some(i) = values.iter().position(|&v| v != 0.0 && v != 1.0) {
        return Some((i, "softmax (categorical) units need one-hot values: each unit 0 or 1"));
    }
    match values.iter().filter(|&&v| v == 1.0).count() {
        1 => None,
        0 => Some((0, "softmax (categorical) units need exactly one unit on in each group, found none")),
        _ => Some((
            values.iter().rposition(|&v| v == 1.0).unwrap_or(0),
            "softmax (categorical) units need exactly one unit on in each group, found several",
        )),
    }
}

/// `b_k = log` of the level's smoothed frequency `(n_k + 1) / (n + K)`: the model without hidden
/// units then reproduces the data's level frequencies (add-one smoothing keeps unseen levels finite).
pub fn initial_bias(means: &[f64], samples: usize, out: &mut [f32]) {
    let (n, levels) = (samples as f64, means.len() as f64);
    for (b, &mean) in out.iter_mut().zip(means) {
        *b = ((mean * n + 1.0) / (n + levels)).ln() as f32;
    }
}

/// A categorical column's alternatives: each of its K levels, one-hot.
pub fn alternatives(bias: &[f32], _reach: [f32; 2], out: &mut super::Alternatives) {
    let mut one_hot = vec![0.0; bias.len()];
    for k in 0..bias.len() {
        one_hot[k] = 1.0;
        out.push(&one_hot, 0.0);
        one_hot[k] = 0.0;
    }
}
