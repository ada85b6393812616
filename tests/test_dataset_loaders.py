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
