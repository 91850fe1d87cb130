//! The training and scoring hot paths on MNIST-shaped synthetic binary data:
//! - one CD-1 epoch, 60,000 x 784, 500 hidden units, batch 100 (the shapes timed beside
//!   scikit-learn and PyTorch by the team's shared `bench/compare.sh`, outside this repository):
//!   products split across threads;
//! - one PCD-1 epoch, plain and centred (the defaults), 50,000 x 784, 16 hidden units, batch 100:
//!   the small-model path (phases in pieces of samples, serial products);
//! - free energies of 100,000 rows (what `rbm score` does per piece);
//! - Gaussian units' standardisation of 60,000 x 784 values, heavy tails compressed (what
//!   `rbm train --visible gaussian` does before training): its fit and its application.
//!
//! Monitoring is cut to 100 rows so the figures are the training alone.
//! Run: `cargo bench -p rbm-core --bench cd_epoch`.

use std::ops::ControlFlow;

use criterion::{Criterion, criterion_group, criterion_main};
use nalgebra::DMatrix;
use rbm_core::{Momentum, Standardization, Trainer, TrainingParams, VisibleKind};

fn synthetic_binary(rows: usize, cols: usize, density: f64, seed: u64) -> DMatrix<f32> {
    let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    DMatrix::from_fn(cols, rows, |_, _| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        if ((state >> 11) as f64 / (1u64 << 53) as f64) < density { 1.0 } else { 0.0 }
    })
}

fn cd1_epoch(c: &mut Criterion) {
    let data = synthetic_binary(60_000, 784, 0.13, 0);
    let params = TrainingParams {
        epochs: 1,
        batch_size: 100,
        learning_rate: 0.05,
        momentum: Momentum::Constant { value: 0.0 },
        weight_decay: 0.0,
        monitor_rows: 100,
        ..TrainingParams::new(VisibleKind::Bernoulli, 500)
    }
    .check()
    .unwrap();
    let trainer = Trainer::initialise(params, &data).unwrap();
    let mut group = c.benchmark_group("cd1_epoch");
    group.sample_size(10);
    group.bench_function("rows=60000/visible=784/hidden=500/batch=100", |b| {
        b.iter(|| trainer.clone().fit(&data, None, |_| ControlFlow::Continue(())).unwrap())
    });
    group.finish();
}

fn pcd1_epoch_small(c: &mut Criterion) {
    let data = synthetic_binary(50_000, 784, 0.13, 1);
    let mut group = c.benchmark_group("pcd1_epoch_small");
    group.sample_size(10);
    for centered in [false, true] {
        let params = TrainingParams {
            epochs: 1,
            batch_size: 100,
            learning_rate: 0.05,
            momentum: Momentum::Constant { value: 0.0 },
            weight_decay: 0.0,
            persistent_chains: Some(100),
            centered,
            monitor_rows: 100,
            ..TrainingParams::new(VisibleKind::Bernoulli, 16)
        }
        .check()
        .unwrap();
        let trainer = Trainer::initialise(params, &data).unwrap();
        let name = format!("rows=50000/visible=784/hidden=16/batch=100/centered={centered}");
        group.bench_function(name, |b| {
            b.iter(|| trainer.clone().fit(&data, None, |_| ControlFlow::Continue(())).unwrap())
        });
    }
    group.finish();
}

fn free_energy(c: &mut Criterion) {
    let data = synthetic_binary(100_000, 784, 0.13, 2);
    let params =
        TrainingParams { weight_scale: 0.1, ..TrainingParams::new(VisibleKind::Bernoulli, 16) }.check().unwrap();
    let rbm = Trainer::initialise(params, &data).unwrap().rbm().clone();
    let mut group = c.benchmark_group("free_energy");
    group.sample_size(10);
    group.bench_function("rows=100000/visible=784/hidden=16", |b| b.iter(|| rbm.free_energy(&data).unwrap()));
    group.finish();
}

fn standardise(c: &mut Criterion) {
    // Sparse binary pixels: skewed, so every column is compressed (the heavy-tail path).
    let data = synthetic_binary(60_000, 784, 0.13, 3);
    let mut group = c.benchmark_group("standardise");
    group.sample_size(10);
    group.bench_function("fit/rows=60000/columns=784", |b| {
        b.iter(|| Standardization::fit_compressing_heavy_tails(&data))
    });
    let (standardization, _) = Standardization::fit_compressing_heavy_tails(&data);
    group.bench_function("apply/rows=60000/columns=784", |b| b.iter(|| standardization.applied(&data).unwrap()));
    group.finish();
}

criterion_group!(benches, cd1_epoch, pcd1_epoch_small, free_energy, standardise);
criterion_main!(benches);
