//! Integration tests of `rigfit::geom`: rotations, cameras, Procrustes, metrics.

use candle_core::{DType, Device, Tensor, Var};
use rigfit::geom::align::{nearest_rotation, procrustes, procrustes_rigid, Similarity};
use rigfit::geom::camera::{
    cam_crop_to_full, cam_full_to_crop, project_t, solve_translation, Pinhole, SCOREHMR_FOCAL,
};
use rigfit::geom::metrics::{accel_error, mpjpe, pa_mpjpe, pve, RootAlign};
use rigfit::geom::rot::*;

/// SplitMix64: a small deterministic generator (no external crates).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-300);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
    fn unit_vec(&mut self) -> [f64; 3] {
        loop {
            let v = [self.normal(), self.normal(), self.normal()];
            let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            if n > 1e-3 {
                return v.map(|x| x / n);
            }
        }
    }
    /// A uniformly random rotation (normalised Gaussian quaternion).
    fn rotation(&mut self) -> [f64; 9] {
        quat_to_matrix(&[self.normal(), self.normal(), self.normal(), self.normal()])
    }
}

fn max_abs_diff<T: Copy + Into<f64>>(a: &[T], b: &[T]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x.into() - y.into()).abs())
        .fold(0.0, f64::max)
}

/// Checks R^T R = I and det R = 1 within `tol`.
fn assert_rotation(r: &[f64; 9], tol: f64) {
    let rtr = mat3_mul(&mat3_transpose(r), r);
    let err = max_abs_diff(&rtr, &identity::<f64>());
    assert!(err < tol, "R^T R differs from I by {err}: {r:?}");
    let det = mat3_det(r);
    assert!((det - 1.0).abs() < tol, "det R = {det}");
}

fn to_f64<const N: usize>(a: &[f32; N]) -> [f64; N] {
    a.map(|x| x as f64)
}

// ---------------------------------------------------------------------------------------------
// Rotations
// ---------------------------------------------------------------------------------------------

#[test]
fn rot6d_layout_is_scorehmr_columns() {
    let r: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    // [R00, R10, R20, R01, R11, R21]
    assert_eq!(matrix_to_rot6d(&r), [1.0, 4.0, 7.0, 2.0, 5.0, 8.0]);
    // Column 0 of the decoded matrix is a1 normalised, column 1 lies in span(a1, a2).
    let x = [2.0f64, 0.0, 0.0, 1.0, 3.0, 0.0];
    let r = rot6d_to_matrix(&x);
    let expected = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
    assert!(max_abs_diff(&r, &expected) < 1e-15, "{r:?}");
    let x = [0.0f64, 0.0, 5.0, 0.0, -1.0, 1.0];
    let r = rot6d_to_matrix(&x);
    // b1 = z, b2 = -y, b3 = z x -y = x
    let expected = [0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 1.0, 0.0, 0.0];
    assert!(max_abs_diff(&r, &expected) < 1e-15, "{r:?}");
}

#[test]
fn rot6d_round_trips() {
    let mut rng = Rng(1);
    for _ in 0..1000 {
        let r = rng.rotation();
        let x = matrix_to_rot6d(&r);
        let r2 = rot6d_to_matrix(&x);
        assert!(max_abs_diff(&r, &r2) < 1e-14);
        assert!(max_abs_diff(&x, &matrix_to_rot6d(&r2)) < 1e-14);
        // f32 too.
        let rf: [f32; 9] = r.map(|v| v as f32);
        let r2f = rot6d_to_matrix(&matrix_to_rot6d(&rf));
        assert!(max_abs_diff(&rf, &r2f) < 1e-6);
    }
}

#[test]
fn rot6d_gives_proper_rotations_for_arbitrary_inputs() {
    let mut rng = Rng(2);
    for i in 0..2000 {
        let scale = [1e-3, 1.0, 1e3][i % 3];
        let x: [f64; 6] = std::array::from_fn(|_| rng.range(-1.0, 1.0) * scale);
        let r = rot6d_to_matrix(&x);
        assert_rotation(&r, 1e-12);
        // b1 is a1 normalised.
        let n = (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt();
        assert!(max_abs_diff(&[r[0], r[3], r[6]], &[x[0] / n, x[1] / n, x[2] / n]) < 1e-12);
        // a2 has a non-negative component along b2 (Gram-Schmidt keeps its side).
        assert!(r[1] * x[3] + r[4] * x[4] + r[7] * x[5] >= 0.0);
        // f32: classical Gram-Schmidt (as ScoreHMR) loses orthogonality in proportion to
        // |a2| / |u|, u the part of a2 orthogonal to a1.
        let a2 = (x[3] * x[3] + x[4] * x[4] + x[5] * x[5]).sqrt();
        let d = r[0] * x[3] + r[3] * x[4] + r[6] * x[5];
        let u = (a2 * a2 - d * d).max(0.0).sqrt();
        let xf: [f32; 6] = x.map(|v| v as f32);
        assert_rotation(&to_f64(&rot6d_to_matrix(&xf)), 1e-6 * (a2 / u).max(1.0));
    }
    // Degenerate inputs still give rotations.
    for x in [
        [0.0f64; 6],
        [1.0, 2.0, 3.0, 2.0, 4.0, 6.0],
        [0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ] {
        assert_rotation(&rot6d_to_matrix(&x), 1e-12);
    }
}

#[test]
fn axis_angle_known_value() {
    // 90 degrees about z maps x to y.
    let r = axis_angle_to_matrix(&[0.0f64, 0.0, std::f64::consts::FRAC_PI_2]);
    let expected = [0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
    assert!(max_abs_diff(&r, &expected) < 1e-15, "{r:?}");
    assert_eq!(axis_angle_to_matrix(&[0.0f32; 3]), identity::<f32>());
    assert_eq!(matrix_to_axis_angle(&identity::<f64>()), [0.0; 3]);
}

#[test]
fn axis_angle_round_trips_near_zero_and_pi() {
    let mut rng = Rng(3);
    let pi = std::f64::consts::PI;
    let angles = [
        0.0,
        1e-12,
        1e-8,
        1e-5,
        1e-3,
        0.1,
        1.0,
        2.0,
        3.0,
        pi - 1e-3,
        pi - 1e-6,
        pi - 1e-9,
    ];
    for _ in 0..200 {
        let axis = rng.unit_vec();
        for &angle in &angles {
            let aa = axis.map(|v| v * angle);
            let r = axis_angle_to_matrix(&aa);
            assert_rotation(&r, 1e-14);
            let back = matrix_to_axis_angle(&r);
            let err = max_abs_diff(&aa, &back);
            // Near pi the axis is determined only to ~eps / (pi - angle).
            let tol = if angle > 3.0 {
                1e-15 / (pi - angle) + 1e-12
            } else {
                1e-12 * angle.max(1e-4)
            };
            assert!(
                err < tol.max(1e-15),
                "angle {angle}: {aa:?} -> {back:?} (err {err})"
            );
            // f32
            // f32: within 1e-6 of pi the f32 angle may round past pi (the axis flips), so near
            // pi compare the matrices.
            let aaf: [f32; 3] = aa.map(|v| v as f32);
            let rf = axis_angle_to_matrix(&aaf);
            let backf = matrix_to_axis_angle(&rf);
            if angle < 3.0 {
                assert!(
                    max_abs_diff(&aaf, &backf) < 1e-6,
                    "f32 angle {angle}: {aaf:?} -> {backf:?}"
                );
            } else {
                assert!(
                    max_abs_diff(&axis_angle_to_matrix(&backf), &rf) < 1e-6,
                    "f32 angle {angle}"
                );
            }
        }
        // Exactly pi: the axis sign is arbitrary, the matrix is not.
        let aa = axis.map(|v| v * pi);
        let back = matrix_to_axis_angle(&axis_angle_to_matrix(&aa));
        let n = (back[0] * back[0] + back[1] * back[1] + back[2] * back[2]).sqrt();
        assert!((n - pi).abs() < 1e-12, "angle {n}");
        assert!(max_abs_diff(&axis_angle_to_matrix(&back), &axis_angle_to_matrix(&aa)) < 1e-12);
    }
}

#[test]
fn quaternion_round_trips_and_agrees_with_axis_angle() {
    let mut rng = Rng(4);
    for i in 0..2000 {
        let mut q = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
        if i % 10 == 0 {
            // Near 180 degrees: w ~ 0.
            q[0] = 1e-9 * rng.normal();
        }
        let q = quat_normalize(&q);
        let r = quat_to_matrix(&q);
        assert_rotation(&r, 1e-14);
        let q2 = matrix_to_quat(&r);
        assert!(q2[0] >= 0.0);
        let sign = if q[0] * q2[0] + q[1] * q2[1] + q[2] * q2[2] + q[3] * q2[3] < 0.0 {
            -1.0
        } else {
            1.0
        };
        assert!(
            max_abs_diff(&q, &q2.map(|v| v * sign)) < 1e-14,
            "{q:?} vs {q2:?}"
        );
        // quaternion <-> axis-angle agrees with the matrix path.
        let aa = quat_to_axis_angle(&q);
        assert!(max_abs_diff(&axis_angle_to_matrix(&aa), &r) < 1e-13);
        let q3 = axis_angle_to_quat(&aa);
        assert!(max_abs_diff(&quat_to_matrix(&q3), &r) < 1e-13);
        // Hamilton product composes like matrices.
        let p = quat_normalize(&[rng.normal(), rng.normal(), rng.normal(), rng.normal()]);
        let lhs = quat_to_matrix(&quat_mul(&p, &q));
        let rhs = mat3_mul(&quat_to_matrix(&p), &r);
        assert!(max_abs_diff(&lhs, &rhs) < 1e-14);
    }
}

#[test]
fn slerp_interpolates_along_the_short_arc() {
    let mut rng = Rng(5);
    for _ in 0..200 {
        let axis = rng.unit_vec();
        let angle = rng.range(0.0, 3.0);
        let q0 = axis_angle_to_quat(&[0.0f64; 3]);
        let q1 = axis_angle_to_quat(&axis.map(|v| v * angle));
        for t in [0.0, 0.25, 0.5, 1.0] {
            let q = quat_slerp(&q0, &q1, t);
            let expected = axis_angle_to_quat(&axis.map(|v| v * angle * t));
            assert!(
                max_abs_diff(&q, &expected) < 1e-12,
                "t {t}: {q:?} vs {expected:?}"
            );
        }
        // Negating an endpoint does not change the path (shortest arc).
        let neg = q1.map(|v| -v);
        let a = quat_to_matrix(&quat_slerp(&q0, &neg, 0.3));
        let b = quat_to_matrix(&quat_slerp(&q0, &q1, 0.3));
        assert!(max_abs_diff(&a, &b) < 1e-12);
    }
    // Nearly equal endpoints (falls back to nlerp) stay unit.
    let q = quat_slerp(&[1.0f32, 0.0, 0.0, 0.0], &[1.0, 1e-7, 0.0, 0.0], 0.5);
    assert!((q.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-6);
}

#[test]
fn batch_helpers_match_single_and_check_lengths() {
    let mut rng = Rng(6);
    let n = 24;
    let x: Vec<f32> = (0..n * 6).map(|_| rng.range(-1.0, 1.0) as f32).collect();
    let mut r = vec![0.0f32; n * 9];
    rot6d_to_matrices(&x, &mut r).unwrap();
    for i in 0..n {
        let xi: [f32; 6] = std::array::from_fn(|k| x[6 * i + k]);
        assert_eq!(&r[9 * i..9 * i + 9], &rot6d_to_matrix(&xi));
    }
    let mut x6 = vec![0.0f32; n * 6];
    matrices_to_rot6d(&r, &mut x6).unwrap();
    let mut aa = vec![0.0f32; n * 3];
    matrices_to_axis_angles(&r, &mut aa).unwrap();
    let mut r2 = vec![0.0f32; n * 9];
    axis_angles_to_matrices(&aa, &mut r2).unwrap();
    assert!(max_abs_diff(&r, &r2) < 1e-5);
    let mut q = vec![0.0f32; n * 4];
    matrices_to_quats(&r, &mut q).unwrap();
    quats_to_matrices(&q, &mut r2).unwrap();
    assert!(max_abs_diff(&r, &r2) < 1e-5);
    // Length errors, not panics.
    assert!(rot6d_to_matrices(&x[..7], &mut r).is_err());
    assert!(rot6d_to_matrices(&x, &mut r[..9]).is_err());
    assert!(axis_angles_to_matrices(&aa, &mut r[..10]).is_err());
}

// ---------------------------------------------------------------------------------------------
// Candle versions
// ---------------------------------------------------------------------------------------------

fn tensor_values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

#[test]
fn candle_rot6d_matches_arrays_f32() {
    let mut rng = Rng(7);
    let (b, j) = (5, 24);
    let x: Vec<f32> = (0..b * j * 6)
        .map(|_| rng.range(-2.0, 2.0) as f32)
        .collect();
    let t = Tensor::from_slice(&x, (b, j, 6), &Device::Cpu).unwrap();
    let r = rot6d_to_matrix_t(&t).unwrap();
    assert_eq!(r.dims(), &[b, j, 3, 3]);
    assert_eq!(r.dtype(), DType::F32);
    let mut expected = vec![0.0f32; b * j * 9];
    rot6d_to_matrices(&x, &mut expected).unwrap();
    let got = tensor_values(&r);
    let expected: Vec<f64> = expected.iter().map(|&v| v as f64).collect();
    assert!(
        max_abs_diff(&got, &expected) < 1e-6,
        "{}",
        max_abs_diff(&got, &expected)
    );
    // And back: matrix_to_rot6d_t of the matrices equals the array version.
    let back = matrix_to_rot6d_t(&r).unwrap();
    assert_eq!(back.dims(), &[b, j, 6]);
    let mut x6 = vec![0.0f64; b * j * 6];
    matrices_to_rot6d(&expected, &mut x6).unwrap();
    assert!(max_abs_diff(&tensor_values(&back), &x6) < 1e-12);
    // Shape errors.
    assert!(rot6d_to_matrix_t(&Tensor::zeros((2, 5), DType::F32, &Device::Cpu).unwrap()).is_err());
    assert!(
        matrix_to_rot6d_t(&Tensor::zeros((2, 3, 2), DType::F32, &Device::Cpu).unwrap()).is_err()
    );
}

#[test]
fn candle_axis_angle_matches_arrays() {
    let mut rng = Rng(8);
    let mut aa: Vec<f64> = (0..60).map(|_| rng.range(-3.0, 3.0)).collect();
    aa[..3].copy_from_slice(&[0.0, 0.0, 0.0]);
    aa[3..6].copy_from_slice(&[1e-7, -2e-7, 0.0]);
    let t = Tensor::from_slice(&aa, (4, 5, 3), &Device::Cpu).unwrap();
    let r = axis_angle_to_matrix_t(&t).unwrap();
    assert_eq!(r.dims(), &[4, 5, 3, 3]);
    let mut expected = vec![0.0f64; 20 * 9];
    axis_angles_to_matrices(&aa, &mut expected).unwrap();
    assert!(max_abs_diff(&tensor_values(&r), &expected) < 1e-12);
    let rf = axis_angle_to_matrix_t(&t.to_dtype(DType::F32).unwrap()).unwrap();
    assert_eq!(rf.dtype(), DType::F32);
    assert!(max_abs_diff(&tensor_values(&rf), &expected) < 2e-6);
}

/// Checks the candle gradient of `loss = sum(f(x) * w)` against central finite differences of
/// the f64 array function `g`, at the points `x` `[n, k]`.
fn check_gradient<const K: usize>(
    x: &[f64],
    f: impl Fn(&Tensor) -> rigfit::Result<Tensor>,
    g: impl Fn(&[f64; K]) -> [f64; 9],
    seed: u64,
) {
    let mut rng = Rng(seed);
    let n = x.len() / K;
    let w: Vec<f64> = (0..n * 9).map(|_| rng.normal()).collect();
    let var = Var::from_slice(x, (n, K), &Device::Cpu).unwrap();
    let wt = Tensor::from_slice(&w, (n, 3, 3), &Device::Cpu).unwrap();
    let loss = (f(var.as_tensor()).unwrap() * &wt)
        .unwrap()
        .sum_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let grad = tensor_values(grads.get(&var).expect("gradient of the input"));
    let h = 1e-6;
    for i in 0..n {
        for k in 0..K {
            let mut xp: [f64; K] = std::array::from_fn(|c| x[K * i + c]);
            let mut xm = xp;
            xp[k] += h;
            xm[k] -= h;
            let (rp, rm) = (g(&xp), g(&xm));
            let fd: f64 = (0..9).map(|c| (rp[c] - rm[c]) * w[9 * i + c]).sum::<f64>() / (2.0 * h);
            let an = grad[K * i + k];
            assert!(
                (fd - an).abs() < 1e-6 * (1.0 + fd.abs()),
                "sample {i}, coordinate {k}: analytic {an} vs finite differences {fd}"
            );
        }
    }
}

#[test]
fn candle_rot6d_gradient_matches_finite_differences() {
    let mut rng = Rng(9);
    let x: Vec<f64> = (0..32 * 6).map(|_| rng.range(-2.0, 2.0)).collect();
    check_gradient::<6>(&x, rot6d_to_matrix_t, rot6d_to_matrix, 10);
}

#[test]
fn candle_axis_angle_gradient_matches_finite_differences() {
    let mut rng = Rng(11);
    let mut x: Vec<f64> = (0..32 * 3).map(|_| rng.range(-3.0, 3.0)).collect();
    // Include the zero rotation and a tiny one.
    x[..6].copy_from_slice(&[0.0, 0.0, 0.0, 1e-4, -2e-4, 3e-4]);
    check_gradient::<3>(&x, axis_angle_to_matrix_t, axis_angle_to_matrix, 12);
}

// ---------------------------------------------------------------------------------------------
// Procrustes
// ---------------------------------------------------------------------------------------------

fn random_points(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n * 3).map(|_| rng.normal()).collect()
}

#[test]
fn procrustes_recovers_a_known_similarity() {
    let mut rng = Rng(13);
    for n in [3, 4, 14, 24, 100] {
        for _ in 0..50 {
            let truth = Similarity {
                s: rng.range(0.2, 5.0),
                r: rng.rotation(),
                t: [rng.normal() * 3.0, rng.normal() * 3.0, rng.normal() * 3.0],
            };
            let x1 = random_points(&mut rng, n);
            let mut x2 = vec![0.0; x1.len()];
            truth.apply(&x1, &mut x2).unwrap();
            let fit = procrustes(&x1, &x2).unwrap();
            assert!(
                (fit.s - truth.s).abs() < 1e-10 * truth.s,
                "{} vs {}",
                fit.s,
                truth.s
            );
            assert!(max_abs_diff(&fit.r, &truth.r) < 1e-10);
            assert!(max_abs_diff(&fit.t, &truth.t) < 1e-9);
            assert_rotation(&fit.r, 1e-12);
            // Rigid fit of a rigid motion.
            let rigid = Similarity { s: 1.0, ..truth };
            rigid.apply(&x1, &mut x2).unwrap();
            let fit = procrustes_rigid(&x1, &x2).unwrap();
            assert_eq!(fit.s, 1.0);
            assert!(max_abs_diff(&fit.r, &truth.r) < 1e-10);
        }
    }
    // f32 input.
    let x1: Vec<f32> = random_points(&mut rng, 24)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let truth = Similarity {
        s: 1.3,
        r: rng.rotation(),
        t: [0.1, -0.2, 4.0],
    };
    let mut x2 = vec![0.0f32; x1.len()];
    truth.apply(&x1, &mut x2).unwrap();
    let fit = procrustes(&x1, &x2).unwrap();
    assert!((fit.s - 1.3).abs() < 1e-5 && max_abs_diff(&fit.r, &truth.r) < 1e-5);
}

/// Sum of squared residuals of `sim` mapping `x1` onto `x2`.
fn residual(sim: &Similarity, x1: &[f64], x2: &[f64]) -> f64 {
    let mut y = vec![0.0; x1.len()];
    sim.apply(x1, &mut y).unwrap();
    y.iter().zip(x2).map(|(a, b)| (a - b) * (a - b)).sum()
}

#[test]
fn procrustes_never_returns_a_reflection() {
    let mut rng = Rng(14);
    for case in 0..100 {
        let n = 4 + case % 10;
        let x1 = random_points(&mut rng, n);
        // Target: a mirrored (det -1) copy, rotated, plus noise.
        let r = rng.rotation();
        let mirror = [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let m = mat3_mul(&r, &mirror);
        let x2: Vec<f64> = x1
            .chunks_exact(3)
            .flat_map(|p| mat3_apply(&m, &[p[0], p[1], p[2]]))
            .map(|v| v + 0.01 * rng.normal())
            .collect();
        let fit = procrustes(&x1, &x2).unwrap();
        assert_rotation(&fit.r, 1e-12);
        assert!(fit.s > 0.0);
        // Optimal among proper similarities: perturbing the rotation (re-fitting s and t
        // would only lower the residual of the perturbed one further if it were better) or
        // trying random rotations never beats it.
        let best = residual(&fit, &x1, &x2);
        for k in 0..50 {
            let delta = if k < 25 {
                axis_angle_to_matrix(&rng.unit_vec().map(|v| v * 1e-3))
            } else {
                rng.rotation()
            };
            let r2 = mat3_mul(&delta, &fit.r);
            // Optimal s and t for the rotation r2.
            let mut y = vec![0.0; x1.len()];
            Similarity {
                s: 1.0,
                r: r2,
                t: [0.0; 3],
            }
            .apply(&x1, &mut y)
            .unwrap();
            let other = procrustes_scale_translation(&y, &x2);
            let sim = Similarity {
                s: other.0,
                r: r2,
                t: other.1,
            };
            assert!(
                residual(&sim, &x1, &x2) >= best - 1e-9,
                "case {case}: a better rotation exists"
            );
        }
    }
}

/// Least-squares s >= 0, t with y -> s y + t (for a fixed rotation already applied; a negative
/// scale would turn the rotation into a reflection).
fn procrustes_scale_translation(y: &[f64], x2: &[f64]) -> (f64, [f64; 3]) {
    let n = (y.len() / 3) as f64;
    let my: [f64; 3] = std::array::from_fn(|k| y.iter().skip(k).step_by(3).sum::<f64>() / n);
    let m2: [f64; 3] = std::array::from_fn(|k| x2.iter().skip(k).step_by(3).sum::<f64>() / n);
    let (mut num, mut den) = (0.0, 0.0);
    for (a, b) in y.chunks_exact(3).zip(x2.chunks_exact(3)) {
        for k in 0..3 {
            num += (a[k] - my[k]) * (b[k] - m2[k]);
            den += (a[k] - my[k]).powi(2);
        }
    }
    let s = (num / den).max(0.0);
    (s, std::array::from_fn(|k| m2[k] - s * my[k]))
}

#[test]
fn procrustes_degenerate_inputs() {
    // Coplanar and collinear sets are fitted exactly.
    let mut rng = Rng(15);
    let truth = Similarity {
        s: 2.0,
        r: rng.rotation(),
        t: [1.0, 2.0, 3.0],
    };
    for x1 in [
        vec![0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0],
        vec![0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 2.0, 4.0, 6.0],
    ] {
        let mut x2 = vec![0.0; x1.len()];
        truth.apply(&x1, &mut x2).unwrap();
        let fit = procrustes(&x1, &x2).unwrap();
        assert_rotation(&fit.r, 1e-12);
        assert!(residual(&fit, &x1, &x2) < 1e-20);
    }
    // Errors, not panics.
    assert!(procrustes(
        &[1.0f64, 1.0, 1.0, 1.0, 1.0, 1.0],
        &[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    )
    .is_err());
    assert!(procrustes::<f64>(&[], &[]).is_err());
    assert!(procrustes(&[0.0f64; 6], &[0.0; 9]).is_err());
    assert!(procrustes(&[f64::NAN, 0.0, 0.0, 1.0, 0.0, 0.0], &[0.0; 6]).is_err());
}

#[test]
fn nearest_rotation_projects_onto_so3() {
    let mut rng = Rng(16);
    for _ in 0..100 {
        let r = rng.rotation();
        let noisy: [f64; 9] = std::array::from_fn(|k| r[k] + 1e-3 * rng.normal());
        let p = nearest_rotation(&noisy);
        assert_rotation(&p, 1e-12);
        assert!(max_abs_diff(&p, &r) < 1e-2);
        assert!(max_abs_diff(&nearest_rotation(&r), &r) < 1e-12);
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

#[test]
fn pa_mpjpe_is_zero_for_a_similarity_copy() {
    let mut rng = Rng(17);
    let (t, j) = (10, 24);
    let gt: Vec<f64> = random_points(&mut rng, t * j);
    let mut pred = vec![0.0; gt.len()];
    for (g, p) in gt.chunks_exact(3 * j).zip(pred.chunks_exact_mut(3 * j)) {
        let sim = Similarity {
            s: rng.range(0.5, 2.0),
            r: rng.rotation(),
            t: [rng.normal(), rng.normal(), 5.0],
        };
        sim.apply(g, p).unwrap();
    }
    let e = pa_mpjpe(&pred, &gt, j).unwrap();
    assert_eq!(e.per_frame.len(), t);
    assert!(e.mean < 1e-12, "{}", e.mean);
    // ... while MPJPE is not.
    assert!(mpjpe(&pred, &gt, j, &RootAlign::Joint(0)).unwrap().mean > 0.1);
}

#[test]
fn metrics_match_hand_computed_values() {
    // gt: +-x at distance 1, +-y at distance 1; pred stretches y by 2.
    let gt = [
        1.0f64, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, -1.0, 0.0,
    ];
    let pred = [
        1.0f64, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, -2.0, 0.0,
    ];
    // No alignment: errors 0, 0, 1, 1.
    let e = mpjpe(&pred, &gt, 4, &RootAlign::None).unwrap();
    assert!((e.mean - 0.5).abs() < 1e-15);
    // PA: K = diag(2, 4, 0) so R = I, s = tr(K)/|X1|^2 = 6/10; errors 0.4, 0.4, 0.2, 0.2.
    let e = pa_mpjpe(&pred, &gt, 4).unwrap();
    assert!((e.mean - 0.3).abs() < 1e-12, "{}", e.mean);
    // Invariant to a rigid motion of the prediction.
    let sim = Similarity {
        s: 3.0,
        r: axis_angle_to_matrix(&[0.3, -1.0, 2.0]),
        t: [1.0, 2.0, 3.0],
    };
    let mut moved = [0.0; 12];
    sim.apply(&pred, &mut moved).unwrap();
    assert!((pa_mpjpe(&moved, &gt, 4).unwrap().mean - 0.3).abs() < 1e-12);
    // Root alignment: shift pred by (0, 0, 5); joint 0 root: pred - (1,0,5), gt - (1,0,0):
    // errors 0, 0, 1, 1 again; mean-of-joints [0, 1] root is the origin for both.
    let shifted: Vec<f64> = pred
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 3 == 2 { v + 5.0 } else { *v })
        .collect();
    assert!(
        (mpjpe(&shifted, &gt, 4, &RootAlign::None).unwrap().mean
            - (2.0 * 5.0 + 2.0 * 26f64.sqrt()) / 4.0)
            .abs()
            < 1e-12
    );
    assert!((mpjpe(&shifted, &gt, 4, &RootAlign::Joint(0)).unwrap().mean - 0.5).abs() < 1e-12);
    assert!(
        (mpjpe(&shifted, &gt, 4, &RootAlign::MeanOf(vec![0, 1]))
            .unwrap()
            .mean
            - 0.5)
            .abs()
            < 1e-12
    );
    // Root joint 2: roots (0,2,5) and (0,1,0); per joint |(p - g) - (0,1,5)| with
    // p - g = (0,0,5), (0,0,5), (0,1,5), (0,-1,5): 1, 1, 0, 2 -> mean 1.
    let e = mpjpe(&shifted, &gt, 4, &RootAlign::Joint(2)).unwrap();
    assert!((e.mean - 1.0).abs() < 1e-12, "{}", e.mean);
    assert_eq!(e.per_frame.len(), 1);
    // Errors, not panics.
    assert!(mpjpe(&pred, &gt, 4, &RootAlign::Joint(4)).is_err());
    assert!(mpjpe(&pred, &gt, 4, &RootAlign::MeanOf(vec![])).is_err());
    assert!(mpjpe(&pred[..9], &gt, 3, &RootAlign::None).is_err());
    assert!(mpjpe(&pred, &gt, 5, &RootAlign::None).is_err());
}

#[test]
fn mpjpe_per_frame_and_mean_over_frames() {
    // Two frames of one joint: errors 1 and 3 -> mean 2.
    let gt = [0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0];
    let pred = [1.0f32, 0.0, 0.0, 0.0, 3.0, 0.0];
    let e = mpjpe(&pred, &gt, 1, &RootAlign::None).unwrap();
    assert_eq!(e.per_frame, vec![1.0, 3.0]);
    assert_eq!(e.mean, 2.0);
}

#[test]
fn pve_subtracts_the_joint_roots() {
    // One frame, two vertices, joints = one pelvis. pred is gt shifted by (1, 2, 2) with the
    // pelvis shifted the same way: PVE 0 after alignment, 3 without.
    let gt_v = [0.0f64, 0.0, 0.0, 1.0, 1.0, 1.0];
    let pred_v = [1.0f64, 2.0, 2.0, 2.0, 3.0, 3.0];
    let gt_j = [0.5f64, 0.5, 0.5];
    let pred_j = [1.5f64, 2.5, 2.5];
    let root = RootAlign::Joint(0);
    assert!(
        pve(&pred_v, &gt_v, 2, &pred_j, &gt_j, 1, &root)
            .unwrap()
            .mean
            < 1e-15
    );
    assert!(
        (pve(&pred_v, &gt_v, 2, &[], &[], 0, &RootAlign::None)
            .unwrap()
            .mean
            - 3.0)
            .abs()
            < 1e-15
    );
    assert!(pve(&pred_v, &gt_v, 2, &pred_j[..2], &gt_j[..2], 1, &root).is_err());
}

#[test]
fn accel_error_hand_computed_and_masked() {
    // One joint, 4 frames. gt moves at constant velocity (zero acceleration).
    let gt = [
        0.0f64, 0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0, 0.0,
    ];
    // pred jitters at frame 1 by (0, 1, 0): a_1 = (0, -2, 0), a_2 = (0, 1, 0).
    let pred = [
        0.0f64, 0.0, 0.0, 1.0, 1.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0, 0.0,
    ];
    let e = accel_error(&pred, &gt, 1, &RootAlign::None, None).unwrap();
    assert_eq!(e.per_frame, vec![2.0, 1.0]);
    assert_eq!(e.mean, 1.5);
    // Invalid frame 3 drops the acceleration at frame 2 (it touches frame 3).
    let valid = [true, true, true, false];
    let e = accel_error(&pred, &gt, 1, &RootAlign::None, Some(&valid)).unwrap();
    assert_eq!(e.per_frame[0], 2.0);
    assert!(e.per_frame[1].is_nan());
    assert_eq!(e.mean, 2.0);
    // Root alignment on the only joint removes everything.
    assert_eq!(
        accel_error(&pred, &gt, 1, &RootAlign::Joint(0), None)
            .unwrap()
            .mean,
        0.0
    );
    // Errors.
    assert!(accel_error(&pred[..6], &gt[..6], 1, &RootAlign::None, None).is_err());
    assert!(accel_error(&pred, &gt, 1, &RootAlign::None, Some(&valid[..3])).is_err());
    assert!(accel_error(&pred, &gt, 1, &RootAlign::None, Some(&[false; 4])).is_err());
}

// ---------------------------------------------------------------------------------------------
// Cameras
// ---------------------------------------------------------------------------------------------

#[test]
fn pinhole_constructors_and_projection() {
    let cam = Pinhole::from_focal(SCOREHMR_FOCAL, 1920.0, 1080.0).unwrap();
    assert_eq!(
        cam,
        Pinhole {
            fx: 5000.0,
            fy: 5000.0,
            cx: 960.0,
            cy: 540.0
        }
    );
    // 90 degrees horizontal: f = W / 2.
    let cam = Pinhole::from_fov(90.0, 1920.0, 1080.0).unwrap();
    assert!((cam.fx - 960.0).abs() < 1e-3 && cam.fx == cam.fy);
    assert!(Pinhole::from_fov(180.0, 1920.0, 1080.0).is_err());
    assert!(Pinhole::from_fov(60.0, 0.0, 1080.0).is_err());
    assert!(Pinhole::from_focal(-1.0, 10.0, 10.0).is_err());
    // u = fx x / z + cx, v = fy y / z + cy (y down).
    let cam = Pinhole {
        fx: 1000.0,
        fy: 800.0,
        cx: 320.0,
        cy: 240.0,
    };
    assert_eq!(cam.project_point(&[1.0, -0.5, 2.0]), [820.0, 40.0]);
    let p = cam.unproject(&[820.0, 40.0], 2.0);
    assert!(max_abs_diff(&p, &[1.0, -0.5, 2.0]) < 1e-6);
    let mut uv = [0.0f32; 4];
    cam.project_translated(&[0.0, 0.0, 0.0, 1.0, -0.5, 0.0], &[0.0, 0.0, 2.0], &mut uv)
        .unwrap();
    assert_eq!(uv, [320.0, 240.0, 820.0, 40.0]);
    assert!(cam.project(&[0.0; 3], &mut uv).is_err());
}

#[test]
fn candle_projection_matches_arrays() {
    let mut rng = Rng(18);
    let cam = Pinhole {
        fx: 1200.0,
        fy: 1100.0,
        cx: 500.0,
        cy: 400.0,
    };
    let (b, n) = (3, 25);
    let pts: Vec<f32> = (0..b * n * 3).map(|_| rng.normal() as f32 * 0.5).collect();
    let ts: Vec<f32> = (0..b)
        .flat_map(|i| [0.1 * i as f32, -0.2, 8.0 + i as f32])
        .collect();
    let dev = Device::Cpu;
    let pt = Tensor::from_slice(&pts, (b, n, 3), &dev).unwrap();
    let tt = Tensor::from_slice(&ts, (b, 3), &dev).unwrap();
    let uv = cam.project_t(&pt, &tt).unwrap();
    assert_eq!(uv.dims(), &[b, n, 2]);
    let mut expected = vec![0.0f32; b * n * 2];
    for i in 0..b {
        let t = [ts[3 * i], ts[3 * i + 1], ts[3 * i + 2]];
        cam.project_translated(
            &pts[i * n * 3..(i + 1) * n * 3],
            &t,
            &mut expected[i * n * 2..(i + 1) * n * 2],
        )
        .unwrap();
    }
    let got = tensor_values(&uv);
    let expected: Vec<f64> = expected.iter().map(|&v| v as f64).collect();
    assert!(max_abs_diff(&got, &expected) < 1e-3);
    // Per-sample intrinsics through the free function.
    let focal = Tensor::from_slice(&[1200.0f32, 1100.0].repeat(b), (b, 2), &dev).unwrap();
    let principal = Tensor::from_slice(&[500.0f32, 400.0], (1, 2), &dev).unwrap();
    let uv2 = project_t(&pt, &tt, &focal, &principal).unwrap();
    assert!(max_abs_diff(&tensor_values(&uv2), &got) < 1e-9);
    assert!(project_t(&pt, &tt.narrow(0, 0, 2).unwrap(), &focal, &principal).is_err());
}

#[test]
fn crop_full_camera_round_trip_and_consistency() {
    let mut rng = Rng(19);
    let (w, h) = (1920.0f32, 1080.0f32);
    for _ in 0..200 {
        let pred_cam = [
            rng.range(0.5, 1.5) as f32,
            rng.range(-0.3, 0.3) as f32,
            rng.range(-0.3, 0.3) as f32,
        ];
        let center = [
            rng.range(100.0, 1800.0) as f32,
            rng.range(100.0, 1000.0) as f32,
        ];
        let size = rng.range(100.0, 800.0) as f32;
        let t = cam_crop_to_full(&pred_cam, &center, size, w, h, SCOREHMR_FOCAL).unwrap();
        // The formula, written out: tz = 2f/bs, tx = 2(cx - W/2)/bs + tx_crop.
        let bs = size * pred_cam[0];
        assert!((t[2] - 2.0 * SCOREHMR_FOCAL / bs).abs() < 1e-3);
        assert!((t[0] - (2.0 * (center[0] - w / 2.0) / bs + pred_cam[1])).abs() < 1e-5);
        assert!((t[1] - (2.0 * (center[1] - h / 2.0) / bs + pred_cam[2])).abs() < 1e-5);
        // The body origin projects where the weak-perspective crop camera puts it:
        // box centre + (b s / 2) (tx, ty).
        let cam = Pinhole::from_focal(SCOREHMR_FOCAL, w, h).unwrap();
        let uv = cam.project_point(&t);
        let expected = [
            center[0] + bs / 2.0 * pred_cam[1],
            center[1] + bs / 2.0 * pred_cam[2],
        ];
        assert!(
            max_abs_diff(&uv, &expected) < 1e-2,
            "{uv:?} vs {expected:?}"
        );
        let back = cam_full_to_crop(&t, &center, size, w, h, SCOREHMR_FOCAL).unwrap();
        assert!(
            max_abs_diff(&back, &pred_cam) < 1e-5,
            "{back:?} vs {pred_cam:?}"
        );
    }
    assert!(cam_crop_to_full(&[0.0, 0.0, 0.0], &[0.0, 0.0], 100.0, w, h, 5000.0).is_err());
    assert!(cam_full_to_crop(&[0.0, 0.0, -1.0], &[0.0, 0.0], 100.0, w, h, 5000.0).is_err());
}

#[test]
fn solve_translation_reproduces_noiseless_keypoints() {
    let mut rng = Rng(20);
    for case in 0..100 {
        let cam = if case % 2 == 0 {
            Pinhole::from_focal(SCOREHMR_FOCAL, 1920.0, 1080.0).unwrap()
        } else {
            Pinhole::from_fov(70.0, 1080.0, 1920.0).unwrap()
        };
        let n = 25;
        let joints: Vec<f32> = (0..n * 3).map(|_| rng.normal() as f32 * 0.4).collect();
        let t_true = [
            rng.range(-1.0, 1.0) as f32,
            rng.range(-1.0, 1.0) as f32,
            rng.range(3.0, 30.0) as f32,
        ];
        let mut kp = vec![0.0f32; n * 2];
        cam.project_translated(&joints, &t_true, &mut kp).unwrap();
        // Random confidences with some zeros (ignored) and a garbage keypoint under conf 0.
        let mut conf: Vec<f32> = (0..n).map(|_| rng.range(0.1, 1.0) as f32).collect();
        conf[3] = 0.0;
        kp[6] = 1e9;
        conf[7] = 0.0;
        kp[15] = f32::NAN;
        let t = solve_translation(&joints, &kp, &conf, &cam).unwrap();
        let mut uv = vec![0.0f32; n * 2];
        cam.project_translated(&joints, &t, &mut uv).unwrap();
        for i in (0..n).filter(|&i| conf[i] > 0.0) {
            let err =
                ((uv[2 * i] - kp[2 * i]).powi(2) + (uv[2 * i + 1] - kp[2 * i + 1]).powi(2)).sqrt();
            assert!(err < 1e-3, "case {case}, joint {i}: {err} px");
        }
        assert!(
            max_abs_diff(&t, &t_true) < 1e-3 * t_true[2] as f64,
            "{t:?} vs {t_true:?}"
        );
    }
    // Degenerate: a single confident joint.
    let cam = Pinhole::from_focal(5000.0, 100.0, 100.0).unwrap();
    let joints = [0.0f32, 0.0, 0.0, 0.1, 0.2, 0.0];
    let kp = [50.0f32, 50.0, 60.0, 70.0];
    assert!(solve_translation(&joints, &kp, &[1.0, 0.0], &cam).is_err());
    assert!(solve_translation(&joints, &kp[..3], &[1.0, 1.0], &cam).is_err());
    assert!(solve_translation(&joints, &kp, &[1.0, 1.0], &cam).is_ok());
}

#[test]
fn candle_projection_gradient_matches_finite_differences() {
    let mut rng = Rng(21);
    let dev = Device::Cpu;
    let (b, n) = (2, 6);
    let pts: Vec<f64> = (0..b * n * 3).map(|_| rng.normal() * 0.5).collect();
    let t0 = [0.1, -0.2, 6.0, -0.3, 0.2, 9.0];
    let w: Vec<f64> = (0..b * n * 2).map(|_| rng.normal()).collect();
    let cam = Pinhole {
        fx: 1500.0,
        fy: 1400.0,
        cx: 640.0,
        cy: 360.0,
    };
    let pt = Tensor::from_slice(&pts, (b, n, 3), &dev).unwrap();
    let wt = Tensor::from_slice(&w, (b, n, 2), &dev).unwrap();
    let loss_of = |t: &Tensor| {
        (cam.project_t(&pt, t).unwrap() * &wt)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let var = Var::from_slice(&t0, (b, 3), &dev).unwrap();
    let grads = loss_of(var.as_tensor()).backward().unwrap();
    let grad = tensor_values(grads.get(&var).unwrap());
    let h = 1e-6;
    for k in 0..b * 3 {
        let (mut tp, mut tm) = (t0, t0);
        tp[k] += h;
        tm[k] -= h;
        let value = |t: &[f64; 6]| {
            let tt = Tensor::from_slice(t, (b, 3), &dev).unwrap();
            loss_of(&tt).to_scalar::<f64>().unwrap()
        };
        let fd = (value(&tp) - value(&tm)) / (2.0 * h);
        assert!(
            (fd - grad[k]).abs() < 1e-5 * (1.0 + fd.abs()),
            "{k}: {} vs {fd}",
            grad[k]
        );
    }
}

#[test]
fn look_at_points_the_camera_at_the_target() {
    use rigfit::geom::camera::{look_at, Pinhole};
    use rigfit::motion::MotionCamera;
    // On the +Z axis looking at the origin: the identity (glTF cameras look down -Z).
    let r = look_at([0.0, 0.0, 5.0], [0.0; 3]);
    for (a, b) in r.iter().zip([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]) {
        assert!((a - b).abs() < 1e-6, "{r:?}");
    }
    // Anywhere: a proper rotation whose target projects to the principal point, world up stays up.
    let k = Pinhole::from_focal(800.0, 640.0, 480.0).unwrap();
    for pos in [[3.0, 1.5, -2.0], [-4.0, 0.2, 0.5], [0.5, 2.0, 3.0]] {
        let target = [0.2, -0.3, 0.1];
        let r = look_at(pos, target);
        assert!((rigfit::geom::rot::mat3_det(&r) - 1.0).abs() < 1e-5);
        let cam = MotionCamera::fixed("c", k, 640, 480, r, pos);
        let uv = cam.project(0, target).unwrap();
        assert!((uv[0] - 320.0).abs() < 1e-3 && (uv[1] - 240.0).abs() < 1e-3, "{uv:?}");
        let above = cam.project(0, [target[0], target[1] + 0.5, target[2]]).unwrap();
        assert!(above[1] < 240.0, "a point above the target is higher in the image: {above:?}");
    }
}
