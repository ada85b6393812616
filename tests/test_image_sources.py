"""Images read in place from tar shards (SAM's and WebDataset's layout): the same ids, bytes and
concepts as the folder they were made from; patterns of shards; and a table of broken shards, each an
error row with its reason, never a crash or a silent loss."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from seeing_sound.cli import main
from seeing_sound.concepts import read_concepts
from seeing_sound.concepts.backends import clear_backend_cache
from seeing_sound.concepts.images import discover_images, load_image
from seeing_sound.image_sources import expand_pattern, is_pattern, member_bytes, scan_tar

SKIMAGE = Path(pytest.importorskip("skimage").__file__).parent / "data"
PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png")


@pytest.fixture(autouse=True)
def _fresh_backends():
    yield
    clear_backend_cache()


def _tar(path: Path, members: list[tuple[str, bytes]], *, order=None) -> Path:
    """A plain tar holding ``members`` (name, bytes), plus a SAM-like ``.json`` beside each image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in order(members) if order else members:
            for n, d in ((name, data), (Path(name).with_suffix(".json").as_posix(), b'{"annotations": []}')):
                info = tarfile.TarInfo(n)
                info.size = len(d)
                tf.addfile(info, io.BytesIO(d))
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for name in PHOTOS:
        shutil.copy(SKIMAGE / name, root / name)
    return root


@pytest.fixture
def shards(tmp_path, folder) -> Path:
    """The folder's images in two shards, members in reverse name order (file order is not name order)."""
    files = [(n, (folder / n).read_bytes()) for n in PHOTOS]
    _tar(tmp_path / "shards" / "sa_000000.tar", files[:2], order=lambda m: m[::-1])
    _tar(tmp_path / "shards" / "sa_000001.tar", files[2:], order=lambda m: m[::-1])
    return tmp_path / "shards"


def test_brace_and_glob_patterns(tmp_path):
    for i in range(3):
        (tmp_path / f"sa_{i:06d}.tar").write_bytes(b"")
    assert [p.name for p in expand_pattern(tmp_path / "sa_{000000..000002}.tar")] == [
        "sa_000000.tar",
        "sa_000001.tar",
        "sa_000002.tar",
    ]
    assert [p.name for p in expand_pattern(f"{tmp_path}/sa_*.tar")] == [f"sa_{i:06d}.tar" for i in range(3)]
    assert [p.name for p in expand_pattern(f"{tmp_path}/sa_{{000002,000000}}.tar")] == [
        "sa_000002.tar",
        "sa_000000.tar",
    ]
    with pytest.raises(FileNotFoundError):
        expand_pattern(f"{tmp_path}/nope_{{0..3}}.tar")
    with pytest.raises(ValueError, match="backwards"):
        expand_pattern(f"{tmp_path}/sa_{{5..1}}.tar")
    literal = tmp_path / "odd[1].tar"
    literal.write_bytes(b"")
    assert not is_pattern(literal)  # an existing path is never read as a pattern


def test_shards_give_the_folders_ids_and_bytes(folder, shards):
    _, folder_refs = discover_images([folder])
    roots, shard_refs = discover_images([str(shards / "sa_{000000..000001}.tar")])
    assert sorted(r.image_id for r in shard_refs) == sorted(r.image_id for r in folder_refs) == sorted(PHOTOS)
    assert [r.path for r in shard_refs[:2]] == ["coffee.png", "chelsea.png"]  # file order inside a shard
    for ref in shard_refs:
        a = load_image(roots[ref.root_index], ref)
        b = load_image(folder, next(r for r in folder_refs if r.image_id == ref.image_id))
        assert a.error is None and a.sha256 == b.sha256 and a.image.tobytes() == b.image.tobytes()


def test_two_shards_holding_one_name_are_refused(tmp_path, folder):
    data = (folder / "chelsea.png").read_bytes()
    _tar(tmp_path / "a.tar", [("chelsea.png", data)])
    _tar(tmp_path / "b.tar", [("chelsea.png", data)])
    with pytest.raises(ValueError, match=r"chelsea\.png is in both"):
        discover_images([tmp_path / "a.tar", tmp_path / "b.tar"])


def _truncated(tmp_path, png):
    good = _tar(tmp_path / "src.tar", [("a.png", png), ("b.png", png)])
    raw = good.read_bytes()
    cut = raw.rindex(png[:64]) + 100  # inside b.png's data
    out = tmp_path / "t.tar"
    out.write_bytes(raw[:cut])
    return out


def _corrupt_header(tmp_path, png):
    good = _tar(tmp_path / "src.tar", [("a.png", png), ("b.png", png)])
    raw = bytearray(good.read_bytes())
    second = raw.index(b"b.png")  # the second image's header (PAX record or ustar name)
    block = second - second % 512
    raw[block : block + 512] = b"\x01" * 512  # a header whose checksum cannot match
    out = tmp_path / "c.tar"
    out.write_bytes(bytes(raw))
    return out


def _not_a_tar(tmp_path, png):
    out = tmp_path / "n.tar"
    out.write_bytes(b"this is not a tar archive at all" * 40)
    return out


def _links_and_folders(tmp_path, png):
    out = tmp_path / "l.tar"
    with tarfile.open(out, "w") as tf:
        info = tarfile.TarInfo("a.png")
        info.size = len(png)
        tf.addfile(info, io.BytesIO(png))
        for kind, name in ((tarfile.SYMTYPE, "link.png"), (tarfile.DIRTYPE, "dir.png"), (tarfile.LNKTYPE, "hard.png")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "a.png"
            tf.addfile(info)
    return out


def _broken_image(tmp_path, png):
    return _tar(tmp_path / "b.tar", [("a.png", png), ("b.png", png[:200])])


BAD_SHARDS = {
    # name: (builder, image ids found, {image_id: error reason})
    "truncated-member": (_truncated, {"a.png", "t.tar@"}, {"t.tar@": "truncated"}),
    "corrupt-header": (_corrupt_header, {"a.png", "c.tar@"}, {"c.tar@": "corrupt-archive"}),
    "not-a-tar": (_not_a_tar, {"n.tar@"}, {"n.tar@": "corrupt-archive"}),
    "links-and-folders": (_links_and_folders, {"a.png"}, {}),
    "truncated-image": (_broken_image, {"a.png", "b.png"}, {"b.png": "truncated"}),
}


@pytest.mark.parametrize("case", sorted(BAD_SHARDS))
def test_bad_shards_are_error_rows(case, tmp_path):
    build, ids, errors = BAD_SHARDS[case]
    shard = build(tmp_path, (SKIMAGE / "chelsea.png").read_bytes())
    roots, refs = discover_images([shard])
    got = {r.image_id.split("@")[0] + "@" if "@" in r.image_id else r.image_id: r for r in refs}
    assert set(got) == ids
    for key, ref in got.items():
        loaded = load_image(roots[ref.root_index], ref)
        assert loaded.error == errors.get(key), (key, loaded.error, loaded.detail)


def test_compressed_tar_is_refused_with_a_reason(tmp_path):
    shard = _tar(tmp_path / "x.tar", [("a.png", b"x")])
    gz = tmp_path / "y.tar"
    gz.write_bytes(gzip.compress(shard.read_bytes()))
    with pytest.raises(ValueError, match="compressed tar"):
        scan_tar(gz)


def test_a_header_claim_is_bounded_by_the_bytes_present(tmp_path):
    """A member claiming 8 GiB in a tiny file: a problem row, nothing allocated for it."""
    shard = tmp_path / "huge.tar"
    info = tarfile.TarInfo("big.png")
    info.size = 8 << 30
    shard.write_bytes(info.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024)
    scan = scan_tar(shard)
    assert scan.members == [] and [p[1] for p in scan.problems] == ["truncated"]
    with pytest.raises(KeyError):
        member_bytes(shard, "big.png")


def test_concepts_from_shards_equal_concepts_from_the_folder(folder, shards, tmp_path):
    """``concepts`` on the shards' pattern writes the folder run's concept rows, image for image."""
    side = tmp_path / "side.jsonl"
    side.write_text(
        "".join(
            json.dumps({"image_id": n, "caption": f"A photo of {n}.", "concepts": f"1. Thing {i} - a sound"}) + "\n"
            for i, n in enumerate(PHOTOS)
        )
    )
    outs = {}
    for name, images in (("folder", str(folder)), ("shards", str(shards / "sa_{000000..000001}.tar"))):
        outs[name] = tmp_path / f"out-{name}"
        assert main(["--quiet", "concepts", images, "--out", str(outs[name]), "--vlm", f"sidecar:{side}"]) == 0
    (fc, fi), (sc, si) = (read_concepts(outs[n]) for n in ("folder", "shards"))
    keep = ["image_id", "concept", "model", "concept_index"]
    assert sorted(fc.select(keep).to_pylist(), key=str) == sorted(sc.select(keep).to_pylist(), key=str)
    assert sorted(fi.select(["image_id", "sha256"]).to_pylist(), key=str) == sorted(
        si.select(["image_id", "sha256"]).to_pylist(), key=str
    )


def test_a_pattern_matching_nothing_is_a_usage_error(tmp_path, capsys):
    side = tmp_path / "side.jsonl"
    side.write_text(json.dumps({"image_id": "a.png", "caption": "A cat.", "concepts": "1. Cat - meow"}) + "\n")
    rc = main(["concepts", str(tmp_path / "sa_{0..3}.tar"), "--out", str(tmp_path / "o"), "--vlm", f"sidecar:{side}"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def _img2dataset_parquet(path: Path, folder: Path, names, row_group_size=2) -> Path:
    """The layout img2dataset writes with output_format='parquet': key, jpg (bytes), caption, ..."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    keys = [Path(n).stem for n in names]
    table = pa.table(
        {
            "key": keys,
            "caption": [f"a photo of {k}" for k in keys],
            "jpg": pa.array([(folder / n).read_bytes() for n in names], pa.binary()),
            "width": [1] * len(names),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@pytest.fixture
def jpg_folder(tmp_path, folder) -> Path:
    """The photos as .jpg files (img2dataset re-encodes to jpg; the ids are KEY.jpg)."""
    from PIL import Image

    out = tmp_path / "jpgs"
    out.mkdir()
    for n in PHOTOS:
        Image.open(folder / n).convert("RGB").save(out / f"{Path(n).stem}.jpg", quality=90)
    return out


def test_an_img2dataset_parquet_gives_the_folders_ids_and_bytes(tmp_path, jpg_folder):
    names = sorted(p.name for p in jpg_folder.iterdir())
    pq_file = _img2dataset_parquet(tmp_path / "i2d" / "00000.parquet", jpg_folder, names)
    _, folder_refs = discover_images([jpg_folder])
    roots, refs = discover_images([str(pq_file)])
    assert [r.image_id for r in refs] == [r.image_id for r in folder_refs] == names  # KEY.jpg
    for ref, fref in zip(refs, folder_refs, strict=True):
        a, b = load_image(roots[ref.root_index], ref), load_image(jpg_folder, fref)
        assert a.error is None and a.sha256 == b.sha256
    # a glob of parquet files, and columns named in the fragment
    _, refs = discover_images([f"{tmp_path}/i2d/*.parquet#id=caption,image=jpg"])
    assert refs[0].image_id == "a photo of astronaut.jpg"


def test_a_datasets_folder_and_its_parquet_export(tmp_path, folder):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict(
        {"file_name": list(PHOTOS), "image": [{"bytes": (folder / n).read_bytes(), "path": n} for n in PHOTOS]},
        features=datasets.Features({"file_name": datasets.Value("string"), "image": datasets.Image()}),
    )
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "hfds"))
    (tmp_path / "export" / "train").mkdir(parents=True)
    ds.to_parquet(str(tmp_path / "export" / "train" / "0000.parquet"))
    _, folder_refs = discover_images([folder])
    want = {r.image_id: load_image(folder, r).sha256 for r in folder_refs}
    for spec in (f"hf:{tmp_path / 'hfds'}", f"hf:{tmp_path / 'hfds'}:train", f"hf:{tmp_path / 'export'}:train"):
        roots, refs = discover_images([spec])
        got = {r.image_id: load_image(roots[r.root_index], r).sha256 for r in refs}
        assert got == want, spec
    _, refs = discover_images([f"hf:{tmp_path / 'hfds'}:test"])
    assert [r.image_id for r in refs] == [PHOTOS[0]]
    with pytest.raises(ValueError, match="no split 'nope'"):
        discover_images([f"hf:{tmp_path / 'hfds'}:nope"])
    # images stored as paths, not bytes: a path in a table is data, never a file to open
    by_path = datasets.Dataset.from_dict(
        {"file_name": ["chelsea.png"], "image": [str(folder / "chelsea.png")]},
        features=datasets.Features({"file_name": datasets.Value("string"), "image": datasets.Image()}),
    )
    by_path.to_parquet(str(tmp_path / "paths.parquet"))
    roots, refs = discover_images([f"hf:{tmp_path}/paths.parquet"])
    assert load_image(roots[0], refs[0]).error == "no-bytes"


def test_bad_table_rows_are_error_rows(tmp_path, folder):
    import pyarrow as pa
    import pyarrow.parquet as pq

    png = (folder / "chelsea.png").read_bytes()
    pq.write_table(
        pa.table(
            {
                "image_id": ["a.png", None, "a.png", "c.png", "d.png"],
                "image": pa.array([png, png, png, None, png[:100]], pa.binary()),
            }
        ),
        tmp_path / "t.parquet",
    )
    roots, refs = discover_images([tmp_path / "t.parquet"])
    reasons = {r.image_id: load_image(roots[r.root_index], r).error for r in refs}
    assert reasons == {
        "a.png": None,
        "t.parquet@1": "missing_id",
        "t.parquet@2": "duplicate_id",
        "c.png": "empty-file",
        "d.png": "truncated",
    }
    pq.write_table(pa.table({"x": [1]}), tmp_path / "nobytes.parquet")
    with pytest.raises(ValueError, match="no image-bytes column"):
        discover_images([tmp_path / "nobytes.parquet"])


def test_an_imagefolder_dataset_is_named_by_its_file_names(tmp_path, folder):
    """``load_dataset("imagefolder")`` keeps no id column; its Image() paths name the rows, so a concepts
    file keyed by file name fits it as it fits the folder."""
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("imagefolder", data_dir=str(folder), split="train", cache_dir=str(tmp_path / "c"))
    ds.save_to_disk(str(tmp_path / "photos-hf"))
    roots, refs = discover_images([f"hf:{tmp_path / 'photos-hf'}"])
    assert sorted(r.image_id for r in refs) == sorted(PHOTOS)
    loaded = {r.image_id: load_image(roots[0], r).sha256 for r in refs}
    _, folder_refs = discover_images([folder])
    assert loaded == {r.image_id: load_image(folder, r).sha256 for r in folder_refs}
