"""Tests of tools/synth_smpl.py (numpy only): properties of the synthetic model, and that this
numpy reproduces the values stored in the committed parity fixture (the Rust test checks the
same values against tests/common/synth.rs)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import synth_smpl  # noqa: E402

FIXTURE = os.path.join(HERE, "..", "..", "tests", "fixtures", "smplx_parity.npz")


def test_splitmix_vector_matches_scalar():
    xs = [0, 1, 2**63, 2**64 - 1, 0x9E3779B97F4A7C15, 123456789]
    got = synth_smpl.splitmix64_np(np.array(xs, dtype=np.uint64))
    assert [int(g) for g in got] == [synth_smpl.splitmix64_int(x) for x in xs]
    # reference value of splitmix64 (state 0 -> first output of the canonical generator)
    assert synth_smpl.splitmix64_int(0) == 0xE220A8397B1DCDAF
    h = synth_smpl.Hasher(5)
    assert int(h.bits(3, [7])[0]) == h.bits_int(3, 7)
    assert float(h.unit(3, [7])[0]) == h.unit_int(3, 7)


def test_model_properties():
    m = synth_smpl.synthetic_smpl(3)
    V = 6890
    assert m["v_template"].shape == (V, 3) and m["v_template"].dtype == np.float32
    assert np.abs(m["v_template"]).max() < 0.9
    assert m["shapedirs"].shape == (V, 3, 10) and np.abs(m["shapedirs"]).max() <= 0.03
    assert m["posedirs"].shape == (V, 3, 207) and np.abs(m["posedirs"]).max() <= 0.01
    jr = m["J_regressor"]
    assert jr.shape == (24, V) and (jr >= 0).all()
    nnz = (jr != 0).sum(1)
    assert nnz.min() >= 8 and nnz.max() <= 16
    assert np.abs(jr.astype(np.float64).sum(1) - 1).max() < 1e-6
    for j in range(24):  # every regressor vertex has home joint j
        assert (np.nonzero(jr[j])[0] % 24 == j).all()
    w = m["weights"]
    assert w.shape == (V, 24) and (w >= 0).all()
    assert np.abs(w.astype(np.float64).sum(1) - 1).max() < 1e-6
    k = (w != 0).sum(1)
    assert k.min() == 1 and k.max() == 4
    f = m["f"]
    assert f.shape == (13776, 3) and f.min() >= 0 and f.max() < V
    assert ((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])).all()
    assert m["kintree_table"][0].tolist() == synth_smpl.SMPL_PARENTS
    # deterministic, seed-dependent
    again = synth_smpl.synthetic_smpl(3)
    assert all(np.array_equal(m[key], again[key]) for key in m)
    assert not np.array_equal(m["v_template"], synth_smpl.synthetic_smpl(4)["v_template"])


@pytest.mark.skipif(not os.path.exists(FIXTURE), reason="no parity fixture")
def test_matches_fixture_check_values():
    with np.load(FIXTURE) as z:
        fx = {k: z[k] for k in z.files}
    assert int(fx["spec_version"][0]) == synth_smpl.SPEC_VERSION
    m = synth_smpl.synthetic_smpl(int(fx["seed"][0]))
    for k, v in synth_smpl.check_values(m).items():
        assert v.dtype == fx[k].dtype, k
        assert np.array_equal(v, fx[k]), k
