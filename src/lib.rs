//! rigfit: fit animated SMPL-style human rigs to 2D keypoints with a score-guided diffusion
//! prior (ScoreHMR), and export them as glTF and USD.
//!
//! Module map (one owner per concept, see DESIGN.md):
//! - [`body`]: the body model as data (SMPL layout) and its forward pass (CPU f32 + candle),
//!   the npz loader, and the license-free default body ([`body::mannequin`]).
//! - [`geom`]: rotations, cameras, Procrustes alignment and the accuracy metrics.
//! - [`diffusion`]: ScoreHMR's schedule and denoiser, DDIM sampling and inversion, and the
//!   score-guided refinement ([`diffusion::ddim::refine`]).
//! - [`guide`]: the guidance terms (keypoints with the camera, multi-view, video smoothness).
//! - [`io`]: file formats (NumPy archives; keypoint formats and mocap to come).
//! - [`motion`]: [`motion::Motion`], the fitted animation (shape, per-frame rotations and
//!   translations, cameras) that exporters, plugins and overlays consume.
//! - [`render`]: a small software rasteriser for pictures of the body (model cards, overlays).

pub mod body;
pub mod diffusion;
pub mod error;
pub mod export;
pub mod ffi;
pub mod fit;
pub mod geom;
pub mod guide;
pub mod io;
pub mod learn;
pub mod motion;
pub mod render;

pub use error::{Error, Result};
