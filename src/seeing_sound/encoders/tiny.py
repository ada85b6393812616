"""A tiny random CLAP twin (model + processor) for tests, benchmarks and demos. No network.

It has the real architecture and file layout, so it loads through
:class:`seeing_sound.encoders.clap.ClapEncoder` exactly like ``laion/clap-htsat-unfused``.
"""

from __future__ import annotations

from pathlib import Path

_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def build_tiny_clap(out: str | Path, seed: int = 0, projection_dim: int = 16) -> Path:
    """Write a randomly initialised CLAP (~100K parameters) with a character-level tokenizer to ``out``."""
    import torch
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, ClapTextConfig
    from transformers import RobertaTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for c in _LETTERS:
        vocab[c] = len(vocab)
        vocab["\u0120" + c] = len(vocab)  # byte-level BPE marks a leading space with U+0120
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[])
    text = ClapTextConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=130, projection_dim=projection_dim, pad_token_id=1)
    # spec_size * (spec_size // num_mel_bins) must cover the extractor's 1001 frames (10 s at 48 kHz).
    audio = ClapAudioConfig(depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=16, hidden_size=32,
                            projection_dim=projection_dim, window_size=8, spec_size=256, num_mel_bins=64)
    config = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=projection_dim)
    torch.manual_seed(seed)
    model = ClapModel(config).eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    ClapProcessor(feature_extractor=ClapFeatureExtractor(), tokenizer=tokenizer).save_pretrained(out)
    return out
