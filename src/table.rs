//! Reading CSV tables: header detection, `-` for standard input, label and ignored columns,
//! numeric and categorical (text) columns, and errors that name the file, line and column. Reads
//! in chunks so that scoring can stream files larger than memory.
//!
//! Records are split as the csv crate splits them: by csv-core, its own state machine, or, in
//! bytes without quotes, in place at commas and line ends. Tables with fixed levels
//! ([`for_each_piece`], [`read_rest`]) and the scan for text columns are split on every thread
//! (`Blocks`): a block of bytes is cut at line ends into pieces, one per task, where the block
//! holds no quote (a quoted field may hold a line end); a block with quotes has its records'
//! ends found on one thread first. A record's line is the line of its first byte.
//!
//! A categorical column's values are read as level indices into the column's level names: a
//! fixed list (a model's levels: an unknown level is an error) or one that grows as new levels
//! appear (training). A field that reads as a number is named by its value as a 64-bit float, so
//! `1`, `1.0` and `01` are one level. Which columns hold text can be found first
//! ([`read_all_detecting`]): a second pass then reads them as categorical.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::ops::Range;

use anyhow::{Context, Result, anyhow, bail};
use rayon::prelude::*;

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
    /// The bytes after the header (or from the first line, without one).
    stream: ByteStream,
    /// Bytes read at a time by [`for_each_piece`], [`read_rest`] and the scan for text columns.
    block_bytes: usize,
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
        // Reads are of a megabyte or more, so the file needs no buffer of its own.
        let source: Box<dyn Read + Send> = match (path, buffered) {
            ("-", Some(bytes)) => Box::new(std::io::Cursor::new(bytes.clone())),
            ("-", None) => Box::new(std::io::stdin()),
            _ => Box::new(File::open(path).with_context(|| format!("{path}: cannot open"))?),
        };
        let mut stream = ByteStream { source, bytes: Vec::new(), line: 1, at_end: false };
        stream.fill(BYTE_ORDER_MARK.len(), path)?;
        if stream.bytes.starts_with(BYTE_ORDER_MARK) {
            stream.bytes.drain(..BYTE_ORDER_MARK.len());
        }
        let Some((first, after_first)) = stream.first_record(path)? else { bail!("{path}: the file is empty") };
        let width = first.len();
        if width > MAX_COLUMNS {
            bail!("{path}: line 1 has {width} fields; at most {MAX_COLUMNS} columns are read");
        }
        let has_header = first.iter().any(|f| !parses_as_number(f));
        if has_header {
            stream.advance(after_first);
        }
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
            stream,
            block_bytes: BLOCK_BYTES_PER_THREAD * rayon::current_num_threads().max(1),
            width,
            has_header,
            format: RowFormat {
                path: path.to_string(),
                features,
                feature_names,
                numeric: fields.iter().map(|f| *f == Fields::Numeric).collect(),
                fields,
                level_index,
                label,
            },
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
        if max_rows == 0 {
            return Ok(None);
        }
        let (format, width) = (&mut self.format, self.width);
        let path = format.path.clone();
        self.stream.each_record(&path, |record| {
            let Some(record) = data_record(&path, record, width)? else { return Ok(true) };
            if growing {
                // New levels are added here, so that the row's parse finds them.
                for f in 0..format.features.len() {
                    let field = record[format.features[f]].trim();
                    if !field.is_empty() && matches!(format.fields[f], Fields::Levels { fixed: false, .. }) {
                        format.level(f, field);
                    }
                }
            }
            format.parse_row(&record, &mut chunk)?;
            Ok(chunk.rows() < max_rows)
        })?;
        Ok(if chunk.rows() == 0 { None } else { Some(chunk) })
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
        let (features, path) = (self.format.features.clone(), self.format.path.clone());
        // Each piece of each block finds its own first text per column, on the pool's threads;
        // the first piece in the file's order that found one has the file's first.
        let scan_piece = |bytes: &[u8], at: PieceAt| {
            let mut first: FirstText = vec![None; features.len()];
            let split = split_piece(&path, bytes, at, |record| {
                for (f, &i) in features.iter().enumerate() {
                    let field = record.get(i).map_or("", str::trim);
                    if first[f].is_none() && !numeric.contains(&f) && !field.is_empty() && field.parse::<f64>().is_err()
                    {
                        first[f] = Some((record.line, field.to_string()));
                    }
                }
                Ok(true)
            });
            (first, split)
        };
        let mut first: FirstText = vec![None; features.len()];
        let mut blocks = Blocks::new(self)?;
        loop {
            let (block, ()) = blocks.next_with(scan_piece, || ());
            let Some(block) = block? else { return Ok(first) };
            for piece in block.pieces {
                for (file, found) in first.iter_mut().zip(piece) {
                    if file.is_none() {
                        *file = found;
                    }
                }
            }
            if let Some(error) = block.error {
                return Err(error);
            }
        }
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
    /// Whether each feature column holds numbers (`fields` is `Fields::Numeric`).
    numeric: Vec<bool>,
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

    /// The index of `field`'s level in feature column `f`, adding a new level unless the list is
    /// fixed (`None` then).
    fn level(&mut self, f: usize, field: &str) -> Option<u32> {
        let name = level_name(field);
        if let Some(&k) = self.level_index[f].get(&name) {
            return Some(k);
        }
        let Fields::Levels { levels, fixed } = &mut self.fields[f] else { return None };
        if *fixed {
            return None;
        }
        levels.push(name.clone());
        let k = (levels.len() - 1) as u32;
        self.level_index[f].insert(name, k);
        Some(k)
    }

    /// Parses the data records of a piece of a block, `bytes` (whole records, where `at` says),
    /// into a chunk, and says how far it went; an error names the first bad field's line and
    /// column, and the chunk then holds the rows before it.
    fn parse_piece(&self, bytes: &[u8], at: PieceAt, width: usize) -> (Chunk, Result<Split>) {
        // A row per line, at most, and one more without a last line end; and a row of `width`
        // fields takes `width` bytes at least (blank lines take one and give no row).
        let rows = (at.line_ends as usize).min(bytes.len() / width.max(1)) + 1;
        let mut chunk = Chunk {
            values: Vec::with_capacity(rows * self.features.len()),
            labels: self.label.map(|_| Vec::with_capacity(rows)),
            lines: Vec::with_capacity(rows),
        };
        let parse = |record: Record<'_>| {
            if let Some(record) = data_record(&self.path, record, width)? {
                self.parse_row(&record, &mut chunk)?;
            }
            Ok(true)
        };
        let split = split_piece(&self.path, bytes, at, parse);
        // A row that failed half way leaves some of its values.
        chunk.values.truncate(chunk.rows() * self.features.len());
        if let Some(labels) = &mut chunk.labels {
            labels.truncate(chunk.lines.len());
        }
        (chunk, split)
    }

    /// Appends one record's feature values, label and line to `chunk`. Categorical fields must
    /// name a level already known.
    fn parse_row(&self, record: &Record<'_>, chunk: &mut Chunk) -> Result<()> {
        let start = chunk.values.len();
        chunk.values.resize(start + self.features.len(), 0.0);
        for ((f, &i), value) in self.features.iter().enumerate().zip(&mut chunk.values[start..]) {
            // Binary data is most of what is read: its two values skip the trimming and the float
            // parser.
            *value = match (self.numeric[f], record.field_bytes(i)) {
                (true, b"0") => 0.0,
                (true, b"1") => 1.0,
                _ => self.field_value(record, f, i)?,
            };
        }
        if let (Some(labels), Some(l)) = (chunk.labels.as_mut(), self.label) {
            labels.push(record[l].trim().to_string());
        }
        chunk.lines.push(record.line);
        Ok(())
    }

    /// The value of feature `f` (column `i`) of `record`: a number, or a known level's index.
    fn field_value(&self, record: &Record<'_>, f: usize, i: usize) -> Result<f32> {
        let line = record.line;
        let field = record[i].trim();
        if field.is_empty() {
            bail!("{}: line {line}, column {} ({}): empty field", self.path, i + 1, self.column_name(i));
        }
        if self.numeric[f] {
            return match field.parse::<f64>() {
                Ok(value) if !value.is_finite() => bail!(
                    "{}: line {line}, column {} ({}): {field} is not a finite number",
                    self.path,
                    i + 1,
                    self.column_name(i)
                ),
                Ok(value) if !(value as f32).is_finite() => bail!(
                    "{}: line {line}, column {} ({}): {field} is beyond the range of 32-bit floats (±3.4e38) that models compute in; rescale the column",
                    self.path,
                    i + 1,
                    self.column_name(i)
                ),
                Ok(value) => Ok(value as f32),
                Err(_) => bail!(
                    "{}: line {line}, column {} ({}): {field:?} is not a number (a categorical column? train with --visible auto or --column-kinds {}=categorical)",
                    self.path,
                    i + 1,
                    self.column_name(i),
                    self.column_name(i)
                ),
            };
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
        Ok(index as f32)
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

/// Bytes of a table read at a time per thread by [`for_each_piece`] and [`read_rest`]: a block
/// is split in four pieces per thread (`PIECES_PER_THREAD`), each large enough that the tasks'
/// start-up is lost in it and small enough that the block's last piece, which the other threads
/// wait for, is short.
const BLOCK_BYTES_PER_THREAD: usize = 2 << 20;

/// Pieces a block is cut into per thread (see [`BLOCK_BYTES_PER_THREAD`]).
const PIECES_PER_THREAD: usize = 4;

/// Bytes read at a time when records are split on one thread, at least.
const SERIAL_BLOCK_BYTES: usize = 1 << 20;

/// The most columns a CSV file may have (a line of more is almost certainly not a table, and its
/// model would not fit in memory: see rbm_core::limits).
pub const MAX_COLUMNS: usize = 1 << 20;

/// One record's fields (valid UTF-8) and the file line it starts on (1-based).
pub struct Record<'a> {
    /// The fields' text, one after another, `gap` bytes apart.
    text: &'a str,
    /// Where each field ends in `text`.
    ends: &'a [usize],
    /// Bytes between fields: 0 when csv-core copied the fields out, 1 when they are read in
    /// place between commas.
    gap: usize,
    /// The line of the record's first byte.
    pub line: u64,
}

impl<'a> Record<'a> {
    /// Number of fields.
    pub fn width(&self) -> usize {
        self.ends.len()
    }

    /// Field `i`, if the record has so many.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        let end = *self.ends.get(i)?;
        Some(&self.text[self.start(i)..end])
    }

    /// The bytes of field `i` (panics beyond the record's width).
    pub fn field_bytes(&self, i: usize) -> &'a [u8] {
        &self.text.as_bytes()[self.start(i)..self.ends[i]]
    }

    /// Where field `i` starts in `text`.
    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] + self.gap }
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        (0..self.width()).filter_map(|i| self.get(i))
    }
}

impl std::ops::Index<usize> for Record<'_> {
    type Output = str;

    fn index(&self, i: usize) -> &str {
        self.get(i).expect("a field within the record's width")
    }
}

/// `record`, unless it is a blank line (one field of white space: `None`); an error unless it
/// has `width` fields.
fn data_record<'a>(path: &str, record: Record<'a>, width: usize) -> Result<Option<Record<'a>>> {
    if record.width() == 1 && record.text.trim().is_empty() {
        return Ok(None);
    }
    if record.width() != width {
        bail!("{path}: line {}: {} fields, expected {width} (as in the first line)", record.line, record.width());
    }
    Ok(Some(record))
}

/// The UTF-8 byte-order mark, dropped at the start of a file (as the csv crate drops it).
const BYTE_ORDER_MARK: &[u8] = b"\xef\xbb\xbf";

/// How far a split went: the bytes of whole records it took, and the line the rest starts on.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Split {
    consumed: usize,
    line: u64,
}

/// Splits CSV bytes into records with csv-core, as the csv crate does by default (commas,
/// `"` quotes with `""` inside them, `\n`, `\r` or `\r\n` line ends, empty lines skipped),
/// keeping its buffers from record to record.
struct Splitter {
    core: csv_core::Reader,
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl Splitter {
    fn new() -> Self {
        Splitter { core: csv_core::Reader::new(), text: vec![0; 1 << 10], ends: vec![0; 64] }
    }

    /// Hands the records of `bytes` to `each` in order until it returns `false` (after that
    /// record): the record's text and field ends, its line, and where in `bytes` it ends.
    /// `bytes` start where a record may start, on `line`; unless `at_end`, a last record without
    /// its line end is left for a later call with more bytes.
    fn split_raw(
        &mut self,
        bytes: &[u8],
        mut line: u64,
        at_end: bool,
        mut each: impl FnMut(&[u8], &[usize], u64, usize) -> Result<bool>,
    ) -> Result<Split> {
        use csv_core::ReadRecordResult as Step;
        let mut start = 0;
        loop {
            // Line ends between records (which csv-core would skip): skipped here, so that a
            // record's line is that of its first byte.
            while let Some(&byte) = bytes.get(start).filter(|&&b| b == b'\n' || b == b'\r') {
                line += u64::from(byte == b'\n');
                start += 1;
            }
            if start == bytes.len() {
                return Ok(Split { consumed: start, line });
            }
            self.core.reset();
            self.core.set_line(line);
            // After a reset csv-core drops a byte-order mark at the start of what it reads
            // first, as at the start of a file. A record here starts inside the file (the file's
            // own mark was dropped when it was opened), so a record starting with one is read a
            // byte first: too short to be taken for a mark.
            let marked = bytes[start..].starts_with(BYTE_ORDER_MARK);
            let (mut read, mut written, mut fields) = (0, 0, 0);
            loop {
                let input = &bytes[start + read..if marked && read == 0 { start + 1 } else { bytes.len() }];
                let (step, nin, nout, nend) =
                    self.core.read_record(input, &mut self.text[written..], &mut self.ends[fields..]);
                (read, written, fields) = (read + nin, written + nout, fields + nend);
                match step {
                    // Only the first byte was given.
                    Step::InputEmpty if start + read < bytes.len() => {}
                    // A record cut off by the end of the bytes: left for the next call.
                    Step::InputEmpty if !at_end => return Ok(Split { consumed: start, line }),
                    // The next read, of no bytes, ends the table's last record.
                    Step::InputEmpty => {}
                    Step::OutputFull => self.text.resize(2 * self.text.len(), 0),
                    Step::OutputEndsFull => self.ends.resize(2 * self.ends.len(), 0),
                    Step::Record => break,
                    Step::End => return Ok(Split { consumed: bytes.len(), line }),
                }
            }
            let go_on = each(&self.text[..written], &self.ends[..fields], line, start + read)?;
            start += read;
            line = self.core.line();
            if !go_on {
                return Ok(Split { consumed: start, line });
            }
        }
    }

    /// [`Splitter::split_raw`] with each record's UTF-8 checked (an error names `path`, the
    /// line and the field).
    fn split(
        &mut self,
        path: &str,
        bytes: &[u8],
        line: u64,
        at_end: bool,
        mut each: impl FnMut(Record<'_>) -> Result<bool>,
    ) -> Result<Split> {
        self.split_raw(bytes, line, at_end, |text, ends, line, _| {
            let not_text = |field: usize| anyhow!("{path}: line {line}, column {}: not UTF-8 text", field + 1);
            let text =
                std::str::from_utf8(text).map_err(|e| not_text(ends.partition_point(|&end| end <= e.valid_up_to())))?;
            if let Some(field) = ends.iter().position(|&end| !text.is_char_boundary(end)) {
                return Err(not_text(field));
            }
            each(Record { text, ends, gap: 0, line })
        })
    }
}

/// Hands the records of `bytes`, which hold no quote, to `each` in order: the bytes start where a
/// record may start, on `line`, and end where one ends (or at the table's end). Without quotes,
/// `\n`, `\r` and `\r\n` end records, empty lines are skipped and commas part fields, as in
/// csv-core, so each record is read in place.
fn split_unquoted(
    path: &str,
    bytes: &[u8],
    mut line: u64,
    mut each: impl FnMut(Record<'_>) -> Result<bool>,
) -> Result<Split> {
    let mut ends = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let end = memchr::memchr2(b'\n', b'\r', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        if end > start {
            let text = std::str::from_utf8(&bytes[start..end]).map_err(|e| {
                let field = memchr::memchr_iter(b',', &bytes[start..start + e.valid_up_to()]).count();
                anyhow!("{path}: line {line}, column {}: not UTF-8 text", field + 1)
            })?;
            ends.clear();
            comma_positions(text.as_bytes(), &mut ends);
            ends.push(text.len());
            if !each(Record { text, ends: &ends, gap: 1, line })? {
                return Ok(Split { consumed: end, line });
            }
        }
        line += u64::from(bytes.get(end) == Some(&b'\n'));
        start = end + 1;
    }
    Ok(Split { consumed: bytes.len(), line })
}

/// Appends the positions of the commas in `bytes` to `ends`. Fields are often a byte or two, so
/// commas are found 64 bytes at a time as a bit mask rather than searched for one by one.
fn comma_positions(bytes: &[u8], ends: &mut Vec<usize>) {
    let mut blocks = bytes.chunks_exact(64);
    let mut offset = 0;
    for block in &mut blocks {
        let mut mask = comma_mask(block.try_into().expect("64 bytes"));
        while mask != 0 {
            ends.push(offset + mask.trailing_zeros() as usize);
            mask &= mask - 1;
        }
        offset += 64;
    }
    ends.extend(blocks.remainder().iter().enumerate().filter(|&(_, &b)| b == b',').map(|(j, _)| offset + j));
}

/// Bit `j` set where byte `j` of `block` is a comma.
#[cfg(target_arch = "x86_64")]
fn comma_mask(block: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // SAFETY: SSE2 is part of every x86_64 CPU, and each (unaligned) load reads 16 of the block's
    // 64 bytes.
    unsafe {
        let commas = _mm_set1_epi8(b',' as i8);
        (0..4).fold(0u64, |mask, k| {
            let found = _mm_loadu_si128(block.as_ptr().add(16 * k).cast::<__m128i>());
            mask | (u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(found, commas)) as u16) << (16 * k))
        })
    }
}

/// Bit `j` set where byte `j` of `block` is a comma.
#[cfg(not(target_arch = "x86_64"))]
fn comma_mask(block: &[u8; 64]) -> u64 {
    block.iter().enumerate().fold(0u64, |mask, (j, &b)| mask | (u64::from(b == b',') << j))
}

/// A table's bytes not yet split, from where a record may start, and their source.
struct ByteStream {
    source: Box<dyn Read + Send>,
    bytes: Vec<u8>,
    /// The line `bytes` start on.
    line: u64,
    /// Whether the source is exhausted (`bytes` are the rest of the table).
    at_end: bool,
}

/// Appends up to `limit` bytes of `source` to `bytes`; whether the source ended.
fn read_up_to(source: &mut (dyn Read + Send), limit: usize, bytes: &mut Vec<u8>, path: &str) -> Result<bool> {
    let got = source.take(limit as u64).read_to_end(bytes).with_context(|| format!("{path}: cannot read"))?;
    Ok(got < limit)
}

impl ByteStream {
    /// Reads until at least `wanted` bytes are held or the source ends.
    fn fill(&mut self, wanted: usize, path: &str) -> Result<()> {
        if !self.at_end && self.bytes.len() < wanted {
            self.at_end = read_up_to(self.source.as_mut(), wanted - self.bytes.len(), &mut self.bytes, path)?;
        }
        Ok(())
    }

    /// Drops the bytes a split took.
    fn advance(&mut self, split: Split) {
        self.bytes.drain(..split.consumed);
        self.line = split.line;
    }

    /// The first record's fields and the split after it, without taking it; `None` for a table
    /// without records.
    fn first_record(&mut self, path: &str) -> Result<Option<(Vec<String>, Split)>> {
        let mut splitter = Splitter::new();
        let mut wanted = 64 << 10;
        loop {
            self.fill(wanted, path)?;
            let mut first = None;
            let split = splitter.split(path, &self.bytes, self.line, self.at_end, |record| {
                first = Some(record.iter().map(str::to_string).collect());
                Ok(false)
            })?;
            if let Some(first) = first {
                return Ok(Some((first, split)));
            }
            if self.at_end {
                return Ok(None);
            }
            wanted = 2 * self.bytes.len().max(wanted);
        }
    }

    /// Hands the records to `each` in order, on this thread, until it returns `false` or the
    /// table ends.
    fn each_record(&mut self, path: &str, mut each: impl FnMut(Record<'_>) -> Result<bool>) -> Result<()> {
        let mut splitter = Splitter::new();
        let mut wanted = SERIAL_BLOCK_BYTES;
        loop {
            self.fill(wanted, path)?;
            let mut stopped = false;
            let split = splitter.split(path, &self.bytes, self.line, self.at_end, |record| {
                stopped = !each(record)?;
                Ok(!stopped)
            })?;
            // A record longer than the bytes held: hold twice as many.
            wanted =
                if split.consumed == 0 { 2 * self.bytes.len().max(SERIAL_BLOCK_BYTES) } else { SERIAL_BLOCK_BYTES };
            self.advance(split);
            if stopped || (self.at_end && self.bytes.is_empty()) {
                return Ok(());
            }
        }
    }
}

/// Where to cut `bytes` (from where a record may start, on `line`) into about `pieces` pieces of
/// whole records; the last piece ends where the last whole record does (with `at_end`, at the
/// end). Without quotes, records end at line ends, found with memchr; with quotes (a line end may
/// be inside a field) or without line ends (`\r` alone ends lines too), the records' ends are
/// found by splitting them on this thread. `unquoted` says whether the bytes hold no quote.
fn piece_ranges(bytes: &[u8], line: u64, at_end: bool, pieces: usize, unquoted: bool) -> Result<Vec<Range<usize>>> {
    let target = bytes.len().div_ceil(pieces.max(1)).max(1);
    let mut bounds = vec![0];
    let last_line_end = memchr::memrchr(b'\n', bytes);
    let cut = if unquoted && (at_end || last_line_end.is_some()) {
        let cut = if at_end { bytes.len() } else { last_line_end.map_or(0, |i| i + 1) };
        let mut from = target;
        while from < cut {
            match memchr::memchr(b'\n', &bytes[from..cut]) {
                Some(i) if from + i + 1 < cut => bounds.push(from + i + 1),
                _ => break,
            }
            from = bounds[bounds.len() - 1] + target;
        }
        cut
    } else {
        let mut next = target;
        let split = Splitter::new().split_raw(bytes, line, at_end, |_, _, _, end| {
            if end >= next && end < bytes.len() {
                bounds.push(end);
                next = end + target;
            }
            Ok(true)
        })?;
        split.consumed
    };
    if cut > 0 {
        bounds.push(cut);
    }
    bounds.dedup();
    Ok(bounds.windows(2).map(|w| w[0]..w[1]).collect())
}

/// Whether `bytes` hold no quote (their records then end at line ends).
fn quote_free(bytes: &[u8]) -> bool {
    memchr::memchr(b'"', bytes).is_none()
}

/// What a block's pieces gave (their rows, parsed), in order: whether the table ends with them,
/// or the error of a bad record (the pieces are then those before it, the last one cut short).
struct Block<P = Chunk> {
    pieces: Vec<P>,
    last: bool,
    error: Option<anyhow::Error>,
}

/// Where a piece of a block lies: the line it starts on, its line ends, whether it ends the
/// table, and whether it holds no quote.
#[derive(Clone, Copy, Debug)]
struct PieceAt {
    line: u64,
    line_ends: u64,
    at_end: bool,
    unquoted: bool,
}

/// Hands the records of a piece of a block to `each`: read in place when the piece holds no
/// quote, by csv-core otherwise.
fn split_piece(path: &str, bytes: &[u8], at: PieceAt, each: impl FnMut(Record<'_>) -> Result<bool>) -> Result<Split> {
    match at.unquoted {
        true => split_unquoted(path, bytes, at.line, each),
        false => Splitter::new().split(path, bytes, at.line, at.at_end, each),
    }
}

/// The rest of a table, split a block of bytes at a time: each block is cut into pieces split
/// (and parsed, or scanned) on the pool's threads while the next block is read and the caller's
/// work on the block before runs beside them.
struct Blocks<'a> {
    format: &'a RowFormat,
    stream: &'a mut ByteStream,
    width: usize,
    block_bytes: usize,
    /// Whether the last block held no whole record (the next one is then read twice as long).
    stalled: bool,
    /// Whether the stream's bytes hold no quote, when the task that read them has looked.
    unquoted: Option<bool>,
    /// The buffer of the block before, reused for the next block's bytes: a fresh one would be
    /// faulted in page by page.
    spare: Vec<u8>,
    /// Whether the table's last block was parsed.
    done: bool,
}

impl<'a> Blocks<'a> {
    fn new(reader: &'a mut TableReader) -> Result<Self> {
        reader.stream.fill(reader.block_bytes, &reader.format.path)?;
        Ok(Blocks {
            format: &reader.format,
            stream: &mut reader.stream,
            width: reader.width,
            block_bytes: reader.block_bytes,
            stalled: false,
            unquoted: None,
            spare: Vec::new(),
            done: false,
        })
    }

    /// The next block's rows (`None` after the last block), and what `beside` returned: it runs
    /// while the block is parsed. Only for tables whose categorical columns have fixed levels.
    fn rows<R: Send>(&mut self, beside: impl FnOnce() -> R + Send) -> (Result<Option<Block>>, R) {
        let (format, width) = (self.format, self.width);
        assert!(!format.discovers_levels(), "records parsed apart from the reader need fixed levels");
        self.next_with(|bytes, at| format.parse_piece(bytes, at, width), beside)
    }

    /// What `piece` gives for each piece of the next block (`None` after the last block), and
    /// what `beside` returned: it runs while the pieces are split.
    fn next_with<P: Send, R: Send>(
        &mut self,
        piece: impl Fn(&[u8], PieceAt) -> (P, Result<Split>) + Sync,
        beside: impl FnOnce() -> R + Send,
    ) -> (Result<Option<Block<P>>>, R) {
        if self.done {
            return (Ok(None), beside());
        }
        let path = self.format.path.as_str();
        let stream = &mut *self.stream;
        let (block, line, at_end) = (std::mem::take(&mut stream.bytes), stream.line, stream.at_end);
        let pieces = PIECES_PER_THREAD * rayon::current_num_threads().max(1);
        let unquoted = self.unquoted.take().unwrap_or_else(|| quote_free(&block));
        let ranges = match piece_ranges(&block, line, at_end, pieces, unquoted) {
            Ok(planned) => planned,
            Err(e) => return (Err(e), beside()),
        };
        let cut = ranges.last().map_or(0, |r| r.end);
        // A record longer than the block: read as much again, so that blocks double until it fits.
        let wanted = if self.stalled { block.len() } else { self.block_bytes };
        let source = stream.source.as_mut();
        let mut next = std::mem::take(&mut self.spare);
        // The next block's bytes, and whether they hold no quote: looked for here, beside the
        // parsing, rather than before the next block's pieces are cut.
        let read = || -> Result<(Vec<u8>, bool, bool)> {
            next.clear();
            if !at_end {
                next.reserve(block.len() - cut + wanted);
            }
            next.extend_from_slice(&block[cut..]);
            let ended = at_end || read_up_to(source, wanted, &mut next, path)?;
            let unquoted = quote_free(&next);
            Ok((next, ended, unquoted))
        };
        let parse = || -> (Vec<P>, Result<u64>) {
            // Each piece's first line: the line ends before it.
            let newlines: Vec<u64> =
                ranges.par_iter().map(|r| memchr::memchr_iter(b'\n', &block[r.clone()]).count() as u64).collect();
            let parsed: Vec<(P, Result<Split>)> = ranges
                .par_iter()
                .enumerate()
                .map(|(k, r)| {
                    let line = line + newlines[..k].iter().sum::<u64>();
                    let at_end = at_end && r.end == block.len();
                    piece(&block[r.clone()], PieceAt { line, line_ends: newlines[k], at_end, unquoted })
                })
                .collect();
            // The pieces up to the first error in the file's order.
            let mut pieces = Vec::with_capacity(parsed.len());
            for (r, (done, split)) in ranges.iter().zip(parsed) {
                pieces.push(done);
                match split {
                    Ok(split) if split.consumed == r.len() => {}
                    // Pieces are cut where records end; were one not, its rest would be lost.
                    Ok(split) => {
                        let fault = "a record runs past the piece of the file read with it (a fault of the reader)";
                        return (pieces, Err(anyhow!("{path}: line {}: {fault}", split.line)));
                    }
                    Err(e) => return (pieces, Err(e)),
                }
            }
            (pieces, Ok(line + newlines.iter().sum::<u64>()))
        };
        let (next, ((pieces, next_line), beside)) = rayon::join(read, || rayon::join(parse, beside));
        let next_line = match next_line {
            Ok(next_line) => next_line,
            Err(e) => return (Ok(Some(Block { pieces, last: false, error: Some(e) })), beside),
        };
        if at_end {
            self.done = true;
            return (Ok(Some(Block { pieces, last: true, error: None })), beside);
        }
        match next {
            Ok((next, ended, unquoted)) => {
                (stream.bytes, stream.line, stream.at_end) = (next, next_line, ended);
                self.unquoted = Some(unquoted);
            }
            Err(e) => return (Err(e), beside),
        }
        self.spare = block;
        self.stalled = cut == 0;
        (Ok(Some(Block { pieces, last: false, error: None })), beside)
    }
}

/// Parsed rows waiting to be handed out in pieces of a fixed number of rows.
#[derive(Default)]
struct RowQueue {
    chunks: VecDeque<Chunk>,
    /// Rows of the front chunk already handed out.
    taken: usize,
    /// Rows not yet handed out.
    rows: usize,
}

impl RowQueue {
    fn push(&mut self, chunk: Chunk) {
        if chunk.rows() > 0 {
            self.rows += chunk.rows();
            self.chunks.push_back(chunk);
        }
    }

    /// Which rows of which chunks make up each of the next pieces of `piece_rows` rows (and,
    /// with `all`, the last rows).
    fn plan(&self, piece_rows: usize, all: bool) -> Vec<Vec<(usize, Range<usize>)>> {
        let count = if all { self.rows.div_ceil(piece_rows) } else { self.rows / piece_rows };
        let (mut chunk, mut offset, mut left) = (0, self.taken, self.rows);
        (0..count)
            .map(|_| {
                let mut need = piece_rows.min(left);
                left -= need;
                let mut parts = Vec::new();
                while need > 0 {
                    let take = need.min(self.chunks[chunk].rows() - offset);
                    parts.push((chunk, offset..offset + take));
                    (need, offset) = (need - take, offset + take);
                    if offset == self.chunks[chunk].rows() {
                        (chunk, offset) = (chunk + 1, 0);
                    }
                }
                parts
            })
            .collect()
    }

    /// The rows of one piece of a [`RowQueue::plan`].
    fn gather(&self, parts: &[(usize, Range<usize>)], n_features: usize) -> Chunk {
        let rows = parts.iter().map(|(_, r)| r.len()).sum::<usize>();
        let labelled = self.chunks.front().is_some_and(|c| c.labels.is_some());
        let mut piece = Chunk {
            values: Vec::with_capacity(rows * n_features),
            labels: labelled.then(|| Vec::with_capacity(rows)),
            lines: Vec::with_capacity(rows),
        };
        for (c, r) in parts {
            let chunk = &self.chunks[*c];
            piece.values.extend_from_slice(&chunk.values[r.start * n_features..r.end * n_features]);
            piece.lines.extend_from_slice(&chunk.lines[r.clone()]);
            if let (Some(labels), Some(from)) = (&mut piece.labels, &chunk.labels) {
                labels.extend_from_slice(&from[r.clone()]);
            }
        }
        piece
    }

    /// Forgets the rows a plan handed out; returns the chunks they emptied (for the caller to
    /// drop where it costs no waiting).
    fn drop_planned(&mut self, plan: &[Vec<(usize, Range<usize>)>]) -> Vec<Chunk> {
        let Some((chunk, range)) = plan.last().and_then(|parts| parts.last()) else { return Vec::new() };
        self.rows -= plan.iter().flatten().map(|(_, r)| r.len()).sum::<usize>();
        if range.end == self.chunks[*chunk].rows() {
            self.taken = 0;
            self.chunks.drain(..=chunk).collect()
        } else {
            self.taken = range.end;
            self.chunks.drain(..*chunk).collect()
        }
    }
}

/// Reads the rest of a table whose categorical columns have fixed levels in pieces of at most
/// `max_piece_rows` rows (fewer for wide tables), applying `handle` to each on the pool's
/// threads, and passes the results to `consume` in input order (`handle` is told the 0-based
/// number of the piece's first row). A block's pieces are handled while the next block is
/// parsed and the one after it read, so memory holds a few blocks and their rows whatever the
/// file's size. Pieces are cut at the same rows on any number of threads, so results do not
/// depend on it. At a bad record, the whole pieces before it are handled and consumed first.
pub fn for_each_piece<T: Send>(
    reader: &mut TableReader,
    max_piece_rows: usize,
    handle: impl Fn(&RowFormat, Chunk, usize) -> Result<T> + Sync,
    mut consume: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    // Pieces of wide tables have fewer rows, so that a piece's rows stay a few megabytes. A
    // multiple of 16 rows, so that scores are computed in the same product tiles whatever the
    // piece size.
    let piece_rows = (FIELDS_PER_PIECE / reader.width.max(1)).clamp(16, max_piece_rows.max(16)) / 16 * 16;
    let format = reader.format().clone();
    let n_features = format.features.len();
    let mut blocks = Blocks::new(reader)?;
    let (mut queue, mut first_row, mut bad_record) = (RowQueue::default(), 0, None);
    let mut plan: Vec<Vec<(usize, Range<usize>)>> = Vec::new();
    let mut retired = Vec::new();
    loop {
        // The pieces planned from the last block are handled while the next one is parsed, and
        // the chunks emptied before are freed there too, off the path between blocks.
        let handle_planned = || -> Vec<Result<T>> {
            drop(retired);
            plan.par_iter()
                .enumerate()
                .map(|(k, parts)| handle(&format, queue.gather(parts, n_features), first_row + k * piece_rows))
                .collect()
        };
        let (block, results) = blocks.rows(handle_planned);
        retired = queue.drop_planned(&plan);
        first_row += plan.iter().flatten().map(|(_, r)| r.len()).sum::<usize>();
        results.into_iter().try_for_each(|result| consume(result?))?;
        let Some(block) = block? else { return bad_record.map_or(Ok(()), Err) };
        block.pieces.into_iter().for_each(|c| queue.push(c));
        plan = queue.plan(piece_rows, block.last);
        if block.error.is_some() {
            // The whole pieces before the bad record are handled by the next turn, which parses
            // nothing more.
            bad_record = block.error;
            blocks.done = true;
        }
    }
}

/// The rest of a table whose categorical columns have fixed levels (a model's), parsed on every
/// thread; an error without data rows.
pub fn read_rest(reader: &mut TableReader) -> Result<Chunk> {
    let mut all = Chunk { values: Vec::new(), labels: reader.format.label.map(|_| Vec::new()), lines: Vec::new() };
    let path = reader.path().to_string();
    let mut blocks = Blocks::new(reader)?;
    let mut parsed: Vec<Chunk> = Vec::new();
    loop {
        // The last block's rows are copied out while the next one is parsed.
        let append = || {
            for chunk in parsed {
                all.values.extend_from_slice(&chunk.values);
                all.lines.extend_from_slice(&chunk.lines);
                if let (Some(all), Some(labels)) = (&mut all.labels, chunk.labels) {
                    all.extend(labels);
                }
            }
        };
        let (block, ()) = blocks.rows(append);
        let Some(block) = block? else { break };
        if let Some(error) = block.error {
            return Err(error);
        }
        parsed = block.pieces;
    }
    if all.rows() == 0 {
        bail!("{path}: no data rows (only a header)");
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

    /// What reading a table gave: its rows (values, labels, lines) or the error's message.
    type Reading = std::result::Result<(Vec<f32>, Option<Vec<String>>, Vec<u64>), String>;

    fn reading(chunk: Result<Chunk>) -> Reading {
        chunk.map(|c| (c.values, c.labels, c.lines)).map_err(|e| e.to_string())
    }

    /// Reads the rows of `path` on one thread, record after record (as training with
    /// categorical columns does).
    fn read_serially(path: &str, spec: &ColumnSpec) -> Reading {
        let mut reader = TableReader::open(path, spec).map_err(|e| e.to_string())?;
        let chunk = reader.next_chunk(usize::MAX).map_err(|e| e.to_string())?;
        reading(chunk.ok_or_else(|| anyhow!("{path}: no data rows (only a header)")))
    }

    /// Opens `path` as a reader that holds at most `block_bytes` of the table after its header and
    /// reads on in blocks of `block_bytes`. (Opening reads up to 64 KB to find the header, which
    /// holds a small table whole: the blocks after the first would go untested.)
    fn open_in_blocks(path: &str, spec: &ColumnSpec, block_bytes: usize) -> std::result::Result<TableReader, String> {
        let mut reader = TableReader::open(path, spec).map_err(|e| e.to_string())?;
        reader.block_bytes = block_bytes;
        let stream = &mut reader.stream;
        if stream.bytes.len() > block_bytes {
            let held_back = stream.bytes.split_off(block_bytes);
            let source = std::mem::replace(&mut stream.source, Box::new(std::io::empty()));
            stream.source = Box::new(std::io::Cursor::new(held_back).chain(source));
            stream.at_end = false;
        }
        Ok(reader)
    }

    /// Reads the rows of `path` in blocks of `block_bytes` split on `threads` threads, whole
    /// ([`read_rest`]) and in pieces of 16 rows ([`for_each_piece`], which must hand them over
    /// in order, numbered from 0); both must agree.
    fn read_in_blocks(path: &str, spec: &ColumnSpec, block_bytes: usize, threads: usize) -> Reading {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut reader = open_in_blocks(path, spec, block_bytes)?;
            let whole = reading(read_rest(&mut reader));
            let mut reader = open_in_blocks(path, spec, block_bytes)?;
            let mut pieces = Chunk { values: vec![], labels: None, lines: vec![] };
            let result = for_each_piece(
                &mut reader,
                16,
                |_, chunk, first_row| Ok((chunk, first_row)),
                |(chunk, first_row)| {
                    assert_eq!(first_row, pieces.rows(), "pieces in order, numbered by their first row");
                    pieces.values.extend(chunk.values);
                    pieces.lines.extend(chunk.lines);
                    if let Some(labels) = chunk.labels {
                        pieces.labels.get_or_insert_with(Vec::new).extend(labels);
                    }
                    Ok(())
                },
            );
            let in_pieces = match result {
                Ok(()) if pieces.rows() == 0 => Err(format!("{path}: no data rows (only a header)")),
                Ok(()) => Ok((pieces.values, pieces.labels, pieces.lines)),
                Err(e) => Err(e.to_string()),
            };
            assert_eq!(whole, in_pieces, "read_rest and for_each_piece differ");
            whole
        })
    }

    /// Per column, the first field that is not a number, found record after record on one thread
    /// (what `scan_text` finds in blocks on every thread).
    fn scan_serially(path: &str, spec: &ColumnSpec) -> std::result::Result<FirstText, String> {
        let mut reader = TableReader::open(path, spec).map_err(|e| e.to_string())?;
        let (features, path) = (reader.format.features.clone(), reader.format.path.clone());
        let mut first: FirstText = vec![None; features.len()];
        let scan = |record: Record<'_>| {
            for (f, &i) in features.iter().enumerate() {
                let field = record.get(i).map_or("", str::trim);
                if first[f].is_none() && !field.is_empty() && field.parse::<f64>().is_err() {
                    first[f] = Some((record.line, field.to_string()));
                }
            }
            Ok(true)
        };
        reader.stream.each_record(&path, scan).map_err(|e| e.to_string())?;
        Ok(first)
    }

    /// A table of numbers and a text label, from generated rows: blank lines, `\r\n` line ends,
    /// quoted fields (some with a line end inside), and now and then a field that is not a number.
    fn table_text(rows: &[(Vec<i16>, u8, u8)], crlf: bool) -> String {
        let end = if crlf { "\r\n" } else { "\n" };
        let mut text = format!("a,b,label{end}");
        for (numbers, label, shape) in rows {
            let field = |k: usize| match (shape % 61, k) {
                (1, 0) => format!("\"{}\"", numbers[0]),
                (2, 1) => "x".to_string(),
                (3, 0) => format!("\u{feff}{}", numbers[0]),
                _ => numbers[k].to_string(),
            };
            let label = match shape % 13 {
                1 => format!("\"l{label},\n{label}\""),
                2 => format!("\"say \"\"{label}\"\"\""),
                _ => format!("l{label}"),
            };
            text += &format!("{},{},{label}{end}", field(0), field(1));
            if shape % 11 == 3 {
                text += end;
            }
        }
        text
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Rows read in blocks on 1-3 threads are those of one pass on one thread, whatever the
        /// block size, with the same lines; a bad field is the same error (the first in the file).
        #[test]
        fn blocks_on_any_number_of_threads_give_the_rows_of_one_serial_pass(
            rows in proptest::collection::vec(
                (proptest::collection::vec(-999i16..999, 2), any::<u8>(), any::<u8>()), 0..60),
            crlf in any::<bool>(),
            block_bytes in 1usize..300,
            threads in 1usize..4,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.csv");
            std::fs::write(&path, table_text(&rows, crlf)).unwrap();
            let path = path.to_str().unwrap();
            let spec = ColumnSpec { label: Some("label".into()), ..ColumnSpec::default() };
            prop_assert_eq!(read_in_blocks(path, &spec, block_bytes, threads), read_serially(path, &spec));
            // The first text of each column (the label's too), as `--visible auto` looks for it.
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let in_blocks = pool.install(|| {
                let mut reader = open_in_blocks(path, &ColumnSpec::default(), block_bytes)?;
                reader.scan_text(&[]).map_err(|e| e.to_string())
            });
            prop_assert_eq!(in_blocks, scan_serially(path, &ColumnSpec::default()));
        }

        /// Commas are found 64 bytes at a time where a byte-by-byte scan finds them.
        #[test]
        fn commas_are_found_in_blocks_as_one_by_one(bytes in proptest::collection::vec(
            prop_oneof![Just(b','), Just(b'1'), Just(b'\xac'), any::<u8>()], 0..300)
        ) {
            let mut ends = vec![7];
            comma_positions(&bytes, &mut ends);
            let expected: Vec<usize> =
                std::iter::once(7).chain(bytes.iter().enumerate().filter(|&(_, &b)| b == b',').map(|(j, _)| j)).collect();
            prop_assert_eq!(ends, expected);
        }

        /// Records are the csv crate's records, field for field.
        #[test]
        fn records_are_the_csv_crates(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just(","), Just("\n"), Just("\r\n"), Just("\r"), Just("\""), Just("\"\""), Just("1"),
                    Just("ab"), Just(" "), Just("\u{e9}"),
                ],
                0..60,
            ),
        ) {
            let text: String = pieces.concat();
            let mut expected = Vec::new();
            for record in csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes()).records() {
                expected.push(record.unwrap().iter().map(str::to_string).collect::<Vec<_>>());
            }
            let mut records = Vec::new();
            Splitter::new().split("t.csv", text.as_bytes(), 1, true, |record| {
                records.push(record.iter().map(str::to_string).collect::<Vec<_>>());
                Ok(true)
            }).unwrap();
            prop_assert_eq!(&records, &expected);
            if !text.contains('"') {
                records.clear();
                split_unquoted("t.csv", text.as_bytes(), 1, |record| {
                    records.push(record.iter().map(str::to_string).collect::<Vec<_>>());
                    Ok(true)
                }).unwrap();
                prop_assert_eq!(records, expected, "read in place");
            }
        }
    }

    /// A byte-order mark is dropped at the start of the file only, whether or not the file has a
    /// header, whichever way a block is split; a piece's rows reserve no more memory than its
    /// bytes can hold, however many blank lines it has.
    #[test]
    fn a_byte_order_mark_is_dropped_at_the_start_of_the_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let path = path.to_str().unwrap();
        let spec = ColumnSpec::default();
        for text in ["\u{feff}1,2\n3,4\n", "\u{feff}a,b\n1,2\n3,4\n", "\u{feff}\"a\",b\n1,2\n3,4"] {
            std::fs::write(path, text).unwrap();
            for (block_bytes, threads) in [(4, 1), (4, 2), (1000, 2)] {
                let (values, ..) = read_in_blocks(path, &spec, block_bytes, threads).unwrap();
                assert_eq!(values[values.len() - 4..], [1.0, 2.0, 3.0, 4.0], "{text:?}");
            }
            assert_eq!(read_serially(path, &spec).unwrap().0[..2], [1.0, 2.0], "{text:?}");
        }
        for text in ["a,b\n1,2\n\u{feff}3,4\n", "a,b\n\"1\",2\n\u{feff}3,4\n"] {
            std::fs::write(path, text).unwrap();
            let expected = format!("{path}: line 3, column 1 (a): {:?} is not a number", "\u{feff}3");
            for (block_bytes, threads) in [(4, 1), (4, 2), (1000, 2)] {
                let error = read_in_blocks(path, &spec, block_bytes, threads).unwrap_err();
                assert!(error.starts_with(&expected), "{text:?}: {error}");
            }
            assert!(read_serially(path, &spec).unwrap_err().starts_with(&expected));
        }
        let mut reader = TableReader::open(path, &spec).unwrap();
        reader.width = 20_000;
        reader.format.features = (0..20_000).collect();
        let blank_lines = vec![b'\n'; 100_000];
        let at = PieceAt { line: 1, line_ends: 100_000, at_end: true, unquoted: true };
        let (chunk, _) = reader.format.parse_piece(&blank_lines, at, 20_000);
        assert!(chunk.values.capacity() <= 100_000 + 20_000, "{} values reserved", chunk.values.capacity());
    }

    /// A record's line is the line of its first byte, with `\r\n` line ends, blank lines and
    /// line ends inside quoted fields before it, on any number of threads.
    #[test]
    fn errors_name_the_line_a_record_starts_on() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ColumnSpec { label: Some("label".into()), ..ColumnSpec::default() };
        for (text, line) in [
            ("a,label\r\n1,p\r\n2,q\r\nx,r\r\n", 4),
            ("a,label\n1,p\n\n\n2,q\nx,r\n", 6),
            ("a,label\n1,\"p\nq\"\n2,\"r\r\n\n\"\n\r\nx,s\n", 8),
            ("\n\na,label\n1,p\nx,r", 5),
        ] {
            let path = dir.path().join("t.csv");
            std::fs::write(&path, text).unwrap();
            let path = path.to_str().unwrap();
            let expected = format!("{path}: line {line}, column 1 (a): \"x\" is not a number");
            for threads in 1..=3 {
                let error = read_in_blocks(path, &spec, 5, threads).unwrap_err();
                assert!(error.starts_with(&expected), "{text:?}: {error}");
            }
            let error = read_serially(path, &spec).unwrap_err();
            assert!(error.starts_with(&expected), "{text:?}: {error}");
        }
    }

    /// Text that is not UTF-8 is an error naming its line and field, as is a wrong field count.
    #[test]
    fn bad_text_and_ragged_rows_are_located() {
        let dir = tempfile::tempdir().unwrap();
        for (text, expected) in [
            (&b"a,b\n1,2\n3,\xff\n"[..], "line 3, column 2: not UTF-8 text"),
            (b"a,b\n1,2\n3\n", "line 3: 1 fields, expected 2"),
        ] {
            let path = dir.path().join("t.csv");
            std::fs::write(&path, text).unwrap();
            let path = path.to_str().unwrap();
            for threads in 1..=2 {
                let error = read_in_blocks(path, &ColumnSpec::default(), 4, threads).unwrap_err();
                assert!(error.starts_with(&format!("{path}: {expected}")), "{error}");
            }
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
