"""No-reference metrics from IQA-PyTorch (``pyiqa``): MANIQA, MUSIQ and CLIP-IQA, as the paper used them, and
TOPIQ-NR, NIMA, PaQ-2-PiQ, LIQE and ARNIQA, each as pyiqa's default variant of that name computes it.

pyiqa is an optional extra (``pip install 'aesop-bench[iqa]'``; non-commercial licence, about 1.5 GB of
dependencies). Its networks are built here without any of their own downloads and given weights from the
weights manager, loaded with ``weights_only=True``:

* ``maniqa``: MANIQA trained on KonIQ-10k (pyiqa's default ``maniqa``: ``train_dataset='koniq'``,
  ``scale=0.8``), 20 uniform 224x224 crops averaged; its ViT backbone is built without ImageNet weights,
  since the checkpoint holds all of them.
* ``musiq``: MUSIQ trained on KonIQ-10k (pyiqa's ``musiq``).
* ``clipiqa``: CLIP-IQA with CLIP RN50 and pyiqa's prompt pairs. Images with more pixels than
  ``clipiqa_split_above`` are split into four quadrants and the four scores averaged (the paper did this
  for DRealSR because of memory); the threshold is recorded in the metric version.
* ``topiq_nr``: TOPIQ-NR (pyiqa's ``CFANet``, ``cfanet_nr_koniq_res50``: ResNet-50 features, KonIQ-10k), the whole
  image at its own size.
* ``nima``: NIMA with an InceptionResNetV2 trained on AVA (pyiqa's default ``nima``): the image resized (short side
  299, antialiased bilinear) and centre-cropped to 299x299; the mean of its 10-bin score distribution, 1 to 10.
* ``paq2piq``: PaQ-2-PiQ (ResNet-18 with a whole-image RoI pool), the whole image, no normalisation (as pyiqa).
* ``liqe``: LIQE on CLIP ViT-B/32 trained on KonIQ-10k (pyiqa's ``liqe``, ``pretrained='koniq'``): up to 15 of the
  224x224 patches at stride 32, scored against five quality prompts, 1 to 5. pyiqa refuses an image with a side
  under 224; such an image is first enlarged as pyiqa's own crop helpers enlarge one smaller than their crop
  (bilinear, by ``225 / short side``), so that every image gets a score.
* ``arniqa``: ARNIQA, its ResNet-50 encoder on the image and on its half-size copy, then the KonIQ-10k linear
  regressor (pyiqa's default), scaled to [0, 1].

The checkpoints of all but ARNIQA hold every weight of their networks, ImageNet backbones included (each is
loaded strictly), so no backbone is built with ImageNet weights. ARNIQA's encoder and regressor are two files.

All higher-is-better; inputs are float32 images in [0, 1]. :func:`build` returns the network as an
``nn.Module`` in eval mode whose output is differentiable in its input (except CLIP-IQA's, computed without
gradients), for use as a loss; :func:`score` computes scores without gradients. Scores have the same last bit
whatever the CPU thread count: what was measured to depend on it runs on one thread (:class:`OneThread`): MUSIQ's
patch embedding, the whole of TOPIQ-NR, PaQ-2-PiQ and ARNIQA (their convolutions and resizing, at some image sizes),
and LIQE's enlargement of a small image. NIMA's backbone sees 299x299 inputs only, and it and its resizing were
measured not to depend on it.
"""

from __future__ import annotations

import contextlib
import io

import torch

from .. import weights as wm
from ..errors import AesopBenchError
from ..imageio import to_unit_rgb


def require_pyiqa():
    try:
        import pyiqa  # noqa: F401
    except ImportError:
        raise AesopBenchError(
            "MANIQA, MUSIQ, CLIP-IQA, TOPIQ-NR, NIMA, PaQ-2-PiQ, LIQE and ARNIQA need IQA-PyTorch: "
            "pip install 'aesop-bench[iqa]' "
            "(pyiqa is under a non-commercial licence and pulls about 1.5 GB of dependencies)"
        ) from None


@contextlib.contextmanager
def no_timm_pretrained():
    """timm builds networks without ImageNet weights inside this block: pyiqa's MANIQA asks timm for an
    ImageNet ViT, but the MANIQA checkpoint replaces every weight anyway (and no download is wanted)."""
    import timm

    real = timm.create_model

    def create(*a, **k):
        k["pretrained"] = False
        return real(*a, **k)

    timm.create_model = create
    try:
        yield
    finally:
        timm.create_model = real


@contextlib.contextmanager
def no_torchvision_pretrained(*names: str):
    """torchvision builds the networks ``names`` (``resnet18``, ...) without ImageNet weights inside this block:
    pyiqa's PaQ-2-PiQ asks for an ImageNet ResNet-18 that its checkpoint replaces entirely."""
    import torchvision

    real = {n: getattr(torchvision.models, n) for n in names}

    def without(fn):
        return lambda *a, **k: fn(*a, **{**k, "weights": None})

    for n, fn in real.items():
        setattr(torchvision.models, n, without(fn))
    try:
        yield
    finally:
        for n, fn in real.items():
            setattr(torchvision.models, n, fn)


def _path(name_or_path):
    return wm.get(name_or_path, download_missing=False) if name_or_path in wm.manifest() else name_or_path


def _state_dict(name_or_path) -> tuple[dict, object]:
    """The state dict of a checkpoint (``params``/``params_ema`` or a plain one, ``module.`` prefixes removed, as
    pyiqa's ``clean_state_dict`` does) and the file it came from."""
    from ..models.loading import pick_state_dict

    path = _path(name_or_path)
    sd = pick_state_dict(wm.load_state_dict(path), path)
    return {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}, path


def _load_checkpoint(net, name_or_path):
    from ..models.loading import load_strict

    sd, path = _state_dict(name_or_path)
    load_strict(net, sd, path)
    return net


def build(metric: str, weights: str | None = None, **overrides):
    """A pyiqa network with manager weights (``weights``: manifest name or file path; for ARNIQA a pair, encoder
    and regressor), in eval mode; ``overrides``: options of pyiqa's class over the defaults used here."""
    require_pyiqa()
    if metric == "musiq":
        from pyiqa.archs.musiq_arch import MUSIQ

        net = _load_checkpoint(MUSIQ(pretrained=False, **overrides), weights or "musiq_koniq")
        net.embedding = OneThread(net.embedding)
    elif metric == "maniqa":
        from pyiqa.archs.maniqa_arch import MANIQA

        opts = {"train_dataset": "koniq", "scale": 0.8, **overrides}
        with no_timm_pretrained():
            net = MANIQA(pretrained=False, **opts)
        net = _load_checkpoint(net, weights or "maniqa_koniq")
        _stop_after_used_blocks(net)
    elif metric == "clipiqa":
        from pyiqa.archs import clipiqa_arch
        from pyiqa.archs.clip_model import build_model

        # OpenAI's RN50.pt is a TorchScript archive: the weights manager reads its tensors without torch.jit.load
        sd = wm.load_state_dict(weights or wm.get("clip_rn50", download_missing=False))
        real = clipiqa_arch.load
        clipiqa_arch.load = lambda *a, **k: build_model(sd).float()
        try:
            net = PromptsOnce(clipiqa_arch.CLIPIQA(model_type="clipiqa", pretrained=False, **overrides))
        finally:
            clipiqa_arch.load = real
    elif metric == "topiq_nr":
        from pyiqa.archs.topiq_arch import CFANet

        opts = {"semantic_model_name": "resnet50", "model_name": "cfanet_nr_koniq_res50", "use_ref": False,
                **overrides}
        net = OneThread(_load_checkpoint(CFANet(backbone_pretrain=False, pretrained=False, **opts),
                                         weights or "topiq_nr_koniq"))
    elif metric == "nima":
        from pyiqa.archs.nima_arch import NIMA

        opts = {"base_model_name": "inception_resnet_v2", "num_classes": 10, **overrides}
        with no_timm_pretrained():
            net = NIMA(pretrained=False, **opts)
        net = _load_checkpoint(net, weights or "nima_ava")
    elif metric == "paq2piq":
        from pyiqa.archs.paq2piq_arch import PAQ2PIQ

        with no_torchvision_pretrained("resnet18"):
            net = PAQ2PIQ(pretrained=False, **overrides)
        net = OneThread(_load_checkpoint(net, weights or "paq2piq"))
    elif metric == "liqe":
        net = AtLeast(_liqe(weights or "liqe_koniq", **overrides), 224)
    elif metric == "arniqa":
        encoder, regressor = weights if weights is not None else ("arniqa_encoder", "arniqa_regressor_koniq")
        net = OneThread(ARNIQA(encoder, regressor, **overrides))
    else:
        raise AesopBenchError(f"unknown IQA-PyTorch metric {metric!r}")
    return net.eval()


def _liqe(weights, **overrides):
    """pyiqa's LIQE with every weight from ``weights``: its CLIP ViT-B/32 is built from the checkpoint's
    ``clip_model.*`` tensors (pyiqa would download OpenAI's file, which the checkpoint then replaces entirely),
    and the prompts' text features are computed from the loaded weights (pyiqa caches them in a file of its own,
    which is never read here)."""
    import tempfile

    from pyiqa.archs import liqe_arch
    from pyiqa.archs.clip_model import build_model

    from ..models.loading import load_strict

    sd, path = _state_dict(weights)
    clip_sd = {k[len("clip_model."):]: v for k, v in sd.items() if k.startswith("clip_model.")}
    real_load, real_cache = liqe_arch.load, liqe_arch.DEFAULT_CACHE_DIR
    # pyiqa prints where it caches the text features: a temporary folder, deleted after
    with tempfile.TemporaryDirectory() as cache, contextlib.redirect_stdout(io.StringIO()):
        liqe_arch.load = lambda *a, **k: build_model(dict(clip_sd)).float()
        liqe_arch.DEFAULT_CACHE_DIR = cache
        try:
            net = liqe_arch.LIQE(pretrained=False, **overrides)
        finally:
            liqe_arch.load, liqe_arch.DEFAULT_CACHE_DIR = real_load, real_cache
    load_strict(net, sd, path)
    with torch.no_grad():  # as pyiqa computes them after loading its checkpoint
        net.text_features = net.get_text_features(net.joint_texts)
    return net


class AtLeast(torch.nn.Module):
    """A network that refuses images with a side under ``size`` (LIQE: 224), given such images enlarged as pyiqa's
    ``uniform_crop`` enlarges an image smaller than its crop: bilinear, by ``(size + 1) / short side``. Larger
    images pass unchanged."""

    def __init__(self, net: torch.nn.Module, size: int):
        super().__init__()
        self.net, self.size = net, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = min(x.shape[-2:])
        if short < self.size:  # on one thread: bilinear resizing's last bit moves with the thread count
            x = on_one_thread(torch.nn.functional.interpolate, x, scale_factor=(self.size + 1) / short,
                              mode="bilinear")
        return self.net(x)


class LinearRegressor(torch.nn.Module):
    """ARNIQA's regressor: the TorchScript ``TorchLinearRegression`` of sk2torch that pyiqa loads with
    ``torch.jit.load``, as plain tensors (``weights`` (1, 4096), ``biases``) and the same operations."""

    def __init__(self, sd: dict):
        super().__init__()
        w = sd["weights"]
        self.weights = torch.nn.Parameter(w[None] if w.dim() == 1 else w)
        self.biases = torch.nn.Parameter(sd["biases"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = (x @ self.weights.t()) + self.biases
        return out.view(-1) if out.shape[1] == 1 else out


class ARNIQA(torch.nn.Module):
    """pyiqa's ARNIQA (its preprocessing, forward and score scaling, called as they are) on the manager's two
    files: the encoder checkpoint (``model.*``: a torchvision ResNet-50 without its classifier, loaded strictly in
    place of the ImageNet weights pyiqa builds it with; ``projector.*``, unused, dropped as pyiqa drops it) and
    the regressor archive, read as tensors (:class:`LinearRegressor`)."""

    def __init__(self, encoder, regressor, regressor_dataset: str = "koniq"):
        super().__init__()
        import torchvision
        from pyiqa.archs.arniqa_arch import ARNIQA as impl
        from pyiqa.archs.arniqa_arch import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

        from ..models.loading import load_strict

        path = _path(encoder)
        sd = wm.load_state_dict(path)
        resnet = torchvision.models.resnet50(weights=None)
        self.regressor_dataset = regressor_dataset
        self.feat_dim = resnet.fc.in_features
        self.encoder = torch.nn.Sequential(*list(resnet.children())[:-1])
        load_strict(self.encoder, {k[6:]: v for k, v in sd.items() if k.startswith("model.")}, path,
                    hint="The file is not ARNIQA's encoder checkpoint (ARNIQA.pth).")
        self.regressor = LinearRegressor(wm.load_state_dict(_path(regressor)))
        self.default_mean = torch.Tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1)
        self.default_std = torch.Tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1)
        self._impl = impl  # the class whose methods are called on this module's own attributes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._impl.forward(self, x)

    def _preprocess(self, x):
        return self._impl._preprocess(self, x)

    def _scale_score(self, score):
        return self._impl._scale_score(self, score)


class OneThread(torch.nn.Module):
    """A layer (or a whole network) computed on one CPU thread, so that its last bit does not move with the thread
    count. MKL splits the inner sum of a matrix product with few rows and a long inner dimension among the threads
    (MUSIQ's patch embedding: 16384 inputs per patch; MUSIQ takes about an eighth longer per image with two
    threads); oneDNN's 1x1 convolutions and some small ones (ResNet's bottlenecks, TOPIQ's gating convolutions)
    and bilinear resizing (ARNIQA's half-size copy) do the same at some image sizes. On one thread each is the same
    sum every time."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return on_one_thread(self.layer, x)


def on_one_thread(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on one CPU thread (on a GPU, or with one thread already, as it is)."""
    n = torch.get_num_threads()
    on_cpu = all(a.device.type == "cpu" for a in args if isinstance(a, torch.Tensor))
    if not on_cpu or n == 1:
        return fn(*args, **kwargs)
    torch.set_num_threads(1)
    try:
        return fn(*args, **kwargs)
    finally:
        torch.set_num_threads(n)


def _stop_after_used_blocks(net) -> None:
    """MANIQA reads the outputs of ViT blocks 6-9 (forward hooks) and nothing after them: blocks 10-11, the final
    norm and the classification head (8.6% of its work per image) are dropped. The hooked outputs, and so the
    scores, are the same tensors."""
    vit = net.vit
    vit.blocks = vit.blocks[:10]
    for name in ("norm", "fc_norm", "head_drop", "head"):
        if hasattr(vit, name):
            setattr(vit, name, torch.nn.Identity())


class PromptsOnce(torch.nn.Module):
    """IQA-PyTorch's CLIP-IQA with its text prompts encoded once per device, not once per image: the same
    operations as ``CLIPIQA.forward`` (the prompts' features are fixed), in half the time on CPU."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self._text: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = (x - n.default_mean.to(x)) / n.default_std.to(x)
        clip_model = n.clip_model[0].to(x)
        key = f"{x.device}:{x.dtype}"
        if key not in self._text:
            self._text[key] = clip_model.encode_text(n.prompt_pairs.to(x.device))
        logits, _ = clip_model(x, None, pos_embedding=n.pos_embedding, text_features=self._text[key])
        probs = logits.reshape(logits.shape[0], -1, 2).softmax(dim=-1)
        return probs[..., 0].mean(dim=1, keepdim=True)


def quadrants(x: torch.Tensor) -> list[torch.Tensor]:
    h, w = x.shape[-2:]
    return [x[..., : h // 2, : w // 2], x[..., : h // 2, w // 2:], x[..., h // 2:, : w // 2], x[..., h // 2:, w // 2:]]


@torch.no_grad()
def score(metric: str, img: torch.Tensor, device="cpu", split_above: int | None = None, net=None) -> torch.Tensor:
    """Per-image score of ``(N, C, H, W)`` images (``net``: default, one built for this call)."""
    net = net if net is not None else build(metric).to(device)
    out = []
    for one in to_unit_rgb(img):
        x = one[None].to(device)
        if split_above is not None and x.shape[-1] * x.shape[-2] > split_above:
            parts = [net(q).flatten()[0] for q in quadrants(x)]
            out.append(torch.stack(parts).mean())
        else:
            out.append(net(x).flatten()[0])
    return torch.stack(out).double().cpu()
