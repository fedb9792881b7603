//! HMR-Scorer (ADHMR, reference/adhmr_drpose.md A2): a network that scores a candidate fit
//! against the observation without 3D labels, trained as a ranker.
//!
//! Adaptation to rigfit (ADHMR's scorer reads an image through a frozen ViT; rigfit's observation
//! is the 2D keypoints): the input of one candidate is
//! - the observation: [`condition_features`] (keypoints normalised to the person's box, with
//!   confidences, plus the box's camera ray), 78 values;
//! - the candidate placed in the camera by the closed-form translation
//!   ([`crate::fit::Fitter::place_hypotheses`]): its projected BODY_25 points in the same box
//!   frame (50), their residuals to the visible keypoints (50, zero where missing, clamped to
//!   +-2 box sides), its 24 SMPL joints relative to the pelvis in the camera frame, metres (72:
//!   ADHMR's uvd joints carry the same depth information), and its 6D pose (144: the rotations
//!   add what joints alone cannot show, twist and hands);
//! - an MLP (GELU) instead of ADHMR's joint-token transformer over image features: with no
//!   image there are no local features to attend to.
//!
//! Training ([`train_scorer`]) follows ADHMR's `ScoreLoss`: the sum over four errors (MPJPE,
//! PA-MPJPE, PVE, PA-PVE) of pairwise RankNet losses with sigma 5,
//! `BCE(sigmoid(5 (s_i - s_j)), 0.5 (1 + clamp(rank_i - rank_j, -1, 1)))`, on hypotheses made
//! around the ground truth (Gaussian noise on the joint rotations, ADHMR's `Random_Generator`,
//! here at a spread of noise levels) and by sampling the prior (ADHMR: 15 per image; here 15 per
//! observation, 6 sampled and 9 perturbed). Deviation: besides the pairs within an observation
//! (ADHMR's), pairs across the observations of a batch are ranked too (equal total weight), so
//! that scores compare across observations: data cleaning ranks every training label against
//! every other. Adam lr 5e-4 (ADHMR), clip 1.0.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Linear, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::synth::Sample;
use super::tune::hypothesis_errors;
use crate::body::{NUM_BODY25, NUM_JOINTS};
use crate::diffusion::prior::{condition_features, keypoint_box, COND_FEATURES};
use crate::diffusion::{gelu, Rng};
use crate::error::{Error, Result};
use crate::fit::{Fitter, Placed};
use crate::geom::camera::Pinhole;
use crate::geom::rot::{axis_angle_to_matrix, mat3_mul, matrix_to_rot6d, rot6d_to_matrix};
use crate::guide::Adam;

/// Length of one candidate's features (see the module docs).
pub const SCORER_FEATURES: usize = COND_FEATURES + NUM_BODY25 * 4 + NUM_JOINTS * 3 + 144;

/// Sizes of a scorer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScorerConfig {
    pub hidden: usize,
    /// Hidden layers.
    pub layers: usize,
    /// Free-form provenance (training settings), written by training.
    #[serde(default)]
    pub provenance: serde_json::Value,
}

impl Default for ScorerConfig {
    fn default() -> Self {
        Self { hidden: 512, layers: 3, provenance: serde_json::Value::Null }
    }
}

/// The features `[F]` of one candidate: its 6D pose `x` `[144]`, placed BODY_25 points
/// `placed_kp` `[25, 3]` and SMPL joints `placed_joints` `[24, 3]` (camera frame), against the
/// observed keypoints `kp` `[25, 3]` seen by `camera`. Writes into `out` `[SCORER_FEATURES]`.
pub fn candidate_features(x: &[f32], placed_kp: &[f32], placed_joints: &[f32], kp: &[f32], camera: &Pinhole, out: &mut [f32]) {
    out.fill(0.0);
    out[..COND_FEATURES].copy_from_slice(&condition_features(kp, camera));
    let (bx, by, s) = keypoint_box(kp).unwrap_or((camera.cx, camera.cy, camera.fx.max(1.0)));
    let o = COND_FEATURES;
    for q in 0..NUM_BODY25 {
        let p = &placed_kp[q * 3..q * 3 + 3];
        let (u, v, ok) = if p[2] > 1e-4 {
            let uv = camera.project_point(&[p[0], p[1], p[2]]);
            (((uv[0] - bx) / s).clamp(-3.0, 3.0), ((uv[1] - by) / s).clamp(-3.0, 3.0), true)
        } else {
            (0.0, 0.0, false)
        };
        out[o + 2 * q] = u;
        out[o + 2 * q + 1] = v;
        let k = &kp[q * 3..q * 3 + 3];
        if k[2] > 0.0 {
            let (ru, rv) = if ok { (u - (k[0] - bx) / s, v - (k[1] - by) / s) } else { (2.0, 2.0) };
            out[o + 50 + 2 * q] = ru.clamp(-2.0, 2.0) * k[2].min(1.0);
            out[o + 50 + 2 * q + 1] = rv.clamp(-2.0, 2.0) * k[2].min(1.0);
        }
    }
    let o = o + 100;
    for j in 0..NUM_JOINTS {
        for d in 0..3 {
            out[o + j * 3 + d] = placed_joints[j * 3 + d] - placed_joints[d];
        }
    }
    out[o + 72..o + 72 + 144].copy_from_slice(&x[..144]);
}

/// Features `[B * n, F]` of placed hypotheses (observation-major, `n` per observation).
pub fn features(x: &[f32], placed: &Placed, keypoints: &[f32], cameras: &[Pinhole], n: usize) -> Vec<f32> {
    let m = cameras.len() * n;
    let mut f = vec![0.0f32; m * SCORER_FEATURES];
    for (j, chunk) in f.chunks_exact_mut(SCORER_FEATURES).enumerate() {
        let i = j / n;
        candidate_features(
            &x[j * 144..(j + 1) * 144],
            &placed.keypoints[j * 75..(j + 1) * 75],
            &placed.joints[j * 72..(j + 1) * 72],
            &keypoints[i * 75..(i + 1) * 75],
            &cameras[i],
            chunk,
        );
    }
    f
}

/// The scorer network: features `[N, F]` -> scores `[N]` (higher = better).
#[derive(Clone, Debug)]
pub struct Scorer {
    pub config: ScorerConfig,
    layers: Vec<Linear>,
    head: Linear,
    names: Vec<String>,
}

impl Scorer {
    fn param_shapes(cfg: &ScorerConfig) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        let mut fin = SCORER_FEATURES;
        for l in 0..cfg.layers {
            v.push((format!("l{l}.weight"), vec![cfg.hidden, fin]));
            v.push((format!("l{l}.bias"), vec![cfg.hidden]));
            fin = cfg.hidden;
        }
        v.push(("head.weight".into(), vec![1, fin]));
        v.push(("head.bias".into(), vec![1]));
        v
    }

    fn build(cfg: &ScorerConfig, vb: VarBuilder) -> Result<Self> {
        let mut layers = Vec::new();
        let mut fin = SCORER_FEATURES;
        for l in 0..cfg.layers {
            layers.push(candle_nn::linear(fin, cfg.hidden, vb.pp(format!("l{l}")))?);
            fin = cfg.hidden;
        }
        let head = candle_nn::linear(fin, 1, vb.pp("head"))?;
        let names = Self::param_shapes(cfg).into_iter().map(|(n, _)| n).collect();
        Ok(Self { config: cfg.clone(), layers, head, names })
    }

    /// A trainable scorer with deterministic weights from `seed` (PyTorch's default Linear init;
    /// ADHMR uses Kaiming-normal weights clipped to norm 1, which matters for its deeper
    /// transformer, not for this MLP).
    pub fn init(cfg: &ScorerConfig, seed: u64, device: &Device) -> Result<(Self, VarMap)> {
        if cfg.layers == 0 || cfg.hidden == 0 {
            return Err(Error::Input("scorer: layers and hidden must be positive".into()));
        }
        let vm = VarMap::new();
        {
            let mut rng = Rng::new(seed);
            let mut data = vm.data().lock().expect("fresh VarMap lock");
            let shapes = Self::param_shapes(cfg);
            let fan: HashMap<String, usize> = shapes.iter().filter(|(_, s)| s.len() == 2).map(|(k, s)| (k.trim_end_matches(".weight").to_string(), s[1])).collect();
            for (name, shape) in shapes {
                let stem = name.rsplit_once('.').map(|(a, _)| a).unwrap_or(&name).to_string();
                let bound = 1.0 / (fan[&stem] as f64).sqrt();
                let n: usize = shape.iter().product();
                let vals: Vec<f32> = (0..n).map(|_| rng.uniform_in(-bound, bound) as f32).collect();
                data.insert(name, Var::from_tensor(&Tensor::from_vec(vals, shape, device)?)?);
            }
        }
        let s = Self::build(cfg, VarBuilder::from_varmap(&vm, DType::F32, device))?;
        Ok((s, vm))
    }

    /// Scores `[N]` of features `[N, F]`.
    pub fn forward(&self, feats: &Tensor) -> Result<Tensor> {
        let mut h = feats.clone();
        for l in &self.layers {
            h = gelu(&l.forward(&h)?)?;
        }
        Ok(self.head.forward(&h)?.squeeze(1)?)
    }

    /// Scores of CPU features `[N, F]`, in chunks.
    pub fn score(&self, feats: &[f32], device: &Device) -> Result<Vec<f32>> {
        let n = feats.len() / SCORER_FEATURES;
        let mut out = Vec::with_capacity(n);
        for c in feats.chunks(4096 * SCORER_FEATURES) {
            let m = c.len() / SCORER_FEATURES;
            out.extend(self.forward(&Tensor::from_slice(c, (m, SCORER_FEATURES), device)?)?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        let mut it = self.names.iter();
        for l in self.layers.iter().chain(std::iter::once(&self.head)) {
            v.push((it.next().expect("name").clone(), l.weight().clone()));
            v.push((it.next().expect("name").clone(), l.bias().expect("bias").clone()));
        }
        v
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.tensors().iter().map(|(_, t)| t.elem_count()).sum()
    }

    /// Writes the scorer (f32 tensors + `config_json`) to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut map: HashMap<String, Tensor> = HashMap::new();
        for (n, t) in self.tensors() {
            map.insert(n, t.to_device(&Device::Cpu)?);
        }
        let json = serde_json::to_vec(&self.config).map_err(|e| Error::Input(e.to_string()))?;
        let n = json.len();
        map.insert("scorer_config_json".into(), Tensor::from_vec(json, n, &Device::Cpu)?);
        let tmp = std::env::temp_dir().join(format!("rigfit_scorer_{}_{:p}.safetensors", std::process::id(), &map));
        candle_core::safetensors::save(&map, &tmp).map_err(|e| Error::Input(format!("cannot serialise the scorer: {e}")))?;
        let bytes = std::fs::read(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let _ = std::fs::remove_file(&tmp);
        crate::io::write_atomic(path, &bytes)
    }

    /// Reads a scorer file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let t = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| Error::BadValue { path: origin.clone(), key: String::new(), what: format!("not a readable safetensors file: {e}") })?;
        let cfg = t.get("scorer_config_json").ok_or_else(|| Error::MissingKey { path: origin.clone(), key: "scorer_config_json".into(), expected: "a rigfit scorer (rigfit train scorer)".into() })?;
        let cfg: ScorerConfig = serde_json::from_slice(&cfg.to_vec1::<u8>()?).map_err(|e| Error::BadValue { path: origin.clone(), key: "scorer_config_json".into(), what: e.to_string() })?;
        let mut map = HashMap::new();
        for (n, s) in Self::param_shapes(&cfg) {
            match t.get(&n) {
                None => return Err(Error::MissingKey { path: origin.clone(), key: n, expected: format!("{s:?}") }),
                Some(x) if x.dims() != s.as_slice() => return Err(Error::BadShape { path: origin.clone(), key: n, found: x.dims().to_vec(), expected: format!("{s:?}") }),
                Some(x) => {
                    map.insert(n, x.to_dtype(DType::F32)?);
                }
            }
        }
        Self::build(&cfg, VarBuilder::from_tensors(map, DType::F32, device))
    }
}

/// Settings of [`train_scorer`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScorerTrainConfig {
    /// Training observations (CMU training clips, synthetic cameras and detector faults).
    pub observations: usize,
    /// Hypotheses per observation sampled from the prior (DDIM step 40).
    pub sampled: usize,
    /// Hypotheses per observation around the ground truth.
    pub perturbed: usize,
    /// Rotation noise of the perturbed hypotheses: log-uniform in this range, radians (ADHMR
    /// `Random_Generator`: 0.05 on the body joints, 0.02 on the root).
    pub noise_rad: (f64, f64),
    pub steps: usize,
    /// Observations per batch (each with all its hypotheses).
    pub groups: usize,
    /// Adam learning rate (ADHMR: 5e-4 with a x0.5 step; here cosine decay).
    pub lr: f64,
    /// RankNet sigma (ADHMR: 5).
    pub sigma: f64,
    pub seed: u64,
    pub val_observations: usize,
    pub scorer: ScorerConfig,
}

impl Default for ScorerTrainConfig {
    fn default() -> Self {
        Self { observations: 3000, sampled: 6, perturbed: 9, noise_rad: (0.02, 0.4), steps: 3000, groups: 32, lr: 5e-4, sigma: 5.0, seed: 0, val_observations: 256, scorer: ScorerConfig::default() }
    }
}

/// Hypotheses of observations with their features and true errors.
pub struct Pool {
    /// Hypotheses per observation.
    pub n: usize,
    /// `[N * n, F]`.
    pub feats: Vec<f32>,
    /// `[N * n]` errors `[MPJPE, PA-MPJPE, PVE, PA-PVE]`, mm.
    pub errors: Vec<[f32; 4]>,
    /// `[N * n, 144]` the hypotheses.
    pub x: Vec<f32>,
    /// `[N * n]` reprojection errors (closed-form translation), pixels.
    pub reprojection_px: Vec<f32>,
    /// `[N * n]` true when the hypothesis was sampled from the prior.
    pub sampled: Vec<bool>,
}

/// `x` `[144]` with its rotations perturbed: joint j rotated by exp(sigma_j n), n ~ N(0, I),
/// sigma_j = `sigma` on the body joints (1..21) and `0.4 sigma` on the root; hands untouched.
pub fn perturb(x: &[f32], sigma: f64, rng: &mut Rng) -> Vec<f32> {
    let mut out = x.to_vec();
    for j in 0..22 {
        let s = if j == 0 { 0.4 * sigma } else { sigma };
        let aa = [(rng.normal() * s) as f32, (rng.normal() * s) as f32, (rng.normal() * s) as f32];
        let r6: [f32; 6] = x[j * 6..j * 6 + 6].try_into().expect("6D");
        let r = mat3_mul(&rot6d_to_matrix(&r6), &axis_angle_to_matrix(&aa));
        out[j * 6..j * 6 + 6].copy_from_slice(&matrix_to_rot6d(&r));
    }
    out
}

/// Builds a pool of `cfg.sampled + cfg.perturbed` hypotheses per sample.
pub fn build_pool(fitter: &Fitter, samples: &[Sample], cfg: &ScorerTrainConfig, seed: u64, progress: &mut dyn FnMut(usize, usize)) -> Result<Pool> {
    let n = cfg.sampled + cfg.perturbed;
    let mut pool = Pool { n, feats: Vec::new(), errors: Vec::new(), x: Vec::new(), reprojection_px: Vec::new(), sampled: Vec::new() };
    let mut rng = Rng::new(seed ^ 0x5C0_4E5);
    let (lo, hi) = (cfg.noise_rad.0.ln(), cfg.noise_rad.1.ln());
    let chunk = 128;
    for (c, part) in samples.chunks(chunk).enumerate() {
        let kp: Vec<f32> = part.iter().flat_map(|s| s.keypoints.iter().copied()).collect();
        let cams: Vec<Pinhole> = part.iter().map(|s| s.camera).collect();
        let sampled = if cfg.sampled > 0 { fitter.sample_hypotheses(&kp, &cams, cfg.sampled, 40, seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9))? } else { Vec::new() };
        let mut x = Vec::with_capacity(part.len() * n * 144);
        for (i, s) in part.iter().enumerate() {
            x.extend_from_slice(&sampled[i * cfg.sampled * 144..(i + 1) * cfg.sampled * 144]);
            for _ in 0..cfg.perturbed {
                let sigma = rng.uniform_in(lo, hi).exp();
                x.extend(perturb(&s.x, sigma, &mut rng));
            }
            pool.sampled.extend((0..n).map(|h| h < cfg.sampled));
        }
        let placed = fitter.place_hypotheses(&x, &kp, &cams, n, &[])?;
        pool.feats.extend(features(&x, &placed, &kp, &cams, n));
        pool.errors.extend(hypothesis_errors(&fitter.body, part, &x, n, &[], true)?);
        pool.reprojection_px.extend(placed.reprojection_px.iter().copied());
        pool.x.extend(x);
        progress(((c + 1) * chunk).min(samples.len()), samples.len());
    }
    Ok(pool)
}

/// Pairwise RankNet loss (ADHMR `ScoreLoss`) of scores `s` `[M]` against the errors `err`
/// (`[M]` per metric): mean over pairs within a group (`group[i]`) plus mean over pairs across
/// groups, summed over metrics.
fn ranknet_loss(s: &Tensor, errs: &[Vec<f32>], group: &[usize], sigma: f64) -> Result<Tensor> {
    let m = group.len();
    let dev = s.device();
    let z = (s.unsqueeze(1)?.broadcast_sub(&s.unsqueeze(0)?)? * sigma)?; // [M, M]: s_i - s_j
    // softplus(z) = relu(z) + log(1 + exp(-|z|)); BCE with logits = softplus(z) - t z.
    let sp = (z.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    let mut within = vec![0.0f32; m * m];
    let mut across = vec![0.0f32; m * m];
    for i in 0..m {
        for j in 0..m {
            if i != j {
                if group[i] == group[j] {
                    within[i * m + j] = 1.0;
                } else {
                    across[i * m + j] = 1.0;
                }
            }
        }
    }
    let nw = within.iter().sum::<f32>().max(1.0);
    let na = across.iter().sum::<f32>().max(1.0);
    let w: Vec<f32> = within.iter().zip(&across).map(|(a, b)| a / nw + b / na).collect();
    let w = Tensor::from_vec(w, (m, m), dev)?;
    let mut total: Option<Tensor> = None;
    for e in errs {
        // t_ij = 1 when i has the lower error (higher rank), 0 when higher, 0.5 on ties.
        let t: Vec<f32> = (0..m * m).map(|k| {
            let (i, j) = (k / m, k % m);
            if e[i] < e[j] { 1.0 } else if e[i] > e[j] { 0.0 } else { 0.5 }
        }).collect();
        let t = Tensor::from_vec(t, (m, m), dev)?;
        let l = ((&sp - (&z * &t)?)? * &w)?.sum_all()?;
        total = Some(match total {
            None => l,
            Some(a) => (a + l)?,
        });
    }
    Ok(total.expect("at least one metric"))
}

/// Correlations of scores with errors (higher score should mean lower error: reported as the
/// correlation of `-score` with the error, so 1 is perfect).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Correlation {
    pub metric: String,
    /// Over all hypotheses of all observations.
    pub pearson: f64,
    pub spearman: f64,
    /// Mean over observations of the Spearman correlation among that observation's hypotheses.
    pub spearman_within: f64,
}

/// How a scorer ranks a pool.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScorerEval {
    pub domain: String,
    pub observations: usize,
    pub hypotheses: usize,
    pub correlations: Vec<Correlation>,
    /// Over the sampled hypotheses only (what fitting ranks): PA-MPJPE of the pick by
    /// reprojection, by the scorer, the mean, and the best (oracle), mm.
    pub pick_reprojection_pa: f64,
    pub pick_scorer_pa: f64,
    pub mean_pa: f64,
    pub oracle_pa: f64,
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].partial_cmp(&v[b]).unwrap_or(std::cmp::Ordering::Equal));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for k in i..=j {
            r[idx[k]] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    r
}

/// Pearson correlation (0 when either side is constant).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    if saa <= 0.0 || sbb <= 0.0 { 0.0 } else { sab / (saa * sbb).sqrt() }
}

/// Spearman rank correlation (ties get mean ranks).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Evaluates `scorer` on `pool`.
pub fn evaluate_scorer(scorer: &Scorer, pool: &Pool, domain: &str, device: &Device) -> Result<ScorerEval> {
    let s = scorer.score(&pool.feats, device)?;
    let neg: Vec<f64> = s.iter().map(|v| -(*v as f64)).collect();
    let n = pool.n;
    let obs = s.len() / n;
    let mut ev = ScorerEval { domain: domain.into(), observations: obs, hypotheses: s.len(), ..Default::default() };
    for (m, name) in ["MPJPE", "PA-MPJPE", "PVE", "PA-PVE"].iter().enumerate() {
        let e: Vec<f64> = pool.errors.iter().map(|v| v[m] as f64).collect();
        let mut within = 0.0;
        for i in 0..obs {
            within += spearman(&neg[i * n..(i + 1) * n], &e[i * n..(i + 1) * n]);
        }
        ev.correlations.push(Correlation { metric: name.to_string(), pearson: pearson(&neg, &e), spearman: spearman(&neg, &e), spearman_within: within / obs as f64 });
    }
    let mut cnt = 0;
    for i in 0..obs {
        let hs: Vec<usize> = (i * n..(i + 1) * n).filter(|&j| pool.sampled[j]).collect();
        if hs.is_empty() {
            continue;
        }
        cnt += 1;
        let by = |key: &dyn Fn(usize) -> f64| hs.iter().copied().min_by(|&a, &b| key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal)).expect("non-empty");
        ev.pick_reprojection_pa += pool.errors[by(&|j| pool.reprojection_px[j] as f64)][1] as f64;
        ev.pick_scorer_pa += pool.errors[by(&|j| -(s[j] as f64))][1] as f64;
        ev.oracle_pa += pool.errors[by(&|j| pool.errors[j][1] as f64)][1] as f64;
        ev.mean_pa += hs.iter().map(|&j| pool.errors[j][1] as f64).sum::<f64>() / hs.len() as f64;
    }
    let c = cnt.max(1) as f64;
    ev.pick_reprojection_pa /= c;
    ev.pick_scorer_pa /= c;
    ev.oracle_pa /= c;
    ev.mean_pa /= c;
    Ok(ev)
}

/// What [`train_scorer`] reports.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScorerReport {
    pub config: Option<ScorerTrainConfig>,
    pub seconds: f64,
    pub final_loss: f64,
    pub validation: Vec<ScorerEval>,
    /// Features and network, per hypothesis (batched), milliseconds.
    pub ms_per_hypothesis: f64,
}

/// Trains a scorer on `pool` (from [`build_pool`]); `progress(step, steps, loss)` returns false
/// to cancel.
pub fn train_scorer(pool: &Pool, cfg: &ScorerTrainConfig, device: &Device, progress: &mut dyn FnMut(usize, usize, f64) -> bool) -> Result<(Scorer, f64)> {
    let n = pool.n;
    let obs = pool.errors.len() / n;
    if obs == 0 {
        return Err(Error::Input("train_scorer: empty pool".into()));
    }
    let (mut scorer, vm) = Scorer::init(&cfg.scorer, cfg.seed, device)?;
    scorer.config.provenance = serde_json::to_value(cfg).unwrap_or_default();
    let vars: Vec<Var> = {
        let d = vm.data().lock().expect("varmap lock");
        let mut names: Vec<&String> = d.keys().collect();
        names.sort();
        names.into_iter().map(|k| d[k].clone()).collect()
    };
    let mut adam: Vec<Adam> = vars.iter().map(|v| Adam::new(v.as_tensor(), cfg.lr)).collect::<Result<_>>()?;
    let mut rng = Rng::new(cfg.seed ^ 0xBA7C4);
    let mut smooth = f64::NAN;
    let g = cfg.groups.min(obs);
    for step in 0..cfg.steps {
        let picks: Vec<usize> = (0..g).map(|_| rng.below(obs as u64) as usize).collect();
        let mut f = Vec::with_capacity(g * n * SCORER_FEATURES);
        let mut errs = vec![Vec::with_capacity(g * n); 4];
        let mut group = Vec::with_capacity(g * n);
        for (gi, &o) in picks.iter().enumerate() {
            f.extend_from_slice(&pool.feats[o * n * SCORER_FEATURES..(o + 1) * n * SCORER_FEATURES]);
            for h in 0..n {
                for (m, e) in errs.iter_mut().enumerate() {
                    e.push(pool.errors[o * n + h][m]);
                }
                group.push(gi);
            }
        }
        let ft = Tensor::from_vec(f, (g * n, SCORER_FEATURES), device)?;
        let s = scorer.forward(&ft)?;
        let loss = ranknet_loss(&s, &errs, &group, cfg.sigma)?;
        let lv = loss.to_scalar::<f32>()? as f64;
        if !lv.is_finite() {
            return Err(Error::Input(format!("scorer training diverged at step {step}; lower --lr")));
        }
        smooth = if smooth.is_nan() { lv } else { 0.98 * smooth + 0.02 * lv };
        let lr = super::tune::lr_schedule(cfg.lr, 100, 0.05, cfg.steps, step);
        let refs: Vec<&Var> = vars.iter().collect();
        super::tune::clipped_adam_step(&loss, &refs, &mut adam, 1.0, lr)?;
        if !progress(step + 1, cfg.steps, smooth) {
            return Err(Error::Cancelled);
        }
    }
    // Detach: a scorer on plain tensors.
    let map: HashMap<String, Tensor> = vm.data().lock().expect("varmap lock").iter().map(|(k, v)| (k.clone(), v.as_tensor().copy())).collect::<Vec<_>>().into_iter().map(|(k, t)| t.map(|t| (k, t))).collect::<candle_core::Result<_>>()?;
    let cfgs = scorer.config.clone();
    Ok((Scorer::build(&cfgs, VarBuilder::from_tensors(map, DType::F32, device))?, smooth))
}
