//! AVX-512 kernel of the full CPU forward: shape blend, pose blend and skinning fused, with
//! samples in SIMD lanes.
//!
//! The portable path ([`super::cpu`]) runs the pose blend as one GEMM (`[B,207] @ [207,V*3]`),
//! writes `[B, V*3]` offsets, then skins vertex by vertex. Here the rest-pose vertex of every
//! sample is one GEMM row: `v_posed[b, r] = [pose_feat_b ; betas_b ; 1] . [posedirs[:, r] ;
//! shapedirs[r, :] ; v_template[r]]` (the same sums as smplx's `v_template + shapedirs.betas +
//! pose_feature @ posedirs`). Each task takes 4 vertices (12 rows of that stacked matrix) and 16
//! or 32 samples (one or two 16-lane registers per row), accumulates the rows in registers, and
//! skins those vertices for those samples straight away.

use std::arch::x86_64::*;

use super::{BodyModel, NUM_JOINTS, NUM_POSE_FEATURES};

/// Lanes per register.
pub(crate) const L: usize = 16;
/// Vertices per tile.
pub(crate) const TV: usize = 4;
const TR: usize = TV * 3;

/// Whether this CPU can run the kernel.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// The stacked per-row coefficients `[V4*3, K]` with `K = (207 if posedirs) + S + 1`:
/// `[posedirs[:, r] ; shapedirs[r, :] ; v_template[r]]`, V4 = V rounded up to a multiple of 4
/// (zero rows).
pub(crate) struct Stacked {
    pub rows: Vec<f32>,
    pub k: usize,
}

impl std::fmt::Debug for Stacked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stacked {{ rows: {} x {} }}", self.rows.len() / self.k.max(1), self.k)
    }
}

impl Stacked {
    pub(crate) fn new(model: &BodyModel) -> Self {
        let a = &model.a;
        let v = a.num_verts();
        let s = a.num_betas;
        let np = if model.has_posedirs { NUM_POSE_FEATURES } else { 0 };
        let k = np + s + 1;
        let v4 = v.div_ceil(TV) * TV;
        let mut rows = vec![0f32; v4 * 3 * k];
        for r in 0..v * 3 {
            let row = &mut rows[r * k..(r + 1) * k];
            for (p, x) in row[..np].iter_mut().enumerate() {
                *x = a.posedirs[p * v * 3 + r];
            }
            row[np..np + s].copy_from_slice(&a.shapedirs[r * s..(r + 1) * s]);
            row[np + s] = a.v_template[r];
        }
        Stacked { rows, k }
    }
}

/// Writes `[NSB, n, 16]` lanes of `src` `[B, n_src]` into `dst` starting at column `col0` of
/// an `[NSB, n, 16]` buffer (zero padding for missing samples and columns).
pub(crate) fn to_lanes(src: &[f32], b: usize, n_src: usize, dst: &mut [f32], n: usize, col0: usize) {
    for bi in 0..b {
        let (sb, l) = (bi / L, bi % L);
        for i in 0..n_src {
            dst[(sb * n + col0 + i) * L + l] = src[bi * n_src + i];
        }
    }
}

/// Inputs laid out with samples in lanes, zero-padded to a multiple of 16 samples.
pub(crate) struct LaneInputs<'a> {
    /// `[NSB, K, 16]`: pose features (if the model has posedirs), betas (zero-padded to S), 1.
    pub feat: &'a [f32],
    /// `[NSB, 24*12, 16]`
    pub trans: &'a [f32],
    /// `[NSB, 3, 16]`
    pub transl: &'a [f32],
    pub batch: usize,
}

/// Raw output pointer shared by tasks that write disjoint vertices.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub *mut f32);
// SAFETY: tasks write disjoint elements (different vertices), see `BodyModel::skin_x86`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// `t[c] += w * base[c*16 .. c*16+16]` for the 12 entries of a 3x4 transform, unrolled so the
/// accumulators stay in registers.
#[inline(always)]
unsafe fn blend12(t: &mut [__m512; 12], w: __m512, base: *const f32) {
    macro_rules! e {
        ($($c:literal)*) => { $( t[$c] = _mm512_fmadd_ps(w, _mm512_loadu_ps(base.add($c * L)), t[$c]); )* };
    }
    e!(0 1 2 3 4 5 6 7 8 9 10 11);
}

/// Skins vertices `[v0, v0+nv)` for sample blocks `sb0 .. sb0+SB`, writing `out` `[B, V, 3]`.
///
/// # Safety
/// AVX-512F must be available; `out` must point to `B * V * 3` floats; no other task may write
/// the same vertices concurrently; `st` must be `Stacked::new(model)` and `inp.feat` must have
/// `st.k` columns.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn tile<const SB: usize>(
    model: &BodyModel,
    st: &Stacked,
    v0: usize,
    nv: usize,
    sb0: usize,
    inp: &LaneInputs,
    out: OutPtr,
) {
    let v = model.num_verts();
    let k = st.k;
    // v_posed rows of this tile for SB x 16 samples, accumulated in 12 x SB registers.
    let mut acc = [[_mm512_setzero_ps(); SB]; TR];
    let rows = st.rows.as_ptr().add(v0 * 3 * k);
    let feat = inp.feat.as_ptr();
    for kk in 0..k {
        let mut f = [_mm512_setzero_ps(); SB];
        for (sbi, fs) in f.iter_mut().enumerate() {
            *fs = _mm512_loadu_ps(feat.add(((sb0 + sbi) * k + kk) * L));
        }
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let w = _mm512_set1_ps(*rows.add(i * k + kk));
            for sbi in 0..SB {
                acc_i[sbi] = _mm512_fmadd_ps(w, f[sbi], acc_i[sbi]);
            }
        }
    }
    // Spill once: the skinning below indexes rows dynamically and needs the registers.
    let mut vp = [[[0f32; L]; SB]; TR];
    for (o, a) in vp.iter_mut().zip(&acc) {
        for (os, as_) in o.iter_mut().zip(a) {
            _mm512_storeu_ps(os.as_mut_ptr(), *as_);
        }
    }
    let (w_ptr, w_joint, w_val) = (&model.w_ptr, &model.w_joint, &model.w_val);
    let mut tmp = [[0f32; L]; 3];
    for i in 0..nv {
        let vi = v0 + i;
        let (e0, e1) = (w_ptr[vi] as usize, w_ptr[vi + 1] as usize);
        for sbi in 0..SB {
            let sb = sb0 + sbi;
            let p0 = _mm512_loadu_ps(vp[i * 3][sbi].as_ptr());
            let p1 = _mm512_loadu_ps(vp[i * 3 + 1][sbi].as_ptr());
            let p2 = _mm512_loadu_ps(vp[i * 3 + 2][sbi].as_ptr());
            // Blended transform T = sum_j w_j A_j (12 entries), 16 samples.
            let mut t = [_mm512_setzero_ps(); 12];
            let tb = inp.trans.as_ptr().add(sb * NUM_JOINTS * 12 * L);
            for e in e0..e1 {
                let j = *w_joint.get_unchecked(e) as usize;
                blend12(&mut t, _mm512_set1_ps(*w_val.get_unchecked(e)), tb.add(j * 12 * L));
            }
            let tl = inp.transl.as_ptr().add(sb * 3 * L);
            for (kk, tk) in tmp.iter_mut().enumerate() {
                let mut o = _mm512_add_ps(t[kk * 4 + 3], _mm512_loadu_ps(tl.add(kk * L)));
                o = _mm512_fmadd_ps(t[kk * 4], p0, o);
                o = _mm512_fmadd_ps(t[kk * 4 + 1], p1, o);
                o = _mm512_fmadd_ps(t[kk * 4 + 2], p2, o);
                _mm512_storeu_ps(tk.as_mut_ptr(), o);
            }
            let lanes = L.min(inp.batch - sb * L);
            for l in 0..lanes {
                let dst = out.0.add(((sb * L + l) * v + vi) * 3);
                *dst = tmp[0][l];
                *dst.add(1) = tmp[1][l];
                *dst.add(2) = tmp[2][l];
            }
        }
    }
}
