"""Algorithm 1 exactly as printed in the paper, one query at a time. Slow on purpose.

This is the reference the optimised :func:`seeing_sound.retrieval.match` is tested and
benchmarked against. It scores the whole pool and sorts all N scores for every query.
"""

from __future__ import annotations

import numpy as np

from seeing_sound.retrieval.scores import cos_sim, row_norms, unit_query
from seeing_sound.seeding import choice_positions


def get_matched_audio(
    q: np.ndarray, p: np.ndarray, k: int, seed: int, *, use_ssr: bool = True, p_norms: np.ndarray | None = None
) -> dict:
    """GETMATCHEDAUDIO for one query ``q`` float (D,) against pool embeddings ``p`` float (N, D).

    Lines 2-3 (encoding) happen outside: ``p`` and ``q`` are the embeddings. Returns the
    chosen pool row and the intermediate values, as plain Python numbers.
    """
    if p_norms is None:
        p_norms = row_norms(p)
    # 4: t <- CosSim(q, p)
    t = cos_sim(unit_query(q), p, p_norms)
    cosine = t
    # 5: t <- sign(t) * sqrt(abs(t))
    if use_ssr:
        t = np.sign(t) * np.sqrt(np.abs(t))
    # 6: lb <- mean(topk(t))          (k larger than the pool means "all of it")
    kk = min(int(k), t.shape[0])
    lb = np.mean(np.sort(t)[::-1][:kk])
    # 7: I <- argwhere(t > lb)
    big_i = np.argwhere(t > lb).ravel()
    if big_i.size == 0:
        # Nothing strictly above the mean (k=1, or all top-k scores equal): the maximal scores.
        big_i = np.argwhere(t == t.max()).ravel()
    # 8: i <- choice(I)
    pos = choice_positions(np.array([seed], dtype=np.uint64), np.array([big_i.size]))[0]
    i = int(big_i[pos])
    return {
        "index": i,
        "cosine": float(cosine[i]),
        "score": float(t[i]),
        "threshold": float(lb),
        "n_candidates": int(big_i.size),
        "candidates": big_i,
    }


def naive_match(
    queries: np.ndarray,
    pool: np.ndarray,
    k: int,
    *,
    seeds: np.ndarray,
    ssr: bool = True,
    exclude: np.ndarray | None = None,
) -> dict:
    """:func:`get_matched_audio` for every query; same outputs as ``match`` as a dict of arrays.

    ``exclude`` (bool (N,)) removes pool rows before the algorithm runs.
    """
    pool = np.asarray(pool, dtype=np.float32)
    kept = np.arange(pool.shape[0]) if exclude is None else np.flatnonzero(~np.asarray(exclude, bool))
    p = np.ascontiguousarray(pool[kept])
    norms = row_norms(p)
    rows = [
        get_matched_audio(q, p, k, int(s), use_ssr=ssr, p_norms=norms)
        for q, s in zip(np.asarray(queries, dtype=np.float32), np.asarray(seeds, dtype=np.uint64), strict=True)
    ]
    return {
        "index": np.array([kept[r["index"]] for r in rows], dtype=np.int64),
        "cosine": np.array([r["cosine"] for r in rows]),
        "score": np.array([r["score"] for r in rows]),
        "threshold": np.array([r["threshold"] for r in rows]),
        "n_candidates": np.array([r["n_candidates"] for r in rows], dtype=np.int64),
        "candidates": [kept[r["candidates"]] for r in rows],
    }
