"""PixArt-α's training objective: epsilon prediction with learned variance and the IDDPM hybrid loss.

PixArt-α (like DiT) trains with ``IDDPM(learn_sigma=True)`` from Nichol & Dhariwal's
improved-diffusion code: the transformer outputs ``2C`` channels, the first ``C`` are the predicted
noise ``eps`` and the last ``C`` an interpolation ``v`` in [-1, 1] between the clipped posterior
log-variance and ``log(beta_t)``. The loss is ``mean((eps - eps_hat)^2) + L_vlb`` where ``L_vlb`` is
the variational bound term (KL to the true posterior, or the discretised decoder NLL at ``t = 0``) in
bits per dimension, computed with the *mean* frozen (``eps_hat.detach()``) so that it only trains the
variance. The schedule is the linear beta schedule over 1000 steps (``beta`` 1e-4 → 0.02).

The schedule is plain numpy (float64); the loss is torch because it needs autograd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LOSS_TYPES = ("hybrid", "eps-mse")


def linear_beta_schedule(num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
    """Betas ``(num_steps,)`` float64, improved-diffusion's "linear" schedule (scaled to 1000 steps)."""
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2, got {num_steps}")
    scale = 1000.0 / num_steps
    return np.linspace(scale * beta_start, scale * beta_end, num_steps, dtype=np.float64)


@dataclass(frozen=True)
class DiffusionSchedule:
    """Precomputed float64 arrays ``(T,)`` of the forward process and its posterior."""

    betas: np.ndarray

    @classmethod
    def linear(cls, num_steps: int = 1000) -> DiffusionSchedule:
        return cls(linear_beta_schedule(num_steps))

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    @property
    def alphas_cumprod(self) -> np.ndarray:
        return np.cumprod(1.0 - self.betas)

    @property
    def alphas_cumprod_prev(self) -> np.ndarray:
        return np.append(1.0, self.alphas_cumprod[:-1])

    @property
    def posterior_variance(self) -> np.ndarray:
        """``beta_t (1 - abar_{t-1}) / (1 - abar_t)``, zero at ``t = 0``."""
        return self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)

    @property
    def posterior_log_variance_clipped(self) -> np.ndarray:
        """log of the posterior variance with the ``t = 0`` entry replaced by ``t = 1``'s (it is 0)."""
        pv = self.posterior_variance
        return np.log(np.append(pv[1], pv[1:]))

    @property
    def posterior_mean_coef1(self) -> np.ndarray:
        """Coefficient of ``x_0`` in the posterior mean."""
        return self.betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)

    @property
    def posterior_mean_coef2(self) -> np.ndarray:
        """Coefficient of ``x_t`` in the posterior mean."""
        return (1.0 - self.alphas_cumprod_prev) * np.sqrt(1.0 - self.betas) / (1.0 - self.alphas_cumprod)


def _gather(values: np.ndarray, t, like):
    """``values[t]`` as a float32 tensor broadcastable against ``like`` ``(B, C, H, W)``."""
    import torch

    out = torch.as_tensor(values, dtype=torch.float64, device=t.device)[t].to(torch.float32)
    return out.reshape(-1, *([1] * (like.ndim - 1)))


def q_sample(schedule: DiffusionSchedule, x0, t, noise):
    """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``; all tensors ``(B, C, H, W)``, ``t`` ``(B,)``."""
    abar = schedule.alphas_cumprod
    return _gather(np.sqrt(abar), t, x0) * x0 + _gather(np.sqrt(1.0 - abar), t, x0) * noise


def normal_kl(mean1, logvar1, mean2, logvar2):
    """Elementwise KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) in nats."""
    import torch

    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x):
    """improved-diffusion's tanh approximation of the standard normal CDF (kept for parity)."""
    import torch

    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """Elementwise log-likelihood of ``x`` (data in [-1, 1] on a 256-level grid) under a discretised Gaussian."""
    import torch

    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))),
    )


def vlb_terms(schedule: DiffusionSchedule, x0, xt, t, eps_hat, var_values):
    """Per-example VLB term in bits/dim ``(B,)`` for a model predicting ``eps_hat`` and ``var_values`` in [-1, 1].

    ``x0, xt, eps_hat, var_values``: ``(B, C, H, W)``; ``t``: ``(B,)`` long. ``t == 0`` gives the decoder
    NLL, every other ``t`` the KL between the true posterior q(x_{t-1}|x_t,x_0) and the model's p(x_{t-1}|x_t).
    """
    import torch

    min_log = _gather(schedule.posterior_log_variance_clipped, t, xt)
    max_log = _gather(np.log(schedule.betas), t, xt)
    frac = (var_values + 1.0) / 2.0
    model_log_variance = frac * max_log + (1.0 - frac) * min_log
    abar = schedule.alphas_cumprod
    pred_x0 = _gather(np.sqrt(1.0 / abar), t, xt) * xt - _gather(np.sqrt(1.0 / abar - 1.0), t, xt) * eps_hat
    coef1 = _gather(schedule.posterior_mean_coef1, t, xt)
    coef2 = _gather(schedule.posterior_mean_coef2, t, xt)
    model_mean = coef1 * pred_x0 + coef2 * xt
    true_mean = coef1 * x0 + coef2 * xt
    kl = normal_kl(true_mean, min_log, model_mean, model_log_variance).mean(dim=(1, 2, 3)) / math.log(2.0)
    nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_variance)
    nll = nll.mean(dim=(1, 2, 3)) / math.log(2.0)
    return torch.where(t == 0, nll, kl)


def diffusion_loss(schedule: DiffusionSchedule, model_output, x0, xt, t, noise, loss_type: str = "hybrid"):
    """Per-example training loss ``(B,)``.

    ``model_output``: ``(B, 2C, H, W)`` for learned variance (``hybrid`` needs it) or ``(B, C, H, W)``.
    ``hybrid``: MSE on epsilon + VLB on the variance with the mean frozen (PixArt-α's default).
    ``eps-mse``: MSE on epsilon only (ignores a predicted variance).
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    channels = x0.shape[1]
    if model_output.shape[1] not in (channels, 2 * channels):
        raise ValueError(f"model_output has {model_output.shape[1]} channels, expected {channels} or {2 * channels}")
    eps_hat = model_output[:, :channels]
    mse = ((noise - eps_hat.float()) ** 2).mean(dim=(1, 2, 3))
    if loss_type == "eps-mse":
        return mse
    if model_output.shape[1] != 2 * channels:
        raise ValueError("loss_type 'hybrid' needs a learned-variance model (out_channels = 2 * latent channels)")
    var_values = model_output[:, channels:].float()
    return mse + vlb_terms(schedule, x0.float(), xt.float(), t, eps_hat.detach().float(), var_values)
