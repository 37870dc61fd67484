"""Deterministic stand-in weight files for every metric network, registered through a manifest.

The ImageNet backbones, the FID Inception, MANIQA, MUSIQ, CLIP and the AESOP auto-encoder cannot be
downloaded everywhere (tests and benchmarks run offline). Their architectures are built with fixed random
seeds and saved in the official key layouts; a manifest naming these files (with their sha256) is written
and put in ``$AESOP_BENCH_WEIGHTS_MANIFEST``, then every file is fetched into the cache through the
weights manager, exactly as real files would be. Where the real file is at hand it is used instead:
the LPIPS heads and DISTS alpha/beta shipped by their packages, and the NIQE pristine model.

The ImageNet backbones are saved with their ``features.*`` keys only (the classifier, which nothing uses and
the loaders drop, is most of their bytes), and each stand-in source file is deleted once the manager has
copied it into the cache, so that the files take their size on disk once.

Scores computed with stand-ins exercise the code and measure speed; they are not the metrics' values.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch


def _save(net_or_sd, path: Path, wrap: str | None = None) -> Path:
    sd = net_or_sd if isinstance(net_or_sd, dict) else net_or_sd.state_dict()
    torch.save({wrap: sd} if wrap else sd, path)
    return path


def write_manifest(files: dict, path: str | os.PathLike) -> Path:
    """A weights manifest for local files (``name -> path``): ``file://`` URLs and their sha256."""
    entries = [{"name": n, "file": Path(f).name, "urls": [Path(f).resolve().as_uri()],
                "sha256": hashlib.sha256(Path(f).read_bytes()).hexdigest(), "licence": "stand-in",
                "used_by": ["tests"]} for n, f in files.items()]
    path = Path(path)
    path.write_text(json.dumps({"entries": entries}, indent=1))
    return path


def _features_only(net) -> dict:
    return {k: v for k, v in net.state_dict().items() if k.startswith("features.")}


def make_standins(folder: str | os.PathLike, niqe_mat: str | os.PathLike | None = None,
                  which: tuple[str, ...] | None = None) -> Path:
    """Write stand-in files into ``folder`` and return the manifest path (already in the environment)."""
    import torchvision

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    want = set(which) if which else None

    def need(name):
        return want is None or name in want

    torch.manual_seed(0)
    if need("alexnet"):
        files["alexnet"] = _save(_features_only(torchvision.models.alexnet(weights=None)), folder / "alexnet-standin.pth")
    if need("vgg16"):
        files["vgg16"] = _save(_features_only(torchvision.models.vgg16(weights=None)), folder / "vgg16-standin.pth")
    if need("vgg19"):
        files["vgg19"] = _save(_features_only(torchvision.models.vgg19(weights=None)), folder / "vgg19-standin.pth")
    if need("pt_inception"):
        from aesop_bench.metrics.distribution import build_fid_inception

        files["pt_inception"] = _save(build_fid_inception(), folder / "pt_inception-standin.pth")
    if need("aesop_ae"):
        from aesop_bench.models.archs.autoencoder_arch import AutoEncoder

        files["aesop_ae"] = _save(AutoEncoder(), folder / "AE-standin.pth", wrap="params_ema")
    try:
        import pyiqa  # noqa: F401
        have_pyiqa = True
    except ImportError:
        have_pyiqa = False
    if have_pyiqa and need("musiq_koniq"):
        from pyiqa.archs.musiq_arch import MUSIQ

        files["musiq_koniq"] = _save(MUSIQ(pretrained=False), folder / "musiq-standin.pth")
    if have_pyiqa and need("maniqa_koniq"):
        from pyiqa.archs.maniqa_arch import MANIQA

        from aesop_bench.metrics.iqa import no_timm_pretrained

        with no_timm_pretrained():
            net = MANIQA(pretrained=False, train_dataset="koniq", scale=0.8)
        files["maniqa_koniq"] = _save(net, folder / "maniqa-standin.pth", wrap="params")
    if have_pyiqa and need("clip_rn50"):
        import clip.model

        net = clip.model.CLIP(embed_dim=1024, image_resolution=224, vision_layers=(3, 4, 6, 3), vision_width=64,
                              vision_patch_size=None, context_length=77, vocab_size=49408, transformer_width=512,
                              transformer_heads=8, transformer_layers=12)
        files["clip_rn50"] = _save(net, folder / "clip-rn50-standin.pth")
    real_files = {}
    try:
        import lpips

        real_files["lpips_alex_v0.1"] = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    except ImportError:
        pass
    try:
        import DISTS_pytorch

        real_files["dists_alpha_beta"] = Path(DISTS_pytorch.__file__).parent / "weights.pt"
    except ImportError:
        pass
    if niqe_mat:
        real_files["niqe_pristine"] = Path(niqe_mat)
    manifest = write_manifest(files, folder / "standin-manifest.json")
    os.environ["AESOP_BENCH_WEIGHTS_MANIFEST"] = str(manifest)

    from aesop_bench import weights as wm

    for n, p in files.items():
        wm.download(n, log=None)
        p.unlink()
    for n, p in real_files.items():
        if want is None or n in want:
            wm.add(n, p)
    return manifest
