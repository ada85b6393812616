"""Bad-input corpus for ``concepts``: bad image files and hostile VLM servers, one case per row.

Each case runs the real stage on one folder (a good image plus the case's file, or one image
for server cases) against a local server on 127.0.0.1, checks the recorded reason of every
image, and that no image is lost: images in == with concepts + filtered + failed, and every
image has its row in ``images/``.
"""

import json
import threading
import time

import pytest
from PIL import Image

import seeing_sound.concepts.backends.openai as openai_backend
from hostile_server import Server, send
from seeing_sound.concepts import VLMSpec, read_concepts, run_concepts
from seeing_sound.testing.data import write_bad_images
from seeing_sound.testing.servers import completion

KEY = "sk-corpus-secret-5a4b3c"
KEY_ENV = "SEEING_SOUND_CORPUS_KEY"
GOOD = "1. Dog - barking\n2. Rain - pattering on a roof"


def ok(h, n):
    send(h, 200, completion(GOOD))


def _image(folder, name="good.png", mode="RGB"):
    Image.new(mode, (40, 30)).save(folder / name)
    return name


# --- image cases: a good image next to the bad one, a well-behaved server -------------------------
def _bad_image(name):
    """A good image plus one of testing.data's bad files (its expected reason comes from there)."""

    def make(folder):
        _image(folder)
        reasons = write_bad_images(folder.parent / "bad")
        (folder / name).write_bytes((folder.parent / "bad" / name).read_bytes())
        return {"good.png": None, name: reasons[name]}

    return make


def cmyk(folder):
    Image.new("CMYK", (40, 30), (0, 255, 0, 0)).save(folder / "cmyk.jpg")
    return {"cmyk.jpg": None}


def sixteen_bit(folder):
    Image.new("I;16", (40, 30)).save(folder / "deep.png")
    return {"deep.png": None}


# --- server cases: one image, the server misbehaves -----------------------------------------------
def one_image(folder):
    _image(folder)
    return None


def rate_limited_once(h, n):
    if n == 1:
        return send(h, 429, b'{"error": {"message": "slow down"}}', {"Retry-After": "0"})
    return ok(h, n)


def always_500(h, n):
    send(h, 500, b"upstream exploded")


def hang(h, n):
    time.sleep(5)


def garbage(h, n):
    send(h, 200, completion("qwv#@!~ zzzz \x00\x07 ßß ???"))


def control_chars(h, n):
    send(h, 200, completion("1. Dog\x07 - barking\x00\n2. Bell\u200b - ringing"))


def refusal(h, n):
    send(h, 200, completion("I'm sorry, I cannot identify any sounds in this image."))


def empty_answer(h, n):
    send(h, 200, completion("   "))


def malformed(h, n):
    send(h, 200, b'{"choices": [ {"message": ')


def redirect(h, n):
    send(h, 307, b"", {"Location": "http://localhost:9/v1/chat/completions"})


def echo_key(h, n):
    send(h, 422, json.dumps({"error": {"message": f"got {h.headers.get('Authorization')}"}}).encode())


def huge(h, n):
    send(h, 200, completion("Dog - barking " * 200_000))


CASES = [
    # (case, folder maker, server behaviour, {image: expected error or None})
    ("zero-byte-image", _bad_image("empty.png"), ok, None),
    ("truncated-jpeg", _bad_image("truncated.jpg"), ok, None),
    ("text-named-jpg", _bad_image("notes.jpg"), ok, None),
    ("decompression-bomb", _bad_image("bomb.png"), ok, None),
    ("cmyk-jpeg", cmyk, ok, None),
    ("16-bit-png", sixteen_bit, ok, None),
    ("http-429-then-ok", one_image, rate_limited_once, {"good.png": None}),
    ("http-500-always", one_image, always_500, {"good.png": "concepts:http-500"}),
    ("hanging-server", one_image, hang, {"good.png": "concepts:timeout"}),
    ("garbage-answer", one_image, garbage, {"good.png": "concepts:unparseable"}),
    ("control-characters", one_image, control_chars, {"good.png": None}),
    ("refusal", one_image, refusal, {"good.png": "concepts:refusal"}),
    ("empty-answer", one_image, empty_answer, {"good.png": "concepts:empty-output"}),
    ("malformed-json", one_image, malformed, {"good.png": "concepts:bad-response"}),
    ("redirect-elsewhere", one_image, redirect, {"good.png": "concepts:http-307"}),
    ("error-echoes-the-key", one_image, echo_key, {"good.png": "concepts:http-422"}),
    ("huge-answer", one_image, huge, {"good.png": "concepts:response-too-large"}),
]


@pytest.mark.parametrize("make,behave,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, monkeypatch, make, behave, expected):
    monkeypatch.setattr(openai_backend, "BACKOFF_BASE_S", 0.01)
    monkeypatch.setenv(KEY_ENV, KEY)
    folder = tmp_path / "imgs"
    folder.mkdir()
    made = make(folder)
    expected = expected or made
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def handle(h):
        with lock:
            n = seen[h.path] = seen.get(h.path, 0) + 1
        behave(h, n)

    with Server(handle) as srv:
        vlm = VLMSpec(
            "openai", "m", base_url=srv.url, api_key_env=KEY_ENV, timeout_s=1.0, max_retries=1,
            max_response_bytes=1 << 20,
        )  # fmt: skip
        report = run_concepts([folder], tmp_path / "out", vlms=[vlm], no_filter=True, captions=False, progress=False)
    concepts, images = read_concepts(tmp_path / "out")
    rows = {r["image_id"]: r for r in images.to_pylist()}
    assert {k: rows[k]["error"] for k in expected} == expected
    assert report.images_in == len(rows) == report.images_with_concepts + report.images_filtered + report.images_failed
    assert all(r["n_concepts"] > 0 for r in rows.values() if r["error"] is None)
    for text in concepts.column("concept").to_pylist():
        assert text.isprintable()  # no control or format characters reach a concept
    stored = b"".join(p.read_bytes() for p in (tmp_path / "out").rglob("*.parquet"))
    assert KEY.encode() not in stored
