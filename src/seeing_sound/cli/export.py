"""``seeing-sound export hf DATASET --out DIR``: Parquet shards + dataset card for the Hugging Face Hub."""

from __future__ import annotations

from seeing_sound.cli.options import add_config_options, config_from_args
from seeing_sound.hub.export import ExportConfig


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a pairs dataset for release (Hugging Face Parquet + dataset card)",
        description="Write self-contained Parquet shards (image and mixture as datasets Image()/Audio(), every "
        "metadata column, the recipe) and a README.md dataset card; `datasets.load_dataset(DIR)` loads it.",
    )
    p.add_argument("format", choices=["hf"], help="hf: Hugging Face datasets Parquet")
    p.add_argument("dataset", metavar="DATASET", help="a pairs dataset from `sonify`")
    p.add_argument("--out", required=True, metavar="DIR", help="new folder to write")
    add_config_options(
        p, ExportConfig, metavars={"min_pair_score": "X", "pair_scores": "FILE", "score_column": "COLUMN"}
    )
    p.set_defaults(handler=_run)


def _run(args) -> int:
    from seeing_sound.hub.export import export_hf

    report = export_hf(args.dataset, args.out, config_from_args(args, ExportConfig))
    kept = ""
    if report.pair_scores:
        s = report.pair_scores
        kept = f" (min pair score {s['min_pair_score']}: {s['kept']} of {s['pairs']} pairs kept)"
    print(f"{report.rows} pairs in {len(report.shards)} shards -> {report.out}{kept}")
    return 0
