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
    with pytest.raises(ModelNotFoundError, match="--ast"):
        compute_features(dataset, ast=str(tmp_path / "missing"), vae=None, progress=False)
