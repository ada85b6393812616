"""Any image-text-to-text model from the Hugging Face hub or a local folder (LLaVA by default).

Loads with ``AutoProcessor`` + ``AutoModelForImageTextToText``, formats prompts with the
processor's chat template (or the tokenizer's, where a checkpoint keeps it only there), and runs
batched greedy generation. Remote code (e.g. CogVLM ports) runs only with ``trust_remote_code=True``.

Processors of video-capable families (Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision, SmolVLM2, ...) build
a video processor that needs torchvision. Without torchvision they are loaded image-only: the
model's own processor class, from the same files, with the video processor left out
(:func:`image_only_processor`); images go through the image processor exactly as before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from seeing_sound.concepts.backends import Generation, VLMRequest, VLMSpec
from seeing_sound.errors import ModelNotFoundError, SeeingSoundError

log = logging.getLogger(__name__)

_REQUIRES = re.compile(r"requires the (\S+) librar", re.IGNORECASE)


def _pick_device_dtype(device: str, dtype: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
        raise ValueError(f"dtype must be a torch dtype name like bfloat16, got {dtype!r}")
    return torch.device(device), getattr(torch, dtype)


def runtime_settings(spec: VLMSpec) -> dict:
    """What ``spec`` runs with on this machine (``auto`` resolved), without loading the model:
    the settings a concepts card records so a run can be reproduced."""
    import torch
    import transformers

    device, dtype = _pick_device_dtype(spec.device, spec.dtype)
    return {
        "batch_size": spec.batch_size,
        "device": device.type,
        "dtype": str(dtype).removeprefix("torch."),
        "requested": {"device": spec.device, "dtype": spec.dtype},
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def missing_package(exc: ImportError) -> str | None:
    """The package an ImportError says is missing: ``ModuleNotFoundError.name`` or transformers'
    "X requires the Torchvision library" message (lower-cased), else None."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return exc.name.split(".")[0]
    found = _REQUIRES.search(str(exc))
    return found.group(1).lower() if found else None


def install_hint(package: str) -> str:
    """How to install ``package`` without breaking the torch build already installed."""
    if package != "torchvision":
        return f"pip install {package}"
    import torch

    version = torch.__version__.split("+")[0]
    major, minor = (int(x) for x in version.split(".")[:2])
    # torchvision's minor version is torch's + 15 (torch 2.0 <-> 0.15, ..., 2.13 <-> 0.28); a bare
    # `pip install torchvision` resolves to the newest release and pulls a CUDA torch with it.
    vision = f"0.{minor + 15}" if major == 2 else None
    local = "+" in torch.__version__ and torch.__version__.split("+")[1]
    index = f" --index-url https://download.pytorch.org/whl/{local}" if local else ""
    pin = f" torchvision=={vision}.*" if vision else " torchvision"
    return f"pip install torch=={version}{pin}{index} (pin both, or pip replaces your torch {torch.__version__})"


def _one_line_import_error(spec: VLMSpec, exc: ImportError, what: str) -> SeeingSoundError:
    package = missing_package(exc)
    if package is None:
        return SeeingSoundError(f"VLM '{spec.model}': {what} needs a package that is not installed: {exc}")
    return SeeingSoundError(f"VLM '{spec.model}': {what} needs {package}; install it with: {install_hint(package)}")


def image_only_processor(model: str, config, **kwargs):
    """The processor of ``config``'s model type loaded from ``model`` without its video processor,
    or None when that processor has no video part.

    transformers loads (and type-checks) a processor's sub-processors by the names its
    ``get_attributes()`` returns, so a subclass that leaves ``video_processor`` out of that list
    loads the image processor, tokenizer, chat template and processor settings from the same files
    and never touches the video processor. ``from_args_and_dict`` puts ``None`` back in the video
    slot, so the processor's own ``__init__`` runs with its usual arguments, and a shim between it
    and ``ProcessorMixin`` drops that ``None`` again, by name, wherever the slot is (Qwen2-VL has it
    last, LLaVA-NeXT-Video first). ``images=`` calls go through the image processor unchanged.
    """
    from transformers import ProcessorMixin
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    try:
        cls: Any = PROCESSOR_MAPPING[type(config)]
    except KeyError:
        return None
    full = list(cls.get_attributes())
    if "video_processor" not in full:
        return None
    kept = [a for a in full if a != "video_processor"]

    class _DropVideo(ProcessorMixin):
        def __init__(self, *args, **kw):
            named = dict(zip(full, args, strict=False))  # positional sub-processors, in order
            named.update({k: kw.pop(k) for k in list(kw) if k in full})
            named.pop("video_processor", None)
            ProcessorMixin.__init__(self, *(named[a] for a in kept), **kw)

    def get_attributes(klass):
        return list(kept)

    def from_args_and_dict(klass, args, processor_dict, **kw):
        loaded = dict(zip(kept, args, strict=True))
        return super(image_only, klass).from_args_and_dict([loaded.get(a) for a in full], processor_dict, **kw)

    image_only: Any = type(
        cls.__name__,
        (cls, _DropVideo),
        {
            "__module__": cls.__module__,
            "get_attributes": classmethod(get_attributes),
            "from_args_and_dict": classmethod(from_args_and_dict),
        },
    )
    return image_only.from_pretrained(model, **kwargs)


def _load_processor(spec: VLMSpec, config, kwargs: dict):
    """``AutoProcessor``; where it fails only for want of torchvision (a video processor), the
    image-only processor; a one-line error naming the missing package otherwise."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(spec.model, **kwargs)
    except ImportError as exc:
        if missing_package(exc) != "torchvision":
            raise _one_line_import_error(spec, exc, "its processor") from exc
        try:
            processor = image_only_processor(spec.model, config, **kwargs)
        except ImportError as inner:
            raise _one_line_import_error(spec, inner, "its image processor") from inner
        if processor is None:
            raise _one_line_import_error(spec, exc, "its processor") from exc
        log.info("VLM %s: loaded its processor without the video part (torchvision is not installed)", spec.model)
        return processor


def _use_tokenizer_template(spec: VLMSpec, processor: Any) -> None:
    """Give the processor the tokenizer's chat template when only ``tokenizer_config.json`` has one
    (as transformers does for many checkpoints), and check that a prompt with an image renders
    the model's image placeholder (a text-only template would drop the image silently)."""
    tokenizer: Any = getattr(processor, "tokenizer", None)
    if not getattr(processor, "chat_template", None) and getattr(tokenizer, "chat_template", None):
        processor.chat_template = tokenizer.chat_template
        log.info("VLM %s: using the chat template of its tokenizer_config.json", spec.model)
    if not getattr(processor, "chat_template", None):
        raise SeeingSoundError(
            f"VLM '{spec.model}' has no chat template (processor or tokenizer); add one (chat_template.json) "
            "or serve the model behind an OpenAI-compatible server and use an openai:MODEL back end"
        )
    placeholder = getattr(processor, "image_token", None)
    if placeholder:
        try:
            probe = processor.apply_chat_template(_messages("probe"), add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # a template error is the checkpoint's, not an item's
            raise SeeingSoundError(f"VLM '{spec.model}': its chat template fails on an image prompt: {exc}") from exc
        if placeholder not in probe:
            raise SeeingSoundError(
                f"VLM '{spec.model}': its chat template drops the image (no {placeholder} in the prompt it renders); "
                "add an image-aware chat_template.json or use an openai:MODEL back end"
            )


def _messages(prompt: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


class TransformersBackend:
    provides_captions = True
    provides_concepts = True

    def __init__(self, spec: VLMSpec):
        from transformers import AutoConfig, AutoModelForImageTextToText

        self.spec = spec
        self.device, self.dtype = _pick_device_dtype(spec.device, spec.dtype)
        kwargs = {"trust_remote_code": spec.trust_remote_code}
        try:
            # The config first: it is where a checkpoint declares that it needs its own code.
            config = AutoConfig.from_pretrained(spec.model, **kwargs)
            self.processor = _load_processor(spec, config, kwargs)
            self.model = AutoModelForImageTextToText.from_pretrained(spec.model, dtype=self.dtype, **kwargs)
        except OSError as exc:
            raise ModelNotFoundError("VLM", spec.model, "vlm='transformers:PATH'", exc) from exc
        except ImportError as exc:  # the model's code needs a package (timm, einops, flash_attn, ...)
            raise _one_line_import_error(spec, exc, "its model code") from exc
        except ValueError as exc:
            if "trust_remote_code" in str(exc) and not spec.trust_remote_code:
                raise SeeingSoundError(
                    f"VLM '{spec.model}' ships its own code; rerun with --trust-remote-code if you trust it"
                ) from exc
            raise SeeingSoundError(
                f"VLM '{spec.model}' cannot be loaded as an image-text-to-text model: {exc}"
            ) from exc
        self.model.to(self.device).eval()
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"  # decoder-only batches must end where generation starts
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
        self.pad_token_id = getattr(tokenizer, "pad_token_id", None)
        self._ever_succeeded = False
        _use_tokenizer_template(spec, self.processor)
        log.info("loaded VLM %s on %s (%s)", spec.model, self.device, str(self.dtype).replace("torch.", ""))

    def generate(self, requests: Sequence[VLMRequest], task: str) -> list[list[Generation]]:
        out: list[Generation] = []
        size = self.spec.batch_size
        for start in range(0, len(requests), size):
            out.extend(self._generate_or_split(list(requests[start : start + size])))
        return [[g] for g in out]

    def _generate_or_split(self, batch: list[VLMRequest]) -> list[Generation]:
        """Generate a batch; on a runtime failure (e.g. out of memory) retry it in halves, so one
        bad image or a too-large batch costs only its own record."""
        try:
            texts = self._generate_batch(batch)
        except (RuntimeError, ValueError) as exc:
            if len(batch) > 1:
                log.warning("batch of %d failed (%s); retrying in halves", len(batch), type(exc).__name__)
                self._free_memory()
                half = len(batch) // 2
                return self._generate_or_split(batch[:half]) + self._generate_or_split(batch[half:])
            detail = f"{type(exc).__name__}: {str(exc)[:300]}"
            if not self._ever_succeeded:
                # A single image failing before any ever worked is a set-up problem, not a bad item.
                raise SeeingSoundError(f"VLM '{self.spec.model}' cannot generate: {detail}") from exc
            return [Generation(self.spec.model_id, error="generation-failed", detail=detail)]
        self._ever_succeeded = True
        return [Generation(self.spec.model_id, text=t) for t in texts]

    def _generate_batch(self, batch: list[VLMRequest]) -> list[str]:
        import torch

        prompts = [
            self.processor.apply_chat_template(
                _messages(r.prompt),
                add_generation_prompt=True,
                tokenize=False,
            )
            for r in batch
        ]
        inputs = self.processor(images=[r.image for r in batch], text=prompts, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device)
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        with torch.inference_mode():
            ids = self.model.generate(
                **inputs, max_new_tokens=self.spec.max_new_tokens, do_sample=False, pad_token_id=self.pad_token_id
            )
        new_tokens = ids[:, inputs["input_ids"].shape[1] :]
        return [t.strip() for t in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]

    def _free_memory(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.empty_cache()
