"""Training: loss goes down, resume is exact, grids and the pipeline are written, the CLI works."""

import json

import numpy as np
import pytest

from seeing_sound.errors import SeeingSoundError
from seeing_sound.model.training.config import TrainConfig
from seeing_sound.model.training.data import BatchPlan
from seeing_sound.model.training.recipe import train
from seeing_sound.testing.data import write_synthetic_features
from seeing_sound.testing.models import build_tiny_pixart


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    pixart = build_tiny_pixart(root / "pixart")
    write_synthetic_features(root / "ds", num_pairs=16, vae_model=str(pixart))
    return root, pixart


def _cfg(setup, out, **kw):
    root, pixart = setup
    base = dict(
        dataset=str(root / "ds"),
        out=str(out),
        pretrained=str(pixart),
        batch_size=4,
        lr=1e-3,
        checkpoint_every=3,
        sample_every=0,
        sample_steps=2,
        progress=False,
    )
    return TrainConfig(**{**base, **kw})


def test_batch_plan_is_a_seeded_function_of_the_step():
    plan = BatchPlan(10, 3, seed=7)
    assert plan.batches_per_epoch == 3
    epoch0 = np.concatenate([plan.batch(k) for k in range(3)])
    assert len(set(epoch0.tolist())) == 9  # no repeats inside an epoch
    assert np.array_equal(plan.batch(4), BatchPlan(10, 3, seed=7).batch(4))
    assert not np.array_equal(plan.batch(0), plan.batch(3))  # a new permutation each epoch
    with pytest.raises(ValueError, match="batch_size"):
        BatchPlan(2, 3, seed=0)


def test_resume_gives_the_uninterrupted_losses(setup, tmp_path):
    full = train(_cfg(setup, tmp_path / "full", max_steps=6, sample_every=3, num_validation=2))
    assert (tmp_path / "full" / "samples" / "step-00000003.png").is_file()
    assert (tmp_path / "full" / "pipeline" / "model_index.json").is_file()
    first = train(_cfg(setup, tmp_path / "split", max_steps=3))
    assert (tmp_path / "split" / "checkpoints" / "step-00000003" / "state.json").is_file()
    assert not list((tmp_path / "split" / "checkpoints").glob("step-*/*.pkl"))  # nothing to unpickle on resume
    with pytest.raises(SeeingSoundError, match="resume='latest'"):
        train(_cfg(setup, tmp_path / "split", max_steps=6))
    with pytest.raises(SeeingSoundError, match="batch_size"):
        train(_cfg(setup, tmp_path / "split", max_steps=6, batch_size=2, resume="latest"))
    second = train(_cfg(setup, tmp_path / "split", max_steps=6, resume="latest"))
    assert sorted(second.losses) == [4, 5, 6]
    assert {**first.losses, **second.losses} == full.losses  # bit-identical losses
    log = [json.loads(line) for line in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]


def test_loss_decreases_with_ema_and_accumulation(setup, tmp_path):
    result = train(
        _cfg(
            setup,
            tmp_path / "run",
            max_steps=30,
            checkpoint_every=30,
            grad_accum=2,
            ema_decay=0.9,
            keep_checkpoints=1,
            loss="hybrid",
        )
    )
    losses = [result.losses[s] for s in sorted(result.losses)]
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5])
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step-00000030"]


def test_bad_settings_raise(setup, tmp_path):
    with pytest.raises(ValueError, match="uncond_prob"):
        train(_cfg(setup, tmp_path / "x", uncond_prob=1.5))
    with pytest.raises(SeeingSoundError, match="features"):
        train(_cfg(setup, tmp_path / "x", ast_features="nope"))


def test_cli_train_in_process(setup, tmp_path):
    from seeing_sound.cli import main

    root, pixart = setup
    argv = [
        "--quiet",
        "train",
        str(root / "ds"),
        "--out",
        str(tmp_path / "cli"),
        "--pretrained",
        str(pixart),
        "--batch-size",
        "4",
        "--checkpoint-every",
        "1",
        "--sample-every",
        "2",
        "--sample-steps",
        "2",
        "--loss",
        "eps-mse",
    ]
    assert main([*argv, "--max-steps", "2"]) == 0
    assert (tmp_path / "cli" / "samples" / "step-00000002.png").is_file()
    assert main([*argv, "--max-steps", "3", "--resume"]) == 0
    assert len((tmp_path / "cli" / "log.jsonl").read_text().splitlines()) == 3


def test_pretrain_projector_infonce_lowers_its_loss(tmp_path):
    from seeing_sound.features import compute_features, find_feature_set
    from seeing_sound.model.audio_pixart import AudioPixArt
    from seeing_sound.model.pretrain import pretrain_projector
    from seeing_sound.model.training.data import PairFeatures
    from seeing_sound.testing.data import write_sound_pattern_dataset
    from seeing_sound.testing.models import build_tiny_ast, build_tiny_text_encoder

    pixart, ast = build_tiny_pixart(tmp_path / "pixart"), build_tiny_ast(tmp_path / "ast")
    build_tiny_text_encoder(pixart)  # the checkpoint's text_encoder/ + tokenizer/
    write_sound_pattern_dataset(tmp_path / "ds", tmp_path / "img", per_class=2)
    compute_features(tmp_path / "ds", ast=str(ast), vae=str(pixart), resolution=16, progress=False)
    data = PairFeatures(find_feature_set(tmp_path / "ds", "ast"), find_feature_set(tmp_path / "ds", "vae"))
    model = AudioPixArt.from_pixart(str(pixart), audio_embed_dim=32)
    cfg = TrainConfig(
        dataset=str(tmp_path / "ds"),
        out=str(tmp_path / "run"),
        pretrained=str(pixart),
        pretrain_projector_steps=30,
        pretrain_batch_size=4,
    )
    losses = pretrain_projector(model, cfg, data, device="cpu", lr=1e-2)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_pretrain_reads_only_the_caption_projection_and_caches_bf16_text_targets(tmp_path, monkeypatch):
    import torch
    from transformers import T5EncoderModel

    from seeing_sound.model.loading import load_pixart_transformer
    from seeing_sound.model.pretrain import load_caption_projection, text_targets
    from seeing_sound.testing.models import build_tiny_text_encoder

    pixart = build_tiny_pixart(tmp_path / "pixart")
    build_tiny_text_encoder(pixart)
    full = load_pixart_transformer(str(pixart)).caption_projection.state_dict()
    alone = load_caption_projection(str(pixart)).state_dict()
    assert alone.keys() == full.keys() and all(torch.equal(alone[k], full[k]) for k in full)

    loaded = {}
    real = T5EncoderModel.from_pretrained

    def spy(*args, **kwargs):
        loaded["dtype"] = kwargs.get("dtype")
        return real(*args, **kwargs)

    monkeypatch.setattr(T5EncoderModel, "from_pretrained", spy)
    cache = tmp_path / "ds" / "features" / "text-pixart" / "projector_targets.safetensors"
    texts = ["dog", "rain, engine", "bell"]
    first = text_targets(texts, str(pixart), "cpu", cache=cache)
    assert loaded["dtype"] == torch.bfloat16 and first.shape == (3, 32) and cache.is_file()
    monkeypatch.setattr(T5EncoderModel, "from_pretrained", lambda *a, **k: pytest.fail("T5 loaded again"))
    assert torch.equal(text_targets(texts, str(pixart), "cpu", cache=cache), first)
    monkeypatch.setattr(T5EncoderModel, "from_pretrained", spy)
    assert text_targets(texts[:2], str(pixart), "cpu", cache=cache).shape == (2, 32)  # other texts: recomputed


def test_train_log_says_cpu_grids_once_and_rates_with_three_digits(setup, tmp_path, caplog):
    import logging
    import re

    with caplog.at_level(logging.INFO, logger="seeing_sound.model.training.recipe"):
        train(_cfg(setup, tmp_path / "run", max_steps=2, log_every=1, sample_every=1, num_validation=1))
    grid_notes = [r.getMessage() for r in caplog.records if "no GPU" in r.getMessage()]
    assert len(grid_notes) == 1 and "sample_every=0" in grid_notes[0]
    rates = [re.search(r"loss \S+ (\S+) samples/s", r.getMessage()) for r in caplog.records]
    rates = [m.group(1) for m in rates if m]
    assert len(rates) == 2 and all(len(re.sub(r"[^0-9]", "", r).lstrip("0")) <= 3 for r in rates)
    assert all(float(r) > 0 for r in rates)


# --- resume tells the truth: settings applied or refused, one log row per step, full disks --------


def _log_rows(out) -> list[dict]:
    lines = (out / "log.jsonl").read_text().splitlines()
    rows = []
    for n, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{out / 'log.jsonl'} line {n} is not JSON: {line!r}")
    return rows


def test_resume_applies_a_new_lr_and_records_when_it_changed(setup, tmp_path):
    import torch

    out = tmp_path / "run"
    train(_cfg(setup, out, max_steps=3))  # lr 1e-3
    train(_cfg(setup, out, max_steps=6, resume="latest", lr=0.5, weight_decay=0.1, max_grad_norm=0.5))
    state = torch.load(out / "checkpoints" / "step-00000006" / "training_state.pt", weights_only=True)
    group = state["optimizer"]["param_groups"][0]
    assert (group["lr"], group["weight_decay"]) == (0.5, 0.1), (
        f"step-00000006/training_state.pt: expected the resumed optimizer to use lr 0.5 and weight_decay 0.1, "
        f"it has {group['lr']} and {group['weight_decay']}"
    )
    lrs = [r["lr"] for r in _log_rows(out)]
    assert lrs == [1e-3] * 3 + [0.5] * 3, f"log.jsonl: expected lr 1e-3 for steps 1-3 and 0.5 after, got {lrs}"
    record = json.loads((out / "train_config.json").read_text())
    assert record["lr"] == 0.5, f"train_config.json: expected lr 0.5, got {record['lr']}"
    changes = sorted((c["setting"], c["was"], c["now"], c["step"]) for c in record.get("changes", []))
    assert changes == [
        ("lr", 1e-3, 0.5, 4),
        ("max_grad_norm", 1.0, 0.5, 4),
        ("max_steps", 3, 6, 4),
        ("weight_decay", 0.03, 0.1, 4),
    ], f"train_config.json: changes {changes}"


def test_resume_after_a_kill_keeps_one_log_row_and_one_change_per_step(setup, tmp_path):
    import shutil

    out = tmp_path / "run"
    train(_cfg(setup, out, max_steps=3))
    train(_cfg(setup, out, max_steps=5, resume="latest", lr=0.5))
    # killed after step 5's log row, before its checkpoint, and while writing step 6's row
    shutil.rmtree(out / "checkpoints" / "step-00000005")
    with (out / "log.jsonl").open("a") as fh:
        fh.write('{"step": 6, "lo')
    second = train(_cfg(setup, out, max_steps=6, resume="latest", lr=0.5))
    assert sorted(second.losses) == [4, 5, 6], f"expected the run to resume from step 3, ran {sorted(second.losses)}"
    steps = [r["step"] for r in _log_rows(out)]
    assert steps == [1, 2, 3, 4, 5, 6], f"log.jsonl: expected steps 1-6 once each, got {steps}"
    record = json.loads((out / "train_config.json").read_text())
    lr_changes = [(c["was"], c["now"], c["step"]) for c in record["changes"] if c["setting"] == "lr"]
    assert lr_changes == [(1e-3, 0.5, 4)], f"train_config.json: expected one lr change at step 4, got {lr_changes}"


def test_resume_refuses_settings_it_cannot_apply_naming_them(setup, tmp_path):
    import shutil

    _root, pixart = setup
    out = tmp_path / "run"
    train(_cfg(setup, out, max_steps=3))
    saved = (out / "train_config.json").read_bytes()
    moved = shutil.copytree(pixart, tmp_path / "other-pixart")
    for name, value in [
        ("seed", 1),
        ("pretrained", str(moved)),
        ("ema_decay", 0.5),
        ("pretrain_projector_steps", 5),
        ("pretrain_batch_size", 8),
    ]:
        with pytest.raises(SeeingSoundError) as err:
            train(_cfg(setup, out, max_steps=6, resume="latest", **{name: value}))
        assert name in str(err.value), f"resume with another {name}: the refusal does not name it: {err.value}"
        assert (out / "train_config.json").read_bytes() == saved, f"resume with another {name} rewrote train_config"


@pytest.mark.parametrize("size", ["120k", "400k"], ids=["model-file-cannot-fit", "optimizer-state-cannot-fit"])
def test_full_disk_while_saving_a_checkpoint_stops_with_one_line(setup, tmp_path, capsys, size):
    """A tmpfs too small for the first checkpoint: exit 1, one line, nothing ``--resume`` would pick."""
    import subprocess

    from seeing_sound.cli import main
    from seeing_sound.model.training.resume import checkpoints

    root, pixart = setup
    disk = tmp_path / "disk"
    disk.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode(errors='replace').strip()}")
    try:
        out = disk / "run"
        argv = ["--quiet", "train", str(root / "ds"), "--out", str(out), "--pretrained", str(pixart)]
        argv += ["--batch-size", "4", "--lr", "1e-3", "--sample-every", "0", "--checkpoint-every", "1"]
        argv += ["--max-steps", "2"]
        assert main(argv) == 1, f"train into a {size} disk: expected exit status 1"
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, f"train into a {size} disk: expected one stderr line, got {err}"
        assert "no space left on device" in err[0] and str(out) in err[0], f"train into a {size} disk: {err[0]}"
        assert checkpoints(out) == [], f"train into a {size} disk left checkpoints {checkpoints(out)}"
        leftovers = [p.name for p in (out / "checkpoints").iterdir()] if (out / "checkpoints").exists() else []
        assert leftovers == [], f"train into a {size} disk left {leftovers} in checkpoints/"
        # more space: --resume finds no checkpoint, starts over, and the log holds each step once
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        assert main([*argv, "--resume"]) == 0, f"train --resume after freeing space: {capsys.readouterr().err}"
        steps = [r["step"] for r in _log_rows(out)]
        assert steps == [1, 2], f"log.jsonl after the full disk and --resume: expected steps 1, 2, got {steps}"
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_resume_latest_skips_a_checkpoint_folder_without_its_state_json(setup, tmp_path, caplog):
    import logging

    out = tmp_path / "run"
    train(_cfg(setup, out, max_steps=3))
    unfinished = out / "checkpoints" / "step-00000005"  # written in place and killed: no state.json
    unfinished.mkdir()
    (unfinished / "model.safetensors").write_bytes(b"\0" * 100)
    with caplog.at_level(logging.WARNING, logger="seeing_sound.model.training.resume"):
        again = train(_cfg(setup, out, max_steps=6, resume="latest"))
    assert sorted(again.losses) == [4, 5, 6], f"expected a resume from step-00000003, ran {sorted(again.losses)}"
    assert any(str(unfinished) in r.getMessage() for r in caplog.records), "no warning names the skipped folder"
