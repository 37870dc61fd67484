"""The results store of one evaluation run: per-image rows, resumable.

Layout of a run folder::

    run.json        model and protocol of the run (fixed at the first start)
    rows.jsonl      one JSON object per (set, image, metric), appended and
                    fsynced as each image finishes; a row may carry ``src``,
                    a hash of the files it was computed from (result
                    folders), and then counts only while they are unchanged (rank R > 0 of a torchrun
                    evaluation appends to rows.rR.jsonl; all are read back)
    per_image.csv   set,image,metric,value,version,protocol (written at the end)
    summary.json    {"model", "protocol", "sets": {SET: {"n_images", "metrics": {M: mean}}}, ...}

A run killed at any moment leaves at most one partial line at the end of
``rows.jsonl``; it is ignored when the run is started again, and only the
missing rows are computed. The final files are written atomically.

Length: the run folder's files (rows, lock, summary, CSV) and the in-memory store share one row format and one
summary builder.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

from ..errors import AesopBenchError
from ..fileutil import atomic_write_json, atomic_write_text, remove_stale_temps
from ..metrics.registry import METRICS
from ..protocols import normalised

SCHEMA = 1
SET_ROW = "/set"  # the image key of set-level values (FID, pFID): no file name can hold a "/"
_OLD_SET_ROW = "*"  # what earlier versions wrote, read as SET_ROW for the set-level metrics
UNCACHED = "uncached-"  # in the identity of an in-memory model nothing vouches for (aesop_bench.api)


_SET_LEVEL = {name for name, spec in METRICS.items() if spec.kind == "distribution"}


class ResultStore:
    """A run folder's stored values: ``rows.jsonl`` (one line per value, appended as computed), one rank's
    ``rows.rN.jsonl`` under torchrun, and at the end ``per_image.csv`` and ``summary.json`` (module docstring).
    A value is looked up by (set, image, metric) and counts only under its version and source hash."""

    def __init__(self, out_dir: str | os.PathLike, model: dict, protocol: dict, rank: int = 0):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.model = model
        self.protocol = protocol
        self.rank = rank
        self._lock = self._acquire_lock() if rank == 0 else None
        if rank == 0:  # the folder is ours now: partial files of a killed run go
            remove_stale_temps(self.dir, (".*.tmp", "sr/*/.*.tmp"))
        self.rows: dict[tuple[str, str, str], tuple[float, str, str | None]] = {}
        try:
            self._check_run_file()
            self._load_rows()
        except BaseException:
            self.close()
            raise

    def _acquire_lock(self):
        """One writer per run folder: a second evaluation into it (another process, or the same one) is refused
        while the first runs, so the check and creation of run.json cannot interleave and rows never mix."""
        import fcntl

        f = open(self.dir / ".lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise AesopBenchError(f"{self.dir} is being written by another evaluation; wait for it to finish, or "
                                  "choose another --out folder") from None
        return f

    def close(self) -> None:
        """Release the run folder (also released when the process ends)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _check_run_file(self) -> None:
        path = self.dir / "run.json"
        run = {"schema": SCHEMA, "model": self.model, "protocol": self.protocol}
        if path.is_file():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(old, dict) or not isinstance(old.get("model", {}), dict):
                    raise ValueError("not a JSON object with a model")
            except ValueError as exc:
                raise AesopBenchError(f"{path} is damaged ({exc}); it records which model and protocol the folder's "
                                      "results belong to. Delete the run folder to start afresh") from None
            if not self._has_rows() and self.rank == 0:  # a run that stored nothing: the folder is free
                atomic_write_json(path, run)
                return
            if not self._same_model(str(old.get("model", {}).get("identity")), str(self.model.get("identity"))) or \
                    normalised(old.get("protocol", {})) != normalised(self.protocol):
                from ..protocols import differences

                diff = differences(old.get("protocol", {}), self.protocol)
                what = ", ".join(f"{k} {a} vs {b}" for k, (a, b) in diff.items())
                raise AesopBenchError(
                    f"{self.dir} holds results of model {old.get('model', {}).get('name')!r} under protocol "
                    f"{old.get('protocol', {}).get('name')!r}; this run is model {self.model.get('name')!r} under "
                    f"{self.protocol.get('name')!r}" + (f" ({what})" if what else "") +
                    ". Choose another --out folder, or delete that one to start afresh." +
                    (" A model in memory resumes a run folder only under the identity= (or cache=True) it was "
                     "started with." if UNCACHED in str(self.model.get("identity")) else "")
                )
        elif self.rank == 0:
            atomic_write_json(path, run)
        else:
            raise AesopBenchError(f"{path} is missing: rank 0 writes it before the other ranks start")

    def _same_model(self, stored: str, mine: str) -> bool:
        """The folder's model is this run's. An in-memory model nothing vouches for has a new identity at every
        call (``...uncached-RANDOM``), so it never resumes a folder; the ranks of one torchrun call each drew their
        own, and rank R > 0 takes rank 0's."""
        if stored == mine:
            return True
        if self.rank > 0 and UNCACHED in stored and UNCACHED in mine and \
                stored.split(UNCACHED)[0] == mine.split(UNCACHED)[0]:
            self.model = {**self.model, "identity": stored}
            return True
        return False

    def _has_rows(self) -> bool:
        return any(p.stat().st_size > 0 for p in [self.dir / "rows.jsonl", *self.dir.glob("rows.r*.jsonl")]
                   if p.is_file())

    @property
    def rows_path(self) -> Path:
        """The rows file this rank appends to."""
        return self.dir / ("rows.jsonl" if self.rank == 0 else f"rows.r{self.rank}.jsonl")

    def reload(self) -> None:
        """Read every rank's rows again (after the other ranks have written theirs)."""
        self.rows = {}
        self._load_rows()

    def _load_rows(self) -> None:
        for path in [self.dir / "rows.jsonl"] + sorted(self.dir.glob("rows.r*.jsonl")):
            if path.is_file():
                self._load_file(path)

    def _load_file(self, path: Path) -> None:
        data = path.read_bytes()
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                r = _row(line)
            except (ValueError, KeyError, TypeError) as exc:
                if i == len(lines) - 1:  # a write cut short by a kill: drop it
                    if path == self.rows_path:
                        self._truncate_to(len(data) - len(line))
                    continue
                raise AesopBenchError(
                    f"{path}: line {i + 1} is corrupt ({exc}); delete the line (or the file, to recompute all)"
                ) from None
            image = SET_ROW if r["image"] == _OLD_SET_ROW and r["metric"] in _SET_LEVEL else r["image"]
            self.rows[(r["set"], image, r["metric"])] = (r["value"], r["version"], r.get("src"))
        if data and not data.endswith(b"\n") and path == self.rows_path and lines[-1].strip() and \
                len(data) == path.stat().st_size:  # a whole last row without its newline: end it before appending
            with open(path, "ab") as f:
                f.write(b"\n")

    def _truncate_to(self, size: int) -> None:
        with open(self.rows_path, "r+b") as f:
            f.truncate(size)

    def has(self, set_name: str, image: str, metric: str, version: str, src: str | None = None) -> bool:
        """Whether a value of ``metric`` for the image is stored under this version and source hash."""
        row = self.rows.get((set_name, image, metric))
        return row is not None and row[1] == version and row[2] == src

    def add(self, set_name: str, image: str, values: dict[str, tuple[float, str]], src: str | None = None) -> None:
        """Store one image's metric values (``{metric: (value, version)}``) durably."""
        buf = io.StringIO()
        for metric, (value, version) in values.items():
            row = {"set": set_name, "image": image, "metric": metric, "value": float(value), "version": version}
            if src is not None:
                row["src"] = src
            buf.write(json.dumps(row) + "\n")
            self.rows[(set_name, image, metric)] = (float(value), version, src)
        with open(self.rows_path, "a", encoding="utf-8") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())

    def versions(self, current: dict[str, str] | None = None) -> dict[str, str]:
        """The one version of each stored metric that a summary may use: the version this run computes
        (``current``), else the version of every stored row of the metric; a metric whose rows hold several
        definitions and that this run does not compute has none (it is left out: its mean would mix them)."""
        seen: dict[str, set[str]] = {}
        for (_, _, metric), (_, version, _) in self.rows.items():
            seen.setdefault(metric, set()).add(version)
        chosen = {}
        for metric, versions in seen.items():
            if current and metric in current:
                chosen[metric] = current[metric]
            elif len(versions) == 1:
                chosen[metric] = next(iter(versions))
        return chosen

    def _counted(self, set_name: str, image: str, metric: str, sources: dict, chosen: dict) -> tuple | None:
        """The stored row if it counts: computed from the image's current files, under the chosen version."""
        row = self.rows.get((set_name, image, metric))
        if row is None or chosen.get(metric) != row[1] or sources.get((set_name, image), row[2]) != row[2]:
            return None
        return row

    def summary(self, set_images: dict[str, list[str]], sources: dict | None = None,
                current: dict[str, str] | None = None) -> dict:
        """Means over each set's images, for every metric that covers all of them with rows of one version
        (``sources``: the current ``src`` of ``(set, image)`` keys, rows computed from other files do not count;
        ``current``: the version of each metric this run computes, rows of other versions do not count)."""
        sources = sources or {}
        chosen = self.versions(current)
        sets: dict[str, dict] = {}
        versions: dict[str, str] = {}
        for set_name, images in set_images.items():
            by_metric: dict[str, list[float]] = {}
            set_level: dict[str, float] = {}
            for image in [*images, SET_ROW]:
                for metric in chosen:
                    row = self._counted(set_name, image, metric, sources, chosen)
                    if row is None:
                        continue
                    versions[metric] = row[1]
                    if image == SET_ROW:
                        set_level[metric] = row[0]
                    else:
                        by_metric.setdefault(metric, []).append(row[0])
            means = {m: _mean(v) for m, v in by_metric.items() if len(v) == len(images)}
            means.update(set_level)
            sets[set_name] = {"n_images": len(images), "metrics": dict(sorted(means.items()))}
        mixed = sorted({k[2] for k in self.rows} - set(chosen))
        out = {"model": self.model, "protocol": self.protocol, "sets": sets, "metric_versions": versions}
        if mixed:
            out["left_out"] = {m: "stored under several versions; evaluate it again to choose one" for m in mixed}
        return out

    def _previous_sets(self) -> dict:
        """The ``sets`` of the summary an earlier call wrote ({} when there is none or it cannot be read)."""
        try:
            sets = read_summary(self.dir / "summary.json").get("sets", {})
        except (AesopBenchError, OSError, AttributeError):
            return {}
        return sets if isinstance(sets, dict) else {}

    def finalize(self, set_images: dict[str, list[str]], extra: dict | None = None,
                 sources: dict | None = None, current: dict[str, str] | None = None) -> dict:
        """Write per_image.csv and summary.json for the sets of this run and those stored by earlier ones
        (``extra``: more top-level entries of the summary)."""
        summary, table = self.final(set_images, extra, sources, current)
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(PER_IMAGE_COLUMNS)
        for r in table:
            w.writerow([r["set"], r["image"], r["metric"], repr(r["value"]), r["version"], r["protocol"]])
        atomic_write_text(self.dir / "per_image.csv", out.getvalue())
        atomic_write_json(self.dir / "summary.json", json_safe(summary))
        return summary

    def final(self, set_images: dict[str, list[str]], extra: dict | None = None, sources: dict | None = None,
              current: dict[str, str] | None = None) -> tuple[dict, list[dict]]:
        """The summary and the per-image rows (``PER_IMAGE_COLUMNS``) that :meth:`finalize` writes."""
        set_images = dict(set_images)
        for s in sorted({k[0] for k in self.rows} - set(set_images)):
            set_images[s] = sorted({k[1] for k in self.rows if k[0] == s and k[1] != SET_ROW})
        summary = self.summary(set_images, sources, current)
        extra = dict(extra or {})
        data = extra.pop("data", {})  # per set: where its HR and LR came from, the area compared
        before = self._previous_sets()
        for s, entry in summary["sets"].items():
            record = data.get(s) or before.get(s, {}).get("data")
            if record:
                entry["data"] = record
        summary.update(extra)
        chosen = self.versions(current)
        table = []
        pname = self.protocol.get("name", "")
        for set_name, images in set_images.items():
            for image in images:
                for metric in sorted(m for (s, i, m) in self.rows if s == set_name and i == image):
                    row = self._counted(set_name, image, metric, sources or {}, chosen)
                    if row is not None:
                        table.append({"set": set_name, "image": image, "metric": metric, "value": row[0],
                                      "version": row[1], "protocol": pname})
        return summary, table


PER_IMAGE_COLUMNS = ("set", "image", "metric", "value", "version", "protocol")


class MemoryStore(ResultStore):
    """A run's rows in memory only (``aesop_bench.evaluate`` without ``out=``, training validation): nothing is
    written and nothing is resumed; :meth:`finalize` keeps the per-image rows in ``table``."""

    def __init__(self, model: dict, protocol: dict):
        self.dir = None
        self.model, self.protocol, self.rank = model, protocol, 0
        self._lock = None
        self.rows = {}
        self.table: list[dict] = []

    def reload(self) -> None:
        """Nothing to read: no other process stores rows here."""

    def add(self, set_name: str, image: str, values: dict[str, tuple[float, str]], src: str | None = None) -> None:
        """Keep one image's values (``{metric: (value, version)}``) in memory."""
        for metric, (value, version) in values.items():
            self.rows[(set_name, image, metric)] = (float(value), version, src)

    def _previous_sets(self) -> dict:
        return {}

    def finalize(self, set_images: dict[str, list[str]], extra: dict | None = None,
                 sources: dict | None = None, current: dict[str, str] | None = None) -> dict:
        """The summary of the rows in memory; the per-image rows are kept in ``table``."""
        summary, self.table = self.final(set_images, extra, sources, current)
        return summary


def json_safe(obj):
    """``obj`` with non-finite floats as the strings ``"inf"``, ``"-inf"`` and ``"nan"`` (JSON has no such numbers;
    PSNR of identical images is inf under ``basicsr``); :func:`read_summary` turns them back."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def read_summary(path: Path) -> dict:
    """A run's ``summary.json`` with its metric values as floats (also those written as text: inf, nan)."""
    try:
        s = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(s, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise AesopBenchError(f"{path} is damaged ({exc}); run the same `aesop-bench eval` again to rewrite "
                              "it from the stored rows") from None
    for entry in (s.get("sets") or {}).values():
        metrics = entry.get("metrics", {}) if isinstance(entry, dict) else {}
        for k, v in metrics.items():
            if isinstance(v, str):
                metrics[k] = float(v)
    return s


def _row(line: bytes) -> dict:
    """A stored row, checked: set, image, metric and version are text, value a number, src text or absent."""
    r = json.loads(line)
    if not isinstance(r, dict):
        raise ValueError("not a JSON object")
    for key in ("set", "image", "metric", "version"):
        if not isinstance(r[key], str):
            raise TypeError(f"{key} is not text")
    if isinstance(r["value"], bool) or not isinstance(r["value"], (int, float)):
        raise TypeError("value is not a number")
    if not isinstance(r.get("src", ""), str):
        raise TypeError("src is not text")
    r["value"] = float(r["value"])
    return r


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)
