import concurrent.futures as cf
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from seeing_sound.engine import ShardStats, ShardTask, Stage, run_stage
from seeing_sound.errors import StageMismatchError


@dataclass
class SquareStage(Stage):
    """Writes the squares of its items, one text file per shard; fails items < 0."""

    values: tuple
    per_shard: int = 3
    name: str = "square"

    def plan(self):
        v = self.values
        return [ShardTask(i, v[s : s + self.per_shard]) for i, s in enumerate(range(0, len(v), self.per_shard))]

    def outputs(self, index):
        return [f"out/{index}.txt"]

    def fingerprint(self):
        return {"per_shard": self.per_shard}

    def process(self, task, scratch: Path):
        good = [x for x in task.items if x >= 0]
        (scratch / "out").mkdir()
        (scratch / f"out/{task.index}.txt").write_text(" ".join(str(x * x) for x in good))
        errors = {"negative": len(task.items) - len(good)} if len(good) < len(task.items) else {}
        return ShardStats(task.index, len(task.items), len(good), errors)


def test_runs_writes_markers_and_resumes(tmp_path):
    stage = SquareStage(values=(1, 2, -3, 4, 5, 6, 7))
    report = run_stage(stage, tmp_path, progress=False)
    assert (report.ran, report.skipped, report.items_in, report.items_out) == (3, 0, 7, 6)
    assert report.errors == {"negative": 1}
    assert (tmp_path / "out/0.txt").read_text() == "1 4"
    marker = json.loads((tmp_path / "_stages/square/shard-000000.done.json").read_text())
    assert marker["items_in"] == 3 and marker["errors"] == {"negative": 1} and marker["seconds"] >= 0
    (tmp_path / "_stages/square/shard-000001.done.json").unlink()  # as if killed before the marker
    again = run_stage(stage, tmp_path, progress=False)
    assert (again.ran, again.skipped) == (1, 2) and again.items_out == 6
    (tmp_path / "out/2.txt").unlink()  # a marker whose file vanished is not trusted
    assert run_stage(stage, tmp_path, progress=False).ran == 1
    assert run_stage(stage, tmp_path, progress=False, overwrite=True).ran == 3
    assert not (tmp_path / "_stages/square/tmp").exists()


def test_changed_inputs_are_refused(tmp_path):
    run_stage(SquareStage(values=(1, 2, 3)), tmp_path, progress=False)
    with pytest.raises(StageMismatchError, match="overwrite=True"):
        run_stage(SquareStage(values=(1, 2, 4)), tmp_path, progress=False)
    with pytest.raises(StageMismatchError):
        run_stage(SquareStage(values=(1, 2, 3), per_shard=2), tmp_path, progress=False)


def test_any_executor_gives_same_files(tmp_path):
    stage = SquareStage(values=tuple(range(10)))
    run_stage(stage, tmp_path / "a", progress=False)
    with cf.ThreadPoolExecutor(2) as ex:
        run_stage(stage, tmp_path / "b", executor=ex, progress=False)
    run_stage(stage, tmp_path / "c", workers=2, progress=False)
    for i in range(4):
        a = (tmp_path / f"a/out/{i}.txt").read_text()
        assert a == (tmp_path / f"b/out/{i}.txt").read_text() == (tmp_path / f"c/out/{i}.txt").read_text()


def test_bad_workers():
    with pytest.raises(ValueError, match="workers"):
        run_stage(SquareStage(values=(1,)), "/tmp/unused", workers=0)


def test_overwrite_with_fewer_shards_removes_the_extra_outputs(tmp_path):
    run_stage(SquareStage(values=tuple(range(9))), tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.txt", "1.txt", "2.txt"]
    run_stage(SquareStage(values=(1, 2)), tmp_path, progress=False, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.txt"]


def test_atomic_write_removes_a_killed_writers_temp_file(tmp_path):
    from seeing_sound.engine import atomic_write

    (tmp_path / ".data.json.abc123.tmp").write_text("half")  # left by a SIGKILLed writer
    (tmp_path / ".other.json.x.tmp").write_text("not ours")
    with atomic_write(tmp_path / "data.json", "w") as fh:
        fh.write("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.x.tmp", "data.json"]


@dataclass
class SetupStage(Stage):
    """Records each setup() (pid per line) in ``log``; fails or kills the first attempt of chosen shards."""

    log: str
    n: int = 6
    fail_once: tuple = ()  # shards whose first attempt raises
    crash_once: tuple = ()  # shards whose first attempt kills the worker process
    always_fail: tuple = ()
    name: str = "setup"

    def plan(self):
        return [ShardTask(i, (i,)) for i in range(self.n)]

    def outputs(self, index):
        return [f"out/{index}.txt"]

    def setup(self):
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        self.model = "loaded"

    def process(self, task, scratch: Path):
        assert self.model == "loaded"
        first = Path(self.log).with_name(f"attempted-{task.index}")
        again = first.exists()
        first.touch()
        if task.index in self.always_fail or (task.index in self.fail_once and not again):
            raise ValueError(f"bad shard {task.index}")
        if task.index in self.crash_once and not again:
            os._exit(3)
        (scratch / "out").mkdir()
        (scratch / f"out/{task.index}.txt").write_text(str(task.index))
        return ShardStats(task.index, 1, 1)


def test_setup_runs_once_per_worker_not_per_shard(tmp_path):
    log = tmp_path / "setup.log"
    run_stage(SetupStage(str(log)), tmp_path / "a", progress=False)
    assert len(log.read_text().split()) == 1
    log.unlink()
    run_stage(SetupStage(str(log)), tmp_path / "b", workers=2, progress=False)
    pids = log.read_text().split()
    assert 1 <= len(pids) <= 2 and len(set(pids)) == len(pids)  # one per worker process
    with cf.ThreadPoolExecutor(2) as ex:
        log.unlink()
        run_stage(SetupStage(str(log)), tmp_path / "c", executor=ex, progress=False)
        assert len(log.read_text().split()) == 1  # threads share one set-up stage


def test_failed_shards_are_retried_then_reported_and_the_rest_is_done(tmp_path):
    from seeing_sound.engine import EngineConfig

    stage = SetupStage(str(tmp_path / "setup.log"), fail_once=(1, 4))
    report = run_stage(stage, tmp_path / "out", progress=False)
    assert report.ran == 6 and report.complete and report.failed == []
    bad = SetupStage(str(tmp_path / "x" / "setup.log"), always_fail=(2,))
    (tmp_path / "x").mkdir()
    with pytest.raises(ValueError, match="bad shard 2") as info:
        run_stage(bad, tmp_path / "out2", progress=False, engine_config=EngineConfig(shard_retries=1))
    assert any("1 shard(s) failed after 2 attempt(s)" in n for n in getattr(info.value, "__notes__", []))
    done = sorted(p.name for p in (tmp_path / "out2/_stages/setup").glob("*.done.json"))
    assert len(done) == 5  # every other shard finished
    fixed = SetupStage(str(tmp_path / "x" / "setup.log"))  # same plan and fingerprint: resumes
    again = run_stage(fixed, tmp_path / "out2", progress=False)
    assert (again.ran, again.skipped) == (1, 5)


def test_a_worker_crash_is_not_a_lost_shard(tmp_path):
    stage = SetupStage(str(tmp_path / "setup.log"), crash_once=(2,))
    report = run_stage(stage, tmp_path / "out", workers=2, progress=False)
    assert report.ran == 6 and report.complete
    assert sorted(p.name for p in (tmp_path / "out/out").iterdir()) == [f"{i}.txt" for i in range(6)]
