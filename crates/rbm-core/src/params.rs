//! Training hyper-parameters: a plain struct the caller fills in, checked once into
//! [`ValidParams`] before any work starts (each invalid value has its own error variant).

use serde::{Deserialize, Serialize};

use crate::columns::{ColumnEncoding, check_columns};
use crate::error::{RbmError, Result};
use crate::units::VisibleKind;

/// Which visible units a model gets: one elementwise kind for every column, or one encoding per
/// column (a mixed layer: Bernoulli, Gaussian and categorical columns side by side).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VisibleSpec {
    /// Every column is one unit of this kind (Bernoulli or Gaussian).
    Uniform(VisibleKind),
    /// One encoding per column of the data.
    Columns(Vec<ColumnEncoding>),
}

impl From<VisibleKind> for VisibleSpec {
    fn from(kind: VisibleKind) -> Self {
        VisibleSpec::Uniform(kind)
    }
}

impl VisibleSpec {
    /// The encoding of each of `n_columns` columns.
    pub fn columns(&self, n_columns: usize) -> Result<Vec<ColumnEncoding>> {
        match self {
            VisibleSpec::Uniform(kind) => {
                let encoding = ColumnEncoding::of_kind(*kind).ok_or(RbmError::InvalidVisible(kind.name()))?;
                Ok(vec![encoding; n_columns])
            }
            VisibleSpec::Columns(columns) => {
                if columns.len() != n_columns {
                    return Err(RbmError::ShapeMismatch {
                        what: "data for these column encodings",
                        expected: format!("{} columns", columns.len()),
                        found: format!("{n_columns} columns"),
                    });
                }
                Ok(columns.clone())
            }
        }
    }

    /// Whether any unit is of `kind`.
    pub fn has(&self, kind: VisibleKind) -> bool {
        match self {
            VisibleSpec::Uniform(k) => *k == kind,
            VisibleSpec::Columns(columns) => columns.iter().any(|c| c.group().kind == kind),
        }
    }

    /// The unit kinds present.
    fn kinds(&self) -> Vec<VisibleKind> {
        VisibleKind::ALL.iter().copied().filter(|&k| self.has(k)).collect()
    }

    /// The default learning rate: the smallest of the kinds' defaults (the most sensitive kind
    /// sets the pace of a mixed layer).
    pub fn default_learning_rate(&self) -> f64 {
        self.kinds().iter().map(|k| k.default_learning_rate()).fold(f64::INFINITY, f64::min)
    }
}

/// The momentum applied to parameter updates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "schedule", rename_all = "lowercase")]
pub enum Momentum {
    /// The same momentum in every epoch.
    Constant {
        /// Momentum in [0, 1).
        value: f64,
    },
    /// Hinton's schedule ("A practical guide to training RBMs", section 9): `initial` for the
    /// first `switch_epoch` epochs, `final_value` afterwards.
    Hinton {
        /// Momentum at the start (0.5 in the guide).
        initial: f64,
        /// Momentum after the switch (0.9 in the guide).
        final_value: f64,
        /// Number of epochs run at the initial momentum (5 in the guide).
        switch_epoch: usize,
    },
}

impl Momentum {
    /// Hinton's 0.5 -> 0.9 schedule, switching after 5 epochs.
    pub const HINTON: Momentum = Momentum::Hinton { initial: 0.5, final_value: 0.9, switch_epoch: 5 };

    /// The momentum used in `epoch` (zero-based).
    pub fn at(self, epoch: usize) -> f64 {
        match self {
            Momentum::Constant { value } => value,
            Momentum::Hinton { initial, final_value, switch_epoch } => {
                if epoch < switch_epoch {
                    initial
                } else {
                    final_value
                }
            }
        }
    }
}

/// A sparsity target on the hidden units' mean activation (Lee, Ekanadham & Ng 2008; Hinton's
/// guide section 11): the hidden biases are pushed by `cost * (q - target)`, where `q` is a running
/// mean (decay 0.9) of each hidden unit's probability on the training batches.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sparsity {
    /// The desired mean activation, in (0, 1).
    pub target: f64,
    /// The penalty's weight, >= 0.
    pub cost: f64,
}

/// How PCD's persistent chains are advanced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Sampler {
    /// Block Gibbs steps at the model's temperature. Each update first draws the chains' hidden
    /// units afresh from `p(h | v)` under the updated parameters (Tieleman 2008).
    #[default]
    Gibbs,
    /// Block Gibbs steps at the model's temperature, started from the hidden probabilities the
    /// chains ended the previous update with (under that update's parameters), as scikit-learn's
    /// `BernoulliRBM` does: the chains carry their hidden state between updates instead of their
    /// visible state. Each update saves one product of the chains with the weights (about a
    /// sixth of PCD-1's arithmetic); for fixed parameters both are the same Gibbs sampler.
    #[serde(rename = "kept-hidden")]
    KeptHidden,
    /// Parallel tempering ([`crate::TemperedChains`]): as many chains as `persistent_chains` at
    /// each of `temperatures` inverse temperatures evenly spaced from 1 to 0, with swaps; the
    /// `beta = 1` chains give the negative statistics. Costs about `temperatures` times the
    /// Gibbs chains' sampling.
    Tempering {
        /// Number of inverse temperatures, at least 2.
        temperatures: usize,
    },
}

/// Every setting of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingParams {
    /// The visible units: one kind, or one encoding per column.
    pub visible: VisibleSpec,
    /// Number of hidden units.
    pub n_hidden: usize,
    /// Passes over the training data.
    pub epochs: usize,
    /// Samples per mini-batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Step size applied to the batch-mean gradient.
    pub learning_rate: f64,
    /// Momentum schedule.
    pub momentum: Momentum,
    /// L2 penalty on the weights (not the biases).
    pub weight_decay: f64,
    /// Gibbs steps per update: the k of CD-k (or of PCD-k).
    pub gibbs_steps: usize,
    /// `Some(n)`: persistent CD with `n` chains; `None`: CD-k started at the data.
    pub persistent_chains: Option<usize>,
    /// Optional sparsity target.
    pub sparsity: Option<Sparsity>,
    /// Standard deviation of the initial weights (Hinton: 0.01).
    pub weight_scale: f64,
    /// Seed of every random choice of the run.
    pub seed: u64,
    /// Anneal the learning rate linearly to zero: epoch `e` (0-based) of `E` uses
    /// `learning_rate * (E - e) / E` (Tieleman 2008 did so for PCD; it quiets the chains' noise
    /// at the end of training).
    #[serde(default)]
    pub anneal: bool,
    /// Gaussian units: learn each unit's standard deviation `sigma` (Cho, Ilin & Raiko 2011,
    /// through `log sigma`) instead of fixing it at 1, within
    /// [`crate::Trainer::SIGMA_RANGE`]. The model works on `v / sigma`; [`crate::Model::fit`]
    /// folds `sigma` into the stored standardisation, so a saved model needs nothing new.
    #[serde(default)]
    pub learn_variance: bool,
    /// How the persistent chains are advanced (PCD only).
    #[serde(default)]
    pub sampler: Sampler,
    /// Centred gradients (Melchior, Fischer & Wiskott, JMLR 2016): the gradient is taken in the
    /// parameterisation centred on offsets (the visible units' data means and a running mean of the
    /// hidden probabilities) and mapped back, so the model stays in the ordinary parameterisation.
    #[serde(default)]
    pub centered: bool,
    /// Gaussian units: compress heavy-tailed features with a signed logarithm before
    /// standardising (see [`crate::Standardization::fit_compressing_heavy_tails`]).
    #[serde(default)]
    pub compress_heavy_tails: bool,
    /// Gaussian units: multiply the RBM by a histogram density of each Gaussian unit, fitted
    /// on the training rows ([`crate::marginal`]); the model's free energy then includes their
    /// `-log p_j(v_j)`.
    #[serde(default)]
    pub marginal_histograms: bool,
    /// At most this many training samples (a fixed random subset) are used for the per-epoch
    /// statistics, to keep monitoring cheap on large data.
    pub monitor_rows: usize,
    /// When set, [`crate::Model::fit`] stores an anomaly threshold: the `1 - contamination`
    /// quantile of the training rows' free energies (the expected fraction of anomalies), in [0, 1).
    #[serde(default)]
    pub contamination: Option<f64>,
}

impl TrainingParams {
    /// Defaults for the given units and hidden-layer size: 10 epochs of CD-1, batch 100, the
    /// units' default learning rate ([`VisibleKind::default_learning_rate`]: 0.05 for Bernoulli
    /// and softmax units, 0.005 for Gaussian units, whose gradients are larger; the smallest of a
    /// mixed layer's), Hinton's momentum schedule, weight decay 1e-4, no sparsity, seed 0.
    pub fn new(visible: impl Into<VisibleSpec>, n_hidden: usize) -> Self {
        let visible = visible.into();
        TrainingParams {
            learning_rate: visible.default_learning_rate(),
            visible,
            n_hidden,
            epochs: 10,
            batch_size: 100,
            momentum: Momentum::HINTON,
            weight_decay: 1e-4,
            gibbs_steps: 1,
            persistent_chains: None,
            sparsity: None,
            weight_scale: 0.01,
            seed: 0,
            centered: false,
            sampler: Sampler::Gibbs,
            learn_variance: false,
            anneal: false,
            compress_heavy_tails: false,
            marginal_histograms: false,
            monitor_rows: 10_000,
            contamination: None,
        }
    }

    /// Defaults chosen from the data shape (`rows` samples of `features` values), as the `rbm`
    /// command line uses them:
    /// - batch size `rows / 20` clamped to [10, 100], and enough epochs for about 5,000 updates,
    ///   `ceil(5000 * batch / rows)` clamped to [10, 200];
    /// - without Gaussian units: as many hidden units as visible units, clamped to [8, 256];
    ///   centred PCD-1 with one chain per batch row, learning rate 0.05 annealed linearly to 0, no
    ///   momentum and no weight decay. Chosen on binarised MNIST (docs/results.md): in the same
    ///   epochs this scored tens of nats better than CD-1 with Hinton's momentum schedule, and
    ///   momentum or decay only hurt PCD there;
    /// - with Gaussian units (alone or in a mixed layer): 8 hidden units, PCD-1 with one chain per
    ///   batch row, learning rate 0.005, constant momentum 0.5, learned standard deviations,
    ///   heavy-tailed features compressed, and histogram marginals multiplied in
    ///   ([`crate::marginal`]). Chosen on the ten ODDS development sets
    ///   (docs/anomaly.md): with unit variances the model cannot express a tight relation between
    ///   columns (each column given the hidden units keeps variance 1); learning the variances
    ///   at this step size raised the mean ROC-AUC from 0.832 to 0.851, and the histograms to
    ///   0.871.
    ///
    /// `visible_units` counts units (a categorical column has one per level).
    pub fn for_data(visible: impl Into<VisibleSpec>, rows: usize, visible_units: usize) -> Self {
        let visible = visible.into();
        let batch_size = (rows / 20).clamp(10, 100);
        let epochs = (5000 * batch_size).div_ceil(rows.max(1)).clamp(10, 200);
        let gaussian = visible.has(VisibleKind::Gaussian);
        let base = TrainingParams { epochs, batch_size, ..TrainingParams::new(visible, 0) };
        match gaussian {
            false => TrainingParams {
                n_hidden: visible_units.clamp(8, 256),
                learning_rate: 0.05,
                anneal: true,
                momentum: Momentum::Constant { value: 0.0 },
                weight_decay: 0.0,
                persistent_chains: Some(batch_size),
                centered: true,
                ..base
            },
            true => TrainingParams {
                n_hidden: 8,
                learning_rate: 0.005,
                momentum: Momentum::Constant { value: 0.5 },
                persistent_chains: Some(batch_size),
                compress_heavy_tails: true,
                learn_variance: true,
                marginal_histograms: true,
                ..base
            },
        }
    }

    /// Validates every value, returning the first one that is out of range.
    pub fn check(self) -> Result<ValidParams> {
        match &self.visible {
            VisibleSpec::Uniform(kind) if !kind.is_elementwise() => return Err(RbmError::InvalidVisible(kind.name())),
            VisibleSpec::Columns(columns) => check_columns(columns)?,
            VisibleSpec::Uniform(_) => {}
        }
        let momenta = match self.momentum {
            Momentum::Constant { value } => [value, value],
            Momentum::Hinton { initial, final_value, .. } => [initial, final_value],
        };
        CommonSettings {
            n_hidden: self.n_hidden,
            epochs: self.epochs,
            batch_size: self.batch_size,
            gibbs_steps: self.gibbs_steps,
            learning_rates: &[self.learning_rate],
            momenta: &momenta,
            weight_decay: self.weight_decay,
        }
        .check()?;
        if let Some(0) = self.persistent_chains {
            return Err(RbmError::InvalidChains(0));
        }
        if self.learn_variance && !self.visible.has(VisibleKind::Gaussian) {
            return Err(RbmError::NoGaussianUnits);
        }
        if let Sampler::Tempering { temperatures } = self.sampler {
            if temperatures < 2 {
                return Err(RbmError::InvalidTemperatures(temperatures));
            }
            if self.persistent_chains.is_none() {
                return Err(RbmError::TemperingWithoutChains);
            }
        }
        if self.sampler == Sampler::KeptHidden && self.persistent_chains.is_none() {
            return Err(RbmError::KeptHiddenWithoutChains);
        }
        if let Some(s) = self.sparsity {
            if !(s.target > 0.0 && s.target < 1.0) {
                return Err(RbmError::InvalidSparsityTarget(s.target));
            }
            if !(s.cost.is_finite() && s.cost >= 0.0) {
                return Err(RbmError::InvalidSparsityCost(s.cost));
            }
        }
        if !(self.weight_scale.is_finite() && self.weight_scale >= 0.0) {
            return Err(RbmError::InvalidWeightScale(self.weight_scale));
        }
        if let Some(c) = self.contamination.filter(|c| !(0.0..1.0).contains(c)) {
            return Err(RbmError::InvalidContamination(c));
        }
        Ok(ValidParams(self))
    }
}

/// The settings every trainer shares, checked by one set of rules (the dense trainer's
/// [`TrainingParams::check`] and the masked path's [`crate::masked::MaskedParams::check`]).
pub(crate) struct CommonSettings<'a> {
    pub n_hidden: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub gibbs_steps: usize,
    pub learning_rates: &'a [f64],
    pub momenta: &'a [f64],
    pub weight_decay: f64,
}

impl CommonSettings<'_> {
    /// The first value out of range, as its own error.
    pub(crate) fn check(&self) -> Result<()> {
        if self.n_hidden == 0 {
            return Err(RbmError::InvalidHiddenUnits(self.n_hidden));
        }
        if self.epochs == 0 {
            return Err(RbmError::InvalidEpochs(self.epochs));
        }
        if self.batch_size == 0 {
            return Err(RbmError::InvalidBatchSize(self.batch_size));
        }
        if let Some(&bad) = self.learning_rates.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
            return Err(RbmError::InvalidLearningRate(bad));
        }
        if let Some(&bad) = self.momenta.iter().find(|m| !(0.0..1.0).contains(*m)) {
            return Err(RbmError::InvalidMomentum(bad));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(RbmError::InvalidWeightDecay(self.weight_decay));
        }
        if !(1..=crate::limits::MAX_GIBBS_STEPS).contains(&self.gibbs_steps) {
            return Err(RbmError::InvalidGibbsSteps(self.gibbs_steps));
        }
        Ok(())
    }
}

/// Training parameters that passed [`TrainingParams::check`].
#[derive(Clone, Debug, PartialEq)]
pub struct ValidParams(TrainingParams);

impl std::ops::Deref for ValidParams {
    type Target = TrainingParams;
    fn deref(&self) -> &TrainingParams {
        &self.0
    }
}

impl ValidParams {
    /// The checked parameters, by value.
    pub fn into_inner(self) -> TrainingParams {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::ColumnEncoding;

    fn base() -> TrainingParams {
        TrainingParams::new(VisibleKind::Bernoulli, 10)
    }

    #[test]
    fn defaults_are_valid() {
        assert!(base().check().is_ok());
        assert!(TrainingParams::new(VisibleKind::Gaussian, 3).check().is_ok());
    }

    #[test]
    fn each_invalid_value_has_its_own_error() {
        type Case = (TrainingParams, fn(&RbmError) -> bool);
        let cases: Vec<Case> = vec![
            (TrainingParams { n_hidden: 0, ..base() }, |e| matches!(e, RbmError::InvalidHiddenUnits(0))),
            (TrainingParams { epochs: 0, ..base() }, |e| matches!(e, RbmError::InvalidEpochs(0))),
            (TrainingParams { batch_size: 0, ..base() }, |e| matches!(e, RbmError::InvalidBatchSize(0))),
            (
                TrainingParams { learning_rate: -1.0, ..base() },
                |e| matches!(e, RbmError::InvalidLearningRate(x) if *x == -1.0),
            ),
            (TrainingParams { learning_rate: f64::NAN, ..base() }, |e| matches!(e, RbmError::InvalidLearningRate(_))),
            (
                TrainingParams { momentum: Momentum::Constant { value: 1.0 }, ..base() },
                |e| matches!(e, RbmError::InvalidMomentum(x) if *x == 1.0),
            ),
            (
                TrainingParams {
                    momentum: Momentum::Hinton { initial: 0.5, final_value: -0.1, switch_epoch: 5 },
                    ..base()
                },
                |e| matches!(e, RbmError::InvalidMomentum(x) if *x == -0.1),
            ),
            (TrainingParams { weight_decay: -0.5, ..base() }, |e| matches!(e, RbmError::InvalidWeightDecay(_))),
            (TrainingParams { gibbs_steps: 0, ..base() }, |e| matches!(e, RbmError::InvalidGibbsSteps(0))),
            (TrainingParams { persistent_chains: Some(0), ..base() }, |e| matches!(e, RbmError::InvalidChains(0))),
            (
                TrainingParams { sparsity: Some(Sparsity { target: 1.5, cost: 0.1 }), ..base() },
                |e| matches!(e, RbmError::InvalidSparsityTarget(x) if *x == 1.5),
            ),
            (TrainingParams { sparsity: Some(Sparsity { target: 0.1, cost: -1.0 }), ..base() }, |e| {
                matches!(e, RbmError::InvalidSparsityCost(_))
            }),
            (TrainingParams { weight_scale: f64::INFINITY, ..base() }, |e| {
                matches!(e, RbmError::InvalidWeightScale(_))
            }),
            (
                TrainingParams { contamination: Some(1.0), ..base() },
                |e| matches!(e, RbmError::InvalidContamination(x) if *x == 1.0),
            ),
        ];
        for (params, is_expected) in cases {
            let err = params.clone().check().expect_err("invalid parameters were accepted");
            assert!(is_expected(&err), "{params:?} gave {err}");
            // The message names the offending value.
            assert!(err.to_string().contains("(got "), "{err}");
        }
    }

    #[test]
    fn kept_hidden_chains_need_persistent_chains() {
        let cd = TrainingParams { sampler: Sampler::KeptHidden, ..TrainingParams::new(VisibleKind::Bernoulli, 3) };
        assert!(matches!(cd.clone().check(), Err(RbmError::KeptHiddenWithoutChains)));
        assert!(TrainingParams { persistent_chains: Some(4), ..cd }.check().is_ok());
    }

    #[test]
    fn visible_units_are_checked_and_set_the_defaults() {
        let softmax = TrainingParams::new(VisibleKind::Softmax, 3).check().unwrap_err();
        assert!(matches!(softmax, RbmError::InvalidVisible("softmax")), "{softmax}");
        let dup = ColumnEncoding::Categorical { levels: vec!["a".into(), "a".into()] };
        let err = TrainingParams::new(VisibleSpec::Columns(vec![dup]), 3).check().unwrap_err();
        assert!(matches!(err, RbmError::DuplicateLevel { column: 0, .. }), "{err}");
        // A mixed layer takes the smallest learning rate of its kinds, and the Gaussian data-shape
        // defaults when it has Gaussian units.
        let columns = vec![ColumnEncoding::BERNOULLI, ColumnEncoding::GAUSSIAN];
        assert_eq!(TrainingParams::new(VisibleSpec::Columns(columns.clone()), 4).learning_rate, 0.005);
        let p = TrainingParams::for_data(VisibleSpec::Columns(columns), 2_000, 2);
        assert_eq!((p.n_hidden, p.persistent_chains, p.learning_rate, p.learn_variance), (8, Some(100), 0.005, true));
        let categorical = vec![ColumnEncoding::Categorical { levels: vec!["x".into(), "y".into()] }; 10];
        let p = TrainingParams::for_data(VisibleSpec::Columns(categorical), 2_000, 20);
        assert_eq!((p.n_hidden, p.persistent_chains, p.learning_rate), (20, Some(100), 0.05));
    }

    #[test]
    fn data_shape_defaults_follow_the_documented_rules() {
        let p = TrainingParams::for_data(VisibleKind::Bernoulli, 60_000, 784);
        assert_eq!((p.n_hidden, p.batch_size, p.epochs, p.persistent_chains), (256, 100, 10, Some(100)));
        assert!(p.centered && p.anneal && p.learning_rate == 0.05 && p.weight_decay == 0.0);
        assert_eq!(p.momentum, Momentum::Constant { value: 0.0 });
        let p = TrainingParams::for_data(VisibleKind::Bernoulli, 1_000, 4);
        assert_eq!((p.n_hidden, p.batch_size, p.epochs), (8, 50, 200));
        let p = TrainingParams::for_data(VisibleKind::Gaussian, 2_000, 30);
        assert_eq!((p.n_hidden, p.batch_size, p.epochs, p.persistent_chains), (8, 100, 200, Some(100)));
        assert!(p.compress_heavy_tails && p.learn_variance && p.marginal_histograms && p.learning_rate == 0.005);
        assert!(p.check().is_ok());
    }

    #[test]
    fn hinton_schedule_switches_after_five_epochs() {
        assert_eq!(Momentum::HINTON.at(0), 0.5);
        assert_eq!(Momentum::HINTON.at(4), 0.5);
        assert_eq!(Momentum::HINTON.at(5), 0.9);
    }
}
