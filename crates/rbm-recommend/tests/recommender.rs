//! The recommender end to end through the library: it learns a planted taste structure in both
//! orientations, is deterministic across thread counts, falls back as documented, and its model
//! file round-trips and refuses corruption.

use std::ops::ControlFlow;
use std::path::Path;

use rbm_recommend::ratings::{Fields, IdMap, Ratings, parse_ratings};
use rbm_recommend::split::{SplitRule, split};
use rbm_recommend::{Orientation, RecommendParams, Recommender, Source, evaluate};

fn ratings_from(text: &str) -> Ratings {
    parse_ratings(text, Path::new("mem"), Fields::Ratings, IdMap::default(), IdMap::default()).unwrap()
}

/// Two taste groups: even users love items 0..20 (5) and dislike 20..40 (1), odd users the
/// reverse; every user rates about 60% of the items. Returns (train CSV, test CSV).
fn two_groups() -> (String, String) {
    let (mut train, mut test) = (String::from("user,item,rating\n"), String::from("user,item,rating\n"));
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    for u in 0..80 {
        for i in 0..40 {
            let r = next();
            if r > 0.6 {
                continue;
            }
            let likes = (u % 2 == 0) == (i < 20);
            let rating = if likes { 5 } else { 1 };
            let line = format!("u{u},i{i},{rating}\n");
            if r < 0.12 { test.push_str(&line) } else { train.push_str(&line) }
        }
    }
    (train, test)
}

fn small_params(orientation: Orientation) -> RecommendParams {
    let mut params = RecommendParams::new(orientation).with_seed(5);
    for p in [&mut params.user, &mut params.item] {
        p.hidden = 10;
        p.epochs = 30;
        p.batch_size = 10;
    }
    params.replicas = 1;
    params
}

fn fit(train: &Ratings, params: &RecommendParams) -> Recommender {
    Recommender::fit(train.clone(), &[], None, &params.clone().check().unwrap(), |_| ControlFlow::Continue(())).unwrap()
}

#[test]
fn every_orientation_learns_a_planted_two_group_taste() {
    let (train_text, test_text) = two_groups();
    let train = ratings_from(&train_text);
    let test = parse_ratings(&test_text, Path::new("test"), Fields::Ratings, train.users.clone(), train.items.clone())
        .unwrap();
    // Every item is loved by half the users: its mean (the fallback) is about 3, RMSE about 2.
    for orientation in [Orientation::User, Orientation::Item, Orientation::Both] {
        for conditional in [false, true] {
            let mut params = small_params(orientation);
            params.user.conditional = conditional;
            params.item.conditional = conditional;
            let model = fit(&train, &params);
            let context = model.context(&train, &[]).unwrap();
            let e = evaluate::evaluate(&model, &context, &test, 5, 4.0, rbm_recommend::DEFAULT_RANK_SHRINKAGE);
            println!("{orientation:?} conditional {conditional}: rmse {:.3} p@5 {:?}", e.rmse, e.precision_at_k);
            assert!(e.ranking_users > 0 && e.precision_at_k.is_some());
            // Binary-relevance NDCG is a ratio to the ideal ordering: in (0, 1] when some top
            // item is relevant (every user here has relevant test items in its loved group).
            let ndcg = e.ndcg_at_k.unwrap();
            assert!(ndcg > 0.0 && ndcg <= 1.0 + 1e-12, "{orientation:?}: NDCG {ndcg}");
            assert!(e.rmse < 0.6, "{orientation:?} conditional {conditional}: RMSE {}", e.rmse);
            // Ranking, by predicted rating or shrunk: each user's top 5 unrated items all belong
            // to the group it loves.
            for shrinkage in [0.0, rbm_recommend::DEFAULT_RANK_SHRINKAGE] {
                for u in 0..20 {
                    let user = train.users.get(&format!("u{u}")).unwrap();
                    for ranked in model.top(&context, user, 5, shrinkage) {
                        let i: usize = train.items.id(ranked.item)[1..].parse().unwrap();
                        assert_eq!(u % 2 == 0, i < 20, "{orientation:?}: user u{u} was recommended i{i}");
                    }
                }
            }
            assert_eq!(e.fallbacks.item_mean + e.fallbacks.user_mean + e.fallbacks.global_mean, 0);
        }
    }
}

#[test]
fn same_seed_gives_the_same_model_on_one_and_two_threads() {
    let (train_text, _) = two_groups();
    let train = ratings_from(&train_text);
    let mut params = small_params(Orientation::Both);
    params.replicas = 2;
    params.user.conditional = true;
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| fit(&train, &params).to_json())
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
    assert_ne!(one, fit(&train, &params.clone().with_seed(6)).to_json(), "another seed, another model");
}

#[test]
fn predictions_fall_back_as_documented_for_unknown_users_and_items() {
    let (train_text, _) = two_groups();
    let train = ratings_from(&train_text);
    let model = fit(&train, &small_params(Orientation::Item));
    // Context with a new user who rated a known item, and a new item rated by a known user.
    let extra = format!("{train_text}newuser,i0,5\nu0,newitem,5\n");
    let context_ratings =
        parse_ratings(&extra, Path::new("ctx"), Fields::Ratings, model.users.clone(), model.items.clone()).unwrap();
    let context = model.context(&context_ratings, &[]).unwrap();
    let id = |map: &IdMap, s: &str| map.get(s).unwrap();
    let (users, items) = (&context_ratings.users, &context_ratings.items);
    let known = model.predict(&context, id(users, "u0"), id(items, "i1"));
    assert_eq!(known.source, Source::Model);
    // Item-based: a new item is folded in from the ratings the context gives it...
    assert_eq!(model.predict(&context, id(users, "u0"), id(items, "newitem")).source, Source::Model);
    // ...but a new user is not an input of any item's RBM, so the item's mean is used.
    let p = model.predict(&context, id(users, "newuser"), id(items, "i1"));
    assert_eq!((p.source, p.value), (Source::ItemMean, model.item_means[id(items, "i1") as usize]));
    // Ids only in a test file (indices past the context's) have no ratings at all.
    let (mut test_users, mut test_items) = (users.clone(), items.clone());
    let (ghost_user, ghost_item) = (test_users.insert("ghost"), test_items.insert("ghost"));
    let p = model.predict(&context, id(users, "u0"), ghost_item);
    assert_eq!((p.source, p.value), (Source::UserMean, model.user_means[id(users, "u0") as usize]));
    let p = model.predict(&context, ghost_user, ghost_item);
    assert_eq!((p.source, p.value), (Source::GlobalMean, model.global_mean));
    // User-based: a new user is folded in from the ratings given, no fallback needed.
    let user_model = fit(&train, &small_params(Orientation::User));
    let context = user_model.context(&context_ratings, &[]).unwrap();
    assert_eq!(user_model.predict(&context, id(users, "newuser"), id(items, "i1")).source, Source::Model);
    // Top-N never recommends what the user rated, and is sorted.
    let u0 = id(users, "u0");
    let plain = user_model.top(&context, u0, 100, 0.0);
    assert!(plain.iter().all(|r| context.rated(u0).binary_search(&r.item).is_err()));
    assert!(plain.windows(2).all(|w| w[0].prediction.value >= w[1].prediction.value));
    assert!(plain.iter().all(|r| r.score == r.prediction.value));
    // Shrunk scores: (n r + λ r_min) / (n + λ), λ = shrinkage x mean ratings per model item.
    let shrunk = user_model.top(&context, u0, 100, 2.0);
    let counts = |item: u32| context_ratings.entries.iter().filter(|r| r.item == item).count() as f32;
    let per_item = (0..user_model.items.len() as u32).map(counts).sum::<f32>() / user_model.items.len() as f32;
    for r in &shrunk {
        let (n, lambda) = (counts(r.item), 2.0 * per_item);
        let want = (n * r.prediction.value + lambda * 1.0) / (n + lambda);
        assert!((r.score - want).abs() < 1e-4, "{r:?} vs {want}");
    }
    assert!(shrunk.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn model_file_round_trips_and_refuses_corruption() {
    let (train_text, _) = two_groups();
    let model = fit(&ratings_from(&train_text), &small_params(Orientation::Both));
    let json = model.to_json();
    let path = Path::new("model.json");
    assert_eq!(Recommender::from_json(&json, path).unwrap(), model);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let refuse = |edit: &dyn Fn(&mut serde_json::Value), expect: &str| {
        let mut v = value.clone();
        edit(&mut v);
        let message = Recommender::from_json(&v.to_string(), path).unwrap_err().to_string();
        assert!(message.contains(expect), "{message:?} should contain {expect:?}");
        assert!(message.starts_with("model.json"), "{message}");
    };
    refuse(&|v| v["format"] = "rbm-model".into(), "format");
    refuse(&|v| v["version"] = 99.into(), "version 99");
    refuse(&|v| v["components"][0]["rbm"]["weights"].as_array_mut().unwrap().truncate(5), "weights has 5 values");
    refuse(&|v| v["components"][1]["rbm"]["hidden_bias"][0] = serde_json::Value::Null, "invalid type: null");
    refuse(&|v| v["item_means"][0] = 1e300.into(), "item_means[0] is not finite");
    refuse(&|v| v["components"][0]["rbm"]["weights"][3] = 1e300.into(), "weights[3] is not finite");
    refuse(&|v| v["components"][0]["rbm"]["conditional"] = serde_json::json!([1.0]), "conditional has 1 values");
    refuse(&|v| v["items"].as_array_mut().unwrap().pop().map(drop).unwrap_or(()), "n_inputs");
    refuse(&|v| v["levels"] = serde_json::json!([5.0, 1.0]), "levels");
    refuse(&|v| v["blend"]["weights"] = serde_json::json!([1.0]), "blend.weights");
    refuse(&|v| v["surprise"] = 1.into(), "unknown field");
    assert!(Recommender::from_json(&json[..json.len() / 2], path).is_err());
    assert!(Recommender::from_json("", path).is_err());
}

#[test]
fn splits_are_seeded_disjoint_and_exact() {
    let (train_text, _) = two_groups();
    let ratings = ratings_from(&train_text);
    let n = ratings.entries.len();
    let a = split(&ratings, SplitRule::Random { fraction: 0.2 }, 1);
    assert_eq!(a.iter().filter(|&&t| t).count(), (0.2 * n as f64).round() as usize);
    assert_eq!(a, split(&ratings, SplitRule::Random { fraction: 0.2 }, 1));
    assert_ne!(a, split(&ratings, SplitRule::Random { fraction: 0.2 }, 2));
    let per_user = split(&ratings, SplitRule::PerUser { count: 3 }, 1);
    let mut held = vec![0usize; ratings.users.len()];
    let mut total = vec![0usize; ratings.users.len()];
    for (r, &t) in ratings.entries.iter().zip(&per_user) {
        total[r.user as usize] += 1;
        held[r.user as usize] += t as usize;
    }
    for (h, t) in held.iter().zip(&total) {
        assert_eq!(*h, if *t > 3 { 3 } else { 0 });
    }
}

#[test]
fn divergent_training_is_an_error_naming_the_rbm_and_epoch() {
    let (train_text, _) = two_groups();
    let mut params = small_params(Orientation::Item);
    params.item.learning_rate = 1e30;
    params.item.bias_learning_rate = 1e30;
    let error =
        Recommender::fit(ratings_from(&train_text), &[], None, &params.check().unwrap(), |_| ControlFlow::Continue(()))
            .unwrap_err()
            .to_string();
    assert!(error.contains("item-based RBM diverged in epoch 1"), "{error}");
}

#[test]
fn replicas_are_limited_by_the_blend() {
    // The blend holds at most 16 components (MAX_COMPONENTS), two per replica.
    let max = 8;
    let mut params = small_params(Orientation::User);
    params.replicas = max;
    assert!(params.clone().check().is_ok());
    params.replicas = max + 1;
    assert!(params.clone().check().is_err());
    params.replicas = 0;
    assert!(params.check().is_err());
}
