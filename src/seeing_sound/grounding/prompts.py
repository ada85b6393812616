"""Default prompts of the grounding and depiction checks (ours: the paper has no such step)."""

from __future__ import annotations

#: the template every object is scored with; ``{}`` is replaced by the object's text
PHOTO_PROMPT = "a photo of {}"

#: what an image that only *depicts* an object looks like (Appendix A.4: drawings, paintings, statues)
DEFAULT_DEPICTION_PROMPTS = (
    "a drawing of {}",
    "a painting of {}",
    "a cartoon of {}",
    "a statue of {}",
    "a sculpture of {}",
    "a toy {}",
)

#: objects each concept's object is compared with, in the same image: common sound sources,
#: and the ambiences VLMs add by association (Appendix A.4's seagulls on every beach)
DEFAULT_REFERENCES = (
    "a bird", "seagulls", "a dog", "a cat", "a horse", "a cow", "insects", "a person", "a crowd", "children",
    "a car", "traffic", "a train", "an airplane", "a boat", "an engine", "music", "a musical instrument",
    "a bell", "a clock", "a phone", "a television", "water", "waves", "rain", "wind", "fire", "a door",
    "footsteps", "something",
)  # fmt: skip


def check_template(template: str) -> str:
    """``template`` if it holds exactly one ``{}`` (where the object goes), else ``ValueError``."""
    if not isinstance(template, str) or template.count("{}") != 1 or not template.replace("{}", "").strip():
        raise ValueError(f"a prompt template must hold exactly one {{}} and some words, got {template!r}")
    return template
