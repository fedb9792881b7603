//! The diffusion prior: ScoreHMR's noise schedule and denoiser, and its training objective.
//!
//! Pieces (reference/scorehmr.md sections 1-2, ScoreHMR commit f623ed1):
//! - [`schedule`]: the cosine schedule (T = 1000, computed in f64, buffers in f32 as the
//!   official `GaussianDiffusion`), x0 from eps, q(x_t | x0) and the deterministic DDIM update,
//!   as f32 slice ops and as candle tensor ops with per-sample timesteps.
//! - [`denoiser`]: the network eps_phi(x_t, t, c) (`FC` of the official code) with the
//!   official parameter names, configurable sizes ([`DenoiserConfig::official`]: 11.3 M
//!   parameters; [`DenoiserConfig::default`]: the 1.8 M rigfit prior), an optional null
//!   condition for classifier-free guidance, and safetensors I/O (`model.safetensors` +
//!   `model.json`). tools/convert_scorehmr_ckpt.py turns the released `model-100.pt` into a
//!   file [`Denoiser::load`] reads.
//! - [`train`]: the DDPM eps-prediction MSE ([`training_loss`]); the caller draws t and the noise.
//! - [`rng`]: a seeded generator for reproducible initialisation and batches.
//!
//! What comes next lives in `ddim.rs` (DDIM sampling, DDIM inversion and the score-guided loop
//! of ScoreHMR section 2.1), written against these APIs. One guided step from timestep `t0` to
//! `t1` is, with `t`/`tn` the `[B]` u32 tensors of `t0`/`t1` (see [`timestep_full`]) and `grad`
//! `[B, P]` the gradient of the task loss w.r.t. x_t through `x0_from_eps` (eps held constant):
//!
//! ```ignore
//! let eps = denoiser.forward(&x_t, &t, Some(&cond))?;                          // [B, P]
//! let eps = (eps + (grad * sched.sqrt_one_minus_alpha_bar(t0) as f64)?)?;      // Eq. (10)
//! let x0 = sched.x0_from_eps(&x_t, &t, &eps)?;                                 // [B, P]
//! let x_t = sched.ddim_step(&x0, &eps, &tn)?;                                  // [B, P]
//! ```

pub mod ddim;
pub mod denoiser;
pub mod fast;
pub mod prior;
pub mod rng;
pub mod schedule;
pub mod train;

pub use denoiser::{gelu, sinusoidal_embedding, Denoiser, DenoiserConfig, NullCond};
pub use prior::{condition_features, Prior, PriorConfig, COND_FEATURES};
pub use rng::Rng;
pub use schedule::{timestep_full, timestep_tensor, Coef, Schedule, SCOREHMR_TIMESTEPS};
pub use train::{training_loss, training_loss_masked, training_loss_per_sample};
