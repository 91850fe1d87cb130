//! Reading CSV tables, the first step of every job: a binary MNIST-shaped table (20,000 x 784,
//! what `train` reads) and a real-valued one (200,000 x 30 with a label, what `score` and `eval`
//! read), each read whole on the pool's threads (`table::read_rest`).
//! Run: `cargo bench -p rbm --bench csv_read`.
//!
//! The reader lives in the binary crate, which has no library target, so it is included here by
//! path, as the fuzz target and `tests/fuzz_regressions_table.rs` include it.

#[allow(dead_code)]
#[path = "../src/table.rs"]
mod table;

use std::fmt::Write as _;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use table::{ColumnSpec, TableReader, read_rest};

/// A table of `rows` rows: `columns` numbers from a fixed generator (0 or 1 when `binary`, else
/// five decimals), and a `label` column when asked.
fn table(rows: usize, columns: usize, binary: bool, label: bool) -> String {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut text = (0..columns).map(|c| format!("c{c}")).collect::<Vec<_>>().join(",");
    text += if label { ",label\n" } else { "\n" };
    for _ in 0..rows {
        for c in 0..columns {
            let separator = if c == 0 { "" } else { "," };
            match binary {
                true => write!(text, "{separator}{}", u8::from(next() < 0.13)),
                false => write!(text, "{separator}{:.5}", 4.0 * next() - 2.0),
            }
            .expect("writing to a string");
        }
        text += if !label {
            "\n"
        } else if next() < 0.05 {
            ",1\n"
        } else {
            ",0\n"
        };
    }
    text
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("csv_read");
    group.sample_size(10);
    for (name, text, spec) in [
        ("binary_20000x784", table(20_000, 784, true, false), ColumnSpec::default()),
        (
            "real_200000x30_label",
            table(200_000, 30, false, true),
            ColumnSpec { label: Some("label".into()), ..ColumnSpec::default() },
        ),
    ] {
        let path = dir.path().join(format!("{name}.csv"));
        std::fs::write(&path, &text).unwrap();
        let path = path.to_str().unwrap().to_string();
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| read_rest(&mut TableReader::open(&path, &spec).unwrap()).unwrap().rows())
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Criterion's plots need system fonts, which a bare machine lacks; the figures are printed.
    config = Criterion::default().without_plots();
    targets = read
}
criterion_main!(benches);
