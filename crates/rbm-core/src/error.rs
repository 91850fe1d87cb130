//! The error type of the core crate: one variant per thing that can be wrong, each carrying the
//! offending value so that a caller can report it without re-deriving it.

use std::path::PathBuf;

/// Everything that rbm-core refuses, with the values involved.
#[derive(Debug, thiserror::Error)]
pub enum RbmError {
    /// The number of hidden units must be at least one.
    #[error("the number of hidden units must be at least 1 (got {0})")]
    InvalidHiddenUnits(usize),
    /// The number of epochs must be at least one.
    #[error("the number of epochs must be at least 1 (got {0})")]
    InvalidEpochs(usize),
    /// The mini-batch size must be at least one.
    #[error("the batch size must be at least 1 (got {0})")]
    InvalidBatchSize(usize),
    /// The learning rate must be finite and positive.
    #[error("the learning rate must be finite and > 0 (got {0})")]
    InvalidLearningRate(f64),
    /// Momentum must lie in [0, 1).
    #[error("momentum must lie in [0, 1) (got {0})")]
    InvalidMomentum(f64),
    /// Weight decay must be finite and non-negative.
    #[error("weight decay must be finite and >= 0 (got {0})")]
    InvalidWeightDecay(f64),
    /// The number of Gibbs steps per update (k of CD-k) must lie in 1 to
    /// [`crate::limits::MAX_GIBBS_STEPS`].
    #[error("the number of Gibbs steps k must lie in 1 to {max} (got {0})", max = crate::limits::MAX_GIBBS_STEPS)]
    InvalidGibbsSteps(usize),
    /// A matrix would exceed [`crate::limits::max_matrix_values`].
    #[error(
        "{what} would hold {rows} x {cols} values, above the limit of {limit} (1 GiB of f32 by default); \
         set {var} to raise it",
        var = crate::limits::MAX_MATRIX_VALUES_VARIABLE
    )]
    TooLarge {
        /// What the matrix holds.
        what: &'static str,
        /// Its rows.
        rows: usize,
        /// Its columns.
        cols: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Persistent CD needs at least one chain.
    #[error("persistent CD needs at least 1 chain (got {0})")]
    InvalidChains(usize),
    /// The sparsity target must lie strictly between 0 and 1.
    #[error("the sparsity target must lie in (0, 1) (got {0})")]
    InvalidSparsityTarget(f64),
    /// The sparsity cost must be finite and non-negative.
    #[error("the sparsity cost must be finite and >= 0 (got {0})")]
    InvalidSparsityCost(f64),
    /// The initial weight scale must be finite and non-negative.
    #[error("the initial weight scale must be finite and >= 0 (got {0})")]
    InvalidWeightScale(f64),

    /// The learning-rate decay must be finite and non-negative.
    #[error("the learning-rate decay must be finite and >= 0 (got {0})")]
    InvalidLearningRateDecay(f64),
    /// Parallel tempering needs inverse temperatures starting at 1, decreasing, within [0, 1].
    #[error("parallel tempering needs at least 2 inverse temperatures, from 1 down, decreasing, in [0, 1] ({0} given)")]
    InvalidTemperatures(usize),
    /// Parallel tempering replaces PCD's persistent chains, so it needs them.
    #[error("parallel tempering advances persistent chains: it needs PCD (persistent chains)")]
    TemperingWithoutChains,
    /// Keeping the chains' hidden state between updates is a way of running PCD's chains.
    #[error("keeping the chains' hidden units between updates needs PCD (persistent chains)")]
    KeptHiddenWithoutChains,
    /// Learning the variance was asked of a model without Gaussian units.
    #[error("learning the variance needs Gaussian visible units (the model has none)")]
    NoGaussianUnits,
    /// AIS needs at least one run.
    #[error("AIS needs at least 1 run (got {0})")]
    InvalidAisRuns(usize),
    /// An AIS path needs at least its two ends, inverse temperatures 0 and 1.
    #[error("an AIS path needs at least 2 inverse temperatures, 0 and 1 (got {0})")]
    InvalidAisBetas(usize),
    /// The contamination (expected fraction of anomalies) must lie in [0, 1).
    #[error("the contamination must lie in [0, 1) (got {0})")]
    InvalidContamination(f64),
    /// A uniform visible layer of a kind that needs groups (softmax needs its columns' levels).
    #[error("{0} visible units need per-column levels: give the columns (categorical) instead of one kind")]
    InvalidVisible(&'static str),
    /// A categorical column has no levels or too many.
    #[error("categorical column {column} has {levels} levels; 1 to {max} are accepted")]
    InvalidLevels {
        /// Zero-based column index.
        column: usize,
        /// Its number of levels.
        levels: usize,
        /// The most accepted.
        max: usize,
    },
    /// The masked path's softmax groups have no levels or too many.
    #[error("softmax inputs of the masked path need 1 to {max} levels (got {levels})")]
    InvalidMaskedLevels {
        /// The number of levels given.
        levels: usize,
        /// The most accepted.
        max: usize,
    },
    /// A categorical column names one level twice.
    #[error("categorical column {column} names level {level:?} twice")]
    DuplicateLevel {
        /// Zero-based column index.
        column: usize,
        /// The repeated name.
        level: String,
    },

    /// A matrix or vector has the wrong shape.
    #[error("{what}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// What was being checked.
        what: &'static str,
        /// The expected shape, in words.
        expected: String,
        /// The shape that was given.
        found: String,
    },
    /// The data set has no rows (or no columns).
    #[error("the data set is empty")]
    EmptyData,
    /// Something is wrong with the validation data (not the training data).
    #[error("validation data: {0}")]
    ValidationData(Box<RbmError>),
    /// A data value cannot be used with the model's units.
    #[error("row {row}, column {column}: {reason} (value {value})")]
    InvalidValue {
        /// Zero-based sample index.
        row: usize,
        /// Zero-based feature index.
        column: usize,
        /// The offending value.
        value: f64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A model parameter is NaN or infinite.
    #[error("model parameter {what}[{index}] is not finite")]
    NonFiniteParameter {
        /// Which parameter block.
        what: &'static str,
        /// Flat index inside it.
        index: usize,
    },
    /// Training produced non-finite parameters; the model is discarded rather than saved.
    #[error(
        "training diverged in epoch {epoch}: parameters became NaN, infinite or beyond ±1000, where every sigmoid is saturated (lower the learning rate or momentum)"
    )]
    Diverged {
        /// One-based epoch in which it happened.
        epoch: usize,
    },
    /// Exact enumeration was asked of a model too large for it.
    #[error(
        "exact computation enumerates 2^{n_hidden} hidden states; refused above {max} hidden units (estimate log Z by AIS instead: --log-likelihood ais or ais-bracket)"
    )]
    TooLargeForExact {
        /// The model's hidden units.
        n_hidden: usize,
        /// The largest number accepted.
        max: usize,
    },
    /// The operation is not defined for this kind of visible unit.
    #[error("{operation} is not available for {kind} visible units")]
    Unsupported {
        /// What was asked.
        operation: &'static str,
        /// The unit kind, in words.
        kind: &'static str,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A model file is malformed, truncated, of another version or inconsistent.
    #[error("{path}: not a valid model file: {reason}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = RbmError> = std::result::Result<T, E>;
