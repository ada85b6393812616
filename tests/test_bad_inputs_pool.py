"""Bad-input corpus for ``pool build``: one case per row, each named in the test id.

Every case builds a pool of one good file plus the case's input(s) and checks the outcome of
each case file (``ok`` = ingested, ``truncated`` = ingested and flagged ``truncated`` in the
manifest, else its error reason) and that no file is lost:
files seen == files ingested + files recorded as errors.
"""

import os
import struct
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


def _pcm_wav(rate: int, data: bytes, declared: int | None = None) -> bytes:
    """A 16-bit mono PCM WAV whose header says ``rate`` and ``declared`` data bytes (default: the truth)."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, 2 * rate, 2, 16)
    size = len(data) if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _pcm16(seconds: float, rate: int) -> bytes:
    return (noise(seconds, rate) * 32767).astype("<i2").tobytes()


def _cut(src, name: str, x, rate: int, **kw) -> None:
    write_audio(src / ("full" + Path(name).suffix), x, rate, **kw)
    (src / name).write_bytes(_truncated((src / ("full" + Path(name).suffix)).read_bytes()))
    (src / ("full" + Path(name).suffix)).unlink()


def _flac_total(data: bytes, total: int) -> bytes:
    """A FLAC whose STREAMINFO declares ``total`` samples (36 bits at bytes 18..25 of the file)."""
    assert data[:4] == b"fLaC"
    v = int.from_bytes(data[18:26], "big")
    v = (v & ~((1 << 36) - 1)) | (total & ((1 << 36) - 1))
    return data[:18] + v.to_bytes(8, "big") + data[26:]


def truncated_wav(src):
    _cut(src, "x.wav", noise(3, SR), SR)
    return {"src/x.wav": "truncated"}  # was: ok, unflagged (libsndfile reads the shorter body quietly)


def truncated_aiff(src):
    _cut(src, "x.aiff", noise(3, SR), SR)
    return {"src/x.aiff": "truncated"}


def truncated_flac(src):
    _cut(src, "x.flac", noise(5, 44100, seed=3), 44100, format="FLAC")
    return {"src/x.flac": "truncated"}  # what decodes is kept (was: decode_error, the whole file lost)


def truncated_mp3(src):
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile has no MP3")
    _cut(src, "x.mp3", noise(3, SR), SR)
    return {"src/x.mp3": "truncated"}  # its Xing header declares 3 s; one third decodes


def wav_claims_more_data(src):
    (src / "x.wav").write_bytes(_pcm_wav(SR, _pcm16(2, SR), declared=10 * 2 * 2 * SR))
    return {"src/x.wav": "truncated"}  # header: 20 s of data; file: 2 s (was: ok, unflagged)


def wav_1hz(src):
    (src / "x.wav").write_bytes(_pcm_wav(1, _pcm16(1, 8192)))  # 16 KiB "at 1 Hz": 2.3 h at 16 kHz
    return {"src/x.wav": "implausible_header"}  # was: 1.4 GB of memory and 251 MB of pool


def flac_claims_huge_length(src):
    sf.write(src / "full.flac", noise(1, SR), SR, format="FLAC")
    (src / "x.flac").write_bytes(_flac_total((src / "full.flac").read_bytes(), (1 << 36) - 1))
    (src / "full.flac").unlink()
    return {"src/x.flac": "implausible_header"}  # 2^36 frames declared in a few KiB


def flac_claims_more_frames(src):
    sf.write(src / "full.flac", noise(3, SR), SR, format="FLAC")
    (src / "x.flac").write_bytes(_flac_total((src / "full.flac").read_bytes(), 4 * SR))
    (src / "full.flac").unlink()
    return {"src/x.flac": "truncated"}  # declares 4 s, holds 3 s


def flac_silence_bomb(src):
    sf.write(src / "x.flac", np.zeros(5 * 60 * 1000, np.float32), 1000, format="FLAC")  # 5 min in < 1 KiB
    return {"src/x.flac": "implausible_header"}  # under 100 bit/s (was: 60 chunks from 900 bytes)


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
    ("truncated-aiff", truncated_aiff),
    ("truncated-flac", truncated_flac),
    ("truncated-mp3", truncated_mp3),
    ("wav-claims-more-data", wav_claims_more_data),
    ("wav-1hz", wav_1hz),
    ("flac-claims-huge-length", flac_claims_huge_length),
    ("flac-claims-more-frames", flac_claims_more_frames),
    ("flac-silence-bomb", flac_silence_bomb),
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
    flagged = {r["source"] for r in pool.manifest.to_pylist() if r["truncated"]}
    got = {s: ("truncated" if s in flagged else "ok" if s in ingested else errors.get(s, "lost")) for s in expected}
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
