//! `rbm recommend` end to end through the binary: the whole workflow on synthetic ratings, the
//! no-leak guarantee (test ratings never move a prediction), identical models on one and two
//! threads, and located errors with exit code 2 for bad input.

use std::path::Path;

mod common;

use common::{Run, fails, ok, rbm, rbm_in};

const FAST: &[&str] = &["--hidden", "20", "--epochs", "8", "--quiet"];

/// A directory with synthetic ratings split into train.csv and test.csv.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(rbm(
        d,
        &["recommend", "synthesize", "--users", "150", "--items", "80", "--ratings", "4000", "--output", "all.csv"],
    ));
    ok(rbm(
        d,
        &[
            "recommend",
            "split",
            "--ratings",
            "all.csv",
            "--test-fraction",
            "0.2",
            "--seed",
            "3",
            "--train-out",
            "train.csv",
            "--test-out",
            "test.csv",
            "--quiet",
        ],
    ));
    dir
}

fn train(d: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["recommend", "train", "--ratings", "train.csv", "--output", "model.json"];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    rbm(d, &args)
}

/// `rbm recommend eval` of model.json conditioned on train.csv, with more flags.
fn eval(d: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["recommend", "eval", "--model", "model.json", "--train", "train.csv"];
    args.extend_from_slice(extra);
    rbm(d, &args)
}

#[test]
fn train_eval_top_split_workflow() {
    let dir = setup();
    let d = dir.path();
    let lines = |f: &str| std::fs::read_to_string(d.join(f)).unwrap().lines().count();
    assert_eq!(lines("train.csv") + lines("test.csv"), lines("all.csv") + 1, "split keeps every line, header in both");
    assert_eq!(lines("test.csv") - 1, 800);
    ok(train(d, &["--report", "report.json"]));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap();
    assert!(report["train_seconds"].as_f64().unwrap() > 0.0);
    let run = ok(eval(d, &["--test", "test.csv"]));
    let e: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    for key in ["rmse", "mae", "precision_at_k", "recall_at_k", "ndcg_at_k", "users", "ratings", "conditioning"] {
        assert!(!e[key].is_null(), "eval output lacks {key}: {e}");
    }
    assert_eq!(e["ratings"], 800);
    assert!(e["precision_at_k"].as_f64().is_some(), "{e}");
    let no_ranking = ok(eval(d, &["--test", "test.csv", "--k", "0"]));
    let e0: serde_json::Value = serde_json::from_str(no_ranking.stdout.trim()).unwrap();
    assert!(e0["precision_at_k"].is_null() && e0["ndcg_at_k"].is_null(), "{e0}");
    assert_eq!(e0["rmse"], e["rmse"]);
    // The synthetic ratings have structure a model must beat a constant on (their sd is about 1).
    assert!(e["rmse"].as_f64().unwrap() < 0.95, "{e}");
    let top = ok(rbm(
        d,
        &["recommend", "top", "--model", "model.json", "--ratings", "train.csv", "--user", "1", "--count", "5"],
    ));
    let rows: Vec<&str> = top.stdout.lines().collect();
    assert_eq!(rows[0], "rank,item,predicted_rating,score,source");
    assert_eq!(rows.len(), 6);
    let train_text = std::fs::read_to_string(d.join("train.csv")).unwrap();
    for row in &rows[1..] {
        let item = row.split(',').nth(1).unwrap();
        assert!(!train_text.lines().any(|l| l.starts_with(&format!("1,{item},"))), "rated item {item} recommended");
        assert!(row.ends_with(",model"), "{row}");
    }
    assert!(!top.stderr.contains("warning"), "{}", top.stderr);
    // A user the model was not trained on: ranked by item means, and told so once.
    std::fs::write(d.join("with-new.csv"), train_text.clone() + "newcomer,1,5\n").unwrap();
    let new =
        ok(rbm(d, &["recommend", "top", "--model", "model.json", "--ratings", "with-new.csv", "--user", "newcomer"]));
    assert!(new.stdout.lines().skip(1).all(|row| row.ends_with(",item-mean")), "{}", new.stdout);
    assert_eq!(new.stderr.matches("warning").count(), 1, "{}", new.stderr);
    assert!(new.stderr.contains("ranked by their mean rating"), "{}", new.stderr);
    // Per-user hold-out and the item orientation with a conditional model and implicit pairs.
    ok(rbm(
        d,
        &[
            "recommend",
            "split",
            "--ratings",
            "all.csv",
            "--per-user",
            "2",
            "--train-out",
            "t2.csv",
            "--test-out",
            "s2.csv",
            "--quiet",
        ],
    ));
    // --per-user 2: every user with more than 2 ratings has exactly 2 in the test part, the others
    // none, and the two parts are the ratings, each once.
    let ratings_of = |f: &str| -> Vec<(String, String)> {
        let text = std::fs::read_to_string(d.join(f)).unwrap();
        text.lines()
            .skip(1)
            .map(|l| {
                let mut fields = l.split(',');
                (fields.next().unwrap().to_string(), fields.next().unwrap().to_string())
            })
            .collect()
    };
    let (all, t2, s2) = (ratings_of("all.csv"), ratings_of("t2.csv"), ratings_of("s2.csv"));
    let mut parts: Vec<&(String, String)> = t2.iter().chain(&s2).collect();
    let mut whole: Vec<&(String, String)> = all.iter().collect();
    parts.sort();
    whole.sort();
    assert_eq!(parts, whole, "the split parts are the ratings, each once");
    let count = |list: &[(String, String)], user: &str| list.iter().filter(|(u, _)| u == user).count();
    for (user, _) in &all {
        let held = count(&s2, user);
        assert_eq!(held, if count(&all, user) > 2 { 2 } else { 0 }, "user {user}");
    }

    // Implicit pairs feed the conditional model: pairs of known users and items that are not in
    // the training ratings, plus one new user.
    let known = ratings_of("train.csv");
    let (users, items): (Vec<&String>, Vec<&String>) = known.iter().map(|(u, i)| (u, i)).unzip();
    let mut implicit = String::from("user,item\n999,3\n");
    let mut added = 0;
    let mut pairs: Vec<(&String, &String)> = Vec::new();
    for (u, i) in users.iter().zip(items.iter().rev()) {
        if added < 60 && !known.iter().any(|(ku, ki)| ku == *u && ki == *i) && !pairs.contains(&(u, i)) {
            pairs.push((u, i));
            implicit += &format!("{u},{i}\n");
            added += 1;
        }
    }
    assert_eq!(added, 60);
    std::fs::write(d.join("implicit.csv"), implicit).unwrap();
    let rmse =
        |run: Run| serde_json::from_str::<serde_json::Value>(run.stdout.trim()).unwrap()["rmse"].as_f64().unwrap();
    ok(train(d, &["--orientation", "item", "--conditional", "--seed", "5"]));
    let plain = rmse(ok(eval(d, &["--test", "test.csv"])));
    ok(train(d, &["--orientation", "item", "--conditional", "--implicit", "implicit.csv", "--seed", "5"]));
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("model.json")).unwrap()).unwrap();
    assert_eq!(model["implicit_source"], "training ratings + implicit.csv");
    assert!(model["users"].as_array().unwrap().iter().any(|u| u == "999"), "the implicit file's new user is known");
    let run = ok(eval(d, &["--test", "test.csv", "--implicit", "implicit.csv"]));
    assert!(run.stdout.contains("plus pairs in implicit.csv"), "{}", run.stdout);
    let with_pairs = rmse(run);
    assert_ne!(plain, with_pairs, "the implicit pairs changed nothing");
}

#[test]
fn test_ratings_never_move_a_prediction() {
    let dir = setup();
    let d = dir.path();
    ok(train(d, &[]));
    // Same test pairs, every rating replaced.
    let test = std::fs::read_to_string(d.join("test.csv")).unwrap();
    let flipped: String = test
        .lines()
        .enumerate()
        .map(|(n, line)| {
            if n == 0 {
                return format!("{line}\n");
            }
            let mut f: Vec<String> = line.split(',').map(str::to_owned).collect();
            f[2] = (6 - f[2].parse::<i32>().unwrap()).to_string();
            format!("{}\n", f.join(","))
        })
        .collect();
    std::fs::write(d.join("flipped.csv"), flipped).unwrap();
    let predictions = |test: &str, out: &str| {
        ok(eval(d, &["--test", test, "--predictions", out]));
        let text = std::fs::read_to_string(d.join(out)).unwrap();
        // user,item,rating,prediction,source: drop the rating column.
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                format!("{},{},{},{}", f[0], f[1], f[3], f[4])
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (predictions("test.csv", "a.csv"), predictions("flipped.csv", "b.csv"));
    assert_eq!(a.len(), 801);
    assert_eq!(a, b, "a prediction moved when only test ratings changed");
}

#[test]
fn same_seed_same_model_on_one_and_two_threads() {
    let dir = setup();
    let d = dir.path();
    let model = |threads: &str, out: &str| {
        let mut args = vec!["recommend", "train", "--ratings", "train.csv", "--output", out, "--seed", "4"];
        args.extend_from_slice(FAST);
        ok(rbm_in(d, &args, &[("RAYON_NUM_THREADS", threads)], None));
        std::fs::read(d.join(out)).unwrap()
    };
    assert_eq!(model("1", "one.json"), model("2", "two.json"));
}

#[test]
fn bad_input_is_refused_with_a_located_message() {
    let dir = setup();
    let d = dir.path();
    let write = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
    let train_on = |file: &str| {
        let mut args = vec!["recommend", "train", "--ratings", file, "--output", "m.json"];
        args.extend_from_slice(FAST);
        rbm(d, &args)
    };
    fails(train_on("missing.csv"), &["missing.csv"]);
    write("empty.csv", "");
    fails(train_on("empty.csv"), &["empty.csv", "no ratings"]);
    write("header.csv", "user,item,rating\n");
    fails(train_on("header.csv"), &["header.csv", "no ratings"]);
    write("text.csv", "1,1,5\n1,2,4\n2,1,five\n");
    fails(train_on("text.csv"), &["text.csv", "line 3, field 3", "five"]);
    write("short.csv", "1,1,5\n1,2\n");
    fails(train_on("short.csv"), &["short.csv", "line 2, field 3", "missing"]);
    write("nan.csv", "1\t1\t5\n1\t2\tNaN\n");
    fails(train_on("nan.csv"), &["nan.csv", "line 2, field 3", "not finite"]);
    write("dup.dat", "1::1::5::0\n2::1::3::0\n1::1::4::0\n");
    fails(train_on("dup.dat"), &["dup.dat", "line 3", "line 1", "already rated"]);
    let many: String = (0..100).map(|i| format!("{i},1,{}.5\n", i)).collect();
    write("many.csv", &many);
    fails(train_on("many.csv"), &["many.csv", "100 distinct values"]);
    let train_with = |extra: &[&str]| {
        let mut args = vec!["recommend", "train", "--ratings", "train.csv", "--output", "m.json", "--quiet"];
        args.extend_from_slice(extra);
        rbm(d, &args)
    };
    fails(train_with(&["--conditional", "false", "--implicit", "x.csv"]), &["--implicit needs the conditional model"]);
    fails(train_with(&["--hidden", "0"]), &["user-based RBM", "hidden units must be at least 1 (got 0)"]);
    fails(
        rbm(d, &["recommend", "train", "--ratings", "train.csv", "--output", "no/such/dir/m.json", "--epochs", "1"]),
        &["no/such/dir"],
    );
    fails(train_with(&["--learning-rate=-1"]), &["learning rate must be finite and > 0 (got -1)"]);
    fails(train_with(&["--momentum", "1"]), &["momentum must lie in [0, 1) (got 1)"]);
    fails(train_with(&["--replicas", "9"]), &["replicas must lie in 1..=8 (got 9)"]);
    // Settings are checked before any file is read.
    fails(
        rbm(d, &["recommend", "train", "--ratings", "missing.csv", "--output", "m.json", "--epochs", "0"]),
        &["epochs must be at least 1 (got 0)"],
    );

    ok(train(d, &[]));
    fails(
        rbm(d, &["recommend", "top", "--model", "model.json", "--ratings", "train.csv", "--user", "nobody"]),
        &["unknown user \"nobody\""],
    );
    write("halves.csv", "1,1,4.5\n");
    fails(
        rbm(d, &["recommend", "eval", "--model", "model.json", "--train", "halves.csv", "--test", "test.csv"]),
        &["halves.csv", "line 1", "4.5 is not one of the model's levels"],
    );
    let model = std::fs::read_to_string(d.join("model.json")).unwrap();
    write("truncated.json", &model[..model.len() / 3]);
    fails(
        rbm(d, &["recommend", "eval", "--model", "truncated.json", "--train", "train.csv", "--test", "test.csv"]),
        &["truncated.json", "not a valid recommender model"],
    );
    write("core.json", r#"{"format":"rbm-model","version":1}"#);
    fails(
        rbm(d, &["recommend", "top", "--model", "core.json", "--ratings", "train.csv", "--user", "1"]),
        &["core.json", "format is \"rbm-model\""],
    );
    fails(
        rbm(d, &["recommend", "split", "--ratings", "train.csv", "--train-out", "a", "--test-out", "b"]),
        &["--test-fraction"],
    );
}
