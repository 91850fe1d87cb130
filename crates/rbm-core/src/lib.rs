//! # rbm-core
//!
//! Restricted Boltzmann Machines: Bernoulli, Gaussian and softmax (categorical) visible units,
//! mixed in one layer ([`VisibleLayer`], one module per kind in [`units`]), and Bernoulli hidden
//! units; block Gibbs sampling, CD-k and persistent CD training with momentum, weight decay and a
//! sparsity target; the masked per-case path for sparse data ([`masked`]); free energy,
//! reconstruction error, pseudo-log-likelihood, exact log partition function and log-likelihood
//! for small models, AIS and reverse-AIS estimates of it for large ones ([`ais`]); and versioned
//! JSON model files.
//!
//! Data are `nalgebra::DMatrix<f32>` of shape `n_features x n_samples` (one column per sample;
//! see [`samples_from_row_major`]). The mathematics, with the shapes used here, is in
//! `docs/maths.md` of the repository.
//!
//! ```
//! use rbm_core::{Model, TrainingParams, VisibleKind, eval};
//!
//! // Eight samples of four binary features: two repeated patterns.
//! let rows: Vec<f32> = [[1., 1., 0., 0.], [0., 0., 1., 1.]].iter().cycle().take(8).flatten().copied().collect();
//! let data = rbm_core::samples_from_row_major(rows, 4)?;
//! let params = TrainingParams { epochs: 50, batch_size: 4, learning_rate: 0.1, ..TrainingParams::new(VisibleKind::Bernoulli, 3) };
//! let (model, report) = Model::fit(params.check()?, &data, None, |_| std::ops::ControlFlow::Continue(()))?;
//! assert_eq!(report.history.len(), 50);
//! let log_z = eval::log_partition_exact(&model.rbm)?;
//! let log_likelihood = eval::mean_log_likelihood(&model.rbm, &data, log_z)?;
//! assert!(log_likelihood > 4.0 * 0.5f64.ln()); // better than the uniform distribution
//! # Ok::<(), rbm_core::RbmError>(())
//! ```
#![deny(missing_docs)]

pub mod ais;
pub mod columns;
mod error;
pub mod eval;
mod file;
mod gibbs;
pub mod limits;
mod linalg;
pub mod marginal;
pub mod masked;
pub mod metrics;
mod model;
pub mod optim;
mod output;
mod params;
mod rng;
mod skinny;
mod standardize;
mod team;
mod train;
pub mod units;

pub use columns::{ColumnEncoding, ColumnKind};
pub use error::{RbmError, Result};
pub use file::{
    Envelope, FORMAT_NAME, FORMAT_VERSION, FileHeader, FitReport, MAX_MODEL_FILE_BYTES, MODEL_ENVELOPE, Model,
    Provenance, file_header, write_atomically, write_atomically_with,
};
pub use gibbs::{PersistentChains, TemperedChains, gibbs_sample};
pub use linalg::{log_add_exp, log_sum_exp, sigmoid, softplus};
pub use model::{Rbm, check_values, samples_from_row_major};
pub use output::{OutputPath, PendingOutput};
pub use params::{Momentum, Sampler, Sparsity, TrainingParams, ValidParams, VisibleSpec};
pub use rng::{RandomStreams, Stream, generator as stream_generator, shuffle, uniform01};
pub use standardize::Standardization;
pub use train::{EpochStats, Gradient, Trainer, TrainingOutcome};
pub use units::{Alternatives, VisibleGroup, VisibleKind, VisibleLayer};

/// The README's Rust example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
