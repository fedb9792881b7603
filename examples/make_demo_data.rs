//! Writes the bundled example of `rigfit demo` (examples/data/): a procedural walk of the default
//! body (no mocap, no licensed data), seen by one camera and by three calibrated cameras, as
//! OpenPose BODY_25 JSON per frame with detector-like faults (pixel noise, confidences, a joint
//! missing throughout, random drop-outs), the cameras, and the ground truth.
//!
//!     cargo run --example make_demo_data
//!
//! Deterministic: the same files every run.

use std::path::Path;

use rigfit::body::{BodyModel, BodyOutput};
use rigfit::diffusion::Rng;
use rigfit::geom::camera::{look_at, Pinhole};
use rigfit::geom::rot::{axis_angle_to_matrix, mat3_mul};
use rigfit::motion::{Motion, MotionCamera};

const FRAMES: usize = 30;
const FPS: f32 = 30.0;

/// A walk cycle (period 1 s): hips, knees, ankles, arm swing, a little torso twist and bob; the
/// root walks along +X while the body faces +X.
fn walk() -> Motion {
    let mut m = Motion::rest(FRAMES, 10, FPS);
    m.betas[0] = 0.5;
    m.betas[1] = -0.3;
    let aa = |v: [f32; 3]| axis_angle_to_matrix(&v);
    for f in 0..FRAMES {
        let ph = 2.0 * std::f32::consts::PI * f as f32 / FPS;
        let (s, c) = ph.sin_cos();
        let r = &mut m.rotations[f * 24..(f + 1) * 24];
        r[0] = mat3_mul(&aa([0.0, std::f32::consts::FRAC_PI_2, 0.0]), &aa([0.05, 0.08 * s, 0.0])); // face +X
        r[1] = aa([-0.45 * s, 0.0, 0.03]); // left hip
        r[2] = aa([0.45 * s, 0.0, -0.03]); // right hip
        r[4] = aa([0.55 * (0.5 - 0.5 * (ph + 1.2).sin()).max(0.05), 0.0, 0.0]); // left knee
        r[5] = aa([0.55 * (0.5 + 0.5 * (ph + 1.2).sin()).max(0.05), 0.0, 0.0]); // right knee
        r[7] = aa([0.15 * c, 0.0, 0.0]);
        r[8] = aa([-0.15 * c, 0.0, 0.0]);
        r[3] = aa([0.05, -0.06 * s, 0.0]);
        r[9] = aa([0.0, -0.05 * s, 0.0]);
        r[15] = aa([-0.1, 0.05 * s, 0.0]);
        r[16] = aa([0.4 * s, 0.0, -1.2]); // left shoulder: arm down, swinging against the left leg
        r[17] = aa([-0.4 * s, 0.0, 1.2]);
        r[18] = aa([0.0, -0.3 - 0.2 * (0.5 + 0.5 * s), 0.0]); // elbows
        r[19] = aa([0.0, 0.3 + 0.2 * (0.5 - 0.5 * s), 0.0]);
        m.translations[f] = [1.3 * f as f32 / FPS - 0.65, 0.02 * (2.0 * ph).cos(), 0.0];
    }
    m
}

fn cam(name: &str, pos: [f32; 3], fov_deg: f32, w: u32, h: u32) -> MotionCamera {
    let k = Pinhole::from_fov(fov_deg, w as f32, h as f32).unwrap();
    MotionCamera::fixed(name, k, w, h, look_at(pos, [0.0, -0.2, 0.0]), pos)
}

/// OpenPose JSON of one person.
fn openpose(kp: &[f32]) -> String {
    let v: Vec<String> = kp.iter().map(|x| format!("{x:.3}")).collect();
    format!("{{\"version\":1.3,\"people\":[{{\"person_id\":[-1],\"pose_keypoints_2d\":[{}],\"face_keypoints_2d\":[],\"hand_left_keypoints_2d\":[],\"hand_right_keypoints_2d\":[],\"pose_keypoints_3d\":[],\"face_keypoints_3d\":[],\"hand_left_keypoints_3d\":[],\"hand_right_keypoints_3d\":[]}}]}}\n", v.join(","))
}

/// Writes per-frame OpenPose files of `m` seen by camera `ci` into `dir`.
fn write_view(m: &Motion, model: &BodyModel, ci: usize, dir: &Path, rng: &mut Rng) {
    std::fs::create_dir_all(dir).unwrap();
    let mut out = BodyOutput::default();
    m.forward(model, 0..m.num_frames(), false, &mut out).unwrap();
    let cam = &m.cameras[ci];
    for f in 0..m.num_frames() {
        let mut kp = Vec::with_capacity(75);
        for (k, p) in out.keypoints[f * 75..(f + 1) * 75].chunks_exact(3).enumerate() {
            let uv = cam.project(f, [p[0], p[1], p[2]]).unwrap();
            let (n0, n1) = (2.0 * rng.normal() as f32, 2.0 * rng.normal() as f32);
            let conf = (rng.uniform_in(0.55, 0.95) as f32).min(1.0);
            // REar (17) is never detected (seen from the other side); 3% random drop-outs.
            let missing = k == 17 || rng.uniform() < 0.03;
            if missing || uv[0] < 0.0 || uv[1] < 0.0 || uv[0] >= cam.width as f32 || uv[1] >= cam.height as f32 {
                kp.extend_from_slice(&[0.0, 0.0, 0.0]);
            } else {
                kp.extend_from_slice(&[uv[0] + n0, uv[1] + n1, conf]);
            }
        }
        std::fs::write(dir.join(format!("walk_{f:012}_keypoints.json")), openpose(&kp)).unwrap();
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    let model = BodyModel::default_body().unwrap();
    let mut rng = Rng::new(2026);
    // One phone camera (about 70 degrees, 1080p landscape) 4 m away, slightly from the side.
    let mut one = walk();
    one.cameras = vec![cam("camera", [1.2, 0.3, 4.2], 70.0, 1920, 1080)];
    let d = root.join("walk_1view");
    let _ = std::fs::remove_dir_all(&d);
    write_view(&one, &model, 0, &d.join("openpose"), &mut rng);
    one.save_json(&d.join("truth.json")).unwrap();
    // Three calibrated cameras around the walk.
    let mut three = walk();
    three.cameras = vec![
        cam("front", [0.5, 0.4, 4.5], 60.0, 1280, 720),
        cam("side", [5.0, 0.8, 0.8], 50.0, 1280, 720),
        cam("back", [-3.0, 1.2, -3.5], 65.0, 1280, 720),
    ];
    let d = root.join("walk_3views");
    let _ = std::fs::remove_dir_all(&d);
    for (i, c) in three.cameras.clone().iter().enumerate() {
        write_view(&three, &model, i, &d.join(&c.name), &mut rng);
    }
    std::fs::write(d.join("calibration.json"), serde_json::to_string_pretty(&three.cameras).unwrap()).unwrap();
    three.save_json(&d.join("truth.json")).unwrap();
    println!("wrote {}", root.display());
}
