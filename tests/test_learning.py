"""Proof that the audio path conditions the image (slow, CPU, a few minutes for all seeds).

4 sound types (low/high tones, low/high noise bands) each go with one image pattern. A tiny
AudioPixArt is trained on AST tokens of the sonified audio, once per training seed; images generated
from 100 *held-out* clips (through the saved pipeline and its AST) must land in the right class —
nearest class mean of the training latents — for >= 90 % of clips with *every* seed (chance: 25 %).

The margin has to survive other machines: floating-point kernels (BLAS/oneDNN code paths, CPU
features, summation order) differ in the last bits, which changes a training trajectory as much as
a different seed does. So the test trains several seeds and the settings are chosen so that each of
them lands well above the bar (measured per seed in docs/model.md), not one lucky trajectory:

- a linear LR warm-up and an EMA of the weights (the saved pipeline uses the EMA): at lr 5e-3 with
  neither, the final weights are wherever the last few noisy steps left them (72.5 % on one machine,
  97.5 % on another, same seed); the EMA (decay 0.995, ~200 steps) averages that noise out. The
  misses are low tone <-> high tone (the closest pair in AST-token space: class means ~2.4
  within-class spreads apart, the noise bands ~6); the noise classes were right in every run;
- 3500 steps: with the EMA, held-out accuracy still rose from ~91 % at 2000 steps to 97-100 % at
  3000 (the loss had flattened long before: it is dominated by low-noise steps, while the class is
  decided at high noise), so the budget sits past that knee rather than on it;
- 100 held-out clips instead of 40, so one clip is 1 point and the accuracy is a measurement rather
  than a coin count.

Other test-specific settings (the library defaults stay the paper's): AST tokens time-pooled over the
tiny AST's whole 1-s window (``--ast-pool 9``: 2 summary + 12 frequency-band tokens instead of 110;
the pipeline applies the same pooling to the held-out audio), a 64-wide 2-layer transformer (the
32-wide one conditioned too weakly at high noise), a learning rate for a model trained from scratch,
and a stronger classifier-free guidance. On failure the per-class confusion matrix is printed.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from seeing_sound.features import compute_features, find_feature_set
from seeing_sound.model.pipeline import AudioPixArtPipeline
from seeing_sound.model.training.config import TrainConfig
from seeing_sound.model.training.data import PairFeatures
from seeing_sound.model.training.recipe import train
from seeing_sound.testing.data import SOUND_TYPES, sound_of_type, write_sound_pattern_dataset
from seeing_sound.testing.models import build_tiny_ast, build_tiny_pixart

SEEDS = (0, 1, 2)
STEPS, LR, WARMUP, EMA, BATCH = 3500, 5e-3, 100, 0.995, 32
AST_POOL, GUIDANCE, WIDTH, PER_CLASS, HELD_OUT_PER_CLASS = 9, 7.0, 64, 32, 25
MIN_ACCURACY = 0.9


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run on one intra-op thread: the tiny model's ops gain nothing from more, and on a shared 2-core
    machine 2 threads made a training step ~8x slower (thread hand-offs stall behind other jobs)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class Task:
    pixart: Path
    dataset: Path
    class_means: np.ndarray  # (4, C*h*w) training latents' class means
    waves: list  # held-out clips
    truth: np.ndarray  # their classes


@pytest.fixture(scope="module")
def task(tmp_path_factory, one_torch_thread) -> Task:
    """Twins, the 128-pair dataset and its features (shared by all seeds: only training varies)."""
    root = tmp_path_factory.mktemp("learning")
    pixart, ast = build_tiny_pixart(root / "pixart", width=WIDTH), build_tiny_ast(root / "ast")
    labels = write_sound_pattern_dataset(root / "ds", root / "images", per_class=PER_CLASS)
    compute_features(root / "ds", ast=str(ast), vae=str(pixart), resolution=16, pool=AST_POOL, progress=False)
    data = PairFeatures(find_feature_set(root / "ds", "ast"), find_feature_set(root / "ds", "vae"))
    latents = np.stack([data[i]["mean"].float().numpy().ravel() for i in range(len(data))])
    classes = np.array([labels[row] for row in data.rows])
    class_means = np.stack([latents[classes == k].mean(axis=0) for k in range(4)])
    rng = np.random.default_rng(12345)  # held-out clips: a seed the training set never used
    truth = np.array([k for _ in range(HELD_OUT_PER_CLASS) for k in range(4)])
    waves = [sound_of_type(int(k), rng) for k in truth]
    return Task(pixart, root / "ds", class_means, waves, truth)


def confusion_table(truth: np.ndarray, predicted: np.ndarray) -> str:
    """Rows: true sound type, columns: predicted image class (clip counts)."""
    counts = np.zeros((4, 4), dtype=int)
    np.add.at(counts, (truth, predicted), 1)
    width = max(len(name) for name in SOUND_TYPES)
    lines = [" " * width + " | " + " ".join(f"{name:>{width}}" for name in SOUND_TYPES)]
    for k, name in enumerate(SOUND_TYPES):
        lines.append(f"{name:>{width}} | " + " ".join(f"{c:>{width}d}" for c in counts[k]))
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_generated_images_follow_the_sound_type(task, tmp_path, seed):
    t0 = time.perf_counter()
    train(
        TrainConfig(
            dataset=str(task.dataset),
            out=str(tmp_path / "run"),
            pretrained=str(task.pixart),
            max_steps=STEPS,
            batch_size=BATCH,
            lr=LR,
            warmup_steps=WARMUP,
            ema_decay=EMA,
            seed=seed,
            checkpoint_every=STEPS,
            sample_every=0,
            progress=False,
            log_every=100,
        )
    )
    t_train = time.perf_counter() - t0

    pipe = AudioPixArtPipeline.from_pretrained(tmp_path / "run" / "pipeline")
    pipe.set_progress_bar_config(disable=True)
    assert pipe.config.ast_pool == AST_POOL
    generated = pipe(
        audio=task.waves,
        guidance_scale=GUIDANCE,
        generator=torch.Generator().manual_seed(seed),
        output_type="latent",
    ).images
    flat = generated.numpy().reshape(len(task.waves), -1)
    predicted = ((flat[:, None, :] - task.class_means[None]) ** 2).sum(-1).argmin(axis=1)
    accuracy = float((predicted == task.truth).mean())
    table = confusion_table(task.truth, predicted)
    print(
        f"\nlearning test, seed {seed}: accuracy {accuracy:.3f} on {len(task.truth)} held-out clips after {STEPS} "
        f"steps, {(time.perf_counter() - t0) / 60:.1f} min (training {t_train / 60:.1f} min)\n{table}"
    )
    assert accuracy >= MIN_ACCURACY, (
        f"seed {seed}: {accuracy:.3f} < {MIN_ACCURACY} of held-out clips generated an image of their sound's class "
        f"(rows: true sound type, columns: nearest class mean of the generated latent)\n{table}"
    )
