"""Benchmark preparation: an official audio-visual benchmark -> one uniform BENCH folder.

Each video gives one item, the paper's protocol (A.5): its center frame and its whole audio track
(16 kHz mono). See :mod:`seeing_sound.bench.layout` for the folder contract that ``evaluate`` reads,
:func:`prepare_benchmark` for the entry point and :func:`balanced_sample` for VGGSound's ~1K
class-balanced test sample. Decoding uses PyAV (``pip install 'seeing-sound[video]'``); nothing here
imports torch.
"""

from seeing_sound.bench.config import BENCHMARKS, BenchConfig
from seeing_sound.bench.run import BenchReport, prepare_benchmark
from seeing_sound.bench.sampling import balanced_sample, class_quotas
from seeing_sound.bench.sources import BenchItem, folder_items, greatest_hits_items, vggsound_items
from seeing_sound.bench.video import BadVideo, DecodedVideo, decode_video

__all__ = [
    "BENCHMARKS",
    "BadVideo",
    "BenchConfig",
    "BenchItem",
    "BenchReport",
    "DecodedVideo",
    "balanced_sample",
    "class_quotas",
    "decode_video",
    "folder_items",
    "greatest_hits_items",
    "prepare_benchmark",
    "vggsound_items",
]
