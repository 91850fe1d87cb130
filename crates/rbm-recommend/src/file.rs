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

/// The recommender file's envelope (format, version, size cap), shared machinery with the
/// core's model file.
pub const RECOMMENDER_ENVELOPE: rbm_core::Envelope =
    rbm_core::Envelope { format: FORMAT_NAME, versions: &[FORMAT_VERSION], max_bytes: MAX_RECOMMENDER_FILE_BYTES };

/// The core's file errors in the recommender's words.
fn file_error(e: rbm_core::RbmError) -> RecommendError {
    match e {
        rbm_core::RbmError::ModelFile { path, reason } => RecommendError::ModelFile { path, reason },
        rbm_core::RbmError::Io { path, source } => RecommendError::Io { path, source },
        other => other.into(),
    }
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
        let file = RECOMMENDER_ENVELOPE.parse(text, path, |_, text| serde_json::from_str(text)).map_err(file_error)?;
        checked(file, path)
    }

    /// Writes the model atomically (temporary file, then rename), streaming the JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        RECOMMENDER_ENVELOPE.save(path, &self.file_ref(), false).map_err(file_error)
    }

    /// Reads and checks a model file, refusing files over [`MAX_RECOMMENDER_FILE_BYTES`] before
    /// reading. The file is parsed as it is read (its text is never held whole in memory).
    pub fn load(path: &Path) -> Result<Recommender> {
        let file = RECOMMENDER_ENVELOPE.load(path, |_, reader| serde_json::from_reader(reader)).map_err(file_error)?;
        checked(file, path)
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
        // Shapes and finiteness were checked as the RBM was read; here they are checked against
        // the id maps and levels.
        length(&name("n_inputs"), rbm.n_inputs(), inputs)?;
        length(&name("levels"), rbm.levels(), file.levels.len())?;
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
