//! Reading ratings files: `user,item,rating[,timestamp]` CSV (header optional), MovieLens `u.data`
//! (tab-separated) and `ratings.dat` (`::`-separated), told apart by the first line. Ids are
//! strings mapped to dense indices in order of first appearance.
//!
//! A user who rates the same item twice in one file is an error naming both lines: silently
//! keeping one of them would hide a broken export or a mistaken concatenation of files.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{RecommendError, Result};

/// Dense indices for string ids, in order of first appearance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMap {
    ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl IdMap {
    /// A map holding `ids` at indices 0, 1, ... (`None` if an id repeats).
    pub fn from_ids(ids: Vec<String>) -> Option<IdMap> {
        let mut map = IdMap::default();
        for id in ids {
            if map.index.contains_key(&id) {
                return None;
            }
            map.insert(&id);
        }
        Some(map)
    }

    /// The index of `id`, adding it if new.
    pub fn insert(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(id.to_owned());
        self.index.insert(id.to_owned(), i);
        i
    }

    /// The index of `id`, if known.
    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The id at `index`.
    pub fn id(&self, index: u32) -> &str {
        &self.ids[index as usize]
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// All ids in index order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
}

/// One rating: dense user and item indices, the value, and the line it came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rating {
    /// User index.
    pub user: u32,
    /// Item index.
    pub item: u32,
    /// The rating (NaN in a file of bare user-item pairs).
    pub value: f32,
    /// One-based line number in its file (files of more than `u32::MAX` lines are refused).
    pub line: u32,
}

/// How the fields of a ratings file are separated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Separator {
    /// Comma-separated (CSV, quoting allowed).
    Comma,
    /// Tab-separated (MovieLens `u.data`).
    Tab,
    /// `::`-separated (MovieLens `ratings.dat`).
    DoubleColon,
}

/// A ratings file read into dense indices.
#[derive(Clone, Debug)]
pub struct Ratings {
    /// Where the ratings came from (`-` for standard input).
    pub path: PathBuf,
    /// User ids (possibly shared with a model: ids already known keep their indices).
    pub users: IdMap,
    /// Item ids.
    pub items: IdMap,
    /// The ratings in file order.
    pub entries: Vec<Rating>,
    /// The separator detected.
    pub separator: Separator,
    /// Whether the first line was a header.
    pub header: bool,
}

/// What a file must hold per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fields {
    /// `user, item, rating[, anything]`.
    Ratings,
    /// `user, item[, anything]`: which items a user rated or saw, without values.
    Pairs,
}

/// Reads the whole of `path` (`-` = standard input) as text.
pub fn read_text(path: &Path) -> Result<String> {
    let io = |source| RecommendError::Io { path: path.to_path_buf(), source };
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map_err(io)?;
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text)).map_err(io)?;
    }
    Ok(text)
}

/// Reads a ratings (or pairs) file, adding new ids to `users` and `items`.
pub fn read_ratings(path: &Path, fields: Fields, users: IdMap, items: IdMap) -> Result<Ratings> {
    let text = read_text(path)?;
    parse_ratings(&text, path, fields, users, items)
}

/// The separator of a file, from its first non-empty line.
pub fn detect_separator(text: &str) -> Separator {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if first.contains("::") {
        Separator::DoubleColon
    } else if first.contains('\t') {
        Separator::Tab
    } else {
        Separator::Comma
    }
}

/// Parses ratings from `text` (see [`read_ratings`]); `path` only names the source in errors.
pub fn parse_ratings(text: &str, path: &Path, fields: Fields, users: IdMap, items: IdMap) -> Result<Ratings> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let separator = detect_separator(text);
    let mut ratings = Ratings { path: path.to_path_buf(), users, items, entries: Vec::new(), separator, header: false };
    let mut first = true;
    let mut add = |record: &[&str], line: u64| -> Result<()> {
        if record.iter().all(|f| f.trim().is_empty()) {
            return Ok(());
        }
        // Only the first non-blank line can be a header.
        let is_first = std::mem::replace(&mut first, false);
        if is_first && looks_like_header(record, fields) {
            ratings.header = true;
            return Ok(());
        }
        let error =
            |field: usize, reason: String| RecommendError::Parse { path: path.to_path_buf(), line, field, reason };
        let needed = if fields == Fields::Ratings { 3 } else { 2 };
        if record.len() < needed {
            let what = ["a user", "an item", "a rating"][record.len()];
            return Err(error(record.len() + 1, format!("missing field: expected {what}")));
        }
        let user = record[0].trim();
        let item = record[1].trim();
        if user.is_empty() {
            return Err(error(1, "empty user id".into()));
        }
        if item.is_empty() {
            return Err(error(2, "empty item id".into()));
        }
        let value = if fields == Fields::Ratings {
            let raw = record[2].trim();
            match raw.parse::<f32>() {
                Ok(v) if v.is_finite() => v,
                Ok(_) => return Err(error(3, format!("rating {raw:?} is not finite"))),
                Err(_) => return Err(error(3, format!("rating {raw:?} is not a number"))),
            }
        } else {
            f32::NAN
        };
        let Ok(line) = u32::try_from(line) else {
            return Err(error(1, "files of more than 4,294,967,295 lines are not supported".into()));
        };
        let user = ratings.users.insert(user);
        let item = ratings.items.insert(item);
        ratings.entries.push(Rating { user, item, value, line });
        Ok(())
    };
    match separator {
        Separator::DoubleColon => {
            for (n, line) in text.lines().enumerate() {
                let record: Vec<&str> = line.trim_end_matches('\r').split("::").collect();
                add(&record, n as u64 + 1)?;
            }
        }
        Separator::Comma | Separator::Tab => {
            let delimiter = if separator == Separator::Tab { b'\t' } else { b',' };
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .delimiter(delimiter)
                .from_reader(text.as_bytes());
            let mut record = csv::StringRecord::new();
            loop {
                let line = reader.position().line();
                match reader.read_record(&mut record) {
                    Ok(false) => break,
                    Ok(true) => {
                        let line = record.position().map_or(line, |p| p.line());
                        let fields: Vec<&str> = record.iter().collect();
                        add(&fields, line)?;
                    }
                    Err(e) => {
                        let line = e.position().map_or(line, |p| p.line());
                        return Err(RecommendError::Parse {
                            path: path.to_path_buf(),
                            line,
                            field: 1,
                            reason: e.to_string(),
                        });
                    }
                }
            }
        }
    }
    if ratings.entries.is_empty() {
        return Err(RecommendError::Empty { path: path.to_path_buf() });
    }
    check_duplicates(&ratings)?;
    Ok(ratings)
}

/// A first line is a header when its rating field is not a number, or (pairs) when it names users.
fn looks_like_header(record: &[&str], fields: Fields) -> bool {
    match fields {
        Fields::Ratings => record.len() >= 3 && record[2].trim().parse::<f32>().is_err(),
        Fields::Pairs => {
            let first = record[0].trim().to_ascii_lowercase();
            first.starts_with("user") || (record.len() >= 3 && record[2].trim().parse::<f32>().is_err())
        }
    }
}

/// Refuses a user-item pair that appears twice, naming both lines.
fn check_duplicates(ratings: &Ratings) -> Result<()> {
    let mut keys: Vec<(u64, u32)> =
        ratings.entries.iter().enumerate().map(|(i, r)| (((r.user as u64) << 32) | r.item as u64, i as u32)).collect();
    keys.sort_unstable();
    for pair in keys.windows(2) {
        if pair[0].0 == pair[1].0 {
            let (a, b) = (&ratings.entries[pair[0].1 as usize], &ratings.entries[pair[1].1 as usize]);
            return Err(RecommendError::Duplicate {
                path: ratings.path.clone(),
                line: b.line.into(),
                first_line: a.line.into(),
                user: ratings.users.id(b.user).to_owned(),
                item: ratings.items.id(b.item).to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Ratings> {
        parse_ratings(text, Path::new("t"), Fields::Ratings, IdMap::default(), IdMap::default())
    }

    #[test]
    fn reads_the_three_formats_and_headers() {
        for text in [
            "user,item,rating\nu1,i1,5\nu2,i1,3\r\n",
            "\u{feff}u1,i1,5,881250949\nu2,i1,3,881250950\n",
            "u1\ti1\t5\t881250949\nu2\ti1\t3\t1\n",
            "u1::i1::5::978300760\nu2::i1::3::978300760\n",
            "\nuser::item::rating\nu1::i1::5\nu2::i1::3\n",
        ] {
            let r = parse(text).unwrap();
            assert_eq!(r.entries.len(), 2, "{text:?}");
            assert_eq!((r.users.len(), r.items.len()), (2, 1));
            assert_eq!(r.entries[1].value, 3.0);
            let second = text.lines().position(|l| l.starts_with("u2")).unwrap() as u32 + 1;
            assert_eq!(r.entries[1].line, second, "{text:?}");
            assert_eq!(r.header, text.contains("user"), "{text:?}");
        }
    }

    #[test]
    fn bad_lines_are_located() {
        let message = |text: &str| parse(text).unwrap_err().to_string();
        assert!(message("u1,i1,5\nu2,i2,x\n").contains("line 2, field 3"));
        assert!(message("u1,i1,5\nu2,i2\n").contains("line 2, field 3: missing field"));
        assert!(message("u1,i1,5\nu2\n").contains("line 2, field 2"));
        assert!(message("u1,i1,5\nu2,i2,NaN\n").contains("not finite"));
        assert!(message("u1,i1,5\n,i2,4\n").contains("line 2, field 1: empty user"));
        assert!(
            message("u1,i1,5\nu1,i2,4\nu1,i1,3\n").contains("line 3: user \"u1\" already rated item \"i1\" on line 1")
        );
        assert!(message("user,item,rating\n").contains("no ratings"));
        assert!(message("").contains("no ratings"));
    }
}
