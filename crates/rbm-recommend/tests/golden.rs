//! Golden values: a small recommender trained with a fixed seed must keep its parameters and
//! predictions. When a change of results is intended, re-pin the values printed by the failing
//! test and say so in the commit.

use std::ops::ControlFlow;
use std::path::Path;

use rbm_recommend::ratings::{Fields, IdMap, parse_ratings};
use rbm_recommend::{Orientation, RecommendParams, Recommender};

#[test]
fn a_small_blended_recommender_keeps_its_values() {
    let mut csv = Vec::new();
    rbm_recommend::synthetic::write_csv(&mut csv, &rbm_recommend::synthetic::generate(60, 30, 900, 11)).unwrap();
    let text = String::from_utf8(csv).unwrap();
    let ratings = parse_ratings(&text, Path::new("mem"), Fields::Ratings, IdMap::default(), IdMap::default()).unwrap();
    let mut params = RecommendParams::new(Orientation::Both).with_seed(3);
    for p in [&mut params.user, &mut params.item] {
        p.hidden = 8;
        p.epochs = 10;
        p.batch_size = 10;
    }
    params.replicas = 1;
    let model =
        Recommender::fit(ratings.clone(), &[], None, &params.check().unwrap(), |_| ControlFlow::Continue(())).unwrap();
    let context = model.context(&ratings, &[]).unwrap();
    let mut got = Vec::new();
    for c in &model.components {
        let w = c.rbm.rbm().weights().as_slice();
        got.push(w.iter().map(|&x| x as f64).sum::<f64>());
        got.push(w.iter().map(|&x| (x as f64).powi(2)).sum::<f64>());
        got.push(c.rbm.conditioning().unwrap().iter().map(|&x| x as f64).sum::<f64>());
    }
    got.push(model.blend.intercept as f64);
    got.extend(model.blend.weights.iter().map(|&x| x as f64));
    got.extend((0..4).map(|u| model.predict(&context, u, 7).value as f64));
    println!("recommender: {got:?}");
    assert_eq!(got.len(), PINNED.len());
    for (g, p) in got.iter().zip(PINNED) {
        assert!((g - p).abs() <= 1e-4 * p.abs().max(1e-2), "fingerprint changed: got {got:?}, pinned {PINNED:?}");
    }
}

const PINNED: [f64; 13] = [
    -20.887634724320378,
    14.959033822822574,
    -20.420112314459402,
    -14.296583440562245,
    23.731773652726528,
    -15.659344893152593,
    -2.033242702484131,
    0.6798417568206787,
    0.9163435101509094,
    4.040602207183838,
    3.369938373565674,
    2.9953198432922363,
    3.284557819366455,
];
