"""transformers back end on a tiny random LLaVA built here, saved, and loaded through the real loader.

The generated text is noise; what is checked is loading, the chat template, batching with left
padding, and that every answer is routed through the parser into records.
"""

import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from seeing_sound.concepts import CONCEPT_PROMPT, VLMSpec, parse_concepts, read_concepts, run_concepts
from seeing_sound.concepts.backends import VLMRequest, clear_backend_cache, get_backend
from seeing_sound.errors import ModelNotFoundError, SeeingSoundError
from seeing_sound.testing.models import build_tiny_llava

SKIMAGE = Path(pytest.importorskip("skimage").__file__).parent / "data"
PHOTOS = ("chelsea.png", "coffee.png", "logo.png")


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    path = build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))
    yield str(path)
    clear_backend_cache()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        shutil.copy(SKIMAGE / name, root / name)
    return root


def _requests():
    from PIL import Image

    return [
        VLMRequest(n, n, Image.open(SKIMAGE / n).convert("RGB"), CONCEPT_PROMPT + (" Be brief." if i % 2 else ""))
        for i, n in enumerate(PHOTOS[:3])
    ]


def test_batched_generation_matches_one_by_one(tiny_llava):
    one = get_backend(VLMSpec("transformers", tiny_llava, max_new_tokens=6, batch_size=1))
    many = get_backend(VLMSpec("transformers", tiny_llava, max_new_tokens=6, batch_size=3))
    a, b = one.generate(_requests(), "concepts"), many.generate(_requests(), "concepts")
    assert [g[0].text for g in a] == [g[0].text for g in b]  # left padding does not change greedy output
    assert all(g[0].error is None and g[0].model == tiny_llava for g in a)


def test_chat_template_and_left_padding_reach_generate(tiny_llava, monkeypatch):
    backend = get_backend(VLMSpec("transformers", tiny_llava, max_new_tokens=4, batch_size=3))
    seen = {}
    real = backend.model.generate

    def spy(**inputs):
        seen.update(inputs)
        return real(**inputs)

    monkeypatch.setattr(backend.model, "generate", spy)
    backend.generate(_requests(), "concepts")
    tok = backend.processor.tokenizer
    texts = tok.batch_decode(seen["input_ids"], skip_special_tokens=False)
    assert seen["do_sample"] is False and seen["max_new_tokens"] == 4 and seen["pixel_values"].shape[0] == 3
    for t in texts:
        assert "USER: <image>" in t and CONCEPT_PROMPT in t and t.endswith(" ASSISTANT:")
    assert seen["input_ids"][0, 0] == tok.pad_token_id and seen["input_ids"][1, -1] != tok.pad_token_id  # left-padded


def test_run_concepts_routes_answers_to_parser_and_records(tiny_llava, photos, tmp_path):
    vlms = [
        VLMSpec("transformers", tiny_llava, name="llava-a", max_new_tokens=8, batch_size=2),
        VLMSpec("transformers", tiny_llava, name="llava-b", max_new_tokens=4, batch_size=4),
    ]
    report = run_concepts([photos], tmp_path / "out", vlms=vlms, progress=False, shard_size=2, no_filter=True)
    concepts, images = read_concepts(tmp_path / "out")
    assert report.images_in == len(PHOTOS) and images.num_rows == len(PHOTOS)
    assert report.images_with_concepts + report.images_failed == len(PHOTOS)
    for img in images.to_pylist():
        assert img["caption"] and img["caption_model"] == "llava-a"
        rows = [r for r in concepts.to_pylist() if r["image_id"] == img["image_id"]]
        assert [r["concept_index"] for r in rows] == list(range(len(rows))) == list(range(img["n_concepts"]))
        for model in ("llava-a", "llava-b"):
            mine = [r for r in rows if r["model"] == model]
            if mine:  # the records are exactly what the parser makes of the raw answer
                parsed = parse_concepts(mine[0]["raw_text"])
                assert [r["concept"] for r in mine] == [c.text for c in parsed.concepts]
        if rows:
            assert [r["model"] for r in rows] == sorted(r["model"] for r in rows)  # --vlm order


def test_missing_model_and_remote_code_are_clear_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="vlm='transformers:PATH'"):
        get_backend(VLMSpec("transformers", str(tmp_path / "no" / "such" / "model")))
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(
        '{"model_type": "custom_vlm", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}'
    )
    (remote / "configuration_custom.py").write_text("raise RuntimeError('remote code ran')\n")
    with pytest.raises(SeeingSoundError, match="--trust-remote-code"):
        get_backend(VLMSpec("transformers", str(remote)))
