"""The whole chain from the real CLI on the demo sample: demo -> features -> train -> resume -> generate."""

import subprocess
import sys
from pathlib import Path

from seeing_sound.testing.models import build_tiny_ast, build_tiny_pixart


def _cli(*args, cwd):
    exe = str(Path(sys.executable).parent / "seeing-sound")
    res = subprocess.run([exe, "--quiet", *args], cwd=cwd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def test_demo_then_model_commands(tmp_path):
    build_tiny_ast(tmp_path / "ast")
    build_tiny_pixart(tmp_path / "pixart")
    out = _cli("demo", "--out", "demo", cwd=tmp_path)
    assert "pairs       7 written" in out and (tmp_path / "demo/index.html").is_file()
    _cli("features", "demo/dataset", "--ast", "ast", "--vae", "pixart", "--resolution", "16", cwd=tmp_path)
    common = [
        "demo/dataset",
        "--out",
        "run",
        "--pretrained",
        "pixart",
        "--batch-size",
        "2",
        "--checkpoint-every",
        "2",
        "--sample-every",
        "2",
    ]
    _cli("train", *common, "--max-steps", "2", cwd=tmp_path)
    _cli("train", *common, "--max-steps", "4", "--resume", cwd=tmp_path)
    assert (tmp_path / "run/pipeline/model_index.json").is_file() and any((tmp_path / "run/samples").iterdir())
    _cli(
        "generate",
        "demo/dataset/audio/shard-000000/000000.flac",
        "--model",
        "run",
        "--out",
        "gen",
        "--steps",
        "3",
        cwd=tmp_path,
    )
    assert (tmp_path / "gen/000000-seed0.png").is_file() and (tmp_path / "gen/contact-sheet.png").is_file()
