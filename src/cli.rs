//! The command line: argument structs and their documentation (what `--help` prints). No
//! behaviour here; `commands` and `recommend` hold the handlers.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Restricted Boltzmann Machines for tabular data.
#[derive(Parser, Debug)]
#[command(name = "rbm", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an RBM on a CSV file and save it as JSON.
    Train(TrainArgs),
    /// Score rows by free energy: writes `row,free_energy,anomaly` per input row.
    Score(ScoreArgs),
    /// Evaluate a model on a CSV file: prints one JSON object.
    Eval(EvalArgs),
    /// Draw samples from a model by Gibbs sampling.
    Sample(SampleArgs),
    /// Summarise a model file.
    Inspect(InspectArgs),
    /// Recommendations with the conditional RBM for collaborative filtering.
    #[command(subcommand)]
    Recommend(crate::recommend::RecommendCommand),
    /// Pictures (PNG): a model's filters, training curves, free-energy histograms.
    #[command(subcommand)]
    Plot(crate::plot::PlotCommand),
}

/// `--visible`: `auto`, or the name of any unit kind a column can be (the library's list, so a
/// new kind needs nothing here).
fn visible_values() -> clap::builder::PossibleValuesParser {
    let kinds = rbm_core::VisibleKind::ALL.iter().filter(|k| k.is_elementwise()).map(|k| k.name());
    clap::builder::PossibleValuesParser::new(std::iter::once(AUTO).chain(kinds))
}

/// The `--visible` value that chooses a kind per column.
pub const AUTO: &str = "auto";

/// A seed: a whole number from 0 to 2^64 - 1, with a message that says so (clap's own for `-1`
/// was only "unexpected argument").
pub fn parse_seed(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| format!("{text:?} is not a seed: give a whole number from 0 to {}", u64::MAX))
}

/// `train --contamination` when not given: pyod's default, so that every model can flag rows.
pub const DEFAULT_CONTAMINATION: f64 = 0.1;

/// Training method.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Method {
    /// CD for Bernoulli units, PCD for Gaussian units.
    Auto,
    /// Contrastive divergence, chains restarted at the data.
    Cd,
    /// Persistent contrastive divergence.
    Pcd,
}

/// How PCD's persistent chains are advanced.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SamplerArg {
    /// Block Gibbs steps; each update first draws the chains' hidden units afresh under the new
    /// parameters.
    Gibbs,
    /// Block Gibbs steps from the hidden units the chains ended the last update with, as
    /// scikit-learn's BernoulliRBM does (implies PCD): one product fewer per update.
    KeptHidden,
    /// Parallel tempering (implies PCD).
    Pt,
}

/// Flags shared by commands that read a data table.
#[derive(Args, Debug, Clone)]
pub struct Columns {
    /// Column (name or 1-based number) holding labels; kept out of the features.
    #[arg(long)]
    pub label_column: Option<String>,
    /// Comma-separated columns (names or 1-based numbers) to leave out.
    #[arg(long, value_delimiter = ',')]
    pub ignore_columns: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// CSV file of training rows (`-` for standard input).
    #[arg(long)]
    pub input: String,
    /// Where to write the model (JSON, written atomically).
    #[arg(long)]
    pub output: std::path::PathBuf,
    /// Visible unit kind of every column (bernoulli: values in [0, 1]; gaussian: real values,
    /// standardised), or auto to choose per column: text columns categorical (softmax units), 0/1
    /// columns Bernoulli, other numeric columns Gaussian.
    #[arg(long, default_value = "bernoulli", value_parser = visible_values())]
    pub visible: String,
    /// Per-column kinds overriding --visible: NAME=KIND pairs, comma-separated, KIND one of
    /// bernoulli, gaussian, categorical (names or 1-based numbers).
    #[arg(long, value_delimiter = ',')]
    pub column_kinds: Vec<String>,
    /// Hidden units [default: from the units and data shape, see docs/cli.md].
    #[arg(long, allow_negative_numbers = true)]
    pub hidden: Option<usize>,
    /// Passes over the data [default: from the data shape].
    #[arg(long, allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    /// Rows per mini-batch [default: from the data shape].
    #[arg(long, allow_negative_numbers = true)]
    pub batch_size: Option<usize>,
    /// Learning rate [default: 0.05 annealed to 0 without Gaussian units, 0.001 with them].
    #[arg(long, allow_negative_numbers = true)]
    pub learning_rate: Option<f64>,
    /// Constant momentum [default: 0 without Gaussian units, 0.5 with them].
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// L2 weight decay [default: 0 without Gaussian units, 1e-4 with them].
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Gibbs steps per update (k of CD-k).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub cd_k: usize,
    /// Persistent CD (PCD) with as many chains as the batch size (same as --method pcd).
    #[arg(long)]
    pub persistent: bool,
    /// Training method: auto is centred PCD without Gaussian units, PCD with them; cd or pcd
    /// choose plain CD or PCD (add --centered for centring).
    #[arg(long, value_enum, default_value = "auto")]
    pub method: Method,
    /// Anneal the learning rate linearly to zero over the epochs [default: true with --method auto
    /// and no Gaussian units, else false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub anneal: Option<bool>,
    /// Gaussian units: learn each unit's standard deviation (kept within 0.05 to 2 of the
    /// standardised column's), so that tight relations between columns can be modelled
    /// [default: true with Gaussian units].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub learn_variance: Option<bool>,
    /// How the persistent chains are advanced: gibbs, kept-hidden (Gibbs from the hidden units
    /// kept from the last update, implies PCD), or pt (parallel tempering, implies PCD).
    #[arg(long, value_enum, default_value = "gibbs")]
    pub sampler: SamplerArg,
    /// Parallel tempering: inverse temperatures, evenly spaced from 1 to 0 [default: 10].
    #[arg(long, allow_negative_numbers = true)]
    pub temperatures: Option<usize>,
    /// Standard deviation of the initial weights (normal, mean 0).
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub weight_scale: f64,
    /// Centred gradients (Melchior et al. 2016): offsets at the visible data means and a running
    /// mean of the hidden probabilities; the saved model is in the ordinary parameterisation
    /// [default: true with --method auto and no Gaussian units, else false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub centered: Option<bool>,
    /// Gaussian units: compress heavy-tailed columns with a signed log before standardising
    /// [default: true].
    #[arg(long)]
    pub compress_tails: Option<bool>,
    /// Gaussian units: multiply the RBM by a histogram density of each Gaussian column, fitted
    /// on the training rows, so that the free energy also sees each column's own shape
    /// (docs/anomaly.md) [default: true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub marginal_histograms: Option<bool>,
    /// Random seed.
    #[arg(long, default_value_t = 0, value_parser = parse_seed, allow_negative_numbers = true)]
    pub seed: u64,
    #[command(flatten)]
    pub columns: Columns,
    /// Validation CSV, for the per-epoch free-energy gap.
    #[arg(long)]
    pub validation: Option<String>,
    /// The expected fraction F of anomalies in the training rows: the model stores the anomaly
    /// threshold at the (1 - F) quantile of their free energies, which `score` and `eval` use
    /// (0 puts it at the largest training free energy).
    #[arg(long, default_value_t = DEFAULT_CONTAMINATION, allow_negative_numbers = true)]
    pub contamination: f64,
    /// Worker threads [default: all cores]; results do not depend on it.
    #[arg(long, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Write a JSON training report here.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// No progress or per-epoch output.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Model file.
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// CSV file of rows to score (`-` for standard input).
    #[arg(long)]
    pub input: String,
    /// Output CSV [default: standard output].
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
    /// Free-energy threshold [default: the model's stored threshold].
    #[arg(long, allow_negative_numbers = true)]
    pub threshold: Option<f64>,
    /// Exit with code 1 when any row is flagged as an anomaly (after writing every score).
    #[arg(long)]
    pub fail_on_anomaly: bool,
    /// Add the N columns that make each row most anomalous, as columns explain_1 .. explain_N
    /// holding NAME=SURPRISE: the column's negative log-likelihood given the row's other
    /// columns under the model, in nats (standardised units for Gaussian columns), largest first.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub explain: Option<usize>,
    #[command(flatten)]
    pub columns: Columns,
    /// No chatter on standard error.
    #[arg(long)]
    pub quiet: bool,
}

/// How to compute the log-likelihood in `eval`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogLikelihood {
    /// Exact, by enumerating the hidden states (at most 25 hidden units).
    Exact,
    /// Annealed importance sampling from a base-rate model fitted to the input's marginals
    /// (tends to under-estimate log Z: an optimistic log-likelihood).
    Ais,
    /// Reverse AIS from Gibbs chains started at the input rows (tends to over-estimate log Z: a
    /// pessimistic log-likelihood, when the chains reach the model's distribution).
    ReverseAis,
    /// Both AIS and reverse AIS: the AIS figures at the top level and the bracket
    /// `mean_log_likelihood_bracket` [reverse, forward].
    AisBracket,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model file.
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// CSV file to evaluate on.
    #[arg(long)]
    pub input: String,
    #[command(flatten)]
    pub columns: Columns,
    /// Label value that marks an anomaly; any other value is normal [default: labels must be 0
    /// or 1, and 1 marks an anomaly].
    #[arg(long)]
    pub positive_label: Option<String>,
    /// Also compute log Z and the mean log-likelihood.
    #[arg(long, value_enum)]
    pub log_likelihood: Option<LogLikelihood>,
    /// AIS: independent annealing runs.
    #[arg(long, default_value_t = rbm_core::ais::AisSettings::DEFAULT_RUNS, allow_negative_numbers = true)]
    pub ais_runs: usize,
    /// AIS: inverse temperatures on the path from 0 to 1, spaced like Salakhutdinov & Murray's
    /// schedule (14501 is theirs exactly).
    #[arg(long, default_value_t = rbm_core::ais::AisSettings::DEFAULT_BETAS, allow_negative_numbers = true)]
    pub ais_betas: usize,
    /// Reverse AIS: Gibbs steps from the input rows before annealing.
    #[arg(long, default_value_t = rbm_core::ais::AisSettings::DEFAULT_BURN_IN, allow_negative_numbers = true)]
    pub ais_burn_in: usize,
    /// AIS: random seed.
    #[arg(long, default_value_t = 0, value_parser = parse_seed, allow_negative_numbers = true)]
    pub seed: u64,
    /// Also draw the ROC and precision-recall curves into this PNG file (needs --label-column).
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
    /// No chatter on standard error.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Model file.
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// Number of samples (one Gibbs chain each).
    #[arg(long, allow_negative_numbers = true)]
    pub count: usize,
    /// Gibbs steps from the random start (burn-in).
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true)]
    pub gibbs_steps: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0, value_parser = parse_seed, allow_negative_numbers = true)]
    pub seed: u64,
    /// Output CSV [default: standard output]; a name ending in .png draws the samples of an image
    /// model as a grid of pictures instead.
    #[arg(long)]
    pub output: Option<std::path::PathBuf>,
    /// PNG output: image shape HxW [default: square, from the number of visible units].
    #[arg(long)]
    pub shape: Option<String>,
    /// No chatter on standard error.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Model file.
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Accepted for uniformity; inspect prints only its result.
    #[arg(long)]
    pub quiet: bool,
}
