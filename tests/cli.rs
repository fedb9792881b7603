//! The `rigfit` binary end to end: the README's main-job command, model inspection, posing,
//! and clear errors.

use std::process::Command;

fn rigfit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rigfit"))
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rigfit-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn demo_fits_the_bundled_example_and_writes_every_output() {
    let out = tmpdir("demo");
    let r = rigfit().args(["demo", "--out"]).arg(&out).output().unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&r.stderr));
    for name in ["walk_1view", "walk_3views"] {
        for ext in ["glb", "usda", "json"] {
            let p = out.join(format!("{name}.{ext}"));
            assert!(p.metadata().map(|m| m.len() > 1000).unwrap_or(false), "{} missing or empty", p.display());
        }
        let overlays = std::fs::read_dir(out.join(format!("{name}_overlay"))).unwrap().count();
        assert!(overlays >= 30, "{name}: {overlays} overlay pictures");
        assert!(stdout.contains(&format!("{name}: MPJPE")), "accuracy report for {name}: {stdout}");
    }
    // The fitted parameters: 30 frames of 24 rotations, the cameras, finite reprojection errors.
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("walk_3views.json")).unwrap()).unwrap();
    assert_eq!(v["frames"].as_array().unwrap().len(), 30);
    assert_eq!(v["frames"][0]["rotations"].as_array().unwrap().len(), 24);
    assert_eq!(v["cameras"].as_array().unwrap().len(), 3);
    assert!(v["mean_reprojection_px"].as_f64().unwrap() < 25.0, "{}", v["mean_reprojection_px"]);
    // An overlay shows the body over the canvas.
    let png = image::open(out.join("walk_1view_overlay/camera_00000.png")).unwrap().to_rgb8();
    assert_eq!((png.width(), png.height()), (1920, 1080));
    let bg = *png.get_pixel(0, 0);
    assert!(png.pixels().filter(|p| **p != bg).count() > 5000);
}

#[test]
fn fit_reads_keypoints_and_reports_json_or_clear_errors() {
    let out = tmpdir("fit");
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/walk_1view/openpose/walk_000000000000_keypoints.json");
    let r = rigfit().args(["fit", "--keypoints", data, "--size", "1920x1080", "--fov", "70", "--no-usd", "--json", "--out"]).arg(&out).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["frames"], 1);
    assert!(v["mean_reprojection_px"].as_f64().unwrap() <= v["initial_mean_reprojection_px"].as_f64().unwrap() + 1e-3);
    assert!(out.join("fit.glb").exists() && !out.join("fit.usda").exists());
    // No image size anywhere: a clear error naming the file and the fix.
    let r = rigfit().args(["fit", "--keypoints", data, "--out"]).arg(&out).output().unwrap();
    assert!(!r.status.success());
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(e.contains("walk_000000000000_keypoints.json") && e.contains("--size"), "{e}");
    // A malformed size.
    let r = rigfit().args(["fit", "--keypoints", data, "--size", "1920by1080"]).output().unwrap();
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("WxH"));
}

#[test]
fn body_info_json_describes_the_default_body() {
    let r = rigfit().args(["body", "info", "--json"]).output().unwrap();
    assert!(r.status.success());
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["joints"].as_array().unwrap().len(), 24);
    assert_eq!(v["joints"][18]["name"], "left_elbow");
    let h = v["height_m"].as_f64().unwrap();
    assert!((1.6..1.8).contains(&h), "height {h}");
}

#[test]
fn pose_applies_betas_and_reports_bad_input() {
    let out = tmpdir("pose");
    let tall = out.join("tall.obj");
    let r = rigfit().args(["body", "pose", "--betas", "2.0", "--obj"]).arg(&tall).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let rest = out.join("rest.obj");
    assert!(rigfit().args(["body", "pose", "--obj"]).arg(&rest).status().unwrap().success());
    let height = |p: &std::path::Path| {
        let ys: Vec<f32> = std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("v "))
            .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
            .collect();
        ys.iter().cloned().fold(f32::MIN, f32::max) - ys.iter().cloned().fold(f32::MAX, f32::min)
    };
    assert!(height(&tall) > height(&rest) + 0.05, "beta 0 = +2 should make the body taller");

    let r = rigfit().args(["body", "info", "--model", "/nonexistent/smpl.npz"]).output().unwrap();
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("/nonexistent/smpl.npz"), "error names the file: {err}");

    let bad = out.join("bad.json");
    std::fs::write(&bad, r#"{"axis_angle": [[0, 0]]}"#).unwrap();
    let r = rigfit().args(["body", "pose", "--pose"]).arg(&bad).args(["--obj", "/tmp/x.obj"]).output().unwrap();
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("bad.json"));
}
