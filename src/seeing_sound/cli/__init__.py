"""``seeing-sound`` command line: parse arguments, configure logging once, call one library function.

Each command group lives in its own module with a ``register(subparsers)`` function; a
command's handler receives the parsed ``argparse.Namespace`` and returns an exit code.
Exit codes: 0 success, 1 failure (one clear line; ``--debug`` shows the traceback): a full or
read-only output, a run that wrote nothing usable or failed more than ``--max-failed`` of its
items; 2 usage error (argparse, a bad setting: a ``ConfigError``, printed with the flag it came
from, or an input path that does not exist or overlaps ``--out``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from seeing_sound import __version__

# Command modules, in the order ``--help`` lists them. Imported lazily so that
# ``seeing-sound --help`` never pays for torch.
COMMAND_MODULES = (
    "pool",
    "retrieve",
    "concepts",
    "sonify",
    "rebuild",
    "verify",
    "features",
    "train",
    "generate",
    "evaluate",
    "compose",
    "app",
    "export",
    "push",
    "demo",
    "report",
    "bench",
    "study",
    "leakage",
    "pairs",
)

log = logging.getLogger("seeing_sound")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (the full usage is one ``--help`` away); subcommands inherit it."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="seeing-sound",
        description="Sonify image collections into audio-visual pairs and train audio-to-image models.",
    )
    parser.add_argument("--version", action="version", version=f"seeing-sound {__version__}")
    _add_globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"seeing_sound.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"seeing_sound.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    _accept_globals_anywhere(parser)
    return parser


def _add_globals(p: argparse.ArgumentParser, suppress: bool) -> None:
    kw: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    p.add_argument("--quiet", action="store_true", help="no progress bars; warnings and errors only", **kw)
    p.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default INFO)",
        **({"default": "INFO"} | kw),
    )
    p.add_argument("--debug", action="store_true", help="show the full traceback on failure", **kw)


def _accept_globals_anywhere(parser: argparse.ArgumentParser) -> None:
    """Let ``--quiet``/``--log-level``/``--debug`` follow the subcommand too."""
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    if not any(isinstance(a, argparse._SubParsersAction) for a in child._actions):
                        _add_globals(child, suppress=True)
                    stack.append(child)


def configure_logging(level: str, quiet: bool) -> None:
    if quiet:  # Hugging Face libraries read this when first imported: no "Loading weights" bars either
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(
        level=logging.WARNING if quiet else getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.quiet)
    args.progress = not args.quiet
    previous = _install_sigint()
    from seeing_sound.cli.options import UsageError, cli_wording, flag_for
    from seeing_sound.config import ConfigError
    from seeing_sound.engine.outcome import InputError
    from seeing_sound.engine.run import failures_raise

    try:
        with failures_raise():  # a command that wrote nothing usable exits 1
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except (ConfigError, UsageError, InputError) as exc:  # a bad setting or input path: usage error, by its flag
        if args.debug:
            raise
        flag = flag_for(args, exc.field) if isinstance(exc, ConfigError) else None
        message = exc.with_name(flag) if isinstance(exc, ConfigError) and flag else cli_wording(str(exc), args)
        print(f"seeing-sound: error: {message}", file=sys.stderr)
        return 2
    except Exception as exc:  # one clear line for users, the traceback behind --debug
        if args.debug:
            raise
        from seeing_sound.errors import SeeingSoundError

        if isinstance(exc, OSError) and exc.filename and exc.strerror:  # not "[Errno 20] ...": what, and which file
            kind, text = "", f"{exc.strerror}: {exc.filename}"
        else:
            plain = isinstance(exc, (SeeingSoundError, ValueError, FileNotFoundError))
            kind, text = ("" if plain else f"{type(exc).__name__}: "), str(exc)
        print(f"seeing-sound: error: {kind}{cli_wording(text, args)}", file=sys.stderr)
        return 1
    finally:
        # After a Ctrl-C the "exit at once" handler stays: interpreter shutdown joins threads too.
        if previous is not None and signal.getsignal(signal.SIGINT) is not _exit_now:
            signal.signal(signal.SIGINT, previous)


def _exit_now(signum, frame):
    os.write(2, b"interrupted again; exiting now\n")
    os._exit(130)


def _first_sigint(signum, frame):
    signal.signal(signal.SIGINT, _exit_now)
    raise KeyboardInterrupt


def _install_sigint():
    """First Ctrl-C raises KeyboardInterrupt (stages tear down, finished shards stay done);
    a second one while that clean-up runs exits at once. Returns the handler to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, _first_sigint)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
