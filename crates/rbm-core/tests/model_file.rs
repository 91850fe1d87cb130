//! The model file: round trips, atomic writes, and refusal of corrupt or absurd files.

mod common;

use std::ops::ControlFlow;
use std::path::Path;

use common::*;
use rbm_core::{ColumnEncoding, MAX_MODEL_FILE_BYTES, Model, RbmError, TrainingParams, VisibleKind, VisibleSpec};

fn trained(kind: VisibleKind) -> Model {
    let mut r = rng(3);
    let data = nalgebra::DMatrix::from_fn(6, 50, |_, _| if uniform(&mut r, 1.0) > 0.0 { 1.0 } else { 0.0 });
    // Gaussian models carry histogram marginals (ignored by other kinds).
    let params = TrainingParams { epochs: 2, marginal_histograms: true, ..TrainingParams::new(kind, 4) };
    let (mut model, _) = Model::fit(params.check().unwrap(), &data, None, |_| ControlFlow::Continue(())).unwrap();
    model.anomaly_threshold = Some(-1.25);
    model.feature_names = (0..6).map(|i| format!("f{i}")).collect();
    model
}

fn reason_of(err: RbmError) -> String {
    match err {
        RbmError::ModelFile { reason, .. } => reason,
        other => panic!("expected a model-file error, got {other}"),
    }
}

#[test]
fn save_then_load_gives_the_same_model_for_both_unit_kinds() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [VisibleKind::Bernoulli, VisibleKind::Gaussian] {
        let model = trained(kind);
        let path = dir.path().join(format!("{}.json", kind.name()));
        model.save(&path).unwrap();
        let loaded = Model::load(&path).unwrap();
        assert_eq!(loaded, model);
        assert_eq!(loaded.provenance.training.as_ref().unwrap().seed, 0);
    }
}

#[test]
fn tail_compression_survives_a_round_trip() {
    let data =
        nalgebra::DMatrix::from_fn(3, 300, |i, s| if i == 0 { (s as f32 / 25.0).exp() } else { (s % 11) as f32 });
    let params =
        TrainingParams { epochs: 2, compress_heavy_tails: true, ..TrainingParams::new(VisibleKind::Gaussian, 4) };
    let (model, _) = Model::fit(params.check().unwrap(), &data, None, |_| ControlFlow::Continue(())).unwrap();
    let s = model.standardization.as_ref().unwrap();
    assert!(s.compress[0].is_some() && s.compress[1].is_none(), "{:?}", s.compress);
    let loaded = Model::from_json(&model.to_json(), Path::new("m.json")).unwrap();
    assert_eq!(loaded, model);
    assert_eq!(loaded.free_energy(&data).unwrap(), model.free_energy(&data).unwrap());
}

#[test]
fn saving_replaces_the_file_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    std::fs::write(&path, "old contents").unwrap();
    let model = trained(VisibleKind::Bernoulli);
    model.save(&path).unwrap();
    assert_eq!(Model::load(&path).unwrap(), model);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("model.json")]);
}

#[test]
fn saving_into_a_missing_directory_is_an_io_error_naming_the_path() {
    let model = trained(VisibleKind::Bernoulli);
    let err = model.save(Path::new("/nonexistent-dir-for-rbm-tests/model.json")).unwrap_err();
    assert!(matches!(err, RbmError::Io { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent-dir-for-rbm-tests/model.json"));
}

#[test]
fn truncated_or_garbage_files_are_refused_with_a_location() {
    let text = trained(VisibleKind::Bernoulli).to_json();
    for cut in [0, 1, text.len() / 3, text.len() - 2] {
        let reason = reason_of(Model::from_json(&text[..cut], Path::new("m.json")).unwrap_err());
        assert!(reason.contains("line"), "cut at {cut}: {reason}");
    }
    let reason = reason_of(Model::from_json("\u{0}\u{1}binary", Path::new("m.json")).unwrap_err());
    assert!(reason.contains("JSON"), "{reason}");
}

fn edit(model: &Model, f: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(&model.to_json()).unwrap();
    f(&mut value);
    value.to_string()
}

#[test]
fn inconsistent_files_are_refused_with_the_reason() {
    let model = trained(VisibleKind::Gaussian);
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|v| v["version"] = 99.into()), "version 99"),
        (Box::new(|v| v["format"] = "something-else".into()), "format"),
        (Box::new(|v| v["n_visible"] = 1_000_000_000_000u64.into()), "the columns make 6 visible units"),
        (Box::new(|v| v["columns"].as_array_mut().unwrap().truncate(5)), "the columns make 5 visible units"),
        (Box::new(|v| v["n_hidden"] = 0.into()), "at least 1"),
        (Box::new(|v| v["weights"][2].as_array_mut().unwrap().pop().map(|_| ()).unwrap()), "weights row 2"),
        (Box::new(|v| v["weights"][1][1] = serde_json::Value::Null), "JSON"),
        (Box::new(|v| v["visible_bias"].as_array_mut().unwrap().push(0.5.into())), "visible_bias has 7"),
        (Box::new(|v| v["hidden_bias"] = serde_json::json!([])), "hidden_bias has 0"),
        (Box::new(|v| v["standardization"]["scale"][0] = (-1.0).into()), "scale"),
        (Box::new(|v| v["standardization"] = serde_json::Value::Null), "gaussian visible units need"),
        (Box::new(|v| v["columns"][0] = serde_json::json!({"kind": "softmax"})), "JSON"),
        (
            Box::new(|v| v["columns"][0] = serde_json::json!({"kind": "categorical", "levels": ["a", "a"]})),
            "level \"a\" twice",
        ),
        (Box::new(|v| v["visible"] = "gaussian".into()), "unknown field"),
        (Box::new(|v| v["weights"][0][0] = 1e39.into()), "weights[0] is not finite"),
        (Box::new(|v| v["feature_names"] = serde_json::json!(["a"])), "feature_names has 1"),
        (Box::new(|v| v["surprise"] = 1.into()), "unknown field"),
        (Box::new(|v| v["baseline_bias"].as_array_mut().unwrap().truncate(2)), "baseline_bias has 2"),
        (Box::new(|v| v["marginal_histograms"].as_array_mut().unwrap().truncate(5)), "marginal_histograms has 5"),
        (Box::new(|v| v["marginal_histograms"][0]["width"] = 0.into()), "width not positive"),
        (Box::new(|v| v["marginal_histograms"][1]["log_density"] = serde_json::json!([])), "no bins"),
        (Box::new(|v| v["marginal_histograms"][2]["bins"] = 3.into()), "unknown field"),
        (Box::new(|v| v["baseline_scale"] = serde_json::json!([1, 1, 1, 1, 1, 0])), "baseline_scale holds"),
        (
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("baseline_bias");
                v["baseline_scale"] = serde_json::json!([1, 1, 1, 1, 1, 2]);
            }),
            "baseline_scale without baseline_bias",
        ),
        (Box::new(|v| v["standardization"]["compress"] = serde_json::json!([[0.0, 1.0]])), "compress has 1"),
        (
            Box::new(|v| {
                v["standardization"]["compress"] = serde_json::json!([[0.0, -1.0], null, null, null, null, null])
            }),
            "non-positive spread",
        ),
    ];
    for (change, expected) in cases {
        let text = edit(&model, change);
        let reason = reason_of(Model::from_json(&text, Path::new("m.json")).unwrap_err());
        assert!(reason.contains(expected), "expected {expected:?} in {reason:?}");
    }
}

#[test]
fn oversized_files_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.json");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(MAX_MODEL_FILE_BYTES + 1).unwrap(); // sparse: no disk space used
    let reason = reason_of(Model::load(&path).unwrap_err());
    assert!(reason.contains("more than"), "{reason}");
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let err = Model::load(Path::new("no-such-model.json")).unwrap_err();
    assert!(matches!(err, RbmError::Io { .. }) && err.to_string().contains("no-such-model.json"), "{err}");
}

#[test]
fn prepare_checks_feature_count_and_values_against_the_model() {
    let model = trained(VisibleKind::Bernoulli);
    let wrong = nalgebra::DMatrix::<f32>::zeros(5, 3);
    assert!(matches!(model.prepare(&wrong).unwrap_err(), RbmError::ShapeMismatch { .. }));
    let mut bad = nalgebra::DMatrix::<f32>::zeros(6, 3);
    bad[(4, 2)] = 0.5;
    assert!(model.prepare(&bad).is_ok(), "fractional values in [0, 1] are allowed");
    bad[(4, 2)] = -0.5;
    assert!(matches!(model.prepare(&bad).unwrap_err(), RbmError::InvalidValue { row: 2, column: 4, .. }));
}

/// A mixed model: Gaussian, categorical (3 levels) and Bernoulli columns.
fn trained_mixed() -> Model {
    let columns = vec![
        ColumnEncoding::GAUSSIAN,
        ColumnEncoding::Categorical { levels: vec!["red".into(), "green".into(), "blue".into()] },
        ColumnEncoding::BERNOULLI,
    ];
    let mut r = rng(5);
    let data = nalgebra::DMatrix::from_fn(3, 60, |i, s| match i {
        0 => uniform(&mut r, 3.0) + s as f32 * 0.01,
        1 => (s % 3) as f32,
        _ => (s % 2) as f32,
    });
    let params = TrainingParams { epochs: 2, ..TrainingParams::new(VisibleSpec::Columns(columns), 4) };
    let (model, _) = Model::fit(params.check().unwrap(), &data, None, |_| ControlFlow::Continue(())).unwrap();
    model.with_feature_names(vec!["size".into(), "colour".into(), "member".into()]).unwrap()
}

#[test]
fn a_mixed_model_round_trips_with_its_levels() {
    let model = trained_mixed();
    assert_eq!(model.rbm.n_visible(), 5);
    let text = model.to_json();
    assert!(text.contains("\"green\""), "level names are stored");
    let loaded = Model::from_json(&text, Path::new("m.json")).unwrap();
    assert_eq!(loaded, model);
    // The standardisation is the identity on the categorical and Bernoulli columns.
    let s = loaded.standardization.as_ref().unwrap();
    assert_eq!((s.mean[1], s.scale[1], s.mean[2], s.scale[2]), (0.0, 1.0, 0.0, 1.0));
    let edited = edit(&model, |v| v["standardization"]["scale"][1] = 2.0.into());
    let reason = reason_of(Model::from_json(&edited, Path::new("m.json")).unwrap_err());
    assert!(reason.contains("not Gaussian"), "{reason}");
}

#[test]
fn version_1_files_are_read_as_one_kind_for_every_column() {
    let model = trained(VisibleKind::Bernoulli);
    let v1 = edit(&model, |v| {
        let map = v.as_object_mut().unwrap();
        map.remove("columns");
        // Version 1 files predate the stored baseline.
        map.remove("baseline_bias");
        map.insert("visible".into(), "bernoulli".into());
        map.insert("version".into(), 1.into());
    });
    let loaded = Model::from_json(&v1, Path::new("old.json")).unwrap();
    assert_eq!(loaded, Model { baseline_bias: None, ..model });
    let bad = v1.replace("\"bernoulli\"", "\"softmax\"");
    let reason = reason_of(Model::from_json(&bad, Path::new("old.json")).unwrap_err());
    assert!(reason.contains("version 1 files hold bernoulli or gaussian"), "{reason}");
}

#[test]
fn file_header_reads_format_and_version_from_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    trained(VisibleKind::Bernoulli).save(&path).unwrap();
    let header = rbm_core::file_header(&path).unwrap().unwrap();
    assert_eq!((header.format.as_str(), header.version), (rbm_core::FORMAT_NAME, Some(2)));
    std::fs::write(&path, "[1, 2, 3]").unwrap();
    assert_eq!(rbm_core::file_header(&path).unwrap(), None);
    // A file with the fields in another order still loads (its header is parsed in full).
    let model = trained(VisibleKind::Bernoulli);
    let text = model.to_json().replacen("\"version\": 2,", "", 1);
    let text = format!("{}, \"version\": 2}}", text.trim_end().strip_suffix('}').unwrap());
    std::fs::write(&path, &text).unwrap();
    let header = rbm_core::file_header(&path).unwrap().unwrap();
    assert_eq!(header.version, None, "the version is not the field after the format");
    assert_eq!(Model::load(&path).unwrap(), model);
}

#[test]
fn the_model_and_its_baseline_add_the_same_histogram_marginals() {
    // Both scores are the product of an RBM (or the baseline's visible terms) with the histogram
    // experts: `-log p_j(v_j)` is added, with the same sign, to each.
    let model = trained(VisibleKind::Gaussian);
    let marginals = model.marginals.clone().expect("Gaussian models carry histogram marginals");
    let mut without = model.clone();
    without.marginals = None;
    let raw = nalgebra::DMatrix::from_fn(6, 7, |i, s| ((i + s) % 3) as f32 * 0.5);
    let visible = model.prepare(&raw).unwrap();
    let baseline = model.baseline_free_energy_of_visible(&visible).unwrap().unwrap();
    let baseline_without = without.baseline_free_energy_of_visible(&visible).unwrap().unwrap();
    let energy = model.free_energy_of_visible(&visible).unwrap();
    let energy_without = without.free_energy_of_visible(&visible).unwrap();
    for s in 0..raw.ncols() {
        let histogram = marginals.energy(visible.column(s).as_slice());
        assert!(histogram.abs() > 1e-3, "row {s}: {histogram}");
        assert!((baseline[s] - baseline_without[s] - histogram).abs() < 1e-9, "row {s}");
        assert!((energy[s] - energy_without[s] - histogram).abs() < 1e-9, "row {s}");
    }
}
