"""TOPIQ-NR, NIMA, PaQ-2-PiQ, LIQE and ARNIQA: our scores equal those of IQA-PyTorch's own networks given the same
(seeded random) weights, which reach ours through the weights manager in the published files' layouts; the registry
entries agree with IQA-PyTorch's table; the scores do not depend on the CPU thread count; the networks pass
gradients to their input.

The stand-in files are those of ``benchmarks/standins.py`` (in the published files' layouts, batch-norm statistics
random too; LIQE's CLIP a small ViT of the same layout).

pyiqa's networks are built directly (``pretrained=False`` and the stand-in file, its downloads replaced by the
same files) and run on one thread, as ours are: the scores are then equal to the last bit (measured: a maximum
difference of 0.0 for every metric and image here), and the tests ask for that. pyiqa's own TOPIQ-NR and ARNIQA on
two or three threads move by a few float32 ulp (measured on a 320x384 crop: 5.2e-8 and 2.4e-7 absolute, 6.7e-7 and
2.1e-7 relative), which is why ours run on one thread.
"""

from __future__ import annotations

import json

import pyiqa  # a test dependency: its absence fails  # noqa: F401
import pytest
import torch
import torch.nn.functional as F

import aesop_bench as ab
from aesop_bench import weights as wm
from aesop_bench.errors import AesopBenchError
from aesop_bench.imageio import read_image
from aesop_bench.metrics import iqa
from aesop_bench.metrics.registry import METRICS, Kind
from benchmarks.standins import SMALL_CLIP, no_imagenet, write_manifest, write_standins

NAMES = ("topiq_nr", "nima", "paq2piq", "liqe", "arniqa")
WEIGHTS = {"topiq_nr": ("topiq_nr_koniq",), "nima": ("nima_ava",), "paq2piq": ("paq2piq",),
           "liqe": ("liqe_koniq",), "arniqa": ("arniqa_encoder", "arniqa_regressor_koniq")}


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    folder = tmp_path_factory.mktemp("iqa-more-standins")
    files = write_standins(folder, which=tuple(n for names in WEIGHTS.values() for n in names))
    return folder, files, write_manifest(files, folder / "manifest.json")


@pytest.fixture
def registered(standins, monkeypatch):
    """The stand-ins registered through the weights manager (a manifest of them, fetched into a weights store
    these tests share); returns their files by weights name."""
    folder, files, manifest = standins
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(manifest))
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS", str(folder / "store"))
    for name in files:
        if wm.digest(name) is None:
            wm.download(name, log=None)
    return files


def _pyiqa_net(name: str, files: dict, monkeypatch, tmp_path):
    """IQA-PyTorch's own network of ``name``, built from the stand-in files, in eval mode."""
    with no_imagenet():
        if name == "topiq_nr":
            from pyiqa.archs.topiq_arch import CFANet

            net = CFANet(semantic_model_name="resnet50", model_name="cfanet_nr_koniq_res50", use_ref=False,
                         backbone_pretrain=False, pretrained=False, pretrained_model_path=str(files["topiq_nr_koniq"]))
        elif name == "nima":
            from pyiqa.archs.nima_arch import NIMA

            net = NIMA(base_model_name="inception_resnet_v2", pretrained=False,
                       pretrained_model_path=str(files["nima_ava"]))
        elif name == "paq2piq":
            from pyiqa.archs.paq2piq_arch import PAQ2PIQ

            net = PAQ2PIQ(pretrained=False, pretrained_model_path=str(files["paq2piq"]))
        elif name == "liqe":
            from pyiqa.archs import liqe_arch
            from pyiqa.archs.clip_model import build_model

            sd = torch.load(files["liqe_koniq"], weights_only=True)["params"]
            clip_sd = {k[len("clip_model."):]: v for k, v in sd.items() if k.startswith("clip_model.")}
            monkeypatch.setattr(liqe_arch, "load", lambda *a, **k: build_model(dict(clip_sd)).float())
            monkeypatch.setattr(liqe_arch, "DEFAULT_CACHE_DIR", str(tmp_path))  # its text features: computed afresh
            net = liqe_arch.LIQE(pretrained=False, pretrained_model_path=str(files["liqe_koniq"]))
        else:
            from pyiqa.archs import arniqa_arch

            enc = torch.load(files["arniqa_encoder"], weights_only=True)
            monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: enc)
            monkeypatch.setattr(arniqa_arch, "load_file_from_url", lambda *a, **k: str(files["arniqa_regressor_koniq"]))
            net = arniqa_arch.ARNIQA(regressor_dataset="koniq")
    return net.eval()


def _images(bench_root) -> list[torch.Tensor]:
    """uint8 (1, 3, H, W): two seeded random images (one under 224 pixels high) and three Set5 images."""
    g = torch.Generator().manual_seed(5)
    synthetic = [torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8, generator=g) for h, w in ((240, 320),
                                                                                                  (96, 192))]
    real = [read_image(bench_root / "Set5" / "HR" / f"{n}.png")[None] for n in ("bird", "butterfly")]
    head = read_image(bench_root / "Set5" / "HR" / "head.png")[None][..., :200, :260]  # 200 x 260: LIQE enlarges
    return synthetic + real + [head]


def _one_thread(fn):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            return fn()
    finally:
        torch.set_num_threads(n)


def _pyiqa_score(name, net, img: torch.Tensor) -> torch.Tensor:
    """pyiqa's score of a uint8 image as float in [0, 1]; LIQE's of an image with a side under 224 is of the image
    enlarged as pyiqa's uniform_crop enlarges one (pyiqa's LIQE refuses it as it is), on one thread too (bilinear
    resizing's last bit moves with the thread count)."""
    x = img.float() / 255
    if name == "liqe" and min(x.shape[-2:]) < 224:
        with pytest.raises(AssertionError, match="Short side is less than 224"):
            _one_thread(lambda: net(x))
        x = _one_thread(lambda: F.interpolate(x, scale_factor=225 / min(x.shape[-2:]), mode="bilinear"))
    return _one_thread(lambda: net(x)).flatten().double()


@pytest.mark.parametrize("name", NAMES)
def test_scores_equal_iqa_pytorch(name, registered, bench_root, monkeypatch, tmp_path):
    """The metric object (registry -> scorer -> our network from the manager's file) against pyiqa's network on
    the same weights: equal to the last bit."""
    ref = _pyiqa_net(name, registered, monkeypatch, tmp_path)
    m = ab.metric(name)
    assert "+w=" in m.version and m.version.startswith(METRICS[name].version)  # stand-ins: their hash is recorded
    worst = 0.0
    for img in _images(bench_root):
        ours, theirs = m(img), _pyiqa_score(name, ref, img)
        assert ours.dtype == torch.float64 and ours.shape == (1,) and bool(torch.isfinite(ours).all())
        worst = max(worst, float((ours - theirs).abs().max()))
    assert worst == 0.0, f"{name}: max |ours - pyiqa| = {worst}"


def test_liqe_text_features_come_from_the_loaded_weights(registered, monkeypatch, tmp_path):
    """pyiqa computes LIQE's prompt features after loading its checkpoint (and caches them in a file of its own);
    ours are those features, computed from the manager's file and not read from any cache."""
    from pyiqa.archs import liqe_arch

    ref = _pyiqa_net("liqe", registered, monkeypatch, tmp_path)
    stale = tmp_path / "stale"
    stale.mkdir()
    # what a cache of other weights would hold
    torch.save(torch.zeros(5, SMALL_CLIP["embed_dim"]), stale / "liqe_text_feat.pt")
    monkeypatch.setattr(liqe_arch, "DEFAULT_CACHE_DIR", str(stale))
    ours = iqa.build("liqe").net
    assert torch.equal(ours.text_features, ref.text_features.detach())
    assert not ours.text_features.requires_grad


@pytest.mark.parametrize("name", NAMES)
def test_scores_do_not_depend_on_the_thread_count(name, registered, bench_root):
    net = iqa.build(name)
    before = torch.get_num_threads()
    try:
        for img in _images(bench_root)[1:3]:  # one under 224 pixels high, one Set5 image
            got = {}
            for n in (1, 2, 3):
                torch.set_num_threads(n)
                got[n] = iqa.score(name, img, net=net).tolist()
            assert got[1] == got[2] == got[3], (name, tuple(img.shape), got)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("name", NAMES)
def test_the_network_passes_gradients_to_its_input(name, registered):
    """What a loss needs: ``iqa.build(name)`` is an nn.Module in eval mode whose score is differentiable in the
    image."""
    net = iqa.build(name)
    assert isinstance(net, torch.nn.Module) and not net.training
    x = (torch.rand(1, 3, 230, 250, generator=torch.Generator().manual_seed(6))).requires_grad_()
    net(x).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0


def test_registry_entries_agree_with_iqa_pytorch():
    """Each name is a no-reference metric of pyiqa's table with its direction (higher is better for all five),
    and its manifest entries name the files pyiqa 0.1.16 downloads, at the URLs it downloads them from."""
    from pyiqa.archs import arniqa_arch, liqe_arch, nima_arch, paq2piq_arch, topiq_arch
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    from aesop_bench.weights.manifest import shipped

    urls = {"topiq_nr_koniq": topiq_arch.default_model_urls["cfanet_nr_koniq_res50"],
            "nima_ava": nima_arch.default_model_urls["inception_resnet_v2-ava"],
            "paq2piq": paq2piq_arch.default_model_urls["url"],
            "liqe_koniq": liqe_arch.default_model_urls["koniq"],
            "arniqa_encoder": arniqa_arch.default_model_urls["ARNIQA"],
            "arniqa_regressor_koniq": arniqa_arch.default_model_urls["koniq"]}
    # pyiqa's defaults are the variants built here
    assert DEFAULT_CONFIGS["topiq_nr"]["metric_opts"]["model_name"] == "cfanet_nr_koniq_res50"
    assert DEFAULT_CONFIGS["nima"]["metric_opts"]["base_model_name"] == "inception_resnet_v2"
    assert DEFAULT_CONFIGS["liqe"]["metric_opts"]["pretrained"] == "koniq"
    assert DEFAULT_CONFIGS["arniqa"]["metric_opts"]["regressor_dataset"] == "koniq"
    assert set(NAMES) <= set(METRICS)
    for name in NAMES:
        spec, theirs = METRICS[name], DEFAULT_CONFIGS[name]
        assert spec.kind == Kind.NO_REFERENCE and theirs["metric_mode"] == "NR"
        assert spec.lower_better is False and theirs.get("lower_better", False) is False
        assert spec.weights == WEIGHTS[name] and spec.gflop is not None
    for wname, url in urls.items():
        e = shipped()[wname]
        assert e.urls[0] == url and e.file == url.rsplit("/", 1)[-1], (wname, e.urls, url)
        prefix = e.file.rsplit("-", 1)[-1].split(".")[0] if "-" in e.file else None
        assert e.sha256 is None and e.sha256_prefix == prefix, (wname, e.sha256_prefix)


def test_eval_command_stores_the_metric_objects_values(registered, bench_root, tmp_path, capsys):
    """``aesop-bench eval --metrics topiq_nr,nima,paq2piq,liqe,arniqa`` stores, for each image, the value the metric
    object gives on the SR image it wrote, under the metric's version."""
    import csv

    from PIL import Image

    from aesop_bench.cli import main
    from aesop_bench.data.sets import sr_subfolder

    folder = tmp_path / "mini"
    (folder / "HR").mkdir(parents=True)
    for n in ("baby", "bird"):
        Image.fromarray(read_image(bench_root / "Set5" / "HR" / f"{n}.png")[:, :192, :228].permute(1, 2, 0)
                        .numpy()).save(folder / "HR" / f"{n}.png")
    out = tmp_path / "run"
    assert main(["eval", "--model", "bicubic", "--sets", str(folder), "--metrics", ",".join(NAMES), "--out",
                 str(out), "--quiet", "--save-sr"]) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["metric"] for r in rows} == set(NAMES) and len(rows) == 2 * len(NAMES)
    for r in rows:
        m = ab.metric(r["metric"])
        assert r["version"] == summary["metric_versions"][r["metric"]] == m.version
        sr = read_image(out / "sr" / sr_subfolder(str(folder)) / f"{r['image']}.png")
        assert float(m(sr)[0]) == float(r["value"]), r


def test_arniqa_reads_its_regressor_without_jit_load(registered, monkeypatch):
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("torch.jit.load was called"))
    reg = iqa.build("arniqa").layer.regressor
    assert tuple(reg.weights.shape) == (1, 4096) and reg.biases.shape == ()


def test_a_checkpoint_without_its_backbone_is_refused(registered, tmp_path):
    """The checkpoints replace the ImageNet backbones entirely: a file lacking the backbone is an error naming
    the missing keys, not a network with random backbone weights."""
    sd = torch.load(registered["topiq_nr_koniq"], weights_only=True)["params"]
    partial = tmp_path / "topiq-no-backbone.pth"
    torch.save({"params": {k: v for k, v in sd.items() if not k.startswith("semantic_model.")}}, partial)
    with pytest.raises(AesopBenchError, match=r"missing keys: semantic_model\."):
        iqa.build("topiq_nr", str(partial))


@pytest.mark.parametrize("name", NAMES)
def test_missing_weights_name_the_add_command(name):
    with pytest.raises(AesopBenchError, match=f"aesop-bench weights add {WEIGHTS[name][0]}"):
        iqa.build(name)
