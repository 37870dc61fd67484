"""A stored value (row, SR image, features, summary) is used only while its key covers everything that made it:
each test changes one thing a stored value depends on and checks that the rerun equals a fresh run."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import aesop_bench as ab
from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError
from aesop_bench.models.archs.rrdbnet_arch import RRDBNet

TINY = {"num_feat": 8, "num_block": 1, "num_grow_ch": 8}


def _tiny_sd(seed: int) -> dict:
    torch.manual_seed(seed)
    net = RRDBNet(scale=4, **TINY)
    with torch.no_grad():
        net.conv_last.bias.fill_(0.4)
    return net.state_dict()


@pytest.fixture
def small_set(bench_root, tmp_path):
    """Three Set5 images in a folder of their own (a folder is a set)."""
    folder = tmp_path / "three"
    folder.mkdir()
    for name in ("baby", "bird", "butterfly"):
        shutil.copy(bench_root / "Set5" / "HR" / f"{name}.png", folder / f"{name}.png")
    return folder


def _eval(args, capsys) -> dict:
    rc = main(["eval", *args, "--quiet", "--no-download"])
    err = capsys.readouterr().err
    assert rc == 0, err
    return err


def _psnr(out) -> float:
    summary = json.loads((out / "summary.json").read_text())
    (only,) = summary["sets"].values()
    return only["metrics"]["psnr"]


def test_cards_with_different_keys_on_one_checkpoint_are_different_models(small_set, tmp_path, capsys):
    torch.save({"params": _tiny_sd(1), "params_ema": _tiny_sd(2)}, tmp_path / "tiny.pth")
    for key in ("params", "params_ema"):
        (tmp_path / f"{key}.yaml").write_text(f"arch: rrdb\nweights: tiny.pth\nkey: {key}\narch_opts: {TINY}\n")
    got = {}
    for key in ("params", "params_ema"):  # one home: the second must not read the first's SR cache
        _eval(["--model", str(tmp_path / f"{key}.yaml"), "--sets", str(small_set), "--metrics", "psnr",
               "--out", str(tmp_path / key)], capsys)
        got[key] = _psnr(tmp_path / key)
    shutil.rmtree(tmp_path / "aesop-bench-home" / "sr")
    _eval(["--model", str(tmp_path / "params_ema.yaml"), "--sets", str(small_set), "--metrics", "psnr",
           "--out", str(tmp_path / "fresh")], capsys)
    assert got["params_ema"] == _psnr(tmp_path / "fresh") != got["params"]
    (tmp_path / "typo.yaml").write_text(f"arch: rrdb\nweights: tiny.pth\nkey: net_g_typo\narch_opts: {TINY}\n")
    assert main(["eval", "--model", str(tmp_path / "typo.yaml"), "--sets", str(small_set), "--metrics", "psnr",
                 "--out", str(tmp_path / "typo"), "--quiet"]) == 2
    assert "no state dict under key 'net_g_typo'; its keys: params, params_ema" in capsys.readouterr().err


class Up(nn.Module):
    """No parameters: what it computes is an attribute, invisible to a state-dict hash."""

    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        return F.interpolate(x, scale_factor=4, mode=self.mode).clamp(0, 1)


def test_modules_with_equal_state_dicts_are_not_confused(small_set):
    near = ab.evaluate(Up("nearest"), sets=str(small_set), metrics="psnr", download=False)
    bil = ab.evaluate(Up("bilinear"), sets=str(small_set), metrics="psnr", download=False)
    near_s = ab.evaluate(Up("nearest"), sets=str(small_set), metrics="psnr", download=False, identity="nearest")
    bil_s = ab.evaluate(Up("bilinear"), sets=str(small_set), metrics="psnr", download=False, identity="bilinear")
    assert near.mean(str(small_set), "psnr") == near_s.mean(str(small_set), "psnr")
    assert bil.mean(str(small_set), "psnr") == bil_s.mean(str(small_set), "psnr")
    assert near.mean(str(small_set), "psnr") != bil.mean(str(small_set), "psnr")
    with pytest.raises(AesopBenchError, match="cache=True needs identity="):
        ab.evaluate(lambda lr: lr, sets=str(small_set), download=False, cache=True)


def test_non_finite_and_out_of_range_values_are_refused(small_set):
    hr = torch.rand(1, 3, 32, 32)
    patch = hr.clone()
    patch[..., 8:16, 8:16] = float("nan")
    psnr = ab.metric("psnr")
    for bad in (patch, torch.full_like(hr, float("nan")), torch.full_like(hr, float("inf"))):
        with pytest.raises(AesopBenchError, match="non-finite value"):
            psnr(bad, hr)
    with pytest.raises(AesopBenchError, match=r"\[0\.5, 1\.0000009\d*\]"):
        psnr(torch.full_like(hr, 0.5).index_fill_(-1, torch.tensor([0]), 1.000001), hr)
    with pytest.raises(AesopBenchError, match="empty"):
        psnr(torch.zeros(0, 3, 8, 8), torch.zeros(0, 3, 8, 8))

    class Net(nn.Module):
        def __init__(self, out):
            super().__init__()
            self.out = out

        def forward(self, x):
            y = F.interpolate(x, scale_factor=4, mode="nearest")
            return {"nan": y * float("nan"), "255": y * 255, "tuple": (y, y)}[self.out]

    for out, msg in (("nan", "baby.png: model 'Net' returned .* non-finite"),
                     ("255", r"baby.png: model 'Net' returned values in \[.*, 25\d\]"),
                     ("tuple", "returned a tuple, not a tensor")):
        with pytest.raises(AesopBenchError, match=msg):
            ab.evaluate(Net(out), sets=str(small_set), metrics="psnr", download=False)


def test_lr_psnr_checks_the_lr_size():
    sr = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    m = ab.metric("lr_psnr")
    with pytest.raises(AesopBenchError, match=r"lr \(1, 3, 20, 20\) does not match sr \(1, 3, 64, 64\) at x4"):
        m(sr, lr=torch.randint(0, 256, (1, 3, 20, 20), dtype=torch.uint8))
    assert m(sr, lr=torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)).shape == (1,)
