//! The saved model: an [`Rbm`] plus what is needed to use it on raw data (standardisation,
//! feature names, an anomaly threshold) and provenance, as versioned JSON written atomically.

use std::borrow::Cow;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::error::{RbmError, Result};
use crate::model::Rbm;
use crate::params::{TrainingParams, ValidParams};
use crate::standardize::Standardization;
use crate::train::{EpochStats, Trainer};
use crate::units::VisibleKind;

/// The `format` field of every model file.
pub const FORMAT_NAME: &str = "rbm-model";
/// The model file version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Model files above this size are refused before being read (about 50 million weights).
pub const MAX_MODEL_FILE_BYTES: u64 = 1 << 30;

/// How a model was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Version of the toolkit that wrote the file.
    pub toolkit_version: String,
    /// The training parameters (seed included), when the model was trained by the toolkit.
    pub training: Option<TrainingParams>,
    /// Epochs actually run (fewer than asked if stopped early).
    pub epochs_trained: usize,
}

/// A model ready to use on raw data.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The machine, in model units (standardised data for Gaussian units).
    pub rbm: Rbm,
    /// Standardisation applied to raw data before the machine sees it (Gaussian units).
    pub standardization: Option<Standardization>,
    /// Names of the features, in order (empty if unknown).
    pub feature_names: Vec<String>,
    /// Free energy above which a sample is called anomalous.
    pub anomaly_threshold: Option<f64>,
    /// How the model was made.
    pub provenance: Provenance,
}

/// What [`Model::fit`] returns besides the model.
#[derive(Clone, Debug)]
pub struct FitReport {
    /// Per-epoch statistics.
    pub history: Vec<EpochStats>,
    /// Features that were constant in the training data (Gaussian units: kept with scale 1).
    pub constant_features: Vec<usize>,
    /// Whether the callback stopped training early.
    pub stopped_early: bool,
}

impl Model {
    /// Trains a new model on raw `data` (`n_features x n_samples`): standardises it first for
    /// Gaussian units, initialises as in Hinton's guide, and runs [`Trainer::fit`].
    pub fn fit(
        params: ValidParams,
        data: &DMatrix<f32>,
        validation: Option<&DMatrix<f32>>,
        on_epoch: impl FnMut(&EpochStats) -> ControlFlow<()>,
    ) -> Result<(Model, FitReport)> {
        let (standardization, constant_features) = match params.visible {
            VisibleKind::Gaussian => {
                crate::model::check_values(VisibleKind::Gaussian, data)?; // finite, before the statistics
                let (s, constant) = if params.compress_heavy_tails {
                    Standardization::fit_compressing_heavy_tails(data)
                } else {
                    Standardization::fit(data)
                };
                (Some(s), constant)
            }
            VisibleKind::Bernoulli => (None, Vec::new()),
        };
        let train = standardised(standardization.as_ref(), data);
        if let Some(v) = validation.filter(|v| v.nrows() != data.nrows()) {
            return Err(RbmError::ShapeMismatch {
                what: "validation data",
                expected: format!("{} features", data.nrows()),
                found: format!("{} features", v.nrows()),
            });
        }
        let validation = validation.map(|v| standardised(standardization.as_ref(), v));
        let trainer = Trainer::initialise(params.clone(), &train)?;
        let outcome = trainer.fit(&train, validation.as_deref(), on_epoch)?;
        let model = Model {
            rbm: outcome.rbm,
            standardization,
            feature_names: Vec::new(),
            anomaly_threshold: None,
            provenance: Provenance {
                toolkit_version: env!("CARGO_PKG_VERSION").to_string(),
                training: Some(params.into_inner()),
                epochs_trained: outcome.history.len(),
            },
        };
        Ok((model, FitReport { history: outcome.history, constant_features, stopped_early: outcome.stopped_early }))
    }

    /// Raw data mapped to model units (standardised for Gaussian units, a copy; Bernoulli data as
    /// they are) and checked against the visible units; errors name the sample and feature.
    pub fn prepare<'a>(&self, raw: &'a DMatrix<f32>) -> Result<Cow<'a, DMatrix<f32>>> {
        if raw.nrows() != self.rbm.n_visible() {
            return Err(RbmError::ShapeMismatch {
                what: "data for this model",
                expected: format!("{} features per sample", self.rbm.n_visible()),
                found: format!("{} features", raw.nrows()),
            });
        }
        crate::model::check_values(self.rbm.visible_kind(), raw)?;
        Ok(standardised(self.standardization.as_ref(), raw))
    }

    /// Free energy of each raw sample (in model units: for Gaussian units, of the standardised data).
    pub fn free_energy(&self, raw: &DMatrix<f32>) -> Result<Vec<f64>> {
        Ok(self.rbm.free_energy(&*self.prepare(raw)?))
    }

    /// The model as pretty-printed JSON text.
    pub fn to_json(&self) -> String {
        let file = ModelFileV1 {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            visible: self.rbm.visible_kind(),
            n_visible: self.rbm.n_visible(),
            n_hidden: self.rbm.n_hidden(),
            weights: self.rbm.weights().row_iter().map(|r| r.iter().copied().collect()).collect(),
            visible_bias: self.rbm.visible_bias().as_slice().to_vec(),
            hidden_bias: self.rbm.hidden_bias().as_slice().to_vec(),
            standardization: self.standardization.clone(),
            feature_names: self.feature_names.clone(),
            anomaly_threshold: self.anomaly_threshold,
            provenance: self.provenance.clone(),
        };
        serde_json::to_string_pretty(&file).expect("a model always serialises")
    }

    /// Parses and checks model JSON; `path` only names the source in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Model> {
        let bad = |reason: String| RbmError::ModelFile { path: path.to_path_buf(), reason };
        let file: ModelFileV1 = match serde_json::from_str(text) {
            Ok(f) => f,
            Err(e) => {
                // Say "wrong version" rather than "missing field" when the header is readable.
                if let Ok(header) = serde_json::from_str::<Header>(text) {
                    if header.format != FORMAT_NAME {
                        return Err(bad(format!("format is {:?}, expected {FORMAT_NAME:?}", header.format)));
                    }
                    if header.version != FORMAT_VERSION {
                        return Err(bad(format!(
                            "format version {} is not supported (this build reads version {FORMAT_VERSION})",
                            header.version
                        )));
                    }
                }
                return Err(bad(format!("JSON error at line {}, column {}: {e}", e.line(), e.column())));
            }
        };
        if file.format != FORMAT_NAME {
            return Err(bad(format!("format is {:?}, expected {FORMAT_NAME:?}", file.format)));
        }
        if file.version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} is not supported (this build reads version {FORMAT_VERSION})",
                file.version
            )));
        }
        let (nv, nh) = (file.n_visible, file.n_hidden);
        if nv == 0 || nh == 0 {
            return Err(bad(format!("n_visible = {nv} and n_hidden = {nh} must both be at least 1")));
        }
        if file.weights.len() != nv {
            return Err(bad(format!("weights has {} rows, n_visible is {nv}", file.weights.len())));
        }
        if let Some((i, row)) = file.weights.iter().enumerate().find(|(_, r)| r.len() != nh) {
            return Err(bad(format!("weights row {i} has {} values, n_hidden is {nh}", row.len())));
        }
        let check_len = |what: &str, len: usize, want: usize| {
            if len != want { Err(bad(format!("{what} has {len} values, expected {want}"))) } else { Ok(()) }
        };
        check_len("visible_bias", file.visible_bias.len(), nv)?;
        check_len("hidden_bias", file.hidden_bias.len(), nh)?;
        if let Some(s) = &file.standardization {
            check_len("standardization.mean", s.mean.len(), nv)?;
            check_len("standardization.scale", s.scale.len(), nv)?;
            if s.mean.iter().any(|x| !x.is_finite()) || s.scale.iter().any(|&x| !(x.is_finite() && x > 0.0)) {
                return Err(bad("standardization holds a non-finite mean or a non-positive scale".into()));
            }
            if !s.compress.is_empty() {
                check_len("standardization.compress", s.compress.len(), nv)?;
                if s.compress.iter().flatten().any(|&[c, sp]| !(c.is_finite() && sp.is_finite() && sp > 0.0)) {
                    return Err(bad(
                        "standardization.compress holds a non-finite center or a non-positive spread".into()
                    ));
                }
            }
        }
        if file.visible == VisibleKind::Gaussian && file.standardization.is_none() {
            return Err(bad("Gaussian visible units need a standardization block".into()));
        }
        if !file.feature_names.is_empty() {
            check_len("feature_names", file.feature_names.len(), nv)?;
        }
        if file.anomaly_threshold.is_some_and(|t| !t.is_finite()) {
            return Err(bad("anomaly_threshold is not finite".into()));
        }
        let weights = DMatrix::from_fn(nv, nh, |i, j| file.weights[i][j]);
        let rbm = Rbm::from_parameters(
            file.visible,
            weights,
            DVector::from_vec(file.visible_bias),
            DVector::from_vec(file.hidden_bias),
        )
        .map_err(|e| bad(e.to_string()))?;
        Ok(Model {
            rbm,
            standardization: file.standardization,
            feature_names: file.feature_names,
            anomaly_threshold: file.anomaly_threshold,
            provenance: file.provenance,
        })
    }

    /// Writes the model to `path` atomically: a temporary file in the same directory, flushed to
    /// disk, then renamed over `path`. A crash leaves either the old file or the new one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = self.to_json();
        text.push('\n');
        write_atomically(path, text.as_bytes())
    }

    /// Reads and checks a model file, refusing files over [`MAX_MODEL_FILE_BYTES`] before reading.
    pub fn load(path: &Path) -> Result<Model> {
        let io = |source: std::io::Error| RbmError::Io { path: path.to_path_buf(), source };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_MODEL_FILE_BYTES {
            return Err(RbmError::ModelFile {
                path: path.to_path_buf(),
                reason: format!("file is {size} bytes, more than the {MAX_MODEL_FILE_BYTES} accepted"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Model::from_json(&text, path)
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed to disk,
/// then renamed over `path`. A crash leaves either the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |out| out.write_all(bytes))
}

/// Like [`write_atomically`], for content produced by `write` into a buffered writer (a large
/// model serialised straight to disk, never whole in memory).
pub fn write_atomically_with(path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let io = |source: std::io::Error| RbmError::Io { path: path.to_path_buf(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new().prefix(".rbm-").suffix(".tmp").tempfile_in(&dir).map_err(io)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp);
    write(&mut out).map_err(io)?;
    let tmp = out.into_inner().map_err(|e| io(e.into_error()))?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// `raw` standardised when there is a standardisation (a copy), else `raw` itself (no copy).
fn standardised<'a>(standardization: Option<&Standardization>, raw: &'a DMatrix<f32>) -> Cow<'a, DMatrix<f32>> {
    match standardization {
        Some(s) => {
            let mut x = raw.clone();
            s.apply(&mut x);
            Cow::Owned(x)
        }
        None => Cow::Borrowed(raw),
    }
}

#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
}

/// The on-disk layout of version 1. Weights are stored one row per visible unit.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFileV1 {
    format: String,
    version: u32,
    visible: VisibleKind,
    n_visible: usize,
    n_hidden: usize,
    weights: Vec<Vec<f32>>,
    visible_bias: Vec<f32>,
    hidden_bias: Vec<f32>,
    standardization: Option<Standardization>,
    feature_names: Vec<String>,
    anomaly_threshold: Option<f64>,
    provenance: Provenance,
}
