"""Where an HTTP back end sends its requests, and how that address may be shown.

A base URL can carry secrets twice: ``user:password@`` and the query (``?key=...``, common for
proxies and some hosted APIs). The request target joins the endpoint's path onto the base path
and keeps the base query (``/v1/chat/completions?key=...``); every message shows the URL with
the credentials and all query values replaced by ``***`` (the names stay: they say what was sent).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from seeing_sound.concepts.backends import REDACTED, redact_url

_UNSAFE = re.compile(r"[\x00-\x20\x7f]")  # HTTP clients refuse these or quote the URL (sending another target)
_MIN_QUERY_SECRET_CHARS = 8  # shorter values (json, true, 2) are not keys and would blank ordinary words


def redact_query(query: str) -> str:
    """``key=SECRET&v=2`` -> ``key=***&v=***``; a bare value (``?SECRET``) -> ``***``."""
    out = []
    for item in query.split("&"):
        name, eq, _ = item.partition("=")
        out.append(f"{name}={REDACTED}" if eq else (REDACTED if item else ""))
    return "&".join(out)


def display_url(url: str) -> str:
    """``url`` for messages: user:password -> ``***@``, every query value and any fragment -> ``***``."""
    url = redact_url(url)  # first: a password may hold "?" or "#"
    url, hash_, _ = url.partition("#")
    head, mark, query = url.partition("?")
    return head + mark + redact_query(query) + (f"#{REDACTED}" if hash_ else "")


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int | None
    target: str  # the request line's target: base path + endpoint path, then the base query
    userinfo: tuple[str, str] | None  # (user, password) from the base URL, unquoted
    query_secrets: tuple[str, ...]  # the query's values, as written and decoded (redacted from text)
    url: str  # the full URL for messages: never holds a credential or a query value

    @classmethod
    def parse(cls, base: str, path: str) -> Endpoint:
        """``base`` (``https://host/v1?key=K``) and ``path`` (``/chat/completions``); ValueError if unusable."""
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {display_url(base)!r}")
        parts = urllib.parse.urlsplit(base)
        if not parts.hostname:
            raise ValueError(f"base_url has no host: {display_url(base)!r}")
        try:  # neither urllib's message nor the URL: the "port" may be a password's start cut at "/", "?", "#"
            port = parts.port
        except ValueError:
            raise ValueError("base_url has no valid port (or a password with an unencoded / ? or #)") from None
        full = parts.path.rstrip("/") + path
        target = full + (f"?{parts.query}" if parts.query else "")
        if _UNSAFE.search(target):
            raise ValueError(f"base_url has spaces or control characters: {display_url(base)!r}")
        userinfo = (
            (urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password or ""))
            if parts.username or parts.password
            else None
        )
        raw = [value if eq else name for name, eq, value in (i.partition("=") for i in parts.query.split("&"))]
        decoded = [v for _, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
        secrets = tuple(dict.fromkeys(v for v in raw + decoded if len(v) >= _MIN_QUERY_SECRET_CHARS))
        url = display_url(urllib.parse.urlunsplit((parts.scheme, parts.netloc, full, parts.query, "")))
        return cls(parts.scheme, parts.hostname, port, target, userinfo, secrets, url)

    @property
    def request_url(self) -> str:
        """The URL requests go to: scheme, host, port and target (base query included), no credentials.

        Never for messages (it holds the query's values): :attr:`url` is the one to show.
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{host}{port}{self.target}"
