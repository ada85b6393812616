"""The Ray engine on a local Ray (2 CPUs): same bytes as the local engine, resume, retries.

One Ray session for the module (``ray.init`` costs ~3 s and ~1.4 GiB); skipped without Ray.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import test_engine  # noqa: E402
import test_engine_more as more  # noqa: E402
from seeing_sound.concepts import VLMSpec  # noqa: E402
from seeing_sound.demo import copy_demo_images, demo_sidecar  # noqa: E402
from seeing_sound.engine import EngineConfig, run_stage  # noqa: E402
from seeing_sound.features.stage import AstFeatureStage  # noqa: E402
from seeing_sound.pool import build_pool  # noqa: E402
from seeing_sound.sonify import sonify  # noqa: E402
from seeing_sound.testing.signals import noise, write_audio  # noqa: E402
from seeing_sound.testing.sounds import write_sound_library  # noqa: E402

RAY = EngineConfig(engine="ray")
RUN_LOGS = {"concepts.json"}  # per-run records (which run computed how many shards), not outputs


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # test-module stages reach the workers by value (the workers cannot import tests/)
    ray.cloudpickle.register_pickle_by_value(test_engine)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # CountingAst below
    yield
    ray.shutdown()


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "_stages" not in p.parts and p.name not in RUN_LOGS
    }


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    for i in range(6):
        write_audio(src / f"{i}.wav", noise(2.5, 44100, channels=2, seed=i), 44100)
    return src


def test_pool_build_on_ray_is_byte_identical_and_resumes(sources, tmp_path):
    local = build_pool([sources], tmp_path / "local", shard_files=2, progress=False)
    # "killed" after some shards: a slice does shards 0 and 2 only, then a whole run finishes
    part = build_pool([sources], tmp_path / "ray", shard_files=2, progress=False,
                      engine_config=RAY.replace(shard_slice="1/2"))  # fmt: skip
    assert (part.shards_run, part.complete) == (1, False)
    rep = build_pool([sources], tmp_path / "ray", shard_files=2, progress=False, engine_config=RAY)
    assert (rep.shards_run, rep.shards_skipped) == (2, 1) and rep.chunks == local.chunks
    assert _files(tmp_path / "local") == _files(tmp_path / "ray")


@pytest.mark.slow
def test_sonify_on_ray_is_byte_identical(tmp_path):
    sounds = write_sound_library(tmp_path / "sounds", variants=1, seconds=3)
    build_pool([sounds], tmp_path / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    copy_demo_images(tmp_path / "images")
    kw = dict(vlms=[VLMSpec("sidecar", str(demo_sidecar()), name="demo")], encoder="text", topk=3, seed=5,
              shard_size=3, pairs_per_shard=3, progress=False)  # fmt: skip
    local = sonify(tmp_path / "images", tmp_path / "pool", tmp_path / "local", **kw)
    on_ray = sonify(tmp_path / "images", tmp_path / "pool", tmp_path / "ray", engine_config=RAY, **kw)
    assert on_ray.pairs == local.pairs == 7
    assert _files(tmp_path / "local") == _files(tmp_path / "ray")


def test_failed_shards_on_ray_are_retried_reported_and_resumed(tmp_path):
    from test_engine import SetupStage

    (tmp_path / "log").mkdir()
    flaky = SetupStage(str(tmp_path / "log" / "setup.log"), n=4, fail_once=(1,))
    report = run_stage(flaky, tmp_path / "a", progress=False, engine_config=RAY)
    assert report.ran == 4 and report.complete  # a model stage: Ray actors, set up once each
    assert len((tmp_path / "log" / "setup.log").read_text().split()) <= 2
    bad = SetupStage(str(tmp_path / "log" / "setup.log"), n=4, always_fail=(2,))
    with pytest.raises(ValueError, match="bad shard 2"):  # the stage's own exception, as locally
        run_stage(bad, tmp_path / "b", progress=False, engine_config=RAY.replace(shard_retries=1))
    again = run_stage(SetupStage(str(tmp_path / "log" / "setup.log"), n=4), tmp_path / "b", progress=False,
                      engine_config=RAY)  # fmt: skip
    assert (again.ran, again.skipped) == (1, 3)


@dataclass
class CountingAst(AstFeatureStage):
    """The features stage, noting each setup() (one line per model load) in a file every worker sees."""

    log: str = ""

    def setup(self) -> None:
        super().setup()
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")


@pytest.mark.slow
def test_features_on_ray_are_byte_identical_and_load_once_per_actor(tiny_ast_dir, tiny_pixart_dir, tmp_path):
    from seeing_sound.features import compute_features
    from seeing_sound.features.run import ast_key
    from seeing_sound.testing.data import write_sound_pattern_dataset

    kw = dict(ast=str(tiny_ast_dir), vae=str(tiny_pixart_dir), resolution=16, progress=False)
    for name in ("local", "ray", "count"):
        write_sound_pattern_dataset(tmp_path / name, tmp_path / f"{name}-images", per_class=3)  # 2 shards
    compute_features(tmp_path / "local", **kw)
    reports = compute_features(tmp_path / "ray", engine_config=RAY, **kw)
    assert all(r.complete and r.ran == 2 for r in reports.values())
    assert more.files(tmp_path / "local", "features") == more.files(tmp_path / "ray", "features")
    # one actor (it reserves both CPUs) runs both shards: the AST loads once, not once per shard
    log = tmp_path / "setup.log"
    stage = CountingAst(str(tmp_path / "count"), str(tiny_ast_dir.resolve()), ast_key(str(tiny_ast_dir), 1),
                        log=str(log))  # fmt: skip
    report = run_stage(stage, tmp_path / "count", progress=False, engine_config=RAY.replace(num_cpus_per_worker=2))
    assert report.ran == 2 and len(log.read_text().split()) == 1
    shard = f"features/{stage.key}/shard-000001.safetensors"
    assert (tmp_path / "count" / shard).read_bytes() == (tmp_path / "local" / shard).read_bytes()


def test_bench_prepare_and_pairs_import_on_ray_are_byte_identical(tmp_path):
    from seeing_sound.pairs import import_pairs

    src = more.write_pairs_src(tmp_path / "pairs-src")
    local = import_pairs(src, tmp_path / "pairs-local", pairs_per_shard=1, progress=False)
    on_ray = import_pairs(src, tmp_path / "pairs-ray", pairs_per_shard=1, progress=False, engine_config=RAY)
    assert on_ray.complete and (on_ray.shards_run, on_ray.counts) == (4, local.counts)
    assert more.files(tmp_path / "pairs-local") == more.files(tmp_path / "pairs-ray")
    pytest.importorskip("av")
    from seeing_sound.bench import prepare_benchmark

    src = more.write_bench_src(tmp_path / "bench-src")
    local_b = prepare_benchmark("folder", src, tmp_path / "bench-local", shard_items=2, progress=False)
    ray_b = prepare_benchmark("folder", src, tmp_path / "bench-ray", shard_items=2, progress=False, engine_config=RAY)
    assert ray_b.complete and ray_b.counts == local_b.counts
    assert more.files(tmp_path / "bench-local") == more.files(tmp_path / "bench-ray")


@pytest.mark.slow
def test_leakage_on_ray_is_byte_identical(described_pool, tmp_path):
    from seeing_sound.leakage import check_leakage

    train, bench = more.write_leakage_inputs(tmp_path / "in")
    # phash only: CLIP is covered in-process (test_engine_more); the pool opens once per actor
    kw = dict(pool=described_pool, shard_items=2, image_method="phash", progress=False)
    local = check_leakage(train, [bench], tmp_path / "local", **kw)
    on_ray = check_leakage(train, [bench], tmp_path / "ray", engine_config=RAY, **kw)
    assert on_ray.complete and on_ray.exclude_images == local.exclude_images == ["t3.png"]
    assert more.files(tmp_path / "local") == more.files(tmp_path / "ray")
