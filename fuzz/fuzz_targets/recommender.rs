//! Recommender model loader: `rbm_recommend::Recommender::from_json`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = rbm_recommend::Recommender::from_json(text, Path::new("fuzz.json"));
});
