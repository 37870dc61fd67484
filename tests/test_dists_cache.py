"""DISTS's HR side, computed once and kept small, gives the values it gave before, bit for bit.

* The reference (six levels, then each level's channel means and variances, computed once) gives the values of
  the formula that recomputes the HR's moments for every SR (DISTS_pytorch's, as this project computed it before;
  transcribed below), bit for bit.
* The HR cache's packed entries (a ReLU level's zeros as bits) read back bit for bit, -0.0 included, so a value
  computed from a cached HR side equals the uncached one bit for bit (not merely within the 1e-6 that
  tests/test_perceptual.py allows against DISTS_pytorch).
* A full HR cache says so, once per metric and process.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import DISTS_pytorch as dists_pkg
import pytest
import torch
import torchvision

from aesop_bench import weights as wm
from aesop_bench.cache import TENSORS, Store
from aesop_bench.data.imresize import imresize
from aesop_bench.metrics import perceptual
from aesop_bench.metrics.hrcache import SPARSE_TENSORS, HRCache, HRCacheFull
from tests.test_perceptual import _backbone_files, _pair, stand_in_backbones  # noqa: F401 (fixtures)


def _alpha_beta() -> dict:
    return torch.load(Path(dists_pkg.__file__).parent / "weights.pt", map_location="cpu", weights_only=True)


def _recomputing_distance(net: perceptual.DISTS, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """DISTS as this project computed it before the HR's moments were kept: both images' levels, and every
    mean, variance and covariance computed here from them (DISTS_pytorch's ``forward``, one value per image)."""
    c1 = c2 = 1e-6
    w_sum = net.alpha.sum() + net.beta.sum()
    alpha = torch.split(net.alpha / w_sum, list(perceptual.DISTS_CHANNELS), dim=1)
    beta = torch.split(net.beta / w_sum, list(perceptual.DISTS_CHANNELS), dim=1)
    feats = []
    for img in (x, y):
        h = (img - net.mean) / net.std
        out = [img]
        for s in net.stages:
            h = s(h)
            out.append(h)
        feats.append(out)
    d1 = d2 = 0
    for k, (fx, fy) in enumerate(zip(*feats)):
        mx = fx.mean(dim=(2, 3), keepdim=True)
        my = fy.mean(dim=(2, 3), keepdim=True)
        s1 = (2 * mx * my + c1) / (mx ** 2 + my ** 2 + c1)
        d1 = d1 + (alpha[k] * s1).sum(1, keepdim=True)
        vx = ((fx - mx) ** 2).mean(dim=(2, 3), keepdim=True)
        vy = ((fy - my) ** 2).mean(dim=(2, 3), keepdim=True)
        cov = (fx * fy).mean(dim=(2, 3), keepdim=True) - mx * my
        s2 = (2 * cov + c2) / (vx + vy + c2)
        d2 = d2 + (beta[k] * s2).sum(1, keepdim=True)
    return (1 - (d1 + d2)).flatten()


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view({4: torch.int32, 8: torch.int64, 2: torch.int16, 1: torch.uint8}[t.element_size()])


def test_the_kept_moments_give_the_recomputing_formula_bit_for_bit(bench_root):
    torch.manual_seed(5)
    net = perceptual.DISTS(torchvision.models.vgg16(weights=None).state_dict(), _alpha_beta())
    g = torch.Generator().manual_seed(0)
    x, y = _pair(bench_root, "bird")
    cases = [(x[..., :88, :120], y[..., :88, :120])]
    rand = torch.rand(2, 3, 61, 75, generator=g)
    cases.append((rand, (rand + 0.2 * torch.rand(rand.shape, generator=g)).clamp(0, 1)))
    with torch.no_grad():
        for sr, hr in cases:
            want = _recomputing_distance(net, sr, hr)
            ref = net.reference(hr)
            assert len(ref) == 18 and [t.shape[1] for t in ref[6:12]] == list(perceptual.DISTS_CHANNELS)
            assert torch.equal(net.distance(sr, ref), want)
            assert torch.equal(net(sr, hr), want)


def _tensors() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    relu = torch.relu(torch.randn(1, 64, 33, 35, generator=g))  # half zeros
    relu.view(-1)[::97] = -0.0  # a ReLU may give -0.0 (its sign bit set): kept as it is
    return [relu, torch.randn(1, 3, 33, 35, generator=g),  # no zeros: kept as it is
            torch.zeros(1, 8, 9, 9), torch.relu(torch.randn(1, 5, 1, 1, generator=g)),  # all zeros; tiny
            torch.relu(torch.randn(2, 16, 20, 20, dtype=torch.float64, generator=g))]  # not float32: as it is


def test_packed_entries_read_back_bit_for_bit_and_smaller(tmp_path):
    key = "ab" * 32
    value = _tensors()
    packed, plain = (Store("hr_features", tmp_path / name, codec) for name, codec in
                     (("packed", SPARSE_TENSORS), ("plain", TENSORS)))
    assert packed.put(key, value) and plain.put(key, value)
    back = packed.get(key)
    assert [(t.dtype, t.shape) for t in back] == [(t.dtype, t.shape) for t in value]
    assert all(torch.equal(_bits(a), _bits(b)) for a, b in zip(back, value))
    assert int(_bits(back[0]).eq(_bits(torch.tensor(-0.0))).sum()) > 0
    # the ReLU level: its nonzero values (4 bytes each) and one bit per value, where 4 bytes per value were
    n, nonzero = value[0].numel(), int(_bits(value[0]).ne(0).sum())
    saved = 4 * n - (4 * nonzero + (n + 7) // 8) + 4 * value[2].numel() - (value[2].numel() + 7) // 8
    size = {s: s.path(key).stat().st_size for s in (packed, plain)}
    assert size[plain] - size[packed] > 0.95 * saved


def _register():
    wm.download("vgg16", log=None)
    wm.add("dists_alpha_beta", Path(dists_pkg.__file__).parent / "weights.pt")


@pytest.mark.usefixtures("stand_in_backbones")
def test_the_cached_path_equals_the_uncached_path_bit_for_bit(bench_root, monkeypatch):
    from aesop_bench.metrics.metric import Metric

    _register()
    hrs = torch.cat([(_pair(bench_root, n)[1][..., :80, :96] * 255).round().to(torch.uint8) for n in ("baby", "head")])
    models = [imresize(imresize(hrs, 0.25), 4.0), imresize(imresize(hrs, 0.5), 2.0), hrs.flip(-1)]

    def values(budget_gb):  # one metric object per model, as per run; each image its own HR entry
        monkeypatch.setenv("AESOP_BENCH_HR_CACHE_GB", budget_gb)
        out = []
        for sr in models:
            m = Metric("dists", "basicsr")
            out.append(torch.cat([m(sr[i], hrs[i]) for i in range(len(hrs))]))
        return out

    uncached = values("0")
    first = values("20")  # model 1 marks each HR seen, model 2 writes its entry, model 3 reads it back
    kept = sorted((Path(os.environ["AESOP_BENCH_HOME"]) / "hr_features").rglob("*.pt"))
    again = values("20")  # every model reads them
    for got in (first, again):
        assert all(torch.equal(a, b) for a, b in zip(got, uncached))
    assert len(kept) == 2 and all(p.parts[-4].endswith("-ref2-sparse") for p in kept)
    plain = sum(t.numel() * t.element_size() for t in perceptual.hr_side(perceptual.DISTS.from_manager(), hrs[:1]))
    assert all(p.stat().st_size < 0.7 * plain for p in kept)  # the levels are half zeros with these weights


def _told(fn) -> int:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fn()
    return sum(issubclass(w.category, HRCacheFull) for w in seen)


def test_a_full_hr_cache_says_so_once_per_metric(monkeypatch):
    monkeypatch.setenv("AESOP_BENCH_HR_CACHE_GB", "1e-6")  # 1000 bytes: smaller than one entry
    hrs = torch.arange(4 * 3 * 8 * 8, dtype=torch.uint8).reshape(4, 3, 8, 8)
    big = HRCache("dists-test", "cpu", write_on_second_put=True, codec=SPARSE_TENSORS)

    def side(x):
        return [torch.ones(len(x), 4000)]

    assert _told(lambda: big.get_batch(hrs[:1], side)) == 0  # seen once: a marker, and room for more
    with pytest.warns(HRCacheFull, match=r"no room left in its budget of 1e-06 GB \(\$AESOP_BENCH_HR_CACHE_GB\).*"
                                         r"the HR side of dists-test is computed again for every model"):
        big.get_batch(hrs[:1], side)  # seen again: its entry does not fit
    assert _told(lambda: [big.get_batch(hrs[i:i + 1], side) for i in range(4) for _ in range(2)]) == 0
    other = HRCache("lpips-test", "cpu", write_on_second_put=True)
    assert _told(lambda: [other.get_batch(hrs[i:i + 1], side) for i in range(2)]) == 1  # its own notice, once
    monkeypatch.setenv("AESOP_BENCH_HR_CACHE_GB", "20")
    roomy = HRCache("ae_psnr-test", "cpu")
    assert _told(lambda: [roomy.get_batch(hrs[i:i + 1], side) for i in range(4)]) == 0
