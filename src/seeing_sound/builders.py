"""Default model ids and what every model loader shares: device resolution and component loading.

Each default lives here once; the stages, encoders and the CLI all read it from this module.
Nothing here imports torch or a model library at import time.
"""

from __future__ import annotations

from pathlib import Path

from seeing_sound.errors import ModelNotFoundError

DEFAULT_CLAP = "laion/clap-htsat-unfused"  # retrieval, --encoder clap
DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"  # retrieval, --encoder text (offline)
RETRIEVAL_ENCODERS = ("clap", "text")  # what embeds the pool and the queries (seeing_sound.encoders builds them)
CLAP_AUDIO_PREP = ("torch", "soxr", "processor")  # where CLAP's audio input is prepared (encoders.clap)
DEFAULT_VLM = "llava-hf/llava-1.5-7b-hf"  # sounding concepts, the paper's VLM
DEFAULT_AST = "MIT/ast-finetuned-audioset-10-10-0.4593"  # audio tokens for the generator
DEFAULT_PIXART = "PixArt-alpha/PixArt-XL-2-512x512"  # the generator to fine-tune
DEFAULT_VAE = DEFAULT_PIXART  # the VAE is the PixArt-α repository's vae/ subfolder
DEFAULT_CLIP = "openai/clip-vit-base-patch32"  # evaluation: IIS, and the image side of AIS (Wav2CLIP's space)
# Evaluation checkpoints that are files, not hub repositories: looked up in <torch hub>/checkpoints/
# (where wav2clip and pytorch-fid cache their downloads) unless --wav2clip / --inception name a path.
DEFAULT_WAV2CLIP = "Wav2CLIP.pt"
WAV2CLIP_URL = "https://github.com/descriptinc/lyrebird-wav2clip/releases/download/v0.1.0-alpha/Wav2CLIP.pt"
DEFAULT_INCEPTION = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's port of the TF-FID Inception
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{DEFAULT_INCEPTION}"


def resolve_device(device: str | None):
    """'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1' -> ``torch.device``."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available on this machine")
    return dev


def component_subfolder(name_or_path: str, subfolder: str) -> str | None:
    """``subfolder`` unless ``name_or_path`` is a local folder that holds the component itself."""
    path = Path(name_or_path)
    if path.is_dir() and not (path / subfolder).is_dir() and (path / "config.json").is_file():
        return None
    return subfolder


def load_component(cls, name_or_path: str, subfolder: str, what: str, param: str, **kwargs):
    """``cls.from_pretrained`` with the component's ``subfolder`` (if the folder has one).

    A hub id or a local folder may be a whole repository (``transformer/``, ``vae/``, ...) or a
    folder holding just that component. "Not there" becomes :class:`ModelNotFoundError`
    naming the model and ``param``, the parameter that points at another copy.
    """
    try:
        sub = component_subfolder(str(name_or_path), subfolder)
        return cls.from_pretrained(str(name_or_path), subfolder=sub, **kwargs)
    except OSError as exc:  # hub errors and missing files are OSErrors
        raise ModelNotFoundError(what, str(name_or_path), param, exc) from exc


def load_vae(name_or_path: str = DEFAULT_VAE, param: str = "vae"):
    """The ``AutoencoderKL`` of a PixArt-α (or any diffusers) repository, or of a VAE folder."""
    from diffusers import AutoencoderKL

    return load_component(AutoencoderKL, name_or_path, "vae", "VAE", param)
