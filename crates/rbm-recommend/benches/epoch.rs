//! One training epoch of the softmax RBM on MovieLens-100K-shaped synthetic ratings (943 users,
//! 1,682 items, 100,000 ratings), with the default settings of each orientation (user-based 100
//! hidden, item-based 300 hidden, conditional), at CD-1 and at CD-9 (the last steps of the growing
//! schedule). Run: `cargo bench -p rbm-recommend --bench epoch`.

use std::ops::ControlFlow;

use criterion::{Criterion, criterion_group, criterion_main};
use rbm_core::masked::{Cases, train};
use rbm_recommend::{Orientation, RecommendParams, Side};

fn epoch(c: &mut Criterion) {
    let triples = rbm_recommend::synthetic::generate(943, 1682, 100_000, 0);
    // Ratings 1..=5 become levels 0..=4.
    let defaults = RecommendParams::new(Orientation::Both);
    let mut group = c.benchmark_group("softmax_rbm_epoch");
    group.sample_size(10);
    for side in [Side::User, Side::Item] {
        let (n_cases, n_inputs) = match side {
            Side::User => (943, 1682),
            Side::Item => (1682, 943),
        };
        let observed: Vec<(u32, u32, u8)> = triples
            .iter()
            .map(|&(u, i, r)| match side {
                Side::User => (u, i, r - 1),
                Side::Item => (i, u, r - 1),
            })
            .collect();
        let cases = Cases::new(n_cases, &observed, &[], true);
        for steps in [1, 9] {
            let params = rbm_core::masked::MaskedParams {
                epochs: 1,
                cd_steps: steps,
                growing_steps: false,
                ..defaults.side(side).clone()
            }
            .check()
            .unwrap();
            let name = format!("{}-based/hidden={}/cd={steps}/ratings=100000", side.name(), params.hidden);
            group.bench_function(name, |b| {
                b.iter(|| train(&cases, n_inputs, 5, &params, None, |_| ControlFlow::Continue(())).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, epoch);
criterion_main!(benches);
