"""`aesop-bench reproduce TABLE`: recompute a table of the paper, side by side with its numbers."""

from __future__ import annotations

from pathlib import Path

from .common import add_command, check_device


def add_reproduce(sub) -> None:
    rp = add_command(sub, "reproduce", "recompute a table of the paper, side by side with its numbers", cmd_reproduce)
    rp.add_argument("table", help="table1 to table9, all, or a recipe YAML file")
    rp.add_argument("--backbone", default=None, help="only the models of this backbone (rrdb, swinir or drct)")
    rp.add_argument("--device", default="cpu", help="cpu or cuda")
    rp.add_argument("--data-root", default=None, help="folder holding the sets (default $AESOP_BENCH_DATA)")
    rp.add_argument("--out", default=None, help="output folder (default reports/reproduce/TABLE[-BACKBONE])")
    rp.add_argument("--dry-run", action="store_true",
                    help="list what would be downloaded and computed, with sizes and a time estimate; do nothing")
    rp.add_argument("--no-download", action="store_true", help="stop instead of downloading missing files")
    rp.add_argument("--fetch-only", action="store_true",
                    help="download and verify every set and weight file of the table, compute nothing")
    rp.add_argument("--threads", type=int, default=None, help="CPU threads (see eval --threads)")
    rp.add_argument("--gpu", default=None, metavar="NAME",
                    help="the GPU the estimates are for, a device name or class (A100, H100, H200, L4, T4, ...; "
                         "default: the GPU measured last, else A100)")
    rp.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_reproduce(args) -> int:
    """`aesop-bench reproduce RECIPE`: fetch, evaluate and tabulate a paper table (``--dry-run``: plan); the
    recipes report as they go, and a dry run of several tables ends with their grand total."""
    from ..report.reproduce import grand_total

    plans = reproduce_tables(args, log=print)
    if args.dry_run and len(plans) > 1:
        print(grand_total(plans, args.device))
    return 0


def reproduce_tables(args, log) -> list[dict]:
    """Reproduce each recipe of ``args.table`` (each in OUT/RECIPE where there are several); returns their
    plans. ``log`` takes every line the recipes report."""
    from ..paths import data_root
    from ..report.reproduce import recipes_for, reproduce

    check_device(args.device, present=not args.dry_run)  # a dry run estimates a GPU's time on any machine
    recipes = recipes_for(args.table)
    plans = []
    for recipe in recipes:
        out = Path(args.out) / recipe.name if args.out and len(recipes) > 1 else (Path(args.out) if args.out else None)
        plans.append(reproduce(recipe, args.backbone, args.device, data_root(args.data_root), out, args.dry_run,
                               not args.no_download, args.threads, not args.quiet, log=log,
                               fetch_only=args.fetch_only, gpu_name=args.gpu)["plan"])
    return plans
