//! Accuracy metrics of 3D poses and meshes (data_eval.md 4.1): MPJPE, PA-MPJPE, PVE and
//! acceleration error.
//!
//! Inputs are sequences of frames, flat `[T, J, 3]` slices (`T` frames of `J` points), f32 or
//! f64; all arithmetic is f64. Results are in the unit of the input: metres in, metres out.
//! Papers report millimetres (MPJPE, PA-MPJPE, PVE: x1000) and accel error in mm/frame^2 (x1000;
//! VIBE/ScoreHMR) or m/s^2 (x fps^2; GVHMR).

use rayon::prelude::*;

use super::align::procrustes;
use super::{count_items, Real};
use crate::error::{Error, Result};

/// The SMPL pelvis (root) joint index.
pub const SMPL_PELVIS: usize = 0;
/// The SMPL left and right hip joint indices; their mean is the root of GVHMR/WHAM's EMDB
/// evaluation (data_eval.md 4.1).
pub const SMPL_HIPS: [usize; 2] = [1, 2];

/// How each frame is translated before comparing prediction and ground truth: the root of each
/// set (computed from its own joints) is subtracted from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootAlign {
    /// No alignment (world or camera-frame error).
    None,
    /// Subtract this joint (e.g. [`SMPL_PELVIS`], or joint 0 of the H36M regressor as SPIN and
    /// ScoreHMR do).
    Joint(usize),
    /// Subtract the mean of these joints (e.g. [`SMPL_HIPS`]); must be non-empty.
    MeanOf(Vec<usize>),
}

impl RootAlign {
    /// The mean of the SMPL hips (joints 1 and 2).
    pub fn smpl_hips() -> Self {
        RootAlign::MeanOf(SMPL_HIPS.to_vec())
    }

    fn check(&self, num_joints: usize) -> Result<()> {
        let ids: &[usize] = match self {
            RootAlign::None => return Ok(()),
            RootAlign::Joint(j) => std::slice::from_ref(j),
            RootAlign::MeanOf(ids) if ids.is_empty() => {
                return Err(Error::Input(
                    "RootAlign::MeanOf needs at least one joint".into(),
                ))
            }
            RootAlign::MeanOf(ids) => ids,
        };
        match ids.iter().find(|&&j| j >= num_joints) {
            Some(j) => Err(Error::Input(format!(
                "root joint {j} is out of range for {num_joints} joints"
            ))),
            None => Ok(()),
        }
    }

    /// The root of one frame `[J, 3]` (zero for [`RootAlign::None`]). Indices must be checked.
    fn root_of<T: Real>(&self, frame: &[T]) -> [f64; 3] {
        let joint = |j: usize| {
            [
                frame[3 * j].to_f64(),
                frame[3 * j + 1].to_f64(),
                frame[3 * j + 2].to_f64(),
            ]
        };
        match self {
            RootAlign::None => [0.0; 3],
            RootAlign::Joint(j) => joint(*j),
            RootAlign::MeanOf(ids) => {
                let mut c = [0.0; 3];
                for &j in ids {
                    let p = joint(j);
                    for k in 0..3 {
                        c[k] += p[k];
                    }
                }
                c.map(|v| v / ids.len() as f64)
            }
        }
    }
}

/// Per-frame errors of a sequence and their mean.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameErrors {
    /// Mean over the (kept) frames, equal to the mean over all points of those frames.
    pub mean: f64,
    /// One value per frame (see each metric for its frames; NaN marks a dropped frame).
    pub per_frame: Vec<f64>,
}

impl FrameErrors {
    /// Builds from per-frame values; the mean skips NaN (dropped) frames. Fails if none is kept.
    fn from_frames(per_frame: Vec<f64>) -> Result<Self> {
        let kept: Vec<f64> = per_frame.iter().copied().filter(|v| !v.is_nan()).collect();
        if kept.is_empty() {
            return Err(Error::Input("metric: no frame to evaluate".into()));
        }
        let mean = kept.iter().sum::<f64>() / kept.len() as f64;
        Ok(Self { mean, per_frame })
    }
}

/// Checks that `pred` and `gt` are both `[T, points, 3]` with `T >= 1`; returns `T`.
fn check_pair<T: Real>(pred: &[T], gt: &[T], points: usize, what: &str) -> Result<usize> {
    if points == 0 {
        return Err(Error::Input(format!("{what}: zero points per frame")));
    }
    let frames = count_items(
        pred.len(),
        3 * points,
        &format!("{what} prediction [T, {points}, 3]"),
    )?;
    if gt.len() != pred.len() || frames == 0 {
        return Err(Error::Input(format!(
            "{what}: prediction has {} values and ground truth {}; expected the same non-empty [T, {points}, 3]",
            pred.len(),
            gt.len()
        )));
    }
    Ok(frames)
}

fn point<T: Real>(p: &[T]) -> [f64; 3] {
    [p[0].to_f64(), p[1].to_f64(), p[2].to_f64()]
}

fn dist(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Mean over the points of one frame of `|f(pred_i) - g(gt_i)|`.
fn frame_error<T: Real>(
    pred: &[T],
    gt: &[T],
    f: impl Fn(&[f64; 3]) -> [f64; 3],
    g: impl Fn(&[f64; 3]) -> [f64; 3],
) -> f64 {
    let n = pred.len() / 3;
    let total: f64 = pred
        .chunks_exact(3)
        .zip(gt.chunks_exact(3))
        .map(|(p, q)| dist(&f(&point(p)), &g(&point(q))))
        .sum();
    total / n as f64
}

fn sub(a: &[f64; 3], b: &[f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// Mean per-point error of `pred_pts` vs `gt_pts` (`[T, P, 3]`) after subtracting the roots of
/// `pred_joints` / `gt_joints` (`[T, J, 3]`) from each frame.
fn rooted_error<T: Real>(
    pred_pts: &[T],
    gt_pts: &[T],
    points: usize,
    pred_joints: &[T],
    gt_joints: &[T],
    num_joints: usize,
    root: &RootAlign,
) -> Result<FrameErrors> {
    let per_frame = pred_pts
        .chunks_exact(3 * points)
        .zip(gt_pts.chunks_exact(3 * points))
        .zip(
            pred_joints
                .chunks_exact(3 * num_joints)
                .zip(gt_joints.chunks_exact(3 * num_joints)),
        )
        .map(|((p, g), (pj, gj))| {
            let (pr, gr) = (root.root_of(pj), root.root_of(gj));
            frame_error(p, g, |x| sub(x, &pr), |y| sub(y, &gr))
        })
        .collect();
    FrameErrors::from_frames(per_frame)
}

/// MPJPE: mean per-joint position error, `mean_j |(p_j - root(p)) - (g_j - root(g))|`, per frame.
/// `pred`, `gt`: `[T, J, 3]`. `per_frame` has `T` values.
pub fn mpjpe<T: Real>(
    pred: &[T],
    gt: &[T],
    num_joints: usize,
    root: &RootAlign,
) -> Result<FrameErrors> {
    check_pair(pred, gt, num_joints, "mpjpe")?;
    root.check(num_joints)?;
    rooted_error(pred, gt, num_joints, pred, gt, num_joints, root)
}

/// PA-MPJPE (reconstruction error): per frame, the prediction is aligned to the ground truth by
/// similarity Procrustes ([`procrustes`]), then the MPJPE is taken (no root alignment needed: the
/// translation is part of the fit). `pred`, `gt`: `[T, J, 3]`. Fails on a frame whose predicted
/// joints all coincide. Frames run in parallel (rayon).
pub fn pa_mpjpe<T: Real>(pred: &[T], gt: &[T], num_joints: usize) -> Result<FrameErrors> {
    check_pair(pred, gt, num_joints, "pa_mpjpe")?;
    let per_frame = pred
        .par_chunks_exact(3 * num_joints)
        .zip(gt.par_chunks_exact(3 * num_joints))
        .map(|(p, g)| {
            let sim = procrustes(p, g)?;
            Ok(frame_error(p, g, |x| sim.apply_point(x), |y| *y))
        })
        .collect::<Result<Vec<f64>>>()?;
    FrameErrors::from_frames(per_frame)
}

/// PVE (MPVPE): mean per-vertex error of `pred_verts` vs `gt_verts` (`[T, V, 3]`, same
/// topology) after subtracting from each mesh the root of its own joints (`pred_joints`,
/// `gt_joints`: `[T, J, 3]`; ignored, and may be empty, for [`RootAlign::None`]).
pub fn pve<T: Real>(
    pred_verts: &[T],
    gt_verts: &[T],
    num_verts: usize,
    pred_joints: &[T],
    gt_joints: &[T],
    num_joints: usize,
    root: &RootAlign,
) -> Result<FrameErrors> {
    let frames = check_pair(pred_verts, gt_verts, num_verts, "pve")?;
    if *root == RootAlign::None {
        // The roots are zero: the vertices stand in for the (unused) joints.
        return rooted_error(
            pred_verts, gt_verts, num_verts, pred_verts, gt_verts, num_verts, root,
        );
    }
    let joint_frames = check_pair(pred_joints, gt_joints, num_joints, "pve joints")?;
    if joint_frames != frames {
        return Err(Error::Input(format!(
            "pve: {frames} frames of vertices but {joint_frames} of joints"
        )));
    }
    root.check(num_joints)?;
    rooted_error(
        pred_verts,
        gt_verts,
        num_verts,
        pred_joints,
        gt_joints,
        num_joints,
        root,
    )
}

/// Acceleration error (VIBE `compute_error_accel`, as ScoreHMR reports it): with
/// `a_t = X_{t-1} - 2 X_t + X_{t+1}` for the root-aligned joints of each frame,
/// `error_t = mean_j |a_t(pred) - a_t(gt)|` for `t = 1 .. T-2`, in input units per frame^2.
///
/// `pred`, `gt`: `[T, J, 3]` with `T >= 3`. `per_frame` has `T - 2` values, `per_frame[k]` for
/// frame `k + 1`. With `valid` `[T]`, a frame whose second difference touches an invalid frame
/// (`t - 1`, `t` or `t + 1` invalid) is dropped: its value is NaN and it is left out of the mean.
pub fn accel_error<T: Real>(
    pred: &[T],
    gt: &[T],
    num_joints: usize,
    root: &RootAlign,
    valid: Option<&[bool]>,
) -> Result<FrameErrors> {
    let frames = check_pair(pred, gt, num_joints, "accel_error")?;
    root.check(num_joints)?;
    if frames < 3 {
        return Err(Error::Input(format!(
            "accel_error: needs at least 3 frames, got {frames}"
        )));
    }
    if let Some(v) = valid {
        if v.len() != frames {
            return Err(Error::Input(format!(
                "accel_error: valid has {} entries for {frames} frames",
                v.len()
            )));
        }
    }
    let stride = 3 * num_joints;
    // Root-aligned joints of every frame, f64.
    let aligned = |x: &[T]| -> Vec<[f64; 3]> {
        x.chunks_exact(stride)
            .flat_map(|f| {
                let r = root.root_of(f);
                f.chunks_exact(3).map(move |p| sub(&point(p), &r))
            })
            .collect()
    };
    let (p, g) = (aligned(pred), aligned(gt));
    let accel = |x: &[[f64; 3]], t: usize, j: usize| -> [f64; 3] {
        let (a, b, c) = (
            x[(t - 1) * num_joints + j],
            x[t * num_joints + j],
            x[(t + 1) * num_joints + j],
        );
        std::array::from_fn(|k| a[k] - 2.0 * b[k] + c[k])
    };
    let per_frame = (1..frames - 1)
        .map(|t| {
            if valid.is_some_and(|v| !(v[t - 1] && v[t] && v[t + 1])) {
                return f64::NAN;
            }
            let total: f64 = (0..num_joints)
                .map(|j| dist(&accel(&p, t, j), &accel(&g, t, j)))
                .sum();
            total / num_joints as f64
        })
        .collect();
    FrameErrors::from_frames(per_frame)
}
