"""The pairs dataset's metadata schema (the paper's A.1 release format, and ours).

One row per pair (an image and its rendered mixture). ``components`` is the mixture's
recipe: every chunk with its retrieval scores and loudness gain, enough to re-render the
audio bit-exactly from the pool (``seeing-sound rebuild``).
"""

from __future__ import annotations

import pyarrow as pa

COMPONENT = pa.struct(
    [
        ("concept_index", pa.int32()),
        ("model", pa.string()),
        ("object", pa.string()),
        ("sound", pa.string()),
        ("concept", pa.string()),
        ("chunk_id", pa.int64()),
        ("chunk_source", pa.string()),
        ("chunk_offset_s", pa.float64()),
        ("chunk_description", pa.string()),
        ("cosine", pa.float32()),
        ("score", pa.float32()),
        ("threshold", pa.float32()),
        ("n_candidates", pa.int32()),
        ("chunk_lufs", pa.float64()),
        ("target_lufs", pa.float64()),
        ("gain_db", pa.float64()),
    ]
)
#: a component of a dataset whose concepts were CLIP-checked (``--grounding``, docs/grounding.md): the
#: concept's grounding (0..1; null for a concept without a separate object). Only such datasets carry
#: the field, so a dataset made without grounding keeps the bytes it always had; read it with .get()
GROUNDED_COMPONENT = pa.struct([*COMPONENT, pa.field("grounding", pa.float32())])

METADATA = pa.schema(
    [
        ("pair_id", pa.string()),
        ("image_id", pa.string()),
        ("image_path", pa.string()),
        ("image_sha256", pa.string()),
        ("scene", pa.string()),
        ("seed", pa.int64()),
        ("components", pa.list_(COMPONENT)),
        ("mixture_gain_db", pa.float64()),
        ("audio_path", pa.string()),
        ("sample_rate", pa.int32()),
        ("num_samples", pa.int64()),
        ("mixture_sha256", pa.string()),
    ]
)

GROUNDED_METADATA = METADATA.set(
    METADATA.get_field_index("components"), pa.field("components", pa.list_(GROUNDED_COMPONENT))
)

COMPONENT_FIELDS = [f.name for f in COMPONENT]
GROUNDED_COMPONENT_FIELDS = [f.name for f in GROUNDED_COMPONENT]


def metadata_schema(grounded: bool) -> pa.Schema:
    """The metadata schema: with components' ``grounding`` when the concepts were CLIP-checked."""
    return GROUNDED_METADATA if grounded else METADATA


def normalize_component(c: dict, grounded: bool = False) -> dict:
    """Fill missing component fields with None so partial recipes (tests, imports) fit the schema."""
    return {name: c.get(name) for name in (GROUNDED_COMPONENT_FIELDS if grounded else COMPONENT_FIELDS)}
