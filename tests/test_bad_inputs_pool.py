"""Bad-input corpus for ``pool build``: one case per row, each named in the test id.

Every case builds a pool of one good file plus the case's input(s) and checks the outcome of
each case file (``ok`` = ingested, else its error reason) and that no file is lost:
files seen == files ingested + files recorded as errors.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seeing_sound.pool import AudioPool, build_pool
from seeing_sound.pool.sources import find_sources
from seeing_sound.testing.signals import noise, write_audio

SR = 16000


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 3]


def zero_byte(src):
    (src / "x.wav").write_bytes(b"")
    return {"src/x.wav": "empty_file"}


def corrupt_flac(src):
    (src / "x.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    return {"src/x.flac": "unreadable"}


def unsupported(src):
    (src / "notes.txt").write_text("not audio")
    return {"src/notes.txt": "unsupported_format"}


def zero_frames(src):
    write_audio(src / "x.wav", np.zeros((0,), np.float32), SR)
    return {"src/x.wav": "empty"}


def nan_audio(src):
    x = noise(2, SR)
    x[100] = np.nan
    write_audio(src / "x.wav", x, SR, subtype="FLOAT")
    return {"src/x.wav": "non_finite"}


def truncated_wav(src):
    write_audio(src / "full.wav", noise(3, SR), SR)
    (src / "x.wav").write_bytes(_truncated((src / "full.wav").read_bytes()))
    (src / "full.wav").unlink()
    return {"src/x.wav": "ok"}


def truncated_flac(src):
    sf.write(src / "full.flac", noise(5, 44100, seed=3), 44100, format="FLAC")
    (src / "x.flac").write_bytes(_truncated((src / "full.flac").read_bytes()))
    (src / "full.flac").unlink()
    return {"src/x.flac": "ok"}  # what decodes is kept (was: decode_error, the whole file lost)


def symlink_loop(src):
    os.symlink("loop.wav", src / "loop.wav")  # points at itself
    return {"src/loop.wav": "unreadable"}  # was: RuntimeError: Symlink loop, the whole build aborted


def dangling_symlink(src):
    os.symlink("nowhere.wav", src / "x.wav")
    return {"src/x.wav": "unreadable"}


CASES = [
    ("zero-byte", zero_byte),
    ("corrupt-flac", corrupt_flac),
    ("unsupported-extension", unsupported),
    ("zero-frames", zero_frames),
    ("nan-audio", nan_audio),
    ("truncated-wav", truncated_wav),
    ("truncated-flac", truncated_flac),
    ("symlink-loop", symlink_loop),
    ("dangling-symlink", dangling_symlink),
]


@pytest.mark.parametrize("make", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, make):
    src = tmp_path / "src"
    src.mkdir()
    write_audio(src / "good.wav", noise(3, SR), SR)
    expected = {"src/good.wav": "ok", **make(src)}
    report = build_pool([src], tmp_path / "pool", progress=False)
    pool = AudioPool.open(tmp_path / "pool")
    errors = {r["source"]: r["reason"] for r in pool.errors.to_pylist()}
    ingested = set(pool.manifest.column("source").to_pylist())
    got = {s: ("ok" if s in ingested else errors.get(s, "lost")) for s in expected}
    assert got == expected
    assert report.files == len(expected) == report.files_ok + sum(report.errors.values())
    assert len(ingested) + len(errors) == report.files


def test_truncated_flac_keeps_every_decodable_frame(tmp_path):
    x = noise(5, SR, seed=3)
    sf.write(tmp_path / "full.flac", x, SR, format="FLAC")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.flac").write_bytes(_truncated((tmp_path / "full.flac").read_bytes()))
    build_pool([tmp_path / "src"], tmp_path / "pool", progress=False, chunk_seconds=1.0)
    pool = AudioPool.open(tmp_path / "pool")
    real = sum(pool.manifest.column("real_samples").to_pylist())
    assert SR <= real < 5 * SR  # part of it, not nothing and not the whole


def _roots(tmp_path, names):
    roots = []
    for i, name in enumerate(names):
        root = tmp_path / f"d{i}" / name
        write_audio(root / "a.wav", noise(1, SR, seed=i), SR)
        roots.append(root)
    return roots


@pytest.mark.parametrize(
    "names",
    [["x", "x", "x-2"], ["x-2", "x", "x"], ["x", "x", "x", "x-3", "x-2"]],
    ids=["x,x,x-2", "x-2,x,x", "x,x,x,x-3,x-2"],
)
def test_same_named_roots_never_collide(tmp_path, names):
    roots = _roots(tmp_path, names)
    files = find_sources(roots)
    assert len(files) == len(roots) == len({f.source for f in files})
    assert all(f.error is None for f in files)
    report = build_pool(roots, tmp_path / "pool", progress=False)
    assert report.files == report.files_ok == len(roots)  # was: one x-2 silently dropped


def test_output_root_inside_a_source_is_not_walked(tmp_path):
    src = tmp_path / "src"
    write_audio(src / "a.wav", noise(1, SR), SR)
    write_audio(src / "pool" / "chunks" / "junk.wav", noise(1, SR), SR)
    assert [f.source for f in find_sources([src], exclude=[src / "pool"])] == ["src/a.wav"]
    assert len(find_sources([src])) == 2


def test_loop_links_inside_folders_do_not_abort_the_walk(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    os.symlink("../sub", tmp_path / "src" / "sub" / "up")  # a folder link: not followed
    os.symlink("self", tmp_path / "src" / "self")
    files = find_sources([tmp_path / "src"])
    assert {f.source for f in files} == {"src/self"}  # folder links are not followed (documented)
    assert all(Path(f.path).is_absolute() for f in files)
