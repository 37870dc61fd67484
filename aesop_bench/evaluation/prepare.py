"""Before anything is computed: each set as the protocol reads it (downloaded or completed where allowed), the
weights the metrics need, and ``eval --fetch-only``, which does only this. Torch-free."""

from __future__ import annotations

import os

from ..data.sets import SETS, ResolvedSet, fingerprints, set_folder
from ..errors import AesopBenchError
from ..metrics.registry import get_spec
from ..metrics.validators import weights_validator
from .config import EvalConfig, ModelRef


def check_sets_at_hand(cfg: EvalConfig) -> None:
    """Under ``--no-download``, refuse the run before computing anything when any of its sets is missing or
    incomplete, listing every one (not only the first, after the sets before it were computed)."""
    if cfg.download:
        return
    problems = []
    for name in cfg.sets:
        try:
            resolve_or_download(name, cfg, {"ldl"})
        except AesopBenchError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise AesopBenchError(problems[0])
    if problems:
        raise AesopBenchError(f"{len(problems)} of the {len(cfg.sets)} sets are not at hand (--no-download):\n  " +
                              "\n  ".join(problems))


def resolve_or_download(name: str, cfg: EvalConfig, tried: set) -> ResolvedSet:
    """A set ready to evaluate, as the protocol reads it (:func:`aesop_bench.data.ldl.resolve_for`): a registered
    set is downloaded (or completed) when allowed and refused when it lacks images or holds others; a folder is
    taken as it is. LDL's test data is fetched once per run (``tried`` remembers) where the protocol reads it and
    it is missing; when that fails the set's own files are used, and the log and the run's record say so."""
    from ..data import ldl

    reads_ldl = ldl.reads_ldl(name, cfg.protocol)
    if reads_ldl and ldl.set_dir(name, cfg.data_root, cfg.protocol.scale) is None and cfg.download \
            and "ldl" not in tried:
        tried.add("ldl")
        cfg.log(f"{name}: LDL's test data (which the paper's evaluation reads) is not under {cfg.data_root}; "
                "downloading")
        try:
            ldl.download(cfg.data_root, log=cfg.log, sets=[s for s in cfg.sets if ldl.reads_ldl(s, cfg.protocol)])
        except (AesopBenchError, OSError) as exc:  # OSError: a read-only data root
            cfg.log(f"{name}: {exc}")
    if reads_ldl and ldl.set_dir(name, cfg.data_root, cfg.protocol.scale) is not None:
        return ldl.resolve_for(name, cfg.data_root, cfg.protocol)
    if name in SETS:
        from ..data.manage import download_set, incomplete, require_complete

        absent = set_folder(name, cfg.data_root) is None
        if cfg.download and (absent or incomplete(name, cfg.data_root)[0]) and (SETS[name].archive or absent or
                                                                                 fingerprints(name)):
            cfg.log(f"{name}: {'not under ' + str(cfg.data_root) if absent else 'incomplete'}; downloading")
            download_set(name, cfg.data_root, log=cfg.log)
        if set_folder(name, cfg.data_root) is not None:
            require_complete(name, cfg.data_root)
    return ldl.resolve_for(name, cfg.data_root, cfg.protocol)


def weight_names(cfg: EvalConfig) -> list[str]:
    """The weights entries the run's metrics need: ``ae_psnr``'s ``ae`` option replaces the released AE (a file is
    used as it is, a name is fetched instead)."""
    names: list[str] = []
    for m in cfg.metrics:
        needs = list(get_spec(m).weights)
        ae = cfg.options_for(m).get("ae")
        if ae:
            needs = [n for n in needs if n != "aesop_ae"] + ([] if os.path.isfile(ae) else [ae])
        names += needs
    return list(dict.fromkeys(names))


def fetch_weights(cfg: EvalConfig) -> None:
    """Download the weight files the run's metrics need and the cache lacks (``--no-download``: never)."""
    from .. import weights as wm

    for n in weight_names(cfg):
        if n in wm.manifest() and not wm.cache_path(wm.entry(n)).is_file():
            wm.download(n, log=cfg.log, validate=weights_validator(n))


def _set_line(name: str, res: ResolvedSet, cfg: EvalConfig) -> tuple[str, int]:
    files = list(res.hr_files)
    if res.lr_source == "folder":
        files += [f for f in (res.lr_file(h, cfg.protocol.scale) for h in res.hr_files) if f]
    size = sum(f.stat().st_size for f in files)
    line = f"{name}: {len(res.hr_files)} images, {size / 1e6:.1f} MB, {res.data.get('hr', res.root)}"
    if res.data.get("source") == "ldl":
        line += f" (LR: {res.data['lr']})"
    if res.data.get("fallback"):
        line += " (fallback: LDL's test data not at hand)"
    return line, size


def prefetch(cfg: EvalConfig) -> list[str]:
    """Download and verify what evaluating ``cfg`` needs (each set as the protocol reads it, LDL's data included,
    the metrics' weights, a zoo model's weights) and compute nothing; one line per set and weight file, then the
    total size on disk."""
    from .. import weights as wm

    if not cfg.download:
        raise AesopBenchError("--fetch-only downloads: leave out --no-download")
    lines, total, tried = [], 0, set()
    for name in cfg.sets:
        line, size = _set_line(name, resolve_or_download(name, cfg, tried), cfg)
        lines.append(line)
        total += size
    fetch_weights(cfg)
    names = [n for m in cfg.metrics for n in get_spec(m).weights]
    if isinstance(cfg.source, ModelRef):
        from ..models.zoo import ZOO, resolve_model

        model = cfg.source.name
        resolve_model(model, cfg.source.arch, download=True)
        names += [ZOO[model].weights] if model in ZOO and ZOO[model].weights else []
    for n in dict.fromkeys(names):
        path = wm.cache_path(wm.entry(n)) if n in wm.manifest() else None
        if path is not None and path.is_file():
            total += path.stat().st_size
            lines.append(f"weights {n}: {path.stat().st_size / 1e6:.1f} MB, {path}")
    lines.append(f"total {total / 1e6:.1f} MB, verified; run the same command with --no-download to compute")
    return lines
