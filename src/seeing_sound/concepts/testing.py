"""Tiny twins for tests, benchmarks and demos: a random LLaVA, bad image files, and a local
OpenAI-compatible chat-completions server. Nothing here downloads anything.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

# LLaVA-1.5's conversation format, as a chat template the processor applies.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% else %} ASSISTANT: {% for part in message['content'] %}{{ part['text'] }}{% endfor %}</s>{% endif %}"
    "{% endfor %}{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)
_CORPUS = [
    "USER: As a numbered list, provide one to up to three sound(s) associated with prominent objects",
    "visible and present in the image. Provide the objects followed by their associated sound ASSISTANT:",
    "1. Dog - barking loudly 2. Birds - chirping 3. Water: splashing. A cat, a logo, a sign.",
    "Provide a short and concise description of the following image.",
]


def build_tiny_llava(path: str | Path, *, seed: int = 0, image_size: int = 28) -> Path:
    """Save a random LLaVA (tiny Llama + tiny CLIP vision tower) with tokenizer, processor and chat
    template to ``path``, loadable by ``AutoProcessor``/``AutoModelForImageTextToText``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    path = Path(path)
    specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(_CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
    )  # fmt: skip
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
        vision_feature_select_strategy="default", chat_template=LLAVA_CHAT_TEMPLATE, num_additional_image_tokens=1,
    )  # fmt: skip
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=image_size,
        patch_size=14, projection_dim=32,
    )  # fmt: skip
    config = LlavaConfig(
        text_config=text, vision_config=vision, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default", vision_feature_layer=-1, projector_hidden_act="gelu",
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def write_bad_images(folder: str | Path) -> dict[str, str]:
    """Write files that must be recorded as failures; returns {relative path: expected reason}."""
    import io
    import zlib

    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is a text file, not a JPEG\n")
    # A valid 1x1 PNG whose header claims 100000 x 100000 pixels: a decompression bomb.
    png = io.BytesIO()
    Image.new("L", (1, 1)).save(png, format="PNG")
    data = bytearray(png.getvalue())
    data[16:24] = (100_000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    (folder / "bomb.png").write_bytes(bytes(data))
    return {"truncated.jpg": "truncated", "empty.png": "empty-file", "notes.jpg": "not-an-image", "bomb.png": "decompression-bomb"}


class ChatCompletionsServer:
    """A real HTTP server on 127.0.0.1 speaking the chat-completions protocol, for tests.

    ``respond(body, n) -> (status, headers, payload_bytes, delay_s)`` decides each answer; ``n``
    counts requests so far for the same (model, prompt, image). Use as a context manager.
    """

    def __init__(self, respond: Callable[[dict, int], tuple[int, dict, bytes, float]]):
        self.respond = respond
        self.requests: list[tuple[dict, dict]] = []  # (headers, body)
        self._seen: dict[str, int] = {}
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                key = json.dumps(body.get("messages"), sort_keys=True) + str(body.get("model"))
                with outer._lock:
                    outer.requests.append((dict(self.headers), body))
                    n = outer._seen[key] = outer._seen.get(key, 0) + 1
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                status, headers, payload, delay = outer.respond(body, n)
                if delay:
                    time.sleep(delay)
                with outer._lock:
                    outer.in_flight -= 1
                try:
                    self.send_response(status)
                    for k, v in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): that is the point of slow answers

            def log_message(self, *args):  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "ChatCompletionsServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def completion(text: str, model: str = "test") -> bytes:
    """A minimal chat-completions response body."""
    return json.dumps(
        {"id": "cmpl-test", "object": "chat.completion", "model": model,
         "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
    ).encode()  # fmt: skip
