"""Full float32 precision on the GPU for the results we promise to be exact.

CUDA matmuls and cuDNN convolutions may take reduced-precision shortcuts (TF32's 10-bit mantissa,
bf16 split-K reductions); the retrieval screen's proof and the CLAP input preparation need float32.
"""

from __future__ import annotations

import contextlib
from typing import Any


@contextlib.contextmanager
def exact_matmul(torch: Any):
    """Switch off reduced-precision matmul shortcuts (bf16 split-K reductions, TF32) and restore them."""
    saved: list[tuple[Any, str, Any]] = []
    targets = [
        (getattr(torch.backends.cuda, "matmul", None), "allow_bf16_reduced_precision_reduction", False),
        (getattr(torch.backends.cuda, "matmul", None), "allow_tf32", False),
        (getattr(torch.backends, "cudnn", None), "allow_tf32", False),
    ]
    for obj, name, value in targets:
        if obj is None:
            continue
        with contextlib.suppress(Exception):
            saved.append((obj, name, getattr(obj, name)))
            setattr(obj, name, value)
    try:
        yield
    finally:
        for obj, name, value in reversed(saved):
            with contextlib.suppress(Exception):
                setattr(obj, name, value)
