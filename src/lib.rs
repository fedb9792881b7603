//! rigfit: fit animated SMPL-style human rigs to 2D keypoints with a score-guided diffusion
//! prior (ScoreHMR), and export them as glTF and USD.
//!
//! Module map (one owner per concept, see DESIGN.md):
//! - [`body`]: the body model as data (SMPL layout) and its forward pass (CPU f32 + candle),
//!   the npz loader, and the license-free default body ([`body::mannequin`]).
//! - [`geom`]: rotations, cameras, Procrustes alignment and the accuracy metrics.
//! - [`diffusion`]: ScoreHMR's schedule and denoiser, DDIM sampling and inversion, the
//!   score-guided refinement ([`diffusion::ddim::refine`]), and the keypoint-conditioned prior
//!   ([`diffusion::prior`]).
//! - [`guide`]: the guidance terms (keypoints with the camera, calibrated views, multi-view
//!   consistency, video smoothness).
//! - [`fit`]: the fitting pipelines ([`fit::Fitter`]) and the SMPLify baseline.
//! - [`learn`]: mocap retargeting, synthetic samples, prior training, the GMM pose prior, the
//!   evaluation, and improving the prior without 3D labels: the HMR-Scorer, Diffusion-DPO and
//!   data cleaning (ADHMR), reward fine-tuning (DrPose), on shared plumbing ([`learn::tune`]).
//! - [`io`]: file formats: NumPy archives, 2D keypoints ([`io::keypoints`]: OpenPose, COCO,
//!   MMPose, MediaPipe -> BODY_25), BVH mocap ([`io::bvh`]), atomic writes.
//! - [`export`]: glTF, USD and overlay pictures of a motion.
//! - [`ffi`]: the C ABI (cpp/rigfit.h) for C/C++ and the DCC plugins.
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
