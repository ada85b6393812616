"""Synthesized sound effects with honest descriptions: the offline demo's audio pool.

Each recipe is a few lines of numpy (noise, filters, envelopes, chirps), deterministic
under its seed. They are caricatures, not recordings, and their descriptions say so; what
matters for the demo is that text retrieval over the descriptions finds the right kind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import signal


def _t(seconds: float, sr: int) -> np.ndarray:
    return np.arange(int(seconds * sr)) / sr


def _band(x: np.ndarray, sr: int, lo: float | None, hi: float | None) -> np.ndarray:
    if lo and hi:
        sos = signal.butter(4, [lo, hi], btype="bandpass", fs=sr, output="sos")
    elif lo:
        sos = signal.butter(4, lo, btype="highpass", fs=sr, output="sos")
    else:
        sos = signal.butter(4, hi, btype="lowpass", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _decay(n: int, sr: int, tau: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (tau * sr))


def _events(rng, seconds: float, sr: int, rate: float, make: Callable[[], np.ndarray]) -> np.ndarray:
    out = np.zeros(int(seconds * sr))
    for start in rng.uniform(0, seconds, rng.poisson(rate * seconds)):
        ev = make()
        i = int(start * sr)
        seg = out[i : i + ev.size]
        seg += ev[: seg.size]
    return out


def rain(rng, s, sr):
    drops = _events(
        rng,
        s,
        sr,
        300,
        lambda: rng.uniform(0.2, 1) * _decay(int(0.004 * sr), sr, 0.001) * rng.standard_normal(int(0.004 * sr)),
    )
    return _band(drops, sr, 800, None) + 0.05 * _band(rng.standard_normal(int(s * sr)), sr, 1000, None)


def wind(rng, s, sr):
    gust = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * _t(s, sr) + rng.uniform(0, 6))
    return gust * _band(rng.standard_normal(int(s * sr)), sr, None, 500)


def water(rng, s, sr):
    bubbles = _events(
        rng,
        s,
        sr,
        40,
        lambda: (
            np.sin(
                2
                * np.pi
                * np.linspace(rng.uniform(300, 700), rng.uniform(800, 1500), int(0.03 * sr))
                * np.arange(int(0.03 * sr))
                / sr
            )
            * _decay(int(0.03 * sr), sr, 0.01)
        ),
    )
    return bubbles + 0.5 * _band(rng.standard_normal(int(s * sr)), sr, 200, 3000)


def birds(rng, s, sr):
    def chirp():
        n = int(rng.uniform(0.05, 0.15) * sr)
        f = np.linspace(rng.uniform(2500, 4000), rng.uniform(4000, 6500), n)
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(n)

    return _events(rng, s, sr, 6, chirp)


def bells(rng, s, sr):
    f0 = rng.uniform(300, 600)

    def strike():
        n = int(2.5 * sr)
        tt = np.arange(n) / sr
        return sum(
            a * np.sin(2 * np.pi * f0 * r * tt) for a, r in ((1, 1), (0.6, 2.76), (0.4, 5.4), (0.25, 8.9))
        ) * _decay(n, sr, 0.6)

    return _events(rng, s, sr, 0.8, strike)


def engine(rng, s, sr, rev: bool = False):
    tt = _t(s, sr)
    f0 = rng.uniform(30, 50) * (1 + (1.5 * tt / s if rev else 0.02 * np.sin(2 * np.pi * 0.5 * tt)))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    return sum(np.sin(k * phase) / k for k in range(1, 12)) + 0.2 * _band(rng.standard_normal(tt.size), sr, None, 300)


def footsteps(rng, s, sr, crunch: bool = False):
    out = np.zeros(int(s * sr))
    for start in np.arange(0.2, s - 0.3, rng.uniform(0.45, 0.6)):
        n = int(0.12 * sr)
        thump = np.sin(2 * np.pi * 80 * np.arange(n) / sr) * _decay(n, sr, 0.03)
        grit = _band(rng.standard_normal(n), sr, 1500, None) * _decay(n, sr, 0.05) * (1.5 if crunch else 0.2)
        out[int(start * sr) : int(start * sr) + n] += thump + grit
    return out


def fire(rng, s, sr):
    crackles = _events(rng, s, sr, 25, lambda: rng.uniform(0.3, 1) * rng.standard_normal(int(0.002 * sr)))
    return crackles + 0.3 * _band(rng.standard_normal(int(s * sr)), sr, None, 200)


def babble(rng, s, sr):
    tt = _t(s, sr)
    voices = 0
    for _ in range(8):
        syll = (np.sin(2 * np.pi * rng.uniform(3, 6) * tt + rng.uniform(0, 6)) > 0).astype(float)
        voices = voices + syll * _band(rng.standard_normal(tt.size), sr, rng.uniform(250, 500), rng.uniform(1500, 3000))
    return voices


def rocket(rng, s, sr):
    swell = np.minimum(1, _t(s, sr) / 1.5)
    return swell * (_band(rng.standard_normal(int(s * sr)), sr, None, 800) + 0.3 * rng.standard_normal(int(s * sr)))


def meow(rng, s, sr):
    out = np.zeros(int(s * sr))
    for start in (0.3, 2.5, 4.4)[: max(1, int(s // 2))]:
        n = int(0.8 * sr)
        f = 550 + 250 * np.sin(np.pi * np.arange(n) / n) * rng.uniform(0.8, 1.2)
        ph = 2 * np.pi * np.cumsum(f) / sr
        tone = sum(np.sin(k * ph) / k for k in range(1, 6)) * np.hanning(n)
        out[int(start * sr) : int(start * sr) + n] += _band(tone, sr, 400, 3000)[: out.size - int(start * sr)]
    return out


def purr(rng, s, sr):
    tt = _t(s, sr)
    return (0.5 + 0.5 * np.sin(2 * np.pi * 25 * tt)) * _band(rng.standard_normal(tt.size), sr, None, 300)


def clink(rng, s, sr):
    def hit():
        n = int(0.4 * sr)
        f = rng.uniform(2500, 4500)
        return sum(np.sin(2 * np.pi * f * r * np.arange(n) / sr) for r in (1, 2.3, 3.9)) * _decay(n, sr, 0.08)

    return _events(rng, s, sr, 1.5, hit)


def pour(rng, s, sr):
    tt = _t(s, sr)
    return np.minimum(1, tt) * _band(rng.standard_normal(tt.size), sr, 600 + 400 * rng.random(), 4000)


def breathing(rng, s, sr):
    tt = _t(s, sr)
    env = np.maximum(0, np.sin(2 * np.pi * 0.3 * tt)) ** 2
    return env * _band(rng.standard_normal(tt.size), sr, 300, 2500)


def radio(rng, s, sr):
    tt = _t(s, sr)
    beeps = np.sin(2 * np.pi * 1000 * tt) * ((tt % 2.0) < 0.15)
    return 0.3 * _band(rng.standard_normal(tt.size), sr, 500, 3000) * (0.5 + 0.5 * (rng.random(tt.size) > 0.5)) + beeps


def rustle(rng, s, sr):
    tt = _t(s, sr)
    env = np.clip(
        signal.fftconvolve((rng.random(tt.size) > 0.9995).astype(float), np.hanning(int(0.4 * sr)), "same"), 0, 1
    )
    return (0.2 + env) * _band(rng.standard_normal(tt.size), sr, 2000, None)


#: (file stem, recipe, description, labels)
CATALOG = [
    (
        "rain",
        rain,
        "Synthesized rain: dense random droplet clicks over a soft hiss, like rain falling on a roof",
        ["Rain"],
    ),
    ("wind", wind, "Synthesized wind blowing: low rumbling noise rising and falling in gusts", ["Wind"]),
    ("stream", water, "Synthesized running water: a babbling stream with bubbling and splashing", ["Water", "Stream"]),
    ("birds", birds, "Synthesized birdsong: short high chirps and tweets of small birds", ["Bird", "Chirp"]),
    ("bells", bells, "Synthesized church bells ringing with long metallic decays", ["Bell"]),
    (
        "engine_idle",
        engine,
        "Synthesized engine idling: a low steady motor hum of a car or motorcycle engine",
        ["Engine", "Vehicle"],
    ),
    (
        "engine_rev",
        lambda r, s, sr: engine(r, s, sr, rev=True),
        "Synthesized motorcycle engine revving: a motor roar rising in pitch",
        ["Engine", "Motorcycle"],
    ),
    ("footsteps", footsteps, "Synthesized footsteps: a person walking with steady soft steps", ["Footsteps", "Walk"]),
    (
        "gravel_steps",
        lambda r, s, sr: footsteps(r, s, sr, crunch=True),
        "Synthesized footsteps crunching on gravel",
        ["Footsteps", "Gravel"],
    ),
    ("fire", fire, "Synthesized crackling fire: random pops and crackles over a low roar", ["Fire"]),
    (
        "crowd",
        babble,
        "Synthesized crowd babble: many people talking and murmuring at once, a cheering audience",
        ["Crowd", "Chatter"],
    ),
    (
        "rocket",
        rocket,
        "Synthesized rocket launch: a deafening broadband roar of engines at liftoff",
        ["Rocket", "Explosion"],
    ),
    ("meow", meow, "Synthesized cat meowing: a gliding tonal miaow call", ["Cat", "Meow"]),
    ("purr", purr, "Synthesized cat purring: a low rhythmic rumbling purr", ["Cat", "Purr"]),
    ("clink", clink, "Synthesized spoon clinking against a ceramic cup or glass", ["Clink", "Dishes"]),
    ("pour", pour, "Synthesized liquid pouring: coffee or water poured into a cup", ["Pour", "Liquid"]),
    ("breathing", breathing, "Synthesized breathing: slow heavy breaths, as inside a helmet or mask", ["Breathing"]),
    (
        "radio",
        radio,
        "Synthesized radio static with beeps, like a walkie-talkie or mission radio chatter",
        ["Radio", "Static"],
    ),
    ("rustle", rustle, "Synthesized rustling of grass and leaves moved by a breeze", ["Rustle", "Leaves"]),
]

#: (sample rate, channels) used in turn, so the demo pool exercises resampling and downmixing
FORMATS = [(44100, 2), (22050, 1), (48000, 2), (16000, 1)]


def write_sound_library(out: str | Path, *, variants: int = 2, seconds: float = 6.0, seed: int = 0) -> Path:
    """Write every recipe ``variants`` times as WAV/FLAC plus ``descriptions.csv``; returns ``out``."""
    import csv

    import soundfile as sf

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (stem, fn, desc, labels) in enumerate(CATALOG):
        for v in range(variants):
            rng = np.random.default_rng([seed, i, v])
            sr, ch = FORMATS[(i + v) % len(FORMATS)]
            x = np.asarray(fn(rng, seconds + v, sr), dtype=np.float64)
            x = 0.5 * x / max(1e-9, np.abs(x).max()) * rng.uniform(0.3, 1.0)
            if ch == 2:
                x = np.stack([x, np.roll(x, int(0.0005 * sr))], axis=1)
            name = f"{stem}_{v + 1}.{'flac' if v % 2 else 'wav'}"
            sf.write(str(out / name), x.astype(np.float32), sr, subtype="PCM_16")
            rows.append({"fname": name, "description": desc, "labels": ",".join(labels)})
    with open(out / "descriptions.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["fname", "description", "labels"])
        w.writeheader()
        w.writerows(rows)
    return out
