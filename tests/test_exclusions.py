"""Exclusion lists: leakage's exclude files fed to sonify / retrieve (--exclude-images, --exclude-chunks)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seeing_sound.cli import main
from seeing_sound.config import ConfigError
from seeing_sound.retrieval.exclude import ids_sha256, read_id_list
from seeing_sound.retrieval.index import PoolEmbeddings, PoolIndex
from seeing_sound.retrieval.reference import naive_match
from seeing_sound.retrieval.screen import have_torch
from seeing_sound.retrieval.search import have_faiss
from seeing_sound.seeding import concept_seeds

# --- the id files ------------------------------------------------------------------------------


def test_read_id_list_formats_digest_and_errors(tmp_path):
    from seeing_sound.leakage.report import write_id_list

    f = tmp_path / "chunks.txt"
    write_id_list(f, [12, 3, 7])
    got = read_id_list(f, "exclude_chunks", "chunk")
    assert got.ids == (3, 7, 12) and got.path == str(f.resolve())
    # BOM, CRLF, blank lines, duplicates and order change nothing: the digest is of the sorted distinct ids
    g = tmp_path / "elsewhere.txt"
    g.write_bytes("\ufeff12\r\n\r\n7\r\n3\r\n7\r\n".encode())
    again = read_id_list(g, "exclude_chunks", "chunk")
    assert again.ids == got.ids and again.sha256 == got.sha256 == ids_sha256([3, 7, 12])
    assert got.sha256 != ids_sha256([3, 7])
    images = tmp_path / "images.txt"
    write_id_list(images, ["b/ü.png", "a b.jpg"])
    assert read_id_list(images, "exclude_images", "image").ids == ("a b.jpg", "b/ü.png")  # spaces, UTF-8 kept
    empty = tmp_path / "empty.txt"
    write_id_list(empty, [])
    assert read_id_list(empty, "exclude_images", "image").fingerprint() is None  # the same as no list
    assert read_id_list(None, "exclude_images", "image") is None
    with pytest.raises(ConfigError, match="exclude_chunks: no such file"):
        read_id_list(tmp_path / "missing.txt", "exclude_chunks", "chunk")
    images.write_text("3\nchelsea.png\n")
    with pytest.raises(ConfigError, match=r"exclude_chunks: line 2 is not a chunk id"):
        read_id_list(images, "exclude_chunks", "chunk")


# --- every engine: exclusion == the rows physically removed -----------------------------------

ENGINES = [
    pytest.param("numpy", "exact", id="numpy"),
    pytest.param("faiss", "exact", id="faiss", marks=pytest.mark.skipif(not have_faiss(), reason="no faiss")),
    pytest.param("bf16", "exact", id="bf16", marks=pytest.mark.skipif(not have_torch(), reason="no torch")),
    pytest.param("torch", "exact", id="torch", marks=pytest.mark.skipif(not have_torch(), reason="no torch")),
    pytest.param("auto", "ivf", id="ivf", marks=pytest.mark.skipif(not have_faiss(), reason="no faiss")),
    pytest.param("auto", "hnsw", id="hnsw", marks=pytest.mark.skipif(not have_faiss(), reason="no faiss")),
]


def _planted_pool(n=3000, d=32, q=40, seed=7):
    """Unit rows with non-contiguous chunk ids; each query's nearest rows are planted copies, then excluded."""
    rng = np.random.default_rng(seed)
    vec = rng.standard_normal((n, d)).astype(np.float32)
    queries = rng.standard_normal((q, d)).astype(np.float32)
    for j in range(q):  # 4 near-copies per query: the top of its ranking, inside every top-k
        vec[5 * j : 5 * j + 4] = queries[j] + 0.02 * rng.standard_normal((4, d))
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    ids = np.arange(n, dtype=np.int64) * 3 + 100
    drop_rows = np.concatenate([np.arange(5 * j, 5 * j + 3) for j in range(q)] + [np.arange(2500, 2600)])
    return vec, ids, queries, drop_rows


@pytest.mark.parametrize(("engine", "kind"), ENGINES)
def test_pool_index_exclusion_is_the_pool_without_those_rows(engine, kind):
    vec, ids, queries, drop_rows = _planted_pool()
    excluded = np.concatenate([ids[drop_rows], [5, 10**9]])  # plus two ids no chunk has: ignored, counted
    k = 10
    which = np.repeat(np.arange(len(queries)), 3)
    seeds = concept_seeds(5, [f"img{w}" for w in which], [int(i % 3) for i in range(which.size)])
    stats: dict = {}
    index = PoolIndex(PoolEmbeddings({}, ids, vec), exclude=excluded.tolist(), engine=engine, kind=kind)
    assert (index.excluded, index.exclude_unknown, len(index)) == (drop_rows.size, 2, len(vec) - drop_rows.size)
    got = index.candidate_sets(queries, k, stats=stats).draw(which, seeds)
    keep = np.setdiff1d(np.arange(len(vec)), drop_rows)
    physical = PoolIndex(PoolEmbeddings({}, ids[keep], vec[keep].copy()), engine=engine, kind=kind)
    want = physical.candidate_sets(queries, k).draw(which, seeds)
    for f in ("index", "cosine", "score", "threshold", "n_candidates"):
        assert np.array_equal(getattr(got, f), getattr(want, f)), f
    assert not np.isin(got.index, excluded).any()
    if kind == "exact":  # exact engines: the printed algorithm over the remaining rows, bit for bit
        mask = np.zeros(len(vec), bool)
        mask[drop_rows] = True
        ref = naive_match(queries[which], vec, k, seeds=seeds, exclude=mask)
        assert np.array_equal(got.index, ids[ref["index"]])
        for f in ("cosine", "score", "threshold", "n_candidates"):
            assert np.array_equal(getattr(got, f), ref[f]), f
    if engine == "bf16":
        assert stats["engine"] == "bf16" and stats["screened"] > 0  # the screen itself ran on the masked pool
    # without the list the planted rows win: the exclusion is what changed the choice
    plain = PoolIndex(PoolEmbeddings({}, ids, vec), engine=engine, kind=kind).candidate_sets(queries, k)
    assert np.isin(plain.draw(which, seeds).index, excluded).mean() > 0.5


def test_pool_index_refuses_excluding_everything():
    from seeing_sound.errors import SeeingSoundError

    vec = np.eye(4, dtype=np.float32)
    with pytest.raises(SeeingSoundError, match="exclude_chunks lists all 4"):
        PoolIndex(PoolEmbeddings({}, np.arange(4), vec), exclude=[0, 1, 2, 3, 9])
    assert len(PoolIndex(PoolEmbeddings({}, np.arange(4), vec), exclude=[])) == 4


# --- end to end: leakage -> sonify --exclude-* ----------------------------------------------------


def _text_model_ok() -> bool:
    try:
        import imagehash  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    from seeing_sound.encoders.text import packaged_text_model

    return packaged_text_model() is not None


needs_models = pytest.mark.skipif(not _text_model_ok(), reason="needs imagehash, sentence-transformers and MiniLM")
LEAKED_SOURCE = "pour"  # the bench track copies the pour chunk coffee.png's recipe uses


def _sonify_argv(world, out, pool=None, *extra):
    from seeing_sound.demo import demo_sidecar

    return [
        "--quiet", "sonify", "--images", str(world["root"] / "images"), "--pool", str(pool or world["pool"]),
        "--out", str(out), "--vlm", f"sidecar:{demo_sidecar()}", "--encoder", "text", "--topk", "3",
        "--seed", "5", *extra,
    ]  # fmt: skip


def _pairs(ds: Path) -> dict[str, dict]:
    from seeing_sound.dataset import PairsDataset

    return {r["pair_id"]: r for r in PairsDataset.open(ds).metadata.to_pylist()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Demo images + a sound-library pool, a first dataset, a BENCH leaking one image and one chunk, leakage's lists."""
    import soundfile as sf
    from PIL import Image

    from seeing_sound.demo import copy_demo_images
    from seeing_sound.pool import AudioPool, build_pool
    from seeing_sound.testing.sounds import write_sound_library

    root = tmp_path_factory.mktemp("exclusions")
    sounds = write_sound_library(root / "sounds", variants=1, seconds=3)
    build_pool([sounds], root / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    copy_demo_images(root / "images")
    world = {"root": root, "pool": root / "pool"}
    assert main(_sonify_argv(world, root / "ds0")) == 0
    pool = AudioPool.open(root / "pool")
    coffee = _pairs(root / "ds0")["coffee.png"]["components"]
    (leaked,) = [c["chunk_id"] for c in coffee if LEAKED_SOURCE in c["chunk_source"]]
    bench = root / "bench"
    (bench / "audio").mkdir(parents=True)
    (bench / "images").mkdir()
    with Image.open(root / "images/chelsea.png") as im:  # a re-encoded copy of a training image
        im.convert("RGB").save(bench / "images/b0.jpg", quality=70)
    with Image.open(root / "images/grass.png") as im:  # a transformed one phash does not call a duplicate
        im.convert("RGB").rotate(180).save(bench / "images/b1.png")
    sf.write(bench / "audio/b0.wav", np.zeros(3 * pool.sample_rate, np.float32), pool.sample_rate)
    sf.write(bench / "audio/b1.wav", pool.chunk(leaked), pool.sample_rate, subtype="PCM_16")  # a leaked chunk
    rows = [{"item_id": f"b{i}", "audio_path": f"audio/b{i}.wav", "image_path": p} for i, p in enumerate(
        ["images/b0.jpg", "images/b1.png"])]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), bench / "metadata.parquet")
    (bench / "benchmark.json").write_text(json.dumps({"name": "planted"}))
    leak = root / "leak"
    argv = ["--quiet", "leakage", "--train", str(root / "ds0"), "--benchmark", str(bench), "--out", str(leak)]
    assert main([*argv, "--image-method", "phash"]) == 0
    assert (leak / "exclude_images.txt").read_text() == "chelsea.png\n"
    assert (leak / "exclude_chunks.txt").read_text() == f"{leaked}\n"
    # the same pool with the leaked chunk's source file physically absent (one chunk per 3 s sound)
    src = sorted(p for p in sounds.iterdir() if p.name == Path(pool.manifest.column("source")[leaked].as_py()).name)
    assert len(src) == 1 and pool.manifest.column("source").to_pylist().count(f"sounds/{src[0].name}") == 1
    kept = root / "without" / "sounds"  # the same folder name: chunk sources read the same
    kept.mkdir(parents=True)
    for p in sounds.iterdir():
        if p != src[0]:
            shutil.copy2(p, kept / p.name)
    without = root / "pool_without"
    build_pool([kept], without, descriptions=sounds / "descriptions.csv", progress=False)
    assert len(AudioPool.open(without)) == len(pool) - 1
    world.update(leak=leak, leaked=leaked, without=without)
    return world


@needs_models
def test_leakage_lists_feed_sonify(world, tmp_path, capsys):
    leak, leaked = world["leak"], world["leaked"]
    ds = tmp_path / "ds"
    lists = ["--exclude-images", str(leak / "exclude_images.txt"), "--exclude-chunks", str(leak / "exclude_chunks.txt")]
    capsys.readouterr()
    assert main(_sonify_argv(world, ds, None, *lists)) == 0
    assert "excluded: 1" in capsys.readouterr().out
    before, after = _pairs(world["root"] / "ds0"), _pairs(ds)
    assert set(after) == set(before) - {"chelsea.png"}  # the leaked image is gone, everything else kept
    used = {c["chunk_id"] for r in before.values() for c in r["components"]}
    assert leaked in used and all(c["chunk_id"] != leaked for r in after.values() for c in r["components"])
    recipes = pq.read_table(ds / "_stages/mix/inputs/shard-000000.parquet")
    assert leaked not in recipes.column("chunk_id").to_pylist()
    card = json.loads((ds / "dataset.json").read_text())
    counts = card["counts"]
    assert counts["filtered"] == {"excluded": 1, "logo": 1, "sign": 1}
    assert (
        counts["images_in"] == 10 == counts["pairs"] + sum(counts["filtered"].values()) + sum(counts["failed"].values())
    )
    assert card["params"]["exclude_images"] == {"sha256": ids_sha256(["chelsea.png"]), "ids": 1}
    assert card["params"]["exclude_chunks"] == {"sha256": ids_sha256([leaked]), "ids": 1}
    assert card["retrieval"]["exclude_chunks"]["matched"] == 1
    assert str(leak) not in json.dumps(card["params"])  # the lists' paths are no part of the card's params
    ds0_card = json.loads((world["root"] / "ds0/dataset.json").read_text())
    assert ds0_card["params"]["exclude_images"] is None and "exclude_chunks" not in ds0_card["retrieval"]


@needs_models
def test_excluded_chunks_give_the_results_of_a_pool_without_them(world, tmp_path):
    """--exclude-chunks over the pool == the same run over a pool that never held the chunk (by source, offset)."""
    excl, phys = tmp_path / "excl", tmp_path / "phys"
    assert main(_sonify_argv(world, excl, None, "--exclude-chunks", str(world["leak"] / "exclude_chunks.txt"))) == 0
    assert main(_sonify_argv(world, phys, world["without"])) == 0
    a, b = _pairs(excl), _pairs(phys)
    assert set(a) == set(b) and "chelsea.png" in a

    def same(c):
        keys = ("concept", "chunk_source", "chunk_offset_s", "cosine", "score", "threshold", "n_candidates")
        return {k: c[k] for k in (*keys, "target_lufs", "gain_db")}

    for pid in a:
        assert [same(c) for c in a[pid]["components"]] == [same(c) for c in b[pid]["components"]], pid
        assert (excl / a[pid]["audio_path"]).read_bytes() == (phys / b[pid]["audio_path"]).read_bytes(), pid
    base = _pairs(world["root"] / "ds0")
    assert any(same(c) != same(d) for p in a for c, d in zip(a[p]["components"], base[p]["components"], strict=True))


@needs_models
def test_a_changed_list_redoes_retrieval_a_moved_one_does_not(world, tmp_path, capsys):
    concepts = world["root"] / "ds0/_stages/sonify/concepts.parquet"
    first = tmp_path / "a/exclude_chunks.txt"
    first.parent.mkdir()
    shutil.copy(world["leak"] / "exclude_chunks.txt", first)
    out = tmp_path / "r"
    argv = ["--quiet", "retrieve", "--pool", str(world["pool"]), "--concepts", str(concepts), "--out", str(out)]
    argv += ["--encoder", "text", "--search-engine", "numpy"]
    assert main([*argv, "--exclude-chunks", str(first)]) == 0
    chosen = pq.read_table(out / "retrieval/shard-000000.parquet").column("chunk_id").to_pylist()
    assert world["leaked"] not in chosen
    moved = tmp_path / "b/renamed.txt"
    moved.parent.mkdir()
    shutil.move(first, moved)
    capsys.readouterr()
    assert main([*argv, "--exclude-chunks", str(moved)]) == 0  # same ids elsewhere: every shard reused
    assert "0 shards run, 1 reused" in capsys.readouterr().out
    info = json.loads((out / "retrieval/info.json").read_text())
    assert info["exclude_chunks"] == {"sha256": ids_sha256([world["leaked"]]), "ids": 1, "matched": 1}
    other = chosen[0] if chosen[0] != world["leaked"] else chosen[1]
    moved.write_text(f"{world['leaked']}\n{other}\n")  # a changed list: the old shards are stale
    assert main([*argv, "--exclude-chunks", str(moved)]) == 1
    assert "other inputs or settings" in capsys.readouterr().err
    assert main([*argv, "--exclude-chunks", str(moved), "--overwrite"]) == 0
    again = pq.read_table(out / "retrieval/shard-000000.parquet").column("chunk_id").to_pylist()
    assert not {world["leaked"], other} & set(again)
    # sonify refuses a changed list on an existing dataset rather than mixing stale retrievals
    ds = tmp_path / "ds"
    assert main(_sonify_argv(world, ds, None, "--exclude-chunks", str(world["leak"] / "exclude_chunks.txt"))) == 0
    assert main(_sonify_argv(world, ds, None, "--exclude-chunks", str(moved))) == 1
    assert "other inputs or settings" in capsys.readouterr().err


@needs_models
def test_unknown_image_ids_are_counted_not_an_error(world, tmp_path, caplog):
    from seeing_sound.concepts import VLMSpec
    from seeing_sound.demo import demo_sidecar
    from seeing_sound.sonify import sonify

    listed = tmp_path / "ex.txt"
    listed.write_text("gravel.png\r\nnot-in-this-run.png\r\n\r\n")
    with caplog.at_level(logging.INFO, logger="seeing_sound.sonify"):
        report = sonify(
            world["root"] / "images", world["pool"], tmp_path / "ds", vlms=[VLMSpec("sidecar", str(demo_sidecar()))],
            encoder="text", topk=3, seed=5, exclude_images=str(listed), progress=False,
        )  # fmt: skip
    assert report.filtered["excluded"] == 1 and "gravel.png" not in _pairs(tmp_path / "ds")
    assert "1 of 2 listed ids are images of this run (1 unknown" in caplog.text


@pytest.mark.parametrize("flag", ["--exclude-images", "--exclude-chunks"])
def test_missing_list_is_a_usage_error_before_any_stage(tmp_path, capsys, flag):
    (tmp_path / "images").mkdir()
    argv = ["sonify", "--images", str(tmp_path / "images"), "--pool", str(tmp_path / "pool")]
    argv += ["--out", str(tmp_path / "ds"), "--vlm", f"sidecar:{tmp_path / 'side.jsonl'}"]
    assert main([*argv, flag, str(tmp_path / "nope.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"seeing-sound: error: {flag}: no such file"), err
    if flag == "--exclude-chunks":
        bad = tmp_path / "bad.txt"
        bad.write_text("4\nchelsea.png\n")
        assert main([*argv, flag, str(bad)]) == 2
        assert "--exclude-chunks: line 2 is not a chunk id" in capsys.readouterr().err
        retrieve = ["retrieve", "--pool", str(tmp_path / "pool"), "--concepts", "c.jsonl", "--out", str(tmp_path / "r")]
        assert main([*retrieve, flag, str(tmp_path / "nope.txt")]) == 2
        assert capsys.readouterr().err.startswith("seeing-sound: error: --exclude-chunks: no such file")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["images"]  # nothing started
