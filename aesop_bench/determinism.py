"""Float32 that means float32: TF32 and autotuned cuDNN kernels off, inside a context that restores the caller's
settings on exit (a training script that evaluates keeps its own choices afterwards)."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def deterministic():
    """Run the body with TF32 off and deterministic, non-benchmarked cuDNN; restore the previous flags after.

    >>> import torch
    >>> torch.backends.cudnn.benchmark = True
    >>> with deterministic():
    ...     torch.backends.cudnn.benchmark
    False
    >>> torch.backends.cudnn.benchmark
    True
    >>> torch.backends.cudnn.benchmark = False
    """
    import torch

    cuda, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (cuda.allow_tf32, cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic)
    cuda.allow_tf32 = cudnn.allow_tf32 = cudnn.benchmark = False
    cudnn.deterministic = True
    try:
        yield
    finally:
        cuda.allow_tf32, cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic = saved
