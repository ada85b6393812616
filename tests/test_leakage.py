"""leakage: landmark fingerprints and the CLI, with planted near duplicates and planted non-duplicates."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("imagehash")
pytest.importorskip("matplotlib")

from seeing_sound.cli import main
from seeing_sound.leakage import FingerprintIndex, match
from seeing_sound.leakage.fingerprint import fingerprint
from seeing_sound.testing import sounds

SR = 16000
#: dense sounds (many landmarks); sparse ones (a few bell strikes) are a documented limit
KINDS = ("rain", "water", "fire", "babble", "pour", "radio", "rustle", "rocket")


def sound(kind: str, seed: int, seconds: float = 8.0) -> np.ndarray:
    x = getattr(sounds, kind)(np.random.default_rng(seed), seconds, SR)
    return (0.7 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def reencode(x: np.ndarray, fmt: str) -> np.ndarray:
    import soundfile as sf

    subtype = {"OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}[fmt]
    buf = io.BytesIO()
    sf.write(buf, x, SR, format=fmt, subtype=subtype)
    buf.seek(0)
    y, rate = sf.read(buf, dtype="float32")
    assert rate == SR
    return y


def planted_audio(x: np.ndarray, k: int, background: np.ndarray) -> np.ndarray:
    """16k -> 22.05k -> 16k, re-encoded (OGG or MP3), shifted 200-400 ms, at a lower level (alone or mixed)."""
    import soxr

    y = soxr.resample(soxr.resample(x, SR, 22050), 22050, SR).astype(np.float32)
    y = reencode(y, "OGG" if k % 2 else "MP3")
    shift = int((0.2 + 0.2 * (k % 3) / 2) * SR)
    y = y[shift : shift + 5 * SR]
    if k % 2:
        return 0.25 * y  # -12 dB, alone
    bg = background[: y.size]
    rms = float(np.sqrt(np.mean(y**2)) / (np.sqrt(np.mean(bg**2)) + 1e-12))
    return 0.5 * (y + 0.3 * rms * bg)  # -6 dB, over another sound 10 dB (RMS) below it


def field_image(seed: int, size: int = 160) -> np.ndarray:
    """A smooth random colour field with a few blobs: distinct per seed, like a photo to phash."""
    rng = np.random.default_rng(seed)
    spec = rng.standard_normal((size, size, 3)) + 1j * rng.standard_normal((size, size, 3))
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    spec *= (1.0 / (1e-3 + (fx**2 + fy**2)))[..., None]
    img = np.real(np.fft.ifft2(spec, axes=(0, 1)))
    img = (img - img.min()) / (img.max() - img.min() + 1e-9)
    return (img * 255).astype(np.uint8)


def planted_image(img: np.ndarray, k: int, path: Path) -> None:
    """Re-encoded JPEG, resized, or cropped ~10% (one each, in turn)."""
    from PIL import Image

    im = Image.fromarray(img)
    if k % 3 == 0:
        im.save(path.with_suffix(".jpg"), quality=70)
        return
    if k % 3 == 1:
        im = im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.Resampling.BICUBIC)
    else:
        d = im.width // 20  # 5% off each side: ~10% of each dimension
        im = im.crop((d, d, im.width - d, im.height - d))
    im.save(path.with_suffix(".png"))


# --- the fingerprint ---------------------------------------------------------------------------


def test_fingerprint_survives_resampling_codecs_gain_and_offset():
    refs, kinds = [], []
    for i, kind in enumerate(KINDS):
        x = sound(kind, 100 + i)
        refs.append(planted_audio(x, i, sound(KINDS[(i + 3) % len(KINDS)], 300 + i)))
        refs.append(sound(kind, 200 + i, 5.0))  # the same kind of sound, another take: no duplicate
        kinds += [("dup", i), ("other", i)]
    index = FingerprintIndex([fingerprint(r, SR) for r in refs])
    for i, kind in enumerate(KINDS):
        got = {kinds[m.ref]: m for m in match(fingerprint(sound(kind, 100 + i), SR), index, min_votes=1)}
        dup = got[("dup", i)]
        assert dup.votes >= 10 and dup.concentration >= 0.5, (kind, dup)
        assert 0.18 <= dup.offset_s <= 0.42, (kind, dup.offset_s)  # the planted shift, within a hop
        others = [m for k, m in got.items() if k != ("dup", i)]
        assert all(m.votes < 10 for m in others), (kind, others)


def test_fingerprint_edge_cases():
    assert len(fingerprint(np.zeros(SR, np.float32), SR)) == 0
    assert len(fingerprint(np.zeros(10, np.float32), SR)) == 0
    x = sound("rain", 1, 2.0)
    a, b = fingerprint(x, SR), fingerprint(x, SR)
    assert np.array_equal(a.hashes, b.hashes) and np.array_equal(a.times, b.times)
    same = match(a, FingerprintIndex([b]))
    assert same and same[0].offset_frames in (-1, 0) and same[0].concentration > 0.9
    assert match(a, FingerprintIndex([])) == []


# --- end to end --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A BENCH of 8 items, a pool + pairs dataset holding 4 planted image dups and 4 planted audio dups."""
    import pyarrow as pa
    import soundfile as sf
    from PIL import Image

    from seeing_sound.dataset import DatasetWriter
    from seeing_sound.pool import AudioPool, build_pool

    root = tmp_path_factory.mktemp("leakage")
    bench = root / "bench"
    (bench / "audio").mkdir(parents=True)
    (bench / "images").mkdir()
    rows = []
    for i, kind in enumerate(KINDS):
        item = f"b{i:02d}"
        Image.fromarray(field_image(i)).save(bench / "images" / f"{item}.png")
        sf.write(bench / "audio" / f"{item}.wav", sound(kind, 100 + i), SR, subtype="PCM_16")
        rows.append(
            {
                "item_id": item,
                "label": kind,
                "split": "test",
                "source": f"{item}.mp4",
                "audio_path": f"audio/{item}.wav",
                "image_path": f"images/{item}.png",
                "frame_time_s": 4.0,
                "duration_s": 8.0,
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), bench / "metadata.parquet")
    (bench / "benchmark.json").write_text(json.dumps({"name": "planted"}))

    images = root / "images"
    images.mkdir()
    dup_images: list[str] = []
    other_images: list[str] = []
    for k in range(4):  # items 0, 2, 4, 6 leak their frame
        planted_image(field_image(2 * k), k, images / f"dup{k}")
    for k in range(6):
        Image.fromarray(field_image(1000 + k)).save(images / f"other{k}.png")
    for p in sorted(images.iterdir()):
        (dup_images if p.name.startswith("dup") else other_images).append(p.name)

    src = root / "sources"
    src.mkdir()
    for k in range(4):  # items 1, 3, 5, 7 leak their audio
        i = 2 * k + 1
        y = planted_audio(sound(KINDS[i], 100 + i), k, sound("wind", 400 + k))
        sf.write(src / f"dup{k}.wav", y, SR, subtype="PCM_16")
    for k, kind in enumerate(KINDS):
        sf.write(src / f"other{k}.flac", sound(kind, 500 + k, 5.0), SR)
    build_pool([src], root / "pool", progress=False)
    pool = AudioPool.open(root / "pool")
    sources = pool.manifest.column("source").to_pylist()
    dup_chunks = {i for i, s in enumerate(sources) if Path(s).name.startswith("dup")}

    names = dup_images + other_images
    with DatasetWriter(
        root / "ds", images, shard_size=4, pool={"root": str((root / "pool").resolve()), "chunks": len(pool)}
    ) as w:
        for n, name in enumerate(names):
            w.add(
                pair_id=f"p{n:02d}",
                image_id=name,
                image_path=name,
                audio=np.zeros(SR, np.float32),
                components=[{"chunk_id": n % len(pool), "chunk_source": sources[n % len(pool)]}],
            )
    return {
        "root": root,
        "bench": bench,
        "dup_images": set(dup_images),
        "dup_chunks": dup_chunks,
        "pool": pool,
        "names": names,
    }


def _thumb_embedder(paths):
    """A stand-in for CLIP that means something: centred 8x8 grey thumbnails, unit length (crop-tolerant, like CLIP)."""
    from PIL import Image

    vecs = []
    for p in paths:
        with Image.open(p) as im:
            v = np.asarray(im.convert("L").resize((8, 8), Image.Resampling.BOX), np.float64).reshape(-1)
        v -= v.mean()
        vecs.append(v / (np.linalg.norm(v) + 1e-9))
    return np.stack(vecs).astype(np.float32)


def read_lines(path: Path) -> list[str]:
    text = path.read_text()
    assert text == "" or text.endswith("\n")
    return text.splitlines()


def test_planted_duplicates_found_and_nothing_else(planted, tmp_path, monkeypatch):
    from seeing_sound.leakage import stage

    monkeypatch.setattr(stage, "_clip_embedder", lambda cfg: _thumb_embedder)
    out = tmp_path / "out"
    argv = [
        "--quiet",
        "leakage",
        "--train",
        str(planted["root"] / "ds"),
        "--benchmark",
        str(planted["bench"]),
        "--out",
        str(out),
        "--clip-threshold",
        "0.8",
    ]
    assert main(argv) == 0
    assert set(read_lines(out / "exclude_images.txt")) == planted["dup_images"]
    chunks = {int(c) for c in read_lines(out / "exclude_chunks.txt")}
    assert chunks == planted["dup_chunks"], (chunks, planted["dup_chunks"])
    card = json.loads((out / "leakage.json").read_text())
    (b,) = card["benchmarks"]
    assert (b["name"], b["items"], b["images_flagged"], b["audio_flagged"], b["items_flagged"]) == (
        "planted",
        8,
        4,
        4,
        8,
    )
    assert card["train"]["audio_source"] == "chunks"
    img = pq.read_table(out / "image_pairs.parquet").to_pylist()
    flagged = {(r["bench_item"], r["train_image"]) for r in img if r["flagged"]}
    assert flagged == {(f"b{2 * k:02d}", n) for k in range(4) for n in planted["dup_images"] if n.startswith(f"dup{k}")}
    assert all(r["clip_cosine"] is not None and r["phash_distance"] is not None for r in img)
    assert {r["flagged_by"] for r in img if r["flagged"]} <= {"clip", "phash", "clip+phash"}
    aud = pq.read_table(out / "audio_pairs.parquet").to_pylist()
    hits = [r for r in aud if r["flagged"]]
    assert {r["bench_item"] for r in hits} == {"b01", "b03", "b05", "b07"}
    assert all(Path(r["chunk_source"]).name.startswith("dup") and 0.18 <= r["offset_s"] <= 0.42 for r in hits)
    with open(out / "audio_pairs.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(aud)
    pairs = set(read_lines(out / "exclude_pairs.txt"))
    names = planted["names"]
    expect = {f"p{n:02d}" for n, name in enumerate(names) if name in planted["dup_images"]}
    expect |= {f"p{n:02d}" for n in range(len(names)) if n % len(planted["pool"]) in planted["dup_chunks"]}
    assert pairs == expect
    from PIL import Image

    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.width > 300
    # a rerun reuses every feature shard and writes the same lists
    before = (out / "exclude_chunks.txt").read_bytes()
    assert main(argv) == 0
    assert (out / "exclude_chunks.txt").read_bytes() == before


def test_phash_alone_and_image_folder(planted, tmp_path):
    """phash alone: re-encodes and resizes at the default distance; a 10% crop needs CLIP (or a looser distance)."""
    train, bench = str(planted["root"] / "images"), str(planted["bench"])
    for distance, expect in ((10, planted["dup_images"] - {"dup2.png"}), (16, planted["dup_images"])):
        out = tmp_path / f"out{distance}"
        argv = ["--quiet", "leakage", "--train", train, "--benchmark", bench, "--out", str(out)]
        assert main([*argv, "--image-method", "phash", "--phash-distance", str(distance)]) == 0
        assert set(read_lines(out / "exclude_images.txt")) == expect
        assert read_lines(out / "exclude_chunks.txt") == [] and read_lines(out / "exclude_pairs.txt") == []
        img = pq.read_table(out / "image_pairs.parquet").to_pylist()
        assert all(r["clip_cosine"] is None for r in img)
        assert min(r["phash_distance"] for r in img if r["train_image"].startswith("other")) > 16


def test_tiny_clip_twin_from_save_pretrained(planted, tmp_path):
    pytest.importorskip("torch")
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    twin = tmp_path / "clip"
    config = CLIPConfig(
        text_config={
            "vocab_size": 99,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(twin)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(twin)
    out = tmp_path / "out"
    argv = [
        "--quiet",
        "leakage",
        "--train",
        str(planted["root"] / "images"),
        "--benchmark",
        str(planted["bench"]),
        "--out",
        str(out),
        "--clip",
        str(twin),
        "--no-audio",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    img = pq.read_table(out / "image_pairs.parquet").to_pylist()
    assert img and all(-1.0001 <= r["clip_cosine"] <= 1.0001 for r in img)
    assert planted["dup_images"] <= set(read_lines(out / "exclude_images.txt"))  # phash still finds them


def test_bad_arguments(planted, tmp_path):
    from seeing_sound.leakage import check_leakage

    with pytest.raises(ValueError, match="phash_distance"):
        check_leakage(planted["root"] / "images", [planted["bench"]], tmp_path / "o", phash_distance=65)
    with pytest.raises(ValueError, match="at least one"):
        check_leakage(planted["root"] / "images", [], tmp_path / "o")
    assert (
        main(
            [
                "--quiet",
                "leakage",
                "--train",
                str(planted["root"] / "images"),
                "--benchmark",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    assert (
        main(
            [
                "--quiet",
                "leakage",
                "--train",
                str(planted["root"] / "images"),
                "--benchmark",
                str(planted["bench"]),
                "--out",
                str(tmp_path / "o"),
                "--min-concentration",
                "2",
            ]
        )
        == 2
    )


def test_train_images_in_tar_shards_and_parquet_give_the_folders_lists(planted, tmp_path):
    """The training images read in place from shards (SAM's layout) or a Parquet table: the same findings."""
    import io
    import tarfile

    folder = planted["root"] / "images"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    half = len(files) // 2
    for k, part in enumerate((files[:half], files[half:])):
        with tarfile.open(tmp_path / f"sa_{k}.tar", "w") as tf:
            for p in part:
                data = p.read_bytes()
                info = tarfile.TarInfo(p.relative_to(folder).as_posix())
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    pq.write_table(
        pa.table(
            {
                "image_id": [p.relative_to(folder).as_posix() for p in files],
                "image": pa.array([p.read_bytes() for p in files], pa.binary()),
            }
        ),
        tmp_path / "train.parquet",
    )
    bench = str(planted["bench"])
    lists = {}
    for name, train in (
        ("folder", str(folder)),
        ("shards", str(tmp_path / "sa_{0..1}.tar")),
        ("table", str(tmp_path / "train.parquet")),
    ):
        out = tmp_path / f"out-{name}"
        argv = ["--quiet", "leakage", "--train", train, "--benchmark", bench, "--out", str(out)]
        assert main([*argv, "--image-method", "phash", "--phash-distance", "16"]) == 0, name
        lists[name] = read_lines(out / "exclude_images.txt")
    assert lists["folder"] == lists["shards"] == lists["table"] == sorted(planted["dup_images"])
