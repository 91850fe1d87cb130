//! Seeded synthetic ratings with the structure real ones have: latent tastes (a low-rank
//! user-item affinity), user and item biases, skewed user activity and item popularity, and
//! integer ratings 1 to 5. Used for the shipped example data, tests and the memory benchmark.

use std::collections::HashSet;
use std::io::Write;

use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

/// Latent taste dimensions.
const TASTES: usize = 6;

/// `ratings` distinct `(user, item, rating)` triples over `users` users and `items` items
/// (0-based indices, ratings 1 to 5), in generation order. `ratings` is capped at half the
/// user-item pairs, so drawing distinct pairs stays quick.
pub fn generate(users: usize, items: usize, ratings: usize, seed: u64) -> Vec<(u32, u32, u8)> {
    let mut rng = rbm_core::Stream::Synthetic.generator(seed, 0);
    let normal = |rng: &mut rand_xoshiro::Xoshiro256PlusPlus| -> f64 { StandardNormal.sample(rng) };
    let user_taste: Vec<f64> = (0..users * TASTES).map(|_| normal(&mut rng)).collect();
    let item_taste: Vec<f64> = (0..items * TASTES).map(|_| normal(&mut rng)).collect();
    let user_bias: Vec<f64> = (0..users).map(|_| 0.35 * normal(&mut rng)).collect();
    let item_bias: Vec<f64> = (0..items).map(|_| 0.45 * normal(&mut rng)).collect();
    // Activity and popularity: log-normal and Zipf-like weights, drawn through cumulative sums.
    let activity = cumulative((0..users).map(|_| (0.9 * normal(&mut rng)).exp()));
    let popularity = cumulative((0..items).map(|i| 1.0 / ((i as f64) + 8.0).powf(0.9)));
    let target = ratings.min(users * items / 2);
    let mut seen = HashSet::with_capacity(target);
    let mut out = Vec::with_capacity(target);
    while out.len() < target {
        let u = pick(&activity, rng.random::<f64>());
        let i = pick(&popularity, rng.random::<f64>());
        if !seen.insert((u as u64) << 32 | i as u64) {
            continue;
        }
        let affinity: f64 = (0..TASTES).map(|d| user_taste[u * TASTES + d] * item_taste[i * TASTES + d]).sum::<f64>()
            / (TASTES as f64).sqrt();
        let score = 3.55 + user_bias[u] + item_bias[i] + 0.75 * affinity + 0.45 * normal(&mut rng);
        out.push((u as u32, i as u32, score.round().clamp(1.0, 5.0) as u8));
    }
    out
}

fn cumulative(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut total = 0.0;
    let mut sums: Vec<f64> = weights
        .map(|w| {
            total += w;
            total
        })
        .collect();
    sums.iter_mut().for_each(|s| *s /= total);
    sums
}

fn pick(cumulative: &[f64], u: f64) -> usize {
    cumulative.partition_point(|&c| c < u).min(cumulative.len() - 1)
}

/// Writes triples as `user,item,rating` CSV with a header and 1-based ids.
pub fn write_csv(out: &mut impl Write, triples: &[(u32, u32, u8)]) -> std::io::Result<()> {
    writeln!(out, "user,item,rating")?;
    for &(u, i, r) in triples {
        writeln!(out, "{},{},{}", u + 1, i + 1, r)?;
    }
    Ok(())
}
