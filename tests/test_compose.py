import json

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from seeing_sound.audio import controls
from seeing_sound.cli import main
from seeing_sound.testing.signals import noise, tone, write_audio

SR = 16000


def _lufs(x):
    return pyloudnorm.Meter(SR).integrated_loudness(x.astype(np.float64))


def test_superpose_hits_each_target():
    a, b = tone(3, SR, freq=300, amp=0.5), noise(2, SR, amp=0.05, seed=1)
    mix, g = controls.superpose([a, b], [-20.0, -30.0], SR)
    assert mix.shape == (3 * SR,) and g == 0.0
    # each source alone at its target: the mixture is their sum
    a_n, _ = controls.superpose([a], [-20.0], SR)
    b_n, _ = controls.superpose([b], [-30.0], SR)
    assert _lufs(a_n) == pytest.approx(-20, abs=0.05) and _lufs(b_n) == pytest.approx(-30, abs=0.05)
    np.testing.assert_allclose(mix, a_n + np.pad(b_n, (0, SR)), atol=1e-6)
    loud, g = controls.superpose([a, a], [-3.0, -3.0], SR)
    assert g < 0 and np.abs(loud).max() <= 0.99 + 1e-6  # headroom, never clipped
    with pytest.raises(ValueError, match="silent"):
        controls.superpose([np.zeros(SR, np.float32)], [-20.0], SR)


def test_concatenate_and_interpolate():
    a, b = tone(1, SR, amp=0.3), noise(2, SR, seed=2)
    seq = controls.concatenate([a, b], [-23, -23], SR, gap_seconds=0.5)
    assert seq.size == SR + SR // 2 + 2 * SR and np.all(seq[SR : SR + SR // 2] == 0)
    assert _lufs(seq[:SR]) == pytest.approx(-23, abs=0.05) and _lufs(seq[-2 * SR :]) == pytest.approx(-23, abs=0.05)
    steps = controls.interpolate([a], [-23.0], b, [-40, -30, -20], SR)
    b_part = [_lufs(s.audio[SR:]) for s in steps]  # after a ends, only the moving source sounds
    assert b_part == sorted(b_part) and b_part[-1] - b_part[0] == pytest.approx(20, abs=0.2)


def _alone(step, k, sources):
    """Track k of a sweep step rendered alone, measured with pyloudnorm (not our meter)."""
    return _lufs(step.mixture.render_track(k, sources[k]))


def test_interpolate_keeps_the_fixed_source_at_its_target():
    """The issue's case: at the -10 LUFS step the fixed source used to fall to -24.7 (asked -23)."""
    fixed, moving = noise(3, SR, amp=0.3, seed=4), noise(3, SR, amp=0.3, seed=5)
    sweep = [-40.0, -22.0, -5.0]
    steps = controls.interpolate([fixed], [-23.0], moving, sweep, SR)  # headroom="none"
    for step, asked in zip(steps, sweep, strict=True):
        assert _alone(step, 0, [fixed, moving]) == pytest.approx(-23.0, abs=0.05)
        assert _alone(step, 1, [fixed, moving]) == pytest.approx(asked, abs=0.05)
        assert step.reached_lufs == pytest.approx(asked, abs=0.05)
        assert step.mixture.mixture_gain_db == 0.0
    assert steps[-1].measured["peak"] > 1.0  # kept: float output, no per-step scaling
    # one gain for the whole sweep: the fixed source sits at the same level in every step, nothing clips
    ss = controls.interpolate([fixed], [-23.0], moving, sweep, SR, headroom="sweep")
    g = {s.mixture.mixture_gain_db for s in ss}
    assert len(g) == 1 and g.pop() < 0
    levels = [_alone(s, 0, [fixed, moving]) for s in ss]
    assert max(levels) - min(levels) < 0.01
    assert levels[0] == pytest.approx(-23.0 + ss[0].mixture.mixture_gain_db, abs=0.05)
    assert all(s.measured["peak"] <= 0.99 + 1e-6 for s in ss)
    assert [s.reached_lufs for s in ss] == pytest.approx([a + ss[0].mixture.mixture_gain_db for a in sweep], abs=0.05)
    with pytest.raises(ValueError, match="headroom"):
        controls.interpolate([fixed], [-23.0], moving, sweep, SR, headroom="peak")


def test_reverb_adds_a_decaying_tail_and_is_deterministic():
    x = np.zeros(SR, np.float32)
    x[:200] = noise(200 / SR, SR, amp=0.5)
    small = controls.reverb(x, SR, room_size=0.1)
    big = controls.reverb(x, SR, room_size=0.95)
    assert big.size == small.size == 3 * SR
    tail = slice(SR // 2, 3 * SR)
    assert np.sum(big[tail] ** 2) > 3 * np.sum(small[tail] ** 2)
    assert controls.reverb(x, SR).tobytes() == controls.reverb(x, SR).tobytes()
    with pytest.raises(ValueError, match="room_size"):
        controls.reverb(x, SR, room_size=2)


def test_compose_cli(tmp_path, capsys):
    write_audio(tmp_path / "a.wav", tone(2, 44100, amp=0.3, channels=2), 44100)
    write_audio(tmp_path / "b.flac", noise(3, 22050, seed=3), 22050)
    a, b = str(tmp_path / "a.wav"), str(tmp_path / "b.flac")
    assert main(["compose", "mix", a, b, "--lufs", "-20", "-26", "--out", str(tmp_path / "mix.wav")]) == 0
    y, sr = sf.read(tmp_path / "mix.wav", dtype="float32")
    assert sr == SR and y.shape == (3 * SR,)
    i = tmp_path / "i"
    assert main(["compose", "interpolate", a, b, "--sweep", "-40", "-10", "--steps", "3", "--out", str(i)]) == 0
    names = sorted(p.name for p in i.glob("*.wav"))
    assert names == ["00_-40.0LUFS.wav", "01_-25.0LUFS.wav", "02_-10.0LUFS.wav"]
    sweep = json.loads((i / "sweep.json").read_text())
    assert sweep["headroom"] == "none" and [s["file"] for s in sweep["steps"]] == names
    for s in sweep["steps"]:
        assert s["tracks_lufs"][0] == pytest.approx(-23.0, abs=0.05)  # the fixed source, measured
        assert s["tracks_lufs"][1] == pytest.approx(s["asked_lufs"], abs=0.05)
    side = json.loads((i / names[-1]).with_suffix(".json").read_text())
    assert side["components"][1]["file"] == b and side["mixture"]["headroom"] == "none"
    # --headroom sweep: names follow the measured (lower) levels, not the asked ones
    j = tmp_path / "j"
    argv = ["compose", "interpolate", a, b, "--sweep", "-40", "-3", "--steps", "2", "--headroom", "sweep"]
    assert main([*argv, "--out", str(j)]) == 0
    sweep = json.loads((j / "sweep.json").read_text())
    reached = [s["tracks_lufs"][1] for s in sweep["steps"]]
    assert reached[-1] < -3.5 and sorted(p.name for p in j.glob("*.wav"))[-1] == f"01_{reached[-1]:+.1f}LUFS.wav"
    assert main([*argv[:-1], "peak", "--out", str(tmp_path / "k")]) == 2
    assert main(["compose", "concat", a, b, "--out", str(tmp_path / "c.wav")]) == 0
    assert sf.info(str(tmp_path / "c.wav")).frames == 5 * SR
    assert main(["compose", "reverb", a, "--room-size", "0.9", "--out", str(tmp_path / "r.wav")]) == 0
    assert main(["compose", "mix", a, b, "--lufs", "-20", "-26", "-30", "--out", str(tmp_path / "x.wav")]) == 1
    assert "one per source" in capsys.readouterr().err


def test_compose_mix_from_the_pool(described_pool, tmp_path):
    """The paper's semantic mixing: two excerpts drawn at random from the pool, each LUFS-normalized."""
    import shutil

    from seeing_sound.pool import AudioPool, embed_pool

    out = tmp_path / "r.wav"
    argv = ["compose", "mix", "--pool", str(described_pool), "--random", "2", "--seed", "3", "--lufs", "-20", "-26"]
    assert main([*argv, "--out", str(out)]) == 0
    side = json.loads(out.with_suffix(".json").read_text())
    comps = side["components"]
    pool = AudioPool.open(described_pool)
    assert len(comps) == 2 and comps[0]["chunk_source"] != comps[1]["chunk_source"]  # two different files
    for c, t in zip(comps, (-20.0, -26.0), strict=True):
        assert c["target_lufs"] == t and c["gain_db"] == pytest.approx(t - c["chunk_lufs"])
        assert (
            np.isfinite(c["chunk_lufs"])
            and c["chunk_lufs"] == pool.manifest.column("loudness_lufs")[c["chunk_id"]].as_py()
        )
    assert side["measured"]["tracks_lufs"] == pytest.approx([-20.0, -26.0], abs=0.05)
    y, sr = sf.read(out, dtype="float32")
    assert sr == pool.sample_rate
    # the recipe re-renders the file from the pool, bit for bit
    from seeing_sound.audio.mixture import Mixture

    m = Mixture.from_dict(side["mixture"])
    assert m.render_from_pool(pool).tobytes() == y.tobytes()
    assert main([*argv, "--out", str(tmp_path / "r2.wav")]) == 0  # seeded: the same draw
    assert json.loads((tmp_path / "r2.json").read_text())["components"] == comps
    # by id, and by description with the pool's own encoder
    assert (
        main(
            ["compose", "concat", "--pool", str(described_pool), "--chunks", "0", "2", "--out", str(tmp_path / "c.wav")]
        )
        == 0
    )
    assert [c["chunk_id"] for c in json.loads((tmp_path / "c.json").read_text())["components"]] == [0, 2]
    assert (
        main(["compose", "mix", "--pool", str(described_pool), "--query", "rain", "--out", str(tmp_path / "q.wav")])
        == 1
    )
    shutil.copytree(described_pool, tmp_path / "pool")
    embed_pool(tmp_path / "pool", "text", device="cpu", progress=False)
    q = [
        "compose",
        "mix",
        "--pool",
        str(tmp_path / "pool"),
        "--query",
        "rain falling on a roof",
        "--query",
        "a dog barking",
    ]
    assert main([*q, "--device", "cpu", "--out", str(tmp_path / "q.wav")]) == 0
    comps = json.loads((tmp_path / "q.json").read_text())["components"]
    assert [c["chunk_description"] for c in comps] == ["rain falling on a roof", "a dog barking"]
    assert comps[0]["concept"] == "rain falling on a roof" and comps[0]["encoder"] == "text"


def test_acoustic_spaces_and_measured_rt60(tmp_path):
    from seeing_sound.audio.controls import Space, measure_rt60, synthetic_rir

    for rt60 in (0.3, 1.2):
        est = measure_rt60(synthetic_rir(rt60, SR, seed=1), SR)
        assert est["t20_s"] == pytest.approx(rt60, rel=0.05) and est["t30_s"] == pytest.approx(rt60, rel=0.05)
    # a "real" IR file: 44.1 kHz stereo, decaying like RT60 = 0.8 s -> resampled, downmixed, measured
    ir = np.stack([synthetic_rir(0.8, 44100, seed=2), synthetic_rir(0.8, 44100, seed=3)], axis=1)
    sf.write(tmp_path / "hall.wav", ir, 44100, subtype="FLOAT")
    space = Space.from_ir(tmp_path / "hall.wav")
    assert space.rt60(SR)["t30_s"] == pytest.approx(0.8, rel=0.08) and space.ir_sha256.startswith("sha256:")
    speech = noise(2, SR, amp=0.2, seed=9)
    write_audio(tmp_path / "crowd.wav", speech, SR)
    out = tmp_path / "church.wav"
    assert (
        main(["compose", "reverb", str(tmp_path / "crowd.wav"), "--ir", str(tmp_path / "hall.wav"), "--out", str(out)])
        == 0
    )
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["mixture"]["space"]["kind"] == "ir" and side["rt60"]["t30_s"] == pytest.approx(0.8, rel=0.08)
    assert side["measured"]["mixture_lufs"] == pytest.approx(-23.0, abs=0.3)  # loudness matched to the dry source
    assert sf.info(str(out)).frames == 2 * SR + round(1.5 * 0.8 * SR) - 1  # the full convolution tail
    out2 = tmp_path / "room.wav"
    assert main(["compose", "reverb", str(tmp_path / "crowd.wav"), "--rt60", "0.4", "--out", str(out2)]) == 0
    side = json.loads(out2.with_suffix(".json").read_text())
    assert side["rt60"]["asked_s"] == 0.4 and side["rt60"]["t30_s"] == pytest.approx(0.4, rel=0.05)
    assert (
        main(
            [
                "compose",
                "reverb",
                str(tmp_path / "crowd.wav"),
                "--rt60",
                "0.4",
                "--ir",
                str(tmp_path / "hall.wav"),
                "--out",
                str(out2),
            ]
        )
        == 2
    )
    y1, _ = sf.read(out2, dtype="float32")
    assert main(["compose", "reverb", str(tmp_path / "crowd.wav"), "--rt60", "0.4", "--out", str(out2)]) == 0
    assert sf.read(out2, dtype="float32")[0].tobytes() == y1.tobytes()  # deterministic
