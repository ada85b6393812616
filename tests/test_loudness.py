import numpy as np
import pyloudnorm
import pytest

from seeing_sound.audio.loudness import integrated_loudness, is_silent

SR = 16000


def _signals():
    rng = np.random.default_rng(7)
    t = np.arange(5 * SR) / SR
    yield "tone", (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    yield "low tone", (0.2 * np.sin(2 * np.pi * 60 * t)).astype(np.float32)
    yield "noise", (0.1 * rng.standard_normal(5 * SR)).astype(np.float32)
    env = np.where((t % 1.0) < 0.2, 1.0, 0.001)  # bursts: exercises the relative gate
    yield "bursts", (0.3 * env * rng.standard_normal(t.size)).astype(np.float32)
    fade = np.linspace(0, 1, t.size) ** 4
    yield "fade-in", (0.5 * fade * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    yield "quiet", (1e-3 * rng.standard_normal(5 * SR)).astype(np.float32)
    for seconds in (0.4, 0.45, 1.0, 2.37, 4.99):
        n = int(seconds * SR)
        yield f"{seconds}s", (0.2 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("name,x", list(_signals()), ids=[n for n, _ in _signals()])
def test_matches_pyloudnorm(name, x):
    ref = pyloudnorm.Meter(SR).integrated_loudness(x)
    ours = integrated_loudness(x, SR)
    assert abs(ours - ref) < 0.01, (name, ours, ref)


def test_batch_equals_rows():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((6, 5 * SR)) * rng.uniform(0.001, 0.5, (6, 1))).astype(np.float32)
    batch = integrated_loudness(x, SR)
    assert batch.shape == (6,)
    for i in range(6):
        assert batch[i] == pytest.approx(pyloudnorm.Meter(SR).integrated_loudness(x[i]), abs=0.01)


def test_other_rates():
    rng = np.random.default_rng(2)
    for sr in (8000, 11025, 44100, 48000):  # 11025: 100 ms hop is not whole samples -> cumsum path
        x = (0.1 * rng.standard_normal(3 * sr)).astype(np.float32)
        assert integrated_loudness(x, sr) == pytest.approx(pyloudnorm.Meter(sr).integrated_loudness(x), abs=0.01)


def test_silence_and_under_gate_are_minus_inf():
    zeros = np.zeros(5 * SR, np.float32)
    assert integrated_loudness(zeros, SR) == -np.inf
    assert pyloudnorm.Meter(SR).integrated_loudness(zeros) == -np.inf
    tiny = np.full(5 * SR, 1e-6, np.float32) * np.sign(np.sin(np.arange(5 * SR)))
    assert integrated_loudness(tiny, SR) == -np.inf
    assert is_silent(np.array([-np.inf, -80.0, -69.9])).tolist() == [True, True, False]


def test_too_short_is_a_value_error():
    with pytest.raises(ValueError, match=r"at least 0\.4 s"):
        integrated_loudness(np.zeros(100, np.float32), SR)
