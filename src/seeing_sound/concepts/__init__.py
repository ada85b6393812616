"""Sounding concepts (paper Section 3.2, Figure 2, Appendix A.2).

A vision-language model lists, for each image, up to three objects visible in it with their
sounds; images whose caption mentions a logo-like subject are dropped as inherently silent.

    from seeing_sound.concepts import VLMSpec, run_concepts, read_concepts
    report = run_concepts(["photos/"], "out/", vlms=[VLMSpec.parse("openai:llava-1.5", base_url=...)])
    concepts, images = read_concepts("out/")

With ``grounding="<CLIP>"`` (and ``filter_depictions=True``) a CLIP checks the answers: concepts
whose object is not in the image and images that only depict their objects (drawings, statues)
are dropped and counted (the paper's Appendix A.4; see :mod:`seeing_sound.grounding`).

Torch and transformers are imported only when a ``transformers`` back end or a CLIP is built.
"""

from seeing_sound.concepts.backends import DEFAULT_TRANSFORMERS_MODEL, Generation, VLMRequest, VLMSpec
from seeing_sound.concepts.filter import match_filter_word
from seeing_sound.concepts.parse import Concept, ParseResult, parse_concepts
from seeing_sound.concepts.prompts import CAPTION_PROMPT, CONCEPT_PROMPT, FILTER_WORDS, MAX_CONCEPTS
from seeing_sound.concepts.run import ConceptsReport, read_concepts, run_concepts

__all__ = [
    "CAPTION_PROMPT",
    "CONCEPT_PROMPT",
    "DEFAULT_TRANSFORMERS_MODEL",
    "FILTER_WORDS",
    "MAX_CONCEPTS",
    "Concept",
    "ConceptsReport",
    "Generation",
    "ParseResult",
    "VLMRequest",
    "VLMSpec",
    "match_filter_word",
    "parse_concepts",
    "read_concepts",
    "run_concepts",
]  # fmt: skip
