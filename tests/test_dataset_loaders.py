"""A pairs dataset is read by the ecosystem directly: map-style ``ds[i]``, a torch DataLoader, a
``datasets.Dataset`` view — each giving the bytes the dataset stores."""

import numpy as np
import pytest
from PIL import Image

from seeing_sound.dataset import PairsDataset


@pytest.fixture(scope="module")
def dataset(demo_dataset):
    return PairsDataset.open(demo_dataset)


def test_map_style_items_are_the_stored_pairs(dataset):
    n = len(dataset)
    assert n >= 4 and dataset.num_shards >= 2  # items cross shard boundaries
    meta = dataset.metadata.to_pylist()
    for i in range(n):
        item = dataset[i]
        assert item["pair_id"] == meta[i]["pair_id"] and item["image_id"] == meta[i]["image_id"]
        assert item["sampling_rate"] == 16000 and item["audio"].dtype == np.float32
        np.testing.assert_array_equal(item["audio"], dataset.audio(i))
        with Image.open(dataset.image_path(i)) as im:
            np.testing.assert_array_equal(np.asarray(item["image"]), np.asarray(im.convert("RGB")))
        assert item["image"].mode == "RGB"
        assert item["concepts"] == [c["concept"] for c in meta[i]["components"]] and item["concepts"]
        assert [c["chunk_id"] for c in item["recipe"]] == [c["chunk_id"] for c in meta[i]["components"]]
    assert dataset[-1]["pair_id"] == meta[-1]["pair_id"]
    assert [it["pair_id"] for it in dataset] == [m["pair_id"] for m in meta]
    with pytest.raises(IndexError):
        dataset[n]
    with pytest.raises(IndexError):
        dataset[-n - 1]
    with pytest.raises(TypeError):
        dataset["0"]


def test_torch_dataloader_batches(dataset):
    torch = pytest.importorskip("torch")
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=PairsDataset.collate, shuffle=False)
    batches = list(loader)
    assert sum(len(b["pair_id"]) for b in batches) == len(dataset)
    first = batches[0]
    assert first["audio"].shape == (3, len(dataset.audio(0))) and len(first["image"]) == 3
    np.testing.assert_array_equal(first["audio"][1], dataset.audio(1))
    assert first["pair_id"] == [dataset[i]["pair_id"] for i in range(3)]


def test_datasets_view_writes_nothing(dataset, tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    before = sorted(p for p in dataset.root.rglob("*"))
    view = dataset.to_datasets()
    assert len(view) == len(dataset)
    row = view[2]
    assert row["pair_id"] == dataset[2]["pair_id"] and isinstance(row["image"], Image.Image)
    np.testing.assert_array_equal(np.asarray(row["audio"], np.float32), dataset.audio(2))
    assert view[0:2]["pair_id"] == [dataset[0]["pair_id"], dataset[1]["pair_id"]]
    assert sorted(p for p in dataset.root.rglob("*")) == before
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.arrow"))


@pytest.fixture(scope="module")
def copied(library_pool, tmp_path_factory):
    """The demo photos sonified with ``copy_images``: the dataset also holds WebDataset tars."""
    from seeing_sound.concepts import VLMSpec
    from seeing_sound.demo import copy_demo_images, demo_sidecar
    from seeing_sound.sonify import sonify

    root = tmp_path_factory.mktemp("copied")
    copy_demo_images(root / "images")
    vlm = VLMSpec("sidecar", str(demo_sidecar()), name="demo")
    sonify(root / "images", library_pool / "pool", root / "ds", vlms=[vlm], encoder="text", topk=3, seed=5,
           progress=False, pairs_per_shard=3, copy_images=True)  # fmt: skip
    return PairsDataset.open(root / "ds")


def test_webdataset_stream_gives_the_map_style_items(copied):
    streamed = list(copied.iter_webdataset())
    assert len(streamed) == len(copied) and copied.num_shards >= 2
    for i, item in enumerate(streamed):
        want = copied[i]
        assert (item["pair_id"], item["image_id"], item["concepts"]) == (want["pair_id"], want["image_id"],
                                                                         want["concepts"])  # fmt: skip
        np.testing.assert_array_equal(item["audio"], want["audio"])
        np.testing.assert_array_equal(np.asarray(item["image"]), np.asarray(want["image"]))
        assert item["sampling_rate"] == want["sampling_rate"] and item["recipe"] == want["recipe"]
    shuffled = [it["pair_id"] for it in copied.iter_webdataset(shuffle_shards=True, seed=3)]
    assert sorted(shuffled) == sorted(it["pair_id"] for it in streamed)  # every pair once, shard order seeded
    assert shuffled == [it["pair_id"] for it in copied.iter_webdataset(shuffle_shards=True, seed=3)]


def test_webdataset_stream_in_dataloader_workers_reads_each_pair_once(copied):
    torch = pytest.importorskip("torch")

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return copied.iter_webdataset()

    loader = torch.utils.data.DataLoader(Stream(), batch_size=2, num_workers=2, collate_fn=PairsDataset.collate)
    ids = [pid for batch in loader for pid in batch["pair_id"]]
    assert sorted(ids) == sorted(copied.metadata.column("pair_id").to_pylist())


def test_a_damaged_pair_in_a_shard_is_skipped_and_named(copied, tmp_path, caplog):
    import io
    import tarfile

    from seeing_sound.dataset.streaming import iter_shard

    src = copied.webdataset_shards()[0]
    bad = tmp_path / "bad.tar"
    with tarfile.open(src) as tin, tarfile.open(bad, "w") as tout:
        for member in tin.getmembers():
            data = tin.extractfile(member).read()
            if member.name.endswith(".json") and member.name.startswith("000000000001"):
                data = b"{not json"
            member.size = len(data)
            tout.addfile(member, io.BytesIO(data))
    stats: dict = {}
    items = list(iter_shard(bad, stats))
    assert stats == {"pairs": len(items), "skipped": 1} and len(items) == 2
    assert "bad.tar: pair 000000000001 skipped" in caplog.text


def test_a_dataset_without_shards_says_how_to_make_them(dataset):
    from seeing_sound.errors import SeeingSoundError

    with pytest.raises(SeeingSoundError, match="sonify it with --copy-images"):
        next(dataset.iter_webdataset())
