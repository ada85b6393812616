"""A folder of real pairs -> import items: (image, audio) files matched by stem, or videos.

Files are grouped by their path without extension (``cats/001.jpg`` + ``cats/001.wav`` -> the pair
``cats/001``). A group is a pair (one image, one audio file), a video (one video file, nothing else)
or, anything else, an error row: an image or audio file alone (``unpaired_image``,
``unpaired_audio``) or a stem with several candidates (``ambiguous``). Files of other types are
ignored and counted. The pair's id is the group's path with ``/`` -> ``__`` (file-name safe).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from seeing_sound.audio.io import AUDIO_EXTENSIONS
from seeing_sound.bench.sources import VIDEO_EXTENSIONS, safe_id, walk_files
from seeing_sound.studies.common import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class ImportItem:
    """One input: ``kind`` 'pair' (``image`` + ``audio``) or 'video' (``video``); paths relative to SRC."""

    pair_id: str
    kind: str
    image: str = ""
    audio: str = ""
    video: str = ""
    label: str = ""  # the folder the files are in ('' at the top)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Listing:
    items: list[ImportItem]
    skipped: list[dict]  # error rows (status 'skipped') for unpaired and ambiguous groups
    ignored: int  # files of no image, audio or video type


def list_pairs(src: str | Path) -> Listing:
    """Group the files under ``src`` by stem (see the module docs); sorted by pair id."""
    root = Path(src)
    if not root.is_dir():
        raise FileNotFoundError(f"SRC {src} is not a folder")
    groups: dict[str, dict[str, list[str]]] = {}
    ignored = 0
    for p in walk_files(root):
        ext = p.suffix.lower()
        kind = (
            "image"
            if ext in IMAGE_EXTENSIONS
            else "video"
            if ext in VIDEO_EXTENSIONS
            else "audio"
            if ext in AUDIO_EXTENSIONS
            else None
        )
        if kind is None:
            ignored += 1
            continue
        rel = p.relative_to(root).as_posix()
        key = rel[: -len(p.suffix)] if p.suffix else rel
        groups.setdefault(key, {"image": [], "audio": [], "video": []})[kind].append(rel)
    items: list[ImportItem] = []
    skipped: list[dict] = []
    used: dict[str, int] = {}
    for key in sorted(groups):
        g = groups[key]
        pid = safe_id(key)
        if pid in used:  # two stems that differ only in odd characters
            used[pid] += 1
            pid = f"{pid}-{used[pid]}"
        else:
            used[pid] = 0
        label = key.rsplit("/", 1)[0] if "/" in key else ""
        n_img, n_aud, n_vid = len(g["image"]), len(g["audio"]), len(g["video"])
        files = ", ".join(sorted(g["image"] + g["audio"] + g["video"]))
        if (n_img, n_aud, n_vid) == (1, 1, 0):
            items.append(ImportItem(pid, "pair", image=g["image"][0], audio=g["audio"][0], label=label))
        elif (n_img, n_aud, n_vid) == (0, 0, 1):
            items.append(ImportItem(pid, "video", video=g["video"][0], label=label))
        else:
            reason = "unpaired_image" if (n_img, n_aud, n_vid) == (1, 0, 0) else "ambiguous"
            reason = "unpaired_audio" if (n_img, n_aud, n_vid) == (0, 1, 0) else reason
            detail = {
                "unpaired_image": "no audio file with the same stem",
                "unpaired_audio": "no image file with the same stem",
            }.get(reason, f"several files share the stem: {files}")
            skipped.append(error_row(pid, files, "skipped", reason, detail))
    return Listing(items, skipped, ignored)


def error_row(pair_id: str, source: str, status: str, reason: str, detail: str) -> dict:
    return {"pair_id": pair_id, "source": source, "status": status, "reason": reason, "detail": detail[:300]}
