import math

import pytest
import torch
from flow_checks import assert_exact_flow

from wavesynth import flows


def test_base_distribution_densities_match_torch():
    z = torch.randn(5, 3, dtype=torch.float64)
    normal = flows.StandardNormal(3).double()
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    torch.testing.assert_close(normal.log_prob(z), expected)
    logistic = flows.StandardLogistic(3).double()
    tlogistic = torch.distributions.TransformedDistribution(
        torch.distributions.Uniform(0.0, 1.0),
        [torch.distributions.SigmoidTransform().inv],
    )
    torch.testing.assert_close(logistic.log_prob(z), tlogistic.log_prob(z).sum(1))


def test_logistic_samples_have_logistic_variance_and_temperature_scales_them():
    samples = flows.StandardLogistic(1).sample(200_000).squeeze(1)
    assert abs(samples.var().item() - math.pi**2 / 3) < 0.05
    cold = flows.StandardLogistic(1).sample(200_000, temperature=0.5).squeeze(1)
    assert abs(cold.std().item() / samples.std().item() - 0.5) < 0.01


@pytest.mark.parametrize(
    "transform",
    [
        flows.ReversePermutation(5),
        flows.RandomPermutation(5),
        flows.LULinear(5, init="rotation"),
        flows.InvertibleLinear(5, lu=False),
        flows.BatchNorm(5),
        flows.ActNorm(5),
    ],
    ids=lambda t: type(t).__name__,
)
def test_vector_transforms_are_exact(transform):
    transform = transform.double()
    x = torch.randn(4, 5, dtype=torch.float64) * 2 + 1
    transform.train()
    transform(x)  # initialise actnorm, move batch-norm statistics
    with torch.no_grad():
        for p in transform.parameters():
            p.add_(0.1 * torch.randn_like(p))
    transform.eval()
    assert_exact_flow(transform, x)


@pytest.mark.parametrize("lu", [True, False])
def test_invertible_1x1_conv_log_det_scales_with_positions(lu):
    conv = flows.InvertibleConv1x1(3, lu=lu).double()
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    assert_exact_flow(conv, x)
    torch.testing.assert_close(conv(x)[1], 4 * conv.log_abs_det_matrix().expand(2))


def test_lu_rotation_initialisation_is_orthogonal():
    layer = flows.InvertibleConv1x1(6)
    w = layer.matrix()
    torch.testing.assert_close(w @ w.T, torch.eye(6), atol=1e-5, rtol=0)


def test_composite_and_inverse_transform_compose_exactly():
    composite = flows.CompositeTransform(
        [flows.LULinear(4, init="rotation"), flows.ReversePermutation(4), flows.ActNorm(4)]
    ).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    composite(x)
    composite.eval()
    assert_exact_flow(composite, x)
    inverted = flows.InverseTransform(composite)
    z, logabsdet = composite(x)
    x_back, inverse_logabsdet = inverted(z)
    torch.testing.assert_close(x_back, x)
    torch.testing.assert_close(inverse_logabsdet, -logabsdet)
    assert_exact_flow(inverted, z)


def test_batch_norm_uses_running_statistics_in_eval():
    bn = flows.BatchNorm(2)
    x = torch.randn(64, 2) * 3 + 5
    bn.train()
    for _ in range(200):
        bn(x)
    bn.eval()
    z1, _ = bn(x[:1])
    z2, _ = bn(torch.cat([x[:1], 100 + x[1:2]]))
    torch.testing.assert_close(z1[0], z2[0])  # eval output does not depend on the rest of the batch
    torch.testing.assert_close(bn.running_mean, x.mean(0), atol=1e-3, rtol=0)


def test_actnorm_initialises_once_and_not_after_loading(tmp_path):
    actnorm = flows.ActNorm(3)
    x = torch.randn(256, 3) * 4 - 2
    z, _ = actnorm(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(3), atol=1e-4, rtol=0)
    torch.save(actnorm.state_dict(), tmp_path / "actnorm.pt")
    loaded = flows.ActNorm(3)
    loaded.load_state_dict(torch.load(tmp_path / "actnorm.pt", weights_only=True))
    assert bool(loaded.initialized)
    z_loaded, _ = loaded(torch.randn(256, 3) * 10)  # a different batch must not re-initialise it
    torch.testing.assert_close(loaded.bias, actnorm.bias)
    torch.testing.assert_close(loaded.log_scale, actnorm.log_scale)


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1, 1)])
def test_actnorm_initialised_on_a_single_value_keeps_a_unit_scale(shape):
    actnorm = flows.ActNorm(3)
    x = torch.randn(shape)
    z, log_det = actnorm(x)
    assert torch.equal(actnorm.log_scale, torch.zeros(3)) and torch.equal(log_det, torch.zeros(1))
    torch.testing.assert_close(z, torch.zeros(shape))
    constant = flows.ActNorm(3)
    constant(torch.ones(8, 3))  # equal values: no spread to normalise
    assert torch.equal(constant.log_scale, torch.zeros(3))


def test_flow_log_prob_and_sampling_are_consistent():
    flow = flows.Flow(flows.StandardNormal(2), [flows.LULinear(2, init="rotation"), flows.ActNorm(2)])
    flow.log_prob(torch.randn(100, 2) * 2)  # initialises actnorm
    flow.eval()
    # A 2-D density integrates to 1 on a grid.
    grid = torch.linspace(-12, 12, 401)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
    with torch.no_grad():
        mass = flow.log_prob(points).exp().sum() * (grid[1] - grid[0]) ** 2
    assert abs(mass.item() - 1) < 1e-3
    x, log_prob = flow.sample_and_log_prob(50)
    torch.testing.assert_close(log_prob, flow.log_prob(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.randn(4, 3), "shape"),
        (torch.randn(4), "shape"),
        (torch.tensor([[0.0, float("nan")]]), "non-finite"),
        (torch.tensor([[0.0, float("inf")]]), "non-finite"),
    ],
)
def test_flow_rejects_bad_input_with_clear_error(bad, message):
    flow = flows.Flow(flows.StandardNormal(2), [flows.ReversePermutation(2)])
    with pytest.raises(ValueError, match=message):
        flow.log_prob(bad)


def test_permutation_rejects_non_permutation_and_wrong_width():
    with pytest.raises(ValueError, match="exactly once"):
        flows.Permutation(torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="expected 3 features"):
        flows.ReversePermutation(3)(torch.randn(2, 4))
