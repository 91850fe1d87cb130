//! Anomaly-scoring metrics and the contamination threshold. Higher score = more anomalous.

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
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_positive = 0.0f64;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        let average_rank = (start + end) as f64 / 2.0 + 1.0;
        rank_sum_positive += average_rank * order[start..=end].iter().filter(|&&i| labels[i]).count() as f64;
        start = end + 1;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum_positive - p * (p + 1.0) / 2.0) / (p * n))
}

/// Average precision (area under the precision-recall curve, step-wise as scikit-learn's
/// `average_precision_score`); samples with equal scores enter together. `None` without positives,
/// or when the lengths differ.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() {
        return None;
    }
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut true_positives, mut seen, mut previous_recall, mut area) = (0usize, 0usize, 0.0f64, 0.0f64);
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        true_positives += order[start..=end].iter().filter(|&&i| labels[i]).count();
        seen += end - start + 1;
        let recall = true_positives as f64 / positives as f64;
        area += (recall - previous_recall) * true_positives as f64 / seen as f64;
        previous_recall = recall;
        start = end + 1;
    }
    Some(area)
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
    fn contamination_threshold_is_the_upper_quantile() {
        let scores: Vec<f64> = (0..101).map(|i| i as f64).collect();
        assert_eq!(contamination_threshold(&scores, 0.1), Some(90.0));
        assert_eq!(contamination_threshold(&scores, 0.0), Some(100.0));
        assert_eq!(contamination_threshold(&[], 0.1), None);
        assert_eq!(contamination_threshold(&scores, 1.5), None);
    }
}
