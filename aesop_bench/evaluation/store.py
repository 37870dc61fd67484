"""The results store of one evaluation run: per-image rows, resumable.

Layout of a run folder::

    run.json        model and protocol of the run (fixed at the first start)
    sets.json       each set as it was last planned: its images with the hash of the files each
                    image's values come from, and where its data came from (written before any
                    value of the set is computed)
    rows.jsonl      one JSON object per (set, image, metric), appended and
                    fsynced as each image finishes; a row carries ``src``,
                    a hash of the files it was computed from, and counts only while they are
                    unchanged (rank R > 0 of a torchrun evaluation appends to rows.rR.jsonl, which
                    the next run folds into rows.jsonl before it reads or writes anything)
    per_image.csv   set,image,metric,value,version,protocol (written at the end)
    summary.json    {"model", "protocol", "sets": {SET: {"n_images", "complete", "metrics": {M: mean},
                    "partial": {M: {"n", "of", "mean", "other_files"}}, "data"}}, ...}

A set's mean is given only when every image of the set, as ``sets.json`` records it, has a value computed
from its current files under one version; otherwise the set is marked incomplete (``complete`` false, or
None where no record says what the set holds) and its values are listed under ``partial`` with their
count, never as the set's value.

A run killed at any moment leaves at most one partial line at the end of
``rows.jsonl``; it is ignored when the run is started again, and only the
missing rows are computed. The final files are written atomically. Non-finite values are written as the
strings ``"inf"``, ``"-inf"`` and ``"nan"`` (every line is strict JSON).

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
    ``rows.rN.jsonl`` under torchrun, each set's record in ``sets.json``, and at the end ``per_image.csv`` and
    ``summary.json`` (module docstring). A value is looked up by (set, image, metric) and counts only under its
    version and source hash."""

    def __init__(self, out_dir: str | os.PathLike, model: dict, protocol: dict, rank: int = 0):
        self.dir = Path(out_dir)
        self._made = _missing_parents(self.dir) if rank == 0 else []
        self.dir.mkdir(parents=True, exist_ok=True)
        self.model = model
        self.protocol = protocol
        self.rank = rank
        self._lock = self._acquire_lock() if rank == 0 else None
        if rank == 0:  # the folder is ours now: partial files of a killed run go
            remove_stale_temps(self.dir, (".*.tmp", "sr/*/.*.tmp"))
        self.rows: dict[tuple[str, str, str], tuple[float, str, str | None]] = {}
        self.computed_on: dict[tuple[str, str, str], str] = {}  # where each value was computed (``on``)
        self.sets: dict[str, dict] = {}
        try:
            self._check_run_file()
            if rank == 0:
                self._fold_rank_files()
            self._load_rows()
            self.sets = _read_sets(self.dir / SETS_FILE)
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

    def discard_if_empty(self) -> None:
        """Remove the run folder (and the parents) this store created, when it holds no value: an evaluation that
        failed before computing anything leaves no empty folder behind."""
        if self.rank != 0 or not self._made or self._has_rows():
            return
        self.close()
        for name in (".lock", "run.json", SETS_FILE):
            (self.dir / name).unlink(missing_ok=True)
        for folder in self._made:  # deepest first; a folder something else wrote into stays
            try:
                folder.rmdir()
            except OSError:
                return

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

    def _rank_files(self) -> list[Path]:
        return sorted(self.dir.glob("rows.r*.jsonl"), key=lambda p: p.name)

    def _has_rows(self) -> bool:
        return any(p.stat().st_size > 0 for p in [self.dir / "rows.jsonl", *self._rank_files()] if p.is_file())

    def _fold_rank_files(self) -> None:
        """Fold the rank files an earlier torchrun evaluation left into ``rows.jsonl`` (rank 0, holding the lock,
        before anything is read or appended). Their rows are newer than every row of ``rows.jsonl`` written
        before that evaluation, and no row of it (each image belongs to one rank), so ``rows.jsonl`` is rewritten
        with each key's latest row, in that order; a row appended to ``rows.jsonl`` later is then the newest.
        Left unfolded, a rank file read after ``rows.jsonl`` would put its older rows back over newer ones."""
        ranks = self._rank_files()
        if not ranks:
            return
        self._load_rows()
        atomic_write_text(self.dir / "rows.jsonl", "".join(
            _row_line(s, i, m, *v, on=self.computed_on.get((s, i, m))) for (s, i, m), v in self.rows.items()))
        for path in ranks:
            path.unlink()
        self.rows, self.computed_on = {}, {}

    @property
    def rows_path(self) -> Path:
        """The rows file this rank appends to."""
        return self.dir / ("rows.jsonl" if self.rank == 0 else f"rows.r{self.rank}.jsonl")

    def reload(self) -> None:
        """Read every rank's rows again (after the other ranks have written theirs)."""
        self.rows, self.computed_on = {}, {}
        self._load_rows()

    def _load_rows(self) -> None:
        for path in [self.dir / "rows.jsonl"] + self._rank_files():
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
            if "on" in r:
                self.computed_on[(r["set"], image, r["metric"])] = r["on"]
            else:
                self.computed_on.pop((r["set"], image, r["metric"]), None)
        if data and not data.endswith(b"\n") and path == self.rows_path and lines[-1].strip() and \
                len(data) == path.stat().st_size:  # a whole last row without its newline: end it before appending
            with open(path, "ab") as f:
                f.write(b"\n")

    def _truncate_to(self, size: int) -> None:
        with open(self.rows_path, "r+b") as f:
            f.truncate(size)

    def plan_set(self, set_name: str, images: dict[str, str], set_source: str, data: dict) -> None:
        """Record what a set holds before any of its values is computed: ``images`` (each image's key and the
        hash of the files its values come from), ``set_source`` (the hash the set-level values are stored under)
        and ``data`` (where its HR and LR came from, the area compared). Summaries count a set's rows against the
        latest record, so a set stopped halfway, or planned again on other files, is never averaged as whole."""
        self.sets[set_name] = {"images": dict(images), "set_source": set_source, "data": data}
        if self.rank == 0:
            self._write_sets()

    def _write_sets(self) -> None:
        atomic_write_json(self.dir / SETS_FILE, {"schema": SCHEMA, "sets": json_safe(self.sets)})

    def has(self, set_name: str, image: str, metric: str, version: str, src: str | None = None) -> bool:
        """Whether a value of ``metric`` for the image is stored under this version and source hash."""
        row = self.rows.get((set_name, image, metric))
        return row is not None and row[1] == version and row[2] == src

    def add(self, set_name: str, image: str, values: dict[str, tuple[float, str]], src: str | None = None,
            on: str | None = None) -> None:
        """Store one image's metric values (``{metric: (value, version)}``) durably (``on``: where they were
        computed, :meth:`Runner.computed_on`)."""
        buf = io.StringIO()
        for metric, (value, version) in values.items():
            buf.write(_row_line(set_name, image, metric, float(value), version, src, on))
            self._keep(set_name, image, metric, float(value), version, src, on)
        with open(self.rows_path, "a", encoding="utf-8") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())

    def _keep(self, set_name, image, metric, value, version, src, on) -> None:
        self.rows[(set_name, image, metric)] = (value, version, src)
        if on is None:
            self.computed_on.pop((set_name, image, metric), None)
        else:
            self.computed_on[(set_name, image, metric)] = on

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

    def _set_order(self, order: list[str] | None) -> list[str]:
        """The sets a summary covers: those of this run (``order``), then every other set with a record or rows."""
        order = [s for s in (order or []) if s in self.sets]
        others = ({k[0] for k in self.rows} | set(self.sets)) - set(order)
        return order + sorted(others)

    def summary(self, current: dict[str, str] | None = None, order: list[str] | None = None,
                asked: list[str] | None = None) -> dict:
        """Each set's means (module docstring: only over the whole set as recorded, of one version per metric,
        from the images' current files), its completeness and the values of an incomplete set with their
        counts. ``current``: the version of each metric this run computes (rows of other versions do not count);
        ``order``: this run's sets, first; ``asked``: the metrics this run computes, reported as missing on its
        sets where no image has them yet."""
        chosen = self.versions(current)
        sets: dict[str, dict] = {}
        versions: dict[str, str] = {}
        for set_name in self._set_order(order):
            entry, used = self._set_summary(set_name, chosen, asked if set_name in (order or []) else None)
            sets[set_name] = entry
            versions.update(used)
        mixed = sorted({k[2] for k in self.rows} - set(chosen))
        out = {"model": self.model, "protocol": self.protocol, "sets": sets, "metric_versions": versions}
        if mixed:
            out["left_out"] = {m: "stored under several versions; evaluate it again to choose one" for m in mixed}
        return out

    def _set_summary(self, set_name: str, chosen: dict, asked: list[str] | None) -> tuple[dict, dict]:
        """One set's summary entry and the versions its values were computed under."""
        record = self.sets.get(set_name)
        if record is None:  # rows with no record of the set (a folder written before records): whole is unknown
            images = {i: None for (s, i, _) in self.rows if s == set_name and i != SET_ROW}
            set_source = None
        else:
            images, set_source = record["images"], record["set_source"]
        n = len(images)
        metrics, partial, used, where = {}, {}, {}, set()
        stored = {m for (s, _, m) in self.rows if s == set_name}
        for metric in sorted(m for m in chosen if m in stored):
            if metric in _SET_LEVEL:
                row = self.rows.get((set_name, SET_ROW, metric))
                if row[1] == chosen[metric] and record is not None and row[2] == set_source:
                    metrics[metric], used[metric] = row[0], row[1]
                    where.add(self.computed_on.get((set_name, SET_ROW, metric)))
                elif row[1] == chosen[metric]:  # of other files than the set's now, or of a set not on record
                    partial[metric] = {"n": 0, "of": n if record else None, "set_value": "of other files"
                                       if record else "unverified"}
                continue
            counted, other = [], 0
            for image, src in images.items():
                row = self.rows.get((set_name, image, metric))
                if row is None or row[1] != chosen[metric]:
                    continue
                if record is None or row[2] == src:
                    counted.append(row[0])
                    where.add(self.computed_on.get((set_name, image, metric)))
                else:
                    other += 1
            if counted:
                used[metric] = chosen[metric]
            if record is not None and len(counted) == n and n:
                metrics[metric] = _mean(counted)
            elif counted or other:
                partial[metric] = {"n": len(counted), "of": n if record else None, **(
                    {"mean": _mean(counted)} if counted else {}), **({"other_files": other} if other else {})}
        for metric in asked or []:
            if metric not in metrics and metric not in partial:
                partial[metric] = {"n": 0, "of": n}
        entry = {"n_images": n, "complete": None if record is None else not partial, "metrics": metrics}
        if where - {None}:  # where the values were computed; several settings are named (a resumed run's)
            entry["computed_on"] = sorted(where - {None}) + (["not recorded"] if None in where else [])
        if partial:
            entry["partial"] = partial
        if record is None:
            entry["unverified"] = ("no record of the set's images in this run folder (written by an earlier "
                                   "version); evaluate the set into this folder again to count it")
        elif record.get("data"):
            entry["data"] = record["data"]
        return entry, used

    def finalize(self, extra: dict | None = None, current: dict[str, str] | None = None,
                 order: list[str] | None = None, asked: list[str] | None = None) -> dict:
        """Write per_image.csv and summary.json for the sets of this run and those stored by earlier ones
        (``extra``: more top-level entries of the summary; the other arguments: :meth:`summary`)."""
        summary, table = self.final(extra, current, order, asked)
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(PER_IMAGE_COLUMNS)
        for r in table:
            w.writerow([r["set"], r["image"], r["metric"], repr(r["value"]), r["version"], r["protocol"]])
        atomic_write_text(self.dir / "per_image.csv", out.getvalue())
        atomic_write_json(self.dir / "summary.json", json_safe(summary))
        return summary

    def final(self, extra: dict | None = None, current: dict[str, str] | None = None,
              order: list[str] | None = None, asked: list[str] | None = None) -> tuple[dict, list[dict]]:
        """The summary and the per-image rows (``PER_IMAGE_COLUMNS``) that :meth:`finalize` writes: the rows that
        count (current files, the summary's version), including those of an incomplete set."""
        summary = self.summary(current, order, asked)
        summary.update(extra or {})
        chosen = self.versions(current)
        table = []
        pname = self.protocol.get("name", "")
        for set_name in summary["sets"]:
            record = self.sets.get(set_name)
            images = record["images"] if record else \
                {i: None for i in sorted({k[1] for k in self.rows if k[0] == set_name and k[1] != SET_ROW})}
            for image, src in images.items():
                for metric in sorted(chosen):
                    row = self.rows.get((set_name, image, metric))
                    if row is None:
                        continue
                    value, version, row_src = row
                    if version == chosen[metric] and (record is None or row_src == src):
                        table.append({"set": set_name, "image": image, "metric": metric, "value": value,
                                      "version": version, "protocol": pname})
        return summary, table


PER_IMAGE_COLUMNS = ("set", "image", "metric", "value", "version", "protocol")
SETS_FILE = "sets.json"


class MemoryStore(ResultStore):
    """A run's rows in memory only (``aesop_bench.evaluate`` without ``out=``, training validation): nothing is
    written and nothing is resumed; :meth:`finalize` keeps the per-image rows in ``table``."""

    def __init__(self, model: dict, protocol: dict):
        self.dir = None
        self.model, self.protocol, self.rank = model, protocol, 0
        self._lock = None
        self._made = []
        self.rows = {}
        self.computed_on = {}
        self.sets = {}
        self.table: list[dict] = []

    def reload(self) -> None:
        """Nothing to read: no other process stores rows here."""

    def _write_sets(self) -> None:
        """Nothing to write: the records live in memory."""

    def discard_if_empty(self) -> None:
        """Nothing to remove: no folder was made."""

    def add(self, set_name: str, image: str, values: dict[str, tuple[float, str]], src: str | None = None,
            on: str | None = None) -> None:
        """Keep one image's values (``{metric: (value, version)}``) in memory."""
        for metric, (value, version) in values.items():
            self._keep(set_name, image, metric, float(value), version, src, on)

    def finalize(self, extra: dict | None = None, current: dict[str, str] | None = None,
                 order: list[str] | None = None, asked: list[str] | None = None) -> dict:
        """The summary of the rows in memory; the per-image rows are kept in ``table``."""
        summary, self.table = self.final(extra, current, order, asked)
        return summary


def _missing_parents(folder: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would create for ``folder``, deepest first."""
    made, p = [], folder.absolute()
    while not p.exists() and p != p.parent:
        made.append(p)
        p = p.parent
    return made


def _read_sets(path: Path) -> dict:
    """The set records of ``sets.json`` ({} when there is none). A damaged file is an error: without it no
    summary can say whether a set is whole."""
    if not path.is_file():
        return {}
    try:
        sets = json.loads(path.read_text(encoding="utf-8"))["sets"]
        if not isinstance(sets, dict) or not all(isinstance(r, dict) and isinstance(r.get("images"), dict)
                                                 for r in sets.values()):
            raise ValueError("not a set record per set")
    except (ValueError, KeyError, TypeError) as exc:
        raise AesopBenchError(f"{path} is damaged ({exc}); delete it and evaluate the folder's sets into it "
                              "again (their stored values are reused)") from None
    return sets


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


def _row_line(set_name: str, image: str, metric: str, value: float, version: str, src: str | None,
              on: str | None = None) -> str:
    """One line of ``rows.jsonl``: strict JSON, a non-finite value as text (:func:`json_safe`)."""
    row = {"set": set_name, "image": image, "metric": metric, "value": json_safe(float(value)), "version": version}
    if src is not None:
        row["src"] = src
    if on is not None:
        row["on"] = on
    return json.dumps(row, allow_nan=False) + "\n"


_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _row(line: bytes) -> dict:
    """A stored row, checked: set, image, metric and version are text, value a number (or ``"inf"``, ``"-inf"``,
    ``"nan"``), src text or absent."""
    r = json.loads(line)
    if isinstance(r, dict) and isinstance(r.get("value"), str) and r["value"] in _NON_FINITE:
        r["value"] = _NON_FINITE[r["value"]]
    if not isinstance(r, dict):
        raise ValueError("not a JSON object")
    for key in ("set", "image", "metric", "version"):
        if not isinstance(r[key], str):
            raise TypeError(f"{key} is not text")
    if isinstance(r["value"], bool) or not isinstance(r["value"], (int, float)):
        raise TypeError("value is not a number")
    if not isinstance(r.get("src", ""), str) or not isinstance(r.get("on", ""), str):
        raise TypeError("src or on is not text")
    r["value"] = float(r["value"])
    return r


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)
