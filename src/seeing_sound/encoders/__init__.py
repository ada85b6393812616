"""Thin wrappers around pre-trained encoders that map text and audio into one space.

Every encoder has ``name``, ``modalities``, ``info`` (:class:`EncoderInfo`) and
``embed_text(texts)`` (and ``embed_audio(waves, sample_rate)`` when it hears audio),
returning unit-norm float32 rows. torch/transformers are imported only when an encoder
is built.
"""

from __future__ import annotations

from seeing_sound.builders import DEFAULT_CLAP, DEFAULT_TEXT_ENCODER
from seeing_sound.encoders.common import EncoderInfo, embedding_key

# name -> (module, class, default model). Other encoders (ast, clip) register here.
ENCODERS: dict[str, tuple[str, str, str]] = {
    "clap": ("seeing_sound.encoders.clap", "ClapEncoder", DEFAULT_CLAP),
    "text": ("seeing_sound.encoders.text", "TextEncoder", DEFAULT_TEXT_ENCODER),
}

_CACHE: dict[tuple, object] = {}


def default_model(encoder: str) -> str:
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {', '.join(sorted(ENCODERS))}, got {encoder!r}")
    return ENCODERS[encoder][2]


def load_encoder(
    encoder: str,
    model: str | None = None,
    *,
    device: str | None = "auto",
    fp16: bool = False,
    batch_size: int | None = None,
    cache: bool = True,
    audio_prep: str | None = None,
):
    """Build (or reuse, within this process) the encoder ``encoder`` with ``model`` (hub id or path).

    ``audio_prep``: CLAP only, where its audio input is prepared (``torch``, ``soxr``, ``processor``;
    None: the encoder's default). Other encoders embed no audio and ignore it.
    """
    import importlib

    model = model or default_model(encoder)
    audio_prep = audio_prep if encoder == "clap" else None
    key = (encoder, model, device, fp16, batch_size, audio_prep)
    if cache and key in _CACHE:
        return _CACHE[key]
    module, cls, _ = ENCODERS[encoder]
    kwargs: dict[str, object] = {"device": device, "fp16": fp16}
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    if audio_prep is not None:
        kwargs["audio_prep"] = audio_prep
    enc = getattr(importlib.import_module(module), cls)(model, **kwargs)
    if cache:
        _CACHE[key] = enc
    return enc


__all__ = ["ENCODERS", "EncoderInfo", "default_model", "embedding_key", "load_encoder"]
