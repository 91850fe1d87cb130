//! Centred training (Melchior, Fischer & Wiskott 2016) end to end: the saved model is an
//! ordinary one (free energy and log Z need no special case), it learns, and training is
//! deterministic for a seed. (The step itself, and its invariance to flipping the data, are
//! tested exactly in `train.rs`.)

mod common;

use std::ops::ControlFlow;

use common::*;
use nalgebra::DMatrix;
use rbm_core::{Rbm, Trainer, TrainingParams, VisibleKind, eval};

/// Binary data: four prototypes (each bit on with probability 0.3) with 5% noise.
fn sparse_data(n: usize, nv: usize, seed: u64) -> DMatrix<f32> {
    let mut r = rng(seed);
    let prototypes = DMatrix::from_fn(nv, 4, |_, _| if uniform(&mut r, 1.0) > 0.4 { 1.0 } else { 0.0 });
    DMatrix::from_fn(nv, n, |i, s| {
        let p = prototypes[(i, s % 4)];
        if uniform(&mut r, 1.0) > 0.95 { 1.0 - p } else { p }
    })
}

fn train(data: &DMatrix<f32>, centered: bool) -> Rbm {
    train_with(data, centered, 30)
}

fn train_epochs(data: &DMatrix<f32>, epochs: usize) -> Rbm {
    train_with(data, true, epochs)
}

fn train_with(data: &DMatrix<f32>, centered: bool, epochs: usize) -> Rbm {
    let params = TrainingParams {
        epochs,
        batch_size: 20,
        learning_rate: 0.05,
        momentum: rbm_core::Momentum::Constant { value: 0.0 },
        weight_decay: 0.0,
        persistent_chains: Some(20),
        centered,
        ..TrainingParams::new(VisibleKind::Bernoulli, 8)
    };
    let trainer = Trainer::initialise(params.check().unwrap(), data).unwrap();
    trainer.fit(data, None, |_| ControlFlow::Continue(())).unwrap().rbm
}

fn log_likelihood(rbm: &Rbm, data: &DMatrix<f32>) -> f64 {
    eval::mean_log_likelihood(rbm, data, eval::log_partition_exact(rbm).unwrap()).unwrap()
}

#[test]
fn centred_models_are_ordinary_models_and_training_is_deterministic() {
    let data = sparse_data(300, 20, 3);
    let a = train(&data, true);
    let b = train(&data, true);
    assert_eq!(a, b);
    assert_ne!(a, train(&data, false));
    let (trained, one_epoch) = (log_likelihood(&a, &data), log_likelihood(&train_epochs(&data, 1), &data));
    assert!(trained > one_epoch + 1.0, "it learns: {trained} after 30 epochs, {one_epoch} after 1");
    // Free energy from the model's parameters equals brute force over the hidden states: no
    // offsets are hidden anywhere in the model.
    for s in 0..5 {
        let v = data.column(s);
        let f = a.free_energy(&DMatrix::from_column_slice(20, 1, v.as_slice())).unwrap()[0];
        assert!((f - brute_free_energy(&a, v.as_slice())).abs() < 1e-6);
    }
}
