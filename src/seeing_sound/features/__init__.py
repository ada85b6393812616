"""Precomputed training features (AST audio tokens, VAE image latents) stored beside a dataset."""

from seeing_sound.features.run import compute_features
from seeing_sound.features.store import FeatureSet, find_feature_set

__all__ = ["FeatureSet", "compute_features", "find_feature_set"]
