#!/usr/bin/env python3
"""The ScoreHMR keypoint refinement loop in PyTorch, as the official code runs it
(diffusion.py `ddim_with_guidance` + `cond_fn` keypoint guidance), timed on this machine as
the baseline for rigfit's benches/refine.rs.

    /opt/smplx-venv/bin/python tools/bench_refine_torch.py [--batches 1,16,128] [--threads N]

Same work as the Rust bench: the official network size (scorehmr_ref.FC: cond 3072, hidden
1024, 3 blocks; random weights), smplx SMPL on the synthetic SMPL-size model (6890 vertices,
full forward as ScoreHMR does), BODY_25 keypoints, GMoF (sigma 100) with conf^2 and the
resolution weight, camera translation optimised by Adam (lr 1e-2, one step per guided step),
10 iterations x (25 inversion + 25 guided steps), no early stopping. float32, CPU.
Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_parity_fixtures as mpf  # noqa: E402
import scorehmr_ref  # noqa: E402
import synth_smpl  # noqa: E402

SMPL_TO_OPENPOSE = [24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", default="1,16,128")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()

    import smplx
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = scorehmr_ref.official_fc().eval()
    buf = {k: v.float() for k, v in scorehmr_ref.schedule_buffers().items()}
    acp = buf["alphas_cumprod"]
    sqrt_recip = buf["sqrt_recip_alphas_cumprod"]
    sqrt_recipm1 = buf["sqrt_recipm1_alphas_cumprod"]

    def rot6d_to_rotmat(x):  # ScoreHMR geometry.py (ProHMR layout)
        x = x.reshape(-1, 2, 3).permute(0, 2, 1).contiguous()
        a1, a2 = x[:, :, 0], x[:, :, 1]
        b1 = torch.nn.functional.normalize(a1)
        b2 = torch.nn.functional.normalize(a2 - torch.einsum("bi,bi->b", b1, a2).unsqueeze(-1) * b1)
        b3 = torch.cross(b1, b2, dim=-1)
        return torch.stack((b1, b2, b3), dim=-1)

    def gmof(x, sigma):
        x2 = x**2
        s2 = sigma**2
        return s2 * x2 / (s2 + x2)

    synth = synth_smpl.synthetic_smpl(0)
    with tempfile.TemporaryDirectory() as tmp:
        mpf.write_smpl_pickle(synth, tmp)
        smpl = smplx.create(tmp, model_type="smpl", gender="neutral", num_betas=10, dtype=torch.float32)
    smpl.eval()
    rng = np.random.default_rng(1)
    focal, W, H = 5000.0, 1920.0, 1080.0

    for b in [int(v) for v in args.batches.split(",")]:
        x6 = np.tile(np.array([1, 0, 0, 0, 1, 0], np.float32), (b, 24))
        x6[:, :6] = [1, 0, 0, 0, -1, 0]
        x6 += 0.05 * rng.standard_normal(x6.shape).astype(np.float32)
        x_init = torch.tensor(x6)
        cond = torch.tensor(rng.standard_normal((b, 3072)).astype(np.float32))
        betas = torch.zeros(b, 10)
        with torch.no_grad():
            rm = rot6d_to_rotmat(x_init).view(b, 24, 3, 3)
            out = smpl(global_orient=rm[:, :1], body_pose=rm[:, 1:], betas=betas, pose2rot=False)
            j = out.joints[:, SMPL_TO_OPENPOSE] + torch.tensor([0.0, 0.2, 20.0])
            kp = focal * j[..., :2] / j[..., 2:] + torch.tensor([W / 2, H / 2])
            kp = kp + torch.tensor([3.0, -2.0])
        conf = torch.full((b, 25), 0.9)
        center = torch.tensor([W / 2, H / 2])

        def run() -> float:
            cam_t = torch.tensor([[0.0, 0.2, 20.0]] * b, requires_grad=True)
            opt = torch.optim.Adam([cam_t], lr=1e-2)
            x_t = x_init.clone()
            t0 = time.perf_counter()
            for _ in range(10):
                with torch.no_grad():  # DDIM inversion 0 -> 50, step 2
                    for t in range(0, 50, 2):
                        tt = torch.full((b,), t, dtype=torch.long)
                        eps = model(x_t, tt, cond)
                        x0 = sqrt_recip[t] * x_t - sqrt_recipm1[t] * eps
                        x_t = acp[t + 2].sqrt() * x0 + (1 - acp[t + 2]).sqrt() * eps
                for t in range(50, 0, -2):  # guided DDIM sampling 50 -> 0
                    tt = torch.full((b,), t, dtype=torch.long)
                    with torch.no_grad():
                        eps = model(x_t, tt, cond)
                    with torch.enable_grad():
                        xg = x_t.detach().requires_grad_(True)
                        x0 = sqrt_recip[t] * xg - sqrt_recipm1[t] * eps
                        rm = rot6d_to_rotmat(x0).view(b, 24, 3, 3)
                        o = smpl(global_orient=rm[:, :1], body_pose=rm[:, 1:], betas=betas, pose2rot=False)
                        p = o.joints[:, SMPL_TO_OPENPOSE] + cam_t.unsqueeze(1)
                        proj = focal * p[..., :2] / p[..., 2:] + center
                        loss_kp = ((1000.0 / max(W, H)) ** 2 * conf.unsqueeze(-1) ** 2 * gmof(proj - kp, 100.0)).sum(dim=(1, 2))
                        opt.zero_grad()
                        loss_kp.sum().backward(retain_graph=True)
                        opt.step()
                        grad = torch.autograd.grad((0.003 * loss_kp).sum(), xg)[0]
                    with torch.no_grad():
                        eps = eps + (1 - acp[t]).sqrt() * grad
                        x0 = sqrt_recip[t] * x_t - sqrt_recipm1[t] * eps
                        tn = t - 2
                        x_t = acp[tn].sqrt() * x0 + (1 - acp[tn]).sqrt() * eps
            return time.perf_counter() - t0

        run()
        best = min(run() for _ in range(2 if b >= 128 else 3))
        row = {"impl": "pytorch", "what": "refine_official", "batch": b, "threads": torch.get_num_threads(),
               "s_per_refinement": round(best, 4), "ms_per_sample": round(best * 1e3 / b, 3)}
        print(json.dumps(row, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
