"""A dataset made without ``--grounding`` keeps the metadata it always had (so datasets of earlier
versions resume and compare byte for byte); one made from a CLIP-checked concepts run, directly or
through ``--concepts RUN``, records the checks' settings and each component's grounding."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from seeing_sound.concepts import VLMSpec, run_concepts
from seeing_sound.dataset import PairsDataset
from seeing_sound.dataset.schema import METADATA
from seeing_sound.demo import copy_demo_images, demo_sidecar
from seeing_sound.pool import build_pool
from seeing_sound.sonify import sonify
from seeing_sound.sonify.recipes import RECIPE_SCHEMA
from seeing_sound.testing.clip_proof import build_word_clip
from seeing_sound.testing.sounds import write_sound_library


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("gsample")
    sounds = write_sound_library(root / "sounds", variants=1, seconds=3)
    build_pool([sounds], root / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    copy_demo_images(root / "images")
    build_word_clip(root / "clip")
    return root


def _vlm():
    return [VLMSpec("sidecar", str(demo_sidecar()), name="demo")]


def test_without_grounding_the_metadata_and_recipes_have_their_old_schema(sample, tmp_path):
    sonify(sample / "images", sample / "pool", tmp_path / "ds", vlms=_vlm(), encoder="text", topk=3, progress=False)
    shards = sorted((tmp_path / "ds" / "metadata").glob("*.parquet"))
    assert shards
    for shard in shards:
        schema = pq.read_schema(shard).remove_metadata()
        assert "grounding" not in [f.name for f in schema.field("components").type.value_type]
        assert schema == METADATA
    assert "grounding" not in RECIPE_SCHEMA.names  # the recipes' digest, which a resumed mix checks, is unchanged


def test_sonify_from_a_grounded_concepts_run_records_its_checks(sample, tmp_path):
    run = tmp_path / "run"
    run_concepts(
        [sample / "images"], run, vlms=_vlm(), grounding=str(sample / "clip"), grounding_threshold=0.0,
        progress=False,
    )  # fmt: skip
    sonify(
        sample / "images", sample / "pool", tmp_path / "ds", concepts=run, encoder="text", topk=3, progress=False
    )  # fmt: skip
    card = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert card["concepts"]["grounding"]["threshold"] == 0.0  # copied from the run's concepts.json
    assert card["concepts"]["grounding"]["model_sha256"].startswith("sha256:")  # the CLIP, by its weights
    meta = PairsDataset.open(tmp_path / "ds").metadata.to_pylist()
    assert meta and all("grounding" in comp for row in meta for comp in row["components"])
