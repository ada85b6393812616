"""``seeing-sound score``: a quality score per pair of a dataset (the paper's AIS of its mixture and image).

| module | holds |
| --- | --- |
| ``config`` | ``ScoreConfig``: the models and settings |
| ``stage`` | ``PairScoreStage``: one Parquet part per metadata shard (resumable), error rows with reasons |
| ``run`` | ``score_pairs``: the run, the merge into ``scores.parquet`` (one column per pair of models) |
| ``report`` | ``report.json`` numbers, ``histogram.svg`` and ``report.md`` |

The file format and the threshold ``train`` and ``export hf`` apply live in
:mod:`seeing_sound.model.training.pair_scores`.
"""

from seeing_sound.scoring.config import ScoreConfig
from seeing_sound.scoring.run import ScoreReport, score_pairs

__all__ = ["ScoreConfig", "ScoreReport", "score_pairs"]
