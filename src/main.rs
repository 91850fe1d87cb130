//! `rbm`: Restricted Boltzmann Machines from CSV files. A thin layer over rbm-core and
//! rbm-recommend: argument parsing, CSV and JSON input/output, progress and exit codes
//! (0 success, 1 anomalies found when asked, 2 any error).

mod cli;
mod commands;
mod plot;
mod recommend;
mod table;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Runs the command and says which exit code it earned.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Train(a) => commands::train(a),
        Command::Score(a) => commands::score(a),
        Command::Eval(a) => commands::eval(a),
        Command::Sample(a) => commands::sample(a),
        Command::Inspect(a) => commands::inspect(a),
        Command::Recommend(c) => recommend::run(c),
        Command::Plot(c) => plot::run(c),
    }
    .map(|()| ExitCode::SUCCESS)
    .or_else(|e| match e.downcast::<commands::AnomaliesFound>() {
        // Exit code 1 is reserved for "anomalies found", when asked for.
        Ok(_) => Ok(ExitCode::from(1)),
        Err(e) => Err(e),
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse(); // usage errors exit 2
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            // Each cause once: an error whose text already holds its source's is not repeated.
            let mut message = String::new();
            for cause in e.chain().map(|c| c.to_string()) {
                if !message.contains(&cause) {
                    message += if message.is_empty() { "" } else { ": " };
                    message += &cause;
                }
            }
            eprintln!("rbm: {message}");
            ExitCode::from(2)
        }
    }
}
