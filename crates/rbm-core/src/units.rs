//! Visible unit kinds. Each kind supplies the four pieces of mathematics that differ between
//! kinds; everything else (Gibbs sampling, gradients, free energy, log Z) is written once in terms
//! of them. A new kind is a new variant plus its arms here, and its tests.

use serde::{Deserialize, Serialize};

use crate::linalg::{sigmoid, softplus};
use crate::rng::RandomStreams;

/// The kind of the visible units (hidden units are always Bernoulli).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VisibleKind {
    /// Binary units, `p(v_i = 1 | h) = sigmoid(b_i + W_i h)`. Data must lie in [0, 1].
    Bernoulli,
    /// Real-valued units with unit variance on standardised data, `v_i | h ~ N(b_i + W_i h, 1)`.
    Gaussian,
}

impl VisibleKind {
    /// The kind's name as used in files and messages.
    pub fn name(self) -> &'static str {
        match self {
            VisibleKind::Bernoulli => "bernoulli",
            VisibleKind::Gaussian => "gaussian",
        }
    }

    /// `E[v_i | h]` from the activation `a_i = b_i + (W h)_i`.
    #[inline]
    pub fn mean(self, activation: f32) -> f32 {
        match self {
            VisibleKind::Bernoulli => sigmoid(activation),
            VisibleKind::Gaussian => activation,
        }
    }

    /// Draws `v ~ p(v | h)` from the conditional means.
    pub(crate) fn sample(self, means: &[f32], out: &mut [f32], streams: &mut RandomStreams) {
        match self {
            VisibleKind::Bernoulli => streams.bernoulli(means, out),
            VisibleKind::Gaussian => streams.gaussian(means, out),
        }
    }

    /// The visible part of the energy of one unit, `-b v` or `(v - b)^2 / 2`.
    #[inline]
    pub fn energy_term(self, value: f32, bias: f32) -> f64 {
        let (v, b) = (value as f64, bias as f64);
        match self {
            VisibleKind::Bernoulli => -b * v,
            VisibleKind::Gaussian => 0.5 * (v - b) * (v - b),
        }
    }

    /// `log` of the sum (or integral) over one unit's values of `exp(-energy_term(v, b) + v u)`,
    /// given the activation `a = b + u`: `softplus(a)` for Bernoulli units and
    /// `(a^2 - b^2) / 2 + log(2 pi) / 2` for Gaussian units. Summed over units and hidden states it
    /// gives the exact log partition function.
    #[inline]
    pub fn log_partition_term(self, activation: f32, bias: f32) -> f64 {
        let (a, b) = (activation as f64, bias as f64);
        match self {
            VisibleKind::Bernoulli => softplus(a),
            VisibleKind::Gaussian => 0.5 * (a * a - b * b) + 0.5 * (2.0 * std::f64::consts::PI).ln(),
        }
    }

    /// Why `value` cannot be a value of this kind, if it cannot.
    pub fn check_value(self, value: f32) -> Option<&'static str> {
        if !value.is_finite() {
            return Some("value is not a finite number");
        }
        match self {
            VisibleKind::Bernoulli if !(0.0..=1.0).contains(&value) => {
                Some("Bernoulli visible units need values in [0, 1] (use Gaussian units for real-valued data)")
            }
            _ => None,
        }
    }
}
