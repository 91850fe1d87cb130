//! The recommender's error type: each variant carries what a caller needs to report it (file,
//! line, field, value) without re-deriving it.

use std::path::PathBuf;

/// Everything rbm-recommend refuses.
#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A ratings line cannot be used.
    #[error("{path}: line {line}, field {field}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// One-based line number.
        line: u64,
        /// One-based field number (1 = user, 2 = item, 3 = rating).
        field: usize,
        /// What is wrong.
        reason: String,
    },
    /// The same user rated the same item twice in one file.
    #[error(
        "{path}: line {line}: user {user:?} already rated item {item:?} on line {first_line} (duplicates are refused)"
    )]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The line of the second rating.
        line: u64,
        /// The line of the first rating.
        first_line: u64,
        /// User id.
        user: String,
        /// Item id.
        item: String,
    },
    /// A file holds no ratings.
    #[error("{path}: no ratings found")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The ratings take too many distinct values to be softmax levels.
    #[error(
        "{path}: ratings take {found} distinct values; softmax units need at most {max} levels (are these really ratings?)"
    )]
    TooManyLevels {
        /// The file.
        path: PathBuf,
        /// Distinct values found.
        found: usize,
        /// The most accepted.
        max: usize,
    },
    /// A rating in a conditioning file is not one of the model's levels.
    #[error("{path}: line {line}, field 3: rating {value} is not one of the model's levels {levels:?}")]
    UnknownLevel {
        /// The file.
        path: PathBuf,
        /// One-based line number.
        line: u64,
        /// The rating.
        value: f32,
        /// The model's levels.
        levels: Vec<f32>,
    },
    /// A user id is not in the model or the ratings given.
    #[error("unknown user {0:?}: no ratings for this user in the model or the ratings file")]
    UnknownUser(String),
    /// A setting of one side's RBM is out of range (the core's error, its source, says which
    /// and why).
    #[error("{side}-based RBM")]
    InvalidSideParameter {
        /// `"user"` or `"item"`.
        side: &'static str,
        /// The core's error, naming the setting and the value.
        source: rbm_core::RbmError,
    },
    /// The number of replicas per side must lie in 1..=8.
    #[error("the number of replicas must lie in 1..={max} (got {value})")]
    InvalidReplicas {
        /// The value given.
        value: usize,
        /// The most accepted.
        max: usize,
    },
    /// The blend's hold-out fraction must lie in (0, 0.5).
    #[error("the blend fraction must lie in (0, 0.5) (got {0})")]
    InvalidBlendFraction(f64),
    /// A model file is malformed, truncated, of another version or inconsistent.
    #[error("{path}: not a valid recommender model: {reason}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Training produced non-finite parameters.
    #[error(
        "training of the {orientation}-based RBM diverged in epoch {epoch}: parameters became NaN or infinite (lower the learning rate)"
    )]
    Diverged {
        /// Which orientation.
        orientation: &'static str,
        /// One-based epoch.
        epoch: usize,
    },
    /// An error from the core crate (atomic writes, shapes).
    #[error(transparent)]
    Core(#[from] rbm_core::RbmError),
}

/// Result with [`RecommendError`].
pub type Result<T> = std::result::Result<T, RecommendError>;
