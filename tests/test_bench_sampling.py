"""The class-balanced sampler (VGGSound's ~1K test sample): a pure function, checked against its invariants."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from seeing_sound.bench.sampling import balanced_sample, class_quotas


def _case(rng: random.Random):
    n_classes = rng.randint(1, 30)
    counts = {f"class {c:02d}": rng.choice([0, 1, 2, 3, 5, 8, 20, 50, rng.randint(0, 100)]) for c in range(n_classes)}
    items = [(f"{label}/{i:03d}", label) for label, n in counts.items() for i in range(n)]
    total = rng.randint(0, max(1, int(1.3 * len(items))))
    return counts, items, total


def check_invariants(counts: dict[str, int], quotas: dict[str, int], total: int) -> None:
    assert set(quotas) == set(counts)
    assert sum(quotas.values()) == min(total, sum(counts.values()))
    assert all(0 <= quotas[c] <= counts[c] for c in counts)
    open_ = [quotas[c] for c in counts if quotas[c] < counts[c]]  # classes that still had items left
    if open_:
        assert max(open_) - min(open_) <= 1  # balanced to within one
        # a class that gave everything it has gave at most one more than any class with items left
        assert all(quotas[c] <= min(open_) + 1 for c in counts if quotas[c] == counts[c])


@pytest.mark.parametrize("case", range(200))
def test_quota_invariants(case):
    rng = random.Random(case)
    counts, _, total = _case(rng)
    check_invariants(counts, class_quotas(counts, total, seed=case), total)


@pytest.mark.parametrize("case", range(60))
def test_sample_invariants_and_order_independence(case):
    rng = random.Random(1000 + case)
    counts, items, total = _case(rng)
    got = balanced_sample(items, total, seed=7)
    assert got == sorted(got) and len(set(got)) == len(got)
    label_of = dict(items)
    per_class = Counter(label_of[k] for k in got)
    check_invariants(counts, {c: per_class.get(c, 0) for c in counts}, total)
    shuffled = items[:]
    rng.shuffle(shuffled)
    assert balanced_sample(shuffled, total, seed=7) == got  # listing order never matters
    assert balanced_sample(items, total, seed=7) == got  # deterministic


def test_paper_scale_vggsound():
    """309 classes, ~15 test clips each with some short classes: 1000 items, 3-4 per class."""
    rng = np.random.default_rng(0)
    counts = {f"c{i:03d}": int(n) for i, n in enumerate(rng.integers(1, 30, size=309))}
    items = [(f"{c}_{j}", c) for c, n in counts.items() for j in range(n)]
    got = balanced_sample(items, 1000, seed=0)
    assert len(got) == 1000
    per_class = Counter(k.split("_")[0] for k in got)
    full = [per_class[c] for c in counts if per_class[c] < counts[c]]
    assert max(full) - min(full) <= 1
    assert balanced_sample(items, 1000, seed=1) != got  # the seed matters


def test_seed_changes_members_not_counts_when_equal():
    items = [(f"{c}{i}", c) for c in "ab" for i in range(10)]
    a, b = balanced_sample(items, 6, seed=0), balanced_sample(items, 6, seed=1)
    assert Counter(k[0] for k in a) == Counter(k[0] for k in b) == {"a": 3, "b": 3}
    assert a != b


def test_small_classes_give_all_and_rest_spreads():
    counts = {"tiny": 1, "small": 2, "big": 100, "huge": 100}
    q = class_quotas(counts, 20, seed=0)
    assert q["tiny"] == 1 and q["small"] == 2 and {q["big"], q["huge"]} <= {8, 9} and q["big"] + q["huge"] == 17


def test_a_class_draw_does_not_depend_on_other_classes():
    a = [(f"a{i}", "a") for i in range(10)]
    with_b = balanced_sample(a + [(f"b{i}", "b") for i in range(10)], 6, seed=5)
    with_c = balanced_sample(a + [(f"c{i}", "c") for i in range(10)], 6, seed=5)
    assert [k for k in with_b if k[0] == "a"] == [k for k in with_c if k[0] == "a"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="total"):
        class_quotas({"a": 1}, -1)
    with pytest.raises(ValueError, match="duplicate key"):
        balanced_sample([("x", "a"), ("x", "b")], 1)
    assert balanced_sample([], 10) == []
