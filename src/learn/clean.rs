//! Data cleaning with the HMR-Scorer (ADHMR A6): score each training sample's own label against
//! its observation and drop the lowest-scoring fraction.
//!
//! The proof uses labels corrupted the way pseudo-ground-truth fits go wrong ([`Corruption`]):
//! a left/right limb swap, a limb reflected in depth (what a 2D fit cannot tell apart: the bone
//! keeps its image direction and flips toward or away from the camera), and rotation jitter.

use serde::{Deserialize, Serialize};

use super::synth::{mirror_rotation, Sample, SMPL_MIRROR};
use crate::body::{BodyModel, NUM_JOINTS};
use crate::diffusion::Rng;
use crate::error::Result;
use crate::fit::Fitter;
use crate::geom::camera::Pinhole;
use crate::geom::rot::{axis_angle_to_matrix, mat3_apply, mat3_mul, mat3_transpose, matrix_to_rot6d, rot6d_to_matrix};

/// How a label is corrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Corruption {
    /// The left and right arm (or leg) chains swapped, each mirrored onto the other side.
    FlipLimbs,
    /// One upper arm or thigh reflected in depth: its bone direction's camera-z negated (the
    /// image direction kept), the limb below it carried along.
    Depth,
    /// Gaussian noise of 0.15 rad on every body joint's rotation.
    Jitter,
}

pub const CORRUPTIONS: [Corruption; 3] = [Corruption::FlipLimbs, Corruption::Depth, Corruption::Jitter];

const ARMS: ([usize; 4], [usize; 4]) = ([13, 16, 18, 20], [14, 17, 19, 21]);
const LEGS: ([usize; 4], [usize; 4]) = ([1, 4, 7, 10], [2, 5, 8, 11]);

fn r6(x: &[f32], j: usize) -> [f32; 9] {
    rot6d_to_matrix(&<[f32; 6]>::try_from(&x[j * 6..j * 6 + 6]).expect("6D"))
}

/// A corrupted copy of the label `x` `[144]` (camera-frame 6D pose); `rest` `[24, 3]` are the
/// body's rest joints, `parents` its tree.
pub fn corrupt(x: &[f32], kind: Corruption, rest: &[f32], parents: &[i32; NUM_JOINTS], rng: &mut Rng) -> Vec<f32> {
    let mut out = x.to_vec();
    match kind {
        Corruption::FlipLimbs => {
            let (l, r) = if rng.uniform() < 0.5 { ARMS } else { LEGS };
            for (&a, &b) in l.iter().zip(&r) {
                debug_assert_eq!(SMPL_MIRROR[a], b);
                let (ra, rb) = (r6(x, a), r6(x, b));
                out[a * 6..a * 6 + 6].copy_from_slice(&matrix_to_rot6d(&mirror_rotation(&rb)));
                out[b * 6..b * 6 + 6].copy_from_slice(&matrix_to_rot6d(&mirror_rotation(&ra)));
            }
        }
        Corruption::Depth => {
            // (joint, child) of the four limb roots: upper arms and thighs.
            let limbs = [(16usize, 18usize), (17, 19), (1, 4), (2, 5)];
            let (j, c) = limbs[rng.below(4) as usize];
            let mut g = [[0.0f32; 9]; NUM_JOINTS];
            for k in 0..NUM_JOINTS {
                let lr = r6(x, k);
                g[k] = if parents[k] < 0 { lr } else { mat3_mul(&g[parents[k] as usize], &lr) };
            }
            let bone = [rest[c * 3] - rest[j * 3], rest[c * 3 + 1] - rest[j * 3 + 1], rest[c * 3 + 2] - rest[j * 3 + 2]];
            let d = mat3_apply(&g[j], &bone);
            let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt().max(1e-9);
            let d = [d[0] / n, d[1] / n, d[2] / n];
            let e = [d[0], d[1], -d[2]];
            // Rotation taking d to e: axis d x e, angle acos(d . e).
            let ax = [d[1] * e[2] - d[2] * e[1], d[2] * e[0] - d[0] * e[2], d[0] * e[1] - d[1] * e[0]];
            let s = (ax[0] * ax[0] + ax[1] * ax[1] + ax[2] * ax[2]).sqrt();
            if s > 1e-6 {
                let ang = (d[0] * e[0] + d[1] * e[1] + d[2] * e[2]).clamp(-1.0, 1.0).acos();
                let q = axis_angle_to_matrix(&[ax[0] / s * ang, ax[1] / s * ang, ax[2] / s * ang]);
                let p = parents[j] as usize;
                let local = mat3_mul(&mat3_transpose(&g[p]), &mat3_mul(&q, &g[j]));
                out[j * 6..j * 6 + 6].copy_from_slice(&matrix_to_rot6d(&local));
            }
        }
        Corruption::Jitter => out = super::scorer::perturb(x, 0.15, rng),
    }
    out
}

/// Scores of labels `x` `[B, 144]` against their samples' observations by `fitter`'s scorer
/// (each label placed by the closed-form camera translation); unplaceable labels score -inf.
pub fn score_labels(fitter: &Fitter, samples: &[Sample], x: &[f32]) -> Result<Vec<f32>> {
    let scorer = fitter.scorer.as_ref().ok_or_else(|| crate::error::Error::Input("score_labels: the fitter has no scorer".into()))?;
    let mut out = Vec::with_capacity(samples.len());
    for (c, part) in samples.chunks(1024).enumerate() {
        let kp: Vec<f32> = part.iter().flat_map(|s| s.keypoints.iter().copied()).collect();
        let cams: Vec<Pinhole> = part.iter().map(|s| s.camera).collect();
        let xs = &x[c * 1024 * 144..(c * 1024 + part.len()) * 144];
        let placed = fitter.place_hypotheses(xs, &kp, &cams, 1, &[])?;
        let f = super::scorer::features(xs, &placed, &kp, &cams, 1);
        let s = scorer.score(&f, fitter.device())?;
        out.extend(s.iter().zip(&placed.reprojection_px).map(|(s, r)| if r.is_finite() { *s } else { f32::NEG_INFINITY }));
    }
    Ok(out)
}

/// Which samples to keep: all but the `frac` lowest-scoring.
pub fn keep_mask(scores: &[f32], frac: f64) -> Vec<bool> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].partial_cmp(&scores[b]).unwrap_or(std::cmp::Ordering::Equal));
    let drop = ((scores.len() as f64) * frac).round() as usize;
    let mut keep = vec![true; scores.len()];
    for &i in idx.iter().take(drop) {
        keep[i] = false;
    }
    keep
}

/// How well the dropped set matches the corrupted set.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CleanStats {
    pub samples: usize,
    pub corrupted: usize,
    pub dropped: usize,
    /// Dropped and corrupted / dropped.
    pub precision: f64,
    /// Dropped and corrupted / corrupted.
    pub recall: f64,
    /// Recall per corruption kind.
    pub recall_by_kind: Vec<(Corruption, f64)>,
}

pub fn clean_stats(kinds: &[Option<Corruption>], keep: &[bool]) -> CleanStats {
    let corrupted = kinds.iter().filter(|k| k.is_some()).count();
    let dropped = keep.iter().filter(|k| !**k).count();
    let hit = kinds.iter().zip(keep).filter(|(k, kept)| k.is_some() && !**kept).count();
    let recall_by_kind = CORRUPTIONS
        .iter()
        .map(|c| {
            let n = kinds.iter().filter(|k| **k == Some(*c)).count();
            let h = kinds.iter().zip(keep).filter(|(k, kept)| **k == Some(*c) && !**kept).count();
            (*c, h as f64 / n.max(1) as f64)
        })
        .collect();
    CleanStats { samples: kinds.len(), corrupted, dropped, precision: hit as f64 / dropped.max(1) as f64, recall: hit as f64 / corrupted.max(1) as f64, recall_by_kind }
}

/// Corrupts a fraction `frac` of `samples`' labels in place (kinds in turn); returns each
/// sample's corruption.
pub fn corrupt_samples(body: &BodyModel, samples: &mut [Sample], frac: f64, seed: u64) -> Result<Vec<Option<Corruption>>> {
    let mut rng = Rng::new(seed);
    let parents = *body.parents();
    let mut kinds = Vec::with_capacity(samples.len());
    let mut k = 0usize;
    for s in samples.iter_mut() {
        if rng.uniform() < frac {
            let kind = CORRUPTIONS[k % 3];
            k += 1;
            let rest = body.rest_joints(&s.betas)?;
            s.x = corrupt(&s.x, kind, &rest, &parents, &mut rng);
            let mut r = vec![0.0f32; 216];
            crate::geom::rot::rot6d_to_matrices(&s.x, &mut r)?;
            s.rotations = r;
            kinds.push(Some(kind));
        } else {
            kinds.push(None);
        }
    }
    Ok(kinds)
}
