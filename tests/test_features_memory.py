"""`features` memory is bounded by the batch, not the shard: peak RSS barely grows with the shard size.

Each shard size runs in a fresh interpreter (peak RSS = that process's ``ru_maxrss``). The AST
is stubbed by an encoder returning full-height token maps (1214 x 384, 1.9 MB per pair in
float32), so holding a shard's tokens several times, as the whole-shard stage did, grows the peak
by ~0.6 GB between 16 and 96 pairs; streaming grows it by a few MB. A size bound, not a timing.
"""

import json
import subprocess
import sys

from seeing_sound.testing.data import write_noise_dataset

CHILD = r"""
import json, resource, sys
import numpy as np
from seeing_sound.features import compute_features
from seeing_sound.features.stage import AstFeatureStage, VaeFeatureStage

class FakeAst:
    grid, hidden_size, sampling_rate = (12, 101), 384, 16000
    def encode_torch(self, waves, batch_size=8):
        import torch
        return torch.full((len(waves), 2 + 12 * 101, 384), 0.5)

class FakeVae:
    class config:
        scaling_factor, latent_channels, block_out_channels = 1.0, 4, (1, 1, 1, 1)
    device, dtype = "cpu", None
    def encode(self, x):
        import torch
        class Dist:
            mean = torch.zeros(x.shape[0], 4, x.shape[2] // 8, x.shape[3] // 8)
            std = mean + 0.1
        class Out:
            latent_dist = Dist
        return Out

def ast_setup(self):  # what setup() loads, with the stub in place of the AST
    self.ds, self.encoder = self._dataset(), FakeAst()

def vae_setup(self):
    self.ds, self.vae = self._dataset(), FakeVae()

AstFeatureStage.setup, VaeFeatureStage.setup = ast_setup, vae_setup
kind = sys.argv[2]
opts = dict(ast="fake-ast", vae=None) if kind == "ast" else dict(ast=None, vae="fake-vae", resolution=512)
report = compute_features(sys.argv[1], batch_size=8, progress=False, **opts)[kind]
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "out": report.items_out}))
"""


def _peak(tmp_path, n: int, kind: str) -> float:
    ds = write_noise_dataset(tmp_path / f"{kind}{n}", n, audio_samples=1600)
    done = subprocess.run([sys.executable, "-c", CHILD, str(ds), kind], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["out"] == n
    return out["peak_mb"]


def test_ast_stage_peak_memory_does_not_grow_with_shard_size(tmp_path):
    small, large = _peak(tmp_path, 16, "ast"), _peak(tmp_path, 96, "ast")
    # 80 more pairs of tokens: 150 MB in float32 each time a shard's worth is held; allow < 1 of those.
    assert large - small < 100, f"peak RSS grew {large - small:.0f} MB from 16 to 96 pairs ({small:.0f} -> {large:.0f})"


def test_vae_stage_peak_memory_does_not_grow_with_shard_size(tmp_path):
    small, large = _peak(tmp_path, 16, "vae"), _peak(tmp_path, 96, "vae")
    # 80 more 512^2 images: 250 MB of float32 pixels if a shard's worth is held.
    assert large - small < 100, f"peak RSS grew {large - small:.0f} MB from 16 to 96 pairs ({small:.0f} -> {large:.0f})"
