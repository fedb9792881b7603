//! USD export of a fitted [`Motion`]: a UsdSkel rig written as `.usda` text.
//!
//! The file is written by hand (no USD library: the Rust USD crates need the network to build
//! USD C++ or write files Pixar USD rejects; see shared/reference/rust_stack.md). Its layout:
//!
//! ```text
//! /Rig                      SkelRoot (the layer's defaultPrim)
//! /Rig/Skeleton             Skeleton + SkelBindingAPI: joints, bindTransforms, restTransforms,
//!                           skel:animationSource -> /Rig/Skeleton/Animation
//! /Rig/Skeleton/Animation   SkelAnimation: per-frame rotations (quatf) and translations
//!                           (float3), constant scales (half3)
//! /Rig/Body                 Mesh + SkelBindingAPI: the shaped rest mesh (the motion's betas
//!                           baked in), joint indices/weights, skel:skeleton -> /Rig/Skeleton
//! /Cameras/<name>           Camera per motion camera (time-sampled when it moves)
//! ```
//!
//! Conventions: the stage is Y-up (`upAxis = "Y"`, the SMPL world), in metres
//! (`metersPerUnit = 1`); time code `f` is frame `f` (`timeCodesPerSecond = fps`).
//! UsdSkel composes a joint's local transform as scale, then rotation, then translation, with the
//! translation expressed in the parent joint's space, which is SMPL's kinematic chain exactly:
//! `G_i = G_parent(i) [R_i | J_i - J_parent(i)]`, and for the root `[R_0 | J_0 + transl]`.
//! Bind transforms are the rest joints' world transforms (`[I | J_i]`), so UsdSkel's skinning
//! transform `bind^-1 * world` is SMPL's `A_i = [R^w_i | t^w_i - R^w_i J_i]`, and linear blend
//! skinning of the shaped rest mesh gives rigfit's posed vertices.
//!
//! Limits: UsdSkel skins with linear blend skinning only; a body model with pose-corrective blend
//! shapes (the official SMPL's `posedirs`) is exported without them, so its USD vertices differ
//! from rigfit's by those corrections (the joints are still exact). The built-in default body has
//! none.

use std::fmt::Write as _;
use std::path::Path;

use crate::body::{BodyModel, BodyOutput, JOINT_NAMES, NUM_JOINTS};
use crate::error::Result;
use crate::geom::rot::{matrix_to_quat, quat_continuous};
use crate::motion::{Motion, MotionCamera};

/// Film width of exported cameras: 36 mm, a full-frame sensor (only the ratios to the focal
/// length matter for the projection; this makes the lens read as familiar millimetres).
pub const FILM_WIDTH_MM: f32 = 36.0;

/// Near and far clipping distances of exported cameras, metres.
pub const CLIPPING_RANGE: [f32; 2] = [0.01, 1000.0];

/// Lens and filmback values in USD units for one camera: USD measures focalLength and the
/// apertures in tenths of a scene unit (UsdGeomCamera, "Units of Measure for Camera
/// Properties"); with `metersPerUnit = 1` that is decimetres, so 36 mm is written 0.36.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UsdLens {
    pub focal_length: f32,
    pub horizontal_aperture: f32,
    pub vertical_aperture: f32,
    pub horizontal_aperture_offset: f32,
    pub vertical_aperture_offset: f32,
}

impl UsdLens {
    /// The USD lens of a pinhole camera with intrinsics `fx, fy, cx, cy` (pixels) and image
    /// `width x height`. With `p` = film units per pixel (film width / image width):
    /// `focalLength = fx p`, `horizontalAperture = width p`,
    /// `verticalAperture = height p fx / fy` (so the vertical field of view is the one of `fy`),
    /// `horizontalApertureOffset = (width/2 - cx) p`, `verticalApertureOffset = (cy - height/2) p fx/fy`
    /// (image y points down, the film's y up). Then GfCamera's frustum window at unit distance,
    /// `[-aperture/2 + offset, aperture/2 + offset] / focalLength`, is the pinhole's
    /// `[-cx, width - cx] / fx` horizontally and `[cy - height, cy] / fy` vertically.
    pub fn from_camera(cam: &MotionCamera) -> Self {
        let i = cam.intrinsics;
        let (w, h) = (cam.width as f32, cam.height as f32);
        // millimetres -> tenths of a metre (metersPerUnit = 1): 1 mm = 0.01 units of 0.1 m.
        let p = FILM_WIDTH_MM * 0.01 / w;
        let py = p * i.fx / i.fy;
        Self {
            focal_length: i.fx * p,
            horizontal_aperture: w * p,
            vertical_aperture: h * py,
            horizontal_aperture_offset: (0.5 * w - i.cx) * p,
            vertical_aperture_offset: (i.cy - 0.5 * h) * py,
        }
    }
}

/// The USD prim paths of the motion's cameras, in order (`/Cameras/<name>`, the name made a
/// valid, unique USD identifier: other characters become `_`, a leading digit gets a `_` prefix,
/// repeats get `_1`, `_2`, ...).
pub fn camera_paths(motion: &Motion) -> Vec<String> {
    let mut used: Vec<String> = Vec::with_capacity(motion.cameras.len());
    for c in &motion.cameras {
        let base = identifier(&c.name);
        let mut name = base.clone();
        let mut k = 1;
        while used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        used.push(name);
    }
    used.into_iter().map(|n| format!("/Cameras/{n}")).collect()
}

/// A valid USD prim name from any string.
fn identifier(s: &str) -> String {
    let mut out: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Appends `x` so that it reads back as the same f32 (`{}` of f32 is the shortest such text).
#[inline]
fn num(s: &mut String, x: f32) {
    // Writing to a String cannot fail.
    let _ = write!(s, "{x}");
}

fn tuple(s: &mut String, v: &[f32]) {
    s.push('(');
    for (k, &x) in v.iter().enumerate() {
        if k > 0 {
            s.push_str(", ");
        }
        num(s, x);
    }
    s.push(')');
}

/// A USD `matrix4d` (row-vector convention: `p' = p M`, translation in the last row) of the
/// column-vector transform `p' = R p + t`, `r` row-major `[3, 3]`.
fn matrix4d(s: &mut String, r: &[f32; 9], t: &[f32; 3]) {
    s.push('(');
    for col in 0..3 {
        tuple(s, &[r[col], r[3 + col], r[6 + col], 0.0]);
        s.push_str(", ");
    }
    tuple(s, &[t[0], t[1], t[2], 1.0]);
    s.push(')');
}

const IDENTITY: [f32; 9] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];

/// Text safe inside a USD double-quoted string.
fn quoted(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).map(|c| if c == '"' || c == '\\' { '\'' } else { c }).collect()
}

/// The motion as a UsdSkel `.usda` layer (see the module docs for its layout).
///
/// Errors when the motion does not fit the model ([`Motion::validate`]: frame count, betas,
/// non-finite values, camera poses). Allocates only the returned string and per-export tables
/// (rest joints and mesh), nothing per frame.
pub fn to_usda(model: &BodyModel, motion: &Motion) -> Result<String> {
    motion.validate(model)?;
    let frames = motion.num_frames();
    let parents = model.parents();
    let nv = model.num_verts();
    let betas = motion.model_betas(model);

    // Shaped rest mesh `[V, 3]` and rest joints `[24, 3]`: one forward pass at the identity pose
    // (pose correctives vanish there: their features are R - I).
    let mut rest = BodyOutput::default();
    let eye: Vec<f32> = (0..NUM_JOINTS).flat_map(|_| IDENTITY).collect();
    model.forward(&betas, &eye, &[0.0; 3], &mut rest)?;
    let rj: Vec<[f32; 3]> = rest.joints.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
    // Local rest translations: J_i - J_parent (the root's is J_0).
    let offsets: Vec<[f32; 3]> = (0..NUM_JOINTS)
        .map(|i| match parents[i] {
            p if p >= 0 => {
                let p = p as usize;
                [rj[i][0] - rj[p][0], rj[i][1] - rj[p][1], rj[i][2] - rj[p][2]]
            }
            _ => rj[i],
        })
        .collect();

    // Joint paths "pelvis/left_hip/left_knee" (parents precede children: BodyArrays::validate).
    let mut paths: Vec<String> = Vec::with_capacity(NUM_JOINTS);
    for i in 0..NUM_JOINTS {
        let p = parents[i];
        let path = if p >= 0 { format!("{}/{}", paths[p as usize], JOINT_NAMES[i]) } else { JOINT_NAMES[i].to_string() };
        paths.push(path);
    }
    let mut joints_tok = String::from("[");
    for (i, p) in paths.iter().enumerate() {
        if i > 0 {
            joints_tok.push_str(", ");
        }
        let _ = write!(joints_tok, "\"{p}\"");
    }
    joints_tok.push(']');

    // Skinning influences: the non-zero weights of each vertex, largest first, padded with
    // (joint 0, weight 0); elementSize = the most influences any vertex has, at least 4.
    let weights = &model.arrays().weights;
    let max_inf = weights.chunks_exact(NUM_JOINTS).map(|r| r.iter().filter(|&&w| w != 0.0).count()).max().unwrap_or(0);
    let elem = max_inf.max(4);

    let cam_paths = camera_paths(motion);
    // Measured sizes: ~110 bytes per vertex (point, indices, weights), ~20 per triangle, ~100 per
    // joint and frame, ~200 per moving-camera frame.
    let cap = 4096 + nv * 110 + model.faces().len() * 20 + frames * NUM_JOINTS * 100 + motion.cameras.len() * (512 + frames * 200);
    let mut s = String::with_capacity(cap);

    // Layer metadata.
    s.push_str("#usda 1.0\n(\n    defaultPrim = \"Rig\"\n");
    let _ = writeln!(
        s,
        "    doc = \"rigfit {}: body model '{}', {frames} frames\"",
        env!("CARGO_PKG_VERSION"),
        quoted(model.name())
    );
    let _ = writeln!(s, "    endTimeCode = {}", frames - 1);
    s.push_str("    framesPerSecond = ");
    num(&mut s, motion.fps);
    s.push_str("\n    metersPerUnit = 1\n    startTimeCode = 0\n    timeCodesPerSecond = ");
    num(&mut s, motion.fps);
    s.push_str("\n    upAxis = \"Y\"\n)\n\n");

    // Skeleton.
    s.push_str("def SkelRoot \"Rig\"\n{\n");
    s.push_str("    def Skeleton \"Skeleton\" (\n        prepend apiSchemas = [\"SkelBindingAPI\"]\n    )\n    {\n");
    s.push_str("        uniform matrix4d[] bindTransforms = [");
    for (i, j) in rj.iter().enumerate() {
        s.push_str(if i > 0 { ", " } else { "" });
        matrix4d(&mut s, &IDENTITY, j);
    }
    let _ = write!(s, "]\n        uniform token[] joints = {joints_tok}\n");
    s.push_str("        uniform matrix4d[] restTransforms = [");
    for (i, o) in offsets.iter().enumerate() {
        s.push_str(if i > 0 { ", " } else { "" });
        matrix4d(&mut s, &IDENTITY, o);
    }
    s.push_str("]\n        rel skel:animationSource = </Rig/Skeleton/Animation>\n\n");

    // Animation: joint-local rotations and translations per frame.
    let _ = write!(s, "        def SkelAnimation \"Animation\"\n        {{\n            uniform token[] joints = {joints_tok}\n");
    s.push_str("            quatf[] rotations.timeSamples = {\n");
    let mut prev = [[1.0f32, 0.0, 0.0, 0.0]; NUM_JOINTS];
    for f in 0..frames {
        let _ = write!(s, "                {f}: [");
        for (i, r) in motion.frame_rotations(f).iter().enumerate() {
            // Keep consecutive samples on one hemisphere so interpolation takes the short arc
            // (frame 0: w >= 0 from matrix_to_quat, never flipped against the identity).
            let q = quat_continuous(&matrix_to_quat(r), &prev[i]);
            prev[i] = q;
            s.push_str(if i > 0 { ", " } else { "" });
            tuple(&mut s, &q); // GfQuatf text: (real, i, j, k)
        }
        s.push_str("],\n");
    }
    s.push_str("            }\n            half3[] scales = [");
    for i in 0..NUM_JOINTS {
        s.push_str(if i > 0 { ", (1, 1, 1)" } else { "(1, 1, 1)" });
    }
    s.push_str("]\n            float3[] translations.timeSamples = {\n");
    for f in 0..frames {
        let t = motion.translations[f];
        let _ = write!(s, "                {f}: [");
        for (i, o) in offsets.iter().enumerate() {
            s.push_str(if i > 0 { ", " } else { "" });
            if i == 0 {
                tuple(&mut s, &[o[0] + t[0], o[1] + t[1], o[2] + t[2]]);
            } else {
                tuple(&mut s, o);
            }
        }
        s.push_str("],\n");
    }
    s.push_str("            }\n        }\n    }\n\n");

    // Skinned mesh.
    let v = &rest.vertices;
    let (mut lo, mut hi) = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
    for p in v.chunks_exact(3) {
        for k in 0..3 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    s.push_str("    def Mesh \"Body\" (\n        prepend apiSchemas = [\"SkelBindingAPI\"]\n    )\n    {\n");
    s.push_str("        float3[] extent = [");
    tuple(&mut s, &lo);
    s.push_str(", ");
    tuple(&mut s, &hi);
    s.push_str("]\n        int[] faceVertexCounts = [");
    for k in 0..model.faces().len() {
        s.push_str(if k > 0 { ", 3" } else { "3" });
    }
    s.push_str("]\n        int[] faceVertexIndices = [");
    for (k, f) in model.faces().iter().enumerate() {
        let _ = write!(s, "{}{}, {}, {}", if k > 0 { ", " } else { "" }, f[0], f[1], f[2]);
    }
    s.push_str("]\n        point3f[] points = [");
    for (k, p) in v.chunks_exact(3).enumerate() {
        s.push_str(if k > 0 { ", " } else { "" });
        tuple(&mut s, p);
    }
    s.push_str("]\n        matrix4d primvars:skel:geomBindTransform = ");
    matrix4d(&mut s, &IDENTITY, &[0.0; 3]);
    // Influences: gather per vertex into fixed arrays (at most 24 non-zero weights).
    let mut idx = String::with_capacity(nv * elem * 4);
    let mut wts = String::with_capacity(nv * elem * 12);
    for (vi, row) in weights.chunks_exact(NUM_JOINTS).enumerate() {
        let mut inf = [(0usize, 0.0f32); NUM_JOINTS];
        let mut n = 0;
        for (j, &w) in row.iter().enumerate() {
            if w != 0.0 {
                inf[n] = (j, w);
                n += 1;
            }
        }
        inf[..n].sort_by(|a, b| b.1.total_cmp(&a.1));
        for (k, &(j, w)) in inf[..elem].iter().enumerate() {
            let sep = if vi > 0 || k > 0 { ", " } else { "" };
            let _ = write!(idx, "{sep}{j}");
            wts.push_str(sep);
            num(&mut wts, w);
        }
    }
    let _ = write!(
        s,
        "\n        int[] primvars:skel:jointIndices = [{idx}] (\n            elementSize = {elem}\n            interpolation = \"vertex\"\n        )\n"
    );
    let _ = write!(
        s,
        "        float[] primvars:skel:jointWeights = [{wts}] (\n            elementSize = {elem}\n            interpolation = \"vertex\"\n        )\n"
    );
    s.push_str("        rel skel:skeleton = </Rig/Skeleton>\n        uniform token subdivisionScheme = \"none\"\n    }\n}\n");

    // Cameras.
    if !motion.cameras.is_empty() {
        s.push_str("\ndef Scope \"Cameras\"\n{\n");
        for (ci, (cam, path)) in motion.cameras.iter().zip(&cam_paths).enumerate() {
            let lens = UsdLens::from_camera(cam);
            let name = &path["/Cameras/".len()..];
            if ci > 0 {
                s.push('\n');
            }
            let _ = write!(s, "    def Camera \"{name}\"\n    {{\n        float2 clippingRange = ");
            tuple(&mut s, &CLIPPING_RANGE);
            for (attr, val) in [
                ("focalLength", lens.focal_length),
                ("horizontalAperture", lens.horizontal_aperture),
                ("horizontalApertureOffset", lens.horizontal_aperture_offset),
            ] {
                let _ = write!(s, "\n        float {attr} = ");
                num(&mut s, val);
            }
            s.push_str("\n        token projection = \"perspective\"");
            for (attr, val) in [
                ("verticalAperture", lens.vertical_aperture),
                ("verticalApertureOffset", lens.vertical_aperture_offset),
            ] {
                let _ = write!(s, "\n        float {attr} = ");
                num(&mut s, val);
            }
            if cam.is_static() {
                s.push_str("\n        matrix4d xformOp:transform = ");
                let (r, p) = cam.pose(0);
                matrix4d(&mut s, &r, &p);
                s.push('\n');
            } else {
                s.push_str("\n        matrix4d xformOp:transform.timeSamples = {\n");
                for f in 0..frames {
                    let (r, p) = cam.pose(f);
                    let _ = write!(s, "            {f}: ");
                    matrix4d(&mut s, &r, &p);
                    s.push_str(",\n");
                }
                s.push_str("        }\n");
            }
            s.push_str("        uniform token[] xformOpOrder = [\"xformOp:transform\"]\n    }\n");
        }
        s.push_str("}\n");
    }
    Ok(s)
}

/// Writes [`to_usda`]'s text to `path` atomically (temporary file + rename; a failure leaves
/// nothing at `path`).
pub fn write_usda(path: &Path, model: &BodyModel, motion: &Motion) -> Result<()> {
    let text = to_usda(model, motion)?;
    crate::io::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_valid_and_unique() {
        assert_eq!(identifier("view 0"), "view_0");
        assert_eq!(identifier("0cam"), "_0cam");
        assert_eq!(identifier(""), "_");
        let mut m = Motion::rest(1, 0, 30.0);
        let pin = crate::geom::camera::Pinhole { fx: 500.0, fy: 500.0, cx: 320.0, cy: 240.0 };
        for n in ["a b", "a_b", "a-b"] {
            m.cameras.push(MotionCamera::origin(n, pin, 640, 480));
        }
        assert_eq!(camera_paths(&m), ["/Cameras/a_b", "/Cameras/a_b_1", "/Cameras/a_b_2"]);
    }

    #[test]
    fn lens_keeps_the_field_of_view_and_principal_point() {
        let pin = crate::geom::camera::Pinhole { fx: 1000.0, fy: 800.0, cx: 300.0, cy: 260.0 };
        let cam = MotionCamera::origin("c", pin, 640, 480);
        let l = UsdLens::from_camera(&cam);
        assert!((l.horizontal_aperture - 0.36).abs() < 1e-6);
        // Frustum window at unit distance vs the pinhole's.
        let x0 = (-0.5 * l.horizontal_aperture + l.horizontal_aperture_offset) / l.focal_length;
        let x1 = (0.5 * l.horizontal_aperture + l.horizontal_aperture_offset) / l.focal_length;
        let y0 = (-0.5 * l.vertical_aperture + l.vertical_aperture_offset) / l.focal_length;
        let y1 = (0.5 * l.vertical_aperture + l.vertical_aperture_offset) / l.focal_length;
        for (got, want) in [(x0, -300.0 / 1000.0), (x1, 340.0 / 1000.0), (y0, (260.0 - 480.0) / 800.0), (y1, 260.0 / 800.0)] {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }
}
