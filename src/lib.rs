//! rigfit: fit animated SMPL-style human rigs to 2D keypoints with a score-guided diffusion
//! prior (ScoreHMR), and export them as glTF and USD.
//!
//! Module map (one owner per concept, see DESIGN.md):
//! - [`body`]: the body model as data (SMPL layout) and its forward pass (CPU f32 + candle).
//! - [`geom`]: rotations, cameras, Procrustes alignment and the accuracy metrics.
//! - [`render`]: a small software rasteriser for pictures of the body (model cards, overlays).

pub mod body;
pub mod diffusion;
pub mod error;
pub mod geom;
pub mod guide;
pub mod io;
pub mod render;

pub use error::{Error, Result};
