//! The model loader on arbitrary and on damaged model files: `Ok` or a typed error, never a
//! panic; a damaged file that still loads can be used.

mod common;

use std::ops::ControlFlow;
use std::path::Path;

use common::*;
use proptest::prelude::*;
use rbm_core::{ColumnEncoding, Model, TrainingParams, VisibleSpec};

/// A small mixed model with every optional block (standardisation, baseline, histograms,
/// threshold, names) as JSON.
fn model_json() -> String {
    let columns = vec![
        ColumnEncoding::GAUSSIAN,
        ColumnEncoding::Categorical { levels: vec!["a".into(), "b".into()] },
        ColumnEncoding::BERNOULLI,
    ];
    let mut r = rng(1);
    let data = nalgebra::DMatrix::from_fn(3, 40, |i, s| match i {
        0 => uniform(&mut r, 2.0),
        1 => (s % 2) as f32,
        _ => ((s / 2) % 2) as f32,
    });
    let params = TrainingParams {
        epochs: 2,
        batch_size: 10,
        marginal_histograms: true,
        contamination: Some(0.1),
        ..TrainingParams::new(VisibleSpec::Columns(columns), 3)
    };
    let (model, _) = Model::fit(params.check().unwrap(), &data, None, |_| ControlFlow::Continue(())).unwrap();
    model.with_feature_names(vec!["x".into(), "c".into(), "b".into()]).unwrap().to_json()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_refused_cleanly(text in "\\PC{0,200}") {
        let _ = Model::from_json(&text, Path::new("any.json"));
    }

    /// A valid file with a span replaced by arbitrary text, or cut short.
    #[test]
    fn damaged_files_are_refused_or_usable(start in 0usize..4000, len in 0usize..12, patch in "\\PC{0,8}", cut in any::<bool>()) {
        let text = model_json();
        let start = start.min(text.len());
        let end = (start + len).min(text.len());
        let (Some(head), Some(tail)) = (text.get(..start), text.get(end..)) else { return Ok(()) };
        let damaged = if cut { head.to_string() } else { format!("{head}{patch}{tail}") };
        if let Ok(model) = Model::from_json(&damaged, Path::new("damaged.json")) {
            let data = nalgebra::DMatrix::from_column_slice(3, 2, &[0.5, 1.0, 0.0, -1.0, 0.0, 1.0]);
            let _ = model.free_energy(&data);
            let _ = model.column_surprise(&data);
        }
    }
}
