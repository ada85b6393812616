"""Any OpenAI-compatible chat-completions server (vLLM, Ollama, TGI, SGLang, LMDeploy, hosted APIs).

HTTP through httpx (the ``openai`` extra), Pillow for images. Images go as base64 JPEG data URLs: a
JPEG that is already what the model should see (within the size it was decoded at, upright, RGB or
gray) is sent as its own bytes, anything else is re-encoded. Requests run ``concurrency`` at a time,
each worker thread keeping one keep-alive connection (reopened when the server closes it); 429,
5xx, timeouts and dropped connections are retried with exponential backoff that honours
``Retry-After``; a request that finally fails becomes an error record. Authentication and
model-not-found errors stop the run instead (every request would fail the same way).

The network settings come from the environment, as for curl: ``HTTP_PROXY``, ``HTTPS_PROXY``,
``ALL_PROXY`` and ``NO_PROXY`` (either case) choose a proxy per request, and the system's trusted
certificates verify TLS (``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` name others).

Hardening, because the server is whatever ``--base-url`` names:

* redirects are never followed: a 3xx is an error row (``http-302``, naming the target host), so
  the key is never sent to another host and a POST never turns into a prompt-less GET;
* ``timeout_s`` is a wall-clock deadline per attempt (connect, headers and body together): a
  server that drips bytes cannot keep a request alive, on a kept connection or a closing one;
* at most ``max_response_bytes`` of an answer are read (``response-too-large`` beyond that);
* the API key, URL credentials and the base URL's query values (``?key=***``) are redacted from
  every recorded or logged message, httpx's own log lines included; the query itself is sent
  (``/v1/chat/completions?key=...``);
* an interrupt (Ctrl-C) aborts every request in flight at once instead of waiting for it.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import contextlib
import email.utils
import heapq
import http.cookiejar
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
from typing import Any

from seeing_sound.concepts.backends import Generation, VLMRequest, VLMSpec, redact, redact_url
from seeing_sound.concepts.backends.endpoint import Endpoint
from seeing_sound.concepts.image_payload import encode_image_data_url, image_jpeg_base64
from seeing_sound.errors import SeeingSoundError

try:
    import httpx
except ImportError:  # pragma: no cover - depends on the environment
    httpx = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0  # longest exponential wait
RETRY_AFTER_MAX_S = 300.0  # a server asking for more than this is treated as asking for this
ERROR_BODY_BYTES = 500  # of an error answer, only a snippet is read (it is a hint for the message)
MISSING_HTTPX = "the openai VLM back end needs httpx: pip install 'seeing-sound[openai]'"
# The loggers httpx and httpcore write to: their lines (URLs with the base query, response headers)
# pass through a filter that redacts every back end's secrets before any handler sees them.
HTTP_LOGGERS = (
    "httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy", "httpcore.socks",
)  # fmt: skip


class _RequestFailed(Exception):
    """One attempt failed; ``retry`` says whether another attempt may succeed."""

    def __init__(self, reason: str, detail: str, retry_after: float | None = None, retry: bool = True):
        super().__init__(detail)
        self.reason, self.detail, self.retry_after, self.retry = reason, detail, retry_after, retry


class _Cancelled(Exception):
    """The run is being interrupted: no more attempts."""


class _NoCookies(http.cookiejar.CookieJar):
    """A jar that keeps nothing: an API needs no cookies (and parsing them was a tenth of a request's CPU)."""

    def extract_cookies(self, response, request) -> None:
        pass

    def add_cookie_header(self, request) -> None:
        pass


class _RedactingFilter(logging.Filter):
    """Replaces the known secrets in a log record of httpx or httpcore (they log URLs and headers)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.secrets: tuple[str, ...] = ()

    def add(self, secrets: Sequence[str]) -> None:
        with self._lock:
            self.secrets = tuple(dict.fromkeys((*self.secrets, *secrets)))

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = redact(text, self.secrets)
        if clean != text:
            record.msg, record.args = clean, ()
        return True


_LOG_FILTER = _RedactingFilter()
for _name in HTTP_LOGGERS:
    logging.getLogger(_name).addFilter(_LOG_FILTER)


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
        if httpx is None:  # pragma: no cover - depends on the environment
            raise SeeingSoundError(MISSING_HTTPX)
        self.spec = spec
        base = spec.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self._endpoint = Endpoint.parse(base, "/chat/completions")
        self._userinfo = self._endpoint.userinfo
        self.url = self._endpoint.url  # for messages: never holds credentials nor query values
        self._request_url = httpx.URL(self._endpoint.request_url)  # parsed once: holds the query's values
        self._cancel = threading.Event()
        self._sleep = sleep if sleep is not None else self._interruptible_sleep
        self._live: set[_Watch] = set()  # the attempts in flight (cancel() aborts them)
        self._live_lock = threading.Lock()
        self._local = threading.local()  # .client: this thread's httpx.Client; .sock: its connection's socket
        self._open: set[httpx.Client] = set()  # every thread's client, closed after generate()
        self._ssl: ssl.SSLContext | None = None
        self._watchdog = _Watchdog()
        _LOG_FILTER.add(self._secrets())
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
        _LOG_FILTER.add(self._secrets())  # the key as the environment holds it now
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
        """Close the worker threads' clients and their keep-alive connections (later requests open new ones)."""
        with self._live_lock:
            clients, self._open = list(self._open), set()
        for client in clients:
            with contextlib.suppress(Exception):  # a client whose request was just aborted may complain
                client.close()

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
        # identity: the answer is capped as it arrives on the wire, and no decompression bomb is inflated
        headers = {"Content-Type": "application/json", "Accept": "application/json", "Accept-Encoding": "identity"}
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

    def _ssl_context(self) -> ssl.SSLContext:
        """The system's trusted certificates (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` override), built once."""
        with self._live_lock:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            return self._ssl

    def _client(self) -> httpx.Client:
        """This thread's client: one keep-alive connection, proxies and NO_PROXY from the environment."""
        client = getattr(self._local, "client", None)
        if client is not None and not client.is_closed:
            return client
        try:
            client = httpx.Client(
                verify=self._ssl_context(),
                trust_env=True,  # HTTP(S)_PROXY, ALL_PROXY, NO_PROXY
                follow_redirects=False,
                cookies=_NoCookies(),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
        except (ImportError, ValueError) as exc:  # an ftp:// proxy; a SOCKS one without httpx[socks]; ...
            raise SeeingSoundError(f"the proxy settings in the environment cannot be used: {_oneline(exc)}") from None
        self._local.client, self._local.sock = client, None
        with self._live_lock:
            self._open.add(client)
        return client

    def _post(self, body: bytes) -> str:
        """One attempt: POST, read at most ``max_response_bytes``, all within ``timeout_s`` of wall time.

        A watchdog shuts the attempt's sockets down at the deadline (or on :meth:`cancel`), which
        wakes any blocked read; httpx's timeouts alone are per operation and a dripping server
        resets them. The sockets are the thread's kept connection's and any the attempt opens
        (httpcore's ``trace`` extension names them). A kept connection the server has closed
        meanwhile (it fails before any answer) is replaced by a new one once, within the same deadline.
        """
        timeout = self.spec.timeout_s
        watch = _Watch(time.monotonic() + timeout)
        with self._live_lock:
            self._live.add(watch)
        self._watchdog.add(watch)
        try:
            text = self._exchange(self._client(), body, watch)
            if not watch.expired:
                return text
            raise _RequestFailed("timeout", f"no answer within {timeout:g}s")
        except (SeeingSoundError, _Cancelled):
            raise
        except Exception as exc:
            if self._cancel.is_set():
                raise _Cancelled() from None
            # A socket shut down by the watchdog reads as EOF, a reset or a half answer: all timeouts.
            if watch.expired or isinstance(exc, (httpx.TimeoutException, TimeoutError)):
                raise _RequestFailed("timeout", f"no answer within {timeout:g}s") from None
            if isinstance(exc, (httpx.TransportError, OSError)):
                raise _RequestFailed("connection-error", f"cannot reach {self.url}: {_oneline(exc)}") from None
            raise
        finally:
            watch.done()  # from now on a late watchdog leaves the (maybe kept) socket alone
            with self._live_lock:
                self._live.discard(watch)

    def _send(self, client: httpx.Client, body: bytes, watch: _Watch) -> httpx.Response:
        """The answer's status and headers, its body still to read; ``self._local.opened``: on a new connection."""
        local = self._local
        local.opened = False

        def trace(event: str, info: dict[str, Any]) -> None:
            if not event.endswith((".connect_tcp.complete", ".start_tls.complete")):
                return
            sock = info["return_value"].get_extra_info("socket")
            if event.endswith(".connect_tcp.complete"):
                local.opened = True
                with contextlib.suppress(OSError):  # headers and body go out at once, not Nagle-held
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            local.sock = sock  # under TLS the TLS socket replaces the plain one (which it detached)
            watch.add(sock)  # a deadline already passed or a cancel shuts it at once

        sock = getattr(local, "sock", None)
        if sock is not None:  # the kept connection httpx will probably reuse
            watch.add(sock)
        if self._cancel.is_set():  # after watch.add: a cancel() from now on shuts the socket
            raise _Cancelled()
        t = self.spec.timeout_s  # httpx's timeouts are per operation (each read): the deadline above is ours
        timeouts = {"connect": t, "read": t, "write": t, "pool": t}
        request = httpx.Request(
            "POST", self._request_url, headers=self._headers(), content=body,
            extensions={"trace": trace, "timeout": timeouts},
        )  # fmt: skip
        return client.send(request, stream=True)

    def _exchange(self, client: httpx.Client, body: bytes, watch: _Watch) -> str:
        """Send ``body`` and read the answer's text; the connection stays kept only after a full answer."""
        try:
            resp = self._send(client, body, watch)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            # No status line yet: the server never answered, so sending again is safe (once, and only
            # when a kept connection failed: a server closing it while idle; a new one failing is real).
            if self._local.opened or watch.expired or self._cancel.is_set():
                raise
            resp = self._send(client, body, watch)
        try:
            return self._read(resp, watch)
        finally:
            resp.close()  # a response not fully read closes its connection: only a whole answer keeps it

    def _read(self, resp: httpx.Response, watch: _Watch) -> str:
        status = resp.status_code
        if 300 <= status < 400:
            target = resp.headers.get("Location") or ""
            host = urllib.parse.urlsplit(target).hostname or self._endpoint.host
            raise _RequestFailed(
                f"http-{status}",
                f"HTTP {status}: redirect to {host} not followed (requests are never redirected; "
                f"point --base-url at the final server)",
                retry=False,
            )
        if status >= 400:
            data = _read_at_most(resp, ERROR_BODY_BYTES, watch)[:ERROR_BODY_BYTES]
            snippet = _error_snippet(data, resp.reason_phrase)
            if status in FATAL_STATUS:
                hint = "check the API key variable" if status in (401, 403) else "check --model and --base-url"
                raise SeeingSoundError(self._redact(f"{self.url} answered HTTP {status} ({snippet}); {hint}"))
            if status in RETRY_STATUS or status >= 500:
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                raise _RequestFailed(f"http-{status}", f"HTTP {status}: {snippet}", retry_after)
            # Any other 4xx is about this request (e.g. image too large): recorded, not retried.
            raise _RequestFailed(f"http-{status}", f"HTTP {status}: {snippet}", retry=False)
        limit = self.spec.max_response_bytes
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _RequestFailed("response-too-large", f"answer of {int(declared)} bytes > {limit}", retry=False)
        raw = _read_at_most(resp, limit + 1, watch)
        if len(raw) > limit:
            raise _RequestFailed("response-too-large", f"answer over {limit} bytes", retry=False)
        if watch.expired:  # the watchdog cut the answer: what arrived is not all of it
            raise _RequestFailed("timeout", f"no answer within {self.spec.timeout_s:g}s")
        try:
            return message_text(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _RequestFailed("bad-response", f"malformed response: {str(exc)[:120]}") from None


def _read_at_most(resp: httpx.Response, limit: int, watch: _Watch) -> bytes:
    """The answer's bytes as they came (no decoding) until it ends, ``limit`` is reached or time is up."""
    raw = bytearray()
    for block in resp.iter_raw():
        raw += block
        if len(raw) >= limit or watch.expired:
            break
    return bytes(raw)


class _Watch:
    """The sockets of one attempt in flight; :meth:`abort` (deadline or cancel) shuts them down."""

    __slots__ = ("_lock", "_socks", "_state", "deadline", "expired")

    def __init__(self, deadline: float) -> None:
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._state = "open"  # "aborted": a socket added later is shut at once; "done": abort does nothing
        self.deadline = deadline  # time.monotonic() at which the attempt is cut
        self.expired = False

    @property
    def finished(self) -> bool:
        return self._state == "done"

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            if self._state == "open":
                self._socks.append(sock)
                return
            aborted = self._state == "aborted"
        if aborted:
            _shutdown(sock)

    def expire(self) -> None:
        """The deadline passed: what the attempt reads from now on is cut short (a timeout)."""
        self.expired = True
        self.abort()

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


class _Watchdog:
    """Expires attempts at their deadline: one thread for all of a back end's attempts, not one each.

    The thread sleeps until the earliest deadline still pending (attempts that finished are dropped
    when they come first) and exits after a while with nothing to watch; the next attempt starts it.
    """

    IDLE_S = 5.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._count = 0
        self._running = False

    def add(self, watch: _Watch) -> None:
        with self._cond:
            while self._heap and self._heap[0][2].finished:  # attempts finish about in order: the heap stays small
                heapq.heappop(self._heap)
            self._count += 1
            heapq.heappush(self._heap, (watch.deadline, self._count, watch))
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="openai-deadlines", daemon=True).start()
            elif self._heap[0][2] is watch:  # sooner than what the thread sleeps for
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].finished:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait(self.IDLE_S)
                    if not self._heap:
                        self._running = False
                        return
                    continue
                deadline, _, watch = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            watch.expire()


def _shutdown(sock: socket.socket) -> None:
    """Wake a thread blocked on ``sock`` (shutdown does; close from another thread may not)."""
    with contextlib.suppress(OSError):  # plain TCP under TLS too: SSLSocket.shutdown drops the reader's SSL object
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _oneline(exc: BaseException) -> str:
    text = redact_url(str(exc) or type(exc).__name__)  # a proxy URL's user:password, should one be quoted
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
