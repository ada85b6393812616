"""Exact top-k at bf16 speed: screen every pool row in bf16, keep a proven superset, rescore it canonically.

This module holds the screening search; together with :mod:`seeing_sound.retrieval.kernel` (the
bound's constants, device and bf16 capability checks, the kernel probe, all re-exported here) it holds
everything that needs torch (imported lazily: the retrieval maths imports without it).
:func:`seeing_sound.retrieval.algorithm.candidate_sets` with ``engine="bf16"`` calls :func:`screen` and
then rescores the superset it returns with the canonical float64 ``cos_sim``; the result is
bit-identical to every other engine.

**The screening error bound.** Notation, for one query and one pool row:

- ``q`` the float64 unit query (``unit_query``), ``x`` the float32 search row of the pool
  (``PreparedPool.search``: the row itself when its norm is within ``slack`` of 1, else a float32 unit
  copy), ``c`` the canonical score ``cos_sim`` (float64), ``r = q . p / |p|`` its exact real value;
- ``q~ = bf16(q)``, ``x~ = bf16(x)``, ``dq = q~ - q``, ``dx = x~ - x``;
- ``a`` the float32-accumulated dot product ``q~ . x~`` as the kernel computes it, ``s`` the screened
  score it returns (torch's CPU ``mm`` on bf16 returns bf16: oneDNN/AMX accumulates in float32 and
  rounds once at the end, see below).

Model: every floating-point operation of the kernel is *faithfully* rounded (error below one ulp:
true for round-to-nearest, towards zero or truncation), in any order of summation. bf16 has an 8-bit
significand (unit roundoff ``u = 2**-8`` for round-to-nearest, one ulp ``<= 2**-7 |v|``), float32 a
24-bit one (one ulp ``<= 2**-23 |v|``). Then

1. *Input rounding* (exact identity, then Cauchy-Schwarz):
   ``q~.x~ - q.x = dq.x~ + q.dx``, so ``|q~.x~ - q.x| <= |dq| |x~| + |q| |dx|``. The norms ``|dq|``,
   ``|dx|`` are *measured* (per query, and the maximum over the pool), not assumed. A priori, with
   round-to-nearest, ``|dq| <= u |q|`` and ``|x~| <= (1 + u) |x|``, which gives the textbook
   ``(2u + u**2) |q| |x|``; the measured norms are typically 2-3x smaller (rounding errors of 512
   coordinates are not all maximal) and just as rigorous.
2. *Products*: a bf16 x bf16 product has at most 16 significant bits, so it is exact in float32
   (barring underflow below ``2**-126``, flushed or not: at most ``2**-125`` per term).
3. *Accumulation* in float32 of the D exact products, any order or blocking, faithful rounding:
   ``|a - q~.x~| <= gamma_D sum_j |q~_j x~_j| <= gamma_D |q~| |x~|`` with ``gamma_D = D v / (1 - D v)``,
   ``v = 2**-23`` (Higham, Thm 3.1/Lemma 3.1 with faithful instead of nearest rounding), plus the
   underflow term ``D 2**-125``.
4. *Output rounding* to bf16 (faithful): ``|s - a| <= 2**-7 |a|``, hence ``|s - a| <= rho |s|`` with
   ``rho = 2**-7 / (1 - 2**-7)``; plus ``2**-125`` for underflow.
5. *Search view vs canonical*: ``|q.x - r| <= |q| (slack + 2**-23)`` (in place: ``x = p`` and
   ``q.p - r = r (|p| - 1)``; a unit copy: each coordinate rounded once to float32), and the canonical
   float64 evaluation ``|c - r| <= (4D + 64) 2**-53`` (products, pairwise sum, norm and division,
   generously).

Altogether ``|s - c| <= e0 + rho |s|`` with, per query,
``e0 = |dq| max|x~| + |q| max|dx| + gamma_D |q~| max|x~| + |q| (slack + 2**-23) + (4D + 64) 2**-53 + (D + 2) 2**-125``
(inflated by ``1 + 2**-30`` for the float64 evaluation of the bound itself). On 512-d unit vectors this
is ~3.3e-3 + 7.8e-3 |s| (a priori worst case ``~7.9e-3 + 7.8e-3 |s|``, :func:`a_priori_eps`).

**The superset.** Let ``L`` be the k-th largest screened score and ``T`` the k-th largest canonical
score. The k rows screened ``>= L`` have ``c >= s - e0 - rho |s| >= L - e0 - rho |L|`` (``s - rho |s|``
is increasing), so ``T >= T_lo := L - e0 - rho |L|``. A row with ``c >= T`` has
``s + rho |s| >= c - e0 >= T_lo - e0``; ``s + rho |s|`` is increasing, so ``s >= thr := g^-1(T_lo - e0)``
with ``g(s) = s + rho |s|``. Every row screened below ``thr`` therefore has canonical ``c < T_lo <= T``:
the rows screened ``>= thr`` (about "``>= L - 2 eps``") hold the whole canonical top-k with all its ties.
``candidate_sets`` rescores them canonically, checks ``ssr(T_lo) < t_(k)`` and ``ssr(T_lo) <= lb``
(the same settling condition as the float32 engines: no row outside can reach the top k, the maximum or
the rounded mean), and runs the exact candidate/threshold/choice code on them. A query whose superset
would exceed ``cap`` rows (pathological ties: duplicates, a constant pool) or that does not settle goes
to the exact float32 path instead, never to an approximation.

**How it is computed.** Pool tiles of ``tile`` rows (the pool is padded to a multiple, padding scored
``-inf``), ``batch`` queries at a time (padded with zero rows), so every ``mm`` has one shape, the one
:func:`check_kernel` probed. Per tile: ``s = mm(q~, x~_tile^T)`` in bf16; the maxima of strided groups
of ``g`` columns; the k-th largest group maximum seen so far is a lower bound on ``L`` (k distinct rows),
which gives a running threshold; only groups whose maximum reaches it are opened. The running
threshold only rises, so everything collected under it is a superset of the final one.

**What torch does.** On this CPU (AMX-BF16) ``torch.mm`` of two bf16 tensors returns bf16; the product
of ``[1, 2**-14, ..., 2**-14]`` and a row of ones (D = 512) is 1.03125 = bf16(1 + 511 * 2**-14), not
the 1.0 a bf16 accumulator would give, and 99.99 % of random outputs equal bf16(float64 exact) (the
rest differ by one ulp where float32 accumulation moved a value across a rounding boundary): float32
accumulation, one rounding at the end. :func:`check_kernel` re-checks this (the bound itself, on such a
pattern and on random unit vectors) at the exact shapes used, once per process, and refuses the engine
if it fails. On CUDA, cuBLAS may split K and, when
``torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction`` is on (torch's default), sum the
partial products in bf16, which step 3 does not cover; :func:`seeing_sound.precision.exact_matmul`
switches that (and TF32, through whichever of torch's two switch APIs is in use) off while the screen
runs, reads every switch back (a switch that does not hold disables the screen, never the proof), and
restores the user's settings afterwards, split-K half included. Split-K with float32 partial sums is a
change of summation order and blocking, which step 3 allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from seeing_sound.precision import exact_matmul
from seeing_sound.retrieval.kernel import RHO, TINY, V32, _torch, gamma
from seeing_sound.retrieval.kernel import U_BF16 as U_BF16
from seeing_sound.retrieval.kernel import a_priori_eps as a_priori_eps
from seeing_sound.retrieval.kernel import bf16_fast as bf16_fast
from seeing_sound.retrieval.kernel import check_kernel as check_kernel
from seeing_sound.retrieval.kernel import have_torch as have_torch
from seeing_sound.retrieval.kernel import resolve_device as resolve_device
from seeing_sound.retrieval.kernel import torch_topk as torch_topk

CPU_BATCH, CPU_TILE = 512, 65536
CUDA_BATCH, CUDA_TILE = 4096, 131072
GROUP = 16


def _round_down32(x: np.ndarray) -> np.ndarray:
    """float64 -> the largest float32 <= x (elementwise)."""
    y = x.astype(np.float32)
    return np.where(y.astype(np.float64) > x, np.nextafter(y, np.float32(-np.inf)), y)


def superset_threshold(level: np.ndarray, e0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From a (lower bound on the) k-th screened score: (``thr`` float32, ``T_lo`` float64 upper-rounded).

    ``T_lo = L - e0 - rho|L|`` bounds the k-th canonical score from below; every row screened below
    ``thr = g^-1(T_lo - e0)`` has canonical score below ``T_lo``. Both are rounded outwards.
    """
    with np.errstate(invalid="ignore"):
        t_lo = level - e0 - RHO * np.abs(level)
        y = t_lo - e0
        thr = np.where(y >= 0, y / (1 + RHO), y / (1 - RHO))
    thr = np.where(np.isnan(thr), -np.inf, thr)
    margin = 2.0**-40
    return _round_down32(thr - margin), t_lo + margin


class ScreenPool:
    """The bf16 copy of a pool's search view on one device, with the norms the bound needs.

    ``search`` float32 (N, D), the :class:`~seeing_sound.retrieval.algorithm.PreparedPool` search
    view. Rows are padded with zeros to a multiple of ``tile``. ``max_dx`` = max |bf16(x) - x|,
    ``max_xn`` = max |bf16(x)|, both upper bounds: ``bf16(x) - x`` is exact in float32 (Sterbenz: the
    two are within a factor 2), and a float32 sum of D squares is within ``gamma_D`` of its value, so
    the float32 norms are inflated by ``(1 + gamma_{D+2})``.
    """

    def __init__(self, search: np.ndarray, device: str = "cpu", tile: int | None = None, batch: int | None = None):
        torch = _torch()
        n, d = search.shape
        cuda = device.startswith("cuda")
        full_tile = tile or (CUDA_TILE if cuda else CPU_TILE)
        self.tile = int(min(full_tile, -(-n // 256) * 256))
        self.batch = int(batch or (CUDA_BATCH if cuda else CPU_BATCH))
        self.n, self.d, self.device = n, d, device
        npad = -(-n // self.tile) * self.tile
        xb = torch.zeros((npad, d), dtype=torch.bfloat16)
        max_dx2 = max_xn2 = 0.0
        for s in range(0, n, 65536):
            blk = torch.from_numpy(np.ascontiguousarray(search[s : s + 65536]))
            low = blk.to(torch.bfloat16)
            xb[s : s + blk.shape[0]] = low
            back = low.to(torch.float32)
            max_dx2 = max(max_dx2, float((back - blk).square().sum(dim=1).max()))
            max_xn2 = max(max_xn2, float(back.square().sum(dim=1).max()))
        inflate = np.sqrt(1 + gamma(d + 2, 2.0**-24)) * (1 + 2.0**-23)
        self.max_dx, self.max_xn = float(np.sqrt(max_dx2)) * inflate, float(np.sqrt(max_xn2)) * inflate
        self.x = xb.to(device) if device != "cpu" else xb

    def query_bound(self, qu: np.ndarray, slack: float) -> tuple[np.ndarray, np.ndarray]:
        """bf16 queries (torch, on the device) and ``e0`` float64 (b,) for float64 unit queries ``qu``."""
        torch = _torch()
        qb = torch.from_numpy(np.ascontiguousarray(qu)).to(torch.bfloat16)
        back = qb.to(torch.float64).numpy()
        dq = np.sqrt(np.sum((back - qu) ** 2, axis=1))
        qn = np.sqrt(np.sum(qu * qu, axis=1)) * (1 + 1e-12)
        qbn = np.sqrt(np.sum(back * back, axis=1)) * (1 + 1e-12)
        d = self.d
        e0 = (
            dq * (1 + 1e-12) * self.max_xn
            + qn * self.max_dx
            + gamma(d) * qbn * self.max_xn
            + qn * (slack + V32)
            + (4 * d + 64) * 2.0**-53
            + (d + 2) * TINY
        ) * (1 + 2.0**-30)
        return qb, e0


@dataclass(frozen=True)
class Screened:
    """Per query: the superset rows (CSR: ``rows[offsets[i]:offsets[i+1]]``), ``t_lo``, and overflow."""

    offsets: np.ndarray  # int64 (Q + 1,)
    rows: np.ndarray  # int64 (total,): rows of the search view
    t_lo: np.ndarray  # float64 (Q,): every row outside has canonical cosine < t_lo
    overflow: np.ndarray  # bool (Q,): superset over cap: use the exact path

    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)


def screen(qu: np.ndarray, pool: ScreenPool, k: int, *, cap: int, slack: float) -> Screened:
    """Screen float64 unit queries ``qu`` (Q, D) against ``pool``; see the module docstring."""
    torch = _torch()
    nq = qu.shape[0]
    offsets = [np.zeros(1, np.int64)]
    all_rows, t_lo_all, over_all = [], [], []
    total = 0
    for s0 in range(0, nq, pool.batch):
        part = qu[s0 : s0 + pool.batch]
        rows, sizes, t_lo, over = _screen_batch(torch, part, pool, k, cap, slack)
        all_rows.append(rows)
        offsets.append(total + np.cumsum(sizes))
        total += int(sizes.sum())
        t_lo_all.append(t_lo)
        over_all.append(over)
    return Screened(
        np.concatenate(offsets),
        np.concatenate(all_rows) if all_rows else np.zeros(0, np.int64),
        np.concatenate(t_lo_all) if t_lo_all else np.zeros(0),
        np.concatenate(over_all) if over_all else np.zeros(0, bool),
    )


def _kth_per_query(torch: Any, c_q, c_v, n_q: int, k: int):
    """Sort collected (query, value) pairs by query, value descending; the k-th value of each query.

    Returns (order, counts, kth) with ``kth`` -inf where a query has fewer than k values. The sort
    key ``4 q + (2 - v)`` is exact in float64 (v is a bf16 value in [-2, 2], q < 2**40).
    """
    key = c_q.to(torch.float64) * 4.0 + (2.0 - c_v.to(torch.float64))
    order = torch.argsort(key)
    counts = torch.bincount(c_q, minlength=n_q)
    starts = torch.cumsum(counts, 0) - counts
    has = counts >= k
    kth = torch.full((n_q,), float("-inf"), dtype=torch.float64, device=c_q.device)
    if bool(has.any()):
        kth[has] = c_v[order[starts[has] + k - 1]].to(torch.float64)
    return order, counts, kth


def _screen_batch(torch: Any, qu: np.ndarray, pool: ScreenPool, k: int, cap: int, slack: float):
    b, B, T, n, dev = qu.shape[0], pool.batch, pool.tile, pool.n, pool.device
    qb, e0 = pool.query_bound(qu, slack)
    e0 = np.concatenate([e0, np.zeros(B - b)])
    q_dev = torch.zeros((B, pool.d), dtype=torch.bfloat16)
    q_dev[:b] = qb
    q_dev = q_dev.to(dev)
    g = GROUP if k <= T // GROUP else 1
    ng = T // g
    dead = np.zeros(B, bool)
    dead[b:] = True  # padding queries
    over = np.zeros(B, bool)
    level = np.full(B, -np.inf)  # a lower bound on each query's k-th screened score L
    thr_np = np.full(B, -np.inf, np.float32)
    c_q = torch.zeros(0, dtype=torch.int64, device=dev)
    c_r = torch.zeros(0, dtype=torch.int64, device=dev)
    c_v = torch.zeros(0, dtype=torch.bfloat16, device=dev)
    out = torch.empty((B, T), dtype=torch.bfloat16, device=dev)

    def raise_thr(new_level: np.ndarray):
        nonlocal level, thr_np
        level = np.maximum(level, new_level)
        thr_np = np.maximum(thr_np, superset_threshold(level, e0)[0])
        thr_np[dead | over] = np.inf
        return torch.from_numpy(thr_np).to(dev)

    def group_thr(thr_f32):
        # a bf16 threshold <= thr (groups are only pre-selected with it): lowered by 2**-7 |thr|
        # before rounding, more than the bf16 rounding can add back
        t = thr_f32.to(torch.float64)
        t = torch.where(torch.isfinite(t), t - t.abs() * 2.0**-7 - 2.0**-120, t)
        return t.to(torch.bfloat16)

    with exact_matmul(torch):
        for t0 in range(0, n, T):
            torch.mm(q_dev, pool.x[t0 : t0 + T].T, out=out)
            valid = min(T, n - t0)
            if valid < T:
                out[:, valid:] = float("-inf")
            groups = out.view(B, g, ng)
            gm = groups.amax(dim=1) if g > 1 else out
            if t0 == 0:  # bootstrap: the k-th largest group maximum (k distinct rows) is <= L
                top = torch.topk(gm, min(k, ng), dim=1, sorted=False).values
                boot = top.min(dim=1).values if top.shape[1] == k else torch.full((B,), float("-inf"))
                thr = raise_thr(boot.to("cpu").to(torch.float64).numpy())
            else:
                thr = torch.from_numpy(thr_np).to(dev)
            sel = (gm >= group_thr(thr)[:, None]).nonzero()
            # each group that passes (almost always) holds a row that does: too many groups = overflow
            n_groups = torch.bincount(sel[:, 0], minlength=B).to("cpu").numpy()
            big = n_groups > cap
            if big.any():
                over |= big
                thr = raise_thr(level)
                sel = sel[~torch.from_numpy(big).to(dev)[sel[:, 0]]]
            if sel.shape[0]:
                qi, gj = sel[:, 0], sel[:, 1]
                vals = groups[qi, :, gj] if g > 1 else out[qi, gj][:, None]
                hit = (vals >= thr[qi][:, None]).nonzero()
                r, m = hit[:, 0], hit[:, 1]
                cols = gj[r] + m * ng
                ok = cols < valid
                c_q = torch.cat([c_q, qi[r][ok]])
                c_r = torch.cat([c_r, (cols + t0)[ok]])
                c_v = torch.cat([c_v, vals[r, m][ok]])
            # the k-th collected value is L over the rows seen so far: raise thr, prune, cap
            order, counts, kth = _kth_per_query(torch, c_q, c_v, B, k)
            thr = raise_thr(kth.to("cpu").numpy())
            big = counts.to("cpu").numpy() > cap
            if big.any():
                over |= big
                thr = raise_thr(level)
            c_q, c_r, c_v = c_q[order], c_r[order], c_v[order]
            alive = c_v >= thr[c_q]
            c_q, c_r, c_v = c_q[alive], c_r[alive], c_v[alive]
    # c_* are sorted by query, value descending; the k-th value of each query is exactly L
    qi, rows, vals = c_q.to("cpu").numpy(), c_r.to("cpu").numpy(), c_v.to(torch.float32).to("cpu").numpy()
    vals = vals.astype(np.float64)
    counts = np.bincount(qi, minlength=B)[:b]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    over = over[:b] | (counts < k)
    final = np.full(b, -np.inf)
    ok = ~over
    final[ok] = vals[starts[ok] + k - 1]
    thr_f, t_lo = superset_threshold(final, e0[:b])
    thr_f[over] = np.inf
    keep = vals >= thr_f.astype(np.float64)[qi]
    qi, rows = qi[keep], rows[keep]
    sizes = np.bincount(qi, minlength=b)
    return rows.astype(np.int64), sizes.astype(np.int64), t_lo, over
