//! The `rbm` binary end to end: happy paths of every subcommand, located errors with exit code 2
//! for bad input, and identical results on one and two threads.

use std::path::{Path, PathBuf};

mod common;

use common::{Run, rbm, rbm_in};

/// Binary data with structure: 4 prototypes of 12 bits with 10% noise, and a label column that
/// marks rows copied from a fifth, rare prototype.
fn binary_csv(rows: usize) -> String {
    let mut s = String::from("a,b,c,d,e,f,g,h,i,j,k,l,label\n");
    let mut state = 7u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as u32
    };
    for r in 0..rows {
        let anomaly = r % 25 == 0;
        let proto = if anomaly {
            0b1010_1010_1010u32
        } else {
            [0b1111_0000_0000, 0b0000_1111_0000, 0b0000_0000_1111, 0b1100_1100_1100][r % 4]
        };
        let bits: Vec<String> =
            (0..12).map(|b| (((proto >> b) & 1) ^ u32::from(next() % 10 == 0)).to_string()).collect();
        s += &format!("{},{}\n", bits.join(","), u8::from(anomaly));
    }
    s
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("train.csv");
    std::fs::write(&csv, binary_csv(400)).unwrap();
    (dir, csv)
}

fn train_model(dir: &Path) -> Run {
    rbm(
        dir,
        &[
            "train",
            "--input",
            "train.csv",
            "--output",
            "model.json",
            "--label-column",
            "label",
            "--hidden",
            "8",
            "--contamination",
            "0.05",
            "--report",
            "report.json",
            "--quiet",
        ],
    )
}

#[test]
fn train_score_eval_sample_inspect_happy_path() {
    let (dir, _) = setup();
    let d = dir.path();
    let t = train_model(d);
    assert_eq!(t.code, 0, "{}", t.stderr);
    assert!(t.stderr.is_empty(), "--quiet printed: {}", t.stderr);

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap();
    assert!(report["train_seconds"].as_f64().unwrap() > 0.0);
    let epochs = report["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 200, "the default for 400 rows: about 5,000 updates of batch 20");
    for key in ["epoch", "seconds", "reconstruction_error", "free_energy_train", "free_energy_validation"] {
        assert!(epochs[0].get(key).is_some(), "report epoch lacks {key}");
    }

    let s = rbm(d, &["score", "--model", "model.json", "--input", "train.csv"]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    let lines: Vec<&str> = s.stdout.lines().collect();
    assert_eq!(lines[0], "row,free_energy,anomaly");
    assert_eq!(lines.len(), 401);
    let flagged = lines[1..].iter().filter(|l| l.ends_with(",1")).count();
    assert!((10..=30).contains(&flagged), "{flagged} of 400 flagged with contamination 0.05");

    let strict = rbm(d, &["score", "--model", "model.json", "--input", "train.csv", "--fail-on-anomaly"]);
    assert_eq!(strict.code, 1, "anomalies found should exit 1: {}", strict.stderr);
    assert_eq!(strict.stdout, s.stdout, "scores are still written in full");
    let lenient =
        rbm(d, &["score", "--model", "model.json", "--input", "train.csv", "--fail-on-anomaly", "--threshold", "1e9"]);
    assert_eq!(lenient.code, 0, "{}", lenient.stderr);

    let e = rbm(
        d,
        &[
            "eval",
            "--model",
            "model.json",
            "--input",
            "train.csv",
            "--label-column",
            "label",
            "--log-likelihood",
            "exact",
        ],
    );
    assert_eq!(e.code, 0, "{}", e.stderr);
    let v: serde_json::Value = serde_json::from_str(e.stdout.trim()).expect("one JSON object");
    for key in [
        "rows",
        "mean_free_energy",
        "reconstruction_error",
        "pseudo_log_likelihood",
        "roc_auc",
        "pr_auc",
        "log_partition",
        "log_partition_stderr",
        "mean_log_likelihood",
    ] {
        assert!(v.get(key).is_some_and(|x| !x.is_null()), "eval lacks {key}: {v}");
    }
    assert_eq!(v["rows"], 400);
    assert!(v["roc_auc"].as_f64().unwrap() > 0.9, "the rare prototype should score high: {v}");
    assert!(v["mean_log_likelihood"].as_f64().unwrap() < 0.0);
    assert_eq!(v["log_partition_method"], "exact");

    // AIS and reverse AIS bracket the exact log Z: both figures, their intervals and settings.
    let exact = v["log_partition"].as_f64().unwrap();
    let ais_args = |method: &'static str| {
        let mut a = vec!["eval", "--model", "model.json", "--input", "train.csv", "--label-column", "label"];
        a.extend(["--log-likelihood", method, "--ais-betas", "2000", "--ais-burn-in", "100", "--seed", "4"]);
        a
    };
    let bracket = rbm(d, &ais_args("ais-bracket"));
    assert_eq!(bracket.code, 0, "{}", bracket.stderr);
    let b: serde_json::Value = serde_json::from_str(bracket.stdout.trim()).expect("one JSON object");
    assert_eq!(b["log_partition_method"], "ais");
    assert_eq!(b["reverse_ais"]["log_partition_method"], "reverse-ais");
    assert_eq!((b["ais"]["runs"].as_u64(), b["ais"]["betas"].as_u64()), (Some(100), Some(2000)));
    for estimate in [&b, &b["reverse_ais"]] {
        let log_z = estimate["log_partition"].as_f64().unwrap();
        assert!((log_z - exact).abs() < 0.15, "{estimate} vs exact {exact}");
        let interval = &estimate["log_partition_interval"];
        assert!(interval[0].as_f64().unwrap() < log_z && log_z < interval[1].as_f64().unwrap(), "{estimate}");
        let ll = estimate["mean_log_likelihood"].as_f64().unwrap();
        assert!((ll - v["mean_log_likelihood"].as_f64().unwrap() + log_z - exact).abs() < 1e-6, "{estimate}");
    }
    let bracket_ll = b["mean_log_likelihood_bracket"].as_array().unwrap();
    assert_eq!(bracket_ll[0], b["reverse_ais"]["mean_log_likelihood"]);
    assert_eq!(bracket_ll[1], b["mean_log_likelihood"]);
    // One direction alone gives the same figures as inside the bracket (same seed, same draws).
    let forward = rbm(d, &ais_args("ais"));
    let f: serde_json::Value = serde_json::from_str(forward.stdout.trim()).expect("one JSON object");
    assert_eq!(f["log_partition"], b["log_partition"]);
    assert!(f.get("reverse_ais").is_none());
    // Centred training with parallel tempering: a model that scores like the plain one, a report
    // with the swap acceptance, and PT refused with CD.
    let pt = rbm(
        d,
        &[
            "train",
            "--input",
            "train.csv",
            "--label-column",
            "label",
            "--output",
            "pt.json",
            "--hidden",
            "8",
            "--centered",
            "--sampler",
            "pt",
            "--temperatures",
            "4",
            "--report",
            "pt.report.json",
            "--quiet",
        ],
    );
    assert_eq!(pt.code, 0, "{}", pt.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("pt.report.json")).unwrap()).unwrap();
    let acceptance = report["epochs"][199]["swap_acceptance"].as_f64().unwrap();
    assert!(acceptance > 0.0 && acceptance <= 1.0, "{report}");
    assert!(report["epochs"][0].get("swap_acceptance").is_some());
    let plain_report = &std::fs::read_to_string(d.join("report.json")).unwrap();
    assert!(!plain_report.contains("swap_acceptance"), "Gibbs runs report no swaps");
    let e = rbm(d, &["eval", "--model", "pt.json", "--input", "train.csv", "--label-column", "label"]);
    let v: serde_json::Value = serde_json::from_str(e.stdout.trim()).expect("one JSON object");
    assert!(v["roc_auc"].as_f64().unwrap() > 0.9, "{v}");
    let contradiction = rbm(
        d,
        &["train", "--input", "train.csv", "--output", "x.json", "--sampler", "pt", "--method", "cd", "--quiet"],
    );
    assert_eq!(contradiction.code, 2);
    assert!(contradiction.stderr.contains("--method cd"), "{}", contradiction.stderr);
    let one =
        rbm(d, &["train", "--input", "train.csv", "--output", "x.json", "--sampler", "pt", "--temperatures", "1"]);
    assert_eq!(one.code, 2);
    assert!(one.stderr.contains("at least 2 inverse temperatures"), "{}", one.stderr);
    let stray = rbm(d, &["train", "--input", "train.csv", "--output", "x.json", "--temperatures", "4"]);
    assert_eq!(stray.code, 2);
    assert!(stray.stderr.contains("--sampler pt"), "{}", stray.stderr);
    assert!(!d.join("x.json").exists());
    // PCD whose chains keep their hidden units: recorded in the model file, refused with CD.
    let kept = rbm(d, &["train", "--input", "train.csv", "--output", "kept.json", "--sampler", "kept-hidden"]);
    assert_eq!(kept.code, 0, "{}", kept.stderr);
    assert!(kept.stderr.contains("PCD-1") && kept.stderr.contains("keep their hidden units"), "{}", kept.stderr);
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("kept.json")).unwrap()).unwrap();
    assert_eq!(model["provenance"]["training"]["sampler"]["kind"], "kept-hidden", "{model}");
    let e = rbm(d, &["eval", "--model", "kept.json", "--input", "train.csv", "--label-column", "label"]);
    assert_eq!(e.code, 0, "{}", e.stderr);
    let contradiction =
        rbm(d, &["train", "--input", "train.csv", "--output", "x.json", "--sampler", "kept-hidden", "--method", "cd"]);
    assert_eq!(contradiction.code, 2);
    assert!(contradiction.stderr.contains("--sampler kept-hidden"), "{}", contradiction.stderr);
    assert!(!d.join("x.json").exists());

    let zero_runs = rbm(
        d,
        &[
            "eval",
            "--model",
            "model.json",
            "--input",
            "train.csv",
            "--label-column",
            "label",
            "--log-likelihood",
            "ais",
            "--ais-runs",
            "0",
        ],
    );
    assert_eq!(zero_runs.code, 2);
    assert!(zero_runs.stderr.contains("at least 1 run"), "{}", zero_runs.stderr);

    let smp = rbm(d, &["sample", "--model", "model.json", "--count", "5", "--gibbs-steps", "20", "--seed", "3"]);
    assert_eq!(smp.code, 0, "{}", smp.stderr);
    let rows: Vec<&str> = smp.stdout.lines().collect();
    assert_eq!(rows[0], "a,b,c,d,e,f,g,h,i,j,k,l");
    assert_eq!(rows.len(), 6);
    assert!(rows[1..].iter().all(|r| r.split(',').all(|x| x == "0" || x == "1")));

    let i = rbm(d, &["inspect", "--model", "model.json", "--json"]);
    assert_eq!(i.code, 0, "{}", i.stderr);
    let v: serde_json::Value = serde_json::from_str(&i.stdout).unwrap();
    assert_eq!(v["n_visible"], 12);
    assert_eq!(v["n_hidden"], 8);
    assert!(v["anomaly_threshold"].is_number());
    let text = rbm(d, &["inspect", "--model", "model.json"]);
    assert!(text.stdout.contains("8 hidden") && text.stdout.contains("anomaly threshold"), "{}", text.stdout);
}

#[test]
fn gaussian_training_reads_stdin_with_bom_and_crlf() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("\u{feff}x,y,constant\r\n");
    for i in 0..200 {
        csv += &format!("{},{},5\r\n", (i as f64 * 0.37).sin() * 10.0, (i as f64 * 0.11).cos() + 100.0);
    }
    let r = rbm_in(
        dir.path(),
        &[
            "train",
            "--input",
            "-",
            "--output",
            "g.json",
            "--visible",
            "gaussian",
            "--epochs",
            "3",
            "--learn-variance",
            "false",
        ],
        &[],
        Some(&csv),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("constant"), "no warning about the constant column: {}", r.stderr);
    let s = rbm_in(dir.path(), &["score", "--model", "g.json", "--input", "-"], &[], Some(&csv));
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert_eq!(s.stdout.lines().count(), 201);
    assert!(!s.stdout.contains("NaN"));

    // Learned variances (the default with Gaussian units): stored in the standardisation,
    // refused for binary data once its columns are known.
    let v = rbm_in(
        dir.path(),
        &["train", "--input", "-", "--output", "v.json", "--visible", "gaussian", "--epochs", "3", "--learn-variance"],
        &[],
        Some(&csv),
    );
    assert_eq!(v.code, 0, "{}", v.stderr);
    let fixed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("g.json")).unwrap()).unwrap();
    let learned: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("v.json")).unwrap()).unwrap();
    assert_ne!(fixed["standardization"]["scale"], learned["standardization"]["scale"]);
    let binary = rbm_in(
        dir.path(),
        &["train", "--input", "-", "--output", "b.json", "--learn-variance"],
        &[],
        Some("a,b\n0,1\n1,0\n1,1\n"),
    );
    assert_eq!(binary.code, 2);
    assert!(binary.stderr.contains("needs Gaussian visible units"), "{}", binary.stderr);
}

#[test]
fn same_seed_gives_identical_models_scores_and_evaluations_on_one_two_and_three_threads() {
    let (dir, _) = setup();
    let d = dir.path();
    // Five pieces of 4096 rows for score and eval, cut the same on any number of threads.
    std::fs::write(d.join("big.csv"), binary_csv(20_000)).unwrap();
    let mut outputs = Vec::new();
    for threads in ["1", "2", "3"] {
        let model = format!("m{threads}.json");
        let env = [("RAYON_NUM_THREADS", threads)];
        let train = [
            "train",
            "--input",
            "train.csv",
            "--output",
            &model,
            "--label-column",
            "label",
            "--epochs",
            "5",
            "--persistent",
            "--seed",
            "9",
            "--quiet",
        ];
        let t = rbm_in(d, &train, &env, None);
        assert_eq!(t.code, 0, "{}", t.stderr);
        let s = rbm_in(d, &["score", "--model", &model, "--input", "big.csv", "--explain", "2"], &env, None);
        assert_eq!(s.code, 0, "{}", s.stderr);
        assert_eq!(s.stdout.lines().count(), 20_001);
        let e = rbm_in(d, &["eval", "--model", &model, "--input", "big.csv", "--label-column", "label"], &env, None);
        assert_eq!(e.code, 0, "{}", e.stderr);
        outputs.push((std::fs::read_to_string(d.join(&model)).unwrap(), s.stdout, e.stdout));
    }
    assert!(outputs[0] == outputs[1], "1 and 2 threads differ");
    assert!(outputs[0] == outputs[2], "1 and 3 threads differ");

    // A bad field in the third piece is located at its line, after the rows before it are scored.
    let mut lines: Vec<String> = binary_csv(20_000).lines().map(str::to_string).collect();
    lines[9001] = lines[9001].replacen('0', "x", 1);
    std::fs::write(d.join("bad.csv"), lines.join("\n") + "\n").unwrap();
    for threads in ["1", "2"] {
        let s =
            rbm_in(d, &["score", "--model", "m1.json", "--input", "bad.csv"], &[("RAYON_NUM_THREADS", threads)], None);
        assert_eq!(s.code, 2, "{}", s.stderr);
        assert!(s.stderr.contains("bad.csv: line 9002, column"), "{}", s.stderr);
        assert_eq!(s.stdout.lines().count(), 1 + 8192, "the two pieces before the bad one are written");
    }
}

/// Runs `rbm` and expects exit code 2 with every `needle` in the one-line message.
fn expect_error(dir: &Path, args: &[&str], needles: &[&str]) {
    let r = rbm(dir, args);
    assert_eq!(r.code, 2, "{args:?} exited {} (stderr: {})", r.code, r.stderr);
    assert!(!r.stderr.contains("panicked"), "{args:?} panicked: {}", r.stderr);
    for n in needles {
        assert!(r.stderr.contains(n), "{args:?}: expected {n:?} in {:?}", r.stderr);
    }
}

#[test]
fn bad_training_input_is_a_located_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&str, &str, &[&str])] = &[
        ("empty.csv", "", &["empty.csv", "empty"]),
        ("header.csv", "a,b,c\n", &["header.csv", "no data rows"]),
        ("ragged.csv", "a,b,c\n1,0,1\n1,0\n", &["ragged.csv", "line 3", "2 fields, expected 3"]),
        ("text.csv", "a,b,c\n1,0,1\n1,x,0\n", &["text.csv", "line 3", "column 2 (b)", "not a number"]),
        ("nan.csv", "a,b,c\n1,0,1\n1,0,NaN\n", &["nan.csv", "line 3", "column 3 (c)", "not a finite number"]),
        ("inf.csv", "a,b,c\n1,0,1\ninf,0,1\n", &["inf.csv", "line 3", "column 1 (a)", "not a finite"]),
        ("blank.csv", "a,b,c\n1,,1\n", &["blank.csv", "line 2", "column 2 (b)", "empty field"]),
        ("nonbinary.csv", "a,b,c\n1,0,1\n0,3,1\n", &["nonbinary.csv", "line 3", "column 2 (b)", "[0, 1]", "gaussian"]),
    ];
    for (name, text, needles) in cases {
        std::fs::write(d.join(name), text).unwrap();
        expect_error(d, &["train", "--input", name, "--output", "m.json", "--quiet"], needles);
        assert!(!d.join("m.json").exists(), "{name}: a model was written");
    }
    expect_error(d, &["train", "--input", "missing.csv", "--output", "m.json"], &["missing.csv", "cannot open"]);
    std::fs::write(d.join("ok.csv"), "a,b,c\n1,0,1\n0,1,0\n").unwrap();
    expect_error(
        d,
        &["train", "--input", "ok.csv", "--output", "m.json", "--label-column", "nope"],
        &["ok.csv", "\"nope\"", "a, b, c"],
    );
    expect_error(
        d,
        &["train", "--input", "ok.csv", "--output", "no-such-dir/m.json", "--quiet"],
        &["no-such-dir/m.json"],
    );
    expect_error(
        d,
        &["train", "--input", "ok.csv", "--output", "m.json", "--learning-rate=-1", "--quiet"],
        &["learning rate", "-1"],
    );
    expect_error(d, &["train", "--input", "ok.csv", "--output", "m.json", "--contamination", "2"], &["contamination"]);
    expect_error(d, &["train", "--bogus-flag"], &["bogus"]);
    // A bad value in the validation file is located in that file.
    std::fs::write(d.join("valid.csv"), "a,b,c\n1,0,1\n0,5,1\n").unwrap();
    expect_error(
        d,
        &["train", "--input", "ok.csv", "--validation", "valid.csv", "--output", "m.json", "--quiet"],
        &["valid.csv", "line 3", "column 2 (b)", "[0, 1]"],
    );
    assert!(!d.join("m.json").exists(), "a model was written");
    // Flags are checked before any file is read.
    expect_error(
        d,
        &["train", "--input", "missing.csv", "--output", "m.json", "--epochs", "0"],
        &["epochs", "(got 0)"],
    );
    expect_error(
        d,
        &["train", "--input", "missing.csv", "--output", "m.json", "--column-kinds", "a=tall"],
        &["unknown kind \"tall\""],
    );
    expect_error(
        d,
        &["train", "--input", "ok.csv", "--output", "m.json", "--persistent", "--method", "cd"],
        &["contradicts"],
    );
}

#[test]
fn bad_scoring_input_and_bad_models_are_located_errors() {
    let (dir, _) = setup();
    let d = dir.path();
    assert_eq!(train_model(d).code, 0);
    std::fs::write(d.join("narrow.csv"), "1,0,1\n0,1,0\n").unwrap();
    expect_error(
        d,
        &["score", "--model", "model.json", "--input", "narrow.csv"],
        &["narrow.csv", "3 feature columns", "12 visible"],
    );
    std::fs::write(d.join("renamed.csv"), "a,b,c,d,e,f,g,h,i,j,k,zz\n1,0,1,0,1,0,1,0,1,0,1,0\n").unwrap();
    expect_error(d, &["score", "--model", "model.json", "--input", "renamed.csv"], &["renamed.csv", "\"l\""]);
    std::fs::write(d.join("half.csv"), "a,b,c,d,e,f,g,h,i,j,k,l\n1,0,1,0,1,0,1,0,1,0,1,0\n1,0,1,0,1,0,1,0,1,0,1,7\n")
        .unwrap();
    expect_error(
        d,
        &["score", "--model", "model.json", "--input", "half.csv"],
        &["half.csv", "line 3", "column 12 (l)"],
    );
    let text = std::fs::read_to_string(d.join("model.json")).unwrap();
    std::fs::write(d.join("truncated.json"), &text[..text.len() / 2]).unwrap();
    expect_error(
        d,
        &["score", "--model", "truncated.json", "--input", "train.csv"],
        &["truncated.json", "not a valid model file"],
    );
    std::fs::write(d.join("garbage.json"), "{\"format\": \"rbm-model\", \"version\": 7}").unwrap();
    expect_error(d, &["eval", "--model", "garbage.json", "--input", "train.csv"], &["garbage.json", "version 7"]);
    expect_error(d, &["inspect", "--model", "absent.json"], &["absent.json"]);
    expect_error(
        d,
        &["score", "--model", "model.json", "--input", "train.csv", "--output", "no-such-dir/out.csv"],
        &["no-such-dir/out.csv"],
    );
    expect_error(d, &["sample", "--model", "model.json", "--count", "0"], &["--count"]);
}

/// Numeric, binary and text columns side by side, with a label: the `--visible auto` case.
fn mixed_csv(rows: usize) -> String {
    let mut s = String::from("height,member,colour,size,label\n");
    let colours = ["red", "green", "blue"];
    for r in 0..rows {
        let anomaly = r % 40 == 0;
        let colour = colours[r % 3];
        let height = if anomaly { 250.0 } else { 150.0 + (r % 3) as f64 * 10.0 + (r % 7) as f64 };
        let member = u8::from(r % 3 == 0) ^ u8::from(anomaly);
        let size = if anomaly { 9 } else { 1 + r % 2 };
        s += &format!("{height},{member},{colour},{size},{}\n", u8::from(anomaly));
    }
    s
}

#[test]
fn mixed_columns_train_score_sample_and_inspect_with_auto_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("mixed.csv"), mixed_csv(400)).unwrap();
    let t = rbm(
        d,
        &[
            "train",
            "--input",
            "mixed.csv",
            "--label-column",
            "label",
            "--visible",
            "auto",
            "--column-kinds",
            "size=categorical",
            "--contamination",
            "0.05",
            "--output",
            "mixed.json",
        ],
    );
    assert_eq!(t.code, 0, "{}", t.stderr);
    // It says what it chose.
    for needle in ["1 bernoulli: member", "1 gaussian: height", "2 categorical: colour (3 levels), size (3 levels)"] {
        assert!(t.stderr.contains(needle), "{needle:?} not in {}", t.stderr);
    }
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("mixed.json")).unwrap()).unwrap();
    assert_eq!(model["columns"][2]["levels"], serde_json::json!(["red", "green", "blue"]));
    assert_eq!(model["n_visible"], 8);

    let e = rbm(d, &["eval", "--model", "mixed.json", "--input", "mixed.csv", "--label-column", "label"]);
    assert_eq!(e.code, 0, "{}", e.stderr);
    let result: serde_json::Value = serde_json::from_str(&e.stdout).unwrap();
    assert!(result["roc_auc"].as_f64().unwrap() > 0.9, "the planted anomalies are easy: {result}");
    assert!(result["pseudo_log_likelihood"].is_null(), "Gaussian columns have no pseudo-likelihood here");

    let s = rbm(d, &["sample", "--model", "mixed.json", "--count", "20", "--gibbs-steps", "50"]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    let lines: Vec<&str> = s.stdout.lines().collect();
    assert_eq!(lines[0], "height,member,colour,size");
    for line in &lines[1..] {
        let fields: Vec<&str> = line.split(',').collect();
        assert!(["red", "green", "blue"].contains(&fields[2]), "{line}");
        assert!(["1", "2", "9"].contains(&fields[3]), "{line}");
        assert!(["0", "1"].contains(&fields[1]), "{line}");
    }

    let i = rbm(d, &["inspect", "--model", "mixed.json"]);
    assert_eq!(i.code, 0, "{}", i.stderr);
    assert!(i.stdout.contains("1 gaussian + 1 bernoulli + 2 softmax (6 units)"), "{}", i.stdout);

    // An unseen level is a located error naming the levels the model knows.
    std::fs::write(d.join("new.csv"), "height,member,colour,size,label\n160,1,purple,1,0\n").unwrap();
    expect_error(
        d,
        &["score", "--model", "mixed.json", "--input", "new.csv", "--label-column", "label"],
        &["new.csv", "line 2", "column 3 (colour)", "\"purple\" was not seen in training", "\"red\""],
    );
    // Numbers in a categorical column are one level however they are written.
    std::fs::write(d.join("one.csv"), "height,member,colour,size,label\n160,1,red,1.0,0\n").unwrap();
    let score = rbm(d, &["score", "--model", "mixed.json", "--input", "one.csv", "--label-column", "label"]);
    assert_eq!(score.code, 0, "{}", score.stderr);
    // A numeric column with a stray text field becomes categorical under auto, with a warning that
    // names the field; a column of more distinct texts than a categorical column may have is an
    // error that suggests leaving it out.
    let mut typo = mixed_csv(60);
    typo = typo.replacen("\n150", "\nn/a", 1);
    std::fs::write(d.join("typo.csv"), &typo).unwrap();
    let t =
        rbm(d, &["train", "--input", "typo.csv", "--label-column", "label", "--visible", "auto", "--output", "t.json"]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    assert!(t.stderr.contains("warning: column height is categorical") && t.stderr.contains("\"n/a\""), "{}", t.stderr);
    // Given a numeric kind, the column stays numeric, and the text is an error that locates it.
    expect_error(
        d,
        &[
            "train",
            "--input",
            "typo.csv",
            "--label-column",
            "label",
            "--visible",
            "auto",
            "--column-kinds",
            "height=gaussian",
            "--output",
            "t.json",
        ],
        &["typo.csv", "column 1 (height)", "\"n/a\" is not a number"],
    );
    // A 0/1 column with a missing-value marker is warned about too.
    std::fs::write(d.join("marker.csv"), "a,b\n1,0.5\n0,1.5\n?,2.5\n1,0.1\n").unwrap();
    let t = rbm(d, &["train", "--input", "marker.csv", "--visible", "auto", "--output", "t.json", "--epochs", "1"]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    assert!(t.stderr.contains("column a is categorical with 3 levels, 2 of them numbers"), "{}", t.stderr);
    // Auto detection reads standard input too (it is read twice).
    let piped = rbm_in(
        d,
        &["train", "--input", "-", "--visible", "auto", "--output", "p.json", "--epochs", "1", "--quiet"],
        &[],
        Some("colour,x\nred,1\nblue,0\nred,1\n"),
    );
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    let model: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("p.json")).unwrap()).unwrap();
    assert_eq!(model["columns"][0]["levels"], serde_json::json!(["red", "blue"]));
    // Column numbers in --column-kinds count the file's columns, as --label-column does.
    std::fs::write(d.join("numbered.csv"), "label,a,b\n0,1,5\n1,2,6\n0,1,7\n").unwrap();
    let n = rbm(
        d,
        &[
            "train",
            "--input",
            "numbered.csv",
            "--label-column",
            "1",
            "--visible",
            "gaussian",
            "--column-kinds",
            "2=categorical",
            "--output",
            "n.json",
            "--epochs",
            "1",
            "--quiet",
        ],
    );
    assert_eq!(n.code, 0, "{}", n.stderr);
    let model: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("n.json")).unwrap()).unwrap();
    assert_eq!(model["columns"][0], serde_json::json!({"kind": "categorical", "levels": ["1", "2"]}));
    assert_eq!(model["columns"][1], serde_json::json!({"kind": "gaussian"}));
    let ids: String = std::iter::once("id,x\n".to_string()).chain((0..1200).map(|i| format!("u{i},1\n"))).collect();
    std::fs::write(d.join("ids.csv"), ids).unwrap();
    expect_error(
        d,
        &["train", "--input", "ids.csv", "--visible", "auto", "--output", "i.json"],
        &["ids.csv", "column id has 1200 distinct values", "--ignore-columns id"],
    );
    // Without --visible auto a text column is an error that says how to use it.
    expect_error(
        d,
        &["train", "--input", "mixed.csv", "--label-column", "label", "--output", "m.json", "--visible", "gaussian"],
        &["mixed.csv", "line 2", "column 3 (colour)", "--visible auto"],
    );
}

#[test]
fn eval_uses_the_one_feature_pseudo_likelihood_past_its_work_limit_on_any_thread_count() {
    // 100 visible and 1000 hidden units: the all-features estimate's work limit (10^9 softplus
    // terms) is reached at 10,000 rows, which `eval` only knows once it has read them.
    let (dir, _) = setup();
    let d = dir.path();
    let wide = |rows: usize| {
        let mut s = (0..100).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",") + "\n";
        let mut state = 11u64;
        for _ in 0..rows {
            let bits: Vec<&str> = (0..100)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    if (state >> 33).is_multiple_of(3) { "1" } else { "0" }
                })
                .collect();
            s += &(bits.join(",") + "\n");
        }
        s
    };
    std::fs::write(d.join("small.csv"), wide(200)).unwrap();
    std::fs::write(d.join("over.csv"), wide(10_001)).unwrap();
    let t = rbm_in(
        d,
        &["train", "--input", "small.csv", "--hidden", "1000", "--epochs", "1", "--output", "w.json", "--quiet"],
        &[],
        None,
    );
    assert_eq!(t.code, 0, "{}", t.stderr);
    let method = |out: &str| -> (String, f64) {
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
        (v["pseudo_log_likelihood_method"].as_str().unwrap().to_string(), v["pseudo_log_likelihood"].as_f64().unwrap())
    };
    let small = rbm_in(d, &["eval", "--model", "w.json", "--input", "small.csv"], &[], None);
    assert_eq!(small.code, 0, "{}", small.stderr);
    assert_eq!(method(&small.stdout).0, "all features");
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let over =
            rbm_in(d, &["eval", "--model", "w.json", "--input", "over.csv"], &[("RAYON_NUM_THREADS", threads)], None);
        assert_eq!(over.code, 0, "{}", over.stderr);
        let (name, value) = method(&over.stdout);
        assert_eq!(name, "one random feature per row, seed 0");
        assert!(value.is_finite() && value < 0.0, "{value}");
        outputs.push(over.stdout);
    }
    assert_eq!(outputs[0], outputs[1]);
}
