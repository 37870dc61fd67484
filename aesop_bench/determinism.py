"""Values that do not depend on how they were computed.

* Float32 that means float32: TF32 and autotuned cuDNN kernels off, inside a context that restores the caller's
  settings on exit (a training script that evaluates keeps its own choices afterwards).
* Means that do not depend on the CPU thread count. torch splits a CPU reduction to one value (the mean of one
  image's map) among its intra-op threads and adds their partial sums, so the last bit changes with the thread
  count, which the harness takes from the cores other processes leave free (``aesop_bench.threads``): a run
  resumed on a busier machine would store values 1 ulp away from an uninterrupted one. :func:`fixed_mean` adds
  the values in an order set by the shape alone.
"""

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


def fixed_mean(x, start_dim: int = 1):
    """The mean of ``x`` over its dimensions from ``start_dim`` on, one value per index before it, in ``x``'s
    dtype, with the same last bit whatever the number of threads.

    On the CPU the values are added in float64 by numpy, which reduces on one thread, pairwise in an order set
    by the row length alone (torch splits a reduction to one value among its threads). On a GPU the thread
    count plays no part, and torch's reduction is used as it is.

    >>> import torch
    >>> fixed_mean(torch.arange(6.0).reshape(2, 3)).tolist()
    [1.0, 4.0]
    """
    import numpy as np
    import torch

    if x.device.type != "cpu":
        return x.flatten(start_dim).mean(dim=-1)
    rows = x.detach().flatten(start_dim).to(torch.float64).contiguous().numpy()
    sums = np.add.reduce(rows, axis=-1)
    return torch.from_numpy(sums / rows.shape[-1]).to(x.dtype)
