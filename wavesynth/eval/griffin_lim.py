"""The Griffin-Lim baseline: audio from a log-mel alone, as a user without a neural vocoder would get it.

1. Undo the preset's convention: L = mel·std + mean for a normalising preset, then the mel magnitude
   m = e^L (``log="ln"``) or 10^L (``log="log10"``).
2. Linear magnitude from the mel: S = max(M⁺ m, 0) with M⁺ the Moore-Penrose pseudo-inverse of the
   preset's (n_mels, n_fft/2 + 1) filterbank; bins outside [fmin, fmax] come out zero.
3. Phase by fast Griffin-Lim (Perraudin et al. 2013): starting from random phases, repeat
   x = ISTFT(S·e^{iφ}), C = STFT(x), φ = angle(C - α/(1 + α)·C_prev), with momentum α = 0.99;
   the STFT is the preset's (n_fft, hop, win_length, periodic Hann).

Frames are placed as the preset's extraction places them: frame t is centred on sample t·hop
(``padding="center"``) or t·hop + hop/2 (``padding="hifigan"``), so the output lines up with the audio the
mel was computed from and has frames·hop samples.
"""

from __future__ import annotations

import numpy as np
import torch

from ..audio import MelConfig, MelStats
from ..audio.features import mel_filterbank
from ..errors import WavesynthError

ITERATIONS = 48
MOMENTUM = 0.99


def mel_to_magnitude(mel: np.ndarray, config: MelConfig, stats: MelStats | None = None) -> np.ndarray:
    """Linear STFT magnitude (n_fft/2 + 1, frames) from a log-mel (n_mels, frames) in the preset's
    convention (steps 1-2 of the module docstring)."""
    mel = np.asarray(mel, dtype=np.float64)
    if mel.ndim != 2 or mel.shape[0] != config.n_mels:
        raise WavesynthError(f"expected a log-mel of shape (n_mels={config.n_mels}, frames), got {mel.shape}")
    if config.normalize:
        if stats is None:
            raise WavesynthError(f"preset {config.name!r} normalises features: pass the corpus statistics")
        mel = stats.denormalize(mel)
    magnitude = np.exp(mel) if config.log == "ln" else np.power(10.0, mel)
    return np.maximum(np.linalg.pinv(mel_filterbank(config)) @ magnitude, 0.0)


def griffin_lim(
    mel: np.ndarray,
    config: MelConfig,
    stats: MelStats | None = None,
    iterations: int = ITERATIONS,
    seed: int = 0,
) -> np.ndarray:
    """Waveform (frames·hop,) float32 in [-1, 1] from a log-mel (n_mels, frames) of preset ``config``."""
    magnitude = torch.from_numpy(mel_to_magnitude(mel, config, stats)).float()
    hop, frames = config.hop_length, magnitude.shape[1]
    window = torch.hann_window(config.win_length)
    stft_args = dict(n_fft=config.n_fft, hop_length=hop, win_length=config.win_length, window=window)
    length = frames * hop
    generator = torch.Generator().manual_seed(seed)
    phase = torch.exp(2j * torch.pi * torch.rand(magnitude.shape, generator=generator))
    previous = torch.zeros_like(phase)
    for _ in range(iterations):
        wave = torch.istft(magnitude * phase, length=length, center=True, **stft_args)
        rebuilt = torch.stft(wave, center=True, pad_mode="reflect", return_complex=True, **stft_args)
        rebuilt = rebuilt[:, :frames]  # the frame centred on sample frames·hop is not part of the mel
        phase = rebuilt - (MOMENTUM / (1 + MOMENTUM)) * previous
        phase = phase / phase.abs().clamp_min(1e-12)
        previous = rebuilt
    wave = torch.istft(magnitude * phase, length=length, center=True, **stft_args)
    if config.padding == "hifigan":  # frame t is centred on t·hop + hop/2, not t·hop
        wave = torch.cat([wave.new_zeros(hop // 2), wave[: length - hop // 2]])
    return wave.clamp(-1.0, 1.0).numpy()
