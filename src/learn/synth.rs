//! Synthetic training and evaluation samples: a mocap pose seen by a random camera, with
//! detector-like 2D keypoints.
//!
//! One sample: a pose from a pose set (local rotations, SMPL order), optionally mirrored left to
//! right, turned to a random heading about the vertical axis, given a random body shape from the
//! body model's shape space, and seen by a random pinhole camera (image size, focal length from
//! phone-wide to telephoto, tilt, roll, distance such that the person covers a random fraction of
//! the image height, the person anywhere in the frame). The camera frame is OpenCV's (x right,
//! y down, z forward), as ScoreHMR's: the sample's 6D pose `x` has its global orientation in that
//! frame, and the body's points in the camera frame are `forward(x, betas) + cam_t`.
//!
//! The observed BODY_25 keypoints carry the faults of real detectors: pixel noise scaled by the
//! person's size, random confidences (noisier joints get lower ones), dropped joints, COCO-style
//! inputs (no Neck, MidHip or feet: ScoreHMR's COCO-to-BODY_25 map leaves them at 0), occasional
//! left/right swaps of a limb, and joints outside the image cut off (confidence 0).

use crate::body::{BodyModel, BodyOutput, NUM_BODY25, NUM_JOINTS};
use crate::diffusion::Rng;
use crate::error::{Error, Result};
use crate::geom::camera::Pinhole;
use crate::geom::rot::{axis_angle_to_matrix, mat3_mul, matrix_to_rot6d};

/// Pose dimension: 24 joints x 6D (ScoreHMR base.yaml POSE_DIM 144).
pub const POSE_DIM: usize = NUM_JOINTS * 6;

/// SMPL joints and their mirror images (left <-> right).
pub const SMPL_MIRROR: [usize; NUM_JOINTS] = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22];

/// BODY_25 keypoints and their mirror images.
pub const BODY25_MIRROR: [usize; NUM_BODY25] = [0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11, 16, 15, 18, 17, 22, 23, 24, 19, 20, 21];

/// BODY_25 slots a COCO-17 detector cannot fill (Neck, MidHip, the six foot points).
pub const COCO_MISSING: [usize; 8] = [1, 8, 19, 20, 21, 22, 23, 24];

/// Pairs of BODY_25 slots a detector swaps (elbows, wrists, knees, ankles, shoulders, hips).
const SWAP_PAIRS: [(usize, usize); 6] = [(3, 6), (4, 7), (10, 13), (11, 14), (2, 5), (9, 12)];

/// Ranges of the random scene. Defaults documented per field.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SynthConfig {
    /// Image sizes (W, H) drawn uniformly: landscape and portrait video, square photos.
    pub image_sizes: Vec<(u32, u32)>,
    /// Horizontal field of view in degrees of the longer image side: 8 (telephoto) to 80
    /// (phone main camera about 70, wide 80).
    pub fov_deg: (f32, f32),
    /// Person height (1.7 m nominal) as a fraction of the image height.
    pub person_frac: (f32, f32),
    /// Camera pitch in degrees (positive: looking down).
    pub tilt_deg: (f32, f32),
    /// Camera roll in degrees.
    pub roll_deg: (f32, f32),
    /// Probability that the pelvis lands near or past the image border (partly cut off).
    pub p_border: f32,
    /// Standard deviation of the shape coefficients (the default body's units are one standard
    /// deviation per trait).
    pub beta_std: f32,
    /// Pixel noise: standard deviation as a fraction of the person's 2D box height, drawn per sample.
    pub noise_frac: (f32, f32),
    /// Probability of dropping each keypoint.
    pub p_drop: f32,
    /// Probability that a sample is COCO-style (no Neck, MidHip, feet).
    pub p_coco: f32,
    /// Probability that a keypoint is a low-confidence outlier (4x noise, confidence 0.05-0.3).
    pub p_outlier: f32,
    /// Probability that a sample has one left/right pair swapped.
    pub p_swap: f32,
    /// Mirror poses left to right with probability 1/2.
    pub mirror: bool,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            image_sizes: vec![(1920, 1080), (1080, 1920), (1280, 720), (1000, 1000), (4032, 3024), (3024, 4032)],
            fov_deg: (8.0, 80.0),
            person_frac: (0.35, 0.95),
            tilt_deg: (-20.0, 35.0),
            roll_deg: (-6.0, 6.0),
            p_border: 0.1,
            beta_std: 1.0,
            noise_frac: (0.0, 0.015),
            p_drop: 0.04,
            p_coco: 0.35,
            p_outlier: 0.04,
            p_swap: 0.03,
            mirror: true,
        }
    }
}

impl SynthConfig {
    /// Clean observations: no noise, drops, swaps or outliers, every joint confidence 1 (inside
    /// the image). For tests and for measuring what the faults cost.
    pub fn clean() -> Self {
        Self { noise_frac: (0.0, 0.0), p_drop: 0.0, p_coco: 0.0, p_outlier: 0.0, p_swap: 0.0, p_border: 0.0, ..Self::default() }
    }
}

/// One synthetic observation with its ground truth.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Ground-truth pose `[144]`: 24 x 6D (ScoreHMR layout), global orientation in the camera frame.
    pub x: Vec<f32>,
    /// Ground-truth local rotations `[24, 3, 3]` (camera-frame global orientation).
    pub rotations: Vec<f32>,
    /// Shape `[S]`.
    pub betas: Vec<f32>,
    /// Camera translation `[3]`: camera-frame points are body points + `cam_t`.
    pub cam_t: [f32; 3],
    pub camera: Pinhole,
    pub image_size: (u32, u32),
    /// Observed BODY_25 keypoints `[25, 3]`: x px, y px, confidence (0 = missing).
    pub keypoints: Vec<f32>,
    /// Ground-truth SMPL joints in the camera frame `[24, 3]`.
    pub joints: Vec<f32>,
    /// Ground-truth BODY_25 points in the camera frame `[25, 3]`.
    pub body25: Vec<f32>,
}

/// Draws samples from a pose set. Reuses its buffers between calls.
pub struct Generator<'a> {
    model: &'a BodyModel,
    pub config: SynthConfig,
    out: BodyOutput,
}

fn rot_x(a: f32) -> [f32; 9] {
    axis_angle_to_matrix(&[a, 0.0, 0.0])
}

/// Mirrors local rotations `[24 * 9]` left to right (reflection x -> -x): joint j takes the
/// rotation of its mirror joint, conjugated by diag(-1, 1, 1).
pub fn mirror_pose(rot: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; NUM_JOINTS * 9];
    for j in 0..NUM_JOINTS {
        let s: &[f32; 9] = rot[SMPL_MIRROR[j] * 9..SMPL_MIRROR[j] * 9 + 9].try_into().expect("3x3");
        out[j * 9..j * 9 + 9].copy_from_slice(&mirror_rotation(s));
    }
    out
}

/// The mirror image of a rotation under the reflection x -> -x: `M R M` with
/// `M = diag(-1, 1, 1)` (entries (r, c) flip sign when exactly one of r, c is 0).
pub fn mirror_rotation(r: &[f32; 9]) -> [f32; 9] {
    let mut o = *r;
    for a in 0..3 {
        for b in 0..3 {
            if (a == 0) != (b == 0) {
                o[a * 3 + b] = -o[a * 3 + b];
            }
        }
    }
    o
}

impl<'a> Generator<'a> {
    pub fn new(model: &'a BodyModel, config: SynthConfig) -> Self {
        Self { model, config, out: BodyOutput::default() }
    }

    /// One sample per pose in `poses` (each `[24 * 9]` local rotations in a Y-up world, SMPL
    /// order), drawn with `rng`. Deterministic for a seed.
    pub fn generate(&mut self, poses: &[&[f32]], rng: &mut Rng) -> Result<Vec<Sample>> {
        let b = poses.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        let cfg = self.config.clone();
        let s = self.model.num_betas();
        let mut rot = Vec::with_capacity(b * NUM_JOINTS * 9);
        let mut betas = Vec::with_capacity(b * s);
        let mut cams = Vec::with_capacity(b);
        for p in poses {
            if p.len() != NUM_JOINTS * 9 {
                return Err(Error::Input(format!("synth: a pose has {} values, expected 24 x 9", p.len())));
            }
            let mut r = if cfg.mirror && rng.uniform() < 0.5 { mirror_pose(p) } else { p.to_vec() };
            // World -> OpenCV camera: heading about +Y, the Y-up -> y-down flip, tilt, roll.
            let heading = axis_angle_to_matrix(&[0.0, rng.uniform_in(-std::f64::consts::PI, std::f64::consts::PI) as f32, 0.0]);
            let tilt = rng.uniform_in(cfg.tilt_deg.0 as f64, cfg.tilt_deg.1 as f64).to_radians() as f32;
            let roll = rng.uniform_in(cfg.roll_deg.0 as f64, cfg.roll_deg.1 as f64).to_radians() as f32;
            let flip = [1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0];
            let r_cam = mat3_mul(&axis_angle_to_matrix(&[0.0, 0.0, roll]), &mat3_mul(&rot_x(-tilt), &flip));
            let g: [f32; 9] = r[0..9].try_into().unwrap();
            let g = mat3_mul(&r_cam, &mat3_mul(&heading, &g));
            r[0..9].copy_from_slice(&g);
            rot.extend_from_slice(&r);
            for _ in 0..s {
                betas.push((rng.normal() * cfg.beta_std as f64) as f32);
            }
            let (w, h) = cfg.image_sizes[rng.below(cfg.image_sizes.len() as u64) as usize];
            let fov = rng.uniform_in(cfg.fov_deg.0 as f64, cfg.fov_deg.1 as f64) as f32;
            let long = w.max(h) as f32;
            let f = 0.5 * long / (0.5 * fov.to_radians()).tan();
            cams.push((Pinhole::from_focal(f, w as f32, h as f32)?, (w, h)));
        }
        let zeros = vec![0.0f32; b * 3];
        self.model.forward_joints(&betas, &rot, &zeros, &mut self.out)?;
        let mut samples = Vec::with_capacity(b);
        for i in 0..b {
            let (cam, (w, h)) = cams[i];
            let joints = &self.out.joints[i * 72..(i + 1) * 72];
            let kp = &self.out.keypoints[i * 75..(i + 1) * 75];
            // Depth from the wanted person height in pixels; the pelvis anywhere in the frame.
            let frac = rng.uniform_in(cfg.person_frac.0 as f64, cfg.person_frac.1 as f64) as f32;
            let z = cam.fy * 1.7 / (frac * h as f32); // refined below if the body leaves the frame
            // The pelvis pixel: uniform over the positions that keep the whole body in the frame
            // (weak perspective at depth z, then checked in full perspective: a body that still
            // leaves the frame is moved back 10% and drawn again), or anywhere (partly cut off)
            // with p_border.
            let (mut lo, mut hi) = ([0.0f32; 2], [0.0f32; 2]);
            for p in kp.chunks_exact(3) {
                for a in 0..2 {
                    lo[a] = lo[a].min(p[a] - joints[a]);
                    hi[a] = hi[a].max(p[a] - joints[a]);
                }
            }
            let range = |lo: f32, hi: f32, size: f32| -> (f64, f64) {
                let (a, b) = (-lo + 0.02 * size, size - hi - 0.02 * size);
                if a < b { (a as f64, b as f64) } else { (0.5 * size as f64, 0.5 * size as f64) }
            };
            let border = rng.uniform() < cfg.p_border as f64;
            let mut z = z;
            let (u, v) = loop {
                let (u, v) = if border {
                    (rng.uniform_in(-0.05, 1.05) * w as f64, rng.uniform_in(0.0, 1.0) * h as f64)
                } else {
                    let (ua, ub) = range(lo[0] * cam.fx / z, hi[0] * cam.fx / z, w as f32);
                    let (va, vb) = range(lo[1] * cam.fy / z, hi[1] * cam.fy / z, h as f32);
                    (rng.uniform_in(ua, ub), rng.uniform_in(va, vb))
                };
                let t = cam.unproject(&[u as f32, v as f32], z);
                let inside = kp.chunks_exact(3).all(|p| {
                    let q = [p[0] - joints[0] + t[0], p[1] - joints[1] + t[1], p[2] - joints[2] + t[2]];
                    let uv = if q[2] > 1e-3 { cam.project_point(&q) } else { [f32::NAN; 2] };
                    uv[0] >= 0.0 && uv[1] >= 0.0 && uv[0] < w as f32 && uv[1] < h as f32
                });
                if border || inside || z > 1e3 {
                    break (u, v);
                }
                z *= 1.1;
            };
            let target = cam.unproject(&[u as f32, v as f32], z);
            let cam_t = [target[0] - joints[0], target[1] - joints[1], target[2] - joints[2]];
            let body25: Vec<f32> = kp.chunks_exact(3).flat_map(|p| [p[0] + cam_t[0], p[1] + cam_t[1], p[2] + cam_t[2]]).collect();
            let joints_cam: Vec<f32> = joints.chunks_exact(3).flat_map(|p| [p[0] + cam_t[0], p[1] + cam_t[1], p[2] + cam_t[2]]).collect();
            let keypoints = observe(&body25, &cam, (w, h), &cfg, rng);
            let r = &rot[i * 216..(i + 1) * 216];
            let x: Vec<f32> = r.chunks_exact(9).flat_map(|m| matrix_to_rot6d(&<[f32; 9]>::try_from(m).unwrap())).collect();
            samples.push(Sample {
                x,
                rotations: r.to_vec(),
                betas: betas[i * s..(i + 1) * s].to_vec(),
                cam_t,
                camera: cam,
                image_size: (w, h),
                keypoints,
                joints: joints_cam,
                body25,
            });
        }
        Ok(samples)
    }
}

/// Projects camera-frame BODY_25 points `[25, 3]` and applies the detector faults of `cfg`;
/// returns `[25, 3]` (x px, y px, confidence).
pub fn observe(points: &[f32], cam: &Pinhole, (w, h): (u32, u32), cfg: &SynthConfig, rng: &mut Rng) -> Vec<f32> {
    let mut kp = vec![0.0f32; NUM_BODY25 * 3];
    let (mut lo, mut hi) = ([f32::MAX; 2], [f32::MIN; 2]);
    for k in 0..NUM_BODY25 {
        let p = [points[3 * k], points[3 * k + 1], points[3 * k + 2]];
        let uv = if p[2] > 1e-3 { cam.project_point(&p) } else { [f32::NAN; 2] };
        kp[3 * k] = uv[0];
        kp[3 * k + 1] = uv[1];
        kp[3 * k + 2] = 1.0;
        for a in 0..2 {
            lo[a] = lo[a].min(uv[a]);
            hi[a] = hi[a].max(uv[a]);
        }
    }
    let size = (hi[1] - lo[1]).max(hi[0] - lo[0]).max(1.0);
    let sigma = rng.uniform_in(cfg.noise_frac.0 as f64, cfg.noise_frac.1 as f64) as f32 * size;
    let coco = rng.uniform() < cfg.p_coco as f64;
    for k in 0..NUM_BODY25 {
        let outlier = rng.uniform() < cfg.p_outlier as f64;
        let s = if outlier { 4.0 * sigma } else { sigma };
        let (n0, n1) = (rng.normal() as f32 * s, rng.normal() as f32 * s);
        kp[3 * k] += n0;
        kp[3 * k + 1] += n1;
        let noisy = cfg.noise_frac.1 > 0.0;
        kp[3 * k + 2] = if outlier {
            rng.uniform_in(0.05, 0.3) as f32
        } else if noisy {
            // Confidence falls with this joint's error relative to the person's size.
            let e = (n0 * n0 + n1 * n1).sqrt() / size;
            (rng.uniform_in(0.6, 1.0) as f32 - 4.0 * e).clamp(0.1, 1.0)
        } else {
            1.0
        };
        if rng.uniform() < cfg.p_drop as f64 {
            kp[3 * k + 2] = 0.0;
        }
    }
    if coco {
        for &k in &COCO_MISSING {
            kp[3 * k + 2] = 0.0;
        }
    }
    if rng.uniform() < cfg.p_swap as f64 {
        let (a, b) = SWAP_PAIRS[rng.below(SWAP_PAIRS.len() as u64) as usize];
        for c in 0..2 {
            kp.swap(3 * a + c, 3 * b + c);
        }
    }
    for k in 0..NUM_BODY25 {
        let (u, v) = (kp[3 * k], kp[3 * k + 1]);
        let inside = u.is_finite() && v.is_finite() && u >= 0.0 && v >= 0.0 && u < w as f32 && v < h as f32;
        if !inside || kp[3 * k + 2] <= 0.0 {
            kp[3 * k] = 0.0;
            kp[3 * k + 1] = 0.0;
            kp[3 * k + 2] = 0.0;
        }
    }
    kp
}
