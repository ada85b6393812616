"""Shard slices: N runs of ``--shard-slice I/N`` anywhere, then one run without it, give the same output."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seeing_sound.cli import main
from seeing_sound.engine import EngineConfig, OutputLockedError, output_lock, run_stage
from seeing_sound.testing.signals import noise, write_audio
from test_engine import SquareStage

#: per-run records (which run computed how many shards), not outputs
RUN_LOGS = {"concepts.json", "config.toml"}  # config.toml records the run's own --out


def _files(root: Path) -> dict[str, bytes]:
    """Every output file's bytes (engine state and per-run logs left out)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "_stages" not in p.parts and p.name not in RUN_LOGS
    }


def test_slices_then_a_finishing_run_equal_one_run(tmp_path):
    stage = SquareStage(values=tuple(range(20)))
    run_stage(stage, tmp_path / "one", progress=False)
    for i in range(3):
        r = run_stage(stage, tmp_path / "sliced", progress=False, engine_config=EngineConfig(shard_slice=f"{i}/3"))
        assert not r.complete and [s.shard for s in r.shards] == [k for k in range(7) if k % 3 == i]
    final = run_stage(stage, tmp_path / "sliced", progress=False)
    assert final.complete and (final.ran, final.skipped) == (0, 7)
    assert _files(tmp_path / "one") == _files(tmp_path / "sliced")


def test_bad_slices_and_overwrite_are_refused(tmp_path):
    from seeing_sound.config import ConfigError

    for text in ("3/3", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ConfigError, match="shard_slice"):
            EngineConfig(shard_slice=text)
    with pytest.raises(ValueError, match="overwrite"):
        run_stage(SquareStage(values=(1,)), tmp_path, overwrite=True, engine_config=EngineConfig(shard_slice="0/2"))


def test_slices_share_the_root_a_whole_run_and_the_same_slice_do_not(tmp_path):
    with output_lock(tmp_path, (0, 2)), output_lock(tmp_path, (1, 2)):  # slices coexist
        with pytest.raises(OutputLockedError, match="shard slices"), output_lock(tmp_path):
            pass
        holder = subprocess.run(
            [sys.executable, "-c", "from seeing_sound.engine import output_lock\n"
             f"with output_lock({str(tmp_path)!r}, (1, 2)): pass"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert holder.returncode != 0 and "same shard slice" in holder.stderr
    with (
        output_lock(tmp_path),
        pytest.raises(OutputLockedError, match="another seeing-sound run"),
        output_lock(tmp_path, (0, 2)),
    ):
        pass


def test_pool_build_cli_in_slices(tmp_path, capsys):
    src = tmp_path / "src"
    for i in range(5):
        write_audio(src / f"{i}.wav", noise(1.5, 16000, seed=i), 16000)
    args = ["--quiet", "pool", "build", str(src), "--shard-files", "1"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    for i in range(2):
        assert main([*args, "--out", str(tmp_path / "sliced"), "--shard-slice", f"{i}/2"]) == 0
        assert not (tmp_path / "sliced/pool.json").exists()  # the finishing run writes it
    assert "slice done" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "sliced")]) == 0
    assert "0 run, 5 already done" in capsys.readouterr().out
    one, sliced = _files(tmp_path / "one"), _files(tmp_path / "sliced")
    assert one == sliced and "pool.json" in one
    assert main([*args, "--out", str(tmp_path / "x"), "--shard-slice", "2/2"]) == 2  # a usage error


SONIFY = """
import sys
from seeing_sound.concepts import VLMSpec
from seeing_sound.demo import demo_sidecar
from seeing_sound.engine import EngineConfig
from seeing_sound.sonify import sonify

root, out = sys.argv[1], sys.argv[2]
eng = EngineConfig(shard_slice=sys.argv[3]) if len(sys.argv) > 3 else None
r = sonify(root + "/images", root + "/pool", out, vlms=[VLMSpec("sidecar", str(demo_sidecar()), name="demo")],
           encoder="text", topk=3, seed=5, shard_size=2, pairs_per_shard=2, progress=False, engine_config=eng)
print("complete" if r.complete else "slice", r.pairs)
"""


@pytest.mark.slow
def test_sonify_slices_run_at_once_wait_for_each_other_and_finish_to_the_same_bytes(tmp_path):
    from seeing_sound.demo import copy_demo_images
    from seeing_sound.pool import build_pool, embed_pool
    from seeing_sound.testing.sounds import write_sound_library

    sounds = write_sound_library(tmp_path / "sounds", variants=1, seconds=3)
    build_pool([sounds], tmp_path / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    embed_pool(tmp_path / "pool", encoder="text", progress=False)
    copy_demo_images(tmp_path / "images")

    def run(out, *extra):
        return [sys.executable, "-c", SONIFY, str(tmp_path), str(tmp_path / out), *extra]

    assert subprocess.run(run("one"), capture_output=True, text=True, check=True).stdout.startswith("complete")
    procs = [subprocess.Popen(run("sliced", f"{i}/2"), stdout=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and all(o.startswith("slice") for o in outs)
    assert sum(int(o.split()[1]) for o in outs) == 7  # each slice mixed its own pairs
    assert not (tmp_path / "sliced/dataset.json").exists()
    assert subprocess.run(run("sliced"), capture_output=True, text=True, check=True).stdout.startswith("complete")
    assert _files(tmp_path / "one") == _files(tmp_path / "sliced")


def test_pairs_import_and_bench_prepare_cli_in_slices(tmp_path, capsys):
    from test_engine_more import write_bench_src, write_pairs_src

    cases = [(["pairs", "import", str(write_pairs_src(tmp_path / "pairs")), "--pairs-per-shard", "1"], "dataset.json")]
    try:
        import av  # noqa: F401

        bench_src = write_bench_src(tmp_path / "videos")
        cases.append((["bench", "prepare", "folder", "--src", str(bench_src), "--shard-items", "1"], "benchmark.json"))
    except ImportError:  # bench prepare needs PyAV (the bench extra); pairs import of image+audio files does not
        pass
    for k, (args, card) in enumerate(cases):
        one, sliced = tmp_path / f"one{k}", tmp_path / f"sliced{k}"
        assert main(["--quiet", *args, "--out", str(one)]) == 0
        for i in range(2):
            assert main(["--quiet", *args, "--out", str(sliced), "--shard-slice", f"{i}/2"]) == 0
            assert not (sliced / card).exists()  # the finishing run writes it
            assert "slice done" in capsys.readouterr().out
        assert main(["--quiet", *args, "--out", str(sliced)]) == 0
        assert (sliced / card).exists() and _files(one) == _files(sliced)


def test_concepts_card_is_written_by_the_finishing_run_only(tmp_path):
    from seeing_sound.concepts import VLMSpec, run_concepts
    from seeing_sound.demo import copy_demo_images, demo_sidecar

    copy_demo_images(tmp_path / "images")
    kw = dict(vlms=[VLMSpec("sidecar", str(demo_sidecar()), name="demo")], shard_size=2, progress=False)
    run_concepts([tmp_path / "images"], tmp_path / "one", **kw)
    for i in range(2):
        r = run_concepts([tmp_path / "images"], tmp_path / "sliced", engine_config=EngineConfig(shard_slice=f"{i}/2"),
                         **kw)  # fmt: skip
        assert not r.complete and r.shards_ran >= 1
        assert not (tmp_path / "sliced" / "concepts.json").exists()  # it sums every shard: not a slice's to write
    final = run_concepts([tmp_path / "images"], tmp_path / "sliced", **kw)
    assert final.complete and final.shards_ran == 0
    one, sliced = (json.loads((tmp_path / d / "concepts.json").read_text()) for d in ("one", "sliced"))
    assert one == sliced and one["complete"] and one["images_in"] == final.images_in > 0
