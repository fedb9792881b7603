//! Rotation representations: 6D (ScoreHMR layout), matrix, axis-angle, quaternion.
//!
//! Plain-array functions are generic over [`Real`] (`f32` or `f64`); matrices are row-major
//! `[T; 9]` (see [`crate::geom`] for the conventions). The `*_t` functions are the
//! differentiable candle versions (f32 or f64 tensors), built only from ops whose backward passes
//! are correct in candle 0.11 (broadcast ops, `sqrt` with an epsilon inside, `sin`/`cos`,
//! `sum_keepdim`, `narrow`, `cat`/`stack`; rust_stack.md).
//!
//! ## 6D layout
//! ScoreHMR (scorehmr.md 1.3; `score_hmr/utils/geometry.py` `rot6d_to_rotmat`, after Zhou et
//! al., CVPR 2019) stores the first two *columns* of `R`, column 0 first:
//! `[R00, R10, R20, R01, R11, R21]`. Decoding is Gram-Schmidt: `b1 = norm(a1)`,
//! `b2 = norm(a2 - (b1.a2) b1)`, `b3 = b1 x b2`, `R = [b1 b2 b3]` (as columns).
//! This is *not* the interleaved SPIN/PARE layout `reshape(3, 2)`.

use candle_core::{Tensor, D};

use super::{count_items, Real};
use crate::error::{Error, Result};

/// Epsilon added to squared norms before `sqrt` in the candle functions, so that the gradient
/// stays finite at zero (rust_stack.md: sqrt at zero has a NaN gradient).
pub const TENSOR_NORM_EPS: f64 = 1e-12;

// ---------------------------------------------------------------------------------------------
// Small 3x3 / vector helpers
// ---------------------------------------------------------------------------------------------

/// The 3x3 identity, row-major.
pub fn identity<T: Real>() -> [T; 9] {
    let (o, l) = (T::ZERO, T::ONE);
    [l, o, o, o, l, o, o, o, l]
}

/// Matrix product `a b` of row-major 3x3 matrices.
pub fn mat3_mul<T: Real>(a: &[T; 9], b: &[T; 9]) -> [T; 9] {
    std::array::from_fn(|k| {
        let (i, j) = (k / 3, k % 3);
        a[3 * i] * b[j] + a[3 * i + 1] * b[3 + j] + a[3 * i + 2] * b[6 + j]
    })
}

/// Transpose of a row-major 3x3 matrix (the inverse of a rotation).
pub fn mat3_transpose<T: Real>(a: &[T; 9]) -> [T; 9] {
    [a[0], a[3], a[6], a[1], a[4], a[7], a[2], a[5], a[8]]
}

/// Determinant of a row-major 3x3 matrix.
pub fn mat3_det<T: Real>(a: &[T; 9]) -> T {
    a[0] * (a[4] * a[8] - a[5] * a[7]) - a[1] * (a[3] * a[8] - a[5] * a[6])
        + a[2] * (a[3] * a[7] - a[4] * a[6])
}

/// Matrix-vector product `a v`.
pub fn mat3_apply<T: Real>(a: &[T; 9], v: &[T; 3]) -> [T; 3] {
    std::array::from_fn(|i| a[3 * i] * v[0] + a[3 * i + 1] * v[1] + a[3 * i + 2] * v[2])
}

fn dot3<T: Real>(a: &[T; 3], b: &[T; 3]) -> T {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross3<T: Real>(a: &[T; 3], b: &[T; 3]) -> [T; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn scale3<T: Real>(a: &[T; 3], s: T) -> [T; 3] {
    [a[0] * s, a[1] * s, a[2] * s]
}

/// `sin(x) / x`, accurate near 0 (Taylor series below the point where it is exact to rounding).
fn sinc<T: Real>(x: T) -> T {
    // x^4/120 is below machine epsilon when |x| < eps^(1/4); the x^4 term keeps it exact there.
    if x.abs() < T::EPSILON.sqrt().sqrt() {
        let x2 = x * x;
        T::ONE - x2 / T::from_f64(6.0) + x2 * x2 / T::from_f64(120.0)
    } else {
        x.sin() / x
    }
}

/// Any unit vector perpendicular to the unit vector `a`.
fn any_perpendicular<T: Real>(a: &[T; 3]) -> [T; 3] {
    // Cross with the basis axis least aligned with `a` (well conditioned).
    let (ax, ay, az) = (a[0].abs(), a[1].abs(), a[2].abs());
    let e = if ax <= ay && ax <= az {
        [T::ONE, T::ZERO, T::ZERO]
    } else if ay <= az {
        [T::ZERO, T::ONE, T::ZERO]
    } else {
        [T::ZERO, T::ZERO, T::ONE]
    };
    let c = cross3(a, &e);
    scale3(&c, T::ONE / dot3(&c, &c).sqrt())
}

// ---------------------------------------------------------------------------------------------
// 6D
// ---------------------------------------------------------------------------------------------

/// 6D (ScoreHMR layout `[a1; a2]`, column 0 then column 1) to a rotation matrix by Gram-Schmidt.
///
/// Always returns a proper rotation (orthonormal, det +1). Degenerate inputs, which the candle
/// version [`rot6d_to_matrix_t`] maps to a non-rotation, get a deterministic completion here: a
/// zero `a1` is replaced by the x axis, an `a2` parallel to `a1` by a perpendicular axis.
pub fn rot6d_to_matrix<T: Real>(x: &[T; 6]) -> [T; 9] {
    let a1 = [x[0], x[1], x[2]];
    let a2 = [x[3], x[4], x[5]];
    let tiny = T::EPSILON * T::EPSILON;
    let n1 = dot3(&a1, &a1);
    // Divisions (not reciprocal products) in the same order as `rot6d_to_matrix_t`, so the two
    // agree to rounding.
    let b1 = if n1 > tiny && n1.is_finite() {
        let n = n1.sqrt();
        a1.map(|v| v / n)
    } else {
        [T::ONE, T::ZERO, T::ZERO]
    };
    let d = dot3(&b1, &a2);
    let u = [a2[0] - d * b1[0], a2[1] - d * b1[1], a2[2] - d * b1[2]];
    let nu = dot3(&u, &u);
    // Relative test: `u` is pure rounding noise when a2 is (nearly) parallel to a1.
    let b2 = if nu > T::EPSILON * T::EPSILON * dot3(&a2, &a2) && nu > tiny && nu.is_finite() {
        let n = nu.sqrt();
        u.map(|v| v / n)
    } else {
        any_perpendicular(&b1)
    };
    let b3 = cross3(&b1, &b2);
    [
        b1[0], b2[0], b3[0], b1[1], b2[1], b3[1], b1[2], b2[2], b3[2],
    ]
}

/// Rotation matrix to 6D (ScoreHMR layout): `[R00, R10, R20, R01, R11, R21]`.
pub fn matrix_to_rot6d<T: Real>(r: &[T; 9]) -> [T; 6] {
    [r[0], r[3], r[6], r[1], r[4], r[7]]
}

// ---------------------------------------------------------------------------------------------
// Axis-angle
// ---------------------------------------------------------------------------------------------

/// Axis-angle (`axis * angle`, radians) to a rotation matrix (Rodrigues).
///
/// Uses `R = cos(t) I + (sin t / t) [v]x + (1 - cos t)/t^2 v v^T` with
/// `(1 - cos t)/t^2 = sinc(t/2)^2 / 2`, so it is accurate at and near the zero rotation.
pub fn axis_angle_to_matrix<T: Real>(v: &[T; 3]) -> [T; 9] {
    let theta = dot3(v, v).sqrt();
    let c = theta.cos();
    let a = sinc(theta);
    let h = sinc(theta * T::from_f64(0.5));
    let b = h * h * T::from_f64(0.5);
    let (x, y, z) = (v[0], v[1], v[2]);
    [
        c + b * x * x,
        b * x * y - a * z,
        b * x * z + a * y,
        b * x * y + a * z,
        c + b * y * y,
        b * y * z - a * x,
        b * x * z - a * y,
        b * y * z + a * x,
        c + b * z * z,
    ]
}

/// Rotation matrix to axis-angle, with angle in `[0, pi]`.
///
/// Goes through the quaternion ([`matrix_to_quat`], Shepperd's method) and `atan2`, which is
/// accurate at all angles, including near 0 and near pi (where the axis-from-antisymmetric-part
/// formula breaks down). At exactly pi the sign of the axis is arbitrary (both are correct).
pub fn matrix_to_axis_angle<T: Real>(r: &[T; 9]) -> [T; 3] {
    quat_to_axis_angle(&matrix_to_quat(r))
}

// ---------------------------------------------------------------------------------------------
// Quaternions
// ---------------------------------------------------------------------------------------------

/// Normalises a quaternion `[w, x, y, z]`; a zero (or non-finite-norm) quaternion becomes the
/// identity `[1, 0, 0, 0]`.
pub fn quat_normalize<T: Real>(q: &[T; 4]) -> [T; 4] {
    let n = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
    if n > T::ZERO && n.is_finite() {
        let inv = T::ONE / n;
        [q[0] * inv, q[1] * inv, q[2] * inv, q[3] * inv]
    } else {
        [T::ONE, T::ZERO, T::ZERO, T::ZERO]
    }
}

/// Hamilton product `a b` (the rotation `b` followed by `a`).
pub fn quat_mul<T: Real>(a: &[T; 4], b: &[T; 4]) -> [T; 4] {
    [
        a[0] * b[0] - a[1] * b[1] - a[2] * b[2] - a[3] * b[3],
        a[0] * b[1] + a[1] * b[0] + a[2] * b[3] - a[3] * b[2],
        a[0] * b[2] - a[1] * b[3] + a[2] * b[0] + a[3] * b[1],
        a[0] * b[3] + a[1] * b[2] - a[2] * b[1] + a[3] * b[0],
    ]
}

/// Quaternion `[w, x, y, z]` to a rotation matrix. The input is normalised first (see
/// [`quat_normalize`]); `q` and `-q` give the same matrix.
pub fn quat_to_matrix<T: Real>(q: &[T; 4]) -> [T; 9] {
    let [w, x, y, z] = quat_normalize(q);
    let two = T::from_f64(2.0);
    let (ww, xx, yy, zz) = (w * w, x * x, y * y, z * z);
    let (wx, wy, wz) = (w * x, w * y, w * z);
    let (xy, xz, yz) = (x * y, x * z, y * z);
    [
        ww + xx - yy - zz,
        two * (xy - wz),
        two * (xz + wy),
        two * (xy + wz),
        ww - xx + yy - zz,
        two * (yz - wx),
        two * (xz - wy),
        two * (yz + wx),
        ww - xx - yy + zz,
    ]
}

/// Rotation matrix to a unit quaternion `[w, x, y, z]` with `w >= 0` (Shepperd's method: the
/// square root is taken of the largest of `4w^2, 4x^2, 4y^2, 4z^2`, so it never divides by a
/// small number). Slightly non-orthonormal input gives the quaternion of a nearby rotation.
pub fn matrix_to_quat<T: Real>(r: &[T; 9]) -> [T; 4] {
    let one = T::ONE;
    let quarter = T::from_f64(0.25);
    let (r00, r01, r02) = (r[0], r[1], r[2]);
    let (r10, r11, r12) = (r[3], r[4], r[5]);
    let (r20, r21, r22) = (r[6], r[7], r[8]);
    let tr = r00 + r11 + r22;
    let pos = |v: T| if v > T::ZERO { v } else { T::ZERO };
    let q = if tr >= r00 && tr >= r11 && tr >= r22 {
        let s = pos(one + tr).sqrt() * T::from_f64(2.0); // 4w
        let inv = one / s;
        [
            quarter * s,
            (r21 - r12) * inv,
            (r02 - r20) * inv,
            (r10 - r01) * inv,
        ]
    } else if r00 >= r11 && r00 >= r22 {
        let s = pos(one + r00 - r11 - r22).sqrt() * T::from_f64(2.0); // 4x
        let inv = one / s;
        [
            (r21 - r12) * inv,
            quarter * s,
            (r01 + r10) * inv,
            (r02 + r20) * inv,
        ]
    } else if r11 >= r22 {
        let s = pos(one - r00 + r11 - r22).sqrt() * T::from_f64(2.0); // 4y
        let inv = one / s;
        [
            (r02 - r20) * inv,
            (r01 + r10) * inv,
            quarter * s,
            (r12 + r21) * inv,
        ]
    } else {
        let s = pos(one - r00 - r11 + r22).sqrt() * T::from_f64(2.0); // 4z
        let inv = one / s;
        [
            (r10 - r01) * inv,
            (r02 + r20) * inv,
            (r12 + r21) * inv,
            quarter * s,
        ]
    };
    let q = quat_normalize(&q);
    if q[0] < T::ZERO {
        [-q[0], -q[1], -q[2], -q[3]]
    } else {
        q
    }
}

/// `q` or `-q` (the same rotation), whichever is nearer `prev` (non-negative dot product), so
/// that interpolating consecutive keys of a track takes the short arc.
pub fn quat_continuous<T: Real>(q: &[T; 4], prev: &[T; 4]) -> [T; 4] {
    let d = q[0] * prev[0] + q[1] * prev[1] + q[2] * prev[2] + q[3] * prev[3];
    if d < T::ZERO {
        q.map(|x| -x)
    } else {
        *q
    }
}

/// Quaternion `[w, x, y, z]` to axis-angle with angle in `[0, pi]` (`q` and `-q` give the same
/// result). `angle = 2 atan2(|v|, |w|)`: accurate near 0 and near pi.
pub fn quat_to_axis_angle<T: Real>(q: &[T; 4]) -> [T; 3] {
    let q = quat_normalize(q);
    let (w, v) = if q[0] < T::ZERO {
        (-q[0], [-q[1], -q[2], -q[3]])
    } else {
        (q[0], [q[1], q[2], q[3]])
    };
    let s = dot3(&v, &v).sqrt();
    let angle = T::from_f64(2.0) * s.atan2(w);
    // angle / s -> 2 / w as s -> 0 (w -> 1 there).
    let k = if s > T::EPSILON {
        angle / s
    } else {
        T::from_f64(2.0) / w
    };
    scale3(&v, k)
}

/// Axis-angle to a unit quaternion `[w, x, y, z]`: `[cos(t/2), sin(t/2)/t * v]`.
pub fn axis_angle_to_quat<T: Real>(v: &[T; 3]) -> [T; 4] {
    let half = dot3(v, v).sqrt() * T::from_f64(0.5);
    // sin(t/2)/t = sinc(t/2) / 2
    let k = sinc(half) * T::from_f64(0.5);
    [half.cos(), v[0] * k, v[1] * k, v[2] * k]
}

/// Spherical linear interpolation between unit quaternions `q0` (at `t = 0`) and `q1` (at
/// `t = 1`) along the shorter arc (`q1` is negated when `q0 . q1 < 0`). Inputs are normalised;
/// nearly equal inputs fall back to normalised linear interpolation. Returns a unit quaternion.
pub fn quat_slerp<T: Real>(q0: &[T; 4], q1: &[T; 4], t: T) -> [T; 4] {
    let a = quat_normalize(q0);
    let mut b = quat_normalize(q1);
    let d = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3];
    if d < T::ZERO {
        b = [-b[0], -b[1], -b[2], -b[3]];
    }
    // Half the angle between them, from |a - b| and |a + b| (accurate at all angles, unlike acos).
    let diff: T = (0..4)
        .map(|k| (a[k] - b[k]) * (a[k] - b[k]))
        .fold(T::ZERO, |s, v| s + v);
    let sum: T = (0..4)
        .map(|k| (a[k] + b[k]) * (a[k] + b[k]))
        .fold(T::ZERO, |s, v| s + v);
    let omega = T::from_f64(2.0) * diff.sqrt().atan2(sum.sqrt());
    let sin_omega = omega.sin();
    let (w0, w1) = if sin_omega > T::EPSILON.sqrt() {
        (
            ((T::ONE - t) * omega).sin() / sin_omega,
            (t * omega).sin() / sin_omega,
        )
    } else {
        (T::ONE - t, t)
    };
    quat_normalize(&std::array::from_fn(|k| w0 * a[k] + w1 * b[k]))
}

// ---------------------------------------------------------------------------------------------
// Batches over flat slices
// ---------------------------------------------------------------------------------------------

/// Applies `f` to each `I`-sized record of `input`, writing `O`-sized records into `out`.
fn map_records<T: Real, const I: usize, const O: usize>(
    input: &[T],
    out: &mut [T],
    what: &str,
    f: impl Fn(&[T; I]) -> [T; O],
) -> Result<()> {
    let n = count_items(input.len(), I, what)?;
    if out.len() != n * O {
        return Err(Error::Input(format!(
            "{what}: output has {} values, expected [N={n}, {O}] = {}",
            out.len(),
            n * O
        )));
    }
    for (src, dst) in input.chunks_exact(I).zip(out.chunks_exact_mut(O)) {
        let rec: [T; I] = std::array::from_fn(|k| src[k]);
        dst.copy_from_slice(&f(&rec));
    }
    Ok(())
}

/// Batch [`rot6d_to_matrix`]: `x` `[N, 6]` to `out` `[N, 3, 3]` (row-major).
pub fn rot6d_to_matrices<T: Real>(x: &[T], out: &mut [T]) -> Result<()> {
    map_records(x, out, "rot6d [N, 6]", rot6d_to_matrix)
}

/// Batch [`matrix_to_rot6d`]: `r` `[N, 3, 3]` to `out` `[N, 6]`.
pub fn matrices_to_rot6d<T: Real>(r: &[T], out: &mut [T]) -> Result<()> {
    map_records(r, out, "rotation matrices [N, 3, 3]", matrix_to_rot6d)
}

/// Batch [`axis_angle_to_matrix`]: `aa` `[N, 3]` to `out` `[N, 3, 3]`.
pub fn axis_angles_to_matrices<T: Real>(aa: &[T], out: &mut [T]) -> Result<()> {
    map_records(aa, out, "axis-angle [N, 3]", axis_angle_to_matrix)
}

/// Batch [`matrix_to_axis_angle`]: `r` `[N, 3, 3]` to `out` `[N, 3]`.
pub fn matrices_to_axis_angles<T: Real>(r: &[T], out: &mut [T]) -> Result<()> {
    map_records(r, out, "rotation matrices [N, 3, 3]", matrix_to_axis_angle)
}

/// Batch [`quat_to_matrix`]: `q` `[N, 4]` (`w, x, y, z`) to `out` `[N, 3, 3]`.
pub fn quats_to_matrices<T: Real>(q: &[T], out: &mut [T]) -> Result<()> {
    map_records(q, out, "quaternions [N, 4]", quat_to_matrix)
}

/// Batch [`matrix_to_quat`]: `r` `[N, 3, 3]` to `out` `[N, 4]` (`w, x, y, z`, `w >= 0`).
pub fn matrices_to_quats<T: Real>(r: &[T], out: &mut [T]) -> Result<()> {
    map_records(r, out, "rotation matrices [N, 3, 3]", matrix_to_quat)
}

// ---------------------------------------------------------------------------------------------
// Candle (differentiable)
// ---------------------------------------------------------------------------------------------

fn check_last_dim(x: &Tensor, n: usize, what: &str) -> Result<()> {
    if x.rank() == 0 || x.dim(D::Minus1)? != n {
        return Err(Error::Input(format!(
            "{what}: shape {:?}, expected [..., {n}]",
            x.dims()
        )));
    }
    Ok(())
}

/// Splits `[..., 3]` into its three `[..., 1]` components.
fn split3(x: &Tensor) -> Result<[Tensor; 3]> {
    Ok([
        x.narrow(D::Minus1, 0, 1)?,
        x.narrow(D::Minus1, 1, 1)?,
        x.narrow(D::Minus1, 2, 1)?,
    ])
}

/// `x / sqrt(|x|^2 + eps)` over the last dimension.
fn normalize_t(x: &Tensor) -> Result<Tensor> {
    let n = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .affine(1.0, TENSOR_NORM_EPS)?
        .sqrt()?;
    Ok(x.broadcast_div(&n)?)
}

/// Cross product over the last dimension of two `[..., 3]` tensors.
fn cross_t(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let [ax, ay, az] = split3(a)?;
    let [bx, by, bz] = split3(b)?;
    let cx = ((&ay * &bz)? - (&az * &by)?)?;
    let cy = ((&az * &bx)? - (&ax * &bz)?)?;
    let cz = ((&ax * &by)? - (&ay * &bx)?)?;
    Ok(Tensor::cat(&[&cx, &cy, &cz], D::Minus1)?)
}

/// Differentiable [`rot6d_to_matrix`]: `x` `[..., 6]` (ScoreHMR layout) to `[..., 3, 3]`
/// (row-major: `R[..., i, j]` is row `i`, column `j`; the columns are `b1, b2, b3`).
///
/// Norms are `sqrt(|a|^2 + 1e-12)` ([`TENSOR_NORM_EPS`]), so the gradient is finite everywhere;
/// degenerate inputs (`a1 = 0`, or `a2` parallel to `a1`) give a non-rotation instead of the
/// completion of the array version. Works for f32 and f64 tensors on any device.
pub fn rot6d_to_matrix_t(x: &Tensor) -> Result<Tensor> {
    check_last_dim(x, 6, "rot6d")?;
    let a1 = x.narrow(D::Minus1, 0, 3)?;
    let a2 = x.narrow(D::Minus1, 3, 3)?;
    let b1 = normalize_t(&a1)?;
    let d = (&b1 * &a2)?.sum_keepdim(D::Minus1)?;
    let b2 = normalize_t(&(a2 - b1.broadcast_mul(&d)?)?)?;
    let b3 = cross_t(&b1, &b2)?;
    Ok(Tensor::stack(&[&b1, &b2, &b3], b1.rank())?)
}

/// Differentiable [`matrix_to_rot6d`]: `r` `[..., 3, 3]` to `[..., 6]` (ScoreHMR layout,
/// `R[..., :, :2]` transposed and flattened).
pub fn matrix_to_rot6d_t(r: &Tensor) -> Result<Tensor> {
    let rank = r.rank();
    if rank < 2 || r.dims()[rank - 2..] != [3, 3] {
        return Err(Error::Input(format!(
            "rotation matrices: shape {:?}, expected [..., 3, 3]",
            r.dims()
        )));
    }
    let mut dims = r.dims()[..rank - 2].to_vec();
    dims.push(6);
    Ok(r.narrow(D::Minus1, 0, 2)?.t()?.reshape(dims)?)
}

/// Differentiable [`axis_angle_to_matrix`] (Rodrigues): `aa` `[..., 3]` to `[..., 3, 3]`.
///
/// `R = cos(t) I + (sin t / t) [v]x + 2 (sin(t/2) / t)^2 v v^T` with
/// `t = sqrt(|v|^2 + 1e-12)` ([`TENSOR_NORM_EPS`]): finite values and gradients at the zero
/// rotation, where the gradient is the exact `d R / d v = [e_k]x`. f32 or f64.
pub fn axis_angle_to_matrix_t(aa: &Tensor) -> Result<Tensor> {
    check_last_dim(aa, 3, "axis-angle")?;
    let theta = aa
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .affine(1.0, TENSOR_NORM_EPS)?
        .sqrt()?;
    let c = theta.cos()?;
    let a = (theta.sin()? / &theta)?;
    let h = (theta.affine(0.5, 0.0)?.sin()? / &theta)?;
    let b = h.sqr()?.affine(2.0, 0.0)?;
    let [x, y, z] = split3(aa)?;
    let (ax, ay, az) = ((&a * &x)?, (&a * &y)?, (&a * &z)?);
    let (bx, by) = ((&b * &x)?, (&b * &y)?);
    let bz = (&b * &z)?;
    let (bxy, bxz, byz) = ((&bx * &y)?, (&bx * &z)?, (&by * &z)?);
    let entries = [
        (&c + (&bx * &x)?)?,
        (&bxy - &az)?,
        (&bxz + &ay)?,
        (&bxy + &az)?,
        (&c + (&by * &y)?)?,
        (&byz - &ax)?,
        (&bxz - &ay)?,
        (&byz + &ax)?,
        (&c + (&bz * &z)?)?,
    ];
    let refs: Vec<&Tensor> = entries.iter().collect();
    let mut dims = aa.dims().to_vec();
    dims.push(3);
    Ok(Tensor::cat(&refs, D::Minus1)?.reshape(dims)?)
}
