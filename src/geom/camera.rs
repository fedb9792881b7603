//! Pinhole cameras, ScoreHMR's crop <-> full-image camera conversion, and a closed-form
//! translation solve.
//!
//! Camera frame as in OpenCV and ScoreHMR (`perspective_projection` in
//! `score_hmr/utils/geometry.py`): x right, y down, z forward (into the scene); a point
//! `(x, y, z)` with `z > 0` projects to `u = fx x / z + cx`, `v = fy y / z + cy` (pixels, origin
//! at the top-left corner of the image). Points at or behind the camera (`z <= 0`) give
//! non-finite or mirrored pixels; callers keep bodies in front of the camera.
//!
//! The body is placed in the camera frame by a translation only (ScoreHMR uses an identity
//! camera rotation, scorehmr.md 3.1): camera-frame point = body point + `cam_t`.

use candle_core::Tensor;

use super::count_items;
use crate::error::{Error, Result};

/// ScoreHMR's focal length in pixels for the full image (scorehmr.md 3.1: `EXTRA.FOCAL_LENGTH`
/// = 5000), used with the principal point at the image centre.
pub const SCOREHMR_FOCAL: f32 = 5000.0;

/// A pinhole camera without distortion (pixels).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pinhole {
    /// Focal length along x, pixels.
    pub fx: f32,
    /// Focal length along y, pixels.
    pub fy: f32,
    /// Principal point x, pixels.
    pub cx: f32,
    /// Principal point y, pixels.
    pub cy: f32,
}

fn check_image_size(width: f32, height: f32) -> Result<()> {
    if !(width > 0.0 && height > 0.0 && width.is_finite() && height.is_finite()) {
        return Err(Error::Input(format!(
            "image size {width} x {height}: must be positive and finite"
        )));
    }
    Ok(())
}

impl Pinhole {
    /// Square pixels with focal length `focal` (pixels) and the principal point at the image
    /// centre `(width / 2, height / 2)`, as ScoreHMR (`img_size / 2`, scorehmr.md 3.1). Use
    /// [`SCOREHMR_FOCAL`] for ScoreHMR's default.
    pub fn from_focal(focal: f32, width: f32, height: f32) -> Result<Self> {
        check_image_size(width, height)?;
        if !(focal > 0.0 && focal.is_finite()) {
            return Err(Error::Input(format!(
                "focal length {focal}: must be positive"
            )));
        }
        Ok(Self {
            fx: focal,
            fy: focal,
            cx: width * 0.5,
            cy: height * 0.5,
        })
    }

    /// Square pixels from the horizontal field of view in degrees (e.g. a phone's main camera,
    /// about 65-75 degrees for the full sensor width), principal point at the image centre:
    /// `f = (width / 2) / tan(fov / 2)`. The field of view must lie in `(0, 180)`.
    pub fn from_fov(horizontal_fov_deg: f32, width: f32, height: f32) -> Result<Self> {
        if !(horizontal_fov_deg > 0.0 && horizontal_fov_deg < 180.0) {
            return Err(Error::Input(format!(
                "horizontal field of view {horizontal_fov_deg} degrees: must lie in (0, 180)"
            )));
        }
        check_image_size(width, height)?;
        let half = (horizontal_fov_deg as f64).to_radians() * 0.5;
        Self::from_focal((width as f64 * 0.5 / half.tan()) as f32, width, height)
    }

    /// The intrinsic matrix `K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`, row-major.
    pub fn matrix(&self) -> [f32; 9] {
        [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]
    }

    /// Projects one camera-frame point `[x, y, z]` to pixels `[u, v]`.
    pub fn project_point(&self, p: &[f32; 3]) -> [f32; 2] {
        let iz = 1.0 / p[2];
        [self.fx * p[0] * iz + self.cx, self.fy * p[1] * iz + self.cy]
    }

    /// Back-projects pixel `[u, v]` at depth `z` (along the optical axis) to a camera-frame point.
    pub fn unproject(&self, uv: &[f32; 2], z: f32) -> [f32; 3] {
        [
            (uv[0] - self.cx) / self.fx * z,
            (uv[1] - self.cy) / self.fy * z,
            z,
        ]
    }

    /// Projects camera-frame points `points` `[N, 3]` into `out` `[N, 2]` (pixels).
    pub fn project(&self, points: &[f32], out: &mut [f32]) -> Result<()> {
        self.project_translated(points, &[0.0; 3], out)
    }

    /// Projects body-frame points `points` `[N, 3]` placed at translation `t` `[3]` (camera-frame
    /// point = point + t) into `out` `[N, 2]` (pixels).
    pub fn project_translated(&self, points: &[f32], t: &[f32; 3], out: &mut [f32]) -> Result<()> {
        let n = count_items(points.len(), 3, "points [N, 3]")?;
        if out.len() != 2 * n {
            return Err(Error::Input(format!(
                "projection output has {} values, expected [N={n}, 2] = {}",
                out.len(),
                2 * n
            )));
        }
        for (p, uv) in points.chunks_exact(3).zip(out.chunks_exact_mut(2)) {
            uv.copy_from_slice(&self.project_point(&[p[0] + t[0], p[1] + t[1], p[2] + t[2]]));
        }
        Ok(())
    }

    /// Differentiable projection with this camera's intrinsics (constants): `points` `[B, N, 3]`
    /// (body frame), `cam_t` `[B, 3]`, returns pixels `[B, N, 2]`. See [`project_t`].
    pub fn project_t(&self, points: &Tensor, cam_t: &Tensor) -> Result<Tensor> {
        let (dev, dt) = (points.device(), points.dtype());
        let focal = Tensor::from_slice(&[self.fx, self.fy], (1, 2), dev)?.to_dtype(dt)?;
        let principal = Tensor::from_slice(&[self.cx, self.cy], (1, 2), dev)?.to_dtype(dt)?;
        project_t(points, cam_t, &focal, &principal)
    }
}

/// Differentiable perspective projection (ScoreHMR `perspective_projection` with identity
/// rotation): `points` `[B, N, 3]` (body frame), `cam_t` `[B, 3]`, `focal` `[B, 2]` (fx, fy) and
/// `principal` `[B, 2]` (cx, cy), either of which may be `[1, 2]` to share one camera. Returns
/// pixels `[B, N, 2]`: `uv = f * (p + t)_xy / (p + t)_z + c`. Gradients flow to all inputs.
/// f32 or f64 (all inputs of one dtype).
pub fn project_t(
    points: &Tensor,
    cam_t: &Tensor,
    focal: &Tensor,
    principal: &Tensor,
) -> Result<Tensor> {
    let b = match points.dims() {
        &[b, _, 3] => b,
        d => {
            return Err(Error::Input(format!(
                "project_t: points have shape {d:?}, expected [B, N, 3]"
            )))
        }
    };
    let bad = |what: &str, t: &Tensor| {
        Error::Input(format!(
            "project_t: {what} has shape {:?}, expected [B={b}, {}]",
            t.dims(),
            if what == "cam_t" { 3 } else { 2 }
        ))
    };
    if cam_t.dims() != [b, 3] {
        return Err(bad("cam_t", cam_t));
    }
    for (what, t) in [("focal", focal), ("principal", principal)] {
        let d = t.dims();
        if d.len() != 2 || d[1] != 2 || (d[0] != b && d[0] != 1) {
            return Err(bad(what, t));
        }
    }
    let p = points.broadcast_add(&cam_t.unsqueeze(1)?)?;
    let xy = p.narrow(2, 0, 2)?;
    let z = p.narrow(2, 2, 1)?;
    Ok(xy
        .broadcast_div(&z)?
        .broadcast_mul(&focal.unsqueeze(1)?)?
        .broadcast_add(&principal.unsqueeze(1)?)?)
}

/// ScoreHMR's `cam_crop_to_full` (`score_hmr/utils/utils.py`, the 4D-Humans convention;
/// scorehmr.md 3.1): converts the weak-perspective crop camera `pred_cam = [s, tx, ty]` of a
/// square box of side `box_size` pixels centred at `box_center` (full-image pixels) into the
/// full-image camera translation `[tx', ty', tz]` for a camera of focal length `focal` with the
/// principal point at the image centre (`img_w / 2, img_h / 2`):
///
/// `bs = box_size * s; tz = 2 focal / bs; tx' = 2 (cx_box - img_w/2) / bs + tx;
/// ty' = 2 (cy_box - img_h/2) / bs + ty`.
///
/// ScoreHMR adds 1e-9 to `bs`; here a non-positive or non-finite `bs` is an error instead.
pub fn cam_crop_to_full(
    pred_cam: &[f32; 3],
    box_center: &[f32; 2],
    box_size: f32,
    img_w: f32,
    img_h: f32,
    focal: f32,
) -> Result<[f32; 3]> {
    let bs = box_size * pred_cam[0];
    if !(bs > 0.0 && bs.is_finite()) {
        return Err(Error::Input(format!(
            "cam_crop_to_full: box size {box_size} x scale {} must be positive",
            pred_cam[0]
        )));
    }
    let tz = 2.0 * focal / bs;
    let tx = 2.0 * (box_center[0] - img_w * 0.5) / bs + pred_cam[1];
    let ty = 2.0 * (box_center[1] - img_h * 0.5) / bs + pred_cam[2];
    Ok([tx, ty, tz])
}

/// Inverse of [`cam_crop_to_full`]: full-image translation `cam_t = [tx', ty', tz]` to the crop
/// camera `[s, tx, ty]` of the box: `s = 2 focal / (box_size tz)`,
/// `tx = tx' - 2 (cx_box - img_w/2) / (box_size s)` (and likewise `ty`). Needs `tz > 0`,
/// `box_size > 0`.
pub fn cam_full_to_crop(
    cam_t: &[f32; 3],
    box_center: &[f32; 2],
    box_size: f32,
    img_w: f32,
    img_h: f32,
    focal: f32,
) -> Result<[f32; 3]> {
    let btz = box_size * cam_t[2];
    if !(btz > 0.0 && btz.is_finite() && box_size > 0.0) {
        return Err(Error::Input(format!(
            "cam_full_to_crop: box size {box_size} and depth {} must be positive",
            cam_t[2]
        )));
    }
    let s = 2.0 * focal / btz;
    let bs = box_size * s;
    let tx = cam_t[0] - 2.0 * (box_center[0] - img_w * 0.5) / bs;
    let ty = cam_t[1] - 2.0 * (box_center[1] - img_h * 0.5) / bs;
    Ok([s, tx, ty])
}

/// Closed-form camera translation that places body-frame joints `joints` `[N, 3]` so that they
/// project onto `keypoints` `[N, 2]` (pixels) under `camera`, weighted by `conf` `[N]`.
///
/// This is SPIN's / ProHMR's `estimate_translation_np`: for fixed intrinsics the projection
/// equation `u - cx = fx (X + tx) / (Z + tz)` is linear in `t` after multiplying out,
/// `fx tx - (u - cx) tz = (u - cx) Z - fx X` (and likewise for `v`), so the weighted linear
/// least-squares problem (each row weighted by `sqrt(conf)`, i.e. `conf` in the normal
/// equations) is solved in f64 through its 3x3 normal equations. It minimises an algebraic error,
/// not the reprojection error: exact for noiseless keypoints, a good initialisation otherwise.
///
/// Joints with `conf <= 0` or non-finite values are ignored. Fails when fewer than two distinct
/// keypoints remain (the system is singular).
pub fn solve_translation(
    joints: &[f32],
    keypoints: &[f32],
    conf: &[f32],
    camera: &Pinhole,
) -> Result<[f32; 3]> {
    let n = count_items(joints.len(), 3, "joints [N, 3]")?;
    if keypoints.len() != 2 * n || conf.len() != n {
        return Err(Error::Input(format!(
            "solve_translation: keypoints has {} values and conf {}, expected [N={n}, 2] and [N]",
            keypoints.len(),
            conf.len()
        )));
    }
    let (fx, fy) = (camera.fx as f64, camera.fy as f64);
    let (cx, cy) = (camera.cx as f64, camera.cy as f64);
    let mut a = [[0.0f64; 3]; 3];
    let mut rhs = [0.0f64; 3];
    for i in 0..n {
        let w = conf[i] as f64;
        let p = [
            joints[3 * i] as f64,
            joints[3 * i + 1] as f64,
            joints[3 * i + 2] as f64,
        ];
        let (u, v) = (
            keypoints[2 * i] as f64 - cx,
            keypoints[2 * i + 1] as f64 - cy,
        );
        let finite =
            w.is_finite() && u.is_finite() && v.is_finite() && p.iter().all(|x| x.is_finite());
        if !(w > 0.0 && finite) {
            continue;
        }
        let rows = [
            ([fx, 0.0, -u], u * p[2] - fx * p[0]),
            ([0.0, fy, -v], v * p[2] - fy * p[1]),
        ];
        for (q, c) in rows {
            for r in 0..3 {
                for k in 0..3 {
                    a[r][k] += w * q[r] * q[k];
                }
                rhs[r] += w * q[r] * c;
            }
        }
    }
    let t = solve3(a, rhs).ok_or_else(|| {
        Error::Input(
            "solve_translation: degenerate system (need at least two distinct confident keypoints)"
                .into(),
        )
    })?;
    Ok([t[0] as f32, t[1] as f32, t[2] as f32])
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting; `None` when `a` is singular
/// to working precision.
fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    let scale = a.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    if !(scale > 0.0 && scale.is_finite()) {
        return None;
    }
    for col in 0..3 {
        let piv = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() <= 1e-12 * scale {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for r in col + 1..3 {
            let f = a[r][col] / a[col][col];
            let pivot_row = a[col];
            for (x, p) in a[r][col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = [0.0; 3];
    for r in (0..3).rev() {
        let s: f64 = (r + 1..3).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    Some(x)
}

/// The camera-to-world rotation (glTF / USD convention: the camera looks down its -Z axis, +Y up)
/// of a camera at `pos` looking at `target`, with the world's +Y as up. Row-major `[3, 3]`.
pub fn look_at(pos: [f32; 3], target: [f32; 3]) -> [f32; 9] {
    let norm = |v: [f32; 3]| {
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(1e-12);
        [v[0] / n, v[1] / n, v[2] / n]
    };
    let cross = |a: [f32; 3], b: [f32; 3]| [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
    let back = norm([pos[0] - target[0], pos[1] - target[1], pos[2] - target[2]]);
    let right = norm(cross([0.0, 1.0, 0.0], back));
    let up = cross(back, right);
    [right[0], up[0], back[0], right[1], up[1], back[1], right[2], up[2], back[2]]
}
