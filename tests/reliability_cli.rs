//! Nothing is lost: outputs are checked before any work, written to a temporary file and renamed
//! only on success, never over an input, through symbolic links to their targets, directly to
//! special files, with the umask's permissions; a failed run leaves every file as it was and no
//! temporary file behind.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{fails, ok, rbm, rbm_in};

/// Every file in `dir` with its bytes (names starting with `.rbm-` are temporary files); a file
/// over 64 MiB (a sparse "oversized" model) by its length and modification time instead.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            let m = e.metadata().unwrap();
            let content = if m.len() > 64 << 20 {
                format!("{} bytes, modified {:?}", m.len(), m.modified().unwrap()).into_bytes()
            } else {
                std::fs::read(e.path()).unwrap()
            };
            (e.file_name().to_string_lossy().into_owned(), content)
        })
        .collect()
}

fn gaussian_csv(rows: usize) -> String {
    let mut s = String::from("x,y,z\n");
    for i in 0..rows {
        let t = i as f64 * 0.37;
        s += &format!("{:.4},{:.4},{:.4}\n", t.sin(), t.cos() + 0.1 * (3.0 * t).sin(), (0.5 * t).sin());
    }
    s
}

/// A directory with data.csv and a model trained on it.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.csv"), gaussian_csv(300)).unwrap();
    ok(rbm(
        dir.path(),
        &["train", "--input", "data.csv", "--output", "m.json", "--visible", "gaussian", "--epochs", "3", "--quiet"],
    ));
    dir
}

/// Runs a command that must fail with a located error and change no file.
fn fails_and_changes_nothing(dir: &Path, args: &[&str], needles: &[&str]) {
    let before = snapshot(dir);
    fails(rbm(dir, args), needles);
    let after = snapshot(dir);
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>(), "files appeared or vanished");
    assert!(before == after, "a file changed after {args:?}");
}

#[test]
fn an_output_that_is_an_input_is_refused_and_the_input_kept() {
    let dir = setup();
    let d = dir.path();
    fails_and_changes_nothing(
        d,
        &["score", "--model", "m.json", "--input", "data.csv", "--output", "data.csv"],
        &["data.csv", "refusing to overwrite an input"],
    );
    fails_and_changes_nothing(
        d,
        &["score", "--model", "m.json", "--input", "data.csv", "--output", "m.json"],
        &["m.json", "refusing to overwrite an input"],
    );
    fails_and_changes_nothing(
        d,
        &["train", "--input", "data.csv", "--output", "data.csv", "--visible", "gaussian"],
        &["refusing to overwrite an input"],
    );
    fails_and_changes_nothing(
        d,
        &["sample", "--model", "m.json", "--count", "3", "--output", "m.json"],
        &["refusing to overwrite an input"],
    );
    // Through a symbolic link, the input is still the input.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("data.csv", d.join("alias.csv")).unwrap();
        fails(
            rbm(d, &["score", "--model", "m.json", "--input", "data.csv", "--output", "alias.csv"]),
            &["refusing to overwrite an input"],
        );
        assert_eq!(std::fs::read_to_string(d.join("data.csv")).unwrap(), gaussian_csv(300));
    }
}

#[test]
fn a_failed_run_keeps_the_old_output_and_leaves_no_temporary_file() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(d.join("scores.csv"), "old scores\n").unwrap();
    // A bad field near the end: the rows before it were scored, but the old output stays.
    let mut bad = gaussian_csv(9000);
    bad += "0.1,oops,0.2\n";
    std::fs::write(d.join("bad.csv"), bad).unwrap();
    fails_and_changes_nothing(
        d,
        &["score", "--model", "m.json", "--input", "bad.csv", "--output", "scores.csv"],
        &["bad.csv", "line 9002", "oops"],
    );
    // An unwritable or missing report directory is found before training: no model is written.
    fails_and_changes_nothing(
        d,
        &["train", "--input", "data.csv", "--output", "new.json", "--visible", "gaussian", "--report", "no/dir/r.json"],
        &["no/dir/r.json", "does not exist"],
    );
    fails_and_changes_nothing(
        d,
        &["train", "--input", "data.csv", "--output", "m.json", "--visible", "gaussian", "--report", "m.json"],
        &["given twice"],
    );
    fails_and_changes_nothing(
        d,
        &["score", "--model", "m.json", "--input", "data.csv", "--output", "."],
        &["is a directory"],
    );
    fails_and_changes_nothing(
        d,
        &["eval", "--model", "m.json", "--input", "data.csv", "--label-column", "z", "--plot", "none/roc.png"],
        &["does not exist"],
    );
}

#[test]
fn recommend_split_writes_both_parts_or_neither() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut ratings = String::from("user,item,rating\n");
    for u in 0..20 {
        for i in 0..6 {
            ratings += &format!("u{u},i{},{}\n", (u + i) % 9, 1 + (u * i) % 5);
        }
    }
    std::fs::write(d.join("r.csv"), &ratings).unwrap();
    let split = |train: &str, test: &str| {
        vec![
            "recommend",
            "split",
            "--ratings",
            "r.csv",
            "--test-fraction",
            "0.2",
            "--train-out",
            train,
            "--test-out",
            test,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let args = split("same.csv", "same.csv");
    fails_and_changes_nothing(d, &args.iter().map(String::as_str).collect::<Vec<_>>(), &["given twice"]);
    let args = split("r.csv", "test.csv");
    fails_and_changes_nothing(
        d,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &["refusing to overwrite an input"],
    );
    let args = split("train.csv", "missing/test.csv");
    fails_and_changes_nothing(d, &args.iter().map(String::as_str).collect::<Vec<_>>(), &["does not exist"]);
    let args = split("train.csv", "test.csv");
    ok(rbm(d, &args.iter().map(String::as_str).collect::<Vec<_>>()));
    let lines = |f: &str| std::fs::read_to_string(d.join(f)).unwrap().lines().count();
    assert_eq!(lines("train.csv") + lines("test.csv"), 120 + 2);
}

#[cfg(unix)]
#[test]
fn links_are_written_through_special_files_directly_and_modes_follow_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = setup();
    let d = dir.path();
    std::fs::create_dir(d.join("real")).unwrap();
    std::fs::write(d.join("real/scores.csv"), "old").unwrap();
    std::fs::set_permissions(d.join("real/scores.csv"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("real/scores.csv", d.join("link.csv")).unwrap();
    ok(rbm(d, &["score", "--model", "m.json", "--input", "data.csv", "--output", "link.csv", "--quiet"]));
    assert!(std::fs::symlink_metadata(d.join("link.csv")).unwrap().file_type().is_symlink());
    let written = std::fs::read_to_string(d.join("real/scores.csv")).unwrap();
    assert!(written.starts_with("row,free_energy,anomaly") && written.lines().count() == 301);
    assert_eq!(std::fs::metadata(d.join("real/scores.csv")).unwrap().permissions().mode() & 0o777, 0o640);
    // No temporary file beside the link or the target.
    for sub in [d.to_path_buf(), d.join("real")] {
        assert!(snapshot(&sub).keys().all(|k| !k.starts_with(".rbm-")), "{:?}", snapshot(&sub).keys());
    }
    // /dev/null is written, not replaced.
    ok(rbm(d, &["score", "--model", "m.json", "--input", "data.csv", "--output", "/dev/null", "--quiet"]));
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    // New files get 0666 minus the umask.
    let shell = |umask: &str, out: &str| {
        let cmd = format!(
            "umask {umask} && exec {} train --input data.csv --output {out} --visible gaussian --epochs 2 --quiet",
            env!("CARGO_BIN_EXE_rbm")
        );
        let status = std::process::Command::new("sh").arg("-c").arg(cmd).current_dir(d).status().unwrap();
        assert!(status.success());
        std::fs::metadata(d.join(out)).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(shell("022", "a.json"), 0o644);
    assert_eq!(shell("077", "b.json"), 0o600);
}

#[test]
fn temporary_files_of_killed_runs_are_cleaned_up() {
    let dir = setup();
    let d = dir.path();
    // A killed run's leftover: a process id no Linux system hands out.
    std::fs::write(d.join(".rbm-4194305-abcdef.tmp"), "half a model").unwrap();
    let run = rbm_in(
        d,
        &["train", "--input", "data.csv", "--output", "m2.json", "--visible", "gaussian", "--epochs", "2", "--quiet"],
        &[],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let left = d.join(".rbm-4194305-abcdef.tmp").exists();
    assert_eq!(left, !Path::new("/proc/self").exists(), "stale temporary file handled as documented");
}

#[test]
fn sizes_are_checked_before_allocating_and_ambiguity_is_refused() {
    let dir = setup();
    let d = dir.path();
    let bad: &[(&[&str], &[&str])] = &[
        (
            &["train", "--input", "data.csv", "--output", "n.json", "--visible", "gaussian", "--hidden", "100000000"],
            &["100000000 x 3", "RBM_MAX_MATRIX_VALUES"],
        ),
        (&["sample", "--model", "m.json", "--count", "100000000000"], &["100000000000 x 3", "RBM_MAX_MATRIX_VALUES"]),
        (
            &["train", "--input", "data.csv", "--output", "n.json", "--visible", "gaussian", "--cd-k", "1000000000"],
            &["Gibbs steps", "1 to 10000"],
        ),
        (
            &[
                "train",
                "--input",
                "data.csv",
                "--output",
                "n.json",
                "--visible",
                "gaussian",
                "--batch-size",
                "1000000000",
            ],
            &["batch size", "RBM_MAX_MATRIX_VALUES"],
        ),
        (&["train", "--input", "dup.csv", "--output", "n.json"], &["dup.csv", "columns 1 and 3 are both named \"a\""]),
        (
            &["train", "--input", "dup.csv", "--output", "n.json", "--label-column", "a"],
            &["\"a\" is ambiguous", "columns 1 and 3"],
        ),
        (
            &["train", "--input", "bin.csv", "--output", "n.json", "--learning-rate", "1000"],
            &["diverged in epoch 1", "lower the learning rate"],
        ),
    ];
    std::fs::write(d.join("dup.csv"), "a,b,a\n1,0,1\n0,1,0\n1,1,0\n").unwrap();
    let mut binary = String::from("p,q,r,s\n");
    for i in 0..200 {
        binary += &format!("{},{},{},{}\n", i % 2, (i / 2) % 2, i % 3 % 2, (i + 1) % 2);
    }
    std::fs::write(d.join("bin.csv"), binary).unwrap();
    for (args, needles) in bad {
        fails_and_changes_nothing(d, args, needles);
    }
    // A duplicated name left out by number trains.
    ok(rbm(d, &["train", "--input", "dup.csv", "--output", "n.json", "--ignore-columns", "3", "--quiet"]));
}

#[test]
fn labels_other_than_0_and_1_need_the_positive_label() {
    let dir = setup();
    let d = dir.path();
    let mut text = String::from("x,y,z,label\n");
    for (i, line) in gaussian_csv(300).lines().skip(1).enumerate() {
        text += &format!("{line},{}\n", if i % 10 == 0 { "yes" } else { "no" });
    }
    std::fs::write(d.join("yes.csv"), text.replace(",no\n", ",0\n").replacen(",yes\n", ",2\n", 1)).unwrap();
    // A 2 among 0s: refused, naming the line and the way out.
    fails_and_changes_nothing(
        d,
        &["eval", "--model", "m.json", "--input", "yes.csv", "--label-column", "label"],
        &["yes.csv", "line 2", "\"2\"", "--positive-label"],
    );
    std::fs::write(d.join("words.csv"), &text).unwrap();
    fails_and_changes_nothing(
        d,
        &[
            "plot",
            "scores",
            "--model",
            "m.json",
            "--input",
            "words.csv",
            "--label-column",
            "label",
            "--output",
            "s.png",
        ],
        &["\"yes\"", "--positive-label"],
    );
    let run = ok(rbm(
        d,
        &["eval", "--model", "m.json", "--input", "words.csv", "--label-column", "label", "--positive-label", "yes"],
    ));
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["positives"], 30);
    assert!(v["roc_auc"].is_number());
}

#[test]
fn a_recommender_of_one_user_or_one_item_loads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("one_user.csv"), "user,item,rating\nu1,i1,4\nu1,i2,3\nu1,i3,5\n").unwrap();
    std::fs::write(d.join("one_item.csv"), "user,item,rating\nu1,i1,4\nu2,i1,3\nu3,i1,5\n").unwrap();
    for (file, user) in [("one_user.csv", "u1"), ("one_item.csv", "u2")] {
        ok(rbm(d, &["recommend", "train", "--ratings", file, "--output", "r.json", "--epochs", "3", "--quiet"]));
        ok(rbm(d, &["inspect", "--model", "r.json"]));
        ok(rbm(d, &["recommend", "top", "--model", "r.json", "--ratings", file, "--user", user]));
    }
}

#[test]
fn messages_say_what_is_wrong_once() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(d.join("huge.csv"), "x,y,z\n1e308,1,2\n2,3,4\n").unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["train", "--input", "data.csv", "--output", "n.json", "--seed", "-1"],
            &["\"-1\" is not a seed", "whole number"],
        ),
        (
            &["train", "--input", "huge.csv", "--output", "n.json", "--visible", "gaussian"],
            &["huge.csv", "line 2, column 1 (x)", "beyond the range of 32-bit floats"],
        ),
        (&["score", "--model", "missing.json", "--input", "data.csv"], &["missing.json", "No such file"]),
        (&["train", "--input", "missing.csv", "--output", "n.json"], &["missing.csv", "No such file"]),
    ];
    for (args, needles) in cases {
        let before = snapshot(d);
        let run = rbm(d, args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        for needle in *needles {
            assert!(run.stderr.contains(needle), "{args:?}: {:?} lacks {needle:?}", run.stderr);
        }
        // One message, each part once.
        assert_eq!(run.stderr.matches(needles[needles.len() - 1]).count(), 1, "{:?}", run.stderr);
        assert!(snapshot(d) == before);
    }
}

#[test]
fn stray_ratings_are_reported_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 3,000 ratings 1-5 on distinct (user, item) pairs, one 10 (line 102) and one 3.5 (line 202).
    let mut lines = Vec::new();
    for k in 0..3000u32 {
        let rating = match k {
            100 => "10".to_string(),
            200 => "3.5".to_string(),
            _ => (1 + (k * 7 + k / 13) % 5).to_string(),
        };
        lines.push(format!("u{},i{},{rating}", k / 60, k % 60));
    }
    std::fs::write(d.join("r.csv"), format!("user,item,rating\n{}\n", lines.join("\n"))).unwrap();
    let train = ["recommend", "train", "--ratings", "r.csv", "--output", "m.json", "--epochs", "2", "--hidden", "4"];
    let run = ok(rbm(d, &train));
    assert!(run.stderr.contains("rating levels: 1 (") && run.stderr.contains("10 (1)"), "{}", run.stderr);
    assert!(run.stderr.contains("rating level 3.5 (1 of 3000 ratings, first on line 202) is rare and off the grid"));
    assert!(run.stderr.contains("rating level 10 (1 of 3000 ratings, first on line 102) is rare"));
    let with_scale: Vec<&str> = train.iter().copied().chain(["--rating-scale", "1:5:1"]).collect();
    fails_and_changes_nothing(d, &with_scale, &["r.csv", "line 102", "rating 10 is not on the scale 1:5:1"]);
    fails_and_changes_nothing(
        d,
        &train.iter().copied().chain(["--rating-scale", "1:5:0.3"]).collect::<Vec<_>>(),
        &["MAX is not MIN plus a whole number of STEPs"],
    );
    // Without the strays, the scale accepts the file; a test rating off the model's levels is
    // then a located error, not a silently large RMSE.
    let clean: Vec<&str> =
        lines.iter().map(String::as_str).filter(|l| !l.ends_with(",10") && !l.ends_with(",3.5")).collect();
    std::fs::write(d.join("clean.csv"), format!("user,item,rating\n{}\n", clean.join("\n"))).unwrap();
    ok(rbm(
        d,
        &["recommend", "train", "--ratings", "clean.csv", "--output", "c.json", "--epochs", "2", "--hidden", "4"]
            .into_iter()
            .chain(["--rating-scale", "1:5:1", "--quiet"])
            .collect::<Vec<_>>(),
    ));
    std::fs::write(d.join("test.csv"), "user,item,rating\nu1,i1,4\nu2,i3,7\n").unwrap();
    fails_and_changes_nothing(
        d,
        &["recommend", "eval", "--model", "c.json", "--train", "clean.csv", "--test", "test.csv"],
        &["test.csv", "line 3", "rating 7 is not one of the model's levels"],
    );
}

/// Kill -9 at spread-out moments of training (reading, epochs, saving) and of scoring, 24 times:
/// every file that existed stays intact (the old bytes or a complete new file that loads), and
/// the killed runs' temporary files are gone after the next write.
#[cfg(unix)]
#[test]
fn killed_runs_leave_every_file_intact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("data.csv"), gaussian_csv(6000)).unwrap();
    let train =
        ["train", "--input", "data.csv", "--output", "m.json", "--visible", "gaussian", "--epochs", "40", "--quiet"];
    ok(rbm(d, &train));
    std::fs::write(d.join("scores.csv"), "old scores\n").unwrap();
    let data = std::fs::read(d.join("data.csv")).unwrap();
    let score =
        ["score", "--model", "m.json", "--input", "data.csv", "--output", "scores.csv", "--explain", "2", "--quiet"];
    // Each command's full duration, so that the kills spread over reading, work and saving.
    let duration = |args: &[&str]| {
        let start = std::time::Instant::now();
        ok(rbm(d, args));
        start.elapsed().as_millis() as u64 + 1
    };
    let (train_ms, score_ms) = (duration(&train), duration(&score));
    let mut state = 12345u64;
    let mut interrupted = 0;
    for round in 0..24 {
        let (args, full): (&[&str], u64) = if round % 2 == 0 { (&train, train_ms) } else { (&score, score_ms) };
        let before_model = std::fs::read(d.join("m.json")).unwrap();
        let before_scores = std::fs::read(d.join("scores.csv")).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rbm"))
            .args(args)
            .current_dir(d)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // Anywhere from the start to a little past the end of a full run.
        std::thread::sleep(std::time::Duration::from_millis((state >> 33) % (full + full / 5)));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_eq!(std::fs::read(d.join("data.csv")).unwrap(), data, "round {round}: the input changed");
        let model = std::fs::read(d.join("m.json")).unwrap();
        if model != before_model {
            ok(rbm(d, &["inspect", "--model", "m.json"]));
        }
        let scores = std::fs::read(d.join("scores.csv")).unwrap();
        if scores != before_scores {
            let text = String::from_utf8(scores.clone()).unwrap();
            assert_eq!(text.lines().count(), 6001, "round {round}: a partial score file");
        }
        interrupted += usize::from(!finished);
    }
    // Most kills land before the run could finish (measured: 17 of 24), some after it (a finished
    // run rewrites the same bytes: same seed, same model).
    assert!(interrupted >= 8, "only {interrupted} of 24 runs were interrupted");
    println!("{interrupted} of 24 runs interrupted");
    // The next write removes what the killed runs left.
    ok(rbm(d, &score));
    let left: Vec<String> = snapshot(d).into_keys().filter(|k| k.starts_with(".rbm-")).collect();
    assert!(left.is_empty() || !Path::new("/proc/self").exists(), "{left:?}");
}

/// The bad-input suite: every subcommand, every class of bad input, each one exit 2 with one
/// line on stderr, no panic, and every file in the directory unchanged (bytes compared), no
/// temporary file left.
#[test]
fn bad_input_suite_every_subcommand() {
    let dir = setup();
    let d = dir.path();
    let write = |name: &str, text: &[u8]| std::fs::write(d.join(name), text).unwrap();
    // Good files to point at.
    let mut binary = String::from("p,q,r,s\n");
    for i in 0..200 {
        binary += &format!("{},{},{},{}\n", i % 2, (i / 2) % 2, (i / 3) % 2, (i + 1) % 2);
    }
    write("bin.csv", binary.as_bytes());
    ok(rbm(
        d,
        &["train", "--input", "bin.csv", "--output", "bm.json", "--epochs", "2", "--quiet", "--report", "rep.json"],
    ));
    let mut labelled = String::from("x,y,z,label\n");
    for (i, line) in gaussian_csv(100).lines().skip(1).enumerate() {
        labelled += &format!("{line},{}\n", u8::from(i % 10 == 0));
    }
    write("labelled.csv", labelled.as_bytes());
    let mut ratings = String::from("user,item,rating\n");
    for u in 0..30 {
        for i in 0..8 {
            ratings += &format!("u{u},i{},{}\n", (u + i) % 12, 1 + (u * 3 + i) % 5);
        }
    }
    write("r.csv", ratings.as_bytes());
    ok(rbm(d, &["recommend", "train", "--ratings", "r.csv", "--output", "rm.json", "--epochs", "2", "--quiet"]));
    // Bad files.
    write("empty.csv", b"");
    write("header.csv", b"x,y,z\n");
    write("ragged.csv", b"x,y,z\n1,2,3\n1,2\n");
    write("nan.csv", b"x,y,z\n1,NaN,3\n");
    write("inf.csv", b"x,y,z\n1,2,inf\n");
    write("text.csv", b"x,y,z\n1,abc,3\n");
    write("garbage.bin", &(0..=255u8).cycle().take(2000).collect::<Vec<u8>>());
    write("two.csv", b"x,y\n1,2\n");
    write("nonbinary.csv", b"p,q,r,s\n0,1,2,0\n");
    write("corrupt.json", b"{");
    let model = std::fs::read_to_string(d.join("m.json")).unwrap();
    write("trunc.json", &model.as_bytes()[..model.len() / 2]);
    write("v99.json", model.replacen("\"version\": 2", "\"version\": 99", 1).as_bytes());
    std::fs::File::create(d.join("huge.json")).unwrap().set_len(3 << 30).unwrap(); // sparse
    write("badreport.json", b"{\"epochs\": 3}");
    write("badrating.csv", b"user,item,rating\nu1,i1,four\n");
    write("dupe.csv", b"user,item,rating\nu1,i1,4\nu1,i1,5\n");
    write("offlevel.csv", b"user,item,rating\nu1,i1,9\n");
    std::fs::create_dir(d.join("folder")).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        // train: files
        (vec!["train", "--input", "missing.csv", "--output", "n.json"], "missing.csv"),
        (vec!["train", "--input", "empty.csv", "--output", "n.json"], "empty"),
        (vec!["train", "--input", "header.csv", "--output", "n.json", "--visible", "gaussian"], "header.csv"),
        (vec!["train", "--input", "ragged.csv", "--output", "n.json", "--visible", "gaussian"], "line 3"),
        (vec!["train", "--input", "nan.csv", "--output", "n.json", "--visible", "gaussian"], "line 2"),
        (vec!["train", "--input", "inf.csv", "--output", "n.json", "--visible", "gaussian"], "line 2"),
        (vec!["train", "--input", "text.csv", "--output", "n.json", "--visible", "gaussian"], "abc"),
        (vec!["train", "--input", "garbage.bin", "--output", "n.json"], "garbage.bin"),
        (vec!["train", "--input", "folder", "--output", "n.json"], "folder"),
        (vec!["train", "--input", "data.csv", "--output", "n.json"], "Bernoulli"),
        (vec!["train", "--input", "data.csv", "--output", "folder", "--visible", "gaussian"], "directory"),
        // train: hyper-parameters
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--hidden", "0"], "hidden"),
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--epochs", "0"], "epochs"),
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--batch-size", "0"], "batch"),
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--learning-rate", "0"], "learning rate"),
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--learning-rate", "nan"], "learning rate"),
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--momentum", "1.5"], "momentum"),
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--weight-decay", "-1"], "weight decay"),
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--contamination", "1"], "contamination"),
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--cd-k", "0"], "Gibbs steps"),
        (
            vec!["train", "--input", "bin.csv", "--output", "n.json", "--sampler", "pt", "--temperatures", "1"],
            "temperatures",
        ),
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--visible", "foo"], "foo"),
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--column-kinds", "p=foo"], "foo"),
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--label-column", "nope"], "nope"),
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--learn-variance"], "Gaussian"),
        (vec!["train", "--input", "bin.csv", "--output", "n.json", "--seed", "x"], "seed"),
        // score
        (vec!["score", "--model", "missing.json", "--input", "data.csv"], "missing.json"),
        (vec!["score", "--model", "corrupt.json", "--input", "data.csv"], "corrupt.json"),
        (vec!["score", "--model", "trunc.json", "--input", "data.csv"], "trunc.json"),
        (vec!["score", "--model", "v99.json", "--input", "data.csv"], "99"),
        (vec!["score", "--model", "huge.json", "--input", "data.csv"], "huge.json"),
        (vec!["score", "--model", "garbage.bin", "--input", "data.csv"], "garbage.bin"),
        (vec!["score", "--model", "rm.json", "--input", "data.csv"], "rm.json"),
        (vec!["score", "--model", "m.json", "--input", "two.csv"], "z"),
        (vec!["score", "--model", "m.json", "--input", "nan.csv"], "line 2"),
        (vec!["score", "--model", "m.json", "--input", "empty.csv"], "empty"),
        (vec!["score", "--model", "bm.json", "--input", "nonbinary.csv"], "line 2"),
        (
            vec!["score", "--model", "m.json", "--input", "data.csv", "--fail-on-anomaly", "--threshold", "x"],
            "threshold",
        ),
        // eval
        (vec!["eval", "--model", "m.json", "--input", "labelled.csv", "--label-column", "nope"], "nope"),
        (vec!["eval", "--model", "m.json", "--input", "ragged.csv"], "line 3"),
        (vec!["eval", "--model", "m.json", "--input", "data.csv", "--log-likelihood", "ais", "--ais-runs", "0"], "AIS"),
        (vec!["eval", "--model", "m.json", "--input", "data.csv", "--plot", "roc.png"], "--label-column"),
        (vec!["eval", "--model", "trunc.json", "--input", "data.csv"], "trunc.json"),
        // sample
        (vec!["sample", "--model", "m.json", "--count", "0"], "count"),
        (vec!["sample", "--model", "m.json", "--count", "3", "--shape", "2x2"], "--shape"),
        (vec!["sample", "--model", "corrupt.json", "--count", "3"], "corrupt.json"),
        // inspect
        (vec!["inspect", "--model", "missing.json"], "missing.json"),
        (vec!["inspect", "--model", "garbage.bin"], "garbage.bin"),
        // plot
        (vec!["plot", "filters", "--model", "m.json", "--output", "f.png"], "gaussian"),
        (vec!["plot", "filters", "--model", "bm.json", "--output", "f.png", "--shape", "3x3"], "3x3"),
        (vec!["plot", "training", "--report", "badreport.json", "--output", "t.png"], "badreport.json"),
        (vec!["plot", "training", "--report", "missing.json", "--output", "t.png"], "missing.json"),
        (vec!["plot", "scores", "--model", "m.json", "--input", "missing.csv", "--output", "s.png"], "missing.csv"),
        // recommend
        (vec!["recommend", "train", "--ratings", "missing.csv", "--output", "n.json"], "missing.csv"),
        (vec!["recommend", "train", "--ratings", "badrating.csv", "--output", "n.json"], "line 2"),
        (vec!["recommend", "train", "--ratings", "dupe.csv", "--output", "n.json"], "line 3"),
        (vec!["recommend", "train", "--ratings", "r.csv", "--output", "n.json", "--hidden", "0"], "hidden"),
        (vec!["recommend", "train", "--ratings", "r.csv", "--output", "n.json", "--replicas", "99"], "replicas"),
        (vec!["recommend", "eval", "--model", "rm.json", "--train", "r.csv", "--test", "offlevel.csv"], "line 2"),
        (vec!["recommend", "eval", "--model", "m.json", "--train", "r.csv", "--test", "r.csv"], "m.json"),
        (vec!["recommend", "top", "--model", "rm.json", "--ratings", "r.csv", "--user", "nobody"], "nobody"),
        (
            vec![
                "recommend",
                "split",
                "--ratings",
                "r.csv",
                "--test-fraction",
                "2",
                "--train-out",
                "a.csv",
                "--test-out",
                "b.csv",
            ],
            "fraction",
        ),
        (vec!["recommend", "synthesize", "--users", "0", "--output", "s.csv"], "users"),
    ];
    assert!(cases.len() >= 60, "{} cases", cases.len());
    for (args, needle) in &cases {
        let before = snapshot(d);
        let run = rbm(d, args);
        assert_eq!(run.code, 2, "{args:?}: exit {} stderr {:?}", run.code, run.stderr);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
        // One error line (progress chatter before it is allowed; clap's usage errors add usage).
        let errors = run.stderr.lines().filter(|l| l.starts_with("rbm: ") || l.starts_with("error: ")).count();
        assert_eq!(errors, 1, "{args:?}: {:?}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {:?} lacks {needle:?}", run.stderr);
        assert!(snapshot(d) == before, "{args:?} changed a file");
    }
}

#[test]
fn negative_numbers_are_values_not_flags() {
    let dir = setup();
    let d = dir.path();
    // Free energies are often negative, so are thresholds; clap took `-5` for a flag.
    let run = ok(rbm(d, &["score", "--model", "m.json", "--input", "data.csv", "--threshold", "-5", "--quiet"]));
    assert!(run.stdout.lines().skip(1).all(|l| l.ends_with(",1") || l.ends_with(",0")));
    fails(rbm(d, &["train", "--input", "data.csv", "--output", "n.json", "--momentum", "-0.5"]), &["momentum", "-0.5"]);
}
