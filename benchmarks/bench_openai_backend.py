"""The OpenAI-compatible VLM back end at server speed: requests/s vs concurrency, client CPU per request.

A tiny chat-completions server runs in a *separate process* on 127.0.0.1 (a threading HTTP server
answering every POST with a fixed short completion after ``latency`` seconds), so this process's
CPU time is the client's alone. The back end is driven through its public API only:
``get_backend(VLMSpec(kind="openai", base_url=..., concurrency=c)).generate(requests, "concepts")``.
Each setting sends a fixed number of requests and stops (bounded); the table gives requests/s,
the share of the ideal (``c / latency`` with latency, else the zero-latency c=1 rate as baseline)
and client CPU ms per request, split into the part that is the image's JPEG + base64 encoding
(``image_jpeg_base64``, measured alone) and the rest (HTTP, JSON, threads). Goal: <= 1 ms of CPU
per request. Two image inputs: ``pil`` (a decoded image, re-encoded per request: the in-run
baseline) and ``jpeg`` (a JPEG source within max side, sent as its own bytes). Proxy variables
(``HTTP_PROXY``, ``ALL_PROXY``, ...) are dropped from this process's environment: the client talks
to the local server directly.

Usage: python benchmarks/bench_openai_backend.py [--small] [--image-side 336] [--latencies 0 0.2] [--images pil jpeg]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import table

SERVER = r"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
latency = float(sys.argv[2])
answer = json.dumps({"choices": [{"message": {"role": "assistant", "content": "dog, grass, wind"}}]}).encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as uvicorn (vLLM) does: headers and body not held for an ACK
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if latency:
            time.sleep(latency)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *a):
        pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 256
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"bench server on port {port} did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="concurrency 1 and 4, 32 requests, latency 0 and 50 ms")
    ap.add_argument("--latencies", type=float, nargs="+", default=None, help="seconds (default 0 0.2)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=None, help="default 1 2 4 8 16 32 64")
    ap.add_argument("--image-side", type=int, default=336, help="LLaVA-1.5 sees 336 px")
    ap.add_argument("--requests", type=int, default=None, help="requests per zero-latency setting (default 192)")
    ap.add_argument("--images", nargs="+", default=["pil", "jpeg"], choices=["pil", "jpeg"])
    args = ap.parse_args()
    args.latencies = args.latencies or ([0.0, 0.05] if args.small else [0.0, 0.2])
    args.concurrency = args.concurrency or ([1, 4] if args.small else [1, 2, 4, 8, 16, 32, 64])
    args.requests = args.requests or (32 if args.small else 192)
    for name in [n for n in os.environ if n.lower() in ("http_proxy", "https_proxy", "all_proxy")]:
        del os.environ[name]  # a proxy in the environment would stand between the client and 127.0.0.1

    import io

    import numpy as np
    from PIL import Image

    from seeing_sound.concepts.backends import VLMRequest, VLMSpec, get_backend
    from seeing_sound.concepts.image_payload import SOURCE_BYTES, image_jpeg_base64

    rng = np.random.default_rng(0)
    pil = Image.fromarray(rng.integers(0, 255, (args.image_side, args.image_side, 3), dtype=np.uint8))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=90)
    jpeg = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")  # as the concepts stage decodes it
    jpeg.info[SOURCE_BYTES] = buf.getvalue()
    images = {"pil": pil, "jpeg": jpeg}
    image_ms = {}
    for kind, image in images.items():
        c0 = time.process_time()
        for _ in range(50):
            image_jpeg_base64(image)
        image_ms[kind] = (time.process_time() - c0) / 50 * 1e3

    rows = []
    for latency, kind in [(lat, k) for lat in args.latencies for k in args.images]:
        image = images[kind]
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(latency)])
        try:
            wait_for(port)
            base_rate = None
            for c in args.concurrency:
                n = args.requests if latency == 0 else max(4 * c, 16)
                reqs = [VLMRequest(f"img{i}", f"img{i}.jpg", image, "List the sounding objects.") for i in range(n)]
                spec = VLMSpec(kind="openai", model="bench", base_url=f"http://127.0.0.1:{port}/v1", concurrency=c)
                backend = get_backend(spec)
                backend.generate(reqs[: min(n, c)], "concepts")  # warm-up: threads, imports
                t0, c0 = time.perf_counter(), time.process_time()
                out = backend.generate(reqs, "concepts")
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                errors = sum(1 for g in out if g[0].error)
                rate = n / wall
                base_rate = base_rate or rate
                ideal = c / latency if latency else base_rate
                cpu_ms = cpu / n * 1e3
                rows.append(
                    {
                        "latency ms": int(latency * 1000),
                        "image": kind,
                        "concurrency": c,
                        "requests": n,
                        "errors": errors,
                        "req/s": rate,
                        "of ideal": rate / ideal,
                        "client CPU ms/req": cpu_ms,
                        "of which image": min(image_ms[kind], cpu_ms),
                        "rest ms/req": cpu_ms - image_ms[kind],
                    }
                )
        finally:
            server.terminate()
            server.wait(timeout=10)
    title = (
        f"OpenAI back end vs a local server ({args.image_side}² image; image to base64: pil {image_ms['pil']:.2f} ms, "
        f"jpeg {image_ms['jpeg']:.2f} ms CPU; ideal = concurrency / latency, or the c=1 rate at zero latency)"
    )
    print(table(rows, title))


if __name__ == "__main__":
    main()
