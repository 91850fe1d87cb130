//! Replays the CSV-reader fuzz corpus (`fuzz/corpus/csv_table`) and every crash the fuzzer found
//! (`fuzz/regressions/csv_table`) through the binary's table reader: each input is a table or an
//! error, never a panic. See fuzz/README.md.
//!
//! The reader lives in the binary crate, which has no library target, so it is included here by
//! path, as the `csv_table` fuzz target does (its own unit tests are then compiled here too).

#[allow(dead_code)]
#[path = "../src/table.rs"]
mod table;

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

use table::{ColumnSpec, TableReader, read_all, read_all_detecting, read_rest};

const FUZZ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz");

/// The files of `fuzz/<kind>/csv_table` (none when the folder does not exist), sorted.
fn inputs(kind: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(Path::new(FUZZ_DIR).join(kind).join("csv_table")) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// What the `csv_table` fuzz target does with one input (written to a file first).
fn read_every_way(path: &str) {
    let plain = ColumnSpec::default();
    let _ = read_all_detecting(path, &plain, &[]);
    let labelled = ColumnSpec { label: Some("label".into()), ignore: vec!["2".into()], ..ColumnSpec::default() };
    let _ = read_all_detecting(path, &labelled, &["1".into()]);
    let categorical = ColumnSpec { categorical: vec!["1".into()], ..ColumnSpec::default() };
    let _ = read_all(path, &categorical);
    if let Ok(mut reader) = TableReader::open(path, &plain) {
        let _ = reader.feature_names().len();
        let _ = read_rest(&mut reader);
    }
}

#[test]
fn csv_fuzz_corpus_and_regressions_do_not_panic() {
    let corpus = inputs("corpus");
    assert!(!corpus.is_empty(), "no seed files in {FUZZ_DIR}/corpus/csv_table");
    let dir = tempfile::tempdir().unwrap();
    let mut panicked = Vec::new();
    for (i, path) in corpus.iter().chain(&inputs("regressions")).enumerate() {
        // A copy, so that the reader sees exactly the bytes the fuzzer wrote (and no `-`).
        let copy = dir.path().join(format!("input-{i}.csv"));
        std::fs::copy(path, &copy).unwrap();
        let copy = copy.to_str().unwrap().to_string();
        if catch_unwind(|| read_every_way(&copy)).is_err() {
            panicked.push(path.display().to_string());
        }
    }
    assert!(panicked.is_empty(), "panicked on: {panicked:?}");
}
