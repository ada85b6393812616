"""Generate one image per benchmark audio with a trained model (resumable), for ``evaluate_model``.

Each image comes from :func:`seeing_sound.model.generate.generate_for_file`, the function
``seeing-sound generate`` uses, with its defaults: the clip normalized to the training loudness
(:func:`~seeing_sound.model.generate.generation_loudness`), the training resolution
(:func:`~seeing_sound.model.generate.image_size`) and seed ``seed``, so an image here equals
``seeing-sound generate CLIP --seed S`` for the same settings, byte for byte. Images are written
atomically as ``<item_id>.png`` (an id that is not a safe file name,
:func:`~seeing_sound.dataset.paths.safe_name`, is a failed item ``unsafe_id``); a rerun generates
only the missing ones, and refuses to mix images made with other settings (``settings.json``: model,
seed, steps, guidance, the normalization level ``target_lufs`` and the size; a folder written before
the level was part of them is refused too).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from seeing_sound.dataset.paths import UnsafePathError, safe_name
from seeing_sound.engine.shards import atomic_write, write_json_atomic
from seeing_sound.errors import SeeingSoundError, StageMismatchError

log = logging.getLogger(__name__)


def generation_settings(model: str | Path, config, pipe) -> tuple[dict, dict]:
    """``(settings, record)``: what shapes the images (compared with ``settings.json`` on a rerun) and
    where the level and size came from (for ``summary.json``).

    The inputs are normalized to the training loudness and generated at the training resolution, as
    ``seeing-sound generate`` does by default.
    """
    from seeing_sound.model.generate import generation_loudness, image_size

    level = generation_loudness(model)
    size = image_size(model, pipe)
    settings = {
        "model": str(Path(model).resolve()),
        "seed": config.seed,
        "steps": config.steps,
        "guidance": config.guidance,
        "target_lufs": None if level is None else level["target_lufs"],
        "height": size["height"],
        "width": size["width"],
    }
    return settings, {"loudness": level, "size_source": size["source"]}


def check_settings(folder: Path, settings: Mapping) -> None:
    """Raise :class:`StageMismatchError` if ``folder`` holds images made with other settings."""
    f = folder / "settings.json"
    if f.is_file():
        old = json.loads(f.read_text())
        if old != dict(settings):
            diff = {k: (old.get(k), settings.get(k)) for k in set(old) | set(settings) if old.get(k) != settings.get(k)}
            raise StageMismatchError(
                f"{folder} holds images generated with other settings {diff} (before, now); "
                "use another --out or delete that folder"
            )


def generate_missing(
    pipe, jobs: Sequence[tuple[str, Path]], folder: Path, settings: Mapping, *, progress: bool = False
) -> tuple[dict[str, Path], dict[str, str], int]:
    """``jobs``: (item_id, audio file). Returns ({item_id: png}, {item_id: reason}, images generated now).

    Each image is :func:`~seeing_sound.model.generate.generate_for_file` of its clip with ``settings``
    (:func:`generation_settings`).
    """
    from tqdm.auto import tqdm

    from seeing_sound.model.generate import UnusableAudio, generate_for_file

    folder.mkdir(parents=True, exist_ok=True)
    check_settings(folder, settings)
    write_json_atomic(folder / "settings.json", dict(settings))
    done: dict[str, Path] = {}
    failed: dict[str, str] = {}
    todo = []
    for item_id, audio in jobs:
        try:  # an id is data: it names a file only if it is a safe name (never a path)
            png = folder / f"{safe_name(item_id, what='item id')}.png"
        except UnsafePathError as exc:
            failed[item_id] = f"unsafe_id: {exc}"
            continue
        if png.is_file():
            done[item_id] = png
        else:
            todo.append((item_id, audio, png))
    made = 0
    for item_id, audio, png in tqdm(todo, desc="generate", unit="image", disable=not progress or not todo):
        try:
            images, _ = generate_for_file(
                pipe,
                audio,
                seed=int(settings["seed"]),
                steps=int(settings["steps"]),
                guidance_scale=float(settings["guidance"]),
                target_lufs=settings["target_lufs"],
                height=int(settings["height"]),
                width=int(settings["width"]),
            )
        except UnusableAudio as exc:  # a bad clip is reported, the others are generated
            failed[item_id] = f"audio unreadable for generation: {exc}"
            continue
        image = images[0]
        with atomic_write(png) as fh:
            image.save(fh, format="PNG")
        done[item_id] = png
        made += 1
    return done, failed, made


def load_generator(model: str | Path, device: str):
    from seeing_sound.model.generate import load_pipeline

    pipe = load_pipeline(model, device)
    if pipe.audio_encoder is None:
        raise SeeingSoundError(f"the pipeline in {model} has no AST audio encoder; re-save it with one")
    pipe.set_progress_bar_config(disable=True)  # one bar per benchmark instead of one per image
    return pipe
