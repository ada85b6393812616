"""Bad-input corpus for ``train``: tampered feature shards, one case per row, each named in the test id.

Every case copies a small synthetic dataset, spoils one shard, and runs ``seeing-sound train`` on
it. The run must stop before training with exit status 1 and one stderr line that names the bad
file and says what was found (and what was expected); nothing may be trained or checkpointed.
"""

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from seeing_sound.cli import main
from seeing_sound.features.store import write_shard
from seeing_sound.testing.data import write_synthetic_features
from seeing_sound.testing.models import build_tiny_pixart

TOKENS = 110  # write_synthetic_features' default token count


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-train")
    pixart = build_tiny_pixart(root / "pixart")
    write_synthetic_features(root / "ds", num_pairs=16, vae_model=str(pixart))
    return root, pixart


def _shard(ds: Path, kind: str, k: int = 1) -> Path:
    return ds / "features" / f"{kind}-tiny" / f"shard-{k:06d}.safetensors"


def _header(path: Path) -> tuple[dict, bytes]:
    """A safetensors file's JSON header and its data bytes."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _write(path: Path, header: dict, data: bytes) -> None:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


# --- the cases: each spoils one shard and returns (the bad file, words the message must hold) ---


def int8_embeds(ds):
    bad = _shard(ds, "ast")
    rows = np.arange(8, 16, dtype=np.int64)
    write_shard(bad, {"rows": rows, "embeds": np.ones((8, TOKENS, 32), np.int8)}, {})
    return bad, ["embeds", "int8", "float16", "--overwrite"]


def wrong_token_count(ds):
    bad = _shard(ds, "ast")
    rows = np.arange(8, 16, dtype=np.int64)
    write_shard(bad, {"rows": rows, "embeds": np.zeros((8, TOKENS - 10, 32), np.float16)}, {})
    return bad, ["embeds", str(TOKENS - 10), str(TOKENS), "--overwrite"]


def header_length_2_40(ds):
    bad = _shard(ds, "vae")
    raw = bytearray(bad.read_bytes())
    raw[:8] = struct.pack("<Q", 2**40)
    bad.write_bytes(bytes(raw))
    return bad, ["header", str(2**40)]


def offsets_past_the_end(ds):
    bad = _shard(ds, "vae")
    header, data = _header(bad)
    start, end = header["std"]["data_offsets"]
    header["std"]["data_offsets"] = [start, end + 10**9]
    _write(bad, header, data)
    return bad, ["std", "past the end"]


def truncated(ds):
    bad = _shard(ds, "ast")
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) - 1000])
    return bad, ["truncated"]


def not_safetensors(ds):
    bad = _shard(ds, "vae", 0)
    bad.write_text("this is a text file, not a safetensors shard\n" * 4)
    return bad, ["not a safetensors file"]


def shorter_than_a_header(ds):
    bad = _shard(ds, "ast", 0)
    bad.write_bytes(b"\x01\x02")
    return bad, ["not a safetensors file"]


def header_not_json(ds):
    bad = _shard(ds, "ast", 0)
    _, data = _header(bad)
    text = b"{not json at all}   "
    bad.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return bad, ["not a safetensors file", "JSON"]


def missing_tensor(ds):
    bad = _shard(ds, "vae")
    rows = np.arange(8, 16, dtype=np.int64)
    write_shard(bad, {"rows": rows, "mean": np.zeros((8, 4, 8, 8), np.float16)}, {})
    return bad, ["std", "--overwrite"]


def rows_not_matching(ds):
    bad = _shard(ds, "vae")
    rows = np.arange(8, 15, dtype=np.int64)  # 7 rows for 8 latents
    lat = np.zeros((8, 4, 8, 8), np.float16)
    write_shard(bad, {"rows": rows, "mean": lat, "std": lat}, {})
    return bad, ["rows", "7", "8"]


def wrong_latent_shape(ds):
    bad = _shard(ds, "vae")
    rows = np.arange(8, 16, dtype=np.int64)
    lat = np.zeros((8, 4, 16, 16), np.float16)
    write_shard(bad, {"rows": rows, "mean": lat, "std": lat}, {})
    return bad, ["mean", "16", "8"]


def shape_size_mismatch(ds):
    bad = _shard(ds, "ast")
    header, data = _header(bad)
    header["embeds"]["shape"] = [8, TOKENS, 33]  # the bytes hold 32-dim tokens
    _write(bad, header, data)
    return bad, ["embeds", "bytes"]


def card_not_json(ds):
    bad = ds / "features" / "ast-tiny" / "features.json"
    bad.write_text("{kind: ast")
    return bad, ["not JSON", "--overwrite"]


def card_tokens_not_a_number(ds):
    bad = ds / "features" / "ast-tiny" / "features.json"
    card = json.loads(bad.read_text())
    bad.write_text(json.dumps({**card, "tokens": "many"}))
    return bad, ["tokens", "many"]


def card_of_the_other_kind(ds):
    bad = ds / "features" / "vae-tiny" / "features.json"
    card = json.loads(bad.read_text())
    bad.write_text(json.dumps({**card, "kind": "ast"}))
    return bad, ["'ast'", "'vae'"]


CASES = [
    int8_embeds,
    wrong_token_count,
    header_length_2_40,
    offsets_past_the_end,
    truncated,
    not_safetensors,
    shorter_than_a_header,
    header_not_json,
    missing_tensor,
    rows_not_matching,
    wrong_latent_shape,
    shape_size_mismatch,
    card_not_json,
    card_tokens_not_a_number,
    card_of_the_other_kind,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_a_bad_shard_stops_train_with_one_line_naming_it(setup, tmp_path, capsys, case):
    root, pixart = setup
    ds = tmp_path / "ds"
    shutil.copytree(root / "ds", ds)
    bad, words = case(ds)
    out = tmp_path / "run"
    argv = ["--quiet", "train", str(ds), "--out", str(out), "--pretrained", str(pixart)]
    argv += ["--batch-size", "4", "--max-steps", "1", "--sample-every", "0", "--checkpoint-every", "1"]
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1, f"train on {case.__name__}: expected exit status 1, got {code} (stderr: {err})"
    assert len(err) == 1, f"train on {case.__name__}: expected one stderr line, got {err}"
    assert str(bad) in err[0], f"train on {case.__name__}: the message does not name {bad}: {err[0]}"
    missing = [w for w in words if w not in err[0]]
    assert not missing, f"train on {case.__name__}: the message lacks {missing}: {err[0]}"
    assert not list(out.glob("checkpoints/step-*")), f"train on {case.__name__}: trained on a bad shard"


def test_files_safetensors_writes_pass_the_header_check(tmp_path):
    """No false alarm: what the library itself writes (metadata, several dtypes, no rows, scalars) reads back."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from seeing_sound.features.store import read_safetensors_header

    tensors = {
        "rows": torch.arange(0, dtype=torch.int64),
        "bf": torch.ones(3, 5, dtype=torch.bfloat16),
        "half": torch.zeros(2, 7, 3, dtype=torch.float16),
        "flag": torch.tensor(True),
        "bytes": torch.arange(9, dtype=torch.uint8),
    }
    save_file(tensors, str(tmp_path / "x.safetensors"), metadata={"b": "2", "a": "1"})
    got = read_safetensors_header(tmp_path / "x.safetensors")
    with safe_open(str(tmp_path / "x.safetensors"), framework="pt") as fh:
        want = {k: list(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    assert {k: v["shape"] for k, v in got.items()} == want, f"x.safetensors: header shapes {got} != {want}"
