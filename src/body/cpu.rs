//! The fast f32 CPU forward pass (batched, rayon, no autograd).
//!
//! Exactly smplx's `lbs()` (data_eval.md 1.4), organised for speed:
//! - the joints of the shaped mesh come from the precomputed linear tables
//!   `j_template + j_shapedirs . betas` (the same linear map as `J_regressor @ v_shaped`);
//! - the kinematic chain runs in f64 per sample (24 joints: negligible cost);
//! - the pose blend `pose_feature @ posedirs` is one GEMM over the batch, skipped when the model
//!   has no pose correctives;
//! - skinning applies `sum_j w_vj A_j` per vertex on the fly over the sparse weights, so the
//!   `[B, V, 4, 4]` tensor smplx materialises never exists.
//!
//! All buffers live in [`BodyOutput`] and are reused across calls: after the first call of a
//! given batch size, a forward allocates nothing.

use rayon::prelude::*;

use super::{BodyModel, MAX_BETAS, NUM_BODY25, NUM_JOINTS, NUM_LANDMARKS, NUM_POSE_FEATURES, SMPL_TO_BODY25};
use crate::error::{Error, Result};

/// Vertices per rayon task in skinning.
const SKIN_CHUNK: usize = 256;

/// Scratch buffers of a forward pass (kept between calls to avoid allocation).
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    /// Skinning transforms `[B, 24, 12]`: rows of the 3x4 matrix `[R^w | t - R^w J]`.
    transforms: Vec<f32>,
    /// Pose features `[B, 207]`: `R_i - I` for joints 1..23, row-major.
    pose_feat: Vec<f32>,
    /// Pose-corrective offsets `[B, V*3]`.
    pose_offsets: Vec<f32>,
    /// Posed landmark vertices `[B, 11, 3]` (joints-only path).
    landmarks: Vec<f32>,
    /// Inputs with samples in lanes for the SIMD kernel: features, betas, transforms, transl.
    lanes: [Vec<f32>; 4],
}

/// Output of a forward pass; reuse one across calls.
#[derive(Clone, Debug, Default)]
pub struct BodyOutput {
    /// Batch size of the last call.
    pub batch: usize,
    /// Posed vertices `[B, V, 3]` (empty after [`BodyModel::forward_joints`]).
    pub vertices: Vec<f32>,
    /// Posed SMPL joints `[B, 24, 3]`.
    pub joints: Vec<f32>,
    /// OpenPose BODY_25 keypoints `[B, 25, 3]`.
    pub keypoints: Vec<f32>,
    ws: Workspace,
}

fn resize(v: &mut Vec<f32>, n: usize) {
    if v.len() != n {
        v.resize(n, 0.0);
    }
}

impl BodyModel {
    /// Checks input lengths; returns (batch, number of betas given per sample).
    fn check_inputs(&self, betas: &[f32], rotmats: &[f32], transl: &[f32]) -> Result<(usize, usize)> {
        if transl.len() % 3 != 0 || transl.is_empty() {
            return Err(Error::Input(format!(
                "transl has {} values, expected [B, 3] with B >= 1",
                transl.len()
            )));
        }
        let b = transl.len() / 3;
        if rotmats.len() != b * NUM_JOINTS * 9 {
            return Err(Error::Input(format!(
                "rotmats has {} values, expected [B={b}, 24, 3, 3] = {}",
                rotmats.len(),
                b * NUM_JOINTS * 9
            )));
        }
        if betas.len() % b != 0 || betas.len() / b > self.num_betas() {
            return Err(Error::Input(format!(
                "betas has {} values, expected [B={b}, S] with S <= {}",
                betas.len(),
                self.num_betas()
            )));
        }
        Ok((b, betas.len() / b))
    }

    /// Kinematic chain and pose features for every sample: fills `joints` `[B,24,3]` (with
    /// translation), `transforms` `[B,24,12]` and `pose_feat` `[B,207]`.
    fn chain(
        &self,
        betas: &[f32],
        nb: usize,
        rotmats: &[f32],
        transl: &[f32],
        joints: &mut [f32],
        transforms: &mut [f32],
        pose_feat: &mut [f32],
    ) {
        let one = |b: usize, jo: &mut [f32], tr: &mut [f32], pf: &mut [f32]| {
            let mut beta = [0f64; MAX_BETAS];
            for (d, &x) in beta.iter_mut().zip(&betas[b * nb..(b + 1) * nb]) {
                *d = x as f64;
            }
            let rot: [f64; NUM_JOINTS * 9] = std::array::from_fn(|e| rotmats[b * NUM_JOINTS * 9 + e] as f64);
            let k = self.kin.kinematics(&beta[..nb], &rot);
            for i in 1..NUM_JOINTS {
                for e in 0..9 {
                    let eye = if e % 4 == 0 { 1.0 } else { 0.0 };
                    pf[(i - 1) * 9 + e] = (rot[i * 9 + e] - eye) as f32;
                }
            }
            let t = &transl[b * 3..b * 3 + 3];
            for i in 0..NUM_JOINTS {
                for row in 0..3 {
                    jo[i * 3 + row] = (k.gt[i][row] + t[row] as f64) as f32;
                    // A_i = [R^w | t^w - R^w J_i]
                    let g = &k.gr[i];
                    let rj: f64 = (0..3).map(|m| g[row * 3 + m] * k.jr[i][m]).sum();
                    let o = i * 12 + row * 4;
                    tr[o] = g[row * 3] as f32;
                    tr[o + 1] = g[row * 3 + 1] as f32;
                    tr[o + 2] = g[row * 3 + 2] as f32;
                    tr[o + 3] = (k.gt[i][row] - rj) as f32;
                }
            }
        };
        joints
            .par_chunks_mut(NUM_JOINTS * 3)
            .zip(transforms.par_chunks_mut(NUM_JOINTS * 12))
            .zip(pose_feat.par_chunks_mut(NUM_POSE_FEATURES))
            .enumerate()
            .with_min_len(8)
            .for_each(|(b, ((jo, tr), pf))| one(b, jo, tr, pf));
    }

    /// Position of vertex `v` after LBS (without translation), for one sample's `beta` `[S']`,
    /// pose-corrective `offset` of this vertex and skinning transforms `tr` `[24, 12]`.
    #[inline(always)]
    fn skin_vertex(&self, v: usize, beta: &[f32], offset: [f32; 3], tr: &[f32]) -> [f32; 3] {
        let s = self.num_betas();
        let mut p = [0f32; 3];
        for (k, pk) in p.iter_mut().enumerate() {
            let r = v * 3 + k;
            let sd = &self.a.shapedirs[r * s..r * s + beta.len()];
            let mut acc = self.a.v_template[r];
            for (a, c) in sd.iter().zip(beta) {
                acc += a * c;
            }
            *pk = acc + offset[k];
        }
        let mut t = [0f32; 12];
        for e in self.w_ptr[v] as usize..self.w_ptr[v + 1] as usize {
            let j = self.w_joint[e] as usize;
            let w = self.w_val[e];
            let a = &tr[j * 12..j * 12 + 12];
            for (te, ae) in t.iter_mut().zip(a) {
                *te += w * ae;
            }
        }
        [
            t[0] * p[0] + t[1] * p[1] + t[2] * p[2] + t[3],
            t[4] * p[0] + t[5] * p[1] + t[6] * p[2] + t[7],
            t[8] * p[0] + t[9] * p[1] + t[10] * p[2] + t[11],
        ]
    }

    /// Full forward pass: vertices, joints and BODY_25 keypoints for a batch.
    ///
    /// - `betas` `[B, S']` with `S' <= S` (missing coefficients are zero);
    /// - `rotmats` `[B, 24, 3, 3]` local joint rotations (row-major), global orient first;
    /// - `transl` `[B, 3]` root translation (added to every output, as smplx's `transl`).
    pub fn forward(&self, betas: &[f32], rotmats: &[f32], transl: &[f32], out: &mut BodyOutput) -> Result<()> {
        let (b, nb) = self.check_inputs(betas, rotmats, transl)?;
        let v = self.num_verts();
        out.batch = b;
        resize(&mut out.vertices, b * v * 3);
        resize(&mut out.joints, b * NUM_JOINTS * 3);
        resize(&mut out.keypoints, b * NUM_BODY25 * 3);
        let ws = &mut out.ws;
        resize(&mut ws.transforms, b * NUM_JOINTS * 12);
        resize(&mut ws.pose_feat, b * NUM_POSE_FEATURES);
        self.chain(betas, nb, rotmats, transl, &mut out.joints, &mut ws.transforms, &mut ws.pose_feat);

        #[cfg(target_arch = "x86_64")]
        if self.simd && super::cpu_x86::available() {
            self.skin_x86(betas, nb, transl, b, &mut out.vertices, ws);
            self.gather_keypoints(b, &out.joints, &out.vertices, &mut out.keypoints, false);
            return Ok(());
        }

        if self.has_posedirs {
            resize(&mut ws.pose_offsets, b * v * 3);
            pose_blend_gemm(&ws.pose_feat, &self.a.posedirs, &mut ws.pose_offsets, b, v * 3);
        } else {
            ws.pose_offsets.clear();
        }

        let (tr, offs) = (&ws.transforms, &ws.pose_offsets);
        out.vertices
            .par_chunks_mut(SKIN_CHUNK * 3)
            .enumerate()
            .for_each(|(ci, chunk)| {
                // Chunks run over the flattened (sample, vertex) index and may straddle samples.
                let first = ci * SKIN_CHUNK;
                for (k, o) in chunk.chunks_exact_mut(3).enumerate() {
                    let g = first + k;
                    let (bi, vi) = (g / v, g % v);
                    let offset = if offs.is_empty() {
                        [0.0; 3]
                    } else {
                        [offs[g * 3], offs[g * 3 + 1], offs[g * 3 + 2]]
                    };
                    let p = self.skin_vertex(
                        vi,
                        &betas[bi * nb..(bi + 1) * nb],
                        offset,
                        &tr[bi * NUM_JOINTS * 12..(bi + 1) * NUM_JOINTS * 12],
                    );
                    let t = &transl[bi * 3..bi * 3 + 3];
                    o[0] = p[0] + t[0];
                    o[1] = p[1] + t[1];
                    o[2] = p[2] + t[2];
                }
            });

        self.gather_keypoints(b, &out.joints, &out.vertices, &mut out.keypoints, false);
        Ok(())
    }

    /// BODY_25 keypoints `[B, 25, 3]` from joints `[B, 24, 3]` and either the full vertices
    /// `[B, V, 3]` or (`compact`) the landmark vertices only `[B, 11, 3]`.
    fn gather_keypoints(&self, b: usize, joints: &[f32], verts: &[f32], kp: &mut [f32], compact: bool) {
        let v = self.num_verts();
        for bi in 0..b {
            for (k, &src) in SMPL_TO_BODY25.iter().enumerate() {
                let p = if src < NUM_JOINTS {
                    &joints[(bi * NUM_JOINTS + src) * 3..(bi * NUM_JOINTS + src) * 3 + 3]
                } else if compact {
                    let l = src - NUM_JOINTS;
                    &verts[(bi * NUM_LANDMARKS + l) * 3..(bi * NUM_LANDMARKS + l) * 3 + 3]
                } else {
                    let lv = self.a.landmarks[src - NUM_JOINTS] as usize;
                    &verts[(bi * v + lv) * 3..(bi * v + lv) * 3 + 3]
                };
                let o = (bi * NUM_BODY25 + k) * 3;
                kp[o..o + 3].copy_from_slice(p);
            }
        }
    }

    /// The fused AVX-512 shape blend + pose blend + skinning (see `cpu_x86`).
    #[cfg(target_arch = "x86_64")]
    fn skin_x86(&self, betas: &[f32], nb: usize, transl: &[f32], b: usize, verts: &mut [f32], ws: &mut Workspace) {
        use super::cpu_x86::{tile, to_lanes, LaneInputs, OutPtr, Stacked, L, TV};
        let v = self.num_verts();
        let st: &Stacked = self.stacked.get_or_init(|| std::sync::Arc::new(Stacked::new(self)));
        let (k, s) = (st.k, self.num_betas());
        let nsb = b.div_ceil(L);
        let [feat, tl, trl, _] = &mut ws.lanes;
        resize(feat, nsb * k * L);
        feat.fill(0.0);
        let np = k - s - 1;
        if np > 0 {
            to_lanes(&ws.pose_feat, b, NUM_POSE_FEATURES, feat, k, 0);
        }
        to_lanes(betas, b, nb, feat, k, np);
        for bi in 0..b {
            feat[((bi / L) * k + k - 1) * L + bi % L] = 1.0;
        }
        resize(tl, nsb * NUM_JOINTS * 12 * L);
        to_lanes(&ws.transforms, b, NUM_JOINTS * 12, tl, NUM_JOINTS * 12, 0);
        resize(trl, nsb * 3 * L);
        to_lanes(transl, b, 3, trl, 3, 0);
        let inp = LaneInputs {
            feat,
            trans: tl,
            transl: trl,
            batch: b,
        };
        let out = OutPtr(verts.as_mut_ptr());
        let ntiles = v.div_ceil(TV);
        (0..ntiles).into_par_iter().with_min_len(4).for_each(|t| {
            let v0 = t * TV;
            let nv = TV.min(v - v0);
            let mut sb = 0;
            // SAFETY: AVX-512F was detected; `verts` holds B*V*3 floats; each task writes only
            // the vertices of its own tile; `st` and `feat` have the same K.
            unsafe {
                while sb + 2 <= nsb {
                    tile::<2>(self, st, v0, nv, sb, &inp, out);
                    sb += 2;
                }
                if sb < nsb {
                    tile::<1>(self, st, v0, nv, sb, &inp, out);
                }
            }
        });
    }

    /// Joints-only forward: joints and BODY_25 keypoints, skinning only the 11 landmark
    /// vertices the keypoints need (what guidance and scoring use). `out.vertices` is emptied.
    pub fn forward_joints(&self, betas: &[f32], rotmats: &[f32], transl: &[f32], out: &mut BodyOutput) -> Result<()> {
        let (b, nb) = self.check_inputs(betas, rotmats, transl)?;
        out.batch = b;
        out.vertices.clear();
        resize(&mut out.joints, b * NUM_JOINTS * 3);
        resize(&mut out.keypoints, b * NUM_BODY25 * 3);
        let ws = &mut out.ws;
        resize(&mut ws.landmarks, b * NUM_LANDMARKS * 3);

        let kin = &self.kin;
        out.joints
            .par_chunks_mut(NUM_JOINTS * 3)
            .zip(ws.landmarks.par_chunks_mut(NUM_LANDMARKS * 3))
            .enumerate()
            .with_min_len(16)
            .for_each(|(bi, (jo, lm))| {
                let mut beta = [0f64; MAX_BETAS];
                for (d, &x) in beta.iter_mut().zip(&betas[bi * nb..(bi + 1) * nb]) {
                    *d = x as f64;
                }
                let rot: [f64; NUM_JOINTS * 9] = std::array::from_fn(|e| rotmats[bi * NUM_JOINTS * 9 + e] as f64);
                let k = kin.kinematics(&beta[..nb], &rot);
                let l = kin.landmarks(&k, &beta[..nb], &rot);
                let t = &transl[bi * 3..bi * 3 + 3];
                for (i, o) in jo.chunks_exact_mut(3).enumerate() {
                    for c in 0..3 {
                        o[c] = (k.gt[i][c] + t[c] as f64) as f32;
                    }
                }
                for (i, o) in lm.chunks_exact_mut(3).enumerate() {
                    for c in 0..3 {
                        o[c] = (l[i][c] + t[c] as f64) as f32;
                    }
                }
            });
        self.gather_keypoints(b, &out.joints, &ws.landmarks, &mut out.keypoints, true);
        Ok(())
    }
}

/// `dst[B, N] = feat[B, 207] @ posedirs[207, N]` with the gemm crate (as candle's CPU matmul).
fn pose_blend_gemm(feat: &[f32], posedirs: &[f32], dst: &mut [f32], b: usize, n: usize) {
    let k = NUM_POSE_FEATURES;
    assert!(feat.len() >= b * k && posedirs.len() >= k * n && dst.len() >= b * n);
    let threads = rayon::current_num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the slices hold at least the m*k, k*n and m*n elements addressed by these
    // row-major strides (asserted above), and dst does not alias the inputs.
    unsafe {
        gemm::gemm(
            b,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            feat.as_ptr(),
            1,
            k as isize,
            posedirs.as_ptr(),
            1,
            n as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}
