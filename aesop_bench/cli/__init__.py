"""The ``aesop-bench`` command line.

One module per group of commands (``evaluate``: eval; ``datasets``: data; ``training``: train; ``reports``:
report, plot, compare, results; ``reproduce``; ``inventory``: metrics, models, cache, weights), each holding its
commands' arguments beside their handlers. A handler is given the parsed arguments, calls functions of its module
or of the package that return what to show (lines, tables, files written) and print nothing, and prints it. Heavy
imports (torch) happen inside the functions, so that ``--help`` and a re-run whose results are all stored start
fast. This module builds the parser from the commands' own parsers and turns errors into messages and exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import AesopBenchError
from ..paths import installed_version
from .alignment import add_iqa_alignment
from .datasets import add_data
from .evaluate import add_eval
from .inventory import add_cache, add_metrics, add_models, add_weights
from .reports import add_compare, add_plot, add_report, add_results
from .reproduce import add_reproduce
from .training import add_train
from .verify import add_verify

# each command's parser, in the order `aesop-bench --help` lists them
COMMANDS = (add_eval, add_data, add_train, add_report, add_reproduce, add_verify, add_iqa_alignment, add_plot,
            add_compare, add_metrics, add_results, add_models, add_cache, add_weights)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aesop-bench", description="Perceptual SR benchmark and AESOP reproduction.")
    p.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments; an option a command does not know is refused by that command's parser, with its usage and
    the nearest options it has (argparse would print the top-level usage alone)."""
    import difflib

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        command = sub.choices[args.command]
        known = [o for a in command._actions for o in a.option_strings]
        hints = [m for x in extra if x.startswith("-") for m in difflib.get_close_matches(x.split("=")[0], known, 1)]
        command.error(f"unrecognized arguments: {' '.join(extra)}" +
                      (f"; did you mean {', '.join(hints)}?" if hints else ""))
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        code = args.func(args)
        from ..distributed import finish

        finish()  # under torchrun: the ranks end together
        return code
    except AesopBenchError as exc:
        print(f"aesop-bench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (`aesop-bench models list | head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's final flush of stdout would raise again
        return 0
    except OSError as exc:
        import errno

        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            print(f"aesop-bench: error: cannot write {exc.filename or 'a file'}: {exc.strerror}. Choose a folder you "
                  "can write: --out for results, $AESOP_BENCH_HOME for caches and weights (now "
                  f"{os.environ.get('AESOP_BENCH_HOME', 'unset: ~/.cache/aesop-bench')})", file=sys.stderr)
            return 2
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"aesop-bench: error: no space left on the device{where}. Everything stored before is kept; free "
              "some space (`aesop-bench cache` shows what the caches hold, `aesop-bench cache clear all` deletes "
              "them), or choose another --out / $AESOP_BENCH_HOME, and run the same command again: it resumes",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aesop-bench: interrupted; stored results are kept, run the same command to resume", file=sys.stderr)
        return 130
