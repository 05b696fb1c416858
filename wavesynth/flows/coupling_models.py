"""Ready-made coupling flows: NICE (Dinh et al., 2014), RealNVP (Dinh et al., 2016), Glow (Kingma &
Dhariwal, 2018). Each returns a :class:`Flow` whose latent has the shape of the data."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import WavesynthError
from .base import CompositeTransform, Transform
from .conditioners import MLP, ConvNet
from .coupling import AdditiveCoupling, AffineCoupling, Coupling, DiagonalScaling, coupling_mask
from .distributions import StandardLogistic, StandardNormal
from .flow import Flow
from .linear import InvertibleConv1x1
from .multiscale import FactorOut, Squeeze, Unsqueeze
from .normalization import ActNorm, BatchNorm
from .permutations import RandomPermutation, ReversePermutation
from .preprocessing import Logit

GLOW_PERMUTATIONS = ("lu", "plain", "reverse", "shuffle")


def NICE(  # noqa: N802 (model constructors carry the paper's name)
    features: int,
    hidden_features: int = 1000,
    num_blocks: int = 5,
    num_layers: int = 4,
    context_features: int | None = None,
) -> Flow:
    """NICE: ``num_layers`` additive couplings with alternating odd/even masks, each conditioned by an
    MLP of ``num_blocks`` ReLU layers, then a diagonal scaling z = h ⊙ exp(s); standard logistic prior.
    The defaults are the paper's MNIST model (4 layers, 5 × 1000 units).

    >>> import torch
    >>> flow = NICE(6, hidden_features=16, num_blocks=2, num_layers=4)
    >>> x = torch.randn(3, 6)
    >>> tuple(flow.log_prob(x).shape), tuple(flow.sample(2).shape)
    ((3,), (2, 6))
    >>> z, logabsdet = flow.transform(x)
    >>> torch.allclose(flow.transform.inverse(z)[0], x, atol=1e-5)
    True
    """
    layers: list[Transform] = [
        AdditiveCoupling(
            coupling_mask(features, "alternating", flip=i % 2 == 1),
            MLP(features, features, hidden_features, num_blocks, context_features),
        )
        for i in range(num_layers)
    ]
    return Flow(StandardLogistic(features), [*layers, DiagonalScaling(features)])


def RealNVP(  # noqa: N802
    shape: int | Sequence[int],
    hidden_features: int = 64,
    num_blocks: int = 2,
    *,
    num_layers: int = 8,
    num_scales: int = 2,
    batch_norm: bool = True,
    scale: str = "tanh",
    logit_alpha: float | None = 0.05,
    context_features: int | None = None,
) -> Flow:
    """RealNVP with a standard-normal prior, for vectors (``shape`` an int) or images (C, H, W).

    Vectors: ``num_layers`` affine couplings with alternating half masks, MLP conditioners of
    ``num_blocks`` hidden layers of ``hidden_features`` units.

    Images, as in the paper: per scale 3 alternating checkerboard couplings, squeeze, 3 alternating
    channel-wise couplings, factor out half the channels; the last of the ``num_scales`` scales is 4
    checkerboard couplings. Conditioners are ResNets (``num_blocks`` residual blocks of
    ``hidden_features`` channels). Data in [0, 1] first go through ``Logit(logit_alpha)`` unless it is None.
    H and W must be divisible by 2^(num_scales − 1).

    ``batch_norm`` adds a batch-norm flow layer after every coupling (running statistics in eval mode).

    >>> import torch
    >>> flow = RealNVP(4, hidden_features=16, num_layers=4, logit_alpha=None).eval()
    >>> tuple(flow.log_prob(torch.randn(3, 4)).shape), tuple(flow.sample(2).shape)
    ((3,), (2, 4))
    >>> images = RealNVP((1, 4, 4), hidden_features=8, num_blocks=1, num_scales=2).eval()
    >>> tuple(images.log_prob(torch.rand(2, 1, 4, 4)).shape), tuple(images.sample(2).shape)
    ((2,), (2, 1, 4, 4))
    """

    def coupling(event: tuple[int, ...], kind: str, flip: bool) -> list[Transform]:
        channels = event[0]
        net = (
            MLP(channels, 2 * channels, hidden_features, num_blocks, context_features)
            if len(event) == 1
            else ConvNet(channels, 2 * channels, hidden_features, num_blocks, context_features)
        )
        layer = AffineCoupling(coupling_mask(event, kind, flip), net, scale)
        return [layer, BatchNorm(channels)] if batch_norm else [layer]

    def scale_block(channels: int, height: int, width: int, scales_left: int) -> list[Transform]:
        event = (channels, height, width)
        if scales_left == 1:
            return [t for i in range(4) for t in coupling(event, "checkerboard", i % 2 == 1)]
        squeezed = (4 * channels, height // 2, width // 2)
        inner = scale_block(2 * channels, height // 2, width // 2, scales_left - 1)
        return [
            *(t for i in range(3) for t in coupling(event, "checkerboard", i % 2 == 1)),
            Squeeze(),
            *(t for i in range(3) for t in coupling(squeezed, "half", i % 2 == 1)),
            FactorOut(4 * channels, CompositeTransform(inner)),
            Unsqueeze(),
        ]

    if min(num_layers, num_scales) < 1:
        raise WavesynthError(f"num_layers and num_scales must be positive, got {num_layers}, {num_scales}")
    if isinstance(shape, int):
        layers = [t for i in range(num_layers) for t in coupling((shape,), "half", i % 2 == 1)]
        return Flow(StandardNormal(shape), layers)
    channels, height, width = _image_shape(shape, num_scales - 1)
    preprocess = [] if logit_alpha is None else [Logit(logit_alpha)]
    return Flow(StandardNormal(shape), [*preprocess, *scale_block(channels, height, width, num_scales)])


def Glow(  # noqa: N802
    in_channels: int,
    levels: int = 3,
    depth: int = 32,
    hidden_channels: int = 512,
    *,
    image_size: int | tuple[int, int],
    coupling: str = "affine",
    permutation: str = "lu",
    learn_top: bool = True,
    context_features: int | None = None,
) -> Flow:
    """Glow on images (in_channels, H, W), standard-normal base.

    Each of the ``levels`` levels: squeeze, then ``depth`` steps of [actnorm, channel permutation,
    coupling along channels], then (except at the last level) split off half the channels z_i with the
    learned prior p(z_i | h_i) = N(μ(h_i), σ(h_i)²). ``permutation``: ``lu`` / ``plain`` invertible 1x1
    convolution, or the ablation's ``reverse`` / ``shuffle``; ``coupling``: ``affine`` (s = sigmoid(h + 2))
    or ``additive``. ``learn_top`` gives the last level a learned diagonal prior N(μ, σ²).
    With ``context_features`` every coupling network and split prior also sees the context c (batch,
    context_features), and the learned top prior becomes N(μ(c), σ(c)²) with per-channel offsets linear in
    c (Glow's class-conditional prior).
    Sampling with temperature T draws every ε as T·ε. H and W must be divisible by 2^levels.

    >>> import torch
    >>> flow = Glow(3, levels=2, depth=2, hidden_channels=16, image_size=8)
    >>> x = torch.randn(4, 3, 8, 8)
    >>> tuple(flow.log_prob(x).shape)  # the first batch also initialises ActNorm from the data
    (4,)
    >>> tuple(flow.sample(2, temperature=0.7).shape)
    (2, 3, 8, 8)
    >>> z, _ = flow.transform(x)
    >>> torch.allclose(flow.transform.inverse(z)[0], x, atol=1e-4)
    True
    """
    if min(levels, depth) < 1:
        raise WavesynthError(f"levels and depth must be positive, got {levels}, {depth}")
    if coupling not in ("affine", "additive"):
        raise WavesynthError(f"unknown coupling {coupling!r}; choose from affine, additive")
    if permutation not in GLOW_PERMUTATIONS:
        raise WavesynthError(f"unknown permutation {permutation!r}; choose from "
                             f"{', '.join(GLOW_PERMUTATIONS)}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    shape = _image_shape((in_channels, *size), levels)

    def step(event: tuple[int, int, int]) -> list[Transform]:
        channels = event[0]
        layer: type[Coupling] = AffineCoupling if coupling == "affine" else AdditiveCoupling
        net = ConvNet(channels, layer.num_params * channels, hidden_channels, 0, context_features)
        if permutation in ("lu", "plain"):
            mix: Transform = InvertibleConv1x1(channels, lu=permutation == "lu")
        else:
            mix = ReversePermutation(channels) if permutation == "reverse" else RandomPermutation(channels)
        return [ActNorm(channels), mix, layer(coupling_mask(event, "half"), net)]

    def level(channels: int, height: int, width: int, index: int) -> list[Transform]:
        event = (4 * channels, height // 2, width // 2)
        steps = [t for _ in range(depth) for t in step(event)]
        if index == levels - 1:
            top = DiagonalScaling(event, shift=True, context_features=context_features)
            tail: list[Transform] = [top] if learn_top else []
        else:
            kept = event[0] - event[0] // 2
            prior = ConvNet(kept, 2 * (event[0] // 2), context_features=context_features)
            tail = [FactorOut(event[0], CompositeTransform(level(kept, *event[1:], index + 1)), prior)]
        return [Squeeze(), *steps, *tail, Unsqueeze()]

    return Flow(StandardNormal(shape), level(*shape, 0))


def _image_shape(shape: Sequence[int], halvings: int) -> tuple[int, int, int]:
    shape = tuple(shape)
    if len(shape) != 3 or min(shape) < 1:
        raise WavesynthError(f"image shape must be (C, H, W) with positive sizes, got {shape}")
    if shape[1] % 2**halvings or shape[2] % 2**halvings:
        raise WavesynthError(f"H and W must be divisible by 2^{halvings} for this many scales, got {shape}")
    return shape
