//! From the user's columns to visible units: each data column is Bernoulli (one binary unit),
//! Gaussian (one real-valued unit, standardised) or categorical (one softmax group with a unit
//! per level). Raw data hold one value per column; a categorical column holds the level's index
//! (`0..K`, as an exact integer) into the column's level names, which the caller maps from text.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::error::{RbmError, Result};
use crate::units::{VisibleGroup, VisibleKind, VisibleLayer};

/// The most levels one categorical column may have (a column with more distinct values is
/// almost certainly an identifier or a number, and each level costs a row of weights).
pub const MAX_LEVELS: usize = 1000;

/// What a user asks a column to be, before the data say how many levels it has: one unit of an
/// elementwise kind, or a categorical value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// One unit of an elementwise kind (Bernoulli: values in [0, 1]; Gaussian: real values,
    /// standardised).
    Units(VisibleKind),
    /// A categorical value: one softmax group with a unit per level.
    Categorical,
}

/// The name of the categorical column kind.
pub const CATEGORICAL: &str = "categorical";

impl ColumnKind {
    /// The kind's name as used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            ColumnKind::Units(kind) => kind.name(),
            ColumnKind::Categorical => CATEGORICAL,
        }
    }

    /// The column kind named `name`: every elementwise unit kind, and `categorical`.
    pub fn from_name(name: &str) -> Option<ColumnKind> {
        if name == CATEGORICAL {
            return Some(ColumnKind::Categorical);
        }
        VisibleKind::from_name(name).filter(|k| k.is_elementwise()).map(ColumnKind::Units)
    }

    /// Every column kind's name, for messages.
    pub fn names() -> Vec<&'static str> {
        let units = VisibleKind::ALL.iter().filter(|k| k.is_elementwise()).map(|k| k.name());
        units.chain([CATEGORICAL]).collect()
    }

    /// The kind chosen for a numeric column by `--visible auto`: Bernoulli when every value is
    /// 0 or 1, Gaussian otherwise. (Text columns are categorical; the reader knows those.)
    /// Values strictly between 0 and 1 are not taken as probabilities here: in tabular data they
    /// are usually measurements, which Gaussian units model better.
    pub fn infer(values: impl IntoIterator<Item = f32>) -> ColumnKind {
        let binary = values.into_iter().all(|v| v == 0.0 || v == 1.0);
        ColumnKind::Units(if binary { VisibleKind::Bernoulli } else { VisibleKind::Gaussian })
    }
}

/// How one column of the raw data maps to visible units; stored in the model file as
/// `{"kind": "bernoulli"}`, `{"kind": "gaussian"}` or `{"kind": "categorical", "levels": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ColumnFile", into = "ColumnFile")]
pub enum ColumnEncoding {
    /// One unit of an elementwise kind.
    Units(VisibleKind),
    /// One softmax group of `levels.len()` units; raw values are level indices.
    Categorical {
        /// The level names, in index order.
        levels: Vec<String>,
    },
}

/// A column encoding as files hold it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnFile {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    levels: Option<Vec<String>>,
}

impl TryFrom<ColumnFile> for ColumnEncoding {
    type Error = String;

    fn try_from(file: ColumnFile) -> std::result::Result<Self, String> {
        match (ColumnKind::from_name(&file.kind), file.levels) {
            (Some(ColumnKind::Categorical), Some(levels)) => Ok(ColumnEncoding::Categorical { levels }),
            (Some(ColumnKind::Categorical), None) => Err("a categorical column needs its levels".into()),
            (Some(ColumnKind::Units(kind)), None) => Ok(ColumnEncoding::Units(kind)),
            (Some(ColumnKind::Units(kind)), Some(_)) => Err(format!("a {} column has no levels", kind.name())),
            (None, _) => {
                Err(format!("unknown column kind {:?} (known: {})", file.kind, ColumnKind::names().join(", ")))
            }
        }
    }
}

impl From<ColumnEncoding> for ColumnFile {
    fn from(encoding: ColumnEncoding) -> ColumnFile {
        let kind = encoding.kind().name().to_string();
        match encoding {
            ColumnEncoding::Units(_) => ColumnFile { kind, levels: None },
            ColumnEncoding::Categorical { levels } => ColumnFile { kind, levels: Some(levels) },
        }
    }
}

impl ColumnEncoding {
    /// A Bernoulli column.
    pub const BERNOULLI: ColumnEncoding = ColumnEncoding::Units(VisibleKind::Bernoulli);
    /// A Gaussian column.
    pub const GAUSSIAN: ColumnEncoding = ColumnEncoding::Units(VisibleKind::Gaussian);

    /// The encoding of an elementwise unit kind (`None` for softmax, which needs levels).
    pub fn of_kind(kind: VisibleKind) -> Option<ColumnEncoding> {
        kind.is_elementwise().then_some(ColumnEncoding::Units(kind))
    }

    /// The column's kind.
    pub fn kind(&self) -> ColumnKind {
        match self {
            ColumnEncoding::Units(kind) => ColumnKind::Units(*kind),
            ColumnEncoding::Categorical { .. } => ColumnKind::Categorical,
        }
    }

    /// The visible group the column becomes.
    pub fn group(&self) -> VisibleGroup {
        match self {
            ColumnEncoding::Units(kind) => VisibleGroup { kind: *kind, units: 1 },
            ColumnEncoding::Categorical { levels } => VisibleGroup { kind: VisibleKind::Softmax, units: levels.len() },
        }
    }

    /// Whether the column's raw values are standardised before its unit sees them.
    pub fn is_standardised(&self) -> bool {
        matches!(self, ColumnEncoding::Units(kind) if kind.is_standardised())
    }

    /// Why `value` cannot be a raw value of this column, if it cannot: the unit kind's own
    /// check, or for a categorical column an exact level index.
    pub fn check_raw(&self, value: f32) -> Option<&'static str> {
        if !value.is_finite() {
            return Some("value is not a finite number");
        }
        match self {
            ColumnEncoding::Units(kind) => kind.check(&[value]).map(|(_, reason)| reason),
            ColumnEncoding::Categorical { levels }
                if !(value >= 0.0 && value.fract() == 0.0 && (value as usize) < levels.len()) =>
            {
                Some("not the index of one of the categorical column's levels")
            }
            ColumnEncoding::Categorical { .. } => None,
        }
    }
}

/// Checks a list of column encodings: at least one column, and 1..=[`MAX_LEVELS`] levels,
/// all distinct, for each categorical column.
pub fn check_columns(columns: &[ColumnEncoding]) -> Result<()> {
    if columns.is_empty() {
        return Err(RbmError::EmptyData);
    }
    for (column, c) in columns.iter().enumerate() {
        if let ColumnEncoding::Categorical { levels } = c {
            if levels.is_empty() || levels.len() > MAX_LEVELS {
                return Err(RbmError::InvalidLevels { column, levels: levels.len(), max: MAX_LEVELS });
            }
            let mut sorted: Vec<&String> = levels.iter().collect();
            sorted.sort();
            if let Some(pair) = sorted.windows(2).find(|p| p[0] == p[1]) {
                return Err(RbmError::DuplicateLevel { column, level: pair[0].clone() });
            }
        }
    }
    Ok(())
}

/// The visible layer that `columns` map to.
pub fn layer_of(columns: &[ColumnEncoding]) -> Result<VisibleLayer> {
    check_columns(columns)?;
    VisibleLayer::new(columns.iter().map(ColumnEncoding::group))
}

/// Whether any column is categorical (raw data then differ from visible vectors).
pub fn has_categorical(columns: &[ColumnEncoding]) -> bool {
    columns.iter().any(|c| matches!(c, ColumnEncoding::Categorical { .. }))
}

/// Checks every raw value against its column; the error names the sample and the column.
pub fn check_raw(columns: &[ColumnEncoding], raw: &DMatrix<f32>) -> Result<()> {
    if raw.nrows() != columns.len() {
        return Err(RbmError::ShapeMismatch {
            what: "data for this model",
            expected: format!("{} features per sample", columns.len()),
            found: format!("{} features", raw.nrows()),
        });
    }
    if raw.is_empty() {
        return Err(RbmError::EmptyData);
    }
    // Neighbouring columns of one elementwise kind are checked a run at a time (the kind's check
    // finds the first bad value of a slice, with the reason a value's own check gives), other
    // columns value by value.
    let mut runs: Vec<(usize, usize, Option<VisibleKind>)> = Vec::new();
    for (column, encoding) in columns.iter().enumerate() {
        let kind = match encoding {
            ColumnEncoding::Units(kind) if kind.is_elementwise() => Some(*kind),
            _ => None,
        };
        match runs.last_mut() {
            Some((_, end, run_kind)) if kind.is_some() && *run_kind == kind => *end = column + 1,
            _ => runs.push((column, column + 1, kind)),
        }
    }
    // Every core checks rows; the error reported is the first in row order, whatever the threads.
    use rayon::prelude::*;
    let first_bad = raw.as_slice().par_chunks(columns.len()).enumerate().find_map_first(|(row, sample)| {
        runs.iter().find_map(|&(start, end, kind)| {
            let bad = match kind {
                Some(kind) => kind.check(&sample[start..end]).map(|(k, reason)| (start + k, reason)),
                None => (start..end).find_map(|c| columns[c].check_raw(sample[c]).map(|reason| (c, reason))),
            };
            bad.map(|(column, reason)| RbmError::InvalidValue { row, column, value: sample[column] as f64, reason })
        })
    });
    first_bad.map_or(Ok(()), Err)
}

/// Raw samples (`n_columns x n`) as visible vectors (`n_visible x n`): categorical indices
/// become one-hot groups, other values are copied. Every value is checked first ([`check_raw`]).
pub fn expand(columns: &[ColumnEncoding], raw: &DMatrix<f32>) -> Result<DMatrix<f32>> {
    check_raw(columns, raw)?;
    Ok(expand_checked(columns, raw))
}

/// [`expand`] of values already checked against `columns`.
pub(crate) fn expand_checked(columns: &[ColumnEncoding], raw: &DMatrix<f32>) -> DMatrix<f32> {
    let nv: usize = columns.iter().map(|c| c.group().units).sum();
    let mut out = DMatrix::zeros(nv, raw.ncols());
    for (sample, mut visible) in raw.column_iter().zip(out.column_iter_mut()) {
        let mut unit = 0;
        for (&value, c) in sample.iter().zip(columns) {
            match c {
                ColumnEncoding::Categorical { levels } => {
                    visible[unit + value as usize] = 1.0;
                    unit += levels.len();
                }
                ColumnEncoding::Units(_) => {
                    visible[unit] = value;
                    unit += 1;
                }
            }
        }
    }
    out
}

/// Visible vectors (`n_visible x n`) back to raw samples (`n_columns x n`): each softmax group
/// becomes the index of its largest unit (the level drawn, for sampled one-hot groups).
pub fn collapse(columns: &[ColumnEncoding], visible: &DMatrix<f32>) -> Result<DMatrix<f32>> {
    let nv: usize = columns.iter().map(|c| c.group().units).sum();
    if visible.nrows() != nv {
        return Err(RbmError::ShapeMismatch {
            what: "visible vectors for these columns",
            expected: format!("{nv} rows, one per visible unit"),
            found: format!("{} rows", visible.nrows()),
        });
    }
    let mut out = DMatrix::zeros(columns.len(), visible.ncols());
    for (v, mut sample) in visible.column_iter().zip(out.column_iter_mut()) {
        let mut unit = 0;
        for (value, c) in sample.iter_mut().zip(columns) {
            let units = c.group().units;
            let group = &v.as_slice()[unit..unit + units];
            *value = match c {
                ColumnEncoding::Categorical { .. } => {
                    let best = group
                        .iter()
                        .enumerate()
                        .fold((0, f32::NEG_INFINITY), |acc, (k, &x)| if x > acc.1 { (k, x) } else { acc });
                    best.0 as f32
                }
                ColumnEncoding::Units(_) => group[0],
            };
            unit += units;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixed() -> Vec<ColumnEncoding> {
        vec![
            ColumnEncoding::GAUSSIAN,
            ColumnEncoding::Categorical { levels: vec!["a".into(), "b".into(), "c".into()] },
            ColumnEncoding::BERNOULLI,
        ]
    }

    #[test]
    fn expand_and_collapse_are_inverse_and_the_layer_has_one_group_per_column_kind_run() {
        let raw = DMatrix::from_column_slice(3, 2, &[0.5, 2.0, 1.0, -1.0, 0.0, 0.0]);
        let columns = mixed();
        check_raw(&columns, &raw).unwrap();
        let visible = expand(&columns, &raw).unwrap();
        assert_eq!(visible.column(0).as_slice(), &[0.5, 0.0, 0.0, 1.0, 1.0]);
        assert_eq!(visible.column(1).as_slice(), &[-1.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(collapse(&columns, &visible).unwrap(), raw);
        // Out-of-range indices and shapes are errors, not panics or a neighbour's unit.
        let bad = DMatrix::from_column_slice(3, 1, &[0.5, 3.0, 1.0]);
        assert!(matches!(expand(&columns, &bad), Err(RbmError::InvalidValue { column: 1, .. })));
        assert!(collapse(&columns, &DMatrix::zeros(4, 1)).is_err());
        let layer = layer_of(&columns).unwrap();
        assert_eq!(layer.n_visible(), 5);
        assert_eq!(layer.groups().len(), 3);
        assert_eq!(layer.describe(), "1 gaussian + 1 softmax (3 units) + 1 bernoulli");
    }

    #[test]
    fn raw_values_are_checked_against_their_column() {
        let columns = mixed();
        for (column, bad) in [(1usize, 3.0f32), (1, 0.5), (1, -1.0), (2, 2.0), (0, f32::NAN)] {
            let mut raw = DMatrix::from_column_slice(3, 1, &[0.0, 0.0, 0.0]);
            raw[(column, 0)] = bad;
            match check_raw(&columns, &raw) {
                Err(RbmError::InvalidValue { row: 0, column: c, .. }) => assert_eq!(c, column, "value {bad}"),
                other => panic!("value {bad} in column {column}: {other:?}"),
            }
        }
    }

    /// Runs of columns of one kind are checked a slice at a time: the first bad value in row
    /// order, and its reason, are those a check of each value in turn finds.
    #[test]
    fn checking_runs_of_columns_finds_what_checking_each_value_finds() {
        use rand::{RngExt, SeedableRng};
        let columns = [
            ColumnEncoding::BERNOULLI,
            ColumnEncoding::BERNOULLI,
            ColumnEncoding::GAUSSIAN,
            ColumnEncoding::GAUSSIAN,
            ColumnEncoding::Categorical { levels: vec!["a".into(), "b".into()] },
            ColumnEncoding::BERNOULLI,
            ColumnEncoding::Categorical { levels: vec!["c".into(), "d".into(), "e".into()] },
            ColumnEncoding::GAUSSIAN,
        ];
        let bad_values = [f32::NAN, f32::INFINITY, 2.0, -1.0, 0.5, 3.0];
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(11);
        for _ in 0..300 {
            let mut raw = DMatrix::<f32>::from_fn(columns.len(), 20, |c, _| if c == 2 || c == 3 { 1.5 } else { 1.0 });
            for _ in 0..rng.random_range(0..3) {
                let (c, s) = (rng.random_range(0..columns.len()), rng.random_range(0..20));
                raw[(c, s)] = bad_values[rng.random_range(0..bad_values.len())];
            }
            let expected = raw.column_iter().enumerate().find_map(|(row, sample)| {
                sample
                    .iter()
                    .zip(&columns)
                    .enumerate()
                    .find_map(|(column, (&value, c))| c.check_raw(value).map(|reason| (row, column, reason)))
            });
            let found = match check_raw(&columns, &raw) {
                Ok(()) => None,
                Err(RbmError::InvalidValue { row, column, reason, .. }) => Some((row, column, reason)),
                Err(e) => panic!("{e}"),
            };
            assert_eq!(found, expected);
        }
    }

    #[test]
    fn categorical_columns_need_distinct_levels() {
        let dup = [ColumnEncoding::Categorical { levels: vec!["x".into(), "x".into()] }];
        assert!(matches!(check_columns(&dup), Err(RbmError::DuplicateLevel { column: 0, .. })));
        let none = [ColumnEncoding::Categorical { levels: vec![] }];
        assert!(matches!(check_columns(&none), Err(RbmError::InvalidLevels { column: 0, levels: 0, .. })));
    }

    #[test]
    fn auto_kind_is_bernoulli_only_for_zero_one_columns() {
        assert_eq!(ColumnKind::infer([0.0, 1.0, 1.0]), ColumnKind::Units(VisibleKind::Bernoulli));
        assert_eq!(ColumnKind::infer([0.0, 0.5, 1.0]), ColumnKind::Units(VisibleKind::Gaussian));
        assert_eq!(ColumnKind::infer([3.0, 1.0]), ColumnKind::Units(VisibleKind::Gaussian));
    }

    #[test]
    fn column_kinds_are_named_by_the_unit_kinds_and_stored_by_name() {
        assert_eq!(ColumnKind::names(), ["bernoulli", "gaussian", "categorical"]);
        assert_eq!(ColumnKind::from_name("gaussian"), Some(ColumnKind::Units(VisibleKind::Gaussian)));
        assert_eq!(ColumnKind::from_name("softmax"), None, "softmax units need levels: a categorical column");
        let text = serde_json::to_string(&mixed()).unwrap();
        assert_eq!(text, r#"[{"kind":"gaussian"},{"kind":"categorical","levels":["a","b","c"]},{"kind":"bernoulli"}]"#);
        assert_eq!(serde_json::from_str::<Vec<ColumnEncoding>>(&text).unwrap(), mixed());
        for bad in [r#"{"kind":"softmax"}"#, r#"{"kind":"categorical"}"#, r#"{"kind":"bernoulli","levels":[]}"#] {
            assert!(serde_json::from_str::<ColumnEncoding>(bad).is_err(), "{bad} was accepted");
        }
    }
}
