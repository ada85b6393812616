"""Full float32 precision on the GPU for the results we promise to be exact.

CUDA matmuls and cuDNN convolutions may take reduced-precision shortcuts (TF32's 10-bit mantissa,
bf16 reductions in bf16 when cuBLAS splits K); the retrieval screen's proof and the CLAP input
preparation need float32 products summed in float32 (in any order: the screen's bound allows any
summation order and blocking, so split-K itself is fine once its partial sums stay in float32).

Two generations of torch switches exist: the legacy booleans (``allow_tf32``) and, from torch 2.9,
``fp32_precision`` ("ieee" / "tf32"). Reading a legacy switch after a user set the new one raises, so
:func:`exact_matmul` sets the new switches where they exist and the legacy ones only on older torch;
it reads every switch back and refuses to run when one does not hold, rather than compute silently in
reduced precision. The bf16 reduction switch is a pair (reduced precision, split-K): both halves are
restored as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["PrecisionError", "exact_matmul"]


class PrecisionError(RuntimeError):
    """A reduced-precision switch could not be turned off: the exactness proofs would not hold."""


@dataclass(frozen=True)
class _Switch:
    """One torch setting: where it lives, its name, the value we need, and how to read it whole."""

    owner: Any
    name: str
    exact: Any
    pair: str | None = None  # the second half of a (reduced precision, split-K) setting

    def read(self) -> Any:
        value = getattr(self.owner, self.name)
        return (value, getattr(self.owner, self.pair)) if self.pair else value

    def holds(self) -> bool:
        value = getattr(self.owner, self.name)
        return value == self.exact


def _switches(torch: Any) -> list[_Switch]:
    """The settings that must read ``exact`` while an exact computation runs, for this torch."""
    out: list[_Switch] = []
    matmul = getattr(getattr(torch.backends, "cuda", None), "matmul", None)
    if matmul is not None:
        pair = "allow_bf16_reduced_precision_reduction_split_k"
        out.append(
            _Switch(matmul, "allow_bf16_reduced_precision_reduction", False, pair if _has(matmul, pair) else None)
        )
        out.append(_Switch(matmul, "fp32_precision", "ieee") if _has(matmul, "fp32_precision")
                   else _Switch(matmul, "allow_tf32", False))  # fmt: skip
    cudnn = getattr(torch.backends, "cudnn", None)
    if cudnn is not None:
        conv = getattr(cudnn, "conv", None)
        out.append(_Switch(conv, "fp32_precision", "ieee") if conv is not None and _has(conv, "fp32_precision")
                   else _Switch(cudnn, "allow_tf32", False))  # fmt: skip
    return out


def _has(owner: Any, name: str) -> bool:
    """``owner.name`` exists and reads without error (torch raises on some mixes of its two APIs)."""
    try:
        getattr(owner, name)
    except AttributeError:
        return False
    except RuntimeError:
        return True  # present, but unreadable in the current mix of legacy and new settings
    return True


@contextlib.contextmanager
def exact_matmul(torch: Any) -> Iterator[None]:
    """Switch off reduced-precision matmul shortcuts (bf16 reductions in bf16, TF32) and restore them.

    Every switch is read back after it is set; one that does not hold raises :class:`PrecisionError`
    (after restoring the others), so an exact result is never computed in reduced precision.
    """
    saved: list[tuple[_Switch, Any]] = []
    try:
        for sw in _switches(torch):
            try:
                before = sw.read()
            except RuntimeError:  # a legacy switch unreadable after the new API was used: restore to ours
                before = sw.exact
            # a pair keeps the user's split-K half: split-K with float32 partial sums is within the bound
            value = (sw.exact, before[1]) if sw.pair and isinstance(before, tuple) else sw.exact
            try:
                setattr(sw.owner, sw.name, value)
            except (AttributeError, RuntimeError, TypeError) as exc:
                raise PrecisionError(f"could not set torch {sw.name}={sw.exact!r}: {exc}") from exc
            saved.append((sw, before))
            if not sw.holds():
                raise PrecisionError(
                    f"torch {sw.name} reads {getattr(sw.owner, sw.name)!r} after being set to {sw.exact!r}: "
                    "reduced-precision matmuls cannot be switched off, so exact results cannot be promised"
                )
    except BaseException:
        _restore(saved)
        raise
    try:
        yield
    finally:
        _restore(saved)


def _restore(saved: list[tuple[_Switch, Any]]) -> None:
    for sw, value in reversed(saved):
        with contextlib.suppress(AttributeError, RuntimeError, TypeError):
            setattr(sw.owner, sw.name, value)
