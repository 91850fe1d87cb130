//! Golden values: a small model of each kind trained with a fixed seed must keep its parameters.
//! An RBM bug rarely crashes, it quietly learns something else; these tests make any change of
//! results visible. When a change is intended (new mathematics, a new default), re-pin the values
//! printed by the failing test and say so in the commit.

mod common;

use std::ops::ControlFlow;

use common::*;
use nalgebra::DMatrix;
use rbm_core::{ColumnEncoding, Model, Momentum, TrainingParams, VisibleKind, VisibleSpec};

/// A few numbers that move with any change of a trained model: sums and sums of squares of the
/// weights and biases, two single weights, and the data's mean free energy.
fn fingerprint(model: &Model, data: &DMatrix<f32>) -> [f64; 7] {
    let rbm = &model.rbm;
    let sum = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>();
    let squares = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
    let w = rbm.weights().as_slice();
    let f = model.free_energy(data).unwrap();
    [
        sum(w),
        squares(w),
        w[0] as f64,
        w[w.len() - 1] as f64,
        sum(rbm.visible_bias().as_slice()),
        sum(rbm.hidden_bias().as_slice()),
        f.iter().sum::<f64>() / f.len() as f64,
    ]
}

fn assert_pinned(got: [f64; 7], pinned: [f64; 7]) {
    for (g, p) in got.iter().zip(&pinned) {
        // f32 parameters: agreement to 1e-4 relative allows for a different SIMD kernel, and no more.
        assert!((g - p).abs() <= 1e-4 * p.abs().max(1e-2), "fingerprint changed: got {got:?}, pinned {pinned:?}");
    }
}

fn fit(params: TrainingParams, data: &DMatrix<f32>) -> Model {
    Model::fit(params.check().unwrap(), data, None, |_| ControlFlow::Continue(())).unwrap().0
}

/// 200 binary samples of 10 features: two noisy prototypes.
fn binary_data() -> DMatrix<f32> {
    let mut r = rng(1);
    DMatrix::from_fn(10, 200, |i, s| {
        let on = if s % 2 == 0 { i < 5 } else { i % 2 == 0 };
        if uniform(&mut r, 1.0).abs() < 0.1 { f32::from(!on) } else { f32::from(on) }
    })
}

#[test]
fn bernoulli_model_cd_and_pcd_keep_their_values() {
    let data = binary_data();
    let cd = TrainingParams {
        epochs: 15,
        batch_size: 20,
        learning_rate: 0.1,
        seed: 7,
        ..TrainingParams::new(VisibleKind::Bernoulli, 6)
    };
    let got = fingerprint(&fit(cd.clone(), &data), &data);
    println!("bernoulli CD-1: {got:?}");
    assert_pinned(got, BERNOULLI_CD);
    let pcd = TrainingParams { persistent_chains: Some(20), gibbs_steps: 2, ..cd };
    let got = fingerprint(&fit(pcd, &data), &data);
    println!("bernoulli PCD-2: {got:?}");
    assert_pinned(got, BERNOULLI_PCD);
}

#[test]
fn gaussian_model_keeps_its_values() {
    let mut r = rng(2);
    let data = DMatrix::from_fn(4, 150, |i, s| {
        let base = (s % 3) as f32 * 2.0 + i as f32;
        if i == 3 { (base + uniform(&mut r, 1.0)).exp() } else { base + uniform(&mut r, 0.5) }
    });
    let params = TrainingParams {
        epochs: 20,
        batch_size: 15,
        learning_rate: 0.01,
        persistent_chains: Some(15),
        momentum: Momentum::Constant { value: 0.5 },
        compress_heavy_tails: true,
        seed: 3,
        ..TrainingParams::new(VisibleKind::Gaussian, 5)
    };
    let got = fingerprint(&fit(params, &data), &data);
    println!("gaussian: {got:?}");
    assert_pinned(got, GAUSSIAN);
}

#[test]
fn mixed_model_keeps_its_values() {
    let columns = vec![
        ColumnEncoding::GAUSSIAN,
        ColumnEncoding::Categorical { levels: vec!["a".into(), "b".into(), "c".into()] },
        ColumnEncoding::BERNOULLI,
    ];
    let mut r = rng(4);
    let data = DMatrix::from_fn(3, 120, |i, s| match i {
        0 => (s % 3) as f32 + uniform(&mut r, 0.3),
        1 => (s % 3) as f32,
        _ => f32::from(s % 3 == 1),
    });
    let params = TrainingParams {
        epochs: 20,
        batch_size: 12,
        learning_rate: 0.03,
        momentum: Momentum::Constant { value: 0.5 },
        seed: 5,
        ..TrainingParams::new(VisibleSpec::Columns(columns), 4)
    };
    let got = fingerprint(&fit(params, &data), &data);
    println!("mixed: {got:?}");
    assert_pinned(got, MIXED);
}

const BERNOULLI_CD: [f64; 7] = [
    -4.351289382204413,
    49.730591357578064,
    -0.232802152633667,
    0.28309398889541626,
    -0.04682596027851105,
    -1.5347618568339385,
    -10.728317497636322,
];
const BERNOULLI_PCD: [f64; 7] = [
    -17.63562275469303,
    38.83479900790188,
    -0.6318232417106628,
    0.06284701824188232,
    -0.1738680899143219,
    -4.382410615682602,
    -6.773185361481444,
];
const GAUSSIAN: [f64; 7] = [
    -0.026865867199376225,
    0.07482509895173309,
    -0.10644856840372086,
    -0.021462824195623398,
    -0.0593566563911736,
    -0.012381599051877856,
    -1.4915475045612867,
];
const MIXED: [f64; 7] = [
    -0.11936466675251722,
    0.007383839795110867,
    -0.01103285327553749,
    -0.021862631663680077,
    -3.9928402435034513,
    -0.05132645275443792,
    -0.9027871166051801,
];
