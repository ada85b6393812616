"""``sonify`` on images read in place from tar shards and Parquet gives the pairs of the extracted folder,
byte for byte; the dataset's readers (``ds[i]``, ``image_bytes``, ``export hf``, ``--copy-images``) find
the images where they live."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seeing_sound.cli import main
from seeing_sound.concepts import VLMSpec
from seeing_sound.dataset import PairsDataset
from seeing_sound.demo import copy_demo_images, demo_sidecar
from seeing_sound.pool import build_pool
from seeing_sound.sonify import sonify
from seeing_sound.testing.sounds import write_sound_library


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    sounds = write_sound_library(root / "sounds", variants=1, seconds=3)
    build_pool([sounds], root / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    copy_demo_images(root / "images")
    names = sorted(p.name for p in (root / "images").iterdir())
    # SAM's layout: two shards, each image with a .json annotation, members in reverse name order
    for k, part in enumerate((names[: len(names) // 2], names[len(names) // 2 :])):
        (root / "shards").mkdir(exist_ok=True)
        with tarfile.open(root / "shards" / f"sa_{k:06d}.tar", "w") as tf:
            for name in reversed(part):
                for member, data in ((name, (root / "images" / name).read_bytes()), (f"{name}.json", b"{}")):
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    pq.write_table(
        pa.table(
            {
                "image_id": names,
                "image": pa.array([(root / "images" / n).read_bytes() for n in names], pa.binary()),
            }
        ),
        root / "images.parquet",
        row_group_size=3,
    )
    return root


def _sonify(sample, images, out, **kw):
    return sonify(
        images,
        sample / "pool",
        out,
        vlms=[VLMSpec("sidecar", str(demo_sidecar()), name="demo")],
        encoder="text",
        topk=3,
        seed=5,
        progress=False,
        **kw,
    )


def _pair_bytes(ds: Path) -> dict[str, bytes]:
    """Every file of the pairs (metadata shards and mixtures); the card names the images' root, so not it."""
    return {
        p.relative_to(ds).as_posix(): p.read_bytes()
        for sub in ("metadata", "audio")
        for p in sorted((ds / sub).rglob("*"))
        if p.is_file()
    }


def test_shards_and_parquet_give_the_folders_pairs_byte_for_byte(sample, tmp_path):
    folder = _sonify(sample, sample / "images", tmp_path / "folder")
    shards = _sonify(sample, str(sample / "shards" / "sa_{000000..000001}.tar"), tmp_path / "shards")
    table = _sonify(sample, sample / "images.parquet", tmp_path / "table")
    assert folder.pairs == shards.pairs == table.pairs > 0
    want = _pair_bytes(tmp_path / "folder")
    assert want and _pair_bytes(tmp_path / "shards") == want and _pair_bytes(tmp_path / "table") == want
    for name in ("folder", "shards", "table"):
        ds = PairsDataset.open(tmp_path / name)
        assert ds[0]["image"].size == PairsDataset.open(tmp_path / "folder")[0]["image"].size
        assert ds.image_bytes(0) == (sample / "images" / ds.row(0)["image_path"]).read_bytes()


def test_copy_images_reads_from_the_shards(sample, tmp_path):
    _sonify(sample, str(sample / "shards" / "*.tar"), tmp_path / "ds", copy_images=True)
    _sonify(sample, sample / "images", tmp_path / "ref", copy_images=True)
    for shard in sorted((tmp_path / "ref" / "webdataset").glob("*.tar")):
        other = tmp_path / "ds" / "webdataset" / shard.name
        with tarfile.open(shard) as a, tarfile.open(other) as b:
            got = {m.name: b.extractfile(m).read() for m in b if m.isfile()}
            want = {m.name: a.extractfile(m).read() for m in a if m.isfile()}
        assert got.keys() == want.keys()
        assert all(got[k] == want[k] for k in want if not k.endswith(".json"))  # the json names the root


def test_export_reads_images_from_shards(sample, tmp_path):
    _sonify(sample, str(sample / "shards" / "sa_{000000..000001}.tar"), tmp_path / "ds")
    assert main(["--quiet", "export", "hf", str(tmp_path / "ds"), "--out", str(tmp_path / "hf")]) == 0
    table = pq.read_table(next((tmp_path / "hf").rglob("*.parquet")))
    images = table.column("image").to_pylist()
    assert all(img and img["bytes"] for img in images)


def test_a_shard_image_that_went_missing_is_an_error_row_not_a_crash(sample, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    for p in (sample / "shards").iterdir():
        (shards / p.name).write_bytes(p.read_bytes())
    _sonify(sample, str(shards / "*.tar"), tmp_path / "ds")
    ds = PairsDataset.open(tmp_path / "ds")
    first = ds.row(0)["image_path"]
    (shards / "sa_000000.tar").write_bytes(b"")  # the shard emptied after sonify
    (shards / "sa_000001.tar").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=first.replace(".", r"\.")):
        PairsDataset.open(tmp_path / "ds").image_bytes(0)


def test_report_shows_images_that_live_in_shards(sample, tmp_path):
    """A page cannot link into a tar: the report writes each image's thumbnail beside itself."""
    _sonify(sample, str(sample / "shards" / "*.tar"), tmp_path / "ds")
    out = tmp_path / "report"
    assert main(["--quiet", "report", str(tmp_path / "ds"), "--pool", str(sample / "pool"), "--out", str(out)]) == 0
    pages = "".join(p.read_text() for p in [out / "index.html", *sorted((out / "report").rglob("*.html"))])
    thumbs = sorted((out / "report" / "images").glob("*.jpg"))
    assert thumbs and "image not found" not in pages
    assert all(f"images/{t.name}" in pages for t in thumbs)


def test_memorization_reads_training_images_from_shards(sample, tmp_path):
    from seeing_sound.studies.memorization import _rgb, training_images

    _sonify(sample, str(sample / "shards" / "*.tar"), tmp_path / "shards")
    _sonify(sample, sample / "images", tmp_path / "folder")
    refs, paths = training_images(tmp_path / "shards"), training_images(tmp_path / "folder")
    assert len(refs) == len(paths) > 0
    got = sorted(_rgb(r).tobytes() for r in refs)
    assert got == sorted(_rgb(p).tobytes() for p in paths)
