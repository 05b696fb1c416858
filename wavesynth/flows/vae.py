"""A variational autoencoder with a flow posterior (IAF, Kingma et al., 2016) or a flow prior.

Model p(x, z) = p(z) p(x | z) with a Bernoulli decoder, p(x | z) = Πᵢ Bernoulli(xᵢ; sigmoid(decoder(z)ᵢ)),
and a prior p(z) that is N(0, I) (``prior="standard"``) or a MAF (``prior="autoregressive"``).

The encoder gives (μ, log σ, h) from x. The posterior q(z | x) draws ε ~ N(0, I) and z₀ = μ + σ ⊙ ε, so
log q(z₀ | x) = log N(ε; 0, I) − Σ log σ. With ``posterior="iaf"`` a chain of IAF steps follows,

    z_t = μ_t + σ_t ⊙ z_{t−1},   (μ_t, σ_t) = MADE_t(z_{t−1}, h),

each autoregressive in z_{t−1} (so its Jacobian is triangular) and driven by the context h, giving
log q(z_T | x) = log q(z₀ | x) − Σ_t Σᵢ log σ_{t,i}. As in the paper σ_t = sigmoid(·) is a gate and
μ_t = (1 − σ_t) ⊙ m_t; the variable order is reversed between steps. Each step is one MADE pass.

With K draws zₖ ~ q(z | x) and log weights log wₖ = log p(x, zₖ) − log q(zₖ | x):

    ELBO(x) = E_q[log w] ≤ E[log (1/K) Σₖ wₖ] ≤ log p(x)      (importance-weighted bound, Burda et al., 2015)

and the importance-weighted estimate tightens to log p(x) as K grows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import WavesynthError
from .autoregressive_models import IAF, MAF
from .base import full_precision
from .conditioners import MLP

POSTERIORS = ("diagonal", "iaf")
PRIORS = ("standard", "autoregressive")


class VAE(nn.Module):
    """VAE over x ∈ [0, 1]^D (binary data; fractional values act as Bernoulli soft targets).

    ``encoder`` maps x (batch, D) to (batch, 2·latent_features + context_features): μ, log σ and, for an
    IAF posterior, the context h; ``decoder`` maps z (batch, latent_features) to (batch, D) Bernoulli logits.
    Either left as None is an MLP of ``num_blocks`` ReLU layers of ``hidden_features`` units.
    ``posterior``: ``"diagonal"`` or ``"iaf"`` (``num_flows`` steps, MADEs of ``flow_hidden_features``).
    ``prior``: ``"standard"`` or ``"autoregressive"`` (a MAF of ``num_flows`` layers).

    >>> import torch
    >>> vae = VAE(12, 2, hidden_features=16, posterior="iaf", flow_hidden_features=16, context_features=4)
    >>> x = (torch.rand(5, 12) < 0.5).float()
    >>> tuple(vae.elbo(x).shape), tuple(vae.log_prob(x, num_samples=10).shape), tuple(vae.sample(3).shape)
    ((5,), (5,), (3, 12))
    """

    def __init__(
        self,
        data_features: int,
        latent_features: int,
        hidden_features: int = 256,
        num_blocks: int = 2,
        *,
        posterior: str = "diagonal",
        prior: str = "standard",
        num_flows: int = 2,
        flow_hidden_features: int = 64,
        context_features: int = 32,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ):
        super().__init__()
        if posterior not in POSTERIORS:
            raise WavesynthError(f"unknown posterior {posterior!r}; choose from {', '.join(POSTERIORS)}")
        if prior not in PRIORS:
            raise WavesynthError(f"unknown prior {prior!r}; choose from {', '.join(PRIORS)}")
        if min(data_features, latent_features, num_flows, context_features) < 1:
            raise WavesynthError("data_features, latent_features, num_flows and context_features must be >= "
                                 "1")
        self.data_features = data_features
        self.latent_features = latent_features
        self.context_features = context_features if posterior == "iaf" else 0
        encoder_out = 2 * latent_features + self.context_features
        self.encoder = encoder or MLP(data_features, encoder_out, hidden_features, num_blocks)
        self.decoder = decoder or MLP(latent_features, data_features, hidden_features, num_blocks)
        self.posterior_flow = None
        if posterior == "iaf":
            iaf = IAF(
                latent_features,
                flow_hidden_features,
                num_flows,
                context_features=context_features,
                scale="gated",
            )
            self.posterior_flow = iaf.transform
        self.prior = (
            MAF(latent_features, flow_hidden_features, num_flows) if prior == "autoregressive" else None
        )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """(μ, log σ, h) of q(z | x); h is None for a diagonal posterior."""
        self._check_data(x)
        out = self.encoder(x)
        expected = (x.shape[0], 2 * self.latent_features + self.context_features)
        if tuple(out.shape) != expected:
            raise ValueError(f"encoder returned shape {tuple(out.shape)}, expected {expected}")
        mean, log_std, h = full_precision(out).split(
            [self.latent_features, self.latent_features, self.context_features], 1
        )
        return mean, log_std, (h if self.posterior_flow is not None else None)

    def sample_posterior(
        self, x: Tensor, num_samples: int = 1, noise: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """z ~ q(z | x) and log q(z | x), shapes (num_samples, batch, latent) and (num_samples, batch).

        ``noise`` (num_samples, batch, latent) fixes ε instead of drawing it (z is then a function of ε).
        """
        mean, log_std, h = self.encode(x)
        shape = (num_samples, x.shape[0], self.latent_features)
        if noise is None:
            noise = torch.randn(shape, dtype=mean.dtype, device=mean.device)
        elif tuple(noise.shape) != shape:
            raise WavesynthError(f"noise has shape {tuple(noise.shape)}, expected {shape}")
        z = mean + log_std.exp() * noise
        log_q = _standard_normal_log_prob(noise) - log_std.sum(1)
        if self.posterior_flow is not None:
            flat, logabsdet = self.posterior_flow.inverse(z.flatten(0, 1), h.repeat(num_samples, 1))
            z, log_q = flat.view(shape), log_q - logabsdet.view(shape[:2])
        return z, log_q

    def log_prior(self, z: Tensor) -> Tensor:
        """log p(z) for z of shape (..., latent) -> (...)."""
        if self.prior is None:
            return _standard_normal_log_prob(z)
        return self.prior.log_prob(z.flatten(0, -2)).view(z.shape[:-1])

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x | z) = Σᵢ [xᵢ log πᵢ + (1 − xᵢ) log(1 − πᵢ)] for z (K, batch, latent) -> (K, batch)."""
        logits = full_precision(self.decoder(z.flatten(0, 1))).view(*z.shape[:2], self.data_features)
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)

    def log_weights(self, x: Tensor, num_samples: int) -> Tensor:
        """log wₖ = log p(x | zₖ) + log p(zₖ) − log q(zₖ | x), zₖ ~ q(z | x): shape (num_samples, batch)."""
        if num_samples < 1:
            raise WavesynthError(f"number of samples must be positive, got {num_samples}")
        z, log_q = self.sample_posterior(x, num_samples)
        return self.log_likelihood(x, z) + self.log_prior(z) - log_q

    def elbo(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """Monte Carlo ELBO E_q[log p(x, z) − log q(z | x)] from ``num_samples`` draws, shape (batch,)."""
        return self.log_weights(x, num_samples).mean(0)

    def log_prob(self, x: Tensor, num_samples: int = 100) -> Tensor:
        """Importance-weighted estimate log (1/K) Σₖ wₖ of log p(x), K = ``num_samples``, shape (batch,).

        A lower bound in expectation, at least the ELBO of the same draws, tight as K → ∞.
        """
        return torch.logsumexp(self.log_weights(x, num_samples), 0) - math.log(num_samples)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """n draws of the decoder means E[x | z] = sigmoid(decoder(z)), z ~ p(z) at ``temperature``."""
        if n < 1:
            raise WavesynthError(f"number of samples must be positive, got {n}")
        if self.prior is None:
            device = next(self.decoder.parameters()).device
            z = temperature * torch.randn(n, self.latent_features, device=device)
        else:
            z = self.prior.sample(n, temperature=temperature)
        return torch.sigmoid(self.decoder(z))

    def _check_data(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.data_features:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise WavesynthError(f"x has shape {shape}, expected (batch, {self.data_features})")
        if not bool(((x >= 0) & (x <= 1)).all()):
            raise WavesynthError("x must lie in [0, 1] (binary data for a Bernoulli decoder)")


def _standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last dimension, in float32 at least."""
    z = full_precision(z)
    return -0.5 * (z.square().sum(-1) + z.shape[-1] * math.log(2 * math.pi))
