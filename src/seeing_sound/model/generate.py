"""Generate images for audio files with a saved :class:`AudioPixArtPipeline` (``seeing-sound generate``)."""

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


def load_pipeline(model: str | Path, device: str = "auto", scheduler: str = "dpm-solver"):
    """A pipeline from a run folder (``RUN/pipeline``) or a pipeline folder, on ``device``."""
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
    ``generate.json`` (outputs and skipped files with reasons). Returns that report.

    ``normalize`` (default): each input is first scaled to the training loudness
    (:func:`training_loudness`, or ``target_lufs``), as the training mixtures were; ``generate.json``
    records the level used and, per file, its measured loudness and the gain applied."""
    import torch

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
        report: dict = {
            "model": str(model),
            "seed": seed,
            "steps": steps,
            "guidance_scale": guidance_scale,
            "outputs": {},
            "skipped": {},
        }
        if normalize:
            level = (
                training_loudness(model)
                if target_lufs is None
                else {"target_lufs": float(target_lufs), "source": "given"}
            )
            report["loudness"] = {**level, "files": {}}
            log.info("inputs normalized to %.1f LUFS (%s)", level["target_lufs"], level["source"])
        else:
            report["loudness"] = None
        sheet, labels, used = [], [], set()
        for file in audio:
            try:
                wave, sr = read_mono(file)
                if wave.size == 0 or not np.all(np.isfinite(wave)):
                    raise ValueError("empty or non-finite audio")
                if normalize:
                    wave, applied = normalize_input(wave, sr, report["loudness"]["target_lufs"])
                    report["loudness"]["files"][str(file)] = applied
            except Exception as exc:  # one bad file must not lose the others
                reraise_environment(exc)  # a full or read-only output is the run's, not the item's
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
        write_json_atomic(out / "generate.json", report)
        if not sheet:
            raise SeeingSoundError(
                f"no audio file could be read ({len(report['skipped'])} skipped); see {out / 'generate.json'}"
            )
        log.info("wrote %d images for %d files to %s", len(sheet), len(report["outputs"]), out)
        return report
