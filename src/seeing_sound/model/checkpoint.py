"""Training checkpoints that load nothing through unrestricted pickle.

A checkpoint folder ``OUT/checkpoints/step-N/`` holds:

==========================  =====================================================================
``model.safetensors``       the trained module's weights (safetensors: tensors only, no code)
``ema.safetensors``         the EMA's shadow weights, when an EMA is kept
``training_state.pt``       optimizer, LR-scheduler and EMA counters: tensors, numbers, strings,
                            lists and dicts only, read back with ``torch.load(weights_only=True)``
``state.json``              format, step, the files above and their SHA-256
==========================  =====================================================================

Why not ``accelerate``'s ``save_state``/``load_state``: they pickle custom objects
(``custom_checkpoint_*.pkl``) and RNG states (``random_states_*.pkl``) and unpickle them with full
pickle, so a tampered checkpoint runs arbitrary code on ``train --resume``. Nothing else needs
saving: every random draw of a training step comes from a generator seeded by (seed, step,
micro-batch, process) and the batch order is a pure function of (seed, step), so the RNG state of a
process is not part of what a step computes.

A folder that holds anything else that could carry code (``*.pkl``, ``*.bin``, a ``training_state.pt``
that needs more than ``weights_only``), or whose files do not match ``state.json``, is refused
with one line: :class:`UnsafeCheckpointError`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from seeing_sound.errors import SeeingSoundError
from seeing_sound.hashing import file_sha256

FORMAT = "seeing-sound-checkpoint"
FORMAT_VERSION = 1
STATE_JSON = "state.json"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
TRAINING_STATE = "training_state.pt"
#: file name patterns that can carry pickled code; a checkpoint holding one is not ours to load
UNSAFE_PATTERNS = ("*.pkl", "*.pickle", "*.bin", "*.pth", "*.ckpt")


class UnsafeCheckpointError(SeeingSoundError):
    """A checkpoint that could run code when loaded, or whose files were changed after saving."""


def _ema_tensors(ema) -> dict[str, torch.Tensor]:
    return {f"shadow.{i:05d}": p.detach().contiguous().cpu() for i, p in enumerate(ema.shadow_params)}


def _ema_scalars(ema) -> dict[str, Any]:
    """The EMA's counters and settings: plain numbers, no tensors (those go to ``ema.safetensors``)."""
    state = ema.state_dict()
    return {k: v for k, v in state.items() if k != "shadow_params"}


def _os_error(exc: BaseException, path: Path) -> OSError | None:
    """The ``OSError`` inside a library error that kept only its text.

    ``safetensors`` (Rust) reports a full disk as ``SafetensorError: Error while serializing: I/O
    error: No space left on device (os error 28)``, neither an ``OSError`` nor a ``RuntimeError``,
    so the run's environment check would not see it; as ``OSError(ENOSPC, ..., path)`` it does.
    """
    if isinstance(exc, OSError):
        return None
    found = re.search(r"\(os error (\d+)\)", str(exc))
    if found is None:
        return None
    code = int(found.group(1))
    return OSError(code, os.strerror(code), str(path))


def _save_safetensors(save, obj, path: Path) -> None:
    try:
        save(obj, str(path))
    except Exception as exc:
        err = _os_error(exc, path)
        if err is None:
            raise
        raise err from exc


def save_training_state(path: str | Path, *, model, optimizer, lr_scheduler, step: int, ema=None) -> Path:
    """Write a checkpoint of ``model`` (unwrapped module), ``optimizer``, ``lr_scheduler``, ``ema`` at ``step``.

    The folder is written in place by the caller's process (one writer); ``state.json`` is
    written last, so a folder without it is an unfinished checkpoint and is never resumed from.
    """
    from safetensors.torch import save_file, save_model

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _save_safetensors(save_model, model, path / MODEL_FILE)  # handles tied/shared tensors
    files = [MODEL_FILE]
    training = {
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": lr_scheduler.state_dict(),
        "ema": _ema_scalars(ema) if ema is not None else None,
    }
    if ema is not None:
        _save_safetensors(save_file, _ema_tensors(ema), path / EMA_FILE)
        files.append(EMA_FILE)
    torch.save(training, path / TRAINING_STATE)
    files.append(TRAINING_STATE)
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "files": {name: file_sha256(path / name) for name in files},
    }
    (path / STATE_JSON).write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    return path


def read_state(path: str | Path) -> dict:
    """``state.json`` of a checkpoint folder, after checking that nothing in it can run code."""
    path = Path(path)
    state_file = path / STATE_JSON
    if not state_file.is_file():
        legacy = sorted(p.name for pattern in UNSAFE_PATTERNS for p in path.glob(pattern))
        what = f"it holds {', '.join(legacy)} (an accelerate save_state checkpoint?)" if legacy else "no state.json"
        raise UnsafeCheckpointError(
            f"{path} is not a seeing-sound checkpoint ({what}); it is not loaded because pickled files can run "
            "code. Start a new run, or resume from a checkpoint written by this version"
        )
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError) as exc:
        raise UnsafeCheckpointError(f"{state_file} is unreadable: {exc}") from None
    if state.get("format") != FORMAT or int(state.get("format_version", 0)) > FORMAT_VERSION:
        raise UnsafeCheckpointError(f"{state_file} is not a checkpoint this version can read ({state.get('format')})")
    unsafe = sorted(p.name for pattern in UNSAFE_PATTERNS for p in path.glob(pattern))
    if unsafe:
        raise UnsafeCheckpointError(f"{path} holds {', '.join(unsafe)}: files that can run code are never loaded")
    for name, digest in state.get("files", {}).items():
        if Path(name).name != name:
            raise UnsafeCheckpointError(f"{state_file} names a file outside the checkpoint: {name!r}")
        file = path / name
        if not file.is_file() or file_sha256(file) != digest:
            raise UnsafeCheckpointError(f"{file} is missing or was changed after the checkpoint was written")
    return state


def load_training_state(path: str | Path, *, model, optimizer, lr_scheduler, ema=None) -> int:
    """Restore what :func:`save_training_state` wrote into the given objects; returns the step.

    Weights come from safetensors; ``training_state.pt`` is read with ``weights_only=True``
    (tensors and plain containers only), so a tampered file fails instead of running code.
    """
    from safetensors.torch import load_file, load_model

    path = Path(path)
    state = read_state(path)
    load_model(model, str(path / MODEL_FILE))
    try:
        training = torch.load(path / TRAINING_STATE, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError and friends: the file asks for more than tensors
        raise UnsafeCheckpointError(
            f"{path / TRAINING_STATE} needs more than tensors and plain values to load ({type(exc).__name__}); "
            "refusing it"
        ) from None
    optimizer.load_state_dict(training["optimizer"])
    lr_scheduler.load_state_dict(training["lr_scheduler"])
    if ema is not None:
        if training.get("ema") is None or not (path / EMA_FILE).is_file():
            raise SeeingSoundError(f"{path} was saved without an EMA but this run keeps one (ema_decay > 0)")
        shadow = load_file(str(path / EMA_FILE))
        if len(shadow) != len(ema.shadow_params):
            raise SeeingSoundError(
                f"{path / EMA_FILE} holds {len(shadow)} EMA tensors, this model has {len(ema.shadow_params)}"
            )
        # Back onto the device and dtype the EMA lives on (the file is read to the CPU).
        params = [shadow[f"shadow.{i:05d}"].to(old.device, old.dtype) for i, old in enumerate(ema.shadow_params)]
        ema.load_state_dict({**training["ema"], "shadow_params": params})
    return int(state["step"])
