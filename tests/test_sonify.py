"""sonify end to end on real data (skimage photos, synthesized sounds, packaged MiniLM), rebuild, safety."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from seeing_sound.cli import main
from seeing_sound.concepts import VLMSpec
from seeing_sound.dataset import PairsDataset
from seeing_sound.demo import copy_demo_images, demo_sidecar
from seeing_sound.pool import build_pool
from seeing_sound.sonify import rebuild, sonify
from seeing_sound.testing.sounds import write_sound_library


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    sounds = write_sound_library(root / "sounds", variants=1, seconds=3)
    build_pool([sounds], root / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    copy_demo_images(root / "images")
    return root


def _sonify(sample, out, **kw):
    kw.setdefault("progress", False)
    return sonify(
        sample / "images",
        sample / "pool",
        out,
        vlms=[VLMSpec("sidecar", str(demo_sidecar()), name="demo")],
        encoder="text",
        topk=3,
        seed=5,
        **kw,
    )


def test_sonify_dataset_summary_and_rebuild(sample, tmp_path):
    report = _sonify(sample, tmp_path / "ds")
    assert report.images_in == 10
    assert report.filtered == {"logo": 1, "sign": 1}
    assert report.failed == {"concepts:refusal": 1}  # the moon's answer is a refusal, recorded, not dropped
    assert report.pairs == 7 and report.unique_chunks >= 7
    assert report.images_in == report.pairs + sum(report.filtered.values()) + sum(report.failed.values())
    ds = PairsDataset.open(tmp_path / "ds")
    rows = {r["image_id"]: r for r in ds.metadata.to_pylist()}
    cat = rows["chelsea.png"]
    assert "the sound of a cat meowing" in cat["components"][0]["concept"].lower()
    assert cat["components"][0]["object"] == "Cat"
    descr = " ".join(c["chunk_description"] for c in cat["components"])
    assert "cat" in descr.lower()  # text retrieval found the cat sounds
    for c in cat["components"]:
        assert -25 <= c["target_lufs"] <= -21 and c["gain_db"] == pytest.approx(c["target_lufs"] - c["chunk_lufs"])
        assert c["score"] == pytest.approx(np.sign(c["cosine"]) * np.sqrt(abs(c["cosine"])), abs=1e-5)
    assert ds.image_path(0).is_file() and ds.audio(0).shape == (80000,)
    card = json.loads((tmp_path / "ds/dataset.json").read_text())
    assert card["params"]["seed"] == 5 and card["concepts"]["models"] == [
        "llava-1.5-7b (demo sidecar, hand-written in its style)"
    ]
    assert card["concepts"]["caption_prompts"] == ["Provide a short and concise description of the following image."]
    assert card["params"]["encoder"] == "text" and card["retrieval"]  # the retrieval run's identity is recorded

    rebuilt = rebuild(tmp_path / "ds", sample / "pool", tmp_path / "rebuilt", progress=False)
    assert rebuilt.ok and rebuilt.matched == 7
    for i in range(len(ds)):
        rel = ds.metadata.column("audio_path")[i].as_py()
        assert (tmp_path / "rebuilt" / rel).read_bytes() == (tmp_path / "ds" / rel).read_bytes()


def test_rebuild_reports_tampering_and_refuses_escaping_paths(sample, tmp_path):
    _sonify(sample, tmp_path / "ds")
    meta = tmp_path / "ds/metadata/shard-000000.parquet"
    table = pq.read_table(meta)
    rows = table.to_pylist()
    rows[0]["components"][0]["gain_db"] += 0.5  # a tampered recipe
    rows[1]["audio_path"] = "../../etc/passwd"
    rows[2]["components"][0]["chunk_source"] = "elsewhere/x.wav"  # pool differs
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), meta)
    report = rebuild(tmp_path / "ds", sample / "pool", tmp_path / "out", progress=False)
    assert report.mismatched == [rows[0]["pair_id"]]
    assert report.errors == {"unsafe_path": [rows[1]["pair_id"]], "pool_differs": [rows[2]["pair_id"]]}
    assert not (tmp_path / "etc").exists()
    assert main(["--quiet", "rebuild", str(tmp_path / "ds"), "--pool", str(sample / "pool")]) == 1


def test_workers_and_reruns_are_byte_identical(sample, tmp_path):
    _sonify(sample, tmp_path / "w1", workers=1, pairs_per_shard=2)
    _sonify(sample, tmp_path / "w2", workers=2, pairs_per_shard=2)
    again = _sonify(sample, tmp_path / "w1", workers=1, pairs_per_shard=2)  # resume: nothing to redo
    assert again.pairs == 7
    files = sorted(
        p.relative_to(tmp_path / "w1")
        for p in (tmp_path / "w1").rglob("*")
        if p.is_file() and p.parts[-2] != "_stages" and "_stages" not in p.parts
    )
    assert any(str(f).startswith("audio/") for f in files) and any(str(f).startswith("metadata/") for f in files)
    for f in files:
        assert (tmp_path / "w1" / f).read_bytes() == (tmp_path / "w2" / f).read_bytes(), f


def test_concepts_file_and_copy_images(sample, tmp_path):
    concepts = tmp_path / "c.jsonl"
    concepts.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"image_id": "chelsea.png", "concept": "a cat meowing"},
                {"image_id": "coffee.png", "concept": "a spoon clinking on a cup"},
                {"image_id": "missing.png", "concept": "rain"},
            ]
        )
        + "\n"
    )
    report = sonify(
        sample / "images",
        sample / "pool",
        tmp_path / "ds",
        concepts=concepts,
        encoder="text",
        topk=3,
        copy_images=True,
        progress=False,
    )
    assert report.pairs == 2 and report.failed == {"image_missing": 1}
    import tarfile

    with tarfile.open(tmp_path / "ds/webdataset/shard-000000.tar") as tar:
        names = sorted(tar.getnames())
    assert names == [
        "000000000000.flac",
        "000000000000.json",
        "000000000000.png",
        "000000000001.flac",
        "000000000001.json",
        "000000000001.png",
    ]


def test_sonify_cli(sample, tmp_path, capsys):
    rc = main(
        [
            "--quiet",
            "sonify",
            "--images",
            str(sample / "images"),
            "--pool",
            str(sample / "pool"),
            "--out",
            str(tmp_path / "ds"),
            "--vlm",
            f"sidecar:{demo_sidecar()}",
            "--encoder",
            "text",
            "--topk",
            "3",
            "--lufs-range",
            "-30",
            "-28",
            "--audio-format",
            "wav",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "pairs       7 written" in out and "logo: 1" in out
    ds = PairsDataset.open(tmp_path / "ds")
    assert ds.metadata.column("audio_path")[0].as_py().endswith(".wav")
    assert all(-30 <= c["target_lufs"] <= -28 for r in ds.metadata.to_pylist() for c in r["components"])


def test_mix_stage_skips_bad_pairs_with_reasons(sample, tmp_path):
    from seeing_sound.engine import run_stage
    from seeing_sound.sonify.config import SonifyConfig
    from seeing_sound.sonify.stage import MixStage, inputs_rel

    images = tmp_path / "images"
    shutil.copytree(sample / "images", images)
    sonify(
        images,
        sample / "pool",
        tmp_path / "ds",
        vlms=[VLMSpec("sidecar", str(demo_sidecar()), name="demo")],
        encoder="text",
        topk=3,
        seed=5,
        progress=False,
    )
    table = pq.read_table(tmp_path / "ds" / inputs_rel(0))
    rows = table.to_pylist()
    pairs = sorted({r["pair_id"] for r in rows})
    for r in rows:
        if r["pair_id"] == pairs[0]:
            r["chunk_id"] = 10**9  # not in the pool
    (images / next(r["image_path"] for r in rows if r["pair_id"] == pairs[1])).unlink()
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), tmp_path / "ds" / inputs_rel(0))
    stage = MixStage(
        config=SonifyConfig(seed=5, copy_images=True),
        out=str(tmp_path / "ds"),
        pool_root=str(sample / "pool"),
        images_root=str(images),
        counts=(len(pairs),),
        inputs_digest="tampered",
    )
    report = run_stage(stage, tmp_path / "ds", progress=False, overwrite=True)
    assert report.errors == {"chunk_not_in_pool": 1, "image_missing": 1}
    assert report.items_out == len(pairs) - 2


def test_rebuild_reports_a_tampered_pool_chunk(sample, tmp_path):
    pool = tmp_path / "pool"
    shutil.copytree(sample / "pool", pool)
    sonify(
        sample / "images",
        pool,
        tmp_path / "ds",
        vlms=[VLMSpec("sidecar", str(demo_sidecar()), name="demo")],
        encoder="text",
        topk=3,
        seed=5,
        progress=False,
    )
    ds = PairsDataset.open(tmp_path / "ds")
    victim = ds.row(0)
    chunk_id = victim["components"][0]["chunk_id"]
    data = np.memmap(pool / "chunks/shard-000000.i16", dtype="<i2", mode="r+").reshape(-1, 80000)
    data[chunk_id, 1000:1010] += 7  # ten samples of one chunk change by a few LSB
    data.flush()
    del data
    report = rebuild(tmp_path / "ds", pool, progress=False)
    tampered = {
        r["pair_id"] for r in ds.metadata.to_pylist() if any(c["chunk_id"] == chunk_id for c in r["components"])
    }
    assert set(report.mismatched) == tampered and victim["pair_id"] in tampered
    assert report.matched == len(ds) - len(tampered)
