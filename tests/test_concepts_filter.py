"""Silent-image filter (Appendix A.2): whole words, case-insensitive, plurals, configurable."""

import pytest

from seeing_sound.concepts import FILTER_WORDS, match_filter_word


def test_paper_keywords():
    assert FILTER_WORDS == ("logo", "icon", "emblem", "symbol", "trademark", "sign")


@pytest.mark.parametrize(
    "caption, word",
    [
        ("The Nike logo on a white background.", "logo"),
        ("Several LOGOS printed on a shirt", "logo"),
        ("A row of app icons.", "icon"),
        ("An emblem of a lion.", "emblem"),
        ("Mathematical symbols on a blackboard", "symbol"),
        ("The company's trademark, in red", "trademark"),
        ("A stop sign at a crossroads", "sign"),
        ("Road signs along the highway", "sign"),
        ("A stop-sign, partly hidden", "sign"),
        ("Sign: 'Open'", "sign"),
        ("a logo's outline", "logo"),
    ],
)
def test_matches_whole_words_and_plurals(caption, word):
    assert match_filter_word(caption, FILTER_WORDS) == word


@pytest.mark.parametrize(
    "caption",
    [
        "A modern interior design with a sofa.",
        "A traffic signal at night.",
        "A signature at the bottom of a letter.",
        "An iconic bridge over the river.",
        "A symbolic gesture between two people.",
        "Digital signage in a mall.",
        "A soldier's insignia.",
        "They were assigned seats.",
        "An emblematic building.",
        "A dog running on the beach.",
        "",
        None,
    ],
)
def test_does_not_match_inside_other_words(caption):
    assert match_filter_word(caption, FILTER_WORDS) is None


def test_custom_words_and_phrases():
    assert match_filter_word("A street  sign in fog", ["street sign"]) == "street sign"
    assert match_filter_word("a watermark in the corner", ["watermark"]) == "watermark"
    assert match_filter_word("A stop sign", ["watermark"]) is None
    assert match_filter_word("Two Flags", ["flag"]) == "flag"


def test_bad_words_are_rejected():
    with pytest.raises(ValueError, match="filter_words"):
        match_filter_word("x", [])
    with pytest.raises(ValueError, match="filter_words"):
        match_filter_word("x", ["lo(go"])
