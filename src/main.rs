//! `rbm`: Restricted Boltzmann Machines from CSV files. A thin layer over rbm-core: argument
//! parsing, CSV and JSON input/output, progress and exit codes (0 success, 2 any error).

mod commands;
mod recommend;
mod table;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Restricted Boltzmann Machines for tabular data.
#[derive(Parser, Debug)]
#[command(name = "rbm", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    Recommend(recommend::RecommendCommand),
}

/// Kind of visible units.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Visible {
    /// Binary data in [0, 1].
    Bernoulli,
    /// Real-valued data (standardised per column).
    Gaussian,
}

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

/// Flags shared by commands that read a data table.
#[derive(Args, Debug, Clone)]
pub struct Columns {
    /// Column (name or 1-based number) holding labels; kept out of the features.
    #[arg(long)]
    label_column: Option<String>,
    /// Comma-separated columns (names or 1-based numbers) to leave out.
    #[arg(long, value_delimiter = ',')]
    ignore_columns: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// CSV file of training rows (`-` for standard input).
    #[arg(long)]
    input: String,
    /// Where to write the model (JSON, written atomically).
    #[arg(long)]
    output: std::path::PathBuf,
    /// Visible unit kind.
    #[arg(long, value_enum, default_value = "bernoulli")]
    visible: Visible,
    /// Hidden units [default: from the units and data shape, see docs/cli.md].
    #[arg(long)]
    hidden: Option<usize>,
    /// Passes over the data [default: from the data shape].
    #[arg(long)]
    epochs: Option<usize>,
    /// Rows per mini-batch [default: from the data shape].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate [default: 0.05 Bernoulli, 0.001 Gaussian].
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Constant momentum [default: Bernoulli Hinton's 0.5 for 5 epochs then 0.9; Gaussian 0.5].
    #[arg(long)]
    momentum: Option<f64>,
    /// L2 weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Gibbs steps per update (k of CD-k).
    #[arg(long, default_value_t = 1)]
    cd_k: usize,
    /// Persistent CD (PCD) with as many chains as the batch size (same as --method pcd).
    #[arg(long)]
    persistent: bool,
    /// Training method: auto is CD for Bernoulli units and PCD for Gaussian units.
    #[arg(long, value_enum, default_value = "auto")]
    method: Method,
    /// Gaussian units: compress heavy-tailed columns with a signed log before standardising
    /// [default: true].
    #[arg(long)]
    compress_tails: Option<bool>,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    columns: Columns,
    /// Validation CSV, for the per-epoch free-energy gap.
    #[arg(long)]
    validation: Option<String>,
    /// Store an anomaly threshold: the (1 - F) quantile of the training rows' free energies.
    #[arg(long)]
    contamination: Option<f64>,
    /// Worker threads [default: all cores]; results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Write a JSON training report here.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    /// No progress or per-epoch output.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Model file.
    #[arg(long)]
    model: std::path::PathBuf,
    /// CSV file of rows to score (`-` for standard input).
    #[arg(long)]
    input: String,
    /// Output CSV [default: standard output].
    #[arg(long)]
    output: Option<std::path::PathBuf>,
    /// Free-energy threshold [default: the model's stored threshold].
    #[arg(long)]
    threshold: Option<f64>,
    /// Exit with code 1 when any row is flagged as an anomaly (after writing every score).
    #[arg(long)]
    fail_on_anomaly: bool,
    #[command(flatten)]
    columns: Columns,
    /// No chatter on standard error.
    #[arg(long)]
    quiet: bool,
}

/// How to compute the log-likelihood in `eval`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogLikelihood {
    /// Exact, by enumerating the hidden states (at most 25 hidden units).
    Exact,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model file.
    #[arg(long)]
    model: std::path::PathBuf,
    /// CSV file to evaluate on.
    #[arg(long)]
    input: String,
    #[command(flatten)]
    columns: Columns,
    /// Label value that marks an anomaly (any other value is normal).
    #[arg(long, default_value = "1")]
    positive_label: String,
    /// Also compute log Z and the mean log-likelihood.
    #[arg(long, value_enum)]
    log_likelihood: Option<LogLikelihood>,
    /// No chatter on standard error.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Model file.
    #[arg(long)]
    model: std::path::PathBuf,
    /// Number of samples (one Gibbs chain each).
    #[arg(long)]
    count: usize,
    /// Gibbs steps from the random start (burn-in).
    #[arg(long, default_value_t = 1000)]
    gibbs_steps: usize,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output CSV [default: standard output].
    #[arg(long)]
    output: Option<std::path::PathBuf>,
    /// No chatter on standard error.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Model file.
    #[arg(long)]
    model: std::path::PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Accepted for uniformity; inspect prints only its result.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // usage errors exit 2
    let result = match cli.command {
        Command::Train(a) => commands::train(a),
        Command::Score(a) => {
            let fail_on_anomaly = a.fail_on_anomaly;
            match commands::score(a) {
                // Exit code 1 is reserved for "anomalies found", when asked for.
                Ok(flagged) if fail_on_anomaly && flagged > 0 => return ExitCode::from(1),
                other => other.map(|_| ()),
            }
        }
        Command::Eval(a) => commands::eval(a),
        Command::Sample(a) => commands::sample(a),
        Command::Inspect(a) => commands::inspect(a),
        Command::Recommend(c) => recommend::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            let message: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("rbm: {}", message.join(": "));
            ExitCode::from(2)
        }
    }
}
