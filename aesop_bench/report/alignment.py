"""How well no-reference IQA metrics agree with people (Zhang et al., CVPR 2025, on SBS180K, HGGT and MOS sets):
pairwise accuracy with bootstrap confidence intervals, MOS correlations, and complementarity between metrics.

* **Pairwise accuracy.** A metric is right on a pair when it scores the side people preferred better, in the
  metric's own direction (the registry's ``lower_better``: NIQE's lower score is the better one). A **tie** (equal
  scores) counts as **half** right by default (``ties="half"``), or as wrong (``ties="wrong"``); the rule is written
  in every output. Accuracy = (right + ties/2) / pairs under ``half``.
* **Confidence interval.** Percentile bootstrap: ``B`` resamples of the pairs with replacement, drawn by
  ``numpy.random.default_rng(seed)``; the interval is the ``(1 - level)/2`` and ``(1 + level)/2`` percentiles
  (``numpy.percentile``, linear) of the resampled accuracies. Every metric of a dataset is resampled with the same
  draws (one seed), so their intervals are paired.
* **Correlation with MOS.** SRCC (``scipy.stats.spearmanr``), KRCC (``kendalltau``) of the raw scores, and PLCC
  (``pearsonr``) of the scores mapped by the 4-parameter logistic fitted to the MOS: exactly IQA-PyTorch 0.1.16's
  ``pyiqa/metrics/correlation_coefficient.py`` (``fit_curve``: ``scipy.optimize.curve_fit`` of
  ``(b1 - b2) / (1 + exp(-(x - b3) / b4)) + b2`` from ``p0 = [max(mos), min(mos), mean(x), std(x) / 4]``, its
  other arguments left at their defaults). As there, scores are not negated: a lower-better metric that agrees
  with people has a negative SRCC and KRCC. A fit that does not converge gives no PLCC (``nan``, said in ``note``).
* **Complementarity.** ``M[x][y]`` = the accuracy of metric ``y`` (tie rule as above) on the pairs metric ``x``
  gets wrong (outcome 0; under ``half`` a tie of ``x`` is not "wrong"), with that pair count; ``M[x][x]`` is 0.

Scores are computed per image file by the registry's metric objects (:class:`~aesop_bench.metrics.metric.Metric`,
what ``aesop-bench eval`` computes with) and kept in the ``features`` cache under the metric's version and the
machine's :func:`~aesop_bench.cache.device_tag`, keyed by the file's sha256: adding a metric computes that metric
alone, and an image file is read again only when its bytes change. Any score function can take part through a
:class:`Scorer` (the hook tests and callers use).
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import numpy as np

from ..cache import safe_name
from ..errors import ConfigError, InputError

TIES = ("half", "wrong")
DEFAULT_TIES = "half"
TIE_RULES = {"half": "a tie in metric scores counts as half correct",
             "wrong": "a tie in metric scores counts as wrong"}


# ---------------------------------------------------------------- statistics


def outcomes(score_a, score_b, winner, lower_better: bool, ties: str = DEFAULT_TIES) -> np.ndarray:
    """Per pair: 1 where the metric scores the preferred side (``winner`` 0: ``a``, 1: ``b``) better in its
    direction, 0 where worse, and for equal scores 0.5 (``ties="half"``) or 0 (``"wrong"``).

    >>> outcomes([3, 1, 2], [1, 3, 2], [0, 0, 1], lower_better=False).tolist()
    [1.0, 0.0, 0.5]
    >>> outcomes([3, 1, 2], [1, 3, 2], [0, 0, 1], lower_better=True, ties="wrong").tolist()
    [0.0, 1.0, 0.0]
    """
    if ties not in TIES:
        raise ConfigError(f"ties={ties!r}: use one of {', '.join(TIES)}")
    a, b = np.asarray(score_a, np.float64), np.asarray(score_b, np.float64)
    w = np.asarray(winner)
    if not (a.shape == b.shape == w.shape) or a.ndim != 1:
        raise InputError(f"scores and winners must be three vectors of one length, got {a.shape}, {b.shape}, {w.shape}")
    if not np.isin(w, (0, 1)).all():
        raise InputError("a winner is 0 (the first image) or 1 (the second)")
    diff = np.where(w == 0, a - b, b - a)  # > 0: the preferred side scores higher
    if lower_better:
        diff = -diff
    return np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5 if ties == "half" else 0.0))


def bootstrap_ci(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``values`` (module docstring); ``(nan, nan)`` with no
    value or ``n_boot`` 0."""
    x = np.asarray(values, np.float64)
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level={level!r}: give a confidence level between 0 and 1, e.g. 0.95")
    if n_boot < 0:
        raise ConfigError(f"n_boot={n_boot!r}: give a number of bootstrap resamples >= 0 (0: no interval)")
    if x.size == 0 or n_boot == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    rows = max(1, (1 << 22) // x.size)  # resamples drawn at once: a few tens of MB of indices
    for start in range(0, n_boot, rows):
        k = min(rows, n_boot - start)
        means[start:start + k] = x[rng.integers(0, x.size, size=(k, x.size))].mean(axis=1)
    lo, hi = np.percentile(means, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def complementarity(per_metric: dict[str, np.ndarray]) -> dict[str, dict[str, tuple[float, int]]]:
    """``M[x][y] = (accuracy of y on the pairs x gets wrong, their count)`` from each metric's :func:`outcomes`
    on the same pairs; accuracy ``nan`` where ``x`` gets none wrong.

    >>> m = complementarity({"p": np.array([1.0, 0, 0]), "q": np.array([0.0, 1, 0.5])})
    >>> m["p"]["q"], m["q"]["p"]
    ((0.75, 2), (1.0, 1))
    """
    out: dict[str, dict[str, tuple[float, int]]] = {}
    for x, ox in per_metric.items():
        wrong = np.asarray(ox) == 0.0
        n = int(wrong.sum())
        out[x] = {y: (float(np.asarray(oy)[wrong].mean()) if n else math.nan, n) for y, oy in per_metric.items()}
    return out


def _logistic_4params(x, beta1, beta2, beta3, beta4):
    return (beta1 - beta2) / (1 + np.exp(-(x - beta3) / beta4)) + beta2


def fit_logistic(x, y) -> np.ndarray:
    """``x`` mapped by the 4-parameter logistic fitted to ``y``: IQA-PyTorch's ``fit_curve(x, y,
    'logistic_4params')``, its initial guess and ``curve_fit`` call."""
    from scipy.optimize import curve_fit

    x, y = np.asarray(x), np.asarray(y)
    betas_init = [np.max(y), np.min(y), np.mean(x), np.std(x) / 4.0]
    betas, _ = curve_fit(_logistic_4params, x, y, p0=betas_init)
    return _logistic_4params(x, *betas)


def correlations(scores, mos) -> dict:
    """``{"n", "srcc", "krcc", "plcc", "note"}`` of a metric's scores against MOS (module docstring)."""
    from scipy import stats
    from scipy.optimize import OptimizeWarning

    x, y = np.asarray(scores, np.float64), np.asarray(mos, np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3:
        raise InputError(f"correlations need two vectors of one length >= 3, got {x.shape} and {y.shape}")
    out = {"n": int(x.size), "srcc": float(stats.spearmanr(x, y)[0]), "krcc": float(stats.kendalltau(x, y)[0]),
           "plcc": math.nan, "note": ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # "covariance could not be estimated": not the fit
            out["plcc"] = float(stats.pearsonr(fit_logistic(x, y), y)[0])
    except (RuntimeError, ValueError) as exc:
        out["note"] = f"logistic fit failed: {str(exc).splitlines()[0]}"
    return out


# ---------------------------------------------------------------- scores


@dataclass
class Scorer:
    """What computes one metric on an image file: ``score(path) -> float``, its ``version`` (stored with each
    value), its direction, and ``where`` it runs (a cache key part: values from another torch or device are kept
    apart). The hook to bring any score function in: :func:`registry_scorer` builds one from the registry."""

    name: str
    version: str
    lower_better: bool
    score: Callable[[Path], float]
    where: str = "any"


def no_reference_metrics() -> list[str]:
    """Every no-reference metric of the registry, in its order."""
    from ..metrics.registry import METRICS, Kind

    return [n for n, s in METRICS.items() if s.kind == Kind.NO_REFERENCE]


def check_metrics(spec: str | list[str]) -> list[str]:
    """Metric names from ``a,b`` (``nr`` or ``all``: every no-reference metric); each must be a no-reference
    metric of the registry."""
    from ..metrics.registry import Kind, get_spec

    items = [i.strip().lower() for i in (spec.split(",") if isinstance(spec, str) else spec) if i.strip()]
    out: list[str] = []
    for item in items:
        for name in no_reference_metrics() if item in ("nr", "all") else [item]:
            s = get_spec(name)
            if s.kind != Kind.NO_REFERENCE:
                raise ConfigError(f"{name} is a {s.kind} metric; iqa-alignment scores single images: use "
                                  f"no-reference metrics ({', '.join(no_reference_metrics())})")
            if s.name not in out:
                out.append(s.name)
    if not out:
        raise ConfigError(f"no metric given; use e.g. --metrics {','.join(no_reference_metrics()[:2])} (nr: all of "
                          "them)")
    return out


def registry_scorer(name: str, protocol=None, device: str = "cpu", download: bool = True, log=print) -> Scorer:
    """A :class:`Scorer` of the registry's metric ``name`` (its weights fetched first unless ``download`` is
    False), scoring each file as ``aesop-bench eval`` scores an image."""
    from .. import weights as wm
    from ..cache import device_tag
    from ..imageio import read_image
    from ..metrics.metric import Metric
    from ..metrics.validators import weights_validator
    from ..protocols import DEFAULT_PROTOCOL

    m = Metric(name, protocol or DEFAULT_PROTOCOL, device)
    if download:
        for n in m.spec.weights:
            if n in wm.manifest() and not wm.cache_path(wm.entry(n)).is_file():
                wm.download(n, log=log, validate=weights_validator(n))

    def score(path: Path) -> float:
        try:
            return float(m(read_image(path))[0])
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None

    return Scorer(m.name, m.version, m.spec.lower_better, score, str(device_tag(device)))


class ScoreStore:
    """Scores by (image file sha256, metric version, machine) in the ``features`` cache; values are computed only
    where absent."""

    def store(self, scorer: Scorer):
        from ..cache import ARRAY, Store, Tag, folder

        return Store("features", folder("features", "iqa-scores", scorer.version, Tag(scorer.where)), ARRAY,
                     valid=lambda v: getattr(v, "shape", None) == (1,))

    def scores(self, scorer: Scorer, files: list[Path], progress: bool = False) -> dict[Path, float]:
        """``{file: score}`` of ``scorer`` on ``files``, from the cache where present."""
        import sys

        from tqdm import tqdm

        from ..fileutil import sha256_cached

        store, out = self.store(scorer), {}
        for f in tqdm(files, desc=scorer.name, unit="img", disable=not progress, leave=False, file=sys.stderr):
            key = sha256_cached(f, persist=True)
            got = store.get(key)
            if got is None:
                value = float(scorer.score(f))
                if not math.isfinite(value):
                    raise InputError(f"{f}: {scorer.name} gave {value}; a finite score is needed to compare images")
                store.put(key, np.array([value], np.float64))
            else:
                value = float(got[0])
            out[f] = value
        return out


# ---------------------------------------------------------------- the whole analysis


def _label(spec: str, taken: set) -> str:
    kind, _, path = spec.partition(":")
    base = f"{kind}-{Path(path).stem or Path(path).name}" if path else Path(kind).stem
    base = safe_name(base)  # a file name: letters, digits, - _ . kept
    label, i = base, 2
    while label in taken:
        label, i = f"{base}-{i}", i + 1
    taken.add(label)
    return label


def _fmt(v, digits: int = 4) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else (
        f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def _markdown(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _json_safe(obj):
    """``obj`` with NaN as None (strict JSON) and paths as text."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (np.bool_, np.integer, np.floating)):
        return _json_safe(obj.item())
    return str(obj) if isinstance(obj, Path) else obj


def _write_table(out: Path, stem: str, header: list[str], rows: list[list], note: str = "",
                 markdown: bool = True) -> list[Path]:
    from ..fileutil import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([[repr(float(v)) if isinstance(v, float) else v for v in row] for row in rows])
    atomic_write_text(out / f"{stem}.csv", buf.getvalue())
    if not markdown:
        return [out / f"{stem}.csv"]
    atomic_write_text(out / f"{stem}.md", (note + "\n\n" if note else "") + _markdown(header, rows))
    return [out / f"{stem}.csv", out / f"{stem}.md"]


def heatmap(matrix: dict[str, dict[str, tuple[float, int]]], title: str, out: Path) -> list[Path]:
    """The complementarity matrix as a heatmap (PNG and PDF): rows the metric that is wrong, columns the metric
    whose accuracy on those pairs each cell shows, with the pair count."""
    from .plots import FONT, _mpl, _save

    plt = _mpl()
    names = list(matrix)
    k = len(names)
    values = np.array([[matrix[x][y][0] for y in names] for x in names], np.float64)
    for i in range(k):
        values[i, i] = np.nan
    side = max(3.25, 0.62 * k + 1.6)
    fig, ax = plt.subplots(figsize=(side + 0.6, side), constrained_layout=True)
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=1.0)
    for i, x in enumerate(names):
        for j, y in enumerate(names):
            acc, n = matrix[x][y]
            text = "" if i == j else ("n=0" if n == 0 else f"{acc:.2f}\nn={n}")
            if text:
                ax.text(j, i, text, ha="center", va="center", fontsize=FONT - 1,
                        color="white" if (not math.isnan(acc) and acc < 0.6) else "black")
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=FONT)
    ax.set_yticks(range(k), names, fontsize=FONT)
    ax.set_xlabel("accuracy of this metric (y)", fontsize=FONT)
    ax.set_ylabel("on the pairs this metric gets wrong (x)", fontsize=FONT)
    ax.set_title(title, fontsize=FONT + 1)
    bar = fig.colorbar(im, ax=ax, shrink=0.8)
    bar.ax.tick_params(labelsize=FONT)
    return _save(plt, fig, out)


def run_alignment(pairs: list[str] = (), mos: list[str] = (), metrics: str | list[str] = "nr", out=None,
                  n_boot: int = 1000, level: float = 0.95, seed: int = 0, ties: str = DEFAULT_TIES,
                  device: str = "cpu", protocol=None, download: bool = True, scorers: list[Scorer] | None = None,
                  progress: bool = False, log=print, command: str = "") -> dict:
    """Score every image of the ``pairs`` and ``mos`` sources (:mod:`aesop_bench.data.preference` specs) with each
    metric (or the given ``scorers``), and write the tables, matrices and heatmaps under ``out``. Returns
    ``{"lines": what to print, "files": written}``."""
    from ..data.preference import read_mos, read_pairs
    from ..fileutil import atomic_write_json, sha256_cached

    if out is None:
        raise ConfigError("give an output folder (--out)")
    if not pairs and not mos:
        raise ConfigError("nothing to compare with: give --pairs hggt:PATH|sbs:FILE and/or --mos FILE.csv|pipal:DIR")
    if ties not in TIES:
        raise ConfigError(f"--ties {ties!r}: use one of {', '.join(TIES)}")
    bootstrap_ci([1.0], 0, level)  # refuses a bad level before any work
    if n_boot < 0:
        raise ConfigError(f"--bootstrap {n_boot}: give a number of resamples >= 0 (0: no interval)")
    taken: set = set()
    pair_sets = [(_label(s, taken), read_pairs(s)) for s in pairs]
    mos_sets = [(_label(s, taken), read_mos(s)) for s in mos]
    if scorers is None:
        scorers = [registry_scorer(n, protocol, device, download, log) for n in check_metrics(metrics)]
    if not scorers:
        raise ConfigError("no metric to score with")
    files = list(dict.fromkeys([f for _, p in pair_sets for f in p.files] + [f for _, m in mos_sets for f in m.images]))
    store = ScoreStore()
    scores = {s.name: store.scores(s, files, progress) for s in scorers}

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    lines: list[str] = []
    result: dict = {"command": command, "tie_rule": TIE_RULES[ties], "ties": ties, "bootstrap": n_boot,
                    "level": level, "seed": seed,
                    "metrics": {s.name: {"version": s.version, "lower_better": s.lower_better, "where": s.where}
                                for s in scorers},
                    "pairs": {}, "complementarity": {}, "mos": {}}
    rows = []
    for label, ps in pair_sets:
        if not ps.pairs:
            raise InputError(f"{ps.source}: no pair left to compare ({ps.excluded} excluded: {ps.rule})")
        winner = np.array([p.winner for p in ps.pairs])
        per_metric = {}
        for s in scorers:
            a = np.array([scores[s.name][p.a] for p in ps.pairs])
            b = np.array([scores[s.name][p.b] for p in ps.pairs])
            o = outcomes(a, b, winner, s.lower_better, ties)
            per_metric[s.name] = o
            lo, hi = bootstrap_ci(o, n_boot, level, seed)
            row = {"dataset": label, "metric": s.name, "lower_better": s.lower_better, "pairs": len(o),
                   "excluded": ps.excluded, "right": int((o == 1).sum()), "ties": int((a == b).sum()),
                   "accuracy": float(o.mean()), "ci_low": lo, "ci_high": hi}
            rows.append(row)
        result["pairs"][label] = {"source": ps.source, "rule": ps.rule, "pairs": len(ps.pairs),
                                  "excluded": ps.excluded,
                                  "metrics": {r["metric"]: r for r in rows if r["dataset"] == label}}
        matrix = complementarity(per_metric)
        result["complementarity"][label] = {x: {y: {"accuracy": v[0], "n": v[1]} for y, v in r.items()}
                                            for x, r in matrix.items()}
        names = list(matrix)
        note = (f"{label}: accuracy of the column metric on the pairs the row metric gets wrong (n = their count); "
                f"{TIE_RULES[ties]}.")
        written += _write_table(out, f"complementarity_{label}", ["wrong_by", *names, "n_wrong"],
                                [[x, *(matrix[x][y][0] for y in names), matrix[x][x][1]] for x in names], note)
        written += heatmap(matrix, f"{label}: complementarity ({len(ps.pairs)} pairs)",
                           out / f"complementarity_{label}.png")
    if rows:
        header = list(rows[0])
        note = (f"Pairwise accuracy; {TIE_RULES[ties]}; {level * 100:g}% percentile bootstrap over pairs, "
                f"B={n_boot}, numpy default_rng(seed={seed}). "
                + " ".join(sorted({ps.rule for _, ps in pair_sets})))
        written += _write_table(out, "pairwise", header, [[r[h] for h in header] for r in rows], note)
        lines.append(note)
        lines.append(_markdown(header, [[r[h] for h in header] for r in rows]).rstrip())
    crows = []
    for label, ms in mos_sets:
        y = np.array(ms.mos, np.float64)
        for s in scorers:
            x = np.array([scores[s.name][f] for f in ms.images])
            c = correlations(x, y)
            crows.append({"dataset": label, "metric": s.name, "lower_better": s.lower_better, **c})
        result["mos"][label] = {"source": ms.source, "images": len(ms.images),
                                "metrics": {r["metric"]: r for r in crows if r["dataset"] == label}}
    if crows:
        header = list(crows[0])
        note = ("SRCC, KRCC of the raw scores; PLCC after IQA-PyTorch 0.1.16's 4-parameter logistic fit; scores not "
                "negated (a lower-better metric agreeing with people has negative SRCC/KRCC).")
        written += _write_table(out, "correlation", header, [[r[h] for h in header] for r in crows], note)
        lines.append(note)
        lines.append(_markdown(header, [[r[h] for h in header] for r in crows]).rstrip())
    score_rows = [[str(f), sha256_cached(f), s.name, s.version, scores[s.name][f]] for s in scorers for f in files]
    written += _write_table(out, "scores", ["file", "sha256", "metric", "version", "score"], score_rows,
                            markdown=False)
    atomic_write_json(out / "alignment.json", _json_safe(result))
    written.append(out / "alignment.json")
    lines += ["", "written:"] + [f"  {p}" for p in written]
    return {"lines": lines, "files": written, "result": result}


__all__ = ["TIES", "DEFAULT_TIES", "TIE_RULES", "outcomes", "bootstrap_ci", "complementarity", "fit_logistic",
           "correlations", "Scorer", "ScoreStore", "registry_scorer", "no_reference_metrics", "check_metrics",
           "heatmap", "run_alignment"]
