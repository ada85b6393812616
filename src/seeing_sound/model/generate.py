"""Generate images for audio files with a saved :class:`AudioPixArtPipeline` (``seeing-sound generate``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seeing_sound.errors import ModelNotFoundError, SeeingSoundError

log = logging.getLogger(__name__)


def load_pipeline(model: str | Path, device: str = "auto", scheduler: str = "dpm-solver"):
    """A pipeline from a run folder (``RUN/pipeline``) or a pipeline folder, on ``device``."""
    import torch

    from seeing_sound.model.loading import load_scheduler
    from seeing_sound.model.pipeline import AudioPixArtPipeline

    path = Path(model)
    if (path / "pipeline" / "model_index.json").is_file():
        path = path / "pipeline"
    if not (path / "model_index.json").is_file():
        raise ModelNotFoundError("AudioPixArt pipeline", str(model), "--model")
    pipe = AudioPixArtPipeline.from_pretrained(str(path))
    if scheduler != "dpm-solver":
        pipe.scheduler = load_scheduler(str(path), kind=scheduler)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return pipe.to(device)


def read_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """Any soundfile-readable file as mono float32 and its sample rate."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), int(sr)


def generate_files(
    audio: Sequence[str | Path],
    *,
    model: str | Path,
    out: str | Path,
    seed: int = 0,
    num_images: int = 1,
    steps: int = 20,
    guidance_scale: float = 4.5,
    scheduler: str = "dpm-solver",
    height: int | None = None,
    width: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """Write ``<stem>-seed<S>.png`` per image (image ``k`` of a clip uses seed ``seed + k``, so a file's
    images do not depend on which other files are in the batch), ``contact-sheet.png`` and
    ``generate.json`` (outputs and skipped files with reasons). Returns that report."""
    import torch

    from seeing_sound.model.samples import image_grid

    if not audio:
        raise ValueError("audio must name at least one file")
    pipe = load_pipeline(model, device, scheduler)
    if pipe.audio_encoder is None:
        raise SeeingSoundError(f"the pipeline in {model} has no AST audio encoder; re-save it with one")
    pipe.set_progress_bar_config(disable=not progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "model": str(model),
        "seed": seed,
        "steps": steps,
        "guidance_scale": guidance_scale,
        "outputs": {},
        "skipped": {},
    }
    sheet, labels, used = [], [], set()
    for file in audio:
        try:
            wave, sr = read_mono(file)
            if wave.size == 0 or not np.all(np.isfinite(wave)):
                raise ValueError("empty or non-finite audio")
        except Exception as exc:  # one bad file must not lose the others
            report["skipped"][str(file)] = f"{type(exc).__name__}: {exc}"
            log.warning("skipping %s: %s", file, exc)
            continue
        stem = Path(file).stem
        while stem in used:  # same file name in two folders
            stem += "_"
        used.add(stem)
        generators = [torch.Generator().manual_seed(seed + k) for k in range(num_images)]
        images = pipe(
            audio=wave,
            sampling_rate=sr,
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            num_images_per_prompt=num_images,
            generator=generators,
            height=height,
            width=width,
        ).images
        names = []
        for k, image in enumerate(images):
            name = f"{stem}-seed{seed + k}.png"
            image.save(out / name)
            names.append(name)
            sheet.append(image)
            labels.append(name)
        report["outputs"][str(file)] = names
    if sheet:
        image_grid(sheet, cols=max(num_images, min(len(sheet), 4)), labels=labels).save(out / "contact-sheet.png")
    (out / "generate.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    if not sheet:
        raise SeeingSoundError(
            f"no audio file could be read ({len(report['skipped'])} skipped); see {out / 'generate.json'}"
        )
    log.info("wrote %d images for %d files to %s", len(sheet), len(report["outputs"]), out)
    return report
