//! Binary visible units: `p(v_i = 1 | h) = sigmoid(b_i + W_i h)`, energy `-b_i v_i`. Each unit is
//! independent of the others given `h`, so a group of these is a run of units of any length.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

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

/// Units drawn per block: the 8 generator outputs of a block are taken one after another (the
/// generator is sequential), then converted and compared 16 at a time in SIMD lanes.
const BLOCK: usize = 16;

/// The uniform in [0, 1) of 24 bits of a generator output.
const SCALE: f32 = 1.0 / (1u32 << 24) as f32;

/// `out[i] = 1` with probability `means[i]`, else 0: one 24-bit uniform draw per unit, two from
/// each 64-bit output of the generator (bits 40-63, then 16-39; xoshiro256++'s bits are all of
/// full quality), which halves the generator's share of sampling time.
pub fn sample<R: Rng + ?Sized>(means: &[f32], out: &mut [f32], rng: &mut R) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { sample_avx512(means, out, rng) };
    }
    sample_portable(means, out, rng);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sample_avx512<R: Rng + ?Sized>(means: &[f32], out: &mut [f32], rng: &mut R) {
    assert_eq!(means.len(), out.len(), "means and outputs differ in length");
    let mut out_blocks = out.chunks_exact_mut(BLOCK);
    let mut mean_blocks = means.chunks_exact(BLOCK);
    for (o, m) in (&mut out_blocks).zip(&mut mean_blocks) {
        let bits: [u64; BLOCK / 2] = std::array::from_fn(|_| rng.next_u64());
        draw_block_avx512(&bits, m, o);
    }
    sample_pairs(mean_blocks.remainder(), out_blocks.into_remainder(), rng);
}

#[inline(always)]
fn sample_portable<R: Rng + ?Sized>(means: &[f32], out: &mut [f32], rng: &mut R) {
    assert_eq!(means.len(), out.len(), "means and outputs differ in length");
    sample_pairs(means, out, rng);
}

/// Draws a block of [`BLOCK`] units from [`BLOCK`]` / 2` generator outputs, as [`sample_pairs`]
/// does, in the 16 lanes of one AVX-512 register. Seen as 32-bit lanes, output `k` is `L_k` in
/// lane `2k` and `H_k` in lane `2k + 1`; unit `2k` takes `H_k >> 8` (bits 40-63) and unit
/// `2k + 1` takes `(H_k & 0xFF) << 16 | L_k >> 16` (bits 16-39).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn draw_block_avx512(bits: &[u64; BLOCK / 2], means: &[f32], out: &mut [f32]) {
    // SAFETY: only inlined into functions compiled with AVX-512F (whose callers check the CPU);
    // the load covers the array.
    draw_bits_avx512(unsafe { std::arch::x86_64::_mm512_loadu_si512(bits.as_ptr().cast()) }, means, out);
}

/// [`draw_block_avx512`] of the 8 generator outputs held in the 64-bit lanes of `v`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn draw_bits_avx512(v: std::arch::x86_64::__m512i, means: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!(means.len() >= BLOCK && out.len() >= BLOCK);
    // SAFETY: only inlined into functions compiled with AVX-512F (whose callers check the CPU);
    // the loads and the store cover BLOCK values of slices checked just above.
    unsafe {
        // Each pair of 32-bit lanes swapped: H_k in lane 2k, L_k in lane 2k + 1.
        let swapped = _mm512_shuffle_epi32::<0b10_11_00_01>(v);
        let first = _mm512_srli_epi32::<8>(swapped);
        let second = _mm512_or_si512(
            _mm512_slli_epi32::<16>(_mm512_and_si512(v, _mm512_set1_epi32(0xFF))),
            _mm512_srli_epi32::<16>(swapped),
        );
        let units = _mm512_mask_blend_epi32(0xAAAA, first, second);
        let uniforms = _mm512_mul_ps(_mm512_cvtepi32_ps(units), _mm512_set1_ps(SCALE));
        let on = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(uniforms, _mm512_loadu_ps(means.as_ptr()));
        _mm512_storeu_ps(out.as_mut_ptr(), _mm512_maskz_mov_ps(on, _mm512_set1_ps(1.0)));
    }
}

/// The draws of [`sample`] one pair of units per generator output, and the last unit of an odd
/// run from an output of its own.
#[inline(always)]
fn sample_pairs<R: Rng + ?Sized>(means: &[f32], out: &mut [f32], rng: &mut R) {
    let mut out_pairs = out.chunks_exact_mut(2);
    let mut mean_pairs = means.chunks_exact(2);
    for (o, p) in (&mut out_pairs).zip(&mut mean_pairs) {
        let bits = rng.next_u64();
        let (first, second) = ((bits >> 40) as i32 as f32 * SCALE, ((bits >> 16) & 0xFF_FFFF) as i32 as f32 * SCALE);
        o[0] = if first < p[0] { 1.0 } else { 0.0 };
        o[1] = if second < p[1] { 1.0 } else { 0.0 };
    }
    for (o, &p) in out_pairs.into_remainder().iter_mut().zip(mean_pairs.remainder()) {
        *o = if uniform01(rng) < p { 1.0 } else { 0.0 };
    }
}

/// [`sample`] of two runs of units of the same length, each with its own generator: the same
/// draws as two calls, interleaved so that the generators' dependency chains overlap.
pub fn sample_two<R: Rng + ?Sized>(means: [&[f32]; 2], out: [&mut [f32]; 2], rngs: [&mut R; 2]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { sample_two_avx512(means, out, rngs) };
    }
    sample_two_portable(means, out, rngs);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sample_two_avx512<R: Rng + ?Sized>(means: [&[f32]; 2], out: [&mut [f32]; 2], rngs: [&mut R; 2]) {
    let [m0, m1] = means;
    let [o0, o1] = out;
    let [r0, r1] = rngs;
    assert!(m0.len() == m1.len() && o0.len() == m0.len() && o1.len() == m1.len(), "runs of different lengths");
    let blocks = m0.len() / BLOCK;
    for k in 0..blocks {
        let mut bits = [[0u64; BLOCK / 2]; 2];
        let [b0, b1] = &mut bits;
        for (x0, x1) in b0.iter_mut().zip(b1) {
            (*x0, *x1) = (r0.next_u64(), r1.next_u64());
        }
        let units = k * BLOCK..(k + 1) * BLOCK;
        draw_block_avx512(&bits[0], &m0[units.clone()], &mut o0[units.clone()]);
        draw_block_avx512(&bits[1], &m1[units.clone()], &mut o1[units]);
    }
    let rest = blocks * BLOCK;
    sample_pairs(&m0[rest..], &mut o0[rest..], r0);
    sample_pairs(&m1[rest..], &mut o1[rest..], r1);
}

#[inline(always)]
fn sample_two_portable<R: Rng + ?Sized>(means: [&[f32]; 2], out: [&mut [f32]; 2], rngs: [&mut R; 2]) {
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
    let rest = 2 * pairs;
    sample_pairs(&m0[rest..], &mut o0[rest..], r0);
    sample_pairs(&m1[rest..], &mut o1[rest..], r1);
}

/// [`sample`] of eight runs of units of the same length, each with its own generator: the same
/// draws as eight calls. The eight generators step together, one in each 64-bit lane of the
/// AVX-512 registers (xoshiro256++ is shifts, rotations, additions and exclusive ors, all
/// lane-wise), and each block's 8 x 8 outputs are transposed so that every run gets its own 8
/// outputs in order; without AVX-512, eight calls.
pub fn sample_eight(means: [&[f32]; 8], out: [&mut [f32]; 8], rngs: [&mut Xoshiro256PlusPlus; 8]) {
    let len = means[0].len();
    assert!(means.iter().all(|m| m.len() == len) && out.iter().all(|o| o.len() == len), "runs of different lengths");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { sample_eight_avx512(means, out, rngs) };
    }
    for ((m, o), r) in means.into_iter().zip(out).zip(rngs) {
        sample(m, o, r);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sample_eight_avx512(means: [&[f32]; 8], mut out: [&mut [f32]; 8], rngs: [&mut Xoshiro256PlusPlus; 8]) {
    use std::arch::x86_64::*;
    // state[k][c]: word k of run c's generator.
    let mut state = [[0u64; 8]; 4];
    for (c, rng) in rngs.iter().enumerate() {
        let bytes = rng.state();
        for (k, word) in bytes.chunks_exact(8).enumerate() {
            state[k][c] = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        }
    }
    let blocks = means[0].len() / BLOCK;
    // SAFETY: the loads and stores cover the four 8-word arrays of `state`.
    let [mut s0, mut s1, mut s2, mut s3] = state.map(|words| unsafe { _mm512_loadu_si512(words.as_ptr().cast()) });
    for k in 0..blocks {
        // outputs[t]: every generator's t-th output of this block.
        let outputs: [__m512i; 8] = std::array::from_fn(|_| {
            let result = _mm512_add_epi64(_mm512_rol_epi64::<23>(_mm512_add_epi64(s0, s3)), s0);
            let t = _mm512_slli_epi64::<17>(s1);
            s2 = _mm512_xor_si512(s2, s0);
            s3 = _mm512_xor_si512(s3, s1);
            s1 = _mm512_xor_si512(s1, s2);
            s0 = _mm512_xor_si512(s0, s3);
            s2 = _mm512_xor_si512(s2, t);
            s3 = _mm512_rol_epi64::<45>(s3);
            result
        });
        let runs = transpose_8x8_avx512(outputs);
        let units = k * BLOCK..(k + 1) * BLOCK;
        for ((bits, m), o) in runs.into_iter().zip(means).zip(out.iter_mut()) {
            draw_bits_avx512(bits, &m[units.clone()], &mut o[units.clone()]);
        }
    }
    for (words, s) in state.iter_mut().zip([s0, s1, s2, s3]) {
        // SAFETY: see the loads above.
        unsafe { _mm512_storeu_si512(words.as_mut_ptr().cast(), s) };
    }
    let rest = blocks * BLOCK;
    for (c, ((rng, m), o)) in rngs.into_iter().zip(means).zip(out).enumerate() {
        let mut bytes = [0u8; 32];
        for (k, word) in bytes.chunks_exact_mut(8).enumerate() {
            word.copy_from_slice(&state[k][c].to_le_bytes());
        }
        // Not all zero (xoshiro never reaches that state), so the state round-trips exactly.
        *rng = Xoshiro256PlusPlus::from_seed(bytes);
        sample_pairs(&m[rest..], &mut o[rest..], rng);
    }
}

/// The 8 x 8 transpose of 64-bit lanes: lane `c` of input `t` becomes lane `t` of output `c`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn transpose_8x8_avx512(rows: [std::arch::x86_64::__m512i; 8]) -> [std::arch::x86_64::__m512i; 8] {
    use std::arch::x86_64::*;
    // SAFETY: only inlined into functions compiled with AVX-512F; register operations only.
    unsafe {
        // Pairs: a[2i] = (r[2i][0], r[2i+1][0], r[2i][2], r[2i+1][2], ...), a[2i+1] the odd lanes.
        let a: [__m512i; 8] = std::array::from_fn(|j| {
            let (x, y) = (rows[j & !1], rows[j | 1]);
            if j % 2 == 0 { _mm512_unpacklo_epi64(x, y) } else { _mm512_unpackhi_epi64(x, y) }
        });
        // Quads: b[4h + q] holds lanes {q, q + 4} (q = 0..3) of rows 4h..4h+3.
        let low = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
        let high = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
        let b: [__m512i; 8] = std::array::from_fn(|j| {
            let (h, q) = (j / 4, j % 4);
            let (x, y) = (a[4 * h + (q & 1)], a[4 * h + 2 + (q & 1)]);
            _mm512_permutex2var_epi64(x, if q < 2 { low } else { high }, y)
        });
        // Columns: lane c of every row.
        let first = _mm512_set_epi64(11, 10, 9, 8, 3, 2, 1, 0);
        let second = _mm512_set_epi64(15, 14, 13, 12, 7, 6, 5, 4);
        std::array::from_fn(|c| {
            let (x, y) = (b[c % 4], b[4 + c % 4]);
            _mm512_permutex2var_epi64(x, if c < 4 { first } else { second }, y)
        })
    }
}

/// The visible part of the energy, `-sum_i b_i v_i`, in f64: each unit's `energy_term` summed in order.
pub fn energy(values: &[f32], bias: &[f32]) -> f64 {
    values.iter().zip(bias).map(|(&v, &b)| energy_term(v, b)).sum()
}

/// One unit's term of [`energy`], `-b v`, in f64.
#[inline(always)]
pub(crate) fn energy_term(v: f32, b: f32) -> f64 {
    -(b as f64) * v as f64
}

/// `sum_i log sum_{v_i in {0,1}} exp(v_i a_i) = sum_i softplus(a_i)` for activations `a = b + W h`.
pub fn log_partition(activations: &[f32], _bias: &[f32]) -> f64 {
    crate::linalg::softplus_sum(activations)
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
    fn eight_runs_at_once_draw_what_eight_calls_draw() {
        for len in [0, 1, 15, 16, 17, 33, 784, 785] {
            let means: Vec<f32> = (0..8 * len).map(|i| (i % 19) as f32 / 18.0).collect();
            let runs: Vec<&[f32]> = if len == 0 { vec![&[][..]; 8] } else { means.chunks(len).collect() };
            let mut together = vec![vec![0.5f32; len]; 8];
            let mut rngs: Vec<Xoshiro256PlusPlus> =
                (0..8).map(|c| Xoshiro256PlusPlus::seed_from_u64(100 + c)).collect();
            {
                let mut out = together.iter_mut();
                let mut r = rngs.iter_mut();
                sample_eight(
                    std::array::from_fn(|c| runs[c]),
                    std::array::from_fn(|_| out.next().unwrap().as_mut_slice()),
                    std::array::from_fn(|_| r.next().unwrap()),
                );
            }
            for c in 0..8 {
                let mut alone = vec![0.5f32; len];
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(100 + c as u64);
                sample_pairs(runs[c], &mut alone, &mut rng);
                assert_eq!(together[c], alone, "length {len}, run {c}");
                // The generator is left where the single call leaves it.
                assert_eq!(rngs[c].next_u64(), rng.next_u64(), "length {len}, run {c}");
            }
        }
    }

    #[test]
    fn blocks_draw_what_pairs_draw() {
        for len in [0, 1, 15, 16, 17, 33, 784] {
            let means: Vec<f32> = (0..len).map(|i| (i % 13) as f32 / 12.0).collect();
            let (mut blocked, mut paired) = (vec![0.5f32; len], vec![0.5f32; len]);
            let (mut a, mut b) = (Xoshiro256PlusPlus::seed_from_u64(9), Xoshiro256PlusPlus::seed_from_u64(9));
            sample(&means, &mut blocked, &mut a);
            sample_pairs(&means, &mut paired, &mut b);
            let mut portable = vec![0.5f32; len];
            let mut c = Xoshiro256PlusPlus::seed_from_u64(9);
            sample_two_portable([&means, &means], [&mut portable, &mut vec![0.0; len]], [&mut c, &mut b.clone()]);
            assert_eq!(portable, paired, "length {len}");
            assert_eq!(blocked, paired, "length {len}");
            assert_eq!(a.next_u64(), b.next_u64(), "length {len}");
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
