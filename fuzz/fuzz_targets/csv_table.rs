//! CSV matrix reader of the `rbm` binary (src/table.rs, included by path: the binary crate has no
//! library target). Each input is written to a temporary file and read back the ways the CLI
//! reads tables: `read_all_detecting` (training with `--visible auto`), `read_all` with a label
//! column, and `TableReader::open` + `read_rest`.
#![no_main]

#[allow(dead_code, clippy::all)]
#[path = "../../src/table.rs"]
mod table;

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use table::{ColumnSpec, TableReader, read_all, read_all_detecting, read_rest};

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("temporary file");
    file.write_all(data).expect("write");
    file.flush().expect("flush");
    let path = file.path().to_str().expect("utf-8 temp path").to_string();

    let plain = ColumnSpec::default();
    let _ = read_all_detecting(&path, &plain, &[]);
    let labelled = ColumnSpec { label: Some("label".into()), ignore: vec!["2".into()], ..ColumnSpec::default() };
    let _ = read_all_detecting(&path, &labelled, &["1".into()]);
    let categorical = ColumnSpec { categorical: vec!["1".into()], ..ColumnSpec::default() };
    let _ = read_all(&path, &categorical);
    if let Ok(mut reader) = TableReader::open(&path, &plain) {
        let _ = reader.feature_names().len();
        let _ = read_rest(&mut reader);
    }
});
