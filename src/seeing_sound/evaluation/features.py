"""Batched feature extraction with a per-file cache: ``EVAL/features/<model-key>/<sha256 of the file>.npy``.

A file's features depend only on its bytes and the model (the key holds the weights' revision and,
for Inception, the resize policy), so reruns, other metrics and other benchmarks that share files
reuse them. A file that cannot be read or encoded is reported with its reason, never dropped
silently. A cache entry is checked before it is used: one that does not load, or is not a
non-empty vector of finite numbers, is recomputed and overwritten (one warning naming it).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seeing_sound.engine.outcome import reraise_environment
from seeing_sound.engine.shards import atomic_write
from seeing_sound.hashing import file_sha256 as sha256_of

log = logging.getLogger(__name__)

_SHA: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (memoised per path, size and mtime within a process)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA:
        _SHA[key] = sha256_of(p)
    return _SHA[key]


def _entry_problem(vec: object, dim: int | None) -> str | None:
    """Why a loaded cache entry is not a usable feature vector (of length ``dim`` where given), or None."""
    if not isinstance(vec, np.ndarray):  # np.load reads an .npz archive too
        return f"a {type(vec).__name__}, expected an array"
    if vec.dtype.kind not in "fiu":
        return f"dtype {vec.dtype}, expected floats"
    if vec.ndim != 1 or vec.size == 0 or (dim and vec.shape[0] != dim):
        return f"shape {vec.shape}, expected a vector of {dim or 'some'} numbers"
    if not np.all(np.isfinite(vec)):
        return "non-finite values"
    return None


class FeatureCache:
    """One folder of ``<sha256>.npy`` float32 vectors for one model key (of length ``dim``, where given)."""

    def __init__(self, root: str | Path, key: str, dim: int | None = None):
        self.folder = Path(root) / key
        self.key = key
        self.dim = dim

    def path(self, sha: str) -> Path:
        return self.folder / f"{sha}.npy"

    def get(self, sha: str) -> np.ndarray | None:
        p = self.path(sha)
        if not p.is_file():
            return None
        problem: str | None
        try:
            vec = np.load(p)  # allow_pickle=False: an entry never runs code
        except Exception as exc:  # a damaged cache entry is recomputed
            problem = f"unreadable: {type(exc).__name__}"
        else:
            problem = _entry_problem(vec, self.dim)
            if problem is None:
                return np.asarray(vec)
            if hasattr(vec, "close"):  # an .npz archive holds its file open
                vec.close()
        # a cache entry is never trusted over the file it stands for: recomputed, then overwritten by put()
        log.warning("recomputing damaged feature cache entry %s (%s)", p, problem)
        return None

    def put(self, sha: str, vec: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(vec, dtype=np.float32))
        with atomic_write(self.path(sha)) as fh:
            fh.write(buf.getvalue())


def extract(
    files: Sequence[Path],
    *,
    cache: FeatureCache,
    prepare: Callable[[Path], Any],
    embed: Callable[[list[Any]], np.ndarray],
    batch_size: int,
    progress: bool = False,
    desc: str = "features",
) -> tuple[dict[Path, np.ndarray], dict[Path, str], int]:
    """Features of ``files``: cached ones loaded, the rest prepared, embedded ``batch_size`` at a time, cached.

    ``prepare(path)`` reads one file into the encoder's input (raising on a bad file);
    ``embed(inputs)`` maps a list of inputs to ``(n, D)``. Returns ``({path: (D,)}, {path: reason}, computed)``.
    """
    from tqdm.auto import tqdm

    feats: dict[Path, np.ndarray] = {}
    errors: dict[Path, str] = {}
    todo: list[tuple[Path, str]] = []
    for f in dict.fromkeys(files):  # unique, in order
        try:
            sha = file_sha256(f)
        except OSError as exc:
            errors[f] = f"unreadable: {exc.strerror or exc}"
            continue
        hit = cache.get(sha)
        if hit is not None:
            feats[f] = hit
        else:
            todo.append((f, sha))
    computed = 0
    bar = tqdm(total=len(todo), desc=desc, unit="file", disable=not progress or not todo, dynamic_ncols=True)
    try:
        batch: list[tuple[Path, str, Any]] = []

        def flush() -> None:
            nonlocal computed
            if not batch:
                return
            out = embed([x for _, _, x in batch])
            for (f, sha, _), vec in zip(batch, out, strict=True):
                if not np.all(np.isfinite(vec)):
                    errors[f] = "non-finite features"
                    continue
                cache.put(sha, vec)
                feats[f] = np.asarray(vec, dtype=np.float32)
                computed += 1
            bar.update(len(batch))
            batch.clear()

        for f, sha in todo:
            try:
                batch.append((f, sha, prepare(f)))
            except Exception as exc:  # one bad file must not stop the others
                reraise_environment(exc)  # a full or read-only output is the run's, not the item's
                errors[f] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}".rstrip(": ")
                bar.update(1)
                continue
            if len(batch) >= batch_size:
                flush()
        flush()
    finally:
        bar.close()
    if errors:
        log.warning("%s: %d file(s) could not be encoded", desc, len(errors))
    return feats, errors, computed
