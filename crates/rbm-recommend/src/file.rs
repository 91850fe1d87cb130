//! The recommender's model file: versioned JSON, written atomically, checked field by field on
//! load (every length against the id maps and levels, every number finite).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{RecommendError, Result};
use crate::ratings::IdMap;
use crate::recommender::{Blend, Component, MAX_COMPONENTS, MAX_LEVELS, RecommendParams, Recommender, Side};

/// The `format` field of a recommender model file.
pub const FORMAT_NAME: &str = "rbm-recommend-model";
/// The version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The largest recommender model file read: its weights grow with users x items' levels x hidden
/// units, so the cap is above the core's, but an absurd file is still refused before reading.
pub const MAX_RECOMMENDER_FILE_BYTES: u64 = 8 << 30;

#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<u64>,
}

/// What is written: the same fields as [`ModelFile`], borrowed, so saving copies nothing.
#[derive(Serialize)]
struct ModelFileRef<'a> {
    format: &'a str,
    version: u32,
    toolkit_version: &'a str,
    levels: &'a [f32],
    users: &'a [String],
    items: &'a [String],
    components: &'a [Component],
    blend: &'a Blend,
    global_mean: f32,
    item_means: &'a [f32],
    user_means: &'a [f32],
    params: &'a RecommendParams,
    implicit_source: &'a Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    // Checked by the header pass; named here so that `deny_unknown_fields` accepts them.
    #[serde(rename = "format")]
    _format: String,
    #[serde(rename = "version")]
    _version: u32,
    #[serde(rename = "toolkit_version")]
    _toolkit_version: String,
    levels: Vec<f32>,
    users: Vec<String>,
    items: Vec<String>,
    components: Vec<Component>,
    blend: Blend,
    global_mean: f32,
    item_means: Vec<f32>,
    user_means: Vec<f32>,
    params: RecommendParams,
    implicit_source: Option<String>,
}

impl Recommender {
    fn file_ref(&self) -> ModelFileRef<'_> {
        ModelFileRef {
            format: FORMAT_NAME,
            version: FORMAT_VERSION,
            toolkit_version: env!("CARGO_PKG_VERSION"),
            levels: &self.levels,
            users: self.users.ids(),
            items: self.items.ids(),
            components: &self.components,
            blend: &self.blend,
            global_mean: self.global_mean,
            item_means: &self.item_means,
            user_means: &self.user_means,
            params: &self.params,
            implicit_source: &self.implicit_source,
        }
    }

    /// The model as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.file_ref()).expect("a model serialises")
    }

    /// Parses and checks a model; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Recommender> {
        let bad = |reason: String| RecommendError::ModelFile { path: path.to_path_buf(), reason };
        let header: Header = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        check_header(&header, path)?;
        let file: ModelFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        checked(file, path)
    }

    /// Writes the model atomically (temporary file, then rename), streaming the JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(rbm_core::write_atomically_with(path, |out| {
            serde_json::to_writer(out, &self.file_ref()).map_err(std::io::Error::other)
        })?)
    }

    /// Reads and checks a model file, refusing files over [`MAX_RECOMMENDER_FILE_BYTES`] before
    /// reading. The file is parsed as it is read (its text is never held whole in memory).
    pub fn load(path: &Path) -> Result<Recommender> {
        let io = |source| RecommendError::Io { path: path.to_path_buf(), source };
        let bad = |e: serde_json::Error| RecommendError::ModelFile { path: path.to_path_buf(), reason: e.to_string() };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_RECOMMENDER_FILE_BYTES {
            return Err(RecommendError::ModelFile {
                path: path.to_path_buf(),
                reason: format!("file is {size} bytes, more than the {MAX_RECOMMENDER_FILE_BYTES} accepted"),
            });
        }
        let open = || std::fs::File::open(path).map(|f| std::io::BufReader::with_capacity(1 << 20, f)).map_err(io);
        let header: Header = serde_json::from_reader(open()?).map_err(bad)?;
        check_header(&header, path)?;
        let file: ModelFile = serde_json::from_reader(open()?).map_err(bad)?;
        checked(file, path)
    }
}

fn check_header(header: &Header, path: &Path) -> Result<()> {
    let bad = |reason: String| Err(RecommendError::ModelFile { path: path.to_path_buf(), reason });
    match header.format.as_deref() {
        Some(FORMAT_NAME) => {}
        Some(other) => return bad(format!("format is {other:?}, expected {FORMAT_NAME:?}")),
        None => return bad("no \"format\" field".into()),
    }
    match header.version {
        Some(v) if v == FORMAT_VERSION as u64 => Ok(()),
        Some(v) => bad(format!("version {v} is not supported (this build reads {FORMAT_VERSION})")),
        None => bad("no \"version\" field".into()),
    }
}

/// Every length against the id maps and levels, every number finite.
fn checked(file: ModelFile, path: &Path) -> Result<Recommender> {
    let bad = |reason: String| RecommendError::ModelFile { path: path.to_path_buf(), reason };
    if file.levels.is_empty() || file.levels.len() > MAX_LEVELS {
        return Err(bad(format!("{} rating levels (1 to {MAX_LEVELS} accepted)", file.levels.len())));
    }
    if !file.levels.windows(2).all(|w| w[0] < w[1]) || !file.levels.iter().all(|l| l.is_finite()) {
        return Err(bad("rating levels are not finite and strictly ascending".into()));
    }
    let users = IdMap::from_ids(file.users).ok_or_else(|| bad("a user id appears twice".into()))?;
    let items = IdMap::from_ids(file.items).ok_or_else(|| bad("an item id appears twice".into()))?;
    let finite = |what: &str, v: &[f32]| match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(bad(format!("{what}[{i}] is not finite"))),
        None => Ok(()),
    };
    let length = |what: &str, found: usize, expected: usize| {
        if found == expected { Ok(()) } else { Err(bad(format!("{what} has {found} values, expected {expected}"))) }
    };
    if file.components.is_empty() || file.components.len() > MAX_COMPONENTS {
        return Err(bad(format!("{} components (1 to {MAX_COMPONENTS} expected)", file.components.len())));
    }
    for (n, c) in file.components.iter().enumerate() {
        let rbm = &c.rbm;
        let inputs = match c.side {
            Side::User => items.len(),
            Side::Item => users.len(),
        };
        let name = |part: &str| format!("components[{n}].{part}");
        length(&name("n_inputs"), rbm.n_inputs, inputs)?;
        length(&name("levels"), rbm.levels, file.levels.len())?;
        if rbm.hidden == 0 {
            return Err(bad(format!("{} is 0", name("hidden"))));
        }
        let weights = rbm
            .n_inputs
            .checked_mul(rbm.levels)
            .and_then(|x| x.checked_mul(rbm.hidden))
            .ok_or_else(|| bad(format!("{} is absurd", name("hidden"))))?;
        length(&name("weights"), rbm.weights.len(), weights)?;
        length(&name("visible_bias"), rbm.visible_bias.len(), rbm.n_inputs * rbm.levels)?;
        length(&name("hidden_bias"), rbm.hidden_bias.len(), rbm.hidden)?;
        finite(&name("weights"), &rbm.weights)?;
        finite(&name("visible_bias"), &rbm.visible_bias)?;
        finite(&name("hidden_bias"), &rbm.hidden_bias)?;
        if let Some(d) = &rbm.conditional {
            length(&name("conditional"), d.len(), rbm.n_inputs * rbm.hidden)?;
            finite(&name("conditional"), d)?;
        }
    }
    length("blend.weights", file.blend.weights.len(), file.components.len())?;
    finite("blend.weights", &file.blend.weights)?;
    finite("blend.intercept", &[file.blend.intercept])?;
    finite("global_mean", &[file.global_mean])?;
    length("item_means", file.item_means.len(), items.len())?;
    length("user_means", file.user_means.len(), users.len())?;
    finite("item_means", &file.item_means)?;
    finite("user_means", &file.user_means)?;
    Ok(Recommender {
        levels: file.levels,
        users,
        items,
        components: file.components,
        blend: file.blend,
        global_mean: file.global_mean,
        item_means: file.item_means,
        user_means: file.user_means,
        params: file.params,
        implicit_source: file.implicit_source,
    })
}
