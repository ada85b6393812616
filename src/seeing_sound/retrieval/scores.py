"""The score functions of Algorithm 1, defined once so every code path computes the same bits.

``CosSim`` is defined in float64 from the float32 vectors, row by row with numpy's
(deterministic, per-row) pairwise summation. A fast float32 search (BLAS or faiss) only
*proposes* candidates; the threshold and the candidate set are always computed from these
canonical scores. That is what makes the chosen chunk identical across engines, batch
sizes, thread counts and machines.
"""

from __future__ import annotations

import numpy as np

# Unit roundoff of float32: a float32 dot product of length D is within
# D * U32 * |q| * |p| of the exact value, whatever the summation order (Higham, Thm 3.1).
U32 = 2.0**-24


def unit_query(q: np.ndarray) -> np.ndarray:
    """float32 (..., D) -> float64 (..., D) rows of unit L2 norm."""
    q64 = np.ascontiguousarray(q, dtype=np.float64)
    return q64 / np.sqrt(np.sum(q64 * q64, axis=-1, keepdims=True))


def row_norms(p: np.ndarray, block: int = 8192) -> np.ndarray:
    """float (N, D) -> float64 (N,) L2 norms, row by row (same bits for any block size).

    The squares are taken in float64 straight from the rows (the cast is exact), with no float64 copy.
    """
    out = np.empty(p.shape[0], dtype=np.float64)
    for s in range(0, p.shape[0], block):
        b = p[s : s + block]
        out[s : s + block] = np.sqrt(np.sum(np.multiply(b, b, dtype=np.float64), axis=-1))
    return out


def cos_sim(q_unit: np.ndarray, p_rows: np.ndarray, p_norms: np.ndarray) -> np.ndarray:
    """Canonical cosine similarity.

    ``q_unit`` float64 (D,) or (Q, 1, D) from :func:`unit_query`; ``p_rows`` float (M, D) or
    (Q, M, D); ``p_norms`` float64 (M,) or (Q, M), the rows' :func:`row_norms`.
    Returns float64 (M,) or (Q, M): ``sum(q_unit * p) / |p|``, each entry depending only on
    its own two vectors.
    """
    # float32 -> float64 is exact, so multiplying the float32 rows by the float64 query (the cast happens
    # inside the ufunc) gives the bits of converting first, without a float64 copy of the rows: the
    # product has the same shape and layout, so the pairwise sum adds in the same order. 2x faster.
    return np.sum(np.multiply(p_rows, q_unit, dtype=np.float64), axis=-1) / p_norms


def ssr(t: np.ndarray) -> np.ndarray:
    """Signed square root, line 5 of Algorithm 1: ``sign(t) * sqrt(|t|)``. Monotone non-decreasing."""
    return np.sign(t) * np.sqrt(np.abs(t))


def top_mean(sorted_desc: np.ndarray, k: int) -> np.ndarray:
    """``mean(topk(t))`` from scores already sorted in descending order along the last axis."""
    return np.mean(np.ascontiguousarray(sorted_desc[..., :k]), axis=-1)
