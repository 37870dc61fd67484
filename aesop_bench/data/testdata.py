"""``aesop-bench data fetch-test-data DIR``: the tests' shared data folder, built from its public sources.

The tests read real files from ``$AESOP_BENCH_SHARED`` (``benchmarks/``, ``train/``, ``weights/niqe/``,
``results/``). Each of them is a byte copy of a file in a public repository, so the folder can be rebuilt
anywhere: every file is fetched from raw.githubusercontent.com at a pinned commit (``$AESOP_BENCH_GITHUB_RAW``
for a mirror) and verified against its sha256. The benchmark images are the sets' rows of ``fingerprints.csv``;
the other files are listed in ``test_data.csv`` (columns ``file, bytes, sha256, repo, commit, path_in_repo``).

Not fetched, having no public file source: ``reference/`` (published numbers and the paper's tables, transcribed
by hand) and the paper's text (``../docs/seeds`` beside the folder); the few tests that read them skip.
"""

from __future__ import annotations

import csv
import os
import shlex
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath

from ..download import fetch, github_raw_url
from ..errors import AesopBenchError
from ..fileutil import sha256_file
from .sets import SETS, fingerprints

BENCHMARK_SETS = ("set5", "set14", "bsd100")  # benchmarks/: the sets' pinned files, as fingerprints.csv lists them
# transcribed by hand: no public file to fetch them from (the paper's text lies beside the folder, in ../docs/seeds)
NOT_PUBLIC = ("reference/published_x4.csv", "reference/aesop_paper_tables.csv",
              "reference/fingerprints_urban100_manga109.csv", "../docs/seeds (the paper's text)")


@dataclass
class FetchReport:
    """The files of the folder ``dest`` that a run fetched, and those it found there already verified."""

    dest: Path
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def tree_rows() -> tuple[dict, ...]:
    """Every file of the test-data folder that has a public source: ``file`` (its path in the folder), ``bytes``,
    ``sha256``, ``repo``, ``commit``, ``path_in_repo``."""
    rows = [{k: v for k, v in r.items() if k != "set"} | {"file": f"benchmarks/{SETS[s].folder}/{r['file']}"}
            for s in BENCHMARK_SETS for r in fingerprints(s)]
    text = resources.files("aesop_bench.data").joinpath("test_data.csv").read_text()
    rows += csv.DictReader(text.splitlines())
    for r in rows:  # shipped data, but a path must stay inside the folder it is fetched into
        p = PurePosixPath(r["file"])
        if p.is_absolute() or ".." in p.parts:
            raise AesopBenchError(f"test_data.csv: {r['file']!r} is not a path inside the test-data folder")
    return tuple(rows)


def fetch_test_data(dest: str | os.PathLike, log=print, select=None) -> FetchReport:
    """Fetch the test data into ``dest`` (``select(row)``: only the rows it accepts); files already there and
    verified are kept, so a second run fetches only what is missing."""
    dest, say = Path(dest), log or (lambda _: None)
    rows = [r for r in tree_rows() if select is None or select(r)]
    report = FetchReport(dest)
    todo = []
    for r in rows:
        target = dest / r["file"]
        if target.is_file() and sha256_file(target) == r["sha256"]:
            report.present.append(r["file"])
        else:
            todo.append(r)
    size = sum(int(r["bytes"]) for r in todo)
    say(f"{dest}: {len(report.present)}/{len(rows)} files present and verified; fetching {len(todo)} "
        f"({size / 1e6:.1f} MB)")
    per_folder = Counter(r["file"].rsplit("/", 1)[0] for r in todo)
    for r in todo:
        folder = r["file"].rsplit("/", 1)[0]
        if folder in per_folder:  # its first file: say what comes
            n = per_folder.pop(folder)
            say(f"fetching {folder}/ ({n} file{'s' * (n != 1)})")
        url = github_raw_url(r["repo"], r["commit"], r["path_in_repo"])
        try:
            fetch(url, dest / r["file"], r["sha256"])
        except AesopBenchError as exc:
            raise AesopBenchError(
                f"{r['file']}: {exc} Files fetched so far are kept: run the command again to fetch the rest. The "
                "tests can also read a copy of the folder given with $AESOP_BENCH_SHARED.") from None
        report.fetched.append(r["file"])
    say(summary(report))
    return report


def summary(report: FetchReport) -> str:
    """What was fetched, what the folder lacks and the line that runs the tests on it."""
    dest = shlex.quote(str(report.dest.resolve()))
    data = f" AESOP_BENCH_DATA={dest}/benchmarks" if os.environ.get("AESOP_BENCH_DATA") else ""
    return (f"{len(report.fetched)} files fetched, {len(report.present)} already present, in {report.dest}.\n"
            f"Not there (no public file source; the tests that read them skip): {', '.join(NOT_PUBLIC)}.\n"
            f"Run the tests on it: AESOP_BENCH_SHARED={dest}{data} python -m pytest")
