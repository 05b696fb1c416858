"""Cached autoregressive generation against the parallel pass, batching with lengths, sampling modes."""

import pytest
import torch
from wavenet_checks import random_inputs, tiny_wavenet

from wavesynth.wavenet import GenerationState, generate

HEADS = ["mol", "gaussian", "logistic", "mulaw"]


def teacher_forced_params(model, mel, x, speaker=None, excitation=None):
    """The cached path's head parameters (B, P, T) when x is fed back step by step."""
    state = GenerationState(model, mel, speaker, excitation=excitation)
    steps = []
    with torch.inference_mode():
        for t in range(x.shape[1]):
            steps.append(state.advance().clone())
            state.x_prev.copy_(x[:, t])
    return torch.stack(steps, -1)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("kernel_size", [2, 3])
@pytest.mark.parametrize("n_speakers", [0, 3])
@pytest.mark.parametrize("excitation", ["none", "sine"])
def test_cached_steps_give_the_parallel_distribution(head, kernel_size, n_speakers, excitation):
    """Teacher-forcing a fixed waveform step by step reproduces the parallel pass's parameters, with and
    without an excitation (its rows enter the conditioning at every refill)."""
    model = tiny_wavenet(head=head, kernel_size=kernel_size, n_speakers=n_speakers, excitation=excitation,
                         harmonics=3)
    mel, x = random_inputs(model, batch=2, frames=10)  # 40 samples > the receptive field (29 for k=3)
    speaker = torch.tensor([2, 0]) if n_speakers else None
    e = torch.randn(2, 4, x.shape[1]) if excitation == "sine" else None
    with torch.no_grad():
        expected = model.distribution_params(x, mel, speaker, e)
        if e is not None:  # the excitation really enters
            silent = model.distribution_params(x, mel, speaker, torch.zeros_like(e))
            assert not torch.allclose(expected, silent)
    torch.testing.assert_close(teacher_forced_params(model, mel, x, speaker, e), expected, atol=1e-5,
                               rtol=1e-5)


def test_excitation_shape_is_checked():
    model = tiny_wavenet(excitation="sine", harmonics=3)
    mel, x = random_inputs(model, batch=2, frames=4)
    with pytest.raises(ValueError, match="needs an excitation of shape"):
        model.log_prob(x, mel)
    with pytest.raises(ValueError, match="needs an excitation of shape"):
        generate(model, mel, excitation=torch.zeros(2, 3, x.shape[1]))
    with pytest.raises(ValueError, match="no excitation input"):
        tiny_wavenet().log_prob(x, mel, excitation=torch.zeros(2, 4, x.shape[1]))


def test_cached_steps_with_several_conditioning_chunks_per_frame():
    """hop 32: the conditioning is refilled every 16 steps, twice per frame."""
    model = tiny_wavenet(hop_length=32, upsample_scales=(4, 8), layers=4)
    mel, x = random_inputs(model, batch=2, frames=3)
    with torch.no_grad():
        expected = model.distribution_params(x, mel)
    torch.testing.assert_close(teacher_forced_params(model, mel, x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("head", HEADS)
def test_generated_samples_are_the_heads_draws(head):
    """Each x_t is the head's draw, with the step's noise, from p(x_t | x_<t) of the parallel pass."""
    model = tiny_wavenet(torch.float64, head=head)
    mel, _ = random_inputs(model, batch=2, frames=8)
    noise = model.head.draw_noise((2, 32), dtype=torch.float64)
    x = generate(model, mel, noise=noise, temperature=0.7)
    params = model.distribution_params(x, mel)
    torch.testing.assert_close(x, model.head.sample_from_noise(params, noise, 0.7), atol=1e-12, rtol=0)
    assert x.abs().max() <= 1


@pytest.mark.parametrize("head", HEADS)
def test_deterministic_generation_takes_the_mode(head):
    model = tiny_wavenet(torch.float64, head=head)
    mel, _ = random_inputs(model, batch=2, frames=8)
    x = generate(model, mel, deterministic=True)
    torch.testing.assert_close(x, model.head.mode(model.distribution_params(x, mel)), atol=1e-12, rtol=0)


@pytest.mark.parametrize("head", ["mol", "logistic"])
def test_batch_with_lengths_equals_one_by_one(head):
    """Row b of a padded batch equals generating utterance b alone with the same noise, zero past its end."""
    model = tiny_wavenet(torch.float64, head=head, n_speakers=2)
    hop, lengths = model.config.hop_length, [9, 4, 6]
    mel, _ = random_inputs(model, batch=3, frames=9)
    speaker = torch.tensor([1, 0, 1])
    noise = model.head.draw_noise((3, 9 * hop), dtype=torch.float64)
    batch = generate(model, mel, speaker, lengths=torch.tensor(lengths), noise=noise)
    for b, frames in enumerate(lengths):
        alone = generate(model, mel[b, :, :frames], speaker[b], noise=noise[b : b + 1, :, : frames * hop])
        torch.testing.assert_close(batch[b, : frames * hop], alone, atol=1e-12, rtol=0)
        assert batch[b, frames * hop :].abs().sum() == 0


def test_generator_reproducibility_and_reset():
    model = tiny_wavenet()
    mel, _ = random_inputs(model, batch=1, frames=5)
    a = generate(model, mel, generator=torch.Generator().manual_seed(5))
    b = generate(model, mel, generator=torch.Generator().manual_seed(5))
    c = generate(model, mel, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    state = GenerationState(model, mel, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        for _ in range(2):
            state.reset()
            for _ in range(state.num_steps):
                state.step()
            assert torch.equal(state.samples(), a)


def test_generate_restores_training_mode_and_checks_mel():
    model = tiny_wavenet().train()
    mel, _ = random_inputs(model, batch=1, frames=2)
    assert generate(model, mel[0]).shape == (8,)
    assert model.training
    with pytest.raises(ValueError, match="mel must be"):
        generate(model, mel[:, :2])
