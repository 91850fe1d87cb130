//! `rbm plot`, `rbm sample --output S.png` and `rbm eval --plot`: each picture rendered from a small
//! model, decoded, and checked for its size and for content (not blank, the colours and grey
//! levels it should hold), and the located errors where a picture makes no sense.

mod common;

use std::path::Path;

use common::{fails, ok, rbm};

/// 8x8 binary images of one horizontal or vertical bar, 5% of pixels flipped; rows whose label
/// is 1 hold two crossing bars.
fn bars_csv(rows: usize) -> String {
    let mut s: String = (0..64).map(|p| format!("p{p},")).collect::<String>() + "label\n";
    let mut state = 11u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    for r in 0..rows {
        let anomaly = r % 20 == 0;
        let (row, column) = (next() % 8, next() % 8);
        let vertical = next() % 2 == 0;
        let pixels: Vec<String> = (0..64)
            .map(|p| {
                let on = if anomaly {
                    p / 8 == row || p % 8 == column
                } else if vertical {
                    p % 8 == column
                } else {
                    p / 8 == row
                };
                (u8::from(on) ^ u8::from(next() % 20 == 0)).to_string()
            })
            .collect();
        s += &format!("{},{}\n", pixels.join(","), u8::from(anomaly));
    }
    s
}

/// A directory with bars.csv and an image model trained on it (6 hidden units, a threshold, a
/// training report with validation free energies).
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bars.csv"), bars_csv(300)).unwrap();
    ok(rbm(
        dir.path(),
        &[
            "train",
            "--input",
            "bars.csv",
            "--label-column",
            "label",
            "--validation",
            "bars.csv",
            "--hidden",
            "6",
            "--epochs",
            "6",
            "--contamination",
            "0.05",
            "--report",
            "report.json",
            "--output",
            "model.json",
            "--quiet",
        ],
    ));
    dir
}

fn picture(path: &Path) -> image::RgbImage {
    image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8()
}

fn distinct_colours(picture: &image::RgbImage) -> usize {
    picture.pixels().map(|p| p.0).collect::<std::collections::HashSet<_>>().len()
}

/// Pixels close to `colour` (each channel within 30).
fn count_near(picture: &image::RgbImage, colour: [u8; 3]) -> usize {
    picture.pixels().filter(|p| p.0.iter().zip(colour).all(|(&a, b)| a.abs_diff(b) <= 30)).count()
}

/// Dark pixels (text, axes) in the band of rows `top..bottom`.
fn dark_in_rows(picture: &image::RgbImage, top: u32, bottom: u32) -> usize {
    (top..bottom)
        .flat_map(|y| (0..picture.width()).map(move |x| (x, y)))
        .filter(|&(x, y)| picture.get_pixel(x, y).0.iter().all(|&c| c < 100))
        .count()
}

#[test]
fn filters_are_tiles_each_spanning_black_to_white_in_a_grid() {
    let dir = setup();
    let d = dir.path();
    ok(rbm(d, &["plot", "filters", "--model", "model.json", "--output", "filters.png"]));
    let filters = picture(&d.join("filters.png"));
    // Six 8x8 tiles: 3 columns, 2 rows, each pixel 6x6 (tiles about 48 pixels wide), 2-pixel gaps.
    assert_eq!(filters.dimensions(), (3 * (8 * 6 + 2) + 2, 2 * (8 * 6 + 2) + 2));
    for tile in 0..6u32 {
        let (left, top) = (2 + (tile % 3) * 50, 2 + (tile / 3) * 50);
        let greys: Vec<u8> = (0..48)
            .flat_map(|y| (0..48).map(move |x| (x, y)))
            .map(|(x, y)| filters.get_pixel(left + x, top + y).0[0])
            .collect();
        assert_eq!(greys.iter().min(), Some(&0), "tile {tile} has no black pixel");
        assert_eq!(greys.iter().max(), Some(&255), "tile {tile} has no white pixel");
    }
    assert!(distinct_colours(&filters) > 20);

    // An explicit shape with the same number of pixels.
    ok(rbm(d, &["plot", "filters", "--model", "model.json", "--shape", "4x16", "--output", "wide.png"]));
    assert_eq!(picture(&d.join("wide.png")).dimensions(), (3 * (16 * 3 + 2) + 2, 2 * (4 * 3 + 2) + 2));
    fails(
        rbm(d, &["plot", "filters", "--model", "model.json", "--shape", "5x5", "--output", "x.png"]),
        &["25 pixels", "64 visible units"],
    );
    fails(rbm(d, &["plot", "filters", "--model", "model.json", "--shape", "8by8", "--output", "x.png"]), &["--shape"]);
    assert!(!d.join("x.png").exists());
}

#[test]
fn filters_are_refused_for_gaussian_non_square_and_recommender_models() {
    let dir = setup();
    let d = dir.path();
    let gaussian: String = (0..60).map(|i| format!("{},{}\n", i % 7, (i * 13) % 11)).collect();
    std::fs::write(d.join("numbers.csv"), format!("x,y\n{gaussian}")).unwrap();
    ok(rbm(
        d,
        &[
            "train",
            "--input",
            "numbers.csv",
            "--visible",
            "gaussian",
            "--hidden",
            "2",
            "--epochs",
            "2",
            "--output",
            "g.json",
            "--quiet",
        ],
    ));
    fails(
        rbm(d, &["plot", "filters", "--model", "g.json", "--output", "x.png"]),
        &["g.json", "image models", "gaussian"],
    );

    let binary: String = (0..60).map(|i| format!("{},{},{}\n", i % 2, (i / 2) % 2, (i / 3) % 2)).collect();
    std::fs::write(d.join("three.csv"), format!("a,b,c\n{binary}")).unwrap();
    ok(rbm(d, &["train", "--input", "three.csv", "--hidden", "2", "--epochs", "2", "--output", "b.json", "--quiet"]));
    fails(rbm(d, &["plot", "filters", "--model", "b.json", "--output", "x.png"]), &["not a square image", "--shape"]);
    ok(rbm(d, &["plot", "filters", "--model", "b.json", "--shape", "1x3", "--output", "three.png"]));

    ok(rbm(d, &["recommend", "synthesize", "--users", "30", "--items", "20", "--ratings", "300", "--output", "r.csv"]));
    ok(rbm(
        d,
        &[
            "recommend",
            "train",
            "--ratings",
            "r.csv",
            "--hidden",
            "4",
            "--epochs",
            "2",
            "--output",
            "rec.json",
            "--quiet",
        ],
    ));
    fails(rbm(d, &["plot", "filters", "--model", "rec.json", "--output", "x.png"]), &["rec.json", "recommender"]);
    assert!(!d.join("x.png").exists());
}

#[test]
fn training_curves_draw_both_free_energies_with_text() {
    let dir = setup();
    let d = dir.path();
    ok(rbm(d, &["plot", "training", "--report", "report.json", "--output", "training.png"]));
    let training = picture(&d.join("training.png"));
    assert_eq!(training.dimensions(), (900, 760));
    // Blue lines (reconstruction error, training free energy) and a red one (validation).
    assert!(count_near(&training, [0, 0, 255]) > 500);
    assert!(count_near(&training, [255, 0, 0]) > 200);
    // The titles are rendered with the embedded font: dark pixels in the caption band.
    assert!(dark_in_rows(&training, 5, 30) > 50);

    std::fs::write(d.join("not-a-report.json"), r#"{"rows": 3}"#).unwrap();
    fails(
        rbm(d, &["plot", "training", "--report", "not-a-report.json", "--output", "x.png"]),
        &["not-a-report.json", "not a training report"],
    );
    std::fs::write(d.join("empty.json"), r#"{"epochs": []}"#).unwrap();
    fails(rbm(d, &["plot", "training", "--report", "empty.json", "--output", "x.png"]), &["no epochs"]);
    assert!(!d.join("x.png").exists());
}

#[test]
fn score_histogram_splits_by_label_and_draws_the_threshold() {
    let dir = setup();
    let d = dir.path();
    ok(rbm(
        d,
        &[
            "plot",
            "scores",
            "--model",
            "model.json",
            "--input",
            "bars.csv",
            "--label-column",
            "label",
            "--output",
            "scores.png",
        ],
    ));
    let scores = picture(&d.join("scores.png"));
    assert_eq!(scores.dimensions(), (900, 560));
    // Translucent blue (normal) and red (anomalous) bars, and the black threshold line.
    assert!(count_near(&scores, [140, 140, 255]) > 1000);
    assert!(count_near(&scores, [255, 140, 140]) > 200);
    let black_columns = (0..scores.width())
        .filter(|&x| (100..450).filter(|&y| scores.get_pixel(x, y).0 == [0, 0, 0]).count() > 300)
        .count();
    assert!(black_columns >= 2, "the threshold line: {black_columns} black columns");

    // Without labels one group (the model picks its columns by name: the label column is left out).
    ok(rbm(d, &["plot", "scores", "--model", "model.json", "--input", "bars.csv", "--output", "all.png"]));
    assert!(count_near(&picture(&d.join("all.png")), [255, 140, 140]) < 50);
    assert!(count_near(&picture(&d.join("all.png")), [140, 140, 255]) > 1000);
    let wrong_label = rbm(
        d,
        &[
            "plot",
            "scores",
            "--model",
            "model.json",
            "--input",
            "bars.csv",
            "--label-column",
            "nosuch",
            "--output",
            "x.png",
        ],
    );
    fails(wrong_label, &["nosuch"]);
    assert!(!d.join("x.png").exists());
}

#[test]
fn samples_of_an_image_model_can_be_a_png_grid() {
    let dir = setup();
    let d = dir.path();
    ok(rbm(d, &["sample", "--model", "model.json", "--count", "9", "--gibbs-steps", "20", "--output", "samples.png"]));
    let samples = picture(&d.join("samples.png"));
    assert_eq!(samples.dimensions(), (3 * 50 + 2, 3 * 50 + 2));
    // Binary samples: black and white pixels (and the background between tiles).
    assert!(count_near(&samples, [255, 255, 255]) > 9 * 36);
    assert!(samples.pixels().all(|p| matches!(p.0, [0, 0, 0] | [255, 255, 255] | [90, 90, 110])));
    fails(rbm(d, &["sample", "--model", "model.json", "--count", "9", "--shape", "8x8"]), &["--shape", ".png"]);
}

#[test]
fn eval_draws_roc_and_precision_recall_curves() {
    let dir = setup();
    let d = dir.path();
    let run = ok(rbm(
        d,
        &["eval", "--model", "model.json", "--input", "bars.csv", "--label-column", "label", "--plot", "roc.png"],
    ));
    assert!(run.stdout.contains("roc_auc"));
    let curves = picture(&d.join("roc.png"));
    assert_eq!(curves.dimensions(), (1100, 520));
    assert!(count_near(&curves, [0, 0, 255]) > 300);
    assert!(count_near(&curves, [255, 0, 0]) > 300);
    assert!(dark_in_rows(&curves, 5, 30) > 50);
    fails(
        rbm(d, &["eval", "--model", "model.json", "--input", "bars.csv", "--plot", "x.png"]),
        &["--plot", "--label-column"],
    );
    assert!(!d.join("x.png").exists());
}
