"""``exact_matmul``: every reduced-precision switch off inside, each restored whole afterwards, and a
switch that will not turn off refuses to run instead of computing silently in reduced precision.

torch's CPU build carries the CUDA and cuDNN switches too, so their handling is checked here; the
GPU's arithmetic under them is what ``retrieval.kernel.check_kernel`` probes on the device.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from seeing_sound.precision import PrecisionError, exact_matmul

torch = pytest.importorskip("torch")
MATMUL = torch.backends.cuda.matmul


@pytest.fixture
def restore_torch():
    """Whatever a test does to the switches, the next test starts from torch's defaults again."""
    if not hasattr(torch.backends.cudnn, "conv"):
        pytest.skip("torch < 2.9 has only the legacy TF32 switches")
    pair = (MATMUL.allow_bf16_reduced_precision_reduction, MATMUL.allow_bf16_reduced_precision_reduction_split_k)
    fp32 = MATMUL.fp32_precision
    conv = torch.backends.cudnn.conv.fp32_precision
    yield
    MATMUL.allow_bf16_reduced_precision_reduction = pair
    MATMUL.fp32_precision = fp32
    torch.backends.cudnn.conv.fp32_precision = conv


def test_switches_off_inside_and_split_k_half_restored(restore_torch):
    MATMUL.allow_bf16_reduced_precision_reduction = (False, False)  # a user's choice: no split-K at all
    with exact_matmul(torch):
        assert MATMUL.allow_bf16_reduced_precision_reduction is False
        assert MATMUL.allow_bf16_reduced_precision_reduction_split_k is False  # the user's half kept
        assert MATMUL.fp32_precision == "ieee"
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    # before the fix the pair came back as (False, True): the split-K half was lost
    assert (MATMUL.allow_bf16_reduced_precision_reduction, MATMUL.allow_bf16_reduced_precision_reduction_split_k) == (
        False,
        False,
    )


def test_tf32_set_through_the_new_api_is_switched_off(restore_torch):
    """A user who enabled TF32 the new way (torch >= 2.9): reading the legacy switch raises; before the fix
    that error was swallowed and TF32 stayed on inside the 'exact' block."""
    MATMUL.fp32_precision = "tf32"
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    with exact_matmul(torch):
        assert MATMUL.fp32_precision == "ieee"
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert MATMUL.fp32_precision == "tf32"
    assert torch.backends.cudnn.conv.fp32_precision == "tf32"


def test_legacy_tf32_flag_is_switched_off_and_restored(restore_torch):
    MATMUL.allow_tf32 = True  # the legacy way
    with exact_matmul(torch):
        assert MATMUL.fp32_precision == "ieee"
    assert MATMUL.fp32_precision == "tf32"  # the same setting, read through the new API


def test_restored_after_an_exception(restore_torch):
    MATMUL.fp32_precision = "tf32"
    with pytest.raises(ValueError), exact_matmul(torch):
        raise ValueError("inside")
    assert MATMUL.fp32_precision == "tf32"


def test_a_switch_that_does_not_hold_refuses_and_restores_the_others():
    conv = SimpleNamespace(fp32_precision="tf32")
    stuck = _StuckTF32()
    fake = SimpleNamespace(
        backends=SimpleNamespace(cuda=SimpleNamespace(matmul=stuck), cudnn=SimpleNamespace(conv=conv))
    )
    with pytest.raises(PrecisionError, match="allow_tf32"), exact_matmul(fake):
        pytest.fail("ran in reduced precision")
    assert stuck.allow_bf16_reduced_precision_reduction is True  # the one switched before it came back
    assert conv.fp32_precision == "tf32"  # never reached


class _StuckTF32:
    """An old-torch matmul namespace whose TF32 switch ignores writes."""

    def __init__(self):
        self.__dict__["allow_bf16_reduced_precision_reduction"] = True

    @property
    def allow_tf32(self):
        return True

    def __setattr__(self, name, value):
        if name == "allow_tf32":
            return  # ignored
        self.__dict__[name] = value


def test_check_kernel_refuses_the_screen_when_precision_cannot_be_set(monkeypatch):
    from seeing_sound.retrieval import kernel

    def refuse(_torch):
        raise PrecisionError("stuck")

    monkeypatch.setattr(kernel, "exact_matmul", refuse)
    monkeypatch.setattr(kernel, "_KERNEL_OK", {})
    assert kernel.check_kernel("cpu", 4, 16, 8) is False


def test_exact_results_inside(restore_torch):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((8, 64)), rng.standard_normal((64, 5))
    with exact_matmul(torch):
        got = (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(got, a @ b, rtol=1e-12)
