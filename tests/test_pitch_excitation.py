"""The sine excitation: harmonics at the F0, Nyquist and voicing, float64 phase, frame alignment."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

from wavesynth.audio import get_preset
from wavesynth.pitch import excitation as excitation_module
from wavesynth.pitch.excitation import AMPLITUDE, SineExcitation, excitation_channels

SR, HOP = 16000, 100


def test_docstring_examples():
    assert doctest.testmod(excitation_module).failed == 0


def test_constant_f0_gives_its_harmonics_at_the_amplitude():
    excitation = SineExcitation(harmonics=3, sample_rate=SR, hop_length=HOP)
    e = excitation(torch.full((1, 160), 250.0))[0].numpy()  # 1 s
    assert e.shape == (4, 16000) and e.dtype == np.float32
    for k in range(3):
        spectrum = np.abs(np.fft.rfft(e[k]))
        assert np.argmax(spectrum) == 250 * (k + 1)  # 1 Hz bins
        assert abs(np.abs(e[k]).max() - AMPLITUDE) < 1e-3
    np.testing.assert_array_equal(e[3], 1.0)


def test_harmonics_above_nyquist_and_unvoiced_samples_are_zero():
    excitation = SineExcitation(harmonics=4, sample_rate=SR, hop_length=HOP)
    f0 = torch.tensor([[3000.0] * 5 + [0.0] * 5])  # 3·3000 > 8000
    e = excitation(f0)[0]
    voiced = slice(0, 4 * HOP)  # the samples nearest to voiced frames
    assert e[:2, voiced].abs().max() > 0.05
    assert torch.equal(e[2:4], torch.zeros_like(e[2:4]))
    unvoiced = slice(6 * HOP, None)
    assert torch.equal(e[:, unvoiced], torch.zeros_like(e[:, unvoiced]))
    assert torch.equal(e[4, voiced], torch.ones(4 * HOP))


def test_f0_is_interpolated_in_log_f0_between_voiced_frame_centres_and_held_at_run_edges():
    excitation = SineExcitation(harmonics=1, sample_rate=SR, hop_length=HOP)  # frame n centred on n·100+50
    f0 = torch.tensor([[0.0, 100.0, 200.0, 0.0]])
    f = excitation.frequency(f0)[0]
    assert f.dtype == torch.float64
    torch.testing.assert_close(f[[150, 200, 250]], torch.tensor([100, math.sqrt(100 * 200), 200.0],
                                                                dtype=torch.float64))
    assert (f[150:251].diff() > 0).all()  # a smooth glide
    torch.testing.assert_close(f[100:150], torch.full((50,), 100.0, dtype=torch.float64))  # held at the
    torch.testing.assert_close(f[250:300], torch.full((50,), 200.0, dtype=torch.float64))  # run's edges
    assert (f[:100] == 0).all() and (f[300:] == 0).all()


def test_frame_offset_follows_the_mel_padding():
    hifigan = get_preset("hifigan-22k")
    assert SineExcitation.for_mel(8, hifigan).frame_offset == hifigan.hop_length / 2
    assert SineExcitation.for_mel(8, hifigan).sample_rate == hifigan.sample_rate


def test_phase_accumulates_in_float64_without_drift_over_ten_minutes():
    excitation = SineExcitation(harmonics=2, sample_rate=SR, hop_length=HOP)
    frames = 10 * 60 * SR // HOP
    frequency = excitation.frequency(torch.full((1, frames), 220.0))
    phase = excitation.phase(frequency, phase0=0.25)[0]
    t = torch.arange(1, frames * HOP + 1, dtype=torch.float64)
    exact = torch.remainder(0.25 + t * 220 / SR, 1.0)
    error = torch.remainder(phase - exact + 0.5, 1.0) - 0.5
    assert error.abs().max() < 1e-9  # cycles (one running sum is off by 1.4e-5 here)


def test_slices_of_the_whole_utterance_give_the_unchunked_signal():
    excitation = SineExcitation(harmonics=4, sample_rate=SR, hop_length=HOP)
    f0 = torch.tensor([[0.0, 120.0, 130.0, 145.0, 0.0, 0.0, 180.0, 170.0]])
    frequency = excitation.frequency(f0)
    phase = excitation.phase(frequency, torch.tensor([0.3]))
    full = excitation(f0, torch.tensor([0.3]))
    assert torch.equal(excitation.signal(frequency[:, 230:610], phase[:, 230:610]), full[..., 230:610])


def test_a_batch_takes_one_start_phase_per_row():
    excitation = SineExcitation(harmonics=1, sample_rate=SR, hop_length=HOP)
    f0 = torch.full((2, 4), 200.0)
    e = excitation(f0, torch.tensor([0.0, 0.5]))
    torch.testing.assert_close(e[0, 0], -e[1, 0], atol=1e-6, rtol=0)  # half a cycle apart


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="excitation must be one of"):
        excitation_channels("saw", 8)
    with pytest.raises(ValueError, match="harmonics must be a positive integer"):
        SineExcitation(0, SR, HOP)
    assert excitation_channels("none", 8) == 0 and excitation_channels("sine", 8) == 9
