"""Segmentation into fixed-length, non-overlapping, zero-padded chunks (paper A.7)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    """One standardized chunk: ``samples`` (chunk_samples,) float32, ``real_samples`` unpadded."""

    index: int
    samples: np.ndarray
    real_samples: int


def num_chunks(total_samples: int, chunk_samples: int, min_tail_samples: int = 0) -> int:
    """How many chunks a signal of ``total_samples`` yields (a 34 s file at 5 s -> 7)."""
    full, tail = divmod(total_samples, chunk_samples)
    keep_tail = tail > 0 and tail >= min_tail_samples
    return full + int(keep_tail)


class Chunker:
    """Streaming segmenter: feed blocks of any size, get every complete chunk once.

    The result equals ``chunk_array`` on the concatenated input, whatever the block sizes.
    ``min_tail_samples`` = 0 keeps every non-empty tail (the paper); > 0 drops tails
    with less real audio than that.
    """

    def __init__(self, chunk_samples: int, min_tail_samples: int = 0):
        if chunk_samples < 1:
            raise ValueError(f"chunk_samples must be >= 1, got {chunk_samples}")
        self.chunk_samples = chunk_samples
        self.min_tail_samples = min_tail_samples
        self._buf = np.zeros(chunk_samples, dtype=np.float32)
        self._fill = 0
        self._next = 0
        self.total_samples = 0

    def feed(self, block: np.ndarray) -> Iterator[Chunk]:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self.total_samples += block.size
        pos = 0
        while pos < block.size:
            take = min(self.chunk_samples - self._fill, block.size - pos)
            self._buf[self._fill : self._fill + take] = block[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == self.chunk_samples:
                yield self._emit(self.chunk_samples)

    def finish(self) -> Iterator[Chunk]:
        """Zero-pad and emit the tail, if it is kept."""
        if self._fill > 0 and self._fill >= self.min_tail_samples:
            self._buf[self._fill :] = 0.0
            yield self._emit(self._fill)
        self._fill = 0

    def _emit(self, real: int) -> Chunk:
        chunk = Chunk(self._next, self._buf.copy(), real)
        self._next += 1
        self._fill = 0
        return chunk


def chunk_array(x: np.ndarray, chunk_samples: int, min_tail_samples: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reference (non-streaming) segmentation.

    Args:
        x: mono signal (T,).
    Returns:
        chunks (n, chunk_samples) float32 zero-padded, real_samples (n,) int64.
    """
    n = num_chunks(x.size, chunk_samples, min_tail_samples)
    out = np.zeros((n, chunk_samples), dtype=np.float32)
    real = np.zeros(n, dtype=np.int64)
    for i in range(n):
        seg = x[i * chunk_samples : (i + 1) * chunk_samples]
        out[i, : seg.size] = seg
        real[i] = seg.size
    return out, real
