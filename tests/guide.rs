//! Guidance losses: known values, invariances, and a ground-truth pose scoring zero.

use candle_core::{DType, Device, Tensor, Var};
use rigfit::body::{diff::DiffBody, BodyModel, BodyOutput};
use rigfit::geom::camera::Pinhole;
use rigfit::geom::rot::{axis_angle_to_matrix, matrix_to_rot6d};
use rigfit::guide::*;

fn vec1(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn gmof_is_quadratic_near_zero_and_saturates() {
    let r = Tensor::new(&[0.0f64, 1.0, 100.0, -100.0, 1e6], &Device::Cpu).unwrap();
    let g = vec1(&gmof(&r, 100.0).unwrap());
    assert_eq!(g[0], 0.0);
    assert!((g[1] - 1.0 * 1e4 / (1e4 + 1.0)).abs() < 1e-12);
    assert!((g[2] - 5000.0).abs() < 1e-9 && (g[3] - 5000.0).abs() < 1e-9);
    assert!(g[4] < 1e4 && g[4] > 0.9999e4);
}

/// A standing pose seen by a camera 3 m away: returns (6D pose [144], keypoints [25, 3] px).
fn scene(model: &BodyModel, cam: &Pinhole, cam_t: [f32; 3]) -> (Vec<f32>, Vec<f32>) {
    let mut aa = [[0f32; 3]; 24];
    aa[0] = [std::f32::consts::PI, 0.0, 0.0]; // y-up body into the y-down camera frame
    aa[1] = [-0.4, 0.0, 0.1];
    aa[5] = [0.7, 0.0, 0.0];
    aa[16] = [0.0, 0.0, -1.0];
    aa[19] = [0.0, 0.8, 0.0];
    let rot: Vec<f32> = aa.iter().flat_map(|a| axis_angle_to_matrix(a)).collect();
    let x6: Vec<f32> = rot.chunks_exact(9).flat_map(|r| matrix_to_rot6d(&<[f32; 9]>::try_from(r).unwrap())).collect();
    let mut out = BodyOutput::default();
    model.forward_joints(&[], &rot, &cam_t, &mut out).unwrap();
    let mut kp = Vec::new();
    for p in out.keypoints.chunks_exact(3) {
        let uv = cam.project_point(&[p[0], p[1], p[2]]);
        kp.extend([uv[0], uv[1], 1.0]);
    }
    (x6, kp)
}

#[test]
fn keypoint_loss_is_zero_at_the_truth_and_ignores_missing_joints() {
    let model = BodyModel::default_body().unwrap();
    let dev = Device::Cpu;
    let body = DiffBody::new(&model, &dev).unwrap();
    let cam = Pinhole::from_focal(1500.0, 1920.0, 1080.0).unwrap();
    let cam_t = [0.1f32, 0.2, 3.0];
    let (x6, mut kp) = scene(&model, &cam, cam_t);
    let obs = KeypointObs::new(&kp, &[cam], &[(1920, 1080)], &dev, DType::F32).unwrap();
    let x = Tensor::from_vec(x6.clone(), (1, 144), &dev).unwrap();
    let betas = Tensor::zeros((1, 10), DType::F32, &dev).unwrap();
    let t = Tensor::from_vec(cam_t.to_vec(), (1, 3), &dev).unwrap();
    let l0 = vec1(&keypoint_loss_body(&body, &x, &betas, &t, &obs).unwrap())[0];
    assert!(l0 < 1e-3, "loss at the truth {l0}");

    // A wrong camera distance costs; the loss matches the formula for a pure pixel shift.
    let t_far = Tensor::from_vec(vec![0.1f32, 0.2, 3.5], (1, 3), &dev).unwrap();
    let l1 = vec1(&keypoint_loss_body(&body, &x, &betas, &t_far, &obs).unwrap())[0];
    assert!(l1 > 100.0, "loss {l1}");
    let shifted: Vec<f32> = kp.chunks_exact(3).flat_map(|k| [k[0] + 10.0, k[1]]).collect();
    let proj = Tensor::from_vec(shifted, (1, 25, 2), &dev).unwrap();
    let l = vec1(&keypoint_loss(&proj, &obs).unwrap())[0];
    let w = (1000.0f64 / 1920.0).powi(2);
    let want = 25.0 * w * (1e4 * 100.0 / (1e4 + 100.0));
    assert!((l - want).abs() < 1e-3 * want, "{l} vs {want}");

    // Garbage on a joint with confidence 0 changes nothing.
    kp[3 * 4] += 500.0;
    kp[3 * 4 + 2] = 0.0;
    let obs2 = KeypointObs::new(&kp, &[cam], &[(1920, 1080)], &dev, DType::F32).unwrap();
    let l2 = vec1(&keypoint_loss_body(&body, &x, &betas, &t, &obs2).unwrap())[0];
    assert!(l2 < 1e-3);

    // The loss has a gradient w.r.t. pose and camera.
    let vx = Var::from_tensor(&(x + 0.05).unwrap()).unwrap();
    let vt = Var::from_tensor(&t).unwrap();
    let l = keypoint_loss_body(&body, vx.as_tensor(), &betas, vt.as_tensor(), &obs).unwrap().sum_all().unwrap();
    let g = l.backward().unwrap();
    assert!(vec1(g.get(vx.as_tensor()).unwrap()).iter().any(|v| v.abs() > 1e-3));
    assert!(vec1(g.get(vt.as_tensor()).unwrap()).iter().any(|v| v.abs() > 1e-3));
}

#[test]
fn multiview_and_smoothness_losses() {
    let dev = Device::Cpu;
    // 2 people x 3 views; person 0 consistent (only the global orientation differs), person 1 not.
    let mut x = vec![0f64; 6 * 144];
    for v in 0..6 {
        for d in 0..6 {
            x[v * 144 + d] = (v * 7 + d) as f64; // global orientation: free per view
        }
        for d in 6..144 {
            x[v * 144 + d] = if v < 3 { 0.5 } else { 0.5 + (v - 3) as f64 * 0.1 };
        }
    }
    let l = vec1(&multiview_loss(&Tensor::from_vec(x, (6, 144), &dev).unwrap(), 3).unwrap());
    assert!(l[..3].iter().all(|&v| v.abs() < 1e-6), "{l:?}");
    // Person 1: views at offsets 0, 0.1, 0.2 over 138 dims; mean 0.1.
    let want = [0.01 * 138.0 * MULTIVIEW_SCALE, 0.0, 0.01 * 138.0 * MULTIVIEW_SCALE];
    for (a, b) in l[3..].iter().zip(want) {
        assert!((a - b).abs() < 1e-6 * (1.0 + b), "{a} vs {b}");
    }
    assert!(multiview_loss(&Tensor::zeros((5, 144), DType::F64, &dev).unwrap(), 3).is_err());

    // 2 tracks x 4 frames: a constant track is smooth; a ramp costs 144 * step^2 per frame.
    let mut y = vec![1f64; 8 * 144];
    for f in 0..4 {
        for d in 0..144 {
            y[(4 + f) * 144 + d] = f as f64 * 0.1;
        }
    }
    let s = vec1(&smoothness_loss(&Tensor::from_vec(y, (8, 144), &dev).unwrap(), 4).unwrap());
    assert!(s[..4].iter().all(|&v| v == 0.0));
    assert_eq!(s[4], 0.0);
    for v in &s[5..] {
        assert!((v - 144.0 * 0.01).abs() < 1e-9, "{v}");
    }
}
