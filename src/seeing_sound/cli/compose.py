"""``seeing-sound compose mix|concat|interpolate|reverb``: audio prompts for the paper's controls."""

from __future__ import annotations

from seeing_sound.cli.common import positive_int
from seeing_sound.cli.options import record_hints


def register(sub) -> None:
    p = sub.add_parser(
        "compose",
        help="build audio prompts for the paper's controls (mixing, loudness, concatenation, reverb)",
        description="Make the audio prompts of the paper's Section 4.5 "
        "from audio files, then pass them to `seeing-sound generate`.",
    )
    p.add_argument(
        "mode",
        choices=["mix", "concat", "interpolate", "reverb"],
        help="mix: superpose (Fig. 4); concat: one after another (Fig. 6); interpolate: sweep the last "
        "input's loudness (Fig. 5); reverb: add a room (Fig. 7)",
    )
    p.add_argument("inputs", nargs="+", metavar="AUDIO")
    p.add_argument("--out", required=True, help="output WAV (a folder for interpolate, or for reverb of several files)")
    p.add_argument("--lufs", type=float, nargs="+", help="target loudness per input, or one for all (default -23)")
    p.add_argument("--sample-rate", type=positive_int, default=16000)
    p.add_argument("--gap-seconds", type=float, default=0.0, help="concat: silence between sources")
    p.add_argument(
        "--sweep",
        type=float,
        nargs=2,
        default=[-40.0, -10.0],
        metavar=("FROM", "TO"),
        help="interpolate: LUFS range of the last input (default -40 -10)",
    )
    p.add_argument("--steps", type=positive_int, default=5, help="interpolate: number of files (default 5)")
    p.add_argument("--room-size", type=float, default=0.8, help="reverb: 0 (small) .. 1 (large hall)")
    p.add_argument("--wet-level", type=float, default=0.35, help="reverb: level of the reverberant signal")
    record_hints(p, {"lufs:": "--lufs:", "steps >= 2": "--steps >= 2"})
    p.set_defaults(handler=_run)


def _run(args) -> int:
    from seeing_sound.compose import compose

    for path in compose(
        args.mode,
        args.inputs,
        args.out,
        lufs=args.lufs,
        sample_rate=args.sample_rate,
        gap_seconds=args.gap_seconds,
        sweep=args.sweep,
        steps=args.steps,
        room_size=args.room_size,
        wet_level=args.wet_level,
    ):
        print(path)
    return 0
