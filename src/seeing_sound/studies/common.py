"""What every study shares: its output folder (CSV + PNG + Markdown), lazy matplotlib, file discovery."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from seeing_sound.engine.shards import atomic_write

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg back end (no display needed), or an ImportError with the install hint."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - the studies extra
        raise ImportError("study plots need matplotlib: pip install 'seeing-sound[studies]'") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """``rows`` as a CSV with a header (floats as written by ``repr``, i.e. round-trip exact); atomic."""
    path = Path(path)
    with atomic_write(path, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path


def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return path


def save_figure(fig: Any, path: str | Path, dpi: int = 150) -> Path:
    """Save a matplotlib figure as PNG atomically, then close it."""
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return path


def markdown_table(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def find_files(root: str | Path, extensions: Iterable[str]) -> list[Path]:
    """Files with one of ``extensions`` under ``root`` (a folder, walked; or one file), sorted; hidden ones skipped."""
    root = Path(root)
    exts = {e.lower() for e in extensions}
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in exts]
    return sorted(found)


def parse_deltas(text: str) -> tuple[float, ...]:
    """``"-30:30:3"`` (start:stop:step, both ends included) or ``"-6,0,6"`` -> gains in dB."""
    text = text.strip()
    if ":" in text:
        try:
            start, stop, step = (float(v) for v in text.split(":"))
        except ValueError:
            raise ValueError(f"deltas must be START:STOP:STEP or a comma list, got {text!r}") from None
        if step <= 0 or stop < start:
            raise ValueError(f"deltas {text!r}: need STEP > 0 and STOP >= START")
        n = round((stop - start) / step)
        values = [start + i * step for i in range(n + 1) if start + i * step <= stop + 1e-9]
    else:
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"deltas must be START:STOP:STEP or a comma list, got {text!r}") from None
    if not values:
        raise ValueError(f"deltas {text!r} is empty")
    return tuple(sorted({round(v, 6) for v in values}))
