"""`aesop-bench verify CLAIMS`: a results page's claimed numbers against the paper's tables and a fresh evaluation."""

from __future__ import annotations

import shlex
import sys

from .common import add_command, check_device


def add_verify(sub) -> None:
    v = add_command(sub, "verify", "check numbers a results page claims against the paper and a fresh evaluation",
                    cmd_verify)
    v.add_argument("claims", help="aesop (the shipped claims of the AESOP paper's results page) or a claims CSV file")
    v.add_argument("--out", default="reports",
                   help="output folder: OUT/verify/NAME/claims.{md,csv,json} and the run folders OUT/verify/NAME/runs/")
    v.add_argument("--device", default="cpu", help="cpu or cuda")
    v.add_argument("--data-root", default=None, help="folder holding the sets (default $AESOP_BENCH_DATA)")
    v.add_argument("--dry-run", action="store_true",
                   help="say what would be fetched and computed, and what is known of each claim; do nothing")
    v.add_argument("--no-download", action="store_true",
                   help="fetch nothing: a claim whose weights or set are missing is not verifiable here")
    v.add_argument("--threads", type=int, default=None, help="CPU threads (see eval --threads)")
    v.add_argument("--paper-tables", default=None, metavar="CSV",
                   help="the paper's tables the claims map to (default: the packaged aesop_paper_tables.csv)")
    v.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_verify(args) -> int:
    """Judge every claim (evaluating what it needs) and print the table and the files written; a dry run prints
    the plan. Progress goes to standard error."""
    from ..report.claims import verify_claims

    check_device(args.device, present=not args.dry_run)
    result = verify_claims(args.claims, out=args.out, device=args.device, data_root=args.data_root,
                           download=not args.no_download, dry_run=args.dry_run, threads=args.threads,
                           progress=not args.quiet, paper_csv=args.paper_tables,
                           command=command_line(args),
                           log=lambda msg: print(msg, file=sys.stderr))
    print("\n".join(result["lines"]))
    return 0


def command_line(args) -> str:
    """The command as parsed, every option that was given a value spelled out (recorded with the results).

    >>> import argparse
    >>> command_line(argparse.Namespace(claims="aesop", out="reports", device="cpu", data_root=None, dry_run=False,
    ...                                 no_download=True, threads=None, paper_tables=None, quiet=False))
    'aesop-bench verify aesop --out reports --device cpu --no-download'
    """
    words = ["aesop-bench", "verify", args.claims]
    for name in ("out", "device", "data_root", "threads", "paper_tables"):
        value = getattr(args, name)
        if value is not None:
            words += [f"--{name.replace('_', '-')}", str(value)]
    words += [f"--{name.replace('_', '-')}" for name in ("dry_run", "no_download", "quiet") if getattr(args, name)]
    return shlex.join(words)
