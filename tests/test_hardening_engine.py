"""Engine hardening: one run per output root, workers that die with their parent, Ctrl-C that stops."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seeing_sound.cli import main
from seeing_sound.engine import OutputLockedError, output_lock
from seeing_sound.errors import SeeingSoundError
from seeing_sound.testing.signals import noise, write_audio


def _children(pid: int) -> set[int]:
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        out |= {int(x) for x in task.read_text().split()}
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _sources(root: Path, n: int = 6, seconds: float = 30) -> Path:
    for i in range(n):
        write_audio(root / f"{i:02d}.wav", noise(seconds, 44100, channels=2, seed=i), 44100)
    return root


def _many_sources(root: Path) -> Path:
    """24 one-minute files: with one file a shard, a 2-worker build runs for a second or more."""
    for i in range(24):
        write_audio(root / f"{i:02d}.wav", noise(60, 44100, seed=i), 44100)
    return root


def _wait_until_mid_run(proc, out: Path) -> set[int]:
    """Both workers up and the first shard done: the build is running when this returns."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if len(_children(proc.pid)) >= 2 and list(out.glob("_stages/*/*.done.json")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the build ended before it could be interrupted"
    return _children(proc.pid)


def _pool_cmd(src, out, *extra):
    return [sys.executable, "-m", "seeing_sound.cli", "--quiet", "pool", "build", str(src), "--out", str(out), *extra]


def test_output_lock_is_reentrant_in_one_process(tmp_path):
    with output_lock(tmp_path / "out"), output_lock(tmp_path / "out"):
        assert (tmp_path / "out" / "_stages" / ".lock").read_text().strip() == str(os.getpid())
    with output_lock(tmp_path / "out"):  # released after the outer block: can be taken again
        pass


def test_a_second_run_on_the_same_out_stops_at_once_naming_the_holder(tmp_path, capsys):
    src = _sources(tmp_path / "src", n=1, seconds=2)
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys, time\nfrom seeing_sound.engine import output_lock\n"
         f"with output_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        assert main(["--quiet", "pool", "build", str(src), "--out", str(out)]) == 1
        assert time.monotonic() - t0 < 10
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"PID {holder.pid}" in err[0] and "in use" in err[0]
        with pytest.raises(OutputLockedError), output_lock(out):
            pass
    finally:
        holder.kill()
        holder.wait()
    assert main(["--quiet", "pool", "build", str(src), "--out", str(out)]) == 0  # a killed holder holds nothing


def test_out_that_is_a_file_is_one_clear_line(tmp_path):
    # pool/run.py makes the folder before run_stage: it should call check_output_root first (see report)
    (tmp_path / "taken").write_text("x")
    for root, words in ((tmp_path / "taken", "is a file"), (tmp_path / "taken" / "pool", "which is a file")):
        with pytest.raises(SeeingSoundError, match=words) as info, output_lock(root):
            pass
        assert "Errno" not in str(info.value)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_when_their_parent_is_killed(tmp_path):
    src = _many_sources(tmp_path / "src")
    proc = subprocess.Popen(_pool_cmd(src, tmp_path / "out", "--workers", "2", "--shard-files", "1"))
    workers: set[int] = set()
    try:
        workers = _wait_until_mid_run(proc, tmp_path / "out")
        assert len(workers) >= 2, "no workers started"
        proc.kill()  # the parent only, not the process group
        proc.wait()
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "workers outlived their parent"
    finally:
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_ctrl_c_stops_a_multi_worker_build_and_the_rerun_finishes(tmp_path):
    # Many one-file shards, interrupted as soon as the first is done: the build must be mid-run when
    # the signal lands (a fast machine finishes a few shards in well under a second).
    src = _many_sources(tmp_path / "src")
    out = tmp_path / "out"
    cmd = _pool_cmd(src, out, "--workers", "2", "--shard-files", "1")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    workers = _wait_until_mid_run(proc, out)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=20)
    assert rc == 130 and time.monotonic() - t0 < 2.5
    assert not any(_alive(p) for p in workers)
    assert b"interrupted" in proc.stderr.read()
    done = len(list(out.glob("_stages/*/*.done.json")))
    assert 1 <= done < 24 and not (out / "pool.json").exists()  # stopped mid-run, finished shards kept
    subprocess.run(cmd, check=True)
    assert (out / "pool.json").exists()
