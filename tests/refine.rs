//! ScoreHMR guided refinement on synthetic data with a known answer (the default body seen by
//! known cameras). The prior here is a zero-weight denoiser (eps = 0, so inversion and
//! sampling are exact inverses and the loop reduces to the guidance itself): these tests pin
//! the mechanics of the loop, the camera optimisation and the three guidance terms.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use rigfit::body::{diff::DiffBody, BodyModel, BodyOutput};
use rigfit::diffusion::ddim::{ddim_invert, ddim_sample, refine, RefineConfig};
use rigfit::diffusion::{Denoiser, DenoiserConfig, NullCond, Schedule};
use rigfit::geom::camera::Pinhole;
use rigfit::geom::rot::{axis_angle_to_matrix, rot6d_to_matrix, matrix_to_rot6d};
use rigfit::guide::{KeypointGuidance, KeypointObs, MultiviewGuidance, W_SMOOTH};

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn zero_prior() -> Denoiser {
    let cfg = DenoiserConfig { pose_dim: 144, cond_dim: 0, hidden: 32, blocks: 1, null_cond: NullCond::None };
    Denoiser::new(&cfg, VarBuilder::zeros(DType::F32, &Device::Cpu)).unwrap()
}

/// A pose (axis-angle per joint) of a person facing a y-down camera, varied by `phase`.
fn pose(phase: f32) -> [[f32; 3]; 24] {
    let mut aa = [[0f32; 3]; 24];
    aa[0] = [std::f32::consts::PI, 0.3 * phase.sin(), 0.0];
    aa[1] = [-0.5 * phase.sin(), 0.0, 0.1];
    aa[2] = [0.5 * phase.sin(), 0.0, -0.1];
    aa[4] = [0.4 + 0.3 * phase.cos(), 0.0, 0.0];
    aa[5] = [0.4 - 0.3 * phase.cos(), 0.0, 0.0];
    aa[16] = [0.0, 0.3 * phase.cos(), -1.1];
    aa[17] = [0.0, -0.3 * phase.cos(), 1.1];
    aa[18] = [0.0, -0.6, 0.0];
    aa[19] = [0.0, 0.6, 0.0];
    aa
}

fn to6d(aa: &[[f32; 3]; 24]) -> Vec<f32> {
    aa.iter().flat_map(|a| matrix_to_rot6d(&axis_angle_to_matrix(a))).collect()
}

fn rotmats_from_6d(x: &[f32]) -> Vec<f32> {
    x.chunks_exact(6).flat_map(|c| rot6d_to_matrix(&<[f32; 6]>::try_from(c).unwrap())).collect()
}

/// BODY_25 keypoints [B, 25, 3] (px, px, conf 1) of 6D poses [B, 144] at camera translations.
fn project(model: &BodyModel, cam: &Pinhole, x6: &[f32], cam_t: &[f32]) -> Vec<f32> {
    let b = cam_t.len() / 3;
    let mut out = BodyOutput::default();
    model.forward_joints(&[], &rotmats_from_6d(x6), cam_t, &mut out).unwrap();
    let mut kp = Vec::with_capacity(b * 75);
    for p in out.keypoints.chunks_exact(3) {
        let uv = cam.project_point(&[p[0], p[1], p[2]]);
        kp.extend([uv[0], uv[1], 1.0]);
    }
    kp
}

fn reproj_px(model: &BodyModel, cam: &Pinhole, x6: &[f32], cam_t: &[f32], kp: &[f32]) -> f32 {
    let p = project(model, cam, x6, cam_t);
    let n = p.len() / 3;
    p.chunks_exact(3).zip(kp.chunks_exact(3)).map(|(a, b)| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()).sum::<f32>() / n as f32
}

fn vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn zero_prior_inversion_and_sampling_are_inverse() {
    let den = zero_prior();
    let sched = Schedule::scorehmr();
    let x = Tensor::from_vec(to6d(&pose(0.3)), (1, 144), &Device::Cpu).unwrap();
    let xt = ddim_invert(&den, &sched, &x, None, 0, 50, 2).unwrap();
    let back = ddim_sample(&den, &sched, &xt, None, 50, 2, None).unwrap();
    let d = vec(&(back - &x).unwrap()).iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(d < 1e-4, "round trip error {d}");
}

#[test]
fn keypoint_guidance_fits_pose_and_camera() {
    let model = BodyModel::default_body().unwrap();
    let dev = Device::Cpu;
    let body = DiffBody::new(&model, &dev).unwrap();
    let (w, h) = (1920u32, 1080u32);
    let cam = Pinhole::from_focal(1600.0, w as f32, h as f32).unwrap();
    let b = 4;
    let mut r = Rng(7);
    let mut truth = Vec::new();
    let mut start = Vec::new();
    let mut cam_true = Vec::new();
    let mut cam_init = Vec::new();
    for i in 0..b {
        let aa = pose(i as f32 * 0.8);
        truth.extend(to6d(&aa));
        // Perturb every joint by up to ~0.25 rad.
        let mut noisy = aa;
        for j in 1..24 {
            for c in 0..3 {
                noisy[j][c] += 0.25 * r.f();
            }
        }
        start.extend(to6d(&noisy));
        let t = [0.2 * r.f(), 0.1 * r.f(), 4.0 + r.f()];
        cam_true.extend(t);
        cam_init.extend([t[0] + 0.1, t[1] - 0.1, t[2] * 1.15]);
    }
    let kp = project(&model, &cam, &truth, &cam_true);
    let before = reproj_px(&model, &cam, &start, &cam_init, &kp);
    let obs = KeypointObs::new(&kp, &vec![cam; b], &vec![(w, h); b], &dev, DType::F32).unwrap();
    let betas = Tensor::zeros((b, 10), DType::F32, &dev).unwrap();
    let mut g = KeypointGuidance::new(&body, betas, obs, &cam_init).unwrap();
    let x = Tensor::from_vec(start.clone(), (b, 144), &dev).unwrap();
    let out = refine(&zero_prior(), &Schedule::scorehmr(), &x, None, &mut g, &RefineConfig::keypoints(), None).unwrap();
    let fitted = vec(&out.x0);
    let after = reproj_px(&model, &cam, &fitted, &g.camera().unwrap(), &kp);
    eprintln!("mean reprojection error: {before:.1} px -> {after:.2} px; stopped {:?}", out.stopped_at);
    assert!(before > 20.0, "the start must be visibly wrong ({before} px)");
    assert!(after < 0.25 * before && after < 8.0, "{before} px -> {after} px");
    assert_eq!(out.evals, 500);
    assert_eq!(out.grads, 250);
}

#[test]
fn multiview_guidance_drives_views_together() {
    let dev = Device::Cpu;
    let views = 3;
    let mut r = Rng(9);
    let base = pose(0.5);
    let mut x = Vec::new();
    for v in 0..views {
        let mut aa = base;
        aa[0] = [std::f32::consts::PI, v as f32 * 0.9, 0.0]; // each view sees another orientation
        for j in 1..24 {
            for c in 0..3 {
                aa[j][c] += 0.2 * r.f();
            }
        }
        x.extend(to6d(&aa));
    }
    let spread = |x: &[f32]| -> f32 {
        (6..144)
            .map(|d| {
                let m = (0..views).map(|v| x[v * 144 + d]).sum::<f32>() / views as f32;
                (0..views).map(|v| (x[v * 144 + d] - m).powi(2)).sum::<f32>()
            })
            .sum()
    };
    let before = spread(&x);
    let xt = Tensor::from_vec(x.clone(), (views, 144), &dev).unwrap();
    let mut g = MultiviewGuidance::new(views);
    let out = refine(&zero_prior(), &Schedule::scorehmr(), &xt, None, &mut g, &RefineConfig::multiview(), None).unwrap();
    let y = vec(&out.x0);
    let after = spread(&y);
    eprintln!("multi-view spread {before:.4} -> {after:.6}");
    assert!(after < 0.05 * before, "{before} -> {after}");
    // The global orientations (per view) are left alone.
    for v in 0..views {
        for d in 0..6 {
            assert!((y[v * 144 + d] - x[v * 144 + d]).abs() < 1e-4);
        }
    }
}

#[test]
fn video_guidance_smooths_a_jittered_track_and_keeps_reprojection() {
    let model = BodyModel::default_body().unwrap();
    let dev = Device::Cpu;
    let body = DiffBody::new(&model, &dev).unwrap();
    let (w, h) = (1280u32, 720u32);
    let cam = Pinhole::from_focal(1000.0, w as f32, h as f32).unwrap();
    let frames = 16;
    let mut r = Rng(11);
    let (mut truth, mut jitter, mut cam_t) = (Vec::new(), Vec::new(), Vec::new());
    for f in 0..frames {
        let aa = pose(f as f32 * 0.15);
        truth.extend(to6d(&aa));
        let mut j = aa;
        for k in 1..24 {
            for c in 0..3 {
                j[k][c] += 0.12 * r.f();
            }
        }
        jitter.extend(to6d(&j));
        cam_t.extend([0.0, 0.1, 5.0]);
    }
    let kp = project(&model, &cam, &truth, &cam_t);
    // Joint positions in the body frame, for the acceleration error.
    let joints = |x: &[f32]| -> Vec<f32> {
        let mut o = BodyOutput::default();
        model.forward_joints(&[], &rotmats_from_6d(x), &vec![0.0; frames * 3], &mut o).unwrap();
        o.joints
    };
    let accel = |x: &[f32]| -> f32 {
        let (p, t) = (joints(x), joints(&truth));
        let mut e = 0.0;
        let mut n = 0;
        for f in 1..frames - 1 {
            for j in 0..24 {
                let mut s = 0.0;
                for c in 0..3 {
                    let i = |ff: usize| (ff * 24 + j) * 3 + c;
                    let a = p[i(f - 1)] - 2.0 * p[i(f)] + p[i(f + 1)];
                    let b = t[i(f - 1)] - 2.0 * t[i(f)] + t[i(f + 1)];
                    s += (a - b).powi(2);
                }
                e += s.sqrt();
                n += 1;
            }
        }
        e / n as f32 * 1000.0 // mm / frame^2
    };
    let acc_before = accel(&jitter);
    let obs = KeypointObs::new(&kp, &vec![cam; frames], &vec![(w, h); frames], &dev, DType::F32).unwrap();
    let betas = Tensor::zeros((frames, 10), DType::F32, &dev).unwrap();
    let mut g = KeypointGuidance::new(&body, betas, obs, &cam_t).unwrap().with_smoothness(frames, W_SMOOTH);
    let x = Tensor::from_vec(jitter.clone(), (frames, 144), &dev).unwrap();
    let out = refine(&zero_prior(), &Schedule::scorehmr(), &x, None, &mut g, &RefineConfig::video(), None).unwrap();
    let y = vec(&out.x0);
    let acc_after = accel(&y);
    let rp = reproj_px(&model, &cam, &y, &g.camera().unwrap(), &kp);
    eprintln!("accel error {acc_before:.1} -> {acc_after:.1} mm/frame^2; reprojection {rp:.2} px");
    assert!(acc_after < 0.5 * acc_before, "{acc_before} -> {acc_after}");
    assert!(rp < 6.0, "reprojection {rp} px");
}

#[test]
fn conditioned_denoiser_equals_the_plain_forward() {
    let dev = Device::Cpu;
    for null in [NullCond::Learned, NullCond::Zero] {
        let cfg = DenoiserConfig { pose_dim: 144, cond_dim: 96, hidden: 128, blocks: 3, null_cond: null };
        let (den, _vm) = Denoiser::init(&cfg, 3, DType::F32, &dev).unwrap();
        let b = 5;
        let mut r = Rng(13);
        let x = Tensor::from_vec((0..b * 144).map(|_| r.f()).collect::<Vec<_>>(), (b, 144), &dev).unwrap();
        // Standardised-feature-like condition with an offset, to exercise the mean term.
        let c = Tensor::from_vec((0..b * 96).map(|_| 0.3 + r.f() * 1.5).collect::<Vec<_>>(), (b, 96), &dev).unwrap();
        for cond in [Some(&c), None] {
            let net = den.condition(cond, b).unwrap();
            for t in [0u32, 2, 48, 50, 100, 999] {
                let tt = Tensor::full(t, b, &dev).unwrap();
                let a = vec(&den.forward(&x, &tt, cond).unwrap());
                let f = vec(&net.forward(&x, t).unwrap());
                let d = a.iter().zip(&f).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
                let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
                assert!(d < 2e-5 * (1.0 + scale), "{null:?} cond {} t {t}: {d}", cond.is_some());
            }
        }
    }
}

/// Sample 0's loss never changes (it stops at the 2nd guided step and its cached pose is
/// returned); sample 1's loss is a quadratic pulling it to a target (it keeps being guided).
struct Controlled {
    target: Tensor,
}

impl rigfit::guide::Guidance for Controlled {
    fn loss(&mut self, x0: &Tensor) -> rigfit::Result<rigfit::guide::GuidanceLoss> {
        let d = x0.broadcast_sub(&self.target).unwrap().sqr().unwrap().sum(1).unwrap(); // [2]
        let w = Tensor::new(&[0f32, 50.0], x0.device()).unwrap();
        let c = Tensor::new(&[5f32, 0.0], x0.device()).unwrap();
        let l = ((d * w).unwrap() + c).unwrap();
        Ok(rigfit::guide::GuidanceLoss { weighted: l.clone(), monitored: (l * 1000.0).unwrap() })
    }
}

#[test]
fn early_stopping_caches_converged_samples() {
    let dev = Device::Cpu;
    let start: Vec<f32> = [to6d(&pose(0.2)), to6d(&pose(1.0))].concat();
    let target = Tensor::from_vec(to6d(&pose(0.6)), (1, 144), &dev).unwrap();
    let x = Tensor::from_vec(start.clone(), (2, 144), &dev).unwrap();
    let mut g = Controlled { target: target.clone() };
    let out = refine(&zero_prior(), &Schedule::scorehmr(), &x, None, &mut g, &RefineConfig::keypoints(), None).unwrap();
    assert_eq!(out.stopped_at[0], Some(1), "{:?}", out.stopped_at);
    assert!(out.stopped_at[1].map_or(true, |s| s > 20), "{:?}", out.stopped_at);
    let y = vec(&out.x0);
    let d0 = y[..144].iter().zip(&start[..144]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(d0 < 1e-4, "the cached sample moved by {d0}");
    let t = vec(&target);
    let before: f32 = start[144..].iter().zip(&t).map(|(a, b)| (a - b).powi(2)).sum();
    let after: f32 = y[144..].iter().zip(&t).map(|(a, b)| (a - b).powi(2)).sum();
    eprintln!("stopped at {:?}; sample 1: {before:.4} -> {after:.6}", out.stopped_at);
    assert!(after < 0.1 * before, "sample 1 was not guided: {before} -> {after}");

    // Without early stopping, nothing is cached.
    let mut cfg = RefineConfig::keypoints();
    cfg.early_stop = None;
    let out = refine(&zero_prior(), &Schedule::scorehmr(), &x, None, &mut g, &cfg, None).unwrap();
    assert_eq!(out.stopped_at, vec![None, None]);
}

#[test]
fn ddim_sampling_from_noise_reaches_the_data_of_a_trained_prior() {
    use candle_nn::{AdamW, Optimizer, ParamsAdamW};
    use rigfit::diffusion::{training_loss, Rng as DRng};
    let dev = Device::Cpu;
    let sched = Schedule::scorehmr();
    let cfg = DenoiserConfig { pose_dim: 4, cond_dim: 0, hidden: 64, blocks: 2, null_cond: NullCond::None };
    let (den, vm) = Denoiser::init(&cfg, 5, DType::F32, &dev).unwrap();
    let mut rng = DRng::new(17);
    // Data: two tight blobs at +-(0.7, 0.7, 0.35, -0.35) (inside [-1, 1], as 6D entries).
    let centre = [0.7f32, 0.7, 0.35, -0.35];
    let mut blobs = |n: usize| -> Tensor {
        let mut v = Vec::with_capacity(n * 4);
        for _ in 0..n {
            let s = if rng.uniform() < 0.5 { 1.0 } else { -1.0 };
            for c in centre {
                v.push(s * c + 0.05 * rng.normal() as f32);
            }
        }
        Tensor::from_vec(v, (n, 4), &dev).unwrap()
    };
    let mut trng = DRng::new(23);
    let params = ParamsAdamW { lr: 3e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.0 };
    const STEPS: usize = 4000;
    let mut opt = AdamW::new(vm.all_vars(), params).unwrap();
    for _ in 0..STEPS {
        let x0 = blobs(256);
        let t = trng.timesteps(256, 1000, &dev).unwrap();
        let noise = trng.normal_tensor(&[256, 4], DType::F32, &dev).unwrap();
        opt.backward_step(&training_loss(&den, &sched, &x0, None, &t, &noise).unwrap()).unwrap();
    }
    let n = 200;
    let x_t = DRng::new(99).normal_tensor(&[n, 4], DType::F32, &dev).unwrap();
    let s = vec(&rigfit::diffusion::ddim::ddim_sample(&den, &sched, &x_t, None, 999, 20, Some(1.0)).unwrap());
    let (mut pos, mut dist) = (0usize, 0f32);
    for p in s.chunks_exact(4) {
        let dp: f32 = p.iter().zip(centre).map(|(a, c)| (a - c).powi(2)).sum::<f32>().sqrt();
        let dm: f32 = p.iter().zip(centre).map(|(a, c)| (a + c).powi(2)).sum::<f32>().sqrt();
        pos += (dp < dm) as usize;
        dist += dp.min(dm);
    }
    let mean = dist / n as f32;
    eprintln!("DDIM samples: mean distance to the nearest blob {mean:.3}, {pos}/{n} at the positive blob");
    // Noise itself is ~1.4 from the nearest blob; samples must land on the blobs, both of them.
    assert!(mean < 0.4, "mean distance {mean} (noise is ~1.4 away)");
    assert!(pos > n / 5 && pos < 4 * n / 5, "mode collapse: {pos}/{n}");
}
