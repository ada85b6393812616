"""FID, KID, paired cosine and rank score against closed forms and naive references (Sec. 4.2)."""

import numpy as np
import pytest
from scipy import linalg

from seeing_sound.evaluation.metrics import (
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    kernel_inception_distance,
    paired_cosine,
    rank_score,
)


def _scipy_fid(a, b):
    """The textbook formula with scipy's sqrtm (what pytorch-fid computes), float64."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    got = frechet_distance_from_stats(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_frechet_of_samples_approaches_closed_form():
    rng = np.random.default_rng(1)
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 1.0])
    a = rng.normal(size=(200_000, 3)) * np.sqrt(v1) + 1.0
    b = rng.normal(size=(200_000, 3)) * np.sqrt(v2)
    expected = 3.0 + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=2e-2)


@pytest.mark.parametrize("n,m,d", [(300, 250, 16), (40, 60, 8)])
def test_frechet_matches_scipy_reference(n, m, d):
    rng = np.random.default_rng(n)
    mix = rng.normal(size=(d, d))
    a = rng.normal(size=(n, d)) @ mix
    b = rng.normal(size=(m, d)) @ mix * 1.3 + 0.5
    assert frechet_distance(a, b) == pytest.approx(_scipy_fid(a, b), rel=1e-6)


def test_frechet_pytorch_fid_when_installed():
    fid_score = pytest.importorskip("pytorch_fid.fid_score")  # needs torchvision: skipped in our venv
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(100, 10)), rng.normal(size=(90, 10)) + 0.2
    ref = fid_score.calculate_frechet_distance(*gaussian_stats(a), *gaussian_stats(b))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)


def test_frechet_of_a_set_with_itself_is_zero_even_when_singular():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 32))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    few = rng.normal(size=(20, 64))  # N < D: covariance of rank 19
    assert frechet_distance(few, few) == pytest.approx(0.0, abs=1e-8)


def test_frechet_with_fewer_samples_than_dimensions():
    """N < D: the sample (SVD) path and the covariance path agree; scipy's sqrtm gets there too."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(30, 100)), rng.normal(size=(25, 100)) * 0.7 + 0.1
    by_samples = frechet_distance(a, b)
    by_stats = frechet_distance_from_stats(*gaussian_stats(a), *gaussian_stats(b))
    assert np.isfinite(by_samples) and by_samples > 0
    assert by_samples == pytest.approx(by_stats, rel=1e-7)
    assert by_samples == pytest.approx(_scipy_fid(a, b), rel=1e-4)  # sqrtm loses digits on a singular product


def test_frechet_bad_inputs():
    x = np.ones((10, 4))
    with pytest.raises(ValueError, match="a needs at least 2 rows"):
        frechet_distance(x[:1], x)
    with pytest.raises(ValueError, match="same feature dimension"):
        frechet_distance(x, np.ones((10, 5)))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"b has NaN.*row 3"):
        frechet_distance(x, bad)
    with pytest.raises(ValueError, match="2-D"):
        frechet_distance(np.ones(5), x)


def _naive_kid(a, b, subsets, subset_size, seed):
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    k = lambda x, y: (float(np.dot(x, y)) / d + 1) ** 3  # noqa: E731
    vals = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
        vals.append(kxx + kyy - 2 * kxy)
    return np.mean(vals), np.std(vals, ddof=1)


def test_kid_matches_naive_double_loop():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(30, 5)), rng.normal(size=(25, 5)) + 0.3
    mean, std = kernel_inception_distance(a, b, subsets=4, subset_size=12, seed=3)
    ref_mean, ref_std = _naive_kid(a, b, 4, 12, 3)
    assert mean == pytest.approx(ref_mean, rel=1e-10) and std == pytest.approx(ref_std, rel=1e-10)
    # subset size is clipped to the smaller set
    clipped = kernel_inception_distance(a, b, subsets=2, subset_size=1000, seed=0)
    assert clipped == pytest.approx(_naive_kid(a, b, 2, 1000, 0), rel=1e-10)


def test_kid_is_near_zero_for_one_distribution_and_validates():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    mean, _ = kernel_inception_distance(a, b, subsets=10, subset_size=200)
    far, _ = kernel_inception_distance(a, b + 1.0, subsets=10, subset_size=200)
    assert abs(mean) < 0.05 < far
    with pytest.raises(ValueError, match="subset_size"):
        kernel_inception_distance(a, b, subset_size=1)
    with pytest.raises(ValueError, match="subsets"):
        kernel_inception_distance(a, b, subsets=0)


def test_paired_cosine_is_a_direct_cosine():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    direct = [float(a[i] @ b[i] / np.linalg.norm(a[i]) / np.linalg.norm(b[i])) for i in range(7)]
    np.testing.assert_allclose(paired_cosine(a, b), direct, rtol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        paired_cosine(a, b[:6])
    with pytest.raises(ValueError, match="all-zero rows"):
        paired_cosine(np.zeros((7, 5)), b)


def test_rank_score_matches_naive_loop():
    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(23, 4)), rng.normal(size=(23, 4))
    cos = lambda x, y: x @ y / np.linalg.norm(x) / np.linalg.norm(y)  # noqa: E731
    naive = [np.mean([cos(a[i], b[j]) < cos(a[i], b[i]) for j in range(23) if j != i]) for i in range(23)]
    np.testing.assert_allclose(rank_score(a, b), naive, rtol=1e-12)
    np.testing.assert_array_equal(rank_score(b, b), np.ones(23))
    with pytest.raises(ValueError, match="at least 2 rows"):
        rank_score(a[:1], b[:1])


def test_rank_score_blocks(monkeypatch):
    import seeing_sound.evaluation.metrics as metrics

    rng = np.random.default_rng(10)
    a, b = rng.normal(size=(50, 6)), rng.normal(size=(50, 6))
    whole = rank_score(a, b)
    monkeypatch.setattr(metrics, "RANK_BLOCK", 7)
    np.testing.assert_array_equal(rank_score(a, b), whole)
