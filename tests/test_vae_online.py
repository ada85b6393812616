"""`train --vae-online`: latents encoded in the run equal the stored ones, same first loss, no features needed."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from seeing_sound.dataset import PairsDataset
from seeing_sound.errors import SeeingSoundError
from seeing_sound.features import compute_features, find_feature_set
from seeing_sound.model.training.config import TrainConfig
from seeing_sound.model.training.data import OnlineVae, collate_audio, load_pixels
from seeing_sound.model.training.recipe import train
from seeing_sound.testing.data import write_sound_pattern_dataset
from seeing_sound.testing.models import build_tiny_ast, build_tiny_pixart

RES = 16  # the tiny VAE downsamples by 2: 8x8 latents, the tiny transformer's sample size


@pytest.fixture(scope="module")
def featurized(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae_online")
    ast, pixart = build_tiny_ast(root / "ast"), build_tiny_pixart(root / "pixart")
    # 20 px images: resized (bicubic) and center-cropped to 16, as the features stage does
    write_sound_pattern_dataset(root / "ds", root / "images", per_class=3, image_size=20)
    compute_features(root / "ds", ast=str(ast), vae=str(pixart), resolution=RES, batch_size=5, progress=False)
    return root, ast, pixart


def _online_latents(ds: PairsDataset, rows: list[int], pixart) -> tuple[np.ndarray, np.ndarray]:
    items = [{"row": r, "pixels": torch.from_numpy(load_pixels(ds, r, RES))} for r in rows]
    batch = collate_audio(items)
    mean, std = OnlineVae(str(pixart), RES, "cpu")(batch["pixels"], rows=batch["row"])
    return mean.float().numpy(), std.float().numpy()


def _assert_fp16_equal(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape
    # both are fp16 roundings of float32 latents; another batch split may flip one rounding step
    assert np.all(np.abs(got - ref) <= np.abs(ref) * 2**-10 + 1e-6)


def _assert_equal_to_features(ds_path, pixart) -> None:
    stored = load_file(str(find_feature_set(ds_path, "vae").shards[0]))
    rows = stored["rows"].tolist()
    mean, std = _online_latents(PairsDataset.open(ds_path), rows, pixart)
    _assert_fp16_equal(mean, stored["mean"].astype(np.float32))
    _assert_fp16_equal(std, stored["std"].astype(np.float32))


def test_online_latents_equal_the_stored_features_up_to_fp16(featurized):
    root, _, pixart = featurized
    _assert_equal_to_features(root / "ds", pixart)


def _base(root, ast, pixart, **kw):
    return dict(
        dataset=str(root / "ds"),
        pretrained=str(pixart),
        batch_size=4,
        max_steps=1,
        sample_every=0,
        checkpoint_every=1,
        progress=False,
        ast_model=str(ast),
        **kw,
    )


def test_vae_online_gives_the_precomputed_first_loss_and_resume_refuses_a_switch(featurized, tmp_path):
    root, ast, pixart = featurized
    base = _base(root, ast, pixart)
    pre = train(TrainConfig(out=str(tmp_path / "pre"), **base))
    online = train(TrainConfig(out=str(tmp_path / "vae"), vae_online=True, vae_resolution=RES, **base))
    both = train(TrainConfig(out=str(tmp_path / "both"), vae_online=True, vae_resolution=RES, ast_online=True, **base))
    assert abs(online.losses[1] - pre.losses[1]) <= 1e-3
    assert abs(both.losses[1] - pre.losses[1]) <= 1e-3
    record = json.loads((tmp_path / "vae" / "train_config.json").read_text())
    assert record["vae_online"] is True and record["vae_resolution"] == RES and record["vae_features"] is None
    assert record["datasets"][0]["vae_online"] == {"model": str(pixart), "resolution": RES}
    assert record["datasets"][0]["rows"] == 12 and record["datasets"][0]["vae_fingerprint"] is None
    more = {**base, "max_steps": 2}
    with pytest.raises(SeeingSoundError, match="vae_online"):  # online -> precomputed
        train(TrainConfig(out=str(tmp_path / "vae"), resume="latest", **more))
    with pytest.raises(SeeingSoundError, match="vae_online"):  # precomputed -> online
        train(TrainConfig(out=str(tmp_path / "pre"), resume="latest", vae_online=True, vae_resolution=RES, **more))
    with pytest.raises(SeeingSoundError, match="vae_resolution"):
        train(TrainConfig(out=str(tmp_path / "vae"), resume="latest", vae_online=True, vae_resolution=8, **more))
    # the same settings resume
    again = train(TrainConfig(out=str(tmp_path / "vae"), resume="latest", vae_online=True, vae_resolution=RES, **more))
    assert list(again.losses) == [2]


def test_both_online_from_the_cli_on_a_dataset_without_features(featurized, tmp_path):
    from seeing_sound.cli import main

    _, ast, pixart = featurized
    write_sound_pattern_dataset(tmp_path / "raw", tmp_path / "raw-images", per_class=1, image_size=20)
    assert not (tmp_path / "raw" / "features").exists()
    out = tmp_path / "run"
    argv = ["--quiet", "train", str(tmp_path / "raw"), "--out", str(out), "--pretrained", str(pixart)]
    argv += ["--ast-online", "--ast-model", str(ast), "--vae-online", "--vae-resolution", str(RES)]
    argv += ["--batch-size", "4", "--max-steps", "1", "--checkpoint-every", "1", "--sample-every", "1"]
    assert main([*argv, "--sample-steps", "1", "--num-validation", "2"]) == 0
    assert (out / "checkpoints" / "step-00000001" / "state.json").is_file()
    assert (out / "samples" / "step-00000001.png").is_file()  # ground-truth column encoded online
    index = json.loads((out / "pipeline" / "model_index.json").read_text())
    assert index["resolution"] == [RES, RES]  # what generate reads the training size from
    assert not (tmp_path / "raw" / "features").exists()
    # a feature folder is not read online: naming one is refused
    assert main([*argv, "--vae-features", "vae-x"]) != 0


def test_an_unreadable_image_stops_the_run_naming_it(featurized, tmp_path):
    root, ast, pixart = featurized
    write_sound_pattern_dataset(tmp_path / "raw", tmp_path / "raw-images", per_class=1, image_size=20)
    bad = sorted((tmp_path / "raw-images").iterdir())[0]
    bad.write_bytes(b"not an image")
    base = {**_base(root, ast, pixart), "dataset": str(tmp_path / "raw")}
    cfg = TrainConfig(out=str(tmp_path / "run"), vae_online=True, ast_online=True, vae_resolution=RES, **base)
    with pytest.raises(SeeingSoundError, match=f"vae_online: cannot read the image of row .*{bad.name}"):
        train(cfg)


def test_images_in_a_tar_shard_train_online(featurized, tmp_path):
    """``sonify --images shards.tar``: the images stay in the shard; online latents equal features' there too."""
    from seeing_sound.concepts import VLMSpec
    from seeing_sound.demo import copy_demo_images, demo_sidecar
    from seeing_sound.pool import build_pool
    from seeing_sound.sonify import sonify
    from seeing_sound.testing.sounds import write_sound_library

    _, ast, pixart = featurized
    sounds = write_sound_library(tmp_path / "sounds", variants=1, seconds=3)
    build_pool([sounds], tmp_path / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    copy_demo_images(tmp_path / "images")
    with tarfile.open(tmp_path / "shards.tar", "w") as tf:
        for p in sorted((tmp_path / "images").iterdir()):
            info = tarfile.TarInfo(p.name)
            info.size = p.stat().st_size
            tf.addfile(info, io.BytesIO(p.read_bytes()))
    vlm = VLMSpec("sidecar", str(demo_sidecar()), name="demo")
    sonify(
        str(tmp_path / "shards.tar"), tmp_path / "pool", tmp_path / "ds", vlms=[vlm], encoder="text", topk=3, seed=5,
        progress=False,
    )  # fmt: skip
    ds = PairsDataset.open(tmp_path / "ds")
    assert not ds.images_spec.endswith("images") and isinstance(ds.image_source(0), bytes)
    n = len(ds)
    assert n >= 4
    compute_features(tmp_path / "ds", ast=None, vae=str(pixart), resolution=RES, batch_size=3, progress=False)
    _assert_equal_to_features(tmp_path / "ds", pixart)
    cfg = TrainConfig(
        dataset=str(tmp_path / "ds"), out=str(tmp_path / "run"), pretrained=str(pixart), ast_model=str(ast),
        ast_online=True, vae_online=True, vae_resolution=RES, batch_size=min(4, n), max_steps=1,
        sample_every=0, checkpoint_every=1, progress=False,
    )  # fmt: skip
    result = train(cfg)
    assert np.isfinite(result.losses[1])
    assert (tmp_path / "run" / "checkpoints" / "step-00000001").is_dir()
