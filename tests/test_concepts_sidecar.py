"""Sidecar back end and the stage around it: filter, numbering across models, records, resume."""

import csv
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seeing_sound.concepts import VLMSpec, read_concepts, run_concepts
from seeing_sound.concepts.backends import VLMRequest, clear_backend_cache
from seeing_sound.concepts.backends.sidecar import SidecarBackend
from seeing_sound.errors import SeeingSoundError, StageMismatchError
from seeing_sound.testing.data import write_bad_images

SKIMAGE = Path(pytest.importorskip("skimage").__file__).parent / "data"
ROWS = [
    {
        "image_id": "chelsea.png",
        "caption": "A tabby cat looking up.",
        "concepts": "1. Cat - meowing\n2. Wall - silence",
    },
    {"path": "coffee", "caption": "A cup of coffee on a saucer.", "concepts": ["Cup: clinking", "Spoon - stirring"]},
    {"image_id": "logo.png", "caption": "The scikit-image logo: a snake.", "concepts": "1. Snake - hissing"},
    {"image_id": "rocket.jpg", "caption": "A rocket lifting off.", "concepts": "I'm sorry, I cannot help with that."},
    {
        "image_id": "sub/astronaut.png",
        "caption": "An astronaut in a suit.",
        "model": "cogvlm",
        "object": "Astronaut",
        "sound": "breathing",
    },
    {"image_id": "sub/astronaut.png", "model": "llava", "concept": "Flag: flapping"},
]


@pytest.fixture(autouse=True)
def _fresh_backends():
    yield
    clear_backend_cache()


@pytest.fixture
def images(tmp_path):
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    for name in ("chelsea.png", "coffee.png", "logo.png", "rocket.jpg"):
        shutil.copy(SKIMAGE / name, root / name)
    shutil.copy(SKIMAGE / "astronaut.png", root / "sub" / "astronaut.png")
    write_bad_images(root / "bad")
    return root


def _write(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    elif path.suffix == ".parquet":  # one column type: lists stored as JSON text, as in CSV
        schema = pa.schema([(k, pa.string()) for k in sorted({k for r in rows for k in r})])
        flat = [{k: (json.dumps(v) if isinstance(v, list) else v) for k, v in r.items()} for r in rows]
        pq.write_table(pa.Table.from_pylist(flat, schema=schema), path)
    else:
        cols = sorted({k for r in rows for k in r})
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, cols)
            w.writeheader()
            w.writerows([{k: (json.dumps(v) if isinstance(v, list) else v) for k, v in r.items()} for r in rows])
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_formats_and_matching(tmp_path, suffix):
    backend = SidecarBackend(VLMSpec("sidecar", str(_write(tmp_path / f"side{suffix}", ROWS))))
    assert backend.provides_captions and backend.provides_concepts
    reqs = [VLMRequest(i, i, None, "p") for i in ("chelsea.png", "coffee.png", "sub/astronaut.png", "nope.png")]
    caps = backend.generate(reqs, "caption")
    assert caps[0][0].text == "A tabby cat looking up." and caps[1][0].text == "A cup of coffee on a saucer."
    assert caps[3][0].error == "sidecar-missing"
    gens = backend.generate(reqs, "concepts")
    assert gens[0][0].text.startswith("1. Cat") and gens[0][0].items is None  # raw text: parsed later
    assert gens[1][0].items == ("Cup: clinking", "Spoon - stirring") or gens[1][0].text.startswith("[")
    assert [(g.model, g.items) for g in gens[2]] == [
        ("cogvlm", ("Astronaut: breathing",)),
        ("llava", ("Flag: flapping",)),
    ]
    assert gens[3][0].error == "sidecar-missing"


def test_bad_sidecars_are_clear_errors(tmp_path):
    with pytest.raises(SeeingSoundError, match="no key column"):
        SidecarBackend(VLMSpec("sidecar", str(_write(tmp_path / "a.jsonl", [{"name": "x", "caption": "y"}]))))
    with pytest.raises(SeeingSoundError, match="line 2"):
        (tmp_path / "b.jsonl").write_text('{"image_id": "a", "caption": "x"}\n{oops\n')
        SidecarBackend(VLMSpec("sidecar", str(tmp_path / "b.jsonl")))
    with pytest.raises(ValueError, match="sidecar must be"):
        (tmp_path / "c.xml").write_text("<x/>")
        SidecarBackend(VLMSpec("sidecar", str(tmp_path / "c.xml")))


def test_stage_records_filter_failures_and_numbering(tmp_path, images):
    side = _write(tmp_path / "side.jsonl", ROWS)
    extra = _write(
        tmp_path / "more.csv", [{"image_id": "chelsea.png", "concepts": "1. Cat - purring\n2. Bird - chirping"}]
    )
    vlms = [VLMSpec.parse(f"sidecar:{side}"), VLMSpec.parse(f"sidecar:{extra}")]
    report = run_concepts([images], tmp_path / "out", vlms=vlms, progress=False, shard_size=3)
    concepts, table = read_concepts(tmp_path / "out")
    assert report.images_in == 9 and report.filtered == {"logo": 1} and report.images_with_concepts == 3
    assert report.failed == {
        "concepts:refusal": 1, "decompression-bomb": 1, "empty-file": 1, "not-an-image": 1, "truncated": 1,
    }  # fmt: skip
    assert report.concepts == 8 and report.concepts_per_image == {2: 2, 4: 1}
    # concept_index runs 0.. per image across the models, in --vlm order; (image_id, concept_index) is unique
    chelsea = [
        (r["model"], r["concept_index"], r["concept"]) for r in concepts.to_pylist() if r["image_id"] == "chelsea.png"
    ]
    assert chelsea == [
        ("sidecar:side.jsonl", 0, "Cat: meowing"), ("sidecar:side.jsonl", 1, "Wall: silence"),
        ("sidecar:more.csv", 2, "Cat: purring"), ("sidecar:more.csv", 3, "Bird: chirping"),
    ]  # fmt: skip
    keys = list(zip(concepts["image_id"].to_pylist(), concepts["concept_index"].to_pylist(), strict=True))
    assert len(keys) == len(set(keys))
    assert concepts.schema.field("concept_index").type == pa.int32()
    rows = {r["image_id"]: r for r in table.to_pylist()}
    assert len(rows) == 9  # every file has a row: nothing silently dropped
    assert rows["logo.png"]["filtered"] and rows["logo.png"]["filter_word"] == "logo"
    assert rows["rocket.jpg"]["failures"][0]["raw_text"].startswith("I'm sorry")
    assert rows["chelsea.png"]["width"] == 451 and rows["chelsea.png"]["root"] == str(images.resolve())
    assert rows["bad/empty.png"]["error"] == "empty-file" and rows["bad/empty.png"]["sha256"]
    assert rows["coffee.png"]["caption_prompt"].startswith("Provide a short and concise")


def test_no_filter_keeps_logo_and_no_captions(tmp_path, images):
    side = _write(tmp_path / "side.jsonl", ROWS)
    vlms = [VLMSpec.parse(f"sidecar:{side}")]
    report = run_concepts([images], tmp_path / "out", vlms=vlms, progress=False, no_filter=True, captions=False)
    _, table = read_concepts(tmp_path / "out")
    logo = next(r for r in table.to_pylist() if r["image_id"] == "logo.png")
    assert not report.filtered and logo["n_concepts"] == 1 and logo["caption"] is None
    with pytest.raises(ValueError, match="no_filter"):
        run_concepts([images], tmp_path / "o2", vlms=vlms, captions=False)


def test_caption_source_must_have_captions(tmp_path, images):
    only_concepts = _write(tmp_path / "c.jsonl", [{"image_id": "chelsea.png", "concept": "Cat: meow"}])
    with pytest.raises(SeeingSoundError, match="no caption column"):
        run_concepts([images], tmp_path / "out", vlms=[VLMSpec.parse(f"sidecar:{only_concepts}")], progress=False)
    with pytest.raises(ValueError, match="unique"):
        run_concepts([images], tmp_path / "out", vlms=[VLMSpec.parse(f"sidecar:{only_concepts}")] * 2)
    with pytest.raises(ValueError, match="caption_vlm"):
        run_concepts([images], tmp_path / "out", vlms=[VLMSpec.parse(f"sidecar:{only_concepts}")], caption_vlm=3)


def test_resume_skips_done_shards_and_is_byte_identical(tmp_path, images):
    side = _write(tmp_path / "side.jsonl", ROWS)
    vlms = [VLMSpec.parse(f"sidecar:{side}")]
    run_concepts([images], tmp_path / "a", vlms=vlms, progress=False, shard_size=2)
    run_concepts([images], tmp_path / "b", vlms=vlms, progress=False, shard_size=2)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").glob("*/shard-*.parquet"))
    assert len(files) == 10
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    (tmp_path / "a" / "concepts" / "shard-000002.parquet").unlink()  # as if killed before shard 2 landed
    (tmp_path / "a" / "_stages" / "concepts" / "shard-000003.done.json").unlink()
    again = run_concepts([images], tmp_path / "a", vlms=vlms, progress=False, shard_size=2)
    assert again.shards_ran == 2 and again.shards_skipped == 3 and again.images_in == 9
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    with pytest.raises(StageMismatchError):  # other settings on the same folder
        run_concepts([images], tmp_path / "a", vlms=vlms, progress=False, shard_size=2, concept_prompt="List sounds.")
    _write(side, ROWS[:2])  # an edited sidecar is another input
    with pytest.raises(StageMismatchError):
        run_concepts([images], tmp_path / "a", vlms=vlms, progress=False, shard_size=2)


def test_workers_give_the_same_output(tmp_path, images):
    side = _write(tmp_path / "side.jsonl", ROWS)
    vlms = [VLMSpec.parse(f"sidecar:{side}")]
    run_concepts([images], tmp_path / "a", vlms=vlms, progress=False, shard_size=3)
    run_concepts([images], tmp_path / "b", vlms=vlms, progress=False, shard_size=3, workers=2)
    for f in (tmp_path / "a").glob("*/shard-*.parquet"):
        assert f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes()


def test_read_concepts_errors_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="seeing-sound concepts"):
        read_concepts(tmp_path)
