"""Paired per-image comparison of two runs: mean difference, bootstrap CI, Wilcoxon signed-rank test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AesopBenchError


@dataclass
class Paired:
    set: str
    metric: str
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float  # b - a
    ci_low: float
    ci_high: float
    p_value: float

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def paired(a: dict[str, float], b: dict[str, float], set_name: str = "", metric: str = "",
           n_boot: int = 10000, seed: int = 0) -> Paired:
    """Compare per-image values of two runs on the images both have (b minus a)."""
    from scipy.stats import wilcoxon

    common = sorted(set(a) & set(b))
    if len(common) < 2:
        raise AesopBenchError(f"{set_name} {metric}: fewer than two images in common between the runs")
    if len(common) != len(a) or len(common) != len(b):
        raise AesopBenchError(f"{set_name} {metric}: the runs cover different images "
                              f"({len(a)} vs {len(b)}, {len(common)} in common)")
    x = np.array([a[k] for k in common])
    y = np.array([b[k] for k in common])
    d = y - x
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    boot = d[idx].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    p = 1.0 if np.all(d == 0) else float(wilcoxon(x, y).pvalue)
    return Paired(set_name, metric, len(d), float(x.mean()), float(y.mean()), float(d.mean()), float(lo), float(hi), p)
