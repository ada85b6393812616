"""The app's logic without the UI: sources -> prompt (through the compose controls) -> image.

Kept free of gradio so it is tested directly; :mod:`seeing_sound.app.ui` only lays out widgets and
calls :meth:`AppSession.run`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from seeing_sound.config import Config, option

log = logging.getLogger(__name__)

#: acoustic-space presets (synthetic RIRs of these RT60s; Fig. 7's outdoor/office/church spaces)
SPACES: dict[str, float | None] = {
    "dry (as recorded)": None,
    "small room (RT60 0.3 s)": 0.3,
    "office (RT60 0.6 s)": 0.6,
    "hall (RT60 1.5 s)": 1.5,
    "church (RT60 3.5 s)": 3.5,
}
ARRANGEMENTS = ("superpose", "concatenate")


@dataclasses.dataclass(frozen=True)
class AppConfig(Config):
    """Settings of ``seeing-sound app``."""

    host: str = option("127.0.0.1", "address to serve on; 127.0.0.1: this machine only (ours)", fingerprint=False)
    port: int = option(7860, "port (ours)", min=1, max=65535, fingerprint=False)
    device: str = option("auto", "auto (CUDA if available), cpu or cuda[:N] (ours)", fingerprint=False)
    sample_rate: int = option(16000, "sample rate the prompts are composed at (paper: A.7)", min=8000)
    max_seconds: float = option(
        30.0, "longest source kept in seconds; longer uploads are cut (ours: bounds the work per request)", gt=0.0
    )
    max_upload_mb: float = option(
        50.0,
        "largest file accepted per upload in MB (10^6 bytes); larger ones are refused (ours)",
        gt=0.0,
        fingerprint=False,
    )

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes, as handed to Gradio's ``launch(max_file_size=...)``."""
        return max(1, round(self.max_upload_mb * 1_000_000))


def read_upload(path: str | Path, sample_rate: int, max_samples: int) -> np.ndarray:
    """The first ``max_samples`` of ``path`` as float32 mono at ``sample_rate``: decoding stops there."""
    from seeing_sound.audio.io import BadAudio, stream_mono
    from seeing_sound.errors import SeeingSoundError

    blocks, got = [], 0
    try:
        stream = stream_mono(path, sample_rate)
        try:
            for block in stream:
                blocks.append(block[: max_samples - got])
                got += blocks[-1].size
                if got >= max_samples:
                    break
        finally:
            stream.close()  # closes the file now, not when the generator is collected
    except BadAudio as exc:
        raise SeeingSoundError(f"{Path(path).name}: {exc}") from None
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


@dataclasses.dataclass
class Result:
    image: Any
    prompt: np.ndarray
    sample_rate: int
    recipe: dict


class AppSession:
    """One model (loaded on first use), an optional pool, and the compose controls."""

    def __init__(self, model: str | Path, config: AppConfig | None = None, pool: str | Path | None = None):
        from seeing_sound.model.generate import training_loudness

        self.model = str(model)
        self.config = config or AppConfig()
        self.pool_path = pool
        self.level = training_loudness(model)
        self._pipe: Any = None
        self._pool: Any = None

    # --- sources -------------------------------------------------------------------------------

    def pool_choices(self, limit: int = 500) -> list[str]:
        """``"ID: description (source)"`` of the first ``limit`` non-silent pool chunks."""
        pool = self.pool
        if pool is None:
            return []
        m = pool.manifest
        lufs = m.column("loudness_lufs").to_numpy(zero_copy_only=False)
        out = []
        for i in np.flatnonzero(np.isfinite(lufs) & (lufs >= -70))[:limit]:
            desc = m.column("description")[int(i)].as_py() or Path(m.column("source")[int(i)].as_py()).name
            out.append(f"{int(i)}: {desc}")
        return out

    @property
    def pool(self):
        if self._pool is None and self.pool_path is not None:
            from seeing_sound.pool import AudioPool

            self._pool = AudioPool.open(self.pool_path)
        return self._pool

    def source(self, audio_file: str | None, pool_choice: str | None) -> tuple[str | int, np.ndarray] | None:
        """An uploaded/recorded file (preferred) or a pool chunk, as float32 mono at the app's rate.

        A file is decoded only up to ``max_seconds`` (the rest is never read); one that cannot be used
        raises :class:`~seeing_sound.errors.SeeingSoundError` naming the file and the reason.
        """
        sr = self.config.sample_rate
        if audio_file:
            return Path(audio_file).name, read_upload(audio_file, sr, round(self.config.max_seconds * sr))
        if pool_choice and self.pool is not None:
            cid = int(str(pool_choice).split(":", 1)[0])
            x = self.pool.chunk(cid)
            if self.pool.sample_rate != sr:
                import soxr

                x = soxr.resample(x, self.pool.sample_rate, sr).astype(np.float32)
            return cid, x
        return None

    # --- prompt and image ----------------------------------------------------------------------

    def compose(
        self,
        sources: list[tuple[str | int, np.ndarray]],
        lufs: list[float],
        arrangement: str = "superpose",
        space: str = "dry (as recorded)",
        ir_file: str | None = None,
        seed: int = 0,
    ):
        """The prompt of the chosen sources: each at its loudness, superposed or one after another, in a space."""
        from seeing_sound.audio import controls
        from seeing_sound.audio.mixture import normalized_mixture

        if not sources:
            raise ValueError("give at least one source: upload or record audio, or pick a pool chunk")
        if arrangement not in ARRANGEMENTS:
            raise ValueError(f"arrangement must be one of {', '.join(ARRANGEMENTS)}, got {arrangement!r}")
        if space not in SPACES:
            raise ValueError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
        sr = self.config.sample_rate
        names, audio = [n for n, _ in sources], [x for _, x in sources]
        room = None
        if ir_file:
            room = controls.Space.from_ir(ir_file)
        elif (rt60 := SPACES[space]) is not None:
            room = controls.Space("rt60", rt60_s=float(rt60), seed=int(seed))
        if arrangement == "superpose":
            m = normalized_mixture(audio, lufs, sr, names=names, space=room)
        else:
            m = controls.concat_mixture(audio, lufs, sr, names=names, space=room)
        return m, m.render(audio), controls.measured_levels(m, audio)

    @property
    def pipe(self):
        if self._pipe is None:
            from seeing_sound.model.generate import load_pipeline

            self._pipe = load_pipeline(self.model, self.config.device)
            self._pipe.set_progress_bar_config(disable=True)
        return self._pipe

    def run(
        self,
        sources: list[tuple[str | int, np.ndarray]],
        lufs: list[float],
        *,
        arrangement: str = "superpose",
        space: str = "dry (as recorded)",
        ir_file: str | None = None,
        seed: int = 0,
        steps: int = 20,
        guidance_scale: float = 4.5,
    ) -> Result:
        """Compose the prompt, normalize it to the training loudness (as ``generate`` does), make the image."""
        import torch

        from seeing_sound.model.generate import normalize_input

        m, prompt, measured = self.compose(sources, lufs, arrangement, space, ir_file, seed)
        sr = self.config.sample_rate
        fed, applied = normalize_input(prompt, sr, self.level["target_lufs"])
        image = self.pipe(
            audio=fed,
            sampling_rate=sr,
            num_inference_steps=int(steps),
            guidance_scale=float(guidance_scale),
            generator=torch.Generator().manual_seed(int(seed)),
        ).images[0]
        recipe = {
            "arrangement": arrangement,
            "space": Path(ir_file).name if ir_file else space,
            "mixture": m.to_dict(),
            "measured": measured,
            "inference_loudness": applied,
            "seed": int(seed),
            "steps": int(steps),
            "guidance_scale": float(guidance_scale),
        }
        return Result(image, prompt, sr, recipe)
