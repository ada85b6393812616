"""The mixture record and its one render path: the dataset's bits unchanged, controls through it."""

import json

import numpy as np
import pytest

from seeing_sound.audio import controls
from seeing_sound.audio.mix import mix_from_pool, mix_recipe, render_scaled, render_tracks
from seeing_sound.audio.mixture import MixTrack, Mixture, normalized_mixture

SR = 16000


def _old_render_scaled(rows, factors, gains, mixture_gain_db=0.0):
    """The render before the mixture record (copied from the previous release), the bit reference."""
    coef = (10.0 ** (np.asarray(gains, np.float64) / 20.0)).astype(np.float32) * np.asarray(factors, np.float32)
    mix = np.multiply(rows[0], coef[0], dtype=np.float32)
    tmp = np.empty_like(mix)
    for k in range(1, len(rows)):
        np.multiply(rows[k], coef[k], out=tmp, dtype=np.float32)
        mix += tmp
    if mixture_gain_db != 0.0:
        mix *= np.float32(10.0 ** (float(mixture_gain_db) / 20.0))
    return mix


def test_render_scaled_bits_unchanged_int16_and_float():
    rng = np.random.default_rng(0)
    rows = [rng.integers(-32768, 32767, 4000).astype(np.int16) for _ in range(3)]
    factors = np.array([1 / 32768, 0.5 / 32768, 2 / 32768], np.float32)
    gains = np.array([-3.2, 1.7, 0.01])
    for g_mix in (0.0, -1.234):
        assert (
            render_scaled(rows, factors, gains, g_mix).tobytes()
            == _old_render_scaled(rows, factors, gains, g_mix).tobytes()
        )
    x = rng.standard_normal((2, 1000)).astype(np.float32)
    x[0, :5] = -0.0  # a -0.0 must stay -0.0 (no 0 + x pass)
    one = np.ones(2, np.float32)
    got = render_scaled(list(x[:1]), one[:1], gains[:1])
    assert got.tobytes() == _old_render_scaled(list(x[:1]), one[:1], gains[:1]).tobytes()
    m = Mixture((MixTrack(0, -3.2), MixTrack(1, 1.7)), SR, mixture_gain_db=-0.5)
    assert m.render(list(x)).tobytes() == _old_render_scaled(list(x), one, gains[:2], -0.5).tobytes()


def test_dataset_recipe_renders_through_the_record(library_pool):
    from seeing_sound.pool import AudioPool

    pool = AudioPool.open(library_pool / "pool")
    ids = [0, 3]
    lufs = pool.manifest.column("loudness_lufs").to_numpy()[ids]
    gains, g_mix, mix = mix_from_pool(pool, ids, lufs, np.array([-22.0, -24.5]))
    row = {
        "components": [
            {"chunk_id": i, "gain_db": float(g), "chunk_lufs": float(lo)}
            for i, g, lo in zip(ids, gains, lufs, strict=True)
        ],
        "mixture_gain_db": g_mix,
        "sample_rate": pool.sample_rate,
    }
    m = Mixture.from_pair(row)
    assert m.render_from_pool(pool).tobytes() == mix.tobytes()
    assert Mixture.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    chunks = pool.chunks(ids)
    g2, gm2, mix2 = mix_recipe(chunks, lufs, np.array([-22.0, -24.5]))
    assert np.array_equal(g2, gains) and gm2 == g_mix
    np.testing.assert_allclose(mix2, mix, atol=1e-6)


def test_offsets_lengths_and_space_in_one_path():
    a = np.ones(10, np.float32)
    b = np.full(5, 2.0, np.float32)
    y = render_tracks([a, b], np.array([1.0, 0.5], np.float32), [0, 12])
    assert y.size == 17 and np.all(y[:10] == 1) and np.all(y[10:12] == 0) and np.all(y[12:] == 1)
    assert render_tracks([a, b], np.ones(2, np.float32), [0, 8], length=9)[8] == 3.0
    with pytest.raises(ValueError, match="offsets"):
        render_tracks([a], np.ones(1, np.float32), [-1])
    space = controls.Space("rt60", rt60_s=0.3, match_loudness=False)
    m = Mixture((MixTrack("a", 0.0),), SR, space=space, headroom="none")
    y = m.render([np.r_[np.float32(1.0), np.zeros(99, np.float32)]])
    ir = space.impulse_response(SR)
    assert y.size == 100 + ir.size - 1
    np.testing.assert_allclose(y[: ir.size], ir, atol=1e-6)
    assert Mixture.from_dict(m.to_dict()) == m


def test_normalized_mixture_records_why():
    a = np.random.default_rng(1).standard_normal(SR).astype(np.float32) * 0.1
    m = normalized_mixture([a, a], [-20.0, -30.0], SR, names=["x.wav", 7])
    t = m.tracks
    assert [t[0].source, t[1].source] == ["x.wav", 7]
    assert t[0].gain_db == pytest.approx(t[0].target_lufs - t[0].loudness_lufs)
    with pytest.raises(ValueError, match="headroom"):
        Mixture(t, SR, headroom="loud")
    with pytest.raises(ValueError, match="at least one"):
        Mixture((), SR)
