"""``seeing-sound generate AUDIO... --model RUN --out DIR``: images from sound files."""

from __future__ import annotations

from seeing_sound.cli.common import non_negative_float, positive_int
from seeing_sound.cli.options import DefaultsHelpFormatter, record_hints


def register(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate images from audio files with a trained model",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("audio", nargs="+", help="audio files (any length, any sample rate; mixed down to mono)")
    p.add_argument("--model", required=True, help="a training run folder (uses RUN/pipeline) or a pipeline folder")
    record_hints(p, {"model=PATH": "--model PATH"})  # the library's parameter, as this command's flag
    p.add_argument("--out", required=True, help="output folder for PNGs, contact-sheet.png and generate.json")
    p.add_argument("--seed", type=int, default=0, help="seed of the first image; image k of a clip uses seed + k")
    p.add_argument("--num-images", type=positive_int, default=1, help="images per audio file")
    p.add_argument("--steps", type=positive_int, default=20, help="sampling steps")
    p.add_argument("--guidance-scale", type=non_negative_float, default=4.5, help="classifier-free guidance")
    p.add_argument("--scheduler", choices=["dpm-solver", "ddpm"], default="dpm-solver", help="sampler")
    p.add_argument(
        "--height", type=positive_int, help="image height in px (default: the training resolution, in generate.json)"
    )
    p.add_argument(
        "--width", type=positive_int, help="image width in px (default: the training resolution, in generate.json)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        help="feed the audio as is (default: scale each file to the training loudness, recorded in generate.json)",
    )
    p.add_argument(
        "--target-lufs",
        type=float,
        help="inference loudness (default: the midpoint of the training dataset's LUFS range, else -23)",
    )
    p.set_defaults(handler=run)


def run(args) -> int:
    from seeing_sound.model.generate import generate_files

    generate_files(
        args.audio,
        model=args.model,
        out=args.out,
        seed=args.seed,
        num_images=args.num_images,
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        scheduler=args.scheduler,
        height=args.height,
        width=args.width,
        device=args.device,
        progress=args.progress,
        normalize=args.normalize,
        target_lufs=args.target_lufs,
    )
    return 0
