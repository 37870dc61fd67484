"""The scorer of every registered metric: :func:`build` makes it for a metric's spec and a
:class:`~aesop_bench.metrics.registry.MetricContext`, following the registry's contract (per-image metrics
``scorer(sr, hr, lr) -> float64 (N,)``; distribution metrics ``scorer(imgs) -> [features, ...]``).

Each maker imports its family's module (and torch) only when it runs, and the networks a scorer needs are built on
its first use and kept by it (:class:`LazyNet`). The HR side of LPIPS, DISTS and AE-PSNR is kept on disk by an
:class:`~aesop_bench.metrics.hrcache.HRCache` named after the metric's version and weights.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from .version import ae_tag, weights_tag


class LazyNet:
    """A network built on first use and kept by the scorer that owns it."""

    def __init__(self, build: Callable[[], Any]):
        self._build, self._net = build, None

    def __call__(self):
        if self._net is None:
            self._net = self._build()
        return self._net


def _psnr(spec, ctx):
    from .fidelity import psnr

    p = ctx.protocol
    return lambda sr, hr, lr: psnr(sr, hr, p.effective_crop_border, True, p.y_round, p.psnr_eps)


def _ssim(spec, ctx):
    from .fidelity import ssim

    p = ctx.protocol
    return lambda sr, hr, lr: ssim(sr, hr, p.effective_crop_border, True, p.y_round)


def _lr_psnr(spec, ctx):
    from .fidelity import lr_psnr

    s = ctx.protocol.scale

    def fn(sr, hr, lr):
        # an SR larger than LR x scale (a result folder's image of the HR's size) is compared on the area the
        # LR covers, so that the downscaling is exactly 1/scale
        return lr_psnr(sr[..., : lr.shape[-2] * s, : lr.shape[-1] * s], lr, ctx.protocol.y_round, ctx.protocol.psnr_eps)
    return fn


def _perceptual(spec, ctx):
    """LPIPS or DISTS, whose HR side is kept by an HR cache on the CPU."""
    from . import perceptual

    cls = {"lpips": perceptual.LPIPSAlex, "dists": perceptual.DISTS}[spec.name]
    net = LazyNet(lambda: cls.from_manager().to(ctx.device))
    score = _with_hr_side(lambda hr: perceptual.hr_side(net(), hr),
                          lambda sr, fy: perceptual.from_hr_side(net(), sr, fy),
                          # on the CPU only: on a GPU the HR forward costs less than reading its feature maps
                          # back (a 2040x1356 image has 1.4 GB of DISTS features)
                          _hr_cache(spec, ctx) if str(ctx.device) == "cpu" else None)
    return lambda sr, hr, lr: score(sr.to(ctx.device), hr.to(ctx.device)).cpu()


# what DISTS's HR cache entries hold, in their folder's name (entries of another layout are never read): its
# reference (the six levels, then their channel means and variances) with the levels' zeros packed (v1, unnamed:
# the six levels as computed)
DISTS_HR_LAYOUT = "ref2-sparse"


def _hr_cache(spec, ctx):
    """The HR cache of LPIPS or DISTS, named after the metric's version and weights (None without the weights);
    written from an image's second model on (large feature maps of a cheap network: see hrcache)."""
    from .hrcache import SPARSE_TENSORS, HRCache

    tag = weights_tag(spec.weights)
    if not tag:
        return None
    if spec.name == "dists":
        return HRCache(f"{spec.version}-{tag}-{DISTS_HR_LAYOUT}", ctx.device, write_on_second_put=True,
                       codec=SPARSE_TENSORS)
    return HRCache(f"{spec.version}-{tag}", ctx.device, write_on_second_put=True)


def _with_hr_side(hr_side, from_hr_side, cache):
    """A metric given as its pure HR side and comparison, with the HR side kept by ``cache`` (None: computed)."""
    if cache is None:
        return lambda sr, hr: from_hr_side(sr, hr_side(hr))
    return cache.around(hr_side, from_hr_side)


def _ae_psnr(spec, ctx):
    from .ae import ae_hr_side, ae_psnr_from_hr_side, build_ae
    from .hrcache import HRCache

    p = ctx.protocol
    net = LazyNet(lambda: build_ae(ctx.options["ae"]).to(ctx.device).eval().requires_grad_(False))
    # AE(HR) is the same for every model evaluated on a set: kept on disk under the AE's hash
    tag = ae_tag(ctx.options["ae"])
    cache = None if tag.endswith("unavailable") else HRCache(f"ae_psnr-{tag}", ctx.device)
    # the AE's outputs are floats: their Y is never rounded (the authors' calculate_aepsnr_pytorch), whatever the
    # protocol does with 8-bit images
    score = _with_hr_side(lambda hr: ae_hr_side(net(), hr),
                          lambda sr, ae_hr: ae_psnr_from_hr_side(sr, ae_hr, net(), p.effective_crop_border, False,
                                                                 p.psnr_eps), cache)
    return lambda sr, hr, lr: score(sr, hr)


def _niqe(spec, ctx):
    from .. import weights as wm
    from .niqe import load_pristine, niqe

    model = LazyNet(lambda: load_pristine(wm.get("niqe_pristine", download_missing=False)))
    return lambda sr, hr, lr: niqe(sr, crop_border=ctx.protocol.effective_niqe_crop, color_space="yiq",
                                   pristine=model())


def _iqa(spec, ctx):
    from .iqa import build, score

    net = LazyNet(lambda: build(spec.name).to(ctx.device))
    split = ctx.options.get("split_above")
    return lambda sr, hr, lr: score(spec.name, sr, ctx.device, split_above=split, net=net())


def _features(view: str, spec, ctx):
    from .distribution import extractor, images_features

    mode = ctx.options["fid_mode"]
    net = LazyNet(lambda: extractor(ctx.device, mode))
    return lambda imgs: images_features(imgs, view, ctx.device, mode, net=net)


# every registered metric's scorer maker (the contract test checks that each metric has one)
MAKERS: dict[str, Callable] = {
    "psnr": _psnr, "ssim": _ssim, "lr_psnr": _lr_psnr, "lpips": _perceptual, "dists": _perceptual,
    "ae_psnr": _ae_psnr, "niqe": _niqe, "maniqa": _iqa, "musiq": _iqa, "clipiqa": _iqa,
    "topiq_nr": _iqa, "nima": _iqa, "paq2piq": _iqa, "liqe": _iqa, "arniqa": _iqa,
    "fid": partial(_features, "whole"), "pfid": partial(_features, "patch"),
}


def build(spec, ctx) -> Callable:
    """The scorer of the metric ``spec`` (a registry entry) for ``ctx`` (a MetricContext)."""
    return MAKERS[spec.name](spec, ctx)
