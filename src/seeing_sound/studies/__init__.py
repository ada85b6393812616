"""Studies of the paper's appendix, each writing a CSV, a PNG plot and a short Markdown summary.

* :func:`loudness_study`: loudness retention in AST embeddings (A.8, Fig. 15).
* :func:`memorization_study`: nearest training image of every generated image (A.6, Fig. 14).
* :func:`ssr_study`: candidate-set sizes and chunk usage with and without SSR (Algorithm 1).

Studies are one-shot analyses over small inputs, not sharded stages: each is one function in its
own module. Plots use matplotlib's Agg back end, imported only when a study runs
(``pip install 'seeing-sound[studies]'``).
"""

from seeing_sound.studies.loudness import LoudnessReport, knn_predict, loudness_study, summarize_tokens
from seeing_sound.studies.memorization import MemorizationReport, memorization_study, nearest
from seeing_sound.studies.ssr import SsrReport, compare_ssr, ssr_study

__all__ = [
    "LoudnessReport",
    "MemorizationReport",
    "SsrReport",
    "compare_ssr",
    "knn_predict",
    "loudness_study",
    "memorization_study",
    "nearest",
    "ssr_study",
    "summarize_tokens",
]
