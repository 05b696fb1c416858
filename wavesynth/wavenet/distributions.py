"""Output heads of the WaveNet: per-sample distributions p(x_t | params_t) over audio in [-1, 1].

A head turns raw network outputs ``params`` of shape (B, P, *) into a distribution over x of shape (B, *).
Sampling is a deterministic function of (params, noise ε) with ε from ``draw_noise`` (``noise_size``
standardised values per sample), so the cached generator can replay it from a preallocated noise buffer:

* ``log_prob(params, x)``: log p(x) per sample; a log-probability of the 16-bit (or mu-law) bin for the
  discrete heads, a log-density for the continuous ones;
* ``sample(params, temperature, generator)`` = ``sample_from_noise(params, draw_noise(...), temperature)``;
* ``mode(params)``: the deterministic choice used by ``generate(..., deterministic=True)``.

Precision: every head computes in float32 (at least) whatever its inputs: bf16 ``params`` from a network
under bf16 autocast are cast up at entry and ``log_prob`` runs with autocast off, so its result is float32
(a 16-bit bin's log-probability, or a mean of mixture terms, is meaningless in bf16); ``sample_from_noise``
and ``mode`` return float32 audio and ``draw_noise`` draws float32 noise for a 16-bit dtype. float64 stays
float64.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import WavesynthError
from ..flows.base import float32_region, full_precision

BITS = 16
LEVELS = 2**BITS


def quantize(x: Tensor, levels: int = LEVELS) -> Tensor:
    """Nearest of ``levels`` equally spaced values -1 + 2i/(levels-1), after clamping to [-1, 1]."""
    half = (levels - 1) / 2
    return x.clamp(-1, 1).add_(1).mul_(half).round_().div_(half).sub_(1)


def mulaw_encode(x: Tensor, channels: int = 256) -> Tensor:
    """Class index round((f(x)+1)/2·(Q-1)) with f(x) = sign(x)·ln(1+μ|x|)/ln(1+μ), μ = Q-1."""
    mu = channels - 1
    f = torch.sign(x) * torch.log1p(mu * x.abs().clamp(max=1)) / math.log1p(mu)
    return torch.round((f + 1) / 2 * mu).long()


def mulaw_decode(index: Tensor, channels: int = 256) -> Tensor:
    """Inverse of the companding: x = sign(f)·((1+μ)^|f| - 1)/μ with f = 2i/(Q-1) - 1."""
    mu = channels - 1
    f = 2 * index.to(torch.get_default_dtype()) / mu - 1
    return torch.sign(f) * torch.expm1(f.abs() * math.log1p(mu)) / mu


def _logit(u: Tensor) -> Tensor:
    """Inverse logistic CDF log u - log(1-u), with u kept inside (0, 1)."""
    eps = torch.finfo(u.dtype).eps
    u = u.clamp(eps, 1 - eps)
    return torch.log(u) - torch.log1p(-u)


def _gumbel(u: Tensor) -> Tensor:
    """Standard Gumbel noise -log(-log u): argmax(logits + g) is a draw from softmax(logits)."""
    eps = torch.finfo(u.dtype).eps
    return -torch.log(-torch.log(u.clamp(eps, 1 - eps)))


def _pick(logits: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF draw of a category along dim 1 from one uniform u (B, 1, *): index (B, 1, *)."""
    cdf = logits.softmax(dim=1).cumsum(dim=1)
    return (cdf < u).sum(dim=1, keepdim=True).clamp(max=logits.shape[1] - 1)


class OutputHead:
    """Common interface; subclasses set ``num_params``, ``noise_size`` and ``bin_log_width``."""

    name: str
    num_params: int
    noise_size: int
    #: log bin width turning ``log_prob`` into the log-probability of a 16-bit sample (0 if it is one).
    bin_log_width: float = 0.0

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError

    def standardise(self, u: Tensor) -> Tensor:
        """The head's noise ε (B, noise_size, *) from as many uniforms u."""
        raise NotImplementedError

    def sample_from_noise(self, params: Tensor, noise: Tensor, temperature: float = 1.0) -> Tensor:
        """x (B, *) from params (B, P, *) and noise ε (B, noise_size, *) from ``draw_noise``."""
        raise NotImplementedError

    def mode(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    def draw_noise(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """ε of shape (shape[0], noise_size, *shape[1:]) for samples of ``shape``, drawn on ``device``."""
        size = (shape[0], self.noise_size, *shape[1:])
        if dtype in (torch.bfloat16, torch.float16):
            dtype = torch.float32  # bf16 uniforms are 2^-8 apart: far too coarse for a noise tail
        return self.standardise(torch.rand(size, generator=generator, device=device, dtype=dtype))

    def sample(
        self, params: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """One draw per position; temperature scales the spread (see each head)."""
        shape = (params.shape[0], *params.shape[2:])
        noise = self.draw_noise(shape, generator, params.device, params.dtype)
        return self.sample_from_noise(params, noise, temperature)

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({options})"


class DiscretizedMixtureOfLogistics(OutputHead):
    """Mixture of K logistics discretised to 2^16 bins on [-1, 1] (PixelCNN++, Parallel WaveNet).

    params = (logits π, means μ, log-scales log s) with log s clamped below at ``log_scale_min``. For a bin
    with centre x and half-width δ = 1/(2^16 - 1), with a = (x - μ + δ)/s and b = (x - μ - δ)/s,
        P(bin) = σ(a) - σ(b) = σ(a)·σ(-b)·(1 - e^{b-a}),
    evaluated in log space as logσ(a) + logσ(-b) + log(-expm1(b - a)); this is exact and finite for any
    scale, so no mid-bin density fallback is needed. The edge bins take the tails: P(x=-1) = σ(a),
    P(x=1) = σ(-b). ``log_prob`` is differentiable in x (x is not rounded, only its edge bin is detected).
    Sampling picks a component by Gumbel-max, draws a logistic with scale T·s, and rounds to the bin grid;
    its noise is K Gumbel values and one standard logistic value per sample.
    """

    name = "mol"

    def __init__(self, num_components: int = 10, log_scale_min: float = -7.0):
        self.num_components = num_components
        self.log_scale_min = log_scale_min
        self.num_params = 3 * num_components
        self.noise_size = num_components + 1

    def split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(logits, means, log-scales) (B, K, *) each, log-scales clamped as in ``log_prob``."""
        logits, means, log_scales = params.split(self.num_components, dim=1)
        return logits, means, log_scales.clamp(min=self.log_scale_min)

    @float32_region
    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        logits, means, log_scales = self.split(params)
        x = x.unsqueeze(1)
        inv_s = torch.exp(-log_scales)
        half = 1.0 / (LEVELS - 1)
        a = inv_s * (x - means + half)
        b = inv_s * (x - means - half)
        log_cdf_a = F.logsigmoid(a)
        log_sf_b = F.logsigmoid(-b)
        inner = log_cdf_a + log_sf_b + torch.log(-torch.expm1(-2 * half * inv_s))
        log_bin = torch.where(x < -1 + half, log_cdf_a, torch.where(x > 1 - half, log_sf_b, inner))
        return torch.logsumexp(log_bin + logits.log_softmax(dim=1), dim=1)

    def standardise(self, u: Tensor) -> Tensor:
        K = self.num_components
        return torch.cat([_gumbel(u[:, :K]), _logit(u[:, K:])], dim=1)

    def sample_from_noise(self, params: Tensor, noise: Tensor, temperature: float = 1.0) -> Tensor:
        K = self.num_components
        params, noise = full_precision(params), full_precision(noise)
        logits, means, log_scales = params.split(K, dim=1)
        k = (logits + noise[:, :K]).argmax(dim=1, keepdim=True)
        scale = log_scales.gather(1, k).squeeze(1).clamp(min=self.log_scale_min).exp()
        return quantize(torch.addcmul(means.gather(1, k).squeeze(1), scale, noise[:, K], value=temperature))

    def mode(self, params: Tensor) -> Tensor:
        """The mean of the most probable component, on the bin grid."""
        logits, means, _ = self.split(full_precision(params))
        return quantize(means.gather(1, logits.argmax(dim=1, keepdim=True)).squeeze(1))


class LocationScale(OutputHead):
    """A continuous head with params (μ, log s), log s >= ``log_scale_min``; samples μ + T·s·ε in [-1, 1].

    A density on the real line (samples are clamped); ``mode`` is μ. Subclasses give the density and ε.
    """

    bin_log_width = math.log(2 / (LEVELS - 1))

    def __init__(self, log_scale_min: float = -7.0):
        self.log_scale_min = log_scale_min
        self.num_params = 2
        self.noise_size = 1

    def split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log s) from params (B, 2, *), with log s clamped as in ``log_prob``."""
        return params[:, 0], params[:, 1].clamp(min=self.log_scale_min)

    def sample_from_noise(self, params: Tensor, noise: Tensor, temperature: float = 1.0) -> Tensor:
        mean, log_scale = self.split(full_precision(params))
        noise = full_precision(noise[:, 0])
        return torch.addcmul(mean, log_scale.exp(), noise, value=temperature).clamp_(-1, 1)

    def mode(self, params: Tensor) -> Tensor:
        return full_precision(params[:, 0]).clamp(-1, 1)


class Gaussian(LocationScale):
    """N(μ, σ²) (ClariNet): log p = -½((x-μ)/σ)² - log σ - ½ log 2π; ε ~ N(0, 1)."""

    name = "gaussian"

    @float32_region
    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        mean, log_std = self.split(params)
        return -0.5 * ((x - mean) * torch.exp(-log_std)).square() - log_std - 0.5 * math.log(2 * math.pi)

    def standardise(self, u: Tensor) -> Tensor:
        eps = torch.finfo(u.dtype).eps
        return math.sqrt(2) * torch.erfinv(2 * u.clamp(eps, 1 - eps) - 1)


class Logistic(LocationScale):
    """Logistic(μ, s): log p = -y - log s - 2 softplus(-y) with y = (x-μ)/s; ε ~ Logistic(0, 1)."""

    name = "logistic"

    @float32_region
    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        mean, log_scale = self.split(params)
        y = (x - mean) * torch.exp(-log_scale)
        return -y - log_scale - 2 * F.softplus(-y)

    def standardise(self, u: Tensor) -> Tensor:
        return _logit(u)


class MuLawCategorical(OutputHead):
    """Softmax over ``channels`` mu-law classes: log p(x) = log softmax(params)[mulaw_encode(x)].

    x is quantised to its class, so ``log_prob`` carries no gradient to x. Temperature divides the logits;
    a sample is an inverse-CDF draw from one uniform.
    """

    name = "mulaw"

    def __init__(self, channels: int = 256):
        self.channels = channels
        self.num_params = channels
        self.noise_size = 1

    @float32_region
    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        index = mulaw_encode(x, self.channels).unsqueeze(1)
        return params.log_softmax(dim=1).gather(1, index).squeeze(1)

    def standardise(self, u: Tensor) -> Tensor:
        return u

    def sample_from_noise(self, params: Tensor, noise: Tensor, temperature: float = 1.0) -> Tensor:
        params, noise = full_precision(params), full_precision(noise)
        index = _pick(params / temperature, noise[:, :1]).squeeze(1)
        return mulaw_decode(index, self.channels).to(params.dtype)

    def mode(self, params: Tensor) -> Tensor:
        params = full_precision(params)
        return mulaw_decode(params.argmax(dim=1), self.channels).to(params.dtype)


HEADS: dict[str, type[OutputHead]] = {
    head.name: head for head in (DiscretizedMixtureOfLogistics, Gaussian, Logistic, MuLawCategorical)
}


def make_head(name: str, **options) -> OutputHead:
    """The head called ``name`` (one of ``HEADS``) with its keyword options."""
    if name not in HEADS:
        raise WavesynthError(f"unknown output head {name!r}; choose one of {sorted(HEADS)}")
    try:
        return HEADS[name](**options)
    except TypeError as error:
        raise WavesynthError(f"bad options for output head {name!r}: {error}") from None
