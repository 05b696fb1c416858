import pytest
import torch
from flow_checks import assert_exact_flow
from torch.autograd.functional import jacobian

from wavesynth import flows
from wavesynth.flows.made import input_degrees
from wavesynth.flows.toy_data import two_moons

DTYPE = torch.float64


def perturb(module: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Move every parameter off its (identity) initialisation."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn_like(p))
    return module


def dependence(made: flows.MADE, x: torch.Tensor, context=None) -> torch.Tensor:
    """(K, D, D) boolean: out[k, i] has a non-zero gradient with respect to x[j] somewhere in the batch."""
    jac = jacobian(lambda v: made(v, context), x)  # (B, K, D, B, D)
    per_sample = torch.stack([jac[b, :, :, b, :] for b in range(x.shape[0])])
    return per_sample.abs().sum(0) > 0


@pytest.mark.parametrize("ordering", ["natural", "reversed", "random", torch.tensor([2, 0, 4, 1, 3])])
@pytest.mark.parametrize("num_blocks,residual", [(1, False), (3, False), (2, True)])
def test_made_output_depends_exactly_on_earlier_inputs(ordering, num_blocks, residual):
    made = flows.MADE(
        5, 16, num_blocks, output_multiplier=3, ordering=ordering, residual=residual, activation=torch.tanh
    )
    made = perturb(made).double()
    x = torch.randn(6, 5, dtype=DTYPE)
    degrees = made.degrees
    allowed = degrees[None, :] < degrees[:, None]  # (D out, D in): m(j) < m(i)
    assert torch.equal(dependence(made, x), allowed.expand(3, 5, 5))


def test_made_with_relu_and_random_ordering_never_breaks_the_autoregressive_property():
    made = perturb(flows.MADE(6, 8, 4, output_multiplier=2, ordering="random")).double()
    x = torch.randn(10, 6, dtype=DTYPE)
    allowed = made.degrees[None, :] < made.degrees[:, None]
    assert not (dependence(made, x) & ~allowed).any()


@pytest.mark.parametrize("features", [1, 4])
def test_made_context_reaches_every_output(features):
    made = perturb(flows.MADE(features, 8, 2, output_multiplier=2, context_features=3)).double()
    x = torch.randn(5, features, dtype=DTYPE)
    context = torch.randn(5, 3, dtype=DTYPE)
    jac = jacobian(lambda c: made(x, c), context)  # (B, K, D, B, C)
    assert (torch.stack([jac[b, :, :, b] for b in range(5)]).abs().sum((0, 3)) > 0).all()
    allowed = made.degrees[None, :] < made.degrees[:, None]
    assert torch.equal(dependence(made, x, context), allowed.expand(2, features, features))


def test_input_degrees_from_orderings():
    assert input_degrees(4, "natural").tolist() == [1, 2, 3, 4]
    assert input_degrees(4, "reversed").tolist() == [4, 3, 2, 1]
    assert sorted(input_degrees(4, "random").tolist()) == [1, 2, 3, 4]
    assert input_degrees(3, torch.tensor([1, 2, 0])).tolist() == [2, 3, 1]


LAYER_CASES = [
    dict(direction="maf", scale="bounded"),
    dict(direction="maf", scale="gated"),
    dict(direction="iaf", scale="bounded"),
    dict(direction="iaf", scale="gated"),
    dict(direction="maf", scale="bounded", residual=True, ordering="random"),
    dict(direction="iaf", scale="gated", residual=True, ordering="reversed"),
]


@pytest.mark.parametrize("kwargs", LAYER_CASES, ids=lambda k: "-".join(map(str, k.values())))
@pytest.mark.parametrize("with_context", [False, True])
def test_affine_autoregressive_layer_is_exact(kwargs, with_context):
    context_features = 2 if with_context else None
    layer = flows.MaskedAffineAutoregressive(4, 12, 2, context_features, **kwargs)
    layer = perturb(layer).double()
    x = torch.randn(5, 4, dtype=DTYPE)
    context = torch.randn(5, 2, dtype=DTYPE) if with_context else None
    assert_exact_flow(layer, x, context)


@pytest.mark.parametrize("direction", ["maf", "iaf"])
@pytest.mark.parametrize("with_context", [False, True])
def test_one_dimensional_layer_is_exact_and_uses_the_context(direction, with_context):
    context_features = 2 if with_context else None
    layer = flows.MaskedAffineAutoregressive(1, 8, context_features=context_features, direction=direction)
    layer = perturb(layer).double()
    x = torch.randn(5, 1, dtype=DTYPE)
    context = torch.randn(5, 2, dtype=DTYPE) if with_context else None
    assert_exact_flow(layer, x, context)
    z, logabsdet = layer(x, context)
    assert logabsdet.shape == (5,)
    if with_context:
        assert not torch.allclose(layer(x, torch.randn(5, 2, dtype=DTYPE))[0], z)


@pytest.mark.parametrize("scale", ["bounded", "gated"])
def test_layer_starts_at_or_near_the_identity(scale):
    layer = flows.MaskedAffineAutoregressive(3, 8, scale=scale)
    x = torch.randn(4, 3)
    z, logabsdet = layer(x)
    if scale == "bounded":
        torch.testing.assert_close(z, x)
        torch.testing.assert_close(logabsdet, torch.zeros(4))
    else:
        torch.testing.assert_close(z, torch.sigmoid(torch.tensor(2.0)) * x)


def test_bounded_log_scale_stays_bounded():
    layer = flows.MaskedAffineAutoregressive(3, 8, max_log_scale=2.0)
    with torch.no_grad():
        layer.made.output_layer.bias.fill_(1e4)
    _, logabsdet = layer(torch.randn(4, 3))
    assert torch.isfinite(logabsdet).all() and (logabsdet.abs() <= 3 * 2.0).all()


MODEL_CASES = [
    ("MAF", dict()),
    ("MAF", dict(batch_norm=True)),
    ("MAF", dict(context_features=3, permutation="random")),
    ("MAF", dict(context_features=3, batch_norm=True, residual=True, scale="gated")),
    ("IAF", dict()),
    ("IAF", dict(context_features=3, permutation="random", scale="gated")),
]


def build(name: str, features: int = 3, **kwargs) -> flows.Flow:
    return getattr(flows, name)(features, 16, num_layers=3, **kwargs)


@pytest.mark.parametrize("name,kwargs", MODEL_CASES, ids=lambda c: str(c))
def test_models_are_exact(name, kwargs):
    model = perturb(build(name, **kwargs), std=0.2).double()
    x = torch.randn(4, 3, dtype=DTYPE)
    context = torch.randn(4, 3, dtype=DTYPE) if "context_features" in kwargs else None
    model.train()
    model.log_prob(x, context)  # batch-norm: move the running statistics
    model.eval()
    assert_exact_flow(model.transform, x, context)


@pytest.mark.parametrize("name,kwargs", MODEL_CASES, ids=lambda c: str(c))
def test_sample_and_log_prob_agree_with_log_prob(name, kwargs):
    model = perturb(build(name, **kwargs), std=0.2).double().eval()
    context = torch.randn(6, 3, dtype=DTYPE) if "context_features" in kwargs else None
    x, log_prob = model.sample_and_log_prob(6, context)
    assert x.shape == (6, 3)
    torch.testing.assert_close(model.log_prob(x, context), log_prob)


def test_iaf_with_maf_weights_is_the_inverse_of_maf():
    maf = perturb(build("MAF"), std=0.2).double()
    iaf = build("IAF").double()
    maf_layers = [t for t in maf.transform.transforms if isinstance(t, flows.MaskedAffineAutoregressive)]
    iaf_layers = [t for t in iaf.transform.transforms if isinstance(t, flows.MaskedAffineAutoregressive)]
    for source, target in zip(maf_layers, reversed(iaf_layers), strict=True):
        target.load_state_dict(source.state_dict())
    x = torch.randn(5, 3, dtype=DTYPE)
    z, maf_logabsdet = maf.transform(x)
    # IAF samples in one pass with exactly the map MAF uses for densities ...
    x_iaf, iaf_logabsdet = iaf.transform.inverse(x)
    torch.testing.assert_close(x_iaf, z)
    torch.testing.assert_close(iaf_logabsdet, maf_logabsdet)
    # ... and evaluates densities in D passes with the map MAF uses for sampling.
    torch.testing.assert_close(iaf.transform(z)[0], maf.transform.inverse(z)[0])
    # The IAF density of its sample equals the change of variables through the MAF layers.
    torch.testing.assert_close(iaf.log_prob(z), iaf.base.log_prob(x) - maf_logabsdet)


@pytest.mark.parametrize("name,kwargs", [("MAF", {}), ("IAF", {}), ("MAF", {"scale": "gated"})])
def test_density_integrates_to_one_and_matches_the_samples(name, kwargs):
    model = perturb(getattr(flows, name)(2, 16, num_layers=3, **kwargs), std=0.15).double().eval()
    edges = torch.linspace(-10, 10, 401, dtype=DTYPE)
    centres = (edges[1:] + edges[:-1]) / 2
    cell = (edges[1] - edges[0]) ** 2
    grid = torch.cartesian_prod(centres, centres)
    with torch.no_grad():
        density = model.log_prob(grid).exp() * cell
        samples = model.sample(20_000)
    assert abs(density.sum().item() - 1) < 5e-3
    grid_mean = (density[:, None] * grid).sum(0)
    grid_std = ((density[:, None] * (grid - grid_mean) ** 2).sum(0)).sqrt()
    torch.testing.assert_close(samples.mean(0), grid_mean, atol=0.05 * grid_std.max().item(), rtol=0)
    torch.testing.assert_close(samples.std(0), grid_std, atol=0, rtol=0.05)


def test_state_dict_round_trip_keeps_random_orderings_and_permutations():
    made = perturb(flows.MADE(4, 8, 2, ordering="random"))
    made_clone = flows.MADE(4, 8, 2, ordering="random")
    made_clone.load_state_dict(made.state_dict())
    x = torch.randn(7, 4)
    torch.testing.assert_close(made_clone(x), made(x))
    model = perturb(flows.MAF(4, 8, 3, permutation="random", batch_norm=True)).eval()
    clone = flows.MAF(4, 8, 3, permutation="random", batch_norm=True).eval()
    clone.load_state_dict(model.state_dict())
    torch.testing.assert_close(clone.log_prob(x), model.log_prob(x))


def test_maf_learns_a_two_dimensional_density():
    data = two_moons(2048, torch.Generator().manual_seed(1))
    model = flows.MAF(2, 32, num_layers=4, batch_norm=True)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(300):
        batch = data[torch.randint(0, len(data), (256,))]
        loss = -model.log_prob(batch).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step == 0:
            first = loss.item()
    model.eval()
    with torch.no_grad():
        final = -model.log_prob(data).mean().item()
    assert final < first - 0.5
    assert final < 2.9  # the best Gaussian fit to these two moons scores 3.29 nats


@pytest.mark.parametrize("name", ["MAF", "IAF"])
def test_bad_input_raises_clear_errors(name):
    model = build(name)
    conditional = build(name, context_features=2)
    with pytest.raises(ValueError, match=r"expected \(batch, 3\)"):
        model.log_prob(torch.randn(4, 2))
    with pytest.raises(ValueError, match="non-finite"):
        model.log_prob(torch.tensor([[0.0, float("nan"), 1.0]]))
    layer = model.transform.transforms[0]
    with pytest.raises(ValueError, match=r"expected \(batch, 3\)"):
        layer(torch.randn(4, 5))
    with pytest.raises(ValueError, match=r"expected \(batch, 3\)"):
        layer.inverse(torch.randn(4, 3, 1))
    with pytest.raises(ValueError, match="context has shape"):
        conditional.log_prob(torch.randn(4, 3), torch.randn(4, 5))
    with pytest.raises(ValueError, match="context has shape"):
        conditional.sample(4, torch.randn(4, 2, 1))
    with pytest.raises(ValueError, match="context of shape .* is required"):
        conditional.sample(4)
    with pytest.raises(ValueError, match="built without context_features"):
        model.log_prob(torch.randn(4, 3), torch.randn(4, 2))


def test_bad_configuration_raises_clear_errors():
    with pytest.raises(ValueError, match="unknown ordering"):
        flows.MADE(3, 8, ordering="sideways")
    with pytest.raises(ValueError, match="permutation of 0..2"):
        flows.MADE(3, 8, ordering=torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="must be >= 1"):
        flows.MADE(3, 0)
    with pytest.raises(ValueError, match="unknown direction"):
        flows.MaskedAffineAutoregressive(3, 8, direction="sideways")
    with pytest.raises(ValueError, match="unknown scale"):
        flows.MaskedAffineAutoregressive(3, 8, scale="exp")
    with pytest.raises(ValueError, match="unknown permutation"):
        flows.MAF(3, 8, 2, permutation="shuffle")
    with pytest.raises(ValueError, match="num_layers"):
        flows.IAF(3, 8, 0)
