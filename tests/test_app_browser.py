"""seeing-sound app: the session logic on a tiny model, and the real UI driven in headless Chromium."""

import os
import shutil
import socket

import numpy as np
import pytest

from seeing_sound.testing.models import build_tiny_pipeline
from seeing_sound.testing.signals import noise, tone, write_audio

SR = 16000
CHROMIUM = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_pixart_dir, tiny_ast_dir):
    root = tmp_path_factory.mktemp("app")
    build_tiny_pipeline(root / "run" / "pipeline", tiny_pixart_dir, tiny_ast_dir)
    write_audio(root / "dog.wav", noise(2, 44100, amp=0.2, seed=1, channels=2), 44100)
    write_audio(root / "bell.wav", tone(1, SR, freq=880, amp=0.3), SR)
    return root


def test_session_composes_and_generates(tiny_run):
    from seeing_sound.app import AppConfig, AppSession

    s = AppSession(tiny_run / "run", AppConfig(device="cpu"))
    a, b = s.source(str(tiny_run / "dog.wav"), None), s.source(str(tiny_run / "bell.wav"), None)
    assert a[0] == "dog.wav" and a[1].size == 2 * SR and s.source(None, None) is None
    m, prompt, measured = s.compose([a, b], [-20.0, -30.0])
    assert measured["tracks_lufs"] == pytest.approx([-20.0, -30.0], abs=0.05) and prompt.size == 2 * SR
    m, prompt, _ = s.compose([a, b], [-23.0, -23.0], "concatenate", "church (RT60 3.5 s)")
    assert m.space.rt60_s == 3.5 and prompt.size > 3 * SR and m.tracks[1].offset_s == 2.0
    res = s.run([a, b], [-23.0, -26.0], steps=2, seed=3)
    assert res.image.size[0] > 0 and res.recipe["inference_loudness"]["target_lufs"] == -23.0
    again = s.run([a, b], [-23.0, -26.0], steps=2, seed=3)
    assert np.array_equal(np.asarray(res.image), np.asarray(again.image))
    with pytest.raises(ValueError, match="at least one source"):
        s.compose([], [])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_app_in_headless_chromium(tiny_run, tmp_path, monkeypatch):
    pytest.importorskip("gradio", reason="install the [app] extra (gradio)")
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright to drive Chromium")
    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium); the browser check did not run")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    from seeing_sound.app import AppConfig
    from seeing_sound.app.ui import launch

    port = _free_port()
    demo = launch(tiny_run / "run", AppConfig(device="cpu", port=port), block=False)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1200, "height": 1400})
            local = f"http://127.0.0.1:{port}"
            # offline: anything not served by the app (web fonts, CDNs) is refused at once
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(local) else r.abort())
            page.goto(f"{local}/", wait_until="domcontentloaded", timeout=60_000)
            page.locator("#generate").wait_for(state="visible", timeout=60_000)
            page.locator("#src-A input[type=file]").set_input_files(str(tiny_run / "dog.wav"))
            page.wait_for_timeout(1500)  # the upload is processed into the component's value
            page.locator("#generate").click()
            img = page.locator("#image img")
            img.wait_for(state="visible", timeout=120_000)
            assert img.get_attribute("src")
            page.locator("#gallery img").first.wait_for(state="visible", timeout=30_000)
            text = page.locator("#recipe").inner_text()
            assert "dog.wav" in text and "inference_loudness" in text
            shot = tmp_path / "app.png"
            page.screenshot(path=str(shot), full_page=False)
            browser.close()
    finally:
        demo.close()
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"), np.float32)
    assert pixels.std() > 10
    keep = os.environ.get("SEEING_SOUND_APP_SCREENSHOT")
    if keep:
        Image.open(shot).convert("RGB").resize((800, 933)).save(keep, optimize=True)
