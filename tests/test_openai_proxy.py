"""The OpenAI back end's network settings from the environment: HTTP_PROXY / HTTPS_PROXY / NO_PROXY, and TLS.

The proxy is a tiny HTTP server on 127.0.0.1 (tests/hostile_server.py) that answers the
chat-completions request itself, so the target host need not exist: ``vlm.invalid`` never
resolves, and an answer proves the request went through the proxy.
"""

import base64
import json
import logging
import shutil
import ssl
import subprocess
import threading
import time

import pytest
from PIL import Image

from hostile_server import Server, clear_proxy_env
from hostile_server import send as _send
from seeing_sound.concepts import CONCEPT_PROMPT, VLMRequest, VLMSpec
from seeing_sound.concepts.backends.openai import OpenAIBackend
from seeing_sound.errors import SeeingSoundError
from seeing_sound.testing.servers import completion

KEY = "sk-proxy-secret-4c3b2a19"
KEY_ENV = "SEEING_SOUND_PROXY_KEY"
NOWHERE = "http://vlm.invalid/v1"  # .invalid never resolves (RFC 2606): only a proxy can answer


@pytest.fixture(autouse=True)
def env(monkeypatch):
    clear_proxy_env(monkeypatch)
    monkeypatch.setenv(KEY_ENV, KEY)
    return monkeypatch


def _request():
    return VLMRequest("a.png", "a.png", Image.new("RGB", (16, 16), (10, 200, 10)), CONCEPT_PROMPT)


def _generate(url, **kw):
    kw.setdefault("max_retries", 0)
    backend = OpenAIBackend(VLMSpec("openai", "m", base_url=url, api_key_env=KEY_ENV, **kw), sleep=lambda s: None)
    [[gen]] = backend.generate([_request()], "concepts")
    return gen


def _answer(text):
    return lambda h: _send(h, 200, completion(text))


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_requests_go_through_the_proxy_from_the_environment(env, variable):
    with Server(_answer("Dog: barking (via proxy)")) as proxy:
        env.setenv(variable, f"http://127.0.0.1:{proxy.port}")
        gen = _generate(f"{NOWHERE}?key=q-proxy-query-77")
    assert gen.error is None and gen.text == "Dog: barking (via proxy)", gen
    # absolute-form request line: what a proxy is sent, query included; the key travels with it
    assert proxy.targets == ["http://vlm.invalid/v1/chat/completions?key=q-proxy-query-77"]
    [(method, headers)] = proxy.requests
    assert method == "POST" and headers["Host"] == "vlm.invalid" and headers["Authorization"] == f"Bearer {KEY}"


def test_proxy_credentials_from_the_environment_are_sent_and_never_logged(env, caplog):
    caplog.set_level(logging.DEBUG)
    with Server(_answer("Dog: barking")) as proxy:
        env.setenv("HTTP_PROXY", f"http://lab:proxy-pw-8d7c6b@127.0.0.1:{proxy.port}")
        gen = _generate(NOWHERE)
    assert gen.error is None
    [(_, headers)] = proxy.requests
    assert headers["Proxy-Authorization"] == "Basic " + base64.b64encode(b"lab:proxy-pw-8d7c6b").decode()
    assert "proxy-pw-8d7c6b" not in caplog.text and KEY not in caplog.text


# NO_PROXY as curl reads it: host names (a suffix match), IP addresses, "localhost", "*"; either case.
NO_PROXY = [
    ("NO_PROXY", "127.0.0.1", "127.0.0.1"),
    ("no_proxy", "example.org,127.0.0.1", "127.0.0.1"),
    ("NO_PROXY", "localhost", "localhost"),
    ("NO_PROXY", "*", "127.0.0.1"),
]


@pytest.mark.parametrize(("variable", "value", "host"), NO_PROXY, ids=[f"{v}={x}" for v, x, _ in NO_PROXY])
def test_no_proxy_hosts_are_reached_directly(env, variable, value, host):
    with Server(_answer("from the proxy")) as proxy, Server(_answer("from the server")) as server:
        env.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        url = f"http://{host}:{server.port}/v1"
        proxied = _generate(url)  # without NO_PROXY even a local server is reached through the proxy
        env.setenv(variable, value)
        direct = _generate(url)
    assert proxied.text == "from the proxy" and direct.text == "from the server", (proxied, direct)
    assert proxy.targets == [f"{url}/chat/completions"] and server.targets == ["/v1/chat/completions"]


def test_https_goes_through_a_connect_tunnel_and_the_proxy_never_sees_the_key(env):
    with Server(lambda h: _send(h, 403, b"tunnels are not allowed here")) as proxy:
        env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # not used for an https:// base URL
        gen = _generate("https://vlm.invalid/v1?key=q-tunnel-query-55")
    assert gen.error == "connection-error" and "q-tunnel-query-55" not in gen.detail, gen
    [(method, headers)] = proxy.requests
    assert method == "CONNECT" and proxy.targets == ["vlm.invalid:443"]
    assert "Authorization" not in headers and KEY not in json.dumps(headers)  # the key goes inside TLS only


def test_a_proxy_that_redirects_is_not_followed(env):
    with Server(_answer("Dog: barking")) as elsewhere:
        target = f"http://127.0.0.1:{elsewhere.port}/v1/chat/completions"
        with Server(lambda h: _send(h, 307, b"", {"Location": target})) as proxy:
            env.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
            gen = _generate(NOWHERE)
    assert gen.error == "http-307" and elsewhere.requests == [] and len(proxy.requests) == 1


def test_a_hung_proxy_is_cut_at_the_deadline(env):
    release = threading.Event()
    with Server(lambda h: release.wait(30)) as proxy:
        env.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        try:
            gen = _generate(NOWHERE, timeout_s=0.5)
        finally:
            release.set()
    assert gen.error == "timeout" and len(proxy.requests) == 1, gen


def test_an_unreachable_proxy_is_a_connection_error(env):
    env.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with Server(_answer("from the server")) as server:
        gen = _generate(server.url)
    assert gen.error == "connection-error" and server.requests == [], gen


@pytest.mark.parametrize("proxy", ["ftp://lab:pw-5e4d3c2b@127.0.0.1:21", "gopher://127.0.0.1:70"])
def test_an_unusable_proxy_setting_stops_the_run_with_one_line(env, proxy):
    env.setenv("HTTP_PROXY", proxy)
    with Server(_answer("from the server")) as server, pytest.raises(SeeingSoundError) as stop:
        _generate(server.url)
    message = str(stop.value)
    assert "proxy settings in the environment" in message and "\n" not in message
    assert "pw-5e4d3c2b" not in message and server.requests == []


# -- TLS: the system's trusted certificates, or SSL_CERT_FILE -------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (made by the openssl command line tool)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    where = tmp_path_factory.mktemp("tls")
    cmd = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(where / "key.pem"), "-out", str(where / "cert.pem"), "-days", "2", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return where / "cert.pem", where / "key.pem"


def _tls(server, certificate):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certificate)
    server.server.socket = ctx.wrap_socket(server.server.socket, server_side=True)
    return f"https://127.0.0.1:{server.port}/v1"


def test_tls_is_verified_against_ssl_cert_file(env, certificate):
    with Server(_answer("Dog: barking (over TLS)")) as srv:
        url = _tls(srv, certificate)
        unknown = _generate(url)  # a self-signed certificate nobody trusts: refused
        env.setenv("SSL_CERT_FILE", str(certificate[0]))
        trusted = _generate(url)
    assert unknown.error == "connection-error" and "CERTIFICATE_VERIFY_FAILED" in unknown.detail, unknown
    assert trusted.error is None and trusted.text == "Dog: barking (over TLS)", trusted
    assert len(srv.requests) == 1 and srv.requests[0][1]["Authorization"] == f"Bearer {KEY}"


def test_the_deadline_holds_over_tls(env, certificate):
    def drip(h):  # headers that never end: no read returns to the client's own deadline check
        h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
        for _ in range(60):  # 4 bytes/s for at most 15 s: every read succeeds, the headers never end
            h.wfile.write(b"a")
            h.wfile.flush()
            time.sleep(0.25)

    env.setenv("SSL_CERT_FILE", str(certificate[0]))
    with Server(drip) as srv:
        url = _tls(srv, certificate)
        t0 = time.monotonic()
        gen = _generate(url, timeout_s=1.0)
        elapsed = time.monotonic() - t0
    assert gen.error == "timeout" and elapsed < 4.0, (gen, elapsed)  # cut at ~1 s, as over plain TCP
