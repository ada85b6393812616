"""``seeing-sound compose``: build audio prompts for the paper's controls (Section 4.5, Figs. 4-7).

Sources are audio files and/or pool chunks (by id, drawn at random as the paper did, or found by a
text query with the pool's encoder). Each written WAV gets a recipe sidecar ``<name>.json``: the
:class:`~seeing_sound.audio.mixture.Mixture`, the sources in the dataset's component fields, and the
levels *measured* on the result (each source as it sounds in the file, the mixture, the peak).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seeing_sound.audio import controls
from seeing_sound.audio.mix import loudness_of
from seeing_sound.audio.mixture import Mixture, normalized_mixture
from seeing_sound.config import Config, ConfigError, option, resolve
from seeing_sound.engine import atomic_write, command_run
from seeing_sound.engine.run import check_owned

log = logging.getLogger(__name__)

DEFAULT_LUFS = -23.0
MODES = ("mix", "concat", "interpolate", "reverb")


@dataclasses.dataclass(frozen=True)
class ComposeConfig(Config):
    """Settings of ``seeing-sound compose``."""

    sample_rate: int = option(16000, "sample rate of the prompts; pool sources: the pool's (paper: A.7)", min=8000)
    headroom: str | None = option(
        None,
        "peak: scale a mixture down if it peaks over 0.99 (the dataset's rule); sweep: one gain for a whole "
        "interpolation; none: every source exactly at its target, float WAV may exceed full scale "
        "(ours: the dataset's mixing rule)",
        choices=("peak", "sweep", "none"),
        default_text="peak; none for interpolate",
    )
    gap_seconds: float = option(0.0, "concat: silence between sources (ours: Fig. 6 gives no gap)", min=0.0)
    sweep: tuple[float, float] = option(
        (-40.0, -10.0), "interpolate: LUFS range of the last source (ours: Fig. 5 gives no levels)"
    )
    steps: int = option(5, "interpolate: number of files (ours)", min=2)
    room_size: float = option(
        0.8,
        "reverb (Freeverb): 0 (small) .. 1 (large hall) (ours: Fig. 7 used recorded spaces)",
        min=0.0,
        max=1.0,
    )
    wet_level: float = option(
        0.35, "reverb (Freeverb): level of the reverberant signal (ours: Fig. 7 used recorded spaces)", min=0.0, max=1.0
    )
    ir: str | None = option(None, "reverb: convolve with this room impulse response, any rate and channels (ours)")
    rt60: float | None = option(
        None,
        "reverb: convolve with a synthetic impulse response of this RT60 in seconds (ours)",
        min=0.05,
        max=20.0,
    )
    seed: int = option(0, "seed of pool draws (--random, --query) and of the synthetic IR's noise (ours)")

    def validate(self) -> None:
        lo, hi = self.sweep
        if not (np.isfinite(lo) and np.isfinite(hi) and min(lo, hi) >= -70.0 and max(lo, hi) <= 0.0):
            raise ConfigError("sweep", self.sweep, "must be two finite LUFS values in [-70, 0]")
        if self.ir is not None and self.rt60 is not None:
            raise ConfigError("rt60", self.rt60, "give either ir or rt60, not both")

    def space(self) -> controls.Space:
        if self.ir is not None:
            return controls.Space.from_ir(self.ir)
        if self.rt60 is not None:
            return controls.Space("rt60", rt60_s=float(self.rt60), seed=self.seed)
        return controls.Space("freeverb", room_size=self.room_size, wet_level=self.wet_level)


@dataclasses.dataclass
class Source:
    """One input of a control: its name in recipes (a file path or a pool chunk id), its samples
    and what is known about it (the dataset's component fields for pool chunks)."""

    name: int | str
    audio: np.ndarray
    info: dict = dataclasses.field(default_factory=dict)
    #: pool chunks: the stored int16 row and its scale, so prompts render exactly like ``rebuild``
    row: np.ndarray | None = None
    factor: float = 1.0

    def loudness(self, sr: int) -> float:
        """The pool's recorded loudness for a chunk (what the dataset normalized with), else measured."""
        lufs = self.info.get("chunk_lufs")
        return float(lufs) if lufs is not None else loudness_of(self.audio, sr)

    def signal(self) -> tuple[np.ndarray, float]:
        """What the render path multiplies: the stored row and its scale, or the float samples."""
        return (self.row, self.factor) if self.row is not None else (self.audio, 1.0)


def load_mono(path: str | Path, sample_rate: int) -> np.ndarray:
    """A whole file as float32 mono at ``sample_rate`` (same decode path as the pool)."""
    from seeing_sound.audio.io import BadAudio, stream_mono
    from seeing_sound.errors import SeeingSoundError

    try:
        blocks = list(stream_mono(path, sample_rate))
    except BadAudio as exc:
        raise SeeingSoundError(f"{path}: {exc}") from None
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


# --- sources from a pool ---------------------------------------------------------------------


def pool_sources(
    pool: str | Path,
    *,
    chunks: Sequence[int] = (),
    random: int = 0,
    query: Sequence[str] = (),
    seed: int = 0,
    encoder: str | None = None,
    device: str = "auto",
) -> list[Source]:
    """Chunks of a pool as sources: ``chunks`` by id, then ``random`` drawn uniformly (seeded, non-silent,
    from different source files where the pool allows), then one per ``query`` text retrieved with
    Algorithm 1 over the pool's stored embeddings (the encoder they were made with, or ``encoder``)."""
    from seeing_sound.pool import AudioPool

    ap = AudioPool.open(pool)
    man = ap.manifest
    lufs = np.asarray(man.column("loudness_lufs").to_numpy(zero_copy_only=False), np.float64)
    ids = [int(i) for i in chunks]
    bad = [i for i in ids if not 0 <= i < len(ap)]
    if bad:
        raise ValueError(f"chunks: ids {bad} are not in the pool ({len(ap)} chunks)")
    if random:
        ids += _draw_random(man, lufs, int(random), seed, exclude=ids)
    scores: dict[int, dict] = {}
    for q_i, text in enumerate(query):
        cid, sc = _retrieve(ap, text, q_i, seed, encoder, device)
        ids.append(cid)
        scores[len(ids) - 1] = sc
    out = []
    for k, cid in enumerate(ids):
        if not np.isfinite(lufs[cid]):
            raise ValueError(f"pool chunk {cid} is silent: it cannot be loudness-normalized")
        info = {
            "chunk_id": cid,
            "chunk_source": man.column("source")[cid].as_py(),
            "chunk_offset_s": man.column("offset_s")[cid].as_py(),
            "chunk_description": man.column("description")[cid].as_py(),
            "chunk_lufs": float(lufs[cid]),
            **scores.get(k, {}),
        }
        rows, factors = ap.pcm_rows([cid])
        out.append(Source(cid, ap.chunk(cid), info, row=rows[0], factor=float(factors[0])))
    return out


def _draw_random(man, lufs: np.ndarray, n: int, seed: int, exclude: Sequence[int]) -> list[int]:
    """``n`` distinct non-silent chunks, preferring distinct source files (the paper's "two excerpts")."""
    ok = np.flatnonzero(np.isfinite(lufs) & (lufs >= -70.0))
    ok = ok[~np.isin(ok, np.asarray(list(exclude), np.int64))]
    if ok.size < n:
        raise ValueError(f"random: the pool has only {ok.size} non-silent chunks to draw {n} from")
    rng = np.random.default_rng(seed)
    order = rng.permutation(ok)
    sources = man.column("source").to_pylist()
    picked: list[int] = []
    seen: set[str] = set()
    for cid in order:  # first pass: one chunk per source file
        if sources[cid] not in seen:
            picked.append(int(cid))
            seen.add(sources[cid])
        if len(picked) == n:
            return picked
    for cid in order:
        if int(cid) not in picked:
            picked.append(int(cid))
        if len(picked) == n:
            break
    return picked


def _retrieve(ap, text: str, q_index: int, seed: int, encoder: str | None, device: str) -> tuple[int, dict]:
    from seeing_sound.encoders import load_encoder
    from seeing_sound.errors import SeeingSoundError
    from seeing_sound.retrieval import DEFAULT_TOPK, concept_seed, open_index
    from seeing_sound.retrieval.index import list_embeddings

    sets = list_embeddings(ap.root)
    if encoder is not None:
        sets = [s for s in sets if s["encoder_info"]["encoder"] == encoder]
    if not sets:
        raise SeeingSoundError(
            f"pool {ap.root} has no embeddings{' for ' + encoder if encoder else ''}: "
            f"run `seeing-sound pool embed {ap.root}` first, or pick sources with --chunks/--random"
        )
    info = sets[0]["encoder_info"]
    enc = load_encoder(info["encoder"], info["model"], device=device)
    index = open_index(ap.root, enc.info)
    cands = index.candidate_sets(enc.embed_text([text]), min(DEFAULT_TOPK, max(1, len(index) // 4)))
    m = cands.draw(np.zeros(1, np.int64), np.array([concept_seed(seed, "compose", q_index)], np.uint64))
    return int(m.index[0]), {
        "concept": text,
        "cosine": float(m.cosine[0]),
        "score": float(m.score[0]),
        "threshold": float(m.threshold[0]),
        "n_candidates": int(m.n_candidates[0]),
        "encoder": info["encoder"],
        "model": info["model"],
    }


# --- writing ---------------------------------------------------------------------------------


def _write(path: Path, x: np.ndarray, sr: int, recipe: dict) -> Path:
    """The WAV and its recipe sidecar, each written atomically (a reader never sees half a prompt)."""
    import soundfile as sf

    with atomic_write(path) as fh:
        sf.write(fh, x, sr, subtype="FLOAT", format="WAV")
    with atomic_write(path.with_suffix(".json"), "w") as fh:
        fh.write(json.dumps(recipe, indent=2, sort_keys=True, default=_plain) + "\n")
    return path


def _is_recipe(path: Path) -> bool:
    """A recipe sidecar (or sweep listing) that compose wrote: JSON with its keys."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and (data.get("mode") in MODES or {"headroom", "steps"} <= set(data))


def _is_prompt(path: Path) -> bool:
    """A prompt WAV that compose wrote: its recipe sidecar is there and is ours."""
    return _is_recipe(path.with_suffix(".json"))


def _check_outputs(out: Path, mode: str) -> None:
    """Never replace a file compose did not write: the WAV at ``out`` and its ``.json`` (a folder's
    ``sweep.json`` for interpolate) must be absent or compose's own."""
    if mode == "interpolate":
        check_owned(out / "sweep.json", _is_recipe)
        return
    check_owned(out.with_suffix(".json"), _is_recipe)
    check_owned(out, _is_prompt)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"not JSON serializable: {type(v).__name__}")


def recipe(mode: str, mixture: Mixture, sources: Sequence[Source], measured: dict, **extra) -> dict:
    """The sidecar of one prompt: components in the dataset's field names (``chunk_id`` ... ``gain_db``),
    the mixture record and the measured levels."""
    comps = []
    for t, s in zip(mixture.tracks, sources, strict=True):
        comp = {"target_lufs": t.target_lufs, "gain_db": t.gain_db, "chunk_lufs": t.loudness_lufs, **s.info}
        if isinstance(s.name, str):
            comp["file"] = s.name
        comps.append(comp)
    return {
        "mode": mode,
        "components": comps,
        "mixture_gain_db": mixture.mixture_gain_db,
        "mixture": mixture.to_dict(),
        "measured": measured,
        **extra,
    }


def targets(lufs: Sequence[float] | None, n: int) -> list[float]:
    if not lufs:
        return [DEFAULT_LUFS] * n
    if len(lufs) == 1:
        return list(lufs) * n
    if len(lufs) != n:
        raise ValueError(f"lufs: give one value, or one per source ({n}), got {len(lufs)}")
    return list(lufs)


def compose(
    mode: str,
    inputs: Sequence[str | Path] = (),
    out: str | Path = "prompt.wav",
    config: ComposeConfig | None = None,
    *,
    lufs: Sequence[float] | None = None,
    pool: str | Path | None = None,
    chunks: Sequence[int] = (),
    random: int = 0,
    query: Sequence[str] = (),
    encoder: str | None = None,
    device: str = "auto",
    **options,
) -> list[Path]:
    """Write the audio prompt(s) of one control; returns the written files (32-bit float WAV, each
    with its recipe ``.json``).

    ``mix``: superpose the sources at their ``lufs`` targets. ``concat``: the same sources one after
    another. ``interpolate``: the last source swept over ``sweep`` LUFS in ``steps`` files under ``out``
    (a folder), the others fixed at their targets; files are named by the level the swept source
    actually reached (measured), and ``sweep.json`` lists every step. ``reverb``: the sources (mixed,
    if several) in an acoustic space: ``ir`` (a real room impulse response), ``rt60`` (synthetic) or
    Freeverb; the RT60 measured on the space's IR is recorded next to the one asked for.
    Sources: ``inputs`` (files), then pool chunks (``pool`` with ``chunks``/``random``/``query``).
    ``options`` override single :class:`ComposeConfig` fields.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    cfg = resolve(ComposeConfig, config, options)
    out = Path(out)
    # one file (written atomically) for mix/concat/reverb; interpolate's folder is held like any output folder
    with command_run("compose", out, inputs={"inputs": list(inputs), "pool": pool}, lock=mode == "interpolate"):
        _check_outputs(out, mode)
        return _compose(mode, inputs, out, cfg, lufs, pool, chunks, random, query, encoder, device)


def _compose(mode, inputs, out: Path, cfg: ComposeConfig, lufs, pool, chunks, random, query, encoder, device):
    sources: list[Source] = []
    sr = cfg.sample_rate
    if pool is not None:
        from seeing_sound.pool import AudioPool

        sr = AudioPool.open(pool).sample_rate
        if (chunks or random or query) and inputs:
            log.info("files first, then pool chunks")
    sources += [Source(str(p), load_mono(p, sr)) for p in inputs]
    if pool is not None:
        sources += pool_sources(
            pool, chunks=chunks, random=random, query=query, seed=cfg.seed, encoder=encoder, device=device
        )
    elif chunks or random or query:
        raise ValueError("chunks, random and query pick pool chunks: give pool too")
    if not sources:
        raise ValueError("give at least one audio file or pool chunk")
    audio = [s.audio for s in sources]
    names = [s.name for s in sources]
    loud = [s.loudness(sr) for s in sources]
    if mode == "interpolate":
        return _interpolate(cfg, sources, out, lufs, sr)
    headroom = cfg.headroom or "peak"
    if headroom == "sweep":
        raise ConfigError("headroom", "sweep", "sweep is for interpolate; use peak or none")
    tg = targets(lufs, len(sources))
    extra: dict = {}
    if mode == "mix":
        m = normalized_mixture(audio, tg, sr, names=names, headroom=headroom, loudness=loud)
    elif mode == "concat":
        m = controls.concat_mixture(audio, tg, sr, cfg.gap_seconds, names=names, headroom=headroom, loudness=loud)
    else:
        space = cfg.space()
        m = normalized_mixture(audio, tg, sr, names=names, space=space, headroom=headroom, loudness=loud)
        extra["rt60"] = space.rt60(sr)
        log.info(
            "space %s: RT60 asked %s, measured T20 %s T30 %s",
            space.kind,
            *(None if extra["rt60"][k] is None else f"{extra['rt60'][k]:.4g}" for k in ("asked_s", "t20_s", "t30_s")),
        )
    signals, factors = zip(*(s.signal() for s in sources), strict=True)
    y = m.render(list(signals), np.array(factors, np.float32))
    return [_write(out, y, sr, recipe(mode, m, sources, controls.measured_levels(m, audio), **extra))]


def _interpolate(cfg: ComposeConfig, sources: list[Source], out: Path, lufs, sr: int) -> list[Path]:
    if len(sources) < 2:
        raise ValueError(f"interpolate needs at least two sources (the last one moves), got {len(sources)}")
    headroom = cfg.headroom or "none"
    if headroom == "peak":
        raise ConfigError(
            "headroom", "peak", "a per-step peak rule moves the fixed sources; use none or sweep for interpolate"
        )
    n_fixed = len(sources) - 1
    fixed = targets(lufs, n_fixed) if lufs is None or len(lufs) != len(sources) else list(lufs[:-1])
    values = np.linspace(cfg.sweep[0], cfg.sweep[1], cfg.steps)
    audio = [s.audio for s in sources]
    steps = controls.interpolate(
        audio[:-1],
        fixed,
        audio[-1],
        list(values),
        sr,
        headroom=headroom,
        names=[s.name for s in sources],
        loudness=[s.loudness(sr) for s in sources],
    )
    written, listing = [], []
    for i, step in enumerate(steps):
        name = f"{i:02d}_{step.reached_lufs:+.1f}LUFS.wav"
        if step.measured["peak"] > 1.0:
            log.warning(
                "%s peaks at %.2f (over full scale; kept in the float WAV, --headroom sweep avoids it)",
                name,
                step.measured["peak"],
            )
        r = recipe("interpolate", step.mixture, sources, step.measured, asked_lufs=step.asked_lufs)
        written.append(_write(out / name, step.audio, sr, r))
        listing.append(
            {
                "file": name,
                "asked_lufs": step.asked_lufs,
                **step.measured,
                "mixture_gain_db": step.mixture.mixture_gain_db,
            }
        )
    with atomic_write(out / "sweep.json", "w") as fh:
        fh.write(json.dumps({"headroom": headroom, "fixed_lufs": fixed, "steps": listing}, indent=2, default=_plain))
        fh.write("\n")
    return written


__all__ = ["DEFAULT_LUFS", "MODES", "ComposeConfig", "Source", "compose", "load_mono", "loudness_of", "pool_sources"]
