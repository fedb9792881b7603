//! Parity with smplx (the reference SMPL implementation) on the synthetic SMPL-format model.
//!
//! The fixture `tests/fixtures/smplx_parity.npz` holds smplx 0.1.28's float64 outputs for 8
//! samples (sample 0 = rest pose, zero betas) of the synthetic model of `seed`, which
//! `common::synth::synthetic_smpl` rebuilds bit for bit (spec: tools/synth_smpl.py; regenerate
//! with tools/make_parity_fixtures.py). Every rigfit forward path must match smplx within
//! 1e-5 m on vertices, the 24 joints and the BODY_25 keypoints, for every sample.

mod common;

use std::error::Error as StdError;
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use common::{fixture, npz, synth};
use rigfit::body::diff::DiffBody;
use rigfit::body::{BodyModel, BodyOutput, NUM_BODY25, NUM_JOINTS};

type TestResult = Result<(), Box<dyn StdError>>;

/// Max abs error allowed against smplx, metres.
const TOL: f64 = 1e-5;

struct Fixture {
    seed: u64,
    batch: usize,
    /// `[B, 10]`
    betas: Vec<f64>,
    /// `[B, 24, 3, 3]` row-major
    rotmats: Vec<f64>,
    /// `[B, 3]`
    transl: Vec<f64>,
    /// `[B, V, 3]`
    vertices: Vec<f64>,
    /// `[B, 24, 3]`
    joints: Vec<f64>,
    /// `[B, 25, 3]`
    keypoints: Vec<f64>,
}

fn fx() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let p = fixture("smplx_parity.npz");
        let (seed, _) = npz::read_i64(&p, "seed");
        let (betas, bs) = npz::read_f64(&p, "betas");
        let (rotmats, rs) = npz::read_f64(&p, "rotmats");
        let (transl, ts) = npz::read_f64(&p, "transl");
        let (vertices, vs) = npz::read_f64(&p, "vertices");
        let (joints, js) = npz::read_f64(&p, "joints");
        let (keypoints, ks) = npz::read_f64(&p, "keypoints");
        let b = bs[0];
        assert_eq!(bs, [b, synth::NUM_BETAS]);
        assert_eq!(rs, [b, NUM_JOINTS, 3, 3]);
        assert_eq!(ts, [b, 3]);
        assert_eq!(vs, [b, synth::NUM_VERTS, 3]);
        assert_eq!(js, [b, NUM_JOINTS, 3]);
        assert_eq!(ks, [b, NUM_BODY25, 3]);
        Fixture { seed: seed[0] as u64, batch: b, betas, rotmats, transl, vertices, joints, keypoints }
    })
}

fn model() -> &'static BodyModel {
    static M: OnceLock<BodyModel> = OnceLock::new();
    M.get_or_init(|| BodyModel::new(synth::synthetic_smpl(fx().seed)).expect("synthetic model validates"))
}

fn f32s(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

fn to_f64(t: &Tensor) -> Result<Vec<f64>, Box<dyn StdError>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

/// Compares `got` with `want` (both `[B, ...]`), prints per-sample max abs errors and asserts
/// every one is below `tol`. Returns the overall max.
fn check(path: &str, what: &str, got: &[f64], want: &[f64], batch: usize, tol: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{path} {what}: {} values, smplx has {}", got.len(), want.len());
    let per = want.len() / batch;
    let errs: Vec<f64> = (0..batch)
        .map(|b| {
            got[b * per..(b + 1) * per]
                .iter()
                .zip(&want[b * per..(b + 1) * per])
                .map(|(g, w)| (g - w).abs())
                .fold(0.0, f64::max)
        })
        .collect();
    let fmt: Vec<String> = errs.iter().map(|e| format!("{e:.2e}")).collect();
    eprintln!("{path:28} {what:9} max abs err per sample [m]: {}", fmt.join(" "));
    for (b, &e) in errs.iter().enumerate() {
        assert!(
            e < tol && e.is_finite(),
            "{path}: {what} of sample {b} differ from smplx by {e:.3e} m (tolerance {tol:.0e}); all samples: {fmt:?}"
        );
    }
    errs.iter().copied().fold(0.0, f64::max)
}

#[test]
fn synthetic_model_is_bit_identical_to_the_python_generator() {
    let p = fixture("smplx_parity.npz");
    let (ver, _) = npz::read_i64(&p, "spec_version");
    assert_eq!(ver[0] as u32, synth::SPEC_VERSION, "fixture made with another synth spec version");
    let a = synth::synthetic_smpl(fx().seed);
    a.validate("synthetic").expect("synthetic model validates");

    let (vt, _) = npz::read_f32(&p, "check_v_template");
    assert_eq!(vt.len(), 30);
    for (i, (g, w)) in a.v_template.iter().zip(&vt).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "v_template[{i}]: rust {g} python {w}");
    }
    let (sl, _) = npz::read_f32(&p, "check_shapedirs_last");
    let tail = &a.shapedirs[a.shapedirs.len() - sl.len()..];
    for (i, (g, w)) in tail.iter().zip(&sl).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "shapedirs[-{}]: rust {g} python {w}", sl.len() - i);
    }
    let (ps, _) = npz::read_f64(&p, "check_posedirs_sum");
    let sum = synth::posedirs_sum_pickle_order(&a);
    assert_eq!(sum.to_bits(), ps[0].to_bits(), "posedirs sum: rust {sum:.17e} python {:.17e}", ps[0]);
    let (jn, _) = npz::read_i64(&p, "check_jreg_nnz");
    assert_eq!(a.j_regressor.iter().filter(|&&x| x != 0.0).count() as i64, jn[0], "J_regressor non-zeros");
    let (wn, _) = npz::read_i64(&p, "check_weights_nnz");
    assert_eq!(a.weights.iter().filter(|&&x| x != 0.0).count() as i64, wn[0], "weights non-zeros");
    let (ff, _) = npz::read_i64(&p, "check_faces_first");
    let got: Vec<i64> = a.faces[..4].iter().flat_map(|f| f.iter().map(|&i| i as i64)).collect();
    assert_eq!(got, ff, "first faces");
    assert_eq!(a.faces.len(), synth::NUM_FACES);
}

#[test]
fn cpu_forward_matches_smplx() -> TestResult {
    let (f, m) = (fx(), model());
    let mut out = BodyOutput::default();
    m.forward(&f32s(&f.betas), &f32s(&f.rotmats), &f32s(&f.transl), &mut out)?;
    assert_eq!(out.batch, f.batch);
    let g = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    check("cpu forward", "vertices", &g(&out.vertices), &f.vertices, f.batch, TOL);
    check("cpu forward", "joints", &g(&out.joints), &f.joints, f.batch, TOL);
    check("cpu forward", "keypoints", &g(&out.keypoints), &f.keypoints, f.batch, TOL);
    Ok(())
}

#[test]
fn cpu_forward_joints_matches_smplx() -> TestResult {
    let (f, m) = (fx(), model());
    let mut out = BodyOutput::default();
    m.forward_joints(&f32s(&f.betas), &f32s(&f.rotmats), &f32s(&f.transl), &mut out)?;
    assert_eq!(out.batch, f.batch);
    let g = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    check("cpu forward_joints", "joints", &g(&out.joints), &f.joints, f.batch, TOL);
    check("cpu forward_joints", "keypoints", &g(&out.keypoints), &f.keypoints, f.batch, TOL);
    Ok(())
}

/// Inputs as candle tensors of `dtype`: betas `[B, 10]`, rotmats `[B, 24, 3, 3]`, transl `[B, 3]`.
fn tensors(dtype: DType, dev: &Device) -> Result<(Tensor, Tensor, Tensor), Box<dyn StdError>> {
    let f = fx();
    let b = f.batch;
    let t = |v: &[f64], shape: &[usize]| -> Result<Tensor, Box<dyn StdError>> {
        Ok(Tensor::from_vec(v.to_vec(), shape, dev)?.to_dtype(dtype)?)
    };
    Ok((
        t(&f.betas, &[b, synth::NUM_BETAS])?,
        t(&f.rotmats, &[b, NUM_JOINTS, 3, 3])?,
        t(&f.transl, &[b, 3])?,
    ))
}

fn check_diff(path: &str, o: &rigfit::body::diff::DiffOutput, full: bool, tol: f64) -> TestResult {
    let f = fx();
    if full {
        let v = o.vertices.as_ref().ok_or("full forward returned no vertices")?;
        assert_eq!(v.dims(), [f.batch, synth::NUM_VERTS, 3]);
        check(path, "vertices", &to_f64(v)?, &f.vertices, f.batch, tol);
    }
    assert_eq!(o.joints.dims(), [f.batch, NUM_JOINTS, 3]);
    assert_eq!(o.keypoints.dims(), [f.batch, NUM_BODY25, 3]);
    check(path, "joints", &to_f64(&o.joints)?, &f.joints, f.batch, tol);
    check(path, "keypoints", &to_f64(&o.keypoints)?, &f.keypoints, f.batch, tol);
    Ok(())
}

#[test]
fn candle_forward_rotmats_matches_smplx() -> TestResult {
    let dev = Device::Cpu;
    let dm = DiffBody::new(model(), &dev)?;
    let (betas, rotmats, transl) = tensors(DType::F32, &dev)?;
    let o = dm.forward_rotmats(&betas, &rotmats, &transl)?;
    check_diff("candle f32 forward_rotmats", &o, true, TOL)?;
    let o = dm.forward_joints_rotmats(&betas, &rotmats, &transl)?;
    check_diff("candle f32 joints_rotmats", &o, false, TOL)
}

#[test]
fn candle_f64_forward_rotmats_matches_smplx() -> TestResult {
    let dev = Device::Cpu;
    let dm = DiffBody::with_dtype(model(), &dev, DType::F64)?;
    let (betas, rotmats, transl) = tensors(DType::F64, &dev)?;
    let o = dm.forward_rotmats(&betas, &rotmats, &transl)?;
    check_diff("candle f64 forward_rotmats", &o, true, TOL)
}

/// Rotation matrices `[B*24*9]` -> ScoreHMR 6D `[B*144]`: column 0 then column 1 of each matrix.
fn rotmats_to_6d(r: &[f64]) -> Vec<f64> {
    r.chunks_exact(9).flat_map(|m| [m[0], m[3], m[6], m[1], m[4], m[7]]).collect()
}

#[test]
fn candle_forward_6d_matches_smplx() -> TestResult {
    let dev = Device::Cpu;
    let f = fx();
    let dm = DiffBody::new(model(), &dev)?;
    let (betas, _, transl) = tensors(DType::F32, &dev)?;
    let x6d = Tensor::from_vec(rotmats_to_6d(&f.rotmats), (f.batch, NUM_JOINTS * 6), &dev)?.to_dtype(DType::F32)?;
    let o = dm.forward_6d(&betas, &x6d, &transl)?;
    check_diff("candle f32 forward_6d", &o, true, TOL)?;
    let o = dm.forward_joints_6d(&betas, &x6d, &transl)?;
    check_diff("candle f32 joints_6d", &o, false, TOL)
}

/// End-to-end check of tools/convert_smpl_pkl.py + rigfit's npz loader (opt-in: needs a
/// converted file, ~20 MB, not committed). Make one with:
///     python -c "import sys; sys.path.insert(0, 'tools'); import make_parity_fixtures as m, synth_smpl as s; m.write_smpl_pickle(s.synthetic_smpl(1), '/tmp/synthpkl')"
///     python tools/convert_smpl_pkl.py /tmp/synthpkl/smpl/SMPL_NEUTRAL.pkl -o /tmp/synthpkl/synth1.npz
///     RIGFIT_CONVERTED_SYNTH_NPZ=/tmp/synthpkl/synth1.npz cargo test --test parity_smplx -- --ignored
#[test]
#[ignore = "needs RIGFIT_CONVERTED_SYNTH_NPZ (a converted synthetic pickle)"]
fn converted_pickle_loads_in_rigfit_and_equals_the_generator() -> TestResult {
    let path = std::env::var("RIGFIT_CONVERTED_SYNTH_NPZ").map_err(|_| "set RIGFIT_CONVERTED_SYNTH_NPZ")?;
    let loaded = BodyModel::load(&path)?;
    let a = loaded.arrays();
    let b = model().arrays();
    assert_eq!(a.num_betas, b.num_betas);
    assert_eq!(a.parents, b.parents);
    assert_eq!(a.landmarks, b.landmarks);
    assert_eq!(a.faces, b.faces);
    for (key, x, y) in [
        ("v_template", &a.v_template, &b.v_template),
        ("shapedirs", &a.shapedirs, &b.shapedirs),
        ("posedirs", &a.posedirs, &b.posedirs),
        ("J_regressor", &a.j_regressor, &b.j_regressor),
        ("weights", &a.weights, &b.weights),
    ] {
        assert_eq!(x.len(), y.len(), "{key} length");
        let same = x.iter().zip(y.iter()).all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(same, "{key}: the converted file differs from synthetic_smpl({})", fx().seed);
    }
    Ok(())
}
