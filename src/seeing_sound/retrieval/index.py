"""A pool's stored embeddings and the search index over them: exact by default, approximate on request.

Exact search is the default because Algorithm 1's threshold is the mean of the *exact*
top-k scores. For pools beyond ~10M chunks an approximate faiss index (IVF or HNSW) can be
built; its recall@k against exact search is measured on a sample when it is built.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seeing_sound.errors import SeeingSoundError
from seeing_sound.pool.layout import embeddings_root, ids_rel, vectors_rel
from seeing_sound.retrieval.algorithm import DEFAULT_BUDGET, Candidates, PreparedPool, candidate_sets

log = logging.getLogger(__name__)

INDEX_KINDS = ("exact", "ivf", "hnsw")


def list_embeddings(pool_root: str | Path) -> list[dict]:
    """``info.json`` of every finished embedding set of a pool."""
    base = Path(pool_root) / "embeddings"
    return [json.loads(p.read_text()) for p in sorted(base.glob("*/info.json"))] if base.is_dir() else []


@dataclass
class PoolEmbeddings:
    """One encoder's pool vectors: ``vectors`` float32 (n, D) for chunks ``chunk_ids`` int64 (n,)."""

    info: dict
    chunk_ids: np.ndarray
    vectors: np.ndarray


def load_embeddings(pool_root: str | Path, encoder_info=None, *, key: str | None = None) -> PoolEmbeddings:
    """Load the embeddings made by ``encoder_info`` (an :class:`EncoderInfo`), or stored under ``key``.

    Refuses, with the fix in the message, embeddings that are missing, unfinished, or made
    by another model, revision or dimension than the query encoder.
    """
    if key is None and encoder_info is None:
        raise ValueError("pass encoder_info or key")
    key = key or encoder_info.key
    root = embeddings_root(pool_root, key)
    info_path = root / "info.json"
    if not info_path.exists():
        have = ", ".join(i["key"] for i in list_embeddings(pool_root)) or "none"
        what = f"encoder={encoder_info.encoder!r} model={encoder_info.model!r}" if encoder_info else f"key {key}"
        raise SeeingSoundError(
            f"pool {pool_root} has no finished embeddings for {what} (available: {have}); "
            "embed the pool with that encoder first (seeing-sound pool embed)"
        )
    info = json.loads(info_path.read_text())
    if encoder_info is not None:
        stored = info["encoder_info"]
        for field in ("encoder", "model", "dim", "revision"):
            if stored[field] != getattr(encoder_info, field):
                raise SeeingSoundError(
                    f"pool embeddings in {root} were made with {field} {stored[field]!r} but the query encoder has "
                    f"{getattr(encoder_info, field)!r}; re-embed the pool (pool embed with overwrite=True) "
                    "or use the same model"
                )
    if info.get("pool") is not None:
        from seeing_sound.pool.embed_stage import pool_digest
        from seeing_sound.pool.store import AudioPool

        if info["pool"] != pool_digest(AudioPool.open(pool_root)):
            raise SeeingSoundError(
                f"pool embeddings in {root} were made for an earlier build of this pool (its chunks changed); "
                f"re-embed it (pool embed {pool_root} with overwrite=True)"
            )
    ids, vecs = [], []
    for shard in info["shards"]:
        ids.append(np.load(Path(pool_root) / ids_rel(key, shard["index"])))
        vecs.append(np.load(Path(pool_root) / vectors_rel(key, shard["index"]), mmap_mode="r"))
    dim = int(info["encoder_info"]["dim"])
    chunk_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    vectors = (
        np.concatenate([np.asarray(v, dtype=np.float32) for v in vecs]) if vecs else np.zeros((0, dim), np.float32)
    )
    if vectors.shape[0] == 0:
        raise SeeingSoundError(
            f"pool embeddings in {root} hold no vectors (every chunk was skipped: {info['counts']['skipped']})"
        )
    return PoolEmbeddings(info, chunk_ids, np.ascontiguousarray(vectors))


class PoolIndex:
    """Algorithm 1 over one embedding set; candidate rows are returned as pool ``chunk_id`` s.

    ``exclude``: pool ``chunk_id`` s never to retrieve (ids not in the embeddings are ignored and
    counted). Their rows are taken out before anything is searched, so every engine (exact,
    bf16 screen, faiss, numpy, torch, and the approximate indexes, which are built without them)
    runs Algorithm 1, mean(top-k) included, over the remaining rows only: the same candidates as
    a pool that never held those chunks. ``excluded`` counts the rows taken out.
    """

    def __init__(
        self,
        emb: PoolEmbeddings,
        *,
        exclude=None,
        kind: str = "exact",
        engine: str = "auto",
        memory_budget: int = DEFAULT_BUDGET,
        recall_sample: int = 256,
        seed: int = 0,
        device: str | None = None,
    ):
        if kind not in INDEX_KINDS:
            raise ValueError(f"index kind must be one of {', '.join(INDEX_KINDS)}, got {kind!r}")
        self.emb, self.kind, self.engine, self.memory_budget = emb, kind, engine, memory_budget
        self.device = device  # where the bf16/torch engines search (None: the CPU)
        self.excluded, self.exclude_unknown = 0, 0
        if exclude is not None:
            emb = self._without(emb, np.unique(np.asarray(list(exclude), dtype=np.int64)))
            self.emb = emb
        self.pool = PreparedPool(emb.vectors)
        self._ann = None
        self.recall: float | None = None
        if kind != "exact":
            self._ann = build_ann(self.pool.search, kind)
            self.recall = measure_recall(self._ann, self.pool.search, sample=recall_sample, k=10, seed=seed)
            log.warning(
                "approximate %s index over %d vectors: recall@10 = %.4f on %d sampled queries "
                "(results are approximate; the default exact index has recall 1)",
                kind,
                len(self),
                self.recall,
                min(recall_sample, len(self)),
            )

    def _without(self, emb: PoolEmbeddings, ids: np.ndarray) -> PoolEmbeddings:
        """``emb`` without the rows of chunk ids ``ids`` (a copy of the rest; the full set can be freed)."""
        drop = np.isin(emb.chunk_ids, ids)
        self.excluded = int(drop.sum())
        self.exclude_unknown = int(ids.size - np.isin(ids, emb.chunk_ids).sum())
        log.info(
            "excluding %d of %d listed chunk ids from the search (%d not in the embedded pool)",
            self.excluded,
            ids.size,
            self.exclude_unknown,
        )
        if self.excluded == 0:
            return emb
        if self.excluded == emb.chunk_ids.size:
            raise SeeingSoundError(
                f"exclude_chunks lists all {self.excluded} embedded pool chunks: nothing is left to retrieve"
            )
        keep = ~drop
        return PoolEmbeddings(emb.info, emb.chunk_ids[keep], np.ascontiguousarray(emb.vectors[keep]))

    def __len__(self) -> int:
        return len(self.pool)

    def candidate_sets(self, queries: np.ndarray, k: int, *, ssr: bool = True, stats: dict | None = None) -> Candidates:
        """Candidate sets of Algorithm 1 for ``queries`` float (Q, D), rows mapped to chunk ids.

        ``stats``: see :func:`~seeing_sound.retrieval.algorithm.candidate_sets`.
        """
        proposer = None if self._ann is None else (lambda q, kp: ann_search(self._ann, self.pool.search, q, kp))
        c = candidate_sets(
            queries,
            self.pool,
            k,
            ssr=ssr,
            engine=self.engine,
            memory_budget=self.memory_budget,
            proposer=proposer,
            device=self.device,
            stats=stats,
        )
        ids = self.emb.chunk_ids
        return Candidates([ids[r] for r in c.rows], c.cosine, c.score, c.threshold)


def build_ann(vectors: np.ndarray, kind: str):
    """A faiss inner-product IVF-Flat (nlist ~ 4 sqrt(N)) or HNSW32 index over unit ``vectors`` float32 (N, D)."""
    import faiss

    n, d = vectors.shape
    index: faiss.Index
    if kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efSearch = 256
        index = hnsw
    else:
        nlist = int(max(1, min(n // 39, 4 * np.sqrt(n))))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(vectors[np.random.default_rng(0).permutation(n)[: max(nlist * 39, 1)]])
        ivf.nprobe = max(1, min(nlist, nlist // 8))
        index = ivf
    index.add(vectors)
    return index


def ann_search(index, vectors: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Approximate top-k; queries whose list came back short (-1) are searched exactly."""
    from seeing_sound.retrieval.search import faiss_topk

    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = max(index.hnsw.efSearch, 2 * k)
    d, i = index.search(np.ascontiguousarray(q), k)
    short = (i < 0).any(axis=1)
    if short.any():
        d[short], i[short] = faiss_topk(q[short], vectors, k)
    return d, i.astype(np.int64)


def measure_recall(index, vectors: np.ndarray, *, sample: int = 256, k: int = 10, seed: int = 0) -> float:
    """recall@k of ``index`` against exact search, using ``sample`` pool vectors (plus noise) as queries."""
    from seeing_sound.retrieval.search import faiss_topk

    rng = np.random.default_rng(seed)
    n = vectors.shape[0]
    k = min(k, n)
    q = vectors[rng.choice(n, size=min(sample, n), replace=False)]
    q = q + rng.standard_normal(q.shape).astype(np.float32) * 0.05
    _, exact = faiss_topk(q.astype(np.float32), vectors, k)
    _, approx = ann_search(index, vectors, q.astype(np.float32), k)
    hits = sum(len(set(a) & set(e)) for a, e in zip(approx.tolist(), exact.tolist(), strict=True))
    return hits / (q.shape[0] * k)
