//! The public fitting pipelines (single image, video, calibrated and uncalibrated views), built
//! from the body model, the keypoint-conditioned prior and the guidance terms.
//!
//! Every pipeline runs in two steps:
//! 1. **Initialisation without a regressor** ([`Fitter::initialize`]): N hypotheses per
//!    observation are sampled from the conditional prior (DDIM from noise with ScoreHMR's x0
//!    clip), each gets its camera translation in closed form from the keypoints
//!    ([`crate::geom::camera::solve_translation`]), and the one with the lowest reprojection
//!    error is kept.
//! 2. **ScoreHMR refinement** ([`crate::diffusion::ddim::refine`]): DDIM inversion to t = 50 and
//!    keypoint-guided sampling back, the camera translation optimised jointly; by default
//!    [`RefineConfig::fitting`] (20 times, ScoreHMR's guidance x 5; [`mode_refine_config`]),
//!    [`RefineConfig::keypoints`] is ScoreHMR's own (10 times, x 1); video
//!    adds the temporal smoothness term (W_SMOOTH 30) over the track; calibrated views sum the
//!    keypoint terms of all views around one body translation; uncalibrated views use ScoreHMR's
//!    multi-view consistency (tau 100, step 10, 2 iterations) after per-view fits.
//!
//! The result is a [`Motion`] in a Y-up world: for one camera the world is that camera's glTF
//! frame (the camera at the origin looking down -Z); for calibrated views, the calibration's
//! world; for uncalibrated views, view 0's frame, with the other cameras placed from the fit.
//!
//! [`smplify`] is the classic optimisation baseline (SPIN's SMPLify with a GMM pose prior).

pub mod smplify;

use candle_core::{DType, Device, Tensor};

use crate::body::diff::DiffBody;
use crate::body::{BodyModel, BodyOutput, NUM_BODY25, NUM_JOINTS};
use crate::diffusion::ddim::{ddim_sample, refine, RefineConfig};
use crate::diffusion::{Prior, Rng, Schedule};
use crate::error::{Error, Result};
use crate::geom::camera::{solve_translation, Pinhole};
use crate::geom::rot::{mat3_apply, mat3_mul, mat3_transpose, matrix_to_rot6d, rot6d_to_matrices};
use crate::guide::{CalibratedViewsGuidance, KeypointGuidance, KeypointObs, MultiviewGuidance, W_SMOOTH};
use crate::motion::{Motion, MotionCamera, CV_TO_GL};

/// Fewest confident keypoints for a view to count as seeing the person in a frame.
pub const MIN_KEYPOINTS: usize = 4;

/// Hypotheses placed in their observations' cameras ([`Fitter::place_hypotheses`]).
#[derive(Clone, Debug, Default)]
pub struct Placed {
    /// `[B * n, 3]` closed-form camera translations.
    pub cam_t: Vec<f32>,
    /// `[B * n]` reprojection errors, pixels (infinite when unplaceable).
    pub reprojection_px: Vec<f32>,
    /// `[B * n, 24, 3]` SMPL joints in the camera frame.
    pub joints: Vec<f32>,
    /// `[B * n, 25, 3]` BODY_25 points in the camera frame.
    pub keypoints: Vec<f32>,
}

/// One camera of the input.
#[derive(Clone, Debug)]
pub struct FitView {
    pub name: String,
    pub camera: Pinhole,
    pub width: u32,
    pub height: u32,
    /// Camera-to-world pose (glTF / USD convention, see [`crate::motion`]); None when the view
    /// is not calibrated.
    pub pose: Option<([f32; 9], [f32; 3])>,
}

/// The observations of one person.
#[derive(Clone, Debug)]
pub struct FitInput {
    /// `keypoints[frame][view]`: BODY_25 `[25 * 3]` (x px, y px, confidence; 0 = missing), or
    /// None where the view does not see the person in that frame.
    pub keypoints: Vec<Vec<Option<Vec<f32>>>>,
    pub views: Vec<FitView>,
    /// Frame rate of the footage (any positive value for a single image).
    pub fps: f32,
}

/// Settings of a fit.
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// Hypotheses sampled per observation for the initialisation.
    pub hypotheses: usize,
    /// DDIM step when sampling from noise (t = 999 down to 0): 40 gives 25 network evaluations.
    pub sample_step: u32,
    /// Run ScoreHMR refinement after the initialisation.
    pub refine: bool,
    /// Refinement schedule; None picks ScoreHMR's for the mode (keypoints / video / multi-view).
    pub refine_config: Option<RefineConfig>,
    /// Temporal smoothness in videos (ScoreHMR video guidance).
    pub temporal: bool,
    /// Smoothness weight. // ScoreHMR base.yaml: W_SMOOTH = 30
    pub smooth_weight: f64,
    /// Shape coefficients held fixed during the fit (empty = the mean shape).
    pub betas: Vec<f32>,
    pub seed: u64,
    /// Frames refined together (memory bound; a video's smoothness acts within a chunk).
    pub chunk: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self { hypotheses: 16, sample_step: 40, refine: true, refine_config: None, temporal: true, smooth_weight: W_SMOOTH, betas: Vec::new(), seed: 0, chunk: 256 }
    }
}

/// What a long fit reports; the callback returns false to cancel.
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    pub stage: &'a str,
    pub done: usize,
    pub total: usize,
}

/// A progress callback: return false to cancel the fit ([`Error::Cancelled`]).
pub type ProgressFn<'a> = &'a mut dyn FnMut(&Progress) -> bool;

/// The result of a fit.
#[derive(Clone, Debug)]
pub struct FitResult {
    pub motion: Motion,
    /// `[F, V]` confidence-weighted mean reprojection error of the fit, pixels (NaN where the
    /// view does not see the person).
    pub reprojection_px: Vec<f32>,
    /// The same for the initial estimate.
    pub init_reprojection_px: Vec<f32>,
    pub seconds: f64,
}

impl FitResult {
    /// Mean of the finite per-frame, per-view reprojection errors.
    pub fn mean_reprojection_px(&self) -> f32 {
        mean_finite(&self.reprojection_px)
    }
}

/// Mean of the finite values (NaN when there are none).
pub fn mean_finite(v: &[f32]) -> f32 {
    let (s, n) = v.iter().filter(|x| x.is_finite()).fold((0.0f64, 0usize), |(s, n), &x| (s + x as f64, n + 1));
    if n == 0 { f32::NAN } else { (s / n as f64) as f32 }
}

/// Initial estimates of B observations.
#[derive(Clone, Debug)]
pub struct Init {
    /// `[B, 144]` 6D poses (global orientation in each observation's OpenCV camera frame).
    pub x: Vec<f32>,
    /// `[B, 3]` camera translations.
    pub cam_t: Vec<f32>,
    /// `[B]` reprojection errors, pixels.
    pub reprojection_px: Vec<f32>,
}

/// Confidence-weighted mean reprojection error (px) of camera-frame points `[25, 3]` against
/// keypoints `[25, 3]`; NaN without confident keypoints.
pub fn reprojection_error(points: &[f32], keypoints: &[f32], camera: &Pinhole) -> f32 {
    let (mut s, mut w) = (0.0f64, 0.0f64);
    for (p, k) in points.chunks_exact(3).zip(keypoints.chunks_exact(3)) {
        if k[2] > 0.0 && p[2] > 1e-6 {
            let uv = camera.project_point(&[p[0], p[1], p[2]]);
            let e = ((uv[0] - k[0]).powi(2) + (uv[1] - k[1]).powi(2)).sqrt();
            s += (k[2] * e) as f64;
            w += k[2] as f64;
        }
    }
    if w > 0.0 { (s / w) as f32 } else { f32::NAN }
}

fn confident(kp: &[f32]) -> usize {
    kp.chunks_exact(3).filter(|k| k[2] > 0.0 && k[0].is_finite() && k[1].is_finite()).count()
}

fn check_keypoints(kp: &[f32], what: &str) -> Result<()> {
    if kp.len() != NUM_BODY25 * 3 {
        return Err(Error::Input(format!("{what}: {} keypoint values, expected BODY_25 [25, 3] = 75", kp.len())));
    }
    Ok(())
}

/// Rotation matrices `[B, 24, 9]` of 6D poses `[B, 144]`.
fn rotations(x: &[f32]) -> Result<Vec<f32>> {
    let mut r = vec![0.0f32; x.len() / 6 * 9];
    rot6d_to_matrices(x, &mut r)?;
    Ok(r)
}

/// The fitting engine: body model, prior and schedule on one device.
pub struct Fitter {
    pub body: BodyModel,
    pub diff: DiffBody,
    pub prior: Prior,
    pub schedule: Schedule,
    /// The HMR-Scorer that picks among the sampled hypotheses ([`crate::learn::scorer`]); None
    /// picks the lowest reprojection error.
    pub scorer: Option<crate::learn::scorer::Scorer>,
}

/// The refinement schedule `Fitter::fit` uses for `input` when `FitOptions::refine_config` is
/// None, and the one that option replaces: ScoreHMR's multi-view consistency schedule for
/// uncalibrated views (after per-view [`RefineConfig::fitting`]), otherwise rigfit's keypoint
/// fitting (one image, video with or without temporal guidance, calibrated views).
pub fn mode_refine_config(input: &FitInput) -> RefineConfig {
    let v = input.views.len();
    if v > 1 && !input.views.iter().all(|w| w.pose.is_some()) {
        RefineConfig::multiview()
    } else {
        RefineConfig::fitting()
    }
}

impl Fitter {
    pub fn new(body: BodyModel, prior: Prior) -> Result<Self> {
        let device = prior.denoiser.device().clone();
        let diff = DiffBody::new(&body, &device)?;
        Ok(Self { body, diff, prior, schedule: Schedule::scorehmr(), scorer: None })
    }

    /// The embedded default body and prior on the CPU: no files, no downloads.
    pub fn default_cpu() -> Result<Self> {
        Self::new(BodyModel::default_body()?, Prior::default_prior(&Device::Cpu)?)
    }

    pub fn device(&self) -> &Device {
        self.prior.denoiser.device()
    }

    fn betas(&self, betas: &[f32]) -> Result<Vec<f32>> {
        let s = self.body.num_betas();
        if betas.len() > s {
            return Err(Error::Input(format!("{} shape coefficients given, the body model has {s}", betas.len())));
        }
        let mut b = vec![0.0; s];
        b[..betas.len()].copy_from_slice(betas);
        Ok(b)
    }

    /// Samples `n` hypotheses per observation from the prior conditioned on `keypoints`
    /// `[B, 25, 3]` seen by `cameras`; returns `[B * n, 144]` (observation-major).
    pub fn sample_hypotheses(&self, keypoints: &[f32], cameras: &[Pinhole], n: usize, step: u32, seed: u64) -> Result<Vec<f32>> {
        let b = cameras.len();
        let dev = self.device();
        let cond = self.prior.condition(keypoints, cameras)?; // [B, C]
        let idx: Vec<u32> = (0..b as u32).flat_map(|i| std::iter::repeat(i).take(n)).collect();
        let cond = cond.index_select(&Tensor::from_vec(idx, b * n, dev)?, 0)?;
        let noise = Rng::new(seed).normal_tensor(&[b * n, 144], DType::F32, dev)?;
        let x = ddim_sample(&self.prior.denoiser, &self.schedule, &noise, Some(&cond), (self.schedule.num_timesteps() - 1) as u32, step, Some(1.0))?;
        Ok(x.flatten_all()?.to_vec1()?)
    }

    /// Initial estimates of B observations (keypoints `[B, 25, 3]`, one camera each, shape
    /// `betas` `[S]`): `n` hypotheses each from the conditional prior, closed-form camera
    /// translations, the lowest reprojection error kept.
    pub fn initialize(&self, keypoints: &[f32], cameras: &[Pinhole], betas: &[f32], n: usize, step: u32, seed: u64) -> Result<Init> {
        let b = cameras.len();
        if keypoints.len() != b * 75 || n == 0 {
            return Err(Error::Input(format!("initialize: {} keypoint values for {b} cameras and {n} hypotheses", keypoints.len())));
        }
        let x = self.sample_hypotheses(keypoints, cameras, n, step, seed)?;
        let placed = self.place_hypotheses(&x, keypoints, cameras, n, betas)?;
        let picks = self.pick(&x, &placed, keypoints, cameras, n)?;
        let mut init = Init { x: Vec::with_capacity(b * 144), cam_t: Vec::with_capacity(b * 3), reprojection_px: Vec::with_capacity(b) };
        for (i, &h) in picks.iter().enumerate() {
            let j = i * n + h;
            init.x.extend_from_slice(&x[j * 144..(j + 1) * 144]);
            init.cam_t.extend_from_slice(&placed.cam_t[j * 3..(j + 1) * 3]);
            init.reprojection_px.push(placed.reprojection_px[j]);
        }
        Ok(init)
    }

    /// Places hypotheses `x` `[B * n, 144]` (observation-major) in their observations' cameras:
    /// each gets its camera translation in closed form from the keypoints `[B, 25, 3]`, and its
    /// reprojection error (infinite when the solve fails or puts the body behind the camera).
    pub fn place_hypotheses(&self, x: &[f32], keypoints: &[f32], cameras: &[Pinhole], n: usize, betas: &[f32]) -> Result<Placed> {
        let b = cameras.len();
        if keypoints.len() != b * 75 || x.len() != b * n * 144 {
            return Err(Error::Input(format!("place_hypotheses: {} pose values and {} keypoint values for {b} cameras x {n} hypotheses", x.len(), keypoints.len())));
        }
        let betas = self.betas(betas)?;
        let rot = rotations(x)?;
        let bb: Vec<f32> = (0..b * n).flat_map(|_| betas.iter().copied()).collect();
        let mut out = BodyOutput::default();
        self.body.forward_joints(&bb, &rot, &vec![0.0; b * n * 3], &mut out)?;
        let mut p = Placed { cam_t: Vec::with_capacity(b * n * 3), reprojection_px: Vec::with_capacity(b * n), joints: out.joints, keypoints: out.keypoints };
        for i in 0..b {
            let kp = &keypoints[i * 75..(i + 1) * 75];
            let xy: Vec<f32> = kp.chunks_exact(3).flat_map(|k| [k[0], k[1]]).collect();
            let conf: Vec<f32> = kp.chunks_exact(3).map(|k| k[2]).collect();
            for h in 0..n {
                let j = i * n + h;
                let t = solve_translation(&p.keypoints[j * 75..(j + 1) * 75], &xy, &conf, &cameras[i]).unwrap_or([0.0, 0.0, 10.0]);
                for q in 0..25 {
                    for d in 0..3 {
                        p.keypoints[j * 75 + q * 3 + d] += t[d];
                    }
                }
                for q in 0..NUM_JOINTS {
                    for d in 0..3 {
                        p.joints[j * 72 + q * 3 + d] += t[d];
                    }
                }
                let e = reprojection_error(&p.keypoints[j * 75..(j + 1) * 75], kp, &cameras[i]);
                p.reprojection_px.push(if e.is_finite() && t[2] > 0.0 { e } else { f32::INFINITY });
                p.cam_t.extend_from_slice(&t);
            }
        }
        Ok(p)
    }

    /// The hypothesis kept for each observation (index in `0..n`): the highest score of the
    /// fitter's scorer, or without one the lowest reprojection error. Unplaceable hypotheses
    /// (infinite reprojection error) are kept only when all are.
    pub fn pick(&self, x: &[f32], placed: &Placed, keypoints: &[f32], cameras: &[Pinhole], n: usize) -> Result<Vec<usize>> {
        let key: Vec<f32> = match &self.scorer {
            Some(sc) => {
                let f = crate::learn::scorer::features(x, placed, keypoints, cameras, n);
                let s = sc.score(&f, self.device())?;
                s.iter().zip(&placed.reprojection_px).map(|(s, r)| if r.is_finite() && s.is_finite() { -s } else { f32::INFINITY }).collect()
            }
            None => placed.reprojection_px.clone(),
        };
        Ok((0..cameras.len())
            .map(|i| {
                let r = &key[i * n..(i + 1) * n];
                let mut best = 0;
                for h in 1..n {
                    if r[h] < r[best] {
                        best = h;
                    }
                }
                best
            })
            .collect())
    }

    /// ScoreHMR keypoint refinement of B observations in one camera view each: `x` `[B, 144]`,
    /// `cam_t` `[B, 3]`; with `track = Some(T)`, samples form tracks of T consecutive frames with
    /// temporal smoothness of weight `smooth`. Returns the refined poses and translations.
    #[allow(clippy::too_many_arguments)]
    pub fn refine_view(
        &self,
        x: &[f32],
        cam_t: &[f32],
        keypoints: &[f32],
        cameras: &[Pinhole],
        sizes: &[(u32, u32)],
        betas: &[f32],
        cfg: &RefineConfig,
        track: Option<(usize, f64)>,
        progress: Option<&mut dyn FnMut(usize, usize) -> bool>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let b = cameras.len();
        let dev = self.device();
        let betas = self.betas(betas)?;
        let bt = Tensor::from_vec(betas.repeat(b), (b, betas.len()), dev)?;
        let obs = KeypointObs::new(keypoints, cameras, sizes, dev, DType::F32)?;
        let cond = self.prior.condition(keypoints, cameras)?;
        let mut g = KeypointGuidance::new(&self.diff, bt, obs, cam_t)?;
        if let Some((frames, w)) = track {
            g = g.with_smoothness(frames, w);
        }
        let xt = Tensor::from_slice(x, (b, 144), dev)?;
        let out = refine(&self.prior.denoiser, &self.schedule, &xt, Some(&cond), &mut g, cfg, progress)?;
        Ok((out.x0.flatten_all()?.to_vec1()?, g.camera()?))
    }

    /// Fits one person (see the module docs for the modes).
    pub fn fit(&self, input: &FitInput, opts: &FitOptions, mut progress: Option<ProgressFn>) -> Result<FitResult> {
        let t0 = std::time::Instant::now();
        let f = input.keypoints.len();
        let v = input.views.len();
        if f == 0 || v == 0 {
            return Err(Error::Input(format!("fit: {f} frames and {v} views; need at least one of each")));
        }
        if !(input.fps > 0.0 && input.fps.is_finite()) {
            return Err(Error::Input(format!("fit: frame rate {}: must be positive", input.fps)));
        }
        if opts.hypotheses == 0 || opts.chunk == 0 {
            return Err(Error::Input("fit: hypotheses and chunk must be positive".into()));
        }
        for (i, fr) in input.keypoints.iter().enumerate() {
            if fr.len() != v {
                return Err(Error::Input(format!("fit: frame {i} has {} views, expected {v}", fr.len())));
            }
            for (j, k) in fr.iter().enumerate() {
                if let Some(k) = k {
                    check_keypoints(k, &format!("frame {i}, view {j}"))?;
                }
            }
        }
        let report = |p: &mut Option<ProgressFn>, stage: &str, done: usize, total: usize| -> Result<()> {
            if let Some(cb) = p.as_deref_mut() {
                if !cb(&Progress { stage, done, total }) {
                    return Err(Error::Cancelled);
                }
            }
            Ok(())
        };
        // Per view: initial and refined estimates of every frame in that view's camera frame.
        let mut per_view: Vec<ViewFit> = Vec::with_capacity(v);
        let calibrated = v > 1 && input.views.iter().all(|w| w.pose.is_some());
        for vi in 0..v {
            let view = &input.views[vi];
            let seen: Vec<usize> = (0..f)
                .filter(|&i| input.keypoints[i][vi].as_ref().is_some_and(|k| confident(k) >= MIN_KEYPOINTS))
                .collect();
            if seen.is_empty() {
                per_view.push(ViewFit::unseen(f));
                continue;
            }
            let mut vf = ViewFit::unseen(f);
            let chunk_obs = 64usize.max(1);
            for (ci, c) in seen.chunks(chunk_obs).enumerate() {
                report(&mut progress, "sampling hypotheses", ci * chunk_obs, seen.len())?;
                let kp: Vec<f32> = c.iter().flat_map(|&i| input.keypoints[i][vi].clone().unwrap()).collect();
                let cams = vec![view.camera; c.len()];
                let init = self.initialize(&kp, &cams, &opts.betas, opts.hypotheses, opts.sample_step, opts.seed ^ ((vi * 7919 + ci) as u64))?;
                for (k, &i) in c.iter().enumerate() {
                    vf.x[i * 144..(i + 1) * 144].copy_from_slice(&init.x[k * 144..(k + 1) * 144]);
                    vf.cam_t[i * 3..i * 3 + 3].copy_from_slice(&init.cam_t[k * 3..k * 3 + 3]);
                    vf.seen[i] = true;
                }
            }
            vf.fill_unseen();
            vf.x_init = vf.x.clone();
            vf.cam_init = vf.cam_t.clone();
            per_view.push(vf);
        }
        if per_view.iter().all(|p| !p.any_seen()) {
            return Err(Error::Input(format!("fit: no frame has at least {MIN_KEYPOINTS} confident keypoints in any view")));
        }
        let video = f > 1 && opts.temporal;
        let mut motion;
        if v == 1 {
            let vf = &mut per_view[0];
            if opts.refine {
                let cfg = opts.refine_config.clone().unwrap_or_else(|| mode_refine_config(input));
                self.refine_single(input, 0, vf, &cfg, video.then_some(opts.smooth_weight), &opts.betas, &mut progress)?;
            }
            motion = self.motion_single(input, vf, &opts.betas)?;
            motion.cameras.push(MotionCamera::origin(&input.views[0].name, input.views[0].camera, input.views[0].width, input.views[0].height));
            let j0 = self.body.rest_joints(&motion.betas)?;
            motion.transform_body(&CV_TO_GL, &[0.0; 3], &[j0[0], j0[1], j0[2]]);
        } else if calibrated {
            motion = self.fit_calibrated(input, opts, &mut per_view, &mut progress)?;
        } else {
            motion = self.fit_uncalibrated(input, opts, &mut per_view, &mut progress)?;
        }
        report(&mut progress, "done", 1, 1)?;
        // Reprojection errors of the final motion and of the initial estimates.
        let reprojection_px = self.motion_reprojection(&motion, input)?;
        let init_reprojection_px = self.init_reprojection(input, &per_view)?;
        Ok(FitResult { motion, reprojection_px, init_reprojection_px, seconds: t0.elapsed().as_secs_f64() })
    }

    /// Refines all frames of one view in chunks (tracks for video).
    fn refine_single(&self, input: &FitInput, vi: usize, vf: &mut ViewFit, cfg: &RefineConfig, smooth: Option<f64>, betas: &[f32], progress: &mut Option<ProgressFn>) -> Result<()> {
        let f = input.keypoints.len();
        let view = &input.views[vi];
        let frames: Vec<usize> = if smooth.is_some() { (0..f).collect() } else { (0..f).filter(|&i| vf.seen[i]).collect() };
        let chunk = 256usize;
        let total = frames.len();
        for (ci, c) in frames.chunks(chunk).enumerate() {
            let kp: Vec<f32> = c.iter().flat_map(|&i| input.keypoints[i][vi].clone().filter(|_| vf.seen[i]).unwrap_or_else(|| vec![0.0; 75])).collect();
            let x: Vec<f32> = c.iter().flat_map(|&i| vf.x[i * 144..(i + 1) * 144].to_vec()).collect();
            let ct: Vec<f32> = c.iter().flat_map(|&i| vf.cam_t[i * 3..i * 3 + 3].to_vec()).collect();
            let cams = vec![view.camera; c.len()];
            let sizes = vec![(view.width, view.height); c.len()];
            let done0 = ci * chunk;
            let mut cb = refine_progress(progress, done0, c.len(), total);
            let (x, ct) = self.refine_view(&x, &ct, &kp, &cams, &sizes, betas, cfg, smooth.map(|w| (c.len(), w)), Some(&mut cb))?;
            for (k, &i) in c.iter().enumerate() {
                vf.x[i * 144..(i + 1) * 144].copy_from_slice(&x[k * 144..(k + 1) * 144]);
                vf.cam_t[i * 3..i * 3 + 3].copy_from_slice(&ct[k * 3..k * 3 + 3]);
            }
        }
        if smooth.is_none() {
            vf.fill_unseen();
        }
        Ok(())
    }

    /// A motion in the OpenCV frame of one view (rotations from the 6D poses, SMPL transl =
    /// camera translation), without cameras.
    fn motion_single(&self, input: &FitInput, vf: &ViewFit, betas: &[f32]) -> Result<Motion> {
        let f = input.keypoints.len();
        let rot = rotations(&vf.x)?;
        let mut m = Motion::rest(f, 0, input.fps);
        m.betas = self.betas(betas)?;
        for (i, r) in rot.chunks_exact(9).enumerate() {
            m.rotations[i] = r.try_into().unwrap();
        }
        for i in 0..f {
            m.translations[i] = [vf.cam_t[3 * i], vf.cam_t[3 * i + 1], vf.cam_t[3 * i + 2]];
        }
        Ok(m)
    }

    /// Calibrated views: the pose in view 0's OpenCV frame, all views' keypoints around one body
    /// translation.
    fn fit_calibrated(&self, input: &FitInput, opts: &FitOptions, per_view: &mut [ViewFit], progress: &mut Option<ProgressFn>) -> Result<Motion> {
        let f = input.keypoints.len();
        let v = input.views.len();
        let cams: Vec<MotionCamera> = input.views.iter().map(|w| {
            let (r, c) = w.pose.unwrap();
            MotionCamera::fixed(&w.name, w.camera, w.width, w.height, r, c)
        }).collect();
        let w2c: Vec<([f32; 9], [f32; 3])> = cams.iter().map(|c| c.world_to_cv(0)).collect();
        let r0t = mat3_transpose(&w2c[0].0);
        // Reference (view 0 OpenCV frame) to view v: R_v R_0^T, t_v - R_v R_0^T t_0.
        let rel: Vec<([f32; 9], [f32; 3])> = w2c.iter().map(|(r, t)| {
            let rr = mat3_mul(r, &r0t);
            let q = mat3_apply(&rr, &w2c[0].1);
            (rr, [t[0] - q[0], t[1] - q[1], t[2] - q[2]])
        }).collect();
        let betas = self.betas(&opts.betas)?;
        let j0 = self.body.rest_joints(&betas)?;
        let j0 = [j0[0], j0[1], j0[2]];
        // Candidates: each seeing view's initial estimate moved into the reference frame; keep the
        // one with the lowest reprojection error summed over the views.
        let mut x = vec![0.0f32; f * 144];
        let mut transl = vec![0.0f32; f * 3];
        let mut seen = vec![false; f];
        let mut out = BodyOutput::default();
        for i in 0..f {
            let mut best = (f32::INFINITY, Vec::new(), [0.0f32; 3]);
            for vi in 0..v {
                if !per_view[vi].seen[i] {
                    continue;
                }
                let (rr, tt) = rel[vi];
                let rt = mat3_transpose(&rr);
                let mut xc = per_view[vi].x[i * 144..(i + 1) * 144].to_vec();
                let g = rot6d_to_matrices_one(&xc[0..6]);
                xc[0..6].copy_from_slice(&matrix_to_rot6d(&mat3_mul(&rt, &g)));
                let ct = &per_view[vi].cam_t[i * 3..i * 3 + 3];
                let a = mat3_apply(&rt, &[j0[0] + ct[0] - tt[0], j0[1] + ct[1] - tt[1], j0[2] + ct[2] - tt[2]]);
                let tr = [a[0] - j0[0], a[1] - j0[1], a[2] - j0[2]];
                let e = self.calibrated_error(&xc, &tr, &betas, i, input, &rel, &mut out)?;
                if e < best.0 || best.1.is_empty() {
                    best = (e, xc, tr);
                }
            }
            if !best.1.is_empty() {
                x[i * 144..(i + 1) * 144].copy_from_slice(&best.1);
                transl[i * 3..i * 3 + 3].copy_from_slice(&best.2);
                seen[i] = true;
            }
        }
        let mut vf = ViewFit { x, cam_t: transl, seen, x_init: Vec::new(), cam_init: Vec::new() };
        vf.fill_unseen();
        if opts.refine {
            let cfg = opts.refine_config.clone().unwrap_or_else(|| mode_refine_config(input));
            let frames: Vec<usize> = (0..f).filter(|&i| vf.seen[i]).collect();
            let dev = self.device();
            for (ci, c) in frames.chunks(opts.chunk).enumerate() {
                let b = c.len();
                let mut views = Vec::with_capacity(v);
                for vi in 0..v {
                    let w = &input.views[vi];
                    let kp: Vec<f32> = c.iter().flat_map(|&i| input.keypoints[i][vi].clone().unwrap_or_else(|| vec![0.0; 75])).collect();
                    let obs = KeypointObs::new(&kp, &vec![w.camera; b], &vec![(w.width, w.height); b], dev, DType::F32)?;
                    views.push((obs, rel[vi].0, rel[vi].1));
                }
                let kp0: Vec<f32> = c.iter().flat_map(|&i| input.keypoints[i][0].clone().unwrap_or_else(|| vec![0.0; 75])).collect();
                let cond = self.prior.condition(&kp0, &vec![input.views[0].camera; b])?;
                let bt = Tensor::from_vec(betas.repeat(b), (b, betas.len()), dev)?;
                let xs: Vec<f32> = c.iter().flat_map(|&i| vf.x[i * 144..(i + 1) * 144].to_vec()).collect();
                let ts: Vec<f32> = c.iter().flat_map(|&i| vf.cam_t[i * 3..i * 3 + 3].to_vec()).collect();
                let mut g = CalibratedViewsGuidance::new(&self.diff, bt, views, &ts)?;
                let total = frames.len();
                let done0 = ci * opts.chunk;
                let mut cb = refine_progress(progress, done0, b, total);
                let o = refine(&self.prior.denoiser, &self.schedule, &Tensor::from_vec(xs, (b, 144), dev)?, Some(&cond), &mut g, &cfg, Some(&mut cb))?;
                let xr: Vec<f32> = o.x0.flatten_all()?.to_vec1()?;
                let tr = g.translation()?;
                for (k, &i) in c.iter().enumerate() {
                    vf.x[i * 144..(i + 1) * 144].copy_from_slice(&xr[k * 144..(k + 1) * 144]);
                    vf.cam_t[i * 3..i * 3 + 3].copy_from_slice(&tr[k * 3..k * 3 + 3]);
                }
            }
            vf.fill_unseen();
        }
        let mut m = self.motion_single(input, &vf, &opts.betas)?;
        // Reference OpenCV frame -> world: p_w = R_0^T (p - t_0).
        let t0 = mat3_apply(&r0t, &w2c[0].1);
        m.transform_body(&r0t, &[-t0[0], -t0[1], -t0[2]], &j0);
        m.cameras = cams;
        Ok(m)
    }

    /// Summed reprojection error over the views of frame `i` for a pose in the reference frame.
    #[allow(clippy::too_many_arguments)]
    fn calibrated_error(&self, x: &[f32], transl: &[f32; 3], betas: &[f32], i: usize, input: &FitInput, rel: &[([f32; 9], [f32; 3])], out: &mut BodyOutput) -> Result<f32> {
        let rot = rotations(x)?;
        self.body.forward_joints(betas, &rot, transl, out)?;
        let mut total = 0.0f32;
        for (vi, (r, t)) in rel.iter().enumerate() {
            if let Some(kp) = &input.keypoints[i][vi] {
                let pts: Vec<f32> = out.keypoints.chunks_exact(3).flat_map(|p| {
                    let q = mat3_apply(r, &[p[0], p[1], p[2]]);
                    [q[0] + t[0], q[1] + t[1], q[2] + t[2]]
                }).collect();
                let e = reprojection_error(&pts, kp, &input.views[vi].camera);
                if e.is_finite() {
                    total += e;
                } else if confident(kp) > 0 {
                    total += 1e6;
                }
            }
        }
        Ok(total)
    }

    /// Uncalibrated views (ScoreHMR multi-view): per-view keypoint fits, then multi-view
    /// consistency refinement of the body pose; cameras placed relative to view 0 from the fit.
    fn fit_uncalibrated(&self, input: &FitInput, opts: &FitOptions, per_view: &mut [ViewFit], progress: &mut Option<ProgressFn>) -> Result<Motion> {
        let f = input.keypoints.len();
        let v = input.views.len();
        if per_view.iter().any(|p| !p.any_seen()) {
            return Err(Error::Input("fit: every uncalibrated view must see the person in at least one frame".into()));
        }
        if opts.refine {
            let cfg = RefineConfig::fitting();
            for vi in 0..v {
                self.refine_single(input, vi, &mut per_view[vi], &cfg, None, &opts.betas, progress)?;
            }
            // ScoreHMR multi-view consistency over the V views of each frame.
            let dev = self.device();
            let cfg = opts.refine_config.clone().unwrap_or_else(|| mode_refine_config(input));
            let pv: &[ViewFit] = per_view;
            let xs: Vec<f32> = (0..f).flat_map(|i| (0..v).flat_map(move |vi| pv[vi].x[i * 144..(i + 1) * 144].to_vec()).collect::<Vec<_>>()).collect();
            let kps: Vec<f32> = (0..f).flat_map(|i| (0..v).flat_map(move |vi| input.keypoints[i][vi].clone().unwrap_or_else(|| vec![0.0; 75])).collect::<Vec<_>>()).collect();
            let cams: Vec<Pinhole> = (0..f).flat_map(|_| input.views.iter().map(|w| w.camera)).collect();
            let cond = self.prior.condition(&kps, &cams)?;
            let mut g = MultiviewGuidance::new(v);
            let o = refine(&self.prior.denoiser, &self.schedule, &Tensor::from_vec(xs, (f * v, 144), dev)?, Some(&cond), &mut g, &cfg, None)?;
            let xr: Vec<f32> = o.x0.flatten_all()?.to_vec1()?;
            for i in 0..f {
                for vi in 0..v {
                    let k = i * v + vi;
                    per_view[vi].x[i * 144..(i + 1) * 144].copy_from_slice(&xr[k * 144..(k + 1) * 144]);
                }
            }
        }
        let betas = self.betas(&opts.betas)?;
        let j0 = self.body.rest_joints(&betas)?;
        let j0 = [j0[0], j0[1], j0[2]];
        let mut m = self.motion_single(input, &per_view[0], &opts.betas)?;
        m.transform_body(&CV_TO_GL, &[0.0; 3], &j0);
        let w0 = &input.views[0];
        m.cameras.push(MotionCamera::origin(&w0.name, w0.camera, w0.width, w0.height));
        // View v from view 0: R_v0 = G_v G_0^T; the pelvis p_v = R_v0 p_0 + t_v0.
        for vi in 1..v {
            let w = &input.views[vi];
            let mut cam = MotionCamera::origin(&w.name, w.camera, w.width, w.height);
            cam.rotation.clear();
            cam.position.clear();
            for i in 0..f {
                let g0 = rot6d_to_matrices_one(&per_view[0].x[i * 144..i * 144 + 6]);
                let gv = rot6d_to_matrices_one(&per_view[vi].x[i * 144..i * 144 + 6]);
                let r_v0 = mat3_mul(&gv, &mat3_transpose(&g0));
                let c0 = &per_view[0].cam_t[i * 3..i * 3 + 3];
                let cv = &per_view[vi].cam_t[i * 3..i * 3 + 3];
                let p0 = [j0[0] + c0[0], j0[1] + c0[1], j0[2] + c0[2]];
                let q = mat3_apply(&r_v0, &p0);
                let t_v0 = [j0[0] + cv[0] - q[0], j0[1] + cv[1] - q[1], j0[2] + cv[2] - q[2]];
                // World (view 0's GL frame) to view v's OpenCV frame: R = R_v0 CV_TO_GL, t = t_v0.
                let r_wc = mat3_mul(&r_v0, &CV_TO_GL);
                let rot = mat3_mul(&mat3_transpose(&r_wc), &CV_TO_GL);
                let c = mat3_apply(&mat3_transpose(&r_wc), &t_v0);
                cam.rotation.push(rot);
                cam.position.push([-c[0], -c[1], -c[2]]);
            }
            m.cameras.push(cam);
        }
        Ok(m)
    }

    /// `[F, V]` reprojection errors of a motion against the input (NaN where unseen).
    pub fn motion_reprojection(&self, m: &Motion, input: &FitInput) -> Result<Vec<f32>> {
        let f = m.num_frames();
        let v = input.views.len();
        let mut out = BodyOutput::default();
        m.forward(&self.body, 0..f, false, &mut out)?;
        let mut e = vec![f32::NAN; f * v];
        for i in 0..f {
            for vi in 0..v {
                let Some(kp) = &input.keypoints[i][vi] else { continue };
                let Some(cam) = m.cameras.iter().find(|c| c.name == input.views[vi].name) else { continue };
                let pts = cam.to_cv(i, &out.keypoints[i * 75..(i + 1) * 75]);
                e[i * v + vi] = reprojection_error(&pts, kp, &input.views[vi].camera);
            }
        }
        Ok(e)
    }

    fn init_reprojection(&self, input: &FitInput, per_view: &[ViewFit]) -> Result<Vec<f32>> {
        let f = input.keypoints.len();
        let v = input.views.len();
        let betas = self.betas(&[])?;
        let mut e = vec![f32::NAN; f * v];
        let mut out = BodyOutput::default();
        for (vi, vf) in per_view.iter().enumerate() {
            if vf.x_init.is_empty() || !vf.any_seen() {
                continue;
            }
            let rot = rotations(&vf.x_init)?;
            let bb: Vec<f32> = (0..f).flat_map(|_| betas.iter().copied()).collect();
            self.body.forward_joints(&bb, &rot, &vf.cam_init, &mut out)?;
            for i in 0..f {
                if let Some(kp) = &input.keypoints[i][vi] {
                    e[i * v + vi] = reprojection_error(&out.keypoints[i * 75..(i + 1) * 75], kp, &input.views[vi].camera);
                }
            }
        }
        Ok(e)
    }
}

/// The refinement's per-step callback for a chunk of `len` frames starting at frame `done0` of
/// `total`, reported as the fit's "refining" stage (frames x guided steps).
fn refine_progress<'p, 'f: 'p>(progress: &'p mut Option<ProgressFn<'f>>, done0: usize, len: usize, total: usize) -> impl FnMut(usize, usize) -> bool + use<'p, 'f> {
    move |s, n| match progress.as_deref_mut() {
        Some(p) => p(&Progress { stage: "refining", done: done0 * n + s * len, total: total * n }),
        None => true,
    }
}

fn rot6d_to_matrices_one(x: &[f32]) -> [f32; 9] {
    crate::geom::rot::rot6d_to_matrix(&<[f32; 6]>::try_from(&x[0..6]).expect("6 values"))
}

/// Per-frame estimates of one view.
#[derive(Clone, Debug)]
struct ViewFit {
    x: Vec<f32>,
    cam_t: Vec<f32>,
    seen: Vec<bool>,
    x_init: Vec<f32>,
    cam_init: Vec<f32>,
}

impl ViewFit {
    fn unseen(f: usize) -> Self {
        let rest: Vec<f32> = (0..f * NUM_JOINTS).flat_map(|_| [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).collect();
        Self { x: rest, cam_t: vec![0.0; f * 3], seen: vec![false; f], x_init: Vec::new(), cam_init: Vec::new() }
    }

    fn any_seen(&self) -> bool {
        self.seen.iter().any(|&s| s)
    }

    /// Frames the view does not see take the nearest seen frame's estimate.
    fn fill_unseen(&mut self) {
        let f = self.seen.len();
        let seen: Vec<usize> = (0..f).filter(|&i| self.seen[i]).collect();
        if seen.is_empty() {
            return;
        }
        for i in 0..f {
            if self.seen[i] {
                continue;
            }
            let j = *seen.iter().min_by_key(|&&j| (j as i64 - i as i64).abs()).unwrap();
            let xj = self.x[j * 144..(j + 1) * 144].to_vec();
            self.x[i * 144..(i + 1) * 144].copy_from_slice(&xj);
            let cj = [self.cam_t[3 * j], self.cam_t[3 * j + 1], self.cam_t[3 * j + 2]];
            self.cam_t[3 * i..3 * i + 3].copy_from_slice(&cj);
        }
    }
}
