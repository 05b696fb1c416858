"""WaveNet layers, config and the teacher-forced parallel pass: shapes, causality, gradients, errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from wavenet_checks import random_inputs, tiny_config, tiny_wavenet

from wavesynth.wavenet import (
    CausalConv1d,
    ConditioningUpsampler,
    ResidualBlock,
    WaveNet,
    WaveNetConfig,
    WaveNetStack,
)
from wavesynth.wavenet.layers import RESIDUAL_SCALE


@pytest.mark.parametrize("kernel_size, dilation", [(2, 1), (3, 4)])
def test_causal_conv_is_a_left_padded_conv1d(kernel_size, dilation):
    conv = CausalConv1d(3, 5, kernel_size, dilation)
    x = torch.randn(2, 3, 17)
    padded = F.pad(x, ((kernel_size - 1) * dilation, 0))
    expected = F.conv1d(padded, conv.weight, conv.bias, dilation=dilation)
    torch.testing.assert_close(conv(x), expected)
    extra = torch.randn(2, 5, 17)
    torch.testing.assert_close(conv(x, extra.clone()), expected - conv.bias.view(1, -1, 1) + extra)


def test_residual_block_matches_the_textbook_formula_and_its_gradients():
    block = ResidualBlock(
        4, 6, kernel_size=3, dilation=2, cond_channels=5, global_channels=3, skip_channels=7
    )
    upsampler = ConditioningUpsampler((2, 3))
    x, mel, g = torch.randn(2, 4, 18), torch.randn(2, 5, 3), torch.randn(2, 3)
    params = list(block.parameters()) + list(upsampler.parameters())

    def textbook():
        z = F.conv1d(F.pad(x, (4, 0)), block.conv.weight, block.conv.bias, dilation=2)
        z = z + F.conv1d(upsampler(mel), block.cond.weight) + block.global_cond(g).unsqueeze(-1)
        out = F.conv1d(torch.tanh(z[:, :3]) * torch.sigmoid(z[:, 3:]), block.out.weight, block.out.bias)
        return (x + out[:, :4]) * math.sqrt(0.5), out[:, 4:]

    for ours, reference in zip(block(x, mel, upsampler.phase_weights(), g), textbook(), strict=True):
        torch.testing.assert_close(ours, reference)
        weights = torch.randn_like(ours)
        grads = torch.autograd.grad((ours * weights).sum(), params, retain_graph=True)
        expected = torch.autograd.grad((reference * weights).sum(), params, retain_graph=True)
        for a, b in zip(grads, expected, strict=True):
            torch.testing.assert_close(a, b)


def test_causal_conv_sees_only_the_past():
    conv = CausalConv1d(2, 3, kernel_size=3, dilation=4)
    x = torch.randn(1, 2, 30, requires_grad=True)
    conv(x)[0, :, 17].sum().backward()
    touched = x.grad.abs().sum(1)[0].nonzero().flatten().tolist()
    assert touched == [9, 13, 17]


@pytest.mark.parametrize("scales", [(4, 4, 4, 4), (2, 5), (3,), (1, 2)])
def test_upsampler_is_nearest_then_filter_stages_on_a_zero_extended_mel(scales):
    upsampler = ConditioningUpsampler(scales)
    with torch.no_grad():
        for weight in upsampler.filters:
            weight.uniform_(0, 0.5)
    mel = torch.randn(2, 7, 11)
    out = upsampler(mel)
    hop, pad = math.prod(scales), upsampler.context + 1
    assert out.shape == (2, 7, 11 * hop)
    reference = F.pad(mel, (pad, pad)).reshape(14, 1, -1)
    for scale, weight in zip(scales, upsampler.filters, strict=True):
        reference = F.conv1d(reference.repeat_interleave(scale, -1), weight.view(1, 1, -1), padding=scale)
    torch.testing.assert_close(out, reference[..., pad * hop : -pad * hop].reshape_as(out))


def test_upsampler_starts_as_a_smoothing_average():
    upsampler = ConditioningUpsampler((4, 4))
    constant = upsampler(torch.ones(1, 1, 20))[0, 0]
    interior = constant[len(constant) // 4 : -len(constant) // 4]
    assert torch.allclose(interior, torch.ones_like(interior))


def test_stack_without_skips_is_causal_and_conditioned():
    """The student's use: no skip path, output at t depends on input <= t and on the conditioning."""
    stack = WaveNetStack(
        layers=4, cycles=2, kernel_size=2, residual_channels=6, gate_channels=8, cond_channels=3
    )
    x = torch.randn(1, 6, 20, requires_grad=True)
    mel = torch.randn(1, 3, 5, requires_grad=True)
    out, skips = stack(x, mel, ConditioningUpsampler((2, 2)))
    assert skips is None and out.shape == x.shape
    out[0, :, 10].sum().backward()
    assert x.grad[0, :, 11:].abs().sum() == 0 and x.grad[0, :, 10].abs().sum() > 0
    assert mel.grad.abs().sum() > 0
    assert stack.receptive_field == 1 + (1 + 2) * 2


@pytest.mark.parametrize("head", ["mol", "gaussian", "logistic", "mulaw"])
@pytest.mark.parametrize("kernel_size", [2, 3])
def test_params_at_t_depend_only_on_earlier_samples(head, kernel_size):
    model = tiny_wavenet(head=head, kernel_size=kernel_size)
    mel, x = random_inputs(model, batch=1, frames=12)
    x.requires_grad_()
    params = model.distribution_params(x, mel)
    assert params.shape == (1, model.head.num_params, x.shape[1])
    t = 40
    params[0, :, t].sum().backward()
    assert x.grad[0, t:].abs().sum() == 0
    assert x.grad[0, t - 1].abs() > 0 and x.grad[0, t - model.receptive_field].abs() > 0
    assert x.grad[0, : t - model.receptive_field].abs().sum() == 0


@pytest.mark.parametrize("head", ["mol", "gaussian", "logistic"])
def test_log_prob_is_differentiable_in_x(head):
    model = tiny_wavenet(head=head)
    mel, x = random_inputs(model)
    x.requires_grad_()
    log_p = model.log_prob(x, mel)
    assert log_p.shape == x.shape and torch.isfinite(log_p).all()
    log_p.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_speaker_conditioning_changes_the_distribution():
    model = tiny_wavenet(n_speakers=3, speaker_dim=4)
    mel, x = random_inputs(model)
    a = model.log_prob(x, mel, torch.tensor([0, 1]))
    b = model.log_prob(x, mel, torch.tensor([2, 1]))
    assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])
    with pytest.raises(ValueError, match="needs speaker ids"):
        model.log_prob(x, mel)
    with pytest.raises(ValueError, match="has no speakers"):
        tiny_wavenet().log_prob(x, mel, torch.tensor([0, 1]))


def test_bits_per_sample():
    model = tiny_wavenet()
    mel, x = random_inputs(model)
    log_p = model.log_prob(x, mel)
    assert model.bits_per_sample(log_p).item() == pytest.approx(-log_p.mean().item() / math.log(2))
    lengths = torch.tensor([24, 10])
    expected = -(log_p[0, :24].sum() + log_p[1, :10].sum()) / 34 / math.log(2)
    assert model.bits_per_sample(log_p, lengths).item() == pytest.approx(expected.item(), rel=1e-6)
    gaussian = tiny_wavenet(head="gaussian")
    log_density = gaussian.log_prob(x, mel)
    shift = math.log2(65535 / 2)
    assert gaussian.bits_per_sample(log_density).item() == pytest.approx(
        -log_density.mean().item() / math.log(2) + shift, rel=1e-6
    )


def test_shape_errors():
    model = tiny_wavenet()
    mel, x = random_inputs(model)
    with pytest.raises(ValueError, match="mel must be"):
        model.log_prob(x, mel[:, :3])
    with pytest.raises(ValueError, match="x must be"):
        model.log_prob(x[:, :-1], mel)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(layers=7, cycles=2), "multiple of cycles"),
        (dict(layers=0), "layers must be a positive integer"),
        (dict(kernel_size=1), "kernel_size must be an integer >= 2"),
        (dict(gate_channels=13), "gate_channels must be even"),
        (dict(upsample_scales=(2, 3)), "multiply to 6, not hop_length 4"),
        (dict(upsample_scales=(4, 0)), "upsample_scales must be positive"),
        (dict(n_speakers=-1), "n_speakers must be"),
        (dict(head="softmax"), "unknown output head"),
        (dict(head="mol", head_options={"bins": 3}), "bad options"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_config_round_trip():
    config = tiny_config(head="mol", head_options={"num_components": 4}, upsample_scales=[2, 2])
    assert config.upsample_scales == (2, 2)
    again = WaveNetConfig.from_dict(config.to_dict())
    assert again == config
    assert WaveNet(again).head.num_params == 12
    with pytest.raises(ValueError, match="unknown WaveNetConfig keys"):
        WaveNetConfig.from_dict({"layerz": 3})


def test_packed_gates_reproduce_the_residual_block():
    """ResidualBlock.packed_gates, the layout of the fast paths: one sigmoid of the reordered z gives
    [σ(z₂), σ(2z₁)], a = 2s₁s₂ - s₂, and W_o a + b_o split into residual and skip is the block's output."""
    torch.manual_seed(0)
    block = ResidualBlock(6, 10, 3, 2, cond_channels=4, global_channels=3, skip_channels=5,
                          excitation_channels=2)
    x, mel, g, e = torch.randn(2, 6, 16), torch.randn(2, 4, 16), torch.randn(2, 3), torch.randn(2, 2, 16)
    phase = torch.ones(1, 1)  # hop 1, no upsampling: c = mel
    with torch.no_grad():
        residual, skip = block(x, mel, phase, g, e)
        p = block.packed_gates()
        z = F.conv1d(F.pad(x, (4, 0)), p.taps, dilation=2)
        z = z + (p.bias + g @ p.global_cond.T).unsqueeze(-1) + p.cond @ mel + p.excitation @ e
        s = torch.sigmoid(z)
        a = 2 * s[:, 5:] * s[:, :5] - s[:, :5]
    torch.testing.assert_close(RESIDUAL_SCALE * (x + p.residual @ a + p.residual_bias.view(-1, 1)), residual)
    torch.testing.assert_close(p.skip @ a + p.skip_bias.view(-1, 1), skip)
