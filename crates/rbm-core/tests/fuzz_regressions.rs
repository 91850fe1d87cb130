//! Replays the model-loader fuzz corpus (`fuzz/corpus/model`) and every crash the fuzzer found
//! (`fuzz/regressions/model`): loading any of them, and scoring with whatever loads, is a result
//! or an error, never a panic. See fuzz/README.md.

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

use nalgebra::DMatrix;
use rbm_core::Model;

const FUZZ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz");

/// The files of `fuzz/<kind>/<target>` (none when the folder does not exist), sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(Path::new(FUZZ_DIR).join(kind).join(target)) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// What the `model` fuzz target does with one input.
fn load_and_score(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(model) = Model::from_json(text, Path::new("fuzz.json")) {
        let zeros = DMatrix::<f32>::zeros(model.columns.len(), 2);
        let _ = model.free_energy(&zeros);
        let _ = model.column_surprise(&zeros);
    }
}

#[test]
fn model_fuzz_corpus_and_regressions_do_not_panic() {
    let corpus = inputs("corpus", "model");
    assert!(!corpus.is_empty(), "no seed files in {FUZZ_DIR}/corpus/model");
    let mut panicked = Vec::new();
    for path in corpus.iter().chain(&inputs("regressions", "model")) {
        let data = std::fs::read(path).unwrap();
        if catch_unwind(|| load_and_score(&data)).is_err() {
            panicked.push(path.display().to_string());
        }
    }
    assert!(panicked.is_empty(), "panicked on: {panicked:?}");
}

#[test]
fn seed_models_load() {
    for path in inputs("corpus", "model") {
        let text = std::fs::read_to_string(&path).unwrap();
        let model = Model::from_json(&text, &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let zeros = DMatrix::<f32>::zeros(model.columns.len(), 2);
        model.free_energy(&zeros).unwrap();
    }
}
