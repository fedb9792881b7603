//! Procrustes alignment of point sets (similarity or rigid), in f64.
//!
//! The optimum is the one of the SVD formulation used for PA-MPJPE (data_eval.md 4.1; SPIN
//! `pose_utils.py`, GVHMR `eval_utils.py`): centre both sets, `K = X1 X2^T`, `U S V^T = svd(K)`,
//! `Z = diag(1, 1, sign det(U V^T))`, `R = V Z U^T`, `s = tr(R K) / |X1|^2`, `t = mu2 - s R mu1`.
//! `R` is the proper rotation (det +1) maximising `tr(R K)`. Rather than a 3x3 SVD it is computed
//! with Horn's quaternion method (Horn, JOSA A 1987): the maximiser is the quaternion of the
//! largest eigenvalue of a symmetric 4x4 matrix built from `K`, found here by cyclic Jacobi
//! rotations. This never yields a reflection, so no sign correction is needed, and it is exact
//! to rounding for degenerate (collinear, coplanar) sets, where any of the equally good
//! rotations is returned.

use super::rot::{mat3_apply, quat_to_matrix};
use super::{count_items, Real};
use crate::error::{Error, Result};

/// A similarity transform `p -> s R p + t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Similarity {
    /// Scale (1 for a rigid alignment).
    pub s: f64,
    /// Rotation, row-major 3x3, det +1.
    pub r: [f64; 9],
    /// Translation.
    pub t: [f64; 3],
}

impl Similarity {
    /// The identity transform.
    pub fn identity() -> Self {
        Self {
            s: 1.0,
            r: super::rot::identity(),
            t: [0.0; 3],
        }
    }

    /// Applies the transform to one point.
    pub fn apply_point(&self, p: &[f64; 3]) -> [f64; 3] {
        let q = mat3_apply(&self.r, p);
        std::array::from_fn(|i| self.s * q[i] + self.t[i])
    }

    /// Applies the transform to `points` `[N, 3]`, writing `out` `[N, 3]`.
    pub fn apply<T: Real>(&self, points: &[T], out: &mut [T]) -> Result<()> {
        count_items(points.len(), 3, "points [N, 3]")?;
        if out.len() != points.len() {
            return Err(Error::Input(format!(
                "Similarity::apply: output has {} values, input {}",
                out.len(),
                points.len()
            )));
        }
        for (p, q) in points.chunks_exact(3).zip(out.chunks_exact_mut(3)) {
            let y = self.apply_point(&[p[0].to_f64(), p[1].to_f64(), p[2].to_f64()]);
            for k in 0..3 {
                q[k] = T::from_f64(y[k]);
            }
        }
        Ok(())
    }
}

/// Similarity Procrustes: the `s, R, t` minimising `sum_i |s R x1_i + t - x2_i|^2` for
/// `x1`, `x2` `[N, 3]` (source, target). Fails on mismatched or empty inputs, non-finite values,
/// or a source whose points all coincide (the scale is undefined).
pub fn procrustes<T: Real>(x1: &[T], x2: &[T]) -> Result<Similarity> {
    fit(x1, x2, true)
}

/// Rigid Procrustes (no scale, `s = 1`): the `R, t` minimising `sum_i |R x1_i + t - x2_i|^2`.
pub fn procrustes_rigid<T: Real>(x1: &[T], x2: &[T]) -> Result<Similarity> {
    fit(x1, x2, false)
}

/// The rotation nearest to `m` (row-major 3x3) in the Frobenius norm, i.e. the orthogonal
/// polar factor restricted to det +1 (`U diag(1, 1, det(U V^T)) V^T` of `m = U S V^T`). Use it to
/// re-orthonormalise an averaged or drifting rotation.
pub fn nearest_rotation(m: &[f64; 9]) -> [f64; 9] {
    // Maximise tr(R^T M) = tr(R K) with K = M^T.
    best_rotation(&super::rot::mat3_transpose(m))
}

fn centroid(x: &[f64], n: usize) -> [f64; 3] {
    let mut c = [0.0; 3];
    for p in x.chunks_exact(3) {
        for k in 0..3 {
            c[k] += p[k];
        }
    }
    c.map(|v| v / n as f64)
}

fn fit<T: Real>(x1: &[T], x2: &[T], with_scale: bool) -> Result<Similarity> {
    let n = count_items(x1.len(), 3, "procrustes source [N, 3]")?;
    if n == 0 || x2.len() != x1.len() {
        return Err(Error::Input(format!(
            "procrustes: source has {} values and target {}; expected two non-empty [N, 3] sets",
            x1.len(),
            x2.len()
        )));
    }
    let a: Vec<f64> = x1.iter().map(|v| v.to_f64()).collect();
    let b: Vec<f64> = x2.iter().map(|v| v.to_f64()).collect();
    if !a.iter().chain(&b).all(|v| v.is_finite()) {
        return Err(Error::Input("procrustes: non-finite coordinates".into()));
    }
    let (mu1, mu2) = (centroid(&a, n), centroid(&b, n));
    // K = X1 X2^T (3x3) over centred points, and |X1|^2.
    let mut k = [0.0f64; 9];
    let mut var1 = 0.0;
    for (p, q) in a.chunks_exact(3).zip(b.chunks_exact(3)) {
        let pc = [p[0] - mu1[0], p[1] - mu1[1], p[2] - mu1[2]];
        let qc = [q[0] - mu2[0], q[1] - mu2[1], q[2] - mu2[2]];
        for i in 0..3 {
            for j in 0..3 {
                k[3 * i + j] += pc[i] * qc[j];
            }
        }
        var1 += pc[0] * pc[0] + pc[1] * pc[1] + pc[2] * pc[2];
    }
    let r = best_rotation(&k);
    let s = if with_scale {
        if var1 <= 0.0 {
            return Err(Error::Input(
                "procrustes: the source points all coincide, the scale is undefined".into(),
            ));
        }
        // tr(R K)
        let tr: f64 = (0..3)
            .map(|i| (0..3).map(|j| r[3 * i + j] * k[3 * j + i]).sum::<f64>())
            .sum();
        tr / var1
    } else {
        1.0
    };
    let rm = mat3_apply(&r, &mu1);
    let t = std::array::from_fn(|i| mu2[i] - s * rm[i]);
    Ok(Similarity { s, r, t })
}

/// The rotation (det +1) maximising `tr(R K)` (Horn's quaternion method).
fn best_rotation(k: &[f64; 9]) -> [f64; 9] {
    // Horn's S_ab = sum source_a target_b = K[a][b].
    let (sxx, sxy, sxz) = (k[0], k[1], k[2]);
    let (syx, syy, syz) = (k[3], k[4], k[5]);
    let (szx, szy, szz) = (k[6], k[7], k[8]);
    let n = [
        [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
        [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
        [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
        [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
    ];
    let (vals, vecs) = jacobi_eigen4(n);
    let mut best = 0;
    for i in 1..4 {
        if vals[i] > vals[best] {
            best = i;
        }
    }
    let q = [vecs[0][best], vecs[1][best], vecs[2][best], vecs[3][best]];
    quat_to_matrix(&q)
}

/// Eigen-decomposition of a symmetric 4x4 matrix by cyclic Jacobi rotations. Returns the
/// eigenvalues and the eigenvectors as the columns of the second array (`v[row][k]` is entry
/// `row` of eigenvector `k`), orthonormal.
fn jacobi_eigen4(mut a: [[f64; 4]; 4]) -> ([f64; 4], [[f64; 4]; 4]) {
    let mut v = [[0.0f64; 4]; 4];
    for (i, row) in v.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    let norm2: f64 = a.iter().flatten().map(|x| x * x).sum();
    // Converges quadratically; 50 sweeps is far more than ever needed for 4x4.
    for _ in 0..50 {
        let off: f64 = (0..4)
            .flat_map(|p| (p + 1..4).map(move |q| (p, q)))
            .map(|(p, q)| a[p][q] * a[p][q])
            .sum();
        if off <= 1e-32 * norm2 || off == 0.0 {
            break;
        }
        for p in 0..3 {
            for q in p + 1..4 {
                let apq = a[p][q];
                if apq == 0.0 {
                    continue;
                }
                // Numerical Recipes `jacobi`: the rotation J (J_pp = J_qq = c, J_pq = s,
                // J_qp = -s) with A' = J^T A J zeroes A'_pq.
                let theta = (a[q][q] - a[p][p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let (akp, akq) = (row[p], row[q]);
                    row[p] = c * akp - s * akq;
                    row[q] = s * akp + c * akq;
                }
                let (rp, rq) = (a[p], a[q]);
                a[p] = std::array::from_fn(|k| c * rp[k] - s * rq[k]);
                a[q] = std::array::from_fn(|k| s * rp[k] + c * rq[k]);
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ([a[0][0], a[1][1], a[2][2], a[3][3]], v)
}
