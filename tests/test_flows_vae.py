import math

import pytest
import torch

from wavesynth import flows

KINDS = [(posterior, prior) for posterior in flows.vae.POSTERIORS for prior in flows.vae.PRIORS]


def randomised_vae(data_features: int, latent_features: int, **kwargs) -> flows.VAE:
    """A VAE whose zero-initialised output layers are replaced by random weights (a non-trivial map)."""
    vae = flows.VAE(data_features, latent_features, hidden_features=16, flow_hidden_features=16, **kwargs)
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return vae


def binary(batch: int, features: int) -> torch.Tensor:
    return (torch.rand(batch, features) < 0.4).float()


@pytest.mark.parametrize(("posterior", "prior"), KINDS)
def test_shapes_and_bounds(posterior, prior):
    vae = randomised_vae(12, 3, posterior=posterior, prior=prior)
    x = binary(5, 12)
    z, log_q = vae.sample_posterior(x, num_samples=4)
    assert z.shape == (4, 5, 3) and log_q.shape == (4, 5)
    assert vae.elbo(x).shape == (5,) and vae.log_prob(x, 7).shape == (5,)
    samples = vae.sample(6)
    assert samples.shape == (6, 12) and bool(((samples >= 0) & (samples <= 1)).all())
    # Same draws: the importance-weighted estimate is never below their ELBO, and equals it for K = 1.
    torch.manual_seed(1)
    elbo = vae.elbo(x, 50)
    torch.manual_seed(1)
    assert bool((vae.log_prob(x, 50) >= elbo).all())
    torch.manual_seed(2)
    elbo = vae.elbo(x)
    torch.manual_seed(2)
    torch.testing.assert_close(vae.log_prob(x, 1), elbo)


def test_iaf_posterior_log_q_matches_change_of_variables():
    vae = randomised_vae(10, 4, posterior="iaf", num_flows=3).double()
    x = binary(1, 10).double()
    eps = torch.randn(1, 1, 4, dtype=torch.float64)

    def z_of(e):
        return vae.sample_posterior(x, noise=e.view(1, 1, 4))[0].view(4)

    jacobian = torch.autograd.functional.jacobian(z_of, eps.view(4))
    assert torch.triu(jacobian, 1).abs().max() > 1e-3  # a real flow, not a diagonal map
    expected = -0.5 * (eps.square().sum() + 4 * math.log(2 * math.pi)) - torch.linalg.slogdet(jacobian)[1]
    _, log_q = vae.sample_posterior(x, noise=eps)
    torch.testing.assert_close(log_q.view(()), expected)


@pytest.mark.parametrize("prior", flows.vae.PRIORS)
def test_importance_weighted_estimate_converges_to_exact_log_p_for_one_latent(prior):
    # With one latent dimension, log p(x) = log ∫ p(x | z) p(z) dz by quadrature. The proposal is made
    # wide (q = N(0, e²) for every x) so that importance sampling converges.
    vae = randomised_vae(6, 1, prior=prior).double()
    with torch.no_grad():
        vae.encoder.output.weight.zero_()
        vae.encoder.output.bias.copy_(torch.tensor([0.0, 1.0]))
    x = binary(3, 6).double()
    with torch.no_grad():
        grid = torch.linspace(-12, 12, 24001, dtype=torch.float64).view(-1, 1, 1).expand(-1, 3, 1)
        joint = vae.log_likelihood(x, grid) + vae.log_prior(grid)
        exact = torch.logsumexp(joint, 0) + math.log(24 / 24000)
        estimate = vae.log_prob(x, 20000)
        elbo = vae.elbo(x, 20000)
    torch.testing.assert_close(estimate, exact, atol=0.05, rtol=0)
    assert bool((elbo < exact - 0.1).all())


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown posterior 'planar'"):
        flows.VAE(4, 2, posterior="planar")
    with pytest.raises(ValueError, match="unknown prior 'vamp'"):
        flows.VAE(4, 2, prior="vamp")
    vae = flows.VAE(4, 2, hidden_features=8)
    with pytest.raises(ValueError, match=r"x has shape \(3, 5\), expected \(batch, 4\)"):
        vae.elbo(torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        vae.elbo(torch.full((3, 4), 2.0))
    with pytest.raises(ValueError, match="must be positive"):
        vae.log_prob(torch.zeros(3, 4), 0)
    with pytest.raises(ValueError, match="noise has shape"):
        vae.sample_posterior(torch.zeros(3, 4), 2, noise=torch.zeros(3, 2))
    wrong = flows.VAE(4, 2, encoder=torch.nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"encoder returned shape \(3, 3\), expected \(3, 4\)"):
        wrong.elbo(torch.zeros(3, 4))
