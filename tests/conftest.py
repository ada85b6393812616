"""Shared test setup: offline mode, the gpu marker, and fixtures several test files use.

Session fixtures build their artefact once per test run, lazily (only when a test asks for
it), and hand out a path that tests must treat as read-only: a test that writes into one
(``embed_pool`` writes embeddings beside the pool, ``build_tiny_text_encoder`` adds a text
encoder to a PixArt checkpoint) copies it first with ``shutil.copytree``.
"""

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# No test may reach the network: models load from tmp dirs or installed packages only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests talk to servers on 127.0.0.1 directly, never through a developer's proxy.
os.environ.pop("http_proxy", None)
os.environ.pop("https_proxy", None)
os.environ.pop("all_proxy", None)
os.environ.pop("HTTP_PROXY", None)
os.environ.pop("HTTPS_PROXY", None)
os.environ.pop("ALL_PROXY", None)

import numpy as np
import pytest


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # torch not installed: no GPU tests either
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA (gpu marker)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


# --- fresh interpreters ----------------------------------------------------------------------

#: thread-count variables of the BLAS/OpenMP runtimes numpy and torch may link against
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


@pytest.fixture(scope="session")
def fresh_python() -> Callable[..., str]:
    """``run(code, hash_seed=..., threads=..., args=...) -> stdout``: ``code`` in a new interpreter.

    Each call is a separate process with ``PYTHONHASHSEED=hash_seed`` (so ``hash()`` of a
    str differs between calls with different seeds) and every BLAS/OpenMP thread variable set
    to ``threads``: what a determinism claim "across processes" has to survive.
    Raises ``AssertionError`` with the child's stderr if it fails.
    """

    def run(
        code: str,
        *,
        hash_seed: int | str = 0,
        threads: int | None = None,
        args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
    ) -> str:
        child = dict(os.environ)
        child["PYTHONHASHSEED"] = str(hash_seed)
        for var in THREAD_VARS:
            child.pop(var, None)
            if threads is not None:
                child[var] = str(threads)
        child.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, env=child, timeout=120
        )
        assert proc.returncode == 0, f"child python failed ({proc.returncode}):\n{proc.stderr}"
        return proc.stdout.strip()

    return run


# --- tiny models (need torch + transformers/diffusers; imported only when asked for) ---------


@pytest.fixture(scope="session")
def tiny_pixart_dir(tmp_path_factory) -> Path:
    """``build_tiny_pixart`` with default arguments (transformer, VAE, scheduler). Read-only."""
    from seeing_sound.testing.models import build_tiny_pixart

    return build_tiny_pixart(tmp_path_factory.mktemp("shared-pixart") / "pixart")


@pytest.fixture(scope="session")
def tiny_ast_dir(tmp_path_factory) -> Path:
    """``build_tiny_ast`` with default arguments (audio encoder + feature extractor). Read-only."""
    from seeing_sound.testing.models import build_tiny_ast

    return build_tiny_ast(tmp_path_factory.mktemp("shared-ast") / "ast")


@pytest.fixture(scope="session")
def tiny_clap_dir(tmp_path_factory) -> Path:
    """``build_tiny_clap`` with default arguments (a CLAP checkpoint, projection dim 16). Read-only."""
    from seeing_sound.testing.models import build_tiny_clap

    return build_tiny_clap(tmp_path_factory.mktemp("shared-clap") / "tiny-clap")


# --- pools -----------------------------------------------------------------------------------

#: descriptions of :func:`described_pool`'s files (``quiet.wav`` is silent; ``nodesc.wav`` has none)
POOL_DESCRIPTIONS = [
    {"file": "dog.wav", "description": "a dog barking", "labels": ["Dog", "Bark"]},
    {"file": "rain.wav", "description": "rain falling on a roof", "labels": ["Rain"]},
    {"file": "bell.wav", "labels": ["Church bell"]},
    {"file": "quiet.wav", "description": "silence"},
]


def build_described_pool(root: Path) -> Path:
    """Five 16 kHz files (dog noise 12 s, rain 7 s, bell 6 s, 5 s of silence, an undescribed
    tone) with a JSONL description file, built into ``root/pool``."""
    from seeing_sound.pool import build_pool
    from seeing_sound.testing.signals import noise, tone, write_audio

    src = root / "src"
    src.mkdir(parents=True)
    write_audio(src / "dog.wav", noise(12, 16000, seed=1), 16000)
    write_audio(src / "rain.wav", noise(7, 16000, amp=0.05, seed=2), 16000)
    write_audio(src / "bell.wav", tone(6, 16000, 880), 16000)
    write_audio(src / "quiet.wav", np.zeros(16000 * 5, np.float32), 16000)
    write_audio(src / "nodesc.wav", tone(5, 16000, 300), 16000)
    (root / "desc.jsonl").write_text("\n".join(json.dumps(r) for r in POOL_DESCRIPTIONS))
    build_pool([src], root / "pool", descriptions=root / "desc.jsonl", progress=False)
    return root / "pool"


@pytest.fixture(scope="session")
def described_pool(tmp_path_factory) -> Path:
    """:func:`build_described_pool`, once per run: a pool without embeddings. Read-only;
    ``shutil.copytree(described_pool, tmp / "pool")`` before embedding into it."""
    return build_described_pool(tmp_path_factory.mktemp("shared-described-pool"))


@pytest.fixture(scope="session")
def library_pool(tmp_path_factory) -> Path:
    """``write_sound_library(variants=1, seconds=3)`` built into a pool with its descriptions.

    Returns the root holding ``sounds/`` and ``pool/``. Read-only (sonify and retrieve only
    read a pool; their outputs go elsewhere).
    """
    from seeing_sound.pool import build_pool
    from seeing_sound.testing.sounds import write_sound_library

    root = tmp_path_factory.mktemp("shared-library-pool")
    sounds = write_sound_library(root / "sounds", variants=1, seconds=3)
    build_pool([sounds], root / "pool", descriptions=sounds / "descriptions.csv", progress=False)
    return root


@pytest.fixture(scope="session")
def demo_dataset(library_pool, tmp_path_factory) -> Path:
    """The bundled demo photos sonified with their sidecar concepts over :func:`library_pool` (text
    encoder, topk 3, seed 5, 3 pairs a shard): a small real pairs dataset. Returns its folder; read-only."""
    from seeing_sound.concepts import VLMSpec
    from seeing_sound.demo import copy_demo_images, demo_sidecar
    from seeing_sound.sonify import sonify

    root = tmp_path_factory.mktemp("shared-demo-dataset")
    copy_demo_images(root / "images")
    vlm = VLMSpec("sidecar", str(demo_sidecar()), name="demo")
    sonify(root / "images", library_pool / "pool", root / "ds", vlms=[vlm], encoder="text", topk=3, seed=5,
           progress=False, pairs_per_shard=3)  # fmt: skip
    return root / "ds"
