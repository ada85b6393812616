"""Evaluation (Sec. 4.2, Table 1): FID, KID, AIS and IIS, and the ``evaluate`` stage.

Metrics are pure functions on feature arrays (:mod:`seeing_sound.evaluation.metrics`); the
feature extractors (Inception pool3, CLIP image tower, Wav2CLIP) are thin wrappers that only load,
batch and call; :func:`evaluate_folders` and :func:`evaluate_model` are what ``seeing-sound
evaluate`` calls. Importing this package does not import torch.
"""

from seeing_sound.evaluation.config import METRICS, PROTOCOLS, RESIZE_POLICIES, EvaluateConfig
from seeing_sound.evaluation.metrics import (
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    kernel_inception_distance,
    paired_cosine,
    rank_score,
)
from seeing_sound.evaluation.run import evaluate_folders, evaluate_model

__all__ = [
    "METRICS",
    "PROTOCOLS",
    "RESIZE_POLICIES",
    "EvaluateConfig",
    "evaluate_folders",
    "evaluate_model",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
    "kernel_inception_distance",
    "paired_cosine",
    "rank_score",
]
