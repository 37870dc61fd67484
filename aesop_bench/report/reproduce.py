"""``aesop-bench reproduce``: a paper table from nothing, side by side with the published numbers.

A recipe (:mod:`.recipes`) names models, sets, metrics and options. :func:`plan` works out what is missing
(set files with their sizes, weight files with theirs), what must be computed (each model on each set, skipping
what the run folders already hold) and about how long it takes; :func:`reproduce` downloads what has a pinned
source (and stops, before computing anything, naming the files to fetch by hand where none exists), evaluates
every model through the normal evaluator (cached and resumable: a killed run started again computes only what
is missing; under torchrun the images are shared across ranks) and writes the table (Markdown, LaTeX, CSV) with
the paper's value and the difference in every cell, and the PD plot of the table's models.

Output folder (default ``reports/reproduce/RECIPE[-BACKBONE]``): ``runs/MODEL-PROTOCOL/`` (one run folder per
model), ``RECIPE.md``, ``.tex``, ``.csv``, ``pd_SET.png``.

Length: a recipe's plan, fetch, evaluation and table are the stages of one command, read top to bottom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data.sets import SETS
from ..errors import AesopBenchError
from ..metrics.registry import METRICS
from .recipes import Recipe

# Rough CPU cost, in seconds per HR megapixel on one 2-core x86 machine (this project's CI class), for the
# estimate of --dry-run: the networks' (rougher than the metrics'; DRCT measured at 1.16 x SwinIR-M on a 64 x 64 LR
# input, applied to the figure here), and each metric's from its registry entry.
CPU_SECONDS_PER_MPIX = {
    "model:rrdb": 40.0, "model:swinir": 90.0, "model:spsr": 60.0, "model:drct": 105.0, "model:bicubic": 0.3,
    **{name: spec.cpu_s_per_mpix for name, spec in METRICS.items()},
}
# Declared GPU cost (--device cuda), in seconds per HR megapixel, until benchmarks/gpu_check.py has measured
# this machine's (``gpu_costs.json`` in $AESOP_BENCH_HOME, which replaces these key by key). The networks: their
# FLOPs per HR megapixel, counted with torch's FlopCounterMode (RRDB 2.24 TFLOP, SwinIR-M 1.63 TFLOP, DRCT 2.27
# TFLOP; SPSR taken as 1.5 x RRDB), at an assumed sustained 50 TFLOP/s for convolutions and 25 TFLOP/s for
# windowed attention (SwinIR, DRCT) (a fraction of a current datacentre GPU's TF32/bf16 peak). The metrics: their CPU cost
# above divided by 40, a rough CPU-to-GPU ratio for these networks, at least 0.005 s.
GPU_MODEL_SECONDS_PER_MPIX = {"model:rrdb": 2.24 / 50, "model:swinir": 1.63 / 25, "model:spsr": 1.5 * 2.24 / 50,
                              "model:drct": 2.27 / 25, "model:bicubic": 0.005}
GPU_COSTS_FILE = "gpu_costs.json"


def gpu_costs(device: str | None = None) -> tuple[dict[str, float], str]:
    """Seconds per HR megapixel on a GPU per model architecture and metric, and where they come from: the
    declared figures, replaced key by key by those ``benchmarks/gpu_check.py`` measured. ``gpu_costs.json`` keeps
    one record per GPU and torch version: the record of ``device`` (a GPU's name) where given, else the latest."""
    costs = dict(GPU_MODEL_SECONDS_PER_MPIX)
    costs.update({k: max(v / 40, 0.005) for k, v in CPU_SECONDS_PER_MPIX.items() if not k.startswith("model:")})
    measured = _costs_path()
    try:
        records = cost_records(measured)
        mine = [r for r in records if device is None or r.get("device") == device]
        rec = max(mine, key=lambda r: str(r.get("date", ""))) if mine else None
        got = {k: float(v) for k, v in rec["seconds_per_mpix"].items()} if rec else {}
    except (ValueError, KeyError, TypeError, AttributeError):
        return costs, f"declared costs: {measured} is unreadable, run benchmarks/gpu_check.py again"
    if not got:
        return costs, ("declared costs: FLOP counts at an assumed throughput; run benchmarks/gpu_check.py on the "
                       "GPU to measure them")
    costs.update(got)
    others = sorted({str(r.get("device")) for r in records} - {str(rec.get("device"))})
    return costs, (f"measured by benchmarks/gpu_check.py on {rec.get('device', '?')} ({rec.get('date', '?')}, "
                   f"torch {rec.get('torch', '?')}) for {', '.join(sorted(got))}; declared for the rest" +
                   (f"; also measured: {', '.join(others)}" if others else ""))


def _costs_path() -> Path:
    from ..paths import home

    return home() / GPU_COSTS_FILE


def cost_records(path: Path | None = None) -> list[dict]:
    """The measured-cost records of ``gpu_costs.json`` (a file of one record, as written before, is one)."""
    import json

    path = path or _costs_path()
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return list(data["records"]) if "records" in data else [data]


def add_cost_record(record: dict, path: Path | None = None) -> Path:
    """Keep ``record`` (device, torch, date, seconds_per_mpix) in ``gpu_costs.json``, replacing the record of the
    same GPU and torch version."""
    from ..fileutil import atomic_write_json

    path = path or _costs_path()
    try:
        kept = [r for r in cost_records(path) if (r.get("device"), r.get("torch")) !=
                (record.get("device"), record.get("torch"))]
    except (ValueError, KeyError, TypeError):  # an unreadable file is replaced
        kept = []
    atomic_write_json(path, {"records": [*kept, record]})
    return path


# typical HR megapixels per image, where the set is not on disk yet (each set's registry entry)
TYPICAL_MPIX = {name: s.typical_mpix for name, s in SETS.items() if s.typical_mpix is not None}


@dataclass
class Plan:
    recipe: Recipe
    models: list[str]
    out: Path
    set_downloads: list[tuple[str, str, int | None]] = field(default_factory=list)  # (set, file, bytes)
    weight_downloads: list[tuple[str, str, int | None]] = field(default_factory=list)  # (name, url, bytes)
    manual: list[str] = field(default_factory=list)  # what must be fetched by hand, and where it goes
    ldl_missing: list[str] = field(default_factory=list)  # sets the protocol reads from LDL's files, not here
    runs: list[tuple[str, list[str]]] = field(default_factory=list)  # (model, sets still to compute)
    estimate_s: float = 0.0  # on a 2-core CPU
    gpu_estimate_s: float = 0.0  # on one GPU (see gpu_costs)
    gpu_source: str = ""
    # the table's never-released methods and the trainings that produce them: (method, [(config, GPU seconds)])
    trainings: list[tuple[str, list[tuple[str, float]]]] = field(default_factory=list)
    # zoo models whose weights are not here and that shipped configs can train instead: (model, [(config, s)])
    trainable: list[tuple[str, list[tuple[str, float]]]] = field(default_factory=list)

    @property
    def download_bytes(self) -> int:
        return sum(n or 0 for _, _, n in self.set_downloads + self.weight_downloads)

    @property
    def n_runs(self) -> int:
        return sum(len(s) for _, s in self.runs)

    def run_dir(self, model: str) -> Path:
        return self.out / "runs" / f"{model}-{self.recipe.protocol}"

    def lines(self, device: str) -> list[str]:
        def size(n):
            return "size unknown" if n is None else f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"

        out = [f"{self.recipe.name}: {len(self.models)} models x {len(self.recipe.sets)} sets, metrics "
               f"{', '.join(self.recipe.metrics)}, protocol {self.recipe.protocol}"]
        out += [f"not reproducible here: {m}: {why}" for m, why in self.recipe.unavailable.items()]
        for method, steps in self.trainings:
            total = sum(t for _, t in steps)
            out.append(f"not computed (never released; no stand-in is used): {method}; train it with "
                       + ", then ".join(f"`{train_command(c)}`" for c, _ in steps)
                       + f" (about {_minutes(total)} on one GPU, declared FLOP counts at an assumed throughput: "
                       "aesop_bench/train/cost.py), then evaluate the run's checkpoint")
        out.append(f"to download: {len(self.set_downloads)} set files, {len(self.weight_downloads)} weight files "
                   f"({self.download_bytes / 1e6:.1f} MB where sizes are known)")
        by_set: dict[str, list[tuple[str, int | None]]] = {}
        for s, f, n in self.set_downloads:
            by_set.setdefault(s, []).append((f, n))
        for s, files in by_set.items():
            known = [n for _, n in files if n is not None]
            out.append(f"  set {s}: {len(files)} files (" + ("size unknown" if not known else
                                                              f"{sum(known) / 1e6:.1f} MB") +
                       ("" if len(known) in (0, len(files)) else ", some sizes unknown") + "): " +
                       ", ".join(f.rsplit("/", 1)[-1] for f, _ in files))
        out += [f"  weights {w}: {u} ({size(n)})" for w, u, n in self.weight_downloads]
        out += [f"  by hand: {m}" for m in self.manual]
        out += [f"  or train {m} here: " + ", then ".join(f"`{train_command(c)}`" for c, _ in steps) +
                f" (about {_minutes(sum(t for _, t in steps))} on one GPU, declared)" for m, steps in self.trainable]
        if self.ldl_missing:
            from ..data.ldl import MIRRORS

            out.append(f"  LDL's test data for {', '.join(self.ldl_missing)} (the paper protocol's files for them): "
                       f"from {MIRRORS[0]}, size unknown; where that fails, each set's own files are used under the "
                       "mod-12 rule and the tables say so")
        todo = [(m, s) for m, s in self.runs if s]
        out.append(f"to compute: {sum(len(s) for _, s in todo)} (model, set) runs")
        out += [f"  {m}: {', '.join(s)}" for m, s in todo]
        if device.startswith("cuda"):
            out.append(f"estimate: about {_minutes(self.gpu_estimate_s)} on one GPU ({self.gpu_source}); about "
                       f"{_minutes(self.estimate_s)} on a 2-core CPU")
        else:
            out.append(f"estimate: about {_minutes(self.estimate_s)} on a 2-core CPU")
        return out


def train_command(spec: str) -> str:
    """``aesop-bench train`` of a recipe's training entry ``NAME [key=value ...]``."""
    from ..train.config import load_config

    name, *opts = spec.split()
    kind = load_config(name).kind
    return f"aesop-bench train {kind} --config {name}" + "".join(f" --opt {o}" for o in opts)


def training_gpu_seconds(spec: str) -> float:
    """The declared GPU time of a recipe's training entry (:mod:`aesop_bench.train.cost`)."""
    from ..train.config import load_config
    from ..train.cost import gpu_seconds

    name, *opts = spec.split()
    return gpu_seconds(load_config(name, opts))


def _minutes(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def grand_total(plans: list[Plan], device: str) -> str:
    """One line over several recipes' plans (``reproduce all --dry-run``); a file or run two recipes share is
    counted once."""
    files = {(s, f): n for p in plans for s, f, n in p.set_downloads}
    files.update({(w, u): n for p in plans for w, u, n in p.weight_downloads})
    runs = {(p.run_dir(m), s) for p in plans for m, todo in p.runs for s in todo}
    cpu = sum(p.estimate_s for p in plans)
    line = (f"grand total over {len(plans)} tables: {len(files)} files to download "
            f"({sum(n or 0 for n in files.values()) / 1e6:.1f} MB where sizes are known), {len(runs)} (model, set) "
            f"runs to compute, about {_minutes(cpu)} on a 2-core CPU")
    if device.startswith("cuda"):
        line += f", about {_minutes(sum(p.gpu_estimate_s for p in plans))} on one GPU"
    line += " (a run two tables share is computed once: the totals are upper bounds)"
    cells = [paper_cells(p.recipe) for p in plans]
    total = {k: sum(c[k] for c in cells) for k in cells[0]} if cells else {}
    trainings = {c for p in plans for _, steps in p.trainings for c, _ in steps}
    if total:
        line += (f"\npaper cells: {sum(total.values())}; computable with public weights: {total['public']}; "
                 f"after training a shipped config: {total['train']} ({len(trainings)} trainings, about "
                 f"{_minutes(sum(training_gpu_seconds(c) for c in trainings))} on one GPU); not reproducible here: "
                 f"{total['unavailable']}" + (f"; mapped to nothing: {total['unmapped']}" if total['unmapped'] else ""))
    return line


def paper_cells(recipe: Recipe) -> dict[str, int]:
    """The paper's cells of ``recipe``'s table (its rows of the paper-tables CSV) by what this project can do with
    them: ``public`` (a zoo model of the recipe whose weights are published), ``train`` (a method a shipped
    training config produces), ``unavailable`` (a method the recipe names as not reproducible), ``unmapped``
    (none of these: a recipe that misses a row)."""
    from .. import weights as wm
    from ..data.sets import paper_set_name
    from ..models.zoo import ZOO
    from .tables import load_paper

    models = {ZOO[m].paper: m for m in recipe.model_names() if ZOO[m].paper}
    sets = {paper_set_name(s) for s in recipe.sets}
    out = dict.fromkeys(("public", "train", "unavailable", "unmapped"), 0)
    for (table, backbone, method, patch, set_name, metric) in load_paper():
        if table != recipe.name:
            continue
        model = models.get((backbone, method, patch))
        if model is not None and set_name in sets and metric in recipe.metrics:
            weights = ZOO[model].weights
            out["public" if weights and wm.entry(weights).urls else "unavailable"] += 1
        elif method in recipe.train:
            out["train"] += 1
        elif method in recipe.unavailable:
            out["unavailable"] += 1
        else:
            out["unmapped"] += 1
    return out


def _mpix(set_name: str, data_root: Path) -> tuple[int, float]:
    """(images, total HR megapixels) of a set: from its files where present, else typical figures."""
    from ..data.sets import SETS, list_images, set_folder

    root = set_folder(set_name, data_root)
    if root is not None:
        from PIL import Image

        from ..data.sets import HR_DIRS, find_child

        files = list_images(find_child(root, HR_DIRS) or find_child(root, ("LR",)) or root)
        if files:
            total = 0.0
            for f in files:
                with Image.open(f) as im:
                    total += im.size[0] * im.size[1] / 1e6
            return len(files), total
    n = SETS[set_name].n_images or 50
    return n, n * TYPICAL_MPIX.get(set_name, 0.5)


def plan(recipe: Recipe, backbone: str | None, data_root: Path, out: Path, device: str = "cpu") -> Plan:
    """What reproducing ``recipe`` needs: nothing is downloaded or computed here."""
    from .. import weights as wm
    from ..data.manage import incomplete
    from ..data.sets import SETS, fingerprints, set_folder
    from ..metrics.registry import get_spec
    from ..models.zoo import ZOO

    from ..data import ldl
    from ..protocols import get_protocol

    p = Plan(recipe, recipe.model_names(backbone), out)
    protocol = get_protocol(recipe.protocol)
    p.ldl_missing = [s for s in recipe.sets if ldl.reads_ldl(s, protocol)
                     and ldl.set_dir(s, data_root, protocol.scale) is None]
    for s in recipe.sets:
        entry = SETS[s]
        present = set_folder(s, data_root) is not None
        missing, _ = incomplete(s, data_root) if present else ([], [])
        if present and not missing:
            continue
        rows = fingerprints(s)
        if rows:
            lacking = set(missing) if present else None  # None: the whole set
            for r in rows:
                if lacking is None or (r["file"].startswith("HR/") and r["file"][3:] in lacking):
                    p.set_downloads.append((s, r["file"], int(r["bytes"])))
        elif entry.archive is not None and not present:
            p.set_downloads.append((s, entry.archive.url, None))
        else:
            p.manual.append(f"set {s} ({entry.n_images or '?'} images) into {Path(data_root) / entry.folder}: "
                            f"{entry.manual or 'no public source is pinned'}")
    needed = []
    for m in p.models:
        needed.append(ZOO[m].weights)
        for metric in recipe.metrics:
            needed += list(get_spec(metric).weights)
    p.trainable = [(m, [(c, training_gpu_seconds(c)) for c in ZOO[m].train]) for m in p.models
                   if ZOO[m].train and not wm.cache_path(wm.entry(ZOO[m].weights)).is_file()]
    for name in dict.fromkeys(n for n in needed if n):
        e = wm.entry(name)
        if wm.cache_path(e).is_file():
            continue
        if e.urls:
            p.weight_downloads.append((name, e.urls[0], e.size))
        else:
            p.manual.append(f"weights {name} ({e.file}): {e.manual}; then `aesop-bench weights add {name} FILE`")
    p.trainings = [(method, [(c, training_gpu_seconds(c)) for c in configs])
                   for method, configs in recipe.train.items()]
    sizes = {s: _mpix(s, data_root) for s in recipe.sets}
    gpu, p.gpu_source = gpu_costs()
    for m in p.models:
        run = p.run_dir(m)
        stored = _stored_sets(run, recipe)
        todo = [s for s in recipe.sets if s not in stored]
        p.runs.append((m, todo))
        arch = ZOO[m].arch
        per_mpix = CPU_SECONDS_PER_MPIX.get(f"model:{arch}", 60.0) + sum(
            CPU_SECONDS_PER_MPIX.get(x, 5.0) for x in recipe.metrics)
        gpu_per_mpix = gpu.get(f"model:{arch}", 0.1) + sum(gpu.get(x, 0.1) for x in recipe.metrics)
        mpix = sum(sizes[s][1] for s in todo)
        p.estimate_s += mpix * per_mpix
        p.gpu_estimate_s += mpix * gpu_per_mpix
    return p


def _stored_sets(run: Path, recipe: Recipe) -> set[str]:
    """Sets whose every metric of the recipe is in the run's summary (a finished evaluation)."""
    from ..evaluation.runfolder import RunFolder, read_summary

    folder = RunFolder(run)
    if not folder.has_summary():
        return set()
    sets = read_summary(folder.summary_file).get("sets", {})
    return {s for s, v in sets.items() if all(m in v.get("metrics", {}) for m in recipe.metrics)}


def _fetch(p: Plan, data_root: Path, log) -> None:
    from .. import weights as wm
    from ..data.manage import download_set
    from ..metrics.validators import weights_validator

    for s in dict.fromkeys(s for s, _, _ in p.set_downloads):
        download_set(s, data_root, log=log)
    if p.ldl_missing:
        from ..data import ldl

        try:
            ldl.download(data_root, log=log, sets=p.ldl_missing)
        except (AesopBenchError, OSError) as exc:
            log(f"{exc}\n{', '.join(p.ldl_missing)}: the sets' own files are used under the mod-12 rule instead")
    for name, _, _ in p.weight_downloads:
        wm.download(name, log=log, validate=weights_validator(name))


def reproduce(recipe: Recipe, backbone: str | None = None, device: str = "cpu", data_root: Path | None = None,
              out: Path | None = None, dry_run: bool = False, download: bool = True, threads: int | None = None,
              progress: bool = False, log=print, fetch_only: bool = False) -> dict:
    """Reproduce ``recipe``; returns ``{"plan", "table", "files", "verdict"}`` (only ``plan`` for a dry run)."""
    from ..distributed import ranks
    from ..evaluation.config import ModelRef, build_config
    from ..evaluation.runner import run_evaluation
    from ..models.options import RunOptions
    from ..paths import data_root as default_root
    from ..protocols import get_protocol

    data_root = Path(data_root) if data_root else default_root()
    out = Path(out) if out else Path("reports") / "reproduce" / (recipe.name + (f"-{backbone.lower()}" if backbone else ""))
    rank = ranks()[0]
    p = plan(recipe, backbone, data_root, out, device)
    say = log if rank == 0 else (lambda m: None)
    for line in p.lines(device):
        say(line)
    if dry_run:
        return {"plan": p}
    if p.manual:
        raise AesopBenchError("stopped before computing anything: fetch these by hand first:\n  " +
                              "\n  ".join(p.manual))
    if fetch_only and not download:
        raise AesopBenchError("--fetch-only downloads: leave out --no-download")
    if (p.set_downloads or p.weight_downloads) and not download:
        raise AesopBenchError("stopped before computing anything: files are missing and downloads are off "
                              "(--no-download); the list is above")
    from ..distributed import barrier, init

    rank, world, _ = init()  # every rank joins first, then waits (up to $AESOP_BENCH_DIST_TIMEOUT) for the fetch
    if rank == 0:
        _fetch(p, data_root, say)
    barrier(world)
    if fetch_only:
        say("fetched; run the same command with --no-download to compute (e.g. where there is no internet)")
        return {"plan": p}
    protocol = get_protocol(recipe.protocol)
    for model, todo in p.runs:
        for s in todo:
            cfg = build_config(ModelRef(model), [s], list(recipe.metrics), protocol, data_root=data_root,
                               out=p.run_dir(model), run=RunOptions(device=device),
                               metric_options=recipe.eval_options(s), download=False, progress=progress, log=say,
                               threads=threads)
            run_evaluation(cfg)
    if rank != 0:
        return {"plan": p}
    return _write_table(p, backbone, say)


def _write_table(p: Plan, backbone: str | None, say) -> dict:
    from ..fileutil import atomic_write_text
    from .plots import pd_plot
    from .runs import load_runs
    from .tables import FORMATS, decimals, report

    recipe = p.recipe
    runs = load_runs([p.run_dir(m) for m in p.models])
    layout = recipe.layout
    table = report(runs, layout, list(recipe.metrics), list(recipe.sets), compare_paper=True)
    files = []
    for f, (write, suffix) in FORMATS.items():
        path = p.out / f"{recipe.name}{suffix}"
        atomic_write_text(path, write(table))
        files.append(path)
    if "lpips" in recipe.metrics and "psnr" in recipe.metrics:
        files += pd_plot(runs, recipe.sets[0], "lpips", "psnr", p.out / f"pd_{recipe.sets[0]}.png",
                         f"{recipe.name}: perception-distortion, {recipe.sets[0]}")
    within = differ = absent = 0
    worst = (0.0, "")
    for (metric, set_name, i), cell in table.cells.items():
        if cell.value is None:
            continue
        if cell.paper is None:
            absent += 1
            continue
        d = round(cell.value, decimals(metric)) - cell.paper
        if abs(d) <= 0.5 * 10 ** -decimals(metric) + 1e-12:
            within += 1
        else:
            differ += 1
            if abs(d) > abs(worst[0]):
                worst = (d, f"{metric} on {set_name}, {runs[i].label}")
    verdict = [f"cells within the paper's rounding: {within}",
               f"cells that differ: {differ}" + (f" (largest: {worst[0]:+g}, {worst[1]})" if differ else ""),
               f"cells with no paper value: {absent}"]
    for line in [f"wrote {f}" for f in files] + verdict:
        say(line)
    return {"plan": p, "table": table, "files": files, "verdict": verdict}


def recipes_for(name: str) -> list[Recipe]:
    """``all`` -> every shipped recipe; otherwise the one named (or a recipe file)."""
    from .recipes import RECIPES, load_recipe

    return list(RECIPES.values()) if name == "all" else [load_recipe(name)]


__all__ = ["plan", "reproduce", "recipes_for", "Plan", "grand_total", "gpu_costs"]
