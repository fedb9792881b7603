//! DDPM training of the keypoint-conditioned prior ([`crate::diffusion::Prior`]) on synthetic
//! observations of mocap poses ([`super::synth`]).
//!
//! ScoreHMR's recipe (reference/scorehmr.md section 6, `trainer.py`): eps-prediction MSE with
//! t ~ U{0..999} on the cosine schedule, Adam with betas (0.9, 0.99) and no weight decay,
//! gradient-norm clipping at 1.0, and an EMA of the weights (ema_pytorch: beta 0.995, update
//! every 10 steps, after step 100, warm-up `1 - (1 + e)^(-2/3)`); the EMA weights are the ones
//! shipped. Deviations, each a flag: the learning rate (ScoreHMR 1e-4 over 1 M steps; a budget of
//! tens of thousands of steps on a CPU needs more), the batch (ScoreHMR 128), and condition
//! dropout (ScoreHMR has none; rigfit's null condition doubles as the unconditional prior).
//!
//! Training is deterministic for a seed: step k draws its batch from `Rng::new(seed ^ k)`, so a
//! run resumed from a checkpoint continues exactly as the uninterrupted run would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::synth::{Generator, Sample, SynthConfig, POSE_DIM};
use crate::body::BodyModel;
use crate::diffusion::prior::{condition_tensor, Prior, PriorConfig};
use crate::diffusion::{Rng, Schedule};
use crate::error::{Error, Result};
use super::tune::Tuner;

/// Settings of a training run (serialised into checkpoints and the prior's provenance).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub steps: usize,
    pub batch: usize,
    /// Adam learning rate (ScoreHMR: 1e-4).
    pub lr: f64,
    /// Linear warm-up steps of the learning rate, then cosine decay to `lr * final_lr_frac`.
    pub warmup: usize,
    pub final_lr_frac: f64,
    /// Adam betas. // ScoreHMR trainer.py: adam_betas = (0.9, 0.99)
    pub betas: (f64, f64),
    /// Gradient-norm clip. // ScoreHMR trainer.py: max_grad_norm = 1.0
    pub clip: f64,
    /// EMA decay and period. // ScoreHMR trainer.py: EMA(beta=0.995, update_every=10)
    pub ema_beta: f64,
    pub ema_every: usize,
    /// Probability of training a row with the null condition.
    pub cond_drop: f64,
    pub seed: u64,
    /// Validation every this many steps (0 = only at the end), on `val_size` fixed samples.
    pub val_every: usize,
    pub val_size: usize,
    /// Checkpoint every this many steps (0 = never).
    pub checkpoint_every: usize,
    pub synth: SynthConfig,
    pub prior: PriorConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 20_000,
            batch: 256,
            lr: 1e-3,
            warmup: 500,
            final_lr_frac: 0.05,
            betas: (0.9, 0.99),
            clip: 1.0,
            ema_beta: 0.995,
            ema_every: 10,
            cond_drop: 0.1,
            seed: 0,
            val_every: 1000,
            val_size: 1024,
            checkpoint_every: 2000,
            synth: SynthConfig::default(),
            prior: PriorConfig::default(),
        }
    }
}

/// One validation measurement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValPoint {
    pub step: usize,
    /// Mean eps-MSE of the EMA model with the condition, over fixed t and noise.
    pub loss: f64,
    /// The same with the null condition (what the condition buys).
    pub loss_null: f64,
}

/// What a run reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainReport {
    pub steps: usize,
    pub seconds: f64,
    pub final_train_loss: f64,
    pub validation: Vec<ValPoint>,
}

/// The learning rate at `step` (warm-up, then cosine decay).
fn lr_at(cfg: &TrainConfig, step: usize) -> f64 {
    super::tune::lr_schedule(cfg.lr, cfg.warmup, cfg.final_lr_frac, cfg.steps, step)
}

/// A batch as tensors: x0 `[B, 144]`, condition features `[B, 78]`.
pub fn batch_tensors(samples: &[Sample], device: &Device) -> Result<(Tensor, Tensor)> {
    let b = samples.len();
    let x: Vec<f32> = samples.iter().flat_map(|s| s.x.iter().copied()).collect();
    let kp: Vec<f32> = samples.iter().flat_map(|s| s.keypoints.iter().copied()).collect();
    let cams: Vec<_> = samples.iter().map(|s| s.camera).collect();
    Ok((Tensor::from_vec(x, (b, POSE_DIM), device)?, condition_tensor(&kp, &cams, device, DType::F32)?))
}

/// Picks `n` poses of `poses` `[N * 216]` with `rng`.
fn pick<'p>(poses: &'p [f32], n: usize, rng: &mut Rng) -> Vec<&'p [f32]> {
    let count = poses.len() / 216;
    (0..n).map(|_| {
        let i = rng.below(count as u64) as usize;
        &poses[i * 216..(i + 1) * 216]
    }).collect()
}

/// Fixed validation data: samples, timesteps and noise.
struct ValSet {
    x0: Tensor,
    feats: Tensor,
    t: Tensor,
    noise: Tensor,
}

fn val_set(model: &BodyModel, val: &[f32], cfg: &TrainConfig, device: &Device) -> Result<ValSet> {
    let mut rng = Rng::new(cfg.seed ^ 0xA11D_A7E5);
    let mut gen = Generator::new(model, cfg.synth.clone());
    let poses = pick(val, cfg.val_size, &mut rng);
    let samples = gen.generate(&poses, &mut rng)?;
    let (x0, feats) = batch_tensors(&samples, device)?;
    let t = rng.timesteps(cfg.val_size, 1000, device)?;
    let noise = rng.normal_tensor(&[cfg.val_size, POSE_DIM], DType::F32, device)?;
    Ok(ValSet { x0, feats, t, noise })
}

fn val_loss(prior: &Prior, sched: &Schedule, v: &ValSet) -> Result<(f64, f64)> {
    let x_t = sched.q_sample(&v.x0, &v.t, &v.noise)?;
    let c = prior.encode(&v.feats)?;
    let eps = prior.denoiser.forward(&x_t, &v.t, Some(&c))?;
    let l = eps.sub(&v.noise)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64;
    let eps0 = prior.denoiser.forward(&x_t, &v.t, None)?;
    let l0 = eps0.sub(&v.noise)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64;
    Ok((l, l0))
}

/// Path of the checkpoint in `out_dir`.
pub fn checkpoint_path(out_dir: &Path) -> PathBuf {
    out_dir.join("checkpoint.safetensors")
}

fn save_checkpoint(path: &Path, step: usize, tuner: &Tuner, cfg: &TrainConfig, report: &TrainReport) -> Result<()> {
    let mut map: HashMap<String, Tensor> = HashMap::new();
    for (i, (n, v)) in tuner.vars.iter().enumerate() {
        map.insert(format!("param.{n}"), v.as_tensor().clone());
        map.insert(format!("ema.{n}"), tuner.ema[i].clone());
        map.insert(format!("adam_m.{n}"), tuner.adam[i].m.clone());
        map.insert(format!("adam_v.{n}"), tuner.adam[i].v.clone());
    }
    map.insert("step".into(), Tensor::new(&[step as u32, tuner.adam[0].t as u32], &Device::Cpu)?);
    let meta = serde_json::to_vec(&(cfg, report)).map_err(|e| Error::Input(e.to_string()))?;
    let n = meta.len();
    map.insert("meta_json".into(), Tensor::from_vec(meta, n, &Device::Cpu)?);
    let tmp = path.with_extension("tmp");
    candle_core::safetensors::save(&map, &tmp).map_err(|e| Error::Input(format!("{}: cannot write checkpoint: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Progress of a run: (step, steps, current train loss, last validation); return false to stop
/// (the run ends with [`Error::Cancelled`] after writing its checkpoint).
pub type TrainProgress<'a> = &'a mut dyn FnMut(usize, usize, f64, Option<&ValPoint>) -> bool;

/// Trains a prior on `train` poses `[N * 24 * 9]` (local rotations, Y-up world), validating on
/// `val` poses. Writes checkpoints into `out_dir` and resumes from its checkpoint when `resume`.
/// Returns the EMA prior and the report.
pub fn train_prior(
    model: &BodyModel,
    train: &[f32],
    val: &[f32],
    cfg: &TrainConfig,
    out_dir: &Path,
    resume: bool,
    device: &Device,
    progress: TrainProgress,
) -> Result<(Prior, TrainReport)> {
    train_impl(model, Source::Poses(train), None, val, cfg, out_dir, resume, device, progress)
}

/// [`train_prior`] on a fixed set of samples (observation + label, as a pseudo-ground-truth
/// dataset is: no fresh cameras, no augmentation): each step draws `cfg.batch` of them.
#[allow(clippy::too_many_arguments)]
pub fn train_prior_fixed(
    model: &BodyModel,
    samples: &[Sample],
    val: &[f32],
    cfg: &TrainConfig,
    out_dir: &Path,
    resume: bool,
    device: &Device,
    progress: TrainProgress,
) -> Result<(Prior, TrainReport)> {
    if samples.is_empty() {
        return Err(Error::Input("train_prior_fixed: no samples".into()));
    }
    train_impl(model, Source::Fixed(samples), None, val, cfg, out_dir, resume, device, progress)
}

/// [`train_prior_fixed`] starting from the weights of `init` (fine-tuning; `cfg.prior` must
/// equal `init.config` up to provenance).
#[allow(clippy::too_many_arguments)]
pub fn finetune_prior_fixed(
    model: &BodyModel,
    init: &Prior,
    samples: &[Sample],
    val: &[f32],
    cfg: &TrainConfig,
    out_dir: &Path,
    device: &Device,
    progress: TrainProgress,
) -> Result<(Prior, TrainReport)> {
    if samples.is_empty() {
        return Err(Error::Input("finetune_prior_fixed: no samples".into()));
    }
    train_impl(model, Source::Fixed(samples), Some(init), val, cfg, out_dir, false, device, progress)
}

/// Where training batches come from.
enum Source<'a> {
    /// Poses `[N * 216]` seen by fresh random cameras every step.
    Poses(&'a [f32]),
    /// A fixed sample set.
    Fixed(&'a [Sample]),
}

#[allow(clippy::too_many_arguments)]
fn train_impl(
    model: &BodyModel,
    source: Source,
    init: Option<&Prior>,
    val: &[f32],
    cfg: &TrainConfig,
    out_dir: &Path,
    resume: bool,
    device: &Device,
    progress: TrainProgress,
) -> Result<(Prior, TrainReport)> {
    let bad = |v: &[f32]| v.is_empty() || v.len() % 216 != 0;
    if let Source::Poses(train) = source {
        if bad(train) || bad(val) {
            return Err(Error::Input(format!("train_prior: {} train and {} validation values, expected non-empty [N, 24, 3, 3]", train.len(), val.len())));
        }
    } else if bad(val) {
        return Err(Error::Input(format!("train_prior: {} validation values, expected non-empty [N, 24, 3, 3]", val.len())));
    }
    if cfg.batch == 0 || cfg.steps == 0 {
        return Err(Error::Input("train_prior: steps and batch must be positive".into()));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let sched = Schedule::scorehmr();
    let mut tuner = match init {
        Some(p) => Tuner::from_prior(p, cfg.betas)?,
        None => {
            let (prior, evars, dvars) = Prior::init(&cfg.prior, cfg.seed, DType::F32, device)?;
            Tuner::from_varmaps(prior, &evars, &dvars, cfg.betas)?
        }
    };
    (tuner.clip, tuner.ema_beta, tuner.ema_every) = (cfg.clip, cfg.ema_beta, cfg.ema_every);
    let mut report = TrainReport { steps: cfg.steps, seconds: 0.0, final_train_loss: f64::NAN, validation: Vec::new() };
    let mut start = 0usize;
    let ckpt = checkpoint_path(out_dir);
    if resume && ckpt.exists() {
        let t = candle_core::safetensors::load(&ckpt, device).map_err(|e| Error::Input(format!("{}: {e}", ckpt.display())))?;
        let get = |k: &str| t.get(k).cloned().ok_or_else(|| Error::MissingKey { path: ckpt.display().to_string(), key: k.into(), expected: "a rigfit training checkpoint".into() });
        let meta: Vec<u8> = get("meta_json")?.to_vec1()?;
        let (saved_cfg, saved_report): (TrainConfig, TrainReport) = serde_json::from_slice(&meta).map_err(|e| Error::Input(format!("{}: {e}", ckpt.display())))?;
        if saved_cfg.prior != cfg.prior || saved_cfg.seed != cfg.seed || saved_cfg.batch != cfg.batch {
            return Err(Error::Input(format!("{}: the checkpoint was trained with other settings (prior size, seed or batch); use another output folder or the same settings", ckpt.display())));
        }
        for (i, (n, v)) in tuner.vars.iter().enumerate() {
            v.set(&get(&format!("param.{n}"))?)?;
            tuner.ema[i] = get(&format!("ema.{n}"))?;
            tuner.adam[i].m = get(&format!("adam_m.{n}"))?;
            tuner.adam[i].v = get(&format!("adam_v.{n}"))?;
        }
        let st: Vec<u32> = get("step")?.to_vec1()?;
        start = st[0] as usize;
        tuner.steps = start;
        for a in tuner.adam.iter_mut() {
            a.t = st[1] as i32;
        }
        report.validation = saved_report.validation;
        report.seconds = saved_report.seconds;
    }
    let vset = val_set(model, val, cfg, device)?;
    let mut gen = Generator::new(model, cfg.synth.clone());
    let t0 = std::time::Instant::now();
    let secs_before = report.seconds;
    let mut smooth_loss = f64::NAN;
    for step in start..cfg.steps {
        let mut rng = Rng::new(cfg.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (x0, feats) = match source {
            Source::Poses(train) => {
                let poses = pick(train, cfg.batch, &mut rng);
                batch_tensors(&gen.generate(&poses, &mut rng)?, device)?
            }
            Source::Fixed(all) => {
                let batch: Vec<Sample> = (0..cfg.batch).map(|_| all[rng.below(all.len() as u64) as usize].clone()).collect();
                batch_tensors(&batch, device)?
            }
        };
        let t = rng.timesteps(cfg.batch, sched.num_timesteps(), device)?;
        let noise = rng.normal_tensor(&[cfg.batch, POSE_DIM], DType::F32, device)?;
        let drop: Vec<u8> = (0..cfg.batch).map(|_| (rng.uniform() < cfg.cond_drop) as u8).collect();
        let drop = Tensor::from_vec(drop, cfg.batch, device)?;
        let c = tuner.prior.encode(&feats)?;
        let x_t = sched.q_sample(&x0, &t, &noise)?;
        let eps = tuner.prior.denoiser.forward_masked(&x_t, &t, &c, &drop)?;
        let loss = eps.sub(&noise)?.sqr()?.mean_all()?;
        let lv = loss.to_scalar::<f32>()? as f64;
        if !lv.is_finite() {
            return Err(Error::Input(format!("training diverged at step {step} (loss {lv}); lower --lr")));
        }
        smooth_loss = if smooth_loss.is_nan() { lv } else { 0.98 * smooth_loss + 0.02 * lv };
        tuner.step(&loss, lr_at(cfg, step))?;
        let k = step + 1;
        let last = k == cfg.steps;
        let mut vp = None;
        if (cfg.val_every > 0 && k % cfg.val_every == 0) || last {
            let ep = tuner.ema_prior()?;
            let (l, l0) = val_loss(&ep, &sched, &vset)?;
            report.validation.push(ValPoint { step: k, loss: l, loss_null: l0 });
            vp = report.validation.last().cloned();
        }
        report.seconds = secs_before + t0.elapsed().as_secs_f64();
        report.final_train_loss = smooth_loss;
        if (cfg.checkpoint_every > 0 && k % cfg.checkpoint_every == 0) || last {
            save_checkpoint(&ckpt, k, &tuner, cfg, &report)?;
        }
        if !progress(k, cfg.steps, smooth_loss, vp.as_ref()) {
            save_checkpoint(&ckpt, k, &tuner, cfg, &report)?;
            return Err(Error::Cancelled);
        }
    }
    Ok((tuner.ema_prior()?, report))
}

/// Training and validation poses `[N * 24 * 9]` from mocap clips, split by clip with
/// [`super::mocap::is_validation`]. The hand joints (22, 23) are set to the rest pose: CMU
/// captures no hands and its retarget carries a constant 7-degree bend there
/// ([`super::mocap::STATIC_JOINTS`]), which a prior should not learn.
pub fn split_poses(clips: &[super::mocap::Clip]) -> (Vec<f32>, Vec<f32>) {
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for c in clips {
        let dst = if super::mocap::is_validation(&c.name) { &mut val } else { &mut train };
        for f in 0..c.num_frames() {
            let p = c.pose(f);
            let start = dst.len();
            dst.extend_from_slice(p);
            for j in [22usize, 23] {
                dst[start + j * 9..start + j * 9 + 9].copy_from_slice(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
            }
        }
    }
    (train, val)
}
