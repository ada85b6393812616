"""Concepts hardening: --max-pixels is the one image limit; garbage answers are not concepts."""

import struct
import zlib

import pytest

from seeing_sound.concepts.images import DEFAULT_MAX_PIXELS, DecodeError, decode_rgb
from seeing_sound.concepts.parse import parse_concepts, reads_as_words, strip_controls


def _png_header(w: int, h: int) -> bytes:
    """A PNG that claims ``w`` x ``h`` pixels but holds almost no data (cheap to make and to refuse)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _reason(data, max_pixels):
    try:
        decode_rgb(data, max_side=64, max_pixels=max_pixels)
    except DecodeError as exc:
        return exc.reason
    return None


def test_max_pixels_can_raise_pillows_own_limit():
    big = _png_header(13_000, 13_000)  # 169 Mpx: Pillow alone refuses it at 89,478,485
    assert _reason(big, 500_000_000) == "truncated"  # accepted as a size, then found truncated
    assert _reason(big, 100_000_000) == "decompression-bomb"


def test_the_documented_default_is_the_limit_that_applies():
    assert _reason(_png_header(10_000, 10_000), DEFAULT_MAX_PIXELS) == "truncated"  # 100 Mpx < 178,956,970
    assert _reason(_png_header(14_000, 14_000), DEFAULT_MAX_PIXELS) == "decompression-bomb"


@pytest.mark.parametrize(
    "text,ok",
    [
        ("qwv#@!~ zzzz \x00\x07 ßß ???", False),
        ("#$%^&* @@@", False),
        ("zzzz qwv", False),
        ("D - d", True),
        ("猫: 喵", True),
        ("Zzz: snoring", True),
        ("Dog - barking (woof!)", True),
        ("Café - clinking cups", True),
    ],
)
def test_word_rule(text, ok):
    assert reads_as_words(strip_controls(text)) is ok


def test_garbage_answer_is_unparseable_and_controls_never_reach_a_concept():
    assert parse_concepts("qwv#@!~ zzzz \x00\x07 ßß ???").error == "unparseable"
    parsed = parse_concepts("1. Dog\x07 - bark\x00ing\n2. Bell\u200b - ringing\u202e")
    assert [c.text for c in parsed.concepts] == ["Dog: barking", "Bell: ringing"]
