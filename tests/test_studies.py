"""Studies: loudness retention (A.8), memorization (A.6), SSR and the candidate pool: maths and CLI end to end."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from seeing_sound.cli import main
from seeing_sound.studies import compare_ssr, knn_predict, nearest, summarize_tokens
from seeing_sound.studies.common import parse_deltas
from seeing_sound.studies.loudness import apply_gain


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def check_png(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 300 and img.height > 200


# --- pieces ----------------------------------------------------------------------------------


def test_parse_deltas():
    assert parse_deltas("-30:30:3") == tuple(float(d) for d in range(-30, 31, 3))
    assert parse_deltas("6, -6,0") == (-6.0, 0.0, 6.0)
    assert parse_deltas("0:1:0.5") == (0.0, 0.5, 1.0)
    for bad in ("a:b:c", "3:0:1", "0:3:0", ""):
        with pytest.raises(ValueError):
            parse_deltas(bad)


def test_knn_and_pooling():
    refs = summarize_tokens(np.eye(4, dtype=np.float32)[:, None, :].repeat(3, axis=1))
    q = refs + 0.1 * np.roll(refs, 1, axis=0)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    assert knn_predict(q, refs, 1).tolist() == [0, 1, 2, 3]
    assert knn_predict(q, refs, 3).tolist() == [0, 1, 2, 3]  # cosine-weighted votes: the nearest still wins
    tokens = np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32)
    assert np.allclose(np.linalg.norm(summarize_tokens(tokens, "cls"), axis=1), 1, atol=1e-6)
    assert np.allclose(summarize_tokens(tokens, "cls")[0] * np.linalg.norm(tokens[0, 0]), tokens[0, 0], atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        summarize_tokens(tokens, "max")


def test_apply_gain():
    x = np.full(10, 0.5, np.float32)
    assert np.allclose(apply_gain(x, 20.0), 5.0, rtol=1e-6)
    assert np.allclose(apply_gain(x, 20.0, clip=True), 1.0)
    assert np.allclose(apply_gain(x, -6.0206), 0.25, rtol=1e-4)


def test_nearest_clip_and_phash_agree_with_brute_force():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((7, 5))
    t = rng.standard_normal((50, 5))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    idx, sim = nearest(g, t, "clip", block=8)
    full = g @ t.T
    assert idx.tolist() == full.argmax(axis=1).tolist() and np.allclose(sim, full.max(axis=1))
    gb, tb = rng.random((4, 64)) > 0.5, rng.random((30, 64)) > 0.5
    idx, sim = nearest(gb, tb, "phash", block=7)
    ham = (gb[:, None] != tb[None]).sum(axis=2)
    assert idx.tolist() == ham.argmin(axis=1).tolist() and np.allclose(sim, 1 - ham.min(axis=1) / 64)


def _index(vectors: np.ndarray):
    from seeing_sound.retrieval import PoolEmbeddings, PoolIndex

    return PoolIndex(PoolEmbeddings({}, np.arange(100, 100 + len(vectors)), vectors.astype(np.float32)))


def test_compare_ssr_matches_the_printed_algorithm():
    rng = np.random.default_rng(0)
    base = rng.standard_normal(16)
    pool = base + 1.5 * rng.standard_normal((400, 16))  # scores mostly positive for queries near base
    queries = base + 0.5 * rng.standard_normal((12, 16))
    concepts = [f"c{i}" for i in range(12)]
    k = 20
    per, summary = compare_ssr(_index(pool), queries, concepts, k, draws=5, seed=1)
    pu = pool / np.linalg.norm(pool, axis=1, keepdims=True)
    for row, q in zip(per, queries, strict=True):
        t = pu @ (q / np.linalg.norm(q))
        s = np.sign(t) * np.sqrt(np.abs(t))
        assert row["candidates_plain"] == int(np.sum(t > np.sort(t)[-k:].mean()))
        assert row["candidates_ssr"] == int(np.sum(s > np.sort(s)[-k:].mean()))
        if np.sort(t)[-k] > 0:  # all top-k scores positive: sqrt is concave, so SSR can only widen I
            assert row["candidates_ssr"] >= row["candidates_plain"]
    plain, ssr = summary
    assert plain["mode"] == "plain" and ssr["mode"] == "ssr" and plain["retrievals"] == ssr["retrievals"] == 60
    assert ssr["mean_candidates"] > plain["mean_candidates"]
    assert ssr["union_candidates"] >= plain["union_candidates"]
    again, _ = compare_ssr(_index(pool), queries, concepts, k, draws=5, seed=1)
    assert again == per


# --- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sounds_pool(tmp_path_factory) -> Path:
    """A synthesized sound library (``sounds/``) built into a pool (``pool/``), no embeddings. Read-only."""
    from seeing_sound.pool import build_pool
    from seeing_sound.testing.sounds import write_sound_library

    root = tmp_path_factory.mktemp("studies-sounds")
    sounds = write_sound_library(root / "sounds", variants=1, seconds=3)
    build_pool([sounds], root / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    return root


@pytest.fixture(scope="module")
def ast_dir(tmp_path_factory) -> Path:
    from seeing_sound.testing.models import build_tiny_ast

    return build_tiny_ast(tmp_path_factory.mktemp("studies-ast") / "ast")


def test_loudness_study_cli(tmp_path, ast_dir, sounds_pool):
    out = tmp_path / "loud"
    rc = main(["--quiet", "study", "loudness", str(sounds_pool / "sounds"), "--out", str(out), "--ast", str(ast_dir),
               "--deltas=-24,-12,0,12", "--max-examples", "6", "--max-seconds", "1", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    rows = read_csv(out / "loudness.csv")
    assert [float(r["delta_db"]) for r in rows] == [-24, -12, 0, 12]
    zero = rows[2]
    assert float(zero["accuracy"]) == 1.0 and float(zero["mean_cosine_to_original"]) == pytest.approx(1.0, abs=1e-5)
    assert all(0 <= float(r["accuracy"]) <= 1 and int(r["examples"]) == 6 for r in rows)
    assert len(read_csv(out / "loudness_examples.csv")) == 6 * 4
    check_png(out / "loudness.png")
    md = (out / "loudness.md").read_text()
    assert "A.8" in md and "| +12 |" in md and "loudness.png" in md


def build_tiny_clip(out: Path) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "vocab_size": 64, "max_position_embeddings": 16},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    CLIPModel(config).eval().save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    return out


def _images(tmp_path: Path):
    from PIL import Image

    rng = np.random.default_rng(0)
    train, gen = tmp_path / "train", tmp_path / "gen"
    train.mkdir()
    gen.mkdir()
    y, x = np.mgrid[0:64, 0:64]
    patterns = [
        (y // 8) % 2,
        (x // 8) % 2,
        ((x // 8) + (y // 8)) % 2,
        (x > y),
        (x + y) % 32 < 16,
        (x - 32) ** 2 + (y - 32) ** 2 < 400,
    ]
    for i, m in enumerate(patterns):
        img = np.where(m[..., None].astype(bool), rng.integers(150, 255, 3), rng.integers(0, 100, 3)).astype(np.uint8)
        Image.fromarray(img).save(train / f"train{i}.png")
    for i in (0, 2, 4):  # memorized: the model reproduced training images
        shutil.copyfile(train / f"train{i}.png", gen / f"copy_of_{i}.png")
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(gen / f"novel{i}.png")
    return gen, train


def test_memorization_study_clip_and_phash(tmp_path):
    pytest.importorskip("imagehash")
    gen, train = _images(tmp_path)
    clip = build_tiny_clip(tmp_path / "clip")
    assert main(["--quiet", "study", "memorization", str(gen), str(train), "--out", str(tmp_path / "m1"),
                 "--clip", str(clip), "--device", "cpu", "--grid", "4"]) == 0  # fmt: skip
    rows = read_csv(tmp_path / "m1" / "memorization.csv")
    by_gen = {Path(r["generated"]).name: r for r in rows}
    for i in (0, 2, 4):
        r = by_gen[f"copy_of_{i}.png"]
        assert Path(r["nearest_training"]).name == f"train{i}.png" and float(r["similarity"]) > 0.9999
    check_png(tmp_path / "m1" / "memorization.png")

    assert main(["--quiet", "study", "memorization", str(gen), str(train), "--out", str(tmp_path / "m2"),
                 "--method", "phash"]) == 0  # fmt: skip
    rows = read_csv(tmp_path / "m2" / "memorization.csv")
    assert sorted(Path(r["generated"]).name for r in rows if r["above_threshold"] == "True") == [
        "copy_of_0.png",
        "copy_of_2.png",
        "copy_of_4.png",
    ]
    assert "**60.0%**" in (tmp_path / "m2" / "memorization.md").read_text()


def test_memorization_against_a_pairs_dataset(tmp_path):
    pytest.importorskip("imagehash")
    from seeing_sound.studies.memorization import memorization_study, training_images
    from seeing_sound.testing.data import write_sound_pattern_dataset

    write_sound_pattern_dataset(tmp_path / "pairs", tmp_path / "pair_images", per_class=2, image_size=32)
    assert len(training_images(tmp_path / "pairs")) == 8
    gen = tmp_path / "gen"
    gen.mkdir()
    first = sorted((tmp_path / "pair_images").iterdir())[0]
    shutil.copyfile(first, gen / "g.png")
    report = memorization_study(gen, tmp_path / "pairs", tmp_path / "out", method="phash")
    assert report.rows[0]["similarity"] == 1.0 and report.share_above == 1.0


def test_ssr_study_cli(tmp_path, sounds_pool):
    from seeing_sound.pool import embed_pool

    pool = tmp_path / "pool"
    shutil.copytree(sounds_pool / "pool", pool)
    embed_pool(pool, "text", device="cpu", progress=False)
    concepts = tmp_path / "concepts.txt"
    concepts.write_text(
        "rain on a roof\nbirds singing\n# a comment\na car engine\nfootsteps on gravel\nrain on a roof\n"
    )
    out = tmp_path / "ssr"
    assert main(["--quiet", "study", "ssr", "--pool", str(pool), "--concepts", str(concepts), "--out", str(out),
                 "--encoder", "text", "--topk", "5", "--draws", "4", "--device", "cpu"]) == 0  # fmt: skip
    per = read_csv(out / "ssr.csv")
    assert [r["concept"] for r in per] == ["rain on a roof", "birds singing", "a car engine", "footsteps on gravel"]
    summary = {r["mode"]: r for r in read_csv(out / "ssr_summary.csv")}
    assert int(summary["ssr"]["retrievals"]) == 16
    assert float(summary["ssr"]["mean_candidates"]) >= float(summary["plain"]["mean_candidates"])
    check_png(out / "ssr.png")
    assert "SSR widened" in (out / "ssr.md").read_text()


def test_memorization_counts_only_the_images_a_generate_run_lists(tmp_path):
    """``generate`` writes contact-sheet.png beside its images: with a generate.json, only its outputs count."""
    pytest.importorskip("imagehash")
    import json

    from PIL import Image

    from seeing_sound.studies.memorization import memorization_study

    gen, train = _images(tmp_path)
    Image.new("RGB", (64, 64), "white").save(gen / "contact-sheet.png")
    listed = ["copy_of_0.png", "novel0.png"]
    report = {"outputs": {"a.wav": [listed[0]], "b.wav": [listed[1]]}, "skipped": {}}
    (gen / "generate.json").write_text(json.dumps(report))
    result = memorization_study(gen, train, tmp_path / "m", method="phash")
    assert sorted(Path(r["generated"]).name for r in result.rows) == sorted(listed)
    from seeing_sound.studies.memorization import generated_images

    assert [p.name for p in generated_images(gen)] == sorted(listed)
    (gen / "generate.json").unlink()  # any other folder: every image in it
    assert "contact-sheet.png" in {p.name for p in generated_images(gen)}
