"""Check a pairs dataset's stored files against its metadata: every mismatch, missing and extra file.

``rebuild`` proves the *recipes* still render to the recorded checksums; this proves the *files*
on disk are the ones the metadata describes: each mixture's int16 samples hash to
``mixture_sha256``, each image (where hashed) to ``image_sha256``, and nothing else sits under
``audio/`` or ``metadata/``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from seeing_sound.dataset import layout
from seeing_sound.dataset.audio_files import pcm_sha256, read_pcm16
from seeing_sound.dataset.paths import UnsafePathError, safe_join
from seeing_sound.dataset.reader import PairsDataset
from seeing_sound.hashing import file_sha256

log = logging.getLogger(__name__)

PROBLEMS = ("mismatched", "missing", "unreadable", "unsafe_path", "extra", "image_mismatched", "image_missing")
#: findings that mean a stored file is not the one the metadata describes (``export hf`` refuses to publish
#: them); a missing file is published as a null cell and an extra file is not published at all
TAMPERED = ("mismatched", "unreadable", "unsafe_path", "image_mismatched")


@dataclass
class VerifyReport:
    """What :func:`verify_dataset` found; every list holds paths relative to the dataset (images: to their root)."""

    root: str
    pairs: int = 0
    audio_ok: int = 0
    images_checked: int = 0
    images_ok: int = 0
    images_root: str | None = None
    images_note: str | None = None  # why images were not checked, if they were not
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    unsafe_path: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    image_mismatched: list[str] = field(default_factory=list)
    image_missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(getattr(self, k) for k in PROBLEMS)

    def to_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}

    def summary(self) -> str:
        lines = [
            f"pairs       {self.pairs}",
            f"audio ok    {self.audio_ok}",
            f"images ok   {self.images_ok} of {self.images_checked} checked"
            + (f" ({self.images_note})" if self.images_note else ""),
        ]
        for key in PROBLEMS:
            items = getattr(self, key)
            if items:
                lines.append(f"{key:<11} {len(items)}")
                lines += [f"  {p}" for p in items[:20]]
                if len(items) > 20:
                    lines.append(f"  ... {len(items) - 20} more (see --json)")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def verify_dataset(
    dataset: str | Path, *, images: bool = True, images_root: str | Path | None = None, progress: bool = False
) -> VerifyReport:
    """Re-hash every stored mixture (and image with an ``image_sha256``) against the metadata.

    Audio is compared on its decoded int16 samples (the container's bytes may differ between
    encoder versions; ``mixture_sha256`` is defined on the samples). Images are compared on
    their file bytes, like the concepts stage hashed them. ``images=False`` skips images; an
    images root that does not exist is reported as ``images_note`` and every image as missing.
    """
    from tqdm.auto import tqdm

    ds = PairsDataset.open(dataset, images_root)
    report = VerifyReport(root=str(ds.root), pairs=len(ds))
    referenced: set[Path] = set()
    rows = ds.metadata.select(["audio_path", "mixture_sha256", "image_path", "image_sha256"]).to_pylist()
    check_images = images and any(r["image_sha256"] for r in rows)
    if images and check_images:
        report.images_root = str(ds.images_root)
        if not ds.images_root.is_dir():
            report.images_note = f"images root {ds.images_root} not found"
    elif not images:
        report.images_note = "not checked (--no-images)"
    else:
        report.images_note = "no image checksums recorded"
    for row in tqdm(rows, desc="verify", unit="pair", disable=not progress):
        rel = row["audio_path"]
        try:
            path = safe_join(ds.root, rel)
        except UnsafePathError:
            report.unsafe_path.append(str(rel))
            path = None
        if path is not None:
            referenced.add(path)
            if not path.is_file():
                report.missing.append(rel)
            else:
                try:
                    digest = pcm_sha256(read_pcm16(path)[0])
                except Exception:  # any decoder error: the file is not what the metadata says
                    report.unreadable.append(rel)
                else:
                    if digest == row["mixture_sha256"]:
                        report.audio_ok += 1
                    else:
                        report.mismatched.append(rel)
        if check_images and row["image_sha256"]:
            _check_image(ds, row, report)
    report.extra = _extra_files(ds, referenced)
    if not report.ok:
        counts = ", ".join(f"{k}={len(getattr(report, k))}" for k in PROBLEMS if getattr(report, k))
        log.warning("verify %s: %s", ds.root, counts)
    return report


def _check_image(ds: PairsDataset, row: dict, report: VerifyReport) -> None:
    rel = row["image_path"]
    report.images_checked += 1
    try:
        path = safe_join(ds.images_root, rel)
    except UnsafePathError:
        report.unsafe_path.append(f"image:{rel}")
        return
    if not path.is_file():
        report.image_missing.append(rel)
        return
    try:
        digest = file_sha256(path)
    except OSError:
        report.image_missing.append(rel)
        return
    if digest == row["image_sha256"]:
        report.images_ok += 1
    else:
        report.image_mismatched.append(rel)


def _extra_files(ds: PairsDataset, referenced: set[Path]) -> list[str]:
    """Files under ``audio/`` and ``metadata/`` that neither the metadata nor the card names."""
    known = referenced | {(ds.root / layout.metadata_rel(s["index"])).resolve() for s in ds.card["shards"]}
    extra = []
    for sub in ("audio", "metadata"):
        base = ds.root / sub
        if not base.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                p = Path(dirpath) / name
                if p.resolve() not in known:
                    extra.append(p.relative_to(ds.root).as_posix())
    return sorted(extra)
