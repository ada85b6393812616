"""Train/benchmark leakage: near-duplicate images and audio between training data and benchmarks.

The paper (Sec. 4.4, A.6) observes that several prior models were trained on the very benchmarks
they are evaluated on. :func:`check_leakage` measures that for a training set of ours: near-duplicate
images (CLIP cosine and perceptual hash) and near-duplicate audio (spectral-peak landmark
fingerprints, :mod:`seeing_sound.leakage.fingerprint`), and writes exclusion lists that a future
``sonify --exclude-chunks/--exclude-images`` can take.
"""

from seeing_sound.leakage.config import LeakageConfig
from seeing_sound.leakage.fingerprint import Fingerprint, FingerprintIndex, Match, match
from seeing_sound.leakage.report import LeakageReport
from seeing_sound.leakage.run import check_leakage

__all__ = [
    "Fingerprint",
    "FingerprintIndex",
    "LeakageConfig",
    "LeakageReport",
    "Match",
    "check_leakage",
    "match",
]
