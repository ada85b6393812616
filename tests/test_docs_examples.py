"""Every command and Python example in README.md and docs/*.md runs here, as written.

Design (docs/examples.md says it for readers):

- The collector reads each fenced ``bash`` and ``python`` block of ``README.md`` and
  ``docs/*.md``; one test per block, its id ``page:line`` (the fence's line). Output-only
  blocks (``text``, no language, ``json``, ``toml``) are not examples.
- A block marked by an HTML comment on the line before its fence
  (``<!-- example: needs real checkpoints -->``, ``<!-- example: needs a GPU -->``,
  ``<!-- example: not run: REASON -->``) is not run: its ``seeing-sound`` command lines are
  still parsed by the real CLI parser (a renamed flag fails), then the test is skipped.
  ``docs/examples.md`` lists every marked block, and :func:`test_examples_page_lists_the_marked_blocks`
  keeps that list equal to the marks.
- Examples run in a workspace built from the bundled sample and tiny twins
  (:func:`_build_workspace`), one fresh copy per page, blocks of a page in order; Python blocks
  of a page share one namespace. Its folders carry the names the docs use, placeholders
  included (``RUN``, ``POOL``, ``DATASET``, ``GEN_DIR``, ...), so commands run unchanged.
  Hub ids (``laion/clap-htsat-unfused``, ``PixArt-alpha/PixArt-XL-2-512x512``, ...) resolve to
  tiny twins through an offline hub cache (:func:`seeing_sound.testing.hub_cache.write_offline_hub`).
- ``seeing-sound`` lines run in-process through :func:`seeing_sound.cli.main` and must exit 0.
  Synopsis brackets (``[--steps 20]``) are checked against the command's parser, then dropped.
  :data:`SPEED_FLAGS` appends a few flags to the heaviest commands (train for 2 steps, ...);
  argparse keeps the last value, so the documented flags are still parsed and checked.
- Other commands: ``make T`` checks that the Makefile has target ``T``; ``pip install`` checks
  that every ``seeing-sound[extra]`` named exists; ``python SCRIPT.py`` checks the script exists
  and knows every ``--flag`` shown; ``python -c CODE`` runs CODE; any other line (``mkdir``, ``ln``,
  a ``for`` loop) runs through ``bash`` with ``seeing-sound`` on ``PATH``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES_PAGE = ROOT / "docs" / "examples.md"
RUN_LANGS = {"bash", "python"}
MARK = re.compile(r"<!--\s*example:\s*(needs real checkpoints|needs a GPU|not run:\s*(.+?))\s*-->")
FENCE = re.compile(r"^(\s*)```(\S*)")

#: flags appended to a command for speed on CPU twins (argparse keeps the last value given)
SPEED_FLAGS: dict[tuple[str, ...], list[str]] = {
    ("train",): ["--max-steps", "2", "--batch-size", "2", "--grad-accum", "1", "--checkpoint-every", "2",
                 "--sample-every", "2", "--num-workers", "0"],  # fmt: skip
    ("generate",): ["--steps", "2"],
    ("evaluate",): ["--steps", "2"],
    ("features",): ["--resolution", "64"],
}


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # the opening fence's line, 1-based
    lang: str
    code: str
    mark: str | None  # the reason it is not run, or None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def first_line(self) -> str:
        """The first line that is not blank or a comment, without its trailing comment."""
        lines = [ln.strip() for ln in self.code.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        return re.sub(r"\s+#\s.*$", "", lines[0]) if lines else ""


def collect_blocks() -> list[Block]:
    blocks = []
    for path in PAGES:
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            indent, lang = m.group(1), m.group(2)
            j = i + 1
            while not lines[j].strip().startswith("```"):
                j += 1
            if lang in RUN_LANGS:
                mark = MARK.search(lines[i - 1]) if i else None
                reason = None if mark is None else (mark.group(1) if mark.group(2) is None else mark.group(2))
                body = "\n".join(ln[len(indent) :] for ln in lines[i + 1 : j])
                blocks.append(Block(str(path.relative_to(ROOT)), i + 1, lang, body, reason))
            i = j + 1
    return blocks


BLOCKS = collect_blocks()


# --- the one page listing the blocks that are not run ----------------------------------------


def listed_examples() -> set[tuple[str, str, str]]:
    """``(page, first line, reason)`` of each row of docs/examples.md's table."""
    rows = set()
    for line in EXAMPLES_PAGE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])] if line.startswith("| [") else []
        if len(cells) == 3:
            page = re.sub(r"^\[([^\]]+)\]\(.*\)$", r"\1", cells[0])
            rows.add((page, cells[1].strip("`").replace("\\|", "|"), cells[2]))
    return rows


def test_examples_page_lists_the_marked_blocks():
    marked = {(b.page, b.first_line, b.mark) for b in BLOCKS if b.mark}
    assert marked, "no marked blocks found: the collector is broken"
    assert listed_examples() == marked


def test_collector_finds_the_examples():
    assert len([b for b in BLOCKS if not b.mark]) > 30


# --- command lines ---------------------------------------------------------------------------

BRACKETS = re.compile(r"\[([^\[\]]*)\]")
SHELL_OPS = {"&&", "||", ";", "|"}


def logical_lines(code: str) -> list[str]:
    """Lines with continuations joined; blank and comment-only lines dropped."""
    text = code.replace("\\\n", " ")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _subparser(argv: list[str]):
    """The (sub)parser ``argv`` reaches, and the command words leading to it."""
    import argparse

    from seeing_sound.cli import build_parser

    parser, words = build_parser(), []
    rest = [a for a in argv if not a.startswith("-")]
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or not rest or rest[0] not in subs[0].choices:
            return parser, tuple(words)
        words.append(rest[0])
        parser = subs[0].choices[rest.pop(0)]


def check_synopsis(line: str) -> str:
    """Check every ``--flag`` inside ``[...]`` against the command's parser; return the line without them."""
    base = BRACKETS.sub(" ", line)
    flags = [f for group in BRACKETS.findall(line) for f in re.findall(r"--[\w-]+", group)]
    if flags:
        parser, words = _subparser(shlex.split(base, comments=True)[1:])
        known = set(parser._option_string_actions)
        unknown = [f for f in flags if f not in known]
        assert not unknown, f"{' '.join(words)}: unknown flags in the synopsis: {unknown}"
    return base


def seeing_sound_argvs(line: str) -> list[list[str]]:
    """The argv of each ``seeing-sound`` invocation on a line (after ``&&``, env prefixes, xargs, ...)."""
    try:
        tokens = shlex.split(BRACKETS.sub(" ", line), comments=True)
    except ValueError:
        return []
    out, i = [], 0
    while i < len(tokens):
        if tokens[i] in ("seeing-sound", "seeing-sound)"):
            j = i + 1
            while j < len(tokens) and tokens[j] not in SHELL_OPS:
                j += 1
            out.append(tokens[i + 1 : j])
            i = j
        i += 1
    return out


def parse_only(argv: list[str]) -> None:
    from seeing_sound.cli import build_parser

    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"seeing-sound {shlex.join(argv)}: the CLI refuses it (exit {exc.code})") from None


def run_cli(argv: list[str], capsys) -> None:
    from seeing_sound.cli import main

    argv = [os.path.expanduser(a) for a in argv]
    _, words = _subparser(argv)
    for command, extra in SPEED_FLAGS.items():
        if words[: len(command)] == command:
            argv = argv + extra
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    sys.stdout.write(out)
    assert rc == 0, f"seeing-sound {shlex.join(argv)} exited {rc}:\n{err[-3000:]}"


def run_shell(line: str) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", line], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, f"{line}\nexited {proc.returncode}:\n{proc.stderr[-3000:]}"


def check_make(tokens: list[str]) -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in tokens[1:]:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"Makefile has no target {target!r}"


def check_pip(tokens: list[str]) -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for token in tokens[2:]:
        m = re.match(r"^(?:seeing-sound|\.)\[([\w,-]+)\]$", token)
        if m:
            missing = set(m.group(1).split(",")) - extras
            assert not missing, f"pip install {token}: no such extra {sorted(missing)}"


def check_python(tokens: list[str], namespace: dict) -> None:
    if tokens[1] == "-c":
        exec(compile(tokens[2], "<python -c>", "exec"), {})
        return
    script = ROOT / tokens[1]
    assert script.is_file(), f"no script {tokens[1]}"
    source = script.read_text()
    for flag in (t for t in tokens[2:] if t.startswith("--")):
        assert f'"{flag}"' in source, f"{tokens[1]} has no flag {flag}"


def run_bash_block(block: Block, capsys, monkeypatch) -> None:
    for line in logical_lines(block.code):
        if line.split()[0] == "seeing-sound" or re.match(r"^[A-Z_]+=\S+ seeing-sound ", line):
            line = check_synopsis(line)
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            tokens = []
        env = {}
        while tokens and re.match(r"^[A-Z_]+=", tokens[0]):
            name, _, value = tokens.pop(0).partition("=")
            env[name] = value
        if not tokens or "$" in line or tokens[0] in ("for", "while", "if", "mkdir", "ln", "cp"):
            run_shell(line)
            continue
        with monkeypatch.context() as m:
            for name, value in env.items():
                m.setenv(name, value)
            segments: list[list[str]] = [[]]
            for t in tokens:
                if t == "&&":
                    segments.append([])
                else:
                    segments[-1].append(t)
            for seg in segments:
                if seg[0] == "seeing-sound":
                    run_cli(seg[1:], capsys)
                elif seg[0] == "make":
                    check_make(seg)
                elif seg[0] == "pip":
                    check_pip(seg)
                elif seg[0] == "python":
                    check_python(seg, {})
                else:
                    run_shell(shlex.join(seg))


# --- the workspace ---------------------------------------------------------------------------


def _build_workspace(root: Path) -> tuple[Path, Path]:
    """The files and folders the docs name, made from the bundled sample and tiny twins.

    Returns ``(workspace, hub_cache)``.
    """
    import numpy as np
    import soundfile as sf
    from PIL import Image

    from seeing_sound.bench.synthetic import write_greatest_hits_release, write_vggsound_release, write_video
    from seeing_sound.demo import copy_demo_images, demo_sidecar
    from seeing_sound.pool import build_pool
    from seeing_sound.sonify import sonify
    from seeing_sound.testing.eval_models import (
        build_fid_inception,
        build_tiny_clip,
        build_tiny_wav2clip,
        write_eval_folders,
        write_synthetic_benchmark,
    )
    from seeing_sound.testing.hub_cache import write_offline_hub
    from seeing_sound.testing.models import build_tiny_ast, build_tiny_clap, build_tiny_pipeline, build_tiny_pixart
    from seeing_sound.testing.sounds import write_sound_library
    from seeing_sound.testing.vlm_twins import build_llava15

    twins, ws = root / "twins", root / "workspace"
    ws.mkdir(parents=True)
    models = {
        "laion/clap-htsat-unfused": build_tiny_clap(twins / "clap"),
        "MIT/ast-finetuned-audioset-10-10-0.4593": build_tiny_ast(twins / "ast"),
        "PixArt-alpha/PixArt-XL-2-512x512": build_tiny_pixart(twins / "pixart"),
        "openai/clip-vit-base-patch32": build_tiny_clip(twins / "clip"),
        "llava-hf/llava-1.5-7b-hf": build_llava15(twins / "llava"),
    }
    cache = write_offline_hub(root / "hub", models)

    # images, sounds, concepts, a pool, a dataset
    copy_demo_images(ws / "photos")
    shutil.copytree(ws / "photos", ws / "more")
    sounds = write_sound_library(ws / "sounds", variants=1, seconds=3)
    shutil.copy(sounds / "descriptions.csv", ws / "descriptions.csv")
    shutil.copy(demo_sidecar(), ws / "concepts.jsonl")
    here = Path.cwd()
    try:  # as README.md does it, so that the page's own calls find them done
        os.chdir(ws)
        build_pool(["sounds/"], "pool/", descriptions="sounds/descriptions.csv", progress=False)
        sonify("photos/", "pool/", "dataset/", concepts="concepts.jsonl", encoder="text", topk=10, progress=False)
    finally:
        os.chdir(here)
    for name, src in (("POOL", "pool"), ("DATASET", "dataset"), ("pairs", "dataset")):
        shutil.copytree(ws / src, ws / name)
    (ws / "CONCEPTS.jsonl").write_text((ws / "concepts.jsonl").read_text())
    (ws / "concepts.txt").write_text("dog barking\nrain on a roof\nchurch bells\n")

    # audio files by the docs' names
    wavs = sorted(sounds.glob("*.wav"))
    wave, sr = sf.read(wavs[0])
    for name, src in (("dog.wav", 0), ("chatter.wav", 1), ("church-ir.wav", 2), ("irs/hall.wav", 2),
                      ("stems/source1.wav", 3), ("stems/source2.wav", 4)):  # fmt: skip
        (ws / name).parent.mkdir(exist_ok=True)
        shutil.copy(wavs[src % len(wavs)], ws / name)
    wave, sr = sf.read(wavs[min(5, len(wavs) - 1)])
    sf.write(ws / "rain.flac", wave, sr)

    # real pairs: image + sound of the same stem
    (ws / "my_pairs").mkdir()
    for i, image in enumerate(sorted((ws / "photos").iterdir())[:3]):
        Image.open(image).convert("RGB").save(ws / "my_pairs" / f"pair{i}.jpg")
        shutil.copy(wavs[i], ws / "my_pairs" / f"pair{i}.wav")

    # benchmarks, prepared and raw
    for name in ("vggsound", "vegas", "greatest-hits", "landscapes+itw"):
        write_synthetic_benchmark(ws / "bench" / name, n=4, name=name)
    rows = [(f"yt{c}{i}", 10 * i, f"class {c}", "test") for c in "ab" for i in range(2)]
    csv_path = write_vggsound_release(ws / "vggsound", rows, frames=5)
    shutil.copy(csv_path, ws / "vggsound.csv")
    write_greatest_hits_release(ws / "vis-data", {"2015-02-16-16-49-06": [(0.2, "rock")]}, frames=9)
    for folder in ("landscapes/test/fire", "landscape/test/fire", "itw/dog", "VEGAS/dog/video"):
        write_video(ws / folder / "a.mp4", frames=5)

    # evaluation inputs and checkpoints
    dirs = write_eval_folders(root / "eval", n=6, size=32)
    for name, key in (("GEN_DIR", "generated"), ("REF_DIR", "reference"), ("AUDIO_DIR", "audio")):
        shutil.copytree(dirs[key], ws / name)
    shutil.copytree(dirs["generated"], ws / "generated")
    shutil.copytree(dirs["reference"], ws / "train_images")
    build_tiny_wav2clip(ws / "Wav2CLIP.pt")
    build_fid_inception(ws / "pt_inception-2015-12-05-6726825d.pth")
    (ws / "ckpt").mkdir()
    for name in ("Wav2CLIP.pt", "pt_inception-2015-12-05-6726825d.pth"):
        shutil.copy(ws / name, ws / "ckpt" / name)

    # a run: an untrained pipeline of the twins
    build_tiny_pipeline(ws / "RUN" / "pipeline", models["PixArt-alpha/PixArt-XL-2-512x512"],
                        models["MIT/ast-finetuned-audioset-10-10-0.4593"])  # fmt: skip
    del np
    return ws, cache


@pytest.fixture(scope="session")
def docs_workspace(tmp_path_factory) -> tuple[Path, Path]:
    """``(workspace, hub_cache)``: see :func:`_build_workspace`. Read-only; pages get copies."""
    return _build_workspace(tmp_path_factory.mktemp("docs-examples"))


_PAGES: dict[str, tuple[Path, dict]] = {}


@contextlib.contextmanager
def _offline_hub(monkeypatch, cache: Path):
    """Point every loaded Hugging Face library at ``cache`` (their cache constants are read at import)."""
    import diffusers  # noqa: F401  (loaded now so its constants are patched too)
    import huggingface_hub
    import transformers  # noqa: F401

    old = huggingface_hub.constants.HF_HUB_CACHE
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("huggingface_hub", "transformers", "diffusers") and module is not None:
            for attr in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "DIFFUSERS_CACHE",
                         "PYTORCH_TRANSFORMERS_CACHE", "PYTORCH_PRETRAINED_BERT_CACHE", "default_cache_path"):  # fmt: skip
                if getattr(module, attr, None) == old:
                    monkeypatch.setattr(module, attr, str(cache))
    yield


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_example(block: Block, docs_workspace, tmp_path_factory, monkeypatch, capsys):
    if block.mark:
        for line in logical_lines(block.code) if block.lang == "bash" else []:
            for argv in seeing_sound_argvs(line):
                if argv and not any("$" in a for a in argv):
                    parse_only(argv)
        pytest.skip(f"marked: {block.mark}")
    workspace, cache = docs_workspace
    if block.page not in _PAGES:
        copy = tmp_path_factory.mktemp("page") / "ws"
        shutil.copytree(workspace, copy, symlinks=True)
        _PAGES[block.page] = (copy, {"__name__": "__docs__"})
    cwd, namespace = _PAGES[block.page]
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(cwd))
    with _offline_hub(monkeypatch, cache):
        if block.lang == "python":
            exec(compile(block.code, f"{block.page}:{block.line}", "exec"), namespace)
        else:
            run_bash_block(block, capsys, monkeypatch)
