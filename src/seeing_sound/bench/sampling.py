"""The class-balanced sample of a benchmark split (VGGSound's ~1K test items, after Sound2Scene).

A pure function of the (key, label) pairs, the total and the seed: the listing order of the
input never matters (keys and labels are sorted first), and each class draws its items from
its own random stream, so one class's draw does not depend on the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import numpy as np


def _stream(seed: int, *words: str) -> np.random.Generator:
    """A random stream for (seed, words): stable across processes and platforms (no ``hash()``)."""
    digest = hashlib.sha256("\x1f".join((str(seed), *words)).encode()).digest()
    return np.random.default_rng([int.from_bytes(digest[i : i + 8], "little") for i in range(0, 32, 8)])


def class_quotas(counts: Mapping[str, int], total: int, seed: int = 0) -> dict[str, int]:
    """How many items each class gives to a sample of ``total`` (water-filling).

    Every class gives an equal share; a class with fewer items than its share gives all it has
    and the rest is spread evenly over the others, repeatedly. Classes that are not exhausted end
    up with quotas that differ by at most one; which of them take the remainder (+1) is drawn
    with ``seed``. ``total`` beyond the number of items gives every item.
    """
    if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or total < 0:
        raise ValueError(f"total must be an integer >= 0, got {total!r}")
    bad = {k: v for k, v in counts.items() if v < 0}
    if bad:
        raise ValueError(f"class counts must be >= 0, got {bad}")
    quotas = {label: 0 for label in counts}
    active = sorted(label for label, n in counts.items() if n > 0)
    remaining = min(int(total), sum(counts.values()))
    while active and remaining:
        share = remaining // len(active)
        small = [label for label in active if counts[label] <= share]
        if not small:
            extra = remaining - share * len(active)
            order = _stream(seed, "remainder").permutation(len(active))
            lucky = {active[i] for i in order[:extra]}
            for label in active:
                quotas[label] = share + (label in lucky)
            break
        for label in small:
            quotas[label] = counts[label]
            remaining -= counts[label]
        active = [label for label in active if label not in small]
    return quotas


def balanced_sample(items: Iterable[tuple[str, str]], total: int, seed: int = 0) -> list[str]:
    """Keys of a class-balanced sample of ``total`` items from ``(key, label)`` pairs, sorted.

    Per-class counts differ by at most one while classes have enough items; classes with too
    few give all they have and the rest is spread evenly (:func:`class_quotas`). Within a class,
    items are a uniform random subset drawn from the class's own stream (seed, label).
    Keys must be unique.
    """
    by_label: dict[str, list[str]] = {}
    seen: set[str] = set()
    for key, label in items:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}: every item needs its own key")
        seen.add(key)
        by_label.setdefault(str(label), []).append(str(key))
    quotas = class_quotas({label: len(keys) for label, keys in by_label.items()}, total, seed)
    chosen: list[str] = []
    for label in sorted(by_label):
        keys = sorted(by_label[label])
        take = quotas[label]
        if take == len(keys):
            chosen.extend(keys)
        elif take:
            pick = _stream(seed, "class", label).permutation(len(keys))[:take]
            chosen.extend(keys[i] for i in pick)
    return sorted(chosen)
