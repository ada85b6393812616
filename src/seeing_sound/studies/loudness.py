"""Loudness retention in AST embeddings (paper A.8, Fig. 15).

A small set of audio examples, each its own class, is embedded by AST at its original loudness.
Then, for each gain shift Δ (dB), every example is shifted by Δ in the signal domain
(``x * 10**(Δ/20)``), embedded again and classified by k-NN (cosine) against the originals.
If loudness left the embedding untouched the accuracy would stay at 1 for every Δ; the
further it falls as |Δ| grows, the more loudness the embedding retains.

An AST embedding is a vector time series (``(tokens, D)``); for k-NN it is summarized as the mean
over its tokens (``pooling='mean'``) or its [CLS] token (``'cls'``), then L2-normalized.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seeing_sound.audio.io import AUDIO_EXTENSIONS, BadAudio, stream_mono
from seeing_sound.builders import DEFAULT_AST
from seeing_sound.engine import command_run
from seeing_sound.studies.common import find_files, markdown_table, pyplot, save_figure, write_csv, write_text

log = logging.getLogger(__name__)

DEFAULT_DELTAS = tuple(float(d) for d in range(-30, 31, 3))
POOLINGS = ("mean", "cls")


@dataclass
class LoudnessReport:
    out: Path
    examples: list[str]
    rows: list[dict]  # one per Δ: delta_db, accuracy, mean_cosine, ...
    skipped: dict[str, str] = field(default_factory=dict)  # file -> reason

    @property
    def files(self) -> dict[str, Path]:
        return {k: self.out / v for k, v in (("csv", "loudness.csv"), ("plot", "loudness.png"), ("md", "loudness.md"))}


def summarize_tokens(tokens: np.ndarray, pooling: str = "mean") -> np.ndarray:
    """AST tokens float (n, T, D) -> unit vectors float32 (n, D): mean over tokens or the [CLS] token."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    x = tokens.mean(axis=1) if pooling == "mean" else tokens[:, 0]
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(n > 0, n, 1.0)).astype(np.float32)


def knn_predict(queries: np.ndarray, refs: np.ndarray, k: int = 1) -> np.ndarray:
    """Class (row of ``refs``, one reference per class) of each unit query by k-NN, cosine.

    With one reference per class, each of the k nearest references votes for its own class with
    weight = its cosine; k = 1 is the nearest reference. Ties go to the lower class index.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    sims = queries @ refs.T  # (q, c)
    k = min(k, refs.shape[0])
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    votes = np.zeros_like(sims)
    np.put_along_axis(votes, nearest, np.take_along_axis(sims, nearest, axis=1), axis=1)
    return np.argmax(votes, axis=1)


def apply_gain(wave: np.ndarray, delta_db: float, clip: bool = False) -> np.ndarray:
    """``wave * 10**(delta_db/20)``; ``clip`` limits the result to [-1, 1] as a fixed-point file would."""
    y = np.asarray(wave, dtype=np.float32) * np.float32(10.0 ** (delta_db / 20.0))
    return np.clip(y, -1.0, 1.0) if clip else y


def load_examples(
    folder: str | Path, sample_rate: int, max_seconds: float, max_examples: int | None
) -> tuple[list[str], list[np.ndarray], dict[str, str]]:
    """Mono waves of the audio files under ``folder`` (first ``max_seconds``), their names, and skipped files."""
    root = Path(folder)
    names, waves, skipped = [], [], {}
    limit = round(max_seconds * sample_rate)
    for path in find_files(root, AUDIO_EXTENSIONS):
        name = path.relative_to(root).as_posix() if root.is_dir() else path.name
        try:
            got, n = [], 0
            for block in stream_mono(path, sample_rate):
                got.append(block)
                n += block.size
                if n >= limit:
                    break
        except BadAudio as exc:
            skipped[name] = exc.reason
            continue
        wave = np.concatenate(got)[:limit] if got else np.zeros(0, np.float32)
        if not wave.size or not np.any(wave):
            skipped[name] = "silent"
            continue
        names.append(name)
        waves.append(wave)
        if max_examples is not None and len(waves) == max_examples:
            break
    return names, waves, skipped


def loudness_study(
    audio: str | Path,
    out: str | Path,
    *,
    ast: str = DEFAULT_AST,
    deltas: Sequence[float] = DEFAULT_DELTAS,
    k: int = 1,
    pooling: str = "mean",
    max_seconds: float = 10.0,
    max_examples: int | None = 32,
    clip: bool = False,
    device: str = "auto",
    batch_size: int = 8,
    encoder=None,
) -> LoudnessReport:
    """Run the A.8 study on the audio files under ``audio``; write loudness.csv/.png/.md (+ per-example CSV).

    ``encoder``: an already loaded :class:`~seeing_sound.encoders.ast.AstEncoder` (else ``ast`` is loaded).
    """
    from seeing_sound.builders import resolve_device
    from seeing_sound.encoders.ast import load_ast

    if not deltas:
        raise ValueError("deltas must hold at least one gain shift")
    with command_run("study loudness", out, inputs={"audio": audio}):
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        enc = encoder or load_ast(ast, device=str(resolve_device(device)))
        names, waves, skipped = load_examples(audio, enc.sampling_rate, max_seconds, max_examples)
        if len(waves) < 2:
            raise ValueError(
                f"the loudness study needs at least 2 usable audio examples under {audio}, found {len(waves)}"
            )
        log.info("loudness study: %d examples x %d gain shifts", len(waves), len(deltas))
        refs = summarize_tokens(enc.encode(waves, batch_size=batch_size), pooling)
        truth = np.arange(len(waves))
        rows, per_example = [], []
        for delta in deltas:
            shifted = summarize_tokens(
                enc.encode([apply_gain(w, delta, clip) for w in waves], batch_size=batch_size), pooling
            )
            pred = knn_predict(shifted, refs, k)
            cos_own = np.sum(shifted * refs, axis=1)
            sims = shifted @ refs.T
            rank = 1 + np.sum(sims > cos_own[:, None], axis=1)  # 1 = its own original is the nearest
            rows.append(
                {
                    "delta_db": float(delta),
                    "accuracy": float(np.mean(pred == truth)),
                    "mean_cosine_to_original": float(np.mean(cos_own)),
                    "mean_rank_of_original": float(np.mean(rank)),
                    "examples": len(waves),
                }
            )
            per_example += [
                {
                    "delta_db": float(delta),
                    "example": names[i],
                    "predicted": names[int(pred[i])],
                    "correct": bool(pred[i] == i),
                    "cosine_to_original": float(cos_own[i]),
                }
                for i in range(len(waves))
            ]
        write_csv(out / "loudness.csv", rows, list(rows[0]))
        write_csv(out / "loudness_examples.csv", per_example, list(per_example[0]))
        report = LoudnessReport(out, names, rows, skipped)
        _plot(report, k, pooling, enc.name_or_path)
        write_text(out / "loudness.md", _summary(report, k, pooling, enc.name_or_path, clip))
        return report


def _plot(report: LoudnessReport, k: int, pooling: str, model: str) -> None:
    plt = pyplot()
    d = [r["delta_db"] for r in report.rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(d, [100 * r["accuracy"] for r in report.rows], "o-", color="tab:blue", label="k-NN accuracy")
    ax.set_xlabel("gain shift Δ (dB)")
    ax.set_ylabel("accuracy (%)", color="tab:blue")
    ax.set_ylim(-3, 103)
    ax.axvline(0, color="0.7", lw=0.8, zorder=0)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(
        d,
        [r["mean_cosine_to_original"] for r in report.rows],
        "s--",
        color="tab:orange",
        ms=4,
        label="cosine to original",
    )
    ax2.set_ylabel("mean cosine to original", color="tab:orange")
    lines = ax.get_lines()[:1] + ax2.get_lines()
    ax.legend(lines, [str(line.get_label()) for line in lines], loc="lower center", fontsize=8)
    ax.set_title(f"Loudness retention: {len(report.examples)} examples, {k}-NN on {pooling}-pooled AST", fontsize=10)
    fig.text(0.01, -0.02, f"model: {model}", fontsize=7, color="0.4")
    save_figure(fig, report.out / "loudness.png")


def _summary(report: LoudnessReport, k: int, pooling: str, model: str, clip: bool) -> str:
    rows = report.rows
    worst = min(rows, key=lambda r: r["accuracy"])
    table = markdown_table(
        [
            (
                f"{r['delta_db']:+g}",
                f"{100 * r['accuracy']:.1f}%",
                f"{r['mean_cosine_to_original']:.4f}",
                f"{r['mean_rank_of_original']:.2f}",
            )
            for r in rows
        ],
        ["Δ (dB)", "k-NN accuracy", "cosine to original", "rank of original"],
    )
    skipped = ", ".join(f"{k_} ({v})" for k_, v in sorted(report.skipped.items())) or "none"
    return (
        "# Loudness retention in AST embeddings (paper A.8, Fig. 15)\n\n"
        f"- examples: {len(report.examples)}, each its own class; skipped files: {skipped}\n"
        f"- encoder: `{model}`; embedding: {pooling} over AST tokens, L2-normalized; classifier: {k}-NN (cosine)\n"
        f"- gain shift applied in the signal domain (x · 10^(Δ/20)){', clipped to [-1, 1]' if clip else ''}\n"
        f"- lowest accuracy: {100 * worst['accuracy']:.1f}% at Δ = {worst['delta_db']:+g} dB\n\n"
        "Accuracy that falls as |Δ| grows means the embedding moves with loudness, i.e. retains it.\n\n"
        f"{table}\n\n![accuracy vs gain shift](loudness.png)\n"
    )
