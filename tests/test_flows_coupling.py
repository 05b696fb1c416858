import math

import pytest
import torch
from flow_checks import assert_exact_flow

from wavesynth import flows

D = torch.float64


def _perturb(module: torch.nn.Module, std: float = 0.1) -> None:
    """Move every parameter off its (often zero, i.e. identity) initialisation."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn_like(p))


def _vector_coupling(layer, kind, flip=False, context_features=None):
    net = flows.MLP(4, layer.num_params * 4, 8, 2, context_features)
    return lambda: layer(flows.coupling_mask(4, kind, flip), net)


def _image_coupling(layer, kind, channels=2, flip=False, **kwargs):
    net = flows.ConvNet(channels, layer.num_params * channels, 4, num_blocks=1)
    return lambda: layer(flows.coupling_mask((channels, 4, 4), kind, flip), net, **kwargs)


def _factor_out(prior: bool):
    inner = flows.CompositeTransform([flows.ActNorm(2), flows.InvertibleConv1x1(2)])
    net = flows.ConvNet(2, 4, context_features=None) if prior else None
    return lambda: flows.FactorOut(4, inner, net)


TRANSFORMS = {
    "additive-half": (_vector_coupling(flows.AdditiveCoupling, "half"), (4,)),
    "additive-alternating": (_vector_coupling(flows.AdditiveCoupling, "alternating", True), (4,)),
    "affine-half": (_vector_coupling(flows.AffineCoupling, "half"), (4,)),
    "affine-tanh": (lambda: flows.AffineCoupling(flows.coupling_mask(4), flows.MLP(4, 8, 8), "tanh"), (4,)),
    "affine-checkerboard": (_image_coupling(flows.AffineCoupling, "checkerboard", 1), (1, 4, 4)),
    "affine-channelwise": (_image_coupling(flows.AffineCoupling, "half", flip=True), (2, 4, 4)),
    "additive-checkerboard": (_image_coupling(flows.AdditiveCoupling, "checkerboard", 2), (2, 4, 4)),
    "diagonal-scaling": (lambda: flows.DiagonalScaling(4), (4,)),
    "diagonal-affine-image": (lambda: flows.DiagonalScaling((1, 4, 4), shift=True), (1, 4, 4)),
    "squeeze": (flows.Squeeze, (1, 4, 4)),
    "unsqueeze": (flows.Unsqueeze, (4, 2, 2)),
    "factor-out": (_factor_out(prior=False), (4, 2, 2)),
    "factor-out-prior": (_factor_out(prior=True), (4, 2, 2)),
}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_transforms_are_exact(name):
    make, shape = TRANSFORMS[name]
    transform = make().double()
    x = torch.randn(3, *shape, dtype=D)
    transform.train()
    transform(x)  # initialise actnorm
    _perturb(transform)
    transform.eval()
    assert_exact_flow(transform, x)


def test_logit_is_exact_and_its_log_det_is_the_closed_form():
    logit = flows.Logit(alpha=0.05)
    x = torch.rand(3, 1, 2, 2, dtype=D)
    assert_exact_flow(logit, x)
    half = torch.full((2, 4), 0.5, dtype=D)  # p = 1/2: dy/dx = (1 − 2α) / (p (1 − p)) = 0.9 · 4
    torch.testing.assert_close(logit(half)[1], torch.full((2,), 4 * math.log(0.9 * 4), dtype=D))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        logit(torch.tensor([[1.5]]))


@pytest.mark.parametrize(
    "shape, kind, expected",
    [
        (4, "half", [1, 1, 0, 0]),
        (5, "half", [1, 1, 0, 0, 0]),
        (4, "alternating", [1, 0, 1, 0]),
        ((4, 1, 1), "half", [[[1]], [[1]], [[0]], [[0]]]),
        ((1, 2, 3), "checkerboard", [[[1, 0, 1], [0, 1, 0]]]),
    ],
)
def test_coupling_mask_layouts(shape, kind, expected):
    expected = torch.tensor(expected, dtype=torch.bool)
    assert torch.equal(flows.coupling_mask(shape, kind), expected)
    assert torch.equal(flows.coupling_mask(shape, kind, flip=True), ~expected)


def test_checkerboard_mask_is_the_same_for_every_channel():
    mask = flows.coupling_mask((3, 4, 4), "checkerboard")
    assert torch.equal(mask, mask[:1].expand(3, 4, 4))
    assert mask.sum() == 3 * 8


@pytest.mark.parametrize("layer", [flows.AdditiveCoupling, flows.AffineCoupling])
@pytest.mark.parametrize(
    "kind, shape", [("half", (2, 4, 4)), ("checkerboard", (2, 4, 4)), ("alternating", (6,))]
)
def test_coupling_keeps_the_conditioning_part_unchanged(layer, kind, shape):
    channels = shape[0]
    net = (
        flows.MLP(channels, layer.num_params * channels, 8)
        if len(shape) == 1
        else flows.ConvNet(channels, layer.num_params * channels, 4)
    )
    coupling = layer(flows.coupling_mask(shape, kind), net).double()
    _perturb(coupling)
    x = torch.randn(3, *shape, dtype=D)
    z, _ = coupling(x)
    mask = coupling.mask.expand_as(x)
    assert torch.equal(z[mask], x[mask])
    assert not torch.allclose(z[~mask], x[~mask])
    x_back, _ = coupling.inverse(z)
    assert torch.equal(x_back[mask], z[mask])


@pytest.mark.parametrize("image", [False, True])
def test_coupling_with_context_is_exact_and_depends_on_it(image):
    shape = (2, 4, 4) if image else (4,)
    net = flows.ConvNet(2, 4, 4, context_features=3) if image else flows.MLP(4, 8, 8, context_features=3)
    coupling = flows.AffineCoupling(flows.coupling_mask(shape), net).double()
    _perturb(coupling)
    x, context = torch.randn(2, *shape, dtype=D), torch.randn(2, 3, dtype=D)
    assert_exact_flow(coupling, x, context)
    assert not torch.allclose(coupling(x, context)[0], coupling(x, context + 1)[0])
    with pytest.raises(ValueError, match="context must have shape"):
        coupling(x)
    with pytest.raises(ValueError, match="context must have shape"):
        coupling(x, torch.randn(2, 5, dtype=D))


def test_squeeze_index_layout_and_round_trip():
    x = torch.arange(2 * 3 * 4 * 6, dtype=D).reshape(2, 3, 4, 6)
    z, logabsdet = flows.Squeeze()(x)
    assert z.shape == (2, 12, 2, 3)
    assert torch.equal(logabsdet, torch.zeros(2, dtype=D))
    for c in range(3):
        for i in range(2):
            for j in range(2):
                assert torch.equal(z[:, 4 * c + 2 * i + j], x[:, c, i::2, j::2])
    small = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # one 2x2 block becomes 4 channels in raster order
    assert torch.equal(flows.Squeeze()(small)[0].flatten(), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert torch.equal(flows.Squeeze().inverse(z)[0], x)


def test_squeeze_rejects_odd_sizes_and_non_images():
    with pytest.raises(ValueError, match="even H and W"):
        flows.Squeeze()(torch.randn(2, 1, 5, 4))
    with pytest.raises(ValueError, match="even H and W"):
        flows.Squeeze()(torch.randn(2, 16))
    with pytest.raises(ValueError, match="4C"):
        flows.Squeeze().inverse(torch.randn(2, 6, 2, 2))


def test_learned_prior_is_the_gaussian_it_claims():
    prior = flows.ConvNet(2, 4)
    factor_out = flows.FactorOut(4, flows.CompositeTransform([]), prior).double()
    _perturb(factor_out, 0.5)
    x = torch.randn(3, 4, 2, 2, dtype=D)
    z, logabsdet = factor_out(x)
    base = flows.StandardNormal((4, 2, 2)).double()
    out = prior(x[:, 2:])
    mean, std = out[:, :2], out[:, 2:].exp()
    expected = torch.distributions.Normal(mean, std).log_prob(x[:, :2]).flatten(1).sum(1)
    expected = expected + torch.distributions.Normal(0.0, 1.0).log_prob(x[:, 2:]).flatten(1).sum(1)
    torch.testing.assert_close(base.log_prob(z) + logabsdet, expected)


MODELS = {
    "nice": (lambda: flows.NICE(4, 8, 2), (4,)),
    "realnvp-vector": (lambda: flows.RealNVP(4, 8, num_layers=4), (4,)),
    "realnvp-image": (lambda: flows.RealNVP((1, 4, 4), 4, 1, num_scales=2), (1, 4, 4)),
    "realnvp-3-scales": (
        lambda: flows.RealNVP((1, 8, 8), 4, 1, num_scales=3, batch_norm=False, scale="sigmoid"),
        (1, 8, 8),
    ),
    "glow-lu": (lambda: flows.Glow(1, 2, 2, 4, image_size=4), (1, 4, 4)),
    "glow-plain-additive": (
        lambda: flows.Glow(1, 2, 2, 4, image_size=4, permutation="plain", coupling="additive"),
        (1, 4, 4),
    ),
    "glow-reverse": (lambda: flows.Glow(1, 2, 1, 4, image_size=4, permutation="reverse"), (1, 4, 4)),
    "glow-shuffle-3-levels": (
        lambda: flows.Glow(1, 3, 1, 4, image_size=(8, 8), permutation="shuffle", learn_top=False),
        (1, 8, 8),
    ),
}


@pytest.mark.parametrize("name", MODELS)
def test_models_are_exact_in_eval_mode_after_training(name):
    make, shape = MODELS[name]
    model = make().double()
    x = torch.rand(6, *shape, dtype=D) * 0.98 + 0.01  # in (0, 1) for the logit pre-processing
    model.train()
    model.log_prob(x).mean().backward()  # actnorm initialisation, batch-norm statistics
    _perturb(model)
    model.eval()
    if math.prod(shape) > 16:  # keep the Jacobian small: round trip only
        z, logabsdet = model.transform(x)
        x_back, inverse_logabsdet = model.transform.inverse(z)
        torch.testing.assert_close(x_back, x, atol=1e-6, rtol=0)
        torch.testing.assert_close(inverse_logabsdet, -logabsdet)
    else:
        assert_exact_flow(model.transform, x[:3])
    samples, log_prob = model.sample_and_log_prob(4)
    assert samples.shape == (4, *shape)
    torch.testing.assert_close(log_prob, model.log_prob(samples), atol=1e-6, rtol=1e-6)


def test_glow_temperature_scales_every_level_and_zero_gives_the_mode_path():
    glow = flows.Glow(1, 2, 2, 8, image_size=8).double()  # the 8x8 digits configuration
    glow.log_prob(torch.rand(8, 1, 8, 8, dtype=D))
    _perturb(glow)
    glow.eval()
    torch.manual_seed(1)
    cold = glow.sample(5, temperature=0.5)
    torch.manual_seed(1)
    eps = glow.base.sample(5)
    assert cold.shape == (5, 1, 8, 8)
    torch.testing.assert_close(glow.transform(cold)[0], 0.5 * eps)
    mode = glow.sample(3, temperature=0.0)
    expected, _ = glow.transform.inverse(torch.zeros(1, 1, 8, 8, dtype=D))
    torch.testing.assert_close(mode, expected.expand(3, -1, -1, -1))


def test_diagonal_scaling_with_context_is_a_conditional_gaussian():
    """With context c the layer is N(μ(c), σ(c)²) through a standard normal: s(c), b(c) per channel."""
    layer = flows.DiagonalScaling((2, 3), shift=True, context_features=4).double()
    _perturb(layer)
    x, context = torch.randn(5, 2, 3, dtype=D), torch.randn(5, 4, dtype=D)
    assert_exact_flow(layer, x, context)
    s, b = layer.context(context).view(5, 2, 2, 1).unbind(1)
    log_scale, shift = layer.log_scale + s, layer.shift + b
    z, logabsdet = layer(x, context)
    torch.testing.assert_close(z, x * log_scale.exp() + shift)
    torch.testing.assert_close(logabsdet, log_scale.expand(5, 2, 3).sum((1, 2)))
    fresh = flows.DiagonalScaling(3, context_features=4)  # starts at the identity
    torch.testing.assert_close(fresh(x[:, 0].float(), context.float())[0], x[:, 0].float())
    with pytest.raises(ValueError, match="context must have shape"):
        fresh(x[:, 0].float())
    with pytest.raises(ValueError, match="without context_features"):
        flows.DiagonalScaling(3)(x[:, 0].float(), context.float())


def test_glow_split_prior_uses_context():
    glow = flows.Glow(1, 2, 1, 4, image_size=4, context_features=2).double()
    x, context = torch.rand(3, 1, 4, 4, dtype=D), torch.randn(3, 2, dtype=D)
    glow.log_prob(x, context)
    _perturb(glow)
    glow.eval()
    assert_exact_flow(glow.transform, x, context)
    assert not torch.allclose(glow.log_prob(x, context), glow.log_prob(x, context + 1))
    assert glow.sample(3, context, temperature=0.7).shape == (3, 1, 4, 4)
    top = [t for t in glow.modules() if isinstance(t, flows.DiagonalScaling)]
    assert len(top) == 1 and top[0].context is not None  # the learned top prior is conditional too


def test_glow_state_survives_save_and_load(tmp_path):
    glow = flows.Glow(1, 2, 1, 4, image_size=4, permutation="shuffle")
    x = torch.rand(8, 1, 4, 4)
    glow.log_prob(x)
    glow.eval()
    torch.save(glow.state_dict(), tmp_path / "glow.pt")
    loaded = flows.Glow(1, 2, 1, 4, image_size=4, permutation="shuffle")
    loaded.load_state_dict(torch.load(tmp_path / "glow.pt", weights_only=True))
    loaded.train()
    loaded.log_prob(x * 3)  # initialised actnorm layers must not re-initialise on a new batch
    loaded.eval()
    torch.testing.assert_close(loaded.log_prob(x), glow.log_prob(x))


def test_glow_learns_8x8_digits():
    from sklearn.datasets import load_digits

    images = torch.tensor(load_digits().images[:128], dtype=torch.float32).unsqueeze(1)  # levels 0..16
    glow = flows.Glow(1, 2, 2, 8, image_size=8)
    optimizer = torch.optim.Adam(glow.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        x = flows.dequantize(images, num_bins=17)
        loss = -glow.log_prob(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(flows.bits_per_dim(-loss.detach(), 64, num_bins=17).item())
    assert losses[-1] < losses[0] - 0.2
    assert torch.isfinite(glow.sample(4, temperature=0.7)).all()


def test_bits_per_dim_known_cases():
    # The uniform density on [0, 1]^D spends exactly log2(256) = 8 bits per 8-bit dimension.
    torch.testing.assert_close(flows.bits_per_dim(torch.zeros(3), 10), torch.full((3,), 8.0))
    # The same data scaled to [-1, 1]: density 2^-D there, still 8 bits per dimension.
    log_prob = torch.tensor([-10 * math.log(2)])
    torch.testing.assert_close(flows.bits_per_dim(log_prob, 10, data_range=2.0), torch.tensor([8.0]))
    # A density of e^D on [0, 1]^D: 8 − 1/ln 2 bits.
    torch.testing.assert_close(flows.bits_per_dim(torch.tensor(5.0), 5), torch.tensor(8 - 1 / math.log(2)))


def test_dequantize_fills_each_bin_and_rejects_non_levels():
    k = torch.randint(0, 256, (1000,))
    x = flows.dequantize(k)
    assert x.dtype == torch.float32
    assert torch.equal(torch.floor(x * 256).long(), k)
    with pytest.raises(ValueError, match="integer levels"):
        flows.dequantize(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="integer levels"):
        flows.dequantize(torch.tensor([256]))


def _affine(net, scale="sigmoid"):
    return flows.AffineCoupling(flows.coupling_mask(4), net, scale)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: flows.Glow(3, 2, 1, 4, image_size=8).log_prob(torch.rand(2, 1, 8, 8)), "shape"),
        (lambda: flows.Glow(1, 2, 1, 4, image_size=6), "divisible by 2"),
        (lambda: flows.Glow(1, 1, 1, 4, image_size=4, permutation="random"), "unknown permutation"),
        (lambda: flows.Glow(1, 0, 1, 4, image_size=4), "levels and depth"),
        (lambda: flows.RealNVP((1, 6, 6), num_scales=3), "divisible by 2"),
        (lambda: flows.RealNVP((6, 6)), r"\(C, H, W\)"),
        (lambda: flows.NICE(4, 8, 1).log_prob(torch.randn(2, 5)), "shape"),
        (lambda: _affine(flows.MLP(4, 8, 8))(torch.randn(2, 3)), "shape"),
        (lambda: _affine(flows.MLP(4, 4, 8))(torch.randn(2, 4)), "conditioner returned"),
        (lambda: _affine(flows.MLP(4, 8, 8), scale="exp"), "unknown scale"),
        (lambda: flows.coupling_mask(4, "checkerboard"), "image shape"),
        (lambda: flows.coupling_mask(1), "at least 2"),
        (lambda: flows.coupling_mask(4, "stripes"), "unknown mask"),
        (lambda: flows.FactorOut(4, flows.CompositeTransform([]))(torch.randn(2, 3, 2, 2)), "4 channels"),
        (lambda: flows.DiagonalScaling(4)(torch.randn(2, 1, 4)), "shape"),
    ],
)
def test_bad_input_raises_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
