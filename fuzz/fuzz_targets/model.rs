//! Model loader: `rbm_core::Model::from_json`, then scoring a zero matrix with a loaded model.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nalgebra::DMatrix;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(model) = rbm_core::Model::from_json(text, Path::new("fuzz.json")) {
        let zeros = DMatrix::<f32>::zeros(model.columns.len(), 2);
        let _ = model.free_energy(&zeros);
        let _ = model.column_surprise(&zeros);
    }
});
