"""Paired per-image comparison of two runs: mean difference, bootstrap CI, Wilcoxon signed-rank test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AesopBenchError


ALPHA = 0.05  # the level a difference is called significant at


def min_images(alpha: float = ALPHA) -> int:
    """The fewest paired images with which the two-sided Wilcoxon signed-rank test can reach ``p < alpha``: its
    smallest exact p, all differences of one sign, is ``2 / 2**n`` (0.0625 for 5 images, 0.03125 for 6).

    >>> min_images(0.05), min_images(0.01)
    (6, 8)
    """
    n = 1
    while 2.0 ** (1 - n) >= alpha:
        n += 1
    return n


@dataclass
class Paired:
    """Two runs compared image by image on one set and metric: the means, the mean difference (b - a) with its
    confidence interval, and a p-value."""

    set: str
    metric: str
    n: int
    mean_a: float
    mean_b: float
    mean_diff: float  # b - a
    ci_low: float
    ci_high: float
    p_value: float

    def significant(self, alpha: float = ALPHA) -> bool:
        """Whether the difference is significant at ``alpha``."""
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


def compare_runs(a, b, metric: str | None = None, allow_mixed: bool = False) -> str:
    """A paired per-image comparison of two runs (``report.runs.Run``) as a Markdown table: per shared set, the
    means, B - A with its bootstrap 95% CI and the Wilcoxon signed-rank p. ``metric`` defaults to the first of
    lpips, dists, psnr, ssim that both runs have per image."""
    from .runs import check_comparable

    def per_image(r):
        return {m for (_, m) in r.per_image}

    common = [m for m in per_image(a) if m in per_image(b)]
    metric = metric or next((m for m in ("lpips", "dists", "psnr", "ssim") if m in common), None) or \
        (sorted(common)[0] if common else None)
    if metric is None or metric not in common:
        raise AesopBenchError(f"compare --metric {metric}: needs per-image values of one metric in both runs; "
                              f"{a.label} has {sorted(per_image(a)) or 'none'}, {b.label} has "
                              f"{sorted(per_image(b)) or 'none'}")
    check_comparable([a, b], [metric], allow_mixed)
    sets = [s for s in a.sets if s in b.sets]
    if not sets:
        raise AesopBenchError("the two runs share no set")
    lines = [f"{metric}: {b.label} minus {a.label}; mean difference, bootstrap 95% CI, Wilcoxon signed-rank p",
             "| set | images | mean A | mean B | B - A | 95% CI | p |", "|---|---:|---:|---:|---:|---|---:|"]
    incomplete = []
    for s in sets:
        r = paired(a.images(s, metric), b.images(s, metric), s, metric)
        partial = [run.label for run in (a, b) if run.partial(s, metric) is not None]
        n = f"{r.n}*" if partial else str(r.n)
        if partial:
            incomplete.append(f"*{s}: incomplete in {', '.join(partial)} (the images both have; not the set's "
                              "value)")
        lines.append(f"| {s.replace('|', chr(92) + '|')} | {n} | {r.mean_a:.4f} | {r.mean_b:.4f} | "
                     f"{r.mean_diff:+.4f} | [{r.ci_low:+.4f}, {r.ci_high:+.4f}] | {r.p_value:.3g} |")
        if r.n < min_images():
            incomplete.append(f"{s}: with {r.n} images no p can be below {ALPHA:g} (the smallest two-sided p of the "
                              f"Wilcoxon signed-rank test is {2.0 ** (1 - r.n):.4g}; {min_images()} images or more "
                              "are needed)")
    return "\n".join(lines + incomplete)
