//! Sizes checked before anything is allocated, so that a mistyped `--hidden 100000000` or
//! `--count 100000000000` is a clear error at once rather than minutes of work and an abort.
//!
//! - One matrix (weights, samples, chains) may hold at most [`max_matrix_values`] values:
//!   2^28 by default (1 GiB of f32; training keeps a few copies of the weights), raised or
//!   lowered with the environment variable `RBM_MAX_MATRIX_VALUES`.
//! - CD-k and sampling take at most [`MAX_GIBBS_STEPS`] Gibbs steps per update, so that one
//!   update's work stays bounded (published CD-k uses k up to about 25).

use crate::error::{RbmError, Result};

/// The default of [`max_matrix_values`]: 2^28 values, 1 GiB of f32.
pub const DEFAULT_MAX_MATRIX_VALUES: usize = 1 << 28;

/// The environment variable that overrides [`DEFAULT_MAX_MATRIX_VALUES`].
pub const MAX_MATRIX_VALUES_VARIABLE: &str = "RBM_MAX_MATRIX_VALUES";

/// The most Gibbs steps per parameter update (CD-k's k).
pub const MAX_GIBBS_STEPS: usize = 10_000;

/// The most values one matrix may hold: `RBM_MAX_MATRIX_VALUES` when set to a positive number,
/// else [`DEFAULT_MAX_MATRIX_VALUES`].
pub fn max_matrix_values() -> usize {
    std::env::var(MAX_MATRIX_VALUES_VARIABLE)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&v| v > 0)
        .unwrap_or(DEFAULT_MAX_MATRIX_VALUES)
}

/// Fails with [`RbmError::TooLarge`] when a `rows x cols` matrix of `what` would exceed the limit.
pub fn check_matrix(what: &'static str, rows: usize, cols: usize) -> Result<()> {
    let limit = max_matrix_values();
    match rows.checked_mul(cols) {
        Some(n) if n <= limit => Ok(()),
        _ => Err(RbmError::TooLarge { what, rows, cols, limit }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_matrices_over_the_limit_and_overflowing_products() {
        assert!(check_matrix("weights", 1 << 14, 1 << 14).is_ok());
        let err = check_matrix("weights", 100_000_000, 784).unwrap_err().to_string();
        assert!(err.contains("100000000 x 784") && err.contains(MAX_MATRIX_VALUES_VARIABLE), "{err}");
        assert!(check_matrix("samples", usize::MAX, 2).is_err());
    }
}
