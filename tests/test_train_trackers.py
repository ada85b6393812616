"""``train --report-to tensorboard|wandb``: what a tracker receives, read back from its own files.

TensorBoard's event files are read with its ``EventAccumulator``; an offline W&B run's
``run-*.wandb`` transaction log (no ``wandb-summary.json`` is written offline) is read record by
record into W&B's own protobuf ``Record``s. Each test skips, with the reason, where its tracker is
not installed (``pip install 'seeing-sound[track]'``).
"""

import json
import struct
from pathlib import Path

import pytest
from PIL import Image

from seeing_sound.errors import SeeingSoundError
from seeing_sound.model.training.config import TrainConfig
from seeing_sound.model.training.recipe import TRACKER_PROJECT, tracker_config, train
from seeing_sound.testing.data import write_synthetic_features

SCALARS = {"loss", "lr", "grad_norm", "samples_per_second"}
NO_TENSORBOARD = "tensorboard not installed (the track extra)"
NO_WANDB = "wandb not installed (the track extra)"


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_pixart_dir):
    root = tmp_path_factory.mktemp("trackers")
    write_synthetic_features(root / "ds", num_pairs=16, vae_model=str(tiny_pixart_dir))
    return root / "ds", tiny_pixart_dir


def _cfg(data, out, **kw) -> TrainConfig:
    ds, pixart = data
    base = dict(
        dataset=str(ds), out=str(out), pretrained=str(pixart), batch_size=4, lr=1e-3, sample_every=0, progress=False
    )
    return TrainConfig(**{**base, **kw})


def _argv(data, out, *flags) -> list[str]:
    ds, pixart = data
    return [
        "--quiet",
        "train",
        str(ds),
        "--out",
        str(out),
        "--pretrained",
        str(pixart),
        "--batch-size",
        "4",
        "--loss",
        "eps-mse",
        "--sample-steps",
        "2",
        "--num-validation",
        "2",
        *flags,
    ]


def _log(out: Path) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())}


def _events(out: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "logs" / TRACKER_PROJECT), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_tensorboard_gets_scalars_at_each_logging_step_and_every_grid(data, tmp_path):
    pytest.importorskip("tensorboard", reason=NO_TENSORBOARD)
    from seeing_sound.cli import main

    out = tmp_path / "run"
    flags = ("--max-steps", "3", "--log-every", "2", "--sample-every", "2", "--report-to", "tensorboard")
    assert main(_argv(data, out, *flags)) == 0
    events = _events(out)
    assert set(events.Tags()["scalars"]) >= SCALARS
    rows = _log(out)  # log.jsonl still holds every step, as without a tracker
    assert sorted(rows) == [1, 2, 3] and set(rows[1]) == {"step", "loss", "lr"}
    for name in SCALARS:
        assert [e.step for e in events.Scalars(name)] == [2, 3]  # --log-every 2, and the last step
    for e in events.Scalars("loss"):
        assert e.value == pytest.approx(rows[e.step]["loss"], rel=1e-6)  # float32 in the event file
    for e in events.Scalars("lr"):
        assert e.value == pytest.approx(rows[e.step]["lr"], rel=1e-6)
    assert all(e.value > 0 for name in ("grad_norm", "samples_per_second") for e in events.Scalars(name))
    grids = events.Images("samples")
    assert [g.step for g in grids] == [2, 3]  # --sample-every 2, and the last step
    png = Image.open(out / "samples" / "step-00000002.png")
    assert (grids[0].width, grids[0].height) == png.size
    (hparams,) = (out / "logs" / TRACKER_PROJECT).glob("*/hparams.yml")  # the run's record as hyperparameters
    text = hparams.read_text()
    assert "batch_size: 4" in text and "datasets.0.rows: 16" in text and "report_to: tensorboard" in text


def test_tensorboard_after_a_kill_keeps_one_point_per_step_and_tracking_changes_no_number(data, tmp_path):
    pytest.importorskip("tensorboard", reason=NO_TENSORBOARD)
    # max_grad_norm=0: no clipping, the tracker's grad norm is measured with an infinite bound.
    plain = train(_cfg(data, tmp_path / "plain", max_steps=4, max_grad_norm=0))
    out = tmp_path / "run"
    cfg = _cfg(data, out, max_steps=3, checkpoint_every=2, log_every=1, max_grad_norm=0, report_to="tensorboard")
    train(cfg)
    for path in (out / "checkpoints" / "step-00000003").iterdir():  # killed before step 3's checkpoint
        path.unlink()
    (out / "checkpoints" / "step-00000003").rmdir()
    resumed = train(cfg.replace(max_steps=4, resume="latest"))
    assert sorted(resumed.losses) == [3, 4]
    events = _events(out)
    for name in SCALARS:
        assert [e.step for e in events.Scalars(name)] == [1, 2, 3, 4]  # step 3 of the killed run purged
    rows = _log(out)
    assert {e.step: e.value for e in events.Scalars("loss")} == pytest.approx(
        {s: r["loss"] for s, r in rows.items()}, rel=1e-6
    )
    assert {s: r["loss"] for s, r in rows.items()} == plain.losses  # bit-identical to the untracked run


def _wandb_records(path: Path) -> list:
    """The protobuf records of a ``run-*.wandb`` file (LevelDB log format: 32 KiB blocks of chunks)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"  # then 2 bytes magic, 1 byte version
    pos, block, records, pending = 7, 32768, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zeroed padding
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_wandb_offline_run_holds_the_history_grids_and_config_and_stays_quiet(data, tmp_path, monkeypatch, capfd):
    pytest.importorskip("wandb", reason=NO_WANDB)
    from seeing_sound.cli import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name))
    for name in ("WANDB_DIR", "WANDB_SILENT"):  # the run goes to OUT/wandb; --quiet alone silences W&B
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "run"
    flags = ("--max-steps", "3", "--log-every", "2", "--sample-every", "2", "--report-to", "wandb")
    assert main(_argv(data, out, *flags)) == 0
    printed = capfd.readouterr()
    assert "wandb" not in (printed.out + printed.err).lower()

    (run,) = (out / "wandb").glob("offline-run-*")
    (log_file,) = run.glob("run-*.wandb")
    records = _wandb_records(log_file)
    (start,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (start.project, start.display_name) == (TRACKER_PROJECT, "run")
    config = {
        u.key: json.loads(u.value_json)
        for r in records
        if r.WhichOneof("record_type") == "config"
        for u in r.config.update
    }
    assert config["batch_size"] == 4 and config["datasets.0.rows"] == 16 and config["report_to"] == "wandb"
    history = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            history[items["_step"]] = items
    assert sorted(history) == [2, 3]
    rows = _log(out)
    for step, items in history.items():
        assert set(items) >= SCALARS
        assert items["loss"] == rows[step]["loss"] and items["lr"] == rows[step]["lr"]
        assert items["samples/_type"] == "image-file"  # the grid of this step
        grid = Image.open(run / "files" / items["samples/path"])
        assert grid.size == Image.open(out / "samples" / f"step-{step:08d}.png").size


def test_a_missing_tracker_package_stops_before_training_naming_the_extra(data, tmp_path, monkeypatch, capsys):
    import importlib.util

    from seeing_sound.cli import main

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name, *a))
    assert main(_argv(data, tmp_path / "run", "--max-steps", "1", "--report-to", "wandb")) == 1
    err = capsys.readouterr().err
    assert "--report-to wandb needs the wandb package: pip install 'seeing-sound[track]'" in err
    assert not (tmp_path / "run" / "log.jsonl").exists()
    with pytest.raises(SeeingSoundError, match=r"report_to=wandb needs the wandb package"):
        train(_cfg(data, tmp_path / "lib", max_steps=1, report_to="wandb"))


def test_tracker_config_is_the_run_record_as_flat_scalars():
    record = {
        "lr": 1e-3,
        "resume": None,
        "dataset": ["a", "b"],
        "exclude_pairs": [],
        "progress": False,
        "datasets": [{"path": "a", "rows": 16, "excluded_sha256": None}],
        "changes": [{"step": 4, "setting": "lr", "was": 1e-3, "now": 5e-4}],
    }
    assert tracker_config(record) == {
        "lr": 1e-3,
        "dataset": "a, b",
        "exclude_pairs": "",
        "progress": False,
        "datasets.0.path": "a",
        "datasets.0.rows": 16,
        "changes.0.step": 4,
        "changes.0.setting": "lr",
        "changes.0.was": 1e-3,
        "changes.0.now": 5e-4,
    }
    with pytest.raises(ValueError, match="report_to"):
        TrainConfig(dataset="d", out="o", report_to="mlflow")
