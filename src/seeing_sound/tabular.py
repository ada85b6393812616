"""Small readers for the user-supplied tables (descriptions, concepts files)."""

from __future__ import annotations

import json
from pathlib import Path

from seeing_sound.errors import SeeingSoundError


def read_jsonl(path: str | Path) -> list:
    """Every non-empty line of a JSON Lines file, parsed; a bad line names the file and line."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise SeeingSoundError(f"{path} line {n}: not valid JSON ({exc.msg})") from None
    return rows
