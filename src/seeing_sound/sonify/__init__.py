"""Image sonification (paper Section 3): the pipeline, the mixing stage, and rebuild."""

from seeing_sound.sonify.pipeline import SonifyReport, sonify
from seeing_sound.sonify.rebuild import RebuildReport, rebuild

__all__ = ["sonify", "SonifyReport", "rebuild", "RebuildReport"]
