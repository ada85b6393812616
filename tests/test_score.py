"""`seeing-sound score`: a quality score (AIS) per pair, its file, and the threshold train and export apply."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seeing_sound.cli import main
from seeing_sound.dataset import PairsDataset
from seeing_sound.engine import EngineConfig
from seeing_sound.errors import SeeingSoundError
from seeing_sound.model.training.pair_scores import (
    META_KEY,
    PairScores,
    apply_threshold,
    dataset_pairs,
    pairs_sha256,
    read_scores,
    threshold_dataset,
)
from seeing_sound.scoring import score_pairs


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """Tiny Wav2CLIP and CLIP twins of one embedding dim (two Wav2CLIPs: two "model versions")."""
    from seeing_sound.testing.eval_models import build_tiny_clip, build_tiny_wav2clip

    root = tmp_path_factory.mktemp("score-models")
    return {
        "wav2clip": str(build_tiny_wav2clip(root / "Wav2CLIP.pt", seed=0)),
        "wav2clip_b": str(build_tiny_wav2clip(root / "Wav2CLIP-b.pt", seed=1)),
        "clip": str(build_tiny_clip(root / "clip", seed=0)),
    }


@pytest.fixture(scope="module")
def scored(demo_dataset, models, tmp_path_factory) -> Path:
    """A copy of the demo dataset (7 pairs, 3 shards) scored through the CLI into DATASET/scores."""
    root = tmp_path_factory.mktemp("scored")
    ds = root / "ds"
    shutil.copytree(demo_dataset, ds)
    argv = ["--quiet", "score", str(ds), "--wav2clip", models["wav2clip"], "--clip", models["clip"], "--device", "cpu"]
    assert main([*argv, "--out", str(ds / "scores")]) == 0
    return ds


def _table(path: Path) -> dict:
    return pq.read_table(path).to_pydict()


def test_every_pair_gets_a_finite_score_and_its_stored_retrieval_scores(scored, capsys):
    ds = PairsDataset.open(scored)
    t = _table(scored / "scores" / "scores.parquet")
    assert t["pair_id"] == ds.metadata.column("pair_id").to_pylist() and t["row"] == list(range(len(ds)))
    assert all(v is not None and math.isfinite(v) and -1 <= v <= 1 for v in t["pair_score"])
    assert t["error"] == [None] * len(ds) and t["ais"] == t["pair_score"]
    for i in range(len(ds)):
        comps = ds.row(i)["components"]
        assert t["n_sources"][i] == len(comps)
        assert t["retrieval_cosine_mean"][i] == pytest.approx(np.mean([c["cosine"] for c in comps]), abs=1e-6)
        assert t["retrieval_score_min"][i] == pytest.approx(min(c["score"] for c in comps), abs=1e-6)
    report = json.loads((scored / "scores" / "report.json").read_text())
    assert (report["pairs"], report["scored"], report["failed"]) == (len(ds), len(ds), 0)
    assert report["pair_score"]["mean"] == pytest.approx(np.mean(t["pair_score"]))
    assert sum(report["histogram"]["counts"]) == len(ds)
    assert (scored / "scores" / "histogram.svg").read_text().startswith("<svg")
    assert "histogram.svg" in (scored / "scores" / "report.md").read_text()
    card = json.loads(pq.read_schema(scored / "scores" / "scores.parquet").metadata[META_KEY])
    rows = list(zip(t["pair_id"], t["mixture_sha256"], t["image_sha256"], strict=True))
    assert rows == dataset_pairs(ds.metadata)
    assert card["pairs_sha256"] == pairs_sha256(rows) and card["score_key"] == report["score_key"]
    assert t[f"ais_{card['score_key']}"] == t["pair_score"]


def test_the_score_is_the_ais_evaluate_computes_for_the_pair(scored, models, tmp_path):
    """The naive reference: each pair's image and mixture as files, scored by `evaluate`'s own AIS."""
    from seeing_sound.evaluation.run import evaluate_folders

    ds = PairsDataset.open(scored)
    for i in range(len(ds)):
        img = ds.image_path(i)
        (tmp_path / "img").mkdir(exist_ok=True)
        (tmp_path / "aud").mkdir(exist_ok=True)
        shutil.copy(img, tmp_path / "img" / f"p{i}{img.suffix}")
        shutil.copy(ds.audio_path(i), tmp_path / "aud" / f"p{i}.flac")
    evaluate_folders(tmp_path / "img", audio=tmp_path / "aud", out=tmp_path / "eval", metrics=("ais",),
                     clip=models["clip"], wav2clip=models["wav2clip"], device="cpu", progress=False)  # fmt: skip
    ref = _table(tmp_path / "eval" / "per_sample.parquet")
    by_item = dict(zip(ref["item_id"], ref["ais_cosine"], strict=True))
    got = _table(scored / "scores" / "scores.parquet")["pair_score"]
    assert [by_item[f"p{i}"] for i in range(len(ds))] == pytest.approx(got, abs=1e-6)


def test_a_resumed_run_writes_the_same_bytes(scored, models, tmp_path):
    out = tmp_path / "sliced"
    kw = dict(wav2clip=models["wav2clip"], clip=models["clip"], device="cpu", progress=False)
    first = score_pairs(scored, out, engine_config=EngineConfig(shard_slice="0/2"), **kw)
    assert not first.complete and not (out / "scores.parquet").exists()
    assert score_pairs(scored, out, **kw).complete  # the finishing run scores the rest and merges
    want = scored / "scores"
    assert (out / "scores.parquet").read_bytes() == (want / "scores.parquet").read_bytes()
    assert (out / "report.json").read_bytes() == (want / "report.json").read_bytes()
    for part in sorted((want / "parts").rglob("*.parquet")):
        assert (out / part.relative_to(want)).read_bytes() == part.read_bytes()


def test_an_unreadable_file_is_an_error_row_not_a_crash(scored, models, tmp_path):
    ds_root = tmp_path / "ds"
    shutil.copytree(scored, ds_root, ignore=shutil.ignore_patterns("scores"))
    ds = PairsDataset.open(ds_root)
    images = tmp_path / "images"  # the dataset's images are shared: a copy, read through --images-root
    shutil.copytree(ds.images_root, images)
    ds.audio_path(1).write_bytes(b"not a flac at all" * 10)
    ds.audio_path(4).unlink()
    (images / ds.row(6)["image_path"]).write_bytes(b"\x89PNG but no more")
    report = score_pairs(ds_root, tmp_path / "out", wav2clip=models["wav2clip"], clip=models["clip"],
                         images_root=str(images), device="cpu", progress=False)  # fmt: skip
    t = _table(tmp_path / "out" / "scores.parquet")
    assert t["pair_score"][1] is None and t["error"][1].startswith("audio_unreadable")
    assert t["pair_score"][4] is None and t["error"][4] == "audio_missing"
    assert t["pair_score"][6] is None and t["error"][6].startswith("image_unreadable")
    good = [i for i in range(len(ds)) if i not in (1, 4, 6)]
    assert all(math.isfinite(t["pair_score"][i]) for i in good) and all(t["error"][i] is None for i in good)
    assert t["pair_score"][0] == _table(scored / "scores" / "scores.parquet")["pair_score"][0]
    assert (report.pairs, report.scored, report.failed) == (len(ds), len(ds) - 3, 3)  # in == out + failed
    assert sum(report.errors.values()) == 3
    summary = json.loads((tmp_path / "out" / "report.json").read_text())
    assert summary["failed"] == 3 and "audio_missing" in (tmp_path / "out" / "report.md").read_text()


def _resonified(src: Path, dst: Path) -> PairsDataset:
    """A copy of ``src`` (without its scores) whose pairs 0 and 1 swapped their mixtures: the same pair ids
    and images with other audio, as the same images sonified with another seed, pool or top-k give."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("scores"))
    ds = PairsDataset.open(dst)
    assert len(ds.shard_rows(0)) >= 2
    file = dst / "metadata" / "shard-000000.parquet"
    t = pq.read_table(file)
    for name in ("audio_path", "num_samples", "mixture_sha256"):
        v = t.column(name).to_pylist()
        v[0], v[1] = v[1], v[0]
        t = t.set_column(t.schema.get_field_index(name), t.schema.field(name), pa.array(v, t.schema.field(name).type))
    pq.write_table(t, file)
    return PairsDataset.open(dst)


def test_a_dataset_sonified_again_is_refused_or_rescored_never_read_from_stale_parts(scored, models, tmp_path, capsys):
    from seeing_sound.scoring.run import merge

    ds = _resonified(scored, tmp_path / "ds")
    old = _table(scored / "scores" / "scores.parquet")
    assert ds.metadata.column("pair_id").to_pylist() == old["pair_id"]  # the same ids: only the mixtures differ
    shutil.copytree(scored / "scores", ds.root / "scores")  # the old pairs' scores in the new dataset's folder
    argv = ["score", str(ds.root), "--wav2clip", models["wav2clip"], "--clip", models["clip"], "--device", "cpu"]
    assert main([*argv, "--out", str(ds.root / "scores")]) == 1  # a mismatch, as for any changed input
    assert "--overwrite" in capsys.readouterr().err
    with pytest.raises(SeeingSoundError, match="another dataset"):  # the old file is not this dataset's either
        threshold_dataset(ds.root, 0.0)
    key = old_key = read_scores(scored / "scores").card["score_key"]
    with pytest.raises(SeeingSoundError, match="other pairs"):  # the old parts are never merged as this dataset's
        merge(ds.root / "scores", ds, key, {})
    assert main([*argv, "--out", str(ds.root / "scores"), "--overwrite", "--quiet"]) == 0
    new = _table(ds.root / "scores" / "scores.parquet")
    fresh = score_pairs(ds.root, tmp_path / "fresh", wav2clip=models["wav2clip"], clip=models["clip"], device="cpu",
                        progress=False)  # fmt: skip
    assert fresh.score_key == old_key
    assert new["pair_score"] == _table(tmp_path / "fresh" / "scores.parquet")["pair_score"]
    assert new["pair_score"][:2] != old["pair_score"][:2] and new["pair_score"][2:] == old["pair_score"][2:]
    card = read_scores(ds.root / "scores").card
    assert card["pairs_sha256"] == pairs_sha256(dataset_pairs(ds.metadata)) != read_scores(scored / "scores").sha256
    assert threshold_dataset(ds.root, -1.0).kept == len(ds)


def _rewrite(src: Path, dst: Path, column: str | None = None, values=None, drop_from_card: str | None = None) -> Path:
    t = pq.read_table(src)
    if column is not None:
        t = t.set_column(
            t.schema.get_field_index(column), t.schema.field(column), pa.array(values, t.schema.field(column).type)
        )
    card = json.loads(t.schema.metadata[META_KEY])
    if drop_from_card:
        card.pop(drop_from_card)
    pq.write_table(t.replace_schema_metadata({META_KEY: json.dumps(card)}), dst)
    return dst


def test_a_changed_or_cardless_scores_file_is_refused_in_one_line(scored, tmp_path, capsys):
    src = scored / "scores" / "scores.parquet"
    t = _table(src)
    no_digest = _rewrite(src, tmp_path / "no_digest.parquet", drop_from_card="pairs_sha256")
    other_ids = _rewrite(src, tmp_path / "other_ids.parquet", "pair_id", [f"{p}x" for p in t["pair_id"]])
    mixtures = _rewrite(src, tmp_path / "mixtures.parquet", "mixture_sha256", list(reversed(t["mixture_sha256"])))
    for file, why in [(no_digest, "no pairs_sha256"), (other_ids, "changed after scoring"),
                      (mixtures, "changed after scoring")]:  # fmt: skip
        with pytest.raises(SeeingSoundError, match=why):
            read_scores(file)
        with pytest.raises(SeeingSoundError, match=why):
            threshold_dataset(scored, 0.0, scores=file)
        out = tmp_path / f"hf-{file.stem}"
        argv = ["export", "hf", str(scored), "--out", str(out), "--min-pair-score", "0", "--pair-scores", str(file)]
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert why in err and len(err.splitlines()) == 1 and not (out / "data").exists()


def test_the_scores_do_not_depend_on_the_batch_size(scored, models, tmp_path):
    kw = dict(wav2clip=models["wav2clip"], clip=models["clip"], device="cpu", progress=False)
    score_pairs(scored, tmp_path / "b1", batch_size=1, **kw)
    score_pairs(scored, tmp_path / "b5", batch_size=5, **kw)
    one = pq.read_table(tmp_path / "b1" / "scores.parquet")
    five = pq.read_table(tmp_path / "b5" / "scores.parquet")
    want = pq.read_table(scored / "scores" / "scores.parquet")  # batch size 16
    for name in ("pair_score", "ais"):
        col = one.column(name).combine_chunks()
        assert all(b is not None for b in col.buffers()[1:])
        assert col.buffers()[1].to_pybytes() == five.column(name).combine_chunks().buffers()[1].to_pybytes()
        assert one.column(name).to_pylist() == want.column(name).to_pylist()
    assert (tmp_path / "b1" / "scores.parquet").read_bytes() == (tmp_path / "b5" / "scores.parquet").read_bytes()


def test_other_models_add_a_column_not_a_dataset(scored, models, tmp_path):
    out = tmp_path / "scores"
    shutil.copytree(scored / "scores", out)
    first = read_scores(out).card["score_key"]
    report = score_pairs(scored, out, wav2clip=models["wav2clip_b"], clip=models["clip"], device="cpu", progress=False)
    t = _table(out / "scores.parquet")
    assert report.score_key != first
    assert t["pair_score"] == t[f"ais_{report.score_key}"] != t[f"ais_{first}"]
    assert t[f"ais_{first}"] == _table(scored / "scores" / "scores.parquet")["pair_score"]
    card = read_scores(out, f"ais_{first}").card
    assert set(card["keys"]) == {first, report.score_key}
    # a threshold on the first models' column, read from the folder: the pairs those models kept
    old = t[f"ais_{first}"]
    thr = sorted(old)[3]
    kept = threshold_dataset(scored, thr, scores=out, column=f"ais_{first}")
    assert (
        kept.dropped_rows == {i for i, v in enumerate(old) if v < thr} and kept.record["models"] == card["keys"][first]
    )
    assert not (scored / "metadata").joinpath("scores.parquet").exists()  # the dataset itself is unchanged


def test_threshold_keeps_pairs_at_or_above_and_leaves_unscored_out():
    pairs = [(p, f"mix-{p}", f"img-{p}") for p in "abcd"]
    scores = PairScores(Path("s.parquet"), {"pairs_sha256": pairs_sha256(pairs)}, "pair_score",
                        {"a": 0.3, "b": 0.1, "c": None, "d": 0.2})  # fmt: skip
    got = apply_threshold(scores, pairs, 0.2, dataset="D")
    assert got.dropped_rows == {1, 2} and (got.kept, got.below, got.unscored) == (2, 1, 1)
    with pytest.raises(SeeingSoundError, match="another dataset"):
        apply_threshold(scores, [pairs[0], pairs[1], ("x", "mix-c", "img-c"), pairs[3]], 0.2, dataset="D")
    # the same pair ids with other mixtures (the same images sonified again): another dataset
    with pytest.raises(SeeingSoundError, match="another dataset"):
        apply_threshold(scores, [(p, f"other-{p}", i) for p, _, i in pairs], 0.2, dataset="D")
    with pytest.raises(SeeingSoundError, match="no pairs_sha256"):  # a card without the digest names no dataset
        apply_threshold(PairScores(Path("s.parquet"), {}, "pair_score", scores.values), pairs, 0.2, dataset="D")


def test_missing_scores_name_the_command_that_makes_them(demo_dataset, tmp_path):
    with pytest.raises(SeeingSoundError, match="seeing-sound score"):
        threshold_dataset(demo_dataset, 0.1, scores=tmp_path / "nope.parquet")


def test_a_missing_checkpoint_stops_the_run_before_any_pair(scored, models, tmp_path, capsys):
    argv = ["score", str(scored), "--wav2clip", str(tmp_path / "none.pt"), "--clip", models["clip"]]
    assert main([*argv, "--out", str(tmp_path / "out")]) != 0
    assert "none.pt" in capsys.readouterr().err
    assert not (tmp_path / "out" / "parts").exists()


# --- train and export with --min-pair-score -------------------------------------------------------


def _threshold(scored: Path) -> tuple[float, list[int]]:
    """The median score, and the rows at or above it."""
    s = _table(scored / "scores" / "scores.parquet")["pair_score"]
    thr = float(np.median(s))
    return thr, [i for i, v in enumerate(s) if v >= thr]


@pytest.fixture(scope="module")
def featured(scored, tiny_ast_dir, tiny_pixart_dir, tmp_path_factory) -> Path:
    from seeing_sound.features import compute_features

    root = tmp_path_factory.mktemp("featured") / "ds"
    shutil.copytree(scored, root)
    compute_features(root, ast=str(tiny_ast_dir), vae=str(tiny_pixart_dir), resolution=16, progress=False)
    return root


def test_train_min_pair_score_trains_on_the_pairs_at_or_above_it(featured, tiny_pixart_dir, tmp_path):
    from seeing_sound.model.training.config import TrainConfig
    from seeing_sound.model.training.recipe import TrainRecipe, train

    thr, keep = _threshold(featured)
    assert 0 < len(keep) < 7
    argv = ["--quiet", "train", str(featured), "--out", str(tmp_path / "run"), "--pretrained", str(tiny_pixart_dir),
            "--max-steps", "1", "--batch-size", "2", "--checkpoint-every", "1", "--sample-every", "0",
            "--loss", "eps-mse", "--min-pair-score", str(thr)]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert record["min_pair_score"] == thr
    ds_record = record["datasets"][0]
    assert ds_record["rows"] == len(keep) and ds_record["below_min_pair_score"] == 7 - len(keep)
    assert ds_record["pair_scores"]["kept"] == len(keep) and ds_record["pair_scores"]["unscored"] == 0
    cfg = TrainConfig(dataset=(str(featured),), out=str(tmp_path / "setup"), pretrained=str(tiny_pixart_dir),
                      batch_size=2, sample_every=0, loss="eps-mse", progress=False, min_pair_score=thr)  # fmt: skip
    recipe = TrainRecipe(cfg)
    try:
        recipe.setup()
        assert sorted(recipe.data.parts[0].rows) == keep
    finally:
        recipe.cleanup()
    # a resume with another threshold would see other batches: refused
    resumed = cfg.replace(out=str(tmp_path / "run"), resume="latest", max_steps=2, checkpoint_every=1)
    with pytest.raises(SeeingSoundError, match=r"cannot resume .* min_pair_score"):
        train(resumed.replace(min_pair_score=float(min(_table(featured / "scores" / "scores.parquet")["pair_score"]))))


def test_train_config_needs_a_threshold_for_score_files():
    from seeing_sound.config import ConfigError
    from seeing_sound.model.training.config import TrainConfig

    with pytest.raises(ConfigError, match="pair_scores"):
        TrainConfig(dataset=("d",), out="o", pair_scores=("s.parquet",))
    with pytest.raises(ConfigError, match="one scores file per dataset"):
        TrainConfig(dataset=("d", "e"), out="o", min_pair_score=0.1, pair_scores=("s.parquet",))


def test_export_hf_min_pair_score_exports_only_those_pairs(scored, tmp_path, capsys):
    thr, keep = _threshold(scored)
    ids = PairsDataset.open(scored).metadata.column("pair_id").to_pylist()
    out = tmp_path / "hf"
    assert main(["--quiet", "export", "hf", str(scored), "--out", str(out), "--min-pair-score", str(thr)]) == 0
    assert f"{len(keep)} of 7 pairs kept" in capsys.readouterr().out
    rows = pq.read_table(sorted((out / "data").glob("*.parquet"))[0]).to_pydict()
    assert rows["pair_id"] == [ids[i] for i in keep] and all(r["bytes"] for r in rows["image"])
    card = (out / "README.md").read_text()
    assert "## Pair-score filter" in card and f"{len(keep)} of 7 pairs kept" in card and str(thr) in card
    with pytest.raises(SeeingSoundError, match="nothing to export"):
        from seeing_sound.hub.export import export_hf

        export_hf(scored, tmp_path / "none", min_pair_score=2.0)
