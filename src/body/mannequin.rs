//! rigfit's own license-free default body: a smooth, watertight human mannequin in the SMPL
//! layout and kinematic tree, generated entirely by this code (no SMPL data is used).
//!
//! [`build`] returns the model as [`BodyArrays`]; `cargo run --release --example
//! make_default_body` writes it to `models/default_body.npz` (embedded in the library as
//! [`super::BodyModel::default_body`]) together with the picture and the model card
//! `models/DEFAULT_BODY.md`.
//!
//! # How the body is made
//! 1. **Shape.** A signed-distance field (SDF) made of a lofted torso (elliptic cross-sections
//!    interpolated along the height), tapered capsules ("round cones") for the neck and limbs,
//!    and ellipsoids for the head, jaw, nose, ears, shoulders, hands and feet, combined with a
//!    polynomial smooth union and cut flat at the soles. The dimensions come from the
//!    anthropometric segment-length ratios of stature below, for a neutral adult of 1.70 m.
//! 2. **Surface.** The zero level set is polygonised by marching tetrahedra (Kuhn's six-tet
//!    split of a 1 cm grid: a piecewise-linear isosurface on a conforming triangulation is
//!    always a closed 2-manifold), then decimated by shortest-edge collapses (with the link
//!    condition, so the surface stays a manifold of the same genus; edge lengths relative to a
//!    per-part sizing, finer at the face, hands and feet) to 8000 vertices in stages with
//!    Delaunay edge flips and a light tangential relaxation in between, then relaxed with every
//!    vertex projected back onto the SDF surface. Landmark vertices are moved exactly onto their
//!    points (rays cast onto the SDF) and pinned. Every face is checked to point along the SDF
//!    gradient (outward winding).
//! 3. **Skinning.** Each vertex is labelled with the joint whose bone owns the SDF part it lies
//!    on (the part with the smallest distance; the torso is split at the spine-joint heights,
//!    the forefoot at the ball of the foot), the one-hot labels are diffused over the mesh
//!    (Jacobi iterations of the uniform graph Laplacian), side joints fade out just beyond the
//!    mid-plane, and each vertex keeps at most 4 joints, renormalised.
//! 4. **Joint regressor.** Each joint is an affine, non-negative combination of a ring of
//!    surface vertices around it (vertices in a slab across the bone through the joint, within
//!    twice the distance to the nearest one): the minimum-norm deviation from uniform weights
//!    with sum 1 and weighted mean exactly the joint (an active-set loop keeps the weights
//!    non-negative). Joints therefore follow the surface when the shape changes, as SMPL's.
//! 5. **Shape directions.** Ten linear per-vertex displacement fields, each the change of the
//!    body for +1 unit (about one population standard deviation) of a named trait; see
//!    [`SHAPE_DIRECTIONS`].
//! 6. **Landmarks.** The pinned vertices of step 2: nose tip, eyes, ear tips, toe tips, heels.
//!
//! Pose correctives (`posedirs`) are all zero: plain linear blend skinning.
//!
//! Everything is deterministic: only `+ - * /` and `sqrt` (correctly rounded in IEEE 754) in f64,
//! fixed iteration orders, no hash-map iteration, and the only parallel loops compute
//! independent values. Two builds give bit-identical arrays on any machine.
//!
//! # Frame
//! SMPL's: metres, Y up, facing +Z, the body's left side at +X, T-pose with the arms along
//! +-X, palms down. As in SMPL's template the origin is inside the body: the pelvis joint is at
//! `(0, -0.24, 0)` and the floor (soles) at `y = `[`FLOOR_Y`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::{BodyArrays, NUM_JOINTS, NUM_LANDMARKS, NUM_POSE_FEATURES, SMPL_PARENTS};

// ---------------------------------------------------------------------------------------------
// Anthropometry
// ---------------------------------------------------------------------------------------------

/// Stature of the default body (m): a neutral adult.
pub const STATURE: f64 = 1.70;

/// Segment proportions as fractions of stature H, from Drillis & Contini (1966), "Body segment
/// parameters", as reproduced in D. A. Winter, "Biomechanics and Motor Control of Human
/// Movement" (4th ed., 2009), Fig. 4.1 (heights above the floor, standing):
mod ratio {
    /// Eye height 0.936 H.
    pub const EYE: f64 = 0.936;
    /// Chin height 0.870 H.
    pub const CHIN: f64 = 0.870;
    /// Shoulder (acromion) height 0.818 H.
    pub const SHOULDER: f64 = 0.818;
    /// Chest (nipple) height 0.720 H.
    pub const CHEST: f64 = 0.720;
    /// Elbow height 0.630 H (arm hanging): upper arm 0.818 - 0.630 = 0.188 H (Winter's 0.186 H).
    pub const ELBOW: f64 = 0.630;
    /// Hip (greater trochanter) height 0.530 H.
    pub const HIP: f64 = 0.530;
    /// Wrist height 0.485 H: forearm 0.145 H (Winter's 0.146 H).
    pub const WRIST: f64 = 0.485;
    /// Fingertip height 0.377 H: hand 0.108 H.
    pub const FINGERTIP: f64 = 0.377;
    /// Knee height 0.285 H: thigh 0.530 - 0.285 = 0.245 H.
    pub const KNEE: f64 = 0.285;
    /// Ankle height 0.039 H: shank 0.246 H.
    pub const ANKLE: f64 = 0.039;
    /// Shoulder width 0.259 H (across the deltoids).
    pub const SHOULDER_WIDTH: f64 = 0.259;
    /// Hip width 0.191 H.
    pub const HIP_WIDTH: f64 = 0.191;
    /// Foot length 0.152 H.
    pub const FOOT_LENGTH: f64 = 0.152;
    /// Foot width 0.055 H.
    pub const FOOT_WIDTH: f64 = 0.055;
}

/// Height of the model origin above the floor (m). The pelvis joint (0.985 m above the floor)
/// lands at y = -0.24 m, where SMPL's template has it.
const ORIGIN_ABOVE_FLOOR: f64 = 1.225;

/// The floor (sole) height in model coordinates (m).
pub const FLOOR_Y: f64 = -ORIGIN_ABOVE_FLOOR;

/// Waist height in model coordinates (m): where [`SHAPE_DIRECTIONS`]' waist circumference is
/// measured (1.07 m above the floor, the narrowest torso section, about 0.63 H).
pub const WAIST_Y: f64 = 1.07 - ORIGIN_ABOVE_FLOOR;

// Derived heights (m above the floor).
const H: f64 = STATURE;
const Y_HIP: f64 = ratio::HIP * H; // 0.901
const Y_KNEE: f64 = ratio::KNEE * H; // 0.4845
const Y_ANKLE: f64 = ratio::ANKLE * H; // 0.0663
/// Glenohumeral centre: 3.5 cm below the acromion.
const Y_SHOULDER: f64 = ratio::SHOULDER * H - 0.035; // 1.3556
const UPPER_ARM: f64 = Y_SHOULDER - ratio::ELBOW * H; // 0.2846
const FOREARM: f64 = (ratio::ELBOW - ratio::WRIST) * H; // 0.2465
const HAND: f64 = (ratio::WRIST - ratio::FINGERTIP) * H; // 0.1836
/// Glenohumeral centre: 5 cm medial of the deltoid's lateral surface.
const X_SHOULDER: f64 = ratio::SHOULDER_WIDTH * H * 0.5 - 0.05; // 0.170
const X_ELBOW: f64 = X_SHOULDER + UPPER_ARM;
const X_WRIST: f64 = X_ELBOW + FOREARM;
const X_FINGERTIP: f64 = X_WRIST + HAND;
/// Hip-joint centre: half the hip width minus 7.4 cm (femoral head to the skin over the
/// greater trochanter).
const X_HIP: f64 = ratio::HIP_WIDTH * H * 0.5 - 0.074; // 0.088
const X_KNEE: f64 = 0.095;
const X_ANKLE: f64 = 0.095;
const Z_ANKLE: f64 = -0.03;
/// Heel 6.5 cm behind the ankle joint; toe tip one foot length ahead of the heel.
const Z_HEEL: f64 = Z_ANKLE - 0.065;
const Z_TOE: f64 = Z_HEEL + ratio::FOOT_LENGTH * H;
/// Ball of the foot (metatarsophalangeal joints): 72% of the foot length from the heel.
const Z_BALL: f64 = Z_HEEL + 0.72 * ratio::FOOT_LENGTH * H;
const FOOT_HALF_WIDTH: f64 = ratio::FOOT_WIDTH * H * 0.5;
const Y_PELVIS: f64 = 0.985;
const Y_NECK: f64 = 1.435;
const Y_HEAD: f64 = 1.525;
const Y_CROWN: f64 = H;
const Y_CHIN: f64 = ratio::CHIN * H;
const Y_EYE: f64 = ratio::EYE * H;
const NOSE_BRIDGE: V3 = [0.0, 1.586, 0.104];
const NOSE_TIP: V3 = [0.0, 1.552, 0.118];
const EAR_Y: f64 = Y_EYE - 0.012;

/// The designed rest joints in floor coordinates (m), SMPL order.
fn design_joints_floor() -> [V3; NUM_JOINTS] {
    // Spine joints between the pelvis and the neck at SMPL's relative spacing (SMPL neutral
    // template: pelvis->spine1 24%, ->spine2 25%, ->spine3 10%, ->neck 41% of pelvis->neck).
    let span = Y_NECK - Y_PELVIS;
    let y_s1 = Y_PELVIS + 0.241 * span;
    let y_s2 = y_s1 + 0.250 * span;
    let y_s3 = y_s2 + 0.096 * span;
    let ys = Y_SHOULDER;
    let hand = X_WRIST + 0.45 * HAND;
    let mut j = [[0.0; 3]; NUM_JOINTS];
    j[0] = [0.0, Y_PELVIS, 0.0];
    j[1] = [X_HIP, Y_HIP, 0.0];
    j[3] = [0.0, y_s1, -0.02];
    j[4] = [X_KNEE, Y_KNEE, 0.005];
    j[6] = [0.0, y_s2, -0.015];
    j[7] = [X_ANKLE, Y_ANKLE, Z_ANKLE];
    j[9] = [0.0, y_s3, -0.015];
    j[10] = [X_ANKLE, 0.025, Z_BALL];
    j[12] = [0.0, Y_NECK, -0.03];
    j[13] = [0.075, 1.33, -0.025];
    j[15] = [0.0, Y_HEAD, -0.005];
    j[16] = [X_SHOULDER, ys, -0.035];
    j[18] = [X_ELBOW, ys, -0.04];
    j[20] = [X_WRIST, ys, -0.045];
    j[22] = [hand, ys - 0.002, -0.045];
    for (r, l) in [(2, 1), (5, 4), (8, 7), (11, 10), (14, 13), (17, 16), (19, 18), (21, 20), (23, 22)] {
        j[r] = [-j[l][0], j[l][1], j[l][2]];
    }
    j
}

/// The designed rest joints `[24, 3]` in model coordinates (what the regressor reproduces on
/// the template), SMPL order.
pub fn design_joints() -> [[f32; 3]; NUM_JOINTS] {
    design_joints_floor().map(|p| [p[0] as f32, (p[1] - ORIGIN_ABOVE_FLOOR) as f32, p[2] as f32])
}

/// One shape direction: `shapedirs[:, :, index]` is the displacement of +1 unit.
#[derive(Clone, Copy, Debug)]
pub struct ShapeDirection {
    /// Short name.
    pub name: &'static str,
    /// What +1 unit does (about one within-sex standard deviation of the adult trait, rounded,
    /// after the ANSUR II 2012 survey summary statistics).
    pub unit: &'static str,
}

/// The ten shape directions, in `betas` order.
pub const SHAPE_DIRECTIONS: [ShapeDirection; 10] = [
    ShapeDirection { name: "stature", unit: "+7.0 cm stature at constant proportions (uniform scale about the pelvis joint)" },
    ShapeDirection { name: "mass", unit: "girth: torso cross-sections +9% sideways, +16% front / +8% back (waist circumference about +8 cm), limbs +5-7%, neck +6%" },
    ShapeDirection { name: "shoulder_width", unit: "+2.0 cm shoulder breadth (arms move 1.0 cm outward each, the upper torso widens with them; shoulder joints +1.9 cm apart)" },
    ShapeDirection { name: "hip_width", unit: "+2.4 cm hip breadth (legs move 1.2 cm outward each, the pelvis widens with them, the waist does not; hip joints +1.5 cm apart)" },
    ShapeDirection { name: "leg_length", unit: "+4.0 cm hip-to-ankle length (legs stretch below the hip joints; the feet move down)" },
    ShapeDirection { name: "arm_length", unit: "+2.5 cm shoulder-to-wrist length (arms stretch outward of the shoulder joints)" },
    ShapeDirection { name: "torso_length", unit: "+3.0 cm hip-to-neck length (the body above the hips moves up, the torso stretches)" },
    ShapeDirection { name: "belly_depth", unit: "+3.0 cm front of the abdomen and lower chest (waist to chest), back unchanged" },
    ShapeDirection { name: "head_size", unit: "+2.6% head scale about the head joint (head circumference about +1.5 cm)" },
    ShapeDirection { name: "limb_girth", unit: "+8% circumference of the upper arms, forearms, thighs and calves (muscularity)" },
];

/// Number of shape directions.
pub const NUM_SHAPE_DIRS: usize = SHAPE_DIRECTIONS.len();

// ---------------------------------------------------------------------------------------------
// Small vector helpers (f64)
// ---------------------------------------------------------------------------------------------

type V3 = [f64; 3];

#[inline]
fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
#[inline]
fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
#[inline]
fn mul(a: V3, s: f64) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
#[inline]
fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
#[inline]
fn cross(a: V3, b: V3) -> V3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
#[inline]
fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}
#[inline]
fn normalize(a: V3) -> V3 {
    let n = norm(a);
    if n > 0.0 {
        mul(a, 1.0 / n)
    } else {
        a
    }
}
#[inline]
fn clamp01(t: f64) -> f64 {
    t.clamp(0.0, 1.0)
}
/// Smoothstep from 0 at `e0` to 1 at `e1`.
#[inline]
fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let t = clamp01((x - e0) / (e1 - e0));
    t * t * (3.0 - 2.0 * t)
}
/// GLSL `sign` (0 at 0).
#[inline]
fn sgn(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}
fn tri_normal(a: V3, b: V3, c: V3) -> V3 {
    cross(sub(b, a), sub(c, a))
}

// ---------------------------------------------------------------------------------------------
// Signed-distance field
// ---------------------------------------------------------------------------------------------

/// Polynomial smooth minimum (Quilez), blend width `k`.
#[inline]
fn smin(a: f64, b: f64, k: f64) -> f64 {
    if k <= 0.0 {
        return a.min(b);
    }
    let h = (k - (a - b).abs()).max(0.0) / k;
    a.min(b) - h * h * k * 0.25
}

/// Round cone (capsule with radius varying linearly from `ra` at `a` to `rb` at `b`), exact
/// distance (Quilez's `sdRoundCone`).
fn sd_round_cone(p: V3, a: V3, b: V3, ra: f64, rb: f64) -> f64 {
    let ba = sub(b, a);
    let l2 = dot(ba, ba);
    let rr = ra - rb;
    let a2 = l2 - rr * rr;
    let il2 = 1.0 / l2;
    let pa = sub(p, a);
    let y = dot(pa, ba);
    let z = y - l2;
    let xv = sub(mul(pa, l2), mul(ba, y));
    let x2 = dot(xv, xv);
    let y2 = y * y * l2;
    let z2 = z * z * l2;
    let k = sgn(rr) * rr * rr * x2;
    if sgn(z) * a2 * z2 > k {
        return (x2 + z2).sqrt() * il2 - rb;
    }
    if sgn(y) * a2 * y2 < k {
        return (x2 + y2).sqrt() * il2 - ra;
    }
    ((x2 * a2 * il2).sqrt() + y * rr) * il2 - ra
}

/// Axis-aligned ellipsoid, Quilez's bound `k0 (k0 - 1) / k1`.
fn sd_ellipsoid(p: V3, c: V3, r: V3) -> f64 {
    let q = sub(p, c);
    let k0 = norm([q[0] / r[0], q[1] / r[1], q[2] / r[2]]);
    let k1 = norm([q[0] / (r[0] * r[0]), q[1] / (r[1] * r[1]), q[2] / (r[2] * r[2])]);
    if k1 < 1e-12 {
        return -r[0].min(r[1]).min(r[2]);
    }
    k0 * (k0 - 1.0) / k1
}

/// Torso keyframes: (height above the floor, half-width, half-depth, centre z), metres.
/// Circumferences on the mesh: hips (0.90) 0.93 m, waist (1.07) 0.77 m, chest (1.224 = 0.720 H)
/// 0.91 m.
const TORSO_KEYS: [[f64; 4]; 10] = [
    [0.860, 0.163, 0.112, -0.012],
    [0.900, 0.166, 0.114, -0.012],
    [0.960, 0.160, 0.108, -0.006],
    [1.020, 0.150, 0.103, 0.000],
    [1.070, 0.142, 0.102, 0.004],
    [1.140, 0.152, 0.110, 0.010],
    [ratio::CHEST * H, 0.165, 0.122, 0.014],
    [1.290, 0.163, 0.116, 0.008],
    [1.340, 0.148, 0.100, -0.005],
    [1.375, 0.125, 0.085, -0.015],
];
/// Vertical semi-axes of the ellipsoidal caps below the first and above the last key.
const TORSO_CAP_BOTTOM: f64 = 0.072;
const TORSO_CAP_TOP: f64 = 0.055;

/// Cubic Hermite interpolation of the torso keys with Catmull-Rom tangents (zero at the ends,
/// so the caps join smoothly): returns (half-width, half-depth, centre z) at height `y`.
fn torso_section(y: f64) -> (f64, f64, f64) {
    let k = &TORSO_KEYS;
    let n = k.len();
    if y <= k[0][0] {
        return (k[0][1], k[0][2], k[0][3]);
    }
    if y >= k[n - 1][0] {
        return (k[n - 1][1], k[n - 1][2], k[n - 1][3]);
    }
    let mut i = 0;
    while k[i + 1][0] < y {
        i += 1;
    }
    let (y0, y1) = (k[i][0], k[i + 1][0]);
    let h = y1 - y0;
    let t = (y - y0) / h;
    let tangent = |idx: usize, c: usize| -> f64 {
        if idx == 0 || idx == n - 1 {
            0.0
        } else {
            (k[idx + 1][c] - k[idx - 1][c]) / (k[idx + 1][0] - k[idx - 1][0])
        }
    };
    let (t2, t3) = (t * t, t * t * t);
    let h00 = 2.0 * t3 - 3.0 * t2 + 1.0;
    let h10 = t3 - 2.0 * t2 + t;
    let h01 = -2.0 * t3 + 3.0 * t2;
    let h11 = t3 - t2;
    let f = |c: usize| h00 * k[i][c] + h10 * h * tangent(i, c) + h01 * k[i + 1][c] + h11 * h * tangent(i + 1, c);
    (f(1), f(2), f(3))
}

fn sd_torso(p: V3) -> f64 {
    let n = TORSO_KEYS.len();
    let (y0, yn) = (TORSO_KEYS[0][0], TORSO_KEYS[n - 1][0]);
    let (a, b, c) = torso_section(p[1]);
    let q = [p[0], 0.0, p[2] - c];
    if p[1] < y0 {
        sd_ellipsoid([q[0], p[1] - y0, q[2]], [0.0; 3], [a, TORSO_CAP_BOTTOM, b])
    } else if p[1] > yn {
        sd_ellipsoid([q[0], p[1] - yn, q[2]], [0.0; 3], [a, TORSO_CAP_TOP, b])
    } else {
        let k0 = (q[0] * q[0] / (a * a) + q[2] * q[2] / (b * b)).sqrt();
        let k1 = (q[0] * q[0] / (a * a * a * a) + q[2] * q[2] / (b * b * b * b)).sqrt();
        if k1 < 1e-12 {
            -a.min(b)
        } else {
            k0 * (k0 - 1.0) / k1
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    Cone { a: V3, b: V3, ra: f64, rb: f64 },
    Ellipsoid { c: V3, r: V3 },
    Torso,
}

/// Which joint's bone a part belongs to (for the skinning labels).
#[derive(Clone, Copy, Debug)]
enum Label {
    Joint(usize),
    /// Split by height at the spine-joint heights: pelvis, spine1, spine2, spine3.
    Torso,
    /// Split at the ball of the foot: (ankle joint, foot joint).
    Forefoot(usize, usize),
}

/// Where a part is blended in: the core (torso, neck, head) or a limb chain (0..4).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Group {
    Core,
    Limb(usize),
}

#[derive(Clone, Copy, Debug)]
struct Part {
    shape: Shape,
    label: Label,
    group: Group,
    /// Smooth-union width with what comes before it in its group (m).
    blend: f64,
    /// Relative target edge length for the decimation.
    size: f64,
}

impl Part {
    fn dist(&self, p: V3) -> f64 {
        match self.shape {
            Shape::Cone { a, b, ra, rb } => sd_round_cone(p, a, b, ra, rb),
            Shape::Ellipsoid { c, r } => sd_ellipsoid(p, c, r),
            Shape::Torso => sd_torso(p),
        }
    }
}

/// Smooth-union width between the core and the limbs (m).
const LIMB_BLEND: f64 = 0.03;
/// Smooth-intersection width of the sole cut (m).
const SOLE_BLEND: f64 = 0.006;

struct Body {
    parts: Vec<Part>,
}

impl Body {
    fn new() -> Self {
        let mut parts = Vec::new();
        let core = |shape, label, blend, size| Part { shape, label, group: Group::Core, blend, size };
        let cone = |a: V3, b: V3, ra: f64, rb: f64| Shape::Cone { a, b, ra, rb };
        let ell = |c: V3, r: V3| Shape::Ellipsoid { c, r };
        let j = design_joints_floor();
        // --- core: torso, neck, trapezius/clavicle, head ---
        parts.push(core(Shape::Torso, Label::Torso, 0.0, 1.0));
        parts.push(core(cone([0.0, 1.38, -0.025], [0.0, 1.53, -0.012], 0.056, 0.052), Label::Joint(12), 0.025, 0.65));
        for (s, jc) in [(1.0, 13), (-1.0, 14)] {
            parts.push(core(
                cone([s * 0.03, 1.405, -0.035], [s * 0.16, 1.365, -0.035], 0.045, 0.045),
                Label::Joint(jc),
                0.03,
                0.8,
            ));
        }
        // Head: crown at H, chin at 0.870 H; head breadth 0.156 m, length 0.20 m.
        let head_c = [0.0, (Y_CROWN + Y_CHIN) * 0.5 + 0.005, 0.012];
        let head_ry = Y_CROWN - head_c[1];
        parts.push(core(ell(head_c, [0.078, head_ry, 0.100]), Label::Joint(15), 0.025, 0.55));
        parts.push(core(ell([0.0, Y_CHIN + 0.036, 0.035], [0.055, 0.036, 0.056]), Label::Joint(15), 0.02, 0.5));
        // Nose: a tapered cone from the bridge (between the eyes) to the tip, 2.5 cm proud of
        // the face and 4 cm below eye level.
        parts.push(core(cone(NOSE_BRIDGE, NOSE_TIP, 0.009, 0.013), Label::Joint(15), 0.01, 0.3));
        for s in [1.0, -1.0] {
            parts.push(core(ell([s * 0.076, EAR_Y, -0.005], [0.018, 0.032, 0.022]), Label::Joint(15), 0.008, 0.3));
        }
        // --- arms (limb 0 left, 1 right) ---
        for (li, s) in [(0usize, 1.0f64), (1, -1.0)] {
            let (sh, el, wr) = if s > 0.0 { (16, 18, 20) } else { (17, 19, 21) };
            let hand = if s > 0.0 { 22 } else { 23 };
            let ys = Y_SHOULDER;
            let limb = |shape, label, blend, size| Part { shape, label, group: Group::Limb(li), blend, size };
            // Deltoid: lateral surface at half the shoulder width (0.259 H / 2).
            parts.push(limb(ell([s * X_SHOULDER, ys + 0.003, -0.035], [0.050, 0.050, 0.052]), Label::Joint(sh), 0.0, 0.8));
            parts.push(limb(cone(j[sh], j[el], 0.048, 0.037), Label::Joint(sh), 0.02, 0.7));
            let fa_mid = [s * (X_ELBOW + 0.085), ys, -0.042];
            parts.push(limb(cone(j[el], fa_mid, 0.038, 0.042), Label::Joint(el), 0.01, 0.65));
            parts.push(limb(cone(fa_mid, j[wr], 0.042, 0.026), Label::Joint(el), 0.01, 0.6));
            // Mitten hand, palm down: palm, fingers (tip at the fingertip length), thumb forward.
            let palm_c = [s * (X_WRIST + 0.047), ys - 0.002, -0.045];
            parts.push(limb(ell(palm_c, [0.058, 0.018, 0.043]), Label::Joint(wr), 0.015, 0.45));
            let fing_c = [s * (X_FINGERTIP - 0.052), ys - 0.004, -0.045];
            parts.push(limb(ell(fing_c, [0.052, 0.0145, 0.039]), Label::Joint(hand), 0.012, 0.45));
            parts.push(limb(
                cone([s * (X_WRIST + 0.017), ys - 0.008, -0.012], [s * (X_WRIST + 0.071), ys - 0.013, 0.016], 0.0145, 0.0125),
                Label::Joint(wr),
                0.01,
                0.4,
            ));
        }
        // --- legs (limb 2 left, 3 right) ---
        for (li, s) in [(2usize, 1.0f64), (3, -1.0)] {
            let (hip, knee, ankle, foot) = if s > 0.0 { (1, 4, 7, 10) } else { (2, 5, 8, 11) };
            let limb = |shape, label, blend, size| Part { shape, label, group: Group::Limb(li), blend, size };
            let x = s * X_ANKLE;
            // Circumferences on the mesh: upper thigh 0.48 m, mid-thigh 0.47 m, calf 0.37 m.
            let th_mid = [s * (X_HIP + 0.004), 0.70, 0.008];
            parts.push(limb(cone(j[hip], th_mid, 0.084, 0.072), Label::Joint(hip), 0.0, 0.95));
            parts.push(limb(cone(th_mid, j[knee], 0.072, 0.054), Label::Joint(hip), 0.01, 0.95));
            let calf = [s * X_KNEE, 0.36, -0.012];
            parts.push(limb(cone(j[knee], calf, 0.054, 0.057), Label::Joint(knee), 0.01, 0.85));
            parts.push(limb(cone(calf, j[ankle], 0.057, 0.034), Label::Joint(knee), 0.01, 0.8));
            // Foot: heel/hindfoot, instep, forefoot (length 0.152 H, width 0.055 H), sole cut at y = 0.
            parts.push(limb(ell([x, 0.040, Z_HEEL + 0.058], [0.034, 0.048, 0.058]), Label::Joint(ankle), 0.02, 0.5));
            parts.push(limb(cone([x, 0.055, -0.015], [x, 0.032, Z_BALL - 0.01], 0.033, 0.025), Label::Joint(ankle), 0.02, 0.5));
            let ff_rz = (Z_TOE - (Z_BALL - 0.03)) * 0.5 + 0.03;
            parts.push(limb(
                ell([x, 0.021, Z_TOE - ff_rz], [FOOT_HALF_WIDTH, 0.029, ff_rz]),
                Label::Forefoot(ankle, foot),
                0.02,
                0.5,
            ));
        }
        Body { parts }
    }

    /// Distances of every part at `p`, into `d` (`d.len() == parts.len()`).
    fn part_dists(&self, p: V3, d: &mut [f64]) {
        for (o, part) in d.iter_mut().zip(&self.parts) {
            *o = part.dist(p);
        }
    }

    fn combine(&self, p: V3, d: &[f64]) -> f64 {
        let mut core = f64::INFINITY;
        let mut limbs = [f64::INFINITY; 4];
        for (part, &di) in self.parts.iter().zip(d) {
            match part.group {
                Group::Core => core = if core.is_infinite() { di } else { smin(core, di, part.blend) },
                Group::Limb(l) => {
                    limbs[l] = if limbs[l].is_infinite() { di } else { smin(limbs[l], di, part.blend) }
                }
            }
        }
        let lim = limbs[0].min(limbs[1]).min(limbs[2]).min(limbs[3]);
        let body = smin(core, lim, LIMB_BLEND);
        // Flat soles: smooth intersection with the half-space y >= 0.
        -smin(-body, p[1], SOLE_BLEND)
    }

    fn sdf(&self, p: V3) -> f64 {
        debug_assert!(self.parts.len() <= 64);
        let mut d = [0.0f64; 64];
        let d = &mut d[..self.parts.len()];
        self.part_dists(p, d);
        self.combine(p, d)
    }

    fn grad(&self, p: V3) -> V3 {
        let e = 1e-5;
        let mut g = [0.0; 3];
        for k in 0..3 {
            let mut a = p;
            let mut b = p;
            a[k] += e;
            b[k] -= e;
            g[k] = (self.sdf(a) - self.sdf(b)) / (2.0 * e);
        }
        g
    }

    fn normal(&self, p: V3) -> V3 {
        normalize(self.grad(p))
    }

    /// Newton projection onto the zero level set.
    fn project(&self, mut p: V3) -> V3 {
        for _ in 0..8 {
            let d = self.sdf(p);
            if d.abs() < 1e-9 {
                break;
            }
            let g = self.grad(p);
            let g2 = dot(g, g);
            if g2 < 1e-12 {
                break;
            }
            p = sub(p, mul(g, d / g2));
        }
        p
    }

    /// The index of the part nearest to `p` (smallest part distance; ties to the first).
    fn owner(&self, p: V3) -> usize {
        let mut best = 0;
        let mut bd = f64::INFINITY;
        for (i, part) in self.parts.iter().enumerate() {
            let d = part.dist(p);
            if d < bd {
                bd = d;
                best = i;
            }
        }
        best
    }

    /// Skinning label (joint index) of a surface point.
    fn label(&self, p: V3, spine_y: [f64; 3]) -> usize {
        match self.parts[self.owner(p)].label {
            Label::Joint(j) => j,
            Label::Torso => {
                if p[1] < spine_y[0] {
                    0
                } else if p[1] < spine_y[1] {
                    3
                } else if p[1] < spine_y[2] {
                    6
                } else {
                    9
                }
            }
            Label::Forefoot(ankle, foot) => {
                if p[2] < Z_BALL {
                    ankle
                } else {
                    foot
                }
            }
        }
    }

    /// Relative target edge length at `p`.
    fn size(&self, p: V3) -> f64 {
        self.parts[self.owner(p)].size
    }

    /// First surface point along the ray `o + t dir` (sphere tracing), if any within `tmax`.
    fn ray_hit(&self, o: V3, dir: V3, tmax: f64) -> Option<V3> {
        let dir = normalize(dir);
        let mut t = 0.0;
        for _ in 0..400 {
            let p = add(o, mul(dir, t));
            let d = self.sdf(p);
            if d < 1e-7 {
                return Some(self.project(p));
            }
            // The field is a bound only approximately (ellipsoids, loft): step conservatively.
            t += (0.5 * d).max(1e-5);
            if t > tmax {
                break;
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Marching tetrahedra
// ---------------------------------------------------------------------------------------------

/// Grid step of the polygonisation (m).
const GRID_STEP: f64 = 0.01;

/// Polygonises the zero level set on a grid with Kuhn's six-tetrahedra split of each cube.
/// Faces wind counter-clockwise seen from outside (normal along the SDF gradient).
fn marching_tets(body: &Body) -> (Vec<V3>, Vec<[u32; 3]>) {
    let h = GRID_STEP;
    let half_x = X_FINGERTIP + 0.03;
    let nx = (2.0 * half_x / h).ceil() as usize + 2;
    let (y0, y1) = (-0.02, Y_CROWN + 0.03);
    let (z0, z1) = (-0.17, 0.21);
    let ny = ((y1 - y0) / h).ceil() as usize + 1;
    let nz = ((z1 - z0) / h).ceil() as usize + 1;
    // x nodes symmetric about 0 (no node on the mid-plane).
    let xs: Vec<f64> = (0..nx).map(|i| (i as f64 - (nx as f64 - 1.0) * 0.5) * h).collect();
    let ys: Vec<f64> = (0..ny).map(|j| y0 + j as f64 * h).collect();
    let zs: Vec<f64> = (0..nz).map(|k| z0 + k as f64 * h).collect();
    let node = |i: usize, j: usize, k: usize| i + nx * (j + ny * k);
    let pos = |n: usize| -> V3 { [xs[n % nx], ys[(n / nx) % ny], zs[n / (nx * ny)]] };
    let total = nx * ny * nz;
    let vals: Vec<f64> = (0..total)
        .into_par_iter()
        .with_min_len(4096)
        .map(|n| {
            let d = body.sdf(pos(n));
            // Never exactly zero (keeps the piecewise-linear surface a manifold).
            if d == 0.0 {
                1e-12
            } else {
                d
            }
        })
        .collect();

    let mut verts: Vec<V3> = Vec::new();
    let mut faces: Vec<[u32; 3]> = Vec::new();
    let mut edge_vid = vec![u32::MAX; total * 7];
    // Kuhn split: the tet of permutation (a, b, c) walks 000 -> e_a -> e_a + e_b -> 111.
    const PERMS: [[usize; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    for k in 0..nz - 1 {
        for j in 0..ny - 1 {
            for i in 0..nx - 1 {
                let corner = |o: [usize; 3]| node(i + o[0], j + o[1], k + o[2]);
                let mut any_in = false;
                let mut any_out = false;
                for c in 0..8 {
                    let v = vals[corner([c & 1, (c >> 1) & 1, (c >> 2) & 1])];
                    if v < 0.0 {
                        any_in = true;
                    } else {
                        any_out = true;
                    }
                }
                if !(any_in && any_out) {
                    continue;
                }
                for perm in PERMS {
                    let mut offs = [[0usize; 3]; 4];
                    offs[1][perm[0]] = 1;
                    offs[2] = offs[1];
                    offs[2][perm[1]] = 1;
                    offs[3] = [1, 1, 1];
                    let ids: [usize; 4] = std::array::from_fn(|t| corner(offs[t]));
                    let f: [f64; 4] = std::array::from_fn(|t| vals[ids[t]]);
                    let inside: Vec<usize> = (0..4).filter(|&t| f[t] < 0.0).collect();
                    let outside: Vec<usize> = (0..4).filter(|&t| f[t] >= 0.0).collect();
                    if inside.is_empty() || outside.is_empty() {
                        continue;
                    }
                    // Vertex on the tet edge (s, t) (s before t along the path: offs[s] <= offs[t]).
                    let mut edge_vertex = |a: usize, b: usize| -> (u32, V3) {
                        let (s, t) = if a < b { (a, b) } else { (b, a) };
                        let lo = ids[s];
                        let d = [offs[t][0] - offs[s][0], offs[t][1] - offs[s][1], offs[t][2] - offs[s][2]];
                        let code = d[0] + 2 * d[1] + 4 * d[2] - 1;
                        let key = lo * 7 + code;
                        let (pa, pb) = (pos(ids[s]), pos(ids[t]));
                        let mid = mul(add(pa, pb), 0.5);
                        if edge_vid[key] == u32::MAX {
                            let (fa, fb) = (f[s], f[t]);
                            let tt = (fa / (fa - fb)).clamp(0.02, 0.98);
                            verts.push(add(pa, mul(sub(pb, pa), tt)));
                            edge_vid[key] = (verts.len() - 1) as u32;
                        }
                        (edge_vid[key], mid)
                    };
                    let centroid = |set: &[usize]| -> V3 {
                        let mut c = [0.0; 3];
                        for &t in set {
                            c = add(c, pos(ids[t]));
                        }
                        mul(c, 1.0 / set.len() as f64)
                    };
                    let outward = sub(centroid(&outside), centroid(&inside));
                    let mut emit = |poly: &[(u32, V3)]| {
                        // Orientation from the edge midpoints (never degenerate).
                        let n = tri_normal(poly[0].1, poly[1].1, poly[2].1);
                        let flip = dot(n, outward) < 0.0;
                        for t in 1..poly.len() - 1 {
                            let (a, b, c) = (poly[0].0, poly[t].0, poly[t + 1].0);
                            faces.push(if flip { [a, c, b] } else { [a, b, c] });
                        }
                    };
                    match inside.len() {
                        1 => {
                            let a = inside[0];
                            let poly = [edge_vertex(a, outside[0]), edge_vertex(a, outside[1]), edge_vertex(a, outside[2])];
                            emit(&poly);
                        }
                        3 => {
                            let d = outside[0];
                            let poly = [edge_vertex(inside[0], d), edge_vertex(inside[1], d), edge_vertex(inside[2], d)];
                            emit(&poly);
                        }
                        _ => {
                            let (a, b) = (inside[0], inside[1]);
                            let (c, d) = (outside[0], outside[1]);
                            let poly = [edge_vertex(a, c), edge_vertex(a, d), edge_vertex(b, d), edge_vertex(b, c)];
                            emit(&poly);
                        }
                    }
                }
            }
        }
    }
    (verts, faces)
}

// ---------------------------------------------------------------------------------------------
// Mesh editing: decimation, flips, relaxation
// ---------------------------------------------------------------------------------------------

struct Mesh {
    pos: Vec<V3>,
    /// Unit surface normal (SDF gradient) at each vertex.
    nrm: Vec<V3>,
    /// Relative target edge length at each vertex.
    size: Vec<f64>,
    faces: Vec<[u32; 3]>,
    face_alive: Vec<bool>,
    /// Incident alive faces of each vertex (sorted).
    vf: Vec<Vec<u32>>,
    v_alive: Vec<bool>,
}

impl Mesh {
    fn new(body: &Body, pos: Vec<V3>, faces: Vec<[u32; 3]>) -> Self {
        let mut vf = vec![Vec::new(); pos.len()];
        for (fi, f) in faces.iter().enumerate() {
            for &v in f {
                vf[v as usize].push(fi as u32);
            }
        }
        let n = pos.len();
        let nf = faces.len();
        let nrm: Vec<V3> = pos.par_iter().with_min_len(512).map(|&p| body.normal(p)).collect();
        let size: Vec<f64> = pos.par_iter().with_min_len(512).map(|&p| body.size(p)).collect();
        Mesh { pos, nrm, size, faces, face_alive: vec![true; nf], vf, v_alive: vec![true; n] }
    }

    /// Sorted neighbours of `v`.
    fn neighbors(&self, v: u32) -> Vec<u32> {
        let mut n = Vec::with_capacity(8);
        for &fi in &self.vf[v as usize] {
            for &u in &self.faces[fi as usize] {
                if u != v {
                    n.push(u);
                }
            }
        }
        n.sort_unstable();
        n.dedup();
        n
    }

    /// Alive faces containing both `a` and `b`.
    fn edge_faces(&self, a: u32, b: u32) -> Vec<u32> {
        self.vf[a as usize].iter().copied().filter(|&fi| self.faces[fi as usize].contains(&b)).collect()
    }

    fn third(f: [u32; 3], a: u32, b: u32) -> u32 {
        *f.iter().find(|&&v| v != a && v != b).expect("a triangle has a third vertex")
    }

    /// Whether a face with corners `p` and corner normals `n` is acceptable: not degenerate,
    /// and its normal agrees with the surface normal.
    fn face_ok(p: [V3; 3], n: [V3; 3], min_cos: f64) -> bool {
        let fnrm = tri_normal(p[0], p[1], p[2]);
        let area2 = norm(fnrm);
        if area2 < 1e-10 {
            return false;
        }
        let sn = normalize(add(add(n[0], n[1]), n[2]));
        dot(fnrm, sn) > min_cos * area2
    }

    /// Triangle quality 4 sqrt(3) area / sum of squared edges (1 for equilateral).
    fn quality(p: [V3; 3]) -> f64 {
        let [a, b, c] = p;
        let n = tri_normal(a, b, c);
        let l = dot(sub(b, a), sub(b, a)) + dot(sub(c, b), sub(c, b)) + dot(sub(a, c), sub(a, c));
        if l <= 0.0 {
            return 0.0;
        }
        2.0 * 3f64.sqrt() * norm(n) / l
    }

    fn corners(&self, f: [u32; 3]) -> ([V3; 3], [V3; 3]) {
        (f.map(|v| self.pos[v as usize]), f.map(|v| self.nrm[v as usize]))
    }

    fn edge_cost(&self, a: u32, b: u32) -> f64 {
        let (a, b) = (a as usize, b as usize);
        norm(sub(self.pos[a], self.pos[b])) * 2.0 / (self.size[a] + self.size[b])
    }

    /// Collapses edge (a, b) into `a` at the midpoint if that keeps a valid manifold.
    fn try_collapse(&mut self, a: u32, b: u32) -> bool {
        let ef = self.edge_faces(a, b);
        if ef.len() != 2 {
            return false;
        }
        let o1 = Self::third(self.faces[ef[0] as usize], a, b);
        let o2 = Self::third(self.faces[ef[1] as usize], a, b);
        // Link condition: the common neighbours are exactly the two opposite vertices.
        let na = self.neighbors(a);
        let nb = self.neighbors(b);
        let common = na.iter().filter(|v| nb.binary_search(v).is_ok()).count();
        if common != 2 || o1 == o2 || na.len() + nb.len() < 7 {
            return false;
        }
        let (ia, ib) = (a as usize, b as usize);
        let p = mul(add(self.pos[ia], self.pos[ib]), 0.5);
        let n = normalize(add(self.nrm[ia], self.nrm[ib]));
        // Check every surviving face around a and b.
        for &v in &[a, b] {
            for &fi in &self.vf[v as usize] {
                let f = self.faces[fi as usize];
                if f.contains(&a) && f.contains(&b) {
                    continue;
                }
                let (old_p, old_n) = self.corners(f);
                let mut q = old_p;
                let mut qn = old_n;
                for t in 0..3 {
                    if f[t] == a || f[t] == b {
                        q[t] = p;
                        qn[t] = n;
                    }
                }
                if !Self::face_ok(q, qn, 0.3) {
                            return false;
                }
                let q_new = Self::quality(q);
                if q_new < 0.15 && q_new < Self::quality(old_p) {
                            return false;
                }
            }
        }
        // Apply.
        for &fi in &ef {
            self.face_alive[fi as usize] = false;
        }
        let b_faces = std::mem::take(&mut self.vf[ib]);
        for fi in b_faces {
            if !self.face_alive[fi as usize] {
                continue;
            }
            for v in self.faces[fi as usize].iter_mut() {
                if *v == b {
                    *v = a;
                }
            }
            self.vf[ia].push(fi);
        }
        for &v in &[a, o1, o2] {
            let alive = &self.face_alive;
            self.vf[v as usize].retain(|&fi| alive[fi as usize]);
            self.vf[v as usize].sort_unstable();
        }
        self.v_alive[ib] = false;
        self.size[ia] = 0.5 * (self.size[ia] + self.size[ib]);
        self.pos[ia] = p;
        self.nrm[ia] = n;
        true
    }

    fn alive_count(&self) -> usize {
        self.v_alive.iter().filter(|&&x| x).count()
    }

    /// Shortest-edge-first collapses (edge length over the local sizing) down to `target`
    /// vertices (or until no edge can collapse).
    fn decimate(&mut self, target: usize) {
        let mut heap: BinaryHeap<Reverse<(u64, u32, u32)>> = BinaryHeap::new();
        for (fi, f) in self.faces.iter().enumerate() {
            if !self.face_alive[fi] {
                continue;
            }
            for t in 0..3 {
                let (a, b) = (f[t], f[(t + 1) % 3]);
                if a < b {
                    heap.push(Reverse((self.edge_cost(a, b).to_bits(), a, b)));
                }
            }
        }
        let mut alive = self.alive_count();
        while alive > target {
            let Some(Reverse((cost, a, b))) = heap.pop() else { break };
            if !self.v_alive[a as usize] || !self.v_alive[b as usize] {
                continue;
            }
            if self.edge_cost(a, b).to_bits() != cost || self.edge_faces(a, b).is_empty() {
                continue;
            }
            if self.try_collapse(a, b) {
                alive -= 1;
                for n in self.neighbors(a) {
                    let (x, y) = if a < n { (a, n) } else { (n, a) };
                    heap.push(Reverse((self.edge_cost(x, y).to_bits(), x, y)));
                }
            }
        }
    }

    /// Delaunay edge flips (angle sum opposite an edge > pi) that improve the worse triangle
    /// and keep faces valid. Returns the number of flips.
    fn flip_pass(&mut self) -> usize {
        let mut flips = 0;
        for fi in 0..self.faces.len() {
            if !self.face_alive[fi] {
                continue;
            }
            for t in 0..3 {
                let f = self.faces[fi];
                let (a, b, c) = (f[t], f[(t + 1) % 3], f[(t + 2) % 3]);
                let ef = self.edge_faces(a, b);
                if ef.len() != 2 {
                    continue;
                }
                let gi = if ef[0] as usize == fi { ef[1] } else { ef[0] };
                let d = Self::third(self.faces[gi as usize], a, b);
                if d == c || self.vf[a as usize].len() <= 3 || self.vf[b as usize].len() <= 3 {
                    continue;
                }
                if self.neighbors(c).binary_search(&d).is_ok() {
                    continue;
                }
                let [pa, pb, pc, pd] = [a, b, c, d].map(|v| self.pos[v as usize]);
                // Flip if angle(c) + angle(d) > pi, i.e. sin(alpha + beta) < 0.
                let (u1, v1) = (sub(pa, pc), sub(pb, pc));
                let (u2, v2) = (sub(pa, pd), sub(pb, pd));
                let (s1, c1) = (norm(cross(u1, v1)), dot(u1, v1));
                let (s2, c2) = (norm(cross(u2, v2)), dot(u2, v2));
                if s1 * c2 + c1 * s2 >= -1e-15 {
                    continue;
                }
                // New faces (c, a, d) and (d, b, c).
                let f1 = [c, a, d];
                let f2 = [d, b, c];
                let (p1, n1) = self.corners(f1);
                let (p2, n2) = self.corners(f2);
                if !Self::face_ok(p1, n1, 0.3) || !Self::face_ok(p2, n2, 0.3) {
                    continue;
                }
                let qn = Self::quality(p1).min(Self::quality(p2));
                let qo = Self::quality([pa, pb, pc]).min(Self::quality([pb, pa, pd]));
                if qn <= qo {
                    continue;
                }
                self.faces[fi] = f1;
                self.faces[gi as usize] = f2;
                self.vf[a as usize].retain(|&x| x != gi);
                self.vf[b as usize].retain(|&x| x != fi as u32);
                self.vf[c as usize].push(gi);
                self.vf[d as usize].push(fi as u32);
                self.vf[c as usize].sort_unstable();
                self.vf[d as usize].sort_unstable();
                flips += 1;
                break;
            }
        }
        flips
    }

    /// Tangential relaxation without projection (during decimation; normals kept).
    fn relax_fast(&mut self, lambda: f64) {
        let n = self.pos.len();
        let old = self.pos.clone();
        let nbrs: Vec<Vec<u32>> = (0..n as u32).map(|v| if self.v_alive[v as usize] { self.neighbors(v) } else { Vec::new() }).collect();
        for v in 0..n {
            if nbrs[v].is_empty() {
                continue;
            }
            let mut c = [0.0; 3];
            let mut wsum = 0.0;
            for &u in &nbrs[v] {
                let w = 1.0 / self.size[u as usize];
                c = add(c, mul(old[u as usize], w));
                wsum += w;
            }
            c = mul(c, 1.0 / wsum);
            let nrm = self.nrm[v];
            let mut d = sub(c, old[v]);
            d = sub(d, mul(nrm, dot(d, nrm)));
            self.pos[v] = add(old[v], mul(d, lambda));
        }
        for fi in 0..self.faces.len() {
            if !self.face_alive[fi] {
                continue;
            }
            let f = self.faces[fi];
            let (p, nn) = self.corners(f);
            if !Self::face_ok(p, nn, 0.2) {
                for &v in &f {
                    self.pos[v as usize] = old[v as usize];
                }
            }
        }
    }

    /// Projects every vertex onto the surface and refreshes its normal.
    fn project_all(&mut self, body: &Body) {
        let out: Vec<(V3, V3)> = self
            .pos
            .par_iter()
            .with_min_len(256)
            .map(|&p| {
                let q = body.project(p);
                (q, body.normal(q))
            })
            .collect();
        for (v, (p, n)) in out.into_iter().enumerate() {
            self.pos[v] = p;
            self.nrm[v] = n;
        }
        self.size = self.pos.par_iter().with_min_len(512).map(|&p| body.size(p)).collect();
    }

    /// Tangential relaxation towards the neighbour centroid, then projection onto the surface
    /// (Jacobi: all moves from the old positions). Moves that would invert a face are undone.
    fn relax(&mut self, body: &Body, lambda: f64, pinned: &[bool]) {
        let n = self.pos.len();
        let (old, old_n) = (self.pos.clone(), self.nrm.clone());
        let nbrs: Vec<Vec<u32>> = (0..n as u32).map(|v| if self.v_alive[v as usize] { self.neighbors(v) } else { Vec::new() }).collect();
        let size = &self.size;
        let new: Vec<(V3, V3)> = (0..n)
            .into_par_iter()
            .with_min_len(256)
            .map(|v| {
                if nbrs[v].is_empty() || pinned[v] {
                    return (old[v], old_n[v]);
                }
                // Centroid with weights 1 / size: at equilibrium the spacing follows the sizing.
                let mut c = [0.0; 3];
                let mut wsum = 0.0;
                for &u in &nbrs[v] {
                    let w = 1.0 / size[u as usize];
                    c = add(c, mul(old[u as usize], w));
                    wsum += w;
                }
                c = mul(c, 1.0 / wsum);
                let nrm = old_n[v];
                let mut d = sub(c, old[v]);
                d = sub(d, mul(nrm, dot(d, nrm)));
                let q = body.project(add(old[v], mul(d, lambda)));
                (q, body.normal(q))
            })
            .collect();
        for (v, (p, nn)) in new.into_iter().enumerate() {
            self.pos[v] = p;
            self.nrm[v] = nn;
        }
        self.size = self.pos.par_iter().with_min_len(512).map(|&p| body.size(p)).collect();
        // Undo moves around faces that became invalid (repeat until none).
        for _ in 0..10 {
            let mut bad = false;
            for fi in 0..self.faces.len() {
                if !self.face_alive[fi] {
                    continue;
                }
                let f = self.faces[fi];
                let (p, nn) = self.corners(f);
                if !Self::face_ok(p, nn, 0.2) {
                    for &v in &f {
                        let v = v as usize;
                        if self.pos[v] != old[v] {
                            self.pos[v] = old[v];
                            self.nrm[v] = old_n[v];
                            bad = true;
                        }
                    }
                }
            }
            if !bad {
                break;
            }
        }
    }

    /// Compacts alive vertices and faces (in index order).
    fn compact(&self) -> (Vec<V3>, Vec<[u32; 3]>) {
        let mut map = vec![u32::MAX; self.pos.len()];
        let mut pos = Vec::new();
        for (v, &alive) in self.v_alive.iter().enumerate() {
            if alive && !self.vf[v].is_empty() {
                map[v] = pos.len() as u32;
                pos.push(self.pos[v]);
            }
        }
        let faces = self
            .faces
            .iter()
            .zip(&self.face_alive)
            .filter(|(_, &a)| a)
            .map(|(f, _)| f.map(|v| map[v as usize]))
            .collect();
        (pos, faces)
    }
}

/// Target vertex count of the decimation.
const TARGET_VERTS: usize = 8000;

/// The surface mesh and the vertex ids of the landmark points `marks` (each a surface point;
/// the nearest vertex is moved onto it and kept there).
fn make_surface(body: &Body, marks: &[V3]) -> (Vec<V3>, Vec<[u32; 3]>, Vec<u32>) {
    let (v, f) = marching_tets(body);
    let mut m = Mesh::new(body, v, f);
    // Staged: flips and a light relaxation between stages unblock collapses.
    let stages = [m.alive_count() / 2, m.alive_count() / 4, TARGET_VERTS * 3 / 2, TARGET_VERTS];
    for (si, &stage) in stages.iter().enumerate() {
        m.decimate(stage.max(TARGET_VERTS));
        for _ in 0..3 {
            if m.flip_pass() == 0 {
                break;
            }
        }
        if si + 1 < stages.len() {
            m.relax_fast(0.5);
            m.flip_pass();
        }
    }
    for _ in 0..8 {
        m.decimate(TARGET_VERTS);
        if m.alive_count() <= TARGET_VERTS {
            break;
        }
        for _ in 0..3 {
            if m.flip_pass() == 0 {
                break;
            }
        }
    }
    let (v, f) = m.compact();
    let mut m = Mesh::new(body, v, f);
    m.project_all(body);
    for _ in 0..4 {
        if m.flip_pass() == 0 {
            break;
        }
    }
    let mut pinned = vec![false; m.pos.len()];
    for it in 0..4 {
        m.relax(body, 0.5, &pinned);
        if it % 2 == 1 {
            m.flip_pass();
        }
    }
    // Pin the landmarks: move the nearest free vertex onto each point.
    let mut ids = Vec::with_capacity(marks.len());
    for &q in marks {
        let mut best = usize::MAX;
        let mut bd = f64::INFINITY;
        for (i, &p) in m.pos.iter().enumerate() {
            let d = dot(sub(p, q), sub(p, q));
            if !pinned[i] && m.v_alive[i] && d < bd {
                bd = d;
                best = i;
            }
        }
        pinned[best] = true;
        m.pos[best] = q;
        m.nrm[best] = body.normal(q);
        ids.push(best);
    }
    for it in 0..8 {
        m.relax(body, 0.5, &pinned);
        if it % 2 == 1 {
            m.flip_pass();
        }
    }
    for _ in 0..3 {
        if m.flip_pass() == 0 {
            break;
        }
    }
    let (pos, faces) = m.compact();
    // compact() keeps every alive vertex in order: map the old ids.
    let mut map = vec![u32::MAX; m.pos.len()];
    let mut next = 0u32;
    for (i, &a) in m.v_alive.iter().enumerate() {
        if a && !m.vf[i].is_empty() {
            map[i] = next;
            next += 1;
        }
    }
    (pos, faces, ids.into_iter().map(|i| map[i]).collect())
}

// ---------------------------------------------------------------------------------------------
// Rig: skinning weights, joint regressor, shape directions, landmarks
// ---------------------------------------------------------------------------------------------

fn vertex_neighbors(nv: usize, faces: &[[u32; 3]]) -> Vec<Vec<u32>> {
    let mut nb = vec![Vec::new(); nv];
    for f in faces {
        for t in 0..3 {
            let (a, b) = (f[t], f[(t + 1) % 3]);
            nb[a as usize].push(b);
            nb[b as usize].push(a);
        }
    }
    for n in nb.iter_mut() {
        n.sort_unstable();
        n.dedup();
    }
    nb
}

/// Jacobi iterations of weight diffusion over the mesh graph.
const SKIN_DIFFUSION_ITERS: usize = 16;
/// Weights below this (after diffusion) are dropped; at most this many joints per vertex.
const SKIN_MIN_WEIGHT: f64 = 0.01;
const SKIN_MAX_JOINTS: usize = 4;

/// Skinning weights `[V][24]` (f64, rows sum to 1, at most 4 non-zeros).
fn skin_weights(body: &Body, pos: &[V3], nbrs: &[Vec<u32>], joints: &[V3; NUM_JOINTS]) -> Vec<[f64; NUM_JOINTS]> {
    // Torso bands: pelvis below spine1, spine1 up to spine2, spine2 up to 6 cm above spine3 (the
    // lower rib cage; SMPL's spine2 -> spine3 bone is short), spine3 above (upper chest).
    let spine_y = [joints[3][1], joints[6][1], joints[9][1] + 0.06];
    let mut w: Vec<[f64; NUM_JOINTS]> = pos
        .iter()
        .map(|&p| {
            let mut r = [0.0; NUM_JOINTS];
            r[body.label(p, spine_y)] = 1.0;
            r
        })
        .collect();
    for _ in 0..SKIN_DIFFUSION_ITERS {
        let next: Vec<[f64; NUM_JOINTS]> = (0..pos.len())
            .map(|v| {
                let mut acc = [0.0; NUM_JOINTS];
                for &u in &nbrs[v] {
                    for j in 0..NUM_JOINTS {
                        acc[j] += w[u as usize][j];
                    }
                }
                let inv = 1.0 / nbrs[v].len() as f64;
                std::array::from_fn(|j| 0.5 * w[v][j] + 0.5 * acc[j] * inv)
            })
            .collect();
        w = next;
    }
    // No left/right cross talk through the crotch or the neck: the weights of side joints fade
    // out within 2 cm beyond the mid-plane.
    const LEFT: [usize; 9] = [1, 4, 7, 10, 13, 16, 18, 20, 22];
    for (row, p) in w.iter_mut().zip(pos) {
        let before = *row;
        for l in LEFT {
            row[l] *= smoothstep(-0.02, 0.01, p[0]);
            row[l + 1] *= smoothstep(-0.02, 0.01, -p[0]);
        }
        if row.iter().sum::<f64>() < 1e-6 {
            *row = before;
        }
    }
    for row in w.iter_mut() {
        let mut idx: Vec<usize> = (0..NUM_JOINTS).collect();
        idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        let keep: Vec<usize> = idx.into_iter().take(SKIN_MAX_JOINTS).filter(|&j| row[j] >= SKIN_MIN_WEIGHT).collect();
        let sum: f64 = keep.iter().map(|&j| row[j]).sum();
        let mut out = [0.0; NUM_JOINTS];
        for &j in &keep {
            out[j] = row[j] / sum;
        }
        *row = out;
    }
    w
}

/// Solves the 4x4 system `m x = r` (Gaussian elimination with partial pivoting).
fn solve4(mut m: [[f64; 4]; 4], mut r: [f64; 4]) -> Option<[f64; 4]> {
    for c in 0..4 {
        let mut piv = c;
        for row in c + 1..4 {
            if m[row][c].abs() > m[piv][c].abs() {
                piv = row;
            }
        }
        if m[piv][c].abs() < 1e-14 {
            return None;
        }
        m.swap(c, piv);
        r.swap(c, piv);
        let (pivot_row, pivot_r) = (m[c], r[c]);
        for (row, (mr, rr)) in m.iter_mut().zip(r.iter_mut()).enumerate() {
            if row != c {
                let f = mr[c] / pivot_row[c];
                for (x, &p) in mr.iter_mut().zip(&pivot_row).skip(c) {
                    *x -= f * p;
                }
                *rr -= f * pivot_r;
            }
        }
    }
    Some(std::array::from_fn(|i| r[i] / m[i][i]))
}

/// Non-negative weights over `pts` (relative to the joint) with sum 1 and weighted mean 0,
/// closest to uniform: repeated minimum-norm corrections with an active set.
fn ring_weights(pts: &[V3]) -> Option<Vec<f64>> {
    let n = pts.len();
    let mut active = vec![true; n];
    for _ in 0..n {
        let idx: Vec<usize> = (0..n).filter(|&i| active[i]).collect();
        if idx.len() < 4 {
            return None;
        }
        let w0 = 1.0 / idx.len() as f64;
        // A = [p_i; 1] (4 x m); w = w0 + A^T (A A^T)^-1 (b - A w0), b = [0, 0, 0, 1].
        let mut aat = [[0.0; 4]; 4];
        let mut aw0 = [0.0; 4];
        for &i in &idx {
            let row = [pts[i][0], pts[i][1], pts[i][2], 1.0];
            for r in 0..4 {
                aw0[r] += row[r] * w0;
                for c in 0..4 {
                    aat[r][c] += row[r] * row[c];
                }
            }
        }
        let rhs = [-aw0[0], -aw0[1], -aw0[2], 1.0 - aw0[3]];
        let lam = solve4(aat, rhs)?;
        let mut w = vec![0.0; n];
        let mut neg = false;
        for &i in &idx {
            let row = [pts[i][0], pts[i][1], pts[i][2], 1.0];
            w[i] = w0 + (0..4).map(|r| row[r] * lam[r]).sum::<f64>();
            if w[i] < 0.0 {
                neg = true;
                active[i] = false;
            }
        }
        if !neg {
            return Some(w);
        }
    }
    None
}

/// Joint regressor `[24][V]` (sparse rows as (vertex, weight), f64).
fn joint_regressor(pos: &[V3], joints: &[V3; NUM_JOINTS]) -> Vec<Vec<(u32, f64)>> {
    let axis = |j: usize| -> V3 {
        match j {
            10 | 11 => [0.0, 0.0, 1.0],
            13 | 14 | 16..=23 => [1.0, 0.0, 0.0],
            _ => [0.0, 1.0, 0.0],
        }
    };
    (0..NUM_JOINTS)
        .map(|j| {
            let c = joints[j];
            let a = axis(j);
            let mut slab = 0.012;
            loop {
                let cand: Vec<usize> = (0..pos.len()).filter(|&v| dot(sub(pos[v], c), a).abs() < slab).collect();
                let dmin = cand.iter().map(|&v| norm(sub(pos[v], c))).fold(f64::INFINITY, f64::min);
                let mut reach = 2.0;
                let mut found = None;
                while reach < 4.0 {
                    let ring: Vec<usize> = cand.iter().copied().filter(|&v| norm(sub(pos[v], c)) < reach * dmin).collect();
                    let rel: Vec<V3> = ring.iter().map(|&v| sub(pos[v], c)).collect();
                    if let Some(w) = ring_weights(&rel) {
                        found = Some(ring.iter().zip(w).filter(|(_, w)| *w > 0.0).map(|(&v, w)| (v as u32, w)).collect::<Vec<_>>());
                        break;
                    }
                    reach += 0.25;
                }
                if let Some(r) = found {
                    break r;
                }
                slab *= 1.5;
                assert!(slab < 0.2, "no vertex ring around joint {j}");
            }
        })
        .collect()
}

/// Perpendicular offset of `p` from the line through `a` and `b`.
fn radial(p: V3, a: V3, b: V3) -> V3 {
    let u = normalize(sub(b, a));
    let v = sub(p, a);
    sub(v, mul(u, dot(v, u)))
}

/// Shape directions `[V][S]` of displacement vectors (floor coordinates; translation-free).
fn shape_dirs(pos: &[V3], w: &[[f64; NUM_JOINTS]], j: &[V3; NUM_JOINTS]) -> Vec<[V3; NUM_SHAPE_DIRS]> {
    let y_sh = j[16][1];
    let y_neck = j[12][1];
    let t_sh = (y_sh - Y_HIP) / (y_neck - Y_HIP);
    pos.iter()
        .zip(w)
        .map(|(&p, wv)| {
            let mut d = [[0.0; 3]; NUM_SHAPE_DIRS];
            let side = sgn(p[0]);
            let (_, _, cz) = torso_section(p[1]);
            let torso_r = [p[0], 0.0, p[2] - cz];
            let w_torso = wv[0] + wv[3] + wv[6] + wv[9];
            let w_arm_l = wv[16] + wv[18] + wv[20] + wv[22];
            let w_arm_r = wv[17] + wv[19] + wv[21] + wv[23];
            let w_leg_l = wv[1] + wv[4] + wv[7] + wv[10];
            let w_leg_r = wv[2] + wv[5] + wv[8] + wv[11];
            // Radial offsets about the limb bones.
            let limb_radial = |jj: usize, child: usize| radial(p, j[jj], j[child]);

            // 0 stature: +7 cm, uniform scale about the pelvis joint.
            d[0] = mul(sub(p, j[0]), 0.07 / STATURE);

            // 1 mass / girth.
            {
                let gz = if torso_r[2] > 0.0 { 0.16 } else { 0.08 };
                let tor = [0.09 * torso_r[0], 0.0, gz * torso_r[2]];
                let mut v = mul(tor, w_torso);
                v = add(v, mul([0.06 * torso_r[0], 0.0, 0.06 * torso_r[2]], wv[13] + wv[14]));
                v = add(v, mul(limb_radial(12, 15), 0.06 * wv[12]));
                for (jj, child, g) in [(1, 4, 0.07), (2, 5, 0.07), (4, 7, 0.05), (5, 8, 0.05), (16, 18, 0.07), (17, 19, 0.07), (18, 20, 0.05), (19, 21, 0.05)] {
                    v = add(v, mul(limb_radial(jj, child), g * wv[jj]));
                }
                d[1] = v;
            }

            // 2 shoulder width: +2 cm (1 cm each side).
            {
                let ramp = smoothstep(0.04, 0.17, p[0].abs());
                let upper = wv[13] + wv[14] + wv[9] + wv[12] + 0.5 * wv[6];
                d[2] = [0.01 * ((w_arm_l - w_arm_r) + side * ramp * upper), 0.0, 0.0];
            }

            // 3 hip width: +2.4 cm (1.2 cm each side); fades out between the iliac crest and
            // the waist.
            {
                let ramp = smoothstep(0.0, 0.10, p[0].abs()) * (1.0 - smoothstep(0.95, 1.07, p[1]));
                d[3] = [0.012 * ((w_leg_l - w_leg_r) + side * ramp * (wv[0] + wv[3])), 0.0, 0.0];
            }

            // 4 leg length: +4 cm hip-to-ankle; below the ankle the foot moves rigidly.
            d[4] = [0.0, -0.04 * clamp01((Y_HIP - p[1]) / (Y_HIP - Y_ANKLE)), 0.0];

            // 5 arm length: +2.5 cm shoulder-to-wrist, the hand moves rigidly.
            {
                let t = clamp01((p[0].abs() - X_SHOULDER) / (X_WRIST - X_SHOULDER));
                d[5] = [side * 0.025 * t * smoothstep(1.2, 1.28, p[1]), 0.0, 0.0];
            }

            // 6 torso length: +3 cm hip-to-neck.
            {
                let w_arm = w_arm_l + w_arm_r + wv[13] + wv[14];
                let w_top = wv[12] + wv[15];
                let w_rest = (1.0 - w_arm - w_top).max(0.0);
                let t = w_arm * t_sh + w_top + w_rest * clamp01((p[1] - Y_HIP) / (y_neck - Y_HIP));
                d[6] = [0.0, 0.03 * t, 0.0];
            }

            // 7 belly depth: +3 cm at the front of the abdomen.
            {
                let (_, b, _) = torso_section(p[1]);
                let bump = smoothstep(0.93, 1.03, p[1]) * (1.0 - smoothstep(1.22, 1.32, p[1]));
                let front = (torso_r[2] / b).clamp(0.0, 1.2);
                d[7] = [0.0, 0.0, 0.03 * bump * front * w_torso];
            }

            // 8 head size: +2.6% scale about the head joint.
            d[8] = mul(sub(p, j[15]), 0.026 * wv[15]);

            // 9 limb girth: +8%.
            {
                let mut v = [0.0; 3];
                for (jj, child) in [(1, 4), (2, 5), (4, 7), (5, 8), (16, 18), (17, 19), (18, 20), (19, 21)] {
                    v = add(v, mul(limb_radial(jj, child), 0.08 * wv[jj]));
                }
                d[9] = v;
            }
            d
        })
        .collect()
}

/// Landmark surface points in `LANDMARK_NAMES` order (floor coordinates), found by casting rays
/// onto the SDF.
fn landmark_points(body: &Body) -> [V3; NUM_LANDMARKS] {
    let hit = |o: V3, dir: V3| -> V3 { body.ray_hit(o, dir, 1.0).expect("landmark ray hits the body") };
    let xa = X_ANKLE;
    let eye_x = 0.032;
    let back = [0.0, 0.0, -1.0];
    [
        // nose tip
        hit([0.0, NOSE_TIP[1], 0.4], back),
        // right eye (-x), left eye (+x): on the face at eye height
        hit([-eye_x, Y_EYE, 0.4], back),
        hit([eye_x, Y_EYE, 0.4], back),
        // right ear, left ear: lateral tips
        hit([-0.4, EAR_Y, -0.005], [1.0, 0.0, 0.0]),
        hit([0.4, EAR_Y, -0.005], [-1.0, 0.0, 0.0]),
        // left foot: big toe (medial), small toe (lateral), heel
        hit([xa - 0.02, 0.018, 0.5], back),
        hit([xa + 0.032, 0.015, 0.5], back),
        hit([xa, 0.025, -0.5], [0.0, 0.0, 1.0]),
        // right foot
        hit([-(xa - 0.02), 0.018, 0.5], back),
        hit([-(xa + 0.032), 0.015, 0.5], back),
        hit([-xa, 0.025, -0.5], [0.0, 0.0, 1.0]),
    ]
}

/// Builds the default body (deterministic).
pub fn build() -> BodyArrays {
    let body = Body::new();
    let joints = design_joints_floor();
    let (pos, faces, lm_ids) = make_surface(&body, &landmark_points(&body));
    let nv = pos.len();
    let nbrs = vertex_neighbors(nv, &faces);
    let w = skin_weights(&body, &pos, &nbrs, &joints);
    let reg = joint_regressor(&pos, &joints);
    let sd = shape_dirs(&pos, &w, &joints);
    let lm: [u32; NUM_LANDMARKS] = std::array::from_fn(|i| lm_ids[i]);

    let s = NUM_SHAPE_DIRS;
    let mut v_template = Vec::with_capacity(nv * 3);
    for p in &pos {
        v_template.extend_from_slice(&[p[0] as f32, (p[1] - ORIGIN_ABOVE_FLOOR) as f32, p[2] as f32]);
    }
    let mut shapedirs = vec![0f32; nv * 3 * s];
    for (v, dirs) in sd.iter().enumerate() {
        for k in 0..3 {
            for (l, dir) in dirs.iter().enumerate() {
                shapedirs[(v * 3 + k) * s + l] = dir[k] as f32;
            }
        }
    }
    let mut j_regressor = vec![0f32; NUM_JOINTS * nv];
    for (jj, row) in reg.iter().enumerate() {
        for &(v, wt) in row {
            j_regressor[jj * nv + v as usize] = wt as f32;
        }
    }
    let mut weights = vec![0f32; nv * NUM_JOINTS];
    for (v, row) in w.iter().enumerate() {
        for (jj, &x) in row.iter().enumerate() {
            weights[v * NUM_JOINTS + jj] = x as f32;
        }
    }
    BodyArrays {
        name: "rigfit_default".into(),
        v_template,
        shapedirs,
        num_betas: s,
        posedirs: vec![0f32; NUM_POSE_FEATURES * nv * 3],
        j_regressor,
        weights,
        parents: SMPL_PARENTS,
        faces,
        landmarks: lm,
    }
}
