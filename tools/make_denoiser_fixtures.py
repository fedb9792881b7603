#!/usr/bin/env python3
"""Generate the denoiser parity fixtures of `tests/diffusion.rs`.

    /opt/smplx-venv/bin/python tools/make_denoiser_fixtures.py [--seed 0] [--out tests/fixtures]

Needs torch and numpy (tools/README.md: the smplx venv). Writes, deterministically:

* `denoiser_small.safetensors` + `denoiser_small.json`: a small ScoreHMR `FC`
  (tools/scorehmr_ref.py) with P = 48, C = 64, H = 128, 3 blocks and random weights, run through
  the real conversion path: the model is wrapped like the release (`GaussianDiffusionLike`
  holding the schedule buffers, inside `EMALike` with `online_model` and `ema_model` that differ),
  saved as a trainer-style `torch.save({"step", "model", "opt", "ema"})` checkpoint in a temp dir
  and converted by tools/convert_scorehmr_ckpt.py (EMA weights). P is 48 rather than 144
  because the time MLP alone has 20 P^2 parameters (1.7 MB at P = 144); the P = 144 time
  embedding is checked separately (`temb144`).
  Weights: PyTorch's default init (torch.manual_seed(seed)), LayerNorm weight 1 + 0.2 N(0,1),
  bias 0.2 N(0,1) so that the affine part is exercised.
* `denoiser_small_io.npz` (uncompressed np.savez):
  - `x_t` f32 [8, 48] ~ N(0, 1); `t` i64 [8] = 0, 1, 2, 49, 50, 500, 998, 999;
    `cond` f32 [8, 64] ~ N(0, 1);
  - `eps` f64 [8, 48]: the model in float64 (`.double()`, float64 default dtype so the time
    embedding frequencies are float64 too) on the f32 inputs: the exact output for the f32
    weights and inputs, what rigfit is compared against;
  - `eps_torch_f32` f32 [8, 48]: the same model as the official code runs it (float32, long t,
    float32 time embedding), for information;
  - `temb` f64 [8, 48] and `temb144` f64 [8, 144]: `SinusoidalPosEmb(48 / 144)(t)` in float64;
  - `alphas_cumprod` f32 [1000] and `sqrt_recip_alphas_cumprod`, `sqrt_recipm1_alphas_cumprod`,
    `sqrt_alphas_cumprod`, `sqrt_one_minus_alphas_cumprod` f32 [1000]: the official schedule
    buffers (GaussianDiffusion.__init__).
* `denoiser_official_shapes.json`: `[name, shape]` of `FC(144, 3072, 1024, 3).state_dict()` in
  module order and the parameter count (the release's layout; its weights are not committed).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import convert_scorehmr_ckpt as conv  # noqa: E402
import scorehmr_ref as ref  # noqa: E402

SMALL = dict(pose_dim=48, cond_dim=64, hidden_dim=128, num_blocks=3)
T_VALUES = [0, 1, 2, 49, 50, 500, 998, 999]


def small_model(seed: int) -> ref.FC:
    torch.manual_seed(seed)
    m = ref.FC(**SMALL)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "layer_norm" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.2 * torch.randn_like(p))
                else:
                    p.copy_(0.2 * torch.randn_like(p))
    return m.float().eval()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "tests", "fixtures"))
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    ema = small_model(args.seed)
    online = small_model(args.seed + 1000)  # the raw weights differ from the EMA ones
    diffusion_ema = ref.GaussianDiffusionLike(ema)
    diffusion_online = ref.GaussianDiffusionLike(online)
    wrapper = ref.EMALike(diffusion_online, diffusion_ema, step=1_000_000)
    ckpt = {"step": 100, "model": diffusion_online.state_dict(), "opt": {}, "ema": wrapper.state_dict()}

    weights = os.path.join(args.out, "denoiser_small.safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt_path = os.path.join(tmp, "model-100.pt")
        torch.save(ckpt, ckpt_path)
        cfg = conv.convert(ckpt_path, weights, source="ema", quiet=True)
    assert cfg == {"pose_dim": 48, "cond_dim": 64, "hidden": 128, "blocks": 3, "null_cond": "none"}, cfg
    # The converted file holds exactly the EMA weights.
    st, _ = conv.read_safetensors(weights)
    for k, v in ema.state_dict().items():
        assert np.array_equal(st[k], v.numpy()), k

    g = torch.Generator().manual_seed(args.seed + 1)
    B, P, C = len(T_VALUES), SMALL["pose_dim"], SMALL["cond_dim"]
    x_t = torch.randn(B, P, generator=g, dtype=torch.float32)
    cond = torch.randn(B, C, generator=g, dtype=torch.float32)
    t = torch.tensor(T_VALUES, dtype=torch.long)

    with torch.no_grad():
        eps_f32 = ema(x_t, t, cond)
        with ref.float64_defaults():
            m64 = copy.deepcopy(ema).double()
            eps64 = m64(x_t.double(), t.double(), cond.double())
            temb = ref.SinusoidalPosEmb(P)(t.double())
            temb144 = ref.SinusoidalPosEmb(144)(t.double())
    assert eps64.dtype == torch.float64 and temb.dtype == torch.float64

    bufs = ref.schedule_buffers()
    io_path = os.path.join(args.out, "denoiser_small_io.npz")
    np.savez(
        io_path,
        x_t=x_t.numpy(),
        t=t.numpy(),
        cond=cond.numpy(),
        eps=eps64.numpy(),
        eps_torch_f32=eps_f32.numpy(),
        temb=temb.numpy(),
        temb144=temb144.numpy(),
        **{k: bufs[k].numpy() for k in (
            "alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
            "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod")},
    )

    official = ref.official_fc()
    shapes = [[k, list(v.shape)] for k, v in official.state_dict().items()]
    n = sum(p.numel() for p in official.parameters())
    shapes_path = os.path.join(args.out, "denoiser_official_shapes.json")
    with open(shapes_path, "w") as f:
        json.dump({"config": ref.OFFICIAL, "num_params": n, "params": shapes}, f, indent=1)
        f.write("\n")

    d = (eps_f32.double() - eps64).abs().max().item()
    print(f"{weights}: {os.path.getsize(weights):,} bytes")
    print(f"{io_path}: {os.path.getsize(io_path):,} bytes; |eps|max {eps64.abs().max().item():.3f}, "
          f"torch f32 vs f64 max |diff| {d:.2e}")
    print(f"{shapes_path}: {len(shapes)} tensors, {n:,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
