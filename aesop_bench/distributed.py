"""Process groups under ``torchrun``: the rank and world size, one group per process, barriers.

Evaluation needs barriers only (gloo, whatever the device); training on GPUs uses NCCL. Without
``WORLD_SIZE`` > 1 everything here is a no-op.
"""

from __future__ import annotations

import contextlib
import os


def ranks() -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` from the environment torchrun sets."""
    return _env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)


def _env_int(var: str, default: int) -> int:
    """A whole number torchrun sets, refused by name where it is something else."""
    raw = os.environ.get(var)
    if raw is None:
        return default
    try:
        value = int(raw)
        if value < 0:
            raise ValueError
    except ValueError:
        from .errors import AesopBenchError

        raise AesopBenchError(f"${var}={raw!r}: torchrun sets it to a whole number; unset it outside torchrun") \
            from None
    return value


TIMEOUT_ENV = "AESOP_BENCH_DIST_TIMEOUT"  # minutes a rank waits for the others at a collective (default 60)


def timeout():
    """How long a rank waits at a collective: ``$AESOP_BENCH_DIST_TIMEOUT`` minutes, default 60 (gloo's default of
    30 is shorter than a validation pass or a set's download on rank 0)."""
    from datetime import timedelta

    from .errors import AesopBenchError

    raw = os.environ.get(TIMEOUT_ENV, "60")
    try:
        minutes = float(raw)
        if not 0 < minutes < 1e9:
            raise ValueError
        return timedelta(minutes=minutes)
    except (ValueError, OverflowError):
        raise AesopBenchError(f"${TIMEOUT_ENV}={raw!r}: give the minutes a rank may wait, a positive number below "
                              "1e9") from None


def init(device: str = "cpu") -> tuple[int, int, int]:
    """Join the process group once (NCCL for CUDA training, gloo otherwise) and return :func:`ranks`. On CUDA each
    process's current device is its ``LOCAL_RANK`` (so NCCL's barrier and ``cuda`` tensors go to its own GPU),
    and the group is bound to it."""
    rank, world, local = ranks()
    if world > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            cuda = str(device).startswith("cuda")
            if cuda:
                torch.cuda.set_device(local)
            kw = {"device_id": torch.device("cuda", local)} if cuda else {}
            dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout(), **kw)
            import atexit

            # a process that ends with its group alive can abort in the interpreter's teardown ("terminate called
            # without an active exception": gloo's threads outlive Python); an error exit closes it here too
            atexit.register(_destroy)
    return rank, world, local


def _destroy() -> None:
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()  # see finish
        dist.destroy_process_group()


def finish() -> None:
    """End a command's process group, if it joined one: every rank waits for the others (none closes its
    connections while a peer still talks to it), then the group is destroyed.

    ``destroy_process_group`` only drops the registry's reference: a DDP wrapper still alive keeps the gloo
    backend and its threads until the interpreter's teardown, where they abort the process ("terminate called
    without an active exception"). A finished command's objects (a trainer and its logger refer to each other)
    are unreachable but not yet freed, so they are collected first."""
    import sys

    if "torch.distributed" not in sys.modules:
        return
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def barrier(world: int) -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def together(world: int):
    """Run a block on every rank, then wait for all of them; an error on any rank is raised on every rank.

    A rank that fails alone (rank 0 finding a set missing, or the run folder locked) would otherwise leave the
    others waiting at the next collective until the peer's connection closes under them (a raw gloo error on each).
    Here the ranks exchange their outcome: the failed rank raises its own error, the others an
    :class:`~aesop_bench.errors.AesopBenchError` naming that rank and its message. In one process the block just
    runs.
    """
    if world <= 1:
        yield
        return
    import torch.distributed as dist

    from .errors import AesopBenchError

    error = None
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - every failure is told to the other ranks, then raised again
        error = exc
    outcome = [None] * world
    mine = None if error is None else f"{type(error).__name__}: {error}" if not isinstance(error, AesopBenchError) \
        else str(error)
    dist.all_gather_object(outcome, mine)
    if error is not None:
        raise error
    failed = [(r, msg) for r, msg in enumerate(outcome) if msg is not None]
    if failed:
        rank, msg = failed[0]
        raise AesopBenchError(f"rank {rank} stopped: {msg}")


def check_device_name(device) -> None:
    """Refuse a device other than ``cpu``, ``cuda`` or ``cuda:N`` (the devices aesop-bench computes on)."""
    import re

    from .errors import AesopBenchError

    if not re.fullmatch(r"cpu|cuda(:\d+)?", str(device)):
        raise AesopBenchError(f"--device {device!r}: use cpu, cuda or cuda:N (other backends such as mps are not "
                              "supported: their kernels are not checked against the reference numbers)")
