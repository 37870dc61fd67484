"""Reading evaluation runs (the folders ``aesop-bench eval`` writes) for reports."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AesopBenchError, MissingFileError
from ..evaluation.runfolder import RunFolder, read_summary


@dataclass
class Run:
    """A run folder as the reports read it: its label, model, protocol, each set's summary and the per-image
    values (:func:`read_run`)."""

    path: Path
    label: str
    model: str
    identity: str
    protocol: dict
    sets: dict[str, dict]  # set -> {"n_images", "metrics": {metric: mean}}
    versions: dict[str, str]
    per_image: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)  # (set, metric) -> image -> v
    sr_folder: dict = field(default_factory=dict)  # result-folder runs: path, files, cropped images
    source: str = "model"  # model | folder: where its SR images came from (the compared area follows from it)

    def area(self, set_name: str) -> str:
        """The image area every metric of the run compares on a set: a model's runs the HR (the set's own, or
        LDL's under ``paper``) cropped as its record says, a result folder's runs the SR files' own area."""
        if self.source == "folder":
            return "the SR files' area"
        record = self.sets.get(set_name, {}).get("data") or {}
        return record.get("area") or f"the HR cropped to a multiple of {self.protocol.get('modcrop', '?')}"

    def sizes(self, set_name: str) -> str | None:
        """A hash of the compared size of every image of a set, where the run recorded one (result folders)."""
        return (self.sets.get(set_name, {}).get("data") or {}).get("sizes")

    def fallback(self, set_name: str) -> str:
        """Why a set was read from other files than the protocol's ('' when it was not)."""
        return (self.sets.get(set_name, {}).get("data") or {}).get("fallback", "")

    def sr_image(self, set_name: str, image: str) -> Path:
        """Where the run's SR image of ``image`` is: in its result folder, or saved with ``--save-sr``."""
        rel = self.sr_folder.get("files", {}).get(set_name, {}).get(image)
        if rel is not None:
            return Path(self.sr_folder["path"]) / rel
        return RunFolder(self.path).sr_image(set_name, image)

    @property
    def backbone(self) -> str:
        """The architecture family: RRDB, SwinIR, DRCT or Bicubic (SPSR is an RRDB network)."""
        from ..models.identity import family

        return family(self.identity)

    def value(self, set_name: str, metric: str) -> float | None:
        """The set's value of a metric (mean over images, or the set-level FID/pFID), None where absent."""
        return self.sets.get(set_name, {}).get("metrics", {}).get(metric)

    def partial(self, set_name: str, metric: str) -> dict | None:
        """A metric's value over part of a set (``{"n", "of", "mean", ...}``: the summary's ``partial`` entry), None
        where the set is whole or the metric absent."""
        return (self.sets.get(set_name, {}).get("partial") or {}).get(metric)

    def complete(self, set_name: str) -> bool | None:
        """Whether every value of the set covers all its images (None: no record says what the set holds)."""
        entry = self.sets.get(set_name, {})
        return False if entry.get("partial") else entry.get("complete")

    def images(self, set_name: str, metric: str) -> dict[str, float]:
        """``{image: value}`` of a metric on a set."""
        return self.per_image.get((set_name, metric), {})

    def interp_family(self) -> tuple[str, float] | None:
        """``('A -> B', alpha)`` for a network-interpolation run, else None."""
        from ..models.zoo import parse_interp, short_name

        try:
            parts = parse_interp(self.model)
        except AesopBenchError:
            return None
        return (f"{short_name(parts[0])} -> {short_name(parts[1])}", float(parts[2])) if parts else None


def model_label(model: str) -> str:
    """A short label (:func:`aesop_bench.models.zoo.short_name`)."""
    from ..models.zoo import short_name

    return short_name(model)


def read_run(path: str | Path, label: str | None = None) -> Run:
    """The run folder ``path`` (its summary.json and per_image.csv), labelled ``label`` or as the run says."""
    path = Path(path)
    folder = RunFolder(path)
    if not folder.has_summary():
        raise MissingFileError(f"{path}: no {folder.summary_file.name}; give folders written by `aesop-bench eval`")
    s = read_summary(folder.summary_file)
    per_image: dict[tuple[str, str], dict[str, float]] = {}
    if folder.per_image_file.is_file():
        with open(folder.per_image_file, newline="") as f:
            for r in csv.DictReader(f):
                per_image.setdefault((r["set"], r["metric"]), {})[r["image"]] = float(r["value"])
    model = s.get("model", {})
    label = label or model.get("label") or model_label(model.get("name", path.name))
    return Run(path=path, label=label, model=model.get("name", path.name),
               identity=model.get("identity", ""), protocol=s.get("protocol", {}), sets=s.get("sets", {}),
               versions=s.get("metric_versions", {}), per_image=per_image, sr_folder=s.get("sr_folder", {}),
               source=model.get("source", "model"))


def is_training_run(path: Path) -> bool:
    """A training run's folder, or a folder of them (``runs/train``), rather than an evaluation run."""
    def one(p: Path) -> bool:
        return (p / "ckpt").is_dir() or (p / "config.json").is_file()

    if RunFolder(path).has_summary() or not path.is_dir():
        return False
    return one(path) or any(one(c) for c in path.iterdir() if c.is_dir())


def load_runs(paths, labels: list[str] | None = None, log=None) -> list[Run]:
    """Evaluation runs from their folders; training-run folders among them (``runs/*`` holds both) are skipped
    with a line saying so."""
    kept = []
    for i, p in enumerate(paths):
        if is_training_run(Path(p)):
            if log is not None:
                log(f"skipped {p}: a training run (evaluate its checkpoint with `aesop-bench eval --model "
                    f"{Path(p) / 'ema.safetensors'}`)")
            continue
        kept.append((p, labels[i] if labels and i < len(labels) else None))
    if not kept:
        raise AesopBenchError(f"no evaluation run among {', '.join(map(str, paths))}; give folders written by "
                              "`aesop-bench eval`")
    runs = [read_run(p, label) for p, label in kept]
    seen: dict[str, int] = {}
    for r in runs:  # two runs of one model under different settings keep distinct labels
        seen[r.label] = seen.get(r.label, 0) + 1
    for r in runs:
        if seen[r.label] > 1:
            r.label = f"{r.label} ({r.path.name})"
    return runs


def check_comparable(runs: list[Run], metrics: list[str], allow_mixed: bool = False) -> list[str]:
    """Refuse (or, with ``allow_mixed``, describe) runs computed under different protocols, on different image
    areas (a model's HR cropped to the modcrop, a result folder's own area), or with different metric versions."""
    problems = []
    from ..protocols import normalised

    protocols = {json.dumps(normalised(r.protocol), sort_keys=True) for r in runs}
    if len(protocols) > 1:
        desc = "; ".join(f"{r.label}: {r.protocol.get('name')} (modcrop {r.protocol.get('modcrop')}, "
                         f"y_round {r.protocol.get('y_round')})" for r in runs)
        problems.append(f"runs use different protocols: {desc}")
    for set_name in sorted({s for r in runs for s in r.sets}):
        have = [r for r in runs if set_name in r.sets]
        if len({r.area(set_name) for r in have}) > 1:  # bicubic on Set5 under paper: 28.396 mod-12, 28.430 whole
            problems.append(f"runs compare different image areas of {set_name}: " +
                            "; ".join(f"{r.label}: {r.area(set_name)}" for r in have))
        sizes = {r.label: r.sizes(set_name) for r in have if r.sizes(set_name)}
        if len(set(sizes.values())) > 1:  # result folders of 512x512 and 504x504 images compare other areas
            problems.append(f"result folders hold SR images of different sizes on {set_name} (their values cover "
                            f"different areas): {', '.join(sizes)}")
    for m in metrics:
        versions = {r.versions.get(m) for r in runs if r.versions.get(m)}
        if len(versions) > 1:
            problems.append(f"metric {m} was computed in different versions: {sorted(versions)}")
    if problems and not allow_mixed:
        raise AesopBenchError("; ".join(problems) + ". Re-evaluate under one protocol, or pass --allow-mixed "
                              "to label the columns instead")
    return problems


def check_paper_protocol(runs: list[Run], allow_mixed: bool = False) -> list[str]:
    """Refuse (or, with ``allow_mixed``, describe) runs whose protocol differs from the paper's in a field that
    moves numbers: a 0.03 dB modcrop difference is larger than the deltas a paper comparison prints. (Sets read
    from other files than the paper's, where LDL's test data was missing, are labelled: :func:`fallbacks`.)"""
    from ..protocols import PROTOCOLS, differences

    paper = PROTOCOLS["paper"].as_dict()
    problems = []
    for r in runs:
        diff = differences(r.protocol, paper)
        if diff:
            problems.append(f"{r.label} was evaluated under {r.protocol.get('name')!r}, which differs from the "
                            "paper's protocol in " + ", ".join(f"{k} ({a} vs {b})" for k, (a, b) in diff.items()))
    if problems and not allow_mixed:
        raise AesopBenchError("; ".join(problems) + ". Re-evaluate with --protocol paper to compare with the paper, "
                              "or pass --allow-mixed to label the differences")
    return problems


def fallbacks(runs: list[Run]) -> list[str]:
    """One line per set that some runs read from its own files where the protocol reads LDL's (not at hand)."""
    by_set: dict[str, list[str]] = {}
    for r in runs:
        for s in r.sets:
            if r.fallback(s):
                by_set.setdefault(s, []).append(r.label)
    return [f"{s} was read from its own files under the mod-12 rule, not from LDL's test data as the paper's "
            f"evaluation reads it (`aesop-bench data download ldl`), by {', '.join(labels)}"
            for s, labels in sorted(by_set.items())]
