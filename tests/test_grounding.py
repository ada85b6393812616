"""Grounded concepts and the depiction filter: the maths against naive references, the settings,
and the plumbing through `concepts` and `sonify` on an untrained tiny CLIP (the proof that the
checks work is tests/test_grounding_proof.py)."""

import json
import math

import numpy as np
import pytest

from seeing_sound.concepts import VLMSpec, read_concepts, run_concepts
from seeing_sound.concepts.config import ConceptsConfig
from seeing_sound.config import ConfigError
from seeing_sound.errors import SeeingSoundError
from seeing_sound.grounding import (
    clip_weights_digest,
    depiction_scores,
    grounding_scores,
    image_depiction_scores,
    is_depiction,
    is_ungrounded,
    reference_mask,
    stored_score,
)
from seeing_sound.testing.clip_proof import build_word_clip, write_proof_images


def _naive_grounding(lo, lr, mask):
    out = []
    for i in range(len(lo)):
        refs = [math.exp(lr[i][j]) for j in range(len(lr[i])) if mask[i][j]]
        base = math.log(sum(refs) / len(refs))
        out.append(1 / (1 + math.exp(-(lo[i] - base))))
    return out


def test_grounding_and_depiction_scores_match_naive_references():
    rng = np.random.default_rng(0)
    lo, lr = rng.normal(0, 5, 7), rng.normal(0, 5, (7, 5))
    mask = rng.random((7, 5)) > 0.3
    mask[:, 0] = True
    np.testing.assert_allclose(grounding_scores(lo, lr, mask), _naive_grounding(lo, lr, mask), rtol=1e-12)
    # large logits (CLIP's scale is 100) stay finite
    assert np.isfinite(grounding_scores(lo * 100, lr * 100, mask)).all()
    lp, ld = rng.normal(0, 5, 6), rng.normal(0, 5, (6, 3))
    naive = [sum(math.exp(x) for x in ld[i]) / (math.exp(lp[i]) + sum(math.exp(x) for x in ld[i])) for i in range(6)]
    np.testing.assert_allclose(depiction_scores(lp, ld), naive, rtol=1e-12)
    groups = np.array([0, 0, 2, 2, 2, 0])
    pooled = image_depiction_scores(lp, ld, groups, 3)
    for i in (0, 2):
        dep = sum(math.exp(x) for p in np.flatnonzero(groups == i) for x in ld[p])
        photo = sum(math.exp(lp[p]) for p in np.flatnonzero(groups == i))
        assert pooled[i] == pytest.approx(dep / (dep + photo), rel=1e-12)
    assert np.isnan(pooled[1])  # an image with no object
    assert np.isnan(grounding_scores(np.zeros(1), np.zeros((1, 2)), np.zeros((1, 2), bool)))[0]
    with pytest.raises(ValueError, match="reference_logits"):
        grounding_scores(np.zeros(2), np.zeros((3, 2)))


def test_reference_mask_leaves_out_the_object_itself():
    mask = reference_mask(["Seagulls", "Dog", "piano"], ["seagulls", "a dog", "a cat"])
    assert mask.tolist() == [[False, True, True], [True, False, True], [True, True, True]]


def test_settings_are_checked_and_leave_the_paper_fingerprint_alone():
    off = ConceptsConfig()
    assert "grounding" not in off.fingerprint() and off.grounding_settings is None
    on = ConceptsConfig(grounding="clip", filter_depictions=True, depiction_prompts=["a statue of {}"])
    assert on.fingerprint()["grounding"]["depictions"] == {"prompts": ["a statue of {}"], "threshold": 0.5}
    with pytest.raises(ConfigError, match="filter_depictions: needs grounding"):
        ConceptsConfig(filter_depictions=True)
    with pytest.raises(ConfigError, match="depiction_prompts"):
        ConceptsConfig(grounding="clip", depiction_prompts=("a statue",))
    with pytest.raises(ConfigError, match="grounding_references"):
        ConceptsConfig(grounding="clip", grounding_references=("dog", "A Dog"))
    with pytest.raises(ConfigError, match="grounding_threshold"):
        ConceptsConfig(grounding="clip", grounding_threshold=1.5)


def test_thresholds_judge_the_scores_as_stored():
    # the tables store scores as float32: a score just under the threshold that is stored *at* it
    # must be kept, or a dropped concept would read grounding == threshold (and a kept one below it)
    g = 0.49999999
    assert g < 0.5 and stored_score(g) == 0.5
    assert not is_ungrounded(g, 0.5)
    below = float(np.nextafter(np.float32(0.5), np.float32(0)))  # the float32 just below 0.5
    assert is_ungrounded(below, 0.5) and stored_score(below) < 0.5
    assert is_depiction(0.50000001, 0.5) is False and stored_score(0.50000001) == 0.5
    assert is_depiction(float(np.nextafter(np.float32(0.5), np.float32(1))), 0.5)
    # no object, or no reference left to compare with: never judged
    assert stored_score(None) is None and stored_score(float("nan")) is None
    assert not is_ungrounded(None, 1.0) and not is_ungrounded(float("nan"), 1.0) and not is_depiction(None, 0.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    clip = build_word_clip(root / "clip")
    rows = write_proof_images(root / "images", per_class=1)
    side = root / "side.jsonl"
    lines = []
    for r in rows:
        lines.append({"path": r["path"], "object": r["class"], "sound": "humming"})
        lines.append({"path": r["path"], "object": "square" if r["class"] != "square" else "cross", "sound": "ticking"})
        lines.append({"path": r["path"], "concept": "a distant hum"})  # names no object: never judged
    side.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root, clip, side, rows


def _run(world, out, **kw):
    root, clip, side, _ = world
    return run_concepts(
        [root / "images"], out, vlms=[VLMSpec.parse(f"sidecar:{side}")], captions=False, no_filter=True,
        grounding=str(clip), progress=False, **kw,
    )  # fmt: skip


def test_concepts_record_grounding_and_account_for_what_they_drop(world, tmp_path):
    keep_all = _run(world, tmp_path / "a", grounding_threshold=0.0)
    concepts, images = read_concepts(tmp_path / "a")
    n = len(world[3])
    assert keep_all.concepts == keep_all.concepts_in == 3 * n and keep_all.images_with_concepts == n
    g = concepts.column("grounding").to_pylist()
    assert all(0 <= x <= 1 for x, o in zip(g, concepts.column("object").to_pylist(), strict=True) if o)
    assert all(x is None for x, o in zip(g, concepts.column("object").to_pylist(), strict=True) if not o)

    drop_all = _run(world, tmp_path / "b", grounding_threshold=1.0)  # no score reaches 1: objects all go
    concepts, images = read_concepts(tmp_path / "b")
    assert drop_all.concepts_filtered == {"ungrounded": 2 * n} and drop_all.concepts == n  # the object-less stay
    assert drop_all.concepts_in == drop_all.concepts + sum(drop_all.concepts_filtered.values())
    dropped = [d for lst in images.column("dropped_concepts").to_pylist() for d in lst]
    assert len(dropped) == 2 * n and all(d["reason"] == "ungrounded" and d["grounding"] < 1 for d in dropped)
    card = json.loads((tmp_path / "b" / "concepts.json").read_text())
    assert card["concepts_in"] == 3 * n and card["concepts_filtered"] == {"ungrounded": 2 * n}
    assert card["settings"]["grounding"]["threshold"] == 1.0

    with pytest.raises(SeeingSoundError):  # other grounding settings are another run: refused like any setting
        _run(world, tmp_path / "b", grounding_threshold=0.5)


def test_a_threshold_at_a_stored_score_keeps_that_concept(world, tmp_path):
    _run(world, tmp_path / "probe", grounding_threshold=0.0)
    probe, _ = read_concepts(tmp_path / "probe")
    scores = sorted({g for g in probe.column("grounding").to_pylist() if g is not None})
    assert len(scores) > 2
    for threshold in (scores[0], scores[len(scores) // 2], scores[-1]):  # exactly as stored (float32)
        out = tmp_path / f"t{threshold}"
        _run(world, out, grounding_threshold=threshold)
        concepts, images = read_concepts(out)
        kept = [g for g in concepts.column("grounding").to_pylist() if g is not None]
        dropped = [d["grounding"] for lst in images.column("dropped_concepts").to_pylist() for d in lst]
        assert threshold in kept  # the concept scored at the threshold is kept, recorded at it
        assert all(g >= threshold for g in kept) and all(g < threshold for g in dropped)
        assert sorted(kept + dropped) == sorted(g for g in probe.column("grounding").to_pylist() if g is not None)


def test_a_resume_checks_the_clip_weights_not_their_path(world, tmp_path):
    import shutil

    from seeing_sound.encoders.common import weights_revision

    root, clip, side, _ = world
    first, moved = tmp_path / "clip", tmp_path / "elsewhere" / "clip"
    shutil.copytree(clip, first)
    digest = clip_weights_digest(str(first))
    assert digest == weights_revision(first) and digest.startswith("sha256:")  # the score command's revision
    base = dict(vlms=[VLMSpec.parse(f"sidecar:{side}")], captions=False, no_filter=True, progress=False)
    out = tmp_path / "out"
    ran = run_concepts([root / "images"], out, grounding=str(first), **base)
    assert ran.shards_ran == 1
    card = json.loads((out / "concepts.json").read_text())
    assert (
        card["settings"]["grounding"]["model"] == str(first) and card["settings"]["grounding"]["model_sha256"] == digest
    )

    shutil.move(first, moved)  # the same weights elsewhere: the same run, resumed
    resumed = run_concepts([root / "images"], out, grounding=str(moved), **base)
    assert resumed.shards_ran == 0 and resumed.shards_skipped == 1 and resumed.concepts == ran.concepts
    assert clip_weights_digest(str(moved)) == digest

    build_word_clip(moved, seed=1)  # other weights in the same folder: another run, refused
    assert clip_weights_digest(str(moved)) != digest
    with pytest.raises(SeeingSoundError, match="other inputs or settings"):
        run_concepts([root / "images"], out, grounding=str(moved), **base)


def test_a_hub_id_is_digested_through_its_cached_snapshot(world, tmp_path, monkeypatch):
    import huggingface_hub

    from seeing_sound.errors import ModelNotFoundError
    from seeing_sound.testing.hub_cache import write_offline_hub

    clip = world[1]
    cache = write_offline_hub(tmp_path / "hub", {"someone/tiny-clip": clip})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert clip_weights_digest("someone/tiny-clip") == clip_weights_digest(str(clip))
    with pytest.raises(ModelNotFoundError, match="grounding=PATH"):
        clip_weights_digest("someone/not-cached")


def test_images_left_without_concepts_and_depictions_are_filtered(world, tmp_path):
    root, clip, _, rows = world
    side = tmp_path / "side.jsonl"
    side.write_text("".join(json.dumps({"path": r["path"], "object": r["class"], "sound": "x"}) + "\n" for r in rows))
    spec = [VLMSpec.parse(f"sidecar:{side}")]
    base = dict(vlms=spec, captions=False, no_filter=True, grounding=str(clip), progress=False)
    report = run_concepts([root / "images"], tmp_path / "a", grounding_threshold=1.0, **base)
    assert report.filtered == {"ungrounded": len(rows)} and report.images_with_concepts == 0
    assert report.images_in == report.images_with_concepts + report.images_filtered + report.images_failed
    report = run_concepts(
        [root / "images"], tmp_path / "b", grounding_threshold=0.0, filter_depictions=True, depiction_threshold=0.0,
        **base,
    )  # fmt: skip
    assert report.filtered == {"depiction": len(rows)} and report.concepts_filtered == {"depiction": len(rows)}
    _, images = read_concepts(tmp_path / "b")
    assert set(images.column("depiction").to_pylist()) <= set(ConceptsConfig().depiction_prompts)
    assert all(0 <= s <= 1 for s in images.column("depiction_score").to_pylist())


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from seeing_sound.demo import copy_demo_images
    from seeing_sound.pool import build_pool
    from seeing_sound.testing.sounds import write_sound_library

    root = tmp_path_factory.mktemp("sample")
    sounds = write_sound_library(root / "sounds", variants=1, seconds=3)
    build_pool([sounds], root / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    copy_demo_images(root / "images")
    return root


def test_sonify_records_grounding_per_component_and_counts_every_concept(sample, world, tmp_path, capsys):
    from seeing_sound.cli import main
    from seeing_sound.dataset import PairsDataset
    from seeing_sound.demo import demo_sidecar
    from seeing_sound.sonify import sonify

    clip = world[1]
    # the untrained CLIP's scores are arbitrary: a probe that drops nothing gives thresholds at their
    # medians, which drop about half of the concepts and of the images
    probe = sonify(
        sample / "images", sample / "pool", tmp_path / "probe", vlms=[VLMSpec.parse(f"sidecar:{demo_sidecar()}")],
        encoder="text", topk=3, seed=5, grounding=str(clip), grounding_threshold=0.0, filter_depictions=True,
        depiction_threshold=1.0, progress=False,
    )  # fmt: skip
    assert not probe.concepts["filtered"] and probe.concepts["in"] == probe.concepts["out"]
    _, probe_images = read_concepts(tmp_path / "probe")
    meta = PairsDataset.open(tmp_path / "probe").metadata.to_pylist()
    scores = [comp["grounding"] for row in meta for comp in row["components"]]
    assert scores and all(0 <= s <= 1 for s in scores)
    threshold = float(np.median(scores))
    depiction = float(np.median([s for s in probe_images.column("depiction_score").to_pylist() if s is not None]))

    code = main([
        "--quiet", "sonify", "--images", str(sample / "images"), "--pool", str(sample / "pool"),
        "--out", str(tmp_path / "ds"), "--vlm", f"sidecar:{demo_sidecar()}", "--encoder", "text", "--topk", "3",
        "--seed", "5", "--grounding", str(clip), "--grounding-threshold", repr(threshold), "--filter-depictions",
        "--depiction-threshold", repr(depiction),
    ])  # fmt: skip
    assert code == 0
    assert f"concepts    {probe.concepts['in']} in, " in capsys.readouterr().out
    card = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    counts, c = card["counts"], card["counts"]["concepts"]
    assert c["filtered"]["ungrounded"] > 0 and c["filtered"]["depiction"] > 0 and c["in"] == probe.concepts["in"]
    assert c["in"] == c["out"] + sum(c["filtered"].values()) + sum(c["failed"].values())
    assert counts["filtered"]["depiction"] > 0
    assert counts["images_in"] == counts["pairs"] + sum(counts["filtered"].values()) + sum(counts["failed"].values())
    assert card["concepts"]["grounding"]["threshold"] == threshold
    assert card["concepts"]["grounding"]["depictions"]["prompts"] == list(ConceptsConfig().depiction_prompts)
    _, images = read_concepts(tmp_path / "ds")
    dropped = {(r["image_id"], d["concept_index"]) for r in images.to_pylist() for d in r["dropped_concepts"]}
    meta = PairsDataset.open(tmp_path / "ds").metadata.to_pylist()
    used = {(row["image_id"], comp["concept_index"]) for row in meta for comp in row["components"]}
    assert used and not used & dropped  # no audio is retrieved for a dropped concept
    assert all(comp["grounding"] >= threshold for row in meta for comp in row["components"])
    with pytest.raises(ConfigError, match="grounding: runs inside the concepts stage"):  # never silently ignored
        sonify(sample / "images", sample / "pool", tmp_path / "x", concepts=tmp_path / "ds", grounding=str(clip))


def test_grounder_batches_keep_order_and_its_cache_stays_bounded(world, monkeypatch):
    from PIL import Image

    from seeing_sound.grounding import model as grounding_model

    root, clip, _, rows = world
    texts = ["a photo of circle", "a photo of square", "a drawing of cross", "a photo of circle"]
    one = grounding_model.Grounder(str(clip), device="cpu", batch_size=1)
    ref = one.embed_texts(texts)
    np.testing.assert_allclose(np.linalg.norm(ref, axis=1), 1.0)
    np.testing.assert_allclose(ref[0], ref[3])
    monkeypatch.setattr(grounding_model, "TEXT_CACHE_SIZE", 2)
    small = grounding_model.Grounder(str(clip), device="cpu", batch_size=3)
    np.testing.assert_allclose(small.embed_texts(texts), ref, atol=1e-6)
    np.testing.assert_allclose(small.embed_texts(texts[:2]), ref[:2], atol=1e-6)
    assert len(small._text_cache) <= 3  # cleared when full: one call's prompts at most
    images = [Image.open(root / "images" / r["path"]) for r in rows[:5]]
    np.testing.assert_allclose(small.embed_images(images), one.embed_images(images), atol=1e-6)
    assert small.embed_images([]).shape == (0, 32)


def test_runs_written_before_grounding_still_read(world, tmp_path):
    import pyarrow.parquet as pq

    root, _, side, rows = world
    run_concepts([root / "images"], tmp_path / "old", vlms=[VLMSpec.parse(f"sidecar:{side}")], captions=False,
                 no_filter=True, progress=False)  # fmt: skip
    new = ("grounding", "depiction", "depiction_score", "dropped_concepts")
    for f in (tmp_path / "old").glob("*/shard-*.parquet"):  # as an older version wrote them
        table = pq.read_table(f)
        pq.write_table(table.drop_columns([c for c in new if c in table.column_names]), f)
    concepts, images = read_concepts(tmp_path / "old")
    assert concepts.num_rows == 3 * len(rows) and concepts.column("grounding").null_count == concepts.num_rows
    assert images.column("dropped_concepts").null_count == images.num_rows
