//! Trains a Bernoulli RBM on the shipped UCI digits (grey levels scaled to [0, 1]) and prints
//! per-epoch statistics, exact log-likelihoods, the pseudo-log-likelihood, and the free energies
//! of held-out digits next to those of random-noise images (the anomaly-scoring idea).
//!
//!     cargo run --release -p rbm-core --example digits [-- path/to/digits.csv]

use std::ops::ControlFlow;

use nalgebra::DMatrix;
use rbm_core::{Model, TrainingParams, VisibleKind, eval};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path =
        std::env::args().nth(1).unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv").into());
    let mut reader = csv::Reader::from_path(&path)?;
    let mut values = Vec::new();
    let mut rows = 0;
    for record in reader.records() {
        let record = record?;
        // 64 grey levels 0..16, then the label, which is left out.
        for field in record.iter().take(64) {
            values.push(field.parse::<f32>()? / 16.0);
        }
        rows += 1;
    }
    let all = rbm_core::samples_from_row_major(values, 64).unwrap();
    let n_train = rows * 5 / 6;
    let train = all.columns(0, n_train).clone_owned();
    let test = all.columns(n_train, rows - n_train).clone_owned();
    println!("{path}: {rows} digits, {n_train} to train, {} held out", rows - n_train);

    let params = TrainingParams {
        epochs: 30,
        batch_size: 20,
        learning_rate: 0.05,
        persistent_chains: Some(100),
        seed: 7,
        ..TrainingParams::new(VisibleKind::Bernoulli, 20)
    };
    let (model, _) = Model::fit(params.check()?, &train, Some(&test), |s| {
        if s.epoch % 5 == 0 {
            println!(
                "epoch {:>2}: reconstruction error {:.4}, free energy train {:.2}, held-out {:.2} (gap {:+.2})",
                s.epoch,
                s.reconstruction_error,
                s.free_energy_train,
                s.free_energy_validation.unwrap_or(f64::NAN),
                s.free_energy_gap().unwrap_or(f64::NAN)
            );
        }
        ControlFlow::Continue(())
    })?;

    let rbm = &model.rbm;
    let log_z = eval::log_partition_exact(rbm)?;
    println!("exact log Z = {log_z:.3} (20 hidden units: 2^20 states enumerated)");
    println!(
        "mean log-likelihood: train {:.3}, held-out {:.3} nats per digit",
        eval::mean_log_likelihood(rbm, &train, log_z).unwrap(),
        eval::mean_log_likelihood(rbm, &test, log_z).unwrap()
    );
    let pll = eval::pseudo_log_likelihood(rbm, &test, eval::PseudoLikelihood::AllFeatures)?;
    println!("pseudo-log-likelihood per feature, held-out: {pll:.4}");

    let mut state = 12345u64;
    let noise = DMatrix::from_fn(64, test.ncols(), |_, _| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) % 17) as f32 / 16.0
    });
    let digits_f = eval::mean_free_energy(rbm, &test).unwrap();
    let noise_f = eval::mean_free_energy(rbm, &noise).unwrap();
    let highest_train = rbm.free_energy(&train).unwrap().into_iter().fold(f64::MIN, f64::max);
    let flagged = rbm.free_energy(&noise).unwrap().iter().filter(|&&f| f > highest_train).count();
    println!("mean free energy: held-out digits {digits_f:.2}, random noise images {noise_f:.2}");
    println!("{flagged} of {} noise images have a free energy above every training digit's", noise.ncols());
    Ok(())
}
