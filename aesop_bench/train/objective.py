"""The training objective: one table of loss terms.

A config's ``losses`` is a list of ``{type, weight}``; the objective of a step is the weighted sum of the
listed terms, computed in the table's order. Config validation and the trainer's dispatch both read this
table, so adding a loss is adding a row: the LDL and AESOP configs differ by one line (``l1`` x0.01 and
``ldl`` vs ``aesop`` x1; see ``configs/``).

Each term computes from the step's tensors (:class:`StepInputs`) and the networks it declares in ``networks``,
which are the fields of :class:`Networks` it reads; the trainer builds those of the config's terms. A term reads
its target with :meth:`StepInputs.target`: the HR, or the USM-sharpened HR where the config's ``gt_usm`` lists it
(real-world training: Real-ESRGAN's ``l1_gt_usm``, ``percep_gt_usm``, ``gan_gt_usm``). Some terms take options
(``Term.options``: perceptual's ``layer_weights``, gan's ``gan_type``), given beside the weight in the config.

>>> import torch
>>> x = StepInputs(lr=torch.zeros(1, 3, 2, 2), hr=torch.zeros(1, 3, 8, 8), out=torch.full((1, 3, 8, 8), 0.5))
>>> total, parts = objective(x, Networks(), {"l1": 0.01})
>>> round(float(total), 6), {k: round(float(v), 6) for k, v in parts.items()}
(0.005, {'l1': 0.5})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..errors import AesopBenchError

if TYPE_CHECKING:
    import torch


@dataclass
class StepInputs:
    """The tensors of one step a loss term reads."""

    lr: "torch.Tensor"
    hr: "torch.Tensor"
    out: "torch.Tensor"  # the generator's output: SR, or the AE's reconstruction of HR
    z: "torch.Tensor | None" = None  # the AE's bottleneck (AE pretraining)
    micro: int = 0  # images per micro-batch (the relativistic GAN's means are taken per micro-batch)
    hr_usm: "torch.Tensor | None" = None  # the USM-sharpened HR (real-world training)
    usm: frozenset = frozenset()  # the terms whose target is hr_usm

    def target(self, term: str) -> "torch.Tensor":
        """The HR a term compares with: the USM-sharpened one where the config's ``gt_usm`` lists the term."""
        if term in self.usm:
            if self.hr_usm is None:
                raise AesopBenchError(f"loss term {term}: its target is the USM-sharpened HR, which was not made")
            return self.hr_usm
        return self.hr


@dataclass(frozen=True)
class Networks:
    """The networks loss terms read, each field named as terms declare it in ``networks`` (None: not built)."""

    aesop_ae: Any = None  # the frozen AESOP auto-encoder's loss (losses.FrozenAE)
    vgg19: Any = None  # VGG19 features (losses.VGGFeatures)
    discriminator: Any = None  # the discriminator as trained (DDP-wrapped under torchrun)
    generator_ema: Any = None  # the EMA of the generator (LDL's artifact map)


@dataclass(frozen=True)
class Term:
    """One row of the loss table: its name, the training it belongs to, what it computes and reads."""

    name: str
    training: str  # sr | ae: the training it belongs to
    description: str
    compute: Callable[..., "torch.Tensor"]  # (StepInputs, Networks, **options)
    networks: tuple[str, ...] = ()  # fields of Networks
    options: tuple[str, ...] = ()  # the config options it takes (config.LossTerm's fields beside type and weight)


def _l1(x: StepInputs, nets: Networks) -> "torch.Tensor":
    from .losses import l1

    return l1(x.out, x.target("l1"))


def _l1_lpf(x: StepInputs, nets: Networks) -> "torch.Tensor":
    from .losses import l1_lowpass

    return l1_lowpass(x.out, x.target("l1_lpf"))


def _aesop(x: StepInputs, nets: Networks) -> "torch.Tensor":
    return nets.aesop_ae(x.out, x.target("aesop"))


def _perceptual_term(x: StepInputs, nets: Networks, layer_weights: dict | None = None) -> "torch.Tensor":
    from .losses import PERCEPTUAL_WEIGHTS, perceptual

    return perceptual(nets.vgg19, x.out, x.target("perceptual"), layer_weights or PERCEPTUAL_WEIGHTS)


def _ldl(x: StepInputs, nets: Networks) -> "torch.Tensor":
    import torch

    from .losses import ldl

    with torch.no_grad():
        sr_ema = nets.generator_ema(x.lr)
    return ldl(x.target("ldl"), x.out, sr_ema)


def _gan(x: StepInputs, nets: Networks, gan_type: str = "relativistic") -> "torch.Tensor":
    from .losses import gan_generator, gan_vanilla, per_micro

    if gan_type == "vanilla":  # the discriminator's logits of SR pushed towards "real" (Real-ESRGAN)
        return gan_vanilla(nets.discriminator(x.out), True)
    real = nets.discriminator(x.target("gan")).detach()
    return per_micro(gan_generator, x.micro, real, nets.discriminator(x.out))


def _ae_recon(x: StepInputs, nets: Networks) -> "torch.Tensor":
    from .losses import l1

    return l1(x.out, x.hr)


def _ae_lr(x: StepInputs, nets: Networks) -> "torch.Tensor":
    from .losses import l1

    return l1(x.z, x.lr)


TERMS: dict[str, Term] = {t.name: t for t in [
    Term("l1", "sr", "mean |SR - HR|", _l1),
    Term("l1_lpf", "sr", "mean |G*SR - G*HR|, G a 21x21 Gaussian low-pass filter of sigma 3 (Table 5 (b))",
         _l1_lpf),
    Term("aesop", "sr", "mean |AE(SR) - AE(HR)|, the frozen AESOP auto-encoder", _aesop, ("aesop_ae",)),
    Term("perceptual", "sr", "VGG19 feature L1 (BasicSR's PerceptualLoss)", _perceptual_term, ("vgg19",),
         ("layer_weights",)),
    Term("ldl", "sr", "LDL's artifact-map-weighted L1 (needs the EMA generator)", _ldl, ("generator_ema",)),
    Term("gan", "sr", "GAN, generator side: relativistic average (ESRGAN) or vanilla (Real-ESRGAN)", _gan,
         ("discriminator",), ("gan_type",)),
    Term("ae_recon", "ae", "AE pretraining: L1(AE(HR), HR)", _ae_recon),
    Term("ae_lr", "ae", "AE pretraining: L1(encoder(HR), LR)", _ae_lr),
]}


def check_terms(kind: str, weights: dict[str, float]) -> None:
    """Refuse unknown terms and terms of the other training (a config's ``kind``: sr or ae), naming the known
    ones."""
    for name in weights:
        if name not in TERMS:
            raise AesopBenchError(f"config losses: unknown loss {name!r}; choose from {', '.join(TERMS)}")
        if TERMS[name].training != kind:
            mine = [t.name for t in TERMS.values() if t.training == kind]
            raise AesopBenchError(f"config losses: {name!r} is a loss of {TERMS[name].training} training, not of a "
                                  f"kind: {kind} config; use {', '.join(mine)}")
    if not weights:
        raise AesopBenchError("config losses: empty; list the weighted terms of the objective, e.g. "
                              "[{type: l1, weight: 1.0}]")


def networks_read(weights: dict[str, float]) -> set[str]:
    """The :class:`Networks` fields the weighted terms read."""
    return {n for name in weights for n in TERMS[name].networks}


def objective(x: StepInputs, nets: Networks, weights: dict[str, float],
              options: dict[str, dict] | None = None) -> tuple["torch.Tensor", dict]:
    """The weighted total and each term's value, terms in the table's order (``options``: term -> its config
    options); a term whose network is missing from ``nets`` is an error naming it."""
    missing = sorted(n for n in networks_read(weights) if getattr(nets, n) is None)
    if missing:
        raise AesopBenchError(f"the objective's terms need {', '.join(missing)}, which were not built")
    options = options or {}
    parts = {name: t.compute(x, nets, **options.get(name, {})) for name, t in TERMS.items() if name in weights}
    total = sum(weights[k] * v.float() for k, v in parts.items())
    return total, parts
