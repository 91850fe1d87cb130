//! Rating and ranking metrics of a recommender on held-out ratings.
//!
//! Predictions condition only on the context (the training ratings); the held-out values are read
//! after every prediction is made, to score them.

use rayon::prelude::*;
use serde::Serialize;

use crate::ratings::Ratings;
use crate::recommender::{Context, Recommender, Source};

/// The JSON object `rbm recommend eval` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    /// Root mean squared error of the predicted ratings.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Mean over ranking users of (relevant items in the top k) / k; `None` (JSON null) when
    /// there is no ranking user or `k = 0`.
    pub precision_at_k: Option<f64>,
    /// Mean over ranking users of (relevant items in the top k) / (relevant items).
    pub recall_at_k: Option<f64>,
    /// Mean over ranking users of the binary-relevance NDCG of the top k.
    pub ndcg_at_k: Option<f64>,
    /// The k of the ranking metrics.
    pub k: usize,
    /// Distinct users in the test ratings.
    pub users: usize,
    /// Test ratings scored.
    pub ratings: usize,
    /// Users with at least one relevant test item (the ranking metrics average over these).
    pub ranking_users: usize,
    /// A test rating at or above this is relevant.
    pub relevance_threshold: f32,
    /// The ranking's shrinkage (see `Recommender::top`).
    pub rank_shrinkage: f32,
    /// Test ratings predicted by a fallback instead of the model, by kind.
    pub fallbacks: Fallbacks,
}

/// Counts of fallback predictions.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Fallbacks {
    /// Predicted by the item's mean rating.
    pub item_mean: usize,
    /// Predicted by the user's mean rating.
    pub user_mean: usize,
    /// Predicted by the global mean.
    pub global_mean: usize,
}

/// Scores `model` on `test`, whose ids share the context's maps. Ranking candidates for a user are
/// the model's items the user did not rate in the context; relevant items are test items rated at
/// least `relevance_threshold`; `k = 0` skips the ranking metrics. Lists are ranked by
/// [`Recommender::top`] with `rank_shrinkage`.
pub fn evaluate(
    model: &Recommender,
    context: &Context,
    test: &Ratings,
    k: usize,
    relevance_threshold: f32,
    rank_shrinkage: f32,
) -> Evaluation {
    let predictions: Vec<_> = test.entries.par_iter().map(|r| model.predict(context, r.user, r.item)).collect();
    let (mut squared, mut absolute) = (0.0f64, 0.0f64);
    let mut fallbacks = Fallbacks::default();
    for (r, p) in test.entries.iter().zip(&predictions) {
        let error = (p.value - r.value) as f64;
        squared += error * error;
        absolute += error.abs();
        match p.source {
            Source::Model => {}
            Source::ItemMean => fallbacks.item_mean += 1,
            Source::UserMean => fallbacks.user_mean += 1,
            Source::GlobalMean => fallbacks.global_mean += 1,
        }
    }
    let n = test.entries.len().max(1) as f64;

    let mut relevant: Vec<Vec<u32>> = vec![Vec::new(); test.users.len()];
    let mut seen = vec![false; test.users.len()];
    for r in &test.entries {
        seen[r.user as usize] = true;
        if r.value >= relevance_threshold && context.rated(r.user).binary_search(&r.item).is_err() {
            relevant[r.user as usize].push(r.item);
        }
    }
    let ranking: Vec<(f64, f64, f64)> = if k == 0 {
        Vec::new()
    } else {
        relevant
            .par_iter()
            .enumerate()
            .filter(|(_, items)| !items.is_empty())
            .map(|(user, items)| {
                let top = model.top(context, user as u32, k, rank_shrinkage);
                let gains: Vec<bool> = top.iter().map(|r| items.contains(&r.item)).collect();
                let hits = gains.iter().filter(|&&g| g).count() as f64;
                let dcg: f64 =
                    gains.iter().enumerate().filter(|(_, g)| **g).map(|(r, _)| 1.0 / (r as f64 + 2.0).log2()).sum();
                let ideal: f64 = (0..items.len().min(k)).map(|r| 1.0 / (r as f64 + 2.0).log2()).sum();
                (hits / k as f64, hits / items.len() as f64, dcg / ideal)
            })
            .collect()
    };
    let mean = |f: fn(&(f64, f64, f64)) -> f64| {
        (!ranking.is_empty()).then(|| ranking.iter().map(f).fold(0.0, |a, b| a + b) / ranking.len() as f64)
    };
    Evaluation {
        rmse: (squared / n).sqrt(),
        mae: absolute / n,
        precision_at_k: mean(|r| r.0),
        recall_at_k: mean(|r| r.1),
        ndcg_at_k: mean(|r| r.2),
        k,
        users: seen.iter().filter(|&&s| s).count(),
        ratings: test.entries.len(),
        ranking_users: ranking.len(),
        relevance_threshold,
        rank_shrinkage,
        fallbacks,
    }
}
