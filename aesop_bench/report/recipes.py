"""Recipes: the paper's tables as data. A recipe names the zoo models (per backbone), the sets, the metrics,
the protocol and the metric options of one table; ``aesop-bench reproduce`` evaluates it and sets the paper's
numbers beside the results. Adding a paper's table is adding a recipe here, or writing one as a YAML file::

    name: table1_small
    layout: table1
    models: {RRDB: [esrgan, aesop_rrdb]}
    sets: [set5, set14]
    metrics: [psnr, ssim]
    protocol: paper
    set_options: {drealsr: {clipiqa: {split_above: 1000000}}}   # per-set metric options
    unavailable: {SwinIR+GAN: never released}                 # the table's methods with no public weights, and why
    train: {AESOP-200K: [aesop_swinir steps=200000]}           # ... that a shipped training config produces

A column whose network was never released is never filled from a stand-in: the recipe names the training
configs that produce it (``aesop-bench train`` each, in order, then evaluate the result), or why it cannot be had.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data.sets import PAPER_SETS, SETS
from ..errors import AesopBenchError
from ..protocols import DEFAULT_PROTOCOL

# the paper splits DRealSR images into four quadrants for CLIP-IQA (memory); 2,000 x 1,500 and larger
DREALSR_CLIPIQA = {"drealsr": {"clipiqa": {"split_above": 1_000_000}}}


@dataclass(frozen=True)
class Recipe:
    """A paper table to reproduce: its layout, the zoo models per backbone, the sets and metrics, the protocol,
    per-set metric options, and the paper's rows no zoo model has."""

    name: str
    layout: str  # a report layout (report.tables.LAYOUTS)
    models: dict[str, tuple[str, ...]]  # backbone -> zoo names, in the table's order
    sets: tuple[str, ...]
    metrics: tuple[str, ...]
    protocol: str = DEFAULT_PROTOCOL
    set_options: dict[str, dict] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # the table's methods with no public weights: why
    # the table's methods that were never released but that shipped training configs produce: the configs in the
    # order they run, each ``NAME [key=value ...]`` as ``aesop-bench train --config NAME --opt key=value`` takes it
    train: dict[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""

    def model_names(self, backbone: str | None = None) -> list[str]:
        """The zoo models of one backbone (any case), or of all."""
        if backbone is not None:
            found = {b.lower(): b for b in self.models}
            if backbone.lower() not in found:
                raise AesopBenchError(f"{self.name} has no {backbone} models; its backbones: {', '.join(self.models)}")
            return list(self.models[found[backbone.lower()]])
        return [m for ms in self.models.values() for m in ms]

    def eval_options(self, set_name: str) -> dict:
        """The metric options of ``set_name`` as :class:`~aesop_bench.evaluation.config.EvalConfig` takes them
        (``{metric: {option: value}}``), from nested entries and the flat shorthands alike."""
        from ..metrics.registry import metric_options

        opts = check_set_options(self.set_options, self.name).get(set_name, {})
        return metric_options({k: v for k, v in opts.items() if isinstance(v, dict)},
                              **{k: v for k, v in opts.items() if not isinstance(v, dict)})


def check_set_options(set_options, where: str) -> dict:
    """Refuse per-set options that are neither ``{metric: {option: value}}`` (each metric's own option names)
    nor a shorthand (:data:`~aesop_bench.metrics.registry.SHORTHANDS`), naming what is valid; returns them."""
    from ..metrics.registry import metric_options

    if not isinstance(set_options, dict):
        raise AesopBenchError(f"{where}: set_options maps sets to their options, e.g. {{drealsr: {{clipiqa: "
                              "{split_above: 1000000}}}}")
    for set_name, opts in set_options.items():
        if set_name not in SETS or not isinstance(opts, dict):
            raise AesopBenchError(f"{where}: set_options[{set_name!r}] must be a registered set's options; sets: "
                                  f"{', '.join(SETS)}")
        try:
            metric_options({k: v for k, v in opts.items() if isinstance(v, dict)},
                           **{k: v for k, v in opts.items() if not isinstance(v, dict)})
        except AesopBenchError as exc:
            raise AesopBenchError(f"{where}: set_options[{set_name!r}]: {exc}") from None
    return set_options


# why a table's method cannot be reproduced here, where no training config produces it
NOT_RELEASED = "the authors' own training for the paper; the weights were never released"
CALGAN = ("CAL-GAN's official weights are not public: the AESOP paper's appendix says so (\"we present only a single "
          "data point ... as its official weights are not publicly available\"), and its values are the paper's")
LDL_DRCT = ("LDL on DRCT is the AESOP authors' own retraining (baseline_reproduced_DRCT+LDL_300K.pth), not known to "
            "be published; with the file, `aesop-bench weights add ldl_drct FILE` and evaluate the zoo model ldl_drct")
# Tables 3 and 5's ablations and AESOP at 200K: never released; these shipped training configs produce them (the
# AE pretraining first where the ablation changes the AE, then the SR training that reads it)
AESOP_200K = ("aesop_swinir steps=200000",)


def _sets(*names: str) -> tuple[str, ...]:
    """``names`` in the registry's order of the paper's sets."""
    return tuple(s for s in PAPER_SETS if s in names)


RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("table1", "table1",
           {"RRDB": ("esrgan", "spsr", "ldl_rrdb", "aesop_rrdb", "aesop_rrdb256"),
            "SwinIR": ("ldl_swinir", "aesop_swinir")},
           PAPER_SETS, ("lpips", "dists", "psnr", "ssim"), unavailable={"SwinIR+GAN": NOT_RELEASED},
           train={"AESOP-200K": AESOP_200K},
           description="Table 1: LPIPS, DISTS, PSNR, SSIM on the seven benchmark sets"),
    Recipe("table2", "table2", {"RRDB": ("realesrgan", "real_aesop_rrdb")}, ("realsr_v3", "drealsr"),
           ("niqe", "maniqa"), description="Table 2: NIQE and MANIQA of Real-ESRGAN and AESOP on RealSRv3 and "
           "DRealSR (real-world training)"),
    Recipe("table3", "table3", {"RRDB": ("ldl_rrdb", "aesop_rrdb")}, ("div2k_val",), ("dists", "psnr"),
           train={"Config-(a)": ("ae_rrdb_bicubic_enc", "aesop_rrdb_cfg_a"), "Config-(b)": ("ae_rrdb_no_lr", "aesop_rrdb_cfg_b")},
           description="Table 3: ablation of the AE's components, AESOP (128), DISTS and PSNR on DIV2K-val: the LDL "
           "baseline, (a) decoder with bicubic downsampling for the encoder, (b) decoder and encoder without the "
           "LR loss, (c) ours"),
    Recipe("table4", "table4", {"SwinIR": ("ldl_swinir", "aesop_swinir")}, PAPER_SETS, ("ae_psnr", "lr_psnr"),
           description="Table 4: AE-PSNR and LR-PSNR of LDL and AESOP (SwinIR)"),
    Recipe("table5", "table5", {"RRDB": ("ldl_rrdb", "aesop_rrdb")},
           _sets("manga109", "general100", "urban100", "div2k_val"), ("lpips", "psnr"),
           train={"(a)": ("ae_srresnet", "aesop_rrdb_srresnet_ae"), "(b)": ("ldl_rrdb_lpf",)},
           description="Table 5: (a) AESOP with an SRResNet-based AE, (b) LDL with a low-pass filter before the "
           "pixel loss; LPIPS and PSNR"),
    Recipe("table6", "table6",
           {"RRDB": ("esrgan", "bsrgan", "realesrgan", "real_ldl_rrdb", "real_aesop_rrdb")}, ("realsr_v3", "drealsr"),
           ("niqe", "maniqa", "musiq", "clipiqa"), set_options=DREALSR_CLIPIQA,
           description="Table 6: no-reference metrics on RealSRv3 and DRealSR (CLIP-IQA by quadrants on DRealSR)"),
    Recipe("table7", "table7",
           {"RRDB": ("esrgan", "spsr", "ldl_rrdb", "aesop_rrdb", "aesop_rrdb256"),
            "SwinIR": ("ldl_swinir", "aesop_swinir")},
           tuple(s for s in PAPER_SETS if s != "div2k_val"), ("fid", "pfid"),
           unavailable={"SwinIR+GAN": NOT_RELEASED, "LDL*": NOT_RELEASED},
           description="Table 7: FID and patch-FID"),
    Recipe("table8", "table8",
           {"RRDB": ("aesop_rrdb256",), "SwinIR": ("aesop_swinir",), "DRCT": ("aesop_drct",)},
           PAPER_SETS, ("lpips", "dists", "psnr", "ssim"), unavailable={"CALGAN": CALGAN, "LDL": LDL_DRCT},
           description="Table 8: CAL-GAN against AESOP (RRDB, SwinIR), LDL against AESOP (DRCT)"),
    Recipe("table9", "table4", {"RRDB": ("esrgan", "spsr", "ldl_rrdb", "aesop_rrdb")}, PAPER_SETS,
           ("ae_psnr", "lr_psnr"), description="Table 9: AE-PSNR and LR-PSNR of the RRDB methods"),
]}


def load_recipe(name_or_path: str) -> Recipe:
    """A shipped recipe by name (``table1``), or one from a YAML/JSON file."""
    if name_or_path in RECIPES:
        return RECIPES[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise AesopBenchError(f"unknown recipe {name_or_path!r}: give {', '.join(RECIPES)}, all, or a recipe file")
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise AesopBenchError(f"{path}: not a YAML recipe ({exc})") from None
    known = set(Recipe.__dataclass_fields__)
    if not isinstance(data, dict) or set(data) - known or not {"models", "sets", "metrics"} <= set(data):
        raise AesopBenchError(f"{path}: a recipe gives models, sets and metrics (and may give {', '.join(sorted(known))})"
                              f"; unknown keys: {sorted(set(data or {}) - known)}")
    from ..metrics.registry import expand_metrics
    from ..models.zoo import ZOO

    models = {str(b): tuple(ms) for b, ms in data["models"].items()}
    unknown = [m for ms in models.values() for m in ms if m not in ZOO]
    bad_sets = [s for s in data["sets"] if s not in SETS]
    if unknown or bad_sets:
        raise AesopBenchError(f"{path}: unknown zoo models {unknown} / sets {bad_sets}")
    return Recipe(name=data.get("name", path.stem), layout=data.get("layout", "generic"), models=models,
                  sets=tuple(data["sets"]), metrics=tuple(expand_metrics(list(data["metrics"]))),
                  protocol=data.get("protocol", DEFAULT_PROTOCOL),
                  set_options=check_set_options(data.get("set_options", {}), str(path)),
                  unavailable=_unavailable(data.get("unavailable", {}), path),
                  train={str(k): tuple(v if isinstance(v, list) else [v]) for k, v in (data.get("train") or {}).items()},
                  description=data.get("description", ""))


def _unavailable(value, path: Path) -> dict[str, str]:
    """A recipe file's ``unavailable``: ``{method: why}``, or a list of methods (no public weights)."""
    if isinstance(value, (list, tuple)):
        return {str(m): "no public weights" for m in value}
    if not isinstance(value, dict):
        raise AesopBenchError(f"{path}: unavailable lists the table's methods with no public weights, e.g. "
                              "{SwinIR+GAN: never released}")
    return {str(m): str(why) for m, why in value.items()}
