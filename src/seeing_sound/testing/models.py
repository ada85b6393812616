"""Tiny random twins of the real checkpoints, saved in the real folder layouts.

Tests, benchmarks and the demo load them through the same public loaders as
``PixArt-alpha/PixArt-XL-2-512x512``, ``MIT/ast-finetuned-audioset-10-10-0.4593``,
``laion/clap-htsat-unfused`` and ``llava-hf/llava-1.5-7b-hf``, so every code path (config
parsing, processors, safetensors, subfolders) is exercised without a download.

The twins are saved as the real repositories were produced, not as our own classes would save them:
the PixArt-α transformer's ``config.json`` is the diffusers-0.22 ``Transformer2DModel`` config with
its legacy keys, the repository has the ``PixArtAlphaPipeline`` ``model_index.json``, and the AST is
an ``ASTForAudioClassification`` with its 527-way AudioSet head and label map.
"""

from __future__ import annotations

import json
from pathlib import Path

from seeing_sound.testing.data import pattern_image

# The twin sizes live in twin_sizes (data.py needs them too); importable from here as before.
from seeing_sound.testing.twin_sizes import AUDIOSET_NUM_LABELS, TINY_AST_HIDDEN, TINY_AST_MAX_FRAMES


def build_tiny_ast(
    out: str | Path, seed: int = 0, hidden_size: int = TINY_AST_HIDDEN, max_length: int = TINY_AST_MAX_FRAMES
) -> Path:
    """Save a random ``ASTForAudioClassification`` (527 labels ``label_i``) and its ``ASTFeatureExtractor``.

    Like ``MIT/ast-finetuned-audioset-10-10-0.4593``, the checkpoint holds the classifier head
    (``classifier.*``) beside the ``audio_spectrogram_transformer.*`` backbone. Returns ``out``.
    """
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    out = Path(out)
    torch.manual_seed(seed)
    id2label = {i: f"label_{i}" for i in range(AUDIOSET_NUM_LABELS)}
    config = ASTConfig(
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_length=max_length,
        num_mel_bins=128,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    ASTForAudioClassification(config).eval().save_pretrained(out)
    ASTFeatureExtractor(max_length=max_length, num_mel_bins=128).save_pretrained(out)
    return out


def _write_hub_transformer_config(folder: Path, transformer) -> None:
    """Rewrite ``folder/config.json`` as PixArt-α's hub one: a diffusers-0.22 ``Transformer2DModel`` config."""
    c = transformer.config
    config = {
        "_class_name": "Transformer2DModel",
        "_diffusers_version": "0.22.0.dev0",
        "activation_fn": c.activation_fn,
        "attention_bias": c.attention_bias,
        "attention_head_dim": c.attention_head_dim,
        "attention_type": c.attention_type,
        "caption_channels": c.caption_channels,
        "cross_attention_dim": c.cross_attention_dim,
        "double_self_attention": False,
        "dropout": c.dropout,
        "in_channels": c.in_channels,
        "norm_elementwise_affine": c.norm_elementwise_affine,
        "norm_eps": c.norm_eps,
        "norm_num_groups": c.norm_num_groups,
        "norm_type": c.norm_type,
        "num_attention_heads": c.num_attention_heads,
        "num_embeds_ada_norm": c.num_embeds_ada_norm,
        "num_layers": c.num_layers,
        "num_vector_embeds": None,
        "only_cross_attention": False,
        "out_channels": c.out_channels,
        "patch_size": c.patch_size,
        "sample_size": c.sample_size,
        "upcast_attention": c.upcast_attention,
        "use_additional_conditions": transformer.use_additional_conditions,
        "use_linear_projection": False,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _write_model_index(out: Path) -> None:
    """PixArt-α's ``model_index.json``; text_encoder/tokenizer stay null until their folders exist."""
    index = {
        "_class_name": "PixArtAlphaPipeline",
        "_diffusers_version": "0.22.0.dev0",
        "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
        "text_encoder": [None, None],
        "tokenizer": [None, None],
        "transformer": ["diffusers", "Transformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    path = out / "model_index.json"
    if path.is_file():  # keep components another builder registered (build_tiny_text_encoder)
        index.update({k: v for k, v in json.loads(path.read_text()).items() if v != [None, None]})
    path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def build_tiny_pixart(
    out: str | Path,
    seed: int = 0,
    sample_size: int = 8,
    width: int = 32,
    num_layers: int = 2,
    small_vae_std: bool = True,
) -> Path:
    """Save a PixArt-α-shaped repository (``transformer/``, ``vae/``, ``scheduler/``, ``model_index.json``).

    ``transformer/config.json`` is written the way the hub's was (diffusers 0.22, ``Transformer2DModel``
    with its legacy keys), after the weights, so loaders see what they will see on the real checkpoint.

    The transformer has learned variance (out_channels = 8) like the real one; the VAE downsamples
    by 2 (images of ``2 * sample_size`` pixels). ``small_vae_std`` biases the VAE's log-variance
    output to -12, as a trained VAE's posterior is nearly deterministic, so latents carry the image.
    The VAE's ``scaling_factor`` is calibrated the way Stable Diffusion's 0.18215 was: 1 / std of
    the latents of sample images (here the test patterns), so scaled latents have unit variance.
    """
    import torch
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, PixArtTransformer2DModel

    out = Path(out)
    torch.manual_seed(seed)
    heads = 2
    transformer = PixArtTransformer2DModel(
        num_attention_heads=heads,
        attention_head_dim=width // heads,
        in_channels=4,
        out_channels=8,
        num_layers=num_layers,
        cross_attention_dim=width,
        sample_size=sample_size,
        patch_size=2,
        caption_channels=16,
        norm_num_groups=8,
    )
    transformer.save_pretrained(out / "transformer")
    _write_hub_transformer_config(out / "transformer", transformer)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=2 * sample_size,
    )
    if small_vae_std:
        with torch.no_grad():
            vae.quant_conv.bias[4:] = -12.0
    import numpy as np

    rng = np.random.default_rng(seed)
    probe = np.stack(
        [np.asarray(pattern_image(k % 4, rng, 2 * sample_size), np.float32) / 127.5 - 1 for k in range(16)]
    )
    with torch.no_grad():
        latents = vae.encode(torch.from_numpy(probe).permute(0, 3, 1, 2)).latent_dist.mean
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    vae.save_pretrained(out / "vae")
    DPMSolverMultistepScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear"
    ).save_pretrained(out / "scheduler")
    _write_model_index(out)
    return out


def build_tiny_text_encoder(out: str | Path, seed: int = 0, d_model: int = 16) -> Path:
    """Save a tiny ``T5EncoderModel`` and a word-level tokenizer as ``text_encoder/`` and ``tokenizer/``.

    Used by the projector pre-training (paper A.11), which reads the checkpoint's T5.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    out = Path(out)
    words = [
        "dog",
        "bird",
        "car",
        "rain",
        "engine",
        "water",
        "wind",
        "bell",
        "tone",
        "noise",
        "siren",
        "music",
        "crowd",
        "speech",
        "low",
        "high",
        "band",
        "hum",
        "beep",
        "whistle",
        "drum",
        "piano",
        "guitar",
        "a",
        "the",
        "of",
    ]
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(out / "tokenizer")
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(vocab),
        d_model=d_model,
        d_kv=8,
        d_ff=2 * d_model,
        num_layers=1,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=1,
    )
    T5EncoderModel(config).eval().save_pretrained(out / "text_encoder")
    if (out / "model_index.json").is_file():  # a PixArt-α twin: register the components like the real one
        index = json.loads((out / "model_index.json").read_text())
        index.update(text_encoder=["transformers", "T5EncoderModel"], tokenizer=["transformers", type(fast).__name__])
        (out / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return out


_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def build_tiny_clap(out: str | Path, seed: int = 0, projection_dim: int = 16) -> Path:
    """Write a randomly initialised CLAP (~100K parameters) with a character-level tokenizer to ``out``.

    The folder has the files of ``laion/clap-htsat-unfused``: ``config.json``, ``model.safetensors``,
    ``preprocessor_config.json``, ``tokenizer.json``, ``tokenizer_config.json``, ``vocab.json``, ``merges.txt``.
    """
    import torch
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
        RobertaTokenizer,
    )

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for c in _LETTERS:
        vocab[c] = len(vocab)
        vocab["\u0120" + c] = len(vocab)  # byte-level BPE marks a leading space with U+0120
    tokenizer = RobertaTokenizer(vocab=vocab, merges=[])
    text = ClapTextConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=130,
        projection_dim=projection_dim,
        pad_token_id=1,
    )
    # spec_size * (spec_size // num_mel_bins) must cover the extractor's 1001 frames (10 s at 48 kHz).
    audio = ClapAudioConfig(
        depths=[1, 1],
        num_attention_heads=[2, 2],
        patch_embeds_hidden_size=16,
        hidden_size=32,
        projection_dim=projection_dim,
        window_size=8,
        spec_size=256,
        num_mel_bins=64,
    )
    config = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=projection_dim)
    torch.manual_seed(seed)
    model = ClapModel(config).eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    # The processor files of laion/clap-htsat-unfused (written before processor_config.json existed):
    # preprocessor_config.json, the tokenizer's files and the slow tokenizer's vocab.json + merges.txt.
    ClapFeatureExtractor().save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n")
    return out


# LLaVA-1.5's conversation format, as a chat template the processor applies.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% else %} ASSISTANT: {% for part in message['content'] %}{{ part['text'] }}{% endfor %}</s>{% endif %}"
    "{% endfor %}{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)
_CORPUS = [
    "USER: As a numbered list, provide one to up to three sound(s) associated with prominent objects",
    "visible and present in the image. Provide the objects followed by their associated sound ASSISTANT:",
    "1. Dog - barking loudly 2. Birds - chirping 3. Water: splashing. A cat, a logo, a sign.",
    "Provide a short and concise description of the following image.",
]


def build_tiny_llava(path: str | Path, *, seed: int = 0, image_size: int = 28) -> Path:
    """Save a random LLaVA (tiny Llama + tiny CLIP vision tower) with tokenizer, processor and chat
    template to ``path``, loadable by ``AutoProcessor``/``AutoModelForImageTextToText``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    path = Path(path)
    specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
        vision_feature_select_strategy="default", chat_template=LLAVA_CHAT_TEMPLATE, num_additional_image_tokens=1,
    )  # fmt: skip
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=image_size,
        patch_size=14, projection_dim=32,
    )  # fmt: skip
    config = LlavaConfig(
        text_config=text, vision_config=vision, image_token_index=int(tokenizer.convert_tokens_to_ids("<image>")),  # type: ignore[arg-type]
        vision_feature_select_strategy="default", vision_feature_layer=-1, projector_hidden_act="gelu",
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_tiny_pipeline(out: str | Path, pixart: str | Path, ast: str | Path, audio_embed_dim: int = 32) -> Path:
    """Save an untrained ``AudioPixArtPipeline`` (a tiny PixArt twin + a tiny AST twin) to ``out``.

    What ``generate``/``app``/``push`` load as a run's ``pipeline/`` folder, without training it.
    """
    from seeing_sound.encoders.ast import load_ast
    from seeing_sound.model import AudioPixArt, AudioPixArtPipeline
    from seeing_sound.model.loading import load_scheduler, load_vae

    enc = load_ast(str(ast))
    pipe = AudioPixArtPipeline(
        AudioPixArt.from_pixart(str(pixart), audio_embed_dim=audio_embed_dim),
        load_vae(str(pixart)),
        load_scheduler(str(pixart)),
        enc.model,
        enc.feature_extractor,
    )
    out = Path(out)
    pipe.save_pretrained(out)
    return out
