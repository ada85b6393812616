"""export hf: what `datasets.load_dataset(DIR)` loads back, images and audio decodable; recipes-only export rebuilds."""

import io
import json

import numpy as np
import pytest
import soundfile as sf

from seeing_sound.cli import main
from seeing_sound.concepts import VLMSpec
from seeing_sound.dataset import PairsDataset
from seeing_sound.demo import copy_demo_images, demo_sidecar
from seeing_sound.pool import build_pool
from seeing_sound.sonify import sonify
from seeing_sound.testing.sounds import write_sound_library

datasets = pytest.importorskip("datasets", reason="install the [hub] extra (datasets) to test the export")


@pytest.fixture(scope="module")
def sonified(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    sounds = write_sound_library(root / "sounds", variants=1, seconds=3)
    build_pool([sounds], root / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    copy_demo_images(root / "images")
    sonify(
        root / "images",
        root / "pool",
        root / "ds",
        vlms=[VLMSpec("sidecar", str(demo_sidecar()), name="demo")],
        encoder="text",
        topk=3,
        seed=5,
        progress=False,
        pairs_per_shard=3,
    )
    return root


def test_load_dataset_decodes_images_and_audio(sonified, tmp_path):
    from PIL import Image

    ds = PairsDataset.open(sonified / "ds")
    out = tmp_path / "hf"
    assert main(["export", "hf", str(sonified / "ds"), "--out", str(out), "--rows-per-shard", "4"]) == 0
    shards = sorted(p.name for p in (out / "data").iterdir())
    assert len(shards) == -(-len(ds) // 4) and shards[0] == f"train-00000-of-{len(shards):05d}.parquet"
    hf = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert len(hf) == len(ds)
    assert isinstance(hf.features["image"], datasets.Image) and isinstance(hf.features["audio"], datasets.Audio)
    assert hf.features["audio"].sampling_rate == ds.card["sample_rate"]
    meta = ds.metadata.to_pylist()
    assert set(meta[0]) <= set(hf.column_names) and "recipe" in hf.column_names
    # Audio() decoding needs torchcodec, which does not load beside torch 2.13 CPU here (its wheel wants
    # CUDA's libnvrtc): read the audio as bytes and decode them with soundfile; images decode as PIL
    try:
        import torchcodec  # noqa: F401
    except Exception:
        raw = hf.cast_column("audio", datasets.Audio(decode=False))
    else:
        raw = hf
        assert hf[0]["audio"]["array"].shape == ds.audio(0).shape
        raw = hf.cast_column("audio", datasets.Audio(decode=False))
    for i in (0, len(ds) - 1):
        row = raw[i]
        assert row["pair_id"] == meta[i]["pair_id"] and row["components"] == meta[i]["components"]
        assert isinstance(row["image"], Image.Image)
        assert np.array_equal(np.asarray(row["image"]), np.asarray(Image.open(ds.image_path(i))))
        recipe = json.loads(row["recipe"])
        assert [t["source"] for t in recipe["tracks"]] == [c["chunk_id"] for c in meta[i]["components"]]
        audio, sr = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
        assert sr == ds.card["sample_rate"]
        np.testing.assert_allclose(audio, ds.audio(i), atol=1 / 32767)
    card = (out / "README.md").read_text()
    from huggingface_hub import DatasetCard

    meta_yaml = DatasetCard.load(out / "README.md").data  # the YAML header parses as the Hub reads it
    assert meta_yaml.license == "other" and meta_yaml.size_categories == ["n<1K"]
    assert meta_yaml.configs[0]["data_files"][0]["path"] == "data/train-*.parquet"
    assert "set one before publishing" in card.lower() and '"lufs_range"' in card
    assert f"{len(ds)} pairs" in card and "demo" in card  # counts and the concept model
    assert main(["export", "hf", str(sonified / "ds"), "--out", str(out)]) == 1  # never into a non-empty folder


def test_metadata_only_export_rebuilds(sonified, tmp_path):
    from seeing_sound.sonify import rebuild

    out = tmp_path / "recipes"
    assert main(["export", "hf", str(sonified / "ds"), "--out", str(out), "--metadata-only"]) == 0
    hf = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert "image" not in hf.column_names and "audio" not in hf.column_names and "components" in hf.column_names
    assert "rebuild" in (out / "README.md").read_text()
    report = rebuild(out, sonified / "pool", tmp_path / "audio", progress=False)
    assert report.matched == len(PairsDataset.open(sonified / "ds")) and not report.mismatched


# --- tampered data is never published ----------------------------------------------------------------


def _copy(sonified, tmp_path):
    """A private copy of the dataset and its images (the card pointed at the copied images)."""
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(sonified / "ds", ds)
    card = json.loads((ds / "dataset.json").read_text())
    shutil.copytree(PairsDataset.open(sonified / "ds").images_root, tmp_path / "images")
    (ds / "dataset.json").write_text(json.dumps({**card, "images_root": str(tmp_path / "images")}))
    return ds


def silenced_mixture(ds):
    """A mixture replaced by silence of the same length and format after sonify."""
    d = PairsDataset.open(ds)
    path = d.audio_path(1)
    sf.write(path, np.zeros_like(d.audio(1)), d.card["sample_rate"], format=sf.info(str(path)).format)
    return "mismatched", d.metadata.column("audio_path")[1].as_py(), d.metadata.column("pair_id")[1].as_py()


def garbage_mixture(ds):
    d = PairsDataset.open(ds)
    d.audio_path(2).write_bytes(b"not audio at all")
    return "unreadable", d.metadata.column("audio_path")[2].as_py(), d.metadata.column("pair_id")[2].as_py()


def changed_image(ds):
    d = PairsDataset.open(ds)
    i = next(i for i, h in enumerate(d.metadata.column("image_sha256").to_pylist()) if h)
    with open(d.image_path(i), "ab") as fh:
        fh.write(b"\0")
    return "image_mismatched", d.metadata.column("image_path")[i].as_py(), d.metadata.column("pair_id")[i].as_py()


TAMPER_CASES = [
    ("untouched", None),
    ("silenced-mixture", silenced_mixture),
    ("garbage-mixture", garbage_mixture),
    ("changed-image", changed_image),
]


@pytest.mark.parametrize("damage", [c[1] for c in TAMPER_CASES], ids=[c[0] for c in TAMPER_CASES])
def test_export_refuses_files_that_differ_from_the_metadata(sonified, tmp_path, capsys, damage):
    """Before: the export copied the files as they were, a silenced mixture published under its mixture_sha256."""
    ds = _copy(sonified, tmp_path)
    out = tmp_path / "hf"
    if damage is None:  # an untouched dataset still exports
        assert main(["--quiet", "export", "hf", str(ds), "--out", str(out)]) == 0
        assert any((out / "data").iterdir())
        return
    kind, rel, pair_id = damage(ds)
    assert main(["--quiet", "export", "hf", str(ds), "--out", str(out)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and f"{kind} {rel}" in err[0] and pair_id in err[0] and "verify" in err[0]
    assert not out.exists() or not any(out.rglob("*"))  # nothing written, no data file
    # recipes alone publish no file, so they export as before
    assert main(["--quiet", "export", "hf", str(ds), "--out", str(tmp_path / "recipes"), "--metadata-only"]) == 0


def test_export_names_the_first_few_and_counts_the_rest(sonified, tmp_path):
    from seeing_sound.errors import SeeingSoundError
    from seeing_sound.hub.export import export_hf

    ds = _copy(sonified, tmp_path)
    d = PairsDataset.open(ds)
    for i in range(len(d)):
        d.audio_path(i).write_bytes(b"x")
    with pytest.raises(SeeingSoundError) as err:
        export_hf(ds, tmp_path / "hf")
    text = str(err.value)
    assert text.count("unreadable audio/") == 5 and f"and {len(d) - 5} more" in text and "\n" not in text
    assert not (tmp_path / "hf").exists()


def test_push_refuses_a_tampered_dataset_before_any_upload(sonified, tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    calls = []
    for name in ("create_repo", "upload_large_folder", "upload_folder", "create_commit"):
        if hasattr(huggingface_hub.HfApi, name):
            monkeypatch.setattr(huggingface_hub.HfApi, name, lambda *a, _n=name, **k: calls.append(_n))
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)
    ds = _copy(sonified, tmp_path)
    silenced_mixture(ds)
    staging = tmp_path / "staging"
    assert main(["--quiet", "push", str(ds), "--repo", "me/pairs", "--staging", str(staging)]) == 1
    assert calls == [] and not any(staging.rglob("*.parquet"))
