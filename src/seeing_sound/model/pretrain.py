"""Optional contrastive pre-training of the audio projector (paper A.11, ``pretrain_projector_steps``).

The audio projector's token-mean output is pulled towards the *frozen* PixArt-α text projection of
the pair's concept texts (T5 encoder of the checkpoint, ``text_encoder/`` + ``tokenizer/``) with a
symmetric InfoNCE loss over the batch. The paper found this changes little; it is here for the ablation.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from seeing_sound.errors import ModelNotFoundError

log = logging.getLogger(__name__)

TEMPERATURE = 0.07
T5_MAX_TOKENS = 120  # PixArt-α's caption length


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """Symmetric InfoNCE of matched rows of ``a`` and ``b`` ``(B, D)`` (normalised inside)."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@torch.no_grad()
def text_targets(texts: list[str], pretrained: str, device) -> torch.Tensor:
    """``(len(texts), hidden)``: masked token mean of PixArt-α's text projection of T5 embeddings."""
    from transformers import AutoTokenizer, T5EncoderModel

    from seeing_sound.model.loading import load_pixart_transformer

    try:
        tokenizer = AutoTokenizer.from_pretrained(pretrained, subfolder="tokenizer")
        encoder = T5EncoderModel.from_pretrained(pretrained, subfolder="text_encoder").to(device).eval()
    except OSError as exc:
        raise ModelNotFoundError("T5 text encoder", pretrained, "pretrained", exc) from exc
    projection = load_pixart_transformer(pretrained).caption_projection.to(device).eval()
    out = []
    for s in range(0, len(texts), 64):
        tok = tokenizer(
            texts[s : s + 64], padding="max_length", max_length=T5_MAX_TOKENS, truncation=True, return_tensors="pt"
        ).to(device)
        hidden = projection(encoder(input_ids=tok.input_ids, attention_mask=tok.attention_mask).last_hidden_state)
        mask = tok.attention_mask.unsqueeze(-1).to(hidden.dtype)
        out.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))
    return torch.cat(out).float()


def pretrain_projector(model, cfg, data, device, lr: float = 1e-4, audio_of=None) -> list[float]:
    """Train ``model.projector`` alone for ``cfg.pretrain_projector_steps`` steps; returns the losses.

    ``audio_of(positions)`` gives the AST tokens of dataset positions (default: ``data[i]["audio"]``).
    """
    if audio_of is None:
        audio_of = lambda idx: torch.stack([data[i]["audio"] for i in idx])  # noqa: E731
    from seeing_sound.dataset import PairsDataset
    from seeing_sound.model.train_data import BatchPlan

    comps = PairsDataset.open(cfg.dataset).metadata.column("components").to_pylist()
    texts = [", ".join(c["concept"] for c in (comps[row] or []) if c.get("concept")) or "sound" for row in data.rows]
    unique = sorted(set(texts))
    targets = text_targets(unique, cfg.pretrained, device)
    target_of = {t: i for i, t in enumerate(unique)}
    projector = model.projector.to(device).train()
    optimizer = torch.optim.AdamW(projector.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    batch_size = min(cfg.pretrain_batch_size, len(data))
    plan = BatchPlan(len(data), batch_size, cfg.seed + 1)
    losses = []
    for step in range(cfg.pretrain_projector_steps):
        idx = plan.batch(step).tolist()
        audio = audio_of(idx).float().to(device)
        target = targets[[target_of[texts[i]] for i in idx]]
        loss = info_nce(projector(audio).mean(dim=1), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    log.info("projector pre-training: %d steps, InfoNCE %.4f -> %.4f", len(losses), losses[0], losses[-1])
    return losses
