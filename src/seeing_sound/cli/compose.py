"""``seeing-sound compose mix|concat|interpolate|reverb``: audio prompts for the paper's controls."""

from __future__ import annotations

from seeing_sound.cli.options import add_config_options, config_from_args, record_hints
from seeing_sound.compose import ComposeConfig


def register(sub) -> None:
    p = sub.add_parser(
        "compose",
        help="build audio prompts for the paper's controls (mixing, loudness, concatenation, reverb)",
        description="Make the audio prompts of the paper's Section 4.5 from audio files and/or pool chunks, "
        "then pass them to `seeing-sound generate`. Each WAV gets a recipe .json with the levels measured on it.",
    )
    p.add_argument(
        "mode",
        choices=["mix", "concat", "interpolate", "reverb"],
        help="mix: superpose (Fig. 4); concat: one after another (Fig. 6); interpolate: sweep the last "
        "source's loudness (Fig. 5); reverb: put the sources in an acoustic space (Fig. 7)",
    )
    p.add_argument("inputs", nargs="*", metavar="AUDIO", help="audio files (any rate and channels)")
    p.add_argument("--out", required=True, help="output WAV (a folder for interpolate)")
    p.add_argument("--lufs", type=float, nargs="+", help="target loudness per source, or one for all (default -23)")
    g = p.add_argument_group("sources from a pool (after the files)")
    g.add_argument("--pool", metavar="POOL", help="audio pool from `pool build`")
    g.add_argument("--chunks", type=int, nargs="+", default=[], metavar="ID", help="pool chunk ids")
    g.add_argument("--random", type=int, default=0, metavar="N", help="draw N chunks at random (seeded by --seed)")
    g.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="TEXT",
        help="a chunk retrieved for this description with the pool's encoder (repeatable)",
    )
    g.add_argument("--encoder", help="which of the pool's embeddings to search (default: the first)")
    g.add_argument("--device", default="auto", help="device of the query encoder")
    add_config_options(p, ComposeConfig, metavars={"sweep": ("FROM", "TO")})
    record_hints(p, {"lufs:": "--lufs:", "chunks:": "--chunks:", "random:": "--random:"})
    p.set_defaults(handler=_run)


def _run(args) -> int:
    from seeing_sound.compose import compose

    for path in compose(
        args.mode,
        args.inputs,
        args.out,
        config_from_args(args, ComposeConfig),
        lufs=args.lufs,
        pool=args.pool,
        chunks=args.chunks,
        random=args.random,
        query=args.query,
        encoder=args.encoder,
        device=args.device,
    ):
        print(path)
    return 0
