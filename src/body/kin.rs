//! Per-sample kinematics in f64: the one implementation of the kinematic chain and of the
//! landmark vertices, with its analytic backward pass.
//!
//! Used by the CPU forward paths ([`super::cpu`]) and by the differentiable joints-only kernel
//! (a candle custom op, [`super::diff`]), where a hand-written backward through 24 joints and 11
//! landmarks replaces hundreds of tiny autograd ops (the guidance loop's hot path).

use super::{BodyArrays, NUM_JOINTS, NUM_LANDMARKS, NUM_POSE_FEATURES};

const NJ: usize = NUM_JOINTS;
const NL: usize = NUM_LANDMARKS;
const NP: usize = NUM_POSE_FEATURES;

/// What the joints and landmarks depend on: the joint regression of the shape space and the
/// rest geometry, pose correctives and skinning weights of the 11 landmark vertices.
#[derive(Clone, Debug)]
pub(crate) struct JointsKernel {
    pub s: usize,
    pub parents: [i32; NJ],
    /// `J_regressor @ v_template` `[24*3]`.
    pub j_template: Vec<f64>,
    /// `J_regressor @ shapedirs` `[24*3, S]`.
    pub j_shapedirs: Vec<f64>,
    /// `[11*3]`
    pub lm_template: Vec<f64>,
    /// `[11*3, S]`
    pub lm_shapedirs: Vec<f64>,
    /// `[11*3, 207]`, None when the model has no pose correctives.
    pub lm_posedirs: Option<Vec<f64>>,
    /// Non-zero skinning weights of each landmark: (joint, weight).
    pub lm_weights: Vec<Vec<(usize, f64)>>,
}

/// World transforms of one sample.
pub(crate) struct Kin {
    /// Rest joints of the shaped body.
    pub jr: [[f64; 3]; NJ],
    /// World rotations (row-major).
    pub gr: [[f64; 9]; NJ],
    /// World joint positions (before translation).
    pub gt: [[f64; 3]; NJ],
}

#[inline]
fn mat_mul(a: &[f64; 9], b: &[f64; 9]) -> [f64; 9] {
    std::array::from_fn(|e| {
        let (r, c) = (e / 3, e % 3);
        a[r * 3] * b[c] + a[r * 3 + 1] * b[3 + c] + a[r * 3 + 2] * b[6 + c]
    })
}
#[inline]
fn mat_vec(a: &[f64; 9], v: &[f64; 3]) -> [f64; 3] {
    std::array::from_fn(|r| a[r * 3] * v[0] + a[r * 3 + 1] * v[1] + a[r * 3 + 2] * v[2])
}
#[inline]
fn mat_t_vec(a: &[f64; 9], v: &[f64; 3]) -> [f64; 3] {
    std::array::from_fn(|c| a[c] * v[0] + a[3 + c] * v[1] + a[6 + c] * v[2])
}

impl JointsKernel {
    pub(crate) fn new(a: &BodyArrays, has_posedirs: bool) -> Self {
        let v = a.num_verts();
        let s = a.num_betas;
        let mut j_template = vec![0f64; NJ * 3];
        let mut j_shapedirs = vec![0f64; NJ * 3 * s];
        for j in 0..NJ {
            for vi in 0..v {
                let w = a.j_regressor[j * v + vi] as f64;
                if w == 0.0 {
                    continue;
                }
                for k in 0..3 {
                    j_template[j * 3 + k] += w * a.v_template[vi * 3 + k] as f64;
                    let src = &a.shapedirs[(vi * 3 + k) * s..(vi * 3 + k + 1) * s];
                    for (d, &x) in j_shapedirs[(j * 3 + k) * s..(j * 3 + k + 1) * s].iter_mut().zip(src) {
                        *d += w * x as f64;
                    }
                }
            }
        }
        let mut lm_template = Vec::with_capacity(NL * 3);
        let mut lm_shapedirs = Vec::with_capacity(NL * 3 * s);
        let mut lm_posedirs = Vec::with_capacity(if has_posedirs { NL * 3 * NP } else { 0 });
        let mut lm_weights = Vec::with_capacity(NL);
        for &lv in &a.landmarks {
            let lv = lv as usize;
            for k in 0..3 {
                let r = lv * 3 + k;
                lm_template.push(a.v_template[r] as f64);
                lm_shapedirs.extend(a.shapedirs[r * s..(r + 1) * s].iter().map(|&x| x as f64));
                if has_posedirs {
                    lm_posedirs.extend((0..NP).map(|p| a.posedirs[p * v * 3 + r] as f64));
                }
            }
            lm_weights.push(
                a.weights[lv * NJ..(lv + 1) * NJ]
                    .iter()
                    .enumerate()
                    .filter(|(_, &w)| w != 0.0)
                    .map(|(j, &w)| (j, w as f64))
                    .collect(),
            );
        }
        Self {
            s,
            parents: a.parents,
            j_template,
            j_shapedirs,
            lm_template,
            lm_shapedirs,
            lm_posedirs: has_posedirs.then_some(lm_posedirs),
            lm_weights,
        }
    }

    /// Rest joints and world transforms for `beta` `[S' <= S]` and local rotations `rot`
    /// `[24*9]` (row-major).
    pub(crate) fn kinematics(&self, beta: &[f64], rot: &[f64]) -> Kin {
        let s = self.s;
        let mut jr = [[0f64; 3]; NJ];
        for (j, jrow) in jr.iter_mut().enumerate() {
            for (k, x) in jrow.iter_mut().enumerate() {
                let r = j * 3 + k;
                *x = self.j_template[r]
                    + self.j_shapedirs[r * s..r * s + beta.len()].iter().zip(beta).map(|(a, b)| a * b).sum::<f64>();
            }
        }
        let mut gr = [[0f64; 9]; NJ];
        let mut gt = [[0f64; 3]; NJ];
        for i in 0..NJ {
            let r: [f64; 9] = std::array::from_fn(|e| rot[i * 9 + e]);
            match self.parents[i] {
                p if p < 0 => {
                    gr[i] = r;
                    gt[i] = jr[i];
                }
                p => {
                    let p = p as usize;
                    let d = [jr[i][0] - jr[p][0], jr[i][1] - jr[p][1], jr[i][2] - jr[p][2]];
                    let off = mat_vec(&gr[p], &d);
                    gt[i] = [gt[p][0] + off[0], gt[p][1] + off[1], gt[p][2] + off[2]];
                    gr[i] = mat_mul(&gr[p], &r);
                }
            }
        }
        Kin { jr, gr, gt }
    }

    /// Rest position (shape + pose correctives) of landmark `l`.
    fn landmark_rest(&self, l: usize, beta: &[f64], rot: &[f64]) -> [f64; 3] {
        let s = self.s;
        std::array::from_fn(|k| {
            let r = l * 3 + k;
            let mut x = self.lm_template[r]
                + self.lm_shapedirs[r * s..r * s + beta.len()].iter().zip(beta).map(|(a, b)| a * b).sum::<f64>();
            if let Some(pd) = &self.lm_posedirs {
                let row = &pd[r * NP..(r + 1) * NP];
                for i in 1..NJ {
                    for e in 0..9 {
                        let eye = if e % 4 == 0 { 1.0 } else { 0.0 };
                        x += row[(i - 1) * 9 + e] * (rot[i * 9 + e] - eye);
                    }
                }
            }
            x
        })
    }

    /// Posed landmark vertices (before translation) `[11][3]`.
    pub(crate) fn landmarks(&self, kin: &Kin, beta: &[f64], rot: &[f64]) -> [[f64; 3]; NL] {
        std::array::from_fn(|l| {
            let vr = self.landmark_rest(l, beta, rot);
            let mut out = [0f64; 3];
            for &(j, w) in &self.lm_weights[l] {
                let d = [vr[0] - kin.jr[j][0], vr[1] - kin.jr[j][1], vr[2] - kin.jr[j][2]];
                let p = mat_vec(&kin.gr[j], &d);
                for k in 0..3 {
                    out[k] += w * (p[k] + kin.gt[j][k]);
                }
            }
            out
        })
    }

    /// Backward pass of `[joints ; landmarks] + transl` for one sample.
    ///
    /// `g_out` `[35*3]`: gradient w.r.t. the 24 joints then the 11 landmarks. Accumulates into
    /// `g_rot` `[24*9]`, `g_beta` `[S']` and `g_transl` `[3]`.
    pub(crate) fn backward(
        &self,
        beta: &[f64],
        rot: &[f64],
        kin: &Kin,
        g_out: &[f64],
        g_rot: &mut [f64],
        g_beta: &mut [f64],
        g_transl: &mut [f64],
    ) {
        let s = self.s;
        let mut g_gr = [[0f64; 9]; NJ];
        let mut g_gt = [[0f64; 3]; NJ];
        let mut g_jr = [[0f64; 3]; NJ];
        for i in 0..NJ {
            for k in 0..3 {
                g_gt[i][k] += g_out[i * 3 + k];
                g_transl[k] += g_out[i * 3 + k];
            }
        }
        // Landmarks: lm_l = sum_j w (gr_j (vr_l - jr_j) + gt_j).
        for l in 0..NL {
            let g: [f64; 3] = std::array::from_fn(|k| g_out[(NJ + l) * 3 + k]);
            if g == [0.0; 3] {
                continue;
            }
            for k in 0..3 {
                g_transl[k] += g[k];
            }
            let vr = self.landmark_rest(l, beta, rot);
            let mut g_vr = [0f64; 3];
            for &(j, w) in &self.lm_weights[l] {
                let d = [vr[0] - kin.jr[j][0], vr[1] - kin.jr[j][1], vr[2] - kin.jr[j][2]];
                for r in 0..3 {
                    for c in 0..3 {
                        g_gr[j][r * 3 + c] += w * g[r] * d[c];
                    }
                    g_gt[j][r] += w * g[r];
                }
                let t = mat_t_vec(&kin.gr[j], &g);
                for k in 0..3 {
                    g_vr[k] += w * t[k];
                    g_jr[j][k] -= w * t[k];
                }
            }
            // vr_l = template + shapedirs . beta + posedirs . (R - I)
            for (k, &gv) in g_vr.iter().enumerate() {
                let r = l * 3 + k;
                for (gb, &sd) in g_beta.iter_mut().zip(&self.lm_shapedirs[r * s..r * s + beta.len()]) {
                    *gb += sd * gv;
                }
                if let Some(pd) = &self.lm_posedirs {
                    let row = &pd[r * NP..(r + 1) * NP];
                    for (p, &x) in row.iter().enumerate() {
                        g_rot[9 + p] += x * gv;
                    }
                }
            }
        }
        // The chain, children before parents.
        for i in (0..NJ).rev() {
            let r: [f64; 9] = std::array::from_fn(|e| rot[i * 9 + e]);
            match self.parents[i] {
                p if p < 0 => {
                    for e in 0..9 {
                        g_rot[i * 9 + e] += g_gr[i][e];
                    }
                    for k in 0..3 {
                        g_jr[i][k] += g_gt[i][k];
                    }
                }
                p => {
                    let p = p as usize;
                    let gp = kin.gr[p];
                    // gr_i = gr_p R_i: d/d gr_p = g R_i^T, d/d R_i = gr_p^T g.
                    let gi = g_gr[i];
                    for row in 0..3 {
                        for col in 0..3 {
                            let mut a = 0.0;
                            let mut b = 0.0;
                            for m in 0..3 {
                                a += gi[row * 3 + m] * r[col * 3 + m];
                                b += gp[m * 3 + row] * gi[m * 3 + col];
                            }
                            g_gr[p][row * 3 + col] += a;
                            g_rot[i * 9 + row * 3 + col] += b;
                        }
                    }
                    // gt_i = gt_p + gr_p (jr_i - jr_p)
                    let d = [
                        kin.jr[i][0] - kin.jr[p][0],
                        kin.jr[i][1] - kin.jr[p][1],
                        kin.jr[i][2] - kin.jr[p][2],
                    ];
                    let gti = g_gt[i];
                    for row in 0..3 {
                        g_gt[p][row] += gti[row];
                        for col in 0..3 {
                            g_gr[p][row * 3 + col] += gti[row] * d[col];
                        }
                    }
                    let gd = mat_t_vec(&gp, &gti);
                    for k in 0..3 {
                        g_jr[i][k] += gd[k];
                        g_jr[p][k] -= gd[k];
                    }
                }
            }
        }
        // jr = j_template + j_shapedirs . beta
        for j in 0..NJ {
            for k in 0..3 {
                let r = j * 3 + k;
                let g = g_jr[j][k];
                for (gb, &sd) in g_beta.iter_mut().zip(&self.j_shapedirs[r * s..r * s + beta.len()]) {
                    *gb += sd * g;
                }
            }
        }
    }
}
