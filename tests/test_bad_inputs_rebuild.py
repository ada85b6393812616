"""Bad-input corpus for ``rebuild`` and ``verify``: tampered metadata, stored files and folders.

One sonified dataset is made per module; each case copies it, damages it one way, and checks
that ``rebuild`` records the pair under the expected reason and accounts for every pair
(pairs == identical + mismatched + errors), and that ``verify`` names the damaged file.
"""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from seeing_sound.cli import main
from seeing_sound.concepts import VLMSpec
from seeing_sound.dataset.audio_files import read_pcm16
from seeing_sound.dataset.verify import verify_dataset
from seeing_sound.demo import copy_demo_images, demo_sidecar
from seeing_sound.errors import SeeingSoundError
from seeing_sound.pool import build_pool
from seeing_sound.sonify import rebuild, sonify
from seeing_sound.testing.sounds import write_sound_library

META = "metadata/shard-000000.parquet"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("made")
    sounds = write_sound_library(root / "sounds", variants=1, seconds=3)
    build_pool([sounds], root / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    copy_demo_images(root / "images")
    vlm = VLMSpec("sidecar", str(demo_sidecar()), name="demo")
    sonify(root / "images", root / "pool", root / "ds", vlms=[vlm], encoder="text", topk=3, seed=5, progress=False)
    return root


@pytest.fixture
def ds(made, tmp_path):
    shutil.copytree(made / "ds", tmp_path / "ds")
    shutil.copytree(made / "images", tmp_path / "images")  # cases may damage images: each gets its own
    card = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    card["images_root"] = str(tmp_path / "images")
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps(card))
    return tmp_path / "ds"


def _rows(ds):
    return pq.read_table(ds / META).to_pylist()


def _edit_rows(ds, fn):
    table = pq.read_table(ds / META)
    rows = table.to_pylist()
    fn(rows)
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), ds / META)
    return rows


# --- metadata damage: rebuild reasons -------------------------------------------------------------
def audio_path_dot(ds):
    return _edit_rows(ds, lambda r: r[0].update(audio_path="."))[0]["pair_id"], "bad_audio_path"


def audio_path_folder(ds):
    return _edit_rows(ds, lambda r: r[0].update(audio_path="audio"))[0]["pair_id"], "bad_audio_path"


def audio_path_escapes(ds):
    return _edit_rows(ds, lambda r: r[0].update(audio_path="../../x.flac"))[0]["pair_id"], "unsafe_path"


def audio_path_absolute(ds):
    return _edit_rows(ds, lambda r: r[0].update(audio_path="/etc/passwd"))[0]["pair_id"], "unsafe_path"


def chunk_out_of_range(ds):
    return _edit_rows(ds, lambda r: r[0]["components"][0].update(chunk_id=10**9))[0]["pair_id"], "chunk_not_in_pool"


def no_components(ds):
    return _edit_rows(ds, lambda r: r[0].update(components=[]))[0]["pair_id"], "chunk_not_in_pool"


def pool_differs(ds):
    rows = _edit_rows(ds, lambda r: r[0]["components"][0].update(chunk_source="elsewhere/x.wav"))
    return rows[0]["pair_id"], "pool_differs"


def tampered_gain(ds):
    rows = _edit_rows(ds, lambda r: r[0]["components"][0].update(gain_db=r[0]["components"][0]["gain_db"] + 0.5))
    return rows[0]["pair_id"], "mismatched"


REBUILD_CASES = [
    ("audio-path-dot", audio_path_dot),
    ("audio-path-is-a-folder", audio_path_folder),
    ("audio-path-escapes", audio_path_escapes),
    ("audio-path-absolute", audio_path_absolute),
    ("chunk-out-of-range", chunk_out_of_range),
    ("no-components", no_components),
    ("pool-differs", pool_differs),
    ("tampered-gain", tampered_gain),
]


@pytest.mark.parametrize("damage", [c[1] for c in REBUILD_CASES], ids=[c[0] for c in REBUILD_CASES])
def test_rebuild_bad_input(made, ds, tmp_path, damage):
    pid, reason = damage(ds)
    report = rebuild(ds, made / "pool", tmp_path / "out", progress=False)  # was: IsADirectoryError, no summary
    got = ["mismatched"] if pid in report.mismatched else [k for k, ids in report.errors.items() if pid in ids]
    assert got == [reason]
    assert report.pairs == report.matched + len(report.mismatched) + sum(map(len, report.errors.values()))
    assert report.pairs - 1 == report.matched
    assert "pairs" in report.summary()


# --- stored-file damage: verify finds it, rebuild never hides it ----------------------------------
def flipped_sample(ds):
    rel = _rows(ds)[0]["audio_path"]
    pcm, sr = read_pcm16(ds / rel)
    pcm = pcm.copy()
    pcm[100] ^= 1
    import soundfile as sf

    sf.write(ds / rel, pcm, sr, format="FLAC", subtype="PCM_16")
    return "mismatched", rel


def missing_audio(ds):
    rel = _rows(ds)[1]["audio_path"]
    (ds / rel).unlink()
    return "missing", rel


def garbage_audio(ds):
    rel = _rows(ds)[2]["audio_path"]
    (ds / rel).write_bytes(b"not flac at all")
    return "unreadable", rel


def extra_audio(ds):
    (ds / "audio" / "shard-000000" / "stray.flac").write_bytes(b"x")
    return "extra", "audio/shard-000000/stray.flac"


def changed_image(ds):
    row = next(r for r in _rows(ds) if r["image_sha256"])
    card = json.loads((ds / "dataset.json").read_text())
    base = ds / card["images_root"]
    with open(base / row["image_path"], "ab") as fh:
        fh.write(b"\0")
    return "image_mismatched", row["image_path"]


VERIFY_CASES = [
    ("flipped-sample", flipped_sample),
    ("missing-audio", missing_audio),
    ("garbage-audio", garbage_audio),
    ("extra-file", extra_audio),
    ("changed-image", changed_image),
]


def test_a_clean_dataset_verifies(ds, capsys):
    report = verify_dataset(ds)
    assert report.ok and report.audio_ok == report.pairs > 0 and report.images_ok == report.images_checked > 0
    assert main(["--quiet", "verify", str(ds), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


@pytest.mark.parametrize("damage", [c[1] for c in VERIFY_CASES], ids=[c[0] for c in VERIFY_CASES])
def test_verify_bad_input(ds, capsys, damage):
    kind, rel = damage(ds)
    report = verify_dataset(ds)
    assert getattr(report, kind) == [rel] and not report.ok
    problems = sum(len(getattr(report, k)) for k in ("mismatched", "missing", "unreadable"))
    assert report.pairs == report.audio_ok + problems
    assert main(["--quiet", "verify", str(ds), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)[kind] == [rel]


def test_rebuild_into_the_dataset_never_replaces_differing_stored_audio(made, ds, capsys):
    rows = _edit_rows(ds, lambda r: r[0]["components"][0].update(gain_db=r[0]["components"][0]["gain_db"] + 3))
    rel = rows[0]["audio_path"]
    before = {r["audio_path"]: (ds / r["audio_path"]).read_bytes() for r in rows}
    with pytest.raises(SeeingSoundError, match="own folder"):
        rebuild(ds, made / "pool", ds, progress=False)
    assert main(["--quiet", "rebuild", str(ds), "--pool", str(made / "pool"), "--out", str(ds)]) == 1
    assert "own folder" in capsys.readouterr().err
    # an explicit out that already holds the dataset's files (a copy): differing files are kept
    copy = ds.parent / "copy"
    shutil.copytree(ds, copy)
    report = rebuild(ds, made / "pool", copy, progress=False)
    assert report.errors == {"stored_differs": [rows[0]["pair_id"]]} and report.kept == len(rows) - 1
    assert (copy / rel).read_bytes() == before[rel]  # the good stored audio survived
    assert verify_dataset(copy).ok  # and still matches the metadata
    # --force replaces it; verify then reports the mismatch rebuild wrote
    report = rebuild(ds, made / "pool", copy, force=True, progress=False)
    assert report.written == 1 and report.mismatched == [rows[0]["pair_id"]]
    assert verify_dataset(copy).mismatched == [rel]


def test_missing_files_are_restored_by_rebuild(made, ds):
    rows = _rows(ds)
    (ds / rows[0]["audio_path"]).unlink()
    assert verify_dataset(ds).missing == [rows[0]["audio_path"]]
    report = rebuild(ds, made / "pool", ds, force=True, progress=False)
    assert report.ok and report.written == 1 and report.kept == len(rows) - 1
    assert verify_dataset(ds).ok


@pytest.mark.parametrize("what", ["pool", "concepts", "file", "missing"])
def test_wrong_folder_given_as_a_dataset_is_one_clear_line(made, tmp_path, capsys, what):
    arg = {"pool": made / "pool", "file": made / "pool" / "pool.json", "missing": tmp_path / "nope"}.get(what)
    if what == "concepts":
        arg = tmp_path / "c"
        (arg / "images").mkdir(parents=True)
        (arg / "concepts").mkdir()
    assert main(["--quiet", "verify", str(arg)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Errno" not in err[0]
    expected = {"pool": "is an audio pool, not a pairs dataset", "concepts": "concepts run", "file": "is a file"}
    assert expected.get(what, "does not exist") in err[0]


def test_verify_reports_a_missing_images_root(ds):
    report = verify_dataset(ds, images_root=ds.parent / "elsewhere")
    assert not report.ok and "not found" in report.images_note and len(report.image_missing) == report.images_checked
    assert verify_dataset(ds, images=False, images_root=ds.parent / "elsewhere").ok
    assert np.isfinite(report.pairs)
