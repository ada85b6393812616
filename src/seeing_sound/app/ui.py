"""The Gradio web UI of ``seeing-sound app`` (extra ``[app]``): two sources, loudness, space, image."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from seeing_sound.app.core import ARRANGEMENTS, SPACES, AppConfig, AppSession
from seeing_sound.errors import SeeingSoundError

log = logging.getLogger(__name__)


def _gradio():
    try:
        import gradio as gr
    except ImportError:  # pragma: no cover - depends on the environment
        from seeing_sound.errors import SeeingSoundError

        raise SeeingSoundError("the app needs gradio: pip install 'seeing-sound[app]'") from None
    return gr


def build_app(session: AppSession):
    """The ``gr.Blocks`` of the app, bound to ``session`` (not launched)."""
    gr = _gradio()
    choices = session.pool_choices()
    level = session.level["target_lufs"]
    with gr.Blocks(title="seeing-sound") as demo:
        gr.Markdown(
            "## seeing-sound: images from sound\n"
            f"Model `{Path(session.model).name}`. Upload or record up to two sources"
            f"{' or pick pool chunks' if choices else ''}, set each one's loudness, arrange them, choose a space, "
            f"and generate. The prompt is scaled to the training loudness ({level:.1f} LUFS) before embedding."
        )
        with gr.Row():
            cols = []
            for name in ("A", "B"):
                with gr.Column():
                    audio = gr.Audio(
                        sources=["upload", "microphone"], type="filepath", label=f"Source {name}", elem_id=f"src-{name}"
                    )
                    pick = gr.Dropdown(
                        choices=choices, label=f"or a pool chunk ({name})", visible=bool(choices), value=None
                    )
                    lufs = gr.Slider(-45, -5, value=-23, step=0.5, label=f"Loudness {name} (LUFS)")
                    cols.append((audio, pick, lufs))
        with gr.Row():
            arrangement = gr.Radio(list(ARRANGEMENTS), value="superpose", label="Arrangement")
            space = gr.Dropdown(list(SPACES), value=next(iter(SPACES)), label="Acoustic space")
            ir = gr.File(
                label="or a room impulse response (WAV/FLAC)",
                file_types=["audio"],
                file_count="single",
                type="filepath",
            )
        with gr.Row():
            seed = gr.Number(value=0, precision=0, label="Seed")
            steps = gr.Slider(1, 50, value=20, step=1, label="Steps")
            guidance = gr.Slider(0, 10, value=4.5, step=0.5, label="Guidance")
        button = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Row():
            image = gr.Image(label="Image", type="pil", elem_id="image", interactive=False)
            prompt = gr.Audio(label="Prompt as fed (before loudness normalization)", interactive=False)
        recipe = gr.Code(label="Recipe", language="json", elem_id="recipe")
        gallery = gr.Gallery(label="Gallery", columns=4, elem_id="gallery")
        history = gr.State([])

        def run(a, pa, la, b, pb, lb, arr, sp, ir_file, sd, st, g, hist):
            sources, levels = [], []
            for f, p, lv in ((a, pa, la), (b, pb, lb)):
                try:
                    s = session.source(f, p)
                except SeeingSoundError as exc:  # an upload that is not usable audio: one line, not a traceback
                    raise gr.Error(str(exc)) from None
                if s is not None:
                    sources.append(s)
                    levels.append(float(lv))
            if not sources:
                raise gr.Error("give at least one source: upload or record audio, or pick a pool chunk")
            try:
                res = session.run(
                    sources,
                    levels,
                    arrangement=arr,
                    space=sp,
                    ir_file=ir_file,
                    seed=int(sd or 0),
                    steps=int(st),
                    guidance_scale=float(g),
                )
            except (ValueError, SeeingSoundError) as exc:
                raise gr.Error(str(exc)) from None
            caption = " + ".join(str(n) for n, _ in sources) + f" | {arr} | {res.recipe['space']} | seed {int(sd or 0)}"
            hist = [*hist, (res.image, caption)]
            text = json.dumps(res.recipe, indent=2, default=str)
            return res.image, (res.sample_rate, res.prompt), text, hist, hist

        button.click(
            run,
            inputs=[*[w for c in cols for w in c], arrangement, space, ir, seed, steps, guidance, history],
            outputs=[image, prompt, recipe, gallery, history],
        )
    return demo


def launch_options(cfg: AppConfig, *, block: bool = True) -> dict:
    """The keyword arguments of ``Blocks.launch``: where to serve, and the upload bound.

    ``max_file_size`` makes Gradio refuse a larger upload with HTTP 413 while it streams in (what was
    written of it is deleted); every file input of the app takes one file.
    """
    return {
        "server_name": cfg.host,
        "server_port": cfg.port,
        "share": False,
        "quiet": True,  # no share-link hint (no link is ever made) nor Gradio's own URL line: we log the URL
        "prevent_thread_lock": not block,
        "show_error": True,
        "max_file_size": cfg.max_upload_bytes,
    }


def launch(model: str | Path, config: AppConfig | None = None, pool: str | Path | None = None, *, block: bool = True):
    """Serve the app on ``config.host:config.port`` (127.0.0.1 by default). Returns the Blocks."""
    cfg = config or AppConfig()
    session = AppSession(model, cfg, pool)
    demo = build_app(session)
    log.info("serving on http://%s:%d (uploads up to %s bytes)", cfg.host, cfg.port, cfg.max_upload_bytes)
    demo.queue().launch(**launch_options(cfg, block=block))
    return demo
