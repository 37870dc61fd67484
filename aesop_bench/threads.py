"""How many CPU threads torch uses: ``--threads N``, else ``$AESOP_BENCH_THREADS``, else ``$OMP_NUM_THREADS``
(which torchrun sets to 1 per process), else the cores that are free now.

torch's default (one intra-op thread per core) collapses on a shared machine: every small operation waits
for its slowest thread, and a thread that shares its core with another process arrives a scheduler time slice
late (SSIM of one BSD100 image: 13-22 ms with one thread, 110-420 ms with two while another process keeps one
of the two cores busy). The default here is the number of cores this process may use minus those other
processes keep busy, at least one: all cores on an idle machine, one on a runner whose other core is taken.
Busy cores are measured over 0.1 s from ``/proc/stat`` while this process waits (so its own work does not
count), once a minute at most; elsewhere the load average stands in.

The count changes no metric value (every metric's sums are added in an order the count does not change; the
tests compare 1, 2 and 3 threads bit for bit), so a run resumed on a busier machine stores what an uninterrupted
one stores.
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


def _busy_elsewhere(interval: float = 0.1) -> float | None:
    """Cores busy over ``interval`` seconds machine-wide, while this process sleeps (None off Linux)."""
    import time

    def sample():
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        return sum(vals), vals[3] + (vals[4] if len(vals) > 4 else 0)  # all, idle + iowait

    try:
        t1, i1 = sample()
        time.sleep(interval)
        t2, i2 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = t2 - t1
    return 0.0 if total <= 0 else (total - (i2 - i1)) / total * (os.cpu_count() or 1)


_FREE: tuple[float, int] | None = None  # (when, free cores): measured once a minute at most


def free_cores() -> int:
    """The cores this process may use that other processes do not keep busy (at least 1)."""
    import time

    global _FREE
    if _FREE is not None and time.monotonic() - _FREE[0] < 60:
        return _FREE[1]
    cores = available_cores()
    busy = _busy_elsewhere()
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except (AttributeError, OSError):
            busy = 0.0
    free = max(1, min(cores, (os.cpu_count() or cores) - math.floor(busy + 0.5)))
    _FREE = (time.monotonic(), free)
    return free


def choose(explicit: int | None = None) -> int:
    """The thread count: ``explicit``, else ``$AESOP_BENCH_THREADS``, else ``$OMP_NUM_THREADS``, else
    :func:`free_cores`."""
    for var in ("AESOP_BENCH_THREADS", "OMP_NUM_THREADS"):
        if explicit is None and os.environ.get(var):
            raw = os.environ[var]
            try:
                explicit = int(raw)
            except ValueError:
                raise AesopBenchError(f"{var}={raw!r}: give a whole number of threads, e.g. 1") from None
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
