"""Dispatch stays lean: what one shard submit pickles does not grow with the number of input items.

Each submit carries the stage (config only) and one task (its own items), so the bytes per task
at 1M images equal those at 1K; the old stages held the whole input list and every submit
pickled all of it (quadratic in total).
"""

import pickle

import pytest

from seeing_sound.concepts import VLMSpec
from seeing_sound.concepts.config import ConceptsConfig
from seeing_sound.concepts.stage import ConceptsStage, plan_concepts
from seeing_sound.engine.jobs import run_shard_job
from seeing_sound.pool.config import PoolBuildConfig
from seeing_sound.pool.sources import SourceFile
from seeing_sound.pool.stage import PoolBuildStage, plan_build
from seeing_sound.retrieval.config import RetrieveConfig
from seeing_sound.retrieval.stage import RetrieveStage, plan_retrieve
from seeing_sound.sonify.config import SonifyConfig
from seeing_sound.sonify.stage import MixStage, plan_mix


def submit_bytes(stage, task) -> int:
    """What ``executor.submit(run_shard_job, stage, task, root, token)`` pickles."""
    return len(pickle.dumps((run_shard_job, stage, task, "/data/out", "x" * 48), protocol=pickle.HIGHEST_PROTOCOL))


def _refs(n: int):
    # synthetic refs, cheap to make at 1M: (image_id, root_index, relative path)
    return [(f"img/{i:07d}.jpg", 0, f"img/{i:07d}.jpg") for i in range(n)]


def _concepts_stage():
    cfg = ConceptsConfig(vlms=(VLMSpec("sidecar", "/data/concepts.jsonl", name="side"),), shard_size=256)
    return ConceptsStage(roots=("/data/images",), config=cfg, sidecar_sha256=("0" * 64,))


@pytest.mark.parametrize("kind", ["concepts", "pool"])
def test_bytes_per_task_are_flat_from_1k_to_1m_items(kind):
    sizes = {}
    for n in (1_000, 100_000, 1_000_000):
        if kind == "concepts":
            stage, tasks = _concepts_stage(), plan_concepts(_refs(n), 256)
        else:
            files = [SourceFile(f"src/{i:07d}.wav", f"/data/audio/{i:07d}.wav") for i in range(n)]
            stage, tasks = PoolBuildStage(config=PoolBuildConfig(shard_files=64)), plan_build(files, 64)
        first, last = submit_bytes(stage, tasks[0]), submit_bytes(stage, tasks[-2])
        sizes[n] = max(first, last)
        assert len(pickle.dumps(stage)) < 4_000, "the stage must be config only"
    print(f"{kind}: pickled bytes per task", sizes)
    assert sizes[1_000_000] <= 1.05 * sizes[1_000]  # flat, not growing with N
    bound = 40_000 if kind == "concepts" else 16_000  # 256 refs / 64 files and a few KB of config
    assert all(b < bound for b in sizes.values()), sizes


def test_stages_with_input_files_send_only_a_path_per_task():
    retrieve = RetrieveStage(RetrieveConfig(encoder="text"), "/data/out", "/data/pool", {"key": "k"}, "d" * 16)
    mix = MixStage(SonifyConfig(), "/data/out", "/data/pool", "/data/images", "d" * 64)
    for stage, tasks in ((retrieve, plan_retrieve([50_000] * 20)), (mix, plan_mix([1000] * 1000))):
        assert tasks[0].size in (50_000, 1000) and isinstance(tasks[0].items[0], str)
        assert submit_bytes(stage, tasks[-1]) < 6_000


def test_what_setup_builds_never_travels():
    stage = _concepts_stage()
    stage.provide(backends=["a loaded model" * 10_000])
    assert stage.backends and len(pickle.dumps(stage)) < 4_000
    clone = pickle.loads(pickle.dumps(stage))
    assert not hasattr(clone, "backends") and not clone.__dict__.get("_setup_done")
