//! `rbm recommend`: train, evaluate and query the RBM recommender, split ratings files and make
//! synthetic ones. Argument parsing and I/O only; the mathematics is in rbm-recommend.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use rbm_core::OutputPath;
use serde_json::json;

use rbm_recommend::ratings::{self, Fields, IdMap, Ratings};
use rbm_recommend::split::{SplitRule, split};
use rbm_recommend::{Orientation, RecommendParams, Recommender, evaluate};

/// `rbm recommend` subcommands.
#[derive(Subcommand, Debug)]
pub enum RecommendCommand {
    /// Train a recommender on a ratings file and save it as JSON.
    Train(RecommendTrainArgs),
    /// Score a recommender on held-out ratings: prints one JSON object.
    Eval(RecommendEvalArgs),
    /// The best unrated items for one user, as CSV.
    Top(RecommendTopArgs),
    /// Split a ratings file into training and test files (lines copied verbatim).
    Split(RecommendSplitArgs),
    /// Write a seeded synthetic ratings file (latent tastes, biases, skewed popularity).
    Synthesize(SynthesizeArgs),
}

/// Which RBMs to train.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OrientationArg {
    /// User-based: a case per user, a softmax unit per item rated.
    User,
    /// Item-based: a case per item, a softmax unit per user who rated it.
    Item,
    /// Both, blended with weights fit on a held-out 10% of the training ratings.
    Both,
}

#[derive(Args, Debug)]
pub struct RecommendTrainArgs {
    /// Ratings file: `user,item,rating[,timestamp]` CSV, MovieLens u.data (tab) or ratings.dat (`::`).
    #[arg(long)]
    ratings: PathBuf,
    /// Where to write the model (JSON, written atomically).
    #[arg(long)]
    output: PathBuf,
    /// Which RBMs to train.
    #[arg(long, value_enum, default_value = "both")]
    orientation: OrientationArg,
    /// Hidden units of every RBM [default: 100 user-based, 300 item-based].
    #[arg(long, allow_negative_numbers = true)]
    hidden: Option<usize>,
    /// Epochs of every RBM [default: see docs/recommend.md].
    #[arg(long, allow_negative_numbers = true)]
    epochs: Option<usize>,
    /// Cases per mini-batch.
    #[arg(long, allow_negative_numbers = true)]
    batch_size: Option<usize>,
    /// Learning rate of the weights (and of D).
    #[arg(long, allow_negative_numbers = true)]
    learning_rate: Option<f32>,
    /// Learning rate of the biases.
    #[arg(long, allow_negative_numbers = true)]
    bias_learning_rate: Option<f32>,
    /// Learning rates at epoch e are divided by 1 + decay * e.
    #[arg(long, allow_negative_numbers = true)]
    learning_rate_decay: Option<f32>,
    /// Momentum after the first epoch.
    #[arg(long, allow_negative_numbers = true)]
    momentum: Option<f32>,
    /// L2 weight decay on W and D.
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f32>,
    /// RBMs per orientation, differing in seed; more than one are blended [default: 2].
    #[arg(long, allow_negative_numbers = true)]
    replicas: Option<usize>,
    /// Conditional RBM: which items a user rated feeds the hidden units through a matrix D
    /// [default: true; `--conditional false` for the plain RBM].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    conditional: Option<bool>,
    /// Conditional RBM: more (user,item) pairs known to be rated or seen, added to r.
    #[arg(long)]
    implicit: Option<PathBuf>,
    /// The rating scale MIN:MAX:STEP (for example 1:5:1 or 0.5:5:0.5): a rating off it is an
    /// error naming its line [default: the values found, with a warning for rare or off-grid ones].
    #[arg(long, value_parser = parse_scale)]
    rating_scale: Option<RatingScale>,
    /// Random seed.
    #[arg(long, default_value_t = 0, value_parser = crate::cli::parse_seed, allow_negative_numbers = true)]
    seed: u64,
    /// Worker threads [default: all cores]; results do not depend on it.
    #[arg(long, allow_negative_numbers = true)]
    threads: Option<usize>,
    /// Write a JSON training report here (train_seconds and per-epoch statistics).
    #[arg(long)]
    report: Option<PathBuf>,
    /// No progress or per-epoch output.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct RecommendEvalArgs {
    /// Model file.
    #[arg(long)]
    model: PathBuf,
    /// The ratings predictions condition on (usually the training file).
    #[arg(long)]
    train: PathBuf,
    /// Held-out ratings to score.
    #[arg(long)]
    test: PathBuf,
    /// Cut-off of precision, recall and NDCG.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    k: usize,
    /// A test rating at or above this is relevant for the ranking metrics.
    #[arg(long, default_value_t = 4.0, allow_negative_numbers = true)]
    relevance: f32,
    /// Ranking: shrink each predicted rating towards the lowest level by this many times the mean
    /// number of ratings per item, in pseudo-ratings (0: rank by predicted rating alone).
    #[arg(long, default_value_t = rbm_recommend::DEFAULT_RANK_SHRINKAGE, allow_negative_numbers = true)]
    rank_shrinkage: f32,
    /// More (user,item) pairs for the conditioning sets of a conditional model.
    #[arg(long)]
    implicit: Option<PathBuf>,
    /// Also write every test rating's prediction here as CSV.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Worker threads [default: all cores].
    #[arg(long, allow_negative_numbers = true)]
    threads: Option<usize>,
    /// No chatter on standard error.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct RecommendTopArgs {
    /// Model file.
    #[arg(long)]
    model: PathBuf,
    /// The user's known ratings (usually the training file); rated items are not recommended.
    #[arg(long)]
    ratings: PathBuf,
    /// User id.
    #[arg(long)]
    user: String,
    /// How many items.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    count: usize,
    /// Shrink each predicted rating towards the lowest level by this many times the mean number
    /// of ratings per item, in pseudo-ratings, before ranking (0: rank by predicted rating).
    #[arg(long, default_value_t = rbm_recommend::DEFAULT_RANK_SHRINKAGE, allow_negative_numbers = true)]
    rank_shrinkage: f32,
    /// More (user,item) pairs for the conditioning sets of a conditional model.
    #[arg(long)]
    implicit: Option<PathBuf>,
    /// No chatter on standard error.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct RecommendSplitArgs {
    /// Ratings file to split.
    #[arg(long)]
    ratings: PathBuf,
    /// Fraction of ratings, chosen at random, for the test file.
    #[arg(long, conflicts_with = "per_user", allow_negative_numbers = true)]
    test_fraction: Option<f64>,
    /// Instead: hold out this many random ratings of every user who has more.
    #[arg(long, allow_negative_numbers = true)]
    per_user: Option<usize>,
    /// Random seed.
    #[arg(long, default_value_t = 0, value_parser = crate::cli::parse_seed, allow_negative_numbers = true)]
    seed: u64,
    /// Training part.
    #[arg(long)]
    train_out: PathBuf,
    /// Test part.
    #[arg(long)]
    test_out: PathBuf,
    /// No chatter on standard error.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct SynthesizeArgs {
    /// Number of users.
    #[arg(long, default_value_t = 600, allow_negative_numbers = true)]
    users: usize,
    /// Number of items.
    #[arg(long, default_value_t = 400, allow_negative_numbers = true)]
    items: usize,
    /// Number of ratings (at most half of users x items).
    #[arg(long, default_value_t = 30_000, allow_negative_numbers = true)]
    ratings: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0, value_parser = crate::cli::parse_seed, allow_negative_numbers = true)]
    seed: u64,
    /// Output CSV (`user,item,rating`).
    #[arg(long)]
    output: PathBuf,
    /// Accepted for uniformity; synthesize prints nothing.
    #[arg(long)]
    quiet: bool,
}

/// Runs one `rbm recommend` subcommand.
pub fn run(command: RecommendCommand) -> Result<()> {
    match command {
        RecommendCommand::Train(a) => train(a),
        RecommendCommand::Eval(a) => eval(a),
        RecommendCommand::Top(a) => top(a),
        RecommendCommand::Split(a) => split_file(a),
        RecommendCommand::Synthesize(a) => synthesize(a),
    }
}

fn check_rank_shrinkage(shrinkage: f32) -> Result<()> {
    if !(shrinkage.is_finite() && shrinkage >= 0.0) {
        bail!("--rank-shrinkage must be finite and >= 0 (got {shrinkage})");
    }
    Ok(())
}

fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("--threads")?;
    }
    Ok(())
}

/// Reads `(user, item)` pairs into the id maps of `ratings` (new ids are added there).
fn read_implicit(path: Option<&Path>, ratings: &mut Ratings) -> Result<Vec<(u32, u32)>> {
    let Some(path) = path else { return Ok(Vec::new()) };
    let users = std::mem::take(&mut ratings.users);
    let items = std::mem::take(&mut ratings.items);
    let pairs = ratings::read_ratings(path, Fields::Pairs, users, items)?;
    ratings.users = pairs.users;
    ratings.items = pairs.items;
    Ok(pairs.entries.iter().map(|r| (r.user, r.item)).collect())
}

fn train(args: RecommendTrainArgs) -> Result<()> {
    set_threads(args.threads)?;
    if args.implicit.is_some() && args.conditional == Some(false) {
        bail!("--implicit needs the conditional model (only it reads which items were rated)");
    }
    // Every setting is checked before any file is read.
    let orientation = match args.orientation {
        OrientationArg::User => Orientation::User,
        OrientationArg::Item => Orientation::Item,
        OrientationArg::Both => Orientation::Both,
    };
    let mut params = RecommendParams::new(orientation).with_seed(args.seed);
    params.replicas = args.replicas.unwrap_or(params.replicas);
    for p in [&mut params.user, &mut params.item] {
        p.hidden = args.hidden.unwrap_or(p.hidden);
        p.epochs = args.epochs.unwrap_or(p.epochs);
        p.batch_size = args.batch_size.unwrap_or(p.batch_size);
        p.learning_rate = args.learning_rate.unwrap_or(p.learning_rate);
        p.bias_learning_rate = args.bias_learning_rate.unwrap_or(p.bias_learning_rate);
        p.learning_rate_decay = args.learning_rate_decay.unwrap_or(p.learning_rate_decay);
        p.momentum = args.momentum.unwrap_or(p.momentum);
        p.weight_decay = args.weight_decay.unwrap_or(p.weight_decay);
        p.conditional = args.conditional.unwrap_or(p.conditional);
    }
    let params = params.check()?;
    // Every output is checked before any data are read.
    let inputs: Vec<&Path> = std::iter::once(args.ratings.as_path()).chain(args.implicit.as_deref()).collect();
    let model_out = OutputPath::check(&args.output, &inputs)?;
    let report_out = args.report.as_deref().map(|p| OutputPath::check(p, &inputs)).transpose()?;
    OutputPath::check_distinct(&[&model_out].into_iter().chain(report_out.as_ref()).collect::<Vec<_>>())?;
    let mut ratings = ratings::read_ratings(&args.ratings, Fields::Ratings, IdMap::default(), IdMap::default())?;
    // New ids in the implicit file only matter to the conditioning; they are added to the maps
    // so every index is valid, and get no ratings.
    let implicit = read_implicit(args.implicit.as_deref(), &mut ratings)?;
    let show = !args.quiet;
    check_levels(&ratings, args.rating_scale, show)?;
    if show {
        eprintln!(
            "training {} RBM recommender: {} ratings, {} users, {} items",
            match orientation {
                Orientation::User => "user-based",
                Orientation::Item => "item-based",
                Orientation::Both => "user- and item-based",
            },
            ratings.entries.len(),
            ratings.users.len(),
            ratings.items.len(),
        );
    }
    let runs = if orientation == Orientation::Both || params.replicas > 1 { 2 } else { 1 };
    let total: usize = orientation.sides().iter().map(|s| params.side(*s).epochs * params.replicas * runs).sum();
    let bar = crate::commands::progress_bar(show, total, "{bar:30} {pos}/{len} epochs {msg} [{elapsed}<{eta}]");
    let mut epochs = Vec::new();
    let start = Instant::now();
    let implicit_source = args.implicit.as_ref().map(|p| format!("training ratings + {}", p.display()));
    let model = Recommender::fit(ratings, &implicit, implicit_source, &params, |e| {
        let validation = e.stats.validation_rmse.map(|r| format!(", held-out RMSE {r:.4}")).unwrap_or_default();
        let stage = if e.kept { "" } else { "before blend: " };
        let line = format!(
            "{stage}{}-based RBM #{} epoch {} (CD-{}){validation}",
            e.side.name(),
            e.replica + 1,
            e.stats.epoch,
            e.stats.cd_steps
        );
        match &bar {
            Some(b) => {
                b.set_message(line);
                b.inc(1);
            }
            // Off a terminal, one line per RBM, after its last epoch.
            None if show && e.stats.epoch == params.side(e.side).epochs => eprintln!("{line}"),
            None => {}
        }
        epochs.push(e.clone());
        ControlFlow::Continue(())
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let model = model?;
    let train_seconds = start.elapsed().as_secs_f64();
    model.save(model_out.path())?;
    if let Some(path) = report_out.as_ref().map(OutputPath::path) {
        let report = json!({ "train_seconds": train_seconds, "blend": model.blend, "epochs": epochs });
        rbm_core::write_atomically(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if show {
        eprintln!("saved {} ({train_seconds:.2} s)", args.output.display());
    }
    Ok(())
}

/// The conditioning ratings for `model`: ids already in the model keep their indices.
fn read_context_ratings(
    model: &Recommender,
    path: &Path,
    implicit: Option<&Path>,
) -> Result<(Ratings, Vec<(u32, u32)>)> {
    let mut ratings = ratings::read_ratings(path, Fields::Ratings, model.users.clone(), model.items.clone())?;
    let implicit = read_implicit(implicit, &mut ratings)?;
    Ok((ratings, implicit))
}

/// A rating scale `MIN:MAX:STEP`.
#[derive(Clone, Copy, Debug)]
pub struct RatingScale {
    min: f32,
    max: f32,
    step: f32,
}

impl RatingScale {
    /// Whether `value` is one of the scale's levels.
    fn holds(&self, value: f32) -> bool {
        let k = (value - self.min) / self.step;
        value >= self.min - 1e-4 * self.step && value <= self.max + 1e-4 * self.step && (k - k.round()).abs() < 1e-4
    }
}

fn parse_scale(text: &str) -> std::result::Result<RatingScale, String> {
    let parts: Vec<f32> =
        text.split(':').map(|p| p.trim().parse::<f32>()).collect::<std::result::Result<_, _>>().map_err(|_| {
            format!("{text:?} is not a rating scale: give MIN:MAX:STEP, for example 1:5:1 or 0.5:5:0.5")
        })?;
    match parts[..] {
        [min, max, step] if min.is_finite() && max.is_finite() && step.is_finite() && step > 0.0 && max > min => {
            let scale = RatingScale { min, max, step };
            if !scale.holds(max) {
                return Err(format!("{text:?}: MAX is not MIN plus a whole number of STEPs"));
            }
            if (max - min) / step > rbm_recommend::MAX_LEVELS as f32 {
                return Err(format!("{text:?} has more than {} levels", rbm_recommend::MAX_LEVELS));
            }
            Ok(scale)
        }
        _ => Err(format!("{text:?} is not a rating scale: give MIN:MAX:STEP with MIN < MAX and STEP > 0")),
    }
}

/// With a scale, refuses a rating off it, naming its line. Without one, reports the levels found
/// and warns about levels that hold under 0.1% of the ratings or lie off the grid most levels
/// share (a stray 0, 10 or 3.5 among 1-5 would otherwise silently become a level).
fn check_levels(ratings: &Ratings, scale: Option<RatingScale>, show: bool) -> Result<()> {
    let path = ratings.path.display();
    if let Some(scale) = scale {
        if let Some(r) = ratings.entries.iter().find(|r| !scale.holds(r.value)) {
            bail!(
                "{path}: line {}, field 3: rating {} is not on the scale {}:{}:{}",
                r.line,
                r.value,
                scale.min,
                scale.max,
                scale.step
            );
        }
        return Ok(());
    }
    // Each level with its count and first line.
    let mut levels: Vec<(f32, usize, u32)> = Vec::new();
    for r in &ratings.entries {
        match levels.iter_mut().find(|l| l.0 == r.value) {
            Some(l) => l.1 += 1,
            None => levels.push((r.value, 1, r.line)),
        }
    }
    levels.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !show {
        return Ok(());
    }
    let listed: Vec<String> = levels.iter().map(|(v, n, _)| format!("{v} ({n})")).collect();
    eprintln!("rating levels: {}", listed.join(", "));
    // The grid: the gap most consecutive levels share.
    let gaps: Vec<f32> = levels.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let step = gaps.iter().copied().max_by_key(|g| gaps.iter().filter(|h| (*h - g).abs() < 1e-4).count());
    let total = ratings.entries.len();
    for &(value, count, line) in &levels {
        let rare = count * 1000 < total;
        let off_grid = step.is_some_and(|s| {
            let k = (value - levels[0].0) / s;
            (k - k.round()).abs() > 1e-4
        });
        if rare || off_grid {
            let why = match (rare, off_grid) {
                (true, true) => "is rare and off the grid of the other levels",
                (true, false) => "is rare",
                _ => "is off the grid of the other levels",
            };
            eprintln!(
                "warning: {path}: rating level {value} ({count} of {total} ratings, first on line {line}) {why}: a typo? --rating-scale MIN:MAX:STEP refuses ratings off the scale"
            );
        }
    }
    Ok(())
}

fn eval(args: RecommendEvalArgs) -> Result<()> {
    set_threads(args.threads)?;
    let mut inputs = vec![args.model.as_path(), args.train.as_path(), args.test.as_path()];
    inputs.extend(args.implicit.as_deref());
    let predictions_out = args.predictions.as_deref().map(|p| OutputPath::check(p, &inputs)).transpose()?;
    let model = Recommender::load(&args.model)?;
    let (train, implicit) = read_context_ratings(&model, &args.train, args.implicit.as_deref())?;
    let test = ratings::read_ratings(&args.test, Fields::Ratings, train.users.clone(), train.items.clone())?;
    // A test rating the model has no level for would be scored against predictions that cannot
    // reach it: refused, located.
    if let Some(r) = test.entries.iter().find(|r| !model.levels.contains(&r.value)) {
        return Err(rbm_recommend::RecommendError::UnknownLevel {
            path: args.test.clone(),
            line: r.line as u64,
            value: r.value,
            levels: model.levels.clone(),
        }
        .into());
    }
    let context = model.context(&train, &implicit)?;
    let start = Instant::now();
    check_rank_shrinkage(args.rank_shrinkage)?;
    let evaluation = evaluate::evaluate(&model, &context, &test, args.k, args.relevance, args.rank_shrinkage);
    if let Some(output) = &predictions_out {
        let mut out = String::from("user,item,rating,prediction,source\n");
        for r in &test.entries {
            let p = model.predict(&context, r.user, r.item);
            let source = serde_json::to_value(p.source)?;
            out.push_str(&format!(
                "{},{},{},{},{}\n",
                test.users.id(r.user),
                test.items.id(r.item),
                r.value,
                p.value,
                source.as_str().unwrap_or("")
            ));
        }
        output.write_with(|w| w.write_all(out.as_bytes()))?;
    }
    let conditioning = match (model.components.iter().any(|c| c.rbm.conditioning().is_some()), &args.implicit) {
        (false, _) => "none (not a conditional model)".to_string(),
        (true, None) => format!("items rated in {}", args.train.display()),
        (true, Some(p)) => format!("items rated in {} plus pairs in {}", args.train.display(), p.display()),
    };
    let mut object = serde_json::to_value(&evaluation)?;
    object["conditioning"] = json!(conditioning);
    object["orientation"] = json!(model.params.orientation);
    object["seconds"] = json!(start.elapsed().as_secs_f64());
    println!("{}", serde_json::to_string(&object)?);
    Ok(())
}

fn top(args: RecommendTopArgs) -> Result<()> {
    check_rank_shrinkage(args.rank_shrinkage)?;
    let model = Recommender::load(&args.model)?;
    let (ratings, implicit) = read_context_ratings(&model, &args.ratings, args.implicit.as_deref())?;
    let Some(user) = ratings.users.get(&args.user) else {
        return Err(rbm_recommend::RecommendError::UnknownUser(args.user).into());
    };
    let context = model.context(&ratings, &implicit)?;
    let ranked = model.top(&context, user, args.count, args.rank_shrinkage);
    // Whatever the reason, a list not ranked by the model says so (the `source` column says which).
    let fallbacks = ranked.iter().filter(|r| r.prediction.source != rbm_recommend::Source::Model).count();
    if !args.quiet && fallbacks > 0 {
        let why = match context.rated(user).is_empty() {
            true => "has no ratings of items the model knows",
            false => "cannot be read by every RBM of the model (a user it was not trained on, for an item-based RBM)",
        };
        eprintln!(
            "warning: user {:?} {why}: {fallbacks} of {} items ranked by their mean rating instead of the model",
            args.user,
            ranked.len()
        );
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "rank,item,predicted_rating,score,source")?;
    for (rank, r) in ranked.into_iter().enumerate() {
        let source = serde_json::to_value(r.prediction.source)?;
        writeln!(
            out,
            "{},{},{:.4},{:.4},{}",
            rank + 1,
            model.items.id(r.item),
            r.prediction.value,
            r.score,
            source.as_str().unwrap_or("")
        )?;
    }
    out.flush()?;
    Ok(())
}

fn split_file(args: RecommendSplitArgs) -> Result<()> {
    let rule = match (args.test_fraction, args.per_user) {
        (Some(f), None) if f > 0.0 && f < 1.0 => SplitRule::Random { fraction: f },
        (Some(f), None) => bail!("--test-fraction must lie in (0, 1) (got {f})"),
        (None, Some(0)) => bail!("--per-user must be at least 1"),
        (None, Some(k)) => SplitRule::PerUser { count: k },
        _ => bail!("give --test-fraction F or --per-user K"),
    };
    // Both outputs are checked first (distinct, not the input), and written only when both are ready.
    let train_out = OutputPath::check(&args.train_out, &[&args.ratings])?;
    let test_out = OutputPath::check(&args.test_out, &[&args.ratings])?;
    OutputPath::check_distinct(&[&train_out, &test_out])?;
    let text = ratings::read_text(&args.ratings)?;
    let ratings = ratings::parse_ratings(&text, &args.ratings, Fields::Ratings, IdMap::default(), IdMap::default())?;
    let test = split(&ratings, rule, args.seed);
    let lines: Vec<&str> = text.lines().collect();
    let (mut train_text, mut test_text) = (String::new(), String::new());
    if ratings.header {
        // The header is the first non-empty line.
        let header = lines.iter().find(|l| !l.trim().is_empty()).copied().unwrap_or("");
        let header = header.strip_prefix('\u{feff}').unwrap_or(header);
        for t in [&mut train_text, &mut test_text] {
            t.push_str(header);
            t.push('\n');
        }
    }
    for (r, &is_test) in ratings.entries.iter().zip(&test) {
        let line = lines[r.line as usize - 1];
        let line = line.strip_prefix('\u{feff}').unwrap_or(line).trim_end_matches('\r');
        let out = if is_test { &mut test_text } else { &mut train_text };
        out.push_str(line);
        out.push('\n');
    }
    let mut pending = Vec::new();
    for (output, text) in [(&train_out, &train_text), (&test_out, &test_text)] {
        let mut file = output.create()?;
        file.write_all(text.as_bytes()).map_err(|e| anyhow::anyhow!("{}: {e}", output.path().display()))?;
        pending.push(file);
    }
    for file in pending {
        file.commit()?;
    }
    if !args.quiet {
        let n_test = test.iter().filter(|&&t| t).count();
        eprintln!(
            "{} ratings: {} to {}, {n_test} to {}",
            test.len(),
            test.len() - n_test,
            args.train_out.display(),
            args.test_out.display()
        );
    }
    Ok(())
}

fn synthesize(args: SynthesizeArgs) -> Result<()> {
    if args.users == 0 || args.items == 0 || args.ratings == 0 {
        bail!("--users, --items and --ratings must be at least 1");
    }
    let output = OutputPath::check(&args.output, &[])?;
    let triples = rbm_recommend::synthetic::generate(args.users, args.items, args.ratings, args.seed);
    let mut bytes = Vec::new();
    rbm_recommend::synthetic::write_csv(&mut bytes, &triples)?;
    output.write_with(|w| w.write_all(&bytes))?;
    Ok(())
}

/// `rbm inspect` for a recommender model file.
pub fn inspect(path: &Path, as_json: bool) -> Result<()> {
    let model = Recommender::load(path)?;
    let components: Vec<serde_json::Value> = model
        .components
        .iter()
        .map(|c| {
            json!({
                "orientation": c.side.name(),
                "replica": c.replica,
                "inputs": c.rbm.n_inputs(),
                "levels": c.rbm.levels(),
                "hidden": c.rbm.n_hidden(),
                "conditional": c.rbm.conditioning().is_some(),
                "epochs_trained": c.epochs_trained,
            })
        })
        .collect();
    let summary = json!({
        "format": rbm_recommend::FORMAT_NAME,
        "format_version": rbm_recommend::FORMAT_VERSION,
        "orientation": model.params.orientation,
        "levels": model.levels,
        "users": model.users.len(),
        "items": model.items.len(),
        "components": components,
        "blend": model.blend,
        "global_mean": model.global_mean,
        "implicit_source": model.implicit_source,
        "params": model.params,
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    println!("recommender model: {}", path.display());
    println!(
        "ratings: levels {:?}, {} users, {} items, global mean {:.3}",
        model.levels,
        model.users.len(),
        model.items.len(),
        model.global_mean
    );
    for c in &model.components {
        println!(
            "{}-based RBM #{}: {} softmax inputs x {} levels, {} hidden{}, {} epochs",
            c.side.name(),
            c.replica + 1,
            c.rbm.n_inputs(),
            c.rbm.levels(),
            c.rbm.n_hidden(),
            if c.rbm.conditioning().is_some() { ", conditional (D)" } else { "" },
            c.epochs_trained
        );
    }
    println!("blend: intercept {:.4}, weights {:?}", model.blend.intercept, model.blend.weights);
    if let Some(source) = &model.implicit_source {
        println!("conditioning sets r: {source}");
    }
    println!("seed: {}", model.params.seed);
    Ok(())
}
