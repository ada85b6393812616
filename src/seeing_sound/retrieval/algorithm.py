"""Algorithm 1 of the paper at scale: exact, blocked, deterministic.

Printed algorithm, for one query q against pool embeddings p (N rows)::

    t  <- CosSim(q, p)                 # N scores
    t  <- sign(t) * sqrt(|t|)          # SSR (skipped with ssr=False)
    lb <- mean(topk(t))
    I  <- argwhere(t > lb)
    i  <- choice(I)

**Why top-k is enough.** Let t_(1) >= ... >= t_(k) be the k largest scores. Their mean lb
is >= t_(k), the smallest of them. So t_i > lb implies t_i > t_(k): every index in I is
among the k largest, *whatever* order a top-k routine gives to ties (a tie with t_(k)
cannot exceed lb). The multiset {t_(1..k)}, hence lb, is also unique under ties. An exact
top-k search therefore yields exactly the printed candidate set; the other N - k scores
never need to be sorted. (In floating point the mean of k *equal* top scores can round an
ulp below them, and then ``t > lb`` also admits rows tied with them past rank k; the
search below widens until it holds every such tie, so even this case matches the
printed algorithm run in numpy bit for bit.)

**Empty I.** When no score is strictly above lb (k = 1, or all k top scores equal), we
choose uniformly among *all* indices with the maximal score (which may be more than k
when ties extend past rank k); this is what ``argwhere(t == max(t))`` gives, and it keeps
the choice independent of how a top-k routine breaks ties.

**Exactness at float precision.** A fast float32 engine (BLAS or faiss) proposes the k'
best rows (k' = k + margin); they are rescored with the canonical float64 ``cos_sim``
(:mod:`seeing_sound.retrieval.scores`). A float32 dot product of unit vectors is within
``eps = (D + 8) * 2**-24`` (plus norm slack) of the exact value, so every row *not*
proposed has canonical score <= f_min + eps, where f_min is the lowest proposed float32
score. If ssr(f_min + eps) is below the k-th canonical score and not above lb, the
proposals provably contain the canonical top-k, every maximal row and every row above lb;
otherwise the query is searched again with k' x 4
(at k' >= N the whole pool is scored canonically). Results are bit-identical to the
reference (:mod:`seeing_sound.retrieval.reference`) for any engine, block size or thread
count.

**Beyond the float32 floor: the bf16 screen** (``engine='bf16'``, the default where torch runs
bf16 matmuls fast). Every pool row is scored in bf16 with float32 accumulation, with a proven
per-query bound ``|s - c| <= e0 + rho |s|`` on the screened score s against the canonical c
(derivation in :mod:`seeing_sound.retrieval.screen`). Every row screened at least
``~ L - 2 eps`` (L the k-th screened score) is kept: a proven superset of the canonical top-k
with all its ties. The superset is rescored canonically and must pass the same settling
condition as above (``ssr(T_lo)`` below the k-th canonical score and not above lb, T_lo an upper
bound on every left-out row's cosine); then the code below decides I, lb and the choice exactly as
for the other engines. A query whose superset exceeds ``max(16 k, 4096)`` rows, or that does not
settle, is searched again by the exact float32 path.

This module is the batched search driver (:func:`candidate_sets`, :func:`match`); the result types
(:class:`Matches`, :class:`Candidates` and the draw) live in :mod:`seeing_sound.retrieval.candidates`,
the input checks, :class:`PreparedPool` and canonical rescoring in :mod:`seeing_sound.retrieval.prepared`;
both are re-exported here.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from seeing_sound.retrieval.candidates import Candidates, Matches
from seeing_sound.retrieval.kernel import cpu_has_amx
from seeing_sound.retrieval.prepared import PreparedPool, _as_matrix, _canonical, _check_norms, check_k
from seeing_sound.retrieval.scores import U32, top_mean, unit_query
from seeing_sound.retrieval.scores import ssr as ssr_fn
from seeing_sound.retrieval.search import cpu_engine, propose, resolve_engine

log = logging.getLogger(__name__)

DEFAULT_BUDGET = 2 * 1024**3  # bytes of scratch memory, on top of the pool itself
_RESCORE_GROUP = 64  # screened queries rescored together (sorted by superset size: little padding)


def superset_cap(k: int) -> int:
    """Largest bf16 superset rescored for one query; beyond it the query takes the exact float32 path."""
    return max(16 * int(k), 4096)


def candidate_sets(
    queries,
    pool,
    k: int,
    *,
    ssr: bool = True,
    exclude=None,
    engine: str = "auto",
    memory_budget: int = DEFAULT_BUDGET,
    proposer=None,
    device: str | None = None,
    stats: dict | None = None,
) -> Candidates:
    """Lines 4-7 of Algorithm 1 for every query: its candidate set I, threshold and scores.

    ``queries`` float (Q, D); ``pool`` float (N, D), or a :class:`PreparedPool` (then
    ``exclude`` must be None: it was applied when the pool was prepared). Rows of I are rows
    of ``pool``. ``engine``/``device``: see :func:`match`. ``stats``, a dict, receives
    ``engine`` (the one that ran), ``screened`` (queries the bf16 screen settled), ``superset``
    int64 sizes of their supersets, and ``fallback`` (queries searched by the exact float32 path).
    ``proposer(q32 (b, D), k') -> (scores (b, k'), rows (b, k'))`` replaces the exact engine
    with an approximate index (faiss IVF/HNSW): proposals are still rescored canonically,
    but nothing proves that they hold the true top-k, so results are approximate.
    """
    q = _as_matrix(queries, "queries")
    if q.shape[0] == 0:
        return Candidates([], [], [], np.zeros(0))
    check_k(k)
    if memory_budget < 1 << 20:
        raise ValueError(f"memory_budget must be at least 1 MiB, got {memory_budget}")
    from seeing_sound.retrieval.screen import resolve_device

    dev = resolve_device(device)
    qn = np.sqrt(np.sum(q.astype(np.float64) ** 2, axis=1))
    _check_norms(qn, "queries")
    if isinstance(pool, PreparedPool):
        if exclude is not None:
            raise ValueError("exclude applies when a PreparedPool is made; pass it to PreparedPool(pool, exclude)")
        P = pool
    else:
        P = PreparedPool(pool, exclude, q.shape[1])
    if P.rows.shape[1] != q.shape[1]:
        raise ValueError(f"pool has dimension {P.rows.shape[1]} but queries have {q.shape[1]}")
    n, d, k = len(P), q.shape[1], int(min(k, len(P)))
    requested, engine = engine, resolve_engine(engine, dev, rows=n)
    if requested == "auto" and engine == "bf16" and proposer is None and dev == "cpu" and not cpu_has_amx():
        engine = _calibrated(P, qu_sample=unit_query(q), k=k, ssr=ssr, budget=memory_budget)
    qu = unit_query(q)
    q32 = qu.astype(np.float32)
    max_q = float(np.sqrt(np.sum(q32.astype(np.float64) ** 2, axis=1)).max())
    eps = 2.0 * (d + 8) * U32 * max_q * P.max_norm + P.slack + 1e-12
    transform = ssr_fn if ssr else (lambda x: x)
    pool_block = 65536
    rows_out: list = [None] * q.shape[0]
    cos_out: list = [None] * q.shape[0]
    sc_out: list = [None] * q.shape[0]
    thr = np.empty(q.shape[0], dtype=np.float64)

    def finish(qids: np.ndarray, c: np.ndarray, idx: np.ndarray) -> None:
        s = transform(c)
        s_desc = -np.sort(-s, axis=1)
        lb = top_mean(s_desc, k)
        mask = s > lb[:, None]
        empty = ~mask.any(axis=1)
        mask[empty] = s[empty] == s_desc[empty, :1]
        for j, qi in enumerate(qids):
            sel = np.flatnonzero(mask[j])
            order = np.argsort(idx[j, sel], kind="stable")
            sel = sel[order]
            rows_out[qi], cos_out[qi], sc_out[qi] = P.original(idx[j, sel]), c[j, sel], s[j, sel]
            thr[qi] = lb[j]

    pending = np.arange(q.shape[0])
    kp = min(n, k + max(8, k // 16))
    sizes = np.zeros(0, np.int64)
    if stats is not None:
        stats.update(engine=engine, screened=0, superset=sizes, fallback=0)
    if engine == "bf16" and proposer is None and kp < n:
        pending, sizes = _screen_and_rescore(qu, P, k, dev, transform, finish, memory_budget)
        engine = "torch" if dev != "cpu" else cpu_engine()  # the exact float32 path for what is left
        if stats is not None:
            stats.update(screened=int(sizes.size), superset=sizes, fallback=int(pending.size))
    if engine == "bf16":  # tiny pools (k' >= N) and approximate proposers: nothing to screen
        engine = cpu_engine() if dev == "cpu" else "torch"
    p_dev = P.torch_rows(dev) if engine == "torch" and pending.size and kp < n else None
    while pending.size:
        if kp >= n:  # the whole pool, canonically: small pools, or proposals that never settled
            per_query = max(1, n * (24 * d + 40))
            step = max(1, memory_budget // per_query)
            for s0 in range(0, pending.size, step):
                part = pending[s0 : s0 + step]
                idx = np.broadcast_to(np.arange(n), (part.size, n))
                finish(part, _canonical(qu[part], P, None, memory_budget), idx)
            break
        per_query = max(kp * d * 24, (pool_block + kp) * 24 if engine == "numpy" else kp * 16)
        step = max(1, min(4096, memory_budget // per_query))
        unsettled = []
        for s0 in range(0, pending.size, step):
            part = pending[s0 : s0 + step]
            if proposer is None:
                f, idx = propose(q32[part], P.search, kp, engine=engine, pool_block=pool_block, device=dev, p_dev=p_dev)
            else:
                f, idx = proposer(q32[part], kp)
            c = _canonical(qu[part], P, idx, memory_budget)
            s_desc = -np.sort(-transform(c), axis=1)
            bound = transform(f.min(axis=1).astype(np.float64) + eps)  # >= every unproposed row's score
            # Settled when no unproposed row can reach the top k, the maximum, or the (rounded) mean lb.
            ok = (bound < s_desc[:, k - 1]) & (bound <= top_mean(s_desc, k))
            if proposer is not None:  # approximate: no proof possible, accept the proposals
                ok[:] = True
            if ok.any():
                finish(part[ok], c[ok], idx[ok])
            unsettled.append(part[~ok])
        pending = np.concatenate(unsettled)
        if pending.size:
            log.debug("%d queries not settled with k'=%d; widening", pending.size, kp)
        kp = min(n, kp * 4)
    return Candidates(rows_out, cos_out, sc_out, thr)


#: queries of the calibration batch ``auto`` times both CPU engines on (results are equal either way)
CALIBRATION_QUERIES = 256


def _calibrated(P: PreparedPool, *, qu_sample: np.ndarray, k: int, ssr: bool, budget: int) -> str:
    """``auto`` on a CPU with AVX512-BF16 but no AMX: the bf16 screen's bookkeeping can cost more than
    its faster matmul saves, and torch's float32 matmul can beat faiss, so time the three exact engines
    (bf16 screen, torch float32, faiss/numpy) on one batch of these queries, each warmed up first (its
    copy of the pool made, its kernel probed), and keep the fastest for this pool and k. All are exact:
    the choice never changes a result. Decided once per (pool, k bucket) and logged once."""
    key = ("auto", int(k).bit_length())
    choice = P.engine_choice.get(key)
    if choice is not None:
        return choice
    sample = qu_sample[:CALIBRATION_QUERIES]
    if sample.shape[0] < min(CALIBRATION_QUERIES, 64):  # too few queries to time: the screen, as before
        return "bf16"
    timings = {}
    for name in ("bf16", "torch", cpu_engine()):
        candidate_sets(sample[:8], P, k, ssr=ssr, engine=name, memory_budget=budget)  # one-time costs
        t0 = time.perf_counter()
        candidate_sets(sample, P, k, ssr=ssr, engine=name, memory_budget=budget)
        timings[name] = time.perf_counter() - t0
    choice = min(timings, key=lambda e: timings[e])
    others = ", ".join(
        f"{timings[e] / max(timings[choice], 1e-9):.2f}x the time for {e}" for e in timings if e != choice
    )
    log.info("retrieval engine auto -> %s (%s) on a %d-query calibration batch (k=%d, %d rows; AVX512-BF16, no AMX)",
             choice, others, sample.shape[0], k, len(P))  # fmt: skip
    P.engine_choice[key] = choice
    return choice


def _screen_and_rescore(qu, P: PreparedPool, k: int, dev: str, transform, finish, budget: int):
    """The bf16 engine: screen, rescore each superset canonically, settle; returns (unsettled, sizes).

    ``finish(qids, c, idx)`` is the exact candidate/threshold step of :func:`candidate_sets`.
    Superset rows are padded (repeating a real row, scored -inf) to a rectangle per group of
    queries of similar superset size; -inf never enters the top k, lb, I or the maximum.
    """
    from seeing_sound.retrieval import screen as scr

    sp = P.screen_pool(dev)
    if not scr.check_kernel(dev, sp.batch, sp.tile, sp.d):
        return np.arange(qu.shape[0]), np.zeros(0, np.int64)
    res = scr.screen(qu, sp, k, cap=superset_cap(k), slack=P.slack)
    sizes = res.sizes()
    todo = np.flatnonzero(~res.overflow)
    todo = todo[np.argsort(sizes[todo], kind="stable")]
    unsettled = [np.flatnonzero(res.overflow)]
    for g0 in range(0, todo.size, _RESCORE_GROUP):
        grp = todo[g0 : g0 + _RESCORE_GROUP]
        m = int(sizes[grp].max())
        col = np.arange(m)
        pad = col[None, :] >= sizes[grp][:, None]
        src = res.offsets[grp][:, None] + np.where(pad, 0, col[None, :])
        idx = res.rows[src]
        c = _canonical(qu[grp], P, idx, budget)
        c[pad] = -np.inf
        s_desc = -np.sort(-transform(c), axis=1)
        bound = transform(res.t_lo[grp])  # >= the score of every row the screen left out
        ok = (bound < s_desc[:, k - 1]) & (bound <= top_mean(s_desc, k))
        if ok.any():
            finish(grp[ok], c[ok], idx[ok])
        unsettled.append(grp[~ok])
    pending = np.sort(np.concatenate(unsettled))
    if pending.size:
        log.debug("%d of %d queries left to the exact float32 path after the bf16 screen", pending.size, qu.shape[0])
    return pending, sizes[~res.overflow]


def match(
    queries,
    pool,
    k: int,
    *,
    ssr: bool = True,
    seeds=None,
    exclude=None,
    engine: str = "auto",
    memory_budget: int = DEFAULT_BUDGET,
    device: str | None = None,
    stats: dict | None = None,
) -> Matches:
    """Algorithm 1 for Q queries at once: one pool row per query.

    ``queries`` float (Q, D) and ``pool`` float (N, D) embeddings (any norm; zero rows are
    refused); ``k`` >= 1 (k > N means all N); ``seeds`` uint64 (Q,), one random stream per
    query (see :func:`seeing_sound.retrieval.concept_seed`); ``exclude`` a bool mask (N,) or
    row indices never to return. ``engine`` changes speed only, never the result: 'bf16' (bf16
    screen + canonical rescoring, torch), 'torch' (float32 torch proposals), 'faiss', 'numpy';
    'auto' is 'bf16' where torch has fast bf16 matmuls (AMX / AVX512-BF16 CPUs, CUDA) and the
    pool has at least 16,384 rows, else faiss (numpy without it). ``device`` 'cpu' (default),
    'cuda[:N]' or 'auto' is where the torch engines run; canonical rescoring is always float64
    numpy. ``stats``: see :func:`candidate_sets`. Identical query rows are searched once.
    Returns :class:`Matches` with arrays of length Q.
    """
    q = _as_matrix(queries, "queries")
    if seeds is None:
        raise ValueError("seeds is required: one uint64 per query (e.g. concept_seed(seed, image_id, index))")
    seeds_arr = np.asarray(seeds)
    if seeds_arr.shape != (q.shape[0],) or not np.issubdtype(seeds_arr.dtype, np.integer):
        raise ValueError(f"seeds must be integers of shape ({q.shape[0]},), got {seeds_arr.dtype} {seeds_arr.shape}")
    if seeds_arr.dtype.kind == "i" and seeds_arr.size and seeds_arr.min() < 0:
        raise ValueError(f"seeds must be non-negative, got {int(seeds_arr.min())}")
    uniq, inverse = np.unique(q, axis=0, return_inverse=True) if q.shape[0] else (q, np.zeros(0, np.int64))
    cands = candidate_sets(
        uniq, pool, k, ssr=ssr, exclude=exclude, engine=engine, memory_budget=memory_budget, device=device, stats=stats
    )
    return cands.draw(inverse.reshape(-1), seeds_arr.astype(np.uint64))
