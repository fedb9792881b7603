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
fn demo_writes_meshes_and_pictures() {
    let out = tmpdir("demo");
    let r = rigfit().args(["demo", "--out"]).arg(&out).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for f in ["rest.obj", "stride.obj", "rest.png", "stride.png"] {
        let p = out.join(f);
        assert!(p.metadata().map(|m| m.len() > 1000).unwrap_or(false), "{f} missing or empty");
    }
    let png = image::open(out.join("stride.png")).unwrap().to_rgb8();
    // The body covers a real part of the picture (not a blank background).
    let bg = *png.get_pixel(0, 0);
    let body = png.pixels().filter(|p| **p != bg).count();
    assert!(body > png.len() / 3 / 20, "only {body} body pixels");
    // OBJ: one v line per vertex of the default body.
    let obj = std::fs::read_to_string(out.join("rest.obj")).unwrap();
    let nv = obj.lines().filter(|l| l.starts_with("v ")).count();
    assert_eq!(nv, rigfit::body::BodyModel::default_body().unwrap().num_verts());
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
