"""VLM back ends behind one small interface: requests in, raw generations out.

A back end never parses; it returns the model's text (or a sidecar's pre-split items) and an
error reason when a request finally failed. Back ends are built once per worker process from a
picklable :class:`VLMSpec`, so a shard sent to another process carries only the spec.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from seeing_sound.builders import DEFAULT_VLM

KINDS = ("transformers", "openai", "sidecar")
DEFAULT_TRANSFORMERS_MODEL = DEFAULT_VLM


@dataclass(frozen=True)
class VLMSpec:
    """One ``--vlm``: which back end, which model, and the knobs that back end uses.

    Every knob's default is ours: the paper names its VLMs (LLaVA and CogVLM, Section 3.2) but no
    generation, precision or serving setting. ``max_new_tokens`` 256 leaves room for the up to three
    "object: sound" items the Fig. 2 prompt asks for; the rest are mechanics (docs/paper-fidelity.md).
    """

    kind: str  # "transformers" | "openai" | "sidecar"
    model: str  # HF name or local folder | served model name | sidecar file path
    name: str | None = None  # recorded in the ``model`` column; defaults to ``model``
    max_new_tokens: int = 256  # transformers + openai: longest answer
    batch_size: int = 8  # transformers: images per generate() call
    device: str = "auto"  # transformers: "auto" -> cuda if available, else cpu
    dtype: str = "auto"  # transformers: "auto" -> bfloat16 on cuda, float32 on cpu
    trust_remote_code: bool = False  # transformers: only when the user asks (runs the repo's code)
    base_url: str | None = None  # openai: defaults to $OPENAI_BASE_URL or https://api.openai.com/v1
    api_key_env: str = "OPENAI_API_KEY"  # openai: environment variable holding the key (never logged)
    concurrency: int = 4  # openai: requests in flight per worker
    timeout_s: float = 60.0  # openai: wall-clock deadline per request attempt (connect + answer)
    max_retries: int = 5  # openai: retries after the first attempt on 429/5xx/timeouts
    max_response_bytes: int = 1 << 20  # openai: longest answer read; more is recorded as response-too-large
    sidecar_key: str | None = None  # sidecar: key column; default: first of image_id, path, file, ...

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"vlm kind must be one of {KINDS}, got {self.kind!r}")
        if not self.model:
            raise ValueError(f"vlm {self.kind}: a model is required (e.g. --vlm {self.kind}:NAME)")
        for attr in ("max_new_tokens", "batch_size", "concurrency", "max_response_bytes"):
            if getattr(self, attr) < 1:
                raise ValueError(f"{attr} must be >= 1, got {getattr(self, attr)}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")

    @property
    def model_id(self) -> str:
        if self.name:
            return self.name
        return f"sidecar:{Path(self.model).name}" if self.kind == "sidecar" else self.model

    @classmethod
    def parse(cls, text: str, **options) -> VLMSpec:
        """``"transformers"``, ``"transformers:llava-hf/llava-1.5-7b-hf"``, ``"openai:gpt-4o-mini"``,
        ``"sidecar:concepts.jsonl"``. Options that a back end does not use are ignored by it."""
        kind, _, model = text.partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise ValueError(f"a VLM spec must start with one of {', '.join(KINDS)} (e.g. openai:MODEL), got {text!r}")
        if not model and kind == "transformers":
            model = DEFAULT_TRANSFORMERS_MODEL
        if not model:
            raise ValueError(f"a {kind} VLM spec needs a {'model name' if kind == 'openai' else 'file'}: {kind}:VALUE")
        if kind == "sidecar":
            model = str(Path(model).expanduser().resolve())
        known = {k: v for k, v in options.items() if v is not None and k in cls.__dataclass_fields__}
        return cls(kind=kind, model=model, **known)

    def with_name(self, name: str) -> VLMSpec:
        return replace(self, name=name)


@dataclass
class VLMRequest:
    """One image and one prompt. ``image`` is an RGB PIL image (None only for pixel-free back ends)."""

    image_id: str
    path: str  # relative to its root: sidecars may be keyed by it
    image: Any
    prompt: str


@dataclass
class Generation:
    """A model's raw answer to one request, or the reason there is none."""

    model: str
    text: str | None = None
    items: tuple[str, ...] | None = None  # already split (sidecar lists); bypasses list parsing
    error: str | None = None
    detail: str | None = None


class VLMBackend(Protocol):
    spec: VLMSpec
    provides_captions: bool
    provides_concepts: bool

    def generate(self, requests: Sequence[VLMRequest], task: str) -> list[list[Generation]]:
        """One list of generations per request (usually one; a sidecar may hold several models)."""


REDACTED = "***"
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")
_MIN_SECRET_CHARS = 4  # shorter "secrets" would redact ordinary words


def redact_url(text: str) -> str:
    """``https://user:pass@host/v1`` -> ``https://***@host/v1`` (anywhere in ``text``)."""
    return _URL_USERINFO.sub(rf"\1{REDACTED}@", text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL credentials and every given secret value replaced by ``***``.

    Applied to everything a back end records or logs (error details, answers, messages), so
    an API key echoed back by a server never reaches a Parquet file, a card or a log line.
    """
    text = redact_url(text)
    for secret in sorted((s for s in secrets if s and len(s) >= _MIN_SECRET_CHARS), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


_CACHE: dict[VLMSpec, VLMBackend] = {}


def get_backend(spec: VLMSpec) -> VLMBackend:
    """The back end for ``spec``, built once per process (a 7B model loads once, not per shard)."""
    backend = _CACHE.get(spec)
    if backend is None:
        cls: Callable[[VLMSpec], Any]
        if spec.kind == "transformers":
            from seeing_sound.concepts.backends.transformers import TransformersBackend as cls
        elif spec.kind == "openai":
            from seeing_sound.concepts.backends.openai import OpenAIBackend as cls
        else:
            from seeing_sound.concepts.backends.sidecar import SidecarBackend as cls
        backend = _CACHE[spec] = cls(spec)
    return backend


def clear_backend_cache() -> None:
    """Drop built back ends (frees a loaded model)."""
    _CACHE.clear()
