"""The training objective: one table of loss terms.

A config's ``losses`` is a list of ``{type, weight}``; the objective of a step is the weighted sum of the
listed terms, computed in the table's order. Config validation and the trainer's dispatch both read this
table, so adding a loss is adding a row: the LDL and AESOP configs differ by one line (``l1`` x0.01 and
``ldl`` vs ``aesop`` x1; see ``configs/``).

Each term computes from the step's tensors (:class:`StepInputs`) and the networks it declares in ``networks``,
which are the fields of :class:`Networks` it reads; the trainer builds those of the config's terms. A term reads
its target with :meth:`StepInputs.target`: the HR, or the USM-sharpened HR where the config's ``gt_usm`` lists it
(real-world training: Real-ESRGAN's ``l1_gt_usm``, ``percep_gt_usm``, ``gan_gt_usm``). Some terms take options
(``Term.options``: perceptual's ``layer_weights``, the GAN terms' ``gan_type``, ``means`` and ``d_loss``), given
beside the weight in the config.

A GAN term names the discriminator it trains against (``Term.discriminator``: ``d``, the config's
``discriminator``, or one of its named ``discriminators``) and what that discriminator sees
(``Term.d_input``: the images, or SPSR's gradient maps); the trainer runs each such discriminator's own step. A term
may read the generator's auxiliary outputs (``Term.aux``, from ``StepInputs.aux``: SPSR's gradient branch).
SPSR's objective (the configs ``spsr``, ``spsr_aesop``) adds three rows: ``grad_branch``, ``grad_pixel`` and
``grad_gan`` (see :mod:`.losses`). ``nriqa`` (option ``metric``) is a no-reference quality predictor's score as a
loss (:mod:`.nriqa`: minus the score of a higher-is-better one).

>>> import torch
>>> x = StepInputs(lr=torch.zeros(1, 3, 2, 2), hr=torch.zeros(1, 3, 8, 8), out=torch.full((1, 3, 8, 8), 0.5))
>>> total, parts = objective(x, Networks(), {"l1": 0.01})
>>> round(float(total), 6), {k: round(float(v), 6) for k, v in parts.items()}
(0.005, {'l1': 0.5})
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    aux: dict = field(default_factory=dict)  # the generator's auxiliary outputs by name (SPSR's "branch")
    # images per discriminator call (its BatchNorm group) when ``out`` holds several micro-batches (a step whose GAN
    # means are taken over the whole batch); 0: one call over all of ``out``
    d_chunk: int = 0

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
    discriminator: Any = None  # the discriminator ``d`` as trained (DDP-wrapped under torchrun)
    generator_ema: Any = None  # the EMA of the generator (LDL's artifact map)
    discriminators: Any = None  # every named discriminator (name -> network as trained), ``d`` included
    nriqa: Any = None  # the no-reference IQA loss (nriqa.NRIQALoss), its metric frozen

    def disc(self, name: str):
        """The discriminator of that name (None where it was not built)."""
        if name == "d" and self.discriminator is not None:
            return self.discriminator
        return (self.discriminators or {}).get(name)


@dataclass(frozen=True)
class Term:
    """One row of the loss table: its name, the training it belongs to, what it computes and reads."""

    name: str
    training: str  # sr | ae: the training it belongs to
    description: str
    compute: Callable[..., "torch.Tensor"]  # (StepInputs, Networks, **options)
    networks: tuple[str, ...] = ()  # fields of Networks
    options: tuple[str, ...] = ()  # the config options it takes (config.LossTerm's fields beside type and weight)
    discriminator: str | None = None  # a GAN term: the discriminator it trains against, by name
    d_input: Callable | None = None  # a GAN term: what its discriminator sees of an image batch (None: the images)
    aux: tuple[str, ...] = ()  # the generator's auxiliary outputs it reads (StepInputs.aux)


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


def _d_logits(d, images: "torch.Tensor", chunk: int) -> "torch.Tensor":
    """The discriminator's logits of ``images``: one call, or one per ``chunk`` images (its BatchNorm group)."""
    if not chunk or len(images) <= chunk:
        return d(images)
    import torch

    return torch.cat([d(c) for c in images.split(chunk)])


def _gan_of(term: str) -> Callable[..., "torch.Tensor"]:
    """The generator side of a GAN term: relativistic average (ESRGAN; means per micro-batch, or over the whole
    batch of every process with ``means: batch``) or vanilla (Real-ESRGAN). ``d_loss`` is its discriminator's."""

    def compute(x: StepInputs, nets: Networks, gan_type: str = "relativistic", means: str = "micro",
                d_loss: str = "split") -> "torch.Tensor":
        from .losses import gan_generator, gan_vanilla, gather_batch, per_micro

        t = TERMS[term]
        d, see = nets.disc(t.discriminator), t.d_input or (lambda images: images)
        if gan_type == "vanilla":  # the discriminator's logits of SR pushed towards "real" (Real-ESRGAN)
            return gan_vanilla(_d_logits(d, see(x.out), x.d_chunk), True)
        real = _d_logits(d, see(x.target(term)), x.d_chunk).detach()
        fake = _d_logits(d, see(x.out), x.d_chunk)
        if means == "batch":  # every micro-batch's and every process's logits, in float32 (under bf16 autocast too)
            return gan_generator(gather_batch(real.float()), gather_batch(fake.float()))
        return per_micro(gan_generator, x.micro, real, fake)

    return compute


def _nriqa(x: StepInputs, nets: Networks, metric: str | None = None) -> "torch.Tensor":
    return nets.nriqa(x.out)  # -mean Q(SR) for a higher-is-better Q (its metric is built by the trainer)


def _gradient_map_2(images: "torch.Tensor") -> "torch.Tensor":
    from .losses import gradient_map

    return gradient_map(images.float(), padding=2)


def _grad_branch(x: StepInputs, nets: Networks) -> "torch.Tensor":
    from .losses import gradient_map, l1

    if "branch" not in x.aux:
        raise AesopBenchError("loss term grad_branch: the generator returned no gradient-branch output (SPSR's)")
    return l1(x.aux["branch"].float(), gradient_map(x.target("grad_branch").float(), padding=1))


def _grad_pixel(x: StepInputs, nets: Networks) -> "torch.Tensor":
    from .losses import mse

    return mse(_gradient_map_2(x.out), _gradient_map_2(x.target("grad_pixel")))


def _ae_recon(x: StepInputs, nets: Networks) -> "torch.Tensor":
    from .losses import l1

    return l1(x.out, x.hr)


def _ae_lr(x: StepInputs, nets: Networks) -> "torch.Tensor":
    from .losses import l1

    return l1(x.z, x.lr)


GAN_OPTIONS = ("gan_type", "means", "d_loss")

TERMS: dict[str, Term] = {t.name: t for t in [
    Term("l1", "sr", "mean |SR - HR|", _l1),
    Term("l1_lpf", "sr", "mean |G*SR - G*HR|, G a 21x21 Gaussian low-pass filter of sigma 3 (Table 5 (b))",
         _l1_lpf),
    Term("aesop", "sr", "mean |AE(SR) - AE(HR)|, the frozen AESOP auto-encoder", _aesop, ("aesop_ae",)),
    Term("perceptual", "sr", "VGG19 feature L1 (BasicSR's PerceptualLoss)", _perceptual_term, ("vgg19",),
         ("layer_weights",)),
    Term("ldl", "sr", "LDL's artifact-map-weighted L1 (needs the EMA generator)", _ldl, ("generator_ema",)),
    Term("gan", "sr", "GAN, generator side: relativistic average (ESRGAN) or vanilla (Real-ESRGAN)", _gan_of("gan"),
         options=GAN_OPTIONS, discriminator="d"),
    Term("nriqa", "sr",
         "-mean Q(SR), Q a no-reference IQA network (MUSIQ, CLIP-IQA, TOPIQ-NR), frozen (Zhang et al. 2025)",
         _nriqa, ("nriqa",), ("metric",)),
    Term("grad_branch", "sr", "SPSR: L1 of the gradient branch's output and M1(HR), the HR's gradient map (padding 1)",
         _grad_branch, aux=("branch",)),
    Term("grad_pixel", "sr", "SPSR: MSE of M2(SR) and M2(HR), gradient maps with padding 2", _grad_pixel),
    Term("grad_gan", "sr", "SPSR: GAN on gradient maps M2 (padding 2: 130x130 for 128 patches), discriminator d_grad",
         _gan_of("grad_gan"), options=GAN_OPTIONS, discriminator="d_grad", d_input=_gradient_map_2),
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
    """The :class:`Networks` fields the weighted terms read (``discriminator`` for a term of the discriminator
    ``d``)."""
    return {n for name in weights for n in TERMS[name].networks} | \
        ({"discriminator"} if "d" in discriminators_read(weights) else set())


def discriminators_read(weights: dict[str, float]) -> dict[str, str]:
    """The discriminators the weighted terms train against: name -> the term (in the table's order)."""
    return {TERMS[n].discriminator: n for n in TERMS if n in weights and TERMS[n].discriminator}


def aux_read(weights: dict[str, float]) -> dict[str, str]:
    """The generator's auxiliary outputs the weighted terms read: name -> the first term reading it."""
    out: dict[str, str] = {}
    for n in TERMS:
        if n in weights:
            for a in TERMS[n].aux:
                out.setdefault(a, n)
    return out


def objective(x: StepInputs, nets: Networks, weights: dict[str, float],
              options: dict[str, dict] | None = None) -> tuple["torch.Tensor", dict]:
    """The weighted total and each term's value, terms in the table's order (``options``: term -> its config
    options); a term whose network is missing from ``nets`` is an error naming it."""
    missing = sorted({n for n in networks_read(weights) if getattr(nets, n) is None} |
                     {f"discriminator {d}" for d in discriminators_read(weights) if d != "d" and nets.disc(d) is None})
    if missing:
        raise AesopBenchError(f"the objective's terms need {', '.join(missing)}, which were not built")
    options = options or {}
    parts = {name: t.compute(x, nets, **options.get(name, {})) for name, t in TERMS.items() if name in weights}
    total = sum(weights[k] * v.float() for k, v in parts.items())
    return total, parts
