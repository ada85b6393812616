"""SIGKILL the real `sonify` CLI at several points; the resumed dataset is byte-identical."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from seeing_sound.demo import copy_demo_images, demo_sidecar
from seeing_sound.pool import build_pool
from seeing_sound.testing.sounds import write_sound_library


def _dataset_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "_stages" not in p.parts and p.name != "config.toml"  # config.toml names its own --out
    }


def _cmd(root, out):
    return [
        sys.executable,
        "-m",
        "seeing_sound.cli",
        "--quiet",
        "sonify",
        "--images",
        str(root / "images"),
        "--pool",
        str(root / "pool"),
        "--out",
        str(out),
        "--vlm",
        f"sidecar:{demo_sidecar()}",
        "--encoder",
        "text",
        "--topk",
        "3",
        "--pairs-per-shard",
        "1",
    ]


def _kill_when(cmd, ready, timeout=120) -> bool:
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.returncode == -signal.SIGKILL


def test_sigkill_sonify_at_several_points(tmp_path):
    sounds = write_sound_library(tmp_path / "sounds", variants=1, seconds=3)
    build_pool([sounds], tmp_path / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    copy_demo_images(tmp_path / "images")
    subprocess.run(_cmd(tmp_path, tmp_path / "ref"), check=True, capture_output=True)
    reference = _dataset_files(tmp_path / "ref")
    assert sum(k.startswith("metadata/") for k in reference) == 7

    out = tmp_path / "killed"
    stages = out / "_stages"
    killed = [
        _kill_when(_cmd(tmp_path, out), lambda: any((stages / "concepts").glob("*.done.json"))),
        _kill_when(_cmd(tmp_path, out), lambda: (out / "retrieval").exists()),
        _kill_when(_cmd(tmp_path, out), lambda: len(list((stages / "mix").glob("*.done.json"))) >= 3),
    ]
    assert killed[0] and not (out / "dataset.json").exists(), "the first kill must land mid-run"
    subprocess.run(_cmd(tmp_path, out), check=True, capture_output=True)
    got = _dataset_files(out)
    assert got.keys() == reference.keys()
    for name in reference:
        assert got[name] == reference[name], name
