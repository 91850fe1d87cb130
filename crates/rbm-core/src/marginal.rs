//! Histogram marginals for Gaussian columns: experts multiplied into the RBM.
//!
//! A Gaussian visible unit models its column as a mixture of Gaussians of one width; a column
//! whose values bunch into several modes, or sit on a few levels, is poorly described by it, and
//! the free energy then misses rows that are unusual in that column alone (the signal HBOS and
//! Isolation Forest see). With marginals the model is the product of experts
//! `p(v) ∝ exp(-F_rbm(v)) * prod_j p_j(v_j)`, each `p_j` a histogram density of the Gaussian
//! unit `j` over the training rows, and its free energy is `F_rbm(v) - sum_j log p_j(v_j)`: the
//! RBM keeps the relations between columns, the histograms the shape of each column.
//!
//! Each histogram has `B = max(5, floor(sqrt(N)) / 2)` equal-width bins over the training
//! range of its unit (N training rows), the density of bin k is `(count_k + 1) / ((N + B) w)`
//! (one pseudo-count per bin, so no value has density 0), and a value outside the training
//! range takes its edge bin's density (the RBM's Gaussian term then carries its distance).
//! Constant units have no histogram. Chosen on the ten ODDS development sets (docs/anomaly.md).
//!
//! The histograms change scores, thresholds, baselines and explanations; sampling and the
//! log-likelihood (exact or AIS) stay the RBM's alone.

use nalgebra::DMatrix;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::units::VisibleLayer;

/// The most bins one histogram may have in a model file.
pub const MAX_BINS: usize = 1 << 16;

/// Units per task of [`Marginals::fit`].
const MARGINAL_BLOCK_UNITS: usize = 32;

/// The number of bins for `rows` training rows: `max(5, floor(sqrt(rows)) / 2)`.
pub fn bins_for(rows: usize) -> usize {
    ((rows as f64).sqrt().floor() as usize / 2).clamp(5, MAX_BINS)
}

/// An equal-width histogram density of one unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Histogram {
    /// The lower edge of the first bin (the training minimum).
    pub low: f32,
    /// The width of every bin.
    pub width: f32,
    /// The log density of each bin.
    pub log_density: Vec<f32>,
}

impl Histogram {
    /// The histogram of `values` (`n` of them) over `bins` bins, or `None` when they are all
    /// equal (or not finite).
    pub fn fit(values: impl Iterator<Item = f32> + Clone, n: usize, bins: usize) -> Option<Histogram> {
        let (low, high) = values.clone().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), x| (l.min(x), h.max(x)));
        let mut histogram = Histogram::spanning(low, high, n, bins)?;
        let mut counts = vec![0u64; bins];
        for x in values {
            counts[histogram.bin(x)] += 1;
        }
        histogram.set_counts(&counts, n);
        Some(histogram)
    }

    /// An empty histogram of `bins` equal bins from `low` to `high` (the values' extremes), or
    /// `None` when they do not span a positive, finite width (or there are no values or bins).
    fn spanning(low: f32, high: f32, n: usize, bins: usize) -> Option<Histogram> {
        let width = (high - low) / bins as f32;
        if !(width.is_finite() && width > 0.0) || n == 0 || bins == 0 {
            return None;
        }
        Some(Histogram { low, width, log_density: vec![0.0; bins] })
    }

    /// The log densities from the bins' counts of `n` values (one added to each bin).
    fn set_counts(&mut self, counts: &[u64], n: usize) {
        let bins = self.log_density.len();
        let total = (n + bins) as f64 * self.width as f64;
        for (log_density, &count) in self.log_density.iter_mut().zip(counts) {
            *log_density = ((count as f64 + 1.0) / total).ln() as f32;
        }
    }

    /// The bin of `x`: values outside the range fall in the edge bins.
    fn bin(&self, x: f32) -> usize {
        let k = ((x - self.low) / self.width).floor();
        if k.is_nan() || k < 0.0 { 0 } else { (k as usize).min(self.log_density.len() - 1) }
    }

    /// `-log p(x)`.
    pub fn energy(&self, x: f32) -> f64 {
        -(self.log_density[self.bin(x)] as f64)
    }

    /// Quadrature nodes for `int f(x) p(x) dx` over `[low, high]` with `f` smooth: the interval
    /// is cut at the bin edges, each piece gets Simpson's rule with an even number of steps of at
    /// most `max_step` and its bin's density folded into the weights, so that the density's
    /// jumps cost no accuracy (Simpson's error on a piece is `h^4 (b - a) max|f^(4)| / 180`).
    /// Appends `(x, log(weight * density))` to `out`.
    pub fn quadrature(&self, low: f32, high: f32, max_step: f32, out: &mut crate::units::Alternatives) {
        let bins = self.log_density.len();
        let Some(max_step) = crate::units::gaussian::quadrature_step(low, high, max_step) else {
            out.push(&[self.low], self.log_density[0] as f64);
            return;
        };
        let edge = |k: usize| self.low + k as f32 * self.width;
        // Cut points: the interval's ends and every bin edge strictly inside.
        let mut cuts = vec![low];
        cuts.extend((1..bins).map(edge).filter(|&e| e > low && e < high));
        cuts.push(high);
        for piece in cuts.windows(2) {
            let (a, b) = (piece[0], piece[1]);
            if b <= a {
                continue;
            }
            let log_density = self.log_density[self.bin(0.5 * (a + b))] as f64;
            let steps = 2 * ((b - a) / (2.0 * max_step)).ceil().max(1.0) as usize;
            let h = (b - a) as f64 / steps as f64;
            for i in 0..=steps {
                let x = if i == steps { b } else { (a as f64 + i as f64 * h) as f32 };
                let simpson = match i {
                    0 => 1.0,
                    _ if i == steps => 1.0,
                    _ if i % 2 == 1 => 4.0,
                    _ => 2.0,
                };
                out.push(&[x], (simpson * h / 3.0).ln() + log_density);
            }
        }
    }

    /// Why this histogram cannot be used, if it cannot.
    pub fn check(&self) -> Option<&'static str> {
        if !(self.low.is_finite() && self.width.is_finite() && self.width > 0.0) {
            return Some("a histogram's low edge is not finite or its width not positive");
        }
        if self.log_density.is_empty() || self.log_density.len() > MAX_BINS {
            return Some("a histogram has no bins or too many");
        }
        if self.log_density.iter().any(|d| !d.is_finite()) {
            return Some("a histogram's log density is not finite");
        }
        None
    }
}

/// One optional histogram per visible unit (Gaussian units with spread have one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Marginals {
    /// Per visible unit, in order.
    pub histograms: Vec<Option<Histogram>>,
}

impl Marginals {
    /// The histograms of the standardised (Gaussian) units of `layer` over the training rows
    /// `visible` (`n_visible x rows`, model units), [`bins_for`] bins each.
    pub fn fit(layer: &VisibleLayer, visible: &DMatrix<f32>) -> Marginals {
        let rows = visible.ncols();
        let bins = bins_for(rows);
        let units = visible.nrows();
        let mut histograms = vec![None; units];
        let standardised = layer.standardised_units();
        if units == 0 || !standardised.contains(&true) {
            return Marginals { histograms };
        }
        // Blocks of units on every core, each walking the samples (contiguous) twice: the units'
        // extremes, then their bins' counts. A unit's row read in place is strided over a
        // file-sized matrix (1.6 s for 60,000 x 784 values, twice per unit); minima, maxima and
        // counts do not depend on the order of the values, so the histograms are the same, and
        // no copy of the data is made.
        histograms.par_chunks_mut(MARGINAL_BLOCK_UNITS).enumerate().for_each(|(block, out)| {
            let (first, width) = (block * MARGINAL_BLOCK_UNITS, out.len());
            let samples = || visible.as_slice().chunks_exact(units).map(|sample| &sample[first..first + width]);
            let mut extremes = vec![(f32::INFINITY, f32::NEG_INFINITY); width];
            for sample in samples() {
                for ((low, high), &x) in extremes.iter_mut().zip(sample) {
                    (*low, *high) = (low.min(x), high.max(x));
                }
            }
            for ((histogram, &(low, high)), &chosen) in out.iter_mut().zip(&extremes).zip(&standardised[first..]) {
                *histogram = chosen.then(|| Histogram::spanning(low, high, rows, bins)).flatten();
            }
            let mut counts = vec![0u64; width * bins];
            for sample in samples() {
                for ((histogram, counts), &x) in out.iter().zip(counts.chunks_exact_mut(bins)).zip(sample) {
                    if let Some(histogram) = histogram {
                        counts[histogram.bin(x)] += 1;
                    }
                }
            }
            for (histogram, counts) in out.iter_mut().zip(counts.chunks_exact(bins)) {
                if let Some(histogram) = histogram {
                    histogram.set_counts(counts, rows);
                }
            }
        });
        Marginals { histograms }
    }

    /// `-sum_j log p_j(v_j)` of one sample.
    pub fn energy(&self, v: &[f32]) -> f64 {
        self.histograms.iter().zip(v).filter_map(|(h, &x)| h.as_ref().map(|h| h.energy(x))).sum()
    }

    /// The histogram of unit `u`, if it has one.
    pub fn of_unit(&self, u: usize) -> Option<&Histogram> {
        self.histograms.get(u).and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{VisibleGroup, VisibleKind};

    #[test]
    fn the_layers_histograms_are_each_units_own() {
        // 40 Gaussian units (two blocks), then 3 Bernoulli units, then 2 Gaussian; 1,000 samples;
        // unit 5 is constant (no histogram).
        let groups = [(VisibleKind::Gaussian, 40), (VisibleKind::Bernoulli, 3), (VisibleKind::Gaussian, 2)];
        let layer = VisibleLayer::new(groups.map(|(kind, units)| VisibleGroup { kind, units })).unwrap();
        let data = DMatrix::from_fn(45, 1000, |u, s| match u {
            5 => 2.0,
            40..=42 => (s % 2) as f32,
            _ => (((s * 31 + u * 17) % 97) as f32 / 7.0).powi(1 + (u % 3) as i32),
        });
        let marginals = Marginals::fit(&layer, &data);
        let bins = bins_for(1000);
        for u in 0..45 {
            let expected = match u {
                40..=42 => None,
                _ => Histogram::fit(data.row(u).iter().copied(), 1000, bins),
            };
            assert_eq!(marginals.histograms[u], expected, "unit {u}");
        }
        assert!(marginals.histograms[5].is_none() && marginals.histograms[44].is_some());
    }

    #[test]
    fn histogram_density_integrates_to_one_and_matches_numpy() {
        // numpy: np.histogram([0, 1, 1, 2, 3, 9], bins=3) -> counts [4, 1, 1], edges [0, 3, 6, 9].
        let values = [0.0f32, 1.0, 1.0, 2.0, 3.0, 9.0];
        let h = Histogram::fit(values.iter().copied(), 6, 3).unwrap();
        assert_eq!((h.low, h.width), (0.0, 3.0));
        let density: Vec<f64> = h.log_density.iter().map(|&d| (d as f64).exp()).collect();
        for (d, count) in density.iter().zip([4.0, 1.0, 1.0]) {
            assert!((d - (count + 1.0) / (9.0 * 3.0)).abs() < 1e-6, "{density:?}");
        }
        assert!((density.iter().sum::<f64>() * 3.0 - 1.0).abs() < 1e-6);
        // The maximum falls in the last bin; values outside take the edge bins.
        assert_eq!((h.bin(9.0), h.bin(3.0), h.bin(-5.0), h.bin(100.0)), (2, 1, 0, 2));
        assert!(Histogram::fit([2.0f32; 4].iter().copied(), 4, 3).is_none());
        assert_eq!((bins_for(10), bins_for(400), bins_for(30_000)), (5, 10, 86));
    }
}
