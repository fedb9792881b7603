#!/usr/bin/env python3
"""A deterministic synthetic body model in the SMPL layout, defined by a formula.

The official SMPL file cannot be committed (licence, size), and a random 6890-vertex model is too
large to commit as a fixture (~30 MB). Instead the model is *defined* by the formula below, and
Python (this file) and Rust (`tests/common/synth.rs`) both build it from a seed, bit for bit
(every f32 array identical). The parity fixture `tests/fixtures/smplx_parity.npz` stores smplx's
outputs for this model; the Rust tests rebuild the model and compare.

SPECIFICATION (version 1). Any change here must be mirrored in tests/common/synth.rs and the
fixture regenerated (tools/make_parity_fixtures.py).

Sizes (as the official SMPL): V = 6890 vertices, S = 10 shape coefficients, P = 207 pose
features, 24 joints, F = 13776 faces, 11 landmarks.

Hashing (all integer arithmetic is on u64, wrapping modulo 2^64):

    splitmix64(x):
        z = x + 0x9E3779B97F4A7C15
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB
        return z ^ (z >> 31)
    key(stream)   = splitmix64(seed ^ splitmix64(stream))
    bits(stream, i) = splitmix64(key(stream) + i)
    unit(stream, i) = (bits(stream, i) >> 11) * 2^-53          (an f64 in [0, 1), exact)
    sym(stream, i)  = 2 * unit(stream, i) - 1                   (an f64 in [-1, 1), exact)

All real-valued formulas below are evaluated in IEEE f64, left to right, exactly as written
(no fused multiply-add, sums accumulated sequentially in the order given), then rounded to f32
(round to nearest even) as the last step. Decimal constants are f64 literals.

Streams and arrays:

* home joint of vertex v: h(v) = v mod 24.
  JOINT_REST[j] (f64 literals, table below): an approximate SMPL rest skeleton, metres, Y up,
  centred so the body spans about +-0.9 m.
* v_template [V, 3]:  v_template[v, k] = f32(JOINT_REST[h(v)][k] + 0.08 * sym(1, 3v + k)).
* shapedirs [V, 3, S]: shapedirs[v, k, s] = f32(0.03 * sym(2, (3v + k) * S + s)).
* posedirs, pickle layout [V, 3, P]: posedirs[v, k, p] = f32(0.01 * sym(3, (3v + k) * P + p)).
  (rigfit's BodyArrays stores the smplx layout [P, V*3]: element [p, 3v + k].)
* J_regressor [24, V], zero except, for each joint j:
    n_j   = 8 + bits(4, j) mod 9                      (8..16 vertices)
    a_j   = bits(5, j) mod 287
    vertex i (i = 0..n_j-1):  q_i = (a_j + 37 i) mod 287,  v_i = 24 q_i + j
    (287 = 7 * 41 is coprime with 37, so the v_i are distinct and all have home joint j)
    raw_i = 0.5 + unit(6, 16 j + i)
    tot   = ((raw_0 + raw_1) + raw_2) + ...           (sequential f64 sum)
    J_regressor[j, v_i] = f32(raw_i / tot)
* weights [V, 24], zero except, for each vertex v:
    chain = [h(v), parent(h(v)), parent(parent(h(v))), ...] up to the root (SMPL parents)
    m     = min(1 + bits(7, v) mod 4, len(chain))     (1..4 joints)
    raw_0 = 1.0 + unit(8, 4v),  raw_i = 0.05 + unit(8, 4v + i) for i = 1..m-1
    tot   = sequential f64 sum of raw_0..raw_{m-1}
    weights[v, chain[i]] = f32(raw_i / tot)
* kintree_table [2, 24]: row 0 = SMPL parents (root -1; 4294967295 as uint32 in the pickle),
  row 1 = 0..23.
* faces f [F, 3]: a = bits(9, 3t) mod V, d1 = bits(9, 3t + 1) mod 100, d2 = bits(9, 3t + 2) mod 100,
  f[t] = [a, (a + 1 + d1) mod V, (a + 2 + d1 + d2) mod V]  (three distinct vertices).
* landmarks [11]: the official SMPL ids [332, 6260, 2800, 4071, 583, 3216, 3226, 3387, 6617,
  6624, 6787] (nose, reye, leye, rear, lear, LBigToe, LSmallToe, LHeel, RBigToe, RSmallToe, RHeel).

JOINT_REST (x, y, z):
     0 pelvis         ( 0.00,  0.18,  0.03)   12 neck           ( 0.00,  0.69, -0.01)
     1 left_hip       ( 0.06,  0.09,  0.02)   13 left_collar    ( 0.08,  0.60,  0.00)
     2 right_hip      (-0.06,  0.09,  0.02)   14 right_collar   (-0.08,  0.60,  0.00)
     3 spine1         ( 0.00,  0.29,  0.00)   15 head           ( 0.00,  0.76,  0.05)
     4 left_knee      ( 0.10, -0.29,  0.02)   16 left_shoulder  ( 0.20,  0.63, -0.02)
     5 right_knee     (-0.10, -0.29,  0.02)   17 right_shoulder (-0.20,  0.63, -0.02)
     6 spine2         ( 0.00,  0.42,  0.01)   18 left_elbow     ( 0.45,  0.61, -0.04)
     7 left_ankle     ( 0.08, -0.69, -0.02)   19 right_elbow    (-0.45,  0.61, -0.04)
     8 right_ankle    (-0.08, -0.69, -0.02)   20 left_wrist     ( 0.71,  0.61, -0.01)
     9 spine3         ( 0.00,  0.47,  0.03)   21 right_wrist    (-0.71,  0.61, -0.01)
    10 left_foot      ( 0.12, -0.75,  0.10)   22 left_hand      ( 0.80,  0.60, -0.02)
    11 right_foot     (-0.12, -0.75,  0.10)   23 right_hand     (-0.80,  0.60, -0.02)

This module needs only numpy. `python tools/synth_smpl.py [--seed N] [-o out.npz]` writes the
model in rigfit's .npz layout and prints a few check values.
"""

from __future__ import annotations

import argparse

import numpy as np

SPEC_VERSION = 1

NUM_VERTS = 6890
NUM_BETAS = 10
NUM_POSE_FEATURES = 207
NUM_JOINTS = 24
NUM_FACES = 13776

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
SMPL_LANDMARKS = [332, 6260, 2800, 4071, 583, 3216, 3226, 3387, 6617, 6624, 6787]

JOINT_REST = [
    (0.00, 0.18, 0.03),
    (0.06, 0.09, 0.02),
    (-0.06, 0.09, 0.02),
    (0.00, 0.29, 0.00),
    (0.10, -0.29, 0.02),
    (-0.10, -0.29, 0.02),
    (0.00, 0.42, 0.01),
    (0.08, -0.69, -0.02),
    (-0.08, -0.69, -0.02),
    (0.00, 0.47, 0.03),
    (0.12, -0.75, 0.10),
    (-0.12, -0.75, 0.10),
    (0.00, 0.69, -0.01),
    (0.08, 0.60, 0.00),
    (-0.08, 0.60, 0.00),
    (0.00, 0.76, 0.05),
    (0.20, 0.63, -0.02),
    (-0.20, 0.63, -0.02),
    (0.45, 0.61, -0.04),
    (-0.45, 0.61, -0.04),
    (0.71, 0.61, -0.01),
    (-0.71, 0.61, -0.01),
    (0.80, 0.60, -0.02),
    (-0.80, 0.60, -0.02),
]

_MASK = (1 << 64) - 1
_U = np.uint64


def splitmix64_int(x: int) -> int:
    """splitmix64 on a Python int (the scalar reference)."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def splitmix64_np(x: np.ndarray) -> np.ndarray:
    """splitmix64 on a uint64 array (wrapping arithmetic; numpy arrays do not warn)."""
    z = x.astype(np.uint64) + _U(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U(30))) * _U(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U(27))) * _U(0x94D049BB133111EB)
    return z ^ (z >> _U(31))


class Hasher:
    """The hash streams of one seed."""

    def __init__(self, seed: int):
        self.seed = seed & _MASK

    def key(self, stream: int) -> int:
        return splitmix64_int(self.seed ^ splitmix64_int(stream))

    def bits(self, stream: int, idx) -> np.ndarray:
        """bits(stream, i) for an array (or int) of indices i; returns uint64."""
        with np.errstate(over="ignore"):
            i = np.asarray(idx, dtype=np.uint64)
            return splitmix64_np(np.asarray(self.key(stream), dtype=np.uint64) + i)

    def bits_int(self, stream: int, i: int) -> int:
        return splitmix64_int((self.key(stream) + i) & _MASK)

    def unit(self, stream: int, idx) -> np.ndarray:
        return (self.bits(stream, idx) >> _U(11)).astype(np.float64) * (2.0 ** -53)

    def unit_int(self, stream: int, i: int) -> float:
        return float(self.bits_int(stream, i) >> 11) * (2.0 ** -53)

    def sym(self, stream: int, idx) -> np.ndarray:
        return 2.0 * self.unit(stream, idx) - 1.0


def synthetic_smpl(seed: int) -> dict:
    """Builds the synthetic model. Returns a dict in the SMPL pickle layout:

    v_template f32 [V,3], shapedirs f32 [V,3,S], posedirs f32 [V,3,207], J_regressor f32 [24,V]
    (dense), weights f32 [V,24], kintree_table i64 [2,24] (root -1), f i64 [F,3],
    landmarks i64 [11].
    """
    h = Hasher(seed)
    V, S, P, J, F = NUM_VERTS, NUM_BETAS, NUM_POSE_FEATURES, NUM_JOINTS, NUM_FACES

    rest = np.array(JOINT_REST, dtype=np.float64)  # [24, 3]
    home = np.arange(V) % J
    vt = rest[home] + 0.08 * h.sym(1, np.arange(V * 3)).reshape(V, 3)
    v_template = vt.astype(np.float32)

    shapedirs = (0.03 * h.sym(2, np.arange(V * 3 * S))).astype(np.float32).reshape(V, 3, S)
    posedirs = (0.01 * h.sym(3, np.arange(V * 3 * P))).astype(np.float32).reshape(V, 3, P)

    jreg = np.zeros((J, V), dtype=np.float32)
    for j in range(J):
        n = 8 + h.bits_int(4, j) % 9
        a = h.bits_int(5, j) % 287
        raw = [0.5 + h.unit_int(6, 16 * j + i) for i in range(n)]
        tot = 0.0
        for r in raw:
            tot += r
        for i in range(n):
            q = (a + 37 * i) % 287
            jreg[j, 24 * q + j] = np.float32(raw[i] / tot)

    weights = np.zeros((V, J), dtype=np.float32)
    counts = h.bits(7, np.arange(V)) % _U(4)
    units = h.unit(8, np.arange(4 * V)).reshape(V, 4)
    chains = []
    for j in range(J):
        c = [j]
        while SMPL_PARENTS[c[-1]] >= 0:
            c.append(SMPL_PARENTS[c[-1]])
        chains.append(c)
    for v in range(V):
        chain = chains[v % J]
        m = min(1 + int(counts[v]), len(chain))
        raw = [1.0 + float(units[v, 0])] + [0.05 + float(units[v, i]) for i in range(1, m)]
        tot = 0.0
        for r in raw:
            tot += r
        for i in range(m):
            weights[v, chain[i]] = np.float32(raw[i] / tot)

    t = np.arange(F, dtype=np.uint64)
    a = (h.bits(9, 3 * t) % _U(V)).astype(np.int64)
    d1 = (h.bits(9, 3 * t + _U(1)) % _U(100)).astype(np.int64)
    d2 = (h.bits(9, 3 * t + _U(2)) % _U(100)).astype(np.int64)
    faces = np.stack([a, (a + 1 + d1) % V, (a + 2 + d1 + d2) % V], axis=1).astype(np.int64)

    kintree = np.stack([np.array(SMPL_PARENTS, dtype=np.int64), np.arange(J, dtype=np.int64)])

    return {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": jreg,
        "weights": weights,
        "kintree_table": kintree,
        "f": faces,
        "landmarks": np.array(SMPL_LANDMARKS, dtype=np.int64),
    }


def check_values(model: dict) -> dict:
    """A few values a Rust test can compare against (stored in the parity fixture)."""
    pd = model["posedirs"].astype(np.float64)
    return {
        # the first 30 v_template values (f32, exact)
        "check_v_template": model["v_template"].reshape(-1)[:30].copy(),
        # a sequential f64 sum of all posedirs values (order: pickle layout [V,3,P], row-major)
        "check_posedirs_sum": np.array([float(np.cumsum(pd.reshape(-1))[-1])], dtype=np.float64),
        "check_shapedirs_last": model["shapedirs"].reshape(-1)[-10:].copy(),
        "check_jreg_nnz": np.array([int((model["J_regressor"] != 0).sum())], dtype=np.int64),
        "check_weights_nnz": np.array([int((model["weights"] != 0).sum())], dtype=np.int64),
        "check_faces_first": model["f"][:4].copy(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", help="write the model as a rigfit .npz (np.savez)")
    args = ap.parse_args()
    m = synthetic_smpl(args.seed)
    for k, v in m.items():
        print(f"{k:14s} {str(v.dtype):8s} {list(v.shape)}  min {v.min():+.4f} max {v.max():+.4f}")
    c = check_values(m)
    print("posedirs sum", c["check_posedirs_sum"][0])
    print("v_template[:6]", c["check_v_template"][:6])
    if args.output:
        np.savez(args.output, **m)
        print("wrote", args.output)


if __name__ == "__main__":
    main()
