"""OpenAI back end against hostile servers on 127.0.0.1: redirects, echoed secrets, drips, floods, hangs."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pyarrow.parquet as pq
import pytest
from PIL import Image

from hostile_server import Server
from hostile_server import send as _send
from seeing_sound.concepts import CONCEPT_PROMPT, VLMRequest, VLMSpec, run_concepts
from seeing_sound.concepts.backends import redact
from seeing_sound.concepts.backends.openai import OpenAIBackend
from seeing_sound.testing.servers import completion

KEY = "sk-hardening-secret-9f8e7d"
KEY_ENV = "SEEING_SOUND_HARDENING_KEY"


def _request():
    return VLMRequest("a.png", "a.png", Image.new("RGB", (16, 16), (200, 10, 10)), CONCEPT_PROMPT)


def _backend(url, **kw):
    kw.setdefault("max_retries", 0)
    return OpenAIBackend(VLMSpec("openai", "m", base_url=url, api_key_env=KEY_ENV, **kw), sleep=lambda s: None)


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def test_redirect_to_another_host_is_not_followed_and_the_key_stays_home(key):
    with Server(lambda h: _send(h, 200, completion("Dog: barking"))) as elsewhere:
        target = f"http://localhost:{elsewhere.port}/v1/chat/completions"
        with Server(lambda h: _send(h, 302, b"", {"Location": target})) as first:
            [[gen]] = _backend(first.url).generate([_request()], "concepts")
    assert gen.text is None and gen.error == "http-302" and "localhost" in gen.detail
    assert elsewhere.requests == []  # never contacted: no GET, no Authorization sent anywhere else
    assert [m for m, _ in first.requests] == ["POST"]


def test_error_body_echoing_the_key_is_redacted_everywhere(key, tmp_path, caplog):
    def echo(h):
        _send(h, 400, json.dumps({"error": {"message": f"bad request from {h.headers['Authorization']}"}}).encode())

    caplog.set_level(logging.DEBUG)
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "imgs" / "a.png")
    with Server(echo) as srv:
        vlm = VLMSpec("openai", "m", base_url=srv.url, api_key_env=KEY_ENV, max_retries=0)
        report = run_concepts([tmp_path / "imgs"], tmp_path / "out", vlms=[vlm], no_filter=True, progress=False)
        assert srv.requests[0][1]["Authorization"] == f"Bearer {key}"  # the key was sent, to this host only
    assert report.failed == {"concepts:http-400": 1}
    stored = b"".join(p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())
    images = pq.read_table(next((tmp_path / "out" / "images").glob("*.parquet"))).to_pylist()
    assert "Bearer ***" in images[0]["failures"][0]["detail"]
    assert key.encode() not in stored and key not in caplog.text


def test_url_credentials_are_redacted_from_details(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    [[gen]] = _backend(f"http://alice:hunter2pass@127.0.0.1:{port}/v1").generate([_request()], "concepts")
    assert gen.error == "connection-error" and "hunter2pass" not in gen.detail and "***@127.0.0.1" in gen.detail
    assert redact("x https://u:p@h/v1 sk-123456 y", ["sk-123456"]) == "x https://***@h/v1 *** y"


def test_timeout_is_a_wall_clock_deadline_not_per_read(key):
    def drip(h):
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        for _ in range(200):  # 8 bytes/s: every read succeeds, the answer never ends
            h.wfile.write(b" " * 8)
            h.wfile.flush()
            time.sleep(1)

    with Server(drip) as srv:
        t0 = time.monotonic()
        [[gen]] = _backend(srv.url, timeout_s=1.5).generate([_request()], "concepts")
        elapsed = time.monotonic() - t0
    assert gen.error == "timeout" and elapsed < 4.0


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_huge_answers_are_capped(key, declared):
    body = completion("Dog: barking " * 400_000)  # ~5 MB

    def flood(h):
        h.send_response(200)
        if declared:
            h.send_header("Content-Length", str(len(body)))
        else:
            h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body)
        h.close_connection = True

    with Server(flood) as srv:
        [[gen]] = _backend(srv.url, max_response_bytes=1 << 20).generate([_request()], "concepts")
        [[ok]] = _backend(srv.url, max_response_bytes=8 << 20).generate([_request()], "concepts")
    assert gen.error == "response-too-large" and gen.text is None
    assert ok.error is None and ok.text.startswith("Dog: barking")


def test_cancel_aborts_requests_in_flight(key):
    release = threading.Event()
    with Server(lambda h: release.wait(30)) as srv:
        backend = _backend(srv.url, timeout_s=300, concurrency=2)
        box = {}

        def go():
            try:
                backend.generate([_request(), _request()], "concepts")
            except BaseException as exc:
                box["exc"] = exc

        t = threading.Thread(target=go)
        t.start()
        deadline = time.monotonic() + 5
        while len(srv.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        t0 = time.monotonic()
        backend.cancel()
        t.join(timeout=5)
        release.set()
    assert not t.is_alive() and time.monotonic() - t0 < 2.0 and "exc" in box


def test_ctrl_c_stops_a_hung_concepts_run_within_two_seconds(key, tmp_path):
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16), (i, 0, 0)).save(tmp_path / "imgs" / f"{i}.png")
    release = threading.Event()
    with Server(lambda h: release.wait(60)) as srv:
        cmd = [
            sys.executable, "-m", "seeing_sound.cli", "--quiet", "concepts", str(tmp_path / "imgs"),
            "--out", str(tmp_path / "out"), "--vlm", "openai:m", "--base-url", srv.url, "--api-key-env", KEY_ENV,
            "--no-filter", "--no-captions", "--timeout", "300", "--retries", "0",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + 60
            while not srv.requests and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            assert srv.requests, "the run never reached the server"
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=10)
            elapsed = time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
            release.set()
    err = proc.stderr.read()
    assert rc == 130 and elapsed < 3.0, (rc, elapsed, err[-2000:])  # ~0.7 s measured; slack for loaded hosts
    assert "interrupted" in err
