//! The recommender: one or two softmax RBMs (user-based and item-based), a linear blend of their
//! predictions, the id maps and the fallbacks for users and items the model cannot predict.

use std::ops::ControlFlow;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{RecommendError, Result};
use crate::ratings::{IdMap, Ratings};
use rbm_core::Stream;
use rbm_core::masked::{
    self, Cases, ConditionalRbm, GradientScale, MaskedEpoch, MaskedParams, Reconstruction, ValidMaskedParams,
    Validation,
};

/// The most RBMs one recommender holds.
pub const MAX_COMPONENTS: usize = 16;

/// Seed distance between the replicas of one side.
const REPLICA_SEED_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

fn one() -> usize {
    1
}

/// The most distinct rating values accepted as softmax levels.
pub const MAX_LEVELS: usize = 32;

/// Which entity is a training case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// A case is a user; its visible units are the items it rated.
    User,
    /// A case is an item; its visible units are the users who rated it (I-RBM).
    Item,
}

impl Side {
    /// `"user"` or `"item"`.
    pub fn name(self) -> &'static str {
        match self {
            Side::User => "user",
            Side::Item => "item",
        }
    }
}

/// Which models to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Orientation {
    /// The user-based RBM of Salakhutdinov et al.
    User,
    /// The item-based RBM.
    Item,
    /// Both, blended linearly with weights fit on a held-out part of the training ratings.
    Both,
}

impl Orientation {
    /// The sides trained for this orientation.
    pub fn sides(self) -> &'static [Side] {
        match self {
            Orientation::User => &[Side::User],
            Orientation::Item => &[Side::Item],
            Orientation::Both => &[Side::User, Side::Item],
        }
    }
}

/// Everything that decides a trained recommender.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendParams {
    /// Which models.
    pub orientation: Orientation,
    /// Settings of the user-based RBM.
    pub user: MaskedParams,
    /// Settings of the item-based RBM.
    pub item: MaskedParams,
    /// Fraction of training ratings held out to fit the blend (orientation `both`).
    pub blend_fraction: f64,
    /// Seed of the blend hold-out (each RBM has its own seed in its settings).
    pub seed: u64,
    /// RBMs trained per side, with different seeds; with more than one, the blend weighs each.
    #[serde(default = "one")]
    pub replicas: usize,
    /// Orientation `both`: after fitting the blend, train both RBMs again on all the ratings
    /// (same settings) so the held-out part is not lost to the model.
    pub refit: bool,
}

impl RecommendParams {
    /// The defaults, chosen on a validation split of MovieLens-100K's u1.base (docs/recommend.md).
    pub fn new(orientation: Orientation) -> RecommendParams {
        let base = MaskedParams {
            hidden: 100,
            epochs: 30,
            batch_size: 100,
            learning_rate: 0.1,
            bias_learning_rate: 0.1,
            learning_rate_decay: 0.1,
            momentum: 0.9,
            weight_decay: 0.001,
            cd_steps: 1,
            growing_steps: true,
            gradient_scale: GradientScale::Batch,
            reconstruction: Reconstruction::MeanField,
            conditional: true,
            seed: 0,
        };
        RecommendParams {
            orientation,
            user: base.clone(),
            item: MaskedParams { hidden: 300, epochs: 25, seed: 1, ..base },
            blend_fraction: 0.1,
            seed: 0,
            refit: true,
            replicas: 2,
        }
    }

    /// Sets the seed of every random choice (each RBM gets its own stream of it).
    pub fn with_seed(mut self, seed: u64) -> RecommendParams {
        self.seed = seed;
        self.user.seed = seed.wrapping_mul(2);
        self.item.seed = seed.wrapping_mul(2).wrapping_add(1);
        self
    }

    /// The settings of one side.
    pub fn side(&self, side: Side) -> &MaskedParams {
        match side {
            Side::User => &self.user,
            Side::Item => &self.item,
        }
    }

    /// Validates every setting of the sides in use (by the core's rules, each with its own error)
    /// and the recommender's own, before any data are read.
    pub fn check(self) -> Result<ValidRecommendParams> {
        let mut sides = Vec::new();
        for &side in self.orientation.sides() {
            let valid = self
                .side(side)
                .clone()
                .check()
                .map_err(|source| RecommendError::InvalidSideParameter { side: side.name(), source })?;
            sides.push((side, valid));
        }
        if self.replicas == 0 || self.replicas > MAX_COMPONENTS / 2 {
            return Err(RecommendError::InvalidReplicas { value: self.replicas, max: MAX_COMPONENTS / 2 });
        }
        let blended = self.orientation == Orientation::Both || self.replicas > 1;
        if blended && !(self.blend_fraction > 0.0 && self.blend_fraction < 0.5) {
            return Err(RecommendError::InvalidBlendFraction(self.blend_fraction));
        }
        Ok(ValidRecommendParams { params: self, sides })
    }
}

/// Recommender settings that passed [`RecommendParams::check`], with each side's checked
/// masked-path settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidRecommendParams {
    params: RecommendParams,
    sides: Vec<(Side, ValidMaskedParams)>,
}

impl std::ops::Deref for ValidRecommendParams {
    type Target = RecommendParams;
    fn deref(&self) -> &RecommendParams {
        &self.params
    }
}

impl ValidRecommendParams {
    /// The checked settings of replica `replica` of one side in use (its seed moved by the
    /// replica number).
    fn replica(&self, side: Side, replica: usize) -> ValidMaskedParams {
        let (_, valid) = self.sides.iter().find(|(s, _)| *s == side).expect("only sides in use are trained");
        valid.with_seed(valid.seed.wrapping_add(REPLICA_SEED_STEP * replica as u64))
    }
}

/// One trained RBM and the side it takes cases from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// Which entity is a case.
    pub side: Side,
    /// Which of the side's RBMs (they differ only in seed).
    #[serde(default)]
    pub replica: usize,
    /// The parameters.
    pub rbm: ConditionalRbm,
    /// Epochs run.
    pub epochs_trained: usize,
}

/// `prediction = intercept + Σ weights[c] * component_prediction[c]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Blend {
    /// Constant term.
    pub intercept: f32,
    /// One weight per component.
    pub weights: Vec<f32>,
}

fn finite_or(mut values: Vec<f32>, fallback: f32) -> Vec<f32> {
    values.iter_mut().filter(|v| !v.is_finite()).for_each(|v| *v = fallback);
    values
}

/// Mean rating per key (item or user) of `triples`; NaN where a key has no rating.
fn mean_ratings(triples: &[(u32, u32, u8)], levels: &[f32], n: usize, key: fn(&(u32, u32, u8)) -> u32) -> Vec<f32> {
    let mut sum = vec![0.0f64; n];
    let mut count = vec![0u32; n];
    for t in triples {
        sum[key(t) as usize] += levels[t.2 as usize] as f64;
        count[key(t) as usize] += 1;
    }
    sum.iter().zip(&count).map(|(s, &c)| if c == 0 { f32::NAN } else { (s / c as f64) as f32 }).collect()
}

/// A trained recommender.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommender {
    /// The rating values, ascending; softmax level k stands for `levels[k]`.
    pub levels: Vec<f32>,
    /// User ids known to the model.
    pub users: IdMap,
    /// Item ids known to the model.
    pub items: IdMap,
    /// The RBMs.
    pub components: Vec<Component>,
    /// How their predictions combine.
    pub blend: Blend,
    /// Mean training rating: the last fallback.
    pub global_mean: f32,
    /// Mean training rating of each item (fallback for a user the model cannot read).
    pub item_means: Vec<f32>,
    /// Mean training rating of each user (fallback for an item the model cannot read).
    pub user_means: Vec<f32>,
    /// The settings it was trained with.
    pub params: RecommendParams,
    /// Whether `r` (conditional models) held more than the training ratings' pairs, and from where.
    pub implicit_source: Option<String>,
}

/// Where a prediction came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The RBM(s).
    Model,
    /// The item's mean training rating (the user had no usable ratings).
    ItemMean,
    /// The user's mean training rating (the item is unknown).
    UserMean,
    /// The global mean (neither is known).
    GlobalMean,
}

/// A predicted rating.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// Expected rating, within the range of the levels.
    pub value: f32,
    /// Where it came from.
    pub source: Source,
}

/// The sorted distinct rating values of `ratings`, refused when too many to be levels.
fn rating_levels(ratings: &Ratings) -> Result<Vec<f32>> {
    let mut levels: Vec<f32> = ratings.entries.iter().map(|r| r.value).collect();
    levels.sort_by(f32::total_cmp);
    levels.dedup();
    if levels.len() > MAX_LEVELS {
        return Err(RecommendError::TooManyLevels { path: ratings.path.clone(), found: levels.len(), max: MAX_LEVELS });
    }
    Ok(levels)
}

fn level_index(levels: &[f32], value: f32) -> Option<u8> {
    levels.iter().position(|&l| l == value).map(|k| k as u8)
}

/// Maps each rating to `(case, input, level)` for `side`.
fn oriented(triples: &[(u32, u32, u8)], side: Side) -> Vec<(u32, u32, u8)> {
    match side {
        Side::User => triples.to_vec(),
        Side::Item => triples.iter().map(|&(u, i, l)| (i, u, l)).collect(),
    }
}

fn oriented_pairs(pairs: &[(u32, u32)], side: Side) -> Vec<(u32, u32)> {
    match side {
        Side::User => pairs.to_vec(),
        Side::Item => pairs.iter().map(|&(u, i)| (i, u)).collect(),
    }
}

/// Least-squares blend of the predictions of `components` RBMs, `x` (one row per target), to
/// values `y`; equal weights when there are fewer rows than coefficients (a data set of one user
/// or one item leaves nothing to hold out), so that the model always has a weight per RBM.
fn fit_blend(components: usize, x: &[Vec<f32>], y: &[f32]) -> Blend {
    let p = components + 1;
    if x.len() < p {
        return Blend { intercept: 0.0, weights: vec![1.0 / components as f32; components] };
    }
    let mut normal = nalgebra::DMatrix::<f64>::zeros(p, p);
    let mut rhs = nalgebra::DVector::<f64>::zeros(p);
    for (row, &target) in x.iter().zip(y) {
        let features: Vec<f64> = std::iter::once(1.0).chain(row.iter().map(|&v| v as f64)).collect();
        for a in 0..p {
            rhs[a] += features[a] * target as f64;
            for b in 0..p {
                normal[(a, b)] += features[a] * features[b];
            }
        }
    }
    // A tiny ridge keeps the solve defined when the components agree exactly.
    for a in 0..p {
        normal[(a, a)] += 1e-6 * x.len() as f64;
    }
    match normal.cholesky() {
        Some(c) => {
            let w = c.solve(&rhs);
            Blend { intercept: w[0] as f32, weights: w.iter().skip(1).map(|&v| v as f32).collect() }
        }
        None => Blend { intercept: 0.0, weights: vec![1.0 / (p - 1) as f32; p - 1] },
    }
}

/// What training reports per epoch, per side.
#[derive(Clone, Debug, Serialize)]
pub struct TrainingEpoch {
    /// Which RBM.
    pub side: Side,
    /// Which of the side's replicas.
    pub replica: usize,
    /// Whether this run is the one kept in the model (false for the runs on the part of the
    /// ratings left after the blend's hold-out, when `refit` trains again on all of them).
    pub kept: bool,
    /// The epoch's statistics.
    #[serde(flatten)]
    pub stats: MaskedEpoch,
}

impl Recommender {
    /// Trains on `ratings`, with `implicit` `(user, item)` pairs (same id maps as `ratings`) added to
    /// the conditioning sets of conditional models. `on_epoch` sees each epoch of each RBM.
    ///
    /// `ratings` is taken by value: its entries are released once converted, which matters on
    /// large data (160 MB of the peak at 10 million ratings), and its id maps become the model's.
    /// Each side's cases are built once for the ratings that fit the blend and once for all of
    /// them, and shared by every replica, the blend's predictions and the refit.
    pub fn fit(
        ratings: Ratings,
        implicit: &[(u32, u32)],
        implicit_source: Option<String>,
        params: &ValidRecommendParams,
        mut on_epoch: impl FnMut(&TrainingEpoch) -> ControlFlow<()>,
    ) -> Result<Recommender> {
        let levels = rating_levels(&ratings)?;
        let triples: Vec<(u32, u32, u8)> = ratings
            .entries
            .iter()
            .map(|r| (r.user, r.item, level_index(&levels, r.value).expect("levels come from these ratings")))
            .collect();
        let ids = (ratings.users.len(), ratings.items.len());
        let global_mean =
            (ratings.entries.iter().map(|r| r.value as f64).sum::<f64>() / ratings.entries.len() as f64) as f32;
        let Ratings { users, items, entries, .. } = ratings;
        drop(entries);
        let sides = params.orientation.sides();
        let blended = sides.len() * params.replicas > 1;

        // With two RBMs, hold out a seeded fraction of the ratings to fit the blend on.
        let mut held_out = vec![false; triples.len()];
        if blended {
            let mut rng = Stream::HoldOut.generator(params.seed, 0);
            for h in held_out.iter_mut() {
                *h = (rbm_core::uniform01(&mut rng) as f64) < params.blend_fraction;
            }
        }
        let fit_triples: Vec<(u32, u32, u8)> = if blended {
            triples.iter().zip(&held_out).filter(|(_, h)| !**h).map(|(t, _)| *t).collect()
        } else {
            Vec::new()
        };
        let blend_targets: Vec<(u32, u32, f32)> =
            triples.iter().zip(&held_out).filter(|(_, h)| **h).map(|(t, _)| (t.0, t.1, levels[t.2 as usize])).collect();
        drop(held_out);

        let (components, blend) = if blended {
            let shared = (&levels[..], ids, params);
            Recommender::fit_blended(&triples, fit_triples, &blend_targets, shared, implicit, &mut on_epoch)?
        } else {
            let cases = side_cases(&triples, sides[0], ids, params, implicit);
            let run = Run { side: sides[0], replica: 0, kept: true };
            let component = train_side(run, &cases, &[], &levels, ids, params, &mut on_epoch)?;
            (vec![component], Blend { intercept: 0.0, weights: vec![1.0] })
        };
        let (n_users, n_items) = ids;
        Ok(Recommender {
            item_means: finite_or(mean_ratings(&triples, &levels, n_items, |t| t.1), global_mean),
            user_means: finite_or(mean_ratings(&triples, &levels, n_users, |t| t.0), global_mean),
            levels,
            users,
            items,
            components,
            blend,
            global_mean,
            params: (**params).clone(),
            implicit_source,
        })
    }

    /// The RBMs of a blended model and their blend: each RBM trained on the fit part predicts the
    /// held-out `targets`; the blend is fitted by least squares; with `refit`, every RBM is trained
    /// again on all the ratings (`triples`). With `refit`, each RBM is dropped right after its
    /// predictions, so at most one large RBM is in memory at a time. Each distinct set of cases
    /// (a side's fit part, a side's whole ratings) is built once, shared by the side's replicas
    /// and dropped before the next is built.
    fn fit_blended(
        triples: &[(u32, u32, u8)],
        fit_triples: Vec<(u32, u32, u8)>,
        targets: &[(u32, u32, f32)],
        (levels, ids, params): (&[f32], (usize, usize), &ValidRecommendParams),
        implicit: &[(u32, u32)],
        on_epoch: &mut impl FnMut(&TrainingEpoch) -> ControlFlow<()>,
    ) -> Result<(Vec<Component>, Blend)> {
        let refit = params.refit;
        let mut components = Vec::new();
        let mut held_out_predictions: Vec<Vec<Option<f32>>> = Vec::new();
        for &side in params.orientation.sides() {
            let fit_cases = side_cases(&fit_triples, side, ids, params, implicit);
            let side_targets = oriented_targets(targets, side);
            for replica in 0..params.replicas {
                let run = Run { side, replica, kept: !refit };
                let component = train_side(run, &fit_cases, &side_targets, levels, ids, params, on_epoch)?;
                let hidden = CaseHidden::from_cases(&component, &fit_cases);
                let predict = |&(u, i, _): &(u32, u32, f32)| hidden.predict(&component, levels, ids, u, i);
                held_out_predictions.push(targets.iter().map(predict).collect());
                if !refit {
                    components.push(component);
                }
            }
        }
        drop(fit_triples);
        // Rows where every RBM could predict; blend weights by least squares.
        let (x, y): (Vec<Vec<f32>>, Vec<f32>) = targets
            .iter()
            .enumerate()
            .filter_map(|(t, target)| {
                let row: Option<Vec<f32>> = held_out_predictions.iter().map(|p| p[t]).collect();
                Some((row?, target.2))
            })
            .unzip();
        let blend = fit_blend(held_out_predictions.len(), &x, &y);
        drop(held_out_predictions);
        if refit {
            for &side in params.orientation.sides() {
                let cases = side_cases(triples, side, ids, params, implicit);
                for replica in 0..params.replicas {
                    let run = Run { side, replica, kept: true };
                    components.push(train_side(run, &cases, &[], levels, ids, params, on_epoch)?);
                }
            }
        }
        Ok((components, blend))
    }

    /// The conditioning context for predictions: the ratings given (usually the training file)
    /// mapped to this model's indices. Ratings of users or items the model does not know can still
    /// form a case (a new user in the user-based RBM is folded in from its ratings of known items);
    /// they cannot be an input.
    pub fn context(&self, ratings: &Ratings, implicit: &[(u32, u32)]) -> Result<Context> {
        let mut triples = Vec::with_capacity(ratings.entries.len());
        for r in &ratings.entries {
            let level = level_index(&self.levels, r.value).ok_or_else(|| RecommendError::UnknownLevel {
                path: ratings.path.clone(),
                line: r.line.into(),
                value: r.value,
                levels: self.levels.clone(),
            })?;
            triples.push((r.user, r.item, level));
        }
        Ok(self.context_from_triples(&triples, implicit, ratings.users.len(), ratings.items.len()))
    }

    fn context_from_triples(
        &self,
        triples: &[(u32, u32, u8)],
        implicit: &[(u32, u32)],
        n_users: usize,
        n_items: usize,
    ) -> Context {
        let known = (self.users.len(), self.items.len());
        let hidden =
            self.components.iter().map(|c| CaseHidden::new(c, triples, implicit, (n_users, n_items), known)).collect();
        let mut rated: Vec<Vec<u32>> = vec![Vec::new(); n_users];
        let mut item_counts = vec![0u32; n_items];
        for &(u, i, _) in triples {
            rated[u as usize].push(i);
            item_counts[i as usize] += 1;
        }
        rated.iter_mut().for_each(|r| r.sort_unstable());
        let known = self.items.len();
        let total: u64 = item_counts.iter().take(known).map(|&c| c as u64).sum();
        let ratings_per_item = total as f32 / known.max(1) as f32;
        Context { components: hidden, rated, item_counts, ratings_per_item }
    }

    /// Component `c`'s prediction for `(user, item)`, or `None` if it cannot read the pair
    /// (unknown input, or a case without usable ratings).
    fn component_prediction(&self, context: &Context, c: usize, user: u32, item: u32) -> Option<f32> {
        let known = (self.users.len(), self.items.len());
        context.components[c].predict(&self.components[c], &self.levels, known, user, item)
    }

    /// The predicted rating of `item` by `user` (indices in the context's id maps), with the
    /// documented fallbacks: the item's mean rating if the item is known, else the user's mean
    /// rating if the user is known, else the global mean.
    pub fn predict(&self, context: &Context, user: u32, item: u32) -> Prediction {
        let (low, high) = (self.levels[0], *self.levels.last().unwrap());
        let weighted = self
            .blend
            .weights
            .iter()
            .enumerate()
            .try_fold(0.0f32, |total, (c, w)| Some(total + self.component_prediction(context, c, user, item)? * w));
        if let Some(weighted) = weighted {
            let value = self.blend.intercept + weighted;
            return Prediction { value: value.clamp(low, high), source: Source::Model };
        }
        if (item as usize) < self.items.len() {
            Prediction { value: self.item_means[item as usize], source: Source::ItemMean }
        } else if (user as usize) < self.users.len() {
            Prediction { value: self.user_means[user as usize], source: Source::UserMean }
        } else {
            Prediction { value: self.global_mean, source: Source::GlobalMean }
        }
    }

    /// The `count` best items for `user` among the model's items the user has not rated in the
    /// context, best first (ties broken by item index), with their predictions and ranking scores.
    ///
    /// The ranking score shrinks each predicted rating towards the lowest level by `λ` pseudo-
    /// ratings, `(n_i r̂ + λ r_min) / (n_i + λ)`, where `n_i` counts the item's ratings in the
    /// context and `λ = shrinkage x` the mean count per item: an item must have evidence to rank
    /// high. With `shrinkage = 0` the ranking is by predicted rating alone, which favours items
    /// too rarely rated to be known (see docs/recommend.md for what each gives on MovieLens).
    pub fn top(&self, context: &Context, user: u32, count: usize, shrinkage: f32) -> Vec<Ranked> {
        let rated = context.rated.get(user as usize).map_or(&[][..], Vec::as_slice);
        let known = self.items.len();
        let pseudo = shrinkage * context.ratings_per_item;
        let lowest = self.levels[0];
        let mut scored: Vec<Ranked> = (0..known as u32)
            .into_par_iter()
            .filter(|i| rated.binary_search(i).is_err())
            .map(|item| {
                let prediction = self.predict(context, user, item);
                let n = context.item_counts.get(item as usize).copied().unwrap_or(0) as f32;
                let score = if pseudo > 0.0 {
                    (n * prediction.value + pseudo * lowest) / (n + pseudo)
                } else {
                    prediction.value
                };
                Ranked { item, prediction, score }
            })
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
        scored.truncate(count);
        scored
    }
}

/// One item of a top-N list.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ranked {
    /// Item index.
    pub item: u32,
    /// The predicted rating.
    pub prediction: Prediction,
    /// What the list is sorted by (see [`Recommender::top`]).
    pub score: f32,
}

/// The default `shrinkage` of [`Recommender::top`], chosen on the validation split of
/// MovieLens-100K's u1.base (docs/recommend.md).
pub const DEFAULT_RANK_SHRINKAGE: f32 = 4.0;

/// Which RBM a training run makes: its side, its replica, and whether it is the one kept.
#[derive(Clone, Copy)]
struct Run {
    side: Side,
    replica: usize,
    kept: bool,
}

/// `(n_cases, n_inputs)` of `side` for `(n_users, n_items)` ids.
fn oriented_ids((n_users, n_items): (usize, usize), side: Side) -> (usize, usize) {
    match side {
        Side::User => (n_users, n_items),
        Side::Item => (n_items, n_users),
    }
}

/// The cases of `side` from `(user, item, level)` triples, with the `implicit` pairs in the
/// conditioning sets of a conditional model.
fn side_cases(
    triples: &[(u32, u32, u8)],
    side: Side,
    ids: (usize, usize),
    params: &ValidRecommendParams,
    implicit: &[(u32, u32)],
) -> Cases {
    let n_cases = oriented_ids(ids, side).0;
    Cases::new(n_cases, &oriented(triples, side), &oriented_pairs(implicit, side), params.side(side).conditional)
}

/// `(user, item, value)` targets as `(case, input, value)` of `side`, sorted by case.
fn oriented_targets(targets: &[(u32, u32, f32)], side: Side) -> Vec<(u32, u32, f32)> {
    let mut oriented: Vec<(u32, u32, f32)> = targets
        .iter()
        .map(|&(u, i, v)| match side {
            Side::User => (u, i, v),
            Side::Item => (i, u, v),
        })
        .collect();
    oriented.sort_by_key(|t| (t.0, t.1));
    oriented
}

/// Trains one RBM of `run.side` on `cases`, reporting held-out RMSE on `targets` (oriented and
/// sorted) when given.
fn train_side(
    run: Run,
    cases: &Cases,
    targets: &[(u32, u32, f32)],
    levels: &[f32],
    ids: (usize, usize),
    params: &ValidRecommendParams,
    on_epoch: &mut impl FnMut(&TrainingEpoch) -> ControlFlow<()>,
) -> Result<Component> {
    let Run { side, replica, kept } = run;
    let validation = Validation { targets, level_values: levels };
    let (rbm, history) = masked::train(
        cases,
        oriented_ids(ids, side).1,
        levels.len(),
        &params.replica(side, replica),
        (!targets.is_empty()).then_some(&validation),
        |stats| on_epoch(&TrainingEpoch { side, replica, kept, stats: stats.clone() }),
    )
    .map_err(|e| match e {
        rbm_core::RbmError::Diverged { epoch } => RecommendError::Diverged { orientation: side.name(), epoch },
        other => other.into(),
    })?;
    Ok(Component { side, replica, rbm, epochs_trained: history.len() })
}

/// Hidden probabilities of every case of one component, from the conditioning ratings.
struct CaseHidden {
    hidden: Vec<f32>,
    has_ratings: Vec<bool>,
}

impl CaseHidden {
    /// `p̂(h)` of every case of `component` from conditioning `triples` (user, item, level) over
    /// `(n_users, n_items)` ids, of which the model knows the first `known = (users, items)`:
    /// ratings of unknown inputs are left out, as they have no weights.
    fn new(
        component: &Component,
        triples: &[(u32, u32, u8)],
        implicit: &[(u32, u32)],
        (n_users, n_items): (usize, usize),
        (known_users, known_items): (usize, usize),
    ) -> CaseHidden {
        let (n_cases, known_inputs) = match component.side {
            Side::User => (n_users, known_items as u32),
            Side::Item => (n_items, known_users as u32),
        };
        let observed: Vec<(u32, u32, u8)> =
            oriented(triples, component.side).into_iter().filter(|t| t.1 < known_inputs).collect();
        let extra: Vec<(u32, u32)> =
            oriented_pairs(implicit, component.side).into_iter().filter(|p| p.1 < known_inputs).collect();
        let cases = Cases::new(n_cases, &observed, &extra, component.rbm.conditioning().is_some());
        CaseHidden::from_cases(component, &cases)
    }

    /// `p̂(h)` of every case of `cases` (whose inputs `component` must know).
    fn from_cases(component: &Component, cases: &Cases) -> CaseHidden {
        let f = component.rbm.n_hidden();
        let mut hidden = vec![0.0f32; cases.len() * f];
        hidden.par_chunks_mut(f).enumerate().for_each(|(c, out)| {
            let (inputs, levels) = cases.observed(c);
            component.rbm.hidden_probabilities(inputs, levels, cases.implicit(c), out);
        });
        let has_ratings = (0..cases.len()).map(|c| !cases.observed(c).0.is_empty()).collect();
        CaseHidden { hidden, has_ratings }
    }

    /// `component`'s expected rating of `item` by `user`, or `None` if it cannot read the pair
    /// (an input unknown to the model, or a case without usable ratings).
    fn predict(
        &self,
        component: &Component,
        levels: &[f32],
        (known_users, known_items): (usize, usize),
        user: u32,
        item: u32,
    ) -> Option<f32> {
        let (case, input, known) = match component.side {
            Side::User => (user, item, known_items),
            Side::Item => (item, user, known_users),
        };
        let f = component.rbm.n_hidden();
        if input as usize >= known || !*self.has_ratings.get(case as usize)? {
            return None;
        }
        let h = &self.hidden[case as usize * f..][..f];
        // Levels are at most MAX_LEVELS: a stack buffer keeps prediction free of allocation.
        let mut scratch = [0.0f32; MAX_LEVELS];
        Some(component.rbm.expected_value(h, input, levels, &mut scratch[..levels.len()]))
    }
}

/// What predictions condition on: every case's mean-field hidden probabilities and each user's
/// rated items, computed once from a ratings file.
pub struct Context {
    components: Vec<CaseHidden>,
    rated: Vec<Vec<u32>>,
    item_counts: Vec<u32>,
    /// Mean number of conditioning ratings per item the model knows (the shrinkage's unit).
    ratings_per_item: f32,
}

impl Context {
    /// The items (sorted indices) that `user` rated in the conditioning ratings.
    pub fn rated(&self, user: u32) -> &[u32] {
        self.rated.get(user as usize).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_targets_are_oriented_and_sorted_by_case() {
        let targets = [(2, 0, 4.0), (0, 3, 1.0), (1, 0, 5.0), (0, 1, 2.0)];
        assert_eq!(oriented_targets(&targets, Side::User), [(0, 1, 2.0), (0, 3, 1.0), (1, 0, 5.0), (2, 0, 4.0)]);
        // Item-based: items are the cases, users the inputs.
        assert_eq!(oriented_targets(&targets, Side::Item), [(0, 1, 5.0), (0, 2, 4.0), (1, 0, 2.0), (3, 0, 1.0)]);
        assert!(oriented_targets(&[], Side::Item).is_empty());
    }
}
