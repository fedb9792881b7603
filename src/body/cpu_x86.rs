//! AVX-512 kernel of the full CPU forward: pose blend and skinning fused, samples in lanes.
//!
//! The portable path ([`super::cpu`]) runs the pose blend as one GEMM (`[B,207] @ [207,V*3]`),
//! writes `[B, V*3]` offsets, then skins vertex by vertex. Here each task takes 4 vertices (12
//! rows of `posedirs^T`) and 16 or 32 samples (one or two 16-lane registers per row), keeps the
//! 12 x 2 accumulators of the pose blend in registers over the 207 features, and skins those
//! vertices for those samples straight from the registers. The math is the same, term by
//! term, as [`super::cpu`] (which the tests compare it with).

use std::arch::x86_64::*;

use super::{BodyModel, NUM_JOINTS, NUM_POSE_FEATURES};

/// Lanes per register.
pub(crate) const L: usize = 16;
/// Vertices per tile.
pub(crate) const TV: usize = 4;
const TR: usize = TV * 3;
const K: usize = NUM_POSE_FEATURES;

/// Whether this CPU can run the kernel.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// `posedirs` transposed to `[V4*3, 207]` (V4 = V rounded up to a multiple of 4, zero rows).
pub(crate) fn transpose_posedirs(posedirs: &[f32], v: usize) -> Vec<f32> {
    let v4 = v.div_ceil(TV) * TV;
    let mut out = vec![0f32; v4 * 3 * K];
    for p in 0..K {
        for r in 0..v * 3 {
            out[r * K + p] = posedirs[p * v * 3 + r];
        }
    }
    out
}

/// Inputs laid out with samples in lanes, zero-padded to a multiple of 16 samples.
pub(crate) struct LaneInputs<'a> {
    /// `[NSB, 207, 16]`
    pub feat: &'a [f32],
    /// `[NSB, nb, 16]`
    pub betas: &'a [f32],
    /// `[NSB, 24*12, 16]`
    pub trans: &'a [f32],
    /// `[NSB, 3, 16]`
    pub transl: &'a [f32],
    pub nb: usize,
    pub batch: usize,
}

/// Transposes `src` `[B, n]` into `dst` `[NSB, n, 16]` (zero padding).
pub(crate) fn to_lanes(src: &[f32], b: usize, n: usize, dst: &mut Vec<f32>) {
    let nsb = b.div_ceil(L);
    dst.clear();
    dst.resize(nsb * n * L, 0.0);
    for bi in 0..b {
        let (sb, l) = (bi / L, bi % L);
        for i in 0..n {
            dst[(sb * n + i) * L + l] = src[bi * n + i];
        }
    }
}

/// Raw output pointer shared by tasks that write disjoint vertices.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub *mut f32);
// SAFETY: tasks write disjoint elements (different vertices), see `forward_tiles`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Skins vertices `[v0, v0+nv)` for sample blocks `sb0 .. sb0+SB`, writing `out` `[B, V, 3]`.
///
/// # Safety
/// AVX-512F must be available; `out` must point to `B * V * 3` floats; no other task may write
/// the same vertices concurrently; `pt` must hold the padded transposed posedirs when
/// `model.has_posedirs`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn tile<const SB: usize>(
    model: &BodyModel,
    pt: &[f32],
    v0: usize,
    nv: usize,
    sb0: usize,
    inp: &LaneInputs,
    out: OutPtr,
) {
    let v = model.num_verts();
    let s = model.num_betas();
    let nb = inp.nb;
    let mut acc = [[_mm512_setzero_ps(); SB]; TR];
    if model.has_posedirs {
        let rows = pt.as_ptr().add(v0 * 3 * K);
        let feat = inp.feat.as_ptr();
        for k in 0..K {
            let mut f = [_mm512_setzero_ps(); SB];
            for (sbi, fs) in f.iter_mut().enumerate() {
                *fs = _mm512_loadu_ps(feat.add(((sb0 + sbi) * K + k) * L));
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*rows.add(i * K + k));
                for sbi in 0..SB {
                    acc_i[sbi] = _mm512_fmadd_ps(w, f[sbi], acc_i[sbi]);
                }
            }
        }
    }
    let a = &model.a;
    let mut tmp = [[0f32; L]; 3];
    for i in 0..nv {
        let vi = v0 + i;
        for sbi in 0..SB {
            let sb = sb0 + sbi;
            // Shaped + pose-corrected rest position, 16 samples.
            let mut p = [_mm512_setzero_ps(); 3];
            for (k, pk) in p.iter_mut().enumerate() {
                let r = vi * 3 + k;
                let mut x = _mm512_add_ps(_mm512_set1_ps(a.v_template[r]), acc[i * 3 + k][sbi]);
                for si in 0..nb {
                    let bv = _mm512_loadu_ps(inp.betas.as_ptr().add((sb * nb + si) * L));
                    x = _mm512_fmadd_ps(_mm512_set1_ps(a.shapedirs[r * s + si]), bv, x);
                }
                *pk = x;
            }
            // Blended transform T = sum_j w_j A_j (12 entries), 16 samples.
            let mut t = [_mm512_setzero_ps(); 12];
            for e in model.w_ptr[vi] as usize..model.w_ptr[vi + 1] as usize {
                let w = _mm512_set1_ps(model.w_val[e]);
                let base = inp
                    .trans
                    .as_ptr()
                    .add((sb * NUM_JOINTS * 12 + model.w_joint[e] as usize * 12) * L);
                for (c, tc) in t.iter_mut().enumerate() {
                    *tc = _mm512_fmadd_ps(w, _mm512_loadu_ps(base.add(c * L)), *tc);
                }
            }
            for (k, tk) in tmp.iter_mut().enumerate() {
                let mut o = _mm512_add_ps(
                    t[k * 4 + 3],
                    _mm512_loadu_ps(inp.transl.as_ptr().add((sb * 3 + k) * L)),
                );
                o = _mm512_fmadd_ps(t[k * 4], p[0], o);
                o = _mm512_fmadd_ps(t[k * 4 + 1], p[1], o);
                o = _mm512_fmadd_ps(t[k * 4 + 2], p[2], o);
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
