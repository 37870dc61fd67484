"""The Frechet distance between Gaussians fitted to two feature sets, without a 2048x2048 ``sqrtm``.

``FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``

With ``S1 = A^T A`` and ``S2 = B^T B`` for the centred, scaled feature
matrices ``A = (X - mu1) / sqrt(n1 - 1)`` (``n1 x d``) and ``B`` likewise,
``tr((S1 S2)^(1/2))`` is the sum of the singular values of ``A B^T``
(``n1 x n2``): the eigenvalues of ``S1 S2`` equal those of
``(A B^T)(A B^T)^T``. So the trace term is the nuclear norm of the small
cross matrix, computed exactly by one SVD of size ``min(n1, n2)``; it is
finite and correct when a set has fewer samples than feature dimensions
(rank-deficient covariances), where ``scipy.linalg.sqrtm`` of ``S1 S2``
returns complex noise. All arithmetic is float64.
"""

from __future__ import annotations

import numpy as np


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance, as pytorch-fid and clean-fid compute them."""
    x = np.asarray(features, dtype=np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _centred(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need a (n >= 2, d) feature matrix, got shape {x.shape}")
    mu = x.mean(axis=0)
    return mu, (x - mu) / np.sqrt(x.shape[0] - 1)


def frechet_distance_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FD between the Gaussians of two feature sets (rows are samples)."""
    mu1, a = _centred(feats1)
    mu2, b = _centred(feats2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    cross = a @ b.T
    trace_sqrt = np.linalg.svd(cross, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.einsum("ij,ij->", a, a) + np.einsum("ij,ij->", b, b) - 2.0 * trace_sqrt)


def frechet_distance_stats(mu1, sigma1, mu2, sigma2) -> float:
    """FD from means and covariances (for stored statistics), via the symmetric form.

    ``tr((S1 S2)^(1/2)) = tr((S1^(1/2) S2 S1^(1/2))^(1/2))``: two symmetric eigendecompositions,
    real by construction, with eigenvalues clipped at zero for positive semi-definite inputs.
    For rank-deficient covariances in high dimension the clipped square roots of rounding noise add
    up (about 1e-4 relative for 14 samples in 2048 dimensions): prefer the feature route there.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ s2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)
