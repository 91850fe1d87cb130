//! The RBM subcommands: read input, call rbm-core, write output. No mathematics here.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use nalgebra::DMatrix;
use rbm_core::ais::{self, AisSettings, Direction};
use rbm_core::{
    ColumnEncoding, ColumnKind, EpochStats, Model, Momentum, OutputPath, RbmError, Sampler, TemperedChains,
    TrainingParams, VisibleKind, VisibleSpec, eval, metrics,
};
use serde_json::json;

use crate::cli::{Columns, EvalArgs, InspectArgs, LogLikelihood, Method, SampleArgs, SamplerArg, ScoreArgs, TrainArgs};
use crate::table::{ColumnSpec, Fields, FirstText, RowFormat, TableReader, read_all, read_all_detecting};

/// Rows read and scored at a time by `score`: memory stays flat on any file size.
pub(crate) const SCORE_CHUNK_ROWS: usize = 4096;

/// `score --fail-on-anomaly` found anomalies: exit code 1 once everything is written.
#[derive(Debug)]
pub struct AnomaliesFound;

impl std::fmt::Display for AnomaliesFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("anomalies found")
    }
}

impl std::error::Error for AnomaliesFound {}

fn spec(columns: &Columns) -> ColumnSpec {
    ColumnSpec { label: columns.label_column.clone(), ignore: columns.ignore_columns.clone(), ..Default::default() }
}

/// Column spec for data scored by a trained model: by the model's feature names when the file
/// has a header, otherwise by position after removing label and ignored columns; categorical
/// columns read with the model's levels.
pub(crate) fn spec_for_model(model: &Model, columns: &Columns) -> ColumnSpec {
    let mut s = spec(columns);
    if !model.feature_names.is_empty() && !model.feature_names[0].starts_with("column ") {
        s.features_by_name = Some(model.feature_names.clone());
    }
    s.fields = model
        .columns
        .iter()
        .map(|c| match c {
            ColumnEncoding::Categorical { levels } => Fields::Levels { levels: levels.clone(), fixed: true },
            ColumnEncoding::Units(_) => Fields::Numeric,
        })
        .collect();
    s
}

pub(crate) fn check_width(reader: &TableReader, model: &Model) -> Result<()> {
    let found = reader.feature_names().len();
    if found != model.columns.len() {
        bail!(
            "{}: {found} feature columns, but the model has {} columns ({} visible units; use --label-column / --ignore-columns to leave columns out)",
            reader.path(),
            model.columns.len(),
            model.rbm.n_visible()
        );
    }
    Ok(())
}

fn to_matrix(values: Vec<f32>, features: usize) -> Result<DMatrix<f32>> {
    Ok(rbm_core::samples_from_row_major(values, features)?)
}

fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("--threads")?;
    }
    Ok(())
}

/// `--column-kinds NAME=KIND,...` parsed (KIND: any column kind the library names).
fn column_kinds(pairs: &[String]) -> Result<Vec<(String, ColumnKind)>> {
    let known = ColumnKind::names().join(", ");
    pairs
        .iter()
        .map(|pair| {
            let (name, kind) = pair
                .rsplit_once('=')
                .ok_or_else(|| anyhow!("--column-kinds: {pair:?} is not NAME=KIND (KIND: {known})"))?;
            let kind = ColumnKind::from_name(kind.trim())
                .ok_or_else(|| anyhow!("--column-kinds: unknown kind {:?} for {name:?} ({known})", kind.trim()))?;
            Ok((name.trim().to_string(), kind))
        })
        .collect()
}

/// The training flags applied to `params` (defaults chosen from the data shape).
fn apply_flags(mut params: TrainingParams, args: &TrainArgs) -> Result<TrainingParams> {
    params.n_hidden = args.hidden.unwrap_or(params.n_hidden);
    params.epochs = args.epochs.unwrap_or(params.epochs);
    params.batch_size = args.batch_size.unwrap_or(params.batch_size);
    if let Some(lr) = args.learning_rate {
        params.learning_rate = lr;
    }
    if let Some(m) = args.momentum {
        params.momentum = Momentum::Constant { value: m };
    }
    if let Some(decay) = args.weight_decay {
        params.weight_decay = decay;
    }
    params.gibbs_steps = args.cd_k;
    let chains_only = !matches!(args.sampler, SamplerArg::Gibbs);
    let persistent = match (args.persistent, args.method) {
        (true, Method::Cd) => bail!("--persistent contradicts --method cd"),
        (false, Method::Cd) if chains_only => {
            let sampler = clap::ValueEnum::to_possible_value(&args.sampler).expect("a listed value");
            bail!("--sampler {} advances persistent chains: it contradicts --method cd", sampler.get_name())
        }
        (true, _) | (false, Method::Pcd) => true,
        (false, Method::Cd) => false,
        (false, Method::Auto) => chains_only || params.persistent_chains.is_some(),
    };
    params.sampler = match (args.sampler, args.temperatures) {
        (SamplerArg::Gibbs | SamplerArg::KeptHidden, Some(_)) => {
            bail!("--temperatures is for parallel tempering: add --sampler pt")
        }
        (SamplerArg::Gibbs, None) => Sampler::Gibbs,
        (SamplerArg::KeptHidden, None) => Sampler::KeptHidden,
        (SamplerArg::Pt, t) => Sampler::Tempering { temperatures: t.unwrap_or(TemperedChains::DEFAULT_TEMPERATURES) },
    };
    params.persistent_chains = persistent.then_some(params.batch_size);
    if let Some(histograms) = args.marginal_histograms {
        params.marginal_histograms = histograms;
    }
    if let Some(compress) = args.compress_tails {
        params.compress_heavy_tails = compress;
    }
    // An explicit method (--method cd|pcd, or --persistent) asks for that method as such:
    // centring and annealing only when asked for.
    let automatic = matches!(args.method, Method::Auto) && !args.persistent;
    params.centered = args.centered.unwrap_or(automatic && params.centered);
    params.learn_variance = args.learn_variance.unwrap_or(params.learn_variance);
    params.anneal = args.anneal.unwrap_or(automatic && params.anneal);
    params.weight_scale = args.weight_scale;
    params.seed = args.seed;
    params.contamination = Some(args.contamination);
    Ok(params)
}

/// Each feature column's encoding from how it was read, `--column-kinds` and `--visible` (one
/// kind for every column, or `None` for auto).
fn encodings(
    reader: &TableReader,
    data: &DMatrix<f32>,
    uniform: Option<VisibleKind>,
    overrides: &[(String, ColumnKind)],
) -> Result<VisibleSpec> {
    let names = reader.feature_names();
    // Names or 1-based column numbers of the file, as --label-column and --ignore-columns take them.
    let mut chosen: Vec<Option<ColumnKind>> = vec![None; names.len()];
    for (name, kind) in overrides {
        let Some(f) = reader.feature_position(name) else {
            bail!("{}: --column-kinds names {name:?}, which is not a feature column", reader.path());
        };
        chosen[f] = Some(*kind);
    }
    let mut columns = Vec::with_capacity(names.len());
    for (f, name) in names.iter().enumerate() {
        let kind = match (&reader.fields()[f], chosen[f], uniform) {
            (Fields::Levels { levels, .. }, _, _) => {
                if levels.len() > rbm_core::columns::MAX_LEVELS {
                    bail!(
                        "{}: column {name} has {} distinct values, more than the {} a categorical column may have (an identifier? leave it out with --ignore-columns {name})",
                        reader.path(),
                        levels.len(),
                        rbm_core::columns::MAX_LEVELS
                    );
                }
                columns.push(ColumnEncoding::Categorical { levels: levels.clone() });
                continue;
            }
            (Fields::Numeric, Some(ColumnKind::Units(kind)), _) => kind,
            (Fields::Numeric, Some(ColumnKind::Categorical), _) => unreachable!("read as levels"),
            (Fields::Numeric, None, Some(kind)) => kind,
            (Fields::Numeric, None, None) => match ColumnKind::infer(data.row(f).iter().copied()) {
                ColumnKind::Units(kind) => kind,
                ColumnKind::Categorical => unreachable!("numbers are not inferred categorical"),
            },
        };
        columns.push(ColumnEncoding::Units(kind));
    }
    Ok(match uniform {
        Some(kind) if columns.iter().all(|c| Some(c) == ColumnEncoding::of_kind(kind).as_ref()) => {
            VisibleSpec::Uniform(kind)
        }
        _ => VisibleSpec::Columns(columns),
    })
}

/// A one-line account of the columns' kinds, for `--visible auto` and overrides.
fn describe_columns(names: &[String], columns: &[ColumnEncoding]) -> String {
    let of = |kind: ColumnKind| -> Vec<String> {
        names
            .iter()
            .zip(columns)
            .filter(|(_, c)| c.kind() == kind)
            .map(|(n, c)| match c {
                ColumnEncoding::Categorical { levels } => format!("{n} ({} levels)", levels.len()),
                _ => n.clone(),
            })
            .collect()
    };
    ColumnKind::names()
        .into_iter()
        .filter_map(ColumnKind::from_name)
        .filter_map(|k| {
            let list = of(k);
            (!list.is_empty()).then(|| {
                let shown = if list.len() > 8 { format!("{}, ...", list[..8].join(", ")) } else { list.join(", ") };
                format!("{} {}: {shown}", list.len(), k.name())
            })
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Warns about columns that `--visible auto` made categorical because of a few text fields among
/// numbers (most of their levels read as numbers): usually a typo or a missing-value marker.
/// `first_text` has, per feature column, the first text field found and its line.
fn warn_numeric_categories(names: &[String], columns: &[ColumnEncoding], first_text: &[Option<(u64, String)>]) {
    for ((name, column), first) in names.iter().zip(columns).zip(first_text) {
        let (ColumnEncoding::Categorical { levels }, Some((line, text))) = (column, first) else { continue };
        let numeric = levels.iter().filter(|l| l.parse::<f64>().is_ok()).count();
        if numeric * 2 > levels.len() {
            eprintln!(
                "warning: column {name} is categorical with {} levels, {numeric} of them numbers, because of text such as {text:?} (line {line}); if it is numeric, fix those fields or pass --column-kinds {name}=gaussian to see each",
                levels.len()
            );
        }
    }
}

/// A located message for a value error, with a hint when Bernoulli units met real values.
fn value_error(reader: &TableReader, lines: &[u64], columns: &[ColumnEncoding], e: RbmError) -> anyhow::Error {
    let bernoulli =
        matches!(&e, RbmError::InvalidValue { column, .. } if columns.get(*column) == Some(&ColumnEncoding::BERNOULLI));
    let located = reader.locate(lines, e);
    if bernoulli { anyhow!("{located}; train with --visible gaussian or --visible auto") } else { located }
}

/// Reads the `--validation` file with the training file's columns: by name when the training file
/// had a header, categorical columns with the training levels (a new level is an error).
fn read_validation(
    path: &str,
    columns: &Columns,
    training: &TableReader,
) -> Result<(TableReader, Vec<u64>, DMatrix<f32>)> {
    let mut s = spec(columns);
    let features = training.feature_names();
    if training.has_header() {
        s.features_by_name = Some(features.to_vec());
    }
    s.fields = training
        .fields()
        .iter()
        .map(|f| match f {
            Fields::Levels { levels, .. } => Fields::Levels { levels: levels.clone(), fixed: true },
            Fields::Numeric => Fields::Numeric,
        })
        .collect();
    let (reader, chunk) = read_all(path, &s)?;
    if reader.feature_names().len() != features.len() {
        bail!("{path}: {} feature columns, the training data have {}", reader.feature_names().len(), features.len());
    }
    let values = to_matrix(chunk.values, features.len())?;
    Ok((reader, chunk.lines, values))
}

/// What `train` read: the training table, its encodings and the validation table.
struct TrainingData {
    reader: TableReader,
    /// Under `--visible auto`, per feature column, the first text field found and its line.
    first_text: FirstText,
    lines: Vec<u64>,
    data: DMatrix<f32>,
    visible: VisibleSpec,
    columns: Vec<ColumnEncoding>,
    validation: Option<(TableReader, Vec<u64>, DMatrix<f32>)>,
}

/// Reads the training file (categorical columns as asked, or found under `--visible auto`), picks
/// each column's encoding, and reads the validation file with the same columns.
fn read_training(args: &TrainArgs, overrides: &[(String, ColumnKind)]) -> Result<TrainingData> {
    let mut table = spec(&args.columns);
    let named = |categorical: bool| -> Vec<String> {
        overrides
            .iter()
            .filter(|(_, k)| (*k == ColumnKind::Categorical) == categorical)
            .map(|(n, _)| n.clone())
            .collect()
    };
    table.categorical = named(true);
    let uniform = VisibleKind::from_name(&args.visible); // None: auto
    let (reader, chunk, first_text) = match uniform {
        // Auto: columns holding text are categorical, except those given a numeric kind.
        None => read_all_detecting(&args.input, &table, &named(false))?,
        Some(_) => {
            let (reader, chunk) = read_all(&args.input, &table)?;
            (reader, chunk, Vec::new())
        }
    };
    let n_features = reader.feature_names().len();
    let data = to_matrix(chunk.values, n_features)?;
    let visible = encodings(&reader, &data, uniform, overrides)?;
    let columns = visible.columns(n_features)?;
    let validation = match &args.validation {
        None => None,
        Some(path) => Some(read_validation(path, &args.columns, &reader)?),
    };
    Ok(TrainingData { reader, first_text, lines: chunk.lines, data, visible, columns, validation })
}

/// A progress bar of `len` steps drawn with `template`, when `show` is set and stderr is a terminal.
pub fn progress_bar(show: bool, len: usize, template: &str) -> Option<indicatif::ProgressBar> {
    (show && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(len as u64);
        bar.set_style(indicatif::ProgressStyle::with_template(template).expect("a valid template"));
        bar
    })
}

/// Per-epoch progress: a bar on a terminal, about ten lines otherwise, nothing with `--quiet`.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    show: bool,
    epochs: usize,
}

impl Progress {
    fn new(show: bool, epochs: usize) -> Progress {
        let bar = progress_bar(show, epochs, "{bar:30} epoch {pos}/{len} {msg} [{elapsed}<{eta}]");
        Progress { bar, show, epochs }
    }

    fn epoch(&self, s: &EpochStats) {
        let gap = s.free_energy_gap().map(|g| format!(", free-energy gap {g:+.3}")).unwrap_or_default();
        let line =
            format!("reconstruction error {:.5}, free energy {:.3}{gap}", s.reconstruction_error, s.free_energy_train);
        match &self.bar {
            Some(b) => {
                b.set_message(line);
                b.inc(1);
            }
            None if self.show && (s.epoch.is_multiple_of(self.epochs.div_ceil(10)) || s.epoch == self.epochs) => {
                eprintln!("epoch {}: {line}", s.epoch)
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

pub fn train(args: TrainArgs) -> Result<()> {
    set_threads(args.threads)?;
    // Every flag is checked before any file is read.
    let overrides = column_kinds(&args.column_kinds)?;
    // (Whether --learn-variance has Gaussian units to act on is known once the columns are read.)
    let early = apply_flags(TrainingParams::new(VisibleKind::Bernoulli, args.hidden.unwrap_or(1)), &args)?;
    TrainingParams { learn_variance: false, ..early }.check()?;
    // Every output is checked before any data are read: nothing is trained only to be lost.
    let mut inputs = vec![Path::new(&args.input)];
    inputs.extend(args.validation.as_deref().map(Path::new));
    let model_out = OutputPath::check(&args.output, &inputs)?;
    let report_out = args.report.as_deref().map(|p| OutputPath::check(p, &inputs)).transpose()?;
    OutputPath::check_distinct(&[&model_out].into_iter().chain(report_out.as_ref()).collect::<Vec<_>>())?;

    let TrainingData { reader, first_text, lines, data, visible, columns, validation } =
        read_training(&args, &overrides)?;
    let features = reader.feature_names().to_vec();
    let layer = rbm_core::columns::layer_of(&columns)?;
    let rows = data.ncols();
    let params = apply_flags(TrainingParams::for_data(visible.clone(), rows, layer.n_visible()), &args)?.check()?;
    let show = !args.quiet;
    if show {
        if let VisibleSpec::Columns(columns) = &visible {
            eprintln!("columns: {}", describe_columns(&features, columns));
        }
        warn_numeric_categories(&features, &columns, &first_text);
        eprintln!(
            "training RBM: {rows} rows x {} columns, visible units {}, {} hidden, {} epochs, batch {}, {}{}{}",
            features.len(),
            layer.describe(),
            params.n_hidden,
            params.epochs,
            params.batch_size,
            if params.persistent_chains.is_some() { "PCD-" } else { "CD-" },
            params.gibbs_steps,
            [
                (params.centered, ", centred".to_string()),
                (params.anneal, format!(", learning rate {} annealed to 0", params.learning_rate)),
                (params.learn_variance, ", learned variances".to_string()),
                (
                    params.marginal_histograms && params.visible.has(VisibleKind::Gaussian),
                    ", histogram marginals".to_string(),
                ),
                match params.sampler {
                    Sampler::Tempering { temperatures } => {
                        (true, format!(", parallel tempering over {temperatures} temperatures"))
                    }
                    Sampler::KeptHidden => (true, ", chains keep their hidden units".to_string()),
                    Sampler::Gibbs => (false, String::new()),
                },
            ]
            .into_iter()
            .filter_map(|(on, text)| on.then_some(text))
            .collect::<String>()
        );
    }
    let progress = Progress::new(show, params.epochs);
    let start = Instant::now();
    let fit = Model::fit(params, &data, validation.as_ref().map(|v| &v.2), |s| {
        progress.epoch(s);
        ControlFlow::Continue(())
    });
    progress.finish();
    // Model::fit checks every value before training; its errors are located here.
    let (model, report) = fit.map_err(|e| match e {
        RbmError::ValidationData(inner) => match &validation {
            Some((vreader, vlines, _)) => value_error(vreader, vlines, &columns, *inner),
            None => anyhow!("{inner}"),
        },
        e @ RbmError::InvalidValue { .. } => value_error(&reader, &lines, &columns, e),
        other => anyhow!("{}: {other}", args.input),
    })?;
    let train_seconds = start.elapsed().as_secs_f64();
    if show && !report.constant_features.is_empty() {
        let names: Vec<&str> = report.constant_features.iter().map(|&i| features[i].as_str()).collect();
        eprintln!("warning: constant columns kept with scale 1: {}", names.join(", "));
    }
    let model = model.with_feature_names(features)?;
    model.save(model_out.path())?;
    if let Some(path) = report_out.as_ref().map(OutputPath::path) {
        let report = json!({
            "train_seconds": train_seconds,
            "update_seconds": report.history.iter().map(|s| s.seconds).sum::<f64>(),
            "rows": rows,
            "epochs": report.history,
            "stopped_early": report.stopped_early,
            "anomaly_threshold": model.anomaly_threshold,
        });
        rbm_core::write_atomically(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if show {
        let last = model.provenance.epochs_trained;
        eprintln!("saved {} ({last} epochs, {:.2} s)", args.output.display(), train_seconds);
        if let Some(t) = model.anomaly_threshold {
            eprintln!(
                "anomaly threshold: free energy > {t} (the top {}% of the training rows; --contamination)",
                args.contamination * 100.0
            );
        }
    }
    Ok(())
}

/// Checks an output before any work (see [`OutputPath`]): `None` is standard output.
pub(crate) fn output_path(path: Option<&Path>, inputs: &[&Path]) -> Result<OutputPath> {
    Ok(match path {
        Some(p) => OutputPath::check(p, inputs)?,
        None => OutputPath::stdout(),
    })
}

/// The free energies of a chunk of rows, errors located with `format`.
pub(crate) fn free_energies(model: &Model, format: &RowFormat, chunk: crate::table::Chunk) -> Result<Vec<f64>> {
    Ok(scores(model, format, chunk, false)?.0)
}

/// The free energies of a chunk of rows and, when `explain` is set, each column's surprise given
/// the others (`n_columns x rows`); errors located with `format`.
fn scores(
    model: &Model,
    format: &RowFormat,
    mut chunk: crate::table::Chunk,
    explain: bool,
) -> Result<(Vec<f64>, Option<DMatrix<f64>>)> {
    let data = to_matrix(std::mem::take(&mut chunk.values), model.columns.len())?;
    let prepared = model.prepare(&data).map_err(|e| format.locate(&chunk.lines, e))?;
    let energies = model.free_energy_of_visible(&prepared)?;
    let surprise = explain.then(|| model.rbm.conditional_surprise(&prepared, model.marginals.as_ref())).transpose()?;
    Ok((energies, surprise))
}

/// One CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

/// `,NAME=SURPRISE` for the `count` most surprising columns of one row, largest first (ties in
/// column order).
fn write_explanation(text: &mut String, names: &[String], surprise: &[f64], count: usize) {
    let mut order: Vec<usize> = (0..surprise.len()).collect();
    order.sort_by(|&a, &b| surprise[b].total_cmp(&surprise[a]));
    for &column in order.iter().take(count) {
        let field = format!("{}={:.2}", names[column], surprise[column]);
        write!(text, ",{}", csv_field(&field)).expect("writing to a string");
    }
}

/// Scores every row; fails with [`AnomaliesFound`] after writing everything when asked to.
pub fn score(args: ScoreArgs) -> Result<()> {
    if args.explain == Some(0) {
        bail!("--explain needs at least 1 column (got 0)");
    }
    let output = output_path(args.output.as_deref(), &[Path::new(&args.input), &args.model])?;
    let model = Model::load(&args.model)?;
    let threshold = args.threshold.or(model.anomaly_threshold);
    if args.fail_on_anomaly && threshold.is_none() {
        bail!("--fail-on-anomaly needs a threshold: train with --contamination or pass --threshold");
    }
    let mut reader = TableReader::open(&args.input, &spec_for_model(&model, &args.columns))?;
    check_width(&reader, &model)?;
    let names: Vec<String> = match model.feature_names.len() == model.columns.len() {
        true => model.feature_names.clone(),
        false => (1..=model.columns.len()).map(|i| format!("column{i}")).collect(),
    };
    // More than every column asks for every column.
    let explain = args.explain.map(|n| n.min(names.len()));
    // Written to a temporary file, renamed over the output only once every row is scored.
    let mut out = output.create()?;
    write!(out, "row,free_energy,anomaly")?;
    for k in 1..=explain.unwrap_or(0) {
        write!(out, ",explain_{k}")?;
    }
    writeln!(out)?;
    let mut flagged = 0usize;
    // Each piece's lines are formatted on its thread; only the writing is in order here.
    crate::table::for_each_piece(
        &mut reader,
        SCORE_CHUNK_ROWS,
        |format, chunk, first_row| {
            let (energies, surprise) = scores(&model, format, chunk, explain.is_some())?;
            let (mut text, mut flagged) = (String::with_capacity(energies.len() * 32), 0usize);
            for (k, f) in energies.into_iter().enumerate() {
                let anomalous = threshold.map(|t| f > t);
                flagged += usize::from(anomalous == Some(true));
                let flag = anomalous.map_or("", |a| if a { "1" } else { "0" });
                write!(text, "{},{f},{flag}", first_row + k + 1).expect("writing to a string");
                if let (Some(surprise), Some(count)) = (&surprise, explain) {
                    write_explanation(&mut text, &names, surprise.column(k).as_slice(), count);
                }
                text.push('\n');
            }
            Ok((text, flagged))
        },
        |(text, piece_flagged)| {
            flagged += piece_flagged;
            Ok(out.write_all(text.as_bytes())?)
        },
    )?;
    out.commit()?;
    if threshold.is_none() && !args.quiet {
        eprintln!("note: no threshold (train with --contamination or pass --threshold); the anomaly column is empty");
    }
    if args.fail_on_anomaly && flagged > 0 {
        return Err(AnomaliesFound.into());
    }
    Ok(())
}

/// The JSON fields of an AIS estimate: log Z, its standard error and ±3σ interval, the mean
/// log-likelihood and its interval (the interval of log Z turned over), and the settings.
/// `log_likelihood_before_partition` is the rows' mean log-likelihood before log Z is subtracted.
fn estimate_report(
    log_likelihood_before_partition: f64,
    estimate: &ais::LogPartitionEstimate,
    settings: &AisSettings,
) -> serde_json::Value {
    let log_likelihood = log_likelihood_before_partition - estimate.log_partition;
    // The mean log-likelihood moves opposite to log Z, by the same amount.
    let shift = |log_z: Option<f64>| log_z.map(|z| log_likelihood_before_partition - z);
    json!({
        "log_partition": estimate.log_partition,
        "log_partition_stderr": estimate.stderr,
        "log_partition_method": estimate.direction.name(),
        "log_partition_interval": [estimate.lower, estimate.upper],
        "mean_log_likelihood": log_likelihood,
        "mean_log_likelihood_interval": [shift(estimate.upper), shift(estimate.lower)],
        "ais": {
            "runs": estimate.runs,
            "betas": estimate.betas,
            "seed": settings.seed,
            "burn_in": (estimate.direction == Direction::Reverse).then_some(settings.burn_in),
            "effective_runs": estimate.effective_runs,
            "base_log_partition": estimate.base_log_partition,
        },
    })
}

pub(crate) fn is_positive(label: &str, positive: &str) -> bool {
    label == positive || matches!((label.parse::<f64>(), positive.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
}

/// Which rows are anomalous: with `--positive-label V`, those labelled V; without it, labels must
/// be 0 or 1 (1 anomalous), and any other value is an error naming its line, so that a label
/// such as 2 or "yes" is never silently read as normal.
pub(crate) fn positives(path: &str, labels: &[String], lines: &[u64], positive: Option<&str>) -> Result<Vec<bool>> {
    match positive {
        Some(v) => Ok(labels.iter().map(|l| is_positive(l, v)).collect()),
        None => labels
            .iter()
            .zip(lines)
            .map(|(label, line)| match label.trim().parse::<f64>() {
                Ok(1.0) => Ok(true),
                Ok(0.0) => Ok(false),
                _ => bail!(
                    "{path}: line {line}: label {label:?} is neither 0 nor 1; name the value that marks an anomaly with --positive-label"
                ),
            })
            .collect(),
    }
}

/// Visible values (`rows x visible units`) that `eval` holds back while the number of rows may
/// still be small enough for the exact (all-features) pseudo-likelihood: 128 MB. Past it, pieces
/// compute that sum as they go, which is wasted work only for a file that ends up larger than the
/// work limit of [`eval::PseudoLikelihood::for_size`].
const PSEUDO_BUFFER_VALUES: usize = 1 << 25;

/// What `eval` keeps of one piece of the table: a score and a label per row, and sums.
struct EvalPiece {
    energies: Vec<f64>,
    /// The baseline's free energies, when there are labels to score them against.
    baseline: Option<Vec<f64>>,
    positive: Option<Vec<bool>>,
    squared_error: f64,
    /// `None` for layers with Gaussian units. The all-features sum is computed here only for
    /// pieces past [`PSEUDO_BUFFER_VALUES`]; earlier pieces keep their rows in `pseudo_rows` until
    /// the number of rows decides the method.
    pseudo: Option<eval::PseudoLikelihoodSums>,
    pseudo_rows: Option<Vec<f32>>,
    first_row: usize,
    /// The rows' log-likelihood before log Z, when asked for.
    log_likelihood: f64,
    /// The rows in model units, kept only for AIS (its base rates and reverse chains need them).
    visible: Option<Vec<f32>>,
}

/// Evaluates a model on a table read in pieces, as `score` does: each piece is parsed and
/// evaluated on its own thread, its sums added in order, so the result is the same for any number
/// of threads and memory holds one score, one baseline score and one label per row (and the rows
/// themselves only for AIS).
pub fn eval(args: EvalArgs) -> Result<()> {
    if args.plot.is_some() && args.columns.label_column.is_none() {
        bail!("--plot draws ROC and precision-recall curves from labels: add --label-column");
    }
    if let Some(plot) = &args.plot {
        OutputPath::check(plot, &[Path::new(&args.input), &args.model])?;
    }
    let model = Model::load(&args.model)?;
    let mut reader = TableReader::open(&args.input, &spec_for_model(&model, &args.columns))?;
    check_width(&reader, &model)?;
    let rbm = &model.rbm;
    let (nv, nh) = (rbm.n_visible(), rbm.n_hidden());
    // Before reading: a model too large to enumerate fails at once.
    let exact_log_partition = match args.log_likelihood {
        Some(LogLikelihood::Exact) => Some(eval::log_partition_exact(rbm)?),
        _ => None,
    };
    let keep_rows = matches!(args.log_likelihood, Some(l) if !matches!(l, LogLikelihood::Exact));
    let (mut energies, mut baseline, mut positive) = (Vec::new(), Some(Vec::new()), Some(Vec::new()));
    let (mut squared_error, mut log_likelihood) = (0.0f64, 0.0f64);
    // The method of the pseudo-likelihood depends on the number of rows (its work limit), known
    // only at the end: the one-feature sums are computed all along (from the product the piece
    // needs anyway), the all-features sums of the pieces below the limit are kept or postponed,
    // and dropped as soon as the rows pass the limit.
    let (mut pseudo_pending, mut all_features_possible) = (Vec::new(), true);
    let (mut pseudo_one, mut discrete) = (0.0f64, true);
    let mut visible = Vec::new();
    crate::table::for_each_piece(
        &mut reader,
        SCORE_CHUNK_ROWS,
        |format, mut chunk, first_row| {
            let raw = to_matrix(std::mem::take(&mut chunk.values), model.columns.len())?;
            let prepared = model.prepare(&raw).map_err(|e| format.locate(&chunk.lines, e))?;
            let positive = match &chunk.labels {
                Some(labels) => Some(positives(&args.input, labels, &chunk.lines, args.positive_label.as_deref())?),
                None => None,
            };
            let baseline = match positive {
                Some(_) => model.baseline_free_energy_of_visible(&prepared)?,
                None => None,
            };
            let end = first_row + raw.ncols();
            let under_limit = eval::PseudoLikelihood::for_size(end, nv, nh) == eval::PseudoLikelihood::AllFeatures;
            let postpone = under_limit && end.saturating_mul(nv) <= PSEUDO_BUFFER_VALUES;
            let pseudo = match eval::pseudo_log_likelihood_sums(rbm, &prepared, first_row, under_limit && !postpone, 0)
            {
                Ok(p) => Some(p),
                // Gaussian units have no pseudo-likelihood here: null, and null for its method.
                Err(RbmError::Unsupported { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            let log_likelihood = match args.log_likelihood {
                Some(_) => model.log_likelihood_sum_before_partition(&raw, &prepared)?,
                None => 0.0,
            };
            Ok(EvalPiece {
                energies: model.free_energy_of_visible(&prepared)?,
                baseline,
                positive,
                squared_error: eval::reconstruction_squared_error(rbm, &prepared)?,
                pseudo_rows: (postpone && pseudo.is_some()).then(|| prepared.as_slice().to_vec()),
                pseudo,
                first_row,
                log_likelihood,
                visible: keep_rows.then(|| prepared.as_slice().to_vec()),
            })
        },
        |piece| {
            energies.extend(piece.energies);
            baseline = baseline.take().zip(piece.baseline).map(|(mut all, b)| {
                all.extend(b);
                all
            });
            positive = positive.take().zip(piece.positive).map(|(mut all, p)| {
                all.extend(p);
                all
            });
            squared_error += piece.squared_error;
            log_likelihood += piece.log_likelihood;
            match piece.pseudo {
                Some(p) => {
                    pseudo_one += p.one_feature;
                    pseudo_pending.push((p.all_features, piece.pseudo_rows, piece.first_row));
                }
                None => discrete = false,
            }
            if all_features_possible
                && eval::PseudoLikelihood::for_size(energies.len(), nv, nh) != eval::PseudoLikelihood::AllFeatures
            {
                all_features_possible = false;
            }
            if !all_features_possible {
                pseudo_pending = Vec::new();
            }
            visible.extend(piece.visible.unwrap_or_default());
            Ok(())
        },
    )?;
    let rows = energies.len();
    if rows == 0 {
        bail!("{}: no data rows (only a header)", args.input);
    }
    let n = rows as f64;
    use rayon::iter::{IntoParallelIterator, ParallelIterator};
    let (method, pseudo_log_likelihood) = match discrete && all_features_possible {
        true => {
            // Each piece's sum, computed now where it was postponed, added in order.
            let sums = pseudo_pending
                .into_par_iter()
                .map(|(sum, rows, first_row)| match (sum, rows) {
                    (Some(sum), _) => Ok(sum),
                    (None, Some(rows)) => {
                        let data = DMatrix::from_vec(nv, rows.len() / nv.max(1), rows);
                        let sums = eval::pseudo_log_likelihood_sums(rbm, &data, first_row, true, 0)?;
                        Ok(sums.all_features.expect("asked for"))
                    }
                    (None, None) => unreachable!("a piece under the limit keeps its sum or its rows"),
                })
                .collect::<Result<Vec<f64>>>()?;
            (eval::PseudoLikelihood::AllFeatures, sums.iter().sum::<f64>() / n)
        }
        false => (eval::PseudoLikelihood::OneFeature { seed: 0 }, pseudo_one / n),
    };
    let pseudo_log_likelihood = discrete.then_some(pseudo_log_likelihood);
    let mut result = json!({
        "rows": rows,
        "mean_free_energy": energies.iter().sum::<f64>() / n,
        "anomaly_threshold": model.anomaly_threshold,
        "anomalies": model.anomaly_threshold.map(|t| energies.iter().filter(|&&f| f > t).count()),
        "reconstruction_error": squared_error / (n * nv as f64),
        "pseudo_log_likelihood": pseudo_log_likelihood,
        "pseudo_log_likelihood_method": pseudo_log_likelihood.map(|_| method.describe()),
    });
    if let Some(positive) = &positive {
        result["positives"] = json!(positive.iter().filter(|&&p| p).count());
        // Three sorts of every row's score, side by side: each sort's first partitions run on
        // one thread.
        let ((roc_auc, pr_auc), roc_auc_baseline) = rayon::join(
            || {
                rayon::join(
                    || metrics::roc_auc(&energies, positive),
                    || metrics::average_precision(&energies, positive),
                )
            },
            // The same rows scored by the model without hidden units: do the hidden units help?
            || baseline.map(|b| metrics::roc_auc(&b, positive)),
        );
        result["roc_auc"] = json!(roc_auc);
        result["pr_auc"] = json!(pr_auc);
        result["roc_auc_baseline"] = json!(roc_auc_baseline);
        if let Some(path) = &args.plot {
            crate::plot::write_roc_pr(path, &energies, positive)?;
        }
    }
    let log_likelihood_before_partition = log_likelihood / n;
    let data = DMatrix::from_vec(nv, if keep_rows { rows } else { 0 }, visible);
    match args.log_likelihood {
        None => {}
        Some(LogLikelihood::Exact) => {
            let log_z = exact_log_partition.expect("computed before reading");
            result["log_partition"] = json!(log_z);
            result["log_partition_stderr"] = json!(0.0);
            result["log_partition_method"] = json!("exact");
            result["mean_log_likelihood"] = json!(log_likelihood_before_partition - log_z);
        }
        Some(method) => {
            let settings =
                AisSettings { runs: args.ais_runs, betas: args.ais_betas, seed: args.seed, burn_in: args.ais_burn_in };
            let base = ais::base_rate(rbm.layer(), &data)?;
            let directions: &[Direction] = match method {
                LogLikelihood::Ais => &[Direction::Forward],
                LogLikelihood::ReverseAis => &[Direction::Reverse],
                _ => &[Direction::Forward, Direction::Reverse],
            };
            let mut estimates = Vec::new();
            for &direction in directions {
                let start = match direction {
                    Direction::Forward => ais::Start::Base,
                    Direction::Reverse => ais::Start::Model(&data),
                };
                let template = format!("{{bar:30}} {} {{pos}}/{{len}} [{{elapsed}}<{{eta}}]", direction.name());
                let bar = progress_bar(!args.quiet, 1, &template);
                let estimate = ais::estimate_log_partition(rbm, &base, start, &settings, |done, total| {
                    if let Some(bar) = &bar {
                        bar.set_length(total as u64);
                        bar.set_position(done as u64);
                    }
                })?;
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                estimates.push(estimate_report(log_likelihood_before_partition, &estimate, &settings));
            }
            let first = estimates.remove(0);
            for (key, value) in first.as_object().expect("an object") {
                result[key] = value.clone();
            }
            if let Some(reverse) = estimates.pop() {
                result["mean_log_likelihood_bracket"] =
                    json!([reverse["mean_log_likelihood"], first["mean_log_likelihood"]]);
                result["reverse_ais"] = reverse;
            }
        }
    }
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

pub fn sample(args: SampleArgs) -> Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let output = output_path(args.output.as_deref(), &[&args.model])?;
    let model = Model::load(&args.model)?;
    let png = args.output.as_deref().filter(|p| crate::plot::is_png(p));
    if png.is_none() && args.shape.is_some() {
        bail!("--shape is for a PNG grid of samples: give --output a .png name");
    }
    let grid = match png {
        Some(_) => Some(crate::plot::sample_grid(&args.model, &model, args.shape.as_deref(), args.count)?),
        None => None,
    };
    let samples = model.sample(args.count, args.gibbs_steps, args.seed)?;
    if let (Some(grid), Some(path)) = (grid, png) {
        return grid.write(&samples, path);
    }
    let mut out = output.create()?;
    let names: Vec<String> = if model.feature_names.is_empty() {
        (1..=model.columns.len()).map(|i| format!("v{i}")).collect()
    } else {
        model.feature_names.clone()
    };
    writeln!(out, "{}", names.join(","))?;
    for column in samples.column_iter() {
        let line: Vec<String> = column
            .iter()
            .zip(&model.columns)
            .map(|(v, c)| match c {
                ColumnEncoding::Categorical { levels } => levels[*v as usize].clone(),
                ColumnEncoding::Units(_) => v.to_string(),
            })
            .collect();
        writeln!(out, "{}", line.join(","))?;
    }
    out.commit()?;
    Ok(())
}

pub fn inspect(args: InspectArgs) -> Result<()> {
    let header = rbm_core::file_header(&args.model)?;
    if header.as_ref().map(|h| h.format.as_str()) == Some(rbm_recommend::FORMAT_NAME) {
        return crate::recommend::inspect(&args.model, args.json);
    }
    let model = Model::load(&args.model)?;
    let rbm = &model.rbm;
    let norm = rbm.weights_rms();
    let visible_name = rbm.visible_kind().map_or("mixed", VisibleKind::name);
    let summary = json!({
        "format_version": header.and_then(|h| h.version),
        "visible": visible_name,
        "columns": model.columns,
        "n_visible": rbm.n_visible(),
        "n_hidden": rbm.n_hidden(),
        "weights_rms": norm,
        "standardized": model.standardization.is_some(),
        "anomaly_threshold": model.anomaly_threshold,
        "feature_names": model.feature_names,
        "provenance": model.provenance,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!("model: {}", args.model.display());
    println!("units: {} visible ({}), {} hidden (bernoulli)", rbm.n_visible(), rbm.layer().describe(), rbm.n_hidden());
    if rbm.visible_kind().is_none() {
        let names: Vec<String> = if model.feature_names.is_empty() {
            (1..=model.columns.len()).map(|i| format!("column {i}")).collect()
        } else {
            model.feature_names.clone()
        };
        println!("columns: {}", describe_columns(&names, &model.columns));
    }
    println!("weights: rms {norm:.4}");
    if let Some(s) = &model.standardization {
        println!("standardised: {} columns (mean and scale stored)", s.len());
    }
    match model.anomaly_threshold {
        Some(t) => println!("anomaly threshold: free energy > {t}"),
        None => println!("anomaly threshold: none"),
    }
    println!("toolkit version: {}", model.provenance.toolkit_version);
    if let Some(p) = &model.provenance.training {
        println!(
            "trained: {} epochs of {}, batch {}, learning rate {}, weight decay {}, seed {}",
            model.provenance.epochs_trained,
            match p.persistent_chains {
                Some(c) => format!("PCD-{} ({c} chains)", p.gibbs_steps),
                None => format!("CD-{}", p.gibbs_steps),
            },
            p.batch_size,
            p.learning_rate,
            p.weight_decay,
            p.seed
        );
    }
    if !model.feature_names.is_empty() {
        println!("features: {}", model.feature_names.join(", "));
    }
    Ok(())
}
