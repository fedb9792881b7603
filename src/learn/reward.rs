//! DrPose-style direct reward fine-tuning of the prior from 2D keypoints alone
//! (reference/adhmr_drpose.md part C: C2 reward, C3 algorithm, C5 failure modes).
//!
//! - [`pose_score`] ("PoseScore-SMPL", C2): a differentiable reward of generated poses against
//!   observed 2D keypoints: 6D -> rotations -> BODY_25 points of the body (mean shape unless
//!   given) -> the camera translation in closed form ([`closed_form_translation`]) -> projection
//!   -> minus ScoreHMR's keypoint-fitting loss ([`crate::guide::keypoint_loss`]: GMoF sigma
//!   100 px, confidence squared, `(1000 / max(W, H))^2`). Higher is better, 0 is a perfect fit.
//!   Also an evaluation measure (it needs no 3D).
//! - [`train_reward`] (C3, DRaFT-K): deterministic DDIM from noise with the condition of the
//!   2D keypoints, gradients through the last K steps, loss
//!   `-reward_scale * mean r(x0) + w_kl * mean_steps mean_batch ||eps_theta - sg(eps_ref)||^2`
//!   with the frozen base as the reference, several noise seeds per observation, gradient
//!   clipping and the EMA of [`Tuner`].
//! - [`failure_modes`] (C5): depth flips, camera (translation) errors and errors of joints whose
//!   keypoints are missing, measured on held-out samples with 3D truth.
//!
//! Training sees only [`Obs2d`]: keypoints, camera and image size. The 3D of the training clips
//! (pose, joints) is dropped when the observations are built ([`observations_2d`]), so the
//! fine-tuning loop cannot read it.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::synth::{Sample, SynthConfig};
use super::tune::{domain_samples, lr_schedule, markdown, DomainReport, Domains, EvalSets, Tuner};
use crate::body::diff::DiffBody;
use crate::body::{BodyModel, NUM_BODY25};
use crate::diffusion::prior::{condition_tensor, Prior};
use crate::diffusion::{timestep_full, Rng, Schedule};
use crate::error::{Error, Result};
use crate::fit::Fitter;
use crate::geom::align::procrustes;
use crate::geom::camera::Pinhole;
use crate::guide::{keypoint_loss, KeypointObs};

/// Smallest depth (m) a projected point may have: points closer to (or behind) the camera are
/// projected as if at this depth, so the reward stays finite (GMoF then caps their error).
const MIN_DEPTH: f64 = 0.05;

/// Closed-form camera translation `[B, 3]` that places body-frame BODY_25 points `points`
/// `[B, 25, 3]` onto the observed keypoints of `obs` (perspective, each sample's intrinsics),
/// and per sample whether the solve was well posed.
///
/// SPIN's `estimate_translation` (as [`crate::geom::camera::solve_translation`]): for each
/// confident keypoint `(u - cx)(Z + tz) = fx (X + tx)` and `(v - cy)(Z + tz) = fy (Y + ty)`,
/// linear in `t`; weighted least squares with weights `conf^2` (the reward's own weights). The
/// normal matrix `A` `[3, 3]` depends only on the observation (keypoints, confidences,
/// intrinsics), so it is built and inverted per sample in f64 on the CPU and uploaded; the
/// right-hand side is linear in the points and built with tensor ops. `t = A^-1 b(points)` is
/// therefore differentiated: the gradient of the reward is its total derivative through the
/// best camera, and the camera is no free variable the model could use to explain 2D error
/// (the "camera shortcut" of C5).
///
/// Samples with fewer than two confident keypoints (a singular `A`) get `t = (0, 0, 10)` and
/// `valid = false`.
pub fn closed_form_translation(points: &Tensor, obs: &KeypointObs) -> Result<(Tensor, Vec<bool>)> {
    let b = obs.batch();
    if points.dims() != [b, NUM_BODY25, 3] {
        return Err(Error::Input(format!("closed_form_translation: points {:?}, expected [B={b}, 25, 3]", points.dims())));
    }
    let (dev, dt) = (points.device().clone(), points.dtype());
    let kp: Vec<f64> = obs.keypoints.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let conf: Vec<f64> = obs.conf.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let focal: Vec<f64> = obs.focal.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let principal: Vec<f64> = obs.principal.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let cam = |v: &[f64], i: usize, d: usize| if v.len() == 2 { v[d] } else { v[2 * i + d] };
    let n = NUM_BODY25;
    let (mut u, mut v, mut w) = (vec![0.0f64; b * n], vec![0.0f64; b * n], vec![0.0f64; b * n]);
    let mut ainv = vec![0.0f64; b * 9];
    let mut fallback = vec![0.0f64; b * 3];
    let mut valid = vec![false; b];
    let mut fxy = vec![0.0f64; b * 2];
    for i in 0..b {
        let (fx, fy) = (cam(&focal, i, 0), cam(&focal, i, 1));
        let (cx, cy) = (cam(&principal, i, 0), cam(&principal, i, 1));
        fxy[2 * i] = fx;
        fxy[2 * i + 1] = fy;
        let (mut sw, mut swu, mut swv, mut swuv) = (0.0, 0.0, 0.0, 0.0);
        let mut visible = 0;
        for j in 0..n {
            let q = i * n + j;
            let c = conf[q];
            if !(c > 0.0) {
                continue;
            }
            visible += 1;
            u[q] = kp[2 * q] - cx;
            v[q] = kp[2 * q + 1] - cy;
            w[q] = c * c;
            sw += w[q];
            swu += w[q] * u[q];
            swv += w[q] * v[q];
            swuv += w[q] * (u[q] * u[q] + v[q] * v[q]);
        }
        // A = sum_j w_j [fx^2, 0, -fx u; 0, fy^2, -fy v; -fx u, -fy v, u^2 + v^2].
        let a = [[fx * fx * sw, 0.0, -fx * swu], [0.0, fy * fy * sw, -fy * swv], [-fx * swu, -fy * swv, swuv]];
        let inv = if visible >= 2 { inverse3(&a) } else { None };
        match inv {
            Some(m) => {
                valid[i] = true;
                for r in 0..3 {
                    for c in 0..3 {
                        ainv[i * 9 + r * 3 + c] = m[r][c];
                    }
                }
            }
            None => {
                for j in 0..n {
                    w[i * n + j] = 0.0;
                }
                fallback[i * 3 + 2] = 10.0;
            }
        }
    }
    let up = |x: Vec<f64>, s: &[usize]| -> Result<Tensor> { Ok(Tensor::from_vec(x, s, &dev)?.to_dtype(dt)?) };
    let (u, v, w) = (up(u, &[b, n])?, up(v, &[b, n])?, up(w, &[b, n])?);
    let fxy = up(fxy, &[b, 2])?;
    let (fx, fy) = (fxy.narrow(1, 0, 1)?, fxy.narrow(1, 1, 1)?); // [B, 1]
    let x = points.narrow(2, 0, 1)?.squeeze(2)?;
    let y = points.narrow(2, 1, 1)?.squeeze(2)?;
    let z = points.narrow(2, 2, 1)?.squeeze(2)?; // [B, 25]
    // Residual right-hand sides e_u = u Z - fx X, e_v = v Z - fy Y.
    let eu = ((&u * &z)? - x.broadcast_mul(&fx)?)?;
    let ev = ((&v * &z)? - y.broadcast_mul(&fy)?)?;
    let r0 = (&w * &eu)?.sum_keepdim(1)?.broadcast_mul(&fx)?;
    let r1 = (&w * &ev)?.sum_keepdim(1)?.broadcast_mul(&fy)?;
    let r2 = ((&w * ((&u * &eu)? + (&v * &ev)?)?)?.sum_keepdim(1)? * -1.0)?;
    let rhs = Tensor::cat(&[&r0, &r1, &r2], 1)?.unsqueeze(2)?; // [B, 3, 1]
    let t = up(ainv, &[b, 3, 3])?.matmul(&rhs)?.squeeze(2)?;
    let t = (t + up(fallback, &[b, 3])?)?;
    Ok((t, valid))
}

/// Inverse of a 3x3 matrix by cofactors; None when it is singular relative to its scale.
fn inverse3(a: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let c = |r0: usize, r1: usize, c0: usize, c1: usize| a[r0][c0] * a[r1][c1] - a[r0][c1] * a[r1][c0];
    let cof = [
        [c(1, 2, 1, 2), -c(1, 2, 0, 2), c(1, 2, 0, 1)],
        [-c(0, 2, 1, 2), c(0, 2, 0, 2), -c(0, 2, 0, 1)],
        [c(0, 1, 1, 2), -c(0, 1, 0, 2), c(0, 1, 0, 1)],
    ];
    let det = a[0][0] * cof[0][0] + a[0][1] * cof[0][1] + a[0][2] * cof[0][2];
    let scale = a[0][0].abs() * a[1][1].abs() * a[2][2].abs();
    if !(det.is_finite() && scale > 0.0 && det.abs() > 1e-12 * scale) {
        return None;
    }
    // inverse = adjugate / det, adjugate = cofactor transposed.
    Some(std::array::from_fn(|r| std::array::from_fn(|k| cof[k][r] / det)))
}

/// Perspective projection `[B, N, 2]` of camera-frame points `[B, N, 3]` with each sample's
/// intrinsics (`focal`, `principal` `[B, 2]`), the depth clamped to [`MIN_DEPTH`].
fn project_clamped(p: &Tensor, focal: &Tensor, principal: &Tensor) -> Result<Tensor> {
    let xy = p.narrow(2, 0, 2)?;
    let z = p.narrow(2, 2, 1)?.maximum(MIN_DEPTH)?;
    Ok(xy.broadcast_div(&z)?.broadcast_mul(&focal.unsqueeze(1)?)?.broadcast_add(&principal.unsqueeze(1)?)?)
}

/// What [`pose_score_parts`] computes.
pub struct PoseScore {
    /// `[B]` reward (higher is better; 0 = a perfect fit); 0 for invalid samples.
    pub score: Tensor,
    /// `[B, 3]` closed-form camera translations.
    pub cam_t: Tensor,
    /// `[B, 25, 2]` projected keypoints, pixels.
    pub projected: Tensor,
    /// Per sample: whether the camera solve was well posed (at least two confident keypoints).
    pub valid: Vec<bool>,
}

/// PoseScore of poses `x6d` `[B, 144]` (6D, ScoreHMR layout) with shapes `betas` `[B, S]`
/// against `obs`: `-keypoint_loss` with the closed-form camera translation. Differentiable in
/// `x6d`. See [`pose_score_parts`].
pub fn pose_score(diff: &DiffBody, x6d: &Tensor, betas: &Tensor, obs: &KeypointObs) -> Result<Tensor> {
    Ok(pose_score_parts(diff, x6d, betas, obs)?.score)
}

/// [`pose_score`] with the camera translations and projections it used.
pub fn pose_score_parts(diff: &DiffBody, x6d: &Tensor, betas: &Tensor, obs: &KeypointObs) -> Result<PoseScore> {
    let b = obs.batch();
    if x6d.dims() != [b, 144] || betas.dim(0)? != b {
        return Err(Error::Input(format!("pose_score: x {:?} and betas {:?} for {b} observations, expected [B, 144] and [B, S]", x6d.dims(), betas.dims())));
    }
    let zero = Tensor::zeros((b, 3), x6d.dtype(), x6d.device())?;
    let out = diff.forward_joints_6d(betas, x6d, &zero)?;
    let (t, valid) = closed_form_translation(&out.keypoints, obs)?;
    let p = out.keypoints.broadcast_add(&t.unsqueeze(1)?)?;
    let projected = project_clamped(&p, &obs.focal, &obs.principal)?;
    let loss = keypoint_loss(&projected, obs)?;
    let mask: Vec<f32> = valid.iter().map(|&v| if v { -1.0 } else { 0.0 }).collect();
    let score = (loss * Tensor::from_vec(mask, b, x6d.device())?.to_dtype(x6d.dtype())?)?;
    Ok(PoseScore { score, cam_t: t, projected, valid })
}

/// One 2D-only observation: all that reward fine-tuning may see of a training sample.
#[derive(Clone, Debug)]
pub struct Obs2d {
    /// BODY_25 keypoints `[25, 3]`: x px, y px, confidence (0 = missing).
    pub keypoints: Vec<f32>,
    pub camera: Pinhole,
    pub image_size: (u32, u32),
}

impl Obs2d {
    /// The observation of a synthetic sample, without its 3D (pose, rotations, joints, shape,
    /// translation).
    pub fn from_sample(s: &Sample) -> Self {
        Self { keypoints: s.keypoints.clone(), camera: s.camera, image_size: s.image_size }
    }
}

/// `n` 2D-only observations of poses `[N * 216]` (detector faults of `cfg`, fixed by `seed`).
pub fn observations_2d(body: &BodyModel, poses: &[f32], n: usize, cfg: &SynthConfig, seed: u64) -> Result<Vec<Obs2d>> {
    Ok(domain_samples(body, poses, n, cfg, seed)?.iter().map(Obs2d::from_sample).collect())
}

/// Settings of a reward fine-tuning run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardConfig {
    pub steps: usize,
    /// Observations per step.
    pub batch: usize,
    /// Noise seeds (hypotheses) per observation: the reward acts on the distribution, not the
    /// mode (C3).
    pub seeds: usize,
    /// DDIM step size from t = 999 (40: 25 network evaluations, what the fitter samples with).
    pub ddim_step: u32,
    /// Steps (from the end of the chain) that carry gradients; 0 = the whole chain. DRaFT-K.
    pub k: usize,
    /// Weight of the KL surrogate `mean ||eps_theta - eps_ref||^2` (sum over the 144 dims).
    pub w_kl: f64,
    /// The reward enters the loss as `reward_scale * r` (r is O(1e3) for typical fits).
    pub reward_scale: f64,
    /// Peak Adam learning rate (C3: 1e-5 to 5e-5; warm-up, cosine decay to `lr * final_lr_frac`).
    pub lr: f64,
    pub warmup: usize,
    pub final_lr_frac: f64,
    /// Adam betas (ScoreHMR trainer.py: 0.9, 0.99).
    pub betas: (f64, f64),
    /// Gradient-norm clip (C3: about 1.0).
    pub clip: f64,
    pub seed: u64,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self {
            steps: 200,
            batch: 16,
            seeds: 4,
            ddim_step: 40,
            k: 1,
            w_kl: 1.0,
            reward_scale: 1e-3,
            lr: 2e-5,
            warmup: 10,
            final_lr_frac: 0.1,
            betas: (0.9, 0.99),
            clip: 1.0,
            seed: 0,
        }
    }
}

/// One logged optimiser step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RewardStep {
    pub step: usize,
    /// Mean reward of the step's hypotheses (before the update).
    pub reward: f64,
    /// KL surrogate (mean over differentiated steps and samples of `||eps - eps_ref||^2`).
    pub kl: f64,
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub seconds: f64,
}

/// What a run reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RewardReport {
    pub config: RewardConfig,
    pub train_observations: usize,
    pub seconds: f64,
    pub seconds_per_step: f64,
    pub log: Vec<RewardStep>,
}

/// The DDIM timesteps of a chain from t = T - 1 in steps of `step`: `[999, 959, ..., 39]` for
/// step 40 (each evaluated once; the last step goes to the x0 estimate).
pub fn chain_timesteps(sched: &Schedule, step: u32) -> Result<Vec<u32>> {
    if step == 0 {
        return Err(Error::Input("DDIM step must be positive".into()));
    }
    let mut ts = Vec::new();
    let mut t = (sched.num_timesteps() - 1) as u32;
    loop {
        ts.push(t);
        if t <= step {
            return Ok(ts);
        }
        t -= step;
    }
}

/// A DDIM chain from `noise` `[B, 144]` under `policy` with condition features `feats`
/// `[B, 78]`; the last `k` steps (0 = all) carry gradients into the policy's weights. Returns
/// the x0 estimate `[B, 144]` and the KL surrogate (a scalar: mean over the differentiated
/// steps of the batch mean of `||eps_policy(x_t) - eps_ref(x_t)||^2`, the reference `ref_prior`
/// evaluated on the policy's own trajectory, stop-gradient). x0 estimates are clipped to
/// [-1, 1] and eps re-derived, as [`crate::diffusion::ddim::ddim_sample`] does.
pub fn differentiable_chain(policy: &Prior, ref_prior: &Prior, sched: &Schedule, feats: &Tensor, noise: &Tensor, step: u32, k: usize) -> Result<(Tensor, Tensor)> {
    let b = noise.dim(0)?;
    let dev = noise.device().clone();
    let ts = chain_timesteps(sched, step)?;
    let n = ts.len();
    let k = if k == 0 { n } else { k.min(n) };
    let c = policy.encode(feats)?;
    let c_ref = ref_prior.encode(feats)?.detach();
    let mut x = noise.clone();
    // The prefix without gradients, on the fast path bound to the current weights.
    if n > k {
        let cd = c.detach();
        let net = policy.denoiser.condition(Some(&cd), b)?;
        for i in 0..n - k {
            let tt = timestep_full(ts[i], b, &dev)?;
            let eps = net.forward(&x, ts[i])?.detach();
            let x0 = sched.x0_from_eps(&x, &tt, &eps)?.clamp(-1.0, 1.0)?;
            let eps = sched.eps_from_x0(&x, &tt, &x0)?;
            x = sched.ddim_step(&x0, &eps, &timestep_full(ts[i + 1], b, &dev)?)?.detach();
        }
    }
    let mut kl = Tensor::zeros((), noise.dtype(), &dev)?;
    for i in n - k..n {
        let tt = timestep_full(ts[i], b, &dev)?;
        let eps = policy.denoiser.forward(&x, &tt, Some(&c))?;
        let eps_ref = ref_prior.denoiser.forward(&x.detach(), &tt, Some(&c_ref))?.detach();
        kl = (kl + (&eps - &eps_ref)?.sqr()?.sum(1)?.mean_all()?)?;
        let x0 = sched.x0_from_eps(&x, &tt, &eps)?.clamp(-1.0, 1.0)?;
        if i + 1 == n {
            return Ok((x0, (kl / k as f64)?));
        }
        let eps = sched.eps_from_x0(&x, &tt, &x0)?;
        x = sched.ddim_step(&x0, &eps, &timestep_full(ts[i + 1], b, &dev)?)?;
    }
    unreachable!("the chain has at least one step")
}

/// Batch tensors of observations repeated `seeds` times each (observation-major): condition
/// features `[B * seeds, 78]` and the reward's observation.
fn batch_of(obs: &[&Obs2d], seeds: usize, dev: &Device) -> Result<(Tensor, KeypointObs)> {
    let kp: Vec<f32> = obs.iter().flat_map(|o| (0..seeds).flat_map(move |_| o.keypoints.iter().copied())).collect();
    let cams: Vec<Pinhole> = obs.iter().flat_map(|o| std::iter::repeat(o.camera).take(seeds)).collect();
    let sizes: Vec<(u32, u32)> = obs.iter().flat_map(|o| std::iter::repeat(o.image_size).take(seeds)).collect();
    Ok((condition_tensor(&kp, &cams, dev, DType::F32)?, KeypointObs::new(&kp, &cams, &sizes, dev, DType::F32)?))
}

/// Mean PoseScore of `prior`'s own hypotheses (DDIM step `step` from noise, `seeds` per
/// observation, noise fixed by `seed`) on `obs`, with the mean body shape. No gradients.
pub fn mean_reward(diff: &DiffBody, prior: &Prior, sched: &Schedule, obs: &[Obs2d], seeds: usize, step: u32, seed: u64) -> Result<f64> {
    let dev = prior.denoiser.device().clone();
    let mut rng = Rng::new(seed);
    let (mut sum, mut count) = (0.0f64, 0usize);
    for chunk in obs.chunks(64) {
        let refs: Vec<&Obs2d> = chunk.iter().collect();
        let (feats, kobs) = batch_of(&refs, seeds, &dev)?;
        let b = chunk.len() * seeds;
        let noise = rng.normal_tensor(&[b, 144], DType::F32, &dev)?;
        let c = prior.encode(&feats)?;
        let x = crate::diffusion::ddim::ddim_sample(&prior.denoiser, sched, &noise, Some(&c), (sched.num_timesteps() - 1) as u32, step, Some(1.0))?;
        let betas = Tensor::zeros((b, diff.num_betas()), DType::F32, &dev)?;
        let r: Vec<f32> = pose_score(diff, &x, &betas, &kobs)?.to_vec1()?;
        sum += r.iter().map(|&v| v as f64).sum::<f64>();
        count += b;
    }
    Ok(sum / count.max(1) as f64)
}

/// Fine-tunes `base` on 2D-only observations `train` by direct reward backpropagation (see the
/// module docs); `fitter` supplies the differentiable body and the schedule. `progress` after
/// every step; returning false stops early (the run so far is returned). Returns the EMA prior
/// and the report.
pub fn train_reward(fitter: &Fitter, base: &Prior, train: &[Obs2d], cfg: &RewardConfig, progress: &mut dyn FnMut(&RewardStep) -> bool) -> Result<(Prior, RewardReport)> {
    if train.is_empty() || cfg.batch == 0 || cfg.seeds == 0 || cfg.steps == 0 {
        return Err(Error::Input(format!("train_reward: {} observations, batch {}, seeds {}, steps {}: all must be positive", train.len(), cfg.batch, cfg.seeds, cfg.steps)));
    }
    if !(cfg.lr > 0.0 && cfg.lr.is_finite() && cfg.w_kl >= 0.0 && cfg.clip > 0.0) {
        return Err(Error::Input(format!("train_reward: lr {} / w_kl {} / clip {}: lr and clip must be positive, w_kl non-negative", cfg.lr, cfg.w_kl, cfg.clip)));
    }
    let dev = base.denoiser.device().clone();
    let sched = &fitter.schedule;
    let mut tuner = Tuner::from_prior(base, cfg.betas)?;
    tuner.clip = cfg.clip;
    let b = cfg.batch * cfg.seeds;
    let betas = Tensor::zeros((b, fitter.diff.num_betas()), DType::F32, &dev)?;
    let mut report = RewardReport { config: cfg.clone(), train_observations: train.len(), seconds: 0.0, seconds_per_step: f64::NAN, log: Vec::new() };
    let t0 = std::time::Instant::now();
    for step in 0..cfg.steps {
        let mut rng = Rng::new(cfg.seed ^ (step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let picked: Vec<&Obs2d> = (0..cfg.batch).map(|_| &train[rng.below(train.len() as u64) as usize]).collect();
        let (feats, obs) = batch_of(&picked, cfg.seeds, &dev)?;
        let noise = rng.normal_tensor(&[b, 144], DType::F32, &dev)?;
        let (x0, kl) = differentiable_chain(&tuner.prior, base, sched, &feats, &noise, cfg.ddim_step, cfg.k)?;
        let r = pose_score(&fitter.diff, &x0, &betas, &obs)?.mean_all()?;
        let loss = ((&r * -cfg.reward_scale)? + (&kl * cfg.w_kl)?)?;
        let (rv, kv, lv) = (r.to_scalar::<f32>()? as f64, kl.to_scalar::<f32>()? as f64, loss.to_scalar::<f32>()? as f64);
        if !lv.is_finite() {
            return Err(Error::Input(format!("reward fine-tuning diverged at step {step} (loss {lv}); lower --lr")));
        }
        let lr = lr_schedule(cfg.lr, cfg.warmup, cfg.final_lr_frac, cfg.steps, step);
        let gn = tuner.step(&loss, lr)?;
        let s = RewardStep { step, reward: rv, kl: kv, loss: lv, grad_norm: gn, lr, seconds: t0.elapsed().as_secs_f64() };
        report.log.push(s.clone());
        if !progress(&s) {
            break;
        }
    }
    report.seconds = t0.elapsed().as_secs_f64();
    report.seconds_per_step = report.seconds / report.log.len().max(1) as f64;
    Ok((tuner.ema_prior()?, report))
}

/// BODY_25 limbs whose depth order is checked: upper arms, forearms, thighs, shins.
pub const DEPTH_LIMBS: [(usize, usize); 8] = [(2, 3), (3, 4), (5, 6), (6, 7), (9, 10), (10, 11), (12, 13), (13, 14)];

/// A limb counts for depth flips when its true depth difference exceeds this (m): shorter ones
/// are nearly parallel to the image, where either order is right.
pub const DEPTH_FLIP_MIN_M: f32 = 0.05;

/// Failure modes of 2D-only rewards (C5) on held-out samples with 3D truth, over all
/// hypotheses (each placed with its closed-form translation, mean shape).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FailureModes {
    pub hypotheses: usize,
    /// Fraction of checked limbs (both keypoints visible, true depth difference above
    /// [`DEPTH_FLIP_MIN_M`]) whose near/far order relative to the camera is flipped.
    pub depth_flip_limbs: f64,
    /// Fraction of hypotheses with at least one flipped limb.
    pub depth_flip_hyps: f64,
    /// Mean distance (m) of the placed pelvis to the true pelvis (camera frame), and the mean
    /// absolute depth error of the pelvis (m).
    pub pelvis_err_m: f64,
    pub pelvis_depth_err_m: f64,
    /// Mean reprojection error (px) of the placed hypotheses.
    pub reprojection_px: f64,
    /// PA error (mm) of BODY_25 points (similarity Procrustes over all 25) split by whether
    /// their keypoint was observed or missing.
    pub pa_visible_mm: f64,
    pub pa_missing_mm: f64,
    /// Missing BODY_25 keypoints per sample.
    pub missing_points: f64,
}

/// Measures [`FailureModes`] of `fitter`'s prior on `samples`: `n` hypotheses each (DDIM step
/// 40, noise fixed by `seed`).
pub fn failure_modes(fitter: &Fitter, samples: &[Sample], n: usize, seed: u64) -> Result<FailureModes> {
    let b = samples.len();
    let kp: Vec<f32> = samples.iter().flat_map(|s| s.keypoints.iter().copied()).collect();
    let cams: Vec<Pinhole> = samples.iter().map(|s| s.camera).collect();
    let x = super::tune::sample_batched(fitter, samples, n, seed)?;
    let placed = fitter.place_hypotheses(&x, &kp, &cams, n, &[])?;
    let mut fm = FailureModes { hypotheses: b * n, ..Default::default() };
    let (mut limbs, mut flips, mut hyp_flips) = (0usize, 0usize, 0usize);
    let (mut pel, mut pel_z, mut rep, mut rep_n) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    let (mut vis, mut vis_n, mut mis, mut mis_n) = (0.0f64, 0usize, 0.0f64, 0usize);
    for (i, s) in samples.iter().enumerate() {
        let conf: Vec<f32> = s.keypoints.chunks_exact(3).map(|k| k[2]).collect();
        for h in 0..n {
            let j = i * n + h;
            let hk = &placed.keypoints[j * 75..(j + 1) * 75];
            let mut any = false;
            for &(a, c) in &DEPTH_LIMBS {
                if conf[a] <= 0.0 || conf[c] <= 0.0 {
                    continue;
                }
                let dz_true = s.body25[c * 3 + 2] - s.body25[a * 3 + 2];
                if dz_true.abs() < DEPTH_FLIP_MIN_M {
                    continue;
                }
                limbs += 1;
                let dz = hk[c * 3 + 2] - hk[a * 3 + 2];
                if dz * dz_true < 0.0 {
                    flips += 1;
                    any = true;
                }
            }
            hyp_flips += any as usize;
            let pj = &placed.joints[j * 72..j * 72 + 3];
            let d: Vec<f64> = (0..3).map(|q| (pj[q] - s.joints[q]) as f64).collect();
            pel += (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
            pel_z += d[2].abs();
            if placed.reprojection_px[j].is_finite() {
                rep += placed.reprojection_px[j] as f64;
                rep_n += 1;
            }
            let sim = procrustes(hk, &s.body25)?;
            for q in 0..NUM_BODY25 {
                let p = sim.apply_point(&[hk[q * 3] as f64, hk[q * 3 + 1] as f64, hk[q * 3 + 2] as f64]);
                let e = (0..3).map(|a| (p[a] - s.body25[q * 3 + a] as f64).powi(2)).sum::<f64>().sqrt() * 1000.0;
                if conf[q] > 0.0 {
                    vis += e;
                    vis_n += 1;
                } else {
                    mis += e;
                    mis_n += 1;
                }
            }
        }
    }
    let bn = (b * n).max(1) as f64;
    fm.depth_flip_limbs = flips as f64 / limbs.max(1) as f64;
    fm.depth_flip_hyps = hyp_flips as f64 / bn;
    fm.pelvis_err_m = pel / bn;
    fm.pelvis_depth_err_m = pel_z / bn;
    fm.reprojection_px = rep / rep_n.max(1) as f64;
    fm.pa_visible_mm = vis / vis_n.max(1) as f64;
    fm.pa_missing_mm = if mis_n > 0 { mis / mis_n as f64 } else { f64::NAN };
    fm.missing_points = mis_n as f64 / bn;
    Ok(fm)
}

/// A prior's evaluation on both held-out domains.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RewardEval {
    pub scores: DomainReport,
    pub cmu_failure: FailureModes,
    pub daz_failure: FailureModes,
    /// Mean PoseScore of the hypotheses (the reward itself, no 3D) on each domain's held-out
    /// observations.
    pub cmu_reward: f64,
    pub daz_reward: f64,
}

/// Evaluates `fitter`'s prior on `sets`: [`EvalSets::report`] (`n` hypotheses, refinement when
/// `refine`), [`failure_modes`] and the mean reward.
pub fn evaluate(fitter: &Fitter, sets: &EvalSets, label: &str, n: usize, refine: bool) -> Result<RewardEval> {
    let o = |s: &[Sample]| s.iter().map(Obs2d::from_sample).collect::<Vec<_>>();
    Ok(RewardEval {
        scores: sets.report(fitter, label, n, refine)?,
        cmu_failure: failure_modes(fitter, &sets.cmu, n, 21)?,
        daz_failure: failure_modes(fitter, &sets.daz, n, 23)?,
        cmu_reward: mean_reward(&fitter.diff, &fitter.prior, &fitter.schedule, &o(&sets.cmu), n, 40, 31)?,
        daz_reward: mean_reward(&fitter.diff, &fitter.prior, &fitter.schedule, &o(&sets.daz), n, 40, 37)?,
    })
}

/// Markdown tables of evaluations: the domain scores ([`markdown`]), then the failure modes.
pub fn eval_markdown(evals: &[RewardEval]) -> String {
    let reps: Vec<DomainReport> = evals.iter().map(|e| e.scores.clone()).collect();
    let mut s = markdown(&reps);
    s.push_str("\n| prior | domain | mean reward | depth-flipped limbs | hyps with a flip | pelvis err. m | pelvis depth err. m | reproj. px | PA visible pts mm | PA missing pts mm | missing pts / sample |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for e in evals {
        for (d, f, r) in [("CMU val", &e.cmu_failure, e.cmu_reward), ("dance val", &e.daz_failure, e.daz_reward)] {
            s.push_str(&format!(
                "| {} | {d} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
                e.scores.label, r, f.depth_flip_limbs, f.depth_flip_hyps, f.pelvis_err_m, f.pelvis_depth_err_m, f.reprojection_px, f.pa_visible_mm, f.pa_missing_mm, f.missing_points
            ));
        }
    }
    s
}

/// Settings of the `rigfit train reward` experiment around [`train_reward`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExperimentConfig {
    pub train: RewardConfig,
    /// 2D-only training observations drawn from the dance clips' training split.
    pub train_observations: usize,
    /// Held-out samples per domain and hypotheses per sample for the evaluation.
    pub eval_samples: usize,
    pub eval_hypotheses: usize,
    /// Run ScoreHMR refinement in the evaluation.
    pub refine: bool,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self { train: RewardConfig::default(), train_observations: 4096, eval_samples: 128, eval_hypotheses: 8, refine: true }
    }
}

/// The outcome of [`run_experiment`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExperimentReport {
    pub config: ExperimentConfig,
    pub train: RewardReport,
    pub before: RewardEval,
    pub after: RewardEval,
    /// After / before hypothesis spread per domain (C5 target: above 0.5).
    pub diversity_ratio_cmu: f64,
    pub diversity_ratio_daz: f64,
    /// Relative change of the hypotheses' PA-MPJPE per domain (negative = better).
    pub pa_change_cmu: f64,
    pub pa_change_daz: f64,
}

/// Reads the mocap folder `data` (cmu/ and cmu-daz/), builds 2D-only training observations of
/// the dance clips' training split, evaluates `base` on held-out samples of both domains,
/// fine-tunes, and evaluates the result. `log` gets progress lines; `step` every step.
pub fn run_experiment(
    data: &Path,
    base: &Prior,
    cfg: &ExperimentConfig,
    log: &mut dyn FnMut(&str),
    step: &mut dyn FnMut(&RewardStep) -> bool,
) -> Result<(Prior, ExperimentReport)> {
    let body = BodyModel::default_body()?;
    let domains = Domains::load(data, log)?;
    let train = observations_2d(&body, &domains.daz_train, cfg.train_observations, &SynthConfig::default(), cfg.train.seed ^ 0x2D)?;
    let sets = EvalSets::new(&body, &domains, cfg.eval_samples, 0xE7A1)?;
    let mut fitter = Fitter::new(body, base.clone())?;
    log("evaluating the base prior");
    let before = evaluate(&fitter, &sets, "base", cfg.eval_hypotheses, cfg.refine)?;
    log(&format!("fine-tuning on {} 2D-only observations", train.len()));
    let (tuned, train_rep) = train_reward(&fitter, base, &train, &cfg.train, step)?;
    fitter.prior = tuned.clone();
    log("evaluating the fine-tuned prior");
    let label = format!("reward K={}", if cfg.train.k == 0 { "all".to_string() } else { cfg.train.k.to_string() });
    let after = evaluate(&fitter, &sets, &label, cfg.eval_hypotheses, cfg.refine)?;
    let ratio = |a: f64, b: f64| a / b;
    let rep = ExperimentReport {
        config: cfg.clone(),
        train: train_rep,
        diversity_ratio_cmu: ratio(after.scores.cmu.diversity_mm, before.scores.cmu.diversity_mm),
        diversity_ratio_daz: ratio(after.scores.daz.diversity_mm, before.scores.daz.diversity_mm),
        pa_change_cmu: ratio(after.scores.cmu.hyp_pa_mpjpe, before.scores.cmu.hyp_pa_mpjpe) - 1.0,
        pa_change_daz: ratio(after.scores.daz.hyp_pa_mpjpe, before.scores.daz.hyp_pa_mpjpe) - 1.0,
        before,
        after,
    };
    Ok((tuned, rep))
}

/// The markdown report of an experiment.
pub fn experiment_markdown(r: &ExperimentReport) -> String {
    let c = &r.config.train;
    format!(
        "Reward fine-tuning: {} steps x {} observations x {} seeds, K = {}, w_KL {}, lr {:.1e}, DDIM step {}; {:.2} s / step ({:.0} s).\n\n{}\nDiversity (spread after / before): CMU {:.2}, dance {:.2}. Hypothesis PA-MPJPE change: CMU {:+.1}%, dance {:+.1}%.\n",
        r.train.log.len(),
        c.batch,
        c.seeds,
        if c.k == 0 { "all".to_string() } else { c.k.to_string() },
        c.w_kl,
        c.lr,
        c.ddim_step,
        r.train.seconds_per_step,
        r.train.seconds,
        eval_markdown(&[r.before.clone(), r.after.clone()]),
        r.diversity_ratio_cmu,
        r.diversity_ratio_daz,
        r.pa_change_cmu * 100.0,
        r.pa_change_daz * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geom::camera::solve_translation;

    fn setup(n: usize, cfg: &SynthConfig, seed: u64) -> (BodyModel, DiffBody, Vec<Sample>) {
        let body = BodyModel::default_body().unwrap();
        let diff = DiffBody::new(&body, &Device::Cpu).unwrap();
        // Random poses: rest pose with random small rotations per joint.
        let mut rng = Rng::new(seed);
        let mut poses = Vec::new();
        for _ in 0..n {
            for _ in 0..24 {
                let aa = [rng.normal() as f32 * 0.3, rng.normal() as f32 * 0.3, rng.normal() as f32 * 0.3];
                poses.extend_from_slice(&crate::geom::rot::axis_angle_to_matrix(&aa));
            }
        }
        let mut c = cfg.clone();
        c.beta_std = 0.0; // the reward uses the mean shape
        let samples = domain_samples(&body, &poses, n, &c, seed ^ 7).unwrap();
        (body, diff, samples)
    }

    fn obs_of(samples: &[Sample]) -> KeypointObs {
        let kp: Vec<f32> = samples.iter().flat_map(|s| s.keypoints.iter().copied()).collect();
        let cams: Vec<Pinhole> = samples.iter().map(|s| s.camera).collect();
        let sizes: Vec<(u32, u32)> = samples.iter().map(|s| s.image_size).collect();
        KeypointObs::new(&kp, &cams, &sizes, &Device::Cpu, DType::F32).unwrap()
    }

    fn x_of(samples: &[Sample]) -> Tensor {
        let x: Vec<f32> = samples.iter().flat_map(|s| s.x.iter().copied()).collect();
        Tensor::from_vec(x, (samples.len(), 144), &Device::Cpu).unwrap()
    }

    #[test]
    fn true_pose_scores_near_zero_and_beats_a_perturbed_pose() {
        let (_, diff, samples) = setup(6, &SynthConfig::clean(), 1);
        let obs = obs_of(&samples);
        let x = x_of(&samples);
        let betas = Tensor::zeros((6, diff.num_betas()), DType::F32, &Device::Cpu).unwrap();
        let parts = pose_score_parts(&diff, &x, &betas, &obs).unwrap();
        let r: Vec<f32> = parts.score.to_vec1().unwrap();
        assert!(parts.valid.iter().all(|&v| v));
        // Clean keypoints of the true pose: a few hundredths of a pixel of float error at most.
        for v in &r {
            assert!(*v <= 0.0 && *v > -0.5, "reward of the true pose {v}");
        }
        // The camera solve recovers the true translation.
        let t: Vec<f32> = parts.cam_t.flatten_all().unwrap().to_vec1().unwrap();
        for (i, s) in samples.iter().enumerate() {
            for d in 0..3 {
                assert!((t[i * 3 + d] - s.cam_t[d]).abs() < 1e-3 * s.cam_t[2].abs().max(1.0), "t {:?} vs {:?}", &t[i * 3..i * 3 + 3], s.cam_t);
            }
        }
        let mut rng = Rng::new(5);
        let noise = rng.normal_tensor(&[6, 144], DType::F32, &Device::Cpu).unwrap();
        let rp: Vec<f32> = pose_score(&diff, &(&x + (noise * 0.1).unwrap()).unwrap(), &betas, &obs).unwrap().to_vec1().unwrap();
        for (a, b) in r.iter().zip(&rp) {
            assert!(a - b > 50.0, "true {a} vs perturbed {b}");
        }
    }

    #[test]
    fn closed_form_translation_matches_solve_translation() {
        let (body, diff, samples) = setup(5, &SynthConfig::default(), 2);
        let obs = obs_of(&samples);
        // Perturbed poses: the 2D no longer fits exactly, so the weighting matters.
        let mut rng = Rng::new(9);
        let x = (x_of(&samples) + (rng.normal_tensor(&[5, 144], DType::F32, &Device::Cpu).unwrap() * 0.05).unwrap()).unwrap();
        let betas = Tensor::zeros((5, diff.num_betas()), DType::F32, &Device::Cpu).unwrap();
        let zero = Tensor::zeros((5, 3), DType::F32, &Device::Cpu).unwrap();
        let pts = diff.forward_joints_6d(&betas, &x, &zero).unwrap().keypoints;
        let (t, valid) = closed_form_translation(&pts, &obs).unwrap();
        let t: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let p: Vec<f32> = pts.flatten_all().unwrap().to_vec1().unwrap();
        let _ = body;
        for (i, s) in samples.iter().enumerate() {
            assert!(valid[i]);
            let xy: Vec<f32> = s.keypoints.chunks_exact(3).flat_map(|k| [k[0], k[1]]).collect();
            let w2: Vec<f32> = s.keypoints.chunks_exact(3).map(|k| k[2].max(0.0).powi(2)).collect();
            let r = solve_translation(&p[i * 75..(i + 1) * 75], &xy, &w2, &s.camera).unwrap();
            for d in 0..3 {
                assert!((t[i * 3 + d] - r[d]).abs() < 1e-3 * r[2].abs().max(1.0), "sample {i}: {:?} vs {r:?}", &t[i * 3..i * 3 + 3]);
            }
        }
    }

    #[test]
    fn too_few_keypoints_give_an_invalid_zero_score() {
        let (_, diff, samples) = setup(2, &SynthConfig::clean(), 3);
        let mut kp: Vec<f32> = samples.iter().flat_map(|s| s.keypoints.iter().copied()).collect();
        for k in 1..25 {
            kp[k * 3 + 2] = 0.0; // sample 0 keeps only its nose
        }
        let cams: Vec<Pinhole> = samples.iter().map(|s| s.camera).collect();
        let sizes: Vec<(u32, u32)> = samples.iter().map(|s| s.image_size).collect();
        let obs = KeypointObs::new(&kp, &cams, &sizes, &Device::Cpu, DType::F32).unwrap();
        let betas = Tensor::zeros((2, diff.num_betas()), DType::F32, &Device::Cpu).unwrap();
        let p = pose_score_parts(&diff, &x_of(&samples), &betas, &obs).unwrap();
        assert_eq!(p.valid, vec![false, true]);
        let r: Vec<f32> = p.score.to_vec1().unwrap();
        assert_eq!(r[0], 0.0);
        assert!(r.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn gradient_is_finite_and_a_step_along_it_raises_the_reward() {
        let (_, diff, samples) = setup(4, &SynthConfig::default(), 4);
        let obs = obs_of(&samples);
        let mut rng = Rng::new(11);
        let x = (x_of(&samples) + (rng.normal_tensor(&[4, 144], DType::F32, &Device::Cpu).unwrap() * 0.1).unwrap()).unwrap();
        let betas = Tensor::zeros((4, diff.num_betas()), DType::F32, &Device::Cpu).unwrap();
        let xv = candle_core::Var::from_tensor(&x).unwrap();
        let r = pose_score(&diff, xv.as_tensor(), &betas, &obs).unwrap();
        let r0: Vec<f32> = r.to_vec1().unwrap();
        let g = r.sum_all().unwrap().backward().unwrap().get(xv.as_tensor()).unwrap().clone();
        let gv: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
        assert!(gv.iter().all(|v| v.is_finite()) && gv.iter().any(|v| *v != 0.0));
        // Normalised ascent step per sample.
        let norm = g.sqr().unwrap().sum_keepdim(1).unwrap().sqrt().unwrap();
        let step = g.broadcast_div(&(norm + 1e-12).unwrap()).unwrap();
        let r1: Vec<f32> = pose_score(&diff, &(&x + (step * 0.01).unwrap()).unwrap(), &betas, &obs).unwrap().to_vec1().unwrap();
        for (a, b) in r0.iter().zip(&r1) {
            assert!(b > a, "reward {a} -> {b} after an ascent step");
        }
    }

    #[test]
    fn differentiable_chain_matches_ddim_sample_and_starts_with_zero_kl() {
        let (_, _, samples) = setup(3, &SynthConfig::default(), 6);
        let prior = Prior::default_prior(&Device::Cpu).unwrap();
        let sched = Schedule::scorehmr();
        let obs: Vec<Obs2d> = samples.iter().map(Obs2d::from_sample).collect();
        let refs: Vec<&Obs2d> = obs.iter().collect();
        let (feats, _) = batch_of(&refs, 2, &Device::Cpu).unwrap();
        let noise = Rng::new(3).normal_tensor(&[6, 144], DType::F32, &Device::Cpu).unwrap();
        let c = prior.encode(&feats).unwrap();
        let want: Vec<f32> = crate::diffusion::ddim::ddim_sample(&prior.denoiser, &sched, &noise, Some(&c), 999, 40, Some(1.0)).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for k in [1, 3, 0] {
            let (x0, kl) = differentiable_chain(&prior, &prior, &sched, &feats, &noise, 40, k).unwrap();
            let got: Vec<f32> = x0.flatten_all().unwrap().to_vec1().unwrap();
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(err < 1e-3, "K={k}: max difference {err} to ddim_sample");
            assert_eq!(kl.to_scalar::<f32>().unwrap(), 0.0);
        }
    }

    #[test]
    fn chain_timesteps_of_step_40_are_25() {
        let s = Schedule::scorehmr();
        let ts = chain_timesteps(&s, 40).unwrap();
        assert_eq!(ts.len(), 25);
        assert_eq!((ts[0], ts[24]), (999, 39));
        assert_eq!(chain_timesteps(&s, 1000).unwrap(), vec![999]);
    }
}
