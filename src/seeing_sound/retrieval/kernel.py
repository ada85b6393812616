"""The torch side of the bf16 screen: error-bound constants, device and bf16 capability checks, the kernel probe.

Everything here that needs torch imports it lazily, so the retrieval maths imports without it. It holds
the constants of the screening error bound (:data:`U_BF16`, :data:`RHO`, :data:`V32`, :data:`TINY`) and
its a priori form (:func:`a_priori_eps`); the torch and device checks (:func:`have_torch`,
:func:`resolve_device`) and the cheap test for fast bf16 matmuls (:func:`bf16_fast`: CUDA, or AMX /
AVX512-BF16 CPU features); :func:`check_kernel`, the once-per-process probe that a bf16 ``mm`` at the
screen's shapes honours the bound; and :func:`torch_topk`, the exact float32 torch engine. The
derivation of the bound and the screening search itself are in :mod:`seeing_sound.retrieval.screen`,
which re-exports these names.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
from typing import Any

import numpy as np

from seeing_sound.precision import PrecisionError, exact_matmul

log = logging.getLogger(__name__)

U_BF16 = 2.0**-8  # unit roundoff of bf16 (8-bit significand), round to nearest
RHO = 2.0**-7 / (1.0 - 2.0**-7)  # faithful bf16 output rounding, relative to the *rounded* value
V32 = 2.0**-23  # one float32 ulp, relative: faithful rounding
TINY = 2.0**-125  # underflow, flushed or gradual, per operation


def gamma(n: int, v: float = V32) -> float:
    """``n v / (1 - n v)``: the classic bound on n rounded additions (Higham, Lemma 3.1)."""
    return n * v / (1.0 - n * v)


def a_priori_eps(d: int, score: float = 1.0) -> float:
    """Worst-case ``|s - c|`` for unit vectors of dimension ``d`` and a screened score ``|s| <= score``.

    Round-to-nearest inputs (``(2u + u^2)``), float32 accumulation, faithful bf16 output, canonical
    float64 slack; no pool norm slack. The engine uses the (smaller) measured version of the same bound.
    """
    u = U_BF16
    return (2 * u + u * u) + gamma(d) * (1 + u) ** 2 + V32 + (4 * d + 64) * 2.0**-53 + RHO * score


def have_torch() -> bool:
    """torch is installed (not imported: that happens when a torch engine first runs)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _torch() -> Any:
    import torch

    return torch


def resolve_device(device: str | None) -> str:
    """``None``/'cpu' -> 'cpu'; 'auto' -> 'cuda' when available; 'cuda' / 'cuda:N' checked."""
    if device is None or device == "cpu":
        return "cpu"
    if not isinstance(device, str):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
    if device == "auto":
        return "cuda" if have_torch() and _torch().cuda.is_available() else "cpu"
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if not have_torch():
            raise ValueError(f"device={device!r} needs torch (pip install torch)")
        if not _torch().cuda.is_available():
            raise ValueError(f"device={device!r}: torch sees no CUDA device; use device='cpu'")
        return device
    raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")


@functools.cache
def bf16_fast(device: str = "cpu") -> bool:
    """Cheap capability check: is a bf16 matmul much faster than float32 here?

    CUDA: ``torch.cuda.is_bf16_supported()``. CPU: oneDNN available and the CPU has AMX tiles or
    AVX512-BF16 (torch's own probes, else the CPU flags); without them torch emulates bf16 and is slower
    than faiss.
    """
    if not have_torch():
        return False
    torch = _torch()
    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if not torch.backends.mkldnn.is_available():
        return False
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(torch.cpu, probe, None)
        with contextlib.suppress(Exception):
            if fn is not None and fn():
                return True
    cap = str(getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()).upper()
    if "AMX" in cap or "AVX512_BF16" in cap:
        return True
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = f.read(1 << 16)
        return "amx_bf16" in flags or "avx512_bf16" in flags
    return False


@functools.cache
def cpu_has_amx() -> bool:
    """The CPU has AMX tiles (bf16 matmuls several times faster than AVX512-BF16 ones)."""
    if have_torch():
        fn = getattr(_torch().cpu, "_is_amx_tile_supported", None)
        with contextlib.suppress(Exception):
            if fn is not None:
                return bool(fn())
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        return "amx_bf16" in f.read(1 << 16)
    return False


_KERNEL_OK: dict[tuple, bool] = {}


def check_kernel(device: str, batch: int, tile: int, d: int) -> bool:
    """Does ``mm`` on bf16 at shape (batch, d) x (d, tile) honour the bound? Checked once per process.

    Two probes: ``[1, 2**-14, ...] . [1, 1, ...]`` (a bf16 accumulator loses every small term) and
    random unit vectors, each against the float64 value of the same bf16 inputs with the bound
    ``gamma_d |q~||x~| + rho |s|`` of steps 2-4.
    """
    key = (device, batch, tile, d)
    if key in _KERNEL_OK:
        return _KERNEL_OK[key]
    torch = _torch()
    gen = torch.Generator().manual_seed(0)
    q = torch.randn((batch, d), generator=gen, dtype=torch.float64)
    q /= q.norm(dim=1, keepdim=True)
    x = torch.randn((tile, d), generator=gen, dtype=torch.float64)
    x /= x.norm(dim=1, keepdim=True)
    q[0] = 2.0**-14
    q[0, 0] = 1.0
    x[0] = 1.0
    qb, xb = q.to(torch.bfloat16), x.to(torch.bfloat16)
    try:
        with exact_matmul(torch):
            s = torch.mm(qb.to(device), xb.to(device).T).to("cpu").to(torch.float64)
    except PrecisionError as exc:
        log.warning("bf16 screening disabled on %s: %s", device, exc)
        _KERNEL_OK[key] = False
        return False
    exact = qb.to(torch.float64) @ xb.to(torch.float64).T
    bound = gamma(d) * qb.to(torch.float64).norm(dim=1)[:, None] * xb.to(torch.float64).norm(dim=1)[None, :]
    bound = bound + RHO * s.abs() + (d + 2) * TINY
    ok = bool(((s - exact).abs() <= bound).all())
    if not ok:
        log.warning("bf16 matmul on %s exceeds the float32-accumulation bound: bf16 screening disabled", device)
    _KERNEL_OK[key] = ok
    return ok


def torch_topk(
    q: np.ndarray, p_dev: Any, k: int, *, device: str, pool_block: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """Exact float32 top-k proposals with torch (``engine='torch'``): same contract as ``numpy_topk``.

    ``p_dev`` is the float32 (N, D) pool as a torch tensor on ``device``; TF32 is switched off, so the
    float32 error bound of the other engines holds.
    """
    torch = _torch()
    qt = torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32)).to(device)
    n = p_dev.shape[0]
    best_s = torch.full((qt.shape[0], 0), float("-inf"), device=device)
    best_i = torch.zeros((qt.shape[0], 0), dtype=torch.int64, device=device)
    with exact_matmul(torch):
        for start in range(0, n, pool_block):
            s = qt @ p_dev[start : start + pool_block].T
            kk = min(k, s.shape[1])
            v, i = torch.topk(s, kk, dim=1, sorted=False)
            all_s, all_i = torch.cat([best_s, v], 1), torch.cat([best_i, i + start], 1)
            kk = min(k, all_s.shape[1])
            v, j = torch.topk(all_s, kk, dim=1, sorted=False)
            best_s, best_i = v, torch.gather(all_i, 1, j)
    return best_s.to("cpu").numpy(), best_i.to("cpu").numpy().astype(np.int64)
