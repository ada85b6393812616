"""The grounding and depiction scores as plain functions on arrays (no model, no torch).

CLIP's raw image-text similarity has no fixed scale: a photo's best caption may score 0.25 and a
drawing's 0.35, so one threshold on raw cosines cannot hold across images. Both scores are
therefore *per image*: an object's similarity is compared with other prompts *on the same image*.

Grounding: ``σ(l_o − log mean_j exp(l_j))`` with ``l = τ·cos(image, prompt)`` (``τ`` is CLIP's own
logit scale), ``o`` the concept's object in "a photo of {}" and ``j`` a fixed list of reference
objects (common sound sources and the ambiences VLMs add by association), leaving out references
that name the object itself. It is the two-way softmax of the object against the references'
average, so 0.5 means "matches the image as well as a typical reference", and an object that
is really there beats most references by far. Unlike a softmax over the image's own concepts it
does not depend on how many concepts the VLM returned: one lone hallucinated concept would win a
softmax against itself, and three real ones would split it.

Depiction: the share of CLIP's zero-shot probability that falls on "a drawing / painting /
statue ... of {}" against "a photo of {}". Per image it is one softmax pooled over all the image's
prompts, ``σ(log Σ_{o,k} exp(l_ok) − log Σ_o exp(l_o,photo))`` over its objects ``o`` and the
depiction prompts ``k`` (:func:`image_depiction_scores`; not an average of per-object scores, which
would let one absent object's prompts tip a photo into a "drawing").

The thresholds are applied to the scores as the output stores them (float32,
:func:`stored_score`), so a kept concept's recorded score is never below the threshold and a
dropped one's never at or above it (:func:`is_ungrounded`, :func:`is_depiction`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_ARTICLES = ("a ", "an ", "the ", "some ")


def fill_template(template: str, text: str) -> str:
    """``template`` with its ``{}`` replaced by ``text`` (no ``str.format``: braces in text are kept)."""
    return template.replace("{}", " ".join(text.split()))


def object_key(text: str) -> str:
    """How objects are compared: lower case, single spaces, no leading article ("A Dog" -> "dog")."""
    t = " ".join(text.lower().split())
    for a in _ARTICLES:
        t = t.removeprefix(a)
    return t


def reference_mask(objects: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """(N, R) bool: True where reference ``j`` may be compared with object ``i``.

    A reference that names the object itself (case, spacing and a leading article ignored:
    "Seagulls" and "seagulls", "Dog" and "a dog") is left out, or a present object would be
    measured against itself.
    """
    refs = [object_key(r) for r in references]
    return np.array([[r != object_key(o) for r in refs] for o in objects], dtype=bool).reshape(len(objects), len(refs))


def stored_score(score: float | None) -> float | None:
    """``score`` rounded to float32, as the concepts and images tables store it; None for None or NaN."""
    if score is None or not np.isfinite(score):
        return None
    return float(np.float32(score))


def is_ungrounded(grounding: float | None, threshold: float) -> bool:
    """Whether a concept with this grounding score is dropped: its stored (float32) score is below
    ``threshold``. None (no object, or no reference left to compare) is never dropped."""
    g = stored_score(grounding)
    return g is not None and g < threshold


def is_depiction(score: float | None, threshold: float) -> bool:
    """Whether an image with this depiction score is dropped: its stored (float32) score is above
    ``threshold``. None is never dropped."""
    d = stored_score(score)
    return d is not None and d > threshold


def _masked_logmeanexp(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) ``log mean_{j: mask[i, j]} exp(logits[i, j])``, stable; NaN for a row with no True."""
    x = np.where(mask, logits, -np.inf)
    top = x.max(axis=1, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    count = mask.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(np.exp(x - safe).sum(axis=1)) + safe[:, 0] - np.log(count)
    return np.where(count > 0, out, np.nan)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-x)), np.exp(x) / (1.0 + np.exp(x)))


def grounding_scores(
    object_logits: np.ndarray, reference_logits: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Per concept, how much better its image matches its object than the references (0..1).

    ``object_logits``: (N,) ``τ·cos(image_i, "a photo of <object_i>")``;
    ``reference_logits``: (N, R) ``τ·cos(image_i, "a photo of <reference_j>")``;
    ``mask``: (N, R) bool, which references count for concept ``i`` (default all; see
    :func:`reference_mask`). Returns (N,) float64 ``σ(l_o − log mean_j exp(l_j))``; NaN where
    the mask leaves no reference.
    """
    lo = np.asarray(object_logits, dtype=np.float64)
    lr = np.asarray(reference_logits, dtype=np.float64)
    if lr.ndim != 2 or lo.shape != (lr.shape[0],):
        raise ValueError(f"object_logits must be (N,) and reference_logits (N, R), got {lo.shape} and {lr.shape}")
    m = np.ones(lr.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != lr.shape:
        raise ValueError(f"mask must be {lr.shape}, got {m.shape}")
    return _sigmoid(lo - _masked_logmeanexp(lr, m))


def depiction_scores(photo_logits: np.ndarray, depiction_logits: np.ndarray) -> np.ndarray:
    """Per object, CLIP's zero-shot probability that the image depicts it rather than shows it (0..1).

    ``photo_logits``: (N,) ``τ·cos(image, "a photo of <object>")``; ``depiction_logits``: (N, K)
    ``τ·cos(image, "a drawing of <object>")`` and the other depiction prompts. Returns (N,) float64:
    the softmax mass of the K depiction prompts among the K + 1, ``σ(log Σ_k exp(l_k) − l_photo)``.
    """
    lp = np.asarray(photo_logits, dtype=np.float64)
    ld = np.asarray(depiction_logits, dtype=np.float64)
    if ld.ndim != 2 or lp.shape != (ld.shape[0],) or ld.shape[1] == 0:
        raise ValueError(f"photo_logits must be (N,) and depiction_logits (N, K>0), got {lp.shape} and {ld.shape}")
    m = np.ones(ld.shape, dtype=bool)
    return _sigmoid(_masked_logmeanexp(ld, m) + np.log(ld.shape[1]) - lp)


def image_depiction_scores(
    photo_logits: np.ndarray, depiction_logits: np.ndarray, groups: np.ndarray, n_groups: int
) -> np.ndarray:
    """Per image, CLIP's zero-shot probability on the depiction prompts of all its objects (0..1).

    ``photo_logits``: (P,) one per (image, object) pair, ``depiction_logits``: (P, K), ``groups``:
    (P,) int, the image of each pair. Returns (n_groups,) float64: one softmax over all the image's
    prompts, ``σ(log Σ_{p,k} exp(l_pk) − log Σ_p exp(l_p,photo))``; NaN for an image with no pair.
    The prompts of the object that is really there carry the most weight on both sides, so a
    concept for an absent object cannot tip a photo into a "drawing" (an average over objects would
    let it).
    """
    lp = np.asarray(photo_logits, dtype=np.float64)
    ld = np.asarray(depiction_logits, dtype=np.float64)
    g = np.asarray(groups, dtype=np.int64)
    if ld.ndim != 2 or lp.shape != (ld.shape[0],) or g.shape != lp.shape or ld.shape[1] == 0:
        raise ValueError(
            "photo_logits (P,), depiction_logits (P, K>0) and groups (P,) expected, "
            f"got {lp.shape}, {ld.shape}, {g.shape}"
        )
    member = g[None, :] == np.arange(n_groups)[:, None]  # (n_groups, P)
    photo = _masked_logmeanexp(np.broadcast_to(lp, member.shape), member) + np.log(np.maximum(member.sum(1), 1))
    dep_all = np.repeat(member, ld.shape[1], axis=1)  # (n_groups, P*K)
    flat = np.broadcast_to(ld.reshape(-1), dep_all.shape)
    dep = _masked_logmeanexp(flat, dep_all) + np.log(np.maximum(dep_all.sum(1), 1))
    return _sigmoid(dep - photo)
