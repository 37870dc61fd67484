"""A run folder: the one place that names its files, and the owner of its lock and its record (``run.json``).

Layout (the evaluator, the reports and the API ask a :class:`RunFolder` for these paths)::

    run.json          the run's model and protocol (fixed at the first start: :meth:`RunFolder.claim`)
    sets.json         each set as it was last planned: its images with the digest of the files each image's
                      values come from, the set's digest, and where its data came from (written before any
                      value of the set is computed)
    rows.jsonl        one JSON object per (set, image, metric), appended and fsynced as each image finishes
                      (:mod:`.store`); rank R > 0 of a torchrun evaluation appends to rows.rR.jsonl, which the
                      next run folds into rows.jsonl before it reads or writes anything
    per_image.csv     set,image,metric,value,version,protocol (written at the end)
    summary.json      each set's means, completeness and partial values (:mod:`.rows`); apart from them
                      (``timings``), what the model and each metric spent per set, this run's added to the earlier
                      ones' (:mod:`.timings`): not values, never read to decide what is computed
    sr/SET/IMAGE.png  the SR images ``--save-sr`` writes
    .lock             held by the one evaluation writing the folder

Every file is written atomically; the partial temporary files of a killed run are removed when the folder is
next opened for writing. Non-finite values are written as the strings ``"inf"``, ``"-inf"`` and ``"nan"`` (every
file is strict JSON).

>>> import tempfile
>>> folder = RunFolder(Path(tempfile.mkdtemp()) / "run")
>>> folder.rows_file(2).name, folder.sr_image("set5", "baby").relative_to(folder.path).as_posix()
('rows.r2.jsonl', 'sr/set5/baby.png')
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

from ..errors import MissingFileError, StoreError
from ..fileutil import atomic_write_json, atomic_write_text, remove_stale_temps
from ..protocols import normalised
from .rows import PER_IMAGE_COLUMNS

SCHEMA = 1
RUN_FILE = "run.json"
SETS_FILE = "sets.json"
ROWS_FILE = "rows.jsonl"
RANK_ROWS_FILE = "rows.r{rank}.jsonl"
PER_IMAGE_FILE = "per_image.csv"
SUMMARY_FILE = "summary.json"
SR_DIR = "sr"
LOCK_FILE = ".lock"
# sets.json keeps the key earlier versions wrote (every version reads every folder); "set_digest" is read too
SET_DIGEST_KEYS = ("set_source", "set_digest")
# the mark an unvouched model's identity carried before records said ``cacheable`` (aesop_bench.api still adds it)
UNCACHED = "uncached-"


class RunFolder:
    """The files of one run folder (module docstring), its lock and its ``run.json``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = None
        self._made: list[Path] = []  # the folders opening it created, deepest first

    run_file = property(lambda self: self.path / RUN_FILE)
    sets_file = property(lambda self: self.path / SETS_FILE)
    per_image_file = property(lambda self: self.path / PER_IMAGE_FILE)
    summary_file = property(lambda self: self.path / SUMMARY_FILE)
    lock_file = property(lambda self: self.path / LOCK_FILE)
    sr_dir = property(lambda self: self.path / SR_DIR)

    def rows_file(self, rank: int = 0) -> Path:
        """The rows file rank ``rank`` appends to."""
        return self.path / (ROWS_FILE if rank == 0 else RANK_ROWS_FILE.format(rank=rank))

    def rank_rows_files(self) -> list[Path]:
        """The rows files of ranks > 0 that are there, by name."""
        return sorted(self.path.glob(RANK_ROWS_FILE.format(rank="*")), key=lambda p: p.name)

    def rows_files(self) -> list[Path]:
        """Every rows file that is there, ``rows.jsonl`` first."""
        return [p for p in [self.rows_file(0), *self.rank_rows_files()] if p.is_file()]

    def has_rows(self) -> bool:
        return any(p.stat().st_size > 0 for p in self.rows_files())

    def has_summary(self) -> bool:
        """Whether an evaluation finished here (it wrote ``summary.json``)."""
        return self.summary_file.is_file()

    def sr_image(self, set_name: str, image: str) -> Path:
        """Where ``--save-sr`` writes (and the reports read) the SR image of ``image`` of a set."""
        from ..data.sets import sr_subfolder

        return self.sr_dir / sr_subfolder(set_name) / f"{image}.png"

    def open(self, rank: int = 0) -> None:
        """Make the folder and, on rank 0, take its lock and remove a killed run's partial files."""
        self._made = _missing_parents(self.path) if rank == 0 else []
        self.path.mkdir(parents=True, exist_ok=True)
        if rank == 0:
            self._lock = self._acquire_lock()
            remove_stale_temps(self.path, (".*.tmp", f"{SR_DIR}/*/.*.tmp"))

    def _acquire_lock(self):
        """One writer per run folder: a second evaluation into it (another process, or the same one) is refused
        while the first runs, so the check and creation of run.json cannot interleave and rows never mix."""
        import fcntl

        f = open(self.lock_file, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise StoreError(f"{self.path} is being written by another evaluation; wait for it to finish, or "
                             "choose another --out folder") from None
        return f

    def close(self, discard_empty: bool = False) -> None:
        """Release the folder (also released when the process ends). ``discard_empty``: remove the folder (and
        the parents) that opening it created when it holds no value, so that an evaluation that failed before
        computing anything leaves no empty folder behind."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if not discard_empty or not self._made or self.has_rows():
            return
        for f in (self.lock_file, self.run_file, self.sets_file):
            f.unlink(missing_ok=True)
        for folder in self._made:  # deepest first; a folder something else wrote into stays
            try:
                folder.rmdir()
            except OSError:
                return

    def claim(self, model: dict, protocol: dict, rank: int = 0) -> dict:
        """Record this run's model and protocol in ``run.json``, or check them against the folder's; the model
        record this run's values are stored under (a torchrun rank R > 0 takes rank 0's). A folder whose run
        stored nothing is free; one holding another model's or protocol's values is refused."""
        run = {"schema": SCHEMA, "model": model, "protocol": protocol}
        if not self.run_file.is_file():
            if rank > 0:
                raise MissingFileError(f"{self.run_file} is missing: rank 0 writes it before the other ranks start")
            atomic_write_json(self.run_file, run)
            return model
        old = self._read_run()
        if rank == 0 and not self.has_rows():
            atomic_write_json(self.run_file, run)
            return model
        stored = old.get("model", {})
        if same_model(stored, model, rank) and normalised(old.get("protocol", {})) == normalised(protocol):
            return model if rank == 0 else {**model, "identity": stored.get("identity")}
        from ..protocols import differences

        what = ", ".join(f"{k} {a} vs {b}" for k, (a, b) in differences(old.get("protocol", {}), protocol).items())
        raise StoreError(
            f"{self.path} holds results of model {stored.get('name')!r} under protocol "
            f"{old.get('protocol', {}).get('name')!r}; this run is model {model.get('name')!r} under "
            f"{protocol.get('name')!r}" + (f" ({what})" if what else "") +
            ". Choose another --out folder, or delete that one to start afresh." +
            ("" if cacheable(model) else " A model in memory resumes a run folder only under the identity= (or "
             "cache=True) it was started with."))

    def _read_run(self) -> dict:
        try:
            old = json.loads(self.run_file.read_text(encoding="utf-8"))
            if not isinstance(old, dict) or not isinstance(old.get("model", {}), dict):
                raise ValueError("not a JSON object with a model")
        except ValueError as exc:
            raise StoreError(f"{self.run_file} is damaged ({exc}); it records which model and protocol the "
                             "folder's results belong to. Delete the run folder to start afresh") from None
        return old

    def read_sets(self) -> dict:
        """The set records of ``sets.json`` ({} when there is none), each ``{"images", "set_digest", "data"}``. A
        damaged file is an error: without it no summary can say whether a set is whole."""
        if not self.sets_file.is_file():
            return {}
        try:
            sets = json.loads(self.sets_file.read_text(encoding="utf-8"))["sets"]
            if not isinstance(sets, dict) or not all(isinstance(r, dict) and isinstance(r.get("images"), dict)
                                                     for r in sets.values()):
                raise ValueError("not a set record per set")
            key = {s: [k for k in SET_DIGEST_KEYS if k in r] for s, r in sets.items()}
            if not all(key.values()):
                raise ValueError("a set record without its digest")
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{self.sets_file} is damaged ({exc}); delete it and evaluate the folder's sets into "
                             "it again (their stored values are reused)") from None
        return {s: {"images": r["images"], "set_digest": r[key[s][0]], "data": r.get("data")} for s, r in sets.items()}

    def write_sets(self, sets: dict) -> None:
        """Write the set records (:meth:`read_sets`) under the keys every version reads."""
        records = {s: {"images": r["images"], SET_DIGEST_KEYS[0]: r["set_digest"], "data": r["data"]}
                   for s, r in sets.items()}
        atomic_write_json(self.sets_file, {"schema": SCHEMA, "sets": json_safe(records)})

    def read_timings(self) -> dict:
        """The timings the last summary kept (its ``timings``; {} where there is none, or the summary is damaged:
        timings are not results, they start afresh)."""
        try:
            timings = json.loads(self.summary_file.read_text(encoding="utf-8")).get("timings")
        except (OSError, ValueError, AttributeError):
            return {}
        return timings if isinstance(timings, dict) else {}

    def write_results(self, summary: dict, table: list[dict]) -> None:
        """Write ``per_image.csv`` (the rows of ``table``, each value as Python writes it) and ``summary.json``."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(PER_IMAGE_COLUMNS)
        for r in table:
            w.writerow([r["set"], r["image"], r["metric"], repr(r["value"]), r["version"], r["protocol"]])
        atomic_write_text(self.per_image_file, out.getvalue())
        atomic_write_json(self.summary_file, json_safe(summary))


def cacheable(model: dict) -> bool:
    """Whether a model record's identity vouches for the model's outputs, so that its stored values may be resumed:
    the record's ``cacheable`` (written only where false), or, in a record written before that field, an identity
    without the ``uncached-`` mark."""
    if "cacheable" in model:
        return bool(model["cacheable"])
    return UNCACHED not in str(model.get("identity"))


def same_model(stored: dict, mine: dict, rank: int = 0) -> bool:
    """Whether a folder's model record (``stored``) is this run's (``mine``). A model nothing vouches for never
    resumes a folder; only the other ranks of the torchrun call that started it share it, though each drew its own
    random mark (``...uncached-RANDOM``, the part an identity is compared without)."""
    if cacheable(stored) != cacheable(mine):
        return False
    if cacheable(mine):
        return stored.get("identity") == mine.get("identity")
    return rank > 0 and str(stored.get("identity")).split(UNCACHED)[0] == str(mine.get("identity")).split(UNCACHED)[0]


def _missing_parents(folder: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would create for ``folder``, deepest first."""
    made, p = [], folder.absolute()
    while not p.exists() and p != p.parent:
        made.append(p)
        p = p.parent
    return made


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
        raise StoreError(f"{path} is damaged ({exc}); run the same `aesop-bench eval` again to rewrite it from "
                         "the stored rows") from None
    for entry in (s.get("sets") or {}).values():
        metrics = entry.get("metrics", {}) if isinstance(entry, dict) else {}
        for k, v in metrics.items():
            if isinstance(v, str):
                metrics[k] = float(v)
    return s
