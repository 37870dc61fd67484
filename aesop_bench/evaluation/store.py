"""The results store of one evaluation run: a run folder (:class:`.runfolder.RunFolder`: its files, lock and
``run.json``) and the run's values (:class:`.rows.RowTable`), each value appended to ``rows.jsonl`` as computed.

``rows.jsonl`` holds one JSON object per (set, image, metric), appended and fsynced as each image finishes. A row
carries the digest of the files it was computed from (key ``src``) and counts only while they are unchanged. A run
killed at any moment leaves at most one partial line at the end of ``rows.jsonl``; it is ignored when the run is
started again, and only the missing rows are computed. Non-finite values are written as the strings ``"inf"``,
``"-inf"`` and ``"nan"`` (every line is strict JSON).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..errors import StoreError
from ..fileutil import atomic_write_text
from .rows import PER_IMAGE_COLUMNS, SET_LEVEL, SET_ROW, MemoryStore, RowTable
from .runfolder import UNCACHED, RunFolder, json_safe, read_summary

__all__ = ["ResultStore", "MemoryStore", "SET_ROW", "PER_IMAGE_COLUMNS", "UNCACHED", "json_safe", "read_summary"]

_OLD_SET_ROW = "*"  # what earlier versions wrote, read as SET_ROW for the set-level metrics
# a row's digest of its files: under the key earlier versions wrote (every version reads every folder); "digest"
# is read too
ROW_DIGEST_KEYS = ("src", "digest")


class ResultStore(RowTable):
    """A run folder's stored values: the folder's :class:`.runfolder.RunFolder` and the values as a
    :class:`.rows.RowTable`, each value appended to this rank's rows file as it is added. A value is looked up by
    (set, image, metric) and counts only under its version and the digest of its files."""

    def __init__(self, out_dir: str | os.PathLike, model: dict, protocol: dict, rank: int = 0):
        self.folder = RunFolder(out_dir)
        self.rank = rank
        self.folder.open(rank)
        try:
            super().__init__(self.folder.claim(model, protocol, rank), protocol)
            if rank == 0:
                self._fold_rank_files()
            self._load_rows()
            self.sets = self.folder.read_sets()
            self.timings = self.folder.read_timings()
        except BaseException:
            self.folder.close()
            raise

    @property
    def rows_path(self) -> Path:
        """The rows file this rank appends to."""
        return self.folder.rows_file(self.rank)

    def close(self, discard_empty: bool = False) -> None:
        """Release the run folder; ``discard_empty``: remove it where it holds no value and this store made it
        (:meth:`.runfolder.RunFolder.close`)."""
        self.folder.close(discard_empty)

    def reload(self) -> None:
        """Read every rank's rows again (after the other ranks have written theirs)."""
        self.rows, self.computed_on = {}, {}
        self._load_rows()

    def plan_set(self, set_name: str, images: dict[str, str], set_digest: str, data: dict) -> None:
        """:meth:`.rows.RowTable.plan_set`, recorded in ``sets.json`` (by rank 0)."""
        super().plan_set(set_name, images, set_digest, data)
        if self.rank == 0:
            self.folder.write_sets(self.sets)

    def add(self, set_name: str, image: str, values: dict[str, tuple[float, str]], digest: str | None = None,
            on: str | None = None) -> None:
        """Store one image's metric values (``{metric: (value, version)}``) durably (``on``: where they were
        computed, :attr:`Runner.computed_on`)."""
        text = "".join(_row_line(set_name, image, metric, value, version, digest, on)
                       for metric, (value, version) in values.items())
        super().add(set_name, image, values, digest, on)
        with open(self.rows_path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def finalize(self, extra: dict | None = None, current: dict[str, str] | None = None,
                 order: list[str] | None = None, asked: list[str] | None = None) -> dict:
        """Write per_image.csv and summary.json for the sets of this run and those stored by earlier ones
        (:meth:`.rows.RowTable.final`)."""
        summary, table = self.final(extra, current, order, asked)
        self.folder.write_results(summary, table)
        return summary

    def _fold_rank_files(self) -> None:
        """Fold the rank files an earlier torchrun evaluation left into ``rows.jsonl`` (rank 0, holding the lock,
        before anything is read or appended). Their rows are newer than every row of ``rows.jsonl`` written
        before that evaluation, and no row of it (each image belongs to one rank), so ``rows.jsonl`` is rewritten
        with each key's latest row, in that order; a row appended to ``rows.jsonl`` later is then the newest.
        Left unfolded, a rank file read after ``rows.jsonl`` would put its older rows back over newer ones."""
        ranks = self.folder.rank_rows_files()
        if not ranks:
            return
        self._load_rows()
        atomic_write_text(self.folder.rows_file(0), "".join(
            _row_line(*k, *v, on=self.computed_on.get(k)) for k, v in self.rows.items()))
        for path in ranks:
            path.unlink()
        self.rows, self.computed_on = {}, {}

    def _load_rows(self) -> None:
        for path in self.folder.rows_files():
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
                        with open(path, "r+b") as f:
                            f.truncate(len(data) - len(line))
                    continue
                raise StoreError(
                    f"{path}: line {i + 1} is corrupt ({exc}); delete the line (or the file, to recompute all)"
                ) from None
            image = SET_ROW if r["image"] == _OLD_SET_ROW and r["metric"] in SET_LEVEL else r["image"]
            self.keep((r["set"], image, r["metric"]), r["value"], r["version"], r["digest"], r.get("on"))
        if data and not data.endswith(b"\n") and path == self.rows_path and lines[-1].strip() and \
                len(data) == path.stat().st_size:  # a whole last row without its newline: end it before appending
            with open(path, "ab") as f:
                f.write(b"\n")


def _row_line(set_name: str, image: str, metric: str, value: float, version: str, digest: str | None,
              on: str | None = None) -> str:
    """One line of ``rows.jsonl``: strict JSON, a non-finite value as text (:func:`json_safe`)."""
    row = {"set": set_name, "image": image, "metric": metric, "value": json_safe(float(value)), "version": version}
    if digest is not None:
        row[ROW_DIGEST_KEYS[0]] = digest
    if on is not None:
        row["on"] = on
    return json.dumps(row, allow_nan=False) + "\n"


_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _row(line: bytes) -> dict:
    """A stored row, checked: set, image, metric and version are text, value a number (or ``"inf"``, ``"-inf"``,
    ``"nan"``), the digest (``src``) and ``on`` text or absent; the digest is returned as ``digest``."""
    r = json.loads(line)
    if not isinstance(r, dict):
        raise ValueError("not a JSON object")
    if isinstance(r.get("value"), str) and r["value"] in _NON_FINITE:
        r["value"] = _NON_FINITE[r["value"]]
    for key in ("set", "image", "metric", "version"):
        if not isinstance(r[key], str):
            raise TypeError(f"{key} is not text")
    if isinstance(r["value"], bool) or not isinstance(r["value"], (int, float)):
        raise TypeError("value is not a number")
    digests = [r[k] for k in ROW_DIGEST_KEYS if k in r]
    if not all(isinstance(d, str) for d in digests) or not isinstance(r.get("on", ""), str):
        raise TypeError("src or on is not text")
    r["digest"] = digests[0] if digests else None
    r["value"] = float(r["value"])
    return r
