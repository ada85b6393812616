"""Per-query random streams that do not depend on batching, order, workers or engine.

Every query owns a 64-bit seed derived from what it *is* (global seed, image id, concept
index), never from a shared generator, so the same concept of the same image picks the
same chunk whether it is processed first or last, alone or in a batch of 10,000, on one
worker or eight.

``choice(I)`` in Algorithm 1 is implemented with SplitMix64 (Steele et al., 2014) and
a multiply-shift range reduction instead of ``numpy.random.Generator``: numpy documents
that a Generator's streams may change between numpy versions, while these few lines of
integer arithmetic give the same answer on every platform and version, and vectorize.
"""

from __future__ import annotations

import hashlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def concept_seed(seed: int, image_id: str, concept_index: int) -> np.uint64:
    """The seed of one query: BLAKE2b-64 of ``(seed, image_id, concept_index)``.

    Stable across processes, machines and Python versions (unlike ``hash()``). Fields are
    length-prefixed so that no two different triples share an encoding.
    """
    if not isinstance(image_id, str):
        raise ValueError(f"image_id must be a str, got {type(image_id).__name__} {image_id!r}")
    parts = [str(int(seed)).encode(), image_id.encode("utf-8"), str(int(concept_index)).encode()]
    h = hashlib.blake2b(digest_size=8, person=b"seeing-sound-q1")
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return np.uint64(int.from_bytes(h.digest(), "little"))


def concept_seeds(seed: int, image_ids, concept_indices) -> np.ndarray:
    """:func:`concept_seed` for many rows: uint64 (n,)."""
    out = np.empty(len(image_ids), dtype=np.uint64)
    for i, (img, ci) in enumerate(zip(image_ids, concept_indices, strict=True)):
        out[i] = concept_seed(seed, img, ci)
    return out


def splitmix64(x: np.ndarray) -> np.ndarray:
    """One SplitMix64 step on each element: uint64 (n,) -> uint64 (n,), well-mixed."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def choice_positions(seeds: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Uniform position in ``[0, n)`` for each query: int64 (Q,).

    ``floor(U * n)`` with ``U`` the top 32 bits of ``splitmix64(seed)`` over 2**32
    (Lemire's multiply-shift; bias <= n / 2**32, below 1e-6 for any k in use).
    ``seeds`` uint64 (Q,), ``n`` int (Q,) with every value in ``[1, 2**31)``.
    """
    n = np.asarray(n, dtype=np.uint64)
    if n.size and (n.min() < 1 or n.max() >= 2**31):
        raise ValueError(f"n must be in [1, 2**31), got min {int(n.min())} max {int(n.max())}")
    hi = splitmix64(seeds) >> np.uint64(32)
    return ((hi * n) >> np.uint64(32)).astype(np.int64)
