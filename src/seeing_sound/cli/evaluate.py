"""``seeing-sound evaluate``: AIS, IIS, FID and KID of folders, or of a model on benchmarks (Table 1)."""

from __future__ import annotations

import argparse

from seeing_sound.cli.common import plus_minus
from seeing_sound.cli.options import UsageError, add_config_options, config_from_args
from seeing_sound.evaluation.config import EvaluateConfig


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score generated images (FID, KID, IIS, AIS) or generate and score benchmarks (Table 1)",
        description="Score a folder of generated images against ground-truth images and audio paired by file "
        "stem (--images/--reference/--audio), or generate one image per benchmark audio with a trained model and "
        "score it (--model RUN --benchmark BENCH...). Writes OUT/summary.json, per_sample.parquet, table.md (Table "
        "1's layout beside the published rows) and samples.png; features are cached in OUT/features/.",
    )
    src = p.add_argument_group("what to score (folders, or a model on benchmarks)")
    src.add_argument("--images", help="folder of generated images")
    src.add_argument("--reference", help="folder of ground-truth images (FID, KID, IIS)")
    src.add_argument("--audio", help="folder of the audio prompts (AIS)")
    src.add_argument("--name", help="name of the folder run in the outputs (default: the --images folder name)")
    src.add_argument("--model", help="training run folder (RUN/pipeline) or pipeline folder to generate with")
    src.add_argument("--benchmark", nargs="+", metavar="BENCH", help="benchmark folders (metadata.parquet layout)")
    p.add_argument("--out", required=True, help="output folder EVAL")
    add_config_options(
        p,
        EvaluateConfig,
        metavars={"metrics": "LIST", "wav2clip": "PATH", "inception": "PATH", "clip": "ID_OR_PATH"},
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from seeing_sound.evaluation.run import evaluate_folders, evaluate_model

    cfg = config_from_args(args, EvaluateConfig)
    if args.model is not None:
        if not args.benchmark or args.images or args.reference or args.audio:
            raise UsageError("--model takes --benchmark BENCH... (not --images/--reference/--audio)")
        summary = evaluate_model(args.model, args.benchmark, out=args.out, config=cfg, progress=args.progress)
    else:
        if not args.images or args.benchmark:
            raise UsageError("pass --images DIR (with --reference/--audio), or --model RUN --benchmark BENCH...")
        summary = evaluate_folders(
            args.images,
            audio=args.audio,
            reference=args.reference,
            name=args.name,
            out=args.out,
            config=cfg,
            progress=args.progress,
        )
    for name, r in summary["benchmarks"].items():
        cells = [f"{k.upper()} {r[k]:.4g}" for k in ("fid", "iis", "ais") if r.get(k) is not None]
        if r.get("kid_mean") is not None:
            cells.append(f"KID {plus_minus(r['kid_mean'], r['kid_std'])}")
        print(f"{name}: n={r['n']} {' '.join(cells)} ({r['protocol']}; {len(r['skipped'])} files left out)")
    if summary["protocol"] == "rank":
        print(summary["note"])
    print(f"wrote {args.out}/summary.json, per_sample.parquet, table.md, samples.png")
    return 0
