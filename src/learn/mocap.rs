//! Mocap clips retargeted to SMPL's 24-joint tree: the pose data of the prior.
//!
//! Two skeletons of the CMU Graphics Lab Motion Capture Database are supported, each with its own
//! table ([`CMU`], [`DAZ`]); [`detect`] picks one from the joint names:
//! - `cmu/`: the 31-joint "MotionBuilder-friendly" BVH conversion (root `Hips`, ZYX channels).
//! - `cmu-daz/`: the 43-joint "Daz-friendly" conversion (root `hip`, ZXY channels, centimetres).
//!
//! The recipe (reference/mocap.md), the same for both:
//! 1. Forward kinematics of the BVH gives each joint's global rotation `G` and position.
//! 2. For each SMPL joint `j` with source joint `s(j)`:
//!    `G_smpl[j] = G[s(j)] * G_T[s(j)]^-1`, where `G_T` is frame 0, the clip's T-pose. The T-pose
//!    thus maps to SMPL's rest pose (identity everywhere); both face +Z with Y up, as SMPL.
//! 3. Local rotations `R[j] = G_smpl[parent(j)]^-1 * G_smpl[j]`.
//! 4. Root translation: the pelvis pivot (the BVH root) in metres.
//!
//! Every SMPL joint also has a *pivot*, a point that moves rigidly with a source joint. Forward
//! kinematics of the SMPL tree with the T-pose pivots as rest joints and the retargeted rotations
//! reproduces the pivots of every frame exactly (tests/mocap.rs checks it to 1e-6 m); the pivots
//! are only used for that check and for placing the pose on a body of the same proportions.
//!
//! Caveats for a prior (reference/mocap.md):
//! - Some SMPL joints never move in this data ([`SkeletonMap::static_joints`]; CMU:
//!   [`STATIC_JOINTS`] = collars and hands; Daz: also spine3 and the feet): a prior trained on it
//!   pins them (CMU's hands at a constant ~7 degree bend, see [`STATIC_JOINTS`]). Mask them from
//!   the loss, or let the fit leave them at rest.
//! - The CMU (cgspeed) T-pose has the upper arms 8.0 degrees below horizontal, and it is mapped
//!   to SMPL's rest pose (arms horizontal): a constant per-joint bias of the shoulders. Remove it
//!   with a per-joint rest alignment if it matters. The Daz T-pose (frame 0) has them 2.8 degrees
//!   below horizontal (both measured by tests/mocap.rs).
//! - A few frames of the CMU set are blank (every rotation zero: missing data); they are left
//!   out ([`Retarget::is_blank`]).
//! - Frame 0 of every clip is an added T-pose (both sets); it is the rest reference and is not
//!   part of the output.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::body::{NUM_JOINTS, SMPL_PARENTS};
use crate::error::{Error, Result};
use crate::geom::rot::{identity, mat3_apply, mat3_mul, mat3_transpose};
use crate::io::bvh::Bvh;

/// A retargeted clip.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    /// The file's path relative to the folder it was loaded from, without `.bvh`, with `/`
    /// separators (`01/01_09`, `salsa/03`); the file stem for a single file.
    pub name: String,
    /// Frames per second of the output: `1 / (step * frame_time)` with the file's true frame
    /// time.
    pub fps: f32,
    /// Local rotations `[F * 24]` (row-major 3x3, SMPL joint order, parent-relative; joint 0 is
    /// the global orientation in the Y-up world).
    pub rotations: Vec<[f32; 9]>,
    /// Root (pelvis pivot) position per frame `[F]`, metres, Y-up world.
    pub translations: Vec<[f32; 3]>,
}

impl Clip {
    /// Number of frames `F`.
    pub fn num_frames(&self) -> usize {
        self.translations.len()
    }

    /// The local rotations of frame `f`, flat `[24 * 9]` (the layout `learn::synth` takes).
    ///
    /// # Panics
    /// If `f >= num_frames()`.
    pub fn pose(&self, f: usize) -> &[f32] {
        self.rotations[f * NUM_JOINTS..(f + 1) * NUM_JOINTS].as_flattened()
    }
}

/// A point that moves rigidly with a BVH joint, used as an SMPL joint's pivot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pivot {
    /// The joint's own pivot.
    Joint(&'static str),
    /// The End Site of the joint.
    EndSite(&'static str),
    /// The point a fraction `t` of the way from the parent of `child` to `child` (moves with
    /// the parent).
    Along { child: &'static str, t: f64 },
}

/// How one BVH skeleton maps onto the SMPL tree.
#[derive(Clone, Debug, PartialEq)]
pub struct SkeletonMap {
    /// Short name (`"cmu"`, `"daz"`).
    pub name: &'static str,
    /// For each SMPL joint, the BVH joint whose global rotation drives it `[24]`.
    pub rotation: [&'static str; NUM_JOINTS],
    /// For each SMPL joint, its pivot `[24]`.
    pub pivot: [Pivot; NUM_JOINTS],
    /// Metres per file unit.
    pub metres_per_unit: f64,
    /// SMPL joints whose local rotation is the identity in every frame of this data.
    pub static_joints: &'static [usize],
}

/// SMPL joints that never move in the CMU data (reference/mocap.md): the collars (13, 14: CMU's
/// clavicles are always zero, so they stay at rest) and the hands (22, 23: no finger capture).
/// The hands are constant but not at rest: `L/RHandIndex1` hold -7.125 / +7.125 degrees about Z
/// in the motion and 0 in the T-pose, so SMPL's hands sit at a constant ~7 degree bend (and at
/// rest in the first 50 frames of 03_02). Mask these joints from a prior's loss.
pub const STATIC_JOINTS: [usize; 4] = [13, 14, 22, 23];

/// SMPL joints that never move in the Daz-skeleton data: spine3 (9, rigid with `chest`), the
/// feet (10, 11: the skeleton has no toe joint), the collars (13, 14) and the hands (22, 23):
/// `l/rCollar` and the fingers have constant channels in all 25 clips.
pub const DAZ_STATIC_JOINTS: [usize; 7] = [9, 10, 11, 13, 14, 22, 23];

/// CMU units to metres: the CMU ASF length unit is 1/0.45 inch = 0.056444 m (mocap README).
pub const CMU_METRES_PER_UNIT: f64 = 0.056444;

/// The CMU "MotionBuilder-friendly" skeleton (reference/mocap.md, table "CMU BVH to the SMPL
/// 24-joint tree"). `L/RHipJoint` have no motion and fold into the hip offsets; the two CMU
/// neck segments become SMPL neck (Neck) and head (global rotation of Head, pivot Neck1); the
/// wrist takes the global rotation of `L/RFingerBase` (zero offset from `L/RHand`, which carries
/// only one moving channel); `L/RThumb` is dropped.
pub const CMU: SkeletonMap = SkeletonMap {
    name: "cmu",
    rotation: [
        "Hips",
        "LeftUpLeg",
        "RightUpLeg",
        "LowerBack",
        "LeftLeg",
        "RightLeg",
        "Spine",
        "LeftFoot",
        "RightFoot",
        "Spine1",
        "LeftToeBase",
        "RightToeBase",
        "Neck",
        "LeftShoulder",
        "RightShoulder",
        "Head",
        "LeftArm",
        "RightArm",
        "LeftForeArm",
        "RightForeArm",
        "LeftFingerBase",
        "RightFingerBase",
        "LeftHandIndex1",
        "RightHandIndex1",
    ],
    pivot: [
        Pivot::Joint("Hips"),
        Pivot::Joint("LeftUpLeg"),
        Pivot::Joint("RightUpLeg"),
        Pivot::Joint("LowerBack"),
        Pivot::Joint("LeftLeg"),
        Pivot::Joint("RightLeg"),
        Pivot::Joint("Spine"),
        Pivot::Joint("LeftFoot"),
        Pivot::Joint("RightFoot"),
        Pivot::Joint("Spine1"),
        Pivot::Joint("LeftToeBase"),
        Pivot::Joint("RightToeBase"),
        Pivot::Joint("Neck"),
        Pivot::Joint("LeftShoulder"),
        Pivot::Joint("RightShoulder"),
        Pivot::Joint("Neck1"),
        Pivot::Joint("LeftArm"),
        Pivot::Joint("RightArm"),
        Pivot::Joint("LeftForeArm"),
        Pivot::Joint("RightForeArm"),
        Pivot::Joint("LeftHand"),
        Pivot::Joint("RightHand"),
        Pivot::Joint("LeftHandIndex1"),
        Pivot::Joint("RightHandIndex1"),
    ],
    metres_per_unit: CMU_METRES_PER_UNIT,
    static_joints: &STATIC_JOINTS,
};

/// The CMU "Daz-friendly" skeleton (cmu-daz/README.md): root `hip`, `abdomen`, `chest`, `neck`,
/// `head`; `l/rCollar`, `l/rShldr`, `l/rForeArm`, `l/rHand` with fingers; `l/rButtock`,
/// `l/rThigh`, `l/rShin`, `l/rFoot` (End Site at the toe tip).
///
/// Its own table, because the skeleton differs from CMU's (worked out from `standard.bvh` and
/// the channel ranges of all 25 clips):
/// - Spine: two joints for SMPL's three. `abdomen` sits 20.7 cm above `hip` and `chest` 11.7 cm
///   above that, the heights of SMPL's spine1 and spine2 over the hips; SMPL spine3 (whose
///   children are the neck and the collars, as `chest`'s are) becomes a point rigid with `chest`,
///   0.2 of the way to `neck` (about 4.5 cm up; SMPL's spine2 -> spine3 bone is about 5 cm), so
///   its local rotation is always the identity.
/// - Hips: `l/rButtock` never move (constant channels), so they fold into the offset of
///   `l/rThigh`, which drives SMPL's hips.
/// - Feet: no toe joint. SMPL's foot (10, 11) takes the `l/rFoot` End Site (toe tip) as pivot and
///   `l/rFoot`'s rotation (local identity).
/// - Hands: the fingers never move; SMPL's hand (22, 23) pivots at `l/rMid1` (the middle-finger
///   knuckle) and takes `l/rHand`'s rotation (local identity). Eyes and fingers are dropped.
/// - Units: centimetres (legs 36.8 + 45.1 units, hip height 85 units: a 1.7 m figure in cm).
pub const DAZ: SkeletonMap = SkeletonMap {
    name: "daz",
    rotation: [
        "hip", "lThigh", "rThigh", "abdomen", "lShin", "rShin", "chest", "lFoot", "rFoot", "chest", "lFoot", "rFoot",
        "neck", "lCollar", "rCollar", "head", "lShldr", "rShldr", "lForeArm", "rForeArm", "lHand", "rHand", "lHand",
        "rHand",
    ],
    pivot: [
        Pivot::Joint("hip"),
        Pivot::Joint("lThigh"),
        Pivot::Joint("rThigh"),
        Pivot::Joint("abdomen"),
        Pivot::Joint("lShin"),
        Pivot::Joint("rShin"),
        Pivot::Joint("chest"),
        Pivot::Joint("lFoot"),
        Pivot::Joint("rFoot"),
        Pivot::Along { child: "neck", t: 0.2 },
        Pivot::EndSite("lFoot"),
        Pivot::EndSite("rFoot"),
        Pivot::Joint("neck"),
        Pivot::Joint("lCollar"),
        Pivot::Joint("rCollar"),
        Pivot::Joint("head"),
        Pivot::Joint("lShldr"),
        Pivot::Joint("rShldr"),
        Pivot::Joint("lForeArm"),
        Pivot::Joint("rForeArm"),
        Pivot::Joint("lHand"),
        Pivot::Joint("rHand"),
        Pivot::Joint("lMid1"),
        Pivot::Joint("rMid1"),
    ],
    // Centimetres (see above).
    metres_per_unit: 0.01,
    static_joints: &DAZ_STATIC_JOINTS,
};

/// The skeleton table for `bvh`, recognised by its root and leg joint names (`Hips` +
/// `LeftUpLeg`: [`CMU`]; `hip` + `lThigh`: [`DAZ`]).
pub fn detect(bvh: &Bvh) -> Option<&'static SkeletonMap> {
    let root = bvh.joints.first().map(|j| j.name.as_str());
    if root == Some("Hips") && bvh.joint_index("LeftUpLeg").is_some() {
        Some(&CMU)
    } else if root == Some("hip") && bvh.joint_index("lThigh").is_some() {
        Some(&DAZ)
    } else {
        None
    }
}

/// Validation clips, held out BY CLIP (poses of one clip are strongly correlated, so a split by
/// frame would leak). Chosen by hand, before any training, to spread over subjects and motion
/// types; never change it, or earlier validation numbers stop being comparable.
///
/// CMU (12 of 90 clips, 13%; motion types from the CMU index): playground climbing (01_05
/// climb/go under, 01_11 hang/lean/jump down), run/jog (02_03), swordplay (02_08), uneven
/// terrain (03_02), modern dance / ballet (05_04, 05_13), basketball dribbling (06_03 forward,
/// 06_12 turns and crossover), walk (07_08), walk/run (08_05), run (09_07).
///
/// Daz set (3 of 25 clips, 12%): one per style: salsa/07, martial/05, indian/13. There the split
/// matters for the 2D-only fine-tuning: its 3D poses of the validation clips measure whether
/// fine-tuning helps on the new domain.
///
/// An entry matches a clip name equal to it or ending in `/` + entry (`01/01_05`).
pub const VALIDATION_CLIPS: [&str; 15] = [
    "01_05", "01_11", "02_03", "02_08", "03_02", "05_04", "05_13", "06_03", "06_12", "07_08", "08_05", "09_07",
    "salsa/07", "martial/05", "indian/13",
];

/// Whether the clip `name` (a [`Clip::name`]) belongs to the validation split
/// ([`VALIDATION_CLIPS`]).
pub fn is_validation(name: &str) -> bool {
    VALIDATION_CLIPS.iter().any(|v| {
        name == *v || (name.len() > v.len() && name.ends_with(v) && name.as_bytes()[name.len() - v.len() - 1] == b'/')
    })
}

/// A BVH clip bound to a skeleton table: source joints resolved, T-pose inverses cached.
pub struct Retarget<'a> {
    bvh: &'a Bvh,
    map: &'a SkeletonMap,
    src: [usize; NUM_JOINTS],
    /// Pivot of each SMPL joint: a BVH joint and a local offset in its frame (file units).
    pivot: [(usize, [f64; 3]); NUM_JOINTS],
    /// `G_T[s(j)]^-1` from frame 0.
    rest_inv: [[f64; 9]; NUM_JOINTS],
}

impl<'a> Retarget<'a> {
    /// Binds `bvh` to `map`. `origin` (a file name) goes into the error messages. Errors if a
    /// joint of the table is missing or the clip has no frame after the T-pose.
    pub fn new(bvh: &'a Bvh, map: &'a SkeletonMap, origin: &str) -> Result<Self> {
        let find = |name: &str| {
            bvh.joint_index(name).ok_or_else(|| {
                Error::Input(format!("{origin}: no joint `{name}` (expected the {} skeleton)", map.name))
            })
        };
        let mut src = [0usize; NUM_JOINTS];
        let mut pivot = [(0usize, [0.0f64; 3]); NUM_JOINTS];
        for j in 0..NUM_JOINTS {
            src[j] = find(map.rotation[j])?;
            pivot[j] = match map.pivot[j] {
                Pivot::Joint(n) => (find(n)?, [0.0; 3]),
                Pivot::EndSite(n) => {
                    let k = find(n)?;
                    let e = bvh.joints[k].end_site.ok_or_else(|| {
                        Error::Input(format!("{origin}: joint `{n}` has no End Site ({} skeleton)", map.name))
                    })?;
                    (k, e)
                }
                Pivot::Along { child, t } => {
                    let k = find(child)?;
                    let p = bvh.joints[k].parent.ok_or_else(|| {
                        Error::Input(format!("{origin}: joint `{child}` has no parent ({} skeleton)", map.name))
                    })?;
                    let o = bvh.joints[k].offset;
                    (p, [o[0] * t, o[1] * t, o[2] * t])
                }
            };
        }
        if bvh.frames < 2 {
            return Err(Error::Input(format!(
                "{origin}: {} frame(s): expected the T-pose (frame 0) and at least one more",
                bvh.frames
            )));
        }
        let g0 = bvh.global_transforms(0);
        let rest_inv = std::array::from_fn(|j| mat3_transpose(&g0[src[j]].0));
        Ok(Retarget { bvh, map, src, pivot, rest_inv })
    }

    /// The skeleton table.
    pub fn map(&self) -> &SkeletonMap {
        self.map
    }

    /// SMPL global rotations of BVH frame `f` relative to the T-pose `[24]`.
    pub fn global_rotations(&self, f: usize) -> [[f64; 9]; NUM_JOINTS] {
        let g = self.bvh.global_transforms(f);
        std::array::from_fn(|j| mat3_mul(&g[self.src[j]].0, &self.rest_inv[j]))
    }

    /// Local rotations `[24]` (SMPL order) and root translation (metres) of BVH frame `f`, in
    /// f64. Frame 0 gives the identity everywhere.
    ///
    /// # Panics
    /// If `f >= bvh.frames`.
    pub fn frame(&self, f: usize) -> ([[f64; 9]; NUM_JOINTS], [f64; 3]) {
        let g = self.bvh.global_transforms(f);
        let gs: [[f64; 9]; NUM_JOINTS] = std::array::from_fn(|j| mat3_mul(&g[self.src[j]].0, &self.rest_inv[j]));
        let local = std::array::from_fn(|j| match SMPL_PARENTS[j] {
            p if p < 0 => gs[j],
            p => mat3_mul(&mat3_transpose(&gs[p as usize]), &gs[j]),
        });
        let s = self.map.metres_per_unit;
        let (k, o) = self.pivot[0];
        let d = mat3_apply(&g[k].0, &o);
        let t = std::array::from_fn(|i| (g[k].1[i] + d[i]) * s);
        (local, t)
    }

    /// The SMPL joints' pivots in BVH frame `f`, metres `[24]`. Frame 0 gives the rest joints
    /// that the retargeted rotations are relative to.
    pub fn pivots(&self, f: usize) -> [[f64; 3]; NUM_JOINTS] {
        let g = self.bvh.global_transforms(f);
        let s = self.map.metres_per_unit;
        std::array::from_fn(|j| {
            let (k, o) = self.pivot[j];
            let d = mat3_apply(&g[k].0, &o);
            std::array::from_fn(|i| (g[k].1[i] + d[i]) * s)
        })
    }

    /// Frame step for the target frame rate `fps`: `round(1 / (fps * frame_time))`, at least 1
    /// (120 fps -> 30 fps: 4).
    pub fn step(&self, fps: f32) -> usize {
        ((1.0 / (fps as f64 * self.bvh.frame_time)).round() as usize).max(1)
    }

    /// Whether BVH frame `f` is blank: every rotation channel exactly zero. No capture gives
    /// that (in CMU's skeleton it is a pose with the legs splayed ~20 degrees, not a T-pose); the
    /// conversion writes it where data is missing (cmu 07_12 frame 1, 09_10 frames 1-4).
    pub fn is_blank(&self, f: usize) -> bool {
        let row = self.bvh.frame(f);
        let mut k = 0;
        for j in &self.bvh.joints {
            for c in &j.channels {
                if c.is_rotation() && row[k] != 0.0 {
                    return false;
                }
                k += 1;
            }
        }
        true
    }

    /// The clip at about `fps` frames per second: BVH frames 1, 1 + step, 1 + 2 step, ...
    /// (frame 0, the T-pose, is skipped; [`Retarget::step`]), leaving out blank frames
    /// ([`Retarget::is_blank`]).
    pub fn clip(&self, name: &str, fps: f32) -> Result<Clip> {
        check_fps(fps)?;
        let step = self.step(fps);
        let n = (self.bvh.frames - 1).div_ceil(step);
        let mut rotations = Vec::with_capacity(n * NUM_JOINTS);
        let mut translations = Vec::with_capacity(n);
        for f in (1..self.bvh.frames).step_by(step) {
            if self.is_blank(f) {
                continue;
            }
            let (r, t) = self.frame(f);
            rotations.extend(r.iter().map(|m| m.map(|x| x as f32)));
            translations.push(t.map(|x| x as f32));
        }
        if translations.is_empty() {
            return Err(Error::Input(format!("{name}: no frame with motion after the T-pose")));
        }
        Ok(Clip {
            name: name.to_string(),
            fps: (1.0 / (step as f64 * self.bvh.frame_time)) as f32,
            rotations,
            translations,
        })
    }
}

fn check_fps(fps: f32) -> Result<()> {
    if !(fps.is_finite() && fps > 0.0) {
        return Err(Error::Input(format!("mocap: target frame rate {fps} must be positive")));
    }
    Ok(())
}

/// Retargets `bvh` with the skeleton table `map` to a [`Clip`] at about `fps` frames per second.
pub fn retarget(bvh: &Bvh, map: &SkeletonMap, name: &str, fps: f32) -> Result<Clip> {
    Retarget::new(bvh, map, name)?.clip(name, fps)
}

/// Loads one BVH file, recognises its skeleton ([`detect`]) and retargets it. The clip is named
/// `name`.
pub fn load_clip(path: impl AsRef<Path>, name: &str, fps: f32) -> Result<Clip> {
    let path = path.as_ref();
    let bvh = Bvh::load(path)?;
    let map = detect(&bvh).ok_or_else(|| {
        Error::Input(format!(
            "{}: unknown skeleton (root `{}`): expected CMU (Hips, LeftUpLeg, ...) or Daz (hip, lThigh, ...)",
            path.display(),
            bvh.joints.first().map(|j| j.name.as_str()).unwrap_or("")
        ))
    })?;
    Retarget::new(&bvh, map, &path.display().to_string())?.clip(name, fps)
}

/// Every `.bvh` file under `dir` (recursively), retargeted at about `fps` frames per second,
/// sorted by name ([`Clip::name`]: the path relative to `dir`). A file named `standard.bvh` is
/// skipped: in the Daz set it is the skeleton's rest hierarchy (a 3-frame copy of salsa/01).
pub fn load_dir(dir: impl AsRef<Path>, fps: f32) -> Result<Vec<Clip>> {
    load_dir_with_progress(dir, fps, None)
}

/// [`load_dir`] with a progress callback `(files done, files in all)`, called from the calling
/// thread. Files are parsed in parallel (rayon).
pub fn load_dir_with_progress(
    dir: impl AsRef<Path>,
    fps: f32,
    mut progress: Option<&mut dyn FnMut(usize, usize)>,
) -> Result<Vec<Clip>> {
    check_fps(fps)?;
    let dir = dir.as_ref();
    let mut files = Vec::new();
    collect_bvh(dir, dir, &mut files)?;
    if files.is_empty() {
        return Err(Error::Input(format!("{}: no .bvh files in this folder", dir.display())));
    }
    files.sort();
    let total = files.len();
    let chunk = rayon::current_num_threads().max(1) * 2;
    let mut clips = Vec::with_capacity(total);
    for part in files.chunks(chunk) {
        let loaded: Vec<Result<Clip>> = part.par_iter().map(|(name, path)| load_clip(path, name, fps)).collect();
        for c in loaded {
            clips.push(c?);
        }
        if let Some(p) = progress.as_deref_mut() {
            p(clips.len(), total);
        }
    }
    Ok(clips)
}

/// Collects `(name, path)` of the `.bvh` files under `dir`; `name` is relative to `root`.
fn collect_bvh(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let path = e.path();
        let ty = e.file_type().map_err(|e| Error::io(&path, e))?;
        if ty.is_dir() || (ty.is_symlink() && path.is_dir()) {
            collect_bvh(root, &path, out)?;
            continue;
        }
        let is_bvh = path.extension().is_some_and(|x| x.eq_ignore_ascii_case("bvh"));
        if !is_bvh || path.file_name().is_some_and(|n| n == "standard.bvh") {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap_or(&path).with_extension("");
        let name = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        out.push((name, path));
    }
    Ok(())
}

/// Forward kinematics of the SMPL tree: joint positions `[24]` from local rotations `[24]`
/// (row-major), rest joints `[24]` and the root position. `pos[0] = root`,
/// `pos[j] = pos[p] + G[p] (rest[j] - rest[p])`, `G[j] = G[p] R[j]`.
pub fn smpl_joint_positions(
    local: &[[f64; 9]; NUM_JOINTS],
    rest: &[[f64; 3]; NUM_JOINTS],
    root: [f64; 3],
) -> [[f64; 3]; NUM_JOINTS] {
    let mut g = [identity::<f64>(); NUM_JOINTS];
    let mut pos = [[0.0; 3]; NUM_JOINTS];
    for j in 0..NUM_JOINTS {
        match SMPL_PARENTS[j] {
            p if p < 0 => {
                g[j] = local[j];
                pos[j] = root;
            }
            p => {
                let p = p as usize;
                g[j] = mat3_mul(&g[p], &local[j]);
                let d = [rest[j][0] - rest[p][0], rest[j][1] - rest[p][1], rest[j][2] - rest[p][2]];
                let d = mat3_apply(&g[p], &d);
                pos[j] = [pos[p][0] + d[0], pos[p][1] + d[1], pos[p][2] + d[2]];
            }
        }
    }
    pos
}
