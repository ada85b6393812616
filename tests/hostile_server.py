"""A tiny HTTP server on 127.0.0.1 for hostile-server tests (redirects, echoes, drips, floods, hangs).

Also a stand-in HTTP proxy: a proxy is sent the absolute URL (``POST http://host/v1/...``, or
``CONNECT host:443`` for HTTPS), which ``targets`` records; this one answers the request itself.
Imported by the hardening, proxy and bad-input tests (pytest puts tests/ on sys.path).
"""

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from seeing_sound.concepts.backends import clear_backend_cache


class Server:
    """A tiny HTTP server on 127.0.0.1 whose ``handle(handler)`` writes the whole answer itself.

    ``protocol``: the version the status line names ("HTTP/1.0": the client must treat every
    answer as closing its connection). ``targets`` records each request line's target, query
    included: ``/v1/chat/completions?key=...``, or the absolute URL when it serves as a proxy.
    """

    def __init__(self, handle, protocol="HTTP/1.1"):
        self.requests: list[tuple[str, dict]] = []  # (method, headers)
        self.targets: list[str] = []  # "/v1/chat/completions?key=..."
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = protocol

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                outer.requests.append((self.command, dict(self.headers)))
                outer.targets.append(self.path)
                with contextlib.suppress(OSError):  # the client gave up (reset, TLS torn down): many tests' point
                    handle(self)

            do_POST = do_GET = do_CONNECT = _any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        clear_backend_cache()


#: every variable a client may take a proxy from (urllib and httpx read both cases)
PROXY_VARIABLES = tuple(
    name for base in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") for name in (base, base.upper())
)


def clear_proxy_env(monkeypatch) -> None:
    """Take every proxy setting out of the environment: tests talk to 127.0.0.1 directly."""
    for name in (*PROXY_VARIABLES, "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)


def send(h, status, body: bytes, headers=None):
    h.send_response(status)
    for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)
