//! The GMM pose prior (EM on known mixtures, SMPLify's max-mixture loss, file round trip) and
//! the SMPLify baseline on synthetic scenes with a known answer.

use candle_core::{DType, Device, Tensor, Var};
use rigfit::body::diff::DiffBody;
use rigfit::body::BodyModel;
use rigfit::diffusion::rng::Rng;
use rigfit::fit::smplify::{angle_prior, reprojection_error_px, smplify, SmplifyConfig, SPIN_IGNORED_BODY25};
use rigfit::geom::camera::Pinhole;
use rigfit::geom::metrics::pa_mpjpe;
use rigfit::geom::rot::{axis_angle_to_matrix, matrix_to_rot6d, rot6d_to_matrix, matrix_to_axis_angle};
use rigfit::guide::KeypointObs;
use rigfit::learn::gmm::{GmmPrior, GMM_DIM};
use rigfit::Error;

fn vec1(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

// ------------------------------------------------------------------------------------------
// GMM

/// Three Gaussians in 69-D with known means, weights and (correlated) covariances.
struct Truth {
    weights: [f64; 3],
    means: Vec<f64>,  // [3, 69]
    factors: Vec<f64>, // [3, 69, 69] lower-triangular A_k, C_k = A_k A_k^T
}

fn truth() -> Truth {
    let d = GMM_DIM;
    let mut rng = Rng::new(7);
    let mut means = Vec::new();
    let mut factors = Vec::new();
    for k in 0..3 {
        // Means 1.5 apart per dimension (far apart in 69-D), stds 0.1..0.3, some correlation.
        means.extend((0..d).map(|i| (k as f64 - 1.0) * 1.5 + 0.2 * rng.normal() + if i % 2 == 0 { 0.1 } else { -0.1 }));
        let mut a = vec![0.0; d * d];
        for i in 0..d {
            a[i * d + i] = 0.1 + 0.1 * k as f64 + 0.05 * rng.uniform();
            if i > 0 {
                a[i * d + i - 1] = 0.05 * rng.normal();
            }
        }
        factors.extend(a);
    }
    Truth {
        weights: [0.5, 0.3, 0.2],
        means,
        factors,
    }
}

fn sample(t: &Truth, n: usize, seed: u64) -> Vec<f64> {
    let d = GMM_DIM;
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n * d);
    for s in 0..n {
        // Deterministic component counts: n * w_k samples of component k.
        let u = (s as f64 + 0.5) / n as f64;
        let k = if u < t.weights[0] { 0 } else if u < t.weights[0] + t.weights[1] { 1 } else { 2 };
        let z: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let a = &t.factors[k * d * d..(k + 1) * d * d];
        for i in 0..d {
            let v: f64 = (0..=i).map(|j| a[i * d + j] * z[j]).sum();
            out.push(t.means[k * d + i] + v);
        }
    }
    out
}

fn covar(t: &Truth, k: usize) -> Vec<f64> {
    let d = GMM_DIM;
    let a = &t.factors[k * d * d..(k + 1) * d * d];
    let mut c = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            c[i * d + j] = (0..d).map(|m| a[i * d + m] * a[j * d + m]).sum();
        }
    }
    c
}

#[test]
fn em_recovers_three_known_gaussians() {
    let d = GMM_DIM;
    let t = truth();
    let x = sample(&t, 6000, 11);
    let gmm = GmmPrior::fit(&x, 3, 50, 3).unwrap();
    assert_eq!((gmm.dim(), gmm.num_components()), (d, 3));

    // Same seed, same mixture, bit for bit.
    let again = GmmPrior::fit(&x, 3, 50, 3).unwrap();
    assert_eq!(gmm.means(), again.means());
    assert_eq!(gmm.covars(), again.covars());

    let mut matched = [false; 3];
    for k in 0..3 {
        let tm = &t.means[k * d..(k + 1) * d];
        // The fitted component nearest to true component k.
        let c = (0..3)
            .min_by(|&a, &b| {
                let da: f64 = (0..d).map(|i| (gmm.means()[a * d + i] - tm[i]).powi(2)).sum();
                let db: f64 = (0..d).map(|i| (gmm.means()[b * d + i] - tm[i]).powi(2)).sum();
                da.total_cmp(&db)
            })
            .unwrap();
        assert!(!matched[c], "two true components matched fitted component {c}");
        matched[c] = true;
        let err = (0..d).map(|i| (gmm.means()[c * d + i] - tm[i]).abs()).fold(0.0, f64::max);
        assert!(err < 0.05, "component {k}: mean error {err}");
        assert!((gmm.weights()[c] - t.weights[k]).abs() < 0.01, "weight {} vs {}", gmm.weights()[c], t.weights[k]);
        // Covariance: diagonal within 20 %, the neighbour correlation's sign and size.
        let tc = covar(&t, k);
        let fc = &gmm.covars()[c * d * d..(c + 1) * d * d];
        for i in 0..d {
            let (f, w) = (fc[i * d + i], tc[i * d + i]);
            assert!((f - w).abs() < 0.2 * w, "component {k} var {i}: {f} vs {w}");
        }
        let off: f64 = (1..d).map(|i| (fc[i * d + i - 1] - tc[i * d + i - 1]).abs()).sum::<f64>() / (d - 1) as f64;
        assert!(off < 0.004, "mean off-diagonal error {off}");
    }
    // EM's fit is at least as likely on its data as the truth (both with all components).
    let true_gmm = GmmPrior::from_parts(
        d,
        t.weights.to_vec(),
        t.means.clone(),
        (0..3).flat_map(|k| covar(&t, k)).collect(),
        "truth",
    )
    .unwrap();
    let (lf, lt) = (gmm.log_likelihood(&x).unwrap(), true_gmm.log_likelihood(&x).unwrap());
    assert!(lf >= lt - 1e-6, "fitted {lf} < true {lt}");

    // Bad input is an error, not a panic.
    assert!(GmmPrior::fit(&x[..10], 3, 5, 0).is_err());
    assert!(GmmPrior::fit(&x[..2 * d], 3, 5, 0).is_err());
    let mut nan = x[..100 * d].to_vec();
    nan[5] = f64::NAN;
    assert!(GmmPrior::fit(&nan, 3, 5, 0).is_err());
}

/// A 2-component mixture in 69-D with known parameters.
fn two_component() -> GmmPrior {
    let d = GMM_DIM;
    let mut means = vec![0.0; 2 * d];
    for i in 0..d {
        means[d + i] = 1.0;
    }
    let mut covars = vec![0.0; 2 * d * d];
    for i in 0..d {
        covars[i * d + i] = 0.04; // component 0: std 0.2
        covars[d * d + i * d + i] = 0.25; // component 1: std 0.5
        if i > 0 {
            covars[d * d + i * d + i - 1] = 0.05;
            covars[d * d + (i - 1) * d + i] = 0.05;
        }
    }
    GmmPrior::from_parts(d, vec![0.7, 0.3], means, covars, "test").unwrap()
}

#[test]
fn max_mixture_loss_matches_smplify_constants_and_its_gradient() {
    let d = GMM_DIM;
    let dev = Device::Cpu;
    // One standard normal component: the loss at the mean is SMPLify's constant (D/2) log(2 pi).
    let eye: Vec<f64> = (0..d * d).map(|i| if i % (d + 1) == 0 { 1.0 } else { 0.0 }).collect();
    let g1 = GmmPrior::from_parts(d, vec![1.0], vec![0.0; d], eye, "eye").unwrap();
    let c = 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
    assert!((g1.max_mixture_loss(&vec![0.0; d]).unwrap() - c).abs() < 1e-9);
    let mut x = vec![0.0; d];
    x[3] = 2.0;
    assert!((g1.max_mixture_loss(&x).unwrap() - (c + 2.0)).abs() < 1e-9);

    // Two components: constants -log w_k + c + 0.5 (log det C_k - min log det).
    let g = two_component();
    let k = g.nll_constants();
    assert!((k[0] - (-(0.7f64).ln() + c)).abs() < 1e-9, "{k:?}");
    assert!(k[1] > -(0.3f64).ln() + c + 10.0, "the broader component pays its volume: {k:?}");

    // Lower at a mode than off it; the tensor loss equals the f64 reference.
    let mm = g.max_mixture(&dev, DType::F64).unwrap();
    let pts: Vec<Vec<f64>> = vec![
        vec![0.0; d],
        (0..d).map(|i| 0.15 * ((i % 5) as f64 - 2.0)).collect(),
        vec![1.0; d],
        vec![0.5; d],
        (0..d).map(|i| 1.0 + 0.3 * ((i % 3) as f64 - 1.0)).collect(),
    ];
    let xt = Tensor::from_vec(pts.concat(), (pts.len(), d), &dev).unwrap();
    let l = vec1(&mm.loss(&xt).unwrap());
    for (p, v) in pts.iter().zip(&l) {
        let r = g.max_mixture_loss(p).unwrap();
        assert!((v - r).abs() < 1e-9 * (1.0 + r.abs()), "{v} vs {r}");
    }
    assert!(l[0] < l[1] && l[0] < l[3], "{l:?}");
    assert!(l[2] < l[3] && l[2] < l[4], "{l:?}");

    // Gradient vs central finite differences (f64) at points away from component ties.
    let x0: Vec<f64> = (0..2 * d).map(|i| if i < d { 0.1 * ((i % 7) as f64 - 3.0) / 3.0 } else { 1.0 + 0.2 * ((i % 4) as f64 - 1.5) }).collect();
    let v = Var::from_tensor(&Tensor::from_vec(x0.clone(), (2, d), &dev).unwrap()).unwrap();
    let grads = mm.loss(v.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
    let gv = vec1(grads.get(v.as_tensor()).unwrap());
    let h = 1e-6;
    for s in 0..2 {
        for i in [0, 1, 17, 40, 68] {
            let mut xp = x0[s * d..(s + 1) * d].to_vec();
            let mut xm = xp.clone();
            xp[i] += h;
            xm[i] -= h;
            let fd = (g.max_mixture_loss(&xp).unwrap() - g.max_mixture_loss(&xm).unwrap()) / (2.0 * h);
            let an = gv[s * d + i];
            assert!((fd - an).abs() < 1e-5 * (1.0 + fd.abs()), "sample {s} dim {i}: {an} vs {fd}");
        }
    }
    // Wrong width is an error.
    assert!(mm.loss(&Tensor::zeros((2, 68), DType::F64, &dev).unwrap()).is_err());
}

#[test]
fn gmm_file_round_trip_and_bad_files() {
    let dir = std::env::temp_dir().join(format!("rigfit_gmm_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let g = two_component();
    let p = dir.join("gmm.safetensors");
    g.save(&p).unwrap();
    let r = GmmPrior::load(&p).unwrap();
    assert_eq!(r.means(), g.means());
    assert_eq!(r.covars(), g.covars());
    assert_eq!(r.weights(), g.weights());
    assert_eq!(r.nll_constants(), g.nll_constants());

    let dev = Device::Cpu;
    let write = |name: &str, m: Vec<(&str, Tensor)>| {
        let map: std::collections::HashMap<String, Tensor> = m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let q = dir.join(name);
        candle_core::safetensors::save(&map, &q).unwrap();
        q
    };
    let means = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
    let w = Tensor::new(&[0.5f32, 0.5], &dev).unwrap();
    // Missing covariances.
    let q = write("missing.safetensors", vec![("means", means.clone()), ("weights", w.clone())]);
    match GmmPrior::load(&q) {
        Err(Error::MissingKey { key, path, .. }) => assert!(key == "covars" && path.contains("missing")),
        other => panic!("{other:?}"),
    }
    // Covariances of the wrong shape.
    let q = write(
        "shape.safetensors",
        vec![("means", means.clone()), ("weights", w.clone()), ("covars", Tensor::zeros((2, 3, 2), DType::F32, &dev).unwrap())],
    );
    match GmmPrior::load(&q) {
        Err(Error::BadShape { key, .. }) => assert_eq!(key, "covars"),
        other => panic!("{other:?}"),
    }
    // Not positive definite.
    let q = write(
        "pd.safetensors",
        vec![("means", means), ("weights", w), ("covars", Tensor::zeros((2, 3, 3), DType::F32, &dev).unwrap())],
    );
    match GmmPrior::load(&q) {
        Err(Error::BadValue { key, .. }) => assert_eq!(key, "covars"),
        other => panic!("{other:?}"),
    }
    std::fs::write(dir.join("junk.safetensors"), b"not a file").unwrap();
    assert!(matches!(GmmPrior::load(dir.join("junk.safetensors")), Err(Error::BadValue { .. })));
    assert!(matches!(GmmPrior::load(dir.join("absent.safetensors")), Err(Error::Io { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ------------------------------------------------------------------------------------------
// SMPLify

/// A broad pose prior: two components around the rest pose (std 0.5 and 0.8 rad).
fn rest_prior() -> GmmPrior {
    let d = GMM_DIM;
    let mut covars = vec![0.0; 2 * d * d];
    for i in 0..d {
        covars[i * d + i] = 0.25;
        covars[d * d + i * d + i] = 0.64;
    }
    GmmPrior::from_parts(d, vec![0.6, 0.4], vec![0.0; 2 * d], covars, "rest prior").unwrap()
}

/// Axis-angle `[24, 3]` to 6D `[144]`.
fn aa_to_x6(aa: &[[f64; 3]; 24]) -> Vec<f32> {
    aa.iter()
        .flat_map(|a| matrix_to_rot6d(&axis_angle_to_matrix(a)))
        .map(|v| v as f32)
        .collect()
}

/// The ground-truth pose: facing the camera (y-down camera frame), moderate limb angles.
fn true_pose(variant: usize) -> [[f64; 3]; 24] {
    let mut aa = [[0.0; 3]; 24];
    aa[0] = [std::f64::consts::PI, 0.2, 0.0];
    aa[1] = [-0.5, 0.0, 0.15]; // left hip flexion
    aa[2] = [0.2, 0.0, -0.1];
    aa[4] = [0.6, 0.0, 0.0]; // left knee
    aa[5] = [0.3, 0.0, 0.0];
    aa[16] = [0.0, -0.3, -0.7]; // left shoulder
    aa[17] = [0.0, 0.2, 0.8];
    aa[18] = [0.0, -0.7, 0.0]; // left elbow
    aa[19] = [0.0, 0.5, 0.0];
    aa[3] = [0.15, 0.0, 0.0];
    if variant == 1 {
        aa[0] = [std::f64::consts::PI, -0.3, 0.1];
        aa[1] = [0.2, 0.0, 0.3];
        aa[17] = [0.0, 0.6, 0.3];
        aa[19] = [0.0, 0.9, 0.0];
        aa[5] = [0.8, 0.0, 0.0];
    }
    aa
}

/// Keypoints `[25, 3]` of `x6` seen by `cam` from translation `cam_t`, and the joints `[24, 3]`.
fn observe(body: &DiffBody, x6: &[f32], cam: &Pinhole, cam_t: [f32; 3]) -> (Vec<f32>, Vec<f32>) {
    let dev = body.device();
    let x = Tensor::from_slice(x6, (1, 144), dev).unwrap();
    let betas = Tensor::zeros((1, 10), DType::F32, dev).unwrap();
    let zero = Tensor::zeros((1, 3), DType::F32, dev).unwrap();
    let out = body.forward_joints_6d(&betas, &x, &zero).unwrap();
    let t = Tensor::from_slice(&cam_t, (1, 3), dev).unwrap();
    let uv: Vec<f32> = cam.project_t(&out.keypoints, &t).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let kp = uv.chunks_exact(2).flat_map(|p| [p[0], p[1], 1.0]).collect();
    (kp, out.joints.flatten_all().unwrap().to_vec1().unwrap())
}

fn joints_of(body: &DiffBody, x6d: &Tensor, betas: &Tensor) -> Vec<f32> {
    let zero = Tensor::zeros((x6d.dim(0).unwrap(), 3), body.dtype(), body.device()).unwrap();
    let out = body.forward_joints_6d(&betas.to_dtype(body.dtype()).unwrap(), &x6d.to_dtype(body.dtype()).unwrap(), &zero).unwrap();
    out.joints.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

const TRUE_CAM: [f32; 3] = [0.1, 0.25, 3.0];

/// The initial guess: rest body pose, the global orientation 0.15 rad off, the camera 15 %
/// too far and 15 cm off to the side.
fn initial_guess() -> (Vec<f32>, [f32; 3]) {
    let mut aa = [[0.0; 3]; 24];
    aa[0] = [std::f64::consts::PI - 0.15, 0.2, 0.0];
    let cam = [TRUE_CAM[0] + 0.15, TRUE_CAM[1], TRUE_CAM[2] * 1.15];
    (aa_to_x6(&aa), cam)
}

#[test]
fn smplify_recovers_a_known_pose_from_rest() {
    let model = BodyModel::default_body().unwrap();
    let dev = Device::Cpu;
    let body = DiffBody::new(&model, &dev).unwrap();
    let cam = Pinhole::from_focal(1000.0, 1000.0, 1000.0).unwrap();
    let gt_x6 = aa_to_x6(&true_pose(0));
    let (kp, gt_joints) = observe(&body, &gt_x6, &cam, TRUE_CAM);
    let obs = KeypointObs::new(&kp, &[cam], &[(1000, 1000)], &dev, DType::F32).unwrap();
    let (x6, cam0) = initial_guess();
    let init = Tensor::from_vec(x6, (1, 144), &dev).unwrap();
    let betas0 = Tensor::zeros((1, 10), DType::F32, &dev).unwrap();

    let before = reprojection_error_px(&body, &obs, &init, &betas0, &cam0, &SPIN_IGNORED_BODY25).unwrap()[0];
    let pa_before = pa_mpjpe(&joints_of(&body, &init, &betas0), &gt_joints, 24).unwrap().mean;

    // Residuals in image pixels: the data term weighs (480 / 224)^2 more than in SPIN's crops,
    // so the optimiser's convergence, not the priors' pull, is what this measures.
    let cfg = SmplifyConfig { crop_px: None, ..SmplifyConfig::default() };
    let out = smplify(&body, &obs, &rest_prior(), &init, &betas0, &cam0, &cfg).unwrap();
    let after = out.reprojection_px[0];
    let check = reprojection_error_px(&body, &obs, &out.x6d, &out.betas, &out.cam_t, &SPIN_IGNORED_BODY25).unwrap()[0];
    assert!((after - check).abs() < 1e-3, "{after} vs {check}");
    let pa_after = pa_mpjpe(&joints_of(&body, &out.x6d, &out.betas), &gt_joints, 24).unwrap().mean;
    eprintln!(
        "reprojection {before:.1} px -> {after:.2} px, PA-MPJPE {:.1} -> {:.1} mm, cam {:?}",
        pa_before * 1e3,
        pa_after * 1e3,
        out.cam_t
    );
    assert!(before > 50.0, "initial error {before}");
    assert!(after < 5.0, "final error {after}");
    // One view leaves the limbs' depth ambiguous and SPIN's 100 + 100 iterations stop early:
    // the 3D error drops by a good part, not to zero.
    assert!(pa_after < 0.7 * pa_before, "PA-MPJPE {pa_before} -> {pa_after}");
    // The camera distance comes back from 15 % off.
    assert!((out.cam_t[2] - TRUE_CAM[2]).abs() < 0.05 * TRUE_CAM[2], "{:?}", out.cam_t);

    // SPIN's variant (camera fixed in the body stage) cannot undo the wrong distance.
    let spin = SmplifyConfig {
        camera_in_body_stage: false,
        ..cfg.clone()
    };
    let out2 = smplify(&body, &obs, &rest_prior(), &init, &betas0, &cam0, &spin).unwrap();
    eprintln!("camera fixed in stage 2: {:.2} px, cam {:?}", out2.reprojection_px[0], out2.cam_t);
    assert!(out2.reprojection_px[0] > after);

    // A longer body stage converges further, in 2D and in 3D.
    let long = SmplifyConfig {
        body_iters: 1000,
        ..cfg.clone()
    };
    let out3 = smplify(&body, &obs, &rest_prior(), &init, &betas0, &cam0, &long).unwrap();
    let pa_long = pa_mpjpe(&joints_of(&body, &out3.x6d, &out3.betas), &gt_joints, 24).unwrap().mean;
    eprintln!("1000 body iterations: {:.2} px, PA-MPJPE {:.1} mm", out3.reprojection_px[0], pa_long * 1e3);
    assert!(out3.reprojection_px[0] < 1.0 && pa_long < 0.3 * pa_before);
}

#[test]
fn the_prior_pulls_an_unobserved_joint_to_its_mean() {
    let model = BodyModel::default_body().unwrap();
    let dev = Device::Cpu;
    let body = DiffBody::new(&model, &dev).unwrap();
    let cam = Pinhole::from_focal(1000.0, 1000.0, 1000.0).unwrap();
    let mut aa = true_pose(0);
    aa[18] = [0.0, 0.0, 0.9]; // left elbow, about z (the angle prior acts on y only)
    let gt_x6 = aa_to_x6(&aa);
    let (mut kp, _) = observe(&body, &gt_x6, &cam, TRUE_CAM);
    kp[7 * 3 + 2] = 0.0; // BODY_25 LWrist unseen: nothing observes the left elbow's rotation.
    let obs = KeypointObs::new(&kp, &[cam], &[(1000, 1000)], &dev, DType::F32).unwrap();
    let init = Tensor::from_vec(gt_x6, (1, 144), &dev).unwrap();
    let betas0 = Tensor::zeros((1, 10), DType::F32, &dev).unwrap();
    let elbow_z = |x6d: &Tensor| {
        let v = vec1(x6d);
        let r = rot6d_to_matrix(&<[f64; 6]>::try_from(&v[18 * 6..19 * 6]).unwrap());
        matrix_to_axis_angle(&r)[2]
    };
    // Start at the truth with the true camera: the observed joints hold, the elbow moves.
    let out = smplify(&body, &obs, &rest_prior(), &init, &betas0, &TRUE_CAM, &SmplifyConfig::default()).unwrap();
    let with_prior = elbow_z(&out.x6d);
    let no_prior = SmplifyConfig {
        pose_prior_weight: 0.0,
        ..SmplifyConfig::default()
    };
    let out0 = smplify(&body, &obs, &rest_prior(), &init, &betas0, &TRUE_CAM, &no_prior).unwrap();
    let without = elbow_z(&out0.x6d);
    eprintln!("elbow z: start 0.9, with prior {with_prior:.3}, without {without:.3}");
    assert!(with_prior.abs() < 0.3, "with the prior: {with_prior}");
    assert!((without - 0.9).abs() < 1e-3, "without the prior: {without}");
    assert!(out.reprojection_px[0] < 2.0, "{:?}", out.reprojection_px);
}

#[test]
fn batched_samples_are_independent() {
    let model = BodyModel::default_body().unwrap();
    let dev = Device::Cpu;
    let body = DiffBody::new(&model, &dev).unwrap();
    let cams = [
        Pinhole::from_focal(1000.0, 1000.0, 1000.0).unwrap(),
        Pinhole::from_focal(1200.0, 1280.0, 720.0).unwrap(),
    ];
    let cam_ts = [TRUE_CAM, [-0.2, 0.1, 3.5]];
    let mut kps = Vec::new();
    for v in 0..2 {
        kps.push(observe(&body, &aa_to_x6(&true_pose(v)), &cams[v], cam_ts[v]).0);
    }
    let (x6, cam0) = initial_guess();
    let cam1 = [cam_ts[1][0] + 0.1, cam_ts[1][1], cam_ts[1][2] * 0.9];
    let cfg = SmplifyConfig {
        camera_iters: 30,
        body_iters: 30,
        ..SmplifyConfig::default()
    };
    let prior = rest_prior();
    let sizes = [(1000, 1000), (1280, 720)];
    let run = |idx: &[usize]| {
        let kp: Vec<f32> = idx.iter().flat_map(|&i| kps[i].clone()).collect();
        let c: Vec<Pinhole> = idx.iter().map(|&i| cams[i]).collect();
        let s: Vec<(u32, u32)> = idx.iter().map(|&i| sizes[i]).collect();
        let obs = KeypointObs::new(&kp, &c, &s, &dev, DType::F32).unwrap();
        let n = idx.len();
        let init = Tensor::from_vec(x6.repeat(n), (n, 144), &dev).unwrap();
        let b0 = Tensor::zeros((n, 10), DType::F32, &dev).unwrap();
        let ct: Vec<f32> = idx.iter().flat_map(|&i| if i == 0 { cam0 } else { cam1 }).collect();
        smplify(&body, &obs, &prior, &init, &b0, &ct, &cfg).unwrap()
    };
    let both = run(&[0, 1]);
    let (x, b) = (vec1(&both.x6d), vec1(&both.betas));
    for i in 0..2 {
        let one = run(&[i]);
        let close = |a: &[f64], b: &[f64], what: &str| {
            let e = a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
            assert!(e < 1e-4, "sample {i} {what}: max difference {e}");
        };
        close(&x[i * 144..(i + 1) * 144], &vec1(&one.x6d), "pose");
        close(&b[i * 10..(i + 1) * 10], &vec1(&one.betas), "betas");
        let ct: Vec<f64> = both.cam_t[i * 3..i * 3 + 3].iter().map(|&v| v as f64).collect();
        close(&ct, &one.cam_t.iter().map(|&v| v as f64).collect::<Vec<_>>(), "camera");
        assert!((both.reprojection_px[i] - one.reprojection_px[0]).abs() < 1e-3);
    }
    // The two samples did different things (the test would be void if they were equal).
    assert!(x[..144].iter().zip(&x[144..]).any(|(p, q)| (p - q).abs() > 0.05));
}

#[test]
fn smplify_rejects_bad_inputs() {
    let model = BodyModel::default_body().unwrap();
    let dev = Device::Cpu;
    let body = DiffBody::new(&model, &dev).unwrap();
    let cam = Pinhole::from_focal(1000.0, 1000.0, 1000.0).unwrap();
    let (kp, _) = observe(&body, &aa_to_x6(&true_pose(0)), &cam, TRUE_CAM);
    let obs = KeypointObs::new(&kp, &[cam], &[(1000, 1000)], &dev, DType::F32).unwrap();
    let init = Tensor::from_vec(initial_guess().0, (1, 144), &dev).unwrap();
    let b0 = Tensor::zeros((1, 10), DType::F32, &dev).unwrap();
    let cfg = SmplifyConfig::default();
    let prior = rest_prior();
    let e = |r: rigfit::Result<_>| matches!(r, Err(Error::Input(_)));
    assert!(e(smplify(&body, &obs, &prior, &init.narrow(1, 0, 72).unwrap(), &b0, &TRUE_CAM, &cfg)));
    assert!(e(smplify(&body, &obs, &prior, &init, &Tensor::zeros((2, 10), DType::F32, &dev).unwrap(), &TRUE_CAM, &cfg)));
    assert!(e(smplify(&body, &obs, &prior, &init, &b0, &TRUE_CAM[..2], &cfg)));
    let small = GmmPrior::from_parts(2, vec![1.0], vec![0.0; 2], vec![1.0, 0.0, 0.0, 1.0], "2d").unwrap();
    assert!(e(smplify(&body, &obs, &small, &init, &b0, &TRUE_CAM, &cfg)));
    let bad = SmplifyConfig {
        ignore_keypoints: vec![25],
        ..SmplifyConfig::default()
    };
    assert!(e(smplify(&body, &obs, &prior, &init, &b0, &TRUE_CAM, &bad)));
    let bad = SmplifyConfig {
        sigma: f64::NAN,
        ..SmplifyConfig::default()
    };
    assert!(e(smplify(&body, &obs, &prior, &init, &b0, &TRUE_CAM, &bad)));
}


#[test]
fn angle_prior_penalises_hyperextension_of_the_default_body() {
    let model = BodyModel::default_body().unwrap();
    let dev = Device::Cpu;
    let body = DiffBody::with_dtype(&model, &dev, DType::F64).unwrap();
    // The prior's signs match the default body: a positive x rotation of a knee bends it
    // naturally (the ankle swings backwards, -z, in the body frame facing +z), a negative y
    // rotation of the left elbow (positive for the right) bends the forearm forwards (+z).
    let joints = |aa: &[[f64; 3]; 24]| {
        let x = Tensor::from_vec(aa_to_x6(aa).iter().map(|&v| v as f64).collect::<Vec<_>>(), (1, 144), &dev).unwrap();
        let z = Tensor::zeros((1, 3), DType::F64, &dev).unwrap();
        let b = Tensor::zeros((1, 10), DType::F64, &dev).unwrap();
        vec1(&body.forward_joints_6d(&b, &x, &z).unwrap().joints)
    };
    let rest = joints(&[[0.0; 3]; 24]);
    let cases: [(usize, [f64; 3], usize); 4] = [(4, [1.0, 0.0, 0.0], 7), (5, [1.0, 0.0, 0.0], 8), (18, [0.0, -1.0, 0.0], 20), (19, [0.0, 1.0, 0.0], 21)];
    for (joint, rot, child) in cases {
        let mut aa = [[0.0; 3]; 24];
        aa[joint] = rot;
        let j = joints(&aa);
        let dz = j[child * 3 + 2] - rest[child * 3 + 2];
        let natural = if joint < 18 { dz < -0.1 } else { dz > 0.1 };
        assert!(natural, "joint {joint} rotated by {rot:?}: child z moves {dz}");
        // Natural bending is cheap, the opposite costs e^2 per joint.
        let mut pose = vec![0.0f64; 69];
        for c in 0..3 {
            pose[(joint - 1) * 3 + c] = rot[c];
        }
        let p = Tensor::from_vec(pose.clone(), (1, 69), &dev).unwrap();
        let neg = Tensor::from_vec(pose.iter().map(|v| -v).collect::<Vec<_>>(), (1, 69), &dev).unwrap();
        let (a, b) = (vec1(&angle_prior(&p).unwrap())[0], vec1(&angle_prior(&neg).unwrap())[0]);
        // The other three terms sit at exp(0)^2 = 1.
        assert!((a - (3.0 + (-2.0f64).exp())).abs() < 1e-9, "joint {joint}: natural {a}");
        assert!((b - (3.0 + 2.0f64.exp())).abs() < 1e-9, "joint {joint}: hyperextended {b}");
    }
}

/// SPIN measures residuals in 224 px crops of the person, so its balance between the data term
/// and the priors must not depend on the image's resolution: the same view at twice the
/// resolution (keypoints, focal length and principal point doubled) gives the same fit. In image
/// pixels the data term weighs four times more there, and the fit changes.
#[test]
fn crop_normalised_smplify_does_not_depend_on_the_image_resolution() {
    let model = BodyModel::default_body().unwrap();
    let dev = Device::Cpu;
    let body = DiffBody::new(&model, &dev).unwrap();
    let cam1 = Pinhole::from_focal(1000.0, 1000.0, 1000.0).unwrap();
    let cam2 = Pinhole::from_focal(2000.0, 2000.0, 2000.0).unwrap();
    let (kp1, _) = observe(&body, &aa_to_x6(&true_pose(0)), &cam1, TRUE_CAM);
    let kp2: Vec<f32> = kp1.chunks_exact(3).flat_map(|k| [2.0 * k[0], 2.0 * k[1], k[2]]).collect();
    let obs1 = KeypointObs::new(&kp1, &[cam1], &[(1000, 1000)], &dev, DType::F32).unwrap();
    let obs2 = KeypointObs::new(&kp2, &[cam2], &[(2000, 2000)], &dev, DType::F32).unwrap();
    let (x6, cam0) = initial_guess();
    let init = Tensor::from_vec(x6, (1, 144), &dev).unwrap();
    let betas0 = Tensor::zeros((1, 10), DType::F32, &dev).unwrap();
    let scale = rigfit::fit::smplify::crop_scales(&obs1, 224.0).unwrap()[0];
    let scale2 = rigfit::fit::smplify::crop_scales(&obs2, 224.0).unwrap()[0];
    assert!((scale / scale2 - 2.0).abs() < 1e-6 && scale > 0.2 && scale < 1.0, "{scale} {scale2}");
    let fit = |obs: &KeypointObs, crop: Option<f64>| {
        let cfg = SmplifyConfig { crop_px: crop, ..SmplifyConfig::default() };
        vec1(&smplify(&body, obs, &rest_prior(), &init, &betas0, &cam0, &cfg).unwrap().x6d)
    };
    let max_diff = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let (a, b) = (fit(&obs1, Some(224.0)), fit(&obs2, Some(224.0)));
    assert!(max_diff(&a, &b) < 1e-3, "crop pixels: the fits differ by {}", max_diff(&a, &b));
    let (c, d) = (fit(&obs1, None), fit(&obs2, None));
    assert!(max_diff(&c, &d) > 1e-2, "image pixels: the fits differ by only {}", max_diff(&c, &d));
}
