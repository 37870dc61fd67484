"""LPIPS and DISTS against the reference packages given the same weights; real heads through the manager."""

from __future__ import annotations

import os
from pathlib import Path

import DISTS_pytorch as dists_pkg  # test dependencies: their absence fails
import lpips as lpips_pkg
import pytest
import torch
import torchvision

from aesop_bench import weights as wm
from aesop_bench.data.imresize import imresize
from aesop_bench.data.transforms import mod_crop
from aesop_bench.imageio import read_image
from aesop_bench.metrics import perceptual
from benchmarks.standins import write_manifest


def _pair(bench_root, name="butterfly"):
    hr = mod_crop(read_image(bench_root / "Set5" / "HR" / f"{name}.png"), 4)[None]
    sr = imresize(imresize(hr, 0.25), 4.0)
    return sr.float() / 255, hr.float() / 255


def _package_file(mod, *parts) -> Path:
    return Path(mod.__file__).parent.joinpath(*parts)


def test_lpips_equals_the_lpips_package(bench_root):
    torch.manual_seed(0)
    ref = lpips_pkg.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False).eval()
    alex = torchvision.models.alexnet(weights=None)
    alex.features.load_state_dict(_alex_features(ref))
    lin = torch.load(_package_file(lpips_pkg, "weights", "v0.1", "alex.pth"), map_location="cpu", weights_only=True)
    ours = perceptual.LPIPSAlex(alex.state_dict(), lin)
    x, y = _pair(bench_root)
    with torch.no_grad():
        want = ref(x, y, normalize=True).flatten()
        got = ours(x, y)
    assert torch.allclose(got, want, atol=1e-6, rtol=0), (got, want)


def _alex_features(ref) -> dict:
    # lpips keeps AlexNet's feature layers in five slices whose module names are the original indices.
    out = {}
    for name, t in ref.net.state_dict().items():
        _, idx, kind = name.split(".")  # sliceN.IDX.weight
        out[f"{idx}.{kind}"] = t
    return out


def test_dists_equals_the_dists_package(bench_root, monkeypatch):
    torch.manual_seed(1)
    vgg = torchvision.models.vgg16(weights=None)
    monkeypatch.setattr(dists_pkg.DISTS_pt.models, "vgg16", lambda *a, **k: vgg)  # no download: random weights
    ref = dists_pkg.DISTS(load_weights=False).eval()
    ab = torch.load(_package_file(dists_pkg, "weights.pt"), map_location="cpu", weights_only=True)
    ref.alpha.data, ref.beta.data = ab["alpha"], ab["beta"]
    ours = perceptual.DISTS(vgg.state_dict(), ab)
    x, y = _pair(bench_root, "bird")
    with torch.no_grad():
        want = ref(x, y, batch_average=False).flatten()
        got = ours(x, y)
    assert torch.allclose(got, want, atol=1e-6, rtol=0), (got, want)


@pytest.fixture(scope="module")
def _backbone_files(tmp_path_factory):
    """Deterministic random AlexNet and VGG16, made once, and their ``features.*`` saved (a file of only the
    features is what the metrics load; a tenth of the full file's bytes)."""
    torch.manual_seed(2)
    alex = torchvision.models.alexnet(weights=None)
    vgg = torchvision.models.vgg16(weights=None)
    folder = tmp_path_factory.mktemp("backbones")
    files = {}
    for name, model in (("alexnet", alex), ("vgg16", vgg)):
        files[name] = folder / f"{name}-standin.pth"
        torch.save({k: v for k, v in model.state_dict().items() if k.startswith("features.")}, files[name])
    return alex, vgg, files


@pytest.fixture()
def stand_in_backbones(_backbone_files, tmp_path, monkeypatch):
    """The random AlexNet and VGG16 (the ImageNet files cannot be fetched here) registered through a test
    manifest, next to the real LPIPS heads and DISTS alpha/beta of the shipped manifest."""
    alex, vgg, files = _backbone_files
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", str(write_manifest(files, tmp_path / "m.json")))
    return alex, vgg


def test_real_heads_and_stand_in_backbones_load_through_the_manager(stand_in_backbones, bench_root):
    alex, _ = stand_in_backbones
    with pytest.raises(Exception, match="aesop-bench weights add"):
        perceptual.lpips(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))
    for name in ("alexnet", "vgg16"):
        wm.download(name, log=None)
    wm.add("lpips_alex_v0.1", _package_file(lpips_pkg, "weights", "v0.1", "alex.pth"))
    wm.add("dists_alpha_beta", _package_file(dists_pkg, "weights.pt"))
    x, y = _pair(bench_root)
    lin = torch.load(_package_file(lpips_pkg, "weights", "v0.1", "alex.pth"), map_location="cpu", weights_only=True)
    direct = perceptual.LPIPSAlex(alex.state_dict(), lin)(x, y).double()
    assert torch.allclose(perceptual.lpips((x * 255).round().to(torch.uint8), (y * 255).round().to(torch.uint8)),
                          direct, atol=1e-6)
    d = perceptual.dists(x, y)
    assert d.shape == (1,) and 0 <= float(d) < 1


def test_eval_computes_lpips_and_dists(stand_in_backbones, bench_root, tmp_path):
    from aesop_bench.evaluation.config import EvalConfig, as_source
    from aesop_bench.evaluation.runner import run_evaluation as evaluate
    from aesop_bench.protocols import get_protocol

    for name in ("alexnet", "vgg16"):
        wm.download(name, log=None)
    wm.add("lpips_alex_v0.1", _package_file(lpips_pkg, "weights", "v0.1", "alex.pth"))
    wm.add("dists_alpha_beta", _package_file(dists_pkg, "weights.pt"))
    cfg = EvalConfig(source=as_source("bicubic"), sets=["set5"], metrics=["psnr", "lpips", "dists"],
                     protocol=get_protocol("basicsr"), data_root=bench_root, out_dir=tmp_path / "run",
                     progress=False, download=False, log=lambda m: None)
    out = evaluate(cfg)["sets"]["set5"]["metrics"]
    assert set(out) == {"psnr", "lpips", "dists"}
    x, y = _pair(bench_root, "baby")
    rows = (tmp_path / "run" / "per_image.csv").read_text().splitlines()
    baby = [r for r in rows if r.startswith("set5,baby,lpips,")][0]
    assert float(baby.split(",")[3]) == pytest.approx(float(perceptual.lpips(x, y)), abs=1e-6)


def _counting_features(cls: str, monkeypatch):
    """The stand-in backbones and the real heads registered; the network class, whose passes through the backbone
    (LPIPS's ``features``, DISTS's ``levels``, which its ``features`` and ``distance`` run) record their batch
    sizes in the returned list."""
    for n in ("alexnet", "vgg16"):
        wm.download(n, log=None)
    wm.add("lpips_alex_v0.1", _package_file(lpips_pkg, "weights", "v0.1", "alex.pth"))
    wm.add("dists_alpha_beta", _package_file(dists_pkg, "weights.pt"))
    net_cls = getattr(perceptual, cls)
    calls = []
    name = "levels" if cls == "DISTS" else "features"
    plain = getattr(net_cls, name)
    monkeypatch.setattr(net_cls, name, lambda self, x: calls.append(len(x)) or plain(self, x))
    return net_cls, calls


@pytest.mark.parametrize("name,cls", [("lpips", "LPIPSAlex"), ("dists", "DISTS")])
def test_the_hr_side_is_computed_once_per_image_for_every_model(stand_in_backbones, bench_root, monkeypatch, name,
                                                                 cls):
    from aesop_bench.metrics.metric import Metric

    net_cls, calls = _counting_features(cls, monkeypatch)
    _, hr = _pair(bench_root, "head")
    hr = (hr[..., :128, :128] * 255).round().to(torch.uint8)
    models = [imresize(imresize(hr, 0.25), 4.0), imresize(imresize(hr, 0.5), 2.0), hr.flip(-1)]

    def values(budget_gb):
        monkeypatch.setenv("AESOP_BENCH_HR_CACHE_GB", budget_gb)
        calls.clear()
        out = [Metric(name, "basicsr")(sr, hr) for sr in models]  # one metric object per model, as per run
        return out, len(calls)

    off, n_off = values("0")
    first, n_first = values("20")  # the first model marks the HR seen, the second writes its features
    again, n_again = values("20")  # every model reads them
    assert (n_off, n_first, n_again) == (6, 5, 3)  # SR and HR per model; HR twice; SR only
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(off, first, again))  # bit-identical
    direct = net_cls.from_manager()(models[0].float() / 255, hr.float() / 255).double()
    assert torch.equal(off[0], direct)  # the network the reference-package tests compare
    kept = list((Path(os.environ["AESOP_BENCH_HOME"]) / "hr_features").rglob("*.pt"))
    assert len(kept) == 1


def test_a_full_hr_cache_keeps_no_more_and_changes_nothing(stand_in_backbones, bench_root, monkeypatch):
    from aesop_bench.metrics.metric import Metric

    for n in ("alexnet",):
        wm.download(n, log=None)
    wm.add("lpips_alex_v0.1", _package_file(lpips_pkg, "weights", "v0.1", "alex.pth"))
    monkeypatch.setenv("AESOP_BENCH_HR_CACHE_GB", "1e-6")  # 1000 bytes: smaller than any image's features
    sr, hr = _pair(bench_root)
    got = Metric("lpips", "basicsr")(sr, hr)
    assert not list((Path(os.environ["AESOP_BENCH_HOME"]) / "hr_features").rglob("*.pt"))
    monkeypatch.setenv("AESOP_BENCH_HR_CACHE_GB", "lots")
    with pytest.raises(Exception, match="AESOP_BENCH_HR_CACHE_GB='lots'"):
        Metric("lpips", "basicsr")(sr, hr)
    monkeypatch.setenv("AESOP_BENCH_HR_CACHE_GB", "0")
    assert torch.equal(got, Metric("lpips", "basicsr")(sr, hr))


def test_a_disk_that_refuses_the_hr_cache_costs_nothing_but_the_cache(tmp_path):
    from aesop_bench.metrics import hrcache

    from aesop_bench.paths import hr_features_dir

    hr_features_dir().parent.mkdir(parents=True, exist_ok=True)
    hr_features_dir().write_bytes(b"")  # a file where the cache's folder would be: every write fails (OSError)
    cache = hrcache.HRCache("lpips-test", "cpu")
    calls = []
    hr = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    for _ in range(2):
        got = cache.get_batch(hr, lambda x: calls.append(1) or [torch.arange(3.0)[None]])
        assert torch.equal(got[0], torch.arange(3.0)[None])
    assert len(calls) == 2 and hr_features_dir().is_file()


@pytest.mark.parametrize("name,cls", [("lpips", "LPIPSAlex"), ("dists", "DISTS")])
def test_a_batch_equals_its_images_one_by_one_and_keeps_each_hr(stand_in_backbones, bench_root, monkeypatch, name,
                                                                cls):
    from aesop_bench.metrics.metric import Metric

    net_cls, calls = _counting_features(cls, monkeypatch)
    hrs = torch.cat([(_pair(bench_root, n)[1][..., :96, :96] * 255).round().to(torch.uint8)
                       for n in ("baby", "bird", "head", "woman")])
    srs = imresize(imresize(hrs, 0.25), 4.0)
    monkeypatch.setenv("AESOP_BENCH_HR_CACHE_GB", "0")
    singles = torch.cat([Metric(name, "basicsr")(srs[i], hrs[i]) for i in range(4)])
    monkeypatch.setenv("AESOP_BENCH_HR_CACHE_GB", "20")
    calls.clear()
    batched = Metric(name, "basicsr")(srs[:3], hrs[:3])
    assert calls == [3, 3]  # the three HR images in one call, then the three SR images
    assert torch.allclose(batched, singles[:3], atol=1e-6, rtol=0)
    kept = Path(os.environ["AESOP_BENCH_HOME"]) / "hr_features"
    assert not list(kept.rglob("*.pt"))  # seen once: nothing written yet
    assert torch.equal(Metric(name, "basicsr")(srs[:3], hrs[:3]), batched)  # seen again: written
    assert len(list(kept.rglob("*.pt"))) == 3  # one entry per image, not per batch
    calls.clear()
    assert torch.allclose(Metric(name, "basicsr")(srs[1:4], hrs[1:4]), singles[1:4], atol=1e-6, rtol=0)
    assert calls == [1, 3]  # the one HR image not kept, then the three SR images
    calls.clear()
    again = Metric(name, "basicsr")(srs[1:], hrs[1:])  # two HR images kept, one new
    assert calls == [1, 3]
    assert torch.allclose(again, singles[1:], atol=1e-6, rtol=0)
    assert torch.equal(again[:2], batched[1:])  # the kept HR sides are read back as they were computed


def test_an_image_too_small_for_the_network_is_named(stand_in_backbones, tmp_path):
    import aesop_bench as ab
    from aesop_bench.errors import AesopBenchError

    wm.download("alexnet", log=None)
    wm.add("lpips_alex_v0.1", _package_file(lpips_pkg, "weights", "v0.1", "alex.pth"))
    tiny = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8)
    with pytest.raises(AesopBenchError, match=r"lpips: the image \(8x8\) is too small for the metric's network"):
        ab.metric("lpips")(tiny, tiny)
