//! Nothing is lost: outputs are checked before any work, written to a temporary file and renamed
//! only on success, never over an input, through symbolic links to their targets, directly to
//! special files, with the umask's permissions; a failed run leaves every file as it was and no
//! temporary file behind.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{fails, ok, rbm, rbm_in};

/// Every file in `dir` with its bytes (names starting with `.rbm-` are temporary files).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
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
