//! # rbm-recommend
//!
//! Collaborative filtering with Restricted Boltzmann Machines (Salakhutdinov, Mnih & Hinton,
//! "Restricted Boltzmann Machines for Collaborative Filtering", ICML 2007): one K-way softmax
//! visible unit per rated item, no unit at all for unrated items, binary hidden units, optional
//! conditioning on which items were rated; the user-based model, the item-based one (Sedhain et
//! al. 2015) and a blend of both. The RBM itself, its training and its sampling are rbm-core's
//! masked per-case path ([`rbm_core::masked`]); this crate adds what is about recommendation:
//! ratings, orientations, replicas, the blend, fallbacks, ranking, splits and metrics. The
//! mathematics is in `docs/recommend.md` of the repository.
//!
//! ```
//! use std::path::Path;
//! use rbm_recommend::ratings::{parse_ratings, Fields, IdMap};
//! use rbm_recommend::{Orientation, RecommendParams, Recommender, Source};
//!
//! // Two tastes: even users love items a and b, odd users love c and d.
//! let mut text = String::from("user,item,rating\n");
//! for u in 0..40 {
//!     for (i, item) in ["a", "b", "c", "d"].iter().enumerate() {
//!         if (u + i) % 4 == 3 { continue; } // leave one item unrated per user
//!         let loves = (u % 2 == 0) == (i < 2);
//!         text += &format!("u{u},{item},{}\n", if loves { 5 } else { 1 });
//!     }
//! }
//! let ratings = parse_ratings(&text, Path::new("ratings"), Fields::Ratings, IdMap::default(), IdMap::default())?;
//! let mut params = RecommendParams::new(Orientation::User).with_seed(1);
//! params.user.hidden = 8;
//! params.user.batch_size = 4; // 40 users: ten updates per epoch
//! params.replicas = 1;
//! let model = Recommender::fit(ratings.clone(), &[], None, &params.check()?, |_| std::ops::ControlFlow::Continue(()))?;
//! // Predictions condition on the ratings given (here the training ratings themselves).
//! let context = model.context(&ratings, &[])?;
//! let (u0, d) = (ratings.users.get("u0").unwrap(), ratings.items.get("d").unwrap());
//! let prediction = model.predict(&context, u0, d); // u0 (even) did not rate d, and dislikes it
//! assert_eq!(prediction.source, Source::Model);
//! assert!(prediction.value < 2.5, "{prediction:?}");
//! # Ok::<(), rbm_recommend::RecommendError>(())
//! ```
#![deny(missing_docs)]

mod error;
pub mod evaluate;
mod file;
pub mod ratings;
mod recommender;
pub mod split;
pub mod synthetic;

pub use error::{RecommendError, Result};
pub use file::{FORMAT_NAME, FORMAT_VERSION, MAX_RECOMMENDER_FILE_BYTES};
pub use recommender::{
    Blend, Component, Context, DEFAULT_RANK_SHRINKAGE, MAX_LEVELS, Orientation, Prediction, Ranked, RecommendParams,
    Recommender, Side, Source, TrainingEpoch, ValidRecommendParams,
};
