//! # rbm-recommend
//!
//! Collaborative filtering with Restricted Boltzmann Machines (Salakhutdinov, Mnih & Hinton,
//! "Restricted Boltzmann Machines for Collaborative Filtering", ICML 2007): one K-way softmax
//! visible unit per rated item, no unit at all for unrated items, binary hidden units, optional
//! conditioning on which items were rated; the user-based model, the item-based one (Sedhain et
//! al. 2015) and a blend of both. The mathematics is in `docs/recommend.md` of the repository.
#![deny(missing_docs)]

mod error;
pub mod evaluate;
mod file;
pub mod ratings;
mod recommender;
pub mod softmax;
pub mod split;
pub mod synthetic;

pub use error::{RecommendError, Result};
pub use file::{FORMAT_NAME, FORMAT_VERSION};
pub use recommender::{
    Blend, Component, Context, MAX_LEVELS, Orientation, Prediction, RecommendParams, Recommender, Side, Source,
    TrainingEpoch,
};
