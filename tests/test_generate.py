"""AudioPixArtPipeline (check_inputs, determinism, save/load, schedulers) and `seeing-sound generate`."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from seeing_sound.encoders.ast import load_ast
from seeing_sound.model.audio_pixart import AudioPixArt
from seeing_sound.model.loading import load_scheduler, load_vae
from seeing_sound.model.pipeline import AudioPixArtPipeline
from seeing_sound.testing.data import sound_of_type
from seeing_sound.testing.models import build_tiny_ast, build_tiny_pixart


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    pixart, ast = build_tiny_pixart(root / "pixart"), build_tiny_ast(root / "ast")
    enc = load_ast(str(ast))
    pipe = AudioPixArtPipeline(
        AudioPixArt.from_pixart(str(pixart), audio_embed_dim=32),
        load_vae(str(pixart)),
        load_scheduler(str(pixart)),
        enc.model,
        enc.feature_extractor,
    )
    pipe.save_pretrained(root / "run" / "pipeline")
    return root / "run"


@pytest.fixture(scope="module")
def pipe(saved_pipeline):
    p = AudioPixArtPipeline.from_pretrained(saved_pipeline / "pipeline")
    p.set_progress_bar_config(disable=True)
    return p


def _tone(seconds=1.0):
    return sound_of_type(0, np.random.default_rng(0), seconds=seconds)


def test_deterministic_under_seed_and_batch_independent(pipe):
    a = pipe(audio=_tone(), generator=torch.Generator().manual_seed(1), num_inference_steps=3, output_type="np").images
    b = pipe(audio=_tone(), generator=torch.Generator().manual_seed(1), num_inference_steps=3, output_type="np").images
    assert a.shape == (1, 16, 16, 3) and np.array_equal(a, b)
    gens = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    two = pipe(audio=_tone(), generator=gens, num_images_per_prompt=2, num_inference_steps=3, output_type="np").images
    np.testing.assert_allclose(two[0], a[0], atol=1e-5)
    assert not np.allclose(two[0], two[1])


def test_audio_and_embeds_paths_agree_and_long_audio(pipe):
    wave = _tone()
    embeds = pipe.encode_audio(wave)
    assert embeds.shape == (1, 110, 32)
    kw = dict(num_inference_steps=2, output_type="latent")
    from_audio = pipe(audio=wave, generator=torch.Generator().manual_seed(0), **kw).images
    from_embeds = pipe(audio_embeds=embeds, generator=torch.Generator().manual_seed(0), **kw).images
    torch.testing.assert_close(from_audio, from_embeds)
    long = pipe.encode_audio(np.tile(wave, 3))  # 3 s > the tiny AST's 1 s window: windows averaged
    assert long.shape == (1, 110, 32)
    resampled = pipe.encode_audio(wave[::2], sampling_rate=8000)
    assert resampled.shape == (1, 110, 32)


def test_ast_pool_is_saved_and_applied_to_audio(pipe, tmp_path):
    """A model trained on `--ast-pool N` features must see N-pooled tokens at generation too."""
    from seeing_sound.encoders.ast import pool_ast_tokens

    pooled = AudioPixArtPipeline(
        pipe.transformer, pipe.vae, pipe.scheduler, pipe.audio_encoder, pipe.feature_extractor, ast_pool=9
    )
    pooled.save_pretrained(tmp_path / "pooled")
    loaded = AudioPixArtPipeline.from_pretrained(tmp_path / "pooled")
    assert loaded.config.ast_pool == 9
    wave = _tone()
    tokens = loaded.encode_audio(wave)
    assert tokens.shape == (1, 2 + 12, 32)  # 12 frequency bands x ceil(9 / 9) time steps
    expected = pool_ast_tokens(pipe.encode_audio(wave).numpy(), 12, 9, 9)
    np.testing.assert_allclose(tokens.numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="ast_pool"):
        AudioPixArtPipeline(pipe.transformer, pipe.vae, pipe.scheduler, ast_pool=0)


def test_any_scheduler_works_including_learned_variance_ddpm(pipe):
    from diffusers import DDPMScheduler

    ddpm = DDPMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02, variance_type="learned_range")
    p = AudioPixArtPipeline(pipe.transformer, pipe.vae, ddpm)
    p.set_progress_bar_config(disable=True)
    img = p(
        audio_embeds=torch.randn(1, 5, 32),
        num_inference_steps=3,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images
    assert np.isfinite(img).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one"),
        ({"audio": _tone(), "audio_embeds": torch.zeros(1, 3, 32)}, "exactly one"),
        ({"audio_embeds": torch.zeros(1, 3, 31)}, "audio_embeds"),
        ({"audio": np.zeros(0, np.float32)}, "non-empty"),
        ({"audio": np.array([np.nan, 0.0] * 300, np.float32)}, "NaN"),
        ({"audio": _tone(), "height": 18}, "height"),
        ({"audio": _tone(), "num_inference_steps": 0}, "num_inference_steps"),
        ({"audio": _tone(), "guidance_scale": -1.0}, "guidance_scale"),
        ({"audio": _tone(), "num_images_per_prompt": 0}, "num_images_per_prompt"),
        ({"audio": _tone(), "sampling_rate": 0}, "sampling_rate"),
    ],
)
def test_check_inputs(pipe, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pipe(**kwargs)


def _write_audio(tmp_path):
    files = []
    for kind, name in ((0, "low.wav"), (3, "hiss.flac")):
        path = tmp_path / name
        sf.write(path, sound_of_type(kind, np.random.default_rng(kind), seconds=0.7), 16000)
        files.append(str(path))
    (tmp_path / "broken.wav").write_bytes(b"nope")
    return [*files, str(tmp_path / "broken.wav")]


def test_generate_cli_in_process(saved_pipeline, tmp_path):
    from seeing_sound.cli import main

    files = _write_audio(tmp_path)
    out = tmp_path / "out"
    argv = [
        "--quiet",
        "generate",
        *files,
        "--model",
        str(saved_pipeline),
        "--out",
        str(out),
        "--seed",
        "5",
        "--num-images",
        "2",
        "--steps",
        "2",
    ]
    assert main(argv) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["contact-sheet.png", "hiss-seed5.png", "hiss-seed6.png", "low-seed5.png", "low-seed6.png"]
    report = json.loads((out / "generate.json").read_text())
    assert list(report["skipped"]) == [files[2]]
    first = (out / "low-seed5.png").read_bytes()
    assert main([*argv[:3], files[0], *argv[5:]]) == 0  # alone, the same file and seed give the same image
    assert (out / "low-seed5.png").read_bytes() == first


def test_generate_entry_point_subprocess(saved_pipeline, tmp_path):
    files = _write_audio(tmp_path)[:1]
    exe = os.path.join(os.path.dirname(sys.executable), "seeing-sound")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            exe,
            "--quiet",
            "generate",
            *files,
            "--model",
            str(saved_pipeline / "pipeline"),
            "--out",
            str(tmp_path / "o"),
            "--steps",
            "2",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "low-seed0.png").is_file()
    bad = subprocess.run(
        [exe, "generate", *files, "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 1 and "--model" in bad.stderr


# --- the training resolution is the default size ----------------------------------------------


@pytest.fixture(scope="module")
def run_at_32px(tmp_path_factory, tiny_pixart_dir, tiny_ast_dir):
    """A real (one-step) training run on 32 px VAE features: latents 16 x 16, where the tiny PixArt's
    own sample_size gives 16 px."""
    from seeing_sound.model.training.config import TrainConfig
    from seeing_sound.model.training.recipe import train
    from seeing_sound.testing.data import write_synthetic_features

    root = tmp_path_factory.mktemp("run32")
    ds = write_synthetic_features(root / "ds", num_pairs=8, latent_size=16, vae_model=str(tiny_pixart_dir))
    (ast_card,) = (ds / "features").glob("ast-*/features.json")
    ast_card.write_text(json.dumps({**json.loads(ast_card.read_text()), "model": str(tiny_ast_dir)}))
    cfg = TrainConfig(dataset=str(ds), out=str(root / "run"), pretrained=str(tiny_pixart_dir), batch_size=4,
                      max_steps=1, sample_every=0, progress=False)  # fmt: skip
    train(cfg)
    return root / "run"


def test_generate_defaults_to_the_training_resolution(run_at_32px, tmp_path):
    from PIL import Image

    from seeing_sound.cli import main

    files = _write_audio(tmp_path)[:1]
    argv = ["--quiet", "generate", *files, "--model", str(run_at_32px), "--steps", "1"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    with Image.open(tmp_path / "a" / "low-seed0.png") as im:
        assert im.size == (32, 32)  # the size it was trained at, not the transformer's 16 px default
    size = json.loads((tmp_path / "a" / "generate.json").read_text())["size"]
    assert (size["height"], size["width"]) == (32, 32) and "model_index.json" in size["source"]  # saved by train
    index = run_at_32px / "pipeline" / "model_index.json"
    index.write_text(json.dumps({k: v for k, v in json.loads(index.read_text()).items() if k != "resolution"}))
    assert main([*argv, "--out", str(tmp_path / "c")]) == 0  # a pipeline saved before it recorded one: the run's cards
    size = json.loads((tmp_path / "c" / "generate.json").read_text())["size"]
    assert (size["height"], size["width"]) == (32, 32) and "features.json" in size["source"]
    assert main([*argv, "--out", str(tmp_path / "b"), "--height", "16", "--width", "16"]) == 0
    with Image.open(tmp_path / "b" / "low-seed0.png") as im:
        assert im.size == (16, 16)  # the flags still override
    assert json.loads((tmp_path / "b" / "generate.json").read_text())["size"]["source"] == "given"


def test_a_pipeline_records_its_resolution(pipe, tmp_path):
    """A pipeline saved with ``resolution`` (e.g. pushed without its run) generates at it by default."""
    sized = AudioPixArtPipeline(
        pipe.transformer, pipe.vae, pipe.scheduler, pipe.audio_encoder, pipe.feature_extractor, resolution=32
    )
    sized.save_pretrained(tmp_path / "sized")
    loaded = AudioPixArtPipeline.from_pretrained(tmp_path / "sized")
    loaded.set_progress_bar_config(disable=True)
    assert list(loaded.config.resolution) == [32, 32]
    img = loaded(audio=_tone(), num_inference_steps=1, output_type="np").images
    assert img.shape == (1, 32, 32, 3)
    from seeing_sound.model.generate import training_resolution

    assert training_resolution(tmp_path / "sized", loaded.vae_scale_factor)["height"] == 32
    with pytest.raises(ValueError, match="resolution"):
        AudioPixArtPipeline(pipe.transformer, pipe.vae, pipe.scheduler, resolution=0)
