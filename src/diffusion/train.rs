//! The DDPM training objective of ScoreHMR: eps-prediction with a mean squared error.
//!
//! `score_hmr/diffusion.py::p_losses` (ScoreHMR commit f623ed1): x_t = q_sample(x0, t, noise),
//! loss = MSE(eps_phi(x_t, t, c), noise), averaged over the P dims and the batch; the p2 weight
//! is 1 (gamma = 0, diffusion.py L64-66). The caller draws t ~ U{0..T-1} and noise ~ N(0, I)
//! (for example with [`crate::diffusion::Rng`]) so that a training run is reproducible.
//! Optimiser settings of the release, for reference: Adam lr 1e-4, betas (0.9, 0.99), no weight
//! decay, grad-norm clip 1.0, batch 128 (reference/scorehmr.md section 6).

use candle_core::{Tensor, D};

use super::denoiser::Denoiser;
use super::schedule::Schedule;
use crate::error::{Error, Result};

/// Mean eps-prediction loss, a scalar tensor (differentiable in the model's variables).
///
/// - `x0`: `[B, P]` clean samples; `noise`: `[B, P]`;
/// - `t`: `[B]` timesteps (or a shared scalar / `[1]`);
/// - `cond`: `[B, C]` (or shared), `None` for the null condition (see [`Denoiser::forward`]).
pub fn training_loss(
    model: &Denoiser,
    schedule: &Schedule,
    x0: &Tensor,
    cond: Option<&Tensor>,
    t: &Tensor,
    noise: &Tensor,
) -> Result<Tensor> {
    Ok(training_loss_per_sample(model, schedule, x0, cond, t, noise)?.mean_all()?)
}

/// Per-sample eps-prediction loss `[B]`: mean over P of (eps_phi(x_t, t, c) - noise)^2, the
/// quantity Diffusion-DPO compares between model and reference.
pub fn training_loss_per_sample(
    model: &Denoiser,
    schedule: &Schedule,
    x0: &Tensor,
    cond: Option<&Tensor>,
    t: &Tensor,
    noise: &Tensor,
) -> Result<Tensor> {
    check_x0(x0)?;
    let x_t = schedule.q_sample(x0, t, noise)?;
    let eps = model.forward(&x_t, t, cond)?;
    Ok(eps.sub(noise)?.sqr()?.mean(D::Minus1)?)
}

/// [`training_loss`] with classifier-free-guidance dropout: rows with a non-zero `drop_mask`
/// (`[B]`) are trained with the null condition (see [`Denoiser::forward_masked`]).
pub fn training_loss_masked(
    model: &Denoiser,
    schedule: &Schedule,
    x0: &Tensor,
    cond: &Tensor,
    drop_mask: &Tensor,
    t: &Tensor,
    noise: &Tensor,
) -> Result<Tensor> {
    check_x0(x0)?;
    let x_t = schedule.q_sample(x0, t, noise)?;
    let eps = model.forward_masked(&x_t, t, cond, drop_mask)?;
    Ok(eps.sub(noise)?.sqr()?.mean_all()?)
}

fn check_x0(x0: &Tensor) -> Result<()> {
    if x0.rank() != 2 {
        return Err(Error::Input(format!(
            "x0 must have shape [B, P], got {:?}",
            x0.dims()
        )));
    }
    Ok(())
}
