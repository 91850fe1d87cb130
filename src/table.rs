//! Reading CSV tables: header detection, `-` for standard input, label and ignored columns,
//! numeric and categorical (text) columns, and errors that name the file, line and column. Reads
//! in chunks so that scoring can stream files larger than memory.
//!
//! A categorical column's values are read as level indices into the column's level names: a
//! fixed list (a model's levels: an unknown level is an error) or one that grows as new levels
//! appear (training). A field that reads as a number is named by its value as a 64-bit float, so
//! `1`, `1.0` and `01` are one level. Which columns hold text can be found first
//! ([`read_all_detecting`]): a second pass then reads them as categorical.

use std::fs::File;
use std::io::{BufReader, Read};

use anyhow::{Context, Result, anyhow, bail};

/// Which columns of a table are features and which one is the label.
#[derive(Clone, Debug, Default)]
pub struct ColumnSpec {
    /// Name (or 1-based number) of the label column.
    pub label: Option<String>,
    /// Names (or 1-based numbers) of columns to leave out.
    pub ignore: Vec<String>,
    /// When set (a model's feature names), features are these columns, found by header name.
    pub features_by_name: Option<Vec<String>>,
    /// How each feature column's fields are read, in feature order; empty: all numeric.
    pub fields: Vec<Fields>,
    /// Columns (names or 1-based numbers) read as categorical, with levels found as they come.
    pub categorical: Vec<String>,
    /// Columns (0-based positions in the file) read as categorical: what a detecting pass found.
    pub categorical_positions: Vec<usize>,
}

/// How a feature column's fields are read.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Fields {
    /// Numbers.
    #[default]
    Numeric,
    /// Level names mapped to indices; `fixed` refuses levels not in `levels`.
    Levels {
        /// The level names seen so far (or the model's).
        levels: Vec<String>,
        /// Whether new levels are refused.
        fixed: bool,
    },
}

/// The level name of a categorical field: its number when it reads as one, else its text.
fn level_name(field: &str) -> String {
    match field.parse::<f64>() {
        Ok(v) if v.is_finite() => v.to_string(),
        _ => field.to_string(),
    }
}

/// Standard input read whole, so that it can be read twice (a detecting pass, then the data).
#[derive(Clone)]
struct Buffered(std::sync::Arc<Vec<u8>>);

impl AsRef<[u8]> for Buffered {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Per feature column, the first field that is not a number, with its line (`None`: numbers only).
pub type FirstText = Vec<Option<(u64, String)>>;

/// A block of consecutive data rows.
pub struct Chunk {
    /// Row-major feature values: `rows x n_features`.
    pub values: Vec<f32>,
    /// The label field of each row, when a label column was asked for.
    pub labels: Option<Vec<String>>,
    /// The file line of each row (1-based), for error messages.
    pub lines: Vec<u64>,
}

impl Chunk {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.lines.len()
    }
}

/// A CSV table opened for reading in chunks.
pub struct TableReader {
    records: csv::StringRecordsIntoIter<Box<dyn Read + Send>>,
    pending: Option<csv::StringRecord>,
    width: usize,
    has_header: bool,
    /// The header names (or `column N`), one per field of a line.
    names: Vec<String>,
    /// What turns a record into feature values.
    format: RowFormat,
}

fn parses_as_number(field: &str) -> bool {
    field.trim().parse::<f64>().is_ok()
}

impl TableReader {
    /// Opens `path` (`-` for standard input) and works out the columns.
    pub fn open(path: &str, spec: &ColumnSpec) -> Result<Self> {
        TableReader::open_from(path, spec, None)
    }

    /// [`TableReader::open`], reading standard input from `buffered` when given.
    fn open_from(path: &str, spec: &ColumnSpec, buffered: Option<&Buffered>) -> Result<Self> {
        let source: Box<dyn Read + Send> = match (path, buffered) {
            ("-", Some(bytes)) => Box::new(std::io::Cursor::new(bytes.clone())),
            ("-", None) => Box::new(std::io::stdin()),
            _ => Box::new(BufReader::new(File::open(path).with_context(|| format!("{path}: cannot open"))?)),
        };
        let mut records =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(source).into_records();
        let first = match records.next() {
            None => bail!("{path}: the file is empty"),
            Some(r) => r.map_err(|e| csv_error(path, e))?,
        };
        let width = first.len();
        if width > MAX_COLUMNS {
            bail!("{path}: line 1 has {width} fields; at most {MAX_COLUMNS} columns are read");
        }
        let has_header = first.iter().any(|f| !parses_as_number(f));
        let names: Vec<String> = if has_header {
            first.iter().map(|s| s.trim().to_string()).collect()
        } else {
            (1..=width).map(|i| format!("column {i}")).collect()
        };
        let find = |wanted: &str, role: &str| -> Result<usize> {
            if let Some(i) = names.iter().position(|n| n == wanted) {
                if let Some(j) = names.iter().rposition(|n| n == wanted).filter(|&j| j != i) {
                    bail!(
                        "{path}: {role} {wanted:?} is ambiguous: columns {} and {} are both named so (rename one, or give the column's number)",
                        i + 1,
                        j + 1
                    );
                }
                return Ok(i);
            }
            match wanted.parse::<usize>() {
                Ok(k) if k >= 1 && k <= width => Ok(k - 1),
                _ => Err(anyhow!(
                    "{path}: no column named {wanted:?} for {role} (columns: {})",
                    if has_header { names.join(", ") } else { format!("{width} unnamed; use numbers 1..{width}") }
                )),
            }
        };
        let label = spec.label.as_deref().map(|l| find(l, "the label")).transpose()?;
        let features: Vec<usize> = match &spec.features_by_name {
            Some(wanted) if has_header => {
                wanted.iter().map(|n| find(n, "a feature the model was trained on")).collect::<Result<_>>()?
            }
            _ => {
                let ignored: Vec<usize> =
                    spec.ignore.iter().map(|c| find(c, "--ignore-columns")).collect::<Result<_>>()?;
                (0..width).filter(|i| Some(*i) != label && !ignored.contains(i)).collect()
            }
        };
        if features.is_empty() {
            bail!("{path}: no feature columns left after removing the label and ignored columns");
        }
        // A model stores its feature names and later finds its columns by them: they must differ.
        for (k, &i) in features.iter().enumerate() {
            if let Some(&j) = features[..k].iter().find(|&&j| names[j] == names[i]).filter(|_| has_header) {
                bail!(
                    "{path}: columns {} and {} are both named {:?}; feature names must be unique (rename one, or leave one out with --ignore-columns {})",
                    j + 1,
                    i + 1,
                    names[i],
                    i + 1
                );
            }
        }
        let feature_names = features.iter().map(|&i| names[i].clone()).collect();
        let mut fields = spec.fields.clone();
        fields.resize(features.len(), Fields::Numeric);
        let named = spec.categorical.iter().map(|w| find(w, "--column-kinds")).collect::<Result<Vec<usize>>>()?;
        for (column, wanted) in named.iter().zip(&spec.categorical) {
            match features.iter().position(|c| c == column) {
                Some(f) => fields[f] = Fields::Levels { levels: Vec::new(), fixed: false },
                None => bail!("{path}: column {wanted:?} is given a kind but is not a feature (label or ignored)"),
            }
        }
        for column in &spec.categorical_positions {
            if let Some(f) = features.iter().position(|c| c == column) {
                fields[f] = Fields::Levels { levels: Vec::new(), fixed: false };
            }
        }
        let level_index = fields
            .iter()
            .map(|f| match f {
                Fields::Levels { levels, .. } => {
                    levels.iter().enumerate().map(|(k, l)| (l.clone(), k as u32)).collect()
                }
                Fields::Numeric => Default::default(),
            })
            .collect();
        Ok(TableReader {
            names,
            records,
            pending: if has_header { None } else { Some(first) },
            width,
            has_header,
            format: RowFormat { path: path.to_string(), features, feature_names, fields, level_index, label },
        })
    }

    /// Feature names (header names, or `column N` without a header).
    pub fn feature_names(&self) -> &[String] {
        &self.format.feature_names
    }

    /// Whether the first line was a header.
    pub fn has_header(&self) -> bool {
        self.has_header
    }

    /// The path as given.
    pub fn path(&self) -> &str {
        &self.format.path
    }

    /// Reads up to `max_rows` rows; `None` at the end of the file.
    pub fn next_chunk(&mut self, max_rows: usize) -> Result<Option<Chunk>> {
        let growing = self.format.discovers_levels();
        let mut chunk = Chunk {
            values: Vec::with_capacity(max_rows.min(4096) * self.format.features.len()),
            labels: self.format.label.map(|_| Vec::new()),
            lines: Vec::new(),
        };
        while chunk.rows() < max_rows {
            let Some((line, record)) = self.next_record()? else { break };
            if growing {
                // New levels are added here, so that the row's parse finds them.
                for f in 0..self.format.features.len() {
                    let field = record[self.format.features[f]].trim();
                    if !field.is_empty() && matches!(self.format.fields[f], Fields::Levels { fixed: false, .. }) {
                        self.level(f, field);
                    }
                }
            }
            self.format().parse_row(&record, line, &mut chunk)?;
        }
        Ok(if chunk.rows() == 0 { None } else { Some(chunk) })
    }

    /// The next data record and its line (blank lines skipped, the width checked); `None` at the
    /// end of the file.
    fn next_record(&mut self) -> Result<Option<(u64, csv::StringRecord)>> {
        loop {
            let record = match self.pending.take() {
                Some(r) => r,
                None => match self.records.next() {
                    None => return Ok(None),
                    Some(r) => r.map_err(|e| csv_error(&self.format.path, e))?,
                },
            };
            let line = record.position().map_or(0, |p| p.line());
            if record.len() == 1 && record.get(0).is_some_and(|f| f.trim().is_empty()) {
                continue; // a blank line
            }
            if record.len() != self.width {
                bail!(
                    "{}: line {line}: {} fields, expected {} (as in the first line)",
                    self.format.path,
                    record.len(),
                    self.width
                );
            }
            return Ok(Some((line, record)));
        }
    }

    /// Up to `max_rows` data records with their lines, not yet parsed (empty at the end of the
    /// file): parse them with [`TableReader::format`], in parallel pieces if wished. Only for
    /// tables whose categorical columns have fixed levels (a model's).
    pub fn next_records(&mut self, max_rows: usize) -> Result<Vec<(u64, csv::StringRecord)>> {
        assert!(!self.format.discovers_levels(), "records parsed apart from the reader need fixed levels");
        let mut records = Vec::with_capacity(max_rows.min(4096));
        while records.len() < max_rows {
            let Some(record) = self.next_record()? else { break };
            records.push(record);
        }
        Ok(records)
    }

    /// What turns this table's records into feature values (clone it to parse on other threads).
    pub fn format(&self) -> &RowFormat {
        &self.format
    }

    /// How each feature column was read (categorical columns with their levels).
    pub fn fields(&self) -> &[Fields] {
        &self.format.fields
    }

    /// The feature position of a column given by name or 1-based number in the file (as
    /// `--label-column` and `--ignore-columns` take them), if it is a feature.
    pub fn feature_position(&self, wanted: &str) -> Option<usize> {
        let column = self.names.iter().position(|n| n == wanted).or_else(|| match wanted.parse::<usize>() {
            Ok(k) if k >= 1 && k <= self.width => Some(k - 1),
            _ => None,
        })?;
        self.format.features.iter().position(|&c| c == column)
    }

    /// Reads every remaining row and says, per feature column, the first field that is not a
    /// number (its line and text), skipping the feature positions in `numeric`.
    fn scan_text(&mut self, numeric: &[usize]) -> Result<FirstText> {
        let mut first: FirstText = vec![None; self.format.features.len()];
        let mut records = self.pending.take().into_iter().map(Ok).chain(&mut self.records);
        for record in &mut records {
            let record = record.map_err(|e| csv_error(&self.format.path, e))?;
            let line = record.position().map_or(0, |p| p.line());
            for (f, &i) in self.format.features.iter().enumerate() {
                let field = record.get(i).map_or("", str::trim);
                if first[f].is_none() && !numeric.contains(&f) && !field.is_empty() && field.parse::<f64>().is_err() {
                    first[f] = Some((line, field.to_string()));
                }
            }
        }
        Ok(first)
    }

    /// The index of `field`'s level in feature column `f`, adding a new level unless the list is
    /// fixed (`None` then).
    fn level(&mut self, f: usize, field: &str) -> Option<u32> {
        let name = level_name(field);
        if let Some(&k) = self.format.level_index[f].get(&name) {
            return Some(k);
        }
        let Fields::Levels { levels, fixed } = &mut self.format.fields[f] else { return None };
        if *fixed {
            return None;
        }
        levels.push(name.clone());
        let k = (levels.len() - 1) as u32;
        self.format.level_index[f].insert(name, k);
        Some(k)
    }

    /// Turns a core error about sample `row`, feature `column` of rows read from file `lines`
    /// into a located message.
    pub fn locate(&self, lines: &[u64], err: rbm_core::RbmError) -> anyhow::Error {
        self.format().locate(lines, err)
    }
}

/// The parts of a [`TableReader`] that turn a record into feature values: the path (for messages),
/// the feature columns and their names, how each is read, and the label column.
#[derive(Clone, Debug)]
pub struct RowFormat {
    path: String,
    features: Vec<usize>,
    feature_names: Vec<String>,
    /// How each feature column is read, in feature order.
    fields: Vec<Fields>,
    /// Level name -> index, per categorical feature column.
    level_index: Vec<std::collections::HashMap<String, u32>>,
    label: Option<usize>,
}

impl RowFormat {
    /// Whether some categorical column adds levels as they come (training), so that rows must be
    /// read in order by [`TableReader::next_chunk`].
    fn discovers_levels(&self) -> bool {
        self.fields.iter().any(|f| matches!(f, Fields::Levels { fixed: false, .. }))
    }

    /// Parses `records` (from [`TableReader::next_records`]) into a chunk; the error names the
    /// first bad field's line and column.
    pub fn parse(&self, records: &[(u64, csv::StringRecord)]) -> Result<Chunk> {
        let mut chunk = Chunk {
            values: Vec::with_capacity(records.len() * self.features.len()),
            labels: self.label.map(|_| Vec::with_capacity(records.len())),
            lines: Vec::with_capacity(records.len()),
        };
        for (line, record) in records {
            self.parse_row(record, *line, &mut chunk)?;
        }
        Ok(chunk)
    }

    /// Appends one record's feature values, label and line to `chunk`. Categorical fields must
    /// name a level already known.
    fn parse_row(&self, record: &csv::StringRecord, line: u64, chunk: &mut Chunk) -> Result<()> {
        for f in 0..self.features.len() {
            let i = self.features[f];
            let numeric = matches!(self.fields[f], Fields::Numeric);
            // Binary data is most of what is read: its two values skip the trimming and the float
            // parser.
            match (numeric, &record[i]) {
                (true, "0") => {
                    chunk.values.push(0.0);
                    continue;
                }
                (true, "1") => {
                    chunk.values.push(1.0);
                    continue;
                }
                _ => {}
            }
            let field = record[i].trim();
            if field.is_empty() {
                bail!("{}: line {line}, column {} ({}): empty field", self.path, i + 1, self.column_name(i));
            }
            if numeric {
                match field {
                    "0" => {
                        chunk.values.push(0.0);
                        continue;
                    }
                    "1" => {
                        chunk.values.push(1.0);
                        continue;
                    }
                    _ => {}
                }
                match field.parse::<f64>() {
                    Ok(value) => {
                        if !value.is_finite() {
                            bail!(
                                "{}: line {line}, column {} ({}): {field} is not a finite number",
                                self.path,
                                i + 1,
                                self.column_name(i)
                            );
                        }
                        if !(value as f32).is_finite() {
                            bail!(
                                "{}: line {line}, column {} ({}): {field} is beyond the range of 32-bit floats (±3.4e38) that models compute in; rescale the column",
                                self.path,
                                i + 1,
                                self.column_name(i)
                            );
                        }
                        chunk.values.push(value as f32);
                        continue;
                    }
                    Err(_) => bail!(
                        "{}: line {line}, column {} ({}): {field:?} is not a number (a categorical column? train with --visible auto or --column-kinds {}=categorical)",
                        self.path,
                        i + 1,
                        self.column_name(i),
                        self.column_name(i)
                    ),
                }
            }
            let index = self.level_index[f].get(&level_name(field)).copied().ok_or_else(|| {
                let Fields::Levels { levels, .. } = &self.fields[f] else { unreachable!("a categorical column") };
                anyhow!(
                    "{}: line {line}, column {} ({}): level {field:?} was not seen in training (the model knows {})",
                    self.path,
                    i + 1,
                    self.column_name(i),
                    levels.iter().map(|l| format!("{l:?}")).collect::<Vec<_>>().join(", ")
                )
            })?;
            chunk.values.push(index as f32);
        }
        if let (Some(labels), Some(l)) = (chunk.labels.as_mut(), self.label) {
            labels.push(record[l].trim().to_string());
        }
        chunk.lines.push(line);
        Ok(())
    }

    /// Turns a core error about sample `row`, feature `column` of rows read from file `lines`
    /// into a located message.
    pub fn locate(&self, lines: &[u64], err: rbm_core::RbmError) -> anyhow::Error {
        match err {
            rbm_core::RbmError::InvalidValue { row, column, value, reason } => {
                let shown = match self.fields.get(column) {
                    Some(Fields::Levels { levels, .. }) => {
                        format!("level {:?}", levels.get(value as usize).map_or("?", |s| s.as_str()))
                    }
                    _ => format!("value {value}"),
                };
                anyhow!(
                    "{}: line {}, column {} ({}): {reason} ({shown})",
                    self.path,
                    lines.get(row).copied().unwrap_or(0),
                    self.features.get(column).map_or(0, |c| c + 1),
                    self.feature_names.get(column).map_or("?", |s| s.as_str())
                )
            }
            other => anyhow!("{}: {other}", self.path),
        }
    }

    fn column_name(&self, index: usize) -> String {
        match self.features.iter().position(|&f| f == index) {
            Some(k) => self.feature_names[k].clone(),
            None => format!("column {}", index + 1),
        }
    }
}

/// Fields (rows x columns) per piece of [`for_each_piece`], at most.
const FIELDS_PER_PIECE: usize = 1 << 18;

/// The most columns a CSV file may have (a line of more is almost certainly not a table, and its
/// model would not fit in memory: see rbm_core::limits).
pub const MAX_COLUMNS: usize = 1 << 20;

/// Reads the rest of a table whose categorical columns have fixed levels in pieces of at most
/// `max_piece_rows` rows (fewer for wide tables), parsing each piece and applying `handle` to it on the pool's threads, and
/// passes the results to `consume` in input order (`handle` is told the 0-based number of the
/// piece's first row). A batch of pieces (two per thread) is read
/// while the previous batch is handled, so memory holds two batches whatever the file's size.
/// Pieces are cut at the same rows on any number of threads, so results do not depend on it.
pub fn for_each_piece<T: Send>(
    reader: &mut TableReader,
    max_piece_rows: usize,
    handle: impl Fn(&RowFormat, Chunk, usize) -> Result<T> + Sync,
    mut consume: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    use rayon::prelude::*;
    // A record holds each field's text and an 8-byte bound: pieces of wide tables have fewer rows,
    // so that the records in flight stay a few tens of megabytes. A multiple of 16 rows, so that
    // scores are computed in the same product tiles whatever the piece size.
    let piece_rows = (FIELDS_PER_PIECE / reader.width.max(1)).clamp(16, max_piece_rows.max(16)) / 16 * 16;
    let batch_rows = piece_rows * 2 * rayon::current_num_threads().max(1);
    let format = reader.format().clone();
    let mut records = reader.next_records(batch_rows)?;
    let mut first_row = 0;
    while !records.is_empty() {
        let (next, results) = rayon::join(
            || reader.next_records(batch_rows),
            || {
                records
                    .par_chunks(piece_rows)
                    .enumerate()
                    .map(|(k, piece)| handle(&format, format.parse(piece)?, first_row + k * piece_rows))
                    .collect::<Vec<Result<T>>>()
            },
        );
        first_row += records.len();
        for result in results {
            consume(result?)?;
        }
        records = next?;
    }
    Ok(())
}

/// The rest of a table whose categorical columns have fixed levels (a model's), parsed on every
/// thread; an error without data rows.
pub fn read_rest(reader: &mut TableReader) -> Result<Chunk> {
    let mut all = Chunk { values: Vec::new(), labels: reader.format.label.map(|_| Vec::new()), lines: Vec::new() };
    for_each_piece(
        reader,
        4096,
        |_, chunk, _| Ok(chunk),
        |chunk| {
            all.values.extend(chunk.values);
            all.lines.extend(chunk.lines);
            if let (Some(all), Some(labels)) = (&mut all.labels, chunk.labels) {
                all.extend(labels);
            }
            Ok(())
        },
    )?;
    if all.rows() == 0 {
        bail!("{}: no data rows (only a header)", reader.path());
    }
    Ok(all)
}

/// Reads a whole table.
pub fn read_all(path: &str, spec: &ColumnSpec) -> Result<(TableReader, Chunk)> {
    read_all_from(path, spec, None)
}

fn read_all_from(path: &str, spec: &ColumnSpec, buffered: Option<&Buffered>) -> Result<(TableReader, Chunk)> {
    let mut reader = TableReader::open_from(path, spec, buffered)?;
    if !reader.format.discovers_levels() {
        // No levels to discover in file order: parse on every thread.
        let chunk = read_rest(&mut reader)?;
        return Ok((reader, chunk));
    }
    let chunk = reader.next_chunk(usize::MAX)?;
    let Some(chunk) = chunk else { bail!("{path}: no data rows (only a header)") };
    Ok((reader, chunk))
}

/// Reads a whole table in two passes: the first finds the feature columns holding text (except
/// `numeric` ones, names or 1-based numbers, which stay numeric and so make such text an error),
/// the second reads those as categorical. Standard input is read whole first. Also returns, per
/// feature column, the first text field found (its line and text).
pub fn read_all_detecting(
    path: &str,
    spec: &ColumnSpec,
    numeric: &[String],
) -> Result<(TableReader, Chunk, FirstText)> {
    let buffered = if path == "-" {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).context("standard input")?;
        Some(Buffered(std::sync::Arc::new(bytes)))
    } else {
        None
    };
    let mut scan = TableReader::open_from(path, spec, buffered.as_ref())?;
    let forced: Vec<usize> = numeric.iter().filter_map(|w| scan.feature_position(w)).collect();
    let first_text = scan.scan_text(&forced)?;
    let mut spec = spec.clone();
    spec.categorical_positions =
        first_text.iter().enumerate().filter(|(_, t)| t.is_some()).map(|(f, _)| scan.format.features[f]).collect();
    let (reader, chunk) = read_all_from(path, &spec, buffered.as_ref())?;
    Ok((reader, chunk, first_text))
}

fn csv_error(path: &str, e: csv::Error) -> anyhow::Error {
    match e.position() {
        Some(p) => anyhow!("{path}: line {}: {}", p.line(), e),
        None => anyhow!("{path}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads `bytes` as a CSV file with `spec`, both as the training path does (detecting text
    /// columns) and as scoring does (every column numeric).
    fn read_any(bytes: &[u8], spec: &ColumnSpec) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("any.csv");
        std::fs::write(&path, bytes).unwrap();
        let path = path.to_str().unwrap();
        // Ok or an error; a panic fails the property.
        let _ = read_all_detecting(path, spec, &[]);
        if let Ok(mut reader) = TableReader::open(path, spec) {
            let _ = read_rest(&mut reader);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Any bytes: a located error or a table, never a panic.
        #[test]
        fn any_bytes_read_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            read_any(&bytes, &ColumnSpec::default());
            read_any(&bytes, &ColumnSpec { label: Some("label".into()), ..ColumnSpec::default() });
        }

        /// CSV-shaped text from a small alphabet of troublesome pieces.
        #[test]
        fn csv_like_text_reads_without_panicking(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just(","), Just("\n"), Just("\r\n"), Just("\""), Just("1"), Just("-2.5"), Just("1e308"),
                    Just("NaN"), Just("inf"), Just("a"), Just("label"), Just(" "), Just("\u{feff}"), Just("0"),
                ],
                0..80,
            ),
            label in prop_oneof![Just(None), Just(Some("label".to_string())), Just(Some("2".to_string()))],
        ) {
            let text: String = pieces.concat();
            read_any(text.as_bytes(), &ColumnSpec { label, ..ColumnSpec::default() });
        }
    }
}
