"""The one run path: a full disk stops the run, nothing usable exits 1, missing inputs exit 2,
an output never overlaps an input, and every writing command holds its output folder.

Each test here is a failure that the commands had before they went through
:func:`seeing_sound.engine.command_run`.
"""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from seeing_sound.cli import main
from seeing_sound.testing.signals import noise, write_audio

SR = 16000


@pytest.fixture
def photos(tmp_path):
    """Two real photos from scikit-image (a cat and coffee), as PNG files in a folder."""
    from PIL import Image
    from skimage import data

    root = tmp_path / "photos"
    root.mkdir()
    Image.fromarray(data.chelsea()).save(root / "cat.png")
    Image.fromarray(data.coffee()).save(root / "coffee.png")
    return root


# --- a small real disk that fills up -----------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` mounted at ``path`` (root only); skips the test where mounting is refused."""
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _sources(root: Path, n: int = 12, seconds: float = 9.0) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        write_audio(root / f"s{i:02d}.flac", noise(seconds, SR, amp=0.3, seed=int(rng.integers(1 << 30))), SR)
    return root


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` except the run's bookkeeping (lock, timings in done-markers) and its
    config.toml (it records the run's own --out)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "_stages" not in p.parts and p.name != "config.toml"
    }


def test_pool_build_on_a_full_disk_stops_and_a_rerun_completes(tmp_path, capsys):
    src = _sources(tmp_path / "src")
    ref = tmp_path / "ref"
    argv = ["--quiet", "pool", "build", str(src), "--shard-files", "2"]
    assert main([*argv, "--out", str(ref)]) == 0
    size = sum(p.stat().st_size for p in ref.rglob("*") if p.is_file())
    capsys.readouterr()
    with tmpfs(tmp_path / "disk", "300k") as disk:
        assert size > 600_000, size  # the pool cannot fit: the disk fills part-way
        out = disk / "pool"
        assert main([*argv, "--out", str(out)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert "no space left on device" in err[0] and str(out) in err[0] and "free" in err[0], err[0]
        assert "rerun the same command" in err[0]
        assert not (out / "pool.json").exists()  # no summary of a partial pool
        done = sorted((out / "_stages" / "build").glob("*.done.json"))
        assert len(done) < 6  # the shard that hit the full disk is not marked done
        # no file was blamed: no error row anywhere in the shards that did finish
        import pyarrow.parquet as pq

        for f in (out / "errors").glob("*.parquet"):
            assert pq.read_table(f).num_rows == 0
        # free space (grow the disk) and rerun: the pool an uninterrupted run writes, byte for byte
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        assert main([*argv, "--out", str(out)]) == 0
        assert _tree(out) == _tree(ref)


def test_stage_on_a_read_only_output_stops_with_one_line(tmp_path, capsys):
    src = _sources(tmp_path / "src", n=2, seconds=2.0)
    with tmpfs(tmp_path / "ro", "1m") as disk:
        (disk / "pool").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        assert main(["--quiet", "pool", "build", str(src), "--out", str(disk / "pool")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "read-only" in err[0] and "Traceback" not in err[0], err


# --- exit status: nothing usable, the failure gate, inputs that are not there ------------------


def test_all_files_failing_exits_1_with_the_reasons(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    for i in range(3):
        (tmp_path / "src" / f"x{i}.wav").write_bytes(b"RIFF garbage")
    assert main(["--quiet", "pool", "build", str(tmp_path / "src"), "--out", str(tmp_path / "pool")]) == 1
    err = capsys.readouterr().err
    assert "every input file failed (3 of 3)" in err and "top reasons:" in err


def test_max_failed_gates_a_partial_run(tmp_path, capsys):
    src = _sources(tmp_path / "src", n=3, seconds=2.0)
    (src / "bad.wav").write_bytes(b"RIFF garbage")
    argv = ["--quiet", "pool", "build", str(src)]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0  # default: a partial run succeeds
    assert main([*argv, "--out", str(tmp_path / "b"), "--max-failed", "0.5"]) == 0  # 1 of 4 failed
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "c"), "--max-failed", "0.1"]) == 1
    assert "1 of 4 files failed (25.0%), more than --max-failed 0.1" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "d"), "--max-failed", "2"]) == 2  # not a fraction


def test_missing_inputs_are_usage_errors_before_any_work(tmp_path, capsys):
    nope = tmp_path / "nope"
    assert main(["--quiet", "pool", "build", str(nope), "--out", str(tmp_path / "pool")]) == 2
    assert str(nope) in capsys.readouterr().err
    assert not (tmp_path / "pool").exists()
    concepts = tmp_path / "c.jsonl"
    concepts.write_text('{"image_id": "a.png", "concept": "a dog barking"}\n')
    argv = ["--quiet", "sonify", "--images", str(nope), "--concepts", str(concepts), "--pool", str(tmp_path / "p")]
    assert main([*argv, "--out", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert str(nope) in err and "Traceback" not in err
    assert not (tmp_path / "ds").exists()


def test_concepts_against_a_dead_server_exits_1(tmp_path, capsys, photos):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["--quiet", "concepts", str(photos), "--out", str(tmp_path / "c"), "--vlm", "openai:m",
            "--base-url", f"http://127.0.0.1:{port}/v1", "--retries", "0", "--no-filter"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "every input image failed" in err and "--base-url" in err, err


# --- outputs never overlap inputs; one run per output -----------------------------------------


def _wav(path: Path, seconds: float = 1.0, seed: int = 0) -> Path:
    write_audio(path, noise(seconds, SR, amp=0.2, seed=seed), SR)
    return path


def test_compose_refuses_to_write_over_its_input_or_a_users_file(tmp_path, capsys):
    a = _wav(tmp_path / "in.wav")
    before = a.read_bytes()
    assert main(["--quiet", "compose", "mix", str(a), "--out", str(a)]) == 2
    assert a.read_bytes() == before and "is also the input" in capsys.readouterr().err
    mine = tmp_path / "x.json"
    mine.write_text('{"my": "notes"}')
    assert main(["--quiet", "compose", "mix", str(a), "--out", str(tmp_path / "x.wav")]) == 2
    assert mine.read_text() == '{"my": "notes"}' and not (tmp_path / "x.wav").exists()
    assert "not written by seeing-sound" in capsys.readouterr().err
    # its own sidecar is ours to replace: a rerun works
    assert main(["--quiet", "compose", "mix", str(a), "--out", str(tmp_path / "y.wav")]) == 0
    assert main(["--quiet", "compose", "mix", str(a), "--out", str(tmp_path / "y.wav")]) == 0


def test_evaluate_refuses_an_output_over_its_images(tmp_path, capsys):
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8), (i * 50, 0, 0)).save(imgs / f"{i}.png")
    before = sorted(p.name for p in imgs.iterdir())
    ref = tmp_path / "ref"
    ref.mkdir()
    argv = ["--quiet", "evaluate", "--images", str(imgs), "--reference", str(ref), "--metrics", "fid"]
    assert main([*argv, "--out", str(imgs)]) == 2
    assert "is also the input" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path)]) == 2  # a folder that holds the images
    assert "holds the input" in capsys.readouterr().err
    assert sorted(p.name for p in imgs.iterdir()) == before


HOLD = """
import sys, time
from seeing_sound.engine import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def held(tmp_path):
    """``held(folder)``: another process holds the output lock on ``folder`` until the test ends."""
    procs = []

    def hold(folder: Path) -> Path:
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "held"
        return folder

    yield hold
    for p in procs:
        p.kill()
        p.wait()


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "{ds}", "--out", "{out}", "--max-steps", "1"],
        ["evaluate", "--images", "{imgs}", "--reference", "{imgs}", "--metrics", "fid", "--out", "{out}"],
        ["generate", "{wav}", "--model", "{ds}", "--out", "{out}"],
        ["report", "{ds}", "--pool", "{ds}", "--out", "{out}"],
        ["leakage", "--train", "{ds}", "--benchmark", "{ds}", "--out", "{out}"],
        ["compose", "interpolate", "{wav}", "{wav}", "--out", "{out}"],
    ],
    ids=lambda a: a[0],
)
def test_a_second_run_into_a_held_output_stops_at_once(tmp_path, capsys, held, argv):
    from PIL import Image

    (tmp_path / "ds").mkdir()
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "a.png")
    wav = _wav(tmp_path / "a.wav")
    out = held(tmp_path / "out")
    names = {"ds": tmp_path / "ds", "imgs": tmp_path / "imgs", "wav": wav, "out": out}
    t0 = time.monotonic()
    assert main(["--quiet", *(a.format(**names) for a in argv)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is in use by another seeing-sound run" in err[0], err
    assert time.monotonic() - t0 < 30
    assert sorted(os.listdir(out)) == ["_stages"]  # nothing written beside the holder's lock


def test_environment_errors_are_recognised_through_wrappers():
    import errno

    from seeing_sound.engine import is_environment_error

    assert is_environment_error(OSError(errno.ENOSPC, "No space left on device"))
    assert is_environment_error(OSError(errno.EROFS, "Read-only file system"))
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as inner:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64") from inner
    except RuntimeError as outer:
        assert is_environment_error(outer)
    assert is_environment_error(RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"))
    eio = OSError(errno.EIO, "Input/output error")
    assert is_environment_error(eio) and not is_environment_error(eio, reading=True)  # a bad source sector
    assert not is_environment_error(OSError(errno.ENOENT, "No such file"))
    assert not is_environment_error(ValueError("no space left on device"))  # only OS and runtime errors
    safetensors = type("SafetensorError", (Exception,), {})
    assert is_environment_error(
        safetensors("Error while serializing: I/O error: No space left on device (os error 28)")
    )
    assert not is_environment_error(safetensors("invalid header (os error 2)"))  # ENOENT is no environment error


def test_a_full_disk_never_writes_a_done_marker(tmp_path):
    """Unit level: a stage whose shard hits ENOSPC is not retried, not marked done, and the error names the root."""
    import errno
    from dataclasses import dataclass

    from seeing_sound.engine import OutputEnvironmentError, ShardStats, ShardTask, Stage, run_stage

    calls = []

    @dataclass
    class Fills(Stage):
        name: str = "fills"

        def plan(self):
            return [ShardTask(index=i, items=(i,)) for i in range(3)]

        def outputs(self, index):
            return [f"part-{index}.bin"]

        def process(self, task, scratch):
            calls.append(task.index)
            if task.index == 1:
                raise OSError(errno.ENOSPC, "No space left on device", str(scratch / "part-1.bin"))
            (scratch / f"part-{task.index}.bin").write_bytes(b"x" * 1000)
            return ShardStats(shard=task.index, items_in=1, items_out=1)

    with pytest.raises(OutputEnvironmentError, match="no space left on device") as info:
        run_stage(Fills(), tmp_path, progress=False)
    assert str(tmp_path) in str(info.value) and "about 2.0 KiB more" in str(info.value)  # 2 shards left, 1000 B each
    assert calls == [0, 1]  # stopped at once: no retry of shard 1, shard 2 never started
    assert not (tmp_path / "_stages" / "fills" / "shard-000001.done.json").exists()
    assert (tmp_path / "_stages" / "fills" / "shard-000000.done.json").exists()  # finished work stays done


def test_python_api_returns_the_report_unless_a_gate_is_set(tmp_path, caplog):
    """From Python a run with nothing usable returns its report (one error logged); with max_failed set,
    or inside failures_raise() (what the CLI does), it raises RunFailedError carrying that report."""
    from seeing_sound.engine import EngineConfig, RunFailedError
    from seeing_sound.engine.run import failures_raise
    from seeing_sound.pool import build_pool

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.wav").write_bytes(b"RIFF garbage")
    report = build_pool([tmp_path / "src"], tmp_path / "a", progress=False)
    assert report.files_ok == 0 and "every input file failed" in caplog.text
    with pytest.raises(RunFailedError, match="every input file failed") as info:
        build_pool([tmp_path / "src"], tmp_path / "b", progress=False, engine_config=EngineConfig(max_failed=0.5))
    assert info.value.report.files == 1 and info.value.outcome.failed == 1
    with failures_raise(), pytest.raises(RunFailedError):
        build_pool([tmp_path / "src"], tmp_path / "c", progress=False)
