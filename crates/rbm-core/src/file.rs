//! The saved model: an [`Rbm`] plus what is needed to use it on raw data (standardisation,
//! feature names, an anomaly threshold) and provenance, as versioned JSON written atomically.

use std::borrow::Cow;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;

use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::columns::{self, ColumnEncoding, check_raw};
use crate::error::{RbmError, Result};
use crate::gibbs::PersistentChains;
use crate::marginal::Marginals;
use crate::model::Rbm;
use crate::params::{TrainingParams, ValidParams};
use crate::standardize::Standardization;
use crate::train::{EpochStats, Trainer};
use crate::units::VisibleKind;

/// The `format` field of every model file.
pub const FORMAT_NAME: &str = "rbm-model";
/// The model file version this build writes. Version 1 files (one visible kind for every column)
/// are read as well.
pub const FORMAT_VERSION: u32 = 2;
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

/// A model ready to use on raw data: one value per column, categorical columns holding level
/// indices (see [`crate::columns`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The machine, in model units (standardised Gaussian columns, one-hot categorical columns).
    pub rbm: Rbm,
    /// How each raw column maps to visible units.
    pub columns: Vec<ColumnEncoding>,
    /// Standardisation applied to raw data before the machine sees it (when any column is
    /// Gaussian; the identity on other columns).
    pub standardization: Option<Standardization>,
    /// Names of the columns, in order (empty if unknown).
    pub feature_names: Vec<String>,
    /// Free energy above which a sample is called anomalous.
    pub anomaly_threshold: Option<f64>,
    /// The visible biases of the model *without* hidden units fitted to the same training rows
    /// (each unit's log-odds, each level's log-frequency, each standardised column's mean): the
    /// baseline that tells whether the hidden units earn their keep ([`Model::baseline_free_energy`]).
    /// `None` for files written before it was stored.
    pub baseline_bias: Option<Vec<f32>>,
    /// Per visible unit, the scale the baseline divides values by before its energy: each
    /// standardised (Gaussian) unit's standard deviation over the training rows in model units
    /// (1 unless the variances were learned), 1 for other units. `None` means all 1.
    pub baseline_scale: Option<Vec<f32>>,
    /// Histogram densities of the Gaussian units multiplied into the RBM (see
    /// [`crate::marginal`]): when present, [`Model::free_energy`] is the product's.
    pub marginals: Option<Marginals>,
    /// How the model was made.
    pub provenance: Provenance,
}

/// What [`Model::fit`] returns besides the model.
#[derive(Clone, Debug)]
pub struct FitReport {
    /// Per-epoch statistics.
    pub history: Vec<EpochStats>,
    /// Standardised (Gaussian) columns that were constant in the training data (kept with scale 1).
    pub constant_features: Vec<usize>,
    /// Whether the callback stopped training early.
    pub stopped_early: bool,
}

impl Model {
    /// Trains a new model on raw `data` (`n_columns x n_samples`, categorical columns as level
    /// indices): checks every value once (errors about `validation` come wrapped in
    /// [`RbmError::ValidationData`]), standardises the Gaussian columns, expands the
    /// categorical ones, initialises as in Hinton's guide, runs the trainer and, when
    /// `params.contamination` is set, stores the anomaly threshold at that quantile of the
    /// training rows' free energies.
    pub fn fit(
        params: ValidParams,
        data: &DMatrix<f32>,
        validation: Option<&DMatrix<f32>>,
        on_epoch: impl FnMut(&EpochStats) -> ControlFlow<()>,
    ) -> Result<(Model, FitReport)> {
        let columns = params.visible.columns(data.nrows())?;
        check_raw(&columns, data)?;
        if let Some(v) = validation {
            check_raw(&columns, v).map_err(|e| RbmError::ValidationData(Box::new(e)))?;
        }
        let standardised: Vec<bool> = columns.iter().map(ColumnEncoding::is_standardised).collect();
        let (standardization, constant_features) = if standardised.contains(&true) {
            let (s, constant) = Standardization::fit_columns(data, &standardised, params.compress_heavy_tails);
            (Some(s), constant)
        } else {
            (None, Vec::new())
        };
        let train = to_visible(&columns, standardization.as_ref(), data)?;
        let validation = validation.map(|v| to_visible(&columns, standardization.as_ref(), v)).transpose()?;
        // The units' means, taken once: initialisation, centring and the baseline use them.
        let mut means = crate::model::row_means(&train);
        let trainer = Trainer::initialise_checked(params.clone(), columns::layer_of(&columns)?, &train, &means)?;
        let outcome = trainer.fit_checked(&train, Some(&means), validation.as_deref(), on_epoch)?;
        let mut standardization = standardization;
        let mut train = train;
        if let (Some(scale), Some(s)) = (&outcome.visible_scale, standardization.as_mut()) {
            // The learned standard deviations become part of the standardisation: a Gaussian
            // column is one unit, so walk the columns with the unit index.
            let mut unit = 0;
            for (column, encoding) in columns.iter().enumerate() {
                if encoding.is_standardised() {
                    s.scale[column] *= scale[unit];
                }
                unit += encoding.group().units;
            }
            to_visible_into(&columns, s, data, &mut train)?;
            means = crate::model::row_means(&train);
        }
        let (baseline_bias, baseline_scale) = baseline(outcome.rbm.layer(), &train, &means);
        // Only Gaussian units with spread get a histogram: none, no marginals at all.
        let marginals = params
            .marginal_histograms
            .then(|| Marginals::fit(outcome.rbm.layer(), &train))
            .filter(|m| m.histograms.iter().any(Option::is_some));
        let contamination = params.contamination;
        let mut model = Model {
            rbm: outcome.rbm,
            columns,
            standardization,
            feature_names: Vec::new(),
            anomaly_threshold: None,
            baseline_bias: Some(baseline_bias),
            baseline_scale,
            marginals,
            provenance: Provenance {
                toolkit_version: env!("CARGO_PKG_VERSION").to_string(),
                training: Some(params.into_inner()),
                epochs_trained: outcome.history.len(),
            },
        };
        // The threshold is a quantile of the very score `score` computes (histograms included).
        if let Some(c) = contamination {
            model.anomaly_threshold =
                crate::metrics::contamination_threshold(&model.free_energy_of_visible(&train)?, c);
        }
        Ok((model, FitReport { history: outcome.history, constant_features, stopped_early: outcome.stopped_early }))
    }

    /// The model with its columns named (one name per column).
    pub fn with_feature_names(mut self, names: Vec<String>) -> Result<Model> {
        if names.len() != self.columns.len() {
            return Err(RbmError::ShapeMismatch {
                what: "feature names",
                expected: format!("{} names, one per column", self.columns.len()),
                found: format!("{} names", names.len()),
            });
        }
        self.feature_names = names;
        Ok(self)
    }

    /// Raw data mapped to visible vectors (standardised Gaussian columns and one-hot categorical
    /// columns, a copy; Bernoulli data as they are) after checking every value against its
    /// column; errors name the sample and the column.
    pub fn prepare<'a>(&self, raw: &'a DMatrix<f32>) -> Result<Cow<'a, DMatrix<f32>>> {
        check_raw(&self.columns, raw)?;
        to_visible(&self.columns, self.standardization.as_ref(), raw)
    }

    /// Free energy of each raw sample (in model units: for Gaussian columns, of the standardised
    /// data), the anomaly score: the RBM's, plus `-sum_j log p_j(v_j)` of the histogram
    /// marginals when the model has them.
    pub fn free_energy(&self, raw: &DMatrix<f32>) -> Result<Vec<f64>> {
        self.free_energy_of_visible(&*self.prepare(raw)?)
    }

    /// [`Model::free_energy`] of data already mapped to visible vectors by [`Model::prepare`].
    pub fn free_energy_of_visible(&self, visible: &DMatrix<f32>) -> Result<Vec<f64>> {
        let mut energies = self.rbm.free_energy(visible)?;
        if let (Some(m), n_visible @ 1..) = (&self.marginals, visible.nrows()) {
            // Each row's own sum, on every core.
            energies
                .par_iter_mut()
                .zip(visible.as_slice().par_chunks_exact(n_visible))
                .for_each(|(f, v)| *f += m.energy(v));
        }
        Ok(energies)
    }

    /// Free energy of each raw sample under the baseline model without hidden units (see
    /// [`Model::baseline_bias`]): the sum of the visible energy terms, `sum_g e_g(v_g)`, plus the
    /// histogram marginals' `-sum_j log p_j(v_j)` when the model has them (the same model without
    /// hidden units), in model units like [`Model::free_energy`]. `None` when the file holds no
    /// baseline.
    pub fn baseline_free_energy(&self, raw: &DMatrix<f32>) -> Result<Option<Vec<f64>>> {
        if self.baseline_bias.is_none() {
            return Ok(None);
        }
        self.baseline_free_energy_of_visible(&*self.prepare(raw)?)
    }

    /// [`Model::baseline_free_energy`] of data already mapped to visible vectors by
    /// [`Model::prepare`].
    pub fn baseline_free_energy_of_visible(&self, visible: &DMatrix<f32>) -> Result<Option<Vec<f64>>> {
        let Some(bias) = &self.baseline_bias else { return Ok(None) };
        self.rbm.check_visible_rows("data", visible.nrows())?;
        let layer = self.rbm.layer();
        let mut scaled = vec![0.0f32; visible.nrows()];
        Ok(Some(
            visible
                .column_iter()
                .map(|v| {
                    let v = v.as_slice();
                    let visible_energy = match &self.baseline_scale {
                        Some(scale) => {
                            scaled.iter_mut().zip(v.iter().zip(scale)).for_each(|(out, (&x, &s))| *out = x / s);
                            layer.energy(&scaled, bias)
                        }
                        None => layer.energy(v, bias),
                    };
                    visible_energy + self.marginals.as_ref().map_or(0.0, |m| m.energy(v))
                })
                .collect(),
        ))
    }

    /// Each column's contribution to a sample's anomaly: its surprise given the other columns,
    /// `-log p(v_g | v_rest)` in nats, in model units (standardised Gaussian columns), for every
    /// raw sample: `n_columns x n_samples` (see [`Rbm::conditional_surprise`]).
    pub fn column_surprise(&self, raw: &DMatrix<f32>) -> Result<DMatrix<f64>> {
        self.rbm.conditional_surprise(&*self.prepare(raw)?, self.marginals.as_ref())
    }

    /// Mean log-likelihood of raw samples under the RBM alone (without the histogram marginals,
    /// whose product with the RBM has no exact log Z here) given `log Z` (from
    /// [`crate::eval::log_partition_exact`]):
    /// `-F(v) - log Z` plus, for Gaussian columns, the log-Jacobian of the standardisation (and
    /// of the tail compression), so that it is a log density of the data in their own units.
    pub fn mean_log_likelihood(&self, raw: &DMatrix<f32>, log_partition: f64) -> Result<f64> {
        let prepared = self.prepare(raw)?;
        let sum = self.log_likelihood_sum_before_partition(raw, &prepared)?;
        Ok(sum / raw.ncols().max(1) as f64 - log_partition)
    }

    /// The sum over raw samples of what [`Model::mean_log_likelihood`] averages, before `log Z`
    /// is subtracted (`-F(v)` plus the log-Jacobian), given the same samples mapped by
    /// [`Model::prepare`]: a table read in pieces adds the pieces' sums in order, divides by the
    /// number of rows and subtracts `log Z` once.
    pub fn log_likelihood_sum_before_partition(&self, raw: &DMatrix<f32>, visible: &DMatrix<f32>) -> Result<f64> {
        if raw.ncols() != visible.ncols() {
            return Err(RbmError::ShapeMismatch {
                what: "visible vectors of the raw samples",
                expected: format!("{} samples", raw.ncols()),
                found: format!("{} samples", visible.ncols()),
            });
        }
        let mut sum = -self.rbm.free_energy(visible)?.iter().sum::<f64>();
        if let Some(s) = &self.standardization {
            sum += s.mean_log_jacobian(raw) * raw.ncols() as f64;
        }
        Ok(sum)
    }

    /// `count` samples in raw units (`n_columns x count`): chains started at random hidden
    /// states, `gibbs_steps` block Gibbs steps, then categorical groups collapsed to level
    /// indices and Gaussian columns mapped back through the standardisation.
    pub fn sample(&self, count: usize, gibbs_steps: usize, seed: u64) -> Result<DMatrix<f32>> {
        if count == 0 {
            return Err(RbmError::EmptyData);
        }
        crate::limits::check_matrix("the samples (count x visible units)", count, self.rbm.n_visible())?;
        crate::limits::check_matrix("the samples' hidden states (count x hidden units)", count, self.rbm.n_hidden())?;
        if gibbs_steps > crate::limits::MAX_GIBBS_STEPS {
            return Err(RbmError::InvalidGibbsSteps(gibbs_steps));
        }
        let mut chains = PersistentChains::random(&self.rbm, count, seed);
        chains.advance(&self.rbm, gibbs_steps)?;
        let visible = chains.visible();
        let mut raw =
            if columns::has_categorical(&self.columns) { columns::collapse(&self.columns, &visible)? } else { visible };
        if let Some(s) = &self.standardization {
            s.invert(&mut raw)?;
        }
        Ok(raw)
    }

    /// The model as pretty-printed JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.file()).expect("a model always serialises")
    }

    /// The model in the file's layout.
    fn file(&self) -> ModelFileV2 {
        ModelFileV2 {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            columns: self.columns.clone(),
            n_visible: self.rbm.n_visible(),
            n_hidden: self.rbm.n_hidden(),
            weights: self.rbm.weights().column_iter().map(|c| c.iter().copied().collect()).collect(),
            visible_bias: self.rbm.visible_bias().as_slice().to_vec(),
            hidden_bias: self.rbm.hidden_bias().as_slice().to_vec(),
            standardization: self.standardization.clone(),
            feature_names: self.feature_names.clone(),
            anomaly_threshold: self.anomaly_threshold,
            baseline_bias: self.baseline_bias.clone(),
            baseline_scale: self.baseline_scale.clone(),
            marginal_histograms: self.marginals.clone(),
            provenance: self.provenance.clone(),
        }
    }

    /// Parses and checks model JSON (version 2, or version 1 as older builds wrote it); `path`
    /// only names the source in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Model> {
        let file = MODEL_ENVELOPE.parse(text, path, |version, text| match version {
            1 => serde_json::from_str::<ModelFileV1>(text).map(ModelFileV1::upgrade),
            _ => serde_json::from_str::<ModelFileV2>(text).map(Ok),
        })?;
        Model::checked(file.map_err(|reason| Envelope::bad(path, reason))?, path)
    }

    /// Every length and number of a parsed file checked against the others.
    fn checked(file: ModelFileV2, path: &Path) -> Result<Model> {
        let bad = |reason: String| Envelope::bad(path, reason);
        columns::check_columns(&file.columns).map_err(|e| bad(e.to_string()))?;
        let layer = columns::layer_of(&file.columns).map_err(|e| bad(e.to_string()))?;
        let (nv, nh) = (file.n_visible, file.n_hidden);
        if nv == 0 || nh == 0 {
            return Err(bad(format!("n_visible = {nv} and n_hidden = {nh} must both be at least 1")));
        }
        if layer.n_visible() != nv {
            return Err(bad(format!("the columns make {} visible units, n_visible is {nv}", layer.n_visible())));
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
        let n_columns = file.columns.len();
        check_len("visible_bias", file.visible_bias.len(), nv)?;
        check_len("hidden_bias", file.hidden_bias.len(), nh)?;
        if let Some(s) = &file.standardization {
            check_len("standardization.mean", s.mean.len(), n_columns)?;
            check_len("standardization.scale", s.scale.len(), n_columns)?;
            if s.mean.iter().any(|x| !x.is_finite()) || s.scale.iter().any(|&x| !(x.is_finite() && x > 0.0)) {
                return Err(bad("standardization holds a non-finite mean or a non-positive scale".into()));
            }
            if !s.compress.is_empty() {
                check_len("standardization.compress", s.compress.len(), n_columns)?;
                if s.compress.iter().flatten().any(|&[c, sp]| !(c.is_finite() && sp.is_finite() && sp > 0.0)) {
                    return Err(bad(
                        "standardization.compress holds a non-finite center or a non-positive spread".into()
                    ));
                }
            }
            let identity_elsewhere = file.columns.iter().enumerate().all(|(i, c)| {
                c.is_standardised()
                    || (s.mean[i] == 0.0 && s.scale[i] == 1.0 && s.compress.get(i).is_none_or(Option::is_none))
            });
            if !identity_elsewhere {
                return Err(bad(
                    "standardization changes a column whose units do not standardise (not Gaussian)".into()
                ));
            }
        }
        if let Some(c) = file.columns.iter().find(|c| c.is_standardised()).filter(|_| file.standardization.is_none()) {
            return Err(bad(format!("{} visible units need a standardization block", c.kind().name())));
        }
        if !file.feature_names.is_empty() {
            check_len("feature_names", file.feature_names.len(), n_columns)?;
        }
        if file.anomaly_threshold.is_some_and(|t| !t.is_finite()) {
            return Err(bad("anomaly_threshold is not finite".into()));
        }
        if let Some(bias) = &file.baseline_bias {
            check_len("baseline_bias", bias.len(), nv)?;
            if bias.iter().any(|x| !x.is_finite()) {
                return Err(bad("baseline_bias holds a non-finite value".into()));
            }
        }
        if let Some(scale) = &file.baseline_scale {
            check_len("baseline_scale", scale.len(), nv)?;
            if scale.iter().any(|&x| !(x.is_finite() && x > 0.0)) {
                return Err(bad("baseline_scale holds a non-finite or non-positive value".into()));
            }
            if file.baseline_bias.is_none() {
                return Err(bad("baseline_scale without baseline_bias".into()));
            }
        }
        if let Some(m) = &file.marginal_histograms {
            check_len("marginal_histograms", m.histograms.len(), nv)?;
            if let Some(reason) = m.histograms.iter().flatten().find_map(|h| h.check()) {
                return Err(bad(format!("marginal_histograms: {reason}")));
            }
        }
        let weights = DMatrix::from_fn(nh, nv, |j, i| file.weights[i][j]);
        let rbm = Rbm::from_parameters(
            layer,
            weights,
            DVector::from_vec(file.visible_bias),
            DVector::from_vec(file.hidden_bias),
        )
        .map_err(|e| bad(e.to_string()))?;
        Ok(Model {
            rbm,
            columns: file.columns,
            standardization: file.standardization,
            feature_names: file.feature_names,
            anomaly_threshold: file.anomaly_threshold,
            baseline_bias: file.baseline_bias,
            baseline_scale: file.baseline_scale,
            marginals: file.marginal_histograms,
            provenance: file.provenance,
        })
    }

    /// Writes the model to `path` atomically: a temporary file in the same directory, flushed to
    /// disk, then renamed over `path`. A crash leaves either the old file or the new one.
    pub fn save(&self, path: &Path) -> Result<()> {
        MODEL_ENVELOPE.save(path, &self.file(), true)
    }

    /// Reads and checks a model file, refusing files over [`MAX_MODEL_FILE_BYTES`] before reading.
    pub fn load(path: &Path) -> Result<Model> {
        let file = MODEL_ENVELOPE.load(path, |version, reader| match version {
            1 => serde_json::from_reader::<_, ModelFileV1>(reader).map(ModelFileV1::upgrade),
            _ => serde_json::from_reader::<_, ModelFileV2>(reader).map(Ok),
        })?;
        Model::checked(file.map_err(|reason| Envelope::bad(path, reason))?, path)
    }
}

/// The model without hidden units fitted to `visible` (training rows in model units): its
/// visible biases from each unit's data mean, as the trained model's are initialised, and, when
/// a standardised unit's spread is not 1 (learned variances), the scale that brings each such
/// unit to unit variance first (`None` when every scale is 1). `means` are the units' means
/// ([`crate::model::row_means`] of `visible`).
fn baseline(layer: &crate::VisibleLayer, visible: &DMatrix<f32>, means: &[f64]) -> (Vec<f32>, Option<Vec<f32>>) {
    let n = visible.ncols().max(1) as f64;
    let standardised = layer.standardised_units();
    if !standardised.contains(&true) {
        return (crate::model::initial_biases_from(layer, means, visible.ncols()), None);
    }
    // Each standardised unit's squared deviations, summed over the samples in order.
    let squares = crate::standardize::feature_sums(visible, |unit, x| {
        standardised[unit].then(|| (x as f64 - means[unit]).powi(2))
    });
    let mut scale = vec![1.0f32; visible.nrows()];
    for ((s, sum), &chosen) in scale.iter_mut().zip(squares).zip(&standardised) {
        let spread = (sum / n).sqrt();
        // A constant column keeps scale 1, as the standardisation keeps it.
        if chosen && spread.is_finite() && spread > 1e-12 {
            *s = spread as f32;
        }
    }
    // Scales within rounding of 1 (plain standardisation) are left out.
    if scale.iter().all(|&s| (s - 1.0).abs() <= 1e-3) {
        return (crate::model::initial_biases_from(layer, means, visible.ncols()), None);
    }
    // The initial biases of the rescaled data: from its means, taken without a copy of it.
    let scaled_means = crate::model::row_means_of(visible, |u, x| x / scale[u]);
    (crate::model::initial_biases_from(layer, &scaled_means, visible.ncols()), Some(scale))
}

/// The envelope every model file of the toolkit shares: a JSON object whose first fields are
/// `format` (a name) and `version`, refused above a size before reading, parsed as it is read,
/// and written atomically (temporary file, then rename). The RBM model file and the
/// recommender's use it with their own names, versions and size caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The `format` field.
    pub format: &'static str,
    /// The versions this build reads (it writes the last).
    pub versions: &'static [u32],
    /// Files above this size are refused before being read.
    pub max_bytes: u64,
}

/// The first fields of every model file.
#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<u64>,
}

impl Envelope {
    /// The version written.
    pub fn version(&self) -> u32 {
        *self.versions.last().expect("an envelope reads at least one version")
    }

    fn bad(path: &Path, reason: String) -> RbmError {
        RbmError::ModelFile { path: path.to_path_buf(), reason }
    }

    fn json_error(path: &Path, e: serde_json::Error) -> RbmError {
        let reason = if e.line() > 0 {
            format!("JSON error at line {}, column {}: {e}", e.line(), e.column())
        } else {
            format!("JSON error: {e}")
        };
        Envelope::bad(path, reason)
    }

    /// Checks a parsed header: the format named, a version this build reads.
    fn check(&self, header: Header, path: &Path) -> Result<u32> {
        match header.format.as_deref() {
            Some(f) if f == self.format => {}
            Some(other) => return Err(Envelope::bad(path, format!("format is {other:?}, expected {:?}", self.format))),
            None => return Err(Envelope::bad(path, "no \"format\" field".into())),
        }
        let readable = self.versions.iter().map(u32::to_string).collect::<Vec<_>>().join(" and ");
        match header.version {
            Some(v) if self.versions.iter().any(|&r| r as u64 == v) => Ok(v as u32),
            Some(v) => Err(Envelope::bad(
                path,
                format!("format version {v} is not supported (this build reads version {readable})"),
            )),
            None => Err(Envelope::bad(path, "no \"version\" field".into())),
        }
    }

    /// Parses `text` (the whole file; `path` names it in errors): the header is checked, then
    /// `body` parses the file for the version found.
    pub fn parse<T>(
        &self,
        text: &str,
        path: &Path,
        body: impl FnOnce(u32, &str) -> serde_json::Result<T>,
    ) -> Result<T> {
        let header: Header = serde_json::from_str(text).map_err(|e| Envelope::json_error(path, e))?;
        let version = self.check(header, path)?;
        body(version, text).map_err(|e| Envelope::json_error(path, e))
    }

    /// Reads a file: its size is checked first, then its header, then `body` parses it for the
    /// version found from a buffered reader (the text is never held whole in memory).
    pub fn load<T>(
        &self,
        path: &Path,
        body: impl FnOnce(u32, &mut dyn std::io::Read) -> serde_json::Result<T>,
    ) -> Result<T> {
        let io = |source: std::io::Error| RbmError::Io { path: path.to_path_buf(), source };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > self.max_bytes {
            return Err(Envelope::bad(
                path,
                format!("file is {size} bytes, more than the {} accepted", self.max_bytes),
            ));
        }
        let open = || std::fs::File::open(path).map(|f| std::io::BufReader::with_capacity(1 << 20, f)).map_err(io);
        // The header from the file's head (where every writer puts it); a file whose head does
        // not have it in that order is parsed once more, whole, for it.
        let header = match file_header(path)? {
            Some(FileHeader { format, version: Some(version) }) => {
                Header { format: Some(format), version: Some(version) }
            }
            _ => serde_json::from_reader(open()?).map_err(|e| Envelope::json_error(path, e))?,
        };
        let version = self.check(header, path)?;
        body(version, &mut open()?).map_err(|e| Envelope::json_error(path, e))
    }

    /// Writes `value` (which must serialise `format` and `version` first) atomically, streamed.
    pub fn save(&self, path: &Path, value: &impl Serialize, pretty: bool) -> Result<()> {
        write_atomically_with(path, |out| {
            let written = if pretty {
                serde_json::to_writer_pretty(&mut *out, value)
            } else {
                serde_json::to_writer(&mut *out, value)
            };
            written.map_err(std::io::Error::other)?;
            if pretty { out.write_all(b"\n") } else { Ok(()) }
        })
    }
}

/// The RBM model file's envelope.
pub const MODEL_ENVELOPE: Envelope =
    Envelope { format: FORMAT_NAME, versions: &[1, FORMAT_VERSION], max_bytes: MAX_MODEL_FILE_BYTES };

/// The first two fields of a model file written by this toolkit, as found in its head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// The `format` field: an RBM's [`FORMAT_NAME`], or the recommender's.
    pub format: String,
    /// The `version` field, when it follows `format` in the head.
    pub version: Option<u64>,
}

/// The `format` and `version` fields of a model file, read from its first 4 KiB: every writer
/// puts them first, so a loader can be chosen, and a file checked, without parsing it whole.
/// `None` when the head holds no `format` field.
pub fn file_header(path: &Path) -> Result<Option<FileHeader>> {
    use std::io::Read;
    let io = |source: std::io::Error| RbmError::Io { path: path.to_path_buf(), source };
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(path).and_then(|f| f.take(4096).read_to_end(&mut head)).map_err(io)?;
    Ok(scan_header(&String::from_utf8_lossy(&head)))
}

/// `{"format": "...", "version": N` at the start of a JSON text (the version only when it is the
/// very next field, as the toolkit's writers put it).
fn scan_header(text: &str) -> Option<FileHeader> {
    let rest = text.trim_start().strip_prefix('{')?.trim_start().strip_prefix("\"format\"")?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let end = rest.find('"')?;
    let format = rest[..end].to_owned();
    let version = (|| {
        let rest = rest[end + 1..].trim_start().strip_prefix(',')?.trim_start().strip_prefix("\"version\"")?;
        let rest = rest.trim_start().strip_prefix(':')?.trim_start();
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = rest[digits.len()..].trim_start();
        (after.starts_with(',') || after.starts_with('}')).then(|| digits.parse().ok()).flatten()
    })();
    Some(FileHeader { format, version })
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed to disk,
/// then renamed over `path`. A crash leaves either the old file or the new one. Links are
/// written through, special files directly, and a new file gets the umask's permissions (see
/// [`crate::OutputPath`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |out| out.write_all(bytes))
}

/// Like [`write_atomically`], for content produced by `write` into a buffered writer (a large
/// model serialised straight to disk, never whole in memory).
pub fn write_atomically_with(path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    crate::output::OutputPath::check(path, &[])?.write_with(write)
}

/// Checked raw data as visible vectors: standardised when there is a standardisation (a copy),
/// categorical columns expanded to one-hot (a copy), else `raw` itself (no copy).
fn to_visible<'a>(
    columns: &[ColumnEncoding],
    standardization: Option<&Standardization>,
    raw: &'a DMatrix<f32>,
) -> Result<Cow<'a, DMatrix<f32>>> {
    let standardised = match standardization {
        Some(s) => Cow::Owned(s.applied(raw)?),
        None => Cow::Borrowed(raw),
    };
    Ok(if columns::has_categorical(columns) {
        Cow::Owned(columns::expand_checked(columns, &standardised))
    } else {
        standardised
    })
}

/// [`to_visible`] with `standardization` into `visible`: into its own buffer when it holds the
/// standardised columns themselves (no categorical expansion), else afresh after dropping it, so
/// that memory never holds two standardised copies of the data beside the raw one.
fn to_visible_into<'a>(
    columns: &[ColumnEncoding],
    standardization: &Standardization,
    raw: &'a DMatrix<f32>,
    visible: &mut Cow<'a, DMatrix<f32>>,
) -> Result<()> {
    match visible {
        Cow::Owned(m) if !columns::has_categorical(columns) && m.shape() == raw.shape() => {
            standardization.apply_from(raw, m)
        }
        _ => {
            *visible = Cow::Borrowed(raw);
            *visible = to_visible(columns, Some(standardization), raw)?;
            Ok(())
        }
    }
}

/// The on-disk layout of version 2. Weights are stored one row per visible unit.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFileV2 {
    format: String,
    version: u32,
    columns: Vec<ColumnEncoding>,
    n_visible: usize,
    n_hidden: usize,
    weights: Vec<Vec<f32>>,
    visible_bias: Vec<f32>,
    hidden_bias: Vec<f32>,
    standardization: Option<Standardization>,
    feature_names: Vec<String>,
    anomaly_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    baseline_bias: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    baseline_scale: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    marginal_histograms: Option<Marginals>,
    provenance: Provenance,
}

/// The on-disk layout of version 1: one visible kind for every column.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFileV1 {
    format: String,
    #[serde(rename = "version")]
    _version: u32,
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

impl ModelFileV1 {
    /// The same model in version 2's layout.
    fn upgrade(self) -> std::result::Result<ModelFileV2, String> {
        let encoding = ColumnEncoding::of_kind(self.visible)
            .ok_or_else(|| format!("version 1 files hold bernoulli or gaussian units, not {}", self.visible.name()))?;
        Ok(ModelFileV2 {
            format: self.format,
            version: FORMAT_VERSION,
            columns: vec![encoding; self.n_visible],
            n_visible: self.n_visible,
            n_hidden: self.n_hidden,
            weights: self.weights,
            visible_bias: self.visible_bias,
            hidden_bias: self.hidden_bias,
            standardization: self.standardization,
            feature_names: self.feature_names,
            anomaly_threshold: self.anomaly_threshold,
            baseline_bias: None,
            baseline_scale: None,
            marginal_histograms: None,
            provenance: self.provenance,
        })
    }
}
