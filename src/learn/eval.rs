//! Evaluation of fits on held-out mocap (the validation clips) seen by synthetic cameras with
//! detector-like keypoints, where the 3D answer is known.
//!
//! Settings:
//! - **single frame**: one random validation pose per sample, one random camera
//!   ([`super::synth`]); methods: (a) the initial estimate (best of N prior samples by
//!   reprojection), (b) ScoreHMR refinement of (a), (c) the SMPLify baseline
//!   ([`crate::fit::smplify`], SPIN's settings, GMM pose prior fit on the training clips) started
//!   from (a);
//! - **multi-view**: one pose seen by V calibrated cameras around the person; initial estimate and
//!   the calibrated multi-view fit ([`crate::fit::Fitter::fit`]);
//! - **video**: windows of consecutive validation frames (30 fps, the clip's root motion) seen by
//!   one static camera; per-frame fits vs fits with temporal guidance;
//! - a sweep over keypoint noise levels in the single-frame setting.
//!
//! Metrics (mm, 24 SMPL joints, pelvis-aligned): MPJPE, PA-MPJPE, PVE (vertices, the fit uses the
//! mean shape, the truth its sampled shape), acceleration error (mm / frame^2, video).

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::gmm::GmmPrior;
use super::synth::{observe, Sample, SynthConfig};
use crate::body::{BodyOutput, NUM_JOINTS};
use crate::diffusion::ddim::RefineConfig;
use crate::diffusion::Rng;
use crate::error::{Error, Result};
use crate::fit::smplify::{smplify, SmplifyConfig};
use crate::fit::{FitInput, FitOptions, FitView, Fitter};
use crate::geom::camera::{look_at, Pinhole};
use crate::geom::metrics::{accel_error, mpjpe, pa_mpjpe, pve, RootAlign};
use crate::geom::rot::{axis_angle_to_matrix, mat3_mul, matrices_to_axis_angles, rot6d_to_matrices};
use crate::guide::KeypointObs;
use crate::motion::{Motion, MotionCamera};

/// Accuracy of one method in one setting (mm).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Scores {
    pub mpjpe: f64,
    pub pa_mpjpe: f64,
    pub pve: f64,
    /// Acceleration error (video only), mm / frame^2.
    pub accel: Option<f64>,
    /// Mean reprojection error, pixels.
    pub reprojection_px: f64,
    /// Seconds per frame (all of the method's stages).
    pub seconds_per_frame: f64,
}

/// One row of the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub setting: String,
    pub method: String,
    pub frames: usize,
    pub scores: Scores,
}

/// Sizes of an evaluation run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalConfig {
    pub single_samples: usize,
    pub multiview_scenes: usize,
    pub views: usize,
    pub video_windows: usize,
    pub window: usize,
    /// Noise levels of the sweep (pixel sigma as a fraction of the person's 2D size).
    pub noise_levels: Vec<f32>,
    pub sweep_samples: usize,
    pub hypotheses: usize,
    pub seed: u64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self { single_samples: 128, multiview_scenes: 24, views: 4, video_windows: 6, window: 32, noise_levels: vec![0.0, 0.01, 0.02, 0.04], sweep_samples: 64, hypotheses: 16, seed: 7 }
    }
}

/// Scores of camera-frame predictions against the truth: `pred_x` `[B, 144]` with `pred_t`
/// `[B, 3]` in shapes `pred_betas` `[B, S]` (empty: the mean shape), truth from the samples.
pub fn score_samples(fitter: &Fitter, samples: &[Sample], pred_x: &[f32], pred_t: &[f32], pred_betas: &[f32], seconds: f64) -> Result<Scores> {
    let b = samples.len();
    let model = &fitter.body;
    let s = model.num_betas();
    let mut rot = vec![0.0f32; b * 216];
    rot6d_to_matrices(pred_x, &mut rot)?;
    let mut out = BodyOutput::default();
    let mean = vec![0.0; b * s];
    let pb = if pred_betas.is_empty() { &mean[..] } else { pred_betas };
    if pb.len() != b * s {
        return Err(Error::Input(format!("score_samples: {} shape values for {b} samples of {s}", pb.len())));
    }
    model.forward(pb, &rot, pred_t, &mut out)?;
    let (pv, pj, pk) = (out.vertices.clone(), out.joints.clone(), out.keypoints.clone());
    let gt_rot: Vec<f32> = samples.iter().flat_map(|x| x.rotations.iter().copied()).collect();
    let gt_b: Vec<f32> = samples.iter().flat_map(|x| x.betas.iter().copied()).collect();
    let gt_t: Vec<f32> = samples.iter().flat_map(|x| x.cam_t).collect();
    model.forward(&gt_b, &gt_rot, &gt_t, &mut out)?;
    let nv = model.num_verts();
    let m = mpjpe(&pj, &out.joints, NUM_JOINTS, &RootAlign::Joint(0))?.mean * 1000.0;
    let pa = pa_mpjpe(&pj, &out.joints, NUM_JOINTS)?.mean * 1000.0;
    let v = pve(&pv, &out.vertices, nv, &pj, &out.joints, NUM_JOINTS, &RootAlign::Joint(0))?.mean * 1000.0;
    let mut rep = 0.0;
    for (i, smp) in samples.iter().enumerate() {
        let e = crate::fit::reprojection_error(&pk[i * 75..(i + 1) * 75], &smp.keypoints, &smp.camera);
        rep += if e.is_finite() { e as f64 } else { 0.0 };
    }
    Ok(Scores { mpjpe: m, pa_mpjpe: pa, pve: v, accel: None, reprojection_px: rep / b as f64, seconds_per_frame: seconds / b as f64 })
}

/// The single-frame setting on `samples`: initial estimate, refinement, SMPLify from the same
/// initial estimate.
pub fn single_frame(fitter: &Fitter, gmm: &GmmPrior, samples: &[Sample], hypotheses: usize, seed: u64, label: &str) -> Result<Vec<Row>> {
    let b = samples.len();
    let kp: Vec<f32> = samples.iter().flat_map(|s| s.keypoints.iter().copied()).collect();
    let cams: Vec<Pinhole> = samples.iter().map(|s| s.camera).collect();
    let sizes: Vec<(u32, u32)> = samples.iter().map(|s| s.image_size).collect();
    let t = std::time::Instant::now();
    let mut init = crate::fit::Init { x: Vec::new(), cam_t: Vec::new(), reprojection_px: Vec::new() };
    for (c, chunk) in (0..b).collect::<Vec<_>>().chunks(64).enumerate() {
        let k: Vec<f32> = chunk.iter().flat_map(|&i| kp[i * 75..(i + 1) * 75].to_vec()).collect();
        let cm: Vec<Pinhole> = chunk.iter().map(|&i| cams[i]).collect();
        let r = fitter.initialize(&k, &cm, &[], hypotheses, 40, seed ^ c as u64)?;
        init.x.extend(r.x);
        init.cam_t.extend(r.cam_t);
        init.reprojection_px.extend(r.reprojection_px);
    }
    let t_init = t.elapsed().as_secs_f64();
    let mut rows = vec![Row { setting: label.into(), method: "initial estimate (best of prior samples)".into(), frames: b, scores: score_samples(fitter, samples, &init.x, &init.cam_t, &[], t_init)? }];
    for (cfg, method) in [
        (RefineConfig::keypoints(), "ScoreHMR refinement (ScoreHMR's settings)"),
        (RefineConfig::fitting(), "refinement, rigfit's default (guidance x5, 20 iterations)"),
    ] {
        let t = std::time::Instant::now();
        let (xr, tr) = fitter.refine_view(&init.x, &init.cam_t, &kp, &cams, &sizes, &[], &cfg, None, None)?;
        let secs = t.elapsed().as_secs_f64() + t_init;
        rows.push(Row { setting: label.into(), method: method.into(), frames: b, scores: score_samples(fitter, samples, &xr, &tr, &[], secs)? });
    }
    let dev = fitter.device();
    let obs = KeypointObs::new(&kp, &cams, &sizes, dev, DType::F32)?;
    let x0 = Tensor::from_slice(&init.x, (b, 144), dev)?;
    let betas = Tensor::zeros((b, fitter.body.num_betas()), DType::F32, dev)?;
    for (cfg, method) in [
        (SmplifyConfig::default(), "SMPLify baseline (from the initial estimate, SPIN's 224 px crops)"),
        (SmplifyConfig { crop_px: None, ..SmplifyConfig::default() }, "SMPLify baseline (from the initial estimate, image pixels)"),
    ] {
        let t = std::time::Instant::now();
        let so = smplify(&fitter.diff, &obs, gmm, &x0, &betas, &init.cam_t, &cfg)?;
        let secs = t.elapsed().as_secs_f64() + t_init;
        let xs: Vec<f32> = so.x6d.flatten_all()?.to_vec1()?;
        // Scored in the mean shape like the other methods (SMPLify's own shape fit changes
        // PA-MPJPE by under 1 mm).
        rows.push(Row { setting: label.into(), method: method.into(), frames: b, scores: score_samples(fitter, samples, &xs, &so.cam_t, &[], secs)? });
    }
    Ok(rows)
}

/// A random camera around the point `target`: distance 3-7 m, height 0.2-2.2 m, field of view
/// 40-75 degrees, 1280x720 or 1920x1080.
fn random_camera(name: &str, target: [f32; 3], azimuth: f32, rng: &mut Rng) -> Result<MotionCamera> {
    let d = rng.uniform_in(3.0, 7.0) as f32;
    let h = rng.uniform_in(0.2, 2.2) as f32;
    let pos = [target[0] + d * azimuth.sin(), h, target[2] + d * azimuth.cos()];
    let (w, hh) = if rng.uniform() < 0.5 { (1280, 720) } else { (1920, 1080) };
    let fov = rng.uniform_in(40.0, 75.0) as f32;
    Ok(MotionCamera::fixed(name, Pinhole::from_fov(fov, w as f32, hh as f32)?, w, hh, look_at(pos, target), pos))
}

/// Keypoints of `m` seen by each of its cameras with the detector faults of `cfg`.
fn observe_motion(fitter: &Fitter, m: &Motion, cfg: &SynthConfig, rng: &mut Rng) -> Result<Vec<Vec<Option<Vec<f32>>>>> {
    let mut out = BodyOutput::default();
    m.forward(&fitter.body, 0..m.num_frames(), false, &mut out)?;
    Ok((0..m.num_frames())
        .map(|f| {
            m.cameras
                .iter()
                .map(|c| {
                    let pts = c.to_cv(f, &out.keypoints[f * 75..(f + 1) * 75]);
                    Some(observe(&pts, &c.intrinsics.into(), (c.width, c.height), cfg, rng))
                })
                .collect()
        })
        .collect())
}

fn views_of(m: &Motion, calibrated: bool) -> Vec<FitView> {
    m.cameras.iter().map(|c| FitView { name: c.name.clone(), camera: c.intrinsics.into(), width: c.width, height: c.height, pose: calibrated.then(|| c.pose(0)) }).collect()
}

/// Scores of a fitted world motion against the truth (joints and vertices, world frame,
/// pelvis-aligned).
fn score_motion(fitter: &Fitter, fit: &Motion, truth: &Motion, seconds: f64, reprojection: f64) -> Result<Scores> {
    let f = fit.num_frames();
    let mut a = BodyOutput::default();
    let mut b = BodyOutput::default();
    fit.forward(&fitter.body, 0..f, true, &mut a)?;
    truth.forward(&fitter.body, 0..f, true, &mut b)?;
    let m = mpjpe(&a.joints, &b.joints, NUM_JOINTS, &RootAlign::Joint(0))?.mean * 1000.0;
    let pa = pa_mpjpe(&a.joints, &b.joints, NUM_JOINTS)?.mean * 1000.0;
    let v = pve(&a.vertices, &b.vertices, fitter.body.num_verts(), &a.joints, &b.joints, NUM_JOINTS, &RootAlign::Joint(0))?.mean * 1000.0;
    let accel = if f >= 3 { Some(accel_error(&a.joints, &b.joints, NUM_JOINTS, &RootAlign::Joint(0), None)?.mean * 1000.0) } else { None };
    Ok(Scores { mpjpe: m, pa_mpjpe: pa, pve: v, accel, reprojection_px: reprojection, seconds_per_frame: seconds / f as f64 })
}

/// Accumulates scores over several fits (frame-weighted means).
#[derive(Default)]
struct Acc {
    n: usize,
    s: Scores,
    accel_n: usize,
}

impl Acc {
    fn add(&mut self, s: &Scores, frames: usize) {
        let w = frames as f64;
        self.s.mpjpe += s.mpjpe * w;
        self.s.pa_mpjpe += s.pa_mpjpe * w;
        self.s.pve += s.pve * w;
        self.s.reprojection_px += s.reprojection_px * w;
        self.s.seconds_per_frame += s.seconds_per_frame * w;
        if let Some(a) = s.accel {
            *self.s.accel.get_or_insert(0.0) += a * w;
            self.accel_n += frames;
        }
        self.n += frames;
    }
    fn row(&self, setting: &str, method: &str) -> Row {
        let w = self.n.max(1) as f64;
        let s = &self.s;
        Row {
            setting: setting.into(),
            method: method.into(),
            frames: self.n,
            scores: Scores {
                mpjpe: s.mpjpe / w,
                pa_mpjpe: s.pa_mpjpe / w,
                pve: s.pve / w,
                accel: s.accel.map(|a| a / self.accel_n.max(1) as f64),
                reprojection_px: s.reprojection_px / w,
                seconds_per_frame: s.seconds_per_frame / w,
            },
        }
    }
}

/// A world-space motion of one pose (or a window of a clip) with random heading and shape.
fn world_motion(rot: &[f32], transl: &[[f32; 3]], rng: &mut Rng, num_betas: usize) -> Motion {
    let f = transl.len();
    let mut m = Motion::rest(f, num_betas, 30.0);
    let heading = axis_angle_to_matrix(&[0.0, rng.uniform_in(-3.14159, 3.14159) as f32, 0.0]);
    for b in m.betas.iter_mut() {
        *b = rng.normal() as f32 * 0.8;
    }
    let t0 = transl[0];
    for i in 0..f {
        for j in 0..NUM_JOINTS {
            let r: [f32; 9] = rot[(i * 24 + j) * 9..(i * 24 + j) * 9 + 9].try_into().unwrap();
            m.rotations[i * 24 + j] = if j == 0 { mat3_mul(&heading, &r) } else { r };
        }
        let d = [transl[i][0] - t0[0], transl[i][1], transl[i][2] - t0[2]];
        let p = crate::geom::rot::mat3_apply(&heading, &d);
        m.translations[i] = [p[0], p[1] - 0.9, p[2]];
    }
    m
}

/// The multi-view setting: one validation pose per scene seen by `views` calibrated cameras.
pub fn multiview(fitter: &Fitter, poses: &[f32], cfg: &EvalConfig) -> Result<Vec<Row>> {
    let count = poses.len() / 216;
    let mut rng = Rng::new(cfg.seed ^ 0x3_7711);
    let synth = SynthConfig::default();
    let (mut init, mut fit) = (Acc::default(), Acc::default());
    for _ in 0..cfg.multiview_scenes {
        let i = rng.below(count as u64) as usize;
        let mut m = world_motion(&poses[i * 216..(i + 1) * 216], &[[0.0, 0.0, 0.0]], &mut rng, fitter.body.num_betas());
        let base = rng.uniform_in(0.0, 6.283) as f32;
        m.cameras = (0..cfg.views).map(|v| random_camera(&format!("view_{v}"), [0.0, -0.3, 0.0], base + v as f32 * 6.283 / cfg.views as f32 + rng.uniform_in(-0.3, 0.3) as f32, &mut rng)).collect::<Result<_>>()?;
        let input = FitInput { keypoints: observe_motion(fitter, &m, &synth, &mut rng)?, views: views_of(&m, true), fps: 30.0 };
        let t = std::time::Instant::now();
        let r0 = fitter.fit(&input, &FitOptions { refine: false, hypotheses: cfg.hypotheses, seed: rng.next_u64(), ..FitOptions::default() }, None)?;
        let t0 = t.elapsed().as_secs_f64();
        init.add(&score_motion(fitter, &r0.motion, &m, t0, crate::fit::mean_finite(&r0.reprojection_px) as f64)?, 1);
        let t = std::time::Instant::now();
        let r1 = fitter.fit(&input, &FitOptions { hypotheses: cfg.hypotheses, seed: rng.next_u64(), ..FitOptions::default() }, None)?;
        fit.add(&score_motion(fitter, &r1.motion, &m, t.elapsed().as_secs_f64(), crate::fit::mean_finite(&r1.reprojection_px) as f64)?, 1);
    }
    let label = format!("multi-view ({} calibrated views)", cfg.views);
    Ok(vec![init.row(&label, "initial estimate (best view's sample)"), fit.row(&label, "refinement, all views (rigfit's default)")])
}

/// The video setting: windows of consecutive validation frames seen by one static camera.
pub fn video(fitter: &Fitter, clips: &[super::mocap::Clip], cfg: &EvalConfig) -> Result<Vec<Row>> {
    let mut rng = Rng::new(cfg.seed ^ 0x71DE0);
    let synth = SynthConfig::default();
    let long: Vec<&super::mocap::Clip> = clips.iter().filter(|c| c.num_frames() > cfg.window).collect();
    if long.is_empty() {
        return Err(Error::Input(format!("evaluation: no validation clip longer than {} frames", cfg.window)));
    }
    let (mut per, mut tmp) = (Acc::default(), Acc::default());
    for _ in 0..cfg.video_windows {
        let c = long[rng.below(long.len() as u64) as usize];
        let s = rng.below((c.num_frames() - cfg.window) as u64) as usize;
        let rot: Vec<f32> = (s..s + cfg.window).flat_map(|f| c.pose(f).to_vec()).collect();
        let mut m = world_motion(&rot, &c.translations[s..s + cfg.window], &mut rng, fitter.body.num_betas());
        m.cameras = vec![random_camera("camera", [0.0, -0.3, 0.0], rng.uniform_in(0.0, 6.283) as f32, &mut rng)?];
        let input = FitInput { keypoints: observe_motion(fitter, &m, &synth, &mut rng)?, views: views_of(&m, false), fps: 30.0 };
        let seed = rng.next_u64();
        for (temporal, acc) in [(false, &mut per), (true, &mut tmp)] {
            let t = std::time::Instant::now();
            let r = fitter.fit(&input, &FitOptions { temporal, hypotheses: cfg.hypotheses, seed, ..FitOptions::default() }, None)?;
            // The fit's world is its camera's frame: compare in the truth's camera frame.
            let fit = to_truth_world(&r.motion, &m, fitter)?;
            acc.add(&score_motion(fitter, &fit, &m, t.elapsed().as_secs_f64(), crate::fit::mean_finite(&r.reprojection_px) as f64)?, cfg.window);
        }
    }
    let label = format!("video ({}-frame windows, 30 fps)", cfg.window);
    Ok(vec![per.row(&label, "per-frame refinement"), tmp.row(&label, "refinement with temporal guidance")])
}

/// Moves a single-camera fit (world = its camera's frame) into the truth's world through the
/// truth's camera pose.
fn to_truth_world(fit: &Motion, truth: &Motion, fitter: &Fitter) -> Result<Motion> {
    let (r, c) = truth.cameras[0].pose(0);
    let mut m = fit.clone();
    let j0 = fitter.body.rest_joints(&m.betas)?;
    m.transform_body(&r, &c, &[j0[0], j0[1], j0[2]]);
    Ok(m)
}

/// Fits SMPLify's GMM (8 components) on body poses `[N * 216]` (joints 1..23 as axis-angle).
pub fn fit_gmm(poses: &[f32], max_samples: usize, seed: u64) -> Result<GmmPrior> {
    let n = poses.len() / 216;
    let step = (n / max_samples.max(1)).max(1);
    let mut aa = vec![0.0f32; 72];
    let mut samples = Vec::new();
    for i in (0..n).step_by(step) {
        matrices_to_axis_angles(&poses[i * 216..(i + 1) * 216], &mut aa)?;
        samples.extend(aa[3..].iter().map(|&x| x as f64));
    }
    GmmPrior::fit(&samples, 8, 30, seed)
}

/// Everything: single frame, noise sweep, multi-view, video. `progress(setting)` before each.
pub fn evaluate(fitter: &Fitter, train_poses: &[f32], val_poses: &[f32], val_clips: &[super::mocap::Clip], cfg: &EvalConfig, progress: &mut dyn FnMut(&str)) -> Result<Vec<Row>> {
    let gmm = fit_gmm(train_poses, 20_000, cfg.seed)?;
    let mut rows = Vec::new();
    progress("single frame");
    let samples = super::tune::domain_samples(&fitter.body, val_poses, cfg.single_samples, &SynthConfig::default(), cfg.seed)?;
    rows.extend(single_frame(fitter, &gmm, &samples, cfg.hypotheses, cfg.seed, "single frame")?);
    for &nl in &cfg.noise_levels {
        progress(&format!("noise {nl}"));
        let sc = SynthConfig { noise_frac: (nl, nl), ..SynthConfig::default() };
        let samples = super::tune::domain_samples(&fitter.body, val_poses, cfg.sweep_samples, &sc, cfg.seed ^ 0x5EEE)?;
        rows.extend(single_frame(fitter, &gmm, &samples, cfg.hypotheses, cfg.seed, &format!("single frame, noise {:.1}% of size", nl * 100.0))?);
    }
    progress("multi-view");
    rows.extend(multiview(fitter, val_poses, cfg)?);
    progress("video");
    rows.extend(video(fitter, val_clips, cfg)?);
    Ok(rows)
}

/// The report as a markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from("| setting | method | frames | MPJPE | PA-MPJPE | PVE | accel | reproj. px | s / frame |\n|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let c = &r.scores;
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {:.1} | {:.3} |\n",
            r.setting,
            r.method,
            r.frames,
            c.mpjpe,
            c.pa_mpjpe,
            c.pve,
            c.accel.map(|a| format!("{a:.1}")).unwrap_or_else(|| "-".into()),
            c.reprojection_px,
            c.seconds_per_frame
        ));
    }
    s
}
