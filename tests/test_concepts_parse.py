"""Parser: a corpus of realistic VLM outputs (Figure 2 styles, list styles, chatter, malformed)."""

import json
from pathlib import Path

import pytest

from seeing_sound.concepts.parse import Concept, concepts_from_items, parse_concepts, split_item

CORPUS = json.loads((Path(__file__).parent / "data" / "concepts" / "parser_corpus.json").read_text())


def test_corpus_is_large_and_mixed():
    assert len(CORPUS) >= 30
    assert sum("error" in c for c in CORPUS) >= 5  # malformed outputs are part of it


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_corpus(case):
    result = parse_concepts(case["text"])
    if "error" in case:
        assert result.error == case["error"] and result.concepts == ()
        return
    assert result.ok, result.error
    assert [[c.object, c.sound] for c in result.concepts] == case["expect"]
    for c in result.concepts:  # the text to embed is "object: sound", or the sound alone
        assert c.text == (f"{c.object}: {c.sound}" if c.object else c.sound)


def test_max_items_is_configurable_and_validated():
    text = "1. A - a\n2. B - b\n3. C - c\n4. D - d"
    assert len(parse_concepts(text).concepts) == 3
    assert [c.object for c in parse_concepts(text, max_items=4).concepts] == ["A", "B", "C", "D"]
    assert len(parse_concepts(text, max_items=1).concepts) == 1
    with pytest.raises(ValueError, match="max_items"):
        parse_concepts(text, max_items=0)


def test_none_is_empty_output():
    assert parse_concepts(None).error == "empty-output"


def test_split_item_forms():
    assert split_item("Dog - barking") == Concept("Dog", "barking", "Dog: barking")
    assert split_item("'Rain: Sound: pattering on the roof',") == Concept(
        "Rain", "pattering on the roof", "Rain: pattering on the roof"
    )
    assert split_item("Crickets chirping") == Concept(None, "Crickets chirping", "Crickets chirping")
    assert split_item("Bell:") == Concept(None, "Bell", "Bell")
    assert split_item("  ") is None and split_item("--") is None


def test_items_from_a_sidecar_list_are_split_and_deduplicated():
    result = concepts_from_items(["Dog: barking", "dog: barking", "Cat - purring", ""])
    assert [c.text for c in result.concepts] == ["Dog: barking", "Cat: purring"]
    assert concepts_from_items(["", "  "]).error == "unparseable"
