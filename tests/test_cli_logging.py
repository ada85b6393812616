"""What a user's terminal shows: our INFO lines, no third-party INFO chatter, no third-party bars under --quiet.

Each check runs ``seeing_sound.cli.main`` in a fresh interpreter: logging and the libraries'
progress-bar switches are process-wide, and pytest's own log handlers would hide the setup.
"""

import os
import subprocess
import sys

import pytest

from seeing_sound.cli import QUIET_ENV

#: ``main(argv)`` with the ``verify`` command's handler replaced by ``BODY`` (a cheap command to hang it on)
CHILD = """
import logging, sys
{before}
import seeing_sound.cli.verify as command

def handler(args):
{body}
    return 0

register = command.register

def patched(sub):
    register(sub)
    sub.choices["verify"].set_defaults(handler=handler)

command.register = patched
from seeing_sound.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli(body: str, *flags: str, before: str = "") -> subprocess.CompletedProcess:
    code = CHILD.format(before=before, body="\n".join(f"    {line}" for line in body.strip().splitlines()))
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENV}  # bars on unless --quiet turns them off
    res = subprocess.run(
        [sys.executable, "-c", code, *flags, "verify", "DATASET"], capture_output=True, text=True, timeout=300, env=env
    )
    assert res.returncode == 0, res.stderr
    return res


def test_third_party_info_lines_stay_off_stderr_unless_debug():
    pytest.importorskip("faiss")
    body = """
logging.getLogger("seeing_sound.retrieval").info("our info line")
import faiss  # its loader logs six INFO lines, ModuleNotFoundError("... swigfaiss_avx512") among them
logging.getLogger("seeing_sound.retrieval").debug("our debug line")
"""
    default = run_cli(body).stderr
    assert "our info line" in default and "our debug line" not in default
    assert "faiss" not in default and "ModuleNotFoundError" not in default
    debug = run_cli(body, "--log-level", "DEBUG").stderr
    assert "faiss.loader" in debug and "our debug line" in debug
    quiet = run_cli(body, "--quiet").stderr
    assert quiet == ""
    warning = run_cli(body, "--log-level", "WARNING").stderr
    assert "our info line" not in warning and "faiss" not in warning


def test_quiet_silences_hugging_face_progress_bars_and_verbosity():
    pytest.importorskip("transformers")
    pytest.importorskip("diffusers")
    # diffusers (and tqdm with it) is imported before the CLI sets anything up, transformers only in the command
    before = "import diffusers.utils.logging"
    body = """
import diffusers.utils.logging as dl
import transformers.utils.logging as tl
from huggingface_hub.utils import tqdm as hub_tqdm
for _ in tl.tqdm(range(2), desc="transformers-bar"):
    pass
for _ in dl.tqdm(range(2), desc="diffusers-bar"):
    pass
for _ in hub_tqdm(range(2), desc="hub-bar"):
    pass
print("verbosity", tl.get_verbosity(), dl.get_verbosity())
"""
    loud = run_cli(body, "--log-level", "DEBUG", before=before)  # by default the loaders' bars are off already
    assert all(bar in loud.stderr for bar in ("transformers-bar", "diffusers-bar", "hub-bar"))
    quiet = run_cli(body, "--quiet", before=before)
    assert quiet.stderr == ""
    assert quiet.stdout.split() == ["verbosity", "40", "40"]  # logging.ERROR: no library warnings either


def test_quiet_environment_lasts_for_the_command_only(tmp_path, monkeypatch, capsys):
    """A caller of main() (tests, an application) keeps its environment: later subprocesses still show bars."""
    from seeing_sound.cli import main

    for name in QUIET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    assert main(["--quiet", "pool", "info", str(tmp_path)]) == 1  # not a pool: the command still ran
    assert os.environ.get("TRANSFORMERS_VERBOSITY") == "info"
    assert not [name for name in QUIET_ENV if name != "TRANSFORMERS_VERBOSITY" and name in os.environ]


def test_model_loader_bars_stay_off_by_default_and_ours_stay_on():
    """``make demo`` shows the pipeline's own bars, not huggingface_hub's ("Loading weights") unless DEBUG."""
    pytest.importorskip("huggingface_hub")
    body = """
from huggingface_hub.utils import tqdm as hub_tqdm
from tqdm.auto import tqdm
for _ in hub_tqdm(range(2), desc="hub-bar"):
    pass
for _ in tqdm(range(2), desc="our-bar"):
    pass
"""
    default = run_cli(body).stderr
    assert "hub-bar" not in default and "our-bar" in default
    assert "hub-bar" in run_cli(body, "--log-level", "DEBUG").stderr
