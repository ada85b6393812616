"""Grounded concepts and the depiction filter (the paper's own failure cases, Appendix A.4).

A VLM sometimes names objects that are not in the image ("seagulls" for every beach) and gives
sounds to drawings, paintings and statues. This package checks both with CLIP:

- :func:`grounding_scores`: how much better the image matches "a photo of <object>" than a fixed
  list of reference objects, per image (a probability; 0.5 = as good as the references' average);
- :func:`depiction_scores`: the share of CLIP's zero-shot probability on "a drawing / painting /
  statue ... of <object>" against "a photo of <object>";
- :class:`Grounder`: loads a CLIP with ``transformers`` and embeds images and prompts in batches;
  :func:`clip_weights_digest`: the digest of its weights (what the concepts stage's fingerprint
  records, so a resume with other weights is refused and one with the same weights moved is not).

The concepts stage (``seeing_sound.concepts``) runs them when ``grounding`` names a CLIP.
Torch and transformers are imported only when a :class:`Grounder` is built.
"""

from seeing_sound.grounding.calibration import (
    depiction_scores,
    fill_template,
    grounding_scores,
    image_depiction_scores,
    is_depiction,
    is_ungrounded,
    object_key,
    reference_mask,
    stored_score,
)
from seeing_sound.grounding.model import Grounder, clip_folder, clip_weights_digest
from seeing_sound.grounding.prompts import (
    DEFAULT_DEPICTION_PROMPTS,
    DEFAULT_REFERENCES,
    PHOTO_PROMPT,
    check_template,
)

__all__ = [
    "DEFAULT_DEPICTION_PROMPTS",
    "DEFAULT_REFERENCES",
    "PHOTO_PROMPT",
    "Grounder",
    "check_template",
    "clip_folder",
    "clip_weights_digest",
    "depiction_scores",
    "fill_template",
    "grounding_scores",
    "image_depiction_scores",
    "is_depiction",
    "is_ungrounded",
    "object_key",
    "reference_mask",
    "stored_score",
]
