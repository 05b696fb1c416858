import dataclasses

import librosa
import numpy as np
import pytest
import torch

from wavesynth.audio import PRESETS, MelConfig, MelExtractor, MelStats, get_preset, pad_to_hop


def make_signal(rate: int, seconds: float = 1.2, seed: int = 0) -> np.ndarray:
    """A sine, a chirp, a noise burst and a stretch of digital silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * (100 + 2000 * t) * t)
    wave[len(t) // 3 : len(t) // 2] += 0.3 * rng.standard_normal(len(t) // 2 - len(t) // 3)
    wave[-len(t) // 5 :] = 0
    return wave.astype(np.float32)


def librosa_log_mel(wave: np.ndarray, c: MelConfig) -> np.ndarray:
    """An independent float64 reference of the documented computation, with librosa."""
    wave = np.pad(wave.astype(np.float64), (0, -len(wave) % c.hop_length))
    if c.padding == "hifigan":
        pad = (c.n_fft - c.hop_length) // 2
        stft = librosa.stft(
            np.pad(wave, pad, mode="reflect"),
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length,
            window="hann",
            center=False,
        )
    else:
        stft = librosa.stft(
            wave,
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length,
            window="hann",
            center=True,
            pad_mode="reflect",
        )[:, :-1]
    basis = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
    mel = np.maximum(basis @ np.sqrt(np.abs(stft) ** 2 + c.mag_eps), c.log_floor)
    return np.log(mel) if c.log == "ln" else np.log10(mel)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_torch_extraction_matches_librosa_reference(name):
    """Exact in float64. In float32 the FFT's rounding (~1e-7 of a frame's peak) dominates bins near the
    log floor, so there the comparison is linear and relative to the frame's peak."""
    config = get_preset(name)
    wave = make_signal(config.sample_rate)
    expected = librosa_log_mel(wave, config)
    extractor = MelExtractor(config)
    exact = extractor.log_mel(torch.from_numpy(wave).double()).numpy()
    assert exact.shape == expected.shape == (config.n_mels, -(-len(wave) // config.hop_length))
    np.testing.assert_allclose(exact, expected, atol=1e-6, rtol=0)

    got = extractor.log_mel(torch.from_numpy(wave)).numpy()
    assert got.dtype == np.float32
    base = np.e if config.log == "ln" else 10.0
    linear, linear_got = base**expected, base ** got.astype(np.float64)
    assert np.max(np.abs(linear_got - linear) / linear.max(axis=0)) < 1e-5
    audible = linear > 1e-3
    np.testing.assert_allclose(got[audible], expected[audible], atol=1e-4, rtol=0)


def test_presets_hold_the_published_settings():
    hifigan = get_preset("hifigan-22k")
    assert (hifigan.sample_rate, hifigan.n_fft, hifigan.hop_length, hifigan.win_length, hifigan.n_mels) == (
        22050,
        1024,
        256,
        1024,
        80,
    )
    assert (hifigan.fmin, hifigan.fmax, hifigan.log, hifigan.log_floor, hifigan.reflect_pad) == (
        0,
        8000,
        "ln",
        1e-5,
        384,
    )
    pwg = get_preset("pwg-22k")
    assert (pwg.fmin, pwg.fmax, pwg.log, pwg.log_floor, pwg.normalize) == (80, 7600, "log10", 1e-10, True)
    assert get_preset("speechbrain-16k").sample_rate == 16000


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_frames_times_hop_equals_padded_length_and_batches_agree(name):
    config = get_preset(name)
    extractor = MelExtractor(config)
    hop = config.hop_length
    for length in (config.min_samples, 5 * hop, 5 * hop + 1, 7 * hop - 1):
        wave = torch.from_numpy(make_signal(config.sample_rate, 0.5)[:length])
        mel = extractor.log_mel(wave)
        assert mel.shape[1] * hop == pad_to_hop(wave, hop).shape[0] == config.frames(length) * hop
        torch.testing.assert_close(extractor.log_mel(pad_to_hop(wave, hop)), mel)
    batch = torch.from_numpy(np.stack([make_signal(config.sample_rate, 0.5, seed) for seed in range(3)]))
    batched = extractor.log_mel(batch)
    assert batched.shape == (3, config.n_mels, config.frames(batch.shape[1]))
    for i in range(3):
        torch.testing.assert_close(batched[i], extractor.log_mel(batch[i]), atol=1e-5, rtol=0)


def test_hifigan_frames_are_centred_half_a_hop_in_and_center_frames_on_the_hop():
    """A click at sample n shows up strongest in the frame whose centre is nearest to n."""
    for name, offset in (("hifigan-22k", 128), ("speechbrain-16k", 0)):
        config = get_preset(name)
        wave = torch.zeros(20 * config.hop_length)
        wave[10 * config.hop_length + offset] = 1.0
        energy = MelExtractor(config).log_mel(wave).exp().sum(0)
        assert int(energy.argmax()) == 10


def test_normalising_presets_need_statistics_and_apply_them():
    config = get_preset("pwg-22k")
    wave = torch.from_numpy(make_signal(config.sample_rate))
    with pytest.raises(ValueError, match="statistics"):
        MelExtractor(config)(wave)
    raw = MelExtractor(config).log_mel(wave).numpy()
    stats = MelStats.of(raw)
    normalised = MelExtractor(config, stats)(wave).numpy()
    np.testing.assert_allclose(normalised, stats.normalize(raw), atol=1e-4)
    np.testing.assert_allclose(normalised.mean(axis=1), 0, atol=1e-4)
    with pytest.raises(ValueError, match="bins"):
        MelExtractor(dataclasses.replace(config, n_mels=40), stats)


def test_bad_configs_and_inputs_are_refused():
    config = get_preset("hifigan-22k")
    with pytest.raises(ValueError, match="unknown feature preset 'nope'"):
        get_preset("nope")
    for change in (
        {"fmax": 20000.0},
        {"win_length": 2048},
        {"padding": "same"},
        {"hop_length": 255},
        {"log": "db"},
        {"n_mels": 0},
    ):
        with pytest.raises(ValueError):
            dataclasses.replace(config, **change)
    assert MelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown fields"):
        MelConfig.from_dict({**config.to_dict(), "power": 2})
    extractor = MelExtractor(config)
    with pytest.raises(ValueError, match="too short"):
        extractor.log_mel(torch.zeros(config.min_samples - 1))
    with pytest.raises(ValueError, match="float waveform"):
        extractor.log_mel(torch.zeros(2, 2, 2048))
