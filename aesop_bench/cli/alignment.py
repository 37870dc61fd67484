"""`aesop-bench iqa-alignment`: how well no-reference IQA metrics agree with people (pairwise preferences, MOS)."""

from __future__ import annotations

import shlex
import sys

from .common import add_command, check_device


def add_iqa_alignment(sub) -> None:
    a = add_command(sub, "iqa-alignment", "agreement of no-reference metrics with human preferences and MOS",
                    cmd_alignment)
    a.add_argument("--pairs", action="append", default=[], metavar="hggt:PATH|sbs:FILE",
                   help="preference pairs (repeatable): HGGT's Test/ or Train/ folder, a folder with images/ and "
                        "labels/, or one label JSON; or an SBS CSV image_a,image_b,votes_a,votes_b")
    a.add_argument("--mos", action="append", default=[], metavar="FILE.csv|pipal:DIR",
                   help="mean opinion scores (repeatable): a CSV with image and mos columns, or PIPAL's folder")
    a.add_argument("--metrics", default="nr",
                   help="no-reference metrics, comma-separated; nr: every no-reference metric of the registry")
    a.add_argument("--out", required=True, help="output folder: tables, matrices, heatmaps, scores, alignment.json")
    a.add_argument("--bootstrap", type=int, default=1000, metavar="B",
                   help="bootstrap resamples of the pairs for the confidence interval (0: none)")
    a.add_argument("--level", type=float, default=0.95, help="confidence level of the interval")
    a.add_argument("--seed", type=int, default=0, help="seed of the bootstrap's numpy Generator (default 0)")
    a.add_argument("--ties", choices=("half", "wrong"), default="half",
                   help="a tie in metric scores counts as half correct, or as wrong")
    a.add_argument("--device", default="cpu", help="cpu or cuda")
    a.add_argument("--protocol", default="paper", help="the protocol the metrics run under (NIQE's crop)")
    a.add_argument("--no-download", action="store_true", help="fetch no weights: a missing one is an error")
    a.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_alignment(args) -> int:
    from ..report.alignment import run_alignment

    check_device(args.device)
    result = run_alignment(args.pairs, args.mos, args.metrics, args.out, n_boot=args.bootstrap, level=args.level,
                           seed=args.seed, ties=args.ties, device=args.device, protocol=args.protocol,
                           download=not args.no_download, progress=not args.quiet,
                           log=lambda msg: print(msg, file=sys.stderr), command=command_line(args))
    print("\n".join(result["lines"]))
    return 0


def command_line(args) -> str:
    """The command as parsed, every option spelled out (recorded in alignment.json).

    >>> import argparse
    >>> command_line(argparse.Namespace(pairs=["sbs:p.csv"], mos=[], metrics="niqe", out="o", bootstrap=1000,
    ...                                 level=0.95, seed=0, ties="half", device="cpu", protocol="paper",
    ...                                 no_download=False, quiet=True)).split(" --")[:5]
    ['aesop-bench iqa-alignment', 'pairs sbs:p.csv', 'metrics niqe', 'out o', 'bootstrap 1000']
    """
    words = ["aesop-bench", "iqa-alignment"]
    for p in args.pairs:
        words += ["--pairs", p]
    for m in args.mos:
        words += ["--mos", m]
    for name in ("metrics", "out", "bootstrap", "level", "seed", "ties", "device", "protocol"):
        words += [f"--{name}", str(getattr(args, name))]
    words += [f"--{name.replace('_', '-')}" for name in ("no_download", "quiet") if getattr(args, name)]
    return shlex.join(words)
