"""Turn a VLM's free text into sounding concepts: (object, sound, full concept text).

Real outputs vary (Figure 2): ``'Bull - The sound of ...'``, ``Water splashing: The sound of ...``,
Python-list-looking strings with unescaped apostrophes, numbered lists in every style, bullets,
preamble ("Sure! Here are ...") and trailing chatter. The parser tries, in order: a list literal
(JSON / Python / "almost Python"), a marked list (``1.``, ``1)``, ``(1)``, ``-``, ``*``, ``•``), then
bare lines. Output with no concept at all is an error with a reason, never an empty success.

Control and format characters (``\x00``, ``\x07``, zero-width and bidi marks; Unicode categories
Cc and Cf except newline; tabs become spaces) are removed first: they are never part of a
concept. An item is then a concept only if it reads as words, by a simple rule that knows no
dictionary (so ``qwv#@!~ zzzz ßß ???`` is ``unparseable`` while ``D - d`` or ``猫: 喵`` are not):

1. it holds at least one letter, and letters are at least half of its non-space characters
   (symbol soup is not a concept); and
2. if it holds Latin-script words of three or more letters, at least one of them has a vowel
   (a, e, i, o, u, y, accents included): ``zzzz qwv`` is keyboard mash, ``Zzz: snoring`` is not.
   Words in scripts without such vowels (CJK, Arabic, ...) are never judged by this.
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from dataclasses import dataclass

from seeing_sound.concepts.prompts import MAX_CONCEPTS

_SPECIAL_TOKENS = re.compile(r"</?s>|<\|[^|<>]{1,40}\|>|\[/?INST\]")
_ROLE_PREFIX = re.compile(r"^\s*(?:assistant|answer|response|output)\s*:\s*", re.IGNORECASE)
_CODE_FENCE = re.compile(r"```[a-zA-Z]*\n?")
_NUMBER_MARK = r"(?:\d{1,2}\s*[.)\]:]\s+|\(\d{1,2}\)\s*|\d{1,2}\s+[-–]\s+|(?:sound|item|object)\s*\d{1,2}\s*[:.)-]\s*)"
_BULLET_MARK = r"(?:[-*•·–—+]\s+)"
_MARKER = re.compile(rf"^(?P<indent>\s*)(?:(?P<num>{_NUMBER_MARK})|(?P<bullet>{_BULLET_MARK}))(?=\S)", re.IGNORECASE)
_INLINE_NUMBER = re.compile(r"(?:(?<!\S)\d{1,2}[.)]|\(\d{1,2}\))\s+")
_LIST_START = re.compile(r"\[\s*[\"'“‘{\[]")
_ALMOST_PY_SPLIT = re.compile(r"[\"'”’]\s*,\s*[\"'“‘]")
_OBJECT_SOUND = re.compile(r"^objects?\s*[:=-]\s*(?P<obj>.+?)[\s,;.]*\bsounds?\s*[:=-]\s*(?P<sound>.+)$", re.I | re.S)
_SEPARATORS = (" - ", " – ", " — ", " -- ", ": ", " : ")
_SOUND_PREFIX = re.compile(r"^(?:associated\s+)?sounds?\s*[:=-]\s*", re.IGNORECASE)
_QUOTES = "'\"`“”‘’"
_PROSE_START = re.compile(
    r"^(?:the|this|in the|in this)\s+(?:image|picture|photo|photograph|scene)\b|^i\b|^i'm\b|^as an ai\b", re.I
)
_REFUSAL = re.compile(
    r"\b(?:i'?m sorry|i am sorry|i cannot|i can'?t|i am unable|i'm unable|unable to (?:determine|identify|provide)"
    r"|as an ai|there (?:are|is) no (?:\w+\s+){0,3}(?:sounds?|objects?)|no (?:audible|sounding) )",
    re.IGNORECASE,
)
_MAX_OBJECT_WORDS = 12
_MAX_ITEM_CHARS = 600
_WORD = re.compile(r"[^\W\d_]+")
_MIN_LETTER_RATIO = 0.5
_VOWELS = frozenset("aeiouy")


@dataclass(frozen=True)
class Concept:
    """One sounding concept. ``object`` is None when the item names no object separately."""

    object: str | None
    sound: str
    text: str  # what the retrieval stage embeds: "object: sound", or the sound alone

    def to_dict(self) -> dict:
        return {"object": self.object, "sound": self.sound, "concept": self.text}


@dataclass(frozen=True)
class ParseResult:
    """Concepts parsed from one output, or an error reason ("empty-output", "refusal", "unparseable")."""

    concepts: tuple[Concept, ...]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def parse_concepts(text: str | None, max_items: int = MAX_CONCEPTS) -> ParseResult:
    """Parse one VLM answer to the concept prompt; keeps the first ``max_items`` distinct concepts."""
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}")
    if text is None or not text.strip():
        return ParseResult((), "empty-output")
    cleaned = _clean_text(text)
    items = _list_literal_items(cleaned)  # a list literal, even an empty one, is the whole answer
    if items is None:
        items = _marked_items(cleaned)
        if not items:
            if _REFUSAL.search(cleaned):
                return ParseResult((), "refusal")
            items = _bare_items(cleaned)
    return concepts_from_items(items, max_items)


def concepts_from_items(items: list[str], max_items: int = MAX_CONCEPTS) -> ParseResult:
    """Split already-separated items (e.g. a sidecar's list) into concepts, dropping repeats."""
    out: list[Concept] = []
    seen: set[str] = set()
    for item in items:
        concept = split_item(item)
        if concept is None or concept.text.casefold() in seen:
            continue
        seen.add(concept.text.casefold())
        out.append(concept)
        if len(out) == max_items:
            break
    return ParseResult(tuple(out)) if out else ParseResult((), "unparseable")


def split_item(item: str) -> Concept | None:
    """One list item -> Concept: split the object from its sound at the first separator."""
    s = _clean_item(item).rstrip(" :;-–—")  # "Bell:" with nothing after is just "Bell"
    if not s or not re.search(r"\w", s) or len(s) > _MAX_ITEM_CHARS or not reads_as_words(s):
        return None  # the rule on the whole item: the separators split off below are punctuation too
    obj: str | None
    m = _OBJECT_SOUND.match(s)
    if m:
        obj, sound = m.group("obj"), m.group("sound")
    else:
        obj, sound = _split_at_separator(s)
    obj = _clean_item(obj).rstrip(".,;:-– ") if obj else None
    text: str = _SOUND_PREFIX.sub("", _clean_item(sound or "")).strip()
    if obj is not None and (not obj or len(obj.split()) > _MAX_OBJECT_WORDS):
        obj, text = None, s  # a "separator" deep inside a sentence is punctuation, not structure
    if not text:
        if not obj:
            return None
        text, obj = obj, None  # "1. Dog barking:" -- the object alone is the concept
    return Concept(obj, text, f"{obj}: {text}" if obj else text)


def reads_as_words(text: str) -> bool:
    """The module docstring's word rule (letters >= half the non-space text; a vowel in some long Latin word)."""
    chars = [c for c in text if not c.isspace()]
    letters = sum(c.isalpha() for c in chars)
    if not letters or letters < _MIN_LETTER_RATIO * len(chars):
        return False
    long_latin = [w for w in _WORD.findall(text) if len(w) >= 3 and all(_is_latin(c) for c in w)]
    return not long_latin or any(_has_vowel(w) for w in long_latin)


def _is_latin(c: str) -> bool:
    return unicodedata.name(c, "").startswith("LATIN")


def _has_vowel(word: str) -> bool:
    return any(unicodedata.normalize("NFD", c)[0].lower() in _VOWELS for c in word)


def strip_controls(text: str) -> str:
    """Drop control and format characters (Cc, Cf) except newline; tabs become spaces."""
    text = text.replace("\t", " ")
    if text.isprintable():
        return text
    return "".join(c for c in text if c == "\n" or unicodedata.category(c) not in ("Cc", "Cf"))


def _split_at_separator(s: str) -> tuple[str | None, str]:
    hits = [(s.find(sep), sep) for sep in _SEPARATORS if s.find(sep) > 0]
    if hits:
        pos, sep = min(hits)
        return s[:pos], s[pos + len(sep) :]
    paren = re.fullmatch(r"(?P<obj>[^()]{1,80}?)\s*\((?P<sound>[^()]+)\)\s*\.?", s)
    if paren:
        return paren.group("obj"), paren.group("sound")
    return None, s


def _clean_text(text: str) -> str:
    text = _SPECIAL_TOKENS.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    text = strip_controls(text)
    text = _CODE_FENCE.sub("", text).replace("**", "").replace("__", "")
    return _ROLE_PREFIX.sub("", text.strip()).strip()


def _clean_item(s: str) -> str:
    s = " ".join(strip_controls(s).split()).strip()
    for _ in range(3):  # quotes and trailing commas can nest: "'Dog - bark',"
        s = s.strip().rstrip(",")
        if len(s) >= 2 and s[0] in _QUOTES and s[-1] in _QUOTES:
            s = s[1:-1]
        elif s and s[0] in _QUOTES and s.count(s[0]) == 1:
            s = s[1:]
        elif s and s[-1] in _QUOTES and s.count(s[-1]) == 1:
            s = s[:-1]
    return s.strip()


def _list_literal_items(text: str) -> list[str] | None:
    """Items of a JSON/Python list (or a JSON object) in the text, tolerating bad quoting and truncation."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            return _items_from_mapping(obj)
    m = _LIST_START.search(text)
    if m is None:
        return None
    end = text.rfind("]")
    chunk = text[m.start() : end + 1] if end > m.start() else text[m.start() :]
    for loader in (json.loads, ast.literal_eval):
        try:
            value = loader(chunk)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, (list, tuple)):
            return [_item_to_text(v) for v in value if _item_to_text(v)]
    # "Almost Python": single-quoted strings holding apostrophes (Figure 2's "bull's charge").
    body = chunk[1:].rstrip()
    body = body[:-1] if body.endswith("]") else body
    return [p for p in _ALMOST_PY_SPLIT.split(body.strip()) if _clean_item(p)]


def _items_from_mapping(obj: dict) -> list[str]:
    for key in ("concepts", "sounds", "sounding_concepts", "items", "objects"):
        if isinstance(obj.get(key), list):
            return [_item_to_text(v) for v in obj[key] if _item_to_text(v)]
    return [f"{k}: {v}" for k, v in obj.items() if isinstance(v, str)]


def _item_to_text(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        low = {str(k).lower(): val for k, val in v.items()}
        obj = low.get("object") or low.get("name") or low.get("source")
        sound = low.get("sound") or low.get("description") or low.get("sound_description")
        if isinstance(sound, str) and sound.strip():
            return f"{obj}: {sound}" if isinstance(obj, str) and obj.strip() else sound
        return ""
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, str) for x in v):
        return f"{v[0]}: {v[1]}"
    return ""


def _split_inline_numbering(line: str) -> list[str]:
    """'1. Dog barking 2. Birds 3. Wind' -> three lines, only when the numbers count 1, 2, 3..."""
    marks = list(_INLINE_NUMBER.finditer(line))
    numbers = [int(re.sub(r"\D", "", m.group())) for m in marks]
    if len(marks) < 2 or numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return [line]
    pieces = [line[: marks[0].start()]] if line[: marks[0].start()].strip() else []
    for a, b in zip(marks, [*marks[1:], None], strict=True):
        pieces.append(line[a.start() : b.start() if b else len(line)])
    return pieces


def _marked_items(text: str) -> list[str]:
    """Items of the first numbered/bulleted list; continuation lines are joined, chatter after it dropped."""
    lines = [piece for line in text.split("\n") for piece in _split_inline_numbering(line)]
    items: list[str] = []
    top_kind, top_indent = None, 0
    blank_seen = False
    for line in lines:
        if not line.strip():
            blank_seen = bool(items)
            continue
        m = _MARKER.match(line)
        kind = None if m is None else ("num" if m.group("num") else "bullet")
        indent = len(m.group("indent").expandtabs(4)) if m else len(line) - len(line.lstrip())
        if m and (top_kind is None or kind == top_kind or indent <= top_indent):
            if top_kind is None:
                top_kind, top_indent = kind, indent
            items.append(line[m.end() :].strip())
        elif items and not blank_seen and (indent > top_indent or m or _split_at_separator(items[-1])[0] is None):
            body = line[m.end() :].strip() if m else line.strip()
            joiner = " " if _split_at_separator(items[-1])[0] is not None else ": "
            items[-1] = f"{items[-1]}{joiner}{body}"
        elif items:
            break  # trailing chatter ("These sounds would create ...")
        blank_seen = False
    return items


def _bare_items(text: str) -> list[str]:
    """No markers: semicolon lists or short lines, minus preamble and image-description prose."""
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    if len(lines) == 1 and ";" in lines[0]:
        lines = [p for p in lines[0].split(";") if p.strip()]
    items = []
    for ln in lines:
        if ln.endswith(":") or _PROSE_START.match(ln) or len(ln) > _MAX_ITEM_CHARS:
            continue
        items.append(ln)
    return items
