"""The IAF student: exact composition of the flows, change of variables, causality, chunking, config."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from flow_checks import assert_exact_flow
from student_checks import HOP, excitation_for, inputs, tiny_config, tiny_student
from torch.autograd.functional import jacobian

from wavesynth.flows import StandardLogistic, StandardNormal
from wavesynth.parallel import ParallelWaveNet, StudentConfig, StudentContext
from wavesynth.parallel import student as student_module
from wavesynth.train import from_dict, load_config, to_dict

WITH_EXCITATION = dict(excitation="sine", harmonics=3)
AT_FLOW_INPUT = dict(WITH_EXCITATION, excitation_at="flow_input")  # once per flow, not in every layer


@pytest.mark.parametrize("overrides", [{}, WITH_EXCITATION, AT_FLOW_INPUT])
def test_flows_one_by_one_equal_the_closed_form(overrides):
    student = tiny_student(**overrides)
    z, mel = inputs(student)
    e = excitation_for(student, z)
    x, mu_tot, log_s_tot = student(z, mel, e)
    h, log_s_sum, coefficients = z, torch.zeros_like(z), []
    for flow in student.flows:
        log_s, mu = flow.log_scale_and_shift(h, StudentContext(mel, e))
        h = h * log_s.exp() + mu
        log_s_sum = log_s_sum + log_s
        coefficients.append((mu, log_s))
    # μ_tot = Σ_k μ_k Π_{j>k} s_j, s_tot = Π_k s_k
    mu_closed = sum(mu * math.prod(c[1].exp() for c in coefficients[k + 1:])
                    for k, (mu, _) in enumerate(coefficients))
    torch.testing.assert_close(x, h, rtol=0, atol=1e-12)
    torch.testing.assert_close(log_s_tot, log_s_sum, rtol=0, atol=1e-12)
    torch.testing.assert_close(mu_tot, mu_closed, rtol=0, atol=1e-12)
    torch.testing.assert_close(x, z * log_s_tot.exp() + mu_tot, rtol=0, atol=1e-12)
    assert log_s_tot.std() > 0.1 and mu_tot.std() > 0.1  # the flows really transform z
    if e is not None:  # and the excitation really conditions them
        assert not torch.allclose(x, student(z, mel, torch.zeros_like(e))[0])


@pytest.mark.parametrize("noise", ["logistic", "gaussian"])
@pytest.mark.parametrize("overrides", [{}, WITH_EXCITATION, AT_FLOW_INPUT])
def test_change_of_variables_gives_the_location_scale_density(noise, overrides):
    """log p_z(z) - log|det ∂x/∂z| (autograd Jacobian) = Σ_t log p(x_t; μ_tot, s_tot), one utterance."""
    student = tiny_student(noise=noise, **overrides)
    z, mel = inputs(student, batch=1, frames=4)
    e = excitation_for(student, z)
    x, mu_tot, log_s_tot = student(z, mel, e)
    J = jacobian(lambda v: student(v.unsqueeze(0), mel, e)[0][0], z[0])
    assert torch.equal(J.triu(1), torch.zeros_like(J))  # x_t depends on z_<=t only
    torch.testing.assert_close(J.diagonal(), log_s_tot[0].exp(), rtol=1e-12, atol=0)
    base = (StandardLogistic if noise == "logistic" else StandardNormal)(z.shape[1]).double()
    by_change_of_variables = base.log_prob(z) - torch.linalg.slogdet(J)[1]
    by_density = student.step_log_prob(x, mu_tot, log_s_tot).sum(1)
    torch.testing.assert_close(by_change_of_variables, by_density, rtol=1e-10, atol=1e-10)


def test_receptive_field_is_the_exact_dependency_on_past_noise():
    student = tiny_student(flow_layers=(2, 2), kernel_size=2)  # R = (1+2+1) + (1+2+1) = 8
    z, mel = inputs(student, batch=1, frames=5)
    R, T = student.receptive_field, z.shape[1]
    assert R == 8
    J = jacobian(lambda v: student(v.unsqueeze(0), mel)[0][0], z[0])
    lags = torch.arange(T).unsqueeze(1) - torch.arange(T)  # t - t'
    assert torch.equal(J[(lags < 0) | (lags > R)], torch.zeros(int(((lags < 0) | (lags > R)).sum()),
                                                               dtype=J.dtype))
    assert (J.diagonal(-R) != 0).all()


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("overrides", [{}, WITH_EXCITATION])
def test_chunks_with_context_equal_one_pass(shared, overrides):
    """A chunk of frames [a, b) with the same noise (and the excitation's slice) gives the unchunked
    samples of frames [a + L, b - Q)."""
    student = tiny_student(shared_upsampler=shared, **overrides)
    assert len(student.upsamplers) == (1 if shared else 2)
    z, mel = inputs(student, batch=2, frames=24)
    e = excitation_for(student, z)
    full = student.sample(mel, noise=z, excitation=e)
    left, right = student.chunk_context_frames
    assert (left, right) == (student.mel_context_frames + math.ceil(22 / HOP), student.mel_context_frames)
    a, b = 3, 3 + left + 5 + right
    chunk = student.sample(mel[..., a:b], noise=z[:, a * HOP:b * HOP],
                           excitation=None if e is None else e[..., a * HOP:b * HOP])
    torch.testing.assert_close(chunk[:, left * HOP:(b - a - right) * HOP],
                               full[:, (a + left) * HOP:(b - right) * HOP], rtol=0, atol=1e-12)
    assert not torch.allclose(chunk[:, :HOP], full[:, a * HOP:(a + 1) * HOP])  # the context is needed


def test_sample_shapes_temperature_and_given_noise():
    student = tiny_student(dtype=torch.float32)
    z, mel = inputs(student, batch=3, frames=5)
    x = student.sample(mel, noise=z)
    assert x.shape == (3, 20) and not x.requires_grad
    torch.testing.assert_close(x, student(z, mel)[0])
    torch.testing.assert_close(student.sample(mel, temperature=0.5, noise=z), student(0.5 * z, mel)[0])
    cold = student.sample(mel, temperature=0.0)
    torch.testing.assert_close(cold, student(torch.zeros_like(z), mel)[0])
    generator = torch.Generator().manual_seed(1)
    again = torch.Generator().manual_seed(1)
    torch.testing.assert_close(student.sample(mel, generator=generator), student.sample(mel, generator=again))


@pytest.mark.parametrize("tile", [8, 12, 4096])
def test_packed_sampling_equals_the_autograd_forward(monkeypatch, tile):
    """``sample`` (time-major tiles, packed weights) = ``forward`` to float64 rounding, for any tiling."""
    monkeypatch.setattr(student_module, "TILE_SAMPLES", tile)
    variants = [{}, dict(noise="gaussian", shared_upsampler=False),
                dict(kernel_size=2, flow_layers=(4, 4), flow_cycles=(2, 1)), WITH_EXCITATION, AT_FLOW_INPUT]
    for overrides in variants:
        student = tiny_student(**overrides)
        z, mel = inputs(student, batch=3, frames=7)
        e = excitation_for(student, z)
        torch.testing.assert_close(student.sample(mel, noise=z, excitation=e), student(z, mel, e)[0],
                                   rtol=0, atol=1e-12)


def test_bad_shapes_are_clear_errors():
    student = tiny_student()
    z, mel = inputs(student, batch=2, frames=4)
    with pytest.raises(ValueError, match="mel must be"):
        student(z, mel[:, :3])
    with pytest.raises(ValueError, match="z must be"):
        student(z[:, :-1], mel)
    with pytest.raises(ValueError, match="no excitation input"):
        student(z, mel, torch.zeros(2, 4, z.shape[1], dtype=z.dtype))
    excited = tiny_student(**WITH_EXCITATION)
    with pytest.raises(ValueError, match="needs an excitation of shape"):
        excited(z, mel)
    with pytest.raises(ValueError, match="needs an excitation of shape"):
        excited.sample(mel, noise=z, excitation=torch.zeros(2, 3, z.shape[1]))


def test_paper_defaults_and_receptive_field():
    config = StudentConfig()
    assert config.flow_layers == (10, 10, 10, 30) and config.channels == 64 and config.noise == "logistic"
    student = ParallelWaveNet(config)
    assert student.receptive_field == 3 * (2 * 1023 + 1) + (2 * 3 * 1023 + 1)


def test_config_round_trips_and_validates():
    config = tiny_config(noise="gaussian", shared_upsampler=False)
    assert StudentConfig.from_dict(config.to_dict()) == config
    assert from_dict(StudentConfig, to_dict(config)) == config  # the training configs' loader
    loaded = load_config(StudentConfig, overrides=["flow_layers=[6, 6]", "flow_cycles=[1, 2]", "channels=32"])
    assert loaded.flow_layers == (6, 6) and loaded.flow_cycles == (1, 2) and loaded.channels == 32
    bad = [
        (dict(flow_layers=(2, 3), flow_cycles=(1,)), "one cycle count per flow"),
        (dict(flow_layers=(3,), flow_cycles=(2,)), "multiple of its cycles"),
        (dict(flow_layers=()), "flow_layers"),
        (dict(channels=0), "channels"),
        (dict(gate_channels=7), "even"),
        (dict(kernel_size=1), "kernel_size"),
        (dict(noise="uniform"), "noise"),
        (dict(upsample_scales=(2, 3)), "hop_length"),
        (dict(log_scale_min=float("nan")), "log_scale_min"),
    ]
    for overrides, message in bad:
        with pytest.raises(ValueError, match=message):
            tiny_config(**{"flow_cycles": (1,) * len(overrides.get("flow_layers", (2, 3))), **overrides})
    with pytest.raises(ValueError, match="unknown StudentConfig keys"):
        StudentConfig.from_dict({"layers": 3})


def test_excitation_at_the_flow_input_enters_once_per_flow():
    blocks, at_input = tiny_student(**WITH_EXCITATION), tiny_student(**AT_FLOW_INPUT)
    assert all(block.excitation is not None for flow in blocks.flows for block in flow.stack.blocks)
    assert all(flow.excitation_input is None for flow in blocks.flows)
    assert all(block.excitation is None for flow in at_input.flows for block in flow.stack.blocks)
    assert [tuple(f.excitation_input.weight.shape) for f in at_input.flows] == [(8, 4, 1)] * 2
    with pytest.raises(ValueError, match="excitation_at must be 'blocks' or 'flow_input'"):
        tiny_student(**WITH_EXCITATION, excitation_at="output")


@pytest.mark.parametrize("overrides", [{}, WITH_EXCITATION, AT_FLOW_INPUT])
def test_a_student_flow_and_the_whole_student_are_exact_flows(overrides):
    """Each IAFFlow (a flows.AutoregressiveAffine) and the student as a flows.Flow pass the flow library's
    round-trip and autograd-Jacobian checks; the Flow's density is the student's Σ_t log p_S(x_t | z_<t)."""
    student = tiny_student(flow_layers=(2, 2), channels=4, gate_channels=4, **overrides)
    z, mel = inputs(student, batch=2, frames=2)  # T = 8 samples
    e = excitation_for(student, z)
    context = StudentContext(mel, e)
    first = student.flows[0]
    assert_exact_flow(first, first.inverse(z, context)[0], context, atol=1e-10)  # data: a sample
    flow = student.as_flow(frames=2)
    x, mu_tot, log_s_tot = student(z, mel, e)
    torch.testing.assert_close(flow.transform.inverse(z, context)[0], x, rtol=0, atol=1e-12)
    assert_exact_flow(flow.transform, x, context, atol=1e-10)
    torch.testing.assert_close(flow.log_prob(x, context), student.step_log_prob(x, mu_tot, log_s_tot).sum(1),
                               rtol=1e-10, atol=1e-10)
    assert flow.sample(2, context).shape == (2, 8)


@pytest.mark.parametrize("shared", [True, False])
def test_flows_reference_the_students_upsamplers_without_owning_them(shared):
    """The state_dict holds each upsampler once (under ``upsamplers``), and a copy (as EMA makes) keeps
    every flow on the copy's own upsampler."""
    student = tiny_student(shared_upsampler=shared)
    assert all(flow.upsampler is student.upsampler(k) for k, flow in enumerate(student.flows))
    assert not any(".upsampler." in key for key in student.state_dict())
    twin = copy.deepcopy(student)
    assert all(flow.upsampler is twin.upsampler(k) for k, flow in enumerate(twin.flows))
