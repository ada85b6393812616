"""`train DATASET_A DATASET_B`: imported real pairs and pattern pairs trained together, from the CLI."""

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file

from seeing_sound.cli import main
from seeing_sound.errors import SeeingSoundError
from seeing_sound.features import compute_features
from seeing_sound.model.training.config import TrainConfig
from seeing_sound.model.training.recipe import TrainRecipe, train
from seeing_sound.testing.data import pattern_image, sound_of_type, write_sound_pattern_dataset
from seeing_sound.testing.signals import write_audio

SR = 16000
A_PAIRS, B_PAIRS = 6, 8


@pytest.fixture(scope="module")
def two(tmp_path_factory, tiny_ast_dir, tiny_pixart_dir):
    """A: 6 real pairs through `pairs import`; B: 8 pattern pairs; both with tiny-AST/VAE features."""
    root = tmp_path_factory.mktemp("multi")
    rng = np.random.default_rng(1)
    src = root / "src"
    for n in range(A_PAIRS):
        folder = src / ("cats" if n % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        pattern_image(n % 4, rng, 24).save(folder / f"clip{n}.png")
        write_audio(folder / f"clip{n}.wav", sound_of_type(n % 4, rng, seconds=1.0), SR)
    assert main(["--quiet", "pairs", "import", str(src), "--out", str(root / "A")]) == 0
    write_sound_pattern_dataset(root / "B", root / "B-images", per_class=B_PAIRS // 4)
    for ds in ("A", "B"):
        compute_features(root / ds, ast=str(tiny_ast_dir), vae=str(tiny_pixart_dir), resolution=16, progress=False)
    return root


def _cfg(two, tiny_pixart_dir, out, datasets=("A", "B"), **kw):
    base = dict(
        dataset=tuple(str(two / d) for d in datasets),
        out=str(out),
        pretrained=str(tiny_pixart_dir),
        batch_size=2,
        lr=1e-3,
        max_steps=2,
        checkpoint_every=2,
        sample_every=0,
        loss="eps-mse",
        progress=False,
    )
    return TrainConfig(**{**base, **kw})


def _epoch_rows(cfg) -> list[tuple[int, int]]:
    """The (dataset, row) pairs of one epoch of the run's batch order."""
    recipe = TrainRecipe(cfg)
    try:
        recipe.setup()
        n = len(recipe.data) // cfg.batch_size
        drawn = []
        for _ in range(n):
            batch = next(recipe.batches)
            drawn += list(zip(batch["dataset"].tolist(), batch["row"].tolist(), strict=True))
        return drawn
    finally:
        recipe.cleanup()


def test_cli_trains_on_both_records_them_and_resumes_only_on_the_same_list(two, tiny_pixart_dir, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["--quiet", "train", str(two / "A"), str(two / "B"), "--out", str(run), "--pretrained", str(tiny_pixart_dir)]
    argv += ["--batch-size", "2", "--checkpoint-every", "1", "--loss", "eps-mse"]
    argv += ["--sample-every", "2", "--sample-steps", "1", "--num-validation", "2"]
    assert main([*argv, "--max-steps", "2"]) == 0
    record = json.loads((run / "train_config.json").read_text())
    assert record["dataset"] == [str(two / "A"), str(two / "B")]
    assert [(r["path"], r["rows"], r["excluded"]) for r in record["datasets"]] == [
        (str(two / "A"), A_PAIRS, 0),
        (str(two / "B"), B_PAIRS, 0),
    ]
    assert all(len(r["ast_fingerprint"]) == 16 and len(r["vae_fingerprint"]) == 16 for r in record["datasets"])
    assert (run / "samples" / "step-00000002.png").is_file()
    loudness = json.loads((run / "pipeline" / "seeing_sound_loudness.json").read_text())
    assert loudness["target_lufs"] == -23.0  # neither test dataset records a LUFS range
    capsys.readouterr()
    swapped = ["--quiet", "train", str(two / "B"), str(two / "A"), *argv[4:]]
    assert main([*swapped, "--max-steps", "3", "--resume"]) == 1
    assert "other datasets" in capsys.readouterr().err
    alone = ["--quiet", "train", str(two / "A"), *argv[4:]]
    assert main([*alone, "--max-steps", "3", "--resume"]) == 1
    assert "other datasets" in capsys.readouterr().err
    assert main([*argv, "--max-steps", "3", "--resume"]) == 0
    assert len((run / "log.jsonl").read_text().splitlines()) == 3


def test_an_epoch_draws_every_row_of_both_in_a_seeded_order(two, tiny_pixart_dir, tmp_path):
    cfg = _cfg(two, tiny_pixart_dir, tmp_path / "a", seed=5)
    drawn = _epoch_rows(cfg)
    every = {(0, r) for r in range(A_PAIRS)} | {(1, r) for r in range(B_PAIRS)}
    assert len(drawn) == A_PAIRS + B_PAIRS and set(drawn) == every
    assert drawn == _epoch_rows(cfg.replace(out=str(tmp_path / "b")))
    assert drawn != _epoch_rows(cfg.replace(out=str(tmp_path / "c"), seed=6))


def test_rows_do_not_depend_on_the_order_features_load(two):
    from seeing_sound.model.training.data import PairFeatures
    from seeing_sound.model.training.sets import ConcatRows, open_train_sets

    sets = open_train_sets([str(two / "A"), str(two / "B")], None, None, online=False)
    data = ConcatRows([PairFeatures(s.ast, s.vae) for s in sets])
    for s in sets:  # shards listed in the opposite order: same rows at the same positions
        s.ast.shards.reverse()
        s.vae.shards.reverse()
    again = ConcatRows([PairFeatures(s.ast, s.vae) for s in reversed(sets)][::-1])
    assert [data.row_of(i) for i in range(len(data))] == [again.row_of(i) for i in range(len(again))]
    for i in (0, A_PAIRS - 1, A_PAIRS, len(data) - 1):
        assert np.array_equal(data[i]["audio"].numpy(), again[i]["audio"].numpy())
    assert data.validation_positions(3) == [0, A_PAIRS, 1]
    with pytest.raises(IndexError):
        data[len(data)]


def test_two_runs_with_one_seed_give_the_same_weights_and_losses(two, tiny_pixart_dir, tmp_path):
    first = train(_cfg(two, tiny_pixart_dir, tmp_path / "1", max_steps=3, checkpoint_every=3))
    second = train(_cfg(two, tiny_pixart_dir, tmp_path / "2", max_steps=3, checkpoint_every=3))
    assert first.losses == second.losses and len(first.losses) == 3
    w1, w2 = (load_file(str(tmp_path / r / "checkpoints" / "step-00000003" / "model.safetensors")) for r in "12")
    assert w1.keys() == w2.keys() and all(np.array_equal(w1[k], w2[k]) for k in w1)


def test_one_dataset_trains_as_before(tmp_path, tiny_pixart_dir):
    """One dataset, given as a str, a Path or a 1-list: the losses the single-dataset code gave.

    The numbers were recorded with ``train`` before it took several datasets (same fixture as
    tests/test_train.py, seed 3): the single-dataset path is unchanged, batch order included.
    """
    from seeing_sound.testing.data import write_synthetic_features
    from seeing_sound.testing.models import build_tiny_pixart

    pixart = build_tiny_pixart(tmp_path / "pixart")
    write_synthetic_features(tmp_path / "ds", num_pairs=16, vae_model=str(pixart))
    base = dict(pretrained=str(pixart), batch_size=4, lr=1e-3, max_steps=3, checkpoint_every=3)
    base.update(sample_every=0, progress=False, seed=3)
    assert TrainConfig(dataset=tmp_path / "ds", out="o", **base).dataset == (str(tmp_path / "ds"),)
    assert TrainConfig(dataset=[str(tmp_path / "ds")], out="o", **base).dataset == (str(tmp_path / "ds"),)
    result = train(TrainConfig(dataset=str(tmp_path / "ds"), out=str(tmp_path / "run"), **base))
    before = {1: 1.5490213632583618, 2: 1.5496188402175903, 3: 1.4335730075836182}
    assert result.losses == pytest.approx(before, rel=1e-5)
    record = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert record["dataset"] == str(tmp_path / "ds")  # one path, as the file always held (generate reads it)
    assert record["datasets"][0]["rows"] == 16


def test_features_that_differ_are_refused_naming_both_datasets(two, tiny_pixart_dir, tiny_ast_dir, tmp_path, capsys):
    pooled = tmp_path / "C"
    shutil.copytree(two / "B", pooled)
    shutil.rmtree(pooled / "features" / "ast-ast")
    compute_features(pooled, ast=str(tiny_ast_dir), vae=None, pool=2, progress=False)
    with pytest.raises(SeeingSoundError) as err:
        train(_cfg(two, tiny_pixart_dir, tmp_path / "run", datasets=("A", pooled)))
    text = str(err.value)
    assert str(two / "A") in text and str(pooled) in text
    assert "AST pool: " in text and "AST token count" in text and "seeing-sound features" in text
    assert not (tmp_path / "run" / "train_config.json").exists()
    argv = ["--quiet", "train", str(two / "A"), str(pooled), "--out", str(tmp_path / "cli")]
    assert main([*argv, "--pretrained", str(tiny_pixart_dir)]) == 1
    assert "--ast-features" in capsys.readouterr().err  # the library's ast_features, as the CLI flag
    with pytest.raises(ValueError, match="more than once"):
        _cfg(two, tiny_pixart_dir, tmp_path / "x", datasets=("A", "A"))
    with pytest.raises(ValueError, match="more than once"):  # one folder, spelled twice
        _cfg(two, tiny_pixart_dir, tmp_path / "x", datasets=("A", "B/../A"))


def test_vae_latent_shapes_must_agree():
    from pathlib import Path

    from seeing_sound.features.store import FeatureSet
    from seeing_sound.model.training.sets import TrainSet, check_compatible

    def vae(shape):
        return FeatureSet(Path("f/vae-x-16"), {"kind": "vae", "latent_shape": shape})

    check_compatible([TrainSet("a", None, vae([4, 2, 2])), TrainSet("b", None, vae([4, 2, 2]))], online=True)
    with pytest.raises(SeeingSoundError, match=r"VAE latent shape: a has \[4, 2, 2\], b has \[4, 3, 3\]"):
        check_compatible([TrainSet("a", None, vae([4, 2, 2])), TrainSet("b", None, vae([4, 3, 3]))], online=True)


def test_ast_online_reads_the_mixtures_of_both(two, tiny_pixart_dir, tiny_ast_dir, tmp_path):
    kw = dict(max_steps=1, checkpoint_every=1, ast_model=str(tiny_ast_dir))
    pre = train(_cfg(two, tiny_pixart_dir, tmp_path / "pre", **kw))
    online_cfg = _cfg(two, tiny_pixart_dir, tmp_path / "online", ast_online=True, **kw)
    online = train(online_cfg)
    assert abs(online.losses[1] - pre.losses[1]) <= 1e-3
    drawn = _epoch_rows(online_cfg.replace(out=str(tmp_path / "epoch")))
    assert {k for k, _ in drawn} == {0, 1} and len(set(drawn)) == A_PAIRS + B_PAIRS


def test_exclude_pairs_of_a_leakage_check_leave_those_rows_out(two, tiny_pixart_dir, tmp_path):
    from seeing_sound.dataset import PairsDataset

    ids = PairsDataset.open(two / "A").metadata.column("pair_id").to_pylist()
    check = tmp_path / "check"
    check.mkdir()
    (check / "exclude_pairs.txt").write_text(f"{ids[1]}\n{ids[4]}\nnot-a-pair\n")
    (check / "leakage.json").write_text(json.dumps({"train": {"root": str((two / "A").resolve())}}))
    cfg = _cfg(two, tiny_pixart_dir, tmp_path / "run", exclude_pairs=str(check / "exclude_pairs.txt"))
    drawn = _epoch_rows(cfg)
    assert (0, 1) not in drawn and (0, 4) not in drawn and len(set(drawn)) == A_PAIRS - 2 + B_PAIRS
    record = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert [r["excluded"] for r in record["datasets"]] == [2, 0]
    assert record["exclusions"][0]["matched"] == 2 and record["exclusions"][0]["unmatched"] == 1
    # the same ids without the leakage.json that says whose they are: matched in every dataset
    (check / "leakage.json").unlink()
    assert len(set(_epoch_rows(cfg.replace(out=str(tmp_path / "plain"))))) == A_PAIRS - 2 + B_PAIRS


def test_resume_refuses_an_exclusion_list_that_leaves_out_other_pairs(two, tiny_pixart_dir, tmp_path):
    from seeing_sound.dataset import PairsDataset

    ids = PairsDataset.open(two / "A").metadata.column("pair_id").to_pylist()
    listed = tmp_path / "exclude_pairs.txt"
    listed.write_text(f"{ids[1]}\n")
    cfg = _cfg(two, tiny_pixart_dir, tmp_path / "run", exclude_pairs=str(listed))
    train(cfg)
    listed.write_text(f"{ids[2]}\n")  # as many rows left out, but others: another batch order
    with pytest.raises(SeeingSoundError, match=r"other pairs of .* are excluded"):
        train(cfg.replace(resume="latest", max_steps=4))
    listed.write_text(f"{ids[1]}\n")
    assert train(cfg.replace(resume="latest", max_steps=4)).steps == 4


def test_exclusion_ids_are_matched_per_dataset(two, tmp_path):
    from seeing_sound.model.training.exclude import read_exclusions

    twin = tmp_path / "B2"
    shutil.copytree(two / "B", twin, ignore=shutil.ignore_patterns("features"))
    datasets = [str(two / "B"), str(twin)]
    listed = tmp_path / "plain" / "exclude_pairs.txt"
    listed.parent.mkdir()
    listed.write_text("pair-0002\n")
    with pytest.raises(SeeingSoundError, match="several datasets"):
        read_exclusions([str(listed)], datasets)
    (listed.parent / "leakage.json").write_text(json.dumps({"train": {"root": str(twin.resolve())}}))
    excluded, records = read_exclusions([str(listed)], datasets)
    assert excluded == [set(), {2}] and records[0]["datasets"] == [str(twin)]
    (listed.parent / "leakage.json").write_text(json.dumps({"train": {"root": str(tmp_path / "elsewhere")}}))
    with pytest.raises(SeeingSoundError, match="not among the datasets"):
        read_exclusions([str(listed)], datasets)


def test_projector_pretraining_over_several_datasets_caches_each_datasets_text_targets(two, tiny_pixart_dir, tmp_path):
    """Pre-training reads every dataset's concepts; each keeps its own cache, as when trained alone."""
    from safetensors import safe_open

    from seeing_sound.testing.models import build_tiny_text_encoder

    data = tmp_path / "data"
    for d in ("A", "B"):
        shutil.copytree(two / d, data / d)  # the module's datasets stay free of caches
    pixart = tmp_path / "pixart"
    shutil.copytree(tiny_pixart_dir, pixart)
    build_tiny_text_encoder(pixart)
    cfg = _cfg(data, pixart, tmp_path / "run", pretrain_projector_steps=4, pretrain_batch_size=4)
    assert train(cfg).steps == 2
    for d, pairs in (("A", A_PAIRS), ("B", B_PAIRS)):
        (cache,) = (data / d / "features").glob("text-*/projector_targets.safetensors")
        with safe_open(str(cache), framework="pt") as fh:
            # one target per distinct concept text of that dataset only
            assert 1 <= fh.get_slice("targets").get_shape()[0] <= pairs
