"""Where a training run continues from, and what it must match to continue (``OUT/train_config.json``).

Each setting of a resumed run is either refused when it differs from the run's record
(:data:`~seeing_sound.model.training.config.RESUME_KEYS`, named in the error) or applied from the
first resumed step on and recorded in ``train_config.json``'s ``changes``: ``{"step": first step
that used it, "setting", "was", "now"}``. The record and ``log.jsonl`` describe the checkpoint a run
resumes from: their rows and changes past its step (from steps that were lost with a kill) are
dropped before the run goes on (:func:`trim_log`, :func:`resumed_changes`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from seeing_sound.engine.shards import atomic_write
from seeing_sound.errors import SeeingSoundError
from seeing_sound.model.checkpoint import STATE_JSON
from seeing_sound.model.training.config import RESUME_KEYS, RESUME_UNCOMPARED, TrainConfig
from seeing_sound.model.training.sets import check_resume_datasets

log = logging.getLogger(__name__)


def checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob("step-*"))


def resolve_resume(cfg: TrainConfig, out: Path) -> Path | None:
    existing = checkpoints(out)
    if cfg.resume is None:
        if existing:
            raise SeeingSoundError(
                f"{out} already holds checkpoints; pass resume='latest' to continue or choose a new out folder"
            )
        return None
    if cfg.resume == "latest":
        if not existing:
            log.info("resume: no checkpoint in %s yet, starting from scratch", out)
            return None
        # state.json is written last: a folder without it is unfinished (e.g. an older version's, written
        # in place and killed), never resumed from. With no finished one, the newest is loaded, and
        # refused with its reason (an accelerate checkpoint, say) rather than the run silently restarting.
        finished = [p for p in existing if (p / STATE_JSON).is_file()]
        for p in existing:
            if finished and p > finished[-1]:
                log.warning("resume: skipping %s (unfinished: no %s)", p, STATE_JSON)
        return finished[-1] if finished else existing[-1]
    path = Path(cfg.resume)
    if not path.is_dir():
        raise ValueError(f"resume must be 'latest' or a checkpoint folder, got {cfg.resume!r}")
    return path


def check_resume_settings(cfg: TrainConfig, out: Path, datasets: list[dict]) -> dict | None:
    """Refuse to resume ``out`` with a changed :data:`RESUME_KEYS` setting or other datasets.

    Returns the run's saved record (``train_config.json``), None where it has none.
    """
    path = out / "train_config.json"
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as exc:
        raise SeeingSoundError(f"cannot resume {out}: {path} is not JSON ({exc})") from None
    if not isinstance(old, dict):
        raise SeeingSoundError(f"cannot resume {out}: {path} holds {type(old).__name__}, expected a JSON object")
    defaults = TrainConfig.__dataclass_fields__  # a run saved before a key existed had its default
    now = cfg.to_dict()
    changed = [k for k in RESUME_KEYS if old.get(k, defaults[k].default) != now[k]]
    if changed:
        detail = ", ".join(f"{k}: {old.get(k, defaults[k].default)!r} -> {now[k]!r}" for k in changed)
        raise SeeingSoundError(
            f"cannot resume {out} with changed settings ({detail}): they cannot change mid-run; "
            "pass the values the run started with, or choose a new out folder"
        )
    check_resume_datasets(old, datasets, out)
    return old


def resumed_changes(cfg: TrainConfig, old: dict | None, step: int, restored: dict[str, Any]) -> list[dict]:
    """The run's ``changes`` when it resumes from the checkpoint of ``step``.

    The saved record's changes up to ``step`` are kept; later ones (made by a resume whose steps
    were lost) are dropped, and the settings they changed count at their ``was`` value again. Then
    each setting whose new value differs from the value in effect at ``step`` is one change at
    ``step + 1``. ``restored``: values the checkpoint itself holds (the optimizer's ``lr`` and
    ``weight_decay``), which are what the steps before used whatever the record says.
    """
    old = old if isinstance(old, dict) else {}
    history = [c for c in old.get("changes") or [] if isinstance(c, dict) and isinstance(c.get("step"), int)]
    kept = [c for c in history if c["step"] <= step]
    in_effect = dict(old)
    for change in sorted((c for c in history if c["step"] > step), key=lambda c: -c["step"]):
        in_effect[change.get("setting")] = change.get("was")
    in_effect.update(restored)
    defaults = TrainConfig.__dataclass_fields__
    now = cfg.to_dict()
    new = []
    for key, value in now.items():
        if key in RESUME_KEYS or key in RESUME_UNCOMPARED:
            continue
        if key not in in_effect and not old:  # no record (resumed from another run's checkpoint)
            continue
        was = in_effect.get(key, defaults[key].default)
        if was != value:
            new.append({"step": step + 1, "setting": key, "was": was, "now": value})
    if new:
        log.info(
            "resume: from step %d on, %s",
            step + 1,
            ", ".join(f"{c['setting']} {c['was']!r} -> {c['now']!r}" for c in new),
        )
    return kept + new


def trim_log(path: Path, step: int) -> None:
    """Keep the rows of ``log.jsonl`` up to ``step`` (the checkpoint a run starts from); rewritten atomically.

    Rows of steps past it (done before a kill, done again now) and a half-written last line go.
    """
    if not path.is_file():
        return
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    keep = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            keep.append(line)
    if keep == lines and text.endswith("\n"):
        return
    log.info("resume: %s keeps its rows up to step %d (%d dropped)", path, step, len(lines) - len(keep))
    with atomic_write(path, "w") as fh:
        fh.write("".join(f"{line}\n" for line in keep))


def run_record(
    cfg: TrainConfig, datasets: list[dict], exclusions: list[dict], changes: list[dict] | None = None
) -> dict:
    """``OUT/train_config.json``: the resolved config, each dataset's rows and feature fingerprints.

    ``dataset`` stays one path for a one-dataset run (the file as before); a list for several.
    ``changes``: the settings a resume changed, and from which step (:func:`resumed_changes`).
    """
    record = cfg.to_dict()
    record["dataset"] = cfg.dataset[0] if len(cfg.dataset) == 1 else list(cfg.dataset)
    return {**record, "datasets": datasets, "exclusions": exclusions, "changes": list(changes or [])}
