//! The classic optimisation baseline: SMPLify (Bogo et al., ECCV 2016) as SPIN implements it
//! in `smplify/smplify.py` and `smplify/losses.py` (Kolotouros et al., ICCV 2019), the
//! single-stage version ScoreHMR compares against (data_eval.md 4.2).
//!
//! Two stages of Adam (lr 1e-2, betas 0.9 / 0.999), batched over B independent people/frames
//! (every loss is a sum of per-sample terms and Adam is elementwise, so samples do not interact):
//!
//! 1. camera: the camera translation and the global orientation, on the four torso keypoints
//!    (BODY_25 RShoulder, LShoulder, RHip, LHip; SPIN `camera_fitting_loss`), squared pixel error,
//!    plus the depth regulariser `100^2 (t_z - t_z,init)^2` that keeps the camera near its
//!    initial distance. SPIN falls back to ground-truth torso joints when an OpenPose torso
//!    joint is missing; with BODY_25 only, a missing (confidence 0) torso joint is dropped.
//! 2. body: the body pose, global orientation and shape on all keypoints:
//!    `sum_j conf_j^2 sum_xy gmof(proj - kp, sigma)` (sigma 100 px) plus
//!    `4.78^2 GMM(pose) + 15.2^2 angle prior + 5^2 |betas|^2` (SPIN `body_fitting_loss`), with
//!    the OpenPose neck
//!    and hips ignored (SPIN: their positions differ from SMPL's joints).
//!
//! SPIN holds the camera fixed in the body stage; rigfit optimises it there too by default
//! ([`SmplifyConfig::camera_in_body_stage`]), so a wrong initial distance can still be corrected
//! (stage 1 keeps it near the initial value by design).
//!
//! Rotations are optimised as axis-angle, as SPIN does: the GMM prior and the angle prior are
//! defined on axis-angle components, and candle has no differentiable `acos`/`atan2` to get
//! them from 6D. The 6D input is converted once at the start, the result back at the end.
//!
//! Scale: SPIN runs SMPLify in 224 px crops (the keypoint box's larger side x 1.2) with a
//! 5000 px focal length, so its weights balance squared residuals in crop pixels against the
//! priors. rigfit projects with the observation's own camera and, by default, measures the
//! residuals in pixels of the same 224 px crop ([`SmplifyConfig::crop_px`]), which keeps SPIN's
//! balance for any image size; `crop_px: None` measures them in image pixels instead (the data
//! term then weighs (box / 187)^2 times more).

use candle_core::{DType, Tensor, Var};

use crate::body::diff::DiffBody;
use crate::body::{NUM_BODY25, NUM_JOINTS};
use crate::diffusion::prior::keypoint_box;
use crate::error::{Error, Result};
use crate::geom::camera::project_t;
use crate::geom::rot::{axis_angle_to_matrix_t, matrix_to_axis_angle, matrix_to_rot6d_t, rot6d_to_matrix};
use crate::guide::{gmof, Adam, KeypointObs};
use crate::learn::gmm::{GmmPrior, GMM_DIM};

/// BODY_25 torso keypoints of the camera stage: RShoulder, LShoulder, RHip, LHip
/// (SPIN `camera_fitting_loss`: 'OP RHip', 'OP LHip', 'OP RShoulder', 'OP LShoulder').
pub const TORSO_BODY25: [usize; 4] = [2, 5, 9, 12];
/// BODY_25 keypoints SPIN ignores in the body stage: Neck, RHip, LHip
/// (SPIN `smplify.py`: `ign_joints = ['OP Neck', 'OP RHip', 'OP LHip', ...]`).
pub const SPIN_IGNORED_BODY25: [usize; 3] = [1, 9, 12];
/// The angle prior's body-pose components (axis-angle, joints 1..23, i.e. full-pose index - 3)
/// and signs: left elbow y, right elbow y, left knee x, right knee x
/// (SPIN `losses.py` `angle_prior`: `pose[:, [55-3, 58-3, 12-3, 15-3]] * [1, -1, -1, -1]`).
pub const ANGLE_PRIOR_IDX: [u32; 4] = [52, 55, 9, 12];
pub const ANGLE_PRIOR_SIGNS: [f64; 4] = [1.0, -1.0, -1.0, -1.0];

/// SMPLify's settings. `Default` is SPIN's SMPLify (`smplify.py`, `losses.py`).
#[derive(Clone, Debug, PartialEq)]
pub struct SmplifyConfig {
    /// Adam step size (SPIN `SMPLify(step_size=1e-2)`).
    pub lr: f64,
    /// Iterations of the camera stage (SPIN `num_iters=100`).
    pub camera_iters: usize,
    /// Iterations of the body stage (SPIN `num_iters=100`).
    pub body_iters: usize,
    /// Geman-McClure scale in pixels (SPIN `body_fitting_loss(sigma=100)`).
    pub sigma: f64,
    /// Weight of the GMM pose prior, squared in the loss (SPIN `pose_prior_weight=4.78`).
    pub pose_prior_weight: f64,
    /// Weight of `|betas|^2`, squared in the loss (SPIN `shape_prior_weight=5`).
    pub shape_prior_weight: f64,
    /// Weight of the elbow/knee angle prior, squared in the loss (SPIN `angle_prior_weight=15.2`).
    pub angle_prior_weight: f64,
    /// Weight of the camera-depth regulariser of stage 1, squared in the loss
    /// (SPIN `camera_fitting_loss(depth_loss_weight=100)`).
    pub depth_loss_weight: f64,
    /// Multiplies the body stage's reprojection term (SPIN: 1, in 224 px crops).
    pub reprojection_weight: f64,
    /// Focal length in pixels overriding the cameras in the observations (SPIN: 5000 px,
    /// `focal_length=5000`, in the crop); `None` uses the observations' cameras.
    pub focal: Option<f64>,
    /// BODY_25 keypoints given confidence 0 in the body stage (SPIN: Neck, RHip, LHip).
    pub ignore_keypoints: Vec<usize>,
    /// Optimise the camera translation in the body stage too (SPIN: false; rigfit: true).
    pub camera_in_body_stage: bool,
    /// Measure the reprojection residuals in pixels of a square crop of this size around the
    /// person, as SPIN does (224 px crops of the keypoint box's larger side x 1.2): each sample's
    /// residuals are scaled by `crop_px / (1.2 * box side)` before the squared error (stage 1)
    /// and the Geman-McClure (stage 2), which keeps SPIN's balance between the data term and the
    /// priors whatever the image size. `None` measures them in image pixels, which weighs the
    /// data term (box / 187)^2 times more than SPIN for a person `box` pixels tall.
    pub crop_px: Option<f64>,
}

/// Per-sample factors `[B]` that turn image pixels into pixels of a `crop_px` crop around each
/// person: the box of its confident keypoints, larger side x 1.2
/// ([`crate::diffusion::prior::keypoint_box`], the margin of SPIN's `bbox_from_openpose`). A
/// sample with fewer than two keypoints, or a box under a pixel, gets 1.
pub fn crop_scales(obs: &KeypointObs, crop_px: f64) -> Result<Vec<f64>> {
    let kp = obs.keypoints.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let conf = obs.conf.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut k3 = [0.0f32; NUM_BODY25 * 3];
    Ok((0..obs.batch())
        .map(|s| {
            for j in 0..NUM_BODY25 {
                let i = s * NUM_BODY25 + j;
                k3[j * 3..j * 3 + 3].copy_from_slice(&[kp[i * 2], kp[i * 2 + 1], conf[i]]);
            }
            match keypoint_box(&k3) {
                Some((_, _, side)) if side > 1.0 => crop_px / side as f64,
                _ => 1.0,
            }
        })
        .collect())
}

impl Default for SmplifyConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            camera_iters: 100,
            body_iters: 100,
            sigma: 100.0,
            pose_prior_weight: 4.78,
            shape_prior_weight: 5.0,
            angle_prior_weight: 15.2,
            depth_loss_weight: 100.0,
            reprojection_weight: 1.0,
            focal: None,
            ignore_keypoints: SPIN_IGNORED_BODY25.to_vec(),
            camera_in_body_stage: true,
            crop_px: Some(224.0),
        }
    }
}

/// SMPLify's angle prior per sample `[B]` of body poses `pose` `[B, 69]` (axis-angle, SMPL
/// joints 1..23): `sum exp(sign_i pose_i)^2` over [`ANGLE_PRIOR_IDX`] (SPIN `losses.py`
/// `angle_prior`, unweighted). Cheap for natural elbow/knee bending (left elbow about -y, right
/// elbow about +y, knees about +x), exponentially expensive for hyper-extension.
pub fn angle_prior(pose: &Tensor) -> Result<Tensor> {
    let b = pose.dim(0)?;
    if pose.dims() != [b, GMM_DIM] {
        return Err(Error::Input(format!("angle_prior: pose {:?}, expected [B, 69]", pose.dims())));
    }
    let idx = Tensor::from_slice(&ANGLE_PRIOR_IDX, 4, pose.device())?;
    let signs = Tensor::from_slice(&ANGLE_PRIOR_SIGNS, (1, 4), pose.device())?.to_dtype(pose.dtype())?;
    Ok(pose.index_select(&idx, 1)?.broadcast_mul(&signs)?.exp()?.sqr()?.sum(1)?)
}

/// Result of [`smplify`].
#[derive(Clone, Debug)]
pub struct SmplifyOutput {
    /// `[B, 144]` fitted pose, 6D (ScoreHMR layout, global orientation first).
    pub x6d: Tensor,
    /// `[B, S]` fitted shape.
    pub betas: Tensor,
    /// `[B, 3]` fitted camera translations (the body at the origin, the camera looking down +z).
    pub cam_t: Vec<f32>,
    /// `[B]` mean reprojection error in pixels over the keypoints the body stage fits
    /// (confidence > 0, not ignored); see [`reprojection_error_px`].
    pub reprojection_px: Vec<f32>,
}

fn to_vec_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

/// `[B, 25]` 1/0 mask of keypoints with confidence > 0 and not in `ignore`.
fn fit_mask(obs: &KeypointObs, ignore: &[usize]) -> Result<Vec<f64>> {
    let conf = to_vec_f64(&obs.conf)?;
    Ok(conf
        .iter()
        .enumerate()
        .map(|(i, &c)| if c > 0.0 && !ignore.contains(&(i % NUM_BODY25)) { 1.0 } else { 0.0 })
        .collect())
}

struct Problem<'a> {
    body: &'a DiffBody,
    focal: Tensor,
    principal: Tensor,
    keypoints: Tensor,
}

impl Problem<'_> {
    /// Projected BODY_25 keypoints `[B, 25, 2]` of axis-angle `go` `[B, 3]` + `pose` `[B, 69]`.
    fn project(&self, go: &Tensor, pose: &Tensor, betas: &Tensor, cam: &Tensor) -> Result<Tensor> {
        let b = go.dim(0)?;
        let aa = Tensor::cat(&[go, pose], 1)?.reshape((b, NUM_JOINTS, 3))?;
        let rot = axis_angle_to_matrix_t(&aa)?;
        let zero = cam.zeros_like()?;
        let out = self.body.forward_joints_rotmats(betas, &rot, &zero)?;
        project_t(&out.keypoints, cam, &self.focal, &self.principal)
    }
}

/// Mean reprojection error in pixels per sample `[B]` of poses `x6d` `[B, 144]`, shapes `betas`
/// `[B, S]` and camera translations `cam_t` `[B, 3]`, over the keypoints with confidence > 0
/// that are not in `ignore` (NaN for a sample with none). Uses the observations' cameras.
pub fn reprojection_error_px(
    body: &DiffBody,
    obs: &KeypointObs,
    x6d: &Tensor,
    betas: &Tensor,
    cam_t: &[f32],
    ignore: &[usize],
) -> Result<Vec<f32>> {
    let b = obs.batch();
    if cam_t.len() != b * 3 {
        return Err(Error::Input(format!("reprojection_error_px: {} camera values for {b} samples", cam_t.len())));
    }
    let dt = body.dtype();
    let dev = body.device();
    let cam = Tensor::from_slice(cam_t, (b, 3), dev)?.to_dtype(dt)?;
    let zero = cam.zeros_like()?;
    let out = body.forward_joints_6d(&betas.to_dtype(dt)?, &x6d.to_dtype(dt)?, &zero)?;
    let proj = project_t(&out.keypoints, &cam, &obs.focal.to_dtype(dt)?, &obs.principal.to_dtype(dt)?)?;
    reprojection_from(&proj, obs, ignore)
}

fn reprojection_from(proj: &Tensor, obs: &KeypointObs, ignore: &[usize]) -> Result<Vec<f32>> {
    let p = to_vec_f64(proj)?;
    let k = to_vec_f64(&obs.keypoints)?;
    let mask = fit_mask(obs, ignore)?;
    Ok(mask
        .chunks_exact(NUM_BODY25)
        .enumerate()
        .map(|(s, m)| {
            let (mut sum, mut n) = (0.0, 0.0);
            for (j, &w) in m.iter().enumerate() {
                if w > 0.0 {
                    let i = (s * NUM_BODY25 + j) * 2;
                    sum += ((p[i] - k[i]).powi(2) + (p[i + 1] - k[i + 1]).powi(2)).sqrt();
                    n += 1.0;
                }
            }
            (sum / n) as f32
        })
        .collect())
}

/// Batched SMPLify (see the module docs) over B samples.
///
/// - `body`: the differentiable body (its device and dtype are used throughout);
/// - `obs`: BODY_25 keypoints, confidences and cameras of the B samples;
/// - `prior`: the 69-D GMM body-pose prior ([`GmmPrior`]);
/// - `init_x6d` `[B, 144]`: initial pose (6D, ScoreHMR layout); `init_betas` `[B, S]`;
/// - `init_cam` `[B, 3]`: initial camera translations (the body at the origin).
pub fn smplify(
    body: &DiffBody,
    obs: &KeypointObs,
    prior: &GmmPrior,
    init_x6d: &Tensor,
    init_betas: &Tensor,
    init_cam: &[f32],
    cfg: &SmplifyConfig,
) -> Result<SmplifyOutput> {
    let b = obs.batch();
    let dt = body.dtype();
    let dev = body.device().clone();
    if init_x6d.dims() != [b, NUM_JOINTS * 6] {
        return Err(Error::Input(format!("smplify: init_x6d {:?}, expected [{b}, 144]", init_x6d.dims())));
    }
    if init_betas.rank() != 2 || init_betas.dim(0)? != b || init_betas.dim(1)? > body.num_betas() {
        return Err(Error::Input(format!(
            "smplify: init_betas {:?}, expected [{b}, S] with S <= {}",
            init_betas.dims(),
            body.num_betas()
        )));
    }
    if init_cam.len() != b * 3 || init_cam.iter().any(|v| !v.is_finite()) {
        return Err(Error::Input(format!("smplify: init_cam has {} values, expected [{b}, 3] finite", init_cam.len())));
    }
    if prior.dim() != GMM_DIM {
        return Err(Error::Input(format!("smplify: the pose prior is {}-D, expected {GMM_DIM}", prior.dim())));
    }
    if let Some(&j) = cfg.ignore_keypoints.iter().find(|&&j| j >= NUM_BODY25) {
        return Err(Error::Input(format!("smplify: ignored keypoint {j} is not a BODY_25 index")));
    }
    let checks = [
        ("lr", cfg.lr),
        ("sigma", cfg.sigma),
        ("pose_prior_weight", cfg.pose_prior_weight),
        ("shape_prior_weight", cfg.shape_prior_weight),
        ("angle_prior_weight", cfg.angle_prior_weight),
        ("depth_loss_weight", cfg.depth_loss_weight),
        ("reprojection_weight", cfg.reprojection_weight),
    ];
    if let Some((name, v)) = checks.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
        return Err(Error::Input(format!("smplify: {name} = {v} must be finite and >= 0")));
    }
    if let Some(f) = cfg.focal {
        if !(f.is_finite() && f > 0.0) {
            return Err(Error::Input(format!("smplify: focal {f} must be positive")));
        }
    }
    if let Some(c) = cfg.crop_px {
        if !(c.is_finite() && c > 0.0) {
            return Err(Error::Input(format!("smplify: crop_px {c} must be positive")));
        }
    }

    // 6D -> axis-angle on the CPU (f64).
    let x6 = to_vec_f64(init_x6d)?;
    let mut aa = Vec::with_capacity(b * NUM_JOINTS * 3);
    for r6 in x6.chunks_exact(6) {
        let r = rot6d_to_matrix(&<[f64; 6]>::try_from(r6).expect("chunk of 6"));
        aa.extend(matrix_to_axis_angle(&r));
    }
    if aa.iter().any(|v| !v.is_finite()) {
        return Err(Error::Input("smplify: init_x6d holds non-finite or degenerate rotations".into()));
    }
    let aa = Tensor::from_vec(aa, (b, NUM_JOINTS * 3), &dev)?.to_dtype(dt)?;
    let go = Var::from_tensor(&aa.narrow(1, 0, 3)?.contiguous()?)?;
    let pose = Var::from_tensor(&aa.narrow(1, 3, GMM_DIM)?.contiguous()?)?;
    let betas = Var::from_tensor(&init_betas.to_device(&dev)?.to_dtype(dt)?.contiguous()?)?;
    let cam0 = Tensor::from_slice(init_cam, (b, 3), &dev)?.to_dtype(dt)?;
    let cam = Var::from_tensor(&cam0)?;

    let focal = match cfg.focal {
        Some(f) => Tensor::from_slice(&[f, f], (1, 2), &dev)?.to_dtype(dt)?,
        None => obs.focal.to_device(&dev)?.to_dtype(dt)?,
    };
    let p = Problem {
        body,
        focal,
        principal: obs.principal.to_device(&dev)?.to_dtype(dt)?,
        keypoints: obs.keypoints.to_device(&dev)?.to_dtype(dt)?,
    };
    let conf = obs.conf.to_device(&dev)?.to_dtype(dt)?;
    // Residual scale per sample [B, 1, 1] (1 in image pixels).
    let res_scale = match cfg.crop_px {
        Some(c) => Tensor::from_vec(crop_scales(obs, c)?, (b, 1, 1), &dev)?.to_dtype(dt)?,
        None => Tensor::ones((b, 1, 1), dt, &dev)?,
    };

    // Stage 1: camera translation and global orientation on the torso.
    let torso_idx = Tensor::from_slice(&TORSO_BODY25.map(|i| i as u32), 4, &dev)?;
    let torso_kp = p.keypoints.index_select(&torso_idx, 1)?; // [B, 4, 2]
    let torso_valid = conf.index_select(&torso_idx, 1)?.gt(0.0)?.to_dtype(dt)?; // [B, 4]
    let depth0 = cam0.narrow(1, 2, 1)?; // [B, 1]
    let mut adam_go = Adam::new(go.as_tensor(), cfg.lr)?;
    let mut adam_cam = Adam::new(cam.as_tensor(), cfg.lr)?;
    let dw2 = cfg.depth_loss_weight * cfg.depth_loss_weight;
    for _ in 0..cfg.camera_iters {
        let proj = p.project(go.as_tensor(), pose.as_tensor(), betas.as_tensor(), cam.as_tensor())?;
        let err = (proj.index_select(&torso_idx, 1)? - &torso_kp)?.broadcast_mul(&res_scale)?.sqr()?.sum(2)?; // [B, 4]
        let reproj = (err * &torso_valid)?.sum(1)?; // [B]
        let depth = (cam.as_tensor().narrow(1, 2, 1)? - &depth0)?.sqr()?.squeeze(1)?; // [B]
        let loss = (reproj + (depth * dw2)?)?.sum_all()?;
        let g = loss.backward()?;
        if let Some(gg) = g.get(go.as_tensor()) {
            adam_go.step(&go, gg)?;
        }
        if let Some(gc) = g.get(cam.as_tensor()) {
            adam_cam.step(&cam, gc)?;
        }
    }

    // Stage 2: pose, global orientation, betas (and camera) on all keypoints with the priors.
    let mask = Tensor::from_vec(fit_mask(obs, &[])?, (b, NUM_BODY25), &dev)?.to_dtype(dt)?;
    let mut keep = vec![1f64; b * NUM_BODY25];
    for s in 0..b {
        for &j in &cfg.ignore_keypoints {
            keep[s * NUM_BODY25 + j] = 0.0;
        }
    }
    let keep = Tensor::from_vec(keep, (b, NUM_BODY25), &dev)?.to_dtype(dt)?;
    let w_kp = (conf.sqr()? * mask)?.mul(&keep)?; // [B, 25] conf^2, ignored joints 0
    let gmm = prior.max_mixture(&dev, dt)?;
    let (pw2, sw2, aw2) = (
        cfg.pose_prior_weight.powi(2),
        cfg.shape_prior_weight.powi(2),
        cfg.angle_prior_weight.powi(2),
    );
    let mut adam_go = Adam::new(go.as_tensor(), cfg.lr)?;
    let mut adam_pose = Adam::new(pose.as_tensor(), cfg.lr)?;
    let mut adam_betas = Adam::new(betas.as_tensor(), cfg.lr)?;
    let mut adam_cam = Adam::new(cam.as_tensor(), cfg.lr)?;
    for _ in 0..cfg.body_iters {
        let pt = pose.as_tensor();
        let proj = p.project(go.as_tensor(), pt, betas.as_tensor(), cam.as_tensor())?;
        let reproj = (gmof(&(proj - &p.keypoints)?.broadcast_mul(&res_scale)?, cfg.sigma)?.sum(2)? * &w_kp)?.sum(1)?; // [B]
        let pose_prior = gmm.loss(pt)?; // [B]
        let angle = angle_prior(pt)?;
        let shape = betas.as_tensor().sqr()?.sum(1)?;
        let loss = ((reproj * cfg.reprojection_weight)? + (pose_prior * pw2)? + (angle * aw2)? + (shape * sw2)?)?;
        let g = loss.sum_all()?.backward()?;
        if let Some(x) = g.get(go.as_tensor()) {
            adam_go.step(&go, x)?;
        }
        if let Some(x) = g.get(pt) {
            adam_pose.step(&pose, x)?;
        }
        if let Some(x) = g.get(betas.as_tensor()) {
            adam_betas.step(&betas, x)?;
        }
        if cfg.camera_in_body_stage {
            if let Some(x) = g.get(cam.as_tensor()) {
                adam_cam.step(&cam, x)?;
            }
        }
    }

    // Results.
    let aa = Tensor::cat(&[go.as_tensor(), pose.as_tensor()], 1)?.reshape((b, NUM_JOINTS, 3))?;
    let x6d = matrix_to_rot6d_t(&axis_angle_to_matrix_t(&aa)?)?.reshape((b, NUM_JOINTS * 6))?.detach();
    let betas = betas.as_tensor().detach();
    let cam_t: Vec<f32> = cam.as_tensor().to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let proj = p.project(&aa.narrow(1, 0, 1)?.reshape((b, 3))?, &aa.narrow(1, 1, NUM_JOINTS - 1)?.reshape((b, GMM_DIM))?, &betas, cam.as_tensor())?;
    let reprojection_px = reprojection_from(&proj, obs, &cfg.ignore_keypoints)?;
    Ok(SmplifyOutput {
        x6d,
        betas,
        cam_t,
        reprojection_px,
    })
}
