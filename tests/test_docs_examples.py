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
- Examples run in a workspace built once from the bundled sample and tiny twins
  (:func:`_build_workspace`); each block starts from a fresh copy of it, at the same path
  (:data:`ABSENT` names outputs a block writes afresh, :data:`CONTINUES` the blocks that go on
  from the previous block's files); Python blocks of a page share one namespace. Its folders
  carry the names the docs use, placeholders included (``RUN``, ``POOL``, ``DATASET``,
  ``GEN_DIR``, ...), so commands run unchanged, and a local chat-completions server stands in
  for ``--vlm openai:...`` (``$OPENAI_BASE_URL``, and :data:`SERVER_URL`).
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
    ("train",): shlex.split(
        "--max-steps 2 --batch-size 2 --grad-accum 1 --checkpoint-every 2 --sample-every 2 --num-workers 0"
    ),
    ("generate",): ["--steps", "2"],
    ("evaluate",): ["--steps", "2"],
    ("features",): ["--resolution", "64"],
}


#: blocks too slow on CPU twins for the fast tier: they run in the slow tier (none at present)
SLOW: set[str] = set()

#: workspace paths a block's copy starts without: the block writes them afresh, with other settings
ABSENT: dict[str, list[str]] = {
    "docs/benchmarks.md:93": ["landscapes+itw"],
    "docs/config.md:8": ["dataset"],
    "docs/config.md:178": ["dataset"],
    "docs/pool.md:3": ["pool"],
    "docs/pool.md:60": ["pool"],
    "docs/sonify.md:3": ["dataset"],
    "docs/sonify.md:42": ["dataset"],
}

#: blocks that go on in the workspace the page's previous block left (all others start from a fresh copy)
CONTINUES = {"docs/image-sources.md:66", "docs/release.md:34", "docs/studies.md:44"}

#: text replaced in command lines before they run: a server the docs assume, started by the test
SERVER_URL = "http://localhost:23333/v1"


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


#: one line of docs/examples.md's list: "- [page](link) — `first line` — reason"
LISTED = re.compile(r"^- \[(?P<page>[^\]]+)\]\([^)]*\) — `(?P<first>.*)` — (?P<reason>.+)$")


def listed_examples() -> set[tuple[str, str, str]]:
    """``(page, first line, reason)`` of each item of docs/examples.md's list."""
    found = (LISTED.match(line) for line in EXAMPLES_PAGE.read_text(encoding="utf-8").splitlines())
    return {(m["page"], m["first"], m["reason"]) for m in found if m}


def examples_list() -> str:
    """The list docs/examples.md should hold (paste it there when a mark changes)."""
    return "".join(
        f"- [{b.page}]({b.page.removeprefix('docs/')}) — `{b.first_line}` — {b.mark}\n" for b in BLOCKS if b.mark
    )


def test_examples_page_lists_the_marked_blocks():
    marked = {(b.page, b.first_line, b.mark) for b in BLOCKS if b.mark}
    assert marked, "no marked blocks found: the collector is broken"
    assert listed_examples() == marked, f"docs/examples.md should list exactly:\n{examples_list()}"


def test_collector_finds_the_examples():
    assert len([b for b in BLOCKS if not b.mark]) > 30
    ids = {b.id for b in BLOCKS}
    stale = (set(ABSENT) | CONTINUES | SLOW) - ids
    assert not stale, f"the tables name blocks that are not there (a page changed): {sorted(stale)}"


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

    argv = [a for arg in argv for a in _expand(arg)]
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


def _expand(arg: str) -> list[str]:
    """``~`` and glob patterns, as the shell expands them."""
    import glob

    arg = os.path.expanduser(arg)
    return sorted(glob.glob(arg)) or [arg] if any(c in arg for c in "*?[") else [arg]


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
    from seeing_sound.cli.config_files import toml_reader

    extras = set(toml_reader().loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for token in tokens[2:]:
        m = re.match(r"^(?:seeing-sound|\.)\[([\w,-]+)\]$", token)
        if m:
            missing = set(m.group(1).split(",")) - extras
            assert not missing, f"pip install {token}: no such extra {sorted(missing)}"


def check_python(tokens: list[str], namespace: dict) -> None:
    if tokens[1] == "-c":
        exec(compile(tokens[2], "<python -c>", "exec"), {})
        return
    if tokens[1] == "-m":
        import importlib.util

        assert importlib.util.find_spec(tokens[2]) is not None, f"no module {tokens[2]}"
        return
    script = ROOT / tokens[1]
    assert script.is_file(), f"no script {tokens[1]}"
    source = script.read_text()
    for flag in (f for t in tokens[2:] for f in re.findall(r"(?<![\w-])--[\w-]+", t)):
        assert f'"{flag}"' in source, f"{tokens[1]} has no flag {flag}"


def run_bash_block(block: Block, capsys, monkeypatch, server_url: str) -> None:
    for line in logical_lines(block.code):
        line = line.replace(SERVER_URL, server_url)
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
                elif seg[0] in (".", "source"):
                    continue  # activating a virtual environment: the tests run in one
                else:
                    run_shell(shlex.join(seg))


# --- the workspace ---------------------------------------------------------------------------

INCEPTION = "pt_inception-2015-12-05-6726825d.pth"


def _build_twins(root: Path) -> tuple[Path, Path]:
    """Tiny twins under the docs' hub ids in an offline hub cache, and the evaluation checkpoints.

    Returns ``(hub_cache, checkpoints)``; checkpoints holds ``Wav2CLIP.pt`` and the FID Inception.
    """
    from seeing_sound.testing.eval_models import build_fid_inception, build_tiny_clip, build_tiny_wav2clip
    from seeing_sound.testing.hub_cache import write_offline_hub
    from seeing_sound.testing.models import build_tiny_ast, build_tiny_clap, build_tiny_pixart
    from seeing_sound.testing.vlm_twins import build_llava15

    twins = root / "twins"
    models = {
        "laion/clap-htsat-unfused": build_tiny_clap(twins / "clap"),
        "MIT/ast-finetuned-audioset-10-10-0.4593": build_tiny_ast(twins / "ast"),
        "PixArt-alpha/PixArt-XL-2-512x512": build_tiny_pixart(twins / "pixart"),
        "openai/clip-vit-base-patch32": build_tiny_clip(twins / "clip"),
        "llava-hf/llava-1.5-7b-hf": build_llava15(twins / "llava"),
    }
    checkpoints = root / "checkpoints"
    checkpoints.mkdir()
    build_tiny_wav2clip(checkpoints / "Wav2CLIP.pt")
    build_fid_inception(checkpoints / INCEPTION)  # 90 MB: linked into the workspace, not copied
    return write_offline_hub(root / "hub", models), checkpoints


def _build_workspace(ws: Path, checkpoints: Path) -> None:
    """The files and folders the docs name, made from the bundled sample and tiny twins.

    Placeholders are folders of their own name: ``RUN`` (an untrained pipeline of the twins),
    ``POOL``, ``DATASET`` (with features), ``CONCEPTS``, ``GEN_DIR``, ``REF_DIR``, ``AUDIO_DIR``.
    Runs with ``ws`` as the working directory and the offline hub in place.
    """
    from PIL import Image

    from seeing_sound.bench.synthetic import write_greatest_hits_release, write_vggsound_release, write_video
    from seeing_sound.cli import main
    from seeing_sound.demo import copy_demo_images, demo_sidecar
    from seeing_sound.sonify import sonify
    from seeing_sound.testing.eval_models import write_eval_folders, write_synthetic_benchmark
    from seeing_sound.testing.models import build_tiny_pipeline
    from seeing_sound.testing.sounds import write_sound_library

    def cli(*argv: str) -> None:
        assert main(["--quiet", *argv]) == 0, argv

    # images, sounds, concepts, a pool, a dataset: as README.md makes them, so its calls find them done
    copy_demo_images(ws / "photos")
    shutil.copytree(ws / "photos", ws / "more")
    sounds = write_sound_library(ws / "sounds", variants=1, seconds=3)
    shutil.copy(sounds / "descriptions.csv", ws / "descriptions.csv")
    shutil.copy(sounds / "descriptions.csv", ws / "fsd50k_dev.csv")
    shutil.copy(demo_sidecar(), ws / "concepts.jsonl")
    cli("pool", "build", "sounds/", "--descriptions", "sounds/descriptions.csv", "--out", "pool/")
    sonify("photos/", "pool/", "dataset/", concepts="concepts.jsonl", encoder="text", topk=10, progress=False)
    for name, src in (("POOL", "pool"), ("DATASET", "dataset"), ("pairs", "dataset")):
        shutil.copytree(ws / src, ws / name)
    cli("features", "DATASET", "--resolution", "64")
    cli("pool", "embed", "pool/", "--encoder", "clap")
    cli("concepts", "photos/", "--out", "CONCEPTS", "--vlm", "sidecar:concepts.jsonl")
    (ws / "concepts.txt").write_text("dog barking\nrain on a roof\nchurch bells\n")
    wavs = sorted(sounds.glob("*.wav"))
    for k, folder in enumerate(("audioset", "fsd50k", "bbc_sfx")):
        (ws / folder).mkdir()
        for wav in wavs[k::3]:
            shutil.copy(wav, ws / folder / wav.name)

    # audio files by the docs' names
    for name, k in (("dog.wav", 0), ("chatter.wav", 1), ("church-ir.wav", 2), ("irs/hall.wav", 2),
                    ("stems/source1.wav", 3), ("stems/source2.wav", 4)):  # fmt: skip
        (ws / name).parent.mkdir(exist_ok=True)
        shutil.copy(wavs[k], ws / name)
    import soundfile as sf

    wave, sr = sf.read(wavs[5])
    sf.write(ws / "rain.flac", wave, sr)

    # real pairs: an image and a sound of the same stem
    (ws / "my_pairs").mkdir()
    for k, image in enumerate(sorted((ws / "photos").iterdir())[:3]):
        Image.open(image).convert("RGB").save(ws / "my_pairs" / f"pair{k}.jpg")
        shutil.copy(wavs[k], ws / "my_pairs" / f"pair{k}.wav")

    # benchmarks, prepared and as released
    for name in ("vggsound", "vegas", "greatest-hits", "landscapes+itw"):
        write_synthetic_benchmark(ws / "bench" / name, n=4, name=name)
    rows = [(f"yt{c}{k}", 10 * k, f"class {c}", "test") for c in "ab" for k in range(2)]
    shutil.copy(write_vggsound_release(ws / "vggsound", rows, frames=5), ws / "vggsound.csv")
    write_greatest_hits_release(ws / "vis-data", {"2015-02-16-16-49-06": [(0.2, "rock")]}, frames=9)
    for folder in ("landscapes/test/fire", "landscape/test/fire", "itw/dog", "VEGAS/dog/video",
                   "landscapes+itw/landscapes/fire", "landscapes+itw/itw/dog"):  # fmt: skip
        write_video(ws / folder / "a.mp4", frames=5)

    # evaluation inputs; checkpoints where the docs name them and in the torch hub cache
    dirs = write_eval_folders(ws / "eval-inputs", n=6, size=32)
    for name, key in (("GEN_DIR", "generated"), ("REF_DIR", "reference"), ("AUDIO_DIR", "audio"),
                      ("generated", "generated"), ("train_images", "reference")):  # fmt: skip
        shutil.copytree(dirs[key], ws / name)
    for folder in (ws, ws / "ckpt", ws / ".cache/torch/hub/checkpoints"):
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("Wav2CLIP.pt", INCEPTION):
            (folder / name).symlink_to(checkpoints / name)

    # a run: an untrained pipeline of the twins
    twins = checkpoints.parent / "twins"
    build_tiny_pipeline(ws / "RUN" / "pipeline", twins / "pixart", twins / "ast")


#: module constants where the Hugging Face libraries keep the cache path they read at import
CACHE_CONSTANTS = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "DIFFUSERS_CACHE",
                   "PYTORCH_TRANSFORMERS_CACHE", "PYTORCH_PRETRAINED_BERT_CACHE", "default_cache_path")  # fmt: skip


@contextlib.contextmanager
def _offline_hub(mp: pytest.MonkeyPatch, cache: Path):
    """Point every loaded Hugging Face library at ``cache`` (they read their cache paths at import)."""
    import diffusers  # noqa: F401  (imported now, so its constants are patched too)
    import huggingface_hub
    import transformers  # noqa: F401

    import seeing_sound.concepts.backends
    import seeing_sound.encoders

    # models loaded from the twins stay out of the per-process caches other tests share
    mp.setattr(seeing_sound.encoders, "_CACHE", {})
    mp.setattr(seeing_sound.concepts.backends, "_CACHE", {})
    old = huggingface_hub.constants.HF_HUB_CACHE
    mp.setenv("HF_HUB_CACHE", str(cache))
    mp.setenv("HF_HUB_OFFLINE", "1")
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("huggingface_hub", "transformers", "diffusers") and module is not None:
            for attr in CACHE_CONSTANTS:
                if getattr(module, attr, None) == old:
                    mp.setattr(module, attr, str(cache))
    yield


def _home(mp: pytest.MonkeyPatch, ws: Path) -> None:
    """``~`` and the torch hub cache inside the workspace."""
    mp.setenv("HOME", str(ws))
    mp.delenv("TORCH_HOME", raising=False)
    mp.delenv("XDG_CACHE_HOME", raising=False)
    mp.chdir(ws)


@dataclass
class DocsEnv:
    root: Path
    hub: Path
    server_url: str
    namespaces: dict[str, dict]

    @property
    def workspace(self) -> Path:
        return self.root / "ws"  # one path for every copy: runs record absolute paths


@pytest.fixture(scope="session")
def docs_env(tmp_path_factory):
    """Twins, the workspace (built once, kept pristine in ``root/base``) and a chat-completions
    server answering in the LLaVA prompt's format (for ``--vlm openai:...`` examples)."""
    from seeing_sound.testing.servers import ChatCompletionsServer, completion

    answer = completion("1. Dog - The sound of a dog barking.\n2. Rain - The sound of rain falling on a roof.")
    root = tmp_path_factory.mktemp("docs-examples")
    hub, checkpoints = _build_twins(root)
    with ChatCompletionsServer(lambda body, n: (200, {}, answer, 0.0)) as server:
        env = DocsEnv(root, hub, server.url, {})
        with pytest.MonkeyPatch.context() as mp, _offline_hub(mp, hub):
            env.workspace.mkdir()
            _home(mp, env.workspace)
            _build_workspace(env.workspace, checkpoints)
        shutil.copytree(env.workspace, root / "base", symlinks=True)
        yield env


def _params():
    for b in BLOCKS:
        marks = [pytest.mark.slow] if b.id in SLOW else []
        yield pytest.param(b, id=b.id, marks=marks)


@pytest.mark.parametrize("block", list(_params()))
def test_example(block: Block, request, monkeypatch, capsys):
    if block.mark:
        for line in logical_lines(block.code) if block.lang == "bash" else []:
            if line.startswith("seeing-sound "):
                check_synopsis(line)
            for argv in seeing_sound_argvs(line):
                parse_only(argv)
        pytest.skip(f"marked: {block.mark}")
    env: DocsEnv = request.getfixturevalue("docs_env")
    ws = env.workspace
    if block.id not in CONTINUES:
        shutil.rmtree(ws)
        shutil.copytree(env.root / "base", ws, symlinks=True)
    for path in ABSENT.get(block.id, []):
        shutil.rmtree(ws / path)
    _home(monkeypatch, ws)
    monkeypatch.setenv("OPENAI_BASE_URL", env.server_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with _offline_hub(monkeypatch, env.hub):
        if block.lang == "python":
            namespace = env.namespaces.setdefault(block.page, {"__name__": "__docs__"})
            exec(compile(block.code, f"{block.page}:{block.line}", "exec"), namespace)
        else:
            run_bash_block(block, capsys, monkeypatch, env.server_url)
