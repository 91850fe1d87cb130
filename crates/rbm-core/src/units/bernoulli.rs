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

/// [`sample`] of two runs of units of the same length, each with its own generator: the same
/// draws as two calls, interleaved so that the generators' dependency chains overlap (about 1.5x
/// faster on the development machine).
pub fn sample_two<R: Rng + ?Sized>(means: [&[f32]; 2], out: [&mut [f32]; 2], rngs: [&mut R; 2]) {
    const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
    let [m0, m1] = means;
    let [o0, o1] = out;
    let [r0, r1] = rngs;
    assert!(m0.len() == m1.len() && o0.len() == m0.len() && o1.len() == m1.len(), "runs of different lengths");
    let pairs = m0.len() / 2;
    for k in 0..pairs {
        let (b0, b1) = (r0.next_u64(), r1.next_u64());
        for (bits, m, o) in [(b0, m0, &mut *o0), (b1, m1, &mut *o1)] {
            let (first, second) =
                ((bits >> 40) as i32 as f32 * SCALE, ((bits >> 16) & 0xFF_FFFF) as i32 as f32 * SCALE);
            o[2 * k] = if first < m[2 * k] { 1.0 } else { 0.0 };
            o[2 * k + 1] = if second < m[2 * k + 1] { 1.0 } else { 0.0 };
        }
    }
    if m0.len() % 2 == 1 {
        let last = m0.len() - 1;
        o0[last] = if uniform01(r0) < m0[last] { 1.0 } else { 0.0 };
        o1[last] = if uniform01(r1) < m1[last] { 1.0 } else { 0.0 };
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn two_runs_at_once_draw_what_two_calls_draw() {
        for len in [0, 1, 2, 7, 784, 785] {
            let means: Vec<f32> = (0..2 * len).map(|i| (i % 17) as f32 / 16.0).collect();
            let (m0, m1) = means.split_at(len);
            let (mut a0, mut a1) = (vec![0.5f32; len], vec![0.5f32; len]);
            let (mut r0, mut r1) = (Xoshiro256PlusPlus::seed_from_u64(1), Xoshiro256PlusPlus::seed_from_u64(2));
            sample_two([m0, m1], [&mut a0, &mut a1], [&mut r0, &mut r1]);
            let (mut b0, mut b1) = (vec![0.5f32; len], vec![0.5f32; len]);
            sample(m0, &mut b0, &mut Xoshiro256PlusPlus::seed_from_u64(1));
            sample(m1, &mut b1, &mut Xoshiro256PlusPlus::seed_from_u64(2));
            assert_eq!((a0, a1), (b0, b1), "length {len}");
            // Both generators advanced as far as the single calls advance them.
            let mut c0 = Xoshiro256PlusPlus::seed_from_u64(1);
            sample(m0, &mut vec![0.0; len], &mut c0);
            assert_eq!(r0.next_u64(), c0.next_u64());
        }
    }

    #[test]
    fn draws_follow_the_means() {
        // 0 and 1 are certain; 0.25 is drawn a quarter of the time (200,000 draws: 5 sd is 0.005).
        let means = vec![0.25f32; 200_000];
        let mut out = vec![0f32; means.len()];
        sample(&means, &mut out, &mut Xoshiro256PlusPlus::seed_from_u64(3));
        let rate = out.iter().sum::<f32>() as f64 / out.len() as f64;
        assert!((rate - 0.25).abs() < 0.005, "{rate}");
        let mut out = vec![0.5f32; 4];
        sample(&[0.0, 1.0, 0.0, 1.0], &mut out, &mut Xoshiro256PlusPlus::seed_from_u64(4));
        assert_eq!(out, [0.0, 1.0, 0.0, 1.0]);
    }
}
