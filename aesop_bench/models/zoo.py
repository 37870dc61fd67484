"""The model zoo: names -> architecture, weights entry, state-dict key (timm-style entries).

``--model`` takes

* a zoo name (``aesop-bench models list``);
* a checkpoint path with ``--arch rrdb|swinir`` (BasicSR ``params_ema``/``params``, the original ESRGAN
  layouts, or a raw state dict; ``.safetensors`` too);
* a model card (``.yaml``/``.json``): ``{arch, weights, key, scale, arch_opts}``;
* ``interp:A,B@ALPHA``: network interpolation ``(1 - ALPHA) * A + ALPHA * B`` parameter by parameter
  (ESRGAN's PD-curve recipe); A and B must share an architecture.

Length: a model name's whole path to a network is here: the zoo table, specs, checkpoints, cards, interpolations and
identities.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .. import weights as wm
from ..errors import AesopBenchError
from ..fileutil import sha256_cached

from .identity import BICUBIC_IDENTITY
from .options import RunOptions

if TYPE_CHECKING:
    import torch.nn as nn

    from .bicubic import Bicubic
    from .inference import NetModel


def _rrdb(scale: int, **kw) -> "nn.Module":
    from .archs.rrdbnet_arch import RRDBNet

    return RRDBNet(scale=scale, **kw)


def _swinir(scale: int, **kw) -> "nn.Module":
    from .archs.swinir_arch import SwinIR

    return SwinIR(upscale=scale, **kw)


def _spsr(scale: int, **kw) -> "nn.Module":
    from .archs.spsr_arch import SPSRNet

    return SPSRNet(upscale=scale, **kw)


def _drct(scale: int, **kw) -> "nn.Module":
    from .archs.drct_arch import DRCT

    return DRCT(upscale=scale, **kw)


ARCHS: dict[str, Callable[..., "nn.Module"]] = {"rrdb": _rrdb, "swinir": _swinir, "spsr": _spsr, "drct": _drct}

# The options each architecture takes and the values allowed: (type, low, high) for numbers, (type, low, high,
# length range) for lists of numbers. Far beyond the published networks (RRDB: 23 blocks of 64 features; SwinIR-M:
# 6 x 6 blocks of 180), so that a typo such as num_block: 100000000 is an error, not minutes of silent building.
_FEAT = (int, 1, 1024)
ARCH_OPTIONS: dict[str, dict[str, tuple]] = {
    "rrdb": {"num_in_ch": (int, 1, 4), "num_out_ch": (int, 1, 4), "num_feat": _FEAT, "num_block": (int, 1, 100),
             "num_grow_ch": _FEAT},
    "swinir": {"in_chans": (int, 1, 4), "img_size": (int, 1, 4096), "window_size": (int, 1, 64),
               "img_range": (float, 1e-6, 1e6), "depths": (int, 1, 64, (1, 32)), "embed_dim": _FEAT,
               "num_heads": (int, 1, 64, (1, 32)), "mlp_ratio": (float, 0.1, 16.0),
               "drop_path_rate": (float, 0.0, 1.0), "num_feat": _FEAT},
    "spsr": {"in_nc": (int, 1, 4), "out_nc": (int, 1, 4), "nf": _FEAT, "nb": (int, 1, 100), "gc": _FEAT},
    "drct": {"in_chans": (int, 1, 4), "img_size": (int, 1, 4096), "window_size": (int, 1, 64),
             "compress_ratio": (int, 1, 1024), "squeeze_factor": (int, 1, 1024), "conv_scale": (float, 0.0, 1e6),
             "overlap_ratio": (float, 0.0, 1.0), "img_range": (float, 1e-6, 1e6), "depths": (int, 1, 64, (1, 32)),
             "embed_dim": _FEAT, "num_heads": (int, 1, 64, (1, 32)), "mlp_ratio": (float, 0.1, 16.0),
             "drop_path_rate": (float, 0.0, 1.0), "gc": _FEAT},
    "ae": {"num_in_ch": (int, 1, 4), "num_feat": _FEAT, "num_block": (int, 1, 100), "num_grow_ch": _FEAT,
           "enc_blocks": (int, 1, 100)},
}


def check_arch_opts(arch: str, opts, where: str) -> dict:
    """``opts`` checked against :data:`ARCH_OPTIONS` (a mapping of known options, numbers of the right type within
    their range); ``where`` names the field in errors."""
    allowed = ARCH_OPTIONS.get(arch, {})
    if not isinstance(opts, dict):
        raise AesopBenchError(f"{where}: the architecture's options are a mapping (option: value), got "
                              f"{type(opts).__name__} {opts!r}")
    for name, value in opts.items():
        if name not in allowed:
            extra = " (the scale comes from the protocol, --scale or data.scale)" if name in ("scale", "upscale") \
                else ""
            raise AesopBenchError(f"{where}: {arch} takes no option {name!r}{extra}; its options: "
                                  f"{', '.join(allowed)}")
        kind, lo, hi, *length = allowed[name]
        values = value if length else [value]
        if length and (not isinstance(value, (list, tuple)) or not length[0][0] <= len(value) <= length[0][1]):
            raise AesopBenchError(f"{where}: {name} is a list of {length[0][0]} to {length[0][1]} numbers, got "
                                  f"{value!r}")
        for v in values:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (kind is float or isinstance(v, int))
            if not ok or not lo <= v <= hi:
                what = "a whole number" if kind is int else "a number"
                raise AesopBenchError(f"{where}: {name} = {value!r}; give {what} from {lo:g} to {hi:g}"
                                      + (" for each entry" if length else ""))
    return dict(opts)


def build_arch(arch: str, scale: int = 4, **opts) -> "nn.Module":
    """A network of a named architecture: an SR architecture of ``ARCHS``, or ``ae`` (the AESOP auto-encoder)."""
    if arch != "ae" and arch not in ARCHS:
        raise AesopBenchError(f"architecture {arch!r} unknown; choose one of {', '.join(ARCHS)} or ae")
    check_arch_opts(arch, opts, f"{arch} options")
    try:
        if arch == "ae":
            from .archs.autoencoder_arch import AutoEncoder

            return AutoEncoder(**opts)
        return ARCHS[arch](scale, **opts)
    except TypeError as exc:  # an option the architecture does not take
        raise AesopBenchError(f"{arch} options {opts}: {exc}; the architecture's options are its constructor's "
                              "arguments (arch_opts in a card, opts in a checkpoint's metadata)") from None
    except ValueError as exc:  # a scale (or option combination) the architecture cannot build
        raise AesopBenchError(f"{arch} at x{scale}: {exc}") from None


@dataclass(frozen=True)
class ZooEntry:
    """One named model of the zoo: architecture, weights entry, state-dict keys, and its row in the paper."""

    name: str
    description: str
    arch: str = "none"
    weights: str | None = None  # weights-manifest name
    keys: tuple[str, ...] = ("params_ema", "params")  # tried in order, then a raw state dict
    notes: str = ""
    arch_opts: dict = field(default_factory=dict)
    # (backbone, method, train patch or "real" for real-world training) in the AESOP paper's tables: a model gets
    # the paper's value of exactly this row, never another training's
    paper: tuple[str, str, str] | None = None
    # where the released file's match to that row is not settled by the authors' README and configs: what is known
    paper_note: str = ""
    # the shipped training configs that produce this network, in the order they run (``NAME [key=value ...]``):
    # what ``reproduce --dry-run`` offers where the weights are not here
    train: tuple[str, ...] = ()


ZOO: dict[str, ZooEntry] = {e.name: e for e in [
    ZooEntry("bicubic", "MATLAB imresize bicubic upsampling of the 8-bit LR"),
    ZooEntry("rrdb_psnr", "RRDB trained with L1 (ESRGAN's PSNR-oriented model, DF2K)", "rrdb", "rrdb_psnr",
             ("params_ema", "params")),
    ZooEntry("esrgan", "ESRGAN (Wang et al. 2018), the original release", "rrdb", "esrgan_official", (),
             "original ESRGAN key layout, converted on load", paper=("RRDB", "ESRGAN", "128")),
    ZooEntry("spsr", "SPSR (Ma et al. 2020), structure-preserving SR with gradient guidance", "spsr", "spsr", (),
             "the authors' raw state dict", paper=("RRDB", "SPSR", "128"), train=("spsr",)),
    ZooEntry("swinir_psnr", "SwinIR-M x4 classical (DF2K, L1)", "swinir", "swinir_m_x4", ("params",)),
    ZooEntry("ldl_rrdb", "LDL (Liang et al. 2022) on RRDB, DF2K", "rrdb", "ldl_rrdb", paper=("RRDB", "LDL", "128")),
    ZooEntry("ldl_swinir", "LDL on SwinIR-M, DF2K", "swinir", "ldl_swinir", paper=("SwinIR", "LDL", "256")),
    ZooEntry("aesop_rrdb", "AESOP on RRDB, HR patch 128, 290K iterations", "rrdb", "aesop_rrdb",
             paper=("RRDB", "AESOP", "128")),
    ZooEntry("aesop_rrdb256", "AESOP on RRDB, HR patch 256 (the paper's dagger column)", "rrdb", "aesop_rrdb256",
             paper=("RRDB", "AESOP", "256")),
    ZooEntry("aesop_swinir", "AESOP on SwinIR-M, HR patch 256, 190K iterations", "swinir", "aesop_swinir",
             paper=("SwinIR", "AESOP", "256"),
             paper_note="the released file is AESOP_SwinIR256_190K.pth (loaded by the authors' main test config "
             "test_Synthetic_AESOP_SwinIR256.yml; its training config runs to 300K, saving every 5K), while the "
             "paper reports SwinIR AESOP at 300K and AESOP* at 200K: no column is this checkpoint's, so its "
             "values are compared with the 300K column, which the authors' main config stands for"),
    # Table 6 (real-world sets): the networks the authors' real-world test configs load, trained on
    # Real-ESRGAN's degradations, not the bicubic-trained ones above
    ZooEntry("real_ldl_rrdb", "Real-ESRGAN+LDL on RRDB, real-world degradations (the LDL release)", "rrdb",
             "real_ldl_rrdb", notes="AESOP's test_Realworld_officialRealLDL.yml: net_g_RealESRGAN+LDL.pth, "
             "param_key_g params_ema (LDL's own test config reads params)", paper=("RRDB", "LDL", "real")),
    ZooEntry("real_aesop_rrdb", "AESOP on RRDB, real-world degradations, 400K iterations", "rrdb",
             "real_aesop_rrdb", notes="AESOP's test_Realworld_AESOP_RRDB256.yml: RealAESOP_RRDB_400K.pth, "
             "param_key_g params_ema", paper=("RRDB", "AESOP", "real"),
             train=("real_ae_rrdb", "real_aesop_rrdb ae=runs/train/real_ae_rrdb/ae_ema.safetensors")),
    # Table 2 and Table 6's public real-world baselines, the files the authors' supplementary test configs load
    ZooEntry("bsrgan", "BSRGAN (Zhang et al. 2021), RRDB trained on BSRGAN's practical degradation model", "rrdb",
             "bsrgan", (), notes="AESOP's test_Realworld_officialBSRGAN.yml: KAIR's BSRGAN.pth, a raw state dict in "
             "the ESRGAN repository's key layout (RRDB_trunk, trunk_conv, HRconv), converted on load",
             paper=("RRDB", "BSRGAN", "real")),
    ZooEntry("realesrgan", "Real-ESRGAN x4plus (Wang et al. 2021), RRDB on Real-ESRGAN's degradations", "rrdb",
             "realesrgan_x4plus", ("params_ema",), notes="AESOP's test_Realworld_officialRealESRGAN.yml: "
             "RealESRGAN_x4plus.pth, param_key_g params_ema", paper=("RRDB", "Real-ESRGAN", "real")),
    # Table 8's DRCT backbone: the network of the authors' test_Synthetic_AESOP_DRCT256.yml (window 16, 6 x 6 blocks
    # of 180 features, the DRCT class's defaults here)
    ZooEntry("aesop_drct", "AESOP on DRCT, HR patch 256, 300K iterations", "drct", "aesop_drct", ("params_ema",),
             notes="AESOP's test_Synthetic_AESOP_DRCT256.yml: AESOP_DRCT256_300K.pth, param_key_g params_ema",
             paper=("DRCT", "AESOP", "256")),
    ZooEntry("ldl_drct", "LDL on DRCT, HR patch 256, 300K iterations (the AESOP authors' retraining)", "drct",
             "ldl_drct", ("params_ema",), notes="AESOP's test_Synthetic_reproduceDRCT_LDL.yml: baseline_reproduced_DRCT+LDL_300K.pth, "
             "param_key_g params_ema; not known to be published (see its weights entry)",
             paper=("DRCT", "LDL", "256")),
    ZooEntry("aesop_ae", "the released AESOP auto-encoder (AE-PSNR, AESOP loss); not an SR model", "ae",
             "aesop_ae"),
]}


# ESRGAN repository layout (RRDBNet_arch.py) and the older 'model.N' layout -> BasicSR names
_ESRGAN_RENAMES = [
    (r"^RRDB_trunk\.", "body."), (r"\.RDB(\d)\.", r".rdb\1."), (r"^trunk_conv\.", "conv_body."),
    (r"^upconv1\.", "conv_up1."), (r"^upconv2\.", "conv_up2."), (r"^HRconv\.", "conv_hr."),
]
_OLD_ESRGAN = [
    (r"^model\.0\.", "conv_first."), (r"^model\.1\.sub\.23\.", "conv_body."),
    (r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.", r"body.\1.rdb\2.conv\3."),
    (r"^model\.3\.", "conv_up1."), (r"^model\.6\.", "conv_up2."), (r"^model\.8\.", "conv_hr."),
    (r"^model\.10\.", "conv_last."),
]


def convert_keys(sd: dict, arch: str = "rrdb") -> dict:
    """Rename the original ESRGAN layouts of an RRDBNet to BasicSR's, and reshape the original DRCT's 1x1-conv
    projections to the AESOP DRCT's linear ones; other layouts pass unchanged."""
    if arch == "drct":
        from .archs.drct_arch import official_state_dict

        return official_state_dict(sd)
    if arch != "rrdb":
        return sd
    if any(k.startswith("model.1.sub.") for k in sd):
        rules = _OLD_ESRGAN
    elif any(k.startswith("RRDB_trunk.") for k in sd):
        rules = _ESRGAN_RENAMES
    else:
        return sd
    out = {}
    for k, v in sd.items():
        new = k
        for pat, rep in rules:
            new = re.sub(pat, rep, new)
        out[new] = v
    return out


DEFAULT_KEYS = ("params_ema", "params")


def _extract(ckpt: dict, keys: tuple[str, ...], source, strict: bool = False) -> dict:
    """The state dict under the first of ``keys`` the checkpoint holds, else BasicSR's default or a raw state dict;
    ``strict`` (a key a model card names): that key or an error listing the keys the file has."""
    from .loading import pick_state_dict

    for key in keys:
        if key in ckpt and isinstance(ckpt[key], dict):
            return ckpt[key]
    if strict:
        held = sorted(k for k, v in ckpt.items() if isinstance(v, dict)) or sorted(ckpt)[:12]
        raise AesopBenchError(f"{source}: the checkpoint holds no state dict under key {keys[0]!r}; its keys: "
                              f"{', '.join(held)}. Give one of them as the card's key, or leave key out for "
                              "params_ema, then params")
    return pick_state_dict(ckpt, source)


@dataclass
class ModelSpec:
    """Everything needed to build a network: resolved from a zoo name, a checkpoint, a card or interp."""

    name: str
    arch: str
    weights_path: Path | None
    keys: tuple[str, ...] = DEFAULT_KEYS
    arch_opts: dict = field(default_factory=dict)
    parts: tuple = ()  # interpolation: ((spec_a, spec_b), alpha)
    strict_key: bool = False  # keys[0] must be in the file (a card's key), no fallback

    def identity(self, scale: int) -> str:
        """Architecture, options, scale, weights hash, and the state-dict key where it is not the default
        (one checkpoint holds several networks: BasicSR's ``params`` and ``params_ema``)."""
        if self.parts:
            (a, b), alpha = self.parts
            return f"interp({a.identity(scale)},{b.identity(scale)},{exact(alpha)})"
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.arch_opts.items()))
        key = "" if self.keys == DEFAULT_KEYS and not self.strict_key else \
            f"-key={'|'.join(self.keys)}{'!' if self.strict_key else ''}"
        return f"{self.arch}[{opts}]-x{scale}-{sha256_cached(self.weights_path)[:16]}{key}"

    def state_dict(self) -> dict:
        """The network's weights (an interpolation's: the two models' floats mixed by alpha), keys converted to the
        architecture's."""
        if self.parts:
            (a, b), alpha = self.parts
            sa, sb = a.state_dict(), b.state_dict()
            if set(sa) != set(sb) or any(sa[k].shape != sb[k].shape for k in sa):
                raise AesopBenchError(f"cannot interpolate {a.name} and {b.name}: their parameters differ")
            return {k: (sa[k] if not sa[k].is_floating_point() else (1 - alpha) * sa[k] + alpha * sb[k])
                    for k in sa}
        ckpt = wm.load_state_dict(self.weights_path)
        return convert_keys(_extract(ckpt, self.keys, self.weights_path, self.strict_key), self.arch)

    def build(self, scale: int) -> "nn.Module":
        """The network with its weights loaded strictly, in eval mode and without gradients."""
        from .loading import load_strict

        net = build_arch(self.arch, scale, **self.arch_opts)
        load_strict(net, self.state_dict(), self.weights_path or self.name)
        return net.eval().requires_grad_(False)


INTERP = re.compile(r"interp:([^,]+),([^@]+)@([0-9]*\.?[0-9]+)")


def exact(x: float) -> str:
    """``x`` as text that reads back as the same float: ``%g`` where that is exact (identities written before
    keep their form), else Python's shortest round-trip form.

    >>> exact(0.3), exact(1.0), exact(0.30000049)
    ('0.3', '1', '0.30000049')
    """
    short = f"{x:g}"
    return short if float(short) == x else repr(x)


def parse_interp(model: str) -> tuple[str, str, str] | None:
    """``interp:A,B@ALPHA`` -> ``(A, B, ALPHA as written)``; None for any other model name; a malformed
    ``interp:`` is an error."""
    if not model.startswith("interp:"):
        return None
    m = INTERP.fullmatch(model)
    if not m:
        raise AesopBenchError(f"--model {model!r}: write interp:A,B@ALPHA, e.g. interp:rrdb_psnr,esrgan@0.3")
    return m[1], m[2], m[3]
# file stems the trainer writes in every run: a checkpoint is named after its run folder instead
_GENERIC_STEMS = {"ema", "ae_ema", "net_g", "net_g_ema", "model", "checkpoint", "last", "best"}


def short_name(model: str) -> str:
    """A short, distinct name of a ``--model`` value for run folders and labels: zoo names as they are;
    checkpoints by file stem, or by run folder (and step) when the stem is one every run writes
    (``runs/aesop_x/ema.safetensors`` -> ``aesop_x-ema``); interpolations as ``A->B@ALPHA`` with ALPHA as given.

    >>> short_name("runs/aesop_x/ckpt/step_0010000/net_g_ema.safetensors")
    'aesop_x-step_0010000-net_g_ema'
    >>> short_name("interp:runs/a/ema.safetensors,esrgan@0.35")
    'a-ema->esrgan@0.35'
    """
    parts = parse_interp(model)
    if parts:
        return f"{short_name(parts[0])}->{short_name(parts[1])}@{parts[2]}"
    if "/" not in model and "." not in model:
        return model
    p = Path(model)
    if p.stem not in _GENERIC_STEMS:
        return p.stem
    parts = [p.stem]
    parent = p.parent
    if parent.name.startswith("step_"):
        parts.insert(0, parent.name)
        parent = parent.parent.parent if parent.parent.name == "ckpt" else parent.parent
    if parent.name:
        parts.insert(0, parent.name)
    return "-".join(parts)


CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt", ".bin")


def resolve_model(name: str, arch: str | None = None, download: bool = True) -> ModelSpec | None:
    """A :class:`ModelSpec` for ``name`` (None for ``bicubic``); ``download=False`` never fetches weights."""
    if name == "bicubic":
        return None
    parts = parse_interp(name)
    if parts:
        a, b = resolve_model(parts[0], arch, download), resolve_model(parts[1], arch, download)
        if a is None or b is None or a.arch != b.arch or a.arch_opts != b.arch_opts:
            raise AesopBenchError(f"--model {name!r}: {parts[0]} and {parts[1]} must share an architecture "
                                  f"({a.arch if a else 'bicubic'} vs {b.arch if b else 'bicubic'})")
        alpha = float(parts[2])
        if not 0 <= alpha <= 1:
            raise AesopBenchError(f"--model {name!r}: ALPHA must lie in [0, 1]")
        return ModelSpec(name, a.arch, None, arch_opts=a.arch_opts, parts=((a, b), alpha))
    if name in ZOO:
        e = ZOO[name]
        if e.arch not in ARCHS:
            raise AesopBenchError(f"{name} is {e.description}; it cannot be evaluated as an SR model")
        path = wm.get(e.weights, download_missing=download, validate=model_weights_validator(e.weights))
        return ModelSpec(name, e.arch, path, e.keys or DEFAULT_KEYS, dict(e.arch_opts))
    path = Path(name)
    if path.suffix.lower() in (".yaml", ".yml", ".json") and path.is_file():
        return _from_card(path)
    if path.is_file():
        meta = wm.read_meta(path)  # checkpoints written by the trainer name their arch and its options
        if arch and meta.get("arch") not in (None, arch):
            raise AesopBenchError(f"--model {name}: the checkpoint is a {meta['arch']} network, not --arch {arch}")
        arch = arch or meta.get("arch")
        opts: dict = meta.get("opts", {})
        if not arch:
            raise AesopBenchError(f"--model {name}: a checkpoint needs --arch ({' or '.join(ARCHS)})")
        if arch not in ARCHS:
            if arch == "ae" and arch == meta.get("arch"):
                raise AesopBenchError(f"--model {name}: the checkpoint is an auto-encoder (it maps an HR image to "
                                      "itself), not an SR network; use it as the AE of ae_psnr (--ae "
                                      f"{name}) or of the aesop loss")
            where = "--arch" if arch != meta.get("arch") else "the checkpoint's recorded architecture"
            raise AesopBenchError(f"--model {name}: {where} {arch!r} is not one aesop-bench evaluates; choose "
                                  f"one of {', '.join(ARCHS)}")
        return ModelSpec(path.stem, arch, path, arch_opts=opts)
    if path.suffix.lower() in CHECKPOINT_SUFFIXES or os.sep in name or "/" in name:
        raise AesopBenchError(f"--model {name}: file not found" + (f" (in {path.parent.resolve()})"
                                                                   if path.parent.is_dir() else
                                                                   f"; the folder {path.parent} does not exist"))
    raise AesopBenchError(f"unknown model {name!r}: not a zoo name ({', '.join(ZOO)}), a checkpoint file, "
                          "a model card or interp:A,B@ALPHA")


def _from_card(path: Path) -> ModelSpec:
    import yaml

    try:
        card = yaml.safe_load(path.read_text()) if path.suffix != ".json" else json.loads(path.read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise AesopBenchError(f"{path}: the model card is refused: it is not plain YAML/JSON ({exc}). Cards are "
                              "read as safe YAML: tags such as !!python are never run; give plain values") from None
    if not isinstance(card, dict):
        raise AesopBenchError(f"{path}: a model card is a mapping (arch, weights, ...)")
    unknown = set(card) - {"name", "arch", "weights", "key", "arch_opts", "notes"}
    if unknown or "arch" not in card or "weights" not in card:
        raise AesopBenchError(f"{path}: a model card needs arch and weights (and may give name, key, arch_opts, "
                              f"notes); unknown fields: {sorted(unknown)}")
    if not isinstance(card["arch"], str) or card["arch"] not in ARCHS:
        raise AesopBenchError(f"{path}: arch {card['arch']!r} unknown; choose one of {', '.join(ARCHS)}")
    w = card["weights"]
    if not isinstance(w, str) or not w:
        raise AesopBenchError(f"{path}: weights {w!r}: give a checkpoint path (relative to the card) or a "
                              "weights-manifest name")
    if card.get("key") is not None and not isinstance(card["key"], str):
        raise AesopBenchError(f"{path}: key {card['key']!r}: give the checkpoint's key as text (e.g. params_ema)")
    check_arch_opts(card["arch"], card.get("arch_opts") or {}, f"{path}: arch_opts")
    wpath = Path(w) if os.path.isabs(w) else (path.parent / w)
    if not wpath.is_file():
        wpath = wm.get(w)
    keys = (card["key"],) if card.get("key") else DEFAULT_KEYS
    return ModelSpec(card.get("name", path.stem), card["arch"], wpath, keys, dict(card.get("arch_opts", {})),
                     strict_key=bool(card.get("key")))


def model_weights_validator(weights_name: str):
    """A check that a file holds the network of the zoo entry that uses the weights ``weights_name``: it must
    load into that architecture with strict keys (None if no SR zoo entry uses them)."""
    for e in ZOO.values():
        if e.weights == weights_name and e.arch in ARCHS:
            def check(path: Path, e=e) -> None:
                ModelSpec(e.name, e.arch, Path(path), e.keys or DEFAULT_KEYS, dict(e.arch_opts)).build(4)
            return check
    return None


def build_model(spec: ModelSpec | None, scale: int = 4, run: RunOptions = RunOptions()) -> "Bicubic | NetModel":
    """The evaluator's model for a resolved spec (None: bicubic); its ``identity`` is :func:`identity_of`'s."""
    if spec is None:
        from .bicubic import Bicubic

        return Bicubic(scale)
    from .inference import NetModel

    return NetModel(spec.name, spec.build(scale), scale, spec.identity(scale), run)


def identity_of(spec: ModelSpec | None, scale: int, run: RunOptions = RunOptions()) -> str:
    """A stable string that changes whenever the model's outputs could (weights hash, settings), without building
    the network."""
    if spec is None:
        return BICUBIC_IDENTITY
    return run.identity(spec.identity(scale))


def describe_models() -> str:
    """The zoo as a table: name, architecture, parameter count, weights status, description."""
    counts: dict[str, str] = {}
    w = max(len("name"), *(len(n) for n in ZOO))  # the longest name sets the column
    lines = [f"{'name':{w}s} {'arch':7s} {'params':>8s}  {'weights':10s} description"]
    for name, e in ZOO.items():
        if e.arch not in counts:
            net = build_arch(e.arch, 4, **e.arch_opts) if e.arch in ARCHS or e.arch == "ae" else None
            counts[e.arch] = f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f}M" if net else "-"
        status = wm.check(wm.entry(e.weights)).status if e.weights else "-"
        lines.append(f"{name:{w}s} {e.arch:7s} {counts[e.arch]:>8s}  {status:10s} {e.description}")
    return "\n".join(lines)
