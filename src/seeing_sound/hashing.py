"""File checksums: the one streaming sha256 every recorded checksum uses (dataset files, sidecars,
impulse responses, checkpoints, evaluation caches)."""

from __future__ import annotations

import hashlib
import os

BLOCK = 1 << 20


def file_sha256(path: str | os.PathLike, *, prefixed: bool = False) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (memory stays flat for any file size).

    ``prefixed``: ``"sha256:<hex>"``, the form recorded where the algorithm is named with the digest
    (an impulse response's ``ir_sha256``).
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            h.update(block)
    return f"sha256:{h.hexdigest()}" if prefixed else h.hexdigest()
