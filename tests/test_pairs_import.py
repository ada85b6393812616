"""pairs import: real (image, audio) pairs and videos -> a pairs dataset that features and train accept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from seeing_sound.cli import main
from seeing_sound.dataset import PairsDataset
from seeing_sound.testing.data import pattern_image, sound_of_type
from seeing_sound.testing.signals import write_audio

SR = 16000


@pytest.fixture()
def src(tmp_path) -> Path:
    """4 good pairs in class folders, 2 videos (one without audio), and every kind of bad input."""
    rng = np.random.default_rng(0)
    root = tmp_path / "src"
    for n, (cls, kind, ext, aext) in enumerate(
        [
            ("cats", 0, ".png", ".wav"),
            ("cats", 1, ".jpg", ".flac"),
            ("dogs", 2, ".png", ".ogg"),
            ("dogs", 3, ".png", ".wav"),
        ]
    ):
        (root / cls).mkdir(parents=True, exist_ok=True)
        pattern_image(kind, rng, 24).convert("RGB").save(root / cls / f"clip{n}{ext}")
        rate = 22050 if n == 1 else SR
        write_audio(root / cls / f"clip{n}{aext}", sound_of_type(kind, rng, seconds=1.5, sr=rate), rate)
    pattern_image(0, rng).save(root / "lonely.png")  # unpaired image
    write_audio(root / "orphan.wav", sound_of_type(1, rng), SR)  # unpaired audio
    pattern_image(1, rng).save(root / "twice.png")  # ambiguous: two images, one audio
    pattern_image(1, rng).save(root / "twice.jpg")
    write_audio(root / "twice.wav", sound_of_type(1, rng), SR)
    (root / "broken.png").write_bytes(b"not a png")  # failed: image unreadable
    write_audio(root / "broken.wav", sound_of_type(2, rng), SR)
    pattern_image(2, rng).save(root / "mute.png")  # failed: audio unreadable
    (root / "mute.wav").write_bytes(b"RIFF....not audio")
    (root / "notes.txt").write_text("ignored\n")
    return root


def _videos(root: Path) -> None:
    pytest.importorskip("av")
    from seeing_sound.bench.synthetic import write_video

    write_video(root / "videos" / "tone.mp4", frames=11, fps=10, tone_hz=660.0)
    write_video(root / "videos" / "silent.mp4", tone_hz=None)  # failed: no_audio


def test_import_counts_every_input_and_resumes(src, tmp_path):
    from seeing_sound.dataset.verify import verify_dataset

    _videos(src)
    out = tmp_path / "ds"
    argv = ["--quiet", "pairs", "import", str(src), "--out", str(out), "--pairs-per-shard", "2", "--json"]
    assert main(argv) == 0
    card = json.loads((out / "dataset.json").read_text())
    c = card["counts"]
    assert (c["in"], c["out"], c["skipped"], c["failed"]) == (11, 5, 3, 3)
    assert c["in"] == c["out"] + c["skipped"] + c["failed"] and c["ignored_files"] == 1
    assert c["errors"] == {
        "ambiguous": 1,
        "audio_unreadable": 1,
        "image_unreadable": 1,
        "no_audio": 1,
        "unpaired_audio": 1,
        "unpaired_image": 1,
    }
    errors = pq.read_table(out / "import" / "errors.parquet").to_pylist()
    assert {e["pair_id"] for e in errors} == {"lonely", "orphan", "twice", "broken", "mute", "videos__silent"}
    ds = PairsDataset.open(out)
    assert len(ds) == 5 and card["sample_rate"] == SR and card["source"]["kind"] == "import"
    meta = ds.metadata.to_pylist()
    assert [r["pair_id"] for r in meta] == ["cats__clip0", "cats__clip1", "dogs__clip2", "dogs__clip3", "videos__tone"]
    assert [r["scene"] for r in meta] == ["cats", "cats", "dogs", "dogs", "videos"]
    assert meta[1]["components"][0]["chunk_source"] == "cats/clip1.flac"
    assert meta[1]["num_samples"] == pytest.approx(1.5 * SR, abs=2)  # resampled from 22.05 kHz
    assert meta[4]["num_samples"] >= 1.0 * SR and meta[4]["components"][0]["chunk_offset_s"] == pytest.approx(
        0.5, abs=0.11
    )
    for i in range(len(ds)):
        assert ds.image_path(i).is_file() and ds.audio(i).dtype == np.float32
    report = verify_dataset(out)
    assert report.ok and report.images_ok == 5
    before = {p: p.read_bytes() for p in sorted((out / "metadata").iterdir())}
    assert main(argv) == 0  # rerun: every shard already done, the same files
    assert {p: p.read_bytes() for p in sorted((out / "metadata").iterdir())} == before


def test_killed_shard_is_redone(src, tmp_path):
    from seeing_sound.pairs import import_pairs

    out = tmp_path / "ds"
    first = import_pairs(src, out, pairs_per_shard=1, progress=False)
    marker = next((out / "_stages" / "pairs-import").glob("shard-000001.done.json"))
    marker.unlink()  # as if killed before the shard finished
    again = import_pairs(src, out, pairs_per_shard=1, progress=False)
    assert again.shards_run == 1 and again.counts == first.counts


def test_bad_arguments(src, tmp_path):
    from seeing_sound.pairs import import_pairs

    with pytest.raises(ValueError, match="audio_format"):
        import_pairs(src, tmp_path / "x", audio_format="mp3")
    with pytest.raises(FileNotFoundError):
        import_pairs(tmp_path / "missing", tmp_path / "x")
    assert main(["--quiet", "pairs", "import", str(src), "--out", str(src / "ds")]) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--quiet", "pairs", "import", str(empty), "--out", str(tmp_path / "y")]) == 1


def test_features_and_train_accept_the_imported_dataset(src, tmp_path):
    pytest.importorskip("torch")
    from seeing_sound.features import compute_features
    from seeing_sound.model.training.config import TrainConfig
    from seeing_sound.model.training.recipe import train
    from seeing_sound.pairs import import_pairs
    from seeing_sound.testing.models import build_tiny_ast, build_tiny_pixart

    out = tmp_path / "ds"
    import_pairs(src, out, progress=False)
    ast, pixart = build_tiny_ast(tmp_path / "ast"), build_tiny_pixart(tmp_path / "pixart")
    reports = compute_features(out, ast=str(ast), vae=str(pixart), resolution=16, progress=False)
    assert reports["ast"].items_out == 4 and reports["vae"].items_out == 4
    result = train(
        TrainConfig(
            dataset=str(out),
            out=str(tmp_path / "run"),
            pretrained=str(pixart),
            batch_size=2,
            max_steps=2,
            checkpoint_every=2,
            sample_every=0,
            progress=False,
        )
    )
    assert result is not None
    assert (tmp_path / "run" / "log.jsonl").read_text().count("\n") == 2
