"""The tiny twins look like the real hub repositories, and our loaders take them as they are.

PixArt-α's ``transformer/config.json`` is a diffusers-0.22 ``Transformer2DModel`` config with legacy
keys; the AudioSet AST is an ``ASTForAudioClassification``; laion CLAP ships its processor files.
Training, resuming and generating from such a twin guards the whole real loading path.
"""

import functools
import json
import logging
import subprocess
import sys
import textwrap
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from seeing_sound.encoders.ast import load_ast
from seeing_sound.model.audio_pixart import AudioPixArt, pixart_init_config
from seeing_sound.testing.models import AUDIOSET_NUM_LABELS, build_tiny_ast, build_tiny_clap, build_tiny_pixart

LEGACY_KEYS = ("double_self_attention", "num_vector_embeds", "only_cross_attention", "use_linear_projection")


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    return build_tiny_pixart(root / "pixart"), build_tiny_ast(root / "ast")


@contextmanager
def transformers_log():
    """Messages transformers logs (its library logger does not propagate to the root logger)."""
    from transformers.utils import logging as hf_logging

    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logger, handler, verbosity = logging.getLogger("transformers"), Collect(), hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        hf_logging.set_verbosity(verbosity)


# --- PixArt-α ---------------------------------------------------------------------------------------
def test_pixart_twin_is_saved_like_the_hub_repo(twins):
    from diffusers import PixArtTransformer2DModel

    pixart, _ = twins
    config = json.loads((pixart / "transformer" / "config.json").read_text())
    assert config["_class_name"] == "Transformer2DModel"
    assert config["_diffusers_version"] == "0.22.0.dev0"
    assert all(key in config for key in LEGACY_KEYS)
    assert config["norm_type"] == "ada_norm_single" and config["out_channels"] == 8
    with pytest.raises(TypeError, match="double_self_attention"):  # the bug a naive config copy hits
        PixArtTransformer2DModel(**{k: v for k, v in config.items() if not k.startswith("_")})
    index = json.loads((pixart / "model_index.json").read_text())
    assert index["_class_name"] == "PixArtAlphaPipeline"
    assert index["transformer"] == ["diffusers", "Transformer2DModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    assert {"scheduler", "text_encoder", "tokenizer"} <= set(index)


def test_diffusers_own_pipeline_loads_the_twin(twins, tmp_path):
    """The twin is a PixArt-α repository for diffusers too: PixArtAlphaPipeline resolves the legacy class."""
    import shutil

    from diffusers import PixArtAlphaPipeline, PixArtTransformer2DModel

    from seeing_sound.testing.models import build_tiny_text_encoder

    pixart = shutil.copytree(twins[0], tmp_path / "pixart")
    build_tiny_text_encoder(pixart)
    index = json.loads((pixart / "model_index.json").read_text())
    assert index["text_encoder"] == ["transformers", "T5EncoderModel"]
    pipe = PixArtAlphaPipeline.from_pretrained(pixart)
    assert isinstance(pipe.transformer, PixArtTransformer2DModel)


def test_pixart_init_config_drops_legacy_keys_and_rejects_unknown_ones(twins):
    config = json.loads((twins[0] / "transformer" / "config.json").read_text())
    init = pixart_init_config(config)
    assert not set(init) & {*LEGACY_KEYS, "_class_name", "_diffusers_version"}
    assert init["num_layers"] == 2 and init["caption_channels"] == 16
    with pytest.raises(ValueError, match="num_layer"):
        pixart_init_config({**config, "num_layer": 3})
    with pytest.raises(ValueError, match="num_layer"):
        AudioPixArt(transformer_config={"num_layer": 3}, audio_embed_dim=8)


def test_from_pixart_saves_a_clean_config_that_loads_back(twins, tmp_path):
    model = AudioPixArt.from_pixart(str(twins[0]), audio_embed_dim=32)
    assert model.training  # a new model, ready to train
    assert not set(model.config.transformer_config) & set(LEGACY_KEYS)
    model.save_pretrained(tmp_path / "m")
    loaded = AudioPixArt.from_pretrained(tmp_path / "m")
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


_PEAK_RSS = """
import resource, sys, torch
from seeing_sound.model.audio_pixart import AudioPixArt
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model = AudioPixArt.from_pixart(sys.argv[1], audio_embed_dim=768)
with torch.no_grad():  # read every weight: memory-mapped pages count once touched
    sum(float(p.float().sum()) for p in model.parameters())
growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(growth / sum(p.numel() * p.element_size() for p in model.parameters()))
"""


def test_from_pixart_materialises_one_transformer(twins, monkeypatch):
    """Every PixArt transformer from_pixart builds, except the one it returns, stays on the meta device."""
    from diffusers import PixArtTransformer2DModel

    built = []
    init = PixArtTransformer2DModel.__init__

    @functools.wraps(init)  # keeps the signature diffusers reads the config keys from
    def recording_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(PixArtTransformer2DModel, "__init__", recording_init)
    model = AudioPixArt.from_pixart(str(twins[0]), audio_embed_dim=32)
    with_weights = [m for m in built if any(p.device.type != "meta" for p in m.parameters())]
    assert len(built) >= 2 and with_weights == [model.transformer]


@pytest.mark.slow
def test_from_pixart_holds_one_copy_of_the_weights(tmp_path):
    """Peak memory of from_pixart is about one transformer's weights, not two (load + copy)."""
    from diffusers import PixArtTransformer2DModel

    torch.manual_seed(0)
    PixArtTransformer2DModel(
        num_attention_heads=12, attention_head_dim=64, num_layers=2, cross_attention_dim=768,
        sample_size=16, caption_channels=768, norm_num_groups=32,
    ).save_pretrained(tmp_path / "mid" / "transformer")  # fmt: skip  # ~20M parameters, 80 MB
    script = textwrap.dedent(_PEAK_RSS)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "mid")], capture_output=True, text=True, check=True
    )
    ratio = float(proc.stdout.strip().splitlines()[-1])
    assert ratio < 1.5, f"peak RSS grew by {ratio:.2f}x the weights"  # two copies read ~2x


# --- train, resume, generate on the hub-style twins --------------------------------------------------
@pytest.fixture(scope="module")
def features(twins, tmp_path_factory):
    from seeing_sound.features import compute_features
    from seeing_sound.testing.data import write_sound_pattern_dataset

    pixart, ast = twins
    root = tmp_path_factory.mktemp("hubds")
    write_sound_pattern_dataset(root / "ds", root / "img", per_class=2)
    compute_features(root / "ds", ast=str(ast), vae=str(pixart), resolution=16, progress=False)
    return root / "ds"


def _cfg(twins, features, out, **kw):
    from seeing_sound.model.training.config import TrainConfig

    base = dict(
        dataset=str(features), out=str(out), pretrained=str(twins[0]), batch_size=4, lr=1e-3,
        checkpoint_every=2, sample_every=0, sample_steps=2, progress=False,
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_hub_twin_trains_resumes_and_generates(twins, features, tmp_path):
    from seeing_sound.model.generate import load_pipeline
    from seeing_sound.model.training.recipe import train
    from seeing_sound.testing.data import sound_of_type

    full = train(_cfg(twins, features, tmp_path / "full", max_steps=4))
    first = train(_cfg(twins, features, tmp_path / "split", max_steps=2))
    second = train(_cfg(twins, features, tmp_path / "split", max_steps=4, resume="latest"))
    assert sorted(second.losses) == [3, 4]
    assert {**first.losses, **second.losses} == full.losses

    pipe = load_pipeline(tmp_path / "split", device="cpu")
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe.audio_encoder).__name__ == "ASTModel"  # the backbone of the classifier checkpoint
    wave = sound_of_type(0, np.random.default_rng(0), seconds=1.0)
    images = pipe(audio=wave, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert images.images.shape == (1, 16, 16, 3) and np.isfinite(images.images).all()


# --- AST -----------------------------------------------------------------------------------------------
def test_ast_twin_is_a_classifier_checkpoint(twins):
    config = json.loads((twins[1] / "config.json").read_text())
    assert config["architectures"] == ["ASTForAudioClassification"]
    assert len(config["id2label"]) == AUDIOSET_NUM_LABELS == 527


def test_ast_from_the_classifier_checkpoint_loads_without_a_report(twins):
    from transformers import ASTModel

    with transformers_log() as messages:
        ASTModel.from_pretrained(twins[1])  # the library alone reports the head
    assert any("UNEXPECTED" in m and "classifier" in m for m in messages)
    with transformers_log() as messages:
        encoder = load_ast(str(twins[1]))
    assert not [m for m in messages if "UNEXPECTED" in m or "MISSING" in m], messages
    assert type(encoder.model).__name__ == "ASTModel"
    assert encoder.encode([np.zeros(16000, np.float32)]).shape == (1, encoder.num_tokens, encoder.hidden_size)


def test_a_wrong_ast_checkpoint_is_still_reported(twins, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    bad = shutil.copytree(twins[1], tmp_path / "bad")
    state = load_file(bad / "model.safetensors")
    dropped = next(k for k in state if k.endswith("layer.0.output.dense.bias"))
    del state[dropped]
    state["audio_spectrogram_transformer.bogus.weight"] = torch.zeros(3)
    save_file(state, bad / "model.safetensors", metadata={"format": "pt"})
    with transformers_log() as messages:
        load_ast(str(bad))
    report = "\n".join(messages)
    assert "bogus" in report and "UNEXPECTED" in report
    assert "MISSING" in report  # transformers names the dropped key in its own (renamed) layout

    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "intermediate_size": 48}))  # weights are 64 wide
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        load_ast(str(bad))


# --- CLAP ------------------------------------------------------------------------------------------------
def test_clap_twin_has_the_processor_files_of_laion_clap(tmp_path):
    from transformers import ClapFeatureExtractor, ClapProcessor

    path = build_tiny_clap(tmp_path / "clap")
    for name in ("config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"):
        assert (path / name).is_file(), name
    assert isinstance(ClapFeatureExtractor.from_pretrained(path), ClapFeatureExtractor)
    processor = ClapProcessor.from_pretrained(path)
    assert processor.feature_extractor.sampling_rate == 48000
    assert processor.tokenizer("a dog").input_ids[0] == processor.tokenizer.bos_token_id
