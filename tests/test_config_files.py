"""``--config FILE_OR_PRESET``: options from TOML, flags over the file, the resolved OUT/config.toml, presets."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from seeing_sound.cli import build_parser, main, parse_with_config
from seeing_sound.cli import config_files as cf
from seeing_sound.testing.signals import noise, write_audio

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")


def _toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _usage_error(argv: list[str], capsys) -> str:
    """The one stderr line of a command that must exit 2."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _sources(root: Path) -> Path:
    write_audio(root / "a.wav", noise(3.0, 16000, seed=1), 16000)
    write_audio(root / "b.wav", noise(5.0, 22050, seed=2), 22050)
    return root


# --- reading ----------------------------------------------------------------------------------


def test_a_file_sets_options_and_flags_override_it(tmp_path):
    f = _toml(tmp_path / "c.toml", "chunk_seconds = 2.0\nshard_files = 3\n")
    _, args = parse_with_config(["pool", "build", "src", "--out", "p", "--config", str(f)])
    assert (args.chunk_seconds, args.shard_files, args.sample_rate) == (2.0, 3, 16000)
    _, args = parse_with_config(["--config", str(f), "pool", "build", "src", "--out", "p", "--chunk-seconds", "4"])
    assert (args.chunk_seconds, args.shard_files) == (4.0, 3)  # the flag wins, the file's other value stays


def test_required_options_and_positionals_come_from_the_file(tmp_path):
    with pytest.raises(SystemExit):  # without the file: --out and SRC are required
        parse_with_config(["pool", "build"])
    f = _toml(tmp_path / "c.toml", 'sources = ["x", "y"]\nout = "pool"\n')
    _, args = parse_with_config(["pool", "build", "--config", str(f)])
    assert (args.sources, args.out) == (["x", "y"], "pool")
    _, args = parse_with_config(["pool", "build", "z", "--config", str(f)])
    assert args.sources == ["z"]


def test_repeatable_options_are_replaced_by_the_command_line(tmp_path):
    f = _toml(tmp_path / "c.toml", 'vlm = ["sidecar:a.jsonl", "openai:m"]\n')
    base = ["concepts", "imgs", "--out", "o", "--config", str(f)]
    _, args = parse_with_config(base)
    assert args.vlm == ["sidecar:a.jsonl", "openai:m"]
    _, args = parse_with_config([*base, "--vlm", "openai:other"])
    assert args.vlm == ["openai:other"]  # not appended to the file's list


def test_the_command_table_is_read_and_other_commands_tables_left_alone(tmp_path):
    f = _toml(
        tmp_path / "c.toml",
        "topk = 7\nseed = 3\n[retrieve]\ntopk = 9\n[pool.build]\nchunk_seconds = 2.5\n[train]\nlr = 1e-4\n",
    )
    _, args = parse_with_config(["retrieve", "--pool", "p", "--concepts", "c", "--out", "o", "--config", str(f)])
    assert (args.topk, args.seed) == (9, 3)  # the table wins over the top-level keys
    g = _toml(tmp_path / "g.toml", "[pool.build]\nchunk_seconds = 2.5\n[train]\nlr = 1e-4\n[retrieve]\ntopk = 9\n")
    _, args = parse_with_config(["pool", "build", "s", "--out", "o", "--config", str(g)])
    assert args.chunk_seconds == 2.5
    _, args = parse_with_config(["pool", "embed", "pool", "--config", str(g)])  # no [pool.embed]: defaults
    assert args.encoder == "clap"


def test_an_unknown_key_is_a_usage_error_naming_it_the_file_and_close_matches(tmp_path, capsys):
    f = _toml(tmp_path / "c.toml", "[retrieve]\ntopkk = 10\n")
    err = _usage_error(["retrieve", "--pool", "p", "--concepts", "c", "--out", "o", "--config", str(f)], capsys)
    assert err.startswith(f"seeing-sound: error: {f}: unknown option 'topkk' for `seeing-sound retrieve`")
    assert "did you mean 'topk'" in err
    g = _toml(tmp_path / "g.toml", "chunk-seconds = 2.0\n")  # the flag's spelling, not the dest's
    err = _usage_error(["pool", "build", "s", "--out", "o", "--config", str(g)], capsys)
    assert "'chunk-seconds'" in err and "'chunk_seconds'" in err
    assert not (tmp_path / "o").exists()


def test_a_misspelt_or_misplaced_table_is_a_usage_error(tmp_path, capsys):
    argv = ["pool", "build", "s", "--out", "o", "--config"]
    f = _toml(tmp_path / "a.toml", "[retreive]\ntopk = 10\n")
    err = _usage_error([*argv, str(f)], capsys)
    assert "unknown table [retreive]" in err and "did you mean 'retrieve'" in err
    g = _toml(tmp_path / "b.toml", "[pool]\nchunk_seconds = 2.0\n")
    err = _usage_error([*argv, str(g)], capsys)
    assert "[pool] holds 'chunk_seconds'" in err and "[pool.build]" in err
    h = _toml(tmp_path / "c.toml", "[pool.biuld]\nchunk_seconds = 2.0\n")
    assert "unknown table [pool.biuld]" in _usage_error([*argv, str(h)], capsys)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("topk = 0", "topk: must be >= 1, got 0"),  # the Config field's check
        ('topk = "ten"', "topk: must be a whole number, got 'ten'"),
        ('topk = "10"', "topk: must be a whole number, got '10'"),  # TOML has numbers: no strings for them
        ("topk = 2.5", "topk: must be a whole number, got 2.5"),
        ("topk = true", "topk: true/false is for on/off options"),
        ('encoder = "nope"', "encoder: must be one of clap, text"),  # the action's choices
        ('ssr = "yes"', "ssr: must be true or false"),
        ("seed = [1, 2]", "seed: must be"),
        ("out = 5", "out: must be a string"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_the_file_and_the_key(tmp_path, capsys, text, reason):
    f = _toml(tmp_path / "c.toml", text + "\n")
    err = _usage_error(["retrieve", "--pool", "p", "--concepts", "c", "--out", "o", "--config", str(f)], capsys)
    assert err.startswith(f"seeing-sound: error: {f}: ") and reason in err, err


def test_values_go_through_the_flags_types(tmp_path, capsys):
    f = _toml(tmp_path / "c.toml", "lufs_range = [-30.0]\n")
    argv = ["sonify", "--images", "i", "--pool", "p", "--out", "o", "--config", str(f)]
    assert "lufs_range: must be a list of 2 values" in _usage_error(argv, capsys)
    g = _toml(tmp_path / "g.toml", 'lufs_range = [-26, -20]\nfilter_words = ["logo", "sign"]\nvlm = "sidecar:x"\n')
    _, args = parse_with_config([*argv[:-1], str(g)])
    assert args.lufs_range == [-26.0, -20.0] and args.filter_words == ("logo", "sign") and args.vlm == ["sidecar:x"]
    h = _toml(tmp_path / "h.toml", 'vlm = ["nokind:x"]\n')
    assert "vlm: a VLM spec must start with one of" in _usage_error([*argv[:-1], str(h)], capsys)
    r = _toml(tmp_path / "r.toml", 'max_audio_per_page = "all"\nmax_pairs = 3\n')  # report's own type: N or all
    _, args = parse_with_config(["report", "ds", "--pool", "p", "--out", "o", "--config", str(r)])
    assert (args.max_audio_per_page, args.max_pairs) == (None, 3)


def test_a_setting_checked_across_fields_names_the_file(tmp_path, capsys):
    """lufs_range's order is checked when sonify builds its config: the message names the file's key, not a flag."""
    f = _toml(tmp_path / "c.toml", "lufs_range = [-21.0, -25.0]\n")
    (tmp_path / "images").mkdir()
    argv = ["sonify", "--images", str(tmp_path / "images"), "--pool", str(tmp_path / "pool")]
    argv += ["--out", str(tmp_path / "ds"), "--vlm", f"sidecar:{tmp_path / 'side.jsonl'}", "--config", str(f)]
    err = _usage_error(argv, capsys)
    assert err.startswith(f"seeing-sound: error: {f}: lufs_range: low must be <= high"), err
    assert not (tmp_path / "ds").exists()


def test_a_missing_file_or_preset_and_bad_toml_are_usage_errors(tmp_path, capsys):
    argv = ["pool", "build", "s", "--out", "o", "--config"]
    err = _usage_error([*argv, "nope"], capsys)
    assert "no such file or preset: nope" in err and "demo, paper" in err
    f = _toml(tmp_path / "c.toml", "chunk_seconds = \n")
    assert f"{f}: not valid TOML" in _usage_error([*argv, str(f)], capsys)


def test_an_abbreviated_config_flag_works_too(tmp_path):
    f = _toml(tmp_path / "c.toml", 'sources = ["s"]\nout = "o"\nchunk_seconds = 2.0\n')
    _, args = parse_with_config(["pool", "build", "--conf", str(f)])
    assert (args.sources, args.chunk_seconds) == (["s"], 2.0)


# --- presets ----------------------------------------------------------------------------------


def _preset_tables(name: str) -> dict[tuple[str, ...], dict]:
    data = tomllib.loads(cf.presets()[name].read_text())
    out: dict[tuple[str, ...], dict] = {}

    def walk(node, path):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, (*path, key))
            else:
                assert path, f"{name}: top-level key {key!r}: a preset keeps every setting in its command's table"
                out.setdefault(path, {})[key] = value

    walk(data, ())
    return out


@pytest.mark.parametrize("name", ["paper", "demo"])
def test_presets_set_only_real_options_of_real_commands(name):
    parser = build_parser()
    commands = dict(cf.leaf_parsers(parser))
    tables = _preset_tables(name)
    assert tables
    for command, table in tables.items():
        assert command in commands, f"{name}: [{'.'.join(command)}] is not a command"
        loaded = cf.load(parser, command, name)  # every key a dest, every value converted and checked
        assert set(loaded.values) | set(loaded.appended) == set(table), command


def test_every_preset_value_builds_the_commands_config():
    """The preset's values pass the config classes' own validation (several fields at once), not only the flags'."""
    from seeing_sound.cli.concepts import concepts_config
    from seeing_sound.cli.options import config_from_args
    from seeing_sound.model.training.config import TrainConfig
    from seeing_sound.retrieval.config import RetrieveConfig
    from seeing_sound.sonify.config import SonifyConfig

    for preset in ("paper", "demo"):
        _, args = parse_with_config(["sonify", "--images", "i", "--pool", "p", "--out", "o", "--config", preset])
        config_from_args(args, SonifyConfig, concepts_config=concepts_config(args))
        _, args = parse_with_config(["retrieve", "--pool", "p", "--concepts", "c", "--out", "o", "--config", preset])
        config_from_args(args, RetrieveConfig, engine=args.search_engine)
        _, args = parse_with_config(["train", "ds", "--out", "run", "--config", preset])
        config_from_args(args, TrainConfig, dataset=tuple(args.dataset), out=args.out)


def test_the_paper_preset_holds_the_papers_settings():
    def args(*argv):
        return parse_with_config([*argv, "--config", "paper"])[1]

    for command in (["concepts", "imgs", "--out", "o"], ["sonify", "--images", "i", "--pool", "p", "--out", "o"]):
        a = args(*command)
        assert a.vlm == ["transformers:llava-hf/llava-1.5-7b-hf", "openai:THUDM/cogvlm-chat-hf"]  # 3.2
        assert a.caption_vlm == 0 and a.max_concepts == 3 and not a.no_filter  # A.2: LLaVA's captions
        assert a.filter_words == ("logo", "icon", "emblem", "symbol", "trademark", "sign")
    a = args("sonify", "--images", "i", "--pool", "p", "--out", "o")
    assert (a.encoder, a.ssr) == ("clap", True)  # 3.3, Algorithm 1
    a = args("retrieve", "--pool", "p", "--concepts", "c", "--out", "o")
    assert (a.encoder, a.ssr) == ("clap", True)
    assert args("pool", "embed", "pool").encoder == "clap"
    a = args("pool", "build", "s", "--out", "o")
    assert (a.sample_rate, a.chunk_seconds) == (16000, 5.0)  # A.7
    a = args("features", "ds")
    assert a.resolution == 512
    a = args("train", "ds", "--out", "run")  # 4.3
    assert a.pretrained == "PixArt-alpha/PixArt-XL-2-512x512"
    assert (a.lr, a.weight_decay, a.max_steps) == (3.16e-5, 3e-2, 500_000)
    assert 8 * a.batch_size * a.grad_accum == 640  # total batch 640 on 8 × A100
    text = cf.presets()["paper"].read_text()
    assert text.count("# ours") >= 5  # what the paper leaves open is marked as ours


def test_a_preset_with_flags_over_it(tmp_path):
    _, args = parse_with_config(["train", "ds", "--out", "run", "--config", "paper", "--max-steps", "10"])
    assert (args.max_steps, args.lr) == (10, 3.16e-5)
    _, args = parse_with_config(["--config", "demo", "retrieve", "--pool", "p", "--concepts", "c", "--out", "o"])
    assert (args.encoder, args.topk) == ("text", 5)


# --- writing ----------------------------------------------------------------------------------


def test_a_run_writes_its_resolved_config_and_the_config_reproduces_it_byte_for_byte(tmp_path, capsys):
    src = _sources(tmp_path / "src")
    first = tmp_path / "first"
    assert main(["--quiet", "pool", "build", str(src), "--out", str(first), "--chunk-seconds", "2"]) == 0
    written = tomllib.loads((first / "config.toml").read_text())["pool"]["build"]
    assert written["sources"] == [str(src)] and written["out"] == str(first) and written["chunk_seconds"] == 2.0
    assert written["shard_files"] == 64 and written["engine"] == "local"  # every option, defaults included
    assert not {"quiet", "log_level", "debug", "config", "shard_slice"} & set(written)

    second = tmp_path / "second"
    assert main(["--quiet", "pool", "build", "--config", str(first / "config.toml"), "--out", str(second)]) == 0

    def tree(root: Path) -> dict[str, bytes]:  # done-markers hold timings
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and "_stages" not in p.parts and p.name != "config.toml"
        }

    assert tree(first) == tree(second) and "pool.json" in tree(first)
    a, b = (first / "config.toml").read_text(), (second / "config.toml").read_text()
    assert b == a.replace(f'out = "{first}"', f'out = "{second}"') != a  # the same run, elsewhere
    mtime = (second / "config.toml").stat().st_mtime_ns
    assert main(["--quiet", "pool", "build", "--config", str(second / "config.toml")]) == 0  # a rerun: resumes
    assert (second / "config.toml").stat().st_mtime_ns == mtime and tree(second) == tree(first)  # unchanged bytes


def test_a_single_file_output_gets_its_config_beside_it(tmp_path, capsys):
    src = _sources(tmp_path / "src")
    out = tmp_path / "mix.wav"
    argv = ["--quiet", "compose", "mix", str(src / "a.wav"), str(src / "b.wav"), "--lufs", "-20", "-30"]
    assert main([*argv, "--out", str(out)]) == 0
    cfg = tmp_path / "mix.config.toml"
    written = tomllib.loads(cfg.read_text())["compose"]
    assert written["mode"] == "mix" and written["lufs"] == [-20.0, -30.0]
    again = tmp_path / "again.wav"
    assert main(["--quiet", "compose", "--config", str(cfg), "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "mix.json").read_bytes()


def test_commands_sharing_a_folder_share_its_file_and_failed_runs_write_none(tmp_path, capsys):
    src = _sources(tmp_path / "src")
    pool = tmp_path / "pool"
    assert main(["--quiet", "pool", "build", str(src), "--out", str(pool)]) == 0
    parser, args = parse_with_config(["pool", "embed", str(pool), "--encoder", "text", "--batch-size", "4"])
    assert cf.write_resolved(parser, args) == pool / "config.toml"  # what main does after a run returned 0
    data = tomllib.loads((pool / "config.toml").read_text())
    assert data["pool"]["build"]["out"] == str(pool)
    assert data["pool"]["embed"]["encoder"] == "text" and data["pool"]["embed"]["batch_size"] == 4
    _, again = parse_with_config(["pool", "embed", "--config", str(pool / "config.toml")])
    assert (again.pool, again.encoder, again.batch_size) == (str(pool), "text", 4)
    # a run that fails writes no config
    assert main(["--quiet", "pool", "build", str(tmp_path / "missing"), "--out", str(tmp_path / "p2")]) == 2
    assert not (tmp_path / "p2").exists()
    assert main(["--quiet", "pool", "info", str(pool)]) == 0  # writes nothing: no [pool.info]
    assert set(tomllib.loads((pool / "config.toml").read_text())["pool"]) == {"build", "embed"}


def test_secrets_and_credentials_are_not_written_and_no_word_is_lost():
    assert cf.is_secret("api_key") and cf.is_secret("hf_token") and cf.is_secret("password")
    assert not cf.is_secret("api_key_env") and not cf.is_secret("sidecar_key") and not cf.is_secret("max_new_tokens")
    parser, args = parse_with_config(
        ["concepts", "imgs", "--out", "o", "--vlm", "openai:m", "--base-url", "https://u:pw@host/v1"]
    )
    table, notes = cf.resolved(parser, ("concepts",), args)
    assert "base_url" not in table and any(n.startswith("base_url: left out") for n in notes)
    assert table["max_new_tokens"] == 256 and table["api_key_env"] == "OPENAI_API_KEY"
    text = cf.dumps({"concepts": table}, notes={"concepts": notes})
    assert "pw@" not in text and "# base_url: left out" in text


def test_a_no_limit_value_is_written_as_the_word_its_flag_takes():
    parser, args = parse_with_config(["report", "ds", "--pool", "p", "--out", "o", "--max-audio-per-page", "all"])
    table, _ = cf.resolved(parser, ("report",), args)
    assert table["max_audio_per_page"] == "all" and "max_pairs" not in table  # None is max_pairs' default


def test_the_toml_writer_round_trips_what_config_files_hold():
    data = {
        "top": 'a "quoted" \\ back\nslash\ttab \x01 \x7f é',
        "n": -3,
        "big": 1 << 40,
        "f": [3.16e-05, -25.0, 1e16, 0.1, float("inf"), -float("inf")],
        "flags": [True, False],
        "empty": [],
        "pool": {"build": {"sources": ["a b", "c"], "x": 1.5}, "embed": {"encoder": "text"}},
        "key with space": {"k": 1},
    }
    text = cf.dumps(data)
    assert tomllib.loads(text) == data
    assert math.isnan(tomllib.loads(cf.dumps({"x": float("nan")}))["x"])
