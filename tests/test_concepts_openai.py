"""OpenAI-compatible back end against a real HTTP server on 127.0.0.1 (started and stopped here)."""

import base64
import io
import logging
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

import seeing_sound.concepts.backends.openai as openai_backend
import seeing_sound.concepts.image_payload as image_payload
from hostile_server import clear_proxy_env
from seeing_sound.concepts import CAPTION_PROMPT, CONCEPT_PROMPT, VLMRequest, VLMSpec, read_concepts, run_concepts
from seeing_sound.concepts.backends import clear_backend_cache
from seeing_sound.concepts.backends.openai import OpenAIBackend, parse_retry_after
from seeing_sound.errors import SeeingSoundError
from seeing_sound.testing.servers import ChatCompletionsServer, completion

SKIMAGE = Path(pytest.importorskip("skimage").__file__).parent / "data"
ANSWER = "Sure! Here they are:\n1. Cat - purring softly\n2. Sofa - creaking\nHope this helps."


def respond(body, n):
    """Behaviour chosen by the requested model name; ``n`` counts repeats of the same request."""
    model = body["model"]
    prompt = body["messages"][0]["content"][0]["text"]
    text = "A cat lying on a sofa." if prompt == CAPTION_PROMPT else ANSWER
    ok = (200, {}, completion(text, model), 0.0)
    if model == "flaky-429" and n == 1:
        return 429, {"Retry-After": "1"}, b'{"error": {"message": "rate limited"}}', 0.0
    if model == "flaky-500" and n <= 2:
        return 500, {}, b"upstream exploded", 0.0
    if model == "slow":
        return 200, {}, completion(text), 1.5
    if model == "malformed":
        return 200, {}, b'{"choices": [ {"message": ', 0.0
    if model == "no-choices":
        return 200, {}, b'{"object": "chat.completion"}', 0.0
    if model == "auth":
        return 401, {}, b'{"error": {"message": "invalid api key"}}', 0.0
    if model == "too-big":
        return 400, {}, b'{"error": {"message": "image too large"}}', 0.0
    if model == "paced":
        return 200, {}, completion(text), 0.2
    return ok


@pytest.fixture(autouse=True)
def _direct(monkeypatch):
    clear_proxy_env(monkeypatch)  # a proxy in the developer's environment would stand between us and 127.0.0.1


@pytest.fixture
def server():
    with ChatCompletionsServer(respond) as srv:
        yield srv
    clear_backend_cache()


def _request(i=0):
    return VLMRequest(
        f"img{i}.png", f"img{i}.png", Image.new("RGB", (32, 24), (i * 20, 0, 0)), CONCEPT_PROMPT + " " * i
    )


def _backend(server, model, sleeps=None, **kw):
    spec = VLMSpec("openai", model, base_url=server.url, api_key_env="SEEING_SOUND_TEST_KEY", **kw)
    return OpenAIBackend(spec, sleep=(sleeps.append if sleeps is not None else time.sleep))


def test_request_shape_auth_and_key_never_logged(server, monkeypatch, caplog):
    monkeypatch.setenv("SEEING_SOUND_TEST_KEY", "sk-very-secret-42")
    caplog.set_level(logging.DEBUG)
    [[gen]] = _backend(server, "ok", max_new_tokens=77).generate([_request()], "concepts")
    assert gen.error is None and gen.text == ANSWER and gen.model == "ok"
    headers, body = server.requests[0]
    assert headers["Authorization"] == "Bearer sk-very-secret-42"
    assert body["model"] == "ok" and body["max_tokens"] == 77 and body["temperature"] == 0
    text_part, image_part = body["messages"][0]["content"]
    assert text_part == {"type": "text", "text": CONCEPT_PROMPT}
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (32, 24)
    assert "sk-very-secret-42" not in caplog.text


def test_429_honours_retry_after(server):
    sleeps = []
    [[gen]] = _backend(server, "flaky-429", sleeps).generate([_request()], "concepts")
    assert gen.error is None and len(server.requests) == 2
    assert sleeps == [1.0]  # max(backoff 1 s, Retry-After 1 s)


def test_500_retries_with_exponential_backoff(server):
    sleeps = []
    [[gen]] = _backend(server, "flaky-500", sleeps).generate([_request()], "concepts")
    assert gen.error is None and len(server.requests) == 3
    assert sleeps == [1.0, 2.0]


def test_timeout_becomes_an_error_record_after_retries(server):
    sleeps = []
    t0 = time.perf_counter()
    [[gen]] = _backend(server, "slow", sleeps, timeout_s=0.3, max_retries=2).generate([_request()], "concepts")
    assert time.perf_counter() - t0 < 3.0  # three attempts of ~0.3 s, not three of 1.5 s
    assert gen.text is None and gen.error == "timeout" and "after 3 attempts" in gen.detail
    assert sleeps == [1.0, 2.0]


@pytest.mark.parametrize("model", ["malformed", "no-choices"])
def test_malformed_json_is_retried_then_recorded(server, model):
    [[gen]] = _backend(server, model, [], max_retries=1).generate([_request()], "concepts")
    assert gen.error == "bad-response" and len(server.requests) == 2


def test_client_error_is_recorded_without_retry(server):
    sleeps = []
    [[gen]] = _backend(server, "too-big", sleeps).generate([_request()], "concepts")
    assert gen.error == "http-400" and "image too large" in gen.detail and sleeps == [] and len(server.requests) == 1


def test_auth_failure_stops_the_run(server):
    with pytest.raises(SeeingSoundError, match=r"HTTP 401.*invalid api key"):
        _backend(server, "auth").generate([_request()], "concepts")


def test_unreachable_server_is_a_connection_error():
    spec = VLMSpec("openai", "x", base_url="http://127.0.0.1:9/v1", max_retries=1)
    sleeps = []
    [[gen]] = OpenAIBackend(spec, sleep=sleeps.append).generate([_request()], "concepts")
    assert gen.error == "connection-error" and sleeps == [1.0]


def test_concurrency_is_bounded_and_order_kept(server):
    gens = _backend(server, "paced", concurrency=2).generate([_request(i) for i in range(6)], "concepts")
    assert server.max_in_flight == 2
    assert [g[0].text for g in gens] == [ANSWER] * 6


def test_retry_after_parsing():
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0 + 1e-9  # a past date: no wait


def test_run_concepts_end_to_end(server, tmp_path, monkeypatch):
    monkeypatch.setattr(openai_backend, "BACKOFF_BASE_S", 0.01)
    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        shutil.copy(SKIMAGE / name, images / name)
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    vlms = [
        VLMSpec("openai", "flaky-500", base_url=server.url, max_retries=3),
        VLMSpec("openai", "slow", base_url=server.url, timeout_s=0.2, max_retries=0),
    ]
    report = run_concepts([images], tmp_path / "out", vlms=vlms, progress=False, max_side=128)
    concepts, table = read_concepts(tmp_path / "out")
    assert report.images_in == 4 and report.images_with_concepts == 3 and report.failed == {"not-an-image": 1}
    assert report.model_failures == {"slow|concepts:timeout": 3}
    rows = concepts.to_pylist()
    assert [(r["image_id"], r["concept_index"], r["object"]) for r in rows] == [
        (i, k, o) for i in ("chelsea.png", "coffee.png", "rocket.jpg") for k, o in enumerate(["Cat", "Sofa"])
    ]
    assert {r["model"] for r in rows} == {"flaky-500"} and rows[0]["raw_text"] == ANSWER
    by_id = {r["image_id"]: r for r in table.to_pylist()}
    assert by_id["coffee.png"]["caption"] == "A cat lying on a sofa." and by_id["coffee.png"]["error"] is None
    assert by_id["coffee.png"]["failures"][0]["reason"] == "timeout"  # the other model's failure is kept
    prompts = {b["messages"][0]["content"][0]["text"] for _, b in server.requests}
    assert prompts == {CAPTION_PROMPT, CONCEPT_PROMPT}  # the paper's prompts, verbatim


# -- keep-alive connections and JPEG passthrough ------------------------------------------------


def _sent_image(body) -> bytes:
    url = body["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    return base64.b64decode(url.split(",", 1)[1])


def test_one_keep_alive_connection_per_worker_thread():
    with ChatCompletionsServer(respond, keep_alive=True) as srv:
        out = _backend(srv, "ok", concurrency=1).generate([_request(i) for i in range(6)], "concepts")
        assert [g.error for [g] in out] == [None] * 6
        assert srv.connections == 1
        out = _backend(srv, "ok", concurrency=3).generate([_request(i) for i in range(9)], "concepts")
        assert [g.error for [g] in out] == [None] * 9 and srv.connections <= 1 + 3


def test_reconnects_when_the_server_closes_a_kept_connection():
    with ChatCompletionsServer(respond, keep_alive=True, close_after=1) as srv:
        out = _backend(srv, "ok", concurrency=1, max_retries=0).generate([_request(i) for i in range(5)], "concepts")
        assert [g.error for [g] in out] == [None] * 5  # the closed connection is replaced, not an error
        assert srv.connections == 5 and len(srv.requests) == 5


def test_timed_out_keep_alive_connection_is_not_reused():
    with ChatCompletionsServer(respond, keep_alive=True) as srv:
        backend = _backend(srv, "slow", timeout_s=0.3, max_retries=0)
        assert backend.complete(_request()).error == "timeout"
        backend.spec = VLMSpec("openai", "ok", base_url=srv.url, api_key_env="SEEING_SOUND_TEST_KEY")
        assert backend.complete(_request()).text is not None  # a fresh connection: no late answer read
        assert srv.connections == 2


def _jpeg(size, **save) -> bytes:
    buf = io.BytesIO()
    Image.open(SKIMAGE / "astronaut.png").convert("RGB").resize(size).save(buf, format="JPEG", quality=85, **save)
    return buf.getvalue()


def _cmyk_jpeg(size) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(_jpeg(size))).convert("CMYK").save(buf, format="JPEG")
    return buf.getvalue()


def test_jpeg_within_max_side_is_sent_as_its_own_bytes(server):
    from seeing_sound.concepts.images import decode_rgb

    data = _jpeg((320, 240))
    decoded, _, _ = decode_rgb(data, max_side=1024, max_pixels=1 << 26)
    assert decoded.info[image_payload.SOURCE_BYTES] == data  # the decoder keeps the file for the back end
    backend = _backend(server, "ok")
    for image in (data, decoded):
        backend.generate([VLMRequest("a", "a.jpg", image, CONCEPT_PROMPT)], "concepts")
        assert _sent_image(server.requests[-1][1]) == data  # byte-identical: no decode, no re-encode


def test_other_images_are_decoded_and_re_encoded(server):
    from seeing_sound.concepts.images import decode_rgb

    png = io.BytesIO()
    Image.open(SKIMAGE / "astronaut.png").resize((64, 64)).save(png, format="PNG")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: the model must see it upright
    big = _jpeg((1500, 1000))
    small_of_big, _, _ = decode_rgb(big, max_side=400, max_pixels=1 << 26)
    small_of_big.info[image_payload.SOURCE_BYTES] = big  # source kept, but the pixels were downscaled
    cases = [
        (png.getvalue(), (64, 64)),
        (big, (1024, 683)),
        (_jpeg((200, 100), exif=exif.tobytes()), (100, 200)),
        (_cmyk_jpeg((80, 60)), (80, 60)),
        (small_of_big, (400, 267)),
    ]
    backend = _backend(server, "ok")
    for image, size in cases:
        backend.generate([VLMRequest("a", "a", image, CONCEPT_PROMPT)], "concepts")
        sent = _sent_image(server.requests[-1][1])
        assert sent != (image if isinstance(image, bytes) else big)
        with Image.open(io.BytesIO(sent)) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == size
    assert not image_payload.jpeg_as_is(b"\xff\xd8\xff" + b"\x00" * 10)  # a broken header is not trusted


def test_run_concepts_sends_fitting_jpeg_files_as_they_are(server, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    small, big = _jpeg((320, 240)), _jpeg((1500, 1000))
    (images / "small.jpg").write_bytes(small)
    (images / "big.jpg").write_bytes(big)
    vlm = VLMSpec("openai", "ok", base_url=server.url, api_key_env="SEEING_SOUND_TEST_KEY")
    run_concepts([images], tmp_path / "out", vlms=[vlm], progress=False, max_side=1024)
    sent = [_sent_image(body) for _, body in server.requests]
    assert sent.count(small) == 2  # caption and concepts: the file itself, twice
    assert big not in sent and len(sent) == 4  # downscaled to max_side: re-encoded


def test_a_kept_connection_reset_after_the_answer_began_is_not_sent_again_at_once():
    """Only a failure before any status line proves the server never saw the request."""
    import socket
    import struct
    import threading

    seen = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        with conn:
            for n in (1, 2):
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(
                    next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                seen.append(n)
                payload = completion(ANSWER)
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                conn.sendall(head % len(payload) + (payload if n == 1 else payload[:5]))  # the second: cut short
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    try:
        backend = OpenAIBackend(VLMSpec("openai", "ok", base_url=url, max_retries=0, timeout_s=5, concurrency=1))
        out = backend.generate([_request(0), _request(1)], "concepts")
    finally:
        listener.close()
    assert out[0][0].error is None and out[1][0].error == "connection-error"
    assert seen == [1, 2]  # the half-answered request was not silently sent a third time
