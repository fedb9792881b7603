//! Body-model tests on small random models: the loader (layouts, errors), the CPU and candle
//! paths against each other and against hand-computable cases, and candle gradients against
//! finite differences.

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use rigfit::body::{diff::DiffBody, BodyArrays, BodyModel, BodyOutput, SMPL_PARENTS};
use rigfit::geom::rot::axis_angle_to_matrix as rodrigues;
use rigfit::io::npz::{write_npz, WriteArray};
use rigfit::Error;

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn u(&mut self, n: usize) -> usize {
        ((self.f() + 1.0) * 0.5 * n as f32) as usize % n
    }
}

/// A random model with `v` vertices, dense pose correctives and 1-3 weights per vertex.
fn tiny_model(v: usize, seed: u64) -> BodyArrays {
    let mut r = Rng(seed);
    let s = 4;
    let mut weights = vec![0f32; v * 24];
    for vi in 0..v {
        let k = 1 + r.u(3);
        let mut tot = 0.0;
        for _ in 0..k {
            let j = r.u(24);
            let w = r.f().abs() + 0.1;
            weights[vi * 24 + j] += w;
            tot += w;
        }
        for j in 0..24 {
            weights[vi * 24 + j] /= tot;
        }
    }
    let mut jreg = vec![0f32; 24 * v];
    for j in 0..24 {
        for _ in 0..3 {
            jreg[j * v + r.u(v)] += 1.0 / 3.0;
        }
    }
    BodyArrays {
        name: "tiny".into(),
        v_template: (0..v * 3).map(|_| r.f() * 0.8).collect(),
        shapedirs: (0..v * 3 * s).map(|_| r.f() * 0.03).collect(),
        num_betas: s,
        posedirs: (0..207 * v * 3).map(|_| r.f() * 0.01).collect(),
        j_regressor: jreg,
        weights,
        parents: SMPL_PARENTS,
        faces: (0..v as u32 - 2).map(|i| [i, i + 1, i + 2]).collect(),
        landmarks: std::array::from_fn(|i| (i * 3 % v) as u32),
    }
}

fn random_inputs(b: usize, s: usize, r: &mut Rng) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let betas = (0..b * s).map(|_| r.f() * 2.0).collect();
    let mut rot = Vec::new();
    for _ in 0..b * 24 {
        let m = rodrigues(&[r.f() as f64, r.f() as f64, r.f() as f64]);
        rot.extend(m.iter().map(|&x| x as f32));
    }
    let transl = (0..b * 3).map(|_| r.f()).collect();
    (betas, rot, transl)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rigfit-body-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn rest_pose_is_template_plus_translation() {
    let a = tiny_model(40, 1);
    let m = BodyModel::new(a.clone()).unwrap();
    let eye: Vec<f32> = (0..24).flat_map(|_| [1., 0., 0., 0., 1., 0., 0., 0., 1.]).collect();
    let t = [0.1f32, -0.2, 3.0];
    let mut out = BodyOutput::default();
    m.forward(&[0.0; 4], &eye, &t, &mut out).unwrap();
    for vi in 0..40 {
        for k in 0..3 {
            let want = a.v_template[vi * 3 + k] + t[k];
            assert!((out.vertices[vi * 3 + k] - want).abs() < 1e-6);
        }
    }
    // Joints = J_regressor @ v_template + t.
    for j in 0..24 {
        for k in 0..3 {
            let want: f32 = (0..40).map(|vi| a.j_regressor[j * 40 + vi] * a.v_template[vi * 3 + k]).sum::<f32>() + t[k];
            assert!((out.joints[j * 3 + k] - want).abs() < 1e-5, "joint {j}");
        }
    }
}

#[test]
fn joints_only_matches_full_and_candle_matches_cpu() {
    let m = BodyModel::new(tiny_model(60, 2)).unwrap();
    let mut r = Rng(3);
    let b = 9;
    let (betas, rot, transl) = random_inputs(b, 4, &mut r);
    let mut full = BodyOutput::default();
    m.forward(&betas, &rot, &transl, &mut full).unwrap();
    let mut jo = BodyOutput::default();
    m.forward_joints(&betas, &rot, &transl, &mut jo).unwrap();
    assert!(jo.vertices.is_empty());
    assert!(max_diff(&full.joints, &jo.joints) < 1e-6);
    assert!(max_diff(&full.keypoints, &jo.keypoints) < 1e-5);

    // A second call with another batch size reuses the buffers correctly.
    let (b2, r2, t2) = random_inputs(2, 4, &mut r);
    m.forward(&b2, &r2, &t2, &mut full).unwrap();
    assert_eq!(full.vertices.len(), 2 * 60 * 3);
    m.forward(&betas, &rot, &transl, &mut full).unwrap();

    let dev = Device::Cpu;
    let dm = DiffBody::new(&m, &dev).unwrap();
    let tb = Tensor::from_vec(betas.clone(), (b, 4), &dev).unwrap();
    let tr = Tensor::from_vec(rot.clone(), (b, 24, 3, 3), &dev).unwrap();
    let tt = Tensor::from_vec(transl.clone(), (b, 3), &dev).unwrap();
    let o = dm.forward_rotmats(&tb, &tr, &tt).unwrap();
    let v: Vec<f32> = o.vertices.unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let j: Vec<f32> = o.joints.flatten_all().unwrap().to_vec1().unwrap();
    let k: Vec<f32> = o.keypoints.flatten_all().unwrap().to_vec1().unwrap();
    assert!(max_diff(&v, &full.vertices) < 1e-5, "vertices {}", max_diff(&v, &full.vertices));
    assert!(max_diff(&j, &full.joints) < 1e-5);
    assert!(max_diff(&k, &full.keypoints) < 1e-5);
    let oj = dm.forward_joints_rotmats(&tb, &tr, &tt).unwrap();
    assert!(oj.vertices.is_none());
    let k2: Vec<f32> = oj.keypoints.flatten_all().unwrap().to_vec1().unwrap();
    assert!(max_diff(&k2, &full.keypoints) < 1e-5);

    // Fewer betas than the model has: the missing ones are zero.
    let mut pad = BodyOutput::default();
    let betas2: Vec<f32> = betas.chunks(4).flat_map(|c| [c[0], c[1]]).collect();
    let betas4: Vec<f32> = betas.chunks(4).flat_map(|c| [c[0], c[1], 0.0, 0.0]).collect();
    m.forward(&betas2, &rot, &transl, &mut pad).unwrap();
    m.forward(&betas4, &rot, &transl, &mut full).unwrap();
    assert!(max_diff(&pad.vertices, &full.vertices) < 1e-6);
}

#[test]
fn candle_gradients_match_finite_differences() {
    let m = BodyModel::new(tiny_model(30, 4)).unwrap();
    let dev = Device::Cpu;
    let dm = DiffBody::with_dtype(&m, &dev, DType::F64).unwrap();
    let mut r = Rng(5);
    let b = 2;
    // 6D inputs: the first two columns of random rotations, perturbed off-orthogonal.
    let mut x6: Vec<f64> = Vec::new();
    for _ in 0..b * 24 {
        let rm = rodrigues(&[r.f() as f64, r.f() as f64, r.f() as f64]);
        let c = [rm[0], rm[3], rm[6], rm[1], rm[4], rm[7]];
        x6.extend(c.iter().map(|&x| x + 0.05 * r.f() as f64));
    }
    let betas: Vec<f64> = (0..b * 4).map(|_| r.f() as f64).collect();
    let transl: Vec<f64> = (0..b * 3).map(|_| r.f() as f64).collect();
    // Loss: a fixed random linear functional of vertices and keypoints (squared to be non-linear).
    let wv: Vec<f64> = (0..b * 30 * 3).map(|_| r.f() as f64).collect();
    let wk: Vec<f64> = (0..b * 25 * 3).map(|_| r.f() as f64).collect();
    let loss = |x6: &Tensor, be: &Tensor, tr: &Tensor| -> Tensor {
        let o = dm.forward_6d(be, x6, tr).unwrap();
        let wv = Tensor::from_vec(wv.clone(), (b, 30, 3), &dev).unwrap();
        let wk = Tensor::from_vec(wk.clone(), (b, 25, 3), &dev).unwrap();
        let a = (o.vertices.unwrap() * wv).unwrap().sum_all().unwrap();
        let k = (o.keypoints * wk).unwrap().sum_all().unwrap();
        (a.sqr().unwrap() + k).unwrap()
    };
    let vx = Var::from_tensor(&Tensor::from_vec(x6.clone(), (b, 144), &dev).unwrap()).unwrap();
    let vb = Var::from_tensor(&Tensor::from_vec(betas.clone(), (b, 4), &dev).unwrap()).unwrap();
    let vt = Var::from_tensor(&Tensor::from_vec(transl.clone(), (b, 3), &dev).unwrap()).unwrap();
    let l = loss(vx.as_tensor(), vb.as_tensor(), vt.as_tensor());
    let grads = l.backward().unwrap();
    let gx: Vec<f64> = grads.get(vx.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let gb: Vec<f64> = grads.get(vb.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let gt: Vec<f64> = grads.get(vt.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();

    let eval = |x6: &[f64], be: &[f64], tr: &[f64]| -> f64 {
        let l = loss(
            &Tensor::from_vec(x6.to_vec(), (b, 144), &dev).unwrap(),
            &Tensor::from_vec(be.to_vec(), (b, 4), &dev).unwrap(),
            &Tensor::from_vec(tr.to_vec(), (b, 3), &dev).unwrap(),
        );
        l.to_scalar::<f64>().unwrap()
    };
    let h = 1e-6;
    let check = |name: &str, analytic: &[f64], which: usize| {
        let n = analytic.len();
        let mut worst: f64 = 0.0;
        for i in (0..n).step_by(if n > 50 { 7 } else { 1 }) {
            let (mut xp, mut bp, mut tp) = (x6.clone(), betas.clone(), transl.clone());
            let (mut xm, mut bm, mut tm) = (x6.clone(), betas.clone(), transl.clone());
            match which {
                0 => { xp[i] += h; xm[i] -= h; }
                1 => { bp[i] += h; bm[i] -= h; }
                _ => { tp[i] += h; tm[i] -= h; }
            }
            let fd = (eval(&xp, &bp, &tp) - eval(&xm, &bm, &tm)) / (2.0 * h);
            let err = (fd - analytic[i]).abs() / (1.0 + fd.abs());
            worst = worst.max(err);
        }
        assert!(worst < 1e-5, "{name}: relative gradient error {worst}");
    };
    check("6D rotations", &gx, 0);
    check("betas", &gb, 1);
    check("translation", &gt, 2);
    assert!(gx.iter().any(|g| g.abs() > 1e-3), "rotation gradient is zero");
}

fn write_model<'a>(path: &std::path::Path, a: &'a BodyArrays, edit: impl FnOnce(&mut BTreeMap<String, WriteArray<'a>>)) {
    let v = a.num_verts();
    let mut m: BTreeMap<String, WriteArray> = BTreeMap::new();
    m.insert("v_template".into(), WriteArray::F32(&a.v_template, vec![v, 3]));
    m.insert("shapedirs".into(), WriteArray::F32(&a.shapedirs, vec![v, 3, a.num_betas]));
    m.insert("posedirs".into(), WriteArray::F32(&a.posedirs, vec![207, v * 3]));
    m.insert("J_regressor".into(), WriteArray::F32(&a.j_regressor, vec![24, v]));
    m.insert("weights".into(), WriteArray::F32(&a.weights, vec![v, 24]));
    // SMPL stores the root parent as uint32 -1.
    let mut kt: Vec<i64> = a.parents.iter().map(|&p| if p < 0 { 4294967295 } else { p as i64 }).collect();
    kt.extend(0..24);
    m.insert("kintree_table".into(), WriteArray::I64(kt, vec![2, 24]));
    let f: Vec<i64> = a.faces.iter().flat_map(|t| t.iter().map(|&i| i as i64)).collect();
    m.insert("f".into(), WriteArray::I64(f, vec![a.faces.len(), 3]));
    m.insert("landmarks".into(), WriteArray::I64(a.landmarks.iter().map(|&i| i as i64).collect(), vec![11]));
    edit(&mut m);
    write_npz(path, &m).unwrap();
}

#[test]
fn npz_layouts_load_to_the_same_model() {
    let a = tiny_model(20, 6);
    let v = 20;
    // smplx layout [207, V*3] and dense J_regressor.
    let p1 = tmp("dense.npz");
    write_model(&p1, &a, |_| {});
    let m1 = BodyModel::load(&p1).unwrap();
    assert_eq!(m1.arrays().posedirs, a.posedirs);
    assert_eq!(m1.parents(), &SMPL_PARENTS);
    // SMPL pickle layout [V, 3, 207] and CSR J_regressor.
    let pd_smpl: Vec<f32> = (0..v * 3)
        .flat_map(|r| (0..207).map(move |p| (r, p)))
        .map(|(r, p)| a.posedirs[p * v * 3 + r])
        .collect();
    let (mut data, mut idx, mut ptr) = (Vec::new(), Vec::new(), vec![0i64]);
    for j in 0..24 {
        for vi in 0..v {
            let w = a.j_regressor[j * v + vi];
            if w != 0.0 {
                data.push(w);
                idx.push(vi as i64);
            }
        }
        ptr.push(idx.len() as i64);
    }
    let p2 = tmp("smpl_layout.npz");
    let n = data.len();
    write_model(&p2, &a, |m| {
        m.insert("posedirs".into(), WriteArray::F32(&pd_smpl, vec![v, 3, 207]));
        m.remove("J_regressor");
        m.insert("J_regressor_data".into(), WriteArray::F32(&data, vec![n]));
        m.insert("J_regressor_indices".into(), WriteArray::I64(idx.clone(), vec![n]));
        m.insert("J_regressor_indptr".into(), WriteArray::I64(ptr.clone(), vec![25]));
    });
    let m2 = BodyModel::load(&p2).unwrap();
    assert_eq!(m2.arrays().posedirs, a.posedirs);
    assert_eq!(m2.arrays().j_regressor, a.j_regressor);

    // save_npz round trip, including the all-zero posedirs marker.
    let mut z = a.clone();
    z.posedirs.iter_mut().for_each(|x| *x = 0.0);
    let p3 = tmp("saved.npz");
    z.save_npz(&p3).unwrap();
    let m3 = BodyModel::load(&p3).unwrap();
    assert_eq!(m3.arrays().posedirs, z.posedirs);
    assert_eq!(m3.arrays().v_template, z.v_template);
    assert_eq!(m3.arrays().faces, z.faces);
    assert_eq!(m3.name(), "tiny");
    assert!(!m3.has_pose_correctives());
}

#[test]
fn bad_model_files_give_clear_errors() {
    let a = tiny_model(20, 7);
    let p = tmp("missing.npz");
    write_model(&p, &a, |m| {
        m.remove("weights");
    });
    let e = BodyModel::load(&p).unwrap_err();
    assert!(matches!(&e, Error::MissingKey { key, .. } if key == "weights"), "{e}");
    assert!(e.to_string().contains("missing.npz"), "error names the file: {e}");

    let p = tmp("shape.npz");
    write_model(&p, &a, |m| {
        m.insert("shapedirs".into(), WriteArray::F32(&a.shapedirs, vec![20, 12]));
    });
    let e = BodyModel::load(&p).unwrap_err();
    assert!(matches!(&e, Error::BadShape { key, .. } if key == "shapedirs"), "{e}");

    let mut nan = a.clone();
    nan.v_template[5] = f32::NAN;
    let p = tmp("nan.npz");
    write_model(&p, &nan, |_| {});
    let e = BodyModel::load(&p).unwrap_err();
    assert!(matches!(&e, Error::BadValue { key, .. } if key == "v_template"), "{e}");
    assert!(e.to_string().contains("non-finite"), "{e}");

    let mut w = a.clone();
    w.weights[0] += 0.5;
    let e = BodyModel::new(w).unwrap_err();
    assert!(e.to_string().contains("weights"), "{e}");

    let e = BodyModel::load(tmp("does_not_exist.npz")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");

    let p = tmp("garbage.npz");
    std::fs::write(&p, b"not a zip").unwrap();
    let e = BodyModel::load(&p).unwrap_err();
    assert!(e.to_string().contains("not a NumPy .npz"), "{e}");
}

#[test]
fn forward_rejects_mismatched_inputs() {
    let m = BodyModel::new(tiny_model(20, 8)).unwrap();
    let mut out = BodyOutput::default();
    let rot = vec![0f32; 2 * 24 * 9];
    assert!(m.forward(&[0.0; 8], &rot, &[0.0; 3], &mut out).is_err()); // B mismatch
    assert!(m.forward(&[0.0; 12], &rot, &[0.0; 6], &mut out).is_err()); // 6 betas > 4
    assert!(m.forward(&[0.0; 8], &rot[..10], &[0.0; 6], &mut out).is_err());
    assert!(m.forward(&[], &[], &[], &mut out).is_err());
    assert!(m.forward(&[0.0; 8], &rot, &[0.0; 6], &mut out).is_ok());
}

#[test]
fn simd_and_portable_cpu_paths_agree() {
    // V not a multiple of the 4-vertex tile, B not a multiple of 16 lanes (pairs + remainder).
    for (posedirs, b) in [(true, 37usize), (true, 1), (false, 20)] {
        let mut a = tiny_model(61, 9);
        if !posedirs {
            a.posedirs.iter_mut().for_each(|x| *x = 0.0);
        }
        let fast = BodyModel::new(a.clone()).unwrap();
        let slow = BodyModel::new(a).unwrap().with_simd(false);
        let mut r = Rng(10);
        let (betas, rot, transl) = random_inputs(b, 3, &mut r);
        let (mut o1, mut o2) = (BodyOutput::default(), BodyOutput::default());
        fast.forward(&betas, &rot, &transl, &mut o1).unwrap();
        slow.forward(&betas, &rot, &transl, &mut o2).unwrap();
        let d = max_diff(&o1.vertices, &o2.vertices);
        assert!(d < 2e-6, "posedirs {posedirs}, B {b}: max diff {d}");
        assert!(max_diff(&o1.keypoints, &o2.keypoints) < 2e-6);
        assert!(o1.vertices.iter().all(|x| x.is_finite() && *x != 0.0));
    }
}

#[test]
fn joints_kernel_matches_autograd_ops_in_value_and_gradient() {
    for posedirs in [true, false] {
        let mut a = tiny_model(40, 11);
        if !posedirs {
            a.posedirs.iter_mut().for_each(|x| *x = 0.0);
        }
        let m = BodyModel::new(a).unwrap();
        let dev = Device::Cpu;
        let dm = DiffBody::with_dtype(&m, &dev, DType::F64).unwrap();
        let mut r = Rng(12);
        let b = 5;
        let (betas, rot, transl) = random_inputs(b, 3, &mut r);
        let f64v = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        // Perturb the rotations off SO(3): the kernel must be exact for any matrices.
        let rot: Vec<f64> = rot.iter().map(|&x| x as f64 + 0.01 * r.f() as f64).collect();
        let vb = Var::from_tensor(&Tensor::from_vec(f64v(&betas), (b, 3), &dev).unwrap()).unwrap();
        let vr = Var::from_tensor(&Tensor::from_vec(rot, (b, 24, 3, 3), &dev).unwrap()).unwrap();
        let vt = Var::from_tensor(&Tensor::from_vec(f64v(&transl), (b, 3), &dev).unwrap()).unwrap();
        let wk = Tensor::from_vec((0..b * 75).map(|_| r.f() as f64).collect::<Vec<_>>(), (b, 25, 3), &dev).unwrap();
        let wj = Tensor::from_vec((0..b * 72).map(|_| r.f() as f64).collect::<Vec<_>>(), (b, 24, 3), &dev).unwrap();
        let mut results = Vec::new();
        for use_op in [true, false] {
            let o = if use_op {
                dm.forward_joints_rotmats(&vb, &vr, &vt).unwrap()
            } else {
                dm.forward_joints_rotmats_ops(&vb, &vr, &vt).unwrap()
            };
            let loss = ((&o.keypoints * &wk).unwrap().sum_all().unwrap().sqr().unwrap()
                + (&o.joints * &wj).unwrap().sum_all().unwrap())
            .unwrap();
            let g = loss.backward().unwrap();
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            results.push((
                flat(&o.keypoints),
                flat(&o.joints),
                flat(g.get(vr.as_tensor()).unwrap()),
                flat(g.get(vb.as_tensor()).unwrap()),
                flat(g.get(vt.as_tensor()).unwrap()),
            ));
        }
        let (a, o) = (&results[0], &results[1]);
        let close = |x: &[f64], y: &[f64], what: &str| {
            let d = x.iter().zip(y).map(|(p, q)| (p - q).abs() / (1.0 + q.abs())).fold(0.0, f64::max);
            assert!(d < 1e-9, "posedirs {posedirs}: {what} differs by {d}");
            assert!(y.iter().any(|v| v.abs() > 1e-6), "{what} is all zero");
        };
        close(&a.0, &o.0, "keypoints");
        close(&a.1, &o.1, "joints");
        close(&a.2, &o.2, "d/d rotations");
        close(&a.3, &o.3, "d/d betas");
        close(&a.4, &o.4, "d/d translation");
    }
}
