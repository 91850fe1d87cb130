//! Products for batches too small to split across threads: a piece of a few samples against a
//! model with few hidden units (tens), run on one thread.
//!
//! A general GEMM (matrixmultiply, measured here) packs its operands on every call; for the
//! shapes of a small model (16 hidden x 784 visible x 16 samples) the packing cost more than the
//! multiply-adds (a profile of the 16-hidden MNIST job: packing 19% of the time, the kernel 17%).
//! These kernels read the weights in place instead, with the unit dimension of each product in
//! SIMD lanes and several samples sharing every load of a weight vector, and keep the
//! accumulators in registers. Each output element is one fused multiply-add chain in a fixed
//! order (the inner dimension ascending), whatever the pieces and on every instruction set (a
//! fused multiply-add is exactly rounded), so results do not depend on the number of threads.

/// SIMD lanes of one accumulator vector (one AVX-512 register of f32).
const LANES: usize = 16;

/// One vector of lanes.
type Lanes = [f32; LANES];

/// Visible units per block of the visible kernel and per tile of [`SkinnyWeights`]' layouts.
pub(crate) const TILE: usize = 2 * LANES;

/// A model's weights laid out for these kernels, refreshed after each parameter update.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct SkinnyWeights {
    n_hidden: usize,
    n_visible: usize,
    /// `n_hidden` rounded up to a multiple of [`LANES`].
    hidden_pad: usize,
    /// `n_visible` rounded up to a multiple of [`TILE`] (the visible kernel's block).
    visible_pad: usize,
    /// `W` by visible unit: unit `i`'s `n_hidden` weights at `i * hidden_pad`, zero-padded.
    by_visible: Vec<f32>,
    /// `W` by hidden unit, in tiles of [`TILE`] visible units: tile `t` holds, for each hidden
    /// unit `j` in turn, the weights of visible units `t * TILE ..` (zero-padded), at
    /// `t * TILE * n_hidden + j * TILE`. A tile is what the visible kernel reads for one block of
    /// units, in order, and what a gradient task of those units refreshes (see [`KernelTile`]).
    by_hidden: Vec<f32>,
    /// Hidden biases, zero-padded to `hidden_pad`.
    hidden_bias: Vec<f32>,
    /// Visible biases, zero-padded to `visible_pad`.
    visible_bias: Vec<f32>,
}

impl SkinnyWeights {
    /// Copies the parameters of a model with weights `weights` (`n_hidden x n_visible`,
    /// column-major: visible unit `i`'s weights contiguous) and the given biases.
    pub(crate) fn refresh(&mut self, weights: &[f32], visible_bias: &[f32], hidden_bias: &[f32]) {
        let (nv, nh) = (visible_bias.len(), hidden_bias.len());
        assert_eq!(weights.len(), nv * nh, "weights do not match the biases");
        let (hp, vp) = (nh.next_multiple_of(LANES), nv.next_multiple_of(TILE));
        if (self.n_hidden, self.n_visible) != (nh, nv) {
            *self = SkinnyWeights {
                n_hidden: nh,
                n_visible: nv,
                hidden_pad: hp,
                visible_pad: vp,
                by_visible: vec![0.0; hp * nv],
                by_hidden: vec![0.0; nh * vp],
                hidden_bias: vec![0.0; hp],
                visible_bias: vec![0.0; vp],
            };
        }
        self.refresh_hidden_bias(hidden_bias);
        let tiles = weights.chunks(TILE * nh).zip(visible_bias.chunks(TILE));
        for (mut tile, (weights, visible_bias)) in self.tiles_mut().zip(tiles) {
            tile.refresh(weights, visible_bias);
        }
    }

    /// Copies the hidden biases (the rest of [`SkinnyWeights::refresh`] being done tile by tile).
    pub(crate) fn refresh_hidden_bias(&mut self, hidden_bias: &[f32]) {
        self.hidden_bias[..self.n_hidden].copy_from_slice(hidden_bias);
    }

    /// The layouts' parts for each tile of [`TILE`] visible units, in order: disjoint, so that
    /// tasks may refresh them side by side.
    pub(crate) fn tiles_mut(&mut self) -> impl Iterator<Item = KernelTile<'_>> {
        let (nh, hp) = (self.n_hidden, self.hidden_pad);
        self.by_visible
            .chunks_mut(TILE * hp)
            .zip(self.by_hidden.chunks_mut(TILE * nh.max(1)))
            .zip(self.visible_bias.chunks_mut(TILE))
            .map(move |((by_visible, by_hidden), visible_bias)| KernelTile {
                n_hidden: nh,
                hidden_pad: hp,
                by_visible,
                by_hidden,
                visible_bias,
            })
    }

    /// Whether the layouts are those of a model of these sizes (they are after a refresh).
    pub(crate) fn has_shape(&self, n_visible: usize, n_hidden: usize) -> bool {
        (self.n_visible, self.n_hidden) == (n_visible, n_hidden) && !self.by_visible.is_empty()
    }

    /// `out = c + W^T v` for `cols` visible vectors `v` (`n_visible x cols`), `n_hidden x cols`.
    pub(crate) fn hidden_activations(&self, v: &[f32], cols: usize, out: &mut [f32]) {
        assert!(v.len() >= self.n_visible * cols && out.len() >= self.n_hidden * cols, "buffers too short");
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, checked just above.
                return unsafe { hidden_activations_avx512(self, v, cols, out) };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                return unsafe { hidden_activations_avx2(self, v, cols, out) };
            }
        }
        hidden_activations_portable(self, v, cols, out);
    }

    /// `out = b + W h` for `cols` hidden vectors `h` (`n_hidden x cols`), `n_visible x cols`.
    pub(crate) fn visible_activations(&self, h: &[f32], cols: usize, out: &mut [f32]) {
        assert!(h.len() >= self.n_hidden * cols && out.len() >= self.n_visible * cols, "buffers too short");
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, checked just above.
                return unsafe { visible_activations_avx512(self, h, cols, out) };
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has AVX2 and FMA, checked just above.
                return unsafe { visible_activations_avx2(self, h, cols, out) };
            }
        }
        visible_activations_portable(self, h, cols, out);
    }

    /// `n_hidden` rounded up to the kernels' lanes: the row length of [`pad_hidden`]'s output.
    pub(crate) fn hidden_pad(&self) -> usize {
        self.hidden_pad
    }
}

/// The part of [`SkinnyWeights`]' layouts that holds one tile of [`TILE`] visible units (fewer
/// for the last tile): their rows of `by_visible`, their tile of `by_hidden` and their biases.
#[derive(Debug)]
pub(crate) struct KernelTile<'a> {
    n_hidden: usize,
    hidden_pad: usize,
    by_visible: &'a mut [f32],
    by_hidden: &'a mut [f32],
    visible_bias: &'a mut [f32],
}

impl KernelTile<'_> {
    /// Copies the tile's units' weights (`n_hidden` per unit, unit by unit, as the model holds
    /// them) and visible biases into the layouts.
    pub(crate) fn refresh(&mut self, weights: &[f32], visible_bias: &[f32]) {
        let (nh, hp, units) = (self.n_hidden, self.hidden_pad, visible_bias.len());
        assert!(units <= TILE && weights.len() == units * nh, "one tile's weights and biases");
        self.visible_bias[..units].copy_from_slice(visible_bias);
        for (padded, column) in self.by_visible.chunks_exact_mut(hp).zip(weights.chunks_exact(nh)) {
            padded[..nh].copy_from_slice(column);
        }
        // The transpose: hidden unit j's row of the tile takes each unit's j-th weight.
        for (j, row) in self.by_hidden.chunks_exact_mut(TILE).enumerate() {
            for (w, column) in row.iter_mut().zip(weights.chunks_exact(nh)) {
                *w = column[j];
            }
        }
    }
}

/// Copies `cols` hidden vectors (`n_hidden` each) into rows of `hidden_pad` values, zero-padded,
/// as [`weight_gradient_columns`] reads them.
pub(crate) fn pad_hidden(hidden: &[f32], n_hidden: usize, hidden_pad: usize, cols: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(hidden_pad * cols, 0.0);
    for (padded, h) in out.chunks_exact_mut(hidden_pad).zip(hidden[..n_hidden * cols].chunks_exact(n_hidden)) {
        padded[..n_hidden].copy_from_slice(h);
    }
}

/// One phase's statistics for [`weight_gradient_columns`]: `cols` visible vectors (`n_visible`
/// each) and their hidden vectors padded by [`pad_hidden`], with the weight `scale` of the phase.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PhaseStatistics<'a> {
    pub visible: &'a [f32],
    pub hidden_padded: &'a [f32],
    pub cols: usize,
    pub scale: f32,
}

/// `out[:, i] = beta * out[:, i] + a.scale * sum_s a.h_s a.v_s[i] + b.scale * sum_s b.h_s b.v_s[i]`
/// for visible units `i = first .. first + out.len() / n_hidden`, with `out` those columns of an
/// `n_hidden x n_visible` column-major matrix: the weight gradient of two phases, in place.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_gradient_columns(
    n_visible: usize,
    n_hidden: usize,
    hidden_pad: usize,
    a: PhaseStatistics<'_>,
    b: PhaseStatistics<'_>,
    beta: f32,
    first: usize,
    out: &mut [f32],
) {
    let units = out.len() / n_hidden.max(1);
    assert!(first + units <= n_visible && hidden_pad >= n_hidden && hidden_pad.is_multiple_of(LANES), "bad shape");
    for phase in [a, b] {
        assert!(phase.visible.len() >= n_visible * phase.cols && phase.hidden_padded.len() >= hidden_pad * phase.cols);
    }
    let shape = GradientShape { n_visible, n_hidden, hidden_pad, first };
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { weight_gradient_avx512(shape, a, b, beta, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { weight_gradient_avx2(shape, a, b, beta, out) };
        }
    }
    weight_gradient_portable(shape, a, b, beta, out);
}

#[derive(Clone, Copy)]
struct GradientShape {
    n_visible: usize,
    n_hidden: usize,
    hidden_pad: usize,
    first: usize,
}

/// The same kernel compiled for each instruction set: the generic body, with the vector type of
/// that set, is inlined into a function compiled with its features.
macro_rules! instruction_sets {
    ($generic:ident, $portable:ident, $avx2:ident, $avx512:ident, ($($arg:ident: $ty:ty),*)) => {
        fn $portable($($arg: $ty),*) {
            $generic::<Portable>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $avx2($($arg: $ty),*) {
            $generic::<Avx2>($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,fma")]
        fn $avx512($($arg: $ty),*) {
            $generic::<Avx512>($($arg),*)
        }
    };
}

instruction_sets!(
    hidden_activations_generic,
    hidden_activations_portable,
    hidden_activations_avx2,
    hidden_activations_avx512,
    (k: &SkinnyWeights, v: &[f32], cols: usize, out: &mut [f32])
);
instruction_sets!(
    visible_activations_generic,
    visible_activations_portable,
    visible_activations_avx2,
    visible_activations_avx512,
    (k: &SkinnyWeights, h: &[f32], cols: usize, out: &mut [f32])
);
instruction_sets!(
    weight_gradient_generic,
    weight_gradient_portable,
    weight_gradient_avx2,
    weight_gradient_avx512,
    (shape: GradientShape, a: PhaseStatistics<'_>, b: PhaseStatistics<'_>, beta: f32, out: &mut [f32])
);

/// A vector of [`LANES`] f32 on one instruction set. The methods are only called from functions
/// compiled with that set's features (see `instruction_sets!`), on pointers to at least
/// [`LANES`] readable (or writable) values.
trait Vector: Copy {
    type V: Copy;
    /// All lanes 0.
    fn zero() -> Self::V;
    /// All lanes `x`.
    fn splat(x: f32) -> Self::V;
    /// # Safety
    /// `p` points to [`LANES`] readable f32 and the CPU has the set's features.
    unsafe fn load(p: *const f32) -> Self::V;
    /// # Safety
    /// `p` points to [`LANES`] writable f32 and the CPU has the set's features.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a * b + c`, fused (rounded once).
    fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a * b`.
    fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a + b`.
    fn add(a: Self::V, b: Self::V) -> Self::V;
}

/// Plain arrays: any CPU (`mul_add` is exactly rounded everywhere, so the bits are the same).
#[derive(Clone, Copy)]
struct Portable;

impl Vector for Portable {
    type V = Lanes;
    #[inline(always)]
    fn zero() -> Lanes {
        [0.0; LANES]
    }
    #[inline(always)]
    fn splat(x: f32) -> Lanes {
        [x; LANES]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Lanes {
        // SAFETY: the caller's contract.
        unsafe { p.cast::<Lanes>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Lanes) {
        // SAFETY: the caller's contract.
        unsafe { p.cast::<Lanes>().write_unaligned(v) }
    }
    #[inline(always)]
    fn fma(a: Lanes, b: Lanes, c: Lanes) -> Lanes {
        std::array::from_fn(|l| a[l].mul_add(b[l], c[l]))
    }
    #[inline(always)]
    fn mul(a: Lanes, b: Lanes) -> Lanes {
        std::array::from_fn(|l| a[l] * b[l])
    }
    #[inline(always)]
    fn add(a: Lanes, b: Lanes) -> Lanes {
        std::array::from_fn(|l| a[l] + b[l])
    }
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Two 8-lane AVX2 registers.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx2;

// SAFETY (every `unsafe` block of these two impls): the methods are only inlined into functions
// compiled with the set's features, which `instruction_sets!`'s callers check at run time.
#[cfg(target_arch = "x86_64")]
impl Vector for Avx2 {
    type V = [__m256; 2];
    #[inline(always)]
    fn zero() -> Self::V {
        unsafe { [_mm256_setzero_ps(); 2] }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self::V {
        unsafe { [_mm256_set1_ps(x); 2] }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self::V {
        unsafe { [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))] }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        unsafe {
            _mm256_storeu_ps(p, v[0]);
            _mm256_storeu_ps(p.add(8), v[1]);
        }
    }
    #[inline(always)]
    fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        unsafe { [_mm256_fmadd_ps(a[0], b[0], c[0]), _mm256_fmadd_ps(a[1], b[1], c[1])] }
    }
    #[inline(always)]
    fn mul(a: Self::V, b: Self::V) -> Self::V {
        unsafe { [_mm256_mul_ps(a[0], b[0]), _mm256_mul_ps(a[1], b[1])] }
    }
    #[inline(always)]
    fn add(a: Self::V, b: Self::V) -> Self::V {
        unsafe { [_mm256_add_ps(a[0], b[0]), _mm256_add_ps(a[1], b[1])] }
    }
}

/// One 16-lane AVX-512 register.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Vector for Avx512 {
    type V = __m512;
    #[inline(always)]
    fn zero() -> __m512 {
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn splat(x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn mul(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn add(a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
}

/// Stores the first `n` lanes of `v` at `p` (all of them when `n >= LANES`).
///
/// # Safety
/// `p` points to `min(n, LANES)` writable f32 and the CPU has `S`'s features.
#[inline(always)]
unsafe fn store_first<S: Vector>(p: *mut f32, v: S::V, n: usize) {
    if n >= LANES {
        // SAFETY: the caller's contract.
        unsafe { S::store(p, v) }
    } else {
        let mut lanes = [0f32; LANES];
        // SAFETY: `lanes` holds LANES values; `p` has room for `n` (the caller's contract).
        unsafe {
            S::store(lanes.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(lanes.as_ptr(), p, n);
        }
    }
}

/// Loads the first `n` lanes from `p`, the others 0 (all of them when `n >= LANES`).
///
/// # Safety
/// `p` points to `min(n, LANES)` readable f32 and the CPU has `S`'s features.
#[inline(always)]
unsafe fn load_first<S: Vector>(p: *const f32, n: usize) -> S::V {
    if n >= LANES {
        // SAFETY: the caller's contract.
        unsafe { S::load(p) }
    } else {
        let mut lanes = [0f32; LANES];
        // SAFETY: `p` has `n` values (the caller's contract); `lanes` holds LANES.
        unsafe {
            std::ptr::copy_nonoverlapping(p, lanes.as_mut_ptr(), n);
            S::load(lanes.as_ptr())
        }
    }
}

#[inline(always)]
fn hidden_activations_generic<S: Vector>(k: &SkinnyWeights, v: &[f32], cols: usize, out: &mut [f32]) {
    // Up to 64 hidden units (4 vectors) at a time, with enough samples that 8 independent
    // accumulators hide the multiply-add latency.
    let mut lane = 0;
    while lane < k.hidden_pad {
        let vectors = ((k.hidden_pad - lane) / LANES).min(4);
        let mut s = 0;
        while s < cols {
            s += match (vectors, cols - s) {
                (1, 8..) => hidden_block::<S, 8, 1>(k, v, s, lane, out),
                (2, 4..) => hidden_block::<S, 4, 2>(k, v, s, lane, out),
                (3, 2..) => hidden_block::<S, 2, 3>(k, v, s, lane, out),
                (4, 2..) => hidden_block::<S, 2, 4>(k, v, s, lane, out),
                (1, _) => hidden_block::<S, 1, 1>(k, v, s, lane, out),
                (2, _) => hidden_block::<S, 1, 2>(k, v, s, lane, out),
                (3, _) => hidden_block::<S, 1, 3>(k, v, s, lane, out),
                _ => hidden_block::<S, 1, 4>(k, v, s, lane, out),
            };
        }
        lane += vectors * LANES;
    }
}

/// Hidden units `lane .. lane + NB * LANES` of samples `s .. s + G`; returns `G`.
#[inline(always)]
fn hidden_block<S: Vector, const G: usize, const NB: usize>(
    k: &SkinnyWeights,
    v: &[f32],
    s: usize,
    lane: usize,
    out: &mut [f32],
) -> usize {
    let (nv, nh, hp) = (k.n_visible, k.n_hidden, k.hidden_pad);
    // The bounds every pointer below stays in (checked once, not per load).
    assert!((s + G) * nv <= v.len() && (s + G) * nh <= out.len() && lane + NB * LANES <= hp);
    assert!(k.by_visible.len() == hp * nv && k.hidden_bias.len() == hp);
    let mut acc = [[S::zero(); NB]; G];
    // SAFETY: every offset is inside the slices, by the assertions above.
    unsafe {
        let bias = k.hidden_bias.as_ptr().add(lane);
        for sample in &mut acc {
            for (b, vector) in sample.iter_mut().enumerate() {
                *vector = S::load(bias.add(b * LANES));
            }
        }
        let samples: [*const f32; G] = std::array::from_fn(|g| v.as_ptr().add((s + g) * nv));
        let mut w = k.by_visible.as_ptr().add(lane);
        for i in 0..nv {
            let weights: [S::V; NB] = std::array::from_fn(|b| S::load(w.add(b * LANES)));
            for (sample, values) in acc.iter_mut().zip(&samples) {
                let x = S::splat(*values.add(i));
                for (vector, &weight) in sample.iter_mut().zip(&weights) {
                    *vector = S::fma(x, weight, *vector);
                }
            }
            w = w.add(hp);
        }
        let units = nh - lane;
        for (g, sample) in acc.iter().enumerate() {
            let row = out.as_mut_ptr().add((s + g) * nh + lane);
            for (b, &vector) in sample.iter().enumerate() {
                if units > b * LANES {
                    store_first::<S>(row.add(b * LANES), vector, units - b * LANES);
                }
            }
        }
    }
    G
}

#[inline(always)]
fn visible_activations_generic<S: Vector>(k: &SkinnyWeights, h: &[f32], cols: usize, out: &mut [f32]) {
    let mut s = 0;
    while s < cols {
        s += if cols - s >= 4 { visible_block::<S, 4>(k, h, s, out) } else { visible_block::<S, 1>(k, h, s, out) };
    }
}

/// All visible units of samples `s .. s + G`, two vectors at a time; returns `G`.
#[inline(always)]
fn visible_block<S: Vector, const G: usize>(k: &SkinnyWeights, h: &[f32], s: usize, out: &mut [f32]) -> usize {
    let (nv, nh, vp) = (k.n_visible, k.n_hidden, k.visible_pad);
    assert!((s + G) * nh <= h.len() && (s + G) * nv <= out.len() && vp.is_multiple_of(TILE));
    assert!(k.by_hidden.len() == nh * vp && k.visible_bias.len() == vp);
    // SAFETY: every offset is inside the slices, by the assertions above.
    unsafe {
        let hidden: [*const f32; G] = std::array::from_fn(|g| h.as_ptr().add((s + g) * nh));
        for unit in (0..vp).step_by(TILE) {
            let bias = k.visible_bias.as_ptr().add(unit);
            let mut acc = [[S::load(bias), S::load(bias.add(LANES))]; G];
            // The tile of units `unit ..`: each hidden unit's TILE weights in turn.
            let mut w = k.by_hidden.as_ptr().add(unit * nh);
            for j in 0..nh {
                let (w0, w1) = (S::load(w), S::load(w.add(LANES)));
                for (sample, values) in acc.iter_mut().zip(&hidden) {
                    let x = S::splat(*values.add(j));
                    sample[0] = S::fma(x, w0, sample[0]);
                    sample[1] = S::fma(x, w1, sample[1]);
                }
                w = w.add(TILE);
            }
            let units = nv.saturating_sub(unit);
            for (g, sample) in acc.iter().enumerate() {
                let row = out.as_mut_ptr().add((s + g) * nv + unit);
                store_first::<S>(row, sample[0], units);
                if units > LANES {
                    store_first::<S>(row.add(LANES), sample[1], units - LANES);
                }
            }
        }
    }
    G
}

#[inline(always)]
fn weight_gradient_generic<S: Vector>(
    shape: GradientShape,
    a: PhaseStatistics<'_>,
    b: PhaseStatistics<'_>,
    beta: f32,
    out: &mut [f32],
) {
    let units = out.len() / shape.n_hidden.max(1);
    let mut lane = 0;
    while lane < shape.hidden_pad {
        let vectors = ((shape.hidden_pad - lane) / LANES).min(2);
        let mut r = 0;
        while r < units {
            r += match (vectors, units - r) {
                (1, 8..) => gradient_block::<S, 8, 1>(shape, a, b, beta, r, lane, out),
                (2, 4..) => gradient_block::<S, 4, 2>(shape, a, b, beta, r, lane, out),
                (1, _) => gradient_block::<S, 1, 1>(shape, a, b, beta, r, lane, out),
                _ => gradient_block::<S, 1, 2>(shape, a, b, beta, r, lane, out),
            };
        }
        lane += vectors * LANES;
    }
}

/// One phase's `sum_s v_s[i] h_s` for `R` visible units from `first + r`, hidden lanes from `lane`.
#[inline(always)]
fn phase_sums<S: Vector, const R: usize, const NB: usize>(
    shape: GradientShape,
    phase: PhaseStatistics<'_>,
    r: usize,
    lane: usize,
) -> [[S::V; NB]; R] {
    let (nv, hp) = (shape.n_visible, shape.hidden_pad);
    let i = shape.first + r;
    assert!(i + R <= nv && lane + NB * LANES <= hp);
    assert!(phase.visible.len() >= nv * phase.cols && phase.hidden_padded.len() >= hp * phase.cols);
    let mut acc = [[S::zero(); NB]; R];
    // SAFETY: every offset is inside the slices, by the assertions above.
    unsafe {
        let (mut v, mut h) = (phase.visible.as_ptr().add(i), phase.hidden_padded.as_ptr().add(lane));
        for _ in 0..phase.cols {
            let hidden: [S::V; NB] = std::array::from_fn(|b| S::load(h.add(b * LANES)));
            for (u, unit) in acc.iter_mut().enumerate() {
                let x = S::splat(*v.add(u));
                for (vector, &hv) in unit.iter_mut().zip(&hidden) {
                    *vector = S::fma(x, hv, *vector);
                }
            }
            v = v.add(nv);
            h = h.add(hp);
        }
    }
    acc
}

/// Columns `r .. r + R` of `out` (visible units `first + r ..`), hidden lanes from `lane`.
#[inline(always)]
fn gradient_block<S: Vector, const R: usize, const NB: usize>(
    shape: GradientShape,
    a: PhaseStatistics<'_>,
    b: PhaseStatistics<'_>,
    beta: f32,
    r: usize,
    lane: usize,
    out: &mut [f32],
) -> usize {
    let nh = shape.n_hidden;
    assert!((r + R) * nh <= out.len() && lane < nh);
    let sums_a = phase_sums::<S, R, NB>(shape, a, r, lane);
    let sums_b = phase_sums::<S, R, NB>(shape, b, r, lane);
    let (beta, scale_a, scale_b) = (S::splat(beta), S::splat(a.scale), S::splat(b.scale));
    let units = nh - lane;
    for (u, (sa, sb)) in sums_a.iter().zip(&sums_b).enumerate() {
        for (v, (&x, &y)) in sa.iter().zip(sb).enumerate() {
            if units <= v * LANES {
                break;
            }
            let n = units - v * LANES;
            // SAFETY: column r + u of `out` has `nh` values from `(r + u) * nh`, checked above;
            // lanes `lane + v * LANES ..` of it hold `n` or more of them.
            unsafe {
                let p = out.as_mut_ptr().add((r + u) * nh + lane + v * LANES);
                let old = load_first::<S>(p, n);
                let new = S::add(S::add(S::mul(beta, old), S::mul(scale_a, x)), S::mul(scale_b, y));
                store_first::<S>(p, new, n);
            }
        }
    }
    R
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    fn weights_for(nh: usize, nv: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>, SkinnyWeights) {
        let (w, b, c) = (values(nh * nv, 1), values(nv, 2), values(nh, 3));
        let mut k = SkinnyWeights::default();
        k.refresh(&w, &b, &c);
        (w, b, c, k)
    }

    /// Every shape around the kernels' blocks: hidden units around multiples of 16 and 64,
    /// visible units around multiples of 32, sample counts around the groups of 1, 2, 4 and 8.
    fn shapes() -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for nh in [1, 7, 16, 17, 31, 32, 33, 48, 64, 65, 100] {
            for nv in [1, 5, 31, 32, 33, 70] {
                for cols in [1, 2, 3, 4, 5, 8, 9, 17] {
                    out.push((nh, nv, cols));
                }
            }
        }
        out
    }

    fn close(got: f32, want: f64, scale: f64) -> bool {
        (got as f64 - want).abs() <= 1e-5 * scale.max(1.0)
    }

    #[test]
    fn hidden_and_visible_activations_match_the_naive_products() {
        for (nh, nv, cols) in shapes() {
            let (w, b, c, k) = weights_for(nh, nv);
            let (v, h) = (values(nv * cols, 4), values(nh * cols, 5));
            let mut hidden = vec![f32::NAN; nh * cols];
            k.hidden_activations(&v, cols, &mut hidden);
            let mut visible = vec![f32::NAN; nv * cols];
            k.visible_activations(&h, cols, &mut visible);
            for s in 0..cols {
                for j in 0..nh {
                    let want = c[j] as f64 + (0..nv).map(|i| w[i * nh + j] as f64 * v[s * nv + i] as f64).sum::<f64>();
                    assert!(close(hidden[s * nh + j], want, nv as f64), "hidden {nh}x{nv}x{cols} at ({j},{s})");
                }
                for i in 0..nv {
                    let want = b[i] as f64 + (0..nh).map(|j| w[i * nh + j] as f64 * h[s * nh + j] as f64).sum::<f64>();
                    assert!(close(visible[s * nv + i], want, nh as f64), "visible {nh}x{nv}x{cols} at ({i},{s})");
                }
            }
        }
    }

    #[test]
    fn weight_gradient_matches_the_naive_sums_on_any_block_of_columns() {
        for (nh, nv, cols) in shapes() {
            let hp = nh.next_multiple_of(LANES);
            let chains = cols + 3;
            let (va, ha, vb, hb) =
                (values(nv * cols, 6), values(nh * cols, 7), values(nv * chains, 8), values(nh * chains, 9));
            let (mut pa, mut pb) = (Vec::new(), Vec::new());
            pad_hidden(&ha, nh, hp, cols, &mut pa);
            pad_hidden(&hb, nh, hp, chains, &mut pb);
            let a = PhaseStatistics { visible: &va, hidden_padded: &pa, cols, scale: 0.25 };
            let b = PhaseStatistics { visible: &vb, hidden_padded: &pb, cols: chains, scale: -0.5 };
            let start = values(nh * nv, 10);
            for first in [0, nv / 3] {
                let mut out = start[first * nh..].to_vec();
                weight_gradient_columns(nv, nh, hp, a, b, 0.9, first, &mut out);
                for (u, column) in out.chunks(nh).enumerate() {
                    let i = first + u;
                    for (j, &got) in column.iter().enumerate() {
                        let sa: f64 = (0..cols).map(|s| va[s * nv + i] as f64 * ha[s * nh + j] as f64).sum();
                        let sb: f64 = (0..chains).map(|s| vb[s * nv + i] as f64 * hb[s * nh + j] as f64).sum();
                        let want = 0.9 * start[i * nh + j] as f64 + 0.25 * sa - 0.5 * sb;
                        assert!(close(got, want, chains as f64), "gradient {nh}x{nv}x{cols} at ({j},{i})");
                    }
                }
            }
        }
    }

    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let (nh, nv, cols) = (33, 70, 9);
        let (_, _, _, k) = weights_for(nh, nv);
        let (v, h) = (values(nv * cols, 11), values(nh * cols, 12));
        let hp = k.hidden_pad();
        let mut padded = Vec::new();
        pad_hidden(&h, nh, hp, cols, &mut padded);
        let phase = PhaseStatistics { visible: &v, hidden_padded: &padded, cols, scale: 0.5 };
        let shape = GradientShape { n_visible: nv, n_hidden: nh, hidden_pad: hp, first: 0 };
        type Activations = fn(&SkinnyWeights, &[f32], usize, &mut [f32]);
        type Gradient = fn(GradientShape, PhaseStatistics<'_>, PhaseStatistics<'_>, f32, &mut [f32]);
        let run = |hidden: Activations, visible: Activations, gradient: Gradient| {
            let mut a = vec![0f32; nh * cols];
            let mut b = vec![0f32; nv * cols];
            let mut g = values(nh * nv, 13);
            hidden(&k, &v, cols, &mut a);
            visible(&k, &h, cols, &mut b);
            gradient(shape, phase, phase, 0.9, &mut g);
            (a, b, g)
        };
        let portable = run(hidden_activations_portable, visible_activations_portable, weight_gradient_portable);
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY (each call): made only where the CPU has the features.
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                let avx2 = run(
                    |k, v, c, o| unsafe { hidden_activations_avx2(k, v, c, o) },
                    |k, h, c, o| unsafe { visible_activations_avx2(k, h, c, o) },
                    |s, a, b, beta, o| unsafe { weight_gradient_avx2(s, a, b, beta, o) },
                );
                assert!(avx2 == portable, "AVX2 differs from the portable kernels");
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                let avx512 = run(
                    |k, v, c, o| unsafe { hidden_activations_avx512(k, v, c, o) },
                    |k, h, c, o| unsafe { visible_activations_avx512(k, h, c, o) },
                    |s, a, b, beta, o| unsafe { weight_gradient_avx512(s, a, b, beta, o) },
                );
                assert!(avx512 == portable, "AVX-512 differs from the portable kernels");
            }
        }
    }
}
