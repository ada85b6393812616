import hashlib

import numpy as np
import pyloudnorm
import pytest

from seeing_sound.audio.mix import PEAK_CEILING, gains_db, headroom_gain_db, mix_recipe, render_mixture, target_lufs

SR = 16000


def _naive_mix(chunks, loudness, targets):
    """Straight from the paper: x_norm = x * 10^((t_x - l_x) / 20), then a time-domain sum."""
    out = np.zeros(chunks.shape[1])
    for x, l_x, t_x in zip(chunks, loudness, targets, strict=True):
        out = out + x.astype(np.float64) * 10 ** ((t_x - l_x) / 20)
    return out


def test_normalized_chunks_reach_their_targets():
    rng = np.random.default_rng(0)
    meter = pyloudnorm.Meter(SR)
    for amp, target in ((0.5, -20.0), (0.01, -24.0), (0.2, -30.0)):
        x = (amp * rng.standard_normal(5 * SR)).astype(np.float32)
        g = gains_db([target], [meter.integrated_loudness(x)])
        y = render_mixture(x[None], g)
        assert meter.integrated_loudness(y) == pytest.approx(target, abs=0.01)


def test_mix_equals_naive_sum_and_headroom():
    rng = np.random.default_rng(1)
    chunks = (rng.uniform(0.05, 0.9, (3, 1)) * rng.standard_normal((3, 5 * SR))).astype(np.float32)
    loud = np.array([pyloudnorm.Meter(SR).integrated_loudness(c) for c in chunks])
    targets = np.array([-8.0, -10.0, -9.0])  # loud: the sum exceeds full scale
    _gains, g_mix, mix = mix_recipe(chunks, loud, targets)
    naive = _naive_mix(chunks, loud, targets)
    assert np.abs(naive).max() > 1 and g_mix < 0
    np.testing.assert_allclose(mix, naive * 10 ** (g_mix / 20), rtol=1e-6, atol=1e-7)
    assert np.abs(mix).max() == pytest.approx(PEAK_CEILING, rel=1e-6)
    quiet = mix_recipe(chunks, loud, np.array([-30.0, -31.0, -29.0]))
    assert quiet[1] == 0.0 and np.abs(quiet[2]).max() <= PEAK_CEILING


#: renders the mixture of the chunks/gains in argv[1] (an .npz) in a new process, prints its sha256
_RENDER_IN_CHILD = """
import hashlib, sys
import numpy as np
from seeing_sound.audio.mix import mix_recipe, render_mixture
d = np.load(sys.argv[1])
x = render_mixture(d["chunks"], d["gains"], float(d["mixture_gain_db"]))
gains, g_mix, mix = mix_recipe(d["chunks"], d["loudness"], d["targets"])
print(hashlib.sha256(x.tobytes()).hexdigest(), hashlib.sha256(mix.tobytes() + gains.tobytes()).hexdigest(), g_mix.hex())
"""


def test_render_is_deterministic_bitwise(tmp_path, fresh_python):
    rng = np.random.default_rng(2)
    chunks = rng.standard_normal((3, 1000)).astype(np.float32)
    g = np.array([-3.2, 1.7, 0.01])
    a = render_mixture(chunks, g, -1.234)
    b = render_mixture(chunks.copy(), g.copy(), -1.234)
    assert a.tobytes() == b.tobytes()
    # Across processes: the same inputs rendered by fresh interpreters with different hash
    # seeds and BLAS/OpenMP thread counts give the same bytes as this process (sonify renders
    # in worker processes, rebuild re-renders later, elsewhere: both must agree bit for bit).
    loudness, targets = np.array([-30.0, -25.0, -28.0]), np.array([-5.0, -6.0, -4.0])  # loud: headroom applies
    np.savez(tmp_path / "in.npz", chunks=chunks, gains=g, mixture_gain_db=-1.234, loudness=loudness, targets=targets)
    gains, g_mix, mix = mix_recipe(chunks, loudness, targets)
    assert g_mix < 0
    here = " ".join(
        [
            hashlib.sha256(a.tobytes()).hexdigest(),
            hashlib.sha256(mix.tobytes() + gains.tobytes()).hexdigest(),
            float(g_mix).hex(),
        ]
    )
    children = {
        (seed, threads): fresh_python(
            _RENDER_IN_CHILD, hash_seed=seed, threads=threads, args=(str(tmp_path / "in.npz"),)
        )
        for seed, threads in ((1, 1), (2024, 2))
    }
    assert set(children.values()) == {here}, children


def test_targets_depend_on_seed_only():
    seeds = np.array([1, 2, 3, 2**63 + 5], dtype=np.uint64)
    t = target_lufs(seeds, (-25, -21))
    assert ((t >= -25) & (t <= -21)).all()
    assert t[1] == target_lufs(seeds[1:2], (-25, -21))[0] == target_lufs(seeds[::-1], (-25, -21))[2]
    assert len(set(target_lufs(np.arange(100, dtype=np.uint64)).round(6))) == 100
    assert (target_lufs(seeds, (-23, -23)) == -23).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="lufs_range"):
        target_lufs(np.array([1], np.uint64), (-20, -25))
    with pytest.raises(ValueError, match="silent"):
        gains_db([-20.0], [-np.inf])
    with pytest.raises(ValueError, match="at least one"):
        render_mixture(np.zeros((0, 10), np.float32), np.zeros(0))
    assert headroom_gain_db(np.zeros(10)) == 0.0


def test_recipe_output_equals_rerender_bitwise():
    rng = np.random.default_rng(3)
    chunks = rng.standard_normal((3, 4000)).astype(np.float32)
    gains, g_mix, mix = mix_recipe(chunks, np.array([-30.0, -25.0, -28.0]), np.array([-5.0, -6.0, -4.0]))
    assert g_mix < 0
    assert render_mixture(chunks, gains, g_mix).tobytes() == mix.tobytes()


def test_render_from_pool_rows_matches_float_path(tmp_path):
    from seeing_sound.audio.mix import mix_from_pool, render_scaled
    from seeing_sound.pool import AudioPool, build_pool
    from seeing_sound.testing.signals import noise, write_audio

    for i in range(3):
        write_audio(tmp_path / f"src/{i}.wav", noise(6, SR, amp=0.1 * (i + 1), seed=i), SR)
    build_pool([tmp_path / "src"], tmp_path / "pool", progress=False)
    pool = AudioPool.open(tmp_path / "pool")
    ids = [0, 2, 4]
    lufs = pool.manifest.column("loudness_lufs").to_numpy()[ids]
    gains, g_mix, mix = mix_from_pool(pool, ids, lufs, np.array([-20.0, -22.0, -24.0]))
    assert render_scaled(*pool.pcm_rows(ids), gains, g_mix).tobytes() == mix.tobytes()
    np.testing.assert_allclose(mix, render_mixture(pool.chunks(ids), gains, g_mix), rtol=1e-5, atol=1e-7)
    for k, cid in enumerate(ids):  # each component reaches its target
        alone = render_scaled(*pool.pcm_rows([cid]), gains[k : k + 1])
        assert pyloudnorm.Meter(SR).integrated_loudness(alone.astype(np.float64)) == pytest.approx(
            gains[k] + lufs[k], abs=0.02
        )
