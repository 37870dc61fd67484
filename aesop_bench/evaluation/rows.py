"""A run's values in memory: looked up by (set, image, metric), chosen by version, summarised per set.

A value counts only under its metric's version and the digest of the files it was computed from (the image's
current files). A set's mean is given only when every image of the set, as its record says (:meth:`plan_set`),
has a value computed from its current files under one version; otherwise the set is marked incomplete
(``complete`` false, or None where no record says what the set holds) and its values are listed under ``partial``
with their count, never as the set's value. Summary::

    {"model", "protocol", "sets": {SET: {"n_images", "complete", "metrics": {M: mean},
     "partial": {M: {"n", "of", "mean", "other_files"}}, "data", "computed_on"}}, "metric_versions", "left_out",
     "timings": {SET: {"model": T, "metrics": {M: T}}}}

``timings`` (the runner adds it; a run folder's store starts from its last summary's) is what computing took
(:mod:`.timings`), kept apart from the values: nothing reads it to decide what to compute or which values count.

:class:`RowTable` is shared by the run folder's store (:class:`.store.ResultStore`, which also writes each value
to the folder) and :class:`MemoryStore` (the table alone).

>>> t = MemoryStore({"name": "m"}, {"name": "paper"})
>>> t.plan_set("set5", {"a": "d1", "b": "d2"}, "s1", {})
>>> t.add("set5", "a", {"psnr": (30.0, "v1")}, "d1")
>>> t.summary()["sets"]["set5"]["partial"]
{'psnr': {'n': 1, 'of': 2, 'mean': 30.0}}
>>> t.add("set5", "b", {"psnr": (32.0, "v1")}, "d2")
>>> t.summary()["sets"]["set5"]["metrics"], t.has("set5", "b", "psnr", "v1", "other files")
({'psnr': 31.0}, False)
"""

from __future__ import annotations

import math

from ..metrics.registry import METRICS, Kind

SET_ROW = "/set"  # the image key of set-level values (FID, pFID): no file name can hold a "/"
PER_IMAGE_COLUMNS = ("set", "image", "metric", "value", "version", "protocol")
SET_LEVEL = {name for name, spec in METRICS.items() if spec.kind == Kind.DISTRIBUTION}

Key = tuple[str, str, str]  # (set, image, metric)


class RowTable:
    """The values of a run (``rows``: key -> (value, version, digest)), where each was computed
    (``computed_on``), each set's record (``sets``: images with their digests, the set's digest, data), and
    what computing them took (``timings``, :mod:`.timings`; not a value)."""

    def __init__(self, model: dict, protocol: dict):
        self.model, self.protocol = model, protocol
        self.rows: dict[Key, tuple[float, str, str | None]] = {}
        self.computed_on: dict[Key, str] = {}
        self.sets: dict[str, dict] = {}
        self.timings: dict = {}

    def add_timings(self, measured: dict) -> None:
        """Add a run's timings (:meth:`.timings.RunTimings.as_dict`) to those kept (:func:`.timings.merge`)."""
        from .timings import merge

        self.timings = merge(self.timings, measured)

    def plan_set(self, set_name: str, images: dict[str, str], set_digest: str, data: dict) -> None:
        """Record what a set holds before any of its values is computed: ``images`` (each image's key and the
        digest of the files its values come from), ``set_digest`` (the digest the set-level values are stored
        under) and ``data`` (where its HR and LR came from, the area compared). Summaries count a set's rows against
        the latest record, so a set stopped halfway, or planned again on other files, is never averaged as whole."""
        self.sets[set_name] = {"images": dict(images), "set_digest": set_digest, "data": data}

    def has(self, set_name: str, image: str, metric: str, version: str, digest: str | None = None) -> bool:
        """Whether a value of ``metric`` for the image is stored under this version and files' digest."""
        row = self.rows.get((set_name, image, metric))
        return row is not None and row[1] == version and row[2] == digest

    def add(self, set_name: str, image: str, values: dict[str, tuple[float, str]], digest: str | None = None,
            on: str | None = None) -> None:
        """Keep one image's metric values (``{metric: (value, version)}``; ``on``: where they were computed,
        :attr:`Runner.computed_on`)."""
        for metric, (value, version) in values.items():
            self.keep((set_name, image, metric), float(value), version, digest, on)

    def keep(self, key: Key, value: float, version: str, digest: str | None, on: str | None) -> None:
        """Keep one value; it replaces the key's earlier one."""
        self.rows[key] = (value, version, digest)
        if on is None:
            self.computed_on.pop(key, None)
        else:
            self.computed_on[key] = on

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

    def _images(self, set_name: str) -> dict[str, str | None]:
        """The set's images and their digests as its record says, else (no record: a folder written before
        records) every image with a row, digest unknown."""
        record = self.sets.get(set_name)
        if record is not None:
            return record["images"]
        return {i: None for i in sorted({i for (s, i, _) in self.rows if s == set_name and i != SET_ROW})}

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
        images = self._images(set_name)
        n = len(images)
        metrics, partial, used, where = {}, {}, {}, set()
        stored = {m for (s, _, m) in self.rows if s == set_name}
        for metric in sorted(m for m in chosen if m in stored):
            if metric in SET_LEVEL:
                row = self.rows.get((set_name, SET_ROW, metric))
                if row[1] == chosen[metric] and record is not None and row[2] == record["set_digest"]:
                    metrics[metric], used[metric] = row[0], row[1]
                    where.add(self.computed_on.get((set_name, SET_ROW, metric)))
                elif row[1] == chosen[metric]:  # of other files than the set's now, or of a set not on record
                    partial[metric] = {"n": 0, "of": n if record else None, "set_value": "of other files"
                                       if record else "unverified"}
                continue
            counted, other = [], 0
            for image, digest in images.items():
                row = self.rows.get((set_name, image, metric))
                if row is None or row[1] != chosen[metric]:
                    continue
                if record is None or row[2] == digest:
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

    def final(self, extra: dict | None = None, current: dict[str, str] | None = None,
              order: list[str] | None = None, asked: list[str] | None = None) -> tuple[dict, list[dict]]:
        """The summary (with ``extra``, more top-level entries) and the per-image rows (``PER_IMAGE_COLUMNS``) that
        count (current files, the summary's version), including those of an incomplete set; the other arguments:
        :meth:`summary`."""
        summary = self.summary(current, order, asked)
        summary.update(extra or {})
        chosen = self.versions(current)
        table = []
        pname = self.protocol.get("name", "")
        for set_name in summary["sets"]:
            whole = set_name in self.sets
            for image, digest in self._images(set_name).items():
                for metric in sorted(chosen):
                    row = self.rows.get((set_name, image, metric))
                    if row is not None and row[1] == chosen[metric] and (not whole or row[2] == digest):
                        table.append({"set": set_name, "image": image, "metric": metric, "value": row[0],
                                      "version": row[1], "protocol": pname})
        return summary, table


class MemoryStore(RowTable):
    """A run's values in memory only (``aesop_bench.evaluate`` without ``out=``, training validation): nothing is
    written and nothing is resumed; :meth:`finalize` keeps the per-image rows in ``table``."""

    def __init__(self, model: dict, protocol: dict):
        super().__init__(model, protocol)
        self.table: list[dict] = []

    def reload(self) -> None:
        """The store's interface (:meth:`.store.ResultStore.reload`): no other process adds values here."""

    def close(self, discard_empty: bool = False) -> None:
        """The store's interface (:meth:`.store.ResultStore.close`): no folder was opened."""

    def finalize(self, extra: dict | None = None, current: dict[str, str] | None = None,
                 order: list[str] | None = None, asked: list[str] | None = None) -> dict:
        """The summary of the values (:meth:`final`); the per-image rows are kept in ``table``."""
        summary, self.table = self.final(extra, current, order, asked)
        return summary


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)
