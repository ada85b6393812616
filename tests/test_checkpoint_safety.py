"""Training checkpoints load nothing through unrestricted pickle (hostile checkpoints are refused)."""

from __future__ import annotations

import pickle

import pytest

torch = pytest.importorskip("torch")

from diffusers.training_utils import EMAModel  # noqa: E402

from seeing_sound.model.checkpoint import (  # noqa: E402
    TRAINING_STATE,
    UnsafeCheckpointError,
    load_training_state,
    save_training_state,
)


def _parts(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10))
    ema = EMAModel(model.parameters(), decay=0.9)
    return model, opt, sched, ema


def _train(model, opt, sched, ema, steps: int, seed: int = 0) -> list[float]:
    losses = []
    for step in range(steps):
        g = torch.Generator().manual_seed(seed * 1000 + step)  # per-step stream, as the recipe does
        x, y = torch.randn(16, 4, generator=g), torch.randn(16, 2, generator=g)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        ema.step(model.parameters())
        losses.append(loss.item())
    return losses


def test_round_trip_continues_exactly(tmp_path):
    whole = _parts(0)
    straight = _train(*whole, steps=6)
    first = _parts(0)
    head = _train(*first, steps=3)
    save_training_state(
        tmp_path / "ck", model=first[0], optimizer=first[1], lr_scheduler=first[2], ema=first[3], step=3
    )
    resumed = _parts(1)  # other initial weights: everything must come from the checkpoint
    step = load_training_state(
        tmp_path / "ck", model=resumed[0], optimizer=resumed[1], lr_scheduler=resumed[2], ema=resumed[3]
    )
    assert step == 3
    tail = []
    for s in range(3, 6):  # continue with the same per-step streams
        g = torch.Generator().manual_seed(s)
        x, y = torch.randn(16, 4, generator=g), torch.randn(16, 2, generator=g)
        loss = torch.nn.functional.mse_loss(resumed[0](x), y)
        resumed[1].zero_grad()
        loss.backward()
        resumed[1].step()
        resumed[2].step()
        resumed[3].step(resumed[0].parameters())
        tail.append(loss.item())
    assert head + tail == straight
    for a, b in zip(resumed[3].shadow_params, whole[3].shadow_params, strict=True):
        assert torch.equal(a, b)


class _Payload:
    """Unpickling this runs code: exactly what a tampered checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _saved(tmp_path):
    model, opt, sched, ema = _parts(0)
    _train(model, opt, sched, ema, steps=2)
    path = save_training_state(tmp_path / "ck", model=model, optimizer=opt, lr_scheduler=sched, ema=ema, step=2)
    return path, _parts(0)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the hostile file's protocol
def test_a_pickled_payload_never_runs(tmp_path):
    path, fresh = _saved(tmp_path)
    marker = tmp_path / "pwned"
    # A tampered training_state.pt whose checksum was "fixed" in state.json too.
    (path / TRAINING_STATE).write_bytes(pickle.dumps({"optimizer": _Payload(marker)}))
    import hashlib
    import json

    state = json.loads((path / "state.json").read_text())
    state["files"][TRAINING_STATE] = hashlib.sha256((path / TRAINING_STATE).read_bytes()).hexdigest()
    (path / "state.json").write_text(json.dumps(state))
    model, opt, sched, ema = fresh
    with pytest.raises(UnsafeCheckpointError, match="needs more than tensors"):
        load_training_state(path, model=model, optimizer=opt, lr_scheduler=sched, ema=ema)
    assert not marker.exists()


@pytest.mark.parametrize(
    "tamper, message",
    [
        ("changed-file", "was changed after"),
        ("extra-pkl", "files that can run code"),
        ("accelerate-layout", "not a seeing-sound checkpoint"),
        ("path-escape", "outside the checkpoint"),
    ],
)
def test_tampered_checkpoints_are_refused(tmp_path, tamper, message):
    import json

    path, fresh = _saved(tmp_path)
    if tamper == "changed-file":
        data = bytearray((path / "model.safetensors").read_bytes())
        data[-1] ^= 1
        (path / "model.safetensors").write_bytes(bytes(data))
    elif tamper == "extra-pkl":
        (path / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(_Payload(tmp_path / "pwned")))
    elif tamper == "accelerate-layout":
        (path / "state.json").unlink()
        (path / "random_states_0.pkl").write_bytes(b"\x80\x04N.")
    else:
        state = json.loads((path / "state.json").read_text())
        state["files"]["../outside"] = "0" * 64
        (path / "state.json").write_text(json.dumps(state))
    model, opt, sched, ema = fresh
    with pytest.raises(UnsafeCheckpointError, match=message):
        load_training_state(path, model=model, optimizer=opt, lr_scheduler=sched, ema=ema)
    assert not (tmp_path / "pwned").exists()
