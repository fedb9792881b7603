#!/usr/bin/env python3
"""Convert the released ScoreHMR checkpoint (`model-100.pt`) into rigfit's denoiser files.

    python tools/convert_scorehmr_ckpt.py data/model_weights/score_hmr/model-100.pt \\
        -o scorehmr.safetensors [--source ema|model]

Writes `scorehmr.safetensors` (float32 tensors with the official state-dict names of the
denoiser `FC`, e.g. `time_mlp.1.weight`, `blocks.0.block.layer_norm1.weight`) and
`scorehmr.json` beside it (the rigfit `DenoiserConfig`, inferred from the shapes:
`{"pose_dim": 144, "cond_dim": 3072, "hidden": 1024, "blocks": 3, "null_cond": "none"}` for
the release). `rigfit::diffusion::Denoiser::load("scorehmr.safetensors", ..)` reads them.

The checkpoint is the `torch.save` dict of ScoreHMR's trainer (trainer.py L66-73):
`{"step", "model", "opt", "ema"}`. Inference uses the EMA weights (model_utils.py L23-25), so
the default `--source ema` takes `data["ema"]` (ema_pytorch `EMA.state_dict()`), keeps the
`ema_model.model.*` keys and strips that prefix; it drops `initted`, `step`, the
`ema_model.{betas, alphas_cumprod, ...}` schedule buffers (rigfit recomputes the schedule) and
the raw `online_model.*` weights. `--source model` takes the non-EMA `data["model"]`
(`model.*` keys) instead. A bare state dict (keys with either prefix, or none) works too.

Loading uses `torch.load(..., weights_only=True)`: the file holds only tensors, numbers and
dicts, so no code in it runs. Needs torch and numpy; the safetensors writer is in this file
(numpy only), no `safetensors` package needed. On a malformed checkpoint the script prints an
`error: ...` line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys

import numpy as np

SAFETENSORS_DTYPES = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("uint8"): "U8",
}
NUMPY_DTYPES = {v: k for k, v in SAFETENSORS_DTYPES.items()}

EMA_PREFIX = "ema_model.model."
MODEL_PREFIX = "model."


class ConvertError(Exception):
    pass


# ------------------------------------------------------------------------------------------
# safetensors (https://github.com/huggingface/safetensors, format: u64 little-endian header
# length N, N bytes of JSON header padded with spaces to a multiple of 8, then the raw
# little-endian C-order data; header entries {"dtype", "shape", "data_offsets": [begin, end]}
# relative to the data start, plus an optional "__metadata__" {str: str}).


def write_safetensors(path: str, tensors: dict, metadata: dict | None = None) -> None:
    """Write `{name: np.ndarray}` as a safetensors file, tensors in sorted name order."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        if a.dtype not in SAFETENSORS_DTYPES:
            raise ConvertError(f"{name}: dtype {a.dtype} is not supported")
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": SAFETENSORS_DTYPES[a.dtype],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path: str) -> tuple[dict, dict]:
    """Read a safetensors file: ({name: np.ndarray}, metadata)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, e in header.items():
        dt = NUMPY_DTYPES[e["dtype"]].newbyteorder("<")
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[base + b : base + end], dtype=dt).reshape(e["shape"]).astype(dt.newbyteorder("="))
    return out, meta


# ------------------------------------------------------------------------------------------
# Denoiser layout


def expected_shapes(cfg: dict) -> list:
    """[(name, shape)] of the rigfit denoiser for a config dict (same as Rust's
    `DenoiserConfig::param_shapes`)."""
    p, c, h, t = cfg["pose_dim"], cfg["cond_dim"], cfg["hidden"], 4 * cfg["pose_dim"]
    out = []

    def lin(name, i, o):
        out.append((f"{name}.weight", (o, i)))
        out.append((f"{name}.bias", (o,)))

    lin("time_mlp.1", p, t)
    lin("time_mlp.3", t, t)
    lin("init_mlp", p, p)
    for i in range(cfg["blocks"]):
        lin(f"blocks.{i}.mlp.1", t, 2 * p)
        out.append((f"blocks.{i}.block.layer_norm1.weight", (p + c,)))
        out.append((f"blocks.{i}.block.layer_norm1.bias", (p + c,)))
        lin(f"blocks.{i}.block.linear_layer1", p + c, h)
        out.append((f"blocks.{i}.block.layer_norm2.weight", (h,)))
        out.append((f"blocks.{i}.block.layer_norm2.bias", (h,)))
        lin(f"blocks.{i}.block.linear_layer2", h, p)
    lin("final_mlp", p, p)
    if cfg.get("null_cond") == "learned":
        out.append(("null_cond", (c,)))
    return out


def infer_config(shapes: dict) -> dict:
    """The rigfit config of a denoiser state dict `{name: shape}` (no null condition)."""
    if "init_mlp.weight" not in shapes:
        raise ConvertError("no `init_mlp.weight`: not a ScoreHMR denoiser state dict")
    p = shapes["init_mlp.weight"][0]
    blocks = 0
    while f"blocks.{blocks}.mlp.1.weight" in shapes:
        blocks += 1
    if blocks == 0:
        raise ConvertError("no `blocks.0.*`: not a ScoreHMR denoiser state dict")
    for k in ("blocks.0.block.linear_layer1.weight", "blocks.0.block.layer_norm1.weight"):
        if k not in shapes:
            raise ConvertError(f"missing `{k}`")
    h = shapes["blocks.0.block.linear_layer1.weight"][0]
    c = shapes["blocks.0.block.layer_norm1.weight"][0] - p
    return {"pose_dim": int(p), "cond_dim": int(c), "hidden": int(h), "blocks": int(blocks), "null_cond": "none"}


def select_state_dict(ckpt, source: str) -> tuple[dict, str]:
    """The flat state dict to convert and the key prefix of the denoiser in it."""
    if isinstance(ckpt, dict) and source in ckpt and isinstance(ckpt[source], dict):
        sd = ckpt[source]
        prefix = EMA_PREFIX if source == "ema" else MODEL_PREFIX
        if not any(k.startswith(prefix) for k in sd):
            raise ConvertError(f"checkpoint[{source!r}] has no `{prefix}*` keys")
        return sd, prefix
    if isinstance(ckpt, dict) and all(isinstance(k, str) for k in ckpt):
        for prefix in (EMA_PREFIX, MODEL_PREFIX, ""):
            if f"{prefix}init_mlp.weight" in ckpt:
                return ckpt, prefix
    raise ConvertError(
        f"not a ScoreHMR checkpoint: expected a dict with a {source!r} entry "
        "(torch.save of {'step', 'model', 'opt', 'ema'}) or a denoiser state dict"
    )


def convert_state_dict(sd: dict, prefix: str) -> tuple[dict, dict, list]:
    """(tensors as float32 numpy {official name: array}, config, dropped keys)."""
    tensors = {}
    dropped = []
    for k, v in sd.items():
        if not k.startswith(prefix):
            dropped.append(k)
            continue
        name = k[len(prefix) :]
        if not hasattr(v, "detach"):
            raise ConvertError(f"`{k}` is not a tensor")
        if not v.is_floating_point():
            raise ConvertError(f"`{k}` is not a float tensor ({v.dtype})")
        tensors[name] = v.detach().cpu().float().numpy()
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    cfg = infer_config(shapes)
    expected = expected_shapes(cfg)
    want = dict(expected)
    for name, shape in expected:
        if name not in shapes:
            raise ConvertError(f"missing tensor `{prefix}{name}` {shape}")
        if shapes[name] != tuple(shape):
            raise ConvertError(f"`{prefix}{name}` has shape {shapes[name]}, expected {tuple(shape)}")
    extra = sorted(set(tensors) - set(want))
    if any(k.endswith("_betas") or "_betas." in k for k in extra):
        raise ConvertError("the checkpoint has a betas branch (USE_BETAS = True); rigfit supports the pose-only model")
    if extra:
        raise ConvertError(f"unexpected denoiser tensors (not the ScoreHMR FC layout): {extra[:5]}")
    for name, a in tensors.items():
        if not np.all(np.isfinite(a)):
            raise ConvertError(f"`{prefix}{name}` holds NaN or infinite values")
    return tensors, cfg, dropped


def convert(ckpt_path: str, out_path: str, source: str = "ema", quiet: bool = False) -> dict:
    """Convert `ckpt_path` into `out_path` (safetensors) + `out_path` with `.json`; returns the
    config."""
    import torch  # only here: the safetensors helpers above need numpy only

    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 (any unpickling failure means a bad file)
        raise ConvertError(f"cannot read {ckpt_path} as a torch checkpoint: {e}") from e
    sd, prefix = select_state_dict(ckpt, source)
    tensors, cfg, dropped = convert_state_dict(sd, prefix)
    meta = {"format": "pt", "rigfit_config": json.dumps(cfg), "source": f"{os.path.basename(ckpt_path)}[{source}]"}
    write_safetensors(out_path, tensors, meta)
    cfg_path = os.path.splitext(out_path)[0] + ".json"
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    if not quiet:
        n = sum(a.size for a in tensors.values())
        groups = sorted({re.sub(r"\..*", "", k) for k in dropped})
        print(f"{out_path}: {len(tensors)} tensors, {n:,} parameters, config {cfg}")
        print(f"{cfg_path}: config")
        print(f"dropped {len(dropped)} keys outside `{prefix}*` ({', '.join(groups)})")
    return cfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="ScoreHMR model-100.pt (torch.save dict)")
    ap.add_argument("-o", "--output", required=True, help="output .safetensors (the .json goes beside it)")
    ap.add_argument("--source", choices=["ema", "model"], default="ema", help="which weights (default: ema, as the official inference)")
    args = ap.parse_args(argv)
    if not args.output.endswith(".safetensors"):
        print("error: the output name must end in .safetensors", file=sys.stderr)
        return 2
    try:
        convert(args.checkpoint, args.output, args.source)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ConvertError as e:
        print(f"error: {args.checkpoint}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
