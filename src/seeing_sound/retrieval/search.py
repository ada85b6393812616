"""Fast float32 top-k *proposals* (blocked BLAS, faiss or torch, bounded memory), and engine choice.

These functions only propose the ``k'`` best pool rows per query by float32 inner
product; :mod:`seeing_sound.retrieval.algorithm` rescores the proposals canonically and
proves (or widens) them. Rows must already be (close to) unit norm. The ``bf16`` engine
(:mod:`seeing_sound.retrieval.screen`) screens instead of proposing; torch is imported only
when a torch engine runs.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

ENGINES = ("auto", "faiss", "numpy", "bf16", "torch")
TORCH_ENGINES = ("bf16", "torch")
AUTO_BF16_MIN_ROWS = 16384  # below this, faiss/numpy are as fast and need no bf16 copy of the pool


def have_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def cpu_engine() -> str:
    """The float32 CPU engine: faiss when installed, else numpy."""
    return "faiss" if have_faiss() else "numpy"


def resolve_engine(engine: str, device: str = "cpu", rows: int | None = None) -> str:
    """The engine that runs: 'auto' is 'bf16' where torch and fast bf16 matmuls exist, else faiss/numpy.

    ``device`` (already resolved, 'cpu' or 'cuda[:N]') is where the torch engines run; faiss and
    numpy are CPU-only. ``rows`` (pool size) lets 'auto' skip the bf16 copy for small pools.
    """
    from seeing_sound.retrieval import screen

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if device != "cpu" and engine in ("faiss", "numpy"):
        raise ValueError(
            f"engine={engine!r} runs on the CPU only; device={device!r} needs engine 'auto', 'bf16' or 'torch'"
        )
    if engine == "auto":
        if device != "cpu":
            return "bf16" if screen.bf16_fast(device) else "torch"
        if (rows is None or rows >= AUTO_BF16_MIN_ROWS) and screen.bf16_fast("cpu"):
            return "bf16"
        return cpu_engine()
    if engine == "faiss" and not have_faiss():
        raise ValueError("engine='faiss' needs the faiss-cpu package (pip install faiss-cpu), or use engine='numpy'")
    if engine in TORCH_ENGINES and not screen.have_torch():
        raise ValueError(f"engine={engine!r} needs torch (pip install torch), or use engine='faiss' or 'numpy'")
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


def propose(
    q: np.ndarray, p: np.ndarray, k: int, *, engine: str, pool_block: int, device: str = "cpu", p_dev=None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` proposals with the chosen engine (``k`` <= N); 'torch' needs ``p_dev``, ``p`` on ``device``."""
    if engine == "faiss":
        return faiss_topk(q, p, k)
    if engine == "torch":
        from seeing_sound.retrieval.screen import torch_topk

        return torch_topk(q, p_dev, k, device=device, pool_block=pool_block)
    return numpy_topk(q, p, k, pool_block)
