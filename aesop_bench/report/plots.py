"""Figures: perception-distortion (PD) plots and visual comparison sheets.

PD plot: one point per run at (x metric, y metric) on one set; runs of a network-interpolation sweep
(``interp:A,B@ALPHA``) are joined by a line per family in order of ALPHA, with their end points (A and B
evaluated on their own) when present. Axis labels carry arrows for the better direction, and an arrow in
the legend's title points to the better corner. Written as PNG and PDF at the printed size of a two-column
paper (``width``: a column, 3.25 in, or the text, 6.875 in, as CVPR's), so that no text is smaller than 7 pt
when the figure is placed at 100%.

Length: the PD plot and the crop sheet share the loading of runs, the label-stable styles and the figure
conventions.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from ..data.sets import set_label
from ..errors import AesopBenchError
from .runs import Run
from .tables import decimals, label as metric_label, lower_better


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, out: str | Path) -> list[Path]:
    """Write the figure as PNG and PDF beside each other, then close it. The PDF embeds its fonts as TrueType
    (Type 42): submission checks (IEEE, CVF) reject the Type 3 fonts matplotlib writes by default."""
    import matplotlib

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    with matplotlib.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}):
        for p in paths:
            fig.savefig(p)
    plt.close(fig)
    return paths


MARKERS = "osD^v<>ph*"
# Printed widths in inches: a column and the text of a two-column page (CVPR, ICCV, ECCV: 3.25 and 6.875 in)
WIDTHS = {"column": 3.25, "text": 6.875}
FONT = 7  # pt: the smallest text of any figure at its printed width (the common floor of paper guides)


def figure_width(width: str) -> float:
    """The printed width in inches of ``width`` (``column`` or ``text``); an unknown name is an error."""
    if width not in WIDTHS:
        raise AesopBenchError(f"--width {width!r}: use {' or '.join(WIDTHS)} ({', '.join(f'{k} {v} in' for k, v in WIDTHS.items())})")
    return WIDTHS[width]


def run_style(labels: list[str]) -> dict[str, tuple[str, str]]:
    """``label -> (colour, marker)``: a function of the label alone (one method looks the same in every figure),
    from a hash of it; two labels of one figure that hash alike are told apart by the next free style, in the
    labels' alphabetical order."""
    import zlib

    from matplotlib import colormaps

    colours = colormaps["tab10"].colors
    n = len(colours)
    taken: set[int] = set()
    out = {}
    for lab in sorted(set(labels)):
        k = zlib.crc32(lab.encode()) % n
        while k in taken and len(taken) < n:
            k = (k + 1) % n
        taken.add(k)
        out[lab] = (colours[k], MARKERS[k % len(MARKERS)])
    return out


def pd_plot(runs: list[Run], set_name: str, x: str = "lpips", y: str = "psnr", out: str | Path = "pd.png",
            title: str | None = None, xlabel: str | None = None, ylabel: str | None = None, log=None,
            width: str = "column") -> list[Path]:
    plt = _mpl()
    fig = pd_figure(runs, set_name, x, y, title, xlabel, ylabel, log, width)
    return _save(plt, fig, out)


def _missing(r: Run, set_name: str, metrics: tuple[str, ...]) -> str:
    """Why a run has no point on a set's plot ('' when it has one)."""
    if set_name not in r.sets:
        return f"not evaluated on {set_name}"
    lacking = [m for m in metrics if r.value(set_name, m) is None]
    partial = [f"{m} on {p['n']} of {p.get('of') or '?'} images only" for m in lacking
               if (p := r.partial(set_name, m)) and p.get("n")]
    if partial:  # a value over part of the set is no point of the set
        return f"{set_name} incomplete: {'; '.join(partial)}"
    return f"no {' or '.join(lacking)} on {set_name}" if lacking else ""


def pd_figure(runs: list[Run], set_name: str, x: str = "lpips", y: str = "psnr", title: str | None = None,
              xlabel: str | None = None, ylabel: str | None = None, log=None, width: str = "column"):
    """The PD plot as a matplotlib figure (see :func:`pd_plot`) ``width`` wide (:data:`WIDTHS`); runs without both
    values on the set are left out, each named with the reason through ``log``."""
    from ..metrics.registry import get_spec

    x, y = get_spec(x).name, get_spec(y).name  # an unknown metric is named as such
    plt = _mpl()
    dropped = [(r, _missing(r, set_name, (x, y))) for r in runs]
    dropped = [(r, why) for r, why in dropped if why]
    pts = [(r, r.value(set_name, x), r.value(set_name, y)) for r in runs if not _missing(r, set_name, (x, y))]
    if not pts:
        raise AesopBenchError(f"no run has both {x} and {y} on {set_name}: " +
                              "; ".join(f"{r.label}: {why}" for r, why in dropped))
    if dropped and log is not None:
        log("left out of the plot: " + "; ".join(f"{r.label} ({why})" for r, why in dropped))
    from .tables import set_size

    full = set_size(set_name, [r for r, _, _ in pts])
    partial = [f"{r.label} ({r.sets[set_name].get('n_images')} images)" for r, _, _ in pts
               if full and (r.sets[set_name].get("n_images") or 0) < full]
    if partial:
        raise AesopBenchError(f"{set_name} has {full} images but these runs cover fewer: {', '.join(partial)}; "
                              "evaluate them on the whole set before plotting them together")
    w = figure_width(width)
    fig, ax = plt.subplots(figsize=(w, min(0.8 * w, 4.2)), dpi=300 if width == "column" else 200)
    families: dict[str, list] = {}
    for r, a, b in pts:
        fam = r.interp_family()
        if fam:
            families.setdefault(fam[0], []).append((fam[1], a, b, False))
    singles = [(r, a, b) for r, a, b in pts if not r.interp_family()]
    for name, members in families.items():  # the sweep's end points, where they were evaluated on their own
        start, end = name.split(" -> ")
        for r, a, b in singles:
            if start in (r.label, r.model) or _stem(r.model) == start:
                members.append((0.0, a, b, True))
            elif end in (r.label, r.model) or _stem(r.model) == end:
                members.append((1.0, a, b, True))
    labels = []
    style = run_style([f"interp {name}" for name in families] + [r.label for r, _, _ in singles])
    for name, members in sorted(families.items()):
        members.sort()
        ax.plot([m[1] for m in members], [m[2] for m in members], "-", marker=".", lw=1, ms=4,
                label=f"interp {name}", zorder=1, color=style[f"interp {name}"][0])
        # alpha labels for the sweep's own points; an end point drawn as a run of its own keeps its marker only
        labels += [(f"{alpha:g}", a, b) for alpha, a, b, own in members if not own]
    for r, a, b in singles:
        colour, marker = style[r.label]
        ax.scatter([a], [b], marker=marker, s=22, label=r.label, zorder=2, color=colour)
    ax.margins(0.12)  # no marker on the axes' frame
    ax.set_xlabel(xlabel or f"{metric_label(x)} {'↓' if lower_better(x) else '↑'}", fontsize=FONT + 1)
    ax.set_ylabel(ylabel or f"{metric_label(y)} {'↓' if lower_better(y) else '↑'}", fontsize=FONT + 1)
    ax.tick_params(labelsize=FONT, width=0.5, length=2.5)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=max(3, int(w / 0.75))))  # tick labels with room between them
    for side in ax.spines.values():
        side.set_linewidth(0.5)
    ax.grid(alpha=0.3, lw=0.5)
    ax.set_title(title or f"Perception-distortion, {set_label(set_name)}", fontsize=FONT + 1)
    # the better direction, as the legend's title (the legend is placed where it hides no point)
    glyph = {(True, False): "↖", (True, True): "↙", (False, False): "↗", (False, True): "↘"}[
        (lower_better(x), lower_better(y))]
    fig.tight_layout()
    _place_legend(fig, ax, dict(fontsize=FONT, frameon=True, framealpha=0.8, title=f"better {glyph}",
                                title_fontsize=FONT, handletextpad=0.3, borderpad=0.3, labelspacing=0.25,
                                handlelength=1.2))
    _place_labels(fig, ax, labels)
    return fig


LEGEND_CORNERS = ("upper right", "upper left", "lower left", "lower right", "center right", "center left",
                  "upper center", "lower center")


def _point_boxes(fig, ax) -> list:
    """Display-space boxes of every marker and line vertex drawn in ``ax``, a marker's size wide."""
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    pts = []
    for coll in ax.collections:
        pts += [tuple(p) for p in ax.transData.transform(coll.get_offsets())]
    for line in ax.lines:
        pts += [tuple(p) for p in ax.transData.transform(line.get_xydata())]
    r = 4 * fig.dpi / 72  # about a marker's half width, in pixels
    return [Bbox([[x - r, y - r], [x + r, y + r]]) for x, y in pts]


def _place_legend(fig, ax, kw: dict) -> None:
    """The legend in the first corner of the axes where it covers no point; where every corner does, below the
    axes' labels, the figure growing by the legend's height (its width and the axes' size stay as they were)."""
    fig.canvas.draw()  # once: the axes' limits and layout, which the points' and the legend's boxes are in
    boxes = _point_boxes(fig, ax)
    renderer = fig.canvas.get_renderer()
    for loc in LEGEND_CORNERS:
        leg = ax.legend(loc=loc, **kw)
        leg.get_frame().set_linewidth(0.3)
        frame = leg.get_window_extent(renderer)  # placed in its corner without drawing the figure again
        if not any(frame.overlaps(b) for b in boxes):
            return
        leg.remove()
    w, h = fig.get_size_inches()
    ncol = 3 if w > 5 else 2
    leg = fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=ncol, **kw)
    leg.get_frame().set_linewidth(0.3)
    extra = leg.get_window_extent(renderer).height / fig.dpi + 0.05  # inches
    fig.set_size_inches(w, h + extra)
    fig.tight_layout(rect=(0, extra / (h + extra), 1, 1))


def _stem(model: str) -> str:
    from ..models.zoo import short_name

    return short_name(model)


# a label's place beside its point, in the order tried: (dx, dy) in points, and the text's alignment there
OFFSETS = ((3, 2, "left", "bottom"), (3, -2, "left", "top"), (-3, 2, "right", "bottom"), (-3, -2, "right", "top"),
           (0, 5, "center", "bottom"), (0, -5, "center", "top"), (6, 8, "left", "bottom"), (-6, 8, "right", "bottom"),
           (6, -8, "left", "top"), (-6, -8, "right", "top"))


def _place_labels(fig, ax, labels) -> None:
    """Annotate points, trying :data:`OFFSETS` until a label's box overlaps no label placed before it, no other
    point and not the legend, and lies inside the axes."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    legend = ax.get_legend() or (fig.legends[0] if fig.legends else None)
    placed = [legend.get_window_extent(renderer)] if legend is not None else []
    points = _point_boxes(fig, ax)
    for text, a, b in labels:
        own = ax.transData.transform((a, b))
        others = [p for p in points if not p.contains(*own)]
        for dx, dy, ha, va in OFFSETS:
            ann = ax.annotate(text, (a, b), textcoords="offset points", xytext=(dx, dy), fontsize=FONT, ha=ha,
                              va=va)
            box = ann.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(o) for o in placed + others):
                placed.append(box)
                break
            ann.remove()
        # where every place collides, the point keeps its marker, unlabelled


def sr_advice(r: Run) -> str:
    """What to do where a run's SR images are not found: a model's run saves them with ``eval --save-sr``; a result
    folder's run reads them from the folder it evaluated, which has moved or changed since."""
    if r.source != "folder":
        return f"evaluate {r.label} with --save-sr"
    return (f"the run reads them from its result folder {r.sr_folder.get('path', '?')}, which was moved or changed "
            "since: put the folder back there, or evaluate it again where it is now (aesop-bench eval --sr FOLDER "
            f"--name {shlex.quote(r.label)} --out {shlex.quote(str(r.path))})")


def _compared_area(runs: list[Run], set_name: str, image: str, data_root: str | Path):
    """The HR of ``image`` over the area the runs compared, what that area is, its LR, the protocol, and each
    run's saved SR image (by run index)."""
    from ..data.sets import resolve
    from ..data.transforms import mod_crop, protocol_lr, to_rgb
    from ..imageio import read_image
    from ..protocols import Protocol

    record = runs[0].protocol
    protocol = Protocol(**{k: record[k] for k in Protocol.__dataclass_fields__ if k in record})
    res = None
    if (runs[0].sets.get(set_name, {}).get("data") or {}).get("source") == "ldl":  # the HR the run compared
        from ..data.ldl import resolve_ldl

        res = resolve_ldl(set_name, Path(data_root), protocol.scale)
    res = res or resolve(set_name, Path(data_root))
    protocol = res.protocol(protocol)
    hr_file = next((f for f in res.hr_files if f.stem == image), None)
    if hr_file is None:
        raise AesopBenchError(f"{image!r} is not an image of {set_name} under {data_root}")
    raw = to_rgb(read_image(hr_file))
    scale = protocol.scale
    files = [r.sr_image(set_name, image) for r in runs]
    missing = [i for i, r in enumerate(runs) if not files[i].is_file() and r.model != "bicubic"]
    if missing:
        raise AesopBenchError(f"{files[missing[0]]}: no such SR image of {runs[missing[0]].label}; "
                              f"{sr_advice(runs[missing[0]])}")
    saved = {i: to_rgb(read_image(f)) for i, f in enumerate(files) if f.is_file()}
    if all(r.source == "folder" for r in runs):  # result folders compare the SR files' own area
        h, w = min(img.shape[-2] for img in saved.values()), min(img.shape[-1] for img in saved.values())
        hr, hr_what = raw[:, :h, :w], "the HR over the SR files' area"
        lr = protocol_lr(hr, protocol.with_overrides(modcrop=scale))  # that area's LR, as a folder's LR-PSNR uses
    else:
        hr = mod_crop(raw, protocol.effective_modcrop)
        hr_what = f"the HR cropped to a multiple of {protocol.effective_modcrop}"
        lr_file = res.lr_file(hr_file, scale) if protocol.lr_source == "folder" else None
        lr = to_rgb(read_image(lr_file)) if lr_file is not None else protocol_lr(raw, protocol)
    return hr, hr_what, lr, protocol, saved


def _centre_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The default crop: 96 pixels (fewer in a smaller image) at the centre."""
    s = min(96, width, height)
    return (width - s) // 2, (height - s) // 2, s, s


def parse_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` (``--box``'s text ``"x,y,width,height"``, or four numbers) as four integers: an origin at or right
    of and below the image's top-left corner, and a positive size; else an error naming the value, the
    ``width`` x ``height`` image and what to write. (Whether it lies inside each panel is :func:`_cut`'s check.)

    >>> parse_box("10, 20,96,96", 256, 256)
    (10, 20, 96, 96)
    """
    text = box if isinstance(box, str) else ",".join(map(str, box))
    parts = [p.strip() for p in text.split(",")]
    fix = (f"the image is {width}x{height} (HR pixels, width x height); write --box x,y,width,height as four "
           f"integers, x and y from 0, width and height above 0, x + width <= {width}, y + height <= {height}: "
           f"e.g. --box {','.join(map(str, _centre_box(width, height)))}")
    if len(parts) != 4 or not all(re.fullmatch(r"-?[0-9]+", p) for p in parts):
        raise AesopBenchError(f"--box {text!r} is not four integers x,y,width,height; {fix}")
    x, y, w, h = (int(p) for p in parts)
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise AesopBenchError(f"--box {text!r} is not an area of the image; {fix}")
    return x, y, w, h


def _cut(panels: list, box: str | tuple[int, int, int, int] | None, hr):
    """The box (default: :func:`_centre_box`; else :func:`parse_box`) and each panel's crop; a box outside a panel
    is an error naming each such panel."""
    h, w = hr.shape[-2:]
    box = _centre_box(w, h) if box is None else parse_box(box, w, h)
    x0, y0, bw, bh = box
    outside = [f"{label} ({img.shape[-1]}x{img.shape[-2]}, {what})" for label, img, _, what in panels
               if x0 + bw > img.shape[-1] or y0 + bh > img.shape[-2]]
    if outside:
        inner = _centre_box(*(min(img.shape[k] for _, img, _, _ in panels) for k in (-1, -2)))
        raise AesopBenchError(f"crop box {box} (x, y, width, height) lies outside what these panels show: "
                              f"{'; '.join(outside)}; choose a box inside every panel (--box x,y,width,height in "
                              f"HR pixels, e.g. --box {','.join(map(str, inner))})")
    return box, [(label, img[:, y0:y0 + bh, x0:x0 + bw], cap) for label, img, cap, _ in panels]


def crop_panels(runs: list[Run], set_name: str, image: str, box: str | tuple[int, int, int, int] | None,
                data_root: str | Path):
    """The crop sheet's content: the HR image, the box, and ``(label, crop, caption)`` per panel (HR, bicubic
    unless a run is bicubic, each run's SR), every SR panel captioned with its PSNR and, where stored, LPIPS.

    The HR is shown over the area the runs compared (the protocol's crop; a result folder's SR files' own area),
    and the box is checked against what each panel shows. A bicubic run with no saved images is drawn from the
    protocol's LR, as the evaluator made it."""
    from ..data.imresize import imresize
    from ..metrics.metric import Metric

    if not runs:
        raise AesopBenchError("give at least one run")
    hr, hr_what, lr, protocol, saved = _compared_area(runs, set_name, image, data_root)

    def bicubic():  # MATLAB bicubic of the uint8 LR, uint8 as the evaluator's
        return imresize(lr, float(protocol.scale))

    srs = [(r, saved[i], "the SR file") if i in saved else (r, bicubic(), "bicubic of the protocol's LR")
           for i, r in enumerate(runs)]
    psnr = Metric("psnr", protocol)

    def caption(r: Run | None, img) -> str:
        stored = r.images(set_name, "psnr").get(image) if r is not None else None
        h, w = min(img.shape[-2], hr.shape[-2]), min(img.shape[-1], hr.shape[-1])
        v = stored if stored is not None else float(psnr(img[:, :h, :w], hr[:, :h, :w])[0])
        parts = [f"{metric_label('psnr')} {v:.{decimals('psnr')}f}"]
        if r is not None and image in r.images(set_name, "lpips"):
            parts.append(f"{metric_label('lpips')} {r.images(set_name, 'lpips')[image]:.{decimals('lpips')}f}")
        return "  ".join(parts)

    panels = [("HR", hr, "", hr_what)]
    if not any(r.model == "bicubic" for r in runs):
        img = bicubic()
        panels.append(("Bicubic", img, caption(None, img), "bicubic of the protocol's LR"))
    panels += [(r.label, img, caption(r, img), what) for r, img, what in srs]
    box, out = _cut(panels, box, hr)
    return hr, box, out


PANEL_MIN = 0.95  # inches: the narrowest crop panel, where a 7 pt caption "LPIPS 0.1234" fits


def crop_sheet(runs: list[Run], set_name: str, image: str, box: str | tuple[int, int, int, int] | None,
               data_root: str | Path, out: str | Path, width: str = "text") -> list[Path]:
    """:func:`crop_figure` written as PNG and PDF."""
    plt = _mpl()
    return _save(plt, crop_figure(runs, set_name, image, box, data_root, width), out)


def crop_figure(runs: list[Run], set_name: str, image: str, box: str | tuple[int, int, int, int] | None,
                data_root: str | Path, width: str = "text"):
    """The same HR-space crop of HR, bicubic and each run's SR side by side, after an overview of the whole
    image with the box drawn; each crop titled with its run and captioned with its PSNR/LPIPS, one value per line.
    ``width`` wide (:data:`WIDTHS`): as many panels per row as fit at :data:`PANEL_MIN` inches or more, in rows."""
    import math

    plt = _mpl()
    from matplotlib.patches import Rectangle

    hr, (x0, y0, bw, bh), panels = crop_panels(runs, set_name, image, box, data_root)
    n = len(panels) + 1
    w = figure_width(width)
    cols = max(1, min(n, int(w // PANEL_MIN)))
    rows = math.ceil(n / cols)
    side = w / cols  # each panel's width; its crop square, then the title above and two caption lines below
    chars = int(side * 72 / (0.55 * FONT))  # about as many characters of 7 pt text as a panel is wide
    fig, axes = plt.subplots(rows, cols, figsize=(w, rows * (side + 0.42)), dpi=300, squeeze=False)
    axes = list(axes.flat)
    ax = axes[0]
    ax.imshow(hr.permute(1, 2, 0).numpy())
    ax.add_patch(Rectangle((x0, y0), bw, bh, fill=False, edgecolor="red", lw=0.8))
    ax.set_title(_fit(f"{image} ({set_label(set_name)})", chars), fontsize=FONT, pad=2)
    for ax, (label, crop, caption) in zip(axes[1:], panels):
        ax.imshow(crop.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(_fit(label, chars), fontsize=FONT, pad=2)
        ax.set_xlabel("\n".join(_fit(part, chars) for part in caption.split("  ")), fontsize=FONT, labelpad=1,
                      linespacing=1.0)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[n:]:  # the last row's empty places
        ax.set_axis_off()
    fig.tight_layout(pad=0.2, w_pad=0.3, h_pad=0.3)
    return fig


def _fit(text: str, chars: int) -> str:
    """``text`` cut to ``chars`` characters, an ellipsis marking the cut."""
    return text if len(text) <= chars else text[:max(1, chars - 1)] + "…"
