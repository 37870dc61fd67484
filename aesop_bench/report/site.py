"""A static results browser: ``aesop-bench report RUN... --html DIR``.

``DIR/index.html`` opens from disk with no server and no network: the page's script and style sit beside it
(``app.js``, ``style.css``, written from this package), and its data is inline in the page and written beside
it as ``data.json``. The page has

* the runs' table (the same values and marks as :func:`aesop_bench.report.tables.to_markdown`), sortable by any
  column, and a PD plot of any two metrics on any set as an inline SVG whose points name their run;
* one row per (set, image) with each run's value of a metric and its difference from a chosen baseline run,
  sortable and filtered by set;
* a viewer: HR and every run's SR image side by side, zoomed and panned together (wheel, drag; arrow keys step
  through the images, Escape closes); a box drawn with Shift held prints the ``aesop-bench plot crops`` command
  for that area;
* each run's protocol, metric versions and the data it was computed on, and the table's notes.

Images are read by relative path from where they are (a result folder's files, a run's ``--save-sr`` images,
the set's HR), or copied into ``DIR/images`` (``copy_images``); they load only when the viewer shows them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from ..errors import AesopBenchError
from ..fileutil import atomic_write_text
from .runs import Run
from .tables import Table, decimals, label, lower_better, report

ASSETS = ("app.js", "style.css")


def _number(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def _hr_files(set_name: str, runs: list[Run], data_root: Path | None) -> tuple[dict[str, Path], str]:
    """The set's HR files by image name (those the runs compared: LDL's where a run read LDL's), or why none."""
    from ..data.sets import resolve

    if data_root is None:
        return {}, "no data root given"
    try:
        res = None
        if any((r.sets.get(set_name, {}).get("data") or {}).get("source") == "ldl" for r in runs):
            from ..data.ldl import resolve_ldl

            res = resolve_ldl(set_name, Path(data_root), runs[0].protocol.get("scale", 4))
        res = res or resolve(set_name, Path(data_root))
    except AesopBenchError as exc:
        return {}, str(exc)
    if res.hr_dir is None:
        return {}, f"{set_name} has no HR images"
    return {f.stem: f for f in res.hr_files}, ""


class _Images:
    """URLs of image files, relative to the site folder (copied into it with ``copy``)."""

    def __init__(self, out: Path, copy: bool):
        self.out, self.copy = out, copy

    def url(self, path: Path, *where: str) -> str:
        if self.copy:
            dst = self.out / "images" / Path(*where)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst)  # always: a copy left by an earlier page may be of another image
            path = dst
        rel = os.path.relpath(Path(path).resolve(), self.out.resolve())
        return quote(Path(rel).as_posix())


def site_data(runs: list[Run], out: Path, data_root: Path | None = None, metrics: list[str] | None = None,
              sets: list[str] | None = None, baseline: str | None = None, copy_images: bool = False,
              allow_mixed: bool = False) -> dict:
    """What the page shows, as one JSON-able dict (also written as ``data.json``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        generator = f"aesop-bench {version('aesop-bench')}"
    except PackageNotFoundError:  # run from a checkout that is not installed
        generator = "aesop-bench"
    table: Table = report(runs, None, metrics, sets, allow_mixed=allow_mixed)
    labels = [r.label for r in runs]
    if baseline is not None and baseline not in labels:
        raise AesopBenchError(f"--baseline {baseline!r} is not one of the runs' labels: {', '.join(labels)}")
    images = _Images(out, copy_images)
    per_image_metrics = [m for m in table.metrics if any(r.images(s, m) for r in runs for s in table.sets)]
    data = {
        "generator": generator,
        "metrics": [{"name": m, "label": label(m), "lower_better": lower_better(m), "decimals": decimals(m),
                     "per_image": m in per_image_metrics} for m in table.metrics],
        "sets": [], "runs": [], "notes": table.notes,
        "baseline": labels.index(baseline) if baseline is not None else 0,
        "summary": [{"metric": m, "set": s, "cells": [
            {"value": _number(table.cells[(m, s, i)].value), "rank": table.cells[(m, s, i)].rank,
             "n": table.cells[(m, s, i)].n} for i in range(len(runs))]} for m in table.metrics for s in table.sets],
        "per_image": [],
    }
    from ..data.sets import set_label

    for s in table.sets:
        names = sorted({im for r in runs for m in per_image_metrics for im in r.images(s, m)})
        hr, why = _hr_files(s, runs, data_root)
        data["sets"].append({"name": s, "label": set_label(s), "images": names,
                             "hr": {im: images.url(hr[im], "HR", s, hr[im].name) for im in names if im in hr},
                             "hr_note": why})
        for im in names:
            data["per_image"].append({"set": s, "image": im, "values": {
                m: [_number(r.images(s, m).get(im)) for r in runs] for m in per_image_metrics}})
    for i, r in enumerate(runs):
        sr, missing = {}, 0
        for s in table.sets:
            sr[s] = {}
            for im in next(x["images"] for x in data["sets"] if x["name"] == s):
                p = r.sr_image(s, im)
                if p.is_file():
                    sr[s][im] = images.url(p, f"run{i}", s, p.name)
                else:
                    missing += 1
        note = ""
        if missing:
            note = ("no saved SR images: evaluate it with --save-sr" if not any(sr.values()) else
                    f"{missing} SR images not found")
        data["runs"].append({
            "label": r.label, "model": r.model, "identity": r.identity, "source": r.source,
            "path": str(r.path), "protocol": r.protocol, "versions": r.versions,
            "data": {s: {**(r.sets.get(s, {}).get("data") or {}), "area": r.area(s)} for s in table.sets},
            "images": sr, "images_note": note,
        })
    return data


def _page(data: dict) -> str:
    text = json.dumps(data, allow_nan=False, ensure_ascii=False).replace("</", "<\\/")
    title = "aesop-bench results: " + ", ".join(r["label"] for r in data["runs"])
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_escape(title)}</title>
<link rel="stylesheet" href="style.css">
</head>
<body>
<header><h1>Results</h1><p id="meta"></p></header>
<main>
<section id="summary"><h2>Summary</h2><div id="summary-table"></div>
<div id="pd"><div class="controls"><label>set <select id="pd-set"></select></label>
<label>x <select id="pd-x"></select></label><label>y <select id="pd-y"></select></label></div>
<div id="pd-svg"></div></div>
<ul id="notes"></ul></section>
<section id="per-image"><h2>Per image</h2>
<div class="controls"><label>set <select id="img-set"></select></label>
<label>metric <select id="img-metric"></select></label><label>baseline <select id="img-baseline"></select></label>
<span class="hint">click a row to open its images</span></div>
<div id="image-table"></div></section>
<section id="runs"><h2>Runs</h2><div id="run-info"></div></section>
</main>
<div id="viewer" hidden>
<div class="bar"><span id="viewer-title"></span>
<span class="hint">wheel: zoom, drag: pan, Shift+drag: crop box, &larr;/&rarr;: image, 0: fit, Esc: close</span>
<button id="viewer-close" type="button">close</button></div>
<pre id="crop-command"></pre>
<div id="panels"></div>
</div>
<script id="aesop-data" type="application/json">{text}</script>
<script src="app.js"></script>
</body>
</html>
"""


def _escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_site(runs: list[Run], out: str | Path, data_root: str | Path | None = None, **options) -> Path:
    """Write the results browser into ``out`` (see the module's docstring); returns ``out/index.html``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = site_data(runs, out, Path(data_root) if data_root else None, **options)
    for name in ASSETS:
        atomic_write_text(out / name, resources.files(__package__).joinpath("site", name).read_text())
    atomic_write_text(out / "data.json", json.dumps(data, allow_nan=False, indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(out / "index.html", _page(data))
    return out / "index.html"


__all__ = ["site_data", "write_site"]
