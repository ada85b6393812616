"""A static, script-free HTML page to see and hear a pairs dataset (opens from disk)."""

from seeing_sound.report.html import write_report

__all__ = ["write_report"]
