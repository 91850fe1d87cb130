//! Running the `rbm` binary from integration tests: its exit code and both output streams.
#![allow(dead_code)] // each test file uses its own part of these helpers

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// What one run of the binary gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `rbm args` in `dir` with extra environment variables and, when given, `stdin` as input.
pub fn rbm_in(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbm"));
    cmd.args(args).current_dir(dir).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run rbm");
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs `rbm args` in `dir`.
pub fn rbm(dir: &Path, args: &[&str]) -> Run {
    rbm_in(dir, args, &[], None)
}

/// The run, after checking that it succeeded.
pub fn ok(run: Run) -> Run {
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    run
}

/// Checks that the run failed with exit code 2 and a message containing every one of `expect`.
pub fn fails(run: Run, expect: &[&str]) {
    assert_eq!(run.code, 2, "expected exit 2; stdout {} stderr {}", run.stdout, run.stderr);
    for e in expect {
        assert!(run.stderr.contains(e), "stderr {:?} should contain {e:?}", run.stderr);
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}
