"""What every encoder shares: loading with one clear error, identity, fixed-shape batching.

Determinism: a row's embedding must not depend on which other rows share its batch.
BLAS kernels pick different reduction orders for different matrix shapes, so encoders
run every batch at one fixed shape: ``batch_size`` rows (the last batch padded with
filler rows whose outputs are dropped) and, for text, a token length bucketed from the
text's own length.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from seeing_sound.builders import resolve_device  # noqa: F401  (re-exported for the encoders)
from seeing_sound.errors import ModelNotFoundError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class EncoderInfo:
    """Identity of an embedding space: vectors from two encoders are comparable iff these agree."""

    encoder: str  # 'clap' | 'text' | ...
    model: str  # hub id or the local path given
    revision: str  # 'sha256:...' of config + weights (same for a hub copy and a local copy)
    dim: int
    extra: dict = field(default_factory=dict)  # e.g. the package the model came from

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EncoderInfo:
        return cls(d["encoder"], d["model"], d["revision"], int(d["dim"]), dict(d.get("extra", {})))

    @property
    def key(self) -> str:
        return embedding_key(self.encoder, self.model)


def embedding_key(encoder: str, model: str) -> str:
    """Folder name for one encoder's pool embeddings, e.g. ``clap-laion--clap-htsat-unfused``.

    Hub ids map to readable names; a local path keeps its last folder name plus a short
    hash of the full path, so two different local models never share a folder.
    """
    if Path(model).expanduser().exists():
        resolved = str(Path(model).expanduser().resolve())
        tail = Path(resolved).name or "model"
        slug = f"{tail}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"
    else:
        slug = model.replace("/", "--")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", slug).strip("._") or "model"
    return f"{encoder}-{slug}"


def load_or_raise(load: Callable[[], T], what: str, name_or_path: str, param: str) -> T:
    """Run a ``from_pretrained`` call; a missing/offline model becomes one :class:`ModelNotFoundError`."""
    try:
        return load()
    except (OSError, ValueError) as exc:  # transformers/hub raise OSError (or HFValidationError) for these
        if isinstance(exc, ValueError) and "not found" not in str(exc).lower() and "repo" not in str(exc).lower():
            raise
        raise ModelNotFoundError(what, name_or_path, param, exc) from exc


def model_dir(name_or_path: str) -> Path | None:
    """Folder holding the model's files: the local path, or its snapshot in the hub cache."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return p
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(name_or_path, "config.json")
    except Exception:  # not a valid repo id, or no hub client: no folder to fingerprint
        return None
    return Path(hit).parent if isinstance(hit, str) else None


_FINGERPRINTS: dict[str, str] = {}


def weights_revision(folder: Path | None) -> str:
    """'sha256:<16 hex>' over config.json and the weight files: equal for equal models, wherever they live."""
    if folder is None:
        return "unknown"
    key = str(folder.resolve())
    if key not in _FINGERPRINTS:
        files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        h = hashlib.sha256()
        for f in [folder / "config.json", *files]:
            if f.exists():
                h.update(f.name.encode())
                with open(f, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 22), b""):
                        h.update(block)
        _FINGERPRINTS[key] = "sha256:" + h.hexdigest()[:16]
    return _FINGERPRINTS[key]


def fixed_batches(n: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive batches covering ``range(n)``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for s in range(0, n, batch_size):
        yield s, min(n, s + batch_size)


def pad_batch(x, batch_size: int):
    """Pad a torch tensor or numpy array along dim 0 to ``batch_size`` rows by repeating row 0."""
    n = x.shape[0]
    if n == batch_size:
        return x
    reps = [x[:1]] * (batch_size - n)
    if isinstance(x, np.ndarray):
        return np.concatenate([x, *reps])
    import torch

    return torch.cat([x, *reps])


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """float (n, D) -> float32 (n, D) unit rows (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def bucket_length(n_tokens: int, max_len: int, step: int = 16) -> int:
    """Token length a text is padded to: its own length rounded up to ``step``, capped at ``max_len``."""
    return int(min(max_len, max(step, -(-n_tokens // step) * step)))


def embed_texts_bucketed(texts, tokenizer, *, dim: int, max_len: int, batch_size: int, device, forward) -> np.ndarray:
    """L2-normalized text embeddings, (n,) strings -> (n, dim) float32, independent of batching.

    Texts are grouped by padded length bucket and run in fixed-shape batches (padded to
    ``batch_size``), so a text's vector never depends on its neighbours. ``forward(feats)``
    maps the tokenizer's tensors to a (batch, dim) embedding tensor.
    """
    import torch

    texts = [str(t) for t in texts]
    out = np.zeros((len(texts), dim), dtype=np.float32)
    if not texts:
        return out
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]]
    buckets: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        buckets.setdefault(bucket_length(n, max_len), []).append(i)
    with torch.inference_mode():
        for length, idx in sorted(buckets.items()):
            for s, e in fixed_batches(len(idx), batch_size):
                rows = idx[s:e]
                enc = tokenizer(
                    [texts[i] for i in rows],
                    padding="max_length",
                    truncation=True,
                    max_length=length,
                    return_tensors="pt",
                )
                feats = {k: pad_batch(v, batch_size).to(device) for k, v in enc.items()}
                out[rows] = forward(feats)[: len(rows)].float().cpu().numpy()
    return l2_normalize(out)
