"""The networks of a training run, built from its config: the generator (an SR architecture, or the AE) with
its initial weights, and the discriminator."""

from __future__ import annotations

import os
from pathlib import Path

import torch.nn as nn

from ..errors import AesopBenchError
from ..models.archs.discriminator_arch import DISCRIMINATORS
from ..models.zoo import ARCHS, build_arch
from .config import TrainConfig, check_ae_opts


# architectures the zoo evaluates but training does not support, and why
NOT_TRAINABLE = {"spsr": "SPSR is in the zoo to be evaluated; its gradient branch trains only under SPSR's own "
                         "objective (gradient-map losses), which aesop-bench does not implement, so that branch "
                         "would get no gradient"}


def build_generator(cfg: TrainConfig) -> nn.Module:
    g = cfg.generator
    if cfg.kind == "ae":
        from ..models.archs.autoencoder_arch import AutoEncoder
        from ..models.loading import load_strict

        net = AutoEncoder(**check_ae_opts(g.opts, "config generator.opts"))
        if g.init:  # the decoder from the fidelity-oriented SR network of its architecture
            load_strict(net.decoder, _init_state(g.init, g.key, net.decoder_kind), g.init,
                        hint=f"generator.init must be a {net.decoder_kind} x4 network of the decoder's size "
                             f"(generator.opts: {g.opts})")
        return freeze(net, g.freeze)
    if g.freeze:
        raise AesopBenchError(f"config generator.freeze {g.freeze}: only the AE's parts can be held fixed")
    if g.arch not in ARCHS:
        raise AesopBenchError(f"config generator.arch {g.arch!r}; choose one of {', '.join(ARCHS)}")
    if g.arch in NOT_TRAINABLE:
        raise AesopBenchError(f"config generator.arch {g.arch!r}: {NOT_TRAINABLE[g.arch]}; train one of "
                              f"{', '.join(a for a in ARCHS if a not in NOT_TRAINABLE)}")
    try:
        net = build_arch(g.arch, cfg.data.scale, **g.opts)
    except AesopBenchError as exc:
        raise AesopBenchError(f"config data.scale {cfg.data.scale} / generator: {exc}") from None
    if g.init:
        from ..models.loading import load_strict

        load_strict(net, _init_state(g.init, g.key, g.arch), g.init)
    return net


def freeze(net: nn.Module, parts: list[str]) -> nn.Module:
    """Hold the AE's ``parts`` (encoder, decoder) fixed for the whole run: their parameters need no gradient, so
    the optimiser is not given them, DDP (which registers only parameters that need a gradient when it wraps the
    network) never reduces them, and the EMA copies them as they are."""
    for part in parts:
        if part == "decoder":
            net.decoder.requires_grad_(False)
        else:
            for p in net.encoder_parameters():
                p.requires_grad_(False)
    return net


def _init_state(init: str, key: str | None, arch: str) -> dict:
    """Initial weights from a zoo name, a weights-manifest name or a checkpoint path."""
    from .. import weights as wm
    from ..models.zoo import DEFAULT_KEYS, ZOO, ModelSpec, resolve_model

    if init in ZOO:
        return resolve_model(init).state_dict()
    path = Path(init) if os.path.isfile(init) else wm.get(init)
    keys = (key,) if key else DEFAULT_KEYS
    return ModelSpec(Path(init).stem, arch, path, keys, strict_key=bool(key)).state_dict()


def build_discriminator(cfg: TrainConfig) -> nn.Module | None:
    """The config's discriminator (None without one), from :data:`DISCRIMINATORS`."""
    d = cfg.discriminator
    if d is None:
        return None
    if d.arch not in DISCRIMINATORS:
        raise AesopBenchError(f"config discriminator.arch {d.arch!r}; choose {', '.join(DISCRIMINATORS)}")
    try:
        return DISCRIMINATORS[d.arch](pooled_bn=cfg.sync_bn, **d.opts)
    except TypeError as exc:
        raise AesopBenchError(f"config discriminator.opts {d.opts}: {exc}") from None
