"""Tiny random VLMs laid out like the hub repositories users pick, for the transformers back end.

Each ``build_*`` writes a folder with the files of its real repository: ``config.json`` with the
real ``architectures``, ``model_type`` and key names (the legacy layouts included: Qwen2-VL's text
keys sit at the top level, LLaVA's ``text_config`` lists only what differs from the defaults), the
processor files (``preprocessor_config.json``, ``processor_config.json`` where the repo has one,
``chat_template.json``), the tokenizer files (``tokenizer.json``, ``tokenizer_config.json`` naming
the real tokenizer class, ``special_tokens_map.json``; ``vocab.json``/``merges.txt`` for the BPE
repos), ``generation_config.json`` and sharded safetensors with an index. Only the sizes are tiny
(32-wide, 2 layers, 28-pixel vision tiles: a few hundred thousand parameters), so a test loads and
generates in about a second, offline.

=================  =================================  ==============================================
builder            real repository                    what it exercises
=================  =================================  ==============================================
``llava15``        ``llava-hf/llava-1.5-7b-hf``       CLIP tower, ``vision_feature_layer=-2``
``llava_next``     ``llava-hf/llava-v1.6-mistral-     anyres tiling (``image_grid_pinpoints``), the
                   7b-hf``                            Mistral ``[INST]`` template
``smolvlm``        ``HuggingFaceTB/SmolVLM-Instruct`` Idefics3, image splitting, row/col tokens
``qwen2_vl``       ``Qwen/Qwen2-VL-2B-Instruct``      dynamic resolution, M-RoPE, a video processor
                                                      (needs torchvision) in the processor
``qwen2_5_vl``     ``Qwen/Qwen2.5-VL-3B-Instruct``    windowed vision attention, as ``qwen2_vl``
=================  =================================  ==============================================

``chat_template="tokenizer"`` moves a twin's chat template into ``tokenizer_config.json`` only (no
``chat_template.json``), the layout of many older checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from seeing_sound.testing.vlm_files import (
    CLIP_MEAN,
    CLIP_STD,
    HIDDEN,
    TILE,
    place_chat_template,
    save_twin_model,
    train_bpe,
    vocab_size,
    write_json,
    write_tokenizer,
)

# --- LLaVA-1.5 and LLaVA-NeXT (llava-hf) ----------------------------------------------------------------------------

LLAVA15_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' }}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all text next #}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}{{' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'][0]['text'] + '<\\s> '}}{% else %}"
    "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)


def _llama_tokenizer(out: Path, template: str | None) -> dict[str, int]:
    """Llama/Mistral sentencepiece-style tokenizer with ``<image>`` (id 32000 in the real repos) and ``<pad>``."""
    tok = train_bpe(["<unk>", "<s>", "</s>", "<image>", "<pad>"], metaspace=True)
    return write_tokenizer(
        out, tok, tokenizer_class="LlamaTokenizer", chat_template=template, legacy=False,
        special={"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"},
        extra_special=["<image>"],
    )  # fmt: skip


def _clip_vision_config() -> dict:
    return {
        "hidden_size": HIDDEN, "image_size": TILE, "intermediate_size": 2 * HIDDEN, "model_type": "clip_vision_model",
        "num_attention_heads": 4, "num_hidden_layers": 2, "patch_size": 14, "projection_dim": HIDDEN,
        "vocab_size": 32000,
    }  # fmt: skip


def _llava_processor_files(out: Path, processor_class: str, image_processor: dict) -> None:
    write_json(
        out / "preprocessor_config.json",
        {
            "crop_size": {"height": TILE, "width": TILE}, "do_center_crop": True, "do_convert_rgb": True,
            "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": CLIP_MEAN,
            "image_std": CLIP_STD, "processor_class": processor_class, "resample": 3,
            "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": TILE}, **image_processor,
        },
    )  # fmt: skip
    write_json(
        out / "processor_config.json",
        {
            "image_token": "<image>", "num_additional_image_tokens": 1, "patch_size": 14,
            "processor_class": processor_class, "vision_feature_select_strategy": "default",
        },
    )  # fmt: skip


def build_llava15(out: str | Path, *, chat_template: str = "file") -> Path:
    """``llava-hf/llava-1.5-7b-hf`` in miniature: LLaVA with a CLIP ViT tower and a Llama decoder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = _llama_tokenizer(out, None)
    vocab = vocab_size(out)
    config = {
        "architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_token_index": ids["<image>"],
        "model_type": "llava", "pad_token_id": ids["<pad>"], "projector_hidden_act": "gelu",
        "text_config": {
            "_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"], "hidden_size": HIDDEN,
            "intermediate_size": 2 * HIDDEN, "max_position_embeddings": 4096, "model_type": "llama",
            "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-05,
            "torch_dtype": "float16", "vocab_size": vocab, "bos_token_id": ids["<s>"], "eos_token_id": ids["</s>"],
        },
        "tie_word_embeddings": False, "torch_dtype": "float16", "transformers_version": "4.36.0.dev0",
        "vision_config": _clip_vision_config(), "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
        "vocab_size": vocab,
    }  # fmt: skip
    save_twin_model(out, "llava", config, ids.values())
    _llava_processor_files(out, "LlavaProcessor", {"image_processor_type": "CLIPImageProcessor"})
    (out / "added_tokens.json").write_text(json.dumps({"<image>": ids["<image>"], "<pad>": ids["<pad>"]}) + "\n")
    place_chat_template(out, LLAVA15_CHAT_TEMPLATE, chat_template)
    return out


def build_llava_next(out: str | Path, *, chat_template: str = "file") -> Path:
    """``llava-hf/llava-v1.6-mistral-7b-hf`` in miniature: anyres tiles on grid pinpoints, Mistral decoder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = _llama_tokenizer(out, None)
    vocab = vocab_size(out)
    pinpoints = [[TILE, 2 * TILE], [2 * TILE, TILE], [2 * TILE, 2 * TILE], [3 * TILE, TILE], [TILE, 3 * TILE]]
    config = {
        "architectures": ["LlavaNextForConditionalGeneration"], "ignore_index": -100, "image_grid_pinpoints": pinpoints,
        "image_token_index": ids["<image>"], "model_type": "llava_next", "projector_hidden_act": "gelu",
        "text_config": {
            "_name_or_path": "mistralai/Mistral-7B-Instruct-v0.2", "architectures": ["MistralForCausalLM"],
            "hidden_size": HIDDEN, "intermediate_size": 2 * HIDDEN, "max_position_embeddings": 32768,
            "model_type": "mistral", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
            "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "sliding_window": None, "torch_dtype": "bfloat16",
            "vocab_size": vocab, "bos_token_id": ids["<s>"], "eos_token_id": ids["</s>"],
        },
        "tie_word_embeddings": False, "torch_dtype": "float16", "transformers_version": "4.39.0.dev0",
        "use_image_newline_parameter": True, "vision_config": _clip_vision_config(), "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default", "vocab_size": vocab,
    }  # fmt: skip
    save_twin_model(out, "llava_next", config, ids.values())
    _llava_processor_files(
        out,
        "LlavaNextProcessor",
        {"image_processor_type": "LlavaNextImageProcessor", "image_grid_pinpoints": pinpoints, "do_pad": True},
    )
    (out / "added_tokens.json").write_text(json.dumps({"<image>": ids["<image>"], "<pad>": ids["<pad>"]}) + "\n")
    place_chat_template(out, LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE, chat_template)
    return out


# --- SmolVLM (Idefics3) ---------------------------------------------------------------------------------------------

SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_smolvlm(out: str | Path, *, chat_template: str = "file") -> Path:
    """``HuggingFaceTB/SmolVLM-Instruct`` in miniature: Idefics3 with image splitting (a 2 x 2 grid of
    28-pixel tiles plus the global image), pixel shuffle ``scale_factor=2`` -> 1 token per tile."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    grid = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<fake_token_around_image>", "<image>",
                "<end_of_utterance>", "<global-img>", *grid]  # fmt: skip
    tok = train_bpe(specials, vocab_size=500)
    ids = write_tokenizer(
        out, tok, tokenizer_class="GPT2Tokenizer", bpe_files=True,
        special={"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>", "unk_token": "<|endoftext|>",
                 "pad_token": "<|im_end|>"},
        extra_special=["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
    )  # fmt: skip
    vocab = tok.get_vocab_size()
    image_seq_len = (TILE // 14) ** 2 // 2**2
    config = {
        "architectures": ["Idefics3ForConditionalGeneration"], "image_seq_len": image_seq_len,
        "image_token_id": ids["<image>"], "model_type": "idefics3", "scale_factor": 2,
        "text_config": {
            "_name_or_path": "HuggingFaceTB/SmolLM2-1.7B-Instruct", "architectures": ["VLlama3ForCausalLM"],
            "hidden_size": HIDDEN, "intermediate_size": 2 * HIDDEN, "max_position_embeddings": 16384,
            "model_type": "llama", "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
            "pad_token_id": ids["<|im_end|>"], "rms_norm_eps": 1e-05, "rope_theta": 273768.0, "vocab_size": vocab,
            "bos_token_id": ids["<|im_start|>"], "eos_token_id": ids["<end_of_utterance>"],
        },
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.46.0.dev0",
        "use_cache": True,
        "vision_config": {
            "hidden_size": HIDDEN, "image_size": TILE, "intermediate_size": 2 * HIDDEN, "max_image_size":
            {"longest_edge": TILE}, "model_type": "idefics3", "num_attention_heads": 4, "num_hidden_layers": 2,
            "patch_size": 14, "size": {"longest_edge": 2 * TILE}, "tie_word_embeddings": False,
            "use_base_siglip": False,
        },
        "vocab_size": vocab,
    }  # fmt: skip
    save_twin_model(out, "idefics3", config, [tok.token_to_id(t) for t in specials])
    write_json(
        out / "preprocessor_config.json",
        {
            "do_convert_rgb": True, "do_image_splitting": True, "do_normalize": True, "do_pad": True,
            "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "Idefics3ImageProcessor", "image_std": [0.5, 0.5, 0.5],
            "max_image_size": {"longest_edge": TILE}, "processor_class": "Idefics3Processor", "resample": 1,
            "rescale_factor": 0.00392156862745098, "size": {"longest_edge": 2 * TILE},
        },
    )  # fmt: skip
    write_json(out / "processor_config.json", {"image_seq_len": image_seq_len, "processor_class": "Idefics3Processor"})
    (out / "added_tokens.json").write_text(json.dumps({t: ids[t] for t in ["<end_of_utterance>", "<image>"]}) + "\n")
    place_chat_template(out, SMOLVLM_CHAT_TEMPLATE, chat_template)
    return out


# --- Qwen2-VL and Qwen2.5-VL ----------------------------------------------------------------------------------------

QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]  # fmt: skip


def _qwen_tokenizer(out: Path, template: str) -> dict[str, int]:
    tok = train_bpe(_QWEN_SPECIALS)
    # Qwen2-VL's tokenizer_config.json carries the chat template too (chat_template.json came later).
    return write_tokenizer(
        out, tok, tokenizer_class="Qwen2Tokenizer", bpe_files=True, chat_template=template, errors="replace",
        special={"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None},
        extra_special=_QWEN_SPECIALS[1:],
        split_special_tokens=False,
    )  # fmt: skip


def _qwen_preprocessor(out: Path, processor_class: str) -> None:
    write_json(
        out / "preprocessor_config.json",
        {
            "min_pixels": TILE * TILE, "max_pixels": 4 * TILE * TILE, "patch_size": 14, "temporal_patch_size": 2,
            "merge_size": 2, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
            "image_processor_type": "Qwen2VLImageProcessor", "processor_class": processor_class,
        },
    )  # fmt: skip


def _qwen_text_keys(ids: dict[str, int], vocab: int) -> dict:
    """The decoder keys Qwen2-VL/Qwen2.5-VL keep at the top level of config.json (no text_config)."""
    return {
        "attention_dropout": 0.0, "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"], "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"], "hidden_act": "silu", "hidden_size": HIDDEN,
        "initializer_range": 0.02, "intermediate_size": 2 * HIDDEN, "max_position_embeddings": 32768,
        "max_window_layers": 2, "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False,
        # mrope_section: halves of the 8-wide rotary (head_dim 8) over (time, height, width)
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 1, 1]}, "vocab_size": vocab,
    }  # fmt: skip


def build_qwen2_vl(out: str | Path, *, chat_template: str = "file") -> Path:
    """``Qwen/Qwen2-VL-2B-Instruct`` in miniature (its legacy flat config.json, no processor_config.json)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = _qwen_tokenizer(out, QWEN2_VL_CHAT_TEMPLATE)
    vocab = vocab_size(out)
    config = {
        "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
        **_qwen_text_keys(ids, vocab), "transformers_version": "4.41.2",
        "vision_config": {
            "depth": 2, "embed_dim": HIDDEN, "mlp_ratio": 2, "num_heads": 4, "in_chans": 3, "hidden_size": HIDDEN,
            "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14, "temporal_patch_size": 2,
        },
    }  # fmt: skip
    save_twin_model(out, "qwen2_vl", config, ids.values())
    _qwen_preprocessor(out, "Qwen2VLProcessor")
    place_chat_template(out, QWEN2_VL_CHAT_TEMPLATE, chat_template)
    return out


def build_qwen2_5_vl(out: str | Path, *, chat_template: str = "file") -> Path:
    """``Qwen/Qwen2.5-VL-3B-Instruct`` in miniature: windowed vision attention, full attention in block 1."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = _qwen_tokenizer(out, QWEN2_VL_CHAT_TEMPLATE)
    vocab = vocab_size(out)
    config = {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
        **_qwen_text_keys(ids, vocab), "transformers_version": "4.41.2",
        "vision_config": {
            "depth": 2, "hidden_act": "silu", "hidden_size": HIDDEN, "intermediate_size": 2 * HIDDEN,
            "num_heads": 4, "in_chans": 3, "out_hidden_size": HIDDEN, "patch_size": 14, "spatial_merge_size": 2,
            "spatial_patch_size": 14, "window_size": 56, "fullatt_block_indexes": [1], "tokens_per_second": 2,
            "temporal_patch_size": 2,
        },
    }  # fmt: skip
    save_twin_model(out, "qwen2_5_vl", config, ids.values())
    _qwen_preprocessor(out, "Qwen2_5_VLProcessor")
    place_chat_template(out, QWEN2_VL_CHAT_TEMPLATE, chat_template)
    return out


#: family name -> builder, for parametrized tests and benchmarks
BUILDERS: dict[str, Callable[..., Path]] = {
    "llava15": build_llava15,
    "llava_next": build_llava_next,
    "smolvlm": build_smolvlm,
    "qwen2_vl": build_qwen2_vl,
    "qwen2_5_vl": build_qwen2_5_vl,
}
