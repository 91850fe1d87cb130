//! Per-feature standardisation for Gaussian visible units, stored with the model so that scoring
//! and sampling use the training data's statistics.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// `z = (x - mean) / scale` per feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardization {
    /// Mean of each feature on the training data.
    pub mean: Vec<f32>,
    /// Standard deviation of each feature on the training data (1 where it was zero).
    pub scale: Vec<f32>,
}

impl Standardization {
    /// Statistics of `data` (`n_features x n_samples`), accumulated in f64. Returns the indices of
    /// constant features too: their scale is set to 1 so they stay usable (they standardise to 0).
    pub fn fit(data: &DMatrix<f32>) -> (Self, Vec<usize>) {
        let n = data.ncols().max(1) as f64;
        let mut mean = Vec::with_capacity(data.nrows());
        let mut scale = Vec::with_capacity(data.nrows());
        let mut constant = Vec::new();
        for (i, row) in data.row_iter().enumerate() {
            let m = row.iter().map(|&x| x as f64).sum::<f64>() / n;
            let var = row.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
            let sd = var.sqrt();
            mean.push(m as f32);
            if sd > 1e-12 * m.abs().max(1.0) && (sd as f32) > 0.0 {
                scale.push(sd as f32);
            } else {
                constant.push(i);
                scale.push(1.0);
            }
        }
        (Standardization { mean, scale }, constant)
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.mean.len()
    }

    /// Whether there are no features.
    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    /// Standardises `data` in place.
    pub fn apply(&self, data: &mut DMatrix<f32>) {
        assert_eq!(data.nrows(), self.len(), "feature count differs from the standardisation");
        for mut column in data.column_iter_mut() {
            for ((x, &m), &s) in column.iter_mut().zip(&self.mean).zip(&self.scale) {
                *x = (*x - m) / s;
            }
        }
    }

    /// Maps standardised values back to data units in place.
    pub fn invert(&self, data: &mut DMatrix<f32>) {
        assert_eq!(data.nrows(), self.len(), "feature count differs from the standardisation");
        for mut column in data.column_iter_mut() {
            for ((x, &m), &s) in column.iter_mut().zip(&self.mean).zip(&self.scale) {
                *x = *x * s + m;
            }
        }
    }

    /// `sum_i log scale_i`: the log-Jacobian that turns a log density of standardised data into a
    /// log density of the original data (subtract it).
    pub fn log_jacobian(&self) -> f64 {
        self.scale.iter().map(|&s| (s as f64).ln()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardises_and_inverts_and_keeps_constant_columns() {
        let data = DMatrix::from_row_slice(2, 4, &[1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 5.0, 5.0]);
        let (s, constant) = Standardization::fit(&data);
        assert_eq!(constant, vec![1]);
        assert_eq!(s.scale[1], 1.0);
        let mut z = data.clone();
        s.apply(&mut z);
        let m: f32 = z.row(0).iter().sum::<f32>() / 4.0;
        let v: f32 = z.row(0).iter().map(|x| x * x).sum::<f32>() / 4.0;
        assert!(m.abs() < 1e-6 && (v - 1.0).abs() < 1e-5);
        assert!(z.row(1).iter().all(|&x| x == 0.0));
        s.invert(&mut z);
        assert!((z - data).abs().max() < 1e-5);
    }
}
