"""Tests of tools/convert_smpl_pkl.py. Need only numpy + pytest (no chumpy, no scipy).

Fake SMPL pickles are built two ways:
* `py2pickle`: the byte-level structure Python 2 wrote for the official files (str as
  BINSTRING, numpy arrays via `numpy.core.multiarray._reconstruct` with latin-1 raw data,
  chumpy `Ch` and scipy `csc_matrix` via NEWOBJ + BUILD of their state dicts);
* Python 3's own pickler (protocol 2) with temporary stub modules `chumpy.ch` and
  `scipy.sparse.csc` in sys.modules whose classes pickle like the real ones.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import types

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import convert_smpl_pkl as conv  # noqa: E402
import py2pickle  # noqa: E402

PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


def make_model(V: int, S: int = 10, F: int = 40, seed: int = 0) -> dict:
    """Dense float64 arrays shaped like the official SMPL file (+ its unused extras)."""
    rng = np.random.default_rng(seed)
    w = rng.random((V, 24)) * (rng.random((V, 24)) < 0.15)
    w[np.arange(V), rng.integers(0, 24, V)] += 1.0
    w /= w.sum(1, keepdims=True)
    jr = np.zeros((24, V))
    for j in range(24):
        idx = rng.choice(V, size=min(V, 8 + j % 5), replace=False)
        jr[j, idx] = rng.random(idx.size) + 0.1
    jr /= jr.sum(1, keepdims=True)
    kin = np.array([np.array(PARENTS) % 2**32, np.arange(24)], dtype=np.uint32)
    return {
        "v_template": rng.normal(0, 0.4, (V, 3)),
        "shapedirs": rng.normal(0, 0.01, (V, 3, S)),
        # the real posedirs may be Fortran-ordered: make sure layout survives
        "posedirs": np.asfortranarray(rng.normal(0, 0.01, (V, 3, 207))),
        "J_regressor": jr,
        "weights": w,
        "kintree_table": kin,
        "f": rng.integers(0, V, (F, 3)).astype(np.uint32),
        "J": rng.normal(0, 0.3, (24, 3)),
        "weights_prior": w.copy(),
        "vert_sym_idxs": np.arange(V, dtype=np.int64)[::-1].copy(),
    }


def csc_parts(dense: np.ndarray):
    """(data, indices, indptr) of a CSC matrix, int32 indices as scipy writes."""
    data, indices, indptr = [], [], [0]
    for c in range(dense.shape[1]):
        rows = np.nonzero(dense[:, c])[0]
        indices.extend(rows.tolist())
        data.extend(dense[rows, c].tolist())
        indptr.append(len(indices))
    return np.array(data), np.array(indices, np.int32), np.array(indptr, np.int32)


def ch_state(x: np.ndarray) -> dict:
    """chumpy Ch.__getstate__ of `Ch(x)`: __dict__ minus `_parents` and `_cache`."""
    return {
        "_dirty_vars": {"x"},
        "_itr": None,
        "_make_dense": False,
        "_make_sparse": False,
        "_depends_on_deps": {},
        "x": x,
    }


def csc_state(dense: np.ndarray, shape_key: str = "_shape") -> dict:
    """__dict__ of a scipy csc_matrix of the SMPL era (spmatrix.__init__ + _cs_matrix)."""
    data, indices, indptr = csc_parts(dense)
    return {
        "format": "csc",
        shape_key: tuple(int(s) for s in dense.shape),
        "maxprint": 50,
        "indices": indices,
        "indptr": indptr,
        "data": data,
        "_has_sorted_indices": True,
    }


def write_py2_pkl(path: str, model: dict, shape_key: str = "_shape", drop=()) -> None:
    d = {}
    for k, v in model.items():
        if k in drop:
            continue
        if k == "shapedirs":
            d[k] = py2pickle.Obj("chumpy.ch", "Ch", ch_state(v))
        elif k == "J_regressor":
            d[k] = py2pickle.Obj("scipy.sparse.csc", "csc_matrix", csc_state(v, shape_key))
        else:
            d[k] = v
    if "J_regressor" in model and "J_regressor" not in drop:
        d["J_regressor_prior"] = py2pickle.Obj("scipy.sparse.csc", "csc_matrix", csc_state(model["J_regressor"]))
    d["bs_style"] = "lbs"
    d["bs_type"] = "lrotmin"
    d["pose_training_info"] = {"num_poses": 1786, "num_subjects": 40, "subject_names": ["a", "b"]}
    with open(path, "wb") as fh:
        fh.write(py2pickle.dumps(d))


@contextlib.contextmanager
def stub_modules():
    """Temporary `chumpy.ch.Ch` and `scipy.sparse.csc.csc_matrix` that pickle like the real ones."""

    class Ch:
        def __init__(self, x):
            self.__dict__.update(ch_state(np.asarray(x, np.float64)))
            self._parents, self._cache = {}, {"r": None}

        def __getstate__(self):
            d = dict(self.__dict__)
            del d["_parents"], d["_cache"]
            return d

    class csc_matrix:  # noqa: N801 (scipy's name)
        def __init__(self, dense):
            self.__dict__.update(csc_state(dense))

    names = ["chumpy", "chumpy.ch", "scipy", "scipy.sparse", "scipy.sparse.csc"]
    saved = {n: sys.modules.get(n) for n in names}
    mods = {n: types.ModuleType(n) for n in names}
    mods["chumpy.ch"].Ch = Ch
    mods["scipy.sparse.csc"].csc_matrix = csc_matrix
    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    csc_matrix.__module__, csc_matrix.__qualname__ = "scipy.sparse.csc", "csc_matrix"
    sys.modules.update(mods)
    try:
        yield Ch, csc_matrix
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def write_py3_pkl(path: str, model: dict) -> None:
    with stub_modules() as (Ch, csc_matrix):
        d = dict(model)
        d["shapedirs"] = Ch(model["shapedirs"])
        d["J_regressor"] = csc_matrix(model["J_regressor"])
        d["bs_style"] = "lbs"
        with open(path, "wb") as fh:
            pickle.dump(d, fh, protocol=2)
    # the stub modules are gone again
    assert getattr(sys.modules.get("chumpy.ch"), "Ch", None) is not Ch
    assert getattr(sys.modules.get("scipy.sparse.csc"), "csc_matrix", None) is not csc_matrix


def check_arrays(out: dict, model: dict, num_betas: int = 10) -> None:
    V = model["v_template"].shape[0]
    expected_keys = {"v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f"}
    if V == 6890:
        expected_keys.add("landmarks")
    assert set(out) == expected_keys
    for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        assert out[k].dtype == np.float32, k
        assert out[k].flags.c_contiguous, k
    for k in ("kintree_table", "f"):
        assert out[k].dtype == np.int64, k
    np.testing.assert_array_equal(out["v_template"], model["v_template"].astype(np.float32))
    np.testing.assert_array_equal(out["shapedirs"], model["shapedirs"][:, :, :num_betas].astype(np.float32))
    assert out["posedirs"].shape == (V, 3, 207)
    np.testing.assert_array_equal(out["posedirs"], model["posedirs"].astype(np.float32))
    np.testing.assert_array_equal(out["J_regressor"], model["J_regressor"].astype(np.float32))
    np.testing.assert_array_equal(out["weights"], model["weights"].astype(np.float32))
    assert out["kintree_table"].shape == (2, 24)
    assert out["kintree_table"][0, 0] == -1
    assert out["kintree_table"][0].tolist() == PARENTS
    assert out["kintree_table"][1].tolist() == list(range(24))
    np.testing.assert_array_equal(out["f"], model["f"].astype(np.int64))
    if V == 6890:
        assert out["landmarks"].dtype == np.int64
        assert out["landmarks"].tolist() == [332, 6260, 2800, 4071, 583, 3216, 3226, 3387, 6617, 6624, 6787]


@pytest.mark.parametrize("shape_key", ["_shape", "shape"])
def test_py2_pickle_full_size(tmp_path, shape_key):
    model = make_model(6890, F=13776)
    pkl = tmp_path / "SMPL_NEUTRAL.pkl"
    write_py2_pkl(str(pkl), model, shape_key=shape_key)
    raw = conv.load_pickle(str(pkl))
    assert type(raw["shapedirs"]).qualname() == "chumpy.ch.Ch"
    assert type(raw["J_regressor"]).qualname() == "scipy.sparse.csc.csc_matrix"
    assert raw["bs_type"] == "lrotmin"
    assert raw["kintree_table"].dtype == np.uint32 and raw["kintree_table"][0, 0] == 4294967295
    out, notes = conv.convert(raw, 10)
    assert notes == []
    check_arrays(out, model)


def test_py3_stub_pickle(tmp_path):
    model = make_model(300)
    pkl = tmp_path / "m.pkl"
    write_py3_pkl(str(pkl), model)
    out, notes = conv.convert(conv.load_pickle(str(pkl)), 10)
    check_arrays(out, model)
    assert any("6890" in n for n in notes)  # no landmarks for a non-SMPL vertex count


def test_cli_writes_plain_npz(tmp_path, capsys):
    model = make_model(6890, S=12)
    pkl = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    write_py2_pkl(str(pkl), model)
    npz = tmp_path / "smpl_neutral.npz"
    assert conv.main([str(pkl), "-o", str(npz), "--num-betas", "10"]) == 0
    printed = capsys.readouterr().out
    assert "chumpy.ch.Ch" in printed and "csc_matrix" in printed and "wrote" in printed
    with np.load(npz, allow_pickle=False) as z:  # no object arrays
        out = {k: z[k] for k in z.files}
    for k, v in out.items():
        assert v.dtype.kind in "fi", (k, v.dtype)  # no string arrays
    check_arrays(out, model, num_betas=10)
    # np.savez (stored, not deflated)
    import zipfile

    with zipfile.ZipFile(npz) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def test_num_betas_truncates(tmp_path):
    model = make_model(100, S=10)
    pkl = tmp_path / "m.pkl"
    write_py2_pkl(str(pkl), model)
    out, _ = conv.convert(conv.load_pickle(str(pkl)), 4)
    assert out["shapedirs"].shape == (100, 3, 4)
    np.testing.assert_array_equal(out["shapedirs"], model["shapedirs"][:, :, :4].astype(np.float32))
    out, notes = conv.convert(conv.load_pickle(str(pkl)), 300)
    assert out["shapedirs"].shape == (100, 3, 10) and any("10 shape components" in n for n in notes)


def test_missing_key(tmp_path, capsys):
    model = make_model(100)
    pkl = tmp_path / "m.pkl"
    write_py2_pkl(str(pkl), model, drop=("weights",))
    with pytest.raises(conv.ConvertError, match="missing key `weights`"):
        conv.convert(conv.load_pickle(str(pkl)), 10, origin=str(pkl))
    assert conv.main([str(pkl), "-o", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert "missing key `weights`" in err and "v_template" in err  # lists the keys it found
    assert not (tmp_path / "x.npz").exists()


def test_unexpected_types(tmp_path):
    model = make_model(50)
    d = dict(model)
    d["shapedirs"] = py2pickle.Obj("chumpy.ch_ops", "add", {"a": 1, "b": 2})
    pkl = tmp_path / "expr.pkl"
    with open(pkl, "wb") as fh:
        fh.write(py2pickle.dumps(d))
    with pytest.raises(conv.ConvertError, match="chumpy expression chumpy.ch_ops.add"):
        conv.convert(conv.load_pickle(str(pkl)), 10)

    d = dict(model)
    d["J_regressor"] = "not an array"
    with open(pkl, "wb") as fh:
        fh.write(py2pickle.dumps(d))
    with pytest.raises(conv.ConvertError, match="`J_regressor`: unexpected type builtins.str"):
        conv.convert(conv.load_pickle(str(pkl)), 10)

    d = dict(model)
    d["weights"] = model["weights"][:, :20]
    with open(pkl, "wb") as fh:
        fh.write(py2pickle.dumps(d))
    with pytest.raises(conv.ConvertError, match=r"`weights` has shape \[50, 20\], expected \[50, 24\]"):
        conv.convert(conv.load_pickle(str(pkl)), 10)


def test_not_a_pickle(tmp_path):
    p = tmp_path / "bad.pkl"
    p.write_bytes(b"PK\x03\x04 this is a zip, not a pickle")
    with pytest.raises(conv.ConvertError, match="not a readable pickle"):
        conv.load_pickle(str(p))
    with pytest.raises(conv.ConvertError, match="cannot read"):
        conv.load_pickle(str(tmp_path / "nope.pkl"))


def test_no_code_runs(tmp_path):
    """Globals other than numpy's reconstructors become inert stubs (os.system is never called)."""
    marker = tmp_path / "pwned"
    evil = (
        b"\x80\x02}(U\x04evilcos\nsystem\nU"
        + bytes([len(f"touch {marker}")])
        + f"touch {marker}".encode()
        + b"\x85Ru."
    )
    p = tmp_path / "evil.pkl"
    p.write_bytes(evil)
    d = conv.load_pickle(str(p))
    assert isinstance(d["evil"], conv.PickledObject)
    assert not marker.exists()


def test_real_scipy_pickle_if_available(tmp_path):
    """A pickle written by today's scipy (scipy.sparse._csc.csc_matrix) converts too."""
    sp = pytest.importorskip("scipy.sparse")
    model = make_model(200)
    d = dict(model)
    d["J_regressor"] = sp.csc_matrix(model["J_regressor"])
    pkl = tmp_path / "m.pkl"
    with open(pkl, "wb") as fh:
        pickle.dump(d, fh, protocol=2)
    out, _ = conv.convert(conv.load_pickle(str(pkl)), 10)
    check_arrays(out, model)
