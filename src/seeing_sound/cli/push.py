"""``seeing-sound push DATASET_OR_RUN --repo ORG/NAME``: upload a pairs dataset or a trained model to the Hub."""

from __future__ import annotations

from seeing_sound.cli.options import add_config_options, config_from_args
from seeing_sound.hub.push import PushConfig


def register(sub) -> None:
    p = sub.add_parser(
        "push",
        help="upload a pairs dataset or a trained run to the Hugging Face Hub",
        description="A dataset is exported (Parquet + dataset card) and pushed as a dataset repo; a run is pushed as "
        "a diffusers-style AudioPixArtPipeline folder with a model card. The token is huggingface_hub's own "
        "(HF_TOKEN or `hf auth login`).",
    )
    p.add_argument("source", metavar="DATASET_OR_RUN")
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="repository id on the Hub")
    add_config_options(p, PushConfig)
    p.set_defaults(handler=_run)


def _run(args) -> int:
    from seeing_sound.hub.push import push

    done = push(args.source, args.repo, config_from_args(args, PushConfig))
    print(f"pushed {len(done['files'])} files to {done['repo_type']} repo {done['repo']}")
    return 0
