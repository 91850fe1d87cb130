//! Replays the fuzz corpora of the ratings reader (`fuzz/corpus/ratings`) and of the recommender
//! loader (`fuzz/corpus/recommender`), and every crash the fuzzer found (`fuzz/regressions/...`):
//! each input is a result or an error, never a panic. See fuzz/README.md.

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

use rbm_recommend::Recommender;
use rbm_recommend::ratings::{Fields, IdMap, parse_ratings};

const FUZZ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz");

/// The files of `fuzz/<kind>/<target>` (none when the folder does not exist), sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(Path::new(FUZZ_DIR).join(kind).join(target)) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Runs `check` on every corpus and regression file of `target`; fails naming those that panic.
fn replay(target: &str, check: impl Fn(&str) + std::panic::RefUnwindSafe) {
    let corpus = inputs("corpus", target);
    assert!(!corpus.is_empty(), "no seed files in {FUZZ_DIR}/corpus/{target}");
    let mut panicked = Vec::new();
    for path in corpus.iter().chain(&inputs("regressions", target)) {
        let data = std::fs::read(path).unwrap();
        // Like the fuzz targets: inputs that are not UTF-8 never reach the parsers.
        let Ok(text) = std::str::from_utf8(&data) else { continue };
        if catch_unwind(|| check(text)).is_err() {
            panicked.push(path.display().to_string());
        }
    }
    assert!(panicked.is_empty(), "panicked on: {panicked:?}");
}

#[test]
fn ratings_fuzz_corpus_and_regressions_do_not_panic() {
    replay("ratings", |text| {
        for fields in [Fields::Ratings, Fields::Pairs] {
            let _ = parse_ratings(text, Path::new("fuzz.csv"), fields, IdMap::default(), IdMap::default());
        }
    });
}

#[test]
fn recommender_fuzz_corpus_and_regressions_do_not_panic() {
    replay("recommender", |text| {
        let _ = Recommender::from_json(text, Path::new("fuzz.json"));
    });
}

#[test]
fn seed_recommenders_load() {
    for path in inputs("corpus", "recommender") {
        let text = std::fs::read_to_string(&path).unwrap();
        Recommender::from_json(&text, &path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
