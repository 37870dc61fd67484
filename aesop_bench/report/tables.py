"""Tables in the paper's layouts, in Markdown (GitHub), LaTeX (booktabs) and CSV.

Layouts:

* ``table1``: LPIPS, DISTS, PSNR, SSIM; one row per metric and set; one column per run, grouped by
  backbone (RRDB, SwinIR) where runs of both are compared.
* ``table2``: NIQE and MANIQA on the real-world sets; runs as columns.
* ``table3``: DISTS and PSNR (the ablation of the AE's components); runs as columns.
* ``table4``: AE-PSNR and LR-PSNR; one row per metric and run; one column per set.
* ``table5``: LPIPS and PSNR (the AE's architecture, a low-pass-filtered pixel loss); runs as columns.
* ``table6``: NIQE, MANIQA, MUSIQ, CLIP-IQA on the real-world sets; runs as columns.
* ``table7``: FID and pFID; runs as columns.
* ``table8``: LPIPS, DISTS, PSNR, SSIM (CAL-GAN; the DRCT backbone); runs as columns, grouped by backbone.
* ``hggt``: PSNR, LPIPS-ST, MUSIQ, NIMA, Q-Align, TOPIQ (Zhang et al., CVPR 2025, on HGGT's Test-100; PSNR
  the mean over each image's positive GTs, :mod:`aesop_bench.evaluation.multigt`); runs as columns. LPIPS-ST
  and Q-Align are not computed here (:data:`NOT_COMPUTED`): their cells read ``n/c``, never a number.
* ``generic``: any ``--metrics`` and ``--sets``; runs as columns. Without a layout, ``report`` uses it with the
  metrics the runs have.

In each comparison group (a row when runs are columns; a metric block's column when runs are rows) the
best value is bold and the second underlined, following each metric's direction (arrows in the headers).
With ``compare_paper`` the paper's value and the difference follow each value that the paper reports;
with ``significance`` a value whose per-image difference to the best is not significant (Wilcoxon,
p >= 0.05) is marked with a tilde.

Length: every table layout of the paper (Tables 1 to 8 and generic), in Markdown and LaTeX, goes through one
cell formatter.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ..data.sets import SETS, display_name, paper_set_name, set_labels
from ..errors import AesopBenchError
from ..metrics.registry import METRICS
from ..models.zoo import ZOO
from .runs import Run

LAYOUTS = {
    "table1": (["lpips", "dists", "psnr", "ssim"], "runs_as_columns"),
    "table2": (["niqe", "maniqa"], "runs_as_columns"),
    "table3": (["dists", "psnr"], "runs_as_columns"),
    "table4": (["ae_psnr", "lr_psnr"], "sets_as_columns"),
    "table5": (["lpips", "psnr"], "runs_as_columns"),
    "table6": (["niqe", "maniqa", "musiq", "clipiqa"], "runs_as_columns"),
    "table7": (["fid", "pfid"], "runs_as_columns"),
    "table8": (["lpips", "dists", "psnr", "ssim"], "runs_as_columns"),
    "hggt": (["psnr", "lpips_st", "musiq", "nima", "qalign", "topiq_nr"], "runs_as_columns"),
    "generic": ([], "runs_as_columns"),
}
# layout columns of metrics this project has no implementation of: shown as "n/c" with this note
NOT_COMPUTED = {
    "lpips_st": "LPIPS-ST (shift-tolerant LPIPS, Ghildyal & Liu, ECCV 2022)",
    "qalign": "Q-Align (a 7B multimodal model)",
}
LABELS = {"lpips_st": "LPIPS-ST", "qalign": "Q-Align"}


def label(metric: str) -> str:
    """A metric's column label (its registry entry's; an unknown name as it is)."""
    return METRICS[metric].label if metric in METRICS else LABELS.get(metric, metric)


def decimals(metric: str) -> int:
    """The decimals a metric is shown with (4 for a metric the registry does not know)."""
    return METRICS[metric].decimals if metric in METRICS else 4


def lower_better(metric: str) -> bool:
    """Whether lower values of a metric are better."""
    return METRICS[metric].lower_better if metric in METRICS else False


def arrow(metric: str, tex: bool = False) -> str:
    """The better direction as an arrow, Unicode or LaTeX.

    >>> arrow("lpips"), arrow("psnr")
    ('↓', '↑')
    """
    if tex:
        return "$\\downarrow$" if lower_better(metric) else "$\\uparrow$"
    return "↓" if lower_better(metric) else "↑"


def fmt(metric: str, v: float | None) -> str:
    """A value with the metric's decimals, ``-`` where there is none.

    >>> fmt("psnr", 28.41736), fmt("lpips", None)
    ('28.417', '-')
    """
    return "-" if v is None else f"{v:.{decimals(metric)}f}"


class PaperValue(float):
    """A value of the paper with the digits it prints (``text``): CALGAN's 0.077 is shown as 0.077, not 0.0770."""

    def __new__(cls, text: str):
        obj = super().__new__(cls, float(text))
        obj.text = text
        return obj


def load_paper(path: str | Path | None = None) -> dict[tuple, float]:
    """(table, backbone, method, train_patch, set, metric) -> value, from the paper-tables CSV."""
    if path is None:
        from importlib import resources

        text = resources.files(__package__).joinpath("aesop_paper_tables.csv").read_text()
    else:
        text = Path(path).read_text()
    out = {}
    for r in csv.DictReader(text.splitlines()):
        out[(r["table"], r["backbone"], r["method"], r["train_patch"], r["set"], r["metric"])] = PaperValue(r["value"])
    return out


def paper_value(paper: dict, run: Run, set_name: str, metric: str, table: str | None = None) -> float | None:
    """The paper's value of the run's model (its full identity: backbone, method, training patch; never a
    wildcard) on a set and metric: from ``table`` where that table prints it (Table 1 and Table 8 differ in one
    cell), else from the first table that does."""
    entry = ZOO.get(run.model)
    if entry is None or entry.paper is None:
        return None
    backbone, method, patch = entry.paper
    s = paper_set_name(set_name)
    found = [(t, v) for (t, b, m, p, ss, mm), v in paper.items() if (b, m, p, ss, mm) == (backbone, method, patch, s,
                                                                                           metric)]
    own = [v for t, v in found if t == table]
    return own[0] if own else found[0][1] if found else None


@dataclass
class Cell:
    """One value of a table with its rank in its row (1 best, 2 second) and the paper's value where compared."""

    value: float | None
    rank: int = 0  # 1 best, 2 second
    paper: float | None = None
    insignificant: bool = False
    n: int | None = None  # images behind the value, where fewer than the set's: not ranked, no paper delta
    of: int | None = None  # the set's images, where n is given (None: not known)
    unsettled: bool = False  # the paper's value is of a row the model's file may not be (zoo paper_note)


@dataclass
class Table:
    """A table before formatting: its layout, orientation, metrics, sets and cells (Markdown and LaTeX format
    it)."""

    layout: str
    orientation: str
    metrics: list[str]
    sets: list[str]
    runs: list[Run]
    cells: dict[tuple, Cell] = field(default_factory=dict)  # (metric, set, run index) -> Cell
    notes: list[str] = field(default_factory=list)


def build_table(runs: list[Run], layout: str = "table1", metrics: list[str] | None = None,
                sets: list[str] | None = None, compare_paper: bool = False, significance: bool = False,
                paper_csv: str | Path | None = None) -> Table:
    """The table of ``runs`` in a paper layout: the metrics and sets asked (default: those the runs have), each
    row's best and second marked, and with ``compare_paper`` the paper's value of each cell the paper has."""
    if layout not in LAYOUTS:
        raise AesopBenchError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    default_metrics, orientation = LAYOUTS[layout]
    metrics = metrics or default_metrics
    if not metrics:
        raise AesopBenchError("the generic layout needs --metrics")
    present = []
    for r in runs:
        for s in r.sets:
            if s not in present:
                present.append(s)
    if not sets:  # the registry's order: Set5, Set14, BSD100, Urban100, Manga109, ..., the real-world sets
        sets = [s for s in SETS if s in present] + [s for s in present if s not in SETS]
    t = Table(layout, orientation, metrics, sets, runs)
    paper = load_paper(paper_csv) if compare_paper else {}
    for m in metrics:
        for s in sets:
            full = set_size(s, runs)
            vals = [r.value(s, m) for r in runs]
            for i, v in enumerate(vals):
                v, n, of = _cell_value(runs[i], s, m, full)
                vals[i] = v
                partial = n is not None
                pv = paper_value(paper, runs[i], s, m, layout) if compare_paper and not partial else None
                pnote = ZOO[runs[i].model].paper_note if runs[i].model in ZOO and pv is not None else ""
                t.cells[(m, s, i)] = Cell(v, paper=pv, n=n, of=of, unsettled=bool(pnote))
                if pnote and f"?: {runs[i].label}: {pnote}" not in t.notes:
                    t.notes.append(f"?: {runs[i].label}: {pnote}")
            _rank(t, m, s, [None if t.cells[(m, s, i)].n is not None else v for i, v in enumerate(vals)], significance)
            if any(t.cells[(m, s, i)].n is not None for i in range(len(runs))):
                note = "n=K/N: the value covers K of the set's N images (? where no record says N); it is not " \
                       "ranked or compared"
                if note not in t.notes:
                    t.notes.append(note)
    for m in metrics:
        if m in NOT_COMPUTED and m not in METRICS:
            t.notes.append(f"n/c: {NOT_COMPUTED[m]} is not computed by aesop-bench")
    return t


def _cell_value(run: Run, set_name: str, metric: str, full: int | None) -> tuple[float | None, int | None,
                                                                              int | None]:
    """``(value, n, of)`` of a cell: the set's value (``n`` None), or a value over part of the set with its count:
    a summary's ``partial`` entry, or a summary written before those whose image count is below the set's."""
    v = run.value(set_name, metric)
    entry = run.sets.get(set_name, {})
    if v is not None:
        n = entry.get("n_images")
        if entry.get("complete") is None and n is not None and full is not None and n < full:
            return v, n, full
        return v, None, None
    part = run.partial(set_name, metric)
    if part and part.get("mean") is not None:
        return part["mean"], part["n"], part.get("of")
    return None, None, None


def set_size(set_name: str, runs: list[Run]) -> int | None:
    """The number of images of a set: the registry's, else the most any run evaluated."""
    from ..data.sets import SETS

    entry = SETS.get(set_name)
    counts = [r.sets.get(set_name, {}).get("n_images") or 0 for r in runs]
    return (entry.n_images if entry and entry.n_images else None) or (max(counts) if counts else None)


def _rank(t: Table, metric: str, set_name: str, vals: list[float | None], significance: bool) -> None:
    # ranked on the displayed precision: values shown equal get equal marks
    present = [(round(v, decimals(metric)), i) for i, v in enumerate(vals) if v is not None]
    if not present:
        return
    ordered = sorted(present, key=lambda p: p[0], reverse=not lower_better(metric))
    distinct = sorted({v for v, _ in present}, reverse=not lower_better(metric))
    for v, i in ordered:
        if v == distinct[0]:
            t.cells[(metric, set_name, i)].rank = 1
        elif len(distinct) > 1 and v == distinct[1]:
            t.cells[(metric, set_name, i)].rank = 2
    if significance:
        from .stats import ALPHA, min_images, paired

        best = ordered[0][1]
        for v, i in ordered[1:]:
            a, b = t.runs[best].images(set_name, metric), t.runs[i].images(set_name, metric)
            n = len(set(a) & set(b))
            if n < min_images():  # no difference can be significant: nothing is marked, the table says why
                note = (f"significance not tested on {set_labels([set_name])[set_name]}: with {n} images the Wilcoxon signed-rank test "
                        f"cannot reach p < {ALPHA:g} (its smallest two-sided p is {2.0 ** (1 - n):.4g}); "
                        f"{min_images()} or more are needed") if n >= 1 else ""
                if note and note not in t.notes:
                    t.notes.append(note)
                continue
            try:
                t.cells[(metric, set_name, i)].insignificant = not paired(a, b).significant()
            except AesopBenchError:
                pass


def _cell_text(t: Table, metric: str, c: Cell, tex: bool) -> str:
    if metric in NOT_COMPUTED and metric not in METRICS:
        return "n/c"
    s = fmt(metric, c.value)
    if c.value is not None and c.rank == 1:
        s = f"\\textbf{{{s}}}" if tex else f"**{s}**"
    elif c.value is not None and c.rank == 2:
        s = f"\\underline{{{s}}}" if tex else f"<u>{s}</u>"
    if c.insignificant:
        s += "$^{\\sim}$" if tex else "~"
    if c.n is not None:
        s += f" (n={c.n}/{'?' if c.of is None else c.of})"
    if c.paper is not None:
        d = "-" if c.value is None else f"{c.value - c.paper:+.{decimals(metric)}f}"
        shown = getattr(c.paper, "text", None) or fmt(metric, c.paper)  # as the paper prints it
        s += f" ({shown}{'?' if c.unsettled else ''}, {d})"
    return s


BACKBONES = ("RRDB", "SwinIR", "DRCT")  # the families a run's model can declare; bicubic and result folders have none


def _groups(t: Table) -> list[tuple[str, list[int]]]:
    """Column groups by backbone, where runs of two or more backbones are compared (else one unnamed group);
    runs that declare none (bicubic, result folders, other networks) come last, as "other"."""
    def backbone(r: Run) -> str:
        return r.backbone if r.source == "model" and r.backbone in BACKBONES else "other"

    groups: dict[str, list[int]] = {}
    for i, r in enumerate(t.runs):
        groups.setdefault(backbone(r), []).append(i)
    if len([g for g in groups if g != "other"]) < 2:
        return [("", list(range(len(t.runs))))]
    return [(g, groups[g]) for g in groups if g != "other"] + ([("other", groups["other"])] if "other" in groups
                                                              else [])


def _grid(t: Table, tex: bool) -> tuple[list[str], list[list[str]]]:
    """Header and body rows (strings) of the table; the first two columns are labels."""
    if t.orientation == "runs_as_columns":
        order = [i for _, idx in _groups(t) for i in idx]
        header = ["Metric", "Set"] + [t.runs[i].label for i in order]
        labels = set_labels(t.sets)
        body = []
        for m in t.metrics:
            for k, s in enumerate(t.sets):
                name = f"{label(m)} {arrow(m, tex)}" if k == 0 else ""
                body.append([name, labels[s]] +
                            [_cell_text(t, m, t.cells[(m, s, i)], tex) for i in order])
        return header, body
    header = ["Metric", "Method"] + list(set_labels(t.sets).values())
    body = []
    for m in t.metrics:
        for i, r in enumerate(t.runs):
            name = f"{label(m)} {arrow(m, tex)}" if i == 0 else ""
            body.append([name, r.label] + [_cell_text(t, m, t.cells[(m, s, i)], tex) for s in t.sets])
    return header, body


def to_markdown(t: Table) -> str:
    header, body = _grid(t, tex=False)
    lines = []
    if t.orientation == "runs_as_columns" and len(_groups(t)) > 1:
        groups = " / ".join(f"{name}: {', '.join(t.runs[i].label for i in idx)}" for name, idx in _groups(t))
        lines.append(f"Backbones: {groups}\n")
    lines.append("| " + " | ".join(map(_md_escape, header)) + " |")
    lines.append("|" + "---|" * 2 + "---:|" * (len(header) - 2))
    lines += ["| " + " | ".join(map(_md_escape, row)) + " |" for row in body]
    notes = legend_notes(t, tex=False) + t.notes
    return "\n".join(lines) + "\n\n" + "; ".join(notes) + ".\n"


def legend_notes(t: Table, tex: bool) -> list[str]:
    """What the table's marks mean, as Markdown or LaTeX: bold and underline, and where used the tilde and the
    paper's values."""
    notes = ["\\textbf{bold}: best, \\underline{underlined}: second best per comparison" if tex else
             "**bold**: best, <u>underlined</u>: second best per comparison"]
    if any(c.insignificant for c in t.cells.values()):
        notes.append("$^{\\sim}$: not significantly different from the best (Wilcoxon signed-rank, p $\\geq$ 0.05)"
                     if tex else "~: not significantly different from the best (Wilcoxon signed-rank, p >= 0.05)")
    if any(c.paper is not None for c in t.cells.values()):
        notes.append("(paper value, difference) after values the paper reports")
    return notes


def _md_escape(s: str) -> str:
    """A table cell's text with ``|`` escaped and line breaks as spaces, so a label or set name cannot split a
    Markdown row.

    >>> _md_escape("a|b")
    'a\\\\|b'
    """
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


_TEX = {"\\": "\\textbackslash{}", "_": "\\_", "%": "\\%", "&": "\\&", "#": "\\#", "$": "\\$", "{": "\\{",
        "}": "\\}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}", "<": "\\textless{}", ">": "\\textgreater{}"}


def _tex_escape(s: str) -> str:
    """``s`` as LaTeX text: its special characters escaped in one pass, Markdown's underline tags dropped.

    >>> print(_tex_escape("a_b {50%} ~x"))
    a\\_b \\{50\\%\\} \\textasciitilde{}x
    """
    import re

    s = s.replace("<u>", "").replace("</u>", "")
    return re.sub(r"[\\_%&#${}~^<>]", lambda m: _TEX[m.group()], s)


def default_caption(t: Table) -> str:
    """A caption naming what the table holds: its metrics with their better direction, and its sets."""
    metrics = ", ".join(f"{label(m)} ({'lower' if lower_better(m) else 'higher'} is better)" for m in t.metrics)
    return f"{metrics} on {', '.join(set_labels(t.sets).values())}."


def to_latex(t: Table, caption: str | None = None) -> str:
    """The table as a booktabs ``table`` float: its caption (default :func:`default_caption`; ``""`` for none)
    and, under the tabular, what its marks mean and every note of the Markdown table (incomplete sets, data that
    is not the paper's, mixed settings)."""
    header, body = _grid(t, tex=True)
    n = len(header)
    out = ["% requires \\usepackage{booktabs}", "\\begin{table}[t]", "\\centering", "\\small",
           "\\begin{tabular}{ll" + "c" * (n - 2) + "}", "\\toprule"]
    if t.orientation == "runs_as_columns":
        groups = _groups(t)
        if len(groups) > 1:
            cells, rules, col = ["", ""], [], 3
            for name, idx in groups:
                cells.append(f"\\multicolumn{{{len(idx)}}}{{c}}{{{_tex_escape(name)}}}")
                rules.append(f"\\cmidrule(lr){{{col}-{col + len(idx) - 1}}}")
                col += len(idx)
            out.append(" & ".join(cells) + " \\\\")
            out.append(" ".join(rules))
    out.append(" & ".join(_tex_escape(h) for h in header) + " \\\\")
    out.append("\\midrule")
    block = len(t.sets) if t.orientation == "runs_as_columns" else len(t.runs)
    for k, row in enumerate(body):
        if k and k % block == 0:
            out.append("\\midrule")
        cells = [row[0], _tex_escape(row[1])] + row[2:]
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    notes = legend_notes(t, tex=True) + [_tex_escape(n) for n in t.notes]
    out += ["\\par\\smallskip", "{\\footnotesize " + "; ".join(notes) + ".\\par}"]
    caption = default_caption(t) if caption is None else caption
    if caption:
        out.append(f"\\caption{{{_tex_escape(caption)}}}")
    out.append(f"\\label{{tab:{t.layout}}}")
    out.append("\\end{table}")
    return "\n".join(out) + "\n"


def to_csv(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    # model: the zoo name or file a model run evaluated (empty for a folder of SR images, whose path is sr_folder);
    # n_images/of_images: a value over part of the set (else empty)
    w.writerow(["layout", "metric", "set", "run", "source", "model", "sr_folder", "value", "rank", "paper",
                "delta", "not_significant", "n_images", "of_images"])
    for (m, s, i), c in t.cells.items():
        r = t.runs[i]
        delta = "" if c.value is None or c.paper is None else repr(c.value - c.paper)
        folder = r.source == "folder"
        w.writerow([t.layout, m, s, r.label, r.source, "" if folder else r.model,
                    r.sr_folder.get("path", "") if folder else "", "" if c.value is None else repr(c.value),
                    c.rank or "",
                    "" if c.paper is None else c.paper, delta, int(c.insignificant),
                    "" if c.n is None else c.n, "" if c.n is None or c.of is None else c.of])
    return buf.getvalue()


def summary_table(summary: dict, sets: list[str], metrics: list[str]) -> str:
    """An evaluation summary as a plain-text table: one row per set (with its image count), one column per
    metric. A value over part of a set is shown with its count, ``28.417 (n=3/5)``, never alone; lines under the
    table say which sets are incomplete and why (:func:`incomplete_notes`)."""
    header = ["set", "images"] + metrics
    rows = []
    labels = set_labels(sets, display_name)
    for s in sets:
        entry = summary["sets"].get(s, {})
        vals, partial = entry.get("metrics", {}), entry.get("partial", {})
        rows.append([labels[s], str(entry.get("n_images", 0))] +
                    [fmt(m, vals[m]) if m in vals else partial_text(m, partial.get(m)) for m in metrics])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def line(r):
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))

    notes = incomplete_notes(summary, sets) + settings_notes(summary, sets)
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows] + notes)


def partial_text(metric: str, part: dict | None) -> str:
    """A value over part of a set with its count (``28.417 (n=3/5)``), ``- (n=0/5)`` where no image has one yet,
    ``-`` where nothing is stored.

    >>> partial_text("psnr", {"n": 3, "of": 5, "mean": 28.41736}), partial_text("psnr", None)
    ('28.417 (n=3/5)', '-')
    """
    if not part:
        return "-"
    of = "?" if part.get("of") is None else part["of"]
    return f"{fmt(metric, part.get('mean'))} (n={part.get('n', 0)}/{of})"


def settings_notes(summary: dict, sets: list[str] | None = None, label: str = "") -> list[str]:
    """One line per set whose values were computed under more than one setting that can change them: device or
    torch version (a run resumed elsewhere), or CPU threads (a run resumed under another load) where the model's
    outputs are not known to be independent of them (:func:`~aesop_bench.models.identity.thread_invariant`; every
    metric is).

    >>> notes = settings_notes({"sets": {"set5": {"computed_on": ["cpu, 1 thread", "cpu, 2 threads"]}}})
    >>> print(notes[0][:76])
    set5: values computed under several settings (cpu, 1 thread; cpu, 2 threads)
    """
    from ..models.identity import thread_invariant

    out = []
    same_threads = thread_invariant(str((summary.get("model") or {}).get("identity", "")))
    for s in sets or list(summary.get("sets", {})):
        where = (summary.get("sets", {}).get(s) or {}).get("computed_on") or []
        if len({w.rsplit(", ", 1)[0] if same_threads else w for w in where}) > 1:
            out.append(f"{label}{display_name(s)}: values computed under several settings ({'; '.join(where)}); every "
                       "metric and the zoo's networks give equal values across CPU thread counts, other networks and "
                       "other devices or torch versions can differ by float32 rounding")
    return out


def incomplete_notes(summary: dict, sets: list[str] | None = None) -> list[str]:
    """One line per set of ``summary`` whose values do not cover it whole: how many images each metric covers,
    how many stored values came from other files than the set's now, and sets no record describes.

    >>> incomplete_notes({"sets": {"bsd100": {"n_images": 100, "complete": False, "metrics": {},
    ...                   "partial": {"psnr": {"n": 48, "of": 100, "mean": 25.8}}}}})
    ['bsd100 is incomplete: psnr on 48 of 100 images; its set values are not given (evaluate it again to finish)']
    """
    out = []
    for s in sets or list(summary.get("sets", {})):
        entry = summary.get("sets", {}).get(s) or {}
        if entry.get("complete", True) and not entry.get("partial"):
            continue
        parts = []
        for m, p in sorted((entry.get("partial") or {}).items()):
            if "set_value" in p:
                parts.append(f"{m} computed {'on other files' if p['set_value'] == 'of other files' else 'unverified'}")
                continue
            of = "?" if p.get("of") is None else p["of"]
            other = f" ({p['other_files']} stored from other files, not counted)" if p.get("other_files") else ""
            parts.append(f"{m} on {p.get('n', 0)} of {of} images{other}")
        why = entry.get("unverified") or "its set values are not given (evaluate it again to finish)"
        out.append(f"{display_name(s)} is incomplete: {'; '.join(parts) or 'no values'}; {why}")
    return out


def computed_metrics(runs: list[Run]) -> list[str]:
    """The metrics any of ``runs`` has a value of, in the registry's order (others after them)."""
    have = {m for r in runs for v in r.sets.values() for m, x in v.get("metrics", {}).items() if x is not None}
    return [m for m in METRICS if m in have] + sorted(have - set(METRICS))


def check_metrics_present(runs: list[Run], metrics: list[str], every: bool = True) -> None:
    """Refuse a table with a metric none of the runs has (rows of dashes), naming what each run has; ``every``
    False: only a table where no metric has a value (a paper layout keeps its rows, with dashes, otherwise)."""
    have = set(computed_metrics(runs))
    absent = [m for m in metrics if m not in have]
    if absent and (every or len(absent) == len(metrics)):
        each = "; ".join(f"{r.label}: {', '.join(computed_metrics([r])) or 'nothing'}" for r in runs)
        raise AesopBenchError(f"no run has {', '.join(absent)}; the runs have {each}. Ask for those metrics "
                              "(--metrics), or evaluate the runs with the others first")


def report(runs: list[Run], layout: str | None = None, metrics: list[str] | None = None,
           sets: list[str] | None = None, compare_paper: bool = False, significance: bool = False,
           allow_mixed: bool = False) -> Table:
    """The table of ``runs`` in ``layout``, after checking they are comparable (``allow_mixed``: label runs of
    different protocols instead of refusing them), with notes on anything off the paper's protocol. Without a
    layout: runs as columns, the metrics given, else every metric the runs have (in the registry's order)."""
    from .runs import check_comparable, check_paper_protocol, fallbacks

    if layout is None:
        layout, metrics = "generic", metrics or computed_metrics(runs)
    check_metrics_present(runs, metrics or LAYOUTS.get(layout, ([], ""))[0], every=bool(metrics))
    problems = check_comparable(runs, metrics or LAYOUTS.get(layout, ([], ""))[0], allow_mixed)
    off_paper = check_paper_protocol(runs, allow_mixed) if compare_paper else []
    table = build_table(runs, layout, metrics, sets, compare_paper, significance)
    table.notes += [f"not the paper's protocol: {p}" for p in off_paper]
    table.notes += [f"not the paper's test data: {p}" for p in fallbacks(runs)]
    table.notes += [n for r in runs for n in settings_notes({"sets": r.sets, "model": {"identity": r.identity}},
                                                            table.sets, f"{r.label}, ")]
    if problems:
        table.notes += [f"mixed: {p}" for p in problems]
        if len({r.protocol.get("name") for r in runs}) > 1:  # the table's columns name their protocols
            from dataclasses import replace

            table.runs = [replace(r, label=f"{r.label} [{r.protocol.get('name')}]") for r in runs]
    return table


FORMATS = {"md": (to_markdown, ".md"), "tex": (to_latex, ".tex"), "csv": (to_csv, ".csv")}
