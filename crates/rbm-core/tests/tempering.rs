//! Parallel tempering against the exact distribution of a tiny bimodal model: its coldest chains
//! reproduce the exact `p(v)` (total-variation distance) where plain Gibbs chains with the same
//! number of steps stay stuck in the mode they started in; swaps are accepted; deterministic.

mod common;

use common::*;
use nalgebra::{DMatrix, DVector};
use rbm_core::{PersistentChains, Rbm, RbmError, TemperedChains, VisibleKind, VisibleLayer};

/// Six visible units and one hidden unit that switches all of them on: two modes of about equal
/// mass (mostly off; all on) separated by states of low probability, so a Gibbs chain rarely
/// crosses (from one unit on, `p(h = 1) = sigmoid(-15)`; from all on, `p(h = 0) = sigmoid(-15)`).
fn bimodal() -> Rbm {
    let nv = 6;
    Rbm::from_parameters(
        VisibleLayer::uniform(VisibleKind::Bernoulli, nv).unwrap(),
        DMatrix::from_element(1, nv, 6.0),
        DVector::from_element(nv, -2.5),
        DVector::from_element(1, -21.0),
    )
    .unwrap()
}

/// Total-variation distance between the exact distribution and the histogram of `samples`.
fn total_variation(exact: &[f64], samples: &[Vec<f32>]) -> f64 {
    let mut counts = vec![0f64; exact.len()];
    for s in samples {
        counts[state_of(s)] += 1.0;
    }
    let n = samples.len() as f64;
    0.5 * exact.iter().zip(&counts).map(|(p, c)| (p - c / n).abs()).sum::<f64>()
}

fn columns(m: &DMatrix<f32>) -> Vec<Vec<f32>> {
    m.column_iter().map(|c| c.iter().copied().collect()).collect()
}

#[test]
fn tempered_chains_reproduce_the_exact_distribution_where_gibbs_chains_stay_stuck() {
    let rbm = bimodal();
    let exact = exact_visible_distribution(&rbm);
    let high_mode: f64 = (0..exact.len()).filter(|s| (*s as u32).count_ones() >= 4).map(|s| exact[s]).sum();
    assert!((0.2..0.9).contains(&high_mode), "both modes should matter: {high_mode}");
    let zeros = DMatrix::zeros(6, 1);
    let base = vec![0.0; 6];
    let mut tempered = TemperedChains::new(&rbm, &base, &TemperedChains::even_betas(8), 400, &zeros, 3).unwrap();
    let mut gibbs = PersistentChains::from_visible(&rbm, &DMatrix::zeros(6, 400), 3).unwrap();
    let (mut pt_samples, mut gibbs_samples) = (Vec::new(), Vec::new());
    for step in 0..60 {
        tempered.advance(&rbm, 5).unwrap();
        gibbs.advance(&rbm, 5).unwrap();
        if step >= 10 {
            pt_samples.extend(columns(&tempered.visible()));
            gibbs_samples.extend(columns(&gibbs.visible()));
        }
    }
    let (pt, plain) = (total_variation(&exact, &pt_samples), total_variation(&exact, &gibbs_samples));
    println!("TV: tempering {pt:.4}, gibbs {plain:.4}, swaps accepted {:.3}", tempered.swap_acceptance());
    assert!(pt < 0.03, "tempered chains are {pt} from the exact distribution");
    assert!(plain > 0.3, "plain Gibbs should be stuck: {plain}");
    assert!(tempered.swap_acceptance() > 0.1);
}

#[test]
fn tempered_chains_are_deterministic_and_check_their_settings() {
    let rbm = random_rbm(VisibleKind::Bernoulli, 6, 3, 1.0, 4);
    let start = DMatrix::from_fn(6, 4, |i, s| ((i + s) % 2) as f32);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut t = TemperedChains::new(&rbm, &[0.0; 6], &[1.0, 0.6, 0.2], 5, &start, 9).unwrap();
            t.advance(&rbm, 20).unwrap();
            (t.visible(), t.swap_acceptance())
        })
    };
    assert_eq!(run(1), run(2));
    assert_eq!(run(1), run(3));
    for bad in [vec![0.9, 0.5], vec![1.0, 0.5, 0.7], vec![1.0, -0.5], vec![]] {
        let e = TemperedChains::new(&rbm, &[0.0; 6], &bad, 5, &start, 0).unwrap_err();
        assert!(matches!(e, RbmError::InvalidTemperatures(_)), "{bad:?}: {e}");
    }
    assert!(TemperedChains::new(&rbm, &[0.0; 5], &[1.0], 5, &start, 0).is_err());
    assert!(TemperedChains::new(&rbm, &[0.0; 6], &[1.0], 0, &start, 0).is_err());
    assert_eq!(TemperedChains::even_betas(5), vec![1.0, 0.75, 0.5, 0.25, 0.0]);
}

#[test]
fn training_with_parallel_tempering_learns_reports_swaps_and_is_deterministic() {
    use rbm_core::{Sampler, Trainer, TrainingParams, eval};
    use std::ops::ControlFlow;
    let mut r = rng(5);
    let prototypes = DMatrix::from_fn(16, 3, |_, _| if uniform(&mut r, 1.0) > 0.0 { 1.0 } else { 0.0 });
    let data = DMatrix::from_fn(16, 300, |i, s| {
        let p = prototypes[(i, s % 3)];
        if uniform(&mut r, 1.0) > 0.9 { 1.0 - p } else { p }
    });
    let params = |epochs: usize| TrainingParams {
        epochs,
        batch_size: 20,
        learning_rate: 0.05,
        persistent_chains: Some(20),
        sampler: Sampler::Tempering { temperatures: 5 },
        ..TrainingParams::new(VisibleKind::Bernoulli, 6)
    };
    let fit = |epochs: usize, threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let trainer = Trainer::initialise(params(epochs).check().unwrap(), &data).unwrap();
            trainer.fit(&data, None, |_| ControlFlow::Continue(())).unwrap()
        })
    };
    let outcome = fit(20, 1);
    assert_eq!(outcome.rbm, fit(20, 2).rbm);
    let acceptance = outcome.history.last().unwrap().swap_acceptance.unwrap();
    assert!(acceptance > 0.05 && acceptance <= 1.0, "{acceptance}");
    let ll = |rbm: &Rbm| eval::mean_log_likelihood(rbm, &data, eval::log_partition_exact(rbm).unwrap()).unwrap();
    let (trained, early) = (ll(&outcome.rbm), ll(&fit(1, 1).rbm));
    assert!(trained > early + 1.0, "{trained} after 20 epochs, {early} after 1");
    // Plain PCD runs report no swaps; CD cannot temper.
    let plain = TrainingParams { sampler: Sampler::Gibbs, ..params(1) };
    let trainer = Trainer::initialise(plain.check().unwrap(), &data).unwrap();
    assert!(trainer.fit(&data, None, |_| ControlFlow::Continue(())).unwrap().history[0].swap_acceptance.is_none());
    let cd = TrainingParams { persistent_chains: None, ..params(1) };
    assert!(matches!(cd.check(), Err(RbmError::TemperingWithoutChains)));
    let one = TrainingParams { sampler: Sampler::Tempering { temperatures: 1 }, ..params(1) };
    assert!(matches!(one.check(), Err(RbmError::InvalidTemperatures(1))));
}
