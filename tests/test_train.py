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
