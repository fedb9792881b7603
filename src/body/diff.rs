//! The differentiable candle forward pass: gradients w.r.t. rotations (6D or matrices), betas
//! and translation, on CPU or CUDA.
//!
//! The same math as [`super::cpu`] (smplx `lbs()`, data_eval.md 1.4) over the same derived tables
//! of [`BodyModel`]; written with candle ops whose backward passes are correct in candle 0.11
//! (matmul, broadcast ops, cat/narrow, index_select; rust_stack.md).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::kin::JointsKernel;
use super::{BodyModel, NUM_JOINTS, NUM_LANDMARKS, NUM_POSE_FEATURES, SMPL_TO_BODY25};
use crate::error::{Error, Result};

/// Tensors of a set of vertices (the whole mesh, or the landmarks) needed to skin them.
struct VertexSet {
    n: usize,
    /// `[1, n*3]`
    template: Tensor,
    /// `[S, n*3]`
    shapedirs: Tensor,
    /// `[207, n*3]`, absent when the model has no pose correctives.
    posedirs: Option<Tensor>,
    /// `[n, 24]`
    weights: Tensor,
}

/// The body model on a candle device, ready for differentiable forward passes.
pub struct DiffBody {
    full: VertexSet,
    landmarks: VertexSet,
    /// `[1, 72]`
    j_template: Tensor,
    /// `[S, 72]`
    j_shapedirs: Tensor,
    /// `[1, 1, 3, 3]`
    eye: Tensor,
    /// `[25]` (u32) indices into `[24 joints ; 11 landmarks]`.
    body25_idx: Tensor,
    /// `[11]` (u32) landmark vertex ids.
    landmark_ids: Tensor,
    parents: [i32; NUM_JOINTS],
    /// The joints-only kernel with an analytic backward (CPU devices).
    kin: Arc<JointsKernel>,
    num_betas: usize,
    dtype: DType,
    device: Device,
}

/// Outputs of a differentiable forward pass.
pub struct DiffOutput {
    /// `[B, V, 3]` (None for the joints-only pass).
    pub vertices: Option<Tensor>,
    /// `[B, 24, 3]`
    pub joints: Tensor,
    /// `[B, 25, 3]` OpenPose BODY_25.
    pub keypoints: Tensor,
}

fn f32v(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

fn transpose_rows<T: Copy + Default>(src: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::default(); src.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = src[r * cols + c];
        }
    }
    out
}

impl DiffBody {
    /// Uploads the model as f32 tensors on `device`.
    pub fn new(model: &BodyModel, device: &Device) -> Result<Self> {
        Self::with_dtype(model, device, DType::F32)
    }

    /// Uploads the model with the given float dtype (F32 for speed, F64 for gradient checks).
    pub fn with_dtype(model: &BodyModel, device: &Device, dtype: DType) -> Result<Self> {
        let a = &model.a;
        let v = a.num_verts();
        let s = a.num_betas;
        let t = |data: Vec<f32>, shape: &[usize]| -> Result<Tensor> {
            Ok(Tensor::from_vec(data, shape, device)?.to_dtype(dtype)?)
        };
        let t64 = |data: Vec<f64>, shape: &[usize]| -> Result<Tensor> {
            Ok(Tensor::from_vec(data, shape, device)?.to_dtype(dtype)?)
        };
        let full = VertexSet {
            n: v,
            template: t(a.v_template.clone(), &[1, v * 3])?,
            // shapedirs [V*3, S] -> [S, V*3]
            shapedirs: t(transpose_rows(&a.shapedirs, v * 3, s), &[s, v * 3])?,
            posedirs: if model.has_posedirs {
                Some(t(a.posedirs.clone(), &[NUM_POSE_FEATURES, v * 3])?)
            } else {
                None
            },
            weights: t(a.weights.clone(), &[v, NUM_JOINTS])?,
        };
        let nl = NUM_LANDMARKS;
        let mut lt = Vec::with_capacity(nl * 3);
        let mut lsd = Vec::with_capacity(nl * 3 * s);
        let mut lw = Vec::with_capacity(nl * NUM_JOINTS);
        for &lv in &a.landmarks {
            let lv = lv as usize;
            lt.extend_from_slice(&a.v_template[lv * 3..lv * 3 + 3]);
            lsd.extend_from_slice(&a.shapedirs[lv * 3 * s..(lv + 1) * 3 * s]);
            lw.extend_from_slice(&a.weights[lv * NUM_JOINTS..(lv + 1) * NUM_JOINTS]);
        }
        let landmarks = VertexSet {
            n: nl,
            template: t(lt, &[1, nl * 3])?,
            shapedirs: t(transpose_rows(&lsd, nl * 3, s), &[s, nl * 3])?,
            // lm_posedirs is [33, 207]; we need [207, 33].
            posedirs: match &model.kin.lm_posedirs {
                Some(pd) => Some(t(transpose_rows(&f32v(pd), nl * 3, NUM_POSE_FEATURES), &[NUM_POSE_FEATURES, nl * 3])?),
                None => None,
            },
            weights: t(lw, &[nl, NUM_JOINTS])?,
        };
        let eye = t(vec![1., 0., 0., 0., 1., 0., 0., 0., 1.], &[1, 1, 3, 3])?;
        let idx: Vec<u32> = SMPL_TO_BODY25.iter().map(|&i| i as u32).collect();
        Ok(Self {
            full,
            landmarks,
            // Derived in f64: upload at full precision (exact for an F64 DiffBody).
            j_template: t64(model.kin.j_template.clone(), &[1, NUM_JOINTS * 3])?,
            j_shapedirs: t64(transpose_rows(&model.kin.j_shapedirs, NUM_JOINTS * 3, s), &[s, NUM_JOINTS * 3])?,
            eye,
            body25_idx: Tensor::from_vec(idx, SMPL_TO_BODY25.len(), device)?,
            landmark_ids: Tensor::from_vec(a.landmarks.to_vec(), NUM_LANDMARKS, device)?,
            parents: a.parents,
            kin: model.kin.clone(),
            num_betas: s,
            dtype,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn num_betas(&self) -> usize {
        self.num_betas
    }

    /// Full forward from 6D rotations `x6d` `[B, 144]` (ScoreHMR layout, global orient first).
    pub fn forward_6d(&self, betas: &Tensor, x6d: &Tensor, transl: &Tensor) -> Result<DiffOutput> {
        let r = self.rot6d(x6d)?;
        self.forward_rotmats(betas, &r, transl)
    }

    /// Joints-only forward from 6D rotations `[B, 144]`.
    pub fn forward_joints_6d(&self, betas: &Tensor, x6d: &Tensor, transl: &Tensor) -> Result<DiffOutput> {
        let r = self.rot6d(x6d)?;
        self.forward_joints_rotmats(betas, &r, transl)
    }

    fn rot6d(&self, x6d: &Tensor) -> Result<Tensor> {
        let b = x6d.dim(0)?;
        if x6d.dims() != [b, NUM_JOINTS * 6] {
            return Err(Error::Input(format!(
                "6D pose has shape {:?}, expected [B, 144]",
                x6d.dims()
            )));
        }
        crate::geom::rot::rot6d_to_matrix_t(&x6d.reshape((b, NUM_JOINTS, 6))?)
    }

    /// Full forward: `betas` `[B, S']` (S' <= S), `rotmats` `[B, 24, 3, 3]`, `transl` `[B, 3]`.
    pub fn forward_rotmats(&self, betas: &Tensor, rotmats: &Tensor, transl: &Tensor) -> Result<DiffOutput> {
        self.run(betas, rotmats, transl, true)
    }

    /// Joints-only forward: joints and BODY_25 keypoints, skinning only the 11 landmarks.
    ///
    /// On CPU this is one custom op with a hand-written backward (`kin.rs`), ~100x faster than
    /// the same computation as individual autograd ops; on other devices it runs as ops.
    pub fn forward_joints_rotmats(&self, betas: &Tensor, rotmats: &Tensor, transl: &Tensor) -> Result<DiffOutput> {
        if !self.device.is_cpu() {
            return self.run(betas, rotmats, transl, false);
        }
        self.check(betas, rotmats, transl)?;
        let op = JointsOp { kin: self.kin.clone() };
        let out = rotmats
            .contiguous()?
            .apply_op3(&betas.contiguous()?, &transl.contiguous()?, op)?; // [B, 35, 3]
        Ok(DiffOutput {
            vertices: None,
            joints: out.narrow(1, 0, NUM_JOINTS)?,
            keypoints: out.index_select(&self.body25_idx, 1)?,
        })
    }

    /// The joints-only forward as individual autograd ops (what non-CPU devices run); kept
    /// public so tests can compare it with the custom op.
    #[doc(hidden)]
    pub fn forward_joints_rotmats_ops(&self, betas: &Tensor, rotmats: &Tensor, transl: &Tensor) -> Result<DiffOutput> {
        self.run(betas, rotmats, transl, false)
    }

    fn check(&self, betas: &Tensor, rotmats: &Tensor, transl: &Tensor) -> Result<()> {
        let b = transl.dim(0)?;
        if transl.dims() != [b, 3] || rotmats.dims() != [b, NUM_JOINTS, 3, 3] {
            return Err(Error::Input(format!(
                "transl {:?} / rotmats {:?}: expected [B, 3] and [B, 24, 3, 3]",
                transl.dims(),
                rotmats.dims()
            )));
        }
        let nb = betas.dim(1)?;
        if betas.dims() != [b, nb] || nb > self.num_betas {
            return Err(Error::Input(format!(
                "betas {:?}: expected [B={b}, S] with S <= {}",
                betas.dims(),
                self.num_betas
            )));
        }
        let dt = rotmats.dtype();
        if betas.dtype() != dt || transl.dtype() != dt {
            return Err(Error::Input("rotmats, betas and transl must share one float dtype".into()));
        }
        Ok(())
    }

    fn run(&self, betas: &Tensor, rotmats: &Tensor, transl: &Tensor, full: bool) -> Result<DiffOutput> {
        self.check(betas, rotmats, transl)?;
        let b = transl.dim(0)?;
        let nb = betas.dim(1)?;
        // Rest joints of the shaped mesh [B, 24, 3] (= J_regressor @ v_shaped, linear tables).
        let j = betas
            .matmul(&self.j_shapedirs.narrow(0, 0, nb)?)?
            .broadcast_add(&self.j_template)?
            .reshape((b, NUM_JOINTS, 3))?;
        // Pose feature [B, 207]: R_i - I over joints 1..23.
        let pose_feat = rotmats
            .narrow(1, 1, NUM_JOINTS - 1)?
            .broadcast_sub(&self.eye)?
            .reshape((b, NUM_POSE_FEATURES))?;

        // Kinematic chain.
        let mut gr: Vec<Tensor> = Vec::with_capacity(NUM_JOINTS); // [B, 3, 3]
        let mut gt: Vec<Tensor> = Vec::with_capacity(NUM_JOINTS); // [B, 3, 1]
        for i in 0..NUM_JOINTS {
            let r = rotmats.narrow(1, i, 1)?.squeeze(1)?;
            let ji = j.narrow(1, i, 1)?.reshape((b, 3, 1))?;
            match self.parents[i] {
                p if p < 0 => {
                    gr.push(r);
                    gt.push(ji);
                }
                p => {
                    let p = p as usize;
                    let jp = j.narrow(1, p, 1)?.reshape((b, 3, 1))?;
                    let rel = (ji - jp)?;
                    let t = (&gt[p] + gr[p].matmul(&rel)?)?;
                    let rr = gr[p].matmul(&r)?;
                    gr.push(rr);
                    gt.push(t);
                }
            }
        }
        let rw = Tensor::stack(&gr, 1)?.contiguous()?; // [B, 24, 3, 3]
        let tw = Tensor::stack(&gt, 1)?.contiguous()?; // [B, 24, 3, 1]
        let posed_joints = tw.squeeze(3)?; // [B, 24, 3]
        // A_i = [R^w | t^w - R^w J_i]  -> [B, 24, 12]
        let rj = rw.matmul(&j.unsqueeze(3)?)?; // [B, 24, 3, 1]
        let a = Tensor::cat(&[&rw, &(&tw - rj)?], 3)?.reshape((b, NUM_JOINTS, 12))?;

        let tr = transl.unsqueeze(1)?; // [B, 1, 3]
        let joints = posed_joints.broadcast_add(&tr)?;
        let (vertices, lm) = if full {
            let verts = self.skin(&self.full, betas, &pose_feat, &a)?.broadcast_add(&tr)?;
            let lm = verts.index_select(&self.landmark_ids, 1)?;
            (Some(verts), lm)
        } else {
            (None, self.skin(&self.landmarks, betas, &pose_feat, &a)?.broadcast_add(&tr)?)
        };
        let all = Tensor::cat(&[&joints, &lm], 1)?; // [B, 35, 3]
        let keypoints = all.index_select(&self.body25_idx, 1)?;
        Ok(DiffOutput {
            vertices,
            joints,
            keypoints,
        })
    }

    /// LBS of a vertex set: `[B, n, 3]` (without translation).
    fn skin(&self, set: &VertexSet, betas: &Tensor, pose_feat: &Tensor, a: &Tensor) -> Result<Tensor> {
        let b = betas.dim(0)?;
        let nb = betas.dim(1)?;
        let mut v = betas
            .matmul(&set.shapedirs.narrow(0, 0, nb)?)?
            .broadcast_add(&set.template)?; // [B, n*3]
        if let Some(pd) = &set.posedirs {
            v = (v + pose_feat.matmul(pd)?)?;
        }
        // T = W @ A as one GEMM: [n, 24] x [24, B*12] -> [n, B, 3, 4] (broadcast_matmul would
        // first copy W B times). The product T [v;1] is written column by column: candle's
        // sum over a last dimension of 3 is ~10x slower than these broadcast multiply-adds.
        let a2 = a.transpose(0, 1)?.contiguous()?.reshape((NUM_JOINTS, b * 12))?;
        let t = set.weights.matmul(&a2)?.reshape((set.n, b, 3, 4))?;
        let v = v.reshape((b, set.n, 3))?.transpose(0, 1)?.contiguous()?; // [n, B, 3]
        let col = |i: usize| t.narrow(3, i, 1)?.squeeze(3); // [n, B, 3]
        let mut out = col(3)?;
        for i in 0..3 {
            out = (out + col(i)?.broadcast_mul(&v.narrow(2, i, 1)?)?)?;
        }
        Ok(out.transpose(0, 1)?.contiguous()?) // [B, n, 3]
    }
}

/// `[joints ; landmarks] + transl` `[B, 35, 3]` from rotations `[B, 24, 3, 3]`, betas `[B, S']`
/// and translation `[B, 3]`, with an analytic backward (CPU only).
struct JointsOp {
    kin: Arc<JointsKernel>,
}

const NOUT: usize = NUM_JOINTS + NUM_LANDMARKS;

fn cpu_f64(s: &CpuStorage, l: &Layout) -> candle_core::Result<Vec<f64>> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("rigfit joints op: non-contiguous input".into()))?;
    match s {
        CpuStorage::F32(v) => Ok(v[a..b].iter().map(|&x| x as f64).collect()),
        CpuStorage::F64(v) => Ok(v[a..b].to_vec()),
        _ => Err(candle_core::Error::Msg("rigfit joints op: f32 or f64 inputs only".into())),
    }
}

fn tensor_f64(t: &Tensor) -> candle_core::Result<Vec<f64>> {
    t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()
}

impl CustomOp3 for JointsOp {
    fn name(&self) -> &'static str {
        "rigfit-body-joints"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rot, betas, transl) = (cpu_f64(s1, l1)?, cpu_f64(s2, l2)?, cpu_f64(s3, l3)?);
        let b = l3.dims()[0];
        let nb = l2.dims()[1];
        let mut out = vec![0f64; b * NOUT * 3];
        out.par_chunks_mut(NOUT * 3).enumerate().with_min_len(8).for_each(|(i, o)| {
            let beta = &betas[i * nb..(i + 1) * nb];
            let r = &rot[i * NUM_JOINTS * 9..(i + 1) * NUM_JOINTS * 9];
            let k = self.kin.kinematics(beta, r);
            let lm = self.kin.landmarks(&k, beta, r);
            let t = &transl[i * 3..i * 3 + 3];
            for (j, p) in k.gt.iter().chain(lm.iter()).enumerate() {
                for c in 0..3 {
                    o[j * 3 + c] = p[c] + t[c];
                }
            }
        });
        let shape = Shape::from((b, NOUT, 3));
        let storage = match s1 {
            CpuStorage::F32(_) => CpuStorage::F32(out.iter().map(|&x| x as f32).collect()),
            _ => CpuStorage::F64(out),
        };
        Ok((storage, shape))
    }

    fn bwd(
        &self,
        rot: &Tensor,
        betas: &Tensor,
        transl: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let b = transl.dim(0)?;
        let nb = betas.dim(1)?;
        let (r, be, g) = (tensor_f64(rot)?, tensor_f64(betas)?, tensor_f64(grad)?);
        let mut g_rot = vec![0f64; b * NUM_JOINTS * 9];
        let mut g_beta = vec![0f64; b * nb];
        let mut g_tr = vec![0f64; b * 3];
        g_rot
            .par_chunks_mut(NUM_JOINTS * 9)
            .zip(g_beta.par_chunks_mut(nb.max(1)))
            .zip(g_tr.par_chunks_mut(3))
            .enumerate()
            .with_min_len(8)
            .for_each(|(i, ((gr, gb), gt))| {
                let beta = &be[i * nb..(i + 1) * nb];
                let ri = &r[i * NUM_JOINTS * 9..(i + 1) * NUM_JOINTS * 9];
                let k = self.kin.kinematics(beta, ri);
                let gb = if nb == 0 { &mut gb[..0] } else { gb };
                self.kin.backward(beta, ri, &k, &g[i * NOUT * 3..(i + 1) * NOUT * 3], gr, gb, gt);
            });
        let mk = |v: Vec<f64>, like: &Tensor| -> candle_core::Result<Tensor> {
            Tensor::from_vec(v, like.shape(), like.device())?.to_dtype(like.dtype())
        };
        Ok((Some(mk(g_rot, rot)?), Some(mk(g_beta, betas)?), Some(mk(g_tr, transl)?)))
    }
}
