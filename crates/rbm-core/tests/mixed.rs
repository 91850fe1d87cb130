//! Mixed visible layers (Bernoulli, Gaussian and softmax groups side by side) against brute force
//! on tiny models: free energy and log Z from the energy's definition, the Gibbs sampler against
//! the exact distribution, the gradient against exact enumeration, the pseudo-likelihood of
//! softmax groups, and training on mixed columns.

mod common;

use std::ops::ControlFlow;

use common::*;
use nalgebra::DMatrix;
use rbm_core::{
    ColumnEncoding, Model, PersistentChains, Rbm, Trainer, TrainingParams, VisibleKind, VisibleLayer, VisibleSpec,
    eval, log_sum_exp,
};

fn levels(n: usize) -> ColumnEncoding {
    ColumnEncoding::Categorical { levels: (0..n).map(|k| format!("l{k}")).collect() }
}

/// Bernoulli, Bernoulli, a 3-level group, Bernoulli, a 2-level group: 8 units, 48 states.
fn discrete_columns() -> Vec<ColumnEncoding> {
    vec![ColumnEncoding::BERNOULLI, ColumnEncoding::BERNOULLI, levels(3), ColumnEncoding::BERNOULLI, levels(2)]
}

fn layer(columns: &[ColumnEncoding]) -> VisibleLayer {
    rbm_core::columns::layer_of(columns).unwrap()
}

/// `E(v, h)` from the definition, unit by unit: `-b v` for Bernoulli and softmax units,
/// `(v - b)^2 / 2` for Gaussian ones, minus `c.h` and `v^T W h`.
fn energy(rbm: &Rbm, v: &[f32], h: &[f32]) -> f64 {
    let mut kinds = Vec::new();
    for (kind, range) in rbm.layer().ranges() {
        kinds.extend(range.map(|_| kind));
    }
    let b = rbm.visible_bias();
    let visible: f64 = v
        .iter()
        .zip(&kinds)
        .enumerate()
        .map(|(i, (&x, kind))| {
            let (x, b) = (x as f64, b[i] as f64);
            match kind {
                VisibleKind::Gaussian => 0.5 * (x - b) * (x - b),
                _ => -b * x,
            }
        })
        .sum();
    let hidden: f64 = h.iter().zip(rbm.hidden_bias().iter()).map(|(&h, &c)| h as f64 * c as f64).sum();
    let w = rbm.weights();
    let interaction: f64 =
        (0..v.len()).map(|i| (0..h.len()).map(|j| v[i] as f64 * w[(j, i)] as f64 * h[j] as f64).sum::<f64>()).sum();
    visible - hidden - interaction
}

/// `-log sum_h exp(-E(v, h))` over every hidden state.
fn brute_free_energy(rbm: &Rbm, v: &[f32]) -> f64 {
    let nh = rbm.n_hidden();
    let terms: Vec<f64> = (0..1u64 << nh).map(|s| -energy(rbm, v, &bits(s, nh))).collect();
    -log_sum_exp(&terms)
}

/// Every visible vector of a layer of Bernoulli units and softmax groups.
fn all_states(layer: &VisibleLayer) -> Vec<Vec<f32>> {
    let mut states = vec![Vec::new()];
    for (kind, range) in layer.ranges() {
        let choices: Vec<Vec<f32>> = match kind {
            VisibleKind::Bernoulli => (0..1u64 << range.len()).map(|s| bits(s, range.len())).collect(),
            VisibleKind::Softmax => {
                (0..range.len()).map(|k| (0..range.len()).map(|l| if l == k { 1.0 } else { 0.0 }).collect()).collect()
            }
            VisibleKind::Gaussian => panic!("not enumerable"),
        };
        states = states
            .iter()
            .flat_map(|s| choices.iter().map(move |c| s.iter().chain(c).copied().collect::<Vec<f32>>()))
            .collect();
    }
    states
}

/// The exact `p(v)` of every state of a discrete mixed model.
fn exact_distribution(rbm: &Rbm, states: &[Vec<f32>]) -> Vec<f64> {
    let log_unnormalised: Vec<f64> = states.iter().map(|v| -brute_free_energy(rbm, v)).collect();
    let log_z = log_sum_exp(&log_unnormalised);
    log_unnormalised.iter().map(|l| (l - log_z).exp()).collect()
}

fn as_matrix(states: &[Vec<f32>]) -> DMatrix<f32> {
    DMatrix::from_fn(states[0].len(), states.len(), |i, s| states[s][i])
}

#[test]
fn free_energy_of_a_mixed_layer_equals_brute_force() {
    let columns = vec![ColumnEncoding::GAUSSIAN, levels(3), ColumnEncoding::BERNOULLI, ColumnEncoding::BERNOULLI];
    let rbm = random_layer_rbm(layer(&columns), 4, 1.5, 3);
    assert_eq!(rbm.layer().describe(), "1 gaussian + 1 softmax (3 units) + 2 bernoulli");
    let samples = [
        vec![0.3f32, 0.0, 1.0, 0.0, 1.0, 0.0],
        vec![-2.5, 1.0, 0.0, 0.0, 0.0, 1.0],
        vec![4.0, 0.0, 0.0, 1.0, 1.0, 1.0],
    ];
    let f = rbm.free_energy(&as_matrix(&samples)).unwrap();
    for (v, f) in samples.iter().zip(&f) {
        let brute = brute_free_energy(&rbm, v);
        // Activations are f32 (as the GEMM computes them): agreement to about 1e-7.
        assert!((f - brute).abs() < 1e-6 * brute.abs().max(1.0), "{f} vs {brute} for {v:?}");
        assert!((rbm.energy(v, &[1.0, 0.0, 1.0, 1.0]).unwrap() - energy(&rbm, v, &[1.0, 0.0, 1.0, 1.0])).abs() < 1e-9);
    }
}

#[test]
fn exact_log_partition_of_mixed_layers_equals_enumeration_and_integration() {
    // Discrete: the sum over all 48 visible and 8 hidden states.
    let rbm = random_layer_rbm(layer(&discrete_columns()), 3, 1.5, 7);
    let states = all_states(rbm.layer());
    assert_eq!(states.len(), 48);
    let brute = log_sum_exp(&states.iter().map(|v| -brute_free_energy(&rbm, v)).collect::<Vec<_>>());
    let exact = eval::log_partition_exact(&rbm).unwrap();
    assert!((exact - brute).abs() < 1e-6 * brute.abs().max(1.0), "{exact} vs {brute}");

    // With a Gaussian unit: enumerate the discrete units, integrate the Gaussian one on a grid.
    let columns = vec![levels(3), ColumnEncoding::GAUSSIAN, ColumnEncoding::BERNOULLI];
    let rbm = random_layer_rbm(layer(&columns), 3, 1.0, 9);
    let (lo, hi, n) = (-30.0f64, 30.0f64, 60_001usize);
    let step = (hi - lo) / (n - 1) as f64;
    let mut terms = Vec::new();
    for level in 0..3 {
        for bit in [0.0f32, 1.0] {
            let grid = DMatrix::from_fn(5, n, |i, g| match i {
                0..=2 => f32::from(i == level),
                3 => (lo + g as f64 * step) as f32,
                _ => bit,
            });
            let f = rbm.free_energy(&grid).unwrap();
            terms.push(log_sum_exp(&f.iter().map(|f| -f).collect::<Vec<_>>()) + step.ln());
        }
    }
    let integrated = log_sum_exp(&terms);
    let exact = eval::log_partition_exact(&rbm).unwrap();
    assert!((exact - integrated).abs() < 1e-4, "{exact} vs {integrated}");
}

#[test]
fn gibbs_chains_reproduce_the_exact_distribution_of_a_mixed_layer() {
    let rbm = random_layer_rbm(layer(&discrete_columns()), 3, 1.2, 11);
    let states = all_states(rbm.layer());
    let exact = exact_distribution(&rbm, &states);
    let mut chains = PersistentChains::random(&rbm, 2000, 5);
    chains.advance(&rbm, 50).unwrap();
    let mut counts = vec![0usize; states.len()];
    for _ in 0..100 {
        chains.advance(&rbm, 2).unwrap();
        for column in chains.visible().column_iter() {
            let s = states.iter().position(|s| s.as_slice() == column.as_slice()).expect("a valid state");
            counts[s] += 1;
        }
    }
    let total: usize = counts.iter().sum();
    let tv = 0.5 * counts.iter().zip(&exact).map(|(&c, &p)| (c as f64 / total as f64 - p).abs()).sum::<f64>();
    println!("total variation {tv:.4} over {} states", states.len());
    // 200,000 correlated draws over 48 states: sampling noise alone is about 0.01.
    assert!(tv < 0.025, "total variation {tv} between Gibbs samples and the exact distribution");
}

/// `E_data[h v^T] - E_model[h v^T]` (and the biases' terms) by enumerating every visible state.
fn exact_gradient(rbm: &Rbm, data: &DMatrix<f32>, states: &[Vec<f32>]) -> Vec<f64> {
    let moments = |x: &DMatrix<f32>, weights: &[f64]| {
        let ph = rbm.hidden_probabilities(x).unwrap();
        let (nh, nv) = (rbm.n_hidden(), rbm.n_visible());
        let mut g = vec![0.0; nh * nv + nv + nh];
        for s in 0..x.ncols() {
            for i in 0..nv {
                for j in 0..nh {
                    g[j + i * nh] += weights[s] * x[(i, s)] as f64 * ph[(j, s)] as f64;
                }
                g[nh * nv + i] += weights[s] * x[(i, s)] as f64;
            }
            for j in 0..nh {
                g[nh * nv + nv + j] += weights[s] * ph[(j, s)] as f64;
            }
        }
        g
    };
    let positive = moments(data, &vec![1.0 / data.ncols() as f64; data.ncols()]);
    let negative = moments(&as_matrix(states), &exact_distribution(rbm, states));
    positive.iter().zip(&negative).map(|(p, n)| p - n).collect()
}

#[test]
fn long_chain_gradient_of_a_mixed_layer_approaches_the_exact_gradient() {
    let columns = discrete_columns();
    let rbm = random_layer_rbm(layer(&columns), 3, 1.0, 13);
    let states = all_states(rbm.layer());
    let patterns = as_matrix(&[states[3].clone(), states[20].clone(), states[41].clone()]);
    let batch = DMatrix::from_fn(8, 18_000, |i, s| patterns[(i, s % 3)]);
    let exact = exact_gradient(&rbm, &patterns, &states);
    let params = TrainingParams {
        gibbs_steps: 50,
        persistent_chains: Some(18_000),
        batch_size: 18_000,
        ..TrainingParams::new(VisibleSpec::Columns(columns), 3)
    };
    let mut trainer = Trainer::new(params.check().unwrap(), rbm).unwrap();
    let g = trainer.estimate_gradient(&batch).unwrap();
    let estimate: Vec<f64> =
        g.weights.iter().chain(g.visible_bias.iter()).chain(g.hidden_bias.iter()).map(|&x| x as f64).collect();
    let error = estimate.iter().zip(&exact).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    println!("largest gradient error {error:.4}");
    // 18,000 chains: the Monte Carlo error per entry is about 0.004.
    assert!(error < 0.02, "largest gradient error {error}");
    // The softmax groups' bias gradients sum to zero (one unit on in data and in the model).
    for range in [2..5usize, 6..8] {
        let sum: f64 = range.map(|i| estimate[3 * 8 + i]).sum();
        assert!(sum.abs() < 1e-5, "softmax bias gradient sums to {sum}");
    }
}

#[test]
fn pseudo_likelihood_of_softmax_groups_equals_brute_force_conditionals() {
    let rbm = random_layer_rbm(layer(&discrete_columns()), 3, 1.5, 17);
    let states = all_states(rbm.layer());
    let data = as_matrix(&[states[5].clone(), states[30].clone(), states[47].clone()]);
    // The variables: units 0, 1 and 6 alone, the groups 2..5 and 6..8 (after unit 5).
    let variables: Vec<Vec<usize>> = vec![vec![0], vec![1], vec![2, 3, 4], vec![5], vec![6, 7]];
    let mut total = 0.0;
    for s in 0..data.ncols() {
        let v: Vec<f32> = data.column(s).iter().copied().collect();
        for var in &variables {
            // Every value of the variable with the rest fixed, including the observed one.
            let alternatives: Vec<Vec<f32>> = if var.len() == 1 {
                [0.0, 1.0]
                    .iter()
                    .map(|&x| {
                        let mut w = v.clone();
                        w[var[0]] = x;
                        w
                    })
                    .collect()
            } else {
                (0..var.len())
                    .map(|k| {
                        let mut w = v.clone();
                        for (l, &i) in var.iter().enumerate() {
                            w[i] = f32::from(l == k);
                        }
                        w
                    })
                    .collect()
            };
            let scores: Vec<f64> = alternatives.iter().map(|w| -brute_free_energy(&rbm, w)).collect();
            total += -brute_free_energy(&rbm, &v) - log_sum_exp(&scores);
        }
    }
    let brute = total / (data.ncols() * variables.len()) as f64;
    let pll = eval::pseudo_log_likelihood(&rbm, &data, eval::PseudoLikelihood::AllFeatures).unwrap();
    assert!((pll - brute).abs() < 1e-6, "{pll} vs {brute}");
    // The one-variable estimate picks among the 5 variables, not the 8 units.
    let one = eval::pseudo_log_likelihood(&rbm, &data, eval::PseudoLikelihood::OneFeature { seed: 1 }).unwrap();
    assert!(one < 0.0 && one.is_finite());
    // Gaussian units are refused.
    let gaussian = random_layer_rbm(layer(&[ColumnEncoding::GAUSSIAN, levels(2)]), 2, 1.0, 1);
    let x = DMatrix::from_column_slice(3, 1, &[0.5, 1.0, 0.0]);
    assert!(eval::pseudo_log_likelihood(&gaussian, &x, eval::PseudoLikelihood::AllFeatures).is_err());
}

#[test]
fn training_on_mixed_columns_learns_what_independent_units_cannot() {
    // Raw data: a 3-level category that decides two bits (level 0 -> 00, 1 -> 11, 2 -> 10),
    // with 5% noise on the bits. The data's entropy is about 1.50 nats.
    let columns = vec![levels(3), ColumnEncoding::BERNOULLI, ColumnEncoding::BERNOULLI];
    let mut r = rng(2);
    let mut values = Vec::new();
    for s in 0..600 {
        let level = s % 3;
        values.push(level as f32);
        for bit in [f32::from(level != 0), f32::from(level == 1)] {
            values.push(if uniform(&mut r, 1.0).abs() < 0.05 { 1.0 - bit } else { bit });
        }
    }
    let raw = DMatrix::from_vec(3, 600, values);
    let params = TrainingParams {
        epochs: 100,
        batch_size: 20,
        learning_rate: 0.05,
        momentum: rbm_core::Momentum::Constant { value: 0.5 },
        gibbs_steps: 3,
        ..TrainingParams::new(VisibleSpec::Columns(columns), 4)
    };
    let (model, _) = Model::fit(params.check().unwrap(), &raw, None, |_| ControlFlow::Continue(())).unwrap();
    let log_z = eval::log_partition_exact(&model.rbm).unwrap();
    let trained = model.mean_log_likelihood(&raw, log_z).unwrap();
    // Independent units with the data's marginals: log 3 for the level (uniform) plus each bit's entropy.
    let visible = model.prepare(&raw).unwrap();
    let entropy = |i: usize| {
        let p = visible.row(i).iter().map(|&x| x as f64).sum::<f64>() / 600.0;
        -(p * p.ln() + (1.0 - p) * (1.0 - p).ln())
    };
    let independent = -(3f64.ln() + entropy(3) + entropy(4));
    println!("mean log-likelihood: trained {trained:.4}, independent units {independent:.4}");
    assert!(trained > independent + 0.5, "trained {trained} vs independent {independent}");
    // The stored baseline is that independent model: each level's log-frequency (smoothed by
    // one count, as the initial biases are) and each bit's log-odds; its free energy of a row is
    // minus the sum of the biases that are on.
    let baseline = model.baseline_bias.as_ref().expect("a baseline is stored");
    for (unit, &bias) in baseline.iter().enumerate() {
        let on = visible.row(unit).iter().map(|&x| x as f64).sum::<f64>();
        let expected = match unit {
            0..=2 => ((on + 1.0) / (600.0 + 3.0)).ln(),
            _ => (on / (600.0 - on)).ln(),
        };
        assert!((bias as f64 - expected).abs() < 1e-5, "unit {unit}: {bias} vs {expected}");
    }
    let free = model.baseline_free_energy(&raw).unwrap().unwrap();
    for (s, f) in free.iter().enumerate().take(10) {
        let expected: f64 = (0..5).map(|u| -(baseline[u] as f64) * visible[(u, s)] as f64).sum();
        assert!((f - expected).abs() < 1e-9, "row {s}: {f} vs {expected}");
    }
    // Samples decode to valid levels, and mostly follow the rule.
    let samples = model.sample(500, 200, 3).unwrap();
    let follows = samples
        .column_iter()
        .filter(|s| {
            let level = s[0] as usize;
            assert!(level < 3 && s[0].fract() == 0.0, "level {}", s[0]);
            (s[1] == f32::from(level != 0)) && (s[2] == f32::from(level == 1))
        })
        .count();
    assert!(follows > 400, "{follows} of 500 samples follow the rule");
}

/// Each column's surprise given the others, `-log p(v_g | v_rest)`, against brute force: for
/// discrete columns the ratio of `exp(-F)` over the column's values; for Gaussian columns the
/// integral over `v_i` done in closed form state by state (`int exp(-(t - b)^2 / 2 + t m) dt =
/// sqrt(2 pi) exp(b m + m^2 / 2)` with `m = (W h)_i`), on a layer of every kind.
#[test]
fn conditional_surprise_matches_brute_force() {
    let columns = vec![ColumnEncoding::GAUSSIAN, ColumnEncoding::BERNOULLI, levels(3), ColumnEncoding::GAUSSIAN];
    let rbm = common::random_layer_rbm(layer(&columns), 3, 0.8, 21);
    let nh = rbm.n_hidden();
    // v: 0.7, 1, level 2 of 3, -1.3; then an unlikely sample far out on the Gaussians.
    let samples = [[0.7f32, 1.0, 0.0, 0.0, 1.0, -1.3], [4.0, 0.0, 1.0, 0.0, 0.0, 3.5]];
    let data = DMatrix::from_fn(6, 2, |i, s| samples[s][i]);
    let surprise = rbm.conditional_surprise(&data, None).unwrap();
    assert_eq!(surprise.shape(), (4, 2));
    let b = rbm.visible_bias();
    let w = rbm.weights();
    for (s, v) in samples.iter().enumerate() {
        let free = |v: &[f32]| brute_free_energy(&rbm, v);
        let discrete = |alternatives: Vec<Vec<f32>>| {
            let terms: Vec<f64> = alternatives.iter().map(|x| -free(x)).collect();
            free(v) + log_sum_exp(&terms)
        };
        // Bernoulli column 1 and the categorical column (units 2..5).
        let flip = |unit: usize, value: f32| {
            let mut x = v.to_vec();
            x[unit] = value;
            x
        };
        let expected_bernoulli = discrete(vec![flip(1, 0.0), flip(1, 1.0)]);
        let one_hot = |k: usize| {
            let mut x = v.to_vec();
            x[2..5].fill(0.0);
            x[2 + k] = 1.0;
            x
        };
        let expected_categorical = discrete((0..3).map(one_hot).collect());
        // Gaussian columns 0 and 3 (units 0 and 5).
        let gaussian = |unit: usize| {
            let (mut numerator, mut denominator) = (Vec::new(), Vec::new());
            for state in 0..1u64 << nh {
                let h = bits(state, nh);
                let m: f64 = (0..nh).map(|j| w[(j, unit)] as f64 * h[j] as f64).sum();
                let minus_energy = -energy(&rbm, v, &h);
                let (x, bias) = (v[unit] as f64, b[unit] as f64);
                // -E without the unit's own terms, then the closed-form integral over it.
                let without = minus_energy + 0.5 * (x - bias) * (x - bias) - x * m;
                numerator.push(minus_energy);
                denominator.push(without + 0.5 * (2.0 * std::f64::consts::PI).ln() + bias * m + 0.5 * m * m);
            }
            log_sum_exp(&denominator) - log_sum_exp(&numerator)
        };
        let expected = [gaussian(0), expected_bernoulli, expected_categorical, gaussian(5)];
        for (column, want) in expected.iter().enumerate() {
            let got = surprise[(column, s)];
            assert!((got - want).abs() < 1e-5 * want.abs().max(1.0), "sample {s} column {column}: {got} vs {want}");
        }
    }
    // The far-out Gaussian value is the most surprising column of the second sample.
    let column = surprise.column(1);
    let top = (0..4).max_by(|&a, &c| column[a].total_cmp(&column[c])).unwrap();
    assert_eq!(top, 0, "{column:?}");
}

/// With histogram marginals multiplied in, a Gaussian column's surprise is under the product:
/// `-log [exp(-F(v)) p(v_0) / int exp(-F(t, v_rest)) p(t) dt]`, here against the midpoint rule
/// with step 0.001, whose cells the bin edges do not split.
#[test]
fn conditional_surprise_under_histogram_marginals_matches_integration() {
    use rbm_core::marginal::{Histogram, Marginals};
    let columns = vec![ColumnEncoding::GAUSSIAN, ColumnEncoding::BERNOULLI, ColumnEncoding::GAUSSIAN];
    let rbm = common::random_layer_rbm(layer(&columns), 3, 0.8, 5);
    // A lopsided histogram on unit 0 (densities 0.02, 0.4, 0.1, 0.02 over width 1.5), none on unit 2.
    let densities = [0.02f32, 0.4, 0.1, 0.02];
    let total: f32 = densities.iter().sum::<f32>() * 1.5;
    let histogram =
        Histogram { low: -3.0, width: 1.5, log_density: densities.iter().map(|d| (d / total).ln()).collect() };
    let marginals = Marginals { histograms: vec![Some(histogram.clone()), None, None] };
    let v = [0.4f32, 1.0, -0.8];
    let data = DMatrix::from_column_slice(3, 1, &v);
    let with = rbm.conditional_surprise(&data, Some(&marginals)).unwrap();
    let without = rbm.conditional_surprise(&data, None).unwrap();
    let step = 1e-3;
    let terms: Vec<f64> = (0..30_000)
        .map(|k| {
            let t = -15.0 + (k as f64 + 0.5) * step;
            -brute_free_energy(&rbm, &[t as f32, v[1], v[2]]) - histogram.energy(t as f32) + step.ln()
        })
        .collect();
    let expected = brute_free_energy(&rbm, &v) + histogram.energy(v[0]) + log_sum_exp(&terms);
    // Measured: agreement to 9e-6 (f32 nodes); the trapezoidal grid not cut at the bin edges was
    // 2.7e-2 off, and cut at them (trapezoids, not Simpson) about 2e-3.
    assert!((with[(0, 0)] - expected).abs() < 5e-5, "{} vs {expected}", with[(0, 0)]);
    // The histogram matters here (the value sits in the densest bin), and other columns are
    // untouched by a histogram they do not have.
    assert!((with[(0, 0)] - without[(0, 0)]).abs() > 0.1, "{} vs {}", with[(0, 0)], without[(0, 0)]);
    assert!((with[(2, 0)] - without[(2, 0)]).abs() < 1e-9);
}
