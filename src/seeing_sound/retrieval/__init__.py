"""Algorithm 1 of the paper (text-to-audio retrieval with SSR and a top-k mean threshold).

Pure numpy (faiss optional, imported lazily); no model imports. See
:mod:`seeing_sound.retrieval.algorithm` for the proof that exact top-k search gives the
printed algorithm's candidate set.
"""

from seeing_sound.retrieval.algorithm import DEFAULT_BUDGET, Candidates, Matches, candidate_sets, match
from seeing_sound.retrieval.seeds import choice_positions, concept_seed, concept_seeds, splitmix64
from seeing_sound.retrieval.stats import usage_stats

__all__ = [
    "match", "Matches", "candidate_sets", "Candidates", "DEFAULT_BUDGET",
    "concept_seed", "concept_seeds", "choice_positions", "splitmix64", "usage_stats",
]
