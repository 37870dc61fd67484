"""A static results browser: ``aesop-bench report RUN... --html DIR``.

``DIR/index.html`` opens from disk with no server and no network: the page's script and style sit beside it
(``app.js``, ``style.css``, written from this package), and its data is inline in the page and written beside
it as ``data.json``. The page has

* the runs' table (the same values and marks as :func:`aesop_bench.report.tables.to_markdown`), sortable by any
  column, and a PD plot of any two metrics on any set as an inline SVG whose points name their run, each run in
  the colour and marker of the PNG/PDF figures (:func:`aesop_bench.report.plots.run_style`);
* one row per (set, image) with each run's value of a metric and its difference from a chosen baseline run,
  sortable and filtered by set;
* a viewer: HR and every run's SR image side by side, zoomed and panned together (wheel, drag; arrow keys step
  through the images, Escape closes); a box drawn with Shift held prints the ``aesop-bench plot crops`` command
  for that area;
* each run's protocol, metric versions and the data it was computed on, and the table's notes.

Images are read by relative path from where they are (a result folder's files, a run's ``--save-sr`` images,
the set's HR), or copied into ``DIR/images`` (``copy_images``) under names the site derives; they load only when
the viewer shows them. The page's data is inline JSON with no ``<``, ``>`` or ``&``: no name can end its script.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import uuid
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from ..errors import AesopBenchError
from .plots import run_style, sr_advice
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


def _slug(text: str, limit: int = 64) -> str:
    """A file name made of ``text``: letters, digits, ``.``, ``_`` and ``-`` only, no leading dot (so never ``.``,
    ``..`` nor hidden), at most ``limit`` characters; ``image`` where nothing of ``text`` is left.

    >>> _slug("/data/mine/Faces"), _slug("../../.bashrc"), _slug("<!--<script>")
    ('data_mine_Faces', 'bashrc', 'script')
    """
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", text).lstrip("._-")[:limit].rstrip("._-")
    return s or "image"


def _unique(taken: set[str], stem: str, suffix: str = "") -> str:
    """``stem + suffix``, or ``stem-2 + suffix``, ... : the first name not in ``taken`` (compared without case, as
    on macOS and Windows disks), which it then joins."""
    name, k = stem + suffix, 1
    while name.lower() in taken:
        k += 1
        name = f"{stem}-{k}{suffix}"
    taken.add(name.lower())
    return name


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` lies below ``root``, by their names (``..`` resolved, links not followed)."""
    path, root = Path(os.path.normpath(path)), Path(os.path.normpath(root))
    return path != root and path.is_relative_to(root)


def _run_image(r: Run, set_name: str, image: str) -> Path:
    """The SR file a run names for an image (:meth:`Run.sr_image`), refused where the names in its records lead
    out of the folder it is read from: the result folder, or the run's ``sr`` folder of ``--save-sr`` images."""
    from ..evaluation.runfolder import RunFolder

    path = r.sr_image(set_name, image)
    named = r.sr_folder.get("files", {}).get(set_name, {}).get(image)
    folder = RunFolder(r.path)
    root = Path(r.sr_folder["path"]) if named is not None else folder.sr_dir
    if _inside(path, root):
        return path
    what = (f"{folder.summary_file} names the SR file {named!r} for image {image!r}" if named is not None else
            f"{folder.per_image_file} names set {set_name!r}, image {image!r}")
    raise AesopBenchError(f"{what}, which leads to {path}, outside {root} where the run's SR images are; a run's "
                          "records name files inside it: restore the run's files (or evaluate it again)")


class _Images:
    """URLs of image files, relative to the site folder ``out``. With ``copy``, each file is copied into
    ``build/images`` (``build``: where the site is written before it is moved to ``out``) under a name the site
    derives, ``images/hr/SET/IMAGE.EXT`` or ``images/runN/SET/IMAGE.EXT``: each part a :func:`_slug` made distinct
    from the others, so no value of a run or set can choose where a copy goes."""

    def __init__(self, out: Path, copy: bool, build: Path | None = None):
        self.out, self.copy, self.build = out, copy, build or out
        self.sources: set[Path] = set()  # every file shown, resolved: no write of the site may replace one
        self._sets: dict[str, str] = {}
        self._taken: dict[str, set[str]] = {}

    def url(self, path: Path, owner: str, set_name: str, image: str) -> str:
        """The URL of ``path``, the image ``image`` of ``set_name`` shown as ``owner`` (``hr`` or ``runN``)."""
        self.sources.add(Path(path).resolve())
        if not self.copy:
            return quote(Path(os.path.relpath(Path(path).resolve(), self.out.resolve())).as_posix())
        rel = Path("images", owner, self._set_dir(set_name), self._file(owner, set_name, image, Path(path)))
        dst = self.build / rel
        _check_destination(dst, self.build, self.sources)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dst)
        return quote(rel.as_posix())

    def _set_dir(self, set_name: str) -> str:
        if set_name not in self._sets:
            from ..data.sets import display_name

            self._sets[set_name] = _unique(self._taken.setdefault("", set()), _slug(display_name(set_name)))
        return self._sets[set_name]

    def _file(self, owner: str, set_name: str, image: str, path: Path) -> str:
        suffix = path.suffix.lower() if re.fullmatch(r"\.[a-z0-9]{1,5}", path.suffix.lower()) else ""
        return _unique(self._taken.setdefault(f"{owner}/{self._set_dir(set_name)}", set()), _slug(image), suffix)


def _check_destination(dst: Path, root: Path, sources: set[Path]) -> None:
    """Refuse to write ``dst`` where it resolves (through links) outside ``root``, or onto a file the site shows."""
    target = dst.resolve()
    if not target.is_relative_to(root.resolve()):
        raise AesopBenchError(f"{dst} leads to {target}, outside the site folder {root}; the site writes only "
                              "inside it: remove that link, or choose another --html folder")
    if target in sources:
        raise AesopBenchError(f"{dst} is {target}, an image the site shows: writing the site there would replace "
                              "it; choose another --html folder")


def site_data(runs: list[Run], out: Path, data_root: Path | None = None, metrics: list[str] | None = None,
              sets: list[str] | None = None, baseline: str | None = None, copy_images: bool = False,
              allow_mixed: bool = False, images: _Images | None = None) -> dict:
    """What the page shows, as one JSON-able dict (also written as ``data.json``). Image URLs are relative to
    ``out``; ``images`` (default: ``out``'s, copying with ``copy_images``) says where copies are written."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        generator = f"aesop-bench {version('aesop-bench')}"
    except PackageNotFoundError:  # run from a checkout that is not installed
        generator = "aesop-bench"
    from matplotlib.colors import to_hex

    table: Table = report(runs, None, metrics, sets, allow_mixed=allow_mixed)
    labels = [r.label for r in runs]
    shown = [r.label for r in table.runs]  # with each run's protocol where the runs' protocols differ
    if baseline is not None and baseline not in labels + shown:
        raise AesopBenchError(f"--baseline {baseline!r} is not one of the runs' labels: {', '.join(labels)}")
    # one style per run, as the figures draw it: from the run's own label, never the text shown beside it
    style = run_style(labels)
    images = images or _Images(Path(out), copy_images)
    per_image_metrics = [m for m in table.metrics if any(r.images(s, m) for r in runs for s in table.sets)]
    data = {
        "generator": generator,
        "metrics": [{"name": m, "label": label(m), "lower_better": lower_better(m), "decimals": decimals(m),
                     "per_image": m in per_image_metrics} for m in table.metrics],
        "sets": [], "runs": [], "notes": table.notes,
        "baseline": 0 if baseline is None else labels.index(baseline) if baseline in labels else shown.index(baseline),
        "summary": [{"metric": m, "set": s, "cells": [
            {"value": _number(table.cells[(m, s, i)].value), "rank": table.cells[(m, s, i)].rank,
             "n": table.cells[(m, s, i)].n, "of": table.cells[(m, s, i)].of} for i in range(len(runs))]}
            for m in table.metrics for s in table.sets],
        "per_image": [],
    }
    from ..data.sets import set_labels
    from .tables import incomplete_notes, settings_notes

    set_names = set_labels(table.sets)
    for s in table.sets:
        names = sorted({im for r in runs for m in per_image_metrics for im in r.images(s, m)})
        hr, why = _hr_files(s, runs, data_root)
        data["sets"].append({"name": s, "label": set_names[s], "images": names,
                             "hr": {im: images.url(hr[im], "hr", s, im) for im in names if im in hr},
                             "hr_note": why})
        for im in names:
            data["per_image"].append({"set": s, "image": im, "values": {
                m: [_number(r.images(s, m).get(im)) for r in runs] for m in per_image_metrics}})
    for i, r in enumerate(runs):
        sr, missing = {}, 0
        for s in table.sets:
            sr[s] = {}
            for im in next(x["images"] for x in data["sets"] if x["name"] == s):
                p = _run_image(r, s, im)
                if p.is_file():
                    sr[s][im] = images.url(p, f"run{i}", s, im)
                else:
                    missing += 1
        data["runs"].append({
            "label": shown[i], "colour": to_hex(style[r.label][0]), "marker": style[r.label][1],
            "model": r.model, "identity": r.identity, "source": r.source, "sr_folder": r.sr_folder.get("path", ""),
            "path": str(r.path), "protocol": r.protocol, "versions": r.versions,
            "data": {s: {**(r.sets.get(s, {}).get("data") or {}), "area": r.area(s)} for s in table.sets},
            "incomplete": {s: "; ".join(notes) for s in table.sets if (notes := incomplete_notes(
                {"sets": r.sets}, [s]) + settings_notes({"sets": r.sets, "model": {"identity": r.identity}}, [s]))},
            "images": sr, "images_note": _missing_note(r, missing, any(sr.values())),
        })
    return data


def _missing_note(r: Run, missing: int, some: bool) -> str:
    """What a run's panels say where its SR images are not found ('' where all are), and what to do."""
    if not missing:
        return ""
    found = "no SR images found" if not some else f"{missing} SR images not found"
    if r.source == "folder":
        return f"{found}: {sr_advice(r)}"
    return "no saved SR images: evaluate it with --save-sr" if not some else found


# In a <script> element the HTML parser looks for "</script" and "<!--" (after which a "<script" makes the
# element run on past its end tag): the inline JSON holds no "<" at all, nor ">" or "&", nor the two
# characters JavaScript once read as line ends; each as its JSON escape, which JSON.parse reads back.
_INLINE_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                                 "\u2029": "\\u2029"})


def _page(data: dict) -> str:
    text = json.dumps(data, allow_nan=False, ensure_ascii=False).translate(_INLINE_ESCAPES)
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
<div id="pd-svg"></div><ul id="pd-legend"></ul></div>
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
    """Write the results browser into ``out`` (see the module's docstring); returns ``out/index.html``.

    The site is written into a new hidden folder and moved into place only when complete, so a failure leaves
    ``out`` as it was, and no folder this call made: a new ``out`` is that folder (made beside it) renamed; into
    one that exists (made inside it), each of the site's files replaces its namesake and the other files stay."""
    out = Path(out)
    if os.path.lexists(out) and not out.is_dir():
        raise AesopBenchError(f"--html {out}: a file, not a folder; give a folder for the site")
    made = next((p for p in reversed([out.parent, *out.parent.parents]) if not p.exists()), None)
    out.parent.mkdir(parents=True, exist_ok=True)
    build = (out if out.is_dir() else out.parent) / f".{out.name or 'site'}.{uuid.uuid4().hex[:8]}.part"
    try:
        build.mkdir()
        _place(build, out, _write(runs, out, build, data_root, options))
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        for p in [out.parent, *out.parent.parents]:  # the folders this call made, empty again
            if made is None or not p.is_relative_to(made) or any(p.iterdir()):
                break
            p.rmdir()
        raise
    shutil.rmtree(build, ignore_errors=True)
    return out / "index.html"


def _write(runs: list[Run], out: Path, build: Path, data_root: str | Path | None, options: dict) -> set[Path]:
    """Write the site for ``out`` into ``build``; returns the files it shows (resolved)."""
    images = _Images(out, options.pop("copy_images", False), build)
    data = site_data(runs, out, Path(data_root) if data_root else None, images=images, **options)
    for name in ASSETS:
        (build / name).write_text(resources.files(__package__).joinpath("site", name).read_text(), "utf-8")
    (build / "data.json").write_text(json.dumps(data, allow_nan=False, indent=1, ensure_ascii=False) + "\n", "utf-8")
    (build / "index.html").write_text(_page(data), "utf-8")
    return images.sources


def _place(build: Path, out: Path, sources: set[Path]) -> None:
    """Move the site written in ``build`` to ``out``: renamed where ``out`` is new; else every destination is
    checked first (:func:`_check_destination`), then each file replaces its namesake."""
    if not os.path.lexists(out):
        build.rename(out)
        return
    moves = [(f, out / f.relative_to(build)) for f in sorted(build.rglob("*")) if f.is_file()]
    for _, dst in moves:
        _check_destination(dst, out, sources)
    for src, dst in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)


__all__ = ["site_data", "write_site"]
