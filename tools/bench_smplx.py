#!/usr/bin/env python3
"""Time smplx's SMPL forward on the synthetic SMPL-size model (the baseline for rigfit's
benches/body_forward.rs, which prints the same JSON fields).

    /opt/smplx-venv/bin/python tools/bench_smplx.py [--seed 0] [--threads N] [--pose2rot]

float32, `torch.no_grad()` for the forward passes; batch 1, 64, 512; times are the minimum over
repeats after a warm-up (the machine may be shared). smplx has no joints-only path, so the
"joints" rows are the full forward again (what a smplx user pays for joints). Forward + backward
(gradient of sum(vertices) w.r.t. body_pose) at batch 1 and 64. The pose is given as rotation
matrices (`pose2rot=False`, as rigfit's `forward(rotmats)` and ScoreHMR); `--pose2rot` passes
axis-angle instead (smplx then runs its Rodrigues).

Prints one JSON object per line:
    {"impl":"smplx","model":"synthetic_smpl","path":"full_fwd","batch":64,"ms_per_call":..,"ms_per_sample":..,...}
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_parity_fixtures as mpf  # noqa: E402
import synth_smpl  # noqa: E402


def time_min(fn, reps: int) -> float:
    fn()  # warm-up
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description="Benchmark smplx SMPL.forward (float32, CPU).")
    ap.add_argument("--seed", type=int, default=0, help="synthetic model seed (rigfit's bench uses 0)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    ap.add_argument("--pose2rot", action="store_true", help="axis-angle input instead of rotation matrices")
    ap.add_argument("--batches", default="1,64,512")
    args = ap.parse_args()

    import smplx
    import torch

    torch.set_num_threads(args.threads)
    common = {
        "impl": "smplx",
        "model": "synthetic_smpl",
        "dtype": "float32",
        "threads": torch.get_num_threads(),
        "pose_input": "axis_angle" if args.pose2rot else "rotmats",
    }

    def report(path: str, b: int, ms: float, **extra) -> None:
        row = dict(common, path=path, batch=b, ms_per_call=round(ms, 4), ms_per_sample=round(ms / b, 5), **extra)
        print(json.dumps(row, separators=(",", ":")), flush=True)

    model = synth_smpl.synthetic_smpl(args.seed)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        mpf.write_smpl_pickle(model, tmp)
        with contextlib.redirect_stdout(sys.stderr):  # smplx prints a warning about 10 betas
            smpl = smplx.create(tmp, model_type="smpl", gender="neutral", num_betas=10, dtype=torch.float32)

    def inputs(b: int, requires_grad: bool = False):
        aa = rng.uniform(-0.5, 0.5, (b, 24, 3))
        betas = torch.tensor(rng.uniform(-1, 1, (b, 10)), dtype=torch.float32)
        transl = torch.tensor(rng.uniform(-1, 1, (b, 3)), dtype=torch.float32)
        if args.pose2rot:
            go = torch.tensor(aa[:, 0], dtype=torch.float32)
            bp = torch.tensor(aa[:, 1:].reshape(b, 69), dtype=torch.float32)
        else:
            rm = mpf.rodrigues(aa)
            go = torch.tensor(rm[:, :1], dtype=torch.float32)
            bp = torch.tensor(rm[:, 1:], dtype=torch.float32)
        bp.requires_grad_(requires_grad)
        return dict(betas=betas, global_orient=go, body_pose=bp, transl=transl, pose2rot=args.pose2rot)

    for b in [int(x) for x in args.batches.split(",")]:
        kw = inputs(b)
        reps = 5 if b >= 512 else 20

        def fwd():
            with torch.no_grad():
                smpl(**kw)

        ms = time_min(fwd, reps)
        report("full_fwd", b, ms)
        report("joints_fwd", b, ms, note="smplx has no joints-only path: the full forward")

    for b in (1, 64):
        kw = inputs(b, requires_grad=True)

        def fwd_bwd():
            kw["body_pose"].grad = None
            out = smpl(**kw)
            out.vertices.sum().backward()

        report("full_fwd_bwd", b, time_min(fwd_bwd, 10))
    print(
        f"# smplx on torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} cores visible",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
