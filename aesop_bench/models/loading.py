"""Strict state-dict loading with errors that list what is missing and what is unexpected."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import AesopBenchError


def load_strict(net: nn.Module, sd: dict, source, hint: str = "Check --arch and the scale.") -> None:
    """Load ``sd`` into ``net`` with every key and shape matching; a mismatch is an error naming ``source``, the
    keys missing, unexpected or of another shape, and ``hint``."""
    own = net.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = sorted(k for k in set(own) & set(sd) if tuple(own[k].shape) != tuple(sd[k].shape))
    if missing or unexpected or wrong:
        def show(keys):
            return ", ".join(keys[:12]) + (f" (+{len(keys) - 12} more)" if len(keys) > 12 else "")
        parts = [f"{source}: the checkpoint does not match {type(net).__name__}"]
        if missing:
            parts.append(f"missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {show(unexpected)}")
        if wrong:
            parts.append("shape mismatches: " + show([f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}"
                                                       for k in wrong]))
        raise AesopBenchError("; ".join(parts) + ". " + hint)
    net.load_state_dict(sd, strict=True)


def load_features(features: nn.Module, sd: dict, source) -> None:
    """Load the ``features.*`` part of a torchvision VGG/AlexNet state dict into ``features``.

    The ImageNet files also hold the classifier (about 85% of VGG19's bytes), which no metric or loss
    uses: those keys are dropped before loading, and a file holding only ``features.*`` is accepted.
    Every feature key is still checked strictly.
    """
    other = sorted(k for k in sd if not k.startswith(("features.", "classifier.")))
    if other:
        raise AesopBenchError(f"{source}: not a torchvision VGG/AlexNet state dict "
                              f"(unexpected keys: {', '.join(other[:8])})")
    load_strict(features, {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}, source,
                hint="Keys are the indices of the feature layers (features.N); the file is not the expected "
                     f"torchvision network: check it with `aesop-bench weights verify {source}`.")


def pick_state_dict(ckpt: dict, path) -> dict:
    """BasicSR checkpoints hold ``params_ema`` and/or ``params``; anything else is taken as a raw state dict."""
    for key in ("params_ema", "params"):
        if key in ckpt and isinstance(ckpt[key], dict):
            return ckpt[key]
    if all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise AesopBenchError(f"{path}: no params_ema, params or tensor state dict in the checkpoint "
                          f"(top-level keys: {sorted(ckpt)[:8]})")
