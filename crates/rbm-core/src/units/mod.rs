//! Visible unit kinds, one module each, and the visible layer: a list of groups of possibly
//! different kinds side by side.
//!
//! A kind's module owns everything that differs between kinds: the conditional mean `E[v | h]`,
//! sampling `v ~ p(v | h)`, the visible energy term, its term of `log Z` (the sum or integral over
//! the group's values), the data check and the initial biases from data, and the default learning
//! rate. Each works on one *group*: a slice of one sample's units (a run of independent units for
//! Bernoulli and Gaussian kinds, exactly the K units of one categorical value for softmax). Every
//! other part of the crate (Gibbs sampling, gradients, free energy, exact log Z, pseudo-likelihood,
//! CSV columns of the kind) is written once against [`VisibleKind`] and [`VisibleLayer`]. Adding a
//! kind is its module and one line in the `visible_kinds!` list below (docs/architecture.md).

pub mod bernoulli;
pub mod gaussian;
pub mod softmax;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{RbmError, Result};

/// Declares the visible unit kinds from one list: each entry names the variant, its module and
/// its name in files and messages. `VisibleKind`'s methods dispatch to the module's functions and
/// constants of the same names, so a new kind is its module and one line in this list.
macro_rules! visible_kinds {
    ($($(#[$doc:meta])* $kind:ident => $module:ident, $name:literal;)+) => {
        /// The kind of a group of visible units (hidden units are always Bernoulli).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum VisibleKind {
            $($(#[$doc])* #[serde(rename = $name)] $kind,)+
        }

        impl VisibleKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [VisibleKind] = &[$(VisibleKind::$kind),+];

            /// The kind's name as used in files and messages.
            pub fn name(self) -> &'static str {
                match self { $(VisibleKind::$kind => $name,)+ }
            }

            /// The kind named `name`, if any.
            pub fn from_name(name: &str) -> Option<VisibleKind> {
                VisibleKind::ALL.iter().copied().find(|k| k.name() == name)
            }

            /// Whether each unit is independent of the others given `h` (so a group may be any
            /// run of units, a CSV column may be one unit of this kind, and a layer of one such
            /// kind may be processed element by element).
            pub fn is_elementwise(self) -> bool {
                match self { $(VisibleKind::$kind => $module::ELEMENTWISE,)+ }
            }

            /// Whether raw column values are standardised (per column, stored with the model)
            /// before units of this kind see them.
            pub fn is_standardised(self) -> bool {
                match self { $(VisibleKind::$kind => $module::STANDARDISED,)+ }
            }

            /// The default learning rate for layers of this kind (a mixed layer takes the smallest).
            pub fn default_learning_rate(self) -> f64 {
                match self { $(VisibleKind::$kind => $module::DEFAULT_LEARNING_RATE,)+ }
            }

            /// `E[v | h]` of one group in place, from its activations `b + W h`.
            #[inline]
            pub fn means(self, activations: &mut [f32]) {
                match self { $(VisibleKind::$kind => $module::means(activations),)+ }
            }

            /// Draws one group's values from its conditional means.
            #[inline]
            pub fn sample<R: Rng + ?Sized>(self, means: &[f32], out: &mut [f32], rng: &mut R) {
                match self { $(VisibleKind::$kind => $module::sample(means, out, rng),)+ }
            }

            /// The visible part of the energy of one group's values, in f64.
            #[inline]
            pub fn energy(self, values: &[f32], bias: &[f32]) -> f64 {
                match self { $(VisibleKind::$kind => $module::energy(values, bias),)+ }
            }

            /// [`VisibleKind::energy`] of `G` samples' values of one group at once, each with
            /// the bits it has alone (see [`crate::linalg::interleaved_sums`]).
            #[inline]
            pub(crate) fn energies<const G: usize>(self, values: [&[f32]; G], bias: &[f32]) -> [f64; G] {
                match self {
                    $(VisibleKind::$kind => crate::linalg::interleaved_sums(values, [bias; G], $module::energy_term),)+
                }
            }

            /// `log` of the sum (or integral) over the group's values of
            /// `exp(-energy(v, b) + v.(a - b))` given its activations `a = b + W h`. Summed over
            /// groups, then log-sum-exp'd over hidden states, it gives the exact log partition
            /// function.
            #[inline]
            pub fn log_partition(self, activations: &[f32], bias: &[f32]) -> f64 {
                match self { $(VisibleKind::$kind => $module::log_partition(activations, bias),)+ }
            }

            /// The first unit of the group whose value this kind cannot take, and why.
            #[inline]
            pub fn check(self, values: &[f32]) -> Option<(usize, &'static str)> {
                match self { $(VisibleKind::$kind => $module::check(values),)+ }
            }

            /// The initial visible biases of one group from its units' data means over
            /// `samples` samples.
            pub fn initial_bias(self, means: &[f64], samples: usize, out: &mut [f32]) {
                match self { $(VisibleKind::$kind => $module::initial_bias(means, samples, out),)+ }
            }

            /// Every value one column's group can take (one unit for elementwise kinds, the K
            /// units of a softmax group), each with the log of its quadrature weight, into `out`:
            /// summing `exp(log_weight - G(x))` over them sums (or integrates) `exp(-G)` over the
            /// group's values. `bias` is the group's visible bias and `reach` the sums of its
            /// negative and of its positive weights to the hidden units (where a Gaussian
            /// column's conditional mass can lie).
            pub fn alternatives(self, bias: &[f32], reach: [f32; 2], out: &mut Alternatives) {
                out.clear(bias.len());
                match self { $(VisibleKind::$kind => $module::alternatives(bias, reach, out),)+ }
            }
        }
    };
}

visible_kinds! {
    /// Binary units, `p(v_i = 1 | h) = sigmoid(b_i + W_i h)`. Data must lie in [0, 1].
    Bernoulli => bernoulli, "bernoulli";
    /// Real-valued units with unit variance on standardised data, `v_i | h ~ N(b_i + W_i h, 1)`.
    Gaussian => gaussian, "gaussian";
    /// One categorical value as K one-hot units, `p(v = e_k | h) = softmax(b + W h)_k`.
    Softmax => softmax, "softmax";
}

/// The values one column's group can take, for conditional likelihoods (see
/// [`VisibleKind::alternatives`]): `values` holds them one after another, `units` values each.
#[derive(Clone, Debug, Default)]
pub struct Alternatives {
    /// Units per alternative.
    pub units: usize,
    /// The alternatives' values, `units` per alternative.
    pub values: Vec<f32>,
    /// The log of each alternative's quadrature weight (0 for a sum over discrete values).
    pub log_weights: Vec<f64>,
}

impl Alternatives {
    /// Removes every alternative, for groups of `units` units.
    pub fn clear(&mut self, units: usize) {
        self.units = units;
        self.values.clear();
        self.log_weights.clear();
    }

    /// Adds one alternative.
    pub fn push(&mut self, values: &[f32], log_weight: f64) {
        debug_assert_eq!(values.len(), self.units);
        self.values.extend_from_slice(values);
        self.log_weights.push(log_weight);
    }

    /// The alternatives with their log weights.
    pub fn iter(&self) -> impl Iterator<Item = (&[f32], f64)> {
        self.values.chunks(self.units.max(1)).zip(self.log_weights.iter().copied())
    }
}

/// A group of visible units of one kind: a run of `units` independent units (Bernoulli,
/// Gaussian), or the `units` = K levels of one categorical value (softmax).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisibleGroup {
    /// The kind of the units.
    pub kind: VisibleKind,
    /// How many units (levels, for softmax).
    pub units: usize,
}

/// The visible layer: groups of units side by side, in the order of the visible vector.
/// Adjacent runs of the same elementwise kind are merged, so a model of one kind has one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisibleLayer {
    groups: Vec<VisibleGroup>,
    /// `starts[g]..starts[g + 1]` are group `g`'s units.
    starts: Vec<usize>,
}

impl VisibleLayer {
    /// `n` units of one kind (for softmax: one categorical value of `n` levels); refuses `n = 0`.
    pub fn uniform(kind: VisibleKind, n: usize) -> Result<Self> {
        VisibleLayer::new(vec![VisibleGroup { kind, units: n }])
    }

    /// A layer from its groups; refuses an empty layer or an empty group.
    pub fn new(groups: impl IntoIterator<Item = VisibleGroup>) -> Result<Self> {
        let mut merged: Vec<VisibleGroup> = Vec::new();
        for g in groups {
            if g.units == 0 {
                return Err(RbmError::ShapeMismatch {
                    what: "visible group",
                    expected: "at least 1 unit".into(),
                    found: format!("0 {} units", g.kind.name()),
                });
            }
            match merged.last_mut() {
                Some(last) if last.kind == g.kind && g.kind.is_elementwise() => last.units += g.units,
                _ => merged.push(g),
            }
        }
        if merged.is_empty() {
            return Err(RbmError::ShapeMismatch {
                what: "visible layer",
                expected: "at least 1 unit".into(),
                found: "no units".into(),
            });
        }
        let mut starts = vec![0];
        for g in &merged {
            starts.push(starts.last().unwrap() + g.units);
        }
        Ok(VisibleLayer { groups: merged, starts })
    }

    /// The groups, in order.
    pub fn groups(&self) -> &[VisibleGroup] {
        &self.groups
    }

    /// Number of visible units.
    pub fn n_visible(&self) -> usize {
        *self.starts.last().unwrap()
    }

    /// The kind of every unit when the layer has one group, else `None` (a mixed layer).
    pub fn single_kind(&self) -> Option<VisibleKind> {
        match self.groups.as_slice() {
            [g] => Some(g.kind),
            _ => None,
        }
    }

    /// Whether any group is of `kind`.
    pub fn has(&self, kind: VisibleKind) -> bool {
        self.groups.iter().any(|g| g.kind == kind)
    }

    /// A short description: `784 bernoulli` or `3 gaussian + 2 softmax (7 units)`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<(VisibleKind, usize, usize)> = Vec::new(); // kind, groups or units, units
        for g in &self.groups {
            let count = if g.kind.is_elementwise() { g.units } else { 1 };
            match parts.iter_mut().find(|p| p.0 == g.kind) {
                Some(p) => {
                    p.1 += count;
                    p.2 += g.units;
                }
                None => parts.push((g.kind, count, g.units)),
            }
        }
        let text: Vec<String> = parts
            .iter()
            .map(|(k, count, units)| match k {
                VisibleKind::Softmax => format!("{count} softmax ({units} units)"),
                _ => format!("{count} {}", k.name()),
            })
            .collect();
        text.join(" + ")
    }

    /// Each data column's units, in order: one unit for each unit of an elementwise group, all K
    /// units of a softmax group (the layout of [`crate::columns::layer_of`]).
    pub fn columns(&self) -> impl Iterator<Item = (VisibleKind, std::ops::Range<usize>)> + '_ {
        self.ranges().flat_map(|(kind, range)| {
            let width = if kind.is_elementwise() { 1 } else { range.len() };
            range.clone().step_by(width).map(move |start| (kind, start..start + width))
        })
    }

    /// Each group with its units' range in the visible vector.
    pub fn ranges(&self) -> impl Iterator<Item = (VisibleKind, std::ops::Range<usize>)> + '_ {
        self.groups.iter().zip(self.starts.windows(2)).map(|(g, s)| (g.kind, s[0]..s[1]))
    }

    /// For each visible unit, whether its kind is standardised (see
    /// [`VisibleKind::is_standardised`]).
    pub(crate) fn standardised_units(&self) -> Vec<bool> {
        let mut standardised = vec![false; self.n_visible()];
        for (kind, range) in self.ranges() {
            standardised[range].fill(kind.is_standardised());
        }
        standardised
    }

    /// `E[v | h]` in place for `out`, column-major with one column (sample) of `n_visible` per chunk.
    pub(crate) fn means_columns(&self, out: &mut [f32]) {
        use rayon::prelude::*;
        let nv = self.n_visible();
        match self.single_kind() {
            // One elementwise kind: element by element, whatever the columns.
            Some(kind) if kind.is_elementwise() => {
                out.par_chunks_mut(4096).for_each(|chunk| kind.means(chunk));
            }
            // Blocks of whole samples (about 4096 values each), group by group within a sample.
            _ => out.par_chunks_mut(4096usize.div_ceil(nv) * nv).for_each(|block| {
                for column in block.chunks_mut(nv) {
                    for (kind, range) in self.ranges() {
                        kind.means(&mut column[range]);
                    }
                }
            }),
        }
    }

    /// `E[v | h]` of one sample in place, from its activations `b + W h`, group by group.
    pub(crate) fn means_of(&self, column: &mut [f32]) {
        for (kind, range) in self.ranges() {
            kind.means(&mut column[range]);
        }
    }

    /// Draws one sample's visible values from its conditional means, group by group.
    pub(crate) fn sample_of<R: rand::Rng + ?Sized>(&self, means: &[f32], out: &mut [f32], rng: &mut R) {
        for (kind, range) in self.ranges() {
            kind.sample(&means[range.clone()], &mut out[range], rng);
        }
    }

    /// The visible energy of one sample, summed over groups in order.
    pub(crate) fn energy(&self, values: &[f32], bias: &[f32]) -> f64 {
        self.ranges().map(|(kind, r)| kind.energy(&values[r.clone()], &bias[r])).sum()
    }

    /// [`VisibleLayer::energy`] of every sample in `values` (column-major, `n_visible` values
    /// each) into `out`, one per sample, with the bits each has alone: eight samples at a time,
    /// their sums interleaved (one sample's sum is a chain of dependent additions).
    pub(crate) fn energies_into(&self, values: &[f32], bias: &[f32], out: &mut [f64]) {
        const G: usize = crate::linalg::INTERLEAVED_SUMS;
        let nv = self.n_visible();
        let (whole, rest) = out.split_at_mut(out.len() / G * G);
        for (out, block) in whole.chunks_exact_mut(G).zip(values.chunks_exact(G * nv)) {
            out.copy_from_slice(&self.energies::<G>(crate::linalg::columns(block, nv), bias));
        }
        for (out, v) in rest.iter_mut().zip(values.chunks_exact(nv).skip(whole.len())) {
            *out = self.energy(v, bias);
        }
    }

    /// [`VisibleLayer::energy`] of `G` samples at once: each group's energies interleaved, then
    /// summed over the groups in order, as `energy` sums them.
    fn energies<const G: usize>(&self, samples: [&[f32]; G], bias: &[f32]) -> [f64; G] {
        let mut totals = [crate::linalg::SUM_START; G];
        for (kind, r) in self.ranges() {
            let group = kind.energies::<G>(std::array::from_fn(|g| &samples[g][r.clone()]), &bias[r]);
            totals.iter_mut().zip(group).for_each(|(total, e)| *total += e);
        }
        totals
    }

    /// The visible groups' `log Z` terms of one hidden state's activations, summed in order.
    pub(crate) fn log_partition(&self, activations: &[f32], bias: &[f32]) -> f64 {
        self.ranges().map(|(kind, r)| kind.log_partition(&activations[r.clone()], &bias[r])).sum()
    }

    /// The first unit of one sample whose value its kind cannot take, and why.
    pub(crate) fn check(&self, values: &[f32]) -> Option<(usize, &'static str)> {
        self.ranges().find_map(|(kind, r)| kind.check(&values[r.clone()]).map(|(i, why)| (r.start + i, why)))
    }

    /// Initial visible biases from the units' data means.
    pub(crate) fn initial_bias(&self, means: &[f64], samples: usize, out: &mut [f32]) {
        for (kind, r) in self.ranges() {
            kind.initial_bias(&means[r.clone()], samples, &mut out[r]);
        }
    }

    /// Draws every sample's values from `means` (column-major, `n_visible` per column) on the
    /// random stream `stream`: fixed blocks, each with its own generator, so the draws do not
    /// depend on the thread count. One elementwise kind draws element by element in blocks of
    /// 4096 values; otherwise blocks are whole columns and each group draws in unit order.
    pub(crate) fn sample_columns(&self, means: &[f32], out: &mut [f32], seed: u64, stream: u64) {
        use rayon::prelude::*;
        const BLOCK: usize = 4096;
        let nv = self.n_visible();
        match self.single_kind() {
            Some(kind) if kind.is_elementwise() => {
                out.par_chunks_mut(BLOCK).zip(means.par_chunks(BLOCK)).enumerate().for_each(|(block, (o, m))| {
                    kind.sample(m, o, &mut crate::rng::generator(seed, stream, block as u64));
                });
            }
            _ => {
                let block = BLOCK.div_ceil(nv) * nv;
                out.par_chunks_mut(block).zip(means.par_chunks(block)).enumerate().for_each(|(b, (o, m))| {
                    let mut rng = crate::rng::generator(seed, stream, b as u64);
                    for (o, m) in o.chunks_mut(nv).zip(m.chunks(nv)) {
                        for (kind, r) in self.ranges() {
                            kind.sample(&m[r.clone()], &mut o[r], &mut rng);
                        }
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values of magnitudes from 1e-3 to 1e3 (so that sums in another order would
    /// round differently), with some zeros of either sign.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|i| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let uniform = (state >> 40) as f32 / (1u64 << 24) as f32;
                match i % 7 {
                    0 => 0.0,
                    3 => -0.0,
                    _ => (uniform - 0.5) * 10f32.powi((state % 7) as i32 - 3),
                }
            })
            .collect()
    }

    /// The energies taken eight samples at a time have the bits of each sample's `energy`, for
    /// every kind, a mixed layer, and sample counts that leave a remainder.
    #[test]
    fn energies_of_many_samples_have_the_bits_of_one_sample_at_a_time() {
        let group = |kind, units| VisibleGroup { kind, units };
        let layers = [
            VisibleLayer::uniform(VisibleKind::Bernoulli, 37).unwrap(),
            VisibleLayer::uniform(VisibleKind::Gaussian, 5).unwrap(),
            VisibleLayer::new([
                group(VisibleKind::Gaussian, 3),
                group(VisibleKind::Softmax, 4),
                group(VisibleKind::Bernoulli, 6),
                group(VisibleKind::Softmax, 2),
            ])
            .unwrap(),
        ];
        for layer in &layers {
            let nv = layer.n_visible();
            let bias = values(nv, 1);
            for samples in [0, 1, 7, 8, 9, 16, 23] {
                let v = values(nv * samples, 2 + samples as u64);
                let mut got = vec![f64::NAN; samples];
                layer.energies_into(&v, &bias, &mut got);
                for (s, (got, v)) in got.iter().zip(v.chunks_exact(nv)).enumerate() {
                    let want = layer.energy(v, &bias);
                    assert_eq!(got.to_bits(), want.to_bits(), "{} sample {s} of {samples}", layer.describe());
                }
            }
        }
    }
}
