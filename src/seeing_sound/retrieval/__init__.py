"""Algorithm 1 of the paper (text-to-audio retrieval with SSR and a top-k mean threshold), and the retrieve stage.

The maths (:mod:`~seeing_sound.retrieval.algorithm`, :mod:`~seeing_sound.retrieval.scores`,
:mod:`~seeing_sound.retrieval.search`, :mod:`~seeing_sound.retrieval.reference`) is pure numpy
(faiss optional, imported lazily); :mod:`~seeing_sound.retrieval.index` serves it over a pool's
stored embeddings; :mod:`~seeing_sound.retrieval.stage` and :mod:`~seeing_sound.retrieval.run`
retrieve a chunk for every sounding concept. See :mod:`seeing_sound.retrieval.algorithm` for the
proof that exact top-k search gives the printed algorithm's candidate set.
"""

from seeing_sound.retrieval.algorithm import DEFAULT_BUDGET, Candidates, Matches, PreparedPool, candidate_sets, match
from seeing_sound.retrieval.index import PoolEmbeddings, PoolIndex, load_embeddings
from seeing_sound.retrieval.inputs import normalize_concepts, read_concept_file
from seeing_sound.retrieval.run import RetrieveReport, retrieve
from seeing_sound.retrieval.stage import DEFAULT_TOPK, RESULT_SCHEMA, RetrieveStage, open_index, retrieve_concepts
from seeing_sound.retrieval.stats import usage_stats
from seeing_sound.seeding import choice_positions, concept_seed, concept_seeds, splitmix64

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_TOPK",
    "RESULT_SCHEMA",
    "Candidates",
    "Matches",
    "PoolEmbeddings",
    "PoolIndex",
    "PreparedPool",
    "RetrieveReport",
    "RetrieveStage",
    "candidate_sets",
    "choice_positions",
    "concept_seed",
    "concept_seeds",
    "load_embeddings",
    "match",
    "normalize_concepts",
    "open_index",
    "read_concept_file",
    "retrieve",
    "retrieve_concepts",
    "splitmix64",
    "usage_stats",
]
