"""The model zoo: every entry loads a checkpoint in its official key layout (random values); strict key
checks; network interpolation; tiled inference; a zoo model through the evaluator."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from aesop_bench import weights
from aesop_bench.errors import AesopBenchError
from aesop_bench.models import zoo
from aesop_bench.models.archs.drct_arch import DRCT
from aesop_bench.models.archs.rrdbnet_arch import RRDBNet
from aesop_bench.models.archs.spsr_arch import SPSRNet
from aesop_bench.models.archs.swinir_arch import SwinIR
from benchmarks.standins import write_manifest


def _load(name, arch=None):
    return zoo.build_model(zoo.resolve_model(name, arch))


def _random_sd(net, seed):
    """Random values under the network's own key names; keys that name one tensor twice stay equal."""
    g = torch.Generator().manual_seed(seed)
    made, out = {}, {}
    for k, v in net.state_dict().items():
        if v.data_ptr() not in made:
            made[v.data_ptr()] = torch.randn(v.shape, generator=g) * 0.02 if v.is_floating_point() else v.clone()
        out[k] = made[v.data_ptr()]
    return out


def _to_esrgan_repo(sd):
    """BasicSR names -> the ESRGAN repository's (RRDB_trunk, trunk_conv, upconv, HRconv)."""
    out = {}
    for k, v in sd.items():
        k = re.sub(r"^body\.", "RRDB_trunk.", k)
        k = re.sub(r"\.rdb(\d)\.", r".RDB\1.", k)
        k = k.replace("conv_body.", "trunk_conv.").replace("conv_up1.", "upconv1.").replace("conv_up2.", "upconv2.")
        out[k.replace("conv_hr.", "HRconv.")] = v
    return out


def _to_old_esrgan(sd):
    """BasicSR names -> the first ESRGAN release's sequential names (model.0, model.1.sub.N.RDBj.convk.0)."""
    fixed = {"conv_first.": "model.0.", "conv_body.": "model.1.sub.23.", "conv_up1.": "model.3.",
             "conv_up2.": "model.6.", "conv_hr.": "model.8.", "conv_last.": "model.10."}
    out = {}
    for k, v in sd.items():
        m = re.match(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(\w+)", k)
        if m:
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{m[4]}"] = v
            continue
        prefix = next(p for p in fixed if k.startswith(p))
        out[fixed[prefix] + k[len(prefix):]] = v
    return out


@pytest.fixture()
def register(tmp_path, monkeypatch):
    files = {}

    def add(name, obj):
        files[name] = tmp_path / f"{name}.pth"
        torch.save(obj, files[name])
        monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(write_manifest(files, tmp_path / "zoo-manifest.json")))
        return files[name]
    return add


LAYOUTS = {  # zoo name -> (architecture, how its official file stores the weights)
    "rrdb_psnr": ("rrdb", "basicsr_both"), "ldl_rrdb": ("rrdb", "basicsr_both"),
    "aesop_rrdb": ("rrdb", "basicsr_both"), "aesop_rrdb256": ("rrdb", "basicsr_both"),
    "real_ldl_rrdb": ("rrdb", "basicsr_both"), "real_aesop_rrdb": ("rrdb", "basicsr_both"),
    "swinir_psnr": ("swinir", "params"), "ldl_swinir": ("swinir", "basicsr_both"),
    "aesop_swinir": ("swinir", "basicsr_both"), "esrgan": ("rrdb", "esrgan_repo"), "spsr": ("spsr", "raw"),
    # KAIR's BSRGAN.pth: a raw state dict in the ESRGAN repository's names; RealESRGAN_x4plus.pth: params_ema only
    "bsrgan": ("rrdb", "esrgan_repo"), "realesrgan": ("rrdb", "ema_only"),
    "aesop_drct": ("drct", "basicsr_both"), "ldl_drct": ("drct", "basicsr_both"),
}
NETS = {"rrdb": RRDBNet, "swinir": SwinIR, "spsr": SPSRNet, "drct": DRCT}


def test_every_zoo_network_has_its_layout_test():
    assert {n for n, e in zoo.ZOO.items() if e.weights and e.arch in NETS} == set(LAYOUTS)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_zoo_entry_loads_its_official_layout(name, register):
    arch, layout = LAYOUTS[name]
    net = NETS[arch]()
    ema, plain = _random_sd(net, 1), _random_sd(net, 2)
    obj = {"params_ema": ema, "params": plain} if layout == "basicsr_both" else \
        {"params": plain} if layout == "params" else {"params_ema": plain} if layout == "ema_only" else \
        _to_esrgan_repo(plain) if layout == "esrgan_repo" else plain
    register(zoo.ZOO[name].weights, obj)
    model = _load(name)
    want = ema if layout == "basicsr_both" else plain
    got = model.net.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert model.identity.startswith(f"{arch}[")


def test_the_first_esrgan_layout_converts(register):
    plain = _random_sd(RRDBNet(), 3)
    old = _to_old_esrgan(plain)
    assert "model.1.sub.22.RDB3.conv5.0.weight" in old and "model.10.bias" in old
    register("esrgan_official", old)
    got = _load("esrgan").net.state_dict()
    assert all(torch.equal(got[k], plain[k]) for k in plain)


def test_key_mismatch_lists_missing_and_unexpected(tmp_path):
    p = tmp_path / "rrdb.pth"
    torch.save({"params_ema": _random_sd(RRDBNet(), 4)}, p)
    with pytest.raises(AesopBenchError, match=r"missing keys: .*unexpected keys: .*body\.0\.rdb1"):
        _load(str(p), arch="swinir")
    with pytest.raises(AesopBenchError, match="needs --arch"):
        _load(str(p))


def test_model_card(tmp_path):
    sd = _random_sd(RRDBNet(), 5)
    torch.save({"params": sd}, tmp_path / "w.pth")
    (tmp_path / "card.yaml").write_text("name: mine\narch: rrdb\nweights: w.pth\nkey: params\n")
    got = _load(str(tmp_path / "card.yaml")).net.state_dict()
    assert torch.equal(got["conv_last.weight"], sd["conv_last.weight"])
    (tmp_path / "bad.yaml").write_text("arch: rrdb\nweights: w.pth\ncolour: blue\n")
    with pytest.raises(AesopBenchError, match="colour"):
        _load(str(tmp_path / "bad.yaml"))


def test_network_interpolation(register):
    a, b = _random_sd(RRDBNet(), 6), _random_sd(RRDBNet(), 7)
    register("rrdb_psnr", {"params_ema": a})
    register("esrgan_official", _to_esrgan_repo(b))
    got = _load("interp:rrdb_psnr,esrgan@0.3").net.state_dict()
    for k in ("conv_first.weight", "body.5.rdb2.conv3.bias", "conv_last.weight"):
        assert torch.allclose(got[k], 0.7 * a[k] + 0.3 * b[k], atol=1e-7)
    assert zoo.identity_of(zoo.resolve_model("interp:rrdb_psnr,esrgan@0.3"), 4).startswith("interp(rrdb[")
    register("swinir_m_x4", {"params": _random_sd(SwinIR(), 8)})
    with pytest.raises(AesopBenchError, match="must share an architecture"):
        _load("interp:rrdb_psnr,swinir_psnr@0.5")
    with pytest.raises(AesopBenchError, match="interp:A,B@ALPHA"):
        _load("interp:rrdb_psnr")


def test_tiling_is_exact_within_the_receptive_margin():
    from aesop_bench.models.inference import tiled_forward

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 1, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 48, 3, 1, 1),
                              torch.nn.PixelShuffle(4)).eval()  # receptive radius 2 LR pixels
    x = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        whole = net(x)
        for tile, overlap in ((16, 4), (24, 8), (64, 8)):
            assert torch.allclose(tiled_forward(net, x, 4, tile, overlap), whole, atol=1e-7)
        assert (tiled_forward(net, x, 4, 16, 0) - whole).abs().max() > 1e-3  # no margin: tile borders show


def test_zoo_model_through_the_evaluator(register, tmp_path):
    from aesop_bench.protocols import get_protocol
    from aesop_bench.evaluation.config import EvalConfig, as_source
    from aesop_bench.evaluation.runner import run_evaluation as evaluate
    from aesop_bench.models.options import RunOptions

    register("rrdb_psnr", {"params_ema": _random_sd(RRDBNet(), 9)})
    folder = tmp_path / "mini"
    (folder / "HR").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for n in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(folder / "HR" / f"{n}.png")

    from aesop_bench.data.sets import sr_subfolder

    def run(out, download=True, **kw):
        cfg = EvalConfig(source=as_source("rrdb_psnr"), sets=[str(folder)], metrics=["psnr", "ssim"],
                         protocol=get_protocol("basicsr"), data_root=tmp_path, out_dir=tmp_path / out,
                         progress=False, download=download, log=lambda m: None, save_sr=True, **kw)
        return evaluate(cfg)

    # --no-download covers weights as well as sets: nothing is fetched, and the error says what to run
    with pytest.raises(AesopBenchError, match="weights download rrdb_psnr"):
        run("offline", download=False)
    assert not weights.cache_path(weights.entry("rrdb_psnr")).exists()
    whole = run("whole")
    assert (tmp_path / "whole" / "sr" / sr_subfolder(str(folder)) / "a.png").is_file()
    assert whole["model"]["identity"].startswith("rrdb[")
    tiled = run("tiled", run=RunOptions(tile=8, tile_overlap=4))
    assert tiled["model"]["identity"].endswith("-tile8o4")
    bf16 = run("bf16", run=RunOptions(precision="bf16"))
    assert bf16["model"]["precision"] == "bf16" and bf16["model"]["identity"].endswith("-bf16")


def test_spsr_names_and_size():
    """The authors' flattened trunk (model.N), its duplicated HR_conv0_new, and the gradient branch names."""
    net = SPSRNet()
    sd = net.state_dict()
    for key in ("model.0.weight", "model.1.sub.22.RDB3.conv5.0.weight", "model.1.sub.23.weight", "model.3.weight",
                "model.6.weight", "model.8.weight", "HR_conv0_new.0.weight", "HR_conv1_new.0.weight",
                "get_g_nopadding.weight_h", "b_block_4.RDB1.conv1.0.weight", "b_module.8.weight", "conv_w.0.weight",
                "f_block.RDB3.conv5.0.bias", "f_HR_conv1.0.weight"):
        assert key in sd, key
    assert torch.equal(sd["model.8.weight"], sd["HR_conv0_new.0.weight"])
    assert round(sum(p.numel() for p in net.parameters()) / 1e6, 2) == 24.80
    with torch.no_grad():
        branch, out, grad = net.eval().forward_all(torch.rand(1, 3, 12, 10))
    assert out.shape == branch.shape == (1, 3, 48, 40) and grad.shape == (1, 3, 12, 10)
