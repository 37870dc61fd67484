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

IQA-PyTorch's TOPIQ-NR, NIMA, PaQ-2-PiQ, LIQE and ARNIQA stand-ins are in the layouts of the published files:
TOPIQ-NR, NIMA and LIQE as ``{"params": state_dict}``, PaQ-2-PiQ a plain state dict, ARNIQA's encoder ``model.*`` and
``projector.*`` and its regressor a TorchScript archive of sk2torch's ``TorchLinearRegression``. Their batch-norm
statistics are random too, and each is made from seeds of its own, so that a file does not depend on which others
are made with it. LIQE's CLIP is a small ViT of the same layout (:data:`SMALL_CLIP`: 224-pixel input, 32-pixel
patches; its weights in float16, as CLIP's are stored) so that the file stays small.

Scores computed with stand-ins exercise the code and measure speed; they are not the metrics' values.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
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


# LIQE's CLIP: OpenAI's ViT-B/32 layout (224-pixel input, 32-pixel patches), narrow and shallow
SMALL_CLIP = {"embed_dim": 64, "image_resolution": 224, "vision_layers": 2, "vision_width": 64,
              "vision_patch_size": 32, "context_length": 77, "vocab_size": 49408, "transformer_width": 64,
              "transformer_heads": 1, "transformer_layers": 1}


@contextlib.contextmanager
def no_imagenet():
    """pyiqa's constructors build their backbones without downloads inside this block (their checkpoints replace
    every weight)."""
    from aesop_bench.metrics.iqa import no_timm_pretrained, no_torchvision_pretrained

    with no_timm_pretrained(), no_torchvision_pretrained("resnet18", "resnet50"):
        yield


def _seeded(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _random_bn_stats(sd: dict, g: torch.Generator) -> dict:
    out = {}
    for k, v in sd.items():
        if k.endswith("running_mean"):
            v = torch.randn(v.shape, generator=g) * 0.1
        elif k.endswith("running_var"):
            v = torch.rand(v.shape, generator=g) + 0.5
        out[k] = v
    return out


class TorchLinearRegression(torch.nn.Module):
    """sk2torch's ``TorchLinearRegression`` (sk2torch/linear_model.py), the class of ARNIQA's published regressors."""

    def __init__(self, weights: torch.Tensor, biases: torch.Tensor):
        super().__init__()
        if len(weights.shape) == 1:
            weights = weights[None]
        self.weights = torch.nn.Parameter(weights)
        self.biases = torch.nn.Parameter(biases)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict(x)

    @torch.jit.export
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        outputs = (x @ self.weights.t()) + self.biases
        if outputs.shape[1] == 1:
            return outputs.view(-1)
        return outputs


def _liqe_state_dict() -> dict:
    """pyiqa's LIQE on a :data:`SMALL_CLIP`, its CLIP weights in float16; the text features pyiqa computes and caches
    on construction go to a temporary folder."""
    import clip.model
    from pyiqa.archs import liqe_arch
    from pyiqa.archs.clip_model import build_model

    clip_sd = clip.model.CLIP(**SMALL_CLIP).state_dict()
    real_load, real_cache = liqe_arch.load, liqe_arch.DEFAULT_CACHE_DIR
    with tempfile.TemporaryDirectory() as cache, contextlib.redirect_stdout(io.StringIO()):
        liqe_arch.load = lambda *a, **k: build_model(dict(clip_sd)).float()
        liqe_arch.DEFAULT_CACHE_DIR = cache
        try:
            sd = liqe_arch.LIQE(pretrained=False).state_dict()
        finally:
            liqe_arch.load, liqe_arch.DEFAULT_CACHE_DIR = real_load, real_cache
    return {k: v.half() if k.startswith("clip_model.") and v.dim() >= 2 else v for k, v in sd.items()}


def _nr_iqa_standins(folder: Path, need) -> dict[str, Path]:
    """TOPIQ-NR, NIMA, PaQ-2-PiQ, LIQE and ARNIQA (pyiqa's networks), the entries ``need`` asks for."""
    files = {}
    with no_imagenet():
        if need("topiq_nr_koniq"):
            from pyiqa.archs.topiq_arch import CFANet

            g = _seeded(10)
            net = CFANet(semantic_model_name="resnet50", model_name="cfanet_nr_koniq_res50", use_ref=False,
                         backbone_pretrain=False, pretrained=False)
            files["topiq_nr_koniq"] = _save(_random_bn_stats(net.state_dict(), g),
                                            folder / "cfanet_nr_koniq_res50-standin.pth", wrap="params")
        if need("nima_ava"):
            from pyiqa.archs.nima_arch import NIMA

            g = _seeded(11)
            net = NIMA(base_model_name="inception_resnet_v2", pretrained=False)
            files["nima_ava"] = _save(_random_bn_stats(net.state_dict(), g),
                                      folder / "NIMA_InceptionV2_ava-standin.pth", wrap="params")
        if need("paq2piq"):
            from pyiqa.archs.paq2piq_arch import PAQ2PIQ

            g = _seeded(12)
            files["paq2piq"] = _save(_random_bn_stats(PAQ2PIQ(pretrained=False).state_dict(), g),
                                     folder / "P2P_RoIPoolModel-standin.pth")
    if need("liqe_koniq"):
        _seeded(13)
        files["liqe_koniq"] = _save(_liqe_state_dict(), folder / "liqe_koniq-standin.pt", wrap="params")
    if need("arniqa_encoder"):
        import torchvision

        g = _seeded(14)
        enc = torch.nn.Sequential(*list(torchvision.models.resnet50(weights=None).children())[:-1])
        sd = {"model." + k: v for k, v in _random_bn_stats(enc.state_dict(), g).items()}
        sd.update({"projector.0.weight": torch.randn(16, 2048, generator=g), "projector.0.bias": torch.zeros(16)})
        files["arniqa_encoder"] = _save(sd, folder / "ARNIQA-standin.pth")
    if need("arniqa_regressor_koniq"):
        g = _seeded(15)
        reg = TorchLinearRegression(torch.randn(4096, generator=g) * 20, torch.tensor(50.0))
        files["arniqa_regressor_koniq"] = folder / "regressor_koniq10k-standin.pth"
        torch.jit.script(reg).save(str(files["arniqa_regressor_koniq"]))
    return files


def write_standins(folder: str | os.PathLike, which: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Write the stand-in network files of the weights entries ``which`` (all when None) into ``folder``; returns
    them by weights name. IQA-PyTorch's networks are made only where pyiqa is installed."""
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
    if have_pyiqa:
        files.update(_nr_iqa_standins(folder, need))
    return files


def make_standins(folder: str | os.PathLike, niqe_mat: str | os.PathLike | None = None,
                  which: tuple[str, ...] | None = None) -> Path:
    """Write stand-in files into ``folder``, fetch them into the weights cache (deleting the written ones) and
    return the manifest path (already in the environment)."""
    folder = Path(folder)
    files = write_standins(folder, which)
    want = set(which) if which else None
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
