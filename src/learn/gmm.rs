//! A Gaussian mixture over body pose, the pose prior of SMPLify (Bogo et al. 2016) and of
//! SPIN's SMPLify baseline: fitting (k-means++ seeding, EM with full covariances), safetensors
//! I/O, and SMPLify's max-mixture negative log-likelihood as a differentiable candle loss.
//!
//! The pose vector is the SMPL body pose in axis-angle, joints 1..23 in SMPL order
//! (`[N, 69]`, [`GMM_DIM`]); the global orientation is not part of it. SMPLify's own mixture has
//! 8 components fit on CMU mocap (`gmm_08.pkl`, SPIN `smplify.py`: `num_gaussians=8`).
//!
//! The loss is SMPLify-X `prior.py` `MaxMixturePrior.merged_log_likelihood` (the default
//! `use_merged=True` that SPIN uses): per sample
//! `min_k [ 0.5 (x - mu_k)^T P_k (x - mu_k) - log(nll_w_k) ]` with
//! `nll_w_k = w_k / ((2 pi)^(D/2) sqrt(det C_k) / min_j sqrt(det C_j))`, i.e. the constant
//! `-log w_k + (D/2) log(2 pi) + 0.5 (log det C_k - min_j log det C_j)` (computed here in log
//! space; SMPLify-X forms the determinants directly).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::diffusion::rng::Rng;
use crate::error::{Error, Result};

/// The body-pose dimension: 23 joints x 3 axis-angle components (SMPL joints 1..23).
pub const GMM_DIM: usize = 69;
/// SMPLify's number of components (SPIN `smplify.py`: `MaxMixturePrior(num_gaussians=8)`).
pub const SMPLIFY_COMPONENTS: usize = 8;
/// Default ridge added to every fitted covariance's diagonal, rad^2 (a 0.01 rad floor on the
/// standard deviation, so joints that never move in the data, e.g. CMU's hands, stay finite).
pub const DEFAULT_RIDGE: f64 = 1e-4;

/// Samples per parallel chunk; partial sums are added in chunk order, so results do not
/// depend on the thread count.
const CHUNK: usize = 512;
/// Lloyd iterations after k-means++ seeding.
const LLOYD_ITERS: usize = 10;

/// A Gaussian mixture with full covariances over `dim`-dimensional vectors.
#[derive(Clone, Debug)]
pub struct GmmPrior {
    dim: usize,
    /// `[K]`, positive, summing to 1.
    weights: Vec<f64>,
    /// `[K, D]`
    means: Vec<f64>,
    /// `[K, D, D]`
    covars: Vec<f64>,
    /// `[K, D, D]` inverses of the covariances.
    precisions: Vec<f64>,
    /// `[K, D, D]` lower Cholesky factors of the covariances.
    chol: Vec<f64>,
    /// `[K]` `log det C_k`.
    log_dets: Vec<f64>,
}

/// Lower Cholesky factor of the symmetric `a` `[n, n]`; `None` if not positive definite.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if !(s > 0.0 && s.is_finite()) {
                    return None;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// `|L^-1 x|^2` for a lower-triangular `l` `[n, n]` (the Mahalanobis distance when `l` is the
/// Cholesky factor of the covariance).
fn maha(l: &[f64], x: &[f64], n: usize, y: &mut [f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..n {
        let mut v = x[i];
        for k in 0..i {
            v -= l[i * n + k] * y[k];
        }
        v /= l[i * n + i];
        y[i] = v;
        s += v * v;
    }
    s
}

/// Inverse of `C = L L^T` from its Cholesky factor: `C^-1 = L^-T L^-1`.
fn chol_inverse(l: &[f64], n: usize) -> Vec<f64> {
    // Linv (lower) column by column.
    let mut li = vec![0.0; n * n];
    for c in 0..n {
        for i in c..n {
            let mut v = if i == c { 1.0 } else { 0.0 };
            for k in c..i {
                v -= l[i * n + k] * li[k * n + c];
            }
            li[i * n + c] = v / l[i * n + i];
        }
    }
    let mut p = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (i..n).map(|k| li[k * n + i] * li[k * n + j]).sum();
            p[i * n + j] = s;
            p[j * n + i] = s;
        }
    }
    p
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Index and squared distance of the nearest centre.
fn nearest(x: &[f64], centres: &[f64], dim: usize) -> (usize, f64) {
    centres
        .chunks_exact(dim)
        .enumerate()
        .map(|(k, c)| (k, sq_dist(x, c)))
        .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
}

impl GmmPrior {
    /// Fits a `k`-component mixture to body poses `samples` `[N, 69]` (axis-angle, SMPL joints
    /// 1..23) with `iters` EM iterations and the default ridge ([`DEFAULT_RIDGE`]).
    /// Deterministic for a seed. See [`Self::fit_dim`].
    pub fn fit(samples: &[f64], k: usize, iters: usize, seed: u64) -> Result<Self> {
        Self::fit_dim(samples, GMM_DIM, k, iters, seed, DEFAULT_RIDGE)
    }

    /// Fits a `k`-component full-covariance mixture to `samples` `[N, dim]`: k-means++ seeding
    /// (Arthur & Vassilvitskii 2007) and a few Lloyd steps, then up to `iters` EM iterations
    /// (stopping early when the mean log-likelihood gains less than 1e-10). Every covariance gets
    /// `ridge * I` added (as sklearn's `reg_covar`), so it stays positive definite.
    /// Deterministic for a seed (independent of the thread count). Needs `N >= k`.
    pub fn fit_dim(samples: &[f64], dim: usize, k: usize, iters: usize, seed: u64, ridge: f64) -> Result<Self> {
        if dim == 0 || k == 0 || !samples.len().is_multiple_of(dim) {
            return Err(Error::Input(format!(
                "GmmPrior::fit: {} values, dim {dim}, {k} components: expected [N, dim] with dim, k >= 1",
                samples.len()
            )));
        }
        let n = samples.len() / dim;
        if n < k {
            return Err(Error::Input(format!("GmmPrior::fit: {n} samples for {k} components")));
        }
        if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
            return Err(Error::Input(format!("GmmPrior::fit: sample value {i} is not finite")));
        }
        if !(ridge > 0.0 && ridge.is_finite()) {
            return Err(Error::Input(format!("GmmPrior::fit: ridge {ridge} must be positive")));
        }
        let rows: Vec<&[f64]> = samples.chunks_exact(dim).collect();

        // k-means++ seeding.
        let mut rng = Rng::new(seed);
        let mut centres: Vec<f64> = Vec::with_capacity(k * dim);
        centres.extend_from_slice(rows[rng.below(n as u64) as usize]);
        let mut d2: Vec<f64> = rows.par_iter().map(|x| sq_dist(x, &centres[..dim])).collect();
        for _ in 1..k {
            let total: f64 = d2.iter().sum();
            let pick = if total > 0.0 {
                let mut u = rng.uniform() * total;
                let mut idx = n - 1;
                for (i, &d) in d2.iter().enumerate() {
                    if u < d {
                        idx = i;
                        break;
                    }
                    u -= d;
                }
                idx
            } else {
                rng.below(n as u64) as usize
            };
            let c = rows[pick].to_vec();
            d2.par_iter_mut().zip(rows.par_iter()).for_each(|(d, x)| *d = d.min(sq_dist(x, &c)));
            centres.extend_from_slice(&c);
        }
        // Lloyd steps.
        let mut assign = vec![0usize; n];
        for _ in 0..LLOYD_ITERS {
            assign.par_iter_mut().zip(rows.par_iter()).for_each(|(a, x)| *a = nearest(x, &centres, dim).0);
            let mut sums = vec![0.0; k * dim];
            let mut counts = vec![0usize; k];
            for (x, &a) in rows.iter().zip(&assign) {
                counts[a] += 1;
                for (s, v) in sums[a * dim..(a + 1) * dim].iter_mut().zip(x.iter()) {
                    *s += v;
                }
            }
            for c in 0..k {
                if counts[c] > 0 {
                    for d in 0..dim {
                        centres[c * dim + d] = sums[c * dim + d] / counts[c] as f64;
                    }
                }
            }
        }
        assign.par_iter_mut().zip(rows.par_iter()).for_each(|(a, x)| *a = nearest(x, &centres, dim).0);

        // Initial parameters from the hard assignment.
        let mut resp = vec![0.0; n * k];
        for (i, &a) in assign.iter().enumerate() {
            resp[i * k + a] = 1.0;
        }
        let global = Self::m_step(&rows, &vec![1.0; n], 1, dim, ridge, None)?;
        let mut gmm = Self::m_step(&rows, &resp, k, dim, ridge, Some(&global))?;

        // EM.
        let mut prev = f64::NEG_INFINITY;
        for _ in 0..iters {
            let ll = gmm.e_step(&rows, &mut resp);
            gmm = Self::m_step(&rows, &resp, k, dim, ridge, Some(&gmm))?;
            if ll - prev < 1e-10 {
                break;
            }
            prev = ll;
        }
        Ok(gmm)
    }

    /// Responsibilities `resp` `[N, K]` of the current parameters; returns the mean
    /// log-likelihood of the samples.
    fn e_step(&self, rows: &[&[f64]], resp: &mut [f64]) -> f64 {
        let k = self.num_components();
        let partial: Vec<f64> = resp
            .par_chunks_mut(CHUNK * k)
            .zip(rows.par_chunks(CHUNK))
            .map(|(r, xs)| {
                let mut y = vec![0.0; self.dim];
                let mut lp = vec![0.0; k];
                let mut ll = 0.0;
                for (ri, x) in r.chunks_exact_mut(k).zip(xs) {
                    self.component_log_probs(x, &mut y, &mut lp);
                    let m = lp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let s: f64 = lp.iter().map(|v| (v - m).exp()).sum();
                    let lse = m + s.ln();
                    for (o, v) in ri.iter_mut().zip(&lp) {
                        *o = (v - lse).exp();
                    }
                    ll += lse;
                }
                ll
            })
            .collect();
        partial.iter().sum::<f64>() / rows.len() as f64
    }

    /// `log(w_k N(x; mu_k, C_k))` for every component into `out` `[K]`.
    fn component_log_probs(&self, x: &[f64], y: &mut [f64], out: &mut [f64]) {
        let d = self.dim;
        let mut diff = vec![0.0; d];
        let c0 = d as f64 * (2.0 * std::f64::consts::PI).ln();
        for (c, o) in out.iter_mut().enumerate() {
            for i in 0..d {
                diff[i] = x[i] - self.means[c * d + i];
            }
            let m = maha(&self.chol[c * d * d..(c + 1) * d * d], &diff, d, y);
            *o = self.weights[c].ln() - 0.5 * (c0 + self.log_dets[c] + m);
        }
    }

    /// Parameters from responsibilities `[N, K]` (weights, means, covariances + ridge). A
    /// component with (almost) no responsibility keeps `prev`'s parameters.
    fn m_step(rows: &[&[f64]], resp: &[f64], k: usize, dim: usize, ridge: f64, prev: Option<&Self>) -> Result<Self> {
        let n = rows.len();
        // Pass 1: counts and means.
        let parts: Vec<(Vec<f64>, Vec<f64>)> = rows
            .par_chunks(CHUNK)
            .zip(resp.par_chunks(CHUNK * k))
            .map(|(xs, r)| {
                let mut nk = vec![0.0; k];
                let mut s = vec![0.0; k * dim];
                for (x, ri) in xs.iter().zip(r.chunks_exact(k)) {
                    for c in 0..k {
                        let w = ri[c];
                        if w == 0.0 {
                            continue;
                        }
                        nk[c] += w;
                        for (a, v) in s[c * dim..(c + 1) * dim].iter_mut().zip(x.iter()) {
                            *a += w * v;
                        }
                    }
                }
                (nk, s)
            })
            .collect();
        let mut nk = vec![0.0; k];
        let mut means = vec![0.0; k * dim];
        for (a, s) in &parts {
            for c in 0..k {
                nk[c] += a[c];
            }
            for (m, v) in means.iter_mut().zip(s) {
                *m += v;
            }
        }
        let dead: Vec<bool> = nk.iter().map(|&v| v < 1e-8 * n as f64 || v <= 0.0).collect();
        for c in 0..k {
            if !dead[c] {
                for m in &mut means[c * dim..(c + 1) * dim] {
                    *m /= nk[c];
                }
            }
        }
        // Pass 2: covariances around the new means (lower triangle).
        let parts: Vec<Vec<f64>> = rows
            .par_chunks(CHUNK)
            .zip(resp.par_chunks(CHUNK * k))
            .map(|(xs, r)| {
                let mut s = vec![0.0; k * dim * dim];
                let mut diff = vec![0.0; dim];
                for (x, ri) in xs.iter().zip(r.chunks_exact(k)) {
                    for c in 0..k {
                        let w = ri[c];
                        if w == 0.0 || dead[c] {
                            continue;
                        }
                        for d in 0..dim {
                            diff[d] = x[d] - means[c * dim + d];
                        }
                        let sc = &mut s[c * dim * dim..(c + 1) * dim * dim];
                        for i in 0..dim {
                            let wi = w * diff[i];
                            let row = &mut sc[i * dim..i * dim + i + 1];
                            for (a, dj) in row.iter_mut().zip(&diff[..=i]) {
                                *a += wi * dj;
                            }
                        }
                    }
                }
                s
            })
            .collect();
        let mut covars = vec![0.0; k * dim * dim];
        for s in &parts {
            for (a, v) in covars.iter_mut().zip(s) {
                *a += v;
            }
        }
        let mut weights = vec![0.0; k];
        let total: f64 = nk.iter().sum();
        for c in 0..k {
            let cv = &mut covars[c * dim * dim..(c + 1) * dim * dim];
            if dead[c] {
                let p = prev.filter(|p| p.num_components() == k).ok_or_else(|| {
                    Error::Input("GmmPrior::fit: a component lost all its samples at initialisation".into())
                })?;
                means[c * dim..(c + 1) * dim].copy_from_slice(&p.means[c * dim..(c + 1) * dim]);
                cv.copy_from_slice(&p.covars[c * dim * dim..(c + 1) * dim * dim]);
                weights[c] = 1e-12;
                continue;
            }
            for i in 0..dim {
                for j in 0..=i {
                    let v = cv[i * dim + j] / nk[c];
                    cv[i * dim + j] = v;
                    cv[j * dim + i] = v;
                }
                cv[i * dim + i] += ridge;
            }
            weights[c] = nk[c] / total;
        }
        let ws: f64 = weights.iter().sum();
        for w in &mut weights {
            *w /= ws;
        }
        Self::from_parts(dim, weights, means, covars, "GmmPrior::fit")
    }

    /// A mixture from its parameters: `weights` `[K]` (positive; normalised to sum 1), `means`
    /// `[K, dim]`, `covars` `[K, dim, dim]` (symmetric positive definite). `origin` names the
    /// source in errors.
    pub fn from_parts(dim: usize, mut weights: Vec<f64>, means: Vec<f64>, covars: Vec<f64>, origin: &str) -> Result<Self> {
        let k = weights.len();
        let bad = |key: &str, what: String| Error::BadValue {
            path: origin.to_string(),
            key: key.to_string(),
            what,
        };
        if k == 0 || dim == 0 || means.len() != k * dim || covars.len() != k * dim * dim {
            return Err(Error::Input(format!(
                "{origin}: weights [{k}], means {} values, covars {} values: expected [K], [K, {dim}], [K, {dim}, {dim}] with K >= 1",
                means.len(),
                covars.len()
            )));
        }
        if weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(bad("weights", "every weight must be positive and finite".into()));
        }
        if means.iter().any(|v| !v.is_finite()) {
            return Err(bad("means", "non-finite value".into()));
        }
        let s: f64 = weights.iter().sum();
        for w in &mut weights {
            *w /= s;
        }
        let mut chol = Vec::with_capacity(k * dim * dim);
        let mut precisions = Vec::with_capacity(k * dim * dim);
        let mut log_dets = Vec::with_capacity(k);
        for c in 0..k {
            let cv = &covars[c * dim * dim..(c + 1) * dim * dim];
            let sym = (0..dim).all(|i| (0..i).all(|j| (cv[i * dim + j] - cv[j * dim + i]).abs() <= 1e-9 * (1.0 + cv[i * dim + j].abs())));
            let l = cholesky(cv, dim)
                .filter(|_| sym)
                .ok_or_else(|| bad("covars", format!("component {c} is not symmetric positive definite")))?;
            log_dets.push(2.0 * (0..dim).map(|i| l[i * dim + i].ln()).sum::<f64>());
            precisions.extend(chol_inverse(&l, dim));
            chol.extend(l);
        }
        Ok(Self {
            dim,
            weights,
            means,
            covars,
            precisions,
            chol,
            log_dets,
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn num_components(&self) -> usize {
        self.weights.len()
    }
    /// `[K]`
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
    /// `[K, D]`
    pub fn means(&self) -> &[f64] {
        &self.means
    }
    /// `[K, D, D]`
    pub fn covars(&self) -> &[f64] {
        &self.covars
    }
    /// `[K, D, D]`
    pub fn precisions(&self) -> &[f64] {
        &self.precisions
    }

    /// The mixture's mean `sum_k w_k mu_k` `[D]` (SMPLify-X `get_mean`).
    pub fn mean(&self) -> Vec<f64> {
        let d = self.dim;
        let mut m = vec![0.0; d];
        for (w, mu) in self.weights.iter().zip(self.means.chunks_exact(d)) {
            for (a, v) in m.iter_mut().zip(mu) {
                *a += w * v;
            }
        }
        m
    }

    /// Mean log-likelihood `mean_n log sum_k w_k N(x_n; mu_k, C_k)` of `samples` `[N, D]`.
    pub fn log_likelihood(&self, samples: &[f64]) -> Result<f64> {
        let d = self.dim;
        if samples.is_empty() || !samples.len().is_multiple_of(d) {
            return Err(Error::Input(format!("log_likelihood: {} values, expected [N, {d}]", samples.len())));
        }
        let rows: Vec<&[f64]> = samples.chunks_exact(d).collect();
        let mut resp = vec![0.0; rows.len() * self.num_components()];
        Ok(self.e_step(&rows, &mut resp))
    }

    /// The per-component constants of SMPLify's merged max-mixture loss `[K]`:
    /// `-log(w_k) + (D/2) log(2 pi) + 0.5 (log det C_k - min_j log det C_j)`
    /// (SMPLify-X `prior.py`: `-log(nll_weights)`).
    pub fn nll_constants(&self) -> Vec<f64> {
        let min_ld = self.log_dets.iter().cloned().fold(f64::INFINITY, f64::min);
        let half_d_log2pi = 0.5 * self.dim as f64 * (2.0 * std::f64::consts::PI).ln();
        self.weights
            .iter()
            .zip(&self.log_dets)
            .map(|(w, ld)| -w.ln() + half_d_log2pi + 0.5 * (ld - min_ld))
            .collect()
    }

    /// SMPLify's max-mixture loss of one vector `x` `[D]` in f64 (the reference for
    /// [`MaxMixtureLoss::loss`]).
    pub fn max_mixture_loss(&self, x: &[f64]) -> Result<f64> {
        let d = self.dim;
        if x.len() != d {
            return Err(Error::Input(format!("max_mixture_loss: {} values, expected {d}", x.len())));
        }
        let consts = self.nll_constants();
        let mut best = f64::INFINITY;
        for (c, cst) in consts.iter().enumerate() {
            let diff: Vec<f64> = (0..d).map(|i| x[i] - self.means[c * d + i]).collect();
            let p = &self.precisions[c * d * d..(c + 1) * d * d];
            let q: f64 = (0..d).map(|i| diff[i] * (0..d).map(|j| p[i * d + j] * diff[j]).sum::<f64>()).sum();
            best = best.min(0.5 * q + cst);
        }
        Ok(best)
    }

    /// The loss as tensors on `device` in `dtype`, for use inside an optimisation loop.
    pub fn max_mixture(&self, device: &Device, dtype: DType) -> Result<MaxMixtureLoss> {
        let (k, d) = (self.num_components(), self.dim);
        let t = |v: &[f64], s: &[usize]| -> Result<Tensor> { Ok(Tensor::from_slice(v, s, device)?.to_dtype(dtype)?) };
        Ok(MaxMixtureLoss {
            dim: d,
            means: t(&self.means, &[1, k, d])?,
            precisions: t(&self.precisions, &[k, d, d])?,
            consts: t(&self.nll_constants(), &[1, k])?,
        })
    }

    /// Writes `means` `[K, D]`, `covars` `[K, D, D]`, `weights` `[K]` (f64) to a safetensors
    /// file (the names of SMPLify's `gmm_08.pkl`), atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let (k, d) = (self.num_components(), self.dim);
        let dev = Device::Cpu;
        let mut map: HashMap<String, Tensor> = HashMap::new();
        map.insert("means".into(), Tensor::from_slice(&self.means, (k, d), &dev)?);
        map.insert("covars".into(), Tensor::from_slice(&self.covars, (k, d, d), &dev)?);
        map.insert("weights".into(), Tensor::from_slice(&self.weights, k, &dev)?);
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| Error::Input(format!("{}: not a file path", path.display())))?;
        let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
        let res = candle_core::safetensors::save(&map, &tmp)
            .map_err(|e| Error::Input(format!("{}: cannot write safetensors: {e}", path.display())))
            .and_then(|_| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    /// Reads a mixture written by [`Self::save`] (or converted from SMPLify's `gmm_08.pkl`:
    /// `means` `[K, D]`, `covars` `[K, D, D]`, `weights` `[K]`, f32 or f64). Errors name the file
    /// and the array.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| Error::BadValue {
            path: origin.clone(),
            key: String::new(),
            what: format!("not a readable safetensors file: {e}"),
        })?;
        let get = |key: &str, expected: &str| -> Result<&Tensor> {
            tensors.get(key).ok_or_else(|| Error::MissingKey {
                path: origin.clone(),
                key: key.into(),
                expected: expected.into(),
            })
        };
        let means = get("means", "[K, D] float")?;
        let covars = get("covars", "[K, D, D] float")?;
        let weights = get("weights", "[K] float")?;
        let shape_err = |key: &str, t: &Tensor, expected: String| Error::BadShape {
            path: origin.clone(),
            key: key.into(),
            found: t.dims().to_vec(),
            expected,
        };
        let (k, d) = match means.dims() {
            &[k, d] if k > 0 && d > 0 => (k, d),
            _ => return Err(shape_err("means", means, "[K, D] with K, D >= 1".into())),
        };
        if covars.dims() != [k, d, d] {
            return Err(shape_err("covars", covars, format!("[{k}, {d}, {d}]")));
        }
        if weights.dims() != [k] {
            return Err(shape_err("weights", weights, format!("[{k}]")));
        }
        let v = |key: &str, t: &Tensor| -> Result<Vec<f64>> {
            if !matches!(t.dtype(), DType::F32 | DType::F64) {
                return Err(Error::BadValue {
                    path: origin.clone(),
                    key: key.into(),
                    what: format!("dtype {:?}, expected f32 or f64", t.dtype()),
                });
            }
            Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
        };
        Self::from_parts(d, v("weights", weights)?, v("means", means)?, v("covars", covars)?, &origin)
    }
}

/// SMPLify's max-mixture pose prior as candle tensors (see the module docs).
pub struct MaxMixtureLoss {
    dim: usize,
    /// `[1, K, D]`
    means: Tensor,
    /// `[K, D, D]`
    precisions: Tensor,
    /// `[1, K]`
    consts: Tensor,
}

impl MaxMixtureLoss {
    /// Per-sample loss `[B]` of poses `x` `[B, D]`:
    /// `min_k 0.5 (x - mu_k)^T P_k (x - mu_k) + const_k`. Differentiable w.r.t. `x` (the gradient
    /// is that of the minimising component).
    pub fn loss(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        if x.dims() != [b, self.dim] {
            return Err(Error::Input(format!("max-mixture loss: pose {:?}, expected [B, {}]", x.dims(), self.dim)));
        }
        let diff = x.unsqueeze(1)?.broadcast_sub(&self.means)?; // [B, K, D]
        let dk = diff.transpose(0, 1)?.contiguous()?; // [K, B, D]
        let pd = dk.matmul(&self.precisions)?; // [K, B, D] (P symmetric)
        let quad = (pd * &dk)?.sum(2)?.transpose(0, 1)?; // [B, K]
        let l = ((quad * 0.5)?.broadcast_add(&self.consts))?;
        Ok(l.min(1)?)
    }
}
