"""`train --ast-online`: torch filterbank == ASTFeatureExtractor, online tokens == stored ones, same first loss."""

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from transformers import ASTFeatureExtractor

from seeing_sound.encoders.ast import ast_fbank, load_ast
from seeing_sound.features import compute_features, find_feature_set
from seeing_sound.model.training.config import TrainConfig
from seeing_sound.model.training.data import OnlineAst
from seeing_sound.model.training.recipe import train
from seeing_sound.testing.data import sound_of_type, write_sound_pattern_dataset
from seeing_sound.testing.models import build_tiny_ast, build_tiny_pixart

SR = 16000


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    return {
        "silence": np.zeros(2 * SR, np.float32),
        "clipped sine": np.clip(4 * np.sin(2 * np.pi * 440 * t), -1, 1).astype(np.float32),
        "clipped noise": np.clip(3 * rng.standard_normal(3 * SR), -1, 1).astype(np.float32),
        "12 s noise (truncated)": (0.3 * rng.standard_normal(12 * SR)).astype(np.float32),
        "one frame": (0.1 * rng.standard_normal(400)).astype(np.float32),
        "very quiet": (1e-6 * rng.standard_normal(SR)).astype(np.float32),
        "dc offset": (0.5 + 0.01 * rng.standard_normal(SR)).astype(np.float32),
        "tone": sound_of_type(1, rng, seconds=2.0),
        "band noise": sound_of_type(2, rng, seconds=5.0),
    }


@pytest.mark.parametrize("max_length", [1024, 100])
def test_torch_fbank_matches_the_feature_extractor(max_length):
    fe = ASTFeatureExtractor(max_length=max_length)
    sigs = _signals()
    for name, wave in sigs.items():
        ref = fe(wave, sampling_rate=SR, return_tensors="np")["input_values"][0]
        got = ast_fbank(torch.from_numpy(wave)[None], fe)[0].numpy()
        assert got.shape == ref.shape == (max_length, 128)
        assert np.abs(got - ref).max() <= 1e-4, name
    # one padded batch of different lengths gives each row's own features
    waves = list(sigs.values())
    batch = np.zeros((len(waves), max(w.size for w in waves)), np.float32)
    for i, w in enumerate(waves):
        batch[i, : w.size] = w
    got = ast_fbank(torch.from_numpy(batch), fe, lengths=torch.tensor([w.size for w in waves])).numpy()
    ref = fe(waves, sampling_rate=SR, return_tensors="np")["input_values"]
    assert np.abs(got - ref).max() <= 1e-4
    with pytest.raises(ValueError, match="400 samples"):
        ast_fbank(torch.zeros(1, 399), fe)


@pytest.fixture(scope="module")
def featurized(tmp_path_factory):
    root = tmp_path_factory.mktemp("online")
    ast, pixart = build_tiny_ast(root / "ast"), build_tiny_pixart(root / "pixart")
    write_sound_pattern_dataset(root / "ds", root / "images", per_class=3)
    compute_features(root / "ds", ast=str(ast), vae=str(pixart), resolution=16, batch_size=5, progress=False)
    return root, ast, pixart


def test_encode_torch_matches_encode(featurized):
    _, ast, _ = featurized
    enc = load_ast(str(ast))
    waves = list(_signals().values())  # incl. a 12 s clip: two windows averaged
    ref = enc.encode(waves, batch_size=3)
    got = enc.encode_torch(waves, batch_size=4).numpy()
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_online_tokens_equal_the_stored_features_up_to_fp16(featurized):
    root, ast, _ = featurized
    from seeing_sound.dataset import PairsDataset

    stored = load_file(str(find_feature_set(root / "ds", "ast").shards[0]))
    ds = PairsDataset.open(root / "ds")
    rows = stored["rows"].tolist()
    online = OnlineAst(str(ast), pool=1, device="cpu", batch_size=5)([ds.audio(r) for r in rows]).float().numpy()
    ref = stored["embeds"].astype(np.float32)
    assert online.shape == ref.shape
    # fp16 spacing at |x| is ~|x| * 2**-10: a filterbank difference of 1e-6 may flip one rounding step
    assert np.all(np.abs(online - ref) <= np.abs(ref) * 2**-10 + 1e-6)


def test_ast_online_gives_the_precomputed_first_loss(featurized, tmp_path):
    root, ast, pixart = featurized
    base = dict(
        dataset=str(root / "ds"),
        pretrained=str(pixart),
        batch_size=4,
        max_steps=1,
        sample_every=0,
        checkpoint_every=1,
        progress=False,
        ast_model=str(ast),
    )
    pre = train(TrainConfig(out=str(tmp_path / "pre"), **base))
    online = train(TrainConfig(out=str(tmp_path / "online"), ast_online=True, **base))
    assert abs(online.losses[1] - pre.losses[1]) <= 1e-3
    with pytest.raises(Exception, match="ast_online"):
        train(TrainConfig(out=str(tmp_path / "online"), ast_online=False, resume="latest", **{**base, "max_steps": 2}))
