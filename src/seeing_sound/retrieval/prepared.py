"""Inputs of Algorithm 1: argument checks, the prepared pool, and canonical rescoring of pool rows.

:func:`check_k` and the matrix, norm and ``exclude`` checks; :class:`PreparedPool`, a pool made ready
once for many searches (float32 rows, canonical norms, a unit-norm search view and its device copies);
and ``_canonical``, the chunked float64 ``cos_sim`` of queries against pool rows that every engine's
proposals are rescored with. :mod:`seeing_sound.retrieval.algorithm` re-exports these names.
"""

from __future__ import annotations

import numpy as np

from seeing_sound.retrieval.scores import cos_sim, row_norms

_NORM_SLACK = 1e-3  # pool rows this close to unit norm are searched in place, without a copy
_CACHE_CHUNK = 8 * 1024**2  # bytes of float64 temporaries per rescoring step


def check_k(k, name: str = "k") -> None:
    """``ValueError`` naming ``name`` unless ``k`` is an integer >= 1 (bools refused)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {k!r}")


def _as_matrix(x, name: str, dim: int | None = None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows, dim), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must hold floats (float16/32/64), got dtype {arr.dtype}")
    if arr.shape[0] == 0 and name == "pool":
        raise ValueError("pool must have at least one row, got 0")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has dimension {arr.shape[1]} but queries have {dim}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check_norms(norms: np.ndarray, name: str) -> None:
    bad = np.flatnonzero(~np.isfinite(norms))
    if bad.size:
        raise ValueError(f"{name} row {int(bad[0])} contains NaN or inf ({bad.size} such rows)")
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(
            f"{name} row {int(zero[0])} is a zero vector; cosine similarity is undefined ({zero.size} such rows)"
        )


def _keep_rows(exclude, n: int) -> np.ndarray | None:
    if exclude is None:
        return None
    ex = np.asarray(exclude)
    if ex.dtype == bool:
        if ex.shape != (n,):
            raise ValueError(f"exclude as a mask must have shape ({n},), got {ex.shape}")
        mask = ex
    else:
        if not np.issubdtype(ex.dtype, np.integer):
            raise ValueError(f"exclude must be a bool mask or integer row indices, got dtype {ex.dtype}")
        if ex.size and (ex.min() < 0 or ex.max() >= n):
            raise ValueError(f"exclude holds row indices outside [0, {n}): {int(ex.min())}..{int(ex.max())}")
        mask = np.zeros(n, dtype=bool)
        mask[ex.reshape(-1)] = True
    if mask.all():
        raise ValueError("exclude removes every pool row; nothing is left to retrieve")
    return np.flatnonzero(~mask) if mask.any() else None


class PreparedPool:
    """A pool prepared once for many searches: float32 rows, canonical norms, a unit-norm search view.

    ``pool`` float (N, D) embeddings (any norm; zero rows are refused); ``exclude`` a bool
    mask (N,) or row indices to leave out. Pass it to :func:`candidate_sets` in place of the
    array to skip re-checking and re-normalising a large pool for every batch of queries.
    """

    def __init__(self, pool: np.ndarray, exclude=None, dim: int | None = None):
        p = _as_matrix(pool, "pool", dim)
        norms = row_norms(p)
        self.kept = _keep_rows(exclude, p.shape[0])
        if self.kept is not None:
            p, norms = np.ascontiguousarray(p[self.kept]), norms[self.kept]
        _check_norms(norms, "pool")
        self.rows, self.norms = p, norms
        dev = float(np.max(np.abs(norms - 1.0)))
        if dev <= _NORM_SLACK:
            self.search, self.slack, self.max_norm = p, dev, float(norms.max())
        else:  # unnormalised input: search a unit-norm copy
            self.search = np.empty_like(p)
            for s in range(0, p.shape[0], 65536):
                self.search[s : s + 65536] = p[s : s + 65536] / norms[s : s + 65536, None]
            self.slack, self.max_norm = 0.0, 1.0 + 1e-6
        self._device_copies: dict = {}
        self.engine_choice: dict = {}  # what ``auto`` decided by calibration, per k bucket (see algorithm.py)

    def screen_pool(self, device: str = "cpu"):
        """The bf16 copy of the search view on ``device`` (made once, kept with the pool)."""
        key = ("bf16", device)
        if key not in self._device_copies:
            from seeing_sound.retrieval.screen import ScreenPool

            self._device_copies[key] = ScreenPool(self.search, device)
        return self._device_copies[key]

    def torch_rows(self, device: str = "cpu"):
        """The float32 search view as a torch tensor on ``device`` (no copy on the CPU)."""
        key = ("fp32", device)
        if key not in self._device_copies:
            import torch

            self._device_copies[key] = torch.from_numpy(self.search).to(device)
        return self._device_copies[key]

    def __len__(self) -> int:
        return self.rows.shape[0]

    def original(self, rows: np.ndarray) -> np.ndarray:
        return rows if self.kept is None else self.kept[rows]


def _canonical(qu: np.ndarray, pool: PreparedPool, idx: np.ndarray | None, budget: int) -> np.ndarray:
    """Canonical cosines of ``qu`` float64 (b, D) against pool rows ``idx`` int (b, m), or all rows.

    Chunked so that at most ``budget`` bytes of float64 temporaries exist at once; each
    entry depends only on its two vectors, so the chunking never changes a bit.
    """
    b, d = qu.shape
    m = len(pool) if idx is None else idx.shape[1]
    out = np.empty((b, m), dtype=np.float64)
    work = min(budget, _CACHE_CHUNK)  # small chunks stay in cache: 5x faster than one big temporary
    cols = max(1, min(m, work // max(1, 24 * d)))
    rows = max(1, work // max(1, 24 * d * cols))
    for r in range(0, b, rows):
        q3 = qu[r : r + rows, None, :]
        for c in range(0, m, cols):
            if idx is None:
                out[r : r + rows, c : c + cols] = cos_sim(
                    q3, pool.rows[None, c : c + cols], pool.norms[None, c : c + cols]
                )
            else:
                sel = idx[r : r + rows, c : c + cols]
                out[r : r + rows, c : c + cols] = cos_sim(q3, pool.rows[sel], pool.norms[sel])
    return out
