"""Settings of the concepts stage (paper Section 3.2, Appendix A.2): one field each."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from seeing_sound.concepts.backends import DEFAULT_TRANSFORMERS_MODEL, VLMSpec
from seeing_sound.concepts.filter import compile_filter
from seeing_sound.concepts.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE
from seeing_sound.concepts.prompts import CAPTION_PROMPT, CONCEPT_PROMPT, FILTER_WORDS, MAX_CONCEPTS
from seeing_sound.config import Config, ConfigError, option
from seeing_sound.grounding import (
    DEFAULT_DEPICTION_PROMPTS,
    DEFAULT_REFERENCES,
    PHOTO_PROMPT,
    check_template,
    object_key,
)

DEFAULT_SHARD_SIZE = 256
#: VLMSpec fields that change what a back end answers; batch size, concurrency, timeouts and URLs may change on resume
VLM_OUTPUT_KEYS = ("kind", "model", "name", "max_new_tokens", "dtype", "trust_remote_code", "sidecar_key")


_TUPLE_FIELDS = ("vlms", "filter_words", "grounding_references", "depiction_prompts")


def _default_vlms() -> tuple[VLMSpec, ...]:
    return (VLMSpec("transformers", DEFAULT_TRANSFORMERS_MODEL),)


@dataclass(frozen=True)
class ConceptsConfig(Config):
    """Which VLMs answer, with which prompts, and how their answers are filtered and parsed."""

    vlms: tuple[VLMSpec, ...] = option(
        default_factory=_default_vlms,
        help="back ends, run in order; all their concepts are kept "
        "(ours: one local LLaVA-1.5-7B; the paper used LLaVA and CogVLM)",
    )
    caption_vlm: int = option(
        0, "which of vlms (0-based) writes the captions the filter reads (paper: A.2, LLaVA's)", min=0
    )
    concept_prompt: str = option(
        CONCEPT_PROMPT, "prompt for sounding concepts (paper: Fig. 2)", default_text="Fig. 2's, verbatim"
    )
    caption_prompt: str = option(
        CAPTION_PROMPT, "prompt for the caption the filter reads (paper: Fig. 2)", default_text="Fig. 2's, verbatim"
    )
    max_concepts: int = option(MAX_CONCEPTS, "concepts kept per answer (paper: Fig. 2, up to three)", min=1)
    filter_words: tuple[str, ...] = option(FILTER_WORDS, "silent-image keywords, comma-separated (paper: A.2)")
    no_filter: bool = option(False, "keep every image: no silent-image filter (paper: A.2 filters)")
    captions: bool = option(True, "caption every image; the filter reads the captions (paper: A.2)")
    max_side: int = option(
        DEFAULT_MAX_SIDE,
        "downscale images so the longest side fits (ours: LLaVA-1.5 sees 336 px; bounds memory)",
        min=1,
    )
    max_pixels: int = option(
        DEFAULT_MAX_PIXELS, "refuse larger images (ours: Pillow's decompression-bomb limit)", min=1
    )
    grounding: str | None = option(
        None,
        "CLIP id or path: score each concept's object against its image and drop the ungrounded "
        "(ours: off; the paper's A.4 lists such concepts as a failure)",
        default_text="off",
    )
    grounding_threshold: float = option(
        0.5,
        "drop concepts whose grounding score is below this (ours: 0.5 = the object matches the image "
        "as well as the references' average)",
        min=0.0,
        max=1.0,
    )
    grounding_references: tuple[str, ...] = option(
        DEFAULT_REFERENCES,
        "objects each concept's object is compared with on its image, comma-separated "
        "(ours: common sound sources and the ambiences VLMs add by association)",
        default_text="30 common sound sources",
    )
    photo_prompt: str = option(PHOTO_PROMPT, "CLIP prompt for an object, {} is the object (ours: CLIP's template)")
    filter_depictions: bool = option(
        False,
        "drop images CLIP sees as drawings, paintings, statues ... of their objects; needs grounding "
        "(ours: off; the paper's A.4 lists them as a failure)",
    )
    depiction_prompts: tuple[str, ...] = option(
        DEFAULT_DEPICTION_PROMPTS,
        "CLIP prompts of a depicted object, {} is the object, comma-separated "
        "(ours: A.4's drawings, paintings and statues, and their kin)",
    )
    depiction_threshold: float = option(
        0.5,
        "drop an image when this share of CLIP's probability is on the depiction prompts "
        "(ours: 0.5, more depiction than photo)",
        min=0.0,
        max=1.0,
    )
    grounding_batch_size: int = option(32, "images or prompts per CLIP call (ours)", min=1, fingerprint=False)
    shard_size: int = option(DEFAULT_SHARD_SIZE, "images per output shard (ours)", min=1, fingerprint=False)

    def __post_init__(self):
        for name in _TUPLE_FIELDS:  # lists are welcome; frozen configs hold tuples
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        super().__post_init__()

    def validate(self) -> None:
        if not isinstance(self.vlms, tuple) or not self.vlms:
            raise ConfigError("vlms", self.vlms, "must name at least one back end")
        if not all(isinstance(s, VLMSpec) for s in self.vlms):
            raise ConfigError("vlms", self.vlms, "must be VLMSpec objects (see VLMSpec.parse)")
        ids = [s.model_id for s in self.vlms]
        if len(set(ids)) != len(ids):
            raise ConfigError("vlms", ids, "model ids must be unique so rows say who produced them; set a name")
        if self.caption_vlm >= len(self.vlms):
            raise ConfigError("caption_vlm", self.caption_vlm, f"must index vlms (0..{len(self.vlms) - 1})")
        if not self.captions and not self.no_filter:
            raise ConfigError("captions", False, "captions=False needs no_filter=True (the filter reads captions)")
        for name in ("concept_prompt", "caption_prompt"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(name, value, "must be non-empty text")
        if not self.no_filter:
            try:
                compile_filter(tuple(self.filter_words))
            except (ValueError, TypeError, AttributeError) as exc:
                raise ConfigError("filter_words", self.filter_words, str(exc).removeprefix("filter_words: ")) from None

        self._validate_grounding()

    def _validate_grounding(self) -> None:
        if self.grounding is not None and (not isinstance(self.grounding, str) or not self.grounding.strip()):
            raise ConfigError("grounding", self.grounding, "must name a CLIP model (a hub id or a folder)")
        if self.filter_depictions and self.grounding is None:
            raise ConfigError("filter_depictions", True, "needs grounding (the CLIP that judges the images)")
        refs = {object_key(str(r)) for r in self.grounding_references}  # compared as the scores compare them
        if len(refs) < 2 or "" in refs:
            raise ConfigError(
                "grounding_references", self.grounding_references, "must hold at least two different non-empty objects"
            )
        for name, templates in (("photo_prompt", (self.photo_prompt,)), ("depiction_prompts", self.depiction_prompts)):
            if not templates:
                raise ConfigError(name, templates, "must hold at least one prompt")
            for t in templates:
                try:
                    check_template(t)
                except ValueError as exc:
                    raise ConfigError(name, t, str(exc).split(", got")[0]) from None

    @property
    def grounding_settings(self) -> dict | None:
        """What the grounding and depiction checks depend on (None when grounding is off).

        ``model`` is the CLIP's name or path, for people; the stage's fingerprint checks a resume
        against the digest of its weights instead (:class:`~seeing_sound.concepts.stage.ConceptsStage`),
        which this config cannot know without reading them.
        """
        if self.grounding is None:
            return None
        depictions = (
            {"prompts": list(self.depiction_prompts), "threshold": self.depiction_threshold}
            if self.filter_depictions
            else None
        )
        return {
            "model": self.grounding,
            "threshold": self.grounding_threshold,
            "references": list(self.grounding_references),
            "photo_prompt": self.photo_prompt,
            "depictions": depictions,
        }

    @property
    def words(self) -> tuple[str, ...] | None:
        """The filter's keywords, or None when the filter is off."""
        return None if self.no_filter else tuple(self.filter_words)

    def fingerprint(self) -> dict:
        return {
            "vlms": [{k: v for k, v in asdict(s).items() if k in VLM_OUTPUT_KEYS} for s in self.vlms],
            "concept_prompt": self.concept_prompt,
            "caption_prompt": self.caption_prompt if self.captions else None,
            "filter_words": list(self.words) if self.words is not None else None,
            "caption_vlm": self.caption_vlm,
            "max_concepts": self.max_concepts,
            "max_side": self.max_side,
            "max_pixels": self.max_pixels,
            # only when on, so runs without grounding keep their fingerprint (and resume as before)
            **({"grounding": self.grounding_settings} if self.grounding is not None else {}),
        }
