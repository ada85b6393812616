"""Fast float32 top-k *proposals*: blocked BLAS or faiss, bounded memory.

These functions only propose the ``k'`` best pool rows per query by float32 inner
product; :mod:`seeing_sound.retrieval.algorithm` rescores the proposals canonically and
proves (or widens) them. Rows must already be (close to) unit norm.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

ENGINES = ("auto", "faiss", "numpy")


def have_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        return "faiss" if have_faiss() else "numpy"
    if engine == "faiss" and not have_faiss():
        raise ValueError("engine='faiss' needs the faiss-cpu package (pip install faiss-cpu), or use engine='numpy'")
    return engine


def topk_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest entries of each row (unordered): int64 (Q, k)."""
    if k >= scores.shape[1]:
        return np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    return np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:]


def numpy_topk(q: np.ndarray, p: np.ndarray, k: int, pool_block: int) -> tuple[np.ndarray, np.ndarray]:
    """Blocked exact float32 top-k by inner product.

    ``q`` float32 (Q, D), ``p`` float32 (N, D); returns (scores float32 (Q, k), index int64 (Q, k)),
    unordered within a row. Working set: Q x (pool_block + k) float32 scores at a time.
    """
    best_s = np.full((q.shape[0], 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((q.shape[0], 0), dtype=np.int64)
    for start in range(0, p.shape[0], pool_block):
        s = q @ p[start : start + pool_block].T  # multithreaded sgemm
        cols = topk_rows(s, k)
        s_top = np.take_along_axis(s, cols, axis=1)
        del s
        all_s = np.concatenate([best_s, s_top], axis=1)
        all_i = np.concatenate([best_i, cols + start], axis=1)
        keep = topk_rows(all_s, k)
        best_s = np.take_along_axis(all_s, keep, axis=1)
        best_i = np.take_along_axis(all_i, keep, axis=1)
    return best_s, best_i


def faiss_topk(q: np.ndarray, p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss exact brute-force inner-product top-k (``faiss.knn``, no copy of the pool).

    Same contract as :func:`numpy_topk`; faiss blocks the work internally (4096 x 1024 tiles).
    """
    import faiss

    d, i = faiss.knn(np.ascontiguousarray(q), p, k, metric=faiss.METRIC_INNER_PRODUCT)
    return d, i.astype(np.int64, copy=False)


def propose(q: np.ndarray, p: np.ndarray, k: int, *, engine: str, pool_block: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` proposals with the chosen engine (``k`` <= N)."""
    if engine == "faiss":
        return faiss_topk(q, p, k)
    return numpy_topk(q, p, k, pool_block)
