//! [`Motion`]: what a fit produces and what every exporter, plugin and overlay consumes.
//!
//! Conventions (DESIGN.md): metres, seconds; the world is Y-up (SMPL). A motion holds one body
//! shape, per-frame local joint rotations (SMPL order, joint 0 = the global orientation in the
//! world), per-frame SMPL root translations (`transl`: added to every vertex after posing, so the
//! pelvis sits at `J0(betas) + transl` when joint 0 is the identity), and the cameras that saw it.
//!
//! Cameras follow the glTF / USD convention: a camera's pose is camera-to-world, and the camera
//! looks down its own -Z axis with +Y up. ScoreHMR fits in the OpenCV camera frame (x right,
//! y down, z forward); [`CV_TO_GL`] (a half turn about x) maps one to the other, so a single-view
//! fit with ScoreHMR's camera becomes a camera at the world origin with identity rotation.

use serde::{Deserialize, Serialize};

use crate::body::{BodyModel, BodyOutput, NUM_JOINTS};
use crate::error::{Error, Result};
use crate::geom::camera::Pinhole;
use crate::geom::rot::{mat3_apply, mat3_mul, mat3_transpose};

/// The half turn about x, `diag(1, -1, -1)`: OpenCV camera axes (y down, z forward) to the
/// glTF / USD camera axes (y up, looking down -z), and back (it is its own inverse).
pub const CV_TO_GL: [f32; 9] = [1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0];

const IDENTITY: [f32; 9] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];

/// Intrinsics of a pinhole camera, serialisable (pixels).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intrinsics {
    pub fx: f32,
    pub fy: f32,
    pub cx: f32,
    pub cy: f32,
}

impl From<Pinhole> for Intrinsics {
    fn from(p: Pinhole) -> Self {
        Self { fx: p.fx, fy: p.fy, cx: p.cx, cy: p.cy }
    }
}

impl From<Intrinsics> for Pinhole {
    fn from(i: Intrinsics) -> Self {
        Pinhole { fx: i.fx, fy: i.fy, cx: i.cx, cy: i.cy }
    }
}

/// A camera that saw the motion: intrinsics, image size and its pose over time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MotionCamera {
    /// Name (unique within a motion), e.g. "camera" or "view_0".
    pub name: String,
    pub intrinsics: Intrinsics,
    /// Image width and height, pixels.
    pub width: u32,
    pub height: u32,
    /// Camera-to-world rotations, row-major `[3, 3]`: one per frame, or a single one for a
    /// static camera.
    pub rotation: Vec<[f32; 9]>,
    /// Camera positions in the world `[3]`: one per frame, or a single one (static).
    pub position: Vec<[f32; 3]>,
}

impl MotionCamera {
    /// A static camera at `position` with camera-to-world rotation `rotation`.
    pub fn fixed(name: &str, intrinsics: Pinhole, width: u32, height: u32, rotation: [f32; 9], position: [f32; 3]) -> Self {
        Self { name: name.to_string(), intrinsics: intrinsics.into(), width, height, rotation: vec![rotation], position: vec![position] }
    }

    /// ScoreHMR's camera (identity rotation in the OpenCV frame) as a static camera at the world
    /// origin looking down -Z.
    pub fn origin(name: &str, intrinsics: Pinhole, width: u32, height: u32) -> Self {
        Self::fixed(name, intrinsics, width, height, IDENTITY, [0.0; 3])
    }

    /// Whether the camera has one pose for the whole motion.
    pub fn is_static(&self) -> bool {
        self.rotation.len() <= 1 && self.position.len() <= 1
    }

    /// Camera-to-world rotation and position at `frame` (static cameras: the same at every frame).
    pub fn pose(&self, frame: usize) -> ([f32; 9], [f32; 3]) {
        let r = self.rotation[frame.min(self.rotation.len() - 1)];
        let p = self.position[frame.min(self.position.len() - 1)];
        (r, p)
    }

    /// World-to-OpenCV-camera transform at `frame`: `p_cv = R p + t`, as (R row-major, t).
    pub fn world_to_cv(&self, frame: usize) -> ([f32; 9], [f32; 3]) {
        let (r, c) = self.pose(frame);
        let r_wc = mat3_mul(&CV_TO_GL, &mat3_transpose(&r)); // CV_TO_GL is its own inverse
        let t = mat3_apply(&r_wc, &c);
        (r_wc, [-t[0], -t[1], -t[2]])
    }

    /// World points `[N, 3]` in this camera's OpenCV frame at `frame` `[N, 3]`.
    pub fn to_cv(&self, frame: usize, points: &[f32]) -> Vec<f32> {
        let (r, t) = self.world_to_cv(frame);
        points
            .chunks_exact(3)
            .flat_map(|p| {
                let q = mat3_apply(&r, &[p[0], p[1], p[2]]);
                [q[0] + t[0], q[1] + t[1], q[2] + t[2]]
            })
            .collect()
    }

    /// Projects a world point to pixels at `frame`; None behind the camera.
    pub fn project(&self, frame: usize, p: [f32; 3]) -> Option<[f32; 2]> {
        let q = self.to_cv(frame, &p);
        if q[2] <= 1e-6 {
            return None;
        }
        Some(Pinhole::from(self.intrinsics).project_point(&[q[0], q[1], q[2]]))
    }

    /// Vertical field of view in radians (glTF `yfov`, from fy and the image height).
    pub fn yfov(&self) -> f32 {
        2.0 * (0.5 * self.height as f32 / self.intrinsics.fy).atan()
    }

    fn check(&self, frames: usize) -> Result<()> {
        let n = |len: usize| len == 1 || len == frames;
        if !n(self.rotation.len()) || !n(self.position.len()) {
            return Err(Error::Input(format!(
                "camera '{}': {} rotations and {} positions for {frames} frames (expected 1 or {frames} each)",
                self.name,
                self.rotation.len(),
                self.position.len()
            )));
        }
        let i = self.intrinsics;
        if !(i.fx > 0.0 && i.fy > 0.0 && i.cx.is_finite() && i.cy.is_finite()) || self.width == 0 || self.height == 0 {
            return Err(Error::Input(format!("camera '{}': bad intrinsics {i:?} or image size {}x{}", self.name, self.width, self.height)));
        }
        Ok(())
    }
}

/// An animated body: one shape, per-frame rotations and root translations, and its cameras.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Motion {
    /// Frames per second (the footage's frame rate; 30 for a single image).
    pub fps: f32,
    /// Shape coefficients `[S]`.
    pub betas: Vec<f32>,
    /// Local joint rotations `[F * 24]`, each row-major `[3, 3]`, SMPL joint order; joint 0 is the
    /// global orientation in the Y-up world.
    pub rotations: Vec<[f32; 9]>,
    /// SMPL root translations `[F]` (world, metres).
    pub translations: Vec<[f32; 3]>,
    /// The cameras (may be empty).
    pub cameras: Vec<MotionCamera>,
}

impl Motion {
    /// A motion of `frames` frames at rest (identity rotations, zero translation) with no camera.
    pub fn rest(frames: usize, num_betas: usize, fps: f32) -> Self {
        Self {
            fps,
            betas: vec![0.0; num_betas],
            rotations: vec![IDENTITY; frames * NUM_JOINTS],
            translations: vec![[0.0; 3]; frames],
            cameras: Vec::new(),
        }
    }

    pub fn num_frames(&self) -> usize {
        self.translations.len()
    }

    /// The 24 local rotations of `frame`.
    pub fn frame_rotations(&self, frame: usize) -> &[[f32; 9]] {
        &self.rotations[frame * NUM_JOINTS..(frame + 1) * NUM_JOINTS]
    }

    /// Time of `frame` in seconds.
    pub fn time(&self, frame: usize) -> f32 {
        frame as f32 / self.fps
    }

    /// Checks sizes and values against a body model (number of betas).
    pub fn validate(&self, model: &BodyModel) -> Result<()> {
        let f = self.num_frames();
        if f == 0 {
            return Err(Error::Input("motion has no frames".into()));
        }
        if !(self.fps > 0.0 && self.fps.is_finite()) {
            return Err(Error::Input(format!("motion frame rate {}: must be positive", self.fps)));
        }
        if self.rotations.len() != f * NUM_JOINTS {
            return Err(Error::Input(format!(
                "motion has {} rotations for {f} frames, expected {}",
                self.rotations.len(),
                f * NUM_JOINTS
            )));
        }
        if self.betas.len() > model.num_betas() {
            return Err(Error::Input(format!(
                "motion has {} shape coefficients, the body model '{}' {}",
                self.betas.len(),
                model.name(),
                model.num_betas()
            )));
        }
        let finite = self.betas.iter().all(|v| v.is_finite())
            && self.rotations.iter().flatten().all(|v| v.is_finite())
            && self.translations.iter().flatten().all(|v| v.is_finite());
        if !finite {
            return Err(Error::Input("motion has non-finite values".into()));
        }
        let mut names = std::collections::HashSet::new();
        for c in &self.cameras {
            c.check(f)?;
            if !names.insert(c.name.as_str()) {
                return Err(Error::Input(format!("two cameras are named '{}'", c.name)));
            }
        }
        Ok(())
    }

    /// Betas padded (or cut) to the model's count.
    pub fn model_betas(&self, model: &BodyModel) -> Vec<f32> {
        let mut b = vec![0.0; model.num_betas()];
        for (d, s) in b.iter_mut().zip(&self.betas) {
            *d = *s;
        }
        b
    }

    /// Runs the body model over frames `range` (full mesh when `mesh`, else joints and BODY_25
    /// keypoints only); `out` holds `[n, ...]` for the n frames.
    pub fn forward(&self, model: &BodyModel, range: std::ops::Range<usize>, mesh: bool, out: &mut BodyOutput) -> Result<()> {
        self.validate(model)?;
        if range.end > self.num_frames() || range.start >= range.end {
            return Err(Error::Input(format!("frames {range:?} of a {}-frame motion", self.num_frames())));
        }
        let n = range.len();
        let b1 = self.model_betas(model);
        let betas: Vec<f32> = (0..n).flat_map(|_| b1.iter().copied()).collect();
        let rot: Vec<f32> = self.rotations[range.start * NUM_JOINTS..range.end * NUM_JOINTS].iter().flatten().copied().collect();
        let tr: Vec<f32> = self.translations[range].iter().flatten().copied().collect();
        if mesh {
            model.forward(&betas, &rot, &tr, out)
        } else {
            model.forward_joints(&betas, &rot, &tr, out)
        }
    }

    /// World joint positions of every frame `[F, 24, 3]`.
    pub fn joints(&self, model: &BodyModel) -> Result<Vec<f32>> {
        let mut out = BodyOutput::default();
        self.forward(model, 0..self.num_frames(), false, &mut out)?;
        Ok(out.joints.clone())
    }

    /// Applies a rigid world transform `p -> R p + t` to the body (not the cameras), for a body
    /// model whose rest root joint is `j0` (`BodyModel::rest_joints(betas)[0..3]`): joint 0's
    /// rotation becomes `R G` and `transl' = R (j0 + transl) + t - j0`.
    pub fn transform_body(&mut self, r: &[f32; 9], t: &[f32; 3], j0: &[f32; 3]) {
        for f in 0..self.num_frames() {
            let g = &mut self.rotations[f * NUM_JOINTS];
            *g = mat3_mul(r, g);
            let tr = self.translations[f];
            let p = mat3_apply(r, &[j0[0] + tr[0], j0[1] + tr[1], j0[2] + tr[2]]);
            self.translations[f] = [p[0] + t[0] - j0[0], p[1] + t[1] - j0[1], p[2] + t[2] - j0[2]];
        }
    }

    /// Writes the motion as JSON (the fitted parameters per frame), atomically.
    pub fn save_json(&self, path: &std::path::Path) -> Result<()> {
        let s = serde_json::to_string_pretty(self).map_err(|e| Error::Input(format!("motion JSON: {e}")))?;
        crate::io::write_atomic(path, s.as_bytes())
    }

    /// Reads a motion written by [`Motion::save_json`].
    pub fn load_json(path: &std::path::Path) -> Result<Self> {
        let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_str(&s).map_err(|e| Error::Input(format!("{}: not a rigfit motion JSON: {e}", path.display())))
    }
}
