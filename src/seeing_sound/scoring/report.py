"""The ``score`` report: summary numbers, a histogram (``histogram.svg``) and ``report.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from seeing_sound.engine.shards import atomic_write

#: the quantiles report.json gives (a threshold is usually one of them)
QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


def score_stats(values: np.ndarray) -> dict[str, Any]:
    """n, mean, std, min, max and :data:`QUANTILES` of the finite scores (numbers None when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        none = {str(q): None for q in QUANTILES}
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "quantiles": none}
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
        "quantiles": {str(q): float(np.quantile(v, q)) for q in QUANTILES},
    }


def histogram(values: np.ndarray, bins: int) -> dict[str, list]:
    """``bins`` equal-width bins from the smallest to the largest score: edges (bins + 1) and counts."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"edges": [], "counts": []}
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        lo, hi = lo - 0.5e-3, hi + 0.5e-3  # one value: one visible bar
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def write_markdown(out: Path, summary: dict) -> None:
    """``histogram.svg`` (the pair scores' histogram) and ``report.md`` (counts, quantiles, models)."""
    from seeing_sound.report.plots import bars_svg

    hist = summary["histogram"]
    labels = [f"{e:.3f}" for e in hist["edges"][:-1]]
    svg = bars_svg(
        "pair_score (AIS)", labels, hist["counts"], "pair_score, bin's lower edge",
        note=f"{summary['scored']} of {summary['pairs']} pairs",
    )  # fmt: skip
    with atomic_write(out / "histogram.svg", "w") as fh:
        fh.write(svg)
    s = summary["pair_score"]

    def num(x) -> str:
        return "–" if x is None else f"{x:.4f}"

    lines = [
        "# Pair scores",
        "",
        f"Dataset `{summary['dataset']}`: {summary['scored']} of {summary['pairs']} pairs scored, "
        f"{summary['failed']} failed.",
        "",
        "`pair_score` is the AIS of each pair: the cosine of its mixture's Wav2CLIP embedding and its image's "
        f"CLIP embedding, models `{summary['score_key']}`.",
        "",
        "| n | mean | std | min | " + " | ".join(f"q{q}" for q in s["quantiles"]) + " | max |",
        "| --- " * (5 + len(s["quantiles"])) + "|",
        f"| {s['n']} | {num(s['mean'])} | {num(s['std'])} | {num(s['min'])} | "
        + " | ".join(num(v) for v in s["quantiles"].values())
        + f" | {num(s['max'])} |",
        "",
        "![histogram of pair_score](histogram.svg)",
        "",
    ]
    rel = summary.get("retrieval") or {}
    if rel:
        r = {k: v.get("pearson_r") for k, v in rel.items()}
        lines += [
            "Pearson correlation of `pair_score` with the stored retrieval scores (mean over the mixture's "
            f"sources): cosine {num(r.get('retrieval_cosine_mean'))}, "
            f"score after SSR {num(r.get('retrieval_score_mean'))}.",
            "",
        ]
    if summary["errors"]:
        lines += ["## Failed pairs", "", "| reason | pairs |", "| --- | --- |"]
        lines += [f"| {reason} | {n} |" for reason, n in summary["errors"].items()]
        lines.append("")
    lines += ["## Models", ""]
    for key, models in summary["keys"].items():
        named = ", ".join(f"{k}: `{m.get('model')}` ({m.get('revision')})" for k, m in sorted(models.items()))
        lines.append(f"- `{key}`{' (pair_score)' if key == summary['score_key'] else ''}: {named or 'not recorded'}")
    lines.append("")
    with atomic_write(out / "report.md", "w") as fh:
        fh.write("\n".join(lines))
