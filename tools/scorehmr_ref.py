#!/usr/bin/env python3
"""A faithful PyTorch re-implementation of ScoreHMR's denoiser and noise schedule.

Reference for rigfit's `src/diffusion` (parity fixtures, checkpoint conversion tests). Written
from the official code at statho/ScoreHMR commit f623ed1 (see /work/shared/reference/scorehmr.md
sections 1-2), with the same module tree and parameter names, so that `FC(...).state_dict()`
has exactly the official keys:

    time_mlp = Sequential(SinusoidalPosEmb(P), Linear(P, 4P), GELU(), Linear(4P, 4P))
    init_mlp = Linear(P, P)
    blocks[i] = ResMLPBlock: mlp = Sequential(SiLU(), Linear(4P, 2P)),
                             block = MLPBlock(layer_norm1, linear_layer1, act1,
                                              layer_norm2, linear_layer2, act2)
    final_mlp = Linear(P, P)

Only the pose branch exists (the released model has USE_BETAS = False). `FC` takes its sizes as
arguments instead of a yacs config: `FC(pose_dim=144, cond_dim=3072, hidden_dim=1024,
num_blocks=3)` is the released model (`official_fc()`).

Also here:
* `cosine_beta_schedule` and `schedule_buffers` (the float64-then-float32 buffers of
  `GaussianDiffusion.__init__`);
* `GaussianDiffusionLike` (a module holding `.model` and those buffers, as the official
  `GaussianDiffusion` does) and `EMALike` (the state-dict layout of lucidrains' ema_pytorch
  `EMA`: `initted`, `step`, `online_model.*`, `ema_model.*`), used to build fake checkpoints with
  the layout of the released `model-100.pt`.

Numerics: like the original, `SinusoidalPosEmb` computes in the default float dtype. For a
float64 reference run the whole thing under `torch.set_default_dtype(torch.float64)` (the
frequencies are then float64 too) and pass float64 inputs to a `.double()` model; see
`float64_defaults()`.

Needs torch (and numpy).
"""

from __future__ import annotations

import contextlib
import copy
import math

import torch
from torch import nn

# ScoreHMR base.yaml L37: TIMESTEPS 1000
TIMESTEPS = 1000

# ScoreHMR base.yaml L41-45 + denoising_model.py L6-9 (PREDICTORS["pare"]["thetas_emb_dim"])
OFFICIAL = dict(pose_dim=144, cond_dim=3072, hidden_dim=1024, num_blocks=3)


def exists(x):
    return x is not None


class SinusoidalPosEmb(nn.Module):
    """model_blocks.py L7-19, verbatim."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        device = x.device
        half_dim = self.dim // 2
        emb = math.log(10000) / (half_dim - 1)
        emb = torch.exp(torch.arange(half_dim, device=device) * -emb)
        emb = x[:, None] * emb[None, :]
        emb = torch.cat((emb.sin(), emb.cos()), dim=-1)
        return emb


class MLPBlock(nn.Module):
    """model_blocks.py L22-42, verbatim."""

    def __init__(self, input_dim, hidden_dim, cond_emb_dim=None):
        super().__init__()
        inp_dim = input_dim
        output_dim = input_dim
        if cond_emb_dim is not None:
            inp_dim += cond_emb_dim

        self.layer_norm1 = nn.LayerNorm(inp_dim)
        self.linear_layer1 = nn.Linear(inp_dim, hidden_dim)
        self.act1 = nn.GELU()

        self.layer_norm2 = nn.LayerNorm(hidden_dim)
        self.linear_layer2 = nn.Linear(hidden_dim, output_dim)
        self.act2 = nn.GELU()

    def forward(self, x):
        x = self.act1(self.linear_layer1(self.layer_norm1(x)))
        x = self.act2(self.linear_layer2(self.layer_norm2(x)))
        return x


class ResMLPBlock(nn.Module):
    """model_blocks.py L45-74, verbatim."""

    def __init__(self, input_dim, hidden_dim, time_emb_dim=None, cond_emb_dim=None):
        super().__init__()
        self.mlp = (
            nn.Sequential(nn.SiLU(), nn.Linear(time_emb_dim, input_dim * 2))
            if exists(time_emb_dim)
            else None
        )
        self.block = MLPBlock(input_dim, hidden_dim, cond_emb_dim)

    def forward(self, x, time_emb=None, cond_emb=None):
        if exists(self.mlp) and exists(time_emb):
            time_emb = self.mlp(time_emb)
            scale, shift = time_emb.chunk(2, dim=1)
            x = x * (scale + 1) + shift
        residual = x
        if cond_emb is not None:
            x = torch.cat((x, cond_emb), dim=1)
        x = residual + self.block(x)
        return x


class FC(nn.Module):
    """denoising_model.py `FC`, pose branch (USE_BETAS = False), sizes as arguments."""

    def __init__(self, pose_dim=144, cond_dim=3072, hidden_dim=1024, num_blocks=3) -> None:
        super().__init__()
        self.use_betas = False
        self.thetas_dim = pose_dim
        self.diffusion_dim = pose_dim
        self.thetas_emb_dim = cond_dim
        time_dim = self.thetas_dim * 4  # denoising_model.py L28
        fourier_dim = self.thetas_dim
        self.time_mlp = nn.Sequential(
            SinusoidalPosEmb(self.thetas_dim),
            nn.Linear(fourier_dim, time_dim),
            nn.GELU(),
            nn.Linear(time_dim, time_dim),
        )
        self.init_mlp = nn.Linear(in_features=self.thetas_dim, out_features=self.thetas_dim)
        self.blocks = nn.ModuleList([])
        for _ in range(num_blocks):
            self.blocks.append(
                ResMLPBlock(
                    input_dim=self.thetas_dim,
                    hidden_dim=hidden_dim,
                    time_emb_dim=time_dim,
                    cond_emb_dim=self.thetas_emb_dim,
                )
            )
        self.final_mlp = nn.Linear(in_features=self.thetas_dim, out_features=self.thetas_dim)

    def forward(self, x: torch.Tensor, time: torch.Tensor, cond_emb: torch.Tensor = None) -> torch.Tensor:
        """x [B, P], time [B] (long in the official code), cond_emb [B, C] -> eps [B, P]."""
        thetas = self.init_mlp(x)
        tt = self.time_mlp(time)
        for block in self.blocks:
            thetas = block(thetas, tt, cond_emb)
        return self.final_mlp(thetas)


def official_fc() -> FC:
    """The released model's architecture (random weights)."""
    return FC(**OFFICIAL)


def param_shapes(pose_dim, cond_dim, hidden_dim, num_blocks):
    """[(name, shape)] of `FC(...).state_dict()` without building it (module order)."""
    p, c, h, t = pose_dim, cond_dim, hidden_dim, 4 * pose_dim
    out = []

    def lin(name, i, o):
        out.append((f"{name}.weight", (o, i)))
        out.append((f"{name}.bias", (o,)))

    lin("time_mlp.1", p, t)
    lin("time_mlp.3", t, t)
    lin("init_mlp", p, p)
    for i in range(num_blocks):
        lin(f"blocks.{i}.mlp.1", t, 2 * p)
        out.append((f"blocks.{i}.block.layer_norm1.weight", (p + c,)))
        out.append((f"blocks.{i}.block.layer_norm1.bias", (p + c,)))
        lin(f"blocks.{i}.block.linear_layer1", p + c, h)
        out.append((f"blocks.{i}.block.layer_norm2.weight", (h,)))
        out.append((f"blocks.{i}.block.layer_norm2.bias", (h,)))
        lin(f"blocks.{i}.block.linear_layer2", h, p)
    lin("final_mlp", p, p)
    return out


# ------------------------------------------------------------------------------------------
# Schedule (utils.py L35-41, diffusion.py L24-66)


def cosine_beta_schedule(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """utils.py L35-41, verbatim (float64)."""
    steps = timesteps + 1
    x = torch.linspace(0, timesteps, steps, dtype=torch.float64)
    alphas_cumprod = torch.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return torch.clip(betas, 0, 0.999)


SCHEDULE_BUFFERS = [
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
    "p2_loss_weight",
]


def schedule_buffers(timesteps: int = TIMESTEPS) -> dict:
    """The float32 buffers `GaussianDiffusion.__init__` registers (diffusion.py L24-66), computed
    in float64 and cast, in registration order."""
    betas = cosine_beta_schedule(timesteps)
    alphas = 1.0 - betas
    alphas_cumprod = torch.cumprod(alphas, dim=0)
    alphas_cumprod_prev = torch.nn.functional.pad(alphas_cumprod[:-1], (1, 0), value=1.0)
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    b = {
        "betas": betas,
        "alphas_cumprod": alphas_cumprod,
        "alphas_cumprod_prev": alphas_cumprod_prev,
        "sqrt_alphas_cumprod": torch.sqrt(alphas_cumprod),
        "sqrt_one_minus_alphas_cumprod": torch.sqrt(1.0 - alphas_cumprod),
        "log_one_minus_alphas_cumprod": torch.log(1.0 - alphas_cumprod),
        "sqrt_recip_alphas_cumprod": torch.sqrt(1.0 / alphas_cumprod),
        "sqrt_recipm1_alphas_cumprod": torch.sqrt(1.0 / alphas_cumprod - 1),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": torch.log(posterior_variance.clamp(min=1e-20)),
        "posterior_mean_coef1": betas * torch.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod),
        "posterior_mean_coef2": (1.0 - alphas_cumprod_prev) * torch.sqrt(alphas) / (1.0 - alphas_cumprod),
        # p2 weight with gamma = 0, k = 1 (diffusion.py L64-66)
        "p2_loss_weight": (1.0 + alphas_cumprod / (1 - alphas_cumprod)) ** -0.0,
    }
    return {k: v.to(torch.float32) for k, v in b.items()}


class GaussianDiffusionLike(nn.Module):
    """The parameter/buffer layout of the official `GaussianDiffusion`: the schedule buffers,
    then the denoiser as `.model` (its state-dict keys are `betas`, ..., `model.*`)."""

    def __init__(self, model: nn.Module, timesteps: int = TIMESTEPS):
        super().__init__()
        for k, v in schedule_buffers(timesteps).items():
            self.register_buffer(k, v)
        self.model = model


class EMALike(nn.Module):
    """The state-dict layout of ema_pytorch's `EMA(diffusion, beta=0.995, update_every=10)`
    (include_online_model=True): `online_model.*`, `ema_model.*`, `initted`, `step`."""

    def __init__(self, model: nn.Module, ema_model: nn.Module | None = None, step: int = 0):
        super().__init__()
        self.online_model = model
        self.ema_model = ema_model if ema_model is not None else copy.deepcopy(model)
        self.register_buffer("initted", torch.tensor(True))
        self.register_buffer("step", torch.tensor(step))


@contextlib.contextmanager
def float64_defaults():
    """Run with float64 as torch's default dtype (float64 time embedding frequencies)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)
