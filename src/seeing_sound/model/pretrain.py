"""Optional contrastive pre-training of the audio projector (paper A.11, ``pretrain_projector_steps``).

The audio projector's token-mean output is pulled towards the *frozen* PixArt-α text projection of
the pair's concept texts (T5 encoder of the checkpoint, ``text_encoder/`` + ``tokenizer/``) with a
symmetric InfoNCE loss over the batch. The paper found this changes little; it is here for the ablation.

At full size the T5-XXL encoder is the largest model in the run (4.8B parameters), so the concept
texts are encoded once, in bf16, before training; the targets are cached beside the features
(``DATASET/features/text-<checkpoint>/projector_targets.safetensors``) and the encoder freed.
Only the transformer's ``caption_projection`` weights are read, never a second transformer.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from seeing_sound.errors import ModelNotFoundError, SeeingSoundError

log = logging.getLogger(__name__)

TEMPERATURE = 0.07
T5_MAX_TOKENS = 120  # PixArt-α's caption length
CAPTION_PREFIX = "caption_projection."


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """Symmetric InfoNCE of matched rows of ``a`` and ``b`` ``(B, D)`` (normalised inside)."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def _transformer_files(pretrained: str) -> tuple[Path, list[Path]]:
    """(config.json, the weight files holding ``caption_projection.*``) of a checkpoint's transformer.

    A local repository (``transformer/`` subfolder), a bare transformer folder, or a hub id
    (only ``config.json``, the shard index and the shard(s) with those keys are fetched).
    """
    from seeing_sound.builders import component_subfolder

    sub = component_subfolder(pretrained, "transformer")
    local = Path(pretrained) / (sub or "")
    weights = "diffusion_pytorch_model.safetensors"
    index = "diffusion_pytorch_model.safetensors.index.json"

    def get(name: str) -> Path | None:
        if Path(pretrained).is_dir():
            return local / name if (local / name).is_file() else None
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            return Path(hf_hub_download(pretrained, name, subfolder=sub))
        except EntryNotFoundError:
            return None

    try:
        config = get("config.json")
        single = get(weights)
        if config is None:
            raise FileNotFoundError(f"no transformer config.json in {pretrained}")
        if single is not None:
            return config, [single]
        index_file = get(index)
        if index_file is None:
            raise FileNotFoundError(f"no {weights} (or its index) in {pretrained}")
        weight_map = json.loads(index_file.read_text())["weight_map"]
        names = sorted({f for k, f in weight_map.items() if k.startswith(CAPTION_PREFIX)})
        files = [get(n) for n in names]
        if not names or any(f is None for f in files):
            raise FileNotFoundError(f"the shards with {CAPTION_PREFIX}* are missing in {pretrained}")
        return config, [f for f in files if f is not None]
    except OSError as exc:
        raise ModelNotFoundError("PixArt-α transformer", pretrained, "pretrained", exc) from exc


def load_caption_projection(pretrained: str) -> torch.nn.Module:
    """PixArt-α's ``caption_projection`` alone: its ``caption_projection.*`` tensors read with
    ``safe_open`` from the transformer's safetensors, not the whole 611M-parameter transformer."""
    from diffusers.models.embeddings import PixArtAlphaTextProjection
    from safetensors import safe_open

    config_file, files = _transformer_files(pretrained)
    config = json.loads(config_file.read_text())
    if not config.get("caption_channels"):
        raise SeeingSoundError(f"{pretrained}'s transformer has no caption_channels (no text projection)")
    inner = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    projection = PixArtAlphaTextProjection(in_features=int(config["caption_channels"]), hidden_size=inner)
    state = {}
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118  (safe_open is not iterable)
                if key.startswith(CAPTION_PREFIX):
                    state[key[len(CAPTION_PREFIX) :]] = fh.get_tensor(key)
    projection.load_state_dict({k: v.float() for k, v in state.items()})  # strict: every key must be there
    return projection.eval()


def _text_dtype(device) -> torch.dtype:
    """bf16 where supported (T5-XXL: 9.5 GB instead of 19 GB in fp32), fp16 on older GPUs."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


@torch.no_grad()
def text_targets(texts: list[str], pretrained: str, device, cache: Path | None = None) -> torch.Tensor:
    """``(len(texts), hidden)``: masked token mean of PixArt-α's text projection of T5 embeddings.

    The T5 encoder runs in bf16 (fp16 on a GPU without bf16) and is freed before this returns;
    the projection is loaded alone (:func:`load_caption_projection`). With ``cache`` (a
    ``.safetensors`` path) targets computed before for the same checkpoint and texts are read
    back instead, and new ones are written there.
    """
    from safetensors.torch import load_file, save_file

    digest = hashlib.sha256("\n".join([str(pretrained), *texts]).encode()).hexdigest()
    if cache is not None and cache.is_file():
        from safetensors import safe_open

        with safe_open(str(cache), framework="pt") as fh:
            hit = (fh.metadata() or {}).get("sha256") == digest
        if hit:
            log.info("projector pre-training: %d text targets from %s", len(texts), cache)
            return load_file(str(cache))["targets"].to(device)
    from transformers import AutoTokenizer, T5EncoderModel

    dtype = _text_dtype(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(pretrained, subfolder="tokenizer")
        encoder = T5EncoderModel.from_pretrained(pretrained, subfolder="text_encoder", dtype=dtype)
    except OSError as exc:
        raise ModelNotFoundError("T5 text encoder", pretrained, "pretrained", exc) from exc
    encoder = encoder.to(device).eval()
    projection = load_caption_projection(pretrained).to(device)
    out = []
    for s in range(0, len(texts), 64):
        tok = tokenizer(
            texts[s : s + 64], padding="max_length", max_length=T5_MAX_TOKENS, truncation=True, return_tensors="pt"
        ).to(device)
        states = encoder(input_ids=tok.input_ids, attention_mask=tok.attention_mask).last_hidden_state
        hidden = projection(states.float())
        mask = tok.attention_mask.unsqueeze(-1).to(hidden.dtype)
        out.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))
    targets = torch.cat(out).float()
    del encoder, projection  # T5-XXL is 9.5 GB even in bf16: gone before training starts
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({"targets": targets.cpu().contiguous()}, str(cache), metadata={"sha256": digest})
    return targets


def _part_texts(datasets: Sequence[str | Path], parts) -> list[list[str]]:
    """Each part's concept text per position: its pair's concepts joined, ``"sound"`` for none."""
    from seeing_sound.dataset import PairsDataset

    out = []
    for path, part in zip(datasets, parts, strict=True):
        comps = PairsDataset.open(path).metadata.column("components").to_pylist()
        out.append(
            [", ".join(c["concept"] for c in (comps[row] or []) if c.get("concept")) or "sound" for row in part.rows]
        )
    return out


def pretrain_projector(model, cfg, data, device, lr: float = 1e-4, audio_of=None) -> list[float]:
    """Train ``model.projector`` alone for ``cfg.pretrain_projector_steps`` steps; returns the losses.

    ``cfg``: a :class:`~seeing_sound.model.training.config.TrainConfig` (one dataset or several);
    ``data``: the training items, a :class:`~seeing_sound.model.training.sets.ConcatRows` over
    ``cfg.dataset`` or one dataset's :class:`PairFeatures`. Each dataset's text targets are
    cached in its own ``features/`` folder, exactly as when it is trained on alone.
    ``audio_of(positions)`` gives the AST tokens of positions of ``data`` (default: ``data[i]["audio"]``).
    """
    if audio_of is None:
        audio_of = lambda idx: torch.stack([data[i]["audio"] for i in idx])  # noqa: E731
    from seeing_sound.features.store import model_slug
    from seeing_sound.model.training.data import BatchPlan

    datasets = [cfg.dataset] if isinstance(cfg.dataset, str | Path) else list(cfg.dataset)
    per_part = _part_texts(datasets, getattr(data, "parts", [data]))
    texts = [t for part in per_part for t in part]  # positions of ``data``: the parts one after the other
    target_of: dict[str, torch.Tensor] = {}
    for path, part_texts in zip(datasets, per_part, strict=True):
        unique = sorted(set(part_texts))
        cache = Path(path) / "features" / f"text-{model_slug(cfg.pretrained)}" / "projector_targets.safetensors"
        target_of.update(zip(unique, text_targets(unique, cfg.pretrained, device, cache=cache), strict=True))
    projector = model.projector.to(device).train()
    optimizer = torch.optim.AdamW(projector.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    batch_size = min(cfg.pretrain_batch_size, len(data))
    plan = BatchPlan(len(data), batch_size, cfg.seed + 1)
    losses = []
    for step in range(cfg.pretrain_projector_steps):
        idx = plan.batch(step).tolist()
        audio = audio_of(idx).float().to(device)
        target = torch.stack([target_of[texts[i]] for i in idx])
        loss = info_nce(projector(audio).mean(dim=1), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    log.info("projector pre-training: %d steps, InfoNCE %.4f -> %.4f", len(losses), losses[0], losses[-1])
    return losses
