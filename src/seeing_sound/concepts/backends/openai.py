"""Any OpenAI-compatible chat-completions server (vLLM, Ollama, TGI, SGLang, LMDeploy, hosted APIs).

Standard library (and Pillow) only. Images go as base64 JPEG data URLs: a JPEG that is already
what the model should see (within the size it was decoded at, upright, RGB or gray) is sent as
its own bytes, anything else is re-encoded. Requests run ``concurrency`` at a time, each worker
thread keeping one keep-alive connection (reopened when the server closes it); 429, 5xx,
timeouts and dropped connections are retried with exponential backoff that honours
``Retry-After``; a request that finally fails becomes an error record. Authentication
and model-not-found errors stop the run instead (every request would fail the same way).

Hardening, because the server is whatever ``--base-url`` names:

* redirects are never followed: a 3xx is an error row (``http-302``, naming the target host), so
  the key is never sent to another host and a POST never turns into a prompt-less GET;
* ``timeout_s`` is a wall-clock deadline per attempt (connect, headers and body together): a
  server that drips bytes cannot keep a request alive, on a kept connection or a closing one;
* at most ``max_response_bytes`` of an answer are read (``response-too-large`` beyond that);
* the API key, URL credentials and the base URL's query values (``?key=***``) are redacted from
  every recorded or logged message; the query itself is sent (``/v1/chat/completions?key=...``);
* an interrupt (Ctrl-C) aborts every request in flight at once instead of waiting for it.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import contextlib
import email.utils
import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Sequence

from seeing_sound.concepts.backends import Generation, VLMRequest, VLMSpec, redact
from seeing_sound.concepts.backends.endpoint import Endpoint
from seeing_sound.concepts.image_payload import encode_image_data_url, image_jpeg_base64
from seeing_sound.errors import SeeingSoundError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0  # longest exponential wait
RETRY_AFTER_MAX_S = 300.0  # a server asking for more than this is treated as asking for this
READ_BLOCK = 1 << 16
ERROR_BODY_BYTES = 500  # of an error answer, only a snippet is read (it is a hint for the message)
# A reused connection the server closed while idle (plain TCP, or TLS: close_notify / EOF).
_STALE = (
    BrokenPipeError, ConnectionResetError, ConnectionAbortedError, http.client.BadStatusLine,
    http.client.RemoteDisconnected, ssl.SSLEOFError, ssl.SSLZeroReturnError,
)  # fmt: skip


class _StaleConnection(ConnectionError):
    """A kept connection failed before any answer arrived: the server never saw the request."""


class _RequestFailed(Exception):
    """One attempt failed; ``retry`` says whether another attempt may succeed."""

    def __init__(self, reason: str, detail: str, retry_after: float | None = None, retry: bool = True):
        super().__init__(detail)
        self.reason, self.detail, self.retry_after, self.retry = reason, detail, retry_after, retry


class _Cancelled(Exception):
    """The run is being interrupted: no more attempts."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def message_text(payload) -> str:
    """The assistant text of a chat-completions response; ValueError if the shape is wrong."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError("response has no choices[0].message.content") from exc
    if isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise ValueError("choices[0].message.content is not text")
    return content


class OpenAIBackend:
    provides_captions = True
    provides_concepts = True

    def __init__(self, spec: VLMSpec, sleep=None):
        self.spec = spec
        base = spec.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self._endpoint = Endpoint.parse(base, "/chat/completions")
        self._scheme, self._host, self._port = self._endpoint.scheme, self._endpoint.host, self._endpoint.port
        self._userinfo = self._endpoint.userinfo
        self.url = self._endpoint.url  # for messages: never holds credentials nor query values
        self._cancel = threading.Event()
        self._sleep = sleep if sleep is not None else self._interruptible_sleep
        self._live: set[_Watch] = set()  # the attempts in flight (cancel() aborts them)
        self._live_lock = threading.Lock()
        self._local = threading.local()  # .conn: this thread's keep-alive connection
        self._open: set[http.client.HTTPConnection] = set()  # every thread's, closed after generate()
        if not os.environ.get(spec.api_key_env) and self._userinfo is None:
            log.info("no API key in $%s; sending requests without Authorization", spec.api_key_env)

    # -- secrets ---------------------------------------------------------------------------------
    def _secrets(self) -> list[str]:
        out = [os.environ.get(self.spec.api_key_env) or "", *self._endpoint.query_secrets]
        if self._userinfo is not None:
            out += [self._userinfo[1], urllib.parse.quote(self._userinfo[1], safe="")]
            out.append(base64.b64encode(f"{self._userinfo[0]}:{self._userinfo[1]}".encode()).decode())
        return [s for s in out if s]

    def _redact(self, text: str | None) -> str | None:
        return None if text is None else redact(text, self._secrets())

    # -- requests --------------------------------------------------------------------------------
    def generate(self, requests: Sequence[VLMRequest], task: str) -> list[list[Generation]]:
        if not requests:
            return []
        self._cancel.clear()
        pool = cf.ThreadPoolExecutor(max_workers=min(self.spec.concurrency, len(requests)))
        futures = [pool.submit(self.complete, r) for r in requests]
        try:
            out = [[f.result()] for f in futures]
        except BaseException:
            # Ctrl-C (or a fatal status): stop retries, abort the requests in flight, and do not
            # wait for them -- a hung server would otherwise hold the run for minutes.
            self.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            self.close()
            raise
        pool.shutdown(wait=True)
        self.close()
        return out

    def close(self) -> None:
        """Close the keep-alive connections of the worker threads (a later request opens new ones)."""
        with self._live_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            conn.close()

    def cancel(self) -> None:
        """Abort every request in flight and refuse new attempts until the next :meth:`generate`."""
        self._cancel.set()
        with self._live_lock:
            live = list(self._live)
        for watch in live:
            watch.abort()

    def _interruptible_sleep(self, seconds: float) -> None:
        if self._cancel.wait(seconds):
            raise _Cancelled()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.spec.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif self._userinfo is not None:
            token = base64.b64encode(f"{self._userinfo[0]}:{self._userinfo[1]}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        return headers

    def _body(self, request: VLMRequest) -> bytes:
        # The base64 image needs no JSON escaping: it is spliced into the serialized body as bytes.
        mark = f"image-{uuid.uuid4().hex}"
        content = [
            {"type": "text", "text": request.prompt},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + mark}},
        ]
        body = {
            "model": self.spec.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.spec.max_new_tokens,
            "temperature": 0,  # greedy, like the transformers back end
        }
        parts = json.dumps(body).split(mark)
        if len(parts) != 2:  # the prompt holds the marker (never by chance): plain serialization
            content[1]["image_url"]["url"] = encode_image_data_url(request.image)  # type: ignore[index]
            return json.dumps(body).encode("utf-8")
        return parts[0].encode("utf-8") + image_jpeg_base64(request.image) + parts[1].encode("utf-8")

    def complete(self, request: VLMRequest) -> Generation:
        """One request with retries; returns the text or an error record, raises only on fatal status."""
        body = self._body(request)
        attempts = self.spec.max_retries + 1
        last: _RequestFailed | None = None
        for attempt in range(attempts):
            if self._cancel.is_set():
                raise _Cancelled()
            try:
                return Generation(self.spec.model_id, text=self._redact(self._post(body)))
            except _RequestFailed as exc:
                last = exc
                if not exc.retry or attempt + 1 == attempts:
                    break
                wait = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt)
                if exc.retry_after is not None:
                    wait = max(wait, min(RETRY_AFTER_MAX_S, exc.retry_after))
                log.debug(
                    "%s: %s; retry %d/%d in %.1fs",
                    request.image_id,
                    self._redact(exc.detail),
                    attempt + 1,
                    attempts - 1,
                    wait,
                )
                self._sleep(wait)
        assert last is not None
        tries = attempt + 1
        detail = f"{last.detail} (after {tries} attempt{'s' if tries > 1 else ''})"
        return Generation(self.spec.model_id, error=last.reason, detail=self._redact(detail))

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=timeout)

    def _thread_conn(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's keep-alive connection and whether it was used before (else a new one)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            return conn, True
        conn = self._local.conn = self._connect(timeout)
        with self._live_lock:
            self._open.add(conn)
        return conn, False

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._live_lock:
            self._open.discard(conn)
        conn.close()

    def _post(self, body: bytes) -> str:
        """One attempt: POST, read at most ``max_response_bytes``, all within ``timeout_s`` of wall time.

        A watchdog shuts the attempt's sockets down at the deadline (or on :meth:`cancel`), which
        wakes any blocked recv; socket timeouts alone are per read and a dripping server resets them.
        The thread's keep-alive connection is reused; one the server has closed meanwhile (the
        request fails before any answer) is replaced by a new one once, within the same deadline.
        """
        timeout = self.spec.timeout_s
        conn, reused = self._thread_conn(timeout)
        expired = threading.Event()
        watch = _Watch()

        def _expire() -> None:
            expired.set()
            watch.abort()

        watchdog = threading.Timer(timeout, _expire)
        watchdog.daemon = True
        with self._live_lock:
            self._live.add(watch)
        watchdog.start()
        reusable = False
        try:
            try:
                text, reusable = self._exchange(conn, body, watch)
            except _StaleConnection:
                if not reused or expired.is_set() or self._cancel.is_set():
                    raise
                self._drop(conn)  # the stale connection out, a fresh one in (same watchdog deadline)
                conn, _ = self._thread_conn(timeout)
                text, reusable = self._exchange(conn, body, watch)
            if not expired.is_set():
                return text
            raise _RequestFailed("timeout", f"no answer within {timeout:g}s")
        except (SeeingSoundError, _Cancelled):
            raise
        except Exception as exc:
            if self._cancel.is_set():
                raise _Cancelled() from None
            # A socket shut down by the watchdog reads as EOF, a reset or a half answer: all timeouts.
            if expired.is_set() or isinstance(exc, (TimeoutError, socket.timeout)):
                raise _RequestFailed("timeout", f"no answer within {timeout:g}s") from None
            if isinstance(exc, (OSError, http.client.HTTPException)):
                raise _RequestFailed("connection-error", f"cannot reach {self.url}: {_oneline(exc)}") from None
            raise
        finally:
            watchdog.cancel()
            watch.done()  # from now on a late watchdog leaves the (maybe kept) socket alone
            with self._live_lock:
                self._live.discard(watch)
            if not reusable or expired.is_set() or self._cancel.is_set():
                self._drop(conn)

    def _exchange(self, conn: http.client.HTTPConnection, body: bytes, watch: _Watch) -> tuple[str, bool]:
        """Send ``body`` on ``conn``; the answer's text and whether ``conn`` may carry another request."""
        if conn.sock is None:
            conn.connect()
            with contextlib.suppress(OSError, AttributeError):  # headers and body go out at once, not Nagle-held
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
        # The socket itself, not conn: a closing answer (HTTP/1.0, "Connection: close") is read from
        # it after http.client has set conn.sock to None. Shut at once if the deadline already passed.
        watch.add(conn.sock)
        if self._cancel.is_set():  # after watch.add: a cancel() from now on shuts the socket
            raise _Cancelled()
        try:
            conn.request("POST", self._endpoint.target, body=body, headers=self._headers())
            resp = conn.getresponse()
        except _STALE as exc:  # no status line yet: safe to send again (a failure after it is not)
            raise _StaleConnection(_oneline(exc)) from exc
        status = resp.status
        if 300 <= status < 400:
            target = resp.getheader("Location") or ""
            host = urllib.parse.urlsplit(target).hostname or self._host
            raise _RequestFailed(
                f"http-{status}",
                f"HTTP {status}: redirect to {host} not followed (requests are never redirected; "
                f"point --base-url at the final server)",
                retry=False,
            )
        if status >= 400:
            snippet = _error_snippet(resp.read(ERROR_BODY_BYTES), resp.reason)
            if status in FATAL_STATUS:
                hint = "check the API key variable" if status in (401, 403) else "check --model and --base-url"
                raise SeeingSoundError(self._redact(f"{self.url} answered HTTP {status} ({snippet}); {hint}"))
            if status in RETRY_STATUS or status >= 500:
                retry_after = parse_retry_after(resp.getheader("Retry-After"))
                raise _RequestFailed(f"http-{status}", f"HTTP {status}: {snippet}", retry_after)
            # Any other 4xx is about this request (e.g. image too large): recorded, not retried.
            raise _RequestFailed(f"http-{status}", f"HTTP {status}: {snippet}", retry=False)
        limit = self.spec.max_response_bytes
        declared = resp.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _RequestFailed("response-too-large", f"answer of {int(declared)} bytes > {limit}", retry=False)
        raw = bytearray()
        while len(raw) <= limit:
            block = resp.read1(min(READ_BLOCK, limit + 1 - len(raw)))
            if not block:
                break
            raw += block
        if len(raw) > limit:
            raise _RequestFailed("response-too-large", f"answer over {limit} bytes", retry=False)
        # Fully read (length 0 left: http.client does not close the response by itself then) and kept open.
        reusable = (resp.isclosed() or resp.length == 0) and not resp.will_close
        resp.close()
        try:
            return message_text(json.loads(bytes(raw).decode("utf-8"))), reusable
        except (UnicodeDecodeError, ValueError) as exc:
            raise _RequestFailed("bad-response", f"malformed response: {str(exc)[:120]}") from None


class _Watch:
    """The sockets of one attempt in flight; :meth:`abort` (deadline or cancel) shuts them down."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._state = "open"  # "aborted": a socket added later is shut at once; "done": abort does nothing

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            if self._state == "open":
                self._socks.append(sock)
                return
            aborted = self._state == "aborted"
        if aborted:
            _shutdown(sock)

    def abort(self) -> None:
        with self._lock:
            if self._state == "done":
                return
            self._state, socks = "aborted", list(self._socks)
        for sock in socks:
            _shutdown(sock)

    def done(self) -> None:
        with self._lock:
            self._state, self._socks = "done", []


def _shutdown(sock: socket.socket) -> None:
    """Wake a thread blocked on ``sock`` (shutdown does; close from another thread may not)."""
    with contextlib.suppress(OSError):  # plain TCP under TLS too: SSLSocket.shutdown drops the reader's SSL object
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _oneline(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _error_snippet(data: bytes, reason: str | None) -> str:
    text = data.decode("utf-8", "replace")
    if not text.strip():
        return reason or ""
    try:
        msg = json.loads(text).get("error", {})
        text = msg.get("message", text) if isinstance(msg, dict) else str(msg)
    except (ValueError, AttributeError):
        pass
    return " ".join(str(text).split())[:200]
