//! Anomaly-scoring metrics and the contamination threshold. Higher score = more anomalous.

use rayon::slice::ParallelSliceMut;

/// Area under the ROC curve of `scores` against binary `labels` (true = positive/anomaly), by the
/// Mann-Whitney statistic with average ranks for ties (a tie between a positive and a negative
/// counts one half). `None` when either class is absent, or when the lengths differ.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() {
        return None;
    }
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let rows = in_score_order(scores, labels, false);
    let mut rank_sum_positive = 0.0f64;
    let mut start = 0;
    while start < rows.len() {
        let mut end = start;
        while end + 1 < rows.len() && rows[end + 1].score == rows[start].score {
            end += 1;
        }
        let average_rank = (start + end) as f64 / 2.0 + 1.0;
        rank_sum_positive += average_rank * rows[start..=end].iter().filter(|r| r.positive()).count() as f64;
        start = end + 1;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum_positive - p * (p + 1.0) / 2.0) / (p * n))
}

/// A row's score, and its index (which breaks ties) and label in one word: 16 bytes a row.
struct Scored {
    score: f64,
    /// `index << 1 | label`.
    index_and_label: u64,
}

impl Scored {
    fn positive(&self) -> bool {
        self.index_and_label & 1 == 1
    }
}

/// The rows in score order (`descending` or not), tied scores in index order: the order a stable
/// sort gives, on any number of threads. The rows are sorted as contiguous records rather than
/// as indices into the scores, each of whose comparisons would read two random places of a
/// large array.
fn in_score_order(scores: &[f64], labels: &[bool], descending: bool) -> Vec<Scored> {
    let mut rows: Vec<Scored> = scores
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(index, (&score, &positive))| Scored {
            score,
            index_and_label: (index as u64) << 1 | u64::from(positive),
        })
        .collect();
    rows.par_sort_unstable_by(|a, b| {
        let by_score = if descending { b.score.total_cmp(&a.score) } else { a.score.total_cmp(&b.score) };
        // Indices differ, so the label bit never decides.
        by_score.then(a.index_and_label.cmp(&b.index_and_label))
    });
    rows
}

/// The cumulative `(true positives, false positives)` after each group of equal scores, walking
/// from the highest score down: one point per distinct threshold. `None` when the lengths differ.
fn descending_cuts(scores: &[f64], labels: &[bool]) -> Option<Vec<(usize, usize)>> {
    if scores.len() != labels.len() {
        return None;
    }
    let rows = in_score_order(scores, labels, true);
    let mut cuts = Vec::new();
    let (mut true_positives, mut false_positives) = (0usize, 0usize);
    let mut start = 0;
    while start < rows.len() {
        let mut end = start;
        while end + 1 < rows.len() && rows[end + 1].score == rows[start].score {
            end += 1;
        }
        let positives = rows[start..=end].iter().filter(|r| r.positive()).count();
        true_positives += positives;
        false_positives += end - start + 1 - positives;
        cuts.push((true_positives, false_positives));
        start = end + 1;
    }
    Some(cuts)
}

/// Average precision (area under the precision-recall curve, step-wise as scikit-learn's
/// `average_precision_score`); samples with equal scores enter together. `None` without positives,
/// or when the lengths differ.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let curve = precision_recall_curve(scores, labels)?;
    let (mut previous_recall, mut area) = (0.0f64, 0.0f64);
    for (recall, precision) in curve {
        area += (recall - previous_recall) * precision;
        previous_recall = recall;
    }
    Some(area)
}

/// The ROC curve as `(false positive rate, true positive rate)` points from `(0, 0)` to `(1, 1)`,
/// one per distinct score (tied scores enter together, a diagonal step); the trapezoidal area under
/// it is [`roc_auc`]. `None` when either class is absent, or when the lengths differ.
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Option<Vec<(f64, f64)>> {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let cuts = descending_cuts(scores, labels)?;
    let mut curve = Vec::with_capacity(cuts.len() + 1);
    curve.push((0.0, 0.0));
    curve.extend(cuts.into_iter().map(|(tp, fp)| (fp as f64 / negatives as f64, tp as f64 / positives as f64)));
    Some(curve)
}

/// The precision-recall curve as `(recall, precision)` points, one per distinct score from the
/// highest down (tied scores enter together). `None` without positives, or when the lengths differ.
pub fn precision_recall_curve(scores: &[f64], labels: &[bool]) -> Option<Vec<(f64, f64)>> {
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 {
        return None;
    }
    let cuts = descending_cuts(scores, labels)?;
    Some(cuts.into_iter().map(|(tp, fp)| (tp as f64 / positives as f64, tp as f64 / (tp + fp) as f64)).collect())
}

/// The `(1 - contamination)` quantile of `scores` (linear interpolation between order
/// statistics): with `contamination = 0.05`, about 5% of these scores lie above it.
pub fn contamination_threshold(scores: &[f64], contamination: f64) -> Option<f64> {
    if scores.is_empty() || !(0.0..1.0).contains(&contamination) || scores.iter().any(|s| !s.is_finite()) {
        return None;
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let position = (1.0 - contamination) * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    Some(sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_auc_counts_ties_as_one_half_and_matches_brute_force_pairs() {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.2];
        let labels = [false, true, false, true, false, true, false];
        let mut wins = 0.0;
        let mut pairs = 0.0;
        for (i, &li) in labels.iter().enumerate() {
            for (j, &lj) in labels.iter().enumerate() {
                if li && !lj {
                    pairs += 1.0;
                    wins += if scores[i] > scores[j] {
                        1.0
                    } else if scores[i] == scores[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((roc_auc(&scores, &labels).unwrap() - wins / pairs).abs() < 1e-12);
        assert_eq!(roc_auc(&[1.0, 1.0], &[true, false]), Some(0.5));
        assert_eq!(roc_auc(&[1.0, 2.0], &[true, true]), None);
        assert_eq!(roc_auc(&[1.0, 2.0], &[true]), None);
        assert_eq!(average_precision(&[1.0, 2.0], &[true]), None);
    }

    #[test]
    fn average_precision_matches_hand_computed_values() {
        // Ranked: 0.9 (pos), 0.8 (neg), 0.7 (pos): AP = 1 * 1/2 + 2/3 * 1/2.
        let ap = average_precision(&[0.9, 0.8, 0.7], &[true, false, true]).unwrap();
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        // All tied: precision is the positive rate.
        assert!((average_precision(&[1.0; 4], &[true, false, false, false]).unwrap() - 0.25).abs() < 1e-12);
        assert_eq!(average_precision(&[1.0], &[false]), None);
    }

    #[test]
    fn roc_curve_area_is_roc_auc_and_runs_from_origin_to_one_one() {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.2, 0.9, 0.05];
        let labels = [false, true, false, true, false, true, false, false, true];
        let curve = roc_curve(&scores, &labels).unwrap();
        assert_eq!(curve.first(), Some(&(0.0, 0.0)));
        assert_eq!(curve.last(), Some(&(1.0, 1.0)));
        // One point per distinct score, plus the origin.
        assert_eq!(curve.len(), 8);
        assert!(curve.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 >= w[0].1));
        let area: f64 = curve.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
        assert!((area - roc_auc(&scores, &labels).unwrap()).abs() < 1e-12);
        // 0.9 is a negative: the curve's first step goes right.
        assert_eq!(curve[1], (0.2, 0.0));
        assert_eq!(roc_curve(&[1.0, 2.0], &[true, true]), None);
    }

    #[test]
    fn precision_recall_curve_steps_through_tied_groups() {
        // Ranked: 0.9 (pos), then 0.8 tied (pos, neg), then 0.1 (neg).
        let curve = precision_recall_curve(&[0.9, 0.8, 0.8, 0.1], &[true, true, false, false]).unwrap();
        assert_eq!(curve, vec![(0.5, 1.0), (1.0, 2.0 / 3.0), (1.0, 0.5)]);
        assert_eq!(precision_recall_curve(&[1.0], &[false]), None);
        assert_eq!(precision_recall_curve(&[1.0, 2.0], &[true]), None);
    }

    #[test]
    fn contamination_threshold_is_the_upper_quantile() {
        let scores: Vec<f64> = (0..101).map(|i| i as f64).collect();
        assert_eq!(contamination_threshold(&scores, 0.1), Some(90.0));
        assert_eq!(contamination_threshold(&scores, 0.0), Some(100.0));
        assert_eq!(contamination_threshold(&[], 0.1), None);
        assert_eq!(contamination_threshold(&scores, 1.5), None);
    }
}
