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

from hostile_server import Server, clear_proxy_env
from hostile_server import send as _send
from seeing_sound.concepts import CONCEPT_PROMPT, VLMRequest, VLMSpec, run_concepts
from seeing_sound.concepts.backends import redact
from seeing_sound.concepts.backends.openai import OpenAIBackend
from seeing_sound.errors import SeeingSoundError
from seeing_sound.testing.servers import completion

KEY = "sk-hardening-secret-9f8e7d"
KEY_ENV = "SEEING_SOUND_HARDENING_KEY"


def _request():
    return VLMRequest("a.png", "a.png", Image.new("RGB", (16, 16), (200, 10, 10)), CONCEPT_PROMPT)


def _backend(url, **kw):
    kw.setdefault("max_retries", 0)
    return OpenAIBackend(VLMSpec("openai", "m", base_url=url, api_key_env=KEY_ENV, **kw), sleep=lambda s: None)


@pytest.fixture(autouse=True)
def _direct(monkeypatch):
    clear_proxy_env(monkeypatch)  # a proxy in the developer's environment would stand between us and 127.0.0.1


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


# Every redirect status, to another host or to this one: none is followed (a client following 307/308
# would send the POST, its key included, again; 301-303 would turn it into a prompt-less GET).
REDIRECTS = [(status, host) for status in (301, 302, 303, 307, 308) for host in ("localhost", "127.0.0.1")]


@pytest.mark.parametrize(("status", "host"), REDIRECTS, ids=[f"{s}-{h}" for s, h in REDIRECTS])
def test_redirects_are_not_followed_and_the_key_stays_home(key, status, host):
    with Server(lambda h: _send(h, 200, completion("Dog: barking"))) as elsewhere:
        target = f"http://{host}:{elsewhere.port}/v1/chat/completions"
        with Server(lambda h: _send(h, status, b"", {"Location": target})) as first:
            [[gen]] = _backend(first.url).generate([_request()], "concepts")
    assert gen.text is None and gen.error == f"http-{status}" and host in gen.detail
    assert elsewhere.requests == []  # never contacted: no GET, no Authorization sent anywhere else
    assert [m for m, _ in first.requests] == ["POST"]


def test_a_relative_redirect_on_the_same_server_is_not_followed(key):
    with Server(lambda h: _send(h, 308, b"", {"Location": "/elsewhere"})) as srv:
        [[gen]] = _backend(srv.url).generate([_request()], "concepts")
    assert gen.error == "http-308" and srv.targets == ["/v1/chat/completions"]


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


# How a dripped answer's end is told: by its length on a kept connection, or by the connection's close
# (the client may hand a closing connection's socket to the response: the watchdog must still cut it);
# chunk by chunk; or never, because the headers themselves never end or the body never starts.
# (protocol, headers or None for a header that never ends, bytes written every 0.25 s)
DRIPS = {
    "keep-alive": ("HTTP/1.1", {"Content-Length": "100000"}, b" " * 8),
    "connection-close": ("HTTP/1.1", {"Content-Length": "100000", "Connection": "close"}, b" " * 8),
    "http-1.0": ("HTTP/1.0", {}, b" " * 8),  # no length either: the answer ends when the server closes
    "chunked": ("HTTP/1.1", {"Transfer-Encoding": "chunked"}, b"8\r\n" + b" " * 8 + b"\r\n"),
    "closing-then-silent": ("HTTP/1.1", {"Content-Length": "100000", "Connection": "close"}, b""),
    "header-drip": ("HTTP/1.1", None, b"a"),  # every read succeeds, the status line's headers never end
}


@pytest.mark.parametrize("style", DRIPS)
def test_timeout_is_a_wall_clock_deadline_not_per_read(key, style):
    protocol, headers, piece = DRIPS[style]

    def drip(h):
        if headers is None:
            h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Drip: ")
        else:
            h.send_response(200)
            for name, value in headers.items():
                h.send_header(name, value)
            h.end_headers()
        for _ in range(60):  # for at most 15 s: every read succeeds (or waits), the answer never ends
            h.wfile.write(piece)
            h.wfile.flush()
            time.sleep(0.25)
        h.close_connection = True

    timeout = 1.0
    with Server(drip, protocol) as srv:
        t0 = time.monotonic()
        [[gen]] = _backend(srv.url, timeout_s=timeout).generate([_request()], "concepts")
        elapsed = time.monotonic() - t0
    assert gen.error == "timeout" and elapsed < 4.0, (gen, elapsed)  # cut at ~1 s; the bound as before


SECRET = "q-secret-5a4b3c2d1e"  # a key in the base URL's query (proxies, some hosted APIs)


def test_base_url_query_is_kept_after_the_request_path(key):
    with Server(lambda h: _send(h, 200, completion("Dog: barking"))) as srv:
        [[gen]] = _backend(f"{srv.url}?key={SECRET}&v=2").generate([_request()], "concepts")
        [[slash]] = _backend(f"{srv.url}/?key={SECRET}").generate([_request()], "concepts")
    assert gen.error is None and gen.text == "Dog: barking" and slash.error is None
    assert srv.targets == [f"/v1/chat/completions?key={SECRET}&v=2", f"/v1/chat/completions?key={SECRET}"]


def test_base_url_query_values_are_redacted_from_errors_and_logs(key, caplog):
    caplog.set_level(logging.DEBUG)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = OpenAIBackend(
        VLMSpec("openai", "m", base_url=f"http://u:pw-77@127.0.0.1:{port}/v1?key={SECRET}", api_key_env=KEY_ENV,
                max_retries=1),
        sleep=lambda s: None,
    )  # fmt: skip
    [[gen]] = dead.generate([_request()], "concepts")
    assert gen.error == "connection-error" and f"127.0.0.1:{port}/v1/chat/completions?key=***" in gen.detail
    assert "***@127.0.0.1" in gen.detail and "pw-77" not in gen.detail

    def echo_target(h):  # a proxy naming the route it could not serve
        _send(h, 400, json.dumps({"error": {"message": f"no route for {h.path}"}}).encode())

    with Server(echo_target) as srv:
        [[echoed]] = _backend(f"{srv.url}?key={SECRET}").generate([_request()], "concepts")
    denied = Server(lambda h: _send(h, 401, b'{"error": {"message": "invalid key"}}'))
    with denied as srv, pytest.raises(SeeingSoundError) as fatal:
        _backend(f"{srv.url}?key={SECRET}").generate([_request()], "concepts")
    with pytest.raises(ValueError) as bad:
        _backend(f"https://?key={SECRET}")
    assert echoed.error == "http-400" and "no route for" in echoed.detail
    assert "key=***" in str(fatal.value) and "key=***" in str(bad.value)
    shown = [gen.detail, echoed.detail, str(fatal.value), str(bad.value), caplog.text]
    assert not [text for text in shown if SECRET in text]


def test_cli_error_line_never_shows_a_base_url_query_key(key, tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "imgs" / "a.png")
    with Server(lambda h: _send(h, 401, json.dumps({"error": {"message": f"bad key in {h.path}"}}).encode())) as srv:
        cmd = [
            sys.executable, "-m", "seeing_sound.cli", "--log-level", "DEBUG", "concepts", str(tmp_path / "imgs"),
            "--out", str(tmp_path / "out"), "--vlm", "openai:m", "--base-url", f"{srv.url}?key={SECRET}",
            "--api-key-env", KEY_ENV, "--no-filter", "--no-captions", "--retries", "0",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert srv.targets == [f"/v1/chat/completions?key={SECRET}"]
    assert proc.returncode == 1 and "HTTP 401" in proc.stderr, proc.stderr[-2000:]
    assert SECRET not in proc.stderr + proc.stdout and "key=***" in proc.stderr


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


@pytest.mark.parametrize("stop", ["cancel", "deadline"])
def test_a_request_hung_on_a_kept_connection_is_aborted(key, stop):
    """The second request reuses the first one's connection: its socket is watched too."""
    release, ports = threading.Event(), []

    def first_answers_then_hang(h):
        ports.append(h.client_address[1])
        if len(ports) == 1:
            _send(h, 200, completion("Dog: barking"))
        elif stop == "cancel":
            release.wait(30)
        else:  # headers that never end: no read ever waits long enough to time out by itself
            h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            while not release.wait(0.25):
                h.wfile.write(b"a")
                h.wfile.flush()

    with Server(first_answers_then_hang) as srv:
        backend = _backend(srv.url, timeout_s=300 if stop == "cancel" else 1.0, concurrency=1)
        box = {}

        def go():
            try:
                box["out"] = backend.generate([_request(), _request()], "concepts")
            except BaseException as exc:
                box["exc"] = exc

        t = threading.Thread(target=go)
        t0 = time.monotonic()
        t.start()
        deadline = time.monotonic() + 5
        while len(srv.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        if stop == "cancel":
            t0 = time.monotonic()
            backend.cancel()
        t.join(timeout=10)
        release.set()
    assert len(ports) == 2 and ports[0] == ports[1]  # one kept connection carried both
    assert not t.is_alive() and time.monotonic() - t0 < 4.0
    if stop == "cancel":
        assert "exc" in box
    else:
        assert [g.error for [g] in box["out"]] == [None, "timeout"]


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
