"""The networks of a training run, built from its config: the generator (an SR architecture, or the AE) with
its initial weights, and the discriminators.

Initial weights: the architecture's own initialisation, or Kaiming-normal scaled by ``kaiming_init`` (the older
BasicSR's ``init_weights(kaiming, scale)``, which SPSR uses: 0.1 for its generator, 1 for its discriminators);
then ``init`` loaded, every key (``load_strict``) or, with ``init_partial``, by name where names match
(:func:`load_partial`, SPSR's ``load_network``: its generator takes the trunk of ESRGAN's PSNR-oriented RRDB, while
its gradient branch ``b_*``, fusion ``f_*``, ``HR_conv1_new`` and ``conv_w`` keep their initialisation), with a
report of the keys it left out either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import AesopBenchError, ConfigError
from ..models.archs.discriminator_arch import DISCRIMINATORS
from ..models.zoo import ARCHS, build_arch
from .config import TrainConfig, all_discriminators, check_ae_opts, discriminator_key
from .objective import aux_read


def _spsr_names(sd: dict) -> dict:
    from ..models.archs.spsr_arch import rrdb_state_dict_as_spsr

    return rrdb_state_dict_as_spsr(sd)


# an architecture's renaming of the weights it is initialised from (SPSR: an RRDBNet's, under SPSR's names)
INIT_RENAMES = {"spsr": _spsr_names}


def build_generator(cfg: TrainConfig, log=None) -> nn.Module:
    """The config's generator with its initial weights; ``log`` takes the report of a partial initialisation."""
    g = cfg.generator
    if cfg.kind == "ae":
        from ..models.archs.autoencoder_arch import AutoEncoder
        from ..models.loading import load_strict

        if g.init_partial or g.kaiming_init is not None or g.warmup is not None:
            raise ConfigError("config generator: kaiming_init, init_partial and warmup are for SR generators")
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
    try:
        net = build_arch(g.arch, cfg.data.scale, **g.opts)
    except AesopBenchError as exc:
        raise AesopBenchError(f"config data.scale {cfg.data.scale} / generator: {exc}") from None
    weights = {t.type: t.weight for t in cfg.losses}
    has = getattr(net, "AUX_OUTPUTS", ())
    for name, term in aux_read(weights).items():
        if name not in has:
            raise ConfigError(f"config losses {term}: it reads the generator's {name!r} output, which {g.arch} does "
                              f"not return (SPSR's gradient branch: generator.arch spsr)")
    if g.kaiming_init is not None:
        kaiming_init(net, g.kaiming_init)
    if g.init:
        from ..models.loading import load_strict

        sd = INIT_RENAMES.get(g.arch, dict)(_init_state(g.init, g.key, g.arch))
        if g.init_partial:
            report = load_partial(net, sd, g.init)
            if log is not None:
                log(report.describe())
        else:
            load_strict(net, sd, g.init)
    if g.warmup is not None:
        warmup_held(net, g.warmup.train_only)  # refuses a warm-up that holds all or nothing
    if g.lora is not None:  # adapters from the config's seed (B zero: the network's output is unchanged)
        from ..models.lora import add_lora, freeze_base

        add_lora(net, g.lora.rank, g.lora.alpha, g.lora.targets, generator=torch.Generator().manual_seed(cfg.seed))
        freeze_base(net)
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


def warmup_held(net: nn.Module, train_only: list[str]) -> list[tuple[str, nn.Parameter]]:
    """The trainable parameters a warm-up holds: those whose names contain none of ``train_only`` (SPSR's rule:
    ``'f_' not in name``); refused where it would hold every parameter, or none."""
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    held = [(n, p) for n, p in params if not any(s in n for s in train_only)]
    if not held or len(held) == len(params):
        raise ConfigError(f"config generator.warmup.train_only {train_only}: the names of "
                          f"{len(params) - len(held)} of the generator's {len(params)} trainable parameters contain "
                          "one of them; a warm-up trains some of them, not all or none (SPSR: [f_], its fusion block)")
    return held


def kaiming_init(net: nn.Module, scale: float) -> nn.Module:
    """Every convolution and linear layer Kaiming-normal (fan in, gain sqrt 2) times ``scale`` with zero biases,
    BatchNorm weights 1 and biases 0: the older BasicSR's ``init_weights(net, 'kaiming', scale)`` (a module shared
    under two names is initialised once)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                m.weight.mul_(scale)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    return net


@dataclass
class InitReport:
    """What a load by name did: the keys loaded, the network's keys it left at their initialisation (missing from
    the file), and the file's keys the network has no place for (unexpected)."""

    source: str
    loaded: list[str]
    missing: list[str]
    unexpected: list[str]

    def describe(self) -> str:
        def groups(keys: list[str]) -> str:
            counts: dict[str, int] = {}
            for k in keys:
                top = k.split(".")[0]
                counts[top] = counts.get(top, 0) + 1
            return ", ".join(f"{top} ({n})" for top, n in counts.items()) or "none"

        return (f"generator.init {self.source}, loaded by name: {len(self.loaded)} tensors loaded; "
                f"{len(self.missing)} missing from the file keep their initialisation: {groups(self.missing)}; "
                f"{len(self.unexpected)} unexpected (no such name in the network), not used: "
                f"{', '.join(self.unexpected) or 'none'}")


def load_partial(net: nn.Module, sd: dict, source) -> InitReport:
    """Load the tensors of ``sd`` whose names the network has (SPSR's ``load_network``); a name of another shape is
    an error, and so is a file that shares no name with the network (nothing would be loaded). A tensor the network
    holds under two names (SPSR's ``HR_conv0_new`` is ``model.8``) counts as loaded when either name was."""
    own = net.state_dict()  # tensors sharing storage with the parameters and buffers
    common = [k for k in sd if k in own]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in common if sd[k].shape != own[k].shape]
    if wrong:
        raise AesopBenchError(f"{source}: tensors of another shape than the network's: {', '.join(wrong[:8])}; "
                              "check generator.opts against the file")
    if not common:
        raise AesopBenchError(f"{source}: none of its {len(sd)} tensors has a name of {type(net).__name__} (e.g. "
                              f"{', '.join(sorted(sd)[:3])} vs {', '.join(list(own)[:3])}): nothing would be loaded; "
                              "check generator.init and generator.key")
    with torch.no_grad():
        for k in common:
            own[k].copy_(sd[k])
    loaded = {own[k].data_ptr() for k in common}
    missing = [k for k in own if k not in sd and own[k].data_ptr() not in loaded]
    return InitReport(str(source), common, missing, [k for k in sd if k not in own])


def _init_state(init: str, key: str | None, arch: str) -> dict:
    """Initial weights from a zoo name, a weights-manifest name or a checkpoint path."""
    from .. import weights as wm
    from ..models.zoo import DEFAULT_KEYS, ZOO, ModelSpec, resolve_model

    if init in ZOO:
        return resolve_model(init).state_dict()
    path = Path(init) if os.path.isfile(init) else wm.get(init)
    keys = (key,) if key else DEFAULT_KEYS
    return ModelSpec(Path(init).stem, arch, path, keys, strict_key=bool(key)).state_dict()


def build_discriminators(cfg: TrainConfig, names: tuple[str, ...] | None = None) -> dict[str, nn.Module]:
    """The config's discriminators by name (``d`` first; ``names``: those alone), from :data:`DISCRIMINATORS`,
    Kaiming-initialised where the config says."""
    out = {}
    for name, d in all_discriminators(cfg).items():
        if names is not None and name not in names:
            continue
        where = discriminator_key(name)
        if d.arch not in DISCRIMINATORS:
            raise AesopBenchError(f"config {where}.arch {d.arch!r}; choose {', '.join(DISCRIMINATORS)}")
        try:
            net = DISCRIMINATORS[d.arch](pooled_bn=cfg.sync_bn, **d.opts)
        except (TypeError, ValueError) as exc:
            raise AesopBenchError(f"config {where}.opts {d.opts}: {exc}") from None
        out[name] = kaiming_init(net, d.kaiming_init) if d.kaiming_init is not None else net
    return out


def build_discriminator(cfg: TrainConfig) -> nn.Module | None:
    """The config's discriminator ``d`` (None without one)."""
    return build_discriminators(cfg, ("d",)).get("d")
