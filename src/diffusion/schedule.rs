//! The diffusion noise schedule: ScoreHMR's cosine schedule (Nichol & Dhariwal 2021) and the
//! closed-form helpers built on it (x0 from eps, q(x_t | x_0), the deterministic DDIM update).
//!
//! Faithful to `score_hmr/utils/utils.py::cosine_beta_schedule` and
//! `score_hmr/diffusion.py::GaussianDiffusion.__init__` (ScoreHMR commit f623ed1):
//! everything is computed in f64 and every buffer is then rounded to f32, exactly like the
//! official `register_buffer(name, val.to(torch.float32))`:
//!
//! ```text
//! x      = linspace(0, T, T+1)                                   (f64)
//! acp    = cos(((x / T) + s) / (1 + s) * pi * 0.5)^2,  s = 0.008
//! acp   /= acp[0]
//! beta   = clip(1 - acp[1:] / acp[:-1], 0, 0.999)                [T]
//! abar   = cumprod(1 - beta)                                     [T]  (f64, then f32)
//! sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod,
//! sqrt_recip_alphas_cumprod, sqrt_recipm1_alphas_cumprod        f64 formulas, then f32
//! ```
//!
//! Which buffer each helper uses follows the official code, so results match it to the last
//! bit where the arithmetic allows:
//! - [`Schedule::x0_from_eps`] = `predict_start_from_noise`: `sqrt_recip[t] * x_t - sqrt_recipm1[t] * eps`
//!   (diffusion.py L108-121);
//! - [`Schedule::q_sample`] = `q_sample`: `sqrt_abar[t] * x0 + sqrt_1m_abar[t] * noise`;
//! - [`Schedule::ddim_step`] = the eta = 0 DDIM update of `ddim_with_guidance`:
//!   `x0 * sqrt(abar[t']) + eps * sqrt(1 - abar[t'])`, where the square roots are taken in f32 of
//!   the f32 `alphas_cumprod` buffer (`alpha_next.sqrt()`, `(1 - alpha_next).sqrt()`).
//!
//! Timesteps are 0-based indices into the buffers: t = 0 is the first noise level (abar_0 =
//! 0.99995872, not 1); the last DDIM step of ScoreHMR goes to t' = 0 and uses abar_0.
//!
//! Tensor helpers take the timesteps as a candle tensor: a scalar (rank 0), `[1]` or `[B]`
//! (one timestep per sample), any integer or float dtype holding integral values; the
//! coefficients are looked up on the host and broadcast over the sample's remaining dims.

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// Number of diffusion steps of the released model. // ScoreHMR base.yaml L37: TIMESTEPS: 1000
pub const SCOREHMR_TIMESTEPS: usize = 1000;

/// Offset `s` of the cosine schedule. // ScoreHMR utils.py L35: cosine_beta_schedule(timesteps, s=0.008)
pub const COSINE_S: f64 = 0.008;

/// Upper clip of the betas. // ScoreHMR utils.py L41: torch.clip(betas, 0, 0.999)
pub const MAX_BETA: f64 = 0.999;

/// A discrete noise schedule with T steps and the f32 buffers of ScoreHMR's `GaussianDiffusion`.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// `[T]` f64 cumulative products, before the f32 rounding.
    alphas_cumprod_f64: Vec<f64>,
    /// `[T]` betas (f32 buffer `betas`).
    betas: Vec<f32>,
    /// `[T]` abar_t (f32 buffer `alphas_cumprod`).
    alphas_cumprod: Vec<f32>,
    /// `[T]` sqrt(abar_t) (f32 buffer `sqrt_alphas_cumprod`, computed in f64).
    sqrt_alphas_cumprod: Vec<f32>,
    /// `[T]` sqrt(1 - abar_t) (f32 buffer `sqrt_one_minus_alphas_cumprod`, computed in f64).
    sqrt_one_minus_alphas_cumprod: Vec<f32>,
    /// `[T]` sqrt(1 / abar_t) (f32 buffer `sqrt_recip_alphas_cumprod`, computed in f64).
    sqrt_recip_alphas_cumprod: Vec<f32>,
    /// `[T]` sqrt(1 / abar_t - 1) (f32 buffer `sqrt_recipm1_alphas_cumprod`, computed in f64).
    sqrt_recipm1_alphas_cumprod: Vec<f32>,
}

impl Default for Schedule {
    fn default() -> Self {
        Self::scorehmr()
    }
}

impl Schedule {
    /// The released ScoreHMR schedule: cosine, T = 1000.
    pub fn scorehmr() -> Self {
        Self::cosine(SCOREHMR_TIMESTEPS).expect("T = 1000 is a valid schedule length")
    }

    /// The cosine schedule with `timesteps` steps (s = 0.008, betas clipped to [0, 0.999]).
    /// Errors when `timesteps` is 0.
    pub fn cosine(timesteps: usize) -> Result<Self> {
        if timesteps == 0 {
            return Err(Error::Input(
                "a noise schedule needs at least one timestep".into(),
            ));
        }
        let tf = timesteps as f64;
        // torch.linspace(0, T, T + 1, dtype=float64): step 1.0, so x_i = i exactly.
        let acp: Vec<f64> = (0..=timesteps)
            .map(|i| {
                let x = i as f64;
                // Same evaluation order as the official expression:
                // torch.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
                let c =
                    ((((x / tf) + COSINE_S) / (1.0 + COSINE_S)) * std::f64::consts::PI * 0.5).cos();
                c * c
            })
            .collect();
        let acp0 = acp[0];
        let acp: Vec<f64> = acp.iter().map(|a| a / acp0).collect();
        let betas: Vec<f64> = (0..timesteps)
            .map(|i| (1.0 - acp[i + 1] / acp[i]).clamp(0.0, MAX_BETA))
            .collect();
        Ok(Self::from_betas_f64(&betas))
    }

    /// A schedule from arbitrary f64 betas `[T]` (each in [0, 1)), with the same f64-then-f32
    /// buffers as the cosine schedule.
    pub fn from_betas(betas: &[f64]) -> Result<Self> {
        if betas.is_empty() {
            return Err(Error::Input(
                "a noise schedule needs at least one timestep".into(),
            ));
        }
        if let Some(b) = betas.iter().find(|b| !(0.0..1.0).contains(*b)) {
            return Err(Error::Input(format!("beta {b} is outside [0, 1)")));
        }
        Ok(Self::from_betas_f64(betas))
    }

    fn from_betas_f64(betas: &[f64]) -> Self {
        // alphas = 1 - betas; alphas_cumprod = torch.cumprod(alphas, dim=0)   (f64)
        let mut acc = 1.0f64;
        let alphas_cumprod_f64: Vec<f64> = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        let f32s = |f: &dyn Fn(f64) -> f64| {
            alphas_cumprod_f64
                .iter()
                .map(|&a| f(a) as f32)
                .collect::<Vec<f32>>()
        };
        Self {
            betas: betas.iter().map(|&b| b as f32).collect(),
            alphas_cumprod: f32s(&|a| a),
            sqrt_alphas_cumprod: f32s(&|a| a.sqrt()),
            sqrt_one_minus_alphas_cumprod: f32s(&|a| (1.0 - a).sqrt()),
            sqrt_recip_alphas_cumprod: f32s(&|a| (1.0 / a).sqrt()),
            sqrt_recipm1_alphas_cumprod: f32s(&|a| (1.0 / a - 1.0).sqrt()),
            alphas_cumprod_f64,
        }
    }

    /// Number of timesteps T (valid t are 0..T).
    pub fn num_timesteps(&self) -> usize {
        self.alphas_cumprod.len()
    }

    /// `[T]` the f32 `alphas_cumprod` buffer.
    pub fn alphas_cumprod(&self) -> &[f32] {
        &self.alphas_cumprod
    }

    /// `[T]` the f32 `betas` buffer.
    pub fn betas(&self) -> &[f32] {
        &self.betas
    }

    /// abar_t (f32 buffer). Panics if `t >= T`, like slice indexing.
    pub fn alpha_bar(&self, t: usize) -> f32 {
        self.alphas_cumprod[t]
    }

    /// abar_t before the f32 rounding. Panics if `t >= T`.
    pub fn alpha_bar_f64(&self, t: usize) -> f64 {
        self.alphas_cumprod_f64[t]
    }

    /// beta_t (f32). Panics if `t >= T`.
    pub fn beta(&self, t: usize) -> f32 {
        self.betas[t]
    }

    /// sqrt(abar_t) (f32 buffer computed in f64). Panics if `t >= T`.
    pub fn sqrt_alpha_bar(&self, t: usize) -> f32 {
        self.sqrt_alphas_cumprod[t]
    }

    /// sqrt(1 - abar_t) (f32 buffer computed in f64): the factor of the guidance gradient in
    /// ScoreHMR's Eq. (10) (diffusion.py L262). Panics if `t >= T`.
    pub fn sqrt_one_minus_alpha_bar(&self, t: usize) -> f32 {
        self.sqrt_one_minus_alphas_cumprod[t]
    }

    /// sqrt(1 / abar_t) (f32 buffer computed in f64). Panics if `t >= T`.
    pub fn sqrt_recip_alpha_bar(&self, t: usize) -> f32 {
        self.sqrt_recip_alphas_cumprod[t]
    }

    /// sqrt(1 / abar_t - 1) (f32 buffer computed in f64). Panics if `t >= T`.
    pub fn sqrt_recipm1_alpha_bar(&self, t: usize) -> f32 {
        self.sqrt_recipm1_alphas_cumprod[t]
    }

    /// The two DDIM coefficients of a step to `t_next`, as ScoreHMR computes them in f32:
    /// `(alpha_next.sqrt(), (1 - alpha_next).sqrt())`. Panics if `t_next >= T`.
    pub fn ddim_coefs(&self, t_next: usize) -> (f32, f32) {
        let a = self.alphas_cumprod[t_next];
        (a.sqrt(), (1.0 - a).sqrt())
    }

    fn check_t(&self, t: usize) -> Result<()> {
        if t >= self.num_timesteps() {
            return Err(Error::Input(format!(
                "timestep {t} is out of range for a schedule with {} steps",
                self.num_timesteps()
            )));
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------------------
    // f32 slice ops: one timestep for the whole slice (any number of samples).

    /// x0_hat = sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps, elementwise over slices of equal
    /// length (`predict_start_from_noise`).
    pub fn x0_from_eps_slice(&self, x_t: &[f32], t: usize, eps: &[f32]) -> Result<Vec<f32>> {
        self.check_t(t)?;
        same_len("x_t", x_t, "eps", eps)?;
        let (a, b) = (
            self.sqrt_recip_alphas_cumprod[t],
            self.sqrt_recipm1_alphas_cumprod[t],
        );
        Ok(x_t.iter().zip(eps).map(|(&x, &e)| a * x - b * e).collect())
    }

    /// eps = (sqrt(1/abar_t) x_t - x0) / sqrt(1/abar_t - 1) (`predict_noise_from_start`).
    /// Infinite/NaN at a schedule whose abar_t is 1.
    pub fn eps_from_x0_slice(&self, x_t: &[f32], t: usize, x0: &[f32]) -> Result<Vec<f32>> {
        self.check_t(t)?;
        same_len("x_t", x_t, "x0", x0)?;
        let (a, b) = (
            self.sqrt_recip_alphas_cumprod[t],
            self.sqrt_recipm1_alphas_cumprod[t],
        );
        Ok(x_t
            .iter()
            .zip(x0)
            .map(|(&x, &x0)| (a * x - x0) / b)
            .collect())
    }

    /// x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (`q_sample`).
    pub fn q_sample_slice(&self, x0: &[f32], t: usize, noise: &[f32]) -> Result<Vec<f32>> {
        self.check_t(t)?;
        same_len("x0", x0, "noise", noise)?;
        let (a, b) = (
            self.sqrt_alphas_cumprod[t],
            self.sqrt_one_minus_alphas_cumprod[t],
        );
        Ok(x0.iter().zip(noise).map(|(&x, &n)| a * x + b * n).collect())
    }

    /// Deterministic DDIM update (eta = 0) to `t_next`, forwards (sampling) or backwards
    /// (inversion): x_{t'} = sqrt(abar_{t'}) x0 + sqrt(1 - abar_{t'}) eps.
    pub fn ddim_step_slice(&self, x0: &[f32], eps: &[f32], t_next: usize) -> Result<Vec<f32>> {
        self.check_t(t_next)?;
        same_len("x0", x0, "eps", eps)?;
        let (a, b) = self.ddim_coefs(t_next);
        Ok(x0.iter().zip(eps).map(|(&x, &e)| x * a + e * b).collect())
    }

    // ----------------------------------------------------------------------------------------
    // candle tensor ops: per-sample timesteps.

    /// Coefficients of `table` at the timesteps `t` (scalar, `[1]` or `[B]`) as a tensor of
    /// shape `[B, 1, ..., 1]` (rank of `like`) in `like`'s dtype and device, ready to broadcast
    /// against `like` (`[B, ...]`). A scalar or `[1]` t gives `[1, 1, ..., 1]`.
    pub fn coef(&self, table: Coef, t: &Tensor, like: &Tensor) -> Result<Tensor> {
        let ts = self.timesteps(t, like)?;
        let vals: Vec<f64> = ts
            .iter()
            .map(|&t| match table {
                Coef::AlphaBar => self.alphas_cumprod[t] as f64,
                Coef::SqrtAlphaBar => self.sqrt_alphas_cumprod[t] as f64,
                Coef::SqrtOneMinusAlphaBar => self.sqrt_one_minus_alphas_cumprod[t] as f64,
                Coef::SqrtRecipAlphaBar => self.sqrt_recip_alphas_cumprod[t] as f64,
                Coef::SqrtRecipm1AlphaBar => self.sqrt_recipm1_alphas_cumprod[t] as f64,
                Coef::DdimSqrtAlphaBar => self.ddim_coefs(t).0 as f64,
                Coef::DdimSqrtOneMinusAlphaBar => self.ddim_coefs(t).1 as f64,
            })
            .collect();
        let mut shape = vec![1usize; like.rank().max(1)];
        shape[0] = vals.len();
        Ok(Tensor::from_vec(vals, shape, like.device())?.to_dtype(like.dtype())?)
    }

    /// Validated timesteps of `t` for a batch shaped like `like` (`[B, ...]`): 1 or B values.
    fn timesteps(&self, t: &Tensor, like: &Tensor) -> Result<Vec<usize>> {
        let b = like.dims().first().copied().unwrap_or(1);
        let ts = timesteps_to_vec(t, b)?;
        let mut out = Vec::with_capacity(ts.len());
        for v in ts {
            if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0) {
                return Err(Error::Input(format!(
                    "timestep {v} is not a non-negative integer"
                )));
            }
            let v = v as usize;
            self.check_t(v)?;
            out.push(v);
        }
        Ok(out)
    }

    /// x0_hat = sqrt(1/abar_t) x_t - sqrt(1/abar_t - 1) eps. `x_t`, `eps`: `[B, P]` (or any
    /// `[B, ...]`), `t`: scalar, `[1]` or `[B]`. Returns `[B, P]`. Differentiable in x_t and eps.
    pub fn x0_from_eps(&self, x_t: &Tensor, t: &Tensor, eps: &Tensor) -> Result<Tensor> {
        same_shape("x_t", x_t, "eps", eps)?;
        let a = self.coef(Coef::SqrtRecipAlphaBar, t, x_t)?;
        let b = self.coef(Coef::SqrtRecipm1AlphaBar, t, x_t)?;
        Ok(x_t.broadcast_mul(&a)?.sub(&eps.broadcast_mul(&b)?)?)
    }

    /// eps = (sqrt(1/abar_t) x_t - x0) / sqrt(1/abar_t - 1). Shapes as [`Self::x0_from_eps`].
    pub fn eps_from_x0(&self, x_t: &Tensor, t: &Tensor, x0: &Tensor) -> Result<Tensor> {
        same_shape("x_t", x_t, "x0", x0)?;
        let a = self.coef(Coef::SqrtRecipAlphaBar, t, x_t)?;
        let b = self.coef(Coef::SqrtRecipm1AlphaBar, t, x_t)?;
        Ok(x_t.broadcast_mul(&a)?.sub(x0)?.broadcast_div(&b)?)
    }

    /// q(x_t | x0): sqrt(abar_t) x0 + sqrt(1 - abar_t) noise. `x0`, `noise`: `[B, P]`, `t`:
    /// scalar, `[1]` or `[B]`. Returns `[B, P]`.
    pub fn q_sample(&self, x0: &Tensor, t: &Tensor, noise: &Tensor) -> Result<Tensor> {
        same_shape("x0", x0, "noise", noise)?;
        let a = self.coef(Coef::SqrtAlphaBar, t, x0)?;
        let b = self.coef(Coef::SqrtOneMinusAlphaBar, t, x0)?;
        Ok(x0.broadcast_mul(&a)?.add(&noise.broadcast_mul(&b)?)?)
    }

    /// Deterministic DDIM update (eta = 0) to `t_next` (scalar, `[1]` or `[B]`):
    /// x_{t'} = sqrt(abar_{t'}) x0 + sqrt(1 - abar_{t'}) eps. `x0`, `eps`: `[B, P]`. Returns `[B, P]`.
    pub fn ddim_step(&self, x0: &Tensor, eps: &Tensor, t_next: &Tensor) -> Result<Tensor> {
        same_shape("x0", x0, "eps", eps)?;
        let a = self.coef(Coef::DdimSqrtAlphaBar, t_next, x0)?;
        let b = self.coef(Coef::DdimSqrtOneMinusAlphaBar, t_next, x0)?;
        Ok(x0.broadcast_mul(&a)?.add(&eps.broadcast_mul(&b)?)?)
    }
}

/// Which per-timestep coefficient [`Schedule::coef`] looks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coef {
    /// abar_t (`alphas_cumprod`).
    AlphaBar,
    /// sqrt(abar_t) (`sqrt_alphas_cumprod`).
    SqrtAlphaBar,
    /// sqrt(1 - abar_t) (`sqrt_one_minus_alphas_cumprod`).
    SqrtOneMinusAlphaBar,
    /// sqrt(1 / abar_t) (`sqrt_recip_alphas_cumprod`).
    SqrtRecipAlphaBar,
    /// sqrt(1 / abar_t - 1) (`sqrt_recipm1_alphas_cumprod`).
    SqrtRecipm1AlphaBar,
    /// f32 sqrt of the f32 abar_t, as the DDIM loops compute it (`alpha_next.sqrt()`).
    DdimSqrtAlphaBar,
    /// f32 sqrt of (1 - f32 abar_t) (`(1 - alpha_next).sqrt()`).
    DdimSqrtOneMinusAlphaBar,
}

/// A `[B]` u32 timestep tensor on `device` (what [`crate::diffusion::Denoiser::forward`] and
/// the schedule's tensor ops take).
pub fn timestep_tensor(ts: &[u32], device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(ts, ts.len(), device)?)
}

/// `B` copies of timestep `t` as a `[B]` u32 tensor.
pub fn timestep_full(t: u32, batch: usize, device: &Device) -> Result<Tensor> {
    Ok(Tensor::full(t, batch, device)?)
}

/// The values of a timestep tensor (scalar, `[1]` or `[B]`; any dtype) as f64, checked
/// against the batch size `b`. Returns 1 or `b` values.
pub fn timesteps_to_vec(t: &Tensor, b: usize) -> Result<Vec<f64>> {
    let n = match t.dims() {
        [] => 1,
        [n] => *n,
        d => {
            return Err(Error::Input(format!(
                "timesteps must be a scalar or a [B] vector, got shape {d:?}"
            )))
        }
    };
    if n != 1 && n != b {
        return Err(Error::Input(format!("{n} timesteps for a batch of {b}")));
    }
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

fn same_len(an: &str, a: &[f32], bn: &str, b: &[f32]) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::Input(format!(
            "{an} has {} values but {bn} has {}",
            a.len(),
            b.len()
        )));
    }
    Ok(())
}

fn same_shape(an: &str, a: &Tensor, bn: &str, b: &Tensor) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(Error::Input(format!(
            "{an} has shape {:?} but {bn} has {:?}",
            a.dims(),
            b.dims()
        )));
    }
    Ok(())
}
