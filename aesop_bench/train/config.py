"""Experiment configs: YAML files validated into typed dataclasses.

An unknown or mistyped key is an error that names it; ``--opt a.b=c`` overrides any key (the value is
parsed as YAML). The objective is a list of weighted loss terms, so the LDL and AESOP configs differ only
in the pixel term (``l1`` x0.01 vs ``aesop`` x1).

Real-world training (the authors' ``train_RealWorld_AESOP.yml``, Real-ESRGAN's recipe) adds three things:
``degradation:`` (Real-ESRGAN's second-order degradation, read by
:meth:`aesop_bench.data.degradations.DegradationConfig.from_dict`; its presence makes the LR on the fly from
each HR crop of ``data.crop_pad_size`` pixels), ``data.queue_size`` (the training-pair queue) and ``gt_usm``
(the loss terms whose target is the USM-sharpened HR: the authors' ``l1_gt_usm``, ``percep_gt_usm`` and
``gan_gt_usm``). A generator part can be held fixed for the whole run (``generator.freeze: [decoder]``: the
real-world AE's decoder, the authors' ``freeze_decoder``).

SPSR's recipe (the configs ``spsr`` and ``spsr_aesop``) adds: a second discriminator by name
(``discriminators: {d_grad: {...}}``, each named discriminator with its own optimiser (``optim``, else ``optim_d``'s
values), scheduler, checkpoint file ``net_NAME.safetensors`` and DDP wrapper; ``discriminator:`` is the one named
``d``); the GAN terms' ``means`` (``micro``: the relativistic means per micro-batch, as LDL and AESOP run; ``batch``:
over the whole global batch, as DataParallel computes them) and ``d_loss`` (the discriminator's loss, ``split`` or
``coupled``, see :mod:`.losses`); initialisation by Kaiming-normal scaled by ``kaiming_init`` and a load by name of
``init`` that may cover part of the network (``init_partial``, its missing and unexpected keys reported); and a
step-scheduled warm-up (``generator.warmup: {until, train_only}``: before step ``until``, counted from 1 as the
authors' ``Branch_init_iters``, only parameters whose names contain one of ``train_only`` move).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import AesopBenchError, ConfigError
from .objective import TERMS, check_terms, discriminators_read, networks_read


@dataclass
class DataConfig:
    """A config's ``data:``: the training images, patches, batch and augmentation."""

    hr_dirs: list[str] = field(default_factory=list)  # folders of HR images (relative to --data-root)
    lr_dirs: list[str] = field(default_factory=list)  # LR folders (same names as the HR files)
    make_lr: bool = False  # LR made on the fly from each (sub-)image instead (not the paper's data: see README)
    scale: int = 4
    patch: int = 128  # HR patch size
    batch: int = 16  # global batch (split across ranks)
    micro_batch: int | None = None  # images per forward pass (the official per-GPU batch, 16); None: a rank's share
    workers: int = 4
    modcrop: int = 12  # HR crop to a multiple of this (not with degradation:, which crops crop_pad_size instead)
    flip: bool = True  # random horizontal flip
    rot: bool = True  # random vertical flip and transposition (with flip: the eight dihedral transforms)
    # with degradation: each HR image is cropped (padded where smaller, reflecting) to this square before the
    # degradation, Real-ESRGAN's crop_pad_size (400 there, fixed in its dataset)
    crop_pad_size: int = 400
    queue_size: int | None = None  # the training-pair queue (Real-ESRGAN: 144), per micro-batch; None: no queue
    multigt: MultiGTConfig | None = None  # a multi-GT set (HGGT's layout) instead of hr_dirs


@dataclass
class MultiGTConfig:
    """A config's ``data.multigt:``: training on a multi-GT set in HGGT's layout (``root``: its ``Train/`` folder,
    relative to the data root), one GT per image chosen by ``sampler`` (:mod:`aesop_bench.data.hggt`): ``upos``
    (uniform over the human-labelled positives, HGGT's own), ``sma`` / ``smp`` (softmax of precomputed NR-IQA
    ``scores`` / ``tau`` over all five GTs / the positives; ``scores``: a JSON file ``{set name: {gt: score}}``),
    ``amo`` (the same patch of every GT scored online by ``metric``, the best one). Sets without an effective
    positive are left out, as HGGT's dataset does."""

    root: str = ""
    sampler: str = "upos"
    tau: float = 1.0  # not published (see aesop_bench.data.hggt.DEFAULT_TAU)
    scores: str | None = None
    metric: str = "musiq"  # amo's online scorer (a differentiable NR metric of train.nriqa)


@dataclass
class WarmupConfig:
    """A generator's ``warmup:``: before step ``until`` (steps counted from 1, SPSR's ``Branch_init_iters``) only the
    parameters whose names contain one of ``train_only`` move (SPSR: ``f_``, its fusion block)."""

    until: int = 0
    train_only: list[str] = field(default_factory=list)


@dataclass
class LoraConfig:
    """A generator's ``lora:``: LoRA adapters on its layers (:func:`aesop_bench.models.lora.add_lora`); the base
    weights stay fixed and only the adapters train; the export folds them in (a plain network)."""

    rank: int = 8
    alpha: float | None = None  # None: rank (a scale of 1)
    targets: list[str] | None = None  # fnmatch patterns on module names; None: the architecture's default


@dataclass
class NetConfig:
    """A config's ``generator:`` or ``discriminator:``: the architecture, its options and initial weights."""

    arch: str = "rrdb"  # rrdb | swinir | spsr | ae | vgg128 | vgg256 | unet
    opts: dict = field(default_factory=dict)  # the AE's: sizes, encoder rrdb|bicubic, decoder rrdb|srresnet
    init: str | None = None  # weights name or checkpoint path (the AE: its decoder's)
    key: str | None = None  # state-dict key in the init checkpoint
    freeze: list[str] = field(default_factory=list)  # generator parts held fixed for the whole run (AE: decoder)
    # Kaiming-normal initialisation (fan in, zero biases, BatchNorm 1 and 0) scaled by this, before init is loaded
    # (the older BasicSR's init_weights(kaiming, scale): SPSR's generator 0.1, its discriminators 1); None: the
    # architecture's own
    kaiming_init: float | None = None
    init_partial: bool = False  # init loaded by name where names match (SPSR's load_network); else every key
    warmup: WarmupConfig | None = None  # the generator's step-scheduled warm-up
    lora: LoraConfig | None = None  # fine-tune LoRA adapters only (the generator's init held fixed)


@dataclass
class LossTerm:
    """One weighted term of a config's ``losses:`` list."""

    type: str  # a term of objective.TERMS
    weight: float = 1.0
    # options of some terms (objective.Term.options): perceptual's VGG19 layer weights (None: conv1_2 0.1,
    # conv2_2 0.1, conv3_4 1, conv4_4 1, conv5_4 1) and gan's criterion (relativistic, ESRGAN's; or vanilla, the
    # plain GAN of Real-ESRGAN)
    layer_weights: dict | None = None
    gan_type: str | None = None
    # the GAN terms' relativistic means (micro: per micro-batch; batch: over the global batch) and their
    # discriminator's loss (split or coupled)
    means: str | None = None
    d_loss: str | None = None
    metric: str | None = None  # nriqa's no-reference metric (musiq, clipiqa, topiq_nr)

    def options(self) -> dict:
        """The options given for this term (those left out take the term's defaults)."""
        return {k: v for k, v in (("layer_weights", self.layer_weights), ("gan_type", self.gan_type),
                                  ("means", self.means), ("d_loss", self.d_loss), ("metric", self.metric))
                if v is not None}


@dataclass
class OptimConfig:
    """A config's ``optim_g:`` or ``optim_d:``: Adam's settings, the learning-rate milestones, gradient clipping."""

    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    eps: float = 1e-8  # Adam's epsilon (PyTorch's and BasicSR's default)
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.5
    clip: float | None = None  # gradient-norm clipping


@dataclass
class DiscriminatorConfig(NetConfig):
    """A config's ``discriminator:`` or one of its named ``discriminators:``, with its own optimiser settings."""

    optim: OptimConfig | None = None  # None: optim_d's


@dataclass
class ValConfig:
    """A config's ``val:``: how often, on which set, with which metrics the EMA generator is validated."""

    every: int = 5000
    set: str = "set5"
    metrics: list[str] = field(default_factory=lambda: ["psnr", "ssim", "lr_psnr"])
    data_root: str | None = None


@dataclass
class TrainConfig:
    """A whole training experiment, as a shipped or user YAML file gives it (:func:`load_config`)."""

    name: str = "run"
    kind: str = "sr"  # sr | ae
    seed: int = 0
    steps: int = 300000
    generator: NetConfig = field(default_factory=NetConfig)
    discriminator: DiscriminatorConfig | None = None  # the discriminator named d
    discriminators: dict[str, DiscriminatorConfig] = field(default_factory=dict)  # more, by name (SPSR: d_grad)
    losses: list[LossTerm] = field(default_factory=list)
    ae: str | None = None  # the frozen AE of the aesop loss: weights name or path
    optim_g: OptimConfig = field(default_factory=OptimConfig)
    optim_d: OptimConfig = field(default_factory=OptimConfig)
    ema: float = 0.999
    data: DataConfig = field(default_factory=DataConfig)
    val: ValConfig = field(default_factory=ValConfig)
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    log_every: int = 100
    amp_bf16: bool = False
    channels_last: bool = False
    # BatchNorm statistics of the VGG-style discriminator pooled over the global batch. None: as the authors'
    # code, pooled for the 256 discriminator (nn.SyncBatchNorm there), per micro-batch for the 128 one.
    sync_bn: bool | None = None
    # real-world training: Real-ESRGAN's degradation options (None: the LR comes from data.lr_dirs or make_lr)
    degradation: dict | None = None
    gt_usm: list[str] = field(default_factory=list)  # terms whose target is the USM-sharpened HR ("gan": D's real too)


def _is(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if tp is typing.Any:
        return True
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return any(_is(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        (inner,) = typing.get_args(tp)
        return isinstance(value, list) and all(_is(v, inner) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    return isinstance(value, tp)


def _build(cls, data, where: str):
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            raise AesopBenchError(f"config {where or 'root'}: expected a mapping, got {data!r}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise AesopBenchError(f"config {where or 'root'}: unknown key(s) {', '.join(unknown)}; "
                                  f"allowed: {', '.join(sorted(names))}")
        kwargs = {k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
        return cls(**kwargs)
    return data


def _coerce(tp, value, where):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if (origin is typing.Union or str(origin) == "<class 'types.UnionType'>") and value is not None:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            return _build(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is dict and len(args) == 2 and dataclasses.is_dataclass(args[1]):
        if not isinstance(value, dict):
            raise AesopBenchError(f"config {where}: expected a mapping of names to settings, got {value!r}")
        return {str(k): _build(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if origin is list and args and dataclasses.is_dataclass(args[0]):
        if not isinstance(value, list):
            raise AesopBenchError(f"config {where}: expected a list, got {value!r}")
        return [_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, str) and (tp is float or float in args):
        try:  # YAML 1.1 reads 2e-4 (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    if not _is(value, tp):
        raise AesopBenchError(f"config {where}: {value!r} is not a valid {getattr(tp, '__name__', tp)}")
    return value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``--opt key.path=value`` overrides (values read as YAML) applied to a config's data.

    >>> apply_overrides({"data": {"batch": 16}}, ["data.batch=4", "name=x"])
    {'data': {'batch': 4}, 'name': 'x'}
    """
    for item in overrides or []:
        if "=" not in item:
            raise AesopBenchError(f"--opt {item!r}: write key.path=value")
        path, raw = item.split("=", 1)
        node = data
        keys = path.split(".")
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {} if node.get(k) is None else node[k]
                if not isinstance(node[k], dict):
                    raise AesopBenchError(f"--opt {item!r}: {k} is not a mapping")
            node = node[k]
        node[keys[-1]] = yaml.safe_load(raw)
    return data


SHIPPED = Path(__file__).resolve().parents[1] / "configs"  # installed with the package


def shipped_configs() -> list[str]:
    """The names of the configs shipped with the package (``aesop_rrdb``, ``smoke_ae``, ...)."""
    return sorted(p.stem for p in SHIPPED.glob("*.yaml"))


def config_path(path: str | Path) -> Path:
    """A YAML file, or the name of a shipped config (``aesop_rrdb``)."""
    p = Path(path)
    if p.is_file():
        return p
    shipped = SHIPPED / f"{p.name if p.suffix in ('.yaml', '.yml') else p.name + '.yaml'}"
    if shipped.is_file() and p.parent == Path("."):
        return shipped
    raise AesopBenchError(f"config {path}: no such file, and no shipped config of that name; shipped configs: "
                          f"{', '.join(shipped_configs())}")


def load_config(path: str | Path | None, overrides: list[str] | None = None, base: dict | None = None) -> TrainConfig:
    data: dict = dict(base or {})
    if path is not None:
        p = config_path(path)
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise AesopBenchError(f"config {p}: the top level must be a mapping")
        data.update(loaded)
    data = apply_overrides(data, overrides or [])
    cfg = _build(TrainConfig, data, "")
    if cfg.kind not in ("sr", "ae"):
        raise AesopBenchError(f"config kind: {cfg.kind!r}; use sr or ae")
    weights: dict[str, float] = {}
    for t in cfg.losses:
        if t.type in weights:
            raise AesopBenchError(f"config losses: {t.type!r} is listed twice; give it once with its weight")
        weights[t.type] = t.weight
    check_terms(cfg.kind, weights)
    if "discriminator" in networks_read(weights) and cfg.discriminator is None:
        raise AesopBenchError("config: a gan loss term needs a discriminator (discriminator: {arch: vgg128})")
    check_discriminators(cfg, weights)
    check_generator_training(cfg, weights)
    check_ranges(cfg)
    if cfg.data.patch % cfg.data.scale:
        raise AesopBenchError(f"config data.patch {cfg.data.patch} must be a multiple of the scale")
    check_term_options(cfg)
    check_real_world(cfg)
    check_fine_tuning(cfg)
    return cfg


DISCRIMINATOR_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
GAN_MEANS = ("micro", "batch")
D_LOSS_FORMS = ("split", "coupled")


def all_discriminators(cfg: TrainConfig) -> dict[str, DiscriminatorConfig]:
    """Every discriminator of the config by name: ``d`` (``discriminator:``) first, then ``discriminators:``."""
    return {**({"d": cfg.discriminator} if cfg.discriminator is not None else {}), **cfg.discriminators}


def discriminator_key(name: str) -> str:
    """Where a discriminator of that name is given in a config."""
    return "discriminator" if name == "d" else f"discriminators.{name}"


def check_discriminators(cfg: TrainConfig, weights: dict[str, float]) -> None:
    """The named discriminators: names that make file names (``net_NAME.safetensors``), none unused, each one a GAN
    term trains against configured, and nothing of a generator's (freeze, warm-up) given to one."""
    for name in cfg.discriminators:
        if name == "d" or not DISCRIMINATOR_NAME.match(name) or name.startswith("g_") or name == "g":
            raise ConfigError(f"config discriminators: {name!r}; name a discriminator with lowercase letters, digits "
                              "and _ (not d, the config's discriminator:, nor g or g_*, the generator's files)")
    read = discriminators_read(weights)
    for name, term in read.items():
        if name != "d" and name not in cfg.discriminators:
            raise ConfigError(f"config losses {term}: it trains against the discriminator {name!r}; add "
                              f"discriminators: {{{name}: {{arch: vgg128}}}}")
    for name in cfg.discriminators:
        if name not in read:
            raise ConfigError(f"config discriminators.{name}: no loss term trains against it (the GAN terms read "
                              f"{', '.join(sorted(read)) or 'none'}); remove it or add its term")
    for name, d in all_discriminators(cfg).items():
        where = discriminator_key(name)
        if d.freeze or d.warmup is not None or d.init_partial:
            raise ConfigError(f"config {where}: freeze, warmup and init_partial are the generator's settings")


def check_generator_training(cfg: TrainConfig, weights: dict[str, float]) -> None:
    """An SPSR generator with the term that trains its gradient branch; a warm-up that names what trains."""
    g = cfg.generator
    if g.arch == "spsr" and cfg.kind == "sr" and "grad_branch" not in weights:
        raise ConfigError(
            "config generator.arch 'spsr': SPSR is in the zoo to be evaluated, and trains only under SPSR's own "
            "objective: the output layer of its gradient branch (conv_w) gets a gradient from the grad_branch term "
            "alone (add {type: grad_branch, weight: 0.5} as the configs spsr and spsr_aesop do), or train rrdb, "
            "swinir or drct")
    if g.warmup is not None:
        w = g.warmup
        if w.until < 1 or not w.train_only or not all(isinstance(n, str) and n for n in w.train_only):
            raise ConfigError(f"config generator.warmup {dataclasses.asdict(w)}: give until (a step, 1 or more: "
                              "before it only some parameters train) and train_only (substrings of their names, "
                              "e.g. [f_] for SPSR's fusion block)")


def check_term_options(cfg: TrainConfig) -> None:
    """Each loss term's options: only those its row of the loss table takes, with values it knows."""
    from .losses import GAN_TYPES, VGG19_LAYERS

    for t in cfg.losses:
        for name, value in t.options().items():
            if name not in TERMS[t.type].options:
                takes = ", ".join(TERMS[t.type].options) or "no options"
                raise ConfigError(f"config losses {t.type}: {name} is not an option of this term (it takes {takes})")
            if name == "gan_type" and value not in GAN_TYPES:
                raise ConfigError(f"config losses {t.type} gan_type: {value!r}; choose {' or '.join(GAN_TYPES)}")
            if name == "means" and value not in GAN_MEANS:
                raise ConfigError(f"config losses {t.type} means: {value!r}; the relativistic means are taken per "
                                  "micro-batch (micro) or over the global batch (batch)")
            if name == "d_loss" and value not in D_LOSS_FORMS:
                raise ConfigError(f"config losses {t.type} d_loss: {value!r}; the discriminator's relativistic loss "
                                  f"is {' or '.join(D_LOSS_FORMS)}")
            if name in ("means", "d_loss") and t.gan_type == "vanilla":
                raise ConfigError(f"config losses {t.type} {name}: the vanilla GAN has no relativistic means and one "
                                  "discriminator loss (BCE of the real and of the fake logits); remove it")
            if name == "metric":
                from .nriqa import DIFFERENTIABLE, REFUSED

                if value in REFUSED:
                    raise ConfigError(f"config losses {t.type} metric: {value!r} is refused as a loss: "
                                      f"{REFUSED[value]}")
                if value not in DIFFERENTIABLE:
                    raise ConfigError(f"config losses {t.type} metric: {value!r} is not a differentiable no-reference "
                                      f"metric here; choose one of {', '.join(DIFFERENTIABLE)}")
            if name == "layer_weights":
                bad = [k for k in value if k not in VGG19_LAYERS]
                if bad or not value or not all(_is(w, float) and w >= 0 for w in value.values()):
                    raise ConfigError(f"config losses {t.type} layer_weights: {value!r}; give VGG19 layers of "
                                      f"{', '.join(VGG19_LAYERS)} with weights 0 or more")


def check_real_world(cfg: TrainConfig) -> None:
    """The real-world options: ``degradation`` read by the degradation module (its errors name the key), the LR
    made from it alone, a crop that holds the patch, a queue the per-GPU batch divides, ``gt_usm`` naming the
    config's terms, ``generator.freeze`` naming parts of the AE."""
    d = cfg.data
    if cfg.degradation is not None:
        if cfg.kind != "sr":
            raise ConfigError("config degradation: the degraded LR is for SR training (kind: sr); an AE is "
                              "pretrained on HR images (remove degradation)")
        from ..data.degradations import DegradationConfig

        DegradationConfig.from_dict(cfg.degradation, "degradation")
        if d.lr_dirs or d.make_lr:
            raise ConfigError("config data.lr_dirs / data.make_lr: with degradation: the LR is synthesised from each "
                              "HR crop on the fly; leave lr_dirs empty and make_lr false")
        if d.crop_pad_size < d.patch or d.crop_pad_size % d.scale:
            raise ConfigError(f"config data.crop_pad_size {d.crop_pad_size}: the HR crop that is degraded must hold "
                              f"the patch ({d.patch}) and be a multiple of the scale ({d.scale})")
    if d.queue_size is not None:
        if cfg.kind != "sr":
            raise ConfigError("config data.queue_size: the training-pair queue is for SR training (kind: sr)")
        per = d.micro_batch or d.batch
        if d.queue_size < 1 or d.queue_size % per:
            raise ConfigError(f"config data.queue_size {d.queue_size}: the queue must hold a whole number of "
                              f"per-GPU batches (data.micro_batch, else data.batch: {per}); Real-ESRGAN: 144 = 12 x 12")
    sr_terms = [n for n, t in TERMS.items() if t.training == "sr"]
    for name in cfg.gt_usm:  # a term the config does not train may be listed (the authors' l1_gt_usm without l1)
        if name not in sr_terms or cfg.kind != "sr":
            raise ConfigError(f"config gt_usm: {name!r}; list SR loss terms ({', '.join(sr_terms)}) whose target is "
                              "the USM-sharpened HR")
    if cfg.generator.freeze:
        from ..models.archs.autoencoder_arch import AE_PARTS

        if cfg.kind != "ae":
            raise ConfigError(f"config generator.freeze {cfg.generator.freeze}: only the AE's parts can be held "
                              f"fixed ({', '.join(AE_PARTS)})")
        bad = [p for p in cfg.generator.freeze if p not in AE_PARTS]
        if bad:
            raise ConfigError(f"config generator.freeze: {', '.join(map(repr, bad))}; choose from "
                              f"{', '.join(AE_PARTS)}")
        if set(AE_PARTS) <= set(cfg.generator.freeze) or (
                cfg.generator.opts.get("encoder") == "bicubic" and "decoder" in cfg.generator.freeze):
            raise ConfigError(f"config generator.freeze {cfg.generator.freeze}: nothing of the AE would train")


MULTIGT_SAMPLERS = ("upos", "sma", "smp", "amo")


def check_fine_tuning(cfg: TrainConfig) -> None:
    """LoRA on an SR generator with initial weights; a multi-GT set with a known sampler, the scores a softmax
    sampler reads, a positive temperature, an online metric that can score, and no other source of HR images."""
    g, m = cfg.generator, cfg.data.multigt
    if g.lora is not None:
        if cfg.kind != "sr":
            raise ConfigError("config generator.lora: LoRA fine-tunes an SR network (kind: sr)")
        if g.lora.rank < 1 or (g.lora.alpha is not None and not g.lora.alpha > 0):
            raise ConfigError(f"config generator.lora: rank {g.lora.rank}, alpha {g.lora.alpha}; the rank is a whole "
                              "number of 1 or more, alpha above 0 (the scale is alpha / rank)")
        if not g.init:
            raise ConfigError("config generator.lora: LoRA adapts trained weights, which stay fixed; give "
                              "generator.init (a zoo name or checkpoint)")
    if m is None:
        return
    if cfg.kind != "sr":
        raise ConfigError("config data.multigt: multi-GT sets train SR networks (kind: sr)")
    if not m.root:
        raise ConfigError("config data.multigt.root: give the multi-GT set's Train/ folder (HGGT's layout), "
                          "relative to --data-root")
    if cfg.data.hr_dirs or cfg.data.lr_dirs or cfg.degradation is not None or cfg.data.queue_size is not None:
        raise ConfigError("config data.multigt: the HR images and their LR come from the multi-GT set; leave "
                          "data.hr_dirs, data.lr_dirs, degradation and data.queue_size out")
    if m.sampler not in MULTIGT_SAMPLERS:
        raise ConfigError(f"config data.multigt.sampler: {m.sampler!r}; choose one of {', '.join(MULTIGT_SAMPLERS)}")
    if m.sampler in ("sma", "smp") and not m.scores:
        raise ConfigError(f"config data.multigt.scores: the {m.sampler} sampler draws from each GT's precomputed "
                          "NR-IQA score; give a JSON file {set name: {gt name: score}}")
    if not m.tau > 0:
        raise ConfigError(f"config data.multigt.tau: {m.tau!r}; the softmax temperature is above 0")
    if m.sampler == "amo":
        from .nriqa import DIFFERENTIABLE

        if m.metric not in DIFFERENTIABLE:
            raise ConfigError(f"config data.multigt.metric: {m.metric!r}; amo scores patches online with one of "
                              f"{', '.join(DIFFERENTIABLE)}")


def _bad(where: str, value, allowed: str):
    return AesopBenchError(f"config {where}: {value!r}; {allowed}")


def check_ranges(cfg: TrainConfig) -> None:
    """Values of the right type but outside what they can mean: each an error naming the key and what is allowed."""
    from ..models.zoo import check_arch_opts

    d = cfg.data
    whole = {"data.patch": (d.patch, 1), "data.batch": (d.batch, 1), "data.workers": (d.workers, 0),
             "data.modcrop": (d.modcrop, 1), "seed": (cfg.seed, 0), "steps": (cfg.steps, 1),
             "checkpoint_every": (cfg.checkpoint_every, 1), "keep_checkpoints": (cfg.keep_checkpoints, 1),
             "log_every": (cfg.log_every, 1), "val.every": (cfg.val.every, 0),
             "data.crop_pad_size": (d.crop_pad_size, 1)}
    if d.micro_batch is not None:
        whole["data.micro_batch"] = (d.micro_batch, 1)
    for where, (value, low) in whole.items():
        if value < low:
            raise _bad(where, value, f"give a whole number, {low} or more")
    if d.scale < 1:
        raise _bad("data.scale", d.scale, "the upscaling factor is a whole number, 1 or more (the paper: 4)")
    if not 0 <= cfg.ema < 1:
        raise _bad("ema", cfg.ema, "the EMA decay lies in [0, 1) (the paper: 0.999)")
    nets = {"generator": cfg.generator, **{discriminator_key(n): d for n, d in all_discriminators(cfg).items()}}
    optims = [("optim_g", cfg.optim_g), ("optim_d", cfg.optim_d)] + [
        (f"{where}.optim", d.optim) for where, d in nets.items() if getattr(d, "optim", None) is not None]
    for where, net in nets.items():
        if net.kaiming_init is not None and not net.kaiming_init > 0:
            raise _bad(f"{where}.kaiming_init", net.kaiming_init, "the scale of the Kaiming initialisation is "
                       "above 0 (SPSR: 0.1 for the generator, 1 for its discriminators)")
    for name, o in optims:
        if not o.lr > 0:
            raise _bad(f"{name}.lr", o.lr, "the learning rate must be above 0 (the paper: 1e-4)")
        if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
            raise _bad(f"{name}.betas", o.betas, "Adam's betas are two numbers in [0, 1), e.g. [0.9, 0.99]")
        if not o.eps > 0 or not 0 < o.gamma <= 1 or (o.clip is not None and not o.clip > 0):
            raise _bad(name, {"eps": o.eps, "gamma": o.gamma, "clip": o.clip},
                       "eps above 0, gamma in (0, 1], clip above 0 or absent")
        if any(m < 1 for m in o.milestones) or list(o.milestones) != sorted(o.milestones):
            raise _bad(f"{name}.milestones", o.milestones, "give increasing steps, 1 or more")
    for t in cfg.losses:
        if not t.weight >= 0:
            raise _bad(f"losses {t.type} weight", t.weight, "a loss weight is 0 or more")
    g = cfg.generator
    if cfg.kind == "ae":
        check_ae_opts(g.opts, "config generator.opts")
        if g.opts.get("encoder") == "bicubic" and "ae_lr" in {t.type for t in cfg.losses}:
            raise AesopBenchError("config losses: ae_lr trains the encoder to estimate the LR, and the bicubic "
                                  "encoder (generator.opts.encoder: bicubic) has no parameters: its ae_lr is a "
                                  "constant; remove the ae_lr term")
    else:
        check_arch_opts(g.arch, g.opts, "config generator.opts")


def check_ae_opts(opts, where: str) -> dict:
    """The AE's options: the parts it swaps (``encoder``, ``decoder``: one of their choices, see
    ``autoencoder_arch.AE_PARTS``) and its sizes (:func:`aesop_bench.models.zoo.check_arch_opts`); an unknown
    option or value is an error naming it and what is allowed."""
    from ..models.archs.autoencoder_arch import AE_PARTS
    from ..models.zoo import ARCH_OPTIONS, check_arch_opts

    if isinstance(opts, dict):
        known = [*ARCH_OPTIONS["ae"], *AE_PARTS]
        for name, value in opts.items():
            if name not in known:
                raise AesopBenchError(f"{where}: ae takes no option {name!r}; its options: {', '.join(known)}")
            if name in AE_PARTS and value not in AE_PARTS[name]:
                raise AesopBenchError(f"{where}: {name} = {value!r}; choose one of {', '.join(AE_PARTS[name])}")
        check_arch_opts("ae", {k: v for k, v in opts.items() if k not in AE_PARTS}, where)
    else:
        check_arch_opts("ae", opts, where)  # its error: the options are a mapping
    return dict(opts)


def resume_config(run: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """The config a run folder was started with (its ``config.json``), with ``overrides`` applied."""
    import json

    saved = Path(run) / "config.json"
    if not saved.is_file():
        raise AesopBenchError(f"--resume {run}: no config.json there; give a run folder written by "
                              "`aesop-bench train`")
    return load_config(None, overrides, base=json.loads(saved.read_text()))


def to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
