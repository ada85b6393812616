"""seeing-sound app: uploads are bounded (size at the server, length and header claims at decode)."""

import socket
import struct

import numpy as np
import pytest

from seeing_sound.audio import io as audio_io
from seeing_sound.errors import SeeingSoundError
from seeing_sound.testing.signals import noise, write_audio

SR = 16000


def _session(tmp_path, **cfg):
    from seeing_sound.app import AppConfig, AppSession

    return AppSession(tmp_path / "no-model", AppConfig(device="cpu", **cfg))  # the model loads on first use only


def test_upload_is_decoded_only_up_to_max_seconds(tmp_path, monkeypatch):
    write_audio(tmp_path / "long.wav", noise(60, SR), SR)
    decoded = []
    real = audio_io.stream_mono

    def counting(*args, **kwargs):
        for block in real(*args, **kwargs):
            decoded.append(block.size)
            yield block

    monkeypatch.setattr(audio_io, "stream_mono", counting)
    monkeypatch.setattr(audio_io, "BLOCK_FRAMES", SR // 4)
    name, x = _session(tmp_path, max_seconds=1.0).source(str(tmp_path / "long.wav"), None)
    assert name == "long.wav" and x.size == SR
    assert sum(decoded) <= 2 * SR  # was: all 60 s decoded, then cut to 1 s


def test_upload_with_a_lying_header_is_one_clear_error(tmp_path):
    data = np.zeros(128, "<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 1, 2, 2, 16)  # PCM, mono, 1 Hz
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    (tmp_path / "x.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(SeeingSoundError, match=r"^x\.wav: implausible_header: sample rate 1 Hz"):
        _session(tmp_path).source(str(tmp_path / "x.wav"), None)  # was: 128 s at 16 kHz from 172 bytes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_refuses_uploads_over_max_upload_mb(tmp_path, monkeypatch):
    pytest.importorskip("gradio", reason="install the [app] extra (gradio)")
    import httpx

    from seeing_sound.app import AppConfig
    from seeing_sound.app.ui import launch, launch_options

    assert launch_options(AppConfig())["max_file_size"] == 50_000_000  # the documented default
    assert launch_options(AppConfig())["quiet"] is True  # no share-link hint: no link is ever made
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    port = _free_port()
    demo = launch(tmp_path / "no-model", AppConfig(device="cpu", port=port, max_upload_mb=0.1), block=False)
    try:
        url = f"http://127.0.0.1:{port}/gradio_api/upload"
        big = httpx.post(url, files={"files": ("big.wav", b"\0" * 100_001)}, timeout=60)
        small = httpx.post(url, files={"files": ("small.wav", b"\0" * 100_000)}, timeout=60)
    finally:
        demo.close()
    assert big.status_code == 413 and "maximum allowed size of 100000 bytes" in big.text  # was: 200, stored
    assert small.status_code == 200
    stored = [p.stat().st_size for p in (tmp_path / "uploads").rglob("*") if p.is_file()]
    assert stored == [100_000]  # the refused upload left nothing behind
