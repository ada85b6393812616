"""CLAP input prepared in torch (encoders.clap_features) against ClapFeatureExtractor and soxr."""

import numpy as np
import pytest
import torch
from transformers import ClapFeatureExtractor

from seeing_sound.encoders.clap import ClapEncoder
from seeing_sound.encoders.clap_features import clap_features, input_needed, resample_poly
from seeing_sound.testing.models import build_tiny_clap
from seeing_sound.testing.sounds import bells, birds, rain

SR = 48000


def _clips(lengths_s, sr=SR, seed=0):
    rng = np.random.default_rng(seed)
    makers = [rain, birds, bells]
    return [makers[i % 3](rng, s, sr).astype(np.float32)[: int(s * sr)] for i, s in enumerate(lengths_s)]


def _batch(waves):
    x = np.zeros((len(waves), max(w.size for w in waves)), np.float32)
    for i, w in enumerate(waves):
        x[i, : w.size] = w
    return torch.from_numpy(x), [w.size for w in waves]


@pytest.mark.parametrize("truncation", ["rand_trunc", "fusion"])
def test_features_equal_the_extractor_for_short_equal_and_silent_clips(truncation):
    fe = ClapFeatureExtractor()
    waves = [*_clips([0.02, 2.0, 10.0, 6.5]), np.zeros(SR * 3, np.float32)]
    x, lengths = _batch(waves)
    np.random.seed(0)  # fusion marks one random row as "longer" when none is
    ref = fe(waves, sampling_rate=SR, truncation=truncation, padding="repeatpad", return_tensors="np")
    np.random.seed(0)
    out = clap_features(x, fe, lengths, truncation=truncation)
    stack = 4 if truncation == "fusion" else 1
    assert out["input_features"].shape == ref["input_features"].shape == (5, stack, 1001, 64)
    np.testing.assert_allclose(out["input_features"].numpy(), ref["input_features"], atol=1e-4, rtol=0)
    assert out["is_longer"].numpy().tolist() == ref["is_longer"].tolist()
    assert out["input_features"][4].max() == pytest.approx(-100.0)  # silence: the 1e-10 floor in dB


@pytest.mark.parametrize("padding", ["repeat", "pad"])
def test_other_paddings_match(padding):
    fe = ClapFeatureExtractor()
    waves = _clips([1.5, 3.3])
    x, lengths = _batch(waves)
    ref = fe(waves, sampling_rate=SR, truncation="rand_trunc", padding=padding, return_tensors="np")
    out = clap_features(x, fe, lengths, padding=padding)
    np.testing.assert_allclose(out["input_features"].numpy(), ref["input_features"], atol=1e-4, rtol=0)


def test_longer_clips_get_the_extractors_random_crop():
    fe = ClapFeatureExtractor()
    waves = _clips([10.7, 12.0, 4.0], seed=1)
    x, lengths = _batch(waves)
    np.random.seed(7)
    ref = fe(waves, sampling_rate=SR, truncation="rand_trunc", padding="repeatpad", return_tensors="np")
    np.random.seed(7)
    out = clap_features(x, fe, lengths)
    np.testing.assert_allclose(out["input_features"].numpy(), ref["input_features"], atol=1e-4, rtol=0)
    assert out["is_longer"].ravel().tolist() == [True, True, False]
    with pytest.raises(NotImplementedError, match="fusion"):
        clap_features(x, fe, lengths, truncation="fusion")


def test_resampler_matches_soxr_in_band():
    soxr = pytest.importorskip("soxr")
    t = np.arange(32000) / 16000
    x = sum(0.2 * np.sin(2 * np.pi * f * t + f) for f in (110.0, 997.0, 3001.0, 6500.0)).astype(np.float32)
    ours = resample_poly(torch.from_numpy(x)[None], 16000, SR, dtype=torch.float64)[0].numpy()
    ref = soxr.resample(x.astype(np.float64), 16000, SR, quality="VHQ")
    assert ours.shape == ref.shape == (96000,)
    inner = slice(2000, -2000)  # away from the edges, where both see zeros beyond the signal
    assert np.abs(ours - ref)[inner].max() < 1e-4  # -80 dB of the 0.8 peak; both keep tones below 7 kHz
    down = resample_poly(torch.from_numpy(ref)[None], SR, 16000, dtype=torch.float64)[0].numpy()
    assert np.abs(down - x)[inner].max() < 1e-4  # and back


def test_cutting_the_input_to_what_the_window_needs_changes_nothing():
    x = torch.from_numpy(np.concatenate(_clips([11.0], sr=16000)))[None]
    need = input_needed(SR * 10, 16000, SR)
    full = resample_poly(x, 16000, SR)[:, : SR * 10]
    assert torch.equal(full, resample_poly(x[:, :need], 16000, SR)[:, : SR * 10])
    assert not torch.equal(full, resample_poly(x[:, : need - 200], 16000, SR)[:, : SR * 10])


@pytest.fixture(scope="module")
def tiny_clap_path(tmp_path_factory):
    return str(build_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny-clap"))


def _encoder(path, prep):
    return ClapEncoder(path, device="cpu", batch_size=3, audio_prep=prep)


def test_embeddings_equal_the_processor_path(tiny_clap_path):
    proc, soxr_torch, dev = (_encoder(tiny_clap_path, p) for p in ("processor", "soxr", "torch"))
    clips16 = np.stack([np.pad(c, (0, 176000 - c.size)) for c in _clips([11.0, 2.0, 0.5, 10.0], sr=16000)])
    clips16[3] = 0.0
    ref16 = proc.embed_audio(clips16, 16000)
    np.testing.assert_allclose(soxr_torch.embed_audio(clips16, 16000), ref16, atol=1e-5, rtol=0)
    clips48 = np.stack([np.pad(c, (0, SR * 11 - c.size)) for c in _clips([11.0, 2.0, 0.5, 10.0])])
    np.testing.assert_allclose(dev.embed_audio(clips48, SR), proc.embed_audio(clips48, SR), atol=1e-5, rtol=0)
    # Resampled on the device: another (equally band-limited) filter than soxr's, so close, not equal.
    cos = (dev.embed_audio(clips16, 16000) * ref16).sum(axis=1)
    assert cos.min() > 0.9999
    assert dev.info.extra["audio_prep"] == "torch" and "audio_prep" not in proc.info.extra


def test_torch_path_is_independent_of_batch(tiny_clap_path):
    dev = _encoder(tiny_clap_path, "torch")
    clips = np.stack(_clips([3.0, 3.0, 3.0, 3.0], sr=16000))
    all4 = dev.embed_audio(clips, 16000)
    assert np.array_equal(all4[2:3], dev.embed_audio(clips[2:3], 16000))
    assert np.array_equal(all4[[2, 0]], dev.embed_audio(clips[[2, 0]], 16000))
    with pytest.raises(ValueError, match="audio_prep"):
        _encoder(tiny_clap_path, "librosa")
