"""Inference loudness (A.9): ``generate`` feeds the model audio at the level it was trained at."""

import json
import subprocess
import sys

import numpy as np
import pyloudnorm
import pytest

from seeing_sound.model.generate import DEFAULT_INFERENCE_LUFS, normalize_input, training_loudness
from seeing_sound.testing.models import build_tiny_pipeline
from seeing_sound.testing.signals import noise, write_audio

SR = 16000


def test_normalize_input_reaches_the_target_and_keeps_silence():
    x = noise(2, SR, amp=0.01, seed=1)
    y, info = normalize_input(x, SR, -23.0)
    assert pyloudnorm.Meter(SR).integrated_loudness(y.astype(np.float64)) == pytest.approx(-23.0, abs=0.05)
    assert info["gain_db"] == pytest.approx(-23.0 - info["input_lufs"], abs=1e-3)
    z, info = normalize_input(np.zeros(SR, np.float32), SR, -23.0)
    assert not z.any() and info["input_lufs"] is None and info["gain_db"] == 0.0


def test_training_loudness_from_run_dataset_pipeline_or_default(tmp_path):
    assert training_loudness(tmp_path)["target_lufs"] == DEFAULT_INFERENCE_LUFS
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "dataset.json").write_text(json.dumps({"params": {"lufs_range": [-30.0, -20.0]}}))
    run = tmp_path / "run"
    (run / "pipeline").mkdir(parents=True)
    (run / "train_config.json").write_text(json.dumps({"dataset": str(ds)}))
    for m in (run, run / "pipeline"):
        got = training_loudness(m)
        assert got["target_lufs"] == -25.0 and got["lufs_range"] == [-30.0, -20.0]
    (run / "pipeline" / "seeing_sound_loudness.json").write_text(json.dumps({"target_lufs": -21.5}))
    assert training_loudness(run)["target_lufs"] == -21.5


def test_training_loudness_of_a_run_on_several_datasets_spans_their_ranges(tmp_path):
    cards = {"a": [-30.0, -20.0], "b": None, "c": [-26.0, -14.0]}  # b: imported real pairs record none
    for name, lufs_range in cards.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "dataset.json").write_text(json.dumps({"params": {"lufs_range": lufs_range}}))
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_config.json").write_text(json.dumps({"dataset": [str(tmp_path / n) for n in cards]}))
    got = training_loudness(run)
    assert got["lufs_range"] == [-30.0, -14.0] and got["target_lufs"] == -22.0


def test_generate_normalizes_by_default_and_records_it(tmp_path, tiny_pixart_dir, tiny_ast_dir):
    from seeing_sound.cli import main

    build_tiny_pipeline(tmp_path / "run" / "pipeline", tiny_pixart_dir, tiny_ast_dir)
    quiet, loud = tmp_path / "quiet.wav", tmp_path / "loud.wav"
    write_audio(quiet, noise(1, SR, amp=0.01, seed=2), SR)
    write_audio(loud, noise(1, SR, amp=0.1, seed=2), SR)  # the same sound 20 dB louder
    base = ["--quiet", "generate", "--model", str(tmp_path / "run"), "--steps", "2"]
    assert main([*base, str(quiet), str(loud), "--out", str(tmp_path / "a")]) == 0
    rep = json.loads((tmp_path / "a" / "generate.json").read_text())
    assert rep["loudness"]["target_lufs"] == DEFAULT_INFERENCE_LUFS and rep["loudness"]["source"] == "default"
    files = rep["loudness"]["files"]
    assert files[str(loud)]["gain_db"] - files[str(quiet)]["gain_db"] == pytest.approx(-20.0, abs=0.1)
    # normalized: the same sound at two levels gives the same image; not normalized, it need not
    a = tmp_path / "a"
    assert (a / "quiet-seed0.png").read_bytes() != b""
    img = [np.asarray(__import__("PIL.Image").Image.open(a / f"{n}-seed0.png"), np.float32) for n in ("quiet", "loud")]
    assert np.abs(img[0] - img[1]).max() <= 2.0
    assert main([*base, str(quiet), "--no-normalize", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "generate.json").read_text())["loudness"] is None
    assert main([*base, str(quiet), "--target-lufs", "-30", "--out", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / "generate.json").read_text())["loudness"]["target_lufs"] == -30.0


def test_model_package_exports_lazily():
    code = (
        "import sys, seeing_sound.model as m; assert 'torch' not in sys.modules; "
        "from seeing_sound.model import AudioPixArt, AudioPixArtPipeline, AudioProjector; "
        "assert AudioPixArtPipeline.__name__ == 'AudioPixArtPipeline' and 'torch' in sys.modules; "
        "assert set(m.__all__) <= set(dir(m))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
