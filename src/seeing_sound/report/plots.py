"""The summary's plots as small inline SVG written by hand: no plotting library, same data, same bytes.

Every string that reaches the SVG goes through ``html.escape``; numbers are formatted here.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

W, H = 360, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 40
BAR = "#4c72b0"
DOT = "#dd8452"


def _t(value) -> str:
    return html.escape(str(value), quote=True)


def _frame(title: str, xlabel: str, ylabel: str, body: str, note: str = "") -> str:
    note_svg = f'<text x="{W - RIGHT}" y="{TOP - 8}" text-anchor="end" class="note">{_t(note)}</text>' if note else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="{_t(title)}"><title>{_t(title)}</title>'
        f'<text x="{LEFT}" y="{TOP - 10}" class="title">{_t(title)}</text>{note_svg}'
        f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" class="axis"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" class="axis"/>'
        f'<text x="{(LEFT + W - RIGHT) / 2:g}" y="{H - 6}" text-anchor="middle" class="label">{_t(xlabel)}</text>'
        f'<text x="12" y="{(TOP + H - BOTTOM) / 2:g}" text-anchor="middle" class="label" '
        f'transform="rotate(-90 12 {(TOP + H - BOTTOM) / 2:g})">{_t(ylabel)}</text>{body}</svg>'
    )


def _empty(title: str, reason: str) -> str:
    return _frame(title, "", "", f'<text x="{W / 2:g}" y="{H / 2:g}" text-anchor="middle">{_t(reason)}</text>')


def int_bins(counts: Mapping[int, int], max_bars: int = 24) -> tuple[list[str], list[int]]:
    """Bars for a histogram of integers ``{value: count}``: one per value from the smallest to the
    largest when that is at most ``max_bars`` values, else powers of two (1, 2-3, 4-7, ...; 0 alone)."""
    if not counts:
        return [], []
    lo, hi = min(counts), max(counts)
    if hi - lo < max_bars:
        values = range(lo, hi + 1)
        return [str(v) for v in values], [int(counts.get(v, 0)) for v in values]
    labels, bars = [], []
    if counts.get(0):
        labels.append("0")
        bars.append(int(counts[0]))
    edge = 1
    while edge <= hi:
        top = 2 * edge - 1
        labels.append(str(edge) if top == edge else f"{edge}-{top}")
        bars.append(sum(int(c) for v, c in counts.items() if edge <= v <= top))
        edge *= 2
    return labels, bars


def bars_svg(title: str, labels: Sequence[str], counts: Sequence[int], xlabel: str, note: str = "") -> str:
    """A bar chart: one bar per label, heights ``counts`` (a y axis from 0 to the largest)."""
    if not counts or max(counts) <= 0:
        return _empty(title, "nothing recorded")
    top = max(counts)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    step = plot_w / len(counts)
    every = max(1, -(-len(labels) // 12))  # at most ~12 tick labels
    parts = [
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end" class="tick">{top}</text>',
        f'<text x="{LEFT - 4}" y="{H - BOTTOM}" text-anchor="end" class="tick">0</text>',
    ]
    for k, (label, c) in enumerate(zip(labels, counts, strict=True)):
        h = plot_h * c / top
        x = LEFT + k * step
        parts.append(
            f'<rect x="{x + step * 0.1:.1f}" y="{H - BOTTOM - h:.1f}" width="{step * 0.8:.1f}" height="{h:.1f}" '
            f'fill="{BAR}"><title>{_t(label)}: {c}</title></rect>'
        )
        if k % every == 0:
            tx = f"{x + step / 2:.1f}"
            parts.append(f'<text x="{tx}" y="{H - BOTTOM + 13}" text-anchor="middle" class="tick">{_t(label)}</text>')
    return _frame(title, xlabel, "count", "".join(parts), note)


def scatter_svg(title: str, xs: Sequence[float], ys: Sequence[float], xlabel: str, ylabel: str, note: str = "") -> str:
    """Points (x, y) on equal axes with the diagonal y = x drawn dashed."""
    if not len(xs):
        return _empty(title, "nothing recorded")
    lo = float(min(min(xs), min(ys)))
    hi = float(max(max(xs), max(ys)))
    lo, hi = (lo - 1.0, hi + 1.0) if hi - lo < 2.0 else (lo, hi)
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(v: float) -> float:
        return LEFT + plot_w * (v - lo) / (hi - lo)

    def py(v: float) -> float:
        return H - BOTTOM - plot_h * (v - lo) / (hi - lo)

    dots = "".join(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2"/>' for x, y in zip(xs, ys, strict=True))
    parts = [
        f'<line x1="{px(lo):.1f}" y1="{py(lo):.1f}" x2="{px(hi):.1f}" y2="{py(hi):.1f}" class="diag"/>',
        f'<g fill="{DOT}" fill-opacity="0.55">{dots}</g>',
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end" class="tick">{hi:.0f}</text>',
        f'<text x="{LEFT - 4}" y="{H - BOTTOM}" text-anchor="end" class="tick">{lo:.0f}</text>',
        f'<text x="{LEFT}" y="{H - BOTTOM + 13}" text-anchor="middle" class="tick">{lo:.0f}</text>',
        f'<text x="{W - RIGHT}" y="{H - BOTTOM + 13}" text-anchor="middle" class="tick">{hi:.0f}</text>',
    ]
    return _frame(title, xlabel, ylabel, "".join(parts), note)
