//! What fine-tuning the prior shares between preference optimisation ([`super::dpo`]), reward
//! fine-tuning ([`super::reward`]) and training from scratch ([`super::train`]):
//!
//! - [`Tuner`]: a prior whose weights are variables, one [`Adam`] per variable, gradient-norm
//!   clipping and ScoreHMR's EMA (ema_pytorch: beta 0.995 every 10 steps after step 100, warm-up
//!   `1 - (1 + e)^(-2/3)`); [`Tuner::from_prior`] starts it from a trained prior (a fine-tuning
//!   run's policy; the frozen reference is the original [`Prior`], untouched);
//! - [`Domains`]: the two pose domains, split by clip ([`super::mocap::is_validation`]): the CMU
//!   clips (the prior's training domain, 3D labels) and the CMU dance / martial-arts clips in the
//!   Daz skeleton (the "new" domain: only their 2D projections may train, their 3D measures);
//! - [`hypothesis_errors`] and [`score_prior`]: how good a prior's own hypotheses are on a
//!   domain (PA-MPJPE, MPJPE, spread, 2D PCK) and what refinement makes of them.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::synth::{Sample, SynthConfig};
use crate::body::{BodyModel, BodyOutput, NUM_JOINTS};
use crate::diffusion::ddim::RefineConfig;
use crate::diffusion::prior::{Prior, PriorConfig};
use crate::diffusion::Rng;
use crate::error::{Error, Result};
use crate::fit::Fitter;
use crate::geom::camera::Pinhole;
use crate::geom::metrics::{mpjpe, pa_mpjpe, pve, RootAlign};
use crate::geom::rot::rot6d_to_matrices;
use crate::guide::Adam;

/// A trainable prior with its optimiser state and EMA.
pub struct Tuner {
    /// The policy: its tensors are the variables below.
    pub prior: Prior,
    pub(crate) vars: Vec<(String, Var)>,
    pub(crate) adam: Vec<Adam>,
    pub(crate) ema: Vec<Tensor>,
    /// Gradient-norm clip (ScoreHMR 1.0; ADHMR 1.0).
    pub clip: f64,
    /// EMA decay and period (ScoreHMR trainer.py: 0.995 every 10 steps).
    pub ema_beta: f64,
    pub ema_every: usize,
    /// Optimiser steps taken.
    pub steps: usize,
}

/// Named variables of two var maps in a fixed order (encoder then denoiser).
fn named_vars(evars: &VarMap, dvars: &VarMap) -> Vec<(String, Var)> {
    let mut v: Vec<(String, Var)> = Vec::new();
    for (prefix, map) in [("encoder.", evars), ("denoiser.", dvars)] {
        let data = map.data().lock().expect("varmap lock");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for n in names {
            v.push((format!("{prefix}{n}"), data[n].clone()));
        }
    }
    v
}

impl Tuner {
    /// Wraps a prior built on the var maps `evars` (encoder) and `dvars` (denoiser), as
    /// [`Prior::init`] returns them. Adam betas `betas`; the EMA starts at the current weights.
    pub fn from_varmaps(prior: Prior, evars: &VarMap, dvars: &VarMap, betas: (f64, f64)) -> Result<Self> {
        let vars = named_vars(evars, dvars);
        let adam = vars
            .iter()
            .map(|(_, v)| {
                let mut a = Adam::new(v.as_tensor(), 0.0)?;
                (a.beta1, a.beta2) = betas;
                Ok(a)
            })
            .collect::<Result<Vec<_>>>()?;
        let ema = vars.iter().map(|(_, v)| v.as_tensor().copy()).collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self { prior, vars, adam, ema, clip: 1.0, ema_beta: 0.995, ema_every: 10, steps: 0 })
    }

    /// A trainable copy of `base` (its weights copied into fresh variables; `base` is untouched
    /// and serves as the frozen reference).
    pub fn from_prior(base: &Prior, betas: (f64, f64)) -> Result<Self> {
        let dev = base.denoiser.device().clone();
        let (evars, dvars) = (VarMap::new(), VarMap::new());
        for (name, t) in base.named_tensors() {
            let (map, n) = match (name.strip_prefix("encoder."), name.strip_prefix("denoiser.")) {
                (Some(n), _) => (&evars, n),
                (_, Some(n)) => (&dvars, n),
                _ => continue,
            };
            map.data().lock().expect("varmap lock").insert(n.to_string(), Var::from_tensor(&t.to_dtype(DType::F32)?.copy()?)?);
        }
        let prior = prior_from_varmaps(&base.config, &evars, &dvars, &dev)?;
        Self::from_varmaps(prior, &evars, &dvars, betas)
    }

    /// One optimiser step on `loss` (a scalar): backward, clip the global gradient norm to
    /// [`Tuner::clip`], Adam at `lr`, EMA update. Returns the gradient norm before clipping.
    /// Variables the loss does not reach get a zero gradient.
    pub fn step(&mut self, loss: &Tensor, lr: f64) -> Result<f64> {
        let vars: Vec<&Var> = self.vars.iter().map(|(_, v)| v).collect();
        let norm = clipped_adam_step(loss, &vars, &mut self.adam, self.clip, lr).map_err(|e| Error::Input(format!("step {}: {e}", self.steps)))?;
        self.steps += 1;
        self.ema_update()?;
        Ok(norm)
    }

    /// ema_pytorch's update after optimiser step `self.steps`: every `ema_every` steps; a copy
    /// until step 100, then decay `min(1 - (1 + e)^(-2/3), ema_beta)`.
    fn ema_update(&mut self) -> Result<()> {
        let k = self.steps;
        if self.ema_every == 0 || k % self.ema_every != 0 {
            return Ok(());
        }
        if k <= 100 {
            for (e, (_, v)) in self.ema.iter_mut().zip(&self.vars) {
                *e = v.as_tensor().copy()?;
            }
        } else {
            let epoch = (k - 100 - 1) as f64;
            let d = (1.0 - (1.0 + epoch).powf(-2.0 / 3.0)).clamp(0.0, self.ema_beta);
            for (e, (_, v)) in self.ema.iter_mut().zip(&self.vars) {
                *e = ((&*e * d)? + (v.as_tensor() * (1.0 - d))?)?;
            }
        }
        Ok(())
    }

    /// The prior with the EMA weights (plain tensors, detached from the variables).
    pub fn ema_prior(&self) -> Result<Prior> {
        self.prior_of(&self.ema)
    }

    /// The prior with the current (non-EMA) weights, detached.
    pub fn current_prior(&self) -> Result<Prior> {
        let cur: Vec<Tensor> = self.vars.iter().map(|(_, v)| v.as_tensor().copy()).collect::<candle_core::Result<_>>()?;
        self.prior_of(&cur)
    }

    fn prior_of(&self, tensors: &[Tensor]) -> Result<Prior> {
        let mut den = std::collections::HashMap::new();
        let mut enc = std::collections::HashMap::new();
        for ((n, _), t) in self.vars.iter().zip(tensors) {
            if let Some(k) = n.strip_prefix("denoiser.") {
                den.insert(k.to_string(), t.clone());
            } else if let Some(k) = n.strip_prefix("encoder.") {
                enc.insert(k.to_string(), t.clone());
            }
        }
        Prior::from_parts(&self.prior.config, den, enc, self.prior.denoiser.device())
    }
}

/// One optimiser step of `vars` on `loss` (a scalar): backward, clip the global gradient norm to
/// `clip`, then each variable's [`Adam`] at `lr`. Variables the loss does not reach get a zero
/// gradient. Returns the gradient norm before clipping; a non-finite norm is an error (nothing
/// is stepped).
pub fn clipped_adam_step(loss: &Tensor, vars: &[&Var], adam: &mut [Adam], clip: f64, lr: f64) -> Result<f64> {
    let gs = loss.backward()?;
    let mut grads = Vec::with_capacity(vars.len());
    let mut sq = 0.0f64;
    for v in vars {
        let g = match gs.get(v.as_tensor()) {
            Some(g) => g.clone(),
            None => v.as_tensor().zeros_like()?,
        };
        sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        grads.push(g);
    }
    let norm = sq.sqrt();
    if !norm.is_finite() {
        return Err(Error::Input(format!("gradient is not finite (norm {norm}); lower the learning rate")));
    }
    if norm > clip {
        let s = clip / (norm + 1e-6);
        for g in grads.iter_mut() {
            *g = (&*g * s)?;
        }
    }
    for ((a, v), g) in adam.iter_mut().zip(vars).zip(&grads) {
        a.lr = lr;
        a.step(v, g)?;
    }
    Ok(norm)
}

fn prior_from_varmaps(config: &PriorConfig, evars: &VarMap, dvars: &VarMap, dev: &Device) -> Result<Prior> {
    let grab = |m: &VarMap| -> std::collections::HashMap<String, Tensor> {
        m.data().lock().expect("varmap lock").iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect()
    };
    // The tensors of the variables themselves (not copies): the prior's forward pass reaches the
    // variables, so gradients flow to them.
    Prior::from_parts(config, grab(dvars), grab(evars), dev)
}

/// The learning rate at `step` of `steps`: linear warm-up over `warmup` steps, then cosine decay
/// to `lr * final_frac`.
pub fn lr_schedule(lr: f64, warmup: usize, final_frac: f64, steps: usize, step: usize) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let p = (step - warmup) as f64 / (steps.saturating_sub(warmup)).max(1) as f64;
    lr * (final_frac + (1.0 - final_frac) * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos()))
}

/// Training and validation poses `[N * 24 * 9]` of the two domains.
pub struct Domains {
    /// CMU (the prior's domain; 3D labels usable for training).
    pub cmu_train: Vec<f32>,
    pub cmu_val: Vec<f32>,
    /// CMU dance / martial arts in the Daz skeleton (the new domain: 2D projections of
    /// `daz_train` may train, its 3D never; `daz_val` measures).
    pub daz_train: Vec<f32>,
    pub daz_val: Vec<f32>,
}

impl Domains {
    /// Reads `data/cmu` and `data/cmu-daz` (the layout of the project's shared mocap folder) at
    /// 30 fps and splits each by clip.
    pub fn load(data: &Path, progress: &mut dyn FnMut(&str)) -> Result<Self> {
        let (cmu, daz) = (data.join("cmu"), data.join("cmu-daz"));
        for d in [&cmu, &daz] {
            if !d.is_dir() {
                return Err(Error::Input(format!("{}: not a folder; --data must hold cmu/ and cmu-daz/ (the shared mocap data)", d.display())));
            }
        }
        progress("reading cmu/");
        let (cmu_train, cmu_val) = super::train::split_poses(&super::mocap::load_dir(&cmu, 30.0)?);
        progress("reading cmu-daz/");
        let (daz_train, daz_val) = super::train::split_poses(&super::mocap::load_dir(&daz, 30.0)?);
        Ok(Self { cmu_train, cmu_val, daz_train, daz_val })
    }
}

/// Errors of hypotheses against the truth of their samples, mm: per hypothesis `[MPJPE,
/// PA-MPJPE, PVE, PA-PVE]` (24 joints, pelvis-aligned; the hypothesis in `betas` `[S]`, the truth
/// in its own shape). `x`: `[B * n, 144]` observation-major, `n` per sample. `with_vertices`:
/// compute PVE and PA-PVE (else NaN).
pub fn hypothesis_errors(body: &BodyModel, samples: &[Sample], x: &[f32], n: usize, betas: &[f32], with_vertices: bool) -> Result<Vec<[f32; 4]>> {
    let b = samples.len();
    if x.len() != b * n * 144 {
        return Err(Error::Input(format!("hypothesis_errors: {} values for {b} samples x {n} hypotheses", x.len())));
    }
    let s = body.num_betas();
    let mut bt = vec![0.0f32; s];
    bt[..betas.len().min(s)].copy_from_slice(&betas[..betas.len().min(s)]);
    let mut rot = vec![0.0f32; b * n * 216];
    rot6d_to_matrices(x, &mut rot)?;
    let zeros = vec![0.0f32; b * n * 3];
    let mut hyp = BodyOutput::default();
    let mut tru = BodyOutput::default();
    let gt_rot: Vec<f32> = samples.iter().flat_map(|s| (0..n).flat_map(move |_| s.rotations.iter().copied())).collect();
    let gt_b: Vec<f32> = samples.iter().flat_map(|smp| (0..n).flat_map(move |_| smp.betas.iter().copied())).collect();
    let all_b: Vec<f32> = (0..b * n).flat_map(|_| bt.iter().copied()).collect();
    if with_vertices {
        body.forward(&all_b, &rot, &zeros, &mut hyp)?;
        body.forward(&gt_b, &gt_rot, &zeros, &mut tru)?;
    } else {
        body.forward_joints(&all_b, &rot, &zeros, &mut hyp)?;
        body.forward_joints(&gt_b, &gt_rot, &zeros, &mut tru)?;
    }
    let m = mpjpe(&hyp.joints, &tru.joints, NUM_JOINTS, &RootAlign::Joint(0))?.per_frame;
    let pa = pa_mpjpe(&hyp.joints, &tru.joints, NUM_JOINTS)?.per_frame;
    let (v, pv) = if with_vertices {
        let nv = body.num_verts();
        (
            pve(&hyp.vertices, &tru.vertices, nv, &hyp.joints, &tru.joints, NUM_JOINTS, &RootAlign::Joint(0))?.per_frame,
            pa_mpjpe(&hyp.vertices, &tru.vertices, nv)?.per_frame,
        )
    } else {
        (vec![f64::NAN; b * n], vec![f64::NAN; b * n])
    };
    Ok((0..b * n).map(|i| [(m[i] * 1000.0) as f32, (pa[i] * 1000.0) as f32, (v[i] * 1000.0) as f32, (pv[i] * 1000.0) as f32]).collect())
}

/// How good a prior is on one domain's samples (mm unless stated).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PriorScores {
    pub samples: usize,
    pub hypotheses: usize,
    /// Mean over all hypotheses (the prior's own samples, no selection).
    pub hyp_mpjpe: f64,
    pub hyp_pa_mpjpe: f64,
    /// The initial estimate the fitter picks (reprojection, or the scorer when it has one).
    pub picked_pa_mpjpe: f64,
    pub picked_mpjpe: f64,
    /// ScoreHMR refinement of the picked estimate (NaN when not run).
    pub refined_pa_mpjpe: f64,
    pub refined_mpjpe: f64,
    /// Spread of the hypotheses: RMS over joints of the distance of each pelvis-aligned joint to
    /// its mean over the hypotheses of a sample, averaged over samples.
    pub diversity_mm: f64,
    /// 2D PCK of the hypotheses, each placed with its closed-form camera translation: fraction of
    /// visible keypoints within [`PCK_FRACTION`] of the larger side of the person's 2D box.
    pub pck: f64,
    /// Mean reprojection error of the hypotheses (closed-form translation), pixels.
    pub hyp_reprojection_px: f64,
}

/// Samples of a domain's poses: `n` observations with `cfg`'s detector faults, fixed by `seed`.
pub fn domain_samples(body: &BodyModel, poses: &[f32], n: usize, cfg: &SynthConfig, seed: u64) -> Result<Vec<Sample>> {
    let count = poses.len() / 216;
    if count == 0 {
        return Err(Error::Input("no poses in this domain".into()));
    }
    let mut rng = Rng::new(seed);
    let refs: Vec<&[f32]> = (0..n).map(|_| {
        let i = rng.below(count as u64) as usize;
        &poses[i * 216..(i + 1) * 216]
    }).collect();
    super::synth::Generator::new(body, cfg.clone()).generate(&refs, &mut rng)
}

/// PCK threshold: a fraction of the larger side of the person's 2D box (visible keypoints).
pub const PCK_FRACTION: f32 = 0.05;

/// `n` hypotheses `[B * n, 144]` for each of `samples` (DDIM step 40), sampled in chunks of 64
/// observations; chunk c's noise is seeded by `seed ^ (c * 0x9E3779B9)`.
pub fn sample_batched(fitter: &Fitter, samples: &[Sample], n: usize, seed: u64) -> Result<Vec<f32>> {
    let mut x = Vec::with_capacity(samples.len() * n * 144);
    for (c, chunk) in samples.chunks(64).enumerate() {
        let k: Vec<f32> = chunk.iter().flat_map(|s| s.keypoints.iter().copied()).collect();
        let cm: Vec<Pinhole> = chunk.iter().map(|s| s.camera).collect();
        x.extend(fitter.sample_hypotheses(&k, &cm, n, 40, seed ^ (c as u64).wrapping_mul(0x9E37_79B9))?);
    }
    Ok(x)
}

/// Scores `fitter`'s prior on `samples`: `n` hypotheses each (DDIM step 40, seed `seed`), the
/// fitter's pick, and (with `refine`) ScoreHMR refinement of the pick.
pub fn score_prior(fitter: &Fitter, samples: &[Sample], n: usize, seed: u64, refine: bool) -> Result<PriorScores> {
    let b = samples.len();
    let kp: Vec<f32> = samples.iter().flat_map(|s| s.keypoints.iter().copied()).collect();
    let cams: Vec<Pinhole> = samples.iter().map(|s| s.camera).collect();
    let x = sample_batched(fitter, samples, n, seed)?;
    let errs = hypothesis_errors(&fitter.body, samples, &x, n, &[], false)?;
    let placed = fitter.place_hypotheses(&x, &kp, &cams, n, &[])?;
    let picks = fitter.pick(&x, &placed, &kp, &cams, n)?;
    let mut sc = PriorScores { samples: b, hypotheses: n, refined_pa_mpjpe: f64::NAN, refined_mpjpe: f64::NAN, ..Default::default() };
    let (mut pck_hit, mut pck_all, mut rep, mut rep_n) = (0usize, 0usize, 0.0f64, 0usize);
    let mut div = 0.0f64;
    for i in 0..b {
        let kpi = &kp[i * 75..(i + 1) * 75];
        let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
        for k in kpi.chunks_exact(3).filter(|k| k[2] > 0.0) {
            for d in 0..2 {
                lo[d] = lo[d].min(k[d]);
                hi[d] = hi[d].max(k[d]);
            }
        }
        let thr = PCK_FRACTION * (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1.0);
        // Spread: pelvis-aligned joints of the hypotheses.
        let mut mean = [0.0f64; 72];
        for h in 0..n {
            let j = &placed.joints[(i * n + h) * 72..(i * n + h + 1) * 72];
            for q in 0..72 {
                mean[q] += (j[q] - j[q % 3]) as f64 / n as f64;
            }
        }
        let mut ss = 0.0f64;
        for h in 0..n {
            let hi_ = i * n + h;
            let e = errs[hi_];
            sc.hyp_mpjpe += e[0] as f64;
            sc.hyp_pa_mpjpe += e[1] as f64;
            let j = &placed.joints[hi_ * 72..(hi_ + 1) * 72];
            for q in 0..72 {
                ss += ((j[q] - j[q % 3]) as f64 - mean[q]).powi(2);
            }
            let pts = &placed.keypoints[hi_ * 75..(hi_ + 1) * 75];
            for (p, k) in pts.chunks_exact(3).zip(kpi.chunks_exact(3)) {
                if k[2] > 0.0 && p[2] > 1e-6 {
                    let uv = cams[i].project_point(&[p[0], p[1], p[2]]);
                    pck_all += 1;
                    if ((uv[0] - k[0]).powi(2) + (uv[1] - k[1]).powi(2)).sqrt() <= thr {
                        pck_hit += 1;
                    }
                }
            }
            if placed.reprojection_px[hi_].is_finite() {
                rep += placed.reprojection_px[hi_] as f64;
                rep_n += 1;
            }
        }
        div += (ss / (n * NUM_JOINTS) as f64).sqrt() * 1000.0;
        let e = errs[i * n + picks[i]];
        sc.picked_mpjpe += e[0] as f64;
        sc.picked_pa_mpjpe += e[1] as f64;
    }
    let (bn, bf) = ((b * n) as f64, b as f64);
    sc.hyp_mpjpe /= bn;
    sc.hyp_pa_mpjpe /= bn;
    sc.picked_mpjpe /= bf;
    sc.picked_pa_mpjpe /= bf;
    sc.diversity_mm = div / bf;
    sc.pck = pck_hit as f64 / pck_all.max(1) as f64;
    sc.hyp_reprojection_px = rep / rep_n.max(1) as f64;
    if refine {
        let xi: Vec<f32> = (0..b).flat_map(|i| x[(i * n + picks[i]) * 144..(i * n + picks[i] + 1) * 144].to_vec()).collect();
        let ti: Vec<f32> = (0..b).flat_map(|i| placed.cam_t[(i * n + picks[i]) * 3..(i * n + picks[i] + 1) * 3].to_vec()).collect();
        let sizes: Vec<(u32, u32)> = samples.iter().map(|s| s.image_size).collect();
        let (xr, _) = fitter.refine_view(&xi, &ti, &kp, &cams, &sizes, &[], &RefineConfig::keypoints(), None, None)?;
        let e = hypothesis_errors(&fitter.body, samples, &xr, 1, &[], false)?;
        sc.refined_mpjpe = e.iter().map(|v| v[0] as f64).sum::<f64>() / bf;
        sc.refined_pa_mpjpe = e.iter().map(|v| v[1] as f64).sum::<f64>() / bf;
    }
    Ok(sc)
}

/// A prior's scores on both domains, as a fine-tuning report carries them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DomainReport {
    pub label: String,
    pub cmu: PriorScores,
    pub daz: PriorScores,
}

/// Markdown table of reports (one row per report and domain).
pub fn markdown(reports: &[DomainReport]) -> String {
    let mut s = String::from("| prior | domain | hyp. PA-MPJPE | hyp. MPJPE | picked PA-MPJPE | refined PA-MPJPE | refined MPJPE | spread mm | PCK@0.05 | hyp. reproj. px |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for r in reports {
        for (d, v) in [("CMU val", &r.cmu), ("dance val", &r.daz)] {
            s.push_str(&format!(
                "| {} | {d} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.3} | {:.1} |\n",
                r.label, v.hyp_pa_mpjpe, v.hyp_mpjpe, v.picked_pa_mpjpe, v.refined_pa_mpjpe, v.refined_mpjpe, v.diversity_mm, v.pck, v.hyp_reprojection_px
            ));
        }
    }
    s
}

/// Evaluation samples of both domains (validation clips), fixed by `seed`.
pub struct EvalSets {
    pub cmu: Vec<Sample>,
    pub daz: Vec<Sample>,
}

impl EvalSets {
    pub fn new(body: &BodyModel, d: &Domains, n: usize, seed: u64) -> Result<Self> {
        let cfg = SynthConfig::default();
        Ok(Self { cmu: domain_samples(body, &d.cmu_val, n, &cfg, seed)?, daz: domain_samples(body, &d.daz_val, n, &cfg, seed ^ 0xDA2)? })
    }

    /// Scores `fitter` on both sets.
    pub fn report(&self, fitter: &Fitter, label: &str, n: usize, refine: bool) -> Result<DomainReport> {
        Ok(DomainReport { label: label.into(), cmu: score_prior(fitter, &self.cmu, n, 11, refine)?, daz: score_prior(fitter, &self.daz, n, 13, refine)? })
    }
}
