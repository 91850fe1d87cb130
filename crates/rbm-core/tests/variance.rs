//! Learned standard deviations of Gaussian units (Cho, Ilin & Raiko 2011): they approach the
//! data's spread within clusters, raise the exact held-out log-likelihood over unit variance,
//! stay in range on constant and wildly scaled columns, and end up in the model's
//! standardisation (a saved model needs nothing new).

mod common;

use std::ops::ControlFlow;

use common::*;
use nalgebra::DMatrix;
use rbm_core::{Model, RbmError, Trainer, TrainingParams, VisibleKind, eval};

/// Two clusters at +-1 in every one of `dims` columns, spread `spread` within a cluster; column
/// `k` scaled by `scales[k]`.
fn clusters(n: usize, spread: f32, scales: &[f32], seed: u64) -> DMatrix<f32> {
    let mut r = rng(seed);
    DMatrix::from_fn(scales.len(), n, |i, s| {
        let centre = if s % 2 == 0 { 1.0 } else { -1.0 };
        // Sum of three uniforms: roughly normal with standard deviation `spread`.
        let noise = (0..3).map(|_| uniform(&mut r, 1.0)).sum::<f32>();
        scales[i] * (centre + spread * noise)
    })
}

fn params(learn_variance: bool) -> TrainingParams {
    TrainingParams {
        epochs: 40,
        batch_size: 20,
        learning_rate: 0.005,
        persistent_chains: Some(20),
        momentum: rbm_core::Momentum::Constant { value: 0.5 },
        learn_variance,
        ..TrainingParams::new(VisibleKind::Gaussian, 4)
    }
}

fn held_out_log_likelihood(model: &Model, data: &DMatrix<f32>) -> f64 {
    model.mean_log_likelihood(data, eval::log_partition_exact(&model.rbm).unwrap()).unwrap()
}

#[test]
fn learned_deviations_fit_the_spread_within_clusters_and_raise_the_likelihood() {
    let scales = [1.0, 1.0, 1.0, 1.0];
    let train = clusters(1000, 0.2, &scales, 1);
    let test = clusters(500, 0.2, &scales, 2);
    let fit = |learn: bool| {
        Model::fit(params(learn).check().unwrap(), &train, None, |_| ControlFlow::Continue(())).unwrap().0
    };
    let (fixed, learned) = (fit(false), fit(true));
    // The spread within a cluster in standardised units: 0.2 / sqrt(1 + 0.04) = 0.196.
    let fixed_scale = &fixed.standardization.as_ref().unwrap().scale;
    let learned_scale = &learned.standardization.as_ref().unwrap().scale;
    for (l, f) in learned_scale.iter().zip(fixed_scale) {
        let sigma = l / f;
        assert!((0.12..0.35).contains(&sigma), "learned sigma {sigma} (scales {learned_scale:?} vs {fixed_scale:?})");
    }
    let (ll_fixed, ll_learned) = (held_out_log_likelihood(&fixed, &test), held_out_log_likelihood(&learned, &test));
    println!("held-out log-likelihood: unit variance {ll_fixed:.3}, learned {ll_learned:.3}");
    assert!(ll_learned > ll_fixed + 1.0, "learned {ll_learned} vs fixed {ll_fixed}");
    // The saved model round-trips with its learned scale.
    let back = Model::from_json(&learned.to_json(), std::path::Path::new("learned.json")).unwrap();
    assert_eq!(back.standardization, learned.standardization);
}

#[test]
fn learned_deviations_stay_in_range_on_constant_and_wildly_scaled_columns() {
    let mut data = clusters(600, 0.3, &[1e-4, 1.0, 1e4, 1.0], 3);
    data.row_mut(3).fill(7.0); // a constant column: its deviation falls towards the bound, not to 0
    let trainer =
        Trainer::initialise(TrainingParams { compress_heavy_tails: false, ..params(true) }.check().unwrap(), &{
            let mut z = data.clone();
            let (s, _) = rbm_core::Standardization::fit(&data);
            s.apply(&mut z).unwrap();
            z
        })
        .unwrap();
    let mut standardised = data.clone();
    rbm_core::Standardization::fit(&data).0.apply(&mut standardised).unwrap();
    let outcome = trainer.fit(&standardised, None, |_| ControlFlow::Continue(())).unwrap();
    let scale = outcome.visible_scale.unwrap();
    let (low, high) = Trainer::SIGMA_RANGE;
    assert!(scale.iter().all(|s| (low..=high).contains(s)), "{scale:?}");
    // The constant column's deviation falls towards the lower bound, far below the others'.
    assert!(scale[3] < 0.5 * scale[1], "{scale:?}");
    assert!(outcome.history.iter().all(|e| e.free_energy_train.is_finite()));
    // Columns 0 and 2 differ in raw scale by 1e8 but are the same after standardisation.
    assert!((scale[0] - scale[2]).abs() < 0.1, "{scale:?}");
}

#[test]
fn learning_the_variance_needs_gaussian_units() {
    let p = TrainingParams { learn_variance: true, ..TrainingParams::new(VisibleKind::Bernoulli, 3) };
    assert!(matches!(p.check(), Err(RbmError::NoGaussianUnits)));
}

#[test]
fn learned_deviations_are_identical_on_one_two_and_three_threads() {
    let data = clusters(300, 0.3, &[1.0, 2.0, 3.0], 4);
    let fit = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let params = TrainingParams { epochs: 5, centered: true, ..params(true) };
            Model::fit(params.check().unwrap(), &data, None, |_| ControlFlow::Continue(())).unwrap().0
        })
    };
    let one = fit(1);
    for threads in [2, 3] {
        let other = fit(threads);
        assert_eq!(one.rbm, other.rbm);
        assert_eq!(one.standardization, other.standardization);
    }
}

#[test]
fn each_columns_learned_deviation_multiplies_its_own_scale() {
    // Column 1 is spread four times wider within its clusters than columns 0 and 2, so after a
    // short training it has learned a larger deviation (not yet the spread: these are far apart); `Model::fit` must fold each unit's deviation into its own column's scale
    // (a walk over the columns that lost its unit index would give every column the first one's).
    let (narrow, wide) = (clusters(600, 0.1, &[1.0, 1.0, 1.0], 5), clusters(600, 0.4, &[1.0], 6));
    let data = DMatrix::from_fn(3, 600, |i, s| if i == 1 { wide[(0, s)] } else { narrow[(i, s)] });
    let params = TrainingParams { compress_heavy_tails: false, ..params(true) };
    let model = Model::fit(params.clone().check().unwrap(), &data, None, |_| ControlFlow::Continue(())).unwrap().0;
    // The same training by hand: standardise, train, read the learned deviations.
    let (standardization, _) = rbm_core::Standardization::fit(&data);
    let mut standardised = data.clone();
    standardization.apply(&mut standardised).unwrap();
    let trainer = Trainer::initialise(params.check().unwrap(), &standardised).unwrap();
    let learned = trainer.fit(&standardised, None, |_| ControlFlow::Continue(())).unwrap().visible_scale.unwrap();
    assert!(learned[1] > 1.02 * learned[0] && learned[1] > 1.02 * learned[2], "{learned:?}");
    let scale = &model.standardization.as_ref().unwrap().scale;
    for column in 0..3 {
        assert_eq!(scale[column], standardization.scale[column] * learned[column], "column {column}");
    }
}
