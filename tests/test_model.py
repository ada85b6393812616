"""AudioProjector, AudioPixArt, the diffusion objective (VLB against a direct formula) and AST pooling."""

import math

import numpy as np
import pytest
import torch

from seeing_sound.encoders.ast import pool_ast_tokens
from seeing_sound.errors import ModelNotFoundError
from seeing_sound.model.audio_pixart import AudioPixArt
from seeing_sound.model.diffusion import DiffusionSchedule, diffusion_loss, linear_beta_schedule, q_sample, vlb_terms
from seeing_sound.model.projector import AudioProjector
from seeing_sound.testing.models import build_tiny_pixart


@pytest.fixture(scope="module")
def pixart(tmp_path_factory):
    return build_tiny_pixart(tmp_path_factory.mktemp("pixart"))


def test_projector_shapes_and_null_dropout():
    torch.manual_seed(0)
    proj = AudioProjector(in_features=6, hidden_size=10)
    x = torch.randn(3, 5, 6)
    assert proj(x).shape == (3, 5, 10)
    dropped = proj.drop(x, torch.tensor([True, False, True]))
    assert torch.equal(dropped[1], x[1])
    assert torch.equal(dropped[0], proj.null_embedding.expand(5, 6))
    assert torch.equal(proj.null_embeds(2, 5)[1, 4], proj.null_embedding)
    with pytest.raises(ValueError, match="in_features"):
        AudioProjector(in_features=0)


def test_audio_pixart_keeps_pixart_weights_and_replaces_caption_projection(pixart):
    from diffusers import PixArtTransformer2DModel

    base = PixArtTransformer2DModel.from_pretrained(pixart, subfolder="transformer")
    model = AudioPixArt.from_pixart(str(pixart), audio_embed_dim=32)
    assert isinstance(model.transformer.caption_projection, AudioProjector)
    assert model.projector.linear_1.in_features == 32  # AST width, not the checkpoint's caption width (16)
    base_sd = base.state_dict()
    for key, value in model.transformer.state_dict().items():
        if not key.startswith("caption_projection."):
            assert torch.equal(value, base_sd[key]), key
    assert model.learned_variance


def test_audio_pixart_round_trip(pixart, tmp_path):
    model = AudioPixArt.from_pixart(str(pixart), audio_embed_dim=32, seed=3).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = AudioPixArt.from_pretrained(tmp_path / "m").eval()
    assert loaded.config.audio_embed_dim == 32
    assert loaded.config.transformer_config["caption_channels"] == 32
    x, t, a = torch.randn(2, 4, 8, 8), torch.tensor([10, 900]), torch.randn(2, 7, 32)
    drop = torch.tensor([False, True])
    with torch.no_grad():
        assert torch.equal(model(x, t, a, drop).sample, loaded(x, t, a, drop).sample)
    with pytest.raises(ValueError, match="audio_embeds"):
        model(x, t, torch.randn(2, 7, 31))


def test_missing_checkpoint_names_model_and_flag(tmp_path):
    with pytest.raises(ModelNotFoundError, match="pretrained=PATH"):
        AudioPixArt.from_pixart(str(tmp_path / "nope"), audio_embed_dim=8)


def test_linear_schedule_matches_diffusers_ddpm():
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    np.testing.assert_allclose(linear_beta_schedule(1000), ref.betas.numpy(), rtol=1e-6)
    s = DiffusionSchedule.linear()
    np.testing.assert_allclose(s.alphas_cumprod, ref.alphas_cumprod.numpy(), rtol=1e-5)


# --- direct formula implementation of the VLB term (improved DDPM, Nichol & Dhariwal 2021, eq. 4-6) ---
def _std_normal_cdf_approx(x):
    return 0.5 * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _naive_vlb(betas, x0, xt, t, eps, v):
    """Per-example bits/dim, one scalar at a time, straight from the formulas."""
    abar = np.cumprod(1 - betas)
    out = []
    for b in range(x0.shape[0]):
        tb = int(t[b])
        abar_t = abar[tb]
        abar_prev = abar[tb - 1] if tb > 0 else 1.0
        beta_t = betas[tb]
        post_var = lambda s: betas[s] * (1 - (abar[s - 1] if s > 0 else 1.0)) / (1 - abar[s])  # noqa: E731
        log_post = math.log(post_var(1) if tb == 0 else post_var(tb))  # clipped at t = 0
        total = 0.0
        for idx in np.ndindex(x0.shape[1:]):
            x0_, xt_, e_, v_ = x0[b][idx], xt[b][idx], eps[b][idx], v[b][idx]
            log_var = (v_ + 1) / 2 * math.log(beta_t) + (1 - (v_ + 1) / 2) * log_post
            x0_hat = (xt_ - math.sqrt(1 - abar_t) * e_) / math.sqrt(abar_t)
            c1 = math.sqrt(abar_prev) * beta_t / (1 - abar_t)
            c2 = math.sqrt(1 - beta_t) * (1 - abar_prev) / (1 - abar_t)
            mu_model, mu_true = c1 * x0_hat + c2 * xt_, c1 * x0_ + c2 * xt_
            if tb == 0:  # -log of the discretised Gaussian mass of the bin around x0
                sd = math.exp(0.5 * log_var)
                hi, lo = (x0_ - mu_model + 1 / 255) / sd, (x0_ - mu_model - 1 / 255) / sd
                mass = (
                    1 - _std_normal_cdf_approx(lo)
                    if x0_ > 0.999
                    else (
                        _std_normal_cdf_approx(hi)
                        if x0_ < -0.999
                        else _std_normal_cdf_approx(hi) - _std_normal_cdf_approx(lo)
                    )
                )
                total += -math.log(max(mass, 1e-12))
            else:  # KL( N(mu_true, post_var) || N(mu_model, exp(log_var)) )
                total += 0.5 * (
                    log_var
                    - log_post
                    + math.exp(log_post - log_var)
                    + (mu_true - mu_model) ** 2 / math.exp(log_var)
                    - 1
                )
        out.append(total / np.prod(x0.shape[1:]) / math.log(2))
    return np.array(out)


def test_vlb_matches_direct_formula():
    s = DiffusionSchedule.linear()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(5, 2, 3, 3, generator=g, dtype=torch.float64) * 2.2 - 1.1  # some values beyond ±0.999
    t = torch.tensor([0, 0, 1, 500, 999])
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    xt = q_sample(s, x0.float(), t, noise.float())
    eps = noise.float() + 0.3 * torch.randn(x0.shape, generator=g)
    v = torch.rand(x0.shape, generator=g) * 2 - 1
    got = vlb_terms(s, x0.float(), xt, t, eps, v).double().numpy()
    ref = _naive_vlb(
        s.betas, x0.float().double().numpy(), xt.double().numpy(), t.numpy(), eps.double().numpy(), v.double().numpy()
    )
    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=1e-5)


def test_hybrid_loss_is_mse_plus_vlb_and_vlb_trains_only_variance():
    s = DiffusionSchedule.linear()
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(4, 4, 4, 4, generator=g), torch.randn(4, 4, 4, 4, generator=g)
    t = torch.tensor([0, 3, 300, 999])
    xt = q_sample(s, x0, t, noise)
    out = torch.randn(4, 8, 4, 4, generator=g, requires_grad=True)
    hybrid = diffusion_loss(s, out, x0, xt, t, noise, "hybrid")
    mse = diffusion_loss(s, out, x0, xt, t, noise, "eps-mse")
    vlb = vlb_terms(s, x0, xt, t, out[:, :4].detach(), out[:, 4:])
    torch.testing.assert_close(hybrid, mse + vlb)
    vlb.sum().backward()
    assert out.grad[:, :4].abs().sum() == 0 and out.grad[:, 4:].abs().sum() > 0
    with pytest.raises(ValueError, match="learned-variance"):
        diffusion_loss(s, out[:, :4], x0, xt, t, noise, "hybrid")
    with pytest.raises(ValueError, match="loss_type"):
        diffusion_loss(s, out, x0, xt, t, noise, "l1")


def test_pool_ast_tokens_matches_naive_loop():
    rng = np.random.default_rng(0)
    f, t, d, k = 3, 7, 4, 3
    tokens = rng.standard_normal((2, 2 + f * t, d)).astype(np.float32)
    got = pool_ast_tokens(tokens, f, t, k)
    assert got.shape == (2, 2 + f * 3, d)
    for b in range(2):
        np.testing.assert_array_equal(got[b, :2], tokens[b, :2])
        for fi in range(f):
            for j, start in enumerate(range(0, t, k)):
                run = [tokens[b, 2 + fi * t + ti] for ti in range(start, min(start + k, t))]
                np.testing.assert_allclose(got[b, 2 + fi * 3 + j], np.mean(run, axis=0), rtol=1e-6)
    assert pool_ast_tokens(tokens, f, t, 1) is tokens
    with pytest.raises(ValueError, match="pool factor"):
        pool_ast_tokens(tokens, f, t, 0)
