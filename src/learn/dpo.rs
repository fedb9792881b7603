//! Diffusion-DPO fine-tuning of the prior with preference pairs (ADHMR, reference/adhmr_drpose.md
//! A3-A5).
//!
//! **Pairs.** From 2D-only observations (the new domain: keypoints and a camera, nothing else):
//! N hypotheses per observation are sampled from the frozen base prior (ADHMR: 50), placed by the
//! closed-form camera translation, ranked by the HMR-Scorer; each of the top `pairs_per_obs`
//! hypotheses is paired with a random one of the lower half whose score is at least `min_gap`
//! lower (ADHMR's pairing rule is not released; its files hold 5 pairs per image). From
//! 3D-labelled observations: winner = the ground truth, loser = one sample of the base (ADHMR's
//! `construct_dpo`). Both kinds are mixed 50/50 in every batch (ADHMR's `partition`).
//!
//! **Loss** (ADHMR `DPO_SMPL_LOSS`, a port of Diffusion-DPO): per batch of n pairs, t0 ~ U{0..999}
//! for n/2 + 1 pairs and t = cat(t0, 999 - t0)[:n] (antithetic), the same t and the same noise for
//! winner and loser and for policy and reference; per-sample mean squared eps error over the 144
//! dims; `L = -log sigmoid(-beta/2 [(err_w - err_l) - (ref_w - ref_l)])`. The reference is the
//! frozen base prior; the policy (encoder and denoiser, as ADHMR trains HypoNet and the HRNet
//! condition network) starts from it. Adam (0.9, 0.999), clip 1.0, the training EMA. Winners and
//! losers are projected to exact rotations before use (the sampler's x0 is a clipped 6D).

use candle_core::{DType, Device, Tensor, D};
use serde::{Deserialize, Serialize};

use super::synth::Sample;
use super::tune::{lr_schedule, Tuner};
use crate::diffusion::prior::{condition_features, Prior, COND_FEATURES};
use crate::diffusion::{Rng, Schedule};
use crate::error::{Error, Result};
use crate::fit::Fitter;
use crate::geom::camera::Pinhole;
use crate::geom::rot::{matrices_to_rot6d, rot6d_to_matrices};

/// Preference pairs with their conditions.
#[derive(Clone, Debug, Default)]
pub struct Pairs {
    /// `[P, 144]` winners and losers (exact 6D rotations).
    pub x_w: Vec<f32>,
    pub x_l: Vec<f32>,
    /// `[P, 78]` condition features of the observation.
    pub feats: Vec<f32>,
    /// `[P]` scorer gap (2D pairs) or NaN (3D pairs).
    pub gap: Vec<f32>,
}

impl Pairs {
    pub fn len(&self) -> usize {
        self.gap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.gap.is_empty()
    }

    fn push(&mut self, w: &[f32], l: &[f32], f: &[f32], gap: f32) {
        self.x_w.extend_from_slice(w);
        self.x_l.extend_from_slice(l);
        self.feats.extend_from_slice(f);
        self.gap.push(gap);
    }
}

/// Exact 6D rotations of 6D poses `[B, 144]` (Gram-Schmidt, as the body reads them).
fn exact_6d(x: &[f32]) -> Result<Vec<f32>> {
    let mut r = vec![0.0f32; x.len() / 6 * 9];
    rot6d_to_matrices(x, &mut r)?;
    let mut o = vec![0.0f32; x.len()];
    matrices_to_rot6d(&r, &mut o)?;
    Ok(o)
}

/// Settings of pair construction and DPO training.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DpoConfig {
    /// Hypotheses sampled per 2D observation (ADHMR: 50).
    pub hypotheses: usize,
    /// Pairs per 2D observation (ADHMR's files: 5).
    pub pairs_per_obs: usize,
    /// Smallest scorer gap between winner and loser (RankNet sigma 5: a gap of 0.2 is a 73%
    /// preference).
    pub min_gap: f32,
    /// Diffusion-DPO beta (ADHMR: 100 on its x50-scaled joint coordinates; re-tuned here).
    pub beta: f64,
    pub lr: f64,
    pub steps: usize,
    /// Pairs per step (half 2D, half 3D when both exist).
    pub batch: usize,
    pub seed: u64,
}

impl Default for DpoConfig {
    fn default() -> Self {
        Self { hypotheses: 50, pairs_per_obs: 5, min_gap: 0.2, beta: 1000.0, lr: 1e-5, steps: 1000, batch: 128, seed: 0 }
    }
}

/// Pairs from 2D-only observations: keypoints `[B, 25, 3]` and cameras (nothing else of the
/// observation is read), ranked by `fitter`'s scorer (which must be set).
pub fn pairs_2d(fitter: &Fitter, keypoints: &[f32], cameras: &[Pinhole], cfg: &DpoConfig, progress: &mut dyn FnMut(usize, usize)) -> Result<Pairs> {
    let scorer = fitter.scorer.as_ref().ok_or_else(|| Error::Input("pairs_2d: the fitter has no scorer".into()))?;
    let b = cameras.len();
    let n = cfg.hypotheses;
    let mut pairs = Pairs::default();
    let mut rng = Rng::new(cfg.seed ^ 0x2D_FA1E);
    let chunk = 32;
    for c in 0..b.div_ceil(chunk) {
        let (lo, hi) = (c * chunk, ((c + 1) * chunk).min(b));
        let kp = &keypoints[lo * 75..hi * 75];
        let cams = &cameras[lo..hi];
        let x = exact_6d(&fitter.sample_hypotheses(kp, cams, n, 40, cfg.seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9))?)?;
        let placed = fitter.place_hypotheses(&x, kp, cams, n, &[])?;
        let f = super::scorer::features(&x, &placed, kp, cams, n);
        let s = scorer.score(&f, fitter.device())?;
        for i in 0..hi - lo {
            let mut order: Vec<usize> = (0..n).filter(|&h| placed.reprojection_px[i * n + h].is_finite() && s[i * n + h].is_finite()).collect();
            order.sort_by(|&a, &b| s[i * n + b].partial_cmp(&s[i * n + a]).unwrap_or(std::cmp::Ordering::Equal));
            if order.len() < 4 {
                continue;
            }
            let half = order.len() / 2;
            for &w in order.iter().take(cfg.pairs_per_obs.min(half)) {
                let cands: Vec<usize> = order[half..].iter().copied().filter(|&l| s[i * n + w] - s[i * n + l] >= cfg.min_gap).collect();
                if cands.is_empty() {
                    continue;
                }
                let l = cands[rng.below(cands.len() as u64) as usize];
                let (jw, jl) = (i * n + w, i * n + l);
                pairs.push(&x[jw * 144..(jw + 1) * 144], &x[jl * 144..(jl + 1) * 144], &condition_features(&kp[i * 75..(i + 1) * 75], &cams[i]), s[jw] - s[jl]);
            }
        }
        progress(hi, b);
    }
    Ok(pairs)
}

/// Pairs from 3D-labelled samples: winner = the ground truth, loser = one sample of the prior.
pub fn pairs_3d(fitter: &Fitter, samples: &[Sample], seed: u64) -> Result<Pairs> {
    let mut pairs = Pairs::default();
    for (c, part) in samples.chunks(256).enumerate() {
        let kp: Vec<f32> = part.iter().flat_map(|s| s.keypoints.iter().copied()).collect();
        let cams: Vec<Pinhole> = part.iter().map(|s| s.camera).collect();
        let x = exact_6d(&fitter.sample_hypotheses(&kp, &cams, 1, 40, seed ^ (c as u64 + 7).wrapping_mul(0x9E37_79B9))?)?;
        for (i, s) in part.iter().enumerate() {
            pairs.push(&s.x, &x[i * 144..(i + 1) * 144], &condition_features(&s.keypoints, &s.camera), f32::NAN);
        }
    }
    Ok(pairs)
}

/// The Diffusion-DPO loss of a batch (see the module docs) and its implicit accuracy (fraction
/// of pairs where the policy moved toward the winner more than the reference).
/// `x_w`, `x_l`: `[n, 144]`; `feats`: `[n, 78]`; `t`: `[n]` u32; `noise`: `[n, 144]`.
#[allow(clippy::too_many_arguments)]
pub fn dpo_loss(policy: &Prior, reference: &Prior, sched: &Schedule, x_w: &Tensor, x_l: &Tensor, feats: &Tensor, t: &Tensor, noise: &Tensor, beta: f64) -> Result<(Tensor, f64)> {
    let n = x_w.dim(0)?;
    let x0 = Tensor::cat(&[x_w, x_l], 0)?;
    let tt = Tensor::cat(&[t, t], 0)?;
    let nz = Tensor::cat(&[noise, noise], 0)?;
    let f2 = Tensor::cat(&[feats, feats], 0)?;
    let x_t = sched.q_sample(&x0, &tt, &nz)?;
    let err = |p: &Prior| -> Result<Tensor> {
        let c = p.encode(&f2)?;
        Ok(p.denoiser.forward(&x_t, &tt, Some(&c))?.sub(&nz)?.sqr()?.mean(D::Minus1)?)
    };
    let m = err(policy)?;
    let r = err(reference)?.detach();
    let (mw, ml) = (m.narrow(0, 0, n)?, m.narrow(0, n, n)?);
    let (rw, rl) = (r.narrow(0, 0, n)?, r.narrow(0, n, n)?);
    let inside = ((mw - ml)? - (rw - rl)?)?.affine(-0.5 * beta, 0.0)?;
    // -log sigmoid(z) = softplus(-z) = relu(-z) + log(1 + exp(-|z|))
    let nz_ = inside.neg()?;
    let loss = (nz_.relu()? + (inside.abs()?.neg()?.exp()? + 1.0)?.log()?)?.mean_all()?;
    let acc: Vec<f32> = inside.to_vec1()?;
    let acc = acc.iter().filter(|v| **v > 0.0).count() as f64 / n as f64;
    Ok((loss, acc))
}

/// Antithetic timesteps of ADHMR: t0 ~ U{0..T-1} for n/2 + 1, t = cat(t0, T-1-t0)[:n].
pub fn antithetic_timesteps(n: usize, steps: usize, rng: &mut Rng, device: &Device) -> Result<Tensor> {
    let h = n / 2 + 1;
    let t0: Vec<u32> = (0..h).map(|_| rng.below(steps as u64) as u32).collect();
    let mut t: Vec<u32> = t0.clone();
    t.extend(t0.iter().map(|v| steps as u32 - 1 - v));
    t.truncate(n);
    Ok(Tensor::from_vec(t, n, device)?)
}

/// One DPO step's log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DpoLog {
    pub step: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub grad_norm: f64,
}

/// Fine-tunes `base` on `pairs2d` and `pairs3d` (either may be empty); returns the EMA policy
/// and the log. `progress(step, steps, loss, acc)` returns false to cancel.
pub fn train_dpo(base: &Prior, pairs2d: &Pairs, pairs3d: &Pairs, cfg: &DpoConfig, progress: &mut dyn FnMut(usize, usize, f64, f64) -> bool) -> Result<(Prior, Vec<DpoLog>)> {
    if pairs2d.is_empty() && pairs3d.is_empty() {
        return Err(Error::Input("train_dpo: no pairs".into()));
    }
    let dev = base.denoiser.device().clone();
    let sched = Schedule::scorehmr();
    let mut tuner = Tuner::from_prior(base, (0.9, 0.999))?;
    let mut rng = Rng::new(cfg.seed ^ 0xD9_0D90);
    let mut log = Vec::new();
    let (mut sl, mut sa) = (f64::NAN, f64::NAN);
    for step in 0..cfg.steps {
        let (n2, n3) = match (pairs2d.is_empty(), pairs3d.is_empty()) {
            (false, false) => (cfg.batch / 2, cfg.batch - cfg.batch / 2),
            (false, true) => (cfg.batch, 0),
            _ => (0, cfg.batch),
        };
        let (mut w, mut l, mut f) = (Vec::with_capacity(cfg.batch * 144), Vec::with_capacity(cfg.batch * 144), Vec::with_capacity(cfg.batch * COND_FEATURES));
        for (p, k) in [(pairs2d, n2), (pairs3d, n3)] {
            for _ in 0..k {
                let i = rng.below(p.len() as u64) as usize;
                w.extend_from_slice(&p.x_w[i * 144..(i + 1) * 144]);
                l.extend_from_slice(&p.x_l[i * 144..(i + 1) * 144]);
                f.extend_from_slice(&p.feats[i * COND_FEATURES..(i + 1) * COND_FEATURES]);
            }
        }
        let b = cfg.batch;
        let xw = Tensor::from_vec(w, (b, 144), &dev)?;
        let xl = Tensor::from_vec(l, (b, 144), &dev)?;
        let ft = Tensor::from_vec(f, (b, COND_FEATURES), &dev)?;
        let t = antithetic_timesteps(b, sched.num_timesteps(), &mut rng, &dev)?;
        let noise = rng.normal_tensor(&[b, 144], DType::F32, &dev)?;
        let (loss, acc) = dpo_loss(&tuner.prior, base, &sched, &xw, &xl, &ft, &t, &noise, cfg.beta)?;
        let lv = loss.to_scalar::<f32>()? as f64;
        let gn = tuner.step(&loss, lr_schedule(cfg.lr, cfg.steps / 20, 1.0, cfg.steps, step))?;
        sl = if sl.is_nan() { lv } else { 0.95 * sl + 0.05 * lv };
        sa = if sa.is_nan() { acc } else { 0.95 * sa + 0.05 * acc };
        if (step + 1) % 50 == 0 || step + 1 == cfg.steps {
            log.push(DpoLog { step: step + 1, loss: sl, accuracy: sa, grad_norm: gn });
        }
        if !progress(step + 1, cfg.steps, sl, sa) {
            return Err(Error::Cancelled);
        }
    }
    Ok((tuner.ema_prior()?, log))
}
