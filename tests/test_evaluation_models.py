"""Wav2CLIP, FID Inception and CLIP feature extractors: tiny twins saved to disk, loaded through the real loaders."""

import numpy as np
import pytest
import torch
from PIL import Image

from seeing_sound.errors import ModelNotFoundError, SeeingSoundError
from seeing_sound.evaluation.clip import ClipImageEncoder
from seeing_sound.evaluation.inception import (
    FidInceptionV3,
    InceptionEncoder,
    load_fid_inception,
    resize_for_inception,
)
from seeing_sound.evaluation.wav2clip import Wav2ClipAudio, Wav2ClipEncoder, load_wav2clip
from seeing_sound.testing.eval_models import (
    TINY_CLIP_DIM,
    build_fid_inception,
    build_tiny_clip,
    build_tiny_wav2clip,
)


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-twins")
    return {
        "wav2clip": build_tiny_wav2clip(root / "Wav2CLIP.pt"),
        "clip": build_tiny_clip(root / "clip"),
        "inception": build_fid_inception(root / "pt_inception-2015-12-05-6726825d.pth"),
    }


# --- Wav2CLIP ------------------------------------------------------------------------------------


def test_wav2clip_has_the_official_architecture_and_keys():
    """ResNet-18 on a 1-channel log spectrogram + the 512-512-512 MLP, keyed as the official checkpoint."""
    m = Wav2ClipAudio()
    sd = m.state_dict()
    assert sum(p.numel() for p in m.audio_encoder.parameters()) == 11_170_240
    assert sum(p.numel() for p in m.audio_transform.parameters()) == 2 * (512 * 512 + 512)
    assert sd["audio_encoder.spectrogram.window"].shape == (512,)
    assert sd["audio_encoder.conv1.weight"].shape == (64, 1, 7, 7)
    assert sd["audio_encoder.layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert "audio_encoder.layer1.0.downsample.0.weight" not in sd
    assert sd["audio_encoder.layer4.1.bn2.running_var"].shape == (512,)
    assert sorted(k for k in sd if k.startswith("audio_transform")) == [
        "audio_transform.sequential.0.bias",
        "audio_transform.sequential.0.weight",
        "audio_transform.sequential.3.bias",
        "audio_transform.sequential.3.weight",
    ]
    assert not any(k.startswith("audio_encoder.fc") for k in sd)


def test_tiny_wav2clip_is_saved_in_the_official_format(twins):
    sd = torch.load(twins["wav2clip"], weights_only=True)
    prefixes = {k.split(".")[0] for k in sd}
    assert prefixes == {"audio_encoder", "audio_transform", "image_transform", "loss_fn_a", "loss_fn_i"}
    model, info = load_wav2clip(twins["wav2clip"])
    assert info["dim"] == TINY_CLIP_DIM and info["revision"].startswith("sha256:")
    assert model.audio_encoder.conv1.out_channels == 8


def test_wav2clip_spectrogram_matches_a_numpy_stft():
    model = Wav2ClipAudio(width=8, mlp_units=(64, 32))
    wave = np.random.default_rng(0).normal(size=4000).astype(np.float32)
    spec = model.audio_encoder.spectrogram(torch.from_numpy(wave)[None])[0, 0].numpy()
    padded = np.pad(wave.astype(np.float64), 256, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)  # periodic Hann
    frames = [padded[s : s + 512] * window for s in range(0, len(padded) - 512 + 1, 353)]
    ref = np.abs(np.fft.rfft(frames, axis=1)).T ** 2
    np.testing.assert_allclose(spec, ref, rtol=1e-3, atol=1e-3)


def test_wav2clip_embeddings_do_not_depend_on_the_batch(twins):
    enc = Wav2ClipEncoder(twins["wav2clip"], device="cpu")
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 0.1, 16000).astype(np.float32), rng.normal(0, 0.3, 16000).astype(np.float32)
    one = enc.embed([a])
    both = enc.embed([a, b])
    np.testing.assert_allclose(one[0], both[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(both[0], both[1])
    # per-clip standardisation = the official whole-batch standardisation for a batch of one
    x = torch.from_numpy(np.stack([a, b]))
    with torch.inference_mode():
        m = enc.model.audio_encoder
        spec = torch.log(m.spectrogram(x[:1]) + 1e-7)
        official = (spec - spec.mean()) / (spec.std() + 1e-9)
        h = m.maxpool(m.relu(m.bn1(m.conv1(official))))
        for k in range(1, 5):
            h = getattr(m, f"layer{k}")(h)
        ref = enc.model.audio_transform(m.avgpool(h).flatten(1))[0].numpy()
    np.testing.assert_allclose(one[0], ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="257 samples"):
        enc.embed([a[:100]])


def test_wav2clip_load_errors(twins, tmp_path):
    with pytest.raises(ModelNotFoundError, match="wav2clip=PATH"):
        load_wav2clip(tmp_path / "missing.pt")
    with pytest.raises(SeeingSoundError, match="not a Wav2CLIP checkpoint"):
        load_wav2clip(twins["inception"])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SeeingSoundError, match="could not be read"):
        load_wav2clip(tmp_path / "junk.pt")


# --- Inception -----------------------------------------------------------------------------------


def test_fid_inception_has_pytorch_fids_keys():
    sd = FidInceptionV3().state_dict()
    weights = [k for k in sd if not k.endswith("num_batches_tracked")]
    assert len(weights) == 472  # torchvision Inception3(num_classes=1008, aux_logits=False)
    assert sum(v.numel() for k, v in FidInceptionV3().named_parameters()) == 23_850_960
    assert sd["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    assert sd["Mixed_6e.branch7x7dbl_5.conv.weight"].shape == (192, 192, 1, 7)
    assert sd["fc.weight"].shape == (1008, 2048)
    assert not any(k.startswith("AuxLogits") for k in sd)


def test_fid_inception_twin_loads_with_or_without_num_batches_tracked(twins, tmp_path):
    model, _ = load_fid_inception(twins["inception"])
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    with torch.inference_mode():
        feats = model(x)
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all() and feats.std() > 0
    sd = {k: v for k, v in torch.load(twins["inception"], weights_only=True).items() if "num_batches" not in k}
    torch.save(sd, tmp_path / "stripped.pth")
    again, _ = load_fid_inception(tmp_path / "stripped.pth")
    with torch.inference_mode():
        torch.testing.assert_close(again(x), feats)
    with pytest.raises(SeeingSoundError, match="not pytorch-fid's FID Inception"):
        load_fid_inception(twins["wav2clip"])
    with pytest.raises(ModelNotFoundError, match="inception=PATH"):
        load_fid_inception(tmp_path / "nope.pth")


def test_resize_policies():
    rng = np.random.default_rng(2)
    big = rng.integers(0, 256, (600, 500, 3), dtype=np.uint8)
    clean, legacy = resize_for_inception(big, "clean"), resize_for_inception(big, "legacy")
    assert clean.shape == legacy.shape == (3, 299, 299) and clean.dtype == np.float32
    assert clean.min() >= 0 and clean.max() <= 255
    # antialiasing: the clean downscale of noise is much smoother than bilinear sampling
    assert clean.std() < 0.7 * legacy.std()
    ref = np.asarray(Image.fromarray(big[:, :, 1].astype(np.float32), mode="F").resize((299, 299), Image.BICUBIC))
    np.testing.assert_allclose(clean[1], np.clip(ref, 0, 255), rtol=1e-6)
    exact = rng.integers(0, 256, (299, 299, 3), dtype=np.uint8)
    np.testing.assert_allclose(resize_for_inception(exact, "legacy"), exact.transpose(2, 0, 1), atol=1e-3)
    with pytest.raises(ValueError, match="resize must be one of"):
        resize_for_inception(exact, "bilinear")


def test_inception_encoder_is_batch_independent(twins, tmp_path):
    rng = np.random.default_rng(3)
    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(files[-1])
    enc = InceptionEncoder(twins["inception"], device="cpu", batch_size=2)
    inputs = [enc.prepare(f) for f in files]
    all3 = enc.embed(inputs)
    np.testing.assert_allclose(enc.embed(inputs[2:]), all3[2:], rtol=1e-5, atol=1e-6)
    assert all3.shape == (3, 2048) and enc.key.endswith("-clean")


# --- CLIP ----------------------------------------------------------------------------------------


def test_clip_encoder_equals_get_image_features(twins, tmp_path):
    from transformers import CLIPModel

    enc = ClipImageEncoder(str(twins["clip"]), device="cpu", batch_size=4)
    rng = np.random.default_rng(4)
    f = tmp_path / "x.png"
    Image.fromarray(rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)).save(f)
    pixels = enc.prepare(f)
    assert pixels.shape == (3, 32, 32)
    ours = enc.embed([pixels])[0]
    model = CLIPModel.from_pretrained(str(twins["clip"])).eval()
    with torch.inference_mode():
        direct = model.get_image_features(pixel_values=torch.from_numpy(pixels)[None]).pooler_output[0].numpy()
    np.testing.assert_allclose(ours, direct, rtol=1e-4, atol=1e-5)
    with pytest.raises(ModelNotFoundError, match="clip=PATH"):
        ClipImageEncoder(str(tmp_path / "no-clip"), device="cpu")
