"""The paper's prompts (Figure 2) and silent-image keywords (Appendix A.2), verbatim."""

#: Figure 2, "sonically-aligned" prompt: asks for sounding concepts, not a visual description.
#: "visible and present" is the paper's fix for VLMs inventing off-camera sound sources.
CONCEPT_PROMPT = (
    "As a numbered list, provide one to up to three sound(s) associated with prominent objects "
    "visible and present in the image. Provide the objects followed by their associated sound"
)

#: Figure 2, "visually-aligned" prompt: the caption the silent-image filter reads.
CAPTION_PROMPT = "Provide a short and concise description of the following image."

#: Appendix A.2: an image whose caption contains one of these words is dropped as inherently silent.
FILTER_WORDS = ("logo", "icon", "emblem", "symbol", "trademark", "sign")

#: The paper asks for "one to up to three" concepts; extra items a model adds are cut.
MAX_CONCEPTS = 3
