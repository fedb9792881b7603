//! The keypoint-conditioned prior: condition features, file round trip, synthetic samples, and
//! training (loss falls, the condition helps, resuming is exact).

use candle_core::Device;
use rigfit::body::{BodyModel, NUM_BODY25};
use rigfit::diffusion::prior::{condition_features, Prior, PriorConfig, COND_FEATURES};
use rigfit::diffusion::{DenoiserConfig, NullCond, Rng};
use rigfit::geom::camera::Pinhole;
use rigfit::geom::rot::{axis_angle_to_matrix, rot6d_to_matrix};
use rigfit::learn::synth::{mirror_pose, Generator, SynthConfig};
use rigfit::learn::train::{train_prior, TrainConfig};

fn tiny_prior() -> PriorConfig {
    PriorConfig {
        denoiser: DenoiserConfig { pose_dim: 144, cond_dim: 16, hidden: 48, blocks: 2, null_cond: NullCond::Learned },
        encoder_hidden: 32,
        provenance: serde_json::Value::Null,
    }
}

/// Random poses `[N, 24, 3, 3]`: each joint a rotation of up to `amp` rad about a random axis.
fn random_poses(n: usize, amp: f64, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut v = Vec::with_capacity(n * 216);
    for _ in 0..n * 24 {
        let aa = [rng.normal() * amp, rng.normal() * amp, rng.normal() * amp];
        v.extend_from_slice(&axis_angle_to_matrix(&[aa[0] as f32, aa[1] as f32, aa[2] as f32]));
    }
    v
}

#[test]
fn condition_features_are_box_normalised_and_camera_aware() {
    let cam = Pinhole::from_focal(1000.0, 1000.0, 800.0).unwrap();
    let mut kp = vec![0.0f32; NUM_BODY25 * 3];
    // Two keypoints 100 px apart horizontally, 50 vertically, centred at (700, 400).
    kp[0..3].copy_from_slice(&[650.0, 375.0, 1.0]);
    kp[3..6].copy_from_slice(&[750.0, 425.0, 0.5]);
    let f = condition_features(&kp, &cam);
    assert_eq!(f.len(), COND_FEATURES);
    let s = 1.2 * 100.0;
    assert!((f[0] - (-50.0 / s)).abs() < 1e-6 && (f[1] - (-25.0 / s)).abs() < 1e-6 && f[2] == 1.0);
    assert!((f[3] - 50.0 / s).abs() < 1e-6 && f[5] == 0.5);
    assert!(f[6..75].iter().all(|&x| x == 0.0), "missing keypoints are zero");
    assert!((f[75] - 2.0 * 200.0 / 1000.0).abs() < 1e-6, "box-centre ray x");
    assert!(f[76].abs() < 1e-6, "box-centre ray y");
    assert!((f[77] - 5.0 * s / 1000.0).abs() < 1e-6, "angular size");
    // Translating the keypoints moves only the ray.
    let mut kp2 = kp.clone();
    kp2[1] += 100.0;
    kp2[4] += 100.0;
    let g = condition_features(&kp2, &cam);
    assert_eq!(&f[..75], &g[..75]);
    assert!((g[76] - 0.2).abs() < 1e-6);
    // One keypoint: nothing observed.
    kp[5] = 0.0;
    assert!(condition_features(&kp, &cam).iter().all(|&x| x == 0.0));
}

#[test]
fn prior_file_round_trip_and_errors() {
    let dev = Device::Cpu;
    let (p, _, _) = Prior::init(&tiny_prior(), 3, candle_core::DType::F32, &dev).unwrap();
    let dir = std::env::temp_dir().join(format!("rigfit_prior_rt_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.safetensors");
    p.save(&path).unwrap();
    let q = Prior::load(&path, &dev).unwrap();
    assert_eq!(q.config, p.config);
    let kp: Vec<f32> = (0..75).map(|i| if i % 3 == 2 { 1.0 } else { 100.0 + 7.0 * i as f32 }).collect();
    let cam = Pinhole::from_focal(800.0, 640.0, 480.0).unwrap();
    let a: Vec<f32> = p.condition(&kp, &[cam]).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = q.condition(&kp, &[cam]).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a, b);
    // A bare denoiser file is not a prior; garbage is reported with the file name.
    p.denoiser.save(dir.join("d.safetensors")).unwrap();
    let e = Prior::load(&dir.join("d.safetensors"), &dev).unwrap_err().to_string();
    assert!(e.contains("config_json") && e.contains("d.safetensors"), "{e}");
    std::fs::write(dir.join("g.safetensors"), b"garbage").unwrap();
    let e = Prior::load(&dir.join("g.safetensors"), &dev).unwrap_err().to_string();
    assert!(e.contains("g.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn embedded_default_prior_loads_within_budget() {
    let p = Prior::default_prior(&Device::Cpu).expect("embedded default prior");
    assert!(rigfit::diffusion::prior::DEFAULT_PRIOR.len() <= 8_000_000, "default prior must stay <= 8 MB");
    assert_eq!(p.config.denoiser.pose_dim, 144);
}

#[test]
fn synthetic_samples_are_consistent() {
    let model = BodyModel::default_body().unwrap();
    let poses = random_poses(64, 0.3, 1);
    let refs: Vec<&[f32]> = poses.chunks_exact(216).collect();
    let mut gen = Generator::new(&model, SynthConfig::clean());
    let mut rng = Rng::new(7);
    let samples = gen.generate(&refs, &mut rng).unwrap();
    assert_eq!(samples.len(), 64);
    for s in &samples {
        // x decodes to the stored rotations.
        for j in 0..24 {
            let r = rot6d_to_matrix(&<[f32; 6]>::try_from(&s.x[6 * j..6 * j + 6]).unwrap());
            for k in 0..9 {
                assert!((r[k] - s.rotations[9 * j + k]).abs() < 1e-5);
            }
        }
        // Clean keypoints are the exact projections of the camera-frame points, inside the image.
        let (w, h) = s.image_size;
        let mut inside = 0;
        for k in 0..25 {
            let p = &s.body25[3 * k..3 * k + 3];
            assert!(p[2] > 0.0, "in front of the camera");
            let uv = s.camera.project_point(&[p[0], p[1], p[2]]);
            if s.keypoints[3 * k + 2] > 0.0 {
                inside += 1;
                assert!((uv[0] - s.keypoints[3 * k]).abs() < 1e-3 && (uv[1] - s.keypoints[3 * k + 1]).abs() < 1e-3);
                assert!(uv[0] >= 0.0 && uv[1] >= 0.0 && uv[0] < w as f32 && uv[1] < h as f32);
            }
        }
        assert_eq!(inside, 25, "a clean sample (no border cut-off) shows every joint");
        // The person stands upright in the image more often than not: head above pelvis (y down).
    }
    let upright = samples.iter().filter(|s| s.joints[15 * 3 + 1] < s.joints[1]).count();
    assert!(upright > 48, "upright people: {upright}/64");
    // Same seed, same samples.
    let again = Generator::new(&model, SynthConfig::clean()).generate(&refs, &mut Rng::new(7)).unwrap();
    assert_eq!(again[5].keypoints, samples[5].keypoints);
}

#[test]
fn mirroring_swaps_sides_and_is_an_involution() {
    let poses = random_poses(1, 0.5, 2);
    let m = mirror_pose(&poses);
    let mm = mirror_pose(&m);
    for (a, b) in poses.iter().zip(&mm) {
        assert!((a - b).abs() < 1e-7);
    }
    // The left knee of the mirror is the right knee reflected: same angle.
    let tr = |r: &[f32]| r[0] + r[4] + r[8];
    assert!((tr(&m[4 * 9..5 * 9]) - tr(&poses[5 * 9..6 * 9])).abs() < 1e-6);
}

#[test]
fn training_reduces_validation_loss_uses_the_condition_and_resumes_exactly() {
    let model = BodyModel::default_body().unwrap();
    let train = random_poses(200, 0.25, 11);
    let val = random_poses(50, 0.25, 12);
    let dev = Device::Cpu;
    let cfg = TrainConfig {
        steps: 120,
        batch: 32,
        lr: 2e-3,
        warmup: 10,
        val_every: 60,
        val_size: 128,
        checkpoint_every: 60,
        prior: tiny_prior(),
        ..TrainConfig::default()
    };
    let dir = std::env::temp_dir().join(format!("rigfit_train_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut nothing = |_: usize, _: usize, _: f64, _: Option<&rigfit::learn::train::ValPoint>| true;
    let (p_full, rep) = train_prior(&model, &train, &val, &cfg, &dir.join("a"), false, &dev, &mut nothing).unwrap();
    assert_eq!(rep.validation.len(), 2);
    // Untrained network: eps-MSE about 1 or more; trained: clearly lower, and lower with the
    // keypoints than with the null condition.
    let (first, last) = (&rep.validation[0], rep.validation.last().unwrap());
    println!("validation {:?}", rep.validation);
    assert!(last.loss < 0.6 && last.loss < first.loss, "validation loss {first:?} -> {last:?}");
    assert!(last.loss < last.loss_null, "the condition must help: {last:?}");
    // Interrupted at step 60 (the callback cancels), then resumed: the same weights as the
    // uninterrupted run.
    let mut stop_at_60 = |k: usize, _: usize, _: f64, _: Option<&rigfit::learn::train::ValPoint>| k < 60;
    let e = train_prior(&model, &train, &val, &cfg, &dir.join("b"), false, &dev, &mut stop_at_60).err().unwrap();
    assert!(matches!(e, rigfit::Error::Cancelled));
    let (p_res, _) = train_prior(&model, &train, &val, &cfg, &dir.join("b"), true, &dev, &mut nothing).unwrap();
    let a: Vec<f32> = p_full.named_tensors()[3].1.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = p_res.named_tensors()[3].1.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a, b, "resumed training must match the uninterrupted run");
    std::fs::remove_dir_all(&dir).ok();
}
