"""The VLM families users pick, as tiny twins laid out like their hub repos, through `seeing-sound concepts`.

Every twin (seeing_sound.testing.vlm_twins) has its real repo's config keys, processor files, chat
template file and tokenizer files; only the sizes are tiny. Each runs through the CLI entry point
on photos of different sizes: every image gets a row, and in float32 the answers at batch size 4
(left-padded, mixed image sizes) are exactly the answers one image at a time.
"""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from seeing_sound.cli import main
from seeing_sound.concepts import VLMSpec, read_concepts
from seeing_sound.concepts.backends import clear_backend_cache, get_backend
from seeing_sound.concepts.backends.transformers import image_only_processor, install_hint, missing_package
from seeing_sound.errors import SeeingSoundError
from seeing_sound.testing.vlm_twins import BUILDERS, build_llava15, build_qwen2_vl, build_smolvlm

SKIMAGE = Path(pytest.importorskip("skimage").__file__).parent / "data"
PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "camera.png")  # 451x300, 600x400, 640x427, 512x512 (grey)
# LLaVA-NeXT's hub template writes '<\\s>' (sic), which jinja2 reads as an invalid escape.
pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
TORCHVISION_ERROR = ImportError(
    "\nQwen2VLVideoProcessor requires the Torchvision library but it was not found in your environment."
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        shutil.copy(SKIMAGE / name, root / name)
    return root


@pytest.fixture(autouse=True)
def _fresh_backends():
    yield
    clear_backend_cache()


def _run(photos, twin, out, *extra):
    argv = ["concepts", str(photos), "--out", str(out), "--vlm", f"transformers:{twin}", "--max-new-tokens", "8"]
    return main([*argv, "--no-filter", "--dtype", "float32", "--quiet", *extra])


def _answers(out) -> dict:
    """image id -> (caption, every raw answer with its model and task, concept texts)."""
    concepts, images = read_concepts(out)
    rows = concepts.to_pylist()
    result = {}
    for img in images.to_pylist():
        mine = [r for r in rows if r["image_id"] == img["image_id"]]
        raw = {r["raw_text"] for r in mine} | {f["raw_text"] for f in img["failures"] or [] if f["raw_text"]}
        result[img["image_id"]] = (img["caption"], sorted(raw), [r["concept"] for r in mine], img["error"])
    return result


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_family_runs_through_the_cli_and_batches_exactly(family, photos, tmp_path, capsys):
    twin = BUILDERS[family](tmp_path / family)
    assert _run(photos, twin, tmp_path / "b4", "--batch-size", "4") == 0, capsys.readouterr().err
    assert _run(photos, twin, tmp_path / "b1", "--batch-size", "1") == 0, capsys.readouterr().err
    batched, single = _answers(tmp_path / "b4"), _answers(tmp_path / "b1")
    assert sorted(batched) == sorted(PHOTOS)  # every image has its row
    assert all(caption for caption, *_ in batched.values())
    assert batched == single  # fp32: left padding and batch neighbours change nothing
    # the twin is not degenerate: answers depend on the image, so a mix-up inside a batch would show
    assert len({caption for caption, *_ in batched.values()}) > 1
    card = json.loads((tmp_path / "b4" / "concepts.json").read_text())
    assert card["vlms"][0]["batch_size"] == 4 and card["vlms"][0]["dtype"] == "float32"
    assert card["runs_settings"] == [card["vlms"]] and card["images_in"] == len(PHOTOS) and card["complete"]


def test_twins_keep_the_hub_layout(tmp_path):
    qwen = json.loads((build_qwen2_vl(tmp_path / "q") / "config.json").read_text())
    assert qwen["architectures"] == ["Qwen2VLForConditionalGeneration"] and qwen["model_type"] == "qwen2_vl"
    assert "text_config" not in qwen and qwen["rope_scaling"]["type"] == "mrope"  # the legacy flat layout
    files = {p.name for p in (tmp_path / "q").iterdir()}
    assert {"chat_template.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json",
            "vocab.json", "merges.txt", "generation_config.json", "model.safetensors.index.json"} <= files  # fmt: skip
    assert "processor_config.json" not in files  # Qwen2-VL-2B-Instruct has none
    tok = json.loads((tmp_path / "q" / "tokenizer_config.json").read_text())
    assert tok["tokenizer_class"] == "Qwen2Tokenizer" and "chat_template" in tok
    smol = json.loads((build_smolvlm(tmp_path / "s") / "preprocessor_config.json").read_text())
    assert smol["image_processor_type"] == "Idefics3ImageProcessor" and smol["do_image_splitting"] is True


@pytest.mark.skipif(HAS_TORCHVISION, reason="torchvision is installed: AutoProcessor loads the video part itself")
@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_processors_load_image_only_without_torchvision(family, tmp_path):
    backend = get_backend(VLMSpec("transformers", str(BUILDERS[family](tmp_path / family))))
    processor = backend.processor
    assert "video_processor" not in processor.get_attributes() and not hasattr(processor, "video_processor")
    assert type(processor).__name__ in ("Qwen2VLProcessor", "Qwen2_5_VLProcessor") and processor.chat_template


def test_image_only_processor_handles_the_video_slot_anywhere(tmp_path):
    """LLaVA-NeXT-Video's processor takes (video_processor, image_processor, tokenizer): the slot first."""
    from transformers import AutoConfig, LlavaNextVideoConfig

    twin = BUILDERS["llava_next"](tmp_path / "next")
    base = AutoConfig.from_pretrained(twin)
    config = LlavaNextVideoConfig(
        text_config=base.text_config, vision_config=base.vision_config, image_grid_pinpoints=base.image_grid_pinpoints
    )
    processor = image_only_processor(str(twin), config)
    assert type(processor).__name__ == "LlavaNextVideoProcessor" and processor.get_attributes() == [
        "image_processor",
        "tokenizer",
    ]
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == base.image_token_index
    assert processor.patch_size == 14 and processor.chat_template  # processor_config.json and chat template read
    assert image_only_processor(str(twin), base) is None  # LLaVA-NeXT has no video part


def test_forced_torchvision_failure_takes_the_image_only_path(tmp_path, monkeypatch):
    """With torchvision installed too, the image-only path gives the same answers as the full processor."""
    import transformers
    from PIL import Image

    from seeing_sound.concepts import CONCEPT_PROMPT
    from seeing_sound.concepts.backends import VLMRequest

    twin = str(build_qwen2_vl(tmp_path / "q"))

    requests = [VLMRequest(n, n, Image.open(SKIMAGE / n).convert("RGB"), CONCEPT_PROMPT) for n in PHOTOS[:2]]
    spec = VLMSpec("transformers", twin, max_new_tokens=6, batch_size=2)
    expected = None
    if HAS_TORCHVISION:
        expected = [g[0].text for g in get_backend(spec).generate(requests, "concepts")]
        clear_backend_cache()

    def refuse(*args, **kwargs):
        raise TORCHVISION_ERROR

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", refuse)
    backend = get_backend(spec)
    answers = [g[0].text for g in backend.generate(requests, "concepts")]
    assert all(a is not None for a in answers) and not hasattr(backend.processor, "video_processor")
    if expected is not None:
        assert answers == expected


def test_missing_package_is_one_line_naming_it(photos, tmp_path, monkeypatch, capsys):
    import transformers

    def refuse(*args, **kwargs):
        raise TORCHVISION_ERROR

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", refuse)
    twin = build_llava15(tmp_path / "llava")  # no video processor to leave out: torchvision is really needed
    capsys.readouterr()
    assert _run(photos, twin, tmp_path / "out") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs torchvision" in err and "pip install torch==" in err
    assert "torchvision==0." in err and "Traceback" not in err


def test_missing_package_names_and_hints():
    assert missing_package(TORCHVISION_ERROR) == "torchvision"
    assert missing_package(ModuleNotFoundError("No module named 'timm.layers'", name="timm.layers")) == "timm"
    assert missing_package(ImportError("something else")) is None
    import torch

    hint = install_hint("torchvision")
    minor = int(torch.__version__.split(".")[1])
    assert f"torch=={torch.__version__.split('+')[0]}" in hint and f"torchvision==0.{minor + 15}.*" in hint
    if "+cpu" in torch.__version__:
        assert "--index-url https://download.pytorch.org/whl/cpu" in hint
    assert install_hint("einops") == "pip install einops"


@pytest.mark.parametrize("builder", [build_llava15, build_smolvlm])
def test_chat_template_only_in_tokenizer_config_is_used(builder, tmp_path):
    twin = builder(tmp_path / "t", chat_template="tokenizer")
    assert not (twin / "chat_template.json").exists()
    backend = get_backend(VLMSpec("transformers", str(twin), max_new_tokens=4))
    assert backend.processor.chat_template == backend.processor.tokenizer.chat_template
    from PIL import Image

    from seeing_sound.concepts.backends import VLMRequest

    request = VLMRequest("c", "c", Image.open(SKIMAGE / "chelsea.png").convert("RGB"), "Name a sound.")
    assert backend.generate([request], "concepts")[0][0].text is not None


def test_no_template_or_an_image_blind_one_is_a_clear_error(tmp_path):
    bare = build_llava15(tmp_path / "bare", chat_template="none")
    with pytest.raises(SeeingSoundError, match=r"no chat template .*openai:MODEL back end"):
        get_backend(VLMSpec("transformers", str(bare)))
    clear_backend_cache()
    blind = build_llava15(tmp_path / "blind", chat_template="none")
    cfg = json.loads((blind / "tokenizer_config.json").read_text())
    cfg["chat_template"] = "{% for m in messages %}USER: {{ m['content'][-1]['text'] }}{% endfor %} ASSISTANT:"
    (blind / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(SeeingSoundError, match="drops the image"):
        get_backend(VLMSpec("transformers", str(blind)))
