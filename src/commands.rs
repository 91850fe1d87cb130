//! The subcommands: read input, call rbm-core, write output. No mathematics here.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use nalgebra::DMatrix;
use rbm_core::{Model, Momentum, PersistentChains, TrainingParams, VisibleKind, eval, metrics};
use serde_json::json;

use crate::table::{ColumnSpec, TableReader, read_all};
use crate::{EvalArgs, InspectArgs, Method, SampleArgs, ScoreArgs, TrainArgs, Visible};

/// Rows read and scored at a time by `score`: memory stays flat on any file size.
const SCORE_CHUNK_ROWS: usize = 4096;

fn spec(columns: &crate::Columns) -> ColumnSpec {
    ColumnSpec { label: columns.label_column.clone(), ignore: columns.ignore_columns.clone(), features_by_name: None }
}

fn load_model(path: &Path) -> Result<Model> {
    Ok(Model::load(path)?)
}

/// Column spec for data scored by a trained model: by the model's feature names when the file
/// has a header, otherwise by position after removing label and ignored columns.
fn spec_for_model(model: &Model, columns: &crate::Columns) -> ColumnSpec {
    let mut s = spec(columns);
    if !model.feature_names.is_empty() && !model.feature_names[0].starts_with("column ") {
        s.features_by_name = Some(model.feature_names.clone());
    }
    s
}

fn check_width(reader: &TableReader, model: &Model) -> Result<()> {
    let found = reader.feature_names().len();
    if found != model.rbm.n_visible() {
        bail!(
            "{}: {found} feature columns, but the model has {} visible units (use --label-column / --ignore-columns to leave columns out)",
            reader.path(),
            model.rbm.n_visible()
        );
    }
    Ok(())
}

fn to_matrix(values: Vec<f32>, features: usize) -> DMatrix<f32> {
    rbm_core::samples_from_row_major(values, features)
}

pub fn train(args: TrainArgs) -> Result<()> {
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("--threads")?;
    }
    if let Some(c) = args.contamination.filter(|c| !(0.0..1.0).contains(c)) {
        bail!("--contamination must lie in [0, 1) (got {c})");
    }
    let kind = match args.visible {
        Visible::Bernoulli => VisibleKind::Bernoulli,
        Visible::Gaussian => VisibleKind::Gaussian,
    };
    let (reader, chunk) = read_all(&args.input, &spec(&args.columns))?;
    let features = reader.feature_names().to_vec();
    let rows = chunk.rows();
    let lines = chunk.lines;
    let data = to_matrix(chunk.values, features.len());
    if let Err(e) = rbm_core::check_values(kind, &data) {
        let located = reader.locate(&lines, e);
        return Err(match kind {
            VisibleKind::Bernoulli => anyhow!("{located}; train with --visible gaussian"),
            VisibleKind::Gaussian => located,
        });
    }
    let validation = match &args.validation {
        None => None,
        Some(path) => {
            let mut s = spec(&args.columns);
            if reader.has_header() {
                s.features_by_name = Some(features.clone());
            }
            let (vreader, mut vchunk) = read_all(path, &s)?;
            if vreader.feature_names().len() != features.len() {
                bail!(
                    "{path}: {} feature columns, the training data have {}",
                    vreader.feature_names().len(),
                    features.len()
                );
            }
            let v = to_matrix(std::mem::take(&mut vchunk.values), features.len());
            rbm_core::check_values(kind, &v).map_err(|e| vreader.locate(&vchunk.lines, e))?;
            Some(v)
        }
    };
    let mut params = TrainingParams::for_data(kind, rows, features.len());
    params.n_hidden = args.hidden.unwrap_or(params.n_hidden);
    params.epochs = args.epochs.unwrap_or(params.epochs);
    params.batch_size = args.batch_size.unwrap_or(params.batch_size);
    if let Some(lr) = args.learning_rate {
        params.learning_rate = lr;
    }
    if let Some(m) = args.momentum {
        params.momentum = Momentum::Constant { value: m };
    }
    params.weight_decay = args.weight_decay;
    params.gibbs_steps = args.cd_k;
    let persistent = match (args.persistent, args.method) {
        (true, Method::Cd) => bail!("--persistent contradicts --method cd"),
        (true, _) | (false, Method::Pcd) => true,
        (false, Method::Cd) => false,
        (false, Method::Auto) => params.persistent_chains.is_some(),
    };
    params.persistent_chains = persistent.then_some(params.batch_size);
    if let Some(compress) = args.compress_tails {
        params.compress_heavy_tails = compress;
    }
    params.seed = args.seed;
    let params = params.check()?;

    let show = !args.quiet;
    let bar = (show && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(params.epochs as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} epoch {pos}/{len} {msg} [{elapsed}<{eta}]")
                .expect("valid template"),
        );
        bar
    });
    if show {
        eprintln!(
            "training {} RBM: {rows} rows x {} features, {} hidden, {} epochs, batch {}, {}{}",
            kind.name(),
            features.len(),
            params.n_hidden,
            params.epochs,
            params.batch_size,
            if persistent { "PCD-" } else { "CD-" },
            params.gibbs_steps
        );
    }
    let (total_epochs, every) = (params.epochs, params.epochs.div_ceil(10));
    let start = Instant::now();
    let fit = Model::fit(params, &data, validation.as_ref(), |s| {
        let gap = s.free_energy_gap().map(|g| format!(", free-energy gap {g:+.3}")).unwrap_or_default();
        let line =
            format!("reconstruction error {:.5}, free energy {:.3}{gap}", s.reconstruction_error, s.free_energy_train);
        match &bar {
            Some(b) => {
                b.set_message(line);
                b.inc(1);
            }
            // Off a terminal, about ten lines in all.
            None if show && (s.epoch % every == 0 || s.epoch == total_epochs) => eprintln!("epoch {}: {line}", s.epoch),
            None => {}
        }
        ControlFlow::Continue(())
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let (mut model, report) = fit.map_err(|e| anyhow!("{}: {e}", args.input))?;
    let train_seconds = start.elapsed().as_secs_f64();
    let train_seconds_updates: f64 = report.history.iter().map(|s| s.seconds).sum();
    if show && !report.constant_features.is_empty() {
        let names: Vec<&str> = report.constant_features.iter().map(|&i| features[i].as_str()).collect();
        eprintln!("warning: constant columns kept with scale 1: {}", names.join(", "));
    }
    model.feature_names = features;
    if let Some(c) = args.contamination {
        let scores = model.free_energy(&data)?;
        model.anomaly_threshold = metrics::contamination_threshold(&scores, c);
    }
    model.save(&args.output)?;
    if let Some(path) = &args.report {
        let report = json!({
            "train_seconds": train_seconds,
            "update_seconds": train_seconds_updates,
            "rows": rows,
            "epochs": report.history,
            "stopped_early": report.stopped_early,
        });
        rbm_core::write_atomically(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if show {
        let last = model.provenance.epochs_trained;
        eprintln!("saved {} ({last} epochs, {:.2} s)", args.output.display(), train_seconds);
    }
    Ok(())
}

fn open_output(path: Option<&Path>) -> Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("{}: cannot create", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

/// Scores every row; returns how many were flagged as anomalies.
pub fn score(args: ScoreArgs) -> Result<usize> {
    let model = load_model(&args.model)?;
    let threshold = args.threshold.or(model.anomaly_threshold);
    if args.fail_on_anomaly && threshold.is_none() {
        bail!("--fail-on-anomaly needs a threshold: train with --contamination or pass --threshold");
    }
    let mut reader = TableReader::open(&args.input, &spec_for_model(&model, &args.columns))?;
    check_width(&reader, &model)?;
    let mut out = open_output(args.output.as_deref())?;
    writeln!(out, "row,free_energy,anomaly")?;
    let (mut row, mut flagged) = (0usize, 0usize);
    while let Some(mut chunk) = reader.next_chunk(SCORE_CHUNK_ROWS)? {
        let data = to_matrix(std::mem::take(&mut chunk.values), model.rbm.n_visible());
        let prepared = model.prepare(&data).map_err(|e| reader.locate(&chunk.lines, e))?;
        for f in model.rbm.free_energy(&prepared) {
            row += 1;
            let anomalous = threshold.map(|t| f > t);
            flagged += usize::from(anomalous == Some(true));
            let flag = anomalous.map_or("", |a| if a { "1" } else { "0" });
            writeln!(out, "{row},{f},{flag}")?;
        }
    }
    out.flush()?;
    if threshold.is_none() && !args.quiet {
        eprintln!("note: no threshold (train with --contamination or pass --threshold); the anomaly column is empty");
    }
    Ok(flagged)
}

fn is_positive(label: &str, positive: &str) -> bool {
    label == positive || matches!((label.parse::<f64>(), positive.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    let (reader, mut chunk) = read_all(&args.input, &spec_for_model(&model, &args.columns))?;
    check_width(&reader, &model)?;
    let data = to_matrix(std::mem::take(&mut chunk.values), model.rbm.n_visible());
    let prepared = model.prepare(&data).map_err(|e| reader.locate(&chunk.lines, e))?;
    let energies = model.rbm.free_energy(&prepared);
    let rows = energies.len();
    // Every feature of every row while that stays under about 1e9 softplus pairs (seconds);
    // beyond, one seeded feature per row, an unbiased estimate of the same per-feature mean.
    let (features, pll_method) = if rows * model.rbm.n_visible() * model.rbm.n_hidden() <= 1_000_000_000 {
        (eval::PseudoLikelihood::AllFeatures, "all features")
    } else {
        (eval::PseudoLikelihood::OneFeature { seed: 0 }, "one random feature per row, seed 0")
    };
    let mut result = json!({
        "rows": rows,
        "mean_free_energy": energies.iter().sum::<f64>() / rows as f64,
        "reconstruction_error": eval::reconstruction_error(&model.rbm, &prepared),
        "pseudo_log_likelihood": match model.rbm.visible_kind() {
            VisibleKind::Bernoulli => Some(eval::pseudo_log_likelihood(&model.rbm, &prepared, features)?),
            VisibleKind::Gaussian => None,
        },
        // Null with the value: Gaussian units have no pseudo-likelihood here.
        "pseudo_log_likelihood_method": (model.rbm.visible_kind() == VisibleKind::Bernoulli).then_some(pll_method),
    });
    if let Some(labels) = &chunk.labels {
        let positive: Vec<bool> = labels.iter().map(|l| is_positive(l, &args.positive_label)).collect();
        result["positives"] = json!(positive.iter().filter(|&&p| p).count());
        result["roc_auc"] = json!(metrics::roc_auc(&energies, &positive));
        result["pr_auc"] = json!(metrics::average_precision(&energies, &positive));
    }
    if let Some(crate::LogLikelihood::Exact) = args.log_likelihood {
        let log_z = eval::log_partition_exact(&model.rbm)?;
        let mut mean = eval::mean_log_likelihood(&model.rbm, &prepared, log_z);
        if let Some(s) = &model.standardization {
            mean += s.mean_log_jacobian(&data); // a density of the data in their own units
        }
        result["log_partition"] = json!(log_z);
        result["log_partition_stderr"] = json!(0.0);
        result["mean_log_likelihood"] = json!(mean);
    }
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

pub fn sample(args: SampleArgs) -> Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let model = load_model(&args.model)?;
    let mut chains = PersistentChains::random(&model.rbm, args.count, args.seed);
    chains.advance(&model.rbm, args.gibbs_steps);
    let mut samples = chains.visible(model.rbm.n_visible());
    if let Some(s) = &model.standardization {
        s.invert(&mut samples);
    }
    let mut out = open_output(args.output.as_deref())?;
    let names: Vec<String> = if model.feature_names.is_empty() {
        (1..=model.rbm.n_visible()).map(|i| format!("v{i}")).collect()
    } else {
        model.feature_names.clone()
    };
    writeln!(out, "{}", names.join(","))?;
    for column in samples.column_iter() {
        let line: Vec<String> = column.iter().map(|v| v.to_string()).collect();
        writeln!(out, "{}", line.join(","))?;
    }
    out.flush()?;
    Ok(())
}

/// The `format` field of a model file, read from its first few kilobytes (both model writers put
/// it first), so `inspect` can tell a recommender from an RBM without parsing the file twice.
fn sniff_format(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    let rest = text[text.find("\"format\"")? + 8..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

pub fn inspect(args: InspectArgs) -> Result<()> {
    if sniff_format(&args.model).as_deref() == Some(rbm_recommend::FORMAT_NAME) {
        return crate::recommend::inspect(&args.model, args.json);
    }
    let model = load_model(&args.model)?;
    let rbm = &model.rbm;
    let w = rbm.weights();
    let norm = (w.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
    let summary = json!({
        "format_version": rbm_core::FORMAT_VERSION,
        "visible": rbm.visible_kind().name(),
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
    println!(
        "units: {} visible ({}), {} hidden (bernoulli)",
        rbm.n_visible(),
        rbm.visible_kind().name(),
        rbm.n_hidden()
    );
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
