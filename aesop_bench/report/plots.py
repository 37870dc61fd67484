"""Figures: perception-distortion (PD) plots and visual comparison sheets.

PD plot: one point per run at (x metric, y metric) on one set; runs of a network-interpolation sweep
(``interp:A,B@ALPHA``) are joined by a line per family in order of ALPHA, with their end points (A and B
evaluated on their own) when present. Axis labels carry arrows for the better direction, and an arrow in
the legend's title points to the better corner. Sized for a paper column (3.4 in wide); written as PNG and PDF.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import AesopBenchError
from .runs import Run
from .tables import LABELS, SET_LABELS, lower_better


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pd_plot(runs: list[Run], set_name: str, x: str = "lpips", y: str = "psnr", out: str | Path = "pd.png",
            title: str | None = None) -> list[Path]:
    plt = _mpl()
    pts = [(r, r.value(set_name, x), r.value(set_name, y)) for r in runs]
    pts = [(r, a, b) for r, a, b in pts if a is not None and b is not None]
    if not pts:
        raise AesopBenchError(f"no run has both {x} and {y} on {set_name}")
    fig, ax = plt.subplots(figsize=(3.4, 2.8), dpi=200)
    families: dict[str, list] = {}
    for r, a, b in pts:
        fam = r.interp_family()
        if fam:
            families.setdefault(fam[0], []).append((fam[1], a, b))
    markers = "osD^v<>ph*"
    singles = [(r, a, b) for r, a, b in pts if not r.interp_family()]
    for name, members in families.items():  # the sweep's end points, where they were evaluated on their own
        start, end = name.split(" -> ")
        for r, a, b in singles:
            if r.label == start:
                members.append((0.0, a, b))
            elif r.label == end:
                members.append((1.0, a, b))
    for k, (name, members) in enumerate(sorted(families.items())):
        members.sort()
        ax.plot([m[1] for m in members], [m[2] for m in members], "-", marker=".", lw=1, ms=4,
                label=f"interp {name}", zorder=1)
        for alpha, a, b in members:
            ax.annotate(f"{alpha:g}", (a, b), textcoords="offset points", xytext=(3, 2), fontsize=5)
    for k, (r, a, b) in enumerate(singles):
        ax.scatter([a], [b], marker=markers[k % len(markers)], s=22, label=r.label, zorder=2)
    xl = f"{LABELS.get(x, x)} {'↓' if lower_better(x) else '↑'}"
    yl = f"{LABELS.get(y, y)} {'↓' if lower_better(y) else '↑'}"
    ax.set_xlabel(xl, fontsize=7)
    ax.set_ylabel(yl, fontsize=7)
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3, lw=0.5)
    ax.set_title(title or f"Perception-distortion, {SET_LABELS.get(set_name, Path(set_name).name)}", fontsize=7)
    # the better direction, as the legend's title (the legend is placed where it hides no point)
    glyph = {(True, False): "↖", (True, True): "↙", (False, False): "↗", (False, True): "↘"}[
        (lower_better(x), lower_better(y))]
    leg = ax.legend(fontsize=5, loc="best", frameon=True, framealpha=0.8, title=f"better {glyph}",
                    title_fontsize=6)
    leg.get_frame().set_linewidth(0.3)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths


def crop_sheet(runs: list[Run], set_name: str, image: str, box: tuple[int, int, int, int] | None,
               data_root: str | Path, out: str | Path, zoom: int = 3) -> Path:
    """The same HR-space crop of HR, bicubic and each run's saved SR (``--save-sr``), side by side."""
    import numpy as np
    from PIL import Image, ImageDraw

    from ..data.imresize import imresize
    from ..data.sets import resolve
    from ..data.transforms import mod_crop, to_rgb
    from ..imageio import read_image

    if not runs:
        raise AesopBenchError("give at least one run")
    protocol = runs[0].protocol
    res = resolve(set_name, Path(data_root))
    hr_file = next((f for f in res.hr_files if f.stem == image), None)
    if hr_file is None:
        raise AesopBenchError(f"{image!r} is not an image of {set_name} under {data_root}")
    hr = mod_crop(to_rgb(read_image(hr_file)), protocol.get("modcrop", 4))
    scale = protocol.get("scale", 4)
    bic = imresize(imresize(hr, 1 / scale), float(scale))
    panels = [("HR", hr), ("Bicubic", bic)]
    for r in runs:
        p = r.sr_image(set_name, image)
        if not p.is_file():
            raise AesopBenchError(f"{p}: no saved SR image; evaluate {r.label} with --save-sr")
        panels.append((r.label, to_rgb(read_image(p))))
    h, w = hr.shape[-2:]
    if box is None:
        s = min(96, h, w)
        box = ((w - s) // 2, (h - s) // 2, s, s)
    x0, y0, bw, bh = box
    for label, img in panels:  # result-folder images may be a few pixels smaller than the HR
        ph, pw = img.shape[-2:]
        if x0 < 0 or y0 < 0 or x0 + bw > pw or y0 + bh > ph:
            raise AesopBenchError(f"crop box {box} lies outside the {pw}x{ph} image of {label}")
    tiles = []
    for label, img in panels:
        crop = img[:, y0:y0 + bh, x0:x0 + bw].permute(1, 2, 0).numpy()
        tile = Image.fromarray(np.ascontiguousarray(crop)).resize((bw * zoom, bh * zoom), Image.NEAREST)
        canvas = Image.new("RGB", (tile.width, tile.height + 16), "white")
        canvas.paste(tile, (0, 16))
        ImageDraw.Draw(canvas).text((2, 2), label[:32], fill="black")
        tiles.append(canvas)
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), tiles[0].height), "white")
    xo = 0
    for t in tiles:
        sheet.paste(t, (xo, 0))
        xo += t.width + 4
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
