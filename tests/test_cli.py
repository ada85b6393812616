import subprocess
import sys
from pathlib import Path

import pytest

from seeing_sound.cli import main
from seeing_sound.testing.signals import noise, write_audio


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "pool" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["pool", "build", "--help"])
    assert e.value.code == 0 and "--chunk-seconds" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys):
    for argv in ([], ["pool", "build"], ["pool", "build", "x", "--out", "y", "--workers", "0"], ["nope"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2, argv


def test_failure_is_one_line_exit_1_and_debug_shows_traceback(tmp_path, capsys):
    assert main(["pool", "info", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seeing-sound: error:") and "not an audio pool" in err[0]
    with pytest.raises(Exception, match="not an audio pool"):
        main(["--debug", "pool", "info", str(tmp_path)])


def test_global_flags_after_subcommand(tmp_path, capsys):
    write_audio(tmp_path / "src/a.wav", noise(1, 16000), 16000)
    assert (
        main(["pool", "build", str(tmp_path / "src"), "--out", str(tmp_path / "p"), "--quiet", "--log-level", "ERROR"])
        == 0
    )
    assert main(["pool", "info", str(tmp_path / "p"), "--json"]) == 0
    assert '"chunks": 1' in capsys.readouterr().out


def test_console_script_entry_point(tmp_path):
    write_audio(tmp_path / "src/a.wav", noise(1, 16000), 16000)
    exe = [str(Path(sys.executable).parent / "seeing-sound")]  # the installed console script
    res = subprocess.run(
        [*exe, "pool", "build", str(tmp_path / "src"), "--out", str(tmp_path / "p")], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "chunks      1" in res.stdout
    res = subprocess.run([*exe, "pool", "info", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert res.returncode == 1 and res.stderr.count("\n") == 1


def test_library_parameters_are_printed_as_the_commands_flags(tmp_path, capsys):
    """The library names its parameters (model=PATH); the CLI prints the flag the user typed."""
    src = tmp_path / "src"
    src.mkdir()
    write_audio(src / "a.wav", noise(1.0, 16000), 16000)
    assert main(["--quiet", "pool", "build", str(src), "--out", str(tmp_path / "pool")]) == 0
    capsys.readouterr()
    missing = tmp_path / "no-such-clap"
    code = main(["--quiet", "pool", "embed", str(tmp_path / "pool"), "--encoder", "clap", "--model", str(missing)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "pass a local copy as --model PATH" in err[0] and "model=PATH" not in err[0]


def _all_parsers(parser, path=("seeing-sound",)):
    import argparse

    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _all_parsers(child, (*path, name))


def test_every_help_states_defaults_once_and_right():
    """No "(default: None)", no second default after a help that states its own, no --no-X "(default: True)"."""
    import re

    from seeing_sound.cli import build_parser

    wrong = []
    for command, parser in _all_parsers(build_parser()):
        # one entry per option: its lines up to the next line that starts a new option
        for entry in re.split(r"\n(?=  \S)", parser.format_help()):
            text = " ".join(entry.split())
            if (
                re.search(r"\(default:? None\)", text)
                or len(re.findall(r"\bdefault\b", text, re.IGNORECASE)) > 1
                or (text.startswith("--no-") and re.search(r"default:? True", text))
            ):
                wrong.append(f"{command}: {text}")
    assert not wrong, "\n".join(wrong)
    required = [a for _, p in _all_parsers(build_parser()) for a in p._actions if a.required and a.option_strings]
    assert required  # the check above covered required options (--out, --model, ...)
