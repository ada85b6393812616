"""Does SSR widen the candidate pool? (the paper's claim for Algorithm 1's signed square root)

For a set of concepts over a pool, Algorithm 1's candidate set I (rows scoring above the mean of
the top-k) is computed with and without SSR (``t <- sign(t) sqrt|t|``). SSR is monotone, so it
never reorders chunks; but it compresses high scores, which lowers the threshold relative to
the best matches (for positive scores, mean(sqrt t) <= sqrt(mean t)), so I can only grow. The
study reports |I| per concept, the union of candidates over all concepts, and the usage of
chunks when each concept is retrieved ``draws`` times (unique chunks, entropy).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seeing_sound.engine import command_run
from seeing_sound.retrieval.stats import usage_stats
from seeing_sound.seeding import concept_seeds
from seeing_sound.studies.common import markdown_table, pyplot, save_figure, write_csv, write_text

log = logging.getLogger(__name__)

MODES = (("plain", False), ("ssr", True))


@dataclass
class SsrReport:
    out: Path
    concepts: list[dict]  # one row per concept: candidates/threshold with and without SSR
    summary: list[dict]  # one row per mode


def compare_ssr(index, queries: np.ndarray, concepts: Sequence[str], k: int, *, draws: int = 10, seed: int = 0):
    """Candidate sets of ``queries`` (Q, D) over ``index`` (a :class:`~seeing_sound.retrieval.PoolIndex`)
    with and without SSR; returns (per-concept rows, per-mode summary rows)."""
    if len(concepts) != len(queries):
        raise ValueError(f"{len(concepts)} concepts but {len(queries)} query vectors")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    per: list[dict[str, Any]] = [{"concept": c} for c in concepts]
    summary = []
    which = np.repeat(np.arange(len(concepts)), draws)
    seeds = concept_seeds(seed, [concepts[int(w)] for w in which], [i % draws for i in range(which.size)])
    for mode, flag in MODES:
        cands = index.candidate_sets(queries, k, ssr=flag)
        sizes = np.array([r.size for r in cands.rows], dtype=np.int64)
        for row, n, thr, cos in zip(per, sizes, cands.threshold, cands.cosine, strict=True):
            row[f"candidates_{mode}"] = int(n)
            row[f"threshold_{mode}"] = float(thr)
            row[f"min_cosine_{mode}"] = float(np.min(cos)) if cos.size else float("nan")
        union = np.unique(np.concatenate(cands.rows)) if cands.rows else np.zeros(0, np.int64)
        usage = usage_stats(cands.draw(which, seeds).index, pool_size=len(index))
        summary.append(
            {
                "mode": mode,
                "concepts": len(concepts),
                "k": int(k),
                "mean_candidates": float(sizes.mean()) if sizes.size else 0.0,
                "median_candidates": float(np.median(sizes)) if sizes.size else 0.0,
                "min_candidates": int(sizes.min()) if sizes.size else 0,
                "max_candidates": int(sizes.max()) if sizes.size else 0,
                "union_candidates": int(union.size),
                "retrievals": usage["retrievals"],
                "unique_chunks_used": usage["unique_chunks"],
                "usage_entropy_bits": usage["entropy_bits"],
                "effective_chunks": usage["effective_chunks"],
                "pool_size": len(index),
            }
        )
    return per, summary


def read_concepts(source: str | Path | Sequence[str]) -> list[str]:
    """Unique concept strings, in first-seen order: a list, a text file (one a line), or a concept file."""
    if not isinstance(source, (str, Path)):
        items = [str(s).strip() for s in source]
    else:
        path = Path(source)
        if path.suffix.lower() in (".txt", ".lst", "") and path.is_file():
            items = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        else:
            from seeing_sound.retrieval import read_concept_file

            items = [str(c).strip() for c in read_concept_file(path).column("concept").to_pylist() if c]
    out = list(dict.fromkeys(c for c in items if c and not c.startswith("#")))
    if not out:
        raise ValueError(f"no concepts in {source}")
    return out


def ssr_study(
    pool: str | Path,
    concepts: str | Path | Sequence[str],
    out: str | Path,
    *,
    encoder: str = "clap",
    model: str | None = None,
    topk: int = 100,
    draws: int = 10,
    seed: int = 0,
    device: str = "auto",
    encoder_obj=None,
) -> SsrReport:
    """Run :func:`compare_ssr` over a pool's stored embeddings; write ssr.csv, ssr_summary.csv, ssr.png, ssr.md."""
    from seeing_sound.retrieval import open_index

    with command_run("study ssr", out, inputs={"pool": pool}):
        names = read_concepts(concepts)
        if encoder_obj is None:
            from seeing_sound.encoders import load_encoder

            encoder_obj = load_encoder(encoder, model, device=device)
        index = open_index(pool, encoder_obj.info)
        queries = encoder_obj.embed_text(names)
        log.info("ssr study: %d concepts over %d chunks, k=%d", len(names), len(index), topk)
        per, summary = compare_ssr(index, queries, names, topk, draws=draws, seed=seed)
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "ssr.csv", per, list(per[0]))
        write_csv(out / "ssr_summary.csv", summary, list(summary[0]))
        report = SsrReport(out, per, summary)
        _plot(report, encoder_obj.info.model)
        write_text(out / "ssr.md", _summary(report, encoder_obj.info.model, seed))
        return report


def _plot(report: SsrReport, model: str) -> None:
    plt = pyplot()
    plain = np.array([r["candidates_plain"] for r in report.concepts])
    ssr = np.array([r["candidates_ssr"] for r in report.concepts])
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.0), gridspec_kw={"width_ratios": [1.1, 1]})
    top = max(int(ssr.max(initial=1)), int(plain.max(initial=1)), 1)
    a.scatter(plain, ssr, s=18, alpha=0.7, color="tab:blue")
    a.plot([0, top], [0, top], color="0.6", lw=0.8, ls="--", label="equal")
    a.set_xlabel("|I| without SSR")
    a.set_ylabel("|I| with SSR")
    a.set_title("Candidate-set size per concept", fontsize=10)
    a.legend(fontsize=8, loc="upper left")
    a.grid(alpha=0.3)
    s = {r["mode"]: r for r in report.summary}
    keys = [("mean_candidates", "mean |I|"), ("union_candidates", "union of I"), ("unique_chunks_used", "chunks used")]
    x = np.arange(len(keys))
    for off, mode, color in ((-0.2, "plain", "tab:gray"), (0.2, "ssr", "tab:blue")):
        vals = [s[mode][key] for key, _ in keys]
        bars = b.bar(x + off, vals, width=0.4, color=color, label="with SSR" if mode == "ssr" else "without SSR")
        b.bar_label(bars, labels=[f"{v:.4g}" for v in vals], fontsize=7)
    b.set_xticks(x, [label for _, label in keys])
    b.set_title(f"{len(report.concepts)} concepts, {s['ssr']['retrievals']} draws per mode", fontsize=10)
    b.legend(fontsize=8)
    b.grid(alpha=0.3, axis="y")
    fig.suptitle(f"SSR and the candidate pool (k = {s['ssr']['k']}, {s['ssr']['pool_size']} chunks)", fontsize=11)
    fig.text(0.01, -0.02, f"encoder: {model}", fontsize=7, color="0.4")
    save_figure(fig, report.out / "ssr.png")


def _summary(report: SsrReport, model: str, seed: int) -> str:
    header = ["", "mean |I|", "median |I|", "min-max |I|", "union of I", "chunks used", "usage entropy (bits)"]
    rows = [
        (
            "with SSR" if r["mode"] == "ssr" else "without SSR",
            f"{r['mean_candidates']:.2f}",
            f"{r['median_candidates']:g}",
            f"{r['min_candidates']}-{r['max_candidates']}",
            r["union_candidates"],
            f"{r['unique_chunks_used']} of {r['retrievals']}",
            f"{r['usage_entropy_bits']:.3f}",
        )
        for r in report.summary
    ]
    wider = sum(r["candidates_ssr"] > r["candidates_plain"] for r in report.concepts)
    same = sum(r["candidates_ssr"] == r["candidates_plain"] for r in report.concepts)
    s = report.summary[0]
    return (
        "# SSR and the candidate pool (Algorithm 1)\n\n"
        f"- {s['concepts']} concepts over {s['pool_size']} pool chunks; encoder `{model}`; k = {s['k']}; "
        f"{s['retrievals'] // max(1, s['concepts'])} draws per concept, seed {seed}\n"
        f"- SSR widened the candidate set of {wider} concepts, left {same} unchanged, "
        f"narrowed {len(report.concepts) - wider - same}\n\n"
        f"{markdown_table(rows, header)}\n\n![candidate sets](ssr.png)\n"
    )
