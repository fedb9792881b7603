//! The ScoreHMR denoiser eps_phi(x_t, t, c): an MLP with a sinusoidal time embedding, FiLM
//! time conditioning and pre-norm residual MLP blocks that see the condition c.
//!
//! Exactly `score_hmr/models/denoising_model.py::FC` (pose branch, `USE_BETAS: FALSE`) and
//! `score_hmr/utils/model_blocks.py` at ScoreHMR commit f623ed1 (reference/scorehmr.md 1.2):
//!
//! ```text
//! temb = SinusoidalPosEmb(P)(t)                 [B, P]   raw t; half = P/2,
//!        f_k = exp(-k ln(10000) / (half - 1)), emb = [sin(t f_k), cos(t f_k)]
//! tt   = Linear(P->4P) -> GELU -> Linear(4P->4P)           time_mlp.{1,3}     [B, 4P]
//! h    = Linear(P->P)(x_t)                                 init_mlp           [B, P]
//! per block i (blocks.{i}):
//!   s, b = chunk2(Linear(4P->2P)(SiLU(tt)))                mlp.1              [B, P] each
//!   h    = h * (s + 1) + b ;  r = h                        (residual AFTER the FiLM)
//!   z    = cat[h, c]                                                          [B, P+C]
//!   z    = GELU(Linear(P+C->H)(LayerNorm(P+C)(z)))         block.layer_norm1, block.linear_layer1
//!   z    = GELU(Linear(H->P)(LayerNorm(H)(z)))             block.layer_norm2, block.linear_layer2
//!   h    = r + z
//! eps  = Linear(P->P)(h)                                   final_mlp          [B, P]
//! ```
//!
//! GELU is the exact erf form (`nn.GELU()` default), composed here as 0.5 x (1 + erf(x / sqrt 2))
//! rather than with candle's `gelu_erf`: that op's backward uses the rounded constant 0.398942
//! for 1/sqrt(2 pi) (candle-core 0.11.1 backprop.rs), a 7e-7 relative error in its gradient;
//! `erf`'s backward is exact. (candle's tanh `gelu` is a different function.)
//! LayerNorm is written here from mean/variance ops (biased variance, eps 1e-5, elementwise
//! affine, as `nn.LayerNorm`) because `candle_nn::LayerNorm` silently drops gradients
//! (reference/rust_stack.md).
//!
//! The time embedding is computed on the host in f64 from the timestep values, then rounded to
//! the model dtype. PyTorch computes it in f32 (frequencies rounded to f32, then t * f_k in
//! f32), which puts up to ~1e-4 rad of rounding noise on the arguments at t ~ 1000; the f64
//! path is the exact function the f32 model approximates, and it is what the parity fixture
//! (PyTorch in float64) checks.
//!
//! Parameter names are the official state-dict names (without the `ema_model.model.` prefix
//! of the checkpoint), so a converted checkpoint (tools/convert_scorehmr_ckpt.py) loads
//! directly. rigfit adds one optional tensor, `null_cond` `[C]`, the learned null condition
//! for classifier-free guidance (absent in official checkpoints, which have no null
//! condition).
//!
//! File layout of [`Denoiser::save`]: `model.safetensors` holds the tensors; `model.json`
//! beside it (same stem) holds the [`DenoiserConfig`]. [`Denoiser::load`] reads the JSON when
//! it exists and otherwise infers the config from the tensor shapes (null condition `Learned`
//! when `null_cond` is present, `None` otherwise), so a bare converted official checkpoint
//! loads as is.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor, Var, D};
use candle_nn::{Linear, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::schedule::timesteps_to_vec;
use crate::error::{Error, Result};

/// LayerNorm epsilon. // PyTorch nn.LayerNorm default eps=1e-5 (ScoreHMR model_blocks.py L29, L33)
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// Base of the sinusoidal time embedding. // ScoreHMR model_blocks.py L15: math.log(10000)
pub const TIME_EMB_BASE: f64 = 10000.0;

/// What the denoiser uses when no condition is given (classifier-free guidance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NullCond {
    /// No null condition: the model always needs c (the official ScoreHMR model).
    None,
    /// The zero vector (the mean of standardised features).
    Zero,
    /// A learned vector, the extra tensor `null_cond` `[C]` (initialised to zeros).
    Learned,
}

/// Sizes of the denoiser. JSON-serialisable (the `model.json` beside saved weights).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenoiserConfig {
    /// P: dimension of x (and of the time embedding). Even, >= 4. // ScoreHMR base.yaml L41: POSE_DIM 144
    pub pose_dim: usize,
    /// C: dimension of the condition c; 0 for an unconditional model.
    pub cond_dim: usize,
    /// H: hidden width of the block MLPs. // ScoreHMR base.yaml L45: HIDDEN_LAYER_DIM 1024
    pub hidden: usize,
    /// Number of residual MLP blocks. // ScoreHMR base.yaml L43: NUM_BLOCKS_POSE 3
    pub blocks: usize,
    /// The null condition (classifier-free guidance).
    pub null_cond: NullCond,
}

impl Default for DenoiserConfig {
    /// The small rigfit default prior: P = 144 (ScoreHMR's 24 x 6D pose), C = 256, H = 512,
    /// 3 blocks, learned null condition; 1,799,440 parameters (7.2 MB in f32, within the
    /// DESIGN.md budget of 8 MB for the default prior).
    fn default() -> Self {
        Self {
            pose_dim: 144,
            cond_dim: 256,
            hidden: 512,
            blocks: 3,
            null_cond: NullCond::Learned,
        }
    }
}

impl DenoiserConfig {
    /// The released ScoreHMR model: P = 144, C = 3072 (PARE pose features, 24 parts x 128),
    /// H = 1024, 3 blocks, no null condition; 11,307,024 parameters.
    /// // ScoreHMR base.yaml L41-45; denoising_model.py L6-9 (`PREDICTORS["pare"]["thetas_emb_dim"] = 3072`)
    pub fn official() -> Self {
        Self {
            pose_dim: 144,
            cond_dim: 3072,
            hidden: 1024,
            blocks: 3,
            null_cond: NullCond::None,
        }
    }

    /// Width of the time embedding MLP, 4P. // ScoreHMR denoising_model.py L28: time_dim = thetas_dim * 4
    pub fn time_dim(&self) -> usize {
        4 * self.pose_dim
    }

    /// Checks the sizes: P even and >= 4 (the embedding divides by P/2 - 1), H >= 1 when
    /// there are blocks.
    pub fn validate(&self) -> Result<()> {
        if self.pose_dim < 4 || self.pose_dim % 2 != 0 {
            return Err(Error::Input(format!(
                "denoiser pose_dim must be even and >= 4 (sinusoidal embedding), got {}",
                self.pose_dim
            )));
        }
        if self.blocks > 0 && self.hidden == 0 {
            return Err(Error::Input("denoiser hidden width must be >= 1".into()));
        }
        Ok(())
    }

    /// Every parameter tensor, official name and shape, in module order (time_mlp, init_mlp,
    /// blocks, final_mlp, then `null_cond` for a learned null condition).
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (p, c, h, t) = (self.pose_dim, self.cond_dim, self.hidden, self.time_dim());
        let mut v: Vec<(String, Vec<usize>)> = Vec::new();
        let lin = |v: &mut Vec<(String, Vec<usize>)>, name: &str, i: usize, o: usize| {
            v.push((format!("{name}.weight"), vec![o, i]));
            v.push((format!("{name}.bias"), vec![o]));
        };
        lin(&mut v, "time_mlp.1", p, t);
        lin(&mut v, "time_mlp.3", t, t);
        lin(&mut v, "init_mlp", p, p);
        for i in 0..self.blocks {
            lin(&mut v, &format!("blocks.{i}.mlp.1"), t, 2 * p);
            v.push((format!("blocks.{i}.block.layer_norm1.weight"), vec![p + c]));
            v.push((format!("blocks.{i}.block.layer_norm1.bias"), vec![p + c]));
            lin(&mut v, &format!("blocks.{i}.block.linear_layer1"), p + c, h);
            v.push((format!("blocks.{i}.block.layer_norm2.weight"), vec![h]));
            v.push((format!("blocks.{i}.block.layer_norm2.bias"), vec![h]));
            lin(&mut v, &format!("blocks.{i}.block.linear_layer2"), h, p);
        }
        lin(&mut v, "final_mlp", p, p);
        if self.null_cond == NullCond::Learned {
            v.push(("null_cond".into(), vec![c]));
        }
        v
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.param_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// Infers the sizes from official-named tensor shapes (`name -> shape`). The null condition
    /// is `Learned` when `null_cond` is present and `None` otherwise.
    pub fn infer(shapes: &HashMap<String, Vec<usize>>, origin: &str) -> Result<Self> {
        let get = |k: &str, rank: usize| -> Result<&Vec<usize>> {
            let s = shapes.get(k).ok_or_else(|| Error::MissingKey {
                path: origin.into(),
                key: k.into(),
                expected: "a ScoreHMR denoiser tensor (official state-dict names)".into(),
            })?;
            if s.len() != rank {
                return Err(Error::BadShape {
                    path: origin.into(),
                    key: k.into(),
                    found: s.clone(),
                    expected: format!("rank {rank}"),
                });
            }
            Ok(s)
        };
        let pose_dim = get("init_mlp.weight", 2)?[0];
        let mut blocks = 0;
        while shapes.contains_key(&format!("blocks.{blocks}.mlp.1.weight")) {
            blocks += 1;
        }
        let (hidden, cond_dim) = if blocks > 0 {
            let hidden = get("blocks.0.block.linear_layer1.weight", 2)?[0];
            let ln1 = get("blocks.0.block.layer_norm1.weight", 1)?[0];
            if ln1 < pose_dim {
                return Err(Error::BadShape {
                    path: origin.into(),
                    key: "blocks.0.block.layer_norm1.weight".into(),
                    found: vec![ln1],
                    expected: format!("[P + C] with P = {pose_dim}"),
                });
            }
            (hidden, ln1 - pose_dim)
        } else {
            (
                0,
                shapes
                    .get("null_cond")
                    .and_then(|s| s.first().copied())
                    .unwrap_or(0),
            )
        };
        let null_cond = if shapes.contains_key("null_cond") {
            NullCond::Learned
        } else {
            NullCond::None
        };
        let cfg = Self {
            pose_dim,
            cond_dim,
            hidden,
            blocks,
            null_cond,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// `nn.LayerNorm(dim)` from ordinary candle ops (differentiable everywhere).
#[derive(Clone, Debug)]
pub(super) struct LayerNorm {
    /// `[dim]`
    pub(super) weight: Tensor,
    /// `[dim]`
    pub(super) bias: Tensor,
}

impl LayerNorm {
    fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?,
        })
    }

    /// `x`: `[B, dim]` -> `[B, dim]`: (x - mean) / sqrt(var + eps) * weight + bias, biased
    /// variance over the last dim.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + LAYER_NORM_EPS)?.sqrt()?)?;
        Ok(xn.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)?)
    }
}

/// Exact (erf) GELU, `nn.GELU()`: 0.5 x (1 + erf(x / sqrt 2)), any shape. Built from `erf`,
/// whose backward is exact (candle's fused `gelu_erf` has a 7e-7 relative gradient error).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    let e = (x * std::f64::consts::FRAC_1_SQRT_2)?.erf()?;
    Ok(((e + 1.0)?.mul(x)? * 0.5)?)
}

/// One `ResMLPBlock` (model_blocks.py L45-74).
#[derive(Clone, Debug)]
pub(super) struct ResMlpBlock {
    /// `mlp.1`: Linear(4P -> 2P) after SiLU.
    pub(super) film: Linear,
    pub(super) layer_norm1: LayerNorm,
    pub(super) linear_layer1: Linear,
    pub(super) layer_norm2: LayerNorm,
    pub(super) linear_layer2: Linear,
}

/// The ScoreHMR denoiser network. Cheap to clone (tensors are reference-counted).
#[derive(Clone, Debug)]
pub struct Denoiser {
    config: DenoiserConfig,
    pub(super) time_mlp1: Linear,
    pub(super) time_mlp3: Linear,
    pub(super) init_mlp: Linear,
    pub(super) blocks: Vec<ResMlpBlock>,
    pub(super) final_mlp: Linear,
    /// `[C]` for `NullCond::Learned`.
    null_cond: Option<Tensor>,
    dtype: DType,
    device: Device,
}

fn linear(i: usize, o: usize, vb: VarBuilder) -> Result<Linear> {
    Ok(candle_nn::linear(i, o, vb)?)
}

impl Denoiser {
    /// Builds the network from a `VarBuilder` with the official names (from a `VarMap` for
    /// training, or from tensors for inference). The dtype and device are the builder's.
    pub fn new(config: &DenoiserConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let (p, c, h, t) = (
            config.pose_dim,
            config.cond_dim,
            config.hidden,
            config.time_dim(),
        );
        let blocks = (0..config.blocks)
            .map(|i| {
                let b = vb.pp(format!("blocks.{i}"));
                Ok(ResMlpBlock {
                    film: linear(t, 2 * p, b.pp("mlp.1"))?,
                    layer_norm1: LayerNorm::new(p + c, b.pp("block.layer_norm1"))?,
                    linear_layer1: linear(p + c, h, b.pp("block.linear_layer1"))?,
                    layer_norm2: LayerNorm::new(h, b.pp("block.layer_norm2"))?,
                    linear_layer2: linear(h, p, b.pp("block.linear_layer2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let null_cond = match config.null_cond {
            NullCond::Learned => {
                Some(vb.get_with_hints(c, "null_cond", candle_nn::Init::Const(0.0))?)
            }
            _ => None,
        };
        Ok(Self {
            config: config.clone(),
            time_mlp1: linear(p, t, vb.pp("time_mlp.1"))?,
            time_mlp3: linear(t, t, vb.pp("time_mlp.3"))?,
            init_mlp: linear(p, p, vb.pp("init_mlp"))?,
            blocks,
            final_mlp: linear(p, p, vb.pp("final_mlp"))?,
            null_cond,
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// A trainable network with deterministic weights from `seed`: PyTorch's default `nn.Linear`
    /// init (weight and bias uniform in +-1/sqrt(fan_in)), LayerNorm weight 1 and bias 0, and a
    /// zero learned null condition. Returns the `VarMap` holding the variables (for an
    /// optimiser, or `VarMap::save`).
    pub fn init(
        config: &DenoiserConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<(Self, VarMap)> {
        config.validate()?;
        let varmap = VarMap::new();
        let mut rng = Rng::new(seed);
        {
            let mut data = varmap.data().lock().expect("fresh VarMap lock");
            let shapes = config.param_shapes();
            // fan_in of each linear layer, by weight name: weight shape [out, in].
            let fan_in: HashMap<String, usize> = shapes
                .iter()
                .filter(|(k, s)| k.ends_with(".weight") && s.len() == 2)
                .map(|(k, s)| (k.clone(), s[1]))
                .collect();
            for (name, shape) in shapes {
                let n: usize = shape.iter().product();
                let vals: Vec<f64> = if name.contains("layer_norm") {
                    vec![if name.ends_with(".weight") { 1.0 } else { 0.0 }; n]
                } else if name == "null_cond" {
                    vec![0.0; n]
                } else {
                    // nn.Linear.reset_parameters: kaiming_uniform(a = sqrt 5) for the weight
                    // and the bias both give U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
                    let wname = match name.strip_suffix(".bias") {
                        Some(stem) => format!("{stem}.weight"),
                        None => name.clone(),
                    };
                    let bound = 1.0 / (fan_in[&wname] as f64).sqrt();
                    (0..n).map(|_| rng.uniform_in(-bound, bound)).collect()
                };
                let t = Tensor::from_vec(vals, shape, device)?.to_dtype(dtype)?;
                data.insert(name, Var::from_tensor(&t)?);
            }
        }
        let model = Self::new(config, VarBuilder::from_varmap(&varmap, dtype, device))?;
        Ok((model, varmap))
    }

    /// The sizes.
    pub fn config(&self) -> &DenoiserConfig {
        &self.config
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every parameter tensor with its official name, in [`DenoiserConfig::param_shapes`] order.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v = Vec::new();
        let lin = |v: &mut Vec<(String, Tensor)>, name: &str, l: &Linear| {
            v.push((format!("{name}.weight"), l.weight().clone()));
            if let Some(b) = l.bias() {
                v.push((format!("{name}.bias"), b.clone()));
            }
        };
        lin(&mut v, "time_mlp.1", &self.time_mlp1);
        lin(&mut v, "time_mlp.3", &self.time_mlp3);
        lin(&mut v, "init_mlp", &self.init_mlp);
        for (i, b) in self.blocks.iter().enumerate() {
            lin(&mut v, &format!("blocks.{i}.mlp.1"), &b.film);
            v.push((
                format!("blocks.{i}.block.layer_norm1.weight"),
                b.layer_norm1.weight.clone(),
            ));
            v.push((
                format!("blocks.{i}.block.layer_norm1.bias"),
                b.layer_norm1.bias.clone(),
            ));
            lin(
                &mut v,
                &format!("blocks.{i}.block.linear_layer1"),
                &b.linear_layer1,
            );
            v.push((
                format!("blocks.{i}.block.layer_norm2.weight"),
                b.layer_norm2.weight.clone(),
            ));
            v.push((
                format!("blocks.{i}.block.layer_norm2.bias"),
                b.layer_norm2.bias.clone(),
            ));
            lin(
                &mut v,
                &format!("blocks.{i}.block.linear_layer2"),
                &b.linear_layer2,
            );
        }
        lin(&mut v, "final_mlp", &self.final_mlp);
        if let Some(n) = &self.null_cond {
            v.push(("null_cond".into(), n.clone()));
        }
        v
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.config.num_params()
    }

    // ----------------------------------------------------------------------------------------
    // Forward.

    /// The sinusoidal time embedding `[B, P]` of timesteps `t` (scalar, `[1]` or `[B]`, any
    /// dtype; non-integer values are allowed) for a batch of `batch`, in the model dtype.
    pub fn time_embedding(&self, t: &Tensor, batch: usize) -> Result<Tensor> {
        let ts = timesteps_to_vec(t, batch)?;
        let ts: Vec<f64> = if ts.len() == batch {
            ts
        } else {
            vec![ts[0]; batch]
        };
        if let Some(v) = ts.iter().find(|v| !v.is_finite()) {
            return Err(Error::Input(format!("timestep {v} is not finite")));
        }
        let p = self.config.pose_dim;
        let emb = sinusoidal_embedding(&ts, p);
        Ok(Tensor::from_vec(emb, (batch, p), &self.device)?.to_dtype(self.dtype)?)
    }

    /// Predicted noise eps(x_t, t, c).
    ///
    /// - `x_t`: `[B, P]` in the model dtype;
    /// - `t`: `[B]` (per-sample timesteps), `[1]` or a scalar (shared), u32/i64/f32/f64;
    /// - `cond`: `[B, C]`, or `[1, C]` / `[C]` shared by the batch; `None` means the null
    ///   condition (zeros for `NullCond::Zero`, the learned vector for `Learned`, an error for
    ///   `NullCond::None`). Ignored for an unconditional model (C = 0).
    ///
    /// Returns `[B, P]`. Differentiable in x_t, cond and every parameter.
    pub fn forward(&self, x_t: &Tensor, t: &Tensor, cond: Option<&Tensor>) -> Result<Tensor> {
        let b = self.check_x(x_t)?;
        let c = match cond {
            _ if self.config.cond_dim == 0 => None,
            Some(c) => Some(self.check_cond(c, b)?),
            None => Some(self.null_batch(b)?),
        };
        self.forward_with(x_t, t, c.as_ref())
    }

    /// [`Self::forward`] with classifier-free-guidance dropout: rows whose `drop_mask` entry is
    /// non-zero use the null condition instead of `cond`. `drop_mask`: `[B]` (any dtype; for
    /// example u8 0/1). `cond`: `[B, C]` (or shared `[1, C]` / `[C]`). Gradients reach `cond`
    /// on kept rows and the learned null vector on dropped rows.
    pub fn forward_masked(
        &self,
        x_t: &Tensor,
        t: &Tensor,
        cond: &Tensor,
        drop_mask: &Tensor,
    ) -> Result<Tensor> {
        let b = self.check_x(x_t)?;
        if self.config.cond_dim == 0 {
            return self.forward_with(x_t, t, None);
        }
        let c = self.check_cond(cond, b)?;
        if drop_mask.dims() != [b] {
            return Err(Error::Input(format!(
                "drop_mask must have shape [{b}], got {:?}",
                drop_mask.dims()
            )));
        }
        let m = drop_mask
            .to_device(&self.device)?
            .to_dtype(DType::F64)?
            .ne(0.0)?
            .to_dtype(self.dtype)?
            .unsqueeze(1)?; // [B, 1], 1 = drop
        let keep = m.affine(-1.0, 1.0)?;
        let c = c.broadcast_mul(&keep)?;
        let c = match self.config.null_cond {
            NullCond::None => {
                return Err(Error::Input(
                    "this denoiser has no null condition (NullCond::None): condition dropout is impossible".into(),
                ))
            }
            NullCond::Zero => c,
            NullCond::Learned => {
                let null = self.null_cond.as_ref().expect("learned null condition").unsqueeze(0)?; // [1, C]
                c.add(&m.broadcast_mul(&null)?)?
            }
        };
        self.forward_with(x_t, t, Some(&c))
    }

    /// The network on a resolved condition `c` `[B, C]` (None only when C = 0).
    fn forward_with(&self, x_t: &Tensor, t: &Tensor, c: Option<&Tensor>) -> Result<Tensor> {
        let (b, p) = x_t.dims2()?;
        let temb = self.time_embedding(t, b)?; // [B, P]
        let tt = self
            .time_mlp3
            .forward(&gelu(&self.time_mlp1.forward(&temb)?)?)?; // [B, 4P]
        let tt_act = candle_nn::ops::silu(&tt)?; // SiLU(tt), shared by every block's mlp
        let mut h = self.init_mlp.forward(x_t)?; // [B, P]
        for blk in &self.blocks {
            let ss = blk.film.forward(&tt_act)?; // [B, 2P]
            let scale = ss.narrow(1, 0, p)?;
            let shift = ss.narrow(1, p, p)?;
            h = h.mul(&(scale + 1.0)?)?.add(&shift)?;
            let z = match c {
                Some(c) => Tensor::cat(&[&h, c], 1)?, // [B, P + C]
                None => h.clone(),
            };
            let z = gelu(&blk.linear_layer1.forward(&blk.layer_norm1.forward(&z)?)?)?; // [B, H]
            let z = gelu(&blk.linear_layer2.forward(&blk.layer_norm2.forward(&z)?)?)?; // [B, P]
            h = h.add(&z)?;
        }
        Ok(self.final_mlp.forward(&h)?)
    }

    fn check_x(&self, x_t: &Tensor) -> Result<usize> {
        match x_t.dims() {
            [b, p] if *p == self.config.pose_dim => {
                if x_t.dtype() != self.dtype {
                    return Err(Error::Input(format!(
                        "x_t is {:?} but the denoiser is {:?}",
                        x_t.dtype(),
                        self.dtype
                    )));
                }
                Ok(*b)
            }
            d => Err(Error::Input(format!(
                "x_t must have shape [B, {}], got {d:?}",
                self.config.pose_dim
            ))),
        }
    }

    /// `cond` as `[B, C]` (broadcasting a shared `[1, C]` or `[C]`).
    pub(super) fn check_cond(&self, c: &Tensor, b: usize) -> Result<Tensor> {
        let cd = self.config.cond_dim;
        if c.dtype() != self.dtype {
            return Err(Error::Input(format!(
                "cond is {:?} but the denoiser is {:?}",
                c.dtype(),
                self.dtype
            )));
        }
        match c.dims() {
            [n, k] if *k == cd && *n == b => Ok(c.clone()),
            [1, k] if *k == cd => Ok(c.broadcast_as((b, cd))?),
            [k] if *k == cd => Ok(c.unsqueeze(0)?.broadcast_as((b, cd))?),
            d => Err(Error::Input(format!(
                "cond must have shape [{b}, {cd}], [1, {cd}] or [{cd}], got {d:?}"
            ))),
        }
    }

    /// The null condition for a batch of `b`: `[B, C]`.
    pub(super) fn null_batch(&self, b: usize) -> Result<Tensor> {
        let cd = self.config.cond_dim;
        match self.config.null_cond {
            NullCond::None => Err(Error::Input(
                "this denoiser has no null condition (NullCond::None, e.g. the official ScoreHMR model): pass a condition"
                    .into(),
            )),
            NullCond::Zero => Ok(Tensor::zeros((b, cd), self.dtype, &self.device)?),
            NullCond::Learned => Ok(self
                .null_cond
                .as_ref()
                .expect("learned null condition")
                .unsqueeze(0)?
                .broadcast_as((b, cd))?),
        }
    }

    // ----------------------------------------------------------------------------------------
    // Files.

    /// Writes the tensors to `path` (safetensors, official names, model dtype) and the config
    /// to `path` with extension `.json` (`model.safetensors` -> `model.json`).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let map: HashMap<String, Tensor> = self.named_tensors().into_iter().collect();
        candle_core::safetensors::save(&map, path).map_err(|e| {
            Error::Input(format!("{}: cannot write safetensors: {e}", path.display()))
        })?;
        let cfg_path = config_path(path);
        let json = serde_json::to_string_pretty(&self.config).expect("config serialises");
        std::fs::write(&cfg_path, json + "\n").map_err(|e| Error::io(&cfg_path, e))?;
        Ok(())
    }

    /// Loads weights in f32 (see [`Self::load_with_dtype`]).
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::load_with_dtype(path, device, DType::F32)
    }

    /// Loads a saved or converted model for inference, converting the tensors to `dtype`.
    /// The config comes from the `.json` beside the file when present, otherwise from the
    /// tensor shapes ([`DenoiserConfig::infer`]). Errors on missing tensors, wrong shapes and
    /// tensors the config does not name (for example an unconverted checkpoint's
    /// `ema_model.model.*` keys).
    pub fn load_with_dtype(path: impl AsRef<Path>, device: &Device, dtype: DType) -> Result<Self> {
        let (config, tensors) = read_checked(path.as_ref())?;
        Self::new(&config, VarBuilder::from_tensors(tensors, dtype, device))
    }

    /// Loads a model as trainable variables (fine-tuning): returns the model and the `VarMap`
    /// of its variables, in `dtype` on `device`.
    pub fn load_trainable(
        path: impl AsRef<Path>,
        device: &Device,
        dtype: DType,
    ) -> Result<(Self, VarMap)> {
        let (config, tensors) = read_checked(path.as_ref())?;
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("fresh VarMap lock");
            for (name, t) in tensors {
                let t = t.to_device(device)?.to_dtype(dtype)?;
                data.insert(name, Var::from_tensor(&t)?);
            }
        }
        let model = Self::new(&config, VarBuilder::from_varmap(&varmap, dtype, device))?;
        Ok((model, varmap))
    }

    /// The config a file would load with: the `.json` beside it, or inferred from shapes.
    pub fn read_config(path: impl AsRef<Path>) -> Result<DenoiserConfig> {
        Ok(read_checked(path.as_ref())?.0)
    }
}

/// `model.safetensors` -> `model.json`.
pub fn config_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

/// Reads the tensors of `path` (on the CPU) and the config, and checks that the names and
/// shapes are exactly the config's.
fn read_checked(path: &Path) -> Result<(DenoiserConfig, HashMap<String, Tensor>)> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
        Error::BadValue {
            path: origin.clone(),
            key: String::new(),
            what: format!("not a readable safetensors file: {e}"),
        }
    })?;
    let shapes: HashMap<String, Vec<usize>> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    let cfg_path = config_path(path);
    let config = if cfg_path.exists() {
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let c: DenoiserConfig = serde_json::from_str(&text).map_err(|e| Error::BadValue {
            path: cfg_path.display().to_string(),
            key: String::new(),
            what: format!("not a denoiser config: {e}"),
        })?;
        c.validate()?;
        c
    } else {
        DenoiserConfig::infer(&shapes, &origin)?
    };
    let expected = config.param_shapes();
    for (k, s) in &expected {
        match shapes.get(k) {
            None => {
                return Err(Error::MissingKey {
                    path: origin,
                    key: k.clone(),
                    expected: format!("{s:?} for {config:?}"),
                })
            }
            Some(f) if f != s => {
                return Err(Error::BadShape {
                    path: origin,
                    key: k.clone(),
                    found: f.clone(),
                    expected: format!("{s:?} for {config:?}"),
                })
            }
            _ => {}
        }
    }
    let known: BTreeSet<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
    let extra: Vec<&str> = shapes
        .keys()
        .map(|k| k.as_str())
        .filter(|k| !known.contains(k))
        .collect();
    if !extra.is_empty() {
        let mut extra = extra;
        extra.sort();
        let shown: Vec<&str> = extra.iter().take(5).copied().collect();
        return Err(Error::BadValue {
            path: origin,
            key: shown[0].to_string(),
            what: format!(
                "{} tensor(s) that the denoiser config does not use ({}{}); official checkpoints \
                 must first go through tools/convert_scorehmr_ckpt.py",
                extra.len(),
                shown.join(", "),
                if extra.len() > 5 { ", ..." } else { "" }
            ),
        });
    }
    for (k, t) in &tensors {
        if !t.dtype().is_float() {
            return Err(Error::BadValue {
                path: origin,
                key: k.clone(),
                what: format!("dtype {:?} is not a float", t.dtype()),
            });
        }
    }
    Ok((config, tensors))
}

/// ScoreHMR's `SinusoidalPosEmb(dim)` in f64 for timesteps `ts`: row-major `[n, dim]`,
/// `[sin(t f_0..f_{h-1}), cos(t f_0..f_{h-1})]`, h = dim / 2, f_k = exp(k * -(ln(10000) / (h - 1))).
/// // ScoreHMR model_blocks.py L12-19 (same evaluation order). `dim` must be even and >= 4.
pub fn sinusoidal_embedding(ts: &[f64], dim: usize) -> Vec<f64> {
    let half = dim / 2;
    let step = TIME_EMB_BASE.ln() / (half as f64 - 1.0);
    let freqs: Vec<f64> = (0..half).map(|k| (k as f64 * -step).exp()).collect();
    let mut out = Vec::with_capacity(ts.len() * dim);
    for &t in ts {
        out.extend(freqs.iter().map(|f| (t * f).sin()));
        out.extend(freqs.iter().map(|f| (t * f).cos()));
    }
    out
}
