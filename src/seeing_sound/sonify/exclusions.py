"""The exclusion lists of a ``sonify`` run (``leakage``'s ``exclude_images.txt`` / ``exclude_chunks.txt``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow as pa

from seeing_sound.retrieval.exclude import IdList

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Exclusions:
    """The ``exclude_images`` / ``exclude_chunks`` lists of a run, read before any stage starts."""

    images: IdList | None = None
    chunks: IdList | None = None

    def matched_images(self, image_rows: pa.Table) -> set[str]:
        """The listed ids that are images of this run (logged: how many of the list matched)."""
        if self.images is None:
            return set()
        matched = set(self.images.ids) & set(image_rows.column("image_id").to_pylist())
        log.info(
            "exclude_images: %d of %d listed ids are images of this run (%d unknown, ignored)",
            len(matched),
            len(self.images),
            len(self.images) - len(matched),
        )
        return matched

    def fingerprint(self) -> dict[str, str]:
        """Digests of the non-empty lists, for the mix stage's fingerprint (no list: nothing added)."""
        fps = {k: v.fingerprint() for k, v in (("exclude_images", self.images), ("exclude_chunks", self.chunks)) if v}
        return {k: v for k, v in fps.items() if v is not None}

    def card(self) -> dict[str, dict | None]:
        """For the dataset card's params: each list's sha256 and number of ids (never its path)."""
        return {
            "exclude_images": None if self.images is None else self.images.card(),
            "exclude_chunks": None if self.chunks is None else self.chunks.card(),
        }
