"""Any OpenAI-compatible chat-completions server (vLLM, Ollama, TGI, SGLang, LMDeploy, hosted APIs).

Standard library only. Images go as base64 JPEG data URLs; requests run ``concurrency`` at a
time; 429, 5xx, timeouts and dropped connections are retried with exponential backoff that
honours ``Retry-After``; a request that finally fails becomes an error record. Authentication
and model-not-found errors stop the run instead (every request would fail the same way).
The API key is read from an environment variable and never logged.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import email.utils
import http.client
import io
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from seeing_sound.concepts.backends import Generation, VLMRequest, VLMSpec
from seeing_sound.errors import SeeingSoundError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0  # longest exponential wait
RETRY_AFTER_MAX_S = 300.0  # a server asking for more than this is treated as asking for this


class _RequestFailed(Exception):
    """One attempt failed; ``retry`` says whether another attempt may succeed."""

    def __init__(self, reason: str, detail: str, retry_after: float | None = None, retry: bool = True):
        super().__init__(detail)
        self.reason, self.detail, self.retry_after, self.retry = reason, detail, retry_after, retry


def encode_image_data_url(image, quality: int = 90) -> str:
    """RGB PIL image -> ``data:image/jpeg;base64,...`` (JPEG keeps requests small)."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


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

    def __init__(self, spec: VLMSpec, sleep=time.sleep):
        self.spec = spec
        base = spec.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base!r}")
        self.url = base.rstrip("/") + "/chat/completions"
        self._sleep = sleep
        if not os.environ.get(spec.api_key_env):
            log.info("no API key in $%s; sending requests without Authorization", spec.api_key_env)

    def generate(self, requests: Sequence[VLMRequest], task: str) -> list[list[Generation]]:
        if not requests:
            return []
        with cf.ThreadPoolExecutor(max_workers=min(self.spec.concurrency, len(requests))) as pool:
            futures = [pool.submit(self.complete, r) for r in requests]
            try:
                return [[f.result()] for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.spec.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _body(self, request: VLMRequest) -> bytes:
        content = [
            {"type": "text", "text": request.prompt},
            {"type": "image_url", "image_url": {"url": encode_image_data_url(request.image)}},
        ]
        body = {
            "model": self.spec.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.spec.max_new_tokens,
            "temperature": 0,  # greedy, like the transformers back end
        }
        return json.dumps(body).encode("utf-8")

    def complete(self, request: VLMRequest) -> Generation:
        """One request with retries; returns the text or an error record, raises only on fatal status."""
        body = self._body(request)
        attempts = self.spec.max_retries + 1
        last: _RequestFailed | None = None
        for attempt in range(attempts):
            try:
                return Generation(self.spec.model_id, text=self._post(body))
            except _RequestFailed as exc:
                last = exc
                if not exc.retry or attempt + 1 == attempts:
                    break
                wait = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt)
                if exc.retry_after is not None:
                    wait = max(wait, min(RETRY_AFTER_MAX_S, exc.retry_after))
                log.debug("%s: %s; retry %d/%d in %.1fs", request.image_id, exc.detail, attempt + 1, attempts - 1, wait)
                self._sleep(wait)
        assert last is not None
        tries = attempt + 1
        detail = f"{last.detail} (after {tries} attempt{'s' if tries > 1 else ''})"
        return Generation(self.spec.model_id, error=last.reason, detail=detail)

    def _post(self, body: bytes) -> str:
        req = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.spec.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            snippet = _error_snippet(exc)
            if status in FATAL_STATUS:
                hint = "check the API key variable" if status in (401, 403) else "check --model and --base-url"
                raise SeeingSoundError(f"{self.url} answered HTTP {status} ({snippet}); {hint}") from None
            if status in RETRY_STATUS or status >= 500:
                retry_after = parse_retry_after(exc.headers.get("Retry-After"))
                raise _RequestFailed(f"http-{status}", f"HTTP {status}: {snippet}", retry_after) from None
            # Any other 4xx is about this request (e.g. image too large): recorded, not retried.
            raise _RequestFailed(f"http-{status}", f"HTTP {status}: {snippet}", retry=False) from None
        except TimeoutError as exc:
            raise _RequestFailed("timeout", f"no answer within {self.spec.timeout_s:g}s") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise _RequestFailed("timeout", f"no answer within {self.spec.timeout_s:g}s") from exc
            raise _RequestFailed("connection-error", f"cannot reach {self.url}: {exc.reason}") from exc
        except (ConnectionError, http.client.HTTPException) as exc:
            raise _RequestFailed("connection-error", f"{type(exc).__name__}: {exc}") from exc
        try:
            return message_text(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _RequestFailed("bad-response", f"malformed response: {str(exc)[:120]}") from exc


def _error_snippet(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read(500).decode("utf-8", "replace")
    except Exception:  # the body is only a hint for the message
        return exc.reason or ""
    try:
        msg = json.loads(text).get("error", {})
        text = msg.get("message", text) if isinstance(msg, dict) else str(msg)
    except (ValueError, AttributeError):
        pass
    return " ".join(text.split())[:200]
