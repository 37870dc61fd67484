"""Reading run folders: `aesop-bench report` (tables, the results browser), `plot`, `compare` and `results`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from ..errors import AesopBenchError
from .common import add_command


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def add_report(sub) -> None:
    r = add_command(sub, "report", "tables in the paper's layouts from evaluation runs", cmd_report)
    r.add_argument("runs", nargs="+", help="run folders written by aesop-bench eval")
    r.add_argument("--layout", default=None, help="table1, table4, table6, table7 or generic (default: runs as "
                   "columns, with --metrics or every metric the runs have)")
    r.add_argument("--format", default="md", help="comma-separated: md, tex, csv")
    r.add_argument("--out", default=None, help="output path without suffix (default: print)")
    r.add_argument("--metrics", default=None, help="metrics (default: the layout's; without a layout, every "
                   "metric the runs have)")
    r.add_argument("--sets", default=None, help="sets to show (default: those in the runs, paper order)")
    r.add_argument("--compare-paper", action="store_true", help="add the paper's values and the differences")
    r.add_argument("--significance", action="store_true",
                   help="mark values not significantly different from the best (Wilcoxon, per image)")
    r.add_argument("--caption", default=None,
                   help="tex: the table's caption (default: its metrics, their better direction and its sets; '' "
                        "for none); the marks' legend and the notes follow the tabular")
    r.add_argument("--allow-mixed", action="store_true", help="label runs of different protocols instead of refusing")
    r.add_argument("--html", default=None, metavar="DIR",
                   help="also write a results browser into DIR: open DIR/index.html from disk (table, PD plot, "
                        "per-image values, a side-by-side image viewer)")
    r.add_argument("--copy-images", action="store_true",
                   help="--html: copy the images into DIR/images (else the page reads them where they are)")
    r.add_argument("--baseline", default=None, help="--html: the run the per-image differences are taken from "
                                                    "(its label; default: the first run)")
    r.add_argument("--data-root", default=None, help="--html: folder holding the sets, for the HR images (default "
                                                     "$AESOP_BENCH_DATA)")


def cmd_report(args) -> int:
    """`aesop-bench report RUN...`: tables in the paper's layouts, or the results browser (``--html``)."""
    for line in report_outputs(args, log=_stderr):
        print(line)
    return 0


def report_outputs(args, log) -> Iterator[str]:
    """The report's tables, each format's text, or ``wrote PATH`` where it is written to ``--out``; then, with
    ``--html``, the results browser written. ``log`` takes the lines about runs skipped."""
    from ..data.sets import expand_sets
    from ..fileutil import atomic_write_text
    from ..metrics.registry import expand_metrics
    from ..report.runs import load_runs
    from ..report.tables import FORMATS, report

    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise AesopBenchError(f"unknown format {', '.join(unknown)}; use md, tex or csv")
    runs = load_runs(args.runs, log=log)
    table = report(runs, args.layout, expand_metrics(args.metrics) if args.metrics else None,
                   expand_sets(args.sets) if args.sets else None, args.compare_paper, args.significance,
                   args.allow_mixed)
    for f in formats:
        write, suffix = FORMATS[f]
        text = write(table, args.caption) if f == "tex" else write(table)
        if args.out is None:
            yield text
        else:
            path = Path(args.out).with_suffix(suffix)
            atomic_write_text(path, text)
            yield f"wrote {path}"
    if args.html:
        from ..paths import data_root
        from ..report.site import write_site

        # the runs read again: a mixed table relabels the runs it was given
        index = write_site(load_runs(args.runs), args.html, data_root(args.data_root),
                           metrics=expand_metrics(args.metrics) if args.metrics else None,
                           sets=expand_sets(args.sets) if args.sets else None, baseline=args.baseline,
                           copy_images=args.copy_images, allow_mixed=args.allow_mixed)
        yield f"wrote {index} (open it in a browser, from disk)"


def add_plot(sub) -> None:
    pl = add_command(sub, "plot", "perception-distortion plots and visual comparison sheets", cmd_plot)
    pl.add_argument("figure", choices=["pd", "crops"], help="pd: perception-distortion plot; crops: a crop sheet")
    pl.add_argument("runs", nargs="+", help="run folders written by aesop-bench eval")
    pl.add_argument("--set", required=True, help="the set to plot")
    pl.add_argument("--x", default="lpips", help="pd: the metric on the x axis")
    pl.add_argument("--y", default="psnr", help="pd: the metric on the y axis")
    pl.add_argument("--title", default=None, help="pd: the title (default: Perception-distortion, SET)")
    pl.add_argument("--xlabel", default=None, help="pd: the x axis label (default: the metric with its arrow)")
    pl.add_argument("--ylabel", default=None, help="pd: the y axis label (default: the metric with its arrow)")
    pl.add_argument("--image", default=None, help="crops: image name (file stem)")
    pl.add_argument("--box", default=None, help="crops: x,y,width,height in HR pixels (default: a centre crop)")
    pl.add_argument("--data-root", default=None, help="crops: folder holding the sets (default $AESOP_BENCH_DATA)")
    pl.add_argument("--out", default=None,
                    help="output file (default reports/pd_SET.png or reports/crops_SET_IMAGE.png)")
    pl.add_argument("--width", choices=["column", "text"], default=None,
                    help="the printed width: a paper's column (3.25 in) or its text (6.875 in); every text is 7 pt or "
                         "more at that width (default: column for pd, text for crops)")
    pl.add_argument("--allow-mixed", action="store_true", help="plot runs of different protocols anyway")


def cmd_plot(args) -> int:
    """`aesop-bench plot pd|crops RUN...`: a perception-distortion plot or a crop sheet."""
    for path in plot_figure(args, log=_stderr):
        print(f"wrote {path}")
    return 0


def plot_figure(args, log) -> list[Path]:
    """Draw the figure the options ask for; returns the files written. ``log`` takes the lines about runs
    skipped and points left out."""
    from ..paths import data_root
    from ..report.plots import crop_sheet, pd_plot
    from ..report.runs import check_comparable, load_runs

    runs = load_runs(args.runs, log=log)
    if args.figure == "pd":
        check_comparable(runs, [args.x, args.y], args.allow_mixed)
        return pd_plot(runs, args.set, args.x, args.y, args.out or f"reports/pd_{args.set}.png", args.title,
                       args.xlabel, args.ylabel, log=log, width=args.width or "column")
    return crop_sheet(runs, args.set, args.image, args.box or None, data_root(args.data_root),
                      args.out or f"reports/crops_{args.set}_{args.image}.png", width=args.width or "text")


def add_compare(sub) -> None:
    c = add_command(sub, "compare", "paired per-image comparison of two runs", cmd_compare)
    c.add_argument("run_a", help="the first run folder (A)")
    c.add_argument("run_b", help="the second run folder (B); differences are B - A")
    c.add_argument("--metric", default=None, help="a per-image metric of both runs (default: lpips, dists, psnr or "
                                                  "ssim, the first both have)")
    c.add_argument("--allow-mixed", action="store_true", help="compare runs of different protocols anyway")


def cmd_compare(args) -> int:
    """`aesop-bench compare A B`: paired per-image statistics of two runs."""
    from ..report.runs import load_runs
    from ..report.stats import compare_runs

    print(compare_runs(*load_runs([args.run_a, args.run_b]), args.metric, args.allow_mixed))
    return 0


def add_results(sub) -> None:
    rs = add_command(sub, "results", "a run's per-image values as CSV, JSON or Parquet", cmd_results)
    rs.add_argument("run", help="a folder written by aesop-bench eval")
    rs.add_argument("--format", choices=["csv", "json", "parquet"], default="csv")
    rs.add_argument("--out", default=None, help="write to this file (default: print; parquet needs it)")


def cmd_results(args) -> int:
    """`aesop-bench results`: a run folder's per-image values as CSV, JSON or parquet."""
    text = export_results(args.run, args.format, args.out)
    if text is None:
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def export_results(run: str, fmt: str, out: str | None) -> str | None:
    """The per-image values of ``run`` in ``fmt``: written to ``out`` (returns None), or returned as text."""
    import json

    from ..api import load_run

    frame = load_run(run)
    if fmt == "parquet":
        if not out:
            raise AesopBenchError("--format parquet writes a binary file: give --out FILE.parquet")
        try:
            frame.attrs = {}
            frame.to_parquet(out, index=False)
        except ImportError as exc:
            raise AesopBenchError(f"parquet needs pyarrow: pip install pyarrow ({exc})") from None
        return None
    if fmt == "csv":
        text = frame.to_csv(index=False)
    else:  # json.dumps writes each float's shortest exact form (pandas' to_json rounds to 10 digits)
        from ..evaluation.store import json_safe

        text = json.dumps(json_safe(frame.to_dict(orient="records")), indent=1, allow_nan=False) + "\n"
    if not out:
        return text
    from ..fileutil import atomic_write_text

    atomic_write_text(out, text)
    return None
