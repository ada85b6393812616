"""A local OpenAI-compatible chat-completions server for tests: real HTTP on 127.0.0.1, scripted answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatCompletionsServer:
    """A real HTTP server on 127.0.0.1 speaking the chat-completions protocol, for tests.

    ``respond(body, n) -> (status, headers, payload_bytes, delay_s)`` decides each answer; ``n``
    counts requests so far for the same (model, prompt, image). Use as a context manager.

    ``keep_alive``: speak HTTP/1.1 and keep connections open between requests (default HTTP/1.0,
    one connection per request); ``close_after``: with keep-alive, close a connection silently
    (no ``Connection: close``) after that many answers, as a server's idle timeout does.
    ``connections`` counts the TCP connections accepted.
    """

    def __init__(
        self,
        respond: Callable[[dict, int], tuple[int, dict, bytes, float]],
        *,
        keep_alive: bool = False,
        close_after: int | None = None,
    ):
        self.respond = respond
        self.requests: list[tuple[dict, dict]] = []  # (headers, body)
        self._seen: dict[str, int] = {}
        self.in_flight = self.max_in_flight = 0
        self.connections = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
            disable_nagle_algorithm = keep_alive  # an answer's headers and body not held for an ACK
            answered = 0

            def setup(self):
                super().setup()
                with outer._lock:
                    outer.connections += 1

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                key = json.dumps(body.get("messages"), sort_keys=True) + str(body.get("model"))
                with outer._lock:
                    outer.requests.append((dict(self.headers), body))
                    n = outer._seen[key] = outer._seen.get(key, 0) + 1
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                status, headers, payload, delay = outer.respond(body, n)
                if delay:
                    time.sleep(delay)
                with outer._lock:
                    outer.in_flight -= 1
                try:
                    self.send_response(status)
                    for k, v in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    self.answered += 1
                    if close_after is not None and self.answered >= close_after:
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): that is the point of slow answers

            def log_message(self, *args):  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ChatCompletionsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def completion(text: str, model: str = "test") -> bytes:
    """A minimal chat-completions response body."""
    return json.dumps(
        {"id": "cmpl-test", "object": "chat.completion", "model": model,
         "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    ).encode()  # fmt: skip
