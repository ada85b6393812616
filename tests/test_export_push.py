"""push: the folder it would upload loads back through from_pretrained; nothing goes over the network."""

import json
import os

import numpy as np
import pytest

from seeing_sound.cli import main

huggingface_hub = pytest.importorskip("huggingface_hub")

FAKE_TOKEN = "hf_" + "x" * 34


@pytest.fixture
def no_network(monkeypatch):
    """Every Hub call recorded, none sent; a token in the environment that must never be printed."""
    calls = []

    def fake(name):
        def call(self, *args, **kwargs):
            folder = kwargs.get("folder_path")
            files = (
                sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)
                if folder
                else None
            )
            calls.append((name, args, kwargs, files))
            return None

        return call

    for name in ("create_repo", "upload_large_folder", "upload_folder", "create_commit", "preupload_lfs_files"):
        if hasattr(huggingface_hub.HfApi, name):
            monkeypatch.setattr(huggingface_hub.HfApi, name, fake(name))
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return calls


def _run_folder(tmp_path, tiny_pixart_dir, tiny_ast_dir):
    from seeing_sound.encoders.ast import load_ast
    from seeing_sound.model import AudioPixArt, AudioPixArtPipeline
    from seeing_sound.model.loading import load_scheduler, load_vae

    enc = load_ast(str(tiny_ast_dir))
    pipe = AudioPixArtPipeline(
        AudioPixArt.from_pixart(str(tiny_pixart_dir), audio_embed_dim=32),
        load_vae(str(tiny_pixart_dir)),
        load_scheduler(str(tiny_pixart_dir)),
        enc.model,
        enc.feature_extractor,
    )
    run = tmp_path / "run"
    pipe.save_pretrained(run / "pipeline")
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "dataset.json").write_text(json.dumps({"params": {"lufs_range": [-26.0, -22.0]}}))
    (run / "train_config.json").write_text(json.dumps({"dataset": str(ds), "lr": 1e-4}))
    return run, pipe


def test_push_run_stages_a_loadable_pipeline(tmp_path, tiny_pixart_dir, tiny_ast_dir, no_network, capsys):
    from seeing_sound.model import AudioPixArtPipeline

    run, pipe = _run_folder(tmp_path, tiny_pixart_dir, tiny_ast_dir)
    staging = tmp_path / "staging"
    argv = ["push", str(run), "--repo", "me/audio-pixart", "--private", "--staging", str(staging)]
    assert main(argv) == 0
    names = [c[0] for c in no_network]
    assert names[0] == "create_repo" and names[1] in ("upload_large_folder", "upload_folder")
    create, upload = no_network[0], no_network[1]
    assert create[1] == ("me/audio-pixart",) and create[2]["repo_type"] == "model" and create[2]["private"] is True
    assert upload[2]["repo_id"] == "me/audio-pixart" and upload[2]["repo_type"] == "model"
    assert upload[2]["folder_path"] == str(staging)
    assert {"model_index.json", "README.md", "seeing_sound_loudness.json"} <= set(upload[3])
    out = capsys.readouterr()
    assert FAKE_TOKEN not in out.out + out.err
    # what would be uploaded loads back and generates like the original
    loaded = AudioPixArtPipeline.from_pretrained(str(staging))
    assert json.loads((staging / "seeing_sound_loudness.json").read_text())["target_lufs"] == -24.0
    card = (staging / "README.md").read_text()
    assert "AudioPixArtPipeline.from_pretrained" in card
    assert str(tmp_path) not in card and '"dataset": "ds"' in card  # the training machine's paths stay home
    import torch

    for p in (pipe, loaded):
        p.set_progress_bar_config(disable=True)
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    a, b = (
        np.asarray(
            p(audio=wave, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np").images
        )
        for p in (pipe, loaded)
    )
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_push_dataset_exports_then_uploads(tmp_path, no_network, capsys):
    from seeing_sound.testing.data import write_sound_pattern_dataset

    write_sound_pattern_dataset(tmp_path / "ds", tmp_path / "images", per_class=2)
    assert main(["push", str(tmp_path / "ds"), "--repo", "me/pairs"]) == 0
    upload = next(c for c in no_network if c[0] in ("upload_large_folder", "upload_folder"))
    assert upload[2]["repo_type"] == "dataset" and "README.md" in upload[3]
    assert any(f.startswith("data/train-") for f in upload[3])
    assert not os.path.exists(upload[2]["folder_path"])  # the temporary staging folder is removed
    out = capsys.readouterr()
    assert FAKE_TOKEN not in out.out + out.err and "pushed" in out.out
    assert main(["push", str(tmp_path / "ds"), "--repo", "not a repo"]) == 2
    assert main(["push", str(tmp_path / "images"), "--repo", "me/x"]) == 1  # neither a dataset nor a run
