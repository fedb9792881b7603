"""ctypes bindings of rigfit's C ABI (cpp/rigfit.h), shared by the Blender add-on and the Maya
plug-in (plugins/maya/scripts/rigfit_native.py is a byte-identical copy; a test checks it).

No bpy / maya imports and no math here: every number comes from the library. Buffers are
``array.array('f')`` (C-contiguous float32), which Blender's ``foreach_set`` and numpy accept
without copies.
"""

import array
import ctypes
import os
import sys

ABI_VERSION = 1

RIGFIT_OK = 0
RIGFIT_ERR_INPUT = 1
RIGFIT_ERR_IO = 2
RIGFIT_ERR_CANCELLED = 3
RIGFIT_ERR_PANIC = 4
RIGFIT_ERR_MODEL = 5
RIGFIT_ERR_INTERNAL = 6
RIGFIT_ERR_UNSUPPORTED = 7

JOINTS = 24


class RigfitError(RuntimeError):
    """A failed rigfit call: ``status`` is the RIGFIT_* code, ``message`` the library's text."""

    def __init__(self, status, message):
        super().__init__("%s (status %d)" % (message, status))
        self.status = status
        self.message = message


class Cancelled(RigfitError):
    """The progress callback cancelled the fit."""


def library_filename():
    if sys.platform.startswith("win"):
        return "rigfit.dll"
    if sys.platform == "darwin":
        return "librigfit.dylib"
    return "librigfit.so"


def default_library_path(package_dir):
    """``$RIGFIT_LIB`` if set, else ``<package_dir>/lib/<library file>``."""
    env = os.environ.get("RIGFIT_LIB")
    if env:
        return env
    return os.path.join(package_dir, "lib", library_filename())


class RigfitView(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("fx", ctypes.c_float),
        ("fy", ctypes.c_float),
        ("cx", ctypes.c_float),
        ("cy", ctypes.c_float),
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("has_pose", ctypes.c_int32),
        ("rotation", ctypes.c_float * 9),
        ("position", ctypes.c_float * 3),
    ]


class RigfitFilm(ctypes.Structure):
    _fields_ = [
        ("focal_mm", ctypes.c_float),
        ("sensor_width_mm", ctypes.c_float),
        ("sensor_height_mm", ctypes.c_float),
        ("shift_x", ctypes.c_float),
        ("shift_y", ctypes.c_float),
    ]


class RigfitFitOptions(ctypes.Structure):
    _fields_ = [
        ("hypotheses", ctypes.c_uint32),
        ("sample_step", ctypes.c_uint32),
        ("refine", ctypes.c_int32),
        ("temporal", ctypes.c_int32),
        ("smooth_weight", ctypes.c_float),
        ("seed", ctypes.c_uint64),
        ("chunk", ctypes.c_uint32),
        ("betas", ctypes.POINTER(ctypes.c_float)),
        ("num_betas", ctypes.c_size_t),
        ("refine_tau", ctypes.c_uint32),
        ("refine_step", ctypes.c_uint32),
        ("refine_iters", ctypes.c_uint32),
    ]


PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t)

_P = ctypes.c_void_p
_S = ctypes.c_size_t
_F = ctypes.POINTER(ctypes.c_float)
_SP = ctypes.POINTER(ctypes.c_size_t)
_C = ctypes.c_char_p
_I = ctypes.c_int
_VP = ctypes.POINTER(RigfitView)
_OP = ctypes.POINTER(RigfitFitOptions)
_PP = ctypes.POINTER(ctypes.c_void_p)

# name: (restype, argtypes)
_SIGNATURES = {
    "rigfit_abi_version": (ctypes.c_uint32, []),
    "rigfit_version": (_C, []),
    "rigfit_last_error": (_C, []),
    "rigfit_num_joints": (_S, []),
    "rigfit_joint_name": (_C, [_S]),
    "rigfit_joint_parents": (_I, [ctypes.POINTER(ctypes.c_int32), _S, _SP]),
    "rigfit_session_new_default": (_I, [_PP]),
    "rigfit_session_new": (_I, [_C, _C, _PP]),
    "rigfit_session_free": (None, [_P]),
    "rigfit_session_num_vertices": (_S, [_P]),
    "rigfit_session_num_faces": (_S, [_P]),
    "rigfit_session_num_betas": (_S, [_P]),
    "rigfit_session_faces": (_I, [_P, ctypes.POINTER(ctypes.c_uint32), _S, _SP]),
    "rigfit_session_skin_weights": (_I, [_P, _F, _S, _SP]),
    "rigfit_session_rest_vertices": (_I, [_P, _F, _S, _F, _S, _SP]),
    "rigfit_session_rest_joints": (_I, [_P, _F, _S, _F, _S, _SP]),
    "rigfit_view_from_focal": (_I, [ctypes.c_float, ctypes.c_uint32, ctypes.c_uint32, _VP]),
    "rigfit_view_from_film": (_I, [ctypes.POINTER(RigfitFilm), ctypes.c_uint32, ctypes.c_uint32, _VP]),
    "rigfit_view_film": (_I, [_VP, ctypes.c_float, ctypes.POINTER(RigfitFilm)]),
    "rigfit_fit_options_default": (_I, [_OP]),
    "rigfit_fit": (_I, [_P, _F, ctypes.POINTER(ctypes.c_uint8), _S, _S, _VP, ctypes.c_float, _OP, PROGRESS_FN, _P, _PP]),
    "rigfit_keypoints_num_frames": (_I, [_C, ctypes.c_uint32, ctypes.c_uint32, _SP]),
    "rigfit_fit_files": (_I, [_P, _C, ctypes.c_int64, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_float, ctypes.c_float, _S, _S, _OP, PROGRESS_FN, _P, _PP]),
    "rigfit_fit_files_views": (_I, [_P, ctypes.POINTER(_C), _VP, _S, ctypes.c_int64, ctypes.c_float, _S, _S, _OP, PROGRESS_FN, _P, _PP]),
    "rigfit_motion_new": (_I, [_P, _S, ctypes.c_float, _F, _S, _F, _F, _PP]),
    "rigfit_motion_add_camera": (_I, [_P, _VP]),
    "rigfit_motion_load_json": (_I, [_P, _C, _PP]),
    "rigfit_motion_free": (None, [_P]),
    "rigfit_motion_num_frames": (_S, [_P]),
    "rigfit_motion_fps": (ctypes.c_float, [_P]),
    "rigfit_motion_num_betas": (_S, [_P]),
    "rigfit_motion_betas": (_I, [_P, _F, _S, _SP]),
    "rigfit_motion_rotations": (_I, [_P, _F, _S, _SP]),
    "rigfit_motion_quaternions": (_I, [_P, _F, _S, _SP]),
    "rigfit_motion_euler_xyz": (_I, [_P, _F, _S, _SP]),
    "rigfit_motion_translations": (_I, [_P, _F, _S, _SP]),
    "rigfit_motion_joints": (_I, [_P, _F, _S, _SP]),
    "rigfit_motion_vertices": (_I, [_P, _S, _F, _S, _SP]),
    "rigfit_motion_rest_joints": (_I, [_P, _F, _S, _SP]),
    "rigfit_motion_rest_vertices": (_I, [_P, _F, _S, _SP]),
    "rigfit_motion_project_keypoints": (_I, [_P, _S, _F, _S, _SP]),
    "rigfit_motion_mean_reprojection_px": (ctypes.c_float, [_P]),
    "rigfit_motion_reprojection_px": (_I, [_P, _F, _S, _SP]),
    "rigfit_motion_num_cameras": (_S, [_P]),
    "rigfit_motion_camera": (_I, [_P, _S, _S, _VP]),
    "rigfit_motion_camera_is_static": (ctypes.c_int32, [_P, _S]),
    "rigfit_motion_save_json": (_I, [_P, _C]),
    "rigfit_motion_write_glb": (_I, [_P, _C]),
    "rigfit_motion_write_usda": (_I, [_P, _C]),
}

_LIBS = {}


def load(path):
    """Loads the native library at ``path`` (once per path) and checks its ABI version."""
    path = os.path.abspath(path)
    lib = _LIBS.get(path)
    if lib is not None:
        return lib
    if not os.path.exists(path):
        raise RigfitError(RIGFIT_ERR_IO, "rigfit native library not found: %s" % path)
    lib = ctypes.CDLL(path)
    for name, (res, args) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    version = lib.rigfit_abi_version()
    if version != ABI_VERSION:
        raise RigfitError(RIGFIT_ERR_UNSUPPORTED, "%s has C ABI version %d, this shim needs %d" % (path, version, ABI_VERSION))
    _LIBS[path] = lib
    return lib


def _b(s):
    return None if s is None else os.fsencode(s) if not isinstance(s, bytes) else s


def _floats(values):
    a = array.array("f", values)
    return a, (ctypes.c_float * len(a)).from_buffer(a) if len(a) else None


class _Native:
    def __init__(self, lib):
        self.lib = lib

    def check(self, status):
        if status != RIGFIT_OK:
            msg = (self.lib.rigfit_last_error() or b"").decode("utf-8", "replace")
            cls = Cancelled if status == RIGFIT_ERR_CANCELLED else RigfitError
            raise cls(status, msg)

    def read(self, fn, *args, typecode="f"):
        """Calls an accessor ``fn(*args, out, cap, len)`` twice: size query, then the data."""
        n = ctypes.c_size_t(0)
        self.check(fn(*args, None, 0, ctypes.byref(n)))
        out = array.array(typecode, bytes(n.value * array.array(typecode).itemsize))
        if n.value:
            ctype = {"f": ctypes.c_float, "I": ctypes.c_uint32, "i": ctypes.c_int32}[typecode]
            buf = (ctype * n.value).from_buffer(out)
            self.check(fn(*args, ctypes.cast(buf, ctypes.POINTER(ctype)), n.value, ctypes.byref(n)))
        return out


def joint_names(lib):
    return [lib.rigfit_joint_name(i).decode() for i in range(lib.rigfit_num_joints())]


def joint_parents(lib):
    return list(_Native(lib).read(lib.rigfit_joint_parents, typecode="i"))


def view_from_focal(lib, focal, width, height, name=None):
    v = RigfitView()
    _Native(lib).check(lib.rigfit_view_from_focal(focal, width, height, ctypes.byref(v)))
    v._name_keep = _b(name)
    v.name = v._name_keep
    return v


def view_from_film(lib, focal_mm, sensor_width_mm, shift_x, shift_y, width, height, name=None, pose=None):
    """A view from a film camera; ``pose`` = (rotation row-major [9], position [3]) camera-to-world
    in the Y-up world, or None for an uncalibrated view."""
    film = RigfitFilm(focal_mm, sensor_width_mm, 0.0, shift_x, shift_y)
    v = RigfitView()
    _Native(lib).check(lib.rigfit_view_from_film(ctypes.byref(film), width, height, ctypes.byref(v)))
    v._name_keep = _b(name)
    v.name = v._name_keep
    if pose is not None:
        v.has_pose = 1
        v.rotation[:] = list(pose[0])
        v.position[:] = list(pose[1])
    return v


def view_film(lib, view, sensor_width_mm=36.0):
    film = RigfitFilm()
    _Native(lib).check(lib.rigfit_view_film(ctypes.byref(view), sensor_width_mm, ctypes.byref(film)))
    return film


def fit_options(lib, preset="default", **overrides):
    """Fit settings: ``preset`` "default" (the library's) or "preview" (a few network evaluations:
    seconds instead of minutes, for checking a setup); keyword arguments override fields."""
    o = RigfitFitOptions()
    _Native(lib).check(lib.rigfit_fit_options_default(ctypes.byref(o)))
    if preset == "preview":
        o.hypotheses, o.sample_step, o.refine_tau, o.refine_step, o.refine_iters = 2, 250, 10, 5, 1
    elif preset != "default":
        raise ValueError("unknown preset %r" % preset)
    for k, v in overrides.items():
        setattr(o, k, v)
    return o


class Session(_Native):
    """A fitting engine (body model + prior). ``body``/``prior``: file paths or None (embedded)."""

    def __init__(self, lib, body=None, prior=None):
        super().__init__(lib)
        self.ptr = ctypes.c_void_p()
        if body is None and prior is None:
            self.check(lib.rigfit_session_new_default(ctypes.byref(self.ptr)))
        else:
            self.check(lib.rigfit_session_new(_b(body), _b(prior), ctypes.byref(self.ptr)))

    def close(self):
        if self.ptr:
            self.lib.rigfit_session_free(self.ptr)
            self.ptr = ctypes.c_void_p()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def num_vertices(self):
        return self.lib.rigfit_session_num_vertices(self.ptr)

    def faces(self):
        """Triangles ``[num_faces * 3]`` (uint32)."""
        return self.read(self.lib.rigfit_session_faces, self.ptr, typecode="I")

    def skin_weights(self):
        """Skinning weights ``[V * 24]``."""
        return self.read(self.lib.rigfit_session_skin_weights, self.ptr)

    def _progress(self, progress):
        if progress is None:
            return PROGRESS_FN()

        def cb(_user, stage, done, total):
            try:
                return 1 if progress(stage.decode("utf-8", "replace"), done, total) else 0
            except Exception:  # never let a Python error unwind into the library
                return 0

        return PROGRESS_FN(cb)

    def fit_files(self, path, width, height, focal=0.0, fps=0.0, track=-1, frame_start=0, frame_count=0, options=None, progress=None):
        """Fits one person to a keypoint file / folder / pattern seen by one camera.
        ``progress(stage, done, total) -> bool`` (False cancels: raises Cancelled)."""
        out = ctypes.c_void_p()
        cb = self._progress(progress)
        opts = ctypes.byref(options) if options is not None else None
        self.check(self.lib.rigfit_fit_files(self.ptr, _b(path), track, width, height, focal, fps, frame_start, frame_count, opts, cb, None, ctypes.byref(out)))
        return Motion(self.lib, out)

    def fit_files_views(self, paths, views, fps=0.0, track=-1, frame_start=0, frame_count=0, options=None, progress=None):
        """Fits one person seen by several views (``views``: RigfitView list, with poses for
        calibrated cameras)."""
        n = len(paths)
        if n != len(views) or n == 0:
            raise RigfitError(RIGFIT_ERR_INPUT, "%d paths for %d views" % (n, len(views)))
        keep = [_b(p) for p in paths]
        cpaths = (ctypes.c_char_p * n)(*keep)
        cviews = (RigfitView * n)(*views)
        out = ctypes.c_void_p()
        cb = self._progress(progress)
        opts = ctypes.byref(options) if options is not None else None
        self.check(self.lib.rigfit_fit_files_views(self.ptr, cpaths, cviews, n, track, fps, frame_start, frame_count, opts, cb, None, ctypes.byref(out)))
        return Motion(self.lib, out)

    def motion(self, frames, fps, rotations, translations, betas=()):
        """A motion from arrays: ``rotations`` [F*24*9] row-major, ``translations`` [F*3]."""
        r, rp = _floats(rotations)
        t, tp = _floats(translations)
        b, bp = _floats(betas)
        out = ctypes.c_void_p()
        self.check(self.lib.rigfit_motion_new(self.ptr, frames, fps, bp, len(b), rp, tp, ctypes.byref(out)))
        return Motion(self.lib, out)

    def load_motion(self, path):
        out = ctypes.c_void_p()
        self.check(self.lib.rigfit_motion_load_json(self.ptr, _b(path), ctypes.byref(out)))
        return Motion(self.lib, out)


class Motion(_Native):
    """A fitted animation. Arrays are flat ``array('f')``; shapes in the docstrings."""

    def __init__(self, lib, ptr):
        super().__init__(lib)
        self.ptr = ptr

    def close(self):
        if self.ptr:
            self.lib.rigfit_motion_free(self.ptr)
            self.ptr = ctypes.c_void_p()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def num_frames(self):
        return self.lib.rigfit_motion_num_frames(self.ptr)

    @property
    def fps(self):
        return self.lib.rigfit_motion_fps(self.ptr)

    @property
    def mean_reprojection_px(self):
        return self.lib.rigfit_motion_mean_reprojection_px(self.ptr)

    def betas(self):
        return self.read(self.lib.rigfit_motion_betas, self.ptr)

    def rotations(self):
        """[F*24*9] local rotation matrices, row-major."""
        return self.read(self.lib.rigfit_motion_rotations, self.ptr)

    def quaternions(self):
        """[F*24*4] local rotations (w, x, y, z): pose rotations of identity-rest bones."""
        return self.read(self.lib.rigfit_motion_quaternions, self.ptr)

    def euler_xyz(self):
        """[F*24*3] local rotations as XYZ Euler angles in degrees (R = Rz Ry Rx), continuous."""
        return self.read(self.lib.rigfit_motion_euler_xyz, self.ptr)

    def translations(self):
        """[F*3] root translations (the root bone's pose location)."""
        return self.read(self.lib.rigfit_motion_translations, self.ptr)

    def joints(self):
        """[F*24*3] world joints, Y-up."""
        return self.read(self.lib.rigfit_motion_joints, self.ptr)

    def vertices(self, frame):
        """[V*3] posed mesh of one frame, Y-up."""
        return self.read(self.lib.rigfit_motion_vertices, self.ptr, frame)

    def rest_joints(self):
        """[24*3] rest joints of the motion's shape."""
        return self.read(self.lib.rigfit_motion_rest_joints, self.ptr)

    def rest_vertices(self):
        """[V*3] rest mesh of the motion's shape."""
        return self.read(self.lib.rigfit_motion_rest_vertices, self.ptr)

    def project_keypoints(self, camera=0):
        """[F*25*3] BODY_25 keypoints of the motion seen by a camera (x px, y px, 1)."""
        return self.read(self.lib.rigfit_motion_project_keypoints, self.ptr, camera)

    def reprojection_px(self):
        """[F*V] reprojection errors of the fit, pixels (NaN where a view does not see)."""
        return self.read(self.lib.rigfit_motion_reprojection_px, self.ptr)

    @property
    def num_cameras(self):
        return self.lib.rigfit_motion_num_cameras(self.ptr)

    def camera(self, index, frame=0):
        v = RigfitView()
        self.check(self.lib.rigfit_motion_camera(self.ptr, index, frame, ctypes.byref(v)))
        return v

    def camera_is_static(self, index):
        return bool(self.lib.rigfit_motion_camera_is_static(self.ptr, index))

    def add_camera(self, view):
        self.check(self.lib.rigfit_motion_add_camera(self.ptr, ctypes.byref(view)))

    def save_json(self, path):
        self.check(self.lib.rigfit_motion_save_json(self.ptr, _b(path)))

    def write_glb(self, path):
        self.check(self.lib.rigfit_motion_write_glb(self.ptr, _b(path)))

    def write_usda(self, path):
        self.check(self.lib.rigfit_motion_write_usda(self.ptr, _b(path)))
