"""SIGKILL the real CLI mid-build; the rerun must produce a byte-identical pool."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from seeing_sound.testing.signals import noise, write_audio


def _data_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and "_stages" not in p.parts
        and p.name != "config.toml"  # done-markers: timings; config: its --out
    }


def _cmd(src, out):
    return [
        sys.executable,
        "-m",
        "seeing_sound.cli",
        "--quiet",
        "pool",
        "build",
        str(src),
        "--out",
        str(out),
        "--shard-files",
        "1",
    ]


def test_sigkill_then_rerun_is_byte_identical(tmp_path):
    src = tmp_path / "src"
    for i in range(10):
        write_audio(src / f"{i:02d}.wav", noise(25, 44100, channels=2, seed=i), 44100)
    subprocess.run(_cmd(src, tmp_path / "ref"), check=True)
    reference = _data_files(tmp_path / "ref")

    out = tmp_path / "killed"
    mid_run_kills = 0
    for delay in (0.0, 0.15, 0.4):  # kill at several points, each time resuming what is there
        proc = subprocess.Popen(_cmd(src, out), start_new_session=True)
        markers = out / "_stages" / "build"
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if len(list(markers.glob("*.done.json"))) >= 1 + int(delay * 10):
                break
            time.sleep(0.01)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            mid_run_kills += proc.returncode == -signal.SIGKILL and not (out / "pool.json").exists()
        proc.wait()
    assert mid_run_kills >= 1, "no attempt was killed mid-run: make the inputs bigger"
    assert not (out / "pool.json").exists() or _data_files(out) == reference
    subprocess.run(_cmd(src, out), check=True)
    assert _data_files(out) == reference
