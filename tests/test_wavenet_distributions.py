"""Output heads: normalisation, stability at the edges, sampling against analytic moments."""

import math

import pytest
import torch

from wavesynth.wavenet import (
    DiscretizedMixtureOfLogistics,
    Gaussian,
    Logistic,
    MuLawCategorical,
    make_head,
    mulaw_decode,
    mulaw_encode,
    quantize,
)

BIN_CENTRES = torch.linspace(-1, 1, 2**16, dtype=torch.float64)


def mol_params(logits, means, log_scales, n=1):
    """(n, 3K, 1) parameters of a K-component mixture."""
    row = torch.tensor([*logits, *means, *log_scales], dtype=torch.float64)
    return row.view(1, -1, 1).expand(n, -1, 1)


@pytest.mark.parametrize(
    "logits, means, log_scales, log_scale_min",
    [
        ([0.0, 1.0, -2.0], [0.1, -0.5, 0.9], [-3.0, -5.0, -2.0], -7.0),
        ([0.0, 0.0], [-1.0, 1.0], [-7.0, -7.0], -7.0),  # sharp components on both edge bins
        ([0.0, 0.0], [1.7, -3.0], [-1.0, -20.0], -30.0),  # means outside [-1, 1], scale far below a bin
        ([0.0], [0.123], [-30.0], -30.0),  # almost all mass in one interior bin
        ([0.0], [0.0], [5.0], -7.0),  # very wide: mostly in the edge bins
    ],
)
def test_mol_sums_to_one_over_all_16_bit_bins(logits, means, log_scales, log_scale_min):
    head = DiscretizedMixtureOfLogistics(len(logits), log_scale_min)
    log_p = head.log_prob(mol_params(logits, means, log_scales).expand(1, -1, 2**16), BIN_CENTRES.view(1, -1))
    assert torch.isfinite(log_p).all()
    assert torch.logsumexp(log_p, dim=-1).exp().item() == pytest.approx(1.0, abs=1e-9)


def test_mol_edge_bins_take_the_tails():
    head = DiscretizedMixtureOfLogistics(1)
    params = mol_params([0.0], [0.5], [-2.0])
    s, half = math.exp(-2.0), 1 / (2**16 - 1)
    sigmoid = lambda a: 1 / (1 + math.exp(-a))  # noqa: E731
    for x, expected in ((-1.0, sigmoid((-1 + half - 0.5) / s)), (1.0, sigmoid(-(1 - half - 0.5) / s))):
        log_p = head.log_prob(params, torch.tensor([[x]], dtype=torch.float64))
        assert log_p.exp().item() == pytest.approx(expected, rel=1e-9)


def test_mol_extreme_parameters_stay_finite_in_float32():
    head = DiscretizedMixtureOfLogistics(2)
    x = torch.tensor([-1.0, -1 + 2 / 65535, 0.0, 1 - 2 / 65535, 1.0]).expand(4, 5)
    params = (
        torch.tensor(
            [
                [50.0, -50.0, 0.0, 0.0, -40.0, -40.0],  # scales below the clamp
                [0.0, 0.0, 5.0, -5.0, -7.0, -7.0],  # means far outside [-1, 1]
                [0.0, 0.0, 1.0, -1.0, 30.0, 30.0],  # huge scales
                [0.0, 0.0, 0.3, 0.3, -7.0, -7.0],
            ]
        )
        .unsqueeze(-1)
        .expand(4, 6, 5)
    )
    x = x.clone().requires_grad_()
    log_p = head.log_prob(params, x)
    assert torch.isfinite(log_p).all()
    log_p.sum().backward()
    assert torch.isfinite(x.grad).all()
    reference = head.log_prob(params.double(), x.detach().double())
    assert torch.allclose(log_p.double(), reference, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("head", [Gaussian(), Logistic()])
def test_continuous_heads_integrate_to_one(head):
    grid = torch.linspace(-3, 3, 600_001, dtype=torch.float64)
    params = torch.tensor([0.2, math.log(0.1)], dtype=torch.float64).view(1, 2, 1).expand(1, 2, len(grid))
    density = head.log_prob(params, grid.view(1, -1)).exp()[0]
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("head", [Gaussian(), Logistic()])
def test_continuous_heads_are_finite_at_extremes(head):
    x = torch.tensor([[-1.0, 1.0, 0.0]])
    for mean, log_scale in ((0.0, -100.0), (1.0, 50.0), (-1.0, -7.0)):
        params = torch.tensor([mean, log_scale]).view(1, 2, 1).expand(1, 2, 3)
        assert torch.isfinite(head.log_prob(params, x)).all()


def test_mulaw_sums_to_one_and_round_trips():
    head = MuLawCategorical(256)
    classes = torch.arange(256)
    x = mulaw_decode(classes)
    assert (x[0], x[-1]) == (-1.0, 1.0)
    assert torch.equal(mulaw_encode(x), classes)
    assert torch.all(x[1:] > x[:-1])
    params = torch.randn(1, 256, 1).expand(1, 256, 256) * 3
    log_p = head.log_prob(params, x.view(1, -1))
    assert log_p.exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def check_moments(samples, mean, var):
    """Sample mean within 5 standard errors, sample variance within 2%."""
    assert samples.mean().item() == pytest.approx(mean, abs=5 * math.sqrt(var / samples.numel()))
    assert samples.var().item() == pytest.approx(var, rel=2e-2)


def test_mol_samples_match_analytic_moments_and_bins():
    head = DiscretizedMixtureOfLogistics(2)
    pi, mu, s = torch.tensor([0.3, 0.7]), torch.tensor([0.3, -0.2]), torch.tensor([0.05, 0.1])
    params = torch.cat([pi.log(), mu, s.log()]).view(1, 6, 1).expand(1, 6, 200_000)
    samples = head.sample(params, generator=torch.Generator().manual_seed(1))
    assert torch.equal(samples, quantize(samples))
    mean = (pi * mu).sum()
    var = (pi * (s.square() * math.pi**2 / 3 + mu.square())).sum() - mean.square()
    check_moments(samples, mean.item(), var.item())
    assert head.mode(params[..., :1]).item() == pytest.approx(-0.2, abs=1e-4)


@pytest.mark.parametrize("head_cls, var_factor", [(Gaussian, 1.0), (Logistic, math.pi**2 / 3)])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_continuous_samples_match_analytic_moments(head_cls, var_factor, temperature):
    head = head_cls()
    params = torch.tensor([0.1, math.log(0.08)]).view(1, 2, 1).expand(1, 2, 200_000)
    samples = head.sample(params, temperature, generator=torch.Generator().manual_seed(2))
    check_moments(samples, 0.1, (temperature * 0.08) ** 2 * var_factor)
    assert head.mode(params[..., :1]).item() == pytest.approx(0.1)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_mulaw_samples_follow_tempered_softmax(temperature):
    head = MuLawCategorical(256)
    logits = torch.randn(256, generator=torch.Generator().manual_seed(3)) * 2
    params = logits.view(1, 256, 1).expand(1, 256, 100_000)
    samples = head.sample(params, temperature, generator=torch.Generator().manual_seed(4))
    frequencies = torch.bincount(mulaw_encode(samples[0]), minlength=256) / samples.numel()
    expected = (logits / temperature).softmax(0)
    assert (frequencies - expected).abs().max().item() < 5 * math.sqrt(expected.max().item() / 100_000)
    assert head.mode(params[..., :1]).item() == mulaw_decode(logits.argmax()).item()


def test_make_head_errors():
    assert make_head("mol").num_params == 30
    assert make_head("mol", num_components=3).num_params == 9
    with pytest.raises(ValueError, match="unknown output head 'nope'"):
        make_head("nope")
    with pytest.raises(ValueError, match="bad options for output head 'gaussian'"):
        make_head("gaussian", num_components=3)


# ------------------------------------------------------------------------- float32 under bf16 autocast

HEAD_CASES = [
    ("mol", {"num_components": 3}),
    ("gaussian", {}),
    ("logistic", {}),
    ("mulaw", {"channels": 16}),
]


def _bf16_params(head, batch=3, steps=257, seed=0):
    """bf16 head parameters as a network under autocast gives them (log-scales near a 16-bit bin's width),
    and audio x in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    params = torch.randn(batch, head.num_params, steps, generator=g)
    if head.name == "mol":
        params[:, 2 * head.num_components :] = -6 + params[:, 2 * head.num_components :]
    elif head.name in ("gaussian", "logistic"):
        params[:, 1] = -4 + params[:, 1]
    x = quantize(torch.rand(batch, steps, generator=g) * 1.8 - 0.9)
    return params.bfloat16(), x


@pytest.mark.parametrize(("name", "options"), HEAD_CASES)
def test_log_prob_computes_in_float32_under_bf16_autocast(name, options):
    """bf16 params inside autocast: the log-probability is float32 and equal to the fp32 computation on the
    same (bf16-rounded) params; gradients reach the bf16 params."""
    head = make_head(name, **options)
    params, x = _bf16_params(head)
    params.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = head.log_prob(params, x)
    reference = head.log_prob(params.detach().float(), x)
    assert low.dtype == torch.float32 and reference.dtype == torch.float32
    torch.testing.assert_close(low, reference, rtol=0, atol=0)
    low.sum().backward()
    assert params.grad.dtype == torch.bfloat16 and torch.isfinite(params.grad.float()).all()


def test_mol_in_bf16_arithmetic_would_be_wrong():
    """Why the head computes in float32: the same MoL log-probability in bf16 arithmetic is off by nats."""
    head = make_head("mol", num_components=3)
    params, x = _bf16_params(head)
    in_bf16 = type(head).log_prob.__wrapped__(head, params, x.bfloat16())  # the body without the fp32 region
    exact = head.log_prob(params.double(), x.double())
    assert (head.log_prob(params, x).double() - exact).abs().max() < 1e-3
    assert (in_bf16.double() - exact).abs().max() > 1.0


@pytest.mark.parametrize(("name", "options"), HEAD_CASES)
def test_sampling_from_bf16_params_is_float32(name, options):
    """Samples, modes and noise are float32 for bf16 params (bf16 audio would be ~8-bit); same values as
    from the float32 params."""
    head = make_head(name, **options)
    params, _ = _bf16_params(head)
    noise = head.draw_noise((3, 257), torch.Generator().manual_seed(1), dtype=torch.bfloat16)
    assert noise.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sample, mode = head.sample_from_noise(params, noise, 0.8), head.mode(params)
    assert sample.dtype == mode.dtype == torch.float32
    torch.testing.assert_close(sample, head.sample_from_noise(params.float(), noise, 0.8), rtol=0, atol=0)
    torch.testing.assert_close(mode, head.mode(params.float()), rtol=0, atol=0)
    assert head.log_prob(params.double(), sample.double()).dtype == torch.float64  # float64 stays float64
