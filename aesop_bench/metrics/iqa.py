"""No-reference metrics from IQA-PyTorch (``pyiqa``): MANIQA, MUSIQ and CLIP-IQA, as the paper used them.

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

All higher-is-better; inputs are float32 images in [0, 1]. Scores have the same last bit whatever the CPU thread
count: the one layer measured to depend on it, MUSIQ's patch embedding, runs on one thread (:class:`OneThread`).
"""

from __future__ import annotations

import contextlib

import torch

from .. import weights as wm
from ..errors import AesopBenchError
from ..imageio import to_unit_rgb


def require_pyiqa():
    try:
        import pyiqa  # noqa: F401
    except ImportError:
        raise AesopBenchError(
            "MANIQA, MUSIQ and CLIP-IQA need IQA-PyTorch: pip install 'aesop-bench[iqa]' "
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


def _load_checkpoint(net, name_or_path):
    from ..models.loading import load_strict, pick_state_dict

    path = wm.get(name_or_path, download_missing=False) if name_or_path in wm.manifest() else name_or_path
    sd = pick_state_dict(wm.load_state_dict(path), path)
    sd = {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}
    load_strict(net, sd, path)
    return net


def build(metric: str, weights: str | None = None, **overrides):
    """A pyiqa network with manager weights (``weights``: manifest name or file path), in eval mode."""
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
    else:
        raise AesopBenchError(f"unknown IQA-PyTorch metric {metric!r}")
    return net.eval()


class OneThread(torch.nn.Module):
    """A layer computed on one CPU thread. MKL splits the inner sum of a matrix product with few rows and a long
    inner dimension among the threads (MUSIQ's patch embedding: 16384 inputs per patch), so its last bit moves with
    the thread count; on one thread it is the same sum every time (MUSIQ takes about an eighth longer per image with
    two threads)."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = torch.get_num_threads()
        if x.device.type != "cpu" or n == 1:
            return self.layer(x)
        torch.set_num_threads(1)
        try:
            return self.layer(x)
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
