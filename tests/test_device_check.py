"""``benchmarks/device_check.py --small --device cpu`` runs every row, prints its table and writes its JSON.

The script is what a GPU session runs once (full sizes, one process, a time budget); here it runs as
the user runs it, in a fresh interpreter, offline, with tiny twins on the CPU (seconds), with a
temporary folder as its working directory and ``TMPDIR``. No timing is checked: only that every row
measured something or says why it could not, that nothing raised, and that the retrieval engines
chose the same rows as the CPU exact path on every query.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "device_check.py"
ROWS = {"floor", "retrieval", "clap", "features", "train", "sample", "eval"}
#: the only reasons a measurement may be skipped on a CPU: the GPU-only variants (CLAP fp16, AST bf16)
ALLOWED_SKIPS_ON_CPU = ("no CUDA:",)

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("torch", "transformers", "diffusers")),
    reason="device_check needs torch, transformers and diffusers",
)


def _run(tmp: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp / "device.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TMPDIR=str(tmp))
    cmd = [sys.executable, str(SCRIPT), "--small", *args, "--json", str(out)]
    return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600), out


def _check_entries(doc: dict, rows: set[str]) -> list[dict]:
    """Every entry measured something or was skipped for an allowed reason; every row measured something."""
    assert doc["complete"] is True and doc["small"] is True and doc["device"] == "cpu"
    entries = doc["entries"]
    assert {e["row"] for e in entries} == rows
    for e in entries:
        where = f"{e['row']}: {e['what']}"
        assert e["status"] in ("ok", "skipped"), f"{where} {e['status']}: {e['reason']}"
        assert e["size"], where
        if e["status"] == "ok":
            assert isinstance(e["result"], (int, float)) and math.isfinite(e["result"]) and e["result"] > 0, where
            assert e["unit"], where
        else:
            assert e["reason"].startswith(ALLOWED_SKIPS_ON_CPU), f"{where} skipped: {e['reason']}"
    for row in rows:  # every row measured something on the CPU (skips are only the GPU-only variants)
        assert any(e["row"] == row and e["status"] == "ok" for e in entries), row
    return entries


def _check_retrieval_exact(entries: list[dict]) -> None:
    engines = [e for e in entries if e["row"] == "retrieval" and "exact" in e]
    assert {e["what"].split(",")[1].strip() for e in engines} == {"bf16 engine on cpu", "torch engine on cpu"}
    assert len(engines) == 4  # two engines x k in (10, 100)
    for e in engines:
        assert e["exact"] is True and e["rows_differ"] == 0, e
        assert "exact: yes" in e["note"], e


def _check_table(stdout: str, rows: set[str]) -> None:
    table = [line for line in stdout.splitlines() if line.startswith("|")]
    assert len(table) >= 2 + len(rows), stdout  # header, rule, at least one line per row
    assert {line.split("|")[1].strip() for line in table[2:]} == rows, stdout


def test_small_run_all_rows(tmp_path):
    """The whole ``--small`` run: 16 s on the idle 2-core development machine, up to ~45 s when it is shared."""
    done, out = _run(tmp_path, "--device", "cpu")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    _check_table(done.stdout, ROWS)
    entries = _check_entries(json.loads(out.read_text()), ROWS)
    _check_retrieval_exact(entries)


def test_only_and_unavailable_device(tmp_path):
    """``--only`` keeps its order; a CUDA device that is not there skips every row with its reason."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done, out = _run(tmp_path, "--device", "cuda", "--only", "train,floor")
    assert done.returncode == 0, done.stderr[-3000:]
    entries = json.loads(out.read_text())["entries"]
    assert [e["row"] for e in entries] == ["train", "floor"]
    assert all(e["status"] == "skipped" and e["reason"].startswith("no CUDA") for e in entries), entries
