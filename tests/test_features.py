"""`seeing-sound features`: AST + VAE feature stages over a real (tiny) pairs dataset."""

import json

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file

from seeing_sound.errors import ModelNotFoundError
from seeing_sound.features import compute_features, find_feature_set
from seeing_sound.features.stage import center_crop_resize
from seeing_sound.testing.data import write_sound_pattern_dataset
from seeing_sound.testing.models import build_tiny_ast, build_tiny_pixart


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return build_tiny_ast(root / "ast"), build_tiny_pixart(root / "pixart")


@pytest.fixture()
def dataset(tmp_path):
    write_sound_pattern_dataset(tmp_path / "ds", tmp_path / "images", per_class=3)
    return tmp_path / "ds"


def test_center_crop_resize():
    im = Image.new("RGB", (40, 20), "red")
    im.paste(Image.new("RGB", (10, 20), "blue"), (0, 0))  # left quarter blue: cropped away
    out = center_crop_resize(im, 8)
    assert out.size == (8, 8)
    assert np.asarray(out)[..., 2].max() < 60


def test_features_stage_end_to_end_and_resume(models, dataset):
    from seeing_sound.cli import main

    ast, pixart = models
    argv = ["--quiet", "features", str(dataset), "--ast", str(ast), "--vae", str(pixart), "--resolution", "16"]
    assert main(argv) == 0
    ast_set, vae_set = find_feature_set(dataset, "ast"), find_feature_set(dataset, "vae")
    assert ast_set.card["model"] == str(ast.resolve()) and ast_set.card["tokens"] == 110
    assert ast_set.card["dim"] == 32 and ast_set.card["pool"] == 1
    assert vae_set.card["latent_shape"] == [4, 8, 8] and "mean and std" in vae_set.card["stored"]
    shard = load_file(str(ast_set.shards[0]))
    assert shard["embeds"].dtype == np.float16 and shard["embeds"].shape == (8, 110, 32)
    assert shard["rows"].tolist() == list(range(8))
    before = ast_set.shards[0].read_bytes()
    reports = compute_features(dataset, ast=str(ast), vae=str(pixart), resolution=16, progress=False)
    assert reports["ast"].skipped == 2 and reports["ast"].ran == 0  # resumed: nothing redone
    assert ast_set.shards[0].read_bytes() == before


def test_bad_items_are_skipped_with_reasons_and_pooling(models, dataset):
    ast, pixart = models
    from seeing_sound.dataset import PairsDataset

    ds = PairsDataset.open(dataset)
    ds.image_path(1).unlink()
    ds.image_path(2).write_bytes(b"not an image")
    ds.audio_path(3).write_bytes(b"not audio")
    reports = compute_features(dataset, ast=str(ast), vae=str(pixart), resolution=16, pool=4, progress=False)
    assert reports["vae"].errors == {"image_missing": 1, "image_unreadable: UnidentifiedImageError": 1}
    assert sum(reports["ast"].errors.values()) == 1 and next(iter(reports["ast"].errors)).startswith("audio_unreadable")
    card = json.loads((dataset / "features" / "ast-ast-pool4" / "features.json").read_text())
    assert card["tokens"] == 2 + 12 * 3 and card["pool"] == 4 and card["items_out"] == 11
    rows = load_file(str(dataset / "features" / "vae-pixart-16" / "shard-000000.safetensors"))["rows"]
    assert 1 not in rows.tolist() and 2 not in rows.tolist()


def test_missing_ast_names_the_flag(dataset, tmp_path):
    with pytest.raises(ModelNotFoundError, match="ast=PATH"):
        compute_features(dataset, ast=str(tmp_path / "missing"), vae=None, progress=False)


def test_shard_writer_streams_the_bytes_of_write_shard(tmp_path):
    from safetensors.numpy import save

    from seeing_sound.features.store import ShardWriter, write_shard

    rng = np.random.default_rng(0)
    tensors = {
        "rows": np.arange(7, dtype=np.int64),
        "mean": rng.standard_normal((7, 4, 3, 3)).astype(np.float16),
        "std": rng.random((7, 4, 3, 3)).astype(np.float16),
    }
    for meta in ({"model": '/tmp/é "x"\n'}, {"b": "2", "a": "1", "kind": "vae"}):
        write_shard(tmp_path / "ref.safetensors", tensors, meta)
        ref = (tmp_path / "ref.safetensors").read_bytes()
        if len(meta) == 1:  # safetensors orders several metadata keys at random; one key pins its bytes
            assert ref == save(tensors, metadata=meta)
        assert load_file(str(tmp_path / "ref.safetensors")).keys() == tensors.keys()
        columns = {k: (v.dtype, v.shape[1:]) for k, v in tensors.items()}
        with ShardWriter(tmp_path / "out.safetensors", columns, meta) as out:
            for s, e in ((0, 3), (3, 3), (3, 7)):  # an empty batch too
                out.append(**{k: (v[s:e].astype(np.float32) if k != "rows" else v[s:e]) for k, v in tensors.items()})
        assert (tmp_path / "out.safetensors").read_bytes() == ref
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors", "ref.safetensors"]  # parts removed
    with pytest.raises(ValueError, match="shape"), ShardWriter(tmp_path / "bad.safetensors", columns, {}) as out:
        out.append(rows=np.zeros(1, np.int64), mean=np.zeros((1, 4, 2, 2)), std=np.zeros((1, 4, 3, 3)))
    assert not (tmp_path / "bad.safetensors").exists()
