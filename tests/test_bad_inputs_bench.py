"""Bad-input corpus for ``bench prepare``: names read from a release (CSV ids, folder and file names) become
the item ids that name ``audio/<id>.wav`` and ``images/<id>.png``; they go through one safe-name gate.

One case per row, each named in the test id: the release is prepared, every item file lies inside
BENCH under a name that :func:`~seeing_sound.dataset.paths.safe_name` accepts as it is, nothing is
written outside BENCH, and every video is an item or an error row.
"""

import csv
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.importorskip("av")

from seeing_sound.bench import prepare_benchmark
from seeing_sound.bench.synthetic import write_video
from seeing_sound.dataset import paths


def long_names(src):
    # each component fits a file system (<= 255 bytes) but the id made of both does not
    write_video(src / ("c" * 150) / ("v" * 150 + ".mp4"), frames=5)
    return "folder", {}


def odd_characters(src):
    write_video(src / "dog" / "\x01.. y.mp4", frames=5)
    write_video(src / "cat" / "é\\x.mp4", frames=5)
    return "folder", {}


def csv_id_with_a_path(src):
    write_video(src / "video" / "evil_000000.mp4", frames=5)
    with open(src / "vggsound.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["../../../evil", 0, "dog", "test"], ["/abs/" + "y" * 300, 0, "dog", "test"]])
    return "vggsound", {"csv": src / "vggsound.csv"}


CASES = [
    ("long-names", long_names),
    ("odd-characters", odd_characters),
    ("csv-id-with-a-path", csv_id_with_a_path),
]


@pytest.mark.parametrize("make", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_bench_prepare_names_stay_safe(tmp_path, make):
    work = tmp_path / "a" / "b"
    src = work / "src"
    src.mkdir(parents=True)
    kind, kw = make(src)
    videos = sorted(p for p in src.rglob("*.mp4"))
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    bench = work / "BENCH"
    prepare_benchmark(kind, src, bench, progress=False, **kw)  # was: OSError File name too long, the run stopped
    meta = pq.read_table(bench / "metadata.parquet").to_pylist()
    errors = pq.read_table(bench / "errors.parquet").to_pylist()
    assert len(meta) == len(videos) and not [e for e in errors if e["reason"] != "missing_video"]
    for r in meta:
        assert paths.safe_name(r["item_id"]) == r["item_id"]
        for rel in (r["audio_path"], r["image_path"]):
            assert (bench / rel).is_file() and (bench / rel).resolve().parent.parent == bench.resolve()
    after = sorted(p for p in tmp_path.rglob("*") if p.is_file() and bench not in p.parents)
    assert after == before  # nothing written beside BENCH
    assert all(len(os.fsencode(p.name)) <= 255 for p in bench.rglob("*"))


def test_long_ids_stay_distinct(tmp_path):
    """Ids cut to the length limit keep a hash of the whole name: two long names give two items."""
    src = tmp_path / "src"
    for tail in "xy":
        write_video(src / ("c" * 150) / ("v" * 150 + tail + ".mp4"), frames=5)
    prepare_benchmark("folder", src, tmp_path / "BENCH", progress=False)
    ids = [r["item_id"] for r in pq.read_table(tmp_path / "BENCH" / "metadata.parquet").to_pylist()]
    assert len(set(ids)) == 2 and all(Path(f"{i}.wav").name == f"{i}.wav" for i in ids)


def test_long_ids_made_equal_stay_distinct_and_short(tmp_path):
    """Two long names that only differ in odd characters: the source hash :func:`unique_ids` appends keeps
    the id within the length limit (``evaluate`` refuses longer ids)."""
    src = tmp_path / "src"
    for tail in ("x y", "x_y"):
        write_video(src / "dog" / ("v" * 240 + tail + ".mp4"), frames=5)
    prepare_benchmark("folder", src, tmp_path / "BENCH", progress=False)
    ids = [r["item_id"] for r in pq.read_table(tmp_path / "BENCH" / "metadata.parquet").to_pylist()]
    assert len(set(ids)) == 2 and all(paths.safe_name(i) == i for i in ids)
