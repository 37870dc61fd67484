"""Frechet distance: closed forms, scipy's sqrtm route, rank-deficient sets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from aesop_bench.metrics.frechet import frechet_distance_features


def gaussian_stats(x):
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrtm_fd(f1, f2):
    """pytorch-fid's route: scipy's sqrtm of the covariance product."""
    mu1, s1 = gaussian_stats(f1)
    mu2, s2 = gaussian_stats(f2)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_equals_scipy_sqrtm_on_full_rank_features():
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(400, 32))
    f2 = rng.normal(size=(300, 32)) @ rng.normal(size=(32, 32)) * 0.3 + 0.5
    ref = _sqrtm_fd(f1, f2)
    assert frechet_distance_features(f1, f2) == pytest.approx(ref, rel=1e-6)  # n > d: the QR route
    # n < d for one set: the cross-matrix route, against sqrtm in the span of the samples (FD is invariant
    # under rotations, and there the covariances are well conditioned)
    g1, g2 = f1[:20], f2[:25]
    q, _ = np.linalg.qr(np.vstack([g1, g2]).T)
    assert frechet_distance_features(g1 @ q, g2 @ q) == pytest.approx(_sqrtm_fd(g1 @ q, g2 @ q), rel=1e-6)


def test_closed_form_for_commuting_gaussians():
    # Samples whitened to exact means and diagonal covariances: FD = |m1-m2|^2 + sum (sqrt(a) - sqrt(b))^2.
    rng = np.random.default_rng(1)
    d, n = 8, 200

    def exact(mean, var):
        z = rng.normal(size=(n, d))
        z -= z.mean(0)
        w, v = np.linalg.eigh(np.cov(z, rowvar=False))
        z = z @ v @ np.diag(w ** -0.5) @ v.T  # covariance exactly identity
        return z * np.sqrt(var) + mean

    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.5, 2, size=d), rng.uniform(0.5, 2, size=d)
    expect = float(((m1 - m2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_distance_features(exact(m1, a), exact(m2, b)) == pytest.approx(expect, rel=1e-9)


def test_rank_deficient_sets_are_finite_and_consistent():
    # Fewer samples than dimensions (Set14 with 2048-d Inception features): the SVD route stays exact.
    rng = np.random.default_rng(2)
    f1 = rng.normal(size=(14, 2048))
    f2 = f1 + 0.1 * rng.normal(size=(14, 2048))
    fd = frechet_distance_features(f1, f2)
    assert np.isfinite(fd) and fd >= 0
    # FD is invariant under rotations, and all the data lie in the span of the 28 samples: in that
    # 28-dimensional basis the covariance route is well conditioned and must agree to 1e-6.
    q, _ = np.linalg.qr(np.vstack([f1, f2]).T)
    p1, p2 = f1 @ q, f2 @ q
    assert _sqrtm_fd(p1, p2) == pytest.approx(fd, rel=1e-6)
    assert frechet_distance_features(p1, p2) == pytest.approx(fd, rel=1e-9)
    assert frechet_distance_features(f1, f1) == pytest.approx(0.0, abs=1e-8)


def test_both_routes_agree_where_both_apply():
    # the same sets through the QR route (n > d) and the cross-matrix route (forced by padding the features
    # with zero columns to d > n, which changes no distance)
    rng = np.random.default_rng(3)
    f1, f2 = rng.normal(size=(60, 16)), rng.normal(size=(50, 16)) * 1.5 + 0.2
    pad = lambda f: np.hstack([f, np.zeros((len(f), 64))])  # noqa: E731
    assert frechet_distance_features(f1, f2) == pytest.approx(frechet_distance_features(pad(f1), pad(f2)), rel=1e-10)


def test_both_routes_against_mpmath():
    """FD at 50 significant digits (mpmath): tr((S1 S2)^(1/2)) as the sum of the square roots of the
    eigenvalues of S1 S2, which are real and non-negative; one case per route (n > d: QR, n < d: cross)."""
    from tests.references import optional

    mpmath = optional("mpmath")
    mp = mpmath.mp
    mp.dps = 50
    rng = np.random.default_rng(4)

    def exact(f1, f2):
        def stats(f):
            x = mpmath.matrix(f.tolist())
            n, d = x.rows, x.cols
            mu = [mpmath.fsum(x[i, j] for i in range(n)) / n for j in range(d)]
            cov = mpmath.matrix(d, d)
            for a in range(d):
                for b in range(d):
                    cov[a, b] = mpmath.fsum((x[i, a] - mu[a]) * (x[i, b] - mu[b]) for i in range(n)) / (n - 1)
            return mu, cov

        (m1, s1), (m2, s2) = stats(f1), stats(f2)
        ev = mpmath.eig(s1 * s2, left=False, right=False)
        trace_sqrt = mpmath.fsum(mpmath.sqrt(max(mpmath.re(e), 0)) for e in ev)
        d = len(m1)
        return float(mpmath.fsum((m1[j] - m2[j]) ** 2 for j in range(d)) + mpmath.fsum(s1[j, j] for j in range(d))
                     + mpmath.fsum(s2[j, j] for j in range(d)) - 2 * trace_sqrt)

    for n1, n2, d in ((12, 9, 4), (3, 4, 6)):
        f1, f2 = rng.normal(size=(n1, d)), rng.normal(size=(n2, d)) * 0.7 + 0.3
        assert frechet_distance_features(f1, f2) == pytest.approx(exact(f1, f2), rel=1e-10, abs=1e-12)
