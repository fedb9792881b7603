//! Guidance terms of ScoreHMR's refinement: differentiable losses on the predicted clean pose
//! `x0` (scorehmr.md section 3). Each returns one loss per sample (`[B]`), so callers can stop
//! samples early and weight terms; the guided sampler sums and differentiates them.
//!
//! - keypoints: OpenPose BODY_25 reprojection through a full-image pinhole camera, Geman-McClure
//!   robust error (sigma 100 px) per coordinate, confidence squared, resolution weight
//!   `(1000 / max(W, H))^2` (ScoreHMR `guidance_losses.py` keypoint_fitting_loss);
//! - multi-view: consistency of the 23 body-joint 6D rotations across the views of one person
//!   (`multiview_loss`: `300^2 sum ||x - mean||^2`);
//! - video: temporal smoothness of consecutive poses over the full 144-D 6D pose
//!   (`smoothness_loss`: `sum_n ||x_n - x_{n-1}||^2`).

use candle_core::{DType, Device, Tensor};

use crate::body::diff::DiffBody;
use crate::body::NUM_BODY25;
use crate::error::{Error, Result};
use crate::geom::camera::{project_t, Pinhole};

/// ScoreHMR base.yaml: W_KP2D = 0.003 (keypoint guidance weight).
pub const W_KP2D: f64 = 0.003;
/// ScoreHMR guidance_losses.py: GMoF sigma = 100 px.
pub const GMOF_SIGMA: f64 = 100.0;
/// ScoreHMR base.yaml: W_MULTIVIEW = 0.005.
pub const W_MULTIVIEW: f64 = 0.005;
/// ScoreHMR guidance_losses.py multiview_loss: the squared error is scaled by 300^2.
pub const MULTIVIEW_SCALE: f64 = 300.0 * 300.0;
/// ScoreHMR base.yaml: W_SMOOTH = 30 (the author suggests 10-70, issue #14).
pub const W_SMOOTH: f64 = 30.0;

/// Observed 2D keypoints of a batch with their cameras, as tensors.
#[derive(Clone, Debug)]
pub struct KeypointObs {
    /// `[B, 25, 2]` pixels (full image).
    pub keypoints: Tensor,
    /// `[B, 25]` confidences (0 = missing).
    pub conf: Tensor,
    /// `[B, 2]` focal lengths (fx, fy) in pixels.
    pub focal: Tensor,
    /// `[B, 2]` principal points in pixels.
    pub principal: Tensor,
    /// `[B, 1]` ScoreHMR's resolution weight `(1000 / max(W, H))^2`.
    pub res_weight: Tensor,
}

impl KeypointObs {
    /// From BODY_25 keypoints `[B, 25, 3]` (x px, y px, confidence), one camera and image size
    /// `(W, H)` per sample.
    pub fn new(
        keypoints: &[f32],
        cameras: &[Pinhole],
        image_sizes: &[(u32, u32)],
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let b = cameras.len();
        if keypoints.len() != b * NUM_BODY25 * 3 || image_sizes.len() != b || b == 0 {
            return Err(Error::Input(format!(
                "keypoints: {} values for {b} cameras and {} image sizes, expected [B, 25, 3] with B >= 1",
                keypoints.len(),
                image_sizes.len()
            )));
        }
        if let Some(i) = keypoints.iter().position(|x| !x.is_finite()) {
            return Err(Error::Input(format!("keypoint value {i} is not finite")));
        }
        let xy: Vec<f32> = keypoints.chunks_exact(3).flat_map(|k| [k[0], k[1]]).collect();
        let conf: Vec<f32> = keypoints.chunks_exact(3).map(|k| k[2].max(0.0)).collect();
        let focal: Vec<f32> = cameras.iter().flat_map(|c| [c.fx, c.fy]).collect();
        let principal: Vec<f32> = cameras.iter().flat_map(|c| [c.cx, c.cy]).collect();
        let res: Vec<f32> = image_sizes
            .iter()
            .map(|&(w, h)| {
                let m = w.max(h).max(1) as f32;
                (1000.0 / m).powi(2)
            })
            .collect();
        let t = |v: Vec<f32>, s: &[usize]| -> Result<Tensor> { Ok(Tensor::from_vec(v, s, device)?.to_dtype(dtype)?) };
        Ok(Self {
            keypoints: t(xy, &[b, NUM_BODY25, 2])?,
            conf: t(conf, &[b, NUM_BODY25])?,
            focal: t(focal, &[b, 2])?,
            principal: t(principal, &[b, 2])?,
            res_weight: t(res, &[b, 1])?,
        })
    }

    pub fn batch(&self) -> usize {
        self.conf.dims()[0]
    }
}

/// Geman-McClure robust error per element: `sigma^2 r^2 / (sigma^2 + r^2)`
/// (SMPLify / ScoreHMR `gmof`).
pub fn gmof(r: &Tensor, sigma: f64) -> Result<Tensor> {
    let r2 = r.sqr()?;
    let s2 = sigma * sigma;
    Ok(((&r2 * s2)? / (r2 + s2)?)?)
}

/// Per-sample keypoint loss `[B]` of projected keypoints `[B, 25, 2]`:
/// `sum_j sum_xy res_w * conf_j^2 * gmof(proj - kp)` (unweighted by `W_KP2D`).
pub fn keypoint_loss(projected: &Tensor, obs: &KeypointObs) -> Result<Tensor> {
    let r = (projected - &obs.keypoints)?;
    let per = gmof(&r, GMOF_SIGMA)?.sum(2)?; // [B, 25]
    let w = obs.conf.sqr()?.broadcast_mul(&obs.res_weight)?; // [B, 25]
    Ok((per * w)?.sum(1)?)
}

/// Per-sample keypoint loss of poses `x0` `[B, 144]` (6D), shapes `betas` `[B, S]` and camera
/// translations `cam_t` `[B, 3]` (the body at the origin, the camera looking down +z).
pub fn keypoint_loss_body(body: &DiffBody, x0: &Tensor, betas: &Tensor, cam_t: &Tensor, obs: &KeypointObs) -> Result<Tensor> {
    let zero = cam_t.zeros_like()?;
    let out = body.forward_joints_6d(betas, x0, &zero)?;
    let proj = project_t(&out.keypoints, cam_t, &obs.focal, &obs.principal)?;
    keypoint_loss(&proj, obs)
}

/// Per-sample multi-view consistency `[P*V]` of poses `x0` `[P*V, 144]` grouped as P people
/// seen in V views each (view-major within a person): `300^2 ||x_body - mean_views x_body||^2`
/// over the 23 body joints' 6D (the global orientation differs per view and is excluded).
pub fn multiview_loss(x0: &Tensor, views: usize) -> Result<Tensor> {
    let n = x0.dim(0)?;
    if views == 0 || n % views != 0 || x0.dims() != [n, 144] {
        return Err(Error::Input(format!("multiview_loss: x0 {:?} is not [P*{views}, 144]", x0.dims())));
    }
    let body = x0.narrow(1, 6, 138)?.reshape((n / views, views, 138))?;
    let mean = body.mean_keepdim(1)?;
    let d = body.broadcast_sub(&mean)?.sqr()?.sum(2)?; // [P, V]
    Ok((d * MULTIVIEW_SCALE)?.reshape(n)?)
}

/// Per-frame temporal smoothness `[P*T]` of poses `x0` `[P*T, 144]` grouped as P tracks of T
/// frames: frame n > 0 of a track carries `||x_n - x_{n-1}||^2` over the full 144-D pose,
/// frame 0 carries 0 (ScoreHMR smoothness_loss).
pub fn smoothness_loss(x0: &Tensor, frames: usize) -> Result<Tensor> {
    let n = x0.dim(0)?;
    if frames == 0 || n % frames != 0 || x0.dims() != [n, 144] {
        return Err(Error::Input(format!("smoothness_loss: x0 {:?} is not [P*{frames}, 144]", x0.dims())));
    }
    let p = n / frames;
    if frames == 1 {
        return Ok(Tensor::zeros(n, x0.dtype(), x0.device())?);
    }
    let tr = x0.reshape((p, frames, 144))?;
    let d = (tr.narrow(1, 1, frames - 1)? - tr.narrow(1, 0, frames - 1)?)?.sqr()?.sum(2)?; // [P, T-1]
    let zero = Tensor::zeros((p, 1), x0.dtype(), x0.device())?;
    Ok(Tensor::cat(&[&zero, &d], 1)?.reshape(n)?)
}

/// Per-sample losses of one guided step.
pub struct GuidanceLoss {
    /// `[B]`: the weighted loss whose gradient steers sampling.
    pub weighted: Tensor,
    /// `[B]`: what early stopping watches (ScoreHMR: the unweighted keypoint loss).
    pub monitored: Tensor,
}

/// A task loss that steers ScoreHMR's guided DDIM sampling.
///
/// At every guided step the sampler calls [`Guidance::loss`] on the predicted clean pose
/// `x0` (a tensor that requires gradients), back-propagates the sum of the per-sample losses
/// of the samples still being guided, takes the gradient w.r.t. `x0`, and hands the gradient
/// store to [`Guidance::update`] so the guidance can step its own variables (the camera).
pub trait Guidance {
    /// Losses of the predicted clean poses `x0` `[B, 144]`.
    fn loss(&mut self, x0: &Tensor) -> Result<GuidanceLoss>;
    /// Called after each backward pass with its gradients.
    fn update(&mut self, _grads: &candle_core::backprop::GradStore) -> Result<()> {
        Ok(())
    }
    /// Called once when sample `i` stops early: freeze whatever state belongs to it.
    fn freeze(&mut self, _i: usize) -> Result<()> {
        Ok(())
    }
}

/// Adam on one tensor variable (torch defaults: betas 0.9 / 0.999, eps 1e-8), elementwise, so
/// each sample of a batched variable is optimised independently.
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// First and second moment estimates and the step count (checkpointed by training).
    pub(crate) m: Tensor,
    pub(crate) v: Tensor,
    pub(crate) t: i32,
}

impl Adam {
    pub fn new(like: &Tensor, lr: f64) -> Result<Self> {
        Ok(Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            m: like.zeros_like()?,
            v: like.zeros_like()?,
            t: 0,
        })
    }

    /// One step of `var` along the gradient `g`.
    pub fn step(&mut self, var: &candle_core::Var, g: &Tensor) -> Result<()> {
        self.t += 1;
        self.m = ((&self.m * self.beta1)? + (g * (1.0 - self.beta1))?)?;
        self.v = ((&self.v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
        let mh = (&self.m / (1.0 - self.beta1.powi(self.t)))?;
        let vh = (&self.v / (1.0 - self.beta2.powi(self.t)))?;
        let upd = (mh / (vh.sqrt()? + self.eps)?)?;
        var.set(&(var.as_tensor() - (upd * self.lr)?)?)?;
        Ok(())
    }
}

/// ScoreHMR keypoint guidance (single frame, or video with temporal smoothness): the weighted
/// keypoint loss, with the camera translation of every sample optimised jointly by Adam
/// (lr 1e-2, one step per guided step, on the unweighted keypoint loss), and betas held fixed.
pub struct KeypointGuidance<'a> {
    body: &'a DiffBody,
    betas: Tensor,
    obs: KeypointObs,
    cam: candle_core::Var,
    adam: Adam,
    /// Keypoint weight (ScoreHMR base.yaml: W_KP2D = 0.003).
    pub w_kp: f64,
    /// Temporal smoothness: (frames per track, weight), None for independent frames.
    pub smooth: Option<(usize, f64)>,
    frozen: Vec<Option<[f32; 3]>>,
}

impl<'a> KeypointGuidance<'a> {
    /// `betas` `[B, S]` (fixed), `obs` for B samples, `cam_init` `[B, 3]` initial camera
    /// translations (the body at the origin, the camera looking down +z).
    pub fn new(body: &'a DiffBody, betas: Tensor, obs: KeypointObs, cam_init: &[f32]) -> Result<Self> {
        let b = obs.batch();
        if cam_init.len() != b * 3 || betas.dim(0)? != b {
            return Err(Error::Input(format!(
                "KeypointGuidance: {} camera values and betas {:?} for {b} samples",
                cam_init.len(),
                betas.dims()
            )));
        }
        let dt = obs.conf.dtype();
        let cam = candle_core::Var::from_tensor(&Tensor::from_slice(cam_init, (b, 3), obs.conf.device())?.to_dtype(dt)?)?;
        let adam = Adam::new(cam.as_tensor(), 1e-2)?; // ScoreHMR: Adam([cam_t], lr=1e-2)
        Ok(Self {
            body,
            betas: betas.to_dtype(dt)?,
            obs,
            adam,
            cam,
            w_kp: W_KP2D,
            smooth: None,
            frozen: vec![None; b],
        })
    }

    /// Adds ScoreHMR's video smoothness over tracks of `frames` consecutive samples.
    pub fn with_smoothness(mut self, frames: usize, weight: f64) -> Self {
        self.smooth = Some((frames, weight));
        self
    }

    /// Current camera translations `[B, 3]` (frozen values for samples that stopped early).
    pub fn camera(&self) -> Result<Vec<f32>> {
        let cur: Vec<f32> = self.cam.as_tensor().to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        Ok(cur
            .chunks_exact(3)
            .zip(&self.frozen)
            .flat_map(|(c, f)| f.unwrap_or([c[0], c[1], c[2]]))
            .collect())
    }

    /// Unweighted per-sample keypoint loss `[B]` at `x0` and the current camera.
    pub fn keypoint_loss(&self, x0: &Tensor) -> Result<Tensor> {
        keypoint_loss_body(self.body, x0, &self.betas, self.cam.as_tensor(), &self.obs)
    }
}

impl Guidance for KeypointGuidance<'_> {
    fn loss(&mut self, x0: &Tensor) -> Result<GuidanceLoss> {
        let kp = self.keypoint_loss(x0)?;
        let mut l = (&kp * self.w_kp)?;
        if let Some((frames, w)) = self.smooth {
            l = (l + (smoothness_loss(x0, frames)? * w)?)?;
        }
        Ok(GuidanceLoss { weighted: l, monitored: kp })
    }

    fn update(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        if let Some(g) = grads.get(self.cam.as_tensor()) {
            // The camera follows the unweighted keypoint loss (smoothness does not touch it).
            let g = (g / self.w_kp)?;
            self.adam.step(&self.cam, &g)?;
        }
        Ok(())
    }

    fn freeze(&mut self, i: usize) -> Result<()> {
        let c: Vec<f32> = self.cam.as_tensor().get(i)?.to_dtype(DType::F32)?.to_vec1()?;
        self.frozen[i] = Some([c[0], c[1], c[2]]);
        Ok(())
    }
}

/// ScoreHMR multi-view guidance: `W_MULTIVIEW * 300^2 ||x_body - mean||^2` over the views of
/// each person (no keypoints, no camera).
pub struct MultiviewGuidance {
    pub views: usize,
    pub weight: f64,
}

impl MultiviewGuidance {
    pub fn new(views: usize) -> Self {
        Self { views, weight: W_MULTIVIEW }
    }
}

impl Guidance for MultiviewGuidance {
    fn loss(&mut self, x0: &Tensor) -> Result<GuidanceLoss> {
        let l = multiview_loss(x0, self.views)?;
        Ok(GuidanceLoss { weighted: (&l * self.weight)?, monitored: l })
    }
}

/// Keypoint guidance over several calibrated views of the same body: the pose `x0` lives in
/// the OpenCV frame of a reference camera (its global orientation relative to that camera); view
/// v sees the point `p` of the reference frame at `R_v p + t_v`. One body translation per sample
/// (in the reference frame) is optimised by Adam (lr 1e-2, as ScoreHMR's camera) on the summed
/// unweighted keypoint loss of all views; each view's loss is ScoreHMR's (GMoF, conf^2,
/// resolution weight) and the guidance is `W_KP2D` times the sum. Betas are held fixed.
pub struct CalibratedViewsGuidance<'a> {
    body: &'a DiffBody,
    betas: Tensor,
    /// Per view: observations of all B samples, and the reference-to-view rotation `[1, 3, 3]`
    /// and translation `[B, 3]`.
    views: Vec<(KeypointObs, Tensor, Tensor)>,
    transl: candle_core::Var,
    adam: Adam,
    pub w_kp: f64,
    frozen: Vec<Option<[f32; 3]>>,
}

impl<'a> CalibratedViewsGuidance<'a> {
    /// `views`: per view the observations `[B]` and the reference-to-view transform (R row-major,
    /// t). `transl_init` `[B, 3]`: the body's translation in the reference camera frame.
    pub fn new(body: &'a DiffBody, betas: Tensor, views: Vec<(KeypointObs, [f32; 9], [f32; 3])>, transl_init: &[f32]) -> Result<Self> {
        let b = betas.dim(0)?;
        if views.is_empty() || transl_init.len() != 3 * b || views.iter().any(|(o, _, _)| o.batch() != b) {
            return Err(Error::Input(format!("CalibratedViewsGuidance: {} views, {} translation values for {b} samples", views.len(), transl_init.len())));
        }
        let (dev, dt) = (betas.device().clone(), views[0].0.conf.dtype());
        let views = views
            .into_iter()
            .map(|(o, r, t)| {
                let rt = Tensor::from_slice(&r, (3, 3), &dev)?.to_dtype(dt)?.t()?.unsqueeze(0)?; // [1, 3, 3] = R^T
                let tt = Tensor::from_slice(&t, (1, 3), &dev)?.to_dtype(dt)?.broadcast_as((b, 3))?.contiguous()?;
                Ok((o, rt, tt))
            })
            .collect::<Result<Vec<_>>>()?;
        let transl = candle_core::Var::from_tensor(&Tensor::from_slice(transl_init, (b, 3), &dev)?.to_dtype(dt)?)?;
        let adam = Adam::new(transl.as_tensor(), 1e-2)?;
        Ok(Self { body, betas: betas.to_dtype(dt)?, views, transl, adam, w_kp: W_KP2D, frozen: vec![None; b] })
    }

    /// Body translations in the reference frame `[B, 3]` (frozen values for stopped samples).
    pub fn translation(&self) -> Result<Vec<f32>> {
        let cur: Vec<f32> = self.transl.as_tensor().to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        Ok(cur.chunks_exact(3).zip(&self.frozen).flat_map(|(c, f)| f.unwrap_or([c[0], c[1], c[2]])).collect())
    }

    /// Summed unweighted keypoint loss over the views `[B]`.
    pub fn keypoint_loss(&self, x0: &Tensor) -> Result<Tensor> {
        let zero = self.transl.as_tensor().zeros_like()?;
        let kp = self.body.forward_joints_6d(&self.betas, x0, &zero)?.keypoints; // [B, 25, 3]
        let p = kp.broadcast_add(&self.transl.as_tensor().unsqueeze(1)?)?;
        let b = p.dim(0)?;
        let mut total: Option<Tensor> = None;
        for (obs, rt, t) in &self.views {
            let q = p.broadcast_matmul(&rt.broadcast_as((b, 3, 3))?)?; // rows p R^T = (R p)^T
            let l = keypoint_loss(&project_t(&q, t, &obs.focal, &obs.principal)?, obs)?;
            total = Some(match total {
                None => l,
                Some(s) => (s + l)?,
            });
        }
        Ok(total.expect("at least one view"))
    }
}

impl Guidance for CalibratedViewsGuidance<'_> {
    fn loss(&mut self, x0: &Tensor) -> Result<GuidanceLoss> {
        let kp = self.keypoint_loss(x0)?;
        Ok(GuidanceLoss { weighted: (&kp * self.w_kp)?, monitored: kp })
    }

    fn update(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        if let Some(g) = grads.get(self.transl.as_tensor()) {
            let g = (g / self.w_kp)?;
            self.adam.step(&self.transl, &g)?;
        }
        Ok(())
    }

    fn freeze(&mut self, i: usize) -> Result<()> {
        let c: Vec<f32> = self.transl.as_tensor().get(i)?.to_dtype(DType::F32)?.to_vec1()?;
        self.frozen[i] = Some([c[0], c[1], c[2]]);
        Ok(())
    }
}
