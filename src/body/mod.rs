//! The body model: SMPL-layout data and its forward pass.
//!
//! One definition ([`BodyModel`], built from [`BodyArrays`]) and two paths over it:
//! - [`cpu`]: a fast f32 forward (batched, rayon, no autograd);
//! - [`diff`]: a differentiable candle forward (gradients w.r.t. 6D rotations, betas, translation).
//!
//! The math is smplx's `lbs()` exactly (data_eval.md section 1.4): shape blend, joint regression
//! on the shaped mesh, pose feature `R - I` over the 23 body joints, kinematic chain, LBS, then
//! translation. Units are metres, Y up.

pub mod cpu;
#[cfg(target_arch = "x86_64")]
mod cpu_x86;
pub mod diff;
mod kin;
mod load;
pub mod mannequin;

use crate::error::{Error, Result};

pub use cpu::{BodyOutput, Workspace};

/// Number of joints of the SMPL kinematic tree.
pub const NUM_JOINTS: usize = 24;
/// Number of pose-corrective features: 23 body joints x 9 entries of `R - I`.
pub const NUM_POSE_FEATURES: usize = 207;
/// Number of OpenPose BODY_25 keypoints.
pub const NUM_BODY25: usize = 25;
/// Most shape coefficients a model may have (SMPL 1.1 has 300, SMPL-X 400).
pub const MAX_BETAS: usize = 512;
/// Number of landmark vertices for the BODY_25 extras (face and feet).
pub const NUM_LANDMARKS: usize = 11;

/// SMPL joint names in kinematic order (smplx `joint_names.py`).
pub const JOINT_NAMES: [&str; NUM_JOINTS] = [
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
];

/// SMPL kinematic tree (parent of each joint; -1 for the root), smplx `kintree_table[0]`.
pub const SMPL_PARENTS: [i32; NUM_JOINTS] = [
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
];

/// Names of the landmark vertices, in smplx `VertexJointSelector` order (face then feet).
pub const LANDMARK_NAMES: [&str; NUM_LANDMARKS] = [
    "nose",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
];

/// The landmark vertex ids of the official SMPL mesh (smplx `vertex_ids['smplh']`), used when
/// an SMPL file (6890 vertices) carries no `landmarks` array.
pub const SMPL_LANDMARKS: [u32; NUM_LANDMARKS] =
    [332, 6260, 2800, 4071, 583, 3216, 3226, 3387, 6617, 6624, 6787];

/// BODY_25 keypoint names (OpenPose `POSE_BODY_25_BODY_PARTS`).
pub const BODY25_NAMES: [&str; NUM_BODY25] = [
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist", "MidHip",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
    "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
];

/// BODY_25 keypoint k is point `SMPL_TO_BODY25[k]` of the 35 points
/// `[24 joints ; 11 landmarks]` (ScoreHMR / ProHMR / SPIN `smpl_to_openpose`).
pub const SMPL_TO_BODY25: [usize; NUM_BODY25] = [
    24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
];

/// The raw arrays of a body model, in the SMPL layout (all row-major, f32).
#[derive(Clone, Debug)]
pub struct BodyArrays {
    /// A human-readable name ("smpl_neutral", "rigfit_default").
    pub name: String,
    /// Rest-pose template vertices `[V, 3]`.
    pub v_template: Vec<f32>,
    /// Shape blend shapes `[V, 3, S]`.
    pub shapedirs: Vec<f32>,
    /// Number of shape coefficients `S`.
    pub num_betas: usize,
    /// Pose blend shapes in the smplx layout `[207, V*3]` (column `v*3 + k`). May be all zero.
    pub posedirs: Vec<f32>,
    /// Joint regressor `[24, V]` (dense).
    pub j_regressor: Vec<f32>,
    /// Skinning weights `[V, 24]`, rows summing to 1.
    pub weights: Vec<f32>,
    /// Parent of each joint `[24]`; -1 for the root; `parents[i] < i`.
    pub parents: [i32; NUM_JOINTS],
    /// Triangles `[F, 3]`.
    pub faces: Vec<[u32; 3]>,
    /// Landmark vertex ids in [`LANDMARK_NAMES`] order.
    pub landmarks: [u32; NUM_LANDMARKS],
}

impl BodyArrays {
    /// Number of vertices `V`.
    pub fn num_verts(&self) -> usize {
        self.v_template.len() / 3
    }

    /// Checks every shape, range and value; `origin` names the source in error messages.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let v = self.num_verts();
        let s = self.num_betas;
        let shape_err = |key: &str, found: Vec<usize>, expected: String| Error::BadShape {
            path: origin.to_string(),
            key: key.to_string(),
            found,
            expected,
        };
        if v == 0 || self.v_template.len() % 3 != 0 {
            return Err(shape_err(
                "v_template",
                vec![self.v_template.len()],
                "[V, 3] with V > 0".into(),
            ));
        }
        if s > MAX_BETAS {
            return Err(shape_err(
                "shapedirs",
                vec![v, 3, s],
                format!("at most {MAX_BETAS} shape coefficients (truncate with --num-betas)"),
            ));
        }
        if self.shapedirs.len() != v * 3 * s {
            return Err(shape_err(
                "shapedirs",
                vec![self.shapedirs.len()],
                format!("[{v}, 3, {s}] = {} values", v * 3 * s),
            ));
        }
        if self.posedirs.len() != NUM_POSE_FEATURES * v * 3 {
            return Err(shape_err(
                "posedirs",
                vec![self.posedirs.len()],
                format!("[207, {}] = {} values", v * 3, NUM_POSE_FEATURES * v * 3),
            ));
        }
        if self.j_regressor.len() != NUM_JOINTS * v {
            return Err(shape_err(
                "J_regressor",
                vec![self.j_regressor.len()],
                format!("[24, {v}]"),
            ));
        }
        if self.weights.len() != v * NUM_JOINTS {
            return Err(shape_err(
                "weights",
                vec![self.weights.len()],
                format!("[{v}, 24]"),
            ));
        }
        let bad = |key: &str, what: String| Error::BadValue {
            path: origin.to_string(),
            key: key.to_string(),
            what,
        };
        for (key, arr) in [
            ("v_template", &self.v_template),
            ("shapedirs", &self.shapedirs),
            ("posedirs", &self.posedirs),
            ("J_regressor", &self.j_regressor),
            ("weights", &self.weights),
        ] {
            if let Some(i) = arr.iter().position(|x| !x.is_finite()) {
                return Err(bad(key, format!("non-finite value {} at flat index {i}", arr[i])));
            }
        }
        if self.parents[0] != -1 {
            return Err(bad("kintree_table", format!("root parent is {}, expected -1", self.parents[0])));
        }
        for (i, &p) in self.parents.iter().enumerate().skip(1) {
            if p < 0 || p as usize >= i {
                return Err(bad(
                    "kintree_table",
                    format!("joint {i} has parent {p}; parents must precede their children"),
                ));
            }
        }
        for (vi, row) in self.weights.chunks_exact(NUM_JOINTS).enumerate() {
            let sum: f32 = row.iter().sum();
            if (sum - 1.0).abs() > 1e-3 || row.iter().any(|&w| w < -1e-6) {
                return Err(bad(
                    "weights",
                    format!("row {vi} sums to {sum} (expected 1, non-negative weights)"),
                ));
            }
        }
        for (fi, f) in self.faces.iter().enumerate() {
            if f.iter().any(|&i| i as usize >= v) {
                return Err(bad("f", format!("face {fi} = {f:?} indexes past {v} vertices")));
            }
        }
        for (li, &l) in self.landmarks.iter().enumerate() {
            if l as usize >= v {
                return Err(bad(
                    "landmarks",
                    format!("{} = vertex {l}, past {v} vertices", LANDMARK_NAMES[li]),
                ));
            }
        }
        Ok(())
    }

    /// Keeps only the first `n` shape coefficients (as smplx's `num_betas`).
    pub fn truncate_betas(&mut self, n: usize) {
        if n >= self.num_betas {
            return;
        }
        let s = self.num_betas;
        self.shapedirs = self
            .shapedirs
            .chunks_exact(s)
            .flat_map(|row| row[..n].iter().copied())
            .collect();
        self.num_betas = n;
    }
}

/// A validated body model with the derived tables both forward paths use.
///
/// Derived, exactly linear, tables (computed once here, used by both paths):
/// - `j_template = J_regressor @ v_template` `[24, 3]` and `j_shapedirs = J_regressor @ shapedirs`
///   `[24, 3, S]` (in f64): the joints of the shaped mesh are `j_template + j_shapedirs . betas`;
/// - skinning weights in compressed rows (only non-zero weights);
/// - whether `posedirs` is all zero (then the pose blend is skipped).
#[derive(Clone, Debug)]
pub struct BodyModel {
    pub(crate) a: BodyArrays,
    /// Joint regression, chain and landmarks in f64 (shared with the differentiable kernel).
    pub(crate) kin: std::sync::Arc<kin::JointsKernel>,
    /// CSR skinning weights: per vertex `w_ptr[v]..w_ptr[v+1]` indexes `w_joint` / `w_val`.
    pub(crate) w_ptr: Vec<u32>,
    pub(crate) w_joint: Vec<u8>,
    pub(crate) w_val: Vec<f32>,
    pub(crate) has_posedirs: bool,
    /// Stacked per-row coefficients for the SIMD kernel, built on first use.
    #[cfg(target_arch = "x86_64")]
    pub(crate) stacked: std::sync::OnceLock<std::sync::Arc<cpu_x86::Stacked>>,
    /// Whether the CPU forward may use the SIMD kernel (when the CPU has it).
    pub(crate) simd: bool,
}

impl BodyModel {
    /// Builds a model from raw arrays after validating them.
    pub fn new(arrays: BodyArrays) -> Result<Self> {
        arrays.validate(&arrays.name)?;
        let v = arrays.num_verts();
        let mut w_ptr = Vec::with_capacity(v + 1);
        let mut w_joint = Vec::new();
        let mut w_val = Vec::new();
        w_ptr.push(0u32);
        for row in arrays.weights.chunks_exact(NUM_JOINTS) {
            for (j, &w) in row.iter().enumerate() {
                if w != 0.0 {
                    w_joint.push(j as u8);
                    w_val.push(w);
                }
            }
            w_ptr.push(w_joint.len() as u32);
        }
        let has_posedirs = arrays.posedirs.iter().any(|&x| x != 0.0);
        let kin = std::sync::Arc::new(kin::JointsKernel::new(&arrays, has_posedirs));
        Ok(Self {
            kin,
            #[cfg(target_arch = "x86_64")]
            stacked: std::sync::OnceLock::new(),
            simd: true,
            w_ptr,
            w_joint,
            w_val,
            has_posedirs,
            a: arrays,
        })
    }

    /// Loads a model from an `.npz` in the smplx/SMPL naming (see the README's "Your own SMPL
    /// file"): `v_template`, `shapedirs`, `posedirs`, `J_regressor`, `weights`, `kintree_table`
    /// (or `parents`), `f`, and optionally `landmarks`.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::new(load::read_npz(path.as_ref())?)
    }

    /// Loads a model from the bytes of an `.npz` file (`origin` names it in errors).
    pub fn from_npz_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        Self::new(load::read_npz_bytes(bytes, origin)?)
    }

    /// The license-free default body embedded in the library (models/default_body.npz).
    pub fn default_body() -> Result<Self> {
        Self::from_npz_bytes(DEFAULT_BODY_NPZ, "embedded models/default_body.npz")
    }

    /// The raw arrays.
    pub fn arrays(&self) -> &BodyArrays {
        &self.a
    }
    pub fn num_verts(&self) -> usize {
        self.a.num_verts()
    }
    pub fn num_betas(&self) -> usize {
        self.a.num_betas
    }
    pub fn faces(&self) -> &[[u32; 3]] {
        &self.a.faces
    }
    pub fn parents(&self) -> &[i32; NUM_JOINTS] {
        &self.a.parents
    }
    pub fn name(&self) -> &str {
        &self.a.name
    }
    /// Enables or disables the SIMD kernel of the CPU forward (on by default; used where the
    /// CPU supports it). Both give the same result; tests and benchmarks compare them.
    pub fn with_simd(mut self, enabled: bool) -> Self {
        self.simd = enabled;
        self
    }

    /// Whether the model has non-zero pose-corrective blend shapes.
    pub fn has_pose_correctives(&self) -> bool {
        self.has_posedirs
    }

    /// Rest-pose joints of a shaped body `[24, 3]` for `betas` `[S]` (fewer coefficients are
    /// zero-padded).
    pub fn rest_joints(&self, betas: &[f32]) -> Result<Vec<f32>> {
        let s = self.num_betas();
        if betas.len() > s {
            return Err(Error::Input(format!(
                "{} betas given, the model has {s}",
                betas.len()
            )));
        }
        let b: Vec<f64> = betas.iter().map(|&x| x as f64).collect();
        let eye: Vec<f64> = (0..NUM_JOINTS).flat_map(|_| [1., 0., 0., 0., 1., 0., 0., 0., 1.]).collect();
        let k = self.kin.kinematics(&b, &eye);
        Ok(k.jr.iter().flatten().map(|&x| x as f32).collect())
    }
}

/// The embedded default body (generated by `cargo run --release --example make_default_body`).
pub static DEFAULT_BODY_NPZ: &[u8] = include_bytes!("../../models/default_body.npz");
