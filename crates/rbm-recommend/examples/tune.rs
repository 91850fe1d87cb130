//! Trains on one ratings file and scores another, with settings overridden from JSON: the tool
//! the defaults were chosen with (on a validation split of the training data, never the test).
//!
//! `cargo run --release -p rbm-recommend --example tune -- TRAIN TEST ORIENTATION '{"user":{"epochs":40}}'`

use std::ops::ControlFlow;
use std::path::Path;

use rbm_recommend::ratings::{Fields, IdMap, read_ratings};
use rbm_recommend::{Orientation, RecommendParams, Recommender, evaluate};

fn merge(base: &mut serde_json::Value, over: &serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, train, test, orientation, overrides] = &args[..] else {
        return Err("usage: tune TRAIN TEST user|item|both OVERRIDES_JSON".into());
    };
    let orientation: Orientation = serde_json::from_value(serde_json::Value::String(orientation.clone()))?;
    let mut params = serde_json::to_value(RecommendParams::new(orientation))?;
    merge(&mut params, &serde_json::from_str(overrides)?);
    let params: RecommendParams = serde_json::from_value(params)?;
    let ratings = read_ratings(Path::new(train), Fields::Ratings, IdMap::default(), IdMap::default())?;
    let start = std::time::Instant::now();
    let mut curve = Vec::new();
    let model = Recommender::fit(ratings.clone(), &[], None, &params.clone().check()?, |e| {
        curve.push((e.side, e.stats.epoch, e.stats.validation_rmse));
        ControlFlow::Continue(())
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let test = read_ratings(Path::new(test), Fields::Ratings, ratings.users.clone(), ratings.items.clone())?;
    let context = model.context(&ratings, &[])?;
    let e = evaluate::evaluate(&model, &context, &test, 10, 4.0, rbm_recommend::DEFAULT_RANK_SHRINKAGE);
    println!(
        "rmse {:.4} mae {:.4} p@10 {:.4} ndcg@10 {:.4} train {seconds:.2}s blend {:?} {}",
        e.rmse,
        e.mae,
        e.precision_at_k.unwrap_or(f64::NAN),
        e.ndcg_at_k.unwrap_or(f64::NAN),
        model.blend,
        overrides
    );
    Ok(())
}
