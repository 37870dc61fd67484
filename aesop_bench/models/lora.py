"""LoRA adapters (Hu et al. 2021) for fine-tuning a frozen SR network, as the IQA-predictor fine-tuning of Zhang
et al. (CVPR 2025) does: the base weights stay fixed and only the low-rank factors are trained.

A wrapped layer computes ``base(x) + scale * B(A(x))`` with ``scale = alpha / rank``:

* ``nn.Linear`` (in -> out): A is ``Linear(in, rank)``, B is ``Linear(rank, out)``, both without bias; the merged
  weight is ``W + scale * B @ A``.
* ``nn.Conv2d`` (in -> out, k x k): as peft's LoRA ``Conv2d``: A is a conv with the layer's kernel, stride,
  padding, dilation and padding mode and ``rank`` output channels, B a 1x1 conv ``rank -> out``, both without
  bias; the merged weight is ``W[o, i, u, v] + scale * sum_r B[o, r] A[r, i, u, v]`` (a 1x1 conv after a conv is
  one conv whose kernel is that product). Grouped convs are refused.

Initialisation as the LoRA paper and peft: A's weight uniform on ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``
(``kaiming_uniform_(a=sqrt(5))``, fan_in = in x k x k) drawn from a given ``torch.Generator``; B's weight zero,
so the wrapped network's output is the base network's exactly until B moves.

Where the adapters go when ``targets`` is not given (:data:`DEFAULT_TARGETS`; the paper does not say):

* SwinIR: every ``nn.Linear`` of its transformer blocks, the attention's ``qkv`` and ``proj`` and the MLP's ``fc1``
  and ``fc2`` (the usual LoRA placement for transformers); its convolutions (first conv, the RSTBs' 3x3 convs,
  the upsampler) stay frozen. Name them in ``targets`` to adapt them too.
* RRDBNet and any other network: every ``nn.Conv2d`` and ``nn.Linear`` (RRDBNet has only convolutions, all 3x3).

``targets`` are ``fnmatch`` patterns on the qualified module names (``body.*.rdb1.conv1``, ``*.attn.qkv``);
only ``nn.Conv2d`` and ``nn.Linear`` modules are wrapped, and every pattern must match at least one of them.

:func:`merge_lora` folds the adapters into a copy of the network, giving the plain architecture (same class,
same state-dict keys as before :func:`add_lora`) for evaluation, the zoo and export.
"""

from __future__ import annotations

import copy
import fnmatch
import math

import torch
import torch.nn as nn
from torch.nn.utils import skip_init

from ..errors import ConfigError

DEFAULT_RANK = 8  # peft's LoraConfig default (r=8, lora_alpha=8: scale 1)
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "SwinIR": ("*.attn.qkv", "*.attn.proj", "*.mlp.fc1", "*.mlp.fc2"),
}
LORA_MARK = ".lora_"  # every LoRA tensor's state-dict key holds this (``...conv1.lora_A.weight``)


class LoRALayer(nn.Module):
    """A frozen-to-be ``nn.Linear`` or ``nn.Conv2d`` (``base_layer``) plus ``scale * lora_B(lora_A(x))``."""

    def __init__(self, base: nn.Module, rank: int, alpha: float, generator: torch.Generator | None = None):
        super().__init__()
        self.base_layer = base
        self.rank, self.alpha, self.scale = rank, float(alpha), float(alpha) / rank
        # built uninitialised (skip_init: torch's global generator is not drawn from), then filled below
        where = {"device": base.weight.device, "dtype": base.weight.dtype}
        if isinstance(base, nn.Conv2d):
            if base.groups != 1:
                raise ConfigError(f"LoRA on a grouped convolution ({base}) is not supported; leave it out of targets")
            self.lora_A = skip_init(nn.Conv2d, base.in_channels, rank, base.kernel_size, base.stride, base.padding,
                                    base.dilation, bias=False, padding_mode=base.padding_mode, **where)
            self.lora_B = skip_init(nn.Conv2d, rank, base.out_channels, 1, bias=False, **where)
        elif isinstance(base, nn.Linear):
            self.lora_A = skip_init(nn.Linear, base.in_features, rank, bias=False, **where)
            self.lora_B = skip_init(nn.Linear, rank, base.out_features, bias=False, **where)
        else:
            raise ConfigError(f"LoRA wraps nn.Linear and nn.Conv2d layers, not {type(base).__name__}")
        fan_in = self.lora_A.weight[0].numel()
        # kaiming_uniform_(a=sqrt(5)): gain sqrt(1/3), bound sqrt(3) gain / sqrt(fan_in)
        bound = 1.0 / math.sqrt(fan_in)
        a = torch.rand(self.lora_A.weight.shape, generator=generator, dtype=torch.float64) * (2 * bound) - bound
        with torch.no_grad():
            self.lora_A.weight.copy_(a)
            self.lora_B.weight.zero_()

    # the base layer's tensors stay reachable under their usual names (code that reads ``layer.weight``)
    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(x) + self.lora_B(self.lora_A(x)) * self.scale

    def delta_weight(self) -> torch.Tensor:
        """``scale * B A`` in the base weight's shape, computed in float64."""
        a = self.lora_A.weight.detach().double()
        b = self.lora_B.weight.detach().double()
        if isinstance(self.base_layer, nn.Conv2d):
            return torch.einsum("or,rihw->oihw", b[:, :, 0, 0], a) * self.scale
        return (b @ a) * self.scale

    def merged(self) -> nn.Module:
        """The base layer with ``W + scale * B A`` as its weight (rounded once to the weight's dtype)."""
        base = self.base_layer
        with torch.no_grad():
            base.weight.copy_((base.weight.double() + self.delta_weight().to(base.weight.device)).to(base.weight.dtype))
        return base

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, scale={self.scale:g}"


def _parent(net: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (net.get_submodule(path) if path else net), leaf


def lora_layers(net: nn.Module) -> dict[str, LoRALayer]:
    """Every LoRA-wrapped layer of ``net`` by its qualified name."""
    return {n: m for n, m in net.named_modules() if isinstance(m, LoRALayer)}


def default_targets(net: nn.Module) -> tuple[str, ...]:
    """The placement used when ``targets`` is not given (module docstring)."""
    return DEFAULT_TARGETS.get(type(net).__name__, ("*",))


def _select(net: nn.Module, targets) -> list[str]:
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    targets = list(targets)
    if not targets:
        raise ConfigError("lora targets is empty; give module-name patterns such as '*.attn.qkv' or leave it "
                          "unset for the default placement")
    eligible = [n for n, m in net.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    chosen, unmatched = [], []
    for pattern in targets:
        hits = [n for n in eligible if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            unmatched.append(pattern)
        chosen += [n for n in hits if n not in chosen]
    if unmatched:
        sample = ", ".join(eligible[:6]) + (", ..." if len(eligible) > 6 else "")
        raise ConfigError(f"lora targets {unmatched} match no nn.Linear or nn.Conv2d layer of {type(net).__name__} "
                          f"(its layers: {sample or 'none'}); use fnmatch patterns on module names, e.g. "
                          f"{', '.join(default_targets(net))!r}")
    return chosen


def add_lora(net: nn.Module, rank: int = DEFAULT_RANK, alpha: float | None = None, targets=None,
             generator: torch.Generator | None = None) -> list[str]:
    """Wrap ``net``'s target layers in place with LoRA adapters of ``rank`` (scale ``alpha / rank``; ``alpha``
    None: ``rank``, a scale of 1) and return the wrapped layers' names in module order. ``targets``: fnmatch
    patterns (a list, or one comma-separated string) on module names; None: :func:`default_targets`. A's initial
    weights come from ``generator`` (None: torch's global generator), on the CPU, in float64 then cast, so a
    seed gives the same adapters on every device. A rank below 1, a non-positive alpha, a pattern matching no
    layer, or a network that already has LoRA layers is a ConfigError."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"lora rank must be a whole number of at least 1, got {rank!r}")
    alpha = float(rank if alpha is None else alpha)
    if not alpha > 0 or not math.isfinite(alpha):
        raise ConfigError(f"lora alpha must be a positive number (the scale is alpha / rank), got {alpha!r}")
    if lora_layers(net):
        raise ConfigError(f"{type(net).__name__} already has LoRA layers; merge them (merge_lora) before adding more")
    names = _select(net, default_targets(net) if targets is None else targets)
    order = [n for n, _ in net.named_modules()]
    names.sort(key=order.index)
    for name in names:
        parent, leaf = _parent(net, name)
        base = getattr(parent, leaf)
        setattr(parent, leaf, LoRALayer(base, rank, alpha, generator))
    return names


def lora_parameters(net: nn.Module) -> list[nn.Parameter]:
    """The LoRA factors' parameters (A and B of every wrapped layer), in module order."""
    return [p for m in lora_layers(net).values() for p in (*m.lora_A.parameters(), *m.lora_B.parameters())]


def freeze_base(net: nn.Module) -> nn.Module:
    """Every parameter but the LoRA factors' gets ``requires_grad=False``; the factors get True. ``net`` has to
    hold LoRA layers (ConfigError otherwise: freezing everything would train nothing)."""
    if not lora_layers(net):
        raise ConfigError(f"{type(net).__name__} has no LoRA layers to train; call add_lora first")
    keep = {id(p) for p in lora_parameters(net)}
    for p in net.parameters():
        p.requires_grad_(id(p) in keep)
    return net


def merge_lora(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with every adapter folded into its base layer's weight (``W + scale * B A``, summed in
    float64, rounded once): the plain architecture, of the same class and with the state-dict keys it had before
    :func:`add_lora`, every parameter trainable. ``net`` itself is left as it was."""
    out = copy.deepcopy(net)
    for name, layer in lora_layers(out).items():
        parent, leaf = _parent(out, name)
        setattr(parent, leaf, layer.merged())
    for p in out.parameters():
        p.requires_grad_(True)
    return out


def lora_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA factors' tensors only, under their keys in ``net.state_dict()`` (``<layer>.lora_A.weight``)."""
    sd = {k: v.detach().clone() for k, v in net.state_dict().items() if LORA_MARK in k}
    if not sd:
        raise ConfigError(f"{type(net).__name__} has no LoRA layers; nothing to save")
    return sd


def load_lora(net: nn.Module, state: dict[str, torch.Tensor], source: str = "the LoRA state") -> nn.Module:
    """Load LoRA tensors saved by :func:`lora_state_dict` into ``net`` (already wrapped by :func:`add_lora` with the
    same targets and rank): the keys must be exactly ``net``'s LoRA keys and the shapes equal, otherwise a
    ConfigError names the missing, unexpected or mismatched keys."""
    own = {k: v for k, v in net.state_dict().items() if LORA_MARK in k}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise ConfigError(f"{source} does not fit {type(net).__name__}'s LoRA layers (add_lora with the same rank and "
                          f"targets first): missing {missing[:4]}, unexpected {unexpected[:4]}, shapes {shapes[:4]}")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k])
    return net


__all__ = ["DEFAULT_RANK", "DEFAULT_TARGETS", "LoRALayer", "add_lora", "default_targets", "freeze_base",
           "load_lora", "lora_layers", "lora_parameters", "lora_state_dict", "merge_lora"]
