"""`seeing-sound concepts` from the command line: in-process, the real entry point, kill + resume."""

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from seeing_sound.cli import main
from seeing_sound.concepts import CAPTION_PROMPT, read_concepts
from seeing_sound.concepts.backends import clear_backend_cache
from seeing_sound.testing.servers import ChatCompletionsServer, completion

SKIMAGE = Path(pytest.importorskip("skimage").__file__).parent / "data"
PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "logo.png", "motorcycle_left.png")
ENTRY = Path(sys.executable).with_name("seeing-sound")


@pytest.fixture(autouse=True)
def _fresh_backends():
    yield
    clear_backend_cache()


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for name in PHOTOS:
        shutil.copy(SKIMAGE / name, root / name)
    return root


def _paced(body, n):
    prompt = body["messages"][0]["content"][0]["text"]
    url = body["messages"][0]["content"][1]["image_url"]["url"]
    is_logo = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (500, 500)  # logo.png
    text = ("A black logo." if is_logo else "A photo.") if prompt == CAPTION_PROMPT else "1. Thing - a sound"
    return 200, {}, completion(text), 0.12


def _run_entry(args, env_extra=None, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.Popen(
        [str(ENTRY), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def test_sidecar_in_process(photos, tmp_path, capsys):
    side = tmp_path / "side.jsonl"
    side.write_text(
        json.dumps({"image_id": "chelsea.png", "caption": "A cat.", "concepts": "1. Cat - meow"}) + "\n"
        + json.dumps({"image_id": "logo.png", "caption": "A logo.", "concepts": "1. Nothing - silence"}) + "\n"
    )  # fmt: skip
    rc = main(["--quiet", "concepts", str(photos), "--out", str(tmp_path / "out"), "--vlm", f"sidecar:{side}"])
    out = capsys.readouterr().out
    assert (
        rc == 0 and "6 images in, 1 with concepts, 1 filtered, 4 failed" in out and "caption:sidecar-missing=4" in out
    )
    concepts, images = read_concepts(tmp_path / "out")
    assert concepts["concept"].to_pylist() == ["Cat: meow"] and images.num_rows == 6


def _usage_exit(argv) -> int:
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code


def test_bad_arguments_are_usage_errors_with_one_line(photos, tmp_path, capsys):
    # Bad option values are usage errors (exit 2), caught at parse time or before any stage.
    assert _usage_exit(["concepts", str(photos), "--out", str(tmp_path / "o"), "--vlm", "bogus:x"]) == 2
    err = capsys.readouterr().err
    assert "--vlm" in err and "a VLM spec must start with one of" in err and len(err.strip().splitlines()) == 1
    assert _usage_exit(["concepts", str(photos), "--out", str(tmp_path / "o"), "--vlm", "openai"]) == 2
    assert (
        main(["concepts", str(photos), "--out", str(tmp_path / "o"), "--vlm", "sidecar:x.jsonl", "--no-captions"]) == 2
    )
    assert not (tmp_path / "o").exists()
    err = capsys.readouterr().err
    assert "needs a model name" in err and "no_filter" in err
    with pytest.raises(SystemExit):
        main(["concepts", str(photos)])  # --out is required (argparse, exit 2)


def test_entry_point_openai_killed_midway_resumes_to_the_same_output(photos, tmp_path):
    with ChatCompletionsServer(_paced) as server:
        base = ["concepts", str(photos), "--vlm", "openai:paced", "--base-url", server.url, "--shard-size", "1"]
        clean = _run_entry([*base, "--out", str(tmp_path / "clean"), "--quiet"])
        out, err = clean.communicate(timeout=120)
        assert clean.returncode == 0, err
        assert "6 images in, 5 with concepts, 1 filtered" in out and "logo=1" in out

        victim = _run_entry([*base, "--out", str(tmp_path / "killed")], start_new_session=True)
        marker = tmp_path / "killed" / "_stages" / "concepts" / "shard-000001.done.json"
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and victim.poll() is None:
            time.sleep(0.05)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.communicate(timeout=30)
        done_before = len(list(marker.parent.glob("*.done.json")))
        assert 2 <= done_before < len(PHOTOS)

        resumed = _run_entry([*base, "--out", str(tmp_path / "killed"), "--quiet"])
        out, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
        assert f"{len(PHOTOS) - done_before} shards run, {done_before} reused" in out
    files = sorted(p.relative_to(tmp_path / "clean") for p in (tmp_path / "clean").glob("*/shard-*.parquet"))
    assert len(files) == 2 * len(PHOTOS)
    for f in files:
        assert (tmp_path / "clean" / f).read_bytes() == (tmp_path / "killed" / f).read_bytes(), f
    assert not list((tmp_path / "killed").glob("**/*.tmp"))
