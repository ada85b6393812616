"""Dataset and model cards (``README.md`` with YAML metadata) for the Hugging Face Hub.

The license is left to the user (``license: other`` plus a note): the images' and sounds' licenses
decide what a derived dataset may be released under, and only the publisher knows them.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from seeing_sound import __version__

LICENSE_NOTE = (
    "**License: set one before publishing.** The pairs derive from your images and your audio pool; their "
    "licenses (e.g. SA-1B's research license, Freesound's per-file CC licenses) decide what this may be "
    "released under. Edit `license:` in the YAML header."
)


def _yaml_scalar(v: Any) -> str:
    return (
        json.dumps(v)
        if isinstance(v, str)
        else ("null" if v is None else str(v).lower() if isinstance(v, bool) else str(v))
    )


def _yaml(d: dict, indent: int = 0) -> str:
    """A small YAML emitter (JSON-compatible scalars) for card headers: no PyYAML needed."""
    pad = " " * indent
    lines = []
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"{pad}{k}:")
            lines.append(_yaml(v, indent + 2))
        elif isinstance(v, list):
            lines.append(f"{pad}{k}:")
            for item in v:
                if isinstance(item, dict):
                    first, *rest = _yaml(item, indent + 4).splitlines()
                    lines.append(f"{pad}  - {first.strip()}")
                    lines.extend(rest)
                else:
                    lines.append(f"{pad}  - {_yaml_scalar(item)}")
        else:
            lines.append(f"{pad}{k}: {_yaml_scalar(v)}")
    return "\n".join(lines)


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _list(items) -> str:
    items = [i for i in (items or []) if i]
    return "\n".join(f"- {i!s}".replace("\n", " ") for i in items) if items else "- (not recorded)"


def dataset_card(ds, cfg, report, features: dict) -> str:
    """README.md of an export: YAML (configs, features, tags, size) + prompts, models, parameters, counts."""
    card = ds.card
    name = cfg.pretty_name or ds.root.resolve().name
    header: dict[str, Any] = {
        "license": "other",
        "pretty_name": name,
        "tags": ["audio", "image", "audio-to-image", "seeing-sound", "synthetic-pairs"],
        "task_categories": ["text-to-image", "audio-classification"],
        "size_categories": [size_category(report.rows)],
        "configs": [
            {"config_name": "default", "data_files": [{"split": cfg.split, "path": f"data/{cfg.split}-*.parquet"}]}
        ],
    }
    concepts = card.get("concepts") or {}
    retrieval = card.get("retrieval") or {}
    params = card.get("params") or {}
    counts = card.get("counts") or {}
    encoder_info = f"({json.dumps(retrieval['encoder_info'])})" if retrieval.get("encoder_info") else ""
    media = "images and mixtures as bytes (`Image()`, `Audio()` features)"
    if cfg.metadata_only:
        media = (
            "**recipes only** (no images or audio): rebuild the audio with "
            "`seeing-sound rebuild THIS_FOLDER --pool POOL --out DIR` from the same pool"
        )
    body = f"""# {name}

Audio-visual pairs made by [seeing-sound](https://github.com/) {card.get("seeing_sound_version", __version__)}
(export by {__version__}): images sonified with sounding concepts from a vision-language model, CLAP/text
retrieval from an audio pool (Algorithm 1) and LUFS-normalized mixing (Appendix A.9).

{LICENSE_NOTE}

## Contents

{report.rows} pairs in {len(report.shards)} Parquet shard(s); {media}. Every metadata column of the
dataset is kept: `components` is the mixture's recipe (chunk id, source file, offset, concept, cosine and SSR
scores, threshold, chunk loudness, target LUFS, gain), `mixture_gain_db` the whole-mixture headroom gain,
`recipe` the same as a `Mixture` record (JSON). Sample rate {card.get("sample_rate")} Hz.

```python
import datasets
ds = datasets.load_dataset("PATH_OR_REPO", split="{cfg.split}")
ds[0]["image"]          # PIL image
ds = ds.cast_column("audio", datasets.Audio(decode=False))  # without torchcodec: bytes
```

Decoding `Audio()` needs `torchcodec`; without it, cast to `Audio(decode=False)` and decode the bytes with
`soundfile.read(io.BytesIO(row["audio"]["bytes"]))`.

## Prompts and models

Concept models:
{_list(concepts.get("models"))}

Concept prompts:
{_list(concepts.get("concept_prompts"))}

Caption models / prompts (silent-image filter):
{_list(concepts.get("caption_models"))}
{_list(concepts.get("caption_prompts"))}

Retrieval encoder: `{params.get("encoder")}` `{params.get("model")}` {encoder_info}

## Parameters

```json
{json.dumps(params, indent=2, sort_keys=True)}
```

## Counts

```json
{json.dumps(counts, indent=2, sort_keys=True)}
```
"""
    scored = getattr(report, "pair_scores", None)
    if scored:
        models = scored.get("models") or {}
        named = ", ".join(f"{k} `{m.get('model')}` ({m.get('revision')})" for k, m in sorted(models.items()))
        body += f"""
## Pair-score filter

Only pairs whose `{scored["column"]}` (AIS of the mixture and the image, `seeing-sound score`) is at least
{scored["min_pair_score"]} are exported: {scored["kept"]} of {scored["pairs"]} pairs kept, {scored["below"]} below
the threshold, {scored["unscored"]} without a score. Scoring models: {named or "not recorded"}.
"""
    if report.missing_images or report.missing_audio:
        body += (
            f"\n{len(report.missing_images)} pairs have no image and {len(report.missing_audio)} no audio "
            "(null cells): their files were missing at export.\n"
        )
    return f"---\n{_yaml(header)}\n---\n\n{body}"


def public_paths(obj):
    """``obj`` (parsed JSON) with every absolute local path cut to its last component.

    A run's ``train_config.json`` names where its datasets, checkpoint and outputs lived on the
    machine that trained it; a public card keeps only their names.
    """
    if isinstance(obj, dict):
        return {k: public_paths(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [public_paths(v) for v in obj]
    if isinstance(obj, str) and (obj.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", obj)):
        return PureWindowsPath(obj).name if re.match(r"^[A-Za-z]:", obj) else PurePosixPath(obj).name
    return obj


def model_card(run_info: dict, repo: str) -> str:
    """README.md of a pushed run: YAML (library diffusers, pipeline tag) + how to load and generate."""
    header = {
        "license": "other",
        "library_name": "diffusers",
        "tags": ["audio-to-image", "seeing-sound", "pixart", "ast"],
        "pipeline_tag": "text-to-image",
    }
    return f"""---
{_yaml(header)}
---

# {repo}

An AudioPixArt model trained with [seeing-sound](https://github.com/) {__version__}: PixArt-α whose caption
projection is replaced by an audio projector over AST tokens. A diffusers-style `AudioPixArtPipeline`
(transformer, VAE, scheduler, AST audio encoder and its feature extractor).

{LICENSE_NOTE}

```python
from seeing_sound.model import AudioPixArtPipeline
pipe = AudioPixArtPipeline.from_pretrained("{repo}")
image = pipe(audio=wave, sampling_rate=16000, num_inference_steps=20).images[0]
```

or `seeing-sound generate sound.wav --model DOWNLOADED_FOLDER --out images/`. Inputs are scaled to the training
loudness, {run_info.get("target_lufs")} LUFS (`seeing_sound_loudness.json`), before embedding.

## Training

```json
{json.dumps(public_paths(run_info.get("train_config") or {}), indent=2, sort_keys=True)}
```
"""
