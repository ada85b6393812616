"""Image sonification (paper Section 3): the pipeline, the mixing stage, and rebuild."""

from seeing_sound.sonify.rebuild import RebuildReport, rebuild
from seeing_sound.sonify.run import SonifyReport, sonify

__all__ = ["RebuildReport", "SonifyReport", "rebuild", "sonify"]
