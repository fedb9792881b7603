//! Tests of rigfit's license-free default body (`rigfit::body::mannequin`): mesh topology and
//! geometry, the rig (joints, regressor, skinning), bending without collapse, the meaning of
//! every shape direction, landmarks, determinism, and the embedded models/default_body.npz.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use rigfit::body::mannequin::{self, FLOOR_Y, NUM_SHAPE_DIRS, SHAPE_DIRECTIONS, WAIST_Y};
use rigfit::body::{BodyArrays, BodyModel, BodyOutput, NUM_JOINTS, SMPL_PARENTS};
use rigfit::geom::rot::axis_angle_to_matrix;

type V3 = [f64; 3];

fn arrays() -> &'static BodyArrays {
    static A: OnceLock<BodyArrays> = OnceLock::new();
    A.get_or_init(mannequin::build)
}

fn model() -> &'static BodyModel {
    static M: OnceLock<BodyModel> = OnceLock::new();
    M.get_or_init(|| BodyModel::new(arrays().clone()).expect("the default body validates"))
}

fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: V3, b: V3) -> V3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}
fn unit(a: V3) -> V3 {
    let n = norm(a);
    [a[0] / n, a[1] / n, a[2] / n]
}
fn pt(v: &[f32], i: usize) -> V3 {
    [v[i * 3] as f64, v[i * 3 + 1] as f64, v[i * 3 + 2] as f64]
}

/// Local rotations `[24, 9]` from (joint, axis-angle) pairs; the others identity.
fn rotmats(aa: &[(usize, [f32; 3])]) -> Vec<f32> {
    (0..NUM_JOINTS)
        .flat_map(|j| {
            let v = aa.iter().find(|(i, _)| *i == j).map(|(_, v)| *v).unwrap_or([0.0; 3]);
            axis_angle_to_matrix(&v)
        })
        .collect()
}

fn pose(betas: &[f32], aa: &[(usize, [f32; 3])]) -> BodyOutput {
    let mut out = BodyOutput::default();
    model().forward(betas, &rotmats(aa), &[0.0; 3], &mut out).expect("forward");
    out
}

fn beta(k: usize, value: f32) -> Vec<f32> {
    let mut b = vec![0.0; NUM_SHAPE_DIRS];
    b[k] = value;
    b
}

fn height(v: &[f32]) -> f64 {
    let ys = v.iter().skip(1).step_by(3);
    let (lo, hi) = ys.fold((f32::MAX, f32::MIN), |(lo, hi), &y| (lo.min(y), hi.max(y)));
    (hi - lo) as f64
}

fn signed_volume(v: &[f32], faces: &[[u32; 3]]) -> f64 {
    faces
        .iter()
        .map(|f| {
            let (a, b, c) = (pt(v, f[0] as usize), pt(v, f[1] as usize), pt(v, f[2] as usize));
            dot(a, cross(b, c)) / 6.0
        })
        .sum()
}

/// Number of mesh triangles the ray `o + t d` (t > 0) crosses (Moller-Trumbore).
fn ray_crossings(v: &[f32], faces: &[[u32; 3]], o: V3, d: V3) -> usize {
    let mut n = 0;
    for f in faces {
        let (a, b, c) = (pt(v, f[0] as usize), pt(v, f[1] as usize), pt(v, f[2] as usize));
        let (e1, e2) = (sub(b, a), sub(c, a));
        let p = cross(d, e2);
        let det = dot(e1, p);
        if det.abs() < 1e-14 {
            continue;
        }
        let s = sub(o, a);
        let u = dot(s, p) / det;
        if !(0.0..=1.0).contains(&u) {
            continue;
        }
        let q = cross(s, e1);
        let w = dot(d, q) / det;
        if w < 0.0 || u + w > 1.0 {
            continue;
        }
        if dot(e2, q) / det > 0.0 {
            n += 1;
        }
    }
    n
}

fn inside(v: &[f32], faces: &[[u32; 3]], p: V3) -> bool {
    let dirs = [unit([0.5377, 0.2712, 0.7983]), unit([-0.3121, 0.8677, -0.1894]), unit([0.1183, -0.4417, -0.8893])];
    dirs.iter().filter(|&&d| ray_crossings(v, faces, p, d) % 2 == 1).count() >= 2
}

/// Area of the mesh's cross-section with the plane through `c` with normal `n`, counting only
/// intersection segments within `radius` of `c` (segments oriented by the face normals, so the
/// enclosed area is positive).
fn section_area(v: &[f32], faces: &[[u32; 3]], c: V3, n: V3, radius: f64) -> f64 {
    let mut area = 0.0;
    for f in faces {
        let p: Vec<V3> = f.iter().map(|&i| pt(v, i as usize)).collect();
        let s: Vec<f64> = p.iter().map(|&q| dot(sub(q, c), n)).collect();
        let mut hits = Vec::new();
        for t in 0..3 {
            let (a, b) = (t, (t + 1) % 3);
            if (s[a] < 0.0) != (s[b] < 0.0) {
                let u = s[a] / (s[a] - s[b]);
                hits.push([p[a][0] + u * (p[b][0] - p[a][0]), p[a][1] + u * (p[b][1] - p[a][1]), p[a][2] + u * (p[b][2] - p[a][2])]);
            }
        }
        if hits.len() != 2 || norm(sub(hits[0], c)) > radius || norm(sub(hits[1], c)) > radius {
            continue;
        }
        let fnrm = cross(sub(p[1], p[0]), sub(p[2], p[0]));
        let dir = cross(n, fnrm);
        let (mut a, mut b) = (hits[0], hits[1]);
        if dot(sub(b, a), dir) < 0.0 {
            std::mem::swap(&mut a, &mut b);
        }
        area += 0.5 * dot(cross(sub(a, c), sub(b, c)), n);
    }
    area
}

/// Perimeter of the section y = `y0` (horizontal plane), restricted to |x| < `xmax`.
fn section_perimeter_y(v: &[f32], faces: &[[u32; 3]], y0: f64, xmax: f64) -> f64 {
    let mut total = 0.0;
    for f in faces {
        let p: Vec<V3> = f.iter().map(|&i| pt(v, i as usize)).collect();
        let mut hits = Vec::new();
        for t in 0..3 {
            let (a, b) = (p[t], p[(t + 1) % 3]);
            if (a[1] - y0) * (b[1] - y0) < 0.0 {
                let u = (y0 - a[1]) / (b[1] - a[1]);
                hits.push([a[0] + u * (b[0] - a[0]), y0, a[2] + u * (b[2] - a[2])]);
            }
        }
        if hits.len() == 2 && hits[0][0].abs() < xmax && hits[1][0].abs() < xmax {
            total += norm(sub(hits[0], hits[1]));
        }
    }
    total
}

#[test]
fn vertex_and_face_counts() {
    let a = arrays();
    let v = a.num_verts();
    assert!((5000..=12000).contains(&v), "{v} vertices");
    // A closed genus-0 triangle mesh has F = 2V - 4.
    assert_eq!(a.faces.len(), 2 * v - 4);
    assert_eq!(a.num_betas, 10);
    assert_eq!(a.parents, SMPL_PARENTS);
    assert_eq!(a.posedirs.len(), 207 * v * 3);
    assert!(a.posedirs.iter().all(|&x| x == 0.0), "posedirs must be all zero");
    assert!(!model().has_pose_correctives());
}

#[test]
fn watertight_oriented_genus_zero() {
    let a = arrays();
    let v = a.num_verts();
    let mut directed: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    for f in &a.faces {
        assert!(f[0] != f[1] && f[1] != f[2] && f[0] != f[2], "face {f:?} repeats a vertex");
        for t in 0..3 {
            *directed.entry((f[t], f[(t + 1) % 3])).or_default() += 1;
        }
    }
    for (&(x, y), &c) in &directed {
        assert_eq!(c, 1, "directed edge ({x}, {y}) used {c} times: inconsistent winding or non-manifold");
        assert!(directed.contains_key(&(y, x)), "edge ({x}, {y}) has one face only: a hole");
    }
    let edges = directed.len() / 2;
    let euler = v as i64 - edges as i64 + a.faces.len() as i64;
    assert_eq!(euler, 2, "Euler characteristic {euler} (genus 0 needs 2)");
    // Every vertex is used, and its faces form one fan (the link is a single cycle).
    let mut next: Vec<Vec<(u32, u32)>> = vec![Vec::new(); v];
    for f in &a.faces {
        for t in 0..3 {
            next[f[t] as usize].push((f[(t + 1) % 3], f[(t + 2) % 3]));
        }
    }
    for (vi, link) in next.iter().enumerate() {
        assert!(link.len() >= 3, "vertex {vi} has {} faces", link.len());
        let map: BTreeMap<u32, u32> = link.iter().copied().collect();
        assert_eq!(map.len(), link.len(), "vertex {vi}: non-manifold link");
        let start = link[0].0;
        let (mut cur, mut steps) = (start, 0);
        loop {
            cur = map[&cur];
            steps += 1;
            if cur == start {
                break;
            }
            assert!(steps <= link.len(), "vertex {vi}: link is not a cycle");
        }
        assert_eq!(steps, link.len(), "vertex {vi}: faces form {} fans", if steps < link.len() { "several" } else { "broken" });
    }
    // Outward winding: positive volume, about that of a 65 kg adult (~0.065 m^3).
    let vol = signed_volume(&a.v_template, &a.faces);
    assert!((0.045..0.09).contains(&vol), "signed volume {vol} m^3");
}

#[test]
fn triangles_are_not_degenerate() {
    let a = arrays();
    let mut min_area = f64::INFINITY;
    let mut min_angle = f64::INFINITY;
    let mut min_edge = f64::INFINITY;
    for f in &a.faces {
        let p: Vec<V3> = f.iter().map(|&i| pt(&a.v_template, i as usize)).collect();
        min_area = min_area.min(0.5 * norm(cross(sub(p[1], p[0]), sub(p[2], p[0]))));
        for t in 0..3 {
            let (u, w) = (sub(p[(t + 1) % 3], p[t]), sub(p[(t + 2) % 3], p[t]));
            min_edge = min_edge.min(norm(u));
            min_angle = min_angle.min(norm(cross(u, w)).atan2(dot(u, w)).to_degrees());
        }
    }
    println!("smallest triangle {min_area:.2e} m^2, shortest edge {min_edge:.4} m, smallest angle {min_angle:.1} degrees");
    assert!(min_area > 1e-7, "smallest triangle {min_area} m^2");
    assert!(min_edge > 1.5e-3, "shortest edge {min_edge} m");
    assert!(min_angle > 15.0, "smallest angle {min_angle} degrees");
}

#[test]
fn rest_height_and_floor() {
    let v = &arrays().v_template;
    let h = height(v);
    assert!((1.6..=1.8).contains(&h), "height {h} m");
    assert!((h - mannequin::STATURE).abs() < 0.005, "height {h} m, designed {}", mannequin::STATURE);
    let lowest = v.iter().skip(1).step_by(3).fold(f32::MAX, |m, &y| m.min(y)) as f64;
    assert!((lowest - FLOOR_Y).abs() < 0.003, "soles at {lowest}, floor {FLOOR_Y}");
    // T-pose: arm span (fingertip to fingertip) about the stature (Drillis & Contini).
    let xs = v.iter().step_by(3);
    let (lo, hi) = xs.fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let span = (hi - lo) as f64;
    assert!((1.6..1.85).contains(&span), "arm span {span} m");
}

#[test]
fn joints_regressed_exactly_inside_the_body_left_at_plus_x() {
    let m = model();
    let a = arrays();
    let joints = m.rest_joints(&[]).unwrap();
    let design = mannequin::design_joints();
    for (j, dj) in design.iter().enumerate() {
        for k in 0..3 {
            let d = (joints[j * 3 + k] - dj[k]).abs();
            assert!(d < 1e-4, "joint {j} axis {k}: regressed {} vs designed {}", joints[j * 3 + k], dj[k]);
        }
        assert!(inside(&a.v_template, &a.faces, pt(&joints, j)), "joint {j} ({}) lies outside the mesh", rigfit::body::JOINT_NAMES[j]);
    }
    for (l, r) in [(1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23)] {
        assert!(joints[l * 3] > 0.03, "left joint {l} at x = {}", joints[l * 3]);
        assert!(joints[r * 3] < -0.03, "right joint {r} at x = {}", joints[r * 3]);
        assert!((joints[l * 3] + joints[r * 3]).abs() < 1e-4, "joints {l}/{r} not mirror images");
    }
    // Proportions in the range of SMPL's neutral template (pelvis-relative, metres).
    let d = |a: usize, b: usize| norm(sub(pt(&joints, a), pt(&joints, b)));
    assert!((0.30..0.40).contains(&d(16, 17)), "shoulder joints {} apart", d(16, 17));
    assert!((0.12..0.22).contains(&d(1, 2)), "hip joints {} apart", d(1, 2));
    assert!((0.35..0.45).contains(&d(1, 4)), "thigh {}", d(1, 4));
    assert!((0.36..0.45).contains(&d(4, 7)), "shank {}", d(4, 7));
    assert!((0.24..0.30).contains(&d(16, 18)), "upper arm {}", d(16, 18));
    assert!((0.22..0.28).contains(&d(18, 20)), "forearm {}", d(18, 20));
    assert!((0.40..0.50).contains(&d(0, 12)), "pelvis to neck {}", d(0, 12));
}

#[test]
fn regressor_rows_are_local_affine_combinations() {
    let a = arrays();
    let v = a.num_verts();
    let design = mannequin::design_joints();
    assert_eq!(a.j_regressor.len(), NUM_JOINTS * v);
    for (j, row) in a.j_regressor.chunks_exact(v).enumerate() {
        let sum: f64 = row.iter().map(|&w| w as f64).sum();
        assert!((sum - 1.0).abs() < 1e-5, "regressor row {j} sums to {sum}");
        assert!(row.iter().all(|&w| w >= 0.0), "regressor row {j} has negative weights");
        let nnz = row.iter().filter(|&&w| w != 0.0).count();
        assert!((4..=300).contains(&nnz), "regressor row {j} has {nnz} vertices");
        let c = design[j].map(|x| x as f64);
        for (vi, &w) in row.iter().enumerate() {
            if w != 0.0 {
                let dist = norm(sub(pt(&a.v_template, vi), c));
                assert!(dist < 0.3, "joint {j} uses vertex {vi} at {dist} m");
            }
        }
    }
}

#[test]
fn skinning_weights_are_normalised_sparse_and_cover_every_joint() {
    let a = arrays();
    let mut dominant = [0usize; NUM_JOINTS];
    for (vi, row) in a.weights.chunks_exact(NUM_JOINTS).enumerate() {
        let sum: f64 = row.iter().map(|&w| w as f64).sum();
        assert!((sum - 1.0).abs() < 1e-5, "vertex {vi}: weights sum to {sum}");
        assert!(row.iter().all(|&w| w >= 0.0), "vertex {vi}: negative weight");
        let nnz = row.iter().filter(|&&w| w != 0.0).count();
        assert!((1..=4).contains(&nnz), "vertex {vi}: {nnz} joints");
        for (j, &w) in row.iter().enumerate() {
            if w > 0.5 {
                dominant[j] += 1;
            }
        }
    }
    for (j, &n) in dominant.iter().enumerate() {
        assert!(n >= 10, "joint {j} ({}) dominates only {n} vertices", rigfit::body::JOINT_NAMES[j]);
    }
    // Left-side joints drive left-side vertices only (no left/right cross talk beyond 2 cm of
    // the mid-plane, e.g. at the crotch).
    for (vi, row) in a.weights.chunks_exact(NUM_JOINTS).enumerate() {
        let x = a.v_template[vi * 3];
        for j in [1usize, 4, 7, 10, 16, 18, 20, 22] {
            if row[j] > 0.0 {
                assert!(x > -0.02, "vertex {vi} at x = {x} weighted to left joint {j}");
            }
            if row[j + 1] > 0.0 {
                assert!(x < 0.02, "vertex {vi} at x = {x} weighted to right joint {}", j + 1);
            }
        }
    }
}

/// Bends `joint` by 90 degrees with `aa` and compares the limb's cross-section at the joint
/// (bisector plane of the bent bones) and the nearest-surface distance with the rest pose.
fn bend_ratio(joint: usize, parent: usize, child: usize, aa: [f32; 3]) -> (f64, f64, f64) {
    let a = arrays();
    let rest = pose(&[], &[]);
    let bent = pose(&[], &[(joint, aa)]);
    let jr = pt(&rest.joints, joint);
    let rest_axis = unit(sub(pt(&rest.joints, child), pt(&rest.joints, parent)));
    let jb = pt(&bent.joints, joint);
    let a1 = unit(sub(jb, pt(&bent.joints, parent)));
    let a2 = unit(sub(pt(&bent.joints, child), jb));
    // The designed bones are nearly collinear at rest (within a few degrees).
    assert!(dot(a1, a2).abs() < 0.12, "the bend is not 90 degrees: cos = {}", dot(a1, a2));
    let bis = unit([a1[0] + a2[0], a1[1] + a2[1], a1[2] + a2[2]]);
    let area_rest = section_area(&rest.vertices, &a.faces, jr, rest_axis, 0.13);
    let area_bent = section_area(&bent.vertices, &a.faces, jb, bis, 0.13);
    // Distance from the joint to the nearest surface vertex (the limb's thickness at the joint).
    let nearest = |v: &[f32], c: V3| (0..v.len() / 3).map(|i| norm(sub(pt(v, i), c))).fold(f64::INFINITY, f64::min);
    let d_rest = nearest(&rest.vertices, jr);
    let d_bent = nearest(&bent.vertices, jb);
    assert!(area_rest > 1e-3, "rest cross-section {area_rest} m^2");
    let vol_ratio = signed_volume(&bent.vertices, &a.faces) / signed_volume(&rest.vertices, &a.faces);
    (area_bent / area_rest, d_bent / d_rest, vol_ratio)
}

#[test]
fn elbow_bend_keeps_the_arm_thick() {
    let q = std::f32::consts::FRAC_PI_2;
    // Left elbow: the forearm (+x) swings forward to +z.
    let (area, dist, vol) = bend_ratio(18, 16, 20, [0.0, -q, 0.0]);
    println!("left elbow at 90 degrees: cross-section x{area:.3}, thickness x{dist:.3}, volume x{vol:.4}");
    assert!(area > 0.6, "elbow cross-section shrinks to {area:.3} of rest");
    assert!(dist > 0.6, "elbow thickness shrinks to {dist:.3} of rest");
    assert!((vol - 1.0).abs() < 0.01, "volume ratio {vol}");
    let (area, dist, _) = bend_ratio(19, 17, 21, [0.0, q, 0.0]);
    assert!(area > 0.6 && dist > 0.6, "right elbow: area {area:.3}, thickness {dist:.3}");
}

#[test]
fn knee_bend_keeps_the_leg_thick() {
    let q = std::f32::consts::FRAC_PI_2;
    // Knee flexion: the shank (-y) swings back to -z.
    let (area, dist, vol) = bend_ratio(4, 1, 7, [q, 0.0, 0.0]);
    println!("left knee at 90 degrees: cross-section x{area:.3}, thickness x{dist:.3}, volume x{vol:.4}");
    assert!(area > 0.6, "knee cross-section shrinks to {area:.3} of rest");
    assert!(dist > 0.6, "knee thickness shrinks to {dist:.3} of rest");
    assert!((vol - 1.0).abs() < 0.02, "volume ratio {vol}");
    let (area, dist, _) = bend_ratio(5, 2, 8, [q, 0.0, 0.0]);
    assert!(area > 0.6 && dist > 0.6, "right knee: area {area:.3}, thickness {dist:.3}");
}

#[test]
fn seated_pose_changes_volume_little() {
    let a = arrays();
    let q = std::f32::consts::FRAC_PI_2;
    let down = 70f32.to_radians();
    let bent = pose(
        &[],
        &[
            (1, [-q, 0.0, 0.0]),
            (2, [-q, 0.0, 0.0]),
            (4, [q, 0.0, 0.0]),
            (5, [q, 0.0, 0.0]),
            (16, [0.0, 0.0, -down]),
            (17, [0.0, 0.0, down]),
            (18, [0.0, -q, 0.0]),
            (19, [0.0, q, 0.0]),
        ],
    );
    let r = signed_volume(&bent.vertices, &a.faces) / signed_volume(&a.v_template, &a.faces);
    println!("seated pose: volume x{r:.4}");
    assert!((r - 1.0).abs() < 0.05, "volume ratio {r} after hips, knees, shoulders and elbows bend");
}

fn joint_dist(o: &BodyOutput, a: usize, b: usize) -> f64 {
    norm(sub(pt(&o.joints, a), pt(&o.joints, b)))
}

#[test]
fn shape_directions_do_what_they_say() {
    let a = arrays();
    let f = &a.faces;
    let rest = pose(&[], &[]);
    let h0 = height(&rest.vertices);
    let waist0 = section_perimeter_y(&rest.vertices, f, WAIST_Y, 0.3);
    let run = |k: usize| pose(&beta(k, 1.0), &[]);
    let cm = |x: f64| x * 100.0;

    // 0 stature: +7 cm.
    let o = run(0);
    let dh = cm(height(&o.vertices) - h0);
    assert!((dh - 7.0).abs() < 0.05, "stature: height {dh:+.3} cm");

    // 1 mass: the waist grows by about 8 cm, the height does not change.
    let o = run(1);
    let dw = cm(section_perimeter_y(&o.vertices, f, WAIST_Y, 0.3) - waist0);
    assert!((6.0..10.0).contains(&dw), "mass: waist circumference {dw:+.2} cm");
    assert!(cm(height(&o.vertices) - h0).abs() < 0.1, "mass changes the height");

    // 2 shoulder width: shoulder joints 2 cm further apart.
    let o = run(2);
    let ds = cm(joint_dist(&o, 16, 17) - joint_dist(&rest, 16, 17));
    assert!((1.6..2.4).contains(&ds), "shoulder width: shoulder joints {ds:+.2} cm");
    assert!(cm(joint_dist(&o, 1, 2) - joint_dist(&rest, 1, 2)).abs() < 0.05, "shoulder width moves the hips");

    // 3 hip width: the hips are 2.4 cm wider (outer breadth), hip joints further apart.
    let breadth = |v: &[f32]| {
        let (lo, hi) = (0..v.len() / 3)
            .map(|i| pt(v, i))
            .filter(|p| (p[1] - (0.901 + FLOOR_Y)).abs() < 0.04 && p[0].abs() < 0.3)
            .fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p[0]), hi.max(p[0])));
        hi - lo
    };
    let o = run(3);
    let db = cm(breadth(&o.vertices) - breadth(&rest.vertices));
    assert!((2.0..2.8).contains(&db), "hip width: hip breadth {db:+.2} cm");
    let dj = cm(joint_dist(&o, 1, 2) - joint_dist(&rest, 1, 2));
    assert!((1.0..2.6).contains(&dj), "hip width: hip joints {dj:+.2} cm");
    let dw = cm(section_perimeter_y(&o.vertices, f, WAIST_Y, 0.3) - waist0);
    assert!(dw.abs() < 0.5, "hip width changes the waist by {dw:+.2} cm");

    // 4 leg length: hip-to-ankle +4 cm, and the body 4 cm taller.
    let o = run(4);
    let dl = cm(joint_dist(&o, 1, 7) - joint_dist(&rest, 1, 7));
    assert!((3.7..4.3).contains(&dl), "leg length: hip-ankle {dl:+.2} cm");
    assert!((cm(height(&o.vertices) - h0) - 4.0).abs() < 0.05, "leg length: height");

    // 5 arm length: shoulder-to-wrist +2.5 cm, the height does not change.
    let o = run(5);
    let da = cm(joint_dist(&o, 16, 20) - joint_dist(&rest, 16, 20));
    assert!((2.3..2.7).contains(&da), "arm length: shoulder-wrist {da:+.2} cm");
    assert!(cm(height(&o.vertices) - h0).abs() < 0.01);

    // 6 torso length: pelvis-to-neck +3 cm, the body 3 cm taller, the legs unchanged.
    let o = run(6);
    let dt = cm(joint_dist(&o, 0, 12) - joint_dist(&rest, 0, 12));
    assert!((2.3..3.3).contains(&dt), "torso length: pelvis-neck {dt:+.2} cm");
    assert!((cm(height(&o.vertices) - h0) - 3.0).abs() < 0.05, "torso length: height");
    assert!(cm(joint_dist(&o, 1, 7) - joint_dist(&rest, 1, 7)).abs() < 0.1, "torso length moves the legs");

    // 7 belly depth: the front of the waist moves forward ~3 cm, the back stays.
    let depth = |v: &[f32]| {
        (0..v.len() / 3)
            .map(|i| pt(v, i))
            .filter(|p| (p[1] - WAIST_Y).abs() < 0.02 && p[0].abs() < 0.05)
            .fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p[2]), hi.max(p[2])))
    };
    let o = run(7);
    let ((b0, f0), (b1, f1)) = (depth(&rest.vertices), depth(&o.vertices));
    assert!((2.5..3.5).contains(&cm(f1 - f0)), "belly depth: front {:+.2} cm", cm(f1 - f0));
    assert!(cm(b1 - b0).abs() < 0.2, "belly depth: back {:+.2} cm", cm(b1 - b0));

    // 8 head size: ears further apart and the crown higher; the rest still.
    let o = run(8);
    let ear = |v: &[f32]| norm(sub(pt(v, a.landmarks[3] as usize), pt(v, a.landmarks[4] as usize)));
    let de = cm(ear(&o.vertices) - ear(&rest.vertices));
    assert!((0.3..0.7).contains(&de), "head size: ears {de:+.2} cm");
    assert!((0.3..0.6).contains(&cm(height(&o.vertices) - h0)), "head size: crown");
    assert!(cm(joint_dist(&o, 0, 12) - joint_dist(&rest, 0, 12)).abs() < 0.01);

    // 9 limb girth: mid-thigh circumference +8%, the waist unchanged.
    let o = run(9);
    let y_thigh = 0.70 + FLOOR_Y;
    let leg = |v: &[f32]| section_perimeter_y(v, f, y_thigh, 0.3) / 2.0;
    let r = leg(&o.vertices) / leg(&rest.vertices);
    assert!((1.06..1.10).contains(&r), "limb girth: thigh circumference x{r:.3}");
    assert!(cm(section_perimeter_y(&o.vertices, f, WAIST_Y, 0.3) - waist0).abs() < 0.3, "limb girth changes the waist");
}

#[test]
fn shape_directions_are_documented_and_mirror_symmetric() {
    assert_eq!(SHAPE_DIRECTIONS.len(), NUM_SHAPE_DIRS);
    let a = arrays();
    let s = a.num_betas;
    // The joints of a shaped body stay mirror images (every direction is symmetric).
    for k in 0..s {
        let j = model().rest_joints(&beta(k, 1.0)).unwrap();
        for (l, r) in [(1, 2), (4, 5), (7, 8), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23)] {
            assert!((j[l * 3] + j[r * 3]).abs() < 2e-3, "direction {k}: joints {l}/{r} x {} vs {}", j[l * 3], j[r * 3]);
            assert!((j[l * 3 + 1] - j[r * 3 + 1]).abs() < 2e-3, "direction {k}: joints {l}/{r} y differ");
        }
        // Every direction moves something, by at most a few centimetres per unit.
        let col: Vec<f32> = a.shapedirs.iter().skip(k).step_by(s).copied().collect();
        let max = col.iter().fold(0f32, |m, &x| m.max(x.abs()));
        assert!((0.003..0.1).contains(&max), "direction {k}: largest displacement {max} m");
    }
}

#[test]
fn landmarks_sit_where_their_names_say() {
    let a = arrays();
    let v = &a.v_template;
    let lm: Vec<V3> = a.landmarks.iter().map(|&i| pt(v, i as usize)).collect();
    let j = mannequin::design_joints().map(|p| p.map(|x| x as f64));
    let (nose, reye, leye, rear, lear) = (lm[0], lm[1], lm[2], lm[3], lm[4]);
    // Nose: the front-most point of the head, on the mid-plane.
    let head_front = (0..v.len() / 3).map(|i| pt(v, i)).filter(|p| p[1] > j[12][1]).fold(f64::MIN, |m, p| m.max(p[2]));
    assert!((nose[2] - head_front).abs() < 1e-6 && nose[0].abs() < 1e-6, "nose {nose:?}");
    assert!(reye[0] < -0.02 && leye[0] > 0.02 && (reye[0] + leye[0]).abs() < 1e-6, "eyes {reye:?} {leye:?}");
    assert!(reye[1] > nose[1] && leye[2] > 0.08, "eyes above the nose, on the face");
    assert!(rear[0] < -0.08 && lear[0] > 0.08 && rear[2].abs() < 0.03, "ears {rear:?} {lear:?}");
    for (side, ankle, toes) in [(1.0, 7, [5, 6, 7]), (-1.0, 8, [8, 9, 10])] {
        let (big, small, heel) = (lm[toes[0]], lm[toes[1]], lm[toes[2]]);
        for p in [big, small, heel] {
            assert!(p[0] * side > 0.03 && p[1] < FLOOR_Y + 0.05, "foot landmark {p:?}");
        }
        assert!(big[2] > j[ankle][2] + 0.15 && small[2] > j[ankle][2] + 0.12, "toes in front of the ankle");
        assert!(heel[2] < j[ankle][2] - 0.05, "heel behind the ankle");
        assert!(big[0].abs() < small[0].abs(), "big toe medial of the small toe");
    }
}

#[test]
fn build_is_deterministic() {
    let a = arrays();
    let b = mannequin::build();
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.v_template), bits(&b.v_template));
    assert_eq!(bits(&a.shapedirs), bits(&b.shapedirs));
    assert_eq!(bits(&a.j_regressor), bits(&b.j_regressor));
    assert_eq!(bits(&a.weights), bits(&b.weights));
    assert_eq!(a.faces, b.faces);
    assert_eq!(a.landmarks, b.landmarks);
}

#[test]
fn embedded_default_body_equals_build() {
    let emb = BodyModel::default_body().expect("models/default_body.npz loads (run the make_default_body example)");
    let e = emb.arrays();
    let a = arrays();
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(e.num_verts(), a.num_verts(), "regenerate models/default_body.npz");
    assert_eq!(bits(&e.v_template), bits(&a.v_template), "v_template differs: regenerate models/default_body.npz");
    assert_eq!(bits(&e.shapedirs), bits(&a.shapedirs), "shapedirs differ");
    assert_eq!(bits(&e.j_regressor), bits(&a.j_regressor), "J_regressor differs");
    assert_eq!(bits(&e.weights), bits(&a.weights), "weights differ");
    assert_eq!(bits(&e.posedirs), bits(&a.posedirs), "posedirs differ");
    assert_eq!(e.faces, a.faces);
    assert_eq!(e.landmarks, a.landmarks);
    assert_eq!(e.parents, a.parents);
    assert_eq!(e.num_betas, a.num_betas);
    // Small enough to embed.
    let size = rigfit::body::DEFAULT_BODY_NPZ.len();
    assert!(size < 1_500_000, "default_body.npz is {size} bytes");
}
