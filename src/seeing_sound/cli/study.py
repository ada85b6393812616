"""``seeing-sound study loudness|memorization|ssr``: the appendix studies (CSV + PNG + Markdown each)."""

from __future__ import annotations

import argparse

from seeing_sound.cli.common import positive_int


def _runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:N]")
    p.add_argument("--batch-size", type=positive_int, default=None, help="model batch size")


def _deltas(text: str):
    from seeing_sound.studies.common import parse_deltas

    try:
        return parse_deltas(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub) -> None:
    p = sub.add_parser("study", help="appendix studies: loudness retention, memorization, SSR")
    psub = p.add_subparsers(dest="study_command", metavar="STUDY")
    psub.required = True

    lo = psub.add_parser(
        "loudness",
        help="A.8: k-NN accuracy of gain-shifted audio against the originals in AST space",
        description="Each audio file under AUDIO is its own class. Originals are embedded with AST; every gain "
        "shift in --deltas is applied in the signal domain, re-embedded and classified by k-NN against the "
        "originals. Writes OUT/loudness.csv, loudness_examples.csv, loudness.png, loudness.md.",
    )
    lo.add_argument("audio", metavar="AUDIO", help="folder of audio files (e.g. a pool's source sounds)")
    lo.add_argument("--out", required=True, help="output folder")
    lo.add_argument(
        "--ast", default=None, help="AST hub id or folder (default MIT/ast-finetuned-audioset-10-10-0.4593)"
    )
    lo.add_argument("--deltas", type=_deltas, default="-30:30:3", help="gain shifts in dB: START:STOP:STEP or a,b,c")
    lo.add_argument("--k", type=positive_int, default=1, help="neighbours of the k-NN (default 1)")
    lo.add_argument("--pooling", choices=("mean", "cls"), default="mean", help="AST tokens -> one vector (mean)")
    lo.add_argument("--max-seconds", type=float, default=10.0, help="audio kept per example (default 10)")
    lo.add_argument("--max-examples", type=positive_int, default=32, help="examples used (default 32)")
    lo.add_argument("--clip", action="store_true", help="clip shifted audio to [-1, 1] as a 16-bit file would")
    _runtime_args(lo)
    lo.set_defaults(handler=_loudness)

    me = psub.add_parser(
        "memorization",
        help="A.6: nearest training image of every generated image (CLIP cosine or perceptual hash)",
        description="For every image under GENERATED, its nearest image in TRAINING (a folder, or a pairs dataset); "
        "the share above --threshold and a grid of the closest pairs. Writes OUT/memorization.csv, .png, .md.",
    )
    me.add_argument("generated", metavar="GENERATED", help="folder of generated images")
    me.add_argument("training", metavar="TRAINING", help="folder of training images, or a pairs dataset")
    me.add_argument("--out", required=True, help="output folder")
    me.add_argument("--method", choices=("clip", "phash"), default="clip", help="similarity (default clip)")
    me.add_argument("--clip", dest="clip_model", default="openai/clip-vit-base-patch32", help="CLIP hub id or folder")
    me.add_argument("--threshold", type=float, default=None, help="memorized above this (clip 0.95, phash 0.875)")
    me.add_argument("--grid", type=positive_int, default=8, help="closest pairs shown (default 8)")
    _runtime_args(me)
    me.set_defaults(handler=_memorization)

    ss = psub.add_parser(
        "ssr",
        help="candidate-set sizes and chunk usage with and without SSR over a pool",
        description="Algorithm 1's candidate set for each concept with and without the signed square root, the "
        "union over concepts and the chunks used by --draws retrievals per concept. Writes OUT/ssr.csv, "
        "ssr_summary.csv, ssr.png, ssr.md.",
    )
    ss.add_argument("--pool", required=True, help="audio pool embedded with `seeing-sound pool embed`")
    ss.add_argument("--concepts", required=True, help="text file (one concept a line) or a concept JSONL/CSV/Parquet")
    ss.add_argument("--out", required=True, help="output folder")
    ss.add_argument("--encoder", choices=("clap", "text"), default="clap", help="query encoder (default clap)")
    ss.add_argument("--model", default=None, help="encoder hub id or folder (default: the encoder's)")
    ss.add_argument("--topk", type=positive_int, default=100, help="k of the threshold mean(topk) (default 100)")
    ss.add_argument("--draws", type=positive_int, default=10, help="retrievals per concept (default 10)")
    ss.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    ss.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:N]")
    ss.set_defaults(handler=_ssr)


def _loudness(args: argparse.Namespace) -> int:
    from seeing_sound.builders import DEFAULT_AST
    from seeing_sound.studies import loudness_study

    deltas = _deltas(args.deltas) if isinstance(args.deltas, str) else args.deltas
    report = loudness_study(
        args.audio,
        args.out,
        ast=args.ast or DEFAULT_AST,
        deltas=deltas,
        k=args.k,
        pooling=args.pooling,
        max_seconds=args.max_seconds,
        max_examples=args.max_examples,
        clip=args.clip,
        device=args.device,
        batch_size=args.batch_size or 8,
    )
    worst = min(report.rows, key=lambda r: r["accuracy"])
    print(
        f"loudness study: {len(report.examples)} examples x {len(report.rows)} gain shifts; lowest accuracy "
        f"{100 * worst['accuracy']:.1f}% at {worst['delta_db']:+g} dB -> {report.out}"
    )
    return 0


def _memorization(args: argparse.Namespace) -> int:
    from seeing_sound.studies import memorization_study

    report = memorization_study(
        args.generated,
        args.training,
        args.out,
        method=args.method,
        model=args.clip_model,
        threshold=args.threshold,
        grid=args.grid,
        device=args.device,
        batch_size=args.batch_size or 32,
    )
    above = sum(r["above_threshold"] for r in report.rows)
    print(
        f"memorization ({report.method}): {above} of {len(report.rows)} generated images "
        f"({100 * report.share_above:.1f}%) are >= {report.threshold:.3f} to a training image -> {report.out}"
    )
    return 0


def _ssr(args: argparse.Namespace) -> int:
    from seeing_sound.studies import ssr_study

    report = ssr_study(
        args.pool,
        args.concepts,
        args.out,
        encoder=args.encoder,
        model=args.model,
        topk=args.topk,
        draws=args.draws,
        seed=args.seed,
        device=args.device,
    )
    s = {r["mode"]: r for r in report.summary}
    print(
        f"ssr study: {len(report.concepts)} concepts; mean |I| {s['plain']['mean_candidates']:.2f} without SSR, "
        f"{s['ssr']['mean_candidates']:.2f} with; chunks used {s['plain']['unique_chunks_used']} vs "
        f"{s['ssr']['unique_chunks_used']} -> {report.out}"
    )
    return 0
