#!/usr/bin/env python3
"""Generate tests/fixtures/smplx_parity.npz: smplx's outputs on the synthetic SMPL model.

    /opt/smplx-venv/bin/python tools/make_parity_fixtures.py [--seed 1] [-o tests/fixtures/smplx_parity.npz]

Needs numpy, scipy, torch and smplx (see tools/README.md). Steps:
1. build the synthetic model of `--seed` (tools/synth_smpl.py; Rust rebuilds it bit for bit in
   tests/common/synth.rs);
2. write it as an official-style SMPL pickle (`<tmp>/smpl/SMPL_NEUTRAL.pkl`: float64 arrays,
   scipy csc_matrix J_regressor, uint32 kintree_table with root 4294967295, uint32 faces), the
   layout `smplx.create(<tmp>, model_type='smpl')` reads;
3. check that what was pickled is the generator's model: read back with
   tools/convert_smpl_pkl.py (no chumpy/scipy path) and through smplx's own buffers;
4. run smplx in float64 (its load-time f32 rounding of the model arrays is a no-op here: the
   arrays are f32 values already) on B = 8 samples: betas ~ N(0, 1.5^2), global orientation any
   rotation, 23 body joints with rotation angles up to 1 rad, translation ~ N(0, 1); sample 0 is
   the rest pose with zero betas and zero translation. Inputs are rounded to f32 (stored as f64)
   so the reference is exact for the f32 inputs rigfit consumes. The pose goes in as rotation
   matrices computed here in f64 (`pose2rot=False`), the exact matrices the Rust test uses;
5. save (np.savez, uncompressed): seed, betas [8,10], rotmats [8,24,3,3], transl [8,3] (f64),
   vertices [8,6890,3] (f32), joints [8,24,3] (the first 24 smplx joints, f64), keypoints
   [8,25,3] (OpenPose BODY_25 from smplx's 45 joints, f64), joints45 [8,45,3] (f64), and
   generator check values (check_*: see synth_smpl.check_values).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import convert_smpl_pkl  # noqa: E402
import synth_smpl  # noqa: E402

# ScoreHMR / ProHMR / SPIN smpl_to_openpose (data_eval.md 1.6)
SMPL_TO_BODY25 = [24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34]
BATCH = 8


def rodrigues(aa: np.ndarray) -> np.ndarray:
    """Axis-angle [..., 3] -> rotation matrices [..., 3, 3] in f64 (exact formula, no epsilon)."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    axis = np.where(angle > 0, aa / np.where(angle > 0, angle, 1.0), 0.0)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    K = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(aa.shape[:-1] + (3, 3))
    s = np.sin(angle)[..., None]
    c = np.cos(angle)[..., None]
    eye = np.broadcast_to(np.eye(3), K.shape)
    return eye + s * K + (1.0 - c) * (K @ K)


def random_unit(rng, shape) -> np.ndarray:
    v = rng.normal(size=shape + (3,))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def sample_inputs(seed: int):
    rng = np.random.default_rng(seed)
    betas = rng.normal(0.0, 1.5, (BATCH, synth_smpl.NUM_BETAS))
    orient = random_unit(rng, (BATCH,)) * rng.uniform(0.0, np.pi, (BATCH, 1))
    body = random_unit(rng, (BATCH, 23)) * rng.uniform(0.0, 1.0, (BATCH, 23, 1))
    transl = rng.normal(0.0, 1.0, (BATCH, 3))
    betas[0] = 0.0
    orient[0] = 0.0
    body[0] = 0.0
    transl[0] = 0.0
    aa = np.concatenate([orient[:, None, :], body], axis=1)  # [B, 24, 3]
    rotmats = rodrigues(aa)
    # Round the inputs to f32: rigfit consumes f32, so the reference is exact for its inputs.
    r32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
    return r32(betas), r32(rotmats), r32(transl)


def write_smpl_pickle(model: dict, folder: str) -> str:
    """The synthetic model as an official-style SMPL pickle (float64 arrays, sparse J_regressor)."""
    import scipy.sparse as sp

    d = {
        "v_template": model["v_template"].astype(np.float64),
        "shapedirs": model["shapedirs"].astype(np.float64),
        "posedirs": model["posedirs"].astype(np.float64),
        "J_regressor": sp.csc_matrix(model["J_regressor"].astype(np.float64)),
        "weights": model["weights"].astype(np.float64),
        "kintree_table": (model["kintree_table"] % 2**32).astype(np.uint32),
        "f": model["f"].astype(np.uint32),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    assert d["kintree_table"][0, 0] == 4294967295
    os.makedirs(os.path.join(folder, "smpl"), exist_ok=True)
    path = os.path.join(folder, "smpl", "SMPL_NEUTRAL.pkl")
    with open(path, "wb") as fh:
        pickle.dump(d, fh, protocol=2)
    return path


def check_pickled(model: dict, pkl: str, smpl) -> None:
    """The pickle (read without scipy/chumpy, and through smplx) holds exactly the generator's model."""
    conv, notes = convert_smpl_pkl.convert(convert_smpl_pkl.load_pickle(pkl), 10, origin=pkl)
    assert not notes, notes
    for k, v in model.items():
        assert conv[k].dtype == v.dtype, (k, conv[k].dtype, v.dtype)
        assert np.array_equal(conv[k], v), f"converter read back a different `{k}`"
    V = model["v_template"].shape[0]
    buffers = {
        "v_template": (smpl.v_template, model["v_template"]),
        "shapedirs": (smpl.shapedirs, model["shapedirs"]),
        # smplx: posedirs.reshape(-1, 207).T -> [207, V*3]
        "posedirs": (smpl.posedirs, model["posedirs"].reshape(V * 3, 207).T),
        "J_regressor": (smpl.J_regressor, model["J_regressor"]),
        "lbs_weights": (smpl.lbs_weights, model["weights"]),
        "faces": (smpl.faces_tensor, model["f"]),
    }
    for k, (t, ref) in buffers.items():
        got = t.detach().cpu().numpy()
        assert got.shape == ref.shape, (k, got.shape, ref.shape)
        assert np.array_equal(got, ref.astype(got.dtype)), f"smplx buffer `{k}` differs from the generator"
    assert smpl.parents.tolist() == synth_smpl.SMPL_PARENTS
    print("check: pickle == generator (via convert_smpl_pkl and smplx buffers): ok")


def main() -> None:
    ap = argparse.ArgumentParser(description="Generate the smplx parity fixture.")
    ap.add_argument("--seed", type=int, default=1, help="synthetic model + input seed (default 1)")
    ap.add_argument(
        "-o", "--output", default=os.path.normpath(os.path.join(HERE, "..", "tests", "fixtures", "smplx_parity.npz"))
    )
    args = ap.parse_args()

    import smplx
    import torch

    model = synth_smpl.synthetic_smpl(args.seed)
    betas, rotmats, transl = sample_inputs(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        pkl = write_smpl_pickle(model, tmp)
        with contextlib.redirect_stdout(sys.stderr):  # smplx prints a warning about 10 betas
            smpl = smplx.create(
                tmp, model_type="smpl", gender="neutral", num_betas=10, dtype=torch.float64, batch_size=BATCH
            )
        check_pickled(model, pkl, smpl)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(torch.float64)  # noqa: E731
        with torch.no_grad():
            out = smpl(
                betas=t(betas),
                global_orient=t(rotmats[:, :1]),  # [B, 1, 3, 3]
                body_pose=t(rotmats[:, 1:]),  # [B, 23, 3, 3]
                transl=t(transl),
                pose2rot=False,
            )
    verts = out.vertices.numpy()
    j45 = out.joints.numpy()
    assert verts.shape == (BATCH, 6890, 3) and j45.shape == (BATCH, 45, 3), (verts.shape, j45.shape)

    # Sanity: the rest pose reproduces the template (up to f32 weight-sum rounding).
    rest_err = np.abs(verts[0] - model["v_template"]).max()
    assert rest_err < 1e-6, rest_err
    lm = np.array(synth_smpl.SMPL_LANDMARKS)
    assert np.array_equal(j45[:, 24:35], verts[:, lm]), "smplx landmark joints != landmark vertices"

    fixture = {
        "spec_version": np.array([synth_smpl.SPEC_VERSION], dtype=np.int64),
        "seed": np.array([args.seed], dtype=np.int64),
        "betas": betas,
        "rotmats": rotmats,
        "transl": transl,
        "vertices": verts.astype(np.float32),
        "joints": j45[:, :24].copy(),
        "keypoints": j45[:, SMPL_TO_BODY25].copy(),
        "joints45": j45,
    }
    fixture.update(synth_smpl.check_values(model))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    np.savez(args.output, **fixture)
    try:
        from importlib.metadata import version

        smplx_version = version("smplx")
    except Exception:
        smplx_version = "?"
    print(f"smplx {smplx_version}, torch {torch.__version__}, numpy {np.__version__}")
    print(f"rest-pose |verts - v_template| max {rest_err:.2e}")
    print(f"vertex extent {verts.min():+.3f} .. {verts.max():+.3f} m")
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
