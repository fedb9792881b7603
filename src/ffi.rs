//! The C ABI: what C, C++ (cpp/), Blender and Maya (plugins/, through ctypes) call.
//!
//! Conventions (the header `cpp/rigfit.h` is generated from this file by cbindgen):
//! - Every function returns a [`RigfitStatus`] (or a plain value for the few size getters, which
//!   return 0 / NaN on error) and never lets a panic cross the boundary: each entry runs inside
//!   `catch_unwind`, and a panic hook routes panic messages to the last-error string instead of
//!   stderr (panics outside rigfit's entry points keep the host's previous hook).
//! - On failure, [`rigfit_last_error`] returns a message for the calling thread, naming the
//!   argument, the file or the field and what was expected. A successful call clears it.
//! - Opaque handles: a [`RigfitSession`] owns the body model and the diffusion prior (the fitting
//!   engine); a [`RigfitMotion`] owns a fitted animation and a reference to the body model, so it
//!   stays valid after its session is freed. A handle may be used by one thread at a time.
//! - Buffers are plain `float` arrays with explicit sizes. Output accessors take
//!   `(out, cap, len)`: `cap` is the capacity of `out` in elements, `*len` (when `len` is not NULL)
//!   receives the number of elements the result has; `out == NULL` only queries that size. A
//!   NULL required argument or an undersized buffer is `RIGFIT_ERR_INPUT` with a message that
//!   names the argument and the size needed.
//! - Units and axes are the core's (DESIGN.md): metres, seconds, pixels, a Y-up world; cameras
//!   are camera-to-world, looking down their -Z with +Y up (glTF / USD / Blender cameras).
//!   Rotations are row-major 3x3 matrices or `[w, x, y, z]` quaternions, SMPL joint order.
//!   SMPL's joints have the identity as rest orientation, so the local quaternions are what a
//!   DCC bone needs when its rest orientation is the identity in armature space.

#![allow(non_camel_case_types, clippy::missing_safety_doc)]

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, OnceLock};

use crate::body::{BodyModel, BodyOutput, JOINT_NAMES, NUM_BODY25, NUM_JOINTS};
use crate::diffusion::Prior;
use crate::error::Error;
use crate::fit::{FitInput, FitOptions, FitView, Fitter, Progress};
use crate::geom::camera::{Pinhole, SCOREHMR_FOCAL};
use crate::geom::rot::{matrix_to_quat, quat_continuous};
use crate::motion::{Motion, MotionCamera};

/// Version of this C ABI; bumped on any incompatible change of a signature or struct.
pub const RIGFIT_ABI_VERSION: u32 = 1;

/// Status of a call.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RigfitStatus {
    RIGFIT_OK = 0,
    /// A bad argument: NULL, an undersized buffer, inconsistent sizes, out-of-range values.
    RIGFIT_ERR_INPUT = 1,
    /// A file could not be read or written.
    RIGFIT_ERR_IO = 2,
    /// The progress callback returned 0.
    RIGFIT_ERR_CANCELLED = 3,
    /// A bug inside rigfit (a caught panic); the message says where.
    RIGFIT_ERR_PANIC = 4,
    /// A body model or prior file lacks an array or has a wrong shape or value.
    RIGFIT_ERR_MODEL = 5,
    /// A numerical backend error.
    RIGFIT_ERR_INTERNAL = 6,
    /// The feature is not available in this build.
    RIGFIT_ERR_UNSUPPORTED = 7,
}

use RigfitStatus::*;

/// A fitting engine: the body model and the diffusion prior (opaque).
pub struct RigfitSession {
    fitter: Fitter,
    body: Arc<BodyModel>,
}

/// A fitted (or loaded) animation (opaque): shape, per-frame rotations and translations,
/// cameras, and the reprojection errors of the fit.
pub struct RigfitMotion {
    motion: Motion,
    body: Arc<BodyModel>,
    /// `[F, V]` reprojection errors of the fit, pixels (empty when not from a fit).
    reprojection: Vec<f32>,
    /// Camera names, NUL-terminated, in `motion.cameras` order.
    camera_names: Vec<CString>,
}

impl RigfitMotion {
    fn new(motion: Motion, body: Arc<BodyModel>, reprojection: Vec<f32>) -> Self {
        let mut m = Self { motion, body, reprojection, camera_names: Vec::new() };
        m.refresh_names();
        m
    }
    fn refresh_names(&mut self) {
        self.camera_names = self.motion.cameras.iter().map(|c| cstring(&c.name)).collect();
    }
}

/// One camera: intrinsics (pixels), image size and an optional camera-to-world pose.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RigfitView {
    /// Name (NUL-terminated) or NULL for the default ("camera" for one view, "view_<i>").
    pub name: *const c_char,
    pub fx: f32,
    pub fy: f32,
    pub cx: f32,
    pub cy: f32,
    /// Image size, pixels.
    pub width: u32,
    pub height: u32,
    /// 1 when `rotation` and `position` hold a calibrated pose, 0 when the view is uncalibrated.
    pub has_pose: i32,
    /// Camera-to-world rotation, row-major `[3, 3]` (Y-up world, camera looks down its -Z).
    pub rotation: [f32; 9],
    /// Camera position in the world `[3]`, metres.
    pub position: [f32; 3],
}

/// A pinhole camera as a film camera (Blender / Maya style), horizontal sensor fit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RigfitFilm {
    /// Focal length, millimetres.
    pub focal_mm: f32,
    /// Sensor width and height, millimetres (height = width * image height / width).
    pub sensor_width_mm: f32,
    pub sensor_height_mm: f32,
    /// Lens shift in units of the image width (Blender `shift_x` / `shift_y` with
    /// `sensor_fit = 'HORIZONTAL'`): principal point `cx = w/2 - shift_x w`, `cy = h/2 + shift_y w`.
    pub shift_x: f32,
    pub shift_y: f32,
}

/// Settings of a fit (see `rigfit::fit::FitOptions`); fill with [`rigfit_fit_options_default`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RigfitFitOptions {
    /// Hypotheses sampled per observation for the initialisation (default 16).
    pub hypotheses: u32,
    /// DDIM step when sampling from noise (default 40: 25 network evaluations).
    pub sample_step: u32,
    /// 1: run ScoreHMR refinement after the initialisation (default 1).
    pub refine: i32,
    /// 1: temporal smoothness in videos (default 1).
    pub temporal: i32,
    /// Smoothness weight (default 30, ScoreHMR base.yaml W_SMOOTH).
    pub smooth_weight: f32,
    pub seed: u64,
    /// Frames refined together (default 256).
    pub chunk: u32,
    /// Shape coefficients held fixed `[num_betas]` (NULL / 0: the mean shape).
    pub betas: *const f32,
    pub num_betas: usize,
    /// Refinement schedule overrides; 0 keeps the mode's value (single image, video and
    /// calibrated views: tau 50, step 2, 20 iterations with ScoreHMR's guidance x 5;
    /// uncalibrated views: ScoreHMR's tau 100, step 10, 2 iterations).
    pub refine_tau: u32,
    pub refine_step: u32,
    pub refine_iters: u32,
}

/// Progress callback: `stage` is a short NUL-terminated description ("sampling hypotheses",
/// "refining", "done"), `done <= total`. Return 0 to cancel the fit (`RIGFIT_ERR_CANCELLED`),
/// anything else to continue. Called on the thread that runs the fit.
pub type RigfitProgressFn =
    Option<unsafe extern "C" fn(user: *mut c_void, stage: *const c_char, done: usize, total: usize) -> c_int>;

// ------------------------------------------------------------------------------------------------
// Errors, panics
// ------------------------------------------------------------------------------------------------

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    static IN_FFI: Cell<bool> = const { Cell::new(false) };
    static PANIC_MSG: RefCell<Option<String>> = const { RefCell::new(None) };
}

struct Fail(RigfitStatus, String);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Input(_) => RIGFIT_ERR_INPUT,
            Error::Io { .. } => RIGFIT_ERR_IO,
            Error::Cancelled => RIGFIT_ERR_CANCELLED,
            Error::MissingKey { .. } | Error::BadShape { .. } | Error::BadValue { .. } => RIGFIT_ERR_MODEL,
            Error::Candle(_) | Error::Image(_) => RIGFIT_ERR_INTERNAL,
        };
        Fail(status, e.to_string())
    }
}

type R<T> = std::result::Result<T, Fail>;

fn input<T>(msg: impl Into<String>) -> R<T> {
    Err(Fail(RIGFIT_ERR_INPUT, msg.into()))
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).expect("NULs replaced")
}

fn set_error(msg: &str) {
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = cstring(msg));
}

fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_FFI.try_with(|f| f.get()).unwrap_or(false) {
                let msg = match (info.payload().downcast_ref::<&str>(), info.payload().downcast_ref::<String>()) {
                    (Some(s), _) => s.to_string(),
                    (_, Some(s)) => s.clone(),
                    _ => "unknown panic".to_string(),
                };
                let loc = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                let _ = PANIC_MSG.try_with(|p| *p.borrow_mut() = Some(format!("{msg}{loc}")));
            } else {
                prev(info)
            }
        }));
    });
}

/// Runs `f` as an ABI entry: catches panics, records errors, returns the value or `fallback`.
fn entry<T>(fallback: T, f: impl FnOnce() -> R<T>) -> (T, RigfitStatus) {
    install_panic_hook();
    let was = IN_FFI.with(|c| c.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    IN_FFI.with(|c| c.set(was));
    match r {
        Ok(Ok(v)) => {
            set_error("");
            (v, RIGFIT_OK)
        }
        Ok(Err(Fail(status, msg))) => {
            set_error(&msg);
            (fallback, status)
        }
        Err(payload) => {
            let msg = PANIC_MSG.with(|p| p.borrow_mut().take()).unwrap_or_else(|| {
                payload.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| payload.downcast_ref::<String>().cloned()).unwrap_or_else(|| "unknown panic".into())
            });
            set_error(&format!("internal error (panic; please report): {msg}"));
            (fallback, RIGFIT_ERR_PANIC)
        }
    }
}

fn call(f: impl FnOnce() -> R<()>) -> RigfitStatus {
    entry((), f).1
}

fn value<T>(fallback: T, f: impl FnOnce() -> R<T>) -> T {
    entry(fallback, f).0
}

unsafe fn handle<'a, T>(p: *const T, name: &str) -> R<&'a T> {
    match p.as_ref() {
        Some(r) => Ok(r),
        None => input(format!("{name} is NULL")),
    }
}

unsafe fn handle_mut<'a, T>(p: *mut T, name: &str) -> R<&'a mut T> {
    match p.as_mut() {
        Some(r) => Ok(r),
        None => input(format!("{name} is NULL")),
    }
}

unsafe fn slice_in<'a, T>(p: *const T, n: usize, name: &str) -> R<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return input(format!("{name} is NULL but {n} values are expected"));
    }
    Ok(std::slice::from_raw_parts(p, n))
}

unsafe fn str_in<'a>(p: *const c_char, name: &str) -> R<&'a str> {
    if p.is_null() {
        return input(format!("{name} is NULL"));
    }
    CStr::from_ptr(p).to_str().or_else(|_| input(format!("{name} is not valid UTF-8")))
}

unsafe fn path_in(p: *const c_char, name: &str) -> R<PathBuf> {
    let s = str_in(p, name)?;
    if s.is_empty() {
        return input(format!("{name} is an empty path"));
    }
    Ok(PathBuf::from(s))
}

/// Writes `data` to a caller buffer (see the module docs: `out` NULL = size query).
unsafe fn write_out<T: Copy>(data: &[T], out: *mut T, cap: usize, len: *mut usize, name: &str) -> R<()> {
    if !len.is_null() {
        *len = data.len();
    }
    if out.is_null() {
        if len.is_null() {
            return input(format!("{name}: out and len are both NULL (pass len to query the size, {} values)", data.len()));
        }
        return Ok(());
    }
    if cap < data.len() {
        return input(format!("{name}: out holds {cap} values, {} needed", data.len()));
    }
    std::ptr::copy_nonoverlapping(data.as_ptr(), out, data.len());
    Ok(())
}

unsafe fn put<T>(out: *mut *mut T, v: T, name: &str) -> R<()> {
    if out.is_null() {
        return input(format!("{name} is NULL"));
    }
    *out = Box::into_raw(Box::new(v));
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Library, errors
// ------------------------------------------------------------------------------------------------

/// The ABI version ([`RIGFIT_ABI_VERSION`]); check it against the header's at load time.
#[no_mangle]
pub extern "C" fn rigfit_abi_version() -> u32 {
    RIGFIT_ABI_VERSION
}

/// The library's version string (static, NUL-terminated), e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn rigfit_version() -> *const c_char {
    static V: OnceLock<CString> = OnceLock::new();
    V.get_or_init(|| cstring(env!("CARGO_PKG_VERSION"))).as_ptr()
}

/// The message of the calling thread's last failed call ("" after a successful call). Valid
/// until the next rigfit call on this thread; never NULL.
#[no_mangle]
pub extern "C" fn rigfit_last_error() -> *const c_char {
    static EMPTY: &CStr = c"";
    LAST_ERROR.try_with(|e| e.borrow().as_ptr()).unwrap_or(EMPTY.as_ptr())
}

/// A static name for a status code ("RIGFIT_OK", ...; "RIGFIT_UNKNOWN" for other values).
#[no_mangle]
pub extern "C" fn rigfit_status_name(status: c_int) -> *const c_char {
    let s: &'static CStr = match status {
        0 => c"RIGFIT_OK",
        1 => c"RIGFIT_ERR_INPUT",
        2 => c"RIGFIT_ERR_IO",
        3 => c"RIGFIT_ERR_CANCELLED",
        4 => c"RIGFIT_ERR_PANIC",
        5 => c"RIGFIT_ERR_MODEL",
        6 => c"RIGFIT_ERR_INTERNAL",
        7 => c"RIGFIT_ERR_UNSUPPORTED",
        _ => c"RIGFIT_UNKNOWN",
    };
    s.as_ptr()
}

/// Test hook: panics inside an entry point, to check that no panic crosses the boundary
/// (returns `RIGFIT_ERR_PANIC` with the message in [`rigfit_last_error`]).
#[no_mangle]
pub extern "C" fn rigfit_debug_panic() -> RigfitStatus {
    call(|| panic!("rigfit_debug_panic was called"))
}

// ------------------------------------------------------------------------------------------------
// Body (static facts)
// ------------------------------------------------------------------------------------------------

/// Number of joints of the rig: 24 (SMPL).
#[no_mangle]
pub extern "C" fn rigfit_num_joints() -> usize {
    NUM_JOINTS
}

/// Number of BODY_25 keypoints per person: 25.
#[no_mangle]
pub extern "C" fn rigfit_num_keypoints() -> usize {
    NUM_BODY25
}

/// Name of joint `index` (SMPL order: "pelvis", "left_hip", ...), static; NULL past 23.
#[no_mangle]
pub extern "C" fn rigfit_joint_name(index: usize) -> *const c_char {
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    let names = NAMES.get_or_init(|| JOINT_NAMES.iter().map(|n| cstring(n)).collect());
    names.get(index).map_or(std::ptr::null(), |n| n.as_ptr())
}

/// Parent of each joint `[24]` (-1 for the root; parents precede children).
#[no_mangle]
pub unsafe extern "C" fn rigfit_joint_parents(out: *mut i32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| write_out(&crate::body::SMPL_PARENTS, out, cap, len, "rigfit_joint_parents"))
}

// ------------------------------------------------------------------------------------------------
// Sessions
// ------------------------------------------------------------------------------------------------

fn session(fitter: Fitter) -> RigfitSession {
    let body = Arc::new(fitter.body.clone());
    RigfitSession { fitter, body }
}

/// A session with the embedded default body and prior on the CPU (no files).
#[no_mangle]
pub unsafe extern "C" fn rigfit_session_new_default(out: *mut *mut RigfitSession) -> RigfitStatus {
    call(|| {
        if out.is_null() {
            return input("out is NULL");
        }
        put(out, session(Fitter::default_cpu()?), "out")
    })
}

/// A session from a body model `.npz` (smplx/SMPL naming; NULL = the embedded default body) and
/// a prior `.safetensors` (NULL = the embedded default prior), on the CPU.
#[no_mangle]
pub unsafe extern "C" fn rigfit_session_new(body_npz_path: *const c_char, prior_path: *const c_char, out: *mut *mut RigfitSession) -> RigfitStatus {
    call(|| {
        if out.is_null() {
            return input("out is NULL");
        }
        let body = if body_npz_path.is_null() { BodyModel::default_body()? } else { BodyModel::load(path_in(body_npz_path, "body_npz_path")?)? };
        let dev = candle_core::Device::Cpu;
        let prior = if prior_path.is_null() { Prior::default_prior(&dev)? } else { Prior::load(&path_in(prior_path, "prior_path")?, &dev)? };
        put(out, session(Fitter::new(body, prior)?), "out")
    })
}

/// Frees a session (NULL is a no-op). Motions made by it stay valid.
#[no_mangle]
pub unsafe extern "C" fn rigfit_session_free(session: *mut RigfitSession) {
    if !session.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(session))));
    }
}

/// Number of mesh vertices of the session's body (0 on a NULL session).
#[no_mangle]
pub unsafe extern "C" fn rigfit_session_num_vertices(session: *const RigfitSession) -> usize {
    value(0, || Ok(handle(session, "session")?.body.num_verts()))
}

/// Number of triangles of the session's body (0 on a NULL session).
#[no_mangle]
pub unsafe extern "C" fn rigfit_session_num_faces(session: *const RigfitSession) -> usize {
    value(0, || Ok(handle(session, "session")?.body.faces().len()))
}

/// Number of shape coefficients of the session's body (0 on a NULL session).
#[no_mangle]
pub unsafe extern "C" fn rigfit_session_num_betas(session: *const RigfitSession) -> usize {
    value(0, || Ok(handle(session, "session")?.body.num_betas()))
}

/// Triangles `[num_faces * 3]` (vertex indices).
#[no_mangle]
pub unsafe extern "C" fn rigfit_session_faces(session: *const RigfitSession, out: *mut u32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| {
        let s = handle(session, "session")?;
        let f: Vec<u32> = s.body.faces().iter().flatten().copied().collect();
        write_out(&f, out, cap, len, "rigfit_session_faces")
    })
}

/// Skinning weights `[num_vertices * 24]` (row per vertex, summing to 1).
#[no_mangle]
pub unsafe extern "C" fn rigfit_session_skin_weights(session: *const RigfitSession, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| {
        let s = handle(session, "session")?;
        write_out(&s.body.arrays().weights, out, cap, len, "rigfit_session_skin_weights")
    })
}

fn padded_betas(body: &BodyModel, betas: &[f32]) -> R<Vec<f32>> {
    if betas.len() > body.num_betas() {
        return input(format!("betas: {} shape coefficients given, the body model has {}", betas.len(), body.num_betas()));
    }
    if let Some(i) = betas.iter().position(|b| !b.is_finite()) {
        return input(format!("betas[{i}] is not finite"));
    }
    let mut b = vec![0.0; body.num_betas()];
    b[..betas.len()].copy_from_slice(betas);
    Ok(b)
}

/// Shaped rest mesh `[V * 3]` and rest joints `[24 * 3]` of `betas`.
fn rest(body: &BodyModel, betas: &[f32]) -> R<BodyOutput> {
    let b = padded_betas(body, betas)?;
    let eye: Vec<f32> = (0..NUM_JOINTS).flat_map(|_| [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]).collect();
    let mut out = BodyOutput::default();
    body.forward(&b, &eye, &[0.0; 3], &mut out)?;
    Ok(out)
}

/// Rest-pose vertices of the body shaped by `betas` `[num_betas]` (NULL / 0 = mean shape):
/// `[num_vertices * 3]`, Y-up, metres.
#[no_mangle]
pub unsafe extern "C" fn rigfit_session_rest_vertices(session: *const RigfitSession, betas: *const f32, num_betas: usize, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| {
        let s = handle(session, "session")?;
        let o = rest(&s.body, slice_in(betas, num_betas, "betas")?)?;
        write_out(&o.vertices, out, cap, len, "rigfit_session_rest_vertices")
    })
}

/// Rest-pose joints of the body shaped by `betas` (NULL / 0 = mean shape): `[24 * 3]`.
#[no_mangle]
pub unsafe extern "C" fn rigfit_session_rest_joints(session: *const RigfitSession, betas: *const f32, num_betas: usize, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| {
        let s = handle(session, "session")?;
        let o = rest(&s.body, slice_in(betas, num_betas, "betas")?)?;
        write_out(&o.joints, out, cap, len, "rigfit_session_rest_joints")
    })
}

// ------------------------------------------------------------------------------------------------
// Cameras
// ------------------------------------------------------------------------------------------------

/// An uncalibrated view with square pixels of focal length `focal` pixels (<= 0: ScoreHMR's
/// 5000) and the principal point at the image centre.
#[no_mangle]
pub unsafe extern "C" fn rigfit_view_from_focal(focal: f32, width: u32, height: u32, out: *mut RigfitView) -> RigfitStatus {
    call(|| {
        let out = handle_mut(out, "out")?;
        let f = if focal > 0.0 { focal } else { SCOREHMR_FOCAL };
        let k = Pinhole::from_focal(f, width as f32, height as f32)?;
        *out = view_of(None, k, width, height, None);
        Ok(())
    })
}

/// An uncalibrated view from a film camera (horizontal sensor fit, see [`RigfitFilm`]).
#[no_mangle]
pub unsafe extern "C" fn rigfit_view_from_film(film: *const RigfitFilm, width: u32, height: u32, out: *mut RigfitView) -> RigfitStatus {
    call(|| {
        let film = handle(film, "film")?;
        let out = handle_mut(out, "out")?;
        if !(film.focal_mm > 0.0 && film.sensor_width_mm > 0.0) || width == 0 || height == 0 {
            return input(format!("film: focal {} mm, sensor width {} mm, image {width}x{height}: all must be positive", film.focal_mm, film.sensor_width_mm));
        }
        let (w, h) = (width as f32, height as f32);
        let f = film.focal_mm / film.sensor_width_mm * w;
        let k = Pinhole { fx: f, fy: f, cx: 0.5 * w - film.shift_x * w, cy: 0.5 * h + film.shift_y * w };
        *out = view_of(None, k, width, height, None);
        Ok(())
    })
}

/// The film camera of a view for a sensor `sensor_width_mm` wide (<= 0: 36 mm).
#[no_mangle]
pub unsafe extern "C" fn rigfit_view_film(view: *const RigfitView, sensor_width_mm: f32, out: *mut RigfitFilm) -> RigfitStatus {
    call(|| {
        let v = handle(view, "view")?;
        let out = handle_mut(out, "out")?;
        check_view(v, "view")?;
        let sw = if sensor_width_mm > 0.0 { sensor_width_mm } else { 36.0 };
        let (w, h) = (v.width as f32, v.height as f32);
        *out = RigfitFilm {
            focal_mm: v.fx / w * sw,
            sensor_width_mm: sw,
            sensor_height_mm: sw * h / w,
            shift_x: (0.5 * w - v.cx) / w,
            shift_y: (v.cy - 0.5 * h) / w,
        };
        Ok(())
    })
}

fn view_of(name: Option<&CString>, k: Pinhole, width: u32, height: u32, pose: Option<([f32; 9], [f32; 3])>) -> RigfitView {
    let (r, p) = pose.unwrap_or(([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], [0.0; 3]));
    RigfitView {
        name: name.map_or(std::ptr::null(), |n| n.as_ptr()),
        fx: k.fx,
        fy: k.fy,
        cx: k.cx,
        cy: k.cy,
        width,
        height,
        has_pose: pose.is_some() as i32,
        rotation: r,
        position: p,
    }
}

fn check_view(v: &RigfitView, what: &str) -> R<()> {
    let ok = v.fx > 0.0 && v.fy > 0.0 && v.fx.is_finite() && v.fy.is_finite() && v.cx.is_finite() && v.cy.is_finite();
    if !ok || v.width == 0 || v.height == 0 {
        return input(format!("{what}: intrinsics fx {} fy {} cx {} cy {} and size {}x{}: focal lengths and size must be positive", v.fx, v.fy, v.cx, v.cy, v.width, v.height));
    }
    if v.has_pose != 0 && !(v.rotation.iter().chain(&v.position).all(|x| x.is_finite())) {
        return input(format!("{what}: pose has non-finite values"));
    }
    Ok(())
}

unsafe fn fit_views(views: *const RigfitView, n: usize) -> R<Vec<FitView>> {
    let vs = slice_in(views, n, "views")?;
    let mut out = Vec::with_capacity(n);
    for (i, v) in vs.iter().enumerate() {
        let what = format!("views[{i}]");
        check_view(v, &what)?;
        let name = if v.name.is_null() {
            if n == 1 { "camera".to_string() } else { format!("view_{i}") }
        } else {
            str_in(v.name, &format!("{what}.name"))?.to_string()
        };
        out.push(FitView {
            name,
            camera: Pinhole { fx: v.fx, fy: v.fy, cx: v.cx, cy: v.cy },
            width: v.width,
            height: v.height,
            pose: (v.has_pose != 0).then_some((v.rotation, v.position)),
        });
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------------
// Fitting
// ------------------------------------------------------------------------------------------------

/// Fills `out` with the default fit settings (rigfit::fit::FitOptions::default()).
#[no_mangle]
pub unsafe extern "C" fn rigfit_fit_options_default(out: *mut RigfitFitOptions) -> RigfitStatus {
    call(|| {
        let out = handle_mut(out, "out")?;
        let d = FitOptions::default();
        *out = RigfitFitOptions {
            hypotheses: d.hypotheses as u32,
            sample_step: d.sample_step,
            refine: d.refine as i32,
            temporal: d.temporal as i32,
            smooth_weight: d.smooth_weight as f32,
            seed: d.seed,
            chunk: d.chunk as u32,
            betas: std::ptr::null(),
            num_betas: 0,
            refine_tau: 0,
            refine_step: 0,
            refine_iters: 0,
        };
        Ok(())
    })
}

unsafe fn fit_options(p: *const RigfitFitOptions, fi: &FitInput) -> R<FitOptions> {
    let Some(o) = p.as_ref() else { return Ok(FitOptions::default()) };
    if o.hypotheses == 0 || o.chunk == 0 {
        return input(format!("options: hypotheses {} and chunk {} must be positive", o.hypotheses, o.chunk));
    }
    if o.sample_step == 0 || o.sample_step >= 1000 {
        return input(format!("options.sample_step {}: must lie in 1..999", o.sample_step));
    }
    if !(o.smooth_weight >= 0.0 && o.smooth_weight.is_finite()) {
        return input(format!("options.smooth_weight {}: must be >= 0", o.smooth_weight));
    }
    let refine_config = if o.refine_tau == 0 && o.refine_step == 0 && o.refine_iters == 0 {
        None
    } else {
        let mut c = crate::fit::mode_refine_config(fi);
        if o.refine_tau != 0 {
            c.tau = o.refine_tau;
        }
        if o.refine_step != 0 {
            c.step = o.refine_step;
        }
        if o.refine_iters != 0 {
            c.iters = o.refine_iters as usize;
        }
        Some(c)
    };
    Ok(FitOptions {
        hypotheses: o.hypotheses as usize,
        sample_step: o.sample_step,
        refine: o.refine != 0,
        refine_config,
        temporal: o.temporal != 0,
        smooth_weight: o.smooth_weight as f64,
        betas: slice_in(o.betas, o.num_betas, "options.betas")?.to_vec(),
        seed: o.seed,
        chunk: o.chunk as usize,
    })
}

unsafe fn run_fit(
    session: *const RigfitSession,
    fi: &FitInput,
    options: *const RigfitFitOptions,
    progress: RigfitProgressFn,
    user: *mut c_void,
    out: *mut *mut RigfitMotion,
) -> R<()> {
    let s = handle(session, "session")?;
    if out.is_null() {
        return input("out is NULL");
    }
    let opts = fit_options(options, fi)?;
    let mut cb = |p: &Progress| -> bool {
        match progress {
            Some(f) => {
                let stage = cstring(p.stage);
                f(user, stage.as_ptr(), p.done, p.total) != 0
            }
            None => true,
        }
    };
    let res = s.fitter.fit(fi, &opts, Some(&mut cb))?;
    put(out, RigfitMotion::new(res.motion, s.body.clone(), res.reprojection_px), "out")
}

/// Fits one person to keypoint arrays.
///
/// - `keypoints` `[frames * num_views * 25 * 3]`: BODY_25 `(x px, y px, confidence)` per frame
///   and view (frame-major), confidence 0 = missing;
/// - `seen` `[frames * num_views]`: 1 where the view sees the person in that frame (NULL = all);
/// - `views` `[num_views]`: one view = single image / video; several with poses = calibrated
///   views; several without = uncalibrated views (view 0 defines the world);
/// - `fps`: frame rate of the footage (any positive value for one frame);
/// - `options`: NULL = defaults; `progress` (may be NULL) can cancel; `user` is passed to it.
///
/// On success `*out` receives a motion to free with [`rigfit_motion_free`].
#[no_mangle]
pub unsafe extern "C" fn rigfit_fit(
    session: *const RigfitSession,
    keypoints: *const f32,
    seen: *const u8,
    frames: usize,
    num_views: usize,
    views: *const RigfitView,
    fps: f32,
    options: *const RigfitFitOptions,
    progress: RigfitProgressFn,
    user: *mut c_void,
    out: *mut *mut RigfitMotion,
) -> RigfitStatus {
    call(|| {
        handle(session, "session")?;
        if frames == 0 || num_views == 0 {
            return input(format!("frames {frames} and num_views {num_views}: need at least one of each"));
        }
        let n = frames.checked_mul(num_views).and_then(|x| x.checked_mul(NUM_BODY25 * 3));
        let Some(n) = n else { return input("frames * num_views * 75 overflows") };
        let kp = slice_in(keypoints, n, "keypoints")?;
        if keypoints.is_null() {
            return input("keypoints is NULL");
        }
        let seen = if seen.is_null() { None } else { Some(slice_in(seen, frames * num_views, "seen")?) };
        let fviews = fit_views(views, num_views)?;
        if views.is_null() {
            return input("views is NULL");
        }
        let input_kp: Vec<Vec<Option<Vec<f32>>>> = (0..frames)
            .map(|f| {
                (0..num_views)
                    .map(|v| {
                        let i = f * num_views + v;
                        if seen.is_some_and(|s| s[i] == 0) {
                            None
                        } else {
                            Some(kp[i * 75..(i + 1) * 75].to_vec())
                        }
                    })
                    .collect()
            })
            .collect();
        let fit_input = FitInput { keypoints: input_kp, views: fviews, fps };
        run_fit(session, &fit_input, options, progress, user, out)
    })
}

/// One person's keypoints by frame number.
type Track = Vec<(usize, Option<crate::io::keypoints::Body25>)>;

/// Reads a keypoint file (or folder / pattern of per-frame files) and selects one person.
fn read_track(path: &Path, track_id: i64, size: (u32, u32)) -> R<(Track, Option<f32>)> {
    let seq = crate::io::keypoints::read(path, None, Some(size))?;
    let track = seq.track((track_id >= 0).then_some(track_id))?;
    let frames = seq.frames.iter().map(|f| f.frame).zip(track).collect();
    Ok((frames, seq.fps))
}

/// Number of frames in a keypoint file, folder or pattern (any format rigfit reads; see
/// docs/keypoints.md). `width`/`height` are needed by files without an image size (MediaPipe).
#[no_mangle]
pub unsafe extern "C" fn rigfit_keypoints_num_frames(path: *const c_char, width: u32, height: u32, out: *mut usize) -> RigfitStatus {
    call(|| {
        let p = path_in(path, "path")?;
        let out = handle_mut(out, "out")?;
        let size = (width > 0 && height > 0).then_some((width, height));
        *out = crate::io::keypoints::read(&p, None, size)?.frames.len();
        Ok(())
    })
}

/// Fits one person to keypoint files seen by several views: `paths` `[num_views]` (each a file,
/// a folder of per-frame files, or a pattern), `views` `[num_views]` as in [`rigfit_fit`].
/// Frames are aligned by frame number across the files; `frame_start` / `frame_count` select a
/// range of them (0 / 0 = all, counted from the first frame of all files). `track_id`: the
/// person's track id, or -1 for the most confident person of each frame. `fps` <= 0 takes the
/// file's frame rate, or 30.
#[no_mangle]
pub unsafe extern "C" fn rigfit_fit_files_views(
    session: *const RigfitSession,
    paths: *const *const c_char,
    views: *const RigfitView,
    num_views: usize,
    track_id: i64,
    fps: f32,
    frame_start: usize,
    frame_count: usize,
    options: *const RigfitFitOptions,
    progress: RigfitProgressFn,
    user: *mut c_void,
    out: *mut *mut RigfitMotion,
) -> RigfitStatus {
    call(|| {
        handle(session, "session")?;
        if num_views == 0 {
            return input("num_views is 0");
        }
        let ps = slice_in(paths, num_views, "paths")?;
        let fviews = fit_views(views, num_views)?;
        let mut tracks = Vec::with_capacity(num_views);
        let mut file_fps = None;
        for (i, &p) in ps.iter().enumerate() {
            let path = path_in(p, &format!("paths[{i}]"))?;
            let (t, f) = read_track(&path, track_id, (fviews[i].width, fviews[i].height))?;
            if t.is_empty() {
                return input(format!("{}: no frames", path.display()));
            }
            file_fps = file_fps.or(f);
            tracks.push(t);
        }
        let first = tracks.iter().map(|t| t[0].0).min().expect("views");
        let last = tracks.iter().map(|t| t[t.len() - 1].0).max().expect("views");
        let total = last - first + 1;
        if frame_start >= total {
            return input(format!("frame_start {frame_start}: the files have {total} frames"));
        }
        let count = if frame_count == 0 { total - frame_start } else { frame_count.min(total - frame_start) };
        let mut kp = vec![vec![None; num_views]; count];
        for (v, t) in tracks.iter().enumerate() {
            for (frame, k) in t {
                let i = frame - first;
                if i >= frame_start && i < frame_start + count {
                    kp[i - frame_start][v] = k.map(|k| k.iter().flatten().copied().collect::<Vec<f32>>());
                }
            }
        }
        let fps = if fps > 0.0 { fps } else { file_fps.unwrap_or(30.0) };
        let fit_input = FitInput { keypoints: kp, views: fviews, fps };
        run_fit(session, &fit_input, options, progress, user, out)
    })
}

/// Fits one person to one keypoint file, folder or pattern seen by one camera of focal length
/// `focal` pixels (<= 0: ScoreHMR's 5000) with the principal point at the centre of a
/// `width` x `height` image. See [`rigfit_fit_files_views`] for the other arguments.
#[no_mangle]
pub unsafe extern "C" fn rigfit_fit_files(
    session: *const RigfitSession,
    path: *const c_char,
    track_id: i64,
    width: u32,
    height: u32,
    focal: f32,
    fps: f32,
    frame_start: usize,
    frame_count: usize,
    options: *const RigfitFitOptions,
    progress: RigfitProgressFn,
    user: *mut c_void,
    out: *mut *mut RigfitMotion,
) -> RigfitStatus {
    let mut view = std::mem::MaybeUninit::<RigfitView>::zeroed().assume_init();
    let st = rigfit_view_from_focal(focal, width, height, &mut view);
    if st != RIGFIT_OK {
        return st;
    }
    let paths = [path];
    rigfit_fit_files_views(session, paths.as_ptr(), &view, 1, track_id, fps, frame_start, frame_count, options, progress, user, out)
}

// ------------------------------------------------------------------------------------------------
// Motions
// ------------------------------------------------------------------------------------------------

/// A motion from arrays (for tests, retargeting or re-export): `rotations` `[frames * 24 * 9]`
/// local rotation matrices, `translations` `[frames * 3]`, `betas` `[num_betas]` (may be NULL
/// with 0), no cameras.
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_new(
    session: *const RigfitSession,
    frames: usize,
    fps: f32,
    betas: *const f32,
    num_betas: usize,
    rotations: *const f32,
    translations: *const f32,
    out: *mut *mut RigfitMotion,
) -> RigfitStatus {
    call(|| {
        let s = handle(session, "session")?;
        if frames == 0 {
            return input("frames is 0");
        }
        if out.is_null() {
            return input("out is NULL");
        }
        let rot = slice_in(rotations, frames * NUM_JOINTS * 9, "rotations")?;
        let tr = slice_in(translations, frames * 3, "translations")?;
        let mut m = Motion::rest(frames, 0, fps);
        m.betas = slice_in(betas, num_betas, "betas")?.to_vec();
        for (d, r) in m.rotations.iter_mut().zip(rot.chunks_exact(9)) {
            d.copy_from_slice(r);
        }
        for (d, t) in m.translations.iter_mut().zip(tr.chunks_exact(3)) {
            d.copy_from_slice(t);
        }
        m.validate(&s.body)?;
        put(out, RigfitMotion::new(m, s.body.clone(), Vec::new()), "out")
    })
}

/// Adds a static camera to a motion (`view.has_pose` 0: at the origin looking down -Z).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_add_camera(motion: *mut RigfitMotion, view: *const RigfitView) -> RigfitStatus {
    call(|| {
        let m = handle_mut(motion, "motion")?;
        let fv = fit_views(view, 1)?.remove(0);
        let name = if handle(view, "view")?.name.is_null() { format!("camera_{}", m.motion.cameras.len()) } else { fv.name.clone() };
        let (r, p) = fv.pose.unwrap_or(([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], [0.0; 3]));
        m.motion.cameras.push(MotionCamera::fixed(&name, fv.camera, fv.width, fv.height, r, p));
        if let Err(e) = m.motion.validate(&m.body) {
            m.motion.cameras.pop();
            return Err(e.into());
        }
        m.refresh_names();
        Ok(())
    })
}

/// Reads a motion written by [`rigfit_motion_save_json`] (checked against the session's body).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_load_json(session: *const RigfitSession, path: *const c_char, out: *mut *mut RigfitMotion) -> RigfitStatus {
    call(|| {
        let s = handle(session, "session")?;
        let p = path_in(path, "path")?;
        if out.is_null() {
            return input("out is NULL");
        }
        let m = Motion::load_json(&p)?;
        m.validate(&s.body).map_err(|e| Fail(RIGFIT_ERR_INPUT, format!("{}: {e}", p.display())))?;
        put(out, RigfitMotion::new(m, s.body.clone(), Vec::new()), "out")
    })
}

/// Frees a motion (NULL is a no-op).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_free(motion: *mut RigfitMotion) {
    if !motion.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(motion))));
    }
}

/// Number of frames (0 on a NULL motion).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_num_frames(motion: *const RigfitMotion) -> usize {
    value(0, || Ok(handle(motion, "motion")?.motion.num_frames()))
}

/// Frame rate, frames per second (NaN on a NULL motion).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_fps(motion: *const RigfitMotion) -> f32 {
    value(f32::NAN, || Ok(handle(motion, "motion")?.motion.fps))
}

/// Number of shape coefficients the motion holds (0 on a NULL motion).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_num_betas(motion: *const RigfitMotion) -> usize {
    value(0, || Ok(handle(motion, "motion")?.motion.betas.len()))
}

/// Shape coefficients `[num_betas]`.
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_betas(motion: *const RigfitMotion, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| write_out(&handle(motion, "motion")?.motion.betas, out, cap, len, "rigfit_motion_betas"))
}

/// Local joint rotations `[frames * 24 * 9]` (row-major 3x3; joint 0 = global orientation in
/// the Y-up world).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_rotations(motion: *const RigfitMotion, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| {
        let m = handle(motion, "motion")?;
        let r: Vec<f32> = m.motion.rotations.iter().flatten().copied().collect();
        write_out(&r, out, cap, len, "rigfit_motion_rotations")
    })
}

/// Local joint rotations as unit quaternions `[frames * 24 * 4]`, `(w, x, y, z)`: a DCC bone's
/// pose rotation when the bone's rest orientation is the identity in the Y-up armature space.
/// Signs are continuous over time (`w >= 0` at frame 0, then each joint's quaternion is the one
/// of `q`, `-q` nearer to the previous frame's), so keys interpolate the short way.
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_quaternions(motion: *const RigfitMotion, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| {
        let m = handle(motion, "motion")?;
        let mut q: Vec<[f32; 4]> = m.motion.rotations.iter().map(matrix_to_quat).collect();
        for i in NUM_JOINTS..q.len() {
            q[i] = quat_continuous(&q[i], &q[i - NUM_JOINTS]);
        }
        let q: Vec<f32> = q.into_iter().flatten().collect();
        write_out(&q, out, cap, len, "rigfit_motion_quaternions")
    })
}

/// Local joint rotations as Euler angles `[frames * 24 * 3]`, degrees, `(x, y, z)` with
/// `R = Rz(z) Ry(y) Rx(x)` (Maya rotateOrder "xyz", Blender "XYZ"): what a DCC joint whose rest
/// orientation is the identity keys on its rotate channels. Continuous over time: each angle is
/// moved by a multiple of 360 to the nearest of the previous frame's.
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_euler_xyz(motion: *const RigfitMotion, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| {
        let m = handle(motion, "motion")?;
        let mut e: Vec<f32> = Vec::with_capacity(m.motion.rotations.len() * 3);
        for (i, r) in m.motion.rotations.iter().enumerate() {
            let sy = (-r[6]).clamp(-1.0, 1.0);
            let (x, y, z) = if sy.abs() < 0.999_999 {
                (r[7].atan2(r[8]), sy.asin(), r[3].atan2(r[0]))
            } else {
                // Gimbal lock (y = +-90 degrees): x and z turn about one axis; put it all in z.
                (0.0, sy.asin(), (-r[1]).atan2(r[4]))
            };
            let mut a = [x.to_degrees(), y.to_degrees(), z.to_degrees()];
            if i >= NUM_JOINTS {
                let p = &e[(i - NUM_JOINTS) * 3..(i - NUM_JOINTS) * 3 + 3];
                for k in 0..3 {
                    a[k] += 360.0 * ((p[k] - a[k]) / 360.0).round();
                }
            }
            e.extend_from_slice(&a);
        }
        write_out(&e, out, cap, len, "rigfit_motion_euler_xyz")
    })
}

/// SMPL root translations `[frames * 3]` (metres, Y-up world): the pelvis sits at
/// `rest_joint[0] + translation` (the root bone's pose location for an identity rest).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_translations(motion: *const RigfitMotion, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| {
        let m = handle(motion, "motion")?;
        let t: Vec<f32> = m.motion.translations.iter().flatten().copied().collect();
        write_out(&t, out, cap, len, "rigfit_motion_translations")
    })
}

/// World joint positions `[frames * 24 * 3]` (Y-up, metres).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_joints(motion: *const RigfitMotion, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| {
        let m = handle(motion, "motion")?;
        write_out(&m.motion.joints(&m.body)?, out, cap, len, "rigfit_motion_joints")
    })
}

/// Posed mesh vertices of frame `frame` `[num_vertices * 3]` (Y-up world).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_vertices(motion: *const RigfitMotion, frame: usize, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| {
        let m = handle(motion, "motion")?;
        if frame >= m.motion.num_frames() {
            return input(format!("frame {frame}: the motion has {} frames", m.motion.num_frames()));
        }
        let mut o = BodyOutput::default();
        m.motion.forward(&m.body, frame..frame + 1, true, &mut o)?;
        write_out(&o.vertices, out, cap, len, "rigfit_motion_vertices")
    })
}

/// Rest-pose joints of the motion's shape `[24 * 3]` (the armature's bone heads).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_rest_joints(motion: *const RigfitMotion, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| {
        let m = handle(motion, "motion")?;
        write_out(&rest(&m.body, &m.motion.betas)?.joints, out, cap, len, "rigfit_motion_rest_joints")
    })
}

/// Rest-pose mesh of the motion's shape `[num_vertices * 3]` (the skinned mesh's rest shape).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_rest_vertices(motion: *const RigfitMotion, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| {
        let m = handle(motion, "motion")?;
        write_out(&rest(&m.body, &m.motion.betas)?.vertices, out, cap, len, "rigfit_motion_rest_vertices")
    })
}

/// BODY_25 keypoints of the motion seen by camera `camera`, `[frames * 25 * 3]`:
/// `(x px, y px, 1)`, or `(0, 0, 0)` for a point behind the camera. Used to draw overlays and to
/// synthesise test inputs.
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_project_keypoints(motion: *const RigfitMotion, camera: usize, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| {
        let m = handle(motion, "motion")?;
        let Some(cam) = m.motion.cameras.get(camera) else {
            return input(format!("camera {camera}: the motion has {} cameras", m.motion.cameras.len()));
        };
        let f = m.motion.num_frames();
        let mut o = BodyOutput::default();
        m.motion.forward(&m.body, 0..f, false, &mut o)?;
        let mut kp = vec![0.0f32; f * NUM_BODY25 * 3];
        for i in 0..f {
            for k in 0..NUM_BODY25 {
                let p = &o.keypoints[(i * NUM_BODY25 + k) * 3..(i * NUM_BODY25 + k) * 3 + 3];
                if let Some(uv) = cam.project(i, [p[0], p[1], p[2]]) {
                    kp[(i * NUM_BODY25 + k) * 3..(i * NUM_BODY25 + k) * 3 + 3].copy_from_slice(&[uv[0], uv[1], 1.0]);
                }
            }
        }
        write_out(&kp, out, cap, len, "rigfit_motion_project_keypoints")
    })
}

/// Mean reprojection error of the fit over the frames and views that see the person, pixels
/// (NaN for a motion that is not from a fit, or a NULL motion).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_mean_reprojection_px(motion: *const RigfitMotion) -> f32 {
    value(f32::NAN, || Ok(crate::fit::mean_finite(&handle(motion, "motion")?.reprojection)))
}

/// Reprojection errors of the fit `[frames * num_views]`, pixels (NaN where the view does not
/// see the person; empty for a motion that is not from a fit).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_reprojection_px(motion: *const RigfitMotion, out: *mut f32, cap: usize, len: *mut usize) -> RigfitStatus {
    call(|| write_out(&handle(motion, "motion")?.reprojection, out, cap, len, "rigfit_motion_reprojection_px"))
}

/// Number of cameras of the motion (0 on a NULL motion).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_num_cameras(motion: *const RigfitMotion) -> usize {
    value(0, || Ok(handle(motion, "motion")?.motion.cameras.len()))
}

/// Camera `camera` at frame `frame`: intrinsics, image size, camera-to-world pose (`has_pose`
/// 1). `out->name` points into the motion (valid until the motion is freed or changed).
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_camera(motion: *const RigfitMotion, camera: usize, frame: usize, out: *mut RigfitView) -> RigfitStatus {
    call(|| {
        let m = handle(motion, "motion")?;
        let out = handle_mut(out, "out")?;
        let Some(c) = m.motion.cameras.get(camera) else {
            return input(format!("camera {camera}: the motion has {} cameras", m.motion.cameras.len()));
        };
        if frame >= m.motion.num_frames() {
            return input(format!("frame {frame}: the motion has {} frames", m.motion.num_frames()));
        }
        *out = view_of(Some(&m.camera_names[camera]), c.intrinsics.into(), c.width, c.height, Some(c.pose(frame)));
        Ok(())
    })
}

/// Whether camera `camera` has one pose for the whole motion (1), or one per frame (0); 0 also
/// on error.
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_camera_is_static(motion: *const RigfitMotion, camera: usize) -> i32 {
    value(0, || {
        let m = handle(motion, "motion")?;
        match m.motion.cameras.get(camera) {
            Some(c) => Ok(c.is_static() as i32),
            None => input(format!("camera {camera}: the motion has {} cameras", m.motion.cameras.len())),
        }
    })
}

/// Writes the motion as JSON (the fitted parameters per frame), atomically.
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_save_json(motion: *const RigfitMotion, path: *const c_char) -> RigfitStatus {
    call(|| {
        let m = handle(motion, "motion")?;
        m.motion.save_json(&path_in(path, "path")?)?;
        Ok(())
    })
}

/// The exporters (rigfit::export).
fn export_glb(path: &Path, model: &BodyModel, motion: &Motion) -> R<()> {
    Ok(crate::export::gltf::write_glb(path, model, motion)?)
}

fn export_usda(path: &Path, model: &BodyModel, motion: &Motion) -> R<()> {
    Ok(crate::export::usd::write_usda(path, model, motion)?)
}

/// Writes the motion as a skinned, animated glTF 2.0 binary (.glb), atomically.
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_write_glb(motion: *const RigfitMotion, path: *const c_char) -> RigfitStatus {
    call(|| {
        let m = handle(motion, "motion")?;
        export_glb(&path_in(path, "path")?, &m.body, &m.motion)
    })
}

/// Writes the motion as a UsdSkel text layer (.usda), atomically.
#[no_mangle]
pub unsafe extern "C" fn rigfit_motion_write_usda(motion: *const RigfitMotion, path: *const c_char) -> RigfitStatus {
    call(|| {
        let m = handle(motion, "motion")?;
        export_usda(&path_in(path, "path")?, &m.body, &m.motion)
    })
}

/// Borrow the Rust motion behind a handle (for Rust code mixing both APIs, and tests).
///
/// # Safety
/// `motion` must be NULL or a live handle from this library.
pub unsafe fn motion_ref<'a>(motion: *const RigfitMotion) -> Option<&'a Motion> {
    motion.as_ref().map(|m| &m.motion)
}
