"""The bf16 screen: its error bound on adversarial data, the superset it keeps, and engine equality."""

import numpy as np
import pytest

from seeing_sound.retrieval import candidate_sets, match
from seeing_sound.retrieval.algorithm import DEFAULT_BUDGET, PreparedPool, _canonical, superset_cap
from seeing_sound.retrieval.reference import naive_match
from seeing_sound.retrieval.scores import unit_query
from seeing_sound.retrieval.search import AUTO_BF16_MIN_ROWS, cpu_engine, resolve_engine

screen = pytest.importorskip("seeing_sound.retrieval.screen")
torch = pytest.importorskip("torch")

FIELDS = ("index", "cosine", "score", "threshold", "n_candidates")


def _same(m, ref):
    for f in FIELDS:
        assert np.array_equal(getattr(m, f), ref[f]), f


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _families(rng, d=64):
    """Adversarial (name, pool, queries) sets for the bound and the superset."""
    out = []
    pool = _unit(rng.standard_normal((3000, d)))
    out.append(("random", pool, _unit(pool[:40] + 0.3 * rng.standard_normal((40, d)) / np.sqrt(d))))
    centers = _unit(rng.standard_normal((12, d)))
    clustered = _unit(centers[rng.integers(0, 12, 3000)] + 0.004 * rng.standard_normal((3000, d)))
    out.append(
        ("clustered (scores near 1, near-ties)", clustered, _unit(centers + 1e-3 * rng.standard_normal((12, d))))
    )
    dup = np.repeat(_unit(rng.standard_normal((30, d))), 100, axis=0)
    out.append(("duplicates, queries = rows", dup, dup[::250].copy()))
    spiky = rng.standard_normal((2000, d)).astype(np.float32) * 1e-20
    spiky[:, 0] = 1.0
    spiky[::2, 1] = 1e-3
    out.append(("one big coordinate, the rest ~1e-20 (underflow)", spiky, spiky[:20].copy()))
    slack = pool * (1 + rng.uniform(-9e-4, 9e-4, (3000, 1))).astype(np.float32)
    out.append(("norms within 1e-3 of 1 (searched in place)", slack, pool[:30].copy()))
    out.append(("unnormalised (unit copy)", pool * rng.uniform(0.1, 30, (3000, 1)).astype(np.float32), pool[5:35]))
    neg = -np.abs(rng.standard_normal((2000, d))).astype(np.float32) - 0.1
    out.append(("anti-aligned (all scores negative)", neg, np.abs(rng.standard_normal((20, d))).astype(np.float32)))
    return out


FAMILIES = _families(np.random.default_rng(2024))
IDS = [f[0] for f in FAMILIES]


def _screened_and_canonical(pool, queries):
    P = PreparedPool(pool)
    sp = screen.ScreenPool(P.search, "cpu")
    qu = unit_query(queries.astype(np.float32))
    qb, e0 = sp.query_bound(qu, P.slack)
    s = torch.mm(qb, sp.x[: len(P)].T).to(torch.float64).numpy()
    return P, sp, qu, s, e0, _canonical(qu, P, None, DEFAULT_BUDGET)


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_screen_error_is_within_the_bound(family):
    _, pool, queries = family
    P, _, _, s, e0, c = _screened_and_canonical(pool, queries)
    err = np.abs(s - c)
    bound = e0[:, None] + screen.RHO * np.abs(s)
    assert (err <= bound).all(), float((err / bound).max())
    # the measured bound is never above the a-priori worst case (plus the pool's norm slack)
    assert (e0 <= screen.a_priori_eps(pool.shape[1], score=0.0) + P.slack * 1.0001).all()


def test_bound_is_tight_on_worst_case_rounding():
    # Steps 1-4 of the derivation on raw vectors whose every coordinate sits just below a bf16
    # rounding midpoint, 2**-3 (1 + 2**-8 - 2**-14): all round down, coherently, so q~.x~ misses q.x
    # by ~2u |q||x| -- the a-priori worst case -- and the bound (measured |dq|, |dx|, float32
    # accumulation, output rounding) holds with little room.
    d = 64
    signs = np.sign(np.random.default_rng(0).standard_normal((256, d)))
    x = signs * 2.0**-3 * (1 + 2.0**-8 - 2.0**-14)
    q = x[:16]
    qb, xb = torch.from_numpy(q).to(torch.bfloat16), torch.from_numpy(x).to(torch.bfloat16)
    s = torch.mm(qb, xb.T).to(torch.float64).numpy()
    q_, x_ = qb.to(torch.float64).numpy(), xb.to(torch.float64).numpy()
    norm = lambda v: np.linalg.norm(v, axis=1)  # noqa: E731
    bound = (
        norm(q_ - q)[:, None] * norm(x_)[None]
        + norm(q)[:, None] * norm(x - x_)[None]
        + screen.gamma(d) * norm(q_)[:, None] * norm(x_)[None]
        + screen.RHO * np.abs(s)
    )
    err = np.abs(s - q @ x.T)
    assert (err <= bound).all()
    assert err.max() > 1.9 * 2.0**-8  # ~2u: as far off as bf16 inputs can be
    assert (err / bound).max() > 0.45  # the bound is within ~2x of the worst error


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
@pytest.mark.parametrize("k", [1, 10, 100])
def test_superset_holds_every_canonical_top_k_row(family, k):
    _, pool, queries = family
    P = PreparedPool(pool)
    sp = P.screen_pool("cpu")
    qu = unit_query(queries.astype(np.float32))
    res = screen.screen(qu, sp, k, cap=len(P), slack=P.slack)
    c = _canonical(qu, P, None, DEFAULT_BUDGET)
    for i in range(len(qu)):
        assert not res.overflow[i]
        kept = np.zeros(len(P), bool)
        kept[res.rows[res.offsets[i] : res.offsets[i + 1]]] = True
        kth = np.sort(c[i])[::-1][k - 1]
        assert kept[c[i] >= kth].all()  # the top k with every tie of the k-th score
        assert (c[i][~kept] < res.t_lo[i]).all()  # the bound used by the settling check


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_bf16_engine_equals_printed_algorithm_on_adversarial_pools(family):
    _, pool, queries = family
    seeds = np.arange(len(queries), dtype=np.uint64) * np.uint64(7919)
    for k in (1, 10, 100):
        for ssr in (True, False):
            stats: dict = {}
            m = match(queries, pool, k, seeds=seeds, ssr=ssr, engine="bf16", stats=stats)
            _same(m, naive_match(queries, pool, k, seeds=seeds, ssr=ssr))
            assert stats["engine"] == "bf16"
            assert stats["screened"] + stats["fallback"] == len(np.unique(queries, axis=0))


def test_near_ties_inside_the_bound_are_all_rescored():
    # 300 rows whose cosines to the query differ by 1e-5 (far below the bf16 resolution) around rank k,
    # above a random floor: the screen cannot order them, the superset must keep all, rescoring orders them.
    rng = np.random.default_rng(3)
    d = 32
    q = np.zeros((1, d))
    q[0, 0] = 1
    cos = np.concatenate([0.6 + 1e-5 * rng.permutation(300), rng.uniform(-0.3, 0.55, 5000)])
    rest = _unit(rng.standard_normal((cos.size, d - 1))) * np.sqrt(1 - cos**2)[:, None]
    pool = np.concatenate([cos[:, None], rest], axis=1).astype(np.float32)
    queries = q.astype(np.float32)
    for k in (5, 50, 299, 301):
        stats: dict = {}
        m = match(queries, pool, k, seeds=np.array([11], np.uint64), engine="bf16", stats=stats)
        _same(m, naive_match(queries, pool, k, seeds=np.array([11], np.uint64)))
        assert stats["screened"] == 1 and stats["superset"][0] >= 300


def test_pathological_ties_fall_back_to_the_exact_path():
    # 6000 identical rows: every screened score ties, the superset would be the whole pool (> cap).
    rng = np.random.default_rng(4)
    pool = np.concatenate([np.repeat(_unit(rng.standard_normal((1, 8))), 6000, 0), _unit(rng.standard_normal((50, 8)))])
    queries = np.concatenate([pool[:1], _unit(rng.standard_normal((3, 8)))]).astype(np.float32)
    assert superset_cap(10) < 6000
    seeds = np.arange(4, dtype=np.uint64)
    stats: dict = {}
    m = match(queries, pool, 10, seeds=seeds, engine="bf16", stats=stats)
    _same(m, naive_match(queries, pool, 10, seeds=seeds))
    assert stats["fallback"] >= 1 and m.n_candidates[0] == 6000


def test_many_tiles_and_batches_give_the_same_bits(monkeypatch):
    # Small tiles and odd batches exercise the running threshold across tiles and the padding.
    rng = np.random.default_rng(8)
    pool = _unit(rng.standard_normal((3001, 24)))
    pool[700:760] = pool[699]  # duplicates straddling rank k
    queries = np.concatenate([_unit(rng.standard_normal((40, 24))), pool[699:700] + 1e-3]).astype(np.float32)
    seeds = np.arange(len(queries), dtype=np.uint64)
    monkeypatch.setattr(screen, "CPU_TILE", 256)
    monkeypatch.setattr(screen, "CPU_BATCH", 7)
    for k in (1, 10, 64, 100):  # k = 64, 100 > 256 / 16: ungrouped screening
        stats: dict = {}
        _same(
            match(queries, pool, k, seeds=seeds, engine="bf16", stats=stats), naive_match(queries, pool, k, seeds=seeds)
        )
        assert stats["screened"] > 0


def test_screen_pool_is_made_once_per_prepared_pool():
    rng = np.random.default_rng(1)
    P = PreparedPool(_unit(rng.standard_normal((500, 16))))
    q = _unit(rng.standard_normal((5, 16)))
    candidate_sets(q, P, 5, engine="bf16")
    first = P.screen_pool("cpu")
    candidate_sets(q, P, 5, engine="bf16")
    assert P.screen_pool("cpu") is first


def test_kernel_check_and_auto_engine():
    if screen.bf16_fast("cpu"):
        assert screen.check_kernel("cpu", 512, 4096, 64)
        assert resolve_engine("auto", "cpu", rows=AUTO_BF16_MIN_ROWS) == "bf16"
    else:
        assert resolve_engine("auto", "cpu", rows=AUTO_BF16_MIN_ROWS) == cpu_engine()
    assert resolve_engine("auto", "cpu", rows=100) == cpu_engine()  # small pools: no bf16 copy
    assert resolve_engine("torch") == "torch" and resolve_engine("bf16") == "bf16"


def test_device_arguments_name_themselves():
    pool, q = np.eye(3, 4, dtype=np.float32), np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match="device must be"):
        match(q, pool, 2, seeds=np.arange(2, dtype=np.uint64), device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            match(q, pool, 2, seeds=np.arange(2, dtype=np.uint64), device="cuda")
    else:
        with pytest.raises(ValueError, match="CPU only"):
            match(q, pool, 2, seeds=np.arange(2, dtype=np.uint64), device="cuda", engine="numpy")


_NO_TORCH = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch blocked")
sys.meta_path.insert(0, Block())
import numpy as np
from seeing_sound.retrieval.algorithm import match
rng = np.random.default_rng(0)
pool = rng.standard_normal((20000, 8)).astype(np.float32)
q = rng.standard_normal((3, 8)).astype(np.float32)
stats = {}
m = match(q, pool, 5, seeds=np.arange(3, dtype=np.uint64), stats=stats)
try:
    match(q, pool, 5, seeds=np.arange(3, dtype=np.uint64), engine="bf16")
    raise SystemExit("bf16 without torch should fail")
except ValueError as e:
    assert "needs torch" in str(e), e
print(stats["engine"], "torch" in sys.modules)
"""

_LAZY = """
import sys
import numpy as np
from seeing_sound.retrieval.algorithm import match
assert "torch" not in sys.modules
match(np.ones((2, 4), np.float32), np.eye(4, dtype=np.float32), 2, seeds=np.arange(2, dtype=np.uint64), engine="numpy")
print("torch" in sys.modules)
"""


def test_retrieval_maths_runs_without_torch(fresh_python):
    engine, imported = fresh_python(_NO_TORCH).split()
    assert engine in ("faiss", "numpy") and imported == "False"
    assert fresh_python(_LAZY).strip() == "False"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_screen_equals_printed_algorithm():
    rng = np.random.default_rng(6)
    for name, pool, queries in FAMILIES:
        seeds = np.arange(len(queries), dtype=np.uint64)
        for k in (1, 10, 100):
            stats: dict = {}
            m = match(queries, pool, k, seeds=seeds, engine="auto", device="cuda", stats=stats)
            _same(m, naive_match(queries, pool, k, seeds=seeds))
            assert stats["engine"] == "bf16", name
            _same(
                match(queries, pool, k, seeds=seeds, engine="torch", device="cuda"),
                naive_match(queries, pool, k, seeds=seeds),
            )
    assert rng is not None


@pytest.mark.parametrize(
    "bf16_s,torch_s,cpu_s,expected",
    [(10.0, 5.0, 1.0, "cpu"), (1.0, 10.0, 10.0, "bf16"), (10.0, 1.0, 5.0, "torch")],
)
def test_auto_calibrates_on_avx512_bf16_without_amx(monkeypatch, caplog, bf16_s, torch_s, cpu_s, expected):
    """Without AMX, ``auto`` times the bf16 screen, torch float32 and faiss/numpy on one batch and keeps the
    fastest, once per pool and k; whichever it keeps, every result equals the exact path's."""
    import logging

    from seeing_sound.retrieval import algorithm, kernel

    monkeypatch.setattr(algorithm, "cpu_has_amx", lambda: False)
    monkeypatch.setattr(kernel, "bf16_fast", lambda device="cpu": True)
    monkeypatch.setattr(screen, "bf16_fast", lambda device="cpu": True)
    ticks = iter([0.0, bf16_s, 0.0, torch_s, 0.0, cpu_s])  # start/end of the bf16, torch and cpu runs

    class Clock:
        @staticmethod
        def perf_counter():
            return next(ticks)

    monkeypatch.setattr(algorithm, "time", Clock)
    rng = np.random.default_rng(3)
    P = PreparedPool(_unit(rng.standard_normal((AUTO_BF16_MIN_ROWS, 16))))
    q = _unit(rng.standard_normal((300, 16)))
    caplog.set_level(logging.INFO, logger="seeing_sound.retrieval.algorithm")
    stats: dict = {}
    got = candidate_sets(q, P, 10, engine="auto", stats=stats)
    want = cpu_engine() if expected == "cpu" else expected
    assert stats["engine"] == want and P.engine_choice == {("auto", 4): want}
    assert caplog.text.count("calibration batch") == 1 and f"auto -> {want}" in caplog.text
    again: dict = {}
    candidate_sets(q[:100], P, 12, engine="auto", stats=again)  # same k bucket: decided, no clock read
    assert again["engine"] == want and caplog.text.count("calibration batch") == 1
    exact = candidate_sets(q, P, 10, engine=cpu_engine())
    for a, b in zip(got.rows, exact.rows, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.threshold, exact.threshold)
