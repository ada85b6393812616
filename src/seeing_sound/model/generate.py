"""Generate images for audio files with a saved :class:`AudioPixArtPipeline` (``seeing-sound generate``).

:func:`generate_for_file` is the one generation function: ``seeing-sound generate``
(:func:`generate_files`) and ``seeing-sound evaluate --model``
(:func:`seeing_sound.evaluation.generation.generate_missing`) both call it, so the same clip, seed and
settings give the same image through either. It reads the file as mono, normalizes it to the
training loudness (:func:`generation_loudness`), and runs the pipeline at the training resolution
(:func:`image_size`) unless told otherwise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seeing_sound.engine import command_run
from seeing_sound.engine.outcome import reraise_environment
from seeing_sound.engine.shards import write_json_atomic
from seeing_sound.errors import ModelNotFoundError, SeeingSoundError

log = logging.getLogger(__name__)

#: inference level when the training data's is unknown: EBU R128 programme level, the middle of the
#: dataset's default target range (``seeing_sound.audio.mix.DEFAULT_LUFS_RANGE``)
DEFAULT_INFERENCE_LUFS = -23.0
#: written beside a pipeline (by ``push``/``export``) so a folder without its run still knows its level
LOUDNESS_FILE = "seeing_sound_loudness.json"


def _pipeline_dir(model: str | Path) -> Path:
    path = Path(model)
    return path / "pipeline" if (path / "pipeline").is_dir() else path


def lufs_span(datasets) -> list[float] | None:
    """``[lo, hi]`` over the ``lufs_range`` s the datasets' cards record (None if none records one)."""
    ranges = []
    for d in datasets:
        card = Path(d) / "dataset.json"
        lufs = (json.loads(card.read_text()).get("params") or {}).get("lufs_range") if card.is_file() else None
        if lufs:
            ranges.append([float(v) for v in lufs])
    return [min(r[0] for r in ranges), max(r[1] for r in ranges)] if ranges else None


def training_loudness(model: str | Path) -> dict:
    """The loudness the model was trained at: ``{"target_lufs", "source", "lufs_range"}``.

    Training mixtures sit around the LUFS targets the dataset drew from (Section 3.3, A.9); the target
    is the midpoint of the dataset's recorded ``lufs_range``, found through ``RUN/train_config.json``
    -> ``DATASET/dataset.json``, or read from the pipeline's ``seeing_sound_loudness.json``; else -23.
    """
    pipe_dir = _pipeline_dir(model)
    stored = pipe_dir / LOUDNESS_FILE
    if stored.is_file():
        d = json.loads(stored.read_text())
        return {"target_lufs": float(d["target_lufs"]), "lufs_range": d.get("lufs_range"), "source": str(stored)}
    for run in (Path(model), pipe_dir.parent):
        cfg = run / "train_config.json"
        if not cfg.is_file():
            continue
        dataset = json.loads(cfg.read_text()).get("dataset")
        datasets = [dataset] if isinstance(dataset, str) else list(dataset or [])  # a list: several datasets
        span = lufs_span(datasets)
        if span is not None:
            lo, hi = span
            source = ", ".join(str(Path(d) / "dataset.json") for d in datasets)
            return {"target_lufs": (lo + hi) / 2, "lufs_range": [lo, hi], "source": source}
        log.warning(
            "%s: training dataset card not found; inference loudness defaults to %s LUFS", cfg, DEFAULT_INFERENCE_LUFS
        )
        break
    return {"target_lufs": DEFAULT_INFERENCE_LUFS, "lufs_range": None, "source": "default"}


def normalize_input(wave: np.ndarray, sr: int, target_lufs: float) -> tuple[np.ndarray, dict]:
    """``wave`` scaled to ``target_lufs`` integrated loudness (Eq. 1) and what was applied.

    Silent input (under the -70 LUFS gate) is left as is and recorded so (there is no gain for it).
    """
    from seeing_sound.audio.mix import loudness_of

    lufs = loudness_of(wave, sr)
    if not np.isfinite(lufs) or lufs < -70.0:
        return wave, {"input_lufs": None, "target_lufs": target_lufs, "gain_db": 0.0, "note": "silent: not normalized"}
    gain = float(target_lufs - lufs)
    y = (wave.astype(np.float32) * np.float32(10.0 ** (gain / 20.0))).astype(np.float32)
    return y, {"input_lufs": round(lufs, 3), "target_lufs": target_lufs, "gain_db": round(gain, 3)}


def generation_loudness(model: str | Path, normalize: bool = True, target_lufs: float | None = None) -> dict | None:
    """The level inputs are normalized to: ``target_lufs`` (``source`` "given"), else the training
    loudness (:func:`training_loudness`); None when ``normalize`` is off."""
    if not normalize:
        return None
    if target_lufs is not None:
        return {"target_lufs": float(target_lufs), "lufs_range": None, "source": "given"}
    return training_loudness(model)


def _vae_card_size(card: Path, vae_scale_factor: int) -> tuple[int, int] | None:
    """Pixel ``(height, width)`` a VAE feature card records: its latent shape times the VAE's scale, or
    its ``resolution`` (None where it records neither)."""
    try:
        d = json.loads(card.read_text())
    except (OSError, ValueError):
        return None
    shape = d.get("latent_shape") if isinstance(d, dict) else None
    if isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape):
        return shape[1] * vae_scale_factor, shape[2] * vae_scale_factor
    res = d.get("resolution") if isinstance(d, dict) else None
    return (res, res) if isinstance(res, int) and res > 0 else None


def training_resolution(model: str | Path, vae_scale_factor: int) -> dict | None:
    """The image size the model was trained at: ``{"height", "width", "source"}``, or None if unrecorded.

    Read from the pipeline's ``model_index.json`` (``resolution``, where the pipeline was saved with
    one), else through ``RUN/train_config.json`` -> each dataset's VAE feature card
    (``DATASET/features/<vae_features>/features.json``: ``latent_shape`` x the VAE's
    ``vae_scale_factor``; every dataset of a run has the same latent shape).
    """
    pipe_dir = _pipeline_dir(model)
    index = pipe_dir / "model_index.json"
    if index.is_file():
        res = json.loads(index.read_text()).get("resolution")
        if isinstance(res, list) and len(res) == 2 and all(isinstance(v, int) and v > 0 for v in res):
            return {"height": res[0], "width": res[1], "source": f"{index} (resolution)"}
    for run in (Path(model), pipe_dir.parent):
        cfg = run / "train_config.json"
        if not cfg.is_file():
            continue
        record = json.loads(cfg.read_text())
        res = record.get("vae_resolution") if record.get("vae_online") else None
        if isinstance(res, int) and res > 0:  # latents computed in training: no feature card to read
            return {"height": res, "width": res, "source": f"{cfg} (vae_resolution)"}
        for d in record.get("datasets") or []:
            name = d.get("vae_features") if isinstance(d, dict) else None
            if not name:
                continue
            for root in (d.get("root"), d.get("path")):
                card = Path(str(root)) / "features" / str(name) / "features.json" if root else None
                size = _vae_card_size(card, vae_scale_factor) if card is not None and card.is_file() else None
                if size is not None:
                    return {"height": size[0], "width": size[1], "source": str(card)}
        break
    return None


def image_size(model: str | Path, pipe, height: int | None = None, width: int | None = None) -> dict:
    """The size images are generated at: ``{"height", "width", "source"}``.

    ``height``/``width`` where given, else the training resolution (:func:`training_resolution`), else
    the transformer's own ``sample_size`` x the VAE's scale, with a warning that the training
    resolution is not recorded.
    """
    trained = training_resolution(model, pipe.vae_scale_factor)
    if trained is None:
        px = int(pipe.transformer.sample_size * pipe.vae_scale_factor)
        trained = {"height": px, "width": px, "source": "model default (transformer sample_size x VAE scale)"}
        if height is None or width is None:
            log.warning(
                "%s records no training resolution (pipeline resolution or the run's VAE features); "
                "generating at the transformer's default %d px: pass --height/--width if it was trained at another",
                model,
                px,
            )
    return {
        "height": int(height or trained["height"]),
        "width": int(width or trained["width"]),
        "source": "given" if height and width else trained["source"],
    }


class UnusableAudio(SeeingSoundError):
    """An input file that cannot be read or used as audio (the caller skips it, with this reason)."""


def generate_for_file(
    pipe,
    file: str | Path,
    *,
    seed: int,
    steps: int,
    guidance_scale: float,
    target_lufs: float | None,
    num_images: int = 1,
    height: int | None = None,
    width: int | None = None,
) -> tuple[list, dict | None]:
    """Images of one audio file and the normalization applied to it (None when ``target_lufs`` is None).

    The file is read as mono (any rate: the pipeline resamples), scaled to ``target_lufs``
    (:func:`normalize_input`) and sampled with image ``k`` on seed ``seed + k``. A file that cannot be
    read, is empty or holds NaN/inf raises :class:`UnusableAudio`; a full or read-only disk, and any
    failure of the pipeline itself, propagate.
    """
    import torch

    try:
        wave, sr = read_mono(file)
        if wave.size == 0 or not np.all(np.isfinite(wave)):
            raise ValueError("empty or non-finite audio")
        applied = None
        if target_lufs is not None:
            wave, applied = normalize_input(wave, sr, target_lufs)
    except Exception as exc:
        reraise_environment(exc)  # a full or read-only output is the run's, not the item's
        raise UnusableAudio(f"{type(exc).__name__}: {exc}") from exc
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
    return list(images), applied


def load_pipeline(model: str | Path, device: str = "auto", scheduler: str = "dpm-solver"):
    """A pipeline from a run folder (``RUN/pipeline``) or a pipeline folder, on ``device``.

    A pipeline saved without its ``resolution`` gets the run's (:func:`training_resolution`), so its
    default image size is the training one wherever it is called.
    """
    import torch

    from seeing_sound.model.loading import load_scheduler
    from seeing_sound.model.pipeline import AudioPixArtPipeline

    path = Path(model)
    if (path / "pipeline" / "model_index.json").is_file():
        path = path / "pipeline"
    if not (path / "model_index.json").is_file():
        raise ModelNotFoundError("AudioPixArt pipeline", str(model), "model")
    # safetensors only: a pickled .bin in a downloaded run could run code when loaded
    try:
        pipe = AudioPixArtPipeline.from_pretrained(str(path), use_safetensors=True)
    except OSError as exc:
        raise SeeingSoundError(
            f"{path} could not be loaded with safetensors weights only ({exc}); pickled .bin weights are never "
            "loaded: re-save the pipeline with save_pretrained(safe_serialization=True)"
        ) from None
    if scheduler != "dpm-solver":
        pipe.scheduler = load_scheduler(str(path), kind=scheduler)
    if pipe.config.get("resolution") is None:
        trained = training_resolution(model, pipe.vae_scale_factor)
        if trained is not None:
            pipe.register_to_config(resolution=[trained["height"], trained["width"]])
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
    normalize: bool = True,
    target_lufs: float | None = None,
) -> dict:
    """Write ``<stem>-seed<S>.png`` per image (image ``k`` of a clip uses seed ``seed + k``, so a file's
    images do not depend on which other files are in the batch), ``contact-sheet.png`` and
    ``generate.json`` (outputs, skipped files with reasons, loudness and size). Returns that report.

    ``normalize`` (default): each input is first scaled to the training loudness
    (:func:`training_loudness`, or ``target_lufs``), as the training mixtures were; ``generate.json``
    records the level used and, per file, its measured loudness and the gain applied. ``height`` and
    ``width`` default to the training resolution (:func:`image_size`, recorded as ``size``). Each file
    goes through :func:`generate_for_file`, as ``evaluate --model`` does.
    """
    from seeing_sound.model.samples import image_grid

    if not audio:
        raise ValueError("audio must name at least one file")
    with command_run("generate", out, inputs={"audio": list(audio)}, progress=progress) as run:
        pipe = load_pipeline(model, device, scheduler)
        if pipe.audio_encoder is None:
            raise SeeingSoundError(f"the pipeline in {model} has no AST audio encoder; re-save it with one")
        pipe.set_progress_bar_config(disable=not progress)
        out = run.out
        out.mkdir(parents=True, exist_ok=True)
        size = image_size(model, pipe, height, width)
        level = generation_loudness(model, normalize, target_lufs)
        report: dict = {
            "model": str(model),
            "seed": seed,
            "steps": steps,
            "guidance_scale": guidance_scale,
            "size": size,
            "loudness": None if level is None else {**level, "files": {}},
            "outputs": {},
            "skipped": {},
        }
        if level is not None:
            log.info("inputs normalized to %.1f LUFS (%s)", level["target_lufs"], level["source"])
        sheet, labels, used = [], [], set()
        for file in audio:
            try:
                images, applied = generate_for_file(
                    pipe,
                    file,
                    seed=seed,
                    steps=steps,
                    guidance_scale=guidance_scale,
                    target_lufs=None if level is None else level["target_lufs"],
                    num_images=num_images,
                    height=size["height"],
                    width=size["width"],
                )
            except UnusableAudio as exc:  # one bad file must not lose the others
                report["skipped"][str(file)] = str(exc)
                log.warning("skipping %s: %s", file, exc)
                continue
            if applied is not None:
                report["loudness"]["files"][str(file)] = applied
            stem = Path(file).stem
            while stem in used:  # same file name in two folders
                stem += "_"
            used.add(stem)
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
        write_json_atomic(out / "generate.json", report)
        if not sheet:
            raise SeeingSoundError(
                f"no audio file could be read ({len(report['skipped'])} skipped); see {out / 'generate.json'}"
            )
        log.info("wrote %d images for %d files to %s", len(sheet), len(report["outputs"]), out)
        return report
