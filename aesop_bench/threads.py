"""How many CPU threads torch uses: ``--threads N``, else ``$AESOP_BENCH_THREADS``, else the cores that are
free now.

torch's default (one intra-op thread per core) collapses on a shared machine: every small operation waits
for its slowest thread, and a thread that shares its core with another process arrives a scheduler time slice
late (SSIM of one BSD100 image: 13-22 ms with one thread, 110-420 ms with two while another process keeps one
of the two cores busy). The default here is the number of cores this process may use minus those the load
average says are busy, at least one: all cores on an idle machine, one on a loaded CI runner.
"""

from __future__ import annotations

import math
import os

from .errors import AesopBenchError


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def free_cores() -> int:
    """The cores not kept busy by other processes, from the 1-minute load average (at least 1)."""
    cores = available_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return cores
    return max(1, min(cores, cores - math.floor(load + 0.5)))


def choose(explicit: int | None = None) -> int:
    """The thread count: ``explicit``, else ``$AESOP_BENCH_THREADS``, else :func:`free_cores`."""
    if explicit is None and os.environ.get("AESOP_BENCH_THREADS"):
        raw = os.environ["AESOP_BENCH_THREADS"]
        try:
            explicit = int(raw)
        except ValueError:
            raise AesopBenchError(f"AESOP_BENCH_THREADS={raw!r}: give a whole number of threads, e.g. 1") from None
    if explicit is not None and explicit < 1:
        raise AesopBenchError(f"--threads {explicit}: give 1 or more")
    return explicit if explicit is not None else free_cores()


def apply(explicit: int | None = None) -> int:
    """Set torch's intra-op thread count (see :func:`choose`) and return it."""
    import torch

    n = choose(explicit)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
