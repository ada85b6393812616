"""The files every tiny VLM twin writes: a BPE tokenizer trained on the paper's prompts, its
``tokenizer.json``/``tokenizer_config.json``, a random model saved in shards under the hub's own
``config.json``, ``generation_config.json`` and the chat template where the repository keeps it.

The repositories themselves (which keys, which processor files) are in :mod:`seeing_sound.testing.vlm_twins`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

#: Sentences the tiny BPE tokenizers are trained on: the paper's prompts and typical answers.
CORPUS = (
    "As a numbered list, provide one to up to three sound(s) associated with prominent objects",
    "visible and present in the image. Provide the objects followed by their associated sound.",
    "Provide a short and concise description of the following image.",
    "1. Dog - barking loudly 2. Birds - chirping 3. Water: splashing. A cat, a cup of coffee, a rocket.",
    "The image shows a tabby cat looking up; steam rises from a cup. USER: ASSISTANT: user assistant system",
)
HIDDEN = 32
TILE = 28  # vision input side: 2 x 2 patches of 14 pixels


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def train_bpe(specials: Sequence[str], vocab_size: int = 400, metaspace: bool = False):
    """A small BPE (byte-level like GPT-2/Qwen, or Metaspace like Llama's) with ``specials`` first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=specials[0] if metaspace else None, byte_fallback=metaspace))
    if metaspace:
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        alphabet: list[str] = []
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(specials), initial_alphabet=alphabet, show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def write_tokenizer(
    out: Path,
    tok,
    *,
    tokenizer_class: str,
    special: dict[str, str | None],
    extra_special: Sequence[str] = (),
    chat_template: str | None = None,
    bpe_files: bool = False,
    **config: Any,
) -> dict[str, int]:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json`` as the hub
    repos have them (``tokenizer_class`` names the real class); returns token -> id of the specials."""
    tok.save(str(out / "tokenizer.json"))
    if bpe_files:  # the BPE repos (Qwen, SmolVLM) also ship the slow tokenizer's files
        tok.model.save(str(out))
    ids = {t: tok.token_to_id(t) for t in [*(v for v in special.values() if v), *extra_special]}
    decoder = {
        str(i): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t, i in sorted(ids.items(), key=lambda kv: kv[1])
    }
    tok_config: dict[str, Any] = {
        "add_bos_token": tokenizer_class == "LlamaTokenizer",
        "add_eos_token": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": list(extra_special),
        "clean_up_tokenization_spaces": False,
        **special,
        "model_max_length": 4096,
        "padding_side": "left" if tokenizer_class == "Qwen2Tokenizer" else "right",
        "tokenizer_class": tokenizer_class,
        **config,
    }
    if chat_template is not None:
        tok_config["chat_template"] = chat_template
    write_json(out / "tokenizer_config.json", tok_config)
    write_json(
        out / "special_tokens_map.json",
        {**{k: v for k, v in special.items() if v}, "additional_special_tokens": list(extra_special)},
    )
    return ids


def save_twin_model(
    out: Path, model_type: str, hub_config: dict, special_ids: Iterable[int] = (), weight_std: float = 0.2
) -> None:
    """Build the random model from the hub-shaped config, save it in shards, then put the hub's
    ``config.json`` back (``save_pretrained`` writes the current transformers layout).

    Matrices are drawn with std ``weight_std`` (wider than init's 0.02, so answers vary with the
    image); the output-embedding rows of ``special_ids`` are zeroed: a random model would otherwise
    often answer with special tokens only, which decode to "" and make every comparison vacuous.
    """
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    for stale in out.glob("model*.safetensors*"):  # a rebuild in place must not leave old shards behind
        stale.unlink()
    write_json(out / "config.json", hub_config)
    config = AutoConfig.from_pretrained(out)
    if config.model_type != model_type:
        raise ValueError(f"twin config for {model_type} loaded as {config.model_type}")
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, weight_std)
        model.get_output_embeddings().weight[sorted(special_ids)] = 0.0
    model.save_pretrained(out, max_shard_size="100KB")
    write_json(out / "config.json", hub_config)
    bos, eos = hub_config.get("bos_token_id"), hub_config.get("eos_token_id")
    text = hub_config.get("text_config", {})
    gen = {
        "bos_token_id": bos if bos is not None else text.get("bos_token_id"),
        "eos_token_id": eos if eos is not None else text.get("eos_token_id"),
        "pad_token_id": hub_config.get("pad_token_id", text.get("pad_token_id")),
        "transformers_version": hub_config.get("transformers_version", "4.45.0"),
    }
    write_json(out / "generation_config.json", {k: v for k, v in gen.items() if v is not None})


def place_chat_template(out: Path, template: str, where: str) -> None:
    """``where``: "file" -> chat_template.json (the hub layout of these repos); "tokenizer" -> only in
    tokenizer_config.json; "none" -> nowhere."""
    if where not in ("file", "tokenizer", "none"):
        raise ValueError(f"chat_template must be 'file', 'tokenizer' or 'none', got {where!r}")
    if where == "file":
        write_json(out / "chat_template.json", {"chat_template": template})
    elif where == "tokenizer":
        path = out / "tokenizer_config.json"
        cfg = json.loads(path.read_text())
        cfg["chat_template"] = template
        write_json(path, cfg)


CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def vocab_size(out: Path) -> int:
    """Entries of the vocabulary in ``out/tokenizer.json`` (what the config's ``vocab_size`` must say)."""
    return len(json.loads((out / "tokenizer.json").read_text())["model"]["vocab"])
