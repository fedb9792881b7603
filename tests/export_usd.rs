//! USD export (`rigfit::export::usd`) checked by Pixar's USD (usd-core) and by Blender's USD
//! importer against rigfit's own forward pass on a small known motion.
//!
//! Needs Python with `usd-core` and `bpy` 4.5 (`python3 -m pip install usd-core==26.11
//! 'bpy==4.5.*'`); the interpreter is `$RIGFIT_PYTHON` or `python3`. A missing module fails the
//! test with the install line: nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use rigfit::body::{BodyModel, BodyOutput, JOINT_NAMES, NUM_JOINTS};
use rigfit::export::usd;
use rigfit::geom::camera::Pinhole;
use rigfit::geom::rot::{axis_angle_to_matrix, mat3_apply};
use rigfit::motion::{Motion, MotionCamera};

const FRAMES: usize = 5;
/// Frames compared in EXPECTED.json.
const CHECK_FRAMES: [usize; 3] = [0, 2, 4];
/// Vertices compared after skinning (spread over the mesh).
const VERTEX_IDS: [usize; 8] = [0, 511, 1234, 2222, 3456, 4999, 6400, 7999];

fn python() -> String {
    std::env::var("RIGFIT_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn require(module: &str, pip: &str) {
    let ok = Command::new(python()).args(["-c", &format!("import {module}")]).output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "Python module `{module}` is missing for `{}`: install it with `{} -m pip install {pip}`", python(), python());
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rigfit-usd-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn ry(a: f32) -> [f32; 9] {
    axis_angle_to_matrix(&[0.0, a, 0.0])
}

/// 5 frames at 30 fps: distinct rotations on every joint (a turning, tilting root), a curved
/// translation path, non-zero betas, a static off-centre camera with non-square pixels and a
/// camera orbiting the body.
fn known_motion() -> Motion {
    let mut m = Motion::rest(FRAMES, 10, 30.0);
    m.betas = vec![1.2, -0.8, 0.5, 0.0, 0.3, -0.4, 0.0, 0.2, 0.0, -0.1];
    for f in 0..FRAMES {
        for j in 0..NUM_JOINTS {
            let (a, b) = (f as f32, j as f32);
            let aa = if j == 0 {
                [0.15 * a.sin(), 0.9 * a, -0.1 * a] // past a half turn at frame 4: the quaternion crosses w = 0
            } else {
                [0.3 * (0.7 * a + b).sin(), 0.25 * (1.3 * a - 0.5 * b).cos(), 0.2 * (0.4 * b + a).sin()]
            };
            m.rotations[f * NUM_JOINTS + j] = axis_angle_to_matrix(&aa);
        }
        let a = f as f32;
        m.translations[f] = [0.1 * a, 0.02 * a * a, -0.05 * a + 0.3];
    }
    let front = Pinhole { fx: 1100.0, fy: 1000.0, cx: 300.0, cy: 250.0 };
    m.cameras.push(MotionCamera::fixed("front", front, 640, 480, ry(0.1), [0.3, 0.9, 3.5]));
    let orbit = Pinhole { fx: 800.0, fy: 800.0, cx: 330.0, cy: 235.0 };
    let mut cam = MotionCamera::fixed("orbit cam", orbit, 640, 360, ry(0.0), [0.0; 3]);
    cam.rotation = (0..FRAMES).map(|f| ry(0.5 + 0.2 * f as f32)).collect();
    cam.position = cam
        .rotation
        .iter()
        .map(|r| {
            let p = mat3_apply(r, &[0.0, 0.0, 4.0]);
            [p[0], p[1] + 1.0, p[2]]
        })
        .collect();
    m.cameras.push(cam);
    m
}

fn expected_json(model: &BodyModel, m: &Motion) -> serde_json::Value {
    let joints = m.joints(model).unwrap();
    let mut out = BodyOutput::default();
    m.forward(model, 0..FRAMES, true, &mut out).unwrap();
    let nv = model.num_verts();
    let joint = |f: usize, j: usize| -> [f32; 3] {
        let o = (f * NUM_JOINTS + j) * 3;
        [joints[o], joints[o + 1], joints[o + 2]]
    };
    let jl: Vec<Vec<[f32; 3]>> = CHECK_FRAMES.iter().map(|&f| (0..NUM_JOINTS).map(|j| joint(f, j)).collect()).collect();
    let vl: Vec<Vec<[f32; 3]>> = CHECK_FRAMES
        .iter()
        .map(|&f| {
            VERTEX_IDS
                .iter()
                .map(|&v| {
                    let o = (f * nv + v) * 3;
                    [out.vertices[o], out.vertices[o + 1], out.vertices[o + 2]]
                })
                .collect()
        })
        .collect();
    let paths = usd::camera_paths(m);
    let cams: Vec<serde_json::Value> = m
        .cameras
        .iter()
        .zip(&paths)
        .map(|(c, p)| {
            let pixels: Vec<Vec<[f32; 2]>> =
                CHECK_FRAMES.iter().map(|&f| (0..NUM_JOINTS).map(|j| c.project(f, joint(f, j)).expect("joint in front of the camera")).collect()).collect();
            let positions: Vec<[f32; 3]> = CHECK_FRAMES.iter().map(|&f| c.pose(f).1).collect();
            let i = c.intrinsics;
            serde_json::json!({"path": p, "width": c.width, "height": c.height, "moving": !c.is_static(),
                               "fx": i.fx, "fy": i.fy, "cx": i.cx, "cy": i.cy,
                               "positions": positions, "pixels": pixels})
        })
        .collect();
    serde_json::json!({
        "fps": m.fps, "num_frames": FRAMES, "frames": CHECK_FRAMES, "joint_names": JOINT_NAMES, "joints": jl,
        "vertex_ids": VERTEX_IDS, "vertices": vl, "cameras": cams,
    })
}

/// Writes the known motion's .usda and EXPECTED.json into a fresh folder.
fn setup(name: &str) -> (PathBuf, PathBuf, String) {
    let model = BodyModel::default_body().unwrap();
    let m = known_motion();
    let d = tmp(name);
    let usda = d.join("motion.usda");
    usd::write_usda(&usda, &model, &m).unwrap();
    let exp = d.join("EXPECTED.json");
    std::fs::write(&exp, serde_json::to_string(&expected_json(&model, &m)).unwrap()).unwrap();
    let text = std::fs::read_to_string(&usda).unwrap();
    (usda, exp, text)
}

/// Runs a checker script; returns (success, stdout + stderr).
fn run_script(script: &str, usda: &Path, exp: &Path) -> (bool, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let o = Command::new(python()).arg(format!("{root}/tools/{script}")).arg(usda).arg(exp).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.success(), text)
}

#[test]
fn usd_core_validates_the_export_and_agrees_with_rigfit() {
    require("pxr", "usd-core==26.11");
    let (usda, exp, text) = setup("pxr");
    let (ok, out) = run_script("check_usd.py", &usda, &exp);
    assert!(ok, "tools/check_usd.py rejected {}:\n{out}", usda.display());
    // "ran N USD validators: 0 errors" with N > 0 (or the older ComplianceChecker).
    let ran = out.lines().find_map(|l| l.strip_prefix("ran ")?.strip_suffix(" USD validators: 0 errors")?.parse::<usize>().ok());
    assert!(ran.unwrap_or(0) > 0 || out.contains("ran UsdUtils.ComplianceChecker"), "the USD validators did not run:\n{out}");
    // Schema attributes, not custom ones; layer metadata as specified.
    assert!(!text.contains("custom "), "an attribute is marked custom");
    for line in ["upAxis = \"Y\"", "metersPerUnit = 1\n", "timeCodesPerSecond = 30\n", "framesPerSecond = 30\n", "endTimeCode = 4\n"] {
        assert!(text.contains(line), "missing `{line}`");
    }
    let _ = std::fs::remove_dir_all(usda.parent().unwrap());
}

/// Replaces the first joint index of the mesh with 30 (out of range for 24 joints).
fn break_joint_index(text: &str) -> String {
    let key = "primvars:skel:jointIndices = [";
    let at = text.find(key).unwrap() + key.len();
    let end = at + text[at..].find(',').unwrap();
    format!("{}30{}", &text[..at], &text[end..])
}

#[test]
fn usd_check_rejects_broken_files_and_wrong_answers() {
    require("pxr", "usd-core==26.11");
    let (usda, exp, text) = setup("broken");
    let dir = usda.parent().unwrap().to_path_buf();
    let cases: Vec<(&str, String, &str)> = vec![
        ("joint index out of range", break_joint_index(&text), "joint indices out of range"),
        ("no skeleton binding", text.replace("        rel skel:skeleton = </Rig/Skeleton>\n", ""), "skeleton bindings"),
        (
            "mesh without SkelBindingAPI",
            text.replacen("def Mesh \"Body\" (\n        prepend apiSchemas = [\"SkelBindingAPI\"]\n    )", "def Mesh \"Body\"", 1),
            "SkelBindingAPI",
        ),
        ("Z up", text.replace("upAxis = \"Y\"", "upAxis = \"Z\""), "upAxis"),
        ("custom schema attribute", text.replacen("float focalLength", "custom float focalLength", 1), "custom"),
    ];
    for (what, broken, reason) in cases {
        assert_ne!(broken, text, "{what}: the edit did not apply");
        let p = dir.join(format!("{}.usda", what.replace(' ', "_")));
        std::fs::write(&p, broken).unwrap();
        let (ok, out) = run_script("check_usd.py", &p, &exp);
        assert!(!ok, "{what}: tools/check_usd.py accepted a broken file:\n{out}");
        assert!(out.contains(reason), "{what}: rejected, but not for `{reason}`:\n{out}");
    }
    // The right file against wrong answers: a joint 0.3 mm off, a pixel 0.2 px off.
    let good: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&exp).unwrap()).unwrap();
    let mut j = good.clone();
    let x = j["joints"][1][7][0].as_f64().unwrap();
    j["joints"][1][7][0] = serde_json::json!(x + 3e-4);
    let mut c = good.clone();
    let u = c["cameras"][1]["pixels"][2][5][1].as_f64().unwrap();
    c["cameras"][1]["pixels"][2][5][1] = serde_json::json!(u + 0.2);
    let mut v = good;
    let y = v["vertices"][2][3][1].as_f64().unwrap();
    v["vertices"][2][3][1] = serde_json::json!(y - 3e-4);
    for (what, wrong, reason) in [("joint", j, "joint positions differ"), ("pixel", c, "px from rigfit"), ("vertex", v, "skinned vertices differ")] {
        let p = dir.join(format!("wrong_{what}.json"));
        std::fs::write(&p, serde_json::to_string(&wrong).unwrap()).unwrap();
        let (ok, out) = run_script("check_usd.py", &usda, &p);
        assert!(!ok && out.contains(reason), "a wrong {what} was not caught:\n{out}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn blender_imports_the_export_with_the_same_joints() {
    require("bpy", "'bpy==4.5.*'");
    let (usda, exp, _) = setup("blender");
    let (ok, out) = run_script("blender_check_usd.py", &usda, &exp);
    assert!(ok, "tools/blender_check_usd.py rejected {}:\n{out}", usda.display());
    assert!(out.contains("24 bones"), "{out}");
    // The Blender check can fail: a joint 0.3 mm off is caught.
    let mut wrong: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&exp).unwrap()).unwrap();
    let z = wrong["joints"][2][20][2].as_f64().unwrap();
    wrong["joints"][2][20][2] = serde_json::json!(z + 3e-4);
    let p = usda.with_file_name("wrong.json");
    std::fs::write(&p, serde_json::to_string(&wrong).unwrap()).unwrap();
    let (ok, out) = run_script("blender_check_usd.py", &usda, &p);
    assert!(!ok && out.contains("FAIL"), "a wrong joint was not caught by Blender's check:\n{out}");
    let _ = std::fs::remove_dir_all(usda.parent().unwrap());
}

#[test]
fn export_writes_atomically_and_rejects_bad_motions() {
    let model = BodyModel::default_body().unwrap();
    let m = known_motion();
    let d = tmp("atomic");
    let missing = d.join("no_such_folder");
    let err = usd::write_usda(&missing.join("out.usda"), &model, &m).unwrap_err();
    assert!(err.to_string().contains("out.usda"), "error does not name the file: {err}");
    assert!(!missing.exists(), "a failed write created the folder");
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "a failed write left a file behind");

    // An existing file is replaced whole, and invalid motions error without writing.
    let p = d.join("m.usda");
    std::fs::write(&p, "old").unwrap();
    let mut bad = m.clone();
    bad.betas = vec![0.0; 11]; // the default body has 10
    assert!(usd::write_usda(&p, &model, &bad).is_err());
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
    let mut bad = m.clone();
    bad.translations[3][1] = f32::NAN;
    assert!(usd::to_usda(&model, &bad).is_err());
    usd::write_usda(&p, &model, &m).unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), usd::to_usda(&model, &m).unwrap());
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1, "temporary files left behind");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_text_holds_the_motion_exactly() {
    // Shortest round-trip f32 text: parsing the root translation of frame 3 gives J0 + transl.
    let model = BodyModel::default_body().unwrap();
    let m = known_motion();
    let text = usd::to_usda(&model, &m).unwrap();
    let j0 = model.rest_joints(&m.betas).unwrap();
    let tr_block = &text[text.find("float3[] translations.timeSamples").unwrap()..];
    let l3 = tr_block.lines().find(|l| l.trim_start().starts_with("3: [")).unwrap();
    let first = &l3[l3.find('(').unwrap() + 1..l3.find(')').unwrap()];
    let got: Vec<f32> = first.split(", ").map(|x| x.parse().unwrap()).collect();
    for k in 0..3 {
        assert_eq!(got[k], j0[k] + m.translations[3][k], "root translation[{k}]");
    }
    // One sample per frame for the moving camera, none for the static one.
    assert_eq!(text.matches("xformOp:transform.timeSamples").count(), 1);
    assert_eq!(text.matches("def Camera").count(), 2);
    assert!(text.contains("def Camera \"orbit_cam\""));
}
