"""How many CPU threads the harness computes with: ``--threads N``, else ``$AESOP_BENCH_THREADS``, else
``$OMP_NUM_THREADS`` (which torchrun sets to 1 per process), else the cores that are free, looked at again as a
long run goes on.

Every thread pool a run computes with is set to that count together (:func:`set_pools`): torch's intra-op pool,
the BLAS libraries loaded in the process (NumPy's OpenBLAS, OpenCV's) and OpenMP runtimes through threadpoolctl,
and OpenCV's own pool where OpenCV is loaded. A pool left at its default (one thread per core) collapses on a
shared machine: every parallel operation waits for its slowest thread, and a thread that shares its core with
another process arrives a scheduler time slice late (SSIM of one BSD100 image: 13-22 ms with one thread, 110-420
ms with two while another process keeps one of the two cores busy; NumPy's QR of a 3000 x 2048 matrix at a load of
about 3 on 2 cores: 0.7 s on one OpenBLAS thread, 6.0 s on two).

The default is the number of cores this process may use minus those other processes keep busy, at least one. At
the start busy cores are measured over 0.1 s from ``/proc/stat`` while this process waits (so its own work does
not count), once a minute at most. During a run (:class:`Pools`) they are measured again every
:data:`REVISIT_S` seconds of work, between images and between sets, from ``/proc/stat`` over the whole interval
less this process's own CPU time (no waiting); so a neighbour that starts or stops mid-run changes the count
within seconds. Off Linux the load average stands in.

The count changes no metric value (every metric's sums are added in an order the count does not change, the
Frechet distance runs on one BLAS thread; the tests compare 1, 2 and 3 threads bit for bit). A network whose
outputs are not known to be independent of it (:data:`aesop_bench.models.identity.THREAD_INVARIANT`) keeps the
count it started the run with (:func:`holding`), so a run that revisits the count stores what one that does not
stores.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from typing import Callable

from .errors import AesopBenchError

REVISIT_S = 10.0  # seconds of work between two looks at the machine during a run
MIN_WINDOW_S = 1.0  # a look over a shorter interval says nothing yet (the kernel counts in 10 ms ticks)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _stat_busy_seconds() -> float | None:
    """Seconds of CPU time spent, on all cores together, since boot (``/proc/stat``; None off Linux)."""
    try:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # guest time is inside user time
    except (OSError, ValueError, IndexError):
        return None


def _busy_elsewhere(interval: float = 0.1) -> float | None:
    """Cores busy over ``interval`` seconds machine-wide, while this process sleeps (None off Linux)."""
    t1 = _stat_busy_seconds()
    w1 = time.monotonic()
    time.sleep(interval)
    t2 = _stat_busy_seconds()
    if t1 is None or t2 is None:
        return None
    return max(0.0, (t2 - t1) / max(time.monotonic() - w1, 1e-9))


def _free_given(busy: float) -> int:
    """The cores left to this process when ``busy`` cores are kept busy by others (at least 1)."""
    cores = available_cores()
    return max(1, min(cores, (os.cpu_count() or cores) - math.floor(busy + 0.5)))


def _load_average() -> float:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


_FREE: tuple[float, int] | None = None  # (when, free cores): measured once a minute at most


def free_cores() -> int:
    """The cores this process may use that other processes do not keep busy (at least 1)."""
    global _FREE
    if _FREE is not None and time.monotonic() - _FREE[0] < 60:
        return _FREE[1]
    busy = _busy_elsewhere()
    free = _free_given(_load_average() if busy is None else busy)
    _FREE = (time.monotonic(), free)
    return free


def fixed_count(explicit: int | None = None) -> int | None:
    """The thread count the user fixed: ``explicit``, else ``$AESOP_BENCH_THREADS``, else ``$OMP_NUM_THREADS``;
    None where nothing fixes it (the count then follows the machine's load)."""
    for var in ("AESOP_BENCH_THREADS", "OMP_NUM_THREADS"):
        if explicit is None and os.environ.get(var):
            raw = os.environ[var]
            try:
                explicit = int(raw)
            except ValueError:
                raise AesopBenchError(f"{var}={raw!r}: give a whole number of threads, e.g. 1") from None
    if explicit is not None and explicit < 1:
        raise AesopBenchError(f"--threads {explicit}: give 1 or more")
    return explicit


def choose(explicit: int | None = None) -> int:
    """The thread count: ``explicit``, else ``$AESOP_BENCH_THREADS``, else ``$OMP_NUM_THREADS``, else
    :func:`free_cores`."""
    n = fixed_count(explicit)
    return n if n is not None else free_cores()


def set_pools(n: int) -> None:
    """Set every thread pool of the process to ``n`` threads: torch's intra-op pool, each loaded BLAS library
    and OpenMP runtime (threadpoolctl), and OpenCV's pool where OpenCV is loaded (a library loaded later is set
    at the next call)."""
    import torch
    from threadpoolctl import threadpool_limits

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")
    threadpool_limits(limits=n, user_api="openmp")
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and hasattr(cv2, "setNumThreads"):
        cv2.setNumThreads(n)


def _loaded_pools() -> tuple:
    """Which pools the process has now: the libraries threadpoolctl finds, and whether OpenCV is loaded."""
    from threadpoolctl import ThreadpoolController

    return tuple(lib.filepath for lib in ThreadpoolController().lib_controllers), "cv2" in sys.modules


def pool_sizes() -> dict[str, int]:
    """Each thread pool of the process and its size: ``torch``, ``blas:PREFIX`` and ``openmp:PREFIX`` per loaded
    library (threadpoolctl's prefix; the smallest where several share one), ``opencv`` where OpenCV is loaded."""
    import torch
    from threadpoolctl import ThreadpoolController

    sizes = {"torch": torch.get_num_threads()}
    for lib in ThreadpoolController().lib_controllers:
        key = f"{lib.user_api}:{lib.prefix}"
        sizes[key] = min(sizes.get(key, lib.num_threads), lib.num_threads)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and hasattr(cv2, "getNumThreads"):
        sizes["opencv"] = cv2.getNumThreads()
    return sizes


def apply(explicit: int | None = None) -> int:
    """Set every thread pool (:func:`set_pools`) to :func:`choose`'s count, once, and return it."""
    n = choose(explicit)
    set_pools(n)
    return n


@contextlib.contextmanager
def holding(n: int | None):
    """torch's intra-op pool at ``n`` threads inside the block (None: as it is), as it was after: a network whose
    outputs depend on the count runs at the count it started the run with."""
    import torch

    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sample() -> tuple[float, float | None, float]:
    """(now, machine-wide busy CPU seconds since boot or None off Linux, this process's CPU seconds)."""
    return time.monotonic(), _stat_busy_seconds(), time.process_time()


class LoadMeter:
    """Cores other processes kept busy since the last reading: the machine's busy CPU time over the interval less
    this process's own (its threads' work, spinning included), per second; off Linux, the load average less this
    process's share. ``sample`` gives ``(now, machine busy seconds or None, own CPU seconds)``."""

    def __init__(self, sample: Callable[[], tuple[float, float | None, float]] | None = None):
        self.sample = sample or _sample
        self.last = self.sample()

    def busy_elsewhere(self) -> float | None:
        """Cores busy elsewhere since the last reading; None where the interval is still under
        :data:`MIN_WINDOW_S` (the reading is kept for the next call)."""
        now = self.sample()
        wall = now[0] - self.last[0]
        if wall < MIN_WINDOW_S:
            return None
        own = (now[2] - self.last[2]) / wall
        if now[1] is None or self.last[1] is None:
            busy = _load_average() - own
        else:
            busy = (now[1] - self.last[1]) / wall - own
        self.last = now
        return max(0.0, busy)


class Pools:
    """The thread pools of one run: set together at :meth:`start`, looked at again every ``every`` seconds
    (default :data:`REVISIT_S`) at the run's :meth:`revisit` points (between images and sets) unless the count is
    fixed (``explicit``, the environment), and set back as they were at :meth:`close`.

    >>> pools = Pools(2)
    >>> pools.start(), pools.revisit()   # a fixed count is never revisited
    (2, 2)
    >>> pools.close()
    """

    def __init__(self, explicit: int | None = None, every: float | None = None, meter: LoadMeter | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.fixed = fixed_count(explicit)  # a bad value is refused before any work
        self.every, self.clock = REVISIT_S if every is None else every, clock
        self._meter = meter
        self.n: int | None = None
        self._libs: tuple = ()
        self._saved: tuple[int, dict[str, int], int | None] | None = None
        self._looked = 0.0

    def start(self) -> int:
        """Remember the pools' sizes, set them all to the run's count and return it."""
        import torch
        from threadpoolctl import ThreadpoolController

        cv2 = sys.modules.get("cv2")
        self._saved = (torch.get_num_threads(),
                       {lib.filepath: lib.num_threads for lib in ThreadpoolController().lib_controllers},
                       cv2.getNumThreads() if cv2 is not None and hasattr(cv2, "getNumThreads") else None)
        self.n = self.fixed if self.fixed is not None else free_cores()
        set_pools(self.n)
        self._libs = _loaded_pools()
        if self.fixed is None and self._meter is None:
            self._meter = LoadMeter()
        self._looked = self.clock()
        return self.n

    def revisit(self) -> int:
        """The run's count now: measured again (and every pool set to it) once ``every`` seconds have passed since
        the last look. A library loaded since the last call (OpenCV and its OpenBLAS, which IQA-PyTorch brings
        when its metrics are built) gets the count at once."""
        if self.n is None:
            return self.start()
        if self.fixed is None and self.clock() - self._looked >= self.every:
            busy = self._meter.busy_elsewhere()
            if busy is not None:
                self._looked = self.clock()
                n, self.n = self.n, _free_given(busy)
                if n != self.n:
                    set_pools(self.n)
                    self._libs = _loaded_pools()
        libs = _loaded_pools()
        if libs != self._libs:
            set_pools(self.n)
            self._libs = libs
        return self.n

    def close(self) -> None:
        """Set the pools back to the sizes they had at :meth:`start` (a library loaded since keeps the run's)."""
        if self._saved is None:
            return
        import torch
        from threadpoolctl import ThreadpoolController

        n_torch, libs, n_cv2 = self._saved
        self._saved = None
        if torch.get_num_threads() != n_torch:
            torch.set_num_threads(n_torch)
        for lib in ThreadpoolController().lib_controllers:
            if lib.filepath in libs:
                lib.set_num_threads(libs[lib.filepath])
        cv2 = sys.modules.get("cv2")
        if n_cv2 is not None and cv2 is not None:
            cv2.setNumThreads(n_cv2)
