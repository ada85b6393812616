"""Any image-text-to-text model from the Hugging Face hub or a local folder (LLaVA by default).

Loads with ``AutoProcessor`` + ``AutoModelForImageTextToText``, formats prompts with the
processor's chat template, and runs batched greedy generation. Remote code (e.g. CogVLM ports)
runs only with ``trust_remote_code=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from seeing_sound.concepts.backends import Generation, VLMRequest, VLMSpec
from seeing_sound.errors import ModelNotFoundError, SeeingSoundError

log = logging.getLogger(__name__)


def _pick_device_dtype(device: str, dtype: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
        raise ValueError(f"dtype must be a torch dtype name like bfloat16, got {dtype!r}")
    return torch.device(device), getattr(torch, dtype)


class TransformersBackend:
    provides_captions = True
    provides_concepts = True

    def __init__(self, spec: VLMSpec):
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

        self.spec = spec
        self.device, self.dtype = _pick_device_dtype(spec.device, spec.dtype)
        kwargs = {"trust_remote_code": spec.trust_remote_code}
        try:
            # The config first: it is where a checkpoint declares that it needs its own code.
            AutoConfig.from_pretrained(spec.model, **kwargs)
            self.processor = AutoProcessor.from_pretrained(spec.model, **kwargs)
            self.model = AutoModelForImageTextToText.from_pretrained(spec.model, dtype=self.dtype, **kwargs)
        except OSError as exc:
            err = ModelNotFoundError("VLM", spec.model, "--vlm transformers:PATH", exc)
            err.args = (
                f"VLM model '{spec.model}' could not be loaded (not found locally or offline: {type(exc).__name__}); "
                "download it once with network access or pass a local copy with --vlm transformers:PATH",
            )
            raise err from exc
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
        if not getattr(self.processor, "chat_template", None):
            raise SeeingSoundError(
                f"VLM '{spec.model}' has no chat template in its processor; add one (processor.chat_template) "
                "or serve the model behind an OpenAI-compatible server and use --vlm openai:MODEL"
            )
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
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": r.prompt}]}],
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
