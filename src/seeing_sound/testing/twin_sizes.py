"""Sizes of the tiny model twins, shared by :mod:`~seeing_sound.testing.models` (which builds them) and
:mod:`~seeing_sound.testing.data` (whose synthetic feature sets match them)."""

from __future__ import annotations

__all__ = ["AUDIOSET_NUM_LABELS", "TINY_AST_HIDDEN", "TINY_AST_MAX_FRAMES"]

#: Tiny AST: 1 s of audio (100 frames) -> 2 + 12 x 9 = 110 tokens of width 32.
TINY_AST_MAX_FRAMES = 100
TINY_AST_HIDDEN = 32
#: AudioSet's label count, the head of ``MIT/ast-finetuned-audioset-10-10-0.4593``.
AUDIOSET_NUM_LABELS = 527
