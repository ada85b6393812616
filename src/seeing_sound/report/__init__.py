"""A static, offline HTML browser of a pairs dataset: summary plots, search, one page per shard."""

from seeing_sound.report.site import write_report

__all__ = ["write_report"]
