//! Dense kernels used by the hot loops: a parallel, deterministic single-precision GEMM on
//! column-major slices, and the numerically stable scalar functions.
//!
//! Why not nalgebra's products: `gemm_tr`/`tr_mul` bypass the fast kernel (about 10x slower here),
//! and nalgebra runs matrixmultiply on one thread. The products here call the `gemm` crate's
//! kernels (AVX-512 where the CPU has it) on one thread per block, and split the output into
//! one block per rayon thread. Measured on the 2-core development machine, the five products of
//! a CD-1 batch (100 x 784 batch, 500 hidden), 600 batches, three rounds: matrixmultiply 71-92
//! GFLOP/s on one thread and 105-113 split in two blocks, `gemm` 100-113 and 144-154.

use rayon::prelude::*;

/// A column-major matrix stored contiguously, optionally used transposed in a product.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operand<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl<'a> Operand<'a> {
    /// `data` holds a `rows x cols` column-major matrix, used as is.
    pub(crate) fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "operand length does not match its shape");
        Operand { data, rows, cols, transposed: false }
    }

    /// The same matrix, used transposed (no copy: the strides are swapped).
    pub(crate) fn t(self) -> Self {
        Operand { transposed: !self.transposed, ..self }
    }

    /// Rows of op(M).
    fn op_rows(&self) -> usize {
        if self.transposed { self.cols } else { self.rows }
    }

    /// Columns of op(M).
    fn op_cols(&self) -> usize {
        if self.transposed { self.rows } else { self.cols }
    }

    /// (row stride, column stride) of op(M) in elements.
    fn strides(&self) -> (isize, isize) {
        if self.transposed { (self.rows as isize, 1) } else { (1, self.rows as isize) }
    }
}

/// Raw output pointer shared by the blocks of one product; blocks write disjoint parts.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every parallel block writes a disjoint set of elements of the output.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer; a method call makes closures capture the whole (Send) wrapper.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Block boundaries fall on multiples of this (the `gemm` crate's AVX-512 tiles are 16 lanes
/// wide; its full and edge tiles do the same arithmetic, so this only keeps blocks aligned).
pub(crate) const KERNEL_TILE: usize = 16;

/// The `gemm` crate chooses its depth blocking by shape for products whose sides are both at most
/// this (512 deep there, against 392 + 392 at 784 deep for larger ones on the development
/// machine), so a split must not leave a block there that the whole product is not in.
const SMALL_SIDE: usize = 64;

/// The crate's dot-product path takes products of at most this many elements (and its
/// matrix-vector path products one wide): no block of a split comes near either.
const SMALL_ELEMENTS: usize = 256;

/// Products smaller than this many multiply-adds run as one call: rayon's overhead would dominate.
const PARALLEL_MIN_WORK: usize = 1 << 22;

/// `c = alpha * op(a) * op(b) + beta * c`, with `c` an `m x n` column-major slice.
///
/// Large products are cut into one block per rayon thread along the output's longer side (see
/// [`block_width`]); every block takes the same path through the `gemm` crate as the whole
/// product, so each element is summed over the inner dimension in the same chunks and order, and
/// the result is bit-identical whatever the number of threads.
pub(crate) fn gemm(alpha: f32, a: Operand<'_>, b: Operand<'_>, beta: f32, c: &mut [f32]) {
    gemm_blocks(alpha, a, b, beta, c, None, None);
}

/// `c = bias + op(a) * op(b)` (`bias` added to every column), then `then` applied to `c`'s
/// elements: [`gemm`] with the bias set and an elementwise function (a sigmoid, a unit kind's
/// means) applied by each block to its own part of the output, in the same fork and while that
/// part is in its core's cache. The bits are those of filling `c` with the bias, calling
/// [`gemm`] with `alpha = beta = 1`, then applying `then` to all of `c`.
pub(crate) fn gemm_biased_then(a: Operand<'_>, b: Operand<'_>, bias: &[f32], c: &mut [f32], then: &Elementwise<'_>) {
    assert_eq!(bias.len(), a.op_rows(), "one bias per row of the product");
    gemm_blocks(1.0, a, b, 1.0, c, Some(bias), Some(then));
}

/// An elementwise function applied to parts of a product's output.
pub(crate) type Elementwise<'f> = dyn Fn(&mut [f32]) + Sync + 'f;

/// [`gemm`], with each block first setting its part of every column to `bias` (when given) and
/// then applying `then` to it (when given).
fn gemm_blocks(
    alpha: f32,
    a: Operand<'_>,
    b: Operand<'_>,
    beta: f32,
    c: &mut [f32],
    bias: Option<&[f32]>,
    then: Option<&Elementwise<'_>>,
) {
    let (m, k, n) = (a.op_rows(), a.op_cols(), b.op_cols());
    assert_eq!(k, b.op_rows(), "inner dimensions of a product differ");
    assert_eq!(c.len(), m * n, "output length does not match the product's shape");
    if m == 0 || n == 0 {
        return;
    }
    // The whole product on this thread; the elementwise steps still on every core.
    let serial = |c: &mut [f32]| {
        if let Some(bias) = bias {
            c.par_chunks_mut(m).for_each(|column| column.copy_from_slice(bias));
        }
        gemm_serial(alpha, a, b, beta, c);
        if let Some(then) = then {
            c.par_chunks_mut(4096).for_each(then);
        }
    };
    if m * n * k.max(1) < PARALLEL_MIN_WORK {
        return serial(c);
    }
    // One block per thread along the longer side, each in the crate's ordinary path as the whole
    // product is (see block_width_on). The split changes nothing in the result: each element is
    // summed over the inner dimension in the same chunks and order (the depth blocking of that
    // path depends on the inner dimension only) and scaled in the same way; the tests below
    // check one against two and three threads.
    let (split_rows, len, other) = if m >= n { (true, m, n) } else { (false, n, m) };
    let Some(block) = block_width(len, other) else {
        return serial(c);
    };
    if split_rows {
        // Row blocks interleave in the column-major output: each writes its rows through a shared
        // pointer.
        let (rsa, csa) = a.strides();
        let (rsb, csb) = b.strides();
        let out = OutPtr(c.as_mut_ptr());
        /// Rows `r0..r1` of column `j` of the `m`-row output at `out`.
        ///
        /// # Safety
        /// The run lies inside the output, the caller's block owns those rows, and nothing else
        /// reads or writes them while the slice lives.
        unsafe fn rows_of<'o>(out: OutPtr, m: usize, j: usize, r0: usize, r1: usize) -> &'o mut [f32] {
            // SAFETY: the function's contract.
            unsafe { std::slice::from_raw_parts_mut(out.get().add(j * m + r0), r1 - r0) }
        }
        // SAFETY: pointers and strides describe the slices checked above, the block bounds stay
        // inside them, and the blocks write disjoint rows (each row slice lives for one statement,
        // outside the product's call).
        let run_rows = |r0: usize, r1: usize| unsafe {
            if let Some(bias) = bias {
                (0..n).for_each(|j| rows_of(out, m, j, r0, r1).copy_from_slice(&bias[r0..r1]));
            }
            sgemm(
                (r1 - r0, k, n),
                alpha,
                (a.data.as_ptr().offset(r0 as isize * rsa), rsa, csa),
                (b.data.as_ptr(), rsb, csb),
                beta,
                (out.get().add(r0), 1, m as isize),
            );
            if let Some(then) = then {
                (0..n).for_each(|j| then(rows_of(out, m, j, r0, r1)));
            }
        };
        (0..len.div_ceil(block)).into_par_iter().for_each(|i| run_rows(i * block, ((i + 1) * block).min(len)));
    } else {
        // Column blocks are contiguous in the column-major output.
        c.par_chunks_mut(block * m).enumerate().for_each(|(i, out)| {
            if let Some(bias) = bias {
                out.chunks_mut(m).for_each(|column| column.copy_from_slice(bias));
            }
            gemm_serial_columns(alpha, a, b, beta, out, i * block);
            if let Some(then) = then {
                then(out);
            }
        });
    }
}

/// The width of the blocks [`gemm`] cuts a side of `len` elements into on this pool, the other
/// side having `other`; `None` for one block. With `len` the columns of an `m x n` product
/// (`other` = `m`), [`gemm_serial_columns`] on blocks of this width gives each element the bits
/// of the whole product.
pub(crate) fn block_width(len: usize, other: usize) -> Option<usize> {
    block_width_on(len, other, rayon::current_num_threads())
}

/// [`block_width`] for `threads` threads: one block per thread, boundaries on [`KERNEL_TILE`],
/// each block (the last one too) in the crate's ordinary path as the whole product is: at least
/// [`SMALL_SIDE`] wide, more than that where the other side is not, and more than
/// [`SMALL_ELEMENTS`] elements.
fn block_width_on(len: usize, other: usize, threads: usize) -> Option<usize> {
    let narrowest = if other > SMALL_SIDE { SMALL_SIDE } else { SMALL_SIDE + 1 };
    if narrowest * other <= SMALL_ELEMENTS {
        return None;
    }
    let width = |blocks: usize| len.div_ceil(blocks).next_multiple_of(KERNEL_TILE);
    let mut blocks = threads.min(len / narrowest).max(1);
    // The last block is what the others leave (rounding up can leave it narrow, or nothing).
    while blocks > 1 && (blocks - 1) * width(blocks) + narrowest > len {
        blocks -= 1;
    }
    (blocks > 1).then(|| width(blocks))
}

/// [`gemm`] as one kernel call on this thread: the same bits as the split product (the split
/// changes no element's rounding), for callers that already run in parallel pieces.
pub(crate) fn gemm_serial(alpha: f32, a: Operand<'_>, b: Operand<'_>, beta: f32, c: &mut [f32]) {
    assert_eq!(c.len(), a.op_rows() * b.op_cols(), "output length does not match the product's shape");
    gemm_serial_columns(alpha, a, b, beta, c, 0);
}

/// Columns `first..first + n_block` of `alpha * op(a) * op(b) + beta * c`, on this thread, into
/// `block` (those columns of the column-major `c`, `m * n_block` values). On the blocks of
/// [`block_width`], each element has the bits the whole product gives it.
pub(crate) fn gemm_serial_columns(
    alpha: f32,
    a: Operand<'_>,
    b: Operand<'_>,
    beta: f32,
    block: &mut [f32],
    first: usize,
) {
    let (m, k, n) = (a.op_rows(), a.op_cols(), b.op_cols());
    assert_eq!(k, b.op_rows(), "inner dimensions of a product differ");
    if m == 0 || block.is_empty() {
        return;
    }
    assert_eq!(block.len() % m, 0, "a block holds whole columns");
    let n_block = block.len() / m;
    assert!(first + n_block <= n, "the block's columns lie inside the product");
    let (rsa, csa) = a.strides();
    let (rsb, csb) = b.strides();
    // SAFETY: the operands' strides describe their checked slices, and columns
    // `first..first + n_block` of op(b) lie inside b (checked above).
    unsafe {
        sgemm(
            (m, k, n_block),
            alpha,
            (a.data.as_ptr(), rsa, csa),
            (b.data.as_ptr().offset(first as isize * csb), rsb, csb),
            beta,
            (block.as_mut_ptr(), 1, m as isize),
        );
    }
}

/// A matrix in memory: its first element, row stride and column stride (in elements).
type Strided<P> = (P, isize, isize);

/// `c = alpha * a * b + beta * c` for an `m x k` matrix `a` and a `k x n` matrix `b`, on this
/// thread; `c` is not read when `beta` is 0.
///
/// # Safety
/// Each pointer with its strides describes a readable (`c`: writable) matrix of its shape.
unsafe fn sgemm(
    (m, k, n): (usize, usize, usize),
    alpha: f32,
    a: Strided<*const f32>,
    b: Strided<*const f32>,
    beta: f32,
    c: Strided<*mut f32>,
) {
    // The crate's convention: dst = alpha * dst + beta * lhs * rhs, dst read only if asked.
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.0,
            c.2,
            c.1,
            beta != 0.0,
            a.0,
            a.2,
            a.1,
            b.0,
            b.2,
            b.1,
            beta,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Asks the processor for every cache line of `run` (an address per 16 values, a 64-byte line,
/// and the last), ahead of a read of it: for runs too far apart for the hardware's prefetchers.
/// A hint changes no value.
#[inline]
pub(crate) fn prefetch_lines(run: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if !run.is_empty() {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        for i in (0..run.len()).step_by(16).chain(std::iter::once(run.len() - 1)) {
            // SAFETY: the address lies inside `run`; a prefetch reads nothing into the program.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(run[i..].as_ptr().cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = run;
}

/// The dot product of two equal-length slices, with eight independent accumulators so that the
/// compiler vectorises it without licence to reassociate (the result is the same on every run).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// How many sums [`interleaved_sums`]' callers take at once: eight chains of additions keep the
/// adder busy (four cycles of latency, two additions per cycle).
pub(crate) const INTERLEAVED_SUMS: usize = 8;

/// Where `f64`'s `Sum` starts (-0.0, so that a sum of -0.0 terms keeps its sign): sums taken by
/// hand start there too, to keep the bits of `.sum()`.
pub(crate) const SUM_START: f64 = -0.0;

/// `G` sums of terms, `sum_i term(a[g][i], b[g][i])` for each `g`, each added in index order from
/// [`SUM_START`]: the bits of `a[g].iter().zip(b[g]).map(..).sum::<f64>()`. One sum alone is a
/// chain of dependent additions, each waiting for the last (a sample's visible energy or squared
/// error over 784 pixels took about 3,000 cycles); `G` chains side by side run `G` additions in
/// flight. Every slice must be as long as `b[0]`.
#[inline(always)]
pub(crate) fn interleaved_sums<const G: usize>(
    a: [&[f32]; G],
    b: [&[f32]; G],
    term: impl Fn(f32, f32) -> f64,
) -> [f64; G] {
    let len = b.first().map_or(0, |b| b.len());
    assert!(a.iter().chain(&b).all(|s| s.len() == len), "interleaved sums over slices of one length");
    let mut sums = [SUM_START; G];
    for i in 0..len {
        for ((sum, a), b) in sums.iter_mut().zip(&a).zip(&b) {
            // SAFETY: `i < len`, the length of every slice (asserted above).
            *sum += unsafe { term(*a.get_unchecked(i), *b.get_unchecked(i)) };
        }
    }
    sums
}

/// The first `G` columns of the column-major matrix `m` of `rows` rows.
#[inline(always)]
pub(crate) fn columns<const G: usize>(m: &[f32], rows: usize) -> [&[f32]; G] {
    std::array::from_fn(|g| &m[g * rows..(g + 1) * rows])
}

/// `out += row`, elementwise.
#[inline]
pub(crate) fn add_to(out: &mut [f32], row: &[f32]) {
    out.iter_mut().zip(row).for_each(|(o, w)| *o += w);
}

/// `log(1 + exp(x))` without overflow or loss of precision for any finite `x`.
#[inline]
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 { x + (-x).exp().ln_1p() } else { x.exp().ln_1p() }
}

/// [`softplus`] without library calls, within 4 ulp of it (tested), so that loops over slices
/// vectorise: `max(x, 0) + log1p(exp(-|x|))`, with `exp` by Cephes' range reduction and a
/// degree-13 Taylor polynomial, and `log1p(t) = 2 atanh(t / (2 + t))` by its series in `s^2 <= 1/9`
/// (17 terms). Below `exp(-700)` the exponential is clamped: softplus of `x < -700` comes out as
/// about 1e-304 instead of `exp(x)`. NaN stays NaN. No fused operations, so the bits are the same
/// whether a call is vectorised or not.
#[inline(always)]
fn softplus_polynomial(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // ln 2 split in two (fdlibm's): the high part's low 21 bits are zero, so `n * LN2_HIGH` is exact.
    const LN2_HIGH: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LOW: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    // Adding 1.5 * 2^52 rounds to an integer, which the low mantissa bits then hold.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let z = (-x.abs()).max(-700.0);
    let shifted = z * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = z - n * LN2_HIGH - n * LN2_LOW;
    // exp(r) for |r| <= ln 2 / 2: the Taylor series to r^13 (the next term is below 1e-17).
    let mut p = 1.0 / 6_227_020_800.0;
    for factorial in
        [479_001_600.0, 39_916_800.0, 3_628_800.0, 362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0]
    {
        p = p * r + 1.0 / factorial;
    }
    let e = p * r + 1.0;
    // 2^n for n in [-1010, 0], in the exponent bits.
    let exponent = (shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i64 + 1023) as u64;
    let t = e * f64::from_bits(exponent << 52);
    // log1p(t) for t in (0, 1]: s = t / (2 + t) <= 1/3, 2 s sum_k s^2k / (2k + 1).
    let s = t / (2.0 + t);
    let s2 = s * s;
    let mut q = 1.0 / 35.0;
    for odd in [33.0, 31.0, 29.0, 27.0, 25.0, 23.0, 21.0, 19.0, 17.0, 15.0, 13.0, 11.0, 9.0, 7.0, 5.0, 3.0, 1.0] {
        q = q * s2 + 1.0 / odd;
    }
    let result = x.max(0.0) + 2.0 * s * q;
    if x.is_nan() { x } else { result }
}

/// `sum_k term(values[k])` in 8 f64 lanes (term `k` in lane `k % 8`) added in a fixed order, so
/// that the loop vectorises and its bits are the same however it is compiled. (Over slices, not
/// indices: an index closure kept its bounds checks and ran 2.5x slower.)
#[inline(always)]
fn lane_sum(values: &[f32], term: impl Fn(f32) -> f64) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += term(x);
        }
    }
    for (lane, &x) in lanes.iter_mut().zip(rest) {
        *lane += term(x);
    }
    lanes.iter().sum()
}

/// A function whose body (`$portable`, inlined) is compiled for AVX-512 and for AVX2 as well,
/// chosen at run time: wider vectors, the same operations, so the same bits.
macro_rules! with_wide_vectors {
    ($(#[$doc:meta])* fn $name:ident, $avx512:ident, $avx2:ident, $portable:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F, checked just above.
                    return unsafe { $avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2, checked just above.
                    return unsafe { $avx2($($arg),*) };
                }
            }
            $portable($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        fn $avx512($($arg: $ty),*) -> $ret {
            $portable($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx2($($arg: $ty),*) -> $ret {
            $portable($($arg),*)
        }
    };
}

with_wide_vectors!(
    /// `sum_i softplus(values[i])` in f64 with [`softplus_polynomial`] (see `lane_sum`): a free
    /// energy's hidden term and a Bernoulli layer's log partition. The library's `exp` and `ln_1p`
    /// had been most of a free energy's cost.
    fn softplus_sum, softplus_sum_avx512, softplus_sum_avx2, softplus_sum_portable, (values: &[f32]) -> f64
);

#[inline(always)]
fn softplus_sum_portable(values: &[f32]) -> f64 {
    lane_sum(values, |x| softplus_polynomial(x as f64))
}

with_wide_vectors!(
    /// `sum_j softplus(a_j - x w_j + w_j) - softplus(a_j - x w_j)` in f64 with
    /// [`softplus_polynomial`] (see `lane_sum`): the change in a free energy's hidden term when a
    /// Bernoulli unit with value `x` and weights `w` (one per hidden unit) is switched on, from the
    /// hidden activations `a` (the pseudo-likelihood's logit).
    fn softplus_switch_sum,
    softplus_switch_sum_avx512,
    softplus_switch_sum_avx2,
    softplus_switch_sum_portable,
    (activations: &[f32], weights: &[f32], x: f32) -> f64
);

#[inline(always)]
fn softplus_switch_sum_portable(activations: &[f32], weights: &[f32], x: f32) -> f64 {
    assert_eq!(activations.len(), weights.len());
    let x = x as f64;
    let term = |a: f32, w: f32| {
        let (a, w) = (a as f64, w as f64);
        let without = a - x * w;
        softplus_polynomial(without + w) - softplus_polynomial(without)
    };
    // As `lane_sum`, over two slices.
    let mut lanes = [0f64; 8];
    let (a_chunks, w_chunks) = (activations.chunks_exact(8), weights.chunks_exact(8));
    let (a_rest, w_rest) = (a_chunks.remainder(), w_chunks.remainder());
    for (a, w) in a_chunks.zip(w_chunks) {
        for ((lane, &a), &w) in lanes.iter_mut().zip(a).zip(w) {
            *lane += term(a, w);
        }
    }
    for ((lane, &a), &w) in lanes.iter_mut().zip(a_rest).zip(w_rest) {
        *lane += term(a, w);
    }
    lanes.iter().sum()
}

with_wide_vectors!(
    /// `sum_j softplus(to x_j) - softplus(from x_j)` in f64 with [`softplus_polynomial`] (see
    /// `lane_sum`): the change in the hidden part of `log p*_beta(v)` from one inverse
    /// temperature to the next on an annealing path (AIS's weights).
    fn softplus_tempered_difference_sum,
    softplus_tempered_difference_sum_avx512,
    softplus_tempered_difference_sum_avx2,
    softplus_tempered_difference_sum_portable,
    (values: &[f32], to: f64, from: f64) -> f64
);

#[inline(always)]
fn softplus_tempered_difference_sum_portable(values: &[f32], to: f64, from: f64) -> f64 {
    let term = |x: f32| softplus_polynomial(to * x as f64) - softplus_polynomial(from * x as f64);
    // As `lane_sum`, written out: through `lane_sum` this loop ran 1.6x slower.
    let mut lanes = [0f64; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += term(x);
        }
    }
    for (lane, &x) in lanes.iter_mut().zip(rest) {
        *lane += term(x);
    }
    lanes.iter().sum()
}

/// `exp(x)` in single precision for `x <= 0`, within 2 ulp of the exact value (tested), written
/// without branches or library calls so that loops over slices vectorise (the library's `expf` is
/// a call per element, and was a fifth of a small model's training time). Cephes' method:
/// `x = n ln 2 + r` with `|r| <= ln 2 / 2`, `exp(r)` by a degree-7 polynomial, `2^n` built in the
/// exponent bits. Below -87.3 (where `exp` leaves the normal range) it returns 0.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that `n * LN2_HIGH` is exact.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to an integer, which the low mantissa bits then hold.
    const ROUND: f32 = 12_582_912.0;
    let x = x.max(-88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^n for n in [-127, 0]; n = -127 gives exponent bits 0: the result 0.
    let exponent = (shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32 + 127).max(0) as u32;
    e * f32::from_bits(exponent << 23)
}

/// The logistic function `1 / (1 + exp(-x))`, in [0, 1] for any `x` but NaN, within 4 ulp of
/// the exact value on both tails (tested). Branch-free, so slice loops vectorise; the same bits
/// whether a call is vectorised or not (no fused operations).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    // exp(-|x|) in (0, 1]: 1 / (1 + e) for x >= 0, and e / (1 + e) for x < 0 (no cancellation).
    let e = exp_nonpositive(-x.abs());
    let r = 1.0 / (1.0 + e);
    let p = if x >= 0.0 { r } else { e * r };
    // NaN stays NaN (the exponential's clamp would have turned it into a probability).
    if x.is_nan() { x } else { p }
}

/// [`sigmoid`] of every element, in place: with AVX-512 or AVX2 where the CPU has them (16 or 8
/// lanes instead of SSE2's 4; the same operations, so the same bits).
#[inline]
pub(crate) fn sigmoid_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { sigmoid_in_place_avx512(values) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { sigmoid_in_place_avx2(values) };
        }
    }
    sigmoid_in_place_portable(values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sigmoid_in_place_avx512(values: &mut [f32]) {
    sigmoid_in_place_portable(values);
}

#[inline(always)]
fn sigmoid_in_place_portable(values: &mut [f32]) {
    values.iter_mut().for_each(|x| *x = sigmoid(*x));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sigmoid_in_place_avx2(values: &mut [f32]) {
    sigmoid_in_place_portable(values);
}

/// `log(sum(exp(x)))` computed stably; `-inf` for an empty input.
pub fn log_sum_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY || max.is_nan() {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Adds `log(exp(a) + exp(b))` stably.
#[inline]
pub fn log_add_exp(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY { hi } else { hi + (lo - hi).exp().ln_1p() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// op(a) * op(b) by the definition, in f64.
    fn naive(a: Operand<'_>, b: Operand<'_>) -> Vec<f32> {
        let at = |op: &Operand<'_>, i: usize, j: usize| {
            if op.transposed { op.data[j + i * op.rows] } else { op.data[i + j * op.rows] }
        };
        let (m, k, n) = (a.op_rows(), a.op_cols(), b.op_cols());
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i + j * m] = (0..k).map(|l| at(&a, i, l) as f64 * at(&b, l, j) as f64).sum::<f64>() as f32;
            }
        }
        c
    }

    /// Interleaved sums have the bits of each sum taken alone by `Iterator::sum` (the start
    /// included: a sum of -0.0 terms stays -0.0), and [`SUM_START`] is where `Sum` starts.
    #[test]
    fn interleaved_sums_have_the_bits_of_sums_taken_one_at_a_time() {
        assert_eq!(SUM_START.to_bits(), std::iter::empty::<f64>().sum::<f64>().to_bits());
        let mut state = 11u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 1e3
        };
        let term = |a: f32, b: f32| (a as f64) * (b as f64) + 1e-9 * a as f64;
        for len in [0usize, 1, 5, 784] {
            let a: Vec<Vec<f32>> = (0..8).map(|_| (0..len).map(|_| next()).collect()).collect();
            let b: Vec<Vec<f32>> = (0..8).map(|_| (0..len).map(|_| next()).collect()).collect();
            let got =
                interleaved_sums::<8>(std::array::from_fn(|g| &a[g][..]), std::array::from_fn(|g| &b[g][..]), term);
            for g in 0..8 {
                let want: f64 = a[g].iter().zip(&b[g]).map(|(&x, &y)| term(x, y)).sum();
                assert_eq!(got[g].to_bits(), want.to_bits(), "len {len}, sum {g}");
            }
        }
        let negative_zeros = [-0.0f32; 3];
        let got = interleaved_sums::<1>([&negative_zeros], [&[1.0f32; 3]], |a, b| (a * b) as f64);
        assert!(got[0] == 0.0 && got[0].is_sign_negative());
    }

    #[test]
    fn gemm_matches_naive_product_for_all_transpositions_and_blockings() {
        let fill = |n: usize, s: u32| {
            (0..n).map(|i| (((i as u32).wrapping_mul(2654435761) ^ s) % 1000) as f32 / 500.0 - 1.0).collect::<Vec<_>>()
        };
        for &(m, k, n) in &[(3, 4, 5), (130, 70, 90), (40, 50, 300)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let (ar, ac) = if ta { (k, m) } else { (m, k) };
                    let (br, bc) = if tb { (n, k) } else { (k, n) };
                    let a = fill(ar * ac, 1);
                    let b = fill(br * bc, 2);
                    let mut oa = Operand::new(&a, ar, ac);
                    if ta {
                        oa = oa.t();
                    }
                    let mut ob = Operand::new(&b, br, bc);
                    if tb {
                        ob = ob.t();
                    }
                    let mut c = vec![1f32; m * n];
                    gemm(2.0, oa, ob, 0.5, &mut c);
                    let want = naive(oa, ob);
                    for (got, want) in c.iter().zip(&want) {
                        assert!((got - (2.0 * want + 0.5)).abs() < 1e-3 * (1.0 + want.abs()), "{m}x{k}x{n} {ta} {tb}");
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_is_identical_on_one_and_two_threads() {
        let a: Vec<f32> = (0..784 * 100).map(|i| (i % 13) as f32 * 0.37 - 2.0).collect();
        let w: Vec<f32> = (0..784 * 500).map(|i| (i % 17) as f32 * 0.011 - 0.09).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut c = vec![0f32; 500 * 100];
                gemm(1.0, Operand::new(&w, 784, 500).t(), Operand::new(&a, 784, 100), 0.0, &mut c);
                c
            })
        };
        assert_eq!(run(1), run(2));
    }

    /// Regression: blocks split at a multiple of 8 columns put an edge tile of the 16-wide kernel
    /// mid-matrix, so the CD gradient (`alpha` != 1, `beta` != 0) of a 64 x 784 model differed in
    /// the last bit between 1 and 2 threads, and so did the trained models.
    #[test]
    fn gemm_with_alpha_and_beta_is_identical_on_one_two_and_three_threads() {
        let fill = |n: usize, s: u32| {
            (0..n).map(|i| (((i as u32).wrapping_mul(2654435761) ^ s) % 1000) as f32 / 500.0 - 1.0).collect::<Vec<_>>()
        };
        let (nh, nv, b) = (64usize, 784usize, 100usize);
        let (h, v) = (fill(nh * b, 2), fill(nv * b, 3));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                // out (n_hidden x n_visible) = 0.9 out + 0.01 h (n_hidden x B) * v^T (B x n_visible)
                let mut c = fill(nh * nv, 4);
                gemm(0.01, Operand::new(&h, nh, b), Operand::new(&v, nv, b).t(), 0.9, &mut c);
                c
            })
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }

    /// The `gemm` crate blocks the inner dimension by shape for products of at most 64 x 64 (512
    /// deep, against 392 + 392 for the larger ones at 784 deep): a split leaving such a block
    /// (130 rows against 64 columns, cut 80 + 50) would change its elements' bits.
    #[test]
    fn deep_products_are_identical_on_one_two_and_three_threads_at_the_block_limits() {
        let fill = |n: usize, s: u32| {
            (0..n).map(|i| (((i as u32).wrapping_mul(2654435761) ^ s) % 1000) as f32 / 500.0 - 1.0).collect::<Vec<_>>()
        };
        for &(m, k, n) in
            &[(130, 784, 64), (64, 784, 130), (200, 784, 64), (130, 784, 65), (200, 600, 66), (300, 1100, 70)]
        {
            let (a, b, start) = (fill(m * k, 1), fill(k * n, 2), fill(m * n, 3));
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let mut c = start.clone();
                    gemm(0.01, Operand::new(&a, m, k), Operand::new(&b, k, n), 0.9, &mut c);
                    c
                })
            };
            let one = run(1);
            assert!(one == run(2) && one == run(3), "{m}x{k}x{n}");
        }
    }

    /// The bias and the elementwise step done by each block give the bits of doing them apart,
    /// for row and column splits, on one, two and three threads.
    #[test]
    fn biased_products_with_a_step_match_the_steps_done_apart() {
        let fill = |n: usize, s: u32| {
            (0..n).map(|i| (((i as u32).wrapping_mul(2654435761) ^ s) % 1000) as f32 / 500.0 - 1.0).collect::<Vec<_>>()
        };
        for &(m, k, n) in &[(500, 784, 100), (100, 500, 784), (784, 16, 3), (300, 200, 129)] {
            let (a, b, bias) = (fill(m * k, 1), fill(k * n, 2), fill(m, 3));
            let (a, b) = (Operand::new(&a, m, k), Operand::new(&b, k, n));
            let mut want = vec![0f32; m * n];
            for column in want.chunks_mut(m) {
                column.copy_from_slice(&bias);
            }
            gemm(1.0, a, b, 1.0, &mut want);
            sigmoid_in_place(&mut want);
            for threads in 1..=3 {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let got = pool.install(|| {
                    let mut c = vec![f32::NAN; m * n];
                    gemm_biased_then(a, b, &bias, &mut c, &sigmoid_in_place);
                    c
                });
                assert!(got == want, "{m}x{k}x{n} on {threads} threads");
            }
        }
    }

    /// Every split keeps its blocks (the last one too) in the crate's ordinary path, on any
    /// number of threads (rounding block widths up must not leave a narrow or empty last block).
    #[test]
    fn block_widths_leave_no_narrow_block_on_any_number_of_threads() {
        for threads in 1..=64 {
            for len in (1..=5000).step_by(7) {
                for other in [1, 4, 5, 63, 64, 65, 100, 500] {
                    let Some(width) = block_width_on(len, other, threads) else { continue };
                    let narrowest = if other > SMALL_SIDE { SMALL_SIDE } else { SMALL_SIDE + 1 };
                    let blocks = len.div_ceil(width);
                    let last = len - (blocks - 1) * width;
                    assert!(width % KERNEL_TILE == 0 && blocks > 1 && blocks <= threads, "{len} {other} {threads}");
                    assert!(last >= narrowest && narrowest * other > SMALL_ELEMENTS, "{len} {other} {threads}");
                }
            }
        }
        // Two threads split the large job's products.
        assert!(block_width_on(784, 500, 2).is_some() && block_width_on(500, 64, 2).is_some());
    }

    /// Units in the last place between `got` and the exact `want`, at `got`'s magnitude.
    fn ulps(got: f32, want: f64) -> f64 {
        let ulp = (got.abs().max(f32::MIN_POSITIVE) as f64) * f32::EPSILON as f64;
        (got as f64 - want).abs() / ulp
    }

    #[test]
    fn fast_exp_and_sigmoid_are_within_a_few_ulp_everywhere() {
        let mut worst_exp: f64 = 0.0;
        let mut worst_sigmoid: f64 = 0.0;
        for i in 0..=2_000_000 {
            let x = -87.0 + 87.0 * i as f32 / 2_000_000.0;
            worst_exp = worst_exp.max(ulps(exp_nonpositive(x), (x as f64).exp()));
            for x in [x, -x] {
                let want = 1.0 / (1.0 + (-(x as f64)).exp());
                worst_sigmoid = worst_sigmoid.max(ulps(sigmoid(x), want));
            }
        }
        assert!(worst_exp <= 2.0, "exp: {worst_exp} ulp");
        assert!(worst_sigmoid <= 4.0, "sigmoid: {worst_sigmoid} ulp");
        // Out of the normal range: 0, and the sigmoid saturates exactly.
        assert_eq!(exp_nonpositive(-88.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(sigmoid(f32::NAN).is_nan());
        // The slice form gives the scalar's bits.
        let mut values: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.37).collect();
        let want: Vec<f32> = values.iter().map(|&x| sigmoid(x)).collect();
        sigmoid_in_place(&mut values);
        assert_eq!(values, want);
    }

    #[test]
    fn column_blocks_of_a_product_have_the_whole_products_bits() {
        let fill = |n: usize, s: u32| {
            (0..n).map(|i| (((i as u32).wrapping_mul(2654435761) ^ s) % 1000) as f32 / 500.0 - 1.0).collect::<Vec<_>>()
        };
        // out (16 x 100) = 0.3 h (16 x 37) * v^T (37 x 100) + 0.9 out, as the weight gradient.
        let (m, k, n) = (16usize, 37usize, 100usize);
        let (h, v, start) = (fill(m * k, 1), fill(n * k, 2), fill(m * n, 3));
        let (a, b) = (Operand::new(&h, m, k), Operand::new(&v, n, k).t());
        let mut whole = start.clone();
        gemm(0.3, a, b, 0.9, &mut whole);
        let mut blocks = start.clone();
        for (i, block) in blocks.chunks_mut(m * KERNEL_TILE * 2).enumerate() {
            gemm_serial_columns(0.3, a, b, 0.9, block, i * KERNEL_TILE * 2);
        }
        assert_eq!(blocks, whole);
        let want = naive(a, b);
        for ((got, want), s) in whole.iter().zip(&want).zip(&start) {
            assert!((got - (0.3 * want + 0.9 * s)).abs() < 1e-4);
        }
    }

    /// Within `ulps` units in the last place of `want`, or `tiny` in absolute terms (where the
    /// clamped exponential stops following `exp(x)`).
    fn close(got: f64, want: f64, ulps: f64, tiny: f64) -> bool {
        (got - want).abs() <= ulps * f64::EPSILON * want.abs() || (got - want).abs() <= tiny
    }

    #[test]
    fn polynomial_softplus_is_within_4_ulp_of_the_library_one() {
        let mut worst = 0.0f64;
        // A dense grid over the whole range, plus every f32 near the branch points.
        let grid = (-760_000..=760_000).map(|k| k as f64 * 1e-3);
        let near = (-2000..=2000).map(|k| k as f64 * 1e-7);
        for x in grid.chain(near).chain([0.0, -0.0, 1e-30, -1e-30, 37.0, -37.0, 700.0, -700.0, 1e300, -1e300]) {
            let (got, want) = (softplus_polynomial(x), softplus(x));
            assert!(close(got, want, 4.0, 1e-303), "softplus({x}): {got} vs {want}");
            if want > 1e-300 {
                worst = worst.max((got - want).abs() / (f64::EPSILON * want));
            }
        }
        assert!(worst <= 4.0, "worst {worst} ulp");
        assert!(softplus_polynomial(f64::NAN).is_nan());
        assert_eq!(softplus_polynomial(f64::INFINITY), f64::INFINITY);
        assert!(softplus_polynomial(f64::NEG_INFINITY) < 1e-303);
    }

    #[test]
    fn softplus_sums_agree_with_the_library_and_across_instruction_sets() {
        let mut state = 5u64;
        for len in [0usize, 1, 7, 8, 9, 16, 500, 1001] {
            let values: Vec<f32> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 80.0
                })
                .collect();
            let want: f64 = values.iter().map(|&x| softplus(x as f64)).sum();
            let got = softplus_sum(&values);
            assert!((got - want).abs() <= 1e-14 * want.abs().max(1.0), "{len}: {got} vs {want}");
            assert_eq!(got.to_bits(), softplus_sum_portable(&values).to_bits(), "{len}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                assert_eq!(got.to_bits(), unsafe { softplus_sum_avx2(&values) }.to_bits(), "{len}");
            }
        }
        assert!(softplus_sum(&[1.0, f32::NAN]).is_nan());
    }

    #[test]
    fn softplus_tempered_differences_agree_with_the_library_and_across_instruction_sets() {
        let mut state = 13u64;
        for len in [0usize, 1, 8, 11, 500] {
            let values: Vec<f32> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 60.0
                })
                .collect();
            for (to, from) in [(0.5, 0.4995), (1.0, 0.0), (0.001, 0.0)] {
                let want: f64 = values.iter().map(|&x| softplus(to * x as f64) - softplus(from * x as f64)).sum();
                let got = softplus_tempered_difference_sum(&values, to, from);
                assert!((got - want).abs() <= 1e-13 * (1.0 + want.abs()), "{len}: {got} vs {want}");
                assert_eq!(got.to_bits(), softplus_tempered_difference_sum_portable(&values, to, from).to_bits());
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2, checked just above.
                    let avx2 = unsafe { softplus_tempered_difference_sum_avx2(&values, to, from) };
                    assert_eq!(got.to_bits(), avx2.to_bits());
                }
            }
        }
    }

    #[test]
    fn softplus_switch_sums_agree_with_the_library_and_across_instruction_sets() {
        let mut state = 9u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 30.0
        };
        for len in [0usize, 1, 8, 13, 16, 500] {
            let (a, w): (Vec<f32>, Vec<f32>) = (0..len).map(|_| (next(), next() * 0.2)).unzip();
            for x in [0.0f32, 1.0, 0.3] {
                let want: f64 = a
                    .iter()
                    .zip(&w)
                    .map(|(&a, &w)| {
                        let without = a as f64 - x as f64 * w as f64;
                        softplus(without + w as f64) - softplus(without)
                    })
                    .sum();
                let got = softplus_switch_sum(&a, &w, x);
                assert!((got - want).abs() <= 1e-13 * (1.0 + want.abs()), "{len}, {x}: {got} vs {want}");
                assert_eq!(got.to_bits(), softplus_switch_sum_portable(&a, &w, x).to_bits());
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2, checked just above.
                    assert_eq!(got.to_bits(), unsafe { softplus_switch_sum_avx2(&a, &w, x) }.to_bits());
                }
            }
        }
    }

    #[test]
    fn stable_scalars_stay_finite_at_extremes() {
        assert_eq!(softplus(1e4), 1e4);
        assert!(softplus(-1e4) >= 0.0 && softplus(-1e4) < 1e-300);
        assert!((softplus(0.0) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(sigmoid(-1e4), 0.0);
        assert_eq!(sigmoid(1e4), 1.0);
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-9);
        assert!((log_add_exp(-1000.0, -1000.0) - (-1000.0 + 2f64.ln())).abs() < 1e-9);
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
    }
}
