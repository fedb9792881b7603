"""Tests of tools/convert_scorehmr_ckpt.py, tools/scorehmr_ref.py and the committed denoiser
fixtures.

The safetensors reader/writer and fixture checks need only numpy + pytest (what CI has). The
checkpoint conversion and reference-model tests need torch and are skipped cleanly without it.
Fake checkpoints have the layout of the released `model-100.pt`: the trainer's
`torch.save({"step", "model", "opt", "ema"})`, where `ema` is the state dict of ema_pytorch's
`EMA` wrapping a `GaussianDiffusion` (schedule buffers + `.model` = the `FC` denoiser).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.dirname(HERE)
FIXTURES = os.path.join(os.path.dirname(TOOLS), "tests", "fixtures")
sys.path.insert(0, TOOLS)

import convert_scorehmr_ckpt as conv  # noqa: E402

# reference/scorehmr.md 1.4: the denoiser keys of the released checkpoint (after the
# `ema_model.model.` prefix) and their shapes, written out independently of the tools.
OFFICIAL_KEYS = (
    [("time_mlp.1.weight", (576, 144)), ("time_mlp.1.bias", (576,)),
     ("time_mlp.3.weight", (576, 576)), ("time_mlp.3.bias", (576,)),
     ("init_mlp.weight", (144, 144)), ("init_mlp.bias", (144,))]
    + [kv for i in range(3) for kv in [
        (f"blocks.{i}.mlp.1.weight", (288, 576)), (f"blocks.{i}.mlp.1.bias", (288,)),
        (f"blocks.{i}.block.layer_norm1.weight", (3216,)), (f"blocks.{i}.block.layer_norm1.bias", (3216,)),
        (f"blocks.{i}.block.linear_layer1.weight", (1024, 3216)), (f"blocks.{i}.block.linear_layer1.bias", (1024,)),
        (f"blocks.{i}.block.layer_norm2.weight", (1024,)), (f"blocks.{i}.block.layer_norm2.bias", (1024,)),
        (f"blocks.{i}.block.linear_layer2.weight", (144, 1024)), (f"blocks.{i}.block.linear_layer2.bias", (144,)),
    ]]
    + [("final_mlp.weight", (144, 144)), ("final_mlp.bias", (144,))]
)
OFFICIAL_CFG = {"pose_dim": 144, "cond_dim": 3072, "hidden": 1024, "blocks": 3, "null_cond": "none"}


# ------------------------------------------------------------------------------------------
# numpy only


def test_safetensors_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    t = {
        "b.weight": rng.standard_normal((3, 5)).astype(np.float32),
        "a": rng.standard_normal(7),
        "i": np.arange(4, dtype=np.int64),
        "scalar": np.float32(2.5).reshape(()),
    }
    p = str(tmp_path / "x.safetensors")
    conv.write_safetensors(p, t, {"k": "v"})
    with open(p, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    assert n % 8 == 0
    back, meta = conv.read_safetensors(p)
    assert meta == {"k": "v"}
    assert set(back) == set(t)
    for k in t:
        assert back[k].dtype == t[k].dtype and back[k].shape == t[k].shape
        assert np.array_equal(back[k], t[k])
    # The official `safetensors` package reads it too, when installed.
    try:
        from safetensors.numpy import load_file
    except ImportError:
        return
    ref = load_file(p)
    for k in t:
        assert np.array_equal(ref[k], t[k])


def test_expected_shapes_match_the_official_list():
    assert conv.expected_shapes(OFFICIAL_CFG) == OFFICIAL_KEYS
    assert sum(int(np.prod(s)) for _, s in OFFICIAL_KEYS) == 11_307_024
    assert conv.infer_config(dict(OFFICIAL_KEYS)) == OFFICIAL_CFG
    learned = dict(OFFICIAL_CFG, null_cond="learned")
    assert conv.expected_shapes(learned)[-1] == ("null_cond", (3072,))


def test_committed_fixtures_are_consistent():
    st, meta = conv.read_safetensors(os.path.join(FIXTURES, "denoiser_small.safetensors"))
    with open(os.path.join(FIXTURES, "denoiser_small.json")) as f:
        cfg = json.load(f)
    assert cfg == {"pose_dim": 48, "cond_dim": 64, "hidden": 128, "blocks": 3, "null_cond": "none"}
    assert json.loads(meta["rigfit_config"]) == cfg
    assert {k: v.shape for k, v in st.items()} == dict(conv.expected_shapes(cfg))
    assert all(v.dtype == np.float32 for v in st.values())
    io = np.load(os.path.join(FIXTURES, "denoiser_small_io.npz"))
    assert io["x_t"].shape == (8, 48) and io["cond"].shape == (8, 64) and io["eps"].shape == (8, 48)
    assert io["eps"].dtype == np.float64
    assert list(io["t"]) == [0, 1, 2, 49, 50, 500, 998, 999]
    with open(os.path.join(FIXTURES, "denoiser_official_shapes.json")) as f:
        off = json.load(f)
    assert [(k, tuple(s)) for k, s in off["params"]] == OFFICIAL_KEYS
    assert off["num_params"] == 11_307_024
    total = sum(os.path.getsize(os.path.join(FIXTURES, n)) for n in os.listdir(FIXTURES) if n.startswith("denoiser_"))
    assert total < 1_000_000


def test_pinned_schedule_values_numpy():
    # The cosine schedule (utils.py L35-41) in numpy: reference/scorehmr.md section 2 values.
    x = np.linspace(0, 1000, 1001, dtype=np.float64)
    acp = np.cos(((x / 1000) + 0.008) / 1.008 * np.pi * 0.5) ** 2
    acp = acp / acp[0]
    betas = np.clip(1 - acp[1:] / acp[:-1], 0, 0.999)
    abar = np.cumprod(1 - betas).astype(np.float32)
    io = np.load(os.path.join(FIXTURES, "denoiser_small_io.npz"))
    assert np.max(np.abs(abar.view(np.int32) - io["alphas_cumprod"].view(np.int32))) <= 1
    for t, want in [(0, 0.99995872), (2, 0.99986158), (10, 0.99927890), (48, 0.99228509),
                    (50, 0.99172468), (100, 0.97157568), (999, 2.428767e-9)]:
        assert abs(abar[t] / want - 1) < 1e-6, t


# ------------------------------------------------------------------------------------------
# torch


def _fake_checkpoint(path, fc_kwargs, seed=0):
    """A trainer-style checkpoint whose EMA and online weights differ; returns the EMA FC."""
    torch = pytest.importorskip("torch")
    import scorehmr_ref as ref

    torch.manual_seed(seed)
    ema_fc = ref.FC(**fc_kwargs)
    online_fc = ref.FC(**fc_kwargs)
    ema = ref.GaussianDiffusionLike(ema_fc)
    online = ref.GaussianDiffusionLike(online_fc)
    wrapper = ref.EMALike(online, ema, step=1_000_000)
    opt = torch.optim.Adam(online.parameters(), lr=1e-4, betas=(0.9, 0.99))
    ckpt = {"step": 100, "model": online.state_dict(), "opt": opt.state_dict(), "ema": wrapper.state_dict()}
    torch.save(ckpt, path)
    return ema_fc, ckpt


def test_fake_checkpoint_has_the_release_layout(tmp_path):
    pytest.importorskip("torch")
    import scorehmr_ref as ref

    _, ckpt = _fake_checkpoint(str(tmp_path / "m.pt"), dict(pose_dim=8, cond_dim=4, hidden_dim=16, num_blocks=2))
    keys = set(ckpt["ema"])
    assert {"initted", "step"} <= keys
    for b in ref.SCHEDULE_BUFFERS:
        assert f"ema_model.{b}" in keys and f"online_model.{b}" in keys
    assert "ema_model.model.blocks.1.block.layer_norm2.bias" in keys
    assert "online_model.model.time_mlp.3.weight" in keys
    assert ckpt["ema"]["ema_model.alphas_cumprod"].dtype.is_floating_point


def test_convert_small_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    kw = dict(pose_dim=8, cond_dim=4, hidden_dim=16, num_blocks=2)
    ema_fc, ckpt = _fake_checkpoint(str(tmp_path / "m.pt"), kw)
    out = str(tmp_path / "out.safetensors")
    cfg = conv.convert(str(tmp_path / "m.pt"), out, quiet=True)
    assert cfg == {"pose_dim": 8, "cond_dim": 4, "hidden": 16, "blocks": 2, "null_cond": "none"}
    with open(str(tmp_path / "out.json")) as f:
        assert json.load(f) == cfg
    st, meta = conv.read_safetensors(out)
    assert json.loads(meta["rigfit_config"]) == cfg
    assert [k for k, _ in conv.expected_shapes(cfg)] == list(ema_fc.state_dict())
    assert set(st) == set(ema_fc.state_dict())
    for k, v in ema_fc.state_dict().items():
        assert st[k].dtype == np.float32
        assert np.array_equal(st[k], v.numpy()), k  # the EMA weights ...
    online = ckpt["model"]["model.init_mlp.weight"].numpy()
    assert not np.array_equal(st["init_mlp.weight"], online)  # ... not the online ones
    # --source model takes the non-EMA weights.
    out2 = str(tmp_path / "raw.safetensors")
    conv.convert(str(tmp_path / "m.pt"), out2, source="model", quiet=True)
    st2, _ = conv.read_safetensors(out2)
    assert np.array_equal(st2["init_mlp.weight"], online)
    # A bare (prefixed) state dict converts too.
    torch.save(ckpt["ema"], str(tmp_path / "bare.pt"))
    conv.convert(str(tmp_path / "bare.pt"), str(tmp_path / "bare.safetensors"), quiet=True)
    st3, _ = conv.read_safetensors(str(tmp_path / "bare.safetensors"))
    assert all(np.array_equal(st3[k], st[k]) for k in st)


def test_convert_official_size(tmp_path):
    pytest.importorskip("torch")
    import scorehmr_ref as ref

    _fake_checkpoint(str(tmp_path / "model-100.pt"), ref.OFFICIAL)
    out = str(tmp_path / "scorehmr.safetensors")
    r = subprocess.run(
        [sys.executable, os.path.join(TOOLS, "convert_scorehmr_ckpt.py"), str(tmp_path / "model-100.pt"), "-o", out],
        capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "11,307,024 parameters" in r.stdout
    st, _ = conv.read_safetensors(out)
    assert {k: v.shape for k, v in st.items()} == dict(OFFICIAL_KEYS)
    with open(str(tmp_path / "scorehmr.json")) as f:
        assert json.load(f) == OFFICIAL_CFG


def test_convert_errors(tmp_path, capsys):
    torch = pytest.importorskip("torch")

    def main(path, out="o.safetensors"):
        rc = conv.main([str(path), "-o", str(tmp_path / out)])
        return rc, capsys.readouterr().err

    def run(obj):
        p = tmp_path / "bad.pt"
        torch.save(obj, str(p))
        return main(p)

    kw = dict(pose_dim=8, cond_dim=4, hidden_dim=16, num_blocks=2)
    _, ckpt = _fake_checkpoint(str(tmp_path / "m.pt"), kw)
    # Missing tensor.
    ema = dict(ckpt["ema"])
    del ema["ema_model.model.blocks.1.block.linear_layer2.bias"]
    rc, err = run({**ckpt, "ema": ema})
    assert rc == 2 and "missing tensor" in err
    # Wrong shape.
    ema = dict(ckpt["ema"])
    ema["ema_model.model.final_mlp.bias"] = torch.zeros(7)
    rc, err = run({**ckpt, "ema": ema})
    assert rc == 2 and "shape" in err
    # NaN.
    ema = dict(ckpt["ema"])
    ema["ema_model.model.final_mlp.bias"] = torch.full((8,), float("nan"))
    rc, err = run({**ckpt, "ema": ema})
    assert rc == 2 and "NaN" in err
    # A betas branch (USE_BETAS = True) is not supported.
    ema = dict(ckpt["ema"])
    ema["ema_model.model.time_mlp_betas.1.weight"] = torch.zeros(40, 10)
    rc, err = run({**ckpt, "ema": ema})
    assert rc == 2 and "betas" in err
    # Not a checkpoint, not a pickle, no file, wrong output name.
    rc, err = run({"something": 1})
    assert rc == 2 and "error:" in err
    p = tmp_path / "junk.pt"
    p.write_bytes(b"not a pickle")
    rc, err = main(p)
    assert rc == 2 and "error:" in err
    rc, err = main(tmp_path / "none.pt")
    assert rc == 2 and "error:" in err
    rc, err = main(tmp_path / "m.pt", out="o.bin")
    assert rc == 2 and "error:" in err
    # The script itself exits with status 2 (one subprocess run).
    r = subprocess.run([sys.executable, os.path.join(TOOLS, "convert_scorehmr_ckpt.py"), str(p), "-o",
                        str(tmp_path / "o.safetensors")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error:")


def test_reference_schedule_and_embedding():
    torch = pytest.importorskip("torch")
    import scorehmr_ref as ref

    b = ref.schedule_buffers()
    io = np.load(os.path.join(FIXTURES, "denoiser_small_io.npz"))
    for k in ("alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod"):
        assert np.array_equal(b[k].numpy(), io[k]), k
    with ref.float64_defaults():
        e = ref.SinusoidalPosEmb(144)(torch.tensor([0.0, 999.0], dtype=torch.float64))
    assert e.dtype == torch.float64 and e.shape == (2, 144)
    assert np.allclose(e[0].numpy(), np.r_[np.zeros(72), np.ones(72)])
    half = np.arange(72)
    f = np.exp(half * -(np.log(10000) / 71))
    assert np.allclose(e[1].numpy(), np.r_[np.sin(999 * f), np.cos(999 * f)], atol=1e-12)
    fc = ref.official_fc()
    assert [(k, tuple(v.shape)) for k, v in fc.state_dict().items()] == OFFICIAL_KEYS
    assert ref.param_shapes(**ref.OFFICIAL) == OFFICIAL_KEYS
