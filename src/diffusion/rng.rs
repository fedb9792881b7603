//! A small seeded random number generator for reproducible initialisation, training batches
//! and tests (candle's CPU RNG cannot be seeded).
//!
//! splitmix64 (Steele, Lea & Flood 2014) for the bit stream, 53-bit uniforms in [0, 1), and
//! Box-Muller for standard normals. Same seed, same numbers, on every platform.

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// splitmix64 generator. Not cryptographic.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
    /// The second Box-Muller value, kept for the next [`Rng::normal`].
    spare: Option<f64>,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare: None,
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn uniform_in(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in 0..n (n > 0; tiny modulo bias, irrelevant for n << 2^64).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        self.next_u64() % n
    }

    /// A standard normal sample (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        // 1 - u is in (0, 1], so the log is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
        self.spare = Some(r * s);
        r * c
    }

    /// `n` standard normals.
    pub fn normals(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.normal()).collect()
    }

    /// A tensor of standard normals with `shape`, in `dtype` on `device`.
    pub fn normal_tensor(
        &mut self,
        shape: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let n = shape.iter().product();
        Ok(Tensor::from_vec(self.normals(n), shape, device)?.to_dtype(dtype)?)
    }

    /// `[B]` u32 timesteps uniform in 0..num_timesteps (ScoreHMR: `torch.randint(0, T, (B,))`).
    pub fn timesteps(
        &mut self,
        batch: usize,
        num_timesteps: usize,
        device: &Device,
    ) -> Result<Tensor> {
        let ts: Vec<u32> = (0..batch)
            .map(|_| self.below(num_timesteps as u64) as u32)
            .collect();
        Ok(Tensor::from_vec(ts, batch, device)?)
    }
}
