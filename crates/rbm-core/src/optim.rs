//! The update rule of every trainer in the crate: gradient ascent with momentum and L2 weight
//! decay, `velocity = momentum * velocity + rate * (gradient / divisor - decay * p)`, `p += velocity`.
//!
//! The dense trainer's weight update folds the gradient into its GEMMs' `alpha` and `beta` (one
//! pass over a weight-sized buffer saved per batch) and then applies the decay and the step the
//! same way; everything else calls [`Sgd::step`].

/// One step's settings: learning rate, momentum and weight decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// The learning rate.
    pub rate: f32,
    /// Momentum in [0, 1).
    pub momentum: f32,
    /// L2 penalty (0 for biases).
    pub decay: f32,
}

impl Sgd {
    /// Updates `params` and their `velocity` in place from `gradient`, the ascent direction
    /// summed over `divisor` cases (the step uses the mean).
    #[inline]
    pub fn step(&self, params: &mut [f32], velocity: &mut [f32], gradient: &[f32], divisor: f32) {
        for ((p, v), &g) in params.iter_mut().zip(velocity.iter_mut()).zip(gradient) {
            *v = self.momentum * *v + self.rate * (g / divisor - self.decay * *p);
            *p += *v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_follows_the_rule() {
        let (mut p, mut v) = (vec![1.0f32, -2.0], vec![0.5f32, 0.0]);
        Sgd { rate: 0.1, momentum: 0.5, decay: 0.01 }.step(&mut p, &mut v, &[4.0, 2.0], 2.0);
        // v0 = 0.5 * 0.5 + 0.1 * (2 - 0.01); v1 = 0.1 * (1 + 0.02)
        assert!((v[0] - 0.449).abs() < 1e-6 && (v[1] - 0.102).abs() < 1e-6, "{v:?}");
        assert!((p[0] - 1.449).abs() < 1e-6 && (p[1] + 1.898).abs() < 1e-6, "{p:?}");
    }
}
