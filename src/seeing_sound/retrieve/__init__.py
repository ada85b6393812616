"""The ``retrieve`` step: sounding concepts -> pool chunks (Algorithm 1 with real encoders)."""

from seeing_sound.retrieve.command import RetrieveReport, retrieve
from seeing_sound.retrieve.core import DEFAULT_TOPK, RESULT_SCHEMA, open_index, retrieve_concepts
from seeing_sound.retrieve.inputs import normalize_concepts, read_concept_file
from seeing_sound.retrieval.seeds import concept_seed

__all__ = ["retrieve", "RetrieveReport", "retrieve_concepts", "open_index", "DEFAULT_TOPK", "RESULT_SCHEMA",
           "normalize_concepts", "read_concept_file", "concept_seed"]
