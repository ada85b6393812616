"""Real audio-visual pairs as a first-class dataset: ``pairs import``.

:func:`import_pairs` turns a folder of (image, audio) files matched by stem, or of videos (center
frame + whole audio track, the ``bench prepare`` extraction), into a pairs dataset in ``sonify``'s
format, so ``features`` and ``train`` run on real data as on sonified data.
"""

from seeing_sound.pairs.config import PairsImportConfig
from seeing_sound.pairs.run import ImportReport, import_pairs
from seeing_sound.pairs.sources import ImportItem, list_pairs

__all__ = ["ImportItem", "ImportReport", "PairsImportConfig", "import_pairs", "list_pairs"]
