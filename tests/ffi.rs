//! The C ABI (src/ffi.rs) called as C would: the header is what cbindgen generates, errors and
//! panics come back as status codes with messages, buffers are checked, and a fit through the
//! ABI (from arrays or from keypoint files) equals the Rust API's fit of the same input.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::PathBuf;
use std::ptr::{null, null_mut};

use rigfit::body::{BodyModel, JOINT_NAMES, SMPL_PARENTS};
use rigfit::diffusion::ddim::RefineConfig;
use rigfit::ffi::*;
use rigfit::fit::{FitInput, FitOptions, FitView, Fitter};
use rigfit::geom::rot::{axis_angle_to_matrix, quat_to_matrix};
use rigfit::motion::Motion;
use RigfitStatus::*;

fn last_error() -> String {
    unsafe { CStr::from_ptr(rigfit_last_error()) }.to_string_lossy().into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rigfit_ffi_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cpath(p: &std::path::Path) -> CString {
    CString::new(p.to_str().unwrap()).unwrap()
}

struct Session(*mut RigfitSession);
impl Drop for Session {
    fn drop(&mut self) {
        unsafe { rigfit_session_free(self.0) }
    }
}
fn session() -> Session {
    let mut s = null_mut();
    assert_eq!(unsafe { rigfit_session_new_default(&mut s) }, RIGFIT_OK, "{}", last_error());
    Session(s)
}

struct MotionH(*mut RigfitMotion);
impl Drop for MotionH {
    fn drop(&mut self) {
        unsafe { rigfit_motion_free(self.0) }
    }
}

/// Reads a whole float buffer through an accessor (size query, then the data).
fn read(f: impl Fn(*mut f32, usize, *mut usize) -> RigfitStatus) -> Vec<f32> {
    let mut n = 0usize;
    assert_eq!(f(null_mut(), 0, &mut n), RIGFIT_OK, "{}", last_error());
    let mut v = vec![f32::NAN; n];
    let mut n2 = 0usize;
    assert_eq!(f(v.as_mut_ptr(), v.len(), &mut n2), RIGFIT_OK, "{}", last_error());
    assert_eq!(n, n2);
    v
}

/// Rotations `[F * 24 * 9]` of a small walk and translations `[F * 3]`.
fn walk(frames: usize) -> (Vec<f32>, Vec<f32>) {
    let mut rot = Vec::new();
    let mut tr = Vec::new();
    for f in 0..frames {
        let s = (f as f32 * 0.3).sin();
        for j in 0..24 {
            let aa = match j {
                1 => [-0.4 - 0.3 * s, 0.0, 0.1],
                2 => [-0.2 + 0.3 * s, 0.0, -0.1],
                4 => [0.6 + 0.2 * s, 0.0, 0.0],
                5 => [0.4 - 0.2 * s, 0.0, 0.0],
                16 => [0.0, 0.0, -1.1],
                17 => [0.0, 0.0, 1.1],
                18 => [0.0, -0.8 - 0.3 * s, 0.0],
                _ => [0.0, 0.0, 0.0],
            };
            rot.extend(axis_angle_to_matrix(&aa));
        }
        tr.extend([0.02 * f as f32, 0.1, -4.0]);
    }
    (rot, tr)
}

/// A known motion in front of a camera at the origin and its keypoints `[F * 25 * 3]`.
fn truth(s: &Session, frames: usize) -> (MotionH, RigfitView, Vec<f32>) {
    let (rot, tr) = walk(frames);
    let mut m = null_mut();
    let betas = [0.5f32, -0.3];
    let st = unsafe { rigfit_motion_new(s.0, frames, 30.0, betas.as_ptr(), 2, rot.as_ptr(), tr.as_ptr(), &mut m) };
    assert_eq!(st, RIGFIT_OK, "{}", last_error());
    let m = MotionH(m);
    let mut view: RigfitView = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { rigfit_view_from_focal(1200.0, 1000, 800, &mut view) }, RIGFIT_OK);
    assert_eq!(unsafe { rigfit_motion_add_camera(m.0, &view) }, RIGFIT_OK, "{}", last_error());
    let kp = read(|o, c, l| unsafe { rigfit_motion_project_keypoints(m.0, 0, o, c, l) });
    assert_eq!(kp.len(), frames * 75);
    (m, view, kp)
}

/// Fast settings: the plumbing is under test, not the accuracy of the (placeholder) prior.
fn fast_options() -> RigfitFitOptions {
    let mut o: RigfitFitOptions = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { rigfit_fit_options_default(&mut o) }, RIGFIT_OK);
    o.hypotheses = 2;
    o.sample_step = 250;
    o.refine_tau = 10;
    o.refine_step = 5;
    o.refine_iters = 1;
    o.seed = 7;
    o
}

fn rust_options() -> FitOptions {
    let base = RefineConfig::fitting();
    FitOptions {
        hypotheses: 2,
        sample_step: 250,
        refine_config: Some(RefineConfig { tau: 10, step: 5, iters: 1, ..base }),
        seed: 7,
        ..FitOptions::default()
    }
}

fn motion_of(m: &MotionH) -> Motion {
    unsafe { rigfit::ffi::motion_ref(m.0) }.unwrap().clone()
}

#[test]
fn header_matches_cbindgen_output() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).unwrap();
    let bindings = cbindgen::Builder::new().with_config(config).with_src(root.join("src/ffi.rs")).generate().expect("cbindgen");
    let mut out = Vec::new();
    bindings.write(&mut out);
    let generated = String::from_utf8(out).unwrap();
    let path = root.join("cpp/rigfit.h");
    if std::env::var_os("RIGFIT_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "cpp/rigfit.h drifted from src/ffi.rs: regenerate it with `RIGFIT_BLESS=1 cargo test --test ffi header`"
    );
    // Every exported function is declared.
    for name in ["rigfit_abi_version", "rigfit_fit", "rigfit_fit_files", "rigfit_motion_quaternions", "rigfit_last_error"] {
        assert!(generated.contains(&format!("{name}(")), "{name} missing from the header");
    }
}

#[test]
fn version_errors_and_panics_come_back_as_codes() {
    assert_eq!(rigfit_abi_version(), RIGFIT_ABI_VERSION);
    assert_eq!(unsafe { CStr::from_ptr(rigfit_version()) }.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    assert_eq!(unsafe { CStr::from_ptr(rigfit_status_name(3)) }.to_str().unwrap(), "RIGFIT_ERR_CANCELLED");
    // NULL handles and outputs are input errors naming the argument.
    assert_eq!(unsafe { rigfit_session_new_default(null_mut()) }, RIGFIT_ERR_INPUT);
    assert!(last_error().contains("out is NULL"), "{}", last_error());
    assert_eq!(unsafe { rigfit_session_num_vertices(null()) }, 0);
    assert!(last_error().contains("session is NULL"), "{}", last_error());
    // A panic inside an entry point is caught and reported, never unwinds into the caller.
    assert_eq!(rigfit_debug_panic(), RIGFIT_ERR_PANIC);
    let e = last_error();
    assert!(e.contains("rigfit_debug_panic was called") && e.contains("ffi.rs"), "{e}");
    // A successful call clears the message.
    assert_eq!(rigfit_num_joints(), 24);
    let mut n = 0usize;
    assert_eq!(unsafe { rigfit_joint_parents(null_mut(), 0, &mut n) }, RIGFIT_OK);
    assert_eq!(last_error(), "");
    // Missing files are I/O errors naming the file; bad model files are model errors.
    let mut s = null_mut();
    let missing = CString::new("/nonexistent/body.npz").unwrap();
    assert_eq!(unsafe { rigfit_session_new(missing.as_ptr(), null(), &mut s) }, RIGFIT_ERR_IO);
    assert!(last_error().contains("/nonexistent/body.npz"), "{}", last_error());
    assert!(s.is_null());
    // Errors are per thread.
    std::thread::spawn(|| assert_eq!(last_error(), "")).join().unwrap();
}

#[test]
fn body_info_and_buffer_checks() {
    let s = session();
    let model = BodyModel::default_body().unwrap();
    for (i, name) in JOINT_NAMES.iter().enumerate() {
        assert_eq!(unsafe { CStr::from_ptr(rigfit_joint_name(i)) }.to_str().unwrap(), *name);
    }
    assert!(rigfit_joint_name(24).is_null());
    let mut parents = [0i32; 24];
    let mut n = 0;
    assert_eq!(unsafe { rigfit_joint_parents(parents.as_mut_ptr(), 24, &mut n) }, RIGFIT_OK);
    assert_eq!((parents, n), (SMPL_PARENTS, 24));
    let v = unsafe { rigfit_session_num_vertices(s.0) };
    let f = unsafe { rigfit_session_num_faces(s.0) };
    assert_eq!((v, f), (model.num_verts(), model.faces().len()));
    assert_eq!(unsafe { rigfit_session_num_betas(s.0) }, model.num_betas());
    // Undersized buffers: an input error naming the size needed, nothing written past cap.
    let mut small = vec![-1.0f32; 10];
    assert_eq!(unsafe { rigfit_session_rest_joints(s.0, null(), 0, small.as_mut_ptr(), 9, &mut n) }, RIGFIT_ERR_INPUT);
    assert!(last_error().contains("72 needed"), "{}", last_error());
    assert_eq!(n, 72);
    assert!(small.iter().all(|&x| x == -1.0));
    // Both NULL: nothing to write or query.
    assert_eq!(unsafe { rigfit_session_rest_joints(s.0, null(), 0, null_mut(), 0, null_mut()) }, RIGFIT_ERR_INPUT);
    // Values equal the Rust API's.
    let betas = [1.0f32, 0.5];
    let j = read(|o, c, l| unsafe { rigfit_session_rest_joints(s.0, betas.as_ptr(), 2, o, c, l) });
    let want = model.rest_joints(&betas).unwrap();
    assert_eq!(j, want);
    let rv = read(|o, c, l| unsafe { rigfit_session_rest_vertices(s.0, betas.as_ptr(), 2, o, c, l) });
    assert_eq!(rv.len(), v * 3);
    let mut faces = vec![0u32; f * 3];
    assert_eq!(unsafe { rigfit_session_faces(s.0, faces.as_mut_ptr(), faces.len(), &mut n) }, RIGFIT_OK);
    assert_eq!(faces, model.faces().iter().flatten().copied().collect::<Vec<_>>());
    let w = read(|o, c, l| unsafe { rigfit_session_skin_weights(s.0, o, c, l) });
    assert_eq!(w, model.arrays().weights);
    // Too many betas and a NULL betas pointer with a count are input errors.
    let many = [0.0f32; 600];
    assert_eq!(unsafe { rigfit_session_rest_joints(s.0, many.as_ptr(), 600, null_mut(), 0, &mut n) }, RIGFIT_ERR_INPUT);
    assert!(last_error().contains("600 shape coefficients"), "{}", last_error());
    assert_eq!(unsafe { rigfit_session_rest_joints(s.0, null(), 3, null_mut(), 0, &mut n) }, RIGFIT_ERR_INPUT);
    assert!(last_error().contains("betas is NULL"), "{}", last_error());
}

#[test]
fn motion_accessors_agree_with_the_rust_motion() {
    let s = session();
    let (m, view, kp) = truth(&s, 3);
    let model = BodyModel::default_body().unwrap();
    let rm = motion_of(&m);
    assert_eq!(unsafe { rigfit_motion_num_frames(m.0) }, 3);
    assert_eq!(unsafe { rigfit_motion_fps(m.0) }, 30.0);
    assert_eq!(read(|o, c, l| unsafe { rigfit_motion_betas(m.0, o, c, l) }), vec![0.5, -0.3]);
    let rot = read(|o, c, l| unsafe { rigfit_motion_rotations(m.0, o, c, l) });
    assert_eq!(rot, walk(3).0);
    // Quaternions are the same rotations.
    let q = read(|o, c, l| unsafe { rigfit_motion_quaternions(m.0, o, c, l) });
    assert_eq!(q.len(), 3 * 24 * 4);
    for (qi, ri) in q.chunks_exact(4).zip(rot.chunks_exact(9)) {
        let back = quat_to_matrix(&[qi[0], qi[1], qi[2], qi[3]]);
        assert!(back.iter().zip(ri).all(|(a, b)| (a - b).abs() < 1e-5), "{qi:?} vs {ri:?}");
    }
    // Signs are continuous over frames, and w >= 0 at frame 0: a root spinning about Y by 0, 2
    // and 4 radians (w = cos(2) < 0 at frame 2 without the continuity).
    let (mut spin, tr) = walk(3);
    for f in 0..3 {
        spin[f * 24 * 9..f * 24 * 9 + 9].copy_from_slice(&axis_angle_to_matrix(&[0.0, 2.0 * f as f32, 0.0]));
        // The left hip turns about z through 180 degrees (Euler z must unwrap: 172 -> 195).
        spin[f * 24 * 9 + 9..f * 24 * 9 + 18].copy_from_slice(&axis_angle_to_matrix(&[0.0, 0.0, [0.0, 3.0, 3.4][f]]));
    }
    let mut sm = null_mut();
    assert_eq!(unsafe { rigfit_motion_new(s.0, 3, 30.0, null(), 0, spin.as_ptr(), tr.as_ptr(), &mut sm) }, RIGFIT_OK);
    let sm = MotionH(sm);
    let q = read(|o, c, l| unsafe { rigfit_motion_quaternions(sm.0, o, c, l) });
    assert!(q[..24 * 4].chunks_exact(4).all(|qi| qi[0] >= 0.0));
    for i in 24..3 * 24 {
        let dot: f32 = (0..4).map(|k| q[i * 4 + k] * q[(i - 24) * 4 + k]).sum();
        assert!(dot >= 0.0, "joint {} flips sign at frame {}", i % 24, i / 24);
    }
    assert!(q[2 * 24 * 4] < 0.0, "frame 2 root w = {}", q[2 * 24 * 4]);
    // Euler XYZ angles rebuild the matrices (R = Rz Ry Rx) and are continuous over the spin.
    for (mh, rots) in [(&m, rot.clone()), (&sm, spin.clone())] {
        let e = read(|o, c, l| unsafe { rigfit_motion_euler_xyz(mh.0, o, c, l) });
        assert_eq!(e.len(), 3 * 24 * 3);
        for (ei, ri) in e.chunks_exact(3).zip(rots.chunks_exact(9)) {
            let [x, y, z] = [ei[0].to_radians(), ei[1].to_radians(), ei[2].to_radians()];
            let rz = axis_angle_to_matrix(&[0.0, 0.0, z]);
            let ry = axis_angle_to_matrix(&[0.0, y, 0.0]);
            let rx = axis_angle_to_matrix(&[x, 0.0, 0.0]);
            let back = rigfit::geom::rot::mat3_mul(&rz, &rigfit::geom::rot::mat3_mul(&ry, &rx));
            assert!(back.iter().zip(ri).all(|(a, b)| (a - b).abs() < 1e-5), "{ei:?}: {back:?} vs {ri:?}");
        }
        for i in 24..3 * 24 {
            for k in 0..3 {
                assert!((e[i * 3 + k] - e[(i - 24) * 3 + k]).abs() <= 180.0, "angle {k} of joint {} jumps at frame {}", i % 24, i / 24);
            }
        }
    }
    let j = read(|o, c, l| unsafe { rigfit_motion_joints(m.0, o, c, l) });
    assert_eq!(j, rm.joints(&model).unwrap());
    // Pelvis = rest joint 0 + translation (identity root rotation in this walk).
    let rest = read(|o, c, l| unsafe { rigfit_motion_rest_joints(m.0, o, c, l) });
    assert!((j[3 * 24 * 2 - 72] - (rest[0] + 0.02)).abs() < 1e-5);
    let verts = read(|o, c, l| unsafe { rigfit_motion_vertices(m.0, 2, o, c, l) });
    assert_eq!(verts.len(), model.num_verts() * 3);
    let mut n = 0;
    assert_eq!(unsafe { rigfit_motion_vertices(m.0, 3, null_mut(), 0, &mut n) }, RIGFIT_ERR_INPUT);
    assert!(last_error().contains("frame 3"), "{}", last_error());
    // The projected keypoints are the camera's projection of the motion's BODY_25 points.
    let cam = &rm.cameras[0];
    let mut out = rigfit::body::BodyOutput::default();
    rm.forward(&model, 0..3, false, &mut out).unwrap();
    let uv = cam.project(1, [out.keypoints[75], out.keypoints[76], out.keypoints[77]]).unwrap();
    assert_eq!([kp[75], kp[76], kp[77]], [uv[0], uv[1], 1.0]);
    // Camera read-back.
    assert_eq!(unsafe { rigfit_motion_num_cameras(m.0) }, 1);
    let mut c: RigfitView = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { rigfit_motion_camera(m.0, 0, 1, &mut c) }, RIGFIT_OK);
    assert_eq!((c.fx, c.cx, c.cy, c.width, c.height, c.has_pose), (1200.0, 500.0, 400.0, 1000, 800, 1));
    assert_eq!(unsafe { CStr::from_ptr(c.name) }.to_str().unwrap(), "camera_0");
    assert_eq!(view.has_pose, 0);
    assert_eq!(unsafe { rigfit_motion_camera(m.0, 1, 0, &mut c) }, RIGFIT_ERR_INPUT);
    // Film camera round trip.
    let mut film = RigfitFilm::default();
    assert_eq!(unsafe { rigfit_view_film(&view, 36.0, &mut film) }, RIGFIT_OK);
    assert!((film.focal_mm - 43.2).abs() < 1e-4 && (film.sensor_height_mm - 28.8).abs() < 1e-4, "{film:?}");
    let mut back: RigfitView = unsafe { std::mem::zeroed() };
    film.shift_x = 0.01;
    assert_eq!(unsafe { rigfit_view_from_film(&film, 1000, 800, &mut back) }, RIGFIT_OK);
    assert!((back.fx - 1200.0).abs() < 1e-3 && (back.cx - 490.0).abs() < 1e-3, "{back:?}");
    // JSON round trip through the ABI.
    let dir = tmp("json");
    let p = cpath(&dir.join("m.json"));
    assert_eq!(unsafe { rigfit_motion_save_json(m.0, p.as_ptr()) }, RIGFIT_OK);
    let mut l = null_mut();
    assert_eq!(unsafe { rigfit_motion_load_json(s.0, p.as_ptr(), &mut l) }, RIGFIT_OK, "{}", last_error());
    let l = MotionH(l);
    assert_eq!(motion_of(&l), rm);
    assert!(unsafe { rigfit_motion_mean_reprojection_px(l.0) }.is_nan());
    // The exporters write files (their content is proven by tests/export_*.rs).
    for name in ["m.glb", "m.usda"] {
        let g = cpath(&dir.join(name));
        let st = if name.ends_with(".glb") { unsafe { rigfit_motion_write_glb(m.0, g.as_ptr()) } } else { unsafe { rigfit_motion_write_usda(m.0, g.as_ptr()) } };
        assert_eq!(st, RIGFIT_OK, "{}", last_error());
        assert!(dir.join(name).metadata().unwrap().len() > 1000, "{name}");
    }
    // A folder that does not exist: an I/O error naming the path.
    let bad = cpath(&dir.join("missing/m.glb"));
    assert_eq!(unsafe { rigfit_motion_write_glb(m.0, bad.as_ptr()) }, RIGFIT_ERR_IO, "{}", last_error());
    assert!(last_error().contains("missing"), "{}", last_error());
    // The motion outlives its session.
    drop(s);
    assert_eq!(read(|o, c, l| unsafe { rigfit_motion_joints(m.0, o, c, l) }), j);
}

#[test]
fn fit_from_arrays_equals_the_rust_fit() {
    let s = session();
    let frames = 2;
    let (_m, view, kp) = truth(&s, frames);
    let opts = fast_options();
    let mut out = null_mut();
    let st = unsafe { rigfit_fit(s.0, kp.as_ptr(), null(), frames, 1, &view, 30.0, &opts, None, null_mut(), &mut out) };
    assert_eq!(st, RIGFIT_OK, "{}", last_error());
    let fitted = MotionH(out);
    // The same input through the Rust API.
    let fitter = Fitter::default_cpu().unwrap();
    let input = FitInput {
        keypoints: (0..frames).map(|f| vec![Some(kp[f * 75..(f + 1) * 75].to_vec())]).collect(),
        views: vec![FitView { name: "camera".into(), camera: rigfit::geom::camera::Pinhole { fx: 1200.0, fy: 1200.0, cx: 500.0, cy: 400.0 }, width: 1000, height: 800, pose: None }],
        fps: 30.0,
    };
    let want = fitter.fit(&input, &rust_options(), None).unwrap();
    let got = motion_of(&fitted);
    assert_eq!(got, want.motion);
    let e = read(|o, c, l| unsafe { rigfit_motion_reprojection_px(fitted.0, o, c, l) });
    assert_eq!(e.len(), frames);
    assert_eq!(e, want.reprojection_px);
    let mean = unsafe { rigfit_motion_mean_reprojection_px(fitted.0) };
    assert!((mean - want.mean_reprojection_px()).abs() < 1e-6 && mean.is_finite());
    assert_eq!(unsafe { rigfit_motion_num_cameras(fitted.0) }, 1);
    assert_eq!(unsafe { rigfit_motion_num_betas(fitted.0) }, 10);
    // `seen` = 0 in frame 1: the view does not see frame 1 (the Rust input with None there).
    let seen = [1u8, 0];
    let st = unsafe { rigfit_fit(s.0, kp.as_ptr(), seen.as_ptr(), frames, 1, &view, 30.0, &opts, None, null_mut(), &mut out) };
    assert_eq!(st, RIGFIT_OK, "{}", last_error());
    let partial = MotionH(out);
    let mut input2 = input.clone();
    input2.keypoints[1][0] = None;
    let want2 = fitter.fit(&input2, &rust_options(), None).unwrap();
    assert_eq!(motion_of(&partial), want2.motion);
}

unsafe extern "C" fn count_progress(user: *mut c_void, stage: *const c_char, done: usize, total: usize) -> c_int {
    let log = &mut *(user as *mut Vec<(String, usize, usize)>);
    log.push((CStr::from_ptr(stage).to_string_lossy().into_owned(), done, total));
    1
}

unsafe extern "C" fn cancel_when_refining(user: *mut c_void, stage: *const c_char, _done: usize, _total: usize) -> c_int {
    *(user as *mut usize) += 1;
    (CStr::from_ptr(stage).to_bytes() != b"refining") as c_int
}

#[test]
fn progress_is_reported_and_the_callback_cancels() {
    let s = session();
    let (_m, view, kp) = truth(&s, 2);
    let opts = fast_options();
    let mut log: Vec<(String, usize, usize)> = Vec::new();
    let mut out = null_mut();
    let st = unsafe { rigfit_fit(s.0, kp.as_ptr(), null(), 2, 1, &view, 30.0, &opts, Some(count_progress), &mut log as *mut _ as *mut c_void, &mut out) };
    assert_eq!(st, RIGFIT_OK, "{}", last_error());
    let _fitted = MotionH(out);
    assert!(log.iter().any(|l| l.0 == "refining"), "{log:?}");
    assert_eq!(log.last().unwrap(), &("done".to_string(), 1, 1));
    assert!(log.iter().all(|(_, d, t)| d <= t));
    // Returning 0 cancels: RIGFIT_ERR_CANCELLED, no motion.
    let mut calls = 0usize;
    let mut out = null_mut();
    let st = unsafe { rigfit_fit(s.0, kp.as_ptr(), null(), 2, 1, &view, 30.0, &opts, Some(cancel_when_refining), &mut calls as *mut _ as *mut c_void, &mut out) };
    assert_eq!(st, RIGFIT_ERR_CANCELLED, "{}", last_error());
    assert!(out.is_null());
    assert!(calls >= 2);
    assert_eq!(last_error(), "cancelled");
}

#[test]
fn bad_fit_inputs_are_errors() {
    let s = session();
    let (_m, view, kp) = truth(&s, 1);
    let opts = fast_options();
    let mut out = null_mut();
    let fit = |kp: *const f32, frames: usize, view: *const RigfitView, opts: *const RigfitFitOptions, out: *mut *mut RigfitMotion| unsafe {
        rigfit_fit(s.0, kp, null(), frames, 1, view, 30.0, opts, None, null_mut(), out)
    };
    assert_eq!(fit(null(), 1, &view, &opts, &mut out), RIGFIT_ERR_INPUT);
    assert!(last_error().contains("keypoints is NULL"), "{}", last_error());
    assert_eq!(fit(kp.as_ptr(), 0, &view, &opts, &mut out), RIGFIT_ERR_INPUT);
    assert_eq!(fit(kp.as_ptr(), 1, null(), &opts, &mut out), RIGFIT_ERR_INPUT);
    assert!(last_error().contains("views is NULL"), "{}", last_error());
    assert_eq!(fit(kp.as_ptr(), 1, &view, &opts, null_mut()), RIGFIT_ERR_INPUT);
    let mut bad_view = view;
    bad_view.fx = 0.0;
    assert_eq!(fit(kp.as_ptr(), 1, &bad_view, &opts, &mut out), RIGFIT_ERR_INPUT);
    assert!(last_error().contains("views[0]"), "{}", last_error());
    let mut bad = opts;
    bad.hypotheses = 0;
    assert_eq!(fit(kp.as_ptr(), 1, &view, &bad, &mut out), RIGFIT_ERR_INPUT);
    assert!(last_error().contains("hypotheses"), "{}", last_error());
    // Nothing confident: the core's error comes through.
    let zeros = vec![0.0f32; 75];
    assert_eq!(fit(zeros.as_ptr(), 1, &view, &opts, &mut out), RIGFIT_ERR_INPUT);
    assert!(last_error().contains("confident keypoints"), "{}", last_error());
    assert!(out.is_null());
    // Files: a missing file is an I/O error naming it; an unknown track id is an input error.
    let missing = CString::new("/nonexistent/kp.json").unwrap();
    let st = unsafe { rigfit_fit_files(s.0, missing.as_ptr(), -1, 1000, 800, 1200.0, 0.0, 0, 0, &opts, None, null_mut(), &mut out) };
    assert_eq!(st, RIGFIT_ERR_IO, "{}", last_error());
    assert!(last_error().contains("/nonexistent/kp.json"), "{}", last_error());
    let dir = tmp("badtrack");
    write_openpose(&dir, &kp, 1);
    let p = cpath(&dir);
    let st = unsafe { rigfit_fit_files(s.0, p.as_ptr(), 5, 1000, 800, 1200.0, 0.0, 0, 0, &opts, None, null_mut(), &mut out) };
    assert_eq!(st, RIGFIT_ERR_INPUT);
    assert!(last_error().contains("track id 5"), "{}", last_error());
    let st = unsafe { rigfit_fit_files(s.0, p.as_ptr(), -1, 1000, 800, 1200.0, 0.0, 3, 0, &opts, None, null_mut(), &mut out) };
    assert_eq!(st, RIGFIT_ERR_INPUT);
    assert!(last_error().contains("frame_start 3"), "{}", last_error());
}

/// Writes OpenPose `--write_json` files (one per frame, one person with track id 0).
fn write_openpose(dir: &std::path::Path, kp: &[f32], frames: usize) {
    for f in 0..frames {
        let doc = serde_json::json!({"version": 1.3, "people": [{"person_id": [0], "pose_keypoints_2d": &kp[f * 75..(f + 1) * 75]}]});
        std::fs::write(dir.join(format!("clip_{f:012}_keypoints.json")), doc.to_string()).unwrap();
    }
}

#[test]
fn fit_from_files_equals_the_fit_from_arrays() {
    let s = session();
    let frames = 3;
    let (_m, view, kp) = truth(&s, frames);
    let dir = tmp("files");
    write_openpose(&dir, &kp, frames);
    let opts = fast_options();
    let p = cpath(&dir);
    let mut n = 0usize;
    assert_eq!(unsafe { rigfit_keypoints_num_frames(p.as_ptr(), 0, 0, &mut n) }, RIGFIT_OK, "{}", last_error());
    assert_eq!(n, frames);
    // Frames 1..3 of the folder.
    let mut out = null_mut();
    let st = unsafe { rigfit_fit_files(s.0, p.as_ptr(), 0, 1000, 800, 1200.0, 24.0, 1, 2, &opts, None, null_mut(), &mut out) };
    assert_eq!(st, RIGFIT_OK, "{}", last_error());
    let from_files = MotionH(out);
    let st = unsafe { rigfit_fit(s.0, kp[75..].as_ptr(), null(), 2, 1, &view, 24.0, &opts, None, null_mut(), &mut out) };
    assert_eq!(st, RIGFIT_OK, "{}", last_error());
    let from_arrays = MotionH(out);
    assert_eq!(unsafe { rigfit_motion_num_frames(from_files.0) }, 2);
    assert_eq!(unsafe { rigfit_motion_fps(from_files.0) }, 24.0);
    assert_eq!(motion_of(&from_files), motion_of(&from_arrays));
}

