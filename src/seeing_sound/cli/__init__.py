"""``seeing-sound`` command line: parse arguments, configure logging once, call one library function.

Each command group lives in its own module with a ``register(subparsers)`` function; a
command's handler receives the parsed ``argparse.Namespace`` and returns an exit code.
Exit codes: 0 success, 1 failure (one clear line; ``--debug`` shows the traceback): a full or
read-only output, a run that wrote nothing usable or failed more than ``--max-failed`` of its
items; 2 usage error (argparse, a bad setting: a ``ConfigError``, printed with the flag it came
from, a ``--config`` file that is missing or has an unknown key or a bad value, or an input path
that does not exist or overlaps ``--out``).

``--config FILE_OR_PRESET`` supplies any of a command's options from TOML (flags override it), and
every command that writes records its resolved options in ``OUT/config.toml``: see
:mod:`seeing_sound.cli.config_files` and docs/config.md.
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
    "score",
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
    p.add_argument(
        "--config",
        metavar="FILE_OR_PRESET",
        help="TOML file or preset (paper, demo) holding this command's options; flags given here override it; "
        "every run writes its resolved options to OUT/config.toml (docs/config.md)",
        **({"default": None} | kw),
    )


def _accept_globals_anywhere(parser: argparse.ArgumentParser) -> None:
    """Let ``--quiet``/``--log-level``/``--debug``/``--config`` follow the subcommand too."""
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
    """Our loggers at ``level`` (WARNING under ``--quiet``), every other library's at WARNING unless DEBUG.

    Leaves logging alone where the process set it up already (an application calling ``main``,
    pytest): there the root logger has handlers.
    """
    if quiet:
        quiet_third_parties()
    elif level != "DEBUG":  # the model loaders' bars ("Loading weights") are theirs, not the pipeline's: ours stay
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        hub = sys.modules.get("huggingface_hub.utils")
        if hub is not None and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1":
            hub.disable_progress_bars()
    root = logging.getLogger()
    if root.handlers:
        return
    ours = logging.WARNING if quiet else getattr(logging, level)
    logging.basicConfig(
        level=ours if ours <= logging.DEBUG else max(ours, logging.WARNING),  # faiss.loader's INFO lines, ...
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    log.setLevel(ours)


#: environment read when a library is first imported: quiet for the ones ``--quiet`` comes before
QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # huggingface_hub, and transformers' bars ("Loading weights")
    "TQDM_DISABLE": "1",  # every tqdm bar left on by default: diffusers' "Loading pipeline components"
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "WANDB_SILENT": "true",  # wandb's banner and its import-time integration notes (train --report-to wandb)
}


def quiet_third_parties() -> None:
    """No progress bars and no warnings from the Hugging Face libraries, imported yet or not."""
    os.environ.update(QUIET_ENV)
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None:
        hub.disable_progress_bars()
    for name in ("transformers.utils.logging", "diffusers.utils.logging"):
        library = sys.modules.get(name)
        if library is not None:
            library.set_verbosity_error()
            library.disable_progress_bar()


def parse_with_config(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Parse ``argv`` with ``--config``'s values as the command's defaults (flags override them).

    The file is found and read before parsing (its values may supply required options); raises
    :class:`~seeing_sound.cli.config_files.ConfigFileError` for a missing file or a bad key or value.
    """
    from seeing_sound.cli import config_files

    parser = build_parser()
    given, command = config_files.prescan(parser, argv)
    loaded = config_files.load(parser, command, given) if given is not None and command else None
    if loaded is not None:
        config_files.apply(parser, loaded)
    args = parser.parse_args(argv)
    wanted = getattr(args, "config", None)
    if wanted is not None and (loaded is None or loaded.given != wanted):  # an abbreviated --conf, ...
        parser = build_parser()
        loaded = config_files.load(parser, config_files.command_of(parser, args), wanted)
        config_files.apply(parser, loaded)
        args = parser.parse_args(argv)
    if loaded is not None:
        config_files.fill_appended(parser, args, loaded)
    args._config_loaded = loaded
    return parser, args


def main(argv: Sequence[str] | None = None) -> int:
    from seeing_sound.cli.config_files import ConfigFileError

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, args = parse_with_config(argv)
    except ConfigFileError as exc:
        print(f"seeing-sound: error: {exc}", file=sys.stderr)
        return 2
    environ = {name: os.environ.get(name) for name in QUIET_ENV}  # --quiet's, for this command only
    configure_logging(args.log_level, args.quiet)
    args.progress = not args.quiet
    previous = _install_sigint()
    from seeing_sound.cli.config_files import from_file, write_resolved
    from seeing_sound.cli.options import UsageError, cli_wording, flag_for
    from seeing_sound.config import ConfigError
    from seeing_sound.engine.outcome import InputError
    from seeing_sound.engine.run import failures_raise

    try:
        with failures_raise():  # a command that wrote nothing usable exits 1
            code = int(args.handler(args) or 0)
        if code == 0:
            try:
                write_resolved(parser, args)  # OUT/config.toml: --config OUT/config.toml runs it again
            except (OSError, ValueError, TypeError) as exc:
                log.warning("could not write the resolved config: %s", exc)
        return code
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except (ConfigError, UsageError, InputError) as exc:  # a bad setting or input path: usage error, by its flag
        if args.debug:
            raise
        flag = None
        if isinstance(exc, ConfigError):
            source = from_file(args, exc.field)  # a value from --config FILE: name the file and its key
            flag = f"{source}: {exc.field}" if source is not None else flag_for(args, exc.field)
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
        for name, value in environ.items():  # a caller of main() goes on with its own environment
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
