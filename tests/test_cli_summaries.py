"""Human summaries: printed once by the command (the library's copy is a DEBUG line), floats at 4 significant digits."""

import json
import logging
import re

import pytest

from seeing_sound.cli import main
from seeing_sound.cli.common import plus_minus
from seeing_sound.testing.signals import noise, write_audio


def _significant_digits(number: str) -> int:
    mantissa = number.lstrip("+-").split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa)


def _info_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]


def test_plus_minus_rounds_the_spread_to_the_means_last_digit():
    assert plus_minus(0.0011602, 1.9e-16) == "0.001160 ± 0.000000"  # was "0.00116 ± 1.9e-16"
    assert plus_minus(0.012345678, 0.00123456) == "0.01235 ± 0.00123"
    assert plus_minus(11.690008476174789, 0.25) == "11.69 ± 0.25"
    assert plus_minus(2.0, 0.123) == "2.000 ± 0.123"
    assert plus_minus(12345.6, 17.2) == "1.235e+04 ± 20"
    assert plus_minus(1.23456e-5, 2.0e-8) == "1.235e-05 ± 0.00000002"
    assert plus_minus(0.0, 0.5) == "0 ± 0.5"


def test_evaluate_prints_its_summary_once_rounded(tmp_path, caplog, capsys):
    pytest.importorskip("transformers")
    from seeing_sound.testing.eval_models import build_tiny_clip, write_eval_folders

    clip = build_tiny_clip(tmp_path / "clip")
    dirs = write_eval_folders(tmp_path / "data", n=4, size=40)
    caplog.set_level(logging.INFO, logger="seeing_sound")
    argv = ["evaluate", "--images", str(dirs["generated"]), "--reference", str(dirs["reference"])]
    argv += ["--out", str(tmp_path / "EVAL"), "--metrics", "iis", "--clip", str(clip), "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("generated: n=4") == 1
    assert not [line for line in _info_lines(caplog) if "n=4" in line]  # was: the same numbers as an INFO line
    iis = re.search(r"IIS (\S+)", printed).group(1)
    assert _significant_digits(iis) <= 4
    stored = json.loads((tmp_path / "EVAL" / "summary.json").read_text())["benchmarks"]["generated"]["iis"]
    assert f"{stored:.4g}" == iis and len(repr(stored)) > len(iis)  # the JSON keeps full precision


def test_export_prints_its_summary_once(tmp_path, caplog, capsys):
    from seeing_sound.testing.data import write_noise_dataset

    ds = write_noise_dataset(tmp_path, 3, image_size=16)
    caplog.set_level(logging.INFO, logger="seeing_sound")
    assert main(["export", "hf", str(ds), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.count("3 pairs in 1 shards") == 1
    assert not [line for line in _info_lines(caplog) if "3 pairs" in line]  # was: "exported 3 pairs in 1 shards"


def test_compose_reverb_logs_rt60_rounded_and_keeps_it_whole_in_json(tmp_path, caplog):
    write_audio(tmp_path / "crowd.wav", noise(2, 16000, amp=0.2, seed=9), 16000)
    caplog.set_level(logging.INFO, logger="seeing_sound")
    out = tmp_path / "room.wav"
    assert main(["compose", "reverb", str(tmp_path / "crowd.wav"), "--rt60", "0.4", "--out", str(out)]) == 0
    line = next(m for m in _info_lines(caplog) if "RT60" in m)
    t20, t30 = re.search(r"T20 (\S+) T30 (\S+)", line).groups()  # was "T20 0.40440351266868574"
    assert _significant_digits(t20) <= 4 and _significant_digits(t30) <= 4
    rt60 = json.loads(out.with_suffix(".json").read_text())["rt60"]
    assert f"{rt60['t20_s']:.4g}" == t20 and len(repr(rt60["t20_s"])) > len(t20)
