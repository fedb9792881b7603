//! The keypoint-conditioned prior: a condition encoder that turns observed 2D keypoints into the
//! condition vector c, and the ScoreHMR denoiser eps_phi(x_t, t, c) over 24 x 6D poses.
//!
//! ScoreHMR conditions on PARE image features (3072-D); rigfit has no image backbone, so the
//! condition is computed from the keypoints a user brings ([`condition_features`]):
//!
//! ```text
//! box:      centre (bx, by) and side s = 1.2 max(w, h) of the confident keypoints' 2D box
//! per k:    ((u_k - bx) / s, (v_k - by) / s, conf_k)     (0, 0, 0 when missing)   25 x 3
//! camera:   the ray through the box centre ((bx - cx) / fx, (by - cy) / fy) x 2, and the
//!           box side in ray units 5 s / fx                                          3
//! ```
//!
//! The box-normalised coordinates carry the pose; the camera ray and the angular size carry how
//! the person is seen (a person near the image border of a wide lens is seen from the side; a
//! large angular size means strong perspective). The encoder is a small MLP
//! (78 -> H -> H -> C, exact GELU between) trained jointly with the denoiser; the denoiser's
//! learned null condition (condition dropout during training) makes the same network an
//! unconditional prior.
//!
//! A prior is one safetensors file: the denoiser's tensors under `denoiser.` (official names),
//! the encoder's under `encoder.`, and its [`PriorConfig`] as JSON bytes in the u8 tensor
//! `config_json`, so that the embedded default needs no second file.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{Linear, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::denoiser::{gelu, Denoiser, DenoiserConfig};
use super::rng::Rng;
use crate::body::NUM_BODY25;
use crate::error::{Error, Result};
use crate::geom::camera::Pinhole;

/// Length of [`condition_features`]: 25 x (x, y, conf) + 3 camera values.
pub const COND_FEATURES: usize = NUM_BODY25 * 3 + 3;

/// Box side as a multiple of the keypoints' extent (the usual 1.2 crop margin of HMR methods).
const BOX_MARGIN: f32 = 1.2;

/// The condition features `[78]` of one person's BODY_25 keypoints `[25, 3]` (x px, y px,
/// confidence; 0 = missing) seen by `camera` (see the module docs). Fewer than two confident
/// keypoints give all zeros (the encoder then sees "nothing observed").
pub fn condition_features(keypoints: &[f32], camera: &Pinhole) -> [f32; COND_FEATURES] {
    let mut f = [0.0f32; COND_FEATURES];
    let Some((bx, by, s)) = keypoint_box(keypoints) else {
        return f;
    };
    for (i, k) in keypoints.chunks_exact(3).take(NUM_BODY25).enumerate() {
        if k[2] > 0.0 && k[0].is_finite() && k[1].is_finite() {
            f[3 * i] = (k[0] - bx) / s;
            f[3 * i + 1] = (k[1] - by) / s;
            f[3 * i + 2] = k[2].min(1.0);
        }
    }
    let c = NUM_BODY25 * 3;
    f[c] = 2.0 * (bx - camera.cx) / camera.fx;
    f[c + 1] = 2.0 * (by - camera.cy) / camera.fy;
    f[c + 2] = 5.0 * s / camera.fx;
    f
}

/// The person's box of BODY_25 keypoints `[25, 3]`: centre (x, y) and side (the larger extent of
/// the confident keypoints times the 1.2 margin, at least 1 px), pixels; None with fewer than two
/// confident keypoints. The frame [`condition_features`] normalises keypoints to.
pub fn keypoint_box(keypoints: &[f32]) -> Option<(f32, f32, f32)> {
    let (mut lo, mut hi, mut n) = ([f32::MAX; 2], [f32::MIN; 2], 0);
    for k in keypoints.chunks_exact(3).take(NUM_BODY25) {
        if k[2] > 0.0 && k[0].is_finite() && k[1].is_finite() {
            n += 1;
            for a in 0..2 {
                lo[a] = lo[a].min(k[a]);
                hi[a] = hi[a].max(k[a]);
            }
        }
    }
    if n < 2 {
        return None;
    }
    Some((0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1]), (BOX_MARGIN * (hi[0] - lo[0]).max(hi[1] - lo[1])).max(1.0)))
}

/// Condition features of a batch: `keypoints` `[B, 25, 3]`, one camera per sample; returns
/// `[B, 78]` on `device` in `dtype`.
pub fn condition_tensor(keypoints: &[f32], cameras: &[Pinhole], device: &Device, dtype: DType) -> Result<Tensor> {
    let b = cameras.len();
    if keypoints.len() != b * NUM_BODY25 * 3 {
        return Err(Error::Input(format!("condition: {} keypoint values for {b} cameras, expected [B, 25, 3]", keypoints.len())));
    }
    let mut v = Vec::with_capacity(b * COND_FEATURES);
    for (k, cam) in keypoints.chunks_exact(NUM_BODY25 * 3).zip(cameras) {
        v.extend_from_slice(&condition_features(k, cam));
    }
    Ok(Tensor::from_vec(v, (b, COND_FEATURES), device)?.to_dtype(dtype)?)
}

/// Sizes of a prior and what trained it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriorConfig {
    pub denoiser: DenoiserConfig,
    /// Hidden width of the condition encoder.
    pub encoder_hidden: usize,
    /// Free-form provenance (the training command, data, steps), written by training.
    #[serde(default)]
    pub provenance: serde_json::Value,
}

impl Default for PriorConfig {
    /// The rigfit default: the 1.8 M-parameter denoiser ([`DenoiserConfig::default`], C = 256)
    /// and a 256-wide encoder (about 0.1 M parameters); 7.6 MB in f32.
    fn default() -> Self {
        Self { denoiser: DenoiserConfig::default(), encoder_hidden: 256, provenance: serde_json::Value::Null }
    }
}

/// The condition encoder: `[B, 78]` features -> `[B, C]`.
#[derive(Clone, Debug)]
pub struct KeypointEncoder {
    l1: Linear,
    l2: Linear,
    l3: Linear,
}

impl KeypointEncoder {
    fn new(hidden: usize, out: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            l1: candle_nn::linear(COND_FEATURES, hidden, vb.pp("l1"))?,
            l2: candle_nn::linear(hidden, hidden, vb.pp("l2"))?,
            l3: candle_nn::linear(hidden, out, vb.pp("l3"))?,
        })
    }

    fn param_shapes(hidden: usize, out: usize) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        for (n, i, o) in [("l1", COND_FEATURES, hidden), ("l2", hidden, hidden), ("l3", hidden, out)] {
            v.push((format!("{n}.weight"), vec![o, i]));
            v.push((format!("{n}.bias"), vec![o]));
        }
        v
    }

    /// `[B, 78]` -> `[B, C]`.
    pub fn forward(&self, feats: &Tensor) -> Result<Tensor> {
        let h = gelu(&self.l1.forward(feats)?)?;
        let h = gelu(&self.l2.forward(&h)?)?;
        Ok(self.l3.forward(&h)?)
    }

    fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        for (n, l) in [("l1", &self.l1), ("l2", &self.l2), ("l3", &self.l3)] {
            v.push((format!("{n}.weight"), l.weight().clone()));
            v.push((format!("{n}.bias"), l.bias().expect("bias").clone()));
        }
        v
    }
}

/// The keypoint-conditioned prior: encoder + denoiser.
#[derive(Clone, Debug)]
pub struct Prior {
    pub config: PriorConfig,
    pub encoder: KeypointEncoder,
    pub denoiser: Denoiser,
}

/// The embedded default prior (trained by `rigfit train prior`, see models/DEFAULT_PRIOR.md).
pub static DEFAULT_PRIOR: &[u8] = include_bytes!("../../models/default_prior.safetensors");

impl Prior {
    /// A trainable prior with deterministic weights from `seed` (PyTorch's default Linear init);
    /// returns it with the variables of the encoder and of the denoiser.
    pub fn init(config: &PriorConfig, seed: u64, dtype: DType, device: &Device) -> Result<(Self, VarMap, VarMap)> {
        let (denoiser, dvars) = Denoiser::init(&config.denoiser, seed, dtype, device)?;
        let evars = VarMap::new();
        {
            let mut rng = Rng::new(seed ^ 0x5EED_E4C0_DE00_0001);
            let mut data = evars.data().lock().expect("fresh VarMap lock");
            let shapes = KeypointEncoder::param_shapes(config.encoder_hidden, config.denoiser.cond_dim);
            let fan_in: HashMap<String, usize> = shapes.iter().filter(|(_, s)| s.len() == 2).map(|(k, s)| (k.replace(".weight", ""), s[1])).collect();
            for (name, shape) in shapes {
                let bound = 1.0 / (fan_in[&name[..2]] as f64).sqrt();
                let n: usize = shape.iter().product();
                let vals: Vec<f64> = (0..n).map(|_| rng.uniform_in(-bound, bound)).collect();
                data.insert(name, Var::from_tensor(&Tensor::from_vec(vals, shape, device)?.to_dtype(dtype)?)?);
            }
        }
        let encoder = KeypointEncoder::new(config.encoder_hidden, config.denoiser.cond_dim, VarBuilder::from_varmap(&evars, dtype, device))?;
        Ok((Self { config: config.clone(), encoder, denoiser }, evars, dvars))
    }

    /// The condition `[B, C]` of features `[B, 78]`.
    pub fn encode(&self, feats: &Tensor) -> Result<Tensor> {
        self.encoder.forward(feats)
    }

    /// The condition of BODY_25 keypoints `[B, 25, 3]` seen by `cameras` (one per sample).
    pub fn condition(&self, keypoints: &[f32], cameras: &[Pinhole]) -> Result<Tensor> {
        let f = condition_tensor(keypoints, cameras, self.denoiser.device(), self.denoiser.dtype())?;
        self.encode(&f)
    }

    /// Every tensor of the file with its name.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.denoiser.named_tensors().into_iter().map(|(n, t)| (format!("denoiser.{n}"), t)).collect();
        v.extend(self.encoder.named_tensors().into_iter().map(|(n, t)| (format!("encoder.{n}"), t)));
        v
    }

    /// The file's bytes (f32 tensors + the config).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut map: HashMap<String, Tensor> = HashMap::new();
        for (n, t) in self.named_tensors() {
            map.insert(n, t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?);
        }
        let json = serde_json::to_vec(&self.config).map_err(|e| Error::Input(format!("prior config: {e}")))?;
        let n = json.len();
        map.insert("config_json".into(), Tensor::from_vec(json, n, &Device::Cpu)?);
        let tmp = std::env::temp_dir().join(format!("rigfit_prior_{}_{:p}.safetensors", std::process::id(), &map));
        candle_core::safetensors::save(&map, &tmp).map_err(|e| Error::Input(format!("cannot serialise the prior: {e}")))?;
        let bytes = std::fs::read(&tmp).map_err(|e| Error::io(&tmp, e));
        let _ = std::fs::remove_file(&tmp);
        bytes
    }

    /// Writes the prior to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, &self.to_bytes()?)
    }

    /// Reads a prior file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, &path.display().to_string(), device)
    }

    /// The embedded default prior.
    pub fn default_prior(device: &Device) -> Result<Self> {
        Self::from_bytes(DEFAULT_PRIOR, "embedded default prior", device)
    }

    /// Reads a prior from the bytes of its file; `origin` names it in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str, device: &Device) -> Result<Self> {
        let bad = |what: String| Error::BadValue { path: origin.to_string(), key: String::new(), what };
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| bad(format!("not a readable safetensors file: {e}")))?;
        let cfg = tensors.get("config_json").ok_or_else(|| Error::MissingKey {
            path: origin.into(),
            key: "config_json".into(),
            expected: "a rigfit prior (denoiser + keypoint encoder); a bare denoiser loads with Denoiser::load".into(),
        })?;
        let cfg: Vec<u8> = cfg.to_vec1()?;
        let config: PriorConfig = serde_json::from_slice(&cfg).map_err(|e| bad(format!("config_json: {e}")))?;
        let mut den = HashMap::new();
        let mut enc = HashMap::new();
        for (k, t) in tensors {
            if let Some(n) = k.strip_prefix("denoiser.") {
                den.insert(n.to_string(), t);
            } else if let Some(n) = k.strip_prefix("encoder.") {
                enc.insert(n.to_string(), t);
            }
        }
        let expect = |map: &HashMap<String, Tensor>, shapes: Vec<(String, Vec<usize>)>, prefix: &str| -> Result<()> {
            for (n, s) in shapes {
                match map.get(&n) {
                    None => return Err(Error::MissingKey { path: origin.into(), key: format!("{prefix}{n}"), expected: format!("{s:?}") }),
                    Some(t) if t.dims() != s.as_slice() => {
                        return Err(Error::BadShape { path: origin.into(), key: format!("{prefix}{n}"), found: t.dims().to_vec(), expected: format!("{s:?}") })
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        expect(&den, config.denoiser.param_shapes(), "denoiser.")?;
        expect(&enc, KeypointEncoder::param_shapes(config.encoder_hidden, config.denoiser.cond_dim), "encoder.")?;
        Self::from_parts(&config, den, enc, device)
    }

    /// A prior from its denoiser and encoder tensors (names without their prefixes), in f32.
    pub fn from_parts(config: &PriorConfig, den: HashMap<String, Tensor>, enc: HashMap<String, Tensor>, device: &Device) -> Result<Self> {
        let denoiser = Denoiser::new(&config.denoiser, VarBuilder::from_tensors(den, DType::F32, device))?;
        let encoder = KeypointEncoder::new(config.encoder_hidden, config.denoiser.cond_dim, VarBuilder::from_tensors(enc, DType::F32, device))?;
        Ok(Self { config: config.clone(), encoder, denoiser })
    }
}
