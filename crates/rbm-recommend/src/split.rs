//! Train/test splits of a ratings file that keep its lines verbatim (format, timestamps, header).

use crate::ratings::Ratings;

/// How to split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SplitRule {
    /// Exactly `round(fraction * n)`
    /// ratings, chosen uniformly at random, go to the test part.
    Random {
        /// Fraction of ratings in the test part.
        fraction: f64,
    },
    /// For every user with more than `count` ratings, `count` of them chosen at random go to the
    /// test part (users with fewer keep all their ratings in the training part).
    PerUser {
        /// Ratings held out per user.
        count: usize,
    },
}

/// For each rating of `ratings` (in file order), whether it goes to the test part.
pub fn split(ratings: &Ratings, rule: SplitRule, seed: u64) -> Vec<bool> {
    let n = ratings.entries.len();
    let mut rng = rbm_core::Stream::Split.generator(seed, 0);
    let mut below = |bound: usize| (rand::Rng::next_u64(&mut rng) % bound as u64) as usize;
    let mut test = vec![false; n];
    match rule {
        SplitRule::Random { fraction } => {
            let take = ((fraction * n as f64).round() as usize).min(n);
            // Partial Fisher-Yates: the first `take` positions of a shuffled index list.
            let mut order: Vec<usize> = (0..n).collect();
            for i in 0..take {
                let j = i + below(n - i);
                order.swap(i, j);
                test[order[i]] = true;
            }
        }
        SplitRule::PerUser { count } => {
            let mut by_user: Vec<Vec<usize>> = vec![Vec::new(); ratings.users.len()];
            for (index, r) in ratings.entries.iter().enumerate() {
                by_user[r.user as usize].push(index);
            }
            for list in by_user.iter_mut().filter(|l| l.len() > count) {
                let len = list.len();
                for i in 0..count {
                    let j = i + below(len - i);
                    list.swap(i, j);
                    test[list[i]] = true;
                }
            }
        }
    }
    test
}
