"""Where a run's time goes: the seconds the model and each metric spent per set, and per HR megapixel.

Timings are not results. They are kept apart from the values (the summary's ``timings`` entry, never under
``sets``; a run folder's next run starts from them), they enter no stored value's key, digest or version and no
comparison, and a rerun whose values are all stored computes nothing and leaves them as they were.

What is counted:

* ``model``: the network's calls on the images the SR cache did not hold (an image read from the cache costs
  nothing here), from the LR batch to the SR on the CPU; building the network and loading its weights are left
  out. The megapixels are the SR images' (the HR size).
* each metric: its calls on the images whose value was missing, per HR megapixel of those images; a set-level
  metric (FID, pFID) counts the features of the SR and the HR images (read from the feature cache where held) and
  the set's distance. The first call of a metric in a run builds its networks: ``s_per_mpix`` is taken from the
  calls after it where there are any (``steady_*``), from all of them otherwise.

Each entry says where it was measured (``on``: the device and torch's version). A later run on the same device
adds its time and pixels to the stored entry; on another device it replaces it.

Every finished run also adds its measured figures to ``$AESOP_BENCH_HOME/run_costs.json`` (one record per
machine and torch version), which ``reproduce --dry-run`` reads before its declared costs. Torch-free.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

RUN_COSTS_FILE = "run_costs.json"
FIELDS = ("seconds", "mpix", "images", "steady_seconds", "steady_mpix", "steady_images")


@dataclass
class Spent:
    """Time and HR megapixels spent on one part (the model, or one metric) of one set."""

    seconds: float = 0.0
    mpix: float = 0.0
    images: int = 0
    steady_seconds: float = 0.0  # the calls after a part's first in a run (which builds its networks)
    steady_mpix: float = 0.0
    steady_images: int = 0

    def add(self, seconds: float, mpix: float, images: int, steady: bool) -> None:
        self.seconds += seconds
        self.mpix += mpix
        self.images += images
        if steady:
            self.steady_seconds += seconds
            self.steady_mpix += mpix
            self.steady_images += images

    def rate(self) -> float | None:
        """Seconds per HR megapixel: of the steady calls where there are any, else of all."""
        if self.steady_mpix > 0:
            return self.steady_seconds / self.steady_mpix
        return self.seconds / self.mpix if self.mpix > 0 else None

    def as_dict(self, on: str) -> dict:
        rate = self.rate()
        return {"seconds": round(self.seconds, 6), "mpix": round(self.mpix, 6), "images": self.images,
                "steady_seconds": round(self.steady_seconds, 6), "steady_mpix": round(self.steady_mpix, 6),
                "steady_images": self.steady_images, "s_per_mpix": None if rate is None else round(rate, 6),
                "on": on}

    @classmethod
    def of(cls, entry: dict) -> "Spent":
        """A stored entry (:meth:`as_dict`) back as a :class:`Spent`."""
        return cls(*(type(getattr(cls, f))(entry.get(f, 0) or 0) for f in FIELDS))


class RunTimings:
    """What one run spends, per set: ``model`` and each metric (``{set: {part: Spent}}``, ``part`` is ``model``
    or a metric's name). ``on`` says where it is measured."""

    def __init__(self, on: str):
        self.on = on
        self.sets: dict[str, dict[str, Spent]] = {}
        self._called: set[str] = set()  # parts called once in this run

    def add(self, set_name: str, part: str, seconds: float, mpix: float, images: int) -> None:
        """``seconds`` spent by ``part`` on ``images`` images of ``mpix`` HR megapixels (no pixels: time that goes
        with the images counted before, as a set's distance)."""
        steady = part in self._called
        self._called.add(part)
        self.sets.setdefault(set_name, {}).setdefault(part, Spent()).add(seconds, mpix, images, steady)

    def as_dict(self) -> dict:
        """``{set: {"model": entry, "metrics": {metric: entry}}}`` of what was measured (:meth:`Spent.as_dict`)."""
        out: dict = {}
        for s, parts in self.sets.items():
            entry = out.setdefault(s, {})
            for part, spent in parts.items():
                if part == "model":
                    entry["model"] = spent.as_dict(self.on)
                else:
                    entry.setdefault("metrics", {})[part] = spent.as_dict(self.on)
        return out


def merge(stored: dict, new: dict) -> dict:
    """``stored`` timings (a run folder's last summary's) with a run's (:meth:`RunTimings.as_dict`): an entry
    measured on the same device adds its time and pixels; one measured elsewhere replaces the stored one.

    >>> a = {"set5": {"model": {"seconds": 2.0, "mpix": 1.0, "images": 5, "on": "cpu"}}}
    >>> b = {"set5": {"model": {"seconds": 1.0, "mpix": 1.0, "images": 5, "on": "cpu"}}}
    >>> merge(a, b)["set5"]["model"]["s_per_mpix"]
    1.5
    """
    out = json.loads(json.dumps(stored))  # a copy
    for s, entry in new.items():
        target = out.setdefault(s, {})
        parts = [("model", target, entry.get("model"))] if entry.get("model") else []
        parts += [(m, target.setdefault("metrics", {}), e) for m, e in (entry.get("metrics") or {}).items()]
        for name, where, e in parts:
            old = where.get(name)
            if old is not None and old.get("on") == e.get("on"):
                total = Spent.of(old)
                for f in FIELDS:
                    setattr(total, f, getattr(total, f) + type(getattr(total, f))(e.get(f, 0) or 0))
                where[name] = total.as_dict(e.get("on"))
            else:
                where[name] = dict(e)
    return out


def timing_lines(timings: dict, sets: list[str] | None = None) -> list[str]:
    """A plain-text table of a summary's ``timings``: one row per set, the seconds per HR megapixel of the
    model and each metric, the megapixels timed and the seconds in all; then where they were measured.

    >>> t = {"set5": {"model": {"seconds": 3.0, "mpix": 0.3, "images": 5, "s_per_mpix": 10.0, "on": "cpu"},
    ...               "metrics": {"psnr": {"seconds": 0.01, "mpix": 0.3, "images": 5, "s_per_mpix": 0.0333,
    ...                                    "on": "cpu"}}}}
    >>> print("\\n".join(timing_lines(t)))
    seconds per HR megapixel (MP: megapixels timed)
    set   model         psnr              total s
    set5  10 (0.30 MP)  0.0333 (0.30 MP)  3.0
    measured on: cpu
    """
    sets = [s for s in (sets or list(timings)) if s in timings]
    if not sets:
        return ["timings: none measured (every value was stored before, or nothing was computed)"]
    metrics = list(dict.fromkeys(m for s in sets for m in (timings[s].get("metrics") or {})))
    has_model = any(timings[s].get("model") for s in sets)
    head = ["set"] + (["model"] if has_model else []) + metrics + ["total s"]
    rows, where = [], set()

    def cell(e):
        if not e:
            return "-"
        where.add(e.get("on", "?"))
        rate = e.get("s_per_mpix")
        return "-" if rate is None else f"{_num(rate)} ({e.get('mpix', 0):.2f} MP)"

    for s in sets:
        entry = timings[s]
        parts = ([entry.get("model")] if has_model else []) + [(entry.get("metrics") or {}).get(m) for m in metrics]
        total = sum(e.get("seconds", 0) for e in parts if e)
        rows.append([s] + [cell(e) for e in parts] + [f"{total:.1f}"])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    out = ["seconds per HR megapixel (MP: megapixels timed)"]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head] + rows]
    out.append("measured on: " + "; ".join(sorted(where)))
    return out


def _num(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


# -- this machine's measured costs, for reproduce --dry-run --------------------------------------------------------

def machine(device: str) -> str:
    """What a measured cost is a cost of: the GPU's name, or the CPU's model and core count."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu: {_cpu_model()}, {os.cpu_count() or 1} cores"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def cost_key(identity: str) -> str | None:
    """The cost table's key of a model (``model:ARCH``) where its identity is a zoo architecture's in float32,
    untiled (what ``reproduce`` runs); None otherwise (a tiled or bf16 run, an interpolation, a caller's network).

    >>> cost_key("rrdb[num_feat=64]-x4-0123abcd"), cost_key("rrdb[]-x4-0123-tile128o32"), cost_key("module:Net-x4")
    ('model:rrdb', None, None)
    >>> cost_key("bicubic-matlab-uint8-v1")
    'model:bicubic'
    """
    from ..models.identity import BICUBIC_IDENTITY

    if identity == BICUBIC_IDENTITY:
        return "model:bicubic"
    m = re.match(r"([a-z_]+)\[[^\]]*\]-x\d+-[0-9a-f]+$", identity)
    return f"model:{m.group(1)}" if m else None


def run_costs_path() -> Path:
    from ..paths import home

    return home() / RUN_COSTS_FILE


def run_cost_records(path: Path | None = None) -> list[dict]:
    """The records of ``run_costs.json``: ``{"machine", "torch", "date", "runs", "seconds": {key: s},
    "mpix": {key: MP}, "images": {key: n}}``, one per machine and torch version ([] where there is none or it is
    unreadable)."""
    path = path or run_costs_path()
    try:
        data = json.loads(path.read_text())
        records = list(data["records"])
        return [r for r in records if isinstance(r, dict) and isinstance(r.get("seconds"), dict)
                and isinstance(r.get("mpix"), dict)]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def add_run_costs(timings: dict, model_key: str | None, where: str, torch_version: str,
                  path: Path | None = None) -> Path | None:
    """Add a run's timings (:meth:`RunTimings.as_dict`) to this machine's record (``where``: :func:`machine`) in
    ``run_costs.json``: per ``model:ARCH`` (``model_key``, None: the model's time is not added) and per metric,
    the steady seconds and megapixels (all of them where a part has no steady call). Written under a lock, so
    that runs finishing together add both."""
    import fcntl

    from ..fileutil import atomic_write_json

    seconds: dict[str, float] = {}
    mpix: dict[str, float] = {}
    images: dict[str, int] = {}
    for entry in timings.values():
        parts = [(model_key, entry.get("model"))] + list((entry.get("metrics") or {}).items())
        for key, e in parts:
            if key is None or not e:
                continue
            steady = "steady_" if e.get("steady_mpix") else ""
            s, mp, n = (e.get(f"{steady}{f}", 0) or 0 for f in ("seconds", "mpix", "images"))
            if mp > 0:
                seconds[key] = seconds.get(key, 0.0) + s
                mpix[key] = mpix.get(key, 0.0) + mp
                images[key] = images.get(key, 0) + int(n)
    if not mpix:
        return None
    path = path or run_costs_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = run_cost_records(path)
        mine = next((r for r in records if (r.get("machine"), r.get("torch")) == (where, torch_version)), None)
        if mine is None:
            mine = {"machine": where, "torch": torch_version, "runs": 0, "seconds": {}, "mpix": {}}
            records.append(mine)
        mine["runs"] = int(mine.get("runs", 0)) + 1
        mine["date"] = datetime.date.today().isoformat()
        counted = mine.setdefault("images", {})
        for key in mpix:
            mine["seconds"][key] = round(float(mine["seconds"].get(key, 0.0)) + seconds[key], 6)
            mine["mpix"][key] = round(float(mine["mpix"].get(key, 0.0)) + mpix[key], 6)
            counted[key] = int(counted.get(key, 0)) + images[key]
        atomic_write_json(path, {"records": records})
    return path


def measured_rates(record: dict) -> dict[str, float]:
    """Seconds per HR megapixel of each key of a ``run_costs.json`` record."""
    return {k: float(record["seconds"][k]) / float(mp) for k, mp in record["mpix"].items()
            if k in record["seconds"] and float(mp) > 0}


def measured_sizes(record: dict) -> dict[str, float]:
    """The mean HR megapixels per image each key of a ``run_costs.json`` record was measured on (where counted)."""
    images = record.get("images") or {}
    return {k: float(record["mpix"][k]) / int(n) for k, n in images.items()
            if k in record["mpix"] and int(n) > 0}
