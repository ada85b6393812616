"""EVAL/table.md in Table 1's layout (published rows beside ours) and EVAL/samples.png."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from seeing_sound.imaging import DecodeError, decode

#: Table 1's benchmark columns, in the paper's order
PAPER_BENCHMARKS = ("Greatest Hits", "Landscapes + ITW", "VEGAS", "VGGSound")
#: Table 1 of the paper, (FID, IIS, AIS) per benchmark column, raw-cosine AIS/IIS
PUBLISHED: dict[str, tuple[tuple[float, float, float], ...]] = {
    "Sound2Scene": ((184.2, 0.68, 0.049), (109.0, 0.71, 0.053), (94.0, 0.62, 0.048), (85.8, 0.60, 0.037)),
    "GlueGen": ((192.0, 0.58, 0.022), (234.5, 0.54, 0.051), (155.1, 0.51, 0.029), (140.0, 0.49, 0.030)),
    "AudioToken": ((190.6, 0.60, 0.053), (132.9, 0.62, 0.057), (125.8, 0.57, 0.045), (115.7, 0.55, 0.034)),
    "SonicDiffusion": ((87.3, 0.72, 0.029), (79.9, 0.75, 0.064), (126.6, 0.48, 0.038), (120.4, 0.47, 0.038)),
    "Seeing Sound": ((228.4, 0.61, 0.053), (98.5, 0.67, 0.057), (120.3, 0.54, 0.051), (103.5, 0.51, 0.043)),
}
_ALIASES = {
    "greatesthits": "Greatest Hits",
    "landscapesitw": "Landscapes + ITW",
    "landscapesanditw": "Landscapes + ITW",
    "landscapesintothewild": "Landscapes + ITW",
    "vegas": "VEGAS",
    "vggsound": "VGGSound",
    "vggsoundtest": "VGGSound",
}
RANK_WARNING = "rank protocol: AIS/IIS are rank scores (0.5 = chance), NOT comparable with raw-cosine numbers"


def paper_column(name: str) -> str | None:
    """Table 1's column for a benchmark name (``greatest-hits``, ``VGGSound``, ...), or None."""
    return _ALIASES.get(re.sub(r"[^a-z0-9]", "", name.lower()))


def _fmt(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table_markdown(results: Mapping[str, Mapping], *, label: str, protocol: str) -> str:
    """Table 1's layout: rows = models, columns = benchmark x (FID ↓, IIS ↑, AIS ↑).

    ``results``: {benchmark name: {"fid", "iis", "ais", "n", ...}}. Benchmarks that match a
    paper column sit in it (published rows beside ours); others get their own columns.
    """
    columns: list[str] = list(PAPER_BENCHMARKS)
    ours: dict[str, Mapping] = {}
    for name, r in results.items():
        col = paper_column(name) or name
        if col not in columns:
            columns.append(col)
        ours[col] = r
    header = ["model"] + [f"{c} {m}" for c in columns for m in ("FID ↓", "IIS ↑", "AIS ↑")]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for model, cells in PUBLISHED.items():
        row = [f"{model} (published)"]
        for c in columns:
            vals = cells[PAPER_BENCHMARKS.index(c)] if c in PAPER_BENCHMARKS else (None, None, None)
            row += [_fmt(vals[0], 1), _fmt(vals[1], 2), _fmt(vals[2], 3)]
        lines.append("| " + " | ".join(row) + " |")
    mark = " [rank, not comparable]" if protocol == "rank" else ""
    row = [f"**{label}** (this run{mark})"]
    for c in columns:
        r = ours.get(c, {})
        row += [_fmt(r.get("fid"), 1), _fmt(r.get("iis"), 2 if protocol == "raw" else 3), _fmt(r.get("ais"), 3)]
    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def write_table(path: Path, summary: Mapping, *, label: str) -> str:
    """EVAL/table.md: the table and the notes that say what is comparable."""
    protocol = summary["protocol"]
    results = summary["benchmarks"]
    parts = ["# Table 1 layout: published rows and this run", ""]
    if protocol == "rank":
        parts += [f"> **{RANK_WARNING}.**", ""]
    parts += [table_markdown(results, label=label, protocol=protocol), ""]
    models = summary.get("models", {})
    notes = [
        "Published rows are copied from Table 1 of the paper (raw cosines; its in-/out-of-sample colouring is "
        "not reproduced). Only the row marked *this run* was computed here.",
        f"Protocol: {protocol}; Inception resize policy: {summary.get('resize')}; seed {summary.get('seed')}.",
    ]
    for name, r in results.items():
        col = paper_column(name)
        where = f" (Table 1 column {col})" if col else " (no Table 1 column)"
        kid = r.get("kid_mean")
        kid_text = f", KID {kid:.4f} ± {r.get('kid_std') or 0:.4f}" if kid is not None else ""
        notes.append(f"{name}{where}: N = {r['n']} scored, {len(r.get('skipped', []))} files left out{kid_text}.")
    notes.append(
        "FID is biased upwards at small N (the paper's VGGSound uses ~1K items; FID between two sets of "
        "1K is not comparable with FID at 50K). It also depends on the resize policy (clean vs legacy)."
    )
    for role, info in models.items():
        notes.append(f"{role}: {info.get('model')} ({info.get('revision')})")
    parts += [f"- {n}" for n in notes]
    text = "\n".join(parts) + "\n"
    path.write_text(text)
    return text


def contact_sheet(path: Path, rows: Sequence[tuple[str, Path | None, Path]], cell: int = 128) -> None:
    """samples.png: per row ground truth | generated, labelled with the audio's name (``(label, gt, gen)``)."""
    from PIL import Image

    from seeing_sound.model.samples import image_grid

    cells, labels = [], []
    for label, gt, gen in rows:
        for role, file in (("gt", gt), ("gen", gen)):
            if file is None:
                im = Image.new("RGB", (cell, cell), "lightgray")
            else:
                try:
                    im = decode(file).image  # the one decoder: 16-bit, EXIF and alpha as every stage sees them
                except (OSError, DecodeError):
                    im = Image.new("RGB", (cell, cell), "lightgray")
                im.thumbnail((cell, cell))
            cells.append(im)
            labels.append(f"{role}: {label}")
    if cells:
        image_grid(cells, cols=4, labels=labels, min_cell=cell).save(path)
