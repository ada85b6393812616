"""``seeing-sound app --model RUN``: the Gradio web UI (extra ``[app]``), served on 127.0.0.1 by default."""

from __future__ import annotations

from seeing_sound.app.core import AppConfig
from seeing_sound.cli.options import add_config_options, config_from_args


def register(sub) -> None:
    p = sub.add_parser(
        "app",
        help="web UI: mix sources, set loudness and space, generate images (needs seeing-sound[app])",
        description="Upload/record audio or pick pool chunks, mix two sources with a loudness slider each, choose "
        "an acoustic space (preset or IR file), superpose or concatenate, and generate with a trained model.",
    )
    p.add_argument("--model", required=True, help="a training run folder (uses RUN/pipeline) or a pipeline folder")
    p.add_argument("--pool", metavar="POOL", help="offer this pool's chunks as sources")
    add_config_options(p, AppConfig)
    p.set_defaults(handler=_run)


def _run(args) -> int:
    from seeing_sound.app.ui import launch

    launch(args.model, config_from_args(args, AppConfig), args.pool)
    return 0
