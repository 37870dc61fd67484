"""Process groups under ``torchrun``: the rank and world size, one group per process, barriers.

Evaluation needs barriers only (gloo, whatever the device); training on GPUs uses NCCL. Without
``WORLD_SIZE`` > 1 everything here is a no-op.
"""

from __future__ import annotations

import os


def ranks() -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` from the environment torchrun sets."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init(device: str = "cpu") -> tuple[int, int, int]:
    """Join the process group once (NCCL for CUDA training, gloo otherwise) and return :func:`ranks`."""
    rank, world, local = ranks()
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
    return rank, world, local


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def check_device_name(device) -> None:
    """Refuse a device other than ``cpu``, ``cuda`` or ``cuda:N`` (the devices aesop-bench computes on)."""
    import re

    from .errors import AesopBenchError

    if not re.fullmatch(r"cpu|cuda(:\d+)?", str(device)):
        raise AesopBenchError(f"--device {device!r}: use cpu, cuda or cuda:N (other backends such as mps are not "
                              "supported: their kernels are not checked against the reference numbers)")
