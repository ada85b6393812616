"""The FID Inception's network input per resize policy: clean-fid's ``(x - 128) / 128`` for ``clean``,
pytorch-fid's ``2x/255 - 1`` for ``legacy`` (naive references, no clean-fid needed)."""

import numpy as np
import pytest
import torch
from PIL import Image

from seeing_sound.evaluation.inception import InceptionEncoder
from seeing_sound.testing.eval_models import build_fid_inception


@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    return build_fid_inception(tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth")


class _Spy(torch.nn.Module):
    """Records what the network is fed; returns pool3-shaped zeros."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return torch.zeros(x.shape[0], 2048)


def _clean_resize_reference(image: np.ndarray) -> np.ndarray:
    """clean-fid's ``make_resizer("PIL", False, "bicubic", (299, 299))``, written out: (3, 299, 299) float32."""
    out = []
    for c in range(3):
        channel = Image.fromarray(image[:, :, c].astype(np.float32), mode="F")
        out.append(np.asarray(channel.resize((299, 299), resample=Image.BICUBIC)).clip(0, 255))
    return np.stack(out).astype(np.float32)


@pytest.mark.parametrize("resize", ["clean", "legacy"])
def test_network_input_is_the_tools_normalization(inception, tmp_path, resize):
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (83, 121, 3), dtype=np.uint8)
    image[0, 0] = (0, 128, 255)  # the ends and the midpoint, where the two normalizations differ most
    Image.fromarray(image).save(tmp_path / "x.png")
    enc = InceptionEncoder(inception, resize=resize, device="cpu", batch_size=2)
    spy = _Spy()
    enc.model = spy
    enc.embed([enc.prepare(tmp_path / "x.png")])
    fed = spy.seen[0][0].numpy()
    if resize == "clean":  # clean-fid's InceptionV3W.forward: x1 = x - 128; x2 = x1 / 128
        x = torch.from_numpy(_clean_resize_reference(image))
        expected = ((x - 128) / 128).numpy()
    else:  # pytorch-fid: bilinear resize of the [0, 1] tensor, then 2 * x - 1
        x = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
        x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        expected = (2 * x[0] - 1).numpy()
    np.testing.assert_allclose(fed, expected, rtol=0, atol=1e-6)


def test_cache_keys_differ_by_input_normalization(inception):
    keys = {r: InceptionEncoder(inception, resize=r, device="cpu").key for r in ("clean", "legacy")}
    assert keys["clean"].endswith("-clean") and keys["legacy"].endswith("-legacy")
    # features cached under clean's former 2x/255 - 1 input are not reused: the key names its version
    assert "-n128-" in keys["clean"]
