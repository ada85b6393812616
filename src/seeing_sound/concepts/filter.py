"""Silent-image filter (Appendix A.2): drop images whose caption names a logo-like subject.

Matching is whole-word and case-insensitive, with plural ``-s``/``-es`` forms: "sign", "Signs"
and "road-sign" match; "design", "signal", "signature", "signage", "insignia", "iconic" and
"symbolic" do not. The paper does not say how it matched; whole words avoid dropping every photo
of a "designer chair" or a "signal lamp", at the cost of missing "signage" (add it if you want it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache


def _word_pattern(word: str) -> str:
    parts = word.strip().split()
    if not parts or not all(re.fullmatch(r"[\w'-]+", p) for p in parts):
        raise ValueError(f"filter_words: each entry must be a word or phrase of word characters, got {word!r}")
    # A phrase like "street sign" matches with any run of whitespace between its words.
    return r"\s+".join(re.escape(p) for p in parts)


@lru_cache(maxsize=64)
def compile_filter(words: tuple[str, ...]) -> tuple[re.Pattern, dict[str, str]]:
    """One regex for all keywords; returns it and a map from lower-cased surface to keyword."""
    if not words:
        raise ValueError("filter_words: must not be empty (use no_filter=True to disable the filter)")
    canonical = {" ".join(w.lower().split()): " ".join(w.lower().split()) for w in words}
    # Longest first, so "street sign" wins over "sign" when both are listed.
    alternation = "|".join(_word_pattern(w) for w in sorted(canonical, key=len, reverse=True))
    # Lookarounds on \w (not \b) so the optional plural suffix is part of the whole word.
    pattern = re.compile(rf"(?<!\w)(?P<word>{alternation})(?:e?s)?(?!\w)", re.IGNORECASE)
    return pattern, canonical


def match_filter_word(caption: str | None, words: Sequence[str]) -> str | None:
    """The first keyword (lower-cased, as configured) found in ``caption`` as a whole word, else None."""
    if not caption:
        return None
    pattern, canonical = compile_filter(tuple(words))
    m = pattern.search(caption)
    if m is None:
        return None
    surface = " ".join(m.group("word").lower().split())
    return canonical.get(surface, surface)
