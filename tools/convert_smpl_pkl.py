#!/usr/bin/env python3
"""Convert an official SMPL model pickle (.pkl) into rigfit's .npz layout. Needs only numpy.

    python tools/convert_smpl_pkl.py SMPL_NEUTRAL.pkl -o smpl_neutral.npz [--num-betas 10]

The official files (e.g. basicModel_neutral_lbs_10_207_0_v1.0.0.pkl, renamed SMPL_NEUTRAL.pkl by
smplx users) are Python-2 pickles (protocol 2) holding numpy arrays, a chumpy `Ch` object
(`shapedirs`) and a `scipy.sparse.csc_matrix` (`J_regressor`). Loading them normally needs
chumpy (unmaintained) and scipy. This script reads them with a restricted unpickler instead:

* numpy's own reconstruct functions (`_reconstruct`, `dtype`, `ndarray`, `scalar`,
  `_frombuffer`) and a few builtins (`set`, `frozenset`, `copy_reg._reconstructor`,
  `_codecs.encode`) are the real ones;
* every other class (chumpy.*, scipy.sparse.*, anything else) becomes a stub that only records
  the state the pickle gives it (`__setstate__`); no code from the file runs. A plain chumpy
  `Ch` keeps its array in the state's `x`; a scipy csc/csr/coo matrix keeps `data`, `indices`,
  `indptr` (or `row`/`col`/`coords`) and `_shape` (older scipy: `shape`). The stubs are then
  turned into dense numpy arrays here.

Output arrays (C-order, uncompressed np.savez; no string arrays: rigfit's npz reader rejects them):

    v_template    f32 [V, 3]
    shapedirs     f32 [V, 3, S]      (first --num-betas components)
    posedirs      f32 [V, 3, 207]    (as in the pkl; rigfit also accepts [207, V*3])
    J_regressor   f32 [24, V]        (dense)
    weights       f32 [V, 24]
    kintree_table i64 [2, 24]        (root parent -1 instead of uint32 4294967295)
    f             i64 [F, 3]
    landmarks     i64 [11]           (smplx's vertex ids; only when V == 6890)

Exit status: 0 on success, 2 on a bad input file (message on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import pickle
import sys

import numpy as np

# smplx vertex_ids['smplh'] (same topology as SMPL): nose, reye, leye, rear, lear, LBigToe,
# LSmallToe, LHeel, RBigToe, RSmallToe, RHeel.
SMPL_LANDMARKS = [332, 6260, 2800, 4071, 583, 3216, 3226, 3387, 6617, 6624, 6787]
NUM_JOINTS = 24
NUM_POSE_FEATURES = 207


class ConvertError(Exception):
    """A problem with the input file (reported without a traceback)."""


# ---------------------------------------------------------------------------------------------
# Restricted unpickling


class PickledObject:
    """Stand-in for an instance of a class we do not import (chumpy, scipy.sparse, ...).

    Records the constructor arguments and the state handed to `__setstate__` (BUILD)."""

    _module = "?"
    _name = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj._args = args
        obj._state = None
        return obj

    def __init__(self, *args, **kwargs):  # REDUCE-style construction
        pass

    def __setstate__(self, state):
        self._state = state

    @classmethod
    def qualname(cls) -> str:
        return f"{cls._module}.{cls._name}"

    def __repr__(self) -> str:
        return f"<pickled {self.qualname()}>"


_STUB_CLASSES: dict = {}


def _stub_class(module: str, name: str) -> type:
    key = (module, name)
    if key not in _STUB_CLASSES:
        _STUB_CLASSES[key] = type(name, (PickledObject,), {"_module": module, "_name": name})
    return _STUB_CLASSES[key]


def _numpy_attr(submodule: str, name: str):
    """numpy.core.X / numpy._core.X attribute, whichever this numpy has (no deprecation noise)."""
    for mod in (f"numpy._core.{submodule}", f"numpy.core.{submodule}"):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise ConvertError(f"this numpy has no {submodule}.{name}")


# (module, name) -> resolver of the real object. Module names as written by Python 2 and 3.
_ALLOWED = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("__builtin__", "set"): lambda: set,
    ("builtins", "set"): lambda: set,
    ("__builtin__", "frozenset"): lambda: frozenset,
    ("builtins", "frozenset"): lambda: frozenset,
    ("__builtin__", "object"): lambda: object,
    ("builtins", "object"): lambda: object,
    ("copy_reg", "_reconstructor"): lambda: __import__("copyreg")._reconstructor,
    ("copyreg", "_reconstructor"): lambda: __import__("copyreg")._reconstructor,
    ("_codecs", "encode"): lambda: __import__("_codecs").encode,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = lambda: _numpy_attr("multiarray", "_reconstruct")
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = lambda: _numpy_attr("multiarray", "scalar")
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = lambda: _numpy_attr("numeric", "_frombuffer")


class SmplUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's reconstruct functions and a few builtins; every
    other class becomes a `PickledObject` stub (so chumpy/scipy are not needed and no code from
    the file runs)."""

    def find_class(self, module, name):
        real = _ALLOWED.get((module, name))
        if real is not None:
            return real()
        return _stub_class(module, name)


def load_pickle(path: str) -> dict:
    """Reads an SMPL pickle (Python 2 or 3) into a dict; chumpy/scipy objects stay stubs."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise ConvertError(f"{path}: cannot read: {e.strerror}") from None
    try:
        obj = SmplUnpickler(io.BytesIO(data), encoding="latin1").load()
    except ConvertError:
        raise
    except Exception as e:  # corrupt file, not a pickle, ...
        raise ConvertError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None
    if isinstance(obj, PickledObject) and isinstance(obj._state, dict):
        obj = obj._state  # e.g. a pickled Struct-like object
    if not isinstance(obj, dict):
        raise ConvertError(f"{path}: expected a dict of arrays at the top level, found {type(obj).__name__}")
    return obj


# ---------------------------------------------------------------------------------------------
# Stubs -> dense numpy arrays


def _state_dict(obj: PickledObject, what: str) -> dict:
    st = obj._state
    if isinstance(st, tuple) and len(st) == 2 and isinstance(st[0], dict):
        st = st[0]  # (dict, slotstate)
    if not isinstance(st, dict):
        raise ConvertError(f"{what}: {obj.qualname()} object without a state dict")
    return st


def _sparse_to_dense(obj: PickledObject, what: str) -> np.ndarray:
    st = _state_dict(obj, what)
    shape = st.get("_shape", st.get("shape"))
    if shape is None:
        raise ConvertError(f"{what}: sparse matrix state has no `_shape`/`shape` (keys: {sorted(st)})")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        raise ConvertError(f"{what}: sparse matrix of shape {shape}, expected 2-D")
    name = obj._name
    fmt = st.get("format", name[:3])
    if isinstance(fmt, bytes):
        fmt = fmt.decode("latin1")
    data = np.asarray(st.get("data"), dtype=np.float64).reshape(-1)
    dense = np.zeros(shape, dtype=np.float64)
    if fmt in ("csc", "csr"):
        for k in ("indices", "indptr", "data"):
            if st.get(k) is None:
                raise ConvertError(f"{what}: {fmt} matrix state lacks `{k}`")
        indices = np.asarray(st["indices"], dtype=np.int64).reshape(-1)
        indptr = np.asarray(st["indptr"], dtype=np.int64).reshape(-1)
        major = shape[1] if fmt == "csc" else shape[0]
        minor = shape[0] if fmt == "csc" else shape[1]
        if indptr.size != major + 1 or indptr[-1] > indices.size or indices.size != data.size:
            raise ConvertError(
                f"{what}: inconsistent {fmt} matrix (shape {shape}, indptr {indptr.size}, "
                f"indices {indices.size}, data {data.size})"
            )
        nnz = int(indptr[-1])
        if nnz and (indices[:nnz].min() < 0 or indices[:nnz].max() >= minor):
            raise ConvertError(f"{what}: {fmt} matrix index out of range")
        major_idx = np.repeat(np.arange(major), np.diff(indptr))
        if fmt == "csc":
            np.add.at(dense, (indices[:nnz], major_idx), data[:nnz])  # duplicates sum, as scipy
        else:
            np.add.at(dense, (major_idx, indices[:nnz]), data[:nnz])
    elif fmt == "coo":
        if "coords" in st:
            row, col = (np.asarray(c, dtype=np.int64).reshape(-1) for c in st["coords"])
        else:
            row = np.asarray(st.get("row"), dtype=np.int64).reshape(-1)
            col = np.asarray(st.get("col"), dtype=np.int64).reshape(-1)
        np.add.at(dense, (row, col), data)
    else:
        raise ConvertError(f"{what}: unsupported sparse format `{fmt}` ({obj.qualname()})")
    return dense


def to_dense(value, what: str) -> np.ndarray:
    """Turns an ndarray, a chumpy `Ch` stub or a scipy sparse stub into a dense ndarray."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, PickledObject):
        mod = value._module
        if mod == "chumpy" or mod.startswith("chumpy."):
            st = _state_dict(value, what)
            if value._name != "Ch" or "x" not in st:
                raise ConvertError(
                    f"{what}: chumpy expression {value.qualname()} is not supported (only a plain "
                    f"chumpy.ch.Ch holding an array in `x`); state keys: {sorted(st)}"
                )
            return to_dense(st["x"], what)
        if mod == "scipy.sparse" or mod.startswith("scipy.sparse."):
            return _sparse_to_dense(value, what)
        raise ConvertError(f"{what}: unexpected type {value.qualname()}")
    if isinstance(value, (list, tuple)):
        try:
            return np.asarray(value)
        except Exception:
            pass
    raise ConvertError(f"{what}: unexpected type {type(value).__module__}.{type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# Conversion


def _get(d: dict, key: str, origin: str, expected: str):
    if key not in d:
        raise ConvertError(
            f"{origin}: missing key `{key}` ({expected}); keys in the file: {sorted(map(str, d))}"
        )
    return to_dense(d[key], f"{origin}: `{key}`")


def _check_shape(arr: np.ndarray, shape: tuple, origin: str, key: str) -> None:
    ok = arr.ndim == len(shape) and all(e is None or e == a for e, a in zip(shape, arr.shape))
    if not ok:
        want = "[" + ", ".join("?" if e is None else str(e) for e in shape) + "]"
        raise ConvertError(f"{origin}: `{key}` has shape {list(arr.shape)}, expected {want}")


def convert(model: dict, num_betas: int = 10, origin: str = "model") -> tuple[dict, list]:
    """Converts the unpickled dict into rigfit's arrays. Returns (arrays, notes)."""
    notes = []

    def f32(x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.all(np.isfinite(x)):
            raise ConvertError(f"{origin}: non-finite values")
        return x

    vt = _get(model, "v_template", origin, "[V, 3] template vertices")
    _check_shape(vt, (None, 3), origin, "v_template")
    V = vt.shape[0]

    sd = _get(model, "shapedirs", origin, "[V, 3, S] shape blend shapes")
    _check_shape(sd, (V, 3, None), origin, "shapedirs")
    if num_betas < 1:
        raise ConvertError(f"--num-betas must be >= 1 (got {num_betas})")
    if sd.shape[2] < num_betas:
        notes.append(f"the file has {sd.shape[2]} shape components; keeping all (asked for {num_betas})")
    sd = sd[:, :, :num_betas]

    pd = _get(model, "posedirs", origin, "[V, 3, 207] pose blend shapes")
    if pd.shape == (NUM_POSE_FEATURES, V * 3):  # already in the smplx layout
        pd = pd.T.reshape(V, 3, NUM_POSE_FEATURES)
    _check_shape(pd, (V, 3, NUM_POSE_FEATURES), origin, "posedirs")

    jr = _get(model, "J_regressor", origin, "[24, V] joint regressor (dense or scipy sparse)")
    _check_shape(jr, (NUM_JOINTS, V), origin, "J_regressor")

    w = _get(model, "weights", origin, "[V, 24] skinning weights")
    _check_shape(w, (V, NUM_JOINTS), origin, "weights")
    row_err = float(np.abs(w.astype(np.float64).sum(axis=1) - 1.0).max())
    if row_err > 1e-3:
        raise ConvertError(f"{origin}: `weights` rows do not sum to 1 (max error {row_err:.3g})")

    kt = _get(model, "kintree_table", origin, "[2, 24] kinematic tree")
    _check_shape(kt, (2, NUM_JOINTS), origin, "kintree_table")
    if not np.issubdtype(kt.dtype, np.integer):
        if not np.all(kt == np.round(kt)):
            raise ConvertError(f"{origin}: `kintree_table` is not integral ({kt.dtype})")
    kt = kt.astype(np.int64)
    parents = kt[0].copy()
    # The root is stored as uint32 -1 (4294967295); smplx sets parents[0] = -1.
    parents[(parents == 0xFFFFFFFF) | (parents == -1)] = -1
    if not np.array_equal(kt[1], np.arange(NUM_JOINTS)):
        raise ConvertError(f"{origin}: `kintree_table` row 1 is {kt[1].tolist()}, expected 0..23")
    if parents[0] != -1:
        raise ConvertError(f"{origin}: `kintree_table` root parent is {kt[0, 0]}, expected 4294967295 / -1")
    for i in range(1, NUM_JOINTS):
        if not (0 <= parents[i] < i):
            raise ConvertError(f"{origin}: joint {i} has parent {parents[i]}; parents must precede children")
    kintree = np.stack([parents, kt[1]]).astype(np.int64)

    faces = _get(model, "f", origin, "[F, 3] triangles")
    _check_shape(faces, (None, 3), origin, "f")
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= V):
        raise ConvertError(f"{origin}: `f` indexes vertex {faces.max()} of {V}")

    out = {
        "v_template": f32(vt),
        "shapedirs": f32(sd),
        "posedirs": f32(pd),
        "J_regressor": f32(jr),
        "weights": f32(w),
        "kintree_table": np.ascontiguousarray(kintree),
        "f": faces,
    }
    if V == 6890:
        out["landmarks"] = np.array(SMPL_LANDMARKS, dtype=np.int64)
    else:
        notes.append(f"V = {V} is not SMPL's 6890: no `landmarks` written (BODY_25 face/feet points)")
    return out, notes


def summary(arrays: dict) -> str:
    lines = []
    for k, v in arrays.items():
        rng = f"[{v.min():+.4g}, {v.max():+.4g}]" if v.size else "[]"
        lines.append(f"  {k:14s} {str(v.dtype):8s} {str(list(v.shape)):18s} {rng}")
    jr = arrays["J_regressor"]
    lines.append(
        f"  J_regressor: {int((jr != 0).sum())} non-zeros, row sums "
        f"[{jr.sum(1).min():.6f}, {jr.sum(1).max():.6f}]"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description="Convert an official SMPL .pkl (chumpy/scipy pickle) into rigfit's .npz (needs only numpy)."
    )
    ap.add_argument("pkl", help="SMPL model pickle, e.g. SMPL_NEUTRAL.pkl / basicModel_neutral_lbs_10_207_0_v1.0.0.pkl")
    ap.add_argument("-o", "--output", help="output .npz (default: the input name with .npz)")
    ap.add_argument("--num-betas", type=int, default=10, help="shape components to keep (default 10)")
    args = ap.parse_args(argv)
    out_path = args.output or os.path.splitext(args.pkl)[0] + ".npz"
    try:
        model = load_pickle(args.pkl)
        arrays, notes = convert(model, args.num_betas, origin=args.pkl)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    np.savez(out_path, **arrays)
    types = ", ".join(
        f"{k}: {v.qualname() if isinstance(v, PickledObject) else type(v).__name__}"
        for k, v in model.items()
        if k in ("shapedirs", "J_regressor")
    )
    print(f"read {args.pkl} ({types})")
    print(summary(arrays))
    print(f"wrote {out_path} ({os.path.getsize(out_path) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
