"""`seeing-sound evaluate` end to end on tiny twins: folder scoring, caching, rank protocol, generate-then-score."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from seeing_sound.cli import main
from seeing_sound.evaluation.metrics import paired_cosine
from seeing_sound.testing.eval_models import (
    build_fid_inception,
    build_tiny_clip,
    build_tiny_wav2clip,
    write_eval_folders,
    write_synthetic_benchmark,
)


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-cli-twins")
    return {
        "wav2clip": build_tiny_wav2clip(root / "Wav2CLIP.pt"),
        "clip": build_tiny_clip(root / "clip"),
        "inception": build_fid_inception(root / "pt_inception-2015-12-05-6726825d.pth"),
    }


def _models(twins, *, inception=True):
    args = ["--clip", str(twins["clip"]), "--wav2clip", str(twins["wav2clip"]), "--device", "cpu"]
    return [*args, "--inception", str(twins["inception"])] if inception else args


@pytest.fixture(scope="module")
def scored(twins, tmp_path_factory):
    """A dozen synthetic items, plus an unpaired image, a corrupt audio file and a stray text file."""
    root = tmp_path_factory.mktemp("eval-cli")
    dirs = write_eval_folders(root / "data", n=12, size=40)
    shutil.copy(dirs["generated"] / "item_00.png", dirs["generated"] / "lonely.png")
    (dirs["audio"] / "item_11.wav").write_bytes(b"RIFF not really audio")
    (dirs["generated"] / "notes.txt").write_text("hi")
    out = root / "EVAL"
    argv = ["--quiet", "evaluate", "--images", str(dirs["generated"]), "--reference", str(dirs["reference"])]
    argv += ["--audio", str(dirs["audio"]), "--out", str(out), "--batch-size", "4", "--kid-subsets", "5"]
    assert main([*argv, *_models(twins)]) == 0
    return {"dirs": dirs, "out": out, "argv": argv}


def test_folder_scoring_writes_every_output(scored):
    out = scored["out"]
    summary = json.loads((out / "summary.json").read_text())
    r = summary["benchmarks"]["generated"]
    assert r["n"] == 11 and r["protocol"] == "raw" and r["resize"] == "clean" and r["seed"] == 0
    for key in ("fid", "kid_mean", "kid_std", "iis", "ais"):
        assert np.isfinite(r[key]), key
    assert r["fid"] >= 0 and -1 <= r["iis"] <= 1 and -1 <= r["ais"] <= 1
    assert set(r["models"]) == {"inception", "clip", "wav2clip"}
    assert all(m["revision"].startswith("sha256:") for m in r["models"].values())
    reasons = {json.dumps(s) for s in r["skipped"]}
    text = "\n".join(reasons)
    assert "lonely.png" in text and "unpaired" in text
    assert "notes.txt" in text and "not a image file" in text
    assert "item_11.wav" in text and "audio file unreadable" in text
    rows = pq.read_table(out / "per_sample.parquet").to_pylist()
    assert len(rows) == 11 and {row["item_id"] for row in rows} == {f"item_{i:02d}" for i in range(11)}
    assert np.mean([row["iis_cosine"] for row in rows]) == pytest.approx(r["iis"])
    table = (out / "table.md").read_text()
    assert "| SonicDiffusion (published) | 87.3 | 0.72 | 0.029 | 79.9 | 0.75 | 0.064" in table
    assert "| Seeing Sound (published) | 228.4 | 0.61 | 0.053 |" in table and "N = 11 scored" in table
    assert "this run" in table and "resize policy: clean" in table
    assert (out / "samples.png").stat().st_size > 0


def test_ais_and_iis_equal_a_direct_cosine(scored, twins):
    from seeing_sound.evaluation.clip import ClipImageEncoder
    from seeing_sound.evaluation.run import _wav2clip_input
    from seeing_sound.evaluation.wav2clip import Wav2ClipEncoder

    dirs, rows = scored["dirs"], pq.read_table(scored["out"] / "per_sample.parquet").to_pylist()
    clip = ClipImageEncoder(str(twins["clip"]), device="cpu", batch_size=4)
    w2c = Wav2ClipEncoder(twins["wav2clip"], device="cpu")
    stems = [row["item_id"] for row in rows]
    gen = clip.embed([clip.prepare(dirs["generated"] / f"{s}.png") for s in stems])
    ref = clip.embed([clip.prepare(dirs["reference"] / f"{s}.png") for s in stems])
    aud = w2c.embed([_wav2clip_input(dirs["audio"] / f"{s}.wav") for s in stems])
    np.testing.assert_allclose([row["iis_cosine"] for row in rows], paired_cosine(gen, ref), rtol=1e-5)
    np.testing.assert_allclose([row["ais_cosine"] for row in rows], paired_cosine(aud, gen), rtol=1e-5)


def test_rerun_with_other_metrics_recomputes_nothing_and_rank_is_flagged(scored, twins, capsys):
    out = scored["out"]
    argv = [*scored["argv"], *_models(twins, inception=False), "--metrics", "iis,ais", "--protocol", "rank"]
    assert main(argv) == 0
    assert "NOT comparable" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    r = summary["benchmarks"]["generated"]
    assert r["features_computed"] == 0 and r["fid"] is None and r["protocol"] == "rank"
    assert "NOT comparable" in r["note"] and "NOT comparable" in summary["note"]
    assert 0 <= r["iis"] <= 1 and 0 <= r["ais"] <= 1
    meta = pq.read_schema(out / "per_sample.parquet").metadata
    assert b"NOT comparable" in meta[b"note"]
    rows = pq.read_table(out / "per_sample.parquet").to_pylist()
    assert all(row["protocol"] == "rank" and row["iis_rank"] is not None for row in rows)
    assert "NOT comparable" in (out / "table.md").read_text()


def test_usage_and_model_errors(scored, twins, tmp_path, capsys):
    assert main(["evaluate", "--out", str(tmp_path / "e"), "--model", "RUN"]) == 2
    assert "--benchmark" in capsys.readouterr().err
    assert main(["evaluate", "--out", str(tmp_path / "e"), "--images", "x", "--metrics", "fid,psnr"]) == 2
    assert "--metrics" in capsys.readouterr().err
    dirs = scored["dirs"]
    argv = ["--quiet", "evaluate", "--images", str(dirs["generated"]), "--audio", str(dirs["audio"])]
    argv += ["--metrics", "ais"]
    argv += ["--out", str(tmp_path / "e"), "--clip", str(twins["clip"]), "--wav2clip", str(tmp_path / "none.pt")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Wav2CLIP model" in err and "--wav2clip PATH" in err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from seeing_sound.encoders.ast import load_ast
    from seeing_sound.model.audio_pixart import AudioPixArt
    from seeing_sound.model.loading import load_scheduler, load_vae
    from seeing_sound.model.pipeline import AudioPixArtPipeline
    from seeing_sound.testing.models import build_tiny_ast, build_tiny_pixart

    root = tmp_path_factory.mktemp("eval-run")
    pixart, ast = build_tiny_pixart(root / "pixart"), build_tiny_ast(root / "ast")
    enc = load_ast(str(ast))
    pipe = AudioPixArtPipeline(
        AudioPixArt.from_pixart(str(pixart), audio_embed_dim=32),
        load_vae(str(pixart)),
        load_scheduler(str(pixart)),
        enc.model,
        enc.feature_extractor,
    )
    pipe.save_pretrained(root / "run" / "pipeline")
    return root / "run"


def test_generate_then_score_is_resumable(tiny_run, twins, tmp_path):
    bench_a = write_synthetic_benchmark(tmp_path / "vggsound", n=4, name="vggsound", seed=1)
    bench_b = write_synthetic_benchmark(tmp_path / "other", n=3, name="other", seed=2)
    out = tmp_path / "EVAL"
    argv = ["--quiet", "evaluate", "--model", str(tiny_run), "--benchmark", str(bench_a), str(bench_b)]
    argv += ["--out", str(out), "--steps", "2", "--seed", "3", "--metrics", "iis,ais", *_models(twins, inception=False)]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["generation"]["per_benchmark"]["vggsound"] == {"generated_now": 4, "reused": 0}
    assert summary["benchmarks"]["vggsound"]["n"] == 4 and summary["benchmarks"]["other"]["n"] == 3
    pngs = sorted(p.name for p in (out / "generated/vggsound").glob("*.png"))
    assert pngs == [f"vggsound_00{i}.png" for i in range(4)]
    table = (out / "table.md").read_text()
    ours = next(line for line in table.splitlines() if line.startswith("| **"))
    iis = summary["benchmarks"]["vggsound"]["iis"]
    assert f"| {iis:.2f} |" in ours and "other IIS" in table  # VGGSound column, plus an extra one
    (out / "generated/vggsound/vggsound_002.png").unlink()
    assert main(argv) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["generation"]["per_benchmark"]["vggsound"] == {"generated_now": 1, "reused": 3}
    assert again["benchmarks"]["vggsound"]["iis"] == pytest.approx(iis)
    assert main([*argv, "--steps", "3"]) == 1  # other settings than the images already there


def test_max_pixels_skips_an_oversized_image_with_its_reason(twins, tmp_path):
    """``evaluate --max-pixels`` reaches every image decoder: an image over it is a skipped file, not a crash."""
    from PIL import Image

    dirs = write_eval_folders(tmp_path / "data", n=4, size=40)
    Image.new("RGB", (80, 80), "white").save(dirs["generated"] / "item_02.png")  # 6400 px; the others 1600
    out = tmp_path / "e"
    argv = ["--quiet", "evaluate", "--images", str(dirs["generated"]), "--reference", str(dirs["reference"])]
    argv += ["--metrics", "iis", "--out", str(out), "--max-pixels", "2000", *_models(twins, inception=False)]
    assert main(argv) == 0
    r = json.loads((out / "summary.json").read_text())["benchmarks"]["generated"]
    assert r["n"] == 3
    assert any("item_02.png" in s["file"] and "max_pixels=2000" in s["reason"] for s in r["skipped"]), r["skipped"]


def test_evaluate_model_and_generate_draw_the_same_images(tiny_run, twins, tmp_path):
    """One generation function: the same clip and seed give byte-identical PNGs through `generate` and
    `evaluate --model`, a quiet clip included (both normalize it to the training loudness)."""
    import soundfile as sf

    bench = write_synthetic_benchmark(tmp_path / "b", n=2, name="b", seed=4)
    quiet = bench / "audio" / "b_001.wav"
    wave, sr = sf.read(quiet, dtype="float32")
    sf.write(quiet, wave * 0.05, sr, subtype="FLOAT")  # -26 dB
    out = tmp_path / "EVAL"
    argv = ["--quiet", "evaluate", "--model", str(tiny_run), "--benchmark", str(bench), "--out", str(out)]
    argv += ["--steps", "2", "--seed", "3", "--metrics", "ais", *_models(twins, inception=False)]
    assert main(argv) == 0
    gen = tmp_path / "gen"
    audio = [str(bench / "audio" / f"b_00{i}.wav") for i in range(2)]
    assert main(["--quiet", "generate", *audio, "--model", str(tiny_run), "--out", str(gen), "--steps", "2",
                 "--seed", "3"]) == 0  # fmt: skip
    for i in range(2):
        evaluated = (out / "generated" / "b" / f"b_00{i}.png").read_bytes()
        assert evaluated == (gen / f"b_00{i}-seed3.png").read_bytes(), f"b_00{i}"
    generation = json.loads((out / "summary.json").read_text())["generation"]
    report = json.loads((gen / "generate.json").read_text())
    assert generation["target_lufs"] == report["loudness"]["target_lufs"]
    assert generation["loudness"]["source"] == report["loudness"]["source"]
    assert (generation["height"], generation["width"]) == (report["size"]["height"], report["size"]["width"])


def test_evaluate_model_refuses_images_made_without_normalization(tiny_run, twins, tmp_path, capsys):
    """Images generated before evaluate normalized its inputs (settings.json without the level) are not mixed in."""
    bench = write_synthetic_benchmark(tmp_path / "b", n=1, name="b", seed=5)
    out = tmp_path / "EVAL"
    folder = out / "generated" / "b"
    folder.mkdir(parents=True)
    old = {"model": str(tiny_run.resolve()), "seed": 0, "steps": 1, "guidance": 4.5}  # the settings as written before
    (folder / "settings.json").write_text(json.dumps(old))
    argv = ["--quiet", "evaluate", "--model", str(tiny_run), "--benchmark", str(bench), "--out", str(out)]
    assert main([*argv, "--steps", "1", "--metrics", "ais", *_models(twins, inception=False)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other settings" in err and "target_lufs" in err
