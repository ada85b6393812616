"""The paper's evaluation metrics (Sec. 4.2) as pure functions on feature arrays.

All inputs are converted to float64; every function checks shapes, finiteness and sample counts
and raises a ``ValueError`` naming the argument.

- :func:`frechet_distance`: FID on Inception pool3 features (Heusel et al. 2017).
- :func:`kernel_inception_distance`: KID, unbiased MMD² with the cubic polynomial kernel
  (Bińkowski et al. 2018).
- :func:`paired_cosine`: raw cosine of row i with row i: the paper's AIS (Wav2CLIP audio vs CLIP
  image of the generated image) and IIS (CLIP generated vs CLIP ground truth).
- :func:`rank_score`: SonicDiffusion's rank variant of AIS/IIS; its values are *not* comparable
  with raw cosines.
"""

from __future__ import annotations

import numpy as np

#: rows of the similarity matrix computed at once by :func:`rank_score` (bounds memory at large N)
RANK_BLOCK = 1024


def as_features(name: str, x, *, min_rows: int = 1) -> np.ndarray:
    """``x`` as a finite float64 ``(N, D)`` array with ``N >= min_rows``, or a ``ValueError`` naming ``name``."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D (N, D) array of features, got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples), got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise ValueError(f"{name} has NaN or infinite values (first in row {bad})")
    return arr


def _same_dim(a: np.ndarray, b: np.ndarray, names: str = "a and b") -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names} must have the same feature dimension, got {a.shape[1]} and {b.shape[1]}")


def gaussian_stats(x) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of features ``x`` ``(N, D)``, ``N >= 2``."""
    x = as_features("x", x, min_rows=2)
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (eigenvalues below zero from rounding clipped)."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2): ``mu`` ``(D,)``, ``sigma`` ``(D, D)``.

    ``Tr((Σ1Σ2)^½)`` is computed as the sum of ``sqrt`` of the eigenvalues of the symmetric PSD
    matrix ``Σ1^½ Σ2 Σ1^½`` (same spectrum as ``Σ1Σ2``): real by construction, no ``sqrtm`` of a
    non-symmetric product (pytorch-fid/clean-fid's ``scipy.linalg.sqrtm`` can return complex parts
    or NaNs for near-singular covariances and then retry with ``eps`` on the diagonal), so singular
    covariances need no offset.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"mu1, mu2 must be (D,) and sigma1, sigma2 (D, D), got {mu1.shape}, {mu2.shape}, {s1.shape}, {s2.shape}"
        )
    for name, v in (("mu1", mu1), ("mu2", mu2), ("sigma1", s1), ("sigma2", s2)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name} has NaN or infinite values")
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    return max(float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean), 0.0)


def frechet_distance(a, b) -> float:
    """FID between feature sets ``a`` ``(N, D)`` and ``b`` ``(M, D)``, ``N, M >= 2``.

    ``‖μa − μb‖² + Tr(Σa + Σb − 2(ΣaΣb)^½)`` with unbiased covariances. When both sets have no more
    rows than dimensions (FID on ~1K images of 2048-d features, where Σ is singular), the trace term
    is taken from the samples instead: with centred rows ``A``, ``B``,
    ``Tr((ΣaΣb)^½) = ‖A Bᵀ‖_* / √((N−1)(M−1))`` (the nuclear norm: ``ΣaΣb`` has the eigenvalues of
    ``(ABᵀ)ᵀ(ABᵀ)/((N−1)(M−1))``), an SVD of an ``N × M`` matrix, exact and cheaper than two D × D
    eigendecompositions. Otherwise :func:`frechet_distance_from_stats`. Returns a float >= 0
    (rounding can push FID(X, X) a hair below zero; it is clipped).
    """
    a = as_features("a", a, min_rows=2)
    b = as_features("b", b, min_rows=2)
    _same_dim(a, b)
    (n, d), m = a.shape, b.shape[0]
    if max(n, m) > d:
        return frechet_distance_from_stats(*gaussian_stats(a), *gaussian_stats(b))
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca, cb = a - mu_a, b - mu_b
    tr_a = float(np.einsum("ij,ij->", ca, ca)) / (n - 1)
    tr_b = float(np.einsum("ij,ij->", cb, cb)) / (m - 1)
    tr_covmean = float(np.linalg.svd(ca @ cb.T, compute_uv=False).sum()) / np.sqrt((n - 1) * (m - 1))
    diff = mu_a - mu_b
    return max(float(diff @ diff + tr_a + tr_b - 2.0 * tr_covmean), 0.0)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's kernel ``k(x, y) = (xᵀy / D + 1)³`` for rows of ``x`` ``(n, D)`` and ``y`` ``(m, D)`` -> ``(n, m)``."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² of ``x`` ``(m, D)`` and ``y`` ``(m, D)`` with :func:`polynomial_kernel` (``m >= 2``)."""
    m = x.shape[0]
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kernel_inception_distance(
    a, b, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID of ``a`` ``(N, D)`` and ``b`` ``(M, D)``: (mean, std) of the unbiased MMD² over random subsets.

    Each of ``subsets`` rounds draws ``min(subset_size, N, M)`` rows from each set without
    replacement (``numpy.random.default_rng(seed)``: ``a``'s rows, then ``b``'s). The std is the
    sample std (``ddof=1``) over the subsets (0.0 for one subset). Needs at least 2 rows in each set.
    """
    a = as_features("a", a, min_rows=2)
    b = as_features("b", b, min_rows=2)
    _same_dim(a, b)
    if not isinstance(subsets, (int, np.integer)) or subsets < 1:
        raise ValueError(f"subsets must be an int >= 1, got {subsets!r}")
    if not isinstance(subset_size, (int, np.integer)) or subset_size < 2:
        raise ValueError(f"subset_size must be an int >= 2, got {subset_size!r}")
    m = int(min(subset_size, a.shape[0], b.shape[0]))
    rng = np.random.default_rng(seed)
    values = np.empty(subsets, dtype=np.float64)
    for s in range(subsets):
        ia = rng.choice(a.shape[0], m, replace=False)
        ib = rng.choice(b.shape[0], m, replace=False)
        values[s] = mmd2_unbiased(a[ia], b[ib])
    std = float(values.std(ddof=1)) if subsets > 1 else 0.0
    return float(values.mean()), std


def _unit_rows(name: str, x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"{name} has all-zero rows (first: row {int(np.argmax(norms == 0))}); cosine is undefined")
    return x / norms[:, None]


def _paired(a, b, min_rows: int) -> tuple[np.ndarray, np.ndarray]:
    a = as_features("a", a, min_rows=min_rows)
    b = as_features("b", b, min_rows=min_rows)
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape (row i of a pairs with row i of b), got {a.shape}, {b.shape}"
        )
    return _unit_rows("a", a), _unit_rows("b", b)


def paired_cosine(a, b) -> np.ndarray:
    """Cosine of row ``i`` of ``a`` with row ``i`` of ``b``: ``(N, D)``, ``(N, D)`` -> float64 ``(N,)``.

    The paper's AIS (``a`` = Wav2CLIP audio embeddings, ``b`` = CLIP embeddings of the generated
    images) and IIS (CLIP generated vs CLIP ground truth) are the mean of these raw cosines.
    """
    ua, ub = _paired(a, b, min_rows=1)
    return np.einsum("ij,ij->i", ua, ub)


def rank_score(a, b) -> np.ndarray:
    """For each ``i``: the fraction of ``j ≠ i`` with ``cos(a_i, b_j) < cos(a_i, b_i)``; ``(N, D)`` x2 -> ``(N,)``.

    SonicDiffusion's rank variant (1.0: the paired item beats every other one, 0.5: chance).
    Needs ``N >= 2``. Not comparable with the raw cosines of :func:`paired_cosine`.
    """
    ua, ub = _paired(a, b, min_rows=2)
    n = ua.shape[0]
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, RANK_BLOCK):
        sim = ua[s : s + RANK_BLOCK] @ ub.T  # (block, N)
        rows = np.arange(s, min(n, s + RANK_BLOCK))
        own = sim[rows - s, rows]
        below = (sim < own[:, None]).sum(axis=1)  # j == i is never below itself
        out[rows] = below / (n - 1)
    return out
