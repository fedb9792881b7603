//! Inference of the denoiser for one fixed condition, as in a guided refinement (500 network
//! evaluations with the same condition and 26 distinct timesteps).
//!
//! Exact algebra, no approximation. In every block the first layer is
//! `W1 LN([h ; c]) + b1`; with the layer norm's gamma/beta and `W1 = [W_h W_c]`:
//!
//! ```text
//! W1 LN([h;c]) + b1 = inv * (W_h diag(gamma_h) h + W_c (gamma_c . c) - mu * W1 gamma) + W1 beta + b1
//! mu  = (sum h + sum c) / (P + C),   var = (sum h^2 + sum c^2) / (P + C) - mu^2,
//! inv = 1 / sqrt(var + eps)
//! ```
//!
//! so the condition's share `W_c (gamma_c . c)`, `sum c` and `sum c^2` (C = 3072 of the 3216
//! inputs: ~80% of the official network's multiply-adds) is computed once per refinement, and
//! the time branch (time MLP and every block's FiLM scale/shift) once per timestep. What is
//! left per evaluation is `init_mlp`, a `[P -> H]` and an `[H -> P]` layer per block, and
//! `final_mlp`.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::{Module, Tensor, D};

use super::denoiser::{gelu, Denoiser, LAYER_NORM_EPS};
use crate::error::{Error, Result};

struct BlockPre {
    /// `W_h diag(gamma_h)` transposed: `[P, H]`.
    wg_h_t: Tensor,
    /// `W1 gamma` `[1, H]`.
    u: Tensor,
    /// `W1 beta + b1` `[1, H]`.
    k: Tensor,
    /// `W_c (gamma_c . c)` `[B, H]` (None for an unconditional model).
    a_c: Option<Tensor>,
    /// `sum c` and `sum c^2` `[B, 1]`.
    sum_c: Option<(Tensor, Tensor)>,
}

/// A denoiser bound to one condition for a batch of `B` (see the module docs).
pub struct ConditionedDenoiser<'a> {
    den: &'a Denoiser,
    batch: usize,
    blocks: Vec<BlockPre>,
    /// t -> per block (scale + 1, shift), each `[1, P]`.
    film: RefCell<HashMap<u32, Vec<(Tensor, Tensor)>>>,
}

impl Denoiser {
    /// Binds the network to the condition `cond` (`[B, C]`, shared `[1, C]` / `[C]`, or None
    /// for the null condition) for batches of `batch`: precomputes the condition's share of
    /// every block. [`ConditionedDenoiser::forward`] then equals [`Denoiser::forward`] up to
    /// float rounding.
    pub fn condition(&self, cond: Option<&Tensor>, batch: usize) -> Result<ConditionedDenoiser<'_>> {
        let cfg = self.config();
        let (p, cd) = (cfg.pose_dim, cfg.cond_dim);
        let c = match cond {
            _ if cd == 0 => None,
            Some(c) => Some(self.check_cond(c, batch)?),
            None => Some(self.null_batch(batch)?),
        };
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for blk in &self.blocks {
            let w1 = blk.linear_layer1.weight(); // [H, P + C]
            let b1 = blk.linear_layer1.bias().ok_or_else(|| Error::Input("linear_layer1 has no bias".into()))?;
            let gamma = &blk.layer_norm1.weight; // [P + C]
            let beta = &blk.layer_norm1.bias;
            let w_h = w1.narrow(1, 0, p)?;
            let wg_h_t = w_h.broadcast_mul(&gamma.narrow(0, 0, p)?.unsqueeze(0)?)?.t()?.contiguous()?;
            let u = w1.matmul(&gamma.unsqueeze(1)?)?.t()?; // [1, H]
            let k = (w1.matmul(&beta.unsqueeze(1)?)?.t()? + b1.unsqueeze(0)?)?;
            let (a_c, sum_c) = match &c {
                Some(c) => {
                    let w_c = w1.narrow(1, p, cd)?; // [H, C]
                    let gc = c.broadcast_mul(&gamma.narrow(0, p, cd)?.unsqueeze(0)?)?; // [B, C]
                    let a = gc.matmul(&w_c.t()?)?; // [B, H]
                    (Some(a), Some((c.sum_keepdim(D::Minus1)?, c.sqr()?.sum_keepdim(D::Minus1)?)))
                }
                None => (None, None),
            };
            blocks.push(BlockPre { wg_h_t, u, k, a_c, sum_c });
        }
        Ok(ConditionedDenoiser { den: self, batch, blocks, film: RefCell::new(HashMap::new()) })
    }
}

impl ConditionedDenoiser<'_> {
    /// Batch size the condition was bound for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The denoiser this is bound to.
    pub fn denoiser(&self) -> &Denoiser {
        self.den
    }

    /// eps(x_t, t, c) for `x_t` `[B, P]` at one timestep `t` shared by the batch.
    pub fn forward(&self, x_t: &Tensor, t: u32) -> Result<Tensor> {
        let den = self.den;
        let cfg = den.config();
        let (p, cd) = (cfg.pose_dim, cfg.cond_dim);
        if x_t.dims() != [self.batch, p] {
            return Err(Error::Input(format!(
                "x_t {:?}: this conditioned denoiser is bound to [{}, {p}]",
                x_t.dims(),
                self.batch
            )));
        }
        let film = self.film_at(t)?;
        let n = (p + cd) as f64;
        let mut h = den.init_mlp.forward(x_t)?; // [B, P]
        for ((blk, pre), (s1, shift)) in den.blocks.iter().zip(&self.blocks).zip(film.iter()) {
            h = h.broadcast_mul(s1)?.broadcast_add(shift)?;
            let mut sum = h.sum_keepdim(D::Minus1)?; // [B, 1]
            let mut sumsq = h.sqr()?.sum_keepdim(D::Minus1)?;
            let mut z = h.matmul(&pre.wg_h_t)?; // [B, H]
            if let (Some(a), Some((sc, sqc))) = (&pre.a_c, &pre.sum_c) {
                sum = (sum + sc)?;
                sumsq = (sumsq + sqc)?;
                z = (z + a)?;
            }
            let mu = (sum / n)?;
            let var = ((sumsq / n)? - mu.sqr()?)?;
            let inv = (var + LAYER_NORM_EPS)?.sqrt()?.recip()?;
            z = (z - mu.broadcast_mul(&pre.u)?)?.broadcast_mul(&inv)?.broadcast_add(&pre.k)?;
            let z = gelu(&z)?;
            let z = gelu(&blk.linear_layer2.forward(&blk.layer_norm2.forward(&z)?)?)?;
            h = (h + z)?;
        }
        Ok(den.final_mlp.forward(&h)?)
    }

    /// Per-block FiLM `(scale + 1, shift)` `[1, P]` at timestep `t` (cached).
    fn film_at(&self, t: u32) -> Result<Vec<(Tensor, Tensor)>> {
        if let Some(v) = self.film.borrow().get(&t) {
            return Ok(v.clone());
        }
        let den = self.den;
        let p = den.config().pose_dim;
        let tt = Tensor::new(&[t], den.device())?;
        let temb = den.time_embedding(&tt, 1)?; // [1, P]
        let tm = den.time_mlp3.forward(&gelu(&den.time_mlp1.forward(&temb)?)?)?;
        let act = candle_nn::ops::silu(&tm)?;
        let mut v = Vec::with_capacity(den.blocks.len());
        for blk in &den.blocks {
            let ss = blk.film.forward(&act)?; // [1, 2P]
            v.push(((ss.narrow(1, 0, p)? + 1.0)?, ss.narrow(1, p, p)?));
        }
        self.film.borrow_mut().insert(t, v.clone());
        Ok(v)
    }
}
