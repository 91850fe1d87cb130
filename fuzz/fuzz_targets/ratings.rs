//! Ratings reader: `rbm_recommend::ratings::parse_ratings`, reading each input both as ratings
//! and as pairs.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rbm_recommend::ratings::{Fields, IdMap, parse_ratings};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for fields in [Fields::Ratings, Fields::Pairs] {
        let _ = parse_ratings(text, Path::new("fuzz.csv"), fields, IdMap::default(), IdMap::default());
    }
});
