"""Stage configs: each field validates and names itself; the CLI takes every default from the fields."""

import argparse
import dataclasses
import math

import pytest

from seeing_sound.cli import build_parser, main
from seeing_sound.cli.concepts import VLM_KNOBS
from seeing_sound.concepts import VLMSpec
from seeing_sound.concepts.config import ConceptsConfig
from seeing_sound.config import ConfigError
from seeing_sound.errors import SeeingSoundError
from seeing_sound.features.config import FeaturesConfig
from seeing_sound.model.training.config import TrainConfig
from seeing_sound.pool.config import EmbedConfig, PoolBuildConfig
from seeing_sound.pool.stage import PoolConfig
from seeing_sound.retrieval.config import RetrieveConfig
from seeing_sound.sonify.config import SonifyConfig

NAN = math.nan
TRAIN = {"dataset": "ds", "out": "run"}

BAD = [
    (PoolBuildConfig, {"sample_rate": 500}, "sample_rate"),
    (PoolBuildConfig, {"chunk_seconds": NAN}, "chunk_seconds"),
    (PoolBuildConfig, {"chunk_seconds": math.inf}, "chunk_seconds"),
    (PoolBuildConfig, {"min_tail_seconds": 9.0}, "min_tail_seconds"),
    (PoolBuildConfig, {"min_tail_seconds": -1.0}, "min_tail_seconds"),
    (PoolBuildConfig, {"shard_files": 0}, "shard_files"),
    (PoolBuildConfig, {"shard_files": 2.5}, "shard_files"),
    (EmbedConfig, {"encoder": "wav2vec"}, "encoder"),
    (EmbedConfig, {"dtype": "int8"}, "dtype"),
    (EmbedConfig, {"batch_size": 0}, "batch_size"),
    (EmbedConfig, {"shard_chunks": -4}, "shard_chunks"),
    (ConceptsConfig, {"vlms": ()}, "vlms"),
    (ConceptsConfig, {"vlms": (VLMSpec("openai", "m"), VLMSpec("openai", "m"))}, "vlms"),
    (ConceptsConfig, {"caption_vlm": 1}, "caption_vlm"),
    (ConceptsConfig, {"caption_vlm": -1}, "caption_vlm"),
    (ConceptsConfig, {"captions": False}, "captions"),
    (ConceptsConfig, {"concept_prompt": "  "}, "concept_prompt"),
    (ConceptsConfig, {"filter_words": ()}, "filter_words"),
    (ConceptsConfig, {"max_concepts": 0}, "max_concepts"),
    (ConceptsConfig, {"max_side": 0}, "max_side"),
    (ConceptsConfig, {"max_pixels": 0}, "max_pixels"),
    (ConceptsConfig, {"shard_size": 0}, "shard_size"),
    (RetrieveConfig, {"topk": 0}, "topk"),
    (RetrieveConfig, {"topk": 1.5}, "topk"),
    (RetrieveConfig, {"topk": True}, "topk"),
    (RetrieveConfig, {"index_kind": "lsh"}, "index_kind"),
    (RetrieveConfig, {"engine": "gpu"}, "engine"),
    (RetrieveConfig, {"shard_rows": 0}, "shard_rows"),
    (RetrieveConfig, {"seed": 0.5}, "seed"),
    (SonifyConfig, {"lufs_range": (NAN, -10.0)}, "lufs_range"),
    (SonifyConfig, {"lufs_range": (-300.0, -290.0)}, "lufs_range"),
    (SonifyConfig, {"lufs_range": (-20.0, -30.0)}, "lufs_range"),
    (SonifyConfig, {"lufs_range": (-10.0, 3.0)}, "lufs_range"),
    (SonifyConfig, {"lufs_range": (-23.0,)}, "lufs_range"),
    (SonifyConfig, {"audio_format": "mp3"}, "audio_format"),
    (SonifyConfig, {"pairs_per_shard": 0}, "pairs_per_shard"),
    (SonifyConfig, {"topk": 0}, "topk"),
    (FeaturesConfig, {"resolution": 12}, "resolution"),
    (FeaturesConfig, {"resolution": 0}, "resolution"),
    (FeaturesConfig, {"pool": 0}, "pool"),
    (FeaturesConfig, {"batch_size": 0}, "batch_size"),
    (FeaturesConfig, {"ast": None, "vae": None}, "vae"),
    (TrainConfig, {**TRAIN, "lr": 0.0}, "lr"),
    (TrainConfig, {**TRAIN, "lr": NAN}, "lr"),
    (TrainConfig, {**TRAIN, "uncond_prob": 1.0}, "uncond_prob"),
    (TrainConfig, {**TRAIN, "ema_decay": -0.1}, "ema_decay"),
    (TrainConfig, {**TRAIN, "loss": "l1"}, "loss"),
    (TrainConfig, {**TRAIN, "mixed_precision": "fp8"}, "mixed_precision"),
    (TrainConfig, {**TRAIN, "max_steps": 0}, "max_steps"),
    (TrainConfig, {**TRAIN, "keep_checkpoints": -1}, "keep_checkpoints"),
    (TrainConfig, {**TRAIN, "guidance_scale": math.inf}, "guidance_scale"),
    (TrainConfig, {**TRAIN, "out": ""}, "out"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"), BAD, ids=[f"{c.__name__}-{f}-{i}" for i, (c, _, f) in enumerate(BAD)]
)
def test_each_config_rejects_bad_values_naming_field_and_value(cls, kwargs, field):
    with pytest.raises(ConfigError) as e:
        cls(**kwargs)
    assert isinstance(e.value, ValueError) and e.value.field == field
    message = str(e.value)
    assert message.startswith(f"{field}: ") and "got " in message and "--" not in message


def test_lufs_range_message_names_the_gate():
    with pytest.raises(ConfigError) as e:
        SonifyConfig(lufs_range=(NAN, -10.0))
    assert str(e.value) == (
        "lufs_range: each value must be finite and >= -70 LUFS (the BS.1770 absolute gate), got (nan, -10.0)"
    )
    assert SonifyConfig(lufs_range=[-30, -28]).lufs_range == (-30.0, -28.0)


def test_configs_are_frozen_replace_refuses_unknown_names_and_fingerprints_skip_runtime_fields():
    cfg = RetrieveConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.topk = 3
    with pytest.raises(TypeError, match="'top_k'"):
        cfg.replace(top_k=3)
    assert cfg.replace(topk=3).topk == 3 and cfg.topk == 100
    assert cfg.replace(device="cpu", batch_size=4, shard_rows=7).fingerprint() == cfg.fingerprint()
    assert cfg.replace(seed=1).fingerprint() != cfg.fingerprint()
    assert EmbedConfig(device="cpu").fingerprint() == EmbedConfig().fingerprint()
    assert PoolConfig is PoolBuildConfig


def test_library_functions_refuse_unknown_options_before_any_work(tmp_path):
    from seeing_sound.features import compute_features
    from seeing_sound.pool import build_pool, embed_pool
    from seeing_sound.sonify import sonify

    with pytest.raises(TypeError, match="'chunk_secs'"):
        build_pool([tmp_path / "src"], tmp_path / "pool", chunk_secs=2.0)
    with pytest.raises(TypeError, match="'encoding'"):
        embed_pool(tmp_path / "pool", encoding="clap")
    with pytest.raises(TypeError, match="'resolutions'"):
        compute_features(tmp_path / "ds", resolutions=16)
    with pytest.raises(ConfigError, match="lufs_range"):
        sonify(tmp_path / "images", tmp_path / "pool", tmp_path / "ds", lufs_range=(-300, -290))
    with pytest.raises(ConfigError, match="max_side"):  # a concepts field, routed to concepts_config
        sonify(tmp_path / "images", tmp_path / "pool", tmp_path / "ds", max_side=0)
    assert not any(tmp_path.iterdir())


def _subparsers(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*prefix, name), child
                yield from _subparsers(child, (*prefix, name))


def _field_defaults(cls, exclude=(), include=None):
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in exclude or (include is not None and f.name not in include):
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


CONCEPT_FIELDS = _field_defaults(ConceptsConfig, exclude=("vlms",))
VLM_FIELDS = _field_defaults(VLMSpec, include=VLM_KNOBS)
COMMAND_CONFIGS = {
    ("pool", "build"): _field_defaults(PoolBuildConfig),
    ("pool", "embed"): _field_defaults(EmbedConfig),
    # RetrieveConfig.engine is --search-engine there: --engine is the executor (local|ray)
    ("retrieve",): {("search_engine" if k == "engine" else k): v for k, v in _field_defaults(RetrieveConfig).items()},
    ("concepts",): {**CONCEPT_FIELDS, **VLM_FIELDS},
    ("sonify",): {
        **_field_defaults(SonifyConfig, exclude=("concepts_config",)),
        **{k: v for k, v in CONCEPT_FIELDS.items() if k != "shard_size"},
        **VLM_FIELDS,
    },
    ("features",): _field_defaults(FeaturesConfig),
    ("train",): _field_defaults(TrainConfig, exclude=("progress",)),  # progress is --quiet, for every command
}


def test_cli_defaults_are_the_dataclass_defaults_for_every_command():
    commands = dict(_subparsers(build_parser()))
    assert set(COMMAND_CONFIGS) <= set(commands)
    for command, fields in COMMAND_CONFIGS.items():
        actions = {a.dest: a for a in commands[command]._actions}
        for name, default in fields.items():
            assert name in actions, f"{' '.join(command)}: no option for {name}"
            got = actions[name].default
            got = tuple(got) if isinstance(got, list) else got
            assert got == default, f"{' '.join(command)} {name}: CLI default {got!r} != dataclass default {default!r}"


def test_cli_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["concepts", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default 1024)" in out and "(default 178956970)" in out and "(default 256)" in out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default 3.16e-05)" in out and "(default hybrid)" in out


@pytest.mark.parametrize("lufs", [["nan", "-10"], ["-300", "-290"]])
def test_sonify_bad_lufs_range_exits_2_before_any_stage(tmp_path, capsys, lufs):
    (tmp_path / "images").mkdir()
    argv = ["sonify", "--images", str(tmp_path / "images"), "--pool", str(tmp_path / "pool")]
    argv += ["--out", str(tmp_path / "ds"), "--vlm", f"sidecar:{tmp_path / 'side.jsonl'}", "--lufs-range", *lufs]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seeing-sound: error: --lufs-range: each value must be finite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images"]  # no stage output, not even the folder


def test_bad_vlm_knobs_and_vlm_text_exit_2_with_one_line(tmp_path, capsys):
    base = ["concepts", str(tmp_path), "--out", str(tmp_path / "out")]
    assert main([*base, "--retries", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["seeing-sound: error: --retries: max_retries must be >= 0, got -1"]
    with pytest.raises(SystemExit) as e:
        main([*base, "--vlm", "foo:bar"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--vlm" in err[0] and "a VLM spec must start with one of" in err[0]
    assert main([*base, "--max-side", "0"]) == 2
    assert capsys.readouterr().err.strip() == "seeing-sound: error: --max-side: must be >= 1, got 0"
    assert not (tmp_path / "out").exists()


def test_library_config_error_is_printed_with_the_cli_flag(tmp_path, capsys, monkeypatch):
    import seeing_sound.retrieval as retrieval

    def fails(*args, **kwargs):
        raise ConfigError("index_kind", "lsh", "must be one of exact, ivf, hnsw")

    monkeypatch.setattr(retrieval, "retrieve", fails)
    argv = ["retrieve", "--pool", "p", "--concepts", "c", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == "seeing-sound: error: --index: must be one of exact, ivf, hnsw, got 'lsh'"

    def refuses(*args, **kwargs):
        raise SeeingSoundError("o holds embeddings from another model; pass overwrite=True to replace them")

    monkeypatch.setattr(retrieval, "retrieve", refuses)
    assert main(argv) == 1
    assert capsys.readouterr().err.strip().endswith("pass --overwrite to replace them")


def test_cli_config_error_from_a_cross_field_check(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    assert main(["pool", "build", str(tmp_path / "src"), "--out", str(tmp_path / "p"), "--min-tail-seconds", "9"]) == 2
    assert capsys.readouterr().err.startswith("seeing-sound: error: --min-tail-seconds: must be <= chunk_seconds")
    assert not (tmp_path / "p").exists()


def test_train_recipe_leaves_its_config_unchanged(tmp_path):
    from seeing_sound.model.training.recipe import TrainRecipe, train
    from seeing_sound.testing.data import write_synthetic_features
    from seeing_sound.testing.models import build_tiny_pixart

    pixart = build_tiny_pixart(tmp_path / "pixart")
    write_synthetic_features(tmp_path / "ds", num_pairs=8, vae_model=str(pixart))
    cfg = TrainConfig(
        dataset=str(tmp_path / "ds"),
        out=str(tmp_path / "run"),
        pretrained=str(pixart),
        max_steps=2,
        batch_size=4,
        checkpoint_every=2,
        sample_every=0,
        progress=False,
    )
    before = dataclasses.asdict(cfg)
    result = train(cfg)
    assert sorted(result.losses) == [1, 2]
    assert dataclasses.asdict(cfg) == before and cfg.ast_features is None
    recipe = TrainRecipe(cfg.replace(max_steps=3, resume="latest"))
    try:
        recipe.setup()
        assert recipe.cfg.ast_features is not None and recipe.config.ast_features is None  # resolved in a copy
        assert sorted(recipe.train().losses) == [3]
    finally:
        recipe.cleanup()
    assert dataclasses.asdict(cfg) == before
