"""``seeing-sound demo``: the whole pipeline, offline, on a bundled sample (about a minute).

Images: real photos bundled in scikit-image's wheel. Audio: a synthesized sound library
with honest descriptions (``seeing_sound.testing.sounds``). Concepts: a bundled sidecar
written in LLaVA's style for those photos (a VLM cannot run offline), with captions so the
real silent-image filter drops the logo. Retrieval: the packaged MiniLM text encoder over
the pool's descriptions. Output: the pairs dataset and ``index.html`` to browse and listen.
"""

from __future__ import annotations

import logging
import shutil
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

DEMO_IMAGES = (
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "astronaut.png",
    "motorcycle_left.png",
    "grass.png",
    "gravel.png",
    "logo.png",
    "text.png",
    "moon.png",
)


def demo_sidecar() -> Path:
    return Path(str(resources.files("seeing_sound") / "demo_data" / "concepts.jsonl"))


def copy_demo_images(out: Path) -> Path:
    try:
        import skimage
    except ImportError as exc:  # pragma: no cover - demo extra
        raise ImportError("the demo's photos come from scikit-image: pip install 'seeing-sound[demo]'") from exc
    src = Path(skimage.__file__).parent / "data"
    out.mkdir(parents=True, exist_ok=True)
    for name in DEMO_IMAGES:
        if not (out / name).exists():
            shutil.copyfile(src / name, out / name)
    return out


def run_demo(out: str | Path, *, workers: int = 1, seed: int = 0, progress: bool = True) -> dict:
    """Build the sample pool and dataset under ``out``; returns the sonify summary."""
    from seeing_sound.concepts import VLMSpec
    from seeing_sound.pool import build_pool
    from seeing_sound.sonify import sonify
    from seeing_sound.testing.sounds import write_sound_library

    out = Path(out)
    images = copy_demo_images(out / "images")
    sounds = out / "sounds"
    if not (sounds / "descriptions.csv").exists():
        write_sound_library(sounds, seed=seed)
    build_pool([sounds], out / "pool", descriptions=sounds / "descriptions.csv", workers=workers, progress=progress)
    report = sonify(
        images,
        out / "pool",
        out / "dataset",
        vlms=[VLMSpec("sidecar", str(demo_sidecar()), name="demo-sidecar")],
        encoder="text",
        topk=5,
        seed=seed,
        workers=workers,
        progress=progress,
    )
    summary = report.to_dict()
    from seeing_sound.report import write_report

    page = write_report(out / "dataset", out / "pool", out, title="seeing-sound demo", summary=summary)
    summary["index_html"] = str(page)
    summary["text"] = report.summary()
    return summary
