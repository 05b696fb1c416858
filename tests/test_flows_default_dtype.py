"""Every flow model of wavesynth.flows follows torch's default dtype (here float64) end to end."""

import pytest
import torch
from flow_checks import assert_exact_flow

from wavesynth import flows


@pytest.fixture
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _randomise(module: torch.nn.Module) -> None:
    """Perturb the (often zero-initialised) parameters so that the flows are non-trivial maps."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn_like(p))


MODELS = {
    "NICE": (lambda: flows.NICE(4, hidden_features=8, num_blocks=1, num_layers=2), (4,)),
    "RealNVP": (
        lambda: flows.RealNVP(4, hidden_features=8, num_blocks=1, num_layers=2, logit_alpha=None),
        (4,),
    ),
    "RealNVP-image": (
        lambda: flows.RealNVP((1, 4, 4), hidden_features=4, num_blocks=1, num_scales=1, logit_alpha=None),
        (1, 4, 4),
    ),
    "Glow": (lambda: flows.Glow(1, levels=1, depth=2, hidden_channels=4, image_size=4), (1, 4, 4)),
    "Glow-plain": (
        lambda: flows.Glow(1, levels=1, depth=1, hidden_channels=4, image_size=4, permutation="plain"),
        (1, 4, 4),
    ),
    "MAF": (lambda: flows.MAF(3, hidden_features=8, num_layers=2, batch_norm=True), (3,)),
    "MAF-shuffle": (lambda: flows.MAF(3, hidden_features=8, num_layers=2, permutation="random"), (3,)),
    "IAF": (lambda: flows.IAF(3, hidden_features=8, num_layers=2), (3,)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_flow_models_run_and_invert_in_float64(float64_default, name):
    build, shape = MODELS[name]
    torch.manual_seed(0)
    model = build()
    x = 0.5 + 0.2 * torch.rand(3, *shape)  # in (0, 1): also valid for logit preprocessing
    model.log_prob(x)  # data-dependent initialisation (ActNorm) and batch-norm statistics
    _randomise(model)
    model.eval()
    tensors = [*model.parameters(), *model.buffers()]
    assert all(t.dtype == torch.float64 for t in tensors if t.is_floating_point())
    log_prob = model.log_prob(x)
    assert log_prob.dtype == torch.float64 and bool(torch.isfinite(log_prob).all())
    samples, sample_log_prob = model.sample_and_log_prob(2)
    assert samples.dtype == torch.float64 and samples.shape == (2, *shape)
    torch.testing.assert_close(sample_log_prob, model.log_prob(samples), atol=1e-8, rtol=1e-8)
    assert_exact_flow(model.transform, x, atol=1e-8)


@pytest.mark.parametrize("posterior", flows.vae.POSTERIORS)
@pytest.mark.parametrize("prior", flows.vae.PRIORS)
def test_vae_runs_in_float64(float64_default, posterior, prior):
    torch.manual_seed(0)
    vae = flows.VAE(6, 2, hidden_features=8, flow_hidden_features=8, context_features=4, posterior=posterior,
                    prior=prior)
    _randomise(vae)
    x = (torch.rand(3, 6) < 0.5).to(torch.get_default_dtype())
    z, log_q = vae.sample_posterior(x, num_samples=2)
    assert z.dtype == log_q.dtype == torch.float64
    assert vae.elbo(x).dtype == torch.float64 and vae.log_prob(x, 3).dtype == torch.float64
    assert vae.sample(2).dtype == torch.float64
    vae.eval()
    if vae.posterior_flow is not None:
        assert_exact_flow(vae.posterior_flow, torch.randn(3, 2), torch.randn(3, 4), atol=1e-8)
    if vae.prior is not None:
        assert_exact_flow(vae.prior.transform, torch.randn(3, 2), atol=1e-8)
