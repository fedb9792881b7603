//! Generates rigfit's license-free default body (models/default_body.npz) and its picture
//! (models/default_body.png); prints the statistics quoted in models/DEFAULT_BODY.md.
//!
//!     cargo run --release --example make_default_body
//!
//! The body is built by `rigfit::body::mannequin::build()` (deterministic: the same file on
//! every run and machine).

use std::path::Path;

use rigfit::body::mannequin::{self, SHAPE_DIRECTIONS};
use rigfit::body::{BodyModel, BodyOutput, JOINT_NAMES, LANDMARK_NAMES, NUM_JOINTS};
use rigfit::geom::rot::axis_angle_to_matrix;
use rigfit::render::{self, Canvas, MeshStyle, View};
use rigfit::{Error, Result};

/// Local rotations `[24, 9]` from axis-angle vectors (unlisted joints: identity).
fn rotmats(aa: &[(usize, [f32; 3])]) -> Vec<f32> {
    let mut r = Vec::with_capacity(NUM_JOINTS * 9);
    for j in 0..NUM_JOINTS {
        let v = aa.iter().find(|(i, _)| *i == j).map(|(_, v)| *v).unwrap_or([0.0; 3]);
        r.extend_from_slice(&axis_angle_to_matrix(&v));
    }
    r
}

/// The bent pose of the picture: seated (hips and knees at 90 degrees), arms lowered 70
/// degrees, elbows bent 90 degrees with the forearms forward.
pub fn bent_pose() -> Vec<f32> {
    let q = std::f32::consts::FRAC_PI_2;
    let down = 70f32.to_radians();
    rotmats(&[
        (1, [-q, 0.0, 0.0]),
        (2, [-q, 0.0, 0.0]),
        (4, [q, 0.0, 0.0]),
        (5, [q, 0.0, 0.0]),
        (16, [0.0, 0.0, -down]),
        (17, [0.0, 0.0, down]),
        (18, [0.0, -q, 0.0]),
        (19, [0.0, q, 0.0]),
    ])
}

fn height(v: &[f32]) -> f32 {
    let ys = v.iter().skip(1).step_by(3);
    let (lo, hi) = ys.fold((f32::MAX, f32::MIN), |(lo, hi), &y| (lo.min(y), hi.max(y)));
    hi - lo
}

/// A shaded picture with the skeleton drawn over it.
fn panel(view: &View, verts: &[f32], joints: &[f32], faces: &[[u32; 3]]) -> Result<image::RgbImage> {
    let mut c = Canvas::new(view.width, view.height, [245, 245, 242]);
    c.draw_mesh(view, verts, faces, &MeshStyle::default())?;
    let j2d = view.project_all(joints)?;
    let s = view.height as f32 / 640.0;
    c.draw_skeleton(&j2d, rigfit::body::SMPL_PARENTS.as_slice(), 2.0 * s, [200, 60, 40], 3.5 * s, [30, 90, 200])?;
    render::downsample(c.image(), 2)
}

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let t = std::time::Instant::now();
    let arrays = mannequin::build();
    let secs = t.elapsed().as_secs_f64();
    let model = BodyModel::new(arrays.clone())?;
    let npz = root.join("default_body.npz");
    arrays.save_npz(&npz)?;
    let back = BodyModel::load(&npz)?;
    if back.arrays().v_template != arrays.v_template || back.arrays().shapedirs != arrays.shapedirs {
        return Err(Error::Input("default_body.npz does not read back identically".into()));
    }
    let bytes = std::fs::metadata(&npz).map_err(|e| Error::io(&npz, e))?.len();

    // Rest pose and the bent pose.
    let mut rest = BodyOutput::default();
    model.forward(&[], &rotmats(&[]), &[0.0; 3], &mut rest)?;
    let mut bent = BodyOutput::default();
    model.forward(&[], &bent_pose(), &[0.0; 3], &mut bent)?;

    // Picture: rest (front), bent (front three-quarter), bent (side), all at the same scale.
    let h = 640u32;
    let ss = 2; // rendered at twice the size, then averaged
    let scale_view = View::body_front(&rest.vertices, 600 * ss, h * ss, 0.0, 0.03)?;
    let framed = |verts: &[f32], width: u32, yaw: f32| -> Result<View> {
        // The rest view's focal length and distance, turned by `yaw` and centred on `verts`.
        let v = View::body_front(verts, width * ss, h * ss, yaw, 0.03)?;
        let mut intr = scale_view.intrinsics;
        intr.cx = (width * ss) as f32 * 0.5;
        Ok(View { intrinsics: intr, translation: [v.translation[0], v.translation[1], scale_view.translation[2]], ..v })
    };
    let p1 = panel(&framed(&rest.vertices, 600, 0.0)?, &rest.vertices, &rest.joints, model.faces())?;
    let p2 = panel(&framed(&bent.vertices, 340, 35.0)?, &bent.vertices, &bent.joints, model.faces())?;
    let p3 = panel(&framed(&bent.vertices, 340, 90.0)?, &bent.vertices, &bent.joints, model.faces())?;
    let img = render::hstack(&[p1, p2, p3], [245, 245, 242])?;
    let png = root.join("default_body.png");
    img.save(&png).map_err(|e| Error::Image(format!("{}: {e}", png.display())))?;

    // Close-ups for inspection (not part of the model card): RIGFIT_DEBUG_DIR=/some/dir.
    if let Ok(dir) = std::env::var("RIGFIT_DEBUG_DIR") {
        let dir = Path::new(&dir);
        for (name, verts, yaw, sel) in [
            ("torso", &rest.vertices, 20.0f32, [-0.3f32, 0.3, -0.45, 0.45]),
            ("head", &rest.vertices, 30.0, [-0.12, 0.12, 0.15, 0.5]),
            ("feet", &rest.vertices, 30.0, [-0.2, 0.2, -1.3, -1.0]),
            ("hand", &rest.vertices, 20.0, [0.55, 0.95, 0.0, 0.3]),
            ("bent_arm", &bent.vertices, 60.0, [0.0, 0.5, -0.4, 0.3]),
            ("bent_knee", &bent.vertices, 60.0, [-0.3, 0.3, -0.8, -0.2]),
            ("neck_rest", &rest.vertices, 60.0, [-0.2, 0.05, 0.0, 0.25]),
            ("neck_bent", &bent.vertices, 60.0, [-0.2, 0.05, 0.0, 0.25]),
        ] {
            let sub: Vec<f32> = verts.chunks_exact(3).filter(|p| p[0] >= sel[0] && p[0] <= sel[1] && p[1] >= sel[2] && p[1] <= sel[3]).flatten().copied().collect();
            let view = View::body_front(&sub, 1200, 1200, yaw, 0.02)?;
            let mut c = Canvas::new(1200, 1200, [245, 245, 242]);
            c.draw_mesh(&view, verts, model.faces(), &MeshStyle { smooth: std::env::var("FLAT").is_err(), ..MeshStyle::default() })?;
            let img = render::downsample(c.image(), 2)?;
            let p = dir.join(format!("{name}.png"));
            img.save(&p).map_err(|e| Error::Image(format!("{}: {e}", p.display())))?;
        }
    }

    // Statistics.
    let nv = model.num_verts();
    println!("built in {secs:.2} s: {} vertices, {} faces, {} shape directions", nv, model.faces().len(), model.num_betas());
    println!("rest height {:.4} m; wrote {} ({:.0} KiB) and {}", height(&rest.vertices), npz.display(), bytes as f64 / 1024.0, png.display());
    let nnz_w = arrays.weights.iter().filter(|&&x| x != 0.0).count();
    let nnz_j = arrays.j_regressor.iter().filter(|&&x| x != 0.0).count();
    println!("skinning: {:.2} joints per vertex on average; regressor: {} non-zeros ({:.1} per joint)", nnz_w as f64 / nv as f64, nnz_j, nnz_j as f64 / NUM_JOINTS as f64);
    let design = mannequin::design_joints();
    let err = (0..NUM_JOINTS * 3).map(|i| (rest.joints[i] - design[i / 3][i % 3]).abs()).fold(0f32, f32::max);
    println!("rest joints (model frame, m; regressed, max deviation from the designed joints {err:.1e} m):");
    for (j, name) in JOINT_NAMES.iter().enumerate() {
        let p = &rest.joints[j * 3..j * 3 + 3];
        println!("  {j:2} {name:15} [{:+.4}, {:+.4}, {:+.4}]", p[0], p[1], p[2]);
    }
    println!("landmarks:");
    for (l, &v) in arrays.landmarks.iter().enumerate() {
        let p = &arrays.v_template[v as usize * 3..v as usize * 3 + 3];
        println!("  {:16} vertex {:5} [{:+.4}, {:+.4}, {:+.4}]", LANDMARK_NAMES[l], v, p[0], p[1], p[2]);
    }
    println!("shape directions (+1 unit):");
    let base_h = height(&arrays.v_template);
    for (k, d) in SHAPE_DIRECTIONS.iter().enumerate() {
        let mut betas = vec![0f32; model.num_betas()];
        betas[k] = 1.0;
        let mut o = BodyOutput::default();
        model.forward(&betas, &rotmats(&[]), &[0.0; 3], &mut o)?;
        let jd = |a: usize, b: usize| {
            let p = &o.joints;
            let q = &rest.joints;
            let d1 = ((p[a * 3] - p[b * 3]).powi(2) + (p[a * 3 + 1] - p[b * 3 + 1]).powi(2) + (p[a * 3 + 2] - p[b * 3 + 2]).powi(2)).sqrt();
            let d0 = ((q[a * 3] - q[b * 3]).powi(2) + (q[a * 3 + 1] - q[b * 3 + 1]).powi(2) + (q[a * 3 + 2] - q[b * 3 + 2]).powi(2)).sqrt();
            (d1 - d0) * 100.0
        };
        println!(
            "  {k} {:14} height {:+.2} cm, shoulders {:+.2} cm, hips {:+.2} cm, hip-ankle {:+.2} cm, shoulder-wrist {:+.2} cm, waist circ. {:+.2} cm  ({})",
            d.name,
            (height(&o.vertices) - base_h) * 100.0,
            jd(16, 17),
            jd(1, 2),
            jd(1, 7),
            jd(16, 20),
            (waist(&o.vertices, model.faces()) - waist(&rest.vertices, model.faces())) * 100.0,
            d.unit
        );
    }
    measurements(&rest.vertices, model.faces());
    // Effects quoted in the model card.
    let mut o = BodyOutput::default();
    let fy = mannequin::FLOOR_Y as f32;
    for (k, what, c, n, r) in [
        (3usize, "hip breadth", [0.0f32, 0.0, 0.0], [0.0f32, 0.0, 0.0], 0.0f32),
        (8, "head circumference", [0.0, 1.625 + fy, 0.0], [0.0, 1.0, 0.0], 0.15),
        (9, "mid-thigh circumference", [0.095, 0.70 + fy, 0.0], [0.0, 1.0, 0.0], 0.095),
        (9, "upper-arm circumference", [0.31, 0.1306, -0.035], [1.0, 0.0, 0.0], 0.1),
    ] {
        let mut betas = vec![0f32; model.num_betas()];
        betas[k] = 1.0;
        model.forward(&betas, &rotmats(&[]), &[0.0; 3], &mut o)?;
        if r == 0.0 {
            let breadth = |v: &[f32]| {
                let (lo, hi) = v
                    .chunks_exact(3)
                    .filter(|p| (p[1] - (0.901 + fy)).abs() < 0.04 && p[0].abs() < 0.3)
                    .fold((f32::MAX, f32::MIN), |(lo, hi), p| (lo.min(p[0]), hi.max(p[0])));
                hi - lo
            };
            println!("  beta {k} = 1: {what} {:+.2} cm", (breadth(&o.vertices) - breadth(&rest.vertices)) * 100.0);
        } else {
            let (a, b) = (section(&o.vertices, model.faces(), c, n, r), section(&rest.vertices, model.faces(), c, n, r));
            println!("  beta {k} = 1: {what} {:+.2} cm ({:+.1}%)", (a - b) * 100.0, (a / b - 1.0) * 100.0);
        }
    }
    Ok(())
}

/// Perimeter of the mesh's section with the plane through `c` with normal `n`, counting only
/// intersection segments within `radius` of `c`.
fn section(v: &[f32], faces: &[[u32; 3]], c: [f32; 3], n: [f32; 3], radius: f32) -> f32 {
    let d = |p: [f32; 3]| (p[0] - c[0]) * n[0] + (p[1] - c[1]) * n[1] + (p[2] - c[2]) * n[2];
    let dist = |p: [f32; 3]| ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2) + (p[2] - c[2]).powi(2)).sqrt();
    let mut total = 0.0;
    for f in faces {
        let p: Vec<[f32; 3]> = f.iter().map(|&i| [v[i as usize * 3], v[i as usize * 3 + 1], v[i as usize * 3 + 2]]).collect();
        let mut pts = Vec::new();
        for t in 0..3 {
            let (a, b) = (p[t], p[(t + 1) % 3]);
            let (da, db) = (d(a), d(b));
            if (da < 0.0) != (db < 0.0) {
                let s = da / (da - db);
                pts.push([a[0] + s * (b[0] - a[0]), a[1] + s * (b[1] - a[1]), a[2] + s * (b[2] - a[2])]);
            }
        }
        if pts.len() == 2 && dist(pts[0]) < radius && dist(pts[1]) < radius {
            total += ((pts[0][0] - pts[1][0]).powi(2) + (pts[0][1] - pts[1][1]).powi(2) + (pts[0][2] - pts[1][2]).powi(2)).sqrt();
        }
    }
    total
}

/// Waist circumference: the section with the plane y = WAIST_Y (only the torso crosses it).
fn waist(v: &[f32], faces: &[[u32; 3]]) -> f32 {
    section(v, faces, [0.0, mannequin::WAIST_Y as f32, 0.0], [0.0, 1.0, 0.0], 0.4)
}

/// Signed volume (m^3).
fn volume(v: &[f32], faces: &[[u32; 3]]) -> f64 {
    let p = |i: u32| [v[i as usize * 3] as f64, v[i as usize * 3 + 1] as f64, v[i as usize * 3 + 2] as f64];
    faces
        .iter()
        .map(|f| {
            let (a, b, c) = (p(f[0]), p(f[1]), p(f[2]));
            (a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0]) + a[2] * (b[0] * c[1] - b[1] * c[0])) / 6.0
        })
        .sum()
}

/// Measurements quoted in the model card (rest pose).
fn measurements(v: &[f32], faces: &[[u32; 3]]) {
    let fy = mannequin::FLOOR_Y as f32;
    let xs = v.iter().step_by(3);
    let (lo, hi) = xs.fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    println!("volume {:.4} m^3, arm span {:.3} m", volume(v, faces), hi - lo);
    let horiz = |name: &str, x: f32, y: f32, r: f32| {
        println!("  {name:22} {:.3} m", section(v, faces, [x, y + fy, 0.0], [0.0, 1.0, 0.0], r));
    };
    println!("circumferences:");
    horiz("hips (0.90 m)", 0.0, 0.90, 0.4);
    horiz("waist (1.07 m)", 0.0, 1.07, 0.4);
    horiz("chest (1.224 m)", 0.0, 1.224, 0.4);
    horiz("neck (1.47 m)", 0.0, 1.47, 0.15);
    horiz("head (1.625 m)", 0.0, 1.625, 0.15);
    // (radius 0.095 m: the left leg only)
    horiz("upper thigh (0.76 m)", 0.095, 0.76, 0.095);
    horiz("mid-thigh (0.70 m)", 0.095, 0.70, 0.095);
    horiz("calf (0.36 m)", 0.095, 0.36, 0.095);
    let j = mannequin::design_joints();
    let arm = |name: &str, x: f32| {
        println!("  {name:22} {:.3} m", section(v, faces, [x, j[16][1], j[16][2]], [1.0, 0.0, 0.0], 0.1));
    };
    arm("upper arm (x 0.31 m)", 0.31);
    arm("forearm (x 0.54 m)", 0.54);
    arm("wrist (x 0.69 m)", 0.69);
}
